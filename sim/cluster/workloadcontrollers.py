"""The workload controllers of kube-controller-manager: Deployment, ReplicaSet and Job.

Users rarely create pods one by one. They write a Deployment (`apps/v1`),
whose controller creates a ReplicaSet, whose controller keeps `replicas` pods
running, or a Job (`batch/v1`), whose controller runs pods until enough of
them have succeeded. This module runs those three controllers as SimPy
components that talk to the API server like every other component, so the
pods of a real manifest appear with the names, labels and owner references
that a real cluster gives them, shortly after the object that requests
them.

The API model has no types for these kinds: they are `GenericObject`s whose
body is the parsed manifest. `parse_deployment`, `parse_replica_set` and
`parse_job` read the fields the controllers use and raise `WorkloadSpecError`
with the field path for a bad value; `check_workload_object` also reports the
fields that no controller models, so that loading a manifest can list them.

Run durations: a pod runs until the end of the run unless it has the
annotation `sim.dra/run-duration-s` (restartPolicy Never or OnFailure only,
as the kubelet decides). A pod template may carry the annotation; the
scenario setting `manifest_run_duration_s` gives it to every manifest pod and
template pod that lacks it (`with_default_run_duration`).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import simpy

from sim.api.codec import ManifestError, from_dict
from sim.api.errors import AlreadyExists, APIError, Conflict, NotFound
from sim.api.selectors import LabelSelector, SelectorError
from sim.api.server import APIServer, format_timestamp
from sim.api.types import (
    GenericObject,
    OwnerReference,
    Pod,
    PodPhase,
    TopLevelObject,
    controller_owner,
    is_controlled_by,
    kind_of,
)
from sim.cluster.client import APIClient, Informer
from sim.cluster.kubelet import RUN_DURATION_ANNOTATION
from sim.cluster.workqueue import WorkQueue
from sim.cluster.world import World

logger = logging.getLogger(__name__)

APPS_API_VERSION = "apps/v1"
BATCH_API_VERSION = "batch/v1"

WORKLOAD_KINDS: dict[str, str] = {
    "Deployment": APPS_API_VERSION,
    "ReplicaSet": APPS_API_VERSION,
    "Job": BATCH_API_VERSION,
}
"""Kinds these controllers serve, with their apiVersion."""

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"

KUBE_CONTROLLER_MANAGER_QPS = 20.0
"""kube-controller-manager's `--kube-api-qps` default, requests/s."""
KUBE_CONTROLLER_MANAGER_BURST = 30
"""kube-controller-manager's `--kube-api-burst` default, requests."""
WORKERS = 5
"""`--concurrent-deployment-syncs`, `--concurrent-replicaset-syncs` and
`--concurrent-job-syncs` defaults of kube-controller-manager."""
BURST_REPLICAS = 500
"""Most pods one ReplicaSet or Job sync creates or deletes (the controllers' burstReplicas)."""
DEFAULT_BACKOFF_LIMIT = 6
"""`spec.backoffLimit` default of a Job."""

# Alphabet of kube-apiserver's generated name suffixes (no vowels, no 0, 1, 3), also used
# for the pod-template-hash so that ReplicaSet names look like real ones.
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Fields each controller reads; every other field of the object is reported as not modelled.
_MODELLED_SPEC_FIELDS: dict[str, frozenset[str]] = {
    "Deployment": frozenset({"replicas", "selector", "template"}),
    "ReplicaSet": frozenset({"replicas", "selector", "template"}),
    "Job": frozenset(
        {
            "parallelism",
            "completions",
            "backoffLimit",
            "completionMode",
            "suspend",
            "template",
            # The API server generates and checks these. Pods are found by owner reference.
            "selector",
            "manualSelector",
        }
    ),
}
_TEMPLATE_RESTART_POLICIES: dict[str, tuple[str, ...]] = {
    "Deployment": ("Always",),
    "ReplicaSet": ("Always",),
    "Job": ("OnFailure", "Never"),
}


class WorkloadSpecError(ValueError):
    """A Deployment, ReplicaSet or Job whose spec the controllers cannot use.

    The message names the object, the field path and the bad value, as
    kube-apiserver's validation would.
    """


# --------------------------------------------------------------------------------------
# Parsing the objects
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodTemplate:
    """A parsed `spec.template`: the pod to stamp out, and its fields that are not modelled."""

    pod: Pod
    """The pod without name, namespace and owner; labels and annotations come from the template."""
    wire: Mapping[str, Any]
    """The template as written, for copying into a ReplicaSet and for the template hash."""
    ignored: tuple[str, ...]
    """Paths (under `spec.template`) of fields the pod model does not have."""


@dataclass(frozen=True)
class ReplicaSetSpec:
    """The fields of a ReplicaSet (or of a Deployment) that the controllers use."""

    replicas: int
    selector: LabelSelector
    template: PodTemplate


