"""Rules that hold in every correct DRA cluster, checked after every API write.

A bug in a component model (or in a driver model) often shows up long after
the write that caused it, as a pod that should not run or a throughput number
that is too good. `InvariantChecker` moves the failure to the write itself:
it receives every committed write through the world's write hooks and raises
`SimulationInvariantError` with the rule, the object and the simulated time
as soon as a rule breaks.

The rules:

* `device-allocated-once`: no device is allocated to two claims at once.
  Devices come from callables (`DeviceSource`) because only driver models know
  what an opaque resource handle stands for; `model_devices` builds one from
  models that implement `devices_of`.
* `reserved-for-max-size`, `reserved-for-exclusive`, `reserved-for-unique`:
  `status.reservedFor` has at most 32 entries, at most one when the
  allocation is not shareable, and no UID twice.
* `reservation-while-deallocating`: no consumer is added to `reservedFor`
  while deallocation is requested or the claim is being deleted.
* `running-pod-claim-allocated`, `running-pod-claim-reserved`,
  `running-pod-claim-on-node`: a Running pod's claims exist, are allocated,
  list the pod in `reservedFor` and (checked when the pod becomes Running)
  are available on the pod's node.

The API server's validation already rejects writes that break the
`reserved-for-*` rules and `reservation-while-deallocating`, so those checks
catch validation defects only. The checker reads the server directly, without
latency, and is attached only when asked (`InvariantChecker.attach`), because
the device check costs one call of every device source per claim write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import NoReturn, Protocol

from sim.api.errors import NotFound
from sim.api.selectors import SelectorError, compile_node_selector
from sim.api.server import DELETED, APIServer, WriteRecord
from sim.api.types import Pod, PodPhase, ResourceClaim, TopLevelObject
from sim.api.validation.resource import RESOURCE_CLAIM_RESERVED_FOR_MAX_SIZE
from sim.cluster.claims import ClaimNameError, resolve_claim_name
from sim.cluster.world import SimulationInvariantError, World

logger = logging.getLogger(__name__)

DeviceId = tuple[str, str, str]
"""A device as (driver name, node name or "" when not node-bound, device name)."""

DeviceSource = Callable[[], Mapping[str, Iterable[DeviceId]]]
"""Returns the devices allocated to every claim: claim UID -> devices."""


class Rule(StrEnum):
    """The rules `InvariantChecker` enforces (the `rule` of the error it raises)."""

    DEVICE_ALLOCATED_ONCE = "device-allocated-once"
    RESERVED_FOR_MAX_SIZE = "reserved-for-max-size"
    RESERVED_FOR_EXCLUSIVE = "reserved-for-exclusive"
    RESERVED_FOR_UNIQUE = "reserved-for-unique"
    RESERVATION_WHILE_DEALLOCATING = "reservation-while-deallocating"
    RUNNING_POD_CLAIM_ALLOCATED = "running-pod-claim-allocated"
    RUNNING_POD_CLAIM_RESERVED = "running-pod-claim-reserved"
    RUNNING_POD_CLAIM_ON_NODE = "running-pod-claim-on-node"


# --------------------------------------------------------------------------------------
# Device sources
# --------------------------------------------------------------------------------------


class DeviceModel(Protocol):
    """The part of a driver model that reports the devices of a claim."""

    def devices_of(self, claim_uid: str) -> tuple[str, list[str]] | None:
        """Return the node and device names of an allocated claim, or None."""
        ...


class DriverWithModel(Protocol):
    """A driver controller with its model (`sim.cluster.driver.DriverController`)."""

    @property
    def model(self) -> DeviceModel:
        """The driver model that allocates the driver's claims."""
        ...


def model_devices(api: APIServer, models: Mapping[str, DeviceModel]) -> DeviceSource:
    """Build a device source from driver models (driver name -> model).

    Every claim stored in the API server is looked up in every model, because
    a model's own record can differ from the claim's status (a model allocated
    the claim, but the status write failed).
    """

    def devices() -> dict[str, list[DeviceId]]:
        result: dict[str, list[DeviceId]] = {}
        for claim in api.list("ResourceClaim").items:
            uid = claim.metadata.uid
            for driver, model in models.items():
                found = model.devices_of(uid)
                if found is None:
                    continue
                node, names = found
                result.setdefault(uid, []).extend((driver, node, name) for name in names)
        return result

    return devices


# --------------------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------------------


def _describe(obj: TopLevelObject) -> str:
    kind = obj.KIND or obj.kind
    return f"{kind} {obj.key}"


