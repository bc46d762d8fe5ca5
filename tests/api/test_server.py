"""Behaviour of the in-memory API server, request by request, against kube-apiserver's rules."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import uuid
from typing import Any

import pytest

from sim.api import (
    AllocationResult,
    AlreadyExists,
    APIServer,
    BadRequest,
    Conflict,
    GenericObject,
    Gone,
    Invalid,
    Node,
    NodeStatus,
    NotFound,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodSchedulingContext,
    PodSchedulingContextSpec,
    PodSpec,
    PodStatus,
    ResourceClaim,
    ResourceClaimConsumerReference,
    ResourceClaimSpec,
    ResourceClaimStatus,
    ResourceClass,
    ResourceHandle,
    TopLevelObject,
    WatchEvent,
    WriteRecord,
)
from sim.api.server import (
    FINALIZER_FOREGROUND_DELETION,
    FINALIZER_ORPHAN,
    format_timestamp,
    json_patch,
    merge_patch,
    parse_timestamp,
)

DRIVER = "gpu.example.com"
FINALIZER = f"{DRIVER}/deletion-protection"
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# --------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------


def make_claim(name: str = "claim", namespace: str = "default", **meta: Any) -> ResourceClaim:
    return ResourceClaim(
        metadata=ObjectMeta(name=name, namespace=namespace, **meta),
        spec=ResourceClaimSpec(resource_class_name="gpu"),
    )


def make_pod(name: str = "pod", namespace: str = "default", **meta: Any) -> Pod:
    return Pod(metadata=ObjectMeta(name=name, namespace=namespace, **meta))


def allocated(shareable: bool = False, *consumers: str) -> ResourceClaimStatus:
    return ResourceClaimStatus(
        driver_name=DRIVER,
        allocation=AllocationResult(
            resource_handles=(ResourceHandle(driver_name=DRIVER, data="gpu-0"),),
            shareable=shareable,
        ),
        reserved_for=tuple(
            ResourceClaimConsumerReference(resource="pods", name=c, uid=f"uid-{c}")
            for c in consumers
        ),
    )


def owned_by(
    owner: TopLevelObject, *, block: bool = True, controller: bool = True
) -> OwnerReference:
    return OwnerReference(
        api_version="v1",
        kind=owner.KIND or owner.kind,
        name=owner.metadata.name,
        uid=owner.metadata.uid,
        controller=controller,
        block_owner_deletion=block,
    )


def event_summary(events: Any) -> list[tuple[str, str, int]]:
    return [(e.type, e.object.metadata.name, e.resource_version) for e in events]


def names(objects: Any) -> list[str]:
    return [obj.metadata.name for obj in objects]


class Clock:
    """A settable simulated clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> APIServer:
    return APIServer(seed=1)


@pytest.fixture
def records() -> list[WriteRecord]:
    return []


@pytest.fixture
def recorded(records: list[WriteRecord]) -> APIServer:
    return APIServer(seed=1, on_write=records.append)


# --------------------------------------------------------------------------------------
# Package and timestamps
# --------------------------------------------------------------------------------------


def test_import_does_not_load_simpy() -> None:
    code = "import sys, sim.api; print('simpy' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "2024-01-01T00:00:00Z"),
        (61.9, "2024-01-01T00:01:01Z"),
        (86400, "2024-01-02T00:00:00Z"),
    ],
    ids=["epoch", "truncates-fraction", "next-day"],
)
def test_timestamp_round_trip(seconds: float, text: str) -> None:
    assert format_timestamp(seconds) == text
    assert parse_timestamp(text) == int(seconds)


def test_empty_store_is_at_revision_one(server: APIServer) -> None:
    assert server.resource_version == 1
    assert server.list("ResourceClaim").resource_version == 1


# --------------------------------------------------------------------------------------
# Create
# --------------------------------------------------------------------------------------


def test_create_fills_server_fields() -> None:
    clock = Clock()
    clock.now = 61.7
    server = APIServer(clock=clock)

    created = server.create(make_claim(namespace=""))

    meta = created.metadata
    assert meta.namespace == "default"
    assert uuid.UUID(meta.uid).version == 4
    assert meta.resource_version == "2"
    assert meta.generation == 1
    assert meta.creation_timestamp == "2024-01-01T00:01:01Z"
    assert created.spec.allocation_mode == "WaitForFirstConsumer"
    assert server.get("ResourceClaim", "claim") is created


def test_create_ignores_client_server_fields(server: APIServer) -> None:
    sent = make_claim(
        uid="client-uid",
        resource_version="99",
        generation=7,
        deletion_timestamp="2020-01-01T00:00:00Z",
    )
    created = server.create(sent)
    assert created.metadata.uid != "client-uid"
    assert created.metadata.resource_version == "2"
    assert created.metadata.generation == 1
    assert created.metadata.deletion_timestamp is None


def test_create_generate_name(server: APIServer) -> None:
    first = server.create(make_claim(name="", generate_name="pod-gpu-"))
    second = server.create(make_claim(name="", generate_name="pod-gpu-"))

    for created in (first, second):
        assert re.fullmatch(f"pod-gpu-[{NAME_ALPHABET}]{{5}}", created.metadata.name)
        assert created.metadata.generate_name == "pod-gpu-"
    assert first.metadata.name != second.metadata.name


def test_generate_name_is_deterministic_per_seed() -> None:
    def generated(seed: int) -> list[str]:
        server = APIServer(seed=seed)
        claims = [server.create(make_claim(name="", generate_name="c-")) for _ in range(3)]
        return [c.metadata.uid + c.metadata.name for c in claims]

    assert generated(5) == generated(5)
    assert generated(5) != generated(6)


def test_generate_name_truncates_long_prefix(server: APIServer) -> None:
    created = server.create(make_claim(name="", generate_name="a" * 70))
    assert len(created.metadata.name) == 63
    assert created.metadata.name.startswith("a" * 58)


def test_generate_name_retries_on_collision() -> None:
    # Each create draws a 128-bit uid from random.Random(seed), then generateName draws
    # the suffix. Predict the first two suffixes of the second create and occupy the first.
    seed = 11
    replica = random.Random(seed)
    replica.getrandbits(128)
    replica.getrandbits(128)
    first = "c-" + "".join(replica.choice(NAME_ALPHABET) for _ in range(5))
    second = "c-" + "".join(replica.choice(NAME_ALPHABET) for _ in range(5))

    control = APIServer(seed=seed)
    control.create(make_claim(name="unrelated"))
    assert control.create(make_claim(name="", generate_name="c-")).metadata.name == first

    server = APIServer(seed=seed)
    server.create(make_claim(name=first))
    created = server.create(make_claim(name="", generate_name="c-"))
    assert created.metadata.name == second


def test_create_dry_run_stores_nothing(recorded: APIServer, records: list[WriteRecord]) -> None:
    watch = recorded.watch("ResourceClaim")

    result = recorded.create(make_claim(name="", generate_name="c-"), dry_run=True)

    assert result.metadata.name.startswith("c-")
    assert result.metadata.uid
    assert result.metadata.resource_version == ""
    assert recorded.resource_version == 1
    assert recorded.list("ResourceClaim").items == ()
    assert list(watch.events) == []
    assert records == []


