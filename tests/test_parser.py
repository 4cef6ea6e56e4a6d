"""Tests for harness.parser: valid text gives hand-written trees, printed trees read back,
and hostile or malformed text is refused quickly with a clear error, without running."""

from __future__ import annotations

import ast
import builtins
import os
import pickle
import sys
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import sympy

from harness.expr import Call, Const, Expr, Var, depth, size, to_text
from harness.ops import OPS
from harness.parser import (
    MAX_CONST_EXPONENT,
    MAX_DEPTH,
    MAX_NODES,
    MAX_TEXT_LENGTH,
    ParseError,
    parse,
)

x, y, z = Var("x"), Var("y"), Var("z")


def c(value: int | Fraction) -> Const:
    return Const(Fraction(value))


def call(op: str, *args: Expr) -> Call:
    return Call(op, args)


# ---- valid text ---------------------------------------------------------------------------

VALID: list[tuple[str, Expr]] = [
    ("x", x),
    ("  x\t", x),
    ("\n  x", x),
    ("3", c(3)),
    ("0", c(0)),
    ("0.375", c(Fraction(3, 8))),
    ("1e3", c(1000)),
    ("2.5e-1", c(Fraction(1, 4))),
    (".5", c(Fraction(1, 2))),
    ("1_024", c(1024)),
    ("0x10", c(16)),
    ("-0.0009765625", c(Fraction(-1, 1024))),
    # 0.1 rounded to float64, written out exactly: dyadic, so accepted as that value
    ("0.1000000000000000055511151231257827021181583404541015625", Const(Fraction(0.1))),
    ("-3", c(-3)),
    ("- 3", c(-3)),
    ("-(3)", call("neg", c(3))),
    ("neg(3)", call("neg", c(3))),
    ("--3", call("neg", c(-3))),
    ("+3", c(3)),
    ("+x", x),
    ("+-3", c(-3)),
    ("-+3", call("neg", c(3))),
    ("-x", call("neg", x)),
    ("-x**2", call("neg", call("pow", x, c(2)))),
    ("-2**2", call("neg", call("pow", c(2), c(2)))),
    ("(-2)**2", call("pow", c(-2), c(2))),
    ("2**-1", call("pow", c(2), c(-1))),
    ("x**-y", call("pow", x, call("neg", y))),
    ("x**y**z", call("pow", x, call("pow", y, z))),
    ("(x**y)**z", call("pow", call("pow", x, y), z)),
    ("x - y - z", call("sub", call("sub", x, y), z)),
    ("x - (y - z)", call("sub", x, call("sub", y, z))),
    ("x / y / z", call("div", call("div", x, y), z)),
    ("x / (y * z)", call("div", x, call("mul", y, z))),
    ("x + y*z", call("add", x, call("mul", y, z))),
    ("(x + y)*z", call("mul", call("add", x, y), z)),
    ("x*-y", call("mul", x, call("neg", y))),
    ("-x * y", call("mul", call("neg", x), y)),
    ("x - -3", call("sub", x, c(-3))),
    ("-1/1024", call("div", c(-1), c(1024))),
    ("add(x, y)", call("add", x, y)),
    ("max(x, -1)", call("max", x, c(-1))),
    ("sin(cos(x))", call("sin", call("cos", x))),
    (
        "sin( x )**2 + 0.5*y",
        call("add", call("pow", call("sin", x), c(2)), call("mul", c(Fraction(1, 2)), y)),
    ),
    ("(x +\n y)", call("add", x, y)),
    ("2**53 + 1", call("add", call("pow", c(2), c(53)), c(1))),
    ("x**64", call("pow", x, c(64))),
    ("x**-64", call("pow", x, c(-64))),
]


@pytest.mark.parametrize(("text", "tree"), VALID, ids=[t for t, _ in VALID])
def test_valid_text_gives_the_hand_written_tree(text: str, tree: Expr) -> None:
    assert parse(text) == tree


