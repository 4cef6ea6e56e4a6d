"""Primitives over python-flint ``arb`` balls, each reporting what it met at its argument.

The truth's programs (:mod:`harness.truth.program`) run on balls at a working precision
that :mod:`harness.truth.certify` raises until every ball is tight. A primitive that can
meet a domain edge or a discontinuity is *guarded*: it returns ``(ball, events)``, the
events being the bit flags below, so that certification can tell "undefined here" from
"not yet sure at this precision". Unguarded primitives map balls to a ball. The same
operations over long double intervals are in :mod:`harness.truth.intervals` and over
power series in :mod:`harness.truth.series`; :mod:`harness.truth.rules` ties each sympy
class to its three.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from flint import arb, arb_series, ctx, fmpq

__all__ = [
    "ANY_REAL",
    "EDGE",
    "Guarded",
    "KINK",
    "NAN",
    "NEAR_EDGE",
    "NEAR_KINK",
    "STRONG_ZERO",
    "UNDEF",
    "ZERO",
    "arcsine_like",
    "atan2",
    "bessel_i",
    "ceiling_hull",
    "ceiling_value",
    "floor_hull",
    "floor_spike",
    "floor_value",
    "erfinv",
    "lgamma",
    "polygamma",
    "sinc_derivative",
    "guarded_on",
    "jump",
    "log",
    "maximum",
    "minimum",
    "neg_int_pow",
    "nonneg_int_pow",
    "real_pow",
    "runtime_pow",
    "sign_value",
    "spike",
]

# Events a guarded primitive reports about its argument ball (bit flags; plain ints, as
# the program loop combines them for every instruction).
UNDEF = 1
"""Certainly outside the domain (log of <= 0, division by an exact 0)."""
KINK = 2
"""Exactly at a discontinuity of the primitive."""
NEAR_KINK = 4
"""The ball straddles a discontinuity: more precision may settle it."""
NEAR_EDGE = 8
"""The ball straddles a domain boundary: more precision may settle it."""
EDGE = 16
"""Exactly on a domain boundary where the value is defined (sqrt(0), asin(1))."""

NAN = arb.nan()
ANY_REAL = arb(0, arb.pos_inf())
ZERO = arb(0)
STRONG_ZERO = arb(0)
"""A distinct object: an exact 0 that no other factor can undo (see
:meth:`harness.truth.program.Program.run`)."""

Guarded = tuple[Any, int]
"""A guarded primitive's answer: the ball and the event bits."""


def _hull(lo: int, hi: int) -> Any:
    return arb(lo).union(arb(hi))


def log(u: Any) -> Guarded:
    """log(u) for u > 0."""
    if u > 0:
        return u.log(), 0
    return NAN, (UNDEF if u <= 0 else NEAR_EDGE)


def arcsine_like(method: str) -> Callable[[Any], Guarded]:
    """asin or acos (arb's method ``method``): defined on [-1, 1], edges included."""
    fn = getattr(arb, method)

    def guarded(u: Any) -> Guarded:
        if u > -1 and u < 1:
            return fn(u), 0
        if u >= -1 and u <= 1:
            return fn(u), EDGE
        return NAN, (UNDEF if (u > 1 or u < -1) else NEAR_EDGE)

    return guarded


def guarded_on(
    fn: Callable[[Any], Any], inside: Callable[[Any], bool], outside: Callable[[Any], bool]
) -> Callable[[Any], Guarded]:
    """``fn`` where ``inside(u)`` holds for the whole ball; undefined where ``outside(u)``
    holds for it; otherwise the ball straddles the boundary."""

    def guarded(u: Any) -> Guarded:
        if inside(u):
            return fn(u), 0
        return NAN, (UNDEF if outside(u) else NEAR_EDGE)

    return guarded


def nonneg_int_pow(n: int) -> Callable[[Any], Any]:
    """b**n for an integer n >= 0. python-flint's ``**`` returns NaN for a ball that holds
    0 without being 0 (``arb(0, 1e-38)**2``), so such a ball is multiplied out instead."""

    def power(b: Any) -> Any:
        if n == 0 or not b.contains(0) or b.is_zero():
            return b**n
        result, base, k = arb(1), b, n
        while k:
            if k & 1:
                result = result * base
            base, k = base * base, k >> 1
        return result

    return power


def neg_int_pow(n: int) -> Callable[[Any], Guarded]:
    """b**n for an integer n < 0: b must be clear of 0."""

    def guarded(b: Any) -> Guarded:
        if not b.contains(0):
            return b**n, 0
        return NAN, (UNDEF if b.is_zero() else NEAR_EDGE)

    return guarded


def real_pow(q: Fraction) -> Callable[[Any], Guarded]:
    """b**q for a non-integer rational q: needs b > 0 (b = 0 too when q > 0)."""
    exponent = fmpq(q.numerator, q.denominator)
    fn: Callable[[Any], Any] = {
        Fraction(1, 2): arb.sqrt,
        Fraction(-1, 2): arb.rsqrt,
    }.get(q, lambda b: b**exponent)

    def guarded(b: Any) -> Guarded:
        if b > 0:
            return fn(b), 0
        if q > 0 and b.is_zero():
            return ZERO, EDGE
        return NAN, (UNDEF if b <= 0 else NEAR_EDGE)

    return guarded


def runtime_pow(b: Any, e: Any) -> Guarded:
    """b**e with both operands computed: integer powers of any base, else a positive base."""
    if e.is_integer():
        n = int(e.unique_fmpz())
        return (nonneg_int_pow(n)(b), 0) if n >= 0 else neg_int_pow(n)(b)
    if b > 0:
        return b**e, 0
    if b.is_zero() and e > 0:
        return ZERO, EDGE
    if b.is_zero() or b < 0:
        return NAN, (NEAR_EDGE if e.contains_integer() else UNDEF)
    return NAN, NEAR_EDGE