@dataclass(frozen=True)
class JobSpec:
    """The fields of a Job that the Job controller uses."""

    parallelism: int
    completions: int | None
    """None means a work queue: the Job is done once one pod succeeded and none is active."""
    backoff_limit: int
    suspend: bool
    template: PodTemplate


def _describe(obj: TopLevelObject) -> str:
    namespace = obj.metadata.namespace or "default"
    return f"{kind_of(obj)} {namespace}/{obj.metadata.name or obj.metadata.generate_name}"


def _spec_of(obj: GenericObject) -> Mapping[str, Any]:
    spec = obj.body.get("spec")
    if not isinstance(spec, Mapping):
        raise WorkloadSpecError(
            f"{_describe(obj)}: spec: expected an object (a mapping of fields) (got {spec!r})"
        )
    return spec


def _count(
    obj: GenericObject, spec: Mapping[str, Any], key: str, default: int | None
) -> int | None:
    value = spec.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WorkloadSpecError(
            f"{_describe(obj)}: spec.{key}: expected an integer of 0 or more (got {value!r})"
        )
    return value


def _required_count(obj: GenericObject, spec: Mapping[str, Any], key: str, default: int) -> int:
    value = _count(obj, spec, key, default)
    return default if value is None else value


def parse_pod_template(obj: GenericObject, restart_policies: Sequence[str]) -> PodTemplate:
    """Parse `spec.template` of a workload object into the pod it stamps out.

    The template is read as a Pod manifest in lenient mode, so the codec checks
    every modelled field and reports the others.

    Raises:
        WorkloadSpecError: the template is missing, a field has a wrong type, or
            the restart policy is not one of `restart_policies`.
    """
    template = _spec_of(obj).get("template")
    if not isinstance(template, Mapping):
        raise WorkloadSpecError(
            f"{_describe(obj)}: spec.template: missing required field; a {kind_of(obj)} needs "
            "the pod template it creates pods from"
        )
    metadata = template.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise WorkloadSpecError(
            f"{_describe(obj)}: spec.template.metadata: expected an object (got {metadata!r})"
        )
    wire = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            key: value for key, value in metadata.items() if key in ("labels", "annotations")
        },
        "spec": template.get("spec"),
    }
    try:
        pod, ignored = from_dict(wire, lenient=True, source=_describe(obj))
    except ManifestError as error:
        relocated = error.relocated(path_prefix="spec.template")
        detail = relocated.message.removeprefix(f"{_describe(obj)}: document 1: ")
        raise WorkloadSpecError(f"{_describe(obj)}: {detail}") from None
    if not isinstance(pod, Pod):
        raise AssertionError("a Pod manifest must load as a Pod")
    policy = pod.spec.restart_policy or "Always"
    if policy not in restart_policies:
        raise WorkloadSpecError(
            f"{_describe(obj)}: spec.template.spec.restartPolicy: unsupported value {policy!r}; "
            f"a {kind_of(obj)} allows {' or '.join(repr(p) for p in restart_policies)}"
        )
    ignored_metadata = [
        f"spec.template.metadata.{key}" for key in metadata if key not in ("labels", "annotations")
    ]
    return PodTemplate(
        pod=pod,
        wire=template,
        ignored=tuple(ignored_metadata + [f"spec.template.{path}" for path in ignored]),
    )


def _selector(obj: GenericObject, template: PodTemplate) -> LabelSelector:
    """Parse `spec.selector` and check that it selects the template's pods."""
    raw = _spec_of(obj).get("selector")
    if not isinstance(raw, Mapping):
        raise WorkloadSpecError(
            f"{_describe(obj)}: spec.selector: missing required field; {APPS_API_VERSION} "
            "needs a label selector that matches spec.template.metadata.labels"
        )
    labels = raw.get("matchLabels") or {}
    expressions = raw.get("matchExpressions") or []
    if not isinstance(labels, Mapping) or not isinstance(expressions, list):
        raise WorkloadSpecError(
            f"{_describe(obj)}: spec.selector: matchLabels must be a mapping and "
            f"matchExpressions a list (got {dict(raw)!r})"
        )
    try:
        selector = LabelSelector.from_api(labels, expressions)
    except SelectorError as error:
        raise WorkloadSpecError(f"{_describe(obj)}: spec.selector: {error}") from None
    if selector.empty:
        raise WorkloadSpecError(
            f"{_describe(obj)}: spec.selector: empty selector is invalid for {kind_of(obj)}"
        )
    if not selector.matches(template.pod.metadata.labels):
        raise WorkloadSpecError(
            f"{_describe(obj)}: spec.template.metadata.labels: `selector` does not match "
            f"template `labels` (selector {dict(raw)!r}, labels "
            f"{template.pod.metadata.labels!r})"
        )
    return selector


def parse_replica_set(obj: GenericObject) -> ReplicaSetSpec:
    """Read replicas, selector and template of a ReplicaSet or a Deployment.

    Raises:
        WorkloadSpecError: a field is missing or has a bad value.
    """
    spec = _spec_of(obj)
    replicas = _required_count(obj, spec, "replicas", 1)
    template = parse_pod_template(obj, _TEMPLATE_RESTART_POLICIES[kind_of(obj)])
    return ReplicaSetSpec(replicas, _selector(obj, template), template)