def test_every_op_can_be_written_as_a_call() -> None:
    args = tuple(Var(f"v{i:02d}") for i in range(12))
    for name, row in OPS.items():
        for n in row.arities:
            text = f"{name}({', '.join(a.name for a in args[:n])})"
            assert parse(text) == Call(name, args[:n]), text


def test_a_variadic_op_refuses_a_count_outside_its_range_and_says_which() -> None:
    with pytest.raises(ParseError, match=r"takes 2 to 9 argument\(s\), got 1; write prod\(a, b, \.\.\.\)"):
        parse("prod(x)")


def test_variables_restricts_names_and_accepts_the_listed_ones() -> None:
    assert parse("x * y", variables=["x", "y"]) == call("mul", x, y)
    assert parse("3", variables=[]) == c(3)


def test_variables_given_as_one_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"variables=\('xy',\)"):
        parse("x", variables="xy")


def test_text_that_is_not_a_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        parse(b"x")  # type: ignore[arg-type]


# ---- round trip ---------------------------------------------------------------------------

TRICKY: list[Expr] = [
    c(-3),
    c(0),
    call("neg", c(0)),
    call("neg", c(3)),
    call("neg", c(-3)),
    call("neg", call("neg", x)),
    call("neg", call("pow", c(-2), c(2))),
    call("pow", x, c(-1)),
    call("pow", c(-2), c(2)),
    call("pow", c(Fraction(-1, 2)), c(3)),
    call("pow", call("pow", x, y), z),
    call("pow", x, call("pow", y, z)),
    call("pow", x, call("neg", y)),
    call("pow", call("neg", x), c(2)),
    call("pow", x, c(Fraction(1, 2))),
    call("neg", call("pow", x, c(2))),
    call("neg", call("mul", x, y)),
    call("mul", call("neg", x), y),
    call("add", call("neg", x), call("neg", y)),
    call("sub", x, call("sub", y, z)),
    call("sub", call("sub", x, y), z),
    call("sub", x, c(-3)),
    call("add", x, c(-3)),
    call("div", x, call("mul", y, z)),
    call("mul", x, call("div", y, z)),
    call("div", call("mul", x, y), z),
    call("div", x, call("div", y, z)),
    call("max", x, c(-1)),
    call("mul", c(-1), c(Fraction(-1, 1024))),
    c(Fraction(3, 8)),
    c(Fraction(-1, 1024)),
    Const(Fraction(2) ** -1074),  # smallest subnormal: 1074 decimal places
    Const(Fraction(2**53 - 1) * 2**971),  # largest float64: 309 digits
    call("sin", call("add", call("log", x), call("neg", call("exp", y)))),
]


@pytest.mark.parametrize("tree", TRICKY, ids=[to_text(t)[:40] for t in TRICKY])
def test_parse_reads_back_what_to_text_prints(tree: Expr) -> None:
    assert parse(to_text(tree)) == tree


def test_the_deepest_and_largest_allowed_trees_are_accepted() -> None:
    chain = "x" + "**x" * (MAX_DEPTH - 1)
    assert depth(parse(chain)) == MAX_DEPTH
    assert parse("(" * MAX_DEPTH + "x" + ")" * MAX_DEPTH) == x
    assert size(parse(f"sin({_tree_of_4999_nodes()})")) == MAX_NODES
    assert parse("x" + " " * (MAX_TEXT_LENGTH - 1)) == x


# ---- hostile input ------------------------------------------------------------------------


