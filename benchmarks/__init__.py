"""Benchmarks of dra-sim's speed and memory; run them with `python -m benchmarks`.

`benchmarks.cases` defines the cases and runs one in a child process,
`benchmarks.reference` is the bare SimPy program that the wall times are
divided by, and `python -m benchmarks` runs the suite and prints the table
(see docs/benchmarks.md).
"""
