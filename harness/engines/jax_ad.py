"""JAX automatic differentiation as an engine under test.

The tree is translated through a namespace table, :func:`jax_namespace` (op name -> JAX
function, as sympy's ``lambdify`` does), and computed literally: ``log(exp(x))`` stays two
calls. Constants become arrays of the tested dtype, so ``x**3`` is ``lax.pow`` with a
float exponent, exactly as the tree says, not JAX's ``integer_pow`` shortcut.

Modes: ``"reverse"`` uses ``jax.grad`` for order 1 and ``jax.hessian`` (forward over
reverse) for order 2; ``"forward"`` uses ``jax.jacfwd`` for order 1 and
``jacfwd(jacfwd)`` for order 2. Each is ``jax.vmap``-ed over the points and ``jax.jit``-ed
once per (expression, dtype, order); compiled functions are kept in a small per-engine
cache.

float64 needs JAX's x64 mode. The engine enables it only around its own calls with the
``jax.enable_x64(True)`` context manager (thread-local config, restored on exit), so the
caller's global JAX configuration is left as it was. float32 runs under the caller's
configuration; its arrays are float32 explicitly, so x64 mode does not change them.

JAX is an optional extra and is imported lazily: importing this module never needs it;
constructing :class:`JaxEngine` without it raises ImportError with the install hint.
"""

from __future__ import annotations

import contextlib
import functools
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from harness.engines.base import EngineError, check_request
from harness.expr import Call, Const, Expr, Var, variables, walk

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


@functools.cache
def jax_namespace() -> Mapping[str, Callable[..., Any]]:
    """Op name -> the JAX function that computes it: the translation table for trees.

    One entry per op of :data:`harness.ops.OPS` it covers; :meth:`JaxEngine.supports`
    reads this table. Built on first use because it needs jax.
    """
    jax = _import_jax()
    import jax.numpy as jnp
    import jax.scipy.special as jsp

    table: dict[str, Callable[..., Any]] = {
        "add": jnp.add,
        "sub": jnp.subtract,
        "mul": jnp.multiply,
        "div": jnp.divide,
        "neg": jnp.negative,
        "pow": jnp.power,
        "exp": jnp.exp,
        "log": jnp.log,
        "sqrt": jnp.sqrt,
        "sin": jnp.sin,
        "cos": jnp.cos,
        "tan": jnp.tan,
        "tanh": jnp.tanh,
        "sigmoid": jax.nn.sigmoid,
        "atan": jnp.arctan,
        "asin": jnp.arcsin,
        "acos": jnp.arccos,
        "sinh": jnp.sinh,
        "cosh": jnp.cosh,
        "log1p": jnp.log1p,
        "expm1": jnp.expm1,
        "erf": jsp.erf,
        # log(1 + exp(x)) computed as logaddexp(x, 0): no threshold shortcut as in torch.
        "softplus": jax.nn.softplus,
        "abs": jnp.abs,
        "relu": jax.nn.relu,
        "max": jnp.maximum,
        "min": jnp.minimum,
        "floor": jnp.floor,
        "sign": jnp.sign,
    }
    return MappingProxyType(table)


def jax_function(expr: Expr) -> Callable[[Sequence[Any]], Any]:
    """A function of one JAX array per variable (``variables(expr)`` order) computing ``expr``.

    Constants become arrays of the first input's dtype. An op missing from
    :func:`jax_namespace` is an :class:`EngineError` naming it.
    """
    namespace = jax_namespace()
    import jax.numpy as jnp

    names = variables(expr)
    slots = {name: i for i, name in enumerate(names)}
    nodes = list(walk(expr))
    missing = sorted({n.op for n in nodes if isinstance(n, Call) and n.op not in namespace})
    if missing:
        raise EngineError(f"ops {missing} have no JAX translation in jax_namespace()")
    index = {node: i for i, node in enumerate(nodes)}

    def run(inputs: Sequence[Any]) -> Any:
        if len(inputs) != len(names):
            raise ValueError(
                f"expected {len(names)} inputs for variables {names}, got {len(inputs)}"
            )
        dtype = inputs[0].dtype if len(inputs) else jnp.float32
        values: list[Any] = []
        for node in nodes:
            if isinstance(node, Var):
                values.append(inputs[slots[node.name]])
            elif isinstance(node, Const):
                values.append(jnp.asarray(float(node.value), dtype=dtype))
            else:
                args = (values[index[a]] for a in node.args)
                values.append(namespace[node.op](*args))
        return values[-1]

    return run


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
        self._compiled: OrderedDict[tuple[Expr, str, int], Callable[[Any], Any]] = (
            OrderedDict()
        )

    def supports(self, op: str) -> bool:
        """True when :func:`jax_namespace` translates ``op``."""
        return op in jax_namespace()

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
        key = (expr, dtype, order)
        fn = self._compiled.get(key)
        if fn is None:
            fn = self._build(expr, order)
            self._compiled[key] = fn
            if len(self._compiled) > _CACHE_SIZE:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        return fn

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
