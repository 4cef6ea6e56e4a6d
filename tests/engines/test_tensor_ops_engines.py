"""torch's and JAX's own derivatives of dot, trace, the 3x3 inverse entry and the 3x3
solve, first and second order, are judged ``ok`` at ordinary points in float64 and
float32: the kernels (vecdot, diagonal, trace, inv, solve) reach the engines through the
op table, and the noise models give a careful library its due and no more.

The points are well conditioned (a dominant diagonal) and the truth is the symbolic
engine's, itself checked against mpmath in ``tests/truth/test_tensor_ops.py``. A partial
through LAPACK's inverse carries about cond(A) ulps however it is computed, and the ops
that go through one are ``conditioned`` rows: their ideal tolerance keeps that, so a
careful library is ``ok``, not ``inaccurate``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from harness.check import compare
from harness.dtypes import round_array
from harness.engines.torch_ad import TorchEngine
from harness.expr import variables
from harness.parser import parse

TREES = (
    "dot(a, b)",
    "dot(a, b, c, d)",
    "dot(a, b, c, d, e, f, g, h)",
    "trace2(a, b, c, d)",
    "trace3(a, b, c, d, e, f, g, h, i)",
    "inv3_01(a, b, c, d, e, f, g, h, i)",
    "solve3_0(a, b, c, d, e, f, g, h, i, j, k, l)",
    "exp(dot(a, b, c, d)) * trace2(a, b, c, d)",
    "sin(inv3_01(a, b, c, d, e, f, g, h, i))",
)


def _points(n: int, dtype: str) -> np.ndarray:
    rng = np.random.default_rng(5)
    pts = rng.uniform(-2, 2, size=(40, n)).round(3)
    if n >= 9:  # a dominant diagonal: |det| well away from 0
        for k in range(3):
            pts[:, 4 * k] += 4 * np.sign(pts[:, 4 * k]) + (pts[:, 4 * k] == 0)
    return round_array(pts, dtype)[:6]


def _engines() -> list[object]:
    engines: list[object] = [TorchEngine(mode) for mode in ("reverse", "forward", "functional")]
    try:
        from harness.engines.jax_ad import JaxEngine

        engines.append(JaxEngine("reverse"))
    except ImportError:  # jax is an optional extra
        pass
    return engines


@pytest.mark.parametrize("text", TREES)
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_libraries_own_derivatives_are_ok_at_ordinary_points(text: str, order: int, dtype: str) -> None:
    expr = parse(text)
    pts = _points(len(variables(expr)), dtype)
    accepted = ("ok",)
    for engine in _engines():
        if order == 2 and "solve3" in text and engine.name in ("torch:forward", "torch:functional"):  # type: ignore[attr-defined]
            continue  # torch's own bugs: see the test below
        frame = compare(engine, expr, pts, dtype=dtype, order=order)  # type: ignore[arg-type]
        bad = frame[~frame.verdict.isin(accepted)]
        assert bad.empty, (engine.name, text, bad[["point", "var", "value", "truth", "verdict"]].head())  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["forward", "functional"])
def test_torchs_second_derivative_of_solve_in_forward_and_functional_mode_is_caught(mode: str) -> None:
    # forward over forward halves d2 x0 / d a2 (-0.00138 for -0.00275 at the first point;
    # mpmath agrees with reverse mode and with inv(A) @ b); vmap(hessian) is off by up to 63
    expr = parse("solve3_0(a, b, c, d, e, f, g, h, i, j, k, l)")
    frame = compare(TorchEngine(mode), expr, _points(12, "float64"), dtype="float64", order=2)
    assert (frame.verdict == "mismatch").any()
    reverse = compare(TorchEngine("reverse"), expr, _points(12, "float64"), dtype="float64", order=2)
    assert (reverse.verdict == "ok").all()


def _spd3_points(dtype: str) -> np.ndarray:
    """Upper triangles a b c / d e / f of diagonally dominant (positive definite) 3x3
    matrices, then the op's own special ones (near singular, identity, coupled)."""
    from harness.dtypes import dtype_info
    from harness.ops import OPS

    rng = np.random.default_rng(7)
    pts = rng.uniform(-2, 2, size=(6, 6)).round(3)
    for diagonal, row in ((0, (1, 2)), (3, (1, 4)), (5, (2, 4))):
        pts[:, diagonal] = np.abs(pts[:, diagonal]) + np.abs(pts[:, list(row)]).sum(axis=1) + 0.5
    special = np.array(OPS["cholesky3_22"].special_args(6, dtype_info(dtype))[:4])
    return round_array(np.concatenate([pts, special]), dtype)


CHOLESKY3_TREES = ("cholesky3_22(a, b, c, d, e, f)", "log(cholesky3_22(a, b, c, d, e, f)) * a")


