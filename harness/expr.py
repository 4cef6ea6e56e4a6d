"""Immutable expression trees (Var, Const, Call) and the folds over them.

A tree is literal: constructing ``Call("log", (Call("exp", (x,)),))`` keeps both calls, and
every engine computes exactly that tree. Only the symbolic truth may simplify, after
:func:`to_sympy`.

Constants are exact: a :class:`Const` holds a :class:`fractions.Fraction` that is a dyadic
rational exactly representable in float64 (``3``, ``0.375``, ``-1/1024``). The generator
only draws constants that float16 and bfloat16 hold exactly too, so in generated cases the
only rounding is the engine's own. A hand-written constant a narrow dtype cannot hold is
rounded to that dtype by the engines and, identically, by the truth (see
:func:`round_to_dtype`).

Folds are iterative (no recursion limit) and visit each distinct subtree once.
"""

from __future__ import annotations

import ast
import functools
import keyword
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar, Union

from harness.ops import OPS

__all__ = [
    "Call",
    "Const",
    "Expr",
    "Var",
    "ExprError",
    "depth",
    "fold",
    "is_dyadic",
    "size",
    "subexpressions",
    "to_sympy",
    "to_text",
    "variables",
    "walk",
]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}\Z")
MAX_FLOAT64 = Fraction(2) ** 1024


class ExprError(ValueError):
    """A tree node was built from values that are not allowed (bad name, op, constant)."""


def is_dyadic(value: Fraction) -> bool:
    """True when ``value`` is p/2**k and float64 holds it exactly."""
    q = value.denominator
    if q & (q - 1):
        return False
    return abs(value) < MAX_FLOAT64 and Fraction(float(value)) == value