@pytest.fixture
def nothing_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Any]]]:
    """Sentinels on every way text could be run; the test asserts none was called.

    ``compile`` stays usable for ``ast.parse`` (syntax trees only) and records any other
    use; ``__import__`` passes through and records the names asked for.
    """
    calls: list[tuple[str, Any]] = []
    real_compile, real_import = builtins.compile, builtins.__import__

    def compile_ast_only(
        source: Any, filename: Any, mode: str, flags: int = 0, *a: Any, **k: Any
    ) -> Any:
        if not flags & ast.PyCF_ONLY_AST:
            calls.append(("compile", source))
        return real_compile(source, filename, mode, flags, *a, **k)

    def recording_import(name: str, *a: Any, **k: Any) -> Any:
        if name in ("os", "subprocess", "shutil"):
            calls.append(("__import__", name))
        return real_import(name, *a, **k)

    def sentinel(label: str) -> Callable[..., None]:
        return lambda *a, **k: calls.append((label, a))

    def text_sentinel(label: str, real: Callable[..., Any]) -> Callable[..., Any]:
        # The import system execs module code objects through the builtin: let those by.
        def guard(source: Any, *a: Any, **k: Any) -> Any:
            if isinstance(source, (str, bytes)):
                calls.append((label, source))
                return None
            return real(source, *a, **k)

        return guard

    monkeypatch.setattr(builtins, "compile", compile_ast_only)
    monkeypatch.setattr(builtins, "__import__", recording_import)
    monkeypatch.setattr(builtins, "eval", text_sentinel("eval", builtins.eval))
    monkeypatch.setattr(builtins, "exec", text_sentinel("exec", builtins.exec))
    monkeypatch.setattr(os, "system", sentinel("os.system"))
    monkeypatch.setattr(sympy, "sympify", sentinel("sympify"))
    yield calls


def refused(text: str, **kwargs: Any) -> ParseError:
    """The ParseError for ``text``."""
    with pytest.raises(ParseError) as info:
        parse(text, **kwargs)
    return info.value


def test_import_and_system_call_is_refused_without_running(
    tmp_path: Path, nothing_runs: list[tuple[str, Any]]
) -> None:
    # tmp_path comes first so that its own imports happen before the sentinels go in.
    marker = tmp_path / "pwned"
    error = refused(f"__import__('os').system('touch {marker}')")
    assert error.column == 1
    assert "only op names can be called" in error.message
    assert "__import__('os').system" in error.message
    assert not marker.exists()
    assert nothing_runs == []


def test_dunder_attribute_walk_is_refused_at_its_dot(nothing_runs: list[tuple[str, Any]]) -> None:
    error = refused("().__class__.__bases__")
    assert error.column == 13  # the '.' before __bases__
    assert "attribute access" in error.message
    assert nothing_runs == []


def test_subscript_is_refused_at_its_bracket(nothing_runs: list[tuple[str, Any]]) -> None:
    error = refused("x [0]")
    assert error.column == 3
    assert "subscript" in error.message
    assert nothing_runs == []


def test_lambda_is_refused(nothing_runs: list[tuple[str, Any]]) -> None:
    error = refused("lambda: 0")
    assert (error.column, error.message.split(" is ")[0]) == (1, "lambda")
    assert nothing_runs == []


def test_constant_exponent_tower_is_refused_before_it_is_computed(
    nothing_runs: list[tuple[str, Any]],
) -> None:
    # 9**(9**(9**9)): 9**9 = 387420489 is fine, using it as an exponent is not.
    error = refused("9**9**9**9")
    assert error.column == 7
    assert f"MAX_CONST_EXPONENT={MAX_CONST_EXPONENT}" in error.message
    assert "3.8742e+08" in error.message
    assert nothing_runs == []


def test_ten_thousand_nested_parentheses_are_refused_by_the_prescan(
    nothing_runs: list[tuple[str, Any]],
) -> None:
    for text in ("(" * 10_000 + ")" * 10_000, "(" * 10_000 + "x"):
        error = refused(text)
        assert error.column == MAX_DEPTH + 1
        assert f"MAX_DEPTH={MAX_DEPTH}" in error.message
    assert nothing_runs == []


def test_a_megabyte_of_text_is_refused_before_parsing(nothing_runs: list[tuple[str, Any]]) -> None:
    error = refused("1+" * 500_000 + "1")
    assert error.column == MAX_TEXT_LENGTH + 1
    assert f"MAX_TEXT_LENGTH={MAX_TEXT_LENGTH}" in error.message
    assert "1000001 characters" in error.message
    assert nothing_runs == []


