"""Hypothesis strategies: random expression trees and the points to evaluate them at.

* :func:`expressions` draws literal trees over the op table (``harness.ops.OPS``);
* :func:`points` draws a batch of points at which *every* subexpression of one tree is
  inside its op's domain, finite, and (by default) away from kinks;
* :func:`cases` draws both: ``(tree, points)``, the unit every engine check consumes.

Everything shrinks toward simple cases: small trees over ``x`` built from ``add``, ``mul``
and ``neg``, small exact constants, and points such as 0, 1, 1/2 and small integers.
:func:`valid_points` is the vectorised domain test behind :func:`points`, public so that
curated cases and other stages can ask the same question.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from hypothesis import reject
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from harness.compile import compile_tree, torch_namespace
from harness.dtypes import dtype_info, round_array, round_fraction
from harness.edges import edge_points
from harness.expr import Call, Const, Expr, ExprError, Var, size, walk
from harness.expr import variables as expr_variables
from harness.memo import Memo
from harness.ops import DEFAULT_OPS, OPS

__all__ = [
    "CONSTANTS",
    "EXPONENTS",
    "EDGE_SHARE",
    "KINKS",
    "MARGIN",
    "MAX_MAGNITUDE",
    "SHRINK_ORDER",
    "UNIT_EXPONENTS",
    "cases",
    "expressions",
    "points",
    "reproducible_generation",
    "valid_points",
]

KINKS: tuple[str, ...] = ("avoid", "include")
"""Values of the ``kinks`` argument: stay a margin away from kinks, or seek them out."""

CONSTANTS: tuple[Fraction, ...] = tuple(
    Fraction(p, q)
    for p, q in (
        (1, 1), (2, 1), (0, 1), (-1, 1), (1, 2), (3, 1), (-2, 1), (3, 4), (4, 1), (-1, 2),
        (-3, 1), (3, 8), (1, 4), (-4, 1), (3, 2), (-3, 4), (5, 4), (-3, 8),
    )
)
"""Leaf constants, simplest first (shrinking moves toward the front). Every one is a short
dyadic rational that float16 and bfloat16 hold exactly, so constants never round."""

EXPONENTS: tuple[Fraction, ...] = tuple(
    Fraction(p, q)
    for p, q in (
        (2, 1), (3, 1), (1, 2), (-1, 1), (1, 1), (4, 1), (-2, 1), (3, 2), (-1, 2), (0, 1),
        (-3, 1), (1, 4),
    )
)
"""Constants for argument positions an op reserves for constants (``Op.const_args``: the
exponent of ``pow``), simplest first."""

UNIT_EXPONENTS: tuple[Fraction, ...] = tuple(
    Fraction(p, q) for p, q in ((0, 1), (1, 1), (2, 1), (3, 1), (-1, 1), (-2, 1), (1, 2), (-1, 2), (10, 1))
)
"""Exponents of ``pow`` checked alone before random trees: 0 and 1 first (``x**0`` at
base 0 is the most reported pow bug), the squares, reciprocals, roots and a large one."""

SHRINK_ORDER: tuple[str, ...] = ("add", "mul", "neg", "sub", "div", "pow")
"""Ops that shrinking prefers, in order; the other ops follow in op-table order."""

EDGE_SHARE = 4
"""With ``edges=True``, up to one row in this many is an edge point of the tree."""

MARGIN = 2.0**-4
"""Default distance every domain margin (and, with ``kinks="avoid"``, every kink margin)
must exceed at generated points: ``OPS[op].domain(*args) > MARGIN``."""

MAX_MAGNITUDE = 2.0**40
"""Largest magnitude any subexpression may take at a generated point. Beyond finiteness,
this bound keeps float64 rounding far below :data:`MARGIN`, so a point that float64 finds
inside every domain is inside it in exact arithmetic too."""

_MODERATE = 4.0  # most drawn coordinates lie in [-4, 4] ...
_WIDE = 64.0  # ... and occasionally in [-64, 64]
_BRANCHING = 3  # binary calls are drawn this many times as often as one unary call
_FALLBACK_ROWS = 4096  # most deterministic fallback rows evaluated per batch
_MAX_DRAWN = 256  # most coordinates drawn one by one per example (data_too_large beyond)
_NO_VARIABLES = np.zeros((1, 0))  # the one "point" of a variable-free tree

# Deterministic fallback coordinates: simple dyadics first, then irregular ones that are
# unlikely to sit on a kink, tie or integer. All have at most 7 significant bits.
_FALLBACK_1D: tuple[float, ...] = (
    0.5, 1.0, 1.5, 2.0, 0.75, 1.25, 3.0, 0.25, 4.0,
    -0.5, -1.0, -1.5, -2.0, -0.75, -1.25, -3.0, -0.25, -4.0,
    0.3125, 0.6875, 1.4375, 2.8125, 1.625, 0.125, 6.0, 8.0, 12.0, 24.0,
    -0.3125, -0.6875, -1.4375, -2.8125, -1.625, -0.125, -6.0, -8.0, -12.0, -24.0,
    0.1875, 0.9375, -0.1875, -0.9375, 5.5, -5.5,
)
_BASE_SPECIALS: tuple[float, ...] = (
    0.0, 1.0, -1.0, 2.0, 0.5, -2.0, -0.5, 3.0, -3.0, 4.0, -4.0, 0.25, -0.25, 1.5, -1.5,
    0.75, -0.75,
)


# ---- argument checks -------------------------------------------------------------------


def _check_ops(ops: Iterable[str]) -> tuple[str, ...]:
    if isinstance(ops, str):
        raise TypeError(f"ops={ops!r} must be a sequence of op names such as ('add', 'sin')")
    names = list(ops)
    unknown = [n for n in names if n not in OPS]
    if unknown:
        raise ValueError(
            f"ops contains unknown op(s) {unknown}; known ops: {', '.join(sorted(OPS))}"
        )
    table = list(OPS)
    rank = {n: i for i, n in enumerate(SHRINK_ORDER)}
    unique = dict.fromkeys(names)
    return tuple(sorted(unique, key=lambda n: (rank.get(n, len(rank)), table.index(n))))


def _check_max_size(max_size: int) -> int:
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
        raise ValueError(f"max_size={max_size!r} must be an integer >= 1 (nodes in the tree)")
    return max_size


def _check_variables(names: Sequence[str]) -> tuple[Var, ...]:
    if isinstance(names, str) or not names:
        raise ValueError(
            f"variables={names!r} must be a non-empty sequence of names such as ('x', 'y')"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"variables={tuple(names)!r} contains a name twice; list each once")
    try:
        return tuple(Var(n) for n in names)
    except ExprError as err:
        raise ValueError(f"variables={tuple(names)!r}: {err}") from None


def _check_constants(values: Iterable[int | Fraction], name: str) -> tuple[Const, ...]:
    if isinstance(values, (str, int, Fraction)):
        raise TypeError(f"{name}={values!r} must be a sequence of ints or Fractions")
    out: dict[Fraction, None] = {}
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, Fraction)):
            raise ValueError(
                f"{name} contains {v!r}; expected an int or fractions.Fraction "
                "(write 0.375 as Fraction(3, 8)) so that it is exact"
            )
        value = Fraction(v)
        for dtype in ("float16", "bfloat16"):
            try:
                exact = round_fraction(value, dtype) == value
            except OverflowError:
                exact = False
            if not exact:
                raise ValueError(
                    f"{name} contains {value}, which {dtype} does not hold exactly; "
                    "use short dyadic rationals such as 3, -1/2 or 3/8"
                )
        out[value] = None
    return tuple(Const(v) for v in out)


def _check_points_args(n: int, dtype: str, margin: float, kinks: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be an integer >= 1 (points per example)")
    dtype_info(dtype)
    if not isinstance(margin, (int, float)) or not 0 <= margin < math.inf:
        raise ValueError(f"margin={margin!r} must be a finite number >= 0")
    if kinks not in KINKS:
        raise ValueError(f"kinks={kinks!r} must be 'avoid' or 'include'")


# ---- expressions -----------------------------------------------------------------------


@st.composite
def _leaf(draw: st.DrawFn, var_nodes: tuple[Var, ...], const_nodes: tuple[Const, ...]) -> Expr:
    """A variable (three times in four) or a constant; shrinks toward the first variable."""
    if const_nodes and draw(st.integers(0, 3)) == 3:
        return draw(st.sampled_from(const_nodes))
    return draw(st.sampled_from(var_nodes))


def _make_call(name: str, max_size: int, args: tuple[Expr, ...]) -> Expr:
    """``name(*args)``, or its first argument when the call would exceed ``max_size`` or is
    a variable-free call that float64 finds outside its domain or not finite."""
    node = Call(name, args)
    if size(node) > max_size:
        return args[0]
    if not expr_variables(node) and not _valid_in(node, _NO_VARIABLES, torch.float64, MARGIN)[0]:
        return args[0]  # log(-1), 1/0, sinh(sinh(sinh(4))): no point could ever use it
    return node


def expressions(
    ops: Sequence[str] = DEFAULT_OPS,
    *,
    max_size: int = 12,
    variables: Sequence[str] = ("x", "y"),
    constants: Sequence[int | Fraction] = CONSTANTS,
    exponents: Sequence[int | Fraction] = EXPONENTS,
) -> SearchStrategy[Expr]:
    """Literal expression trees of at most ``max_size`` nodes over the ops named in ``ops``.

    Leaves are variables from ``variables`` and exact constants from ``constants``; inner
    nodes are calls of the ops in ``ops`` (a variadic op with a drawn number of
    arguments), with arguments an op reserves for constants
    (``OPS[name].const_args``: the exponent of ``pow``) drawn from ``exponents``, or from
    the op's own ``params`` where it lists them (elu's alpha). Kink and
    jump ops (``harness.ops.KINK_OPS``, ``JUMP_OPS``) are not in the default ``ops``;
    pass them to get them. Constants must be held exactly by float16 and bfloat16.

    Built on ``st.recursive``. Shrinks toward smaller trees, toward variables before
    constants and the first variable (``x`` before ``y``), toward the first constants
    listed, and toward ``add``, ``mul``, ``neg`` (see :data:`SHRINK_ORDER`) before the
    other ops. Leaves are variables three times in four, and each binary op is drawn three
    times as often as each unary one, so that trees branch and use several variables
    (unary ops outnumber binary ones in the table). A tree may still use no variable.
    """
    names = _check_ops(ops)
    max_size = _check_max_size(max_size)
    var_nodes = _check_variables(variables)
    const_nodes = _check_constants(constants, "constants")
    exponent_nodes = _check_constants(exponents, "exponents")
    if not exponent_nodes and any(OPS[n].const_args for n in names):
        raise ValueError("exponents=() is empty, but ops contains an op with constant arguments")
    leaves = _leaf(var_nodes, const_nodes)
    smallest_call = min((1 + OPS[n].arity for n in names), default=max_size + 1)
    if smallest_call > max_size:
        return leaves
    exponent = st.sampled_from(exponent_nodes) if exponent_nodes else st.nothing()

    def extend(children: SearchStrategy[Expr]) -> SearchStrategy[Expr]:
        # `children` is captured, not passed: a strategy's repr spells out its arguments,
        # and spelled out through every level of the recursion it runs to hundreds of
        # megabytes, which Hypothesis builds (and warns about) while shrinking.
        @st.composite
        def call_of(draw: st.DrawFn, name: str) -> Expr:
            row = OPS[name]
            if row.params:  # the op's own constants (elu's alpha), as users pass them
                chosen = dict(zip(row.const_args, draw(st.sampled_from(row.params)), strict=True))
                args = tuple(
                    Const(chosen[i]) if i in chosen else draw(children) for i in range(row.arity)
                )
            else:
                # a variadic op (prod, logsumexp) draws its count, shrinking to the fewest;
                # dot's counts go in steps of 2
                counts = row.arities
                if len(counts) == 1:
                    count = row.arity
                elif row.arity_step == 1:
                    count = draw(st.integers(row.arity, counts[-1]))
                else:
                    count = draw(st.sampled_from(counts))
                args = tuple(
                    draw(exponent if i in row.const_args else children) for i in range(count)
                )
            return _make_call(name, max_size, args)

        # Repeated branches go last, so shrinking still prefers the front of `names`.
        repeats = [n for n in names if OPS[n].arity > 1 and not OPS[n].const_args]
        return st.one_of([call_of(n) for n in [*names, *repeats * (_BRANCHING - 1)]])

    return st.recursive(leaves, extend, max_leaves=max_size)


# ---- point validity --------------------------------------------------------------------


def _valid_in(
    expr: Expr,
    pts: np.ndarray,
    dtype: torch.dtype,
    margin: float,
    avoid_kinks: bool = False,
    max_magnitude: float = MAX_MAGNITUDE,
) -> np.ndarray:
    """Rows of ``pts`` where every subexpression, computed literally in ``dtype``, is valid.

    Each distinct subtree is evaluated once for the whole batch, as the engines compute it
    (:func:`harness.compile.compile_tree` with the op table's torch kernels). Kinks count only
    where the kinked argument depends on a variable (``max(0, 0)`` is just a constant).
    """
    x = torch.as_tensor(pts, dtype=torch.float64).to(dtype)
    n = x.shape[0]
    nodes = list(walk(expr))
    run = compile_tree(expr, torch_namespace(), every_node=True)
    try:
        computed = run(list(x.T.unbind(0)), torch.zeros((), dtype=dtype))
    except (RuntimeError, NotImplementedError):  # eigh has no float16 kernel: no valid point
        return np.zeros(n, dtype=bool)
    values = dict(zip(nodes, computed, strict=True))
    ok = torch.ones(n, dtype=torch.bool)
    varying: set[Expr] = set()
    for node in nodes:
        value = values[node]
        if isinstance(node, Var):
            varying.add(node)
        elif isinstance(node, Call):
            row = OPS[node.op]
            args = [values[a] for a in node.args]
            ok &= row.domain(*args) > margin
            if any(a in varying for a in node.args):
                varying.add(node)
                if avoid_kinks and row.kinks is not None:
                    ok &= row.kinks(*args) > margin
        ok &= torch.isfinite(value) & (value.abs() <= max_magnitude)
    return ok.numpy()


def valid_points(
    expr: Expr,
    pts: np.ndarray,
    dtype: str = "float64",
    *,
    margin: float = MARGIN,
    kinks: str = "avoid",
    max_magnitude: float = MAX_MAGNITUDE,
) -> np.ndarray:
    """Boolean mask over the rows of ``pts``: where ``expr`` may be checked in ``dtype``.

    ``pts`` has shape ``(n, len(variables(expr)))`` (columns in ``variables(expr)`` order)
    and is rounded to ``dtype`` first. A row is valid when, computing the tree literally
    both in ``dtype`` and in float64, every op's domain margin exceeds ``margin``, every
    subexpression is finite and at most ``max_magnitude`` in magnitude, and, with
    ``kinks="avoid"``, every kink or jump op's kink margin exceeds ``margin`` too. The
    float64 pass stands in for exact arithmetic; the ``dtype`` pass is what engines run.
    """
    _check_points_args(1, dtype, margin, kinks)
    n_vars = len(expr_variables(expr))
    arr = np.asarray(pts, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != n_vars:
        raise ValueError(
            f"pts.shape={arr.shape} does not match the expression's variables "
            f"{expr_variables(expr)}; expected (n_points, {n_vars})"
        )
    arr = round_array(arr, dtype)
    avoid = kinks == "avoid"
    mask = _valid_in(expr, arr, torch.float64, margin, avoid, max_magnitude)
    if dtype != "float64":
        mask &= _valid_in(expr, arr, dtype_info(dtype).torch, margin, avoid, max_magnitude)
    return mask


# ---- points ----------------------------------------------------------------------------


_FALLBACKS: Memo[np.ndarray] = Memo(32)


def _fallback(n_vars: int, dtype: str) -> np.ndarray:
    """Deterministic fallback rows, simplest first; at most ``_FALLBACK_ROWS`` of them."""
    return _FALLBACKS.get((n_vars, dtype), lambda: _fallback_rows(n_vars, dtype))


def _fallback_rows(n_vars: int, dtype: str) -> np.ndarray:
    base = np.array(_FALLBACK_1D)
    if n_vars == 0:
        rows = np.zeros((1, 0))
    else:
        m = len(base)
        total = m**n_vars
        if total <= _FALLBACK_ROWS:
            idx = np.indices((m,) * n_vars).reshape(n_vars, -1).T
        else:
            # Too many combinations: the simplest half, then a fixed pseudo-random sample.
            half = _FALLBACK_ROWS // 2
            k = max(1, int(half ** (1 / n_vars)))
            simple = np.indices((k,) * n_vars).reshape(n_vars, -1).T
            rng = np.random.default_rng(0)
            sample = rng.integers(0, m, size=(_FALLBACK_ROWS - len(simple), n_vars))
            idx = np.concatenate([simple, sample])
        order = np.lexsort((idx.sum(axis=1), idx.max(axis=1)))
        rows = base[idx[order]]
    out = round_array(rows, dtype)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class _Mix:
    """How coordinates are drawn. A kind is drawn from 0..15 (lower kinds shrink first):
    the first ``n_special`` give special values, the next ``n_target`` values built from
    the tree's constants, then ``n_tie`` copies of the previous column, ``n_moderate``
    floats in [-4, 4], and the rest floats in [-64, 64]."""

    specials: tuple[float, ...]
    targets: tuple[float, ...]
    n_special: int
    n_target: int
    n_tie: int
    n_moderate: int

    def thresholds(self) -> tuple[int, int, int, int]:
        t1 = self.n_special + (0 if self.targets else self.n_target)
        t2 = self.n_special + self.n_target
        return t1, t2, t2 + self.n_tie, t2 + self.n_tie + self.n_moderate


def _mix(expr: Expr, include: bool) -> _Mix:
    """Avoiding kinks: mostly moderate floats. Including them: special values often, and
    values built from the tree's constants (``relu(x - 3/8)`` kinks at ``x = 3/8``)."""
    if not include:
        return _Mix(_BASE_SPECIALS, (), 4, 0, 0, 11)
    targets: list[float] = []
    for node in walk(expr):
        if isinstance(node, Const) and node.value != 0:
            c = float(node.value)
            targets += [c, -c, 2 * c, -2 * c, c / 2, -c / 2]
    kept = tuple(dict.fromkeys(v for v in targets if abs(v) <= _WIDE))
    return _Mix(_BASE_SPECIALS, kept, 5, 3, 2, 5)


_TIE = (1, 0.0)  # a drawn coordinate that copies the previous column's value


@st.composite
def _coordinate(draw: st.DrawFn, mix: _Mix) -> tuple[int, float]:
    """One drawn coordinate as ``(is_tie, value)``; shrinks toward the first special."""
    t1, t2, t3, t4 = mix.thresholds()
    kind = draw(st.integers(0, 15))
    if kind < t1:
        return 0, draw(st.sampled_from(mix.specials))
    if kind < t2:
        return 0, draw(st.sampled_from(mix.targets))
    if kind < t3:
        return _TIE
    bound = _MODERATE if kind < t4 else _WIDE
    return 0, draw(st.floats(-bound, bound, allow_nan=False, allow_infinity=False))


def _random_coordinates(
    seed: int, shape: tuple[int, int], mix: _Mix
) -> tuple[np.ndarray, np.ndarray]:
    """``(is_tie, value)`` arrays mixed as :func:`_coordinate` mixes them, from a seed."""
    t1, t2, t3, t4 = mix.thresholds()
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 16, size=shape)
    special = np.asarray(mix.specials)[rng.integers(0, len(mix.specials), size=shape)]
    target = np.asarray(mix.targets or mix.specials)
    target = target[rng.integers(0, len(target), size=shape)]
    floats = rng.uniform(-1.0, 1.0, size=shape) * np.where(kind < t4, _MODERATE, _WIDE)
    values = np.where(kind < t1, special, np.where(kind < t2, target, floats))
    return (kind >= t2) & (kind < t3), values


