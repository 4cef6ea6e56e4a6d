"""Numerical-differentiation libraries as peer engines: scipy and numdifftools.

Both adapters put a third-party finite-difference driver behind the :class:`Engine`
protocol, so the harness can rank them against its own schemes and the exact truth. The
function they differentiate is the tree itself, evaluated literally in float64 by
:func:`harness.engines.torch_ad.torch_function` (the same forward computation every other
engine sees); the peer only chooses the steps and combines the values.

* :class:`ScipyDerivativeEngine` wraps ``scipy.differentiate.derivative`` (gradient, one
  variable at a time, vectorised over points) and ``scipy.differentiate.hessian``
  (order 2, also vectorised over points). Requires scipy >= 1.15.
* :class:`NumdifftoolsEngine` wraps ``numdifftools.Derivative`` (gradient, one variable at
  a time, vectorised over points) and ``numdifftools.Hessian`` (order 2). ``Hessian``
  takes one point at a time, so order 2 loops over points in Python.

Both are float64 tools: their step generators and error estimates assume float64, so any
other dtype is an :class:`EngineError`. Where the peer returns NaN (a stencil that steps
outside the domain of ``log``, say) the engine returns NaN, as the protocol asks.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from harness.engines.base import EngineError, check_request
from harness.engines.torch_ad import torch_function
from harness.expr import Call, Expr, walk
from harness.ops import OPS

__all__ = ["NumdifftoolsEngine", "ScipyDerivativeEngine"]

ArrayFn = Callable[..., np.ndarray]

_SCIPY_OPTIONS = ("tolerances", "maxiter", "order", "initial_step", "step_factor")
"""Keywords shared by scipy.differentiate.derivative and .hessian that the engine passes on."""

_NUMDIFFTOOLS_METHODS = ("central", "forward", "backward", "complex")
"""numdifftools methods the engine can run. 'multicomplex' needs numdifftools' own
bicomplex number type, which torch cannot compute with."""


def _numpy_function(expr: Expr) -> ArrayFn:
    """``f(*columns) -> ndarray``: the tree over numpy arrays, computed by torch.

    Arguments broadcast against each other and the result has their broadcast shape, as
    the peers' elementwise contract requires. Inputs are copied into tensors (the peers
    may hand over read-only views, which ``torch.from_numpy`` would warn about); complex
    inputs stay complex, for numdifftools' complex step.
    """
    run = torch_function(expr)

    def f(*columns: np.ndarray) -> np.ndarray:
        arrays = np.broadcast_arrays(*(np.asarray(c) for c in columns))
        tensors = [torch.from_numpy(np.array(a, copy=True)) for a in arrays]
        out = run(tensors).numpy()
        return np.broadcast_to(out, arrays[0].shape) if arrays else out

    return f


def _require_float64(engine: str, dtype: str) -> None:
    if dtype != "float64":
        raise EngineError(
            f"dtype={dtype!r} is not supported by {engine}: its step sizes and error "
            "estimates assume float64; request dtype='float64' or use a finite-difference "
            "engine of the harness for other dtypes"
        )


def _require_ops(engine: Any, expr: Expr) -> None:
    missing = sorted({n.op for n in walk(expr) if isinstance(n, Call)} - _supported(engine))
    if missing:
        raise EngineError(
            f"ops {missing} are not supported by engine {engine.name!r}; "
            "check engine.supports(op) before sending an expression"
        )


def _supported(engine: Any) -> set[str]:
    return {name for name in OPS if engine.supports(name)}


def _prepare(
    engine: Any, expr: Expr, points: np.ndarray, dtype: str, order: int
) -> tuple[np.ndarray, ArrayFn | None]:
    """The checks both peers make on a request, and the float64 function to differentiate
    (``None`` when there are no points or no variables: nothing to compute)."""
    pts = check_request(expr, points, dtype, order)
    _require_float64(engine.name, dtype)
    _require_ops(engine, expr)
    return pts, (None if 0 in pts.shape else _numpy_function(expr))


def _empty(shape: tuple[int, ...], order: int) -> np.ndarray:
    """The (all-zero, usually empty) answer when there are no points or no variables."""
    n_points, n_vars = shape
    return np.zeros((n_points,) + (n_vars,) * order, dtype=np.float64)


def _with_column(columns: list[np.ndarray], j: int, value: np.ndarray) -> list[np.ndarray]:
    return columns[:j] + [value] + columns[j + 1 :]


class ScipyDerivativeEngine:
    """``scipy.differentiate`` as an engine: adaptive high-order central differences.

    ``options`` go to scipy unchanged: ``tolerances`` (dict with ``atol``/``rtol``),
    ``maxiter``, ``order`` (of the stencil, not of the derivative), ``initial_step`` and
    ``step_factor``; see ``help(scipy.differentiate.derivative)``. Order 1 calls
    ``derivative`` once per variable, with the other variables held at the points' values
    and every point in one vectorised call. Order 2 calls ``scipy.differentiate.hessian``
    (scipy's own nesting of the same driver), again for all points at once. float64 only.
    """

    name = "scipy:derivative"

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(_SCIPY_OPTIONS))
        if unknown:
            raise TypeError(
                f"options {unknown} are not passed to scipy.differentiate; expected some of "
                f"{list(_SCIPY_OPTIONS)}"
            )
        try:
            import scipy.differentiate  # noqa: F401
        except ImportError:
            raise ImportError(
                "ScipyDerivativeEngine needs scipy >= 1.15 (scipy.differentiate); "
                "install it with `pip install diffharness[peers]`"
            ) from None
        self.options: Mapping[str, Any] = MappingProxyType(dict(options))

    def supports(self, op: str) -> bool:
        """Every op of the table: scipy only evaluates the function at real points."""
        return op in OPS

    def derivatives(
        self, expr: Expr, points: np.ndarray, *, dtype: str, order: int = 1
    ) -> np.ndarray:
        """Gradient (order 1) or Hessian (order 2) at each point, as float64; see the class."""
        pts, f = _prepare(self, expr, points, dtype, order)
        if f is None:
            return _empty(pts.shape, order)
        if order == 1:
            return self._gradient(f, pts)
        return self._hessian(f, pts)

    def _gradient(self, f: ArrayFn, pts: np.ndarray) -> np.ndarray:
        from scipy.differentiate import derivative

        columns = list(pts.T)
        out = np.empty_like(pts)
        for j in range(pts.shape[1]):
            others = columns[:j] + columns[j + 1 :]

            def partial(xj: np.ndarray, *rest: np.ndarray, j: int = j) -> np.ndarray:
                return f(*rest[:j], xj, *rest[j:])

            res = derivative(partial, columns[j], args=tuple(others), **self.options)
            out[:, j] = res.df
        return out

    def _hessian(self, f: ArrayFn, pts: np.ndarray) -> np.ndarray:
        from scipy.differentiate import hessian

        # scipy's layout: x has shape (n_vars, n_points) and f reads x[i] as variable i;
        # ddf comes back as (n_vars, n_vars, n_points).
        res = hessian(lambda x: f(*x), pts.T, **self.options)
        return np.ascontiguousarray(np.moveaxis(np.asarray(res.ddf, dtype=np.float64), -1, 0))


class NumdifftoolsEngine:
    """numdifftools as an engine: finite differences with Richardson extrapolation.

    ``method`` is one of ``'central'``, ``'forward'``, ``'backward'`` and ``'complex'``
    (complex step: only through ops whose row in the op table allows it, see
    :meth:`supports`). ``options`` go to ``numdifftools.Derivative`` / ``Hessian``
    unchanged (``step``, ``order``, ``richardson_terms``, step-generator options).

    Order 1 differentiates one variable at a time with ``numdifftools.Derivative``, which
    is vectorised over points for an elementwise function. Order 2 uses
    ``numdifftools.Hessian``, which takes one point at a time, so it loops over points in
    Python. float64 only. numdifftools is an optional extra; without it, construction
    raises ImportError.
    """

    def __init__(self, method: str = "central", **options: Any) -> None:
        if method not in _NUMDIFFTOOLS_METHODS:
            raise ValueError(
                f"method={method!r} is not supported; expected one of "
                f"{list(_NUMDIFFTOOLS_METHODS)}"
            )
        try:
            import numdifftools  # noqa: F401
        except ImportError:
            raise ImportError(
                "NumdifftoolsEngine needs the optional package numdifftools; install it "
                "with `pip install diffharness[peers]`"
            ) from None
        self.method = method
        self.options: Mapping[str, Any] = MappingProxyType(dict(options))
        self.name = f"numdifftools:{method}"

    def supports(self, op: str) -> bool:
        """Every op for the real methods; for 'complex', ops that complex step may cross."""
        row = OPS.get(op)
        if row is None:
            return False
        return self.method != "complex" or row.complex_step

    def derivatives(
        self, expr: Expr, points: np.ndarray, *, dtype: str, order: int = 1
    ) -> np.ndarray:
        """Gradient (order 1) or Hessian (order 2) at each point, as float64; see the class."""
        pts, f = _prepare(self, expr, points, dtype, order)
        if f is None:
            return _empty(pts.shape, order)
        # numdifftools' extrapolation divides and subtracts NaN/inf freely; those values
        # are answers here (NaN where the peer gives NaN), not reasons to warn.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.filterwarnings("ignore", "All-NaN slice encountered", UserWarning)
            if order == 1:
                return self._gradient(f, pts)
            return self._hessian(f, pts)

    def _gradient(self, f: ArrayFn, pts: np.ndarray) -> np.ndarray:
        import numdifftools as nd

        columns = list(pts.T)
        out = np.empty_like(pts)
        for j in range(pts.shape[1]):

            def partial(xj: np.ndarray, j: int = j) -> np.ndarray:
                return f(*_with_column(columns, j, xj))

            d = nd.Derivative(partial, method=self.method, **self.options)
            out[:, j] = np.real(d(columns[j]))
        return out

    def _hessian(self, f: ArrayFn, pts: np.ndarray) -> np.ndarray:
        import numdifftools as nd

        h = nd.Hessian(lambda x: f(*x), method=self.method, **self.options)
        n_vars = pts.shape[1]
        # numdifftools.Hessian takes a single point; there is no vectorised form.
        return np.stack([np.real(h(p)).reshape(n_vars, n_vars) for p in pts])
