"""The kinds of wrong derivative that shipped in real AD libraries, replayed as overrides
of torch's own ops and caught by :func:`harness.check.check_engine` at its defaults:

1. a derivative that loses its accuracy in a tail (0, or twice the truth, where the
   truth is tiny but representable): ``inaccurate``;
2. NaN where the correctly rounded truth is finite (0 by underflow included), because
   the engine's own formula overflows: ``nan-mismatch``, not ``out-of-range``;
3. pow at base 0 with exponent 0: found by the unit trees' exponents;
4. a wrong value only past a threshold no random point reaches: found at the op's edges.

Each override is written here from the description of its kind; the truths quoted in
comments are mpmath's (50 digits). How many examples each search took is asserted as an
upper bound and printed (``pytest -s``).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

from harness.check import check_engine, compare
from harness.detection import unary_function
from harness.edges import edge_points
from harness.engines.torch_ad import TorchEngine
from harness.parser import parse
from harness.schema import parse_point

# 1. tails: the usual formulas in the dtype, where y = tanh(x) or sigmoid(x) rounds to 1
TanhOneMinusSquare = unary_function("TanhOneMinusSquare", torch.tanh, lambda x: 1 - torch.tanh(x) ** 2)
SigmoidTimesOneMinus = unary_function(
    "SigmoidTimesOneMinus", torch.sigmoid, lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x))
)
# 2. NaN from an internal overflow: tanh' = 4 e^{2x} / (e^{2x} + 1)**2 is inf/inf past 355
TanhThroughExp = unary_function(
    "TanhThroughExp", torch.tanh, lambda x: 4 * torch.exp(2 * x) / (torch.exp(2 * x) + 1) ** 2
)
# 4. softplus' as 1 past the threshold 20 (sigmoid(20) = 1 - 2.06e-9 in float64)
SoftplusThresholdOne = unary_function(
    "SoftplusThresholdOne",
    lambda x: torch.nn.functional.softplus(x, threshold=1000.0),
    lambda x: torch.where(x > 20, torch.ones_like(x), torch.sigmoid(x)),
)


class PowNaiveAtZero(torch.autograd.Function):
    """x**p (p a constant) whose derivative is p * x**(p - 1) everywhere: 0 * 0**-1 = NaN
    at x = 0, p = 0."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, p: float) -> torch.Tensor:
        return torch.pow(x, p)

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[no-untyped-def]
        ctx.save_for_backward(inputs[0])
        ctx.p = inputs[1]

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        (x,) = ctx.saved_tensors
        return grad * ctx.p * x ** (ctx.p - 1), None


def engine(op: str, function: type) -> TorchEngine:
    return TorchEngine("reverse", overrides={op: function.apply})


def first_failure(op: str, function: type, **kwargs: object):  # type: ignore[no-untyped-def]
    result = check_engine(engine(op, function), seed=11, **kwargs)  # type: ignore[arg-type]
    assert not result.ok, result.report()
    f = result.failures[0]
    print(f"{function.__name__}: {f.verdict} after {f.examples} example(s): {f.expr} at {f.point}", f.dtype)
    return f


# ---- 1. accuracy lost in a tail -------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "function"), [("tanh", TanhOneMinusSquare), ("sigmoid", SigmoidTimesOneMinus)]
)
def test_a_derivative_that_rounds_to_zero_in_a_tail_is_inaccurate_and_caught_at_the_edges(
    op: str, function: type
) -> None:
    f = first_failure(op, function)
    assert f.verdict == "inaccurate" and f.dtype == "float64" and f.order == 1
    assert parse(f.expr) == parse(f"{op}(x)")
    x = mpmath.mpf(float(f.point.removeprefix("x=")))
    with mpmath.workdps(50):
        e = mpmath.exp(-abs(x))
        exact = 1 / mpmath.cosh(x) ** 2 if op == "tanh" else e / (1 + e) ** 2
    assert f.expected == pytest.approx(float(exact), rel=1e-15)
    assert f.ulp_error > 16  # more than a careful engine's few ulps
    assert f.examples <= 8  # in the op's edge batches


