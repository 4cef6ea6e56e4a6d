"""Finite-difference schemes: their stencils, exact weights, error constants and layout.

Schemes: ``forward``, ``backward``, ``central``, ``five-point`` (4th-order central),
``complex-step`` (Im f(x + ih) / h) and ``richardson`` (Richardson extrapolation of central
differences at h, h/2, h/4, h/8, with an error estimate). Every stencil weight is an exact
rational from ``sympy.finite_diff_weights``; the error model constants of each scheme
(:data:`SCHEME_FACTS`) are derived from those weights, so the theory curves
(:mod:`harness.fd.theory`) and the engine (:mod:`harness.fd.engine`) cannot drift apart.

The evaluation plan lays a scheme's stencil out over the variables of a tree (one axis,
a product of two axes for Hessian entries, or the complex step's hybrid); stencil sums
are differences of f in a fixed order, so they add little rounding of their own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType

import numpy as np
import sympy
import torch

from harness.schema import SCHEMES

__all__ = [
    "DEFAULT_H_GRID",
    "RICHARDSON_LEVELS",
    "SCHEMES",
    "SCHEME_FACTS",
    "SchemeFacts",
    "Stencil",
    "scheme_facts",
]

Tensor = torch.Tensor


DEFAULT_H_GRID: tuple[float, ...] = tuple(float(f"1e-{k}") for k in range(1, 17))
"""Nominal steps 1e-1, 1e-2, ..., 1e-16 (correctly rounded decimal literals)."""

RICHARDSON_LEVELS = 4
"""Central differences at h, h/2, h/4, h/8 are extrapolated to h = 0 (order 8)."""



# ---- stencils and their error constants ------------------------------------------------


@dataclass(frozen=True)
class Stencil:
    """Exact weights at offsets (in units of h): ``f^(d)(x) ~ sum_k w_k f(x + s_k h) / h^d``.

    With ``imaginary=True`` the offsets are imaginary and the estimate is the imaginary
    part, ``Im sum_k w_k f(x + i s_k h) / h`` (the complex step).
    """

    derivative: int
    offsets: tuple[Fraction, ...]
    weights: tuple[Fraction, ...]
    imaginary: bool = False

    def moment(self, q: int) -> Fraction:
        """``sum_k w_k s_k^q`` (its imaginary part for an imaginary stencil, ``s -> i s``).

        The estimate expands as ``sum_q f^(q)(x) h^(q-d) moment(q) / q!``.
        """
        pairs = zip(self.weights, self.offsets, strict=True)
        total = sum((w * s**q for w, s in pairs), Fraction(0))
        return total * (0, 1, 0, -1)[q % 4] if self.imaginary else total

    def nonzero(self) -> tuple[tuple[Fraction, ...], tuple[Fraction, ...]]:
        """Offsets and weights without the zero weights (points that need no evaluation)."""
        kept = [(s, w) for s, w in zip(self.offsets, self.weights, strict=True) if w != 0]
        return tuple(s for s, _ in kept), tuple(w for _, w in kept)


@dataclass(frozen=True)
class SchemeFacts:
    """One scheme's stencils and its error model for first derivatives.

    Error model, used by the theory curves: for a step h in a dtype with epsilon ``eps``,
    ``truncation_coefficient * h**order * |f^(truncation_derivative)|
    + rounding_coefficient * eps * |f| / h``. The truncation term is the leading term of
    the stencil's Taylor expansion; the rounding term is ``sum |w_k|`` (each function value
    off by about ``eps |f|``), zero for the complex step, which subtracts nothing.

    ``first`` and ``second`` are the stencils for f' and f'' (the Hessian's diagonal; its
    off-diagonal uses products of ``first``). For ``richardson`` they are the equivalent
    linear stencils of the extrapolation with exact step ratios 2, on the offsets
    ``+-2**-l``; the engine itself extrapolates with the actual steps (see module doc).
    The complex step has ``second=None``: its Hessian is the hybrid described there.
    """

    name: str
    first: Stencil
    second: Stencil | None
    order: int
    truncation_coefficient: float
    truncation_derivative: int
    rounding_coefficient: float
    levels: int = 1


def _fd_weights(derivative: int, offsets: Sequence[Fraction]) -> tuple[Fraction, ...]:
    """Exact weights of the ``derivative``-th derivative at 0 on ``offsets`` (sympy)."""
    nodes = [sympy.Rational(s.numerator, s.denominator) for s in offsets]
    table = sympy.finite_diff_weights(derivative, nodes, 0)
    return tuple(Fraction(int(w.p), int(w.q)) for w in table[derivative][-1])


def _stencil(derivative: int, offsets: Sequence[Fraction | int]) -> Stencil:
    nodes = tuple(Fraction(s) for s in offsets)
    return Stencil(derivative, nodes, _fd_weights(derivative, nodes))


def _accuracy(stencil: Stencil) -> tuple[int, Fraction]:
    """Order p and leading coefficient c: estimate = f^(d) + c h^p f^(d+p) + O(h^(p+1))."""
    d = stencil.derivative
    if any(stencil.moment(q) != 0 for q in range(d)) or stencil.moment(d) != math.factorial(d):
        raise AssertionError(f"stencil {stencil} does not estimate derivative {d}")
    for q in range(d + 1, 64):
        m = stencil.moment(q)
        if m != 0:
            return q - d, abs(m) / math.factorial(q)
    raise AssertionError(f"stencil {stencil} is exact for every polynomial of degree < 64")


def _facts(
    name: str, first: Stencil, second: Stencil | None, levels: int = 1
) -> SchemeFacts:
    order, coefficient = _accuracy(first)
    if second is not None:
        _accuracy(second)  # checks that it estimates f''
    rounding = Fraction(0) if first.imaginary else sum((abs(w) for w in first.weights), Fraction(0))
    return SchemeFacts(
        name=name,
        first=first,
        second=second,
        order=order,
        truncation_coefficient=float(coefficient),
        truncation_derivative=order + 1,
        rounding_coefficient=float(rounding),
        levels=levels,
    )


def _richardson_offsets(levels: int, centre: bool) -> tuple[Fraction, ...]:
    half = [Fraction(1, 2**level) for level in range(levels)]
    return tuple(sorted([-s for s in half] + ([Fraction(0)] if centre else []) + half))


def _build_facts() -> Mapping[str, SchemeFacts]:
    complex_step = Stencil(1, (Fraction(1),), (Fraction(1),), imaginary=True)
    rows = (
        _facts("forward", _stencil(1, (0, 1)), _stencil(2, (0, 1, 2))),
        _facts("backward", _stencil(1, (-1, 0)), _stencil(2, (-2, -1, 0))),
        _facts("central", _stencil(1, (-1, 0, 1)), _stencil(2, (-1, 0, 1))),
        _facts("five-point", _stencil(1, (-2, -1, 0, 1, 2)), _stencil(2, (-2, -1, 0, 1, 2))),
        _facts("complex-step", complex_step, None),
        _facts(
            "richardson",
            _stencil(1, _richardson_offsets(RICHARDSON_LEVELS, centre=False)),
            _stencil(2, _richardson_offsets(RICHARDSON_LEVELS, centre=True)),
            levels=RICHARDSON_LEVELS,
        ),
    )
    assert tuple(r.name for r in rows) == SCHEMES
    return MappingProxyType({r.name: r for r in rows})


SCHEME_FACTS: Mapping[str, SchemeFacts] = _build_facts()
"""Each scheme's stencils, order of accuracy and error-model constants, by name."""