parse_deployment = parse_replica_set
"""Read replicas, selector and template of a Deployment (the same fields as a ReplicaSet)."""


def parse_job(obj: GenericObject) -> JobSpec:
    """Read parallelism, completions, backoffLimit, suspend and template of a Job.

    Raises:
        WorkloadSpecError: a field has a bad value, or the Job requests a
            completion mode that is not modelled.
    """
    spec = _spec_of(obj)
    parallelism = _required_count(obj, spec, "parallelism", 1)
    completions = _count(obj, spec, "completions", None)
    backoff_limit = _required_count(obj, spec, "backoffLimit", DEFAULT_BACKOFF_LIMIT)
    mode = spec.get("completionMode", "NonIndexed")
    if mode != "NonIndexed":
        raise WorkloadSpecError(
            f"{_describe(obj)}: spec.completionMode: {mode!r} is not modelled; the simulator "
            "runs NonIndexed Jobs only"
        )
    suspend = spec.get("suspend", False)
    if not isinstance(suspend, bool):
        raise WorkloadSpecError(
            f"{_describe(obj)}: spec.suspend: expected a boolean (true or false) (got {suspend!r})"
        )
    template = parse_pod_template(obj, _TEMPLATE_RESTART_POLICIES["Job"])
    return JobSpec(parallelism, completions, backoff_limit, suspend, template)


def check_workload_object(api: APIServer, obj: TopLevelObject) -> list[str]:
    """Check a Deployment, ReplicaSet or Job before it is created; return its ignored fields.

    The template's pod is sent to the API server as a dry run, so a template
    that kube-apiserver would reject fails here, before the run starts.
    Objects of other kinds are not checked and have no ignored fields.

    Returns:
        Dotted paths of the fields that no controller models (`spec.strategy`,
        `spec.template.spec.containers[0].image`, ...).

    Raises:
        WorkloadSpecError: the object cannot be used by its controller.
    """
    kind = kind_of(obj)
    if kind not in WORKLOAD_KINDS or not isinstance(obj, GenericObject):
        return []
    if obj.api_version != WORKLOAD_KINDS[kind]:
        raise WorkloadSpecError(
            f"{_describe(obj)}: apiVersion: kind {kind} needs apiVersion {WORKLOAD_KINDS[kind]} "
            f"(got {obj.api_version!r})"
        )
    template = parse_job(obj).template if kind == "Job" else parse_replica_set(obj).template
    # A fixed name, not generateName, so the check draws nothing from the API server's
    # random names; a pod that already has this name is no problem of the template.
    probe = template.pod.with_meta(name=obj.metadata.name, namespace=obj.metadata.namespace)
    try:
        api.create(probe, dry_run=True)
    except AlreadyExists:
        pass
    except APIError as error:
        raise WorkloadSpecError(f"{_describe(obj)}: spec.template: {error}") from None
    spec = _spec_of(obj)
    ignored = [f"spec.{key}" for key in spec if key not in _MODELLED_SPEC_FIELDS[kind]]
    ignored += [key for key in obj.body if key not in ("spec", "status")]
    return ignored + list(template.ignored)


def register_workload_kinds(api: APIServer) -> None:
    """Serve Deployments, ReplicaSets and Jobs with a status subresource, as kube-apiserver does."""
    for kind, api_version in WORKLOAD_KINDS.items():
        api.register_kind(kind, api_version, namespaced=True, has_status=True)


def with_default_run_duration(pod: Pod, run_duration_s: float | None) -> Pod:
    """Return the pod with the run-duration annotation added when it has none."""
    annotations = pod.metadata.annotations
    if run_duration_s is None or RUN_DURATION_ANNOTATION in annotations:
        return pod
    updated: Pod = pod.with_meta(
        annotations={**annotations, RUN_DURATION_ANNOTATION: repr(float(run_duration_s))}
    )
    return updated


def template_hash(template: Mapping[str, Any]) -> str:
    """Return a short, stable hash of a pod template, spelled like `pod-template-hash` values.

    NOTE: kube-controller-manager hashes the Go object with FNV-32a. This hash
    is CRC-32 of the template's JSON, so its values differ from a real
    cluster's, but they are stable per template.
    """
    text = json.dumps(template, sort_keys=True, separators=(",", ":"), default=str)
    digits = str(zlib.crc32(text.encode()))
    return "".join(_HASH_ALPHABET[ord(char) % len(_HASH_ALPHABET)] for char in digits)


def _controller_reference(owner: GenericObject) -> OwnerReference:
    return OwnerReference(
        api_version=owner.api_version,
        kind=owner.kind,
        name=owner.metadata.name,
        uid=owner.metadata.uid,
        controller=True,
        block_owner_deletion=True,
    )


