"""Safe text -> tree parser: Python arithmetic syntax read through an ``ast`` whitelist.

``parse("sin(x)**2 + 0.375*y")`` gives the same tree that :func:`harness.expr.to_text`
printed, and ``parse(to_text(e)) == e`` for every tree within the limits below. The text is
never run: it goes through ``ast.parse(mode="eval")``, which only parses, and the syntax
tree is then converted node by node. Only these constructs are accepted:

* numbers: int literals and decimal literals that are exactly dyadic and fit float64
  (``3``, ``0.375``, ``1e3``), read exactly from the literal's source text; ``0.1`` is
  refused with a hint to write ``1/10``;
* variables: identifiers that are not op names (optionally only those in ``variables``);
* the binary operators ``+ - * / **`` and unary ``-`` and ``+`` (``+a`` is ``a``); unary
  ``-`` directly before a number, with no bracket between, gives a negative constant
  (``-3``), elsewhere the op ``neg`` (``-x``, ``-(3)``, ``neg(3)``);
* calls ``name(arg, ...)`` of any op in :data:`harness.ops.OPS` with its arity.

Everything else (attributes, subscripts, lambdas, keyword arguments, comparisons, strings,
...) is refused with a :class:`ParseError` naming the construct and its column. Hostile or
huge text is refused quickly, before anything expensive happens: the length and bracket
nesting are checked by a cheap scan *before* ``ast.parse`` (Python's own parser fails or
recurses on deep nesting), trees are bounded in depth and size, and variable-free parts are
checked in float64 so that a constant tower such as ``9**9**9**9`` never reaches sympy.
"""

from __future__ import annotations

import ast
import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import torch

from harness.compile import torch_namespace
from harness.expr import Call, Const, Expr, ExprError, Var, is_dyadic, to_text
from harness.ops import INFIX_BY_AST, OPS, UNARY_BY_AST

__all__ = [
    "MAX_CONST_EXPONENT",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_TEXT_LENGTH",
    "ParseError",
    "parse",
]

MAX_TEXT_LENGTH = 20_000
"""Longest text accepted, in characters; checked before any parsing."""

MAX_DEPTH = 100
"""Deepest tree accepted (a leaf has depth 1); also the deepest bracket nesting."""

MAX_NODES = 5_000
"""Largest tree accepted, counting repeated subtrees every time they occur."""

MAX_CONST_EXPONENT = 64
"""Largest magnitude of a variable-free exponent: bounds constant towers like 9**9**9."""

_ALLOWED = (
    "allowed: numbers (3, 0.375), variables (x), + - * / **, unary - and +, "
    "and op calls such as sin(x)"
)
_SHOWN = 72  # characters of the text shown in an error message


