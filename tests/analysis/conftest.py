"""Small results directories, run once per test session, that the analysis tests read.

`mixed` has three GPU nodes in two pools (gpu-a: 2 nodes x 4 devices, gpu-b:
1 node x 2 devices) and one `devices` driver. Its three workloads are:

* `train`: five pods, WaitForFirstConsumer template claims for 2 devices, 30 s each;
* `infer`: three pods, Immediate template claims for 1 device, 15 s each;
* `notebook`: three pods sharing the WaitForFirstConsumer claim `shared-gpu`, 10 s each.
 The runs are written to disk and read back, so the tests see what
`dra-sim report` sees.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sim import Results, load_scenario, simulate

REPOSITORY = Path(__file__).resolve().parents[2]
QUICKSTART = REPOSITORY / "scenarios" / "quickstart.yaml"

MIXED_SCENARIO = """
name: mixed
description: Two GPU pools, template claims of both allocation modes and one shared claim
seed: 7
horizon_s: 200
cluster:
  node_pools:
    - name: gpu-a
      count: 2
      cpu: "16"
      memory: 64Gi
      devices:
        gpu.example.com: {count: 4}
    - name: gpu-b
      count: 1
      cpu: "16"
      memory: 64Gi
      devices:
        gpu.example.com: {count: 2}
drivers:
  - name: gpu.example.com
    model: devices
    allocate_latency_s: {type: uniform, low: 0.01, high: 0.05}
resource_classes:
  - name: gpu
    driver_name: gpu.example.com
shared_claims:
  - name: shared-gpu
    resource_class: gpu
    parameters: {count: 1, shareable: true}
workloads:
  - name: train
    arrival: {type: times, at_s: [1, 3, 5, 20, 22]}
    claims:
      - name: gpu
        template: {resource_class: gpu, parameters: {count: 2}}
    run_duration_s: {type: constant, value: 30}
  - name: infer
    arrival: {type: times, at_s: [2, 4, 40]}
    claims:
      - name: gpu
        template: {resource_class: gpu, allocation_mode: Immediate}
    run_duration_s: {type: constant, value: 15}
  - name: notebook
    arrival: {type: times, at_s: [10, 11, 12]}
    claims:
      - name: gpu
        claim: shared-gpu
    run_duration_s: {type: constant, value: 10}
"""


def run_to_directory(scenario_text: str, directory: Path, overrides: tuple[str, ...] = ()) -> Path:
    """Run a scenario given as YAML text and write its results directory."""
    scenario_file = directory.parent / f"{directory.name}.yaml"
    scenario_file.write_text(scenario_text, encoding="utf-8")
    scenario = load_scenario(scenario_file, overrides=list(overrides))
    return simulate(scenario, check_invariants=True).write(directory)


@pytest.fixture(scope="session")
def mixed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_to_directory(MIXED_SCENARIO, tmp_path_factory.mktemp("mixed") / "results")


@pytest.fixture
def mixed(mixed_dir: Path) -> Results:
    return Results.read(mixed_dir)


@pytest.fixture(scope="session")
def quickstart_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scenario = load_scenario(QUICKSTART)
    return simulate(scenario).write(tmp_path_factory.mktemp("quickstart") / "results")


@pytest.fixture(scope="session")
def legacy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `mixed` scenario on Kubernetes 1.27 (claims named `<pod>-<entry>`), first 30 s."""
    return run_to_directory(
        MIXED_SCENARIO,
        tmp_path_factory.mktemp("legacy") / "results",
        overrides=("control_plane.kubernetes_version='1.27'", "horizon_s=30"),
    )


@pytest.fixture(scope="session")
def run_scenario(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Return a function that runs a scenario given as YAML text into a new results directory."""

    def run(scenario_text: str, overrides: tuple[str, ...] = ()) -> Path:
        return run_to_directory(
            scenario_text, tmp_path_factory.mktemp("run") / "results", overrides
        )

    return run
