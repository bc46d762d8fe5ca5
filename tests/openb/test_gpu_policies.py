"""GPU policies and the fragmentation measure on small clusters, scores worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from sim.drivers.gpu_policies import (
    FRAGMENT_CAUSES,
    GpuCluster,
    GpuRequest,
    MixEntry,
    WorkloadMix,
    fragment_milli,
    fragmentation,
    gpu_fits,
    make_policy,
)

RNG = np.random.default_rng(0)


def two_nodes() -> GpuCluster:
    """Node a: 8 GPUs, 96 cores; node b: 2 GPUs, 104 cores (every GPU free)."""
    return GpuCluster(
        ["a", "b"], [8, 2], ["G2", "T4"], cpu_milli=[96_000, 104_000], memory_mib=[1 << 20] * 2
    )


def scores(policy: str, cluster: GpuCluster, request: GpuRequest) -> list[float]:
    mix = WorkloadMix((MixEntry(1.0, 1, 1000),))
    return [float(s) for s in make_policy(policy, mix).score(cluster.view(), request, RNG)]


WHOLE_GPU = GpuRequest(gpu_count=1, gpu_milli=1000, cpu_milli=12_000)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # 100 * (1 - (0.75 * 0.09375 + 1 * 0.125) / 2) = 90.2; node b: 100 * (1 - 0.0537) = 94.6
        pytest.param("dot-product", [90.0, 94.0], id="dot-product"),
        # 100 * (1 - 0.5 * 84/128 - 0.5 * 7/8) = 23.4
        # node b: 100 * (1 - 0.5 * 92/128 - 0.5/8) = 57.8
        pytest.param("best-fit", [23.0, 57.0], id="best-fit"),
        # idle nodes: max(33 - free GPUs, free GPUs)
        pytest.param("gpu-packing", [25.0, 31.0], id="gpu-packing-idle-nodes"),
        # no GPU pod yet: 25 * (8000 - free) // 8000 + 25, free 8000 and 2000 milli
        pytest.param("gpu-clustering", [25.0, 43.0], id="gpu-clustering-idle-nodes"),
    ],
)
def test_policy_scores_idle_nodes(policy: str, expected: list[float]) -> None:
    assert scores(policy, two_nodes(), WHOLE_GPU) == expected


def test_random_policy_scores_one_node() -> None:
    result = scores("random", two_nodes(), WHOLE_GPU)
    assert sorted(result) == [0.0, 100.0]


def used_cluster() -> GpuCluster:
    """Node idle: 8 free GPUs; node share: one GPU at 500 milli free; node whole: one GPU taken."""
    cluster = GpuCluster(["idle", "share", "whole"], [8, 8, 8], ["G2"] * 3)
    cluster.allocate(1, GpuRequest(1, 500), [0])
    cluster.allocate(2, GpuRequest(1, 1000), [0])
    return cluster


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        # a 300m share: idle 25; on the 500m GPU 100 - 50 // 10 = 95; else a free GPU 49
        pytest.param(GpuRequest(1, 300), [25.0, 95.0, 49.0], id="share"),
        # a whole GPU: idle 25; used nodes use one fully free GPU: max(50 - 1, 33)
        pytest.param(GpuRequest(1, 1000), [25.0, 49.0, 49.0], id="whole"),
        pytest.param(GpuRequest(0, 0, 1000), [0.0, 0.0, 0.0], id="cpu-only"),
    ],
)
def test_gpu_packing_scores(request_: GpuRequest, expected: list[float]) -> None:
    assert scores("gpu-packing", used_cluster(), request_) == expected


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        # share class: idle 0 + 25; share node 25 * 500 // 8000 + 75; whole node 25 * 1000 // 8000
        pytest.param(GpuRequest(1, 300), [25.0, 76.0, 3.0], id="share"),
        pytest.param(GpuRequest(1, 1000), [25.0, 1.0, 78.0], id="one-gpu"),
        pytest.param(GpuRequest(0, 0, 1000), [0.0, 0.0, 0.0], id="cpu-only"),
    ],
)
def test_gpu_clustering_scores(request_: GpuRequest, expected: list[float]) -> None:
    assert scores("gpu-clustering", used_cluster(), request_) == expected


def half_used_node() -> GpuCluster:
    cluster = GpuCluster(["n"], [2], ["G2"])
    cluster.allocate(0, GpuRequest(1, 500), [1])
    return cluster


def test_fgd_prefers_the_gpu_that_removes_a_fragment() -> None:
    # Mix: whole GPUs only. GPU 1 has 500 free, a fragment for whole GPUs.
    mix = WorkloadMix((MixEntry(1.0, 1, 1000),))
    fgd = make_policy("fgd", mix)
    node = half_used_node()
    assert fragment_milli(node.view(), mix).tolist() == [500.0]
    share = GpuRequest(1, 500)
    # On GPU 1: fragments 500 -> 0, 100 * sigmoid(0.5) = 62.2; on GPU 0: 500 -> 1000, 37.8.
    assert fgd.score(node.view(), share, RNG).tolist() == [62.0]
    assert fgd.select_gpus(node.view(), share, RNG) == [1]


def test_fgd_whole_gpu_on_idle_node() -> None:
    mix = WorkloadMix((MixEntry(1.0, 1, 1000),))
    fgd = make_policy("fgd", mix)
    cluster = GpuCluster(["n"], [2], ["G2"])
    # No fragment before or after: sigmoid(0) = 0.5.
    assert fgd.score(cluster.view(), GpuRequest(1, 1000), RNG).tolist() == [50.0]
    assert fgd.select_gpus(cluster.view(), GpuRequest(2, 1000), RNG) == [0, 1]


def test_fragmentation_splits_idle_capacity_by_cause() -> None:
    mix = WorkloadMix((MixEntry(1.0, 1, 500), MixEntry(1.0, 0, 0, 1000)))
    cluster = GpuCluster(["n"], [2], ["G2"])
    cluster.allocate(0, GpuRequest(1, 700), [1])
    causes = dict(zip(FRAGMENT_CAUSES, fragmentation(cluster.view(), mix)[0], strict=True))
    # Half the mix (share of 500) can use GPU 0 but not the 300 left on GPU 1.
    assert causes["satisfied"] == 500.0
    assert causes["lack_gpu"] == 150.0
    # The CPU-only half counts all idle capacity as a fragment.
    assert causes["cpu_only"] == 650.0
    assert sum(causes.values()) == 1300.0


def test_fragmentation_reports_model_and_cpu_causes() -> None:
    mix = WorkloadMix(
        (MixEntry(1.0, 1, 1000, 50_000, frozenset({"T4"})), MixEntry(1.0, 1, 1000, 50_000))
    )
    cluster = GpuCluster(["g2"], [1], ["G2"], cpu_milli=[10_000])
    causes = dict(zip(FRAGMENT_CAUSES, fragmentation(cluster.view(), mix)[0], strict=True))
    assert causes["no_access"] == 500.0
    assert causes["lack_cpu"] == 500.0


def test_gpu_fits_checks_model_and_free_gpus() -> None:
    cluster = used_cluster()
    assert gpu_fits(cluster.view(), GpuRequest(8, 1000)).tolist() == [True, False, False]
    assert gpu_fits(cluster.view(), GpuRequest(1, 600, models=frozenset({"T4"}))).tolist() == [
        False,
        False,
        False,
    ]


def test_workload_mix_covers_the_most_common_kinds() -> None:
    requests = [GpuRequest(1, 1000, 4000)] * 6 + [GpuRequest(1, 500, 2000)] * 3 + [GpuRequest()]
    mix = WorkloadMix.from_requests(requests, coverage=0.9)
    assert [(e.gpu_milli, round(e.weight, 3)) for e in mix.entries] == [(1000, 0.667), (500, 0.333)]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param({"gpu_count": 2, "gpu_milli": 500}, "needs gpu_count 1", id="share-of-two"),
        pytest.param({"gpu_count": 1, "gpu_milli": 1500}, "1..1000", id="too-much-milli"),
        pytest.param({"gpu_count": 0, "gpu_milli": 10}, "without GPUs", id="milli-without-gpu"),
        pytest.param({"cpu_milli": -1}, "negative", id="negative-cpu"),
    ],
)
def test_invalid_requests_rejected(arguments: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GpuRequest(**arguments)


def test_allocate_rejects_overcommitted_gpu() -> None:
    cluster = half_used_node()
    with pytest.raises(ValueError, match="500 milli free"):
        cluster.allocate(0, GpuRequest(1, 600), [1])


def test_unknown_policy_lists_names() -> None:
    with pytest.raises(ValueError, match="available: random, dot-product"):
        make_policy("tetris")
