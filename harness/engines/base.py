"""The Engine protocol every differentiation engine implements, and its shared checks.

An engine answers one question: at these points, what are the derivatives of this
expression? Everything else (truth, tolerance, verdicts, reports) lives outside it, so a
new AD library is one small class with ``name``, ``supports`` and ``derivatives``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from harness.dtypes import dtype_info, round_array
from harness.expr import Expr, variables

__all__ = ["Engine", "EngineError", "check_engine_object", "check_request"]


class EngineError(RuntimeError):
    """An engine could not answer a request (unsupported op, dtype, order, device)."""


@runtime_checkable
class Engine(Protocol):
    """What the harness needs from a differentiation engine.

    ``derivatives(expr, points, dtype=..., order=...)`` receives ``points``, a float64
    array of shape ``(n_points, n_vars)`` whose columns follow ``harness.variables(expr)``
    (sorted names) and whose values are exactly representable in ``dtype``. It returns a
    float64 array: shape ``(n_points, n_vars)`` for ``order=1`` (the gradient) and
    ``(n_points, n_vars, n_vars)`` for ``order=2`` (the Hessian), with NaN or inf wherever
    the engine produces them. It should raise :class:`EngineError` for a dtype or order it
    does not handle; ``supports(op)`` says which ops it can compute.
    """

    name: str

    def supports(self, op: str) -> bool: ...

    def derivatives(
        self, expr: Expr, points: np.ndarray, *, dtype: str, order: int = 1
    ) -> np.ndarray: ...


def check_engine_object(engine: object) -> None:
    """Raise ``TypeError`` naming what ``engine`` lacks of the :class:`Engine` protocol
    (a ``name`` string, ``supports(op)``, ``derivatives(expr, points, *, dtype, order)``)."""
    missing = []
    if not isinstance(getattr(engine, "name", None), str):
        missing.append("a name attribute (a string such as 'myengine')")
    for method, signature in (("supports", "supports(op) -> bool"),
                              ("derivatives", "derivatives(expr, points, *, dtype, order=1)")):
        if not callable(getattr(engine, method, None)):
            missing.append(f"a method {signature}")
    if missing:
        raise TypeError(
            f"engine={type(engine).__name__} object is not an Engine: it lacks {'; '.join(missing)}. "
            "See harness.engines.base.Engine (the README's DualEngine example has all three)"
        )


def check_request(expr: Expr, points: np.ndarray, dtype: str, order: int) -> np.ndarray:
    """Validate an engine request and return ``points`` as a float64 (n, n_vars) array.

    Raises ``ValueError`` naming the bad argument: wrong shape, non-float64-convertible
    values, values that are not exactly representable in ``dtype``, an unknown dtype or
    an order other than 1 or 2.
    """
    dtype_info(dtype)
    if order not in (1, 2):
        raise ValueError(f"order={order!r} is not supported; expected 1 or 2")
    names = variables(expr)
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim == 1 and len(names) == 1:
        pts = pts[:, None]
    if pts.ndim != 2 or pts.shape[1] != len(names):
        raise ValueError(
            f"points.shape={np.shape(points)} does not match the expression's variables "
            f"{names}; expected (n_points, {len(names)})"
        )
    rounded = round_array(pts, dtype)
    bad = ~((rounded == pts) | np.isnan(pts))
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(
            f"points[{i[0]}, {i[1]}]={pts[i]!r} is not exactly representable in {dtype}; "
            "round the points first with harness.dtypes.round_array(points, dtype)"
        )
    return pts
