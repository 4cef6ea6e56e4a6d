"""No false alarms: torch autograd, which is right, is never called wrong.

Every torch mode (reverse, forward, functional), at orders 1 and 2, in float64, float32,
float16 and bfloat16, is judged with :func:`harness.check.compare` against the certified
truth on generated trees and points. No entry may get a failing verdict (mismatch,
nan-mismatch, kink-violation) or ``error``; ``inaccurate`` (accuracy lost to torch's
cancelling formulas, tanh' = 1 - y*y in the tails) is not a false alarm but a finding,
counted and allowed here. Example counts are modest and seeded so CI
is repeatable; the big measurement (10,000 cases per mode and dtype) is run outside CI and
reported in the issue.

One exception is not a false alarm: torch's softplus returns x itself above 20, so in
float64 its derivative is 1 where the truth is 1 - 2e-9 (at 20) or 1 - 1e-14 (at 32).
The harness reports that, by design; float64 searches here leave softplus out and
:func:`test_torchs_softplus_shortcut_is_reported_in_float64_only` pins it.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, seed, settings

from harness.check import compare
from harness.engines.torch_ad import EAGER_MODES, TorchEngine
from harness.expr import Call, Expr, Var
from harness.ops import DEFAULT_OPS, JUMP_OPS, KINK_OPS, REACH_OPS
from harness.schema import FAILING
from harness.strategies import cases
from harness.truth import SymbolicEngine

pytestmark = pytest.mark.slow  # run all with `pytest`, the fast loop with `-m "not slow"`

ALARMS = (FAILING - {"inaccurate"}) | {"error"}
TRUTH = SymbolicEngine()
ENGINES = {mode: TorchEngine(mode) for mode in EAGER_MODES}
EXAMPLES = {"float64": 40, "float32": 40, "float16": 20, "bfloat16": 20}
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


def _ops(dtype: str, ops: tuple[str, ...] = DEFAULT_OPS) -> tuple[str, ...]:
    return tuple(o for o in ops if o != "softplus") if dtype == "float64" else ops


@pytest.mark.parametrize("dtype", list(EXAMPLES))
def test_torch_is_never_called_wrong_on_generated_trees(dtype: str) -> None:
    verdicts: Counter[str] = Counter()

    @_settings(EXAMPLES[dtype])
    @seed(SEEDS[dtype])
    @given(cases(_ops(dtype), max_size=10, n_points=8, dtype=dtype))
    def check(case: tuple[Expr, np.ndarray]) -> None:
        _judge_every_mode(*case, dtype, verdicts)

    check()
    # not vacuous: most entries were judged, not set aside as undefined or out of range
    total = sum(verdicts.values())
    assert total >= 100 * len(EAGER_MODES)
    assert verdicts["ok"] >= 0.8 * total, verdicts


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_conventions_at_kinks_and_jumps_are_never_called_wrong(dtype: str) -> None:
    """With kink and jump ops and points sought on their kinks (kinks="include"), torch's
    choices there (relu'(0) = 0, max's tie split, floor' = 0) are conventions, not errors."""
    verdicts: Counter[str] = Counter()
    # the core kink and jump ops: at the reach ops' kinks torch has real bugs (README)
    core = tuple(o for o in DEFAULT_OPS + KINK_OPS + JUMP_OPS if o not in REACH_OPS)

    @_settings(10)
    @seed(SEEDS[dtype] + 1)
    @given(cases(_ops(dtype, core), max_size=8, n_points=8,
                 dtype=dtype, kinks="include"))
    def check(case: tuple[Expr, np.ndarray]) -> None:
        _judge_every_mode(*case, dtype, verdicts)

    check()
    assert verdicts["ok"] > 0


@pytest.mark.parametrize("mode", EAGER_MODES)
def test_torchs_softplus_shortcut_is_reported_in_float64_only(mode: str) -> None:
    """softplus'(x) = sigmoid(x) = 1 - 1.9e-9 at 20.0625; torch returns exactly 1 there,
    about 9e6 float64 ulps off but far below float32's unit roundoff (6e-8)."""
    expr = Call("softplus", (Var("x"),))
    pts = np.array([[20.0625], [3.0]])
    in64 = compare(ENGINES[mode], expr, pts, dtype="float64", truth=TRUTH)
    assert in64["value"].tolist()[0] == 1.0
    assert in64["verdict"].tolist() == ["mismatch", "ok"]
    assert set(compare(ENGINES[mode], expr, pts, dtype="float32", truth=TRUTH)["verdict"]) == {"ok"}
