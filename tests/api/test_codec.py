"""Tests of the manifest codec: round trips, unknown fields, hints, YAML input and files."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from sim.api.codec import (
    IgnoredField,
    ManifestError,
    dump_json,
    dump_yaml,
    from_dict,
    load_path,
    load_yaml,
    to_dict,
)
from sim.api.types import (
    Affinity,
    AllocationResult,
    ClaimSource,
    Container,
    GenericObject,
    ListMeta,
    Namespace,
    Node,
    NodeAffinity,
    NodeCondition,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    NodeSpec,
    NodeStatus,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodCondition,
    PodResourceClaim,
    PodResourceClaimStatus,
    PodSchedulingContext,
    PodSchedulingContextSpec,
    PodSchedulingContextStatus,
    PodSpec,
    PodStatus,
    PreferredSchedulingTerm,
    ResourceClaim,
    ResourceClaimConsumerReference,
    ResourceClaimList,
    ResourceClaimParametersReference,
    ResourceClaimRef,
    ResourceClaimSchedulingStatus,
    ResourceClaimSpec,
    ResourceClaimStatus,
    ResourceClaimTemplate,
    ResourceClaimTemplateSpec,
    ResourceClass,
    ResourceClassParametersReference,
    ResourceHandle,
    ResourceRequirements,
    Taint,
    Toleration,
    TopLevelObject,
    api_version_of,
    kind_of,
)

# --------------------------------------------------------------------------------------
# Hand-built objects with every field set
# --------------------------------------------------------------------------------------


def full_metadata(name: str, namespace: str = "default") -> ObjectMeta:
    return ObjectMeta(
        name=name,
        generate_name=f"{name}-",
        namespace=namespace,
        uid=f"uid-{name}",
        resource_version="17",
        generation=2,
        creation_timestamp="2024-01-01T00:00:00Z",
        deletion_timestamp="2024-01-01T00:10:00Z",
        labels={"app": "demo", "kubernetes.io/hostname": "node-1"},
        annotations={"note": "yes", "empty-looking": "0"},
        finalizers=("resource.k8s.io/delete-protection",),
        owner_references=(
            OwnerReference(
                api_version="v1",
                kind="Pod",
                name="pod-0",
                uid="uid-pod-0",
                controller=True,
                block_owner_deletion=False,
            ),
        ),
    )


def full_selector() -> NodeSelector:
    requirement = NodeSelectorRequirement(key="gpu", operator="In", values=("a100", "h100"))
    return NodeSelector(
        node_selector_terms=(
            NodeSelectorTerm(match_expressions=(requirement,), match_fields=(requirement,)),
        )
    )


def full_claim_spec() -> ResourceClaimSpec:
    return ResourceClaimSpec(
        resource_class_name="gpu.example.com",
        parameters_ref=ResourceClaimParametersReference(
            api_group="gpu.resource.example.com", kind="GpuClaimParameters", name="params"
        ),
        allocation_mode="Immediate",
    )


def full_objects() -> list[TopLevelObject]:
    """One object per kind, with every field of every nested model set to a non-default value."""
    requirements = ResourceRequirements(
        requests={"cpu": "500m", "memory": "1Gi", "pods": 1},
        limits={"cpu": 2, "example.com/fraction": 0.5},
        claims=(ResourceClaimRef(name="gpu"),),
    )
    return [
        ResourceClass(
            metadata=full_metadata("gpu.example.com", namespace=""),
            driver_name="gpu.resource.example.com",
            parameters_ref=ResourceClassParametersReference(
                api_group="gpu.resource.example.com",
                kind="GpuClassParameters",
                name="class-params",
                namespace="drivers",
            ),
            suitable_nodes=full_selector(),
        ),
        ResourceClaim(
            metadata=full_metadata("claim-0"),
            spec=full_claim_spec(),
            status=ResourceClaimStatus(
                allocation=AllocationResult(
                    resource_handles=(
                        ResourceHandle(driver_name="gpu.resource.example.com", data='{"gpu":0}'),
                    ),
                    available_on_nodes=full_selector(),
                    shareable=True,
                ),
                reserved_for=(
                    ResourceClaimConsumerReference(
                        api_group="core", resource="pods", name="pod-0", uid="uid-pod-0"
                    ),
                ),
                deallocation_requested=True,
                driver_name="gpu.resource.example.com",
            ),
        ),
        ResourceClaimTemplate(
            metadata=full_metadata("template-0"),
            spec=ResourceClaimTemplateSpec(
                metadata=full_metadata("stamped"), spec=full_claim_spec()
            ),
        ),
        PodSchedulingContext(
            metadata=full_metadata("pod-0"),
            spec=PodSchedulingContextSpec(
                selected_node="node-1", potential_nodes=("node-1", "node-2")
            ),
            status=PodSchedulingContextStatus(
                resource_claims=(
                    ResourceClaimSchedulingStatus(name="gpu", unsuitable_nodes=("node-2",)),
                )
            ),
        ),
        Pod(
            metadata=full_metadata("pod-0"),
            spec=PodSpec(
                node_name="node-1",
                node_selector={"gpu": "true"},
                affinity=Affinity(
                    node_affinity=NodeAffinity(
                        required_during_scheduling_ignored_during_execution=full_selector(),
                        preferred_during_scheduling_ignored_during_execution=(
                            PreferredSchedulingTerm(
                                weight=10, preference=full_selector().node_selector_terms[0]
                            ),
                        ),
                    )
                ),
                tolerations=(
                    Toleration(
                        key="gpu",
                        operator="Equal",
                        value="true",
                        effect="NoExecute",
                        toleration_seconds=30,
                    ),
                ),
                priority=0,
                priority_class_name="high",
                scheduler_name="default-scheduler",
                restart_policy="Never",
                init_containers=(Container(name="init", resources=requirements),),
                containers=(Container(name="main", resources=requirements),),
                resource_claims=(
                    PodResourceClaim(
                        name="gpu",
                        source=ClaimSource(
                            resource_claim_name="claim-0",
                            resource_claim_template_name="template-0",
                        ),
                    ),
                ),
            ),
            status=PodStatus(
                phase="Running",
                conditions=(
                    PodCondition(
                        type="PodScheduled",
                        status="True",
                        reason="Scheduled",
                        message="bound",
                        last_probe_time="2024-01-01T00:00:01Z",
                        last_transition_time="2024-01-01T00:00:02Z",
                    ),
                ),
                resource_claim_statuses=(
                    PodResourceClaimStatus(name="gpu", resource_claim_name="pod-0-gpu-x7k2p"),
                ),
                nominated_node_name="node-2",
                start_time="2024-01-01T00:00:03Z",
            ),
        ),
        Node(
            metadata=full_metadata("node-1", namespace=""),
            spec=NodeSpec(
                unschedulable=True,
                taints=(
                    Taint(
                        key="gpu",
                        value="true",
                        effect="NoSchedule",
                        time_added="2024-01-01T00:00:00Z",
                    ),
                ),
            ),
            status=NodeStatus(
                capacity={"cpu": "4", "memory": "32Gi", "pods": 110},
                allocatable={"cpu": 3.5, "memory": "30Gi", "pods": "110"},
                conditions=(
                    NodeCondition(type="Ready", status="True", reason="KubeletReady", message="ok"),
                ),
                phase="Running",
            ),
        ),
        Namespace(metadata=full_metadata("gpu-test", namespace="")),
        GenericObject(
            api_version="gpu.resource.example.com/v1alpha1",
            kind="GpuClaimParameters",
            metadata=full_metadata("params"),
            body={"spec": {"count": 4, "selector": {"andExpression": [1.5, None, True, "x"]}}},
        ),
    ]


def unset_fields(model: BaseModel, path: str = "") -> list[str]:
    """Return the paths of fields left at their default, descending into nested models."""
    found = []
    for name, info in type(model).model_fields.items():
        if name in ("api_version", "kind") and not isinstance(model, GenericObject):
            continue  # typed kinds take apiVersion and kind from the class
        value = getattr(model, name)
        child = f"{path}.{name}" if path else name
        if value == info.get_default(call_default_factory=True) and name != "priority":
            found.append(child)
        items = value if isinstance(value, tuple) else (value,)
        for i, item in enumerate(items):
            if isinstance(item, BaseModel):
                found += unset_fields(item, f"{child}[{i}]" if isinstance(value, tuple) else child)
    return found


FULL_OBJECTS = full_objects()


def test_full_objects_set_every_field() -> None:
    # priority=0 is the one deliberate zero value: it must survive as 0, not None.
    # Cluster-scoped kinds keep an empty namespace, as the API server stores them.
    for obj in FULL_OBJECTS:
        expected = [] if obj.NAMESPACED else ["metadata.namespace"]
        assert unset_fields(obj) == expected, kind_of(obj)


@pytest.mark.parametrize("obj", FULL_OBJECTS, ids=kind_of)
def test_full_object_round_trip(obj: TopLevelObject) -> None:
    wire = to_dict(obj)
    parsed, ignored = from_dict(wire)

    assert parsed == obj
    assert ignored == []
    assert list(wire)[:2] == ["apiVersion", "kind"]
    assert wire["apiVersion"] == api_version_of(obj)
    assert wire["kind"] == kind_of(obj)


@pytest.mark.parametrize("obj", FULL_OBJECTS, ids=kind_of)
def test_full_object_yaml_round_trip(obj: TopLevelObject) -> None:
    result = load_yaml(dump_yaml([obj]), source="dump.yaml")

    assert result.objects == [obj]


def test_yaml_round_trip_many_objects() -> None:
    text = dump_yaml(FULL_OBJECTS)

    assert text.count("\n---\n") == len(FULL_OBJECTS) - 1
    assert load_yaml(text).objects == FULL_OBJECTS


def test_json_round_trip() -> None:
    claim = FULL_OBJECTS[1]

    parsed, _ = from_dict(json.loads(dump_json(claim)))

    assert parsed == claim


def test_dump_json_sequence_is_list(tmp_path: Path) -> None:
    path = tmp_path / "objects.json"
    path.write_text(dump_json(FULL_OBJECTS[:3]), encoding="utf-8")

    assert json.loads(path.read_text())["kind"] == "List"
    assert load_path(path).objects == FULL_OBJECTS[:3]


def test_to_dict_omits_zero_values() -> None:
    claim = ResourceClaim(
        metadata=ObjectMeta(name="c", namespace="ns"),
        spec=ResourceClaimSpec(resource_class_name="gpu"),
    )

    assert to_dict(claim) == {
        "apiVersion": "resource.k8s.io/v1alpha2",
        "kind": "ResourceClaim",
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": {"resourceClassName": "gpu"},
    }


def test_to_dict_keeps_meaningful_zero_pointers() -> None:
    pod = Pod(metadata=ObjectMeta(name="p"), spec=PodSpec(priority=0))
    owner = OwnerReference(api_version="v1", kind="Pod", name="p", uid="u", controller=False)
    claim = ResourceClaim(
        metadata=ObjectMeta(name="c", owner_references=(owner,)),
        spec=ResourceClaimSpec(parameters_ref=ResourceClaimParametersReference()),
    )

    assert to_dict(pod)["spec"] == {"priority": 0}
    assert to_dict(claim)["metadata"]["ownerReferences"][0]["controller"] is False
    assert to_dict(claim)["spec"] == {"parametersRef": {}}
    assert from_dict(to_dict(pod))[0].spec.priority == 0


def test_to_dict_generic_body_at_top_level() -> None:
    obj = GenericObject(
        api_version="v1",
        kind="ConfigMap",
        metadata=ObjectMeta(name="cm"),
        body={"data": {"a": "b"}},
    )

    assert to_dict(obj) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm"},
        "data": {"a": "b"},
    }


def test_to_dict_generic_body_clash_rejected() -> None:
    obj = GenericObject(api_version="v1", kind="ConfigMap", body={"metadata": {"name": "x"}})

    with pytest.raises(ValueError, match="body contains metadata"):
        to_dict(obj)


def test_to_dict_claim_list() -> None:
    claim = FULL_OBJECTS[1]
    listed = ResourceClaimList(
        metadata=ListMeta(resource_version="9", continue_="tok"), items=(claim,)
    )

    wire = to_dict(listed)

    assert wire["kind"] == "ResourceClaimList"
    assert wire["metadata"] == {"resourceVersion": "9", "continue": "tok"}
    assert wire["items"] == [to_dict(claim)]
    assert load_yaml(yaml.safe_dump(wire)).objects == [claim]


def test_from_dict_typed_kind_normal_form() -> None:
    wire = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}}

    node, _ = from_dict(wire)

    assert isinstance(node, Node)
    assert node == Node(metadata=ObjectMeta(name="n"))
    assert node.api_version == ""
    assert kind_of(node) == "Node"


def test_from_dict_null_means_default() -> None:
    wire = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "creationTimestamp": None, "labels": None},
        "spec": {"containers": None, "affinity": None},
        "status": None,
    }

    pod, _ = from_dict(wire)

    assert pod == Pod(metadata=ObjectMeta(name="p"))


# --------------------------------------------------------------------------------------
# Property-based round trip
# --------------------------------------------------------------------------------------

# Printable text without surrogates, which neither JSON nor YAML can carry.
TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=12)
KEYS = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=8)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)


def strategy_for(annotation: Any) -> st.SearchStrategy[Any]:
    """Build a strategy for any field type used in sim.api.types."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([strategy_for(a) for a in args])
    if origin is tuple:
        return st.lists(strategy_for(args[0]), max_size=2).map(tuple)
    if origin is dict:
        return st.dictionaries(KEYS, strategy_for(args[1]), max_size=2)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_strategy(annotation)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        str: TEXT,
        int: st.integers(-(2**31), 2**31),
        bool: st.booleans(),
        float: st.floats(allow_nan=False, allow_infinity=False),
        type(None): st.none(),
        Any: JSON_VALUES,
    }
    return simple[annotation]


