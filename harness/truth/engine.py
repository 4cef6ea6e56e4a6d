"""The truth engine: exact sympy derivatives, evaluated with certified ball arithmetic.

:class:`SymbolicEngine` is the facade over the truth package: the tree becomes sympy
forms (:mod:`.forms`), compiled once per (tree, dtype's constants, :class:`~.forms.Kind`)
into a straight-line program (:mod:`.program`) whose instructions come from the rule table
(:mod:`.rules`), and certified point by point (:mod:`.certify`). Each entry gets a status:

* ``"ok"``: certified; ``bounds`` is a proven bound on |exact - mid| (before rounding mid
  to float64 for ``values``; mid is the ball's or the interval's midpoint).
* ``"uncertified"``: still too wide at :data:`~.certify.MAX_BITS`; ``values`` is the ball's
  midpoint.
* ``"kink"``: a non-smooth function sits exactly at its break (relu, abs, max/min ties,
  floor at an integer, sign at 0), so the two-sided derivative may not exist. ``one_sided``
  gives the limits from either side. Discontinuous primitives evaluate to the hull of their
  one-sided values there, so a derivative that exists anyway (relu(x)**2 at 0) still comes
  out ``"ok"``.
* ``"undefined"``: the derivative or some node of the *literal* tree is undefined at the
  point (log of a negative, division by zero, a non-real value: ``x / x`` at 0 although
  sympy reads it as 1), the point sits on a domain edge with nothing on one side (acos at
  1), or the result overflows float64.

A chain-rule term through a locally inactive branch (Heaviside or a spike away from its
break) is exactly 0 whatever its other factors (see :meth:`.program.Program.run`).
The engine holds no state of its own (its caches are module :class:`~harness.memo.Memo`
tables), so one instance serves every caller: :func:`truth_engine`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.engines.base import EngineError, check_request
from harness.expr import Call, Expr, walk
from harness.memo import Memo
from harness.ops import OPS
from harness.truth import certify
from harness.truth.certify import STATUSES
from harness.truth.forms import GRADIENT, HESSIAN, VALUES, Kind, dtype_key, taylor
from harness.truth.program import compiled, compiled_sympy

__all__ = ["SymbolicEngine", "Truth", "truth_engine"]


@dataclass(frozen=True, eq=False)
class Truth:
    """Certified derivatives and how far to trust each entry.

    ``values`` is float64 (the ball midpoints rounded to nearest; NaN where ``status`` is
    ``"kink"`` or ``"undefined"``). ``bounds`` is the ball radius: a proven bound on
    |exact - midpoint| (NaN where ``values`` is NaN). ``status`` holds one of
    :data:`~harness.truth.certify.STATUSES` per entry; ``precision_bits`` the working
    precision that settled it. All four have the shape of
    :meth:`SymbolicEngine.derivatives`' answer. ``at_break`` (n,) is True at points where
    some kink or jump op sits exactly on its break (before entries are decided along
    their axes), so a rounded argument found on a break elsewhere got there by rounding.
    """

    values: np.ndarray
    bounds: np.ndarray
    status: np.ndarray
    precision_bits: np.ndarray
    at_break: np.ndarray | None = None


_TRUTHS: Memo[Truth] = Memo(8)


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
        """Like :meth:`derivatives`, with bounds, statuses and precisions (see :class:`Truth`).

        Remembered for the last few requests (a case's truth and the rounding model's op
        partials are often the same question); each call gets its own copies."""
        pts = check_request(expr, points, dtype, order)
        key = (expr, dtype_key(expr, dtype), order, pts.shape, pts.tobytes(), certify.iv.AVAILABLE)
        truth = _TRUTHS.get(key, lambda: self._evaluate(expr, pts, dtype, order))
        at_break = truth.at_break.copy() if truth.at_break is not None else None
        return Truth(truth.values.copy(), truth.bounds.copy(), truth.status.copy(),
                     truth.precision_bits.copy(), at_break)

    def _evaluate(self, expr: Expr, pts: np.ndarray, dtype: str, order: int) -> Truth:
        n, k = pts.shape
        kind = GRADIENT if order == 1 else HESSIAN
        values, bounds, codes, bits = certify.evaluate(compiled(expr, dtype_key(expr, dtype), kind), pts)
        _decide_by_sympy(expr, dtype, kind, pts, [values, bounds, codes, bits])
        if order == 2:
            iu, ju = np.triu_indices(k)
            parts = []
            for flat in (values, bounds, codes, bits):
                full = np.zeros((n, k, k), dtype=flat.dtype)
                full[:, iu, ju] = flat
                full[:, ju, iu] = flat
                parts.append(full)
            values, bounds, codes, bits = parts
        at_break = (codes == _KINK).reshape(n, -1).any(axis=1)
        kinks = np.flatnonzero(at_break)
        if len(kinks):
            germs = certify.along_axes(compiled(expr, dtype_key(expr, dtype), VALUES), pts[kinks], order)
            parts = [values[kinks], bounds[kinks], codes[kinks], bits[kinks]]
            _settle_along_axes(*parts, germs=germs, order=order)
            values[kinks], bounds[kinks], codes[kinks], bits[kinks] = parts
        return Truth(values, bounds, _status_names(codes), bits, at_break)

    def values(self, expr: Expr, points: np.ndarray, *, dtype: str) -> np.ndarray:
        """f itself at ``points``, shape (n,), certified likewise (NaN where undefined).

        At a jump the function's own value is used (floor(2) = 2, sign(0) = 0).
        """
        pts = check_request(expr, points, dtype, 1)
        program = compiled(expr, dtype_key(expr, dtype), VALUES)
        return certify.evaluate(program, pts)[0][:, 0]

    def node_values(self, expr: Expr, points: np.ndarray, *, dtype: str) -> np.ndarray:
        """Every node of the literal tree but its variables, in ``walk`` order, at
        ``points``: shape (n_nodes, n), in long double (range to about 1e4932, so a value
        float64 cannot hold, exp(800) or 1e-200 * 1e-200, keeps its size). Midpoints of
        the vectorised interval pass (:meth:`~.program.Program.run_intervals`), so
        accurate to a few long double ulps; NaN where that pass is unsure and wide.
        """
        pts = check_request(expr, points, dtype, 1)
        program = compiled(expr, dtype_key(expr, dtype), VALUES)
        los, his, unsure = program.run_intervals(pts, certify.START_BITS)
        out = np.full((len(los) - program.n_entries, len(pts)), np.nan, dtype=np.longdouble)
        with np.errstate(all="ignore"):
            for row, (lo, hi, bad) in enumerate(zip(los, his, unsure, strict=True)):
                if row < program.n_entries:
                    continue
                mid = np.broadcast_to(lo / 2 + hi / 2, (len(pts),))
                # "unsure" also marks sizes past 2**+-1100 (arb certifies those); their
                # interval still encloses the value, so a tight one gives its size
                tight = np.broadcast_to(np.abs(hi - lo) <= np.abs(mid) * 2.0**-40, (len(pts),))
                ok = np.isfinite(mid) & (tight if bad is None else ~bad | tight)
                out[row - program.n_entries] = np.where(ok, mid, np.nan)
        return out

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
            key = dtype_key(expr, dtype)
            rows = certify.series_taylor(compiled(expr, key, VALUES), pts, max_order)
            # where the series cannot say (a kink, a domain edge), the symbolic program does
            left = np.flatnonzero(np.isnan(rows).any(axis=(1, 2)))
            if len(left) and _sympy_derivatives(expr):
                program = compiled(expr, key, taylor(max_order))
                rows[left] = certify.evaluate_rows(program, pts[left])[0].reshape(len(left), max_order, k)
            out[1:] = rows.transpose(1, 0, 2)
        return out

    def one_sided(
        self, expr: Expr, points: np.ndarray, *, dtype: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Left and right partial derivatives along each axis, each of shape (n, n_vars).

        Entry [p, i] of the left (right) array is d f / d x_i at x_p - delta e_i
        (x_p + delta e_i) with delta = :data:`~.certify.ONE_SIDED_SHIFT` = 2**-300: the
        one-sided limits of a piecewise-analytic derivative, to within about delta * |f''|
        (relu'(0-) = 0, relu'(0+) = 1, abs'(0-) = -1). NaN where a side is undefined or
        itself a kink. They come from f's one-sided germs along the axis
        (:func:`~.certify.along_axes`), else from the derivative a step off the point.
        """
        pts = check_request(expr, points, dtype, 1)
        key = dtype_key(expr, dtype)
        germs = certify.along_axes(compiled(expr, key, VALUES), pts, 1)
        left, right = germs.left[:, 0, :], germs.right[:, 0, :]
        missing = np.flatnonzero((np.isnan(left) | np.isnan(right)).any(axis=1))
        if len(missing):  # no germ (a tie the balls cannot order): step off the point instead
            stepped = certify.one_sided(compiled(expr, key, GRADIENT), pts[missing])
            for side, off in zip((left, right), stepped, strict=True):
                side[missing] = np.where(np.isnan(side[missing]), off, side[missing])
        return left, right


