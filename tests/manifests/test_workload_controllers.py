"""Deployment, ReplicaSet and Job controllers on hand-written manifests.

Each test writes a small manifest, runs it on the default cluster with
invariant checks, and acts on the API server at chosen times (deleting a pod,
scaling, failing pods) to check what the controllers do next.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from sim.api.types import GenericObject, Pod
from sim.cluster.kubelet import RUN_DURATION_ANNOTATION
from sim.cluster.world import World
from sim.data import DEFAULT_CLUSTER
from sim.scenario import load_scenario
from sim.simulation import SetupError, Simulation, build

CLASS = """
apiVersion: resource.k8s.io/v1alpha2
kind: ResourceClass
metadata:
  name: gpu.example.com
driverName: gpu.resource.example.com
---
apiVersion: resource.k8s.io/v1alpha2
kind: ResourceClaimTemplate
metadata:
  name: gpu
spec:
  spec:
    resourceClassName: gpu.example.com
"""

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  strategy: {type: RollingUpdate}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: server
        image: nginx:1.25
        resources:
          claims: [{name: gpu}]
      resourceClaims:
      - name: gpu
        source: {resourceClaimTemplateName: gpu}
"""


def job(parallelism: int, completions: int | None, *, backoff_limit: int = 6) -> str:
    """Return a Job manifest whose pods run 10 s each with one template claim."""
    completions_line = f"  completions: {completions}\n" if completions is not None else ""
    return f"""
apiVersion: batch/v1
kind: Job
metadata:
  name: train
spec:
  parallelism: {parallelism}
{completions_line}  backoffLimit: {backoff_limit}
  template:
    metadata:
      annotations: {{{RUN_DURATION_ANNOTATION}: "10"}}
    spec:
      restartPolicy: Never
      containers:
      - name: trainer
        image: pytorch:latest
        resources:
          claims: [{{name: gpu}}]
      resourceClaims:
      - name: gpu
        source: {{resourceClaimTemplateName: gpu}}
"""


Action = Callable[[World], Generator[Any, Any, None]]


def run(
    tmp_path: Path,
    manifest: str,
    *,
    until_s: float = 60.0,
    actions: tuple[Action, ...] = (),
    **settings: Any,
) -> Simulation:
    path = tmp_path / "manifest.yaml"
    path.write_text(textwrap.dedent(manifest), encoding="utf-8")
    scenario = load_scenario(DEFAULT_CLUSTER).model_copy(
        update={"manifests": [str(path)], **settings}
    )
    simulation = build(scenario, check_invariants=True)
    for action in actions:
        simulation.world.env.process(action(simulation.world))
    simulation.run(until_s)
    return simulation


def pods(simulation: Simulation) -> list[Pod]:
    return list(simulation.world.api.list("Pod", "default").items)


def status(simulation: Simulation, kind: str, name: str) -> dict[str, Any]:
    obj = simulation.world.api.get(kind, name, "default")
    assert isinstance(obj, GenericObject)
    found: dict[str, Any] = obj.body.get("status", {})
    return found


def creation_times(simulation: Simulation, component: str) -> list[float]:
    return [
        row[0]
        for row in simulation.world.recorder.api_requests
        if row[1] == component and row[2] == "create" and row[3] == "pods" and row[7] == 201
    ]


# --------------------------------------------------------------------------------------
# Deployment and ReplicaSet
# --------------------------------------------------------------------------------------


