"""Tests of the `dra-sim` command line, run as a real subprocess (`python -m sim.cli`).

Every test works in its own temporary directory. The bad-input cases start
their processes together (in a module fixture) because each one spends most
of its time importing the package.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sim import load_scenario
from sim.cluster.config import SchedulerConfig
from sim.cluster.driver import DriverConfig
from sim.results import TABLE_NAMES
from sim.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
SHARED_CLAIMS = ROOT / "scenarios" / "shared-claims.yaml"
METRICS_DOC = ROOT / "docs" / "metrics.md"
PROGRESS_BAR = "sim s ["
"""Text of the tqdm bar format of `dra-sim run`."""


def cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "sim.cli", *(str(arg) for arg in args)]


def dra_sim(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli(*args), cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def documented_columns() -> dict[str, list[str]]:
    """Return {table: columns} from the column tables of docs/metrics.md."""
    tables: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"## `(\w+)`", line)
        if heading:
            current = tables.setdefault(heading.group(1), [])
        elif line.startswith("## "):
            current = None
        elif current is not None and line.startswith("| `"):
            current.extend(re.findall(r"`([^`]+)`", line.strip("|").split("|")[0]))
    return tables


def documented_metric_prefixes() -> set[str]:
    """Return the summary metric names of docs/metrics.md (`<driver>` metrics as prefixes)."""
    text = METRICS_DOC.read_text(encoding="utf-8")
    names: set[str] = set()
    for line in text[text.index("## Summary metrics") :].splitlines():
        if line.startswith("| `"):
            listed = re.findall(r"`([^`]+)`", line.strip("|").split("|")[0])
            for name in listed:
                full = listed[0].rsplit("_", 1)[0] + name if name.startswith("_") else name
                names.add(full.replace("<driver>", ""))
    return names


# --------------------------------------------------------------------------------------
# A complete run
# --------------------------------------------------------------------------------------


@dataclass
class Run:
    process: subprocess.CompletedProcess[str]
    output: Path


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    output = tmp_path_factory.mktemp("cli-run") / "out"
    process = dra_sim(
        "run",
        QUICKSTART,
        "--output",
        output,
        "--seed",
        "5",
        "--set",
        "workloads.0.count=20",
        "--set",
        "workloads[inference].pod.cpu=2",
        "--until",
        "60",
        "--check-invariants",
    )
    return Run(process, output)


def test_run_exits_zero(full_run: Run) -> None:
    assert full_run.process.returncode == 0, full_run.process.stderr
    assert "Traceback" not in full_run.process.stderr


def test_run_writes_every_file(full_run: Run) -> None:
    names = {path.name for path in full_run.output.iterdir()}

    expected = {"scenario.resolved.yaml", "manifest.json", "summary.json"}
    expected |= {f"{name}.parquet" for name in TABLE_NAMES}
    assert expected <= names


def test_run_leaves_no_staging_directory(full_run: Run) -> None:
    assert [path.name for path in full_run.output.parent.iterdir()] == ["out"]


def test_resolved_scenario_has_every_default(full_run: Run) -> None:
    data = yaml.safe_load((full_run.output / "scenario.resolved.yaml").read_text())

    assert set(data) == {info.alias or name for name, info in Scenario.model_fields.items()}
    assert set(data["drivers"][0]) == {
        info.alias or name for name, info in DriverConfig.model_fields.items()
    }
    assert set(data["control_plane"]["scheduler"]) == set(SchedulerConfig.model_fields)
    assert data["seed"] == 5
    assert data["workloads"][0]["count"] == 20
    assert data["workloads"][0]["pod"]["cpu"] == 2


def test_resolved_scenario_loads_back_equal(full_run: Run) -> None:
    resolved = load_scenario(full_run.output / "scenario.resolved.yaml")

    original = load_scenario(
        QUICKSTART, overrides=["workloads.0.count=20", "workloads[inference].pod.cpu=2"], seed=5
    )
    assert resolved == original


def test_manifest_records_run(full_run: Run) -> None:
    manifest = json.loads((full_run.output / "manifest.json").read_text())

    assert manifest["seed"] == 5
    assert manifest["scenario"] == "quickstart"
    assert manifest["dra_sim_version"]
    assert manifest["python"] == ".".join(str(part) for part in sys.version_info[:3])
    assert "simpy" in manifest["libraries"]
    assert manifest["wall_time_s"] > 0
    assert manifest["sim_time_s"] == 60.0
    assert manifest["events_processed"] > 0


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_table_file_has_documented_columns(full_run: Run, name: str) -> None:
    table = pd.read_parquet(full_run.output / f"{name}.parquet")

    assert list(table.columns) == documented_columns()[name]


def test_objects_file_has_documented_columns(full_run: Run) -> None:
    table = pd.read_parquet(full_run.output / "objects.parquet")

    assert list(table.columns) == documented_columns()["objects"]


def test_until_stops_the_run(full_run: Run) -> None:
    pods = pd.read_parquet(full_run.output / "pods.parquet")

    assert 0 < len(pods) < 20
    assert pods.created_s.max() <= 60.0


def test_summary_file_has_every_metric(full_run: Run) -> None:
    summary = json.loads((full_run.output / "summary.json").read_text())

    documented = documented_metric_prefixes()

    per_driver = {name for name in documented if name.endswith(".")}
    assert set(summary) == (documented - per_driver) | {
        f"{prefix}gpu.example.com" for prefix in per_driver
    }
    assert summary["sim_time_s"] == 60.0


def test_run_prints_summary_table(full_run: Run) -> None:
    summary = json.loads((full_run.output / "summary.json").read_text())
    lines = full_run.process.stdout.splitlines()

    printed = [line.split()[0] for line in lines[:-1]]
    units = {line.split()[0]: line.split(maxsplit=2)[2] for line in lines[:-1]}
    assert sorted(printed) == sorted(summary)
    assert units["claims_allocated"] == "claims"
    assert units["allocations"] == units["deallocations"] == "writes"
    assert units["scheduling_latency_s_p95"] == "s"
    assert lines[-1] == f"results: {full_run.output}"


def test_short_run_shows_no_progress_bar(tmp_path: Path) -> None:
    # Five simulated seconds finish well within the bar's 2 s delay, even on a busy machine.
    process = dra_sim("run", SHARED_CLAIMS, "-o", tmp_path / "out", "--until", "5")

    assert process.returncode == 0, process.stderr
    assert PROGRESS_BAR not in process.stderr
    assert process.stderr == ""


def test_quiet_run_prints_nothing(tmp_path: Path) -> None:
    process = dra_sim("run", SHARED_CLAIMS, "-o", tmp_path / "out", "--quiet")

    assert process.returncode == 0, process.stderr
    assert process.stdout == ""
    assert process.stderr == ""
    assert (tmp_path / "out" / "summary.json").is_file()


def test_default_output_directory(tmp_path: Path) -> None:
    process = dra_sim("run", SHARED_CLAIMS, "--seed", "3", "-q", cwd=tmp_path)

    assert process.returncode == 0, process.stderr
    runs = list((tmp_path / "results" / "shared-claims").iterdir())
    assert len(runs) == 1
    assert re.fullmatch(r"\d{8}T\d{6}Z-seed3", runs[0].name)
    assert (runs[0] / "manifest.json").is_file()
    assert [path.name for path in (tmp_path / "results").iterdir()] == ["shared-claims"]


def test_existing_output_directory_rejected(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()

    process = dra_sim("run", SHARED_CLAIMS, "-o", tmp_path / "out")

    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'out'}: results directory already exists; choose another --output"
    ]
    assert list((tmp_path / "out").iterdir()) == []


def test_validate_accepts_scenario() -> None:
    process = dra_sim("validate", QUICKSTART, "--set", "cluster.node_pools.0.count=2")

    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == f"{QUICKSTART}: valid (2 nodes, 1 driver, 1 workload)"


def test_validate_rejects_scenario() -> None:
    process = dra_sim("validate", QUICKSTART, "--set", "drivers.0.model=gpus")

    assert process.returncode == 2
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "drivers[0].model" in lines[0]


# --------------------------------------------------------------------------------------
# Node faults from the scenario file
# --------------------------------------------------------------------------------------

NODE_FAULTS_SCENARIO = """\
horizon_s: 200
cluster:
  node_pools:
    - name: gpu-node
      count: 1
      devices:
        gpu.example.com: {count: 1}