def test_tanh_prime_twice_the_truth_in_float32_is_inaccurate() -> None:
    # tanh(9.0) in float32 is 1 - 2**-24 (exact 1 - 3.05e-8): 1 - y*y = 1.19e-7, while
    # tanh'(9) = 6.09e-8
    rows = compare(engine("tanh", TanhOneMinusSquare), parse("tanh(x)"), np.array([[9.0]]), dtype="float32")
    with mpmath.workdps(50):
        assert float(1 / mpmath.cosh(9) ** 2) == pytest.approx(6.0923e-8, rel=1e-4)
    assert rows["value"].iloc[0] == pytest.approx(2 * 6.0923e-8, rel=0.03)
    assert rows["verdict"].tolist() == ["inaccurate"]


def test_allow_inaccurate_accepts_a_cancelling_formula_and_still_catches_a_wrong_one() -> None:
    allowed = check_engine(
        engine("tanh", TanhOneMinusSquare), seed=11, n_examples=5, orders=(1,), allow=("inaccurate",)
    )
    assert allowed.ok, allowed.report()
    assert "allow=('inaccurate',)" in allowed.rerun
    f = first_failure("tanh", TanhThroughExp, n_examples=5, orders=(1,), allow=("inaccurate",))
    assert f.verdict == "nan-mismatch"


def test_allow_names_a_verdict_a_check_can_accept() -> None:
    with pytest.raises(ValueError, match="allow='mismatch'.*inaccurate"):
        check_engine(TorchEngine("reverse"), n_examples=1, allow=("mismatch",))


# ---- 2. NaN from the engine's own overflow ----------------------------------------------


def test_nan_from_an_internal_overflow_is_a_nan_mismatch_not_out_of_range() -> None:
    # tanh'(372.9) = 4 e^{-745.8} = 4.9e-324 after rounding (or 0): finite; e^{745.8} is
    # only inside the engine's formula
    f = first_failure("tanh", TanhThroughExp)
    assert f.verdict == "nan-mismatch" and math.isnan(f.got) and math.isfinite(f.expected)
    assert parse(f.expr) == parse("tanh(x)") and abs(float(f.point.removeprefix("x="))) > 354
    assert f.examples <= 8


def test_a_finite_wrong_value_from_an_internal_overflow_is_judged() -> None:
    # min(x*2, cosh(x)) at x = -10.4375 in float16: cosh = 17070 fits (max 65504); the
    # derivative is 2 (x*2 is the smaller); an engine answering 0 is wrong
    point = parse_point("x=-10.4375", ["x"])
    rows = compare(_Zero(), parse("min(x*2, cosh(x))"), point, dtype="float16")
    assert rows["truth"].tolist() == [2.0]
    assert rows["verdict"].tolist() == ["mismatch"]


def test_a_value_of_the_tree_beyond_the_dtype_still_excuses() -> None:
    # exp(12) = 162755 > 65504: the tree itself overflows float16
    rows = compare(_Zero(), parse("exp(x) * 0.5"), parse_point("x=12.0", ["x"]), dtype="float16")
    assert rows["verdict"].tolist() == ["out-of-range"]


class _Zero:
    name = "zero"

    def supports(self, op: str) -> bool:
        return True

    def derivatives(self, expr, points, *, dtype, order=1):  # type: ignore[no-untyped-def]
        return np.zeros((len(points),) + (points.shape[1],) * order)


# ---- 3. pow at base 0 -------------------------------------------------------------------------


def test_pow_with_exponent_zero_at_base_zero_is_caught_by_the_unit_trees() -> None:
    f = first_failure("pow", PowNaiveAtZero, ops=("add", "mul", "pow"))
    assert f.verdict == "nan-mismatch" and f.expected == 0.0
    assert parse(f.expr) == parse("x**0") and f.point == "x=0.0"


# ---- 4. a threshold random points never reach ------------------------------------------------


def test_a_threshold_shortcut_is_caught_at_the_ops_edges() -> None:
    f = first_failure("softplus", SoftplusThresholdOne, ops=("add", "mul", "softplus"))
    assert parse(f.expr) == parse("softplus(x)")
    x = float(f.point.removeprefix("x="))
    assert x > 20 and f.got == 1.0
    with mpmath.workdps(50):
        assert float(1 / (1 + mpmath.exp(-x))) < 1.0  # the truth is not 1 in float64
    assert f.verdict == "mismatch"
    # found in the edge batches of add, mul and softplus alone, before any drawn point
    batches = sum(-(-len(edge_points(parse(t), "float64")) // 64) for t in ("x + y", "x * y", "softplus(x)"))
    assert f.examples <= batches
