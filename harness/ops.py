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
from types import MappingProxyType
from typing import Any

import sympy
import torch

from harness.dtypes import DType

__all__ = [
    "OPS",
    "Op",
    "Smoothness",
    "ANALYTIC_OPS",
    "DEFAULT_OPS",
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
    (the exponent of ``pow``); the parser accepts any expression there.

    ``across(*args)``, for an op with a kink, gives the arguments mirrored to the other
    side of the break (abs: -x; max: the two swapped): the other branch's partials are
    the op's partials there. The oracle reads it where rounding may have put an argument
    on the other side (see ``harness.oracle``).

    ``roundings`` is the error of the forward value in unit roundoffs: 1 for a correctly
    rounded arithmetic op, 0 for exact ones (neg, abs, max, ...), ``LIBM`` for library
    functions.

    ``grad_noise(args, out, partials)`` bounds the rounding error, in units of the
    dtype's unit roundoff, that the usual backward formulas make when computing each
    partial derivative (the hull over formulas: tanh' as 1 - y**2 loses accuracy where
    |y| -> 1, sigmoid' as y*(1 - y), asin' through 1 - x*x). ``None`` means the formulas
    are accurate to a few roundings relative to the partial itself. ``grad2_noise`` is
    the same for the diagonal second derivatives of a unary op, where their formula
    cancels beyond what the first derivative's noise explains (sigmoid'' = y'(1 - 2y)
    near y = 1/2). It is written with
    arithmetic and ``abs`` only, so it runs on numpy arrays and tensors alike; the
    oracle's rounding model reads it.

    ``edges(dtype)`` gives the op's special arguments in that dtype (see the functions
    above the class; :mod:`harness.edges` adds the ones every op shares).
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
    grad_noise: GradNoise | None = None
    grad2_noise: GradNoise | None = None
    edges: Callable[[DType], tuple[float, ...]] | None = None
    roundings: float = LIBM
    across: Callable[..., tuple[Any, ...]] | None = None
    doc: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if (self.smoothness is Smoothness.ANALYTIC) != (self.kinks is None):
            raise ValueError(f"op {self.name!r}: kinks must be given exactly when not analytic")
        if self.smoothness is not Smoothness.ANALYTIC and self.complex_step:
            raise ValueError(f"op {self.name!r}: complex step is invalid through a kink or jump")
        if (self.smoothness is Smoothness.KINK) != (self.across is not None):
            raise ValueError(f"op {self.name!r}: across must be given exactly for an op with kinks")


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


def _index(rows: tuple[Op, ...]) -> Mapping[str, Op]:
    table: dict[str, Op] = {}
    for row in rows:
        if row.name in table:
            raise ValueError(f"op table: duplicate op name {row.name!r}")
        table[row.name] = row
    return MappingProxyType(table)


OPS: Mapping[str, Op] = _index(_ROWS)
"""Every op by name. Read-only: add an op by adding a row to ``_ROWS``."""

ANALYTIC_OPS: tuple[str, ...] = tuple(
    o.name for o in _ROWS if o.smoothness is Smoothness.ANALYTIC
)
KINK_OPS: tuple[str, ...] = tuple(o.name for o in _ROWS if o.smoothness is Smoothness.KINK)
JUMP_OPS: tuple[str, ...] = tuple(o.name for o in _ROWS if o.smoothness is Smoothness.JUMP)
DEFAULT_OPS: tuple[str, ...] = ANALYTIC_OPS
"""Ops the generator uses unless told otherwise: kinks and jumps are opt-in."""

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
