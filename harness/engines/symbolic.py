"""The truth engine: exact sympy derivatives, evaluated with certified ball arithmetic.

The tree becomes a sympy expression (constants rounded to the tested dtype, so the truth is
that of the function the engine under test actually computes), sympy differentiates it, and
each list of derivative expressions is compiled ONCE, through ``sympy.cse``, into a flat
program over python-flint ``arb`` balls (one dict from sympy classes to arb functions, with
the same operation over long double intervals and over power series beside each). The
program runs at the exact point (float64 inputs convert to ``arb`` exactly) at 128 bits, and
reruns at doubled precision until every ball is tight: radius <= 2**-62 * |mid| (about 1e-3
ulp of float64) or <= 2**-1100 (an exact zero). Before that, one vectorised pass over all
points in long double interval arithmetic (:mod:`harness.engines.intervals`) settles every
entry whose interval rounds to a single float64, the correctly rounded exact value, as arb
would give; only the other entries run point by point in arb (``precision_bits`` says which:
64 for the interval pass). Each entry gets a status:

* ``"ok"``: certified; ``bounds`` is a proven bound on |exact - mid| (before rounding mid
  to float64 for ``values``; mid is the ball's or the interval's midpoint).
* ``"uncertified"``: still too wide at :data:`MAX_BITS`; ``values`` is the ball's midpoint.
* ``"kink"``: a non-smooth function sits exactly at its break (relu, abs, max/min ties,
  floor at an integer, sign at 0), so the two-sided derivative may not exist. ``one_sided``
  gives the limits from either side. Discontinuous primitives evaluate to the hull of their
  one-sided values there, so a derivative that exists anyway (relu(x)**2 at 0) still comes
  out ``"ok"``.
* ``"undefined"``: the derivative or some node of the *literal* tree is undefined at the
  point (log of a negative, division by zero, a non-real value: ``x / x`` at 0 although
  sympy reads it as 1), the point sits on a domain edge with nothing on one side (acos at
  1), or the result overflows float64.

Sympy assumes complex arguments for Abs, sign and floor and differentiates them into
re/im/Subs forms; they are swapped for real-valued stand-ins (:class:`_RealAbs`, ...) whose
derivatives are sign, Dirac delta and the floor's spike train before differentiating.
A chain-rule term through a locally inactive branch (Heaviside or a spike away from its
break) is exactly 0 whatever its other factors (see :meth:`_Program._run_careful`).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import sympy
from flint import arb, arb_series, ctx, fmpq

from harness.dtypes import round_fraction
from harness.engines import intervals as iv
from harness.engines import series as sr
from harness.engines.base import EngineError, check_request
from harness.expr import Call, Const, Expr, Var, fold, variables, walk
from harness.memo import Memo
from harness.ops import OPS

__all__ = ["MAX_BITS", "START_BITS", "STATUSES", "SymbolicEngine", "Truth"]

START_BITS = 128
"""Working precision of the first evaluation of every point."""
MAX_BITS = 4096
"""Precision cap: an entry still not tight here is reported ``"uncertified"``."""
STATUSES: tuple[str, ...] = ("ok", "uncertified", "kink", "undefined")
"""Entry statuses, in the order of their integer codes."""
ONE_SIDED_SHIFT = Fraction(1, 2**300)
"""How far :meth:`SymbolicEngine.one_sided` steps off the point on either side."""

_OK, _UNCERTIFIED, _KINK_STATUS, _UNDEFINED = range(4)

# Events a primitive reports about its argument ball (bit flags).
_UNDEF = 1  # certainly outside the domain (log of <= 0, division by an exact 0)
_KINK = 2  # exactly at a discontinuity of the primitive
_NEAR_KINK = 4  # the ball straddles a discontinuity: more precision may settle it
_NEAR_EDGE = 8  # the ball straddles a domain boundary: more precision may settle it
_EDGE = 16  # exactly on a domain boundary where the value is defined (sqrt(0), asin(1))

# How a strong zero (see _STRONG_ZERO) flows through an instruction.
_NO_ZERO, _ANY_ZERO, _ALL_ZERO = 0, 1, 2  # result stays 0 if any / all operands are

_REL_TOL = arb(2) ** -62
_ABS_TOL = arb(2) ** -1100
_NAN = arb.nan()
_ANY_REAL = arb(0, arb.pos_inf())
_ZERO = arb(0)
_STRONG_ZERO = arb(0)  # a distinct object: an exact 0 that no other factor can undo


@dataclass(frozen=True, eq=False)
class Truth:
    """Certified derivatives and how far to trust each entry.

    ``values`` is float64 (the ball midpoints rounded to nearest; NaN where ``status`` is
    ``"kink"`` or ``"undefined"``). ``bounds`` is the ball radius: a proven bound on
    |exact - midpoint| (NaN where ``values`` is NaN). ``status`` holds one of
    :data:`STATUSES` per entry; ``precision_bits`` the working precision that settled it.
    All four have the shape of :meth:`SymbolicEngine.derivatives`' answer.
    """

    values: np.ndarray
    bounds: np.ndarray
    status: np.ndarray
    precision_bits: np.ndarray


# ---- real-valued stand-ins for sympy's complex Abs / sign / floor -----------------------


class _RealAbs(sympy.Function):
    """|u| for real u; d|u|/du = sign(u) (sympy's Abs assumes u may be complex)."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> Any:
        return _RealSign(self.args[0])


class _RealSign(sympy.Function):
    """sign(u) for real u; its derivative is 2 * DiracDelta(u)."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> Any:
        return 2 * sympy.DiracDelta(self.args[0])


class _FloorSpike(sympy.Function):
    """Any derivative of floor(u): 0 off the integers, undefined on them."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> Any:
        return _FloorSpike(self.args[0])


class _Floor(sympy.Function):
    """floor(u) for real u, differentiated as :class:`_FloorSpike`."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> Any:
        return _FloorSpike(self.args[0])


def _ceiling(u: Any) -> Any:
    return -_Floor(-u)


_REAL_STANDINS: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (sympy.Abs, _RealAbs),
    (sympy.sign, _RealSign),
    (sympy.floor, _Floor),
    (sympy.ceiling, _ceiling),
)


def _realify(e: Any) -> Any:
    for cls, standin in _REAL_STANDINS:
        e = e.replace(cls, standin)
    return e


# ---- arb primitives ----------------------------------------------------------------------
# Unguarded primitives map arb -> arb. Guarded ones return (arb, event bits).

Guarded = tuple[Any, int]


def _hull(lo: int, hi: int) -> Any:
    return arb(lo).union(arb(hi))


def _log(u: Any) -> Guarded:
    if u > 0:
        return u.log(), 0
    return _NAN, (_UNDEF if u <= 0 else _NEAR_EDGE)


def _arcsine_like(method: str) -> Callable[[Any], Guarded]:
    fn = getattr(arb, method)

    def guarded(u: Any) -> Guarded:
        if u > -1 and u < 1:
            return fn(u), 0
        if u >= -1 and u <= 1:
            return fn(u), _EDGE
        return _NAN, (_UNDEF if (u > 1 or u < -1) else _NEAR_EDGE)

    return guarded


def _guarded_on(
    fn: Callable[[Any], Any], inside: Callable[[Any], bool], outside: Callable[[Any], bool]
) -> Callable[[Any], Guarded]:
    """``fn`` where ``inside(u)`` holds for the whole ball; undefined where ``outside(u)``
    holds for it; otherwise the ball straddles the boundary."""

    def guarded(u: Any) -> Guarded:
        if inside(u):
            return fn(u), 0
        return _NAN, (_UNDEF if outside(u) else _NEAR_EDGE)

    return guarded


def _nonneg_int_pow(n: int) -> Callable[[Any], Any]:
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


def _neg_int_pow(n: int) -> Callable[[Any], Guarded]:
    def guarded(b: Any) -> Guarded:
        if not b.contains(0):
            return b**n, 0
        return _NAN, (_UNDEF if b.is_zero() else _NEAR_EDGE)

    return guarded


def _real_pow(q: Fraction) -> Callable[[Any], Guarded]:
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
            return _ZERO, _EDGE
        return _NAN, (_UNDEF if b <= 0 else _NEAR_EDGE)

    return guarded


def _runtime_pow(b: Any, e: Any) -> Guarded:
    """b**e with both operands computed: integer powers of any base, else a positive base."""
    if e.is_integer():
        n = int(e.unique_fmpz())
        return (_nonneg_int_pow(n)(b), 0) if n >= 0 else _neg_int_pow(n)(b)
    if b > 0:
        return b**e, 0
    if b.is_zero() and e > 0:
        return _ZERO, _EDGE
    if b.is_zero() or b < 0:
        return _NAN, (_NEAR_EDGE if e.contains_integer() else _UNDEF)
    return _NAN, _NEAR_EDGE


def _step(lo: int, hi: int) -> Callable[[Any], Guarded]:
    """A jump from ``lo`` (u < 0) to ``hi`` (u > 0); the hull of both at u = 0."""
    low, high, hull = (_STRONG_ZERO if lo == 0 else arb(lo)), arb(hi), _hull(lo, hi)

    def guarded(u: Any) -> Guarded:
        if u > 0:
            return high, 0
        if u < 0:
            return low, 0
        return hull, (_KINK if u.is_zero() else _NEAR_KINK)

    return guarded


def _spike(u: Any) -> Guarded:
    """DiracDelta(u) and its derivatives: 0 where u != 0, any real number at u = 0."""
    if not u.contains(0):
        return _STRONG_ZERO, 0
    return _ANY_REAL, (_KINK if u.is_zero() else _NEAR_KINK)


def _floor_spike(u: Any) -> Guarded:
    if not u.contains_integer():
        return _STRONG_ZERO, 0
    return _ANY_REAL, (_KINK if u.is_exact() else _NEAR_KINK)


def _floor_hull(u: Any) -> Guarded:
    """floor(u), or the hull of its two one-sided values at an integer u."""
    if not u.contains_integer():
        return u.floor(), 0
    if u.is_exact():
        return (u - 1).union(u), _KINK
    return u.floor(), _NEAR_KINK


def _ceiling_hull(u: Any) -> Guarded:
    value, event = _floor_hull(-u)
    return -value, event


def _floor_value(u: Any) -> Guarded:
    return u.floor(), (_NEAR_KINK if u.contains_integer() and not u.is_exact() else 0)


def _ceiling_value(u: Any) -> Guarded:
    return u.ceil(), (_NEAR_KINK if u.contains_integer() and not u.is_exact() else 0)


def _sign_value(u: Any) -> Guarded:
    return u.sgn(), (_NEAR_KINK if u.contains(0) and not u.is_zero() else 0)


def _max(a: Any, b: Any) -> Any:
    return a.max(b)


def _min(a: Any, b: Any) -> Any:
    return a.min(b)


@dataclass(frozen=True)
class _Rule:
    """How one sympy class evaluates over arb: ``fn`` on its first argument (or folded
    pairwise over all arguments when ``fold`` is set); ``guarded`` fns report events."""

    fn: Callable[..., Any]
    interval: Callable[..., iv.Result] | None  # the same over long double intervals
    guarded: bool = False
    fold: bool = False
    zero: int = _NO_ZERO  # _ANY_ZERO / _ALL_ZERO: how strong zeros flow through it


_COMMON_RULES: Mapping[type, _Rule] = {
    sympy.Add: _Rule(operator.add, iv.add, fold=True, zero=_ALL_ZERO),
    sympy.Mul: _Rule(operator.mul, iv.mul, fold=True, zero=_ANY_ZERO),
    sympy.Max: _Rule(_max, iv.maximum, fold=True),
    sympy.Min: _Rule(_min, iv.minimum, fold=True),
    sympy.exp: _Rule(arb.exp, iv.exp),
    sympy.log: _Rule(_log, iv.log, guarded=True),
    sympy.sin: _Rule(arb.sin, iv.sin),
    sympy.cos: _Rule(arb.cos, iv.cos),
    sympy.tan: _Rule(arb.tan, iv.tan),
    sympy.sec: _Rule(arb.sec, iv.sec),
    sympy.sinh: _Rule(arb.sinh, iv.sinh),
    sympy.cosh: _Rule(arb.cosh, iv.cosh),
    sympy.tanh: _Rule(arb.tanh, iv.tanh),
    sympy.asin: _Rule(_arcsine_like("asin"), iv.asin, guarded=True),
    sympy.acos: _Rule(_arcsine_like("acos"), iv.acos, guarded=True),
    sympy.atan: _Rule(arb.atan, iv.atan),
    sympy.asinh: _Rule(arb.asinh, iv.asinh),
    sympy.acosh: _Rule(
        _guarded_on(arb.acosh, lambda u: u >= 1, lambda u: u < 1), iv.acosh, guarded=True
    ),
    sympy.atanh: _Rule(
        _guarded_on(arb.atanh, lambda u: abs(u) < 1, lambda u: abs(u) >= 1), iv.atanh, guarded=True
    ),
    sympy.cot: _Rule(
        _guarded_on(arb.cot, lambda u: not u.contains(0), arb.is_zero), iv.cot, guarded=True
    ),
    sympy.csc: _Rule(
        _guarded_on(arb.csc, lambda u: not u.contains(0), arb.is_zero), iv.csc, guarded=True
    ),
    sympy.coth: _Rule(
        _guarded_on(arb.coth, lambda u: not u.contains(0), arb.is_zero), iv.coth, guarded=True
    ),
    sympy.csch: _Rule(
        _guarded_on(arb.csch, lambda u: not u.contains(0), arb.is_zero), iv.csch, guarded=True
    ),
    sympy.sech: _Rule(arb.sech, iv.sech),
    sympy.erf: _Rule(arb.erf, iv.erf),
    sympy.erfc: _Rule(arb.erfc, iv.erfc),
    sympy.Abs: _Rule(abs, iv.absolute),
    _RealAbs: _Rule(abs, iv.absolute),
    sympy.Heaviside: _Rule(_step(0, 1), iv.step(0, 1), guarded=True),
    sympy.DiracDelta: _Rule(_spike, iv.spike, guarded=True),
    _FloorSpike: _Rule(_floor_spike, iv.floor_spike, guarded=True),
}

# Inside a derivative a jump is at its break: take the hull of both sides (kink).
_DERIVATIVE_RULES: Mapping[type, _Rule] = {
    **_COMMON_RULES,
    sympy.sign: _Rule(_step(-1, 1), iv.step(-1, 1), guarded=True),
    _RealSign: _Rule(_step(-1, 1), iv.step(-1, 1), guarded=True),
    _Floor: _Rule(_floor_hull, iv.floor_hull, guarded=True),
    sympy.floor: _Rule(_floor_hull, iv.floor_hull, guarded=True),
    sympy.ceiling: _Rule(_ceiling_hull, iv.ceiling_hull, guarded=True),
}
# The function's own value at a jump is well defined: sign(0) = 0, floor(2) = 2.
_VALUE_RULES: Mapping[type, _Rule] = {
    **_COMMON_RULES,
    sympy.sign: _Rule(_sign_value, iv.sign_value, guarded=True),
    _RealSign: _Rule(_sign_value, iv.sign_value, guarded=True),
    _Floor: _Rule(_floor_value, iv.floor_value, guarded=True),
    sympy.floor: _Rule(_floor_value, iv.floor_value, guarded=True),
    sympy.ceiling: _Rule(_ceiling_value, iv.ceiling_value, guarded=True),
}

_RUNTIME_POW = _Rule(_runtime_pow, iv.runtime_pow, guarded=True)


def _sign_of(h: Any) -> Any:
    return arb(1) if h > 0 else arb(-1) if h < 0 else None


def _step_of(h: Any) -> Any:
    return arb(1) if h > 0 else arb(0) if h < 0 else None


def _floor_of(h: Any) -> Any:
    return h.floor() if not h.contains_integer() else None


def _ceiling_of(h: Any) -> Any:
    return h.ceil() if not h.contains_integer() else None


# Power-series versions of the value rules (see harness/engines/series.py), for Taylor
# coefficients: jumps are constant away from the jump and have no series at it.
_SERIES_RULES: Mapping[type, sr.SeriesFn] = {
    sympy.Add: sr.add,
    sympy.Mul: sr.mul,
    sympy.Max: sr.maximum,
    sympy.Min: sr.minimum,
    sympy.exp: sr.exp,
    sympy.log: sr.log,
    sympy.sin: sr.sin,
    sympy.cos: sr.cos,
    sympy.tan: sr.tan,
    sympy.sec: sr.sec,
    sympy.csc: sr.csc,
    sympy.cot: sr.cot,
    sympy.sinh: sr.sinh,
    sympy.cosh: sr.cosh,
    sympy.tanh: sr.tanh,
    sympy.sech: sr.sech,
    sympy.csch: sr.csch,
    sympy.coth: sr.coth,
    sympy.asin: sr.asin,
    sympy.acos: sr.acos,
    sympy.atan: sr.atan,
    sympy.asinh: sr.asinh,
    sympy.acosh: sr.acosh,
    sympy.atanh: sr.atanh,
    sympy.erf: sr.erf,
    sympy.erfc: sr.erfc,
    sympy.Abs: sr.absolute,
    _RealAbs: sr.absolute,
    sympy.Heaviside: sr.piecewise_constant(_step_of),
    sympy.sign: sr.piecewise_constant(_sign_of),
    _RealSign: sr.piecewise_constant(_sign_of),
    _Floor: sr.piecewise_constant(_floor_of),
    sympy.floor: sr.piecewise_constant(_floor_of),
    sympy.ceiling: sr.piecewise_constant(_ceiling_of),
}


def _series_rule(node: Any, values: bool) -> sr.SeriesFn | None:
    """The series version of ``node``'s instruction (value programs only; None if none)."""
    if not values:
        return None
    if isinstance(node, sympy.Pow):
        if isinstance(node.exp, sympy.Rational):
            return sr.rational_pow(Fraction(int(node.exp.p), int(node.exp.q)))
        return sr.runtime_pow
    for cls in type(node).__mro__:
        fn = _SERIES_RULES.get(cls)
        if fn is not None:
            return fn
    return None

_NUMBER_SYMBOLS: Mapping[type, Callable[[], Any]] = {
    type(sympy.pi): arb.pi,
    type(sympy.E): arb.const_e,
}
_UNDEFINED_ATOMS = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I)