def _condition(
    type_: str, status: str, reason: str, message: str, now: str, previous: Mapping[str, Any]
) -> dict[str, Any]:
    """Return a workload condition; the transition time only moves when the status changes."""
    old = next((c for c in previous.get("conditions", ()) if c.get("type") == type_), None)
    transition = now
    if old is not None and old.get("status") == status:
        transition = old.get("lastTransitionTime", now)
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }


def _status(obj: GenericObject) -> Mapping[str, Any]:
    status = obj.body.get("status")
    return status if isinstance(status, Mapping) else {}


def _active(pod: Pod) -> bool:
    """Whether a pod counts towards its controller's replicas (not finished, not deleting)."""
    return not pod.done and not pod.deleting


def _ready(pod: Pod) -> bool:
    """Whether a pod is ready; without probes, a Running pod is ready."""
    return pod.status.phase == PodPhase.RUNNING and not pod.deleting


def _deletion_rank(pod: Pod) -> tuple[int, int, int, str]:
    """Sort key putting the pods a ReplicaSet deletes first first (controller.ActivePods order).

    Unassigned before assigned, Pending before Running, not ready before
    ready, and newer before older.
    """
    phase_rank = {PodPhase.PENDING.value: 0, PodPhase.UNKNOWN.value: 1, PodPhase.RUNNING.value: 2}
    created = pod.metadata.creation_timestamp or ""
    # Timestamps have a fixed width, so inverting every character sorts the newest first.
    newest_first = "".join(chr(0x10FFFF - ord(char)) for char in created)
    return (
        1 if pod.spec.node_name else 0,
        phase_rank.get(pod.status.phase, 0),
        1 if _ready(pod) else 0,
        newest_first,
    )


# --------------------------------------------------------------------------------------
# Shared controller machinery
# --------------------------------------------------------------------------------------


Process = Generator[simpy.Event, Any, None]


@dataclass
class _Expectations:
    """Pods a controller created or deleted that its pod informer has not shown yet.

    kube-controller-manager keeps the same record (`ControllerExpectations`) so
    that a sync that runs before the watch events arrive does not create or
    delete the same pods twice.
    """

    created: dict[str, set[str]] = field(default_factory=dict)
    deleted: dict[str, set[str]] = field(default_factory=dict)

    def observe_add(self, owner_key: str, pod_uid: str) -> None:
        self.created.get(owner_key, set()).discard(pod_uid)

    def observe_delete(self, owner_key: str, pod_uid: str) -> None:
        self.deleted.get(owner_key, set()).discard(pod_uid)


class _KeyedController:
    """The base of the workload controllers: an API client, a queue of keys and its workers.

    A worker syncs one key at a time and retries a failed sync with backoff.
    """

    KIND = ""
    COMPONENT = ""

    def __init__(self, world: World) -> None:
        self.world = world
        self.client = APIClient(
            world,
            self.COMPONENT,
            qps=KUBE_CONTROLLER_MANAGER_QPS,
            burst=KUBE_CONTROLLER_MANAGER_BURST,
        )
        self.queue = WorkQueue(world.env, self.COMPONENT)
        self.warnings: list[str] = []
        """Objects the controller cannot work on, with the reason (also logged)."""
        self._started = False

    def _run_worker(self) -> Process:
        yield from self.queue.work(self._sync, (APIError,), self._log_retry)

    def _log_retry(self, key: str, error: Exception, _retries: int) -> None:
        logger.info(
            "t=%.6f %s: sync of %s %s failed, retrying with backoff: %s",
            self.world.now,
            self.COMPONENT,
            self.KIND,
            key,
            error,
        )

    def _sync(self, key: str) -> Process:
        raise NotImplementedError
        yield  # pragma: no cover

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            logger.warning("%s: %s", self.COMPONENT, message)


