"""Shared bits of the benchmark scripts: data location, environment facts, table + Parquet output."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import matplotlib.ticker
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def default_data_dir() -> str | None:
    """$NAS_LTH_DATA, else the workplace's ../shared/data when present (never downloads by itself)."""
    if os.environ.get("NAS_LTH_DATA"):
        return os.environ["NAS_LTH_DATA"]
    shared = REPO.parent / "shared" / "data"
    return str(shared) if shared.is_dir() else None


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }


def emit(df: pd.DataFrame, name: str, out: str | None = None, show: list[str] | None = None) -> Path:
    """Print ``df`` as a Markdown table and write it to ``benchmarks/results/<name>.parquet``
    (written whole to a temporary name, then renamed)."""
    path = Path(out) if out else RESULTS / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)
    if show != []:  # [] = write only (e.g. long curve tables)
        table = df[show] if show else df
        print(table.to_markdown(index=False, floatfmt=".4g") if _has_tabulate() else table.to_string(index=False))
    print(f"\nwrote {path}", file=sys.stderr)
    return path


def append_parquet(path: Path, new: pd.DataFrame, replace: list[str] | None = None) -> None:
    """Append ``new`` to the Parquet file ``path`` (written whole to a temporary name, then renamed), for
    studies that store each unit as it finishes; old rows equal to a new one on the ``replace`` columns are
    dropped first (a unit run again replaces its earlier copy)."""
    old = pd.read_parquet(path) if path.exists() else pd.DataFrame()
    if replace and not old.empty:
        done = set(map(tuple, new[replace].to_numpy()))
        old = old[[tuple(r) not in done for r in old[replace].to_numpy()]]
    both = pd.concat([old, new], ignore_index=True) if not old.empty else new
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    both.to_parquet(tmp, index=False)
    tmp.replace(path)


def weights_axis(ax, ticks) -> None:
    """The benchmarks' weights-remaining axis: log scale, 100 % on the left, labelled at ``ticks`` (%)."""
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%)")
    ax.set_xticks(list(ticks), [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # short ranges get overlapping minor labels


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def round_collector(rows: list[dict], curves: list[dict], seed: int):
    """An ``on_round`` hook for TicketRun that prints one line per round and collects the rows and
    the evaluation curves (tagged with the seed) for the benchmark's Parquet tables."""
    import time

    t0 = time.perf_counter()

    def on_round(row) -> None:
        rec = row.record()
        print(f"seed {seed} round {rec['round']:>2} {rec['variant']:<14} {100 * rec['weights_remaining']:6.2f}% "
              f"test@es {rec.get('test_acc_at_early_stop', float('nan')):.4f} es {rec['early_stop_iter']:>6} "
              f"[{time.perf_counter() - t0:7.0f}s]", flush=True)
        rows.append({"seed": seed, **rec})
        curves.extend({"seed": seed, "round": rec["round"], "variant": rec["variant"], **c} for c in row.curve)

    return on_round
