"""A reference engine that errs as much as a careful engine may, for the oracle's tests.

It computes the gradient in forward mode on the literal tree, every quantity in the
standard model of floating-point arithmetic for the dtype under test (unit roundoff
u): each result is the exact result of its operation on the (already erring) operands
times (1 + delta), with |delta| <= u for arithmetic (+, -, *, /, sqrt, and the products
and sums of the chain rule: correct rounding) and |delta| <= ``libm`` * u for a library
function (exp, tanh, ..., and the partial derivatives of such functions; 4 u, about 2
ulps, the oracle's ``LIBM`` budget). Exact results (a product with 1, a sum with an
exact 0) have delta = 0. The partials of the ops whose usual backward formula loses
accuracy are computed by that formula, step by step: tanh' = 1 - y*y, sigmoid' =
y*(1 - y), expm1' = y + 1, erf' = 2/sqrt(pi) exp(-x*x), asin' and acos' through 1 -
x*x; the others are the exact partial at the erring arguments, times (1 + delta).

Where each delta goes is a *site*; ``signs`` gives, per site, a number in [-1, 1] per
point (the fraction of the site's bound taken), or the engine draws them at random.
:func:`worst_case` aligns them the worst way for each entry: it moves one site at a
time to read the sign of its effect, then sets every site to push the entry one way,
then the other (to first order, the largest error such an engine can make).

With ``careful=True`` no formula is used: every library partial is its exact value
times (1 + delta), |delta| <= ``libm`` * u, as a careful implementation computes it (the
oracle's *ideal* tolerance is for that engine; the formulas' cancellation is what its
``inaccurate`` verdict reports).

Exact values come from torch in float64 (about 1e-16 relative; in float64 itself the
reference is then torch's float64 plus the deltas); a careful engine's library partials
come from the certified truth of the op alone, since torch's float64 formulas cancel too
(tanh'(20) is 0 there).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from harness.dtypes import dtype_info
from harness.expr import Call, Const, Expr, Var, variables, walk
from harness.ops import OPS

ARITHMETIC = frozenset({"add", "sub", "mul", "div", "neg", "sqrt", "abs", "relu", "max", "min"})
"""Ops computed correctly rounded (their partials too, where not exact)."""

UNIT_PARTIALS = frozenset({"add", "sub", "neg", "abs", "relu", "max", "min"})
"""Ops whose partials are 0 or +-1."""
EXACT_VALUES = frozenset({"neg", "abs", "relu", "max", "min"})
"""Ops whose values are exact."""

Signs = dict[int, np.ndarray]


class ReferenceEngine:
    """Forward-mode gradient in ``dtype``'s standard model: relative error up to ``libm``
    unit roundoffs per library result, one per arithmetic result (order 1 only)."""

    name = "reference"

    def __init__(
        self, libm: float = 4.0, signs: Signs | None = None, seed: int = 0, careful: bool = False
    ) -> None:
        self.libm = libm
        self.careful = careful
        if careful:
            self.name = "reference-careful"
        self.signs = signs
        self.rng = np.random.default_rng(seed)
        self.sites = 0  # how many sites the last call used

    def supports(self, op: str) -> bool:
        return op in OPS

    def derivatives(self, expr: Expr, points: np.ndarray, *, dtype: str, order: int = 1) -> np.ndarray:
        if order not in (1, 2):
            raise NotImplementedError("the reference engine computes gradients and Hessians only")
        names = variables(expr)
        n, m = len(points), len(names)
        site = iter(range(10**6))

        u = dtype_info(dtype).unit_roundoff

        def off(v: np.ndarray, bound: float, exact: np.ndarray | None = None) -> np.ndarray:
            """``v`` times (1 + delta), |delta| <= bound * u (one site); 0 where ``exact``."""
            s = next(site)
            if self.signs is not None:
                frac = self.signs.get(s, np.zeros(n))
            else:
                frac = self.rng.uniform(-1.0, 1.0, n)
            v = np.asarray(v, dtype=np.float64)
            frac = np.reshape(frac, (n,) + (1,) * (v.ndim - 1))
            delta = frac * bound * u if exact is None else np.where(exact, 0.0, frac * bound * u)
            with np.errstate(invalid="ignore"):
                return v * (1 + delta)

        def rnd(v: np.ndarray) -> np.ndarray:
            return off(v, 1.0)

        def lib(v: np.ndarray) -> np.ndarray:
            return off(v, self.libm)

        value: dict[Expr, np.ndarray] = {}
        tangent: dict[Expr, np.ndarray] = {}
        hessian: dict[Expr, np.ndarray] = {}
        for node in walk(expr):
            hessian[node] = np.zeros((n, m, m))
            if isinstance(node, Var):
                value[node] = points[:, names.index(node.name)].astype(np.float64)
                t = np.zeros((n, m))
                t[:, names.index(node.name)] = 1.0
                tangent[node] = t
                continue
            if isinstance(node, Const):
                value[node] = np.full(n, float(node.value))  # exact in every dtype
                tangent[node] = np.zeros((n, m))
                continue
            assert isinstance(node, Call)
            args = [value[a] for a in node.args]
            exact, partials = _exact(node.op, args)
            if self.careful and node.op not in ARITHMETIC and node.op != "mul":
                partials = _certified_partials(node.op, args)
            v = lib(exact) if node.op not in ARITHMETIC else exact if node.op in EXACT_VALUES else rnd(exact)
            formula = None if self.careful else FORMULAS.get(node.op)
            if formula is not None:
                ps = [formula(args, v, rnd, lib)]
            elif node.op in UNIT_PARTIALS:
                ps = partials  # 0 or +-1: exact
            elif node.op == "mul":
                ps = [args[1], args[0]]  # exact
            elif node.op in ARITHMETIC:
                ps = [rnd(p) for p in partials]
            else:
                ps = [lib(p) for p in partials]
            acc: np.ndarray | None = None
            for j, a in enumerate(node.args):
                if not tangent[a].any():
                    continue  # a constant argument: no chain term
                with np.errstate(all="ignore"):
                    unit = (np.abs(ps[j]) == 1)[:, None] | (tangent[a] == 0)
                    term = off(ps[j][:, None] * tangent[a], 1.0, exact=unit)
                    if acc is None:
                        acc = term
                    else:
                        acc = off(acc + term, 1.0, exact=(acc == 0) | (term == 0))
            value[node] = v
            tangent[node] = acc if acc is not None else np.zeros((n, m))
            if order == 2:
                qs = self._second_partials(node.op, args, v, rnd, lib)
                hessian[node] = self._hessian(node, ps, qs, tangent, hessian, off, (n, m))
        self.sites = next(site)
        return tangent[expr] if order == 1 else hessian[expr]

    def _second_partials(
        self, op: str, args: list[np.ndarray], y: np.ndarray, rnd: Rounder, lib: Rounder
    ) -> dict[tuple[int, int], np.ndarray]:
        """The op's second partials as this engine computes them: 0 and 1 exactly where
        they are (+, -, *, kinks), tanh'' and sigmoid'' by their usual formulas unless
        careful, every other one its exact value times one rounding (arithmetic) or one
        library error."""
        ar = len(args)
        zero = np.zeros_like(args[0])
        if op in UNIT_PARTIALS:
            return {(j, k): zero for j in range(ar) for k in range(ar)}
        if op == "mul":
            return {(0, 0): zero, (1, 1): zero, (0, 1): zero + 1.0, (1, 0): zero + 1.0}
        if not self.careful and op == "tanh":
            return {(0, 0): rnd(rnd(-2 * y) * rnd(1 - rnd(y * y)))}
        if not self.careful and op == "sigmoid":
            return {(0, 0): rnd(rnd(y * rnd(1 - y)) * rnd(1 - 2 * y))}
        exact = _certified_second(op, args)
        err = rnd if op in ARITHMETIC else lib
        return {(j, k): err(exact[:, j, k]) for j in range(ar) for k in range(ar)}

    @staticmethod
    def _hessian(
        node: Call,
        ps: list[np.ndarray],
        qs: dict[tuple[int, int], np.ndarray],
        tangent: dict[Expr, np.ndarray],
        hessian: dict[Expr, np.ndarray],
        off: Callable[..., np.ndarray],
        shape: tuple[int, int],
    ) -> np.ndarray:
        """sum_j p_j H_j + sum_jk q_jk t_j t_k^T, each product and each sum rounded once."""
        n, m = shape
        acc: np.ndarray | None = None

        def add(acc: np.ndarray | None, term: np.ndarray) -> np.ndarray:
            if acc is None:
                return term
            return off(acc + term, 1.0, exact=(acc == 0) | (term == 0))

        with np.errstate(all="ignore"):
            for j, a in enumerate(node.args):
                h = hessian[a]
                if h.any():
                    unit = (np.abs(ps[j]) == 1)[:, None, None] | (h == 0)
                    acc = add(acc, off(ps[j][:, None, None] * h, 1.0, exact=unit))
            for (j, k), q in qs.items():
                tj, tk = tangent[node.args[j]], tangent[node.args[k]]
                if not (q.any() and tj.any() and tk.any()):
                    continue
                # a product with a factor +-1 (or 0) is exact
                exact_qt = (np.abs(q) == 1)[:, None] | (np.abs(tj) == 1) | (tj == 0)
                qt = off(q[:, None] * tj, 1.0, exact=exact_qt)
                outer = qt[:, :, None] * tk[:, None, :]
                unit = (np.abs(qt) == 1)[:, :, None] | (np.abs(tk) == 1)[:, None, :] | (outer == 0)
                acc = add(acc, off(outer, 1.0, exact=unit))
        return acc if acc is not None else np.zeros((n, m, m))


def _exact(op: str, args: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The op's value and partials at ``args``, in float64 (torch autograd)."""
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in args]
    y = OPS[op].torch_fn(*ts)
    grads = torch.autograd.grad(y.sum(), ts, allow_unused=True)
    parts = [np.zeros_like(a) if g is None else g.detach().numpy() for a, g in zip(args, grads, strict=True)]
    return y.detach().numpy(), parts


