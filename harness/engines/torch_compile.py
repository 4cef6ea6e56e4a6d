"""torch.compile as a derivative path: the tree's graph traced by dynamo and compiled.

Two backends are modes of :class:`~harness.engines.torch_ad.TorchEngine`:

* ``compile-aot`` (backend ``aot_eager``): AOTAutograd traces forward and backward and
  applies its decompositions, then runs the graphs eagerly: checks the decompositions.
* ``compile-inductor`` (backend ``inductor``): the graphs become generated C++ (CPU) or
  Triton (CUDA) kernels: checks the code generator too. Its first graph costs tens of
  seconds on a CPU, hence the cache below and the smaller search budget
  (:data:`DEFAULT_EXAMPLES`).

Order 1 is the common training pattern: the compiled forward, then ``torch.autograd.grad``
through the backward graph AOTAutograd compiled. Order 2 compiles
``vmap(jacrev(grad(f)))`` whole (reverse over reverse), as torch.compile does not
support double backward through a compiled forward. Graphs must compile whole
(``fullgraph=True``): a graph break would run part of the tree eagerly and the check would
no longer be about the compiler, so it is an :class:`EngineError` (the row is skipped).
A compiler crash on a computation that runs eagerly is a finding, not an unsupported
request: it raises :class:`CompileFailure`, which the check turns into an ``error`` row.

Compiled code is cached per *tree shape* (:func:`tree_shape`: the tree with variables
replaced by their input slots, the kernels that compute it, backend, order), so
``sin(x)`` and ``sin(y)`` share one compilation, and batches are padded to a power of two
(at least 8 points, with copies of the first point, which the elementwise tree leaves
alone) so that a search shrinking its batch does not recompile for every size. Each shape
gets its own code object (dynamo keeps compiled code per code object, and falls back to
eager after a few recompilations of one).
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch

from harness.compile import Kernel
from harness.engines.base import EngineError
from harness.expr import Call, Const, Expr, Var, fold, variables
from harness.memo import Memo

__all__ = ["BACKENDS", "DEFAULT_EXAMPLES", "CompileFailure", "compiled_mode", "tree_shape"]

Program = Callable[[Sequence[torch.Tensor]], torch.Tensor]
ModeFn = Callable[[Program, Sequence[torch.Tensor], int, str], torch.Tensor]

BACKENDS: dict[str, str] = {"compile-aot": "aot_eager", "compile-inductor": "inductor"}
"""torch.compile backend of each compile mode."""

DEFAULT_EXAMPLES: dict[str, int] = {"compile-aot": 50, "compile-inductor": 10}
"""Examples per dtype and order that ``check`` searches by default for each compile mode
(compiling dominates: about a second per new tree shape with aot_eager, tens with inductor)."""

_MIN_BATCH = 8
_CACHE: Memo[Callable[..., torch.Tensor]] = Memo(256)


class CompileFailure(Exception):
    """torch.compile crashed on a computation that torch runs eagerly: a compiler bug.

    Not a ``RuntimeError``, which the engine reads as "torch cannot do this" (skipped):
    this one reaches the check as an exception, an ``error`` row."""


def tree_shape(expr: Expr) -> Hashable:
    """``expr`` with each variable replaced by its input slot: trees that compile alike."""
    slots = {name: i for i, name in enumerate(variables(expr))}

    def var(v: Var) -> Hashable:
        return ("slot", slots[v.name])

    def const(c: Const) -> Hashable:
        return ("const", c.value)

    def call(node: Call, args: tuple[Hashable, ...]) -> Hashable:
        return (node.op, args)

    return fold(expr, var, const, call)


def _padded(n: int) -> int:
    size = _MIN_BATCH
    while size < n:
        size *= 2
    return size


def _fresh(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
    """``fn`` with a code object of its own, so dynamo's per-code cache is per tree shape."""
    code = fn.__code__.replace(co_name=f"{fn.__name__}_{label}")
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)


def _build(program: Program, backend: str, order: int, label: str) -> Callable[..., torch.Tensor]:
    if order == 1:

        def forward(*xs: torch.Tensor) -> torch.Tensor:
            return program(xs)

        target = _fresh(forward, label)
    else:

        def scalar(v: torch.Tensor) -> torch.Tensor:
            return program(v.unbind(0))

        hessians = torch.func.vmap(torch.func.jacrev(torch.func.grad(scalar)))

        def second(stacked: torch.Tensor) -> torch.Tensor:
            return hessians(stacked)

        target = _fresh(second, label)
    return torch.compile(target, backend=backend, fullgraph=True, dynamic=False)  # type: ignore[no-any-return]


def _run(compiled: Callable[..., torch.Tensor], xs: Sequence[torch.Tensor], order: int) -> torch.Tensor:
    if order == 1:
        leaves = [x.detach().requires_grad_(True) for x in xs]
        y = compiled(*leaves)
        if not y.requires_grad:
            return torch.zeros(len(xs[0]), len(xs), dtype=xs[0].dtype, device=xs[0].device)
        found = torch.autograd.grad(y, leaves, torch.ones_like(y), allow_unused=True)
        grads = [torch.zeros_like(x) if g is None else g for g, x in zip(found, leaves, strict=True)]
        return torch.stack(grads, dim=-1)
    return compiled(torch.stack(list(xs), dim=-1))


def _unsupported(err: BaseException) -> bool:
    """True for what torch.compile declines to do, as opposed to crashing while doing it."""
    from torch._dynamo.exc import Unsupported

    return isinstance(err, Unsupported) or "not currently support" in str(err)


def compiled_mode(mode: str, expr: Expr, kernels: Sequence[tuple[str, Kernel]], eager: ModeFn) -> ModeFn:
    """The mode function of compile mode ``mode`` for ``expr`` computed with ``kernels``
    (:func:`harness.compile.kernel_key`); ``eager`` is the same derivative uncompiled,
    run when compiling fails to tell a compiler crash from an unsupported computation."""
    backend = BACKENDS[mode]

    def run(program: Program, xs: Sequence[torch.Tensor], order: int, reduction: str) -> torch.Tensor:
        key = (backend, order, tree_shape(expr), tuple(kernels))
        label = f"{len(_CACHE)}_{abs(hash(key)) % 10**8}"
        compiled = _CACHE.get(key, lambda: _build(program, backend, order, label))
        n = len(xs[0])
        pad = _padded(n) - n
        padded = [torch.cat([x, x[:1].expand(pad)]) if pad else x for x in xs]
        try:
            with warnings.catch_warnings():
                # torch's own deprecation notices from inside the compiler, which a user
                # of the engine cannot act on
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                return _run(compiled, padded, order)[:n]
        except EngineError:
            raise
        except Exception as err:  # noqa: BLE001 - sorted below into unsupported / crash
            if _unsupported(err):
                raise EngineError(
                    f"torch.compile(backend={backend!r}) does not support this computation "
                    f"(order {order}): {type(err).__name__}: {str(err).splitlines()[0][:300]}"
                ) from err
            try:
                eager(program, xs, order, reduction)
            except Exception:  # noqa: BLE001 - eager fails too: not the compiler's doing
                raise err from None
            raise CompileFailure(
                f"torch.compile(backend={backend!r}) crashed at order {order} where eager torch "
                f"computes it: {type(err).__name__}: {str(err).splitlines()[0][:300]}"
            ) from err

    return run

