"""A snapshot of an experiment's tables: one Parquet file per table (``trials/``, ``curves/``, ``rounds/``) and the
space (``space.json``) in another folder. The folder is itself an experiment folder that :func:`~nas_lth.store.read`
and ``python -m nas_lth.report`` accept, small enough to commit beside a report so that the report can be made
again from a committed run (``python -m nas_lth.report EXP -o reports/NAME --with-data``). Rows keep their
``finished_at``, so the finishing order survives a copy that loses file times (git does)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from nas_lth.store.fs import locate
from nas_lth.store.reader import SPACE_FILE, finishing_times, read, recorded_space, trial_file_times

TABLES = ("trials", "curves", "rounds")


def snapshot(experiment: str, dest: str | Path) -> Path:
    """Write the snapshot of ``experiment`` into ``dest`` (its tables replaced whole); returns ``dest``."""
    res = read(experiment)
    dest = Path(dest)
    trials = res.all_trials.copy()
    if len(trials):  # older rows have no finished_at: their file's time is the only record, and a copy loses it
        trials["finished_at"] = finishing_times(trials, trial_file_times(locate(experiment)))
    tables = {"trials": trials, "curves": res.curves, "rounds": res.rounds}
    for name in TABLES:
        folder = dest / name
        if folder.exists():
            shutil.rmtree(folder)  # a snapshot of the experiment as it is now, not merged with an older one
        df = tables[name]
        if df.empty:
            continue
        folder.mkdir(parents=True)
        sort = [c for c in ("trial_id", "round", "run", "iteration") if c in df]
        df = df.sort_values(sort, kind="stable").reset_index(drop=True) if sort else df
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), folder / f"{name}.parquet",
                       compression="zstd")
    space = recorded_space(experiment)
    if space:
        (dest / SPACE_FILE).write_text(json.dumps(space, sort_keys=True, indent=1))
    return dest