def _decide_by_sympy(expr: Expr, dtype: str, kind: Kind, pts: np.ndarray, parts: list[np.ndarray]) -> None:
    """Entries the chain rule left ``kink`` or ``undefined`` (flat, in place), answered
    from the whole tree's sympy forms instead: the literal chain rule cannot see what
    sympy's algebra of the whole tree does (relu(x*x) = x**2, |x|*|x| = x**2, max(x, x) =
    x, fmod(x, x) = 0), and sympy is compiled only for trees that reach such points."""
    codes = parts[2]
    doubtful = (codes == _KINK) | (codes == _UNDEFINED)
    rows = np.flatnonzero(doubtful.any(axis=1))
    if not len(rows) or not _sympy_derivatives(expr):
        return
    try:
        program = compiled_sympy(expr, dtype_key(expr, dtype), kind)
    except EngineError:  # sympy's whole-tree forms have a class the truth cannot run
        return  # (conjugate from cse): the chain rule's answer stands
    answers = certify.evaluate(program, pts[rows])
    take = doubtful[rows]
    for part, answer in zip(parts, answers, strict=True):
        part[rows] = np.where(take, answer, part[rows])


def _sympy_derivatives(expr: Expr) -> bool:
    """Whether differentiating ``expr``'s whole sympy form is practical: not where an op
    of it has numeric ``formula_partials`` (the 3x3 eigenvalues' closed form, whose
    derivatives sympy takes minutes to expand and whose singular points, the repeated
    eigenvalues, no algebra removes)."""
    return not any(isinstance(n, Call) and OPS[n.op].formula_partials is not None for n in walk(expr))


