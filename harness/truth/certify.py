"""Certification: what a compiled program's answers are worth, entry by entry.

One vectorised pass over all points in long double interval arithmetic
(:mod:`harness.truth.intervals`) settles every entry whose interval rounds to a single
float64, the correctly rounded exact value, as arb would give. Only the other entries run
point by point in arb: at :data:`START_BITS` (float64 inputs convert to ``arb``
exactly), rerun at doubled precision until every ball is tight: radius <= 2**-62 * |mid|
(about 1e-3 ulp of float64) or <= 2**-1100 (an exact zero). Each entry gets one of
:data:`STATUSES` (see :class:`harness.truth.engine.Truth`) and the precision that settled
it (64 for the interval pass). Also here: one-sided limits (:func:`one_sided`) and Taylor
coefficients from power series (:func:`series_taylor`).
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from flint import arb, arb_series, ctx, fmpq

from harness.memo import Memo
from harness.truth import balls as b
from harness.truth import intervals as iv
from harness.truth import series as sr
from harness.truth.program import Program

__all__ = [
    "MAX_BITS",
    "ONE_SIDED_SHIFT",
    "GERM_EXTRA",
    "START_BITS",
    "STATUSES",
    "AxisGerms",
    "along_axes",
    "evaluate",
    "evaluate_rows",
    "grouped_rows",
    "one_sided",
    "series_taylor",
    "unique_rows",
]

START_BITS = 128
"""Working precision of the first evaluation of every point."""
MAX_BITS = 4096
"""Precision cap: an entry still not tight here is reported ``"uncertified"``."""
ONE_SIDED_SHIFT = Fraction(1, 2**300)
"""How far :func:`one_sided` steps off the point on either side."""
GERM_EXTRA = 4
"""Coefficients :func:`along_axes` keeps beyond the order asked: an argument that agrees
with a break to all of them is read as sitting on it (see :mod:`.series`)."""


class _Status(enum.IntEnum):
    OK = 0
    UNCERTIFIED = 1
    KINK = 2
    UNDEFINED = 3


STATUSES: tuple[str, ...] = tuple(s.name.lower() for s in _Status)
"""Entry statuses, in the order of their integer codes."""

_REL_TOL = arb(2) ** -62
_ABS_TOL = arb(2) ** -1100


def _tight(v: Any) -> bool:
    if not v.is_finite():
        return False
    r = v.rad()
    return bool(r <= _ABS_TOL or r <= abs(v.mid()) * _REL_TOL)


@dataclass
class _Entry:
    """One entry's answer at one point, as certification left it."""

    value: float = float("nan")
    bound: float = float("nan")
    status: int = _Status.UNDEFINED
    bits: int = 0


def _upper_float(r: Any) -> float:
    """The smallest float64 >= the exact non-negative arb ``r``."""
    f = float(r)
    return f if arb(f) >= r else float(np.nextafter(f, np.inf))


def _settle(entry: _Entry, v: Any, status: int, bits: int) -> None:
    entry.bits = bits
    value = float(v.mid()) + 0.0  # no -0.0
    if status in (_Status.OK, _Status.UNCERTIFIED) and np.isfinite(value):
        entry.value, entry.bound, entry.status = value, _upper_float(v.rad()), status
    else:  # kink, undefined, or a result beyond float64's range
        entry.status = status if status == _Status.KINK else _Status.UNDEFINED


def _shifted(inputs: Sequence[Any], axis: int, shift: Fraction) -> list[Any]:
    """``inputs`` with ``shift`` added to coordinate ``axis``, exactly."""
    out = list(inputs)
    with ctx.workprec(2 * MAX_BITS):  # wide enough for any float64 + 2**-300 exactly
        out[axis] = out[axis] + arb(fmpq(shift.numerator, shift.denominator))
    return out


