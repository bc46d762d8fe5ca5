"""The write tracker: pods and ResourceClaims followed through every committed API write.

A real cluster's history lives in its API writes: a claim is allocated when a
driver writes `status.allocation`, reserved when someone adds to
`status.reservedFor`, a pod is bound when `spec.nodeName` appears. `Tracker` is
a write hook (`World.add_write_hook`) that reads each committed Pod,
ResourceClaim, ResourceClass and Node write once, as it happens, and

* appends the state transitions of pods and claims to the recorder's `events`
  (with the writing component as actor, "user" for writes made directly on the
  API server, and the request's reason);
* appends every change of device use (when a claim's allocation appears, changes
  or goes) and of the CPU and memory requested by bound, unfinished pods;
* keeps one small record per pod and claim with the timestamps and counters the
  `pods` and `claims` tables need (`sim.metrics.tables`).

Each write costs O(1) dictionary work plus a comparison of the changed fields;
objects are never copied. Claim states (the rows of the claim lifecycle table,
with the driver-internal Allocating state folded into Pending):

============================  ==================================================
state                         claim
============================  ==================================================
Pending                       no `status.allocation`
Allocated                     allocated, `reservedFor` empty
Reserved                      allocated, reserved for at least one consumer
DeallocationRequested         allocated, unused, `deallocationRequested` set
Deleting                      `deletionTimestamp` set, finalizers keep it
Deleted                       removed by the API server
============================  ==================================================

A change of the consumer set of a reserved claim is recorded as a
Reserved -> Reserved transition. The pod states read from writes are Created,
Bound (`spec.nodeName` set), each `status.phase` change after creation,
Deleting (`deletionTimestamp` set) and Deleted. Phase changes are normally to
Running, Succeeded, Failed or Unknown, and back to Pending only if a writer
sets it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, cast

from sim.api.quantity import QuantityError, int_value, milli_value
from sim.api.server import WriteRecord
from sim.api.types import (
    AllocationResult,
    Node,
    Pod,
    PodPhase,
    ResourceClaim,
    ResourceClass,
    controller_owner,
)
from sim.cluster.scheduler.nodetable import pod_requests
from sim.cluster.world import World

logger = logging.getLogger(__name__)

WORKLOAD_LABEL: Final = "sim.dra/workload"
"""Pod label naming the workload a pod belongs to (the `workload` column of `pods`)."""

HOSTNAME_LABEL: Final = "kubernetes.io/hostname"

USER_ACTOR: Final = "user"
"""Actor of writes made directly on the API server, outside any component's client."""

DeviceCount = Callable[[ResourceClaim], tuple[str, str, float] | None]
"""Returns (driver, node, devices) held by an allocated claim; node "" = not node-bound.

Devices are whole devices, or a fraction of one for a claim that takes a share of a device.
"""

_ADDED_EVENT: Final = "ADDED"
_DELETED_EVENT: Final = "DELETED"
_TERMINAL_PHASES: Final = frozenset({PodPhase.SUCCEEDED, PodPhase.FAILED})


class ClaimState(StrEnum):
    """The states of a ResourceClaim as its API object shows them."""

    PENDING = "Pending"
    ALLOCATED = "Allocated"
    RESERVED = "Reserved"
    DEALLOCATION_REQUESTED = "DeallocationRequested"
    DELETING = "Deleting"
    DELETED = "Deleted"


class PodState(StrEnum):
    """Pod states the tracker records besides `status.phase` values."""

    CREATED = "Created"
    BOUND = "Bound"
    DELETING = "Deleting"
    DELETED = "Deleted"


def claim_state(claim: ResourceClaim) -> ClaimState:
    """Return the state of a stored claim (never Deleted: that is its removal)."""
    if claim.metadata.deletion_timestamp is not None:
        return ClaimState.DELETING
    status = claim.status
    if status.allocation is None:
        return ClaimState.PENDING
    if status.reserved_for:
        return ClaimState.RESERVED
    if status.deallocation_requested:
        return ClaimState.DEALLOCATION_REQUESTED
    return ClaimState.ALLOCATED