drivers:
  - {name: gpu.example.com, model: devices}
resource_classes:
  - {name: gpu, driver_name: gpu.example.com}
node_faults:
  - nodes: [gpu-node]
    plugins:
      gpu.example.com:
        fail_prepare_windows_s: [[0, 50]]
  - nodes: [gpu-node-0]
    kubelet:
      restarts: [{at_s: 100, down_s: 10}]
workloads:
  - name: w
    arrival: {type: bursts, at_s: [1], size: 1}
    claims:
      - {name: gpu, template: {resource_class: gpu}}
"""


def test_node_faults_delay_pod_start(tmp_path: Path) -> None:
    """The plugin rejects prepare calls until t=50, and the kubelet restarts at t=45 for 10 s.
    The restarted kubelet syncs the pod at once, so the pod starts at t=55, before the 60-90 s
    resync after its first failed prepare at t=1 would."""
    scenario = tmp_path / "faults.yaml"
    scenario.write_text(NODE_FAULTS_SCENARIO, encoding="utf-8")
    output = tmp_path / "out"
    restart = "node_faults.1.kubelet.restarts.0.at_s=45"

    process = dra_sim("run", scenario, "-o", output, "--set", restart, "--quiet")

    assert process.returncode == 0, process.stderr
    events = pd.read_parquet(output / "events.parquet")
    kubelet = events[events["actor"] == "kubelet/gpu-node-0"]
    failures = kubelet[kubelet["reason"] == "FailedPrepareDynamicResources"]["time_s"]
    started = kubelet[kubelet["reason"] == "Started"]["time_s"].tolist()
    assert len(failures) >= 1
    assert failures.max() < 50.0
    assert len(started) == 1
    assert 55.0 <= started[0] < 56.0
    pods = pd.read_parquet(output / "pods.parquet")
    assert pods["running_s"].tolist() == started
    resolved = yaml.safe_load((output / "scenario.resolved.yaml").read_text(encoding="utf-8"))
    faults = resolved["node_faults"]
    assert [entry["nodes"] for entry in faults] == [["gpu-node"], ["gpu-node-0"]]
    assert faults[0]["plugins"]["gpu.example.com"]["fail_prepare_windows_s"] == [[0.0, 50.0]]
    assert faults[1]["kubelet"]["restarts"] == [{"at_s": 45.0, "down_s": 10.0}]
    assert faults[1]["kubelet"]["crash_down_s"] == 1.0


# --------------------------------------------------------------------------------------
# Bad input: one error line, exit code 2, no results
# --------------------------------------------------------------------------------------


def quickstart_with(old: str, new: str) -> str:
    text = QUICKSTART.read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


BAD_MANIFEST = """\
apiVersion: resource.k8s.io/v1alpha2
kind: ResourceClass
metadata:
  name: Bad_Name
