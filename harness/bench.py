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
from typing import Any

__all__ = ["bench_generation", "format_generation", "main", "summarise_ms"]


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffharness bench", description=__doc__)
    sub = parser.add_subparsers(dest="benchmark", required=True)
    gen = sub.add_parser("generation", help="cost of generating one case (tree + points)")
    gen.add_argument("--examples", type=int, default=200, help="cases to generate (200)")
    gen.add_argument("--points", type=int, default=32, help="points per case (32)")
    gen.add_argument("--seed", type=int, default=0, help="Hypothesis seed (0)")
    gen.add_argument("--dtype", default="float64", help="dtype the points are for")
    gen.add_argument("--kinks", choices=("avoid", "include"), default="avoid")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark named in ``argv``; print a human line and a JSON line."""
    args = _parser().parse_args(argv)
    if args.benchmark == "generation":
        result = bench_generation(
            args.examples, args.points, args.seed, dtype=args.dtype, kinks=args.kinks
        )
        print(format_generation(result))
        print(json.dumps(result, sort_keys=True))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
