"""Tune's experiment snapshots that a killed driver or a full disk left torn.

Each driver run writes one set of snapshot files, named by the run's start (``experiment_state-<run>.json``,
then ``searcher-state-<run>.pkl`` and ``callback-states-<run>.pkl``, and ``search_gen_state-<run>.json``),
and rewrites them in place every few seconds, not atomically. A SIGKILL or ENOSPC in the middle of that leaves
the newest set cut short, and ``Tuner.restore`` fails on it (``JSONDecodeError``). Before a restore, each
newest set with a torn file is moved aside into ``<experiment>/torn/``, so Tune restores from the previous
whole one; what that set's run did after it is recovered from the rows (a stored row is final, and a trial
Tune no longer knows keeps its row: ``ResultsCallback.find_orphans``).
"""

from __future__ import annotations

import json
import re

from nas_lth.store.fs import Location

SNAPSHOT = re.compile(r"^(experiment_state|searcher-state|callback-states|search_gen_state)-(?P<run>.+)\.(json|pkl)$")
ASIDE = "torn"


def is_torn(name: str, data: bytes) -> bool:
    """An empty file, JSON that does not parse, or a pickle (a ``.pkl``, or Tune's ``search_gen_state-*.json``,
    which is one) without its final STOP opcode (``.``): every pickle ends with it, and a cut-short one almost
    never does. Pickles are not loaded here."""
    if not data:
        return True
    if name.endswith(".json") and not data.startswith(b"\x80"):  # search_gen_state-*.json is a pickle
        try:
            json.loads(data)
        except ValueError:
            return True
        return False
    return not data.endswith(b".")


def runs(experiment: Location) -> dict[str, list[Location]]:
    """Snapshot files by run, oldest run first (the names sort by start time, as Tune picks the newest)."""
    out: dict[str, list[Location]] = {}
    for loc in experiment.list():
        m = SNAPSHOT.match(loc.name)
        if m:
            out.setdefault(m.group("run"), []).append(loc)
    return dict(sorted(out.items()))


def set_aside_torn(experiment: Location, untrusted: frozenset[str] = frozenset()) -> list[str]:
    """Move each newest run's snapshot set with a torn file into ``torn/`` (kept, never deleted) until the
    newest one is whole (and, with ``untrusted`` names, signed: ``nas_lth.experiment.signing``); returns the
    runs set aside. With every set torn none is left: the experiment has no
    Tune state to restore (:func:`has_state`)."""
    sets = runs(experiment)
    moved: list[str] = []
    for run in reversed(list(sets)):
        files = sets[run]
        if not any(f.name in untrusted or is_torn(f.name, f.read_bytes()) for f in files):
            break
        aside = experiment.join(ASIDE)
        aside.mkdir()
        for f in files:
            experiment.fs.move(f.path, aside.join(f.name).path)
        moved.append(run)
    if moved:
        then = "resuming from the run before" if has_state(experiment) else "no whole snapshot is left"
        print(f"Tune's snapshot of run(s) {', '.join(moved)} was cut short or not signed (a killed driver or a full "
              f"disk): moved to {experiment.join(ASIDE).uri}; {then}", flush=True)
    return moved


def has_state(experiment: Location) -> bool:
    """Whether a whole experiment snapshot is there for ``Tuner.restore`` (after :func:`set_aside_torn`)."""
    return any(f.name.startswith("experiment_state-") and f.name.endswith(".json")
               for files in runs(experiment).values() for f in files)
