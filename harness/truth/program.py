"""The truth's straight-line programs: sympy forms compiled once, run over balls, intervals
and series.

:func:`compiled` builds gradient and Hessian programs by the chain rule over per-op
templates (:mod:`harness.truth.chain`, no sympy per tree). Values, pure partials of order
k, and trees with an op sympy cannot template come from the whole tree's sympy forms of
one :class:`~harness.truth.forms.Kind` (:mod:`harness.truth.forms`): their common
subexpressions shared through ``sympy.cse``, one instruction per remaining node, each
carrying its rule's three kernels (:mod:`harness.truth.rules`). The outputs are the
entries, then every node of the *literal* tree (x/x stays a division, undefined at 0
although sympy reads it as 1), whose definedness gates every entry. A :class:`Program`
runs on arb balls (:meth:`Program.run`), on all points at once over long double
intervals (:meth:`Program.run_intervals`) and on power series (:meth:`Program.run_series`);
:mod:`harness.truth.certify` decides what the answers are worth.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import sympy
from flint import arb, ctx, fmpq

from harness.engines.base import EngineError
from harness.expr import Const, Expr, Var, variables, walk
from harness.memo import Memo
from harness.ops import OPS
from harness.truth import balls as b
from harness.truth import intervals as iv
from harness.truth import series as sr
from harness.truth.forms import Kind, derivative_forms, nowhere_defined, subtrees
from harness.truth.rules import (
    ALL_ZERO,
    ANY_ZERO,
    CONSTANTS,
    RULES,
    UNDEFINED_ATOMS,
    VALUE_RULES,
    Rule,
    compile_children_first,
    lookup,
)

__all__ = ["Instruction", "Program", "compiled", "compiled_sympy"]

_ONE = np.longdouble(1)


class Instruction(NamedTuple):
    """One step of a program: ``dst = fn(slot first)`` or ``fn(first, second)``."""

    dst: int
    fn: Callable[..., Any]
    first: int
    second: int  # -1 for a unary instruction
    guarded: bool  # fn returns (ball, event bits)
    zero: int  # how strong zeros flow through it (harness.truth.rules.NO_ZERO, ...)


class Program:
    """A straight-line program computing ``n_entries`` outputs, followed by domain outputs
    (every literal subtree's value) whose definedness gates all entries.

    Slots hold inputs first, then constants, then instruction results. :meth:`run` takes
    a fast pass and, only when some primitive reported an event, a careful pass that
    tracks which outputs each event reaches.
    """

    def __init__(self, n_inputs: int, n_entries: int, derivative: bool = True) -> None:
        self.n_inputs = n_inputs
        self.n_entries = n_entries
        self.derivative = derivative  # outputs are derivatives: they need a neighbourhood
        self.n_slots = n_inputs
        self.constants: list[tuple[int, Callable[[], Any]]] = []
        self.undefined_constants: list[int] = []  # non-real or infinite constants
        self.code: list[Instruction] = []
        self.intervals: list[Callable[..., iv.Result] | None] = []  # per instruction
        self.series: list[sr.SeriesFn | None] = []  # per instruction
        self.germs: list[sr.SeriesFn | None] = []  # per instruction: one-sided at a break
        self.outputs: list[int] = []
        self._frames: dict[int, list[Any]] = {}
        self._interval_constants: list[tuple[int, Any, Any]] | None = None

    def new_slot(self) -> int:
        """A fresh slot's index."""
        self.n_slots += 1
        return self.n_slots - 1

    def frame(self, prec: int) -> list[Any]:
        """Every slot, with the constants' balls at precision ``prec`` filled in (made
        once per precision; callers copy it)."""
        frame = self._frames.get(prec)
        if frame is None:
            frame = [None] * self.n_slots
            for slot, make in self.constants:
                frame[slot] = make()
            self._frames[prec] = frame
        return frame

    def run(self, inputs: Sequence[Any]) -> tuple[list[Any], list[int]]:
        """Outputs at the current ``ctx.prec`` and the event bits that reached each."""
        vals = list(self.frame(ctx.prec))
        vals[: self.n_inputs] = inputs
        eventful = bool(self.undefined_constants)
        for dst, fn, i, j, guarded, _zero in self.code:
            r = fn(vals[i]) if j < 0 else fn(vals[i], vals[j])
            if guarded:
                r, ev = r
                eventful = eventful or ev != 0
            vals[dst] = r
        if eventful:
            return self._run_careful(inputs)
        return [vals[s] for s in self.outputs], [0] * len(self.outputs)

    def _run_careful(self, inputs: Sequence[Any]) -> tuple[list[Any], list[int]]:
        """Like :meth:`run`, tracking event bits per slot and strong zeros.

        A strong zero (Heaviside or a Dirac spike away from its break) marks a chain-rule
        term through a locally inactive branch (relu below 0, the smaller side of a max):
        that term is 0 near the point, whatever its other factors are, even undefined
        ones (d/dy sqrt(relu(y)) at y = -1 is 0, not 0 * inf).
        """
        vals = list(self.frame(ctx.prec))
        vals[: self.n_inputs] = inputs
        flags = [0] * self.n_slots
        for slot in self.undefined_constants:
            flags[slot] = b.UNDEF
        strong = [False] * self.n_slots
        for dst, fn, i, j, guarded, zero in self.code:
            if (
                zero == ANY_ZERO
                and (strong[i] or (j >= 0 and strong[j]))
                or (zero == ALL_ZERO and strong[i] and strong[j])
            ):
                vals[dst], strong[dst] = b.STRONG_ZERO, True
                continue
            r = fn(vals[i]) if j < 0 else fn(vals[i], vals[j])
            f = flags[i] | (flags[j] if j >= 0 else 0)
            if guarded:
                r, ev = r
                f |= ev
                strong[dst] = r is b.STRONG_ZERO
            vals[dst], flags[dst] = r, f
        return [vals[s] for s in self.outputs], [flags[s] for s in self.outputs]

    def run_intervals(
        self, pts: np.ndarray, bits: int, *, keep_unsure: bool = True
    ) -> tuple[list[Any], list[Any], list[Any]]:
        """All points at once over long double intervals (see :mod:`.intervals`), the
        constants enclosed from their arb balls at ``bits``.

        Returns per output the lower ends, upper ends and an "unsure" mask (points where
        some primitive could not vouch for its result, or None). Strong zeros flow as in
        :meth:`_run_careful` and make values exactly 0, but an unsure factor leaves the
        point unsure: arb's careful pass decides what a strong zero overrules.

        Unsure is sticky: every result computed from an unsure value is unsure. With
        ``keep_unsure=False`` an unsure value is replaced by [1, 1] for what follows (its
        outputs' ends are then meaningless where they are unsure): x87 arithmetic on
        infinities and NaNs takes a microsecond per element, and far out in bfloat16
        (exp(1e38)) most of a batch is infinite.
        """
        n = len(pts)
        lo: list[Any] = [None] * self.n_slots
        hi: list[Any] = [None] * self.n_slots
        unsure: list[Any] = [None] * self.n_slots
        strong: list[Any] = [None] * self.n_slots
        not_finite = ~np.isfinite(pts).all(axis=1) if pts.size else np.zeros(n, dtype=bool)
        for k in range(self.n_inputs):
            lo[k] = hi[k] = np.where(np.isfinite(pts[:, k]), pts[:, k], 0.0).astype(np.longdouble)
            unsure[k] = not_finite if not_finite.any() else None
        if self._interval_constants is None:
            with ctx.workprec(bits):
                self._interval_constants = [(s, *iv.from_arb(make())) for s, make in self.constants]
        for slot, a, c in self._interval_constants:
            lo[slot], hi[slot] = np.full(n, a), np.full(n, c)
        for slot in self.undefined_constants:
            unsure[slot] = np.ones(n, dtype=bool)
        with np.errstate(all="ignore"):
            for (dst, _fn, i, j, _guarded, zero), fn in zip(self.code, self.intervals, strict=True):
                if fn is None:  # no interval version: arb decides every point
                    everywhere = np.ones(n, dtype=bool)
                    return [lo[0]] * len(self.outputs), [hi[0]] * len(self.outputs), [everywhere] * len(
                        self.outputs
                    )
                if j < 0:
                    a, c, u, z = fn(lo[i], hi[i])
                    given = unsure[i]
                else:
                    a, c, u, z = fn(lo[i], hi[i], lo[j], hi[j])
                    given = iv.either(unsure[i], unsure[j])
                if zero == ANY_ZERO:
                    z = iv.either(strong[i], strong[j] if j >= 0 else None)
                elif zero == ALL_ZERO:
                    z = None if strong[i] is None or strong[j] is None else strong[i] & strong[j]
                elif z is not None and given is not None:
                    z = z & ~given  # a jump is a strong zero only where its argument is sure
                # near the ends of long double's range arb decides (over- and underflow)
                u = iv.either(iv.either(u, given), iv.extreme(a, c))
                if z is not None:
                    if not z.any():
                        z = None
                    else:  # an unsure factor still sends the point to arb
                        a, c = np.where(z, 0, a), np.where(z, 0, c)
                if not keep_unsure and u is not None and u.any():
                    a, c = np.where(u, _ONE, a), np.where(u, _ONE, c)
                lo[dst], hi[dst], unsure[dst], strong[dst] = a, c, u, z
        return [lo[s] for s in self.outputs], [hi[s] for s in self.outputs], [unsure[s] for s in self.outputs]

    def run_series(self, vals: list[Any], *, germ: bool = False) -> list[Any] | None:
        """Outputs over power series, from ``vals`` (every slot; inputs and constants as
        series filled in, and overwritten with the results), or None where some
        instruction has no series at this point (a kink, a domain edge). With ``germ``,
        functions with a break take their one-sided germ for t -> 0+ instead (see
        :mod:`.series`). Value programs only: they alone carry a series kernel per
        instruction; an instruction without a kernel (a rule with no germ) gives None too."""
        kernels = self.germs if germ else self.series
        for (dst, _fn, i, j, _guarded, _zero), fn in zip(self.code, kernels, strict=True):
            if fn is None:  # a class with no series kernel (besseli inside i0e's kink)
                return None
            r = fn(vals[i]) if j < 0 else fn(vals[i], vals[j])
            if r is None:
                return None
            vals[dst] = r
        return [vals[s] for s in self.outputs]


class _Compiler:
    """Turns sympy expressions into a :class:`Program`, sharing equal subexpressions."""

    def __init__(self, program: Program, symbols: Sequence[Any], rules: Mapping[type, Rule]):
        self.program = program
        self.rules = rules
        self.slots: dict[Any, int] = {s: i for i, s in enumerate(symbols)}

    def constant(self, node: Any) -> int:
        slot = self.program.new_slot()
        if isinstance(node, sympy.Rational):
            value = fmpq(int(node.p), int(node.q))
            self.program.constants.append((slot, functools.partial(arb, value)))
        elif type(node) in CONSTANTS:
            self.program.constants.append((slot, CONSTANTS[type(node)]))
        elif node in UNDEFINED_ATOMS:
            self.program.constants.append((slot, arb.nan))
            self.program.undefined_constants.append(slot)
        else:
            raise EngineError(
                f"sympy produced the constant {node} ({type(node).__name__}), which the truth "
                "does not handle; add it to CONSTANTS in harness/truth/rules.py"
            )
        return slot

    def emit(self, rule: Rule, i: int, j: int = -1) -> int:
        dst = self.program.new_slot()
        self.program.code.append(Instruction(dst, rule.arb, i, j, rule.guarded, rule.zero))
        self.program.intervals.append(rule.interval)
        # series only where the function's own values are computed: f's Taylor terms
        self.program.series.append(rule.series if self.rules is VALUE_RULES else None)
        self.program.germs.append(rule.germ_series() if self.rules is VALUE_RULES else None)
        return dst

    def node(self, node: Any) -> int:
        """Slot of ``node`` once its operands have slots (see :meth:`compile`)."""
        if not node.args or node.is_Number or node.is_NumberSymbol:
            return self.constant(node)
        rule, operands = lookup(node, self.rules)
        args = [self.slots[a] for a in operands]
        if not rule.fold:
            return self.emit(rule, args[0], args[1] if len(args) > 1 else -1)
        acc = args[0]
        for a in args[1:]:
            acc = self.emit(rule, acc, a)
        return acc

    def compile(self, root: Any) -> int:
        """Slot of ``root``, emitting code for every subexpression not seen yet."""
        return compile_children_first(root, self.rules, self.slots, self.node)


def _literal_domain(compiler: _Compiler, expr: Expr, trees: Mapping[Expr, Any]) -> list[int]:
    """Slots computing every node of the literal tree exactly as written (x/x stays a
    division, so it is undefined at 0 although sympy reads it as 1), with the functions'
    own values at jumps. Their definedness gates every entry."""
    rules, compiler.rules = compiler.rules, VALUE_RULES
    slots: dict[Expr, int] = {}
    for node in walk(expr):
        if isinstance(node, Var):
            slots[node] = compiler.slots[trees[node]]
        elif isinstance(node, Const):
            slots[node] = compiler.compile(trees[node])
        else:
            operands = [sympy.Dummy(real=True) for _ in node.args]
            for d, a in zip(operands, node.args, strict=True):
                compiler.slots[d] = slots[a]
            slots[node] = compiler.compile(OPS[node.op].sympy_fn(*operands))
    compiler.rules = rules
    return [slots[n] for n in walk(expr) if not isinstance(n, Var)]


def _compile_sympy(expr: Expr, dtype: str, kind: Kind) -> Program:
    """The program of ``kind`` from the whole tree's sympy forms (sympy.diff, then cse)."""
    names = variables(expr)
    symbols = [sympy.Symbol(n, real=True) for n in names]
    trees = subtrees(expr, dict(zip(names, symbols, strict=True)), dtype)
    try:
        forms = derivative_forms(trees[expr], symbols, kind)
    except (TypeError, ValueError) as error:  # sympy refuses a non-real constant part
        if not nowhere_defined(expr, trees):
            raise EngineError(
                f"sympy could not differentiate {expr} ({error}); no node of it is "
                "undefined everywhere, so this is a gap in the truth engine: report it"
            ) from error
        forms = [sympy.nan] * len(derivative_forms(sympy.Integer(0), symbols, kind))
    program = Program(len(names), len(forms), derivative=kind.derivative)
    compiler = _Compiler(program, symbols, RULES if kind.derivative else VALUE_RULES)
    replacements, reduced = sympy.cse(
        forms, symbols=sympy.numbered_symbols("_cse", cls=sympy.Dummy), order="none"
    )
    for sym, sub in replacements:
        compiler.slots[sym] = compiler.compile(sub)
    program.outputs = [compiler.compile(e) for e in reduced]
    program.outputs += _literal_domain(compiler, expr, trees)
    return program


def _compile(expr: Expr, dtype: str, kind: Kind) -> Program:
    """Gradients and Hessians by the chain rule over op templates (no sympy per tree, see
    :mod:`.chain`); values and pure partials of order k, and any tree with an op sympy
    cannot template, from the whole tree's sympy forms."""
    if kind.name in ("gradient", "hessian"):
        from harness.truth.chain import chain_program  # chain builds Programs: it imports this module

        try:
            return chain_program(expr, dtype, kind)
        except (TypeError, ValueError, EngineError):
            pass  # the sympy path reports it, or differentiates the tree as a whole
    return _compile_sympy(expr, dtype, kind)


_PROGRAMS: Memo[Program] = Memo(256)


def compiled(expr: Expr, dtype: str, kind: Kind) -> Program:
    """The program computing ``kind`` for ``expr`` with constants rounded to ``dtype``
    (remembered for the last 256 (tree, dtype, kind); pass
    :func:`~harness.truth.forms.dtype_key`'s dtype so dtypes that hold every constant
    share one)."""
    return _PROGRAMS.get((expr, dtype, kind), lambda: _compile(expr, dtype, kind))


def compiled_sympy(expr: Expr, dtype: str, kind: Kind) -> Program:
    """Like :func:`compiled`, always from the whole tree's sympy forms: where the chain
    rule's literal reading is not decisive (a kink or an undefined entry), sympy's
    algebra of the whole tree may be (|x|*|x| = x**2, max(x, x) = x, fmod(x, x) = 0)."""
    if kind.name not in ("gradient", "hessian"):
        return compiled(expr, dtype, kind)
    return _PROGRAMS.get((expr, dtype, kind, "sympy"), lambda: _compile_sympy(expr, dtype, kind))
