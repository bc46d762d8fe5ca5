"""More bad inputs for the `dra-sim` commands: one error line, exit code 2, nothing written.

Most cases run the command in-process with typer's CliRunner. The logging
cases (`run -v`, `sweep -q` with Dask) run `python -m sim.cli` as a
subprocess, because they depend on the logging set-up of a fresh process.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from sim.cli import app

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
SHARED_CLAIMS = ROOT / "scenarios" / "shared-claims.yaml"
TEMPLATE_PARAMETERS = "workloads.0.claims.0.template.parameters"


def invoke(*args: str | Path, cwd: Path | None = None) -> Result:
    arguments = [str(arg) for arg in args]
    if cwd is None:
        return CliRunner().invoke(app, arguments)
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, arguments)
    finally:
        os.chdir(previous)


def assert_one_error_line(result: Result, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""


# --------------------------------------------------------------------------------------
# `dra-sim run`: scenario values, output location, options
# --------------------------------------------------------------------------------------


@dataclass
class BadRun:
    """A `run` that must fail: scenario text, extra arguments and parts of the message."""

    args: list[str]
    fragments: list[str]
    scenario: str = field(default_factory=lambda: QUICKSTART.read_text(encoding="utf-8"))
    files: dict[str, str] = field(default_factory=dict)


BAD_RUNS = {
    "horizon-bool": BadRun(
        [],
        ["scenario.yaml", "horizon_s", "expected a number, not a boolean", "(got True)"],
        scenario=QUICKSTART.read_text(encoding="utf-8").replace(
            "horizon_s: 900", "horizon_s: true"
        ),
    ),
    "count-bool": BadRun(
        ["--set", "workloads.0.count=yes"],
        ["scenario.yaml", "workloads[0].count", "expected an integer, not a boolean"],
    ),
    "driver-setting-bool": BadRun(
        ["--set", "drivers.0.workers=true"],
        ["scenario.yaml", "drivers[0].workers", "expected an integer, not a boolean"],
    ),
    "control-plane-bool": BadRun(
        ["--set", "control_plane.scheduler.qps=false"],
        ["control_plane.scheduler.qps", "expected a number, not a boolean", "(got False)"],
    ),
    "model-setting-bool": BadRun(
        [
            "--set",
            "drivers.0.model=node-local",
            "--set",
            "drivers.0.model_settings.max_claims_per_node=true",
        ],
        ["drivers[0].model_settings.max_claims_per_node", "expected an integer"],
    ),
    "set-unclosed-bracket": BadRun(
        ["--set", "drivers[x.workers=2"],
        [
            "scenario.yaml: --set: invalid key 'drivers[x.workers'",
            "'[' is not closed by ']'",
            "drivers[gpu.example.com].workers=2",
            "(got 'drivers[x.workers=2')",
        ],
    ),
    "start-after-until": BadRun(
        ["--set", "workloads.0.start_s=500", "--set", "workloads.0.until_s=100"],
        ["scenario.yaml", "workloads[0]", "start_s (500)", "until_s (100)"],
    ),
    "claim-count-negative": BadRun(
        ["--set", f"{TEMPLATE_PARAMETERS}.count=-1"],
        [
            "scenario.yaml",
            "workloads[0].claims[0].template.parameters.count",
            "must be a positive integer",
            "(got -1)",
        ],
    ),
    "node-label-key": BadRun(
        ["--set", "cluster.node_pools.0.labels={'bad label!': x}"],
        [
            "scenario.yaml: cluster.node_pools[0].labels: invalid label key 'bad label!'",
            "must consist of letters, digits",
        ],
    ),
    "node-label-value": BadRun(
        ["--set", "cluster.node_pools.0.labels={gpu: 'a b'}"],
        ["cluster.node_pools[0].labels: invalid value 'a b' of label 'gpu'"],
    ),
    "pod-node-selector-key": BadRun(
        ["--set", "workloads.0.pod.node_selector={'a/b/c': x}"],
        ["workloads[0].pod.node_selector: invalid label key 'a/b/c'"],
    ),
    "claim-parameters-unknown-key": BadRun(
        ["--set", f"{TEMPLATE_PARAMETERS}={{cnt: 2}}"],
        [
            "scenario.yaml",
            "workloads[0].claims[0].template.parameters.cnt",
            "unknown field; did you mean 'count'?",
            "(allowed: count, selector, shareable)",
        ],
    ),
    "class-parameters-unknown-key": BadRun(
        ["--set", "resource_classes.0.parameters={count: 2}"],
        ["resource_classes[0].parameters.count", "(allowed: selector, shareable)"],
    ),
    "claim-count-text": BadRun(
        ["--set", f"{TEMPLATE_PARAMETERS}.count=x"],
        ["workloads[0].claims[0].template.parameters.count", "(got 'x')"],
    ),
    "class-selector-text": BadRun(
        ["--set", "resource_classes.0.parameters={selector: {min_memory: lots}}"],
        ["resource_classes[0].parameters.selector.min_memory", "must be a number", "'lots'"],
    ),
    "gpushare-share-of-two": BadRun(
        [
            "--set",
            "drivers.0.model=gpushare",
            "--set",
            f"{TEMPLATE_PARAMETERS}={{count: 2, gpu_milli: 500}}",
        ],
        ["workloads[0].claims[0].template.parameters.gpu_milli", "needs count 1"],
    ),
    "node-local-mapping-value": BadRun(
        [
            "--set",
            "drivers.0.model=node-local",
            "--set",
            f"{TEMPLATE_PARAMETERS}={{count: {{a: 1}}}}",
        ],
        ["template.parameters.count", "must be a string, number or boolean", "{'a': 1}"],
    ),
    "until-infinite": BadRun(
        ["--until", "inf"], ["--until", "invalid time inf", "finite number of seconds"]
    ),
    "output-below-file": BadRun(
        ["-o", "taken/out"],
        ["taken/out", "is a file, not a folder", "choose another --output"],
        files={"taken": "not a folder\n"},
    ),
    "output-is-file": BadRun(
        ["-o", "taken"],
        ["taken: a file with this name exists", "choose another --output"],
        files={"taken": "not a folder\n"},
    ),
}


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_bad_run_rejected_before_simulating(tmp_path: Path, case: str) -> None:
    bad = BAD_RUNS[case]
    (tmp_path / "scenario.yaml").write_text(bad.scenario, encoding="utf-8")
    for name, text in bad.files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    before = sorted(path.name for path in tmp_path.iterdir())
    args = bad.args if "-o" in bad.args else ["-o", "out", *bad.args]

    result = invoke("run", "scenario.yaml", *args, cwd=tmp_path)

    assert_one_error_line(result, *bad.fragments)
    assert sorted(path.name for path in tmp_path.iterdir()) == before


def test_valid_claim_parameters_accepted() -> None:
    result = invoke(
        "validate",
        QUICKSTART,
        "--set",
        "drivers.0.model=gpushare",
        "--set",
        f"{TEMPLATE_PARAMETERS}={{count: 1, gpu_milli: 500}}",
    )

    assert result.exit_code == 0, result.output


def test_boolean_device_attribute_accepted(tmp_path: Path) -> None:
    text = QUICKSTART.read_text(encoding="utf-8")
    old = "attributes: {model: A100, memory: 40960}"
    assert old in text
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        text.replace(old, "attributes: {model: A100, memory: 40960, mig: true}"), encoding="utf-8"
    )

    result = invoke("validate", scenario)

    assert result.exit_code == 0, result.output


def test_scenario_directory_rejected(tmp_path: Path) -> None:
    result = invoke("run", tmp_path, "-o", tmp_path / "out")

    assert_one_error_line(result, str(tmp_path), "is a directory, not a file", "scenario YAML file")
    assert "not found" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_validate_directory_rejected(tmp_path: Path) -> None:
    result = invoke("validate", tmp_path)

    assert_one_error_line(result, "is a directory, not a file")


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root may write into a read-only folder",
)
def test_output_in_read_only_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = invoke("run", SHARED_CLAIMS, "-o", locked / "sub" / "out")

        assert_one_error_line(result, "cannot create folders in", str(locked))
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_output_under_proc_rejected_before_running() -> None:
    # Permission bits allow root to write to /proc, but no folder can be created there.
    result = invoke("run", SHARED_CLAIMS, "-o", "/proc/dra-sim-no-such/out")

    assert_one_error_line(result, "cannot create folders in /proc")


# --------------------------------------------------------------------------------------
# Parameters known only at run time (manifests): reported, not silent
# --------------------------------------------------------------------------------------

BAD_PARAMETERS_MANIFEST = """\
apiVersion: resource.k8s.io/v1alpha2
kind: ResourceClass
metadata: {name: gpu.example.com}
driverName: gpu.resource.example.com
---
apiVersion: gpu.resource.example.com/v1alpha1
kind: GpuClaimParameters
metadata: {name: bad}
spec: {count: -1}
---
apiVersion: resource.k8s.io/v1alpha2
kind: ResourceClaimTemplate
metadata: {name: gpu}
spec:
  spec:
    resourceClassName: gpu.example.com
    parametersRef: {apiGroup: gpu.resource.example.com, kind: GpuClaimParameters, name: bad}
