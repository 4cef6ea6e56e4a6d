"""Every JAX mode (jit, vmap, jacfwd, jacrev, hessian paths) against closed forms.

Expected values are hand-derived derivatives of sin(x)*exp(y) + x*x*x, evaluated with
mpmath at 60 digits at points float32 holds exactly; each mode must land within a few ulp
of the largest term of each point's derivative.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from harness.engines.base import EngineError
from harness.expr import Call, Var

jax_ad = pytest.importorskip("harness.engines.jax_ad")
pytest.importorskip("jax", reason="the JAX modes need the optional jax extra")

x, y = Var("x"), Var("y")
EXPR = Call("add", (Call("mul", (Call("sin", (x,)), Call("exp", (y,)))),
                    Call("mul", (Call("mul", (x, x)), x))))
ULPS = 8
mpmath.mp.dps = 60


def exact(order: int, points: np.ndarray) -> np.ndarray:
    out = []
    for a, b in points:
        a, b = mpmath.mpf(float(a)), mpmath.mpf(float(b))
        s, c, e = mpmath.sin(a), mpmath.cos(a), mpmath.exp(b)
        out.append([c * e + 3 * a**2, s * e] if order == 1 else [[-s * e + 6 * a, c * e], [c * e, s * e]])
    return np.array(out, dtype=np.float64)


def points(n: int) -> np.ndarray:
    return np.array([[0.25 * k - 2.0, 0.125 * k - 1.0] for k in range(n)])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("mode", [m for m in jax_ad.MODES if m not in ("reverse", "forward")])
def test_each_jax_mode_gives_the_closed_form(mode: str, order: int, dtype: str) -> None:
    if mode == "hessian" and order == 1:
        with pytest.raises(EngineError, match="second derivatives only"):
            jax_ad.JaxEngine(mode).derivatives(EXPR, points(3), dtype=dtype, order=1)
        return
    pts = points(jax_ad.CHUNK + 3 if mode in ("jacfwd", "jacrev", "hessian") else 3)
    got = jax_ad.JaxEngine(mode).derivatives(EXPR, pts, dtype=dtype, order=order)
    want = exact(order, pts)
    scale = np.max(np.abs(want), axis=tuple(range(1, want.ndim)), keepdims=True)
    bound = np.broadcast_to(ULPS * np.finfo(dtype).eps * scale, want.shape)
    np.testing.assert_array_less(np.abs(got - want), bound)


def test_every_jax_transform_mode_is_compared_with_eager() -> None:
    # the default modes reverse and forward are judged against the truth alone
    for mode in jax_ad.MODES:
        eager = jax_ad.JaxEngine(mode).eager()
        assert (eager is None) == (mode in ("eager", "reverse", "forward"))
        assert eager is None or eager.name == "jax:eager"