def single_hostname(allocation: AllocationResult) -> str:
    """Return the node of `availableOnNodes` when it is `kubernetes.io/hostname In [node]`, else "".

    The selector must have one term with one expression on the hostname label
    and exactly one value. Anything else (nil, several nodes, other labels)
    means that the allocation is not bound to one node.
    """
    selector = allocation.available_on_nodes
    if selector is None or len(selector.node_selector_terms) != 1:
        return ""
    term = selector.node_selector_terms[0]
    if term.match_fields or len(term.match_expressions) != 1:
        return ""
    requirement = term.match_expressions[0]
    if (
        requirement.key != HOSTNAME_LABEL
        or requirement.operator != "In"
        or len(requirement.values) != 1
    ):
        return ""
    return requirement.values[0]


def one_device_per_claim(claim: ResourceClaim) -> tuple[str, str, float] | None:
    """Count one device of `status.driverName` per allocated claim, on its single node.

    This is the default `device_count` of `Tracker`, for driver models that do
    not report their devices: the node is `single_hostname` of the allocation
    ("" when the allocation is not bound to one node).
    """
    allocation = claim.status.allocation
    if allocation is None:
        return None
    return claim.status.driver_name, single_hostname(allocation), 1


@dataclass(slots=True)
class PodRecord:
    """The tracker's record of one pod (one row of the `pods` table).

    Times are simulated seconds of the first write that showed the change, NaN
    when it never happened or was not seen.
    """

    namespace: str
    name: str
    uid: str
    workload: str
    claims: int
    """Entries in `spec.resourceClaims`."""
    created_s: float = math.nan
    bound_s: float = math.nan
    running_s: float = math.nan
    finished_s: float = math.nan
    deleted_s: float = math.nan
    node: str = ""
    phase: str = PodPhase.PENDING
    deleting: bool = False
    requests: tuple[str, int, int] | None = None
    """(node, CPU millicores, memory bytes) counted as requested now; None when not counted."""


@dataclass(slots=True)
class ClaimRecord:
    """The tracker's record of one ResourceClaim (one row of the `claims` table)."""

    namespace: str
    name: str
    uid: str
    mode: str
    resource_class: str
    generated: bool
    """The claim's controller owner is a Pod (created from a template)."""
    driver: str = ""
    shareable: bool | None = None
    """`allocation.shareable` of the last allocation; None when never allocated."""
    created_s: float = math.nan
    first_allocated_s: float = math.nan
    deallocated_s: float = math.nan
    """Time of the last deallocation (allocation cleared)."""
    deleted_s: float = math.nan
    nodes: list[str] = field(default_factory=list)
    """Nodes of the allocations, in order of first allocation, without repeats."""
    max_consumers: int = 0
    allocations: int = 0
    deallocations: int = 0
    allocation: AllocationResult | None = None
    reserved: tuple[str, ...] = ()
    """UIDs in `reservedFor`, as last written."""
    state: str = ""
    usage: tuple[str, str, float] | None = None
    """(driver, node, devices) counted as in use now; None when nothing is counted."""


