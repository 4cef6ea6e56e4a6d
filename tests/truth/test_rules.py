"""The rule table: every sympy class the op table produces has a row, and each row's ball,
interval and series kernels compute the same function."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import sympy
from flint import arb, arb_series, ctx, fmpq

from harness.ops import OPS
from harness.truth import START_BITS, balls
from harness.truth import series as sr
from harness.truth.forms import realify
from harness.truth.rules import RULES, VALUE_RULES, Rule, lookup, pow_rule

POINTS = (-2.5, -0.7, 0.3, 0.999, 1.5)
"""Sample arguments: inside and outside each primitive's domain, clear of every jump."""


def exact(x: Any) -> Any:
    """A long double as an exact arb ball."""
    num, den = x.as_integer_ratio()
    with ctx.workprec(256):
        return arb(fmpq(num, den))


def forms_of(op: str) -> list[Any]:
    """The op on real symbols, its first and second derivatives, as the truth builds them."""
    args = [sympy.Symbol(f"a{i}", real=True) for i in range(OPS[op].arity)]
    f = realify(OPS[op].sympy_fn(*args))
    first = [f.diff(a) for a in args]
    return [f, *first, *(d.diff(a) for d in first for a in args)]


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_sympy_class_an_op_and_its_derivatives_produce_has_a_rule(op: str) -> None:
    for form in forms_of(op):
        for node in sympy.preorder_traversal(form):
            if node.args and not node.is_Number:
                lookup(node, RULES)  # raises EngineError naming the class without a row
                lookup(node, VALUE_RULES)


EXPONENTS = (2, 3, -1, -2, Fraction(1, 2), Fraction(-1, 2), Fraction(1, 3))
"""Rational powers, one of each kind of power rule."""


def rows() -> list[tuple[str, Rule]]:
    """Every row of the table, the own-value reading of each step function, and powers."""
    table = [(cls.__name__, rule) for cls, rule in RULES.items()]
    table += [
        (f"{cls.__name__} (own value)", rule)
        for cls, rule in VALUE_RULES.items()
        if RULES[cls] is not rule
    ]
    for q in map(Fraction, EXPONENTS):
        rule = pow_rule(sympy.Rational(q.numerator, q.denominator))
        assert rule is not None
        table.append((f"Pow(u, {q})", rule))
    return table


def arb_value(rule: Rule, args: list[Any]) -> Any | None:
    """The ball kernel's value, or None where it reports the point outside its domain."""
    with ctx.workprec(START_BITS):
        value = rule.arb(*args)
    if rule.guarded:
        value, events = value
        if events & balls.UNDEF:
            return None
    return value


@pytest.mark.parametrize(("name", "rule"), rows(), ids=[name for name, _ in rows()])
def test_each_rows_ball_interval_and_series_kernels_agree(name: str, rule: Rule) -> None:
    arity = 2 if rule.fold else 1
    checked = 0
    for x in POINTS:
        args = [arb(x), arb(0.5)][:arity]
        value = arb_value(rule, args)
        if value is None or not value.is_finite():
            continue
        if rule.interval is not None:
            ends = [np.array([np.longdouble(a)]) for a in (x, x, 0.5, 0.5)[: 2 * arity]]
            lo, hi, unsure, _strong = rule.interval(*ends)
            if unsure is None or not unsure[0]:
                with ctx.workprec(256):
                    enclosure = exact(lo[0]).union(exact(hi[0]))
                assert enclosure.contains(value), (name, x, value, lo[0], hi[0])
                checked += 1
        if rule.series is not None:  # the points are clear of jumps: hull = own value
            with ctx.workprec(START_BITS):
                series = rule.series(*[arb_series([a, 1]) for a in args])
            if series is not None:
                assert sr.head(series).overlaps(value), (name, x, value)
                checked += 1
    # a row may leave interval and series out (arb alone then decides); any it has is tested
    assert checked or (rule.interval is None and rule.series is None), f"no point exercised {name}"
