"""Multi-objective search quality: hypervolume of the accuracy / weights-remaining front at equal budgets in
training epochs, several searcher seeds.

The space (``benchmarks/spaces/pareto_quality.yaml``): LeNet-300-100 / MNIST, sparsity searched over 0.5-50 %
(``target_weights``, log scale) with criterion, stopping point, rewind point and rounds; objectives validation
accuracy (max) and weights remaining (min). Methods, each a real search ended by ``strategy.epoch_budget``
(one 2-thread trial at a time):

- ``motpe_moasha``: Optuna's multi-objective TPE + nas_lth's multi-objective ASHA;
- ``nsga2_moasha``: NSGA-II + multi-objective ASHA;
- ``random_moasha`` and ``random_fifo``: random sampling with and without multi-objective ASHA;
- ``lth``: the LTH ladder (large_final, end, 20 %/round fc, 10 % output, reset to init, full training every
  round), a front of its own with one point per round.

Hypervolume (``nas_lth.store.pareto``): of the full-budget tickets finished within B epochs, points
(-val_acc, log10 weights remaining), reference point (0, 0) - accuracy 0 and all the weights. The table gives
its median and range over searcher seeds at each budget, and the epochs each method needs to reach the LTH
ladder's final hypervolume.

Resumable like ``benchmarks/search_quality.py``: one file per (method, searcher seed) under
``benchmarks/results/pareto_quality/runs/``; the summary (``summary.parquet`` there, the generated table
``reports/pareto_quality/table.md`` and the figure ``reports/pareto_quality/pareto_quality.png``) is written
from what exists and says how complete it is.

    python -m benchmarks.pareto_quality [--seeds 0 1 2 3 4] [--methods ...] [--epoch-budget 100]
                                        [--budgets 25 50 100] [--summary-only]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from benchmarks.common import REPO, RESULTS, emit, environment
from benchmarks.search_quality import band_figure, loaded, runs, study_parser
from nas_lth.space import load_space
from nas_lth.store.pareto import hypervolume, objective_points

SPACE = REPO / "benchmarks" / "spaces" / "pareto_quality.yaml"
OUT = RESULTS / "pareto_quality"
FIGURE = REPO / "reports" / "pareto_quality" / "pareto_quality.png"
TABLE = FIGURE.with_name("table.md")
OBJECTIVES = [("val_acc", "max"), ("weights_remaining", "min")]
REF = np.array([0.0, 0.0])  # accuracy 0, log10(1.0) = all weights
MIN_WEIGHTS = 0.0049  # the searched range starts at 0.5 % of the fc weights
METHODS = {"motpe_moasha": ("motpe", "asha"), "nsga2_moasha": ("nsga2", "asha"),
           "random_moasha": ("random", "asha"), "random_fifo": ("random", "fifo"), "lth": (None, None)}
LABELS = {"motpe_moasha": "MO-TPE + MO-ASHA", "nsga2_moasha": "NSGA-II + MO-ASHA", "random_moasha": "random + MO-ASHA",
          "random_fifo": "random + FIFO", "lth": "LTH ladder"}


def hv_at(df: pd.DataFrame, budget: float) -> float:
    """Hypervolume of the full-budget tickets finished within ``budget`` epochs, within the searched range of
    sparsity (the LTH ladder goes on below 0.5 %, where no searched recipe can reach)."""
    done = df[(df.cum_epochs <= budget) & (df.status == "completed") & (df.weights_remaining >= MIN_WEIGHTS)]
    done = done.dropna(subset=["val_acc", "weights_remaining"])
    if done.empty:
        return 0.0
    pts, _ = objective_points(done, OBJECTIVES)
    return hypervolume(pts, REF)


def epochs_to(df: pd.DataFrame, target: float) -> float:
    """Epochs spent when the front's hypervolume first reached ``target`` (NaN if never)."""
    for e in sorted(df.cum_epochs.unique()):
        if hv_at(df, e) >= target - 1e-12:
            return float(e)
    return float("nan")


def summary(args) -> pd.DataFrame:
    all_runs, wanted, have = loaded(args, OUT)
    lth = all_runs[all_runs.method == "lth"]
    target = hv_at(lth, float("inf")) if len(lth) else float("nan")
    rows = []
    for (m, s), g in all_runs.groupby(["method", "searcher_seed"]):
        for b in args.budgets:
            rows.append({"method": m, "searcher_seed": s, "budget_epochs": b, "hypervolume": hv_at(g, b),
                         "epochs_to_lth_hypervolume": epochs_to(g, target) if np.isfinite(target) else np.nan,
                         "epochs_run": g.cum_epochs.max(), "trials": len(g)})
    per_run = pd.DataFrame(rows).assign(lth_final_hypervolume=target, complete=wanted <= have,
                                        runs_done=len(have & wanted), runs_wanted=len(wanted), **environment())
    emit(per_run, "pareto_quality", str(OUT / "summary.parquet"), show=[])
    print(f"\n{'complete' if wanted <= have else f'PARTIAL ({len(have & wanted)}/{len(wanted)} runs)'}; "
          f"LTH ladder's final hypervolume {target:.4f}")
    t = per_run.groupby(["method", "budget_epochs"]).hypervolume.agg(["count", "median", "min", "max"])
    print(t.to_string(float_format=lambda v: f"{v:.4f}"))
    e = per_run.drop_duplicates(["method", "searcher_seed"]).groupby("method").epochs_to_lth_hypervolume.agg(
        ["median", "min", "max"])
    print("\nepochs to the LTH ladder's final hypervolume:\n" + e.to_string(float_format=lambda v: f"{v:.1f}"))
    _figure(per_run)
    table = TABLE if OUT == RESULTS / "pareto_quality" else OUT / TABLE.name
    table.write_text(markdown(per_run, run_seconds(all_runs)))
    print(f"table: {table}")
    return per_run


