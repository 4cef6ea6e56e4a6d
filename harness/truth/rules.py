"""THE rule table of the truth: how each sympy class evaluates, over every kind of number.

One row per sympy function class (:data:`RULES`; powers in :func:`pow_rule`) holds, side
by side, its evaluation over arb balls (:mod:`harness.truth.balls`, or python-flint's own
method), over long double intervals (:mod:`harness.truth.intervals`, the vectorised
filter) and over power series (:mod:`harness.truth.series`, Taylor coefficients of f).
The program compiler (:mod:`harness.truth.program`) reads nothing else, so a new sympy
function class is one row here plus its kernels; an op built from existing classes
(``cbrt`` as a power with sign handling, say) needs no row at all.

A step function (sign, floor, ceiling) has two readings at its jump: a derivative program
takes the hull of both one-sided values there (the two-sided derivative may not exist:
status ``kink``), while the function's own value is well defined (sign(0) = 0, floor(2) =
2). Its row carries the own-value kernels in ``at_jump``; :data:`VALUE_RULES` is the table
value programs and the literal tree's domain check read.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import sympy
from flint import arb

from harness.engines.base import EngineError
from harness.functions import MAX_SINC_ORDER, sinc_derivative
from harness.truth import balls as b
from harness.truth import intervals as iv
from harness.truth import series as sr
from harness.truth.forms import Floor, FloorSpike, RealAbs, RealSign

__all__ = [
    "ALL_ZERO",
    "ANY_ZERO",
    "CONSTANTS",
    "NO_ZERO",
    "ORDERED",
    "RULES",
    "UNDEFINED_ATOMS",
    "VALUE_RULES",
    "Rule",
    "besseli_rule",
    "compile_children_first",
    "lookup",
    "polygamma_rule",
    "pow_rule",
]

# How a strong zero (see harness.truth.balls.STRONG_ZERO) flows through an instruction.
NO_ZERO = 0
"""The result is whatever the operands give."""
ANY_ZERO = 1
"""The result is a strong zero if any operand is one (a product)."""
ALL_ZERO = 2
"""The result is a strong zero if every operand is one (a sum)."""

IntervalFn = Callable[..., iv.Result]


@dataclass(frozen=True)
class Rule:
    """How one sympy class evaluates, over balls, intervals and series side by side.

    ``arb`` takes the first argument's ball (or, with ``fold``, is folded pairwise over all
    arguments) and returns a ball, or ``(ball, events)`` when ``guarded``. ``interval`` is
    the same over long double intervals (None: arb decides every point), ``series`` the
    same over power series for f's own value (None: the differentiated sympy program
    decides). ``zero`` says how strong zeros flow through it. ``at_jump``, for a step
    function, is its (arb, interval) pair for the function's own value at the jump.
    """

    arb: Callable[..., Any]
    interval: IntervalFn | None
    series: sr.SeriesFn | None
    guarded: bool = False
    fold: bool = False
    zero: int = NO_ZERO
    at_jump: tuple[Callable[..., Any], IntervalFn] | None = None
    germ: sr.SeriesFn | None = None

    def germ_series(self) -> sr.SeriesFn | None:
        """The series kernel one-sided germs run: ``germ`` at a break, else ``series``."""
        return self.germ if self.germ is not None else self.series

    def own_value(self) -> Rule:
        """The rule as a value program reads it: the own-value kernels at a jump."""
        if self.at_jump is None:
            return self
        fn, interval = self.at_jump
        return replace(self, arb=fn, interval=interval, at_jump=None)


def _guarded_off_zero(fn: Callable[[Any], Any]) -> Callable[[Any], b.Guarded]:
    """``fn`` (cot, csc, coth, csch) for a ball clear of 0; undefined at an exact 0."""
    return b.guarded_on(fn, lambda u: not u.contains(0), arb.is_zero)


RULES: Mapping[type, Rule] = MappingProxyType(
    {
        sympy.Add: Rule(operator.add, iv.add, sr.add, fold=True, zero=ALL_ZERO),
        sympy.Mul: Rule(operator.mul, iv.mul, sr.mul, fold=True, zero=ANY_ZERO),
        sympy.Max: Rule(b.maximum, iv.maximum, sr.maximum, fold=True, germ=sr.maximum_germ),
        sympy.Min: Rule(b.minimum, iv.minimum, sr.minimum, fold=True, germ=sr.minimum_germ),
        sympy.exp: Rule(arb.exp, iv.exp, sr.exp),
        sympy.log: Rule(b.log, iv.log, sr.log, guarded=True),
        sympy.sin: Rule(arb.sin, iv.sin, sr.sin),
        sympy.cos: Rule(arb.cos, iv.cos, sr.cos),
        sympy.tan: Rule(arb.tan, iv.tan, sr.tan),
        sympy.sec: Rule(arb.sec, iv.sec, sr.sec),
        sympy.csc: Rule(_guarded_off_zero(arb.csc), iv.csc, sr.csc, guarded=True),
        sympy.cot: Rule(_guarded_off_zero(arb.cot), iv.cot, sr.cot, guarded=True),
        sympy.sinh: Rule(arb.sinh, iv.sinh, sr.sinh),
        sympy.cosh: Rule(arb.cosh, iv.cosh, sr.cosh),
        sympy.tanh: Rule(arb.tanh, iv.tanh, sr.tanh),
        sympy.sech: Rule(arb.sech, iv.sech, sr.sech),
        sympy.csch: Rule(_guarded_off_zero(arb.csch), iv.csch, sr.csch, guarded=True),
        sympy.coth: Rule(_guarded_off_zero(arb.coth), iv.coth, sr.coth, guarded=True),
        sympy.asin: Rule(b.arcsine_like("asin"), iv.asin, sr.asin, guarded=True),
        sympy.acos: Rule(b.arcsine_like("acos"), iv.acos, sr.acos, guarded=True),
        sympy.atan: Rule(arb.atan, iv.atan, sr.atan),
        sympy.asinh: Rule(arb.asinh, iv.asinh, sr.asinh),
        sympy.acosh: Rule(
            b.guarded_on(arb.acosh, lambda u: u >= 1, lambda u: u < 1), iv.acosh, sr.acosh, guarded=True
        ),
        sympy.atanh: Rule(
            b.guarded_on(arb.atanh, lambda u: abs(u) < 1, lambda u: abs(u) >= 1),
            iv.atanh,
            sr.atanh,
            guarded=True,
        ),
        sympy.erf: Rule(arb.erf, iv.erf, sr.erf),
        sympy.erfc: Rule(arb.erfc, iv.erfc, sr.erfc),
        sympy.Abs: Rule(abs, iv.absolute, sr.absolute, germ=sr.absolute_germ),
        RealAbs: Rule(abs, iv.absolute, sr.absolute, germ=sr.absolute_germ),
        # jumps: the hull of both sides at the jump; ``at_jump`` the function's own value
        sympy.Heaviside: Rule(
            b.jump(0, 1), iv.jump(0, 1), sr.heaviside, guarded=True, germ=sr.heaviside_germ
        ),
        sympy.sign: Rule(
            b.jump(-1, 1), iv.jump(-1, 1), sr.sign, guarded=True, at_jump=(b.sign_value, iv.sign_value),
            germ=sr.sign_germ,
        ),
        RealSign: Rule(
            b.jump(-1, 1), iv.jump(-1, 1), sr.sign, guarded=True, at_jump=(b.sign_value, iv.sign_value),
            germ=sr.sign_germ,
        ),
        sympy.floor: Rule(
            b.floor_hull, iv.floor_hull, sr.floor, guarded=True, at_jump=(b.floor_value, iv.floor_value),
            germ=sr.floor_germ,
        ),
        Floor: Rule(
            b.floor_hull, iv.floor_hull, sr.floor, guarded=True, at_jump=(b.floor_value, iv.floor_value),
            germ=sr.floor_germ,
        ),
        sympy.ceiling: Rule(
            b.ceiling_hull,
            iv.ceiling_hull,
            sr.ceiling,
            guarded=True,
            at_jump=(b.ceiling_value, iv.ceiling_value),
            germ=sr.ceiling_germ,
        ),
        # special functions of the reach ops (arb decides every point: no interval kernel)
        sympy.loggamma: Rule(b.lgamma, None, sr.lgamma, guarded=True),
        sympy.erfinv: Rule(b.erfinv, None, None, guarded=True),
        sympy.atan2: Rule(b.atan2, None, sr.atan2, guarded=True, fold=True),
        **{
            sinc_derivative(n): Rule(b.sinc_derivative(n), None, sr.sinc if n == 0 else None)
            for n in range(MAX_SINC_ORDER + 1)
        },
        # derivatives of jumps: a strong zero away from the jump
        sympy.DiracDelta: Rule(b.spike, iv.spike, None, guarded=True),
        FloorSpike: Rule(b.floor_spike, iv.floor_spike, None, guarded=True),
    }
)
"""One row per sympy function class (found along the class's MRO)."""

VALUE_RULES: Mapping[type, Rule] = MappingProxyType({cls: r.own_value() for cls, r in RULES.items()})
""":data:`RULES` as value programs read them (see :meth:`Rule.own_value`)."""

_RUNTIME_POW = Rule(b.runtime_pow, iv.runtime_pow, sr.runtime_pow, guarded=True)


def pow_rule(exponent: Any) -> Rule | None:
    """The unary rule for ``base**exponent`` when the exponent is a rational number
    (None otherwise: both operands are then computed, see :func:`lookup`)."""
    if not isinstance(exponent, sympy.Rational):
        return None
    q = Fraction(int(exponent.p), int(exponent.q))
    series = sr.rational_pow(q)
    if q.denominator == 1 and q >= 0:
        return Rule(
            b.nonneg_int_pow(q.numerator),
            iv.nonneg_int_pow(q.numerator),
            series,
            zero=ANY_ZERO if q else NO_ZERO,
        )
    if q.denominator == 1:
        return Rule(b.neg_int_pow(q.numerator), iv.neg_int_pow(q.numerator), series, guarded=True)
    interval = {Fraction(1, 2): iv.sqrt, Fraction(-1, 2): iv.rsqrt}.get(q)
    if interval is None:
        interval = iv.real_pow(q.numerator, q.denominator)
    return Rule(b.real_pow(q), interval, series, guarded=True)


def polygamma_rule(n: int) -> Rule:
    """The rule for polygamma(n, u), u > 0 (n = 0: digamma)."""
    return Rule(b.polygamma(n), None, None, guarded=True)


def besseli_rule(order: int) -> Rule:
    """The rule for besseli(order, u), the modified Bessel function of integer order."""
    return Rule(b.bessel_i(order), None, None)


ORDERED: Mapping[type, Callable[[int], Rule]] = MappingProxyType(
    {sympy.polygamma: polygamma_rule, sympy.besseli: besseli_rule}
)
"""Sympy classes whose first argument is an integer order, built into the rule (as a
rational exponent is for powers); the rule reads the second argument."""


def lookup(node: Any, rules: Mapping[type, Rule]) -> tuple[Rule, tuple[Any, ...]]:
    """The rule for ``node`` in ``rules`` (:data:`RULES` or :data:`VALUE_RULES`) and the
    arguments it reads: Heaviside's and DiracDelta's further arguments are conventions,
    and a rational exponent or an integer order (:data:`ORDERED`) is built into its rule."""
    if isinstance(node, sympy.Pow):
        rule = pow_rule(node.exp)
        if rule is not None:
            return rule, (node.base,)
        return _RUNTIME_POW, node.args
    ordered = ORDERED.get(type(node))
    if ordered is not None:
        order = node.args[0]
        if not (order.is_Integer and order.is_number):
            raise EngineError(f"{node}: the truth evaluates {type(node).__name__} of integer orders only")
        return ordered(int(order)), (node.args[1],)
    for cls in type(node).__mro__:
        found = rules.get(cls)
        if found is not None:
            return found, (node.args if found.fold else node.args[:1])
    raise EngineError(
        f"sympy produced {type(node).__name__} (in {node}), which the truth has no rule "
        "for; add a row for it to RULES in harness/truth/rules.py"
    )


def compile_children_first(
    root: Any, rules: Mapping[type, Rule], known: dict[Any, int], make: Callable[[Any], int]
) -> int:
    """What ``make`` gives for the sympy expression ``root`` (a slot or a reference),
    kept in ``known`` with every subexpression it reads, each made after its operands
    (iteratively: deep trees do not hit the recursion limit)."""
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if node in known:
            continue
        if expanded or not node.args or node.is_Number:
            known[node] = make(node)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in lookup(node, rules)[1] if c not in known)
    return known[root]


CONSTANTS: Mapping[type, Callable[[], Any]] = MappingProxyType(
    {
        type(sympy.pi): arb.pi,
        type(sympy.E): arb.const_e,
        type(sympy.EulerGamma): arb.const_euler,  # digamma(1) = -EulerGamma
    }
)
"""Sympy's number symbols -> the arb ball of each at the working precision."""

UNDEFINED_ATOMS = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I)
"""Constants that are not finite real numbers: wherever one appears, the entry is undefined."""
