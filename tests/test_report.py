"""Tests for harness.report: the tables, the terminal text, the files and the HTML page.

Every input frame is built by hand here, with errors written as formulas of h (truncation
c*h**p plus rounding eps/h) so that each expected statistic is computed independently in
the test, with numpy, from the same hand-made numbers.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness.report import (
    ERROR_VS_H_COLUMNS,
    NO_OPS,
    UNPARSED,
    ad_accuracy,
    error_vs_h,
    fd_summary,
    ops_in_expression,
    render_html,
    terminal_table,
    verdict_counts,
    verdicts_per_op,
    worst_cases,
    write_report,
)
from harness.schema import repro_command

EPS64 = 2.0**-52
HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def row(**fields: Any) -> dict[str, Any]:
    """One results row with harmless defaults; ``fields`` override them."""
    base: dict[str, Any] = dict(
        case_id="c0", source="generated", expr="sin(x)*y", variables="x,y",
        point="x=1.0,y=-0.5", point_index=0, var="x", engine="torch:reverse",
        mode="reverse", dtype="float64", order=1, scheme="", h=np.nan, value=1.0, truth=1.0,
        truth_bound=0.0, truth_status="ok", abs_error=0.0, rel_error=0.0, ulp_error=0.0,
        tolerance=1e-15, verdict="ok", seconds=0.001,
    )
    base.update(fields)
    return base


def fd_row(scheme: str, dtype: str, h: float, rel_error: float, **fields: Any) -> dict[str, Any]:
    return row(engine=f"fd:{scheme}", mode="", scheme=scheme, dtype=dtype, h=h,
               rel_error=rel_error, abs_error=rel_error, verdict="", **fields)


def frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


# Central differences in float64 on four cases whose third-derivative constants are c.
H_GRID = (1e-2, 1e-4, 1e-6, 1e-8)
C_CENTRAL = (1.0, 2.0, 3.0, 10.0)


def central_error(c: float, h: float) -> float:
    return c * h**2 / 6 + EPS64 / h


def central_rows() -> list[dict[str, Any]]:
    return [
        fd_row("central", "float64", h, central_error(c, h), case_id=f"c{i}")
        for h in H_GRID
        for i, c in enumerate(C_CENTRAL)
    ]


# ---- error_vs_h --------------------------------------------------------------------------


def stat(table: pd.DataFrame, scheme: str, dtype: str, h: float, statistic: str) -> float:
    """The one value of the long error-against-h table at these keys."""
    hit = table[(table["scheme"] == scheme) & (table["dtype"] == dtype) & (table["h"] == h)
                & (table["statistic"] == statistic)]
    assert len(hit) == 1
    return float(hit["rel_error"].iloc[0])


def test_error_vs_h_gives_median_p90_and_max_over_cases_at_each_h() -> None:
    table = error_vs_h(frame(central_rows()))
    for h in H_GRID:
        errors = np.array([central_error(c, h) for c in C_CENTRAL])
        assert stat(table, "central", "float64", h, "median") == pytest.approx(np.median(errors))
        assert stat(table, "central", "float64", h, "p90") == pytest.approx(
            np.percentile(errors, 90)
        )
        assert stat(table, "central", "float64", h, "max") == pytest.approx(errors.max())


def test_error_vs_h_is_long_one_row_per_dtype_scheme_h_and_statistic() -> None:
    table = error_vs_h(frame(central_rows()))
    assert list(table.columns) == list(ERROR_VS_H_COLUMNS)
    assert len(table) == len(H_GRID) * 3
    assert not table.duplicated(["dtype", "scheme", "h", "statistic"]).any()


def test_error_vs_h_lists_h_from_largest_to_smallest() -> None:
    rows = central_rows()
    table = error_vs_h(frame(rows[::-1]))
    assert list(table["h"].drop_duplicates()) == sorted(H_GRID, reverse=True)


def test_error_vs_h_shows_the_v_curve_of_central_differences() -> None:
    # Median error falls like h**2 down to h ~ eps**(1/3), then rises like eps/h.
    def median(h: float) -> float:
        return stat(error_vs_h(frame(central_rows())), "central", "float64", h, "median")
    assert median(1e-4) < median(1e-2) and median(1e-4) < median(1e-8)


def test_error_vs_h_ignores_ad_rows_second_derivatives_and_nan_errors() -> None:
    rows = central_rows() + [
        fd_row("central", "float64", 1e-2, 1e9, order=2),
        fd_row("central", "float64", 1e-2, np.nan),
        row(rel_error=1e9),
    ]
    table = error_vs_h(frame(rows))
    errors = [central_error(c, 1e-2) for c in C_CENTRAL]
    assert stat(table, "central", "float64", 1e-2, "max") == pytest.approx(max(errors))
    assert set(table["scheme"]) == {"central"}


def test_error_vs_h_counts_the_points_behind_each_statistic() -> None:
    # Where x + h == x no step is taken: the row's error is NaN and it is not measured.
    rows = [fd_row("forward", "float32", 1e-16, e) for e in (1.0, np.nan, np.nan, np.nan)]
    table = error_vs_h(frame(rows))
    assert set(table["rows"]) == {4}
    assert set(table["measured"]) == {1}


def test_error_vs_h_keeps_schemes_and_dtypes_apart() -> None:
    rows = [
        fd_row("forward", "float32", 1e-3, 0.5),
        fd_row("forward", "float64", 1e-3, 0.25),
        fd_row("central", "float32", 1e-3, 0.125),
    ]
    table = error_vs_h(frame(rows))
    assert stat(table, "forward", "float32", 1e-3, "median") == 0.5
    assert stat(table, "forward", "float64", 1e-3, "median") == 0.25
    assert stat(table, "central", "float32", 1e-3, "max") == 0.125
    assert list(table[["dtype", "scheme"]].drop_duplicates().itertuples(index=False)) == [
        ("float64", "forward"), ("float32", "forward"), ("float32", "central")
    ]


def test_error_vs_h_p90_of_an_infinite_error_is_infinite_without_a_warning() -> None:
    # Sorted errors 1, 2, inf: the 90th percentile lies between 2 and inf.
    rows = [fd_row("forward", "float64", 1e-3, e) for e in (2.0, np.inf, 1.0)]
    table = error_vs_h(frame(rows))
    assert stat(table, "forward", "float64", 1e-3, "median") == 2.0
    assert stat(table, "forward", "float64", 1e-3, "p90") == np.inf
    assert stat(table, "forward", "float64", 1e-3, "max") == np.inf


def test_error_vs_h_of_a_run_without_finite_differences_is_empty() -> None:
    assert error_vs_h(frame([row()])).empty
    assert error_vs_h(pd.DataFrame()).empty


# ---- ad_accuracy -------------------------------------------------------------------------

ULPS_REVERSE = (0.0, 0.5, 1.0, 2.0, 3.0, 40.0)


def ad_rows() -> list[dict[str, Any]]:
    rows = [
        row(ulp_error=u, verdict="mismatch" if u > 10 else "ok", case_id=f"r{i}")
        for i, u in enumerate(ULPS_REVERSE)
    ]
    rows += [
        row(engine="torch:forward", mode="forward", dtype="float32", ulp_error=1.0),
        row(engine="torch:forward", mode="forward", dtype="float32", ulp_error=np.nan,
            verdict="undefined"),
        row(engine="torch:forward", mode="forward", dtype="float32", ulp_error=np.nan,
            value=np.nan, verdict="nan-mismatch"),
    ]
    return rows


def test_ad_accuracy_gives_ulp_statistics_per_engine_mode_dtype_and_order() -> None:
    table = ad_accuracy(frame(ad_rows()))
    reverse = table[(table["engine"] == "torch:reverse") & (table["dtype"] == "float64")]
    assert len(reverse) == 1
    got = reverse.iloc[0]
    assert got["rows"] == len(ULPS_REVERSE)
    assert got["median_ulp_error"] == pytest.approx(np.median(ULPS_REVERSE))
    assert got["p90_ulp_error"] == pytest.approx(np.percentile(ULPS_REVERSE, 90))
    assert got["max_ulp_error"] == 40.0
    assert (got["ok"], got["mismatch"], got["failing"]) == (5, 1, 1)


def test_ad_accuracy_counts_every_verdict_and_skips_nan_errors() -> None:
    table = ad_accuracy(frame(ad_rows()))
    forward = table[table["engine"] == "torch:forward"].iloc[0]
    assert forward["rows"] == 3
    assert (forward["ok"], forward["undefined"], forward["nan-mismatch"]) == (1, 1, 1)
    assert forward["failing"] == 1  # nan-mismatch fails; undefined does not
    assert forward["median_ulp_error"] == 1.0
    assert forward["kink-violation"] == 0


def test_ad_accuracy_counts_ulps_only_where_the_truth_is_nonzero() -> None:
    # One ulp of 0 is the smallest subnormal: a miss of 1e-300 there is ~1e23 ulps.
    rows = [row(ulp_error=2.0, abs_error=4e-16, tolerance=8e-16),
            row(truth=0.0, value=1e-300, ulp_error=2e23, abs_error=1e-300, tolerance=1e-15)]
    got = ad_accuracy(frame(rows)).iloc[0]
    assert got["max_ulp_error"] == 2.0
    assert got["truth_zero_rows"] == 1
    assert got["max_abs_error_truth_zero"] == 1e-300
    assert got["max_error_ratio"] == pytest.approx(0.5)


def test_ad_accuracy_leaves_finite_difference_rows_out() -> None:
    table = ad_accuracy(frame(ad_rows() + central_rows()))
    assert set(table["engine"]) == {"torch:reverse", "torch:forward"}


def test_ad_accuracy_reads_a_csv_round_trip_where_empty_text_became_nan(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    frame(ad_rows() + central_rows()).to_csv(path, index=False)
    table = ad_accuracy(pd.read_csv(path))
    assert table["rows"].sum() == len(ad_rows())


# ---- verdicts_per_op ---------------------------------------------------------------------


def test_verdicts_per_op_counts_a_row_once_for_each_op_of_its_expression() -> None:
    rows = [
        row(expr="sin(x)*y", verdict="mismatch"),
        row(expr="sin(sin(x))*y", verdict="ok"),
        row(expr="exp(x) + log(y)", verdict="ok"),
        row(expr="x", verdict="ok"),
        row(expr=HOSTILE, verdict="ok"),
        fd_row("central", "float64", 1e-3, 0.5, expr="tanh(x)"),
    ]
    table = verdicts_per_op(frame(rows)).set_index("op")
    assert table.loc["sin", "rows"] == 2  # sin twice in one expression counts once
    assert (table.loc["sin", "mismatch"], table.loc["mul", "mismatch"]) == (1, 1)
    assert (table.loc["add", "ok"], table.loc["exp", "ok"], table.loc["log", "ok"]) == (1, 1, 1)
    assert table.loc[NO_OPS, "ok"] == 1
    assert table.loc[UNPARSED, "ok"] == 1
    assert "tanh" not in table.index  # finite-difference rows are not judged


def test_verdicts_per_op_lists_the_failing_ops_first() -> None:
    rows = [row(expr="exp(x)", verdict="ok"), row(expr="tanh(x)", verdict="kink-violation")]
    table = verdicts_per_op(frame(rows))
    assert list(table["op"]) == ["tanh", "exp"]
    assert list(table["failing"]) == [1, 0]


def test_verdicts_per_op_accepts_another_way_to_find_ops() -> None:
    table = verdicts_per_op(frame([row(expr="anything")]), ops_of=lambda text: ["mul", "add"])
    assert sorted(table["op"]) == ["add", "mul"]


def test_ops_in_expression_reads_the_tree_without_evaluating_it() -> None:
    assert ops_in_expression("max(x, y) - relu(x)") == ("sub", "relu", "max")
    assert ops_in_expression("__import__('os').system('true')") == (UNPARSED,)


# ---- worst_cases and repro ---------------------------------------------------------------


def test_worst_cases_puts_failing_rows_first_then_the_largest_ulp_errors() -> None:
    rows = [
        row(case_id="small", ulp_error=0.5),
        row(case_id="big", ulp_error=30.0),
        row(case_id="wrong", ulp_error=12.0, verdict="mismatch"),
        row(case_id="nan", ulp_error=np.nan, value=np.nan, verdict="nan-mismatch"),
        row(case_id="undefined", ulp_error=np.nan, verdict="undefined"),
        fd_row("forward", "float64", 1e-3, 1e3, case_id="fd", ulp_error=1e9),
    ]
    worst = worst_cases(frame(rows), n=10)
    assert list(worst["case_id"]) == ["wrong", "nan", "big", "small"]
    assert list(worst_cases(frame(rows), n=2)["case_id"]) == ["wrong", "nan"]


def test_worst_cases_repro_column_rechecks_the_rows_own_case() -> None:
    worst = worst_cases(frame([row(expr="sin(x) * y", point="x=0.25,y=3.0", dtype="float16",
                                   order=2, var="x,y", engine="jax:forward", mode="forward")]))
    args = shlex.split(worst.loc[0, "repro"])
    assert args[args.index("--expr") + 1] == "sin(x) * y"
    assert args[args.index("--at") + 1] == "x=0.25,y=3.0"
    assert args[args.index("--engine") + 1] == "jax:forward"
    assert (args[args.index("--dtype") + 1], args[args.index("--order") + 1]) == ("float16", "2")


# ---- fd_summary and verdict_counts -------------------------------------------------------


def test_fd_summary_gives_medians_and_the_share_of_consistent_cases() -> None:
    best_h = [1e-6, 2e-6, 8e-6]
    diagnostics = pd.DataFrame(
        dict(case_id=["a", "b", "c"], dtype="float64", scheme="central", var="x", order=1,
             best_h=best_h, best_error=[1e-11, 3e-11, 2e-11], predicted_h=6e-6,
             predicted_error=4e-11, observed_order=[1.9, 2.1, 2.0], expected_order=2,
             consistent=["True", "False", "True"])
    )
    summary = fd_summary(diagnostics).iloc[0]
    assert summary["rows"] == 3
    assert summary["median_best_h"] == pytest.approx(np.median(best_h))
    assert summary["median_observed_order"] == pytest.approx(2.0)
    assert summary["consistent_fraction"] == pytest.approx(2 / 3)


def test_fd_summary_names_missing_columns() -> None:
    with pytest.raises(ValueError, match="best_h"):
        fd_summary(pd.DataFrame({"dtype": ["float64"], "scheme": ["central"], "order": [1]}))


def test_verdict_counts_lists_every_verdict_with_zeros() -> None:
    counts = verdict_counts(frame(ad_rows()))
    assert counts["ok"] == 6 and counts["mismatch"] == 1 and counts["kink-violation"] == 0
    assert counts.sum() == len(ad_rows())


def test_results_missing_a_column_are_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match="rel_error"):
        ad_accuracy(frame([row()]).drop(columns="rel_error"))


# ---- terminal_table ----------------------------------------------------------------------


def test_terminal_table_spells_out_control_characters_in_user_text() -> None:
    df = pd.DataFrame({"expr": ["x\x1b[2J\x1b[31m", "y\u202e"], "ulp": [1.0, 2.0]})
    text = terminal_table(df)
    assert "\x1b" not in text and "\u202e" not in text
    assert "\\u001b[2J" in text and "\\u202e" in text


def test_terminal_table_says_how_many_rows_it_left_out() -> None:
    df = pd.DataFrame({"value": np.arange(10, dtype=float) / 3})
    text = terminal_table(df, max_rows=4)
    assert "6 more rows (10 in all)" in text
    assert "0.3333" in text and "1.667" not in text  # four digits, only the first 4 rows


def test_terminal_table_keeps_whole_repro_commands_when_asked() -> None:
    command = repro_command("torch:reverse", "sin(x) * " * 20 + "y", "x=1.0,y=2.0", "float64", 1)
    worst = pd.DataFrame({"repro": [command]})
    assert command in terminal_table(worst, max_colwidth=None)
    assert command not in terminal_table(worst)


def test_terminal_table_of_no_rows_says_so() -> None:
    assert terminal_table(pd.DataFrame()) == "(no rows)"


# ---- HTML and files ----------------------------------------------------------------------

THEORY = pd.DataFrame(
    [dict(dtype="float64", scheme="central", h=h, rel_error=central_error(1.0, h))
     for h in H_GRID]
)
METADATA = {"seed": 7, "python": "3.11", "command": f"diffharness run --cases '{HOSTILE}'",
            "settings": {"dtypes": ["float64"]}, "started": "t0", "finished": "t1"}


def hostile_results() -> pd.DataFrame:
    rows = central_rows() + ad_rows() + [
        row(case_id=HOSTILE, expr=HOSTILE, engine=f"{HOSTILE}$x$_", mode="", verdict="mismatch",
            ulp_error=1e6, point=HOSTILE),
    ]
    return frame(rows)


def test_html_escapes_every_piece_of_user_text() -> None:
    page = render_html(hostile_results(), pd.DataFrame(), THEORY, METADATA)
    assert "<script" not in page.lower()
    assert ESCAPED in page
    # in the summary, metadata, worst cases (case id, expression, point) and repro command
    assert page.count(ESCAPED) >= 5


def test_html_loads_nothing_from_outside_the_file() -> None:
    page = render_html(hostile_results(), pd.DataFrame(), THEORY, METADATA)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", page)
    assert "@import" not in page and "url(http" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_html_draws_one_plot_panel_per_dtype() -> None:
    rows = central_rows() + [fd_row("forward", "float32", 1e-3, 1e-2)]
    page = render_html(frame(rows), pd.DataFrame(), THEORY, METADATA)
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert len(re.findall(r'<g id="axes_\d+"', svg)) == 2
    assert "<!--" not in svg  # matplotlib's comments would repeat the labels' raw text


def test_html_plots_labels_the_font_cannot_draw_without_a_warning() -> None:
    # pytest turns warnings into errors; a missing glyph is drawn as a box instead.
    rows = central_rows() + [row(engine="引擎🚀$\\$_\u202e", rel_error=1e-12)]
    page = render_html(frame(rows), pd.DataFrame(), THEORY, {})
    assert page.count("<svg") == 1


def test_html_refuses_a_theory_table_without_its_columns() -> None:
    with pytest.raises(ValueError, match="rel_error"):
        render_html(frame(central_rows()), pd.DataFrame(), THEORY.drop(columns="rel_error"), {})


def test_html_summary_is_red_when_any_verdict_fails_and_green_otherwise() -> None:
    def summary(results: pd.DataFrame) -> tuple[str, str]:
        page = render_html(results, pd.DataFrame(), pd.DataFrame(), {})
        found = re.search(r'<div class="summary (\w+)">(.*?)</div>', page)
        assert found is not None
        return found.group(1), found.group(2)

    kind, text = summary(frame(ad_rows()))
    assert kind == "fail" and "2 failing</b> of 9 AD rows" in text
    kind, text = summary(frame([row(), row(verdict="undefined")]))
    assert kind == "pass" and "All 2 AD rows pass" in text
    for unjudged in ("timeout", "error"):  # a case that could not be checked never passes
        kind, text = summary(frame([row(), row(verdict=unjudged)]))
        assert kind == "fail" and "1 failing</b> of 2 AD rows" in text


@pytest.mark.parametrize(
    "rows", [[], [row()], central_rows()], ids=["nothing", "ad-only", "fd-only"]
)
def test_html_shows_no_data_instead_of_failing_on_empty_inputs(rows: list[dict[str, Any]]) -> None:
    results = frame(rows) if rows else pd.DataFrame()
    page = render_html(results, pd.DataFrame(), pd.DataFrame(), {})
    assert "no data" in page
    assert ("<svg" in page) == bool(rows and rows[0]["scheme"])


def test_write_report_writes_every_table_the_metadata_and_the_page(tmp_path: Path) -> None:
    run_dir = tmp_path / "run" / "nested"
    results = hostile_results()
    diagnostics = pd.DataFrame(
        [dict(case_id="c0", dtype="float64", scheme="central", var="x", order=1, best_h=1e-5,
              best_error=1e-11, predicted_h=6e-6, predicted_error=4e-11, observed_order=2.0,
              expected_order=2, consistent=True)]
    )
    page = write_report(run_dir, results, diagnostics, THEORY, METADATA)
    assert page == run_dir / "report.html" and page.is_file()
    names = {p.name for p in run_dir.iterdir()}
    # results.csv and fd_diagnostics.csv are the campaign's, written once with their digests
    assert names == {"error_vs_h.csv", "ad_accuracy.csv", "verdicts_per_op.csv",
                     "worst_cases.csv", "metadata.json", "report.html"}
    assert json.loads((run_dir / "metadata.json").read_text(encoding="utf-8")) == METADATA
    table = pd.read_csv(run_dir / "error_vs_h.csv")
    errors = [central_error(c, 1e-4) for c in C_CENTRAL]
    assert stat(table, "central", "float64", 1e-4, "median") == pytest.approx(np.median(errors))
    worst = pd.read_csv(run_dir / "worst_cases.csv")
    assert worst.loc[0, "case_id"] == HOSTILE
    assert shlex.split(worst.loc[0, "repro"])[5] == HOSTILE
    assert "fd_diagnostics.csv" in page.read_text(encoding="utf-8")  # the page points at it


def _requested_page() -> str:
    """A page of a run that asked for float64 while a corpus case brought float16 rows."""
    rows = central_rows() + [fd_row("central", "float16", 1e-2, 1e-2)] + ad_rows() + [
        row(dtype="float16", ulp_error=0.5)
    ]
    metadata = {"config": {"dtypes": ["float64"]}, "seed": 7}
    return render_html(frame(rows), pd.DataFrame(), THEORY, metadata)


def test_html_puts_the_banner_and_plot_first_and_the_run_metadata_last() -> None:
    page = _requested_page()
    banner, plot = page.index('<div class="summary'), page.index("<svg")
    run = page.index("<h2>Run</h2>")
    assert banner < plot < page.index("<h2>Worst AD cases") < run
    assert "<h2>" not in page[run + 1:]


def test_html_plots_only_the_requested_dtypes_and_labels_corpus_only_ones() -> None:
    page = _requested_page()
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert len(re.findall(r'<g id="axes_\d+"', svg)) == 1
    assert "float16: corpus cases only" in page
    assert "float16 (corpus only)" in page  # its AD accuracy row
    assert "float16 (corpus cases only" in page  # its error-against-h table


def test_html_brackets_statistics_over_fewer_than_half_the_points() -> None:
    rows = central_rows() + [fd_row("forward", "float32", 1e-16, e)
                             for e in (0.75, np.nan, np.nan, np.nan)]
    page = render_html(frame(rows), pd.DataFrame(), pd.DataFrame(), {})
    assert "<td>(0.75)</td>" in page and "<td>25%</td>" in page
    assert "<td>100%</td>" in page  # the central rows, all measured


def test_html_worst_cases_show_ulps_only_where_the_truth_is_nonzero() -> None:
    rows = [row(verdict="mismatch", ulp_error=3.0, abs_error=1e-15, tolerance=1e-16),
            row(verdict="mismatch", truth=0.0, ulp_error=2e23, abs_error=1e-300,
                tolerance=1e-310, case_id="zero")]
    page = render_html(frame(rows), pd.DataFrame(), pd.DataFrame(), {})
    assert "<td>3 ulp</td>" in page and "<td>1e-300 abs</td>" in page
    assert "2e+23" not in page