class _PodOwningController(_KeyedController):
    """The loop that ReplicaSet and Job controllers share: informers, queue, workers, pods."""

    def __init__(self, world: World, *, default_run_duration_s: float | None = None) -> None:
        super().__init__(world)
        self.default_run_duration_s = default_run_duration_s
        self.owners = Informer(world, self.KIND, self.COMPONENT)
        self.pods = Informer(world, "Pod", self.COMPONENT)
        self.expectations = _Expectations()

        self.owners.add_handler(self._on_owner, lambda _old, new: self._on_owner(new))
        self.pods.add_index("controller", self._controller_index)
        self.pods.add_handler(self._on_pod_add, self._on_pod_update, self._on_pod_delete)

    def start(self) -> None:
        """Start the informers and the workers."""
        if self._started:
            return
        self._started = True
        self.pods.start()
        self.owners.start()
        for _ in range(WORKERS):
            self.world.env.process(self._run_worker())
        logger.info("%s started: %d workers", self.COMPONENT, WORKERS)

    # -- handlers: they only queue keys ----------------------------------------------

    def _controller_index(self, pod: Pod) -> list[str]:
        ref = controller_owner(pod)
        if ref is None or ref.kind != self.KIND:
            return []
        return [f"{pod.metadata.namespace}/{ref.name}"]

    def _on_owner(self, obj: GenericObject) -> None:
        self.queue.add(obj.key)

    def _on_pod_add(self, pod: Pod) -> None:
        for key in self._controller_index(pod):
            self.expectations.observe_add(key, pod.metadata.uid)
            self.queue.add(key)

    def _on_pod_update(self, old: Pod, new: Pod) -> None:
        if old.status.phase != new.status.phase or old.deleting != new.deleting:
            for key in self._controller_index(new):
                self.queue.add(key)

    def _on_pod_delete(self, pod: Pod) -> None:
        for key in self._controller_index(pod):
            self.expectations.observe_delete(key, pod.metadata.uid)
            self.queue.add(key)

    # -- pods ------------------------------------------------------------------------

    def owned_pods(self, owner: GenericObject) -> list[Pod]:
        """Return the pods in the informer that the owner controls (by UID)."""
        pods: list[Pod] = self.pods.by_index("controller", owner.key)
        # A pod of an earlier owner with the same name has another controller UID.
        return [pod for pod in pods if is_controlled_by(pod, owner.metadata.uid)]

    def pending_changes(self, owner: GenericObject, pods: Sequence[Pod]) -> tuple[int, int]:
        """Return (creations, deletions) of this controller that the informer has not shown."""
        seen = {pod.metadata.uid for pod in pods}
        created = self.expectations.created.setdefault(owner.key, set())
        created.difference_update(seen & created)
        deleted = self.expectations.deleted.setdefault(owner.key, set())
        deleted.intersection_update(seen)
        return len(created), len(deleted)

    def build_pod(self, owner: GenericObject, template: PodTemplate) -> Pod:
        """Return the pod to create for `owner` from its template.

        The pod gets generateName `<owner>-`, a controller reference and the
        template's labels, and the default run duration when it has none.
        """
        pod = template.pod.with_meta(
            generate_name=f"{owner.metadata.name}-",
            namespace=owner.metadata.namespace,
            labels=dict(template.pod.metadata.labels),
            owner_references=(_controller_reference(owner),),
        )
        return with_default_run_duration(pod, self.default_run_duration_s)

    def create_pods(self, owner: GenericObject, pods: Sequence[Pod], reason: str) -> Process:
        """Create pods in slow-start batches of 1, 2, 4, ..., each batch in parallel.

        Stops at the first batch with a failed create, as the real controllers
        do (the next sync tries again).
        """
        created = self.expectations.created.setdefault(owner.key, set())
        remaining = list(pods)
        batch = 1
        while remaining:
            current, remaining = remaining[:batch], remaining[batch:]
            failures: list[APIError] = []
            processes = [
                self.world.env.process(self._create_one(pod, created, failures, reason))
                for pod in current
            ]
            yield self.world.env.all_of(processes)
            if failures:
                raise failures[0]
            batch *= 2

    def _create_one(
        self, pod: Pod, created: set[str], failures: list[APIError], reason: str
    ) -> Process:
        try:
            stored = yield from self.client.create(pod, reason=reason)
        except APIError as error:
            failures.append(error)
            return
        created.add(stored.metadata.uid)

    def delete_pods(self, owner: GenericObject, pods: Sequence[Pod], reason: str) -> Process:
        """Delete pods (with a UID precondition), recording them as expected deletions."""
        deleted = self.expectations.deleted.setdefault(owner.key, set())
        for pod in pods:
            try:
                yield from self.client.delete(
                    "Pod",
                    pod.metadata.name,
                    pod.metadata.namespace,
                    uid_precondition=pod.metadata.uid,
                    reason=reason,
                )
            except (NotFound, Conflict):
                continue
            deleted.add(pod.metadata.uid)

    def write_status(self, owner: GenericObject, status: Mapping[str, Any], reason: str) -> Process:
        """Write the owner's status when it changed (see `write_workload_status`)."""
        yield from write_workload_status(self.client, owner, status, reason)


def write_workload_status(
    client: APIClient, owner: GenericObject, status: Mapping[str, Any], reason: str
) -> Process:
    """Write a workload object's status when it differs from the stored one.

    The copy from the informer may be stale, so a 409 Conflict is followed by a
    GET of the live object and one more attempt, as the ReplicaSet
    controller's `updateReplicaSetStatus` does (`statusUpdateRetries` = 1); a
    second conflict goes back to the work queue.
    """
    wanted = dict(status)
    for attempt in range(2):
        if wanted == dict(_status(owner)):
            return
        body = {**owner.body, "status": wanted}
        try:
            yield from client.update_status(owner.model_copy(update={"body": body}), reason=reason)
            return
        except Conflict:
            if attempt == 1:
                raise
        owner = yield from client.get(
            kind_of(owner), owner.metadata.name, owner.metadata.namespace, reason=reason
        )


# --------------------------------------------------------------------------------------
# The controllers
# --------------------------------------------------------------------------------------