driverName: gpu.example.com
"""


@dataclass
class BadInput:
    """A run that must fail: the files to write, the extra arguments, the message parts."""

    files: dict[str, str]
    args: list[str]
    fragments: list[str]
    scenario: str = "scenario.yaml"


BUILT_IN_DRIVER_MODELS = ("devices", "gpushare", "network-attached", "node-local")

BAD_INPUTS = {
    "malformed-yaml": BadInput(
        {"scenario.yaml": "name: x\ncluster: [\n"},
        [],
        ["scenario.yaml", "invalid YAML", "line 3, column 1"],
    ),
    "unknown-key": BadInput(
        {"scenario.yaml": quickstart_with("horizon_s:", "horizn_s:")},
        [],
        ["scenario.yaml", "horizn_s", "unknown key", "did you mean 'horizon_s'?", "allowed: "],
    ),
    "wrong-type": BadInput(
        {"scenario.yaml": quickstart_with("horizon_s: 900", "horizon_s: soon")},
        [],
        ["scenario.yaml", "horizon_s", "(got 'soon')", "valid number"],
    ),
    "negative-count": BadInput(
        {"scenario.yaml": quickstart_with("count: 100", "count: -3")},
        [],
        ["scenario.yaml", "workloads[0].count", "(got -3)", "greater than or equal to 0"],
    ),
    "unknown-driver-model": BadInput(
        {"scenario.yaml": quickstart_with("model: devices", "model: gpus")},
        [],
        [
            "scenario.yaml",
            "drivers[0].model",
            "(got 'gpus')",
            # The CLI runs in a subprocess, so only the built-in models are listed there;
            # this process may hold test-only models registered by other test modules.
            f"available: {', '.join(BUILT_IN_DRIVER_MODELS)})",
        ],
    ),
    "unknown-resource-class": BadInput(
        {
            "scenario.yaml": quickstart_with(
                "resource_class: gpu.example.com", "resource_class: tpu.example.com"
            )
        },
        [],
        [
            "scenario.yaml",
            "workloads[0].claims[0].template.resource_class",
            "'tpu.example.com'",
            "classes: ['gpu.example.com']",
        ],
    ),
    "missing-file": BadInput({}, [], ["missing.yaml", "file not found"], scenario="missing.yaml"),
    "unknown-fault-node": BadInput(
        {
            "scenario.yaml": QUICKSTART.read_text(encoding="utf-8")
            + "node_faults: [{nodes: [gpu-node-7], kubelet: {restarts: [{at_s: 5, down_s: 1}]}}]\n"
        },
        [],
        [
            "scenario.yaml",
            "node_faults[0].nodes[0]",
            "no node or node pool named 'gpu-node-7'",
            "(node pools: gpu-node; nodes: gpu-node-0 to gpu-node-3)",
        ],
    ),
    "unknown-fault-node-set": BadInput(
        {"scenario.yaml": QUICKSTART.read_text(encoding="utf-8")},
        ["--set", "node_faults=[{nodes: [gpu-node]}]", "--set", "node_faults.0.nodes.0=cpu-node"],
        [
            "scenario.yaml",
            "node_faults[0].nodes[0]",
            "no node or node pool named 'cpu-node'",
            "node pools: gpu-node;",
        ],
    ),
    "unknown-fault-driver": BadInput(
        {"scenario.yaml": QUICKSTART.read_text(encoding="utf-8")},
        [
            "--set",
            "node_faults=[{nodes: [gpu-node]}]",
            "--set",
            "node_faults.0.plugins[gpu.example.org].max_devices=1",
        ],
        [
            "scenario.yaml",
            "node_faults[0].plugins",
            "no driver named 'gpu.example.org'",
            "(drivers: gpu.example.com)",
        ],
    ),
    "unknown-set-key": BadInput(
        {"scenario.yaml": QUICKSTART.read_text(encoding="utf-8")},
        ["--set", "horizon=30"],
        ["scenario.yaml", "horizon", "did you mean 'horizon_s'?", "(got 'horizon=30')"],
    ),
    "rejected-manifest": BadInput(
        {
            "scenario.yaml": QUICKSTART.read_text(encoding="utf-8") + "manifests: [class.yaml]\n",
            "class.yaml": BAD_MANIFEST,
        },
        [],
        ["scenario.yaml", "ResourceClass", "metadata.name", "'Bad_Name'", "RFC 1123"],
    ),
    "invalid-seed": BadInput(
        {"scenario.yaml": QUICKSTART.read_text(encoding="utf-8")},
        ["--seed", "abc"],
        ["scenario.yaml", "--seed", "(got 'abc')", "integer >= 0"],
    ),
    "negative-seed": BadInput(
        {"scenario.yaml": QUICKSTART.read_text(encoding="utf-8")},
        ["--seed", "-1"],
        ["scenario.yaml", "--seed", "(got '-1')", "integer >= 0"],
    ),
    "unknown-option": BadInput(
        {"scenario.yaml": QUICKSTART.read_text(encoding="utf-8")},
        ["--sed", "1"],
        ["No such option: --sed", "--seed"],
    ),
}


@dataclass
class BadRun:
    directory: Path
    files_before: set[str]
    process: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BadRun]:
    started: dict[str, tuple[Path, set[str], subprocess.Popen[str]]] = {}
    for case, bad in BAD_INPUTS.items():
        directory = tmp_path_factory.mktemp(case)
        for name, text in bad.files.items():
            (directory / name).write_text(text, encoding="utf-8")
        before = {path.name for path in directory.iterdir()}
        command = cli("run", bad.scenario, "-o", "out", *bad.args)
        process = subprocess.Popen(
            command, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started[case] = (directory, before, process)
    runs = {}
    for case, (directory, before, process) in started.items():
        stdout, stderr = process.communicate(timeout=300)
        completed = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        runs[case] = BadRun(directory, before, completed)
    return runs


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_error_line(bad_runs: dict[str, BadRun], case: str) -> None:
    run = bad_runs[case]

    lines = run.process.stderr.strip().splitlines()

    assert run.process.returncode == 2, run.process.stderr
    assert "Traceback" not in run.process.stderr
    assert len(lines) == 1, run.process.stderr
    assert lines[0].startswith("error: ")
    for fragment in BAD_INPUTS[case].fragments:
        assert fragment in lines[0]
    assert run.process.stdout == ""


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_writes_no_results(bad_runs: dict[str, BadRun], case: str) -> None:
    run = bad_runs[case]

    after = {path.name for path in run.directory.iterdir()}

    assert not (run.directory / "out").exists()
    assert not (run.directory / "results").exists()
    assert after == run.files_before


# --------------------------------------------------------------------------------------
# Long runs: progress bar and Ctrl-C
# --------------------------------------------------------------------------------------

LONG_RUN = [
    "--set",
    "workloads.0.count=1000000",
    "--set",
    "workloads.0.arrival.rate_per_s=2",
    "--set",
    "horizon_s=1000000",
]


def wait_for_text(path: Path, process: subprocess.Popen[bytes], text: str, timeout_s: float) -> str:
    """Wait until the file that receives the process's stderr contains `text`; return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = path.read_text(encoding="utf-8", errors="replace")
        if text in seen:
            return seen
        if time.monotonic() > deadline or process.poll() is not None:
            raise AssertionError(f"{text!r} not seen on stderr; got {seen[-2000:]!r}")
        time.sleep(0.05)


