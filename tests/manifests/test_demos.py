"""The public classic-DRA demos, run as they are on the default cluster.

Each test loads the demo files of one driver from the corpus, together with
the driver's own ResourceClass file, which the driver's deployment creates
in a real cluster. It runs the default cluster with invariant checks and
asserts the end state that the demo is written for, and the key steps that
lead there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.api.codec import load_path
from sim.api.types import Pod, PodSchedulingContext, ResourceClaim
from sim.cluster.world import World
from sim.simulation import Simulation
from tests.manifests.conftest import (
    E2E,
    EXAMPLE,
    EXAMPLE_CLASS,
    INTEL,
    INTEL_CLASSES,
    NVIDIA,
    NVIDIA_CLASS,
    SCHEDULER_PERF,
    RunManifests,
    claims,
    devices,
    pods,
)

NODES = ["gpu-node-0", "gpu-node-1"]


def _claim_name(pod: Pod, pod_claim: str) -> str:
    for status in pod.status.resource_claim_statuses:
        if status.name == pod_claim:
            assert status.resource_claim_name is not None
            return status.resource_claim_name
    raise AssertionError(f"pod {pod.key} has no status for pod claim {pod_claim}")


def _reserved_uids(claim: ResourceClaim) -> set[str]:
    return {ref.uid for ref in claim.status.reserved_for}


def _write_times(simulation: Simulation, component: str, resource: str, name: str) -> list[float]:
    """Return the times of successful writes of a component to one object."""
    return [
        row[0]
        for row in simulation.world.recorder.api_requests
        if row[1] == component and row[3] == resource and row[5] == name and row[9] and row[7] < 300
    ]


def _pod_states(simulation: Simulation, name: str) -> list[tuple[float, str]]:
    return [
        (row[0], str(row[6]))
        for row in simulation.world.recorder.events
        if row[1] == "Pod" and row[3] == name
    ]


# --------------------------------------------------------------------------------------
# kubernetes-sigs/dra-example-driver
# --------------------------------------------------------------------------------------


def test_example_test1_two_pods_two_devices(run_manifests: RunManifests) -> None:
    simulation = run_manifests(EXAMPLE_CLASS, EXAMPLE + "demo__gpu-test1.yaml")

    found = pods(simulation, "gpu-test1")
    assert [pod.metadata.name for pod in found] == ["pod0", "pod1"]
    assert all(pod.status.phase == "Running" for pod in found)
    generated = claims(simulation, "gpu-test1")
    assert len(generated) == 2
    owners = {claim.metadata.owner_references[0].uid for claim in generated}
    assert owners == {pod.metadata.uid for pod in found}
    allocated_devices = [devices(simulation, claim) for claim in generated]
    assert all(len(names) == 1 for _, names in allocated_devices)
    assert allocated_devices[0] != allocated_devices[1]
    for pod in found:
        claim = simulation.world.api.get("ResourceClaim", _claim_name(pod, "gpu"), "gpu-test1")
        assert _reserved_uids(claim) == {pod.metadata.uid}
        assert devices(simulation, claim)[0] == pod.spec.node_name


def test_example_test2_containers_share_claim(run_manifests: RunManifests) -> None:
    simulation = run_manifests(EXAMPLE_CLASS, EXAMPLE + "demo__gpu-test2.yaml")

    (pod,) = pods(simulation, "gpu-test2")
    assert pod.status.phase == "Running"
    assert [c.resources.claims[0].name for c in pod.spec.containers] == ["shared-gpu"] * 2
    (claim,) = claims(simulation, "gpu-test2")
    assert claim.metadata.name == _claim_name(pod, "shared-gpu")
    node, names = devices(simulation, claim)
    assert len(names) == 1
    assert node == pod.spec.node_name
    assert _reserved_uids(claim) == {pod.metadata.uid}


def test_example_test3_pods_share_named_claim(run_manifests: RunManifests) -> None:
    simulation = run_manifests(EXAMPLE_CLASS, EXAMPLE + "demo__gpu-test3.yaml")

    found = pods(simulation, "gpu-test3")
    (claim,) = claims(simulation, "gpu-test3")
    assert claim.metadata.name == "shared-gpu"
    assert claim.status.allocation is not None
    assert claim.status.allocation.shareable
    node, names = devices(simulation, claim)
    assert len(names) == 1
    assert [pod.status.phase for pod in found] == ["Running", "Running"]
    assert {pod.spec.node_name for pod in found} == {node}
    assert _reserved_uids(claim) == {pod.metadata.uid for pod in found}
    # The claim is allocated once, for the first pod; the second only reserves it.
    allocations = [
        row
        for row in simulation.world.recorder.api_requests
        if row[1] == "driver/gpu.resource.example.com"
        and row[3] == "resourceclaims"
        and row[6] == "status"
        and row[7] == 200
    ]
    assert len(allocations) == 1


def test_example_test4_claim_of_four_devices(run_manifests: RunManifests) -> None:
    simulation = run_manifests(EXAMPLE_CLASS, EXAMPLE + "demo__gpu-test4.yaml")

    (pod,) = pods(simulation, "gpu-test4")
    assert pod.status.phase == "Running"
    (claim,) = claims(simulation, "gpu-test4")
    assert claim.spec.parameters_ref is not None
    assert claim.spec.parameters_ref.kind == "GpuClaimParameters"
    node, names = devices(simulation, claim)
    assert len(set(names)) == 4
    assert node == pod.spec.node_name


def test_example_immediate_claim_before_pod(corpus_dir: Path, run_manifests: RunManifests) -> None:
    """The claim is allocated at once; the pod, created 5 s later, lands on the claim's node."""
    pod_file = corpus_dir / "manifests" / EXAMPLE / "demo__gpu-test-immediate-pod.yaml"
    (late_pod,) = load_path(pod_file, lenient=True).objects
    created_at: list[float] = []

    def create_pod_later(world: World) -> Any:
        yield world.env.timeout(5.0)
        world.api.create(late_pod)
        created_at.append(world.now)

    simulation = run_manifests(
        EXAMPLE_CLASS, EXAMPLE + "demo__gpu-test-immediate-claim.yaml", until_s=0.0
    )
    simulation.world.env.process(create_pod_later(simulation.world))
    simulation.run(60.0)

    claim = simulation.world.api.get("ResourceClaim", "immediate-claim", "gpu-test-immediate")
    assert claim.status.allocation is not None
    allocated_at = _write_times(
        simulation, "driver/gpu.resource.example.com", "resourceclaims", "immediate-claim"
    )
    assert allocated_at
    assert max(allocated_at[:2]) < created_at[0] == 5.0
    pod = simulation.world.api.get("Pod", "pod0", "gpu-test-immediate")
    assert pod.status.phase == "Running"
    assert pod.spec.node_name == devices(simulation, claim)[0]
    assert _reserved_uids(claim) == {pod.metadata.uid}


