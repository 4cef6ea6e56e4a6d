"""Per-op templates: an op's value and partials derived by sympy once, then reused.

A :class:`Template` holds one op's realified value (:func:`~.forms.realify`), its first
partials and its second partials in real arguments a0..a(n-1), compiled once into a
small relocatable instruction list whose operands are template arguments, template
constants or earlier template results. :mod:`harness.truth.chain` instantiates it at
every node of a tree and combines the partials by the chain rule, so differentiating a
tree needs no sympy at all; only a new (op, argument count, constant arguments, rule
set) pays for sympy, once per process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sympy

from harness.engines.base import EngineError
from harness.ops import OPS
from harness.truth.forms import realify
from harness.truth.rules import CONSTANTS, UNDEFINED_ATOMS, VALUE_RULES, Rule, compile_children_first, lookup

__all__ = ["Step", "Template", "template"]


@dataclass(frozen=True)
class Step:
    """One template instruction: ``rule`` applied to one or two operand references."""

    rule: Rule
    operands: tuple[int, ...]


@dataclass(frozen=True)
class Template:
    """An op's value and partials as a relocatable instruction list.

    A reference r names an argument (r < ``n_args``), a constant
    (``constants[r - n_args]``, a sympy number: a Rational, pi, E, EulerGamma or an
    undefined atom) or the result of ``steps[r - n_args - len(constants)]``. ``value``
    is the op's value; ``first[j]`` the partial by argument j and ``second[(j, l)]``,
    j <= l, the second partial (None or absent: identically 0). ``ones`` holds the
    references to the constant 1, which the chain rule need not multiply by.
    """

    n_args: int
    constants: tuple[Any, ...]
    steps: tuple[Step, ...]
    value: int
    first: tuple[int | None, ...]
    second: Mapping[tuple[int, int], int]
    ones: frozenset[int]


class _Builder:
    """Compiles sympy forms in the dummies into one shared step list."""

    def __init__(self, dummies: list[Any], rules: Mapping[type, Rule]) -> None:
        self.rules = rules
        self.refs: dict[Any, int] = {d: i for i, d in enumerate(dummies)}
        self.constants: list[Any] = []
        self.steps: list[Step] = []
        self.n_args = len(dummies)

    def _constant(self, node: Any) -> int:
        if not (isinstance(node, sympy.Rational) or type(node) in CONSTANTS or node in UNDEFINED_ATOMS):
            raise EngineError(
                f"sympy produced the constant {node} ({type(node).__name__}), which the truth "
                "does not handle; add it to CONSTANTS in harness/truth/rules.py"
            )
        self.constants.append(node)
        return self.n_args + len(self.constants) - 1

    def _step(self, rule: Rule, operands: tuple[int, ...]) -> int:
        self.steps.append(Step(rule, operands))
        return -len(self.steps)  # results are renumbered once the constants are known

    def _node(self, node: Any) -> int:
        if not node.args or node.is_Number or node.is_NumberSymbol:
            return self._constant(node)
        rule, operands = lookup(node, self.rules)
        refs = [self.refs[a] for a in operands]
        if not rule.fold:
            return self._step(rule, tuple(refs))
        acc = refs[0]
        for r in refs[1:]:
            acc = self._step(rule, (acc, r))
        return acc

    def compile(self, root: Any) -> int:
        return compile_children_first(root, self.rules, self.refs, self._node)

    def finish(self, value: int, first: list[int | None], second: dict[tuple[int, int], int]) -> Template:
        """The template, step results renumbered after the constants."""
        base = self.n_args + len(self.constants)

        def ref(r: int) -> int:
            return base + (-r - 1) if r < 0 else r

        steps = tuple(Step(s.rule, tuple(ref(r) for r in s.operands)) for s in self.steps)
        ones = frozenset(
            self.n_args + k for k, c in enumerate(self.constants) if c is sympy.S.One
        )
        return Template(
            self.n_args,
            tuple(self.constants),
            steps,
            ref(value),
            tuple(None if r is None else ref(r) for r in first),
            {key: ref(r) for key, r in second.items()},
            ones,
        )


def _build(
    op: str, n: int, fixed: tuple[tuple[int, Any], ...], rules: Mapping[type, Rule], order: int
) -> Template:
    positions = [p for p in range(n) if p not in dict(fixed)]
    dummies = [sympy.Dummy(f"a{i}", real=True) for i in range(len(positions))]
    args: list[Any] = [None] * n
    for p, d in zip(positions, dummies, strict=True):
        args[p] = d
    for p, c in fixed:
        args[p] = c
    value = OPS[op].sympy_fn(*args)
    if order:  # derivative programs read sympy's Abs, sign and floor as real functions
        value = realify(value)
    builder = _Builder(dummies, rules)
    value_ref = builder.compile(value)
    first: list[int | None] = []
    second: dict[tuple[int, int], int] = {}
    if order:
        partials = [value.diff(d) for d in dummies]
        first = [None if p == 0 else builder.compile(p) for p in partials]
    if order > 1:
        for j, p in enumerate(partials):
            for k in range(j, len(dummies)):
                q = p.diff(dummies[k])
                if q != 0:
                    second[(j, k)] = builder.compile(q)
    return builder.finish(value_ref, first, second)


_TEMPLATES: dict[tuple[Any, ...], Template] = {}


def template(
    op: str, n: int, fixed: tuple[tuple[int, Any], ...], rules: Mapping[type, Rule], order: int
) -> Template:
    """The template of ``op`` with ``n`` arguments, the positions in ``fixed`` holding
    the given sympy constants (pow's exponent: a rational exponent picks the power's
    rule) and the others template arguments in order, compiled with ``rules``, with
    partials up to ``order`` (0: the value alone, as the op's own builder writes it; 1
    or 2: realified, as derivatives read it).

    Kept for the process's life (a template depends on the op table only, and there are
    few): sympy's work is paid once per op, not once per tree. Raises what sympy or the
    rule table raise where the op cannot be templated (the caller falls back to
    differentiating the whole tree).
    """
    key = (op, n, fixed, rules is VALUE_RULES, order)
    found = _TEMPLATES.get(key)
    if found is None:
        found = _TEMPLATES[key] = _build(op, n, fixed, rules, order)
    return found
