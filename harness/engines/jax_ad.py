"""JAX automatic differentiation as an engine under test.

The tree is compiled by :func:`harness.compile.compile_tree` through a namespace,
:func:`jax_namespace` (op name -> the op table's JAX kernel, as sympy's ``lambdify`` does),
and computed literally: ``log(exp(x))`` stays two
calls. Constants become arrays of the tested dtype, so ``x**3`` is ``lax.pow`` with a
float exponent, exactly as the tree says, not JAX's ``integer_pow`` shortcut.

Modes: ``"reverse"`` uses ``jax.grad`` for order 1 and ``jax.hessian`` (forward over
reverse) for order 2; ``"forward"`` uses ``jax.jacfwd`` for order 1 and
``jacfwd(jacfwd)`` for order 2. Each is ``jax.vmap``-ed over the points and ``jax.jit``-ed
once per (expression, dtype, order); compiled functions are kept in a small per-engine
memo (:class:`harness.memo.Memo`).

float64 needs JAX's x64 mode. The engine enables it only around its own calls with the
``jax.enable_x64(True)`` context manager (thread-local config, restored on exit), so the
caller's global JAX configuration is left as it was. float32 runs under the caller's
configuration; its arrays are float32 explicitly, so x64 mode does not change them.

JAX is an optional extra and is imported lazily: importing this module never needs it;
constructing :class:`JaxEngine` without it raises ImportError with the install hint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from harness.compile import Namespace, compile_tree
from harness.engines.base import EngineError, check_request
from harness.expr import Expr, variables
from harness.memo import Memo
from harness.ops import OPS

__all__ = ["MODES", "JaxEngine", "jax_function", "jax_namespace"]

MODES: tuple[str, ...] = ("reverse", "forward")
"""Differentiation modes of :class:`JaxEngine`."""

_DTYPES: tuple[str, ...] = ("float32", "float64")
_CACHE_SIZE = 64


def _import_jax() -> Any:
    try:
        import jax
    except ImportError:
        raise ImportError(
            "JaxEngine needs the optional package jax; install it with "
            "`pip install diffharness[jax]`"
        ) from None
    return jax


def _x64_mode(jax: Any) -> Any:
    """A context manager that turns x64 mode on for this thread and restores it on exit."""
    try:
        return jax.enable_x64(True)
    except AttributeError:
        # Older JAX spelled it jax.experimental.enable_x64 (not tested here: jax 0.10).
        from jax.experimental import enable_x64  # type: ignore[attr-defined]

        return enable_x64(True)


def jax_namespace() -> Namespace:
    """JAX's namespace for :func:`harness.compile.compile_tree`: each op's ``jax`` kernel
    from the op table (ops without one are not supported). Needs jax."""
    _import_jax()
    import jax
    import jax.numpy as jnp
    import jax.scipy.special  # binds jax.scipy.special for the kernels

    kernels = {name: row.jax(jax) for name, row in OPS.items() if row.jax is not None}

    def constant(value: float, like: Any) -> Any:
        return jnp.asarray(value, dtype=like.dtype)

    return Namespace("JAX", MappingProxyType(kernels), constant, lambda: jnp.zeros((), jnp.float32))


def jax_function(expr: Expr) -> Callable[[Sequence[Any]], Any]:
    """A function of one JAX array per variable (``variables(expr)`` order) computing ``expr``.

    Constants become arrays of the first input's dtype. An op without a JAX kernel in the
    op table is an :class:`EngineError` naming it.
    """
    try:
        return compile_tree(expr, jax_namespace())  # type: ignore[no-any-return]
    except KeyError as exc:
        raise EngineError(str(exc.args[0])) from None


class JaxEngine:
    """JAX autodiff (``jax.grad`` / ``jacfwd`` / ``hessian``) as an engine under test.

    ``mode`` is ``"reverse"`` or ``"forward"`` (see the module docstring for what each
    uses at order 1 and 2). Supports float32 and float64 and every op in
    :func:`jax_namespace`. Raises ImportError when jax is not installed.
    """

    def __init__(self, mode: str = "reverse") -> None:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not supported; expected one of {list(MODES)}")
        self._jax = _import_jax()
        self.mode = mode
        self.name = f"jax:{mode}"
        self._compiled: Memo[Callable[[Any], Any]] = Memo(_CACHE_SIZE)

    def supports(self, op: str) -> bool:
        """True when the op table has a JAX kernel for ``op``."""
        row = OPS.get(op)
        return row is not None and row.jax is not None

    def derivatives(
        self, expr: Expr, points: np.ndarray, *, dtype: str, order: int = 1
    ) -> np.ndarray:
        """Gradient (order 1) or Hessian (order 2) at each point, computed in ``dtype``.

        Returns float64 of shape ``(n_points, n_vars)`` or ``(n_points, n_vars, n_vars)``.
        """
        pts = check_request(expr, points, dtype, order)
        if dtype not in _DTYPES:
            raise EngineError(
                f"dtype={dtype!r} is not supported by {self.name}; expected one of "
                f"{list(_DTYPES)}"
            )
        n_points, n_vars = pts.shape
        if n_vars == 0 or n_points == 0:
            return np.zeros((n_points,) + (n_vars,) * order, dtype=np.float64)
        jnp = self._jax.numpy
        x64 = _x64_mode(self._jax) if dtype == "float64" else contextlib.nullcontext()
        with x64:
            fn = self._function(expr, dtype, order)
            out = fn(jnp.asarray(pts, dtype=getattr(jnp, dtype)))
            if out.dtype != np.dtype(dtype):
                raise EngineError(
                    f"JAX computed in {out.dtype} instead of dtype={dtype!r}; "
                    "this is a bug in the JAX engine"
                )
            return np.asarray(out, dtype=np.float64)

    def _function(self, expr: Expr, dtype: str, order: int) -> Callable[[Any], Any]:
        return self._compiled.get((expr, dtype, order), lambda: self._build(expr, order))

    def _build(self, expr: Expr, order: int) -> Callable[[Any], Any]:
        jax = self._jax
        run = jax_function(expr)
        n_vars = len(variables(expr))

        def scalar(v: Any) -> Any:
            return run([v[i] for i in range(n_vars)])

        if self.mode == "reverse":
            d = jax.grad(scalar) if order == 1 else jax.hessian(scalar)
        else:
            d = jax.jacfwd(scalar) if order == 1 else jax.jacfwd(jax.jacfwd(scalar))
        return jax.jit(jax.vmap(d))  # type: ignore[no-any-return]
