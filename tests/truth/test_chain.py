"""The chain-rule programs (harness.truth.chain) against the whole-tree sympy forms.

Both are certified, so where both say ``ok`` they give the same correctly rounded
float64. They may differ in status only where sympy's automatic simplification of the
whole tree removes something the literal tree keeps, and the literal chain rule is then
the less decisive one: a tie or a jump cancelled away (max(x, x) -> x, fmod(x, x) -> 0,
sign(0) * |x| -> 0), a singular factor met by a non-strong zero (0 * log(x) -> 0 under
acos at 1), sqrt(x**2) -> |x| (kink at 0; the literal sqrt'(0) is undefined). In the
other direction, a kink's hull multiplied by an exact 0 settles to ``ok`` in the chain
rule where sympy's rearranged form keeps the hull.
"""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest

from harness.bench import random_tree
from harness.expr import Call, Const, Expr, Var, to_text, variables
from harness.truth import certify, chain
from harness.truth.chain import chain_program
from harness.truth.forms import GRADIENT, HESSIAN, Kind
from harness.truth.program import _compile, _compile_sympy

OK, UNCERTIFIED, KINK, UNDEFINED = range(4)

UNARY = (
    "relu", "abs", "floor", "sign", "sqrt", "log", "acos", "exp", "sin", "tanh", "neg",
    "sigmoid", "square", "reciprocal", "softsign", "hardtanh",
)
BINARY = (
    "add", "sub", "mul", "div", "max", "min", "pow", "copysign", "fmod", "remainder",
    "atan2", "hypot", "xlogy", "elu", "leaky_relu",
)
WIDE = ("clamp", "prod", "amax", "det2", "softplus_beta")
CONSTANTS = tuple(Fraction(c) for c in (0, 1, 2, -1, Fraction(1, 2), 3))
EXPONENTS = tuple(Fraction(c) for c in (2, 3, -1, Fraction(1, 2), Fraction(-1, 2), Fraction(3, 2), 0, 1))
SPECIAL = (0.0, 1.0, -1.0, 2.0, 0.5, -0.5, 3.0)


