"""The Hypothesis strategies: argument checks, validity of points, kinks, shrinking, health.

Expected facts are worked out by hand here (where log is defined, what float16 overflows
at); the independent 50-digit check of generated points is in
``tests/properties/test_expressions.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from random import Random
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import find, given, settings
from hypothesis.errors import Unsatisfiable

from harness.dtypes import DTYPES, round_array
from harness.engines.torch_ad import torch_function
from harness.expr import Call, Const, Expr, Var, to_sympy, variables, walk
from harness.ops import DEFAULT_OPS, JUMP_OPS, KINK_OPS, OPS, TENSOR_OPS
from harness.strategies import MARGIN, cases, expressions, points, valid_points

# the elementwise ops: the tensor ops' kinks (amax's ties, a norm's zero vector) have
# rules of their own and would dilute the kink draws these tests count
ALL_OPS = tuple(o for o in DEFAULT_OPS + KINK_OPS + JUMP_OPS if o not in TENSOR_OPS)
x, y = Var("x"), Var("y")
# Health checks on, whatever profile the run loaded; derandomised so counts are repeatable.
HEALTHY = settings(deadline=None, suppress_health_check=())
REPEATABLE = settings(deadline=None, derandomize=True, database=None)


def call(op: str, *args: Expr) -> Call:
    return Call(op, args)


def c(p: int, q: int = 1) -> Const:
    return Const(Fraction(p, q))


def collect(strategy: Any, n: int) -> list[Any]:
    """``n`` examples drawn the way a test draws them (a derandomised ``@given`` run)."""
    out: list[Any] = []

    @settings(REPEATABLE, max_examples=n)
    @given(strategy)
    def run(value: Any) -> None:
        out.append(value)

    run()
    return out


# ---- argument checks -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"ops": ("sin", "sine")}, ValueError, r"unknown op\(s\) \['sine'\]; known ops: .*sin"),
        ({"ops": "sin"}, TypeError, r"ops='sin' must be a sequence of op names"),
        ({"max_size": 0}, ValueError, r"max_size=0 must be an integer >= 1"),
        ({"max_size": 2.5}, ValueError, r"max_size=2.5 must be an integer"),
        ({"variables": ()}, ValueError, r"variables=\(\) must be a non-empty sequence"),
        ({"variables": "xy"}, ValueError, r"variables='xy' must be a non-empty sequence"),
        ({"variables": ("x", "x")}, ValueError, r"contains a name twice"),
        ({"variables": ("x", "1y")}, ValueError, r"variables=\('x', '1y'\).*expected a letter"),
        ({"variables": ("sin",)}, ValueError, r"op name or Python keyword"),
        ({"constants": (0.5,)}, ValueError, r"constants contains 0.5; .*Fraction\(3, 8\)"),
        ({"constants": (Fraction(1, 3),)}, ValueError, r"1/3, which float16 does not hold"),
        ({"constants": (Fraction(1, 2**30),)}, ValueError, r"which float16 does not hold"),
        ({"constants": (257,)}, ValueError, r"257, which bfloat16 does not hold"),
        ({"ops": ("pow",), "exponents": ()}, ValueError, r"exponents=\(\) is empty"),
    ],
)
def test_expressions_refuses_bad_arguments_with_a_clear_message(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        expressions(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, r"n=0 must be an integer >= 1"),
        ({"dtype": "float8"}, r"dtype='float8' is not supported; expected one of float64"),
        ({"kinks": "sometimes"}, r"kinks='sometimes' must be 'avoid' or 'include'"),
        ({"margin": -1.0}, r"margin=-1.0 must be a finite number >= 0"),
        ({"margin": math.nan}, r"margin=nan must be a finite number >= 0"),
    ],
)
def test_points_refuses_bad_arguments_with_a_clear_message(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        points(x, **kwargs)


def test_cases_checks_its_arguments_when_called() -> None:
    with pytest.raises(ValueError, match="n=0 must be"):
        cases(n_points=0)
    with pytest.raises(ValueError, match="unknown op"):
        cases(("nope",))


def test_valid_points_names_a_shape_that_does_not_match_the_variables() -> None:
    with pytest.raises(ValueError, match=r"pts.shape=\(3, 1\) does not match .*\('x', 'y'\)"):
        valid_points(call("add", x, y), np.zeros((3, 1)))


# ---- valid_points ----------------------------------------------------------------------


def test_valid_points_needs_the_margin_inside_the_domain() -> None:
    pts = np.array([[0.5], [-1.0], [MARGIN], [0.0703125]])
    assert valid_points(call("log", x), pts).tolist() == [True, False, False, True]


def test_valid_points_avoids_kinks_unless_told_to_include_them() -> None:
    pts = np.array([[0.0], [0.03125], [0.5]])
    assert valid_points(call("abs", x), pts).tolist() == [False, False, True]
    assert valid_points(call("abs", x), pts, kinks="include").tolist() == [True, True, True]
    tie = np.array([[1.0, 1.0], [1.0, 2.0]])
    assert valid_points(call("max", x, y), tie).tolist() == [False, True]


def test_kinks_of_variable_free_parts_do_not_count() -> None:
    tree = call("add", call("max", c(0), c(0)), x)
    assert valid_points(tree, np.array([[0.5], [3.0]])).all()


def test_valid_points_checks_finiteness_in_the_tested_dtype() -> None:
    pts = np.array([[12.0], [1.0]])  # exp(12) = 162755 > 65504, the float16 maximum
    assert valid_points(call("exp", x), pts, "float16").tolist() == [False, True]
    assert valid_points(call("exp", x), pts, "float64").tolist() == [True, True]


def test_valid_points_bounds_magnitudes_even_where_float64_is_finite() -> None:
    pts = np.array([[40.0], [20.0]])  # e**40 ~ 2.4e17 > 2**40 ~ 1.1e12 > e**20
    assert valid_points(call("exp", x), pts).tolist() == [False, True]


def test_valid_points_sees_cancellation_in_the_tested_dtype() -> None:
    big = c(2**24)  # float32 rounds 1 + 2**24 back to 2**24, so the log's argument is 0
    tree = call("log", call("sub", call("add", x, big), big))
    assert valid_points(tree, np.array([[1.0]]), "float64").tolist() == [True]
    assert valid_points(tree, np.array([[1.0]]), "float32").tolist() == [False]


# ---- expressions -----------------------------------------------------------------------


@settings(HEALTHY, max_examples=100)
@given(expressions(("log", "sqrt", "div", "asin", "exp"), variables=("x",), constants=(-1, 0, 4)))
def test_variable_free_calls_are_defined_and_finite(expr: Expr) -> None:
    for node in walk(expr):
        if isinstance(node, Call) and not variables(node):
            value = complex(to_sympy(node).evalf(30))
            assert value.imag == 0 and math.isfinite(value.real), str(node)


def test_kink_and_jump_ops_appear_when_passed() -> None:
    def has(op: str) -> Callable[[Expr], bool]:
        return lambda e: any(isinstance(n, Call) and n.op == op for n in walk(e))

    enough = settings(database=None, max_examples=2000)
    found = find(expressions(ALL_OPS), has("relu"), settings=enough, random=Random(0))
    assert found == call("relu", x)
    found = find(expressions(ALL_OPS), has("floor"), settings=enough, random=Random(0))
    assert found == call("floor", x)


def test_unary_ops_shrink_in_table_order_whatever_order_they_are_passed_in() -> None:
    found = find(expressions(("cos", "sin")), lambda e: isinstance(e, Call),
                 settings=settings(database=None), random=Random(0))
    assert found == call("sin", x)


def test_constants_shrink_toward_the_first_listed() -> None:
    def has_constant(e: Expr) -> bool:
        return any(isinstance(n, Const) for n in walk(e))

    strategy = expressions(("add",), constants=(Fraction(3, 8), 1))
    found = find(strategy, has_constant, settings=settings(database=None), random=Random(0))
    assert found == c(3, 8)


# ---- points ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_cases_are_exact_in_their_dtype_and_finite_when_computed_in_it(dtype: str) -> None:
    @settings(HEALTHY, max_examples=40)
    @given(cases(ALL_OPS, dtype=dtype))
    def check(case: tuple[Expr, np.ndarray]) -> None:
        expr, pts = case
        assert variables(expr), "cases() trees use at least one variable"
        assert pts.dtype == np.float64 and pts.shape == (32, len(variables(expr)))
        assert (round_array(pts, dtype) == pts).all()
        t = torch.as_tensor(pts).to(DTYPES[dtype].torch)
        value = torch_function(expr)([t[:, j] for j in range(pts.shape[1])])
        assert torch.isfinite(value).all()

    check()


@pytest.mark.parametrize(
    ("expr", "inside"),
    [
        (call("log", x), lambda p: p[:, 0] > 1 / 16),
        (call("asin", x), lambda p: np.abs(p[:, 0]) < 15 / 16),
        (call("sqrt", call("sub", x, c(3))), lambda p: p[:, 0] > 3 + 1 / 16),
        (call("div", c(1), x), lambda p: np.abs(p[:, 0]) > 1 / 16),
        (call("max", x, y), lambda p: np.abs(p[:, 0] - p[:, 1]) > 1 / 16),
        (call("floor", x), lambda p: np.abs(p[:, 0] - np.round(p[:, 0])) > 1 / 16),
        (call("pow", x, c(1, 2)), lambda p: p[:, 0] > 1 / 16),
    ],
    ids=["log", "asin", "sqrt-shifted", "reciprocal", "max", "floor", "pow-half"],
)
def test_points_lie_inside_the_domain_by_the_margin(
    expr: Expr, inside: Callable[[np.ndarray], np.ndarray]
) -> None:
    @settings(HEALTHY, max_examples=25)
    @given(points(expr))
    def check(pts: np.ndarray) -> None:
        assert inside(pts).all()

    check()


def test_float16_points_keep_every_subexpression_finite_in_float16() -> None:
    # exp(exp(x)) <= 65504 needs x <= log(log(65504)) = 2.406...
    for pts in collect(points(call("exp", call("exp", x)), dtype="float16"), 25):
        assert (pts[:, 0] < 2.407).all()


def test_rows_outside_the_domain_are_replaced_by_varied_valid_rows() -> None:
    # Most drawn coordinates lie in [-4, 4], where sqrt(x - 3) is mostly undefined.
    for pts in collect(points(call("sqrt", call("sub", x, c(3)))), 10):
        assert (pts[:, 0] > 3).all()
        assert len(np.unique(pts)) >= 4


def test_a_tree_with_no_valid_point_is_the_only_thing_rejected() -> None:
    with pytest.raises(Unsatisfiable):
        find(points(call("log", c(-1))), lambda p: True, settings=settings(database=None))
    with pytest.raises(Unsatisfiable):
        find(points(call("div", x, call("sub", x, x)), n=4), lambda p: True,
             settings=settings(database=None, max_examples=3))


def test_a_variable_free_tree_gets_points_with_no_columns() -> None:
    [pts] = collect(points(call("exp", c(1)), n=8), 1)
    assert pts.shape == (8, 0)


@settings(HEALTHY, max_examples=5)
@given(points(call("add", x, y), n=600))
def test_many_points_stay_within_hypothesis_data_limits(pts: np.ndarray) -> None:
    assert pts.shape == (600, 2)
    assert valid_points(call("add", x, y), pts).all()


def test_points_shrink_toward_special_values() -> None:
    found = find(points(call("add", x, y), n=4), lambda p: (p > 2).any(),
                 settings=settings(database=None))
    assert sorted(found[found != 0].tolist()) == [3.0]


# ---- kinks included --------------------------------------------------------------------

EXACT_KINK: dict[str, Callable[..., torch.Tensor]] = {
    "abs": lambda a: a == 0,
    "relu": lambda a: a == 0,
    "sign": lambda a: a == 0,
    "max": lambda a, b: a == b,
    "min": lambda a, b: a == b,
    "floor": lambda a: a == torch.floor(a),
}


def exact_kink_rows(expr: Expr, pts: np.ndarray) -> np.ndarray:
    """Rows where some variable-dependent kink or jump op sits exactly on its kink."""
    names = variables(expr)
    cols = [torch.as_tensor(pts[:, names.index(n)]) for n in names]
    hit = torch.zeros(len(pts), dtype=torch.bool)
    for node in walk(expr):
        if isinstance(node, Call) and node.op in EXACT_KINK and variables(node):
            args = [torch_function(a)([cols[names.index(n)] for n in variables(a)])
                    for a in node.args]
            hit |= EXACT_KINK[node.op](*args)
    return hit.numpy()


def test_including_kinks_puts_points_exactly_on_them_often() -> None:
    for expr in (call("abs", x), call("max", x, y), call("relu", call("sub", x, c(3, 8)))):
        examples = collect(points(expr, kinks="include"), 40)
        on_kink = [exact_kink_rows(expr, p).any() for p in examples]
        assert np.mean(on_kink) >= 0.25, str(expr)


def test_generated_cases_with_kinks_included_exercise_kink_rules() -> None:
    examples = collect(cases(ALL_OPS, kinks="include"), 80)
    kinked = [(e, p) for e, p in examples
              if any(isinstance(n, Call) and n.op in EXACT_KINK and variables(n) for n in walk(e))]
    assert len(kinked) >= 10
    assert np.mean([exact_kink_rows(e, p).any() for e, p in kinked]) >= 0.5


def test_special_values_are_common_when_kinks_are_included() -> None:
    examples = collect(points(call("add", x, y), kinks="include"), 30)
    coords = np.concatenate([p.ravel() for p in examples])
    assert np.isin(coords, [0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5]).mean() >= 0.2


def test_avoiding_kinks_never_lands_on_one() -> None:
    for expr, pts in collect(cases(ALL_OPS, kinks="avoid"), 60):
        assert not exact_kink_rows(expr, pts).any()


# ---- health checks at default settings -------------------------------------------------


@settings(HEALTHY, max_examples=100)
@given(expressions(ALL_OPS))
def test_expressions_pass_the_health_checks(expr: Expr) -> None:
    assert all(n.op in OPS for n in walk(expr) if isinstance(n, Call))


@pytest.mark.parametrize(
    ("dtype", "kinks"), [("float64", "avoid"), ("float16", "include"), ("bfloat16", "avoid")]
)
def test_cases_pass_the_health_checks(dtype: str, kinks: str) -> None:
    @settings(HEALTHY, max_examples=60)
    @given(cases(ALL_OPS, dtype=dtype, kinks=kinks))
    def check(case: tuple[Expr, np.ndarray]) -> None:
        expr, pts = case
        assert valid_points(expr, pts, dtype, kinks=kinks).all()

    check()
