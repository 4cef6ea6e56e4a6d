"""Vectorised interval arithmetic in extended precision: the fast filter in front of arb.

The truth engine compiles each derivative into a straight-line program (see
:mod:`harness.truth.program`). Running that program point by point in arb costs about a
microsecond per instruction per point. This module runs the same program once over all
points at the same time, each value an interval ``[lo, hi]`` of numpy ``longdouble`` arrays
(x86's 64-bit-mantissa extended precision) rounded outward after every operation, so that
the exact value provably lies inside. A point's entry is *settled* when both ends of its
interval round to the same float64: that float64 is then the correctly rounded exact value,
the one arb gives. Every point the filter cannot settle (an interval straddling a rounding
boundary, a domain edge, a kink, a jump, an overflow) goes to arb as before, so the
results are those of the arb path, computed far faster.

Trust rests on: IEEE-754 round-to-nearest for + - * / and sqrt (outward by one
``nextafter``); the C library's ``long double`` functions (``expl``, ``sinl``, ...) being
accurate to :data:`LIBM_ULPS` units in the last place (glibc documents at most a few), and
``math.erf``/``math.erfc`` to :data:`ERF_ULPS` float64 ulps. Where ``longdouble`` has fewer
than 63 mantissa bits (Windows, macOS on ARM) :data:`AVAILABLE` is False and the truth
engine uses arb alone. Set ``DIFFHARNESS_TRUTH=arb`` in the environment for the same.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from flint import arb, ctx

__all__ = [
    "AVAILABLE",
    "ERF_ULPS",
    "LIBM_ULPS",
    "Interval",
    "Result",
    "PRECISION_BITS",
    "either",
    "extreme",
    "from_arb",
    "settle",
]

_L = np.longdouble
AVAILABLE: bool = np.finfo(_L).nmant >= 63 and os.environ.get("DIFFHARNESS_TRUTH", "") != "arb"
"""Whether the filter runs: extended precision exists and ``DIFFHARNESS_TRUTH`` is not "arb"."""

PRECISION_BITS = int(np.finfo(_L).nmant) + 1
"""Significand bits of the filter's numbers (64 for x86 extended precision)."""

LIBM_ULPS = 8
"""Assumed worst error of the C library's long double functions, in long double ulps."""
ERF_ULPS = 8
"""Assumed worst error of ``math.erf`` and ``math.erfc``, in float64 ulps."""

_EPS = np.finfo(_L).eps  # ulp of 1
_TINY = _L(8) * np.finfo(_L).smallest_subnormal
_REL_LIBM = _L(LIBM_ULPS) * _EPS
_REL_ERF = _L(ERF_ULPS * 2.0**-52)
_NEG_INF, _POS_INF = _L(-np.inf), _L(np.inf)
_ZERO, _ONE = _L(0), _L(1)
_SMALLEST_NORMAL_F64 = 2.0**-1022
_SMALLEST_NORMAL_L = np.finfo(_L).smallest_normal
_LARGEST_L = np.finfo(_L).max
_SUBNORMAL_L = np.finfo(_L).smallest_subnormal
_BIG, _SMALL = np.ldexp(_L(1), 1100), np.ldexp(_L(1), -1100)

Interval = tuple[np.ndarray, np.ndarray]
"""Lower and upper ends, longdouble arrays of one shape."""
Result = tuple[np.ndarray, np.ndarray, "np.ndarray | None", "np.ndarray | None"]
"""lo, hi, unsure (points the filter cannot vouch for, or None), strong zero mask (or None)."""


# ---- conversions --------------------------------------------------------------------------


def _int_to_ld(man: int, exp: int, up: bool) -> Any:
    """man * 2**exp rounded down (or up) to long double."""
    excess = abs(man).bit_length() - 64
    if excess > 0:  # keep 64 bits, rounding toward the requested side
        man = -((-man) >> excess) if up else man >> excess
        exp += excess
    value = np.ldexp(_L(man), exp)  # exact unless it leaves long double's normal range
    if abs(value) < _SMALLEST_NORMAL_L and man != 0:  # rounded to nearest there: step outward
        return np.nextafter(value, _POS_INF if up else _NEG_INF)
    if np.isinf(value) and (value > 0) != up:  # overflow on the side that must stay finite
        return np.nextafter(value, -value)
    return value