def _assemble(tie: np.ndarray, values: np.ndarray, dtype: str) -> np.ndarray:
    """Rows of coordinates rounded to ``dtype``, each tie copying the column before it."""
    values = round_array(values, dtype)
    for j in range(1, values.shape[1]):  # columns, not points: a few iterations at most
        values[:, j] = np.where(tie[:, j], values[:, j - 1], values[:, j])
    return values + 0.0  # -0.0 -> 0.0


@st.composite
def _candidates(
    draw: st.DrawFn, n: int, n_vars: int, mix: _Mix
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` candidate rows as ``(is_tie, value)`` arrays of shape ``(n, n_vars)``.

    Coordinates are drawn one by one up to a budget that keeps Hypothesis's input small;
    rows past it come from a numpy generator whose seed is drawn."""
    n_drawn = n if n * n_vars <= _MAX_DRAWN else max(1, _MAX_DRAWN // n_vars)
    coordinate = _coordinate(mix)
    drawn = draw(st.lists(coordinate, min_size=n_drawn * n_vars, max_size=n_drawn * n_vars))
    pairs = np.array(drawn, dtype=np.float64).reshape(n_drawn, n_vars, 2)
    tie, values = pairs[..., 0].astype(bool), pairs[..., 1]
    if n_drawn < n:
        seed = draw(st.integers(0, 2**32 - 1))
        more_tie, more = _random_coordinates(seed, (n - n_drawn, n_vars), mix)
        tie, values = np.concatenate([tie, more_tie]), np.concatenate([values, more])
    return tie, values


@st.composite
def _points(
    draw: st.DrawFn, expr: Expr, n: int, dtype: str, margin: float, kinks: str,
    edges: bool = False,
) -> np.ndarray:
    n_vars = len(expr_variables(expr))
    tie, values = draw(_candidates(n, n_vars, _mix(expr, kinks == "include")))
    rows = _assemble(tie, values, dtype)
    fallback = _fallback(n_vars, dtype)
    mask = valid_points(expr, np.concatenate([rows, fallback]), dtype, margin=margin, kinks=kinks)
    good = mask[:n]
    pool = fallback[mask[n:]]
    if len(pool) == 0:
        pool = rows[good]
    if len(pool) == 0:
        reject()  # no valid point anywhere we looked: log(-exp(x)), asin(2), ...
    bad = np.flatnonzero(~good)
    rows[bad] = pool[np.arange(len(bad)) % len(pool)]
    if edges:
        at_edges = edge_points(expr, dtype)
        if len(at_edges):
            k = draw(st.integers(0, max(1, n // EDGE_SHARE)))  # shrinks to no edge rows
            picks = [draw(st.integers(0, len(at_edges) - 1)) for _ in range(k)]
            rows[n - k :] = at_edges[picks]
    return rows


def points(
    expr: Expr,
    n: int = 32,
    dtype: str = "float64",
    *,
    margin: float = MARGIN,
    kinks: str = "avoid",
    edges: bool = False,
) -> SearchStrategy[np.ndarray]:
    """Float64 arrays of shape ``(n, len(variables(expr)))`` of points at which to check ``expr``.

    Columns follow ``variables(expr)``. Values are exactly representable in ``dtype``, and
    at every row :func:`valid_points` holds: every subexpression lies inside its op's
    domain by more than ``margin``, is finite (computed literally in ``dtype`` and in
    float64) and, with ``kinks="avoid"``, lies more than ``margin`` from every kink.
    With ``kinks="include"`` kinks are allowed and sought: special values (0, +-1, small
    integers, multiples of the tree's constants) and ties between columns (``x == y``,
    where ``max(x, y)`` kinks) appear often, so generated cases exercise kink rules.

    Coordinates mix special values with floats in [-4, 4] and occasionally [-64, 64],
    rounded to ``dtype``. Rows outside the domain are replaced by valid rows from a fixed
    fallback list (or by valid drawn rows); only a tree with no valid point at all is
    rejected. Shrinks toward special values, first 0 and 1, then toward short floats.

    With ``edges=True`` a drawn number of rows, up to one in :data:`EDGE_SHARE` (at least
    one), are the tree's edge points (:func:`harness.edges.edge_points`: a variable where
    an op it feeds rounds to a limit, overflows, switches formula or meets its domain's
    end); those rows hold :func:`valid_points` only with ``margin=0`` and no bound on
    magnitudes. The number shrinks to zero, the picks toward the simplest edges.
    """
    _check_points_args(n, dtype, margin, kinks)
    return _points(expr, n, dtype, float(margin), kinks, edges)


# ---- cases -----------------------------------------------------------------------------


def _has_variables(expr: Expr) -> bool:
    return bool(expr_variables(expr))


@st.composite
def _cases(
    draw: st.DrawFn,
    trees: SearchStrategy[Expr],
    n: int,
    dtype: str,
    margin: float,
    kinks: str,
    edges: bool,
) -> tuple[Expr, np.ndarray]:
    expr = draw(trees)
    return expr, draw(_points(expr, n, dtype, margin, kinks, edges))


def cases(
    ops: Sequence[str] = DEFAULT_OPS,
    *,
    max_size: int = 12,
    variables: Sequence[str] = ("x", "y"),
    constants: Sequence[int | Fraction] = CONSTANTS,
    exponents: Sequence[int | Fraction] = EXPONENTS,
    n_points: int = 32,
    dtype: str = "float64",
    kinks: str = "avoid",
    margin: float = MARGIN,
    edges: bool = False,
) -> SearchStrategy[tuple[Expr, np.ndarray]]:
    """Pairs ``(tree, points)``: a tree from :func:`expressions` that uses at least one
    variable, and ``n_points`` points for it from :func:`points`.

    Arguments are those of :func:`expressions` and :func:`points` (``edges``: a share of
    the points at the tree's edges). Shrinks as they do:
    the tree toward a small one over ``x``, the points toward special values.
    """
    trees = expressions(
        ops, max_size=max_size, variables=variables, constants=constants, exponents=exponents
    ).filter(_has_variables)
    _check_points_args(n_points, dtype, margin, kinks)
    return _cases(trees, n_points, dtype, float(margin), kinks, edges)


@contextlib.contextmanager
def reproducible_generation() -> Iterator[None]:
    """Within this block, Hypothesis draws depend on the seed alone.

    Hypothesis mixes literal constants mined from "local" modules (those outside
    site-packages, which includes an editable install of this package) into its draws,
    so a seed would name other cases after any edit of diffharness, under a
    non-editable install, or with other modules imported; and its span mutator draws
    differently from process to process. Both are off inside this block, so a seed names
    the same cases everywhere (for one Hypothesis version). Harmless where Hypothesis
    has no such feature.
    """
    with _no_span_mutations(), _no_local_constants():
        yield


@contextlib.contextmanager
def _no_local_constants() -> Iterator[None]:
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - an older or newer layout
        yield
        return
    original = getattr(providers, "_get_local_constants", None)
    cache = getattr(getattr(providers, "CONSTANTS_CACHE", None), "cache", None)
    make_empty = getattr(providers, "Constants", None)
    if original is None or cache is None or make_empty is None:  # pragma: no cover
        yield
        return
    empty = make_empty()
    providers._get_local_constants = lambda: empty  # type: ignore[attr-defined]
    cache.clear()  # constants already cached with the local ones in them
    try:
        yield
    finally:
        providers._get_local_constants = original  # type: ignore[attr-defined]
        cache.clear()


@contextlib.contextmanager
def _no_span_mutations() -> Iterator[None]:
    """Hypothesis's generation-phase mutator (copying one span of a test case over another
    with the same label) draws differently from process to process, even with a fixed
    seed and PYTHONHASHSEED (measured with Hypothesis 6.170: about one process in five
    drew another case list; none with the mutator off)."""
    try:
        from hypothesis.internal.conjecture.engine import ConjectureRunner
    except ImportError:  # pragma: no cover - an older or newer layout
        yield
        return
    original = ConjectureRunner.__dict__.get("generate_mutations_from")
    if original is None:  # pragma: no cover
        yield
        return
    ConjectureRunner.generate_mutations_from = lambda self, data: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        ConjectureRunner.generate_mutations_from = original  # type: ignore[method-assign]