def model_strategy(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    fields = {
        name: strategy_for(info.annotation)
        for name, info in model.model_fields.items()
        if name not in ("api_version", "kind", "body")
    }
    return st.builds(model, **fields)


GENERIC_OBJECTS = st.builds(
    GenericObject,
    api_version=st.sampled_from(["v1", "apps/v1", "gpu.resource.example.com/v1alpha1"]),
    kind=st.sampled_from(["ConfigMap", "Deployment", "GpuClaimParameters"]),
    metadata=model_strategy(ObjectMeta),
    body=st.dictionaries(
        KEYS.filter(lambda k: k not in ("apiVersion", "kind", "metadata")), JSON_VALUES, max_size=3
    ),
)

ANY_OBJECT = st.one_of(
    [
        model_strategy(cls)
        for cls in (
            ResourceClaim,
            PodSchedulingContext,
            Pod,
            Node,
            ResourceClass,
            ResourceClaimTemplate,
        )
    ]
    + [GENERIC_OBJECTS]
)


@settings(max_examples=150, deadline=None)
@given(ANY_OBJECT)
def test_round_trip_property(obj: TopLevelObject) -> None:
    parsed, ignored = from_dict(to_dict(obj))

    assert parsed == obj
    assert ignored == []


@settings(max_examples=60, deadline=None)
@given(st.lists(ANY_OBJECT, min_size=1, max_size=3))
def test_yaml_round_trip_property(objs: list[TopLevelObject]) -> None:
    assert load_yaml(dump_yaml(objs)).objects == objs


# --------------------------------------------------------------------------------------
# Unknown fields: strict and lenient
# --------------------------------------------------------------------------------------


def pod_with_image() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "resources": {"claims": [{"name": "gpu"}]}}
            ],
            "volumes": [{"name": "v"}],
        },
    }


