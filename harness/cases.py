"""Case files: curated and found cases as TOML, validated with file, line and field.

A case file holds one or more ``[[case]]`` tables::

    [[case]]
    id = "seed-autograd"              # required; letters, digits, - _ . ; unique per file
    expr = "3*x**2"                   # required; read with harness.parser (never eval)
    points = [{x = 1.0}]              # required; one table per point, every variable given
    dtypes = ["float32", "float64"]   # optional (default float64 and float32)
    orders = [1]                      # optional (default [1]); 1 or 2
    engines = ["torch:reverse"]       # optional (default: every torch mode)
    expect = "ok"                     # optional: the verdict every engine must get (a
                                      # failing one, for a known finding: the only failing
                                      # verdict; other entries may be right)
    tags = ["seed"]                   # optional
    note = "free text"                # optional

    [[case.fd]]                       # optional: a finite-difference value to reproduce
    scheme = "forward"
    h = 1e-3
    dtype = "float32"
    value = 12.00199                  # what the scheme gives (not the derivative)
    rtol = 1e-6
    exact_h = false                   # divide by the nominal h, as the seed's code does

Point values are TOML floats (``inf``/``nan`` allowed) or strings in C99 hex-float form
(``"0x1.8p+0"``), and must be exactly representable in every listed dtype.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.dtypes import DTYPES, round_array
from harness.expr import Expr, variables
from harness.limits import MAX_POINTS, DataFileError, read_data_file
from harness.parser import ParseError, parse
from harness.schema import VERDICTS, coordinate, point_items

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["Case", "CaseFileError", "FdExpectation", "load_cases", "save_failure", "case_files"]

MAX_FILE_BYTES = 1_000_000
_ID = re.compile(r"[A-Za-z0-9_.\-]{1,80}\Z")
_KNOWN = {"id", "expr", "points", "dtypes", "orders", "engines", "expect", "tags", "note", "fd"}
_FD_KNOWN = {"scheme", "h", "dtype", "value", "rtol", "relative", "exact_h"}


class CaseFileError(ValueError):
    """A case file is malformed; the message names the file, line and field."""


@dataclass(frozen=True)
class FdExpectation:
    """A finite-difference value a case must reproduce (the seed's printed numbers)."""

    scheme: str
    h: float
    dtype: str
    value: float
    rtol: float = 1e-6
    relative: bool = False
    exact_h: bool = True


@dataclass(frozen=True)
class Case:
    """One validated case: an expression, exact points, and what to run it through."""

    id: str
    expr: Expr
    text: str
    points: np.ndarray
    dtypes: tuple[str, ...] = ("float64", "float32")
    orders: tuple[int, ...] = (1,)
    engines: tuple[str, ...] = ()
    expect: str | None = None
    tags: tuple[str, ...] = ()
    note: str = ""
    fd: tuple[FdExpectation, ...] = ()
    source: str = ""
    line: int = 0


def _case_lines(text: str) -> list[int]:
    return [i + 1 for i, line in enumerate(text.splitlines()) if line.strip() == "[[case]]"]


def _field_line(text: str, start: int, name: str) -> int:
    lines = text.splitlines()
    for i in range(max(start, 1) - 1, len(lines)):
        if i >= start and lines[i].strip() == "[[case]]":
            break
        if re.match(rf"\s*{re.escape(name)}\s*=", lines[i]):
            return i + 1
    return start


def _validate(raw: dict[str, Any], path: Path, text: str, line: int, index: int) -> Case:
    def fail(name: str, message: str) -> CaseFileError:
        at = _field_line(text, line, name) if name else line
        return CaseFileError(f"{path}:{at}: case #{index + 1}, field '{name}': {message}")

    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise fail(unknown[0], f"unknown field; allowed fields: {', '.join(sorted(_KNOWN))}")
    for required in ("id", "expr", "points"):
        if required not in raw:
            raise fail(required, "missing; every case needs id, expr and points")
    cid = raw["id"]
    if not isinstance(cid, str) or not _ID.match(cid):
        raise fail("id", f"{cid!r} must be 1-80 letters, digits, '-', '_' or '.'")
    if not isinstance(raw["expr"], str):
        raise fail("expr", 'must be a string such as "sin(x) * y"')
    try:
        expr = parse(raw["expr"])
    except ParseError as exc:
        raise fail("expr", str(exc).splitlines()[0]) from None
    names = variables(expr)
    dtypes = raw.get("dtypes", ["float64", "float32"])
    if not isinstance(dtypes, list) or not dtypes or any(d not in DTYPES for d in dtypes):
        raise fail("dtypes", f"{dtypes!r}: expected a non-empty list from {list(DTYPES)}")
    orders = raw.get("orders", [1])
    if (
        not isinstance(orders, list)
        or not orders
        or any(o not in (1, 2) or isinstance(o, bool) for o in orders)
    ):
        raise fail("orders", f"{orders!r}: expected a list of 1 and/or 2")
    pts_raw = raw["points"]
    if not isinstance(pts_raw, list) or not pts_raw:
        raise fail("points", "expected a non-empty list of tables like [{x = 1.0}]")
    if len(pts_raw) > MAX_POINTS:
        raise fail("points", f"{len(pts_raw)} points, over the limit of {MAX_POINTS}; split the case")
    rows = []
    for k, p in enumerate(pts_raw):
        if not isinstance(p, dict) or set(p) != set(names):
            got = sorted(p) if isinstance(p, dict) else p
            raise fail("points", f"points[{k}] = {got!r}: expected exactly the variables {list(names)}")
        try:
            rows.append([coordinate(p[n], f"points[{k}].{n}") for n in names])
        except ValueError as exc:
            raise fail("points", str(exc)) from None
    pts = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    for d in dtypes:
        rounded = round_array(pts, d)
        bad = ~((rounded == pts) | np.isnan(pts))
        if bad.any():
            k, v = (int(i) for i in np.argwhere(bad)[0])
            raise fail(
                "points",
                f"points[{k}].{names[v]} = {pts[k, v]!r} is not exactly representable in {d}; "
                f"use {float(rounded[k, v])!r} or drop {d} from dtypes",
            )
    engines = raw.get("engines", [])
    if not isinstance(engines, list) or any(not isinstance(e, str) for e in engines):
        raise fail("engines", 'expected a list of engine names such as ["torch:reverse"]')
    expect = raw.get("expect")
    if expect is not None and expect not in VERDICTS:
        raise fail("expect", f"{expect!r}: expected one of {list(VERDICTS)}")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or any(not isinstance(t, str) for t in tags):
        raise fail("tags", "expected a list of strings")
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise fail("note", "expected a string")
    fds = []
    fd_raw = raw.get("fd", [])
    if not isinstance(fd_raw, list):
        raise fail("fd", "expected [[case.fd]] tables")
    from harness.schema import SCHEMES

    for k, f in enumerate(fd_raw):
        if not isinstance(f, dict) or set(f) - _FD_KNOWN or not {"scheme", "h", "dtype", "value"} <= set(f):
            raise fail(
                "fd", f"fd[{k}]: expected scheme, h, dtype, value (and optional rtol, relative, exact_h)"
            )
        try:
            fds.append(
                FdExpectation(
                    str(f["scheme"]),
                    float(f["h"]),
                    str(f["dtype"]),
                    float(f["value"]),
                    float(f.get("rtol", 1e-6)),
                    bool(f.get("relative", False)),
                    bool(f.get("exact_h", True)),
                )
            )
        except (TypeError, ValueError) as exc:
            raise fail("fd", f"fd[{k}]: {exc}") from None
        if fds[-1].dtype not in DTYPES:
            raise fail("fd", f"fd[{k}].dtype = {fds[-1].dtype!r}: expected one of {list(DTYPES)}")
        if fds[-1].scheme not in SCHEMES:
            raise fail("fd", f"fd[{k}].scheme = {fds[-1].scheme!r}: expected one of {list(SCHEMES)}")
        if not (np.isfinite(fds[-1].h) and fds[-1].h > 0):
            raise fail("fd", f"fd[{k}].h = {fds[-1].h!r}: expected a finite step > 0, e.g. 1e-3")
    return Case(
        cid,
        expr,
        raw["expr"],
        pts,
        tuple(dtypes),
        tuple(orders),
        tuple(engines),
        expect,
        tuple(tags),
        note,
        tuple(fds),
        str(path),
        line,
    )


def load_cases(path: str | Path) -> list[Case]:
    """Read and validate one case file; raises :class:`CaseFileError` naming file:line."""
    path = Path(path)
    try:
        text = read_data_file(path, MAX_FILE_BYTES)
    except DataFileError as exc:
        raise CaseFileError(f"{exc}; expected a case file (split a larger one)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CaseFileError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise CaseFileError(f"{path}: arrays or tables nested too deep; expected [[case]] tables") from None
    extra = sorted(set(data) - {"case"})
    if extra:
        raise CaseFileError(f"{path}: unexpected top-level key {extra[0]!r}; write cases as [[case]] tables")
    raws = data.get("case", [])
    if not isinstance(raws, list) or not raws:
        raise CaseFileError(f"{path}: no [[case]] tables found")
    lines = _case_lines(text) + [0] * len(raws)
    if any(not isinstance(raw, dict) for raw in raws):
        raise CaseFileError(f"{path}: 'case' must be [[case]] tables")
    cases = [_validate(raw, path, text, lines[i], i) for i, raw in enumerate(raws)]
    seen: set[str] = set()
    for c in cases:
        if c.id in seen:
            raise CaseFileError(f"{path}:{c.line}: case id {c.id!r} appears twice in this file")
        seen.add(c.id)
    return cases


def case_files(root: str | Path) -> list[Path]:
    """Every ``*.toml`` under ``root`` (anything else is returned as itself), sorted."""
    root = Path(root)
    return sorted(root.rglob("*.toml")) if root.is_dir() else [root]


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def save_failure(directory: Path, failure: Any, engine_spec: str) -> Path:
    """Write a shrunk failure as a case file under ``directory``; returns its path.
    ``engine_spec`` is empty for an engine no ``--engine`` text rebuilds."""
    import hashlib

    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(
        f"{engine_spec}|{failure.expr}|{failure.point}|{failure.dtype}|{failure.order}".encode()
    ).hexdigest()[:12]
    cid = f"found-{digest}"
    from harness.engines import BUILTIN_ENGINES

    # replay runs a user engine named in a case file only when the command line names it too
    rerun_engines = "" if not engine_spec or engine_spec in BUILTIN_ENGINES else f" --engines {engine_spec}"
    point = ", ".join(f"{name} = {_toml_float(v)}" for name, v in point_items(failure.point).items())
    body = "\n".join(
        [
            f"# Found by diffharness check: {failure.verdict}, {failure.ulp_error:.3g} ulp.",
            f"# Rerun: diffharness replay {directory / (cid + '.toml')}{rerun_engines}",
            "[[case]]",
            f"id = {_toml_str(cid)}",
            f"expr = {_toml_str(failure.expr)}",
            f"points = [{{{point}}}]",
            f"dtypes = [{_toml_str(failure.dtype)}]",
            f"orders = [{failure.order}]",
            f"engines = [{_toml_str(engine_spec)}]" if engine_spec else
            "# engines: found with an engine built in Python; replay with --engine naming it",
            'expect = "ok"',
            'tags = ["found"]',
            f"note = {_toml_str(f'expected {failure.expected!r}, got {failure.got!r}')}",
            "",
        ]
    )
    path = directory / f"{cid}.toml"
    path.write_text(body, encoding="utf-8")
    return path


def _toml_float(v: float) -> str:
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    text = repr(v)
    return text if any(c in text for c in ".en") else text + ".0"
