"""Stateful property tests: random request sequences on claims keep the API server consistent.

A hypothesis state machine sends creates, updates (fresh and stale), status
updates with random and often invalid statuses, merge and JSON patches,
deletes and finalizer removals. After every step it checks, independently of
`sim.api.validation`, that every stored claim obeys the ResourceClaim status
rules, that the store equals a model of the expected objects, that
resourceVersions only grow, and that watch events rebuild the store.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sim.api import (
    AllocationResult,
    AlreadyExists,
    APIServer,
    Conflict,
    Invalid,
    NotFound,
    ObjectMeta,
    ResourceClaim,
    ResourceClaimConsumerReference,
    ResourceClaimSpec,
    ResourceClaimStatus,
    ResourceHandle,
    TopLevelObject,
    WatchEvent,
)
from sim.api.codec import to_dict

DRIVER = "gpu.example.com"
FINALIZER = f"{DRIVER}/deletion-protection"
NAMESPACE = "default"
MAX_RESERVED_FOR = 32  # ResourceClaimReservedForMaxSize in resource.k8s.io/v1alpha2

claim_names = st.sampled_from(["a", "b", "c"])
consumer_names = st.sampled_from([f"p{i}" for i in range(5)])


def consumer(name: str) -> ResourceClaimConsumerReference:
    return ResourceClaimConsumerReference(resource="pods", name=name, uid=f"uid-{name}")


@st.composite
def claim_statuses(draw: st.DrawFn) -> ResourceClaimStatus:
    """Random statuses, valid or not: any mix of allocation, consumers and flags."""
    has_allocation = draw(st.booleans())
    allocation = (
        AllocationResult(
            resource_handles=(ResourceHandle(driver_name=DRIVER, data="dev-0"),),
            shareable=draw(st.booleans()),
        )
        if has_allocation
        else None
    )
    if draw(st.integers(0, 9)) == 0:
        # Around the reservedFor limit, with distinct consumers.
        reserved = tuple(consumer(f"many-{i}") for i in range(draw(st.integers(31, 34))))
    else:
        reserved = tuple(consumer(n) for n in draw(st.lists(consumer_names, max_size=3)))
    return ResourceClaimStatus(
        allocation=allocation,
        reserved_for=reserved,
        deallocation_requested=draw(st.booleans()),
        driver_name=draw(st.sampled_from(["", DRIVER])),
    )


def status_violations(claim: ResourceClaim) -> list[str]:
    """Broken ResourceClaim status rules, checked without sim.api.validation."""
    status = claim.status
    problems = []
    uids = [ref.uid for ref in status.reserved_for]
    if len(uids) > MAX_RESERVED_FOR:
        problems.append(f"reservedFor has {len(uids)} entries")
    if len(set(uids)) != len(uids):
        problems.append("reservedFor has duplicate uids")
    if uids and status.allocation is None:
        problems.append("reservedFor without allocation")
    if status.allocation is not None and not status.allocation.shareable and len(uids) > 1:
        problems.append("not shareable but reserved for several consumers")
    if status.deallocation_requested and status.allocation is None:
        problems.append("deallocationRequested without allocation")
    if status.allocation is not None and not status.driver_name:
        problems.append("allocation without driverName")
    return problems


def apply_events(events: Any) -> dict[str, TopLevelObject]:
    """Rebuild a store from watch events, keyed by name."""
    store: dict[str, TopLevelObject] = {}
    for event in events:
        if event.type == "DELETED":
            store.pop(event.object.metadata.name, None)
        else:
            store[event.object.metadata.name] = event.object
    return store


class ClaimLifecycle(RuleBasedStateMachine):
    """Random writes to a few claims, compared against a model of what must be stored."""

    def __init__(self) -> None:
        super().__init__()
        self.server = APIServer(seed=3)
        self.model: dict[str, ResourceClaim] = {}
        self.seen: dict[str, list[ResourceClaim]] = {}  # every version returned, oldest first
        self.events: list[WatchEvent] = []
        self.server.watch("ResourceClaim", callback=self.events.append)
        self.last_rv = self.server.resource_version

    # ----------------------------------------------------------------------------------
    # Helpers
    # ----------------------------------------------------------------------------------

    def remember(self, claim: ResourceClaim) -> None:
        self.model[claim.metadata.name] = claim
        self.seen.setdefault(claim.metadata.name, []).append(claim)

    def expect_write(self, wrote: bool) -> None:
        current = self.server.resource_version
        if wrote:
            assert current > self.last_rv
        else:
            assert current == self.last_rv
        self.last_rv = current

    def store_result(self, name: str, result: TopLevelObject | None, before: int) -> None:
        """Record a successful write's result: a stored object, or None when removed."""
        stored = self.server.list("ResourceClaim").items
        if result is None or name not in {c.metadata.name for c in stored}:
            self.model.pop(name, None)
        else:
            assert isinstance(result, ResourceClaim)
            self.remember(result)
        self.expect_write(self.server.resource_version != before)

    # ----------------------------------------------------------------------------------
    # Rules
    # ----------------------------------------------------------------------------------

    @rule(name=claim_names, protected=st.booleans())
    def create(self, name: str, protected: bool) -> None:
        claim = ResourceClaim(
            metadata=ObjectMeta(
                name=name, namespace=NAMESPACE, finalizers=(FINALIZER,) if protected else ()
            ),
            spec=ResourceClaimSpec(resource_class_name="gpu"),
        )
        try:
            created = self.server.create(claim)
        except AlreadyExists:
            assert name in self.model
            self.expect_write(False)
            return
        assert name not in self.model
        self.remember(created)
        self.expect_write(True)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), stale=st.booleans(), value=st.sampled_from(["x", "y"]))
    def update_labels(self, data: st.DataObject, stale: bool, value: str) -> None:
        name = data.draw(st.sampled_from(sorted(self.model)))
        current = self.model[name]
        sent = self.seen[name][0] if stale else current
        before = self.server.resource_version
        try:
            result = self.server.update(sent.with_meta(labels={"v": value}))
        except Conflict:
            assert sent.metadata.resource_version != current.metadata.resource_version
            self.expect_write(False)
            return
        except NotFound:
            raise AssertionError(f"claim {name} is in the model but not stored") from None
        assert sent.metadata.resource_version == current.metadata.resource_version
        self.store_result(name, result, before)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), status=claim_statuses())
    def update_status(self, data: st.DataObject, status: ResourceClaimStatus) -> None:
        name = data.draw(st.sampled_from(sorted(self.model)))
        self.update_status_to(name, status)

    def update_status_to(self, name: str, status: ResourceClaimStatus) -> None:
        before = self.server.resource_version
        try:
            result = self.server.update_status(
                self.model[name].model_copy(update={"status": status})
            )
        except Invalid:
            self.expect_write(False)
            return
        assert result.status == status
        self.store_result(name, result, before)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), shareable=st.booleans(), who=consumer_names, step=st.integers(0, 3))
    def driver_and_scheduler_step(
        self, data: st.DataObject, shareable: bool, who: str, step: int
    ) -> None:
        """A status change that a driver or the scheduler would make, mostly valid."""
        name = data.draw(st.sampled_from(sorted(self.model)))
        status = self.model[name].status
        if step == 0:  # driver allocates
            allocation = AllocationResult(
                resource_handles=(ResourceHandle(driver_name=DRIVER, data="dev-0"),),
                shareable=shareable,
            )
            status = status.model_copy(update={"allocation": allocation, "driver_name": DRIVER})
        elif step == 1:  # scheduler reserves for a pod
            status = status.model_copy(
                update={"reserved_for": (*status.reserved_for, consumer(who))}
            )
        elif step == 2:  # scheduler or controller requests deallocation of an unused claim
            status = status.model_copy(update={"reserved_for": (), "deallocation_requested": True})
        else:  # driver deallocates
            status = ResourceClaimStatus()
        self.update_status_to(name, status)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), status=claim_statuses())
    def merge_patch_status(self, data: st.DataObject, status: ResourceClaimStatus) -> None:
        name = data.draw(st.sampled_from(sorted(self.model)))
        wire = to_dict(self.model[name].model_copy(update={"status": status})).get("status", {})
        before = self.server.resource_version
        try:
            result = self.server.patch(
                "ResourceClaim", name, NAMESPACE, {"status": wire}, subresource="status"
            )
        except Invalid:
            self.expect_write(False)
            return
        self.store_result(name, result, before)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), who=consumer_names, remove=st.booleans())
    def json_patch_reserved_for(self, data: st.DataObject, who: str, remove: bool) -> None:
        name = data.draw(st.sampled_from(sorted(self.model)))
        if remove:
            operations: list[dict[str, Any]] = [{"op": "remove", "path": "/status/reservedFor/0"}]
        else:
            value = {"resource": "pods", "name": who, "uid": f"uid-{who}"}
            operations = [{"op": "add", "path": "/status/reservedFor/-", "value": value}]
        before = self.server.resource_version
        try:
            result = self.server.patch(
                "ResourceClaim",
                name,
                NAMESPACE,
                operations,
                patch_type="json",
                subresource="status",
            )
        except Invalid:
            self.expect_write(False)
            return
        self.store_result(name, result, before)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.model)))
        held = bool(self.model[name].metadata.finalizers)
        already_deleting = self.model[name].metadata.deletion_timestamp is not None
        before = self.server.resource_version
        result = self.server.delete("ResourceClaim", name, NAMESPACE)
        assert (result is None) == (not held)
        if result is not None:
            assert result.metadata.deletion_timestamp is not None
        self.store_result(name, result, before)
        if already_deleting:
            assert self.server.resource_version == before

    @precondition(lambda self: any(c.metadata.finalizers for c in self.model.values()))
    @rule(data=st.data())
    def remove_finalizer(self, data: st.DataObject) -> None:
        held = sorted(n for n, c in self.model.items() if c.metadata.finalizers)
        name = data.draw(st.sampled_from(held))
        deleting = self.model[name].metadata.deletion_timestamp is not None
        before = self.server.resource_version
        result = self.server.update(self.model[name].with_meta(finalizers=()))
        self.store_result(name, result, before)
        assert (name not in self.model) == deleting

    # ----------------------------------------------------------------------------------
    # Invariants
    # ----------------------------------------------------------------------------------

    @invariant()
    def stored_claims_obey_status_rules(self) -> None:
        for claim in self.server.list("ResourceClaim").items:
            assert isinstance(claim, ResourceClaim)
            assert status_violations(claim) == [], claim.metadata.name

    @invariant()
    def store_matches_model(self) -> None:
        stored = {c.metadata.name: c for c in self.server.list("ResourceClaim").items}
        assert stored == self.model

    @invariant()
    def resource_versions_increase(self) -> None:
        revisions = [e.resource_version for e in self.events]
        assert revisions == sorted(set(revisions))
        for claim in self.model.values():
            assert int(claim.metadata.resource_version) <= self.server.resource_version

    @invariant()
    def watch_events_rebuild_store(self) -> None:
        assert apply_events(self.events) == self.model
        replay = self.server.watch("ResourceClaim", resource_version="1")
        assert list(replay.events) == self.events
        replay.stop()
        snapshot = self.server.watch("ResourceClaim", resource_version="0")
        assert apply_events(snapshot.events) == self.model
        snapshot.stop()


ClaimLifecycle.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestClaimLifecycle = ClaimLifecycle.TestCase
