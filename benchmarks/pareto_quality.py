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
``benchmarks/results/pareto_quality/runs/``; the summary (``summary.parquet`` there, figure
``reports/pareto_quality/pareto_quality.png``) is written from what exists and says how complete it is.

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
OBJECTIVES = [("val_acc", "max"), ("weights_remaining", "min")]
REF = np.array([0.0, 0.0])  # accuracy 0, log10(1.0) = all weights
MIN_WEIGHTS = 0.0049  # the searched range starts at 0.5 % of the fc weights
METHODS = {"motpe_moasha": ("motpe", "asha"), "nsga2_moasha": ("nsga2", "asha"),
           "random_moasha": ("random", "asha"), "random_fifo": ("random", "fifo"), "lth": (None, None)}


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
    return per_run


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