def start_long_run(
    tmp_path: Path, *extra: str, verbose: bool = False
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start a run of about a million pods; return the process and its stderr file.

    stderr goes to a file outside `tmp_path / "run"`, so that a full pipe never
    blocks the process and the run's own directory stays clean.
    """
    stderr_path = tmp_path / "stderr.txt"
    (tmp_path / "run").mkdir()
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            cli(
                *(["-v"] if verbose else []),
                "run",
                QUICKSTART,
                "-o",
                tmp_path / "run" / "out",
                *LONG_RUN,
                *extra,
            ),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return process, stderr_path


def interrupt(process: subprocess.Popen[bytes]) -> int:
    """Send SIGINT (Ctrl-C) and return the exit code."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def test_long_run_shows_progress_bar(tmp_path: Path) -> None:
    process, stderr_path = start_long_run(tmp_path)
    try:
        seen = wait_for_text(stderr_path, process, PROGRESS_BAR, timeout_s=120)
    finally:
        interrupt(process)

    assert re.search(r"\d+/1000000 sim s \[", seen)


def test_ctrl_c_writes_no_results(tmp_path: Path) -> None:
    process, stderr_path = start_long_run(tmp_path, verbose=True)
    try:
        wait_for_text(stderr_path, process, "INFO sim.cli: simulating quickstart", timeout_s=120)
        time.sleep(1.0)
    finally:
        code = interrupt(process)

    stderr = stderr_path.read_text(encoding="utf-8")
    assert code == 130
    assert stderr.strip().splitlines()[-1] == "interrupted; no results written"
    assert "Traceback" not in stderr
    assert "INFO sim.cli: wrote" not in stderr
    assert list((tmp_path / "run").iterdir()) == []
