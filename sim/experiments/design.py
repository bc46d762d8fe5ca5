"""Design points of a sweep: swept parameters, their Cartesian product and the scenarios.

A parameter is a dotted scenario key with the values to try, written as on
the command line: `cluster.node_pools[gpu-node].count=2,3,4`. The values are
parsed as one YAML flow sequence, so each value has the type `--set` would give
it, and a value may itself be a list or mapping (`arrival={type: poisson,
rate_per_s: 0.1},{type: constant, interval_s: 5}`). A design point is one
combination of values. Point ids are 0-based indexes into the Cartesian product
in which the first parameter varies slowest.

Workers never receive live objects. A `DesignPoint` turns into `--set`-style
override strings that `scenario_for` applies to the plain base data, which is
the scenario file's YAML after the sweep's own `--set` overrides.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sim.api.codec import load_yaml_text
from sim.scenario import (
    Scenario,
    ScenarioError,
    apply_overrides,
    parse_scenario,
    read_scenario_data,
)

RESERVED_KEYS = frozenset({"replications"})
"""Scenario keys that cannot be swept: the sweep's `--replications` sets the count."""


_EMPTY_ITEM = re.compile(r"(^|,)\s*(,|$)")
"""An empty item in a comma-separated list: a leading, doubled or trailing comma."""


class SweepError(ValueError):
    """Invalid input to a sweep: a parameter, a value, an option or the output directory."""


@dataclass(frozen=True)
class Parameter:
    """A swept scenario key and the values to try, in the order given."""

    key: str
    values: tuple[Any, ...]

    def describe(self) -> str:
        """Return the parameter as it is written on the command line."""
        return f"{self.key}={','.join(format_value(value) for value in self.values)}"


@dataclass(frozen=True)
class DesignPoint:
    """One combination of parameter values."""

    point: int
    values: Mapping[str, Any]

    def overrides(self) -> list[str]:
        """Return the `dotted.key=value` overrides that select this point."""
        return [f"{key}={format_value(value)}" for key, value in self.values.items()]

    def describe(self) -> str:
        """Return the point as `key=value, ...` for messages."""
        return ", ".join(self.overrides())


@dataclass(frozen=True)
class BaseScenario:
    """The scenario every design point starts from, as plain data."""

    data: dict[str, Any]
    """The scenario file's YAML with the sweep's `--set` overrides applied."""
    source: str
    """Path of the scenario file, for messages."""
    base_dir: str
    """Absolute folder of the scenario file; relative manifest paths are resolved from it."""

    def digest(self) -> str:
        """Return a SHA-256 of the data, to tell whether a resumed sweep has the same base."""
        text = json.dumps(self.data, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def format_value(value: Any) -> str:
    """Return YAML flow text that `load_yaml_text` parses back to `value` exactly."""
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf).strip()
    return text.removesuffix("...").strip()


def parse_parameter(text: str) -> Parameter:
    """Parse `dotted.key=v1,v2,...` into a parameter.

    Raises:
        SweepError: the text has no `=`, no key, no values, YAML that does not
            parse, a repeated value or a value that is not plain data.
    """
    if "=" not in text:
        raise SweepError(
            f"--param {text!r}: expected dotted.key=v1,v2,..., "
            "e.g. cluster.node_pools[gpu-node].count=2,3,4"
        )
    key, raw = (part.strip() for part in text.split("=", 1))
    if not key:
        raise SweepError(f"--param {text!r}: the key before '=' is empty")
    if key.split(".", 1)[0] in RESERVED_KEYS:
        raise SweepError(f"--param {text!r}: use --replications to set the number of runs")
    if not raw:
        raise SweepError(f"--param {text!r}: no values after '='; give v1,v2,...")
    try:
        values = load_yaml_text(f"[{raw}]")
    except yaml.YAMLError as error:
        if _EMPTY_ITEM.search(raw):
            raise SweepError(f"--param {text!r}: empty value; remove the extra comma") from None
        problem = getattr(error, "problem", None) or str(error)
        raise SweepError(
            f"--param {text!r}: the values are not a comma-separated YAML list ({problem})"
        ) from None
    if not isinstance(values, list) or not values:
        raise SweepError(f"--param {text!r}: no values after '='; give v1,v2,...")
    if any(value is None for value in values):
        raise SweepError(f"--param {text!r}: empty value; remove the extra comma")
    seen: list[str] = []
    for value in values:
        try:
            encoded = json.dumps(value, sort_keys=True, allow_nan=True)
        except TypeError:
            raise SweepError(
                f"--param {text!r}: value {value!r} is not a number, string, list or mapping"
            ) from None
        if encoded in seen:
            raise SweepError(f"--param {text!r}: value {format_value(value)} is repeated")
        seen.append(encoded)
    return Parameter(key=key, values=tuple(values))