def test_deployment_creates_replicaset_and_pods(tmp_path: Path) -> None:
    simulation = run(tmp_path, CLASS + "---" + DEPLOYMENT)

    deployment = simulation.world.api.get("Deployment", "web", "default")
    (replica_set,) = simulation.world.api.list("ReplicaSet", "default").items
    template_hash = replica_set.metadata.labels["pod-template-hash"]
    assert replica_set.metadata.name == f"web-{template_hash}"
    (rs_owner,) = replica_set.metadata.owner_references
    assert (rs_owner.kind, rs_owner.uid, rs_owner.controller) == (
        "Deployment",
        deployment.metadata.uid,
        True,
    )
    found = pods(simulation)
    assert len(found) == 2
    for pod in found:
        assert pod.metadata.generate_name == f"{replica_set.metadata.name}-"
        assert pod.metadata.name.startswith(pod.metadata.generate_name)
        assert len(pod.metadata.name) == len(pod.metadata.generate_name) + 5
        assert pod.metadata.labels == {"app": "web", "pod-template-hash": template_hash}
        (owner,) = pod.metadata.owner_references
        assert (owner.kind, owner.uid) == ("ReplicaSet", replica_set.metadata.uid)
        assert pod.status.phase == "Running"
    assert status(simulation, "ReplicaSet", replica_set.metadata.name)["readyReplicas"] == 2
    deployment_status = status(simulation, "Deployment", "web")
    assert deployment_status["availableReplicas"] == 2
    assert deployment_status["conditions"][0]["type"] == "Available"
    assert deployment_status["conditions"][0]["status"] == "True"
    # Slow start: the first batch has one pod, the second the other.
    times = creation_times(simulation, "replicaset-controller")
    assert len(times) == 2
    assert times[0] < times[1]


def test_replicaset_replaces_deleted_pod(tmp_path: Path) -> None:
    deleted: list[str] = []

    def delete_one(world: World) -> Generator[Any, Any, None]:
        yield world.env.timeout(20.0)
        victim = sorted(world.api.list("Pod", "default").items, key=lambda p: p.name)[0]
        world.api.delete("Pod", victim.metadata.name, "default")
        deleted.append(victim.metadata.name)

    simulation = run(tmp_path, CLASS + "---" + DEPLOYMENT, actions=(delete_one,))

    names = {pod.metadata.name for pod in pods(simulation)}
    assert len(names) == 2
    assert deleted[0] not in names
    times = creation_times(simulation, "replicaset-controller")
    assert len(times) == 3
    assert 20.0 < times[2] < 20.1
    assert all(pod.status.phase == "Running" for pod in pods(simulation))


@pytest.mark.parametrize(
    ("replicas", "expected"), [(3, 3), (1, 1), (0, 0)], ids=["up", "down", "zero"]
)
def test_deployment_scaling(tmp_path: Path, replicas: int, expected: int) -> None:
    def scale(world: World) -> Generator[Any, Any, None]:
        yield world.env.timeout(20.0)
        deployment = world.api.get("Deployment", "web", "default")
        spec = {**deployment.body["spec"], "replicas": replicas}
        world.api.update(deployment.model_copy(update={"body": {**deployment.body, "spec": spec}}))

    simulation = run(tmp_path, CLASS + "---" + DEPLOYMENT, actions=(scale,))

    assert len(pods(simulation)) == expected
    (replica_set,) = simulation.world.api.list("ReplicaSet", "default").items
    assert replica_set.body["spec"]["replicas"] == replicas
    assert status(simulation, "Deployment", "web")["replicas"] == expected


# --------------------------------------------------------------------------------------
# Job
# --------------------------------------------------------------------------------------


def test_job_runs_until_completions(tmp_path: Path) -> None:
    simulation = run(tmp_path, CLASS + "---" + job(parallelism=2, completions=3))

    found = pods(simulation)
    assert len(found) == 3
    assert all(pod.status.phase == "Succeeded" for pod in found)
    stored = simulation.world.api.get("Job", "train", "default")
    assert isinstance(stored, GenericObject)
    for pod in found:
        assert pod.metadata.generate_name == "train-"
        assert pod.metadata.labels == stored.body["spec"]["template"]["metadata"]["labels"]
        assert pod.metadata.labels["batch.kubernetes.io/job-name"] == "train"
        assert pod.metadata.labels["controller-uid"] == stored.metadata.uid
    times = creation_times(simulation, "job-controller")
    # Two pods at once, the third right after the first success (pods run 10 s).
    successes = sorted(row[0] for row in simulation.world.recorder.events if row[6] == "Succeeded")
    assert times[1] < 1.0
    assert successes[0] < times[2] < successes[0] + 0.1
    job_status = status(simulation, "Job", "train")
    assert (job_status["succeeded"], job_status["active"], job_status["failed"]) == (3, 0, 0)
    (condition,) = job_status["conditions"]
    assert (condition["type"], condition["status"]) == ("Complete", "True")
    assert "completionTime" in job_status
    # The run ends once the Job is complete and its pods are done.
    assert simulation.drained()
    assert simulation.end_time_s < 60.0


