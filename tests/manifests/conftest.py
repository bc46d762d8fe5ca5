"""Helpers for running the corpus manifests on the default cluster.

The manifests are read in place from the corpus (`corpus_dir` fixture of the
top-level conftest). Every run checks the cluster invariants after each API
write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from sim.api.types import Pod, ResourceClaim
from sim.data import DEFAULT_CLUSTER
from sim.scenario import Scenario, load_scenario
from sim.simulation import Simulation, build

EXAMPLE = "kubernetes-sigs__dra-example-driver/"
EXAMPLE_CLASS = EXAMPLE + "deployments__helm__dra-example-driver__templates__resourceclass.yaml"
INTEL = "intel__intel-resource-drivers-for-kubernetes/deployments__gpu__"
INTEL_CLASSES = INTEL + "resource-class.yaml"
NVIDIA = "NVIDIA__k8s-dra-driver/"
NVIDIA_CLASS = NVIDIA + "deployments__helm__k8s-dra-driver__templates__resourceclass.yaml"
K8S = "kubernetes__kubernetes/"
E2E = K8S + "test__e2e__dra__test-driver__deploy__example__"
SCHEDULER_PERF = K8S + "test__integration__scheduler_perf__config__"

RunManifests = Callable[..., Simulation]


def default_cluster(corpus_dir: Path, files: Sequence[str], **settings: Any) -> Scenario:
    """Return the default cluster with corpus manifests (paths under `manifests/`) and settings."""
    scenario = load_scenario(DEFAULT_CLUSTER)
    paths = [str(corpus_dir / "manifests" / name) for name in files]
    return scenario.model_copy(update={"manifests": paths, **settings})


@pytest.fixture
def run_manifests(corpus_dir: Path) -> RunManifests:
    """Return a function that builds the default cluster with manifests and runs it."""

    def run(*files: str, until_s: float | None = None, **settings: Any) -> Simulation:
        simulation = build(default_cluster(corpus_dir, files, **settings), check_invariants=True)
        simulation.run(until_s)
        return simulation

    return run


def pods(simulation: Simulation, namespace: str) -> list[Pod]:
    """Return the pods of a namespace at the end of the run, by name."""
    return list(simulation.world.api.list("Pod", namespace).items)


def claims(simulation: Simulation, namespace: str) -> list[ResourceClaim]:
    """Return the ResourceClaims of a namespace at the end of the run, by name."""
    return list(simulation.world.api.list("ResourceClaim", namespace).items)


def devices(simulation: Simulation, claim: ResourceClaim) -> tuple[str, list[str]]:
    """Return the node and the devices that the claim's driver model holds for it."""
    found = simulation.drivers[claim.status.driver_name].model.devices_of(claim.metadata.uid)
    assert found is not None, f"driver has no devices for claim {claim.key}"
    return found
