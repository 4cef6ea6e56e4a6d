"""The truth: exact sympy derivatives, certified with arb balls and long double intervals.

The public surface is the engine (:class:`SymbolicEngine`, shared as :func:`truth_engine`)
and what its answers mean (:class:`Truth`, :data:`STATUSES`, the precisions). Inside:

* :mod:`.forms`: tree -> sympy forms (real stand-ins for Abs, sign, floor; derivative kinds);
* :mod:`.rules`: THE rule table, one row per sympy class with its arb, interval and
  series kernels side by side (:mod:`.balls`, :mod:`.intervals`, :mod:`.series`);
* :mod:`.program`: the straight-line program and its compiler (``sympy.cse``);
* :mod:`.certify`: precision escalation, statuses, the interval filter, one-sided limits;
* :mod:`.engine`: the :class:`SymbolicEngine` facade.

A new op built from existing sympy classes needs nothing here; a new sympy function class
is one row in :data:`.rules.RULES` plus its kernels.
"""

from __future__ import annotations

from harness.truth.certify import MAX_BITS, ONE_SIDED_SHIFT, START_BITS, STATUSES
from harness.truth.engine import SymbolicEngine, Truth, truth_engine

__all__ = ["MAX_BITS", "ONE_SIDED_SHIFT", "START_BITS", "STATUSES", "SymbolicEngine", "Truth", "truth_engine"]
