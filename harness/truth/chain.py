"""Gradient and Hessian programs by the chain rule over per-op templates, without sympy.

Each node of the literal tree instantiates its op's :class:`~.templates.Template` on its
arguments' slots; its tangents (first derivatives by each variable) and Hessian entries
follow by forward-mode chain rule:

    t(node, i)     = sum_j p_j t(a_j, i)
    H(node)[i][k]  = sum_j p_j H(a_j)[i][k] + sum_{j,l} q_jl t(a_j, i) t(a_l, k)

with p_j, q_jl the op's first and second partials. Products and sums are the rule
table's Mul and Add, so strong zeros flow through them as through sympy's forms (a
Heaviside away from its break zeroes its product even with an undefined factor). A
derivative by a variable that does not occur in a subtree is structurally absent: no
term is emitted, so d/dx (x + floor(y)) at y = 1 is 1, not FloorSpike(1) * 0. The
literal tree's domain outputs come from the ops' own value templates.

Equal instructions on equal slots are emitted once (value numbering), so the domain
check, the chain rule's values and repeated partials share their work.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import sympy
from flint import arb, fmpq

from harness.dtypes import round_fraction
from harness.expr import Call, Const, Expr, Var, variables, walk
from harness.ops import OPS
from harness.truth.forms import Kind
from harness.truth.program import Instruction, Program
from harness.truth.rules import CONSTANTS, RULES, VALUE_RULES, Rule
from harness.truth.templates import Template, template

__all__ = ["chain_program"]

_ONE = -1  # the structural 1: the tangent of a variable by itself
_MUL = RULES[sympy.Mul]
_ADD = RULES[sympy.Add]


class _Emitter:
    """Appends instructions and constants to a program, each distinct one once."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.seen: dict[Any, int] = {}

    def constant(self, value: Any) -> int:
        """Slot of a sympy number (see :class:`~.templates.Template`) or a Fraction."""
        key = ("const", value)
        slot = self.seen.get(key)
        if slot is not None:
            return slot
        slot = self.seen[key] = self.program.new_slot()
        if isinstance(value, Fraction):
            value = sympy.Rational(value.numerator, value.denominator)
        if isinstance(value, sympy.Rational):
            exact = fmpq(int(value.p), int(value.q))
            self.program.constants.append((slot, functools.partial(arb, exact)))
        elif type(value) in CONSTANTS:
            self.program.constants.append((slot, CONSTANTS[type(value)]))
        else:  # an undefined atom (templates admit nothing else)
            self.program.constants.append((slot, arb.nan))
            self.program.undefined_constants.append(slot)
        return slot

    def emit(self, rule: Rule, operands: Sequence[int], values: bool) -> int:
        """Slot of ``rule`` on ``operands``; ``values``: from a value template (its
        instruction carries series kernels, as the sympy compiler's domain code does)."""
        i, j = operands[0], (operands[1] if len(operands) > 1 else -1)
        key = (rule.arb, rule.interval, rule.guarded, rule.zero, i, j)
        slot = self.seen.get(key)
        if slot is not None:
            return slot
        program = self.program
        slot = self.seen[key] = program.new_slot()
        program.code.append(Instruction(slot, rule.arb, i, j, rule.guarded, rule.zero))
        program.intervals.append(rule.interval)
        program.series.append(rule.series if values else None)
        program.germs.append(rule.germ_series() if values else None)
        return slot

    def one(self, slot: int) -> int:
        return self.constant(sympy.S.One) if slot == _ONE else slot

    def mul(self, a: int, b: int) -> int:
        if a == _ONE:
            return b
        if b == _ONE:
            return a
        return self.emit(_MUL, (a, b), False)

    def add(self, terms: Sequence[int]) -> int:
        acc = terms[0]
        for t in terms[1:]:
            acc = self.emit(_ADD, (self.one(acc), self.one(t)), False)
        return acc


class _Instance:
    """A template placed on argument slots; its results are emitted when first asked for."""

    def __init__(self, emitter: _Emitter, tmpl: Template, args: Sequence[int], values: bool) -> None:
        self.emitter = emitter
        self.tmpl = tmpl
        self.slots: dict[int, int] = dict(enumerate(args))
        self.values = values

    def slot(self, ref: int) -> int:
        """Slot of template reference ``ref``; ``_ONE`` for the constant 1."""
        found = self.slots.get(ref)
        if found is not None:
            return found
        tmpl = self.tmpl
        if ref in tmpl.ones:
            return _ONE
        k = ref - tmpl.n_args
        if k < len(tmpl.constants):
            found = self.emitter.constant(tmpl.constants[k])
        else:
            step = tmpl.steps[k - len(tmpl.constants)]
            operands = [self.emitter.one(self.slot(r)) for r in step.operands]
            found = self.emitter.emit(step.rule, operands, self.values)
        self.slots[ref] = found
        return found


def _split_args(node: Call, consts: Mapping[Expr, Any]) -> tuple[tuple[tuple[int, Any], ...], list[Expr]]:
    """The op's constant arguments that are tree constants (built into the template)
    and the remaining arguments, in order."""
    fixed = tuple(
        (p, consts[a]) for p in OPS[node.op].const_args
        if isinstance(a := node.args[p], Const) and consts[a] is not None
    )
    positions = {p for p, _ in fixed}
    return fixed, [a for p, a in enumerate(node.args) if p not in positions]