def test_job_without_completions_is_work_queue(tmp_path: Path) -> None:
    simulation = run(tmp_path, CLASS + "---" + job(parallelism=3, completions=None))

    found = pods(simulation)
    assert len(found) == 3
    assert all(pod.status.phase == "Succeeded" for pod in found)
    assert status(simulation, "Job", "train")["conditions"][0]["type"] == "Complete"


def test_job_fails_after_backoff_limit(tmp_path: Path) -> None:
    def fail_pods(world: World) -> Generator[Any, Any, None]:
        # Act as a kubelet that reports the containers failed, twice.
        for _ in range(2):
            yield world.env.timeout(3.0)
            pod = next(p for p in world.api.list("Pod", "default").items if not p.done)
            world.api.update_status(pod.with_status(phase="Failed"))

    simulation = run(
        tmp_path,
        CLASS + "---" + job(parallelism=1, completions=2, backoff_limit=1),
        actions=(fail_pods,),
    )

    job_status = status(simulation, "Job", "train")
    (condition,) = job_status["conditions"]
    assert (condition["type"], condition["reason"]) == ("Failed", "BackoffLimitExceeded")
    assert job_status["failed"] == 2
    assert job_status["active"] == 0
    assert all(pod.done for pod in pods(simulation))


def test_manifest_run_duration_for_template_pods(tmp_path: Path) -> None:
    manifest = (
        CLASS
        + "---"
        + job(parallelism=1, completions=1).replace(
            f'annotations: {{{RUN_DURATION_ANNOTATION}: "10"}}', "labels: {a: b}"
        )
    )
    simulation = run(tmp_path, manifest, manifest_run_duration_s=5.0)

    (pod,) = pods(simulation)
    assert pod.metadata.annotations == {RUN_DURATION_ANNOTATION: "5.0"}
    assert pod.status.phase == "Succeeded"


def test_pod_without_duration_runs_to_horizon(tmp_path: Path) -> None:
    manifest = (
        CLASS
        + "---"
        + job(parallelism=1, completions=1).replace(
            f'annotations: {{{RUN_DURATION_ANNOTATION}: "10"}}', "labels: {a: b}"
        )
    )
    simulation = run(tmp_path, manifest, until_s=120.0)

    (pod,) = pods(simulation)
    assert pod.status.phase == "Running"
    assert simulation.end_time_s == 120.0


# --------------------------------------------------------------------------------------
# Loading: bad values, fields not modelled, repeated objects
# --------------------------------------------------------------------------------------