def _rule(node: Any, rules: Mapping[type, _Rule]) -> _Rule:
    for cls in type(node).__mro__:
        rule = rules.get(cls)
        if rule is not None:
            return rule
    raise EngineError(
        f"sympy produced {type(node).__name__} (in {node}), which the arb translator in "
        "harness/engines/symbolic.py does not handle; add a rule for it there"
    )


# ---- compiled programs -------------------------------------------------------------------

Instruction = tuple[int, Callable[..., Any], int, int, bool, int]
"""dst slot, fn, first argument slot, second argument slot or -1, guarded, zero rule"""


class _Program:
    """A straight-line program over arb balls computing ``n_entries`` outputs, followed by
    domain outputs (every literal subtree's value) whose definedness gates all entries.

    Slots hold inputs first, then constants, then instruction results. :meth:`run` takes
    a fast pass and, only when some primitive reported an event, a careful pass that
    tracks which outputs each event reaches.
    """

    def __init__(self, n_inputs: int, n_entries: int, derivative: bool = True) -> None:
        self.n_inputs = n_inputs
        self.n_entries = n_entries
        self.derivative = derivative  # outputs are derivatives: they need a neighbourhood
        self.n_slots = n_inputs
        self.constants: list[tuple[int, Callable[[], Any]]] = []
        self.undefined_constants: list[int] = []  # non-real or infinite constants
        self.code: list[Instruction] = []
        self.intervals: list[Callable[..., iv.Result] | None] = []  # per instruction
        self.series: list[sr.SeriesFn | None] = []  # per instruction
        self.outputs: list[int] = []
        self._frames: dict[int, list[Any]] = {}
        self._interval_constants: list[tuple[int, Any, Any]] | None = None

    def new_slot(self) -> int:
        self.n_slots += 1
        return self.n_slots - 1

    def _frame(self, prec: int) -> list[Any]:
        frame = self._frames.get(prec)
        if frame is None:
            frame = [None] * self.n_slots
            for slot, make in self.constants:
                frame[slot] = make()
            self._frames[prec] = frame
        return frame

    def run(self, inputs: Sequence[Any]) -> tuple[list[Any], list[int]]:
        """Outputs at the current ``ctx.prec`` and the event bits that reached each."""
        vals = list(self._frame(ctx.prec))
        vals[: self.n_inputs] = inputs
        eventful = bool(self.undefined_constants)
        for dst, fn, i, j, guarded, _zero in self.code:
            r = fn(vals[i]) if j < 0 else fn(vals[i], vals[j])
            if guarded:
                r, ev = r
                eventful = eventful or ev != 0
            vals[dst] = r
        if eventful:
            return self._run_careful(inputs)
        return [vals[s] for s in self.outputs], [0] * len(self.outputs)

    def _run_careful(self, inputs: Sequence[Any]) -> tuple[list[Any], list[int]]:
        """Like :meth:`run`, tracking event bits per slot and strong zeros.

        A strong zero (Heaviside or a Dirac spike away from its break) marks a chain-rule
        term through a locally inactive branch (relu below 0, the smaller side of a max):
        that term is 0 near the point, whatever its other factors are, even undefined
        ones (d/dy sqrt(relu(y)) at y = -1 is 0, not 0 * inf).
        """
        vals = list(self._frame(ctx.prec))
        vals[: self.n_inputs] = inputs
        flags = [0] * self.n_slots
        for slot in self.undefined_constants:
            flags[slot] = _UNDEF
        strong = [False] * self.n_slots
        for dst, fn, i, j, guarded, zero in self.code:
            if (
                zero == _ANY_ZERO
                and (strong[i] or (j >= 0 and strong[j]))
                or (zero == _ALL_ZERO and strong[i] and strong[j])
            ):
                vals[dst], strong[dst] = _STRONG_ZERO, True
                continue
            r = fn(vals[i]) if j < 0 else fn(vals[i], vals[j])
            f = flags[i] | (flags[j] if j >= 0 else 0)
            if guarded:
                r, ev = r
                f |= ev
                strong[dst] = r is _STRONG_ZERO
            vals[dst], flags[dst] = r, f
        return [vals[s] for s in self.outputs], [flags[s] for s in self.outputs]

    def run_intervals(self, pts: np.ndarray) -> tuple[list[Any], list[Any], list[Any]]:
        """All points at once over long double intervals (see :mod:`.intervals`).

        Returns per output the lower ends, upper ends and an "unsure" mask (points where
        some primitive could not vouch for its result, or None). Strong zeros flow as in
        :meth:`_run_careful` and make values exactly 0, but an unsure factor leaves the
        point unsure: arb's careful pass decides what a strong zero overrules.
        """
        n = len(pts)
        lo: list[Any] = [None] * self.n_slots
        hi: list[Any] = [None] * self.n_slots
        unsure: list[Any] = [None] * self.n_slots
        strong: list[Any] = [None] * self.n_slots
        not_finite = ~np.isfinite(pts).all(axis=1) if pts.size else np.zeros(n, dtype=bool)
        for k in range(self.n_inputs):
            lo[k] = hi[k] = np.where(np.isfinite(pts[:, k]), pts[:, k], 0.0).astype(np.longdouble)
            unsure[k] = not_finite if not_finite.any() else None
        if self._interval_constants is None:
            with ctx.workprec(START_BITS):
                self._interval_constants = [(s, *iv.from_arb(make())) for s, make in self.constants]
        for slot, a, b in self._interval_constants:
            lo[slot], hi[slot] = np.full(n, a), np.full(n, b)
        for slot in self.undefined_constants:
            unsure[slot] = np.ones(n, dtype=bool)
        with np.errstate(all="ignore"):
            for (dst, _fn, i, j, _guarded, zero), fn in zip(self.code, self.intervals, strict=True):
                if fn is None:  # no interval version: arb decides every point
                    everywhere = np.ones(n, dtype=bool)
                    return [lo[0]] * len(self.outputs), [hi[0]] * len(self.outputs), [everywhere] * len(
                        self.outputs
                    )
                if j < 0:
                    a, b, u, z = fn(lo[i], hi[i])
                    given = unsure[i]
                else:
                    a, b, u, z = fn(lo[i], hi[i], lo[j], hi[j])
                    given = iv.either(unsure[i], unsure[j])
                if zero == _ANY_ZERO:
                    z = iv.either(strong[i], strong[j] if j >= 0 else None)
                elif zero == _ALL_ZERO:
                    z = None if strong[i] is None or strong[j] is None else strong[i] & strong[j]
                elif z is not None and given is not None:
                    z = z & ~given  # a jump is a strong zero only where its argument is sure
                # near the ends of long double's range arb decides (over- and underflow)
                u = iv.either(iv.either(u, given), iv.extreme(a, b))
                if z is not None:
                    if not z.any():
                        z = None
                    else:  # an unsure factor still sends the point to arb
                        a, b = np.where(z, 0, a), np.where(z, 0, b)
                lo[dst], hi[dst], unsure[dst], strong[dst] = a, b, u, z
        return [lo[s] for s in self.outputs], [hi[s] for s in self.outputs], [unsure[s] for s in self.outputs]


