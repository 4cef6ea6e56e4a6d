"""`diffharness explain`: the seed document's examples, walked through every engine.

The expected numbers are the seed's: its derivative 29, and the forward differences its
float32 code prints (checked here against that very code, run with plain torch).
"""

from __future__ import annotations

import contextlib
import io
import re

import pytest
import torch

from harness.cli import main

SEED_POLY = "x**4 + 3*x**3 + 8*x**2 + 3"
SEED_SQUARE = "3*(x + 1)**2"
# the float32 forward differences (f(1 + h) - f(1)) / h that the seed's code prints
POLY_FD_H1E5 = 28.99169921875  # the post's 1.8120, times 16
SQUARE_FD_H1E3 = 12.00199031829834  # the post's 12.0020


def explain_output(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["explain", *argv])
    assert code == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def poly_float32() -> str:
    return explain_output(SEED_POLY, "--at", "x=1", "--dtype", "float32")


@pytest.fixture(scope="module")
def square_float32() -> str:
    return explain_output(SEED_SQUARE, "--at", "x=1", "--dtype", "float32")


def seed_forward_difference(text: str) -> dict[float, float]:
    """h -> value from the line 'forward difference as hand-written code computes it'."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if "as hand-written code computes it" in line)
    pairs = re.findall(r"h=([0-9.e+-]+): ([^,\s]+)", lines[at + 1])
    return {float(h): float(v) for h, v in pairs}


def torch_float32_forward_difference(text: str, h: float) -> float:
    """The seed's own computation, in float32 torch, for the two polynomials used here."""
    f = {
        SEED_POLY: lambda x: x**4 + 3 * x**3 + 8 * x**2 + 3,
        SEED_SQUARE: lambda x: 3 * (x + 1) ** 2,
    }[text]
    x, step = torch.tensor(1.0), torch.tensor(h)
    return float((f(x + step) - f(x)) / step)


def test_the_expected_numbers_are_what_the_seeds_float32_code_computes() -> None:
    assert torch_float32_forward_difference(SEED_POLY, 1e-5) == POLY_FD_H1E5
    assert torch_float32_forward_difference(SEED_SQUARE, 1e-3) == SQUARE_FD_H1E3
    assert f"{POLY_FD_H1E5 / 16:.4f}" == "1.8120" and f"{SQUARE_FD_H1E3:.4f}" == "12.0020"


def test_explain_prints_the_exact_derivative_29(poly_float32: str) -> None:
    assert "4*x**3 + 9*x**2 + 16*x" in poly_float32
    assert re.search(r"^\s*= 29\s+\(certified", poly_float32, re.M)


def test_explain_prints_autograds_29_in_every_torch_mode(poly_float32: str) -> None:
    rows = re.findall(r"^\s*torch (\w+)\s+d/dx\s+= (\S+)\s.*\s(\S+)$", poly_float32, re.M)
    assert {mode for mode, _, _ in rows} == {"reverse", "forward", "functional"}
    assert all(float(value) == 29.0 and verdict == "ok" for _, value, verdict in rows)


def test_explain_tabulates_every_scheme_against_h(poly_float32: str) -> None:
    header = next(line for line in poly_float32.splitlines() if line.strip().startswith("h "))
    for scheme in ("forward", "backward", "central", "five-point", "complex-step", "richardson"):
        assert scheme in header


def test_explain_says_rounding_dominates_the_forward_difference_at_h_1e_5(poly_float32: str) -> None:
    line = next(s for s in poly_float32.splitlines() if "forward at h=1e-5" in s)
    assert "rounding dominates" in line
    trunc, rounding = (float(v) for v in re.findall(r"(?:truncation|rounding) ([0-9.e+-]+)", line))
    # truncation h*|f''(1)|/2 = 1e-5 * 46 / 2; rounding ~ eps*|f(1)|/h dwarfs it
    assert trunc == pytest.approx(1e-5 * 46 / 2, rel=0.05)
    assert rounding > 100 * trunc


def test_explain_prints_the_seeds_float32_forward_difference_at_h_1e_5(poly_float32: str) -> None:
    value = seed_forward_difference(poly_float32)[1e-5]
    assert value == pytest.approx(POLY_FD_H1E5, rel=1e-9)  # printed to 10 significant digits


def test_explain_prints_the_seeds_float32_forward_difference_of_3_x_plus_1_squared(
    square_float32: str,
) -> None:
    value = seed_forward_difference(square_float32)[1e-3]
    assert value == pytest.approx(SQUARE_FD_H1E3, rel=1e-9)


def test_explain_of_3_x_plus_1_squared_gives_12_and_a_forward_difference_near_the_posts(
    square_float32: str,
) -> None:
    assert "6*x + 6" in square_float32
    assert re.search(r"^\s*= 12\s+\(certified", square_float32, re.M)
    # what the post prints, 12.0020, to its four decimals
    assert f"{seed_forward_difference(square_float32)[1e-3]:.4f}" == "12.0020"


def test_explain_notes_a_point_that_the_dtype_cannot_hold() -> None:
    text = explain_output("x*x", "--at", "x=0.1", "--dtype", "float32")
    assert "not exact in float32" in text
    assert "x=0.10000000149011612" in text


def test_explain_shows_a_singular_determinants_adjugate_and_torchs_zero() -> None:
    # d det/da = d = 6 at [[1, 2], [3, 6]] (the adjugate); torch's reverse mode gives 0
    text = explain_output("det2(a, b, c, d)", "--at", "a=1,b=2,c=3,d=6")
    assert re.search(r"d/da = d\s+= 6 ", text)
    assert re.search(r"torch reverse\s+d/da\s+= 0 .*mismatch", text)
    assert re.search(r"torch functional d/da\s+= 6 .*ok", text)
