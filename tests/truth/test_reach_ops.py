"""The truth of every elementwise reach op (harness.ops.REACH_OPS less the tensor ops,
which tests/truth/test_tensor_ops.py covers) against mpmath at 50 digits, at random points
and at the op's edges in every dtype.

The references are written here from the ops' definitions in mpmath (not from the op
table's sympy builders), and differentiated by mpmath's own numerical differentiation at
50 digits: independent of sympy, arb and the rule table. Points sit inside the op's domain
and away from its kinks and jumps (there the truth judges one-sided limits instead).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import pytest
import torch

from harness.edges import op_edges
from harness.expr import Call, Const, Expr, Var
from harness.ops import OPS, REACH_OPS, TENSOR_OPS
from harness.truth import SymbolicEngine

mp = mpmath.mp
ENGINE = SymbolicEngine()
GELU_C = mpmath.mpf(44715) / 10**6


def _sign(t: Any) -> Any:
    return mp.sign(t)


# op -> mpmath reference of (variables..., constant parameters...)
REFERENCES: dict[str, Callable[..., Any]] = {
    "asinh": mp.asinh,
    "acosh": mp.acosh,
    "atanh": mp.atanh,
    "exp2": lambda t: mp.power(2, t),
    "log2": lambda t: mp.log(t, 2),
    "log10": mp.log10,
    "rsqrt": lambda t: 1 / mp.sqrt(t),
    "reciprocal": lambda t: 1 / t,
    "square": lambda t: t * t,
    "erfc": mp.erfc,
    "logit": lambda t: mp.log(t / (1 - t)),
    "logsigmoid": lambda t: -mp.log1p(mp.exp(-t)),
    "silu": lambda t: t / (1 + mp.exp(-t)),
    "gelu": lambda t: t * (1 + mp.erf(t / mp.sqrt(2))) / 2,
    "gelu_tanh": lambda t: t * (1 + mp.tanh(mp.sqrt(2 / mp.pi) * (t + GELU_C * t**3))) / 2,
    "mish": lambda t: t * mp.tanh(mp.log1p(mp.exp(t))),
    "logaddexp": lambda a, b: mp.log(mp.exp(a) + mp.exp(b)),
    "logaddexp2": lambda a, b: mp.log(mp.power(2, a) + mp.power(2, b), 2),
    "xlogy": lambda a, b: a * mp.log(b),
    "xlog1py": lambda a, b: a * mp.log1p(b),
    "powv": lambda a, b: mp.power(a, b),
    "hypot": lambda a, b: mp.sqrt(a * a + b * b),
    "sinc": lambda t: mp.sincpi(t),
    "erfinv": mp.erfinv,
    "lgamma": mp.loggamma,
    "digamma": mp.digamma,
    "i0": lambda t: mp.besseli(0, t),
    "i1": lambda t: mp.besseli(1, t),
    "i0e": lambda t: mp.exp(-abs(t)) * mp.besseli(0, t),
    "atan2": mp.atan2,
    "hardtanh": lambda t: max(-1, min(1, t)),
    "hardsigmoid": lambda t: max(0, min(1, t / 6 + mpmath.mpf(1) / 2)),
    "hardswish": lambda t: t * max(0, min(1, t / 6 + mpmath.mpf(1) / 2)),
    "softsign": lambda t: t / (1 + abs(t)),
    "elu": lambda t, alpha: t if t > 0 else alpha * mp.expm1(t),
    "selu": lambda t: mpmath.mpf(1.0507009873554805)
    * (t if t > 0 else mpmath.mpf(1.6732632423543772) * mp.expm1(t)),
    "celu": lambda t, alpha: t if t > 0 else alpha * mp.expm1(t / alpha),
    "leaky_relu": lambda t, s: t if t > 0 else s * t,
    "clamp": lambda t, lo, hi: min(max(t, lo), hi),
    "softplus_beta": lambda t, beta, thr: t if beta * t > thr else mp.log1p(mp.exp(beta * t)) / beta,
    "copysign": lambda a, b: abs(a) * _sign(b),
    # C's fmod truncates the quotient (the sign of the dividend); mpmath's fmod floors it
    # (the sign of the divisor), which is torch.remainder and Python's %
    "fmod": lambda a, b: a - b * (mp.floor(a / b) if a / b >= 0 else mp.ceil(a / b)),
    "remainder": mp.fmod,
    "xdivy": lambda a, b: mpmath.mpf(0) if a == 0 else a / b,
}

RANDOM_POINTS = 6
EDGE_POINTS = 24  # per dtype, the simplest first
DIFF_DIGITS = 420  # numerical differentiation: 50 digits after 370 cancel
MARGIN = 2.0**-20  # from kinks, jumps and domain ends (mpmath differentiates across 1e-25)


ELEMENTWISE = tuple(o for o in REACH_OPS if o not in TENSOR_OPS)


def test_every_reach_op_has_a_reference() -> None:
    assert set(REFERENCES) == set(ELEMENTWISE)


def _case(name: str) -> tuple[Expr, tuple[Fraction, ...]]:
    """``name`` on variables x, y, z with its constant parameters at their defaults."""
    row = OPS[name]
    params = dict(zip(row.const_args, row.params[0], strict=True)) if row.params else {}
    names = iter(("x", "y", "z"))
    args = tuple(Const(params[i]) if i in params else Var(next(names)) for i in range(row.arity))
    return Call(name, args), tuple(params[i] for i in sorted(params))


def _inside(name: str, pts: np.ndarray, params: tuple[Fraction, ...]) -> np.ndarray:
    row = OPS[name]
    cols = [torch.tensor(pts[:, i]) for i in range(pts.shape[1])]
    cols += [torch.full((len(pts),), float(p), dtype=torch.float64) for p in params]
    ok = (row.domain(*cols) > MARGIN).numpy()
    if row.kinks is not None:
        ok &= (row.kinks(*cols) > MARGIN).numpy()
    with np.errstate(all="ignore"):
        value = row.torch_fn(*cols[:1], *cols[1:]) if row.params else row.torch_fn(*cols)
    return ok & np.isfinite(value.numpy()) & (np.abs(pts) < 1e300).all(axis=1)


def _points(name: str, n_vars: int, params: tuple[Fraction, ...]) -> np.ndarray:
    rng = np.random.default_rng(17)
    drawn = rng.uniform(-4, 4, size=(400, n_vars)).round(6)
    if name in ("acosh", "lgamma", "digamma", "powv", "rsqrt", "log2", "log10"):
        drawn[:, 0] = np.abs(drawn[:, 0]) + (1.0 if name == "acosh" else 0.0)
    if name in ("xlogy",):
        drawn[:, 1] = np.abs(drawn[:, 1])
    if name in ("atanh", "erfinv", "logit"):
        drawn = drawn / 4 + (0.5 if name == "logit" else 0.0)
    random = drawn[_inside(name, drawn, params)][:RANDOM_POINTS]
    edges = []
    for dtype in ("float64", "float32", "float16", "bfloat16"):
        e = np.asarray(op_edges(name, dtype))
        grid = np.stack([e] * n_vars, axis=1) if n_vars > 1 else e[:, None]
        if n_vars > 1:  # one variable at an edge, the others at plain values
            grid[:, 1:] = 0.75
        edges.append(grid[_inside(name, grid, params)][:EDGE_POINTS])
    return np.concatenate([random, *edges])


def _reference_derivatives(name: str, point: np.ndarray, params: tuple[Fraction, ...]) -> list[Any]:
    fn = REFERENCES[name]
    consts = [mpmath.mpf(p.numerator) / p.denominator for p in params]
    args = [mpmath.mpf(float(v)) for v in point]
    out = []
    for i in range(len(args)):

        def along(t: Any, i: int = i) -> Any:
            return fn(*args[:i], t, *args[i + 1 :], *consts)

        # the step scales with large arguments (1e154 + 1e-30 is 1e154 at 50 digits); the
        # working precision covers a derivative far below the function's own size
        # (sinc' at 5e-324 is 1.6e-323 next to sinc = 1: 330 digits cancel)
        h = max(abs(args[i]), mpmath.mpf(1)) * mpmath.mpf(10) ** -30
        with mp.workdps(DIFF_DIGITS):
            out.append(mp.diff(along, args[i], h=h))
    return out


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_the_truths_value_and_gradient_agree_with_mpmath_at_50_digits(name: str) -> None:
    expr, params = _case(name)
    n_vars = OPS[name].arity - len(params)
    pts = _points(name, n_vars, params)
    assert len(pts) >= RANDOM_POINTS, f"{name}: too few points inside its domain"
    truth = ENGINE.evaluate(expr, pts, dtype="float64", order=1)
    values = ENGINE.values(expr, pts, dtype="float64")
    consts = [mpmath.mpf(p.numerator) / p.denominator for p in params]
    with mp.workdps(50):
        for k, point in enumerate(pts):
            ref_value = REFERENCES[name](*(mpmath.mpf(float(v)) for v in point), *consts)
            assert values[k] == pytest.approx(float(ref_value), rel=2**-52, abs=1e-300), (name, point)
            assert (truth.status[k] == "ok").all(), (name, point, truth.status[k])
            for i, ref in enumerate(_reference_derivatives(name, point, params)):
                ref_f = float(ref)
                tol = math.ulp(ref_f) if ref_f and math.isfinite(ref_f) else 2.0**-1074
                assert abs(truth.values[k, i] - ref_f) <= tol, (name, point, i, truth.values[k, i], ref_f)
