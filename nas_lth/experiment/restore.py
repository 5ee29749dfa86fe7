"""Restore a Tune experiment where it lies now.

``Tuner.restore`` brings the callbacks back from ``tuner.pkl`` as they were pickled, with the location the
experiment had when it started: a moved or copied experiment (synced from S3 to another machine, ``mv``,
``cp -a``) would write its remaining rows to the old place. The results callback is pointed at the
experiment's current location before the restored tuner runs.

Tune's state pickles nas_lth's objects by module name; an experiment started before the experiment folder's
bookkeeping moved out of ``nas_lth.strategy`` names the old modules, which are aliased while it is read.
"""

from __future__ import annotations

import importlib
import sys
from contextlib import contextmanager

from nas_lth.experiment.callback import ResultsCallback
from nas_lth.store.fs import Location

# module names of nas_lth 0.1 experiments (before the experiment room) -> where those classes live now
MOVED = {f"nas_lth.strategy.{old}": f"nas_lth.experiment.{new}" for old, new in (
    ("broker", "broker"), ("callback", "callback"), ("journal", "journal"), ("memo", "memo"),
    ("progress", "progress"), ("report", "trial_report"), ("restore", "restore"), ("stage", "stage"),
    ("summary", "summary"), ("tickets", "tickets"))}


@contextmanager
def old_module_names():
    """While Tune unpickles its state: the moved modules answer to their old names too."""
    added = [old for old in MOVED if old not in sys.modules]
    for old in added:
        sys.modules[old] = importlib.import_module(MOVED[old])
    try:
        yield
    finally:
        for old in added:
            sys.modules.pop(old, None)


def restore_tuner(uri: str, trainable, experiment: Location):
    from ray import tune

    with old_module_names():
        tuner = tune.Tuner.restore(uri, trainable, resume_unfinished=True, resume_errored=True)
    local = getattr(tuner, "_local_tuner", None)  # Ray 2.60: the driver-side TunerInternal
    callbacks = (local.get_run_config().callbacks or []) if local is not None else []
    ours = [cb for cb in callbacks if isinstance(cb, ResultsCallback)]
    if not ours:  # never write rows somewhere else silently
        raise RuntimeError("restored Tune experiment has no nas_lth results callback to re-point "
                           "(Ray's Tuner internals changed?)")
    for cb in ours:
        cb.experiment = experiment
    # Tune's saved trial states, before it runs anything: the trials it finished must have their rows
    from ray.tune import ExperimentAnalysis

    ours[0].restore_missing(ExperimentAnalysis(uri).trials)
    return tuner, ours[0]
