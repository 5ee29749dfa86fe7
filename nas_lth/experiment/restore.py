"""Restore a Tune experiment where it lies now.

``Tuner.restore`` brings the callbacks back from ``tuner.pkl`` as they were pickled, with the location the
experiment had when it started: a moved or copied experiment (synced from S3 to another machine, ``mv``,
``cp -a``) would write its remaining rows to the old place. The results callback is pointed at the
experiment's current location before the restored tuner runs, and a :class:`CheckpointGuard` is added
that points trials whose last checkpoint is gone at one that exists. Nothing of Tune's pickled state is
loaded before its signatures are checked (``nas_lth.experiment.signing``).

Tune's state pickles nas_lth's objects by module name; an experiment started before the experiment folder's
bookkeeping moved out of ``nas_lth.strategy`` names the old modules, which are aliased while it is read.
"""

from __future__ import annotations

import importlib
import posixpath
import sys
from contextlib import contextmanager

from nas_lth.errors import UserError
from nas_lth.experiment.callback import ResultsCallback
from nas_lth.experiment.checkpoints import CheckpointGuard
from nas_lth.experiment.signing import KEY_ENV, TUNER_FILE, StateSigner, key_path, sign, state_files, unsigned
from nas_lth.experiment.snapshots import has_state, set_aside_torn
from nas_lth.store.fs import Location, locate

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


def repoint_search_state(tune_dir: Location) -> bool:
    """Point the storage that Tune's pickled search state hands every *new* trial at the folder where the
    experiment lies now. ``Tuner.restore`` re-points its run config, but the search generator's experiment
    spec (``search_gen_state-*.json``, a pickle) keeps the old place: after ``mv`` new trials failed to set up
    their storage, after ``cp -a`` they wrote their folders and checkpoints into the original. Returns whether
    a file was rewritten (whole, then renamed)."""
    import pickle

    parent, name = posixpath.split(tune_dir.path.rstrip("/"))
    changed = False
    for f in tune_dir.list():
        if not f.name.startswith("search_gen_state-"):
            continue
        try:
            with old_module_names():
                state = pickle.loads(f.read_bytes())  # Tune's own state, which the restore unpickles anyway
            storage = state["experiment"].spec["storage"]
        except Exception:  # noqa: BLE001 - torn (set aside before) or another layout: Tune's behaviour stands
            continue
        if storage.storage_fs_path == parent and storage.experiment_dir_name == name:
            continue
        storage.storage_fs_path, storage.experiment_dir_name = parent, name
        storage.storage_filesystem = tune_dir.fs
        if hasattr(storage.syncer, "storage_filesystem"):
            storage.syncer.storage_filesystem = tune_dir.fs
        f.write_bytes(pickle.dumps(state))
        changed = True
    return changed


def restorable(tune_dir: Location, trust: bool = False) -> bool:
    """Whether ``tune_dir`` holds Tune state to resume from, once snapshots cut short by a kill or a full disk,
    or not signed with this user's key, are set aside (``nas_lth.experiment.snapshots``, ``.signing``). An
    unsigned ``tuner.pkl`` is refused unless ``trust``."""
    from ray import tune

    if not tune.Tuner.can_restore(tune_dir.uri):
        return False
    if trust:  # the user vouches for this copy: sign it as it is, so later resumes need no flag
        sign(tune_dir)
    bad = frozenset(unsigned(tune_dir))  # nothing is unpickled before this
    if TUNER_FILE in bad:
        raise UserError(f"--resume: {tune_dir.join(TUNER_FILE).uri} is not signed with this user's key ({key_path()} "
                        f"or ${KEY_ENV}): Tune's state is pickled and could run code, so it is not loaded; if this "
                        "copy is yours or trusted (moved from another machine or user, or made before nas_lth signed "
                        "its state), pass --trust-state")
    set_aside_torn(tune_dir, untrusted=bad)
    if not has_state(tune_dir):
        return False
    if repoint_search_state(tune_dir):
        sign(tune_dir, [f for f in state_files(tune_dir) if "search_gen_state-" in f.path])
    return True


def add_runtime_callbacks(tuner, tune_dir: Location) -> None:
    """Callbacks a run needs but ``tuner.pkl`` must not keep (they hold the place the experiment lies now):
    the checkpoint guard (restored runs) and the state signer. Added after the tuner is made or restored."""
    local = getattr(tuner, "_local_tuner", None)  # Ray 2.60: the driver-side TunerInternal
    if local is None:
        raise RuntimeError("cannot add nas_lth's Tune callbacks (Ray's Tuner internals changed?)")
    run_config = local.get_run_config()
    kept = [cb for cb in run_config.callbacks or [] if not isinstance(cb, CheckpointGuard | StateSigner)]
    run_config.callbacks = [*kept, CheckpointGuard(), StateSigner(tune_dir)]


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
    add_runtime_callbacks(tuner, locate(uri))
    # Tune's saved trial states, before it runs anything: the trials it finished must have their rows
    from ray.tune import ExperimentAnalysis

    saved = ExperimentAnalysis(uri).trials
    ours[0].restore_missing(saved)
    ours[0].find_orphans(saved)
    return tuner, ours[0]