def test_create_resets_claim_status(server: APIServer) -> None:
    sent = make_claim().model_copy(update={"status": allocated()})
    assert server.create(sent).status == ResourceClaimStatus()


def test_create_keeps_pod_and_node_status(server: APIServer) -> None:
    pod = make_pod().model_copy(update={"status": PodStatus(phase="Running")})
    node = Node(metadata=ObjectMeta(name="n1"), status=NodeStatus(allocatable={"cpu": "4"}))

    assert server.create(pod).status.phase == "Running"
    assert server.create(node).status.allocatable == {"cpu": "4"}


def test_create_defaults_pod_phase_to_pending(server: APIServer) -> None:
    assert server.create(make_pod()).status.phase == "Pending"


def test_create_cluster_scoped_drops_namespace(server: APIServer) -> None:
    cls = ResourceClass(metadata=ObjectMeta(name="gpu", namespace="ns"), driver_name=DRIVER)
    created = server.create(cls)
    assert created.metadata.namespace == ""
    assert server.get("ResourceClass", "gpu", "ignored") is created


def test_create_existing_name_already_exists(server: APIServer) -> None:
    server.create(make_claim())
    with pytest.raises(AlreadyExists) as info:
        server.create(make_claim())
    assert info.value.message == 'resourceclaims.resource.k8s.io "claim" already exists'
    assert info.value.code == 409


def test_create_same_name_other_namespace(server: APIServer) -> None:
    server.create(make_claim(namespace="a"))
    server.create(make_claim(namespace="b"))
    assert names(server.list("ResourceClaim").items) == ["claim", "claim"]


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        (make_claim(name=""), "metadata.name"),
        (
            ResourceClaim(
                metadata=ObjectMeta(name="c"),
                spec=ResourceClaimSpec(resource_class_name="gpu", allocation_mode="Sometimes"),
            ),
            "spec.allocationMode",
        ),
        (make_claim(name="Not_A_Name"), "metadata.name"),
    ],
    ids=["no-name", "bad-allocation-mode", "bad-name"],
)
def test_create_invalid(server: APIServer, obj: TopLevelObject, path: str) -> None:
    with pytest.raises(Invalid) as info:
        server.create(obj)
    assert path in [e.path for e in info.value.errors]
    assert info.value.code == 422
    assert server.resource_version == 1


def test_create_typed_kind_as_generic_is_bad_request(server: APIServer) -> None:
    generic = GenericObject(
        api_version="resource.k8s.io/v1alpha2", kind="ResourceClaim", metadata=ObjectMeta(name="c")
    )
    with pytest.raises(BadRequest):
        server.create(generic)


# --------------------------------------------------------------------------------------
# Generic kinds and CustomResourceDefinitions
# --------------------------------------------------------------------------------------


def make_crd(scope: str = "Namespaced", *, status: bool = False, **spec: Any) -> GenericObject:
    version: dict[str, Any] = {"name": "v1alpha1", "served": True, "storage": True}
    if status:
        version["subresources"] = {"status": {}}
    body_spec: dict[str, Any] = {
        "group": "gpu.example.com",
        "names": {"kind": "GpuClaimParameters", "plural": "gpuclaimparameters"},
        "scope": scope,
        "versions": [version],
    }
    body_spec.update(spec)
    return GenericObject(
        api_version="apiextensions.k8s.io/v1",
        kind="CustomResourceDefinition",
        metadata=ObjectMeta(name="gpuclaimparameters.gpu.example.com"),
        body={"spec": body_spec},
    )


def make_params(name: str = "p", namespace: str = "", **body: Any) -> GenericObject:
    return GenericObject(
        api_version="gpu.example.com/v1alpha1",
        kind="GpuClaimParameters",
        metadata=ObjectMeta(name=name, namespace=namespace),
        body={"spec": {"count": 1}, **body},
    )


@pytest.mark.parametrize(
    ("scope", "namespace"),
    [("Namespaced", "default"), ("Cluster", "")],
    ids=["namespaced", "cluster"],
)
def test_crd_registers_scope(server: APIServer, scope: str, namespace: str) -> None:
    server.create(make_crd(scope))
    created = server.create(make_params(namespace="team-a" if scope == "Cluster" else ""))
    assert created.metadata.namespace == namespace


def test_crd_sets_resource_in_messages(server: APIServer) -> None:
    server.create(make_crd())
    with pytest.raises(NotFound) as info:
        server.get("GpuClaimParameters", "missing", "default")
    assert info.value.message == 'gpuclaimparameters.gpu.example.com "missing" not found'


@pytest.mark.parametrize(
    ("crd", "path"),
    [
        (make_crd("Global"), "spec.scope"),
        (make_crd(names={"plural": "gpuclaimparameters"}), "spec.names.kind"),
        (make_crd(group="other.example.com"), "metadata.name"),
    ],
    ids=["bad-scope", "no-kind", "name-mismatch"],
)
def test_crd_invalid(server: APIServer, crd: GenericObject, path: str) -> None:
    with pytest.raises(Invalid) as info:
        server.create(crd)
    assert [e.path for e in info.value.errors] == [path]


def test_unregistered_generic_kinds_scope(server: APIServer) -> None:
    config_map = GenericObject(api_version="v1", kind="ConfigMap", metadata=ObjectMeta(name="cm"))
    priority = GenericObject(
        api_version="scheduling.k8s.io/v1", kind="PriorityClass", metadata=ObjectMeta(name="high")
    )
    assert server.create(config_map).metadata.namespace == "default"
    assert server.create(priority).metadata.namespace == ""


def test_register_kind(server: APIServer) -> None:
    server.register_kind("GpuClaimParameters", "gpu.example.com/v1alpha1", namespaced=False)
    assert server.create(make_params(namespace="x")).metadata.namespace == ""
    with pytest.raises(ValueError, match="typed model"):
        server.register_kind("ResourceClaim", "resource.k8s.io/v1alpha2", namespaced=True)
    with pytest.raises(ValueError, match="stored objects"):
        server.register_kind("GpuClaimParameters", "gpu.example.com/v1alpha1", namespaced=True)


def test_generic_status_subresource(server: APIServer) -> None:
    server.create(make_crd(status=True))
    created = server.create(make_params(status={"ready": True}))
    assert "status" not in created.body

    with_status = created.model_copy(update={"body": {**created.body, "status": {"ready": True}}})
    updated = server.update_status(with_status)
    assert updated.body["status"] == {"ready": True}
    assert updated.metadata.generation == 1

    changed = updated.model_copy(
        update={"body": {"spec": {"count": 2}, "status": {"ready": False}}}
    )
    main = server.update(changed)
    assert main.body == {"spec": {"count": 2}, "status": {"ready": True}}
    assert main.metadata.generation == 2


# --------------------------------------------------------------------------------------
# Get and list
# --------------------------------------------------------------------------------------


def test_get_missing_not_found(server: APIServer) -> None:
    with pytest.raises(NotFound) as info:
        server.get("Pod", "web", "default")
    assert info.value.message == 'pods "web" not found'
    assert info.value.code == 404