def check_unique_keys(parameters: Sequence[Parameter]) -> None:
    """Raise SweepError when two parameters sweep the same key."""
    keys = [parameter.key for parameter in parameters]
    for key in keys:
        if keys.count(key) > 1:
            raise SweepError(f"--param {key}: given more than once; list all values in one --param")


def design_points(parameters: Sequence[Parameter]) -> list[DesignPoint]:
    """Return the Cartesian product of the parameters' values (one point when none is swept)."""
    keys = [parameter.key for parameter in parameters]
    combinations = itertools.product(*(parameter.values for parameter in parameters))
    return [
        DesignPoint(point=index, values=dict(zip(keys, combination, strict=True)))
        for index, combination in enumerate(combinations)
    ]


def read_base(path: str | Path, overrides: Sequence[str] = ()) -> BaseScenario:
    """Read a scenario file and apply `--set` overrides, keeping the result as plain data.

    The data is not resolved: defaults stay unwritten, so that derived values
    (such as a driver's device inventory, computed from the node pools) are
    computed again for every design point.

    Raises:
        ScenarioError: the file or an override is invalid.
    """
    source = str(path)
    data = read_scenario_data(path)
    if overrides:
        data = apply_overrides(data, overrides, source=source)
    return BaseScenario(data=data, source=source, base_dir=str(Path(path).resolve().parent))


def scenario_for(base: BaseScenario, overrides: Sequence[str]) -> Scenario:
    """Build the scenario of a design point: base data, then overrides, then validation.

    Relative manifest paths are resolved against the scenario file's folder,
    as `sim.load_scenario` does.

    Raises:
        ScenarioError: an override names an unknown key, or the result breaks
            the schema, or a manifest path does not exist.
    """
    data = apply_overrides(base.data, overrides, source=base.source)
    scenario = parse_scenario(data, source=base.source)
    folder = Path(base.base_dir)
    manifests = []
    for index, manifest in enumerate(scenario.manifests):
        resolved = Path(manifest) if Path(manifest).is_absolute() else folder / manifest
        if not resolved.exists():
            raise ScenarioError(
                base.source, f"manifests[{index}]", "file or folder not found", manifest
            )
        manifests.append(str(resolved.resolve()))
    return scenario.model_copy(update={"manifests": manifests})


def check_keys(base: BaseScenario, parameters: Sequence[Parameter]) -> None:
    """Check that every swept key exists in the scenario schema (and list entry names exist).

    Raises:
        SweepError: a key is unknown; the message names the `--param` and the
            allowed keys.
    """
    for parameter in parameters:
        override = f"{parameter.key}={format_value(parameter.values[0])}"
        try:
            apply_overrides(base.data, [override], source=base.source)
        except ScenarioError as error:
            # An error in the key itself carries the path "--set", which --param would misname.
            where = "" if error.path == "--set" else f"{error.path}: "
            raise SweepError(f"--param {parameter.key}: {where}{error.problem}") from None


def check_design(base: BaseScenario, points: Sequence[DesignPoint]) -> list[Scenario]:
    """Validate the scenario of every design point; return them in point order.

    Raises:
        SweepError: a point's scenario is invalid. The message names the point.
    """
    scenarios = []
    for point in points:
        try:
            scenarios.append(scenario_for(base, point.overrides()))
        except ScenarioError as error:
            where = f"design point {point.point} ({point.describe()}): " if point.values else ""
            raise SweepError(f"{where}{error}") from None
    return scenarios