def chain_program(expr: Expr, dtype: str, kind: Kind) -> Program:
    """The GRADIENT or HESSIAN program of ``expr`` (constants rounded to ``dtype``) by the
    chain rule over op templates: the same outputs, in the same order, as the sympy
    compiler's (see :mod:`.program`). Raises what building a template raises (sympy or
    the rule table refusing an op)."""
    if kind.name not in ("gradient", "hessian"):
        raise ValueError(f"kind={kind!r}: the chain rule builds gradient and hessian programs only")
    order = kind.order
    names = variables(expr)
    n = len(names)
    entries = [(i, i) for i in range(n)] if order == 1 else [(i, k) for i in range(n) for k in range(i, n)]
    program = Program(n, len(entries), derivative=True)
    em = _Emitter(program)
    consts: dict[Expr, Any] = {}  # tree constant -> sympy Rational, None where it overflows
    value: dict[Expr, int] = {}
    tangent: dict[Expr, dict[int, int]] = {}
    hessian: dict[Expr, dict[tuple[int, int], int]] = {}
    for node in walk(expr):
        if isinstance(node, Var):
            i = names.index(node.name)
            value[node], tangent[node], hessian[node] = i, {i: _ONE}, {}
            continue
        if isinstance(node, Const):
            try:
                consts[node] = sympy.Rational(round_fraction(node.value, dtype))
                value[node] = em.constant(consts[node])
            except OverflowError:  # the engine's constant is inf: nothing is defined
                consts[node] = None
                value[node] = em.constant(sympy.nan)
            tangent[node], hessian[node] = {}, {}
            continue
        fixed, args = _split_args(node, consts)
        tmpl = template(node.op, len(node.args), fixed, RULES, order)
        inst = _Instance(em, tmpl, [value[a] for a in args], False)
        value[node] = em.one(inst.slot(tmpl.value))
        # partials by arguments that carry no variable are never emitted
        first = [
            None if r is None or not tangent[a] else inst.slot(r)
            for r, a in zip(tmpl.first, args, strict=True)
        ]
        t: dict[int, int] = {}
        for i in sorted({i for a in args for i in tangent[a]}):
            terms = [
                em.mul(p, tangent[a][i])
                for p, a in zip(first, args, strict=True)
                if p is not None and i in tangent[a]
            ]
            if terms:
                t[i] = em.add(terms)
        tangent[node], hessian[node] = t, {}
        if order == 2:
            hessian[node] = _hessian(em, inst, first, [tangent[a] for a in args], [hessian[a] for a in args])
    found: Mapping[Any, int] = tangent[expr] if order == 1 else hessian[expr]
    keys = [e[0] if order == 1 else e for e in entries]
    zero = em.constant(sympy.S.Zero) if any(k not in found for k in keys) else -1
    outputs = [em.one(found.get(k, zero)) for k in keys]
    program.outputs = outputs + _domain(em, expr, consts, names)
    return program


def _hessian(
    em: _Emitter,
    inst: _Instance,
    first: Sequence[int | None],
    tangents: Sequence[Mapping[int, int]],
    hessians: Sequence[Mapping[tuple[int, int], int]],
) -> dict[tuple[int, int], int]:
    """A node's Hessian entries (i <= k) from its arguments' tangents and Hessians."""
    second = inst.tmpl.second
    present = {i for tj in tangents for i in tj}
    keys = sorted({key for h in hessians for key in h} | {(i, k) for i in present for k in present if i <= k})
    out: dict[tuple[int, int], int] = {}
    for i, k in keys:
        terms = [
            em.mul(p, h[(i, k)])
            for p, h in zip(first, hessians, strict=True)
            if p is not None and (i, k) in h
        ]
        for j, tj in enumerate(tangents):
            if i not in tj:
                continue
            for m, tm in enumerate(tangents):
                ref = second.get((min(j, m), max(j, m)))
                if ref is None or k not in tm:
                    continue
                terms.append(em.mul(em.mul(inst.slot(ref), tj[i]), tm[k]))
        if terms:
            out[(i, k)] = em.add(terms)
    return out


def _domain(em: _Emitter, expr: Expr, consts: Mapping[Expr, Any], names: Sequence[str]) -> list[int]:
    """Slots of every node of the literal tree but its variables, in walk order, as the
    op's own builder writes it and with the functions' own values at jumps: their
    definedness gates every entry (``x / x`` is undefined at 0)."""
    slots: dict[Expr, int] = {}
    for node in walk(expr):
        if isinstance(node, Var):
            slots[node] = names.index(node.name)
        elif isinstance(node, Const):
            c = consts.get(node)
            slots[node] = em.constant(sympy.nan if c is None else c)
        else:
            tmpl = template(node.op, len(node.args), (), VALUE_RULES, 0)
            inst = _Instance(em, tmpl, [slots[a] for a in node.args], True)
            slots[node] = em.one(inst.slot(tmpl.value))
    return [slots[n] for n in walk(expr) if not isinstance(n, Var)]
