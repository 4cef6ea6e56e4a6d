"""Finite differences as an engine, at one step h or over a whole grid of h in one batch.

Schemes: ``forward``, ``backward``, ``central``, ``five-point`` (4th-order central),
``complex-step`` (Im f(x + ih) / h) and ``richardson`` (Richardson extrapolation of central
differences at h, h/2, h/4, h/8, with an error estimate). Every stencil weight is an exact
rational from ``sympy.finite_diff_weights``; the error model constants of each scheme
(:data:`SCHEME_FACTS`) are derived from those weights, so the theory curves
(:func:`predicted_error`, :func:`optimal_h`) and the engine cannot drift apart.

How a step is taken, for each point and variable:

* the nominal step is ``h`` (absolute, the default) or ``h * max(1, |x|)`` (``relative``);
* it is made exact in the working dtype, ``h_eff = (x + h) - x``, the stencil points are
  ``x + k * h_eff`` and the difference is divided by ``h_eff`` (as a float64 number);
* ``h_eff == 0`` (h below the spacing of the dtype at x) or a step that overflows gives NaN.

The complex step has no difference to make exact: its imaginary part is the nominal step
rounded to the working dtype. Its Hessian is the hybrid
``Im[f(x + i h e_i + h e_j) - f(x + i h e_i - h e_j)] / (2 h^2)``, a central difference of
the complex-step gradient, with the exact real step as h (so it needs a moderate h).

The tree is evaluated by :func:`harness.engines.torch_ad.torch_function` in the working
dtype, the whole grid of h x levels x stencil points x points in one batch, cut into
contiguous cache-sized pieces that torch's vectorised kernels take whole (see
:data:`_PIECE`): a point's value depends on that point alone, never on the rest of the
batch. Inside :func:`shared_stencils` the schemes of a case share stencil inputs
(x, x + h, ...), each evaluated once. Stencil sums (differences of f, in a fixed order)
and divisions are done in float64 on the function values.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import numpy as np
import sympy
import torch

from harness.compile import kernel_key, torch_namespace
from harness.dtypes import dtype_info, round_array
from harness.engines.base import EngineError, check_request
from harness.engines.torch_ad import torch_function
from harness.expr import Call, Expr, variables, walk
from harness.memo import Memo
from harness.ops import OPS

__all__ = [
    "DEFAULT_H_GRID",
    "RICHARDSON_LEVELS",
    "SCHEMES",
    "SCHEME_FACTS",
    "FiniteDiffEngine",
    "SchemeFacts",
    "Stencil",
    "Sweep",
    "optimal_h",
    "predicted_error",
    "scheme_facts",
    "shared_stencils",
]

Tensor = torch.Tensor

SCHEMES: tuple[str, ...] = (
    "forward", "backward", "central", "five-point", "complex-step", "richardson",
)
"""Scheme names, in the order reports list them."""

DEFAULT_H_GRID: tuple[float, ...] = tuple(float(f"1e-{k}") for k in range(1, 17))
"""Nominal steps 1e-1, 1e-2, ..., 1e-16 (correctly rounded decimal literals)."""

RICHARDSON_LEVELS = 4
"""Central differences at h, h/2, h/4, h/8 are extrapolated to h = 0 (order 8)."""

_COMPLEX_DTYPES: Mapping[str, torch.dtype] = MappingProxyType(
    {"float64": torch.complex128, "float32": torch.complex64}
)


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


# ---- theory curves -----------------------------------------------------------------------


def _deriv(derivs: Mapping[int, Any], k: int, scheme: str) -> np.ndarray:
    try:
        return np.abs(np.asarray(derivs[k], dtype=np.float64))
    except KeyError:
        raise ValueError(
            f"derivs has no k={k}: scheme={scheme!r} needs |f^(k)| for the truncation term; "
            f"pass derivs with keys 0, 1 and {scheme_facts(scheme).truncation_derivative}"
        ) from None


def predicted_error(
    scheme: str, h: Any, derivs: Mapping[int, Any], eps: float
) -> np.ndarray:
    """The error model of ``scheme`` for a first derivative at step ``h`` (broadcasts).

    ``derivs`` maps k to ``|f^(k)(x)|`` (arrays that broadcast with ``h``); the model needs
    k = 0 and k = ``truncation_derivative``. When k = 1 is given, ``eps * |f'|`` is added:
    the rounding of the result itself, a floor no scheme beats (without it the complex
    step's error would fall to 0 as h does). ``eps`` is the dtype's machine epsilon.
    """
    facts = scheme_facts(scheme)
    step = np.asarray(h, dtype=np.float64)
    truncation = (
        facts.truncation_coefficient
        * step**facts.order
        * _deriv(derivs, facts.truncation_derivative, scheme)
    )
    total = truncation
    if facts.rounding_coefficient:
        with np.errstate(divide="ignore"):
            total = total + facts.rounding_coefficient * eps * _deriv(derivs, 0, scheme) / step
    if 1 in derivs:
        total = total + eps * _deriv(derivs, 1, scheme)
    return np.asarray(total, dtype=np.float64)


def optimal_h(scheme: str, derivs: Mapping[int, Any], eps: float) -> np.ndarray:
    """The step that minimises :func:`predicted_error`, in closed form.

    ``d/dh [C_t h^p D + C_r eps F / h] = 0`` gives
    ``h* = (C_r eps F / (p C_t D)) ** (1 / (p + 1))`` with ``F = |f|`` and
    ``D = |f^(p+1)|``. The complex step has no rounding term, so its h* is 0 (any h small
    enough that the truncation term is negligible is best); ``D == 0`` gives inf.
    """
    facts = scheme_facts(scheme)
    p = facts.order
    top = _deriv(derivs, facts.truncation_derivative, scheme)
    if not facts.rounding_coefficient:
        return np.zeros_like(top)
    f = _deriv(derivs, 0, scheme)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = facts.rounding_coefficient * eps * f / (p * facts.truncation_coefficient * top)
    return np.asarray(np.where(top == 0, np.inf, ratio ** (1.0 / (p + 1))), dtype=np.float64)


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


# ---- the engine ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Sweep:
    """Derivatives at every step of a grid, for one scheme, dtype and order.

    ``h`` (n_h,) holds the nominal steps; ``h_effective`` (n_h, n, n_vars) the exact steps
    used per point and variable (for Richardson the first level's): 0 where h is below the
    dtype's spacing at x, inf where x + h overflows; every value that steps there is NaN.
    ``values`` is (n_h, n, n_vars) for gradients and (n_h, n, n_vars, n_vars) for Hessians,
    float64; ``error_estimate`` has the same shape, Richardson's estimate, NaN for every
    other scheme. Arrays are read-only.
    """

    h: np.ndarray
    h_effective: np.ndarray
    values: np.ndarray
    error_estimate: np.ndarray
    scheme: str
    dtype: str
    order: int
    relative: bool = False

    def __post_init__(self) -> None:
        for name in ("h", "h_effective", "values", "error_estimate"):
            getattr(self, name).setflags(write=False)


def _check_h_grid(h_grid: Sequence[float] | np.ndarray) -> np.ndarray:
    grid = np.asarray(h_grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError(f"h_grid has shape {grid.shape}; expected a non-empty 1-D sequence")
    bad = ~(np.isfinite(grid) & (grid > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"h_grid[{i}]={grid[i]!r} is not a positive finite step")
    return grid


class FiniteDiffEngine:
    """Finite differences as an :class:`~harness.engines.base.Engine`.

    ``scheme`` is one of :data:`SCHEMES`; ``h`` is the nominal step for
    :meth:`derivatives` (``relative=True``: ``h * max(1, |x|)``). :meth:`sweep` evaluates a
    whole grid of steps in one batch. See the module docstring for how a step is made exact.
    ``exact_h=False`` skips that and divides by the nominal step (rounded to the dtype), as
    hand-written code such as the seed's ``(f(x + h) - f(x)) / h`` does; it reproduces the
    numbers such code prints, not better derivatives.
    """

    def __init__(
        self, scheme: str = "central", h: float = 1e-6, *, relative: bool = False,
        exact_h: bool = True,
    ):
        self.facts = scheme_facts(scheme)
        if isinstance(h, bool) or not isinstance(h, (int, float)) or not (
            math.isfinite(h) and h > 0
        ):
            raise ValueError(f"h={h!r} is not a positive finite step; pass e.g. h=1e-6")
        self.scheme = scheme
        self.h = float(h)
        self.relative = bool(relative)
        self.exact_h = bool(exact_h)
        self.name = f"fd:{scheme}" + (":rel" if relative else "") + ("" if exact_h else ":nominal-h")

    def __repr__(self) -> str:
        return (
            f"FiniteDiffEngine(scheme={self.scheme!r}, h={self.h!r}, relative={self.relative}, "
            f"exact_h={self.exact_h})"
        )

    def supports(self, op: str) -> bool:
        """Every op in the table; the complex step only ops marked ``complex_step``."""
        row = OPS.get(op)
        return row is not None and (self.scheme != "complex-step" or row.complex_step)

    def derivatives(
        self, expr: Expr, points: np.ndarray, *, dtype: str, order: int = 1
    ) -> np.ndarray:
        """Gradient (n, n_vars) or Hessian (n, n_vars, n_vars) at the engine's step ``h``."""
        return np.array(self.sweep(expr, points, dtype=dtype, order=order, h_grid=(self.h,))
                        .values[0])

    def sweep(
        self,
        expr: Expr,
        points: np.ndarray,
        *,
        dtype: str,
        order: int = 1,
        h_grid: Sequence[float] | np.ndarray = DEFAULT_H_GRID,
    ) -> Sweep:
        """Derivatives at every nominal step of ``h_grid``, in one batched evaluation."""
        pts = check_request(expr, points, dtype, order)
        grid = _check_h_grid(h_grid)
        work = self._working_dtype(expr, dtype)
        m = len(variables(expr))
        h_eff, values, estimate = self._evaluate(expr, pts, grid, work, order, m)
        if not self.exact_h:
            # hand-written code divides in the working dtype: its result is rounded there
            values = round_array(values, dtype)
        return Sweep(grid, h_eff, values, estimate, self.scheme, dtype, order, self.relative)

    # -- internals --

    def _working_dtype(self, expr: Expr, dtype: str) -> torch.dtype:
        if self.scheme != "complex-step":
            return dtype_info(dtype).torch
        for node in walk(expr):
            if isinstance(node, Call) and not OPS[node.op].complex_step:
                raise EngineError(
                    f"scheme='complex-step' cannot differentiate through op={node.op!r}: it "
                    "is not analytic or has no complex torch kernel (op table: "
                    "complex_step=False); use scheme='central' or 'richardson'"
                )
        if dtype not in _COMPLEX_DTYPES:
            raise EngineError(
                f"scheme='complex-step' has no complex dtype for dtype={dtype!r}; expected "
                f"one of {', '.join(_COMPLEX_DTYPES)} (complex128 / complex64)"
            )
        return _COMPLEX_DTYPES[dtype]

    def _step_kind(self, order: int) -> str:
        """How a step is made: ``"exact"``, ``(x + h) - x``, or ``"rounded"``, h rounded to
        the dtype (the complex step's imaginary part, and ``exact_h=False`` as hand-written
        code does: x + h rounds, yet it divides by h); ``":relative"`` scales by max(1, |x|)."""
        exact = self.exact_h and not (self.scheme == "complex-step" and order == 1)
        return ("exact" if exact else "rounded") + (":relative" if self.relative else "")

    def _evaluate(
        self, expr: Expr, pts: np.ndarray, grid: np.ndarray, work: torch.dtype, order: int,
        m: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, n_h, levels = pts.shape[0], grid.size, self.facts.levels
        slots = (n, m) if order == 1 else (n, m, m)
        if m == 0:  # a constant: no variables, nothing to differentiate
            empty = np.zeros((n_h, *slots))
            return np.zeros((n_h, n, 0)), empty, np.full_like(empty, np.nan)
        if n == 0:  # no points: nothing to evaluate
            empty = np.zeros((n_h, *slots))
            return np.zeros((n_h, 0, m)), empty, np.full_like(empty, np.nan)
        groups = _plan(self.scheme, order, m)
        stencil_points = levels * n_h * sum(g.real.shape[0] * g.real.shape[1] for g in groups)
        # the table and this scheme's gathered copy of it, 8 bytes a value each
        part = min(_POINTS_PER_TABLE, max(256, _TABLE_BYTES // (16 * stencil_points)))
        if n > part:  # bounded memory; a point's estimates are the same
            parts = [
                self._evaluate(expr, pts[lo:lo + part], grid, work, order, m)
                for lo in range(0, n, part)
            ]
            joined = [np.concatenate([piece[k] for piece in parts], axis=1) for k in range(3)]
            return joined[0], joined[1], joined[2]
        table = _stencil_values(expr, pts, work)
        # level-major throughout: (levels, n_h, ...) keeps each level's slice contiguous
        nominal = (grid[None, :] / 2.0 ** np.arange(levels)[:, None]).ravel()
        kind = self._step_kind(order)
        raw, h_work, h64 = table.steps(kind, nominal)  # (levels * n_h, n, m) each

        disp_real = np.concatenate([g.real.reshape(-1, m) for g in groups])
        disp_imag = np.concatenate([g.imag.reshape(-1, m) for g in groups])
        f = table.values_at(kind, nominal, h_work, disp_real, disp_imag)  # (L * n_h, Q, n)
        f = f.reshape(levels, n_h, -1, n)
        h64 = h64.reshape(levels, n_h, n, m)

        start = 0
        if order == 1:  # one axis group: every slot filled, no scatter needed
            (g,) = groups
            sums = _weighted_sum(f.reshape(levels, n_h, m, -1, n), g.numerators)
            out = sums / (g.denominator * h64)
        else:
            out = torch.full((levels, n_h, *slots), torch.nan, dtype=torch.float64)
            for g in groups:
                p, k = g.real.shape[0], g.real.shape[1]
                block = f[:, :, start:start + p * k].reshape(levels, n_h, p, k, n)
                start += p * k
                sums = _weighted_sum(block, g.numerators)
                rows, cols = torch.as_tensor(g.rows), torch.as_tensor(g.cols)
                value = sums / (g.denominator * h64[..., rows] * h64[..., cols])
                out[..., rows, cols] = value
                out[..., cols, rows] = value

        h_eff = raw[:n_h].to(torch.float64).numpy()
        if levels == 1:
            values = out[0]
            return h_eff, values.numpy(), np.full(values.shape, np.nan)
        abscissa = h64 * h64 if order == 1 else h64[..., :, None] * h64[..., None, :]
        best, estimate = _extrapolate(out, abscissa)
        return h_eff, best.numpy(), estimate.numpy()


# Stencil inputs are evaluated in contiguous pieces of at most this many elements, each a
# whole number of _PAD elements long (padded at the end). torch's CPU kernels use their
# vectorised path for whole vectors of contiguous data and a scalar path (other libm
# routines, last bits differ) for strided data and the tail; pieces below torch's
# parallel grain size (32768) are never split between threads. So every stencil point goes
# through the vectorised path whatever the batch holds: its value depends on the point
# alone, not on how many points, steps or schemes share the batch (which is also what
# makes sharing values between schemes exact). Pieces of this size also stay in cache.
_PIECE = 1 << 14
_PAD = 256  # a multiple of twice the widest vector (512-bit; 2048-bit SVE: 32 doubles)


class _StencilValues:
    """Steps and f at the stencil inputs of one case (tree, points, working dtype).

    An input is named by how it was made: the step's kind and nominal value and the
    displacement (real, imaginary) in units of the step. Every such input at these points
    is the same numbers, so each is evaluated once and its values serve every scheme that
    asks (x + h is the forward, central, five-point and Richardson schemes' alike).
    """

    def __init__(self, expr: Expr, pts: np.ndarray, work: torch.dtype):
        self.fn = torch_function(expr)
        self.pts = np.array(pts, dtype=np.float64)  # a copy: the caller may reuse its array
        self.work = work
        self.real = torch.empty((), dtype=work).real.dtype
        self.x = torch.as_tensor(self.pts).to(self.real)
        self._steps: dict[tuple[str, bytes], tuple[Tensor, Tensor, Tensor]] = {}
        self._values: dict[Hashable, Tensor] = {}

    def steps(self, kind: str, nominal: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """Steps for nominal steps ``nominal`` (S,), each (S, n, m): as made (0, inf or
        NaN where unusable), usable in the working dtype (0 where unusable), and float64
        (NaN where unusable)."""
        key = (kind, nominal.tobytes())
        if key not in self._steps:
            scale = np.fmax(1.0, np.abs(self.pts)) if kind.endswith(":relative") else 1.0
            step = torch.as_tensor(nominal[:, None, None] * (scale * np.ones_like(self.pts)))
            raw = step.to(self.real)
            if kind.startswith("exact"):
                raw = (self.x + raw) - self.x
            valid = (raw > 0) & (raw < math.inf)  # finite and positive; NaN fails both
            self._steps[key] = (
                raw,
                torch.where(valid, raw, torch.zeros((), dtype=self.real)),
                torch.where(valid, raw.to(torch.float64), torch.nan),
            )
        return self._steps[key]

    def values_at(
        self, kind: str, nominal: np.ndarray, h: Tensor, disp_real: np.ndarray,
        disp_imag: np.ndarray,
    ) -> Tensor:
        """f at x + disp_real[q] * h[s] (+ i disp_imag[q] * h[s]) for every step s and row
        q, float64 (S, Q, n); for a complex dtype, the imaginary part of f."""
        rows = [
            (tuple(map(float, dr)), tuple(map(float, di)))
            for dr, di in zip(disp_real, disp_imag, strict=True)
        ]
        keys: list[Hashable] = []
        for step in nominal.tolist():
            for dr, di in rows:
                # x + 0 * h is x (+0.0 for -0.0) whatever the step
                keys.append((kind, step, dr, di) if any(dr) or any(di) else ("x",))
        todo: dict[Hashable, int] = {}
        for j, key in enumerate(keys):
            if key not in self._values and key not in todo:
                todo[key] = j
        if todo:
            self._evaluate(list(todo.items()), h, disp_real, disp_imag)
        stacked = torch.stack([self._values[key] for key in keys])
        return stacked.reshape(len(nominal), len(rows), -1)

    def _evaluate(
        self, todo: list[tuple[Hashable, int]], h: Tensor, disp_real: np.ndarray,
        disp_imag: np.ndarray,
    ) -> None:
        n, m = self.x.shape
        q = disp_real.shape[0]
        d_real = torch.as_tensor(disp_real).to(self.real)
        d_imag = torch.as_tensor(disp_imag).to(self.real)
        block = max(1, (1 << 18) // max(1, n * m))  # inputs of at most 2 MB (float64)
        for lo in range(0, len(todo), block):
            part = todo[lo:lo + block]
            index = torch.as_tensor([j for _, j in part])
            rows, steps = index % q, index // q
            columns = []
            for c in range(m):  # each coordinate built contiguous, (K, n) -> (K * n,)
                hc = h[steps, :, c]
                column = self.x[:, c] + d_real[rows, c][:, None] * hc
                if self.work.is_complex:
                    column = torch.complex(column, d_imag[rows, c][:, None] * hc)
                columns.append(column.reshape(-1))
            out = self._run(columns).reshape(len(part), n)
            for (key, _), value in zip(part, out, strict=True):
                self._values[key] = value

    def _run(self, columns: list[Tensor]) -> Tensor:
        """f at the points whose coordinates are ``columns`` (m tensors of N), float64
        (N,); see :data:`_PIECE`."""
        total = len(columns[0])
        padded = -(-max(total, 1) // _PAD) * _PAD
        if padded > total:  # the first point again, whose value is dropped
            columns = [torch.cat([col, col[:1].expand(padded - total)]) for col in columns]
        parts = []
        for lo in range(0, padded, _PIECE):
            value = self.fn([col[lo:lo + _PIECE] for col in columns])
            value = value.imag if self.work.is_complex else value
            parts.append(torch.broadcast_to(value, columns[0][lo:lo + _PIECE].shape))
        return torch.cat(parts)[:total].to(torch.float64)


# A table holds f at every stencil input of its points: for order 1 about 500 x 8 bytes per
# point and variable over all six schemes (order 2 grows with the square of the variables).
# Larger batches go through in parts of at most this many points, and of fewer where the
# values of one part would pass _TABLE_BYTES (Hessians of many variables).
_POINTS_PER_TABLE = 1 << 14
_TABLE_BYTES = 1 << 28

# The tables of the case being checked, inside shared_stencils() only.
_SHARED: Memo[_StencilValues] | None = None


@contextlib.contextmanager
def shared_stencils() -> Iterator[None]:
    """Within this block, sweeps of one tree at one set of points share stencil values.

    Several schemes evaluate f at the same inputs (x, x + h, ...): inside the block each
    is evaluated once, for every scheme and step grid that asks. The values are the same
    bits as without the block (each input's value depends on that input alone), so this
    only saves time. Use it around the sweeps of one case and leave it after: the tables
    (two at a time, one dtype's real and complex ones) live until the block ends, and
    they assume the op table is not changed meanwhile. Blocks nest (the outer one rules).
    """
    global _SHARED
    if _SHARED is not None:
        yield
        return
    _SHARED = Memo(2)
    try:
        yield
    finally:
        _SHARED = None


def _stencil_values(expr: Expr, pts: np.ndarray, work: torch.dtype) -> _StencilValues:
    """A fresh table, or inside :func:`shared_stencils` the case's shared one. The key holds
    the torch functions that compute the tree (the translator and each op's kernel, as
    the translator reads them), so a patched op table never reads values of the old one."""
    if _SHARED is None:
        return _StencilValues(expr, pts, work)
    key = (expr, kernel_key(expr, torch_namespace()), torch_function, pts.shape, pts.tobytes(), str(work))
    return _SHARED.get(key, lambda: _StencilValues(expr, pts, work))