def test_get_empty_namespace_means_default(server: APIServer) -> None:
    created = server.create(make_claim())
    assert server.get("ResourceClaim", "claim") is created


def populate(server: APIServer) -> None:
    for namespace, name, team in [
        ("b", "z", "red"),
        ("a", "y", "blue"),
        ("b", "a", "blue"),
        ("a", "x", "red"),
        ("c", "m", "red"),
    ]:
        server.create(make_claim(name, namespace, labels={"team": team}))


def test_list_in_key_order(server: APIServer) -> None:
    populate(server)
    result = server.list("ResourceClaim")
    assert [(c.metadata.namespace, c.metadata.name) for c in result.items] == [
        ("a", "x"),
        ("a", "y"),
        ("b", "a"),
        ("b", "z"),
        ("c", "m"),
    ]
    assert result.resource_version == server.resource_version
    assert result.continue_token == ""


@pytest.mark.parametrize(
    ("namespace", "labels", "fields", "expected"),
    [
        ("b", None, None, ["a", "z"]),
        (None, "team=red", None, ["x", "z", "m"]),
        ("a", "team in (blue)", None, ["y"]),
        (None, None, "metadata.name=m", ["m"]),
        (None, "team!=red", "metadata.namespace==b", ["a"]),
        ("", None, None, ["x", "y", "a", "z", "m"]),
    ],
    ids=["namespace", "label", "label-set", "field", "label-and-field", "empty-namespace-is-all"],
)
def test_list_filters(
    server: APIServer,
    namespace: str | None,
    labels: str | None,
    fields: str | None,
    expected: list[str],
) -> None:
    populate(server)
    result = server.list("ResourceClaim", namespace, label_selector=labels, field_selector=fields)
    assert names(result.items) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"label_selector": "team in red"},
        {"field_selector": "spec.hostname=n1"},
        {"limit": -1},
        {"continue_token": "not-a-token"},
    ],
    ids=["bad-label-selector", "unsupported-field", "negative-limit", "bad-continue"],
)
def test_list_bad_request(server: APIServer, kwargs: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        server.list("ResourceClaim", **kwargs)


def test_list_pages(server: APIServer) -> None:
    populate(server)
    first = server.list("ResourceClaim", limit=2)
    second = server.list("ResourceClaim", limit=2, continue_token=first.continue_token)
    third = server.list("ResourceClaim", limit=2, continue_token=second.continue_token)

    assert names(first.items) == ["x", "y"]
    assert first.remaining_item_count == 3
    assert names(second.items) == ["a", "z"]
    assert second.remaining_item_count == 1
    assert names(third.items) == ["m"]
    assert third.continue_token == ""
    assert third.remaining_item_count is None


def test_list_pages_with_selector_omit_remaining(server: APIServer) -> None:
    populate(server)
    first = server.list("ResourceClaim", label_selector="team=red", limit=2)
    second = server.list(
        "ResourceClaim", label_selector="team=red", limit=2, continue_token=first.continue_token
    )
    assert names(first.items) == ["x", "z"]
    assert first.remaining_item_count is None
    assert names(second.items) == ["m"]
    assert second.continue_token == ""


def test_list_continue_reads_snapshot(server: APIServer) -> None:
    populate(server)
    first = server.list("ResourceClaim", limit=2)
    before = server.get("ResourceClaim", "z", "b")

    server.delete("ResourceClaim", "a", "b")
    server.update(before.with_meta(labels={"team": "green"}))
    server.create(make_claim("n", "c"))
    rest = server.list("ResourceClaim", continue_token=first.continue_token)

    assert names(rest.items) == ["a", "z", "m"]
    assert rest.items[1] == before
    assert rest.resource_version == first.resource_version
    assert names(server.list("ResourceClaim").items) == ["x", "y", "z", "m", "n"]


def test_list_continue_after_history_is_gone() -> None:
    server = APIServer(watch_history=2)
    populate(server)
    first = server.list("ResourceClaim", limit=2)
    for i in range(3):
        server.create(make_claim(f"extra-{i}", "d"))
    with pytest.raises(Gone):
        server.list("ResourceClaim", limit=2, continue_token=first.continue_token)


def test_list_continue_token_of_other_list(server: APIServer) -> None:
    populate(server)
    token = server.list("ResourceClaim", "a", limit=1).continue_token
    with pytest.raises(BadRequest, match="continue key is not valid"):
        server.list("ResourceClaim", "b", limit=1, continue_token=token)


# --------------------------------------------------------------------------------------
# Watch
# --------------------------------------------------------------------------------------


def test_watch_from_now(server: APIServer) -> None:
    server.create(make_claim("old"))
    watch = server.watch("ResourceClaim")
    created = server.create(make_claim("new"))
    assert list(watch.events) == [WatchEvent("ADDED", created, 3)]


def test_watch_zero_sends_existing_then_live(server: APIServer) -> None:
    server.create(make_claim("b"))
    server.create(make_claim("a"))
    watch = server.watch("ResourceClaim", resource_version="0")
    server.create(make_claim("c"))
    assert event_summary(watch.events) == [("ADDED", "a", 3), ("ADDED", "b", 2), ("ADDED", "c", 4)]


def test_watch_replays_from_resource_version(server: APIServer) -> None:
    claim = server.create(make_claim("a"))
    listed = server.list("ResourceClaim")
    server.update(claim.with_meta(labels={"x": "1"}))
    server.create(make_pod())
    server.delete("ResourceClaim", "a")

    watch = server.watch("ResourceClaim", resource_version=listed.resource_version)
    server.create(make_claim("b"))

    assert event_summary(watch.events) == [
        ("MODIFIED", "a", 3),
        ("DELETED", "a", 5),
        ("ADDED", "b", 6),
    ]
    deleted = watch.events[1].object
    assert deleted.metadata.resource_version == "5"
    assert deleted.metadata.labels == {"x": "1"}


def test_watch_older_than_history_is_gone() -> None:
    server = APIServer(watch_history=3)
    for i in range(5):
        server.create(make_claim(f"c{i}"))
    server.watch("ResourceClaim", resource_version="3")  # still kept: writes 4..6
    with pytest.raises(Gone, match=r"too old resource version: 2 \(3\)") as info:
        server.watch("ResourceClaim", resource_version="2")
    assert info.value.code == 410


@pytest.mark.parametrize("resource_version", ["abc", "-4"], ids=["text", "negative"])
def test_watch_bad_resource_version(server: APIServer, resource_version: str) -> None:
    with pytest.raises(BadRequest):
        server.watch("ResourceClaim", resource_version=resource_version)


def test_watch_namespace_filter(server: APIServer) -> None:
    watch = server.watch("ResourceClaim", "a")
    server.create(make_claim("x", "b"))
    server.create(make_claim("y", "a"))
    assert names(e.object for e in watch.events) == ["y"]


def test_watch_selector_transitions(server: APIServer) -> None:
    watch = server.watch("ResourceClaim", label_selector="team=red")
    claim = server.create(make_claim("c", labels={"team": "blue"}))
    claim = server.update(claim.with_meta(labels={"team": "red"}))
    claim = server.update(claim.with_meta(labels={"team": "red", "x": "1"}))
    before_leaving = claim
    claim = server.update(claim.with_meta(labels={"team": "blue"}))
    claim = server.update(claim.with_meta(labels={"team": "red"}))
    server.delete("ResourceClaim", "c")

    assert [e.type for e in watch.events] == ["ADDED", "MODIFIED", "DELETED", "ADDED", "DELETED"]
    left = watch.events[2]
    assert left.resource_version == 5
    assert left.object.metadata.labels == before_leaving.metadata.labels
    assert left.object.metadata.resource_version == "5"


def test_watch_field_selector_replay(server: APIServer) -> None:
    server.create(make_claim("a"))
    server.create(make_claim("b"))
    watch = server.watch("ResourceClaim", resource_version="1", field_selector="metadata.name=b")
    assert event_summary(watch.events) == [("ADDED", "b", 3)]


def test_watch_stop(server: APIServer) -> None:
    watch = server.watch("ResourceClaim")
    server.create(make_claim("a"))
    watch.stop()
    server.create(make_claim("b"))
    assert names(e.object for e in watch.events) == ["a"]
    assert watch.stopped


def test_watch_delivers_in_commit_order_across_nested_writes(server: APIServer) -> None:
    seen: list[tuple[str, str, int]] = []

    def relabel(event: WatchEvent) -> None:
        seen.append(("first", event.type, event.resource_version))
        if event.type == "ADDED":
            server.update(event.object.with_meta(labels={"seen": "yes"}))

    server.watch("ResourceClaim", callback=relabel)
    server.watch(
        "ResourceClaim", callback=lambda e: seen.append(("second", e.type, e.resource_version))
    )
    server.create(make_claim())

    assert seen == [
        ("first", "ADDED", 2),
        ("second", "ADDED", 2),
        ("first", "MODIFIED", 3),
        ("second", "MODIFIED", 3),
    ]


def test_watch_opened_in_callback_gets_no_duplicates(server: APIServer) -> None:
    late: list[Any] = []

    def open_watch(event: WatchEvent) -> None:
        if not late:
            late.append(server.watch("ResourceClaim", resource_version="1"))
            server.create(make_claim("second"))

    server.watch("ResourceClaim", callback=open_watch)
    server.create(make_claim("first"))
    assert event_summary(late[0].events) == [("ADDED", "first", 2), ("ADDED", "second", 3)]


def test_watch_initial_events_precede_callback_writes(server: APIServer) -> None:
    server.create(make_claim("a"))
    server.create(make_claim("b"))
    seen: list[tuple[str, str, int]] = []

    def relabel_first(event: WatchEvent) -> None:
        seen.append((event.type, event.object.metadata.name, event.resource_version))
        if event.object.metadata.name == "a" and event.type == "ADDED":
            server.update(event.object.with_meta(labels={"seen": "yes"}))

    server.watch("ResourceClaim", resource_version="0", callback=relabel_first)
    assert seen == [("ADDED", "a", 2), ("ADDED", "b", 3), ("MODIFIED", "a", 4)]


# --------------------------------------------------------------------------------------
# Update
# --------------------------------------------------------------------------------------


def test_update_stale_resource_version_conflict(server: APIServer) -> None:
    stale = server.create(make_claim("x"))
    server.update(stale.with_meta(labels={"a": "1"}))
    with pytest.raises(Conflict) as info:
        server.update(stale.with_meta(labels={"a": "2"}))
    assert info.value.message == (
        'Operation cannot be fulfilled on resourceclaims.resource.k8s.io "x": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    assert server.get("ResourceClaim", "x").metadata.labels == {"a": "1"}


def test_update_without_resource_version_is_unconditional(server: APIServer) -> None:
    stale = server.create(make_claim())
    server.update(stale.with_meta(labels={"a": "1"}))
    updated = server.update(stale.with_meta(labels={"a": "2"}, resource_version=""))
    assert updated.metadata.labels == {"a": "2"}


def test_update_missing_not_found(server: APIServer) -> None:
    with pytest.raises(NotFound):
        server.update(make_claim())


def test_update_drops_status_changes(server: APIServer) -> None:
    claim = server.create(make_claim())
    updated = server.update(
        claim.model_copy(update={"status": allocated()}).with_meta(labels={"a": "1"})
    )
    assert updated.status == ResourceClaimStatus()
    assert updated.metadata.labels == {"a": "1"}


def test_update_keeps_immutable_metadata() -> None:
    clock = Clock()
    server = APIServer(clock=clock)
    claim = server.create(make_claim())
    clock.now = 500
    updated = server.update(
        claim.with_meta(uid="", creation_timestamp=None, generation=9, labels={"a": "1"})
    )
    assert updated.metadata.uid == claim.metadata.uid
    assert updated.metadata.creation_timestamp == claim.metadata.creation_timestamp
    assert updated.metadata.generation == 1


def test_update_other_uid_invalid(server: APIServer) -> None:
    claim = server.create(make_claim())
    with pytest.raises(Invalid) as info:
        server.update(claim.with_meta(uid="someone-else"))
    assert [e.path for e in info.value.errors] == ["metadata.uid"]


def test_update_immutable_claim_spec_invalid(server: APIServer) -> None:
    claim = server.create(make_claim())
    changed = claim.model_copy(update={"spec": ResourceClaimSpec(resource_class_name="other")})
    with pytest.raises(Invalid) as info:
        server.update(changed)
    assert info.value.errors


def test_update_spec_bumps_generation(server: APIServer) -> None:
    psc = server.create(PodSchedulingContext(metadata=ObjectMeta(name="pod")))
    relabeled = server.update(psc.with_meta(labels={"a": "1"}))
    selected = server.update(
        relabeled.model_copy(update={"spec": PodSchedulingContextSpec(selected_node="n1")})
    )
    assert relabeled.metadata.generation == 1
    assert selected.metadata.generation == 2


def test_update_identical_writes_nothing(recorded: APIServer, records: list[WriteRecord]) -> None:
    claim = recorded.create(make_claim())
    watch = recorded.watch("ResourceClaim")
    same = recorded.update(claim.model_copy())
    assert same is claim
    assert recorded.resource_version == 2
    assert list(watch.events) == []
    assert len(records) == 1


def test_update_dry_run(server: APIServer) -> None:
    claim = server.create(make_claim())
    result = server.update(claim.with_meta(labels={"a": "1"}), dry_run=True)
    assert result.metadata.labels == {"a": "1"}
    assert server.get("ResourceClaim", "claim") is claim
    assert server.resource_version == 2


def test_update_removing_last_finalizer_deletes(server: APIServer) -> None:
    server.create(make_claim(finalizers=(FINALIZER,)))
    deleting = server.delete("ResourceClaim", "claim")
    assert deleting is not None
    watch = server.watch("ResourceClaim")

    gone = server.update(deleting.with_meta(finalizers=()))

    assert gone.metadata.resource_version == "4"
    assert event_summary(watch.events) == [("DELETED", "claim", 4)]
    with pytest.raises(NotFound):
        server.get("ResourceClaim", "claim")


def test_update_cannot_add_finalizer_while_deleting(server: APIServer) -> None:
    server.create(make_claim(finalizers=(FINALIZER,)))
    deleting = server.delete("ResourceClaim", "claim")
    assert deleting is not None
    with pytest.raises(Invalid) as info:
        server.update(deleting.with_meta(finalizers=(FINALIZER, "example.com/other")))
    assert [e.path for e in info.value.errors] == ["metadata.finalizers"]


def test_update_cannot_clear_deletion_timestamp(server: APIServer) -> None:
    server.create(make_claim(finalizers=(FINALIZER, "example.com/other")))
    deleting = server.delete("ResourceClaim", "claim")
    assert deleting is not None
    updated = server.update(deleting.with_meta(deletion_timestamp=None, finalizers=(FINALIZER,)))
    assert updated.metadata.deletion_timestamp == deleting.metadata.deletion_timestamp


# --------------------------------------------------------------------------------------
# Update status
# --------------------------------------------------------------------------------------


def test_update_status_keeps_spec_and_metadata(server: APIServer) -> None:
    claim = server.create(make_claim(labels={"a": "1"}))
    sent = claim.model_copy(
        update={"status": allocated(), "spec": ResourceClaimSpec(resource_class_name="other")}
    ).with_meta(labels={"b": "2"}, finalizers=(FINALIZER,))

    updated = server.update_status(sent)

    assert updated.status == allocated()
    assert updated.spec == claim.spec
    assert updated.metadata.labels == {"a": "1"}
    assert updated.metadata.finalizers == ()
    assert updated.metadata.generation == 1


def test_update_status_stale_conflict(server: APIServer) -> None:
    claim = server.create(make_claim())
    server.update(claim.with_meta(labels={"a": "1"}))
    with pytest.raises(Conflict, match="the object has been modified"):
        server.update_status(claim.model_copy(update={"status": allocated()}))


@pytest.mark.parametrize(
    "status",
    [
        ResourceClaimStatus(
            reserved_for=(ResourceClaimConsumerReference(resource="pods", name="p", uid="u"),)
        ),
        allocated(False, "p1", "p2"),
        ResourceClaimStatus(deallocation_requested=True),
        allocated(True, *[f"p{i}" for i in range(33)]),
    ],
    ids=[
        "reserved-without-allocation",
        "two-users-not-shareable",
        "dealloc-without-allocation",
        "33-users",
    ],
)
def test_update_status_invalid(server: APIServer, status: ResourceClaimStatus) -> None:
    claim = server.create(make_claim())
    with pytest.raises(Invalid):
        server.update_status(claim.model_copy(update={"status": status}))
    assert server.get("ResourceClaim", "claim") is claim


def test_update_status_unchanged_writes_nothing(server: APIServer) -> None:
    claim = server.create(make_claim())
    assert server.update_status(claim.with_meta(labels={"x": "y"})) is claim
    assert server.resource_version == 2


def test_update_status_without_subresource_not_found(server: APIServer) -> None:
    cls = server.create(ResourceClass(metadata=ObjectMeta(name="gpu"), driver_name=DRIVER))
    with pytest.raises(NotFound):
        server.update_status(cls)


# --------------------------------------------------------------------------------------
# Patch
# --------------------------------------------------------------------------------------


def test_merge_patch_rfc7386_example() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    patch = {"a": "z", "c": {"f": None}}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}}
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}}


