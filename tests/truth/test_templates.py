"""Per-op templates: sympy's partials of one op, compiled once into relocatable steps."""

from __future__ import annotations

import sympy

from harness.truth import intervals as iv
from harness.truth.rules import RULES, VALUE_RULES
from harness.truth.templates import template


def test_a_template_is_built_once_per_op_and_constant_arguments() -> None:
    assert template("sin", 1, (), RULES, 2) is template("sin", 1, (), RULES, 2)
    assert template("sin", 1, (), RULES, 2) is not template("sin", 1, (), VALUE_RULES, 0)


def test_a_rational_exponent_is_built_into_the_power_rule() -> None:
    half = template("pow", 2, ((1, sympy.Rational(1, 2)),), RULES, 2)
    assert half.n_args == 1
    step = half.steps[half.value - half.n_args - len(half.constants)]
    assert step.rule.interval is iv.sqrt and step.operands == (0,)


def test_a_value_template_keeps_every_argument_a_template_argument() -> None:
    # the literal domain reads pow(x, c) as a power computed at run time, as before
    runtime = template("pow", 2, (), VALUE_RULES, 0)
    assert runtime.n_args == 2 and runtime.first == () and not runtime.second


def test_the_partials_of_a_sum_are_the_constant_one() -> None:
    add = template("add", 2, (), RULES, 2)
    assert all(p in add.ones for p in add.first)
    assert not add.second  # a sum's second partials vanish identically


def test_a_product_has_one_mixed_second_partial_and_no_pure_ones() -> None:
    mul = template("mul", 2, (), RULES, 2)
    assert mul.first == (1, 0)  # d(a0 a1)/da0 = a1, d/da1 = a0
    assert set(mul.second) == {(0, 1)} and mul.second[(0, 1)] in mul.ones


def test_relu_differentiates_into_a_guarded_heaviside() -> None:
    relu = template("relu", 1, (), RULES, 1)
    (first,) = relu.first
    assert first is not None
    step = relu.steps[first - relu.n_args - len(relu.constants)]
    assert step.rule is RULES[sympy.Heaviside]
