"""The scipy and numdifftools peer engines against closed-form derivatives.

The expected values are hand-derived closed forms evaluated with mpmath at 200 bits, at
points every dtype holds exactly; nothing from the harness computes them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.engines.base import Engine, EngineError
from harness.expr import Call, Const, Expr, Var

x, y = Var("x"), Var("y")


def pow_(base: Expr, exponent: int) -> Expr:
    return Call("pow", (base, Const(Fraction(exponent))))

M = mpmath.mpf
MpFn = Callable[..., list[object]]


@dataclass(frozen=True)
class Case:
    """An expression, points (columns x, y in sorted order) and its closed-form derivatives."""

    name: str
    expr: Expr
    points: np.ndarray
    gradient: MpFn
    hessian: MpFn


CASES = (
    Case(
        "sin(x)*exp(y)",
        Call("mul", (Call("sin", (x,)), Call("exp", (y,)))),
        np.array([[0.75, 0.5], [1.5, -0.25], [-2.0, 1.25]]),
        lambda a, b: [mpmath.cos(a) * mpmath.exp(b), mpmath.sin(a) * mpmath.exp(b)],
        lambda a, b: [
            [-mpmath.sin(a) * mpmath.exp(b), mpmath.cos(a) * mpmath.exp(b)],
            [mpmath.cos(a) * mpmath.exp(b), mpmath.sin(a) * mpmath.exp(b)],
        ],
    ),
    Case(
        "x**3/(1+y**2)",
        Call("div", (pow_(x, 3), Call("add", (Const(Fraction(1)), pow_(y, 2))))),
        # Positive bases: see test_complex_step_through_pow_at_a_negative_base for x < 0.
        np.array([[0.75, 0.5], [1.5, 0.25], [2.0, 1.25]]),
        lambda a, b: [3 * a**2 / (1 + b**2), -2 * b * a**3 / (1 + b**2) ** 2],
        lambda a, b: [
            [6 * a / (1 + b**2), -6 * a**2 * b / (1 + b**2) ** 2],
            [-6 * a**2 * b / (1 + b**2) ** 2, a**3 * (6 * b**2 - 2) / (1 + b**2) ** 3],
        ],
    ),
    Case(
        "log(x)*x",
        # Points stay at x >= 1.25: scipy's default stencil reaches 0.5 either side, and
        # its Hessian nests two of them.
        Call("mul", (Call("log", (x,)), x)),
        np.array([[1.25], [1.5], [2.25], [5.0]]),
        lambda a: [mpmath.log(a) + 1],
        lambda a: [[1 / a]],
    ),
)


def truth(fn: MpFn, points: np.ndarray) -> np.ndarray:
    """``fn`` at every point, in 200-bit arithmetic, rounded once to float64."""
    with mpmath.workprec(200):
        return np.array([np.array(fn(*(M(float(v)) for v in p)), dtype=float) for p in points])


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want) / np.abs(want)))


def scipy_engine(**options: object) -> Engine:
    pytest.importorskip("scipy.differentiate")
    from harness.engines.peers import ScipyDerivativeEngine

    return ScipyDerivativeEngine(**options)


def numdifftools_engine(method: str = "central", **options: object) -> Engine:
    pytest.importorskip("numdifftools")
    from harness.engines.peers import NumdifftoolsEngine

    return NumdifftoolsEngine(method, **options)


# scipy stops once two successive estimates agree to rtol = sqrt(eps) (its documented
# default); the error of the last estimate is below that difference for these smooth
# functions, so sqrt(eps) relative is the accuracy scipy itself promises.
SCIPY_RTOL = float(np.sqrt(np.finfo(np.float64).eps))

# numdifftools documents no error bound. These are the worst relative errors measured on
# CASES times about 30. Central differences with Richardson extrapolation reach ~2e-13 for
# a gradient and ~4e-12 for a Hessian; one-sided differences ~4e-12 and ~1e-7 (a second
# difference loses about twice the digits of a first one, and one-sided stencils start
# from a worse truncation error). The complex step has no cancellation for a gradient
# (~2e-16), but numdifftools' complex Hessian (Lai et al.'s formula, which does subtract)
# reaches only ~4e-7.
NUMDIFFTOOLS_RTOL = {
    ("central", 1): 1e-11,
    ("forward", 1): 1e-10,
    ("backward", 1): 1e-10,
    ("complex", 1): 1e-14,
    ("central", 2): 1e-10,
    ("forward", 2): 3e-6,
    ("backward", 2): 3e-6,
    ("complex", 2): 1e-5,
}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("order", [1, 2])
def test_scipy_derivative_matches_closed_form_within_its_default_tolerance(
    case: Case, order: int
) -> None:
    engine = scipy_engine()
    got = engine.derivatives(case.expr, case.points, dtype="float64", order=order)
    want = truth(case.gradient if order == 1 else case.hessian, case.points)
    assert got.dtype == np.float64
    assert relative_error(got, want) <= SCIPY_RTOL


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("method", ["central", "forward", "backward", "complex"])
@pytest.mark.parametrize("order", [1, 2])
def test_numdifftools_matches_closed_form_to_its_measured_accuracy(
    case: Case, method: str, order: int
) -> None:
    engine = numdifftools_engine(method)
    got = engine.derivatives(case.expr, case.points, dtype="float64", order=order)
    want = truth(case.gradient if order == 1 else case.hessian, case.points)
    assert relative_error(got, want) <= NUMDIFFTOOLS_RTOL[(method, order)]


@settings(max_examples=15, deadline=None)
@given(
    a=st.floats(0.75, 8.0).map(lambda v: round(v * 64) / 64),
    b=st.floats(-3.0, 3.0).map(lambda v: round(v * 64) / 64),
)
def test_both_peers_differentiate_each_variable_with_the_others_held_fixed(
    a: float, b: float
) -> None:
    # The partials y/x + y**2 and log(x) + 2*x*y differ, so a swapped column, a swapped
    # output slot or a variable not held fixed shows up as a wrong value.
    expr = Call(
        "add", (Call("mul", (Call("log", (x,)), y)), Call("mul", (x, pow_(y, 2))))
    )
    point = np.array([[a, b]])
    want = truth(lambda u, v: [v / u + v**2, mpmath.log(u) + 2 * u * v], point)
    scale = np.abs(want).max() + 1.0
    for engine in (scipy_engine(), numdifftools_engine()):
        got = engine.derivatives(expr, point, dtype="float64")
        assert np.max(np.abs(got - want)) <= SCIPY_RTOL * scale, engine.name


POW_CASE = CASES[1]
NEGATIVE_BASES = np.array([[-2.0, -0.25], [-0.75, -1.5]])


@pytest.mark.parametrize("method", ["central", "forward", "backward"])
def test_real_steps_differentiate_pow_at_negative_bases(method: str) -> None:
    want = truth(POW_CASE.gradient, NEGATIVE_BASES)
    rtol = {"scipy": SCIPY_RTOL, "numdifftools": NUMDIFFTOOLS_RTOL[(method, 1)]}
    for engine in (scipy_engine(), numdifftools_engine(method)):
        got = engine.derivatives(POW_CASE.expr, NEGATIVE_BASES, dtype="float64")
        assert relative_error(got, want) <= rtol[engine.name.split(":")[0]], engine.name


def test_complex_step_through_pow_at_a_negative_base() -> None:
    # torch_function passes pow's constant exponent as a Python number; the tensor path
    # went through log's branch cut and lost the 3x**2*h term at negative bases.
    want = truth(POW_CASE.gradient, NEGATIVE_BASES)
    got = numdifftools_engine("complex").derivatives(
        POW_CASE.expr, NEGATIVE_BASES, dtype="float64"
    )
    assert relative_error(got, want) <= NUMDIFFTOOLS_RTOL[("complex", 1)]


def test_scipy_returns_nan_where_its_stencil_leaves_the_domain_and_options_reach_scipy() -> None:
    expr = Call("log", (x,))
    points = np.array([[0.25], [1.0]])
    default = scipy_engine().derivatives(expr, points, dtype="float64")
    # The default initial step 0.5 evaluates log(0.25 - 0.5): NaN, which the engine passes on.
    assert np.isnan(default[0, 0])
    assert default[1, 0] == pytest.approx(1.0, rel=SCIPY_RTOL)
    small_steps = scipy_engine(initial_step=0.125).derivatives(expr, points, dtype="float64")
    np.testing.assert_allclose(small_steps[:, 0], [4.0, 1.0], rtol=SCIPY_RTOL)


@pytest.mark.parametrize("order", [1, 2])
def test_numdifftools_returns_nan_outside_the_domain_without_warning(order: int) -> None:
    # pytest turns warnings into errors, so a warning from numdifftools would fail this.
    expr = Call("log", (x,))
    got = numdifftools_engine().derivatives(
        expr, np.array([[0.25], [-1.0], [0.0]]), dtype="float64", order=order
    )
    flat = got.reshape(3)
    assert flat[0] == pytest.approx(4.0 if order == 1 else -16.0, rel=1e-9)
    assert np.isnan(flat[1:]).all()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_peers_refuse_dtypes_other_than_float64(dtype: str) -> None:
    expr = Call("sin", (x,))
    for engine in (scipy_engine(), numdifftools_engine()):
        with pytest.raises(EngineError, match=f"dtype='{dtype}'"):
            engine.derivatives(expr, np.array([[0.5]]), dtype=dtype)


def test_complex_step_supports_only_ops_the_op_table_allows_it_through() -> None:
    from harness.ops import OPS

    engine = numdifftools_engine("complex")
    assert {name for name in OPS if engine.supports(name)} == {
        name for name, row in OPS.items() if row.complex_step
    }
    assert not engine.supports("abs")
    with pytest.raises(EngineError, match="abs"):
        engine.derivatives(Call("abs", (x,)), np.array([[0.5]]), dtype="float64")
    assert all(numdifftools_engine("central").supports(name) for name in OPS)
    assert not numdifftools_engine("central").supports("no_such_op")


def test_engine_names_and_protocol() -> None:
    engines = [scipy_engine(), numdifftools_engine("central"), numdifftools_engine("forward")]
    assert [e.name for e in engines] == [
        "scipy:derivative",
        "numdifftools:central",
        "numdifftools:forward",
    ]
    assert all(isinstance(e, Engine) for e in engines)


def test_bad_arguments_are_refused_when_the_engine_is_built() -> None:
    pytest.importorskip("numdifftools")
    from harness.engines.peers import NumdifftoolsEngine

    with pytest.raises(TypeError, match="step_size"):
        scipy_engine(step_size=0.1)
    with pytest.raises(ValueError, match="method='multicomplex'"):
        NumdifftoolsEngine("multicomplex")


def test_missing_numdifftools_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.engines.peers import NumdifftoolsEngine

    monkeypatch.setitem(sys.modules, "numdifftools", None)  # makes `import numdifftools` fail
    with pytest.raises(ImportError, match=r"pip install diffharness\[peers\]"):
        NumdifftoolsEngine()
