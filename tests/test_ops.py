"""The op table checks itself: one parametrised test per property, over every row of OPS.

A new row in ``harness/ops.py`` is picked up by every test here without editing this file.
"""

from __future__ import annotations

import ast
import itertools
import math
from fractions import Fraction

import pytest
import sympy
import torch

from harness import ops
from harness.ops import (
    ANALYTIC_OPS,
    DEFAULT_OPS,
    INFIX_BY_AST,
    JUMP_OPS,
    KINK_OPS,
    OPS,
    REACH_OPS,
    UNARY_BY_AST,
    Op,
    Smoothness,
    op,
)

ROWS = list(OPS.values())
IDS = [row.name for row in ROWS]

# Candidate argument values, tried in order until one lies well inside the op's domain
# and away from its kinks. Dyadic, so sympy gets them exactly.
CANDIDATES = (Fraction(3, 8), Fraction(5, 8), Fraction(5, 4), Fraction(-3, 4), Fraction(5, 2))
WELL_INSIDE = 0.1

COMPLEX_INACCURATE = (
    "silu", "logaddexp", "logsumexp", "var", "logabsdet2", "logabsdet3", "cholesky2_11",
    "cholesky3_22", "dot",
)
"""Ops torch runs on complex input inaccurately for complex step: the derivative from
Im f(x + ih)/h is off by 3e-8 (silu at 40) or NaN (logaddexp(40, -3)); var, slogdet's
log|det|, cholesky and vecdot (dot) conjugate (they are not holomorphic), and logsumexp
is left to the real-valued schemes as logaddexp is."""


def inside_point(row: Op) -> tuple[Fraction, ...]:
    """The first candidate argument tuple at which ``row`` is comfortably defined and smooth."""
    for args in itertools.product(CANDIDATES, repeat=row.arity):
        t = [torch.tensor([float(a)], dtype=torch.float64) for a in args]
        if row.domain(*t).item() <= WELL_INSIDE:
            continue
        if row.kinks is not None and row.kinks(*t).item() <= WELL_INSIDE:
            continue
        return args
    raise AssertionError(f"op {row.name!r}: no candidate argument lies inside its domain")


def test_op_names_are_unique_and_index_their_rows() -> None:
    assert [row.name for row in ROWS] == list(OPS)
    assert len(set(OPS)) == len(ROWS)
    for name, row in OPS.items():
        assert row.name == name


def test_the_table_index_refuses_a_duplicate_name() -> None:
    add = OPS["add"]
    with pytest.raises(ValueError, match="duplicate op name 'add'"):
        ops._index((add, add))


def test_smoothness_classes_partition_the_table_and_default_ops_are_the_core_analytic_ones() -> None:
    assert set(ANALYTIC_OPS) | set(KINK_OPS) | set(JUMP_OPS) == set(OPS)
    assert len(ANALYTIC_OPS) + len(KINK_OPS) + len(JUMP_OPS) == len(OPS)
    assert set(DEFAULT_OPS) == set(ANALYTIC_OPS) - set(REACH_OPS)
    assert {"sin", "exp", "softplus"} <= set(DEFAULT_OPS)
    assert not set(DEFAULT_OPS) & set(REACH_OPS)
    assert not set(DEFAULT_OPS) & (set(KINK_OPS) | set(JUMP_OPS))
    assert {"abs", "relu", "max", "min"} <= set(KINK_OPS)
    assert {"floor", "sign"} <= set(JUMP_OPS)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_the_sympy_builder_takes_arity_arguments(row: Op) -> None:
    symbols = sympy.symbols(f"a0:{row.arity}", positive=True)
    out = row.sympy_fn(*symbols)
    assert isinstance(out, sympy.Basic)
    assert out.free_symbols <= set(symbols)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_the_torch_builder_takes_arity_tensors_elementwise(row: Op) -> None:
    args = [torch.full((5,), float(a), dtype=torch.float64) for a in inside_point(row)]
    out = row.torch_fn(*args)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (5,)
    assert out.dtype == torch.float64
    assert torch.all(out == out[0])  # same input in every slot, same output


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_every_row_is_complete(row: Op) -> None:
    args = [torch.linspace(-2.0, 3.0, 7, dtype=torch.float64) for _ in range(row.arity)]
    margin = row.domain(*args)
    assert isinstance(margin, torch.Tensor) and margin.shape == (7,)
    assert margin.dtype.is_floating_point
    assert (row.smoothness is Smoothness.ANALYTIC) == (row.kinks is None)
    if row.kinks is not None:
        kink = row.kinks(*args)
        assert isinstance(kink, torch.Tensor) and kink.shape == (7,)
        assert kink.dtype.is_floating_point
        assert not row.complex_step
    assert row.arity >= 1
    assert row.roundings >= 0
    assert all(0 <= k < row.arity for k in row.const_args)
    if row.infix is not None:
        assert row.ast_node is not None, f"infix op {row.name!r} needs the AST node that spells it"


@pytest.mark.parametrize("row", [r for r in ROWS if r.grad_noise is not None],
                         ids=[r.name for r in ROWS if r.grad_noise is not None])
