"""Truncated power series over arb balls: Taylor coefficients without symbolic swell.

The finite-difference error model needs f'', f''' and f^(5) along each axis. Differencing
the sympy expression five times makes it grow fast and costs tens of milliseconds per
case; running f's own compiled program (see :mod:`harness.truth.program`) once per
point and axis on the series ``x_i + t`` gives every pure partial up to the truncation
order in one pass (coefficient k times k!), in certified ball arithmetic
(python-flint's ``arb_series``; its length is ``flint.ctx.cap``).

Each function here takes ``arb_series`` arguments and returns one, or ``None`` where the
series is not defined or not analytic at the point (a log of a ball reaching 0, |u| at
u = 0, a floor at an integer): the caller then falls back to the symbolic program.

*Germs* (``*_germ``) are the one-sided versions for the functions with a break (max, min,
abs, sign, Heaviside, floor, ceiling): the series of the function for ``t -> 0+``, read off
the sign of the first coefficient that is not exactly zero (min(x, x*y) at y = 1 along x
is x on both sides; floor(y) at y = 0 along +y is 0, along -y it is -1). Run on ``x_i + t``
and ``x_i - t`` they give the one-sided Taylor coefficients of f along one axis
(:func:`harness.truth.certify.along_axes`). Where an argument agrees with the break to
every coefficient kept (``flint.ctx.cap``), it is read as sitting on it: the function's
own value there (sign(0) = 0, floor(2) = 2), or either side of a tie (they agree to that
order). A coefficient whose sign the ball cannot tell gives ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

from flint import arb, arb_series, fmpq

__all__ = [
    "SeriesFn",
    "absolute",
    "acos",
    "acosh",
    "add",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "absolute_germ",
    "ceiling_germ",
    "floor_germ",
    "heaviside_germ",
    "maximum_germ",
    "minimum_germ",
    "sign_germ",
    "ceiling",
    "constant",
    "cos",
    "cosh",
    "cot",
    "coth",
    "csc",
    "csch",
    "erf",
    "erfc",
    "exp",
    "floor",
    "head",
    "heaviside",
    "lgamma",
    "log",
    "maximum",
    "minimum",
    "mul",
    "piecewise_constant",
    "rational_pow",
    "runtime_pow",
    "sec",
    "sech",
    "sign",
    "sin",
    "sinc",
    "sinh",
    "tan",
    "tanh",
]

SeriesFn = Callable[..., Any]
"""arb_series arguments -> arb_series, or None where the series does not exist."""


def head(s: Any) -> Any:
    """The constant term (an arb)."""
    coeffs = s.coeffs()
    return coeffs[0] if coeffs else arb(0)


def constant(value: Any) -> Any:
    """A series holding only the constant ``value``."""
    return arb_series([value])


def add(a: Any, b: Any) -> Any:
    """a + b."""
    return a + b


def mul(a: Any, b: Any) -> Any:
    """a * b."""
    return a * b


def maximum(a: Any, b: Any) -> Any:
    """The larger series where the constant terms are surely ordered."""
    ha, hb = head(a), head(b)
    return a if ha > hb else b if hb > ha else None


def minimum(a: Any, b: Any) -> Any:
    """The smaller series where the constant terms are surely ordered."""
    ha, hb = head(a), head(b)
    return a if ha < hb else b if hb < ha else None


def _positive(s: Any) -> bool:
    return bool(head(s) > 0)


def exp(s: Any) -> Any:
    """e**s."""
    return s.exp()


def log(s: Any) -> Any:
    """log(s) for s surely > 0."""
    return s.log() if _positive(s) else None


def sin(s: Any) -> Any:
    """sin(s)."""
    return s.sin()


def cos(s: Any) -> Any:
    """cos(s)."""
    return s.cos()


def tan(s: Any) -> Any:
    """tan(s) away from its poles."""
    return s.tan() if not head(s).cos().contains(0) else None


def _reciprocal(s: Any) -> Any:
    return 1 / s if s is not None and not head(s).contains(0) else None


def sec(s: Any) -> Any:
    """1/cos(s)."""
    return _reciprocal(s.cos())


def csc(s: Any) -> Any:
    """1/sin(s)."""
    return _reciprocal(s.sin())


def cot(s: Any) -> Any:
    """cos(s)/sin(s)."""
    r = _reciprocal(s.sin())
    return None if r is None else s.cos() * r


def sinh(s: Any) -> Any:
    """(e**s - e**-s)/2."""
    e = s.exp()
    return (e - 1 / e) / 2


def cosh(s: Any) -> Any:
    """(e**s + e**-s)/2."""
    e = s.exp()
    return (e + 1 / e) / 2


def tanh(s: Any) -> Any:
    """(e**2s - 1)/(e**2s + 1), written with e**-2|s| so that it cannot overflow."""
    if head(s) >= 0:
        e = (-2 * s).exp()
        return (1 - e) / (1 + e)
    e = (2 * s).exp()
    return (e - 1) / (e + 1)


def sech(s: Any) -> Any:
    """1/cosh(s)."""
    return _reciprocal(cosh(s))


def csch(s: Any) -> Any:
    """1/sinh(s)."""
    return _reciprocal(sinh(s))


def coth(s: Any) -> Any:
    """1/tanh(s)."""
    return _reciprocal(tanh(s))


def atan(s: Any) -> Any:
    """atan(s)."""
    return s.atan()


def atan2(y: Any, x: Any) -> Any:
    """atan2(y, x) off its branch cut (x <= 0, y = 0): atan(y/x) where x > 0, and
    +-pi/2 - atan(x/y) where y > 0 (< 0), the same function near the point."""
    hx, hy = head(x), head(y)
    if hx > 0:
        return (y / x).atan()
    if hy > 0:
        return constant(arb.pi() / 2) - (x / y).atan()
    if hy < 0:
        return constant(-arb.pi() / 2) - (x / y).atan()
    return None


def _inside_unit(s: Any) -> bool:
    h = head(s)
    return bool(h > -1 and h < 1)


def asin(s: Any) -> Any:
    """asin(s) for |s| surely < 1."""
    return s.asin() if _inside_unit(s) else None


def acos(s: Any) -> Any:
    """acos(s) for |s| surely < 1."""
    return s.acos() if _inside_unit(s) else None


def asinh(s: Any) -> Any:
    """log(|s| + sqrt(s**2 + 1)) with the sign of s (no cancellation for s < 0)."""
    if head(s) >= 0:
        return (s + (s * s + 1).sqrt()).log()
    if head(s) < 0:
        return -((-s) + (s * s + 1).sqrt()).log()
    return None


def acosh(s: Any) -> Any:
    """log(s + sqrt(s**2 - 1)) for s surely > 1."""
    return (s + (s * s - 1).sqrt()).log() if head(s) > 1 else None


def atanh(s: Any) -> Any:
    """(log(1 + s) - log(1 - s))/2 for |s| surely < 1."""
    return ((1 + s).log() - (1 - s).log()) / 2 if _inside_unit(s) else None


def erf(s: Any) -> Any:
    """erf(s)."""
    return s.erf()


def erfc(s: Any) -> Any:
    """erfc(s)."""
    return s.erfc()


def absolute(s: Any) -> Any:
    """|s| away from 0."""
    h = head(s)
    return s if h > 0 else -s if h < 0 else None


def piecewise_constant(fn: Callable[[Any], Any]) -> SeriesFn:
    """A step function (sign, Heaviside, floor): the constant ``fn(head)`` where that is
    one exact number for the whole ball (the point is clear of the jump), else None."""

    def run(s: Any) -> Any:
        value = fn(head(s))
        return constant(value) if value is not None else None

    return run


def _sign_of(h: Any) -> Any:
    return arb(1) if h > 0 else arb(-1) if h < 0 else None


def _heaviside_of(h: Any) -> Any:
    return arb(1) if h > 0 else arb(0) if h < 0 else None


def _floor_of(h: Any) -> Any:
    return h.floor() if not h.contains_integer() else None


def _ceiling_of(h: Any) -> Any:
    return h.ceil() if not h.contains_integer() else None


sign = piecewise_constant(_sign_of)
"""sign(s) away from 0."""
heaviside = piecewise_constant(_heaviside_of)
"""Heaviside(s) away from 0."""
floor = piecewise_constant(_floor_of)
"""floor(s) away from the integers."""
ceiling = piecewise_constant(_ceiling_of)
"""ceiling(s) away from the integers."""


def rational_pow(q: Fraction) -> SeriesFn:
    """s**q: any base for an integer q >= 0, a base clear of 0 for q < 0, a positive base
    otherwise."""
    if q.denominator == 1 and q >= 0:
        return lambda s: s ** int(q)
    if q.denominator == 1:
        return lambda s: s ** int(q) if not head(s).contains(0) else None
    if q == Fraction(1, 2):
        return lambda s: s.sqrt() if _positive(s) else None
    if q == Fraction(-1, 2):
        return lambda s: s.rsqrt() if _positive(s) else None
    exponent = arb(fmpq(q.numerator, q.denominator))
    return lambda s: (exponent * s.log()).exp() if _positive(s) else None


def runtime_pow(b: Any, e: Any) -> Any:
    """b**e with both computed: for an exponent that is exactly a constant integer (a
    tree's pow(x, 2), whose exponent is a constant argument), b**n as
    :func:`rational_pow` takes it; otherwise exp(e log b) for b surely > 0."""
    n = _constant_integer(e)
    if n is not None:
        return rational_pow(Fraction(n))(b)
    return (e * b.log()).exp() if _positive(b) else None


def _constant_integer(s: Any) -> int | None:
    """The integer ``s`` is, where it is exactly a constant integer (every coefficient
    past the first exactly 0) of moderate size; else None."""
    coeffs = s.coeffs()
    if not coeffs or any(not (c.is_exact() and c == 0) for c in coeffs[1:]):
        return None
    c = coeffs[0]
    if not (c.is_exact() and c.contains_integer() and abs(c) <= 2**30):
        return None
    return int(float(c.mid()))


# ---- one-sided germs (t -> 0+) at a break ---------------------------------------------


CROSSINGS: list[int] = [0]
"""How many breaks germs have crossed (a side decided by a coefficient past the
constant term: the function's argument moves through its break along t), counted for
:func:`harness.truth.certify.along_axes`, which resets and reads it around each run."""


def germ_sign(s: Any, start: int = 0) -> int | None:
    """Sign of the series ``s`` for small t > 0 from its coefficients ``start`` on: that of
    the first coefficient not exactly zero; 0 when all kept are exactly zero; None when
    that coefficient's ball contains 0. A sign decided past the constant term crosses a
    break (:data:`CROSSINGS`)."""
    for k, c in enumerate(s.coeffs()[start:], start):
        if c.is_zero():
            continue
        if not (c > 0 or c < 0):
            return None
        if k > 0:
            CROSSINGS[0] += 1
        return 1 if c > 0 else -1
    return 0


def maximum_germ(a: Any, b: Any) -> Any:
    """max(a, b) for t -> 0+ (a tie to every kept order: either)."""
    side = germ_sign(a - b)
    return None if side is None else b if side < 0 else a


def minimum_germ(a: Any, b: Any) -> Any:
    """min(a, b) for t -> 0+ (a tie to every kept order: either)."""
    side = germ_sign(a - b)
    return None if side is None else b if side > 0 else a


def absolute_germ(s: Any) -> Any:
    """|s| for t -> 0+."""
    side = germ_sign(s)
    return None if side is None else -s if side < 0 else s


def _step_germ(values: dict[int, int | None]) -> SeriesFn:
    """A step of (sign -> value) at 0: the constant for the side s lies on as t -> 0+."""

    def run(s: Any) -> Any:
        side = germ_sign(s)
        value = None if side is None else values[side]
        return None if value is None else constant(arb(value))

    return run


sign_germ = _step_germ({-1: -1, 0: 0, 1: 1})
"""sign(s) for t -> 0+ (sign(0) = 0)."""
heaviside_germ = _step_germ({-1: 0, 0: None, 1: 1})
"""Heaviside(s) for t -> 0+ (no convention at 0 itself: None)."""


def _integer_germ(s: Any, up: int) -> Any:
    h = head(s)
    if not h.contains_integer():
        return constant(h.floor() if up == 0 else h.ceil())
    if not (h.is_exact() and h.floor() == h):
        return None
    side = germ_sign(s, start=1)
    if side is None:
        return None
    if up == 0:  # floor: h above, h - 1 below
        return constant(h - 1 if side < 0 else h)
    return constant(h + 1 if side > 0 else h)  # ceiling


def floor_germ(s: Any) -> Any:
    """floor(s) for t -> 0+ (floor(2) = 2 when s stays at 2)."""
    return _integer_germ(s, 0)


def ceiling_germ(s: Any) -> Any:
    """ceiling(s) for t -> 0+."""
    return _integer_germ(s, 1)


def sinc(s: Any) -> Any:
    """sin(s)/s for s surely clear of 0 (at 0 the symbolic program decides)."""
    return s.sin() / s if not head(s).contains(0) else None


def lgamma(s: Any) -> Any:
    """log(gamma(s)) for s surely > 0."""
    return s.lgamma() if _positive(s) else None
