"""Tests of the derived tables that plots, reports and stories share."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim import Results
from sim.analysis import derived, devices
from sim.analysis.summary import ordered_summary_keys, summary_unit


def test_links_match_generated_and_shared_claims(mixed: Results) -> None:
    links = derived.pod_claim_links(mixed)
    claim_of = dict(zip(links["pod"], links["claim"], strict=True))

    assert len(links) == len(mixed.pods)
    for pod in mixed.pods.itertuples():
        claim = claim_of[pod.name]
        if pod.workload == "notebook":
            assert claim == "shared-gpu"
        else:
            assert claim.startswith(f"{pod.name}-gpu-")
    assert links["claim_uid"].isin(mixed.claims["uid"]).all()


def test_links_use_legacy_names_on_127(legacy_dir) -> None:
    results = Results.read(legacy_dir)
    links = derived.pod_claim_links(results)
    templated = links[links["claim"] != "shared-gpu"]

    assert len(templated) > 0
    assert (templated["claim"] == templated["pod"] + "-gpu").all()


def test_allocation_modes_per_workload(mixed: Results) -> None:
    modes = derived.pod_allocation_modes(mixed)
    workload_of = dict(zip(mixed.pods["uid"], mixed.pods["workload"], strict=True))
    expected = {
        "train": "WaitForFirstConsumer",
        "infer": "Immediate",
        "notebook": "WaitForFirstConsumer",
    }

    for uid, mode in modes.items():
        assert mode == expected[workload_of[uid]], uid


def test_latencies_are_created_to_scheduled(mixed: Results) -> None:
    latencies = derived.pod_latencies(mixed).set_index("uid")
    pods = mixed.pods.set_index("uid")

    np.testing.assert_allclose(
        latencies.loc[pods.index, "scheduling_latency_s"], pods["scheduled_s"] - pods["created_s"]
    )
    np.testing.assert_allclose(
        latencies.loc[pods.index, "startup_latency_s"], pods["running_s"] - pods["created_s"]
    )


@pytest.mark.parametrize(
    ("starts", "ends", "end_s", "times", "counts"),
    [
        pytest.param([1.0], [3.0], 5.0, [0, 1, 3, 5], [0, 1, 0, 0], id="one-interval"),
        pytest.param(
            [1.0, 2.0], [4.0, 3.0], 5.0, [0, 1, 2, 3, 4, 5], [0, 1, 2, 1, 0, 0], id="nested"
        ),
        pytest.param([1.0], [math.nan], 5.0, [0, 1, 5], [0, 1, 1], id="still-open"),
        pytest.param([math.nan, 2.0], [3.0, 9.0], 5.0, [0, 2, 5], [0, 1, 1], id="skip-nan-start"),
        pytest.param([1.0, 3.0], [3.0, 4.0], 5.0, [0, 1, 3, 4, 5], [0, 1, 1, 0, 0], id="handover"),
    ],
)
def test_count_over_time(starts, ends, end_s, times, counts) -> None:
    got_times, got_counts = derived.count_over_time(starts, ends, end_s)

    np.testing.assert_allclose(got_times, times)
    np.testing.assert_allclose(got_counts, counts)


def test_time_weighted_mean_of_steps() -> None:
    times, levels = derived.level_over_time([0.0, 2.0], [4.0, 4.0], [1.0, 3.0], 8.0)

    # 1 device for 2 s, 4 devices for 2 s, then nothing for 4 s: 10 device-seconds over 8 s.
    assert derived.time_weighted_mean(times, levels, 8.0) == pytest.approx(10.0 / 8.0)


def test_pods_over_time_counts_at_instants(mixed: Results) -> None:
    levels = derived.pods_over_time(mixed)
    pods = mixed.pods

    for instant in (0.5, 2.5, 11.5, 30.0, 60.0):
        row = levels[levels["time_s"] <= instant].iloc[-1]
        pending = ((pods["created_s"] <= instant) & ~(pods["scheduled_s"] <= instant)).sum()
        running = ((pods["running_s"] <= instant) & ~(pods["finished_s"] <= instant)).sum()
        assert row["pending"] == pending, instant
        assert row["running"] == running, instant


def test_device_use_matches_utilization_table(mixed: Results) -> None:
    uses = devices.device_use(mixed)

    assert {(use.driver, use.pool) for use in uses} == {
        ("gpu.example.com", "gpu-a"),
        ("gpu.example.com", "gpu-b"),
    }
    for use in uses:
        assert use.mean_in_use == pytest.approx(use.table_mean_in_use, rel=1e-9), use.pool
        assert use.in_use.max() <= use.capacity


def test_claim_devices_come_from_parameters(mixed: Results) -> None:
    counts = devices.claim_devices(mixed)
    name_of = dict(zip(mixed.claims["uid"], mixed.claims["name"], strict=True))

    for uid, count in counts.items():
        expected = 2 if name_of[uid].startswith("train-") else 1
        assert count == expected, name_of[uid]


def test_deallocations_match_claims_table(mixed: Results) -> None:
    deallocations = derived.deallocation_times(mixed)

    assert len(deallocations) == int(mixed.claims["deallocations"].sum())
    last = deallocations.groupby("claim")["time_s"].max()
    table = mixed.claims.set_index("name")["deallocated_s"]
    for claim, time_s in last.items():
        assert time_s == pytest.approx(table[claim]), claim


def test_writes_per_pod_sum_to_api_writes(mixed: Results) -> None:
    writes = derived.writes_per_pod(mixed)
    total = (writes["succeeded"] + writes["failed"]).sum() * len(mixed.pods)

    assert total == pytest.approx(mixed.summary["api_writes"])
    assert "kubelet" in set(writes["component"])
    assert not any(component.startswith("kubelet/") for component in writes["component"])


def test_state_segments_cover_pod_life(mixed: Results) -> None:
    pod = mixed.pods.iloc[0]
    segments = derived.state_segments(mixed, "Pod", [pod["uid"]])

    assert segments["start_s"].iloc[0] == pytest.approx(pod["created_s"])
    assert segments["end_s"].iloc[-1] == pytest.approx(pod["finished_s"])
    assert "Running" in set(segments["state"])
    assert not set(segments["state"]) & derived.TERMINAL_STATES


def test_sample_pods_is_seeded(mixed: Results) -> None:
    first = derived.sample_pods(mixed, 4, seed=3)
    again = derived.sample_pods(mixed, 4, seed=3)
    everything = derived.sample_pods(mixed, 100, seed=3)

    assert list(first["uid"]) == list(again["uid"])
    assert len(first) == 4
    assert list(first["created_s"]) == sorted(first["created_s"])
    assert len(everything) == len(mixed.pods)


@pytest.mark.parametrize(
    ("end_s", "width"),
    [(870.0, 20.0), (60.0, 1.0), (110.0, 2.0), (3600.0, 100.0), (0.0, 1.0)],
)
def test_bin_width_is_round(end_s: float, width: float) -> None:
    assert derived.bin_width_s(end_s) == width


def test_summary_keys_follow_docs_order() -> None:
    keys = [
        "zeta",
        "wall_time_s",
        "device_utilization_mean.b",
        "pods_created",
        "device_utilization_mean.a",
    ]

    assert ordered_summary_keys(keys) == [
        "pods_created",
        "device_utilization_mean.a",
        "device_utilization_mean.b",
        "wall_time_s",
        "zeta",
    ]
    assert summary_unit("scheduling_latency_s_p95") == "s"
    assert summary_unit("device_utilization_mean.gpu") == "fraction"


MANIFESTS = """
apiVersion: resource.k8s.io/v1alpha2
kind: ResourceClaimTemplate
metadata: {name: gpu-template, namespace: default}
spec:
  spec:
    resourceClassName: gpu