def _pow_rule(exponent: Any) -> _Rule | None:
    """A unary rule for ``base**exponent`` when the exponent is a rational number."""
    if not isinstance(exponent, sympy.Rational):
        return None
    q = Fraction(int(exponent.p), int(exponent.q))
    if q.denominator == 1 and q >= 0:
        return _Rule(
            _nonneg_int_pow(q.numerator),
            iv.nonneg_int_pow(q.numerator),
            zero=_ANY_ZERO if q else _NO_ZERO,
        )
    if q.denominator == 1:
        return _Rule(_neg_int_pow(q.numerator), iv.neg_int_pow(q.numerator), guarded=True)
    interval = {Fraction(1, 2): iv.sqrt, Fraction(-1, 2): iv.rsqrt}.get(q)
    if interval is None:
        interval = iv.real_pow(q.numerator, q.denominator)
    return _Rule(_real_pow(q), interval, guarded=True)


class _Compiler:
    """Turns sympy expressions into a :class:`_Program`, sharing equal subexpressions."""

    def __init__(self, program: _Program, symbols: Sequence[Any], rules: Mapping[type, _Rule]):
        self.program = program
        self.rules = rules
        self.slots: dict[Any, int] = {s: i for i, s in enumerate(symbols)}

    def constant(self, node: Any) -> int:
        slot = self.program.new_slot()
        if isinstance(node, sympy.Rational):
            value = fmpq(int(node.p), int(node.q))
            self.program.constants.append((slot, functools.partial(arb, value)))
        elif type(node) in _NUMBER_SYMBOLS:
            self.program.constants.append((slot, _NUMBER_SYMBOLS[type(node)]))
        elif node in _UNDEFINED_ATOMS:
            self.program.constants.append((slot, arb.nan))
            self.program.undefined_constants.append(slot)
        else:
            raise EngineError(
                f"sympy produced the constant {node} ({type(node).__name__}), which the arb "
                "translator does not handle; add it to _NUMBER_SYMBOLS in symbolic.py"
            )
        return slot

    def emit(self, rule: _Rule, i: int, j: int = -1, series: sr.SeriesFn | None = None) -> int:
        dst = self.program.new_slot()
        self.program.code.append((dst, rule.fn, i, j, rule.guarded, rule.zero))
        self.program.intervals.append(rule.interval)
        self.program.series.append(series)
        return dst

    def operands(self, node: Any) -> tuple[_Rule, tuple[Any, ...]]:
        """The rule for ``node`` and the arguments it reads (Heaviside's and DiracDelta's
        further arguments are conventions, and a rational exponent is built in)."""
        if isinstance(node, sympy.Pow):
            rule = _pow_rule(node.exp)
            if rule is not None:
                return rule, (node.base,)
            return _RUNTIME_POW, node.args
        rule = _rule(node, self.rules)
        return rule, (node.args if rule.fold else node.args[:1])

    def node(self, node: Any) -> int:
        """Slot of ``node`` once its operands have slots (see :meth:`compile`)."""
        if not node.args or node.is_Number or node.is_NumberSymbol:
            return self.constant(node)
        rule, operands = self.operands(node)
        args = [self.slots[a] for a in operands]
        series = _series_rule(node, self.rules is _VALUE_RULES)
        if not rule.fold:
            return self.emit(rule, args[0], args[1] if len(args) > 1 else -1, series=series)
        acc = args[0]
        for a in args[1:]:
            acc = self.emit(rule, acc, a, series=series)
        return acc

    def compile(self, root: Any) -> int:
        """Slot of ``root``, emitting code for every subexpression not seen yet."""
        stack: list[tuple[Any, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node in self.slots:
                continue
            if expanded or not node.args or node.is_Number:
                self.slots[node] = self.node(node)
                continue
            stack.append((node, True))
            stack.extend((c, False) for c in self.operands(node)[1] if c not in self.slots)
        return self.slots[root]


def _not_real(constant: Any) -> bool:
    """Whether a variable-free sympy expression is numerically not a finite real number
    (asin(2), log(-1)), found by ``evalf`` rather than sympy's assumptions, which can
    recurse for minutes on such constants."""
    if constant.is_Rational:
        return False
    value = constant.evalf(30)
    if value.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        return True
    return value.is_number and value.is_extended_real is False


@functools.cache
def _real_builder(op: str) -> Callable[..., Any]:
    """The op table's sympy builder, made safe for arguments sympy cannot prove real.

    sympy.Abs of such an argument rewrites itself (abs(exp(acos(x))) becomes
    exp(re(acos(x)))), which neither arb nor the derivative can use. Where the built
    expression gains a ``re`` or ``im``, it is built again from a template whose Abs,
    sign and floor are the real stand-ins already. Everywhere else the builder's own
    result stands (abs(x*x) stays x**2, differentiable at 0)."""
    build = OPS[op].sympy_fn
    dummies = [sympy.Dummy(f"a{i}", real=True) for i in range(OPS[op].arity)]
    real = _realify(build(*dummies))

    def safe(*args: Any) -> Any:
        value = build(*args)
        if value.has(sympy.re, sympy.im) and not any(a.has(sympy.re, sympy.im) for a in args):
            return real.xreplace(dict(zip(dummies, args, strict=True)))
        return value

    return safe


def _subtrees(expr: Expr, symbols: Mapping[str, Any], dtype: str) -> dict[Expr, Any]:
    """Sympy form of every distinct subtree (the fold ``harness.expr.to_sympy`` performs),
    with constants rounded to ``dtype``."""
    out: dict[Expr, Any] = {}

    def const(c: Const) -> Any:
        try:
            out[c] = sympy.Rational(round_fraction(c.value, dtype))
        except OverflowError:  # the engine's constant is inf: nothing is defined
            out[c] = sympy.nan
        return out[c]

    def var(v: Var) -> Any:
        out[v] = symbols[v.name]
        return out[v]

    def call(node: Call, args: tuple[Any, ...]) -> Any:
        if any(a is sympy.nan or (not a.free_symbols and _not_real(a)) for a in args):
            out[node] = sympy.nan  # undefined at every point; sympy may hang on it (Min)
            return out[node]
        try:
            value = _real_builder(node.op)(*args)
        except (TypeError, ValueError):  # Max/Min refuse constants that are not real
            value = sympy.nan
        # zoo * max(x, 0) from max(x, 0) / 0: undefined everywhere, and sympy cannot
        # differentiate through it.
        out[node] = sympy.nan if value.has(sympy.zoo, sympy.nan) else value
        return out[node]

    fold(expr, var, const, call)
    return out


def _entries(f: Any, symbols: Sequence[Any], kind: tuple[str, int]) -> list[Any]:
    """The sympy expressions a program of ``kind`` computes, in output order."""
    name, order = kind
    # real stand-ins for Abs, sign and floor also for values: sympy's Abs of a cse symbol
    # (not known to be real) rewrites abs(exp(u)) into exp(re(u)), which arb cannot run
    f = _realify(f)
    if name == "values":
        return [f]
    if name == "gradient":
        return [f.diff(s) for s in symbols]
    if name == "hessian":
        grad = [f.diff(s) for s in symbols]
        n = len(symbols)
        return [grad[i].diff(symbols[j]) for i in range(n) for j in range(i, n)]
    if name == "taylor":  # d^k f / dx_i^k for k = 1..order, i over the variables
        rows, current = [], [f] * len(symbols)
        for _ in range(order):
            current = [c.diff(s) for c, s in zip(current, symbols, strict=True)]
            rows.extend(current)
        return rows
    raise ValueError(f"kind={kind!r} is not a program kind")


def _literal_domain(compiler: _Compiler, expr: Expr, trees: Mapping[Expr, Any]) -> list[int]:
    """Slots computing every node of the literal tree exactly as written (x/x stays a
    division, so it is undefined at 0 although sympy reads it as 1), with the functions'
    own values at jumps. Their definedness gates every entry."""
    rules, compiler.rules = compiler.rules, _VALUE_RULES
    slots: dict[Expr, int] = {}
    for node in walk(expr):
        if isinstance(node, Var):
            slots[node] = compiler.slots[trees[node]]
        elif isinstance(node, Const):
            slots[node] = compiler.compile(trees[node])
        else:
            operands = [sympy.Dummy(real=True) for _ in node.args]
            for d, a in zip(operands, node.args, strict=True):
                compiler.slots[d] = slots[a]
            slots[node] = compiler.compile(OPS[node.op].sympy_fn(*operands))
    compiler.rules = rules
    return [slots[n] for n in walk(expr) if not isinstance(n, Var)]


def _nowhere_defined(expr: Expr, trees: Mapping[Expr, Any]) -> bool:
    """Whether some node is, for sympy, a constant that is not a real number: asin(2), or
    0**-3 from pow(sign(0 * x), -3)."""
    return any(
        not t.free_symbols
        and (t is sympy.nan or t.is_extended_real is False or t.is_finite is False)
        for t in (trees[n] for n in walk(expr))
    )


@functools.lru_cache(maxsize=256)
def _program(expr: Expr, dtype: str, kind: tuple[str, int]) -> _Program:
    """The compiled program for ``expr`` with constants rounded to ``dtype`` (cached)."""
    names = variables(expr)
    symbols = [sympy.Symbol(n, real=True) for n in names]
    trees = _subtrees(expr, dict(zip(names, symbols, strict=True)), dtype)
    try:
        entries = _entries(trees[expr], symbols, kind)
    except (TypeError, ValueError) as error:  # sympy refuses a non-real constant part
        if not _nowhere_defined(expr, trees):
            raise EngineError(
                f"sympy could not differentiate {expr} ({error}); no node of it is "
                "undefined everywhere, so this is a gap in the truth engine: report it"
            ) from error
        entries = [sympy.nan] * len(_entries(sympy.Integer(0), symbols, kind))
    rules = _VALUE_RULES if kind[0] == "values" else _DERIVATIVE_RULES
    program = _Program(len(names), len(entries), derivative=kind[0] != "values")
    compiler = _Compiler(program, symbols, rules)
    replacements, reduced = sympy.cse(
        entries, symbols=sympy.numbered_symbols("_cse", cls=sympy.Dummy), order="none"
    )
    for sym, sub in replacements:
        compiler.slots[sym] = compiler.compile(sub)
    program.outputs = [compiler.compile(e) for e in reduced]
    program.outputs += _literal_domain(compiler, expr, trees)
    return program


def _dtype_key(expr: Expr, dtype: str) -> str:
    """``dtype``, or "float64" when every constant of ``expr`` is exact in ``dtype`` (the
    programs are then identical, so they share one cache entry)."""
    for node in walk(expr):
        if isinstance(node, Const):
            try:
                if round_fraction(node.value, dtype) != node.value:
                    return dtype
            except OverflowError:
                return dtype
    return "float64"


# ---- certified evaluation ----------------------------------------------------------------


def _tight(v: Any) -> bool:
    if not v.is_finite():
        return False
    r = v.rad()
    return bool(r <= _ABS_TOL or r <= abs(v.mid()) * _REL_TOL)


@dataclass
class _Entry:
    value: float = float("nan")
    bound: float = float("nan")
    status: int = _UNDEFINED
    bits: int = 0


def _upper_float(r: Any) -> float:
    """The smallest float64 >= the exact non-negative arb ``r``."""
    b = float(r)
    return b if arb(b) >= r else float(np.nextafter(b, np.inf))


def _settle(entry: _Entry, v: Any, status: int, bits: int) -> None:
    entry.bits = bits
    value = float(v.mid()) + 0.0  # no -0.0
    if status in (_OK, _UNCERTIFIED) and np.isfinite(value):
        entry.value, entry.bound, entry.status = value, _upper_float(v.rad()), status
    else:  # kink, undefined, or a result beyond float64's range
        entry.status = status if status == _KINK_STATUS else _UNDEFINED


def _shifted(inputs: Sequence[Any], axis: int, shift: Fraction) -> list[Any]:
    """``inputs`` with ``shift`` added to coordinate ``axis``, exactly."""
    out = list(inputs)
    with ctx.workprec(2 * MAX_BITS):  # wide enough for any float64 + 2**-300 exactly
        out[axis] = out[axis] + arb(fmpq(shift.numerator, shift.denominator))
    return out


def _domain_defined(program: _Program, inputs: Sequence[Any]) -> bool:
    """Whether every node of the literal tree is defined at ``inputs`` (certified)."""
    prec = START_BITS
    while True:
        with ctx.workprec(prec):
            outs, flags = program.run(inputs)
        domain = range(program.n_entries, len(outs))
        if any(flags[d] & _UNDEF for d in domain):
            return False
        if all(not flags[d] & _NEAR_EDGE and outs[d].is_finite() for d in domain):
            return True
        if prec >= MAX_BITS:
            return False
        prec = min(2 * prec, MAX_BITS)


def _defined_around(program: _Program, inputs: Sequence[Any]) -> bool:
    """Whether the tree stays defined a step :data:`ONE_SIDED_SHIFT` off the point along
    every axis: a derivative needs both sides, and a point on a domain boundary
    (sqrt at 0, acos at 1) has only one unless the boundary is never reached there
    (sqrt(relu(y)) at y = -1)."""
    return all(
        _domain_defined(program, _shifted(inputs, axis, sign * ONE_SIDED_SHIFT))
        for axis in range(len(inputs))
        for sign in (-1, 1)
    )


def _certify(program: _Program, inputs: Sequence[Any], wanted: Sequence[int]) -> list[_Entry]:
    """Evaluate the ``wanted`` outputs at one point, doubling precision until each settles."""
    entries = {o: _Entry() for o in wanted}
    if any(not x.is_finite() for x in inputs):
        return list(entries.values())
    pending = list(wanted)
    prec = START_BITS
    around_checked = not program.derivative
    while pending:
        with ctx.workprec(prec):
            outs, flags = program.run(inputs)
        domain = range(program.n_entries, len(outs))
        undefined = any(flags[d] & _UNDEF for d in domain)
        if not undefined and not around_checked and any(flags[d] & _EDGE for d in domain):
            undefined, around_checked = not _defined_around(program, inputs), True
        if undefined:  # a node of the tree is undefined at or right next to the point
            for o in pending:
                entries[o].bits = prec
            break
        domain_ok = all(not flags[d] & _NEAR_EDGE and outs[d].is_finite() for d in domain)
        last = prec >= MAX_BITS
        still = []
        for o in pending:
            f, v = flags[o], outs[o]
            if f & _UNDEF:
                _settle(entries[o], v, _UNDEFINED, prec)
            elif domain_ok and _tight(v):
                _settle(entries[o], v, _OK, prec)
            elif domain_ok and f & _KINK and prec >= 2 * START_BITS:
                _settle(entries[o], v, _KINK_STATUS, prec)
            elif not last:
                still.append(o)
            elif not domain_ok or f & _NEAR_EDGE or not v.is_finite():
                _settle(entries[o], v, _UNDEFINED, prec)
            elif f & (_KINK | _NEAR_KINK):
                _settle(entries[o], v, _KINK_STATUS, prec)
            else:
                _settle(entries[o], v, _UNCERTIFIED, prec)
        pending = still
        prec = min(2 * prec, MAX_BITS)
    return [entries[o] for o in wanted]


def _exact_inputs(row: np.ndarray) -> list[Any]:
    """arb balls holding one point's float64 coordinates exactly."""
    return [arb(float(x)) for x in row]


def _unique_rows(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct points and, per original row, the index of its distinct point."""
    if pts.shape[0] == 0 or pts.shape[1] == 0:
        return pts[:1], np.zeros(pts.shape[0], dtype=np.intp)
    uniq, inverse = np.unique(pts, axis=0, return_inverse=True)
    return uniq, inverse.reshape(-1)


def _evaluate_rows(program: _Program, pts: np.ndarray) -> tuple[np.ndarray, ...]:
    """(values, bounds, status, bits), each (n_points, n_entries), for every entry.

    The interval filter takes every point in one vectorised pass; arb then evaluates the
    entries it left, once per distinct point.
    """
    n, m = len(pts), program.n_entries
    values, bounds = np.full((n, m), np.nan), np.full((n, m), np.nan)
    codes = np.zeros((n, m), dtype=np.int8)
    bits = np.zeros((n, m), dtype=np.int32)
    settled = np.zeros((n, m), dtype=bool)
    if m and n and iv.AVAILABLE:
        settled = _filter(program, pts, [values, bounds], bits)
    left = np.flatnonzero(~settled.all(axis=1)) if m else np.zeros(0, dtype=np.intp)
    if len(left):
        uniq, inverse = _unique_rows(pts[left])
        for u, row in enumerate(uniq):
            rows = left[inverse == u]
            wanted = np.flatnonzero(~settled[rows[0]]).tolist()
            for o, e in zip(wanted, _certify(program, _exact_inputs(row), wanted), strict=True):
                values[rows, o], bounds[rows, o], codes[rows, o], bits[rows, o] = (
                    e.value,
                    e.bound,
                    e.status,
                    e.bits,
                )
    return values, bounds, codes, bits


_ROWS_CACHE: Memo[tuple[np.ndarray, ...]] = Memo(16)


def _evaluate_cached(program: _Program, pts: np.ndarray) -> tuple[np.ndarray, ...]:
    """:func:`_evaluate_rows`, remembered for the last few (program, points): a case
    judged in float64 and float32 at the same points (constants exact in both) evaluates
    its truth once. Returns copies, so callers may write to them."""
    key = (program, pts.shape, pts.tobytes(), iv.AVAILABLE)
    hit = _ROWS_CACHE.get(key, lambda: _evaluate_rows(program, pts))
    return tuple(a.copy() for a in hit)


def _filter(program: _Program, pts: np.ndarray, fields: list[np.ndarray], bits: np.ndarray) -> np.ndarray:
    """Settle what the long double interval pass can (see :mod:`.intervals`): fills
    ``fields`` (values, bounds) and ``bits`` there and returns the settled mask. An entry
    settles when its interval rounds to one float64 and every node of the literal tree
    is surely defined at the point; status codes stay ``_OK`` (0)."""
    los, his, unsure = program.run_intervals(pts)
    m = program.n_entries
    defined = np.ones(len(pts), dtype=bool)
    for d in range(m, len(los)):
        defined &= np.isfinite(los[d]) & np.isfinite(his[d])
        if unsure[d] is not None:
            defined &= ~unsure[d]
    settled = np.zeros((len(pts), m), dtype=bool)
    for o in range(m):
        value, bound, ok = iv.settle(los[o], his[o])
        ok &= defined if unsure[o] is None else defined & ~unsure[o]
        settled[:, o] = ok
        fields[0][ok, o], fields[1][ok, o] = value[ok], bound[ok]
    bits[settled] = iv.PRECISION_BITS
    return settled


def _series_taylor(program: _Program, pts: np.ndarray, max_order: int) -> np.ndarray:
    """d^k f / dx_i^k for k = 1..max_order, shape (n, max_order, n_vars), from f's value
    program run on power series (see :mod:`.series`). NaN wherever the series cannot be
    formed or a coefficient is not tight at :data:`START_BITS`."""
    n, k = pts.shape
    out = np.full((n, max_order, k), np.nan)
    if any(fn is None for fn in program.series) or program.undefined_constants:
        return out
    factorials = [math.factorial(j) for j in range(max_order + 1)]
    saved_cap = ctx.cap
    try:
        ctx.cap = max_order + 1
        with ctx.workprec(START_BITS):
            frame = program._frame(START_BITS)
            base: list[Any] = [None] * program.n_slots
            for slot, _ in program.constants:
                base[slot] = sr.constant(frame[slot])
            uniq, inverse = _unique_rows(pts)
            for p, row in enumerate(uniq):
                if not np.isfinite(row).all():
                    continue
                for axis in range(k):
                    derivs = _series_point(program, base, row, axis, max_order, factorials)
                    if derivs is not None:
                        out[inverse == p, :, axis] = derivs
    finally:
        ctx.cap = saved_cap
    return out


def _series_point(
    program: _Program,
    base: list[Any],
    row: np.ndarray,
    axis: int,
    max_order: int,
    factorials: list[int],
) -> list[float] | None:
    """One point's pure partials along ``axis``, or None where the series cannot say."""
    vals = list(base)
    for j, x in enumerate(row.tolist()):
        vals[j] = arb_series([arb(x), 1]) if j == axis else sr.constant(arb(x))
    for (dst, _fn, i, j, _guarded, _zero), fn in zip(program.code, program.series, strict=True):
        assert fn is not None
        r = fn(vals[i]) if j < 0 else fn(vals[i], vals[j])
        if r is None:
            return None
        vals[dst] = r
    if not all(sr.head(vals[o]).is_finite() for o in program.outputs[1:]):
        return None  # some node of the literal tree is not finite here
    coeffs = vals[program.outputs[0]].coeffs()
    derivs = []
    for order in range(1, max_order + 1):
        c = coeffs[order] if order < len(coeffs) else arb(0)
        d = c * factorials[order]
        if not _tight(d):
            return None
        value = float(d.mid()) + 0.0
        if not np.isfinite(value):
            return None
        derivs.append(value)
    return derivs


def _status_names(codes: np.ndarray) -> np.ndarray:
    return np.asarray(STATUSES)[codes]


class SymbolicEngine:
    """The truth: exact sympy derivatives evaluated in certified arb ball arithmetic.

    Implements the :class:`harness.engines.base.Engine` protocol and adds
    :meth:`evaluate` (values with error bounds and statuses), :meth:`one_sided`,
    :meth:`taylor` and :meth:`values`. Programs are compiled once per (tree, dtype's
    constants, kind) and cached; each point then costs one pass at 128 bits unless it
    needs more.
    """

    name = "sympy"

    def supports(self, op: str) -> bool:
        """True for every op in the op table."""
        return op in OPS

    def derivatives(
        self, expr: Expr, points: np.ndarray, *, dtype: str, order: int = 1
    ) -> np.ndarray:
        """Gradient (order 1, shape (n, n_vars)) or Hessian (order 2, (n, n_vars, n_vars))
        at ``points``; NaN where the status is ``"kink"`` or ``"undefined"``."""
        return self.evaluate(expr, points, dtype=dtype, order=order).values

    def evaluate(self, expr: Expr, points: np.ndarray, *, dtype: str, order: int = 1) -> Truth:
        """Like :meth:`derivatives`, with bounds, statuses and precisions (see :class:`Truth`)."""
        pts = check_request(expr, points, dtype, order)
        n, k = pts.shape
        kind = ("gradient", 1) if order == 1 else ("hessian", 2)
        program = _program(expr, _dtype_key(expr, dtype), kind)
        values, bounds, codes, bits = _evaluate_cached(program, pts)
        if order == 2:
            iu, ju = np.triu_indices(k)
            parts = []
            for flat in (values, bounds, codes, bits):
                full = np.zeros((n, k, k), dtype=flat.dtype)
                full[:, iu, ju] = flat
                full[:, ju, iu] = flat
                parts.append(full)
            values, bounds, codes, bits = parts
        return Truth(values, bounds, _status_names(codes), bits)

    def values(self, expr: Expr, points: np.ndarray, *, dtype: str) -> np.ndarray:
        """f itself at ``points``, shape (n,), certified likewise (NaN where undefined).

        At a jump the function's own value is used (floor(2) = 2, sign(0) = 0).
        """
        pts = check_request(expr, points, dtype, 1)
        program = _program(expr, _dtype_key(expr, dtype), ("values", 0))
        return _evaluate_cached(program, pts)[0][:, 0]

    def taylor(self, expr: Expr, points: np.ndarray, *, dtype: str, max_order: int) -> np.ndarray:
        """Pure partials d^k f / dx_i^k for k = 0..max_order: shape (max_order + 1, n, n_vars).

        Row k = 0 is f itself, repeated per column. NaN where an entry is not certified
        ok/uncertified. Finite-difference error models read f'', f''' and f^(5) from here.
        The rows come from f's own program run on power series (:mod:`.series`); the
        k-times differentiated sympy program decides only where a series does not exist
        (a kink, a domain edge), so it is rarely compiled.
        """
        if isinstance(max_order, bool) or not isinstance(max_order, int) or max_order < 0:
            raise ValueError(f"max_order={max_order!r} must be an int >= 0")
        pts = check_request(expr, points, dtype, 1)
        n, k = pts.shape
        out = np.empty((max_order + 1, n, k))
        out[0] = self.values(expr, pts, dtype=dtype)[:, None]
        if max_order and k:
            key = _dtype_key(expr, dtype)
            rows = _series_taylor(_program(expr, key, ("values", 0)), pts, max_order)
            # where the series cannot say (a kink, a domain edge), the symbolic program does
            left = np.flatnonzero(np.isnan(rows).any(axis=(1, 2)))
            if len(left):
                program = _program(expr, key, ("taylor", max_order))
                rows[left] = _evaluate_rows(program, pts[left])[0].reshape(len(left), max_order, k)
            out[1:] = rows.transpose(1, 0, 2)
        return out

    def one_sided(
        self, expr: Expr, points: np.ndarray, *, dtype: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Left and right partial derivatives along each axis, each of shape (n, n_vars).

        Entry [p, i] of the left (right) array is d f / d x_i at x_p - delta e_i
        (x_p + delta e_i) with delta = :data:`ONE_SIDED_SHIFT` = 2**-300: the one-sided
        limits of a piecewise-analytic derivative, to within about delta * |f''| (relu'(0-)
        = 0, relu'(0+) = 1, abs'(0-) = -1). NaN where a side is undefined or itself a kink.
        """
        pts = check_request(expr, points, dtype, 1)
        n, k = pts.shape
        program = _program(expr, _dtype_key(expr, dtype), ("gradient", 1))
        uniq, inverse = _unique_rows(pts)
        sides = []
        for shift in (-ONE_SIDED_SHIFT, ONE_SIDED_SHIFT):
            side = np.full((len(uniq), k), np.nan)
            for p, row in enumerate(uniq):
                for i in range(k):
                    inputs = _exact_inputs(row)
                    if np.isfinite(row[i]):
                        inputs = _shifted(inputs, i, shift)
                    (e,) = _certify(program, inputs, [i])
                    side[p, i] = e.value
            sides.append(side[inverse])
        return sides[0], sides[1]