def scheme_facts(scheme: str) -> SchemeFacts:
    """Look up a scheme by name, with an error that lists the known ones."""
    try:
        return SCHEME_FACTS[scheme]
    except (KeyError, TypeError):
        raise ValueError(
            f"scheme={scheme!r} is not a finite-difference scheme; expected one of "
            f"{', '.join(SCHEMES)}"
        ) from None


# ---- the evaluation plan -------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    """Stencil rows that share one weight vector: slot (row, col) gets
    ``Im|Re sum_k num_k f(x + real_k h + i imag_k h) / (den * h_row [* h_col])``."""

    real: np.ndarray  # (P, K, m) multiples of h_eff per coordinate
    imag: np.ndarray  # (P, K, m)
    numerators: np.ndarray  # (K,)
    denominator: int
    rows: np.ndarray  # (P,)
    cols: np.ndarray  # (P,)


def _integer_weights(weights: Sequence[Fraction]) -> tuple[np.ndarray, int]:
    den = math.lcm(*(w.denominator for w in weights))
    return np.array([float(w * den) for w in weights]), den


def _axis_group(stencil: Stencil, m: int) -> _Group:
    """One row per variable v: the stencil along e_v, divided by h_v^d."""
    offsets, weights = stencil.nonzero()
    disp = np.zeros((m, len(offsets), m))
    for v in range(m):
        disp[v, :, v] = [float(s) for s in offsets]
    numerators, den = _integer_weights(weights)
    zeros = np.zeros_like(disp)
    real, imag = (zeros, disp) if stencil.imaginary else (disp, zeros)
    return _Group(real, imag, numerators, den, np.arange(m), np.arange(m))


def _product_group(stencil: Stencil, m: int) -> _Group:
    """One row per pair i < j: the product of the first-derivative stencil along both."""
    offsets, weights = stencil.nonzero()
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
    k = len(offsets)
    disp = np.zeros((len(pairs), k * k, m))
    for p, (i, j) in enumerate(pairs):
        disp[p, :, i] = np.repeat([float(s) for s in offsets], k)
        disp[p, :, j] = np.tile([float(s) for s in offsets], k)
    numerators, den = _integer_weights(weights)
    rows = np.array([i for i, _ in pairs], dtype=np.int64)
    cols = np.array([j for _, j in pairs], dtype=np.int64)
    return _Group(disp, np.zeros_like(disp), np.outer(numerators, numerators).ravel(), den * den,
                  rows, cols)


def _hybrid_group(m: int) -> _Group:
    """Complex-step Hessian: imaginary step along i, central real difference along j >= i."""
    offsets, weights = SCHEME_FACTS["central"].first.nonzero()
    pairs = [(i, j) for i in range(m) for j in range(i, m)]
    real = np.zeros((len(pairs), len(offsets), m))
    imag = np.zeros_like(real)
    for p, (i, j) in enumerate(pairs):
        real[p, :, j] = [float(s) for s in offsets]
        imag[p, :, i] = 1.0
    numerators, den = _integer_weights(weights)
    rows = np.array([i for i, _ in pairs], dtype=np.int64)
    cols = np.array([j for _, j in pairs], dtype=np.int64)
    return _Group(real, imag, numerators, den, rows, cols)


def _plan(scheme: str, order: int, m: int) -> tuple[_Group, ...]:
    facts = SCHEME_FACTS["central"] if scheme == "richardson" else SCHEME_FACTS[scheme]
    if scheme == "complex-step":
        return (_axis_group(facts.first, m),) if order == 1 else (_hybrid_group(m),)
    if order == 1:
        return (_axis_group(facts.first, m),)
    assert facts.second is not None
    return (_axis_group(facts.second, m), _product_group(facts.first, m))


# ---- Richardson ------------------------------------------------------------------------------


def _extrapolate(values: Tensor, abscissa: Tensor) -> tuple[Tensor, Tensor]:
    """Neville's algorithm along axis 0: the polynomial in ``abscissa`` (h^2) through the
    levels, at 0, and Ridders' error estimate (the larger change of the last step).

    Abscissas that do not strictly decrease (two levels with the same h_eff) give NaN.
    """
    levels = values.shape[0]
    a = [abscissa[k] for k in range(levels)]
    tableau = [[values[k]] for k in range(levels)]
    for j in range(1, levels):
        for k in range(j, levels):
            here, below = tableau[k][j - 1], tableau[k - 1][j - 1]
            gap = a[k - j] - a[k]
            value = here - below  # here + (here - below) * a_k / gap, in place
            value.mul_(a[k]).div_(gap).add_(here)
            tableau[k].append(value.masked_fill_(~(gap > 0), torch.nan))
    last = levels - 1
    best = tableau[last][last]
    estimate = torch.maximum(
        (best - tableau[last][last - 1]).abs(), (best - tableau[last - 1][last - 1]).abs()
    )
    return best, estimate


def _sum_order(
    numerators: Sequence[float],
) -> tuple[list[tuple[int, int]], list[int], int | None]:
    """How :func:`_weighted_sum` adds: pairs (i, j) of opposite weights, ``w_i = -w_j``,
    in order of i; the other terms; and the reference term they are differenced against
    (the largest weight, e.g. the -2 of 1, -2, 1), or None where their weights do not sum
    to 0 (the complex step's single term)."""
    pairs: list[tuple[int, int]] = []
    rest: list[int] = []
    used: set[int] = set()
    for i, w in enumerate(numerators):
        if i in used:
            continue
        j = next(
            (j for j in range(len(numerators) - 1, i, -1)
             if j not in used and w != 0 and numerators[j] == -w),
            None,
        )
        if j is None:
            rest.append(i)
        else:
            pairs.append((i, j))
            used.update((i, j))
    # integer weights: the sum is exact
    balanced = len(rest) > 1 and sum(numerators[k] for k in rest) == 0
    reference = max(rest, key=lambda k: abs(numerators[k])) if balanced else None
    return pairs, rest, reference


def _weighted_sum(block: Tensor, numerators: np.ndarray) -> Tensor:
    """``sum_k numerators[k] * block[..., k, :]`` as (..., n, p), in a fixed order.

    Every derivative stencil's weights sum to 0, so the sum is one of differences of f:
    terms with opposite weights are differenced in pairs, ``w_i (f_i - f_j)``, and the
    others against the largest one, ``w_k (f_k - f_ref)``. Neighbouring values of f differ
    exactly (Sterbenz) and integer weights scale exactly, so the sum adds little rounding of
    its own (an antisymmetric stencil, every first-derivative one, at most one rounding)
    and never overflows where f's differences do not: the error left is f's rounding,
    which the error model describes. Then the terms are added in order. Elementwise on
    purpose: a library reduction (einsum) sums in an order that depends on the batch's
    shape, which made a point's estimate depend on the other points.
    """
    weights = [float(w) for w in numerators]
    pairs, rest, reference = _sum_order(weights)

    def scaled(t: Tensor, w: float) -> Tensor:
        return t if w == 1.0 else t * w  # x * 1.0 is x, NaN and -0.0 included

    terms = [scaled(block[..., i, :] - block[..., j, :], weights[i]) for i, j in pairs]
    if reference is None:
        terms += [scaled(block[..., k, :], weights[k]) for k in rest]
    else:
        base = block[..., reference, :]
        terms += [scaled(block[..., k, :] - base, weights[k]) for k in rest if k != reference]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total.transpose(-1, -2)

