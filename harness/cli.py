"""Command line: thin argparse wiring over the library (filled in by later work)."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    print("diffharness: no commands yet", file=sys.stderr)
    return 2