def test_strict_rejects_unknown_field() -> None:
    with pytest.raises(ManifestError) as caught:
        from_dict(pod_with_image(), source="pod.yaml", document=2)

    error = caught.value
    assert error.source == "pod.yaml"
    assert error.document == 2
    assert error.path == "spec.containers[0].image"
    assert error.value == "busybox"
    message = str(error)
    assert message.startswith("pod.yaml: document 3: spec.containers[0].image: unknown field")
    assert "(got 'busybox')" in message
    assert "Fields of Container: name, resources" in message
    assert "\n" not in message


def test_lenient_drops_unknown_fields() -> None:
    pod, ignored = from_dict(pod_with_image(), lenient=True)

    assert ignored == ["spec.containers[0].image", "spec.volumes"]
    assert isinstance(pod, Pod)
    assert pod.spec.containers[0].resources.claims == (ResourceClaimRef(name="gpu"),)


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("resourceClassNmae", "'resourceClassName'"),
        ("resource_class_name", "'resourceClassName'"),
        ("AllocationMode", "'allocationMode'"),
    ],
)
def test_unknown_field_did_you_mean(key: str, suggestion: str) -> None:
    wire = {"apiVersion": "resource.k8s.io/v1alpha2", "kind": "ResourceClaim", "spec": {key: "x"}}

    with pytest.raises(ManifestError) as caught:
        from_dict(wire)

    assert caught.value.path == f"spec.{key}"
    assert f"Did you mean {suggestion}?" in str(caught.value)


