"""The gpushare driver model called directly: parameters, milli accounting, steering."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.api.types import (
    GenericObject,
    ObjectMeta,
    OwnerReference,
    Pod,
    ResourceClaim,
    ResourceClaimParametersReference,
    ResourceClaimSpec,
    ResourceClass,
)
from sim.cluster.driver import ClaimAllocation, DriverError, ModelContext, StaticNodeView
from sim.drivers import build_driver_model
from sim.drivers.gpushare import GpuShareModel

DRIVER = "gpu.openb.example.com"
GROUP = "dra-sim.example.com"


def model(nodes: dict[str, tuple[int, str]], **settings: Any) -> GpuShareModel:
    inventory = {
        node: [{"name": f"gpu-{i}", "attributes": {"model": gpu_model}} for i in range(count)]
        for node, (count, gpu_model) in nodes.items()
    }
    view = StaticNodeView({node: {"kubernetes.io/hostname": node} for node in nodes})
    built = build_driver_model(
        "gpushare",
        {"nodes": inventory, **settings},
        ModelContext(DRIVER, np.random.default_rng(0), view),
    )
    assert isinstance(built, GpuShareModel)
    return built


def claim(uid: str, spec: dict[str, Any] | None, pod_uid: str = "pod") -> ClaimAllocation:
    owner = OwnerReference(api_version="v1", kind="Pod", name=pod_uid, uid=pod_uid, controller=True)
    ref = ResourceClaimParametersReference(api_group=GROUP, kind="DeviceClaimParameters", name=uid)
    resource_claim = ResourceClaim(
        metadata=ObjectMeta(name=uid, namespace="default", uid=uid, owner_references=(owner,)),
        spec=ResourceClaimSpec(resource_class_name="gpu", parameters_ref=ref if spec else None),
    )
    parameters = None
    if spec is not None:
        parameters = GenericObject(
            api_version=f"{GROUP}/v1",
            kind="DeviceClaimParameters",
            metadata=ObjectMeta(name=uid, namespace="default"),
            body={"spec": spec},
        )
    resource_class = ResourceClass(metadata=ObjectMeta(name="gpu"), driver_name=DRIVER)
    return ClaimAllocation("gpu", resource_claim, resource_class, parameters, None)


def pod(uid: str = "pod") -> Pod:
    return Pod(metadata=ObjectMeta(name=uid, namespace="default", uid=uid))


def test_share_and_whole_gpus_accounted_in_milli() -> None:
    m = model({"n": (2, "T4")})
    a = claim("a", {"count": 1, "gpu_milli": 300})
    b = claim("b", {"count": 1, "gpu_milli": 600})
    m.allocate([a, b], "n")
    assert a.error is None and b.error is None
    assert m.allocated_milli() == 900
    node, devices = m.devices_of("a") or ("", [])
    assert node == "n"
    # Best fit puts the second share on the GPU the first one started.
    assert devices == ["gpu-0/share-0"]
    assert m.devices_of("b") == ("n", ["gpu-0/share-1"])
    whole = claim("c", {"count": 1})
    m.allocate([whole], "n")
    assert m.devices_of("c") == ("n", ["gpu-1"])
    too_much = claim("d", {"count": 1, "gpu_milli": 200})
    m.allocate([too_much], "n")
    assert too_much.error is not None and "resources exhausted" in too_much.error
    m.deallocate(a.claim)
    assert m.allocated_milli() == 1600
    assert m.inventory()["n"].used == 2


def test_model_constraint_makes_node_unsuitable() -> None:
    m = model({"t4": (1, "T4"), "p100": (1, "P100")})
    wants_p100 = claim("a", {"count": 1, "models": "P100|V100M16"})
    m.unsuitable_nodes(pod(), [wants_p100], ["t4", "p100"])
    assert wants_p100.unsuitable_nodes == ["t4"]


def test_steering_vetoes_lower_scoring_fitting_nodes() -> None:
    m = model({"empty": (2, "T4"), "half": (2, "T4")}, policy="best-fit", steering="best")
    m.allocate([claim("first", {"count": 1})], "half")
    second = claim("second", {"count": 1}, pod_uid="p2")
    m.unsuitable_nodes(pod("p2"), [second], ["empty", "half"])
    # Best fit prefers the node with less left: "half".
    assert second.unsuitable_nodes == ["empty"]


def test_steering_stops_after_rounds() -> None:
    m = model(
        {"empty": (2, "T4"), "half": (2, "T4")},
        policy="best-fit",
        steering="best",
        steering_rounds=1,
    )
    m.allocate([claim("first", {"count": 1})], "half")
    second = claim("second", {"count": 1}, pod_uid="p2")
    m.unsuitable_nodes(pod("p2"), [second], ["empty", "half"])
    m.unsuitable_nodes(pod("p2"), [second], ["empty", "half"])
    assert second.unsuitable_nodes == []


def test_no_steering_keeps_every_fitting_node() -> None:
    m = model({"empty": (2, "T4"), "half": (2, "T4")}, steering="none")
    m.allocate([claim("first", {"count": 2})], "half")
    second = claim("second", {"count": 1}, pod_uid="p2")
    m.unsuitable_nodes(pod("p2"), [second], ["empty", "half", "unknown"])
    assert second.unsuitable_nodes == ["half", "unknown"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param({"count": 2, "gpu_milli": 500}, "needs count 1", id="share-of-two"),
        pytest.param({"count": 0}, "positive integer", id="zero-count"),
        pytest.param({"gpu_milli": 1200}, "at most 1000", id="too-much-milli"),
        pytest.param({"models": 3}, "spec.models", id="bad-models"),
        pytest.param({"selector": {"model": "T4"}}, "unknown field", id="unknown-field"),
    ],
)
def test_invalid_parameters_rejected(spec: dict[str, Any], message: str) -> None:
    m = model({"n": (1, "T4")})
    with pytest.raises(DriverError, match=message):
        m.validate_parameters(claim("a", spec))


def test_fgd_policy_requires_workload_mix() -> None:
    with pytest.raises(ValueError, match="workload_mix"):
        model({"n": (1, "T4")}, policy="fgd")


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["allocate", "deallocate"]),
        st.integers(0, 7),
        st.sampled_from([100, 250, 330, 500, 750, 999, 1000]),
        st.integers(1, 3),
        st.sampled_from(["a", "b"]),
    ),
    max_size=40,
)


@settings(max_examples=30, deadline=None)
@given(OPERATIONS)
def test_milli_never_exceeds_a_gpu(operations: list[tuple[str, int, int, int, str]]) -> None:
    m = model({"a": (2, "T4"), "b": (4, "T4")}, policy="random")
    live: dict[str, int] = {}
    for action, index, milli, count, node in operations:
        uid = f"c{index}"
        if action == "allocate" and uid not in live:
            spec = {"count": 1, "gpu_milli": milli} if milli < 1000 else {"count": count}
            c = claim(uid, spec)
            m.allocate([c], node)
            if c.error is None:
                live[uid] = milli if milli < 1000 else 1000 * count
        elif action == "deallocate" and uid in live:
            m.deallocate(claim(uid, None).claim)
            del live[uid]
        left = m.cluster.gpu_left
        assert (left >= 0).all()
        assert (left <= 1000).all()
        assert m.allocated_milli() == sum(live.values())
        devices = []
        for uid in live:
            node, names = m.devices_of(uid) or ("", [])
            devices.extend((node, name) for name in names)
        assert len(devices) == len(set(devices))