def _domain_defined(program: Program, inputs: Sequence[Any]) -> bool:
    """Whether every node of the literal tree is defined at ``inputs`` (certified)."""
    prec = START_BITS
    while True:
        with ctx.workprec(prec):
            outs, flags = program.run(inputs)
        domain = range(program.n_entries, len(outs))
        if any(flags[d] & b.UNDEF for d in domain):
            return False
        if all(not flags[d] & b.NEAR_EDGE and outs[d].is_finite() for d in domain):
            return True
        if prec >= MAX_BITS:
            return False
        prec = min(2 * prec, MAX_BITS)


def _defined_around(program: Program, inputs: Sequence[Any]) -> bool:
    """Whether the tree stays defined a step :data:`ONE_SIDED_SHIFT` off the point along
    every axis: a derivative needs both sides, and a point on a domain boundary
    (sqrt at 0, acos at 1) has only one unless the boundary is never reached there
    (sqrt(relu(y)) at y = -1)."""
    return all(
        _domain_defined(program, _shifted(inputs, axis, sign * ONE_SIDED_SHIFT))
        for axis in range(len(inputs))
        for sign in (-1, 1)
    )


def _certify(program: Program, inputs: Sequence[Any], wanted: Sequence[int]) -> list[_Entry]:
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
        undefined = any(flags[d] & b.UNDEF for d in domain)
        if not undefined and not around_checked and any(flags[d] & b.EDGE for d in domain):
            undefined, around_checked = not _defined_around(program, inputs), True
        if undefined:  # a node of the tree is undefined at or right next to the point
            for o in pending:
                entries[o].bits = prec
            break
        domain_ok = all(not flags[d] & b.NEAR_EDGE and outs[d].is_finite() for d in domain)
        last = prec >= MAX_BITS
        still = []
        for o in pending:
            f, v = flags[o], outs[o]
            if f & b.UNDEF:
                _settle(entries[o], v, _Status.UNDEFINED, prec)
            elif domain_ok and _tight(v):
                _settle(entries[o], v, _Status.OK, prec)
            elif domain_ok and f & b.KINK and prec >= 2 * START_BITS:
                _settle(entries[o], v, _Status.KINK, prec)
            elif not last:
                still.append(o)
            elif not domain_ok or f & b.NEAR_EDGE or not v.is_finite():
                _settle(entries[o], v, _Status.UNDEFINED, prec)
            elif f & (b.KINK | b.NEAR_KINK):
                _settle(entries[o], v, _Status.KINK, prec)
            else:
                _settle(entries[o], v, _Status.UNCERTIFIED, prec)
        pending = still
        prec = _next_precision(prec, [outs[o] for o in still])
    return [entries[o] for o in wanted]


def _log2(v: Any) -> float:
    """log2 of a positive arb's midpoint, finite for any exponent arb holds."""
    return float((v.log() / arb(2).log()).mid())


def _next_precision(prec: int, balls: Sequence[Any]) -> int:
    """The precision of the next run: double, or more where a ball's radius shows how
    many bits it lacks. An entry that cancels to a tiny value (tanh'' far out: 1 - 1 at
    128 bits, 1e-600 exactly) needs its radius under 2**-1100; jumping there at once
    costs one run instead of five doublings. The radius shrinks about one bit per bit of
    precision, so the guess is the bits missing plus a margin; if it falls short the
    loop simply runs again."""
    want = 2 * prec
    for v in balls:
        if not v.is_finite():
            continue
        r, m = v.rad(), abs(v.mid())
        if r <= 0:
            continue
        # bits missing against the absolute target, or against the relative one
        missing = _log2(r) + 1100 if r >= m else _log2(r) - _log2(m) + 62
        want = max(want, prec + int(missing) + 64)
    return min(want, MAX_BITS)


def _exact_inputs(row: np.ndarray) -> list[Any]:
    """arb balls holding one point's float64 coordinates exactly."""
    return [arb(float(x)) for x in row]