def _tree(rng: random.Random, n: int, names: list[str]) -> Expr:
    """A tree of about ``n`` nodes rich in kinks, jumps, domain edges and constants."""
    leaves = [Var(v) for v in names]

    def build(k: int) -> Expr:
        if k <= 1:
            return rng.choice(leaves) if rng.random() < 0.75 else Const(rng.choice(CONSTANTS))
        r = rng.random()
        if k == 2 or r < 0.4:
            return Call(rng.choice(UNARY), (build(k - 1),))
        if r < 0.45 and k >= 4:
            op = rng.choice(WIDE)
            if op == "softplus_beta":
                return Call(op, (build(k - 3), Const(Fraction(rng.choice((1, 2)))), Const(Fraction(20))))
            m = 4 if op == "det2" else 3
            return Call(op, tuple(build(max(1, (k - 1) // m)) for _ in range(m)))
        op = rng.choice(BINARY)
        if op == "pow":
            return Call(op, (build(k - 2), Const(rng.choice(EXPONENTS))))
        if op in ("elu", "leaky_relu"):
            return Call(op, (build(k - 2), Const(Fraction(rng.choice((1, 2))))))
        left = rng.randint(1, k - 2)
        return Call(op, (build(left), build(k - 1 - left)))

    while True:
        tree = build(n)
        if variables(tree):
            return tree


def _points(rng: random.Random, k: int) -> np.ndarray:
    """Points on kinks, jumps and edges (small integers, halves, ties) and at random."""
    def coordinate() -> float:
        return rng.choice(SPECIAL) if rng.random() < 0.6 else rng.uniform(-3, 3)

    rows = [[coordinate() for _ in range(k)] for _ in range(5)]
    rows.append([rng.choice(SPECIAL)] * k)
    return np.array(rows)


def _accepted(old: int, new: int, old_value: float, new_value: float) -> bool:
    """Whether the chain rule's answer may stand beside sympy's (see the module docstring)."""
    if old == new:
        return old != OK or old_value == new_value
    return (old, new) in {(OK, KINK), (OK, UNDEFINED), (KINK, UNDEFINED), (KINK, OK)}


def _differences(tree: Expr, pts: np.ndarray, kind: Kind) -> list[str]:
    old = certify.evaluate_rows(_compile_sympy(tree, "float64", kind), pts)
    new = certify.evaluate_rows(chain_program(tree, "float64", kind), pts)
    bad = []
    for (r, e), o in np.ndenumerate(old[2]):
        n = new[2][r, e]
        if not _accepted(o, n, old[0][r, e], new[0][r, e]):
            bad.append(
                f"{kind.name} of {to_text(tree)} at {pts[r].tolist()}, entry {e}: sympy "
                f"{certify.STATUSES[o]} {old[0][r, e]}, chain rule {certify.STATUSES[n]} {new[0][r, e]}"
            )
    return bad


def _cases() -> list[tuple[Expr, np.ndarray]]:
    out = []
    for seed in range(170):
        rng = random.Random(seed)
        tree = _tree(rng, rng.randint(3, 10), ["x", "y", "z"][: rng.randint(1, 3)])
        out.append((tree, _points(rng, len(variables(tree)))))
    for seed in range(140):
        rng = random.Random(1000 + seed)
        tree = random_tree(rng.randint(4, 12), seed, ("x", "y", "z")[: rng.randint(1, 3)])
        out.append((tree, _points(rng, len(variables(tree)))))
    return out


@pytest.mark.parametrize("kind", [GRADIENT, HESSIAN], ids=["gradient", "hessian"])
def test_chain_rule_programs_answer_as_the_sympy_forms_on_random_trees(kind: Kind) -> None:
    bad = [d for tree, pts in _cases() for d in _differences(tree, pts, kind)]
    assert not bad, "\n".join(bad[:20])


def _status_and_value(tree: Expr, point: list[float], kind: Kind = GRADIENT) -> list[tuple[str, float]]:
    values, _, codes, _ = certify.evaluate_rows(chain_program(tree, "float64", kind), np.array([point]))
    return [(certify.STATUSES[c], v) for c, v in zip(codes[0], values[0], strict=True)]


x, y = Var("x"), Var("y")


def test_a_variable_absent_from_a_subtree_adds_no_term() -> None:
    # d/dx (x + floor(y)) at y = 1 is 1, not FloorSpike(1) * 0
    assert _status_and_value(Call("add", (x, Call("floor", (y,)))), [0.5, 1.0])[0] == ("ok", 1.0)


def test_a_strong_zero_wins_over_an_undefined_factor() -> None:
    # d/dy sqrt(relu(y)) at y = -1: Heaviside(-1) = 0 whatever sqrt'(0) is
    assert _status_and_value(Call("sqrt", (Call("relu", (y,)),)), [-1.0]) == [("ok", 0.0)]


def test_a_constant_exponent_picks_the_power_rule() -> None:
    root = Call("pow", (x, Const(Fraction(1, 2))))
    assert _status_and_value(root, [4.0]) == [("ok", 0.25)]
    assert _status_and_value(root, [4.0], HESSIAN) == [("ok", -1 / 32)]


def test_the_literal_sqrt_of_a_square_is_undefined_at_zero_where_sympy_sees_abs() -> None:
    root = Call("sqrt", (Call("square", (x,)),))
    old = certify.evaluate_rows(_compile_sympy(root, "float64", GRADIENT), np.array([[0.0]]))
    assert certify.STATUSES[old[2][0, 0]] == "kink"
    assert _status_and_value(root, [0.0])[0][0] == "undefined"


def test_hessian_entries_are_the_upper_triangle_row_by_row() -> None:
    # f = x**2 * y**3 at (1, 2): f_xx = 2 y**3, f_xy = 6 x y**2, f_yy = 6 x**2 y
    root = Call("mul", (Call("square", (x,)), Call("pow", (y, Const(Fraction(3))))))
    assert [v for _, v in _status_and_value(root, [1.0, 2.0], HESSIAN)] == [16.0, 24.0, 12.0]


def test_an_op_sympy_cannot_template_falls_back_to_the_sympy_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise ValueError("sympy refuses")

    monkeypatch.setattr(chain, "template", refuse)
    root = Call("log", (Call("mul", (x, y)),))
    pts = np.array([[2.0, 3.0]])
    got = certify.evaluate_rows(_compile(root, "float64", GRADIENT), pts)[0]
    assert got.tolist() == [[0.5, 1 / 3]]


def test_kinds_other_than_gradient_and_hessian_are_refused() -> None:
    with pytest.raises(ValueError, match="gradient and hessian"):
        chain_program(x, "float64", Kind("values", 0))


def test_structural_zero_entries_are_exact_zeros() -> None:
    # x * 0 + sin(y): f_xx and f_xy have no term at all, f_yy = -sin(y)
    root = Call("add", (Call("mul", (x, Const(Fraction(0)))), Call("sin", (y,))))
    assert _status_and_value(root, [1.0, 0.0], HESSIAN) == [("ok", 0.0), ("ok", 0.0), ("ok", 0.0)]
