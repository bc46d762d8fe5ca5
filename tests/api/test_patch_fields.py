"""A merge patch applied field by field gives what merging the whole object gives."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.api import APIServer, Invalid, ObjectMeta, Pod
from sim.api.codec import to_dict
from sim.api.errors import APIError
from sim.api.server import merge_patch
from sim.api.types import (
    ClaimSource,
    Container,
    PodCondition,
    PodResourceClaim,
    PodSpec,
    PodStatus,
    ResourceRequirements,
)

keys = st.sampled_from(["app", "tier", "example.com/role", "bad key!"])
values = st.one_of(st.none(), st.sampled_from(["a", "b", "", "not valid!"]))
conditions = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["PodScheduled", "Ready"]),
            "status": st.sampled_from(["True", "False"]),
            "reason": st.sampled_from(["Unschedulable", "SchedulerError"]),
        }
    ),
    max_size=2,
)
metadata_patches = st.fixed_dictionaries(
    {}, optional={"labels": st.dictionaries(keys, values, max_size=3), "name": st.just("other")}
)
status_patches = st.fixed_dictionaries(
    {},
    optional={
        "phase": st.sampled_from(["Pending", "Running", "Succeeded", 7]),
        "conditions": conditions,
        "nominatedNodeName": st.none(),
    },
)
patches = st.fixed_dictionaries(
    {},
    optional={
        "metadata": metadata_patches,
        "status": status_patches,
        "spec": st.fixed_dictionaries({}, optional={"nodeName": st.sampled_from(["node-1"])}),
        "kind": st.sampled_from(["Pod", "Node"]),
    },
)


def _stored_pod(server: APIServer) -> Pod:
    pod = Pod(
        metadata=ObjectMeta(name="pod", namespace="default", labels={"app": "x"}),
        spec=PodSpec(
            containers=(Container(name="c", resources=ResourceRequirements(claims=())),),
            resource_claims=(
                PodResourceClaim(name="gpu", source=ClaimSource(resource_claim_name="gpu")),
            ),
        ),
        status=PodStatus(
            phase="Pending",
            conditions=(PodCondition(type="PodScheduled", status="False"),),
        ),
    )
    return server.create(pod)


def _outcome(action: Any) -> Any:
    try:
        return to_dict(action())
    except APIError as error:
        return type(error).__name__


@settings(max_examples=150, deadline=None)
@given(patch=patches, subresource=st.sampled_from(["", "status"]))
def test_field_merge_equals_whole_merge(patch: dict[str, Any], subresource: str) -> None:
    fast = APIServer()
    _stored_pod(fast)
    slow = APIServer()
    stored = _stored_pod(slow)

    def whole_object() -> Any:
        # The reference: merge into the whole wire document, then store it as an update.
        merged = merge_patch(to_dict(stored), patch)
        obj = slow._decode_patched(slow._kind_info("Pod"), "pod", "default", merged)
        if subresource == "status":
            return slow.update_status(obj)
        return slow.update(obj)

    expected = _outcome(whole_object)
    got = _outcome(lambda: fast.patch("Pod", "pod", "default", patch, subresource=subresource))
    if expected in ("BadRequest", "Invalid") and isinstance(got, str):
        # Both reject; the field-by-field path hands bad patches to the whole-object path.
        assert got in ("BadRequest", "Invalid")
    else:
        assert got == expected


def test_invalid_label_is_still_rejected() -> None:
    server = APIServer()
    _stored_pod(server)
    try:
        server.patch("Pod", "pod", "default", {"metadata": {"labels": {"bad key!": "a"}}})
    except Invalid as error:
        assert "metadata.labels" in str(error)
    else:
        raise AssertionError("an invalid label key was stored")