def unique_rows(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct points and, per original row, the index of its distinct point."""
    if pts.shape[0] == 0 or pts.shape[1] == 0:
        return pts[:1], np.zeros(pts.shape[0], dtype=np.intp)
    uniq, inverse = np.unique(pts, axis=0, return_inverse=True)
    return uniq, inverse.reshape(-1)


def grouped_rows(pts: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Distinct points and, per distinct point, the indices of the rows that hold it:
    a pass over the distinct points then costs O(rows), not O(rows x distinct points)."""
    uniq, inverse = unique_rows(pts)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(uniq)))[:-1]
    return uniq, np.split(order, bounds)


def evaluate_rows(program: Program, pts: np.ndarray) -> tuple[np.ndarray, ...]:
    """(values, bounds, status codes, bits), each (n_points, n_entries), for every entry.

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
        uniq, inverse = unique_rows(pts[left])
        firsts = left[np.unique(inverse, return_index=True)[1]]  # a row of each distinct point
        answers: list[tuple[int, int, float, float, int, int]] = []  # (point, entry, ...)
        for u, row in enumerate(uniq):
            wanted = np.flatnonzero(~settled[firsts[u]]).tolist()
            for o, e in zip(wanted, _certify(program, _exact_inputs(row), wanted), strict=True):
                answers.append((u, o, e.value, e.bound, e.status, e.bits))
        u_idx, o_idx, *fields = (np.asarray(c) for c in zip(*answers, strict=True))
        # per distinct point (the filter's entries included), then to every row holding it
        targets: tuple[np.ndarray, ...] = (values, bounds, codes, bits)
        for target, field in zip(targets, fields, strict=True):
            per_point = target[firsts]
            per_point[u_idx, o_idx] = field
            target[left] = per_point[inverse]
    return values, bounds, codes, bits


_ROWS: Memo[tuple[np.ndarray, ...]] = Memo(16)


def evaluate(program: Program, pts: np.ndarray) -> tuple[np.ndarray, ...]:
    """:func:`evaluate_rows`, remembered for the last few (program, points): a case
    judged in float64 and float32 at the same points (constants exact in both) evaluates
    its truth once. Returns copies, so callers may write to them."""
    key = (program, pts.shape, pts.tobytes(), iv.AVAILABLE)
    hit = _ROWS.get(key, lambda: evaluate_rows(program, pts))
    return tuple(a.copy() for a in hit)


def _filter(program: Program, pts: np.ndarray, fields: list[np.ndarray], bits: np.ndarray) -> np.ndarray:
    """Settle what the long double interval pass can (see :mod:`.intervals`): fills
    ``fields`` (values, bounds) and ``bits`` there and returns the settled mask. An entry
    settles when its interval rounds to one float64 and every node of the literal tree
    is surely defined at the point; status codes stay ``ok`` (0)."""
    los, his, unsure = program.run_intervals(pts, START_BITS, keep_unsure=False)
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


def one_sided(program: Program, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right values of a gradient ``program``'s entries, each (n, n_vars): entry
    [p, i] at x_p -/+ :data:`ONE_SIDED_SHIFT` e_i (NaN where not certified ok/uncertified)."""
    k = pts.shape[1]
    uniq, inverse = unique_rows(pts)
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


_ZERO_BITS = 1400
"""The second run's precision, for a point whose coefficients were not all tight at
:data:`START_BITS`: a cancelled zero's radius falls under the exact-zero bound 2**-1100
there for derivatives up to about 2**250 (sinh's x**4 coefficient at 0 comes out as
0 +- 1e-39 at START_BITS, and so does tanh'' = 2.8e-45 at x = -1.4e-45), a value as small
as 1e-300 is tight, and so is tan's argument reduced from 1.8e19. Only what is still
not tight there goes to the symbolic program, whose compiled k-th derivatives cost
tens of milliseconds per tree."""