def maximum(a: Any, b: Any) -> Any:
    """max(a, b)."""
    return a.max(b)


def minimum(a: Any, b: Any) -> Any:
    """min(a, b)."""
    return a.min(b)


# ---- jumps and spikes ----------------------------------------------------------------------


def jump(lo: int, hi: int) -> Callable[[Any], Guarded]:
    """A jump from ``lo`` (u < 0) to ``hi`` (u > 0); the hull of both at u = 0. A 0 below
    the jump is a strong zero."""
    low, high, hull = (STRONG_ZERO if lo == 0 else arb(lo)), arb(hi), _hull(lo, hi)

    def guarded(u: Any) -> Guarded:
        if u > 0:
            return high, 0
        if u < 0:
            return low, 0
        return hull, (KINK if u.is_zero() else NEAR_KINK)

    return guarded


def spike(u: Any) -> Guarded:
    """DiracDelta(u) and its derivatives: 0 where u != 0, any real number at u = 0."""
    if not u.contains(0):
        return STRONG_ZERO, 0
    return ANY_REAL, (KINK if u.is_zero() else NEAR_KINK)


def floor_spike(u: Any) -> Guarded:
    """Any derivative of floor(u): a strong zero off the integers, any real number on them."""
    if not u.contains_integer():
        return STRONG_ZERO, 0
    return ANY_REAL, (KINK if u.is_exact() else NEAR_KINK)


def floor_hull(u: Any) -> Guarded:
    """floor(u), or the hull of its two one-sided values at an integer u."""
    if not u.contains_integer():
        return u.floor(), 0
    if u.is_exact():
        return (u - 1).union(u), KINK
    return u.floor(), NEAR_KINK


def ceiling_hull(u: Any) -> Guarded:
    """ceiling(u), or the hull of its two one-sided values at an integer u."""
    value, event = floor_hull(-u)
    return -value, event


def floor_value(u: Any) -> Guarded:
    """floor(u) itself, also at an integer (floor(2) = 2)."""
    return u.floor(), (NEAR_KINK if u.contains_integer() and not u.is_exact() else 0)


def ceiling_value(u: Any) -> Guarded:
    """ceiling(u) itself, also at an integer."""
    return u.ceil(), (NEAR_KINK if u.contains_integer() and not u.is_exact() else 0)


def sign_value(u: Any) -> Guarded:
    """sign(u) itself, also at 0 (sign(0) = 0)."""
    return u.sgn(), (NEAR_KINK if u.contains(0) and not u.is_zero() else 0)



# ---- special functions of the reach ops ---------------------------------------------------


def _taylor_coefficient(series_fn: Callable[[Any], Any], u: Any, k: int) -> Any:
    """The k-th Taylor coefficient at ``u`` of the function whose series ``series_fn``
    computes (an arb_series method), with the series length raised just for this call."""
    saved = ctx.cap
    ctx.cap = max(saved, k + 1)
    try:
        coeffs = series_fn(arb_series([u, 1])).coeffs()
    finally:
        ctx.cap = saved
    return coeffs[k] if len(coeffs) > k else arb(0)


def sinc_derivative(n: int) -> Callable[[Any], Any]:
    """d^n/du^n sin(u)/u, also at and around 0: (n+1)! times the (n+1)-th Taylor
    coefficient of the sine integral Si (Si' = sinc), which arb computes for any ball."""
    scale = math.factorial(n + 1)

    def run(u: Any) -> Any:
        if n == 0 and not u.contains(0):
            return u.sin() / u
        return _taylor_coefficient(arb_series.si, u, n + 1) * scale

    return run


def lgamma(u: Any) -> Guarded:
    """log(gamma(u)) for u > 0 (the real log-gamma; the op table keeps its argument there)."""
    if u > 0:
        return u.lgamma(), 0
    return NAN, (UNDEF if u <= 0 else NEAR_EDGE)


def polygamma(n: int) -> Callable[[Any], Guarded]:
    """The polygamma function psi^(n)(u) for u > 0: (n+1)! times the (n+1)-th Taylor
    coefficient of log(gamma) at u (psi^(0) is digamma)."""
    scale = math.factorial(n + 1)

    def guarded(u: Any) -> Guarded:
        if not u > 0:
            return NAN, (UNDEF if u <= 0 else NEAR_EDGE)
        if n == 0:
            return u.digamma(), 0
        return _taylor_coefficient(arb_series.lgamma, u, n + 1) * scale, 0

    return guarded


def bessel_i(order: int) -> Callable[[Any], Any]:
    """The modified Bessel function I_order(u) of integer order (I_-n = I_n)."""
    nu = arb(abs(order))
    return lambda u: u.bessel_i(nu)


def erfinv(u: Any) -> Guarded:
    """The inverse error function on (-1, 1)."""
    if u > -1 and u < 1:
        return u.erfinv(), 0
    return NAN, (UNDEF if (u >= 1 or u <= -1) else NEAR_EDGE)


def atan2(y: Any, x: Any) -> Guarded:
    """atan2(y, x) off its branch cut (x <= 0, y = 0), where the value jumps by 2 pi."""
    if x > 0 or not y.contains(0):
        return arb.atan2(y, x), 0
    if y.is_zero() and x <= 0:
        return NAN, UNDEF
    return NAN, NEAR_EDGE