def test_unknown_field_without_close_match() -> None:
    wire = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}, "spec": {}}

    with pytest.raises(ManifestError) as caught:
        from_dict(wire)

    assert "Did you mean" not in str(caught.value)
    assert "Fields of Namespace: apiVersion, kind, metadata" in str(caught.value)


def test_generic_metadata_checked_strictly() -> None:
    wire = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "selfLink": "/api/v1/x"},
        "data": {"a": "b"},
    }

    with pytest.raises(ManifestError) as caught:
        from_dict(wire)
    obj, ignored = from_dict(wire, lenient=True)

    assert caught.value.path == "metadata.selfLink"
    assert ignored == ["metadata.selfLink"]
    assert obj == GenericObject(
        api_version="v1",
        kind="ConfigMap",
        metadata=ObjectMeta(name="cm"),
        body={"data": {"a": "b"}},
    )


def test_load_yaml_ignored_field_records() -> None:
    text = yaml.safe_dump(pod_with_image())

    result = load_yaml(text, source="pod.yaml", lenient=True)

    assert result.ignored == [
        IgnoredField("pod.yaml", 0, "Pod", "p", "spec.containers[0].image"),
        IgnoredField("pod.yaml", 0, "Pod", "p", "spec.volumes"),
    ]


# --------------------------------------------------------------------------------------
# Hints for known mistakes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("lenient", [False, True], ids=["strict", "lenient"])
def test_bare_string_container_claim(lenient: bool) -> None:
    wire = pod_with_image()
    wire["spec"]["containers"][0]["resources"]["claims"] = ["gpu"]

    with pytest.raises(ManifestError) as caught:
        from_dict(wire, lenient=lenient)

    assert caught.value.path == "spec.containers[0].resources.claims[0]"
    assert caught.value.value == "gpu"
    assert 'write "- name: gpu" instead of "- gpu"' in str(caught.value)