def series_taylor(program: Program, pts: np.ndarray, max_order: int) -> np.ndarray:
    """d^k f / dx_i^k for k = 1..max_order, shape (n, max_order, n_vars), from f's value
    program run on power series (see :mod:`.series`). NaN wherever the series cannot be
    formed or a coefficient is not tight (:func:`_tight`: within 2**-62 relative, or an
    exact zero within 2**-1100) at :data:`START_BITS`, or at :data:`_ZERO_BITS` where a
    ball holding 0 was narrow enough to be worth it."""
    n, k = pts.shape
    out = np.full((n, max_order, k), np.nan)
    if any(fn is None for fn in program.series) or program.undefined_constants:
        return out
    factorials = [math.factorial(j) for j in range(max_order + 1)]
    again: list[tuple[np.ndarray, Any, int]] = []
    uniq, groups = grouped_rows(pts)
    with _series_base(program, max_order + 1, START_BITS) as base:
        for row, rows in zip(uniq, groups, strict=True):
            if not np.isfinite(row).all():
                continue
            for axis in range(k):
                derivs = _series_point(program, base, row, axis, max_order, factorials, retry=True)
                if derivs is _AGAIN:
                    again.append((row, rows, axis))
                elif derivs is not None:
                    out[rows, :, axis] = derivs
    if again:
        with _series_base(program, max_order + 1, _ZERO_BITS) as base:
            for row, rows, axis in again:
                derivs = _series_point(program, base, row, axis, max_order, factorials, retry=False)
                if isinstance(derivs, list):
                    out[rows, :, axis] = derivs
    return out


@contextlib.contextmanager
def _series_base(program: Program, cap: int, bits: int) -> Iterator[list[Any]]:
    """Within the block: arithmetic at ``bits`` on series of ``cap`` terms, and the
    program's slots with its constants filled in as constant series (the rest None)."""
    saved_cap = ctx.cap
    try:
        ctx.cap = cap
        with ctx.workprec(bits):
            frame = program.frame(bits)
            base: list[Any] = [None] * program.n_slots
            for slot, _ in program.constants:
                base[slot] = sr.constant(frame[slot])
            yield base
    finally:
        ctx.cap = saved_cap


_AGAIN = object()
"""What :func:`_series_point` returns for a point worth a run at :data:`_ZERO_BITS`."""


def _series_point(
    program: Program,
    base: list[Any],
    row: np.ndarray,
    axis: int,
    max_order: int,
    factorials: list[int],
    retry: bool,
) -> list[float] | object | None:
    """One point's pure partials along ``axis``, or None where the series cannot say; with
    ``retry``, :data:`_AGAIN` where a coefficient is finite but not tight, so that more
    precision may settle it (see :data:`_ZERO_BITS`)."""
    vals = list(base)
    for j, x in enumerate(row.tolist()):
        vals[j] = arb_series([arb(x), 1]) if j == axis else sr.constant(arb(x))
    outs = program.run_series(vals)
    if outs is None:
        return None
    if not all(sr.head(o).is_finite() for o in outs[1:]):
        return None  # some node of the literal tree is not finite here
    coeffs = outs[0].coeffs()
    # f's derivatives here, as balls
    balls = [(coeffs[k] if k < len(coeffs) else arb(0)) * factorials[k] for k in range(max_order + 1)]
    derivs = []
    for d in balls[1:]:
        if not _tight(d):
            return _AGAIN if retry and d.is_finite() else None
        value = float(d.mid()) + 0.0
        if not np.isfinite(value):
            return None
        derivs.append(value)
    return derivs