class ParseError(ValueError):
    """Text that :func:`parse` refuses: where (1-based ``column``) and why (``message``).

    ``str(error)`` is one line naming the text, the column and the problem (with what is
    allowed), followed by a caret line pointing at the column.
    """

    def __init__(self, text: str, column: int, message: str) -> None:
        self.text = text
        self.column = column
        self.message = message
        super().__init__(text, column, message)

    def __str__(self) -> str:
        start = max(0, min(self.column - 1 - _SHOWN // 2, len(self.text) - _SHOWN))
        window = self.text[start : start + _SHOWN]
        # One display line whose characters line up with the text's columns.
        shown = "".join(c if c.isprintable() else " " for c in window)
        before = "..." if start > 0 else ""
        after = "..." if start + _SHOWN < len(self.text) else ""
        head = f"cannot parse {before}'"
        length = f" ({len(self.text)} characters)" if before or after else ""
        line = f"{head}{shown}'{after}{length} at column {self.column}: {self.message}"
        return f"{line}\n{' ' * (len(head) + self.column - 1 - start)}^"


def parse(text: str, *, variables: Iterable[str] | None = None) -> Expr:
    """The tree that ``text`` spells, in the syntax :func:`harness.expr.to_text` prints.

    ``variables``, when given, lists the only names allowed as variables. Raises
    :class:`ParseError` (a ``ValueError``) for anything outside the whitelist in the module
    docstring, for trees deeper than :data:`MAX_DEPTH` or larger than :data:`MAX_NODES`,
    for text longer than :data:`MAX_TEXT_LENGTH`, for constants float64 cannot hold
    exactly, for variable-free exponents above :data:`MAX_CONST_EXPONENT` in magnitude and
    for variable-free parts whose float64 value is not finite. Nothing in ``text`` is run.
    """
    if not isinstance(text, str):
        raise TypeError(f"text={text!r:.60} must be a str, got {type(text).__name__}")
    allowed = _variable_set(variables)
    _prescan(text)
    if not text.strip():
        raise ParseError(text, 1, f"the text is empty; expected an expression ({_ALLOWED})")
    # Python reads leading whitespace as an indent; parse from the first token instead.
    lead = len(text) - len(text.lstrip())
    body = _python_ast(text, lead)
    return _Converter(text, lead, allowed).convert(body, 1).expr


def _variable_set(variables: Iterable[str] | None) -> frozenset[str] | None:
    if variables is None:
        return None
    if isinstance(variables, str):
        raise TypeError(
            f"variables={variables!r} must be an iterable of names, not one str; "
            f"write variables=({variables!r},)"
        )
    return frozenset(variables)


# ---- before ast.parse: cheap scans --------------------------------------------------------

_BAD_CHARACTER = re.compile(r"[^\x20-\x7e\t\n\r]")
_BRACKET = re.compile(r"[()\[\]{}]")
_OPENING = frozenset("([{")


def _prescan(text: str) -> None:
    """Refuse long text, odd characters and deep bracket nesting without parsing."""
    if len(text) > MAX_TEXT_LENGTH:
        raise ParseError(
            text,
            MAX_TEXT_LENGTH + 1,
            f"the text is {len(text)} characters long; at most "
            f"MAX_TEXT_LENGTH={MAX_TEXT_LENGTH} are allowed",
        )
    bad = _BAD_CHARACTER.search(text)
    if bad is not None:
        char = bad.group()
        raise ParseError(
            text,
            bad.start() + 1,
            f"character {char!r} (U+{ord(char):04X}) is not allowed: the text must be "
            f"printable ASCII; {_ALLOWED}",
        )
    level = 0
    for match in _BRACKET.finditer(text):
        if match.group() in _OPENING:
            level += 1
            if level > MAX_DEPTH:
                raise ParseError(
                    text,
                    match.start() + 1,
                    f"brackets nest more than MAX_DEPTH={MAX_DEPTH} levels deep; "
                    "remove redundant brackets or split the expression",
                )
        else:
            level -= 1  # unbalanced brackets are left for ast.parse to report


def _python_ast(text: str, lead: int) -> ast.expr:
    """Python's syntax tree of ``text[lead:]`` as one expression; parsing only, nothing runs."""
    source = text[lead:]
    try:
        with warnings.catch_warnings():
            # Syntax warnings about the user's text (e.g. invalid escapes) are not ours.
            warnings.simplefilter("ignore")
            return ast.parse(source, mode="eval").body
    except SyntaxError as error:
        if error.offset is None or error.offset < 1:  # Python's mark for "at the end"
            column, problem = len(text) + 1, "the text ends too early"
        else:
            column = lead + _absolute_column(source, error.lineno or 1, error.offset)
            problem = error.msg.removeprefix("invalid syntax").lstrip(": ") or "unexpected token"
        raise ParseError(
            text, column, f"invalid syntax: {problem}; expected one expression, {_ALLOWED}"
        ) from None
    except (RecursionError, MemoryError):
        # Python's parser gives up on long chains such as 3,000 additions in a row.
        raise ParseError(
            text,
            1,
            f"the expression nests too deeply for Python's parser; trees may be at most "
            f"MAX_DEPTH={MAX_DEPTH} levels deep",
        ) from None


def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]


def _absolute_column(text: str, lineno: int, offset: int) -> int:
    """1-based column in the whole text of a (line, 1-based offset) position."""
    starts = _line_starts(text)
    start = starts[min(max(lineno, 1), len(starts)) - 1]
    return min(max(start + offset, 1), len(text) + 1)


# ---- ast -> tree ---------------------------------------------------------------------------

_CONSTRUCTS: Mapping[type[ast.AST], str] = MappingProxyType(
    {
        ast.Attribute: "attribute access (a.b)",
        ast.Subscript: "subscript (a[i])",
        ast.Slice: "slice (a:b)",
        ast.Lambda: "lambda",
        ast.ListComp: "list comprehension",
        ast.SetComp: "set comprehension",
        ast.DictComp: "dict comprehension",
        ast.GeneratorExp: "generator expression",
        ast.Compare: "comparison (<, ==, is, in, ...)",
        ast.BoolOp: "boolean operator (and, or)",
        ast.IfExp: "conditional expression (a if c else b)",
        ast.NamedExpr: "assignment expression (:=)",
        ast.JoinedStr: "f-string",
        ast.FormattedValue: "f-string",
        ast.List: "list",
        ast.Tuple: "tuple",
        ast.Set: "set",
        ast.Dict: "dict",
        ast.Starred: "starred argument (*a)",
        ast.Await: "await",
        ast.Yield: "yield",
        ast.YieldFrom: "yield from",
    }
)
"""Names of refused Python constructs, for error messages."""

_LITERALS: Mapping[type, str] = MappingProxyType(
    {
        str: "string",
        bytes: "bytes literal",
        complex: "complex literal",
        bool: "True/False",
        type(None): "None",
        type(Ellipsis): "Ellipsis (...)",
    }
)
"""Names of refused literal kinds, for error messages."""

_OPERATORS: Mapping[type[ast.AST], str] = MappingProxyType(
    {
        ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.LShift: "<<",
        ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
        ast.Invert: "~", ast.Not: "not",
    }
)
"""Spelling of refused Python operators, for error messages."""


@dataclass(frozen=True)
class _Parsed:
    """A converted subtree, with its float64 value when it has no variables."""

    expr: Expr
    value: float | None


class _Converter:
    """Converts a whitelisted Python syntax tree into an :data:`Expr`, top-down.

    Recursion is bounded by :data:`MAX_DEPTH` (checked on the way down, so a deep syntax
    tree is refused before it is walked); the node count by :data:`MAX_NODES`.
    """

    def __init__(self, text: str, lead: int, variables: frozenset[str] | None) -> None:
        self.text = text
        self.variables = variables
        # Offsets in the whole text where each line of the parsed text[lead:] starts.
        self.starts = [lead + start for start in _line_starts(text[lead:])]
        self.nodes = 0

    # positions ------------------------------------------------------------------------

    def start(self, node: ast.AST) -> int:
        """0-based offset of ``node`` in the text (ASCII only, so bytes == characters)."""
        return self.starts[node.lineno - 1] + node.col_offset  # type: ignore[attr-defined]

    def end(self, node: ast.AST) -> int:
        return self.starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[attr-defined]

    def after(self, node: ast.AST) -> int:
        """0-based offset of the first token after ``node`` (skipping spaces and ')')."""
        i = self.end(node)
        while i < len(self.text) and self.text[i] in " \t\r\n)":
            i += 1
        return i

    def refuse(self, offset: int, message: str) -> ParseError:
        return ParseError(self.text, offset + 1, message)

    # conversion -----------------------------------------------------------------------

    def convert(self, node: ast.AST, level: int) -> _Parsed:
        """``node`` as a tree whose root sits at depth ``level`` of the whole tree."""
        if level > MAX_DEPTH:
            raise self.refuse(
                self.start(node), f"the tree is deeper than MAX_DEPTH={MAX_DEPTH} levels"
            )
        handler = _HANDLERS.get(type(node))
        if handler is None:
            construct = _CONSTRUCTS.get(type(node), type(node).__name__)
            offset = self.start(node)
            if isinstance(node, (ast.Attribute, ast.Subscript)):
                offset = self.after(node.value)  # the '.' or '[' rather than the start of a
            raise self.refuse(offset, f"{construct} is not allowed; {_ALLOWED}")
        return handler(self, node, level)

    def made(self, expr: Expr, value: float | None, offset: int) -> _Parsed:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.refuse(
                offset, f"the tree has more than MAX_NODES={MAX_NODES} nodes; split it up"
            )
        return _Parsed(expr, value)

    def constant(self, node: ast.Constant, level: int, negate: bool = False) -> _Parsed:
        value = self.number(node)
        if negate:
            value = -value
        return self.made(Const(value), float(value), self.start(node))

    def number(self, node: ast.Constant) -> Fraction:
        """The literal's exact value; refuses non-numbers and what float64 cannot hold."""
        raw = node.value
        source = self.text[self.start(node) : self.end(node)]
        if type(raw) is float:
            exact = self.decimal(node, source, raw)
        elif type(raw) is int:  # not bool, which is an int subclass
            exact = Fraction(raw)
        else:
            kind = _LITERALS.get(type(raw), type(raw).__name__)
            raise self.refuse(self.start(node), f"{kind} is not allowed; {_ALLOWED}")
        if abs(exact) >= 2**1024:
            raise self.refuse(
                self.start(node),
                f"number {source} is out of float64's range (magnitude below 2**1024, "
                "about 1.8e308); constants must be finite float64 values",
            )
        if not is_dyadic(exact):
            hint = _exact_spelling(exact)
            raise self.refuse(
                self.start(node),
                f"number {source} is not exactly representable in float64 (constants are "
                f"p/2**k with at most 53 significant bits); write it as {hint}, which the "
                "engines compute in the tested dtype",
            )
        return exact

    def decimal(self, node: ast.Constant, source: str, rounded: float) -> Fraction:
        """Exact value of a decimal literal, from its text (never via float rounding)."""
        digits = source.replace("_", "")
        if not math.isfinite(rounded):
            raise self.refuse(
                self.start(node),
                f"number {source} is out of float64's range (about 1.8e308); "
                "constants must be finite float64 values",
            )
        if rounded == 0:
            # Fraction("0e999999999") would build 10**999999999: decide zero from the digits.
            mantissa = digits.lower().partition("e")[0]
            if any(c in "123456789" for c in mantissa):
                raise self.refuse(
                    self.start(node),
                    f"number {source} underflows to 0 in float64; constants must be "
                    "exactly representable",
                )
            return Fraction(0)
        # A finite nonzero float bounds the decimal exponent by the text length, so this
        # builds powers of ten of at most a few ten thousand digits.
        return Fraction(digits)

    def name(self, node: ast.Name, level: int) -> _Parsed:
        name = node.id
        if name in OPS:
            raise self.refuse(
                self.start(node),
                f"{name!r} is an op, not a variable; call it as {_usage(name)}",
            )
        try:
            var = Var(name)
        except ExprError as error:
            raise self.refuse(self.start(node), str(error)) from None
        if self.variables is not None and name not in self.variables:
            known = ", ".join(sorted(self.variables)) or "(none)"
            raise self.refuse(
                self.start(node),
                f"variable {name!r} is not allowed; the allowed variables are: {known}",
            )
        return self.made(var, None, self.start(node))

    def unary(self, node: ast.UnaryOp, level: int) -> _Parsed:
        operand = node.operand
        if isinstance(node.op, ast.UAdd):
            # +a is a; unwrapped in a loop so that a run of pluses cannot recurse deeply.
            while isinstance(operand, ast.UnaryOp) and isinstance(operand.op, ast.UAdd):
                operand = operand.operand
            return self.convert(operand, level)
        start, operand_start = self.start(node), self.start(operand)
        if (
            isinstance(node.op, ast.USub)
            and isinstance(operand, ast.Constant)
            and "(" not in self.text[start:operand_start]
        ):
            return self.constant(operand, level, negate=True)
        op = UNARY_BY_AST.get(type(node.op))
        if op is None:
            spelling = _OPERATORS.get(type(node.op), type(node.op).__name__)
            raise self.refuse(start, f"operator {spelling!r} is not allowed; {_ALLOWED}")
        return self.apply(op, (self.convert(operand, level + 1),), (operand,), start)

    def binary(self, node: ast.BinOp, level: int) -> _Parsed:
        op = INFIX_BY_AST.get(type(node.op))
        if op is None:
            spelling = _OPERATORS.get(type(node.op), type(node.op).__name__)
            raise self.refuse(
                self.after(node.left), f"operator {spelling!r} is not allowed; {_ALLOWED}"
            )
        parts = (node.left, node.right)
        args = tuple(self.convert(part, level + 1) for part in parts)
        return self.apply(op, args, parts, self.start(node))

    def call(self, node: ast.Call, level: int) -> _Parsed:
        func = node.func
        if not isinstance(func, ast.Name):
            called = self.text[self.start(func) : self.end(func)]
            called = called if len(called) <= 40 else called[:37] + "..."
            raise self.refuse(
                self.start(node),
                f"only op names can be called, such as sin(x), but here {called!r} is "
                f"called; {_ALLOWED}",
            )
        row = OPS.get(func.id)
        if row is None:
            raise self.refuse(
                self.start(node),
                f"unknown function {func.id!r}; the known ops are: {', '.join(sorted(OPS))}",
            )
        if node.keywords:
            keyword = node.keywords[0]
            spelled = f"{keyword.arg}=..." if keyword.arg else "**..."
            raise self.refuse(
                self.start(keyword),
                f"keyword argument {spelled} is not allowed: ops take positional "
                f"arguments only, as in {_usage(row.name)}",
            )
        if len(node.args) not in row.arities:
            raise self.refuse(
                self.start(node),
                f"op {row.name!r} takes {row.arity_text()} argument(s), got {len(node.args)}; "
                f"write {_usage(row.name)}",
            )
        args = tuple(self.convert(arg, level + 1) for arg in node.args)
        return self.apply(row.name, args, tuple(node.args), self.start(node))

    def apply(
        self, op: str, args: tuple[_Parsed, ...], parts: tuple[ast.AST, ...], offset: int
    ) -> _Parsed:
        """The call node, with its value and the checks on variable-free parts."""
        row = OPS[op]
        values = tuple(a.value for a in args)
        for position in row.const_args:  # pow's exponent: bound constant towers
            exponent = values[position]
            if exponent is not None and abs(exponent) > MAX_CONST_EXPONENT:
                raise self.refuse(
                    self.start(parts[position]),
                    f"the constant exponent {exponent:g} exceeds "
                    f"MAX_CONST_EXPONENT={MAX_CONST_EXPONENT} in magnitude; constant "
                    f"exponents must lie in [-{MAX_CONST_EXPONENT}, {MAX_CONST_EXPONENT}]",
                )
        expr = Call(op, tuple(a.expr for a in args))
        value = None
        if all(v is not None for v in values):
            value = _float64(op, values)
            if not math.isfinite(value):
                shown = to_text(expr)
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                raise self.refuse(
                    offset,
                    f"the constant part {shown} is {value} in float64 (overflow, or outside "
                    "the op's domain); variable-free parts must have finite values",
                )
        return self.made(expr, value, offset)


def _float64(op: str, values: tuple[float | None, ...]) -> float:
    """``op`` at variable-free arguments, in float64, with the kernel the engines use
    (overflow gives inf, never raises)."""
    kernel = torch_namespace().kernels[op]
    return float(kernel(*(torch.tensor(v, dtype=torch.float64) for v in values)))


def _exact_spelling(value: Fraction) -> str:
    """A hint for writing a constant float64 cannot hold as an expression of exact parts."""
    if value.denominator == 1:
        near = int(float(value))  # the nearest float64, for the hint only
        rest = value - near
        if is_dyadic(Fraction(near)) and is_dyadic(rest):
            return f"the sum {near} {'+' if rest > 0 else '-'} {abs(rest)}"
        return "a sum of exact parts"
    quotient = f"{value.numerator}/{value.denominator}"
    return f"the quotient {quotient}" if len(quotient) <= 40 else "a quotient such as 1/10"


def _usage(op: str) -> str:
    """How to call ``op``, e.g. ``max(a, b)``, ``prod(a, b, ...)`` for a variadic op."""
    row = OPS[op]
    names = "abcdefghijklmnopqrstuvwxyz"[: row.arity]
    more = ", ..." if len(row.arities) > 1 else ""
    return f"{op}({', '.join(names)}{more})"


_Handler = Callable[[_Converter, Any, int], _Parsed]
_HANDLERS: Mapping[type[ast.AST], _Handler] = MappingProxyType(
    {
        ast.Constant: _Converter.constant,
        ast.Name: _Converter.name,
        ast.UnaryOp: _Converter.unary,
        ast.BinOp: _Converter.binary,
        ast.Call: _Converter.call,
    }
)
"""The accepted Python syntax nodes; anything else is refused."""
