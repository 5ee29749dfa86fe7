"""The end-of-search summary: best tickets, Pareto front, where the results are, what sharing saved."""

from __future__ import annotations

import pandas as pd

from nas_lth.experiment.trial_report import REPLAY_MESSAGES
from nas_lth.store import read
from nas_lth.store.analysis import (
    best_tickets,
    full_fidelity,
    ladder_tickets,
    pareto_front,
    round_tickets,
    unique_recipes,
)
from nas_lth.store.confirmed import confirmation, format_table
from nas_lth.store.constraints import describe, feasible_rows
from nas_lth.store.pareto import curve_marks, front, hypervolume_curve, hypervolume_of, reference_point
from nas_lth.store.reader import recorded_constraints, recorded_references, recorded_within

SHOW = ["trial_id", "criterion", "stop_at", "rewind_to", "reinit", "rounds", "weights_remaining", "val_acc",
        "test_acc", "early_stop_iter", "latency_ms", "latency_form", "trials"]


def _table(df: pd.DataFrame) -> str:
    if df.empty:
        return "  (none: no trial ran its full budget)"
    cols = [c for c in SHOW if c in df.columns]
    if "prune_rate_fc" in df and df["prune_rate_fc"].nunique() > 1:  # a searched rate (ladders): shown
        cols.insert(cols.index("rounds") if "rounds" in cols else len(cols), "prune_rate_fc")
    out = df[cols].copy()
    if "weights_remaining" in out:
        out["weights_remaining"] = (100 * out["weights_remaining"]).map(lambda v: f"{v:.2f}%")
    if "early_stop_iter" in out:
        out["early_stop_iter"] = out["early_stop_iter"].astype("Int64")
    for c in ("val_acc", "test_acc"):
        if c in out:
            out[c] = out[c].map(lambda v: "-" if pd.isna(v) else f"{v:.4f}")
    if "latency_ms" in out:
        if out["latency_ms"].isna().all():  # searched without a latency objective
            out = out.drop(columns=[c for c in ("latency_ms", "latency_form") if c in out])
        else:
            out["latency_ms"] = out["latency_ms"].map(lambda v: "-" if pd.isna(v) else f"{v:.3g}")
    return out.to_string(index=False)


def _print_front(trials: pd.DataFrame, objectives: list[tuple[str, str]], references: dict | None = None,
                 constraints: list | None = None, rounds: pd.DataFrame | None = None) -> None:
    """The front, its hypervolume and the hypervolume against epochs; with ladders (``rounds``) every completed
    round of every ladder is a ticket, else each full-budget trial."""
    ladders = rounds is not None and not rounds.empty
    tickets = ladder_tickets(trials, rounds) if ladders else None
    done = unique_recipes(tickets if ladders else full_fidelity(trials))
    names = ", ".join(f"{m} ({mode})" for m, mode in objectives)
    which = "every round of every ladder" if ladders else "full budget only"
    print(f"\nPareto front of the objectives {names} ({which}):")
    ref = reference_point(done, objectives, references)  # from every ticket: a constraint does not move it
    if constraints:
        ok = feasible_rows(done, constraints)
        print(f"constraints {'; '.join(describe(c) for c in constraints)}: {len(done) - len(ok)} of {len(done)} "
              f"{'tickets' if ladders else 'full-budget tickets'} miss them and are left out")
        done = ok
    print(_table(front(done, objectives).sort_values(objectives[0][0], ascending=objectives[0][1] == "min")))
    hv = hypervolume_of(done, objectives, references=ref)
    print(f"hypervolume {hv:.4f} (reference point: " + ", ".join(f"{m} {v:.4g}" for m, v in ref.items())
          + "; weights remaining on a log10 scale)")
    curve = hypervolume_curve(trials, objectives, references, constraints, tickets)
    if len(curve) > 1:
        marks = curve_marks(curve)
        print("hypervolume vs epochs spent: " + ", ".join(f"{r.epochs:.0f} ep -> {r.hypervolume:.4f}" for r in marks))


def _print_confirmed(res, metric: str) -> None:
    verdict = confirmation(res.trials, res.confirm, res.rounds, metric, recorded_within(res.location))
    if verdict is None:
        return
    n = int((verdict.table["entry"] == "recipe").sum())
    print(f"\nconfirmed: the top {n} recipes retrained with fresh seeds, ranked by {verdict.ranked_by} "
          f"(95% t intervals; `recipe of` = the search trial):")
    print(format_table(verdict).to_string(index=False))
    for line in verdict.lines():
        print(f"  {line}")


