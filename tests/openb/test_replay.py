"""The openb trace replayed in simulated time through classic DRA and the gpushare driver."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sim.api.types import PodPhase
from sim.drivers.gpushare import GpuShareModel
from sim.metrics.tables import utilization_table
from sim.scenario import parse_scenario
from sim.simulation import Simulation, build
from sim.workload.openb import ImportOptions, build_scenario, read_nodes, read_pods

DRIVER = "gpu.openb.example.com"


def replay(corpus_dir: Path, placement: str, pods: int, nodes: int) -> Simulation:
    csv = corpus_dir / "openb" / "csv"
    data = build_scenario(
        read_nodes(csv / "openb_node_list_gpu_node.csv"),
        read_pods(csv / "openb_pod_list_default.csv"),
        ImportOptions(
            policy="fgd", placement=placement, max_nodes=nodes, max_pods=pods, time_scale=20_000
        ),
    )
    simulation = build(parse_scenario(data), check_invariants=True)
    simulation.run()
    return simulation


def check_drained(simulation: Simulation, pods: int) -> GpuShareModel:
    phases = Counter(pod.status.phase for pod in simulation.world.api.list("Pod").items)
    assert phases == {PodPhase.SUCCEEDED: pods}
    controller = simulation.drivers[DRIVER]
    model = controller.model
    assert isinstance(model, GpuShareModel)
    gpu_pods = sum(1 for pod in simulation.world.api.list("Pod").items if pod.spec.resource_claims)
    # A claim may be allocated more than once when PostFilter asks for a reallocation,
    # but every allocation is freed again by the end.
    assert model.allocations >= gpu_pods
    assert model.deallocations == model.allocations
    assert model.allocated_milli() == 0
    assert not simulation.world.api.list("ResourceClaim").items
    utilization = utilization_table(
        simulation.world.recorder, simulation.tracker, simulation.end_time_s
    )
    devices = utilization[utilization["resource"] == "devices"]
    # GPU shares count by their fraction, so no pool shows more GPUs in use than it has.
    assert (devices["peak_in_use"] <= devices["capacity"]).all(), devices
    return model


def test_driver_steered_replay_finishes_every_pod(corpus_dir: Path) -> None:
    simulation = replay(corpus_dir, "driver", pods=60, nodes=30)
    check_drained(simulation, 60)
    controller = simulation.drivers[DRIVER]
    # Steering makes the driver veto nodes, so some pods need more than one cycle.
    assert controller.model_calls["unsuitable_nodes"] > controller.model_calls["allocate"]
    attempts = Counter(cycle[3] for cycle in simulation.world.recorder.cycles)
    assert len(attempts) >= 60


def test_device_aware_scheduler_replay_finishes_every_pod(corpus_dir: Path) -> None:
    simulation = replay(corpus_dir, "scheduler", pods=60, nodes=30)
    check_drained(simulation, 60)
    plugin = simulation.scheduler.device_aware
    assert plugin is not None and plugin.policy is not None
    assert plugin.policy.name == "fgd"


@pytest.mark.slow
def test_reduced_trace_replay_300_pods_100_nodes(corpus_dir: Path) -> None:
    simulation = replay(corpus_dir, "driver", pods=300, nodes=100)
    check_drained(simulation, 300)