def from_arb(value: Any) -> tuple[Any, Any]:
    """A long double interval holding every number of the arb ball ``value``."""
    with ctx.workprec(max(ctx.prec, 128)):
        if not value.is_finite():
            return _L(np.nan), _L(np.nan)
        lo_m, lo_e = value.lower().man_exp()
        hi_m, hi_e = value.upper().man_exp()
    with np.errstate(all="ignore"):  # beyond long double's range: +-inf, which never settles
        return _int_to_ld(int(lo_m), int(lo_e), up=False), _int_to_ld(int(hi_m), int(hi_e), up=True)


# ---- outward rounding ---------------------------------------------------------------------


def _next_toward(x: np.ndarray, toward: Any, spacing: Any) -> np.ndarray:
    """``nextafter(x, toward)``, fast where x is 0: libm's ``nextafterl`` (and any x87
    arithmetic on subnormals) takes 200-300 ns per element there, 10 ns elsewhere, and
    zero widths are common. The neighbour of +-0 is ``spacing``, the smallest subnormal
    with the sign of the direction; below the smallest normal it is ``x + spacing``."""
    tiny = np.abs(x) < _SMALLEST_NORMAL_L
    if not tiny.any():
        return np.nextafter(x, toward)
    out = np.empty_like(x)
    usual = ~tiny
    out[usual] = np.nextafter(x[usual], toward)
    zero = x == 0
    out[zero] = spacing
    sub = tiny & ~zero
    if sub.any():
        moved = x[sub] + spacing
        out[sub] = np.where(moved == 0, np.copysign(_ZERO, x[sub]), moved)  # C keeps x's sign
    return out


def _down(x: np.ndarray) -> np.ndarray:
    return _next_toward(x, _NEG_INF, -_SUBNORMAL_L)


def _up(x: np.ndarray) -> np.ndarray:
    return _next_toward(x, _POS_INF, _SUBNORMAL_L)


def _widen(a: np.ndarray, b: np.ndarray, rel: Any) -> Interval:
    """[min(a, b), max(a, b)] pushed out by ``rel`` of its magnitude (library error)."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return _down(lo - _pad(lo, rel)), _up(hi + _pad(hi, rel))


# Above this, adding _TINY (8 subnormal units) to a number rounds back to it: its ulp is
# at least 2**10 units. x87 arithmetic with a subnormal operand costs about 100 ns.
_TINY_VANISHES = np.ldexp(_SMALLEST_NORMAL_L, 10)


def _pad(x: np.ndarray, rel: Any) -> np.ndarray:
    """``|x| * rel + _TINY``, adding the subnormal ``_TINY`` only where it counts."""
    pad = np.abs(x) * rel
    small = ~(pad >= _TINY_VANISHES)  # NaN too: it stays NaN either way
    if small.any():
        pad[small] = pad[small] + _TINY
    return pad


def _at_ends(
    fn: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``fn(lo)`` and ``fn(hi)``, calling the library once where the interval is a point
    (the same numbers: libm is elementwise; long double libm calls cost 40-70 ns each)."""
    at_lo = fn(lo)
    wide = (lo != hi) | (np.signbit(lo) != np.signbit(hi))  # [+0, -0] is two numbers to 1/u
    if wide.all():
        return at_lo, fn(hi)
    at_hi = at_lo.copy()
    if wide.any():
        at_hi[wide] = fn(hi[wide])
    return at_lo, at_hi


def _monotone(
    fn: Callable[[np.ndarray], np.ndarray], rel: Any = _REL_LIBM, odd: bool = False
) -> Callable[..., Result]:
    """An interval version of a function monotone on every interval it is given. For an
    ``odd`` function (f(0) = 0, which C's libm returns exactly) the point 0 maps to 0."""

    def run(lo: np.ndarray, hi: np.ndarray) -> Result:
        a, b = _widen(*_at_ends(fn, lo, hi), rel)
        if odd:
            zero = (lo == 0) & (hi == 0)
            a, b = np.where(zero, _ZERO, a), np.where(zero, _ZERO, b)
        return a, b, None, None

    return run


