"""torch autograd as an engine under test, and the tree -> torch translator it stands on.

:func:`torch_function` turns a tree into a callable over tensors through the op table
(like sympy's ``lambdify``: a printer plus a namespace), computing the tree literally.
The finite-difference engine evaluates trees with the same function, so both engines see
exactly the same forward computation.

:class:`TorchEngine` asks torch for first and second derivatives of such a callable, in
one of three modes, each a different path through torch's AD machinery:

========== ================================ ===========================================
mode       order 1                          order 2
========== ================================ ===========================================
reverse    ``torch.autograd.grad``          reverse-over-reverse: double backward with
                                            ``create_graph=True``, one row per variable
forward    ``torch.autograd.forward_ad``    forward-over-forward: ``torch.func.jvp`` of
           dual numbers, one tangent per    ``torch.func.jvp`` (``forward_ad`` levels do
           variable                         not nest), one pass per pair of variables
functional ``vmap(torch.func.grad)``        ``vmap(torch.func.hessian)``, which is
                                            forward-over-reverse (jacfwd of jacrev)
========== ================================ ===========================================

Every mode evaluates all points in one batch. Expressions are elementwise, so point ``p``'s
output depends only on point ``p``'s inputs: the gradient of the batch sum (reverse), the
directional derivative along an all-ones tangent (forward) and ``vmap`` (functional) all
give every point's derivative at once. An override that is not elementwise (it mixes
points, say by normalising over the batch) breaks that assumption and its results are
meaningless; that is the override author's responsibility.

:func:`seed_tensor_grad` reproduces the seed blog post's idiom literally
(``x = torch.tensor(values, requires_grad=True); f(x).mean().backward(); x.grad``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwad

from harness.compile import compile_tree, torch_namespace
from harness.dtypes import dtype_info
from harness.engines.base import EngineError, check_request
from harness.engines.torch_compile import BACKENDS, DEFAULT_EXAMPLES, compiled_mode
from harness.engines.torch_transforms import TRANSFORMS
from harness.expr import Call, Expr, to_text, variables, walk
from harness.ops import OPS

__all__ = [
    "EAGER_MODES", "EAGER_OF", "MODES", "REDUCTIONS", "TorchEngine", "seed_tensor_grad", "torch_function",
]

TorchFn = Callable[..., torch.Tensor]
Program = Callable[[Sequence[torch.Tensor]], torch.Tensor]

EAGER_MODES: tuple[str, ...] = ("reverse", "forward", "functional")
"""The eager AD modes (see the module docstring for what each does)."""

MODES: tuple[str, ...] = (*EAGER_MODES, *TRANSFORMS, *BACKENDS)
"""Every mode :class:`TorchEngine` runs: the eager ones, the torch.func / autograd.functional
transforms (:mod:`harness.engines.torch_transforms`) and torch.compile
(:mod:`harness.engines.torch_compile`)."""

EAGER_OF: Mapping[str, str] = MappingProxyType(
    {"functional": "reverse", "jacrev": "reverse", "jacfwd": "forward", "hessian": "reverse",
     "autograd-functional": "reverse", "compile-aot": "reverse", "compile-inductor": "reverse"}
)
"""The eager mode each transformed or compiled mode is compared with (the ``vs_eager``
column): the one computing the same derivatives the same way without the transform."""

REDUCTIONS: tuple[str, ...] = ("sum", "mean")
"""How the batch output is reduced before the backward pass (``"mean"``: reverse only)."""

# What an override (a torch.autograd.Function's apply) must provide in each mode.
_OVERRIDE_NEEDS: Mapping[str, str] = MappingProxyType(
    {
        "reverse": "a backward staticmethod (built from torch ops, for order 2)",
        "forward": (
            "a jvp staticmethod (order 1); for order 2 also setup_context (functorch-style "
            "forward without ctx) and a jvp built from torch ops"
        ),
        "functional": (
            "setup_context (functorch-style forward without ctx), backward and jvp "
            "staticmethods, and generate_vmap_rule = True or a vmap staticmethod"
        ),
    }
)


def torch_function(
    expr: Expr, overrides: Mapping[str, TorchFn] | None = None
) -> Callable[[Sequence[torch.Tensor]], torch.Tensor]:
    """A function of one tensor per variable (in ``variables(expr)`` order) computing
    ``expr`` with the op table's torch kernels (:func:`harness.compile.torch_namespace`).

    ``overrides`` maps op names to replacement builders (a user's
    ``torch.autograd.Function.apply``, say); an unknown name is an error rather than
    silently ignored.
    """
    return compile_tree(expr, torch_namespace(overrides))


# ---- the three modes: pure functions of (program, inputs) -> stacked derivatives -----------


def _grads(
    output: torch.Tensor, inputs: Sequence[torch.Tensor], *, create_graph: bool
) -> list[torch.Tensor]:
    """Gradient of ``output`` (seeded with ones) wrt each input; zeros where unconnected."""
    if not output.requires_grad:
        return [torch.zeros_like(x) for x in inputs]
    seed = torch.ones_like(output)
    found = torch.autograd.grad(
        output, inputs, seed, create_graph=create_graph, retain_graph=True, allow_unused=True
    )
    return [torch.zeros_like(x) if g is None else g for g, x in zip(found, inputs, strict=True)]


def _reverse(
    program: Program, xs: Sequence[torch.Tensor], order: int, reduction: str
) -> torch.Tensor:
    leaves = [x.detach().requires_grad_(True) for x in xs]
    y = program(leaves)
    if reduction == "mean":
        y = y.mean()  # the seed's form; each gradient comes back divided by the batch size
    first = _grads(y, leaves, create_graph=order == 2)
    if order == 1:
        return torch.stack(first, dim=-1)
    rows = [torch.stack(_grads(g, leaves, create_graph=False), dim=-1) for g in first]
    return torch.stack(rows, dim=-2)


def _tangent_of(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    tangent = fwad.unpack_dual(y).tangent
    return torch.zeros_like(like) if tangent is None else tangent


def _forward_order1(program: Program, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    columns = []
    for i, x in enumerate(xs):
        with fwad.dual_level():
            inputs = list(xs)
            inputs[i] = fwad.make_dual(x, torch.ones_like(x))
            columns.append(_tangent_of(program(inputs), x).detach().clone())
    return torch.stack(columns, dim=-1)


def _partial(fn: TorchFn, i: int) -> TorchFn:
    """``∂fn/∂x_i`` along an all-ones tangent: one forward-mode pass with ``torch.func.jvp``."""

    def derivative(*args: torch.Tensor) -> torch.Tensor:
        def along(xi: torch.Tensor) -> torch.Tensor:
            return fn(*args[:i], xi, *args[i + 1 :])

        result = torch.func.jvp(along, (args[i],), (torch.ones_like(args[i]),))
        return result[1]  # (primal output, tangent output)

    return derivative


def _forward(
    program: Program, xs: Sequence[torch.Tensor], order: int, reduction: str
) -> torch.Tensor:
    if order == 1:
        return _forward_order1(program, xs)

    def fn(*args: torch.Tensor) -> torch.Tensor:
        return program(args)

    n = len(xs)
    rows = [
        torch.stack([_partial(_partial(fn, i), j)(*xs) for j in range(n)], dim=-1)
        for i in range(n)
    ]
    return torch.stack(rows, dim=-2)


def _functional(
    program: Program, xs: Sequence[torch.Tensor], order: int, reduction: str
) -> torch.Tensor:
    def scalar(v: torch.Tensor) -> torch.Tensor:
        return program(v.unbind(0))

    transform = torch.func.grad if order == 1 else torch.func.hessian
    return torch.func.vmap(transform(scalar))(torch.stack(list(xs), dim=-1))


_MODE_FNS: Mapping[str, Callable[[Program, Sequence[torch.Tensor], int, str], torch.Tensor]] = (
    MappingProxyType(
        {"reverse": _reverse, "forward": _forward, "functional": _functional, **TRANSFORMS}
    )
)


# ---- the engine -----------------------------------------------------------------------------


class _OpFailure(Exception):
    """Raised by a guarded op builder so the engine can name the op that failed."""

    def __init__(self, op: str) -> None:
        super().__init__(op)
        self.op = op


def _guard(op: str, fn: TorchFn) -> TorchFn:
    def guarded(*args: torch.Tensor) -> torch.Tensor:
        try:
            return fn(*args)
        except (RuntimeError, NotImplementedError) as err:
            raise _OpFailure(op) from err

    return guarded


def _check_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r} is not supported; expected 'cpu', 'cuda' or 'cuda:N'")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise EngineError(
                f"device={device!r} requested but torch.cuda.is_available() is False "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
                "use device='cpu' or a machine with a CUDA build of torch and a GPU"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise EngineError(
                f"device={device!r} requested but only {count} CUDA device(s) are visible; "
                f"use an index below {count}"
            )
    return dev


class TorchEngine:
    """torch autograd as an engine under test (implements :class:`harness.engines.base.Engine`).

    ``mode`` picks the AD path (one of :data:`MODES`; see the module docstring for what
    order 2 means in each). ``device`` is ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; results
    always come back on the cpu as float64 numpy. ``overrides`` maps op names to
    replacement builders, so a user's own ``torch.autograd.Function.apply`` is what gets
    differentiated; what such a Function must provide depends on the mode:

    * reverse: ``backward`` (made of torch ops, so that double backward works for order 2);
    * forward: ``jvp`` for order 1; order 2 runs under ``torch.func``, so also the
      functorch-style ``setup_context`` (``forward`` without ``ctx``) and a ``jvp`` made of
      torch ops;
    * functional: ``setup_context``, ``backward``, ``jvp`` (for the Hessian's jacfwd) and
      ``generate_vmap_rule = True`` (or a ``vmap`` staticmethod).

    A Function that lacks what a mode needs gives an :class:`EngineError` saying so.
    Known torch bug (pytorch/pytorch#197867, seen in torch 2.11 and 2.13): nested
    ``torch.func.jvp`` through an ``autograd.Function`` returns 0 for the second
    derivative, so forward mode at order 2 reports 0 for an overridden op. The engine
    passes on what torch computes; the oracle flags it as a mismatch.

    ``reduction="mean"`` (reverse mode only) reproduces the seed's tensor form: the batch
    output is reduced with ``.mean()`` before the backward pass, so torch's own ``.grad``
    is ``f'(x)/n``; the engine returns that gradient times ``n`` (computed in float64) so
    that it is comparable with the truth, while the rounding of the ``1/n`` scaling in the
    tested dtype stays visible.
    """

    def __init__(
        self,
        mode: str = "reverse",
        *,
        device: str = "cpu",
        overrides: Mapping[str, TorchFn] | None = None,
        reduction: str = "sum",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not supported; expected one of {', '.join(MODES)}")
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"reduction={reduction!r} is not supported; expected one of {', '.join(REDUCTIONS)}"
            )
        if reduction == "mean" and mode != "reverse":
            raise ValueError(
                f"reduction='mean' models the seed's y.mean().backward(), a reverse-mode idiom; "
                f"got mode={mode!r}: use mode='reverse' or reduction='sum'"
            )
        given = dict(overrides or {})
        unknown = sorted(set(given) - set(OPS))
        if unknown:
            raise ValueError(
                f"overrides for unknown ops {unknown}; expected names from the op table: "
                f"{', '.join(sorted(OPS))}"
            )
        for op_name, fn in given.items():
            if not callable(fn):
                raise TypeError(
                    f"overrides[{op_name!r}]={fn!r} is not callable; pass a function of "
                    "tensors such as MyFunction.apply"
                )
        self._mode = mode
        self._device = _check_device(device)
        self._reduction = reduction
        self._overrides: Mapping[str, TorchFn] = MappingProxyType(given)
        name = f"torch:{mode}"
        if reduction != "sum":
            name += f"+{reduction}"
        if self._device.type != "cpu":
            name += f"@{self._device}"
        if given:
            name += "+overrides"
        self.name = name

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def reduction(self) -> str:
        return self._reduction

    @property
    def overrides(self) -> Mapping[str, TorchFn]:
        return self._overrides

    def __repr__(self) -> str:
        return (
            f"TorchEngine(mode={self._mode!r}, device={str(self._device)!r}, "
            f"overrides={sorted(self._overrides)!r}, reduction={self._reduction!r})"
        )

    def supports(self, op: str) -> bool:
        """True for every op of the op table (overrides can only replace table ops)."""
        return op in OPS

    def derivatives(
        self, expr: Expr, points: np.ndarray, *, dtype: str, order: int = 1
    ) -> np.ndarray:
        """Gradient ``(n, n_vars)`` or Hessian ``(n, n_vars, n_vars)`` of ``expr`` at ``points``.

        ``points`` follow :func:`harness.engines.base.check_request`; they are cast to
        ``dtype`` on the engine's device (exactly, since they are representable) and every
        point is computed in one batch. NaN and inf are returned as torch produces them.
        Raises :class:`EngineError` when torch cannot run the computation (an op without
        a kernel for ``dtype``, an override lacking what the mode needs).
        """
        pts = check_request(expr, points, dtype, order)
        n, n_vars = pts.shape
        shape = (n, n_vars) if order == 1 else (n, n_vars, n_vars)
        if n == 0 or n_vars == 0:
            return np.zeros(shape, dtype=np.float64)
        builders = {
            node.op: _guard(node.op, self._overrides.get(node.op, OPS[node.op].torch_fn))
            for node in walk(expr)
            if isinstance(node, Call)
        }
        program = torch_function(expr, builders)
        info = dtype_info(dtype)
        # Never run inside a caller's no_grad/inference_mode; the context managers restore
        # the caller's state on exit, so nothing global leaks.
        with torch.inference_mode(False), torch.enable_grad():
            with torch.no_grad():
                columns = torch.from_numpy(np.ascontiguousarray(pts.T))
                xs = list(columns.to(device=self._device, dtype=info.torch).unbind(0))
            try:
                # The first forward-mode call anywhere (make_dual, torch.func.jvp) imports
                # torch's jvp decompositions, which call the deprecated torch.jit.script:
                # torch's own warning, which a user of the engine cannot act on.
                with warnings.catch_warnings():
                    warnings.filterwarnings(
                        "ignore", "`torch.jit.script` is deprecated", DeprecationWarning
                    )
                    result = self._mode_fn(expr)(program, xs, order, self._reduction)
            except _OpFailure as failure:
                raise EngineError(
                    self._failure(expr, dtype, order, failure.op, failure.__cause__)
                ) from failure.__cause__
            except EngineError:
                raise
            except (RuntimeError, NotImplementedError) as err:
                raise EngineError(self._failure(expr, dtype, order, None, err)) from err
            with torch.no_grad():
                out = result.detach().to(dtype=torch.float64).cpu()
                if self._reduction == "mean":
                    out = out * n
        # force: jacfwd(jacfwd(f)) of a linear tree returns torch's ZeroTensor, which
        # .numpy() refuses without it
        return np.array(out.numpy(force=True), dtype=np.float64).reshape(shape)

    def _mode_fn(
        self, expr: Expr
    ) -> Callable[[Program, Sequence[torch.Tensor], int, str], torch.Tensor]:
        if self._mode not in BACKENDS:
            return _MODE_FNS[self._mode]
        kernels = tuple(
            (node.op, self._overrides.get(node.op, OPS[node.op].torch_fn))
            for node in walk(expr)
            if isinstance(node, Call)
        )
        return compiled_mode(self._mode, expr, kernels, _reverse)

    def eager(self) -> TorchEngine | None:
        """The engine this one's values are compared with in the ``vs_eager`` column: the
        eager mode computing the same derivatives (:data:`EAGER_OF`) on the same device
        with the same overrides; None for an eager mode."""
        if self._mode not in EAGER_OF:
            return None
        return TorchEngine(EAGER_OF[self._mode], device=str(self._device), overrides=self._overrides)

    @property
    def default_examples(self) -> int | None:
        """Examples per dtype and order a search runs unless told (None: the check's
        default); smaller for the compile modes, where compiling each tree dominates."""
        return DEFAULT_EXAMPLES.get(self._mode)

    def _failure(
        self, expr: Expr, dtype: str, order: int, op: str | None, err: BaseException | None
    ) -> str:
        ops = sorted({node.op for node in walk(expr) if isinstance(node, Call)})
        where = f"op={op!r}" if op is not None else f"one of the ops {ops}"
        message = (
            f"{self.name} could not compute order-{order} derivatives of {to_text(expr)} in "
            f"dtype={dtype} on device={str(self._device)!r}: {where} failed"
        )
        overridden = sorted(set(self._overrides) & ({op} if op is not None else set(ops)))
        if overridden:
            message += (
                f" (overridden: {overridden}; in mode={self._mode!r} an override needs "
                f"{_OVERRIDE_NEEDS.get(self._mode, _OVERRIDE_NEEDS['functional'])})"
            )
        return f"{message}. torch said: {err}"


def seed_tensor_grad(
    expr: Expr, values: Any, *, dtype: str = "float32", reduction: str = "mean"
) -> np.ndarray:
    """``x.grad`` exactly as the seed blog post gets it, as float64 numpy shaped like ``values``.

    Does ``x = torch.tensor(values, dtype=dtype, requires_grad=True)``, ``y = f(x).mean()``
    (or ``.sum()`` for ``reduction="sum"``), ``y.backward()`` and returns ``x.grad``: with
    ``"mean"`` that is ``f'(x)/x.numel()``, the value the post prints. ``values`` are rounded
    to ``dtype`` by ``torch.tensor`` as in the post. ``expr`` must have exactly one variable.
    """
    names = variables(expr)
    if len(names) != 1:
        raise ValueError(
            f"expr={to_text(expr)!r} has variables {names}; seed_tensor_grad differentiates "
            "a one-variable expression (use TorchEngine for several)"
        )
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction={reduction!r} is not supported; expected one of {', '.join(REDUCTIONS)}"
        )
    info = dtype_info(dtype)
    with torch.inference_mode(False), torch.enable_grad():
        x = torch.tensor(np.asarray(values, dtype=np.float64), dtype=info.torch, requires_grad=True)
        y = torch_function(expr)([x])
        y = y.mean() if reduction == "mean" else y.sum()
        y.backward()
    assert x.grad is not None
    return np.asarray(x.grad.to(torch.float64).numpy(), dtype=np.float64)
