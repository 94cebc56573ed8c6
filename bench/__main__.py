"""`python -m bench [section ...]`: run every section in order, or only the named ones."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

from bench.report import format_table, load_average, machine_line

# In the order they run; each names a module bench.<name> with run() -> list[Figure].
SECTIONS = ("cluster", "lab", "consumers", "state", "lessons", "schemas", "transactions", "billing", "classroom")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("sections", nargs="*", metavar="section", help=f"any of: {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    chosen = [name for name in SECTIONS if not args.sections or name in args.sections]

    print(machine_line(), flush=True)
    failed = []
    for name in chosen:
        print(f"\n[{name}]", flush=True)
        started = time.perf_counter()
        try:
            figures = importlib.import_module(f"bench.{name}").run()
        except Exception:
            # One broken section should not hide the figures of the others.
            traceback.print_exc()
            failed.append(name)
            continue
        print(format_table(figures), flush=True)
        print(f"  ({name} took {time.perf_counter() - started:.0f} s)", flush=True)
    print(f"\nat end: {load_average()}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