def _guarded(
    fn: Callable[[np.ndarray], np.ndarray],
    safe: Callable[[np.ndarray, np.ndarray], np.ndarray],
    odd: bool = False,
) -> Callable[..., Result]:
    """``fn`` (monotone where ``safe``), unsure wherever ``safe(lo, hi)`` does not hold."""
    inner = _monotone(fn, odd=odd)

    def run(lo: np.ndarray, hi: np.ndarray) -> Result:
        a, b, _, _ = inner(lo, hi)
        return a, b, ~safe(lo, hi), None

    return run


def _no_zero(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return (lo > 0) | (hi < 0)


def _away_from_zeros_of(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    """Whether a 1-Lipschitz ``fn`` (sin, cos) has no zero on [lo, hi]: |fn(lo)| exceeds the
    width plus the library's error. Single points always qualify."""

    def safe(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        width = hi - lo
        out = width == 0
        wide = ~out
        if wide.any():
            w = width[wide]
            out[wide] = np.abs(fn(lo[wide])) > w * (1 + _REL_LIBM) + 4 * _EPS
        return out

    return safe


def _both(*tests: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def safe(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        out = tests[0](lo, hi)
        for t in tests[1:]:
            out = out & t(lo, hi)
        return out

    return safe


# ---- arithmetic ---------------------------------------------------------------------------


def _sum_error(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(a + b) - s exactly, for s = fl(a + b) (Knuth's TwoSum)."""
    bb = s - a
    return (a - (s - bb)) + (b - bb)


def add(alo: np.ndarray, ahi: np.ndarray, blo: np.ndarray, bhi: np.ndarray) -> Result:
    """Interval sum, moved outward only where the rounded sum is not exact."""
    lo, hi = alo + blo, ahi + bhi
    lo = np.where(_sum_error(alo, blo, lo) < 0, _down(lo), lo)
    hi = np.where(_sum_error(ahi, bhi, hi) > 0, _up(hi), hi)
    return lo, hi, None, None


def mul(alo: np.ndarray, ahi: np.ndarray, blo: np.ndarray, bhi: np.ndarray) -> Result:
    """Interval product (NaN from 0 * inf leaves the point unsure)."""
    p, q, r, s = alo * blo, alo * bhi, ahi * blo, ahi * bhi
    lo = np.minimum(np.minimum(p, q), np.minimum(r, s))
    hi = np.maximum(np.maximum(p, q), np.maximum(r, s))
    # exact where one factor is the point 0, or a power of two (negation, halving) and
    # every product is 0 from a 0 factor or a finite normal number (not an underflow)
    exact = _is_point(alo, ahi, 0) | _is_point(blo, bhi, 0)
    scaled = _exact_scale(alo, ahi) | _exact_scale(blo, bhi)
    for prod, x, y in ((p, alo, blo), (q, alo, bhi), (r, ahi, blo), (s, ahi, bhi)):
        scaled &= ((prod == 0) & ((x == 0) | (y == 0))) | (
            (np.abs(prod) >= _SMALLEST_NORMAL_L) & (np.abs(prod) <= _LARGEST_L)
        )
    exact |= scaled
    return np.where(exact, lo, _down(lo)), np.where(exact, hi, _up(hi)), None, None


def _is_point(lo: np.ndarray, hi: np.ndarray, value: float) -> np.ndarray:
    return (lo == value) & (hi == value)


def extreme(lo: np.ndarray, hi: np.ndarray) -> np.ndarray | None:
    """Where an interval is not finite, reaches beyond 2**1100 in magnitude or comes
    nearer to 0 than 2**-1100 without being 0. Past float64's range on either side long
    double's own over- and underflow come nearer, and so do results that arb at 4096 bits
    cannot settle (tanh(sinh(5678))): arb decides there, so both agree. None where nowhere."""
    alo, ahi = np.abs(lo), np.abs(hi)
    out = ~(np.maximum(alo, ahi) <= _BIG) | ((alo < _SMALL) & (lo != 0)) | ((ahi < _SMALL) & (hi != 0))
    return out if out.any() else None


def _exact_scale(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Where [lo, hi] is the single number 0 or +-2**k."""
    return (lo == hi) & ((lo == 0) | (np.abs(np.frexp(lo)[0]) == 0.5))


def maximum(alo: np.ndarray, ahi: np.ndarray, blo: np.ndarray, bhi: np.ndarray) -> Result:
    """Interval max: exact."""
    return np.maximum(alo, blo), np.maximum(ahi, bhi), None, None


def minimum(alo: np.ndarray, ahi: np.ndarray, blo: np.ndarray, bhi: np.ndarray) -> Result:
    """Interval min: exact."""
    return np.minimum(alo, blo), np.minimum(ahi, bhi), None, None


def absolute(lo: np.ndarray, hi: np.ndarray) -> Result:
    """Interval |u|: exact."""
    low = np.where(lo >= 0, lo, np.where(hi <= 0, -hi, _ZERO))
    return low, np.maximum(np.abs(lo), np.abs(hi)), None, None


def _reciprocal(lo: np.ndarray, hi: np.ndarray) -> Result:
    """1/u for u not containing 0 (unsure where it does)."""
    return _down(_ONE / hi), _up(_ONE / lo), ~_no_zero(lo, hi), None


def _reciprocal_of(inner: Callable[..., Result]) -> Callable[..., Result]:
    def run(lo: np.ndarray, hi: np.ndarray) -> Result:
        a, b, unsure, _ = inner(lo, hi)
        c, d, zero, _ = _reciprocal(a, b)
        return c, d, either(unsure, zero), None

    return run


def either(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """The union of two optional masks (None: nowhere)."""
    if a is None:
        return b
    return a if b is None else a | b


def nonneg_int_pow(n: int) -> Callable[..., Result]:
    """u**n for an integer n >= 0."""
    if n == 0:
        return lambda lo, hi: (np.ones_like(lo), np.ones_like(hi), None, None)
    if n == 1:
        return lambda lo, hi: (lo, hi, None, None)
    if n == 2:

        def square(lo: np.ndarray, hi: np.ndarray) -> Result:
            a, b = lo * lo, hi * hi
            low = np.where((lo <= 0) & (hi >= 0), _ZERO, _down(np.minimum(a, b)))
            return low, _up(np.maximum(a, b)), None, None

        return square
    exponent = _L(n)

    def power(lo: np.ndarray, hi: np.ndarray) -> Result:
        a, b = _widen(*_at_ends(lambda u: np.power(u, exponent), lo, hi), _REL_LIBM)
        if n % 2 == 0:
            a = np.where((lo <= 0) & (hi >= 0), _ZERO, a)
        return a, b, None, None

    return power


def neg_int_pow(n: int) -> Callable[..., Result]:
    """u**n for an integer n < 0: unsure where u may be 0."""
    exponent = _L(n)

    def power(lo: np.ndarray, hi: np.ndarray) -> Result:
        a, b = _widen(*_at_ends(lambda u: np.power(u, exponent), lo, hi), _REL_LIBM)
        return a, b, ~_no_zero(lo, hi), None

    return power


def sqrt(lo: np.ndarray, hi: np.ndarray) -> Result:
    """Square root of a positive interval (correctly rounded, so one ulp outward)."""
    return _down(np.sqrt(lo)), _up(np.sqrt(hi)), ~(lo > 0), None


def rsqrt(lo: np.ndarray, hi: np.ndarray) -> Result:
    """1/sqrt(u) for u > 0."""
    a, b, unsure, _ = sqrt(lo, hi)
    c, d, zero, _ = _reciprocal(a, b)
    return c, d, either(unsure, zero), None


def log(lo: np.ndarray, hi: np.ndarray) -> Result:
    """Natural log of a positive interval."""
    a, b = _widen(*_at_ends(np.log, lo, hi), _REL_LIBM)
    return a, b, ~(lo > 0), None


def exp(lo: np.ndarray, hi: np.ndarray) -> Result:
    """Exponential."""
    a, b = _widen(*_at_ends(np.exp, lo, hi), _REL_LIBM)
    return a, b, None, None


def real_pow(numerator: int, denominator: int) -> Callable[..., Result]:
    """u**(p/q) for a non-integer rational p/q and u > 0, as exp(q * log(u))."""
    q_lo, q_hi = from_arb(arb(numerator) / denominator)

    def power(lo: np.ndarray, hi: np.ndarray) -> Result:
        a, b, unsure, _ = log(lo, hi)
        c, d, _, _ = mul(a, b, np.full_like(a, q_lo), np.full_like(b, q_hi))
        e, f, _, _ = exp(c, d)
        return e, f, unsure, None

    return power


def runtime_pow(blo: np.ndarray, bhi: np.ndarray, elo: np.ndarray, ehi: np.ndarray) -> Result:
    """b**e with both operands computed: exp(e * log(b)) for b > 0; unsure elsewhere."""
    a, b, unsure, _ = log(blo, bhi)
    c, d, _, _ = mul(elo, ehi, a, b)
    e, f, _, _ = exp(c, d)
    return e, f, unsure, None


# ---- elementary functions -----------------------------------------------------------------

sin = _guarded(np.sin, _away_from_zeros_of(np.cos), odd=True)
cos = _guarded(np.cos, _away_from_zeros_of(np.sin))
tan = _guarded(np.tan, _away_from_zeros_of(np.cos), odd=True)
sec = _reciprocal_of(_guarded(np.cos, _both(_away_from_zeros_of(np.sin), _away_from_zeros_of(np.cos))))
csc = _reciprocal_of(_guarded(np.sin, _both(_away_from_zeros_of(np.sin), _away_from_zeros_of(np.cos))))
cot = _reciprocal_of(_guarded(np.tan, _both(_away_from_zeros_of(np.sin), _away_from_zeros_of(np.cos))))
sinh = _monotone(np.sinh, odd=True)
tanh = _monotone(np.tanh, odd=True)
atan = _monotone(np.arctan, odd=True)
asinh = _monotone(np.arcsinh, odd=True)
coth = _reciprocal_of(_guarded(np.tanh, _no_zero))
csch = _reciprocal_of(_guarded(np.sinh, _no_zero))
asin = _guarded(np.arcsin, lambda lo, hi: (lo > -1) & (hi < 1), odd=True)
acos = _guarded(np.arccos, lambda lo, hi: (lo > -1) & (hi < 1))
acosh = _guarded(np.arccosh, lambda lo, hi: lo > 1)
atanh = _guarded(np.arctanh, lambda lo, hi: (lo > -1) & (hi < 1), odd=True)


def cosh(lo: np.ndarray, hi: np.ndarray) -> Result:
    """cosh: its minimum 1 sits at 0."""
    a, b = _widen(*_at_ends(np.cosh, lo, hi), _REL_LIBM)
    return np.where((lo <= 0) & (hi >= 0), _ONE, a), b, None, None


def sech(lo: np.ndarray, hi: np.ndarray) -> Result:
    """sech = 1/cosh."""
    a, b, _, _ = cosh(lo, hi)
    return _down(_ONE / b), _up(_ONE / a), None, None


def _float64_fn(fn: Callable[[float], float]) -> Callable[[np.ndarray], np.ndarray]:
    ufunc = np.frompyfunc(fn, 1, 1)

    def run(x: np.ndarray) -> np.ndarray:
        # rounding the argument to float64 moves it: that error is added in _erf_like
        return np.asarray(ufunc(x.astype(np.float64))).astype(_L)

    return run


def _erf_like(fn: Callable[[float], float]) -> Callable[..., Result]:
    """erf / erfc through float64 ``math`` functions (numpy has no long double erf): the
    argument's rounding to float64 moves the result by at most |erf'| <= 2/sqrt(pi) times
    that much, added on top of :data:`ERF_ULPS`."""
    f = _float64_fn(fn)

    def run(lo: np.ndarray, hi: np.ndarray) -> Result:
        lo64, hi64 = lo.astype(np.float64).astype(_L), hi.astype(np.float64).astype(_L)
        moved = np.maximum(np.abs(lo - lo64), np.abs(hi - hi64))
        # |erf'(t)| = 2/sqrt(pi) exp(-t**2) <= 1.2 exp(-m**2), m the least |t| in reach
        m = np.where((lo <= 0) & (hi >= 0), _ZERO, np.minimum(np.abs(lo), np.abs(hi)))
        m = np.maximum(m - moved, _ZERO)
        shift = moved * _L(1.2) * np.exp(-m * m)
        fa, fb = f(lo), f(hi)
        a, b = _widen(fa, fb, _REL_ERF)
        # a float64 result below the normal range has lost relative accuracy
        # (an exact 0 only comes from erf(0))
        tiny = (np.abs(fa) < _SMALLEST_NORMAL_F64) & ~((fa == 0) & (lo == 0))
        tiny |= (np.abs(fb) < _SMALLEST_NORMAL_F64) & ~((fb == 0) & (hi == 0))
        return _down(a - shift), _up(b + shift), tiny, None

    return run


erf = _erf_like(math.erf)
erfc = _erf_like(math.erfc)


# ---- jumps and spikes (exact where the point is clear of the break) -------------------


def jump(low: int, high: int) -> Callable[..., Result]:
    """``low`` below 0, ``high`` above; unsure near 0. A 0 below is a strong zero."""
    low_v, high_v = _L(low), _L(high)

    def run(lo: np.ndarray, hi: np.ndarray) -> Result:
        value = np.where(lo > 0, high_v, low_v)
        strong = (hi < 0) if low == 0 else None
        return value, value.copy(), ~((lo > 0) | (hi < 0)), strong

    return run


def spike(lo: np.ndarray, hi: np.ndarray) -> Result:
    """A Dirac spike: a strong zero away from 0, unsure near it."""
    clear = _no_zero(lo, hi)
    zero = np.zeros_like(lo)
    return zero, zero.copy(), ~clear, clear


def _clear_of_integers(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.ceil(lo) > hi


def floor_spike(lo: np.ndarray, hi: np.ndarray) -> Result:
    """A derivative of floor: a strong zero off the integers, unsure near them."""
    clear = _clear_of_integers(lo, hi)
    zero = np.zeros_like(lo)
    return zero, zero.copy(), ~clear, clear


def floor_hull(lo: np.ndarray, hi: np.ndarray) -> Result:
    """floor inside a derivative: exact off the integers, unsure near them."""
    value = np.floor(lo)
    return value, value.copy(), ~_clear_of_integers(lo, hi), None


def ceiling_hull(lo: np.ndarray, hi: np.ndarray) -> Result:
    """ceiling inside a derivative, as -floor(-u)."""
    value, _, unsure, _ = floor_hull(-hi, -lo)
    return -value, -value, unsure, None


def floor_value(lo: np.ndarray, hi: np.ndarray) -> Result:
    """floor's own value: exact off the integers and at exactly known points."""
    value = np.floor(lo)
    return value, value.copy(), ~(_clear_of_integers(lo, hi) | (lo == hi)), None


def ceiling_value(lo: np.ndarray, hi: np.ndarray) -> Result:
    """ceiling's own value, likewise."""
    value = np.ceil(hi)
    return value, value.copy(), ~((np.floor(hi) < lo) | (lo == hi)), None


def sign_value(lo: np.ndarray, hi: np.ndarray) -> Result:
    """sign's own value: sign(0) = 0 at an exact 0."""
    value = np.where(lo > 0, _ONE, np.where(hi < 0, -_ONE, _ZERO))
    exact_zero = (lo == 0) & (hi == 0)
    return value, value.copy(), ~((lo > 0) | (hi < 0) | exact_zero), None


# ---- settling -----------------------------------------------------------------------------


def settle(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 values, bounds on |exact - midpoint| and a settled mask for intervals.

    Settled where both ends round to one finite float64 that is 0 or normal (then it is
    the correctly rounded exact value); the bound is the half-width, rounded up.
    """
    with np.errstate(all="ignore"):  # beyond float64's range: inf, not settled
        a, b = lo.astype(np.float64) + 0.0, hi.astype(np.float64) + 0.0  # + 0.0: no -0.0
        settled = (a == b) & np.isfinite(a) & ((a == 0) | (np.abs(a) >= _SMALLEST_NORMAL_F64))
        width = hi - lo
        half = np.zeros_like(width)  # a point: half of the next long double up rounds to 0
        wide = width != 0
        half[wide] = _up(width[wide]) / 2  # the width rounded up; halving is exact
        bound = half.astype(np.float64)
        bound = np.where(bound.astype(_L) < half, np.nextafter(bound, np.inf), bound)
    return a, bound, settled