def test_a_tree_deeper_than_max_depth_is_refused(nothing_runs: list[tuple[str, Any]]) -> None:
    # x**x**...: the x at column 298 is the 100th x, a leaf at depth 101.
    error = refused("x" + "**x" * MAX_DEPTH)
    assert error.column == 298
    assert f"MAX_DEPTH={MAX_DEPTH}" in error.message
    # 150 minus signs: the 101st is the first node below depth 100.
    error = refused("-" * 150 + "x")
    assert error.column == 101
    assert f"MAX_DEPTH={MAX_DEPTH}" in error.message
    assert nothing_runs == []


def test_chains_too_long_for_pythons_parser_are_refused(
    nothing_runs: list[tuple[str, Any]],
) -> None:
    # CPython 3.11 and 3.12 give up on these (MemoryError, RecursionError); newer versions
    # may parse some, and then the depth check refuses them. Either way: a quick ParseError.
    for text in ("-" * (MAX_TEXT_LENGTH - 1) + "x", "+".join(["x"] * 5000), "x" + "**x" * 6000):
        error = refused(text)
        assert 1 <= error.column <= len(text)
        assert f"MAX_DEPTH={MAX_DEPTH}" in error.message
        assert "nests too deeply" in error.message or "deeper than" in error.message
    assert nothing_runs == []


def _tree_of_4999_nodes() -> str:
    """max(B, B) with B a product of 25 sums of 50 x's: 2 * (25*99 + 24) + 1 nodes."""
    term = "(" + "+".join(["x"] * 50) + ")"
    product = "*".join([term] * 25)
    return f"max({product}, {product})"


def test_a_tree_larger_than_max_nodes_is_refused(nothing_runs: list[tuple[str, Any]]) -> None:
    # 4,999 nodes, sin makes 5,000, and the leaf zz is node 5,001 (nodes are counted
    # children first).
    text = f"sin({_tree_of_4999_nodes()}) + zz"
    error = refused(text)
    assert error.column == text.index("zz") + 1
    assert f"MAX_NODES={MAX_NODES}" in error.message
    assert nothing_runs == []


@pytest.mark.parametrize(
    ("text", "column"),
    [("1e309", 1), ("x + 1e400", 5), (str(2**1024), 1), ("-" + str(2**1024), 2)],
)
def test_constants_out_of_float64_range_are_refused(
    text: str, column: int, nothing_runs: list[tuple[str, Any]]
) -> None:
    error = refused(text)
    assert error.column == column
    assert "out of float64's range" in error.message
    assert nothing_runs == []


def test_literals_that_underflow_are_refused_and_a_huge_zero_is_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    error = refused("1e-400")
    assert "underflows to 0" in error.message
    # Fraction("0e999999999") would build a huge power of ten: the parser must decide
    # zero from the digits and never hand the text to Fraction.
    parse_module = sys.modules["harness.parser"]

    def guarded(*args: Any) -> Fraction:
        if any("e999999999" in str(a) for a in args):
            raise AssertionError(f"Fraction{args} would compute 10**999999999")
        return Fraction(*args)

    monkeypatch.setattr(parse_module, "Fraction", guarded)
    assert parse("0e999999999") == c(0)


@pytest.mark.parametrize(
    ("text", "column", "value"),
    [
        ("exp(1000)", 1, "inf"),
        ("1/0", 1, "inf"),
        ("sqrt(-1)", 1, "nan"),
        ("x * exp(exp(10))", 5, "inf"),
    ],
)
def test_variable_free_parts_that_are_not_finite_are_refused(
    text: str, column: int, value: str, nothing_runs: list[tuple[str, Any]]
) -> None:
    error = refused(text)
    assert error.column == column
    assert f"is {value} in float64" in error.message
    assert nothing_runs == []


def test_large_variable_free_exponents_are_refused_even_on_variables() -> None:
    error = refused("x**65")
    assert error.column == 4
    assert "MAX_CONST_EXPONENT=64" in error.message
    assert refused("2**-(64 + 1)").column == 4