def test_patch_merge_labels(server: APIServer) -> None:
    server.create(make_claim(labels={"a": "1", "b": "2"}))
    patched = server.patch(
        "ResourceClaim", "claim", "default", {"metadata": {"labels": {"a": None, "c": "3"}}}
    )
    assert patched.metadata.labels == {"b": "2", "c": "3"}
    assert patched.metadata.resource_version == "3"


def test_patch_accepts_json_text(server: APIServer) -> None:
    server.create(make_claim())
    patched = server.patch(
        "ResourceClaim", "claim", "default", '{"metadata": {"labels": {"a": "1"}}}'
    )
    assert patched.metadata.labels == {"a": "1"}


def test_patch_status_subresource(server: APIServer) -> None:
    server.create(make_claim())
    status = {"driverName": DRIVER, "allocation": {"resourceHandles": [{"driverName": DRIVER}]}}

    main = server.patch("ResourceClaim", "claim", "default", {"status": status})
    assert main.status == ResourceClaimStatus()

    patched = server.patch(
        "ResourceClaim",
        "claim",
        "default",
        {"status": status, "metadata": {"labels": {"a": "1"}}},
        subresource="status",
    )
    assert patched.status.driver_name == DRIVER
    assert patched.status.allocation is not None
    assert patched.metadata.labels == {}


