"""Question III as a replicated grid (issue 28 item 1): which masks are tickets - by criterion, by the point in
training where the mask is chosen, and against the sanity checks of Frankle et al. (ICLR 2021)?

LeNet-300-100 / MNIST (the LTH training settings, ``--epochs`` per training run). For every registered weight
criterion (Zhou et al.'s ten, SNIP, GraSP, SynFlow) x stopping point (the mask chosen at iteration 0, 100, 500,
2,000 or at the end of training; the pruning-at-init criteria SNIP, GraSP and SynFlow at iteration 0 only, where
they apply) x sparsity (7 % and 1.9 % of the fc weights; the output layer loses 10 % per round) x schedule
(one-shot; iterative: 5 rounds to the same sparsity, for the stopping point at the end only - the CPU budget) x
seed, the ticket is trained from the masks with four starts: ``original`` (reset to init), ``random_reinit``,
``reshuffle`` (the kept init values permuted within each layer) and ``signed_constant`` (+-the layer's init std with
the original signs). Round 0 (the dense run) is trained once per seed and shared (snapshots at every stopping
point).

One row per (criterion, stop_at, sparsity, schedule, variant, seed): test accuracy at early stop, the early-stop
iteration, and the training iterations spent to find the mask (rounds x the stopping iteration). Each unit
(criterion, stop_at, sparsity, schedule, seed: its four variants) is appended to
``benchmarks/results/criteria_grid.parquet`` when it finishes; a rerun skips the units stored, so the grid
resumes. ``--summary-only`` writes ``reports/criteria_grid/table.md`` from the stored rows: means with 95 %
t-intervals over seeds, how complete the grid is, and the three questions as paired comparisons over seeds
(:func:`answers`: early masks against end-of-training masks, pruning-at-init criteria against random and LTH masks,
each control against the original init; paired t-tests, Benjamini-Hochberg within each question).

    python -m benchmarks.criteria_grid [--seeds 0 1 2] [--epochs 4] [--threads 1]
    python -m benchmarks.criteria_grid --summary-only
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.common import REPO, RESULTS, append_parquet, default_data_dir, environment

OUT = RESULTS / "criteria_grid.parquet"
REPORT = REPO / "reports" / "criteria_grid"
AT_INIT = ("snip", "grasp", "synflow")  # pruning-at-init criteria: their scores are defined at initialisation
STOPS = (0, 100, 500, 2000, "end")
SPARSITIES = (0.07, 0.019)
ITERATIVE_ROUNDS = 5
CONTROLS = ("random_reinit", "reshuffle", "signed_constant")
KEY = ["criterion", "stop_at", "sparsity", "schedule", "seed", "epochs"]  # a unit; another budget is another unit


ONLY: list[str] = []  # --criteria: a subset (a smoke test); empty: every registered criterion


def criteria() -> list[str]:
    from nas_lth.pruning import CRITERIA

    return [c for c in CRITERIA.names() if not ONLY or c in ONLY]


def units(seeds: list[int], epochs: float) -> list[dict]:
    """Every (criterion, stop_at, sparsity, schedule, seed) of the grid, seed-major (a partial grid has every cell
    at the first seeds)."""
    out = []
    for seed in seeds:
        for sparsity in SPARSITIES:
            for crit in criteria():
                for stop in ((0,) if crit in AT_INIT else STOPS):
                    out.append({"criterion": crit, "stop_at": str(stop), "sparsity": sparsity, "schedule": "one_shot",
                                "seed": seed, "epochs": float(epochs)})
                    if stop == "end":
                        out.append({"criterion": crit, "stop_at": "end", "sparsity": sparsity,
                                    "schedule": "iterative", "seed": seed, "epochs": float(epochs)})
    return out


def recipe_of(unit: dict):
    from nas_lth.estimation import recipe_from_dict

    rounds = 1 if unit["schedule"] == "one_shot" else ITERATIVE_ROUNDS
    stop = unit["stop_at"]
    return recipe_from_dict({
        "model": "lenet300_100", "dataset": "mnist", "criterion": unit["criterion"],
        "stop_at": int(stop) if stop.isdigit() else stop, "rewind_to": 0, "reinit": "original",
        "target_weights": unit["sparsity"], "prune_rate": {"output": 0.1}, "rounds": rounds, "eval_rounds": "last",
        "budget": unit["epochs"], "seed": unit["seed"],
        "training": {"optimizer": "adam", "lr": 1.2e-3, "batch_size": 60, "eval_every": 459},
    }, f"criteria grid {unit}")


def run_unit(unit: dict, data, trajectory) -> pd.DataFrame:
    from nas_lth.estimation import TicketRun

    recipe = recipe_of(unit)
    t0 = time.perf_counter()
    rows = TicketRun(recipe, data, controls=CONTROLS, trajectory=trajectory).run()
    last = [r for r in rows if r.round == recipe.rounds]
    out = []
    for r in last:
        m = r.metrics
        out.append({**unit, "variant": r.variant, "status": r.status, "weights_remaining": r.weights_remaining,
                    "test_acc_at_early_stop": m.get("test_acc_at_early_stop"), "test_acc": m.get("test_acc"),
                    "val_acc_at_early_stop": m.get("val_acc_at_early_stop"), "early_stop_iter": r.early_stop_iter,
                    "mask_iter": r.mask_iter, "iterations_to_mask": recipe.rounds * int(r.mask_iter or 0),
                    "dense_test_acc_at_early_stop": trajectory.metrics.get("test_acc_at_early_stop"),
                    "dense_early_stop_iter": trajectory.early_stop_iter, "mask_digest": r.mask_digest,
                    "same_ticket_as": "", "unit_wall_seconds": time.perf_counter() - t0})
    return pd.DataFrame(out)


def mask_digest(unit: dict, data, trajectory) -> str | None:
    """The digest of the mask a one-shot unit trains, selected without training (None for an iterative unit,
    whose later masks depend on its own rounds)."""
    from nas_lth import pruning
    from nas_lth.estimation import first_masks

    if unit["schedule"] != "one_shot":
        return None
    return pruning.digest(first_masks(recipe_of(unit), data, trajectory))


def same_ticket(unit: dict, source: pd.DataFrame, digest: str) -> pd.DataFrame:
    """The rows of ``unit`` when an earlier unit of the same seed and sparsity trained the same mask from the same
    init: every variant then trains bit for bit the same run (the controls' generators depend on the seed and
    round only), so its rows are copied, marked with the unit that trained them."""
    first = source.iloc[0]
    return source.assign(**{k: unit[k] for k in KEY}, mask_digest=digest,
                         same_ticket_as=f"{first.criterion} @ {first.stop_at}", unit_wall_seconds=0.0)


def run(args) -> None:
    from nas_lth.data import load_dataset
    from nas_lth.estimation.trajectory import compute_trajectory

    torch.set_num_threads(args.threads)
    done = set()
    if OUT.exists():
        old = pd.read_parquet(OUT)
        done = {tuple(r) for r in old[KEY].astype(str).to_numpy()}
    grid = units(args.seeds, args.epochs)
    todo = [u for u in grid if tuple(str(u[k]) for k in KEY) not in done]
    print(f"{len(todo)} of {len(grid)} units to run", flush=True)
    cache: dict[int, tuple] = {}
    trained: dict[tuple, pd.DataFrame] = {}  # (seed, sparsity, mask digest) -> the rows of the unit that trained it
    for i, unit in enumerate(todo):
        seed = unit["seed"]
        if seed not in cache:  # the dense run of this seed, with a snapshot at every stopping point
            cache.clear()
            data = load_dataset("mnist", args.data_dir, seed=seed)
            recipe = recipe_of(unit)
            budget = int(round(args.epochs * recipe.iterations_per_epoch(len(data.train))))
            traj = compute_trajectory(recipe, data, snapshot_iters={s for s in STOPS if s != "end"} | {budget})
            cache[seed] = (data, traj)
            trained = stored_tickets(data, traj, seed, args.epochs)
        data, traj = cache[seed]
        digest = mask_digest(unit, data, traj)
        key = (seed, unit["sparsity"], digest)
        if digest is not None and key in trained:
            df = same_ticket(unit, trained[key], digest)
        else:
            df = run_unit(unit, data, traj).assign(**environment())
            if digest is not None:
                trained[key] = df
        append_parquet(OUT, df)
        acc = df.set_index("variant").test_acc_at_early_stop
        print(f"[{i + 1}/{len(todo)}] {unit['criterion']:<22} stop {unit['stop_at']:>4} {100 * unit['sparsity']:.1f}% "
              f"{unit['schedule']:<9} seed {seed}: " + " ".join(f"{v} {100 * a:.2f}" for v, a in acc.items())
              + f" [{df.unit_wall_seconds.iloc[0]:.0f} s]"
              + (f" (the ticket of {df.same_ticket_as.iloc[0]})" if df.same_ticket_as.iloc[0] else ""), flush=True)


def stored_tickets(data, trajectory, seed: int, epochs: float) -> dict[tuple, pd.DataFrame]:
    """The one-shot units of ``seed`` already stored that trained their mask, by (seed, sparsity, mask digest).
    One-shot rows stored before the digest was recorded get it from their recipe (selection only, no training),
    written back once (the summary groups cells by it); their other values stay as they were."""
    if not OUT.exists():
        return {}
    every = pd.read_parquet(OUT)
    for col, empty in (("mask_digest", None), ("same_ticket_as", "")):
        if col not in every:
            every[col] = empty
    mine = (every.seed == seed) & (every.epochs == float(epochs)) & (every.schedule == "one_shot")
    missing = mine & every.mask_digest.isna()
    for _, rows in every[missing].groupby(["criterion", "stop_at", "sparsity"], sort=False):
        every.loc[rows.index, "mask_digest"] = mask_digest({k: rows.iloc[0][k] for k in KEY}, data, trajectory)
    if missing.any():
        tmp = OUT.with_suffix(".tmp")
        every.to_parquet(tmp, index=False)
        tmp.replace(OUT)
    out: dict[tuple, pd.DataFrame] = {}
    trained = every[mine & (every.same_ticket_as.fillna("") == "")]
    for _, rows in trained.groupby(["criterion", "stop_at", "sparsity"], sort=False):
        out.setdefault((seed, rows.iloc[0].sparsity, rows.iloc[0].mask_digest), rows)
    return out


def ci95(x: pd.Series) -> tuple[float, float]:
    """Mean and the half-width of its 95 % t-interval (nan with one value)."""
    from scipy import stats

    x = x.dropna()
    if len(x) < 2:
        return float(x.mean()) if len(x) else float("nan"), float("nan")
    return float(x.mean()), float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))


# ------------------------------------------------------------------ the questions, paired over seeds

MARGIN_PP = 0.5  # an early mask "matches" the end-of-training one when shown no more than this worse (pp)
SANITY = [("snip", "0"), ("grasp", "0"), ("synflow", "0"), ("large_final", "0"), ("large_final", "end"),
          ("magnitude_increase", "end"), ("random", "end")]  # the masks whose controls the page compares


def paired(df: pd.DataFrame, a: dict, b: dict) -> dict:
    """Cell ``a`` minus cell ``b`` (each: criterion, stop_at, variant, and the shared sparsity and schedule) in test
    accuracy at early stop, paired by seed (a seed fixes the init and the dense run both cells start from): mean
    difference in pp, the half-width of its 95 % t-interval, the paired t-test's two-sided p, and n (seeds with
    both cells)."""
    from scipy import stats

    def cell(c):
        sel = df
        for k, v in c.items():
            sel = sel[sel[k] == v]
        return sel.set_index("seed").test_acc_at_early_stop

    both = pd.concat([cell(a), cell(b)], axis=1, keys=["a", "b"]).dropna()
    d = 100 * (both.a - both.b)
    n = len(d)
    if n < 2:
        return {"n": n, "diff_pp": float(d.mean()) if n else float("nan"), "ci95_pp": float("nan"), "p": float("nan")}
    half = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n))
    # equal differences (up to float noise) have no spread to test against
    p = float(stats.ttest_rel(both.a, both.b).pvalue) if np.ptp(d.to_numpy()) > 1e-9 else float("nan")
    return {"n": n, "diff_pp": float(d.mean()), "ci95_pp": half, "p": p}


def same_tickets(df: pd.DataFrame) -> dict[float, list[list[str]]]:
    """Per sparsity, the one-shot cells ("criterion @ stop_at") that train the same ticket: equal mask digests in
    every seed they have (so the same runs, bit for bit; the grid trains one and copies it, ``same_ticket_as``).
    Groups of two or more, each in grid order."""
    if "mask_digest" not in df:
        return {}
    one = df[(df.schedule == "one_shot") & (df.variant == "original") & df.mask_digest.notna()]
    order = {c: i for i, c in enumerate(criteria())}
    stops = {str(s): i for i, s in enumerate(STOPS)}
    out = {}
    for sparsity, g in one.groupby("sparsity", sort=False):
        by_sig: dict[tuple, list[tuple]] = {}
        for (crit, stop), c in g.groupby(["criterion", "stop_at"]):
            sig = tuple(sorted(zip(c.seed, c.mask_digest, strict=True)))
            by_sig.setdefault(sig, []).append((order.get(crit, len(order)), stops[stop], f"{crit} @ {stop}"))
        groups = [[name for *_, name in sorted(cells)] for cells in by_sig.values() if len(cells) > 1]
        if groups:
            out[sparsity] = sorted(groups)
    return out


def answers(df: pd.DataFrame) -> pd.DataFrame:
    """The issue's three questions as paired comparisons (one-shot masks; each at both sparsities):

    - ``early``: a mask chosen at iteration 0, 100, 500 or 2,000 against the same criterion's mask from the end
      of training (every criterion that scores trained weights; not where both cells train the same ticket);
    - ``pai``: SNIP, GraSP and SynFlow at initialisation against a random mask, and against the LTH mask
      (``large_final`` at the end of training);
    - ``sanity``: each control (random reinit, reshuffled init values, signed constants) against the original
      init of the same mask (Frankle et al., ICLR 2021), for the masks in ``SANITY``.

    ``q`` is the Benjamini-Hochberg adjusted p within each question (scipy's ``false_discovery_control``)."""
    from scipy.stats import false_discovery_control

    one = df[df.schedule == "one_shot"]
    rows = []
    groups = same_tickets(df)
    for sparsity, g in one.groupby("sparsity", sort=False):
        trained = sorted({c for c in g.criterion.unique() if c not in AT_INIT and c != "random"})
        same = {name: i for i, grp in enumerate(groups.get(sparsity, [])) for name in grp}
        for crit in trained:
            for stop in (str(s) for s in STOPS[:-1]):
                if f"{crit} @ end" in same and same.get(f"{crit} @ {stop}") == same[f"{crit} @ end"]:
                    continue  # the same ticket (large_init, small_init): no comparison to make
                early, end = ({"criterion": crit, "stop_at": s, "variant": "original"} for s in (stop, "end"))
                rows.append({"question": "early", "sparsity": sparsity, "a": f"{crit} @ {stop}",
                             "b": f"{crit} @ end", **paired(g, early, end)})
        for crit in (c for c in AT_INIT if c in set(g.criterion)):
            for other, stop in (("random", "0"), ("large_final", "end")):
                rows.append({"question": "pai", "sparsity": sparsity, "a": f"{crit} @ 0", "b": f"{other} @ {stop}",
                             **paired(g, {"criterion": crit, "stop_at": "0", "variant": "original"},
                                      {"criterion": other, "stop_at": stop, "variant": "original"})})
        for crit, stop in SANITY:
            for control in CONTROLS:
                rows.append({"question": "sanity", "sparsity": sparsity, "a": f"{crit} @ {stop}: {control}",
                             "b": f"{crit} @ {stop}: original",
                             **paired(g, {"criterion": crit, "stop_at": stop, "variant": control},
                                      {"criterion": crit, "stop_at": stop, "variant": "original"})})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out = out[out.n > 0].reset_index(drop=True)
    out["q"] = np.nan
    for _, idx in out.groupby("question").groups.items():
        ok = out.loc[idx, "p"].dropna()
        if len(ok):
            out.loc[ok.index, "q"] = false_discovery_control(ok.to_numpy())
    return out


def render_answers(ans: pd.DataFrame) -> list[str]:
    titles = {"early": "Early masks against the end-of-training mask (same criterion)",
              "pai": "Pruning-at-init criteria against a random mask and against the LTH mask",
              "sanity": "Sanity checks: each control against the original init of the same mask"}
    lines = []
    for question, title in titles.items():
        g = ans[ans.question == question] if len(ans) else ans
        if g.empty:
            continue
        lines += [f"## {title}", "", "Test accuracy at early stop, a minus b in pp, paired by seed: mean with the "
                  "95 % t-interval's half-width; p: paired t-test; q: Benjamini-Hochberg within this table.", "",
                  "| fc weights % | a | b | a - b (pp) | p | q | n |", "|---:|---|---|---:|---:|---:|---:|"]
        for r in g.itertuples():
            ci = f" +- {r.ci95_pp:.2f}" if np.isfinite(r.ci95_pp) else ""
            lines.append(f"| {100 * r.sparsity:.1f} | {r.a} | {r.b} | {r.diff_pp:+.2f}{ci} | {_fmt_p(r.p)} | "
                         f"{_fmt_p(r.q)} | {r.n} |")
        lines.append("")
        if question == "early":
            lines += render_earliest(earliest(g))
    return lines


def earliest(early: pd.DataFrame) -> pd.DataFrame:
    """Per criterion and sparsity, the first stopping point from which the early masks are shown within
    ``MARGIN_PP`` of the end-of-training mask: it and every later early stop have a 95 % interval of (early - end)
    whose lower end is above -``MARGIN_PP`` (non-inferiority at that margin). "end" when even the 2,000-iteration
    mask is not; "-" without an interval (one seed)."""
    parts = early.a.str.split(" @ ", expand=True)  # "criterion @ stop"
    rows = []
    for (sparsity, crit), g in early.assign(criterion=parts[0], stop=parts[1]).groupby(["sparsity", "criterion"],
                                                                                        sort=False):
        g = g.set_index("stop").reindex([str(s) for s in STOPS[:-1]]).dropna(subset=["diff_pp"])
        stop, r = "-", None
        if not g.empty and np.isfinite(g.ci95_pp).all():
            ok = (g.diff_pp - g.ci95_pp > -MARGIN_PP).to_numpy()
            first = next((i for i in range(len(ok)) if ok[i:].all()), None)
            stop, r = ("end", None) if first is None else (g.index[first], g.iloc[first])
        rows.append({"sparsity": sparsity, "criterion": crit, "stop": stop,
                     "diff_pp": np.nan if r is None else r.diff_pp, "ci95_pp": np.nan if r is None else r.ci95_pp})
    return pd.DataFrame(rows)


def render_earliest(e: pd.DataFrame) -> list[str]:
    if e.empty:
        return []
    lines = [f"### The earliest mask shown within {MARGIN_PP:g} pp of the end-of-training mask", "",
             "Per criterion: the first stopping point (iterations) from which this mask and every later early one "
             f"have a 95 % interval of (early - end) whose lower end is above -{MARGIN_PP:g} pp; in brackets its "
             "mean difference and half-width (pp). `end`: not even the 2,000-iteration mask; `-`: one seed, no "
             "interval.",
             "", "| criterion | " + " | ".join(f"{100 * s:.1f} % of fc weights" for s in e.sparsity.unique()) + " |",
             "|---|" + "---:|" * e.sparsity.nunique()]
    for crit, g in e.groupby("criterion", sort=False):
        cells = []
        for sparsity in e.sparsity.unique():
            r = g[g.sparsity == sparsity]
            if r.empty:
                cells.append("")
                continue
            r = r.iloc[0]
            cells.append(r.stop if not np.isfinite(r.diff_pp) else f"{r.stop} ({r.diff_pp:+.2f} +- {r.ci95_pp:.2f})")
        lines.append(f"| {crit} | " + " | ".join(cells) + " |")
    return lines + [""]


def render_same(groups: dict[float, list[list[str]]]) -> list[str]:
    if not groups:
        return []
    lines = ["## Cells that train the same ticket", "",
             "Equal masks from the same init in every seed, so bit for bit the same runs: the grid trains the first "
             "and copies its rows to the others (`same_ticket_as`). Criteria that read only the initial weights "
             "select the same mask at every stopping point; at iteration 0 the final weights are the initial "
             "ones.", "", "| fc weights % | cells |", "|---:|---|"]
    for sparsity, grps in groups.items():
        lines += [f"| {100 * sparsity:.1f} | {', '.join(g)} |" for g in grps]
    return lines + [""]


def _fmt_p(p: float) -> str:
    return "-" if not np.isfinite(p) else f"{p:.2g}"


def render(df: pd.DataFrame, seeds: list[int], epochs: float) -> str:
    """The tables of the rows at ``epochs`` per training run (rows at another budget are another study)."""
    df = df[df.epochs == float(epochs)]
    want = units(seeds, epochs)
    have = {tuple(r) for r in df[KEY].astype(str).to_numpy()}
    n_done = sum(tuple(str(u[k]) for k in KEY) in have for u in want)
    head = "Complete" if n_done == len(want) else f"PARTIAL ({n_done} of {len(want)} units)"
    lines = ["# Criteria grid: the tables (generated)", "",
             "Generated by `python -m benchmarks.criteria_grid --summary-only` from "
             "`benchmarks/results/criteria_grid.parquet`; do not edit.", "",
             f"{head}, {epochs:g} epochs per training run. Test accuracy at early stop (%), mean over seeds with "
             "the 95 % t-interval's half-width; n = seeds.",
             ""]
    dense = df.groupby("seed").dense_test_acc_at_early_stop.first()
    m, h = ci95(dense)
    lines += [f"Dense network: {100 * m:.2f} +- {100 * h:.2f} (n = {len(dense)}).", ""]
    trained = df[df.same_ticket_as.fillna("") == ""] if "same_ticket_as" in df else df
    if len(trained) and "early_stop_iter" in trained:
        last = int(trained.early_stop_iter.max())  # the budget's last evaluation
        at_last = int((trained.early_stop_iter == last).sum())
        lines += [f"Early stop at the last evaluation (iteration {last}) in {at_last} of {len(trained)} trained runs "
                  f"({100 * at_last / len(trained):.0f} %)"
                  + (": at this budget most runs are still improving, so the tables compare accuracy after a fixed "
                     "training time more than converged accuracy." if 2 * at_last > len(trained) else "."), ""]
    if "unit_wall_seconds" in trained:
        hours = trained.groupby(KEY).unit_wall_seconds.first().sum() / 3600
        so_far = "" if n_done == len(want) else " so far"
        lines += [f"Wall time of the trained units{so_far}: {hours:.1f} h on one thread each (the dense runs, one per "
                  "seed, and the copied cells not counted).", ""]
    for (sparsity, schedule), g in df.groupby(["sparsity", "schedule"], sort=False):
        lines += [f"## {100 * sparsity:.1f} % of the fc weights, {schedule.replace('_', '-')}", "",
                  "| criterion | stop_at | original | random_reinit | reshuffle | signed_constant | n |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        order = {c: i for i, c in enumerate(criteria())}
        stops = {str(s): i for i, s in enumerate(STOPS)}
        cells = sorted(g.groupby(["criterion", "stop_at"]), key=lambda kv: (order[kv[0][0]], stops[kv[0][1]]))
        for (crit, stop), c in cells:
            vals = []
            for v in ("original", *CONTROLS):
                mm, hh = ci95(c[c.variant == v].test_acc_at_early_stop)
                vals.append(f"{100 * mm:.2f} +- {100 * hh:.2f}" if np.isfinite(hh) else f"{100 * mm:.2f}")
            lines.append(f"| {crit} | {stop} | " + " | ".join(vals) + f" | {c.seed.nunique()} |")
        lines.append("")
    lines += render_same(same_tickets(df))
    lines += render_answers(answers(df))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=float, default=4.0, help="epochs per training run")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--summary-only", action="store_true")
    p.add_argument("--out", type=Path, default=OUT, help="the rows (Parquet)")
    p.add_argument("--criteria", nargs="+", default=[], help="a subset of the criteria (a smoke test)")
    args = p.parse_args(argv)
    globals()["OUT"] = args.out
    ONLY[:] = args.criteria
    if not args.summary_only:
        run(args)
    if OUT.exists():
        REPORT.mkdir(parents=True, exist_ok=True)
        page = REPORT / "table.md" if args.out == RESULTS / "criteria_grid.parquet" else args.out.with_suffix(".md")
        page.write_text(render(pd.read_parquet(OUT), args.seeds, args.epochs))
        print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
