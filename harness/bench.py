"""Benchmarks: small functions that time one stage each, and ``main`` that prints them.

Run ``python -m harness.bench generation`` (or ``diffharness bench generation``). Each
benchmark prints one human line and one JSON line (``{"benchmark": ...}``) so that a
script can collect results. Add a benchmark by writing a ``bench_*`` function that returns
a dict and registering its subcommand in :func:`_parser`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

__all__ = [
    "bench_campaign",
    "bench_check",
    "bench_generation",
    "bench_scaling",
    "format_check",
    "format_generation",
    "full_check",
    "main",
    "random_tree",
    "summarise_ms",
]


def summarise_ms(durations_s: Sequence[float]) -> dict[str, float]:
    """Mean, median, 90th percentile, min and max of durations given in seconds, in ms."""
    if not durations_s:
        raise ValueError("durations_s=[] is empty; expected at least one duration")
    ms = sorted(1e3 * d for d in durations_s)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return {
        "mean_ms": statistics.fmean(ms),
        "median_ms": statistics.median(ms),
        "p90_ms": p90,
        "min_ms": ms[0],
        "max_ms": ms[-1],
    }


def bench_generation(
    n_examples: int = 200,
    n_points: int = 32,
    seed: int = 0,
    *,
    dtype: str = "float64",
    kinks: str = "avoid",
) -> dict[str, Any]:
    """Time how long :func:`harness.strategies.cases` takes to produce one case.

    What is timed: an ordinary ``@given`` run (generate phase only, no database, fixed
    ``seed``, default health checks) whose test body only records the time it is called.
    The gap between consecutive calls is the cost of one case as a Hypothesis user pays
    it: drawing the tree and ``n_points`` points, the domain checks, any rejected draws in
    between, and Hypothesis's own bookkeeping. The first gap runs from the start of the
    run, so setup counts too. ``strategy.example()`` is avoided: it is not how tests draw.
    """
    from hypothesis import Phase, given, settings
    from hypothesis import seed as seed_decorator

    from harness.expr import size
    from harness.strategies import cases

    if n_examples < 1:
        raise ValueError(f"n_examples={n_examples!r} must be >= 1")
    stamps: list[float] = []
    sizes: list[int] = []

    @seed_decorator(seed)
    @settings(max_examples=n_examples, database=None, deadline=None, phases=[Phase.generate])
    @given(cases(n_points=n_points, dtype=dtype, kinks=kinks))
    def run(case: Any) -> None:
        stamps.append(time.perf_counter())
        sizes.append(size(case[0]))

    start = time.perf_counter()
    run()
    total = time.perf_counter() - start
    gaps = [b - a for a, b in zip([start, *stamps[:-1]], stamps, strict=True)]
    return {
        "benchmark": "generation",
        "n_examples": len(stamps),
        "n_points": n_points,
        "dtype": dtype,
        "kinks": kinks,
        "seed": seed,
        **summarise_ms(gaps),
        "total_s": total,
        "mean_tree_size": statistics.fmean(sizes),
    }


def format_generation(result: dict[str, Any]) -> str:
    """One line for people: the cost per generated case."""
    return (
        f"generation: {result['mean_ms']:.2f} ms per expression with {result['n_points']} "
        f"points (mean; median {result['median_ms']:.2f} ms, p90 {result['p90_ms']:.2f} ms) "
        f"over {result['n_examples']} examples, {result['dtype']}, kinks={result['kinks']}, "
        f"mean tree size {result['mean_tree_size']:.1f}, seed {result['seed']}"
    )


# ---- the full check against torch.autograd.gradcheck (issue: performance) ---------------

_SAFE_UNARY = ("sin", "cos", "tanh", "atan", "sigmoid", "neg")
_SAFE_BINARY = ("add", "sub", "mul")


def random_tree(n_nodes: int, seed: int, variables: Sequence[str] = ("x", "y")) -> Any:
    """A random tree of about ``n_nodes`` nodes from ops defined everywhere (no domain
    edges, so the cost measured is the check's, not the generator's rejections)."""
    import random as _random

    from harness.expr import Call, Const, Var

    rng = _random.Random(seed)
    leaves: list[Any] = [Var(v) for v in variables] + [Const(Fraction(2)), Const(Fraction(3))]

    def build(n: int) -> Any:
        if n <= 1:
            return rng.choice(leaves)
        if n == 2 or rng.random() < 0.3:
            return Call(rng.choice(_SAFE_UNARY), (build(n - 1),))
        left = rng.randint(1, n - 2)
        return Call(rng.choice(_SAFE_BINARY), (build(left), build(n - 1 - left)))

    from harness.expr import variables as _variables

    for _ in range(100):
        tree = build(n_nodes)
        if _variables(tree):
            return tree
    raise RuntimeError(f"no tree with a variable for n_nodes={n_nodes}, seed={seed}")


def _every_op_tree() -> Any:
    """x*y passed through every op random trees use: warms the per-op caches."""
    from harness.expr import Call, Var

    tree: Any = Call("mul", (Var("x"), Var("y")))
    for name in _SAFE_UNARY:
        tree = Call(name, (tree,))
    for name in _SAFE_BINARY:
        tree = Call(name, (tree, Var("x")))
    return tree


def full_check(
    expr: Any,
    pts: Any,
    *,
    truth: Any = None,
    stages: dict[str, float] | None = None,
    finite_differences: bool = True,
) -> int:
    """Everything a case costs in a campaign: certified truth, torch reverse and forward
    modes in float32 and float64 with verdicts, every finite-difference scheme over the
    default h grid in both dtypes. Returns the number of derivative entries judged.

    With ``stages``, adds the seconds spent in each stage to it: ``truth`` (compiling and
    evaluating the exact derivative), ``tolerance`` (the rounding model), ``torch`` (the
    engine under test), ``verdicts`` (judging and building the rows), ``finite
    differences`` (every scheme over the h grid). ``finite_differences=False`` leaves the
    sweeps out: the cost of the AD verdicts alone."""
    from harness.check import _reference, compare
    from harness.engines.base import EngineError
    from harness.engines.torch_ad import TorchEngine
    from harness.fd import SCHEMES, FiniteDiffEngine, shared_stencils
    from harness.truth import truth_engine

    def timed(stage: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            if stages is not None:
                stages[stage] = stages.get(stage, 0.0) + time.perf_counter() - start

    truth = truth or truth_engine()
    entries = 0
    for dtype in ("float64", "float32"):
        if stages is not None:  # the work compare() starts with, each stage timed apart
            timed("truth", truth.evaluate, expr, pts, dtype=dtype)
            # the truth is remembered now: this is the rounding model (and any one-sided
            # limits), cached for compare() as a campaign computes it, once
            timed("tolerance", _reference, truth, expr, pts, dtype, 1)
        for mode in ("reverse", "forward"):
            frame = timed("verdicts", compare, TorchEngine(mode), expr, pts, dtype=dtype, truth=truth)
            entries += len(frame)
            if stages is not None and len(frame):  # compare() times the engine's own call
                engine_seconds = float(frame["seconds"].iloc[0]) * len(pts)
                stages["torch"] = stages.get("torch", 0.0) + engine_seconds
                stages["verdicts"] -= engine_seconds
        with shared_stencils():  # as a campaign runs them: the schemes share stencil inputs
            for scheme in SCHEMES if finite_differences else ():
                try:
                    sweep = timed(
                        "finite differences", FiniteDiffEngine(scheme).sweep, expr, pts, dtype=dtype
                    )
                    entries += sweep.values.size
                except EngineError:
                    pass
    return entries


def _gradcheck_per_point(expr: Any, pts: Any) -> float:
    """Seconds per point for ``torch.autograd.gradcheck`` on the scalar function, one
    point at a time (float64; its default eps, atol and rtol)."""
    import torch

    from harness.engines.torch_ad import torch_function

    f = torch_function(expr)
    start = time.perf_counter()
    for row in pts:
        inputs = tuple(torch.tensor(float(v), dtype=torch.float64, requires_grad=True) for v in row)
        torch.autograd.gradcheck(lambda *xs: f(list(xs)), inputs)
    return (time.perf_counter() - start) / len(pts)


def _truth_compile_seconds(expr: Any, fresh: Any) -> float:
    """Seconds to build ``expr``'s gradient and Hessian truth programs from nothing (the
    fixed cost per expression: sympy's cache and every memo cleared first; the op
    templates, built once per process, stay)."""
    from harness.truth.forms import GRADIENT, HESSIAN
    from harness.truth.program import compiled

    fresh()
    start = time.perf_counter()
    compiled(expr, "float64", GRADIENT)
    compiled(expr, "float64", HESSIAN)
    return time.perf_counter() - start


def bench_check(
    n_exprs: int = 10,
    n_points: int | Sequence[int] = (32, 256, 1024),
    size: int = 10,
    seed: int = 0,
    finite_differences: bool = True,
) -> dict[str, Any]:
    """Per checked point: the full check against ``torch.autograd.gradcheck`` on the same
    expressions and points, in this process, for each batch size in ``n_points``.

    The full check of an expression includes compiling its exact derivative (sympy), so
    its cost per point falls as more points share one expression; gradcheck's does not.
    Each row gives the median over ``n_exprs`` random trees of ``size`` nodes, the ratio
    gradcheck / full check, and where the full check's time went (``stages_ms``, summed
    over the expressions, per point). ``truth_compile_ms`` is the median cost of building an
    expression's gradient and Hessian truth programs from nothing; ``full_check_fixed_ms``
    the median cost of its whole check at a single point (truth, rounding model, engines,
    verdicts and sweeps set up once per expression), the fixed cost that batching points
    amortises.
    """
    import numpy as np
    import torch
    from sympy.core.cache import clear_cache

    from harness.dtypes import round_array
    from harness.expr import variables
    from harness.memo import clear_all
    from harness.oracle import rounding_tolerance

    def fresh() -> None:
        """Forget everything an expression leaves behind (its derivative, in sympy's memo
        and compiled, and every per-case memo), but keep what a process pays once per op:
        the rounding model's compiled op partials, warmed again on symbols of their own."""
        clear_cache()  # sympy's own memo of derivatives
        clear_all()  # per-case memos: truth programs and rows, stencil values, ...
        # ... which hold the per-op ones too (lambdified partials, op-tree programs)
        rounding_tolerance(warm, warm_points, dtype="float64")

    counts = (n_points,) if isinstance(n_points, int) else tuple(n_points)
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    warm = _every_op_tree()
    warm_points = round_array(rng.uniform(-2, 2, (32, len(variables(warm)))), "float32")
    full_check(warm, warm_points)
    _gradcheck_per_point(warm, np.zeros((1, len(variables(warm)))))
    fixed = [_truth_compile_seconds(random_tree(size, seed + i), fresh) for i in range(n_exprs)]
    def drawn(i: int, n: int) -> tuple[Any, Any]:
        expr = random_tree(size, seed + i)
        return expr, round_array(rng.uniform(-2, 2, (n, len(variables(expr)))), "float32")

    def seconds_of_check(expr: Any, pts: Any) -> float:
        fresh()  # every expression compiles afresh: compile costs count
        start = time.perf_counter()
        full_check(expr, pts, finite_differences=finite_differences)
        return time.perf_counter() - start

    # the whole check's cost per expression at one point: what batching amortises
    one_point = [seconds_of_check(*drawn(i, 1)) for i in range(n_exprs)]
    rows = []
    for n in counts:
        ours, theirs = [], []
        stages: dict[str, float] = {}
        for i in range(n_exprs):
            expr, pts = drawn(i, n)
            ours.append(seconds_of_check(expr, pts) / n)
            fresh()
            full_check(
                expr, pts, stages=stages, finite_differences=finite_differences
            )
            theirs.append(_gradcheck_per_point(expr, pts[: min(n, 64)]))
        ours_ms, theirs_ms = 1e3 * statistics.median(ours), 1e3 * statistics.median(theirs)
        rows.append(
            {
                "n_points": n,
                "full_check_ms_per_point": ours_ms,
                "gradcheck_ms_per_point": theirs_ms,
                "gradcheck_over_full_check": theirs_ms / ours_ms,
                "stages_ms_per_point": {k: 1e3 * v / (n * n_exprs) for k, v in sorted(stages.items())},
            }
        )
    return {
        "benchmark": "check-vs-gradcheck",
        "truth_compile_ms": 1e3 * statistics.median(fixed),
        "full_check_fixed_ms": 1e3 * statistics.median(one_point),
        "n_exprs": n_exprs,
        "size": size,
        "seed": seed,
        "rows": rows,
        "torch_threads": 1,
        "finite_differences": finite_differences,
        "note": "gradcheck: one call per point (float64, default eps/atol/rtol), at most 64 "
        "points per expression; full check: certified truth, torch reverse and forward in "
        "float32 and float64 with verdicts, six FD schemes over 16 steps h in both dtypes",
    }


