"""torch autograd as an engine under test, and the tree -> torch translator it stands on.

:func:`torch_function` turns a tree into a callable over tensors through the op table
(like sympy's ``lambdify``: a printer plus a namespace), computing the tree literally.
The finite-difference engine evaluates trees with the same function, so both engines see
exactly the same forward computation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from harness.expr import Call, Const, Expr, Var, variables, walk
from harness.ops import OPS

__all__ = ["torch_function"]

TorchFn = Callable[..., torch.Tensor]


def torch_function(
    expr: Expr, overrides: Mapping[str, TorchFn] | None = None
) -> Callable[[Sequence[torch.Tensor]], torch.Tensor]:
    """A function of one tensor per variable (in ``variables(expr)`` order) computing ``expr``.

    Constants become tensors of the first input's dtype and device. ``overrides`` maps op
    names to replacement builders (a user's ``torch.autograd.Function.apply``, say); an
    unknown name is an error rather than silently ignored.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(OPS))
    if unknown:
        raise ValueError(f"overrides for unknown ops {unknown}; known ops: {sorted(OPS)}")
    names = variables(expr)
    slots = {name: i for i, name in enumerate(names)}
    nodes = list(walk(expr))
    index = {node: i for i, node in enumerate(nodes)}
    program: list[tuple[str, object]] = []
    for node in nodes:
        if isinstance(node, Var):
            program.append(("var", slots[node.name]))
        elif isinstance(node, Const):
            program.append(("const", float(node.value)))
        else:
            assert isinstance(node, Call)
            fn = overrides.get(node.op, OPS[node.op].torch_fn)
            program.append(("call", (fn, tuple(index[a] for a in node.args))))

    def run(inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(inputs) != len(names):
            raise ValueError(f"expected {len(names)} inputs for variables {names}, got {len(inputs)}")
        like = inputs[0] if inputs else torch.zeros((), dtype=torch.float64)
        values: list[torch.Tensor] = []
        for kind, arg in program:
            if kind == "var":
                values.append(inputs[arg])  # type: ignore[index]
            elif kind == "const":
                values.append(torch.tensor(arg, dtype=like.dtype, device=like.device))
            else:
                fn, idx = arg  # type: ignore[misc]
                values.append(fn(*(values[i] for i in idx)))
        return values[-1]

    return run
