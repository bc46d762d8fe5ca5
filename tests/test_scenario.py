"""Tests of the scenario schema: defaults, arrivals, checks, overrides and the round trip."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.cluster.driver import DriverConfig
from sim.distributions import Constant, Empirical, Exponential, LogNormal, Normal, Uniform
from sim.scenario import (
    BurstArrivals,
    ConstantArrivals,
    ListedArrivals,
    NodePool,
    PoissonArrivals,
    Scenario,
    ScenarioError,
    TraceArrivals,
    apply_overrides,
    load_scenario,
    parse_scenario,
    read_scenario_data,
    resolved_data,
)

SCENARIOS_DIR = Path(__file__).resolve().parents[1] / "scenarios"


def base() -> dict[str, Any]:
    """A small valid scenario: one GPU pool, one driver, one class, one workload."""
    return {
        "name": "small",
        "cluster": {
            "node_pools": [
                {"name": "gpu", "count": 2, "devices": {"gpu.example.com": {"count": 2}}}
            ]
        },
        "drivers": [{"name": "gpu.example.com", "model": "devices"}],
        "resource_classes": [{"name": "gpu", "driver_name": "gpu.example.com"}],
        "workloads": [
            {
                "name": "web",
                "arrival": {"type": "poisson", "rate_per_s": 1.0},
                "count": 5,
                "claims": [{"name": "gpu", "template": {"resource_class": "gpu"}}],
            }
        ],
    }


def error_of(data: Any) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data, source="test.yaml")
    return caught.value


def with_change(path: list[str | int], value: Any) -> dict[str, Any]:
    """Return the base scenario with the value at `path` replaced."""
    data = base()
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


# --------------------------------------------------------------------------------------
# Defaults
# --------------------------------------------------------------------------------------


def test_empty_scenario_defaults() -> None:
    scenario = parse_scenario({})

    assert scenario.name == "scenario"
    assert scenario.seed == 1
    assert scenario.replications == 1
    assert scenario.horizon_s == 3600.0
    assert scenario.check_invariants is False
    assert scenario.cluster.node_pools == []
    assert scenario.drivers == []
    assert scenario.workloads == []
    assert scenario.control_plane.kubernetes_version == "1.29"
    assert scenario.control_plane.request_latency_s == Constant(value=0.004)


def test_null_lists_become_empty() -> None:
    scenario = parse_scenario({"drivers": None, "workloads": None, "shared_claims": None})

    assert scenario.drivers == []
    assert scenario.workloads == []
    assert scenario.shared_claims == []


def test_node_pool_defaults() -> None:
    pool = parse_scenario(base()).cluster.node_pools[0]

    assert pool.cpu == "32"
    assert pool.memory == "128Gi"
    assert pool.pods == 110
    assert pool.labels == {}
    assert pool.taints == []
    assert pool.devices["gpu.example.com"].name_prefix == "dev"


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        pytest.param(0, [], id="empty"),
        pytest.param(3, ["p-0", "p-1", "p-2"], id="one-digit"),
        pytest.param(11, ["p-00", "p-01", "p-10"], id="two-digits"),
    ],
)
def test_node_names_are_zero_padded(count: int, expected: list[str]) -> None:
    names = NodePool(name="p", count=count).node_names()

    assert len(names) == count
    assert set(expected) <= set(names)


def test_workload_defaults() -> None:
    workload = parse_scenario(base()).workloads[0]

    assert workload.namespace == "default"
    assert workload.start_s == 0.0
    assert workload.until_s is None
    assert workload.run_duration_s is None
    assert workload.pod.cpu == "100m"
    assert workload.pod.memory == "128Mi"
    assert workload.pod.containers == 1
    assert workload.pod.restart_policy == "Never"
    template = workload.claims[0].template
    assert template is not None
    assert template.allocation_mode == "WaitForFirstConsumer"
    assert template.parameters is None


def test_driver_defaults() -> None:
    driver = parse_scenario(base()).drivers[0]

    assert driver.workers == 5
    assert driver.allocate_latency_s == Constant(value=0.0)
    assert driver.parameters_lookup == "get"


# --------------------------------------------------------------------------------------
# Arrivals and distributions
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arrival", "model"),
    [
        pytest.param({"type": "constant", "interval_s": 2}, ConstantArrivals, id="constant"),
        pytest.param({"type": "poisson", "rate_per_s": 0.5}, PoissonArrivals, id="poisson"),
        pytest.param({"type": "bursts", "at_s": [0, 5], "size": 3}, BurstArrivals, id="bursts"),
        pytest.param({"type": "times", "at_s": [1, 2]}, ListedArrivals, id="times"),
        pytest.param(
            {"type": "trace", "at_s": [1, 2], "run_durations_s": [30, None]},
            TraceArrivals,
            id="trace",
        ),
    ],
)
def test_every_arrival_type_parses(arrival: dict[str, Any], model: type) -> None:
    scenario = parse_scenario(with_change(["workloads", 0, "arrival"], arrival))

    parsed = scenario.workloads[0].arrival
    assert isinstance(parsed, model)
    assert parsed.model_dump() == {**parsed.model_dump(), **arrival}


@pytest.mark.parametrize(
    ("arrival", "path", "fragment"),
    [
        pytest.param(
            {"type": "constant", "interval_s": 0},
            "workloads[0].arrival.interval_s",
            "greater than 0",
            id="zero-interval",
        ),
        pytest.param(
            {"type": "poisson", "rate": 1},
            "workloads[0].arrival.rate",
            "did you mean 'rate_per_s'",
            id="misspelt-rate",
        ),
        pytest.param(
            {"type": "bursts", "at_s": [1], "size": 0},
            "workloads[0].arrival.size",
            "greater than or equal to 1",
            id="empty-burst",
        ),
        pytest.param(
            {"type": "times", "at_s": []},
            "workloads[0].arrival.at_s",
            "at least 1 item",
            id="no-times",
        ),
        pytest.param(
            {"type": "times", "at_s": [1, -2]},
            "workloads[0].arrival.at_s[1]",
            "greater than or equal to 0",
            id="negative-time",
        ),
        pytest.param(
            {"type": "gamma", "shape": 2},
            "workloads[0].arrival",
            "'constant', 'poisson', 'bursts', 'times'",
            id="unknown-type",
        ),
    ],
)
def test_invalid_arrival(arrival: dict[str, Any], path: str, fragment: str) -> None:
    error = error_of(with_change(["workloads", 0, "arrival"], arrival))

    assert error.path == path
    assert fragment in str(error)
    assert str(error).startswith(f"test.yaml: {path}: ")


def test_endless_arrivals_need_a_limit() -> None:
    data = base()
    del data["workloads"][0]["count"]

    error = error_of(data)

    assert error.path == "workloads[0]"
    assert "needs 'count' or 'until_s'" in str(error)


def test_listed_arrivals_need_no_limit() -> None:
    data = with_change(["workloads", 0, "arrival"], {"type": "times", "at_s": [1]})
    del data["workloads"][0]["count"]

    assert parse_scenario(data).workloads[0].count is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(30, Constant(value=30), id="plain-int"),
        pytest.param(2.5, Constant(value=2.5), id="plain-float"),
        pytest.param({"type": "constant", "value": 4}, Constant(value=4), id="constant"),
        pytest.param(
            {"type": "uniform", "low": 1, "high": 3}, Uniform(low=1, high=3), id="uniform"
        ),
        pytest.param({"type": "exponential", "mean": 5}, Exponential(mean=5), id="exponential"),
        pytest.param({"type": "normal", "mean": 10, "std": 2}, Normal(mean=10, std=2), id="normal"),
        pytest.param(
            {"type": "lognormal", "median": 60, "sigma": 0.5},
            LogNormal(median=60, sigma=0.5),
            id="lognormal",
        ),
        pytest.param(
            {"type": "empirical", "values": [1, 2, 4]},
            Empirical(values=(1, 2, 4)),
            id="empirical",
        ),
    ],
)
def test_distribution_forms(value: Any, expected: Any) -> None:
    scenario = parse_scenario(with_change(["workloads", 0, "run_duration_s"], value))

    assert scenario.workloads[0].run_duration_s == expected


@pytest.mark.parametrize(
    ("value", "path", "fragment"),
    [
        pytest.param(
            {"type": "uniform", "low": 5, "high": 1},
            "workloads[0].run_duration_s",
            "high (1.0) must be >= low (5.0)",
            id="uniform-bounds",
        ),
        pytest.param(
            {"type": "exponential", "mean": -1},
            "workloads[0].run_duration_s.mean",
            "greater than 0",
            id="negative-mean",
        ),
        pytest.param(
            {"type": "weibull", "shape": 1},
            "workloads[0].run_duration_s",
            "'constant', 'uniform', 'exponential', 'normal', 'lognormal', 'empirical'",
            id="unknown-type",
        ),
        pytest.param(
            -3,
            "workloads[0].run_duration_s.value",
            "greater than or equal to 0",
            id="negative-constant",
        ),
    ],
)
def test_invalid_distribution(value: Any, path: str, fragment: str) -> None:
    error = error_of(with_change(["workloads", 0, "run_duration_s"], value))

    assert error.path == path
    assert fragment in str(error)


def test_control_plane_latency_plain_number() -> None:
    data = base()
    data["control_plane"] = {
        "request_latency_s": 0.01,
        "watch_delay_s": {"type": "exponential", "mean": 0.002},
    }

    control_plane = parse_scenario(data).control_plane

    assert control_plane.request_latency_s == Constant(value=0.01)
    assert control_plane.watch_delay_s == Exponential(mean=0.002)


# --------------------------------------------------------------------------------------
# Error messages: path, value, allowed values
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "error_path", "fragments"),
    [
        pytest.param(
            ["horizon_s"], "soon", "horizon_s", ["valid number", "(got 'soon')"], id="wrong-type"
        ),
        pytest.param(
            ["workloads", 0, "count"],
            -1,
            "workloads[0].count",
            ["greater than or equal to 0", "(got -1)"],
            id="negative-count",
        ),
        pytest.param(
            ["cluster", "node_pools", 0, "cpu"],
            [1],
            "cluster.node_pools[0].cpu",
            ["expected a valid string or a valid integer or a valid number", "(got [1])"],
            id="union-of-plain-types",
        ),
        pytest.param(
            ["workloads", 0, "claims", 0, "template", "allocation_mode"],
            "Now",
            "workloads[0].claims[0].template.allocation_mode",
            ["'Immediate' or 'WaitForFirstConsumer'", "(got 'Now')"],
            id="literal",
        ),
        pytest.param(
            ["cluster", "node_pools", 0, "name"],
            "GPU_pool",
            "cluster.node_pools[0].name",
            ["should match pattern", "(got 'GPU_pool')"],
            id="pattern",
        ),
        pytest.param(
            ["drivers", 0, "model"],
            "gpus",
            "drivers[0].model",
            ["unknown driver model", "devices, ", "network-attached, node-local", "(got 'gpus')"],
            id="unknown-driver-model",
        ),
        pytest.param(
            ["drivers", 0, "model_settings"],
            {"placement": "random-fit"},
            "drivers[0].model_settings.placement",
            ["unknown placement policy 'random-fit'", "first-fit"],
            id="driver-model-setting",
        ),
        pytest.param(
            ["drivers", 0, "model_settings"],
            {"nodez": {}},
            "drivers[0].model_settings.nodez",
            ["unknown key; did you mean 'nodes'?"],
            id="driver-model-unknown-setting",
        ),
    ],
)
def test_error_names_path_value_and_allowed(
    path: list[str | int], value: Any, error_path: str, fragments: list[str]
) -> None:
    error = error_of(with_change(path, value))

    message = str(error)
    assert error.path == error_path
    assert message.startswith(f"test.yaml: {error_path}: ")
    for fragment in fragments:
        assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("path", "key", "error_path", "suggestion"),
    [
        pytest.param([], "horizon", "horizon", "horizon_s", id="top-level"),
        pytest.param(
            ["cluster", "node_pools", 0],
            "label",
            "cluster.node_pools[0].label",
            "labels",
            id="node-pool",
        ),
        pytest.param(
            ["workloads", 0, "pod"], "memroy", "workloads[0].pod.memroy", "memory", id="pod"
        ),
        pytest.param(["drivers", 0], "worker", "drivers[0].worker", "workers", id="driver"),
        pytest.param(
            ["control_plane", "scheduler"],
            "qsp",
            "control_plane.scheduler.qsp",
            "qps",
            id="nested-default",
        ),
        pytest.param(
            ["workloads", 0, "arrival"],
            "rate",
            "workloads[0].arrival.rate",
            "rate_per_s",
            id="unit-suffix-left-out",
        ),
    ],
)
def test_unknown_key_suggests_closest(
    path: list[str | int], key: str, error_path: str, suggestion: str
) -> None:
    data = base()
    target: Any = data
    for part in path:
        target = target.setdefault(part, {}) if isinstance(part, str) else target[part]
    target[key] = 1

    error = error_of(data)

    assert error.path == error_path
    assert f"did you mean {suggestion!r}?" in str(error)
    assert "allowed: " in str(error)


def test_unknown_key_reported_before_missing_one() -> None:
    data = base()
    data["cluster"]["node_pools"][0]["cuont"] = data["cluster"]["node_pools"][0].pop("count")

    error = error_of(data)

    assert error.path == "cluster.node_pools[0].cuont"
    assert "did you mean 'count'?" in str(error)


def test_missing_key_named() -> None:
    data = base()
    del data["workloads"][0]["arrival"]

    error = error_of(data)

    assert error.path == "workloads[0].arrival"
    assert "required key is missing" in str(error)


def test_scenario_must_be_mapping() -> None:
    error = error_of(["not", "a", "mapping"])

    assert "must be a mapping" in str(error)


# --------------------------------------------------------------------------------------
# Cross-reference and uniqueness checks
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        pytest.param(
            lambda d: d["resource_classes"][0].update(driver_name="tpu.example.com"),
            "resource_classes[0].driver_name: no driver named 'tpu.example.com' "
            "(drivers: ['gpu.example.com'])",
            id="class-driver",
        ),
        pytest.param(
            lambda d: d["cluster"]["node_pools"][0]["devices"].update(
                {"nic.example.com": {"count": 1}}
            ),
            "cluster.node_pools[0].devices: no driver named 'nic.example.com'",
            id="pool-devices-driver",
        ),
        pytest.param(
            lambda d: d["workloads"][0]["claims"][0]["template"].update(resource_class="tpu"),
            "workloads[0].claims[0].template.resource_class: no resource class named 'tpu' "
            "(classes: ['gpu'])",
            id="template-class",
        ),
        pytest.param(
            lambda d: d.update(shared_claims=[{"name": "s", "resource_class": "tpu"}]),
            "shared_claims[0].resource_class: no resource class named 'tpu'",
            id="shared-claim-class",
        ),
        pytest.param(
            lambda d: d["workloads"][0]["claims"].append({"name": "extra", "claim": "missing"}),
            "workloads[0].claims[1].claim: no shared claim named 'missing' in namespace "
            "'default' (shared claims: none)",
            id="shared-claim-name",
        ),
        pytest.param(
            lambda d: d["workloads"][0]["claims"].append(
                {"name": "both", "claim": "x", "template": {"resource_class": "gpu"}}
            ),
            "workloads[0].claims[1]: set exactly one of 'template' and 'claim'",
            id="template-and-claim",
        ),
        pytest.param(
            lambda d: d["workloads"].append(copy.deepcopy(d["workloads"][0])),
            "workloads[1].name: duplicate name 'web' (also workloads[0])",
            id="duplicate-workload",
        ),
        pytest.param(
            lambda d: d["cluster"]["node_pools"].append({"name": "gpu", "count": 1}),
            "cluster.node_pools[1].name: duplicate name 'gpu'",
            id="duplicate-pool",
        ),
        pytest.param(
            lambda d: d["drivers"].append({"name": "gpu.example.com", "model": "node-local"}),
            "drivers[1].name: duplicate name 'gpu.example.com'",
            id="duplicate-driver",
        ),
        pytest.param(
            lambda d: d["workloads"][0]["claims"].append(
                copy.deepcopy(d["workloads"][0]["claims"][0])
            ),
            "workloads[0].claims[1].name: duplicate name 'gpu'",
            id="duplicate-claim-entry",
        ),
    ],
)
def test_reference_checks(change: Any, fragment: str) -> None:
    data = base()
    change(data)

    error = error_of(data)

    assert fragment in str(error)


def test_same_workload_name_in_two_namespaces_is_fine() -> None:
    data = base()
    data["workloads"].append({**copy.deepcopy(data["workloads"][0]), "namespace": "other"})

    assert len(parse_scenario(data).workloads) == 2


def test_manifests_lift_class_checks(tmp_path: Path) -> None:
    """Classes and shared claims may come from manifests, which are read only at build time."""
    data = base()
    data["workloads"][0]["claims"][0]["template"]["resource_class"] = "from-manifest"
    data["manifests"] = ["classes.yaml"]

    assert parse_scenario(data).workloads[0].claims[0].template is not None


# --------------------------------------------------------------------------------------
# Node faults
# --------------------------------------------------------------------------------------


def with_node_faults(*entries: dict[str, Any]) -> dict[str, Any]:
    data = base()
    data["node_faults"] = list(entries)
    return data


def test_node_faults_pool_and_node_combine() -> None:
    """A pool-wide plugin window and a restart of one node both apply to that node."""
    data = with_node_faults(
        {"nodes": ["gpu"], "plugins": {"gpu.example.com": {"fail_prepare_windows_s": [[0, 5]]}}},
        {
            "nodes": ["gpu-1"],
            "kubelet": {"restarts": [{"at_s": 9, "down_s": 1}]},
            "plugins": {"gpu.example.com": {"fail_prepare_windows_s": [[7, 8]], "max_devices": 1}},
        },
    )

    faults = parse_scenario(data).node_faults_by_node()

    assert sorted(faults) == ["gpu-0", "gpu-1"]
    assert faults["gpu-0"].kubelet.restarts == ()
    assert faults["gpu-1"].kubelet.restarts[0].at_s == 9
    plugin = faults["gpu-1"].plugins["gpu.example.com"]
    assert plugin.fail_prepare_windows_s == ((0, 5), (7, 8))
    assert plugin.max_devices == 1


def test_node_faults_conflicting_value_rejected() -> None:
    data = with_node_faults(
        {"nodes": ["gpu"], "plugins": {"gpu.example.com": {"max_devices": 1}}},
        {"nodes": ["gpu-0"], "plugins": {"gpu.example.com": {"max_devices": 2}}},
    )

    error = error_of(data)

    assert "node_faults[1].plugins.gpu.example.com.max_devices" in str(error)
    assert "sets it to 1 for the same node (got 2)" in str(error)


def test_node_faults_resolved_loads_back_equal() -> None:
    data = with_node_faults(
        {"nodes": ["gpu"], "kubelet": {"reboots": [{"at_s": 3, "down_s": 2}]}},
        {"nodes": ["gpu-0"], "kubelet": {"crash_before_checkpoint_at_s": 1, "crash_down_s": 4}},
    )
    scenario = parse_scenario(data)

    reloaded = parse_scenario(resolved_data(scenario))

    assert reloaded.node_faults_by_node() == scenario.node_faults_by_node()


# --------------------------------------------------------------------------------------
# Driver inventories from node pools
# --------------------------------------------------------------------------------------


def test_devices_model_gets_pool_devices() -> None:
    data = base()
    data["cluster"]["node_pools"][0]["devices"]["gpu.example.com"] = {
        "count": 2,
        "attributes": {"model": "A100"},
        "name_prefix": "gpu",
    }

    settings = parse_scenario(data).drivers[0].model_settings

    assert sorted(settings["nodes"]) == ["gpu-0", "gpu-1"]
    assert settings["nodes"]["gpu-0"] == [
        {"name": "gpu-0", "attributes": {"model": "A100"}},
        {"name": "gpu-1", "attributes": {"model": "A100"}},
    ]


def test_node_local_model_gets_nodes_and_limit() -> None:
    data = base()
    data["drivers"][0]["model"] = "node-local"
    data["cluster"]["node_pools"].append(
        {"name": "big", "count": 1, "devices": {"gpu.example.com": {"count": 8}}}
    )
    data["cluster"]["node_pools"].append({"name": "cpu", "count": 3})

    settings = parse_scenario(data).drivers[0].model_settings

    assert settings["nodes"] == ["gpu-0", "gpu-1", "big-0"]
    assert settings["max_claims_per_node"] == 8


def test_user_model_settings_are_kept() -> None:
    data = base()
    data["drivers"][0]["model"] = "node-local"
    data["drivers"][0]["model_settings"] = {"node_name_prefix": "gpu-", "max_claims_per_node": 1}

    settings = parse_scenario(data).drivers[0].model_settings

    assert settings == {"node_name_prefix": "gpu-", "max_claims_per_node": 1}


# --------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "read"),
    [
        pytest.param("horizon_s=60", lambda s: s.horizon_s == 60, id="top-level"),
        pytest.param("seed=9", lambda s: s.seed == 9, id="seed"),
        pytest.param("workloads.0.count=50", lambda s: s.workloads[0].count == 50, id="index"),
        pytest.param(
            "workloads[web].count=7", lambda s: s.workloads[0].count == 7, id="name-in-brackets"
        ),
        pytest.param(
            "drivers[gpu.example.com].workers=2",
            lambda s: s.drivers[0].workers == 2,
            id="dotted-name-in-brackets",
        ),
        pytest.param(
            "workloads.0.arrival.rate_per_s=3.5",
            lambda s: s.workloads[0].arrival.rate_per_s == 3.5,
            id="union-field",
        ),
        pytest.param(
            "workloads.0.arrival={type: times, at_s: [1, 2]}",
            lambda s: s.workloads[0].arrival.at_s == [1, 2],
            id="whole-union-value",
        ),
        pytest.param(
            "control_plane.scheduler.qps=10",
            lambda s: s.control_plane.scheduler.qps == 10,
            id="nested-default",
        ),
        pytest.param(
            "control_plane.request_latency_s=0.01",
            lambda s: s.control_plane.request_latency_s == Constant(value=0.01),
            id="distribution-number",
        ),
        pytest.param(
            "workloads.0.run_duration_s={type: lognormal, median: 30, sigma: 1}",
            lambda s: s.workloads[0].run_duration_s == LogNormal(median=30, sigma=1),
            id="distribution-mapping",
        ),
        pytest.param(
            "drivers.0.model_settings.placement=spread",
            lambda s: s.drivers[0].model_settings["placement"] == "spread",
            id="model-settings",
        ),
        pytest.param(
            "cluster.node_pools[gpu].labels.zone=a",
            lambda s: s.cluster.node_pools[0].labels == {"zone": "a"},
            id="dict-key",
        ),
        pytest.param(
            "cluster.node_pools.0.devices[gpu.example.com].count=3",
            lambda s: s.cluster.node_pools[0].devices["gpu.example.com"].count == 3,
            id="bracketed-dict-key",
        ),
        pytest.param("description=", lambda s: s.description == "", id="empty-value"),
        pytest.param(
            "workloads.0.claims.0.template.allocation_mode=Immediate",
            lambda s: s.workloads[0].claims[0].template.allocation_mode == "Immediate",
            id="inside-list-item",
        ),
    ],
)
def test_override_sets_value(override: str, read: Any) -> None:
    data = apply_overrides(base(), [override], source="test.yaml")

    assert read(parse_scenario(data))


def test_overrides_apply_in_order() -> None:
    data = apply_overrides(base(), ["horizon_s=10", "horizon_s=20"], source="test.yaml")

    assert parse_scenario(data).horizon_s == 20


def test_overrides_leave_input_unchanged() -> None:
    data = base()
    original = copy.deepcopy(data)

    apply_overrides(data, ["workloads.0.count=1", "drivers.0.workers=9"], source="test.yaml")

    assert data == original


@pytest.mark.parametrize(
    ("override", "path", "fragment"),
    [
        pytest.param("horizon=5", "horizon", "did you mean 'horizon_s'?", id="unknown-key"),
        pytest.param(
            "workloads.0.arrival.rate=1",
            "workloads.0.arrival.rate",
            "did you mean 'rate_per_s'?",
            id="unknown-union-field",
        ),
        pytest.param("workloads.3.count=1", "workloads.3", "no such list entry", id="bad-index"),
        pytest.param(
            "workloads[api].count=1", "workloads[api]", "no such list entry", id="bad-name"
        ),
        pytest.param("horizon_s.value=1", "horizon_s.value", "inside a plain value", id="scalar"),
        pytest.param("name.first=x", "name.first", "inside a plain value", id="existing-scalar"),
        pytest.param("horizon_s", "--set", "expected dotted.key=value", id="no-equals"),
        pytest.param("=5", "--set", "empty key", id="empty-key"),
        pytest.param(
            "drivers[x.workers=2", "--set", "'[' is not closed by ']'", id="unclosed-bracket"
        ),
        pytest.param(
            "drivers]x.workers=2", "--set", "']' without a matching '['", id="stray-bracket"
        ),
        pytest.param(
            "drivers[a[b]].workers=2", "--set", "brackets cannot be nested", id="nested-bracket"
        ),
    ],
)
def test_invalid_override(override: str, path: str, fragment: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        apply_overrides(base(), [override], source="test.yaml")

    assert caught.value.path == path
    assert fragment in str(caught.value)
    assert f"(got {override!r})" in str(caught.value)


@pytest.mark.parametrize("key", ["drivers[x.workers", "drivers]x.workers", "drivers[a[b]].workers"])
def test_override_bracket_error_shows_form(key: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        apply_overrides(base(), [f"{key}=2"], source="test.yaml")

    message = str(caught.value)
    assert f"invalid key {key!r}" in message
    assert "Name a list entry as key[name], e.g. drivers[gpu.example.com].workers=2" in message


def test_override_value_checked_by_schema() -> None:
    data = apply_overrides(base(), ["workloads.0.count=-2"], source="test.yaml")

    error = error_of(data)

    assert error.path == "workloads[0].count"


# --------------------------------------------------------------------------------------
# Loading files
# --------------------------------------------------------------------------------------


def write(tmp_path: Path, data: Any, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_load_applies_overrides_and_seed(tmp_path: Path) -> None:
    path = write(tmp_path, base())

    scenario = load_scenario(path, overrides=["horizon_s=30", "seed=4"], seed=12)

    assert scenario.horizon_s == 30
    assert scenario.seed == 12


def test_load_makes_manifest_paths_absolute(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "class.yaml").write_text("", encoding="utf-8")
    data = base()
    data["manifests"] = ["manifests/class.yaml"]
    path = write(tmp_path, data)

    scenario = load_scenario(path)

    assert scenario.manifests == [str(tmp_path / "manifests" / "class.yaml")]


def test_load_reports_missing_manifest(tmp_path: Path) -> None:
    data = base()
    data["manifests"] = ["nowhere.yaml"]
    path = write(tmp_path, data)

    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)

    assert caught.value.path == "manifests[0]"
    assert "not found" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("name: [unclosed\n", "invalid YAML: line 2, column 1", id="malformed"),
        pytest.param("", "the file is empty", id="empty"),
        pytest.param("- a\n- b\n", "must be a mapping", id="list"),
        pytest.param(
            "seed: 1\nname: a\nseed: 2\n",
            "line 3, column 1: found duplicate key 'seed' (first at line 1, column 1)",
            id="duplicate-top-level-key",
        ),
        pytest.param(
            "cluster:\n  node_pools:\n    - {name: a, count: 1, count: 2}\n",
            "line 3, column 27: found duplicate key 'count' (first at line 3, column 17)",
            id="duplicate-nested-key",
        ),
    ],
)
def test_load_rejects_bad_file(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)

    assert str(caught.value).startswith(f"{path}: ")
    assert fragment in str(caught.value)


def test_merge_key_may_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text(
        "defaults: &defaults {seed: 1, horizon_s: 5}\nrun:\n  <<: *defaults\n  seed: 2\n",
        encoding="utf-8",
    )

    data = read_scenario_data(path)

    assert data["run"] == {"seed": 2, "horizon_s": 5}


def test_override_with_duplicate_key_rejected() -> None:
    with pytest.raises(ScenarioError) as caught:
        apply_overrides(base(), ["horizon_s={a: 1, a: 2}"], source="s.yaml")

    assert caught.value.path == "--set"
    assert "found duplicate key 'a'" in str(caught.value)


def test_load_reports_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "missing.yaml")

    assert "file not found" in str(caught.value)


# --------------------------------------------------------------------------------------
# Resolved scenario
# --------------------------------------------------------------------------------------


def round_trip(scenario: Scenario) -> Scenario:
    text = yaml.safe_dump(resolved_data(scenario), sort_keys=False)
    return parse_scenario(yaml.safe_load(text), source="scenario.resolved.yaml")


@pytest.mark.parametrize("path", sorted(SCENARIOS_DIR.glob("*.yaml")), ids=lambda path: path.stem)
def test_shipped_scenario_round_trips(path: Path) -> None:
    scenario = load_scenario(path)

    assert round_trip(scenario) == scenario


def test_round_trip_keeps_infinity() -> None:
    data = with_change(["workloads", 0, "run_duration_s"], {"type": "normal", "mean": 10, "std": 2})
    scenario = parse_scenario(data)

    again = round_trip(scenario)

    assert again == scenario
    assert isinstance(again.workloads[0].run_duration_s, Normal)
    assert math.isinf(again.workloads[0].run_duration_s.max)


def test_resolved_data_writes_every_default() -> None:
    resolved = resolved_data(parse_scenario(base()))

    assert resolved["horizon_s"] == 3600.0
    assert resolved["control_plane"]["scheduler"]["qps"] == 50.0
    assert resolved["control_plane"]["request_latency_s"] == {"type": "constant", "value": 0.004}
    assert resolved["kubelet"] == parse_scenario({}).kubelet.model_dump(mode="json", by_alias=True)
    driver = resolved["drivers"][0]
    assert set(driver) == {info.alias or name for name, info in DriverConfig.model_fields.items()}
    assert resolved["workloads"][0]["pod"]["cpu"] == "100m"
    assert resolved["workloads"][0]["claims"][0]["template"]["allocation_mode"] == (
        "WaitForFirstConsumer"
    )


def test_resolved_distribution_uses_aliases() -> None:
    data = with_change(["workloads", 0, "run_duration_s"], {"type": "exponential", "mean": 3})

    resolved = resolved_data(parse_scenario(data))

    assert resolved["workloads"][0]["run_duration_s"] == {"type": "exponential", "mean": 3.0}