def format_check(result: dict[str, Any]) -> str:
    """A table for people: cost per point and ratio for each batch size, and the stages."""
    lines = [
        f"full check{'' if result.get('finite_differences', True) else ' without FD sweeps'} vs "
        f"torch.autograd.gradcheck, {result['n_exprs']} trees of {result['size']} "
        "nodes, 1 torch thread (median ms per checked point):",
        f"  {'points':>7} {'full check':>11} {'gradcheck':>10} {'ratio':>7}   "
        "where the full check's time goes",
    ]
    if "truth_compile_ms" in result:
        lines.insert(0, "fixed cost per expression (building its gradient and Hessian truth programs, "
                     f"median): {result['truth_compile_ms']:.2f} ms")
    if "full_check_fixed_ms" in result:
        lines.insert(1, "fixed cost per expression (its whole check at one point, median): "
                     f"{result['full_check_fixed_ms']:.1f} ms")
    for row in result["rows"]:
        stages = ", ".join(f"{k} {v:.3f}" for k, v in row["stages_ms_per_point"].items())
        lines.append(
            f"  {row['n_points']:>7} {row['full_check_ms_per_point']:>11.3f} "
            f"{row['gradcheck_ms_per_point']:>10.3f} {row['gradcheck_over_full_check']:>7.2f}   {stages}"
        )
    return "\n".join(lines)


