"""What a person sees: report.html rendered by headless Chromium.

The DOM after loading (``--dump-dom``) must hold the tables filled with numbers, the plot,
the hostile user text shown literally as text, and no script at all; the browser log must
show no script error and nothing the Content-Security-Policy had to refuse; a screenshot
must show the plot's coloured lines (compared with a report that has no data to plot), and
the first screen (1280x900, no scrolling) the verdict banner and the plot.
Skipped only where no Chromium binary is installed (CI installs Debian's ``chromium``).
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.report import write_report

HOSTILE = "<script>alert(1)</script>"
EPS = {"float64": 2.0**-52, "float32": 2.0**-23}
ORDER = {"forward": 1, "central": 2, "five-point": 4}
H_GRID = tuple(10.0 ** -np.arange(1, 13))

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH")

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
)


def results() -> pd.DataFrame:
    """FD errors c*h**p + eps/h on two cases, AD rows with one hostile failing case."""
    rows = []
    base = dict(source="generated", variables="x", point="x=0.5", point_index=0, var="x",
                order=1, value=1.0, truth=1.0, truth_bound=0.0, truth_status="ok",
                tolerance=np.nan, seconds=0.0)
    for dtype, eps in EPS.items():
        for scheme, p in ORDER.items():
            for h in H_GRID:
                for case, c in (("c0", 1.0), ("c1", 3.0)):
                    err = c * h**p + eps / h
                    rows.append(dict(base, case_id=case, expr="sin(x)", engine=f"fd:{scheme}",
                                     mode="", dtype=dtype, scheme=scheme, h=h, abs_error=err,
                                     rel_error=err, ulp_error=err / eps, verdict=""))
        for case, expr, verdict, ulps in (("c0", "sin(x)", "ok", 0.5), (HOSTILE, HOSTILE,
                                                                         "mismatch", 1e4)):
            rows.append(dict(base, case_id=case, expr=expr, engine="torch:reverse",
                             mode="reverse", dtype=dtype, scheme="", h=np.nan,
                             abs_error=ulps * eps, rel_error=ulps * eps, ulp_error=ulps,
                             verdict=verdict))
    return pd.DataFrame(rows)


def theory() -> pd.DataFrame:
    return pd.DataFrame(
        [dict(dtype=d, scheme=s, h=h, rel_error=h**p + eps / h)
         for d, eps in EPS.items() for s, p in ORDER.items() for h in H_GRID]
    )


def chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
        capture_output=True, text=True, timeout=60, check=True,
    )


class _Dom(HTMLParser):
    """Collects what the DOM dump shows: tag counts, table cell texts, all visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.cells: list[str] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _is_number(text: str) -> bool:
    """A number as the page shows one: bare, a percentage, with its unit (3 ulp, 1e-300 abs)
    or in brackets (a statistic over a minority of points)."""
    text = text.strip("()").removesuffix("%").removesuffix(" ulp").removesuffix(" abs")
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pixels_like(png: Path, colour: str, rows: slice = slice(None)) -> int:
    """Pixels within a small distance of ``colour`` (#rrggbb) in the given screen rows."""
    import matplotlib.image

    rgb = matplotlib.image.imread(str(png))[rows, :, :3]
    target = np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(rgb - target).max(axis=-1) < 0.08).sum())


def _coloured_pixels(png: Path) -> int:
    import matplotlib.image

    rgb = matplotlib.image.imread(str(png))[..., :3]
    saturation = rgb.max(axis=-1) - rgb.min(axis=-1)
    return int((saturation > 0.3).sum())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    root = tmp_path_factory.mktemp("browser")
    # As long as a real run's: a page that put it first would push the plot off screen.
    metadata = {
        "versions": {"hypothesis": "6.170.17", "numpy": "2.4.6", "pandas": "3.1.1",
                     "platform": "Linux-6.18.44-x86_64-with-glibc2.36", "python": "3.11.7",
                     "sympy": "1.14.0", "torch": "2.13.0+cpu"},
        "config": {"dtypes": list(EPS), "h_grid": list(H_GRID), "ops": [f"op{i}" for i in
                                                                         range(23)],
                   "engines": ["torch:reverse", "torch:forward", "torch:functional"],
                   "schemes": list(ORDER), "n_cases": 300, "seed": 1},
        "seed": 1, "workers": 2, "cases": 2, "corpus_problems": [], "started": "t0",
        "finished": "t1", "seconds": 1.0, "command": f"diffharness run --expr '{HOSTILE}'",
    }
    page = write_report(root / "full", results(), pd.DataFrame(), theory(), metadata)
    empty = write_report(root / "empty", pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), {})
    dump = chromium(page, root / "profile", "--enable-logging=stderr", "--v=0", "--dump-dom")
    for name, target, size in (("full.png", page, "1280,1600"), ("empty.png", empty, "1280,1600"),
                               ("first.png", page, "1280,900")):
        chromium(target, root / "profile", f"--window-size={size}", f"--screenshot={root / name}")
    return {"dom": dump.stdout, "log": dump.stderr, "full": root / "full.png",
            "empty": root / "empty.png", "first": root / "first.png"}


def test_the_page_runs_no_script_and_the_browser_reports_no_error(
    rendered: dict[str, Path | str],
) -> None:
    dom = _Dom()
    dom.feed(str(rendered["dom"]))
    assert dom.tags.get("script", 0) == 0
    log = str(rendered["log"])
    assert "Uncaught" not in log
    # Chromium logs "... violates the following Content Security Policy directive" (older
    # versions "Refused to ...") for anything the page's CSP blocked: there must be nothing.
    assert "Content Security Policy" not in log and "Refused to" not in log


def test_the_hostile_text_is_shown_literally_as_text(rendered: dict[str, Path | str]) -> None:
    dom = _Dom()
    dom.feed(str(rendered["dom"]))
    assert HOSTILE in dom.cells  # the case id and expression cells read exactly as typed
    assert any(HOSTILE in cell and "diffharness check" in cell for cell in dom.cells)


def test_the_tables_are_filled_with_numbers(rendered: dict[str, Path | str]) -> None:
    dom = _Dom()
    dom.feed(str(rendered["dom"]))
    numbers = [c for c in dom.cells if _is_number(c)]
    assert len(numbers) > 200
    assert dom.tags.get("table", 0) >= 5
    assert dom.tags.get("svg", 0) == 1


def test_the_plot_draws_coloured_curves(rendered: dict[str, Path | str]) -> None:
    full, empty = (_coloured_pixels(Path(rendered[k])) for k in ("full", "empty"))
    # The plot's lines and markers colour thousands of pixels; without data only the
    # summary box's border is coloured.
    assert full > 5000
    assert full > 5 * empty


def test_the_first_screen_holds_the_verdict_banner_and_the_plot(
    rendered: dict[str, Path | str],
) -> None:
    # A 1280x900 window: the failing banner's red border near the top, and the plot's
    # forward (tab:blue) and central (tab:green) curves below it, all before any scrolling.
    first = Path(rendered["first"])
    assert _pixels_like(first, "#d93025", slice(0, 300)) > 1000
    blue, green = (_pixels_like(first, c, slice(300, 900)) for c in ("#1f77b4", "#2ca02c"))
    # The whole plot draws ~900 and ~700 of them; a page with the metadata table first
    # showed only its top edge (~200 and ~100).
    assert blue > 500 and green > 500
