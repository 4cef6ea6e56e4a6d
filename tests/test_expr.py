"""Expression trees: exact constants, names, identity, folds, measures, printing, sympy."""

from __future__ import annotations

from fractions import Fraction

import pytest
import sympy

from harness.expr import (
    Call,
    Const,
    Expr,
    ExprError,
    Var,
    depth,
    fold,
    is_dyadic,
    size,
    subexpressions,
    to_sympy,
    to_text,
    variables,
    walk,
)

x, y = Var("x"), Var("y")


def call(op: str, *args: Expr) -> Call:
    return Call(op, args)


def c(p: int, q: int = 1) -> Const:
    return Const(Fraction(p, q))


# ---- constants -------------------------------------------------------------------------


def test_a_non_dyadic_constant_is_refused_with_a_way_out() -> None:
    with pytest.raises(ExprError, match=r"constant value=1/10 is not exactly representable"):
        Const(Fraction(1, 10))
    with pytest.raises(ExprError, match="1/10"):  # the message says how to write it instead
        Const(Fraction(1, 3))


def test_a_float_constant_is_refused_even_when_it_looks_exact() -> None:
    with pytest.raises(ExprError, match=r"constant value=0.1 must be an int or fractions"):
        Const(0.1)  # type: ignore[arg-type]
    with pytest.raises(ExprError, match="must be an int or fractions"):
        Const(0.5)  # type: ignore[arg-type]
    with pytest.raises(ExprError, match="must be an int or fractions"):
        Const(True)  # type: ignore[arg-type]


def test_dyadic_constants_are_kept_exactly() -> None:
    assert Const(3).value == Fraction(3)  # type: ignore[arg-type]  # ints are accepted
    assert isinstance(Const(3).value, Fraction)  # type: ignore[arg-type]
    assert Const(Fraction(-3, 8)).value == Fraction(-3, 8)
    assert Const(Fraction(1, 2**1074)).value == Fraction(1, 2**1074)  # smallest subnormal


def test_constants_beyond_float64_are_refused() -> None:
    with pytest.raises(ExprError, match="not exactly representable in float64"):
        Const(Fraction(2**1024))
    with pytest.raises(ExprError, match="not exactly representable in float64"):
        Const(Fraction(2**53 + 1))  # needs 54 significant bits
    with pytest.raises(ExprError, match="not exactly representable in float64"):
        Const(Fraction(1, 2**1075))


def test_is_dyadic_accepts_exactly_the_float64_dyadics() -> None:
    assert is_dyadic(Fraction(3, 8))
    assert is_dyadic(Fraction(-5))
    assert not is_dyadic(Fraction(1, 3))
    assert not is_dyadic(Fraction(1, 6))
    assert not is_dyadic(Fraction(2**1024))


# ---- names and calls -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["x", "y2", "theta_1", "X", "a" * 32])
def test_identifier_names_are_accepted(name: str) -> None:
    assert Var(name).name == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("1x", "expected a letter"),
        ("", "expected a letter"),
        ("_x", "expected a letter"),
        ("x-y", "expected a letter"),
        ("a" * 33, "expected a letter"),
        ("sin", "op name or Python keyword"),
        ("lambda", "op name or Python keyword"),
    ],
)
def test_bad_variable_names_are_refused_and_named(name: str, why: str) -> None:
    with pytest.raises(ExprError, match=why) as info:
        Var(name)
    assert f"name={name!r}" in str(info.value)


def test_a_call_checks_its_op_and_arity() -> None:
    with pytest.raises(ExprError, match=r"op='sine' is not in the op table; known: .*'sin'"):
        Call("sine", (x,))
    with pytest.raises(ExprError, match=r"op='add' takes 2 argument\(s\), got 1"):
        Call("add", (x,))
    with pytest.raises(ExprError, match="is not an expression"):
        Call("sin", (1.5,))  # type: ignore[arg-type]


# ---- identity --------------------------------------------------------------------------


def test_equal_trees_built_apart_are_equal_and_hash_alike() -> None:
    a = call("add", call("sin", x), c(3, 8))
    b = call("add", call("sin", Var("x")), Const(Fraction(6, 16)))
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    assert {a: 1}[b] == 1
    assert Const(2) == Const(Fraction(2))  # type: ignore[arg-type]