class ReplicaSetController(_PodOwningController):
    """The ReplicaSet controller of kube-controller-manager (`pkg/controller/replicaset`).

    Modelled:

    * informers on ReplicaSets and Pods, and a work queue with
      `--concurrent-replicaset-syncs` (5) workers;
    * per sync, the pods that the ReplicaSet controls (by controller owner
      reference) and that are neither finished nor deleting are counted.
      Missing pods are created with `generateName: <replicaset>-` in
      slow-start batches of 1, 2, 4, ... pods, at most 500 per sync. Extra
      pods are deleted: unscheduled, pending, not ready and newest first;
    * creations and deletions that the informer has not shown yet are
      remembered (expectations), so pods are never created twice;
    * the status (`replicas`, `fullyLabeledReplicas`, `readyReplicas`,
      `availableReplicas`, `observedGeneration`) is written when it changes.

    So a pod that is deleted or finishes is replaced.

    Simplified: a Running pod is ready and available (no probes, no
    `minReadySeconds`).

    Not modelled: adoption and release of pods by label selector (only pods
    with a controller reference count), the expectations timeout, and
    conditions such as ReplicaFailure.
    """

    KIND = "ReplicaSet"
    COMPONENT = "replicaset-controller"

    def _sync(self, key: str) -> Process:
        replica_set: GenericObject | None = self.owners.get_by_key(key)
        if replica_set is None or replica_set.deleting:
            return
        try:
            spec = parse_replica_set(replica_set)
        except WorkloadSpecError as error:
            self._warn(str(error))
            return

        pods = self.owned_pods(replica_set)
        active = [pod for pod in pods if _active(pod)]
        creating, deleting = self.pending_changes(replica_set, pods)
        difference = len(active) + creating - deleting - spec.replicas
        if difference < 0:
            count = min(-difference, BURST_REPLICAS)
            new = [self.build_pod(replica_set, spec.template) for _ in range(count)]
            yield from self.create_pods(replica_set, new, f"{count} replica(s) missing")
        elif difference > 0:
            extra = sorted(active, key=_deletion_rank)[: min(difference, BURST_REPLICAS)]
            yield from self.delete_pods(replica_set, extra, f"{len(extra)} replica(s) too many")

        ready = sum(1 for pod in active if _ready(pod))
        status = {
            "replicas": len(active),
            "fullyLabeledReplicas": len(active),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": replica_set.metadata.generation,
        }
        yield from self.write_status(replica_set, status, "replica counts changed")

    def finished(self) -> bool:
        """Whether every ReplicaSet has as many active pods as its `replicas`."""
        for replica_set in self.owners.list():
            try:
                replicas = parse_replica_set(replica_set).replicas
            except WorkloadSpecError:
                continue
            if sum(1 for pod in self.owned_pods(replica_set) if _active(pod)) != replicas:
                return False
        return True


