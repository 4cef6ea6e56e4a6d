"""Engines that fail the way real ones do, for the campaign's fault tests.

Worker processes import them as ``fault_engines:<name>`` (this folder is on the tests'
``sys.path``). Each behaves as ``torch:reverse`` (same name, same values) except on the
case ``sin(x)``, or while a token file sits beside the run's ``parts/`` folder.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import numpy as np

from harness import campaign
from harness.engines.torch_ad import TorchEngine
from harness.expr import to_text

__all__ = ["DiesOnSine", "DiesOnceWhileTokenExists", "IgnoresAlarmOnSine", "SwallowsAlarmOnSine"]

DIE_TOKEN = "die-once"


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class DiesOnceWhileTokenExists(TorchEngine):
    """Kills its worker process on the first call that finds the run's ``die-once`` token
    (and removes it), as the OOM killer would: the case must be rerun, not hang the run."""

    def __init__(self) -> None:
        super().__init__("reverse")

    def derivatives(self, expr: Any, points: np.ndarray, *, dtype: str, order: int = 1) -> Any:
        parts = campaign._WORKER_PARTS
        token = parts.parent / DIE_TOKEN if parts is not None else None
        if token is not None:
            try:
                token.unlink()  # atomic: of two workers that both meet the token, one dies
            except FileNotFoundError:
                pass
            else:
                _die()
        return super().derivatives(expr, points, dtype=dtype, order=order)


class DiesOnSine(TorchEngine):
    """Kills its worker process every time it meets ``sin(x)``."""

    def __init__(self) -> None:
        super().__init__("reverse")

    def derivatives(self, expr: Any, points: np.ndarray, *, dtype: str, order: int = 1) -> Any:
        if to_text(expr) == "sin(x)":
            _die()
        return super().derivatives(expr, points, dtype=dtype, order=order)


class SwallowsAlarmOnSine(TorchEngine):
    """On ``sin(x)``, sleeps inside ``except Exception`` (the way engines turn their failures
    into values), which swallowed the old time limit."""

    def __init__(self) -> None:
        super().__init__("reverse")

    def derivatives(self, expr: Any, points: np.ndarray, *, dtype: str, order: int = 1) -> Any:
        if to_text(expr) == "sin(x)":
            for _ in range(600):
                try:
                    time.sleep(1)
                except Exception:  # noqa: BLE001, S110 - the point of this engine
                    pass
        return super().derivatives(expr, points, dtype=dtype, order=order)


class IgnoresAlarmOnSine(TorchEngine):
    """On ``sin(x)``, blocks SIGALRM and sleeps, as a long call into C code that never returns
    to Python would: only the parent's watchdog can stop it."""

    def __init__(self) -> None:
        super().__init__("reverse")

    def derivatives(self, expr: Any, points: np.ndarray, *, dtype: str, order: int = 1) -> Any:
        if to_text(expr) == "sin(x)":
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(600)
        return super().derivatives(expr, points, dtype=dtype, order=order)
