"""Benchmarks for kafkalab: `make bench` (or `python -m bench [section ...]`).

Each section is a module here with a `run() -> list[Figure]`; `__main__` runs them in the
order of `SECTIONS` and prints their figures. Bench measures and prints; it asserts nothing
about speed, so a slow machine never fails it.
"""