def bench_scaling(
    sizes: Sequence[int] = (10, 30, 100, 300, 1000), n_points: int = 32, seed: int = 0
) -> dict[str, Any]:
    """Full-check seconds against tree size, and the fitted growth exponent."""
    import numpy as np
    import torch

    from harness.dtypes import round_array
    from harness.expr import size as tree_size
    from harness.expr import variables

    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    # warm up imports, torch kernels and per-op caches so the first size does not pay them
    warm = _every_op_tree()
    full_check(warm, round_array(rng.uniform(-2, 2, (n_points, len(variables(warm)))), "float32"))
    rows = []
    for n in sizes:
        expr = random_tree(n, seed + n)
        pts = round_array(rng.uniform(-2, 2, (n_points, len(variables(expr)))), "float32")
        start = time.perf_counter()
        full_check(expr, pts)
        rows.append({"nodes": tree_size(expr), "seconds": time.perf_counter() - start})
    x = np.log([r["nodes"] for r in rows])
    y = np.log([r["seconds"] for r in rows])
    slope = float(np.polyfit(x, y, 1)[0]) if len(rows) > 1 else float("nan")
    return {"benchmark": "scaling", "n_points": n_points, "rows": rows, "exponent": slope}


def bench_campaign(n_cases: int = 40, workers: Sequence[int] = (0, 2), seed: int = 0) -> dict[str, Any]:
    """Campaign throughput (cases per second) for each worker count (0: the cases run in
    this process, as ``run_campaign``'s ``workers`` says), and peak memory."""
    import resource
    import tempfile

    from harness.campaign import CampaignConfig, run_campaign

    rows = []
    for w in workers:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            run_campaign(
                CampaignConfig(n_cases=n_cases, seed=seed, corpus=()), tmp, workers=w, progress=False
            )
            seconds = time.perf_counter() - start
        rows.append({"workers": w, "seconds": seconds, "cases_per_second": n_cases / seconds})
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    speedup = rows[-1]["cases_per_second"] / rows[0]["cases_per_second"] if len(rows) > 1 else 1.0
    return {
        "benchmark": "campaign",
        "n_cases": n_cases,
        "rows": rows,
        "speedup": speedup,
        "peak_rss_mb": max(peak_self, peak_children),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffharness bench", description=__doc__)
    sub = parser.add_subparsers(dest="benchmark", required=True)
    gen = sub.add_parser("generation", help="cost of generating one case (tree + points)")
    gen.add_argument("--examples", type=int, default=200, help="cases to generate (200)")
    gen.add_argument("--points", type=int, default=32, help="points per case (32)")
    gen.add_argument("--seed", type=int, default=0, help="Hypothesis seed (0)")
    gen.add_argument("--dtype", default="float64", help="dtype the points are for")
    gen.add_argument("--kinks", choices=("avoid", "include"), default="avoid")
    chk = sub.add_parser("check", help="full check vs torch.autograd.gradcheck, per point")
    chk.add_argument("--exprs", type=int, default=10, help="expressions (10)")
    chk.add_argument(
        "--points", default="32,256,1024", help="points per expression, one or more (32,256,1024)"
    )
    chk.add_argument("--size", type=int, default=10, help="nodes per expression (10)")
    chk.add_argument("--seed", type=int, default=0)
    chk.add_argument(
        "--no-fd", action="store_true", help="leave the finite-difference sweeps out (AD verdicts only)"
    )
    sca = sub.add_parser("scaling", help="full-check cost against tree size, growth exponent")
    sca.add_argument("--sizes", default="10,30,100,300,1000", help="tree sizes")
    sca.add_argument("--points", type=int, default=32)
    camp = sub.add_parser(
        "campaign", help="campaign throughput in this process and with 2 workers, peak memory"
    )
    camp.add_argument("--cases", type=int, default=40)
    camp.add_argument("--workers", default="0,2", help="worker counts, 0 for this process (0,2)")
    det = sub.add_parser("detect", help="time to detection of wrong rules: diffharness against gradcheck")
    det.add_argument("--budget", type=float, default=10.0, help="seconds per contestant and rule (10)")
    sub.add_parser("all", help="check, scaling (10..300 nodes) and campaign, as one JSON document")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark named in ``argv``; print a human line and a JSON line."""
    args = _parser().parse_args(argv)
    if args.benchmark == "generation":
        result = bench_generation(args.examples, args.points, args.seed, dtype=args.dtype, kinks=args.kinks)
        print(format_generation(result))
        print(json.dumps(result, sort_keys=True))
    elif args.benchmark == "check":
        result = bench_check(
            args.exprs,
            tuple(int(v) for v in args.points.split(",")),
            args.size,
            args.seed,
            finite_differences=not args.no_fd,
        )
        print(format_check(result))
        print(json.dumps(result, sort_keys=True))
    elif args.benchmark == "scaling":
        result = bench_scaling(tuple(int(v) for v in args.sizes.split(",")), args.points)
        for row in result["rows"]:
            print(f"  {row['nodes']:>6} nodes: {row['seconds']:.3f} s")
        print(f"growth exponent: {result['exponent']:.2f}")
        print(json.dumps(result, sort_keys=True))
    elif args.benchmark == "campaign":
        result = bench_campaign(args.cases, tuple(int(w) for w in args.workers.split(",")))
        for row in result["rows"]:
            who = f"{row['workers']} worker(s)" if row["workers"] else "in this process"
            print(f"  {who}: {row['cases_per_second']:.2f} cases/s")
        print(f"speed-up: {result['speedup']:.2f}; peak memory {result['peak_rss_mb']:.0f} MB")
        print(json.dumps(result, sort_keys=True))
    elif args.benchmark == "detect":
        from harness.detection import detect, format_detect

        rows = detect(args.budget)
        print(format_detect(rows, args.budget))
        print(json.dumps(rows, sort_keys=True))
    elif args.benchmark == "all":
        results = [bench_check(), bench_scaling((10, 30, 100, 300)), bench_campaign()]
        print(json.dumps(results, sort_keys=True, indent=1))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
