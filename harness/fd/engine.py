"""Finite differences as an engine, at one step h or over a whole grid of h in one batch.

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
(x, x + h, ...), each evaluated once. Stencil sums (:mod:`harness.fd.stencils`) and
divisions are done in float64 on the function values.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import torch

from harness.compile import kernel_key, torch_namespace
from harness.dtypes import dtype_info, round_array
from harness.engines.base import EngineError, check_request
from harness.engines.torch_ad import torch_function
from harness.expr import Call, Expr, variables, walk
from harness.fd.stencils import (
    DEFAULT_H_GRID,
    _extrapolate,
    _plan,
    _weighted_sum,
    scheme_facts,
)
from harness.memo import Memo
from harness.ops import OPS

__all__ = ["FiniteDiffEngine", "Sweep", "shared_stencils"]

Tensor = torch.Tensor

_COMPLEX_DTYPES: Mapping[str, torch.dtype] = MappingProxyType(
    {"float64": torch.complex128, "float32": torch.complex64}
)


# ---- the engine ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _StepRule:
    """How a step is made. ``exact``: ``(x + h) - x`` in the working dtype; otherwise h
    rounded to the dtype (the complex step's imaginary part, and ``exact_h=False`` as
    hand-written code does: x + h rounds, yet it divides by h). ``relative``: the nominal
    step is scaled by max(1, |x|)."""

    exact: bool
    relative: bool


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

    def _step_rule(self, order: int) -> _StepRule:
        exact = self.exact_h and not (self.scheme == "complex-step" and order == 1)
        return _StepRule(exact=exact, relative=self.relative)

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
        rule = self._step_rule(order)
        raw, h_work, h64 = table.steps(rule, nominal)  # (levels * n_h, n, m) each

        disp_real = np.concatenate([g.real.reshape(-1, m) for g in groups])
        disp_imag = np.concatenate([g.imag.reshape(-1, m) for g in groups])
        f = table.values_at(rule, nominal, h_work, disp_real, disp_imag)  # (L * n_h, Q, n)
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

    An input is named by how it was made: the step's rule and nominal value and the
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
        self._steps: dict[tuple[_StepRule, bytes], tuple[Tensor, Tensor, Tensor]] = {}
        self._values: dict[Hashable, Tensor] = {}

    def steps(self, rule: _StepRule, nominal: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """Steps for nominal steps ``nominal`` (S,), each (S, n, m): as made (0, inf or
        NaN where unusable), usable in the working dtype (0 where unusable), and float64
        (NaN where unusable)."""
        key = (rule, nominal.tobytes())
        if key not in self._steps:
            scale = np.fmax(1.0, np.abs(self.pts)) if rule.relative else 1.0
            step = torch.as_tensor(nominal[:, None, None] * (scale * np.ones_like(self.pts)))
            raw = step.to(self.real)
            if rule.exact:
                raw = (self.x + raw) - self.x
            valid = (raw > 0) & (raw < math.inf)  # finite and positive; NaN fails both
            self._steps[key] = (
                raw,
                torch.where(valid, raw, torch.zeros((), dtype=self.real)),
                torch.where(valid, raw.to(torch.float64), torch.nan),
            )
        return self._steps[key]

    def values_at(
        self, rule: _StepRule, nominal: np.ndarray, h: Tensor, disp_real: np.ndarray,
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
                keys.append((rule, step, dr, di) if any(dr) or any(di) else ("x",))
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
