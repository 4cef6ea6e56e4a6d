"""Limits that data files and long computations cannot pass.

Case files and run folders may come from anyone (see DESIGN.md, "Data files are data"), so
every read of one goes through :func:`read_data_file`: regular files only (a FIFO would
hang, ``/dev/zero`` never ends), at most a stated number of bytes, UTF-8. And every case,
``explain``, ``check --expr`` and each replayed case runs under :func:`time_limit`, whose
:class:`TimeLimitExceeded` derives from ``BaseException`` so that no ``except Exception``
inside an engine or a library swallows it.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "DataFileError",
    "MAX_CASES",
    "MAX_POINTS",
    "TimeLimitExceeded",
    "check_seconds",
    "import_lazy_modules",
    "read_data_bytes",
    "read_data_file",
    "time_limit",
]

MAX_CASES = 1_000_000
"""Most generated cases one campaign may ask for (``--cases``, ``config.json`` n_cases)."""
MAX_POINTS = 1_000
"""Most points one case may hold (a case file's ``points``, ``n_points`` of a campaign)."""


class DataFileError(ValueError):
    """A data file is not a regular file, too large, or not UTF-8; the message names it."""


def read_data_file(path: Path, limit: int, *, follow_symlinks: bool = True) -> str:
    """The text of ``path``, refusing anything but a regular file of at most ``limit`` bytes.

    ``follow_symlinks=False`` also refuses a symlink: a run folder's own files are written by
    diffharness and are never links, so one that is points outside the folder.
    """
    data = read_data_bytes(path, limit, follow_symlinks=follow_symlinks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataFileError(f"{path}: not UTF-8 text") from None


def read_data_bytes(path: Path, limit: int, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of ``path``, with the checks of :func:`read_data_file`."""
    try:
        st = os.stat(path) if follow_symlinks else os.lstat(path)
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        raise DataFileError(f"{path}: {kind}; expected a regular file, refused")
    if st.st_size > limit:
        raise DataFileError(f"{path}: {st.st_size} bytes is larger than the limit of {limit} bytes")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # swapped since the stat above
                raise DataFileError(f"{path}: not a regular file; expected a regular file, refused")
            data = fh.read(limit + 1)
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > limit:
        raise DataFileError(f"{path}: larger than the limit of {limit} bytes")
    return data


class TimeLimitExceeded(BaseException):
    """A case or command ran past its time limit.

    A ``BaseException``, like ``KeyboardInterrupt``: engines and libraries catch
    ``Exception`` to turn their failures into values, and must not turn this one into a row
    and go on running.
    """


def check_seconds(seconds: float, name: str = "--timeout") -> float:
    """``seconds`` if it is a finite number > 0, else ``ValueError`` naming ``name``."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ValueError(f"{name}={seconds!r}: expected a number of seconds > 0, e.g. 60")
    if not (abs(seconds) < 1e300 and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{name}={seconds!r}: expected a finite number of seconds > 0, e.g. 60")
    return float(seconds)


def import_lazy_modules() -> None:
    """Import what libraries import on first use, before any :func:`time_limit`: an import
    cut off by the alarm leaves a half-made module behind, and every later case that needs
    it fails (torch.func imports torch._dynamo on its first call)."""
    import torch._dynamo  # noqa: F401


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`TimeLimitExceeded` in this thread once ``seconds`` have passed.

    Uses SIGALRM, so it works in the main thread on POSIX only; elsewhere the body runs
    unbounded (campaign workers are also watched from the parent, which kills one that
    runs too long). The alarm fires between Python bytecodes: a single long call into C
    code ends before it is raised.
    """
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        # Raised inside a __del__ or a callback, the exception is only printed ("unraisable"):
        # fire again soon until one reaches the body; leaving the block disarms the timer.
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        raise TimeLimitExceeded(f"ran past its time limit of {seconds:g} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
