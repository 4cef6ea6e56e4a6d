"""The JAX engine against closed-form derivatives, to a few ulp in each dtype.

Expected values are hand-derived closed forms (or sympy's derivative of one op) evaluated
at 200 bits with mpmath / sympy at points every dtype holds exactly, then rounded once.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import pytest
import sympy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.dtypes import round_array, ulp
from harness.engines.base import Engine, EngineError
from harness.expr import Call, Const, Expr, Var
from harness.ops import OPS, _eig3_gaps
from harness.truth.forms import Floor, FloorSpike, RealAbs, RealSign, realify

x, y = Var("x"), Var("y")


def pow_(base: Expr, exponent: int) -> Expr:
    return Call("pow", (base, Const(Fraction(exponent))))

M = mpmath.mpf
MpFn = Callable[..., list[Any]]

# Each derivative below is a chain of at most about six roundings, each within 1 ulp for
# the arithmetic and within ~1-2 ulp for XLA's elementary functions, so its error is a few
# ulp of the size of the terms it adds ("scale"; the value itself unless terms cancel).
ULPS = 8


@dataclass(frozen=True)
class Case:
    """An expression, points (sorted variable columns), closed forms and their scales.

    ``hessian_scale`` gives the magnitude of the terms whose sum is each Hessian entry:
    where they cancel, rounding error is relative to them, not to the small sum.
    """

    name: str
    expr: Expr
    points: np.ndarray
    gradient: MpFn
    hessian: MpFn
    hessian_scale: MpFn | None = None


def _pow_hessian(a: Any, b: Any, sign: int) -> list[list[Any]]:
    q = 1 + b**2
    return [
        [6 * a / q, -6 * a**2 * b / q**2],
        [-6 * a**2 * b / q**2, a**3 * (6 * b**2 + sign * 2) / q**3],
    ]


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
        # JAX's real pow handles negative bases with integer exponents.
        np.array([[0.75, 0.5], [1.5, -0.25], [-2.0, 1.25], [-0.625, -1.5]]),
        lambda a, b: [3 * a**2 / (1 + b**2), -2 * b * a**3 / (1 + b**2) ** 2],
        lambda a, b: _pow_hessian(a, b, -1),
        # d2/dy2 = a**3 (6b**2 - 2) / (1 + b**2)**3 is a difference of two terms.
        lambda a, b: [[abs(v) for v in row] for row in _pow_hessian(a, b, +1)],
    ),
    Case(
        "log(x)*x",
        Call("mul", (Call("log", (x,)), x)),
        np.array([[0.25], [1.5], [2.25], [5.0]]),
        lambda a: [mpmath.log(a) + 1],
        lambda a: [[1 / a]],
    ),
)


def truth(fn: MpFn, points: np.ndarray) -> np.ndarray:
    """``fn`` at every point, in 200-bit arithmetic, rounded once to float64."""
    with mpmath.workprec(200):
        return np.array([np.array(fn(*(M(float(v)) for v in p)), dtype=float) for p in points])


def error_in_ulps(got: np.ndarray, want: np.ndarray, scale: np.ndarray, dtype: str) -> float:
    return float(np.max(np.abs(got - want) / ulp(scale, dtype)))


@pytest.fixture(scope="module")
def jax_engines() -> dict[str, Engine]:
    pytest.importorskip("jax")
    from harness.engines.jax_ad import JaxEngine

    return {mode: JaxEngine(mode) for mode in ("reverse", "forward")}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("order", [1, 2])
def test_jax_matches_closed_form_to_a_few_ulp(
    jax_engines: dict[str, Engine], case: Case, dtype: str, mode: str, order: int
) -> None:
    got = jax_engines[mode].derivatives(case.expr, case.points, dtype=dtype, order=order)
    want = truth(case.gradient if order == 1 else case.hessian, case.points)
    scale = want
    if order == 2 and case.hessian_scale is not None:
        scale = truth(case.hessian_scale, case.points)
    assert got.dtype == np.float64
    assert error_in_ulps(got, want, scale, dtype) <= ULPS


dyadic = st.integers(-192, 192).map(lambda k: k / 64)


@settings(max_examples=25, deadline=None)
@given(a=dyadic, b=dyadic, dtype=st.sampled_from(["float64", "float32"]))
def test_jax_gradient_is_within_a_few_ulp_at_any_point(
    jax_engines: dict[str, Engine], a: float, b: float, dtype: str
) -> None:
    case = CASES[1]
    point = np.array([[a, b]])
    want = truth(case.gradient, point)
    for engine in jax_engines.values():
        got = engine.derivatives(case.expr, point, dtype=dtype)
        assert error_in_ulps(got, want, want, dtype) <= ULPS, engine.name


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_a_narrow_dtype_is_computed_in_that_dtype(jax_engines: dict[str, Engine], dtype: str) -> None:
    case = CASES[0]
    engine = jax_engines["reverse"]
    got = engine.derivatives(case.expr, case.points, dtype=dtype)
    got64 = engine.derivatives(case.expr, case.points, dtype="float64")
    np.testing.assert_array_equal(got, round_array(got, dtype))
    assert (got != got64).any()


def test_float64_does_not_leave_x64_mode_switched_on(jax_engines: dict[str, Engine]) -> None:
    import jax
    import jax.numpy as jnp

    before = jax.config.read("jax_enable_x64")
    jax_engines["forward"].derivatives(CASES[2].expr, CASES[2].points, dtype="float64")
    assert jax.config.read("jax_enable_x64") == before
    if not before:
        assert jnp.asarray(1.0).dtype == jnp.float32


def test_nan_and_inf_come_back_as_jax_computes_them(jax_engines: dict[str, Engine]) -> None:
    engine = jax_engines["reverse"]
    # d/dx log(x)*x = log(x) + 1: NaN at x = -1.
    got = engine.derivatives(CASES[2].expr, np.array([[-1.0], [1.0]]), dtype="float64")
    assert np.isnan(got[0, 0])
    assert got[1, 0] == 1.0
    # d/dx sqrt(x) = 1 / (2 sqrt(x)): +inf at 0.
    inf = engine.derivatives(Call("sqrt", (x,)), np.array([[0.0]]), dtype="float32")
    assert inf[0, 0] == np.inf


def test_namespace_covers_every_op_of_the_table() -> None:
    pytest.importorskip("jax")
    from harness.engines.jax_ad import JaxEngine, jax_namespace

    with_kernel = {name for name, row in OPS.items() if row.jax is not None}
    assert set(jax_namespace().kernels) == with_kernel
    assert with_kernel >= set(OPS) - {"softplus_beta"}  # jax.nn.softplus has no beta
    assert all(JaxEngine().supports(name) for name in with_kernel)
    assert not JaxEngine().supports("no_such_op")


# Candidate arguments, tried in order until one tuple lies well inside the op's domain and
# away from its kinks and jumps (dyadic, so sympy gets them exactly).
_CANDIDATES = (Fraction(3, 8), Fraction(5, 4), Fraction(-3, 4), Fraction(5, 2), Fraction(13, 8))


def _unit_case(name: str) -> tuple[Expr, list[Any], list[Fraction]]:
    """``name`` on variables (its constant parameters at their first ``params`` values),
    the variables' sympy symbols and a point well inside its domain and clear of kinks."""
    import itertools

    import torch

    row = OPS[name]
    fixed = dict(zip(row.const_args, row.params[0], strict=True)) if row.params else {}
    free = [i for i in range(row.arity) if i not in fixed]
    # zero-padded so that sorted names keep the arguments in order (v02 before v10)
    names = ("x", "y", "z") if len(free) <= 3 else tuple(f"v{i:02d}" for i in range(len(free)))
    for values in itertools.product(_CANDIDATES, repeat=len(free)):
        given = dict(zip(free, values, strict=True)) | fixed
        t = [torch.tensor([float(given[i])], dtype=torch.float64) for i in range(row.arity)]
        # the 3x3 eigenvalues' closed form is singular wherever any two of them repeat
        simple = not name.startswith("eigvalsh3") or bool((_eig3_gaps(*t) > 0.1).all())
        if row.domain(*t).item() > 0.1 and (row.kinks is None or row.kinks(*t).item() > 0.1) and simple:
            break
    args: list[Expr] = []
    for i in range(row.arity):
        args.append(Const(fixed[i]) if i in fixed else Var(names[free.index(i)]))
    return Call(name, tuple(args)), [given[i] for i in free], [given[i] for i in range(row.arity)]