def print_summary(outcome) -> None:
    exp = outcome.experiment
    try:
        res = read(exp.uri)
    except Exception as exc:  # noqa: BLE001 - a summary must never hide the search's own outcome
        print(f"\n(no results to summarise: {exc})")
        return
    trials = res.trials
    if trials.empty:
        print("\n== no trials finished")
        return
    counts = ", ".join(f"{n} {s}" for s, n in trials.status.value_counts().items())
    print(f"\n== {len(trials)} trials finished: {counts}")
    replays = int(trials.message.fillna("").str.startswith(REPLAY_MESSAGES[0]).sum()) if "message" in trials else 0
    if replays:  # samples the searcher spent on recipes it had already seen (their results were reused)
        print(f"{replays} of {len(trials)} samples repeated a recipe already run: its result was reused, nothing "
              "trained, and the searcher was told FAIL (replay_of) so it is not learned twice")
    dense = trials.dense_val_acc.dropna()
    if len(dense):
        print(f"dense network: val_acc {dense.iloc[0]:.4f}")
    if res.rounds.empty:
        print("\nbest tickets (full budget):")
        print(_table(best_tickets(trials)))
    else:
        print("\nbest tickets (each completed ladder's answer, by the search's objective; rounds = its round):")
        print(_table(ladder_answers(trials, res.rounds)))
    objectives = getattr(outcome, "objectives", None)
    if objectives:
        uri = outcome.experiment.uri
        _print_front(trials, objectives, recorded_references(uri), recorded_constraints(uri), res.rounds)
    elif not res.rounds.empty:  # ladders: every round of every ladder is a ticket
        print("\nPareto front (val_acc vs weights remaining, every round of every ladder):")
        print(_table(pareto_front(unique_recipes(round_tickets(trials, res.rounds)))))
    else:
        print("\nPareto front (val_acc vs weights remaining, full budget only):")
        print(_table(pareto_front(unique_recipes(trials))))
    shared = trials.shared_iterations.fillna(0).sum()
    own = trials.iterations_trained.fillna(0).sum()
    if shared > 0:  # from the table, so a resumed search reports the whole experiment
        reused = int((trials.shared_iterations > 0).sum())
        # the trials that trained a dense trajectory for everyone (a stopped one reports no trajectory key)
        computed = int((trials.trajectory_iterations_trained.fillna(0) > 0).sum())
        print(f"\nshared dense trajectory: computed {computed}x, reused by {reused} trials: "
              f"{int(own):,} training iterations instead of {int(shared + own):,} without sharing "
              f"({100 * shared / max(shared + own, 1):.0f}% saved)")
        _print_prefixes(res.rounds, trials)
    _print_confirmed(res, outcome.metric)
    if getattr(outcome, "warm_started", 0):
        print(f"\nwarm start: the study began with {outcome.warm_started} completed trial(s) of an earlier experiment")
    print(f"\nParquet: {exp.uri}/trials  and  {exp.uri}/curves")
    print(f"report:  {report_command(exp.uri)}")
    if (trials.status == "completed").any():
        print(f"ticket:  python -m nas_lth.export {exp.uri} --best -o ticket.pt  (all: {exp.uri}/tickets)")


def ladder_answers(trials: pd.DataFrame, rounds: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The round each completed ladder answers with (its trials row: the last round, or the sparsest within the
    bound), best objective first."""
    done = trials[trials.status == "completed"][["trial_id", "weights_remaining", "objective"]]
    tickets = round_tickets(trials, rounds).drop(columns=["objective"], errors="ignore")
    out = tickets.merge(done, on=["trial_id", "weights_remaining"], how="inner")
    return unique_recipes(out).sort_values(["objective", "weights_remaining"], ascending=[False, True]).head(n)


def _print_prefixes(rounds, trials) -> None:
    """What shared round prefixes saved: the rounds ladders continued from other ladders' stored states (a replayed
    recipe's rounds, all reused, are the replay's, not prefixes)."""
    if rounds.empty:
        return
    replays = set(trials.trial_id[trials.message.fillna("").str.startswith(REPLAY_MESSAGES)])
    hit = rounds[rounds.reused.fillna(False).astype(bool) & (rounds["round"] >= 1) & ~rounds.trial_id.isin(replays)]
    if len(hit):
        print(f"round prefixes: {len(hit)} rounds reused by {hit.trial_id.nunique()} ladders from other ladders' "
              f"stored rounds ({int(hit.iterations_trained.sum()):,} of the iterations saved)")


def report_command(uri: str) -> str:
    """The report command of an experiment and where it writes by default (as ``nas_lth.report.default_out_dir``
    decides; not imported here: it loads matplotlib)."""
    out = f"./report-{uri.rstrip('/').rsplit('/', 1)[-1]}/ here" if "://" in uri else f"{uri}/report/"
    return f"python -m nas_lth.report {uri}  (writes {out})"
