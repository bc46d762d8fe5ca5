"""The control-plane half of a DRA resource driver, and the interface of driver models.

In classic DRA (`resource.k8s.io/v1alpha2`) a resource driver has two halves:
a kubelet plugin on every node and a controller in the control plane. Every
known driver of the 1.27-1.29 era built its controller on the helper library
`k8s.io/dynamic-resource-allocation/controller`. The library runs the whole
protocol with the API server. It calls driver-specific code for three
decisions only: which nodes cannot serve a pod's claims (`UnsuitableNodes`),
allocating claims (`Allocate`) and freeing them (`Deallocate`).

`DriverController` reproduces that library loop write by write. The
driver-specific part is a `DriverModel` (see `sim.drivers` for the built-in
ones, looked up by name), so that a scenario can swap allocation policies,
latencies and failure behaviour without touching the protocol.

Module contents:

* `DriverController`: the library loop (informers, mutation cache, work queue,
  workers, syncClaim, syncPodSchedulingContext).
* `DriverConfig`: its scenario settings.
* `DriverModel`, `ClaimAllocation`, `DriverError`, `ModelContext`, `NodeView`,
  `DeviceUse`: the interface between the loop and a model, plus helpers that
  models share. `SharedDeviceModel` is the optional part for models whose
  claims can hold a share of a device.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

import numpy as np
import simpy
from pydantic import BeforeValidator, Field, model_validator

from sim.api.errors import APIError, NotFound
from sim.api.server import APIServer
from sim.api.types import (
    AllocationMode,
    AllocationResult,
    GenericObject,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    Pod,
    PodResourceClaim,
    PodSchedulingContext,
    ResourceClaim,
    ResourceClaimConsumerReference,
    ResourceClaimSchedulingStatus,
    ResourceClass,
    ResourceHandle,
    TopLevelObject,
    controller_owner,
    is_controlled_by,
)
from sim.api.validation.resource import POD_SCHEDULING_NODE_LIST_MAX_SIZE
from sim.cluster.claims import ClaimNameError, check_owner, resolve_claim_name
from sim.cluster.client import APIClient, Informer
from sim.cluster.config import Dist, StrictModel
from sim.cluster.workqueue import WorkQueue
from sim.cluster.world import World
from sim.distributions import Constant

logger = logging.getLogger(__name__)

T = TypeVar("T")
Process = Generator[simpy.Event, Any, T]
"""A SimPy generator that takes simulated time and returns a value."""

RECHECK_DELAY_S = 30.0
"""Delay of the periodic PodSchedulingContext re-check (the library's `recheckDelay`, no jitter)."""

MUTATION_CACHE_TTL_S = 60.0
"""How long the controller prefers its own written copy of a claim over an older informer copy."""

HOSTNAME_LABEL = "kubernetes.io/hostname"
"""Node label that the kubelet sets to the node name; node-local allocations select on it."""

CLAIM_KEY_PREFIX = "claim:"
SCHEDULING_CONTEXT_KEY_PREFIX = "schedulingCtx:"

LibraryVersion = Literal["0.27", "0.28", "0.29"]

_LIBRARY_FOR_KUBERNETES: dict[str, LibraryVersion] = {
    "1.27": "0.27",
    "1.28": "0.28",
    "1.29": "0.29",
}


# --------------------------------------------------------------------------------------
# The interface between the library loop and a driver model
# --------------------------------------------------------------------------------------


class DriverError(Exception):
    """A driver callback failed; the library retries the work item with backoff."""


@dataclass
class ClaimAllocation:
    """One pod claim (or one Immediate claim) handed to a driver model.

    The controller fills the inputs; the model fills `unsuitable_nodes` in
    `DriverModel.unsuitable_nodes` and `allocation` or `error` in
    `DriverModel.allocate`. Models must treat the inputs as read-only.
    """

    pod_claim_name: str
    """Entry name in `pod.spec.resourceClaims`; "" for an Immediate claim (no pod involved)."""
    claim: ResourceClaim
    resource_class: ResourceClass
    claim_parameters: GenericObject | None = None
    """The object that `claim.spec.parametersRef` names, or None without a reference."""
    class_parameters: GenericObject | None = None
    """The object that `resource_class.parametersRef` names, or None without a reference."""
    unsuitable_nodes: list[str] = field(default_factory=list)
    allocation: AllocationResult | None = None
    error: str | None = None


class DeviceUse(NamedTuple):
    """How much of a driver's capacity at one location is in use."""

    total: int | None
    """Capacity; None when the model has no limit."""
    used: int


class NodeView(Protocol):
    """A driver model's view of the nodes: their names and labels.

    A real driver learns this from its kubelet plugins and node labels; the
    simulator gives models the API server's current nodes without delay.
    """

    def node_names(self) -> list[str]:
        """Return the names of all nodes, in name order."""
        ...

    def labels(self, node: str) -> Mapping[str, str] | None:
        """Return the labels of a node, or None when the node does not exist."""
        ...


class APINodeView:
    """`NodeView` over the nodes stored in an API server (read without latency)."""

    def __init__(self, api: APIServer) -> None:
        self._api = api

    def node_names(self) -> list[str]:
        """Return the names of all stored nodes, in name order."""
        return [node.metadata.name for node in self._api.list("Node").items]

    def labels(self, node: str) -> Mapping[str, str] | None:
        """Return the labels of a stored node, or None when it does not exist."""
        try:
            return self._api.get("Node", node).metadata.labels
        except NotFound:
            return None


class StaticNodeView:
    """`NodeView` over a fixed mapping of node name to labels (for tests and offline use)."""

    def __init__(self, nodes: Mapping[str, Mapping[str, str]]) -> None:
        self._nodes = dict(nodes)

    def node_names(self) -> list[str]:
        """Return the node names, in name order."""
        return sorted(self._nodes)

    def labels(self, node: str) -> Mapping[str, str] | None:
        """Return the labels of a node, or None when it is not in the mapping."""
        return self._nodes.get(node)


@dataclass(frozen=True)
class ModelContext:
    """Inputs that a driver model receives at construction."""

    driver_name: str
    """The driver name, as in `ResourceClass.driverName`; models put it into resource handles."""
    rng: np.random.Generator
    """The model's own random stream (random placement choices)."""
    nodes: NodeView


class DriverModel(Protocol):
    """The driver-specific callbacks of the dynamic-resource-allocation controller library.

    Every method must be idempotent per claim UID. The library may call
    `allocate` again for a claim that the model already allocated, after a
    failed status write or from two PodSchedulingContexts processed at the
    same time. It may also call `deallocate` for a claim that the model never
    allocated. Methods run at the end of the simulated call latency and must
    not block.
    """

    def validate_parameters(self, claim: ClaimAllocation) -> None:
        """Check the class and claim parameters of a claim before any other callback uses them.

        This is the validation part of the library's `GetClassParameters` and
        `GetClaimParameters`: fetching the objects is the controller's job.

        Raises:
            DriverError: the parameters are of an unknown kind or invalid.
        """
        ...

    def unsuitable_nodes(self, pod: Pod, claims: list[ClaimAllocation], nodes: list[str]) -> None:
        """Fill `unsuitable_nodes` of every claim with the nodes of `nodes` that cannot serve it.

        `claims` are all pending WaitForFirstConsumer claims of this driver for
        one pod; a node that cannot host all of them should be listed for all.

        Raises:
            DriverError: the check failed and must be repeated.
        """
        ...

    def allocate(self, claims: list[ClaimAllocation], selected_node: str) -> None:
        """Allocate the claims and set `allocation` or `error` on each.

        With `selected_node` set, every claim must be allocated for that node
        or fail; with "" (Immediate claims) the model picks the place itself.
        A claim that the model allocated before gets the same result again.
        """
        ...

    def deallocate(self, claim: ResourceClaim) -> None:
        """Free a claim; succeed for a claim that is not allocated.

        Raises:
            DriverError: freeing failed and must be retried.
        """
        ...

    def inventory(self) -> dict[str, DeviceUse]:
        """Return the capacity and use per node ("" for capacity not bound to one node)."""
        ...

    def devices_of(self, claim_uid: str) -> tuple[str, list[str]] | None:
        """Return the node ("" if not node-bound) and devices of an allocated claim, or None."""
        ...


@runtime_checkable
class SharedDeviceModel(Protocol):
    """A driver model whose claims can hold a share of a device instead of whole devices.

    The metrics count the devices of a claim as the number of names that
    `devices_of` returns. A model that hands out shares (several claims on one
    device) implements `device_amount` so that a share counts by its fraction
    and the devices in use never exceed the devices that exist.
    """

    def device_amount(self, claim_uid: str) -> float | None:
        """Return the devices allocated to a claim (a share as its fraction), or None."""
        ...


def is_generated_claim(claim: ResourceClaim) -> bool:
    """Whether a claim was generated from a template for a pod (its controller owner is a Pod)."""
    owner = controller_owner(claim)
    return owner is not None and owner.kind == "Pod"


def nodes_selector(nodes: Sequence[str]) -> NodeSelector:
    """Return the `availableOnNodes` selector `kubernetes.io/hostname In nodes`."""
    requirement = NodeSelectorRequirement(key=HOSTNAME_LABEL, operator="In", values=tuple(nodes))
    return NodeSelector(node_selector_terms=(NodeSelectorTerm(match_expressions=(requirement,)),))


def resource_handle(driver_name: str, data: Mapping[str, Any]) -> ResourceHandle:
    """Return a resource handle whose data is `data` as compact, key-sorted JSON."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return ResourceHandle(driver_name=driver_name, data=text)


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------


def _coerce_outage(value: Any) -> Any:
    """Accept `[start_s, end_s]` pairs as well as `{start_s:, end_s:}` mappings."""
    if isinstance(value, list | tuple) and len(value) == 2:
        return {"start_s": value[0], "end_s": value[1]}
    return value


class Outage(StrictModel):
    """A window of simulated time during which the driver controller does no work."""

    start_s: float = Field(ge=0, description="start of the outage, simulated seconds")
    end_s: float = Field(gt=0, description="end of the outage, simulated seconds")

    @model_validator(mode="after")
    def _check_order(self) -> Outage:
        if self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be after start_s ({self.start_s})")
        return self


OutageField = Annotated[Outage, BeforeValidator(_coerce_outage)]


class DriverConfig(StrictModel):
    """Settings of one resource driver's control-plane controller and its model."""

    name: str = Field(
        min_length=1, description="driver name, as in ResourceClass.driverName (gpu.example.com)"
    )
    model: str = Field("node-local", description="driver model, by registry name (sim.drivers)")
    model_settings: dict[str, Any] = Field(
        default_factory=dict, description="settings of the model, checked by the model's own schema"
    )
    workers: int = Field(
        5, ge=1, description="worker processes (the scheduler_perf test driver uses 5)"
    )
    library_version: LibraryVersion | None = Field(
        None,
        description="version of k8s.io/dynamic-resource-allocation the driver is built on; "
        "None follows kubernetes_version (1.27 -> 0.27, 1.28 -> 0.28, 1.29 -> 0.29)",
    )
    legacy_claim_names: bool = Field(
        False,
        description="resolve template claims as <pod>-<entry> (a driver built on the 1.27 "
        "library); always on when the cluster runs 1.27",
    )
    set_reserved_for: bool = Field(
        True,
        description="add the pod that triggered allocation to reservedFor (library 0.28+ "
        "option SetReservedFor; library 0.27 always adds it)",
    )
    parameters_lookup: Literal["get", "informer"] = Field(
        "get",
        description="how parameter objects are read: a live GET per use (as the Kubernetes "
        "test driver and the example drivers do) or an informer per kind",
    )
    qps: float | None = Field(
        None, gt=0, description="client-side API request limit, requests/s; None = no limit"
    )
    burst: int = Field(10, ge=1, description="client-side rate limit burst, requests")
    allocate_latency_s: Dist = Field(
        default_factory=lambda: Constant(value=0.0),
        description="time the model needs per claim in one Allocate call, seconds",
    )
    deallocate_latency_s: Dist = Field(
        default_factory=lambda: Constant(value=0.0),
        description="time of one Deallocate call, seconds",
    )
    unsuitable_nodes_latency_s: Dist = Field(
        default_factory=lambda: Constant(value=0.0),
        description="time of one UnsuitableNodes call (all claims of one pod), seconds",
    )
    allocate_failure_probability: float = Field(
        0.0, ge=0, le=1, description="probability that allocating one claim fails (then retried)"
    )
    deallocate_failure_probability: float = Field(
        0.0, ge=0, le=1, description="probability that one Deallocate call fails (then retried)"
    )
    outages: tuple[OutageField, ...] = Field(
        (), description="windows during which the controller's workers do nothing (driver down)"
    )

    @model_validator(mode="after")
    def _check_model(self) -> DriverConfig:
        # Imported here because the built-in models import this module.
        from sim.drivers.registry import validate_driver_model_settings

        validate_driver_model_settings(self.model, self.model_settings)
        return self


def library_version_for(config: DriverConfig, kubernetes_version: str) -> LibraryVersion:
    """Return the library version a driver uses: its own setting, else the one of the cluster."""
    if config.library_version is not None:
        return config.library_version
    return _LIBRARY_FOR_KUBERNETES[kubernetes_version]


# --------------------------------------------------------------------------------------
# Controller internals
# --------------------------------------------------------------------------------------


class ClaimMutationCache:
    """Claim lister that prefers the controller's own recent writes (client-go MutationCache).

    After a successful write the controller stores the returned claim here.
    Reads return that copy while it is newer (by resourceVersion) than the
    informer's and younger than the TTL. Like the library's cache it only
    serves claims that the informer contains, so a claim that the informer
    dropped reads as absent.
    """

    def __init__(self, env: simpy.Environment, informer: Informer, ttl_s: float) -> None:
        self._env = env
        self._informer = informer
        self._ttl_s = ttl_s
        self._mutations: dict[str, tuple[ResourceClaim, float]] = {}

    def get(self, key: str) -> ResourceClaim | None:
        """Return the newest known copy of the claim with informer key `key`, or None."""
        base: ResourceClaim | None = self._informer.get_by_key(key)
        entry = self._mutations.get(key)
        if base is None or entry is None:
            if base is None:
                self._mutations.pop(key, None)
            return base
        mutated, expires_at = entry
        if float(self._env.now) >= expires_at or _revision(mutated) <= _revision(base):
            del self._mutations[key]
            return base
        return mutated

    def mutation(self, claim: ResourceClaim) -> None:
        """Remember a claim as returned by the controller's own write."""
        self._mutations[claim.key] = (claim, float(self._env.now) + self._ttl_s)

    def clear(self) -> None:
        """Forget every remembered write (a restarted controller starts empty)."""
        self._mutations.clear()


def _revision(obj: TopLevelObject) -> int:
    try:
        return int(obj.metadata.resource_version)
    except ValueError:
        return 0


class SyncResult(Enum):
    """Outcome of a work item, which decides what the queue does with its key."""

    DONE = "done"
    """Success: forget the key's backoff."""
    REQUEUE = "requeue"
    """Silent retry with per-key exponential backoff (`errRequeue`)."""
    PERIODIC = "periodic"
    """Silent re-check after 30 s (`errPeriodic`)."""


class SyncError(Exception):
    """A work item failed: Warning event on the object and retry with backoff.

    Attributes:
        parameter_error: the work item stopped because the claim's or class's
            parameters could not be fetched or were rejected by the model.
    """

    def __init__(self, message: str, *, parameter_error: bool = False) -> None:
        super().__init__(message)
        self.parameter_error = parameter_error


class DriverWarning(NamedTuple):
    """A Warning event the driver library would record (reason `Failed`)."""

    time_s: float
    object: str
    """Kind and key of the object, e.g. `ResourceClaim default/gpu-claim`."""
    message: str
    parameter_error: bool = False
    """Whether the work item failed on the claim's or class's parameters.

    The library gives every Warning the reason `Failed`, so this flag is the
    simulator's own. It marks the warnings whose message wraps the
    `claim parameters ...` or `class parameters ...` error, not the bare error
    that the parameter check records on the class or claim itself.
    """


def truncate_nodes(nodes: list[str], selected_node: str) -> list[str]:
    """Cut an unsuitable-node list to the API limit of 128 entries (library 0.29).

    The list can exceed the limit only because the library adds the selected
    node to the 128 potential nodes. The selected node, if it is first, is
    kept by cutting at the end; otherwise the list is cut at the front.
    """
    limit = POD_SCHEDULING_NODE_LIST_MAX_SIZE
    if len(nodes) <= limit:
        return nodes
    if nodes[0] == selected_node:
        return nodes[:limit]
    return nodes[len(nodes) - limit :]


def _object_ref(obj: TopLevelObject) -> str:
    return f"{type(obj).KIND or obj.kind} {obj.key}"


# --------------------------------------------------------------------------------------
# The controller
# --------------------------------------------------------------------------------------


class DriverController:
    """The control-plane half of a DRA resource driver (dynamic-resource-allocation/controller).

    Modelled, as in the library (versions 0.27, 0.28 and 0.29):

    * informers on ResourceClasses, ResourceClaims and PodSchedulingContexts
      of all namespaces and drivers, and a claim mutation cache with a 60 s
      TTL. The pod is read with a live GET in every PodSchedulingContext sync;
    * one work queue of `claim:<ns>/<name>` and `schedulingCtx:<ns>/<name>`
      keys fed by every add and update event (deletes only reset the
      backoff), processed by `workers` processes; success forgets the key,
      `errRequeue` re-adds it with backoff, `errPeriodic` after 30 s, any
      other error records a Warning and re-adds it with backoff;
    * syncClaim: Immediate allocation, deallocation on `deallocationRequested`
      or deletion, and removal of the finalizer `<driver>/deletion-protection`;
    * syncPodSchedulingContext: unsuitable-node reports for the pod's pending
      WaitForFirstConsumer claims, allocation for `selectedNode` with the pod
      in `reservedFor`, and a status write only when an entry changed;
    * version differences: 0.27 allocates claim by claim and stops at the
      first failure; 0.27/0.28 pass allocated claims to `UnsuitableNodes` and
      check only `potentialNodes` (a selected node outside them is never
      reported unsuitable); 0.29 excludes allocated claims, always checks the
      selected node and cuts the list to 128 entries.

    Simplified: Warning events are kept in `warnings` (and logged) instead of
    being written as Event objects; the model learns node names and labels
    without delay (`APINodeView`); an outage pauses the workers between work
    items (an item in progress finishes), and after it the controller
    re-enqueues every claim and context and drops its mutation cache, as a
    restarted process would after its initial list. The model's own state
    survives an outage.

    Not modelled: leader election and several replicas of one driver,
    informer resyncs, and Event objects in the API server.
    """

    def __init__(
        self, world: World, config: DriverConfig, model: DriverModel | None = None
    ) -> None:
        self.world = world
        self.config = config
        self.driver_name = config.name
        self.component = f"driver/{config.name}"
        self.finalizer = f"{config.name}/deletion-protection"
        self.library_version = library_version_for(config, world.config.kubernetes_version)
        library = tuple(int(part) for part in self.library_version.split("."))
        self._allocates_in_batches = library >= (0, 28)
        self._checks_selected_node = library >= (0, 29)
        self._skips_allocated_claims = library >= (0, 29)
        self._notifies_parameter_errors = library >= (0, 29)
        self._set_reserved_for = config.set_reserved_for or not self._allocates_in_batches
        self._legacy_claim_names = config.legacy_claim_names or not world.version_at_least(28)

        if model is None:
            from sim.drivers.registry import build_driver_model

            context = ModelContext(
                driver_name=config.name,
                rng=world.streams.stream(f"{self.component}/model"),
                nodes=APINodeView(world.api),
            )
            model = build_driver_model(config.model, config.model_settings, context)
        self.model: DriverModel = model

        self.client = APIClient(world, self.component, qps=config.qps, burst=config.burst)
        self.classes = Informer(world, "ResourceClass", self.component)
        self.claims = Informer(world, "ResourceClaim", self.component)
        self.scheduling_contexts = Informer(world, "PodSchedulingContext", self.component)
        self.claim_cache = ClaimMutationCache(world.env, self.claims, MUTATION_CACHE_TTL_S)
        self.queue = WorkQueue(world.env, f"{self.component}-queue")

        self.warnings: list[DriverWarning] = []
        self.model_calls: Counter[str] = Counter()
        """Driver callback calls by name (`allocate`, ...), including failed ones."""

        self._parameter_informers: dict[str, Informer] = {}
        self._latency_rng = world.streams.stream(f"{self.component}/latency")
        self._failure_rng = world.streams.stream(f"{self.component}/failures")
        # Claim UID -> Allocate calls in flight; UIDs deallocated while one was in flight.
        self._allocating: Counter[str] = Counter()
        self._aborted: set[str] = set()
        self._down = False
        self._up: simpy.Event = world.env.event()
        self._started = False

    # ----------------------------------------------------------------------------------
    # Start-up and event handlers
    # ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the informers, the workers and the outage schedule."""
        if self._started:
            return
        self._started = True
        self.claims.add_handler(
            self._on_claim, lambda _old, new: self._on_claim(new), self._on_claim_deleted
        )
        self.scheduling_contexts.add_handler(
            self._on_context, lambda _old, new: self._on_context(new), self._on_context_deleted
        )
        self.classes.start()
        self.claims.start()
        self.scheduling_contexts.start()
        env = self.world.env
        for _ in range(self.config.workers):
            env.process(self._worker())
        if self.config.outages:
            env.process(self._run_outages())
        logger.info(
            "%s: started with %d workers, library %s, model %s",
            self.component,
            self.config.workers,
            self.library_version,
            self.config.model,
        )

    def _on_claim(self, claim: ResourceClaim) -> None:
        self.queue.add(CLAIM_KEY_PREFIX + claim.key)

    def _on_claim_deleted(self, claim: ResourceClaim) -> None:
        self.queue.forget(CLAIM_KEY_PREFIX + claim.key)

    def _on_context(self, context: PodSchedulingContext) -> None:
        self.queue.add(SCHEDULING_CONTEXT_KEY_PREFIX + context.key)

    def _on_context_deleted(self, context: PodSchedulingContext) -> None:
        self.queue.forget(SCHEDULING_CONTEXT_KEY_PREFIX + context.key)

    # ----------------------------------------------------------------------------------
    # Workers and outages
    # ----------------------------------------------------------------------------------

    def _worker(self) -> Process[None]:
        while True:
            if self._down:
                yield self._up
            key = yield self.queue.get()
            # An outage may have begun while this worker waited for a key.
            if self._down:
                yield self._up
            yield from self._process(key)
            self.queue.done(key)

    def _run_outages(self) -> Process[None]:
        env = self.world.env
        windows = sorted((o.start_s, o.end_s) for o in self.config.outages)
        merged: list[tuple[float, float]] = []
        for start, end in windows:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        for start, end in merged:
            if start > env.now:
                yield env.timeout(start - env.now)
            self._down = True
            self._up = env.event()
            logger.info("%s: down from t=%.3fs to t=%.3fs", self.component, start, end)
            yield env.timeout(end - env.now)
            self._down = False
            self._up.succeed()
            self._resync_after_restart()
            logger.info("%s: up again at t=%.3fs", self.component, end)

    def _resync_after_restart(self) -> None:
        self.claim_cache.clear()
        for claim in self.claims.list():
            self._on_claim(claim)
        for context in self.scheduling_contexts.list():
            self._on_context(context)

    def _process(self, key: str) -> Process[None]:
        """Sync one key and hand it back to the queue according to the result."""
        object_key = key.partition(":")[2]
        obj: TopLevelObject | None = None
        result = SyncResult.DONE
        try:
            if key.startswith(CLAIM_KEY_PREFIX):
                claim = self.claim_cache.get(object_key)
                obj = claim
                if claim is not None:
                    result = yield from self._sync_claim(claim)
            else:
                context = self.scheduling_contexts.get_by_key(object_key)
                obj = context
                if context is not None:
                    result = yield from self._sync_scheduling_context(context)
        except SyncError as error:
            logger.info("%s: processing %s failed: %s", self.component, key, error)
            if obj is not None:
                self._warn(obj, str(error), parameter_error=error.parameter_error)
            self.queue.add_rate_limited(key)
            return

        if result is SyncResult.DONE:
            self.queue.forget(key)
        elif result is SyncResult.REQUEUE:
            self.queue.add_rate_limited(key)
        else:
            self.queue.add_after(key, RECHECK_DELAY_S)

    def _warn(self, obj: TopLevelObject, message: str, *, parameter_error: bool = False) -> None:
        self.warnings.append(
            DriverWarning(self.world.now, _object_ref(obj), message, parameter_error)
        )

    # ----------------------------------------------------------------------------------
    # syncClaim
    # ----------------------------------------------------------------------------------

    def _sync_claim(self, claim: ResourceClaim) -> Process[SyncResult]:
        """Deallocate a released claim, or allocate a pending Immediate claim of this driver."""
        if claim.status.reserved_for:
            return SyncResult.DONE

        if claim.deleting or claim.status.deallocation_requested:
            if self.finalizer in claim.metadata.finalizers:
                yield from self._deallocate_and_release(claim)
            return SyncResult.DONE

        if claim.allocated or claim.mode != AllocationMode.IMMEDIATE:
            return SyncResult.DONE

        resource_class = self._get_class(claim)
        if resource_class.driver_name != self.driver_name:
            # The class may change to name this driver later, so keep checking with backoff.
            return SyncResult.REQUEUE

        allocation = yield from self._claim_allocation(
            "", claim, resource_class, notify_claim=False
        )
        yield from self._allocate_claims([allocation], "", None)
        if allocation.error is not None:
            raise SyncError(f"allocate: {allocation.error}")
        return SyncResult.DONE

    def _deallocate_and_release(self, claim: ResourceClaim) -> Process[None]:
        """Free the claim in the model, clear its allocation and remove this driver's finalizer."""
        if claim.allocated:
            yield from self._call_deallocate(claim, "deallocate")
            released = claim.with_status(
                allocation=None, driver_name="", deallocation_requested=False
            )
            claim = yield from self._write_claim_status(released, "remove allocation", "deallocate")
        else:
            # Deallocate also stops an allocation that may still be in progress.
            yield from self._call_deallocate(claim, "stop allocation")

        if claim.status.deallocation_requested:
            cleared = claim.with_status(deallocation_requested=False)
            claim = yield from self._write_claim_status(
                cleared, "remove deallocation", "clear deallocation request"
            )

        finalizers = tuple(f for f in claim.metadata.finalizers if f != self.finalizer)
        try:
            updated = yield from self.client.update(
                claim.with_meta(finalizers=finalizers), reason="remove finalizer"
            )
        except APIError as error:
            raise SyncError(f"remove finalizer: {error}") from error
        self.claim_cache.mutation(updated)

    def _write_claim_status(
        self, claim: ResourceClaim, step: str, reason: str
    ) -> Process[ResourceClaim]:
        try:
            updated = yield from self.client.update_status(claim, reason=reason)
        except APIError as error:
            raise SyncError(f"{step}: {error}") from error
        self.claim_cache.mutation(updated)
        return updated

    def _get_class(self, claim: ResourceClaim) -> ResourceClass:
        name = claim.spec.resource_class_name
        resource_class: ResourceClass | None = self.classes.get(name)
        if resource_class is None:
            raise SyncError(f'resourceclass.resource.k8s.io "{name}" not found')
        return resource_class

    # ----------------------------------------------------------------------------------
    # syncPodSchedulingContext
    # ----------------------------------------------------------------------------------

    def _sync_scheduling_context(self, context: PodSchedulingContext) -> Process[SyncResult]:
        """Publish unsuitable nodes for the pod's pending claims; allocate on the selected node."""
        if context.deleting:
            return SyncResult.DONE
        selected_node = context.spec.selected_node
        if not selected_node and not context.spec.potential_nodes:
            return SyncResult.DONE

        try:
            pod: Pod = yield from self.client.get(
                "Pod", context.metadata.name, context.metadata.namespace, reason="read pod"
            )
        except APIError as error:
            raise SyncError(str(error)) from error
        if pod.deleting or not is_controlled_by(context, pod.metadata.uid):
            return SyncResult.DONE

        pending: list[ClaimAllocation] = []
        for pod_claim in pod.spec.resource_claims:
            try:
                allocation = yield from self._check_pod_claim(pod, pod_claim)
            except SyncError as error:
                raise SyncError(
                    f"pod claim {pod_claim.name}: {error}", parameter_error=error.parameter_error
                ) from error
            if allocation is not None:
                pending.append(allocation)
        if not pending:
            logger.debug("%s: found no pending pod claims for %s", self.component, context.key)
            return SyncResult.PERIODIC

        yield from self._check_unsuitable_nodes(pod, context, pending)
        if selected_node:
            if any(selected_node in claim.unsuitable_nodes for claim in pending):
                logger.debug(
                    "%s: skipping allocation for unsuitable selected node %s",
                    self.component,
                    selected_node,
                )
            else:
                yield from self._allocate_for_pod(pod, pending, selected_node)

        yield from self._publish_unsuitable_nodes(context, pending)
        return SyncResult.PERIODIC

    def _check_pod_claim(
        self, pod: Pod, pod_claim: PodResourceClaim
    ) -> Process[ClaimAllocation | None]:
        """Return the pod claim as a ClaimAllocation if it is a pending claim of this driver."""
        try:
            resolved = resolve_claim_name(pod, pod_claim, legacy_names=self._legacy_claim_names)
        except ClaimNameError as error:
            raise SyncError(str(error)) from error
        if resolved is None:
            return None
        claim = self.claim_cache.get(f"{pod.metadata.namespace}/{resolved.claim_name}")
        if claim is None:
            return None
        if not check_owner(pod, claim, resolved):
            raise SyncError(
                f"ResourceClaim {claim.key} was not created for pod {pod.key} (pod is not owner)"
            )

        if claim.mode != AllocationMode.WAIT_FOR_FIRST_CONSUMER:
            return None
        if claim.allocated and self._skips_allocated_claims:
            return None
        resource_class = self._get_class(claim)
        if resource_class.driver_name != self.driver_name:
            return None

        try:
            allocation = yield from self._claim_allocation(
                pod_claim.name, claim, resource_class, notify_claim=self._notifies_parameter_errors
            )
        except SyncError as error:
            if self._notifies_parameter_errors:
                self._warn(
                    pod,
                    f"claim {claim.metadata.name}: {error}",
                    parameter_error=error.parameter_error,
                )
            raise
        return allocation

    def _check_unsuitable_nodes(
        self, pod: Pod, context: PodSchedulingContext, pending: list[ClaimAllocation]
    ) -> Process[None]:
        potential_nodes = list(context.spec.potential_nodes)
        selected_node = context.spec.selected_node
        # Library 0.29 does not assume that the scheduler listed the selected node.
        if self._checks_selected_node and selected_node and selected_node not in potential_nodes:
            potential_nodes.append(selected_node)
        if not context.spec.potential_nodes:
            return
        yield from self._delay(self.config.unsuitable_nodes_latency_s.sample(self._latency_rng))
        self.model_calls["unsuitable_nodes"] += 1
        try:
            self.model.unsuitable_nodes(pod, pending, potential_nodes)
        except DriverError as error:
            raise SyncError(f"checking potential nodes: {error}") from error

    def _allocate_for_pod(
        self, pod: Pod, pending: list[ClaimAllocation], selected_node: str
    ) -> Process[None]:
        user = ResourceClaimConsumerReference(
            resource="pods", name=pod.metadata.name, uid=pod.metadata.uid
        )
        if not self._allocates_in_batches:
            # Library 0.27: one claim at a time, and the first failure ends the sync.
            for claim in pending:
                yield from self._allocate_claims([claim], selected_node, user)
                if claim.error is not None:
                    raise SyncError(
                        f"allocation of pod claim {claim.pod_claim_name} failed: {claim.error}"
                    )
            return

        yield from self._allocate_claims(pending, selected_node, user)
        errors = []
        for claim in pending:
            if claim.error is None:
                continue
            if claim.claim.metadata.name in claim.error:
                errors.append(claim.error)
            else:
                errors.append(f"claim {claim.claim.metadata.name}: {claim.error}")
        if errors:
            raise SyncError("\n".join(errors))

    def _publish_unsuitable_nodes(
        self, context: PodSchedulingContext, pending: list[ClaimAllocation]
    ) -> Process[None]:
        """Write each pending claim's unsuitable nodes into the context status, if any changed."""
        selected_node = context.spec.selected_node
        entries = list(context.status.resource_claims)
        modified = False
        for claim in pending:
            nodes = claim.unsuitable_nodes
            if self._checks_selected_node:
                nodes = truncate_nodes(nodes, selected_node)
            index = next((i for i, e in enumerate(entries) if e.name == claim.pod_claim_name), -1)
            if index < 0:
                entries.append(
                    ResourceClaimSchedulingStatus(
                        name=claim.pod_claim_name, unsuitable_nodes=tuple(nodes)
                    )
                )
                modified = True
            # NOTE: as in the library, the stored list is compared with the list before
            # truncation, so a list cut to 128 entries is written again on every sync.
            elif list(entries[index].unsuitable_nodes) != claim.unsuitable_nodes:
                entries[index] = entries[index].model_copy(
                    update={"unsuitable_nodes": tuple(nodes)}
                )
                modified = True
        if not modified:
            return

        status = context.status.model_copy(update={"resource_claims": tuple(entries)})
        try:
            yield from self.client.update_status(
                context.model_copy(update={"status": status}), reason="publish unsuitable nodes"
            )
        except APIError as error:
            raise SyncError(f"update unsuitable node status: {error}") from error

    # ----------------------------------------------------------------------------------
    # Parameters
    # ----------------------------------------------------------------------------------

    def _claim_allocation(
        self,
        pod_claim_name: str,
        claim: ResourceClaim,
        resource_class: ResourceClass,
        *,
        notify_claim: bool,
    ) -> Process[ClaimAllocation]:
        """Fetch the class and claim parameters and let the model validate them."""
        class_parameters: GenericObject | None = None
        class_ref = resource_class.parameters_ref
        if class_ref is not None:
            try:
                class_parameters = yield from self._fetch_parameters(
                    class_ref.kind, class_ref.name, class_ref.namespace, "class"
                )
            except SyncError as error:
                self._warn(resource_class, str(error))
                raise SyncError(
                    f"class parameters {class_ref.kind}/{class_ref.name}: {error}",
                    parameter_error=True,
                ) from error

        claim_parameters: GenericObject | None = None
        claim_ref = claim.spec.parameters_ref
        allocation = ClaimAllocation(pod_claim_name, claim, resource_class, None, class_parameters)
        try:
            if claim_ref is not None:
                claim_parameters = yield from self._fetch_parameters(
                    claim_ref.kind, claim_ref.name, claim.metadata.namespace, "claim"
                )
                allocation.claim_parameters = claim_parameters
            self.model.validate_parameters(allocation)
        except (SyncError, DriverError) as error:
            if notify_claim:
                self._warn(claim, str(error))
            described = f"{claim_ref.kind}/{claim_ref.name}" if claim_ref is not None else "(none)"
            raise SyncError(
                f"claim parameters {described}: {error}", parameter_error=True
            ) from error
        return allocation

    def _fetch_parameters(
        self, kind: str, name: str, namespace: str, owner: str
    ) -> Process[GenericObject]:
        if self.config.parameters_lookup == "informer":
            informer = self._parameter_informer(kind)
            obj = informer.get(name, namespace)
            if obj is None and not namespace:
                # An empty namespace means "default" for namespaced kinds, as in a GET.
                obj = informer.get(name, "default")
            if obj is None:
                raise SyncError(f'{kind} "{name}" not found')
        else:
            try:
                obj = yield from self.client.get(
                    kind, name, namespace, reason=f"read {owner} parameters"
                )
            except APIError as error:
                raise SyncError(str(error)) from error
        if not isinstance(obj, GenericObject):
            raise SyncError(f"{kind} {name} is a built-in kind and cannot hold driver parameters")
        return obj

    def _parameter_informer(self, kind: str) -> Informer:
        informer = self._parameter_informers.get(kind)
        if informer is None:
            informer = Informer(self.world, kind, self.component)
            informer.start()
            self._parameter_informers[kind] = informer
        return informer

    # ----------------------------------------------------------------------------------
    # allocateClaims and the model calls
    # ----------------------------------------------------------------------------------

    def _allocate_claims(
        self,
        claims: list[ClaimAllocation],
        selected_node: str,
        selected_user: ResourceClaimConsumerReference | None,
    ) -> Process[None]:
        """Add the finalizer, call Allocate and write allocation (+ reservation) for each claim.

        Failures are recorded in each claim's `error`; claims that are already
        allocated are skipped.
        """
        ready: list[ClaimAllocation] = []
        for claim in claims:
            if claim.claim.allocated:
                continue
            if self.finalizer not in claim.claim.metadata.finalizers:
                protected = claim.claim.with_meta(
                    finalizers=(*claim.claim.metadata.finalizers, self.finalizer)
                )
                try:
                    updated = yield from self.client.update(protected, reason="add finalizer")
                except APIError as error:
                    claim.error = f"add finalizer: {error}"
                    continue
                self.claim_cache.mutation(updated)
                claim.claim = updated
            ready.append(claim)
        if not ready:
            return

        yield from self._call_allocate(ready, selected_node)

        for claim in ready:
            if claim.error is not None:
                continue
            if claim.allocation is None:
                claim.error = "allocating claim: missing allocation from driver"
                continue
            reserved_for = claim.claim.status.reserved_for
            if selected_user is not None and self._set_reserved_for:
                reserved_for = (*reserved_for, selected_user)
            allocated = claim.claim.with_status(
                allocation=claim.allocation, driver_name=self.driver_name, reserved_for=reserved_for
            )
            try:
                updated = yield from self.client.update_status(allocated, reason="allocate")
            except APIError as error:
                claim.error = f"add allocation: {error}"
                continue
            self.claim_cache.mutation(updated)
            logger.debug("%s: allocated %s for node %r", self.component, updated.key, selected_node)

    def _call_allocate(self, claims: list[ClaimAllocation], selected_node: str) -> Process[None]:
        """Run one Allocate call: latency per claim, injected failures, then the model."""
        latency = sum(self.config.allocate_latency_s.sample(self._latency_rng) for _ in claims)
        uids = [claim.claim.metadata.uid for claim in claims]
        self._allocating.update(uids)
        try:
            yield from self._delay(latency)
        finally:
            self._allocating.subtract(uids)

        probability = self.config.allocate_failure_probability
        calling: list[ClaimAllocation] = []
        for claim in claims:
            if probability > 0 and self._failure_rng.random() < probability:
                claim.error = "injected allocation failure"
            else:
                calling.append(claim)
        self.model_calls["allocate"] += 1
        if calling:
            self.model.allocate(calling, selected_node)

        for claim in calling:
            uid = claim.claim.metadata.uid
            if uid in self._aborted:
                self._undo_aborted_allocation(claim)
        for uid in uids:
            if self._allocating[uid] <= 0:
                del self._allocating[uid]
                self._aborted.discard(uid)

    def _undo_aborted_allocation(self, claim: ClaimAllocation) -> None:
        """Free what an Allocate call did for a claim that was deallocated while the call ran."""
        try:
            self.model.deallocate(claim.claim)
        except DriverError as error:
            logger.info(
                "%s: undoing the aborted allocation of %s failed: %s",
                self.component,
                claim.claim.key,
                error,
            )
        claim.allocation = None
        claim.error = "allocation aborted because the claim was deallocated while Allocate ran"

    def _call_deallocate(self, claim: ResourceClaim, step: str) -> Process[None]:
        """Run one Deallocate call, which also aborts Allocate calls in flight for the claim."""
        uid = claim.metadata.uid
        if self._allocating[uid] > 0:
            self._aborted.add(uid)
        yield from self._delay(self.config.deallocate_latency_s.sample(self._latency_rng))
        if self._allocating[uid] > 0:
            self._aborted.add(uid)
        self.model_calls["deallocate"] += 1
        probability = self.config.deallocate_failure_probability
        try:
            if probability > 0 and self._failure_rng.random() < probability:
                raise DriverError("injected deallocation failure")
            self.model.deallocate(claim)
        except DriverError as error:
            raise SyncError(f"{step}: {error}") from error

    def _delay(self, seconds: float) -> Process[None]:
        if seconds > 0:
            yield self.world.env.timeout(seconds)
