"""Taylor coefficients by power series: the same numbers as differentiating symbolically."""

from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from harness.parser import parse
from harness.strategies import cases
from harness.truth import SymbolicEngine, certify
from harness.truth.forms import VALUES, dtype_key, taylor
from harness.truth.program import compiled

ENGINE = SymbolicEngine()


def symbolic_taylor(expr: Any, pts: np.ndarray, max_order: int) -> np.ndarray:
    """The pure partials through the differentiated sympy program, as before series."""
    n, k = pts.shape
    program = compiled(expr, dtype_key(expr, "float64"), taylor(max_order))
    rows = certify.evaluate_rows(program, pts)[0]
    return rows.reshape(n, max_order, k).transpose(1, 0, 2)


@settings(
    max_examples=80, deadline=None, database=None, phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(case=cases(n_points=6, dtype="float32", kinks="include"), max_order=st.integers(1, 5))
def test_series_taylor_equals_the_symbolic_derivatives_everywhere(case: Any, max_order: int) -> None:
    expr, pts = case[0], np.asarray(case[1])
    if pts.shape[1] == 0:
        return
    got = ENGINE.taylor(expr, pts, dtype="float64", max_order=max_order)[1:]
    assert np.array_equal(got, symbolic_taylor(expr, pts, max_order), equal_nan=True)


def test_the_fifth_derivative_of_exp_of_2x_is_32_exp_2x() -> None:
    pts = np.array([[0.5], [-1.25]])
    got = ENGINE.taylor(parse("exp(2*x)"), pts, dtype="float64", max_order=5)
    for k in range(6):
        for p, x in enumerate(pts[:, 0]):
            assert got[k, p, 0] == float(mpmath.mpf(2) ** k * mpmath.exp(2 * mpmath.mpf(x)))


@pytest.mark.parametrize(
    ("text", "x"),
    [("abs(x)", 0.0), ("sqrt(x)", 0.0), ("floor(x)", 2.0), ("log(x)", -1.0), ("acos(x)", 1.0)],
)
def test_where_the_series_cannot_exist_the_symbolic_program_decides(text: str, x: float) -> None:
    expr = parse(text)
    pts = np.array([[x], [0.75]])
    series = certify.series_taylor(compiled(expr, "float64", VALUES), pts, 3)
    assert np.isnan(series[0]).all() and not np.isnan(series[1]).any()
    got = ENGINE.taylor(expr, pts, dtype="float64", max_order=3)[1:]
    assert np.array_equal(got, symbolic_taylor(expr, pts, 3), equal_nan=True)


def test_series_coefficients_of_a_polynomial_are_exact() -> None:
    got = ENGINE.taylor(parse("x**4 + 3*x**3"), np.array([[1.0]]), dtype="float64", max_order=5)
    assert got[1:, 0, 0].tolist() == [13.0, 30.0, 42.0, 24.0, 0.0]
    assert math.isclose(got[0, 0, 0], 4.0)


# ---- one-sided germs at a break ---------------------------------------------------------


def germ(text: str, point: list[float], order: int = 1) -> certify.AxisGerms:
    expr = parse(text)
    return certify.along_axes(compiled(expr, dtype_key(expr, "float64"), VALUES), np.array([point]), order)


def test_germs_along_an_axis_without_a_break_agree_on_both_sides() -> None:
    # x * floor(y) at y = 1 is 0.5 + t along x: f' = 1 from either side, f'' = 0
    g = germ("x*floor(y)", [0.5, 1.0], order=2)
    assert g.left[0, :, 0].tolist() == [1.0, 0.0] and g.right[0, :, 0].tolist() == [1.0, 0.0]
    assert g.same[0, :, 0].all() and not g.jump[0, 0]


def test_a_germ_across_a_jump_says_f_jumps() -> None:
    # floor(y) at y = 1: 0 below, 1 at and above; min(floor(y), y) at 0: -1 below, 0 above
    assert germ("x*floor(y)", [0.5, 1.0]).jump[0].tolist() == [False, True]
    assert germ("min(floor(y), y)", [0.0]).jump[0].tolist() == [True]
    assert germ("sign(y)", [0.0]).jump[0].tolist() == [True]


def test_germs_at_a_kink_give_the_one_sided_derivatives() -> None:
    # min(x, x*y) along y at y = 1: x*y below (x = 0.5), x above (0)
    g = germ("min(x, x*y)", [0.5, 1.0])
    assert (g.left[0, 0, 1], g.right[0, 0, 1]) == (0.5, 0.0) and not g.same[0, 0, 1]
    # abs(y / 0.75) at 0: -4/3 and 4/3
    g = germ("abs(y / 0.75)", [0.0])
    assert g.left[0, 0, 0] == -4 / 3 and g.right[0, 0, 0] == 4 / 3 and not g.jump[0, 0]


@pytest.mark.parametrize(
    ("text", "x", "exact"),
    [
        ("sinh(x)", 0.0, [1, 0, 1, 0, 1]),  # even coefficients cancel to 0 +- 1e-39
        ("tanh(x)", 0.0, [1, 0, -2, 0, 16]),
        ("x**2", -1.5, [-3, 2, 0, 0, 0]),  # an integer exponent on a negative base
        ("x**(-3)", -2.0, [-3 / 16, -12 / 32, -60 / 64, -360 / 128, -2520 / 256]),
    ],
)
def test_the_series_gives_cancelled_zeros_and_integer_powers_of_negative_bases(
    text: str, x: float, exact: list[float]
) -> None:
    """Where the series once gave up (a zero it cannot prove at the first precision, a
    power it took through a logarithm), it answers, and the answer is the exact one."""
    series = certify.series_taylor(compiled(parse(text), "float64", VALUES), np.array([[x]]), 5)
    assert series[0, :, 0].tolist() == pytest.approx(exact, rel=1e-15, abs=0)
    got = ENGINE.taylor(parse(text), np.array([[x]]), dtype="float64", max_order=5)[1:]
    assert np.array_equal(got, symbolic_taylor(parse(text), np.array([[x]]), 5))


@pytest.mark.parametrize(("text", "x"), [("tanh(x)", -2.0**-149), ("sinh(x)", 2.0**-149), ("sin(x)", 1e-300)])
def test_a_derivative_smaller_than_the_first_precisions_radius_is_its_value_not_zero(
    text: str, x: float
) -> None:
    """tanh''(x) = -2 tanh(x) (1 - tanh(x)**2) is 2.8e-45 at x = -2**-149: a ball of the
    first precision holds 0 there, and only more precision tells it from a cancelled
    zero."""
    series = certify.series_taylor(compiled(parse(text), "float64", VALUES), np.array([[x]]), 3)
    with mpmath.workdps(60):
        t, u = mpmath.tanh(mpmath.mpf(x)), mpmath.mpf(x)
        exact = [float(d) for d in {
            "tanh(x)": (1 - t**2, -2 * t * (1 - t**2), -2 * (1 - t**2) * (1 - 3 * t**2)),
            "sinh(x)": (mpmath.cosh(u), mpmath.sinh(u), mpmath.cosh(u)),
            "sin(x)": (mpmath.cos(u), -mpmath.sin(u), -mpmath.cos(u)),
        }[text]]
    assert exact[1] != 0
    assert series[0, :, 0].tolist() == exact


def test_the_series_of_atan2_is_its_derivatives_off_the_cut_and_none_on_it() -> None:
    expr = parse("atan2(x * y, x - y)")
    pts = np.array([[0.5, 1.5], [-0.5, -1.5], [1.5, -0.5], [-2.0, 0.25], [0.0, -1.0], [-1.0, 0.0]])
    series = certify.series_taylor(compiled(expr, "float64", VALUES), pts, 5)
    assert not np.isnan(series[:5]).any()
    assert np.isnan(series[5]).all()  # x*y = 0 and x - y < 0: the cut
    assert np.array_equal(series.transpose(1, 0, 2), symbolic_taylor(expr, pts, 5), equal_nan=True)


@pytest.mark.parametrize(("text", "point"), [
    ("tan(softplus(x))", 1.8446742974197924e19),  # tan reduced from 2**64 through softplus
    ("log1p(sqrt(sinh(x)))", 88.72284698486328),  # f'' = 1.9e-20 next to f' = 0.5
])
def test_a_point_loose_at_the_first_precision_is_settled_by_the_series_at_the_second(
    text: str, point: float
) -> None:
    """Coefficients that are wide at the first precision, not only narrow zeros, get the
    second run, so that the k-times differentiated symbolic program (tens of
    milliseconds per tree to compile) is not needed here; the values are mpmath's."""
    series = certify.series_taylor(compiled(parse(text), "float64", VALUES), np.array([[point]]), 4)
    with mpmath.workdps(80):
        u = mpmath.mpf(point)
        f = {"tan(softplus(x))": lambda v: mpmath.tan(mpmath.log1p(mpmath.exp(v))),
             "log1p(sqrt(sinh(x)))": lambda v: mpmath.log1p(mpmath.sqrt(mpmath.sinh(v)))}
        exact = [float(mpmath.diff(f[text], u, k)) for k in range(1, 5)]
    assert series[0, :, 0].tolist() == pytest.approx(exact, rel=1e-14, abs=0)
