"""Sympy function classes the op table needs and sympy does not have in a usable form.

sympy's own ``sinc(x)`` differentiates to ``cos(x)/x - sin(x)/x**2``, which no ball
arithmetic can evaluate at 0, where every derivative of sinc exists (sinc'(0) = 0,
sinc''(0) = -1/3: the limits). :func:`sinc_derivative` gives one class per derivative
order n, the function d^n/du^n sin(u)/u with its value at 0 by the limit; each
differentiates into the next. The truth evaluates them through the Taylor coefficients of
the sine integral Si, whose derivative is sinc (:mod:`harness.truth.balls`), and the
oracle's numpy and mpmath partials through ``_imp_`` (sympy's lambdify reads it).

This module is a leaf: the op table imports it, so it imports nothing of the harness.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
import sympy

__all__ = ["MAX_SINC_ORDER", "NUMPY_FUNCTIONS", "Sinc", "sinc_derivative", "sinc_derivative_value"]

MAX_SINC_ORDER = 12
"""Highest derivative of sinc with a class (the harness differentiates at most a few
times: Hessians, and the fifth derivative of the finite-difference error model)."""

_SERIES_TERMS = 40  # Taylor terms used below |u| = 4 (the last is below 1e-30 there)


def sinc_derivative_value(n: int, u: Any) -> Any:
    """d^n/du^n sin(u)/u at ``u`` (numpy array or mpmath number), the limit at 0.

    Near 0 (|u| < 4) its Taylor series, sum over 2k >= n of
    (-1)**k u**(2k-n) (2k)! / ((2k-n)! (2k+1)!); elsewhere Leibniz's rule on sin(u) * u**-1.
    An approximation for tolerances (the truth itself runs in arb balls)."""
    try:
        import mpmath

        if isinstance(u, mpmath.mpf | mpmath.mpc):
            return mpmath.diff(lambda t: mpmath.sinc(t), u, n) if n else mpmath.sinc(u)
    except ImportError:  # pragma: no cover - mpmath comes with sympy
        pass
    x = np.asarray(u, dtype=np.float64)
    near = np.zeros_like(x)
    for k in range((n + 1) // 2, (n + 1) // 2 + _SERIES_TERMS):
        coeff = (-1) ** k * math.factorial(2 * k) / (math.factorial(2 * k - n) * math.factorial(2 * k + 1))
        near = near + coeff * x ** (2 * k - n)
    with np.errstate(all="ignore"):
        far = np.zeros_like(x)
        for k in range(n + 1):
            # d^k sin = sin(u + k pi/2); d^(n-k) u**-1 = (-1)**(n-k) (n-k)! u**-(n-k+1)
            far = far + (
                math.comb(n, k) * np.sin(x + k * math.pi / 2)
                * (-1) ** (n - k) * math.factorial(n - k) / x ** (n - k + 1)
            )
    return np.where(np.abs(x) < 4, near, far)


@cache
def sinc_derivative(n: int) -> type[sympy.Function]:
    """The sympy class of d^n/du^n sin(u)/u (n = 0: sinc itself), 0 <= n <= MAX_SINC_ORDER."""
    if not 0 <= n <= MAX_SINC_ORDER:
        raise ValueError(f"n={n}: sinc derivatives are defined for 0 <= n <= {MAX_SINC_ORDER}")

    def fdiff(self: Any, argindex: int = 1) -> Any:
        if n == MAX_SINC_ORDER:
            raise ValueError(f"sinc differentiated more than {MAX_SINC_ORDER} times")
        return sinc_derivative(n + 1)(self.args[0])

    def imp(u: Any) -> Any:
        return sinc_derivative_value(n, u)

    name = "Sinc" if n == 0 else f"SincD{n}"
    return type(name, (sympy.Function,), {"nargs": 1, "fdiff": fdiff, "_imp_": staticmethod(imp),
                                          "order": n, "__module__": __name__})


Sinc = sinc_derivative(0)
"""sin(u)/u, 1 at u = 0 (unnormalised: torch's sinc(x) is Sinc(pi*x))."""


def _elementwise(fn: Any) -> Any:
    """``fn`` of Python floats, applied to each element of numpy arrays (broadcast)."""
    vectorised = np.vectorize(lambda *a: float(fn(*a)), otypes=[np.float64])

    def run(*args: Any) -> Any:
        return vectorised(*args)

    return run


def _mp(name: str) -> Any:
    import mpmath

    fn = getattr(mpmath, name)

    def call(*args: Any) -> float:
        if not all(math.isfinite(a) for a in args):
            return math.nan  # mpmath's besseli of inf raises TypeError; nan says "no bound"
        try:
            value = fn(*args)
        except (ArithmeticError, ValueError, TypeError):
            return math.nan
        return float(value.real) if value.imag == 0 else math.nan

    return call


def _scipy_or(scipy_name: str, slow: Any, fast: Any = None) -> Any:
    """scipy.special's vectorised ``scipy_name`` (or ``fast``, built on it) when scipy is
    installed (up to thousands of times faster on big arrays: accuracy sweeps take third
    partials at every float16), else ``slow``, element by element."""

    def run(*args: Any) -> Any:
        try:
            import scipy.special
        except ImportError:
            return slow(*args)
        with np.errstate(all="ignore"):
            floats = [np.asarray(a, dtype=np.float64) for a in args]
            fn = fast or getattr(scipy.special, scipy_name)
            return np.asarray(fn(*floats), dtype=np.float64)

    return run


_REFLECT_BELOW = -16.0
"""Left of this, :func:`_polygamma` reflects to 1 - x."""


def _polygamma(n: Any, x: Any) -> Any:
    """polygamma(n, x) for n = 0..3 by the reflection formula left of
    :data:`_REFLECT_BELOW` (psi_n(x) = (-1)**n psi_n(1 - x) - pi d**n/dx**n cot(pi x), the
    trigonometric part from x's distance r to the nearest integer, which is exact); else,
    and for other n, scipy.special.polygamma. scipy's own series costs time in proportion
    to |x| for negative x (2.5 s at -1e8, hours at -1e12), and one case's rounding model
    can ask for it there (lgamma's partials across an argument's error)."""
    import scipy.special

    with np.errstate(all="ignore"):
        n, x = np.broadcast_arrays(np.asarray(n, dtype=np.float64), np.asarray(x, dtype=np.float64))
        out = np.empty(x.shape)
        left = (x < _REFLECT_BELOW) & np.isin(n, (0.0, 1.0, 2.0, 3.0))
        out[~left] = scipy.special.polygamma(n[~left], x[~left])
        if left.any():
            k, xl = n[left], x[left]
            r = xl - np.rint(xl)  # sin(pi x)**2 = sin(pi r)**2, cos/sin**odd alike
            # cos(pi r) as sin(pi (1/2 - |r|)): exactly 0 at r = 1/2, where np.cos gives 6e-17
            s, c = np.sin(np.pi * r), np.sin(np.pi * (0.5 - np.abs(r)))
            mirror = scipy.special.polygamma(k, 1 - xl)
            pi = np.pi
            out[left] = np.select(
                [k == 0, k == 1, k == 2],
                [
                    mirror - pi * c / s,
                    -mirror + pi**2 / s**2,
                    mirror - 2 * pi**3 * c / s**3,
                ],
                -mirror + 2 * pi**4 * (1 + 2 * c * c) / s**4,
            )
    return out


def _select(conditions: list[Any], choices: list[Any], default: Any = 0) -> Any:
    """numpy.select that takes conditions which are plain Python booleans: sympy prints
    a Piecewise with a literal ``True`` (Max of several arguments, differentiated)."""
    shape = np.broadcast_shapes(*(np.shape(c) for c in (*conditions, *choices)))
    masks = [np.broadcast_to(np.asarray(c, dtype=bool), shape) for c in conditions]
    return np.select(masks, choices, default)


def _heaviside(x: Any, at_zero: Any = 0.5) -> Any:
    """sympy's Heaviside (1/2 at 0 unless told): printed as itself, not rewritten into a
    Piecewise whose conditions sympy simplifies (9 s for the first partial of
    Max(|a0|, ..., |a3|), a minute for six arguments, and too deeply nested to compile
    past that)."""
    return np.heaviside(np.asarray(x, dtype=np.float64), at_zero)


NUMPY_FUNCTIONS: dict[str, Any] = {
    "select": _select,
    "Heaviside": _heaviside,
    "erf": _elementwise(math.erf),
    "erfc": _elementwise(math.erfc),
    "erfinv": _scipy_or("erfinv", _elementwise(_mp("erfinv"))),
    "loggamma": _scipy_or("loggamma", _elementwise(_mp("loggamma"))),
    "polygamma": _scipy_or("polygamma", _elementwise(_mp("polygamma")), _polygamma),
    "besseli": _elementwise(_mp("besseli")),
}
"""Numpy versions of the special functions the op table's sympy forms contain, for
``sympy.lambdify(..., modules=[NUMPY_FUNCTIONS, "numpy"])``: sympy's numpy printer has
no erf, erfinv, loggamma, polygamma or besseli, its select must take Python booleans,
and it prints Heaviside (the derivative of Max and Abs) through a simplified Piecewise.
scipy.special where it is installed and agrees with the real-valued sympy function (not
besseli, erf, erfc: scipy's underflow to 0 early, where tails matter), else Python's
math or mpmath element by element. Over float64 arrays, accurate to a few ulps:
they feed tolerances, not the truth."""
