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

import numpy as np
import pytest
import torch

from harness.check import check_engine, compare
from harness.engines.torch_ad import TorchEngine
from harness.expr import Call, Var
from harness.ops import OPS, _square, _stacked, _sym3
from harness.parser import parse
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


def _guarded_cholesky(args: tuple[torch.Tensor, ...], out: torch.Tensor) -> tuple[torch.Tensor, ...]:
    # every partial of L22 has the factor 1 / (2 L22) (L22 = sqrt(det(A) / det(A[:2, :2])));
    # a "safe" backward divides by max(L22, 1e-6) instead: torch's own partials times
    # L22 / max(L22, 1e-6), right unless A is nearly singular
    with torch.enable_grad():
        xs = [x.detach().requires_grad_() for x in args]
        partials = torch.autograd.grad(OPS["cholesky3_22"].torch_fn(*xs).sum(), xs)
    return tuple(p * out / torch.clamp(out, min=1e-6) for p in partials)


_GUARDED = with_backward("cholesky3_22", _guarded_cholesky)

@pytest.mark.slow
def test_a_guarded_cholesky_backward_is_caught_at_a_nearly_singular_matrix() -> None:
    """The guard changes nothing where L22 > 1e-6; the special points put a matrix whose
    last pivot is 32 eps (L22 = 8.4e-8 in float64) in front of it."""
    engine = TorchEngine("reverse", overrides={"cholesky3_22": _GUARDED.apply})
    result = check_engine(engine, ops=("cholesky3_22",), seed=17, orders=(1,))
    assert not result.ok
    first = result.failures[0]
    assert first.verdict == "mismatch" and first.dtype == "float64"
    p = point_items(first.point)
    tree = parse(first.expr)  # cholesky3_22 of variables, shrunk: some may repeat
    assert isinstance(tree, Call) and all(isinstance(arg, Var) for arg in tree.args), first.expr
    a, b, c, d, e, f = (p[arg.name] for arg in tree.args)  # type: ignore[attr-defined]
    det = a * (d * f - e * e) - b * (b * f - c * e) + c * (b * e - c * d)
    assert 0 < det / (a * d - b * b) < 1e-12, first.point


def test_the_guarded_cholesky_backward_is_right_where_the_matrix_is_well_conditioned() -> None:
    engine = TorchEngine("reverse", overrides={"cholesky3_22": _GUARDED.apply})
    pts = np.array(
        [[4.0, 1.0, -1.0, 3.0, 0.5, 2.0], [2.0, 1.0, 1.0, 2.0, 1.0, 1.5], [1.5, -0.25, 0.5, 2.25, 0.75, 3.0]]
    )
    frame = compare(engine, parse("cholesky3_22(a, b, c, d, e, f)"), pts, dtype="float64", order=1)
    assert (frame["verdict"] == "ok").all(), frame[["point", "var", "value", "truth", "verdict"]]


# Rules wrong at ordinary points too, one per op added with dot, trace and the 3x3 inverse
# and solve: each textbook slip, next to the right rule written the same way. The right
# rules passing the same search shows the wrong ones are caught for their error, not for
# being overrides.


def _dot_halves_swapped(args: tuple[torch.Tensor, ...], out: torch.Tensor) -> tuple[torch.Tensor, ...]:
    # d (x . y) / d x_i = y_i, taken as x_i: the halves swapped
    return args


def _dot_right(args: tuple[torch.Tensor, ...], out: torch.Tensor) -> tuple[torch.Tensor, ...]:
    n = len(args) // 2
    return args[n:] + args[:n]


def _trace_rule(off_diagonal: bool) -> Backward:
    def rule(args: tuple[torch.Tensor, ...], out: torch.Tensor) -> tuple[torch.Tensor, ...]:
        k = 2 if len(args) == 4 else 3
        # the identity, row by row; the wrong rule also counts entry (0, 1)
        ones = {i * (k + 1) for i in range(k)} | ({1} if off_diagonal else set())
        return tuple(torch.ones_like(a) if i in ones else torch.zeros_like(a) for i, a in enumerate(args))

    return rule


