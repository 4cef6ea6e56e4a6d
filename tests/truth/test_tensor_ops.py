"""The truth of every tensor op (harness.ops.TENSOR_OPS: reductions and small matrices)
against mpmath at 50 digits, at random points and at the op's special arguments (one and
two zeros for prod, huge entries for logsumexp, singular matrices for det).

The references are written here with mpmath's own routines (fsum, fprod, fdot, inverse,
lu_solve, cholesky, eigsy, norm) and Leibniz's formula for det, not from the op table's sympy builders, and
differentiated by mpmath's numerical differentiation at 50 digits: independent of sympy,
arb and the rule table. Points sit inside the op's domain and away from its kinks (ties,
the zero vector, repeated eigenvalues), where the truth judges one-sided limits instead.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest
import torch

from harness.dtypes import dtype_info
from harness.expr import Call, Expr, Var
from harness.ops import OPS, TENSOR_OPS, _eig3_gaps
from harness.truth import SymbolicEngine

mp = mpmath.mp
ENGINE = SymbolicEngine()
RANDOM_POINTS = 5
DIFF_DIGITS = 420  # numerical differentiation: 50 digits after 370 cancel
MARGIN = 2.0**-20


def _mean(*x: Any) -> Any:
    return mp.fsum(x) / len(x)


def _var(*x: Any) -> Any:
    m = _mean(*x)
    return mp.fsum((t - m) ** 2 for t in x) / (len(x) - 1)


def _logsumexp(*x: Any) -> Any:
    return mp.log(mp.fsum(mp.exp(t) for t in x))


def _matrix(k: int, x: tuple[Any, ...]) -> Any:
    return mp.matrix([list(x[i * k : (i + 1) * k]) for i in range(k)])


def _det(k: int, x: tuple[Any, ...]) -> Any:
    """Leibniz's formula (mpmath's det pivots, and fails on a zero column)."""
    total = mpmath.mpf(0)
    for perm in itertools.permutations(range(k)):
        inversions = sum(perm[i] > perm[j] for i in range(k) for j in range(i + 1, k))
        total += (-1) ** inversions * mp.fprod(x[i * k + perm[i]] for i in range(k))
    return total


def _eigenvalues(a: Any, b: Any, c: Any) -> list[Any]:
    values, _ = mp.eigsy(mp.matrix([[a, b], [b, c]]))
    return sorted(values[i] for i in range(2))


def _eigenvalues3(a: Any, b: Any, c: Any, d: Any, e: Any, f: Any) -> list[Any]:
    values, _ = mp.eigsy(mp.matrix([[a, b, c], [b, d, e], [c, e, f]]))
    return sorted(values[i] for i in range(3))


REFERENCES: dict[str, Callable[..., Any]] = {
    "sum": lambda *x: mp.fsum(x),
    "mean": _mean,
    "prod": lambda *x: mp.fprod(x),
    "logsumexp": _logsumexp,
    "softmax0": lambda *x: mp.exp(x[0]) / mp.fsum(mp.exp(t) for t in x),
    "log_softmax0": lambda *x: x[0] - _logsumexp(*x),
    "cumsum1": lambda *x: x[0] + x[1],
    "cumprod1": lambda *x: x[0] * x[1],
    "var": _var,
    "std": lambda *x: mp.sqrt(_var(*x)),
    "amax": lambda *x: max(x),
    "amin": lambda *x: min(x),
    "norm1": lambda *x: mp.fsum(abs(t) for t in x),
    "norm2": lambda *x: mp.norm(mp.matrix(list(x)), 2),
    "norminf": lambda *x: mp.norm(mp.matrix(list(x)), mp.inf),
    "dot": lambda *x: mp.fdot(x[: len(x) // 2], x[len(x) // 2 :]),
    "trace2": lambda *x: mp.fsum(_matrix(2, x)[i, i] for i in range(2)),
    "trace3": lambda *x: mp.fsum(_matrix(3, x)[i, i] for i in range(3)),
    "det2": lambda *x: _det(2, x),
    "det3": lambda *x: _det(3, x),
    "logabsdet2": lambda *x: mp.log(abs(_det(2, x))),
    "logabsdet3": lambda *x: mp.log(abs(_det(3, x))),
    "inv2_01": lambda *x: mp.inverse(_matrix(2, x))[0, 1],
    "solve2_0": lambda *x: mp.lu_solve(_matrix(2, x[:4]), mp.matrix(list(x[4:])))[0],
    "inv3_01": lambda *x: mp.inverse(_matrix(3, x))[0, 1],
    "solve3_0": lambda *x: mp.lu_solve(_matrix(3, x[:9]), mp.matrix(list(x[9:])))[0],
    "cholesky2_11": lambda a, b, c: mp.cholesky(mp.matrix([[a, b], [b, c]]))[1, 1],
    "cholesky3_22": lambda a, b, c, d, e, f: mp.cholesky(mp.matrix([[a, b, c], [b, d, e], [c, e, f]]))[2, 2],
    "eigvalsh2_max": lambda a, b, c: _eigenvalues(a, b, c)[1],
    "eigvalsh2_min": lambda a, b, c: _eigenvalues(a, b, c)[0],
    "eigvalsh3_max": lambda *m: _eigenvalues3(*m)[2],
    "eigvalsh3_min": lambda *m: _eigenvalues3(*m)[0],
}


def test_every_tensor_op_has_a_reference() -> None:
    assert set(REFERENCES) == set(TENSOR_OPS)


def _counts(name: str) -> tuple[int, ...]:
    """The argument counts checked: a variadic op's fewest, one more and its most."""
    arities = OPS[name].arities
    return tuple(sorted({arities[0], arities[min(1, len(arities) - 1)], arities[-1]}))


