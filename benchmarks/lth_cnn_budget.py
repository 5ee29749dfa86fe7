"""Which conclusions of a short-budget CNN ladder survive a longer budget (issue 28 item 3).

Two folders of ``benchmarks.lth_cnn`` ladders of one model, e.g. the 1-epoch ladder (``lth_cnn``: 15 rounds at
the protocol's rates) and the 4-epoch one (``lth_cnn_long``: 5 rounds at the rates of three short rounds in one,
so that its round k has the per-layer density of the short ladder's round 3k). Rounds are matched by the weights
they keep (the nearest, within ``MATCH_TOL`` relative); at each matched sparsity, per seed: the ticket minus the
seed's own dense network and the ticket minus its random reinit (pp), and how many runs stopped at the budget's
last evaluation (a run still improving when the budget ends measures learning speed more than accuracy).
Only complete ladders (``Ladder.complete``) are read, so a partial one never enters the table.

    python -m benchmarks.lth_cnn_budget --model conv2 --short lth_cnn 15 --long lth_cnn_long 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from scipy import stats

from benchmarks.common import REPO, RESULTS
from benchmarks.lth_cnn import PROTOCOLS, stored_ladders

MATCH_TOL = 0.02  # relative difference in weights kept under which two rounds count as the same sparsity


def ladder_rows(folder: Path, model: str, rounds: int) -> pd.DataFrame:
    """The rows of the complete ladders of ``model`` in ``folder`` (rounds up to ``rounds``)."""
    ladders = [lad for lad in stored_ladders(folder, [model], []) if lad.model == model]
    stored = {lad: lad.rows() for lad in ladders}  # each ladder's file read once
    done = [stored[lad] for lad in ladders if lad.complete(rounds, stored[lad])]
    if not done:
        return pd.DataFrame()
    rows = pd.concat(done, ignore_index=True)
    return rows[rows["round"] <= rounds]


def budget_end(rows: pd.DataFrame) -> int:
    """The iteration every run of the ladder ends at: the dense run's length (a late-reset run starts later on
    the same clock and ends there too)."""
    return int(rows[rows["round"] == 0].iterations.max())


def last_eval(rows: pd.DataFrame) -> pd.Series:
    """Per run: did it stop at its budget's last evaluation."""
    return rows.early_stop_iter >= budget_end(rows)


def per_seed(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (seed, round): weights kept, the ticket's gains over its dense network and its reinit (pp)."""
    dense = rows[rows["round"] == 0].set_index("seed").test_acc_at_early_stop
    t = rows[(rows["round"] > 0) & (rows.variant == "original")].set_index(["seed", "round"])
    r = rows[rows.variant == "random_reinit"].set_index(["seed", "round"])
    out = pd.DataFrame({"weights": t.weights_remaining,
                        "vs_dense": 100 * (t.test_acc_at_early_stop - dense.reindex(t.index.get_level_values("seed"))
                                           .to_numpy()),
                        "vs_reinit": 100 * (t.test_acc_at_early_stop - r.test_acc_at_early_stop.reindex(t.index))})
    return out.reset_index()


def _stat(x: pd.Series) -> str:
    """Mean (min to max) [p of a one-sample t-test against 0, from 3 seeds]."""
    x = x.dropna()
    if x.empty:
        return ""
    text = f"{x.mean():+.2f}" if len(x) < 2 else f"{x.mean():+.2f} ({x.min():+.2f} to {x.max():+.2f})"
    if len(x) >= 3 and x.std() > 0:
        text += f", p = {stats.ttest_1samp(x, 0).pvalue:.2g}"
    return text


def match(short: pd.DataFrame, long: pd.DataFrame) -> list[tuple[int, int]]:
    """(short round, long round) pairs that keep the same share of the weights (within ``MATCH_TOL``)."""
    ws = short.groupby("round").weights_remaining.mean()
    wl = long.groupby("round").weights_remaining.mean()
    pairs = []
    for rl, w in wl.items():
        rs = (ws - w).abs().idxmin()
        if abs(ws[rs] - w) <= MATCH_TOL * w:
            pairs.append((int(rs), int(rl)))
    return pairs


def render(model: str, short: pd.DataFrame, long: pd.DataFrame, labels: tuple[str, str]) -> str:
    ps, pl = per_seed(short), per_seed(long)
    lines = [f"## {model}: A = {labels[0]}, B = {labels[1]}", "",
             "Per matched sparsity, paired by seed: the ticket minus the seed's dense network and minus the reinit of "
             "the same masks, test accuracy at early stop in pp, mean (min to max over seeds), p of a one-sample "
             "t-test against 0 from 3 seeds on.", "",
             "| weights % | A: ticket - dense | A: ticket - reinit | B: ticket - dense | B: ticket - reinit "
             "| seeds A / B |",
             "|---:|---:|---:|---:|---:|---:|"]
    for rs, rl in match(short, long):
        if rl == 0:
            continue
        a, b = ps[ps["round"] == rs], pl[pl["round"] == rl]
        lines.append(f"| {100 * b.weights.mean():.1f} | {_stat(a.vs_dense)} | {_stat(a.vs_reinit)} | "
                     f"{_stat(b.vs_dense)} | {_stat(b.vs_reinit)} | {a.seed.nunique()} / {b.seed.nunique()} |")
    lines += ["", "Runs that stopped at their budget's last evaluation (still improving when it ended):", "",
              "| ladder | iterations per run | runs | at the last evaluation |", "|---|---:|---:|---:|"]
    for label, rows in zip(labels, (short, long), strict=True):
        at_last = last_eval(rows)
        lines.append(f"| {label} | {budget_end(rows)} | {len(rows)} | {int(at_last.sum())} "
                     f"({100 * at_last.mean():.0f} %) |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--short", nargs=2, metavar=("FOLDER", "ROUNDS"), default=["lth_cnn", "15"],
                   help="the short-budget ladders: a folder under benchmarks/results and their rounds")
    p.add_argument("--long", nargs=2, metavar=("FOLDER", "ROUNDS"), default=["lth_cnn_long", "5"])
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--out", type=Path, default=REPO / "reports" / "lth_cnn_long" / "budget.md")
    p.add_argument("--model", default="conv2", choices=list(PROTOCOLS))
    args = p.parse_args(argv)
    (fs, rs), (fl, rl) = args.short, args.long
    for flag, folder, rounds in (("--short", fs, rs), ("--long", fl, rl)):
        if not (args.results / folder).is_dir() or not rounds.isdigit():
            print(f"lth_cnn_budget: {flag} {folder} {rounds}: expected a folder of ladders under {args.results} "
                  "and a whole number of rounds", file=sys.stderr)
            return 2
    short = ladder_rows(args.results / fs, args.model, int(rs))
    long = ladder_rows(args.results / fl, args.model, int(rl))
    if short.empty or long.empty:
        print(f"no complete {args.model} ladder in {fs if short.empty else fl}: nothing compared")
        return 0
    labels = (f"{fs} ({budget_end(short)} it.)", f"{fl} ({budget_end(long)} it.)")
    text = (f"# {args.model}: a short budget against a long one (generated)\n\n"
            f"Generated by `python -m benchmarks.lth_cnn_budget --model {args.model} --short {fs} {rs} --long {fl} "
            f"{rl}` from the complete ladders in `benchmarks/results/{fs}/` and `benchmarks/results/{fl}/`; do not "
            "edit.\n\n" + render(args.model, short, long, labels))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
