"""torch.func transforms and ``torch.autograd.functional`` as derivative paths of a tree.

Each function here takes a *program* (a tree compiled by :func:`harness.compile.compile_tree`:
one tensor per variable -> the tree's value, elementwise over a batch of points), the
inputs (one 1-D tensor per variable) and the order, and returns the stacked derivatives,
shape ``(n, n_vars)`` or ``(n, n_vars, n_vars)``. :class:`~harness.engines.torch_ad.TorchEngine`
names them as modes:

==================== ======================================= =================================
mode                 order 1                                 order 2
==================== ======================================= =================================
jacrev               ``vmap(jacrev(f))`` per point           ``vmap(jacrev(jacrev(f)))``
                                                             (reverse over reverse)
jacfwd               ``vmap(jacfwd(f))``                     ``vmap(jacfwd(jacfwd(f)))``
                                                             (forward over forward)
hessian              not a first-derivative transform:       ``torch.func.hessian`` of the
                     :class:`EngineError`                    batch sum, no vmap; the Hessian
                                                             of point p is its (p, p) block
autograd-functional  ``torch.autograd.functional.jacobian``  ``torch.autograd.functional
                     ``(vectorize=True)`` of the batch       .hessian(vectorize=True)`` of the
                     function: the diagonal                  batch sum: the (p, p) blocks
==================== ======================================= =================================

The batch-level transforms (hessian, autograd-functional) build a matrix over points, of
which only the diagonal is wanted, because the tree is elementwise: point p's value does
not depend on point q's inputs. They work on chunks of :data:`CHUNK` points so that the
matrix stays small whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from harness.engines.base import EngineError

__all__ = ["CHUNK", "TRANSFORMS"]

Program = Callable[[Sequence[torch.Tensor]], torch.Tensor]
ModeFn = Callable[[Program, Sequence[torch.Tensor], int, str], torch.Tensor]

CHUNK = 16
"""Points per batch-level Jacobian or Hessian (their cost grows with its square)."""


def _per_point(program: Program) -> Callable[[torch.Tensor], torch.Tensor]:
    def scalar(v: torch.Tensor) -> torch.Tensor:
        return program(v.unbind(0))

    return scalar


def _jacrev(program: Program, xs: Sequence[torch.Tensor], order: int, reduction: str) -> torch.Tensor:
    f = _per_point(program)
    d = torch.func.jacrev(f) if order == 1 else torch.func.jacrev(torch.func.jacrev(f))
    return torch.func.vmap(d)(torch.stack(list(xs), dim=-1))


def _jacfwd(program: Program, xs: Sequence[torch.Tensor], order: int, reduction: str) -> torch.Tensor:
    f = _per_point(program)
    d = torch.func.jacfwd(f) if order == 1 else torch.func.jacfwd(torch.func.jacfwd(f))
    return torch.func.vmap(d)(torch.stack(list(xs), dim=-1))


def _chunks(xs: Sequence[torch.Tensor]) -> list[list[torch.Tensor]]:
    n = xs[0].shape[0]
    return [[x[start : start + CHUNK] for x in xs] for start in range(0, n, CHUNK)]


def _hessian(program: Program, xs: Sequence[torch.Tensor], order: int, reduction: str) -> torch.Tensor:
    if order == 1:
        raise EngineError(
            "torch:hessian computes second derivatives only (order=1 requested); "
            "use order 2, or torch:jacrev / torch:jacfwd for the gradient"
        )

    def batch_sum(matrix: torch.Tensor) -> torch.Tensor:
        return program(matrix.unbind(-1)).sum()

    blocks = []
    for chunk in _chunks(xs):
        h = torch.func.hessian(batch_sum)(torch.stack(chunk, dim=-1))  # (m, k, m, k)
        m = h.shape[0]
        idx = torch.arange(m, device=h.device)
        blocks.append(h[idx, :, idx, :])  # (m, k, k): each point's own block
    return torch.cat(blocks, dim=0)


def _autograd_functional(
    program: Program, xs: Sequence[torch.Tensor], order: int, reduction: str
) -> torch.Tensor:
    def batch(*args: torch.Tensor) -> torch.Tensor:
        return program(args)

    def batch_sum(*args: torch.Tensor) -> torch.Tensor:
        return program(args).sum()

    out = []
    for chunk in _chunks(xs):
        inputs = tuple(chunk)
        if order == 1:
            jac = torch.autograd.functional.jacobian(batch, inputs, vectorize=True)
            out.append(torch.stack([torch.diagonal(j) for j in jac], dim=-1))
        else:
            hes = torch.autograd.functional.hessian(batch_sum, inputs, vectorize=True)
            rows = [torch.stack([torch.diagonal(h_ij) for h_ij in row], dim=-1) for row in hes]
            out.append(torch.stack(rows, dim=-2))
    return torch.cat(out, dim=0)


TRANSFORMS: dict[str, ModeFn] = {
    "jacrev": _jacrev,
    "jacfwd": _jacfwd,
    "hessian": _hessian,
    "autograd-functional": _autograd_functional,
}
"""torch.func / autograd.functional modes by name (see the module docstring)."""
