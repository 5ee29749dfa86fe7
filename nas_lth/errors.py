"""User-facing errors: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import TypeVar

EXIT_USAGE = 2


class UserError(Exception):
    """Bad input from the user (file, key or value). The message is a single line that names
    what was wrong and what is allowed."""


class DataError(UserError):
    """A dataset file is missing, truncated, corrupt or fails its checksum."""


F = TypeVar("F", bound=Callable[..., int | None])


def cli_entry(fn: F) -> F:
    """Wrap a CLI ``main`` so that a :class:`UserError` becomes ``error: ...`` on stderr and
    exit code 2. Anything else is a bug and keeps its traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            msg = " ".join(str(exc).split())  # always one line
            # a file name with undecodable bytes carries lone surrogates, which no stream can print
            msg = msg.encode("utf-8", "backslashreplace").decode("utf-8")
            print(f"error: {msg}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        except BrokenPipeError:  # `... | head`: the reader left; not an error of ours
            sys.stderr.close()
            raise SystemExit(0) from None

    return wrapper  # type: ignore[return-value]


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the house error format: one ``error: ...`` line on stderr and exit code 2
    (argparse's own prints a usage block first)."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {' '.join(message.split())} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