---
apiVersion: v1
kind: Pod
metadata: {name: waiting}
spec:
  containers: [{name: main, resources: {claims: [{name: gpu}]}}]
  resourceClaims: [{name: gpu, source: {resourceClaimTemplateName: gpu}}]
"""


def test_manifest_parameter_error_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = tmp_path / "bad-parameters.yaml"
    manifest.write_text(BAD_PARAMETERS_MANIFEST, encoding="utf-8")

    with caplog.at_level(logging.WARNING, logger="sim.results"):
        result = invoke("run", "--manifest", manifest, "-o", tmp_path / "out", "-q")

    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    errors = written["driver_parameter_errors"]
    assert errors, written
    assert errors[0]["driver"] == "gpu.resource.example.com"
    assert "GpuClaimParameters default/bad" in errors[0]["message"]
    assert "spec.count must be a positive integer, got -1" in errors[0]["message"]
    warnings = [record.getMessage() for record in caplog.records if record.name == "sim.results"]
    assert len(warnings) == 1
    assert "pods that use them stay pending" in warnings[0]
    assert "spec.count must be a positive integer, got -1" in warnings[0]


def test_valid_run_has_no_parameter_errors(tmp_path: Path) -> None:
    result = invoke("run", SHARED_CLAIMS, "-o", tmp_path / "out", "-q")

    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert written["driver_parameter_errors"] == []


# --------------------------------------------------------------------------------------
# `dra-sim get --at`
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("get") / "out"
    result = invoke("run", SHARED_CLAIMS, "-o", directory, "-q")
    assert result.exit_code == 0, result.output
    return directory


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1"])
def test_get_at_rejects_value(results_dir: Path, value: str) -> None:
    result = invoke("get", results_dir, "pods", f"--at={value}")

    assert_one_error_line(result, "--at", "invalid time", "finite number of seconds >= 0")


def test_get_at_accepts_time(results_dir: Path) -> None:
    result = invoke("get", results_dir, "pods", "--at", "5")

    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------------------
# `dra-sim import openb`
# --------------------------------------------------------------------------------------


@pytest.fixture
def openb_csv(corpus_dir: Path) -> Path:
    return corpus_dir / "openb" / "csv"


def import_openb(nodes: Path, pods: Path, output: Path, *options: str) -> Result:
    return invoke("import", "openb", "--nodes", nodes, "--pods", pods, "-o", output, *options)


def import_default_openb(openb_csv: Path, output: Path, *options: str) -> Result:
    """Run `import openb` on the trace's GPU node list and default pod list."""
    return import_openb(
        openb_csv / "openb_node_list_gpu_node.csv",
        openb_csv / "openb_pod_list_default.csv",
        output,
        *options,
    )


