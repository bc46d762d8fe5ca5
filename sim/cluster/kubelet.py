"""The kubelet's DRA manager and pod workers: claims are prepared before a pod starts.

A pod that uses ResourceClaims reaches its node already bound, with every
claim allocated by a driver and reserved for it. The kubelet then calls the
node half of each driver (the kubelet plugin, a gRPC server on the node) to
prepare the claims. A plugin typically writes a CDI spec file that names the
devices. Only then does it create the pod sandbox and start the containers.
When the pod ends, the kubelet calls the plugins to unprepare the claims
before it reports the terminal phase, so that the resourceclaim controller
and the driver do not deallocate a claim that the node still uses (deleted
pods are the exception here, see `Kubelet`).

Prepared state (what the plugins hold on a node) is kept apart from allocated
state (what the API objects say). The two diverge exactly in the failures
this module injects: a plugin that cannot prepare what the driver allocated,
a kubelet that crashes before it writes its checkpoint, a node reboot that
wipes what the plugins had set up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import simpy
from pydantic import Field, field_validator

from sim.api.errors import Conflict, NotFound
from sim.api.server import format_timestamp
from sim.api.types import Pod, PodPhase, ResourceClaim
from sim.cluster.claims import (
    ClaimNameError,
    check_owner,
    pod_uses_claim_in_containers,
    resolve_claim_name,
)
from sim.cluster.client import APIClient, Informer
from sim.cluster.config import Dist, StrictModel
from sim.cluster.world import SimulationInvariantError, World
from sim.distributions import Constant

logger = logging.getLogger(__name__)

RUN_DURATION_ANNOTATION = "sim.dra/run-duration-s"
"""Pod annotation with the containers' run time in seconds (float); absent = run until deleted."""

Process = Generator[simpy.Event, Any, Any]

# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------


class KubeletConfig(StrictModel):
    """kubelet settings shared by every node (defaults of KubeletConfiguration v1beta1, 1.29)."""

    qps: float = Field(
        50.0, gt=0, description="kubeAPIQPS: client-side API request rate limit, requests/s"
    )
    burst: int = Field(100, ge=1, description="kubeAPIBurst: client-side burst, requests")
    prepare_latency_s: Dist = Field(
        default_factory=lambda: Constant(value=0.01),
        description="duration of one prepare call to a kubelet plugin, seconds (an estimate: "
        "a plugin usually writes a CDI spec file of a few KiB)",
    )
    unprepare_latency_s: Dist = Field(
        default_factory=lambda: Constant(value=0.005),
        description="duration of one unprepare call to a kubelet plugin, seconds (an estimate)",
    )
    plugin_timeout_s: float | None = Field(
        None,
        gt=0,
        description="gRPC deadline of one plugin call, seconds; None = the version's value "
        "(10 s in 1.27, 45 s in 1.28 and 1.29)",
    )
    sync_frequency_s: float = Field(
        60.0,
        gt=0,
        description="syncFrequency: pod resync period, also the retry delay after a failed "
        "prepare, seconds",
    )
    sync_jitter: float = Field(
        0.5, ge=0, description="resync delay = sync_frequency_s * (1 + U(0, sync_jitter))"
    )
    error_backoff_s: float = Field(
        10.0, gt=0, description="pod worker retry delay after a sync error (failed unprepare), s"
    )
    error_backoff_jitter: float = Field(
        0.5, ge=0, description="error delay = error_backoff_s * (1 + U(0, error_backoff_jitter))"
    )
    sandbox_start_s: Dist = Field(
        default_factory=lambda: Constant(value=0.0),
        description="time from successful prepare to running containers (sandbox creation "
        "and container start), seconds",
    )
    checkpoint_before_prepare: bool = Field(
        True,
        description="write a claim to the checkpoint before calling the plugin, so that a "
        "crash between a successful prepare and the checkpoint cannot lose it; False "
        "reproduces the 1.27-1.29 order (checkpoint after the call), where such a crash means "
        "that the claim is never unprepared if its pod ends before it is prepared again",
    )
    prepare_again_after_restart: bool = Field(
        True,
        description="treat claims loaded from the checkpoint as not prepared, so a sandbox "
        "created after a kubelet restart or node reboot calls the plugin again; False trusts "
        "the checkpoint (kubelets before 1.29), which after a reboot leaves containers "
        "without their CDI devices (CreateContainerError)",
    )

    def timeout_s(self, modern_rpc: bool) -> float:
        """Return the plugin call deadline for 1.28+ (`modern_rpc`) or 1.27."""
        if self.plugin_timeout_s is not None:
            return self.plugin_timeout_s
        return 45.0 if modern_rpc else 10.0


class Outage(StrictModel):
    """A period during which the kubelet process is down."""

    at_s: float = Field(ge=0, description="simulated time at which the kubelet stops, seconds")
    down_s: float = Field(gt=0, description="time until it runs again, seconds")


class NodeFaults(StrictModel):
    """Faults injected into one node's kubelet."""

    restarts: tuple[Outage, ...] = Field(
        (), description="kubelet process restarts: containers and plugin state survive"
    )
    reboots: tuple[Outage, ...] = Field(
        (),
        description="node reboots: containers and plugin state are lost, the checkpoint survives",
    )
    crash_before_checkpoint_at_s: float | None = Field(
        None,
        ge=0,
        description="the kubelet crashes at the first checkpoint write that follows a successful "
        "prepare call at or after this time, seconds",
    )
    crash_down_s: float = Field(1.0, gt=0, description="downtime after that crash, seconds")