# --------------------------------------------------------------------------------------
# Intel GPU resource driver (v0.3.0)
# --------------------------------------------------------------------------------------


def test_intel_shared_claim_pods_take_turns(run_manifests: RunManifests) -> None:
    """Both pods use the one named claim; it is not shareable, so they run one after the other.

    Intel's driver sets `shareable` from the claim parameters, and these do
    not ask for it, so the second pod waits until the first one ends (the
    demo's containers sleep 30 s).
    """
    simulation = run_manifests(
        INTEL_CLASSES, INTEL + "delayed__external__pod-shared.yaml", manifest_run_duration_s=30.0
    )

    (claim,) = claims(simulation, "default")
    assert claim.metadata.name == "gpu-claim-shared"
    found = pods(simulation, "default")
    assert [pod.status.phase for pod in found] == ["Succeeded", "Succeeded"]
    assert {pod.spec.node_name for pod in found} == {found[0].spec.node_name}
    first, second = (_pod_states(simulation, pod.metadata.name) for pod in found)
    first_end = next(t for t, state in first if state == "Succeeded")
    second_start = next(t for t, state in second if state == "Running")
    assert second_start > first_end
    # No version of the claim ever listed two consumers.
    assert simulation.object_recorder is not None
    for _, record in simulation.object_recorder.versions():
        if record.kind == "ResourceClaim":
            assert len(record.object.status.reserved_for) <= 1


def test_intel_deployment_replicas_get_own_claims(run_manifests: RunManifests) -> None:
    simulation = run_manifests(INTEL_CLASSES, INTEL + "delayed__inline__inline-deployment.yaml")

    found = pods(simulation, "default")
    assert len(found) == 2
    assert all(pod.status.phase == "Running" for pod in found)
    assert all(pod.metadata.name.startswith("inline-gpu-deployment-") for pod in found)
    generated = claims(simulation, "default")
    assert len(generated) == 2
    for pod in found:
        claim = simulation.world.api.get("ResourceClaim", _claim_name(pod, "resource"), "default")
        assert _reserved_uids(claim) == {pod.metadata.uid}
        assert claim.metadata.labels == {"app": "inline-gpu-deployment"}