@dataclass(frozen=True)
class AxisGerms:
    """f along each axis near each point, from either side (see :func:`along_axes`).

    ``left`` and ``right`` are (n, max_order, n_vars): entry [p, j - 1, i] is the j-th
    one-sided derivative d^j/dt^j f(x_p + t e_i) at t -> 0- (0+), NaN where a germ does
    not exist or is not tight. ``bound`` bounds each ``right`` value's error. ``same`` is
    True where both sides are known and agree (their balls overlap). ``jump`` (n, n_vars)
    is True where f itself surely jumps along the axis: a one-sided limit differs from f
    at the point. ``crossed`` (n, n_vars) is True where some break is crossed along the
    axis (cos(|x|) along x at 0, although f is smooth there), False where breaks at the
    point only sit still along it (floor(y) along x).
    """

    left: np.ndarray
    right: np.ndarray
    bound: np.ndarray
    same: np.ndarray
    jump: np.ndarray
    crossed: np.ndarray


def along_axes(program: Program, pts: np.ndarray, max_order: int) -> AxisGerms:
    """One-sided Taylor coefficients of f's value ``program`` along each axis.

    A partial derivative is a question about the one-variable function t -> f(x + t e_i):
    x * floor(y) at y = 1 is 0.5 + t along x (d/dx = 1, although the point sits on
    floor's jump), min(floor(y), y) at y = 0 jumps from -1 to 0 along y (no derivative).
    The program runs on the series ``x_i + t`` and ``x_i - t`` with every break read
    one-sidedly (the germs of :mod:`.series`), at :data:`START_BITS`.
    """
    n, k = pts.shape
    shape = (n, max_order, k)
    left, right, bound = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    same = np.zeros(shape, dtype=bool)
    jump = np.zeros((n, k), dtype=bool)
    crossed = np.zeros((n, k), dtype=bool)
    factorials = [math.factorial(j) for j in range(max_order + 1)]
    with _series_base(program, max_order + 1 + GERM_EXTRA, START_BITS) as base:
        uniq, groups = grouped_rows(pts)
        for row, rows in zip(uniq, groups, strict=True):
            if not np.isfinite(row).all() or program.undefined_constants:
                continue
            outs, flags = program.run(_exact_inputs(row))
            own = outs[0] if not any(f & b.UNDEF for f in flags) else None
            for axis in range(k):
                sr.CROSSINGS[0] = 0
                sides = [_germ(program, base, row, axis, sign) for sign in (-1, 1)]
                crossed[rows, axis] = sr.CROSSINGS[0] > 0
                if own is not None and any(
                    s is not None and not (sr.head(s[0]) - own).contains(0) for s in sides
                ):
                    jump[rows, axis] = True
                below, above = sides
                if below is None or above is None:
                    continue
                for j in range(1, max_order + 1):
                    lo, hi = (_coefficient(s, j) * factorials[j] for s in (below, above))
                    lo = lo if j % 2 == 0 else -lo  # the left germ ran on x_i - t
                    if _tight(lo):
                        left[rows, j - 1, axis] = float(lo.mid()) + 0.0
                    if _tight(hi):
                        right[rows, j - 1, axis] = float(hi.mid()) + 0.0
                        bound[rows, j - 1, axis] = _upper_float(hi.rad())
                    same[rows, j - 1, axis] = _tight(lo) and _tight(hi) and (lo - hi).contains(0)
    finite = np.isfinite(left) & np.isfinite(right)
    return AxisGerms(left, right, bound, same & finite, jump, crossed)


def _coefficient(s: list[Any], j: int) -> Any:
    coeffs = s[0].coeffs()
    return coeffs[j] if j < len(coeffs) else arb(0)


def _germ(program: Program, base: list[Any], row: np.ndarray, axis: int, sign: int) -> list[Any] | None:
    """Every output of the value program on x_axis + sign * t, germs at breaks; None where
    a germ or a node of the literal tree is not defined there."""
    vals = list(base)
    for j, x in enumerate(row.tolist()):
        vals[j] = arb_series([arb(x), sign]) if j == axis else sr.constant(arb(x))
    outs = program.run_series(vals, germ=True)
    if outs is None or not all(sr.head(o).is_finite() for o in outs):
        return None
    return outs