def _tree(name: str, n: int) -> Expr:
    # two digits: the engines order variables by name, and a10 sorts before a2
    return Call(name, tuple(Var(f"a{i:02d}") for i in range(n)))


def _inside(name: str, pts: np.ndarray) -> np.ndarray:
    row = OPS[name]
    cols = [torch.tensor(pts[:, i]) for i in range(pts.shape[1])]
    ok = (row.domain(*cols) > MARGIN).numpy()
    if row.kinks is not None:
        ok &= (row.kinks(*cols) > MARGIN).numpy()
    if name.startswith("eigvalsh3"):
        # the closed form's sqrt is singular wherever two eigenvalues repeat, so the truth
        # leaves the derivative undefined there even when the one asked for is simple
        ok &= (_eig3_gaps(*cols) > MARGIN).all(-1).numpy()
    with np.errstate(all="ignore"):
        value = row.torch_fn(*cols).numpy()
    return ok & np.isfinite(value) & (np.abs(pts) < 1e30).all(axis=1)


def _points(name: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(23)
    drawn = rng.uniform(-4, 4, size=(200, n)).round(6)
    if name == "cholesky2_11":  # positive definite: a dominant diagonal
        drawn[:, 0] = np.abs(drawn[:, 0]) + np.abs(drawn[:, 1]) + 0.5
        drawn[:, 2] = np.abs(drawn[:, 2]) + np.abs(drawn[:, 1]) + 0.5
    if name == "cholesky3_22":  # the upper triangle a b c / d e / f, diagonally dominant
        a, b, c, d, e, f = range(6)
        drawn[:, a] = np.abs(drawn[:, a]) + np.abs(drawn[:, b]) + np.abs(drawn[:, c]) + 0.5
        drawn[:, d] = np.abs(drawn[:, d]) + np.abs(drawn[:, b]) + np.abs(drawn[:, e]) + 0.5
        drawn[:, f] = np.abs(drawn[:, f]) + np.abs(drawn[:, c]) + np.abs(drawn[:, e]) + 0.5
    random = drawn[_inside(name, drawn)][:RANDOM_POINTS]
    special_args = OPS[name].special_args
    special = np.array(special_args(n, dtype_info("float64")) if special_args else np.zeros((0, n)))
    special = special.reshape(-1, n)
    return np.concatenate([random, special[_inside(name, special)]])


def _reference_gradient(name: str, point: np.ndarray) -> list[Any]:
    fn = REFERENCES[name]
    args = [mpmath.mpf(float(v)) for v in point]
    out = []
    for i in range(len(args)):

        def along(t: Any, i: int = i) -> Any:
            return fn(*args[:i], t, *args[i + 1 :])

        h = max(abs(args[i]), mpmath.mpf(1)) * mpmath.mpf(10) ** -40
        with mp.workdps(DIFF_DIGITS):
            out.append(mp.diff(along, args[i], h=h))
    return out


@pytest.mark.parametrize("name", sorted(TENSOR_OPS))
def test_the_truths_value_and_gradient_agree_with_mpmath_at_50_digits(name: str) -> None:
    for n in _counts(name):
        expr = _tree(name, n)
        pts = _points(name, n)
        assert len(pts) >= RANDOM_POINTS, f"{name}/{n}: too few points inside its domain"
        truth = ENGINE.evaluate(expr, pts, dtype="float64", order=1)
        values = ENGINE.values(expr, pts, dtype="float64")
        with mp.workdps(50):
            for k, point in enumerate(pts):
                ref_value = REFERENCES[name](*(mpmath.mpf(float(v)) for v in point))
                assert values[k] == pytest.approx(float(ref_value), rel=2**-52, abs=1e-45), (name, point)
                assert (truth.status[k] == "ok").all(), (name, point, truth.status[k])
                for i, ref in enumerate(_reference_gradient(name, point)):
                    ref_f = float(ref)
                    tol = math.ulp(ref_f) if ref_f and math.isfinite(ref_f) else 2.0**-1074
                    got = truth.values[k, i]
                    assert abs(got - ref_f) <= tol, (name, n, point, i, got, ref_f)


def test_the_truth_of_det_at_a_singular_matrix_is_its_adjugate() -> None:
    # d det / d A = adj(A)^T: for [[1, 2], [3, 6]] that is [[6, -3], [-2, 1]], nonzero
    truth = ENGINE.evaluate(_tree("det2", 4), np.array([[1.0, 2.0, 3.0, 6.0]]), dtype="float64", order=1)
    assert truth.values[0].tolist() == [6.0, -3.0, -2.0, 1.0]


def test_the_truth_of_prod_at_one_zero_is_the_product_of_the_others() -> None:
    pts = np.array([[0.0, 0.75, -1.5], [0.0, 0.0, 2.0]])
    truth = ENGINE.evaluate(_tree("prod", 3), pts, dtype="float64", order=1)
    assert truth.values.tolist() == [[-1.125, 0.0, 0.0], [0.0, 0.0, 0.0]]


def test_a_3x3_eigenvalue_tree_is_never_differentiated_as_one_sympy_form(monkeypatch: Any) -> None:
    """At a repeated eigenvalue the chain rule and the series cannot decide; the whole
    tree's sympy derivatives would take minutes and no algebra removes the singularity,
    so the entries stay undefined (NaN) without them."""
    import harness.truth.engine as engine_module

    original = engine_module.compiled

    def refuse_sympy(*args: Any) -> Any:
        raise AssertionError("the whole tree was differentiated by sympy")

    def refuse_taylor(expr: Any, key: str, kind: Any) -> Any:
        if kind.name == "taylor":
            raise AssertionError("the Taylor fallback compiled the tree")
        return original(expr, key, kind)

    monkeypatch.setattr(engine_module, "compiled_sympy", refuse_sympy)
    monkeypatch.setattr(engine_module, "compiled", refuse_taylor)
    expr = Call("exp", (_tree("eigvalsh3_max", 6),))
    tie = np.array([[1.0, 0.0, 0.0, 2.0, 0.0, 2.0], [4.0, 1.0, -1.0, 3.0, 0.5, 2.0]])
    truth = ENGINE.evaluate(expr, tie, dtype="float64", order=2)
    assert (truth.status[0] == "undefined").all() and (truth.status[1] == "ok").all()
    rows = ENGINE.taylor(expr, tie, dtype="float64", max_order=3)
    assert np.isnan(rows[1:, 0]).all() and not np.isnan(rows[1:, 1]).any()
