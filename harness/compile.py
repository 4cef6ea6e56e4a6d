"""The one tree compiler: a tree and a namespace of op kernels become a function over arrays.

Every place that computes a tree literally (the torch engines, JAX, the rounding model's
node values, the generator's validity filter, the parser's constant folding and the finite
differences) goes through :func:`compile_tree`, so they all compute the same thing: each
node once, children before parents, constants in the inputs' dtype and device.

A :class:`Namespace` says how one array library computes: its kernel for each op (from the
op table's rows), how it makes a constant, and whether an op's constant parameters (the
exponent of ``pow``, its ``const_args``) go in as Python numbers. torch takes them as
numbers so that it runs its scalar-exponent path, whose complex version keeps the
derivative at negative bases (the tensor path goes through log's branch cut, which breaks
complex-step differentiation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch

from harness.expr import Call, Const, Expr, Var, variables, walk
from harness.ops import OPS

__all__ = ["Kernel", "Namespace", "compile_tree", "kernel_key", "torch_namespace"]

Kernel = Callable[..., Any]
"""An op's implementation in one array library: the op's arguments -> its value."""


@dataclass(frozen=True)
class Namespace:
    """How one array library computes trees.

    ``kernels`` maps op names to kernels; ``constant(value, like)`` makes a constant of
    ``like``'s dtype and device; ``default_like()`` is that model when a tree has no
    variables; ``scalar_params`` passes constants in an op's ``const_args`` positions as
    Python numbers.
    """

    name: str
    kernels: Mapping[str, Kernel]
    constant: Callable[[float, Any], Any]
    default_like: Callable[[], Any]
    scalar_params: bool = False


_Instruction = Callable[[Sequence[Any], list[Any], Any], Any]


def _instruction(
    node: Expr, index: Mapping[Expr, int], slots: Mapping[str, int], namespace: Namespace
) -> _Instruction:
    if isinstance(node, Var):
        slot = slots[node.name]
        return lambda inputs, values, like: inputs[slot]
    if isinstance(node, Const):
        value, constant = float(node.value), namespace.constant
        return lambda inputs, values, like: constant(value, like)
    assert isinstance(node, Call)
    fn = namespace.kernels[node.op]
    params = OPS[node.op].const_args if namespace.scalar_params else ()
    if any(k in params and isinstance(a, Const) for k, a in enumerate(node.args)):
        # ints index computed values; floats are constant parameters passed as numbers
        args: tuple[int | float, ...] = tuple(
            float(a.value) if k in params and isinstance(a, Const) else index[a]
            for k, a in enumerate(node.args)
        )
        return lambda inputs, values, like: fn(*(values[a] if isinstance(a, int) else a for a in args))
    positions = tuple(index[a] for a in node.args)
    return lambda inputs, values, like: fn(*(values[i] for i in positions))


def compile_tree(
    expr: Expr, namespace: Namespace, *, every_node: bool = False
) -> Callable[..., Any]:
    """A function of one array per variable (``variables(expr)`` order) computing ``expr``.

    Constants take the dtype and device of the first input, or of the function's optional
    second argument ``like`` (needed for a tree without variables).
    With ``every_node`` it returns the value of every node instead, in ``walk(expr)``
    order (children before parents), for callers that look at intermediate values. An op
    the namespace has no kernel for is a ``KeyError`` naming the op and the namespace.
    """
    names = variables(expr)
    slots = {name: i for i, name in enumerate(names)}
    nodes = list(walk(expr))
    missing = sorted({n.op for n in nodes if isinstance(n, Call) and n.op not in namespace.kernels})
    if missing:
        raise KeyError(f"ops {missing} have no {namespace.name} kernel")
    index = {node: i for i, node in enumerate(nodes)}
    program = [_instruction(node, index, slots, namespace) for node in nodes]

    def run(inputs: Sequence[Any], like: Any = None) -> Any:
        if len(inputs) != len(names):
            raise ValueError(f"expected {len(names)} inputs for variables {names}, got {len(inputs)}")
        if like is None:
            like = inputs[0] if len(inputs) else namespace.default_like()
        values: list[Any] = []
        for step in program:
            values.append(step(inputs, values, like))
        return values if every_node else values[-1]

    return run


def _torch_constant(value: float, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(value, dtype=like.dtype, device=like.device)


def _torch_default_like() -> torch.Tensor:
    return torch.zeros((), dtype=torch.float64)


def torch_namespace(overrides: Mapping[str, Kernel] | None = None) -> Namespace:
    """torch's namespace: each op's ``torch_fn`` from the op table as it is now, with
    ``overrides`` (op name -> replacement, e.g. a ``torch.autograd.Function.apply``)
    swapped in. An override of an op the table does not have is a ``ValueError``."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(OPS))
    if unknown:
        raise ValueError(f"overrides for unknown ops {unknown}; known ops: {sorted(OPS)}")
    kernels = {name: overrides.get(name, row.torch_fn) for name, row in OPS.items()}
    return Namespace("torch", MappingProxyType(kernels), _torch_constant, _torch_default_like,
                     scalar_params=True)


def kernel_key(expr: Expr, namespace: Namespace) -> tuple[tuple[str, Kernel], ...]:
    """The kernels that compute ``expr``, for keys of remembered values: a value computed
    with one op table is never served for a patched or overridden one."""
    return tuple((n.op, namespace.kernels[n.op]) for n in walk(expr) if isinstance(n, Call))
