"""The built-in driver models, placement policies and registries, called directly (no SimPy)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sim.api.types import (
    GenericObject,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    ObjectMeta,
    OwnerReference,
    Pod,
    ResourceClaim,
    ResourceClaimParametersReference,
    ResourceClaimSpec,
    ResourceClass,
    ResourceClassParametersReference,
)
from sim.cluster.driver import (
    ClaimAllocation,
    DriverConfig,
    DriverError,
    ModelContext,
    StaticNodeView,
)
from sim.drivers import (
    available_driver_models,
    available_placement_policies,
    build_driver_model,
    get_driver_model,
    get_placement_policy,
)
from sim.drivers.devices import DevicesModel, parse_parameters
from sim.drivers.network_attached import NetworkAttachedModel
from sim.drivers.node_local import NodeLocalModel
from sim.drivers.placement import NodeCandidate

DRIVER = "gpu.example.com"
POD = Pod(metadata=ObjectMeta(name="p", namespace="default", uid="pod-uid"))


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def context(nodes: Mapping[str, Mapping[str, str]], seed: int = 0) -> ModelContext:
    return ModelContext(DRIVER, np.random.default_rng(seed), StaticNodeView(nodes))


def plain_nodes(*names: str) -> dict[str, dict[str, str]]:
    return {name: {"kubernetes.io/hostname": name} for name in names}


def make_claim(
    uid: str, *, generated: bool = False, params: str = "", group: str = ""
) -> ResourceClaim:
    owners = ()
    if generated:
        owners = (
            OwnerReference(api_version="v1", kind="Pod", name="p", uid="pod-uid", controller=True),
        )
    ref = (
        ResourceClaimParametersReference(api_group=group, kind=params, name="params")
        if params
        else None
    )
    return ResourceClaim(
        metadata=ObjectMeta(
            name=f"claim-{uid}", namespace="default", uid=uid, owner_references=owners
        ),
        spec=ResourceClaimSpec(resource_class_name="gpu", parameters_ref=ref),
    )


def params_object(api_version: str, kind: str, body: dict[str, Any]) -> GenericObject:
    return GenericObject(
        api_version=api_version,
        kind=kind,
        metadata=ObjectMeta(name="params", namespace="default", uid=f"{kind}-uid"),
        body=body,
    )


def allocation(
    uid: str,
    *,
    generated: bool = False,
    claim_params: GenericObject | None = None,
    class_params: GenericObject | None = None,
) -> ClaimAllocation:
    group = claim_params.api_version.rpartition("/")[0] if claim_params else ""
    claim = make_claim(
        uid, generated=generated, params=claim_params.kind if claim_params else "", group=group
    )
    class_ref = None
    if class_params is not None:
        class_group = class_params.api_version.rpartition("/")[0]
        class_ref = ResourceClassParametersReference(
            api_group=class_group, kind=class_params.kind, name="params"
        )
    resource_class = ResourceClass(
        metadata=ObjectMeta(name="gpu"), driver_name=DRIVER, parameters_ref=class_ref
    )
    return ClaimAllocation(f"entry-{uid}", claim, resource_class, claim_params, class_params)


def allocate(model: Any, uids: list[str], node: str = "", **kwargs: Any) -> list[ClaimAllocation]:
    claims = [allocation(uid, **kwargs) for uid in uids]
    model.allocate(claims, node)
    return claims


def unsuitable(model: Any, uids: list[str], nodes: list[str], **kwargs: Any) -> list[str]:
    claims = [allocation(uid, **kwargs) for uid in uids]
    model.unsuitable_nodes(POD, claims, nodes)
    assert all(c.unsuitable_nodes == claims[0].unsuitable_nodes for c in claims)
    return claims[0].unsuitable_nodes


def hostnames(claim: ClaimAllocation) -> tuple[str, ...] | None:
    assert claim.allocation is not None
    selector = claim.allocation.available_on_nodes
    if selector is None:
        return None
    return selector.node_selector_terms[0].match_expressions[0].values


def devices_model(nodes: dict[str, Any], seed: int = 0, **settings: Any) -> DevicesModel:
    model = build_driver_model(
        "devices", {"nodes": nodes, **settings}, context(plain_nodes(*nodes), seed)
    )
    assert isinstance(model, DevicesModel)
    return model


def node_local_model(cluster: dict[str, dict[str, str]], **settings: Any) -> NodeLocalModel:
    model = build_driver_model("node-local", settings, context(cluster))
    assert isinstance(model, NodeLocalModel)
    return model


# --------------------------------------------------------------------------------------
# Registries and settings
# --------------------------------------------------------------------------------------


def test_builtin_models_registered() -> None:
    assert {"node-local", "devices", "network-attached"} <= set(available_driver_models())
    assert get_driver_model("devices") is DevicesModel


def test_unknown_model_lists_available() -> None:
    with pytest.raises(KeyError) as raised:
        get_driver_model("gpus-by-magic")
    assert "gpus-by-magic" in str(raised.value)
    assert "node-local" in str(raised.value)


def test_unknown_placement_lists_available() -> None:
    with pytest.raises(KeyError) as raised:
        get_placement_policy("best")
    assert "first-fit" in str(raised.value)
    assert set(available_placement_policies()) == {"first-fit", "random", "pack", "spread"}


@pytest.mark.parametrize(
    ("model", "model_settings", "message"),
    [
        pytest.param("magic", {}, "unknown driver model 'magic'", id="unknown-model"),
        pytest.param("node-local", {"max_claims": 3}, "max_claims", id="unknown-setting"),
        pytest.param(
            "node-local", {"nodes": ["a"], "node_name_prefix": "b"}, "at most one", id="two-sources"
        ),
        pytest.param(
            "node-local", {"node_selector": "a in"}, "node_selector", id="bad-label-selector"
        ),
        pytest.param(
            "devices", {"nodes": {"n1": 1}, "placement": "best"}, "best", id="unknown-placement"
        ),
        pytest.param(
            "devices",
            {"nodes": {"n1": [{"name": "d"}, {"name": "d"}]}},
            "more than once",
            id="duplicate-device",
        ),
        pytest.param("network-attached", {}, "units", id="pool-size-missing"),
    ],
)
def test_driver_config_rejects_bad_model_settings(
    model: str, model_settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        DriverConfig(name=DRIVER, model=model, model_settings=model_settings)
    assert message in str(raised.value)


def test_driver_config_accepts_outage_pairs() -> None:
    config = DriverConfig(name=DRIVER, outages=[[1, 2], {"start_s": 5, "end_s": 6}])
    assert [(o.start_s, o.end_s) for o in config.outages] == [(1, 2), (5, 6)]
    with pytest.raises(ValidationError):
        DriverConfig(name=DRIVER, outages=[[3, 2]])


# --------------------------------------------------------------------------------------
# Placement policies
# --------------------------------------------------------------------------------------

CANDIDATES = [
    NodeCandidate("a", 4, 1),
    NodeCandidate("b", 2, 1),
    NodeCandidate("c", 8, 1),
    NodeCandidate("d", 2, 1),
]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        pytest.param("first-fit", "a", id="first-fit-first"),
        pytest.param("pack", "b", id="pack-fewest-left-earliest-tie"),
        pytest.param("spread", "c", id="spread-most-left"),
    ],
)
def test_placement_picks_node(policy: str, expected: str) -> None:
    assert get_placement_policy(policy).pick_node(CANDIDATES, np.random.default_rng(0)) == expected


def test_random_placement_uses_every_candidate() -> None:
    policy = get_placement_policy("random")
    rng = np.random.default_rng(3)
    picked = {policy.pick_node(CANDIDATES, rng) for _ in range(200)}
    assert picked == {"a", "b", "c", "d"}


@pytest.mark.parametrize("policy", ["first-fit", "random", "pack", "spread"])
def test_placement_picks_distinct_free_devices(policy: str) -> None:
    free = ["d0", "d1", "d2", "d3", "d4"]
    chosen = get_placement_policy(policy).pick_devices("n", free, 3, np.random.default_rng(1))
    assert len(set(chosen)) == 3
    assert set(chosen) <= set(free)
    assert chosen == sorted(chosen, key=free.index)


# --------------------------------------------------------------------------------------
# node-local (the Kubernetes test driver)
# --------------------------------------------------------------------------------------

LABELLED = {
    "n1": {"kubernetes.io/hostname": "n1", "gpu": "yes"},
    "n2": {"kubernetes.io/hostname": "n2"},
    "dra-3": {"kubernetes.io/hostname": "dra-3", "gpu": "yes"},
}


@pytest.mark.parametrize(
    ("settings", "busy", "pending", "expected"),
    [
        pytest.param({}, {"n1": 5}, 3, [], id="unlimited-nothing-unsuitable"),
        pytest.param({"nodes": ["n1"]}, {}, 1, [], id="unlimited-even-without-hardware"),
        pytest.param({"max_claims_per_node": 2}, {"n1": 1}, 1, [], id="room-for-one"),
        pytest.param(
            {"max_claims_per_node": 2}, {"n1": 1}, 2, ["n1"], id="claims-counted-together"
        ),
        pytest.param(
            {"max_claims_per_node": 2, "nodes": ["n1"]}, {}, 1, ["n2", "dra-3"], id="name-list"
        ),
        pytest.param(
            {"max_claims_per_node": 2, "node_name_prefix": "dra-"}, {}, 1, ["n1", "n2"], id="prefix"
        ),
        pytest.param(
            {"max_claims_per_node": 2, "node_selector": "gpu=yes"},
            {},
            1,
            ["n2"],
            id="label-selector",
        ),
        pytest.param(
            {"max_claims_per_node": 2, "network_attached": True},
            {"": 1},
            2,
            ["n1", "n2", "dra-3"],
            id="cluster-full",
        ),
    ],
)
def test_node_local_unsuitable_nodes(
    settings: dict[str, Any], busy: dict[str, int], pending: int, expected: list[str]
) -> None:
    model = node_local_model(LABELLED, **settings)
    for node, count in busy.items():
        uids = [f"busy-{node}-{i}" for i in range(count)]
        results = allocate(model, uids, node)
        assert all(c.error is None for c in results)
    assert (
        unsuitable(model, [f"new-{i}" for i in range(pending)], ["n1", "n2", "dra-3"]) == expected
    )


@pytest.mark.parametrize(
    ("settings", "selected", "error"),
    [
        pytest.param({"nodes": ["n1"]}, "n2", "resources exhausted on node 'n2'", id="no-hardware"),
        pytest.param(
            {"max_claims_per_node": 1}, "n1", "resources exhausted on node 'n1'", id="full"
        ),
        pytest.param(
            {"max_claims_per_node": 1, "nodes": ["n1"]},
            "",
            "exhausted on all nodes",
            id="immediate-full",
        ),
        pytest.param(
            {"max_claims_per_node": 1, "network_attached": True},
            "n2",
            "exhausted in the cluster",
            id="cluster-full",
        ),
    ],
)
def test_node_local_allocation_fails(settings: dict[str, Any], selected: str, error: str) -> None:
    model = node_local_model(LABELLED, **settings)
    assert allocate(model, ["first"], "n1")[0].error is None
    (result,) = allocate(model, ["second"], selected)
    assert result.allocation is None
    assert result.error is not None
    assert error in result.error


def test_node_local_allocation_idempotent() -> None:
    model = node_local_model(LABELLED, max_claims_per_node=1)
    (first,) = allocate(model, ["c"], "n1")
    (again,) = allocate(model, ["c"], "n2")
    assert again.error is None
    assert again.allocation == first.allocation
    assert hostnames(again) == ("n1",)
    assert model.allocations == 1
    assert model.devices_of("c") == ("n1", ["slot-0"])


def test_node_local_immediate_picks_node_with_room() -> None:
    model = node_local_model(LABELLED, max_claims_per_node=1, node_selector="gpu=yes")
    first, second = allocate(model, ["a", "b"], "")
    assert {hostnames(first), hostnames(second)} == {("n1",), ("dra-3",)}
    assert model.inventory() == {"dra-3": (1, 1), "n1": (1, 1)}


def test_node_local_network_attached_available_on_hardware_nodes() -> None:
    model = node_local_model(LABELLED, network_attached=True, nodes=["n1", "n2"], shareable=True)
    (claim,) = allocate(model, ["c"], "dra-3")
    assert hostnames(claim) == ("n1", "n2")
    assert claim.allocation is not None
    assert claim.allocation.shareable is True
    assert model.devices_of("c") == ("", ["slot-0"])


def test_node_local_deallocate_frees_slot() -> None:
    model = node_local_model(LABELLED, max_claims_per_node=2)
    first, _second = allocate(model, ["a", "b"], "n1")
    model.deallocate(first.claim)
    model.deallocate(first.claim)
    assert model.deallocations == 1
    (third,) = allocate(model, ["c"], "n1")
    assert model.devices_of("c") == ("n1", ["slot-0"])
    assert model.devices_of("b") == ("n1", ["slot-1"])
    assert third.error is None


def test_node_local_accepts_only_configmap_parameters() -> None:
    model = node_local_model(LABELLED)
    configmap = params_object("v1", "ConfigMap", {"data": {"Size": "big"}})
    model.validate_parameters(allocation("ok", claim_params=configmap))
    (claim,) = allocate(model, ["ok"], "n1", claim_params=configmap)
    assert claim.allocation is not None
    assert json.loads(claim.allocation.resource_handles[0].data) == {
        "EnvVars": {"user_size": "big"},
        "NodeName": "n1",
    }
    crd = params_object(
        "gpu.resource.example.com/v1alpha1", "GpuClaimParameters", {"spec": {"count": 1}}
    )
    with pytest.raises(DriverError) as raised:
        model.validate_parameters(allocation("bad", claim_params=crd))
    assert "GpuClaimParameters" in str(raised.value)
    assert DRIVER in str(raised.value)


# --------------------------------------------------------------------------------------
# devices: parameters
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_version", "kind", "body", "count", "constraints", "shareable"),
    [
        pytest.param(
            "v1", "ConfigMap", {"data": {"count": "3"}}, 3, [], None, id="configmap-count"
        ),
        pytest.param("v1", "ConfigMap", {"data": {"a": "b"}}, None, [], None, id="configmap-plain"),
        pytest.param(
            "gpu.resource.example.com/v1alpha1",
            "GpuClaimParameters",
            {"spec": {"count": 4}},
            4,
            [],
            None,
            id="example-driver",
        ),
        pytest.param(
            "gpu.resource.intel.com/v1alpha2",
            "GpuClaimParameters",
            {"spec": {"count": 1, "type": "gpu", "memory": 2096}},
            1,
            ["memory>=2096"],
            False,
            id="intel-claim",
        ),
        pytest.param(
            "gpu.resource.intel.com/v1alpha2",
            "GpuClaimParameters",
            {"spec": {"count": 1, "shareable": True}},
            1,
            [],
            True,
            id="intel-claim-shareable",
        ),
        pytest.param(
            "gpu.resource.intel.com/v1alpha2",
            "GpuClassParameters",
            {"spec": {"shared": True}},
            None,
            [],
            None,
            id="intel-class-shared-not-shareable",
        ),
        pytest.param(
            "gpu.resource.nvidia.com/v1alpha1",
            "GpuClaimParameters",
            {"spec": {"count": 2, "selector": {"migEnabled": True}}},
            2,
            [],
            None,
            id="nvidia-claim",
        ),
        pytest.param(
            "gpu.resource.nvidia.com/v1alpha1",
            "MigDeviceClaimParameters",
            {"spec": {"profile": "1g.5gb", "sharing": {"strategy": "MPS"}}},
            1,
            ["profile='1g.5gb'"],
            None,
            id="nvidia-mig",
        ),
        pytest.param(
            "gpu.resource.nvidia.com/v1alpha1",
            "MigDeviceClaimParameters",
            {"spec": {"profile": "2g.10gb", "gpuClaimName": "mig-enabled-gpu"}},
            0,
            [],
            None,
            id="nvidia-mig-on-gpu-claim",
        ),
        pytest.param(
            "gpu.resource.nvidia.com/v1alpha1",
            "ComputeInstanceClaimParameters",
            {"spec": {"profile": "1c.2g.10gb", "migDeviceClaimName": "shared-2g.10gb"}},
            0,
            [],
            None,
            id="nvidia-compute-instance",
        ),
        pytest.param(
            "dra-sim.example.com/v1",
            "DeviceClaimParameters",
            {
                "spec": {
                    "count": 2,
                    "shareable": False,
                    "selector": {"model": "a100", "min_memory": 40, "max_index": 3},
                }
            },
            2,
            ["model='a100'", "memory>=40", "index<=3"],
            False,
            id="simulator-claim",
        ),
        pytest.param(
            "dra-sim.example.com/v1",
            "DeviceClassParameters",
            {"spec": {"selector": {"vendor": "x"}}},
            None,
            ["vendor='x'"],
            None,
            id="simulator-class",
        ),
    ],
)
def test_parameters_parsed_per_kind(
    api_version: str,
    kind: str,
    body: dict[str, Any],
    count: int | None,
    constraints: list[str],
    shareable: bool | None,
) -> None:
    parsed = parse_parameters(params_object(api_version, kind, body))
    assert parsed.count == count
    assert [str(c) for c in parsed.constraints] == constraints
    assert parsed.shareable == shareable


@pytest.mark.parametrize(
    ("api_version", "kind", "body", "message"),
    [
        pytest.param(
            "tpu.example.com/v1",
            "TpuClaimParameters",
            {"spec": {"count": 1}},
            "kind 'TpuClaimParameters' in API group 'tpu.example.com' are not supported",
            id="unknown-kind",
        ),
        pytest.param(
            "gpu.resource.nvidia.com/v1alpha1",
            "MigDeviceClaimParameters",
            {"spec": {"profile": 1}},
            "spec.profile must be a string",
            id="profile-not-string",
        ),
        pytest.param(
            "gpu.resource.intel.com/v1alpha2",
            "GpuClaimParameters",
            {"spec": {"shareable": "yes"}},
            "spec.shareable must be true or false",
            id="shareable-not-bool",
        ),
        pytest.param(
            "gpu.resource.example.com/v1alpha1",
            "GpuClaimParameters",
            {"spec": {"count": 0}},
            "spec.count must be a positive integer",
            id="zero-count",
        ),
        pytest.param(
            "dra-sim.example.com/v1",
            "DeviceClaimParameters",
            {"spec": {"selector": {"min_memory": "big"}}},
            "spec.selector.min_memory must be a number",
            id="bound-not-number",
        ),
        pytest.param(
            "gpu.resource.intel.com/v1alpha2",
            "GpuClassParameters",
            {"spec": {"shared": "yes"}},
            "spec.shared must be true or false",
            id="shared-not-bool",
        ),
    ],
)
def test_invalid_parameters_rejected(
    api_version: str, kind: str, body: dict[str, Any], message: str
) -> None:
    model = devices_model({"n1": 1})
    params = params_object(api_version, kind, body)
    with pytest.raises(DriverError) as raised:
        model.validate_parameters(allocation("c", claim_params=params))
    assert message in str(raised.value)
    assert f"driver {DRIVER}" in str(raised.value)


def test_parameters_group_from_reference_with_version() -> None:
    params = params_object("", "GpuClaimParameters", {"spec": {"count": 2}})
    assert parse_parameters(params, "gpu.resource.intel.com/v1alpha2").count == 2


def test_unsimulated_settings_noted_once() -> None:
    model = devices_model({"n1": 2})
    params = params_object(
        "gpu.resource.nvidia.com/v1alpha1",
        "GpuClaimParameters",
        {"spec": {"selector": {}, "sharing": {}}},
    )
    model.validate_parameters(allocation("a", claim_params=params))
    model.validate_parameters(allocation("b", claim_params=params))
    assert len(model.notes) == 2
    assert "spec.selector is not simulated" in model.notes[0]


# --------------------------------------------------------------------------------------
# devices: allocation
# --------------------------------------------------------------------------------------

GPU_NODES = {
    "small": [{"name": "g0", "attributes": {"memory": 1024, "model": "t4"}}],
    "big": [
        {"name": "g0", "attributes": {"memory": 40960, "model": "a100", "index": 0}},
        {"name": "g1", "attributes": {"memory": 40960, "model": "a100", "index": 1}},
    ],
    "plain": [{"name": "g0"}, {"name": "g1"}, {"name": "g2"}],
}


def simulator_params(**spec: Any) -> GenericObject:
    return params_object("dra-sim.example.com/v1", "DeviceClaimParameters", {"spec": spec})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({}, [], id="one-device-anywhere"),
        pytest.param({"count": 2}, ["small"], id="two-devices"),
        pytest.param({"count": 3}, ["small", "big"], id="three-devices"),
        pytest.param({"selector": {"model": "a100"}}, ["small", "plain"], id="equality"),
        pytest.param({"selector": {"min_memory": 2048}}, ["small", "plain"], id="minimum"),
        pytest.param(
            {"selector": {"max_index": 0}, "count": 2},
            ["small", "big", "plain"],
            id="maximum-too-few",
        ),
    ],
)
def test_devices_unsuitable_nodes(spec: dict[str, Any], expected: list[str]) -> None:
    model = devices_model(GPU_NODES)
    result = unsuitable(
        model, ["c"], ["small", "big", "plain", "unknown"], claim_params=simulator_params(**spec)
    )
    assert result == [*expected, "unknown"]


def test_intel_memory_checked_only_where_stated() -> None:
    model = devices_model(GPU_NODES)
    params = params_object(
        "gpu.resource.intel.com/v1alpha2", "GpuClaimParameters", {"spec": {"memory": 2096}}
    )
    assert unsuitable(model, ["c"], ["small", "big", "plain"], claim_params=params) == ["small"]


def test_devices_claims_fit_jointly() -> None:
    # First-fit would give g0 to the first claim and leave nothing for the second.
    nodes = {
        "n1": [
            {"name": "g0", "attributes": {"a": 1, "b": 1}},
            {"name": "g1", "attributes": {"a": 1}},
        ]
    }
    model = devices_model(nodes)
    first = allocation("first", claim_params=simulator_params(selector={"a": 1}))
    second = allocation("second", claim_params=simulator_params(selector={"b": 1}))
    model.unsuitable_nodes(POD, [first, second], ["n1"])
    assert first.unsuitable_nodes == []
    model.allocate([first, second], "n1")
    assert model.devices_of("first") == ("n1", ["g1"])
    assert model.devices_of("second") == ("n1", ["g0"])


def test_devices_partial_allocation_when_not_all_fit() -> None:
    model = devices_model({"n1": 1})
    first, second = allocate(model, ["first", "second"], "n1")
    assert first.error is None
    assert second.error is not None
    assert "resources exhausted on node 'n1'" in second.error


def test_devices_claim_pinned_to_its_node() -> None:
    model = devices_model({"n1": 2, "n2": 2})
    allocate(model, ["a"], "n1")
    assert unsuitable(model, ["a", "b"], ["n1", "n2"]) == ["n2"]


def test_devices_allocation_idempotent() -> None:
    model = devices_model({"n1": 2, "n2": 2})
    (first,) = allocate(model, ["c"], "n1")
    (again,) = allocate(model, ["c"], "n2")
    assert again.allocation == first.allocation
    assert model.inventory() == {"n1": (2, 1), "n2": (2, 0)}


@pytest.mark.parametrize(
    ("generated", "class_shareable", "setting", "expected"),
    [
        pytest.param(False, None, None, True, id="named-claim"),
        pytest.param(True, None, None, False, id="generated-claim"),
        pytest.param(True, True, None, True, id="class-parameters-shareable"),
        pytest.param(False, False, None, False, id="class-parameters-exclusive"),
        pytest.param(True, None, True, True, id="model-setting"),
    ],
)
def test_devices_shareable(
    generated: bool, class_shareable: bool | None, setting: bool | None, expected: bool
) -> None:
    model = devices_model({"n1": 1}, shareable=setting)
    class_params = None
    if class_shareable is not None:
        class_params = params_object(
            "dra-sim.example.com/v1",
            "DeviceClassParameters",
            {"spec": {"shareable": class_shareable}},
        )
    (claim,) = allocate(model, ["c"], "n1", generated=generated, class_params=class_params)
    assert claim.allocation is not None
    assert claim.allocation.shareable is expected


def intel_params(kind: str, spec: dict[str, Any]) -> GenericObject:
    return params_object("gpu.resource.intel.com/v1alpha2", kind, {"spec": spec})


@pytest.mark.parametrize(
    ("class_spec", "claim_spec", "expected"),
    [
        pytest.param({"shared": True}, {"count": 1}, False, id="shared-class-exclusive-claim"),
        pytest.param({"shared": False}, {"shareable": True}, True, id="shareable-claim"),
        pytest.param({"shared": True}, {"shareable": False}, False, id="claim-says-exclusive"),
    ],
)
def test_intel_shareable_from_claim_parameters(
    class_spec: dict[str, Any], claim_spec: dict[str, Any], expected: bool
) -> None:
    model = devices_model({"n1": 2})
    (claim,) = allocate(
        model,
        ["c"],
        "n1",
        class_params=intel_params("GpuClassParameters", class_spec),
        claim_params=intel_params("GpuClaimParameters", claim_spec),
    )
    assert claim.allocation is not None
    assert claim.allocation.shareable is expected


def test_intel_shared_class_noted() -> None:
    model = devices_model({"n1": 2})
    class_params = intel_params("GpuClassParameters", {"shared": True})
    model.validate_parameters(allocation("c", class_params=class_params))
    (note,) = model.notes
    assert "spec.shared is not simulated" in note


def nvidia_params(kind: str, spec: dict[str, Any]) -> GenericObject:
    return params_object("gpu.resource.nvidia.com/v1alpha1", kind, {"spec": spec})


MIG_NODES = {
    "sliced": [
        {"name": "mig-0", "attributes": {"profile": "1g.5gb"}},
        {"name": "mig-1", "attributes": {"profile": "2g.10gb"}},
    ],
    "whole": [{"name": "gpu-0"}],
}


@pytest.mark.parametrize(
    ("profile", "expected_unsuitable"),
    [
        pytest.param("1g.5gb", [], id="declared-profile"),
        pytest.param("3g.20gb", ["sliced"], id="profile-not-declared-on-node"),
    ],
)
def test_nvidia_mig_matches_profile_where_declared(
    profile: str, expected_unsuitable: list[str]
) -> None:
    model = devices_model(MIG_NODES)
    params = nvidia_params("MigDeviceClaimParameters", {"profile": profile})
    result = unsuitable(model, ["c"], ["sliced", "whole"], claim_params=params)
    assert result == expected_unsuitable


def test_nvidia_mig_takes_device_with_profile() -> None:
    model = devices_model(MIG_NODES)
    params = nvidia_params("MigDeviceClaimParameters", {"profile": "2g.10gb"})
    allocate(model, ["c"], "sliced", claim_params=params)
    assert model.devices_of("c") == ("sliced", ["mig-1"])


def test_nvidia_mig_settings_noted() -> None:
    model = devices_model(MIG_NODES)
    params = nvidia_params(
        "MigDeviceClaimParameters",
        {"profile": "1g.5gb", "sharing": {"strategy": "TimeSlicing"}, "uninitialized": True},
    )
    model.validate_parameters(allocation("c", claim_params=params))
    assert len(model.notes) == 3
    assert "spec.sharing strategy 'TimeSlicing' is not simulated" in model.notes[0]
    assert "spec.uninitialized is not simulated" in model.notes[1]
    assert "spec.profile '1g.5gb'" in model.notes[2]


@pytest.mark.parametrize(
    ("kind", "spec", "noted"),
    [
        pytest.param(
            "MigDeviceClaimParameters",
            {"profile": "3g.20gb", "gpuClaimName": "mig-enabled-gpu"},
            "spec.gpuClaimName 'mig-enabled-gpu'",
            id="mig-on-gpu-claim",
        ),
        pytest.param(
            "ComputeInstanceClaimParameters",
            {"profile": "1c.2g.10gb", "migDeviceClaimName": "shared-2g.10gb"},
            "spec.migDeviceClaimName 'shared-2g.10gb'",
            id="compute-instance",
        ),
    ],
)
def test_nvidia_slice_claim_takes_no_device(kind: str, spec: dict[str, Any], noted: str) -> None:
    # One device only: the whole claim and the two slice claims must fit on it together.
    model = devices_model({"n1": 1, "n2": 1})
    gpu = nvidia_params("GpuClaimParameters", {"count": 1})
    slice_params = nvidia_params(kind, spec)
    whole = allocation("whole", claim_params=gpu)
    slices = [allocation(uid, claim_params=slice_params) for uid in ("s1", "s2")]
    model.unsuitable_nodes(POD, [whole, *slices], ["n1", "n2", "none"])
    assert whole.unsuitable_nodes == ["none"]
    model.allocate([whole, *slices], "n1")
    assert all(claim.error is None for claim in (whole, *slices))
    assert model.devices_of("whole") == ("n1", ["dev-0"])
    assert model.devices_of("s1") == ("n1", [])
    assert model.devices_of("s2") == ("n1", [])
    assert model.inventory() == {"n1": (1, 1), "n2": (1, 0)}
    assert any(noted in note for note in model.notes)
    model.deallocate(slices[0].claim)
    assert model.inventory()["n1"] == (1, 1)


def test_nvidia_slice_claim_immediate_allocation() -> None:
    model = devices_model({"n1": 0, "n2": 1})
    params = nvidia_params("ComputeInstanceClaimParameters", {"migDeviceClaimName": "m"})
    (claim,) = allocate(model, ["c"], "", claim_params=params)
    assert claim.error is None
    assert hostnames(claim) == ("n1",)


@pytest.mark.parametrize(
    ("placement", "expected"),
    [
        pytest.param("first-fit", "n1", id="first-fit"),
        pytest.param("pack", "n2", id="pack"),
        pytest.param("spread", "n3", id="spread"),
    ],
)
def test_devices_immediate_placement(placement: str, expected: str) -> None:
    model = devices_model({"n1": 3, "n2": 1, "n3": 4}, placement=placement)
    (claim,) = allocate(model, ["c"], "")
    assert hostnames(claim) == (expected,)


def test_devices_immediate_exhausted() -> None:
    model = devices_model({"n1": 1})
    allocate(model, ["a"], "")
    (claim,) = allocate(model, ["b"], "")
    assert claim.error is not None
    assert "resources exhausted on all nodes" in claim.error


# --------------------------------------------------------------------------------------
# network-attached
# --------------------------------------------------------------------------------------

RACK_A = NodeSelector(
    node_selector_terms=(
        NodeSelectorTerm(
            match_expressions=(NodeSelectorRequirement(key="rack", operator="In", values=("a",)),)
        ),
    )
)


def pool_model(units: int, selector: NodeSelector | None = RACK_A) -> NetworkAttachedModel:
    nodes = {"n1": {"rack": "a"}, "n2": {"rack": "b"}, "n3": {"rack": "a"}}
    model = build_driver_model(
        "network-attached", {"units": units, "node_selector": selector}, context(nodes)
    )
    assert isinstance(model, NetworkAttachedModel)
    return model


@pytest.mark.parametrize(
    ("units", "selector", "pending", "expected"),
    [
        pytest.param(2, RACK_A, 1, ["n2"], id="unreachable-node"),
        pytest.param(2, None, 2, [], id="every-node-reaches"),
        pytest.param(1, RACK_A, 2, ["n1", "n2", "n3"], id="pool-too-small"),
    ],
)
def test_pool_unsuitable_nodes(
    units: int, selector: NodeSelector | None, pending: int, expected: list[str]
) -> None:
    model = pool_model(units, selector)
    assert unsuitable(model, [f"c{i}" for i in range(pending)], ["n1", "n2", "n3"]) == expected


def test_pool_allocation() -> None:
    model = pool_model(3)
    (claim,) = allocate(model, ["c"], "n3", claim_params=simulator_params(count=2))
    assert claim.allocation is not None
    assert claim.allocation.available_on_nodes == RACK_A
    assert model.devices_of("c") == ("", ["unit-0", "unit-1"])
    (unreachable,) = allocate(model, ["d"], "n2")
    assert unreachable.error is not None
    assert "does not reach the pool" in unreachable.error
    (too_big,) = allocate(model, ["e"], "", claim_params=simulator_params(count=2))
    assert too_big.error is not None
    assert "pool exhausted" in too_big.error
    model.deallocate(claim.claim)
    assert model.inventory() == {"": (3, 0)}


# --------------------------------------------------------------------------------------
# Property: no device is ever held by two claims
# --------------------------------------------------------------------------------------

OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["allocate", "allocate", "deallocate"]),
        st.integers(0, 7),  # claim number
        st.sampled_from(["", "n1", "n2", "n3"]),  # selected node ("" = Immediate)
        st.integers(1, 3),  # devices requested
    ),
    max_size=40,
)


def check_no_double_use(model: Any, live: set[str]) -> None:
    held: list[tuple[str, str]] = []
    for uid in live:
        placed = model.devices_of(uid)
        assert placed is not None
        node, devices = placed
        held.extend((node, device) for device in devices)
    assert len(held) == len(set(held))
    assert sum(use.used for use in model.inventory().values()) == (
        len(held) if not isinstance(model, NodeLocalModel) else len(live)
    )


def run_operations(
    model: Any, operations: list[tuple[str, int, str, int]], *, with_count: bool
) -> None:
    live: set[str] = set()
    for operation, number, node, count in operations:
        uid = f"claim-{number}"
        if operation == "deallocate":
            model.deallocate(make_claim(uid))
            live.discard(uid)
        else:
            params = simulator_params(count=count) if with_count else None
            (claim,) = allocate(model, [uid], node, claim_params=params)
            if claim.error is None:
                live.add(uid)
        check_no_double_use(model, live)


@settings(max_examples=60, deadline=None)
@given(operations=OPERATIONS, placement=st.sampled_from(["first-fit", "random", "pack", "spread"]))
def test_devices_never_double_allocated(
    operations: list[tuple[str, int, str, int]], placement: str
) -> None:
    model = devices_model({"n1": 2, "n2": 3, "n3": 1}, placement=placement)
    run_operations(model, operations, with_count=True)


@settings(max_examples=60, deadline=None)
@given(operations=OPERATIONS)
def test_node_local_never_over_limit(operations: list[tuple[str, int, str, int]]) -> None:
    model = node_local_model(plain_nodes("n1", "n2", "n3"), max_claims_per_node=2)
    run_operations(model, operations, with_count=False)
    assert all(use.used <= 2 for use in model.inventory().values())


@settings(max_examples=60, deadline=None)
@given(operations=OPERATIONS)
def test_pool_never_over_capacity(operations: list[tuple[str, int, str, int]]) -> None:
    model = pool_model(5, None)
    run_operations(model, operations, with_count=True)
    assert model.inventory()[""].used <= 5
