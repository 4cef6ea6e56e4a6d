"""The process campaign workers fork from, started as early as a command can.

Worker processes come from a ``forkserver`` (a fresh interpreter that has imported
everything a worker needs), not from forking the parent, which may hold threads and
torch's thread pools. Importing torch, the harness and ``torch._dynamo`` there takes about
three seconds; :func:`start_fork_server` lets that happen while the command's own process
imports the same modules and draws its cases, instead of after.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing import forkserver
from typing import Any

__all__ = ["PRELOAD", "fork_context", "start_fork_server"]

PRELOAD: tuple[str, ...] = ("harness.campaign", "torch._dynamo")
"""Imported once in the fork server, so that no worker pays for them: the campaign and
everything it imports, and torch._dynamo, which torch.func loads on its first use."""


def fork_context() -> Any:
    """The ``forkserver`` multiprocessing context, its server set to import :data:`PRELOAD`."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


def start_fork_server() -> None:
    """Start the fork server now, without waiting for its imports: the first worker
    started later waits only for what is left of them."""
    fork_context()
    forkserver.ensure_running()
