"""A full disk under the experiment: one line, not a traceback per trial, and nothing recorded as failed.

When the storage fills up, every trial fails on its next checkpoint (``OSError: [Errno 28]``), Tune logs each
failure with its traceback, and its own snapshot writes fail too. None of that is the recipe's fault: a trial
that failed on a full disk gets no ``failed`` row (``--resume`` runs it again, as it re-runs errored trials),
Tune's log of it shrinks to one line, and the search ends with one error line that says to free space and
resume. Snapshots cut short on the way are set aside on resume (``nas_lth.experiment.snapshots``).
"""

from __future__ import annotations

import errno
import logging

MARK = "No space left on device"


def is_disk_full(exc: BaseException | str | None) -> bool:
    """Whether an exception (or its text: Ray hands the driver a trial's error as text) is a full disk."""
    if exc is None:
        return False
    if isinstance(exc, str):
        return MARK in exc or "[Errno 28]" in exc
    seen = set()
    while exc is not None and id(exc) not in seen:  # the error, its causes and contexts
        seen.add(id(exc))
        if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or MARK in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class OneLine(logging.Filter):
    """A record of a full-disk failure, without its traceback: Tune's "Trial task failed" carries it as
    ``exc_info``, Ray's background syncer ("Last sync command failed") pastes it into the message text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and is_disk_full(record.exc_info[1]):
            record.exc_info, record.exc_text = None, None
            record.msg, record.args = "%s: no space left on device", (record.getMessage(),)
        elif isinstance(record.msg, str) and "Traceback" in record.msg and is_disk_full(record.msg):
            first = record.getMessage().split("Traceback", 1)[0].strip().rstrip(":")
            record.msg, record.args = "%s: no space left on device", (first,)
        return True


# the loggers that report a full disk under the experiment, each with the traceback it came with
LOGGERS = ("ray.tune.execution.tune_controller", "ray.train._internal.syncer")


def quiet_tune_failures() -> None:
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLine) for f in logger.filters):
            logger.addFilter(OneLine())
