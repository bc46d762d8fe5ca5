"""Smoke test of the benchmark suite: the quick quickstart case, its table and its JSON.

Timings are not checked because they depend on the machine and its load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]

TABLE_HEADERS = (
    "case",
    "pods",
    "wall s",
    "cpu s",
    "pods/s",
    "events/s",
    "peak MB",
    "wall/ref",
    "cpu/ref",
    "load",
    "status",
)
POSITIVE_FIELDS = (
    "pods",
    "events",
    "wall_s",
    "cpu_s",
    "pods_per_s",
    "events_per_s",
    "peak_rss_mb",
    "wall_ratio",
    "cpu_ratio",
)


def run_benchmarks(*arguments: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python -m benchmarks ARGUMENTS` in the repository and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *arguments],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    output_dir = tmp_path_factory.mktemp("benchmarks")
    completed = run_benchmarks(
        "--cases", "quickstart", "--quick", "--output-dir", str(output_dir), timeout_s=300
    )
    assert completed.returncode == 0, completed.stderr
    written = list(output_dir.glob("*.json"))
    assert len(written) == 1, f"expected one JSON file in {output_dir}, found {written}"
    return completed.stdout, json.loads(written[0].read_text(encoding="utf-8"))


def test_table_has_every_column(quick_run: tuple[str, dict[str, Any]]) -> None:
    stdout, _ = quick_run
    lines = stdout.splitlines()
    header = lines[0]
    for column in TABLE_HEADERS:
        assert column in header
    rows = [line for line in lines[1:] if line.startswith("quickstart")]
    assert len(rows) == 1
    assert rows[0].rstrip().endswith("ok")
    assert "-" not in rows[0].split()[1:-1], f"a column has no value: {rows[0]}"


def test_json_row_has_every_figure(quick_run: tuple[str, dict[str, Any]]) -> None:
    _, report = quick_run
    assert report["columns"] == list(TABLE_HEADERS)
    assert report["quick"] is True
    assert [row["case"] for row in report["cases"]] == ["quickstart"]
    row = report["cases"][0]
    assert row["status"] == "ok"
    for field in POSITIVE_FIELDS:
        assert row[field] > 0, field
    assert len(row["load_average_start"]) == 3
    assert len(row["load_average_end"]) == 3


def test_json_counts_quick_pods(quick_run: tuple[str, dict[str, Any]]) -> None:
    _, report = quick_run
    row = report["cases"][0]
    assert row["pods"] == 20
    assert row["pods_bound"] == 20
    assert row["pods_finished"] == 20


def test_reference_matches_event_count(quick_run: tuple[str, dict[str, Any]]) -> None:
    _, report = quick_run
    row = report["cases"][0]
    assert row["reference"]["events"] == row["events"]
    assert row["reference"]["pods"] == row["pods"]


def test_json_describes_machine(quick_run: tuple[str, dict[str, Any]]) -> None:
    _, report = quick_run
    machine = report["machine"]
    assert machine["cpu_model"]
    assert machine["cores"] >= 1
    assert machine["python"] == ".".join(str(part) for part in sys.version_info[:3])


def test_unknown_case_is_rejected() -> None:
    completed = run_benchmarks("--cases", "no-such-case")
    assert completed.returncode == 2
    assert "unknown case no-such-case" in completed.stderr


def test_case_past_timeout_is_reported(tmp_path: Path) -> None:
    completed = run_benchmarks(
        "--cases", "quickstart", "--timeout", "0.5", "--output-dir", str(tmp_path)
    )
    assert completed.returncode == 0, completed.stderr
    assert "timed out after 0.5 s" in completed.stdout
    (written,) = tmp_path.glob("*.json")
    row = json.loads(written.read_text(encoding="utf-8"))["cases"][0]
    assert row["status"] == "timed out"
    assert row["message"].startswith("timed out after 0.5 s")
    assert row["reference"] is None


@pytest.mark.parametrize("timeout", ["nan", "inf", "-1", "0"])
def test_bad_timeout_rejected(timeout: str) -> None:
    completed = run_benchmarks("--cases", "quickstart", "--timeout", timeout)
    assert completed.returncode == 2
    assert "--timeout must be a positive number of seconds" in completed.stderr