def test_patch_stale_resource_version_conflict(server: APIServer) -> None:
    server.create(make_claim())
    with pytest.raises(Conflict):
        server.patch("ResourceClaim", "claim", "default", {"metadata": {"resourceVersion": "1"}})


@pytest.mark.parametrize(
    ("patch", "patch_type", "subresource"),
    [
        ({"spec": {"bogusField": 1}}, "merge", ""),
        ({"metadata": {"name": "other"}}, "merge", ""),
        ({"kind": "Pod"}, "merge", ""),
        ([{"op": "add", "path": "/a"}], "merge", ""),
        ({"metadata": {}}, "json", ""),
        ([{"op": "frobnicate", "path": "/a"}], "json", ""),
        ([{"op": "add", "value": 1}], "json", ""),
        ([{"op": "add", "path": "no-slash", "value": 1}], "json", ""),
        ({}, "strategic", ""),
        ({}, "merge", "scale"),
        ("{not json", "merge", ""),
    ],
    ids=[
        "unknown-field",
        "rename",
        "change-kind",
        "merge-patch-list",
        "json-patch-object",
        "unknown-op",
        "missing-path",
        "bad-pointer",
        "unsupported-type",
        "unsupported-subresource",
        "invalid-json",
    ],
)
def test_patch_bad_request(
    server: APIServer, patch: Any, patch_type: str, subresource: str
) -> None:
    server.create(make_claim())
    with pytest.raises(BadRequest):
        server.patch(
            "ResourceClaim",
            "claim",
            "default",
            patch,
            patch_type=patch_type,
            subresource=subresource,
        )
    assert server.resource_version == 2


def test_patch_missing_not_found(server: APIServer) -> None:
    with pytest.raises(NotFound):
        server.patch("ResourceClaim", "nope", "default", {"metadata": {"labels": {"a": "1"}}})


DOC = {"metadata": {"labels": {"a": "1", "example.com/x": "2"}}, "list": [1, 2, 3], "flag": True}