def test_different_trees_are_different() -> None:
    assert call("add", x, y) != call("add", y, x)
    assert call("sin", x) != call("cos", x)
    assert c(1) != c(-1)
    assert x != y


def test_trees_are_immutable() -> None:
    tree = call("sin", x)
    with pytest.raises(AttributeError):
        tree.op = "cos"  # type: ignore[misc]


# ---- folds and measures ----------------------------------------------------------------


def test_fold_visits_a_shared_subtree_once() -> None:
    s = call("sin", x)
    tree = call("add", s, s)
    visited: list[str] = []

    def on_call(node: Call, args: tuple[int, ...]) -> int:
        visited.append(node.op)
        return 1 + sum(args)

    assert fold(tree, lambda v: 1, lambda k: 1, on_call) == 5
    assert visited == ["sin", "add"]


def test_walk_yields_each_distinct_subtree_once_children_first() -> None:
    s = call("sin", x)
    tree = call("mul", call("add", s, y), s)
    order = list(walk(tree))
    assert order == [x, s, y, call("add", s, y), tree]
    assert subexpressions(tree) == order


def test_size_counts_repeats_and_depth_counts_levels() -> None:
    s = call("sin", x)
    assert size(call("add", s, s)) == 5
    assert depth(call("add", s, s)) == 3
    assert size(x) == 1 and depth(c(2)) == 1
    assert size(call("pow", x, c(2))) == 3


def test_variables_are_sorted_names_without_repeats() -> None:
    tree = call("add", call("mul", y, x), call("sin", y))
    assert variables(tree) == ("x", "y")
    assert variables(call("exp", c(1))) == ()


def test_deep_trees_fold_without_recursion_limits() -> None:
    tree: Expr = x
    for _ in range(5000):
        tree = call("neg", tree)
    assert size(tree) == 5001
    assert depth(tree) == 5001
    assert variables(tree) == ("x",)


# ---- printing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tree", "text"),
    [
        (call("add", x, call("mul", y, c(2))), "x + y * 2"),
        (call("mul", call("add", x, y), c(2)), "(x + y) * 2"),
        (call("sub", x, call("sub", y, c(1))), "x - (y - 1)"),
        (call("sub", call("sub", x, y), c(1)), "x - y - 1"),
        (call("div", x, call("mul", y, c(2))), "x / (y * 2)"),
        (call("mul", call("div", x, y), c(2)), "x / y * 2"),
        (call("pow", x, call("pow", y, c(2))), "x**y**2"),
        (call("pow", call("pow", x, y), c(2)), "(x**y)**2"),
        (call("neg", call("pow", x, c(2))), "-x**2"),
        (call("pow", call("neg", x), c(2)), "(-x)**2"),
        (call("pow", c(-2), c(2)), "(-2)**2"),
        (call("pow", x, c(-1)), "x**(-1)"),
        (call("neg", c(3)), "neg(3)"),
        (call("sub", x, call("neg", y)), "x - -y"),
        (call("max", x, call("sin", y)), "max(x, sin(y))"),
        (c(3, 8), "0.375"),
        (c(-1, 1024), "-0.0009765625"),
        (c(-3), "-3"),
    ],
)
def test_to_text_prints_python_syntax_with_minimal_parentheses(tree: Expr, text: str) -> None:
    assert to_text(tree) == text
    assert str(tree) == text


# ---- sympy -----------------------------------------------------------------------------


def test_to_sympy_builds_the_exact_expression() -> None:
    X = sympy.Symbol("x", real=True)
    tree = call("add", call("mul", c(3, 8), x), call("sin", x))
    assert sympy.simplify(to_sympy(tree) - (sympy.Rational(3, 8) * X + sympy.sin(X))) == 0


def test_to_sympy_may_simplify_but_the_tree_stays_literal() -> None:
    tree = call("log", call("exp", x))
    assert to_sympy(tree) == sympy.Symbol("x", real=True)
    assert size(tree) == 3
    assert to_text(tree) == "log(exp(x))"


def test_to_sympy_takes_symbols_and_a_constant_rule() -> None:
    t = sympy.Symbol("t")
    tree = call("mul", x, c(3, 8))
    out = to_sympy(tree, symbols={"x": t}, constant=lambda v: sympy.Float(float(v) * 2))
    assert out == t * sympy.Float(0.75)
