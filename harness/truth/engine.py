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

from harness.engines.base import check_request
from harness.expr import Expr
from harness.ops import OPS
from harness.truth import certify
from harness.truth.certify import STATUSES
from harness.truth.forms import GRADIENT, HESSIAN, VALUES, dtype_key, taylor
from harness.truth.program import compiled

__all__ = ["SymbolicEngine", "Truth", "truth_engine"]


@dataclass(frozen=True, eq=False)
class Truth:
    """Certified derivatives and how far to trust each entry.

    ``values`` is float64 (the ball midpoints rounded to nearest; NaN where ``status`` is
    ``"kink"`` or ``"undefined"``). ``bounds`` is the ball radius: a proven bound on
    |exact - midpoint| (NaN where ``values`` is NaN). ``status`` holds one of
    :data:`~harness.truth.certify.STATUSES` per entry; ``precision_bits`` the working
    precision that settled it. All four have the shape of
    :meth:`SymbolicEngine.derivatives`' answer.
    """

    values: np.ndarray
    bounds: np.ndarray
    status: np.ndarray
    precision_bits: np.ndarray


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
        program = compiled(expr, dtype_key(expr, dtype), GRADIENT if order == 1 else HESSIAN)
        values, bounds, codes, bits = certify.evaluate(program, pts)
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
        program = compiled(expr, dtype_key(expr, dtype), VALUES)
        return certify.evaluate(program, pts)[0][:, 0]

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
            if len(left):
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
        itself a kink.
        """
        pts = check_request(expr, points, dtype, 1)
        return certify.one_sided(compiled(expr, dtype_key(expr, dtype), GRADIENT), pts)


_TRUTH = SymbolicEngine()


def truth_engine() -> SymbolicEngine:
    """The one shared truth engine, for every caller that needs the truth (its results
    are remembered in :class:`~harness.memo.Memo` tables; ``harness.memo.clear_all``
    forgets them)."""
    return _TRUTH
