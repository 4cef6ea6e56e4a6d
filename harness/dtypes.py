"""Facts about the floating-point dtypes under test, keyed by name.

One table, read by the engines (which torch dtype to use), the oracle (unit roundoff for
tolerances, ulps) and the reports. Names are the strings users pass: ``"float64"``,
``"float32"``, ``"float16"``, ``"bfloat16"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType

import numpy as np
import torch

__all__ = ["DTYPES", "DType", "dtype_info", "round_array", "round_fraction", "ulp"]


@dataclass(frozen=True)
class DType:
    """One floating-point format: its torch dtype and its rounding constants."""

    name: str
    torch: torch.dtype
    bits: int  # significand bits including the implicit one
    min_exp: int  # exponent of the smallest normal number, as a power of two
    max: float

    @property
    def eps(self) -> float:
        """Machine epsilon: the gap between 1 and the next larger number."""
        return 2.0 ** (1 - self.bits)

    @property
    def unit_roundoff(self) -> float:
        """Largest relative error of one correctly rounded operation (eps / 2)."""
        return 2.0 ** (-self.bits)

    @property
    def tiny(self) -> float:
        """Smallest positive normal number."""
        return 2.0**self.min_exp

    @property
    def smallest_subnormal(self) -> float:
        return 2.0 ** (self.min_exp - self.bits + 1)


DTYPES: Mapping[str, DType] = MappingProxyType(
    {
        "float64": DType("float64", torch.float64, 53, -1022, float(torch.finfo(torch.float64).max)),
        "float32": DType("float32", torch.float32, 24, -126, float(torch.finfo(torch.float32).max)),
        "float16": DType("float16", torch.float16, 11, -14, float(torch.finfo(torch.float16).max)),
        "bfloat16": DType("bfloat16", torch.bfloat16, 8, -126, float(torch.finfo(torch.bfloat16).max)),
    }
)


def dtype_info(name: str) -> DType:
    """Look up a dtype by name, with an error that lists the known ones."""
    try:
        return DTYPES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"dtype={name!r} is not supported; expected one of {', '.join(DTYPES)}"
        ) from None


def round_array(values: np.ndarray, dtype: str) -> np.ndarray:
    """Round float64 values to ``dtype`` (round-to-nearest-even) and return them as float64."""
    info = dtype_info(dtype)
    arr = np.asarray(values, dtype=np.float64)
    t = torch.as_tensor(arr if arr.flags.writeable else arr.copy())  # torch wants writable
    return t.to(info.torch).to(torch.float64).numpy()


def round_fraction(value: Fraction, dtype: str) -> Fraction:
    """The exact value of ``value`` rounded to ``dtype`` (what an engine's constant holds)."""
    rounded = float(round_array(np.array([float(value)]), dtype)[0])
    if math.isinf(rounded):
        raise OverflowError(f"constant {value} overflows {dtype}")
    return Fraction(rounded)


def ulp(values: np.ndarray, dtype: str) -> np.ndarray:
    """Size of one unit in the last place of ``dtype`` at each value (subnormals included)."""
    info = dtype_info(dtype)
    v = np.abs(np.asarray(values, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.floor(np.log2(np.where(v > 0, v, info.tiny)))
    e = np.maximum(e, info.min_exp)
    return np.asarray(np.exp2(e - (info.bits - 1)))
