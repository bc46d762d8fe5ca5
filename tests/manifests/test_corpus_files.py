"""Every corpus manifest, run on its own with its driver's ResourceClass file.

This is the per-file record of what the simulator does with real inputs:
the end state of the run (pods by phase, claims allocated or not) or the
message that rejects the file. A file that names objects of another file
(a pod whose claim template lives elsewhere) waits for them, as it would in
a real cluster.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sim.simulation import SetupError, build
from tests.manifests.conftest import (
    E2E,
    EXAMPLE,
    EXAMPLE_CLASS,
    INTEL,
    INTEL_CLASSES,
    K8S,
    NVIDIA,
    NVIDIA_CLASS,
    SCHEDULER_PERF,
    default_cluster,
)

# File -> (running, pending, allocated claims, unallocated claims) after the run.
OUTCOMES: dict[str, tuple[int, int, int, int]] = {
    NVIDIA + "demo__specs__mig+mps__sharing-demo-claims.yaml": (0, 0, 0, 4),
    NVIDIA + "demo__specs__mig+mps__sharing-demo-job.yaml": (0, 4, 0, 0),
    NVIDIA + "demo__specs__mig+mps__sharing-demo-parameters.yaml": (0, 0, 0, 0),
    NVIDIA + "demo__specs__quickstart__gpu-test-mps.yaml": (1, 0, 1, 0),
    NVIDIA + "demo__specs__quickstart__gpu-test4.yaml": (4, 0, 20, 0),
    NVIDIA + "demo__specs__quickstart__gpu-test5.yaml": (6, 0, 18, 0),
    NVIDIA + "demo__specs__quickstart__gpu-test6.yaml": (4, 0, 4, 0),
    NVIDIA + "demo__specs__selectors__claims.yaml": (0, 0, 0, 0),
    NVIDIA + "demo__specs__selectors__parameters.yaml": (0, 0, 0, 0),
    NVIDIA + "demo__specs__selectors__pods.yaml": (0, 2, 0, 0),
    NVIDIA_CLASS: (0, 0, 0, 0),
    INTEL + "delayed__external__external-deployment.yaml": (1, 1, 1, 0),
    INTEL + "delayed__external__pod-shared.yaml": (1, 1, 1, 0),
    INTEL + "delayed__external__resourceclaim.yaml": (0, 0, 0, 1),
    INTEL + "delayed__inline__inline-deployment.yaml": (2, 0, 2, 0),
    INTEL + "delayed__inline__pod-inline-too-big.yaml": (0, 1, 0, 1),
    INTEL + "immediate__external__claim-gpu.yaml": (0, 0, 1, 0),
    INTEL + "immediate__external__pod-for-claim-gpu.yaml": (0, 1, 0, 0),
    INTEL + "immediate__inline__pod-inline-multiple.yaml": (1, 0, 2, 0),
    INTEL_CLASSES: (0, 0, 0, 0),
    EXAMPLE + "demo__gpu-test-immediate-claim.yaml": (0, 0, 1, 0),
    EXAMPLE + "demo__gpu-test-immediate-pod.yaml": (0, 1, 0, 0),
    EXAMPLE + "demo__gpu-test1.yaml": (2, 0, 2, 0),
    EXAMPLE + "demo__gpu-test2.yaml": (1, 0, 1, 0),
    EXAMPLE + "demo__gpu-test3.yaml": (2, 0, 1, 0),
    EXAMPLE + "demo__gpu-test4.yaml": (1, 0, 1, 0),
    EXAMPLE + "deployments__helm__dra-example-driver__crds__gpu.resource.example.com_"
    "gpuclaimparameters.yaml": (0, 0, 0, 0),
    EXAMPLE_CLASS: (0, 0, 0, 0),
    E2E + "pod-inline.yaml": (1, 0, 1, 0),
    E2E + "resourceclaim.yaml": (0, 0, 1, 0),
    E2E + "resourceclass.yaml": (0, 0, 0, 0),
    SCHEDULER_PERF + "dra__node-with-dra-test-driver.yaml": (0, 0, 0, 0),
    SCHEDULER_PERF + "dra__pod-with-claim-template.yaml": (0, 1, 0, 0),
    SCHEDULER_PERF + "dra__resourceclaimtemplate.yaml": (0, 0, 0, 0),
}

REJECTED = {
    E2E + "pod-external.yaml": 'write "- name: resource" instead of "- resource"',
    E2E + "pod-shared.yaml": "flattened form of Kubernetes 1.31",
    SCHEDULER_PERF + "dra__resourceclaimparameters.yaml": "exists only in Kubernetes 1.30",
    SCHEDULER_PERF + "dra__resourceclass-structured.yaml": "exists only in Kubernetes 1.30",
    SCHEDULER_PERF + "performance-config.yaml": "expected a Kubernetes object",
    "kubernetes__website/content__en__docs__concepts__scheduling-eviction__"
    "dynamic-resource-allocation.md": "starts with en dash (U+2013) instead of a hyphen",
    "later-api/" + EXAMPLE + "demo__gpu-test4.yaml": "v1alpha3 is not supported",
    "later-api/" + EXAMPLE + "demo__gpu-test5.yaml": "v1beta1 is not supported",
    "later-api/" + EXAMPLE + "deployments__helm__dra-example-driver__templates__deviceclass.yaml": (
        "v1beta1 is not supported"
    ),
    "later-api/" + K8S + "test__e2e__dra__test-driver__deploy__example__pod-external.yaml": (
        "v1beta1 is not supported"
    ),
    "later-api/" + K8S + "test__e2e__dra__test-driver__deploy__example__resourceclaim.yaml": (
        "v1alpha3 is not supported"
    ),
}


def _companion(name: str) -> list[str]:
    """Return the ResourceClass file that the driver of a corpus file installs."""
    for prefix, class_file in (
        (EXAMPLE, EXAMPLE_CLASS),
        (INTEL, INTEL_CLASSES),
        (NVIDIA, NVIDIA_CLASS),
        (E2E, E2E + "resourceclass.yaml"),
    ):
        if name.startswith(prefix) and name != class_file:
            return [class_file]
    return []


def test_table_covers_corpus(corpus_dir: Path) -> None:
    folder = corpus_dir / "manifests"
    names = {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path.name != "SOURCES.md"
    }

    assert names == set(OUTCOMES) | set(REJECTED)


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_corpus_file_runs(corpus_dir: Path, name: str) -> None:
    simulation = build(
        default_cluster(corpus_dir, [*_companion(name), name]), check_invariants=True
    )
    simulation.run()

    api = simulation.world.api
    phases = Counter(pod.status.phase for pod in api.list("Pod").items)
    allocated = Counter(claim.allocated for claim in api.list("ResourceClaim").items)
    outcome = (phases["Running"], phases["Pending"], allocated[True], allocated[False])
    assert outcome == OUTCOMES[name]
    assert sum(phases.values()) == outcome[0] + outcome[1]


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_corpus_file_rejected(corpus_dir: Path, name: str) -> None:
    with pytest.raises(SetupError) as caught:
        build(default_cluster(corpus_dir, [*_companion(name), name]))

    message = str(caught.value)
    assert message.startswith(str(corpus_dir / "manifests" / name))
    assert REJECTED[name] in message
    assert "\n" not in message
