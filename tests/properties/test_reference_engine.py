"""The rounding model is neither too strict nor too lax for an engine that errs as much as
a careful one may (:mod:`reference_engine`: relative error up to 4 u per library result
and u per arithmetic result, in the dtype's standard model).

* Never called wrong: with its errors drawn at random, or aligned the worst way for
  each entry, every entry the careful reference computes is ``ok``; the reference that
  computes tanh', sigmoid', ... by their usual formulas is never worse than
  ``inaccurate`` (its cancellation is what that verdict reports).
* Not loose: each tolerance is within a small factor of the largest error its engine
  can make (the formula tolerance for the formula reference, the ideal one for the
  careful reference), at orders 1 and 2 (the reference runs hyper-dual arithmetic for
  Hessians, each product and sum of the second-order chain rule rounded).
  The model multiplies its first-order bound by ``SAFETY`` = 2 and counts each library
  function's own partial (4 u) and the chain's roundings as that engine does, so the
  median ratio is about 2.5 in float32, float16 and bfloat16; the test asks for at most
  4 there. In float64 the reference computes in float64 itself, so its own rounding
  (about u) hides the deltas it adds and the worst-case alignment cannot be read; there
  only the first property is checked.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from reference_engine import ReferenceEngine, worst_case

from harness.check import compare
from harness.expr import Expr
from harness.ops import DEFAULT_OPS
from harness.oracle import rounding_model
from harness.strategies import cases
from harness.truth import truth_engine

pytestmark = pytest.mark.slow  # run all with `pytest`, the fast loop with `-m "not slow"`

TRUTH = truth_engine()
EXAMPLES = 30
EXAMPLES_ORDER2 = 20
TARGET = 4.0


class Fixed:
    """An engine answering precomputed values (the reference aligned the worst way)."""

    name = "reference-aligned"

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def supports(self, op: str) -> bool:
        return True

    def derivatives(self, expr: Expr, points: np.ndarray, *, dtype: str, order: int = 1) -> np.ndarray:
        return self.values


def _ops(dtype: str) -> tuple[str, ...]:
    # torch's softplus shortcut is a real float64 deviation (see test_no_false_alarms);
    # the reference reads exact values from torch, so it inherits it
    return tuple(o for o in DEFAULT_OPS if o != "softplus") if dtype == "float64" else DEFAULT_OPS


_RATIOS: dict[tuple[str, bool, int], tuple[np.ndarray, Counter[str]]] = {}


def _ratios(dtype: str, careful: bool = False, order: int = 1) -> tuple[np.ndarray, Counter[str]]:
    """Tolerance / worst error of the reference (ideal tolerance for the careful one), and
    the verdicts of the reference with random and with worst-aligned errors."""
    if (dtype, careful, order) not in _RATIOS:
        _RATIOS[dtype, careful, order] = _measure(dtype, careful, order)
    return _RATIOS[dtype, careful, order]


def _measure(dtype: str, careful: bool, order: int) -> tuple[np.ndarray, Counter[str]]:
    ratios: list[float] = []
    verdicts: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES if order == 1 else EXAMPLES_ORDER2, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @seed(7)
    @given(cases(_ops(dtype), max_size=10, n_points=8, dtype=dtype))
    def run(case: tuple[Expr, np.ndarray]) -> None:
        expr, pts = case
        truth = TRUTH.evaluate(expr, pts, dtype=dtype, order=order)
        model = rounding_model(expr, pts, dtype=dtype, order=order)
        tol = model.ideal_tolerance if careful else model.tolerance
        out_of_range = model.out_of_range.reshape((-1,) + (1,) * order)
        values, errors = worst_case(expr, pts, truth.values, dtype=dtype, careful=careful, order=order)
        for engine in (Fixed(values), ReferenceEngine(seed=1, careful=careful)):
            verdicts.update(compare(engine, expr, pts, dtype=dtype, order=order, truth=TRUTH)["verdict"])
        judged = (truth.status == "ok") & ~out_of_range & (errors > 0)
        ratios.extend((tol[judged] / errors[judged]).tolist())

    run()
    return np.array(ratios), verdicts


DTYPES = ["float64", "float32", "float16", "bfloat16"]


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_careful_engine_erring_a_few_ulps_per_operation_is_always_ok(dtype: str, order: int) -> None:
    ratios, verdicts = _ratios(dtype, careful=True, order=order)
    judged = sum(verdicts.values())
    assert verdicts["ok"] + verdicts["out-of-range"] + verdicts["undefined"] == judged, verdicts
    assert verdicts["ok"] >= 0.8 * judged
    if dtype != "float64":
        assert (ratios >= 1).all()


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_an_engine_using_the_usual_cancelling_formulas_is_at_worst_inaccurate(dtype: str, order: int) -> None:
    ratios, verdicts = _ratios(dtype, order=order)
    judged = sum(verdicts.values())
    accepted = ("ok", "inaccurate", "out-of-range", "undefined")
    assert sum(verdicts[v] for v in accepted) == judged, verdicts
    assert verdicts["ok"] >= 0.8 * judged
    if dtype != "float64":
        assert (ratios >= 1).all()


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("careful", [False, True], ids=["formula", "ideal"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_the_tolerance_is_within_a_small_factor_of_that_engines_worst_error(
    dtype: str, careful: bool, order: int
) -> None:
    ratios, _ = _ratios(dtype, careful, order)
    assert len(ratios) >= 100
    print(f"{dtype} order {order} {'ideal' if careful else 'formula'}: tolerance / worst error: median "
          f"{np.median(ratios):.2f}, 90th percentile {np.percentile(ratios, 90):.2f}, max {ratios.max():.2f}")
    # order 2: about 4 (the reference's exact products, 1 + 1 and q * 1, are counted as
    # roundings by the model; a median a little above 4 is that, not slack)
    assert np.median(ratios) <= (TARGET if order == 1 else TARGET + 0.5)