@pytest.mark.parametrize("value", ["nan", "inf", "-2", "0"])
def test_import_time_scale_rejected(openb_csv: Path, tmp_path: Path, value: str) -> None:
    result = import_default_openb(openb_csv, tmp_path / "x.yaml", f"--time-scale={value}")

    assert_one_error_line(result, "--time-scale", "positive and finite")
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.parametrize("which", ["--nodes", "--pods"])
def test_import_binary_csv_names_file(openb_csv: Path, tmp_path: Path, which: str) -> None:
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"sn,cpu_milli\n\xff\xfe\x00\x81\n")
    files = {
        "--nodes": openb_csv / "openb_node_list_gpu_node.csv",
        "--pods": openb_csv / "openb_pod_list_default.csv",
    }
    files[which] = binary

    result = import_openb(files["--nodes"], files["--pods"], tmp_path / "x.yaml")

    assert_one_error_line(result, str(binary), "not a UTF-8 text file")
    assert not (tmp_path / "x.yaml").exists()


def test_import_pods_without_times_rejected(openb_csv: Path, tmp_path: Path) -> None:
    full = (openb_csv / "openb_pod_list_default.csv").read_text(encoding="utf-8")
    pods = tmp_path / "pods.csv"
    pods.write_text(
        "".join(",".join(line.split(",")[:5]) + "\n" for line in full.splitlines()),
        encoding="utf-8",
    )

    result = import_openb(openb_csv / "openb_node_list_gpu_node.csv", pods, tmp_path / "x.yaml")

    assert_one_error_line(
        result,
        str(pods),
        "missing column(s) creation_time, deletion_time",
        "expected the header name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,",
    )
    assert not (tmp_path / "x.yaml").exists()


