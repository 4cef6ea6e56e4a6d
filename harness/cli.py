"""Command line: thin argparse wiring over the library.

``diffharness run | merge | check | explain | replay | cases | bench | accuracy``; ``--help`` on each says
everything it takes. Bad options and bad expressions get one clear line on stderr and
exit status 2, never a traceback; a found mismatch exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.runlock import RunFolderBusy, run_lock

__all__ = ["main"]

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A bad argument: printed as one line, exit status 2."""


def _csv_list(text: str) -> tuple[str, ...]:
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list")
    return items


def _schemes(text: str) -> tuple[str, ...]:
    """``none`` (AD engines only, no finite differences) or a comma-separated list."""
    return () if text.strip() == "none" else _csv_list(text)


def _orders(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(t) for t in _csv_list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected orders like 1 or 1,2") from None
    if any(v not in (1, 2) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: each order must be 1 or 2")
    return values


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return v


def _ops(text: str) -> tuple[str, ...]:
    from harness.ops import DEFAULT_OPS, JUMP_OPS, KINK_OPS, OPS

    out: list[str] = []
    for item in _csv_list(text):
        group = {"default": DEFAULT_OPS, "kinks": KINK_OPS, "jumps": JUMP_OPS, "all": tuple(OPS)}.get(item)
        if group is not None:
            out += [o for o in group if o not in out]
        elif item in OPS:
            out.append(item)
        else:
            raise argparse.ArgumentTypeError(
                f"op {item!r} is unknown; use op names ({', '.join(OPS)}) or the groups "
                "default, kinks, jumps, all"
            )
    return tuple(out)


def _parse_at(text: str, names: Sequence[str]) -> Any:
    """``x=1,y=0.5`` -> a (1, n_vars) float64 array in ``names`` order (float(), no eval)."""
    from harness.schema import parse_point

    try:
        return parse_point(text, names, where="--at")
    except ValueError as exc:
        raise UsageError(str(exc)) from None

def _seconds(text: str) -> float:
    from harness.limits import check_seconds

    try:
        return check_seconds(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a finite number of seconds > 0, e.g. 60"
        ) from None


def _run_name(text: str) -> str:
    """A run folder's name: one path component, so the run stays inside --out."""
    if (
        not text
        or text in (".", "..")
        or "/" in text
        or "\\" in text
        or "\0" in text
        or os.path.isabs(text)
    ):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a plain folder name (no '/', not '..'); the run goes under --out"
        )
    return text


def _too_long(args: argparse.Namespace) -> str:
    return f"{args.expr} ran past --timeout {args.timeout:g} s; pass a larger --timeout"


def _shard(text: str) -> tuple[int, int]:
    k, sep, n = text.partition("/")
    try:
        shard = (int(k), int(n)) if sep else None
    except ValueError:
        shard = None
    if shard is None or not 0 <= shard[0] < shard[1]:
        raise argparse.ArgumentTypeError(
            f"--shard {text!r}: expected K/N with 0 <= K < N, e.g. 0/4 for the first of four machines"
        )
    return shard


def _expr(text: str) -> Any:
    from harness.parser import ParseError, parse

    try:
        return parse(text)
    except ParseError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None


def _dtype(text: str) -> str:
    from harness.schema import DTYPE_NAMES as DTYPES

    if text not in DTYPES:
        raise argparse.ArgumentTypeError(f"{text!r} is not a dtype; expected one of {', '.join(DTYPES)}")
    return text


def _allowed(text: str) -> tuple[str, ...]:
    from harness.schema import failing_verdicts

    values = tuple(_csv_list(text))
    try:
        failing_verdicts(values)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return values


def _dtypes(text: str) -> tuple[str, ...]:
    return tuple(_dtype(t) for t in _csv_list(text))


# ---- run ------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    if args.workers > 0 and args.executor == "local":
        from harness.forkserver import start_fork_server

        start_fork_server()  # its imports overlap this process's own
    from harness.campaign import CampaignConfig, run_campaign
    from harness.engines import engine_from_spec

    for spec in args.engines or ():
        try:
            engine_from_spec(spec)
        except (ValueError, ImportError) as exc:
            raise UsageError(str(exc)) from None
    if args.resume:
        run_dir = Path(args.resume)
        config = CampaignConfig()
    else:
        kwargs: dict[str, Any] = {"n_cases": args.cases, "seed": args.seed}
        for name in ("dtypes", "orders", "engines", "schemes", "ops"):
            value = getattr(args, name)
            if value is not None:
                kwargs[name] = value
        kwargs["corpus"] = tuple(args.corpus) if args.corpus is not None else ("cases",)
        if args.no_corpus:
            kwargs["corpus"] = ()
        kwargs["case_timeout"] = args.timeout
        try:
            config = CampaignConfig(**kwargs)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        name = args.name or time.strftime("%Y%m%d-%H%M%S") + f"-seed{args.seed}"
        run_dir = Path(args.out) / name
    start = time.perf_counter()
    with contextlib.ExitStack() as hold:  # one writer per run folder, over the run and its report
        try:
            # an existing folder is locked from here, a new one from when the campaign makes it
            hold.enter_context(run_lock(run_dir, create=False))
            result = run_campaign(
                config,
                run_dir,
                workers=args.workers,
                resume=bool(args.resume),
                shard=args.shard,
                cases_from=args.cases_from,
                user_engines=args.engines or (),
                executor=args.executor,
                scheduler=args.scheduler,
            )
        except (FileExistsError, FileNotFoundError, ValueError, ImportError, RunFolderBusy) as exc:
            raise UsageError(str(exc)) from None
        except KeyboardInterrupt:
            resume = f"diffharness run --resume {shlex.quote(str(run_dir))}"
            print(f"\ninterrupted; finished cases are kept: {resume}", file=sys.stderr)
            return 130
        out = Path(args.out if not args.resume else run_dir.parent)
        return _report(result, run_dir, out, start, args.strict)


def _cmd_merge(args: argparse.Namespace) -> int:
    from harness.campaign import merge_campaigns

    start = time.perf_counter()
    run_dir = Path(args.out) / (args.name or time.strftime("%Y%m%d-%H%M%S") + "-merged")
    with contextlib.ExitStack() as hold:
        try:
            hold.enter_context(run_lock(run_dir, create=False))
            result = merge_campaigns(run_dir, [Path(s) for s in args.shards])
        except (FileExistsError, ValueError, RunFolderBusy) as exc:
            raise UsageError(str(exc)) from None
        missing = result.metadata.get("missing_cases", [])
        if missing:
            shown = ", ".join(str(i) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
            print(
                f"diffharness merge: {len(missing)} case(s) no shard finished ({shown}); run them "
                f"with: diffharness run --resume {run_dir}",
                file=sys.stderr,
            )
        return _report(result, run_dir, Path(args.out), start, args.strict)


def _report(result: Any, run_dir: Path, out: Path, start: float, strict: bool) -> int:
    """Write the report, point ``out/latest`` at it and print the summary lines."""
    from harness.report import write_report

    html = write_report(
        run_dir,
        result.judged,
        result.fd_diagnostics,
        result.theory,
        result.metadata,
        error_table=result.error_table,
    )
    latest = out / "latest"
    try:
        if latest.is_symlink():
            latest.unlink()
        if os.path.lexists(latest):
            print(f"note: {latest} is not a symlink; left as it is", file=sys.stderr)
        else:
            latest.symlink_to(run_dir.resolve(), target_is_directory=True)
    except OSError:
        pass
    verdicts = result.judged.loc[result.judged["verdict"] != "", "verdict"].value_counts()
    from harness.schema import FAILING

    failing = int(verdicts[verdicts.index.isin(FAILING)].sum())
    n_cases = result.metadata.get("cases", 0)
    shard = result.metadata.get("shard")
    print(
        f"diffharness {'merge' if 'merged_from' in result.metadata else 'run'}: "
        + (
            f"{result.judged['case_id'].nunique()} of {n_cases} cases (shard {shard[0]}/{shard[1]})"
            if shard
            else f"{n_cases} cases"
        )
        + f" in {time.perf_counter() - start:.1f} s; verdicts: "
        + ", ".join(f"{k} {v}" for k, v in verdicts.items())
    )
    for problem in result.metadata.get("corpus_problems", []):
        print(f"  corpus problem: {problem}", file=sys.stderr)
    for damage in result.metadata.get("damaged", []):
        print(f"  damaged: {damage}", file=sys.stderr)
    print(f"report: {html}")
    print(f"results: {run_dir / 'results.csv'}")
    return EXIT_MISMATCH if (failing and strict) else EXIT_OK


# ---- check ----------------------------------------------------------------------------


def _cmd_check(args: argparse.Namespace) -> int:
    from harness.check import check_engine, compare
    from harness.engines import engine_from_spec
    from harness.expr import variables
    from harness.limits import TimeLimitExceeded, import_lazy_modules, time_limit
    from harness.schema import failing_verdicts

    import_lazy_modules()

    try:
        engine = engine_from_spec(args.engine)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.expr is not None:
        expr = _expr(args.expr)
        if args.at is None:
            raise UsageError("--expr needs --at, e.g. --at x=1,y=0.5")
        pts = _parse_at(args.at, variables(expr))
        try:
            with time_limit(args.timeout):
                rows = compare(engine, expr, pts, dtype=args.dtype, order=args.order)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        except TimeLimitExceeded:
            raise UsageError(_too_long(args)) from None
        from harness.report import terminal_table

        cols = ["var", "value", "truth", "ulp_error", "tolerance", "ideal_tolerance", "verdict"]
        if (rows["vs_eager"] != "").any():
            cols.append("vs_eager")
        print(f"{engine.name} on {args.expr} at {args.at} ({args.dtype}, order {args.order})")
        print(terminal_table(rows[cols]))
        if "message" in rows.attrs:
            print(rows.attrs["message"])
        bad = rows["verdict"].isin(failing_verdicts(args.allow))
        return EXIT_MISMATCH if bad.any() else EXIT_OK
    try:
        result = check_engine(
            engine,
            n_examples=args.n_examples or getattr(engine, "default_examples", None) or 200,
            seed=args.seed,
            dtypes=args.dtypes,
            orders=args.orders,
            ops=args.ops,
            spec=args.engine,
            save_dir=args.save,
            timeout=args.timeout,
            allow=args.allow,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except TimeLimitExceeded as exc:
        raise UsageError(f"{exc}; pass a larger --timeout") from None
    print(result.report())
    for key, n in result.examples.items():
        print(f"  {key}: {n} example(s)")
    return EXIT_OK if result.ok else EXIT_MISMATCH


# ---- explain --------------------------------------------------------------------------


def _cmd_explain(args: argparse.Namespace) -> int:
    from harness.explain import explain

    expr = _expr(args.expr)
    from harness.expr import variables

    pts = _parse_at(args.at, variables(expr))
    from harness.limits import TimeLimitExceeded, import_lazy_modules, time_limit

    import_lazy_modules()
    try:
        with time_limit(args.timeout):
            text = explain(expr, pts[0], dtype=args.dtype, order=args.order)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except TimeLimitExceeded:
        raise UsageError(_too_long(args)) from None
    print(text)
    return EXIT_OK


# ---- replay and cases -----------------------------------------------------------------


def _cmd_replay(args: argparse.Namespace) -> int:
    from harness.replay import replay_files

    text, ok = replay_files(args.files, engines=args.engines, timeout=args.timeout)
    print(text)
    return EXIT_OK if ok else EXIT_MISMATCH


def _cmd_cases(args: argparse.Namespace) -> int:
    from harness.cases import CaseFileError, case_files, load_cases

    status = EXIT_OK
    for root in args.paths:
        if not Path(root).exists():
            raise UsageError(f"{root}: no such file or folder")
        for path in case_files(root):
            try:
                loaded = load_cases(path)
            except CaseFileError as exc:
                print(f"invalid: {exc}", file=sys.stderr)
                status = EXIT_USAGE
                continue
            if args.action == "validate":
                print(f"ok: {path} ({len(loaded)} case(s))")
            else:
                for c in loaded:
                    tags = f" [{', '.join(c.tags)}]" if c.tags else ""
                    print(
                        f"{path}:{c.line}  {c.id}{tags}  {c.text}  "
                        f"({len(c.points)} point(s), {','.join(c.dtypes)})"
                    )
    return status


def _cmd_bench(args: argparse.Namespace) -> int:
    from harness import bench

    return int(bench.main(args.rest) or 0)


def _cmd_accuracy(args: argparse.Namespace) -> int:
    from harness import accuracy

    return int(accuracy.main(args.rest) or 0)


# ---- wiring ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    from harness.schema import SCHEMES

    p = argparse.ArgumentParser(
        prog="diffharness",
        description="Are these derivatives right? Checks AD engines against exact sympy "
        "derivatives and finite differences over a grid of step sizes.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="the main job: a campaign and its report",
        description="Run generated cases plus the cases/ corpus through the engines "
        "and finite differences; write results.csv, tables and report.html under "
        "reports/<run>/ (reports/latest points at the newest).",
    )
    run.add_argument("--cases", type=_positive_int, default=300, help="generated cases (default 300)")
    run.add_argument("--seed", type=_positive_int, default=0, help="seed of the generated cases (default 0)")
    run.add_argument("--dtypes", type=_dtypes, help="comma-separated dtypes (default float64,float32)")
    run.add_argument("--orders", type=_orders, help="derivative orders, 1 and/or 2 (default 1)")
    run.add_argument("--engines", type=_csv_list, help="engines under test (default: the three torch modes)")
    run.add_argument(
        "--schemes", type=_schemes,
        help=f"finite-difference schemes, or none (default all: {','.join(SCHEMES)})",
    )
    run.add_argument("--ops", type=_ops, help="ops for generated cases: names or default,kinks,jumps,all")
    run.add_argument("--corpus", action="append", help="case file or folder (repeatable; default cases/)")
    run.add_argument("--no-corpus", action="store_true", help="generated cases only")
    run.add_argument(
        "--workers",
        type=_positive_int,
        default=os.cpu_count() or 1,
        help="worker processes, each watched: one that dies or hangs is replaced (default: one "
        "per CPU core; 0 runs the cases in this process, unwatched; with --executor dask and no "
        "--scheduler, the LocalCluster's)",
    )
    run.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="where cases run: here (default) or on a Dask cluster (the dask extra)",
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (with --executor dask; "
        "default: a LocalCluster on this machine)",
    )
    run.add_argument(
        "--timeout", type=_seconds, default=60.0, help="seconds per case before it is cut off (default 60)"
    )
    run.add_argument("--out", default="reports", help="folder for runs (default reports/)")
    run.add_argument(
        "--name", type=_run_name, help="run folder name under --out (default: timestamp and seed)"
    )
    run.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted run in RUN_DIR")
    run.add_argument("--strict", action="store_true", help="exit 1 when any failing verdict is found")
    run.add_argument(
        "--shard",
        type=_shard,
        help="K/N: run only the cases whose index is K modulo N (one of N machines running one "
        "campaign with the same options; join the folders with diffharness merge)",
    )
    run.add_argument(
        "--cases-from",
        metavar="RUN_DIR",
        help="take the generated cases from RUN_DIR/cases.json (a shard of this campaign run "
        "with the same options) instead of drawing them: every shard then runs one list",
    )
    run.set_defaults(func=_cmd_run)

    mrg = sub.add_parser(
        "merge",
        help="join the shard folders of one campaign into one run and report",
        description="Join run folders made by 'diffharness run --shard K/N' with the same "
        "options (on one machine or many) into one run folder, results.csv and report, "
        "identical to a one-machine run when every shard finished.",
    )
    mrg.add_argument("shards", nargs="+", help="the shards' run folders")
    mrg.add_argument("--out", default="reports", help="folder for runs (default reports/)")
    mrg.add_argument(
        "--name",
        type=_run_name,
        default=None,
        help="name of the merged run folder under --out (default: timestamp and 'merged')",
    )
    mrg.add_argument("--strict", action="store_true", help="exit 1 when any failing verdict is found")
    mrg.set_defaults(func=_cmd_merge)

    chk = sub.add_parser(
        "check",
        help="check one engine: search, or one case",
        description="Search for a wrong derivative of an engine and shrink it "
        "(default), or check one expression at one point (--expr, --at).",
    )
    chk.add_argument(
        "--engine",
        required=True,
        help="built-in name (torch:reverse, jax:forward, ...) or package.module:attr",
    )
    chk.add_argument("--expr", help="one expression to check (with --at)")
    chk.add_argument("--at", help="the point, e.g. x=1,y=0.5")
    chk.add_argument("--dtype", type=_dtype, default="float64", help="dtype for --expr (default float64)")
    chk.add_argument("--order", type=int, choices=(1, 2), default=1, help="order for --expr (default 1)")
    chk.add_argument(
        "--n-examples", type=_positive_int, default=None,
        help="examples per dtype and order (default 200; 50 for torch:compile-aot, 10 for "
        "torch:compile-inductor, where compiling each tree dominates)",
    )
    chk.add_argument("--seed", type=_positive_int, help="seed of the search (printed on every run)")
    chk.add_argument(
        "--dtypes",
        type=_dtypes,
        default=("float64", "float32"),
        help="dtypes to search (default float64,float32)",
    )
    chk.add_argument("--orders", type=_orders, default=(1,), help="orders to search (default 1)")
    chk.add_argument(
        "--ops", type=_ops, default=None,
        help="ops to draw from (default: the analytic ops; for an engine with overrides, "
        "its own ops and + - * / neg)",
    )
    chk.add_argument(
        "--save", metavar="DIR", help="save each shrunk failure as a case file (e.g. cases/found)"
    )
    chk.add_argument(
        "--timeout",
        type=_seconds,
        default=60.0,
        help="seconds for --expr, or for each example of the search (default 60)",
    )
    chk.add_argument(
        "--allow",
        type=_allowed,
        default=(),
        help="failing verdicts to accept, comma-separated: inaccurate (accuracy lost to a "
        "cancelling formula), kink-violation",
    )
    chk.set_defaults(func=_cmd_check)

    exp = sub.add_parser(
        "explain",
        help="walk one expression through every engine",
        description="The symbolic derivative, every AD mode's value and the "
        "error-vs-h table of every finite-difference scheme, at one point.",
    )
    exp.add_argument("expr", help='the expression, e.g. "x**4 + 3*x**3 + 8*x**2 + 3"')
    exp.add_argument("--at", required=True, help="the point, e.g. x=1")
    exp.add_argument("--dtype", type=_dtype, default="float64", help="dtype (default float64)")
    exp.add_argument("--order", type=int, choices=(1, 2), default=1, help="1 or 2 (default 1)")
    exp.add_argument("--timeout", type=_seconds, default=60.0, help="seconds before it stops (default 60)")
    exp.set_defaults(func=_cmd_explain)

    rep = sub.add_parser(
        "replay",
        help="rerun case files",
        description="Rerun every case in the "
        "given files through its engines; exit 1 if any is wrong or differs from its expect.",
    )
    rep.add_argument("files", nargs="+", help="case files or folders")
    rep.add_argument("--engines", type=_csv_list, help="override the engines of every case")
    rep.add_argument(
        "--timeout", type=_seconds, default=60.0, help="seconds per case before it fails (default 60)"
    )
    rep.set_defaults(func=_cmd_replay)

    cas = sub.add_parser("cases", help="list or validate case files")
    cas.add_argument("action", choices=("list", "validate"))
    cas.add_argument("paths", nargs="*", default=["cases"], help="files or folders (default cases/)")
    cas.set_defaults(func=_cmd_cases)

    ben = sub.add_parser("bench", help="benchmarks (see diffharness bench --help)", add_help=False)
    ben.add_argument("rest", nargs=argparse.REMAINDER)
    ben.set_defaults(func=_cmd_bench)

    acc = sub.add_parser(
        "accuracy", help="each unary op at every half-precision input (see diffharness accuracy --help)",
        add_help=False,
    )
    acc.add_argument("rest", nargs=argparse.REMAINDER)
    acc.set_defaults(func=_cmd_accuracy)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``diffharness`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its own parser: argparse.REMAINDER would swallow --help
        from harness import bench

        return int(bench.main(argv[1:]) or 0)
    if argv[:1] == ["accuracy"]:  # its own parser too
        from harness import accuracy

        return int(accuracy.main(argv[1:]) or 0)
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"diffharness {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # an output folder that is a file, read-only, full, ...
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"diffharness {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except RecursionError:
        print(f"diffharness {args.command}: error: input nested too deep", file=sys.stderr)
        return EXIT_USAGE