BAD_SPECS = {
    "replicas-not-a-number": (
        DEPLOYMENT.replace("replicas: 2", "replicas: two"),
        "Deployment default/web: spec.replicas: expected an integer of 0 or more (got 'two')",
    ),
    "selector-mismatch": (
        DEPLOYMENT.replace("matchLabels: {app: web}", "matchLabels: {app: db}"),
        "Deployment default/web: spec.template.metadata.labels: `selector` does not match",
    ),
    "selector-missing": (
        DEPLOYMENT.replace("  selector:\n    matchLabels: {app: web}\n", ""),
        "Deployment default/web: spec.selector: missing required field",
    ),
    "deployment-restart-never": (
        DEPLOYMENT.replace("containers:", "restartPolicy: Never\n      containers:"),
        "spec.template.spec.restartPolicy: unsupported value 'Never'; a Deployment allows 'Always'",
    ),
    "job-restart-always": (
        job(1, 1).replace("restartPolicy: Never", "restartPolicy: Always"),
        "Job default/train: spec.template.spec.restartPolicy: unsupported value 'Always'",
    ),
    "job-indexed": (
        job(1, 1).replace("backoffLimit: 6", "completionMode: Indexed"),
        "Job default/train: spec.completionMode: 'Indexed' is not modelled",
    ),
    "job-negative-parallelism": (
        job(-1, 1),
        "Job default/train: spec.parallelism: expected an integer of 0 or more (got -1)",
    ),
    "template-missing": (
        "\napiVersion: batch/v1\nkind: Job\nmetadata: {name: train}\nspec: {parallelism: 1}\n",
        "Job default/train: spec.template: missing required field",
    ),
    "container-claim-string": (
        DEPLOYMENT.replace("claims: [{name: gpu}]", "claims: [gpu]"),
        "Deployment default/web: spec.template.spec.containers[0].resources.claims[0]: expected",
    ),
    "container-claim-unknown": (
        DEPLOYMENT.replace("claims: [{name: gpu}]", "claims: [{name: tpu}]"),
        "Deployment default/web: spec.template: ",
    ),
    "wrong-api-version": (
        DEPLOYMENT.replace("apps/v1", "extensions/v1beta1"),
        "Deployment default/web: apiVersion: kind Deployment needs apiVersion apps/v1",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_workload_rejected_at_setup(tmp_path: Path, case: str) -> None:
    manifest, expected = BAD_SPECS[case]

    with pytest.raises(SetupError) as caught:
        run(tmp_path, CLASS + "---" + manifest)

    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_ignored_fields_one_summary_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pod = """
apiVersion: v1
kind: Pod
metadata: {name: solo}
spec:
  containers:
  - {name: a, image: busybox, command: [sleep]}
  - {name: b, image: busybox}
"""
    with caplog.at_level(logging.WARNING, logger="sim.simulation"):
        simulation = run(tmp_path, CLASS + "---" + DEPLOYMENT + "---" + pod, until_s=1.0)

    assert simulation.ignored_manifest_fields == [
        "spec.containers[].image (2)",
        "spec.containers[].command (1)",
        "spec.strategy (1)",
        "spec.template.spec.containers[].image (1)",
    ]
    (record,) = [r for r in caplog.records if r.name == "sim.simulation"]
    assert record.getMessage() == (
        "ignored 5 manifest fields that the simulator does not model: "
        + ", ".join(simulation.ignored_manifest_fields)
    )


def _versions(simulation: Simulation, kind: str, name: str) -> list[tuple[str, str]]:
    assert simulation.object_recorder is not None
    return [
        (record.verb, record.event_type)
        for _, record in simulation.object_recorder.versions()
        if record.kind == kind and record.name == name
    ]


def test_repeated_object_is_applied_again(tmp_path: Path) -> None:
    parameters = """
apiVersion: gpu.resource.example.com/v1alpha1
kind: GpuClaimParameters
metadata: {name: four}
spec: {count: COUNT}
"""
    manifest = "---".join(
        [CLASS, CLASS, parameters.replace("COUNT", "4"), parameters.replace("COUNT", "2")]
    )

    simulation = run(tmp_path, manifest, until_s=1.0)

    # An identical object changes nothing; a changed one replaces the stored one.
    assert _versions(simulation, "ResourceClaimTemplate", "gpu") == [("create", "ADDED")]
    assert _versions(simulation, "GpuClaimParameters", "four") == [
        ("create", "ADDED"),
        ("update", "MODIFIED"),
    ]
    stored = simulation.world.api.get("GpuClaimParameters", "four", "default")
    assert stored.body["spec"] == {"count": 2}


def test_repeated_job_changes_nothing(tmp_path: Path) -> None:
    simulation = run(tmp_path, "---".join([CLASS, job(1, 1), job(1, 1)]), until_s=1.0)

    # The repeated manifest has no selector, but kubectl apply keeps the generated one.
    stored = simulation.world.api.get("Job", "train", "default")
    assert stored.metadata.generation == 1
    assert stored.body["spec"]["selector"] == {
        "matchLabels": {"batch.kubernetes.io/controller-uid": stored.metadata.uid}
    }


def test_changed_claim_spec_rejected(tmp_path: Path) -> None:
    claim = """
apiVersion: resource.k8s.io/v1alpha2
kind: ResourceClaim
metadata: {name: shared}
spec: {resourceClassName: gpu.example.com}
"""
    changed = claim.replace("gpu.example.com}", "gpu.example.com, allocationMode: Immediate}")

    with pytest.raises(SetupError) as caught:
        run(tmp_path, CLASS + "---" + claim + "---" + changed)

    assert "applying ResourceClaim 'shared' over the one that already exists" in str(caught.value)
    assert "field is immutable" in str(caught.value)