@pytest.mark.parametrize("lenient", [False, True], ids=["strict", "lenient"])
@pytest.mark.parametrize("key", ["resourceClaimName", "resourceClaimTemplateName"])
def test_flattened_pod_claim_source(key: str, lenient: bool) -> None:
    wire = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"resourceClaims": [{"name": "gpu", key: "shared"}]},
    }

    with pytest.raises(ManifestError) as caught:
        from_dict(wire, lenient=lenient)

    message = str(caught.value)
    assert caught.value.path == f"spec.resourceClaims[0].{key}"
    assert "flattened form of Kubernetes 1.31" in message
    assert 'under "source:"' in message


@pytest.mark.parametrize("lenient", [False, True], ids=["strict", "lenient"])
@pytest.mark.parametrize(
    "wire",
    [
        {
            "apiVersion": "resource.k8s.io/v1alpha2",
            "kind": "ResourceClass",
            "name": "gpu",
            "driverName": "d",
        },
        {
            "apiVersion": "cats.example.com/v1",
            "kind": "ClaimParameters",
            "name": "cats",
            "spec": {"color": "black"},
        },
    ],
    ids=["typed", "generic"],
)
def test_top_level_name(wire: dict[str, Any], lenient: bool) -> None:
    with pytest.raises(ManifestError) as caught:
        from_dict(wire, lenient=lenient)

    assert caught.value.path == "name"
    assert 'belongs under "metadata:"' in str(caught.value)


