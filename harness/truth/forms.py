"""Expression tree -> the sympy forms the truth evaluates.

The tree becomes a sympy expression with its constants rounded to the tested dtype, so the
truth is that of the function the engine under test actually computes. Sympy assumes
complex arguments for Abs, sign and floor and differentiates them into re/im/Subs forms;
:func:`realify` swaps them for real-valued stand-ins (:class:`RealAbs`, ...) whose
derivatives are sign, Dirac delta and the floor's spike train. :class:`Kind` names what a
program computes and :func:`derivative_forms` builds its list of sympy expressions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sympy

from harness.dtypes import round_fraction
from harness.expr import Call, Const, Expr, Var, fold, walk
from harness.memo import Memo
from harness.ops import OPS

__all__ = [
    "GRADIENT",
    "HESSIAN",
    "VALUES",
    "Floor",
    "FloorSpike",
    "Kind",
    "RealAbs",
    "RealSign",
    "derivative_forms",
    "dtype_key",
    "nowhere_defined",
    "realify",
    "subtrees",
    "taylor",
]


@dataclass(frozen=True)
class Kind:
    """What a compiled program outputs, in order.

    ``values``: f itself. ``gradient``: df/dx_i for each variable. ``hessian``: the upper
    triangle d2f/dx_i dx_j, i <= j, row by row. ``taylor``: the pure partials d^k f / dx_i^k
    for k = 1..``order``, all variables of order 1 first.
    """

    name: Literal["values", "gradient", "hessian", "taylor"]
    order: int

    @property
    def derivative(self) -> bool:
        """Whether the outputs are derivatives (which need a neighbourhood of the point)."""
        return self.name != "values"


VALUES = Kind("values", 0)
GRADIENT = Kind("gradient", 1)
HESSIAN = Kind("hessian", 2)


def taylor(order: int) -> Kind:
    """The kind of the pure partials of orders 1..``order``."""
    return Kind("taylor", order)


# ---- real-valued stand-ins for sympy's complex Abs / sign / floor -----------------------


class RealAbs(sympy.Function):
    """|u| for real u; d|u|/du = sign(u) (sympy's Abs assumes u may be complex)."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> Any:
        return RealSign(self.args[0])


class RealSign(sympy.Function):
    """sign(u) for real u; its derivative is 2 * DiracDelta(u)."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> Any:
        return 2 * sympy.DiracDelta(self.args[0])


class FloorSpike(sympy.Function):
    """Any derivative of floor(u): 0 off the integers, undefined on them."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> Any:
        return FloorSpike(self.args[0])


class Floor(sympy.Function):
    """floor(u) for real u, differentiated as :class:`FloorSpike`."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> Any:
        return FloorSpike(self.args[0])


def _ceiling(u: Any) -> Any:
    return -Floor(-u)


_REAL_STANDINS: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (sympy.Abs, RealAbs),
    (sympy.sign, RealSign),
    (sympy.floor, Floor),
    (sympy.ceiling, _ceiling),
)


def realify(e: Any) -> Any:
    """``e`` with sympy's Abs, sign, floor and ceiling replaced by the real stand-ins."""
    for cls, standin in _REAL_STANDINS:
        e = e.replace(cls, standin)
    return e


# ---- the tree's subtrees as sympy forms ----------------------------------------------------


def _not_real(constant: Any) -> bool:
    """Whether a variable-free sympy expression is numerically not a finite real number
    (asin(2), log(-1)), found by ``evalf`` rather than sympy's assumptions, which can
    recurse for minutes on such constants."""
    if constant.is_Rational:
        return False
    value = constant.evalf(30)
    if value.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        return True
    return value.is_number and value.is_extended_real is False


_REAL_BUILDERS: Memo[Callable[..., Any]] = Memo(256)

_COMPLEX_PARTS = (sympy.re, sympy.im, sympy.conjugate)
"""What sympy leaves behind on an argument it cannot prove real: abs(exp(acos(x))) becomes
exp(re(acos(x))), and some rewrites of fmod over logaddexp of softsign bring a conjugate."""


def _real_builder(op: str, n: int) -> Callable[..., Any]:
    """The op table's sympy builder, made safe for arguments sympy cannot prove real.

    sympy.Abs of such an argument rewrites itself (abs(exp(acos(x))) becomes
    exp(re(acos(x)))), which neither arb nor the derivative can use. Where the built
    expression gains a ``re``, ``im`` or ``conjugate``, it is built again from a template
    whose Abs, sign and floor are the real stand-ins already. Everywhere else the builder's own
    result stands (abs(x*x) stays x**2, differentiable at 0). ``n``: the call's number
    of arguments (a variadic op's template is built per count)."""
    build = OPS[op].sympy_fn

    def make() -> Callable[..., Any]:
        dummies = [sympy.Dummy(f"a{i}", real=True) for i in range(n)]
        real = realify(build(*dummies))

        def safe(*args: Any) -> Any:
            value = build(*args)
            if value.has(*_COMPLEX_PARTS) and not any(a.has(*_COMPLEX_PARTS) for a in args):
                return real.xreplace(dict(zip(dummies, args, strict=True)))
            return value

        return safe

    return _REAL_BUILDERS.get((op, n, build), make)


def subtrees(expr: Expr, symbols: Mapping[str, Any], dtype: str) -> dict[Expr, Any]:
    """Sympy form of every distinct subtree (the fold ``harness.expr.to_sympy`` performs),
    with constants rounded to ``dtype``; ``nan`` for a subtree undefined at every point."""
    out: dict[Expr, Any] = {}

    def const(c: Const) -> Any:
        try:
            out[c] = sympy.Rational(round_fraction(c.value, dtype))
        except OverflowError:  # the engine's constant is inf: nothing is defined
            out[c] = sympy.nan
        return out[c]

    def var(v: Var) -> Any:
        out[v] = symbols[v.name]
        return out[v]

    def call(node: Call, args: tuple[Any, ...]) -> Any:
        if any(a is sympy.nan or (not a.free_symbols and _not_real(a)) for a in args):
            out[node] = sympy.nan  # undefined at every point; sympy may hang on it (Min)
            return out[node]
        try:
            value = _real_builder(node.op, len(args))(*args)
        except (TypeError, ValueError):  # Max/Min refuse constants that are not real
            value = sympy.nan
        # zoo * max(x, 0) from max(x, 0) / 0: undefined everywhere, and sympy cannot
        # differentiate through it.
        out[node] = sympy.nan if value.has(sympy.zoo, sympy.nan) else value
        return out[node]

    fold(expr, var, const, call)
    return out


def nowhere_defined(expr: Expr, trees: Mapping[Expr, Any]) -> bool:
    """Whether some node is, for sympy, a constant that is not a real number: asin(2), or
    0**-3 from pow(sign(0 * x), -3)."""
    return any(
        not t.free_symbols
        and (t is sympy.nan or t.is_extended_real is False or t.is_finite is False)
        for t in (trees[n] for n in walk(expr))
    )


def derivative_forms(f: Any, symbols: Sequence[Any], kind: Kind) -> list[Any]:
    """The sympy expressions a program of ``kind`` computes from ``f``, in output order."""
    # real stand-ins for Abs, sign and floor also for values: sympy's Abs of a cse symbol
    # (not known to be real) rewrites abs(exp(u)) into exp(re(u)), which arb cannot run
    f = realify(f)
    if kind.name == "values":
        return [f]
    if kind.name == "gradient":
        return [f.diff(s) for s in symbols]
    if kind.name == "hessian":
        grad = [f.diff(s) for s in symbols]
        n = len(symbols)
        return [grad[i].diff(symbols[j]) for i in range(n) for j in range(i, n)]
    if kind.name == "taylor":
        rows, current = [], [f] * len(symbols)
        for _ in range(kind.order):
            current = [c.diff(s) for c, s in zip(current, symbols, strict=True)]
            rows.extend(current)
        return rows
    raise ValueError(f"kind={kind!r} is not a program kind")


def dtype_key(expr: Expr, dtype: str) -> str:
    """``dtype``, or "float64" when every constant of ``expr`` is exact in ``dtype`` (the
    programs are then identical, so they share one cache entry)."""
    for node in walk(expr):
        if isinstance(node, Const):
            try:
                if round_fraction(node.value, dtype) != node.value:
                    return dtype
            except OverflowError:
                return dtype
    return "float64"
