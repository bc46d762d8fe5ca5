"""Tests of sweep parameters, design points, and common random numbers across design points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import TINY_SCENARIO, write_scenario
from hypothesis import given
from hypothesis import strategies as st

from sim.experiments.design import (
    SweepError,
    check_design,
    check_keys,
    design_points,
    format_value,
    parse_parameter,
    read_base,
    scenario_for,
)
from sim.results import simulate


@pytest.mark.parametrize(
    ("text", "key", "values"),
    [
        ("horizon_s=10,20", "horizon_s", (10, 20)),
        ("cluster.node_pools[n].count=1, 2 ,3", "cluster.node_pools[n].count", (1, 2, 3)),
        ("control_plane.queueing_hints=true,false", "control_plane.queueing_hints", (True, False)),
        (
            "workloads.0.arrival.rate_per_s=0.1,1.0e-3",
            "workloads.0.arrival.rate_per_s",
            (0.1, 1e-3),
        ),
        ("name=a,'1.30'", "name", ("a", "1.30")),
        (
            "workloads.0.arrival={type: constant, interval_s: 5},{type: poisson, rate_per_s: 1}",
            "workloads.0.arrival",
            ({"type": "constant", "interval_s": 5}, {"type": "poisson", "rate_per_s": 1}),
        ),
        ("manifests=[],[a.yaml]", "manifests", ([], ["a.yaml"])),
        ("description=2024-01-01,x", "description", ("2024-01-01", "x")),
    ],
    ids=["ints", "spaces", "bools", "floats", "strings", "mappings", "lists", "dates-as-text"],
)
def test_parameter_parses_yaml_values(text: str, key: str, values: tuple[Any, ...]) -> None:
    parameter = parse_parameter(text)
    assert parameter.key == key
    assert parameter.values == values


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("horizon_s", "expected dotted.key=v1,v2"),
        ("=1,2", "key before '=' is empty"),
        ("horizon_s=", "no values"),
        ("horizon_s=1,,2", "empty value"),
        ("horizon_s=[1", "not a comma-separated YAML list"),
        ("workloads.0.pod={cpu: 1, cpu: 2}", "found duplicate key 'cpu'"),
        ("horizon_s=1,1", "value 1 is repeated"),
        ("horizon_s=!!binary aGk=", "not a number, string, list or mapping"),
        ("replications=1,2", "use --replications"),
    ],
    ids=[
        "no-equals",
        "no-key",
        "no-values",
        "empty-value",
        "bad-yaml",
        "duplicate-key",
        "repeated",
        "date",
        "replications",
    ],
)
def test_parameter_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(SweepError, match=message):
        parse_parameter(text)


scalars = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=12),
)


@given(
    st.one_of(
        scalars,
        st.lists(scalars, max_size=3),
        st.dictionaries(st.text(max_size=5), scalars, max_size=3),
    )
)
def test_format_value_round_trips(value: Any) -> None:
    assert yaml.safe_load(format_value(value)) == value


def test_design_points_are_cartesian_product_first_slowest() -> None:
    points = design_points([parse_parameter("a=1,2"), parse_parameter("b=x,y,z")])

    assert [point.point for point in points] == [0, 1, 2, 3, 4, 5]
    assert [dict(point.values) for point in points] == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 1, "b": "z"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
        {"a": 2, "b": "z"},
    ]
    assert points[4].overrides() == ["a=2", "b=y"]


def test_no_parameters_give_one_point() -> None:
    points = design_points([])

    assert len(points) == 1
    assert points[0].overrides() == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cluster.nodepools.0.count=1", "unknown key; did you mean 'node_pools'"),
        ("cluster.node_pools[gpu].count=1", "no such list entry"),
        ("horizon.s=1", "unknown key"),
    ],
    ids=["typo", "unknown-entry", "into-plain-value"],
)
def test_unknown_keys_name_the_parameter(tiny_scenario: Path, text: str, message: str) -> None:
    base = read_base(tiny_scenario)
    parameter = parse_parameter(text)

    with pytest.raises(SweepError, match=message) as raised:
        check_keys(base, [parameter])
    assert str(raised.value).startswith(f"--param {parameter.key}: ")


def test_invalid_value_names_the_design_point(tiny_scenario: Path) -> None:
    base = read_base(tiny_scenario)
    points = design_points([parse_parameter("horizon_s=10,-5")])

    with pytest.raises(SweepError, match=r"design point 1 \(horizon_s=-5\).*greater than 0"):
        check_design(base, points)


def test_derived_inventory_follows_node_count(tmp_path: Path) -> None:
    data: dict[str, Any] = {
        **TINY_SCENARIO,
        "cluster": {
            "node_pools": [{"name": "g", "count": 2, "devices": {"gpu.example.com": {"count": 1}}}]
        },
        "drivers": [{"name": "gpu.example.com", "model": "devices"}],
        "resource_classes": [{"name": "gpu", "driver_name": "gpu.example.com"}],
    }
    base = read_base(write_scenario(tmp_path, data))

    scenarios = check_design(
        base, design_points([parse_parameter("cluster.node_pools[g].count=1,3")])
    )

    inventories = [scenario.drivers[0].model_settings["nodes"] for scenario in scenarios]
    assert sorted(inventories[0]) == ["g-0"]
    assert sorted(inventories[1]) == ["g-0", "g-1", "g-2"]


def test_relative_manifest_paths_resolve_from_scenario_folder(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "objects.yaml").write_text("", encoding="utf-8")
    base = read_base(write_scenario(folder, dict(TINY_SCENARIO)))

    scenario = scenario_for(base, ["manifests=[objects.yaml]"])

    assert scenario.manifests == [str((folder / "objects.yaml").resolve())]


def _created_times(scenario_path: Path, overrides: list[str], replication: int) -> np.ndarray:
    scenario = scenario_for(read_base(scenario_path), overrides)
    results = simulate(scenario, replication=replication, check_invariants=True)
    created: np.ndarray = results.pods["created_s"].to_numpy()
    return created


def test_replication_shares_arrivals_across_points(tiny_scenario: Path) -> None:
    one_node = _created_times(tiny_scenario, ["cluster.node_pools[n].count=1"], replication=2)
    three_nodes = _created_times(tiny_scenario, ["cluster.node_pools[n].count=3"], replication=2)

    assert len(one_node) > 0
    np.testing.assert_array_equal(one_node, three_nodes)


def test_replications_draw_different_arrivals(tiny_scenario: Path) -> None:
    first = _created_times(tiny_scenario, [], replication=0)
    second = _created_times(tiny_scenario, [], replication=1)

    assert len(first) != len(second) or not np.array_equal(first, second)