class Tracker:
    """Write hook that follows pods and ResourceClaims and feeds the recorder.

    Args:
        world: The run; the tracker reads its clock, `current_actor` and
            `current_reason`, and appends to its recorder.
        device_count: Returns (driver, node, devices) of an allocated claim, or
            None when the claim uses no devices; defaults to
            `one_device_per_claim`. Called once per change of a claim's
            allocation, from inside the write.
        capacity: Devices per (driver, node), node "" for devices not bound to
            one node; the denominators of device utilization.
        pools: Node pool of each node; nodes not listed (and node "") are in
            pool "".
    """

    def __init__(
        self,
        world: World,
        *,
        device_count: DeviceCount | None = None,
        capacity: Mapping[tuple[str, str], int] | None = None,
        pools: Mapping[str, str] | None = None,
    ) -> None:
        self.world = world
        self.recorder = world.recorder
        self.device_count: DeviceCount = device_count or one_device_per_claim
        self.capacity: dict[tuple[str, str], int] = dict(capacity or {})
        self.pools: dict[str, str] = dict(pools or {})
        self.pods: dict[str, PodRecord] = {}
        """Pod records by UID, in the order the pods were first seen."""
        self.claims: dict[str, ClaimRecord] = {}
        """Claim records by UID, in the order the claims were first seen."""
        self.node_allocatable: dict[str, tuple[int, int]] = {}
        """Allocatable (CPU millicores, memory bytes) of every node present now."""
        self.class_drivers: dict[str, str] = {}
        """`driverName` of every ResourceClass seen, by class name."""

    def start(self) -> None:
        """Read the Nodes and ResourceClasses stored now, then follow every write.

        Start the tracker before the workload: pods and claims that exist
        before `start` are only followed from their next write, with unknown
        creation times.
        """
        for node in self.world.api.list("Node").items:
            self._take_node(cast(Node, node))
        for resource_class in self.world.api.list("ResourceClass").items:
            self.class_drivers[resource_class.metadata.name] = cast(
                ResourceClass, resource_class
            ).driver_name
        self.world.add_write_hook(self.on_write)

    def pool_of(self, node: str) -> str:
        """Return the node pool of a node ("" when not listed)."""
        return self.pools.get(node, "")

    def on_write(self, record: WriteRecord) -> None:
        """Update the records of the written object (the write hook)."""
        kind = record.kind
        if kind == "Pod":
            self._on_pod(record)
        elif kind == "ResourceClaim":
            self._on_claim(record)
        elif kind == "Node":
            self._on_node(record)
        elif kind == "ResourceClass":
            self._on_class(record)

    # ----------------------------------------------------------------------------------
    # Pods
    # ----------------------------------------------------------------------------------

    def _on_pod(self, record: WriteRecord) -> None:
        pod = cast(Pod, record.object)
        meta = pod.metadata
        now = self.world.now
        entry = self.pods.get(meta.uid)
        if entry is None:
            entry = PodRecord(
                meta.namespace,
                meta.name,
                meta.uid,
                meta.labels.get(WORKLOAD_LABEL, ""),
                len(pod.spec.resource_claims),
            )
            self.pods[meta.uid] = entry
            if record.event_type == _ADDED_EVENT:
                entry.created_s = now
                self._pod_transition(entry, PodState.CREATED)

        node = pod.spec.node_name
        if node and not entry.node:
            entry.node = node
            entry.bound_s = now
            self._pod_transition(entry, PodState.BOUND)

        phase = pod.status.phase or PodPhase.PENDING
        if phase != entry.phase:
            entry.phase = phase
            if phase == PodPhase.RUNNING and math.isnan(entry.running_s):
                entry.running_s = now
            if phase in _TERMINAL_PHASES and math.isnan(entry.finished_s):
                entry.finished_s = now
            self._pod_transition(entry, phase)

        removed = record.event_type == _DELETED_EVENT
        if meta.deletion_timestamp is not None and not entry.deleting and not removed:
            entry.deleting = True
            self._pod_transition(entry, PodState.DELETING)

        # kube-scheduler counts the requests of bound pods until they finish or are removed.
        requested = bool(entry.node) and phase not in _TERMINAL_PHASES and not removed
        if requested and entry.requests is None:
            self._count_requests(entry, pod, now)
        elif not requested and entry.requests is not None:
            held_node, cpu, memory = entry.requests
            self.recorder.pod_request(now, held_node, -cpu, -memory, entry.uid)
            entry.requests = None

        if removed:
            entry.deleted_s = now
            self._pod_transition(entry, PodState.DELETED)

    def _count_requests(self, entry: PodRecord, pod: Pod, now: float) -> None:
        try:
            cpu, memory = pod_requests(pod)
        except QuantityError as error:
            logger.warning(
                "pod %s/%s: requests not counted in CPU/memory utilization: %s",
                entry.namespace,
                entry.name,
                error,
            )
            cpu = memory = 0
        entry.requests = (entry.node, cpu, memory)
        self.recorder.pod_request(now, entry.node, cpu, memory, entry.uid)

    def _pod_transition(self, entry: PodRecord, state: str) -> None:
        self.recorder.write_transition(
            self.world.now,
            "Pod",
            entry.namespace,
            entry.name,
            entry.uid,
            state,
            self.world.current_actor or USER_ACTOR,
            self.world.current_reason,
        )

    # ----------------------------------------------------------------------------------
    # ResourceClaims
    # ----------------------------------------------------------------------------------

    def _on_claim(self, record: WriteRecord) -> None:
        claim = cast(ResourceClaim, record.object)
        meta = claim.metadata
        now = self.world.now
        entry = self.claims.get(meta.uid)
        if entry is None:
            owner = controller_owner(claim)
            class_name = claim.spec.resource_class_name
            entry = ClaimRecord(
                meta.namespace,
                meta.name,
                meta.uid,
                claim.mode,
                class_name,
                owner is not None and owner.kind == "Pod",
                driver=self.class_drivers.get(class_name, ""),
            )
            self.claims[meta.uid] = entry
            if record.event_type == _ADDED_EVENT:
                entry.created_s = now

        removed = record.event_type == _DELETED_EVENT
        self._follow_allocation(entry, claim, now, removed)

        reserved = tuple(reference.uid for reference in claim.status.reserved_for)
        consumers_changed = reserved != entry.reserved
        entry.reserved = reserved
        entry.max_consumers = max(entry.max_consumers, len(reserved))

        state = ClaimState.DELETED if removed else claim_state(claim)
        if state != entry.state or (state == ClaimState.RESERVED and consumers_changed):
            entry.state = state
            self.recorder.write_transition(
                now,
                "ResourceClaim",
                entry.namespace,
                entry.name,
                entry.uid,
                state,
                self.world.current_actor or USER_ACTOR,
                self.world.current_reason,
            )
        if removed:
            entry.deleted_s = now

    def _follow_allocation(
        self, entry: ClaimRecord, claim: ResourceClaim, now: float, removed: bool
    ) -> None:
        """Count allocations and deallocations and keep the device use of the claim current."""
        allocation = claim.status.allocation
        previous = entry.allocation
        if allocation is previous or (
            allocation is not None and previous is not None and allocation == previous
        ):
            if removed:
                # Removed while still allocated (a finalizer was dropped without a
                # deallocation): the devices are no longer counted, but no
                # deallocation is recorded because no driver made one.
                self._release_devices(entry, now)
            return

        entry.allocation = allocation
        if previous is not None and allocation is None:
            entry.deallocations += 1
            entry.deallocated_s = now
        if previous is None and allocation is not None:
            entry.allocations += 1
            if math.isnan(entry.first_allocated_s):
                entry.first_allocated_s = now
        self._release_devices(entry, now)
        if allocation is None:
            return

        entry.shareable = allocation.shareable
        entry.driver = claim.status.driver_name or entry.driver
        usage = self.device_count(claim)
        if usage is not None:
            driver, node, devices = usage
            if node and node not in entry.nodes:
                entry.nodes.append(node)
            if not removed and devices:
                entry.usage = usage
                self.recorder.device_use(now, driver, node, devices, entry.uid)

    def _release_devices(self, entry: ClaimRecord, now: float) -> None:
        if entry.usage is None:
            return
        driver, node, devices = entry.usage
        self.recorder.device_use(now, driver, node, -devices, entry.uid)
        entry.usage = None

    # ----------------------------------------------------------------------------------
    # Nodes and classes
    # ----------------------------------------------------------------------------------

    def _on_node(self, record: WriteRecord) -> None:
        node = cast(Node, record.object)
        if record.event_type == _DELETED_EVENT:
            self.node_allocatable.pop(node.metadata.name, None)
        else:
            self._take_node(node)

    def _take_node(self, node: Node) -> None:
        name = node.metadata.name
        allocatable = node.status.allocatable
        try:
            cpu = milli_value(allocatable["cpu"]) if "cpu" in allocatable else 0
            memory = int_value(allocatable["memory"]) if "memory" in allocatable else 0
        except QuantityError as error:
            logger.warning(
                "node %s: allocatable not counted in CPU/memory utilization: %s", name, error
            )
            cpu = memory = 0
        self.node_allocatable[name] = (cpu, memory)

    def _on_class(self, record: WriteRecord) -> None:
        resource_class = cast(ResourceClass, record.object)
        name = resource_class.metadata.name
        if record.event_type == _DELETED_EVENT:
            self.class_drivers.pop(name, None)
        else:
            self.class_drivers[name] = resource_class.driver_name