def test_intel_deployment_shares_named_claim(run_manifests: RunManifests) -> None:
    """Two replicas name one claim that is not shareable: one runs, one waits for it."""
    simulation = run_manifests(INTEL_CLASSES, INTEL + "delayed__external__external-deployment.yaml")

    (claim,) = claims(simulation, "default")
    found = pods(simulation, "default")
    running = [pod for pod in found if pod.status.phase == "Running"]
    waiting = [pod for pod in found if pod.status.phase == "Pending"]
    assert len(running) == 1
    assert len(waiting) == 1
    assert _reserved_uids(claim) == {running[0].metadata.uid}
    (condition,) = waiting[0].status.conditions
    assert condition.type == "PodScheduled"
    assert "resourceclaim in use" in condition.message


def test_intel_too_big_claim_stays_pending(run_manifests: RunManifests) -> None:
    simulation = run_manifests(INTEL_CLASSES, INTEL + "delayed__inline__pod-inline-too-big.yaml")

    pod = simulation.world.api.get("Pod", "test-inline-claim-too-big", "default")
    assert pod.status.phase == "Pending"
    assert not pod.spec.node_name
    (condition,) = pod.status.conditions
    assert (condition.type, condition.status, condition.reason) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )
    assert condition.message.startswith("0/2 nodes are available: 2 resourceclaim cannot be")
    assert "(unsuitable)" in condition.message
    (claim,) = claims(simulation, "default")
    assert claim.status.allocation is None
    context = simulation.world.api.get("PodSchedulingContext", pod.metadata.name, "default")
    assert isinstance(context, PodSchedulingContext)
    report = context.claim_status("resource")
    assert report is not None
    assert sorted(report.unsuitable_nodes) == NODES
    assert simulation.drivers["gpu.resource.intel.com"].model_calls["allocate"] == 0


def test_intel_standalone_claim_stays_unallocated(run_manifests: RunManifests) -> None:
    simulation = run_manifests(INTEL_CLASSES, INTEL + "delayed__external__resourceclaim.yaml")

    claim = simulation.world.api.get("ResourceClaim", "gpu-claim-standalone", "default")
    assert claim.spec.allocation_mode == "WaitForFirstConsumer"
    assert claim.status.allocation is None
    # With no pod to wait for, the run ends at its first check (every 10 s).
    assert simulation.drained()
    assert simulation.end_time_s == 10.0
    assert simulation.drivers["gpu.resource.intel.com"].model_calls["allocate"] == 0


def test_intel_immediate_claim_and_pod(run_manifests: RunManifests) -> None:
    simulation = run_manifests(
        INTEL_CLASSES,
        INTEL + "immediate__external__claim-gpu.yaml",
        INTEL + "immediate__external__pod-for-claim-gpu.yaml",
    )

    claim = simulation.world.api.get("ResourceClaim", "immediate-gpu", "default")
    pod = simulation.world.api.get("Pod", "pod-for-immediate-gpu", "default")
    assert pod.status.phase == "Running"
    assert pod.spec.node_name == devices(simulation, claim)[0]
    assert _reserved_uids(claim) == {pod.metadata.uid}


def test_intel_immediate_templates_one_claim_each(run_manifests: RunManifests) -> None:
    simulation = run_manifests(INTEL_CLASSES, INTEL + "immediate__inline__pod-inline-multiple.yaml")

    pod = simulation.world.api.get("Pod", "pause", "default")
    assert pod.status.phase == "Running"
    names = [_claim_name(pod, entry) for entry in ("resource1", "resource2")]
    assert names[0] != names[1]
    for name in names:
        claim = simulation.world.api.get("ResourceClaim", name, "default")
        assert claim.spec.allocation_mode == "Immediate"
        assert devices(simulation, claim)[0] == pod.spec.node_name


# --------------------------------------------------------------------------------------
# NVIDIA k8s-dra-driver
# --------------------------------------------------------------------------------------

SHARING_DEMO = (
    NVIDIA_CLASS,
    NVIDIA + "demo__specs__mig+mps__sharing-demo-parameters.yaml",
    NVIDIA + "demo__specs__mig+mps__sharing-demo-claims.yaml",
    NVIDIA + "demo__specs__mig+mps__sharing-demo-job.yaml",
)