# --------------------------------------------------------------------------------------
# Damaged results directories: `report`, `explain`, `compare`, `get`
# --------------------------------------------------------------------------------------


def damage(path: Path) -> None:
    """Truncate a Parquet table, or overwrite a text file with invalid JSON and YAML."""
    if path.suffix == ".parquet":
        os.truncate(path, 100)
    else:
        path.write_text("{not: [valid", encoding="utf-8")


DAMAGED_READS = {
    "report-pods": (["report", "{results}"], "pods.parquet"),
    "report-summary": (["report", "{results}"], "summary.json"),
    "explain-pods": (["explain", "{results}", "pod", "any"], "pods.parquet"),
    "explain-scenario": (["explain", "{results}", "pod", "any"], "scenario.resolved.yaml"),
    "compare-pods": (["compare", "{results}", "{good}", "-o", "{plot}"], "pods.parquet"),
    "compare-summary": (["compare", "{good}", "{results}", "-o", "{plot}"], "summary.json"),
    "get-objects": (["get", "{results}", "pods"], "objects.parquet"),
    "get-manifest": (["get", "{results}", "pods"], "manifest.json"),
}


@pytest.mark.parametrize(("args", "file_name"), DAMAGED_READS.values(), ids=DAMAGED_READS.keys())
def test_damaged_results_file_named(
    results_dir: Path, tmp_path: Path, args: list[str], file_name: str
) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(results_dir, damaged)
    damage(damaged / file_name)
    plot = tmp_path / "plot"
    values = {"results": damaged, "good": results_dir, "plot": plot}

    result = invoke(*(arg.format(**values) for arg in args))

    assert_one_error_line(
        result, str(damaged / file_name), "damaged or unreadable", "run the scenario again"
    )
    assert not (damaged / "report.html").exists()
    assert not (damaged / "plots").exists()
    assert not plot.exists()


@pytest.mark.parametrize("command", ["report", "explain", "compare"])
def test_table_without_a_column_named(results_dir: Path, tmp_path: Path, command: str) -> None:
    # A table written by an older or edited run may lack a column that the commands read.
    damaged = tmp_path / "damaged"
    shutil.copytree(results_dir, damaged)
    pods = damaged / "pods.parquet"
    pd.read_parquet(pods).drop(columns=["running_s"]).to_parquet(pods)
    args = {
        "report": ["report", str(damaged)],
        "explain": ["explain", str(damaged), "pod", "any"],
        "compare": ["compare", str(damaged), str(results_dir), "-o", str(tmp_path / "plot")],
    }[command]

    result = invoke(*args)

    assert_one_error_line(result, str(pods), "missing columns: running_s", "run the scenario again")


# --------------------------------------------------------------------------------------
# Outputs that cannot be created: `sweep`, `import openb`, `compare`, `report`
# --------------------------------------------------------------------------------------