def run_seconds(all_runs: pd.DataFrame) -> pd.Series:
    """Wall time of each (method, searcher seed) run, as its file records it."""
    return all_runs.groupby(["method", "searcher_seed"]).wall_seconds.first()


def _range(v: pd.Series, fmt: str) -> str:
    """Median (min-max) of ``v``, or the one value."""
    v = v.dropna()
    if v.empty:
        return "-"
    med = format(v.median(), fmt)
    return med if v.nunique() == 1 else f"{med} ({format(v.min(), fmt)}-{format(v.max(), fmt)})"


def markdown(per_run: pd.DataFrame, seconds: pd.Series) -> str:
    """``reports/pareto_quality/table.md``: the hypervolume table and the run times, from ``summary.parquet`` and
    the per-run files (``python -m benchmarks.pareto_quality --summary-only`` writes it)."""
    done, wanted = int(per_run.runs_done.iloc[0]), int(per_run.runs_wanted.iloc[0])
    budgets = sorted(per_run.budget_epochs.unique())
    target = float(per_run.lth_final_hypervolume.iloc[0])
    lines = [
        "# Pareto quality: hypervolume per method and budget", "",
        "Generated by `python -m benchmarks.pareto_quality --summary-only` from `benchmarks/results/pareto_quality/` "
        f"({done} of {wanted} runs{'' if per_run.complete.all() else ': PARTIAL, the study is still running'}). "
        "Hypervolume of the full-budget tickets finished within the budget (reference point: accuracy 0, all the "
        "weights), median (min-max) over searcher seeds; trials: those each run started (the LTH ladder: its "
        "rounds, the dense one included); epochs to the LTH ladder's final hypervolume "
        f"({target:.2f}): when a run's front first reached it.", "",
        "| method | seeds | " + " | ".join(f"HV at {b:g} epochs" for b in budgets)
        + " | trials | epochs to the ladder's final HV |",
        "|---|---:|" + "---|" * len(budgets) + "---:|---|",
    ]
    order = [m for m in LABELS if m in set(per_run.method)] + sorted(set(per_run.method) - set(LABELS))
    for m in order:
        g = per_run[per_run.method == m]
        runs_ = g.drop_duplicates("searcher_seed")
        hv = [_range(g[g.budget_epochs == b].hypervolume, ".2f") for b in budgets]
        reached = runs_.epochs_to_lth_hypervolume.dropna()
        to = _range(reached, ".0f") if len(reached) else "not reached"
        if 0 < len(reached) < len(runs_):
            to += f" ({len(reached)} of {len(runs_)} runs)"
        lines.append(f"| {LABELS.get(m, m)} | {runs_.searcher_seed.nunique()} | " + " | ".join(hv)
                     + f" | {_range(runs_.trials, '.0f')} | {to} |")
    s = seconds.dropna()
    lines += ["", "Wall time per run (one search, or the ladder; one 2-thread trial at a time): "
              f"median {s.median():.0f} s, range {s.min():.0f}-{s.max():.0f} s over {len(s)} runs; per method:", "",
              "| method | runs | wall time per run, median (min-max) |", "|---|---:|---|"]
    for m in order:
        if m in s.index.get_level_values("method"):
            w = s.loc[m]
            lines.append(f"| {LABELS.get(m, m)} | {len(w)} | {_range(w, '.0f')} s |")
    return "\n".join(lines) + "\n"


def _figure(per_run: pd.DataFrame) -> None:
    band_figure(per_run, "hypervolume", "hypervolume (accuracy x -log10 weights)",
                "LeNet-300-100 / MNIST: front of accuracy vs weights remaining",
                FIGURE if OUT == RESULTS / "pareto_quality" else OUT / FIGURE.name)


def main(argv=None) -> int:
    args = study_parser(__doc__, METHODS, OUT).parse_args(argv)
    globals()["OUT"] = args.results
    torch.set_num_threads(2)
    space = load_space(SPACE)
    if not args.summary_only:
        runs(args, space, {m: (*v, False) for m, v in METHODS.items()}, OUT)
    summary(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