@pytest.mark.parametrize(
    ("operations", "expected"),
    [
        (
            [{"op": "add", "path": "/metadata/labels/b", "value": "3"}],
            {"a": "1", "b": "3", "example.com/x": "2"},
        ),
        ([{"op": "add", "path": "/list/1", "value": 9}], [1, 9, 2, 3]),
        ([{"op": "add", "path": "/list/-", "value": 4}], [1, 2, 3, 4]),
        ([{"op": "remove", "path": "/metadata/labels/example.com~1x"}], {"a": "1"}),
        ([{"op": "remove", "path": "/list/0"}], [2, 3]),
        (
            [{"op": "replace", "path": "/metadata/labels/a", "value": "9"}],
            {"a": "9", "example.com/x": "2"},
        ),
        ([{"op": "replace", "path": "/list/2", "value": 7}], [1, 2, 7]),
        (
            [{"op": "move", "from": "/metadata/labels/a", "path": "/metadata/labels/z"}],
            {"example.com/x": "2", "z": "1"},
        ),
        ([{"op": "copy", "from": "/list/0", "path": "/list/-"}], [1, 2, 3, 1]),
        (
            [
                {"op": "test", "path": "/list", "value": [1, 2, 3]},
                {"op": "remove", "path": "/list/2"},
            ],
            [1, 2],
        ),
    ],
    ids=[
        "add-key",
        "add-index",
        "add-end",
        "remove-escaped-key",
        "remove-index",
        "replace-key",
        "replace-index",
        "move",
        "copy",
        "test-then-remove",
    ],
)
def test_json_patch_operations(operations: list[dict[str, Any]], expected: Any) -> None:
    result = json_patch(DOC, operations)
    if isinstance(expected, list):
        assert result["list"] == expected
    else:
        assert result["metadata"]["labels"] == expected
    assert DOC["list"] == [1, 2, 3]


@pytest.fixture
def patch_target(server: APIServer) -> APIServer:
    """A server holding claim "claim" with a label, a finalizer and a shareable allocation."""
    claim = server.create(make_claim(labels={"a": "1"}, finalizers=(FINALIZER,)))
    server.update_status(claim.model_copy(update={"status": allocated(True, "p1")}))
    return server


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "test", "path": "/status/allocation/shareable", "value": 1},
        {"op": "test", "path": "/metadata/labels/a", "value": "2"},
        {"op": "remove", "path": "/metadata/annotations"},
        {"op": "replace", "path": "/metadata/finalizers/1", "value": "x.io/y"},
        {"op": "add", "path": "/metadata/finalizers/01", "value": "x.io/y"},
        {"op": "add", "path": "/metadata/annotations/x", "value": "1"},
        {"op": "move", "from": "/metadata", "path": "/metadata/labels/m"},
        {"op": "remove", "path": ""},
    ],
    ids=[
        "test-true-is-not-1",
        "test-mismatch",
        "remove-missing",
        "replace-out-of-range",
        "leading-zero-index",
        "add-under-missing-parent",
        "move-into-own-child",
        "remove-whole-document",
    ],
)
def test_json_patch_failures_invalid(patch_target: APIServer, operation: dict[str, Any]) -> None:
    before = patch_target.resource_version
    with pytest.raises(Invalid) as info:
        patch_target.patch("ResourceClaim", "claim", "default", [operation], patch_type="json")
    assert info.value.code == 422
    assert patch_target.resource_version == before


def test_json_patch_test_passes_on_equal_value(patch_target: APIServer) -> None:
    stored = patch_target.get("ResourceClaim", "claim")
    operations = [
        {"op": "test", "path": "/status/allocation/shareable", "value": True},
        {"op": "test", "path": "/status/reservedFor/0/name", "value": "p1"},
    ]
    result = patch_target.patch(
        "ResourceClaim", "claim", "default", operations, patch_type="json", subresource="status"
    )
    assert result is stored


def test_json_patch_status_reserved_for(patch_target: APIServer) -> None:
    consumer = {"resource": "pods", "name": "p2", "uid": "uid-p2"}
    patched = patch_target.patch(
        "ResourceClaim",
        "claim",
        "default",
        [{"op": "add", "path": "/status/reservedFor/-", "value": consumer}],
        patch_type="json",
        subresource="status",
    )
    assert [r.name for r in patched.status.reserved_for] == ["p1", "p2"]


def test_patch_json_on_object(server: APIServer) -> None:
    server.create(make_claim(labels={"a": "1"}))
    patched = server.patch(
        "ResourceClaim",
        "claim",
        "default",
        [
            {"op": "test", "path": "/metadata/labels/a", "value": "1"},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ],
        patch_type="json",
    )
    assert patched.metadata.finalizers == (FINALIZER,)


def test_patch_json_test_failure_message(server: APIServer) -> None:
    server.create(make_claim(labels={"a": "1"}))
    with pytest.raises(Invalid) as info:
        server.patch(
            "ResourceClaim",
            "claim",
            "default",
            [{"op": "test", "path": "/metadata/labels/a", "value": "2"}],
            patch_type="json",
        )
    assert info.value.message == (
        "ResourceClaim \"claim\" is invalid: [/metadata/labels/a: Invalid value: 'test': "
        'value is "1", expected "2"]'
    )


def test_apply_creates_then_updates(recorded: APIServer, records: list[WriteRecord]) -> None:
    spec = {"spec": {"selectedNode": "n1"}}
    created = recorded.patch(
        "PodSchedulingContext",
        "pod",
        "default",
        spec,
        patch_type="apply",
        field_manager="kube-scheduler",
    )
    stale_free = recorded.patch(
        "PodSchedulingContext",
        "pod",
        "default",
        {"spec": {"selectedNode": "n2"}},
        patch_type="apply",
        field_manager="kube-scheduler",
        force=True,
    )

    assert created.metadata.resource_version == "2"
    assert stale_free.spec.selected_node == "n2"
    assert [(r.verb, r.event_type, r.field_manager) for r in records] == [
        ("patch", "ADDED", "kube-scheduler"),
        ("patch", "MODIFIED", "kube-scheduler"),
    ]


def test_apply_status_of_missing_not_found(server: APIServer) -> None:
    with pytest.raises(NotFound):
        server.patch(
            "Pod",
            "p",
            "default",
            {"status": {"phase": "Running"}},
            patch_type="apply",
            subresource="status",
        )


# --------------------------------------------------------------------------------------
# Delete and finalizers
# --------------------------------------------------------------------------------------


def test_delete_removes(server: APIServer) -> None:
    server.create(make_claim())
    watch = server.watch("ResourceClaim")
    assert server.delete("ResourceClaim", "claim") is None
    assert event_summary(watch.events) == [("DELETED", "claim", 3)]
    with pytest.raises(NotFound):
        server.get("ResourceClaim", "claim")


def test_delete_missing_not_found(server: APIServer) -> None:
    with pytest.raises(NotFound, match=r'resourceclaims\.resource\.k8s\.io "x" not found'):
        server.delete("ResourceClaim", "x")


def test_delete_with_finalizer_marks_deleting() -> None:
    clock = Clock()
    server = APIServer(clock=clock)
    server.create(make_claim(finalizers=(FINALIZER,)))
    clock.now = 30
    watch = server.watch("ResourceClaim")

    first = server.delete("ResourceClaim", "claim")
    clock.now = 60
    second = server.delete("ResourceClaim", "claim")

    assert first is not None
    assert first.metadata.deletion_timestamp == "2024-01-01T00:00:30Z"
    assert first.metadata.generation == 2
    assert second is first
    assert event_summary(watch.events) == [("MODIFIED", "claim", 3)]