_KINK = STATUSES.index("kink")
_OK = STATUSES.index("ok")
_UNDEFINED = STATUSES.index("undefined")


def _settle_along_axes(
    values: np.ndarray,
    bounds: np.ndarray,
    codes: np.ndarray,
    bits: np.ndarray,
    *,
    germs: certify.AxisGerms,
    order: int,
) -> None:
    """Decide each ``kink`` entry along the axes it differentiates (in place).

    An entry of the gradient is about f along its variable alone: where f jumps along it
    the derivative is undefined; where both one-sided germs agree it exists (x * floor(y)
    at y = 1: d/dx = 1); else it stays a kink. A diagonal Hessian entry likewise, to
    second order, but only where no break is crossed along the axis: through a crossed
    break (cos(|x|) at 0) an engine's second derivative follows its kink convention
    (abs'(0) = 0), so the entry stays a kink there. A mixed entry (i, j) is undefined
    where f jumps along i or j and stays a kink otherwise: two axes alone do not settle a
    mixed partial (|x y| at 0).
    """
    k = germs.jump.shape[1]
    for i in range(k):
        entry = (slice(None), i) if order == 1 else (slice(None), i, i)
        kink = codes[entry] == _KINK
        jump = kink & germs.jump[:, i]
        exists = kink & ~jump & germs.same[:, :order, i].all(axis=1)
        if order == 2:
            exists &= ~germs.crossed[:, i]
        settled_value = germs.right[:, order - 1, i]
        values[entry] = np.where(exists, settled_value, np.where(jump, np.nan, values[entry]))
        bounds[entry] = np.where(exists, germs.bound[:, order - 1, i], np.where(jump, np.nan, bounds[entry]))
        codes[entry] = np.where(exists, _OK, np.where(jump, _UNDEFINED, codes[entry]))
        bits[entry] = np.where(exists | jump, certify.START_BITS, bits[entry])
        if order == 2:
            for j in range(k):
                if j != i:
                    off = (codes[:, i, j] == _KINK) & (germs.jump[:, i] | germs.jump[:, j])
                    values[:, i, j] = np.where(off, np.nan, values[:, i, j])
                    bounds[:, i, j] = np.where(off, np.nan, bounds[:, i, j])
                    codes[:, i, j] = np.where(off, _UNDEFINED, codes[:, i, j])


_TRUTH = SymbolicEngine()


def truth_engine() -> SymbolicEngine:
    """The one shared truth engine, for every caller that needs the truth (its results
    are remembered in :class:`~harness.memo.Memo` tables; ``harness.memo.clear_all``
    forgets them)."""
    return _TRUTH