def test_generic_name_in_body_with_metadata_allowed() -> None:
    wire = {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}, "name": "x"}

    obj, _ = from_dict(wire)

    assert obj == GenericObject(
        api_version="example.com/v1",
        kind="Thing",
        metadata=ObjectMeta(name="t"),
        body={"name": "x"},
    )


@pytest.mark.parametrize("lenient", [False, True], ids=["strict", "lenient"])
def test_structured_parameters_rejected(lenient: bool) -> None:
    wire = {
        "apiVersion": "resource.k8s.io/v1alpha2",
        "kind": "ResourceClass",
        "metadata": {"name": "c"},
        "driverName": "d",
        "structuredParameters": True,
    }

    with pytest.raises(ManifestError) as caught:
        from_dict(wire, lenient=lenient)

    assert caught.value.path == "structuredParameters"
    assert "only in Kubernetes 1.30" in str(caught.value)


# --------------------------------------------------------------------------------------
# Type errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "path", "expected"),
    [
        ({"priority": "5"}, "spec.priority", "expected an integer (got '5')"),
        ({"nodeName": 7}, "spec.nodeName", "expected a string (got 7)"),
        ({"nodeSelector": {"zone": 1}}, "spec.nodeSelector[zone]", "expected a string"),
        ({"tolerations": {"key": "a"}}, "spec.tolerations", "expected a list"),
        (
            {"containers": [{"name": "c", "resources": {"requests": {"cpu": [1]}}}]},
            "spec.containers[0].resources.requests[cpu]",
            "expected a string, an integer or a number",
        ),
        (
            {"resourceClaims": [{"source": {}}]},
            "spec.resourceClaims[0].name",
            "missing required field",
        ),
        ({"affinity": "any"}, "spec.affinity", "expected an object"),
    ],
)
def test_type_error_path_and_expected(spec: dict[str, Any], path: str, expected: str) -> None:
    wire = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}

    with pytest.raises(ManifestError) as caught:
        from_dict(wire, source="p.yaml")

    assert caught.value.path == path
    assert f"p.yaml: document 1: {path}: {expected}" in str(caught.value)


def test_type_error_counts_other_problems() -> None:
    wire = {"apiVersion": "v1", "kind": "Pod", "spec": {"nodeName": 1, "schedulerName": 2}}

    with pytest.raises(ManifestError) as caught:
        from_dict(wire)

    assert caught.value.path == "spec.nodeName"
    assert "There is 1 more invalid field" in str(caught.value)


def test_generic_metadata_type_error() -> None:
    wire = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "labels": "x"}}

    with pytest.raises(ManifestError) as caught:
        from_dict(wire)

    assert caught.value.path == "metadata.labels"


# --------------------------------------------------------------------------------------
# apiVersion and kind
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "path", "fragment"),
    [
        ({"kind": "Pod"}, "apiVersion", "missing required field 'apiVersion'"),
        ({"apiVersion": "v1"}, "kind", "missing required field 'kind'"),
        ({"apiVersion": "v1", "kind": 3}, "kind", "expected a non-empty string"),
        ({"apiVersion": "apps/v1", "kind": "Pod"}, "apiVersion", "kind Pod needs apiVersion v1"),
        (
            {"apiVersion": "v1", "kind": "ResourceClaim"},
            "apiVersion",
            "kind ResourceClaim needs apiVersion resource.k8s.io/v1alpha2",
        ),
        (
            {"apiVersion": "resource.k8s.io/v1alpha3", "kind": "ResourceClaim"},
            "apiVersion",
            "Only resource.k8s.io/v1alpha2 is supported",
        ),
        (
            {"apiVersion": "resource.k8s.io/v1beta1", "kind": "DeviceClass"},
            "apiVersion",
            "Only resource.k8s.io/v1alpha2 is supported",
        ),
        (
            {"apiVersion": "resource.k8s.io/v1alpha2", "kind": "ResourceSlice"},
            "kind",
            "ResourceSlice exists only in Kubernetes 1.30",
        ),
        (
            {"apiVersion": "resource.k8s.io/v1alpha2", "kind": "DeviceClass"},
            "kind",
            "Known kinds: PodSchedulingContext, ResourceClaim, ResourceClaimTemplate, "
            "ResourceClass",
        ),
        (
            {"apiVersion": "resource.k8s.io/v1alpha2", "kind": "Resourceclaim"},
            "kind",
            "did you mean 'ResourceClaim'?",
        ),
    ],
)
def test_type_meta_rejected(wire: dict[str, Any], path: str, fragment: str) -> None:
    with pytest.raises(ManifestError) as caught:
        from_dict(wire, lenient=True)

    assert caught.value.path == path
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("data", "described"),
    [([1, 2], "a list of 2 entries"), ("text", "the string 'text'"), (5, "int 5")],
)
def test_document_not_an_object(data: Any, described: str) -> None:
    with pytest.raises(ManifestError) as caught:
        from_dict(data)

    assert (
        f"expected a Kubernetes object (a mapping with apiVersion and kind), got {described}"
        in (str(caught.value))
    )


