"""The operator table: one row per op, the single source of truth for every stage.

Each :class:`Op` row holds everything the rest of the harness needs to know about one
operator, side by side (as micrograd keeps an op's forward and backward rule together):

* how sympy builds it (the exact truth is derived from this),
* how torch and JAX compute it (what the engines under test compute, literally),
* where its arguments may lie (``domain``) and where it stops being smooth (``kinks``),
* whether complex-step differentiation is valid through it,
* how it is printed and which Python operator spells it in text.

The generator, the parser, the printer and every engine dispatch on ``OPS[name]``. Adding
an op is adding one row to ``_ROWS``; nothing else switches on op names.

Domain and kink functions are vectorised over torch tensors of argument values and return
a *margin*: roughly the distance from the arguments to the nearest boundary, pole, branch
point or kink. A margin ``> 0`` means "inside"; the point generator asks for a margin
comfortably above zero so that derivatives are well conditioned there.
"""

from __future__ import annotations

import ast
import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import sympy
import torch

from harness.dtypes import DType
from harness.functions import Sinc

__all__ = [
    "OPS",
    "Op",
    "Smoothness",
    "ANALYTIC_OPS",
    "DEFAULT_OPS",
    "REACH_OPS",
    "TENSOR_OPS",
    "MAX_VARIADIC",
    "KINK_OPS",
    "JUMP_OPS",
    "INFIX_BY_AST",
    "UNARY_BY_AST",
    "op",
    "LIBM",
]


class Smoothness(enum.Enum):
    """How smooth an op is where it is defined."""

    ANALYTIC = "analytic"  # derivatives of every order exist inside the domain
    KINK = "kink"  # continuous, first derivative jumps at known points
    JUMP = "jump"  # the value itself jumps; derivative 0 elsewhere


Tensor = torch.Tensor
Margin = Callable[..., Tensor]
GradNoise = Callable[[tuple[Any, ...], Any, tuple[Any, ...]], tuple[Any, ...]]
Noise2 = tuple[tuple[Any, ...], ...]
GradNoise2 = Callable[[tuple[Any, ...], Any, tuple[Any, ...]], Noise2]

# Rounding budget of one libm-style function evaluation, in unit roundoffs (2 ulp).
LIBM = 4


