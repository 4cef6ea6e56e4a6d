"""Edge points (harness/edges.py): every op's special arguments per dtype, and check_engine
finding bugs that live only there."""

from __future__ import annotations

import math
from collections.abc import Callable

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, find, given, settings

from harness.check import check_engine
from harness.detection import unary_function
from harness.dtypes import DTYPES, dtype_info, round_array
from harness.edges import edge_points, op_edges
from harness.engines.torch_ad import TorchEngine
from harness.ops import OPS
from harness.parser import parse
from harness.strategies import points, valid_points


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("op", sorted(OPS))
def test_every_ops_edges_are_finite_numbers_of_the_dtype_with_0_and_the_subnormals(
    op: str, dtype: str
) -> None:
    edges = op_edges(op, dtype)
    info = dtype_info(dtype)
    assert np.isfinite(edges).all()
    assert (round_array(edges, dtype) == edges).all()  # exactly representable
    for v in (0.0, info.smallest_subnormal, -info.smallest_subnormal, info.tiny, 1.0):
        assert v in edges


def _rounds_to_one(value: mpmath.mpf, dtype: str) -> bool:
    return float(round_array(np.array([float(value)]), dtype)[0]) == 1.0


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize(("op", "fn"), [("tanh", mpmath.tanh), ("erf", mpmath.erf), ("sigmoid", None)])
def test_edges_straddle_where_the_value_rounds_to_its_limit(op: str, fn: object, dtype: str) -> None:
    # mpmath at 50 digits, independent of the edge formulas: some edge rounds to 1, the
    # edge just below it does not, so the tail where 1 - y**2 cancels is reached
    f = fn if fn is not None else (lambda x: 1 / (1 + mpmath.exp(-x)))
    with mpmath.workdps(50):
        saturated = [e for e in op_edges(op, dtype) if e > 0 and _rounds_to_one(f(mpmath.mpf(e)), dtype)]  # type: ignore[operator]
        below = [e for e in op_edges(op, dtype) if 0 < e < min(saturated)]
        assert saturated and below
        assert not _rounds_to_one(f(mpmath.mpf(max(below))), dtype)  # type: ignore[operator]


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_exp_edges_hold_the_largest_argument_whose_exp_is_finite(dtype: str) -> None:
    info = dtype_info(dtype)
    with mpmath.workdps(50):
        finite = [e for e in op_edges("exp", dtype) if mpmath.exp(mpmath.mpf(e)) <= info.max]
        largest = max(finite)
        up = float(round_array(np.array([largest * (1 + 4 * info.eps)]), dtype)[0])
        assert mpmath.exp(mpmath.mpf(up)) > info.max  # a few ulps on, it overflows


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_asin_edges_reach_the_last_float_below_one(dtype: str) -> None:
    below_one = 1 - dtype_info(dtype).unit_roundoff
    assert below_one in op_edges("asin", dtype) and -below_one in op_edges("asin", dtype)


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("text", ["x**0", "x**1", "log(x)", "asin(x)", "x / y", "max(x, y)", "exp(x)"])
def test_edge_points_are_inside_every_domain_and_include_the_special_ones(text: str, dtype: str) -> None:
    expr = parse(text)
    pts = edge_points(expr, dtype)
    assert len(pts) > 0
    assert valid_points(expr, pts, dtype, margin=0.0, kinks="include", max_magnitude=math.inf).all()
    if text.startswith("x**"):
        assert [0.0] in pts.tolist()  # pow at base 0
    if text == "max(x, y)":
        assert any(a == b for a, b in pts.tolist())  # ties
    if text == "log(x)":
        assert pts.min() == dtype_info(dtype).smallest_subnormal