def test_delete_finalizer_then_patch_removes(server: APIServer) -> None:
    server.create(make_claim(finalizers=(FINALIZER,)))
    server.delete("ResourceClaim", "claim")
    server.patch("ResourceClaim", "claim", "default", {"metadata": {"finalizers": None}})
    assert server.list("ResourceClaim").items == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"uid_precondition": "other"},
            "Precondition failed: UID in precondition: other, UID in object meta: ",
        ),
        (
            {"resource_version_precondition": "1"},
            "Precondition failed: ResourceVersion in precondition: 1, "
            "ResourceVersion in object meta: 2",
        ),
    ],
    ids=["uid", "resource-version"],
)
def test_delete_precondition_conflict(
    server: APIServer, kwargs: dict[str, str], message: str
) -> None:
    server.create(make_claim())
    with pytest.raises(Conflict) as info:
        server.delete("ResourceClaim", "claim", **kwargs)
    assert info.value.message.startswith(
        f'Operation cannot be fulfilled on resourceclaims.resource.k8s.io "claim": {message}'
    )
    assert server.resource_version == 2


def test_delete_matching_preconditions(server: APIServer) -> None:
    claim = server.create(make_claim())
    result = server.delete(
        "ResourceClaim",
        "claim",
        uid_precondition=claim.metadata.uid,
        resource_version_precondition="2",
    )
    assert result is None


def test_delete_dry_run(server: APIServer) -> None:
    server.create(make_claim("plain"))
    server.create(make_claim("held", finalizers=(FINALIZER,)))

    assert server.delete("ResourceClaim", "plain", dry_run=True) is None
    held = server.delete("ResourceClaim", "held", dry_run=True)

    assert held is not None
    assert held.metadata.deletion_timestamp is not None
    assert server.resource_version == 3
    assert server.get("ResourceClaim", "held").metadata.deletion_timestamp is None
    assert len(server.list("ResourceClaim").items) == 2


def test_delete_unknown_policy_invalid(server: APIServer) -> None:
    server.create(make_claim())
    with pytest.raises(Invalid, match="propagationPolicy"):
        server.delete("ResourceClaim", "claim", propagation_policy="Sideways")


def test_delete_collection(server: APIServer) -> None:
    populate(server)
    server.update(server.get("ResourceClaim", "m", "c").with_meta(finalizers=(FINALIZER,)))
    count = server.delete_collection("ResourceClaim", label_selector="team=red")
    assert count == 3
    remaining = server.list("ResourceClaim").items
    assert names(remaining) == ["y", "a", "m"]
    assert remaining[2].metadata.deletion_timestamp is not None


# --------------------------------------------------------------------------------------
# Garbage collection
# --------------------------------------------------------------------------------------


def pod_with_dependents(
    server: APIServer, *, claim_finalizer: bool = False
) -> tuple[Pod, list[str]]:
    """Create a pod owning a generated claim (blocking) and a scheduling context (not blocking)."""
    pod = server.create(make_pod("web"))
    finalizers = (FINALIZER,) if claim_finalizer else ()
    server.create(make_claim("web-gpu", owner_references=(owned_by(pod),), finalizers=finalizers))
    server.create(
        PodSchedulingContext(
            metadata=ObjectMeta(name="web", owner_references=(owned_by(pod, block=False),))
        )
    )
    return pod, ["web-gpu", "web"]


def remaining_names(server: APIServer) -> dict[str, list[str]]:
    return {
        kind: names(server.list(kind).items)
        for kind in ("Pod", "ResourceClaim", "PodSchedulingContext")
    }


def test_background_deletes_dependents(server: APIServer) -> None:
    pod_with_dependents(server)
    assert server.delete("Pod", "web") is None
    assert remaining_names(server) == {"Pod": [], "ResourceClaim": [], "PodSchedulingContext": []}


def test_background_waits_for_owner_finalizers(server: APIServer) -> None:
    pod_with_dependents(server)
    server.update(server.get("Pod", "web").with_meta(finalizers=("example.com/hold",)))
    deleting = server.delete("Pod", "web")
    assert deleting is not None
    assert remaining_names(server)["ResourceClaim"] == ["web-gpu"]

    server.update(deleting.with_meta(finalizers=()))
    assert remaining_names(server) == {"Pod": [], "ResourceClaim": [], "PodSchedulingContext": []}


def test_background_keeps_dependent_with_live_owner(server: APIServer) -> None:
    pod_with_dependents(server)
    other = server.create(make_pod("other"))
    claim = server.get("ResourceClaim", "web-gpu")
    server.update(
        claim.with_meta(
            owner_references=(*claim.metadata.owner_references, owned_by(other, controller=False))
        )
    )

    server.delete("Pod", "web")

    kept = server.get("ResourceClaim", "web-gpu")
    assert [r.uid for r in kept.metadata.owner_references] == [other.metadata.uid]


def test_background_dependent_with_finalizer_is_marked(server: APIServer) -> None:
    pod_with_dependents(server, claim_finalizer=True)
    server.delete("Pod", "web")
    claim = server.get("ResourceClaim", "web-gpu")
    assert claim.metadata.deletion_timestamp is not None


def test_background_is_recursive(server: APIServer) -> None:
    top = server.create(make_pod("top"))
    middle = server.create(make_claim("middle", owner_references=(owned_by(top),)))
    server.create(
        PodSchedulingContext(
            metadata=ObjectMeta(name="bottom", owner_references=(owned_by(middle),))
        )
    )
    server.delete("Pod", "top")
    assert remaining_names(server) == {"Pod": [], "ResourceClaim": [], "PodSchedulingContext": []}


def test_foreground_waits_for_blocking_dependent(server: APIServer) -> None:
    pod_with_dependents(server, claim_finalizer=True)
    watch = server.watch("Pod")

    owner = server.delete("Pod", "web", propagation_policy="Foreground")

    assert owner is not None
    assert FINALIZER_FOREGROUND_DELETION in owner.metadata.finalizers
    assert owner.metadata.deletion_timestamp is not None
    assert remaining_names(server)["PodSchedulingContext"] == []
    claim = server.get("ResourceClaim", "web-gpu")
    assert claim.metadata.deletion_timestamp is not None

    server.update(claim.with_meta(finalizers=()))
    assert remaining_names(server) == {"Pod": [], "ResourceClaim": [], "PodSchedulingContext": []}
    assert [e.type for e in watch.events] == ["MODIFIED", "DELETED"]


def test_foreground_without_blockers_removes_at_once(server: APIServer) -> None:
    pod_with_dependents(server)
    assert server.delete("Pod", "web", propagation_policy="Foreground") is None
    assert remaining_names(server) == {"Pod": [], "ResourceClaim": [], "PodSchedulingContext": []}


def test_orphan_keeps_dependents(server: APIServer) -> None:
    pod_with_dependents(server)
    assert server.delete("Pod", "web", propagation_policy="Orphan") is None
    assert remaining_names(server) == {
        "Pod": [],
        "ResourceClaim": ["web-gpu"],
        "PodSchedulingContext": ["web"],
    }
    assert server.get("ResourceClaim", "web-gpu").metadata.owner_references == ()
    assert server.get("PodSchedulingContext", "web").metadata.owner_references == ()


def test_policy_without_dependents_needs_no_finalizer(server: APIServer) -> None:
    server.create(make_claim())
    assert server.delete("ResourceClaim", "claim", propagation_policy="Orphan") is None