def test_gradient_noise_gives_one_finite_nonnegative_bound_per_argument(row: Op) -> None:
    args = tuple(float(a) for a in inside_point(row))
    value = float(row.torch_fn(*(torch.tensor(a, dtype=torch.float64) for a in args)))
    noise = row.grad_noise(args, value, (1.0,) * row.arity)  # type: ignore[misc]
    assert len(noise) == row.arity
    assert all(math.isfinite(n) and n >= 0 for n in noise)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_the_complex_step_flag_is_set_only_where_torch_accepts_complex_input(row: Op) -> None:
    args = [torch.full((3,), complex(float(a), 1e-20), dtype=torch.complex128)
            for a in inside_point(row)]
    if row.complex_step:
        out = row.torch_fn(*args)
        assert out.dtype == torch.complex128
        assert torch.isfinite(out.imag).all()
    elif row.name in COMPLEX_INACCURATE:
        # runs (var and log|det| to a real result), but see the note
        assert row.torch_fn(*args).dtype in (torch.complex128, torch.float64)
    elif row.smoothness is Smoothness.ANALYTIC:
        # An analytic op without complex step must be one torch cannot run on complex.
        with pytest.raises((RuntimeError, NotImplementedError)):
            row.torch_fn(*args)
    else:
        assert row.kinks is not None  # through a kink complex step is wrong, whatever torch does


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_torch_and_sympy_builders_agree_inside_the_domain(row: Op) -> None:
    args = inside_point(row)
    exact = row.sympy_fn(*(sympy.Rational(a.numerator, a.denominator) for a in args))
    expected = float(sympy.N(exact, 30))
    got = float(row.torch_fn(*(torch.tensor([float(a)], dtype=torch.float64) for a in args)))
    # a row's value noise is its kernel's error in ulps of the arguments' scale: an
    # eigenvalue 0 of a singular matrix comes back as -6.5e-17
    floats = tuple(float(a) for a in args)
    noise = 0.0 if row.value_noise is None else float(row.value_noise(floats, expected))
    absolute = max(1e-300, 2.0**-52 * noise)
    assert got == pytest.approx(expected, rel=1e-12, abs=absolute), f"{row.name}{tuple(args)}"


@pytest.mark.parametrize("row", [r for r in ROWS if r.ast_node is not None],
                         ids=[r.name for r in ROWS if r.ast_node is not None])
def test_ast_tables_map_each_python_operator_back_to_its_op(row: Op) -> None:
    table = INFIX_BY_AST if row.arity == 2 else UNARY_BY_AST
    assert row.ast_node is not None
    assert table[row.ast_node] == row.name
    assert issubclass(row.ast_node, ast.operator if row.arity == 2 else ast.unaryop)


def test_looking_up_an_unknown_op_lists_the_known_ones() -> None:
    assert op("sin") is OPS["sin"]
    with pytest.raises(KeyError, match=r"op='sine' is not in the op table; known ops: .*sin"):
        op("sine")


def test_a_row_refuses_inconsistent_smoothness_facts() -> None:
    with pytest.raises(ValueError, match="kinks must be given exactly when not analytic"):
        Op("bad", 1, sympy.Abs, torch.abs, smoothness=Smoothness.KINK, complex_step=False)
    with pytest.raises(ValueError, match="kinks must be given exactly when not analytic"):
        Op("bad", 1, sympy.sin, torch.sin, kinks=torch.abs)
    with pytest.raises(ValueError, match="complex step is invalid through a kink"):
        Op("bad", 1, sympy.Abs, torch.abs, smoothness=Smoothness.KINK, kinks=torch.abs)


def test_domains_say_where_the_classic_singularities_are() -> None:
    x = torch.tensor([-0.5, 0.0, 0.5, 1.0, 2.0], dtype=torch.float64)
    assert (OPS["log"].domain(x) > 0).tolist() == [False, False, True, True, True]
    assert (OPS["asin"].domain(x) > 0).tolist() == [True, True, True, False, False]
    assert (OPS["log1p"].domain(x - 1.5) > 0).tolist() == [False, False, False, True, True]
    assert (OPS["div"].domain(x, x) > 0).tolist() == [True, False, True, True, True]
    half, minus_one = torch.full_like(x, 0.5), torch.full_like(x, -1.0)
    assert (OPS["pow"].domain(x, half) > 0).tolist() == [False, False, True, True, True]
    assert (OPS["pow"].domain(x, minus_one) > 0).tolist() == [True, False, True, True, True]
    assert (OPS["pow"].domain(x, torch.full_like(x, 2.0)) > 0).all()
    assert OPS["tan"].domain(torch.tensor([math.pi / 2], dtype=torch.float64)).item() < 1e-15


@pytest.mark.parametrize("name", [r.name for r in ROWS if r.formula_partials is not None])
def test_numeric_formula_partials_agree_with_the_certified_truth(name: str) -> None:
    """Orders 1 and 2 against the truth's certified partials of the op alone; order 3
    against central differences of those (its own are central differences too, of its
    order-2 formula, at a different step)."""
    import numpy as np

    from harness.oracle import _certified

    row = OPS[name]
    assert row.formula_partials is not None
    pts = np.random.default_rng(3).uniform(-3, 3, (12, row.arity)).round(3)
    args = tuple(pts[:, i] for i in range(row.arity))
    for order in (1, 2):
        certified = _certified(name, order, args)
        for key, value in row.formula_partials(order, args).items():
            truth = certified[(slice(None), *key)]
            assert np.abs(value - truth).max() <= 1e-12 * max(1.0, np.abs(truth).max()), (order, key)
    third = row.formula_partials(3, args)
    h = 1e-5
    for along in range(row.arity):
        moved = [tuple(a + s * h * (i == along) for i, a in enumerate(args)) for s in (1, -1)]
        up, down = (_certified(name, 2, m) for m in moved)
        for (i, j, k), value in third.items():
            if k == along:
                slope = (up[:, i, j] - down[:, i, j]) / (2 * h)
                assert np.abs(value - slope).max() <= 1e-6 * max(1.0, np.abs(slope).max()), (i, j, k)
