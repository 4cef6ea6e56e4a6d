"""Tests for harness.forkserver: workers fork from a server that imported what they need."""

from __future__ import annotations

import sys
from multiprocessing import forkserver
from typing import Any

from harness.forkserver import PRELOAD, fork_context, start_fork_server


def _send_loaded_modules(conn: Any) -> None:
    conn.send([name for name in PRELOAD if name in sys.modules])
    conn.close()


def test_a_worker_forked_after_an_early_start_has_the_preloaded_modules_already() -> None:
    start_fork_server()
    pid = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    assert pid is not None
    ctx = fork_context()
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_send_loaded_modules, args=(child,))
    process.start()
    child.close()
    assert parent.recv() == list(PRELOAD)  # imported in the server, before this worker ran
    process.join(timeout=60)
    assert process.exitcode == 0
    assert forkserver._forkserver._forkserver_pid == pid  # the same server, started once