def _exact_partials(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # the partials are 0, +-1 or an argument itself: computed without rounding
    return tuple(0 * abs(pj) for pj in p)


def _div_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # 1 / b: one rounding; -a / b**2 (as -(a / b) / b): two
    return (abs(p[0]), 2 * abs(p[1]))


def _sqrt_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # 1 / (2 y): y's own rounding and the division's
    return (2 * abs(p[0]),)


def _tanh_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # 1 - y*y with y carrying LIBM roundings: cancellation where |y| -> 1.
    return (1 + (2 * LIBM + 2) * y * y,)


def _sigmoid_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # y * (1 - y): 1 - y cancels where y -> 1.
    return ((LIBM + 3) * abs(y),)


def _arcsin_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # 1 / sqrt(1 - x*x): 1 - x*x cancels where |x| -> 1.
    (x,) = args
    return (abs(p[0]) * (LIBM + (1 + x * x) / abs(1 - x * x)),)


def _sigmoid_noise2(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # double backward of g*y*(1 - y): y'(1 - y) - y y', terms of size |y'| that cancel.
    return ((LIBM + 3) * abs(p[0]),)


def _expm1_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # torch computes expm1' as y + 1: cancels where y -> -1 (x very negative).
    return (LIBM * abs(y) + 2 * abs(p[0]),)


def _erf_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # 2/sqrt(pi) * exp(-x*x): the rounding of x*x is amplified by 2 x**2.
    (x,) = args
    return (abs(p[0]) * (LIBM + 2 * x * x),)


def _acosh_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # 1 / sqrt(x*x - 1): x*x - 1 cancels where x -> 1.
    (x,) = args
    return (abs(p[0]) * (LIBM + (1 + x * x) / abs(x * x - 1)),)


def _logsigmoid_noise2(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # logsigmoid'' = -s (1 - s), s = sigmoid(x) = 1 - logsigmoid'(x): torch computes it
    # through s and cancels 1 - s where s -> 1, JAX through sigmoid(-x) = 1 - s and cancels
    # where s -> 0; the hull of both is a few roundings of 1
    return ((LIBM + 3) * (abs(p[0]) + abs(1 - p[0])),)


def _silu_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # s (1 + x (1 - s)): terms of size s and |x| s = |y|; 1 - s cancels where s -> 1, and
    # x scales it. Far below 0 both terms are tiny (s = e**x): the error is relative there.
    import numpy as np

    (x,) = args
    with np.errstate(all="ignore"):
        s = np.where(x != 0, y / np.where(x != 0, x, 1.0), 0.5)  # silu(x) = x sigmoid(x)
    return ((LIBM + 3) * (abs(s) + abs(y)),)


def _silu_noise2(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # s (1 - s) (2 + x (1 - 2 s)): the same cancellation, once more.
    return ((LIBM + 3) * (2 + abs(y)),)


def _gelu_tanh_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # (1 + t)/2 + x (1 - t*t) z'/2, t = tanh(z): 1 + t cancels for x < 0 and 1 - t*t where
    # |t| -> 1; once t rounds to +-1 (|x| past about 6) 1 - t*t is exactly 0 and the term
    # is lost, not noisy: the smooth cut-off (x/6)**12 says so with arithmetic only.
    (x,) = args
    slope = 0.8 * abs(x) * (1 + 0.134 * x * x)
    return (LIBM + 2 + (2 * LIBM + 2) * slope / (1 + (x / 6) ** 12),)


def _mish_noise2(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # mish'' = (1 - t*t) s (2 + x (1 - s) - 2 x s t) + ..., t = tanh(softplus(x)),
    # s = sigmoid(x): 1 - t*t cancels where t -> 1 (it is exactly 0 once t rounds to 1),
    # and s (1 - s) where s -> 1
    import numpy as np

    (x,) = args
    e = np.exp(-abs(x))
    t = np.tanh(np.logaddexp(0, x))
    s = 1 / (1 + np.exp(-x))
    return ((2 * LIBM + 2) * t * t * s * (2 + 2 * abs(x)) + 4 * (LIBM + 3) * (1 + abs(x)) * e / (1 + e) ** 2,)


def _gelu_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # Phi(x) + x phi(x): for x < 0 the two terms cancel (at -0.75 each is 300 times the
    # sum); each term rounds on its own size, and phi's exp(-x*x/2) amplifies x*x's rounding
    import numpy as np

    (x,) = args
    with np.errstate(all="ignore"):
        cdf = np.where(x != 0, y / np.where(x != 0, x, 1.0), 0.5)  # gelu(x) = x Phi(x)
    pdf = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    return ((LIBM + 2) * (abs(cdf) + abs(x) * pdf) + LIBM * x * x * abs(p[0]),)


def _gelu_tanh_noise2(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # (1 - t*t) (z' + x z''/2 - x t z'**2), t = tanh(z): 1 - t*t where |t| -> 1 (cut off
    # as in _gelu_tanh_noise once t rounds to +-1)
    (x,) = args
    dz = 0.8 * (1 + 0.134 * x * x)
    return ((2 * LIBM + 2) * (dz + 0.11 * x * x + abs(x) * dz * dz) / (1 + (x / 6) ** 12),)


def _hardswish_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # relu6(x + 3)/6 + x/6 on the middle branch: the terms cancel at x = -3/2 (derivative
    # 0), each rounded on its own size
    (x,) = args
    return ((LIBM + 2) * (1 + abs(x)) / 3,)


def _softsign_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # torch differentiates x / (1 + |x|) as a quotient: 1/(1+|x|) - |x|/(1+|x|)**2 cancels
    (x,) = args
    return ((LIBM + 2) * 2 / (1 + abs(x)),)


def _softsign_noise2(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    (x,) = args
    return ((LIBM + 3) * 6 / (1 + abs(x)) ** 2,)


def _atanh_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # 1 / (1 - x*x): x*x's rounding, u x**2, grows by 1/(1 - x**2)**2 = p**2 near |x| = 1
    (x,) = args
    return ((LIBM + 2) * abs(p[0]) + x * x * p[0] * p[0],)


def _reciprocal_product_noise2(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # the derivative of 1/b(x) by the product rule (logit: b = x (1 - x)): two terms of
    # size about p**2 / 2 that cancel where the second derivative vanishes (x = 1/2), each
    # from a few roundings
    return (3 * p[0] * p[0],)


def _gelu_noise2(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # phi(x) (2 - x**2) formed from terms of size phi(x) (2 + x**2) that cancel at
    # x = +-sqrt(2); phi's exp(-x*x/2) amplifies x*x's rounding by x**2 / 2
    import numpy as np

    (x,) = args
    pdf = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    return ((LIBM + 2 + x * x) * pdf * (2 + x * x) / 2,)


def _atanh_noise2(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # JAX differentiates 1/((1 - x)(1 + x)): (1 - x) - (1 + x) cancels, terms of size p**2
    return ((LIBM + 3) * p[0] * p[0],)


def _logaddexp_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    # max(a, b) + log1p(exp(-|a - b|)) (over ln 2 for base 2): each term rounds on its own
    # scale, and the max is within 1 of the result (|max| <= |y| + 1), so next to a result
    # of 0 the error is absolute (logaddexp2(-1, -1) is -4.8e-17 in torch, exactly 0)
    return LIBM * (1 + abs(y))


def _logaddexp_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # exp(a - out): the rounding of a - out (out = logaddexp(a, b)) is amplified by |a|, |out|
    return tuple(abs(pj) * (LIBM + abs(a) + abs(y)) for a, pj in zip(args, p, strict=True))


def _logaddexp_noise2(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # p (1 - p) with p = exp(a - out) -> 1: 1 - p cancels (as sigmoid's)
    return tuple((LIBM + 3) * abs(pj) for pj in p)


def _mish_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # tanh(sp) + x s (1 - t*t): the terms cancel near x = -1.2, and 1 - t*t where t -> 1
    import numpy as np

    (x,) = args
    t = np.tanh(np.logaddexp(0, x))
    s = 1 / (1 + np.exp(-x))
    return ((LIBM + 2) * (abs(t) + abs(x) * s) + (2 * LIBM + 2) * t * t * abs(x) * s,)


def _i0e_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # i0e: i1e(x) - sign(x) i0e(x), both terms near i0e(x) = y, cancelling for large |x|;
    # i0 (its row uses this too): JAX's product rule through exp(|x|) i0e(x), where +-i0(x)
    # and i1(x) -+ i0(x) cancel to i1(x), small next to i0 = y near 0 (i0'(0.036) is 0.018)
    return ((LIBM + 2) * 2 * abs(y),)


def _i0e_noise2(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    return ((LIBM + 3) * 4 * abs(y),)


def _i1_noise2(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # i1'' through the rule i1' = i0 - i1/x differentiated: i1 - (i0 - i1/x)/x + i1/x**2,
    # terms of size i0/|x| and i1/x**2 that cancel (at x = 1/2: 2.2 and 1.0 for 0.19)
    x = args[0]
    ax = abs(x) + (x == 0)  # (x == 0): no division by 0; the rule is a where there
    i0 = abs(p[0]) + abs(y) / ax
    return ((LIBM + 3) * (abs(y) + (i0 + abs(y) / ax) / ax + abs(y) / (ax * ax)),)


def _erfinv_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # sqrt(pi)/2 exp(y*y): the rounding of y = erfinv(x) is amplified by 2 y**2
    return (abs(p[0]) * (LIBM + 2 * LIBM * y * y),)


def _lgamma_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # digamma's series is accurate to a few ulps of its terms (about 1 + |log x|), not of
    # its value: near its root 1.4616 the error is absolute
    return (LIBM * (1 + abs(p[0])),)


def _digamma_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    # a few ulps of the series' terms: about |psi(x)| away from the root, 1 next to it
    return LIBM * (1 + 2 * abs(y))


def _lgamma_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    # log of a rational approximation near 1 and 2 (the roots): absolute, not relative;
    # jax.scipy.special.gammaln(1.0) in float32 is 4.8e-7, 8 ulps of 1
    return 4 * LIBM * (1 + abs(y))


def _sinc_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    # sin(pi x)/(pi x) with pi x rounded: an angle off by u pi |x| moves sin by that times
    # |cos(pi x)| <= 1, so the value is about u off absolute, next to its zeros too
    return 1 + LIBM * abs(y)


def _sinc_terms(x: Any, y: Any, p0: Any) -> tuple[Any, Any, Any, Any]:
    # |x| (1 at 0, where the rules are a where), theta = pi |x|, |sin(theta)| and
    # |theta cos(theta)| from sinc = sin(theta)/theta and sinc' = (theta cos - sin)/(pi x**2)
    ax = abs(x) + (x == 0)
    theta = math.pi * ax
    return ax, theta, theta * abs(y), abs(p0 * math.pi * x * x + math.pi * x * y)


def _sinc_slope(s: Any, theta: Any, u: float) -> Any:
    # |sin| over the rounded angle's error 2 u theta (pi x rounds, and pi itself): the
    # slope of theta cos(theta) - sin(theta) is theta |sin|, and past a radian of error
    # |sin| is anywhere up to 1 (at x = 2**26 in float32 the angle is 12 radians off)
    import numpy as np

    return np.minimum(1.0, s + 2 * u * theta)


def _sinc_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...], u: float = 0.0) -> tuple[Any, ...]:
    # (theta cos(theta) - sin(theta))/(pi x**2): terms of size theta cancel to theta**3/3
    # near 0 (u/x**2 relative), and the rounded angle moves the numerator by u theta**2 |sin|
    ax, theta, s, tc = _sinc_terms(args[0], y, p[0])
    return ((LIBM * (tc + s) + theta * theta * _sinc_slope(s, theta, u)) / (math.pi * ax * ax),)


def _sinc_noise2(args: tuple[Any, ...], y: Any, p: tuple[Any, ...], u: float = 0.0) -> tuple[Any, ...]:
    # that rule differentiated: -theta sin(theta)/x**2 - 2 sinc'/x, each term with its noise
    ax, theta, s, tc = _sinc_terms(args[0], y, p[0])
    first = _sinc_noise(args, y, p, u)[0]
    slope = _sinc_slope(s, theta, u)
    return (LIBM * (theta * slope / (ax * ax) + 2 * abs(p[0]) / ax) + math.pi * tc / ax + 2 * first / ax,)


def _atan2_hessian_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> Noise2:
    # d/db (b/r**2) = 1/r**2 - 2 b**2/r**4 (and d/da (-a/r**2) alike): terms up to 1/r**2
    # that cancel to (a**2 - b**2)/r**4; the diagonal -+2ab/r**4 is one term
    a, b = args
    r2 = a * a + b * b
    mixed = (LIBM + 3) * 3 / (r2 + (r2 == 0))  # (r2 == 0): no division by 0
    return ((0 * mixed, mixed), (mixed, 0 * mixed))


def _hypot_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # a / hypot(a, b) divides by the rounded value: a subnormal hypot (7.07e-324 stored as
    # 5e-324) carries a relative error of up to half its spacing over itself
    rel = 2.0**-1074 / (abs(y) + (y == 0)) / 2.0**-53  # (y == 0): no division by 0
    return tuple(abs(pj) * (LIBM + rel) for pj in p)


def _hypot_noise2(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # d/da (a / h) = 1/h - a*a/h**3: the two terms cancel where |a| >> |b|
    return ((LIBM + 3) * 2 / abs(y),) * 2


def _exp2_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    # exp(x ln 2), JAX's lowering of exp2: x ln 2 rounds, and exp amplifies that by |x ln 2|
    # (exp2(126.0) is 30 float64 ulps off in JAX 0.10, exactly 2**126 in torch)
    (x,) = args
    return abs(y) * (LIBM + abs(x) * math.log(2))


def _exp2_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # exp2(x) ln 2 inherits the value's error, one rounding more
    (x,) = args
    return (abs(p[0]) * (LIBM + 1 + abs(x) * math.log(2)),)


def _powv_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # d/da a**b = b a**(b - 1), with b - 1 rounded in the dtype: an exponent off by u |b - 1|
    # moves the power by u |(b - 1) ln a| relative (13 float32 ulps at a = 3.21, b = -15.3)
    import numpy as np

    a, b = args
    with np.errstate(all="ignore"):
        amplified = np.abs((np.asarray(b) - 1) * np.log(np.abs(a)))
    amplified = np.where(np.isfinite(amplified), amplified, 0.0)
    return (abs(p[0]) * (LIBM + amplified), LIBM * abs(p[1]))


def _powv_hessian_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> Noise2:
    # d2/da db a**b = a**(b - 1) (1 + b ln a): the two terms cancel where b ln a is near -1
    # (24 ulps in float32 at a = 0.5, b = 1.5, from torch and JAX alike)
    import numpy as np

    a, b = args
    with np.errstate(all="ignore"):
        terms = np.abs(np.asarray(a) ** (np.asarray(b) - 1)) * (1 + np.abs(b * np.log(np.abs(a))))
    mixed = LIBM * np.where(np.isfinite(terms), terms, 0.0)
    return ((0.0, mixed), (mixed, 0.0))


def _unrestricted(*args: Tensor) -> Tensor:
    return torch.full_like(args[0], math.inf)


def _positive(x: Tensor) -> Tensor:
    return x


def _nonzero_second(a: Tensor, b: Tensor) -> Tensor:
    return b.abs()


def _open_unit_interval(x: Tensor) -> Tensor:
    return 1 - x.abs()


def _above_minus_one(x: Tensor) -> Tensor:
    return 1 + x


def _away_from_tan_poles(x: Tensor) -> Tensor:
    # |cos x| is within a factor pi/2 of the distance to the nearest pole of tan.
    return torch.cos(x).abs()


def _integer_valued(b: Tensor) -> Tensor:
    return b == torch.round(b)


def _pow_domain(a: Tensor, b: Tensor) -> Tensor:
    """Integer exponents: any base (nonzero when negative). Otherwise a positive base."""
    integer = _integer_valued(b)
    inf = torch.full_like(a, math.inf)
    integer_margin = torch.where(b < 0, a.abs(), inf)
    return torch.where(integer, integer_margin, a)


def _abs_distance(x: Tensor) -> Tensor:
    return x.abs()


def _tie_distance(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).abs()


def _integer_distance(x: Tensor) -> Tensor:
    return (x - torch.round(x)).abs()


def _mirrored(x: Any) -> tuple[Any, ...]:
    return (-x,)


def _swapped(a: Any, b: Any) -> tuple[Any, ...]:
    return (b, a)


# ---- special arguments per dtype ----------------------------------------------------------
# Each function gives the arguments (as float64 numbers, positive side unless the sign
# matters; the caller adds the mirror image, rounds to the dtype and steps a few ulps
# around) where an op's derivative is most often computed wrong: where its value rounds to a
# limit (the usual backward formula then cancels), where its value or an intermediate of a
# common formula overflows or underflows, and at thresholds where libraries switch formula.
# Computed from the dtype's constants, never typed per dtype. Zero, the smallest subnormal,
# the smallest normal and one are every op's edges (harness.edges adds them).


def _ln(x: float) -> float:
    return math.log(x)


def _exp_edges(d: DType) -> tuple[float, ...]:
    # value overflows past ln(max); underflows to subnormal, then to zero
    return (_ln(d.max), -_ln(d.max), _ln(d.tiny), _ln(d.smallest_subnormal))


def _expm1_edges(d: DType) -> tuple[float, ...]:
    # expm1 rounds to -1 below ln(u); y + 1 as its derivative cancels there
    return (_ln(d.max), _ln(d.unit_roundoff), 2 * _ln(d.unit_roundoff), _ln(d.smallest_subnormal))


def _log_edges(d: DType) -> tuple[float, ...]:
    # subnormal and huge arguments; log(1 +- u) is tiny: a derivative near 1 that cancels
    return (d.smallest_subnormal, d.tiny, d.max, 1 - d.unit_roundoff, 1 + d.eps)


def _log1p_edges(d: DType) -> tuple[float, ...]:
    # next to the pole at -1, and huge arguments
    return (-1 + d.unit_roundoff, -1 + 4 * d.unit_roundoff, d.max)


def _sqrt_edges(d: DType) -> tuple[float, ...]:
    return (d.smallest_subnormal, d.tiny, d.max)


def _trig_edges(d: DType) -> tuple[float, ...]:
    # large arguments, where argument reduction decides the answer: past 2**bits every
    # float is an integer; the largest finite ones; the float next to pi/2
    big = 2.0 ** (d.bits + 2)
    return (math.pi / 2, big, min(2.0**60, d.max / 4), d.max / 2)


def _saturation(d: DType, inverse: Callable[[float], float]) -> float:
    """The argument past which a function approaching 1 rounds to 1 in ``d``."""
    return inverse(1 - d.unit_roundoff)


def _tanh_edges(d: DType) -> tuple[float, ...]:
    s = _saturation(d, math.atanh)
    # tanh rounds to 1 past s (1 - y*y cancels to 0); exp(2x) overflows past ln(max)/2;
    # sech(x)**2 underflows to 0 past -ln(smallest subnormal / 4) / 2
    return (s / 2, s, 1.5 * s, 2 * s, _ln(d.max) / 2, -(_ln(d.smallest_subnormal) - _ln(4)) / 2)


def _sigmoid_edges(d: DType) -> tuple[float, ...]:
    s = _ln(1 / d.unit_roundoff)  # sigmoid rounds to 1 past s: y * (1 - y) cancels
    return (s, 2 * s, _ln(d.max), -_ln(d.max), -_ln(d.smallest_subnormal))


def _softplus_edges(d: DType) -> tuple[float, ...]:
    # torch's threshold=20 switch; sigmoid's saturation (softplus'' cancels); exp overflow
    return (20.0, _ln(1 / d.unit_roundoff), _ln(d.max), -_ln(d.max), _ln(d.smallest_subnormal))


def _atan_edges(d: DType) -> tuple[float, ...]:
    # 1 + x*x rounds to x*x past 1/sqrt(u); x*x overflows past sqrt(max) (atan' is 1/x**2,
    # representable, while 1/(1 + x*x) gives 0)
    return (1 / math.sqrt(d.unit_roundoff), math.sqrt(d.max), d.max)


def _arcsine_edges(d: DType) -> tuple[float, ...]:
    # next to +-1, where 1 - x*x cancels
    return (1 - d.unit_roundoff, 1 - 4 * d.unit_roundoff, 1 - math.sqrt(d.unit_roundoff))


def _hyperbolic_edges(d: DType) -> tuple[float, ...]:
    # exp(x) overflows at ln(max) before sinh/cosh do, at ln(2 max)
    return (_ln(d.max), _ln(d.max) + math.log(2) - d.eps)


def _erf_edges(d: DType) -> tuple[float, ...]:
    import mpmath

    s = float(mpmath.erfinv(1 - d.unit_roundoff))  # erf rounds to 1 past s
    # exp(-x*x) underflows to 0 past sqrt(-ln(smallest subnormal))
    return (s, 1.5 * s, math.sqrt(-_ln(d.smallest_subnormal)))


def _product_edges(d: DType) -> tuple[float, ...]:
    return (math.sqrt(d.max), math.sqrt(d.tiny), d.max / 2)


def _quotient_edges(d: DType) -> tuple[float, ...]:
    return (math.sqrt(d.max), math.sqrt(d.tiny), d.max)


# ---- edges of the reach ops (see the block above) ------------------------------------------


def _exp2_edges(d: DType) -> tuple[float, ...]:
    # 2**x overflows past log2(max); underflows to subnormal, then to zero
    return (math.log2(d.max), -math.log2(d.max), math.log2(d.tiny), math.log2(d.smallest_subnormal))


def _acosh_edges(d: DType) -> tuple[float, ...]:
    # next to 1, where x*x - 1 cancels; x*x overflows past sqrt(max)
    return (1 + d.eps, 1 + 4 * d.eps, 1 + math.sqrt(d.unit_roundoff), math.sqrt(d.max), d.max)


def _reciprocal_edges(d: DType) -> tuple[float, ...]:
    # 1/x overflows below 1/max; its derivative -1/x**2 overflows below 1/sqrt(max)
    return (1 / d.max, 1 / math.sqrt(d.max), math.sqrt(d.max), d.max)


def _erfc_edges(d: DType) -> tuple[float, ...]:
    import mpmath

    def where(level: float) -> float:
        return float(mpmath.findroot(lambda t: mpmath.log(mpmath.erfc(t)) - mpmath.log(level), 5))

    # erfc(x) becomes subnormal, then 0; erfc(-x) rounds to 2; exp(-x*x) underflows
    return (where(d.tiny), where(d.smallest_subnormal), *_erf_edges(d))


def _logit_edges(d: DType) -> tuple[float, ...]:
    # next to 0 and 1, where 1 - x cancels; 1/2, where logit changes sign
    return (0.5, 1 - d.unit_roundoff, 1 - 4 * d.unit_roundoff, 1 - math.sqrt(d.unit_roundoff))


def _gelu_edges(d: DType) -> tuple[float, ...]:
    # erf(x/sqrt 2) rounds to +-1 (and 1 + erf cancels for x < 0), exp(-x*x/2) underflows
    return tuple(math.sqrt(2) * e for e in _erf_edges(d))


def _gelu_tanh_edges(d: DType) -> tuple[float, ...]:
    # the tanh argument sqrt(2/pi) (x + 0.044715 x**3) saturates, and x**3 overflows
    return (3.0, 5.0, 10.0, 20.0, d.max ** (1 / 3))


def _mish_edges(d: DType) -> tuple[float, ...]:
    # softplus's switch at 20, tanh(softplus) rounding to 1, exp overflow
    return (*_softplus_edges(d), _tanh_edges(d)[1])


def _logaddexp_edges(d: DType) -> tuple[float, ...]:
    # exp(a) overflows or underflows; equal arguments (both variables at one edge)
    return (*_exp_edges(d), _ln(1 / d.unit_roundoff), 1000.0)


def _logaddexp2_edges(d: DType) -> tuple[float, ...]:
    return (*_exp2_edges(d), math.log2(1 / d.unit_roundoff), 1000.0)


def _xlogy_edges(d: DType) -> tuple[float, ...]:
    # x = 0 is every op's edge; y next to 0, 1 and huge
    return _log_edges(d)


def _xlog1py_edges(d: DType) -> tuple[float, ...]:
    return (*_log1p_edges(d), d.unit_roundoff)


def _powv_edges(d: DType) -> tuple[float, ...]:
    # a base next to 0 and huge; exponents where a**b over- or underflows
    return (d.tiny, d.max, 0.5, 2.0, math.log2(d.max), _ln(d.max))




def _remainder_edges(d: DType) -> tuple[float, ...]:
    # multiples of the plain divisors 0.75 and -1.5 (a/b an integer: the jumps); past
    # 2**bits every float is an integer and the quotient's rounding decides trunc/floor;
    # huge dividends (a/b and -trunc(a/b) overflow), tiny divisors
    return (0.75, 1.5, 2.25, 3.0, 4.5, 2.0 ** (d.bits + 1), d.max / 4, d.max, d.tiny)


def _sinc_edges(d: DType) -> tuple[float, ...]:
    # 0 (the removable singularity: every op's edge), its zeros at the integers, small
    # arguments where sin(pi x)/(pi x) is 1 to the last bit, and large ones
    return (0.5, 2.0, 3.0, math.sqrt(d.unit_roundoff), 2.0 ** (d.bits + 2), d.max / 4)


def _erfinv_edges(d: DType) -> tuple[float, ...]:
    # next to +-1, where erfinv grows without bound and its derivative overflows
    return (*_arcsine_edges(d), 0.5)


def _lgamma_edges(d: DType) -> tuple[float, ...]:
    # next to the pole at 0 (lgamma ~ -log x, derivative ~ -1/x overflows below 1/max);
    # its zeros 1 and 2; where x*log(x) overflows
    return (1 / d.max, d.unit_roundoff, 2.0, d.max / _ln(d.max), d.max)


def _digamma_edges(d: DType) -> tuple[float, ...]:
    # digamma ~ -1/x next to 0 (its derivative 1/x**2 overflows below 1/sqrt(max)); its
    # positive root; huge arguments
    return (1 / math.sqrt(d.max), 1 / d.max, 1.4616321449683622, 2.0, d.max)


def _bessel_edges(d: DType) -> tuple[float, ...]:
    # I_n(x) ~ exp(x)/sqrt(2 pi x) overflows a little past ln(max); tiny arguments
    x = _ln(d.max)
    for _ in range(4):
        x = _ln(d.max) + 0.5 * _ln(2 * math.pi * x)
    return (x, _ln(d.max), math.sqrt(d.unit_roundoff), 30.0)


def _i0e_edges(d: DType) -> tuple[float, ...]:
    # the kink at 0 (exp(-|x|)), large arguments where i0e ~ 1/sqrt(2 pi x)
    return (math.sqrt(d.unit_roundoff), 30.0, 1e4, d.max)


def _switch_edges(*points: float) -> Callable[[DType], tuple[float, ...]]:
    """Edges at fixed switch points (hardswish's +-3): the same in every dtype."""
    return lambda d: points


def _elu_edges(d: DType) -> tuple[float, ...]:
    # exp(x) - 1 rounds to -1 below ln(u); exp(x) underflows to subnormal, then to 0
    return (_ln(d.unit_roundoff), _ln(d.tiny), _ln(d.smallest_subnormal))


@dataclass(frozen=True)
class Op:
    """One operator: its builders, domain, smoothness and spelling.

    ``sympy_fn`` and ``torch_fn`` take the op's arguments (sympy expressions or torch
    tensors) and return the result. ``jax`` takes the ``jax`` module and returns the op's
    JAX function (JAX is optional, so it is looked up on first use); ``None``: no JAX
    kernel, and the JAX engines do not support the op. ``domain`` and ``kinks`` are margins (see the module
    docstring). ``infix``/``precedence`` drive the printer; ``ast_node`` is the Python
    operator node that spells the op in text (``None``: written as a call ``name(...)``).
    ``const_args`` lists argument positions the generator fills with constants only
    (the exponent of ``pow``); the parser accepts any expression there. ``params`` lists
    the tuples of constants (one per ``const_args`` position, in order) that generated
    trees and unit checks put there: the library's default first, then a few values users
    pass (elu's alpha 1, then 1/2, 2). Empty: each position is drawn from
    ``harness.strategies.EXPONENTS`` (pow's exponents).

    ``across(*args)``, for an op with a kink, gives the arguments mirrored to the other
    side of the break (abs: -x; max: the two swapped): the other branch's partials are
    the op's partials there. The oracle reads it where rounding may have put an argument
    on the other side (see ``harness.oracle``); a kink op without it is judged there as a
    jump is (any derivative between is accepted).

    ``roundings`` is the error of the forward value in unit roundoffs: 1 for a correctly
    rounded arithmetic op, 0 for exact ones (neg, abs, max, ...), ``LIBM`` for library
    functions. ``value_noise(args, out)``, where given, replaces ``roundings * |out|``
    with an absolute bound (in unit roundoffs) for an op whose intermediate roundings are
    not relative to its result (a sum of several terms, a determinant's cancelling
    products). ``formula_value_noise(args, out)`` is the same bound for the usual
    algorithms only, where a careful one keeps ``roundings`` ulps: digamma's and lgamma's
    series are accurate to a few ulps of their terms, not of a value next to a root
    (digamma(1.4616...) is about 1e-16 absolute off in float64, 1e8 ulps of its value); the
    formula tolerance takes the larger of the two, the ideal tolerance keeps ``roundings``.

    ``grad_noise(args, out, partials)`` bounds the rounding error, in units of the
    dtype's unit roundoff, that the usual backward formulas make when computing each
    partial derivative (the hull over formulas: tanh' as 1 - y**2 loses accuracy where
    |y| -> 1, sigmoid' as y*(1 - y), asin' through 1 - x*x). ``None`` means the formulas
    are accurate to a few roundings relative to the partial itself. A noise function that
    takes a keyword argument ``u`` is given the dtype's unit roundoff, for terms that are not
    linear in it (sinc's rounded angle pi x is off by u pi |x|, more than a radian past
    2**22 in float32, where sin's slope no longer bounds the change). ``grad2_noise`` is
    the same for the diagonal second derivatives of a unary op, where their formula
    cancels beyond what the first derivative's noise explains (sigmoid'' = y'(1 - 2y)
    near y = 1/2). ``hessian_noise`` is an absolute bound (n x n, in unit roundoffs) on
    every second partial, for an op whose second-order formulas produce rounding-sized
    numbers where the exact entry is 0 or tiny (det's Hessian through the inverse, std's
    cancelling terms, softmax's 1 - 2 s). ``hessian_formula_noise`` is the same for the usual
    formulas only, which the ideal tolerance leaves out (atan2's mixed partial by autograd
    through b/(a**2 + b**2): 1/r**2 - 2 b**2/r**4 cancels next to |a| = |b|, where
    (a - b)(a + b)/r**4 would not). ``conditioned``: ``grad_noise`` is what any
    method loses, not one formula's cancellation (an inverse's or a solve's partials carry
    about cond(A) ulps however they are computed), so the ideal tolerance, which otherwise
    allows a careful engine a few ulps per partial, keeps it. It is written with
    arithmetic and ``abs`` only, so it runs on numpy arrays and tensors alike; the
    oracle's rounding model reads it.

    ``edges(dtype)`` gives the op's special arguments in that dtype (see the functions
    above the class; :mod:`harness.edges` adds the ones every op shares).

    ``break_noise(*args)``, for a kink or jump op whose library finds its break from a
    rounded intermediate, bounds that rounding in the units of ``kinks`` per unit
    roundoff (fmod's backward takes trunc of the rounded a/b, so a/b an ulp below 3 may
    read as 3: a shift of a by about u |a|). Within it of the break the oracle accepts
    either side's derivative, as where an argument's own rounding may cross the break.
    ``max_arity``, for a variadic op, is the most arguments it takes (``arity`` is then
    the fewest: ``prod`` takes 2 to 9); ``None`` means exactly ``arity``. ``arity_step``
    is the spacing of a variadic op's counts: ``dot`` takes two halves of equal length,
    so 2, 4, 6 or 8 (step 2). Every builder,
    kernel, margin and noise function of a variadic row takes the arguments as ``*args``,
    and a node's own argument count is ``len(node.args)``. ``special_args(n, dtype)``
    gives whole argument tuples of length ``n`` where one argument at an edge is not
    enough: one and two zeros among prod's arguments, ties for amax, singular matrices
    for det (:mod:`harness.edges` puts them where the op's arguments are variables).
    ``formula_partials(order, args)``, for an op whose sympy partials of order 2 and 3
    take minutes to derive (the 3x3 eigenvalues' closed form), gives every partial of
    that order (keys: sorted argument positions) at float64 ``args``, to a few digits:
    the rounding model reads them where it would read the lambdified sympy partials, and
    the truth does not differentiate a tree holding the op as one sympy expression (its
    fallback where the chain rule or the power series cannot decide).
    """

    name: str
    arity: int
    sympy_fn: Callable[..., Any]
    torch_fn: Callable[..., Tensor]
    jax: Callable[[Any], Callable[..., Any]] | None = None
    domain: Margin = _unrestricted
    smoothness: Smoothness = Smoothness.ANALYTIC
    kinks: Margin | None = None
    complex_step: bool = True
    infix: str | None = None
    precedence: int = 100
    ast_node: type[ast.AST] | None = None
    const_args: tuple[int, ...] = ()
    params: tuple[tuple[Fraction, ...], ...] = ()
    grad_noise: GradNoise | None = None
    grad2_noise: GradNoise | None = None
    edges: Callable[[DType], tuple[float, ...]] | None = None
    roundings: float = LIBM
    across: Callable[..., tuple[Any, ...]] | None = None
    break_noise: Margin | None = None
    max_arity: int | None = None
    arity_step: int = 1
    hessian_noise: GradNoise2 | None = None
    hessian_formula_noise: GradNoise2 | None = None
    conditioned: bool = False
    value_noise: Callable[[tuple[Any, ...], Any], Any] | None = None
    formula_value_noise: Callable[[tuple[Any, ...], Any], Any] | None = None
    special_args: Callable[[int, DType], tuple[tuple[float, ...], ...]] | None = None
    formula_partials: Callable[[int, tuple[Any, ...]], Mapping[tuple[int, ...], Any]] | None = None
    doc: str = field(default="", compare=False)

    @property
    def arities(self) -> range:
        """The argument counts the op takes: ``arity`` alone, or ``arity..max_arity`` in
        steps of ``arity_step``."""
        top = self.max_arity if self.max_arity is not None else self.arity
        return range(self.arity, top + 1, self.arity_step)

    def arity_text(self) -> str:
        """The argument counts in words, for messages: ``2``, ``2 to 9`` or ``2, 4, 6 or 8``."""
        counts = self.arities
        low, high = counts[0], counts[-1]
        if low == high:
            return str(low)
        if self.arity_step == 1:
            return f"{low} to {high}"
        return ", ".join(str(n) for n in counts[:-1]) + f" or {high}"

    def __post_init__(self) -> None:
        if (self.smoothness is Smoothness.ANALYTIC) != (self.kinks is None):
            raise ValueError(f"op {self.name!r}: kinks must be given exactly when not analytic")
        if self.smoothness is not Smoothness.ANALYTIC and self.complex_step:
            raise ValueError(f"op {self.name!r}: complex step is invalid through a kink or jump")
        if self.across is not None and self.smoothness is not Smoothness.KINK:
            raise ValueError(f"op {self.name!r}: across is only for an op with kinks")
        if any(len(p) != len(self.const_args) for p in self.params):
            raise ValueError(f"op {self.name!r}: each params tuple needs one value per const_args position")
        if self.max_arity is not None and (self.max_arity < self.arity or self.const_args or self.infix):
            raise ValueError(
                f"op {self.name!r}: a variadic op needs max_arity >= arity and no constant "
                "arguments or infix spelling"
            )
        if self.arity_step < 1 or (self.arity_step > 1 and (
            self.max_arity is None or (self.max_arity - self.arity) % self.arity_step
        )):
            raise ValueError(
                f"op {self.name!r}: arity_step={self.arity_step} needs a variadic op whose "
                "max_arity is arity plus a multiple of it"
            )


def _sympy_relu(x: Any) -> Any:
    return sympy.Max(sympy.Integer(0), x)


def _sympy_sigmoid(x: Any) -> Any:
    return 1 / (1 + sympy.exp(-x))


def _sympy_softplus(x: Any) -> Any:
    return sympy.log(1 + sympy.exp(x))


# Precedences follow Python's grammar so the printer and the parser agree.
_ADD, _MUL, _NEG, _POW = 10, 20, 30, 40

_ROWS: tuple[Op, ...] = (
    # arithmetic
    Op(
        "add", 2, lambda a, b: a + b, torch.add, jax=lambda j: j.numpy.add, edges=_product_edges,
        roundings=1, infix="+", precedence=_ADD, ast_node=ast.Add, grad_noise=_exact_partials,
    ),
    Op(
        "sub", 2, lambda a, b: a - b, torch.sub, jax=lambda j: j.numpy.subtract, edges=_product_edges,
        roundings=1, infix="-", precedence=_ADD, ast_node=ast.Sub, grad_noise=_exact_partials,
    ),
    Op(
        "mul", 2, lambda a, b: a * b, torch.mul, jax=lambda j: j.numpy.multiply, edges=_product_edges,
        roundings=1, infix="*", precedence=_MUL, ast_node=ast.Mult, grad_noise=_exact_partials,
    ),
    Op(
        "div", 2, lambda a, b: a / b, torch.div, jax=lambda j: j.numpy.divide, edges=_quotient_edges,
        domain=_nonzero_second, roundings=1, grad_noise=_div_noise,
        infix="/", precedence=_MUL, ast_node=ast.Div,
    ),
    Op(
        "neg", 1, lambda a: -a, torch.neg, jax=lambda j: j.numpy.negative,
        roundings=0, infix="-", precedence=_NEG, ast_node=ast.USub, grad_noise=_exact_partials,
    ),
    Op(
        "pow", 2, lambda a, b: a**b, torch.pow, jax=lambda j: j.numpy.power,
        edges=_sqrt_edges, domain=_pow_domain,
        infix="**", precedence=_POW, ast_node=ast.Pow, const_args=(1,),
        doc="integer exponents on any base; other exponents on positive bases",
    ),
    # elementary analytic functions
    Op("exp", 1, sympy.exp, torch.exp, jax=lambda j: j.numpy.exp, edges=_exp_edges),
    Op("log", 1, sympy.log, torch.log, jax=lambda j: j.numpy.log, edges=_log_edges, domain=_positive),
    Op(
        "sqrt", 1, sympy.sqrt, torch.sqrt, jax=lambda j: j.numpy.sqrt,
        edges=_sqrt_edges, domain=_positive, roundings=1,
        grad_noise=_sqrt_noise,
    ),
    Op("sin", 1, sympy.sin, torch.sin, jax=lambda j: j.numpy.sin, edges=_trig_edges),
    Op("cos", 1, sympy.cos, torch.cos, jax=lambda j: j.numpy.cos, edges=_trig_edges),
    Op(
        "tan", 1, sympy.tan, torch.tan, jax=lambda j: j.numpy.tan,
        edges=_trig_edges, domain=_away_from_tan_poles,
    ),
    Op(
        "tanh", 1, sympy.tanh, torch.tanh, jax=lambda j: j.numpy.tanh,
        edges=_tanh_edges, grad_noise=_tanh_noise,
    ),
    Op(
        "sigmoid", 1, _sympy_sigmoid, torch.sigmoid, jax=lambda j: j.nn.sigmoid,
        edges=_sigmoid_edges, grad_noise=_sigmoid_noise,
        grad2_noise=_sigmoid_noise2,
    ),
    Op("atan", 1, sympy.atan, torch.atan, jax=lambda j: j.numpy.arctan, edges=_atan_edges),
    Op(
        "asin", 1, sympy.asin, torch.asin, jax=lambda j: j.numpy.arcsin,
        edges=_arcsine_edges, domain=_open_unit_interval,
        grad_noise=_arcsin_noise,
    ),
    Op(
        "acos", 1, sympy.acos, torch.acos, jax=lambda j: j.numpy.arccos,
        edges=_arcsine_edges, domain=_open_unit_interval,
        grad_noise=_arcsin_noise,
    ),
    Op("sinh", 1, sympy.sinh, torch.sinh, jax=lambda j: j.numpy.sinh, edges=_hyperbolic_edges),
    Op("cosh", 1, sympy.cosh, torch.cosh, jax=lambda j: j.numpy.cosh, edges=_hyperbolic_edges),
    Op(
        "log1p", 1, lambda x: sympy.log(1 + x), torch.log1p, jax=lambda j: j.numpy.log1p, edges=_log1p_edges,
        domain=_above_minus_one,
    ),
    Op(
        "expm1", 1, lambda x: sympy.exp(x) - 1, torch.expm1, jax=lambda j: j.numpy.expm1, edges=_expm1_edges,
        grad_noise=_expm1_noise,
    ),
    # torch has no complex erf, so complex step cannot run through it.
    Op(
        "erf", 1, sympy.erf, torch.erf, jax=lambda j: j.scipy.special.erf, edges=_erf_edges,
        complex_step=False, grad_noise=_erf_noise,
    ),
    # F.softplus returns x itself above threshold=20: torch's own documented shortcut,
    # which the harness reports as it finds it (about 2e-9 relative in float64).
    Op(
        "softplus", 1, _sympy_softplus, torch.nn.functional.softplus, jax=lambda j: j.nn.softplus,
        edges=_softplus_edges,
        complex_step=False,
        grad2_noise=_sigmoid_noise2,  # softplus' = z / (z + 1), differentiated: same cancellation
    ),
    # kinks: continuous, first derivative jumps
    Op(
        "abs", 1, sympy.Abs, torch.abs, jax=lambda j: j.numpy.abs, smoothness=Smoothness.KINK, roundings=0,
        kinks=_abs_distance, complex_step=False, across=_mirrored,
    ),
    Op(
        "relu", 1, _sympy_relu, torch.relu, jax=lambda j: j.nn.relu, smoothness=Smoothness.KINK, roundings=0,
        kinks=_abs_distance, complex_step=False, across=_mirrored,
    ),
    Op(
        "max", 2, sympy.Max, torch.maximum, jax=lambda j: j.numpy.maximum,
        smoothness=Smoothness.KINK, roundings=0,
        kinks=_tie_distance, complex_step=False, across=_swapped,
    ),
    Op(
        "min", 2, sympy.Min, torch.minimum, jax=lambda j: j.numpy.minimum,
        smoothness=Smoothness.KINK, roundings=0,
        kinks=_tie_distance, complex_step=False, across=_swapped,
    ),
    # jumps: derivative 0 almost everywhere (the seed's point about accuracy)
    Op(
        "floor", 1, sympy.floor, torch.floor, jax=lambda j: j.numpy.floor,
        smoothness=Smoothness.JUMP, roundings=0,
        kinks=_integer_distance, complex_step=False,
    ),
    Op(
        "sign", 1, sympy.sign, torch.sign, jax=lambda j: j.numpy.sign,
        smoothness=Smoothness.JUMP, roundings=0,
        kinks=_abs_distance, complex_step=False,
    ),
)


def _param(value: Any, name: str) -> float:
    """A constant parameter as the Python number torch's functional API takes. compile
    passes constants as numbers; a tensor is accepted when it holds one value only."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().reshape(-1)
        if flat.numel() == 0 or not bool((flat == flat[0]).all()):
            raise ValueError(f"{name} must be a constant number, got a tensor of several values")
        return float(flat[0])
    return float(value)


def _second_positive(a: Tensor, b: Tensor) -> Tensor:
    return b + 0 * a


def _second_above_minus_one(a: Tensor, b: Tensor) -> Tensor:
    return 1 + b + 0 * a


def _first_positive(a: Tensor, b: Tensor) -> Tensor:
    return a + 0 * b


def _above_one(x: Tensor) -> Tensor:
    return x - 1


def _unit_open(x: Tensor) -> Tensor:
    return torch.minimum(x, 1 - x)


def _origin_distance(a: Tensor, b: Tensor) -> Tensor:
    return torch.hypot(a, b)



def _distance_to(*points: float) -> Margin:
    """Kink margin of a unary op that switches formula at ``points``."""

    def margin(x: Tensor) -> Tensor:
        return torch.stack([(x - p).abs() for p in points]).amin(0)

    return margin


def _first_abs(x: Tensor, *params: Tensor) -> Tensor:
    return x.abs()


def _clamp_ties(x: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    return torch.minimum((x - lo).abs(), (torch.maximum(x, lo) - hi).abs())


def _softplus_switch(x: Tensor, beta: Tensor, threshold: Tensor) -> Tensor:
    return (beta * x - threshold).abs()


def _nonzero_second_of_three(x: Tensor, beta: Tensor, threshold: Tensor) -> Tensor:
    return beta.abs() + 0 * x


# torch's selu constants (float64), as exact rationals
_SELU_ALPHA = sympy.Rational(1.6732632423543772848170429916717)
_SELU_SCALE = sympy.Rational(1.0507009873554804934193349852946)

def _off_atan2_cut(y: Tensor, x: Tensor) -> Tensor:
    # distance to the branch cut x <= 0, y = 0 (where atan2 jumps by 2 pi) and the origin
    return torch.where(x > 0, torch.hypot(y, x), y.abs())


def _quotient_integer_distance(a: Tensor, b: Tensor) -> Tensor:
    # remainder jumps where a/b crosses any integer: the distance of a to the nearest
    # multiple of b
    return (a - b * torch.round(a / b)).abs()


def _quotient_nonzero_integer_distance(a: Tensor, b: Tensor) -> Tensor:
    # fmod jumps where a/b crosses a nonzero integer (trunc is 0 on both sides of 0)
    q = a / b
    n = torch.round(q)
    n = torch.where(n == 0, torch.where(q < 0, -1.0, 1.0).to(q.dtype), n)
    return (a - b * n).abs()


def _quotient_noise(a: Tensor, b: Tensor) -> Tensor:
    # the rounded a/b, and b times its truncation, are off by about u |a| in a's units
    return 2 * a.abs() + 0 * b


def _sympy_trunc(u: Any) -> Any:
    # trunc(u) = sign(u) floor(|u|): floor's jumps at the nonzero integers, none at 0
    return sympy.sign(u) * sympy.floor(sympy.Abs(u))


def _torch_xdivy(a: Tensor, b: Tensor) -> Tensor:
    # a / b, and 0 at a = b = 0; dividing by 1 there keeps d/da = 1/b wherever b != 0
    return a / torch.where((a == 0) & (b == 0), torch.ones_like(b), b)


def _jax_xdivy(j: Any) -> Callable[..., Any]:
    def xdivy(a: Any, b: Any) -> Any:
        return a / j.numpy.where((a == 0) & (b == 0), j.numpy.ones_like(b), b)

    return xdivy


R = sympy.Rational

_REACH_ROWS: tuple[Op, ...] = (
    # analytic, built from sympy classes the truth already has
    Op("asinh", 1, sympy.asinh, torch.asinh, jax=lambda j: j.numpy.arcsinh, edges=_atan_edges),
    Op(
        "acosh", 1, sympy.acosh, torch.acosh, jax=lambda j: j.numpy.arccosh,
        edges=_acosh_edges, domain=_above_one, grad_noise=_acosh_noise,
    ),
    Op(
        "atanh", 1, sympy.atanh, torch.atanh, jax=lambda j: j.numpy.arctanh,
        edges=_arcsine_edges, domain=_open_unit_interval, grad_noise=_atanh_noise,
        grad2_noise=_atanh_noise2,
    ),
    Op(
        "exp2", 1, lambda x: 2**x, torch.exp2, jax=lambda j: j.numpy.exp2, edges=_exp2_edges,
        grad_noise=_exp2_noise, formula_value_noise=_exp2_value_noise,
    ),
    Op(
        "log2", 1, lambda x: sympy.log(x) / sympy.log(2), torch.log2, jax=lambda j: j.numpy.log2,
        edges=_log_edges, domain=_positive,
    ),
    Op(
        "log10", 1, lambda x: sympy.log(x) / sympy.log(10), torch.log10, jax=lambda j: j.numpy.log10,
        edges=_log_edges, domain=_positive,
    ),
    Op(
        "rsqrt", 1, lambda x: 1 / sympy.sqrt(x), torch.rsqrt, jax=lambda j: j.lax.rsqrt,
        edges=_sqrt_edges, domain=_positive,
    ),
    Op(
        "reciprocal", 1, lambda x: 1 / x, torch.reciprocal, jax=lambda j: j.numpy.reciprocal,
        edges=_reciprocal_edges, domain=_abs_distance, roundings=1,
    ),
    Op(
        "square", 1, lambda x: x**2, torch.square, jax=lambda j: j.numpy.square,
        edges=_product_edges, roundings=1,
    ),
    Op(
        "erfc", 1, sympy.erfc, torch.erfc, jax=lambda j: j.scipy.special.erfc,
        edges=_erfc_edges, complex_step=False, grad_noise=_erf_noise,
    ),
    Op(
        "logit", 1, lambda x: sympy.log(x / (1 - x)), torch.logit, jax=lambda j: j.scipy.special.logit,
        edges=_logit_edges, domain=_unit_open, complex_step=False, grad2_noise=_reciprocal_product_noise2,
    ),
    Op(
        "logsigmoid", 1, lambda x: -sympy.log(1 + sympy.exp(-x)), torch.nn.functional.logsigmoid,
        jax=lambda j: j.nn.log_sigmoid, edges=_sigmoid_edges, complex_step=False,
        grad_noise=_logaddexp_noise,  # JAX: -softplus(-x), whose derivative is logaddexp's
        grad2_noise=_logsigmoid_noise2,
    ),
    Op(
        "silu", 1, lambda x: x / (1 + sympy.exp(-x)), torch.nn.functional.silu,
        jax=lambda j: j.nn.silu, edges=_sigmoid_edges,
        complex_step=False,  # torch's complex silu is off by 3e-8 at 40
        grad_noise=_silu_noise, grad2_noise=_silu_noise2,
    ),
    Op(
        "gelu", 1, lambda x: x * (1 + sympy.erf(x / sympy.sqrt(2))) / 2, torch.nn.functional.gelu,
        jax=lambda j: lambda x: j.nn.gelu(x, approximate=False), edges=_gelu_edges, complex_step=False,
        grad_noise=_gelu_noise, grad2_noise=_gelu_noise2,
    ),
    Op(
        "gelu_tanh", 1,
        lambda x: x * (1 + sympy.tanh(sympy.sqrt(2 / sympy.pi) * (x + R(44715, 10**6) * x**3))) / 2,
        lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
        jax=lambda j: lambda x: j.nn.gelu(x, approximate=True), edges=_gelu_tanh_edges,
        complex_step=False, grad_noise=_gelu_tanh_noise, grad2_noise=_gelu_tanh_noise2,
        doc="gelu with torch's approximate='tanh' (jax.nn.gelu's default)",
    ),
    Op(
        "mish", 1, lambda x: x * sympy.tanh(sympy.log(1 + sympy.exp(x))), torch.nn.functional.mish,
        jax=lambda j: j.nn.mish, edges=_mish_edges, complex_step=False,
        grad_noise=_mish_noise, grad2_noise=_mish_noise2,
    ),
    Op(
        "logaddexp", 2, lambda a, b: sympy.log(sympy.exp(a) + sympy.exp(b)), torch.logaddexp,
        jax=lambda j: j.numpy.logaddexp, edges=_logaddexp_edges,
        grad_noise=_logaddexp_noise, grad2_noise=_logaddexp_noise2,
        formula_value_noise=_logaddexp_value_noise,
        complex_step=False,  # torch's complex logaddexp(40 + ih, -3) is NaN
    ),
    Op(
        "logaddexp2", 2, lambda a, b: sympy.log(2**a + 2**b) / sympy.log(2), torch.logaddexp2,
        jax=lambda j: j.numpy.logaddexp2, edges=_logaddexp2_edges, complex_step=False,
        grad_noise=_logaddexp_noise, grad2_noise=_logaddexp_noise2,
        formula_value_noise=_logaddexp_value_noise,
    ),
    Op(
        "xlogy", 2, lambda a, b: a * sympy.log(b), torch.xlogy, jax=lambda j: j.scipy.special.xlogy,
        edges=_xlogy_edges, domain=_second_positive, complex_step=False,
        doc="x*log(y) for y > 0 (xlogy(0, y) = 0 there by the formula itself)",
    ),
    Op(
        "xlog1py", 2, lambda a, b: a * sympy.log(1 + b), torch.special.xlog1py,
        jax=lambda j: j.scipy.special.xlog1py, edges=_xlog1py_edges, domain=_second_above_minus_one,
        complex_step=False, doc="x*log1p(y) for y > -1",
    ),
    Op(
        "powv", 2, lambda a, b: a**b, torch.pow, jax=lambda j: j.numpy.power,
        edges=_powv_edges, domain=_first_positive, grad_noise=_powv_noise,
        hessian_noise=_powv_hessian_noise,
        doc="a**b with both operands variable, on a positive base; spelled powv(a, b) "
        "(a ** b in text is pow, whose exponent generated trees keep constant)",
    ),
    Op(
        "hypot", 2, lambda a, b: sympy.sqrt(a**2 + b**2), torch.hypot, jax=lambda j: j.numpy.hypot,
        edges=_product_edges, smoothness=Smoothness.KINK, kinks=_origin_distance,
        complex_step=False, roundings=LIBM, doc="a cone at the origin, smooth elsewhere",
        grad_noise=_hypot_noise, grad2_noise=_hypot_noise2,
    ),
    # special functions (their own sympy classes: one rule row each in truth/rules.py)
    Op(
        "sinc", 1, lambda x: Sinc(sympy.pi * x), torch.sinc, jax=lambda j: j.numpy.sinc,
        edges=_sinc_edges, formula_value_noise=_sinc_value_noise, grad_noise=_sinc_noise,
        grad2_noise=_sinc_noise2,
        doc="sin(pi x)/(pi x), 1 at 0 with every derivative there by the limit",
    ),
    Op(
        "erfinv", 1, sympy.erfinv, torch.erfinv, jax=lambda j: j.scipy.special.erfinv,
        edges=_erfinv_edges, domain=_open_unit_interval, complex_step=False, grad_noise=_erfinv_noise,
    ),
    Op(
        "lgamma", 1, sympy.loggamma, torch.lgamma, jax=lambda j: j.scipy.special.gammaln,
        edges=_lgamma_edges, domain=_positive, complex_step=False, grad_noise=_lgamma_noise,
        formula_value_noise=_lgamma_value_noise,
        doc="log(gamma(x)) for x > 0 (torch's log|gamma| for x < 0 is left out)",
    ),
    Op(
        "digamma", 1, lambda x: sympy.polygamma(0, x), torch.digamma,
        jax=lambda j: j.scipy.special.digamma, edges=_digamma_edges, domain=_positive,
        complex_step=False, formula_value_noise=_digamma_value_noise,
        doc="psi(x) = gamma'(x)/gamma(x) for x > 0",
    ),
    Op(
        "i0", 1, lambda x: sympy.besseli(0, x), torch.special.i0, jax=lambda j: j.scipy.special.i0,
        edges=_bessel_edges, complex_step=False, grad_noise=_i0e_noise, grad2_noise=_i0e_noise2,
    ),
    Op(
        "i1", 1, lambda x: sympy.besseli(1, x), torch.special.i1, jax=lambda j: j.scipy.special.i1,
        edges=_bessel_edges, complex_step=False, grad2_noise=_i1_noise2,
    ),
    Op(
        "i0e", 1, lambda x: sympy.exp(-sympy.Abs(x)) * sympy.besseli(0, x), torch.special.i0e,
        jax=lambda j: j.scipy.special.i0e, edges=_i0e_edges, smoothness=Smoothness.KINK,
        kinks=_abs_distance, complex_step=False, doc="exp(-|x|) i0(x): one-sided slopes -1 and 1 at 0",
        grad_noise=_i0e_noise, grad2_noise=_i0e_noise2,
    ),
    Op(
        "atan2", 2, sympy.atan2, torch.atan2, jax=lambda j: j.numpy.arctan2,
        edges=_product_edges, domain=_off_atan2_cut, complex_step=False,
        hessian_formula_noise=_atan2_hessian_noise,
        doc="atan2(y, x) off its branch cut x <= 0, y = 0",
    ),
    # kinks: continuous, first derivative jumps at the switch points
    Op(
        "hardtanh", 1, lambda x: sympy.Max(-1, sympy.Min(1, x)), torch.nn.functional.hardtanh,
        jax=lambda j: j.nn.hard_tanh, edges=_switch_edges(1.0), smoothness=Smoothness.KINK,
        kinks=_distance_to(-1.0, 1.0), complex_step=False, roundings=0,
    ),
    Op(
        "hardsigmoid", 1, lambda x: sympy.Max(0, sympy.Min(1, x / 6 + R(1, 2))),
        torch.nn.functional.hardsigmoid, jax=lambda j: j.nn.hard_sigmoid, edges=_switch_edges(3.0),
        smoothness=Smoothness.KINK, kinks=_distance_to(-3.0, 3.0), complex_step=False,
    ),
    Op(
        "hardswish", 1, lambda x: x * sympy.Max(0, sympy.Min(1, x / 6 + R(1, 2))),
        torch.nn.functional.hardswish, jax=lambda j: j.nn.hard_swish, edges=_switch_edges(3.0),
        smoothness=Smoothness.KINK, kinks=_distance_to(-3.0, 3.0), complex_step=False,
        grad_noise=_hardswish_noise,
    ),
    Op(
        "softsign", 1, lambda x: x / (1 + sympy.Abs(x)), torch.nn.functional.softsign,
        jax=lambda j: j.nn.soft_sign, edges=_atan_edges, smoothness=Smoothness.KINK,
        kinks=_abs_distance, complex_step=False, doc="second derivative jumps at 0",
        grad_noise=_softsign_noise, grad2_noise=_softsign_noise2,
    ),
    Op(
        "elu", 2, lambda x, a: sympy.Max(0, x) + a * (sympy.exp(sympy.Min(0, x)) - 1),
        lambda x, a: torch.nn.functional.elu(x, alpha=_param(a, "elu's alpha")),
        jax=lambda j: j.nn.elu, edges=_elu_edges, smoothness=Smoothness.KINK,
        kinks=_first_abs, complex_step=False, const_args=(1,),
        params=((Fraction(1),), (Fraction(1, 2),), (Fraction(2),)),
        doc="elu(x, alpha); alpha = 1 keeps the first derivative continuous, not the second",
    ),
    Op(
        "selu", 1, lambda x: _SELU_SCALE * (sympy.Max(0, x) + _SELU_ALPHA * (sympy.exp(sympy.Min(0, x)) - 1)),
        torch.nn.functional.selu, jax=lambda j: j.nn.selu, edges=_elu_edges,
        smoothness=Smoothness.KINK, kinks=_abs_distance, complex_step=False,
        doc="alpha and scale are torch's float64 constants, exactly",
    ),
    Op(
        "celu", 2, lambda x, a: sympy.Max(0, x) + a * (sympy.exp(sympy.Min(0, x) / a) - 1),
        lambda x, a: torch.nn.functional.celu(x, alpha=_param(a, "celu's alpha")),
        jax=lambda j: j.nn.celu, edges=_elu_edges, smoothness=Smoothness.KINK,
        kinks=_first_abs, complex_step=False, const_args=(1,),
        params=((Fraction(1),), (Fraction(1, 2),), (Fraction(2),)),
        domain=_nonzero_second, doc="celu(x, alpha), alpha != 0",
    ),
    Op(
        "leaky_relu", 2, lambda x, s: sympy.Max(0, x) + s * sympy.Min(0, x),
        lambda x, s: torch.nn.functional.leaky_relu(x, _param(s, "leaky_relu's negative_slope")),
        jax=lambda j: j.nn.leaky_relu, smoothness=Smoothness.KINK, kinks=_first_abs,
        complex_step=False, const_args=(1,), roundings=1,
        params=((Fraction(0.01),), (Fraction(0.2),), (Fraction(1, 2),)),
        doc="leaky_relu(x, negative_slope), torch's default slope 0.01 (its float64 value) first",
    ),
    Op(
        "clamp", 3, lambda x, lo, hi: sympy.Min(sympy.Max(x, lo), hi), torch.clamp,
        jax=lambda j: j.numpy.clip, smoothness=Smoothness.KINK, kinks=_clamp_ties,
        complex_step=False, roundings=0,
        doc="clamp(x, lo, hi) = min(max(x, lo), hi) with variable bounds (hi wins when lo > hi)",
    ),
    # jumps
    Op(
        "softplus_beta", 3,
        lambda x, beta, t: sympy.Heaviside(beta * x - t) * x
        + (1 - sympy.Heaviside(beta * x - t)) * sympy.log(1 + sympy.exp(beta * x)) / beta,
        lambda x, beta, t: torch.nn.functional.softplus(
            x, beta=_param(beta, "softplus's beta"), threshold=_param(t, "softplus's threshold")
        ),
        edges=_softplus_edges, smoothness=Smoothness.JUMP, kinks=_softplus_switch,
        complex_step=False, const_args=(1, 2), domain=_nonzero_second_of_three,
        params=((Fraction(1), Fraction(20)), (Fraction(2), Fraction(20)), (Fraction(1, 2), Fraction(20)),
                (Fraction(1), Fraction(1))),
        grad2_noise=_sigmoid_noise2,  # softplus'' = s (1 - s) with s -> 1: as softplus''s
        doc="softplus(x, beta, threshold) as torch defines it: x itself where beta*x > threshold, "
        "log(1 + exp(beta*x))/beta elsewhere (a jump of the value at the switch)",
    ),
    Op(
        "copysign", 2, lambda a, b: sympy.Abs(a) * sympy.sign(b), torch.copysign,
        jax=lambda j: j.numpy.copysign, domain=_nonzero_second, smoothness=Smoothness.KINK,
        kinks=_first_abs, complex_step=False, roundings=0,
        doc="|a| with the sign of b, for b != 0 (at b = +-0 the libraries read the sign bit "
        "of zero, which a point cannot carry); kink at a = 0",
    ),
    Op(
        "fmod", 2, lambda a, b: a - b * _sympy_trunc(a / b), torch.fmod, jax=lambda j: j.numpy.fmod,
        edges=_remainder_edges, domain=_nonzero_second, smoothness=Smoothness.JUMP,
        kinks=_quotient_nonzero_integer_distance, break_noise=_quotient_noise, complex_step=False,
        roundings=0,
        doc="a - b trunc(a/b) (C's fmod, exact in floating point), b != 0; jumps by b where "
        "a/b crosses a nonzero integer, 0 there by definition (the libraries' value); "
        "d/da = 1, d/db = -trunc(a/b) elsewhere",
    ),
    Op(
        "remainder", 2, lambda a, b: a - b * sympy.floor(a / b), torch.remainder,
        jax=lambda j: j.numpy.remainder, edges=_remainder_edges, domain=_nonzero_second,
        smoothness=Smoothness.JUMP, kinks=_quotient_integer_distance, break_noise=_quotient_noise,
        complex_step=False, roundings=1,
        doc="a - b floor(a/b) (Python's %: the sign of b), b != 0; jumps by b where a/b "
        "crosses an integer (0 included), 0 there by definition (the libraries' value); "
        "d/da = 1, d/db = -floor(a/b) elsewhere",
    ),
    Op(
        "xdivy", 2, lambda a, b: a / b, _torch_xdivy, jax=_jax_xdivy, edges=_quotient_edges,
        domain=_nonzero_second, roundings=1, grad_noise=_div_noise,
        doc="a/b for b != 0 (xdivy(0, b) = 0 there by the formula itself; the libraries' "
        "xdivy(0, 0) = 0 lies outside the domain); torch and JAX have no xdivy: the kernels "
        "divide by 1 where a = b = 0",
    ),
)


# ---- tensor ops (Reach II): reductions and small matrices through the real kernels -------
# Each is a scalar op of its arguments: the torch and JAX kernels stack the arguments into
# a vector (or a 2x2 / 3x3 matrix, row by row) and call the library's own reduction or
# linear algebra routine, so its own backward is what gets checked; the truth is the sympy
# form over the arguments. Variadic rows take 2 to MAX_VARIADIC arguments. inv, solve and
# cholesky are called as their _ex variants (the same kernels and derivatives, which
# return NaN or inf for a singular matrix instead of raising for the whole batch).

MAX_VARIADIC = 9
"""The most arguments a variadic op (``sum``, ``prod``, ``logsumexp``, ...) takes."""


def _stacked(xs: tuple[Any, ...], lib: Any = torch) -> Any:
    """The arguments (broadcast to one shape) as the last axis of one array."""
    if lib is torch:
        return torch.stack(torch.broadcast_tensors(*xs), -1)
    return lib.stack(lib.broadcast_arrays(*xs), -1)


def _square(xs: tuple[Any, ...], k: int, lib: Any = torch) -> Any:
    """The ``k*k`` arguments as a k x k matrix, row by row, in the last two axes."""
    v = _stacked(xs, lib)
    return v.reshape(*v.shape[:-1], k, k)


def _sym2(a: Any, b: Any, c: Any, lib: Any = torch) -> Any:
    """The symmetric matrix [[a, b], [b, c]] (b fills both off-diagonal places)."""
    return _square((a, b, b, c), 2, lib)


def _sym3(a: Any, b: Any, c: Any, d: Any, e: Any, f: Any, lib: Any = torch) -> Any:
    """The symmetric matrix [[a, b, c], [b, d, e], [c, e, f]] (its upper triangle, row by row)."""
    return _square((a, b, c, b, d, e, c, e, f), 3, lib)


def _eig3_form(k: int) -> Callable[..., Any]:
    """The sympy form of eigenvalue ``k`` (0 the largest, 1 the smallest) of the symmetric
    3x3 [[a, b, c], [b, d, e], [c, e, f]]: the trigonometric solution of the characteristic
    cubic, written in exact polynomials of the entries. With t = tr A, A' = 3A - t I,
    S = tr(A'**2) and G = det(A'), the eigenvalues are (t + 2 sqrt(S/6) cos(phi + 2 pi k/3))
    / 3 with phi = atan2(sqrt(S**3 - 54 G**2), sqrt(54) G) / 3. S**3 - 54 G**2 is 0 exactly
    where an eigenvalue repeats (a ball holding only 0, not a cancellation), so the value
    is certified at the smooth side of such a point; the derivative there is not (the
    sqrt's), and at the tie the op's own value is a kink anyway."""

    def form(a: Any, b: Any, c: Any, d: Any, e: Any, f: Any) -> Any:
        t = a + d + f
        a1, d1, f1, b1, c1, e1 = 3 * a - t, 3 * d - t, 3 * f - t, 3 * b, 3 * c, 3 * e
        s = a1**2 + d1**2 + f1**2 + 2 * (b1**2 + c1**2 + e1**2)
        g = _det3_form(a1, b1, c1, b1, d1, e1, c1, e1, f1)
        phi = sympy.atan2(sympy.sqrt(s**3 - 54 * g**2), sympy.sqrt(54) * g) / 3
        return (t + 2 * sympy.sqrt(s / 6) * sympy.cos(phi + 2 * sympy.pi * k / 3)) / 3

    return form


def _halves_of(xs: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The first and the second half of the arguments (dot's x and y)."""
    return xs[: len(xs) // 2], xs[len(xs) // 2 :]


def _halves(xs: tuple[Any, ...], lib: Any = torch) -> tuple[Any, Any]:
    """The two halves of the arguments, each stacked along the last axis."""
    v = _stacked(xs, lib)
    n = len(xs) // 2
    return v[..., :n], v[..., n:]


def _trace(xs: tuple[Any, ...], k: int) -> Tensor:
    """The trace of the k x k matrix of ``xs``: torch.trace takes one matrix, not a batch."""
    return torch.diagonal(_square(xs, k), dim1=-2, dim2=-1).sum(-1)


def _reduce(name: str, **kw: Any) -> Callable[..., Tensor]:
    fn = getattr(torch, name)
    return lambda *xs: fn(_stacked(xs), -1, **kw)


def _jax_reduce(path: str, **kw: Any) -> Callable[[Any], Callable[..., Any]]:
    def make(j: Any) -> Callable[..., Any]:
        fn = j
        for attr in path.split("."):
            fn = getattr(fn, attr)
        return lambda *xs: fn(_stacked(xs, j.numpy), axis=-1, **kw)

    return make


def _np_stack(xs: tuple[Any, ...]) -> Any:
    import numpy as np

    return np.stack(np.broadcast_arrays(*(np.asarray(x) for x in xs)), -1)


def _sum_abs(xs: tuple[Any, ...]) -> Any:
    return sum(abs(x) for x in xs)


def _max_abs(xs: tuple[Any, ...]) -> Any:
    import numpy as np

    return np.max(np.abs(_np_stack(xs)), axis=-1)


def _sum_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    # each addition rounds relative to a partial sum, at most sum |x_i| (pairwise or not)
    return len(args) * _sum_abs(args)


def _mean_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    return (len(args) + 1) * _sum_abs(args) / len(args)


_SUBNORMAL_SPACING = 2.0**-125
"""The spacing of the subnormals in unit roundoffs, in float32 and bfloat16 (2**-1021 in
float64): a result that small carries up to that much absolute error."""


def _prod_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # the product of the other n - 1 arguments: n roundings; as out / x_i (torch without
    # zeros), also the rounding of a subnormal out, relative to out
    rel = _SUBNORMAL_SPACING / (abs(y) + (y == 0))
    return tuple(abs(pj) * (len(args) + 2 + rel) for pj in p)


def _prod_hessian_formula_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> Noise2:
    # torch's backward out / x_i, differentiated again along x_i: d/dx_i (out / x_i) =
    # p_i / x_i - out / x_i**2, two terms of size |p_i / x_i| that cancel to the exact 0
    # (3.7e-9 for prod(x, y)'' at x = 47.9 in float32); the product of the others has none
    import numpy as np

    diagonal = []
    for x, pj in zip(args, p, strict=True):
        x = np.asarray(x)
        with np.errstate(all="ignore"):
            term = np.abs(np.asarray(pj) / np.where(x != 0, x, 1))
        diagonal.append(np.where(x != 0, 2 * (len(args) + 2) * term, 0.0))
    n = len(args)
    return tuple(tuple(diagonal[j] if j == k else 0.0 * diagonal[j] for k in range(n)) for j in range(n))


def _logsumexp_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    # m + log(sum exp(x_i - m)): the subtraction rounds relative to |m|
    return LIBM * (abs(y) + _max_abs(args) + len(args))


def _logsumexp_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # exp(x_i - out): the rounding of x_i - out is amplified by |x_i|, |out|
    return tuple(abs(pj) * (LIBM + len(args) + abs(a) + abs(y)) for a, pj in zip(args, p, strict=True))


def _softmax_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # s_0 (delta_0j - s_j): delta - s cancels where s_0 -> 1; exp(x - max) amplifies |x|
    big = _max_abs(args)
    return tuple((LIBM + len(args)) * (abs(pj) + abs(y)) * (1 + big) for pj in p)


def _log_softmax_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # delta_0j - s_j with s_j = exp(x_j - lse): cancels where s_0 -> 1
    big = _max_abs(args)
    return tuple((LIBM + len(args)) * (abs(pj) + 1) * (1 + big) for pj in p)


def _log_softmax_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    return LIBM * (abs(y) + 2 * _max_abs(args) + len(args))


def _norm2_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # x_i / norm: the norm's own roundings (one per term) and the division's
    rel = 2.0**-1074 / (abs(y) + (y == 0)) / 2.0**-53  # a subnormal norm, as hypot's
    return tuple(abs(pj) * (LIBM + len(args) + rel) for pj in p)


def _norm2_noise2(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # 1/n - x_i**2/n**3: the terms cancel where x_i dominates
    return tuple((LIBM + 3 + len(args)) * 2 / abs(y) for _ in p)


def _moments(args: tuple[Any, ...]) -> tuple[Any, Any]:
    n = len(args)
    mean = sum(args) / n
    return mean, sum((a - mean) ** 2 for a in args) / (n - 1)


def _var_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    # the mean's rounding (relative to mean |x|) enters every deviation
    n = len(args)
    scale = _sum_abs(args) / n
    return 4 * n * (abs(y) + scale * abs(y) ** 0.5)


def _var_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # 2 (x_i - mean) / (n - 1): the deviation carries the mean's rounding
    n = len(args)
    scale = _sum_abs(args) / n
    return tuple(abs(pj) * (LIBM + n) + 2 * n * scale / (n - 1) for pj in p)


def _std_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    # sqrt of a variance whose absolute error is about n u scale**2: sqrt(n u) scale at worst
    n = len(args)
    scale = _sum_abs(args) / n
    return LIBM * abs(y) + 4 * n * scale * scale / (abs(y) + scale * 2.0**-26 + (scale == 0))


def _std_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # (x_i - mean) / ((n - 1) std): the deviation's and std's errors over std
    n = len(args)
    scale = _sum_abs(args) / n
    ratio = scale / (abs(y) + scale * 2.0**-26 + (scale == 0))
    return tuple((abs(pj) + 1) * (LIBM + 4 * n * ratio * ratio) for pj in p)


def _det2_form(a: Any, b: Any, c: Any, d: Any) -> Any:
    return a * d - b * c


def _det3_form(*m: Any) -> Any:
    a, b, c, d, e, f, g, h, i = m
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


def _det_terms(args: tuple[Any, ...]) -> Any:
    """The permanent of |A|: the sum of the magnitudes of det's terms."""
    s = tuple(abs(x) for x in args)
    if len(s) == 4:
        return s[0] * s[3] + s[1] * s[2]
    a, b, c, d, e, f, g, h, i = s
    return a * (e * i + f * h) + b * (d * i + f * g) + c * (d * h + e * g)


def _det_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    # LU with partial pivoting: a few roundings per term, relative to the terms' sizes
    return 4 * len(args) * _det_terms(args) + LIBM * abs(y)


def _det_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # cofactors through det * inv(A)^T or an LU solve: relative to the cofactors' terms
    k = 2 if len(args) == 4 else 3
    scale = _max_abs(args) ** (k - 1) * (k - 1)
    return tuple(4 * len(args) * (abs(pj) + scale) for pj in p)


def _logabsdet_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # the entries of inv(A)^T, each accurate to cond(A) u relative to the largest one
    big = _max_abs(p)
    cond = _max_abs(args) * big * 3
    return tuple(4 * len(args) * (abs(pj) + big) * (1 + cond) for pj in p)


def _matrix_size(args: tuple[Any, ...]) -> int:
    """k for the k x k matrix leading ``args``: 2 for det2, inv2_01, solve2_0 (4 or 6
    arguments), 3 for the 3x3 ops (9 or 12)."""
    return 2 if len(args) in (4, 6) else 3


def _rhs_scale(args: tuple[Any, ...]) -> Any:
    """The largest right-hand side entry of a solve (the arguments after the matrix), or 0."""
    k = _matrix_size(args)
    return _max_abs(args[k * k :]) if len(args) > k * k else 0


def _inverse_scale(args: tuple[Any, ...]) -> tuple[Any, Any]:
    """A bound on the largest entry of inv(A) for the k x k A leading ``args`` (its
    largest cofactor over |det|), and cond(A)."""
    k = _matrix_size(args)
    m = args[: k * k]
    det = abs(_det2_form(*m) if k == 2 else _det3_form(*m))
    big = _max_abs(m) ** (k - 1) * (k - 1) / (det + (det == 0))
    return big, _max_abs(m) * big * k


def _inverse_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # -inv e_i x_j (solve) and -inv e_i e_j^T inv (inv): inv's entries carry cond(A) u
    # relative to its largest entry; solve's other components x_j are up to k big |rhs|
    big, cond = _inverse_scale(args)
    spread = big * (big * (1 + _rhs_scale(args)) + 1 + abs(y))
    return tuple(4 * len(args) * (abs(pj) + spread) * (1 + cond) for pj in p)


def _inverse_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    big, cond = _inverse_scale(args)
    return 4 * len(args) * (abs(y) + big * (1 + _rhs_scale(args))) * (1 + cond)


def _eig_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # the eigenvectors' products, accurate relative to |A| / gap: a repeated eigenvalue
    # (the kink) makes them arbitrary there
    import numpy as np

    a, b, c = args
    gap = np.hypot((a - c) / 2, b)
    big = _max_abs(args)
    return tuple(LIBM * 8 * (1 + big / (gap + (gap == 0))) for _ in p)


def _eig3_half_gap(args: tuple[Any, ...], top: bool) -> Any:
    """Half the distance from the largest (``top``) or the smallest eigenvalue of the
    symmetric 3x3 with upper triangle ``args`` to the next one (numpy, float64); NaN
    where an entry is not finite."""
    import numpy as np

    gaps = _eig3_gaps(*(torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in args))
    return gaps[..., 1 if top else 0].numpy()


def _eig3_noise(top: bool) -> GradNoise:
    """The 3x3 eigenvalue's partials (products of its eigenvector's entries), accurate
    relative to |A| / gap as the 2x2's (:func:`_eig_noise`), with more roundings."""

    def noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
        gap = _eig3_half_gap(args, top)
        big = _max_abs(args)
        return tuple(LIBM * 16 * (1 + big / (gap + (gap == 0))) for _ in p)

    return noise


def _eig3_hessian_noise(top: bool) -> GradNoise2:
    """v_i v_j / (l_k - l_m) terms, as the 2x2's (:func:`_eig_hessian_noise`)."""

    def noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> Noise2:
        gap = _eig3_half_gap(args, top)
        big = _max_abs(args)
        rel = big / (gap + (gap == 0))
        return _everywhere(16 * LIBM * (1 + rel) * (1 + rel) / (big + (big == 0)), 6)

    return noise


_SYMMETRIC3 = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
"""The 3x3 eigenvalue ops' arguments: the upper triangle's entries, row by row."""


def _eig3_partials(k: int) -> Callable[[int, tuple[Any, ...]], dict[tuple[int, ...], Any]]:
    """Partials of eigenvalue ``k`` (ascending order) of the symmetric 3x3 with upper
    triangle ``args``, from its eigendecomposition A = V diag(l) V^T (numpy, float64):
    first d l_k = v_k^T E_i v_k, second 2 sum_m (v_k^T E_i v_m)(v_m^T E_j v_k) / (l_k - l_m)
    over the other eigenvalues m, third by central differences of the second (a step of
    1e-6 |A|: a few digits, what a noise bound needs). E_i is the symmetric unit matrix of
    argument i. NaN where an entry is not finite or an eigenvalue repeats."""
    import numpy as np

    def directional(args: tuple[Any, ...]) -> tuple[Any, Any, Any]:
        flat = np.asarray(_np_stack(args), dtype=np.float64).reshape(-1, 6)
        finite = np.asarray(np.isfinite(flat).all(axis=1))
        a, b, c, d, e, f = np.where(finite[:, None], flat, 0.0).T
        values, vectors = np.linalg.eigh(_sym3(a, b, c, d, e, f, np))
        # u[p, i, a, b] = v_a^T E_i v_b
        u = np.stack(
            [
                vectors[:, r, :, None] * vectors[:, c, None, :]
                + (vectors[:, c, :, None] * vectors[:, r, None, :] if r != c else 0.0)
                for r, c in _SYMMETRIC3
            ],
            axis=1,
        )
        return values, u, finite

    def second(args: tuple[Any, ...]) -> Any:
        values, u, finite = directional(args)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = sum(
                2 * u[:, :, k, m, None] * u[:, None, :, m, k] / (values[:, k] - values[:, m])[:, None, None]
                for m in range(3)
                if m != k
            )
        return np.where(finite[:, None, None], out, np.nan)

    def partials(order: int, args: tuple[Any, ...]) -> dict[tuple[int, ...], Any]:
        shape = np.broadcast_shapes(*(np.shape(a) for a in args))
        if order == 1:
            _, u, finite = directional(args)
            table = np.where(finite[:, None], u[:, :, k, k], np.nan)
            return {(i,): table[:, i].reshape(shape) for i in range(6)}
        if order == 2:
            table = second(args)
            return {(i, j): table[:, i, j].reshape(shape) for i in range(6) for j in range(i, 6)}
        if order != 3:
            raise ValueError(f"order={order!r}: the 3x3 eigenvalue partials go to order 3")
        flat = [np.broadcast_to(np.asarray(a, dtype=np.float64), shape).reshape(-1) for a in args]
        step = 1e-6 * np.maximum(np.max(np.abs(np.stack(flat)), axis=0), 1e-300)
        slopes = []
        for along in range(6):
            moved = [[a + sign * step if i == along else a for i, a in enumerate(flat)] for sign in (1, -1)]
            slopes.append((second(tuple(moved[0])) - second(tuple(moved[1]))) / (2 * step)[:, None, None])
        return {
            (i, j, h): slopes[h][:, i, j].reshape(shape)
            for i in range(6) for j in range(i, 6) for h in range(j, 6)
        }

    return partials


def _eig_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    # a symmetric eigensolver's eigenvalues are accurate relative to |A|, not to each
    # eigenvalue: the small one of [[1e8, 1], [1, 1e-8]] carries 1e8 * eps
    return LIBM * 4 * (abs(y) + len(args) * _max_abs(args))


def _factor_partials_noise(p: tuple[Any, ...], y: Any, ratio: Any, ulps: float) -> tuple[Any, ...]:
    """A Cholesky entry y's partials: ``ulps`` library roundings of |p_j| + 1/|y| (its
    backward divides by y), amplified by ``ratio``, how much of what was computed cancels."""
    return tuple(LIBM * ulps * (abs(pj) + 1 / abs(y)) * (1 + ratio) for pj in p)


def _cholesky_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    # c - b**2/a cancels as the matrix nears singular: error relative to c over y**2
    a, b, c = args
    return _factor_partials_noise(p, y, (abs(c) + b * b / abs(a)) / (y * y + (y == 0)), 4)


def _cholesky_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    a, b, c = args
    return LIBM * 4 * (abs(y) + (abs(c) + b * b / abs(a)) / (abs(y) + (y == 0)))


def _second_pivot(args: tuple[Any, ...]) -> Any:
    """|d - b**2/a|, L11**2 of the 3x3 [[a, b, c], [b, d, e], [c, e, f]], and 1 where it is
    0 (a divisor that must not be 0)."""
    a, b, c, d, e, f = args
    pivot = abs(d - b * b / a)
    return pivot + (pivot == 0)


def _cholesky3_spread(args: tuple[Any, ...], y: Any) -> Any:
    """f - L20**2 - L21**2 = L22**2 cancels as the matrix nears singular: the size of what
    cancels, |f| + L20**2 + L21**2, over L22**2 (1 for a diagonal matrix)."""
    a, b, c, d, e, f = args
    l21_sq = (e - b * c / a) ** 2 / _second_pivot(args)
    return (abs(f) + c * c / abs(a) + l21_sq) / (y * y + (y == 0))


def _cholesky3_ratio(args: tuple[Any, ...], y: Any) -> Any:
    """How much the backward's triangular solves amplify roundings: L22's cancellation
    times the second pivot's, times the size of the first column over a."""
    a, b, c, d, e, f = args
    second = (abs(d) + b * b / abs(a)) / _second_pivot(args)
    return _cholesky3_spread(args, y) * (1 + second) * (1 + abs(b) / abs(a) + abs(c) / abs(a))


def _cholesky3_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> tuple[Any, ...]:
    return _factor_partials_noise(p, y, _cholesky3_ratio(args, y), 8)


def _cholesky3_hessian_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> Noise2:
    # second partials of order |p|**2 / L22 that cancel to a small entry (d2/dc de at
    # [[2, 1, 1], [1, 2, 1], [1, 1, 1 + 2**-20]] is 1.7e-6 from terms near 1)
    big = _max_abs(p)
    scale = big * big / (abs(y) + (y == 0)) + big
    return _everywhere(LIBM * 8 * len(args) * scale * (1 + _cholesky3_ratio(args, y)), len(args))


def _cholesky3_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    return LIBM * 8 * abs(y) * (1 + _cholesky3_spread(args, y))


def _everywhere(bound: Any, n: int) -> Noise2:
    return ((bound,) * n,) * n


def _softmax_hessian_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> Noise2:
    # s0 (d - s)(d - s) - s0 s (d - s): terms of size s0 (1 + |x|) that cancel (1 - 2 s)
    return _everywhere(4 * (LIBM + len(args)) * abs(y) * (1 + _max_abs(args)), len(args))


def _log_softmax_hessian_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> Noise2:
    return _everywhere(4 * (LIBM + len(args)) * (1 + _max_abs(args)), len(args))


def _std_hessian_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> Noise2:
    # (1 - 1/n) / ((n - 1) std) - (x - m)**2 / ((n - 1)**2 std**3): cancels
    n = len(args)
    scale = _sum_abs(args) / n
    ratio = scale / (abs(y) + scale * 2.0**-26 + (scale == 0))
    return _everywhere(4 * (LIBM + n) * (1 + ratio * ratio) / (abs(y) + (y == 0)), n)


def _matrix_hessian_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> Noise2:
    # det, log|det|, inv and solve differentiated twice through inv(A): each entry
    # carries cond(A) u relative to the largest term, inv's entries squared times y
    import numpy as np

    k = _matrix_size(args)
    big_a = _max_abs(args[: k * k])
    inv, cond = _inverse_scale(args)
    rhs = _rhs_scale(args)
    scale = np.maximum(_max_abs(p) * (inv + 1), inv * inv * (1 + abs(y) + rhs)) + big_a ** (k - 2)
    return _everywhere(8 * len(args) * scale * (1 + cond), len(args))


def _eig_hessian_noise(args: tuple[Any, ...], y: Any, p: tuple[Any, ...]) -> Noise2:
    # v_i v_j / (l1 - l2) terms: relative error |A| / gap each, on entries of size 1/gap
    import numpy as np

    a, b, c = args
    gap = np.hypot((a - c) / 2, b)
    big = _max_abs(args)
    rel = big / (gap + (gap == 0))
    return _everywhere(8 * LIBM * (1 + rel) * (1 + rel) / (big + (big == 0)), 3)


def _dot_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    # n products, each rounded, summed: every rounding relative to at most sum |x_i y_i|
    n = len(args) // 2
    return (n + 1) * _sum_abs(tuple(a * b for a, b in zip(args[:n], args[n:], strict=True)))


def _trace_value_noise(args: tuple[Any, ...], y: Any) -> Any:
    # the sum of the k diagonal entries
    k = _matrix_size(args)
    return k * _sum_abs(args[:: k + 1])


def _gap(values: Tensor) -> Tensor:
    """The distance between the largest and the second largest along the last axis."""
    top = values.topk(2, -1).values
    return top[..., 0] - top[..., 1]


def _top_tie(*xs: Tensor) -> Tensor:
    return _gap(_stacked(xs))


def _bottom_tie(*xs: Tensor) -> Tensor:
    return _gap(-_stacked(xs))


def _abs_tie(*xs: Tensor) -> Tensor:
    return _gap(_stacked(xs).abs())


def _smallest_abs(*xs: Tensor) -> Tensor:
    return _stacked(xs).abs().amin(-1)


def _vector_norm(*xs: Tensor) -> Tensor:
    return torch.linalg.vector_norm(_stacked(xs), dim=-1)


def _spread(*xs: Tensor) -> Tensor:
    return torch.std(_stacked(xs), -1)


def _abs_det2(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> Tensor:
    return (a * d - b * c).abs()


def _solve2_domain(a: Tensor, b: Tensor, c: Tensor, d: Tensor, e: Tensor, f: Tensor) -> Tensor:
    return _abs_det2(a, b, c, d)


def _abs_det3(*m: Tensor) -> Tensor:
    return _det3_form(*m).abs()


def _solve3_domain(*m: Tensor) -> Tensor:
    return _abs_det3(*m[:9])


def _eig_gap(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    return torch.hypot((a - c) / 2, b)


def _eig3_gaps(*m: Tensor) -> Tensor:
    """Half the gaps between the ascending eigenvalues of the symmetric 3x3 with upper
    triangle ``m`` (torch.linalg.eigvalsh: exactly 0 at a diagonal matrix's repeated
    entries), shape (..., 2); NaN where an entry is not finite."""
    full = torch.broadcast_tensors(*(torch.as_tensor(x, dtype=torch.float64) for x in m))
    finite = torch.stack([torch.isfinite(x) for x in full], -1).all(-1)
    safe = [torch.where(finite, x, torch.zeros_like(x)) for x in full]
    values = torch.linalg.eigvalsh(_sym3(*safe))
    gaps = (values[..., 1:] - values[..., :-1]) / 2
    return torch.where(finite[..., None], gaps, torch.full_like(gaps, math.nan))


def _eig3_top_gap(*m: Tensor) -> Tensor:
    return _eig3_gaps(*m)[..., 1]


def _eig3_bottom_gap(*m: Tensor) -> Tensor:
    return _eig3_gaps(*m)[..., 0]


def _spd(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    # the smaller eigenvalue of [[a, b], [b, c]]
    return (a + c) / 2 - torch.hypot((a - c) / 2, b)


def _spd3(a: Tensor, b: Tensor, c: Tensor, d: Tensor, e: Tensor, f: Tensor) -> Tensor:
    # the smallest of the three pivots a, d - b**2/a and det / (a d - b**2): all three are
    # positive exactly where the matrix is positive definite (Sylvester's criterion)
    minor = a * d - b * b
    det = _det3_form(a, b, c, b, d, e, c, e, f)
    second = torch.where(a > 0, minor / a, minor)
    third = torch.where(minor > 0, det / minor, det)
    return torch.minimum(torch.minimum(a, second), third)


def _eig3_row(top: bool) -> Op:
    """The row of the largest (``top``) or the smallest eigenvalue of the symmetric 3x3
    with upper triangle a, b, c / d, e / f: torch.linalg.eigvalsh's last or first."""
    index, which = (2, "largest") if top else (0, "smallest")
    return Op(
        f"eigvalsh3_{'max' if top else 'min'}", 6, _eig3_form(0 if top else 1),
        lambda a, b, c, d, e, f: torch.linalg.eigvalsh(_sym3(a, b, c, d, e, f))[..., index],
        jax=lambda j: lambda a, b, c, d, e, f: j.numpy.linalg.eigvalsh(
            _sym3(a, b, c, d, e, f, j.numpy)
        )[..., index],
        edges=_product_edges, smoothness=Smoothness.KINK, kinks=_eig3_top_gap if top else _eig3_bottom_gap,
        complex_step=False, grad_noise=_eig3_noise(top), value_noise=_eig_value_noise,
        special_args=_eig3_special, conditioned=True, hessian_noise=_eig3_hessian_noise(top),
        formula_partials=_eig3_partials(index),
        doc=f"the {which} eigenvalue of the symmetric 3x3 with upper triangle a, b, c / d, e / f "
        f"by torch.linalg.eigvalsh; a kink where the two {which} repeat",
    )


_OTHERS = (0.75, -1.5, 2.0, 1.25, -0.5, 3.0, 0.25, -2.0, 1.5)


def _with(n: int, **at: float) -> tuple[float, ...]:
    """Plain arguments with the given positions (``p0=...``, modulo ``n``) replaced."""
    out = list(_OTHERS[:n])
    for key, value in at.items():
        out[int(key[1:]) % n] = value
    return tuple(out)


def _zeros_special(n: int, d: DType) -> tuple[tuple[float, ...], ...]:
    # one zero at each position, two zeros, all zeros (prod's backward as prod / x
    # divides 0 by 0), and one zero beside arguments whose product overflows
    big = math.sqrt(d.max) * 2
    return (
        *(_with(n, **{f"p{k}": 0.0}) for k in range(n)),
        _with(n, p0=0.0, p1=0.0),
        _with(n, p0=0.0, p2=0.0),
        (0.0,) * n,
        (0.0,) + (big,) * (n - 1),
        (d.tiny,) * n,
    )


def _ties_special(n: int, d: DType) -> tuple[tuple[float, ...], ...]:
    # ties at the top and at the bottom, all equal, a tie of magnitudes (norm-inf), zeros
    return (
        _with(n, p0=4.0, p1=4.0),
        _with(n, p0=-4.0, p1=-4.0),
        _with(n, p0=4.0, p1=-4.0),
        _with(n, **{"p1": 4.0, f"p{n - 1}": 4.0}),
        (1.0,) * n,
        (0.0,) * n,
    )


def _huge_special(n: int, d: DType) -> tuple[tuple[float, ...], ...]:
    # logsumexp / softmax: entries whose exp overflows or underflows, equal or apart
    ln_max = _ln(d.max)
    return (
        (1000.0,) * n,
        _with(n, p0=1000.0),
        _with(n, p0=-1000.0),
        (ln_max,) * n,
        _with(n, p0=ln_max + 1),
        _with(n, p1=d.max),
        _with(n, p0=-d.max),
        (0.0,) * n,
        _with(n, p0=-1000.0, p1=-1000.0),
    )


def _norm_special(n: int, d: DType) -> tuple[tuple[float, ...], ...]:
    # the zero vector (the cone's tip), vectors whose squares underflow or overflow
    return (
        (0.0,) * n,
        _with(n, p0=0.0),
        (d.smallest_subnormal,) * n,
        (d.tiny,) * n,
        (math.sqrt(d.tiny) / 2,) * n,
        (d.max / 4,) * n,
        (1.0,) * n,
    )


def _spread_special(n: int, d: DType) -> tuple[tuple[float, ...], ...]:
    # all equal (std's cone), nearly equal, large equal offsets
    return (
        (1.0,) * n,
        (0.0,) * n,
        (1.0,) * (n - 1) + (1.0 + d.eps,),
        (1e4,) * (n - 1) + (1e4 + 1.0,),
        (math.sqrt(d.max) / 4,) * n,
    )


def _singular2(d: DType) -> tuple[tuple[float, ...], ...]:
    return (
        (1.0, 2.0, 2.0, 4.0),
        (1.0, 2.0, 3.0, 6.0),
        (0.0, 0.0, 0.0, 1.0),
        (1.0, 1.0, 1.0, 1.0),
        (0.0, 0.0, 0.0, 0.0),
        (1.0, 2.0, 2.0, 4.0 + 4 * d.eps),
        (1.0, 0.0, 0.0, 1.0),
        (d.tiny, 0.0, 0.0, d.tiny),
    )


def _matrix2_special(n: int, d: DType) -> tuple[tuple[float, ...], ...]:
    # singular (rank 1 and 0), near-singular, the identity; solve's right-hand side (1, 2)
    return tuple(m + (1.0, 2.0)[: n - 4] for m in _singular2(d))


def _singular3(d: DType) -> tuple[tuple[float, ...], ...]:
    return (
        (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0),  # rank 2: every cofactor nonzero
        (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0),  # rank 2, diagonal
        (1.0,) * 9,  # rank 1: the cofactors vanish too
        (0.0,) * 9,
        (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0 + 8 * d.eps),  # nearly singular
        (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
        (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0),  # a zero pivot: LU must swap rows
        (0.0, 2.0, 1.0, 1.0, 0.0, 3.0, 2.0, 1.0, 0.0),  # zero diagonal, det 11
    )


def _matrix3_special(n: int, d: DType) -> tuple[tuple[float, ...], ...]:
    # singular (rank 2, 1, 0), near-singular, the identity, pivoting; solve's right-hand
    # side (1, 2, -1)
    return tuple(m + (1.0, 2.0, -1.0)[: n - 9] for m in _singular3(d))


def _dot_special(n: int, d: DType) -> tuple[tuple[float, ...], ...]:
    # orthogonal halves (a zero result from cancelling products), a zero half, products
    # that overflow or underflow
    half = n // 2
    alternate = tuple((1.0, -1.0)[i % 2] for i in range(half))
    orthogonal = alternate[:-1] + (0.0,) if half % 2 else alternate
    big = math.sqrt(d.max) * 2
    return (
        (1.0,) * half + orthogonal,
        (0.0,) * half + _OTHERS[:half],
        (0.0,) * n,
        (big,) * n,
        (d.tiny,) * n,
    )


def _below_a_power_of_two(d: DType) -> float:
    # the float below 1024: [[v, v], [v, v]] has the eigenvalue 2v, the float below 2048,
    # where adding 1 rounds (JAX's eigh JVP guarded its diagonal with 1 + w - w)
    return 1024.0 * (1.0 - d.eps / 2)


def _eig_special(n: int, d: DType) -> tuple[tuple[float, ...], ...]:
    # a repeated eigenvalue (the cone's tip), nearly repeated, the zero matrix, and a
    # simple eigenvalue just below a power of two
    v = _below_a_power_of_two(d)
    return (
        (1.0, 0.0, 1.0), (1.0, d.eps, 1.0), (0.0, 0.0, 0.0), (2.0, 0.0, 2.0 + 4 * d.eps), (1.0, 1.0, 1.0),
        (v, v, v),
    )


def _eig3_special(n: int, d: DType) -> tuple[tuple[float, ...], ...]:
    # the upper triangle a, b, c / d, e / f: the two smaller eigenvalues repeated, the two
    # larger repeated (diagonal, and rotated: [[1.5, -0.5], [-0.5, 1.5]] beside 2), all
    # three (the identity), nearly repeated, the zero matrix, a coupled ordinary one, and
    # the largest, 2v, just below a power of two (beside 0 and 1)
    v = _below_a_power_of_two(d)
    return (
        (2.0, 0.0, 0.0, 1.0, 0.0, 1.0),
        (1.0, 0.0, 0.0, 2.0, 0.0, 2.0),
        (1.5, -0.5, 0.0, 1.5, 0.0, 2.0),
        (1.0, 0.0, 0.0, 1.0, 0.0, 1.0),
        (2.0, 0.0, 0.0, 2.0 + 4 * d.eps, d.eps, 1.0),
        (0.0,) * 6,
        (4.0, 1.0, -1.0, 3.0, 0.5, 2.0),
        (v, v, 0.0, v, 0.0, 1.0),
    )


def _spd_special(n: int, d: DType) -> tuple[tuple[float, ...], ...]:
    # nearly singular positive definite matrices, the identity, tiny and huge diagonals
    return (
        (1.0, 1.0 - math.sqrt(d.eps), 1.0),
        (1.0, 1.0 - 16 * d.eps, 1.0),
        (1.0, 0.0, 1.0),
        (d.tiny, 0.0, d.tiny),
        (d.max / 4, 0.0, d.max / 4),
    )


def _spd3_special(n: int, d: DType) -> tuple[tuple[float, ...], ...]:
    # nearly singular positive definite 3x3 matrices (the second pivot about 2 sqrt(eps),
    # the last 32 eps),
    # the identity, a coupled well-conditioned one, tiny and huge diagonals
    # (the upper triangle row by row: a, b, c, d, e, f)
    near = 1.0 - math.sqrt(d.eps)
    return (
        (1.0, near, 0.0, 1.0, 0.0, 1.0),
        (1.0, 0.0, 1.0, 1.0, 1.0, 2.0 + 32 * d.eps),
        (1.0, 0.0, 0.0, 1.0, 0.0, 1.0),
        (4.0, 1.0, -1.0, 3.0, 0.5, 2.0),
        (d.tiny, 0.0, 0.0, d.tiny, 0.0, d.tiny),
        (d.max / 4, 0.0, 0.0, d.max / 4, 0.0, d.max / 4),
    )


_TENSOR_ROWS: tuple[Op, ...] = (
    # reductions over the arguments
    Op(
        "sum", 2, lambda *xs: sympy.Add(*xs), _reduce("sum"), jax=_jax_reduce("numpy.sum"),
        max_arity=MAX_VARIADIC, edges=_product_edges, roundings=0, value_noise=_sum_value_noise,
        grad_noise=_exact_partials, doc="torch.sum of the stacked arguments",
    ),
    Op(
        "mean", 2, lambda *xs: sympy.Add(*xs) / len(xs), _reduce("mean"), jax=_jax_reduce("numpy.mean"),
        max_arity=MAX_VARIADIC, edges=_product_edges, roundings=0, value_noise=_mean_value_noise,
        doc="torch.mean of the stacked arguments",
    ),
    Op(
        "prod", 2, lambda *xs: sympy.Mul(*xs), _reduce("prod"), jax=_jax_reduce("numpy.prod"),
        max_arity=MAX_VARIADIC, edges=_product_edges, roundings=MAX_VARIADIC, grad_noise=_prod_noise,
        special_args=_zeros_special, complex_step=True, hessian_formula_noise=_prod_hessian_formula_noise,
        doc="torch.prod of the stacked arguments; special points: one, two and all zeros",
    ),
    Op(
        "logsumexp", 2, lambda *xs: sympy.log(sympy.Add(*(sympy.exp(x) for x in xs))), _reduce("logsumexp"),
        jax=_jax_reduce("scipy.special.logsumexp"), max_arity=MAX_VARIADIC, edges=_logaddexp_edges,
        value_noise=_logsumexp_value_noise, grad_noise=_logsumexp_noise, grad2_noise=_logaddexp_noise2,
        special_args=_huge_special, complex_step=False,
        doc="torch.logsumexp; special points: huge, equal and underflowing entries",
    ),
    Op(
        "softmax0", 2,
        lambda *xs: sympy.exp(xs[0]) / sympy.Add(*(sympy.exp(x) for x in xs)),
        lambda *xs: torch.softmax(_stacked(xs), -1)[..., 0],
        jax=lambda j: lambda *xs: j.nn.softmax(_stacked(xs, j.numpy), axis=-1)[..., 0],
        max_arity=MAX_VARIADIC, edges=_logaddexp_edges, grad_noise=_softmax_noise,
        grad2_noise=_softmax_noise, special_args=_huge_special, complex_step=False,
        hessian_noise=_softmax_hessian_noise,
        doc="the first component of torch.softmax of the stacked arguments",
    ),
    Op(
        "log_softmax0", 2,
        lambda *xs: xs[0] - sympy.log(sympy.Add(*(sympy.exp(x) for x in xs))),
        lambda *xs: torch.log_softmax(_stacked(xs), -1)[..., 0],
        jax=lambda j: lambda *xs: j.nn.log_softmax(_stacked(xs, j.numpy), axis=-1)[..., 0],
        max_arity=MAX_VARIADIC, edges=_logaddexp_edges, grad_noise=_log_softmax_noise,
        grad2_noise=_log_softmax_noise, value_noise=_log_softmax_value_noise,
        special_args=_huge_special, complex_step=False,
        hessian_noise=_log_softmax_hessian_noise,
        doc="the first component of torch.log_softmax of the stacked arguments",
    ),
    Op(
        "cumsum1", 2, lambda *xs: xs[0] + xs[1], lambda *xs: torch.cumsum(_stacked(xs), -1)[..., 1],
        jax=lambda j: lambda *xs: j.numpy.cumsum(_stacked(xs, j.numpy), axis=-1)[..., 1],
        max_arity=MAX_VARIADIC, edges=_product_edges, roundings=1, grad_noise=_exact_partials,
        doc="the second component of torch.cumsum (x0 + x1; later arguments do not enter)",
    ),
    Op(
        "cumprod1", 2, lambda *xs: xs[0] * xs[1], lambda *xs: torch.cumprod(_stacked(xs), -1)[..., 1],
        jax=lambda j: lambda *xs: j.numpy.cumprod(_stacked(xs, j.numpy), axis=-1)[..., 1],
        max_arity=MAX_VARIADIC, edges=_product_edges, roundings=1, grad_noise=_prod_noise,
        special_args=_zeros_special, complex_step=True, hessian_formula_noise=_prod_hessian_formula_noise,
        doc="the second component of torch.cumprod (x0 x1; later arguments, zeros among "
        "them, must get a zero derivative)",
    ),
    Op(
        "var", 2, lambda *xs: sympy.Add(*((x - sympy.Add(*xs) / len(xs)) ** 2 for x in xs)) / (len(xs) - 1),
        _reduce("var"), jax=_jax_reduce("numpy.var", ddof=1), max_arity=MAX_VARIADIC,
        edges=_product_edges, value_noise=_var_value_noise, grad_noise=_var_noise,
        special_args=_spread_special, complex_step=False,
        doc="torch.var (unbiased: divides by n - 1)",
    ),
    Op(
        "std", 2,
        lambda *xs: sympy.sqrt(
            sympy.Add(*((x - sympy.Add(*xs) / len(xs)) ** 2 for x in xs)) / (len(xs) - 1)
        ),
        _reduce("std"), jax=_jax_reduce("numpy.std", ddof=1), max_arity=MAX_VARIADIC,
        edges=_product_edges, smoothness=Smoothness.KINK, kinks=_spread, complex_step=False,
        value_noise=_std_value_noise, grad_noise=_std_noise, special_args=_spread_special,
        hessian_noise=_std_hessian_noise,
        doc="torch.std (unbiased); a cone where all arguments are equal",
    ),
    # reductions with kinks
    Op(
        "amax", 2, lambda *xs: sympy.Max(*xs), _reduce("amax"), jax=_jax_reduce("numpy.max"),
        max_arity=MAX_VARIADIC, smoothness=Smoothness.KINK, kinks=_top_tie, complex_step=False,
        roundings=0, special_args=_ties_special, edges=_product_edges,
        doc="torch.amax; a kink where the largest arguments tie",
    ),
    Op(
        "amin", 2, lambda *xs: sympy.Min(*xs), _reduce("amin"), jax=_jax_reduce("numpy.min"),
        max_arity=MAX_VARIADIC, smoothness=Smoothness.KINK, kinks=_bottom_tie, complex_step=False,
        roundings=0, special_args=_ties_special, edges=_product_edges,
        doc="torch.amin; a kink where the smallest arguments tie",
    ),
    Op(
        "norm1", 2, lambda *xs: sympy.Add(*(sympy.Abs(x) for x in xs)),
        lambda *xs: torch.linalg.vector_norm(_stacked(xs), 1, -1),
        jax=lambda j: lambda *xs: j.numpy.linalg.norm(_stacked(xs, j.numpy), 1, axis=-1),
        max_arity=MAX_VARIADIC, smoothness=Smoothness.KINK, kinks=_smallest_abs, complex_step=False,
        value_noise=_sum_value_noise, grad_noise=_exact_partials, special_args=_norm_special,
        edges=_product_edges, doc="torch.linalg.vector_norm with ord 1; kinks where an argument is 0",
    ),
    Op(
        "norm2", 2, lambda *xs: sympy.sqrt(sympy.Add(*(x**2 for x in xs))),
        lambda *xs: torch.linalg.vector_norm(_stacked(xs), 2, -1),
        jax=lambda j: lambda *xs: j.numpy.linalg.norm(_stacked(xs, j.numpy), 2, axis=-1),
        max_arity=MAX_VARIADIC, smoothness=Smoothness.KINK, kinks=_vector_norm, complex_step=False,
        roundings=LIBM + MAX_VARIADIC, grad_noise=_norm2_noise, grad2_noise=_norm2_noise2,
        special_args=_norm_special, edges=_product_edges,
        doc="torch.linalg.vector_norm with ord 2; a cone at the zero vector",
    ),
    Op(
        "norminf", 2, lambda *xs: sympy.Max(*(sympy.Abs(x) for x in xs)),
        lambda *xs: torch.linalg.vector_norm(_stacked(xs), math.inf, -1),
        jax=lambda j: lambda *xs: j.numpy.linalg.norm(_stacked(xs, j.numpy), math.inf, axis=-1),
        max_arity=MAX_VARIADIC, smoothness=Smoothness.KINK, kinks=_abs_tie, complex_step=False,
        roundings=0, special_args=_ties_special, edges=_product_edges,
        doc="torch.linalg.vector_norm with ord inf; kinks where the largest magnitudes tie",
    ),
    Op(
        "dot", 2, lambda *xs: sympy.Add(*(a * b for a, b in zip(*_halves_of(xs), strict=True))),
        lambda *xs: torch.linalg.vecdot(*_halves(xs)),
        jax=lambda j: lambda *xs: j.numpy.vecdot(*_halves(xs, j.numpy)),
        max_arity=MAX_VARIADIC - MAX_VARIADIC % 2, arity_step=2, edges=_product_edges,
        roundings=0, value_noise=_dot_value_noise, grad_noise=_exact_partials,
        special_args=_dot_special, complex_step=False,
        doc="torch.linalg.vecdot of the first half of the arguments with the second half "
        "(an even count: dot(a, b, c, d) = a c + b d); complex step off, vecdot conjugates",
    ),
    # small matrices from their entries, row by row
    Op(
        "trace2", 4, lambda a, b, c, d: a + d, lambda *m: _trace(m, 2),
        jax=lambda j: lambda *m: j.numpy.trace(_square(m, 2, j.numpy), axis1=-2, axis2=-1),
        edges=_product_edges, roundings=0, value_noise=_trace_value_noise,
        grad_noise=_exact_partials, special_args=_matrix2_special, complex_step=True,
        doc="the trace of [[a, b], [c, d]]: the sum of torch.diagonal",
    ),
    Op(
        "trace3", 9, lambda *m: m[0] + m[4] + m[8], lambda *m: _trace(m, 3),
        jax=lambda j: lambda *m: j.numpy.trace(_square(m, 3, j.numpy), axis1=-2, axis2=-1),
        edges=_product_edges, roundings=0, value_noise=_trace_value_noise,
        grad_noise=_exact_partials, special_args=_matrix3_special, complex_step=True,
        doc="the trace of a 3x3 matrix given row by row: the sum of torch.diagonal",
    ),
    Op(
        "det2", 4, _det2_form, lambda *m: torch.linalg.det(_square(m, 2)),
        jax=lambda j: lambda *m: j.numpy.linalg.det(_square(m, 2, j.numpy)),
        edges=_product_edges, value_noise=_det_value_noise, grad_noise=_det_noise,
        special_args=_matrix2_special, complex_step=True,
        hessian_noise=_matrix_hessian_noise,
        doc="torch.linalg.det of [[a, b], [c, d]]; special points: singular matrices",
    ),
    Op(
        "det3", 9, _det3_form, lambda *m: torch.linalg.det(_square(m, 3)),
        jax=lambda j: lambda *m: j.numpy.linalg.det(_square(m, 3, j.numpy)),
        edges=_product_edges, value_noise=_det_value_noise, grad_noise=_det_noise,
        special_args=_matrix3_special, complex_step=True,
        hessian_noise=_matrix_hessian_noise,
        doc="torch.linalg.det of a 3x3 matrix given row by row",
    ),
    Op(
        "logabsdet2", 4, lambda a, b, c, d: sympy.log(sympy.Abs(_det2_form(a, b, c, d))),
        lambda *m: torch.linalg.slogdet(_square(m, 2))[1],
        jax=lambda j: lambda *m: j.numpy.linalg.slogdet(_square(m, 2, j.numpy))[1],
        edges=_product_edges, domain=_abs_det2, conditioned=True, grad_noise=_logabsdet_noise,
        special_args=_matrix2_special, complex_step=False,
        hessian_noise=_matrix_hessian_noise,
        doc="the log|det| of torch.linalg.slogdet of [[a, b], [c, d]], det != 0",
    ),
    Op(
        "logabsdet3", 9, lambda *m: sympy.log(sympy.Abs(_det3_form(*m))),
        lambda *m: torch.linalg.slogdet(_square(m, 3))[1],
        jax=lambda j: lambda *m: j.numpy.linalg.slogdet(_square(m, 3, j.numpy))[1],
        edges=_product_edges, domain=_abs_det3, conditioned=True, grad_noise=_logabsdet_noise,
        special_args=_matrix3_special, complex_step=False,
        hessian_noise=_matrix_hessian_noise,
        doc="the log|det| of torch.linalg.slogdet of a 3x3 matrix, det != 0",
    ),
    Op(
        "inv2_01", 4, lambda a, b, c, d: -b / _det2_form(a, b, c, d),
        lambda *m: torch.linalg.inv_ex(_square(m, 2)).inverse[..., 0, 1],
        jax=lambda j: lambda *m: j.numpy.linalg.inv(_square(m, 2, j.numpy))[..., 0, 1],
        edges=_product_edges, domain=_abs_det2, conditioned=True, grad_noise=_inverse_noise,
        value_noise=_inverse_value_noise, special_args=_matrix2_special, complex_step=True,
        hessian_noise=_matrix_hessian_noise,
        doc="entry (0, 1) of torch.linalg.inv of [[a, b], [c, d]], det != 0",
    ),
    Op(
        "solve2_0", 6, lambda a, b, c, d, e, f: (d * e - b * f) / _det2_form(a, b, c, d),
        lambda *m: torch.linalg.solve_ex(_square(m[:4], 2), _stacked(m[4:])).result[..., 0],
        jax=lambda j: lambda *m: j.numpy.linalg.solve(
            _square(m[:4], 2, j.numpy), _stacked(m[4:], j.numpy)[..., None]
        )[..., 0, 0],
        edges=_product_edges, domain=_solve2_domain, conditioned=True, grad_noise=_inverse_noise,
        value_noise=_inverse_value_noise, special_args=_matrix2_special, complex_step=True,
        hessian_noise=_matrix_hessian_noise,
        doc="the first component of torch.linalg.solve([[a, b], [c, d]], [e, f]), det != 0",
    ),
    Op(
        "inv3_01", 9, lambda *m: (m[2] * m[7] - m[1] * m[8]) / _det3_form(*m),
        lambda *m: torch.linalg.inv_ex(_square(m, 3)).inverse[..., 0, 1],
        jax=lambda j: lambda *m: j.numpy.linalg.inv(_square(m, 3, j.numpy))[..., 0, 1],
        edges=_product_edges, domain=_abs_det3, conditioned=True, grad_noise=_inverse_noise,
        value_noise=_inverse_value_noise, special_args=_matrix3_special, complex_step=True,
        hessian_noise=_matrix_hessian_noise,
        doc="entry (0, 1) of torch.linalg.inv of a 3x3 matrix given row by row, det != 0",
    ),
    Op(
        "solve3_0", 12,
        lambda *m: _det3_form(m[9], m[1], m[2], m[10], m[4], m[5], m[11], m[7], m[8]) / _det3_form(*m[:9]),
        lambda *m: torch.linalg.solve_ex(_square(m[:9], 3), _stacked(m[9:])).result[..., 0],
        jax=lambda j: lambda *m: j.numpy.linalg.solve(
            _square(m[:9], 3, j.numpy), _stacked(m[9:], j.numpy)[..., None]
        )[..., 0, 0],
        edges=_product_edges, domain=_solve3_domain, conditioned=True, grad_noise=_inverse_noise,
        value_noise=_inverse_value_noise, special_args=_matrix3_special, complex_step=True,
        hessian_noise=_matrix_hessian_noise,
        doc="the first component of torch.linalg.solve(A, [j, k, l]) for the 3x3 A given "
        "row by row in a..i, det != 0 (Cramer's rule for the truth)",
    ),
    Op(
        "cholesky2_11", 3, lambda a, b, c: sympy.sqrt(c - b**2 / a),
        lambda a, b, c: torch.linalg.cholesky_ex(_sym2(a, b, c)).L[..., 1, 1],
        jax=lambda j: lambda a, b, c: j.numpy.linalg.cholesky(_sym2(a, b, c, j.numpy))[..., 1, 1],
        edges=_product_edges, domain=_spd, grad_noise=_cholesky_noise,
        value_noise=_cholesky_value_noise, special_args=_spd_special, complex_step=False,
        doc="entry (1, 1) of torch.linalg.cholesky of [[a, b], [b, c]], positive definite",
    ),
    Op(
        "cholesky3_22", 6,
        lambda a, b, c, d, e, f: sympy.sqrt(_det3_form(a, b, c, b, d, e, c, e, f) / (a * d - b**2)),
        lambda a, b, c, d, e, f: torch.linalg.cholesky_ex(_sym3(a, b, c, d, e, f)).L[..., 2, 2],
        jax=lambda j: lambda a, b, c, d, e, f: j.numpy.linalg.cholesky(
            _sym3(a, b, c, d, e, f, j.numpy)
        )[..., 2, 2],
        edges=_product_edges, domain=_spd3, conditioned=True, grad_noise=_cholesky3_noise,
        value_noise=_cholesky3_value_noise, special_args=_spd3_special, complex_step=False,
        hessian_noise=_cholesky3_hessian_noise,
        doc="entry (2, 2) of torch.linalg.cholesky of the symmetric 3x3 matrix with upper "
        "triangle a, b, c / d, e / f, positive definite: sqrt(det(A) / det(A[:2, :2]))",
    ),
    Op(
        "eigvalsh2_max", 3, lambda a, b, c: (a + c) / 2 + sympy.sqrt(((a - c) / 2) ** 2 + b**2),
        lambda a, b, c: torch.linalg.eigvalsh(_sym2(a, b, c))[..., 1],
        jax=lambda j: lambda a, b, c: j.numpy.linalg.eigvalsh(_sym2(a, b, c, j.numpy))[..., 1],
        edges=_product_edges, smoothness=Smoothness.KINK, kinks=_eig_gap, complex_step=False,
        grad_noise=_eig_noise, special_args=_eig_special,
        hessian_noise=_eig_hessian_noise,
        doc="the larger eigenvalue of [[a, b], [b, c]] by torch.linalg.eigvalsh; a cone where "
        "the eigenvalues repeat",
    ),
    Op(
        "eigvalsh2_min", 3, lambda a, b, c: (a + c) / 2 - sympy.sqrt(((a - c) / 2) ** 2 + b**2),
        lambda a, b, c: torch.linalg.eigvalsh(_sym2(a, b, c))[..., 0],
        jax=lambda j: lambda a, b, c: j.numpy.linalg.eigvalsh(_sym2(a, b, c, j.numpy))[..., 0],
        edges=_product_edges, smoothness=Smoothness.KINK, kinks=_eig_gap, complex_step=False,
        grad_noise=_eig_noise, special_args=_eig_special,
        hessian_noise=_eig_hessian_noise,
        doc="the smaller eigenvalue of [[a, b], [b, c]] by torch.linalg.eigvalsh",
    ),
    _eig3_row(top=True),
    _eig3_row(top=False),
)


def _index(rows: tuple[Op, ...]) -> Mapping[str, Op]:
    table: dict[str, Op] = {}
    for row in rows:
        if row.name in table:
            raise ValueError(f"op table: duplicate op name {row.name!r}")
        table[row.name] = row
    return MappingProxyType(table)


OPS: Mapping[str, Op] = _index(_ROWS + _REACH_ROWS + _TENSOR_ROWS)
"""Every op by name. Read-only: add an op by adding a row to ``_ROWS``."""

ANALYTIC_OPS: tuple[str, ...] = tuple(
    o.name for o in OPS.values() if o.smoothness is Smoothness.ANALYTIC
)
KINK_OPS: tuple[str, ...] = tuple(o.name for o in OPS.values() if o.smoothness is Smoothness.KINK)
JUMP_OPS: tuple[str, ...] = tuple(o.name for o in OPS.values() if o.smoothness is Smoothness.JUMP)
DEFAULT_OPS: tuple[str, ...] = tuple(o.name for o in _ROWS if o.smoothness is Smoothness.ANALYTIC)
"""Ops the generator uses unless told otherwise: the core analytic ops. Kinks and jumps
are opt-in, and so are the reach ops (:data:`REACH_OPS`: ``--ops all`` or by name)."""
REACH_OPS: tuple[str, ...] = tuple(o.name for o in _REACH_ROWS + _TENSOR_ROWS)
"""The library ops where real derivative bugs were found (sinc, logaddexp, hardswish, ...),
each at its special points; not in :data:`DEFAULT_OPS`, so default runs are unchanged.
Includes :data:`TENSOR_OPS`."""
TENSOR_OPS: tuple[str, ...] = tuple(o.name for o in _TENSOR_ROWS)
"""The reductions and small-matrix ops (prod, logsumexp, det2, ...): scalar ops of their
arguments whose kernels stack them and call the library's tensor routine."""

INFIX_BY_AST: Mapping[type[ast.AST], str] = MappingProxyType(
    {o.ast_node: o.name for o in _ROWS if o.ast_node is not None and o.arity == 2}
)
"""Python binary-operator node -> op name, for the parser."""

UNARY_BY_AST: Mapping[type[ast.AST], str] = MappingProxyType(
    {o.ast_node: o.name for o in _ROWS if o.ast_node is not None and o.arity == 1}
)
"""Python unary-operator node -> op name, for the parser."""


def op(name: str) -> Op:
    """Look up an op by name, with an error that lists the known ones."""
    try:
        return OPS[name]
    except KeyError:
        known = ", ".join(sorted(OPS))
        raise KeyError(f"op={name!r} is not in the op table; known ops: {known}") from None