# --------------------------------------------------------------------------------------
# YAML input
# --------------------------------------------------------------------------------------

CLAIM_YAML = """\
apiVersion: resource.k8s.io/v1alpha2
kind: ResourceClaim
metadata:
  name: {name}
spec:
  resourceClassName: gpu
"""


def test_load_yaml_skips_empty_documents() -> None:
    text = (
        "---\n# comment only\n---\n"
        + CLAIM_YAML.format(name="a")
        + "---\n---\n"
        + (CLAIM_YAML.format(name="b"))
    )

    result = load_yaml(text)

    assert [o.name for o in result.objects] == ["a", "b"]


def test_load_yaml_document_index_and_line() -> None:
    text = (
        CLAIM_YAML.format(name="a")
        + "---\n"
        + CLAIM_YAML.format(name="b").replace("resourceClassName", "resourceClass")
    )

    with pytest.raises(ManifestError) as caught:
        load_yaml(text, source="claims.yaml")

    assert caught.value.document == 1
    assert caught.value.line == 8
    assert str(caught.value).startswith("claims.yaml: document 2 (line 8): spec.resourceClass:")


def test_load_yaml_timestamps_stay_strings() -> None:
    text = CLAIM_YAML.format(name="a").replace(
        "  name: a\n", "  name: a\n  creationTimestamp: 2024-01-01T00:00:00Z\n"
    )

    claim = load_yaml(text).objects[0]

    assert claim.metadata.creation_timestamp == "2024-01-01T00:00:00Z"


def test_load_yaml_syntax_error_location() -> None:
    text = CLAIM_YAML.format(name="a") + "  broken: [unclosed\n"

    with pytest.raises(ManifestError) as caught:
        load_yaml(text, source="bad.yaml")

    error = caught.value
    assert error.line == 8
    assert error.column is not None
    assert str(error).startswith("bad.yaml: document 1: line 8, column ")
    assert "invalid YAML" in str(error)


def test_load_yaml_duplicate_key_location() -> None:
    text = CLAIM_YAML.format(name="a").replace("  name: a\n", "  name: a\n  name: b\n")

    with pytest.raises(ManifestError) as caught:
        load_yaml(text, source="dup.yaml")

    error = caught.value
    assert error.line == 5
    assert str(error).startswith("dup.yaml: document 1: line 5, column 3: ")
    assert "found duplicate key 'name' (first at line 4, column 3)" in str(error)


def test_load_yaml_duplicate_key_in_json_manifest_syntax() -> None:
    with pytest.raises(ManifestError, match="found duplicate key 'kind'"):
        load_yaml('{"apiVersion": "v1", "kind": "Pod", "kind": "Node"}', source="flow.yaml")


def test_load_yaml_en_dash_separator() -> None:
    text = CLAIM_YAML.format(name="a") + "\u2013--\n" + CLAIM_YAML.format(name="b")

    with pytest.raises(ManifestError) as caught:
        load_yaml(text, source="dash.yaml")

    message = str(caught.value)
    assert "Line 7 is '–--'" in message
    assert "en dash (U+2013)" in message
    assert "a document separator is three hyphens '---'" in message


