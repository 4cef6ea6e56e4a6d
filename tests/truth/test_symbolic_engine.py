"""The truth engine: exact values against independent references, statuses, one-sided
limits, Taylor coefficients and dtype-rounded constants.

References are computed here without the engine: closed forms in mpmath at 50 digits, and
sympy's own ``evalf`` at 60 digits for random trees (an evaluator independent of the arb
compiler under test).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness.engines.base import Engine
from harness.expr import Call, Const, Expr, Var, to_sympy, variables
from harness.ops import OPS
from harness.parser import parse
from harness.truth import MAX_BITS, START_BITS, STATUSES, SymbolicEngine, intervals

ENGINE = SymbolicEngine()
x, y = Var("x"), Var("y")
mp = mpmath.mp


def c(op: str, *args: Expr) -> Call:
    return Call(op, tuple(args))


def k(value: int | Fraction) -> Const:
    return Const(Fraction(value))


def one_ulp(value: float) -> float:
    return math.ulp(value) if value else 2.0**-1074


def expr_id(value: object) -> str | None:
    """Test ids from the expression only (function reprs carry memory addresses)."""
    return str(value) if isinstance(value, (Var, Const, Call)) else None


def column(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)[:, None]


# ---- first derivatives of single ops against hand-derived closed forms ------------------

CLOSED_FORMS: list[tuple[Expr, Callable[[mpmath.mpf], mpmath.mpf], tuple[float, ...]]] = [
    (c("sin", x), mp.cos, (0.3, -2.5, 100.0)),
    (c("cos", x), lambda t: -mp.sin(t), (0.3, -2.5, 1e-9)),
    (c("tan", x), lambda t: 1 / mp.cos(t) ** 2, (0.3, -1.25, 1.5)),
    (c("exp", x), mp.exp, (0.3, -20.0, 700.0)),
    (c("log", x), lambda t: 1 / t, (0.3, 7.0, 1e-300)),
    (c("sqrt", x), lambda t: 1 / (2 * mp.sqrt(t)), (0.3, 2.0, 1e10)),
    (c("asin", x), lambda t: 1 / mp.sqrt(1 - t**2), (0.3, -0.999, 0.5)),
    (c("acos", x), lambda t: -1 / mp.sqrt(1 - t**2), (0.3, -0.999, 0.5)),
    (c("atan", x), lambda t: 1 / (1 + t**2), (0.3, -4.0, 1e8)),
    (c("tanh", x), lambda t: 1 - mp.tanh(t) ** 2, (0.3, -4.0, 10.0)),
    (c("sinh", x), mp.cosh, (0.3, -4.0)),
    (c("cosh", x), mp.sinh, (0.3, -4.0, 1e-5)),
    (c("erf", x), lambda t: 2 / mp.sqrt(mp.pi) * mp.exp(-(t**2)), (0.3, -2.0, 5.0)),
    (c("sigmoid", x), lambda t: mp.exp(-t) / (1 + mp.exp(-t)) ** 2, (0.3, -30.0, 30.0)),
    (c("softplus", x), lambda t: 1 / (1 + mp.exp(-t)), (0.3, -30.0, 30.0)),
    (c("log1p", x), lambda t: 1 / (1 + t), (0.3, -0.75, 2.0**-60)),
    (c("expm1", x), mp.exp, (0.3, -0.75, 2.0**-60)),
    (c("pow", x, k(3)), lambda t: 3 * t**2, (0.3, -2.5)),
    (c("pow", x, k(-2)), lambda t: -2 * t**-3, (0.3, -2.5)),
    (c("pow", x, k(Fraction(3, 4))), lambda t: mp.mpf(3) / 4 * t ** (mp.mpf(-1) / 4), (0.3, 9.0)),
    (c("div", k(1), x), lambda t: -1 / t**2, (0.3, -2.5)),
    (c("neg", x), lambda t: mp.mpf(-1), (0.3,)),
]


@pytest.mark.parametrize(("expr", "closed_form", "points"), CLOSED_FORMS, ids=expr_id)
def test_first_derivatives_match_closed_forms_to_within_one_ulp(
    expr: Expr, closed_form: Callable[[mpmath.mpf], mpmath.mpf], points: tuple[float, ...]
) -> None:
    truth = ENGINE.evaluate(expr, column(*points), dtype="float64")
    assert (truth.status == "ok").all(), truth.status
    with mpmath.workdps(50):
        for got, bound, t in zip(truth.values[:, 0], truth.bounds[:, 0], points, strict=True):
            exact = closed_form(mpmath.mpf(t))
            assert abs(got - float(exact)) <= one_ulp(float(exact)), (expr, t, got, exact)
            assert abs(mpmath.mpf(got) - exact) <= bound + one_ulp(got) / 2


def test_the_seed_examples_come_out_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    cubic = c("pow", c("add", x, k(1)), k(2))
    assert ENGINE.derivatives(c("mul", k(3), cubic), column(1.0), dtype="float64")[0, 0] == 12
    quartic = c(
        "add",
        c(
            "add",
            c("add", c("pow", x, k(4)), c("mul", k(3), c("pow", x, k(3)))),
            c("mul", k(8), c("pow", x, k(2))),
        ),
        k(3),
    )
    truth = ENGINE.evaluate(quartic, column(1.0), dtype="float64")
    # the interval filter's proof is a narrow interval; arb's is an exact ball
    assert truth.values[0, 0] == 29 and truth.bounds[0, 0] <= 2.0**-56 * 29
    monkeypatch.setattr(intervals, "AVAILABLE", False)
    truth = ENGINE.evaluate(quartic, column(1.0), dtype="float64")
    assert truth.values[0, 0] == 29 and truth.bounds[0, 0] == 0
    assert (
        ENGINE.derivatives(c("mul", k(3), c("pow", x, k(2))), column(1.0), dtype="float32")[0, 0]
        == 6
    )


def test_hessian_of_x_y_sin_x_is_symmetric_and_matches_the_closed_form() -> None:
    pts = np.array([[0.5, 2.0], [-1.25, 0.375]])
    truth = ENGINE.evaluate(c("mul", c("mul", x, y), c("sin", x)), pts, dtype="float64", order=2)
    assert (truth.status == "ok").all()
    assert np.array_equal(truth.values, truth.values.transpose(0, 2, 1))
    with mpmath.workdps(50):
        for (a, b), hess in zip(pts, truth.values, strict=True):
            a_, b_ = mpmath.mpf(a), mpmath.mpf(b)
            expected = [
                [2 * b_ * mp.cos(a_) - a_ * b_ * mp.sin(a_), mp.sin(a_) + a_ * mp.cos(a_)],
                [mp.sin(a_) + a_ * mp.cos(a_), mpmath.mpf(0)],
            ]
            for i in range(2):
                for j in range(2):
                    e = float(expected[i][j])
                    assert abs(hess[i, j] - e) <= one_ulp(e), (i, j, hess[i, j], e)


# ---- random smooth trees against sympy's own evalf ---------------------------------------

SMOOTH_UNARY = ("exp", "sin", "cos", "tanh", "atan", "sigmoid", "sinh", "erf", "softplus")


def smooth_trees() -> st.SearchStrategy[Expr]:
    leaves = st.one_of(
        st.sampled_from([x, y]),
        st.integers(-8, 8).map(lambda n: Const(Fraction(n, 4))),
    )
    return st.recursive(
        leaves,
        lambda sub: st.one_of(
            st.builds(lambda op, a: Call(op, (a,)), st.sampled_from(SMOOTH_UNARY), sub),
            st.builds(
                lambda op, a, b: Call(op, (a, b)), st.sampled_from(["add", "sub", "mul"]), sub, sub
            ),
        ),
        max_leaves=12,
    ).filter(lambda e: len(variables(e)) > 0)


@settings(max_examples=25, deadline=None)
@given(smooth_trees(), st.lists(st.integers(-16, 16), min_size=4, max_size=4))
@example(c("sub", c("exp", x), c("exp", x)), [1, 1, 1, 1])
def test_gradients_of_smooth_trees_are_certified_and_match_sympy_evalf(
    expr: Expr, grid: list[int]
) -> None:
    names = variables(expr)
    pts = (np.array(grid[: 2 * len(names)], dtype=np.float64) / 8).reshape(-1, len(names))
    truth = ENGINE.evaluate(expr, pts, dtype="float64")
    assert (truth.status == "ok").all(), truth.status
    # arb stops at a radius of 2**-62 relative; the long double filter settles when its
    # interval rounds to one float64 (so it is narrower than that float64's spacing). An
    # exact zero (exp(x) - exp(x)) is certified to 2**-1100, which float64 rounds up to
    # its smallest subnormal, 2**-1074.
    by_filter = truth.precision_bits == intervals.PRECISION_BITS
    scale = np.where(by_filter, 2.0**-53, 2.0**-62)
    tight = (truth.bounds <= scale * np.abs(truth.values)) | (truth.bounds <= 2.0**-1074)
    assert tight.all()
    symbols = {n: sympy.Symbol(n, real=True) for n in names}
    f = to_sympy(expr, symbols)
    for row, got in zip(pts, truth.values, strict=True):
        at = {
            symbols[n]: sympy.Rational(Fraction(float(v))) for n, v in zip(names, row, strict=True)
        }
        for i, n in enumerate(names):
            exact = float(f.diff(symbols[n]).evalf(60, subs=at))
            # evalf's 60 digits are relative to the terms: a derivative that cancels to
            # exactly 0 (x - exp(x) at 0) comes back as noise of about 1e-190
            assert abs(got[i] - exact) <= max(one_ulp(exact), 1e-50), (n, row, got[i], exact)


# ---- cancellation and precision escalation -----------------------------------------------


def test_cancellation_in_exp_minus_one_minus_x_is_still_certified() -> None:
    t = 2.0**-30
    f = c("sub", c("sub", c("exp", x), k(1)), x)
    truth = ENGINE.evaluate(f, column(t), dtype="float64")
    value = ENGINE.values(f, column(t), dtype="float64")[0]
    with mpmath.workdps(60):
        assert truth.values[0, 0] == float(mp.expm1(mpmath.mpf(t)))
        assert value == float(mp.exp(mpmath.mpf(t)) - 1 - mpmath.mpf(t))
    assert truth.status[0, 0] == "ok"


def test_cancellation_beyond_the_first_precision_raises_it_until_the_bound_is_tight() -> None:
    # d/dx (e**x - 1 - x - x**2/2) = e**x - 1 - x ~ 2**-81 at x = 2**-40: 81 bits cancel.
    t = 2.0**-40
    f = c(
        "sub", c("sub", c("sub", c("exp", x), k(1)), x), c("mul", k(Fraction(1, 2)), c("mul", x, x))
    )
    truth = ENGINE.evaluate(f, column(t), dtype="float64")
    assert truth.status[0, 0] == "ok" and truth.precision_bits[0, 0] > START_BITS
    assert truth.bounds[0, 0] <= 2.0**-62 * abs(truth.values[0, 0])
    with mpmath.workdps(80):
        assert truth.values[0, 0] == float(mp.exp(mpmath.mpf(t)) - 1 - mpmath.mpf(t))


def test_log1p_at_a_tiny_argument_is_certified_by_raising_the_precision() -> None:
    t = 2.0**-1000
    value = ENGINE.values(c("log1p", x), column(t), dtype="float64")[0]
    truth = ENGINE.evaluate(c("log1p", x), column(t), dtype="float64")
    assert value == t  # log1p(t) = t - t**2/2 + ..., which rounds to t
    assert truth.values[0, 0] == 1.0 and truth.status[0, 0] == "ok"


def test_an_exact_zero_hidden_from_sympy_is_certified_at_high_precision() -> None:
    # atan(x) + atan(1/x) is constant for x > 0; sympy leaves its derivative unsimplified.
    f = c("add", c("atan", x), c("atan", c("div", k(1), x)))
    truth = ENGINE.evaluate(f, column(0.75), dtype="float64")
    assert truth.status[0, 0] == "ok" and truth.values[0, 0] == 0
    assert truth.bounds[0, 0] <= 2.0**-1074
    assert truth.precision_bits[0, 0] > START_BITS


def test_a_zero_scaled_beyond_the_precision_cap_is_reported_uncertified() -> None:
    zero = c("add", c("atan", x), c("atan", c("div", k(1), x)))
    f = c("mul", c("exp", c("exp", y)), zero)  # d/dx is 0 times e**(e**7.75) ~ 2**3000
    truth = ENGINE.evaluate(f, np.array([[0.75, 7.75]]), dtype="float64")
    assert truth.status[0, 0] == "uncertified"
    assert truth.precision_bits[0, 0] == MAX_BITS
    assert 2.0**-1100 < truth.bounds[0, 0] and abs(truth.values[0, 0]) <= truth.bounds[0, 0]
    assert truth.status[0, 1] == "undefined"  # d/dy is beyond float64's range


# ---- statuses and one-sided limits -----------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "point", "status"),
    [
        (c("log", x), -2.0, "undefined"),
        (c("log", x), 0.0, "undefined"),
        (c("sqrt", x), 0.0, "undefined"),  # f'(0) = inf
        (c("acos", x), 1.0, "undefined"),
        (c("div", x, x), 0.0, "undefined"),  # the literal tree divides by 0
        (c("pow", c("sqrt", x), k(2)), -1.0, "undefined"),  # sympy reads it as x
        (c("expm1", c("div", c("max", x, k(Fraction(-1, 4))), k(0))), 0.5, "undefined"),
        (c("relu", x), 0.0, "kink"),
        (c("abs", x), 0.0, "kink"),
        # f itself jumps along x: no derivative, not a kink
        (c("sign", x), 0.0, "undefined"),
        (c("floor", x), 2.0, "undefined"),
        (c("floor", x), 2.5, "ok"),
        (c("mul", x, c("floor", x)), 2.0, "undefined"),
        (c("max", x, c("neg", x)), 0.0, "kink"),
    ],
    ids=expr_id,
)
def test_status_says_where_the_derivative_is_undefined_or_at_a_kink(
    expr: Expr, point: float, status: str
) -> None:
    truth = ENGINE.evaluate(expr, column(point), dtype="float64")
    assert truth.status[0, 0] == status
    assert np.isnan(truth.values[0, 0]) == (status in ("kink", "undefined"))


def test_floor_away_from_integers_has_derivative_zero() -> None:
    assert ENGINE.derivatives(c("floor", x), column(2.5, -0.25), dtype="float64").tolist() == [
        [0.0],
        [0.0],
    ]


@pytest.mark.parametrize(
    ("expr", "point", "left", "right"),
    [
        (c("relu", x), 0.0, 0.0, 1.0),
        (c("abs", x), 0.0, -1.0, 1.0),
        (c("mul", x, c("floor", x)), 2.0, 1.0, 2.0),
        (c("sin", x), 0.5, math.cos(0.5), math.cos(0.5)),
    ],
    ids=expr_id,
)
def test_one_sided_derivatives_are_the_limits_from_either_side(
    expr: Expr, point: float, left: float, right: float
) -> None:
    lo, hi = ENGINE.one_sided(expr, column(point), dtype="float64")
    assert lo[0, 0] == pytest.approx(left, rel=1e-15, abs=1e-80)
    assert hi[0, 0] == pytest.approx(right, rel=1e-15, abs=1e-80)


def test_relu_squared_is_differentiable_at_zero_with_both_sides_zero() -> None:
    f = c("pow", c("relu", x), k(2))
    truth = ENGINE.evaluate(f, column(0.0), dtype="float64")
    lo, hi = ENGINE.one_sided(f, column(0.0), dtype="float64")
    assert truth.status[0, 0] == "ok" and truth.values[0, 0] == 0
    assert abs(lo[0, 0]) <= 1e-80 and abs(hi[0, 0]) <= 1e-80


def test_max_at_a_tie_is_a_kink_in_both_variables_with_one_sided_limits() -> None:
    pts = np.array([[2.0, 2.0], [1.0, 3.0]])
    truth = ENGINE.evaluate(c("max", x, y), pts, dtype="float64")
    assert truth.status.tolist() == [["kink", "kink"], ["ok", "ok"]]
    assert truth.values[1].tolist() == [0.0, 1.0]
    lo, hi = ENGINE.one_sided(c("max", x, y), pts[:1], dtype="float64")
    assert lo.tolist() == [[0.0, 0.0]] and hi.tolist() == [[1.0, 1.0]]


def test_an_inactive_branch_contributes_zero_even_where_its_derivative_is_infinite() -> None:
    # sqrt(relu(y)) is 0 for all y < 0; the chain rule's 1/sqrt(0) must not leak in.
    truth = ENGINE.evaluate(c("sqrt", c("relu", x)), column(-1.0), dtype="float64")
    assert truth.status[0, 0] == "ok" and truth.values[0, 0] == 0


def test_a_point_on_a_domain_edge_has_no_two_sided_derivative() -> None:
    # acos(x) is inactive inside the max at x = 1, but the tree is undefined for x > 1.
    f = c("add", c("max", c("acos", x), y), x)
    truth = ENGINE.evaluate(f, np.array([[1.0, 1.75], [0.5, 1.75]]), dtype="float64")
    assert truth.status[0].tolist() == ["undefined", "undefined"]
    assert truth.values[1].tolist() == [1.0, 1.0]


def test_a_tree_with_a_non_real_constant_part_is_undefined_everywhere() -> None:
    # sympy's Min recurses for minutes deciding whether this constant is comparable.
    constant = c("log", c("pow", c("log", c("acos", k(Fraction(3, 2)))), k(Fraction(3, 2))))
    f = c("sin", c("min", x, constant))
    truth = ENGINE.evaluate(f, column(0.5, -2.0), dtype="float64")
    assert truth.status[:, 0].tolist() == ["undefined", "undefined"]
    assert np.isnan(ENGINE.values(f, column(0.5), dtype="float64")).all()


def test_values_at_jumps_are_the_functions_own_values() -> None:
    assert ENGINE.values(c("floor", x), column(2.0, -0.5), dtype="float64").tolist() == [2, -1]
    assert ENGINE.values(c("sign", x), column(0.0, -3.0), dtype="float64").tolist() == [0, -1]


def test_a_derivative_beyond_float64s_range_is_undefined() -> None:
    truth = ENGINE.evaluate(c("exp", x), column(710.0, 709.0), dtype="float64")
    assert truth.status[:, 0].tolist() == ["undefined", "ok"]


def test_a_nan_point_is_undefined() -> None:
    truth = ENGINE.evaluate(c("sin", x), column(np.nan), dtype="float64")
    assert truth.status[0, 0] == "undefined" and np.isnan(truth.values[0, 0])


# ---- Taylor coefficients ----------------------------------------------------------------


def test_taylor_gives_every_pure_derivative_of_exp_sin_and_x_to_the_fifth() -> None:
    t = 0.375
    exp_rows = ENGINE.taylor(c("exp", x), column(t), dtype="float64", max_order=5)[:, 0, 0]
    assert exp_rows.tolist() == [math.exp(t)] * 6
    sin_rows = ENGINE.taylor(c("sin", x), column(t), dtype="float64", max_order=5)[:, 0, 0]
    s, co = math.sin(t), math.cos(t)
    assert sin_rows.tolist() == [s, co, -s, -co, s, co]
    quintic = ENGINE.taylor(c("pow", x, k(5)), column(1.5), dtype="float64", max_order=6)
    assert quintic[:, 0, 0].tolist() == [1.5**5, 5 * 1.5**4, 20 * 1.5**3, 60 * 1.5**2, 180, 120, 0]


def test_taylor_takes_pure_partials_per_variable() -> None:
    rows = ENGINE.taylor(
        c("mul", x, c("pow", y, k(2))), np.array([[3.0, 2.0]]), dtype="float64", max_order=3
    )
    assert rows[:, 0].tolist() == [[12, 12], [4, 12], [0, 6], [0, 0]]


# ---- dtypes, shapes and the protocol ----------------------------------------------------


def test_a_constant_float16_cannot_hold_is_rounded_as_the_engine_rounds_it() -> None:
    f = c("mul", k(2049), x)
    assert ENGINE.derivatives(f, column(1.0), dtype="float16")[0, 0] == 2048
    assert ENGINE.derivatives(f, column(1.0), dtype="float64")[0, 0] == 2049
    assert ENGINE.values(f, column(1.0), dtype="float16")[0] == 2048


def test_a_constant_that_overflows_the_dtype_makes_everything_undefined() -> None:
    truth = ENGINE.evaluate(c("mul", k(2**17), x), column(1.0), dtype="float16")
    assert truth.status[0, 0] == "undefined"


def test_expressions_without_variables_give_zero_columns() -> None:
    pts = np.zeros((3, 0))
    assert ENGINE.derivatives(c("exp", k(1)), pts, dtype="float64").shape == (3, 0)
    assert ENGINE.derivatives(c("exp", k(1)), pts, dtype="float64", order=2).shape == (3, 0, 0)
    assert ENGINE.values(c("exp", k(1)), pts, dtype="float64").tolist() == [math.e] * 3


def test_the_engine_meets_the_protocol_and_supports_every_op() -> None:
    assert isinstance(ENGINE, Engine) and ENGINE.name == "sympy"
    assert all(ENGINE.supports(op) for op in OPS)
    assert not ENGINE.supports("gamma")
    assert set(STATUSES) == {"ok", "uncertified", "kink", "undefined"}


def test_requests_are_validated() -> None:
    with pytest.raises(ValueError, match="not exactly representable in float16"):
        ENGINE.derivatives(c("sin", x), column(0.1), dtype="float16")
    with pytest.raises(ValueError, match="order=3"):
        ENGINE.derivatives(c("sin", x), column(0.5), dtype="float64", order=3)
    with pytest.raises(ValueError, match="max_order"):
        ENGINE.taylor(c("sin", x), column(0.5), dtype="float64", max_order=-1)


def test_an_integer_power_of_a_ball_around_zero_stays_defined(monkeypatch: pytest.MonkeyPatch) -> None:
    # sigmoid(min(y, x)) - sigmoid(y) is 0 where y < x, but arb only knows it to +-1e-38:
    # tanh' = 1 - tanh(u)**2 then squares a ball holding 0, where python-flint's ** gives NaN
    monkeypatch.setattr(intervals, "AVAILABLE", False)  # the arb path itself
    expr = c("tanh", c("sub", c("sigmoid", c("min", y, x)), c("sigmoid", y)))
    truth = ENGINE.evaluate(expr, np.array([[2.0**52, 710.0]]), dtype="float64")
    assert truth.status.tolist() == [["ok", "ok"]]
    assert truth.values.tolist() == [[0.0, 0.0]]


def test_abs_of_an_argument_sympy_cannot_prove_real_is_still_differentiated() -> None:
    # sympy rewrites Abs(exp(u)) as exp(re(u)) when u = acos(x) might be complex
    expr = c("abs", c("exp", c("tanh", c("acos", x))))
    truth = ENGINE.evaluate(expr, column(0.5, 2.0), dtype="float64")
    assert truth.status[:, 0].tolist() == ["ok", "undefined"]
    with mpmath.workdps(50):
        t = mpmath.mpf(0.5)
        a = mpmath.acos(t)
        exact = mpmath.exp(mpmath.tanh(a)) * mpmath.sech(a) ** 2 * (-1 / mpmath.sqrt(1 - t * t))
    assert truth.values[0, 0] == float(exact)


def test_abs_of_a_square_stays_differentiable_at_zero() -> None:
    truth = ENGINE.evaluate(c("abs", c("mul", x, x)), column(0.0), dtype="float64")
    assert truth.status[0, 0] == "ok" and truth.values[0, 0] == 0.0


def test_a_partial_is_decided_along_its_own_axis_not_at_the_point() -> None:
    # x * floor(y) at (0.5, 1): along x f = x (d/dx = 1); along y floor jumps (undefined)
    truth = ENGINE.evaluate(c("mul", x, c("floor", y)), np.array([[0.5, 1.0]]), dtype="float64")
    assert truth.status[0].tolist() == ["ok", "undefined"] and truth.values[0, 0] == 1.0


def test_one_sided_derivatives_come_from_the_germs_along_the_axis() -> None:
    # min(x, x*y) at (0.5, 1): along y, x*y below the tie (d/dy = x) and x above it (0)
    left, right = ENGINE.one_sided(c("min", x, c("mul", x, y)), np.array([[0.5, 1.0]]), dtype="float64")
    assert (left[0, 1], right[0, 1]) == (0.5, 0.0)


def test_a_break_inside_an_op_without_a_germ_rule_leaves_the_entry_undecided_not_a_crash() -> None:
    # i0e(x) = exp(-|x|) i0(x) has a kink at 0 (its derivative is -1 from the right, +1
    # from the left); settling the kink along the axis needs a
    # one-sided germ of every instruction, and one without a germ kernel means "cannot
    # say", as any missing series does: never an AssertionError failing the whole case
    truth = ENGINE.evaluate(c("i0e", x), column(0.0, -0.0, 0.5), dtype="float64")
    assert truth.values.shape == (3, 1)
    with mpmath.workdps(50):
        t = mpmath.mpf(0.5)
        exact = mpmath.exp(-t) * (mpmath.besseli(1, t) - mpmath.besseli(0, t))
    assert truth.status[2, 0] == "ok" and truth.values[2, 0] == float(exact)


def test_a_kink_over_a_function_without_a_series_kernel_gets_its_one_sided_limits() -> None:
    # i0e(x) = exp(-|x|) besseli(0, x): besseli has no series kernel, so the germs along
    # x cannot be formed; the one-sided limits come from stepping off the point instead
    x = Var("x")
    tree = Call("logaddexp2", (Call("rsqrt", (Var("y"),)), Call("i0e", (x,))))
    pts = np.array([[0.0, 0.75], [0.5, 0.75]])
    truth = ENGINE.evaluate(tree, pts, dtype="float64")
    assert truth.status[:, 0].tolist() == ["kink", "ok"]
    left, right = ENGINE.one_sided(Call("i0e", (x,)), np.array([[0.0]]), dtype="float64")
    # exp(x) i0(x) from the left rises with slope 1, exp(-x) i0(x) to the right falls with -1
    assert left[0, 0] == pytest.approx(1.0, abs=1e-12) and right[0, 0] == pytest.approx(-1.0, abs=1e-12)


def test_eulers_constant_from_digamma_at_1_is_a_known_constant() -> None:
    # sympy evaluates polygamma(0, 1) to -EulerGamma
    tree = Call("mul", (Var("x"), Call("digamma", (Const(Fraction(1)),))))
    truth = ENGINE.evaluate(tree, np.array([[0.5]]), dtype="float64")
    assert truth.status[0, 0] == "ok"
    assert truth.values[0, 0] == float(-mpmath.euler)


def test_a_remembered_truth_is_handed_out_as_copies() -> None:
    expr, pts = parse("tanh(x)"), column(0.5)
    first = ENGINE.evaluate(expr, pts, dtype="float64")
    first.values[:] = 7.0
    again = ENGINE.evaluate(expr, pts, dtype="float64")
    assert again.values[0, 0] == pytest.approx(1 - math.tanh(0.5) ** 2, rel=1e-15)


# ---- where the chain rule's literal reading is not decisive, sympy's algebra decides ----


def test_an_entry_the_chain_rule_leaves_undefined_is_answered_by_sympys_algebra() -> None:
    # fmod(x, x) = 0: literally its floor(|x / x|) sits on a jump for every x
    truth = ENGINE.evaluate(c("fmod", x, x), np.array([[2.5]]), dtype="float64")
    assert truth.status.tolist() == [["ok"]] and truth.values.tolist() == [[0.0]]


def test_an_entry_the_chain_rule_leaves_a_kink_is_answered_by_sympys_algebra() -> None:
    # |x| * |x| = x**2: the hulls of sign(0) * sign(0) say only [-2, 2] for f''(0)
    truth = ENGINE.evaluate(c("mul", c("abs", x), c("abs", x)), np.array([[0.0]]), dtype="float64", order=2)
    assert truth.status.tolist() == [[["ok"]]] and truth.values.tolist() == [[[2.0]]]


def test_a_tree_sympys_whole_tree_forms_cannot_run_keeps_the_chain_rules_answers() -> None:
    # sympy's cse of the whole tree's derivative leaves conjugate(...), which the truth
    # has no rule for; the chain rule differentiates it op by op. At x = 0 log(x) is
    # undefined, so the sympy forms are asked for and refuse: the entry stays undefined.
    tree = c("softsign", c("log", c("softplus_beta", c("log", x), k(1), k(20))))
    truth = ENGINE.evaluate(tree, np.array([[2.0], [0.0]]), dtype="float64")
    assert truth.status.tolist() == [["ok"], ["undefined"]]
    # f = softsign(log(log(1 + x))): f' = 1 / (1 + v)**2 / log(1 + x) / (1 + x), v = log(log(1 + x))
    with mp.workdps(50):
        v = mp.log(mp.log(3))
        exact = float(1 / (1 + v) ** 2 / mp.log(3) / 3)
    assert truth.values[0, 0] == exact


def test_a_tree_whose_sympy_form_gains_a_conjugate_is_still_evaluated() -> None:
    # sympy writes sign(z) of an argument it cannot prove real with a conjugate; the
    # builder falls back to the real stand-ins (a campaign case errored on this tree)
    expr = parse("fmod(logaddexp(softsign(x), logit(x)), xdivy(y, y))")
    got = ENGINE.values(expr, np.array([[0.5, 0.5], [0.75, 1.0]]), dtype="float64")
    with mpmath.workdps(50):
        want = [mpmath.log(mpmath.exp(s) + mpmath.exp(lg)) for s, lg in ((1 / mpmath.mpf(3), 0),
                (mpmath.mpf(3) / 7, mpmath.log(3)))]
        want = [float(w - mpmath.floor(w)) for w in want]
    assert got.tolist() == want