@pytest.mark.parametrize("text", CHOLESKY3_TREES)
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_3x3_cholesky_entry_is_ok_at_positive_definite_and_nearly_singular_matrices(
    text: str, order: int, dtype: str
) -> None:
    expr = parse(text)
    pts = _spd3_points(dtype)
    for engine in _engines():
        frame = compare(engine, expr, pts, dtype=dtype, order=order)  # type: ignore[arg-type]
        bad = frame[frame.verdict != "ok"]
        assert bad.empty, (engine.name, text, bad[["point", "var", "value", "truth", "verdict"]].head())  # type: ignore[attr-defined]


def _symmetric3_points(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Upper triangles a b c / d e / f of random symmetric 3x3 matrices, then the 3x3
    eigenvalue ops' special ones; and which rows repeat an eigenvalue exactly (the
    closed form's sqrt is singular there, so the truth leaves the derivative undefined)."""
    from harness.dtypes import dtype_info
    from harness.ops import OPS

    rng = np.random.default_rng(11)
    pts = rng.uniform(-3, 3, size=(6, 6)).round(3)
    # the last special matrix, the largest eigenvalue just below a power of two, is where
    # JAX's eigh Hessian is wrong: tested on its own below
    special = np.array(OPS["eigvalsh3_max"].special_args(6, dtype_info(dtype))[:-1])
    points = round_array(np.concatenate([pts, special]), dtype)
    repeated = np.array([_discriminant(*(Fraction(float(v)) for v in row)) == 0 for row in points])
    return points, repeated


def _discriminant(a: Fraction, b: Fraction, c: Fraction, d: Fraction, e: Fraction, f: Fraction) -> Fraction:
    """S**3 - 54 G**2 of the symmetric 3x3 (S = tr(A'**2), G = det A', A' = 3A - tr(A) I),
    in exact arithmetic: 0 exactly where two eigenvalues repeat."""
    t = a + d + f
    a1, d1, f1, b1, c1, e1 = 3 * a - t, 3 * d - t, 3 * f - t, 3 * b, 3 * c, 3 * e
    s = a1**2 + d1**2 + f1**2 + 2 * (b1**2 + c1**2 + e1**2)
    g = a1 * (d1 * f1 - e1 * e1) - b1 * (b1 * f1 - e1 * c1) + c1 * (b1 * e1 - d1 * c1)
    return s**3 - 54 * g**2


EIGVALSH3_TREES = ("eigvalsh3_max(a, b, c, d, e, f)", "exp(eigvalsh3_min(a, b, c, d, e, f)) * a")


@pytest.mark.parametrize("text", EIGVALSH3_TREES)
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_3x3_eigenvalues_are_ok_at_simple_and_nearly_repeated_eigenvalues(
    text: str, order: int, dtype: str
) -> None:
    expr = parse(text)
    pts, repeated = _symmetric3_points(dtype)
    assert repeated.sum() == 5  # the four ties and the zero matrix
    for engine in _engines():
        frame = compare(engine, expr, pts, dtype=dtype, order=order)  # type: ignore[arg-type]
        at_tie = np.repeat(repeated, len(frame) // len(pts))  # rows point by point
        assert (frame.verdict[at_tie] == "undefined").all()
        bad = frame[~at_tie & (frame.verdict != "ok")]
        assert bad.empty, (engine.name, text, bad[["point", "var", "value", "truth", "verdict"]].head())  # type: ignore[attr-defined]


@pytest.mark.parametrize("op", ["eigvalsh2_max", "eigvalsh3_max"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_an_eigenvalue_just_below_a_power_of_two_is_a_special_point_where_jax_is_wrong(
    op: str, dtype: str
) -> None:
    """[[v, v], [v, v]] with v the float below 1024 has the eigenvalue 2v, the float below
    2048, where 1 + 2v rounds: JAX 0.10.2's eigh JVP guards its diagonal with
    (1 + w) - w, so its Hessian is off there (jax-ml/jax#40141); torch's is right."""
    from harness.dtypes import dtype_info
    from harness.ops import OPS

    n = OPS[op].arity
    point = OPS[op].special_args(n, dtype_info(dtype))[-1]
    assert point[0] == np.nextafter(np.array(1024.0, dtype), 0) and point[0] + point[1] == 2 * point[0]
    expr = parse(f"{op}({', '.join('abcdef'[:n])})")
    pts = np.array([point])
    torch_rows = compare(TorchEngine("reverse"), expr, pts, dtype=dtype, order=2)
    assert (torch_rows.verdict == "ok").all(), torch_rows[["var", "value", "truth", "verdict"]]
    jax_ad = pytest.importorskip("harness.engines.jax_ad", exc_type=ImportError)
    jax_rows = compare(jax_ad.JaxEngine("reverse"), expr, pts, dtype=dtype, order=2)
    assert (jax_rows.verdict == "mismatch").any(), jax_rows[["var", "value", "truth", "verdict"]]
