"""Reading the openb trace files and turning them into scenarios (`dra-sim import openb`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sim.cli import app
from sim.scenario import parse_scenario
from sim.workload.openb import (
    ImportOptions,
    TraceError,
    build_scenario,
    node_pools,
    read_nodes,
    read_pods,
)


@pytest.fixture(scope="module")
def csv_dir(corpus_dir: Path) -> Path:
    return corpus_dir / "openb" / "csv"


def test_gpu_node_list_counts(csv_dir: Path) -> None:
    nodes = read_nodes(csv_dir / "openb_node_list_gpu_node.csv")
    assert len(nodes) == 1213
    assert sum(node.gpus for node in nodes) == 6212
    assert {node.model for node in nodes} == {"A10", "G2", "G3", "P100", "T4", "V100M16", "V100M32"}


def test_all_node_list_keeps_cpu_nodes(csv_dir: Path) -> None:
    nodes = read_nodes(csv_dir / "openb_node_list_all_node.csv")
    assert len(nodes) == 1523
    assert sum(1 for node in nodes if node.gpus == 0 and node.model == "") == 310


def test_default_pod_list_requests(csv_dir: Path) -> None:
    pods = read_pods(csv_dir / "openb_pod_list_default.csv")
    assert len(pods) == 8152
    shared = [pod for pod in pods if pod.request.shared]
    whole = [pod for pod in pods if pod.request.gpu_count >= 1 and not pod.request.shared]
    cpu_only = [pod for pod in pods if pod.request.gpu_count == 0]
    assert len(shared) == 3078
    assert len(cpu_only) == 1088
    assert len(whole) == 8152 - 3078 - 1088
    assert all(pod.request.gpu_milli == 1000 for pod in whole)
    assert max(pod.request.gpu_count for pod in whole) == 8
    first = next(pod for pod in pods if pod.name == "openb-pod-0017")
    assert (first.request.gpu_count, first.request.cpu_milli, first.duration_s) == (
        8,
        88000,
        10769854.0 - 9437497.0,
    )


def test_gpu_spec_becomes_model_constraint(csv_dir: Path) -> None:
    pods = read_pods(csv_dir / "openb_pod_list_gpuspec33.csv")
    constrained = [pod for pod in pods if pod.request.models]
    assert len(constrained) == 2388
    assert any(len(pod.request.models) > 1 for pod in constrained)
    assert all(pod.request.gpu_count > 0 for pod in constrained)


def test_unsorted_pod_list_is_sorted(csv_dir: Path) -> None:
    path = csv_dir / "openb_pod_list_cpu050.csv"
    first_row_name = path.read_text().splitlines()[1].split(",")[0]
    pods = read_pods(path)
    arrivals = [pod.arrival_s for pod in pods]
    assert arrivals == sorted(arrivals)
    assert pods[0].name != first_row_name


def test_multigpu_list_arrives_in_file_order(csv_dir: Path) -> None:
    path = csv_dir / "openb_pod_list_multigpu20.csv"
    pods = read_pods(path)
    assert len(pods) == 8324
    assert [pod.arrival_s for pod in pods[:3]] == [0.0, 1.0, 2.0]
    assert [pod.name for pod in pods[:2]] == ["openb-pod-0000", "openb-pod-0001"]
    assert all(pod.duration_s is None for pod in pods)


def test_multigpu_list_rejected_for_replay(csv_dir: Path) -> None:
    path = csv_dir / "openb_pod_list_multigpu20.csv"
    with pytest.raises(TraceError, match="missing column") as caught:
        read_pods(path, require_times=True)
    assert caught.value.row == 1
    assert "creation_time, deletion_time" in str(caught.value)


def test_node_pools_group_identical_nodes(csv_dir: Path) -> None:
    nodes = read_nodes(csv_dir / "openb_node_list_gpu_node.csv")
    pools = node_pools(nodes)
    assert len(pools) == 15
    assert sum(pool["count"] for pool in pools) == 1213
    g2 = next(pool for pool in pools if pool["labels"]["gpu.model"] == "G2")
    assert g2["count"] == 549
    assert g2["devices"]["gpu.openb.example.com"]["count"] == 8


def test_scenario_replays_trace_times(csv_dir: Path) -> None:
    nodes = read_nodes(csv_dir / "openb_node_list_gpu_node.csv")
    pods = read_pods(csv_dir / "openb_pod_list_default.csv")
    data = build_scenario(nodes, pods, ImportOptions(max_nodes=20, max_pods=50, time_scale=10.0))
    scenario = parse_scenario(data)
    arrivals = sorted(t for w in scenario.workloads for t in w.arrival.at_s)  # type: ignore[union-attr]
    assert len(arrivals) == 50
    assert arrivals[0] == 0.0
    assert arrivals[1] == pytest.approx((pods[1].arrival_s - pods[0].arrival_s) / 10.0)
    assert scenario.node_count() == 20
    shares = [
        w.claims[0].template.parameters
        for w in scenario.workloads
        if w.claims
        and w.claims[0].template
        and "gpu_milli" in (w.claims[0].template.parameters or {})
    ]
    assert shares
    assert scenario.drivers[0].model == "gpushare"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


NODE_HEADER = "sn,cpu_milli,memory_mib,gpu,model\n"
POD_HEADER = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
    "creation_time,deletion_time,scheduled_time\n"
)
GOOD_POD = "p0,1000,1024,1,500,,LS,Running,0,10,0\n"


@pytest.mark.parametrize(
    ("kind", "text", "row", "column", "value"),
    [
        pytest.param(
            "nodes", "sn,cpu_milli,gpu,model\nn0,1,1,T4\n", 1, None, None, id="node-missing-column"
        ),
        pytest.param(
            "nodes",
            NODE_HEADER + "n0,lots,1,1,T4\n",
            2,
            "cpu_milli",
            "lots",
            id="node-not-a-number",
        ),
        pytest.param(
            "nodes", NODE_HEADER + "n0,1000,1,-2,T4\n", 2, "gpu", "-2", id="node-negative-gpus"
        ),
        pytest.param(
            "nodes", NODE_HEADER + "n0,1000,1,2,\n", 2, "model", "", id="node-gpus-without-model"
        ),
        pytest.param("pods", "name,cpu_milli\np0,1\n", 1, None, None, id="pod-missing-column"),
        pytest.param(
            "pods",
            POD_HEADER + GOOD_POD + "p1,1000,1024,x,500,,LS,Running,0,10,0\n",
            3,
            "num_gpu",
            "x",
            id="pod-not-a-number",
        ),
        pytest.param(
            "pods",
            POD_HEADER + "p1,1000,1024,-1,0,,LS,Running,0,10,0\n",
            2,
            "num_gpu",
            "-1",
            id="pod-negative-count",
        ),
        pytest.param(
            "pods",
            POD_HEADER + "p1,1000,1024,2,500,,LS,Running,0,10,0\n",
            2,
            "num_gpu",
            "2",
            id="pod-share-of-two-gpus",
        ),
        pytest.param(
            "pods",
            POD_HEADER + "p1,1000,1024,1,0,,LS,Running,0,10,0\n",
            2,
            "gpu_milli",
            "0",
            id="pod-gpu-without-milli",
        ),
        pytest.param(
            "pods",
            POD_HEADER + "p1,1000,1024,1,500,,LS,Running,10,5,0\n",
            2,
            "deletion_time",
            "5",
            id="pod-deleted-before-created",
        ),
        pytest.param(
            "pods",
            POD_HEADER + "p1,1.5,1024,1,500,,LS,Running,0,10,0\n",
            2,
            "cpu_milli",
            "1.5",
            id="pod-fractional-cpu",
        ),
    ],
)
def test_bad_csv_reports_file_row_column_value(
    tmp_path: Path, kind: str, text: str, row: int, column: str | None, value: str | None
) -> None:
    path = write(tmp_path, f"{kind}.csv", text)
    reader = read_nodes if kind == "nodes" else read_pods
    with pytest.raises(TraceError) as caught:
        reader(path)
    error = caught.value
    assert error.path == str(path)
    assert error.row == row
    assert error.column == column
    assert error.value == value
    assert str(path) in str(error)


def test_missing_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot open"):
        read_pods(tmp_path / "absent.csv")


def test_cli_writes_a_valid_scenario(csv_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "openb-small.yaml"
    result = CliRunner().invoke(
        app,
        [
            "import",
            "openb",
            "--nodes",
            str(csv_dir / "openb_node_list_gpu_node.csv"),
            "--pods",
            str(csv_dir / "openb_pod_list_default.csv"),
            "-o",
            str(output),
            "--max-nodes",
            "30",
            "--max-pods",
            "40",
            "--policy",
            "best-fit",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "30 nodes" in result.output
    data = yaml.safe_load(output.read_text())
    assert data["name"] == "openb-small"
    assert data["drivers"][0]["model_settings"]["policy"] == "best-fit"
    parse_scenario(data)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--policy", "tetris"], "unknown policy", id="unknown-policy"),
        pytest.param(["--placement", "kubelet"], "placement must be", id="unknown-placement"),
        pytest.param(["--time-scale", "0"], "time_scale must be positive", id="zero-time-scale"),
    ],
)
def test_cli_rejects_bad_options(
    csv_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        app,
        [
            "import",
            "openb",
            "--nodes",
            str(csv_dir / "openb_node_list_gpu_node.csv"),
            "--pods",
            str(csv_dir / "openb_pod_list_default.csv"),
            "-o",
            str(tmp_path / "x.yaml"),
            *args,
        ],
    )
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "x.yaml").exists()


def test_cli_bad_csv_exits_2(tmp_path: Path) -> None:
    nodes = write(tmp_path, "nodes.csv", NODE_HEADER + "n0,1000,1,-2,T4\n")
    pods = write(tmp_path, "pods.csv", POD_HEADER + GOOD_POD)
    result = CliRunner().invoke(
        app,
        [
            "import",
            "openb",
            "--nodes",
            str(nodes),
            "--pods",
            str(pods),
            "-o",
            str(tmp_path / "o.yaml"),
        ],
    )
    assert result.exit_code == 2
    assert "row 2, column 'gpu'" in result.output
    assert "'-2'" in result.output