class JobController(_PodOwningController):
    """The Job controller of kube-controller-manager (`pkg/controller/job`), for NonIndexed Jobs.

    Modelled:

    * informers on Jobs and Pods, and `--concurrent-job-syncs` (5) workers;
    * per sync, the Job's pods (by controller owner reference) are counted as
      active, succeeded and failed. While fewer than
      `min(parallelism, completions - succeeded)` pods are active, new pods
      are created from the template with `generateName: <job>-`. They carry
      the labels `job-name` and `controller-uid`, with and without the
      `batch.kubernetes.io/` prefix, because the API server added them to the
      template when it generated the Job's selector. Without `completions`
      the Job is a work queue, which starts no pod after the first success;
    * the Job completes (condition Complete, `completionTime`) when
      `completions` pods succeeded or, without `completions`, when one pod
      succeeded and none is active. It fails (condition Failed, reason
      BackoffLimitExceeded) when more than `backoffLimit` pods failed, and
      then deletes its active pods. `suspend: true` deletes the active pods
      and starts none;
    * the status (`active`, `ready`, `succeeded`, `failed`, `startTime`,
      conditions) is written when it changes.

    `restartPolicy` must be Never or OnFailure, and the kubelet ends a pod
    after its run duration.

    Simplified: finished pods are counted from the informer, because pods are
    never removed in a run. The real controller counts them with the
    `batch.kubernetes.io/job-tracking` finalizer. A failed pod is replaced at
    once, without the exponential backoff of 10 s doubling per failure.

    Not modelled: adoption and release of pods by `spec.selector`, Indexed
    Jobs, `activeDeadlineSeconds`,
    `ttlSecondsAfterFinished`, pod failure policies and
    `podReplacementPolicy`.
    """

    KIND = "Job"
    COMPONENT = "job-controller"

    def _sync(self, key: str) -> Process:
        job: GenericObject | None = self.owners.get_by_key(key)
        if job is None or job.deleting or _job_finished(job):
            return
        try:
            spec = parse_job(job)
        except WorkloadSpecError as error:
            self._warn(str(error))
            return

        pods = self.owned_pods(job)
        active = [pod for pod in pods if _active(pod)]
        succeeded = sum(1 for pod in pods if pod.status.phase == PodPhase.SUCCEEDED)
        failed = sum(1 for pod in pods if pod.status.phase == PodPhase.FAILED)
        creating, deleting = self.pending_changes(job, pods)
        previous = _status(job)
        now = format_timestamp(self.world.now)
        status: dict[str, Any] = {
            key: value
            for key, value in previous.items()
            if key in ("startTime", "completionTime", "conditions")
        }
        if not spec.suspend and "startTime" not in status:
            status["startTime"] = now

        # Active pods as the controller counts them, with its own unobserved writes.
        counted = len(active) + creating - deleting
        if failed > spec.backoff_limit:
            yield from self.delete_pods(job, active, "job failed")
            counted = 0
            status["conditions"] = [
                _condition(
                    "Failed",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    now,
                    previous,
                )
            ]
        elif _job_complete(spec, succeeded, counted):
            status["completionTime"] = now
            status["conditions"] = [_condition("Complete", "True", "", "", now, previous)]
        elif spec.suspend:
            yield from self.delete_pods(job, active, "job suspended")
            counted = 0
        else:
            counted = yield from self._manage_pods(job, spec, active, succeeded, counted)

        status.update(
            active=counted,
            ready=sum(1 for pod in active if _ready(pod)),
            succeeded=succeeded,
            failed=failed,
        )
        yield from self.write_status(job, status, "job pod counts changed")

    def _manage_pods(
        self, job: GenericObject, spec: JobSpec, active: list[Pod], succeeded: int, counted: int
    ) -> Generator[simpy.Event, Any, int]:
        """Create or delete pods towards the wanted active count; return the new active count."""
        difference = _wanted_active(spec, succeeded, counted) - counted
        if difference > 0:
            count = min(difference, BURST_REPLICAS)
            new = [self.build_pod(job, spec.template) for _ in range(count)]
            yield from self.create_pods(job, new, f"{count} job pod(s) missing")
            return counted + count
        if difference < 0:
            extra = sorted(active, key=_deletion_rank)[: min(-difference, BURST_REPLICAS)]
            yield from self.delete_pods(job, extra, "too many active job pods")
            return counted - len(extra)
        return counted

    def finished(self) -> bool:
        """Whether every Job has completed, failed or is suspended."""
        for job in self.owners.list():
            if _job_finished(job):
                continue
            try:
                if parse_job(job).suspend:
                    continue
            except WorkloadSpecError:
                continue
            return False
        return True


def _wanted_active(spec: JobSpec, succeeded: int, active: int) -> int:
    """Return how many pods should be active; a work queue keeps its pods after a success."""
    if spec.completions is None:
        return active if succeeded > 0 else spec.parallelism
    return max(0, min(spec.parallelism, spec.completions - succeeded))


def _job_complete(spec: JobSpec, succeeded: int, active: int) -> bool:
    if spec.completions is None:
        return succeeded > 0 and active == 0
    return succeeded >= spec.completions


def _job_finished(job: GenericObject) -> bool:
    """Whether a Job carries a Complete or Failed condition with status True."""
    return any(
        condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True"
        for condition in _status(job).get("conditions", ())
    )