@pytest.mark.parametrize("name", sorted(n for n, row in OPS.items() if row.jax is not None))
def test_each_namespace_entry_differentiates_like_its_sympy_row(
    jax_engines: dict[str, Engine], name: str
) -> None:
    """Catches a table entry that maps an op to the wrong JAX function or argument order."""
    row = OPS[name]
    expr, point_values, all_values = _unit_case(name)
    symbols = [sympy.Symbol(f"a{i}", real=True) for i in range(row.arity)]
    f = realify(row.sympy_fn(*symbols))
    exact = {s: sympy.Rational(a.numerator, a.denominator) for s, a in zip(symbols, all_values, strict=True)}
    free = [s for i, s in enumerate(symbols) if i not in row.const_args or not row.params]
    want = []
    for s in free:
        d = sympy.diff(f, s).replace(sympy.DiracDelta, lambda *a: sympy.Integer(0))
        d = d.replace(FloorSpike, lambda *a: sympy.Integer(0))
        d = d.replace(RealAbs, sympy.Abs).replace(RealSign, sympy.sign).replace(Floor, sympy.floor)
        want.append(float(d.subs(exact).evalf(40)))
    point = np.array([[float(a) for a in point_values]])
    for dtype in ("float64", "float32"):
        got = jax_engines["reverse"].derivatives(expr, point, dtype=dtype)
        wanted = np.array([want])
        # A zero derivative (floor, sign) must come back as exactly zero; through LAPACK
        # (a conditioned row: cholesky's partials by a matrix entry that cancels, an
        # eigenvector's products) every partial carries rounding noise of the largest
        # partial's size.
        scale = np.where(wanted == 0, 0.0, wanted)
        budget = float(ULPS)
        if row.conditioned:
            scale = np.full_like(wanted, np.abs(wanted).max())
            if row.grad_noise is not None:  # the row's own noise, in units of the dtype's u
                args = tuple(float(a) for a in all_values)
                value = float(row.torch_fn(*(torch.tensor([a], dtype=torch.float64) for a in args)))
                noise = max(float(np.max(np.abs(n))) for n in row.grad_noise(args, value, tuple(want)))
                budget = max(budget, noise / np.abs(wanted).max())
        assert error_in_ulps(got, wanted, scale, dtype) <= budget, dtype


def test_engine_names_and_protocol(jax_engines: dict[str, Engine]) -> None:
    assert [e.name for e in jax_engines.values()] == ["jax:reverse", "jax:forward"]
    assert all(isinstance(e, Engine) for e in jax_engines.values())


def test_bad_mode_and_unknown_dtype_are_refused(jax_engines: dict[str, Engine]) -> None:
    from harness.engines.jax_ad import JaxEngine

    with pytest.raises(ValueError, match="mode='sideways'"):
        JaxEngine("sideways")
    with pytest.raises((ValueError, EngineError), match="float8"):
        jax_engines["reverse"].derivatives(CASES[0].expr, CASES[0].points, dtype="float8")


def test_module_imports_without_jax_and_engine_names_the_install() -> None:
    # A fresh interpreter where `import jax` fails, as on a machine without the extra.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["jax"] = None
        import harness.engines.jax_ad as jax_ad
        try:
            jax_ad.JaxEngine()
        except ImportError as error:
            print(error)
        else:
            print("constructed")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert "pip install diffharness[jax]" in done.stdout
