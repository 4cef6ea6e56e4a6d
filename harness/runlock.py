"""One writer per run folder: a campaign, a resume, a merge or a report holds the folder's
lock while it writes there, and a second one started on the same folder stops at once with
an error naming the process that holds it, instead of both writing the same part files.

The lock is an advisory ``flock`` on ``RUN_DIR/run.lock`` (POSIX; where ``fcntl`` is missing
nothing is locked). The kernel drops it when its process ends, however it ends, so a killed
run never leaves a folder locked: the file staying behind means nothing by itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: runs are not locked
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "RunFolderBusy", "run_lock"]

LOCK_FILE = "run.lock"
"""The lock's file name inside a run folder."""

_held: set[str] = set()  # folders this process holds: a nested hold of one is free
_waiting: set[str] = set()  # missing folders an outer hold would take the lock of, once made
_handed: dict[str, int | None] = {}  # locks made inside such a hold, kept for it to release


class RunFolderBusy(RuntimeError):
    """Another process holds the run folder's lock."""


@contextlib.contextmanager
def run_lock(run_dir: str | Path, *, create: bool = True) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the ``with`` block, creating the folder if need be (with
    ``create=False`` a missing folder is not made: a hold nested inside that makes it takes
    the lock, and hands it to this hold when it ends, so the folder stays locked until this
    one ends too).

    Raises :class:`RunFolderBusy` at once when another process holds it. Re-entrant within
    one process: the CLI holds a run folder over a run and its report, and the campaign
    inside takes it again (and makes and locks a new folder once its options are checked,
    so that bad options leave no folder behind).
    """
    run_dir = Path(run_dir)
    key = os.path.realpath(run_dir)
    if key in _held:  # the outermost hold releases it
        yield
        return
    if fcntl is None or not (create or run_dir.is_dir()):
        if fcntl is None or key in _waiting:  # nothing to lock, or already waited for
            yield
            return
        _waiting.add(key)
        try:
            yield
        finally:
            _waiting.discard(key)
            if key in _handed:
                _held.discard(key)
                _release(_handed.pop(key))
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = _acquire(run_dir / LOCK_FILE)
    _held.add(key)
    try:
        yield
    finally:
        if key in _waiting:
            _handed[key] = fd  # still held, until the hold that waited for the folder ends
        else:
            _held.discard(key)
            _release(fd)


def _release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # releases the flock


def _acquire(path: Path) -> int | None:
    """The open, flock-ed descriptor of ``path``; its first line names the holder's pid.

    None where the folder cannot hold a lock (read-only, or a file system without
    ``flock``, as some network mounts): the run goes on unlocked, as it would without
    ``fcntl``, and whatever it then cannot write fails as it would have.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise RunFolderBusy(
            f"{path.parent}: another diffharness process{holder} is writing to this run folder "
            "(it holds run.lock); wait for it to finish, stop it, or choose another folder"
        ) from None
    except OSError:  # ENOLCK, EOPNOTSUPP: no locks on this file system
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return fd


def _holder(fd: int) -> str:
    """`` (pid N)`` from the lock file's first line, or nothing when it does not hold one."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").split("\n", 1)[0].strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""