---
apiVersion: v1
kind: Pod
metadata: {name: manual, namespace: default}
spec:
  containers:
    - name: main
      resources:
        claims: [{name: gpu}]
  resourceClaims:
    - name: gpu
      source: {resourceClaimTemplateName: gpu-template}
"""

MANIFEST_SCENARIO = """
name: manifests
horizon_s: 20
cluster:
  node_pools:
    - name: node
      count: 1
      devices:
        gpu.example.com: {count: 2}
drivers:
  - name: gpu.example.com
    model: devices
resource_classes:
  - name: gpu
    driver_name: gpu.example.com
manifests: [objects.yaml]
"""


def test_links_of_pods_from_manifests(tmp_path) -> None:
    from sim import load_scenario, simulate

    (tmp_path / "objects.yaml").write_text(MANIFESTS, encoding="utf-8")
    (tmp_path / "scenario.yaml").write_text(MANIFEST_SCENARIO, encoding="utf-8")
    results = simulate(load_scenario(tmp_path / "scenario.yaml"), check_invariants=True)
    links = derived.pod_claim_links(results)

    assert list(links["pod"]) == ["manual"]
    assert links["claim"].iloc[0].startswith("manual-gpu-")
    assert links["entry"].iloc[0] == ""
    assert list(derived.pod_allocation_modes(results)) == ["WaitForFirstConsumer"]