def test_nvidia_sharing_job_creates_four_pods(run_manifests: RunManifests) -> None:
    simulation = run_manifests(*SHARING_DEMO, until_s=30.0)

    job = simulation.world.api.get("Job", "sharing-demo-job", "sharing-demo")
    found = pods(simulation, "sharing-demo")
    assert len(found) == 4
    for pod in found:
        assert pod.metadata.generate_name == "sharing-demo-job-"
        assert pod.metadata.labels["job-name"] == "sharing-demo-job"
        assert pod.metadata.labels["batch.kubernetes.io/controller-uid"] == job.metadata.uid
        (owner,) = pod.metadata.owner_references
        assert (owner.kind, owner.uid, owner.controller) == ("Job", job.metadata.uid, True)
        assert pod.spec.restart_policy == "OnFailure"
    assert job.body["status"]["active"] == 4


def test_nvidia_sharing_job_reserves_all_claims(run_manifests: RunManifests) -> None:
    simulation = run_manifests(*SHARING_DEMO, until_s=60.0)

    found = pods(simulation, "sharing-demo")
    assert [pod.status.phase for pod in found] == ["Running"] * 4
    for claim in claims(simulation, "sharing-demo"):
        assert _reserved_uids(claim) == {pod.metadata.uid for pod in found}


def test_nvidia_mps_claim_before_parameters(run_manifests: RunManifests) -> None:
    """The claim precedes its parameters object in the file; the pod still runs."""
    simulation = run_manifests(NVIDIA_CLASS, NVIDIA + "demo__specs__quickstart__gpu-test-mps.yaml")

    pod = simulation.world.api.get("Pod", "pod1", "sharing-demo")
    claim = simulation.world.api.get("ResourceClaim", "gpu-mps-sharing", "sharing-demo")
    assert pod.status.phase == "Running"
    assert _reserved_uids(claim) == {pod.metadata.uid}


def test_nvidia_selector_pods_run(run_manifests: RunManifests) -> None:
    simulation = run_manifests(
        NVIDIA_CLASS,
        NVIDIA + "demo__specs__selectors__parameters.yaml",
        NVIDIA + "demo__specs__selectors__claims.yaml",
        NVIDIA + "demo__specs__selectors__pods.yaml",
    )

    found = pods(simulation, "kubecon-demo")
    assert [pod.metadata.name for pod in found] == ["inference-pod", "training-pod"]
    assert all(pod.status.phase == "Running" for pod in found)


def test_nvidia_deployment_with_template_selector(run_manifests: RunManifests) -> None:
    simulation = run_manifests(NVIDIA_CLASS, NVIDIA + "demo__specs__quickstart__gpu-test6.yaml")

    found = pods(simulation, "gpu-test6")
    assert len(found) == 4
    assert all(pod.status.phase == "Running" for pod in found)
    deployment = simulation.world.api.get("Deployment", "pod", "gpu-test6")
    assert deployment.body["status"]["availableReplicas"] == 4


# --------------------------------------------------------------------------------------
# Kubernetes e2e test driver and scheduler_perf
# --------------------------------------------------------------------------------------


def test_e2e_examples_run(run_manifests: RunManifests) -> None:
    simulation = run_manifests(
        E2E + "resourceclass.yaml", E2E + "resourceclaim.yaml", E2E + "pod-inline.yaml"
    )

    immediate = simulation.world.api.get("ResourceClaim", "example", "default")
    assert immediate.status.allocation is not None
    assert immediate.status.reserved_for == ()
    pod = simulation.world.api.get("Pod", "test-inline-claim", "default")
    assert pod.status.phase == "Running"
    claim = simulation.world.api.get("ResourceClaim", _claim_name(pod, "resource"), "default")
    assert claim.spec.parameters_ref is not None
    assert claim.spec.parameters_ref.kind == "ConfigMap"
    assert claim.metadata.labels == {"app": "inline-resource"}
    assert _reserved_uids(claim) == {pod.metadata.uid}


def test_scheduler_perf_files_run(run_manifests: RunManifests) -> None:
    simulation = run_manifests(
        SCHEDULER_PERF + "dra__resourceclaimtemplate.yaml",
        SCHEDULER_PERF + "dra__pod-with-claim-template.yaml",
        SCHEDULER_PERF + "dra__node-with-dra-test-driver.yaml",
    )

    nodes = [node.metadata.name for node in simulation.world.api.list("Node").items]
    assert len(nodes) == 3
    extra = next(name for name in nodes if name.startswith("scheduler-perf-dra-"))
    (pod,) = pods(simulation, "default")
    assert pod.metadata.name.startswith("test-dra")
    assert pod.status.phase == "Running"
    # The extra node has no kubelet and no devices of the test driver.
    assert pod.spec.node_name in NODES
    assert pod.spec.node_name != extra
    claim = simulation.world.api.get("ResourceClaim", _claim_name(pod, "resource"), "default")
    assert claim.spec.resource_class_name == "test-class"