_CERTIFIED: dict[tuple[str, bytes], list[np.ndarray]] = {}


def _certified_partials(op: str, args: list[np.ndarray]) -> list[np.ndarray]:
    """The op's partials at ``args`` from the certified truth (correctly rounded float64)."""
    from harness.truth import truth_engine

    shape = np.shape(args[0])
    pts = np.stack([np.broadcast_to(np.asarray(a, dtype=np.float64), shape) for a in args], axis=1)
    key = (op, pts.tobytes())
    if key not in _CERTIFIED:
        tree = Call(op, tuple(Var(f"a{i}") for i in range(len(args))))
        grad = truth_engine().evaluate(tree, pts, dtype="float64", order=1).values
        _CERTIFIED[key] = [grad[:, j] for j in range(len(args))]
    return _CERTIFIED[key]


def _certified_second(op: str, args: list[np.ndarray]) -> np.ndarray:
    """The op's second partials at ``args`` from the certified truth: (n, arity, arity)."""
    from harness.truth import truth_engine

    shape = np.shape(args[0])
    pts = np.stack([np.broadcast_to(np.asarray(a, dtype=np.float64), shape) for a in args], axis=1)
    key = (op + "''", pts.tobytes())
    if key not in _CERTIFIED:
        tree = Call(op, tuple(Var(f"a{i}") for i in range(len(args))))
        _CERTIFIED[key] = [truth_engine().evaluate(tree, pts, dtype="float64", order=2).values]
    return _CERTIFIED[key][0]


