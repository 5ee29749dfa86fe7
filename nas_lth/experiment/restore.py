"""Restore a Tune experiment where it lies now.

``Tuner.restore`` brings the callbacks back from ``tuner.pkl`` as they were pickled, with the location the
experiment had when it started: a moved or copied experiment (synced from S3 to another machine, ``mv``,
``cp -a``) would write its remaining rows to the old place. The results callback is pointed at the
experiment's current location before the restored tuner runs.
"""

from __future__ import annotations

from nas_lth.experiment.callback import ResultsCallback
from nas_lth.store.fs import Location


def restore_tuner(uri: str, trainable, experiment: Location):
    from ray import tune

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