# an asin whose derivative is inf within 2**-40 of +-1 (a formula that lost 1 - x*x there),
# right wherever a random point lands (at least 1/16 from +-1)
AsinInfNearOne = unary_function(
    "AsinInfNearOne",
    torch.asin,
    lambda x: torch.where(
        x.abs() > 1 - 2.0**-40, torch.full_like(x, math.inf), torch.rsqrt((1 - x) * (1 + x))
    ),
)
# a sin whose derivative is 0 at exactly 0 (a special case written the wrong way)
SinWrongAtZero = unary_function(
    "SinWrongAtZero", torch.sin, lambda x: torch.where(x == 0, torch.zeros_like(x), torch.cos(x))
)


@pytest.mark.parametrize(
    ("op", "function", "wrong_at"),
    [("asin", AsinInfNearOne, lambda x: abs(x) > 1 - 2.0**-40), ("sin", SinWrongAtZero, lambda x: x == 0)],
)
def test_a_bug_only_at_an_edge_is_caught_by_the_ops_edge_batch(
    op: str, function: type, wrong_at: Callable[[float], bool]
) -> None:
    engine = TorchEngine("reverse", overrides={op: function.apply})
    ops = ("add", "mul", op)
    result = check_engine(engine, seed=3, dtypes=("float64",), orders=(1,), ops=ops)
    assert not result.ok
    failure = result.failures[0]
    assert parse(failure.expr) == parse(f"{op}(x)")
    assert wrong_at(float(failure.point.removeprefix("x=")))
    batches = sum(-(-len(edge_points(parse(t), "float64")) // 64) for t in ("x + y", "x * y", f"{op}(x)"))
    assert failure.examples <= batches  # found in the edge batches, before any drawn point


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(points(parse("tanh(x) * y"), n=8, edges=True))
def test_drawn_points_with_edges_stay_inside_every_domain(pts: np.ndarray) -> None:
    assert valid_points(parse("tanh(x) * y"), pts, margin=0.0, kinks="include", max_magnitude=math.inf).all()


def test_drawn_points_reach_an_ops_tail_that_random_floats_never_reach() -> None:
    # exp(2x) inside a naive tanh overflows past 354.9 in float64 and sech(x)**2 underflows
    # past 372.9; plain draws never leave [-64, 64]
    found = find(
        points(parse("tanh(x)"), n=8, edges=True),
        lambda pts: bool((np.abs(pts) > 300).any()),
        settings=settings(database=None, max_examples=200),
    )
    tail = np.abs(found[np.abs(found) > 300])
    assert set(tail.tolist()) <= set(np.abs(op_edges("tanh", "float64")).tolist())


def test_prods_edge_points_hold_one_zero_two_zeros_and_all_zeros() -> None:
    pts = edge_points(parse("prod(x, y, z)"), "float64")
    zeros = (pts == 0).sum(axis=1)
    assert {1, 2, 3} <= set(zeros.tolist())


def test_dets_edge_points_hold_singular_matrices_whose_adjugate_is_not_zero() -> None:
    pts = edge_points(parse("det2(a, b, c, d)"), "float64")
    a, b, c, d = pts.T
    singular = (a * d - b * c == 0) & (np.abs(pts) > 0).any(axis=1)
    assert singular.any()
    assert any(row.tolist() == [1.0, 2.0, 3.0, 6.0] for row in pts)


def test_amaxs_edge_points_tie_the_largest_arguments() -> None:
    pts = edge_points(parse("amax(x, y, z)"), "float32")
    top_two = np.sort(pts, axis=1)[:, -2:]
    assert (top_two[:, 0] == top_two[:, 1]).any()


def test_special_args_skip_a_tuple_that_gives_a_repeated_variable_two_values() -> None:
    from harness.edges import _special_rows

    # prod(x, y, x): (0, 0.75, -1.5) would need x = 0 and x = -1.5; (0, 0, 0) is kept
    node = parse("prod(x, y, x)")
    rows = np.concatenate(_special_rows(node, {"x": 0, "y": 1}, "float64"))  # type: ignore[arg-type]
    assert [0.0, 0.0] in rows.tolist()
    assert [0.0, 0.75] not in rows.tolist()
