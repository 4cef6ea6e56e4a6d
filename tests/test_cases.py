"""Case files: curated cases load, and malformed ones are refused naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.cases import CaseFileError, case_files, load_cases

CASES_DIR = Path(__file__).resolve().parents[1] / "cases"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_curated_case_file_is_valid() -> None:
    files = case_files(CASES_DIR)
    assert files, "cases/ holds no case files"
    ids = [c.id for f in files for c in load_cases(f)]
    assert "seed-forward-difference" in ids


def test_the_seed_file_holds_the_four_rows_of_the_seed_document() -> None:
    seed = {c.id: c for c in load_cases(CASES_DIR / "seed.toml")}
    assert set(seed) >= {
        "seed-forward-difference",
        "seed-autograd-3x2",
        "seed-tensor-forward-difference",
        "seed-tensor-autograd-mean",
    }
    assert seed["seed-forward-difference"].fd[0].value == pytest.approx(12.00199, abs=1e-5)
    assert seed["seed-tensor-forward-difference"].fd[0].value / 16 == pytest.approx(1.81198, abs=1e-5)
    assert len(seed["seed-tensor-autograd-mean"].points) == 16


def test_a_valid_case_reads_its_points_in_sorted_variable_order(tmp_path: Path) -> None:
    path = write(tmp_path, '[[case]]\nid = "a"\nexpr = "y*sin(x)"\npoints = [{y = 2.0, x = 0.5}]\n')
    (case,) = load_cases(path)
    np.testing.assert_array_equal(case.points, [[0.5, 2.0]])
    assert case.dtypes == ("float64", "float32")


def test_a_hex_float_point_is_read_exactly(tmp_path: Path) -> None:
    path = write(tmp_path, '[[case]]\nid = "a"\nexpr = "x"\npoints = [{x = "0x1.8p+0"}]\n')
    assert load_cases(path)[0].points[0, 0] == 1.5


@pytest.mark.parametrize(
    ("body", "line", "field", "words"),
    [
        ('[[case]]\nid = "a"\nexpr = "__import__(1)"\npoints = [{x = 1.0}]\n', 3, "expr", "cannot parse"),
        ('[[case]]\nid = "a"\nexpr = "x"\npoints = [{y = 1.0}]\n', 4, "points", "variables ['x']"),
        (
            '[[case]]\nid = "a"\nexpr = "x"\npoints = [{x = 0.1}]\n',
            4,
            "points",
            "not exactly representable in float32",
        ),
        (
            '[[case]]\nid = "a"\nexpr = "x"\npoints = [{x = 1.0}]\ndtypes = ["float8"]\n',
            5,
            "dtypes",
            "expected a non-empty list",
        ),
        ('[[case]]\nid = "a b"\nexpr = "x"\npoints = [{x = 1.0}]\n', 2, "id", "letters, digits"),
        (
            '[[case]]\nid = "a"\nexpr = "x"\npoints = [{x = 1.0}]\nexpect = "fine"\n',
            5,
            "expect",
            "expected one of",
        ),
        ('[[case]]\nid = "a"\nexpr = "x"\npoints = [{x = 1.0}]\ncolour = 1\n', 5, "colour", "unknown field"),
        ('[[case]]\nid = "a"\npoints = [{x = 1.0}]\n', 1, "expr", "missing"),
        ('[[case]]\nid = "a"\nexpr = "x"\npoints = [{x = 1.0}]\norders = [3]\n', 5, "orders", "1 and/or 2"),
    ],
)
def test_a_malformed_case_names_file_line_and_field(
    tmp_path: Path, body: str, line: int, field: str, words: str
) -> None:
    path = write(tmp_path, "# header\n" + body)
    with pytest.raises(CaseFileError) as info:
        load_cases(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line + 1}:"), message
    assert f"field '{field}'" in message
    assert words in message


def test_the_second_case_is_located_on_its_own_line(tmp_path: Path) -> None:
    first = '[[case]]\nid = "a"\nexpr = "x"\npoints = [{x = 1.0}]\n\n'
    body = first + '[[case]]\nid = "b"\nexpr = "x +"\npoints = [{x = 1.0}]\n'
    with pytest.raises(CaseFileError, match=r"c\.toml:8: case #2, field 'expr'"):
        load_cases(write(tmp_path, body))


def test_not_toml_and_duplicate_ids_and_huge_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CaseFileError, match="not valid TOML"):
        load_cases(write(tmp_path, "[[case]\n"))
    dup = '[[case]]\nid = "a"\nexpr = "x"\npoints = [{x = 1.0}]\n' * 2
    with pytest.raises(CaseFileError, match="appears twice"):
        load_cases(write(tmp_path, dup))
    big = tmp_path / "big.toml"
    big.write_text("#" * 2_000_000)
    with pytest.raises(CaseFileError, match="larger than"):
        load_cases(big)
    with pytest.raises(CaseFileError, match="cannot read"):
        load_cases(tmp_path / "missing.toml")