class InvariantChecker:
    """Checks the DRA rules after every committed API write and raises on the first violation.

    The error (`SimulationInvariantError`) propagates out of the API call that
    made the write, so the SimPy run stops inside the component that wrote.
    """

    def __init__(self, world: World, device_sources: Iterable[DeviceSource] = ()) -> None:
        self.world = world
        self.api = world.api
        self.device_sources: list[DeviceSource] = list(device_sources)
        self.writes_checked = 0
        # Claim UID -> consumer UIDs in reservedFor after the last write of that claim.
        self._reserved: dict[str, frozenset[str]] = {}
        # Claim UID -> "namespace/name", to name the claims of a device conflict.
        self._claim_keys: dict[str, str] = {}
        # Running pods (UID -> latest object) and the claims they use ("ns/name" -> pod UIDs).
        self._running: dict[str, Pod] = {}
        self._pods_by_claim: dict[str, set[str]] = {}
        self._claims_of_pod: dict[str, set[str]] = {}
        self._attached = False

    @classmethod
    def for_drivers(cls, world: World, drivers: Mapping[str, DriverWithModel]) -> InvariantChecker:
        """Build a checker whose device check queries these drivers' models (name -> driver)."""
        models = {name: driver.model for name, driver in drivers.items()}
        return cls(world, [model_devices(world.api, models)] if models else [])

    def add_device_source(self, source: DeviceSource) -> None:
        """Add a callable that reports the devices allocated to each claim."""
        self.device_sources.append(source)

    def attach(self) -> None:
        """Start checking: learn the current claims and Running pods, then hook into writes."""
        if self._attached:
            return
        for claim in self.api.list("ResourceClaim").items:
            assert isinstance(claim, ResourceClaim)
            self._remember_claim(claim)
        for pod in self.api.list("Pod").items:
            assert isinstance(pod, Pod)
            if pod.status.phase == PodPhase.RUNNING:
                self._index_running(pod)
        self.world.add_write_hook(self.check_write)
        self._attached = True

    def detach(self) -> None:
        """Stop checking."""
        if self.check_write in self.world.write_hooks:
            self.world.write_hooks.remove(self.check_write)
        self._attached = False

    def check_write(self, record: WriteRecord) -> None:
        """Check the rules that the committed write can affect.

        Raises:
            SimulationInvariantError: a rule is broken after this write.
        """
        self.writes_checked += 1
        obj = record.object
        if isinstance(obj, ResourceClaim):
            self._check_claim_write(obj, deleted=record.event_type == DELETED)
        elif isinstance(obj, Pod):
            self._check_pod_write(obj, deleted=record.event_type == DELETED)

    # -- claims ----------------------------------------------------------------------------

    def _check_claim_write(self, claim: ResourceClaim, *, deleted: bool) -> None:
        uid = claim.metadata.uid
        if deleted:
            self._reserved.pop(uid, None)
            self._claim_keys.pop(uid, None)
        else:
            self._check_reserved_for(claim)
            self._remember_claim(claim)
        for pod_uid in sorted(self._pods_by_claim.get(claim.key, ())):
            self._check_running_pod(self._running[pod_uid], on_node=False)
        self._check_devices(claim)

    def _check_reserved_for(self, claim: ResourceClaim) -> None:
        status = claim.status
        consumers = [ref.uid for ref in status.reserved_for]
        if len(consumers) > RESOURCE_CLAIM_RESERVED_FOR_MAX_SIZE:
            self._fail(
                Rule.RESERVED_FOR_MAX_SIZE,
                claim,
                f"reservedFor has {len(consumers)} entries, at most "
                f"{RESOURCE_CLAIM_RESERVED_FOR_MAX_SIZE} are allowed",
            )
        duplicates = sorted({uid for uid in consumers if consumers.count(uid) > 1})
        if duplicates:
            self._fail(
                Rule.RESERVED_FOR_UNIQUE,
                claim,
                f"reservedFor lists consumer UID(s) {', '.join(duplicates)} more than once",
            )
        allocation = status.allocation
        if allocation is not None and not allocation.shareable and len(consumers) > 1:
            self._fail(
                Rule.RESERVED_FOR_EXCLUSIVE,
                claim,
                f"the allocation is not shareable but reservedFor has {len(consumers)} entries",
            )
        previous = self._reserved.get(claim.metadata.uid, frozenset())
        added = sorted(set(consumers) - previous)
        if added and (claim.deleting or status.deallocation_requested):
            cause = "the claim is being deleted" if claim.deleting else "deallocation is requested"
            self._fail(
                Rule.RESERVATION_WHILE_DEALLOCATING,
                claim,
                f"consumer(s) {', '.join(added)} added to reservedFor while {cause}",
            )

    def _remember_claim(self, claim: ResourceClaim) -> None:
        uid = claim.metadata.uid
        self._reserved[uid] = frozenset(ref.uid for ref in claim.status.reserved_for)
        self._claim_keys[uid] = claim.key

    def _check_devices(self, written: ResourceClaim) -> None:
        owners: dict[DeviceId, str] = {}
        for source in self.device_sources:
            for claim_uid, devices in source().items():
                for device in devices:
                    other = owners.setdefault(device, claim_uid)
                    if other == claim_uid:
                        continue
                    driver, node, name = device
                    first, second = sorted(
                        (other, claim_uid), key=lambda uid: uid != written.metadata.uid
                    )
                    self._fail_named(
                        Rule.DEVICE_ALLOCATED_ONCE,
                        f"ResourceClaim {self._claim_keys.get(first, first)}",
                        f"device {name!r} of driver {driver} on node {node or '(none)'} is "
                        f"allocated to claim {self._claim_keys.get(first, first)} and to claim "
                        f"{self._claim_keys.get(second, second)}",
                    )

    # -- pods ------------------------------------------------------------------------------

    def _check_pod_write(self, pod: Pod, *, deleted: bool) -> None:
        uid = pod.metadata.uid
        was_running = uid in self._running
        self._unindex_running(uid)
        if deleted or pod.status.phase != PodPhase.RUNNING:
            return
        self._index_running(pod)
        self._check_running_pod(pod, on_node=not was_running)

    def _index_running(self, pod: Pod) -> None:
        uid = pod.metadata.uid
        self._running[uid] = pod
        keys = set()
        for pod_claim in pod.spec.resource_claims:
            try:
                resolved = resolve_claim_name(pod, pod_claim, legacy_names=self._legacy_names)
            except ClaimNameError:
                continue
            if resolved is not None:
                keys.add(f"{pod.metadata.namespace}/{resolved.claim_name}")
        self._claims_of_pod[uid] = keys
        for key in keys:
            self._pods_by_claim.setdefault(key, set()).add(uid)

    def _unindex_running(self, uid: str) -> None:
        self._running.pop(uid, None)
        for key in self._claims_of_pod.pop(uid, ()):
            pods = self._pods_by_claim.get(key)
            if pods is not None:
                pods.discard(uid)
                if not pods:
                    del self._pods_by_claim[key]

    @property
    def _legacy_names(self) -> bool:
        return not self.world.version_at_least(28)

    def _check_running_pod(self, pod: Pod, *, on_node: bool) -> None:
        """Check a Running pod's claims; `on_node` adds the check of availableOnNodes."""
        namespace = pod.metadata.namespace
        for pod_claim in pod.spec.resource_claims:
            try:
                resolved = resolve_claim_name(pod, pod_claim, legacy_names=self._legacy_names)
            except ClaimNameError as error:
                self._fail(Rule.RUNNING_POD_CLAIM_ALLOCATED, pod, str(error))
            if resolved is None:
                continue
            try:
                claim = self.api.get("ResourceClaim", resolved.claim_name, namespace)
            except NotFound:
                self._fail(
                    Rule.RUNNING_POD_CLAIM_ALLOCATED,
                    pod,
                    f"claim {namespace}/{resolved.claim_name} does not exist",
                )
            assert isinstance(claim, ResourceClaim)
            allocation = claim.status.allocation
            if allocation is None:
                self._fail(
                    Rule.RUNNING_POD_CLAIM_ALLOCATED,
                    pod,
                    f"claim {claim.key} is not allocated",
                )
            if not claim.reserved_for_uid(pod.metadata.uid):
                self._fail(
                    Rule.RUNNING_POD_CLAIM_RESERVED,
                    pod,
                    f"claim {claim.key} is not reserved for the pod",
                )
            if on_node:
                self._check_on_node(pod, claim)

    def _check_on_node(self, pod: Pod, claim: ResourceClaim) -> None:
        allocation = claim.status.allocation
        assert allocation is not None
        node_name = pod.spec.node_name
        try:
            node = self.api.get("Node", node_name)
            labels = node.metadata.labels
        except NotFound:
            # NOTE: a missing Node object is matched with no labels, by name only.
            labels = {}
        try:
            matches = compile_node_selector(allocation.available_on_nodes).matches(
                labels, node_name
            )
        except SelectorError as error:
            self._fail(
                Rule.RUNNING_POD_CLAIM_ON_NODE,
                pod,
                f"availableOnNodes of claim {claim.key} cannot be evaluated: {error}",
            )
        if not matches:
            self._fail(
                Rule.RUNNING_POD_CLAIM_ON_NODE,
                pod,
                f"claim {claim.key} is not available on node {node_name!r}",
            )

    # -- errors ----------------------------------------------------------------------------

    def _fail(self, rule: Rule, obj: TopLevelObject, detail: str) -> NoReturn:
        self._fail_named(rule, _describe(obj), detail)

    def _fail_named(self, rule: Rule, obj: str, detail: str) -> NoReturn:
        logger.error("invariant %s broken by %s at t=%.6f s: %s", rule, obj, self.world.now, detail)
        raise SimulationInvariantError(str(rule), obj, self.world.now, detail)