# ---- refused constructs and error messages ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column", "construct"),
    [
        ("sin(x=1)", 5, "keyword argument x=..."),
        ("sin(**k)", 5, "keyword argument **..."),
        ("sin(*x)", 5, "starred argument"),
        ("x < y", 1, "comparison"),
        ("x and y", 1, "boolean operator"),
        ("x if y else z", 1, "conditional expression"),
        ("(x := 1)", 2, "assignment expression"),
        ("[x for x in y]", 1, "list comprehension"),
        ("'os'", 1, "string"),
        ("b'os'", 1, "bytes literal"),
        ("f'{x}'", 1, "f-string"),
        ("1j", 1, "complex literal"),
        ("True", 1, "True/False"),
        ("None", 1, "None"),
        ("x // y", 3, "operator '//'"),
        ("x % y", 3, "operator '%'"),
        ("~x", 1, "operator '~'"),
        ("not x", 1, "operator 'not'"),
        ("(x, y)", 1, "tuple"),
        ("f(x)(y)", 1, "only op names can be called"),
        ("x; y", 2, "invalid syntax"),
        ("x = 1", 3, "invalid syntax"),
        ("x +", 4, "ends too early"),
        ("  x y", 5, "invalid syntax"),
        ("\n (x +\n  * y)", 10, "invalid syntax"),
        ("  x.y", 4, "attribute access"),
        ("", 1, "empty"),
        ("x + é", 5, "U+00E9"),
        ("x\x00", 2, "U+0000"),
    ],
)
def test_refused_constructs_are_named_with_their_column(
    text: str, column: int, construct: str
) -> None:
    error = refused(text)
    assert error.column == column, error
    assert construct in error.message


def test_unknown_function_lists_the_known_ops() -> None:
    error = refused("2 * foo(x)")
    assert error.column == 5
    assert "unknown function 'foo'" in error.message
    assert all(name in error.message for name in ("sin", "softplus", "max", "pow"))


def test_wrong_arity_says_how_many_arguments_the_op_takes() -> None:
    error = refused("sin(x, y)")
    assert error.column == 1
    assert "op 'sin' takes 1 argument(s), got 2" in error.message
    assert "max(a, b)" in refused("max(x)").message


def test_non_dyadic_decimal_suggests_an_exact_quotient() -> None:
    error = refused("x + 0.1")
    assert error.column == 5
    assert "not exactly representable in float64" in error.message
    assert "1/10" in error.message
    assert "9007199254740992 + 1" in refused("9007199254740993").message


def test_keyword_argument_says_ops_take_positional_arguments() -> None:
    error = refused("max(x, y=2)")
    assert error.column == 8
    assert "keyword argument y=... is not allowed" in error.message
    assert "positional" in error.message


def test_a_variable_outside_the_given_variables_is_refused_with_the_allowed_ones() -> None:
    error = refused("x + z", variables=("y", "x"))
    assert error.column == 5
    assert "variable 'z' is not allowed" in error.message
    assert "x, y" in error.message


def test_op_names_and_bad_identifiers_are_not_variables() -> None:
    assert "call it as sin(a)" in refused("sin + 1").message
    assert "variable name='_x'" in refused("_x").message
    assert refused("x + " + "a" * 40).column == 5


def test_parse_error_is_one_line_and_a_caret_under_the_column() -> None:
    error = refused("1 + sin(x, y)")
    first, caret = str(error).split("\n")
    assert first.startswith("cannot parse '1 + sin(x, y)' at column 5: op 'sin' takes")
    assert caret == " " * len("cannot parse '1 + ") + "^"


def test_parse_error_on_long_text_shows_a_window_around_the_column() -> None:
    text = "x + " * 90 + "y // z"
    error = refused(text)
    first, caret = str(error).split("\n")
    assert error.column == text.index("//") + 1
    assert f"({len(text)} characters)" in first
    assert len(first) < 400
    assert first[len(caret) - 1 : len(caret) + 1] == "//"


def test_parse_error_is_a_value_error_that_survives_pickling() -> None:
    error = refused("x + 0.1")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.text, copy.column, copy.message) == (error.text, error.column, error.message)
