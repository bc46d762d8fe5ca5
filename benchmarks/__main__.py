"""Run dra-sim's benchmark cases, each in a fresh process, and print their speed and memory.

Usage, from the repository root:

    python -m benchmarks                                  # the six default cases
    python -m benchmarks --cases quickstart,synthetic-1k  # some of them
    python -m benchmarks --series                         # the scaling series only
    python -m benchmarks --quick                          # small variants, for a smoke test

Each case runs in its own interpreter (`python -m benchmarks.cases`), so its
peak memory is its own, and is stopped after `--timeout` seconds of wall time.
A case that finishes is followed by its bare SimPy reference
(`python -m benchmarks.reference`), run in another fresh interpreter. The
table has one row per case:

* pods: pods created (for openb paper mode, arrivals);
* wall s, cpu s: wall and CPU time of building, running and tabulating the
  case, without the interpreter start and imports;
* pods/s: pods divided by wall s;
* events/s: SimPy events divided by the wall time of the event loop alone;
* peak MB: peak resident set size of the case's process (`ru_maxrss`);
* wall/ref, cpu/ref: wall s and cpu s divided by the reference's;
* load: the 1-minute load average before and after the case.

The same rows, with the machine, the phase times and the outcome of each
case, are written to `<output dir>/<timestamp>.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.cases import (
    ALL_CASES,
    CASES,
    OPENB_TRACE_DIR,
    REPOSITORY,
    SERIES,
    write_json_atomic,
)

logger = logging.getLogger("benchmarks")

DEFAULT_TIMEOUT_S = 1800.0
DEFAULT_OUTPUT_DIR = REPOSITORY / "results" / "benchmarks"
POLL_INTERVAL_S = 0.2
"""Wall time between two checks whether a child process has exited, seconds."""
SKIPPED_EXIT_CODE = 3
"""Exit code of `benchmarks.cases` for a case whose input is missing."""
STDERR_TAIL_LINES = 20
"""Lines of a failed child's error output that the row keeps."""

DETAIL_KEYS = (
    "scheduling_latency_s_p50",
    "scheduling_latency_s_p95",
    "api_requests",
    "gpu_allocation_percent",
)
"""Outcome figures of a case that the JSON keeps, to show that the run did its work."""

COLUMNS = (
    ("case", "<22"),
    ("pods", ">7"),
    ("wall s", ">8"),
    ("cpu s", ">8"),
    ("pods/s", ">8"),
    ("events/s", ">9"),
    ("peak MB", ">8"),
    ("wall/ref", ">8"),
    ("cpu/ref", ">8"),
    ("load", ">9"),
    ("status", "<0"),
)
"""Table columns: header and format specification."""


@dataclass
class ChildOutcome:
    """Exit status, output files and resource use of one finished or stopped child process."""

    status: str
    """ok, skipped, failed or timed out."""
    result: dict[str, Any]
    """The JSON object the child wrote (empty when it wrote none)."""
    progress: dict[str, Any]
    """The last progress the child wrote (empty when it wrote none)."""
    wall_s: float
    """Wall time from the start of the child to its exit, seconds."""
    cpu_s: float
    """User plus system CPU time of the child, seconds."""
    peak_rss_mb: float
    stderr_tail: str