def test_load_yaml_tab_indentation() -> None:
    text = "apiVersion: v1\nkind: Namespace\nmetadata:\n\tname: x\n"

    with pytest.raises(ManifestError) as caught:
        load_yaml(text)

    assert caught.value.line == 4
    assert "'\\t'" in str(caught.value)


def test_load_yaml_expands_list() -> None:
    wire = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [to_dict(FULL_OBJECTS[0]), to_dict(FULL_OBJECTS[1])],
    }

    result = load_yaml(yaml.safe_dump(wire))

    assert result.objects == FULL_OBJECTS[:2]


def test_load_yaml_typed_list_items_inherit_kind() -> None:
    wire = {
        "apiVersion": "resource.k8s.io/v1alpha2",
        "kind": "ResourceClaimList",
        "metadata": {"resourceVersion": "3"},
        "items": [{"metadata": {"name": "a"}, "spec": {"resourceClassName": "gpu"}}],
    }

    result = load_yaml(yaml.safe_dump(wire))

    assert result.objects == [
        ResourceClaim(
            metadata=ObjectMeta(name="a"), spec=ResourceClaimSpec(resource_class_name="gpu")
        )
    ]


def test_load_yaml_list_item_error_path() -> None:
    bad = to_dict(FULL_OBJECTS[1])
    bad["spec"]["allocationMode"] = 1
    wire = {"apiVersion": "v1", "kind": "List", "items": [to_dict(FULL_OBJECTS[0]), bad]}

    with pytest.raises(ManifestError) as caught:
        load_yaml(yaml.safe_dump(wire), source="list.yaml")

    assert caught.value.path == "items[1].spec.allocationMode"
    assert caught.value.line == 1


def test_load_yaml_list_ignored_paths_prefixed() -> None:
    pod = pod_with_image()
    wire = {"apiVersion": "v1", "kind": "List", "items": [pod]}

    result = load_yaml(yaml.safe_dump(wire), lenient=True)

    assert [f.path for f in result.ignored] == [
        "items[0].spec.containers[0].image",
        "items[0].spec.volumes",
    ]


# --------------------------------------------------------------------------------------
# Files and folders
# --------------------------------------------------------------------------------------


def test_load_path_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(ManifestError) as caught:
        load_path(missing)

    assert caught.value.source == str(missing)
    assert "the file does not exist" in str(caught.value)


def test_load_path_folder_recursive_sorted(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.yml").write_text(CLAIM_YAML.format(name="two"))
    (tmp_path / "a.yaml").write_text(CLAIM_YAML.format(name="one"))
    (tmp_path / "c.json").write_text(json.dumps(yaml.safe_load(CLAIM_YAML.format(name="three"))))
    (tmp_path / "notes.txt").write_text("not a manifest: [")
    (tmp_path / "readme.md").write_text("```yaml\nnot: [a manifest\n```\n")

    result = load_path(tmp_path)

    assert [o.name for o in result.objects] == ["one", "two", "three"]


def test_load_path_json_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "apiVersion": "v1",\n  "kind": \n}\n')

    with pytest.raises(ManifestError) as caught:
        load_path(path)

    assert caught.value.line == 4
    assert str(caught.value).startswith(f"{path}: document 1: line 4, column 1: invalid JSON")


def test_load_path_markdown_blocks(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n```yaml\n"
        + CLAIM_YAML.format(name="a")
        + "```\n\n```shell\nkubectl get pods\n```\n\n```yaml\n"
        + CLAIM_YAML.format(name="b").replace("resourceClassName: gpu", "resourceClassName: [")
        + "```\n"
    )

    with pytest.raises(ManifestError) as caught:
        load_path(page)

    # Line 22 of the page contains "resourceClassName: [" in the second YAML block.
    assert caught.value.document == 1
    assert caught.value.line == 22
    assert "the line reads 'resourceClassName: ['" in str(caught.value)


def test_load_path_markdown_objects(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Text\n```yaml\n"
        + CLAIM_YAML.format(name="a")
        + "```\n~~~yml\n"
        + CLAIM_YAML.format(name="b")
        + "~~~\n"
    )

    assert [o.name for o in load_path(page).objects] == ["a", "b"]