def _inverse(args: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return torch.linalg.inv(_square(args[:9], 3))


def _inv3_rule(signed: bool) -> Backward:
    def rule(args: tuple[torch.Tensor, ...], out: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # d inv[0, 1] / d A_ij = -inv[0, i] inv[j, 1]; the wrong rule drops the sign of
        # the entries where i + j is odd (a cofactor's checkerboard sign forgotten)
        inv = _inverse(args)
        signs = [1 if signed or sum(divmod(k, 3)) % 2 == 0 else -1 for k in range(9)]
        return tuple(-s * inv[..., 0, k // 3] * inv[..., k % 3, 1] for k, s in enumerate(signs))

    return rule


def _solve3_rule(transposed: bool) -> Backward:
    def rule(args: tuple[torch.Tensor, ...], out: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # x = A^-1 r: d x0 / d A_ij = -inv[0, i] x_j, d x0 / d r_i = inv[0, i]; the wrong
        # rule takes -inv[0, j] x_i (A for A^T in the backward's solve)
        inv = _inverse(args)
        x = (inv @ _stacked(args[9:]).unsqueeze(-1)).squeeze(-1)
        entries = []
        for k in range(9):
            i, j = divmod(k, 3)
            entries.append(-inv[..., 0, j] * x[..., i] if transposed else -inv[..., 0, i] * x[..., j])
        return tuple(entries) + tuple(inv[..., 0, i] for i in range(3))

    return rule


EVERYWHERE: list[tuple[str, Backward, Backward]] = [
    # op, a wrong rule, the right rule in the same form
    ("dot", _dot_halves_swapped, _dot_right),
    ("trace2", _trace_rule(off_diagonal=True), _trace_rule(off_diagonal=False)),
    ("trace3", _trace_rule(off_diagonal=True), _trace_rule(off_diagonal=False)),
    ("inv3_01", _inv3_rule(signed=False), _inv3_rule(signed=True)),
    ("solve3_0", _solve3_rule(transposed=True), _solve3_rule(transposed=False)),
]


@pytest.mark.slow
@pytest.mark.parametrize(("op", "wrong", "right"), EVERYWHERE, ids=[c[0] for c in EVERYWHERE])
def test_a_wrong_backward_is_caught_and_the_right_one_in_its_form_passes(
    op: str, wrong: Backward, right: Backward
) -> None:
    def search(rule: Backward) -> Any:
        engine = TorchEngine("reverse", overrides={op: with_backward(op, rule).apply})
        return check_engine(engine, ops=(op,), seed=17, orders=(1,))

    caught = search(wrong)
    assert not caught.ok
    assert caught.failures[0].verdict == "mismatch"
    passed = search(right)
    assert passed.ok, passed.failures[:1]


@pytest.mark.parametrize(("op", "wrong", "right"), EVERYWHERE, ids=[c[0] for c in EVERYWHERE])
def test_the_right_rules_are_torchs_and_the_wrong_ones_differ(
    op: str, wrong: Backward, right: Backward
) -> None:
    values = (0.75, -1.5, 2.0, 1.25, -0.5, 3.0, 0.25, -2.0, 1.5, 1.0, 2.0, -1.0)
    n = 4 if op == "dot" else OPS[op].arity
    args = tuple(torch.tensor([v], dtype=torch.float64, requires_grad=True) for v in values[:n])
    want = torch.autograd.grad(OPS[op].torch_fn(*args).sum(), args)
    got = torch.autograd.grad(with_backward(op, right).apply(*args).sum(), args)
    assert all(torch.allclose(g, w, rtol=1e-13, atol=1e-15) for g, w in zip(got, want, strict=True)), op
    bad = torch.autograd.grad(with_backward(op, wrong).apply(*args).sum(), args)
    assert not all(torch.allclose(g, w, rtol=1e-6, atol=0) for g, w in zip(bad, want, strict=True)), op


def _sylvester_projector(args: tuple[torch.Tensor, ...], out: torch.Tensor) -> tuple[torch.Tensor, ...]:
    # d lambda / d A is the projector on lambda's eigenvector; Sylvester's formula writes it
    # (A - l0 I)(A - l1 I) / ((lambda - l0)(lambda - l1)) with the other two eigenvalues:
    # right where they are well apart, cancelling to noise as the two largest meet
    a = _sym3(*args)
    low = torch.linalg.eigvalsh(a)[..., :2]
    eye = torch.eye(3, dtype=a.dtype)
    p = (a - low[..., 0, None, None] * eye) @ (a - low[..., 1, None, None] * eye)
    p = p / ((out - low[..., 0]) * (out - low[..., 1]))[..., None, None]
    return (p[..., 0, 0], 2 * p[..., 0, 1], 2 * p[..., 0, 2], p[..., 1, 1], 2 * p[..., 1, 2], p[..., 2, 2])


_SYLVESTER = with_backward("eigvalsh3_max", _sylvester_projector)


@pytest.mark.slow
def test_a_spectral_projector_backward_is_caught_where_the_entries_pass_sqrt_max() -> None:
    """Sylvester's formula squares the matrix: past sqrt(max) it is inf / inf, where the
    derivative is an eigenvector's products, at most 1. (Where the two largest eigenvalues
    nearly meet it loses about |A| / gap ulps, no more than the eigenvector's own
    conditioning allows any method, so it is not wrong there.)"""
    engine = TorchEngine("reverse", overrides={"eigvalsh3_max": _SYLVESTER.apply})
    result = check_engine(engine, ops=("eigvalsh3_max",), seed=17, orders=(1,))
    assert not result.ok
    first = result.failures[0]
    assert first.verdict in ("mismatch", "nan-mismatch")
    p = point_items(first.point)
    tree = parse(first.expr)  # eigvalsh3_max of variables, shrunk: some may repeat
    assert isinstance(tree, Call) and all(isinstance(arg, Var) for arg in tree.args), first.expr
    entries = np.array([p[arg.name] for arg in tree.args])  # type: ignore[attr-defined]
    assert np.abs(entries).max() > 1e150, first.point


def test_the_spectral_projector_backward_is_nan_at_huge_entries_where_torchs_is_right() -> None:
    pts = np.array([[1e155, 0.5, 0.25, -1e155, 1.0, 2.0]])
    expr = parse("eigvalsh3_max(a, b, c, d, e, f)")
    engine = TorchEngine("reverse", overrides={"eigvalsh3_max": _SYLVESTER.apply})
    wrong = compare(engine, expr, pts, dtype="float64", order=1)
    assert (wrong["verdict"] == "nan-mismatch").any(), wrong[["var", "value", "truth", "verdict"]]
    right = compare(TorchEngine("reverse"), expr, pts, dtype="float64", order=1)
    assert (right["verdict"] == "ok").all(), right[["var", "value", "truth", "verdict"]]


def test_the_spectral_projector_backward_is_right_where_the_eigenvalues_are_apart() -> None:
    engine = TorchEngine("reverse", overrides={"eigvalsh3_max": _SYLVESTER.apply})
    pts = np.array(
        [[4.0, 1.0, -1.0, 3.0, 0.5, 2.0], [2.0, 1.0, 1.0, 2.0, 1.0, 1.5], [1.5, -0.25, 0.5, -2.25, 0.75, 3.0]]
    )
    frame = compare(engine, parse("eigvalsh3_max(a, b, c, d, e, f)"), pts, dtype="float64", order=1)
    assert (frame["verdict"] == "ok").all(), frame[["point", "var", "value", "truth", "verdict"]]
