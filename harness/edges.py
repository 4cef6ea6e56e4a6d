"""Edge points: where each op's derivative is most often computed wrong, per dtype.

Real derivative bugs sit at special arguments that random points never reach: where an
op's value rounds to its limit (tanh past 19 in float64: ``1 - y*y`` gives 0), where a
value or an intermediate of a common formula overflows (``exp(2x)`` inside tanh), at
thresholds where libraries switch formula (softplus at 20), next to domain ends (asin next
to 1, log at subnormals), at large trig arguments, and at 0 and the subnormals. Each op
row's ``edges(dtype)`` names its own (:mod:`harness.ops`); :func:`op_edges` adds the ones
every op shares, the mirror images and a few ulps on either side, rounded to the dtype.

:func:`edge_points` turns them into points of a tree: each variable at the edges of the
ops that take it directly as an argument, the other variables at plain values, and, for
an op whose arguments are all variables, the whole argument tuples its row names
(``special_args``: one and two zeros among prod's arguments, ties for amax, singular
matrices for det), where one argument at an edge is not enough. Only
points where the tree, computed literally in float64 and in the dtype, stays inside every
op's domain and finite are kept: what an engine must then get right.
"""

from __future__ import annotations

import numpy as np

from harness.dtypes import dtype_info, round_array, ulp
from harness.expr import Call, Expr, Var, variables, walk
from harness.memo import Memo
from harness.ops import OPS

__all__ = ["NEIGHBOURS", "PLAIN", "edge_points", "op_edges"]

NEIGHBOURS: tuple[int, ...] = (0, 1, -1, 2, -2)
"""Steps, in ulps of the dtype, taken around every edge: formulas switch within an ulp."""

PLAIN: tuple[float, ...] = (0.75, -1.5)
"""Values of the other variables while one sits at an edge."""

_EDGES: Memo[np.ndarray] = Memo(256)


def op_edges(op: str, dtype: str) -> np.ndarray:
    """The sorted, distinct arguments of ``op`` worth checking in ``dtype``: the op row's
    own edges and 0, the smallest subnormal, the smallest normal and 1, each with its
    mirror image and :data:`NEIGHBOURS` ulps around it, rounded to ``dtype``, finite.
    Whether the op is defined there is left to :func:`edge_points`."""
    row = OPS[op]
    return _EDGES.get((op, dtype, row.edges), lambda: _op_edges(op, dtype))


def _op_edges(op: str, dtype: str) -> np.ndarray:
    info = dtype_info(dtype)
    row = OPS[op]
    base = [0.0, info.smallest_subnormal, info.tiny, 1.0, *(row.edges(info) if row.edges else ())]
    values = np.array([v for b in base for v in (b, -b)], dtype=np.float64)
    values = round_array(values[np.isfinite(values)], dtype)
    steps = ulp(values, dtype)
    with np.errstate(over="ignore"):  # max + 1 ulp overflows, and is dropped below
        around = round_array(np.concatenate([values + k * steps for k in NEIGHBOURS]), dtype)
    around = around[np.isfinite(around)] + 0.0  # -0.0 -> 0.0
    out = np.unique(around)
    out = out[np.lexsort((out, np.abs(out)))]  # simplest (smallest) first
    out.setflags(write=False)
    return out


def edge_points(expr: Expr, dtype: str) -> np.ndarray:
    """Points of ``expr`` (columns in ``variables(expr)`` order) with one variable at an
    edge of an op that takes it directly and the others at :data:`PLAIN` values, for an
    op of two variables both at the same edge, and an op's ``special_args`` where its
    arguments are all variables. Kept only where the tree is inside
    every op's domain and finite, in float64 and in ``dtype``; kinks are allowed. The
    array is read-only and remembered per tree, dtype and op rows."""
    rows = tuple(OPS[n.op] for n in walk(expr) if isinstance(n, Call))
    return _POINTS.get((expr, dtype, rows), lambda: _edge_points(expr, dtype))


_POINTS: Memo[np.ndarray] = Memo(64)


def _edge_points(expr: Expr, dtype: str) -> np.ndarray:
    from harness.strategies import valid_points

    names = variables(expr)
    if not names:
        return np.zeros((0, 0))
    position = {name: i for i, name in enumerate(names)}
    per_var: dict[str, list[np.ndarray]] = {name: [] for name in names}
    ties: list[np.ndarray] = []
    for node in walk(expr):
        if not isinstance(node, Call):
            continue
        ties.extend(_special_rows(node, position, dtype))
        edges = op_edges(node.op, dtype)
        direct = [a.name for a in node.args if isinstance(a, Var)]
        for name in direct:
            per_var[name].append(edges)
        if len(set(direct)) == 2:
            tie = np.full((len(edges), len(names)), PLAIN[0])
            for name in direct:
                tie[:, position[name]] = edges
            ties.append(tie)
    rows = [_one_at_an_edge(position[name], np.unique(np.concatenate(found)), len(names))
            for name, found in per_var.items() if found]
    if not rows and not ties:
        return np.zeros((0, len(names)))
    pts = np.unique(np.concatenate(rows + ties), axis=0)
    pts = pts[np.argsort(np.abs(pts).max(axis=1), kind="stable")]  # simplest first
    mask = valid_points(expr, pts, dtype, margin=0.0, kinks="include", max_magnitude=np.inf)
    out = pts[mask]
    out.setflags(write=False)
    return out


def _special_rows(node: Call, position: dict[str, int], dtype: str) -> list[np.ndarray]:
    """The op's ``special_args`` as points, where its arguments are all variables and a
    tuple gives a variable that occurs twice one value; the other variables at PLAIN."""
    row = OPS[node.op]
    if row.special_args is None or not all(isinstance(a, Var) for a in node.args):
        return []
    names = [a.name for a in node.args if isinstance(a, Var)]
    out = []
    for values in row.special_args(len(names), dtype_info(dtype)):
        rounded = round_array(np.array(values, dtype=np.float64), dtype)
        given: dict[str, float] = {}
        if any(given.setdefault(n, float(v)) != float(v) for n, v in zip(names, rounded, strict=True)):
            continue  # prod(x, y, x) cannot have x at 0 and at 0.75
        point = np.full((1, len(position)), PLAIN[0])
        for n, v in given.items():
            point[0, position[n]] = v
        if np.isfinite(point).all():
            out.append(point)
    return out


def _one_at_an_edge(column: int, edges: np.ndarray, n_vars: int) -> np.ndarray:
    blocks = []
    for plain in PLAIN[: 1 if n_vars == 1 else len(PLAIN)]:
        block = np.full((len(edges), n_vars), plain)
        block[:, column] = edges
        blocks.append(block)
    return np.concatenate(blocks)
