"""Verdicts: is an engine's derivative wrong, or is the difference floating-point noise?

Rounding model
--------------
The tolerance for a derivative computed in dtype ``d`` (unit roundoff ``u``) comes from a
first-order running error analysis (Wilkinson) of the computation the engine performs on
the literal tree, not from a global rtol. Every node ``k`` of the tree carries, per point:

* its value ``v`` and a radius ``r`` bounding the forward rounding error:
  ``r_k = sum_j |d op/d a_j| r_j + roundings(op) * u * |v_k| + floor`` (or
  ``u * value_noise(op)`` where the op row gives one, and the larger of the two and
  ``u * formula_value_noise(op)`` in the formula tolerance);
* its tangent ``t`` (the derivative along each variable) and radius ``s``:
  ``s_k = sum_j |p_j| s_j + |t_j| (sum_l |d p_j/d a_l| r_l + u * noise_j)
  + u * chain_k + floor``, where ``p_j`` is the partial derivative of the op,
  ``noise_j`` the error its usual backward formulas make (``Op.grad_noise``: the hull
  over formulas, e.g. tanh' = 1 - y**2 where |y| -> 1; 0 for the exact partials of +, -,
  * and neg; ``LIBM * |p_j|`` by default) and ``chain_k`` the rounding of the chain rule
  sum_j p_j t_j (:func:`_chain_roundings`: a product rounds unless p_j = +-1, the sum
  once where several terms are nonzero);
* for order 2, its Hessian ``h`` and radius, by the same rule one order up (hyper-dual
  arithmetic with second and third partials of each op).

The root's radius gets one more rounding (``u * |t|``: an engine that computes wider
rounds once when it stores) and is multiplied by ``SAFETY``; that is the tolerance.

The partials of every op come from its sympy row in the op table, differentiated and
lambdified once. Forward and reverse mode multiply the same local partials along the
same paths, only associated differently, so one model serves both; a safety factor
``SAFETY`` covers the association order and libm functions that are a little worse than
``LIBM`` ulps. ``floor`` is the dtype's smallest subnormal: an underflowing intermediate
loses absolute, not relative, accuracy. A node float64 cannot hold (it overflows, or
underflows to 0) takes its exact value from the truth in long double
(:func:`_wide_values`), so a tolerance is finite wherever the truth is; the model's passes
run in long double at those points (and wherever a float64 pass overflows), in float64,
several times faster, everywhere else (:class:`_Local`).

How tight: an engine in the dtype's standard model (relative error u per arithmetic
result, ``LIBM`` u per library result, the usual backward formulas, errors aligned the
worst way) is never called wrong, and the tolerance is a median 3.5 times its worst
error in float32, float16 and bfloat16 (tests/properties/test_reference_engine.py).

Where the model is consulted beyond the tolerance (:class:`RoundingModel`):

* out of range: an exact value the tree defines (a node's value or derivative, an op's
  partial) beyond the dtype's largest number, or an op's value below its smallest
  subnormal; an engine's own intermediates (exp(2x) inside its tanh) never excuse it;
* near a break: a kink or jump op whose argument lies within ``SAFETY`` times its
  modelled error of the break (``Op.kinks``), where the dtype's rounding may take either
  branch; the model is run once more with those kinks' other branch (``Op.across``);
* at a kink itself (the truth's ``kink`` status), :func:`one_sided_tolerance`: the
  model a step off the point on either side, where each branch is smooth.

Assumptions: points and constants are exact in the dtype (the generator ensures it); the
library functions are accurate to ``ops.LIBM`` unit roundoffs; first-order terms
dominate (points are a margin away from poles, where linearisation fails). Where the
model's magnitudes leave the dtype's range, the row is ``out-of-range`` instead of judged.

Verdicts
--------
``ok``; ``inaccurate`` (outside the ideal tolerance, inside the formula one: a cancelling
formula lost accuracy a careful engine keeps); ``mismatch`` (finite and outside the
formula tolerance: the derivative is wrong);
``nan-mismatch`` (one side NaN or inf, the other finite); ``kink-convention`` (at a
non-differentiable point, the value lies between the exact one-sided derivatives, e.g.
relu'(0) = 0; or, where f is smooth but an inner kink op sits on its break, between the
derivatives its branches give: relu(x*x)'' at 0 is 0 or 2); ``kink-violation`` (it does
not); ``undefined`` (the truth itself is undefined there, also where f jumps along the
variable differentiated, or a one-sided derivative does not exist); ``out-of-range`` (an
exact value of the tree leaves the dtype, per the model);
``branch-ambiguous`` (the dtype's rounding may put a kink or jump op's argument on the
other side of its break, and the value is that branch's derivative).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
import torch

from harness.compile import compile_tree, kernel_key, torch_namespace
from harness.dtypes import dtype_info, ulp
from harness.engines.base import EngineError
from harness.expr import Call, Const, Expr, Var, variables, walk
from harness.functions import NUMPY_FUNCTIONS
from harness.memo import Memo
from harness.ops import LIBM, OPS, Smoothness
from harness.schema import FAILING

__all__ = [
    "SAFETY",
    "Judgement",
    "RoundingModel",
    "judge",
    "op_tree",
    "one_sided_tolerance",
    "rounding_model",
    "rounding_tolerance",
]

_FLOAT64_SMALLEST = 2.0**-1074

SAFETY = 2.0
"""Multiplier on the modelled error: association order and libm slack."""



# ---- partial derivatives of each op, from its sympy row -------------------------------

NumFn = Callable[..., np.ndarray]


def _partial_forms(
    name: str, n: int, order: int
) -> tuple[tuple[Any, ...], dict[tuple[int, ...], Any]]:
    """The op's argument symbols and its sympy partial derivatives of exactly ``order``,
    for a call with ``n`` arguments.

    Keys are sorted tuples of argument positions, e.g. (0, 1) for d2/da0 da1. Dirac
    deltas and derivatives of floor (zero almost everywhere) become 0.
    """
    row = OPS[name]
    syms = sympy.symbols(f"a0:{n}", real=True)
    base = row.sympy_fn(*syms)
    out: dict[tuple[int, ...], Any] = {}
    for key in itertools.combinations_with_replacement(range(n), order):
        d = sympy.diff(base, *(syms[i] for i in key))
        d = d.replace(sympy.DiracDelta, lambda *a: sympy.Integer(0))
        out[key] = d.replace(lambda e: isinstance(e, sympy.Derivative), lambda e: sympy.Integer(0))
    return tuple(syms), out


_PARTIAL_FUNCTIONS: Memo[dict[tuple[int, ...], Any]] = Memo(512)


def _partial_functions(name: str, n: int, order: int) -> dict[tuple[int, ...], NumFn]:
    """Numpy functions for every partial derivative of op ``name`` (called with ``n``
    arguments) of exactly ``order``, derived once per op row (the row's sympy builder is
    in the key)."""

    def build() -> dict[tuple[int, ...], NumFn]:
        syms, forms = _partial_forms(name, n, order)
        # b*a**b/a -> b*a**(b - 1): finite at a = 0
        return {
            key: _broadcasting(
                sympy.lambdify(syms, sympy.powsimp(d, force=True), modules=[NUMPY_FUNCTIONS, "numpy"])
            )
            for key, d in forms.items()
        }

    return _PARTIAL_FUNCTIONS.get(("numpy", name, n, order, OPS[name].sympy_fn), build)


def _partial_functions_mp(name: str, n: int, order: int) -> dict[tuple[int, ...], Callable[..., Any]]:
    """The same partials as :func:`_partial_functions`, lambdified for mpmath (no overflow)."""

    def build() -> dict[tuple[int, ...], Callable[..., Any]]:
        syms, forms = _partial_forms(name, n, order)
        return {key: sympy.lambdify(syms, d, modules="mpmath") for key, d in forms.items()}

    return _PARTIAL_FUNCTIONS.get(("mpmath", name, n, order, OPS[name].sympy_fn), build)


def _mp_float(fn: Callable[..., Any], args: Sequence[float], dps: int = 30) -> float:
    import mpmath

    try:
        with mpmath.workdps(dps):
            value = fn(*(mpmath.mpf(float(a)) for a in args))
            return float(mpmath.re(value)) if mpmath.im(value) == 0 else float("nan")
    except (ArithmeticError, ValueError, TypeError, AttributeError):
        # AttributeError: a real-only mpmath function (atan2) handed a complex value that
        # a square root of a rounded-negative argument made
        return float("nan")


def _broadcasting(fn: Callable[..., Any]) -> NumFn:
    def call(*args: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            res = fn(*args)
        return np.broadcast_to(np.asarray(res, dtype=np.longdouble), np.shape(args[0])).copy()

    return call


def _partial_values(
    name: str, key: Sequence[int], args: Sequence[np.ndarray], certify: bool = True
) -> np.ndarray:
    """A partial derivative of op ``name`` at ``args``, accurate to a few digits.

    First and second partials come certified from the truth engine (their float64
    formulas cancel: tanh' = 1 - tanh**2 is 0 in float64 at x = 19, not 1.3e-16); third
    partials, and entries the truth leaves undefined (a kink, 0**b with b variable), from
    the lambdified formula. Where that gives NaN or inf at finite arguments (0 * inf at a
    removable singularity) the larger magnitude just above and just below is used, which
    is what a bound needs.
    """
    order = len(key)
    if certify and order in (1, 2):
        with np.errstate(over="ignore"):  # a long double beyond float64: inf, not certified
            narrow = tuple(np.asarray(a, dtype=np.float64) for a in args)
        certified = _certified(name, order, narrow)
        if certified is not None:
            # in the arguments' type: the model runs in long double where they are (wide
            # values), so p * x past float64's range stays finite
            wide = np.result_type(*(np.asarray(a) for a in args), np.float64)
            out = certified[(slice(None),) + tuple(key)].astype(wide)
            need = ~np.isfinite(out)
            if need.any():  # the formula only where the truth left the entry open
                full = np.broadcast_arrays(*(np.asarray(a) for a in args))
                with np.errstate(over="ignore"):  # a long double beyond float64: inf
                    out[need] = _formula_partial(name, key, [a[need] for a in full])
            return out
    return _formula_partial(name, key, args)


def _formula_partial(name: str, key: Sequence[int], args: Sequence[np.ndarray]) -> np.ndarray:
    """A partial of op ``name`` from its lambdified formula, patched where the formula
    gives NaN or inf at finite arguments (see :func:`_partial_values`)."""
    order = len(key)
    numeric = OPS[name].formula_partials
    if numeric is not None:  # the op's own numeric partials: its sympy ones are too large

        def fn(*a: np.ndarray) -> np.ndarray:
            assert numeric is not None
            return np.asarray(numeric(order, a)[tuple(sorted(key))])

    else:
        fn = _partial_functions(name, len(args), order)[tuple(sorted(key))]
    fallback = fn(*args)
    bad = ~np.isfinite(fallback) & np.all([np.isfinite(a) for a in args], axis=0)
    if bad.any():
        # constant arguments (pow's exponent) stay: 0 * x**-1 at x**0 is 0 on both sides
        fixed = OPS[name].const_args
        with np.errstate(over="ignore"):  # a step off the largest float overflows: inf, kept
            near = [
                np.abs(fn(*(a if i in fixed else a * (1 + s * 2.0**-30) + s * 2.0**-60
                            for i, a in enumerate(args))))
                for s in (1.0, -1.0)
            ]
        fallback = np.where(bad, np.fmax(near[0], near[1]), fallback)
        still = bad & ~np.isfinite(fallback)
        if still.any() and numeric is None:  # inf/inf (softplus'' = e^x / (e^x + 1)**2 at 1e3)
            exact = _partial_functions_mp(name, len(args), order)[tuple(sorted(key))]
            for i in np.flatnonzero(still):
                fallback[i] = _mp_float(exact, [float(a[i]) if np.ndim(a) else float(a) for a in args])
    return np.asarray(fallback)


_OP_TREES: dict[tuple[str, int], Call] = {}


def op_tree(name: str, arity: int) -> Call:
    """Op ``name`` alone on variables a0, a1, ...: the tree whose truth gives the op's
    certified partials. A sweep of the op alone uses it too, so the truth it is judged
    against and the partials of its tolerance are one evaluation."""
    tree = _OP_TREES.get((name, arity))
    if tree is None:
        tree = Call(name, tuple(Var(f"a{i}") for i in range(arity)))
        _OP_TREES[name, arity] = tree
    return tree


def _certified(name: str, order: int, args: tuple[np.ndarray, ...]) -> np.ndarray | None:
    from harness.truth import truth_engine

    tree = op_tree(name, len(args))
    with np.errstate(over="ignore"):  # a long double beyond float64 is not certified here
        pts = np.stack([np.broadcast_to(a, np.shape(args[0])) for a in args], axis=1).astype(np.float64)
    finite = np.isfinite(pts).all(axis=1)
    shape = (len(pts),) + (len(args),) * order
    out = np.full(shape, np.nan)
    if finite.any():
        truth = truth_engine().evaluate(tree, pts[finite], dtype="float64", order=order)
        out[finite] = np.where(np.isin(truth.status, ("ok", "uncertified")), truth.values, np.nan)
    return out


def _mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b with 0 * anything = 0, so a NaN partial times an exact zero stays zero."""
    with np.errstate(all="ignore"):
        p = a * b
    if not np.isnan(p).any():  # the common case: only -0.0 to make +0.0, as below
        return p + 0.0
    return np.where((a == 0) | (b == 0), 0.0, p)


def _abs_partial_times(
    name: str, key: Sequence[int], args: Sequence[np.ndarray], factor: np.ndarray
) -> np.ndarray:
    """|partial ``key`` of op ``name``| * ``factor`` (0 where ``factor`` is 0), the partial
    taken only where ``factor`` is not 0: a third partial weighs an argument's value
    error, which is 0 wherever the argument is exact (an input), and costs an mpmath call
    per point where its formula overflows. The formula runs in long double whatever the
    model's precision: third partials cancel (logaddexp's d3/db3 at (0, 54.6) is
    -1.9e-24, its formula 4.4e-16 in float64 and -1.1e-19 in long double)."""
    full = np.broadcast_arrays(np.asarray(factor), *(np.asarray(a, dtype=np.longdouble) for a in args))
    factor, args = full[0], full[1:]
    out = np.zeros(factor.shape, dtype=np.result_type(factor, np.float64))
    need = factor != 0
    if need.any():
        partial = _careful_partial(name, key, [a[need] for a in args])
        out[need] = _mul(np.abs(np.broadcast_to(partial, factor[need].shape)), factor[need])
    return out


_CANCELLED = 1e-6
"""Relative disagreement of an op formula's float64 and long double values beyond which
the formula is taken to cancel, and mpmath decides."""


def _careful_partial(name: str, key: Sequence[int], args: Sequence[np.ndarray]) -> np.ndarray:
    """A partial of op ``name`` at ``args`` (long double) where its formula may cancel:
    first and second partials certified by the truth (:func:`_partial_values`), third
    partials from the formula in long double, and mpmath's value at 60 digits where the
    formula's float64 and long double values disagree by more than :data:`_CANCELLED`.
    The third partials and the partials moved across an argument's error
    (:func:`_partials_across_errors`) come from here: logaddexp's d3/db3 at (0, 54.6) is
    -1.9e-24, its formula 4.4e-16 in float64 and -1.1e-19 in long double, and d2/db2 a
    step off a = 0 is 0 in float64 for 1.9e-24; an error term built on such a value
    passes a Hessian wrong by 100%."""
    wide = [np.asarray(a, dtype=np.longdouble) for a in args]
    out = np.array(_partial_values(name, key, wide), dtype=np.longdouble)
    if len(key) < 3 or OPS[name].formula_partials is not None or out.size == 0:
        return out  # certified (the truth's), or the op's own numeric partials
    with np.errstate(all="ignore"):
        narrow = [np.asarray(a, dtype=np.float64) for a in wide]
        rough = np.asarray(_formula_partial(name, key, narrow), dtype=np.longdouble)
        agree = np.abs(out - rough) <= _CANCELLED * np.abs(out)
    finite = np.logical_and.reduce([np.isfinite(a) for a in narrow]) & np.isfinite(out)
    suspect = np.flatnonzero(~agree & finite)
    if len(suspect):
        exact = _partial_functions_mp(name, len(args), len(key))[tuple(sorted(key))]
        for i in suspect:
            value = _mp_float(exact, [float(a[i]) for a in narrow], dps=60)
            if math.isfinite(value):
                out[i] = value
    return out


# ---- the running error model --------------------------------------------------------


@dataclass
class _Node:
    """One node of the running error model: its float64 value, gradient and (order 2)
    Hessian at every point, each with a bound on the error an engine makes computing it."""

    value: np.ndarray  # (n,)
    value_error: np.ndarray  # (n,)
    grad: np.ndarray  # (n, m)
    grad_error: np.ndarray  # (n, m)
    hess: np.ndarray | None = None  # (n, m, m)
    hess_error: np.ndarray | None = None  # (n, m, m)


def _values(expr: Expr, points: np.ndarray) -> dict[Expr, np.ndarray]:
    """Float64 value of every subtree at every point, computed as the engines compute the
    tree (:func:`harness.compile.compile_tree` with the op table's torch kernels)."""
    n = points.shape[0]
    columns = torch.from_numpy(np.array(points, dtype=np.float64).T)  # a copy: may be read-only
    with torch.no_grad():
        values = compile_tree(expr, torch_namespace(), every_node=True)(list(columns.unbind(0)))
    return {
        node: np.broadcast_to(value.numpy(), (n,)).astype(np.float64)
        for node, value in zip(walk(expr), values, strict=True)
    }


def _wide_values(expr: Expr, points: np.ndarray) -> dict[Expr, np.ndarray]:
    """:func:`_values` in long double, with each node float64 cannot hold (inf or NaN
    where it overflows, 0 where it underflows) replaced by its exact value from the
    truth (:meth:`~harness.truth.SymbolicEngine.node_values`): the model's magnitudes
    then stay finite where the truth is (cosh(710) is 1.1e308, its partial times LIBM is
    not), and an underflowing intermediate keeps its size (1e-200 * 1e-200)."""
    from harness.truth import truth_engine

    vals = {node: v.astype(np.longdouble) for node, v in _values(expr, points).items()}
    lost = [
        node
        for node in walk(expr)
        if isinstance(node, Call) and not (np.isfinite(vals[node]) & (vals[node] != 0)).all()
    ]
    if not lost:
        return vals
    calls = [node for node in walk(expr) if not isinstance(node, Var)]
    try:
        exact = dict(zip(calls, truth_engine().node_values(expr, points, dtype="float64"), strict=True))
    except EngineError:  # a form the truth has no rule for: the model keeps what float64 holds
        return vals
    for node in lost:
        v, x = vals[node], exact[node]
        # a 0 from cancellation (not underflow) is what the engine computes too: it stays
        underflow = (v == 0) & (x != 0) & (np.abs(x) < _FLOAT64_SMALLEST)
        vals[node] = np.where(np.isfinite(x) & (~np.isfinite(v) | underflow), x, v)
    return vals


@dataclass(frozen=True)
class RoundingModel:
    """What the rounding model says about each derivative entry computed in one dtype.

    ``tolerance`` (the derivative's shape, ``SAFETY`` included) bounds the error of an
    engine erring a few roundings per operation with the usual backward formulas (the
    *formula* tolerance); ``ideal_tolerance`` that of a careful engine, whose local
    partials are within ``LIBM`` ulps of their exact values (never the hull of a
    cancelling formula: torch's tanh'(20) = 1 - 1**2 = 0 is inside the first, far outside
    the second). ``at_kink`` (n,) marks points where a kink op's argument is exactly on
    its break and ``sides`` holds ``(low, high, tolerance)``: the least and greatest of the
    derivatives with every such op on its left branch, on its right branch, and at the
    break itself (the op's conventional partial there), and their largest tolerance: an
    engine's convention (relu'(0) = 0 in relu(x*x), whose f'' is 2) lies between them.
    ``out_of_range`` (n,) marks points where
    a modelled magnitude leaves the dtype's range. ``ambiguous`` (n,) marks points where
    an argument of a kink or jump op lies within its own error bound of the break, so
    the dtype's rounding may put it on either side (relu(cos(exp(y))) at y = 18.125 in
    float32); ``other`` and ``other_tolerance`` are then the derivative with those kinks'
    other branch taken, and its tolerance (NaN where a jump op is ambiguous: its value
    itself flips, and any derivative may be right).
    """

    tolerance: np.ndarray
    out_of_range: np.ndarray
    ambiguous: np.ndarray
    other: np.ndarray
    other_tolerance: np.ndarray
    ideal_tolerance: np.ndarray
    at_kink: np.ndarray | None = None
    sides: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def rounding_tolerance(
    expr: Expr, points: np.ndarray, *, dtype: str, order: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Tolerance on each derivative entry computed in ``dtype``, and an out-of-range mask:
    ``(tolerance, out_of_range)`` of :func:`rounding_model`."""
    model = rounding_model(expr, points, dtype=dtype, order=order)
    return model.tolerance, model.out_of_range


def rounding_model(
    expr: Expr, points: np.ndarray, *, dtype: str, order: int = 1, at_break: np.ndarray | None = None
) -> RoundingModel:
    """The rounding model of ``expr``'s derivative of ``order`` in ``dtype`` at ``points``
    (see the module docstring and :class:`RoundingModel`). ``at_break`` (the truth's, per
    point) says where some op is exactly on its break; elsewhere an argument computed
    right on a break (3 - erf(-8) is 4 in float64) is there by rounding and ambiguous
    too. Without it only arguments near, not on, a break are."""
    if order not in (1, 2):
        raise ValueError(f"order={order!r} is not supported; expected 1 or 2")
    info = dtype_info(dtype)
    pts = np.asarray(points, dtype=np.float64)
    on_break = np.ones(len(pts), dtype=bool) if at_break is None else np.asarray(at_break, dtype=bool)
    local = _local_partials(expr, pts, order)
    if local.wide_rows.all():
        return _model(expr, pts, local.vals, local.partials, info, order, on_break)
    model = _model(expr, pts, local.vals64, local.partials64, info, order, on_break)
    redo = local.wide_rows | ~_finite_rows(model)
    if not redo.any():
        return model
    idx = np.flatnonzero(redo)
    vals = {node: v[idx] for node, v in local.vals.items()}
    partials = {node: _rows_of(pq, idx) for node, pq in local.partials.items()}
    return _merged(model, _model(expr, pts[idx], vals, partials, info, order, on_break[idx]), idx)


def _model(
    expr: Expr,
    pts: np.ndarray,
    vals: dict[Expr, np.ndarray],
    local: dict[Expr, _Partials],
    info: Any,
    order: int,
    on_break: np.ndarray,
) -> RoundingModel:
    """:func:`rounding_model` on node values and op partials of one precision (float64
    or long double): its passes run in that precision."""
    value, tolerance, out_of_range, nodes = _run_model(expr, pts, vals, local, info, order)
    _, ideal_tolerance, _, _ = _run_model(expr, pts, vals, local, info, order, ideal=True)
    ideal_tolerance = np.fmin(ideal_tolerance, tolerance)
    ambiguous, flips, jumps = _near_breaks(expr, vals, nodes, on_break, info.unit_roundoff)
    other = np.full(value.shape, np.nan)
    other_tolerance = np.full(value.shape, np.nan)
    if ambiguous.any():
        flipped = dict(local)
        for node, where in flips.items():
            flipped[node] = _across(node, vals, local[node], where, order)
        alt, alt_tol, _, _ = _run_model(expr, pts, vals, flipped, info, order)
        known = (ambiguous & ~jumps).reshape((-1,) + (1,) * (value.ndim - 1))
        other = np.where(known, alt, np.nan)
        other_tolerance = np.where(known, alt_tol, np.nan)
    at_kink, sides = None, None
    exact = _at_breaks(expr, vals)
    if exact:
        runs = []
        for sign in (-1.0, 1.0):
            stepped = dict(local)
            for node, where in exact.items():
                stepped[node] = _one_side(node, vals, local[node], where, order, sign)
            runs.append(_run_model(expr, pts, vals, stepped, info, order))
        # a selection op (max, min, clamp) at a tie may pass the whole derivative to any
        # argument equal to its value: torch's clamp at lo = x = hi gives it to x
        for node, where in exact.items():
            for k, arg in enumerate(node.args):
                tied = where & (vals[arg] == vals[node])
                if len(node.args) > 1 and tied.any():
                    selected = dict(local)
                    selected[node] = _selecting(local[node], k, tied)
                    runs.append(_run_model(expr, pts, vals, selected, info, order))
        at_kink = np.logical_or.reduce(list(exact.values()))
        # the op's own value at the break (abs'(0) = 0, inside its subgradient) is a
        # convention too, and enters nonlinearly: abs(x)*abs(x) at 0 gives 0, both sides 2
        lo, hi, side_tol = value, value, tolerance
        for run in runs:
            lo, hi, side_tol = np.fmin(lo, run[0]), np.fmax(hi, run[0]), np.fmax(side_tol, run[1])
        sides = (lo, hi, side_tol)
    return RoundingModel(
        tolerance, out_of_range, ambiguous, other, other_tolerance, ideal_tolerance, at_kink, sides
    )


def _finite_rows(model: RoundingModel) -> np.ndarray:
    """Points where every number of ``model`` that is meant to be a number is finite: a
    float64 pass overflowed (or met NaN) elsewhere, and long double decides there."""
    n = len(model.out_of_range)

    def finite(a: np.ndarray) -> np.ndarray:
        return np.isfinite(a).reshape(n, -1).all(axis=1)

    ok = finite(model.tolerance) & finite(model.ideal_tolerance)
    ok &= ~np.isinf(model.other).reshape(n, -1).any(axis=1)
    ok &= ~np.isinf(model.other_tolerance).reshape(n, -1).any(axis=1)
    if model.sides is not None:
        for a in model.sides:
            ok &= finite(a)
    return ok


def _rows_of(partials: _Partials, idx: np.ndarray) -> _Partials:
    p, q = partials
    return [pj[idx] for pj in p], {key: qv[idx] for key, qv in q.items()}


def _merged(model: RoundingModel, sub: RoundingModel, idx: np.ndarray) -> RoundingModel:
    """``model`` with its points ``idx`` replaced by ``sub``'s (a model of those points
    alone)."""

    def put(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.array(a, dtype=np.result_type(a, b))
        out[idx] = b
        return out

    def kink_parts(m: RoundingModel) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        # no point at a kink: none is, and the sides are never read
        at = np.zeros(len(m.out_of_range), dtype=bool) if m.at_kink is None else m.at_kink
        return at, m.sides or (m.other * np.nan, m.other * np.nan, m.tolerance)

    at_kink, sides = model.at_kink, model.sides
    if sub.at_kink is not None or at_kink is not None:
        (at, whole), (sub_at, part) = kink_parts(model), kink_parts(sub)
        at_kink = put(at, sub_at)
        lo, hi, tol = (put(a, b) for a, b in zip(whole, part, strict=True))
        sides = (lo, hi, tol)
    return RoundingModel(
        put(model.tolerance, sub.tolerance),
        put(model.out_of_range, sub.out_of_range),
        put(model.ambiguous, sub.ambiguous),
        put(model.other, sub.other),
        put(model.other_tolerance, sub.other_tolerance),
        put(model.ideal_tolerance, sub.ideal_tolerance),
        at_kink,
        sides,
    )


def _run_model(
    expr: Expr,
    pts: np.ndarray,
    vals: dict[Expr, np.ndarray],
    local: dict[Expr, _Partials],
    info: Any,
    order: int,
    ideal: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[Expr, _Node]]:
    """One pass of the running error model over the tree: the modelled derivative, its
    tolerance (``SAFETY`` included, float64), the out-of-range mask and every node.
    ``ideal``: local partials carry ``LIBM`` ulps, not their formulas' noise."""
    u = info.unit_roundoff
    floor = info.smallest_subnormal
    n, m = pts.shape[0], len(variables(expr))
    names = variables(expr)
    nodes: dict[Expr, _Node] = {}
    biggest = np.zeros(n)
    lost = np.zeros(n, dtype=bool)  # an underflowing intermediate the result depends on
    for node in walk(expr):
        v = vals[node]
        if isinstance(node, Var):
            t = np.zeros((n, m))
            t[:, names.index(node.name)] = 1.0
            nodes[node] = _Node(v, np.zeros(n), t, np.zeros((n, m)))
            if order == 2:
                nodes[node].hess = np.zeros((n, m, m))
                nodes[node].hess_error = np.zeros((n, m, m))
            continue
        if isinstance(node, Const):
            nodes[node] = _Node(v, np.zeros(n), np.zeros((n, m)), np.zeros((n, m)))
            if order == 2:
                nodes[node].hess = np.zeros((n, m, m))
                nodes[node].hess_error = np.zeros((n, m, m))
            continue
        assert isinstance(node, Call)
        with np.errstate(all="ignore"):  # overflowing magnitudes are flagged below, not warned
            nodes[node] = _propagate(node, vals, local, nodes, u, floor, order, info.tiny, ideal)
        k = nodes[node]
        p, q = local[node]
        biggest = np.fmax(biggest, np.abs(v))
        lost |= _underflow_matters(node, vals, info.smallest_subnormal)
        biggest = np.fmax(biggest, np.abs(k.grad).max(axis=1, initial=0.0))
        for pj in p:  # an infinite partial (1/y at y = 5e-324) is beyond every range
            biggest = np.fmax(biggest, np.where(np.isnan(pj), 0.0, np.abs(pj)))
        if k.hess is not None:
            biggest = np.fmax(biggest, np.abs(k.hess).reshape(n, -1).max(axis=1, initial=0.0))
            for qv in q.values():
                biggest = np.fmax(biggest, np.where(np.isfinite(qv), np.abs(qv), 0.0))
    root = nodes[expr]
    if order == 1:
        value, radius = root.grad, root.grad_error
    else:
        assert root.hess is not None and root.hess_error is not None
        value, radius = root.hess, root.hess_error
    # the result may be computed wider and rounded to the dtype once when stored
    radius = radius + u * np.abs(value) + floor
    # Out of range only where an exact value the tree itself defines cannot be held in
    # the dtype: a node's value, derivative or op partial beyond its largest number, or an
    # op's argument below its smallest subnormal where the op's partials at 0 differ
    # (sqrt(x*x) at x = 1e-200 is sqrt(0) in float64, its derivative inf). An engine whose
    # own formula overflows where these fit (exp(2x) inside tanh), or whose result
    # underflows (sigmoid(-800)), is wrong when it returns NaN, not excused.
    out_of_range = ~(biggest <= info.max * (1 + u)) | lost
    with np.errstate(over="ignore"):  # beyond float64 (edge points): inf, out of range
        tolerance = np.asarray(SAFETY * radius, dtype=np.float64)
        value64 = np.asarray(value, dtype=np.float64)
    return value64, tolerance, out_of_range, nodes


def _underflow_matters(node: Call, vals: dict[Expr, np.ndarray], smallest: float) -> np.ndarray:
    """Points where an argument of ``node`` is an op's value below ``smallest`` (the
    dtype's smallest subnormal, so 0 there) and the op's first partials at 0 are not
    within a factor 2 of those at the exact argument (in long double): the dtype cannot
    represent what the derivative depends on (sqrt's partial at x*x = 1e-400 is 5e199,
    at 0 inf; x*x/x's partial in the denominator is -1, with 0 for x*x it is 0)."""
    n = len(vals[node])
    out = np.zeros(n, dtype=bool)
    args = [vals[a] for a in node.args]
    for i, a in enumerate(node.args):
        if not isinstance(a, Call):
            continue
        under = (args[i] != 0) & (np.abs(args[i]) < smallest)
        if not under.any():
            continue
        zeroed = [np.where(under, 0.0, x) if k == i else x for k, x in enumerate(args)]
        for fn in _partial_functions(node.op, len(node.args), 1).values():
            with np.errstate(all="ignore"):
                exact, at_zero = np.abs(fn(*args)), np.abs(fn(*zeroed))
                close = ((at_zero <= 2 * exact) & (exact <= 2 * at_zero)) | ((at_zero == 0) & (exact == 0))
            out |= under & ~close
    return out


def _near_breaks(
    expr: Expr, vals: dict[Expr, np.ndarray], nodes: dict[Expr, _Node], on_break: np.ndarray, u: float
) -> tuple[np.ndarray, dict[Call, np.ndarray], np.ndarray]:
    """Points where a kink or jump op's argument is within ``SAFETY`` times its modelled
    error of the break, but not on it (where ``on_break``, not even computed on it):
    (ambiguous (n,), {kink node: its points}, points where a jump op is ambiguous). The
    error includes the op's own rounding in locating its break (``Op.break_noise``:
    fmod's backward takes trunc of a rounded a/b), exact arguments or not."""
    n = len(next(iter(vals.values()))) if vals else 0
    ambiguous = np.zeros(n, dtype=bool)
    jumps = np.zeros(n, dtype=bool)
    flips: dict[Call, np.ndarray] = {}
    for node in walk(expr):
        if not isinstance(node, Call) or OPS[node.op].kinks is None:
            continue
        row = OPS[node.op]
        assert row.kinks is not None
        args = [torch.from_numpy(np.asarray(vals[a], dtype=np.float64)) for a in node.args]
        margin = np.broadcast_to(row.kinks(*args).numpy(), (n,))
        radius = SAFETY * sum(nodes[a].value_error for a in node.args)
        if row.break_noise is not None:
            radius = radius + SAFETY * u * np.broadcast_to(row.break_noise(*args).numpy(), (n,))
        near = ((margin > 0) | ~on_break) & (margin <= radius) & (radius > 0)
        if not near.any():
            continue
        ambiguous |= near
        if row.across is None:
            jumps |= near
        else:
            flips[node] = near
    return ambiguous, flips, jumps


def _at_breaks(expr: Expr, vals: dict[Expr, np.ndarray]) -> dict[Call, np.ndarray]:
    """Kink ops whose argument is computed exactly on the break: {node: its points}. The
    exact argument is there too, or rounding put it there; either way each branch is a
    derivative an engine may take (where the truth simplified the kink away, relu(x*x) =
    x*x, it never reports one). The branches are reached by moving the first argument
    (:func:`_one_side`), which crosses every kink of the table: relu's and abs's 0,
    max's and clamp's ties, copysign's a = 0."""
    out: dict[Call, np.ndarray] = {}
    n = len(next(iter(vals.values())))
    for node in walk(expr):
        if not isinstance(node, Call) or OPS[node.op].kinks is None:
            continue
        if OPS[node.op].smoothness is not Smoothness.KINK:
            continue
        row = OPS[node.op]
        assert row.kinks is not None
        args = [torch.from_numpy(np.asarray(vals[a], dtype=np.float64)) for a in node.args]
        where = np.broadcast_to(row.kinks(*args).numpy(), (n,)) == 0
        if where.any():
            out[node] = where
    return out


def _one_side(
    node: Call, vals: dict[Expr, np.ndarray], partials: _Partials, where: np.ndarray, order: int, sign: float
) -> _Partials:
    """``node``'s partials a step off its break (first argument moved by ``sign`` *
    :data:`SIDE_STEP` relative, or that much absolute at 0) at the points ``where``: one
    branch's partials."""
    args = [np.asarray(vals[a], dtype=np.float64) for a in node.args]
    a0 = args[0]
    step = np.where(a0 != 0, np.abs(a0) * SIDE_STEP, SIDE_STEP**2)
    with np.errstate(over="ignore"):  # a step off the largest float: inf, no branch
        moved = [a0 + sign * step, *args[1:]]
    return _partials_at(node, moved, partials, where, order)


def _partials_at(
    node: Call, args: Sequence[np.ndarray], partials: _Partials, where: np.ndarray, order: int
) -> _Partials:
    """``partials`` with ``node``'s op's partials at ``args`` in place of them at ``where``."""
    p, q = partials
    p2 = [np.where(where, _partial_values(node.op, (j,), args), pj) for j, pj in enumerate(p)]
    q2 = {
        key: np.where(where, _partial_values(node.op, key, args, certify=order == 2), value)
        for key, value in q.items()
    }
    return p2, q2


def _selecting(partials: _Partials, k: int, where: np.ndarray) -> _Partials:
    """Partials of an op passing its argument ``k`` through unchanged at ``where`` (first
    partial 1 in ``k``, 0 elsewhere; second partials 0): one vertex of a selection op's
    generalised gradient at a tie."""
    p, q = partials
    p2 = [np.where(where, 1.0 if j == k else 0.0, pj) for j, pj in enumerate(p)]
    q2 = {key: np.where(where, 0.0, value) for key, value in q.items()}
    return p2, q2


def _across(
    node: Call, vals: dict[Expr, np.ndarray], partials: _Partials, where: np.ndarray, order: int
) -> _Partials:
    """``node``'s partials with its kink's other branch taken at the points ``where``."""
    row = OPS[node.op]
    assert row.across is not None
    args = [vals[a] for a in node.args]
    return _partials_at(node, list(row.across(*args)), partials, where, order)


SIDE_STEP = 2.0**-30
"""Relative step off a kink for :func:`one_sided_tolerance` (absolute at 0)."""


def one_sided_tolerance(expr: Expr, points: np.ndarray, *, dtype: str) -> np.ndarray:
    """Tolerance on a one-sided derivative at a kink, per gradient entry: (n, m).

    At the kink itself the model's partials are the convention sympy picks (abs'(0) =
    0), so its tolerance says nothing about an engine that takes either branch (JAX's
    abs'(0) = 1 makes d/dy abs(y / 0.75) the rounded 4/3). Each branch is smooth a step
    off the point, so entry [p, i] is the larger of :func:`rounding_tolerance` at
    x_p -/+ step * e_i, step = :data:`SIDE_STEP` * |x_i| (or SIDE_STEP at 0).
    """
    pts = np.asarray(points, dtype=np.float64)
    out = np.zeros(pts.shape)
    for i in range(pts.shape[1]):
        step = np.where(pts[:, i] != 0, np.abs(pts[:, i]) * SIDE_STEP, SIDE_STEP)
        for sign in (-1.0, 1.0):
            side = pts.copy()
            with np.errstate(over="ignore"):  # a step off max is inf: no tolerance there
                side[:, i] = side[:, i] + sign * step
            tol, _ = rounding_tolerance(expr, side, dtype=dtype, order=1)
            out[:, i] = np.fmax(out[:, i], tol[:, i])
    return out


_Partials = tuple[list[np.ndarray], dict[tuple[int, int], np.ndarray]]


@dataclass(frozen=True)
class _Local:
    """Every node's value and its op's partials, as the model needs them: in long double
    (``vals``, ``partials``), and in float64 (``vals64``, ``partials64``), which the
    model's passes run several times faster in. ``wide_rows`` (n,) marks the points where
    float64 cannot hold them (a value the truth supplied beyond float64's range, a
    partial that overflows or underflows to 0 in float64): long double decides there."""

    vals: dict[Expr, np.ndarray]
    partials: dict[Expr, _Partials]
    vals64: dict[Expr, np.ndarray]
    partials64: dict[Expr, _Partials]
    wide_rows: np.ndarray


def _local_partials(expr: Expr, points: np.ndarray, order: int) -> _Local:
    """Every node's value and its op's first and second partials there.

    They do not depend on the dtype judged (the points are the same), so they are cached:
    a case judged in float32 and float64 computes them once.
    """
    # the ops' torch functions in the key: a patched op table never reads old node values
    kernels = kernel_key(expr, torch_namespace())
    return _LOCAL_CACHE.get(
        (expr, kernels, points.shape, points.tobytes(), order),
        lambda: _narrowed(*_compute_local(expr, points, order)),
    )


def _narrowed(vals: dict[Expr, np.ndarray], partials: dict[Expr, _Partials]) -> _Local:
    n = len(next(iter(vals.values())))
    wide = np.zeros(n, dtype=bool)

    def narrow(a: np.ndarray, exact: bool) -> np.ndarray:
        nonlocal wide
        with np.errstate(over="ignore", under="ignore"):
            a64 = np.asarray(a, dtype=np.float64)
        if exact:  # a node value: float64's own, or the truth's where float64 lost it
            wide |= (a64 != a) & ~(np.isnan(a64) & np.isnan(a))
        else:  # a partial: float64's precision serves, not a range it lacks
            wide |= (np.isfinite(a) & ~np.isfinite(a64)) | ((a != 0) & (a64 == 0))
        return a64

    vals64 = {node: narrow(v, True) for node, v in vals.items()}
    partials64 = {
        node: ([narrow(pj, False) for pj in p], {key: narrow(qv, False) for key, qv in q.items()})
        for node, (p, q) in partials.items()
    }
    return _Local(vals, partials, vals64, partials64, wide)


def _compute_local(
    expr: Expr, points: np.ndarray, order: int
) -> tuple[dict[Expr, np.ndarray], dict[Expr, _Partials]]:
    vals = _wide_values(expr, points)
    partials: dict[Expr, _Partials] = {}
    for node in walk(expr):
        if isinstance(node, Call):
            args = [vals[a] for a in node.args]
            ar = len(node.args)
            p = [_partial_values(node.op, (j,), args) for j in range(ar)]
            # second partials only scale the arguments' value errors at order 1: float64
            # formulas will do, and none is needed where every argument is an input or a
            # constant (exact: value error 0)
            leaves = order == 1 and all(isinstance(a, (Var, Const)) for a in node.args)
            q: dict[tuple[int, int], np.ndarray] = {}
            for j in range(ar):
                for k2 in range(j, ar):
                    if leaves:
                        q[j, k2] = np.zeros(len(points))
                    elif order == 1:
                        q[j, k2] = _rough_partial(node.op, (j, k2), args)
                    else:
                        q[j, k2] = _partial_values(node.op, (j, k2), args)
                    q[k2, j] = q[j, k2]
            partials[node] = (p, q)
    return vals, partials


def _rough_partial(name: str, key: tuple[int, ...], args: list[np.ndarray]) -> np.ndarray:
    """A partial from the op's formula, in float64 where the arguments are float64
    numbers (several times faster than long double) and in long double at the points
    where that overflows or the arguments are not float64 numbers."""
    with np.errstate(over="ignore", under="ignore"):
        narrow = [np.asarray(a, dtype=np.float64) for a in args]
    exact = np.logical_and.reduce([(n == a) | np.isnan(a) for n, a in zip(narrow, args, strict=True)])
    out = np.asarray(_formula_partial(name, key, narrow), dtype=np.result_type(*args, np.float64))
    redo = ~exact | (~np.isfinite(out) & np.logical_and.reduce([np.isfinite(a) for a in args]))
    if redo.any():
        out[redo] = _formula_partial(name, key, [a[redo] for a in args])
    return out


_LOCAL_CACHE: Memo[_Local] = Memo(8)


def _propagate(
    node: Call,
    vals: dict[Expr, np.ndarray],
    local: dict[Expr, Any],
    nodes: dict[Expr, _Node],
    u: float,
    floor: float,
    order: int,
    tiny: float,
    ideal: bool = False,
) -> _Node:
    row = OPS[node.op]
    args = [vals[a] for a in node.args]
    kids = [nodes[a] for a in node.args]
    ar = len(node.args)
    v = vals[node]
    p, q = local[node]
    if row.grad_noise is not None:
        noise = [np.abs(np.asarray(x, dtype=np.float64)) for x in _noise(row.grad_noise, args, v, p, u)]
    else:
        noise = [LIBM * np.abs(pj) for pj in p]
    if ideal and not row.conditioned:
        noise = [np.fmin(nz, LIBM * np.abs(pj)) for nz, pj in zip(noise, p, strict=True)]
    # A partial below the smallest normal number is subnormal or flushed to 0 in the
    # dtype: its relative accuracy is gone, so its whole size is error (erf'' at 4), and
    # one subnormal step more: a partial below half that step is 0 in float64 here but
    # need not be in the engine (erf' at cosh(4) = 27.3 is 1.5e-324, and the derivative
    # of exp(erf(cosh(x))) there, -1.1e-322, is 23 steps from torch's 0).
    noise = [
        np.where(np.abs(p[j]) < tiny, np.fmax(noise[j], (np.abs(p[j]) + floor) / u), noise[j])
        for j in range(ar)
    ]
    # forward value
    value_error = sum(_mul(np.abs(p[j]), kids[j].value_error) for j in range(ar))
    if row.value_noise is not None:
        own = np.abs(np.asarray(row.value_noise(tuple(args), v), dtype=np.float64))
    else:
        own = row.roundings * np.abs(v)
    if row.formula_value_noise is not None and not ideal:
        own = np.fmax(own, np.abs(np.asarray(row.formula_value_noise(tuple(args), v), dtype=np.float64)))
    value_error = value_error + u * own + floor
    value_error = np.where(np.abs(v) < tiny, np.fmax(value_error, np.abs(v)), value_error)
    # gradient
    grad = sum(_mul(p[j][:, None], kids[j].grad) for j in range(ar))
    moved_p, moved_q = _partials_across_errors(node, args, kids, order)
    dp_err = [
        np.fmax(
            sum(_mul(np.abs(q[j, k2]), kids[k2].value_error) for k2 in range(ar)), _change(moved_p, j, p[j])
        )
        + u * noise[j]
        for j in range(ar)
    ]
    grad_error = sum(
        _mul(np.abs(p[j])[:, None], kids[j].grad_error) + _mul(np.abs(kids[j].grad), dp_err[j][:, None])
        for j in range(ar)
    )
    grad_error = grad_error + u * _chain_roundings(p, [k.grad for k in kids]) + floor
    grad_error = np.where(np.abs(grad) < tiny, np.fmax(grad_error, np.abs(grad)), grad_error)
    out = _Node(v, value_error, np.asarray(grad), np.asarray(grad_error))
    if order == 2:
        # A second derivative goes through the first derivative's formula, so it inherits
        # that formula's relative noise (tanh'' = -2 y (1 - y**2) cancels like tanh').
        with np.errstate(all="ignore"):
            ratio = [  # relative noise; a zero partial has only the absolute floor
                np.where((noise[j] == 0) | (p[j] == 0), 0.0, noise[j] / np.abs(p[j]))
                for j in range(ar)
            ]
        noise2 = {
            (j, k2): _mul(np.abs(q[j, k2]), LIBM + ratio[j] + ratio[k2])
            for j in range(ar)
            for k2 in range(ar)
        }
        if row.grad2_noise is not None and not ideal:
            for j, extra in enumerate(_noise(row.grad2_noise, args, v, p, u)):
                noise2[j, j] = noise2[j, j] + np.abs(np.asarray(extra, dtype=np.float64))
        hessian_noises = [row.hessian_noise] + ([row.hessian_formula_noise] if not ideal else [])
        for hessian_noise in hessian_noises:
            if hessian_noise is None:
                continue
            for j, line in enumerate(hessian_noise(tuple(args), v, tuple(p))):
                for k2, extra in enumerate(line):
                    noise2[j, k2] = noise2[j, k2] + np.abs(np.asarray(extra, dtype=np.float64))
        for key, qv in q.items():
            noise2[key] = np.where(
                np.abs(qv) < tiny, np.fmax(noise2[key], (np.abs(qv) + floor) / u), noise2[key]
            )
        secant = {key: _change(moved_q, key, qv) for key, qv in q.items()}
        out.hess, out.hess_error = _propagate_hessian(
            node, args, kids, p, q, dp_err, noise2, u, floor, secant
        )
        small = np.abs(out.hess) < tiny
        out.hess_error = np.where(small, np.fmax(out.hess_error, np.abs(out.hess)), out.hess_error)
    return out


def _noise(fn: Callable[..., Any], args: Sequence[Any], v: Any, p: Sequence[Any], u: float) -> Any:
    """An op row's noise function at one node; ``u`` is passed to those that take it (see
    :class:`~harness.ops.Op`)."""
    if _takes_u(fn):
        return fn(tuple(args), v, tuple(p), u=u)
    return fn(tuple(args), v, tuple(p))


@functools.cache
def _takes_u(fn: Callable[..., Any]) -> bool:
    return "u" in inspect.signature(fn).parameters


# Arguments known to worse than this relative accuracy get their partials' change across
# the error interval, not only its first-order estimate.
_FAR = 2.0**-10


def _partials_across_errors(
    node: Call, args: list[np.ndarray], kids: list[_Node], order: int
) -> tuple[dict[Any, tuple[np.ndarray, list[np.ndarray]]], dict[Any, tuple[np.ndarray, list[np.ndarray]]]]:
    """The op's partials (first, and second at order 2) with every argument moved by
    -+ its value error, at the points where some argument is known to worse than
    :data:`_FAR` relative: ``({j: (points, [values per side])}, {(j, k): ...})``.

    The error model multiplies an argument's error by the next partial at the computed
    value; where that error is large the partial may change a lot across it, or vanish
    at the computed value only (atanh''(0) = 0 where the exact argument is 1/4, lost to
    0.25 + y absorbed by y = -2**64; hypot(c, x)'' vanishes at c = 0, but not at
    sinc(4) = -3.9e-17 where the exact c is 0). Kink and jump ops are left to the branch
    rules."""
    row = OPS[node.op]
    if row.kinks is not None:
        return {}, {}
    far = np.zeros(len(kids[0].value_error), dtype=bool)
    for a, kid in zip(args, kids, strict=True):
        with np.errstate(invalid="ignore", over="ignore"):
            far |= (kid.value_error > 0) & ~(kid.value_error <= _FAR * np.abs(a))
    if not far.any():
        return {}, {}
    idx = np.flatnonzero(far)
    sides = [
        [
            np.asarray(a, dtype=np.float64)[idx] + sign * np.asarray(kid.value_error, dtype=np.float64)[idx]
            for a, kid in zip(args, kids, strict=True)
        ]
        for sign in (-1.0, 1.0)
    ]
    ar = len(args)
    with np.errstate(all="ignore"):
        first = {j: (idx, [_careful_partial(node.op, (j,), side) for side in sides]) for j in range(ar)}
        second = {
            (j, k): (idx, [_careful_partial(node.op, (j, k), side) for side in sides])
            for j in range(ar)
            for k in range(ar)
            if order == 2
        }
    return first, second


def _change(moved: dict[Any, tuple[np.ndarray, list[np.ndarray]]], key: Any, at: np.ndarray) -> np.ndarray:
    """The largest finite change of a partial from its value ``at`` the computed point to
    its values moved across the arguments' errors (:func:`_partials_across_errors`); 0
    where nothing was moved. A side outside the domain or past a singularity (NaN, inf)
    says nothing and is skipped."""
    out = np.zeros(np.shape(at), dtype=np.float64)
    if key not in moved:
        return out
    idx, values = moved[key]
    base = np.asarray(at, dtype=np.float64)[idx]
    with np.errstate(all="ignore"):
        for value in values:
            change = np.abs(np.asarray(value, dtype=np.float64) - base)
            out[idx] = np.fmax(out[idx], np.where(np.isfinite(change), change, 0.0))
    return out


def _chain_roundings(p: list[np.ndarray], tangents: list[np.ndarray]) -> np.ndarray:
    """Bound, in unit roundoffs, on the rounding of the chain rule sum_j p_j t_j, per
    variable: each product rounds once unless p_j is +-1 (add, sub, neg: exact), and the
    sum once per term where more than one term is nonzero, on at most sum_j |p_j t_j|."""
    terms = [np.abs(_mul(pj[:, None], t)) for pj, t in zip(p, tangents, strict=True)]
    products = sum(np.where(np.abs(pj)[:, None] == 1, 0.0, term) for pj, term in zip(p, terms, strict=True))
    total = sum(terms)
    several = sum((term > 0).astype(np.float64) for term in terms) > 1
    return np.asarray(products + np.where(several, total, 0.0))


def _propagate_hessian(
    node: Call,
    args: list[np.ndarray],
    kids: list[_Node],
    p: list[np.ndarray],
    q: dict[tuple[int, int], np.ndarray],
    dp_err: list[np.ndarray],
    noise2: dict[tuple[int, int], np.ndarray],
    u: float,
    floor: float,
    secant: dict[tuple[int, int], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    ar = len(args)
    n, m = kids[0].grad.shape
    h = np.zeros((n, m, m))
    hr = np.zeros((n, m, m))
    terms = np.zeros((n, m, m))  # sum of |term| over the terms of the Hessian's chain rule
    products = np.zeros((n, m, m))  # sum of |term| times the roundings its product makes
    count = np.zeros((n, m, m))  # nonzero terms
    for j in range(ar):
        kh, khr = kids[j].hess, kids[j].hess_error
        assert kh is not None and khr is not None
        pj = p[j][:, None, None]
        h = h + _mul(pj, kh)
        hr = hr + _mul(np.abs(pj), khr) + _mul(np.abs(kh), dp_err[j][:, None, None])
        term = np.abs(_mul(pj, kh))
        terms = terms + term
        products = products + np.where(np.abs(pj) == 1, 0.0, term)  # p * h: exact for p = +-1
        count = count + (term > 0)
        for k2 in range(ar):
            qjl = q[j, k2][:, None, None]
            tt = kids[j].grad[:, :, None] * kids[k2].grad[:, None, :]
            h = h + _mul(qjl, tt)
            d2_err = sum(
                _abs_partial_times(node.op, (j, k2, k), args, kids[k].value_error) for k in range(ar)
            )
            if secant is not None:
                d2_err = np.fmax(d2_err, secant[j, k2])
            d2_err = d2_err + u * noise2[j, k2]
            st = (
                np.abs(kids[j].grad_error)[:, :, None] * np.abs(kids[k2].grad)[:, None, :]
                + np.abs(kids[j].grad)[:, :, None] * np.abs(kids[k2].grad_error)[:, None, :]
            )
            hr = hr + _mul(np.abs(qjl), st) + _mul(np.abs(tt), d2_err[:, None, None])
            term = np.abs(_mul(qjl, tt))
            terms = terms + term
            # q * t_j, then times t_k: each product rounds unless a factor is +-1
            tj, tk = np.abs(kids[j].grad)[:, :, None], np.abs(kids[k2].grad)[:, None, :]
            first = ~((np.abs(qjl) == 1) | (tj == 1))
            second = ~((tk == 1) | (np.abs(qjl) * tj == 1))
            products = products + (first.astype(float) + second) * term
            count = count + (term > 0)
    # each product rounds once; summing c nonzero terms rounds at most c - 1 times, each
    # on at most the sum of their magnitudes
    hr = hr + u * (products + np.fmax(count - 1, 0) * terms) + floor
    return h, hr


# ---- verdicts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    """Per-entry comparison of an engine's derivatives with the truth.

    Every field has the derivative's shape. ``verdict`` holds strings from ``schema.JUDGED``;
    errors are NaN where either side is not finite.
    """

    verdict: np.ndarray
    abs_error: np.ndarray
    rel_error: np.ndarray
    ulp_error: np.ndarray
    tolerance: np.ndarray
    ideal_tolerance: np.ndarray

    @property
    def failed(self) -> np.ndarray:
        """Boolean mask of entries whose verdict means the engine is wrong."""
        return np.isin(self.verdict, list(FAILING))


def judge(
    got: np.ndarray,
    truth: np.ndarray,
    status: np.ndarray,
    tolerance: np.ndarray,
    *,
    dtype: str,
    truth_bound: np.ndarray | None = None,
    out_of_range: np.ndarray | None = None,
    one_sided: tuple[np.ndarray, np.ndarray] | None = None,
    branch: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ideal_tolerance: np.ndarray | None = None,
    convention: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Judgement:
    """Judge each derivative entry: ``got`` (engine) against ``truth`` (certified).

    ``status`` is the truth engine's per-entry status ("ok", "uncertified", "kink",
    "undefined"); ``tolerance`` comes from :func:`rounding_tolerance` (or, for finite
    differences, from their own error model); ``one_sided`` gives the left and right
    derivatives (order 1) so a kink's convention can be told from a violation; where they
    coincide the derivative exists and is judged as usual. ``out_of_range`` (per point)
    marks rows the rounding model says the dtype cannot represent: a verdict other than
    ``ok`` there is ``out-of-range``, and so is an ``ok`` whose tolerance is as large as a
    nonzero expected value and the dtype's smallest normal number (it would accept
    anything).
    ``ideal_tolerance`` (:class:`RoundingModel`'s, within ``tolerance``) splits the
    entries within ``tolerance``: ``ok`` within it, ``inaccurate`` beyond it (accuracy a
    careful engine keeps, lost to a cancelling formula); without it there is no
    ``inaccurate``.
    ``convention`` is ``(at_kink, low, high, tolerance)`` from :class:`RoundingModel`:
    where an inner kink op sits exactly on its break, a failing entry between the
    derivatives its branches give is ``kink-convention`` (the engine used the op's
    convention, relu'(0) = 0): where f is smooth along the variable (relu(x*x) at 0), and
    where f has a kink or jump there too, whose one-sided derivatives need not pair the
    inner op's branches the way an engine does (selu(fmod(4**y, x)) at x = y = 1/2: fmod
    jumps to 0, onto selu's kink, and torch takes selu's left slope with fmod's partial
    there).
    ``branch`` is :class:`RoundingModel`'s ``(ambiguous, other, other_tolerance)``: where
    rounding may have flipped a kink or jump, an entry that is wrong for the truth's
    branch but right for the other one, or between the two (a tie the rounding made,
    split), or anything where a jump flips, is ``branch-ambiguous``.
    """
    got = np.asarray(got, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    status = np.broadcast_to(np.asarray(status), got.shape)
    tol = np.asarray(tolerance, dtype=np.float64)
    ideal = tol if ideal_tolerance is None else np.fmin(np.asarray(ideal_tolerance, dtype=np.float64), tol)
    if truth_bound is not None:
        bound = np.nan_to_num(np.asarray(truth_bound, dtype=np.float64), nan=0.0)
        tol, ideal = tol + bound, ideal + bound
    expected = truth.copy()
    kink = status == "kink"
    lo = hi = None
    sides_exist = np.ones(got.shape, dtype=bool)  # both one-sided limits known
    if one_sided is not None:
        left, right = (np.broadcast_to(np.asarray(x, dtype=np.float64), got.shape) for x in one_sided)
        lo, hi = np.fmin(left, right), np.fmax(left, right)
        sides_exist = np.isfinite(left) & np.isfinite(right)
        with np.errstate(invalid="ignore"):  # inf - inf where a side is beyond float64
            smooth_kink = kink & sides_exist & (np.abs(left - right) <= tol)
        expected = np.where(smooth_kink, left, expected)
        kink = kink & ~smooth_kink
    with np.errstate(all="ignore"):
        abs_err = np.abs(got - expected)
        rel_err = abs_err / np.abs(expected)
        ulp_err = abs_err / ulp(expected, dtype)
    finite_got, finite_exp = np.isfinite(got), np.isfinite(expected)
    verdict = np.full(got.shape, "ok", dtype=object)
    smooth = np.isin(status, ("ok", "uncertified"))
    verdict[smooth & finite_got & finite_exp & ~(abs_err <= ideal) & (abs_err > 0)] = "inaccurate"
    verdict[finite_got & finite_exp & ~(abs_err <= tol) & (abs_err > 0)] = "mismatch"
    verdict[finite_got != finite_exp] = "nan-mismatch"
    # an infinity of the truth's sign where the truth lies within its tolerance of the
    # dtype's overflow threshold is a rounding that overflowed: judged by how far the
    # threshold is (log10'' in float16 at 0.0025749 is -65502.3, and -65520 rounds to -inf);
    # past the threshold the infinity is the correctly rounded truth (error 0)
    threshold = dtype_info(dtype).max + 0.5 * float(ulp(np.array(dtype_info(dtype).max), dtype))
    with np.errstate(invalid="ignore", over="ignore"):  # a tolerance near float64's max
        overflowed = (
            smooth & np.isinf(got) & finite_exp & (np.sign(got) == np.sign(expected))
            & (np.abs(expected) + tol >= threshold)
        )
    if overflowed.any():
        abs_err = np.where(overflowed, np.fmax(threshold - np.abs(expected), 0.0), abs_err)
        with np.errstate(all="ignore"):
            rel_err = np.where(overflowed, abs_err / np.abs(expected), rel_err)
            ulp_err = np.where(overflowed, abs_err / ulp(expected, dtype), ulp_err)
            within = np.abs(expected) + ideal >= threshold
            verdict[overflowed] = np.where(within, "ok", "inaccurate")[overflowed]
    if out_of_range is not None:
        oor = np.broadcast_to(np.asarray(out_of_range).reshape((-1,) + (1,) * (got.ndim - 1)), got.shape)
        # an ok whose tolerance is the whole (nonzero) value and above the normal range
        # says nothing
        vacuous = (expected != 0) & ~(tol < np.fmax(np.abs(expected), dtype_info(dtype).tiny))
        verdict[oor & ((verdict != "ok") | vacuous)] = "out-of-range"
    if kink.any():
        if lo is not None and hi is not None:
            with np.errstate(invalid="ignore"):  # an infinite side and tolerance
                inside = finite_got & (got >= lo - tol) & (got <= hi + tol)
            verdict[kink & inside] = "kink-convention"
            verdict[kink & ~inside] = "kink-violation"
            # a side the truth cannot give (NaN: not certified, or no limit; infinite:
            # beyond float64) judges nothing
            verdict[kink & ~sides_exist] = "undefined"
            if out_of_range is not None:  # one-sided limits the dtype cannot hold
                verdict[oor & (verdict == "kink-violation")] = "out-of-range"
        else:
            verdict[kink] = "undefined"  # no one-sided limits (order 2): nothing to judge
    if convention is not None:
        at, low, high, side_tol = convention
        at = np.broadcast_to(np.asarray(at).reshape((-1,) + (1,) * (got.ndim - 1)), got.shape)
        with np.errstate(invalid="ignore", over="ignore"):
            slack = np.fmax(tol, np.asarray(side_tol, dtype=np.float64))
            low, high = np.fmin(low, expected) - slack, np.fmax(high, expected) + slack
            within = finite_got & (got >= low) & (got <= high)
        judged = np.isin(status, ("ok", "uncertified", "kink")) & np.isin(verdict, list(FAILING))
        verdict[at & judged & within] = "kink-convention"
    if branch is not None:
        near, other, other_tol = branch
        near = np.broadcast_to(np.asarray(near).reshape((-1,) + (1,) * (got.ndim - 1)), got.shape)
        other_tol = np.asarray(other_tol, dtype=np.float64)
        if truth_bound is not None:
            other_tol = other_tol + np.nan_to_num(np.asarray(truth_bound, dtype=np.float64), nan=0.0)
        # either branch, or between them: a tie the rounding made is split (max's 0.5 each)
        with np.errstate(invalid="ignore", over="ignore"):  # huge slack near float64's top
            slack = np.fmax(tol, other_tol)
            lo, hi = np.fmin(expected, other) - slack, np.fmax(expected, other) + slack
            either = np.isnan(other) | ((got >= lo) & (got <= hi))
        flipped = near & np.isin(status, ("ok", "uncertified")) & np.isin(verdict, list(FAILING)) & either
        verdict[flipped] = "branch-ambiguous"
    verdict[status == "undefined"] = "undefined"
    return Judgement(verdict.astype(str), abs_err, rel_err, ulp_err, tol, np.broadcast_to(ideal, tol.shape))


# ---- finite-difference diagnostics ------------------------------------------------------