UNDER_PROC = Path("/proc/dra-sim-no-such")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_sweep_output_under_proc_rejected() -> None:
    # Permission bits allow root to write to /proc, but no folder can be created there.
    result = invoke(
        "sweep", QUICKSTART, "--param", "horizon_s=100", "-q", "-o", UNDER_PROC / "sweep"
    )

    assert_one_error_line(result, str(UNDER_PROC / "sweep"), "cannot create folders in /proc")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_import_output_under_proc_rejected(openb_csv: Path) -> None:
    result = import_default_openb(openb_csv, UNDER_PROC / "scenario.yaml")

    assert_one_error_line(
        result, str(UNDER_PROC / "scenario.yaml"), "cannot create folders in /proc"
    )


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_compare_output_under_proc_rejected(results_dir: Path) -> None:
    result = invoke("compare", results_dir, results_dir, "-o", UNDER_PROC)

    assert_one_error_line(result, str(UNDER_PROC), "cannot create folders in /proc")


def test_import_creates_output_folder(openb_csv: Path, tmp_path: Path) -> None:
    output = tmp_path / "new" / "scenario.yaml"

    result = import_default_openb(openb_csv, output, "--max-pods", "5")

    assert result.exit_code == 0, result.output
    assert output.is_file()


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root may write into a read-only folder",
)
def test_report_in_read_only_results(results_dir: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    shutil.copytree(results_dir, locked)
    locked.chmod(0o555)
    try:
        result = invoke("report", locked)

        assert_one_error_line(
            result, "cannot write the report", f"cannot create folders in {locked}"
        )
        assert not (locked / "report.html").exists()
        assert not (locked / "plots").exists()
    finally:
        locked.chmod(0o755)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root may write into a read-only folder",
)
@pytest.mark.parametrize("command", ["sweep", "compare"])
def test_output_in_read_only_folder_other_commands(
    results_dir: Path, tmp_path: Path, command: str
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    arguments = {
        "sweep": ["sweep", QUICKSTART, "--param", "horizon_s=100", "-q", "-o", locked / "out"],
        "compare": ["compare", results_dir, results_dir, "-o", locked / "out"],
    }
    try:
        result = invoke(*arguments[command])

        assert_one_error_line(result, "cannot create folders in", str(locked))
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


# --------------------------------------------------------------------------------------
# Logging: `run -v` and `sweep -q` with Dask (fresh processes)
# --------------------------------------------------------------------------------------


def dra_sim(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sim.cli", *(str(arg) for arg in args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_verbose_after_run_command(tmp_path: Path) -> None:
    process = dra_sim("run", SHARED_CLAIMS, "-v", "-q", "-o", "out", cwd=tmp_path)

    assert process.returncode == 0, process.stderr
    assert "INFO sim.cli: simulating shared-claims" in process.stderr
    assert "DEBUG" not in process.stderr


def test_sweep_quiet_silences_dask(tmp_path: Path) -> None:
    pytest.importorskip("distributed")

    process = dra_sim(
        "sweep",
        SHARED_CLAIMS,
        "-r",
        "1",
        "-j",
        "1",
        "--executor",
        "dask",
        "-o",
        "sweep",
        "-q",
        cwd=tmp_path,
    )

    assert process.returncode == 0, process.stderr
    assert process.stderr == ""
    assert process.stdout == ""
    assert (tmp_path / "sweep" / "runs.parquet").is_file()


def test_manifest_pod_with_negative_request_rejected(tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: neg\nspec:\n  containers:\n"
        "  - name: c\n    resources:\n      requests:\n        cpu: '-1'\n",
        encoding="utf-8",
    )
    output = tmp_path / "out"

    result = invoke("run", "--manifest", manifest, "-o", output)

    assert_one_error_line(
        result, str(manifest), "requests[cpu]", "must be greater than or equal to 0"
    )
    assert not output.exists()


def test_missing_cluster_file_names_the_option(tmp_path: Path) -> None:
    manifest = tmp_path / "class.yaml"
    manifest.write_text(
        "apiVersion: resource.k8s.io/v1alpha2\nkind: ResourceClass\nmetadata:\n  name: gpu\n"
        "driverName: gpu.example.com\n",
        encoding="utf-8",
    )

    result = invoke("run", "--manifest", manifest, "--cluster", tmp_path / "nosuch.yaml")

    assert_one_error_line(result, "--cluster", "nosuch.yaml", "file not found")
