"""No false alarms: torch autograd, which is right, is never called wrong.

Every torch mode (reverse, forward, functional), at orders 1 and 2, in float64, float32,
float16 and bfloat16, is judged with :func:`harness.check.compare` against the certified
truth on generated trees and points. No entry may get a failing verdict (mismatch,
nan-mismatch, kink-violation) or ``error``. Example counts are modest and derandomized
so CI is repeatable; the big measurement (10,000 cases per mode and dtype) is run outside
CI and reported in the issue.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, seed, settings

from harness.check import compare
from harness.engines.symbolic import SymbolicEngine
from harness.engines.torch_ad import MODES, TorchEngine
from harness.expr import Expr
from harness.ops import DEFAULT_OPS, JUMP_OPS, KINK_OPS
from harness.oracle import FAILING
from harness.strategies import cases

ALARMS = FAILING | {"error"}
TRUTH = SymbolicEngine()
ENGINES = {mode: TorchEngine(mode) for mode in MODES}
EXAMPLES = {"float64": 25, "float32": 25, "float16": 15, "bfloat16": 15}
SEEDS = {"float64": 64, "float32": 32, "float16": 16, "bfloat16": 1016}  # distinct trees per dtype


def _settings(n: int) -> settings:
    # a fixed @seed and no example database make every run draw the same cases
    return settings(
        max_examples=n, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def _alarms(rows: pd.DataFrame) -> str:
    bad = rows[rows["verdict"].isin(ALARMS)]
    cols = ["expr", "point", "var", "mode", "dtype", "order", "value", "truth", "tolerance", "verdict"]
    return bad[cols].head(5).to_string() + "\n" + str(rows.attrs.get("message", ""))


def _judge_every_mode(expr: Expr, pts: np.ndarray, dtype: str, verdicts: Counter[str]) -> None:
    for mode, engine in ENGINES.items():
        for order in (1, 2):
            rows = compare(engine, expr, pts, dtype=dtype, order=order, truth=TRUTH)
            verdicts.update(rows["verdict"])
            assert not rows["verdict"].isin(ALARMS).any(), f"{mode} order {order}:\n{_alarms(rows)}"


@pytest.mark.parametrize("dtype", list(EXAMPLES))
def test_torch_is_never_called_wrong_on_generated_trees(dtype: str) -> None:
    verdicts: Counter[str] = Counter()

    @_settings(EXAMPLES[dtype])
    @seed(SEEDS[dtype])
    @given(cases(DEFAULT_OPS, max_size=10, n_points=8, dtype=dtype))
    def check(case: tuple[Expr, np.ndarray]) -> None:
        _judge_every_mode(*case, dtype, verdicts)

    check()
    # not vacuous: most entries were judged, not set aside as undefined or out of range
    total = sum(verdicts.values())
    assert total >= 100 * len(MODES)
    assert verdicts["ok"] >= 0.8 * total, verdicts


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_conventions_at_kinks_and_jumps_are_never_called_wrong(dtype: str) -> None:
    """With kink and jump ops and points sought on their kinks (kinks="include"), torch's
    choices there (relu'(0) = 0, max's tie split, floor' = 0) are conventions, not errors."""
    verdicts: Counter[str] = Counter()

    @_settings(10)
    @seed(SEEDS[dtype] + 1)
    @given(cases(DEFAULT_OPS + KINK_OPS + JUMP_OPS, max_size=8, n_points=8, dtype=dtype,
                 kinks="include"))
    def check(case: tuple[Expr, np.ndarray]) -> None:
        _judge_every_mode(*case, dtype, verdicts)

    check()
    assert verdicts["ok"] > 0
