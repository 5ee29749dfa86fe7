"""What the search strategy adds: methods at equal budgets counted in training epochs, several searcher seeds,
the recommended recipe of each confirmed with fresh seeds.

The question (``benchmarks/spaces/search_quality.yaml``): which recipe gives the best LeNet-300-100 / MNIST
ticket at <= 3.6 % of the weights? The *target* is a full-budget ticket at <= 3.6 % whose validation accuracy
is at least the dense network's (same seed, same 3-epoch budget per training run); the benchmark reports the
fraction of random recipes that meet it, so a reader can see how hard it is.

Methods, each a real search (local Ray, Optuna, Parquet) ended by ``strategy.epoch_budget`` (every iteration
of every trial, the shared dense run once), one 2-thread trial at a time so trials finish in the order they
spend epochs:

- ``tpe_asha``: TPE + ASHA with nas_lth's fidelity-correct searcher (stopped trials told PRUNED);
- ``tpe_asha_ray``: TPE + ASHA with Ray's ``OptunaSearch`` as shipped (a stopped trial told COMPLETE with its
  early value);
- ``random_asha`` and ``random_fifo``: random sampling, with and without ASHA;
- ``lth``: the LTH procedure run sequentially (large_final, end, 20 %/round fc and 10 % output, reset to init,
  full training every round); its recipes are "this schedule for k rounds".

At each budget B (epochs) a method *recommends* the recipe with the best validation accuracy among its
full-budget tickets at <= 3.6 % finished within B epochs. Each recommended recipe is trained again from
scratch with fresh seeds (``--confirm-seeds``, default 1 2 3: recipe seed 0 is the search's) and its mean
test accuracy is its *confirmed quality*; the dense network is confirmed with the same seeds.
``epochs_to_target`` is the epochs spent when the first ticket meeting the target finished (search-time
validation; NaN if none within the budget).

Resumable: each (method, searcher seed) run appends one file under ``benchmarks/results/search_quality/runs/``
and each confirmation (recipe, seed) a row of ``benchmarks/results/search_quality/confirm.parquet``; a rerun
skips what exists. The summary (``benchmarks/results/search_quality/summary.parquet`` and the figure
``reports/search_quality/search_quality.png``) is written from whatever exists and says how complete it is.

    python -m benchmarks.search_quality [--seeds 0 1 2 3 4] [--methods ...] [--epoch-budget 100]
                                        [--budgets 25 50 100] [--summary-only]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.common import REPO, RESULTS, default_data_dir, emit, environment
from nas_lth.space import load_space
from nas_lth.space.schema import SearchSpace

SPACE = REPO / "benchmarks" / "spaces" / "search_quality.yaml"
OUT = RESULTS / "search_quality"
FIGURE = REPO / "reports" / "search_quality" / "search_quality.png"
MAX_WEIGHTS = 0.036
METHODS = {  # name -> (searcher, scheduler, Ray's own OptunaSearch?)
    "tpe_asha": ("tpe", "asha", False),
    "tpe_asha_ray": ("tpe", "asha", True),
    "random_asha": ("random", "asha", False),
    "random_fifo": ("random", "fifo", False),
    "lth": (None, None, False),
}

CONFIRM_COLUMNS = ["recipe", "seed", "status", "weights_remaining", "val_acc", "test_acc", "dense_val_acc",
                   "dense_test_acc", "wall_seconds"]


def _stop_at(v):
    return int(v) if isinstance(v, str) and v.isdigit() else v


def recipe_of(space: SearchSpace, row) -> dict:
    """The full recipe a search row ran (fixed keys + its searched values), as a plain dict."""
    def value(k):
        if k == "stop_at":
            return _stop_at(row[k])
        return int(row[k]) if k in ("rewind_to", "rounds") else row[k]

    return space.recipe({k: value(k) for k in space.dims}).model_dump(mode="json")


# ------------------------------------------------------------------ one run per (method, searcher seed)


def search_run(space: SearchSpace, how: tuple, seed: int, data_dir, epoch_budget: float) -> pd.DataFrame:
    """One search ended by the epoch budget; ``how`` = (searcher, scheduler, Ray's own OptunaSearch?)."""
    from ray.tune.search.optuna import OptunaSearch

    from nas_lth.store import read
    from nas_lth.strategy import SearchOptions, run_search

    searcher, scheduler, ray_own = how
    d = space.to_dict()
    d["strategy"].update(searcher=searcher, scheduler=scheduler, seed=seed, epoch_budget=epoch_budget)
    sp = SearchSpace.from_dict(d, str(SPACE))
    with tempfile.TemporaryDirectory() as storage:
        opts = SearchOptions(space=sp, name="q", storage=storage, data_dir=data_dir, dashboard=False, num_cpus=2,
                             progress_every_s=600.0, quiet=True, searcher_cls=OptunaSearch if ray_own else None)
        run_search(opts)
        trials = read(str(Path(storage) / "q")).trials
    trials = trials.sort_values("finished_at").reset_index(drop=True)
    epochs = (trials.iterations_trained.fillna(0) / trials.iterations_per_epoch).fillna(0)
    out = trials[["trial_id", "status", "weights_remaining", "val_acc", "test_acc", "dense_val_acc",
                  "dense_test_acc", "message", *[k for k in space.dims if k in trials]]].copy()
    out["epochs"], out["cum_epochs"] = epochs, epochs.cumsum()
    out["recipe"] = [json.dumps(recipe_of(space, r), sort_keys=True) if r["status"] == "completed" else None
                     for r in trials.to_dict("records")]
    return out


def lth_run(space: SearchSpace, data, epoch_budget: float) -> pd.DataFrame:
    """The LTH ladder: one training run per round, each round's ticket a recipe of its own (k rounds)."""
    from nas_lth.estimation import TicketRun, recipe_from_dict

    base = space.recipe({"criterion": "large_final", "stop_at": "end", "rewind_to": 0, "rounds": 1}).model_dump(
        mode="json")
    base.update(target_weights=None, prune_rate={"fc": 0.2, "output": 0.1}, eval_rounds="all")
    rounds = int(epoch_budget // base["budget"])  # every round trains a full budget
    run = TicketRun(recipe_from_dict({**base, "rounds": rounds}, "lth"), data)
    rows, dense = [], {}

    def on_round(row):
        if row.round == 0:
            dense.update(val=row.metrics.get("val_acc"), test=row.metrics.get("test_acc"))
        recipe = {**base, "rounds": row.round, "eval_rounds": "last"}  # to confirm: the ticket of round k
        rows.append({"trial_id": f"round{row.round}", "status": "completed" if row.round else "dense",
                     "weights_remaining": row.weights_remaining, "val_acc": row.metrics.get("val_acc"),
                     "test_acc": row.metrics.get("test_acc"), "dense_val_acc": dense["val"],
                     "dense_test_acc": dense["test"], "message": "", "criterion": "large_final", "stop_at": "end",
                     "rewind_to": 0, "rounds": row.round, "cum_epochs": run.cumulative / run.ipe,
                     "recipe": json.dumps(recipe, sort_keys=True) if row.round else None})

    run.on_round = on_round
    run.run()
    out = pd.DataFrame(rows)
    out["epochs"] = out.cum_epochs.diff().fillna(out.cum_epochs)
    return out


def wanted_runs(args) -> set[tuple[str, int]]:
    """(method, searcher seed) of the study; the LTH ladder is deterministic given the recipe seed: one run."""
    return {(m, s) for m in args.methods for s in args.seeds if m != "lth" or s == args.seeds[0]}


def runs(args, space: SearchSpace, methods: dict, out: Path) -> None:
    """Every (method, searcher seed) run not yet stored under ``out/runs``, seed-major (a partial study has
    every method at the first seeds), each written whole when it ends."""
    from nas_lth.data import load_dataset

    (out / "runs").mkdir(parents=True, exist_ok=True)
    data = None
    todo = wanted_runs(args)
    for seed in args.seeds:
        for method in args.methods:
            path = out / "runs" / f"{method}-s{seed}.parquet"
            if (method, seed) not in todo or path.exists():
                continue
            t0 = time.perf_counter()
            print(f"{method}, searcher seed {seed} ...", flush=True)
            if method == "lth":
                data = data or load_dataset("mnist", args.data_dir, seed=0)
                df = lth_run(space, data, args.epoch_budget)
            else:
                df = search_run(space, methods[method], seed, args.data_dir, args.epoch_budget)
            df = df.assign(method=method, searcher_seed=seed, wall_seconds=time.perf_counter() - t0)
            tmp = path.with_suffix(".tmp")
            df.to_parquet(tmp, index=False)
            tmp.replace(path)
            print(f"  {len(df)} trials, {df.cum_epochs.max():.1f} epochs, {time.perf_counter() - t0:.0f} s", flush=True)


# ------------------------------------------------------------------ analysis


def meets_target(df: pd.DataFrame) -> pd.Series:
    return (df.status == "completed") & (df.weights_remaining <= MAX_WEIGHTS) & (df.val_acc >= df.dense_val_acc)


def recommend(df: pd.DataFrame, budget: float) -> str | None:
    """The recipe (JSON) a method recommends after ``budget`` epochs: best validation at <= 3.6 %."""
    ok = df[(df.cum_epochs <= budget) & (df.status == "completed") & (df.weights_remaining <= MAX_WEIGHTS)]
    ok = ok.dropna(subset=["val_acc", "recipe"])
    if ok.empty:
        return None
    return ok.sort_values(["val_acc", "weights_remaining"], ascending=[False, True]).iloc[0]["recipe"]


def epochs_to_target(df: pd.DataFrame) -> float:
    hit = df[meets_target(df)]
    return float(hit.cum_epochs.min()) if len(hit) else float("nan")


def _dense_run(recipe: dict, data):
    """Round 0 alone (the dense network with the recipe's model, data, seed and training)."""
    from nas_lth.estimation import TicketRun, recipe_from_dict

    dense = {**recipe, "rounds": 0, "stop_at": "end", "rewind_to": 0, "eval_rounds": "all"}
    return TicketRun(recipe_from_dict(dense, "dense"), data).run()[0]


def confirm(recipes: list[str], seeds: list[int], data_dir) -> pd.DataFrame:
    """Train each recipe from scratch with each seed (cached per (recipe, seed)); the dense network's metrics
    come from the same runs' round 0."""
    from nas_lth.data import load_dataset
    from nas_lth.estimation import TicketRun, recipe_from_dict

    path = OUT / "confirm.parquet"
    done = pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=CONFIRM_COLUMNS)
    have = set(zip(done.recipe, done.seed, strict=True))
    dense_of: dict = {}  # seed -> round-0 row (every recipe here trains the same dense network)
    for recipe in recipes:
        for seed in seeds:
            if (recipe, seed) in have:
                continue
            r = {**json.loads(recipe), "seed": seed}
            t0 = time.perf_counter()
            data = load_dataset("mnist", data_dir, seed=seed)
            recipe_ = recipe_from_dict(r, "confirm")
            rows = TicketRun(recipe_, data).run()
            final = next((x for x in rows if x.round == recipe_.rounds and x.variant == recipe_.reinit), rows[-1])
            # with eval_rounds: last the run records no round-0 row: the dense network of this seed on its own
            dense = dense_of.get(seed) or dense_of.setdefault(seed, _dense_run(r, data))
            rec = {"recipe": recipe, "seed": seed, "status": final.status, "weights_remaining": final.weights_remaining,
                   "val_acc": final.metrics.get("val_acc"), "test_acc": final.metrics.get("test_acc"),
                   "dense_val_acc": dense.metrics.get("val_acc"), "dense_test_acc": dense.metrics.get("test_acc"),
                   "wall_seconds": time.perf_counter() - t0}
            print(f"  confirm seed {seed}: test {rec['test_acc']:.4f} (dense {rec['dense_test_acc']:.4f}) "
                  f"{r['criterion']} stop_at={r['stop_at']} rounds={r['rounds']} [{rec['wall_seconds']:.0f} s]",
                  flush=True)
            done = pd.concat([done, pd.DataFrame([rec])], ignore_index=True)
            tmp = path.with_suffix(".tmp")
            done.to_parquet(tmp, index=False)
            tmp.replace(path)
    return done


def loaded(args, out: Path) -> tuple[pd.DataFrame, set, set]:
    """(every stored run's rows, the runs wanted, the runs there)."""
    files = sorted((out / "runs").glob("*.parquet"))
    if not files:
        raise SystemExit("no runs yet: run without --summary-only first")
    all_runs = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return all_runs, wanted_runs(args), set(zip(all_runs.method, all_runs.searcher_seed, strict=True))


def summary(args) -> pd.DataFrame:
    all_runs, wanted, have = loaded(args, OUT)
    recs = {(m, s, b): recommend(g, b) for (m, s), g in all_runs.groupby(["method", "searcher_seed"])
            for b in args.budgets}
    conf = confirm(sorted({r for r in recs.values() if r}), args.confirm_seeds, args.data_dir) \
        if not args.no_confirm else pd.DataFrame(columns=CONFIRM_COLUMNS)
    conf = conf[conf.seed.isin(args.confirm_seeds)]
    quality = conf.groupby("recipe").test_acc.mean()
    dense_test = conf.groupby("seed").dense_test_acc.first().mean() if len(conf) else float("nan")
    rows = []
    for (m, s), g in all_runs.groupby(["method", "searcher_seed"]):
        for b in args.budgets:
            r = recs[(m, s, b)]
            rows.append({"method": m, "searcher_seed": s, "budget_epochs": b, "recommended": r,
                         "confirmed_test_acc": quality.get(r, np.nan) if r else np.nan,
                         "epochs_to_target": epochs_to_target(g), "epochs_run": g.cum_epochs.max(),
                         "trials": len(g), "wall_seconds": g.wall_seconds.iloc[0]})
    per_run = pd.DataFrame(rows).assign(confirmed_dense_test_acc=dense_test)
    random_fifo = all_runs[all_runs.method == "random_fifo"]
    full = random_fifo[random_fifo.status == "completed"]
    frac = float(meets_target(full).mean()) if len(full) else float("nan")
    per_run = per_run.assign(random_fraction_meeting_target=frac, complete=wanted <= have,
                             runs_done=len(have & wanted), runs_wanted=len(wanted), **environment())
    emit(per_run, "search_quality", str(OUT / "summary.parquet"), show=[])
    _print(per_run, frac, len(full), dense_test, wanted <= have, len(have & wanted), len(wanted))
    _figure(per_run, dense_test)
    return per_run


def _print(per_run, frac, n_random, dense_test, complete, done, wanted) -> None:
    print(f"\n{'complete' if complete else f'PARTIAL ({done}/{wanted} runs)'}; random recipes meeting the target: "
          f"{100 * frac:.1f} % of {n_random}; confirmed dense test accuracy {100 * dense_test:.2f} %")
    t = per_run.groupby(["method", "budget_epochs"]).agg(
        seeds=("searcher_seed", "nunique"),
        quality_median=("confirmed_test_acc", "median"), quality_min=("confirmed_test_acc", "min"),
        quality_max=("confirmed_test_acc", "max"), recommended=("recommended", lambda r: int(r.notna().sum())))
    print(t.to_string(float_format=lambda v: f"{100 * v:.2f}" if v < 1.5 else f"{v:.1f}"))
    e = per_run.drop_duplicates(["method", "searcher_seed"]).groupby("method").epochs_to_target.agg(
        ["median", "min", "max", lambda x: int(x.notna().sum())])
    e.columns = ["median", "min", "max", "reached"]
    print("\nepochs to target (search-time):\n" + e.to_string(float_format=lambda v: f"{v:.1f}"))
    print("\nthe page's table (reports/search_quality/README.md):\n" + markdown(per_run))


def markdown(per_run: pd.DataFrame) -> str:
    """Per method: epochs to the target (median, range over searcher seeds) and the confirmed test accuracy of the
    recommended recipe at each budget (median, range), as the page's table gives them."""
    lines = ["| method | searcher seeds | epochs to target: median (min-max) | "
             + " / ".join(f"{b:g}" for b in sorted(per_run.budget_epochs.unique()))
             + " epochs: confirmed test acc. %, median (min-max) |", "|---|---:|---|---|"]
    for m, g in per_run.groupby("method", sort=True):
        e = g.drop_duplicates("searcher_seed").epochs_to_target
        cells = []
        for _, q in g.groupby("budget_epochs"):
            a = 100 * q.confirmed_test_acc.dropna()
            cells.append(f"{a.median():.2f} ({a.min():.2f}-{a.max():.2f})" if len(a) else "none yet")
        lines.append(f"| {m} | {g.searcher_seed.nunique()} | {e.median():.1f} ({e.min():.1f}-{e.max():.1f}) | "
                     + " / ".join(cells) + " |")
    return "\n".join(lines) + "\n"


MARKERS = "osD^vP<>X*"


def band_figure(per_run: pd.DataFrame, column: str, ylabel: str, title: str, path: Path, scale: float = 1.0,
                hline: tuple[float, str] | None = None, logy: bool = False,
                units: dict[str, str] | None = None) -> None:
    """``column`` against the budget, one line per method (median over searcher seeds), a band (min-max);
    ``units`` names what ``searcher_seed`` counts for a method that is not a search (default: seeds).

    Methods often coincide (searchers that draw the same first trials): each method has its own marker and is
    shifted a little along the budget axis so that none hides another, and a method equal to one drawn before
    it at every budget (median, min and max) is drawn dashed, without a band of its own, and labelled so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    groups = list(per_run.groupby("method"))
    budgets = sorted(per_run.budget_epochs.unique())
    dodge = 0.012 * (budgets[-1] - budgets[0]) if len(budgets) > 1 else 0.5
    drawn: dict[str, np.ndarray] = {}
    for i, (m, g) in enumerate(groups):
        q = g.groupby("budget_epochs")[column]
        x = sorted(g.budget_epochs.unique())
        values = np.array([(scale * q.median()).reindex(x), (scale * q.min()).reindex(x),
                           (scale * q.max()).reindex(x)], dtype=float)
        same = next((o for o, v in drawn.items() if v.shape == values.shape
                     and np.array_equal(v, values, equal_nan=True)), None)
        drawn[m] = values
        shift = (i - (len(groups) - 1) / 2) * dodge
        unit = (units or {}).get(m, "seed(s)")
        label = f"{m} ({g.searcher_seed.nunique()} {unit})" + (f", identical to {same}" if same else "")
        (line,) = ax.plot(np.asarray(x, dtype=float) + shift, values[0], marker=MARKERS[i % len(MARKERS)],
                          ls=(0, (4, 2)) if same else "-", mfc="white" if same else None, label=label, zorder=3)
        if same is None:
            ax.fill_between(x, values[1], values[2], color=line.get_color(), alpha=0.12)
    if hline is not None and np.isfinite(hline[0]):
        ax.axhline(scale * hline[0], color="k", ls="--", lw=1, label=hline[1])
    ax.set_xlabel("budget (training epochs; markers shifted slightly apart so none hides another)")
    ax.set_ylabel(ylabel)
    if logy:  # e.g. weights remaining: a factor counts the same at every scale
        ax.set_yscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _figure(per_run: pd.DataFrame, dense_test: float) -> None:
    band_figure(per_run, "confirmed_test_acc", "confirmed test accuracy of the recommended recipe (%)",
                "LeNet-300-100 / MNIST tickets at <= 3.6 % weights",
                FIGURE if OUT == RESULTS / "search_quality" else OUT / FIGURE.name, scale=100,
                hline=(dense_test, "dense (confirmed)"))


def study_parser(doc: str, methods: dict, out: Path) -> argparse.ArgumentParser:
    """The arguments both search benchmarks take."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="searcher seeds")
    p.add_argument("--methods", nargs="+", default=list(methods), choices=list(methods))
    p.add_argument("--epoch-budget", type=float, default=100)
    p.add_argument("--budgets", type=float, nargs="+", default=[25, 50, 100])
    p.add_argument("--summary-only", action="store_true", help="no new search runs")
    p.add_argument("--results", type=Path, default=out, help="folder of the per-run files")
    return p


def main(argv=None) -> int:
    p = study_parser(__doc__, METHODS, OUT)
    p.add_argument("--confirm-seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--no-confirm", action="store_true", help="summarise without training confirmations")
    args = p.parse_args(argv)
    globals()["OUT"] = args.results
    torch.set_num_threads(2)
    space = load_space(SPACE)
    if not args.summary_only:
        runs(args, space, METHODS, OUT)
    summary(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