@dataclass(frozen=True)
class Var:
    """A variable, by name. Names are identifiers that are not op names or keywords."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ExprError(
                f"variable name={self.name!r} is not allowed: expected a letter followed by "
                "up to 31 letters, digits or underscores"
            )
        if self.name in OPS or keyword.iskeyword(self.name):
            raise ExprError(
                f"variable name={self.name!r} is an op name or Python keyword; rename it"
            )

    def __str__(self) -> str:
        return to_text(self)


@dataclass(frozen=True)
class Const:
    """An exact constant: a dyadic rational that float64 holds exactly."""

    value: Fraction

    def __post_init__(self) -> None:
        value = self.value
        if isinstance(value, bool) or not isinstance(value, (int, Fraction)):
            raise ExprError(
                f"constant value={value!r} must be an int or fractions.Fraction, "
                "so that it is exact"
            )
        value = Fraction(value)
        if not is_dyadic(value):
            raise ExprError(
                f"constant value={value} is not exactly representable in float64 "
                "(expected p/2**k within float64's range); write it as an expression "
                "such as 1/10, which the engines compute in the tested dtype"
            )
        object.__setattr__(self, "value", value)

    def __str__(self) -> str:
        return to_text(self)


@dataclass(frozen=True)
class Call:
    """An op from the op table applied to argument trees."""

    op: str
    args: tuple[Expr, ...]

    def __post_init__(self) -> None:
        row = OPS.get(self.op)
        if row is None:
            raise ExprError(f"op={self.op!r} is not in the op table; known: {sorted(OPS)}")
        args = tuple(self.args)
        if len(args) not in row.arities:
            raise ExprError(f"op={self.op!r} takes {row.arity_text()} argument(s), got {len(args)}")
        for a in args:
            if not isinstance(a, (Var, Const, Call)):
                raise ExprError(f"argument {a!r} of op={self.op!r} is not an expression")
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "_hash", hash((self.op, args)))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined,no-any-return]

    def __str__(self) -> str:
        return to_text(self)


Expr = Union[Var, Const, Call]  # noqa: UP007 - a runtime alias; | needs 3.10 classes at import
T = TypeVar("T")


def walk(expr: Expr) -> Iterator[Expr]:
    """Distinct subtrees in post-order (children before parents), each once."""
    seen: set[Expr] = set()
    stack: list[tuple[Expr, bool]] = [(expr, False)]
    while stack:
        node, expanded = stack.pop()
        if node in seen:
            continue
        if expanded or not isinstance(node, Call):
            seen.add(node)
            yield node
            continue
        stack.append((node, True))
        for child in reversed(node.args):
            if child not in seen:
                stack.append((child, False))


def fold(
    expr: Expr,
    var: Callable[[Var], T],
    const: Callable[[Const], T],
    call: Callable[[Call, tuple[T, ...]], T],
) -> T:
    """Bottom-up fold; shared subtrees are computed once."""
    done: dict[Expr, T] = {}
    for node in walk(expr):
        if isinstance(node, Var):
            done[node] = var(node)
        elif isinstance(node, Const):
            done[node] = const(node)
        else:
            done[node] = call(node, tuple(done[a] for a in node.args))
    return done[expr]


def subexpressions(expr: Expr) -> list[Expr]:
    """Every distinct subtree, children before parents, ending with ``expr`` itself."""
    return list(walk(expr))


def size(expr: Expr) -> int:
    """Number of nodes in the tree, counting repeated subtrees every time they occur."""
    return fold(expr, lambda v: 1, lambda c: 1, lambda n, a: 1 + sum(a))


def depth(expr: Expr) -> int:
    """Length of the longest root-to-leaf path; a leaf has depth 1."""
    return fold(expr, lambda v: 1, lambda c: 1, lambda n, a: 1 + max(a))


@functools.lru_cache(maxsize=1024)
def variables(expr: Expr) -> tuple[str, ...]:
    """Variable names in sorted order: the column order of points and gradients.

    Remembered for recent trees: the oracle, the engines and the generator each ask for
    them several times per case."""
    return tuple(sorted({n.name for n in walk(expr) if isinstance(n, Var)}))


def to_sympy(
    expr: Expr,
    symbols: Mapping[str, Any] | None = None,
    constant: Callable[[Fraction], Any] | None = None,
) -> Any:
    """The sympy expression for ``expr`` (sympy may simplify it; the tree stays literal).

    ``symbols`` maps variable names to sympy symbols (default: real symbols of the same
    name). ``constant`` turns a constant into a sympy number (default: the exact
    ``sympy.Rational``); the truth engine passes one that rounds to the tested dtype.
    """
    import sympy

    syms = dict(symbols or {})

    def var(v: Var) -> Any:
        if v.name not in syms:
            syms[v.name] = sympy.Symbol(v.name, real=True)
        return syms[v.name]

    def const(c: Const) -> Any:
        if constant is not None:
            return constant(c.value)
        return sympy.Rational(c.value.numerator, c.value.denominator)

    return fold(expr, var, const, lambda n, args: OPS[n.op].sympy_fn(*args))


# ---- printing -------------------------------------------------------------------------

_ATOM = 1000
_NEG_PRECEDENCE = OPS["neg"].precedence


def _const_text(value: Fraction) -> str:
    """Exact decimal text for a dyadic rational: 3/8 -> '0.375'."""
    if value.denominator == 1:
        return str(value.numerator)
    k = value.denominator.bit_length() - 1
    digits = abs(value.numerator) * 5**k
    whole, frac = divmod(digits, 10**k)
    sign = "-" if value < 0 else ""
    return f"{sign}{whole}.{frac:0{k}d}".rstrip("0")


def _print(node: Call, args: tuple[tuple[str, int], ...]) -> tuple[str, int]:
    row = OPS[node.op]
    if row.infix is None:
        return f"{node.op}({', '.join(t for t, _ in args)})", _ATOM
    p = row.precedence
    if row.arity == 1:
        (text, q), = args
        if isinstance(node.args[0], Const) and node.args[0].value >= 0:
            # "-3" would read back as the constant -3, so spell the op out.
            return f"{node.op}({text})", _ATOM
        return f"{row.infix}{text if q >= p else f'({text})'}", p
    (lt, lp), (rt, rp) = args
    right_assoc = row.ast_node is ast.Pow  # Python's one right-associative operator
    left_ok = lp > p if right_assoc else lp >= p
    right_ok = rp >= p if right_assoc else rp > p
    lt = lt if left_ok else f"({lt})"
    rt = rt if right_ok else f"({rt})"
    sep = row.infix if right_assoc else f" {row.infix} "
    return f"{lt}{sep}{rt}", p


def to_text(expr: Expr) -> str:
    """Python-syntax text that :func:`harness.parser.parse` reads back to the same tree."""

    def const(c: Const) -> tuple[str, int]:
        return _const_text(c.value), (_NEG_PRECEDENCE if c.value < 0 else _ATOM)

    return fold(expr, lambda v: (v.name, _ATOM), const, _print)[0]
