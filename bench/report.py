"""Figures and how they are printed: an aligned table, plus a line describing the machine."""

from __future__ import annotations

import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    note: str = ""
    digits: int = 1

    @property
    def shown(self) -> str:
        return f"{self.value:.{self.digits}f}"


def format_table(figures: Iterable[Figure], *, indent: str = "  ") -> str:
    figures = list(figures)
    if not figures:
        return f"{indent}(no figures)"
    name_width = max(len(f.name) for f in figures)
    value_width = max(len(f.shown) for f in figures)
    unit_width = max(len(f.unit) for f in figures)
    lines = [
        f"{indent}{f.name:<{name_width}}  {f.shown:>{value_width}} {f.unit:<{unit_width}}  {f.note}".rstrip()
        for f in figures
    ]
    return "\n".join(lines)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()  # the figures `uptime` prints
    return f"load avg {one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min)"


def machine_line() -> str:
    """What a reader needs to judge how noisy the figures are."""
    physical = psutil.cpu_count(logical=False)
    logical = psutil.cpu_count(logical=True)
    memory_gib = psutil.virtual_memory().total / 2**30
    return (
        f"machine: {physical or '?'} cores ({logical} logical), {memory_gib:.1f} GiB RAM, "
        f"Python {platform.python_version()}, Java {java_version()}, {load_average()}"
    )


def java_version() -> str:
    java_home = os.environ.get("JAVA_HOME", "").strip()
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java:
        return "not found"
    try:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return "not found"
    match = re.search(r'version "([^"]+)"', result.stderr + result.stdout)
    return match.group(1) if match else "unknown"


def progress(message: str) -> None:
    """A line on stderr while a slow measurement runs, so the table on stdout stays clean."""
    print(f"  … {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (1–99) of the values, NaN for none."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
