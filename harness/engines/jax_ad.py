"""JAX automatic differentiation as an engine under test.

The tree is compiled by :func:`harness.compile.compile_tree` through a namespace,
:func:`jax_namespace` (op name -> the op table's JAX kernel, as sympy's ``lambdify`` does),
and computed literally: ``log(exp(x))`` stays two
calls. Constants become arrays of the tested dtype, so ``x**3`` is ``lax.pow`` with a
float exponent, exactly as the tree says, not JAX's ``integer_pow`` shortcut.

Modes (``jax:<mode>``), each a different path through JAX's transforms; *batch* below is
the tree over a whole batch of points (elementwise), *per point* a scalar function of
one point's coordinates:

=========== ============================================ ====================================
mode        order 1                                      order 2
=========== ============================================ ====================================
eager       ``grad`` per point, no jit, no vmap (the     ``hessian`` per point, no jit
            reference the others are compared with)
reverse     ``jit(vmap(grad))``                          ``jit(vmap(hessian))``
forward     ``jit(vmap(jacfwd))``                        ``jit(vmap(jacfwd(jacfwd)))``
vmap        ``vmap(grad)``, not jitted                   ``vmap(hessian)``, not jitted
jit-grad    ``jit(grad)`` of the batch sum               ``jit(grad)`` of the sum of each
                                                         gradient column (reverse over reverse)
jit-jvp     ``jit(jvp)`` of the batch along each         ``jvp`` of ``jvp`` (forward over
            variable's all-ones tangent                  forward), jitted
jacfwd      ``jit(jacfwd)`` of the batch, diagonal       ``jit(jacfwd(jacfwd))``, diagonal blocks
jacrev      ``jit(jacrev)`` of the batch, diagonal       ``jit(jacrev(jacrev))``, diagonal blocks
hessian     second derivatives only: ``EngineError``     ``jit(hessian)`` of the batch sum,
                                                         diagonal blocks
=========== ============================================ ====================================

The batch-level Jacobians and Hessians are matrices over points of which only the
diagonal is wanted (the tree is elementwise); they run on chunks of :data:`CHUNK` points,
padded with copies of the first point so that one compilation serves every chunk.
Jitted functions are compiled once per (expression, dtype, order) and kept in a small
per-engine memo (:class:`harness.memo.Memo`).

float64 needs JAX's x64 mode. The engine enables it only around its own calls with the
``jax.enable_x64(True)`` context manager (thread-local config, restored on exit), so the
caller's global JAX configuration is left as it was. float32 runs under the caller's
configuration; its arrays are float32 explicitly, so x64 mode does not change them.
float16 and bfloat16 likewise: the inputs, constants and result are arrays of that dtype
(how XLA evaluates an op inside, in that dtype or wider, is JAX's choice and under test).

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

__all__ = ["CHUNK", "MODES", "JaxEngine", "jax_function", "jax_namespace"]

MODES: tuple[str, ...] = (
    "eager", "reverse", "forward", "vmap", "jit-grad", "jit-jvp", "jacfwd", "jacrev", "hessian",
)
"""Differentiation modes of :class:`JaxEngine` (see the module docstring)."""

CHUNK = 16
"""Points per batch-level Jacobian or Hessian (their size grows with its square)."""

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
    """JAX autodiff (``jax.grad`` / ``jacfwd`` / ``hessian``, jitted or not) as an engine under test.

    ``mode`` is one of :data:`MODES` (see the module docstring for what each uses at
    order 1 and 2; ``"hessian"`` raises :class:`EngineError` at order 1). Supports every
    dtype of :data:`harness.dtypes.DTYPES` and every op in :func:`jax_namespace`. Raises
    ImportError when jax is not installed.
    """

    def __init__(self, mode: str = "reverse") -> None:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not supported; expected one of {list(MODES)}")
        self._jax = _import_jax()
        self.mode = mode
        self.name = f"jax:{mode}"
        self._compiled: Memo[Callable[[Any], Any]] = Memo(_CACHE_SIZE)

    def eager(self) -> JaxEngine | None:
        """The engine this one's values are compared with in the ``vs_eager`` column:
        ``jax:eager`` (no jit, no vmap) for the transform modes; None for ``eager`` itself
        and for the default modes ``reverse`` and ``forward``, which are judged against
        the truth alone (eager runs one unjitted call per point, about 0.5 s each: it
        would multiply every JAX campaign's cost)."""
        return None if self.mode in ("eager", "reverse", "forward") else JaxEngine("eager")

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
        n_points, n_vars = pts.shape
        if n_vars == 0 or n_points == 0:
            return np.zeros((n_points,) + (n_vars,) * order, dtype=np.float64)
        jnp = self._jax.numpy
        x64 = _x64_mode(self._jax) if dtype == "float64" else contextlib.nullcontext()
        with x64:
            fn = self._function(expr, dtype, order)
            out = fn(jnp.asarray(pts, dtype=getattr(jnp, dtype)))
            if out.dtype != jnp.dtype(dtype):
                raise EngineError(
                    f"JAX computed in {out.dtype} instead of dtype={dtype!r}; "
                    "this is a bug in the JAX engine"
                )
            return np.asarray(out, dtype=np.float64)

    def _function(self, expr: Expr, dtype: str, order: int) -> Callable[[Any], Any]:
        return self._compiled.get((expr, dtype, order), lambda: self._build(expr, order))

    def _build(self, expr: Expr, order: int) -> Callable[[Any], Any]:
        run = jax_function(expr)
        n_vars = len(variables(expr))

        def scalar(v: Any) -> Any:
            return run([v[i] for i in range(n_vars)])

        def batch(matrix: Any) -> Any:
            return run([matrix[:, i] for i in range(n_vars)])

        return _BUILDERS[self.mode](self._jax, scalar, batch, n_vars, order)


Builder = Callable[[Any, Callable[[Any], Any], Callable[[Any], Any], int, int], Callable[[Any], Any]]


def _eager(jax: Any, scalar: Any, batch: Any, n_vars: int, order: int) -> Callable[[Any], Any]:
    d = jax.grad(scalar) if order == 1 else jax.hessian(scalar)

    def per_point(pts: Any) -> Any:
        return jax.numpy.stack([d(p) for p in pts])

    return per_point


def _reverse(jax: Any, scalar: Any, batch: Any, n_vars: int, order: int) -> Callable[[Any], Any]:
    return jax.jit(jax.vmap(jax.grad(scalar) if order == 1 else jax.hessian(scalar)))  # type: ignore[no-any-return]


def _forward(jax: Any, scalar: Any, batch: Any, n_vars: int, order: int) -> Callable[[Any], Any]:
    d = jax.jacfwd(scalar) if order == 1 else jax.jacfwd(jax.jacfwd(scalar))
    return jax.jit(jax.vmap(d))  # type: ignore[no-any-return]


def _vmap(jax: Any, scalar: Any, batch: Any, n_vars: int, order: int) -> Callable[[Any], Any]:
    return jax.vmap(jax.grad(scalar) if order == 1 else jax.hessian(scalar))  # type: ignore[no-any-return]


def _jit_grad(jax: Any, scalar: Any, batch: Any, n_vars: int, order: int) -> Callable[[Any], Any]:
    jnp = jax.numpy

    def total(matrix: Any) -> Any:
        return batch(matrix).sum()

    gradient = jax.grad(total)  # (n, k): each point's gradient, the tree being elementwise
    if order == 1:
        return jax.jit(gradient)  # type: ignore[no-any-return]

    def column_sum(i: int) -> Callable[[Any], Any]:
        return lambda matrix: gradient(matrix)[:, i].sum()

    rows = [jax.grad(column_sum(i)) for i in range(n_vars)]
    return jax.jit(lambda matrix: jnp.stack([r(matrix) for r in rows], axis=-2))  # type: ignore[no-any-return]


def _jit_jvp(jax: Any, scalar: Any, batch: Any, n_vars: int, order: int) -> Callable[[Any], Any]:
    jnp = jax.numpy

    def along(fn: Callable[[Any], Any], i: int) -> Callable[[Any], Any]:
        def derivative(matrix: Any) -> Any:
            tangent = jnp.zeros_like(matrix).at[:, i].set(1)
            return jax.jvp(fn, (matrix,), (tangent,))[1]

        return derivative

    if order == 1:
        return jax.jit(lambda m: jnp.stack([along(batch, i)(m) for i in range(n_vars)], axis=-1))  # type: ignore[no-any-return]

    def hessian(m: Any) -> Any:
        rows = [
            jnp.stack([along(along(batch, i), j)(m) for j in range(n_vars)], axis=-1)
            for i in range(n_vars)
        ]
        return jnp.stack(rows, axis=-2)

    return jax.jit(hessian)  # type: ignore[no-any-return]


def _chunked(jax: Any, per_chunk: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``per_chunk`` (jitted) over chunks of :data:`CHUNK` points, padded with the first."""
    jnp = jax.numpy
    compiled = jax.jit(per_chunk)

    def run(pts: Any) -> Any:
        n = pts.shape[0]
        pad = (-n) % CHUNK
        padded = jnp.concatenate([pts, jnp.repeat(pts[:1], pad, axis=0)]) if pad else pts
        parts = [compiled(padded[s : s + CHUNK]) for s in range(0, n + pad, CHUNK)]
        return jnp.concatenate(parts)[:n]

    return run


def _jacobian(transform: Callable[[Any], Any]) -> Builder:
    """A builder for ``transform(jax)`` (``jax.jacfwd`` or ``jax.jacrev``) of the batch."""

    def build(jax: Any, scalar: Any, batch: Any, n_vars: int, order: int) -> Callable[[Any], Any]:
        jac = transform(jax)
        idx = jax.numpy.arange(CHUNK)
        if order == 1:
            return _chunked(jax, lambda m: jac(batch)(m)[idx, idx, :])  # (p, p, k) -> (p, k)
        return _chunked(jax, lambda m: jac(jac(batch))(m)[idx, idx, :, idx, :])

    return build


def _hessian(jax: Any, scalar: Any, batch: Any, n_vars: int, order: int) -> Callable[[Any], Any]:
    if order == 1:
        raise EngineError(
            "jax:hessian computes second derivatives only (order=1 requested); use order 2, "
            "or jax:jacrev / jax:jacfwd for the gradient"
        )
    idx = jax.numpy.arange(CHUNK)
    return _chunked(jax, lambda m: jax.hessian(lambda a: batch(a).sum())(m)[idx, :, idx, :])


_BUILDERS: dict[str, Builder] = {
    "eager": _eager,
    "reverse": _reverse,
    "forward": _forward,
    "vmap": _vmap,
    "jit-grad": _jit_grad,
    "jit-jvp": _jit_jvp,
    "jacfwd": _jacobian(lambda jax: jax.jacfwd),
    "jacrev": _jacobian(lambda jax: jax.jacrev),
    "hessian": _hessian,
}