Rounder = Callable[[np.ndarray], np.ndarray]
Formula = Callable[[list[np.ndarray], np.ndarray, Rounder, Rounder], np.ndarray]


def _tanh(args: list[np.ndarray], y: np.ndarray, rnd: Rounder, lib: Rounder) -> np.ndarray:
    return rnd(1 - rnd(y * y))


def _sigmoid(args: list[np.ndarray], y: np.ndarray, rnd: Rounder, lib: Rounder) -> np.ndarray:
    return rnd(y * rnd(1 - y))


def _expm1(args: list[np.ndarray], y: np.ndarray, rnd: Rounder, lib: Rounder) -> np.ndarray:
    return rnd(y + 1)


def _erf(args: list[np.ndarray], y: np.ndarray, rnd: Rounder, lib: Rounder) -> np.ndarray:
    (x,) = args
    return rnd(rnd(2 / np.sqrt(np.pi)) * lib(np.exp(-rnd(x * x))))


def _arcsin_like(sign: float) -> Formula:
    def formula(args: list[np.ndarray], y: np.ndarray, rnd: Rounder, lib: Rounder) -> np.ndarray:
        (x,) = args
        with np.errstate(all="ignore"):
            return rnd(sign / rnd(np.sqrt(rnd(1 - rnd(x * x)))))

    return formula


FORMULAS: dict[str, Formula] = {
    "tanh": _tanh,
    "sigmoid": _sigmoid,
    "expm1": _expm1,
    "erf": _erf,
    "asin": _arcsin_like(1.0),
    "acos": _arcsin_like(-1.0),
}
"""Partials computed by their usual backward formula, one rounded step at a time."""


def worst_case(
    expr: Expr, points: np.ndarray, truth: np.ndarray, *, dtype: str, libm: float = 4.0,
    careful: bool = False, order: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """The reference's derivative of ``order`` (``careful`` as for :class:`ReferenceEngine`)
    with its errors aligned the worst way for each entry, and its error against ``truth``:
    (values, errors), each of the derivative's shape.

    First order in the deltas: each site's effect on each entry is read by perturbing it
    alone, then all sites are set to push the entry up (and, separately, down); the worse
    is kept."""
    n = truth.shape[0]
    flat_truth = truth.reshape(n, -1)

    def run(signs: Signs) -> np.ndarray:
        engine = ReferenceEngine(libm, signs=signs, careful=careful)
        return engine.derivatives(expr, points, dtype=dtype, order=order).reshape(n, -1)

    base_engine = ReferenceEngine(libm, signs={}, careful=careful)
    base = base_engine.derivatives(expr, points, dtype=dtype, order=order).reshape(n, -1)
    sites = base_engine.sites
    effect = np.zeros((sites,) + base.shape)
    for s in range(sites):
        with np.errstate(invalid="ignore"):
            effect[s] = np.nan_to_num(np.sign(run({s: np.ones(n)}) - base))
    values = base.copy()
    errors = np.abs(base - flat_truth)
    for i in range(base.shape[1]):
        for direction in (1.0, -1.0):
            got = run({s: direction * effect[s][:, i] for s in range(sites)})[:, i]
            err = np.abs(got - flat_truth[:, i])
            worse = ~(err <= errors[:, i])
            values[:, i] = np.where(worse, got, values[:, i])
            errors[:, i] = np.where(worse, err, errors[:, i])
    return values.reshape(truth.shape), errors.reshape(truth.shape)