class DeploymentController(_KeyedController):
    """The Deployment controller of kube-controller-manager (`pkg/controller/deployment`).

    Modelled:

    * informers on Deployments and ReplicaSets, and
      `--concurrent-deployment-syncs` (5) workers;
    * a Deployment gets one ReplicaSet named
      `<deployment>-<pod-template-hash>`, with the Deployment's replicas, its
      selector and template plus the `pod-template-hash` label, and a
      controller owner reference. A change of `replicas` is passed on to that
      ReplicaSet;
    * the Deployment's status (`replicas`, `updatedReplicas`,
      `readyReplicas`, `availableReplicas`, `unavailableReplicas`,
      `observedGeneration`, condition Available) follows its ReplicaSet.

    Not modelled: rollouts. A changed pod template is reported and otherwise
    ignored (no new ReplicaSet, no rolling update, no `maxSurge` or
    `maxUnavailable`); also pausing, rollbacks, revision history and
    progress deadlines.
    """

    KIND = "Deployment"
    COMPONENT = "deployment-controller"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.deployments = Informer(world, "Deployment", self.COMPONENT)
        self.replica_sets = Informer(world, "ReplicaSet", self.COMPONENT)

        self.deployments.add_handler(
            self._on_deployment, lambda _old, new: self._on_deployment(new)
        )
        self.replica_sets.add_handler(
            self._on_replica_set,
            lambda _old, new: self._on_replica_set(new),
            self._on_replica_set,
        )

    def start(self) -> None:
        """Start the informers and the workers."""
        if self._started:
            return
        self._started = True
        self.replica_sets.start()
        self.deployments.start()
        for _ in range(WORKERS):
            self.world.env.process(self._run_worker())
        logger.info("%s started: %d workers", self.COMPONENT, WORKERS)

    def _on_deployment(self, deployment: GenericObject) -> None:
        self.queue.add(deployment.key)

    def _on_replica_set(self, replica_set: GenericObject) -> None:
        ref = controller_owner(replica_set)
        if ref is not None and ref.kind == "Deployment":
            self.queue.add(f"{replica_set.metadata.namespace}/{ref.name}")

    def owned_replica_set(self, deployment: GenericObject) -> GenericObject | None:
        """Return the ReplicaSet that the Deployment controls, or None."""
        for replica_set in self.replica_sets.list(deployment.metadata.namespace):
            ref = controller_owner(replica_set)
            if ref is not None and ref.uid == deployment.metadata.uid:
                found: GenericObject = replica_set
                return found
        return None

    def _sync(self, key: str) -> Process:
        deployment: GenericObject | None = self.deployments.get_by_key(key)
        if deployment is None or deployment.deleting:
            return
        try:
            spec = parse_deployment(deployment)
        except WorkloadSpecError as error:
            self._warn(str(error))
            return

        replica_set = self.owned_replica_set(deployment)
        wanted_hash = template_hash(spec.template.wire)
        if replica_set is None:
            replica_set = yield from self.client.create(
                _new_replica_set(deployment, spec, wanted_hash),
                reason="deployment has no replicaset",
            )
        else:
            if replica_set.metadata.labels.get(POD_TEMPLATE_HASH_LABEL) != wanted_hash:
                self._warn(
                    f"Deployment {key}: the pod template changed; rollouts are not modelled, "
                    f"so ReplicaSet {replica_set.metadata.name} keeps the old template"
                )
            rs_spec = replica_set.body.get("spec", {})
            if isinstance(rs_spec, Mapping) and rs_spec.get("replicas") != spec.replicas:
                body = {**replica_set.body, "spec": {**rs_spec, "replicas": spec.replicas}}
                replica_set = yield from self.client.update(
                    replica_set.model_copy(update={"body": body}), reason="deployment scaled"
                )

        yield from self._write_status(deployment, spec, replica_set)

    def _write_status(
        self, deployment: GenericObject, spec: ReplicaSetSpec, replica_set: GenericObject
    ) -> Process:
        counts = _status(replica_set)
        replicas = int(counts.get("replicas", 0))
        available = int(counts.get("availableReplicas", 0))
        previous = _status(deployment)
        now = format_timestamp(self.world.now)
        if available >= spec.replicas:
            available_condition = _condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                now,
                previous,
            )
        else:
            available_condition = _condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now,
                previous,
            )
        status: dict[str, Any] = {
            "observedGeneration": deployment.metadata.generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": int(counts.get("readyReplicas", 0)),
            "availableReplicas": available,
            "conditions": [available_condition],
        }
        if spec.replicas > available:
            status["unavailableReplicas"] = spec.replicas - available
        yield from write_workload_status(
            self.client, deployment, status, "replicaset status changed"
        )

    def finished(self) -> bool:
        """Whether every Deployment has its ReplicaSet."""
        return all(
            self.owned_replica_set(deployment) is not None for deployment in self.deployments.list()
        )


def _new_replica_set(deployment: GenericObject, spec: ReplicaSetSpec, hash_: str) -> GenericObject:
    template = dict(spec.template.wire)
    template_metadata = dict(template.get("metadata") or {})
    labels = {**(template_metadata.get("labels") or {}), POD_TEMPLATE_HASH_LABEL: hash_}
    template["metadata"] = {**template_metadata, "labels": labels}
    deployment_spec = _spec_of(deployment)
    selector = dict(deployment_spec["selector"])
    selector["matchLabels"] = {
        **(selector.get("matchLabels") or {}),
        POD_TEMPLATE_HASH_LABEL: hash_,
    }
    return GenericObject(
        api_version=APPS_API_VERSION,
        kind="ReplicaSet",
        metadata=deployment.metadata.model_copy(
            update={
                "name": f"{deployment.metadata.name}-{hash_}",
                "generate_name": "",
                "uid": "",
                "resource_version": "",
                "generation": 0,
                "creation_timestamp": None,
                "deletion_timestamp": None,
                "labels": labels,
                "annotations": {REVISION_ANNOTATION: "1"},
                "finalizers": (),
                "owner_references": (_controller_reference(deployment),),
            }
        ),
        body={"spec": {"replicas": spec.replicas, "selector": selector, "template": template}},
    )


WorkloadController = DeploymentController | ReplicaSetController | JobController


def start_workload_controllers(
    world: World, *, default_run_duration_s: float | None = None
) -> list[WorkloadController]:
    """Create and start the Deployment, ReplicaSet and Job controllers of one world."""
    controllers: list[WorkloadController] = [
        DeploymentController(world),
        ReplicaSetController(world, default_run_duration_s=default_run_duration_s),
        JobController(world, default_run_duration_s=default_run_duration_s),
    ]
    for controller in controllers:
        controller.start()
    return controllers


def has_workload_objects(api: APIServer) -> bool:
    """Whether the API server contains any Deployment, ReplicaSet or Job."""
    return any(api.list(kind).items for kind in WORKLOAD_KINDS)
