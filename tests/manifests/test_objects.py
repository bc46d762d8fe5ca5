"""The object recorder behind `objects.parquet`, and reading objects back at a time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.api.types import ObjectMeta, Pod, PodSpec
from sim.cluster.config import ControlPlaneConfig
from sim.cluster.world import World
from sim.metrics.objects import OBJECT_COLUMNS, ObjectHistory, ObjectHistoryError, ObjectRecorder
from sim.results import Results, simulate
from tests.manifests.conftest import EXAMPLE, EXAMPLE_CLASS, default_cluster

GPU_TEST1 = (EXAMPLE_CLASS, EXAMPLE + "demo__gpu-test1.yaml")


def _pod(name: str) -> Pod:
    return Pod(metadata=ObjectMeta(name=name), spec=PodSpec())


def test_recorder_keeps_every_write(corpus_dir: Path) -> None:
    results = simulate(default_cluster(corpus_dir, GPU_TEST1), until_s=30.0, check_invariants=True)

    table = results.objects
    assert table is not None
    assert list(table.columns) == list(OBJECT_COLUMNS)
    assert results.manifest["objects_recorded"] == "all"
    # Every write bumps the global resourceVersion by one, and every write is a row.
    assert list(table["resource_version"]) == list(range(2, 2 + len(table)))
    for rv, text in zip(table["resource_version"], table["object"], strict=True):
        assert json.loads(text)["metadata"]["resourceVersion"] == str(rv)
    pod_rows = table[(table["kind"] == "Pod") & (table["name"] == "pod0")]
    columns = (pod_rows["verb"], pod_rows["subresource"], pod_rows["event_type"])
    writes = list(zip(*columns, strict=True))
    assert writes[0] == ("create", "", "ADDED")
    assert ("create", "binding", "MODIFIED") in writes
    assert pod_rows["time_s"].is_monotonic_increasing


def test_recorder_mode_none_writes_nothing(corpus_dir: Path, tmp_path: Path) -> None:
    scenario = default_cluster(corpus_dir, GPU_TEST1, record_objects="none")

    results = simulate(scenario, until_s=10.0, check_invariants=True)
    written = results.write(tmp_path / "run")

    assert results.objects is None
    assert results.manifest["objects_recorded"] == "none"
    assert not (written / "objects.parquet").exists()
    with pytest.raises(ObjectHistoryError, match="the run recorded no objects"):
        ObjectHistory.read(written)


def test_recorder_auto_keeps_final_state_of_large_runs() -> None:
    world = World.create(ControlPlaneConfig(), seed=1)
    recorder = ObjectRecorder(world, "auto", auto_max_pods=2)
    recorder.attach()

    world.api.create(_pod("a"))
    world.api.create(_pod("b"))
    assert recorder.recorded == "all"
    world.api.delete("Pod", "a")
    world.api.create(_pod("c"))
    world.api.create(_pod("d"))

    assert recorder.recorded == "final"
    assert recorder.pods_created == 4
    table = recorder.table()
    assert table is not None
    assert list(table["name"]) == ["b", "c", "d"]
    history = ObjectHistory(table, recorder.recorded, end_time_s=5.0)
    assert [obj["metadata"]["name"] for obj in history.objects_at()] == ["b", "c", "d"]
    with pytest.raises(ObjectHistoryError, match="kept only the final state"):
        list(history.objects_at(1.0))


def test_history_objects_at_a_time(corpus_dir: Path, tmp_path: Path) -> None:
    written = simulate(
        default_cluster(corpus_dir, GPU_TEST1), until_s=30.0, check_invariants=True
    ).write(tmp_path / "r")

    history = ObjectHistory.read(written)
    start = [obj for obj in history.objects_at(0.0) if obj["kind"] == "Pod"]
    end = [obj for obj in history.objects_at() if obj["kind"] == "Pod"]

    assert history.end_time_s == 30.0
    assert [pod["status"]["phase"] for pod in start] == ["Pending", "Pending"]
    assert all("nodeName" not in pod["spec"] for pod in start)
    assert [pod["status"]["phase"] for pod in end] == ["Running", "Running"]
    assert history.kinds()["Node"] is False
    assert history.kinds()["Pod"] is True
    with pytest.raises(ObjectHistoryError, match="the run covers 0 to 30"):
        list(history.objects_at(31.0))


def test_results_read_back_objects(corpus_dir: Path, tmp_path: Path) -> None:
    results = simulate(default_cluster(corpus_dir, GPU_TEST1), until_s=10.0, check_invariants=True)
    written = results.write(tmp_path / "r")

    again = Results.read(written)

    assert again.objects is not None
    assert results.objects is not None
    assert again.objects.equals(results.objects)