def test_external_gc_background_leaves_dependents() -> None:
    server = APIServer(synchronous_gc=False)
    pod, dependents = pod_with_dependents(server)
    server.delete("Pod", "web")
    assert sorted(names(server.dependents_of(pod.metadata.uid))) == sorted(dependents)
    assert remaining_names(server)["Pod"] == []


def test_external_gc_foreground() -> None:
    server = APIServer(synchronous_gc=False)
    pod_with_dependents(server)

    owner = server.delete("Pod", "web", propagation_policy="Foreground")
    assert owner is not None
    assert owner.metadata.finalizers == (FINALIZER_FOREGROUND_DELETION,)
    assert server.finish_foreground_deletion("Pod", "web", "default") is False

    server.delete("ResourceClaim", "web-gpu")  # the blocking dependent; the PSC does not block
    assert server.finish_foreground_deletion("Pod", "web", "default") is True
    assert remaining_names(server) == {
        "Pod": [],
        "ResourceClaim": [],
        "PodSchedulingContext": ["web"],
    }


def test_external_gc_orphan() -> None:
    server = APIServer(synchronous_gc=False)
    pod_with_dependents(server)

    owner = server.delete("Pod", "web", propagation_policy="Orphan")
    assert owner is not None
    assert owner.metadata.finalizers == (FINALIZER_ORPHAN,)
    assert server.finish_orphan_deletion("Pod", "web", "default") is True

    assert remaining_names(server) == {
        "Pod": [],
        "ResourceClaim": ["web-gpu"],
        "PodSchedulingContext": ["web"],
    }
    assert server.get("ResourceClaim", "web-gpu").metadata.owner_references == ()


def test_finish_helpers_without_finalizer(server: APIServer) -> None:
    server.create(make_pod("web"))
    assert server.finish_foreground_deletion("Pod", "web", "default") is False
    assert server.finish_orphan_deletion("Pod", "web", "default") is False
    with pytest.raises(NotFound):
        server.finish_foreground_deletion("Pod", "gone", "default")


def test_dependents_of_unknown_uid(server: APIServer) -> None:
    assert server.dependents_of("nobody") == []


# --------------------------------------------------------------------------------------
# pods/binding
# --------------------------------------------------------------------------------------


def test_bind_sets_node_and_condition() -> None:
    clock = Clock()
    server = APIServer(clock=clock)
    pod = server.create(make_pod())
    clock.now = 12

    bound = server.bind("default", "pod", "node-1", pod_uid=pod.metadata.uid)

    assert bound.spec.node_name == "node-1"
    (condition,) = bound.status.conditions
    assert (condition.type, condition.status) == ("PodScheduled", "True")
    assert condition.last_transition_time == "2024-01-01T00:00:12Z"
    assert server.get("Pod", "pod") is bound


def test_bind_already_bound_conflict(server: APIServer) -> None:
    server.create(make_pod())
    server.bind("default", "pod", "node-1")
    with pytest.raises(Conflict) as info:
        server.bind("default", "pod", "node-2")
    assert info.value.message == (
        'Operation cannot be fulfilled on pods/binding "pod": '
        'pod pod is already assigned to node "node-1"'
    )


def test_bind_uid_precondition_conflict(server: APIServer) -> None:
    server.create(make_pod())
    with pytest.raises(Conflict, match="Precondition failed: UID in precondition: old-uid"):
        server.bind("default", "pod", "node-1", pod_uid="old-uid")


def test_bind_deleting_pod_conflict(server: APIServer) -> None:
    server.create(make_pod(finalizers=("example.com/hold",)))
    server.delete("Pod", "pod")
    with pytest.raises(Conflict, match="is being deleted"):
        server.bind("default", "pod", "node-1")


def test_bind_missing_pod_not_found(server: APIServer) -> None:
    with pytest.raises(NotFound, match='pods "pod" not found'):
        server.bind("default", "pod", "node-1")


def test_bind_empty_node_invalid(server: APIServer) -> None:
    server.create(make_pod())
    with pytest.raises(Invalid):
        server.bind("default", "pod", "")


# --------------------------------------------------------------------------------------
# Write records
# --------------------------------------------------------------------------------------


def test_write_records(recorded: APIServer, records: list[WriteRecord]) -> None:
    claim = recorded.create(make_claim(finalizers=(FINALIZER,)))
    claim = recorded.update(claim.with_meta(labels={"a": "1"}))
    recorded.update_status(claim.model_copy(update={"status": allocated()}))
    recorded.patch("ResourceClaim", "claim", "default", {"metadata": {"labels": {"b": "2"}}})
    recorded.delete("ResourceClaim", "claim")
    recorded.patch("ResourceClaim", "claim", "default", {"metadata": {"finalizers": []}})
    recorded.create(Pod(metadata=ObjectMeta(name="p"), spec=PodSpec()))
    recorded.bind("default", "p", "n1")

    assert [(r.verb, r.kind, r.subresource, r.resource_version, r.event_type) for r in records] == [
        ("create", "ResourceClaim", "", 2, "ADDED"),
        ("update", "ResourceClaim", "", 3, "MODIFIED"),
        ("update", "ResourceClaim", "status", 4, "MODIFIED"),
        ("patch", "ResourceClaim", "", 5, "MODIFIED"),
        ("delete", "ResourceClaim", "", 6, "MODIFIED"),
        ("patch", "ResourceClaim", "", 7, "DELETED"),
        ("create", "Pod", "", 8, "ADDED"),
        ("create", "Pod", "binding", 9, "MODIFIED"),
    ]
    assert all(r.object.metadata.resource_version == str(r.resource_version) for r in records)
    assert records[-1].namespace == "default"
    assert records[-1].name == "p"


def test_write_record_precedes_watch_event() -> None:
    order: list[str] = []
    server = APIServer(on_write=lambda r: order.append(f"record {r.resource_version}"))
    server.watch("ResourceClaim", callback=lambda e: order.append(f"event {e.resource_version}"))
    server.create(make_claim("a"))
    server.create(make_claim("b"))
    assert order == ["record 2", "event 2", "record 3", "event 3"]


def test_gc_writes_are_recorded(recorded: APIServer, records: list[WriteRecord]) -> None:
    pod_with_dependents(recorded)
    records.clear()
    recorded.delete("Pod", "web")
    assert [(r.verb, r.kind, r.event_type) for r in records] == [
        ("delete", "Pod", "DELETED"),
        ("delete", "PodSchedulingContext", "DELETED"),
        ("delete", "ResourceClaim", "DELETED"),
    ]


def test_node_name_watch_sees_only_its_pods() -> None:
    from sim.api.types import Pod, PodSpec

    api = APIServer()
    seen: list[tuple[str, str]] = []
    api.watch(
        "Pod",
        field_selector="spec.nodeName=n1",
        callback=lambda event: seen.append((event.type, event.object.metadata.name)),
    )
    api.create(Pod(metadata=ObjectMeta(name="a", namespace="default")))
    api.create(
        Pod(metadata=ObjectMeta(name="b", namespace="default"), spec=PodSpec(node_name="n2"))
    )
    api.bind("default", "a", "n1")
    api.delete("Pod", "a", "default")
    assert seen == [("ADDED", "a"), ("DELETED", "a")]
