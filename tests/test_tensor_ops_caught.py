"""Wrong backward rules of the tensor ops, each right at ordinary points and wrong only at
the op's special points (a zero among prod's arguments, a tie for amax, huge entries for
logsumexp, a singular matrix for det), are caught by ``check_engine`` at its defaults, at
such a point: the special arguments (``Op.special_args``) put the points there.

Each override is a ``torch.autograd.Function`` whose forward is torch's own kernel and
whose backward is a textbook formula that breaks at the special point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from harness.check import check_engine
from harness.engines.torch_ad import TorchEngine
from harness.ops import OPS, _stacked
from harness.schema import point_items

Backward = Callable[[tuple[torch.Tensor, ...], torch.Tensor], tuple[torch.Tensor, ...]]


def with_backward(op: str, rule: Backward) -> type:
    """A Function computing ``op`` with torch's kernel and gradients ``rule(args, out)``
    (each partial, multiplied by the incoming gradient here)."""
    kernel = OPS[op].torch_fn

    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(*args: Any) -> torch.Tensor:  # type: ignore[override]
            return kernel(*args)

        @staticmethod
        def setup_context(ctx, inputs, output):  # type: ignore[no-untyped-def,override]
            ctx.save_for_backward(*inputs, output)

        @staticmethod
        def backward(ctx, grad):  # type: ignore[no-untyped-def,override]
            *args, out = ctx.saved_tensors
            return tuple(grad * p for p in rule(tuple(args), out))

    Wrong.__name__ = f"{op}_wrong"
    return Wrong


def _prod_over_x(args: tuple[torch.Tensor, ...], out: torch.Tensor) -> tuple[torch.Tensor, ...]:
    # prod / x_i: right unless x_i = 0 (0 / 0)
    return tuple(out / x for x in args)


def _first_two_over_x(args: tuple[torch.Tensor, ...], out: torch.Tensor) -> tuple[torch.Tensor, ...]:
    # cumprod's second component x0 x1: out / x_i for the first two, 0 for the rest
    return tuple(out / x if i < 2 else torch.zeros_like(x) for i, x in enumerate(args))


def _ties_multiplied(args: tuple[torch.Tensor, ...], out: torch.Tensor) -> tuple[torch.Tensor, ...]:
    # the tied maxima's share multiplied by the number of ties instead of divided by it
    v = _stacked(args)
    hits = (v == out.unsqueeze(-1)).to(v.dtype)
    count = hits.sum(-1)
    return tuple(hits[..., i] * count for i in range(len(args)))


def _naive_softmax(args: tuple[torch.Tensor, ...], out: torch.Tensor) -> tuple[torch.Tensor, ...]:
    # exp(x_i) / sum exp(x_j): right unless exp overflows (inf / inf)
    e = torch.exp(_stacked(args))
    return tuple(e[..., i] / e.sum(-1) for i in range(len(args)))


def _det_times_inverse(args: tuple[torch.Tensor, ...], out: torch.Tensor) -> tuple[torch.Tensor, ...]:
    # det(A) inv(A)^T: right unless A is singular (0 * inf)
    a, b, c, d = args
    det = a * d - b * c
    return (det * (d / det), det * (-c / det), det * (-b / det), det * (a / det))


def _det_of(p: dict[str, float]) -> float:
    return p["x"] * p["w"] - p["y"] * p["z"]  # the unit tree det2(x, y, z, w)


CASES: list[tuple[str, Backward, Callable[[dict[str, float]], bool]]] = [
    ("prod", _prod_over_x, lambda p: 0.0 in p.values()),
    ("cumprod1", _first_two_over_x, lambda p: 0.0 in p.values()),
    ("amax", _ties_multiplied, lambda p: len(set(p.values())) < len(p)),
    ("logsumexp", _naive_softmax, lambda p: max(p.values()) > 709),
    ("det2", _det_times_inverse, lambda p: _det_of(p) == 0),
]


@pytest.mark.slow
@pytest.mark.parametrize(("op", "rule", "at"), CASES, ids=[c[0] for c in CASES])
def test_a_backward_wrong_only_at_the_ops_special_points_is_caught_there(
    op: str, rule: Backward, at: Callable[[dict[str, float]], bool]
) -> None:
    engine = TorchEngine("reverse", overrides={op: with_backward(op, rule).apply})
    # the defaults but order 1 only: each rule is a first-derivative bug (an order-2
    # search that finds nothing runs all of its examples over 9-argument trees: minutes)
    result = check_engine(engine, ops=(op,), seed=17, orders=(1,))
    assert not result.ok
    first = result.failures[0]
    assert first.order == 1
    assert first.verdict in ("mismatch", "nan-mismatch", "kink-violation")
    assert at(point_items(first.point)), (op, first.point)


def test_the_wrong_rules_are_right_at_ordinary_points() -> None:
    values = (0.75, -1.5, 2.0, 1.25)
    for op, rule, _ in CASES:
        n = OPS[op].arities[-1] if op == "det2" else 3
        args = tuple(torch.tensor([v], dtype=torch.float64, requires_grad=True) for v in values[:n])
        wrong = with_backward(op, rule).apply
        got = torch.autograd.grad(wrong(*args).sum(), args)
        want = torch.autograd.grad(OPS[op].torch_fn(*args).sum(), args)
        assert all(torch.allclose(g, w, rtol=1e-15, atol=0) for g, w in zip(got, want, strict=True)), op