# --------------------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _child_environment() -> dict[str, str]:
    """Return the environment for a child, with the repository root on `PYTHONPATH`."""
    environment = dict(os.environ)
    paths = [str(REPOSITORY), *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    return environment


def run_child(
    module: str, arguments: Sequence[str], timeout_s: float, workdir: Path
) -> ChildOutcome:
    """Run `python -m module arguments...`, stopping it after `timeout_s` seconds of wall time.

    The child gets `--output` and `--progress` files in `workdir`.
    `os.wait4` returns the resource usage of this child alone, so the peak
    memory and CPU time are the child's even when it is killed.
    """
    output = workdir / f"{module}.json"
    progress = workdir / f"{module}.progress.json"
    stderr_path = workdir / f"{module}.stderr"
    for path in (output, progress):
        path.unlink(missing_ok=True)
    command = [sys.executable, "-m", module, *arguments, "--output", str(output)]
    if module == "benchmarks.cases":
        command += ["--progress", str(progress)]

    started = time.perf_counter()
    with stderr_path.open("wb") as stderr:
        child = subprocess.Popen(
            command,
            cwd=REPOSITORY,
            env=_child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        timed_out = False
        while True:
            pid, wait_status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > timeout_s:
                timed_out = True
                child.kill()
                pid, wait_status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(POLL_INTERVAL_S)
        # Tell Popen that the process was reaped here, so it does not wait again.
        child.returncode = os.waitstatus_to_exitcode(wait_status)
    wall_s = time.perf_counter() - started

    if timed_out:
        status = "timed out"
    elif child.returncode == 0:
        status = "ok"
    elif child.returncode == SKIPPED_EXIT_CODE:
        status = "skipped"
    else:
        status = "failed"
    lines = stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()
    return ChildOutcome(
        status=status,
        result=_read_json(output),
        progress=_read_json(progress),
        wall_s=wall_s,
        cpu_s=usage.ru_utime + usage.ru_stime,
        # Linux reports ru_maxrss in KiB.
        peak_rss_mb=usage.ru_maxrss / 1024.0,
        stderr_tail="\n".join(lines[-STDERR_TAIL_LINES:]),
    )


# --------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _progress_message(progress: dict[str, Any], timeout_s: float) -> str:
    """Describe how far a case got before it was stopped."""
    message = f"timed out after {timeout_s:g} s"
    phase = progress.get("phase")
    if phase == "build":
        return f"{message} while building the cluster"
    if phase == "tables":
        return f"{message} while building the output tables, after the run"
    pods = progress.get("pods")
    if pods is None:
        return f"{message} before reporting any progress"
    expected = progress.get("pods_expected")
    of_expected = f" of {expected:,}" if expected else ""
    message += f": {pods:,}{of_expected} pods created"
    for key in ("pods_bound", "pods_finished"):
        count = progress.get(key)
        if count is not None:
            message += f", {count:,} {key.removeprefix('pods_')}"
    sim_time = progress.get("sim_time_s")
    if sim_time is not None:
        message += f", simulated time {sim_time:,.0f} s"
    return message


def run_case(name: str, *, quick: bool, timeout_s: float, openb_trace: Path) -> dict[str, Any]:
    """Run one case and its reference in fresh processes; return the case's row."""
    case = ALL_CASES[name]
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="dra-sim-benchmark-") as directory:
        workdir = Path(directory)
        arguments = [name, "--openb-trace", str(openb_trace)]
        if quick:
            arguments.append("--quick")
        logger.info("running %s%s", name, " (quick)" if quick else "")
        outcome = run_child("benchmarks.cases", arguments, timeout_s, workdir)
        load_end = os.getloadavg()
        result = outcome.result

        row: dict[str, Any] = {
            "case": name,
            "description": case.description,
            "quick": quick,
            "status": outcome.status,
            "message": "",
            "scenario": result.get("scenario"),
            "nodes": result.get("nodes"),
            "pods": result.get("pods", outcome.progress.get("pods")),
            "pods_expected": result.get("pods_expected", outcome.progress.get("pods_expected")),
            "pods_bound": result.get("pods_bound"),
            "pods_finished": result.get("pods_finished"),
            "events": result.get("events"),
            "sim_time_s": result.get("sim_time_s", outcome.progress.get("sim_time_s")),
            "build_s": result.get("build_s"),
            "run_s": result.get("run_s"),
            "tables_s": result.get("tables_s"),
            "wall_s": result.get("wall_s", outcome.wall_s),
            "cpu_s": result.get("cpu_s", outcome.cpu_s),
            "process_wall_s": outcome.wall_s,
            "process_cpu_s": outcome.cpu_s,
            "peak_rss_mb": outcome.peak_rss_mb,
            "load_average_start": list(load_start),
            "load_average_end": list(load_end),
            "progress": outcome.progress,
            "details": {key: result[key] for key in DETAIL_KEYS if key in result},
        }
        if outcome.status == "timed out":
            row["message"] = _progress_message(outcome.progress, timeout_s)
        elif outcome.status == "skipped":
            row["message"] = str(result.get("message", "skipped"))
        elif outcome.status == "failed":
            last_line = outcome.stderr_tail.splitlines()[-1] if outcome.stderr_tail else ""
            row["message"] = f"failed: {last_line or 'no error output'}"
            row["stderr_tail"] = outcome.stderr_tail

        events = row["events"]
        row["pods_per_s"] = _ratio(row["pods"], row["wall_s"]) if outcome.status == "ok" else None
        row["events_per_s"] = _ratio(events, row["run_s"])
        row["reference"] = None
        if outcome.status == "ok" and events:
            row["reference"] = run_reference(name, quick, events, row["sim_time_s"], timeout_s)
        reference = row["reference"] or {}
        row["wall_ratio"] = _ratio(row["wall_s"], reference.get("wall_s"))
        row["cpu_ratio"] = _ratio(row["cpu_s"], reference.get("cpu_s"))
    logger.info("%s: %s", name, row["message"] or row["status"])
    return row


def run_reference(
    name: str, quick: bool, events: int, sim_end_s: float, timeout_s: float
) -> dict[str, Any] | None:
    """Run the bare SimPy reference of a finished case; return its result, None if it failed."""
    arguments = [name, "--events", str(events), "--sim-end-s", repr(float(sim_end_s))]
    if quick:
        arguments.append("--quick")
    with tempfile.TemporaryDirectory(prefix="dra-sim-reference-") as directory:
        outcome = run_child("benchmarks.reference", arguments, timeout_s, Path(directory))
    if outcome.status != "ok":
        logger.error("reference of %s %s: %s", name, outcome.status, outcome.stderr_tail)
        return None
    return outcome.result


# --------------------------------------------------------------------------------------
# Table and JSON
# --------------------------------------------------------------------------------------


def _number(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def format_row(row: dict[str, Any]) -> list[str]:
    """Return the table cells of one case's row."""
    load = f"{row['load_average_start'][0]:.1f}/{row['load_average_end'][0]:.1f}"
    status = row["status"] if not row["message"] else row["message"]
    return [
        row["case"],
        _number(row["pods"], 0),
        _number(row["wall_s"]),
        _number(row["cpu_s"]),
        _number(row["pods_per_s"]),
        _number(row["events_per_s"], 0),
        _number(row["peak_rss_mb"], 0),
        _number(row["wall_ratio"]),
        _number(row["cpu_ratio"]),
        load,
        status.splitlines()[0] if status else "",
    ]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Return the rows as a fixed-width text table with a header line."""
    lines = [" ".join(f"{header:{spec}}" for header, spec in COLUMNS).rstrip()]
    for row in rows:
        cells = format_row(row)
        lines.append(
            " ".join(f"{cell:{spec}}" for cell, (_, spec) in zip(cells, COLUMNS, strict=True))
        )
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total_mb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def machine_description() -> dict[str, Any]:
    """Return the CPU model, core count, memory, OS and library versions of this machine."""
    versions: dict[str, str | None] = {}
    for package in ("dra-sim", "simpy", "numpy", "pydantic"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_total_mb": _memory_total_mb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "libraries": versions,
    }


def source_revision() -> dict[str, Any]:
    """Return the git commit of the checkout and whether `sim/` has uncommitted changes.

    Both are None when git or the repository is not available.
    """
    revision: dict[str, Any] = {"commit": None, "sim_modified": None}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--", "sim"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as error:
        logger.warning("git revision not recorded: %s", error)
        return revision
    revision["commit"] = commit.stdout.strip()
    revision["sim_modified"] = bool(changes.stdout.strip())
    return revision


def results_path(output_dir: Path) -> Path:
    """Return a new `<output_dir>/<timestamp>.json` path, creating the folder."""
    output_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = output_dir / f"{stamp}.json"
    suffix = 1
    while path.exists():
        path = output_dir / f"{stamp}-{suffix}.json"
        suffix += 1
    return path


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def _case_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ALL_CASES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown case {', '.join(unknown)}; known cases: {', '.join(ALL_CASES)}"
        )
    return names


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure dra-sim's wall time, event rate and peak memory per benchmark case.",
    )
    parser.add_argument(
        "--cases",
        type=_case_list,
        metavar="NAME,...",
        help=f"comma-separated cases to run (default: {','.join(CASES)}); "
        f"series cases: {','.join(SERIES)}",
    )
    parser.add_argument(
        "--series",
        action="store_true",
        help="run the scaling series (fixed nodes with growing pods, fixed pods with growing "
        "nodes); without --cases, only the series",
    )
    parser.add_argument(
        "--quick", action="store_true", help="run each case's small variant (a smoke test)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"wall-time limit per case, seconds (default: {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT_DIR,
        help="folder for the JSON results (default: results/benchmarks)",
    )
    parser.add_argument(
        "--openb-trace",
        type=Path,
        default=OPENB_TRACE_DIR,
        help="folder with the openb trace CSV files (default: ../shared/corpus/openb/csv)",
    )
    arguments = parser.parse_args(argv)
    if not math.isfinite(arguments.timeout) or arguments.timeout <= 0:
        parser.error(f"--timeout must be a positive number of seconds (got {arguments.timeout:g})")
    return arguments


def selected_cases(arguments: argparse.Namespace) -> list[str]:
    """Return the case names to run, in order, without repeats."""
    names: list[str] = list(arguments.cases or [])
    if arguments.series:
        names += list(SERIES)
    elif not names:
        names = list(CASES)
    return list(dict.fromkeys(names))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected cases, print the table and write the JSON; return 1 if a case failed."""
    arguments = _parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    path = results_path(arguments.output_dir)
    report: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "finished": None,
        "machine": machine_description(),
        "source": source_revision(),
        "quick": arguments.quick,
        "timeout_s": arguments.timeout,
        "columns": [header for header, _ in COLUMNS],
        "cases": [],
    }
    rows: list[dict[str, Any]] = report["cases"]

    for name in selected_cases(arguments):
        rows.append(
            run_case(
                name,
                quick=arguments.quick,
                timeout_s=arguments.timeout,
                openb_trace=arguments.openb_trace,
            )
        )
        # Rewritten after every case, so a suite that is stopped keeps what it measured.
        write_json_atomic(path, report)

    report["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    write_json_atomic(path, report)

    print(format_table(rows))
    print(f"results written to {path}")
    return 1 if any(row["status"] == "failed" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