def _check_windows(windows: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    for start, end in windows:
        if not 0 <= start < end:
            raise ValueError(f"fault window ({start}, {end}) must satisfy 0 <= start < end")
    return windows


class NodePluginFaults(StrictModel):
    """Faults injected into one kubelet plugin (one driver on one node)."""

    fail_prepare_windows_s: tuple[tuple[float, float], ...] = Field(
        (), description="[start, end) periods, seconds, in which every prepare call fails"
    )
    fail_unprepare_windows_s: tuple[tuple[float, float], ...] = Field(
        (), description="[start, end) periods, seconds, in which every unprepare call fails"
    )
    max_devices: int | None = Field(
        None,
        ge=0,
        description="devices the plugin can really prepare at once (one per resource handle); "
        "None = no limit. Models hardware that disagrees with the driver's bookkeeping",
    )

    @field_validator("fail_prepare_windows_s", "fail_unprepare_windows_s")
    @classmethod
    def _windows_ordered(
        cls, windows: tuple[tuple[float, float], ...]
    ) -> tuple[tuple[float, float], ...]:
        return _check_windows(windows)


# --------------------------------------------------------------------------------------
# Kubelet plugin (node half of a driver)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimRequest:
    """One claim in a prepare or unprepare call: which claim and which of its resource handles."""

    namespace: str
    claim_uid: str
    claim_name: str
    handle_data: tuple[str, ...]


@dataclass(frozen=True)
class PluginCall:
    """One gRPC call that reached a kubelet plugin, as the plugin saw it."""

    start_s: float
    end_s: float
    method: str
    claim_uids: tuple[str, ...]
    errors: tuple[str, ...]
    """Per-claim error messages, "" for a claim that succeeded."""


class NodePlugin:
    """The kubelet plugin of one driver on one node (the node half of a DRA driver).

    Modelled: NodePrepareResources and NodeUnprepareResources per claim, both
    idempotent (preparing a prepared claim and unpreparing an unknown one
    succeed), a device limit, failure windows, and a state that a node reboot
    wipes. Each resource handle of a claim counts as one device.
    Not modelled: registration with the kubelet (a plugin passed to the
    kubelet is registered from the start), CDI file contents.
    """

    def __init__(
        self,
        world: World,
        node_name: str,
        driver_name: str,
        faults: NodePluginFaults | None = None,
    ) -> None:
        self.world = world
        self.node_name = node_name
        self.driver_name = driver_name
        self.faults = faults or NodePluginFaults()
        self.calls: list[PluginCall] = []
        self._prepared: dict[str, set[str]] = {}

    @property
    def devices_in_use(self) -> int:
        """Number of prepared resource handles (devices) on the node."""
        return sum(len(data) for data in self._prepared.values())

    def prepared_claims(self) -> dict[str, frozenset[str]]:
        """Return the prepared claims: claim UID -> handle data the plugin set up for it."""
        return {uid: frozenset(data) for uid, data in self._prepared.items()}

    def holds(self, claim_uid: str, handle_data: str) -> bool:
        """Return whether the CDI device of this claim handle exists, so containers can use it."""
        return handle_data in self._prepared.get(claim_uid, ())

    def reset(self) -> None:
        """Forget everything prepared (the node rebooted)."""
        self._prepared.clear()

    def prepare(self, method: str, requests: Iterable[ClaimRequest], start_s: float) -> list[str]:
        """Prepare claims; return one error message per request ("" on success)."""
        requests = tuple(requests)
        if _in_window(start_s, self.faults.fail_prepare_windows_s):
            errors = ["injected failure: the plugin rejects prepare calls"] * len(requests)
        else:
            errors = [self._prepare_one(request) for request in requests]
        self._record(method, requests, start_s, errors)
        return errors

    def unprepare(self, method: str, requests: Iterable[ClaimRequest], start_s: float) -> list[str]:
        """Unprepare claims; return one error message per request ("" on success)."""
        requests = tuple(requests)
        if _in_window(start_s, self.faults.fail_unprepare_windows_s):
            errors = ["injected failure: the plugin rejects unprepare calls"] * len(requests)
        else:
            errors = []
            for request in requests:
                prepared = self._prepared.get(request.claim_uid, set())
                prepared.difference_update(request.handle_data)
                if not prepared:
                    self._prepared.pop(request.claim_uid, None)
                errors.append("")
        self._record(method, requests, start_s, errors)
        return errors

    def _prepare_one(self, request: ClaimRequest) -> str:
        prepared = self._prepared.get(request.claim_uid, set())
        missing = [data for data in request.handle_data if data not in prepared]
        limit = self.faults.max_devices
        if limit is not None and self.devices_in_use + len(missing) > limit:
            return (
                f"insufficient resources: {len(missing)} more device(s) requested for claim "
                f"{request.namespace}/{request.claim_name}, {self.devices_in_use} of {limit} in use"
            )
        prepared.update(missing)
        self._prepared[request.claim_uid] = prepared
        return ""

    def _record(
        self, method: str, requests: tuple[ClaimRequest, ...], start_s: float, errors: list[str]
    ) -> None:
        self.calls.append(
            PluginCall(
                start_s,
                self.world.now,
                method,
                tuple(request.claim_uid for request in requests),
                tuple(errors),
            )
        )


def _in_window(time_s: float, windows: tuple[tuple[float, float], ...]) -> bool:
    return any(start <= time_s < end for start, end in windows)


# --------------------------------------------------------------------------------------
# DRA manager state: the prepared-claim cache and its checkpoint
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimHandle:
    """One resource handle of an allocated claim: the driver that serves it and its data."""

    driver_name: str
    data: str


@dataclass(frozen=True)
class CheckpointEntry:
    """A claim as the kubelet's checkpoint file stores it."""

    claim_uid: str
    namespace: str
    claim_name: str
    handles: tuple[ClaimHandle, ...]
    pod_uids: frozenset[str]
    prepared: bool


@dataclass
class ClaimInfo:
    """A claim in the DRA manager's in-memory cache, shared by the local pods that use it."""

    claim_uid: str
    namespace: str
    claim_name: str
    handles: tuple[ClaimHandle, ...]
    pod_uids: set[str] = field(default_factory=set)
    prepared: bool = False
    """Whether a plugin call of this kubelet process prepared the claim."""

    @classmethod
    def from_claim(cls, claim: ResourceClaim) -> ClaimInfo:
        """Build a cache entry from the claim's allocation (one empty handle when it has none)."""
        driver = claim.status.driver_name
        allocation = claim.status.allocation
        handles = tuple(
            ClaimHandle(handle.driver_name or driver, handle.data)
            for handle in (allocation.resource_handles if allocation is not None else ())
        )
        return cls(
            claim.metadata.uid,
            claim.metadata.namespace,
            claim.metadata.name,
            handles or (ClaimHandle(driver, ""),),
        )

    @classmethod
    def from_checkpoint(cls, entry: CheckpointEntry, *, trust_prepared: bool) -> ClaimInfo:
        """Load a cache entry from the checkpoint after a restart."""
        return cls(
            entry.claim_uid,
            entry.namespace,
            entry.claim_name,
            entry.handles,
            set(entry.pod_uids),
            entry.prepared and trust_prepared,
        )

    def to_checkpoint(self) -> CheckpointEntry:
        """Return the entry as the checkpoint stores it."""
        return CheckpointEntry(
            self.claim_uid,
            self.namespace,
            self.claim_name,
            self.handles,
            frozenset(self.pod_uids),
            self.prepared,
        )

    def requests_by_driver(self) -> dict[str, ClaimRequest]:
        """Group the handles by driver into one request per driver."""
        data: dict[str, list[str]] = {}
        for handle in self.handles:
            data.setdefault(handle.driver_name, []).append(handle.data)
        return {
            driver: ClaimRequest(self.namespace, self.claim_uid, self.claim_name, tuple(values))
            for driver, values in data.items()
        }


_Batch = list[tuple[ClaimInfo, ClaimRequest]]
"""Claims sent to one plugin, each with the request that carries its handles."""


# --------------------------------------------------------------------------------------
# Pod states seen by the kubelet
# --------------------------------------------------------------------------------------


class PodState(StrEnum):
    """The state of a pod on its node, as the kubelet's trace records it.

    `ContainerCreating` and `Terminating` are the states `kubectl get pods`
    shows. The API phase is Pending in the first and unchanged in the second.
    """

    PENDING = "Pending"
    CONTAINER_CREATING = "ContainerCreating"
    RUNNING = "Running"
    TERMINATING = "Terminating"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    DELETED = "Deleted"


_TRANSITIONS: dict[PodState, frozenset[PodState]] = {
    # Pending -> Deleted: a pod that was already terminal when this kubelet first saw it.
    PodState.PENDING: frozenset(
        {PodState.CONTAINER_CREATING, PodState.TERMINATING, PodState.DELETED}
    ),
    # ContainerCreating -> ContainerCreating is a failed attempt (prepare or container creation).
    PodState.CONTAINER_CREATING: frozenset(
        {PodState.CONTAINER_CREATING, PodState.RUNNING, PodState.TERMINATING}
    ),
    # Running -> ContainerCreating: the sandbox is recreated after a node reboot.
    PodState.RUNNING: frozenset({PodState.CONTAINER_CREATING, PodState.TERMINATING}),
    # Terminating -> Terminating is a failed unprepare.
    PodState.TERMINATING: frozenset(
        {PodState.TERMINATING, PodState.SUCCEEDED, PodState.FAILED, PodState.DELETED}
    ),
    PodState.SUCCEEDED: frozenset({PodState.DELETED}),
    PodState.FAILED: frozenset({PodState.DELETED}),
    PodState.DELETED: frozenset(),
}


@dataclass
class _Sandbox:
    """A pod sandbox in the container runtime: survives kubelet restarts, not node reboots."""

    started_at_s: float
    exit_at_s: float | None
    """When the containers exit on their own; None = they run until the pod is deleted."""


@dataclass
class _PodWorker:
    """The kubelet's per-pod worker (one SimPy process per pod, like the real pod workers)."""

    uid: str
    pod: Pod
    state: PodState
    wakeup: simpy.Event
    process: simpy.Process | None = None
    stop_requested: bool = False
    """The pod got a deletionTimestamp or was removed from the API server."""
    removed: bool = False
    """The pod object is gone from the API server."""
    terminal_phase: str = ""
    """Phase this kubelet already reported (the worker then only completes the deletion)."""


class _KubeletCrashed(Exception):
    """Unwinds the pod worker that triggered a kubelet crash."""


# --------------------------------------------------------------------------------------
# The kubelet
# --------------------------------------------------------------------------------------


class Kubelet:
    """The kubelet of one node: its DRA manager (pkg/kubelet/cm/dra) and its pod workers.

    Modelled:

    * Pods bound to the node start through prepare -> sandbox -> containers.
      Prepare runs before the sandbox is created and only when a sandbox is
      needed (first start, or recreation after a node reboot).
    * Prepare, for each pod claim: resolve the claim name, GET the claim live
      from the API server, and check the owner of a generated claim and that
      `reservedFor` lists the pod. 1.28+ skips claims that no container uses.
      Then the kubelet sends one batched NodePrepareResources call per plugin
      (1.28+), or one NodePrepareResource call per claim and resource handle
      (1.27, where a claim already cached for another pod is reused without
      the GET).
    * A per-node cache of claims shared by the local pods that use them (pod
      UID sets), saved to a checkpoint that survives kubelet restarts and node
      reboots. See `KubeletConfig.checkpoint_before_prepare` and
      `KubeletConfig.prepare_again_after_restart` for the two known checkpoint
      faults, both fixed by default.
    * A failed prepare records FailedPrepareDynamicResources and is retried at
      the next resync, 60-90 s later, or at once when the pod's spec or
      metadata changes. The pod stays ContainerCreating; nothing gives up.
    * The containers exit after the time in the `sim.dra/run-duration-s`
      annotation (restartPolicy Never or OnFailure), or when the pod is
      deleted. The kubelet then unprepares every claim whose last local user
      the pod was, and reports the terminal phase afterwards: Succeeded, or
      Failed for a deleted pod. A failed unprepare is retried after 10-15 s,
      and the pod keeps its phase meanwhile.
    * A pod that carries a deletionTimestamp is removed by the kubelet's own
      DELETE after unprepare, as the status manager does once the pod can no
      longer have running containers. A pod removed at once (force delete) is
      still stopped and unprepared.
    * Kubelet restarts and node reboots (`restart`, `reboot`, `NodeFaults`).
      After a restart, claims in the checkpoint whose pods are gone are
      unprepared.

    NOTE: the API server removes a pod without finalizers at once, because it
    does not model graceful deletion. Every plain DELETE therefore acts as a
    force delete here: the pod object is gone before unprepare ends, and the
    resourceclaim controller may release the claims meanwhile.

    Simplified: while the kubelet is down its informer keeps its cache, and the
    restart rebuilds the workers from that cache as a fresh list would. The
    status manager's GET + strategic-merge PATCH is a GET + status update,
    retried on 409. Only phase and startTime are written; the kubelet writes
    them once each, when the containers start and when the pod ends.
    Pods with restartPolicy Always ignore the run-duration annotation: their
    containers would be restarted, which the API does not show.
    The trace records every failed prepare, although 1.27 kubelets recorded
    no Kubernetes Event for it; Events are not written to the API server.

    Not modelled: admission, CPU/memory, image pulls, probes, node status,
    container restarts and exit codes, the node lifecycle controller.
    """

    def __init__(
        self,
        world: World,
        node_name: str,
        config: KubeletConfig | None = None,
        *,
        plugins: Iterable[NodePlugin] = (),
        faults: NodeFaults | None = None,
    ) -> None:
        self.world = world
        self.env = world.env
        self.node_name = node_name
        self.config = config or KubeletConfig()
        self.faults = faults or NodeFaults()
        self.component = f"kubelet/{node_name}"
        self.plugins: dict[str, NodePlugin] = {}
        for plugin in plugins:
            self.register_plugin(plugin)
        self.client = APIClient(world, self.component, qps=self.config.qps, burst=self.config.burst)
        # A kubelet lists and watches only its own node's pods, by field selector.
        self.pods = Informer(
            world, "Pod", self.component, field_selector=f"spec.nodeName={node_name}"
        )
        self.pods.add_handler(self._on_pod_add, self._on_pod_update, self._on_pod_delete)
        self._latency_rng = world.streams.stream(f"{self.component}/plugin-latency")
        self._retry_rng = world.streams.stream(f"{self.component}/retry-jitter")
        self._sandbox_rng = world.streams.stream(f"{self.component}/sandbox-start")
        # Node state that outlives the kubelet process.
        self.checkpoint: dict[str, CheckpointEntry] = {}
        self._sandboxes: dict[str, _Sandbox] = {}
        # Kubelet process memory, lost on a crash.
        self._up = False
        self._cache: dict[str, ClaimInfo] = {}
        self._workers: dict[str, _PodWorker] = {}
        self._finished: dict[str, str] = {}
        self._background: set[simpy.Process] = set()
        # Trace bookkeeping (not kubelet state).
        self._recorded_state: dict[str, PodState] = {}
        self._crash_hook_fired = False

    # -- setup -------------------------------------------------------------------------

    def register_plugin(self, plugin: NodePlugin) -> None:
        """Register the kubelet plugin of a driver on this node."""
        if plugin.node_name != self.node_name:
            raise ValueError(
                f"plugin of {plugin.driver_name} belongs to node {plugin.node_name}, "
                f"not to {self.node_name}"
            )
        self.plugins[plugin.driver_name] = plugin

    def start(self) -> None:
        """Start the pod informer and the kubelet process, and arm the configured faults."""
        for outage in self.faults.restarts:
            self.restart(outage.at_s, outage.down_s)
        for outage in self.faults.reboots:
            self.reboot(outage.at_s, outage.down_s)
        self._up = True
        self.pods.start()
        self._clean_up_orphans()

    def restart(self, at_s: float, down_s: float) -> None:
        """Restart the kubelet process at `at_s`: containers, plugins and checkpoint survive."""
        self._schedule_outage(at_s, down_s, reboot=False)

    def reboot(self, at_s: float, down_s: float) -> None:
        """Reboot the node at `at_s`: containers and plugin state are lost, the checkpoint stays."""
        self._schedule_outage(at_s, down_s, reboot=True)

    @property
    def running(self) -> bool:
        """Whether the kubelet process is up."""
        return self._up

    def cached_claims(self) -> dict[str, ClaimInfo]:
        """Return the DRA manager's in-memory cache (claim UID -> entry), for inspection."""
        return dict(self._cache)

    def pod_state(self, pod_uid: str) -> PodState | None:
        """Return the last state recorded for a pod on this node, or None if never seen."""
        return self._recorded_state.get(pod_uid)

    # -- informer handlers: they only start or wake pod workers ---------------------------

    def _on_pod_add(self, pod: Pod) -> None:
        self._observe(pod, None)

    def _on_pod_update(self, old: Pod, new: Pod) -> None:
        if old.metadata.uid != new.metadata.uid:
            # Same name, new object: the old incarnation is gone.
            self._on_pod_delete(old)
            self._observe(new, None)
            return
        self._observe(new, old)

    def _on_pod_delete(self, pod: Pod) -> None:
        if not self._up or pod.spec.node_name != self.node_name:
            return
        uid = pod.metadata.uid
        worker = self._workers.get(uid)
        if worker is None:
            self._finished.pop(uid, None)
            return
        _mark_removed(worker)
        _wake(worker)

    def _observe(self, pod: Pod, old: Pod | None) -> None:
        if not self._up or pod.spec.node_name != self.node_name:
            return
        uid = pod.metadata.uid
        worker = self._workers.get(uid)
        if worker is not None:
            worker.pod = pod
            if pod.deleting and not worker.stop_requested:
                worker.stop_requested = True
                _wake(worker)
            elif old is None or _spec_or_metadata_changed(old, pod):
                # The config source sends status-only changes as reconciles, which do not sync.
                _wake(worker)
            return
        reported = self._finished.get(uid, "")
        if reported or pod.done:
            # A finished pod needs the kubelet again only to complete its deletion.
            if pod.deleting:
                self._start_worker(pod, terminal_phase=reported or pod.status.phase)
            return
        self._start_worker(pod)

    def _start_worker(self, pod: Pod, terminal_phase: str = "") -> None:
        uid = pod.metadata.uid
        state = self._recorded_state.get(uid, PodState.PENDING)
        worker = _PodWorker(uid, pod, state, self.env.event(), terminal_phase=terminal_phase)
        worker.stop_requested = pod.deleting
        self._workers[uid] = worker
        worker.process = self.env.process(self._pod_worker(worker))

    # -- pod worker --------------------------------------------------------------------

    def _pod_worker(self, worker: _PodWorker) -> Process:
        """Run one pod from its first sync to its removal (or until the kubelet stops)."""
        try:
            if worker.terminal_phase:
                yield from self._complete_deletion(worker)
                return
            phase = yield from self._run_pod(worker)
            yield from self._terminate(worker, phase)
        except (simpy.Interrupt, _KubeletCrashed):
            logger.debug(
                "%s: pod worker of %s stopped with the kubelet", self.component, worker.uid
            )
        finally:
            if self._workers.get(worker.uid) is worker:
                del self._workers[worker.uid]

    def _run_pod(self, worker: _PodWorker) -> Generator[simpy.Event, Any, str]:
        """Start the pod's containers and keep them running; return the phase to report."""
        while not worker.stop_requested:
            sandbox = self._sandboxes.get(worker.uid)
            if sandbox is None:
                if worker.state is PodState.RUNNING:
                    if worker.pod.spec.restart_policy == "Never":
                        # The containers died with the node and may not be restarted.
                        return PodPhase.FAILED
                    self._transition(worker, PodState.CONTAINER_CREATING, "SandboxChanged")
                elif worker.state is PodState.PENDING:
                    self._transition(worker, PodState.CONTAINER_CREATING, "SyncPod")
                retry_after_s = yield from self._start_pod(worker)
                if retry_after_s is not None:
                    yield from self._sleep(worker, retry_after_s)
                continue

            if sandbox.exit_at_s is not None and sandbox.exit_at_s <= self.env.now:
                return PodPhase.SUCCEEDED
            remaining = None if sandbox.exit_at_s is None else sandbox.exit_at_s - self.env.now
            yield from self._sleep(worker, remaining)
        return PodPhase.FAILED

    def _start_pod(self, worker: _PodWorker) -> Generator[simpy.Event, Any, float | None]:
        """Prepare the claims, create the sandbox, start the containers.

        Returns None when the containers run, else the delay before the next attempt.
        """
        error = yield from self._prepare_resources(worker)
        if worker.stop_requested:
            return None
        if error:
            logger.warning(
                "%s: FailedPrepareDynamicResources for pod %s: %s",
                self.component,
                worker.pod.key,
                error,
            )
            self._transition(worker, PodState.CONTAINER_CREATING, "FailedPrepareDynamicResources")
            return self._resync_delay()

        error = self._missing_cdi_device(worker)
        if error:
            logger.warning(
                "%s: CreateContainerError for pod %s: %s", self.component, worker.pod.key, error
            )
            self._transition(worker, PodState.CONTAINER_CREATING, "CreateContainerError")
            return self._error_delay()

        start_delay = self.config.sandbox_start_s.sample(self._sandbox_rng)
        if start_delay > 0:
            yield self.env.timeout(start_delay)
        self._sandboxes[worker.uid] = _Sandbox(self.env.now, self._exit_time(worker.pod))

        if worker.pod.status.phase != PodPhase.RUNNING:
            written = yield from self._write_status(worker, PodPhase.RUNNING)
            if not written:
                return None
        self._transition(worker, PodState.RUNNING, "Started")
        return None

    def _terminate(self, worker: _PodWorker, phase: str) -> Process:
        """Stop the containers, unprepare, report the phase, complete a deletion."""
        reason = "Killing" if worker.stop_requested else "Completed"
        self._transition(worker, PodState.TERMINATING, reason)
        self._sandboxes.pop(worker.uid, None)
        yield from self._unprepare_until_done(worker)

        if worker.removed:
            self._transition(worker, PodState.DELETED, "PodRemoved")
            return
        written = yield from self._write_status(worker, phase)
        if not written:
            self._transition(worker, PodState.DELETED, "PodRemoved")
            return
        self._transition(worker, PodState(phase), "PodCompleted")
        self._finished[worker.uid] = phase
        if worker.stop_requested:
            yield from self._delete_pod(worker)

    def _complete_deletion(self, worker: _PodWorker) -> Process:
        """Unprepare what a finished pod may still hold, then remove the deleted pod."""
        if worker.state in (PodState.CONTAINER_CREATING, PodState.RUNNING):
            # Another writer ended the pod while this kubelet was starting or running it.
            self._transition(worker, PodState.TERMINATING, "Killing")
            self._sandboxes.pop(worker.uid, None)
        yield from self._unprepare_until_done(worker)
        if not worker.removed:
            yield from self._delete_pod(worker)

    def _unprepare_until_done(self, worker: _PodWorker) -> Process:
        while True:
            error = yield from self._unprepare_pod(worker.uid)
            if not error:
                return
            logger.warning(
                "%s: FailedUnprepareDynamicResources for pod %s: %s; retrying",
                self.component,
                worker.pod.key,
                error,
            )
            if worker.state is PodState.TERMINATING:
                self._transition(worker, PodState.TERMINATING, "FailedUnprepareDynamicResources")
            yield self.env.timeout(self._error_delay())

    def _sleep(self, worker: _PodWorker, delay_s: float | None) -> Process:
        """Wait `delay_s` seconds (forever if None) or until the worker is woken."""
        events: list[simpy.Event] = [worker.wakeup]
        if delay_s is not None:
            events.append(self.env.timeout(delay_s))
        yield self.env.any_of(events)
        if worker.wakeup.triggered:
            worker.wakeup = self.env.event()

    # -- API writes ----------------------------------------------------------------------

    def _write_status(self, worker: _PodWorker, phase: str) -> Generator[simpy.Event, Any, bool]:
        """Write the pod phase (and startTime on first start); False if the pod is gone."""
        pod = worker.pod
        while True:
            try:
                live = yield from self.client.get(
                    "Pod", pod.metadata.name, pod.metadata.namespace, reason="status update"
                )
            except NotFound:
                _mark_removed(worker)
                return False
            if live.metadata.uid != worker.uid:
                _mark_removed(worker)
                return False
            changes: dict[str, Any] = {"phase": phase}
            if live.status.start_time is None:
                changes["start_time"] = format_timestamp(self.env.now)
            try:
                worker.pod = yield from self.client.update_status(
                    live.with_status(**changes), reason=f"pod {phase.lower()}"
                )
                return True
            except Conflict:
                logger.debug(
                    "%s: 409 Conflict on the status of pod %s; retrying", self.component, pod.key
                )
                continue
            except NotFound:
                _mark_removed(worker)
                return False

    def _delete_pod(self, worker: _PodWorker) -> Process:
        """Send the final DELETE of a terminated pod that carries a deletionTimestamp."""
        pod = worker.pod
        try:
            remaining = yield from self.client.delete(
                "Pod",
                pod.metadata.name,
                pod.metadata.namespace,
                uid_precondition=worker.uid,
                reason="pod terminated",
            )
        except (NotFound, Conflict):
            # Already removed, or the name now belongs to a new pod.
            remaining = None
        self._finished.pop(worker.uid, None)
        if remaining is not None:
            logger.debug("%s: pod %s is kept by finalizers", self.component, pod.key)
            return
        worker.removed = True
        self._transition(worker, PodState.DELETED, "Deleted")

    # -- DRA manager: prepare --------------------------------------------------------------

    def _prepare_resources(self, worker: _PodWorker) -> Generator[simpy.Event, Any, str]:
        """Prepare every claim the pod needs on this node; return "" or the error message."""
        pod = worker.pod
        modern = self.world.version_at_least(28)
        if not modern and not any(
            pod_uses_claim_in_containers(pod, pod_claim.name)
            for pod_claim in pod.spec.resource_claims
        ):
            # 1.27 prepares all claims as soon as one container uses one, else none.
            return ""

        to_prepare: list[ClaimInfo] = []
        for pod_claim in pod.spec.resource_claims:
            try:
                resolved = resolve_claim_name(pod, pod_claim, legacy_names=not modern)
            except ClaimNameError as error:
                return str(error)
            if resolved is None:
                continue
            namespace = pod.metadata.namespace

            if not modern:
                cached = self._cached_by_name(namespace, resolved.claim_name)
                if cached is not None and cached.prepared:
                    cached.pod_uids.add(worker.uid)
                    continue

            try:
                claim: ResourceClaim = yield from self.client.get(
                    "ResourceClaim", resolved.claim_name, namespace, reason="prepare resources"
                )
            except NotFound as error:
                return (
                    f"failed to fetch ResourceClaim {resolved.claim_name} referenced by pod "
                    f"{pod.key}: {error.message}"
                )
            if not check_owner(pod, claim, resolved):
                return f"ResourceClaim {claim.key} was not created for pod {pod.key}"
            if not claim.reserved_for_uid(worker.uid):
                return (
                    f"pod {pod.key} ({worker.uid}) is not allowed to use resource claim "
                    f"{claim.metadata.name} ({claim.metadata.uid})"
                )
            if modern and not pod_uses_claim_in_containers(pod, pod_claim.name):
                continue

            info = self._cache.get(claim.metadata.uid)
            if info is None:
                info = ClaimInfo.from_claim(claim)
                self._cache[info.claim_uid] = info
            info.pod_uids.add(worker.uid)
            if not info.prepared and all(other is not info for other in to_prepare):
                to_prepare.append(info)

        if self.config.checkpoint_before_prepare or not to_prepare:
            self._write_checkpoint()
        if not to_prepare:
            return ""

        failure = yield from self._call_prepare(to_prepare, modern)
        if failure:
            return failure
        self._checkpoint_after_prepare(worker)
        return ""

    def _call_prepare(
        self, claims: list[ClaimInfo], modern: bool
    ) -> Generator[simpy.Event, Any, str]:
        """Send the prepare calls: one per plugin (1.28+) or per claim and handle (1.27)."""
        batches = _batch_by_driver(claims)
        calls_by_driver = {
            driver: _prepare_calls(batch, modern) for driver, batch in batches.items()
        }
        # A claim is prepared once every call that carries one of its handles succeeded.
        outstanding: dict[str, int] = {}
        for calls in calls_by_driver.values():
            for _method, batch in calls:
                for info, _request in batch:
                    outstanding[info.claim_uid] = outstanding.get(info.claim_uid, 0) + 1

        for driver in sorted(calls_by_driver):
            plugin = self.plugins.get(driver)
            if plugin is None:
                return _plugin_not_found(driver)
            for method, batch in calls_by_driver[driver]:
                requests = [request for _info, request in batch]
                errors = yield from self._call_plugin(
                    plugin.prepare, method, requests, self.config.prepare_latency_s, modern
                )
                if isinstance(errors, str):
                    return f"{method} to {driver} failed: {errors}"
                # The first failing claim ends the attempt; claims before it stay prepared.
                for (info, request), error in zip(batch, errors, strict=True):
                    if error:
                        return (
                            f"{method} failed for claim {request.namespace}/"
                            f"{request.claim_name}: {error}"
                        )
                    outstanding[info.claim_uid] -= 1
                    if outstanding[info.claim_uid] == 0:
                        info.prepared = True
        return ""

    def _checkpoint_after_prepare(self, worker: _PodWorker) -> None:
        crash_at = self.faults.crash_before_checkpoint_at_s
        if crash_at is not None and not self._crash_hook_fired and self.env.now >= crash_at:
            self._crash_hook_fired = True
            logger.warning(
                "%s: injected crash after a successful prepare for pod %s, before the checkpoint",
                self.component,
                worker.pod.key,
            )
            self._stop(reboot=False)
            self._schedule_start(self.faults.crash_down_s)
            raise _KubeletCrashed
        self._write_checkpoint()

    def _missing_cdi_device(self, worker: _PodWorker) -> str:
        """Return why a container cannot get its CDI devices, or "" when all exist."""
        for info in self._cache.values():
            if worker.uid not in info.pod_uids:
                continue
            for handle in info.handles:
                plugin = self.plugins.get(handle.driver_name)
                if plugin is None or not plugin.holds(info.claim_uid, handle.data):
                    return (
                        f"CDI device of claim {info.namespace}/{info.claim_name} "
                        f"(driver {handle.driver_name}) not found on the node"
                    )
        return ""

    # -- DRA manager: unprepare ------------------------------------------------------------

    def _unprepare_pod(self, pod_uid: str) -> Generator[simpy.Event, Any, str]:
        """Unprepare the claims whose last local user is this pod; return "" or the error."""
        to_release: list[ClaimInfo] = []
        for info in sorted(self._cache.values(), key=lambda entry: entry.claim_uid):
            if pod_uid not in info.pod_uids:
                continue
            if len(info.pod_uids) > 1:
                info.pod_uids.discard(pod_uid)
                continue
            to_release.append(info)
        if not to_release:
            self._write_checkpoint()
            return ""
        error = yield from self._release(to_release)
        return error

    def _release(self, claims: list[ClaimInfo]) -> Generator[simpy.Event, Any, str]:
        """Send the unprepare calls for claims no local pod uses and drop them from the cache."""
        modern = self.world.version_at_least(28)
        batches = _batch_by_driver(claims)
        for driver in sorted(batches):
            plugin = self.plugins.get(driver)
            if plugin is None:
                return _plugin_not_found(driver)
            requests = [request for _info, request in batches[driver]]
            for method, call_requests in _unprepare_calls(requests, modern):
                errors = yield from self._call_plugin(
                    plugin.unprepare,
                    method,
                    call_requests,
                    self.config.unprepare_latency_s,
                    modern,
                )
                if isinstance(errors, str):
                    return f"{method} to {driver} failed: {errors}"
                for request, error in zip(call_requests, errors, strict=True):
                    if error:
                        return (
                            f"{method} failed for claim {request.namespace}/"
                            f"{request.claim_name}: {error}"
                        )
        for info in claims:
            self._cache.pop(info.claim_uid, None)
        self._write_checkpoint()
        return ""

    def _clean_up_orphans(self) -> None:
        """Stop sandboxes and unprepare claims of pods that are gone or have ended.

        After a restart, the kubelet finds pods that were deleted while it was down
        only in the container runtime and in its checkpoint.

        NOTE: whether 1.27-1.29 kubelets unprepared the claims of such pods is not
        verified. This cleanup gives the outcome that the checkpoint is meant to ensure.
        """
        known = {
            pod.metadata.uid
            for pod in self.pods.list()
            if pod.spec.node_name == self.node_name and not pod.done
        }
        for uid in [uid for uid in self._sandboxes if uid not in known]:
            del self._sandboxes[uid]
        orphans: list[ClaimInfo] = []
        for info in self._cache.values():
            info.pod_uids &= known
            if not info.pod_uids:
                orphans.append(info)
        if orphans:
            logger.info(
                "%s: unpreparing %d claim(s) whose pods are gone", self.component, len(orphans)
            )
            self._spawn(self._release_until_done(orphans))

    def _release_until_done(self, claims: list[ClaimInfo]) -> Process:
        while True:
            error = yield from self._release(claims)
            if not error:
                return
            logger.warning("%s: unprepare of orphaned claims failed: %s", self.component, error)
            yield self.env.timeout(self._error_delay())

    # -- plugin calls ----------------------------------------------------------------------

    def _call_plugin(
        self,
        operation: Callable[[str, list[ClaimRequest], float], list[str]],
        method: str,
        requests: list[ClaimRequest],
        latency: Dist,
        modern: bool,
    ) -> Generator[simpy.Event, Any, list[str] | str]:
        """Call a plugin with the gRPC deadline; return per-claim errors or a call error.

        The plugin finishes its work after the drawn latency even when the
        kubelet gave up earlier (deadline) or crashed meanwhile.
        """
        start = self.env.now
        results: list[list[str]] = []
        done = self.env.timeout(latency.sample(self._latency_rng))
        done.callbacks.append(lambda _event: results.append(operation(method, requests, start)))
        timeout_s = self.config.timeout_s(modern)
        yield self.env.any_of([done, self.env.timeout(timeout_s)])
        if not results:
            return f"rpc error: code = DeadlineExceeded after {timeout_s:g} s"
        return results[0]

    # -- checkpoint, restarts, reboots -----------------------------------------------------

    def _write_checkpoint(self) -> None:
        self.checkpoint = {uid: info.to_checkpoint() for uid, info in self._cache.items()}

    def _schedule_outage(self, at_s: float, down_s: float, *, reboot: bool) -> None:
        if at_s < self.env.now:
            raise ValueError(f"outage at t={at_s} s is in the past (now t={self.env.now} s)")

        def stop(_event: simpy.Event) -> None:
            if not self._up:
                logger.info("%s: already down at t=%.3f s", self.component, self.env.now)
                return
            self._stop(reboot=reboot)
            self._schedule_start(down_s)

        self.env.timeout(at_s - self.env.now).callbacks.append(stop)

    def _stop(self, *, reboot: bool) -> None:
        """Stop the kubelet process; a reboot also loses the containers and plugin state."""
        logger.info(
            "%s: %s at t=%.3f s",
            self.component,
            "node reboots" if reboot else "kubelet stops",
            self.env.now,
        )
        self._up = False
        active = self.env.active_process
        processes = [worker.process for worker in self._workers.values()]
        processes.extend(self._background)
        for process in processes:
            if process is not None and process.is_alive and process is not active:
                process.interrupt("kubelet stopped")
        self._workers.clear()
        self._background.clear()
        self._cache.clear()
        self._finished.clear()
        if reboot:
            self._sandboxes.clear()
            for plugin in self.plugins.values():
                plugin.reset()

    def _schedule_start(self, delay_s: float) -> None:
        self.env.timeout(delay_s).callbacks.append(lambda _event: self._resume())

    def _resume(self) -> None:
        """Start the kubelet process again from the checkpoint and the pod list."""
        logger.info("%s: kubelet starts at t=%.3f s", self.component, self.env.now)
        self._up = True
        trust = not self.config.prepare_again_after_restart
        self._cache = {
            uid: ClaimInfo.from_checkpoint(entry, trust_prepared=trust)
            for uid, entry in self.checkpoint.items()
        }
        for pod in self.pods.list():
            self._observe(pod, None)
        self._clean_up_orphans()

    def _spawn(self, generator: Process) -> None:
        process = self.env.process(self._background_task(generator))
        self._background.add(process)

    def _background_task(self, generator: Process) -> Process:
        try:
            yield from generator
        except simpy.Interrupt:
            return
        finally:
            self._background.discard(self.env.active_process)

    # -- helpers ---------------------------------------------------------------------------

    def _cached_by_name(self, namespace: str, name: str) -> ClaimInfo | None:
        for info in self._cache.values():
            if info.namespace == namespace and info.claim_name == name:
                return info
        return None

    def _exit_time(self, pod: Pod) -> float | None:
        if pod.spec.restart_policy not in ("Never", "OnFailure"):
            # restartPolicy Always (the API default): containers are restarted, the pod runs on.
            return None
        text = pod.metadata.annotations.get(RUN_DURATION_ANNOTATION)
        if text is None:
            return None
        try:
            duration = float(text)
        except ValueError:
            logger.warning(
                "%s: pod %s: annotation %s=%r is not a number of seconds; the pod runs until "
                "deleted",
                self.component,
                pod.key,
                RUN_DURATION_ANNOTATION,
                text,
            )
            return None
        return self.env.now + max(duration, 0.0)

    def _resync_delay(self) -> float:
        jitter = self._retry_rng.uniform(0, self.config.sync_jitter)
        return self.config.sync_frequency_s * (1 + float(jitter))

    def _error_delay(self) -> float:
        jitter = self._retry_rng.uniform(0, self.config.error_backoff_jitter)
        return self.config.error_backoff_s * (1 + float(jitter))

    def _transition(self, worker: _PodWorker, to: PodState, reason: str) -> None:
        """Record a state change of the pod in the trace; illegal changes are invariant errors."""
        pod = worker.pod
        if to not in _TRANSITIONS[worker.state]:
            raise SimulationInvariantError(
                "kubelet-pod-transition",
                f"Pod {pod.key}",
                self.env.now,
                f"{worker.state} -> {to} ({reason}) is not a kubelet transition",
            )
        self.world.recorder.event(
            self.env.now,
            "Pod",
            pod.metadata.namespace,
            pod.metadata.name,
            worker.uid,
            str(worker.state),
            str(to),
            self.component,
            reason,
        )
        logger.debug("%s: pod %s %s -> %s (%s)", self.component, pod.key, worker.state, to, reason)
        worker.state = to
        self._recorded_state[worker.uid] = to


def _mark_removed(worker: _PodWorker) -> None:
    worker.removed = True
    worker.stop_requested = True


def _wake(worker: _PodWorker) -> None:
    if not worker.wakeup.triggered:
        worker.wakeup.succeed()


def _spec_or_metadata_changed(old: Pod, new: Pod) -> bool:
    return (
        old.spec != new.spec
        or old.metadata.labels != new.metadata.labels
        or old.metadata.annotations != new.metadata.annotations
        or old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
    )


def _batch_by_driver(claims: Iterable[ClaimInfo]) -> dict[str, _Batch]:
    batches: dict[str, _Batch] = {}
    for info in claims:
        for driver, request in info.requests_by_driver().items():
            batches.setdefault(driver, []).append((info, request))
    return batches


def _single_handle(request: ClaimRequest, data: str) -> ClaimRequest:
    return ClaimRequest(request.namespace, request.claim_uid, request.claim_name, (data,))


def _prepare_calls(batch: _Batch, modern: bool) -> list[tuple[str, _Batch]]:
    """Split one driver's claims into plugin calls: one batch (1.28+) or one per handle (1.27)."""
    if modern:
        return [("NodePrepareResources", batch)]
    return [
        ("NodePrepareResource", [(info, _single_handle(request, data))])
        for info, request in batch
        for data in request.handle_data
    ]


def _unprepare_calls(
    requests: list[ClaimRequest], modern: bool
) -> list[tuple[str, list[ClaimRequest]]]:
    """Split one driver's claims into unprepare calls, as `_prepare_calls` does."""
    if modern:
        return [("NodeUnprepareResources", requests)]
    return [
        ("NodeUnprepareResource", [_single_handle(request, data)])
        for request in requests
        for data in request.handle_data
    ]


def _plugin_not_found(driver: str) -> str:
    return (
        f"failed to get DRA plugin {driver}: plugin name {driver} not found in the list of "
        "registered DRA plugins"
    )
