"""Scenario files: a cluster, its drivers and a workload, in one strict YAML document.

A scenario describes what to simulate:

* `cluster.node_pools`: groups of identical nodes (count, labels, taints,
  allocatable CPU/memory/pods, and devices per driver with attributes);
* `resource_classes` and `drivers`: which driver serves which class, with the
  driver model (from `sim.drivers`), its latencies, failures and settings;
* `control_plane` and `kubelet`: Kubernetes version, queueing hints, request
  latency, watch delay, scheduler costs and limits, kubelet timings;
* `workloads`: pod sources with an arrival process, a pod template, claims
  (inline templates or names of shared claims) and a run duration;
* `node_faults`: kubelet restarts, node reboots and kubelet plugin failures
  of chosen nodes or node pools;
* `shared_claims`: user-created ResourceClaims that workloads can name;
* `manifests`: Kubernetes YAML files applied at time 0;
* `horizon_s`, `seed`, `replications`.

Unknown keys are errors that name the key's path and suggest the closest
allowed key. A key written twice in one mapping is an error with its line
(`sim.api.codec.StrictYamlLoader` reads scenarios, `--set` values and
manifests). Units are part of field names (`_s` for seconds). Every run
writes the fully resolved scenario, with all defaults, next to its results.

Every file in `scenarios/` runs in the test suite. Two comment lines, which
the loader ignores, tell the suite how:

* `# test-overrides: key=value ...`: `--set` overrides (split like a shell
  command line) applied before the run, to shrink a large scenario so that it
  runs in a few seconds, e.g. `# test-overrides: workloads.0.count=50`.
* `# test-expect: metric=value ...`: summary metrics the run must produce
  exactly. Without `pods_pending_at_end` in it, every pod must be scheduled
  (`pods_pending_at_end=0`).
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    model_validator,
)

from sim.api.codec import load_yaml_text
from sim.api.quantity import QuantityError, parse_quantity
from sim.api.types import NodeSelector
from sim.api.validation.names import label_value_errors, qualified_name_errors
from sim.cluster.config import ControlPlaneConfig, Dist, StrictModel
from sim.cluster.driver import DriverConfig
from sim.cluster.kubelet import KubeletConfig, NodeFaults, NodePluginFaults
from sim.drivers.devices import ParameterError
from sim.drivers.registry import available_driver_models, get_driver_model

ATTRIBUTE = str | bool | int | float


def _check_quantity(value: str | int | float) -> str | int | float:
    """Reject values that are not non-negative Kubernetes quantities."""
    try:
        parsed = parse_quantity(value)
    except QuantityError as error:
        raise ValueError(str(error)) from None
    if parsed < 0:
        raise ValueError(f"quantity {value!r} must not be negative")
    return value


Quantity = Annotated[str | int | float, AfterValidator(_check_quantity)]
"""A non-negative Kubernetes quantity such as 500m, 4, or 16Gi."""


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    """Reject label keys and values that the API server would reject when creating the object."""
    for key, value in labels.items():
        problems = qualified_name_errors(key)
        if problems:
            raise ValueError(f"invalid label key {key!r}: {'; '.join(problems)}")
        problems = label_value_errors(value)
        if problems:
            raise ValueError(f"invalid value {value!r} of label {key!r}: {'; '.join(problems)}")
    return labels


Labels = Annotated[dict[str, str], AfterValidator(_check_labels)]
"""Kubernetes labels: qualified-name keys (`example.com/name`) and label values."""


class ScenarioError(ValueError):
    """A scenario that cannot be used, with the file, field path, value and what is allowed."""

    def __init__(self, source: str, path: str, problem: str, value: Any = None) -> None:
        location = f"{source}: {path}" if path else source
        message = f"{location}: {problem}"
        if value is not None:
            shown = repr(value)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            message += f" (got {shown})"
        super().__init__(message)
        self.source = source
        self.path = path
        self.problem = problem
        self.value = value


# --------------------------------------------------------------------------------------
# Cluster
# --------------------------------------------------------------------------------------


class TaintSpec(StrictModel):
    """A taint on every node of a pool."""

    key: str = Field(min_length=1)
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class DeviceSpec(StrictModel):
    """Devices of one driver on each node of a pool."""

    count: int = Field(ge=0, description="devices per node")
    attributes: dict[str, ATTRIBUTE] = Field(
        default_factory=dict, description="attributes of every device (model, memory, ...)"
    )
    name_prefix: str = Field("dev", min_length=1, description="devices are named <prefix>-<i>")


class NodePool(StrictModel):
    """A group of identical nodes, named `<name>-<index>`."""

    name: str = Field(min_length=1, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    count: int = Field(ge=0)
    labels: Labels = Field(default_factory=dict)
    taints: list[TaintSpec] = Field(default_factory=list)
    cpu: Quantity = Field("32", description="allocatable CPU (quantity, e.g. 32 or 500m)")
    memory: Quantity = Field("128Gi", description="allocatable memory (quantity, e.g. 128Gi)")
    pods: int = Field(110, ge=1, description="maximum pods per node")
    devices: dict[str, DeviceSpec] = Field(
        default_factory=dict, description="devices per node, by driver name"
    )

    def node_names(self) -> list[str]:
        """Return the names of the pool's nodes."""
        width = max(1, len(str(max(self.count - 1, 0))))
        return [f"{self.name}-{index:0{width}d}" for index in range(self.count)]


class ClusterSpec(StrictModel):
    """The nodes of the simulated cluster."""

    node_pools: list[NodePool] = Field(default_factory=list)


class NodeFaultSpec(StrictModel):
    """Faults injected into the kubelet and the kubelet plugins of some nodes."""

    nodes: list[str] = Field(
        min_length=1,
        description="node names, or node pool names meaning every node of the pool",
    )
    kubelet: NodeFaults = Field(default_factory=NodeFaults)
    plugins: dict[str, NodePluginFaults] = Field(
        default_factory=dict, description="faults of each node's kubelet plugin, by driver name"
    )


# --------------------------------------------------------------------------------------
# Classes, claims, workloads
# --------------------------------------------------------------------------------------


class ResourceClassSpec(StrictModel):
    """A ResourceClass created at time 0."""

    name: str = Field(min_length=1)
    driver_name: str = Field(min_length=1)
    suitable_nodes: NodeSelector | None = None
    parameters: dict[str, Any] | None = Field(
        None,
        description="spec of a DeviceClassParameters object created for this class "
        "(count, shareable, selector)",
    )


AllocationModeName = Literal["Immediate", "WaitForFirstConsumer"]


class ClaimSpec(StrictModel):
    """What a claim asks for: its class, allocation mode and parameters."""

    resource_class: str = Field(min_length=1)
    allocation_mode: AllocationModeName = "WaitForFirstConsumer"
    parameters: dict[str, Any] | None = Field(
        None, description="spec of a DeviceClaimParameters object (count, shareable, selector)"
    )


class SharedClaimSpec(ClaimSpec):
    """A user-created ResourceClaim, created at time 0, that pods name."""

    name: str = Field(min_length=1)
    namespace: str = "default"


class PodClaimSpec(StrictModel):
    """One entry of a pod's `resourceClaims`: an inline template or a shared claim's name."""

    name: str = Field(min_length=1, description="entry name in pod.spec.resourceClaims")
    template: ClaimSpec | None = None
    claim: str | None = Field(None, description="name of a shared claim")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> PodClaimSpec:
        if (self.template is None) == (self.claim is None):
            raise ValueError("set exactly one of 'template' and 'claim'")
        return self


class ConstantArrivals(StrictModel):
    """One pod every `interval_s` seconds."""

    type: Literal["constant"] = "constant"
    interval_s: float = Field(gt=0)


class PoissonArrivals(StrictModel):
    """Pods arrive as a Poisson process."""

    type: Literal["poisson"] = "poisson"
    rate_per_s: float = Field(gt=0)


ArrivalTime = Annotated[float, Field(ge=0)]
"""Seconds after the workload's `start_s`."""


class BurstArrivals(StrictModel):
    """`size` pods at once at each of the given times."""

    type: Literal["bursts"] = "bursts"
    at_s: list[ArrivalTime] = Field(min_length=1)
    size: int = Field(ge=1)


class ListedArrivals(StrictModel):
    """One pod at each listed time."""

    type: Literal["times"] = "times"
    at_s: list[ArrivalTime] = Field(min_length=1)


class TraceArrivals(StrictModel):
    """One pod at each listed time, each with its own run duration (a replayed trace)."""

    type: Literal["trace"] = "trace"
    at_s: list[Annotated[float, Field(ge=0)]] = Field(min_length=1)
    run_durations_s: list[Annotated[float, Field(ge=0)] | None] = Field(
        description="run duration of each pod once started, seconds; null = until the end"
    )
    names: list[str] = Field(
        default_factory=list, description="trace name of each pod (annotation sim.dra/trace-name)"
    )

    @model_validator(mode="after")
    def _same_lengths(self) -> TraceArrivals:
        if len(self.run_durations_s) != len(self.at_s):
            durations, times = len(self.run_durations_s), len(self.at_s)
            raise ValueError(f"run_durations_s has {durations} entries, at_s has {times}")
        if self.names and len(self.names) != len(self.at_s):
            raise ValueError(f"names has {len(self.names)} entries, at_s has {len(self.at_s)}")
        return self


Arrivals = Annotated[
    ConstantArrivals | PoissonArrivals | BurstArrivals | ListedArrivals | TraceArrivals,
    Field(discriminator="type"),
]


class PodTemplate(StrictModel):
    """The pods a workload creates."""

    cpu: Quantity = Field("100m", description="CPU request (quantity)")
    memory: Quantity = Field("128Mi", description="memory request (quantity)")
    labels: Labels = Field(default_factory=dict)
    node_selector: Labels = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    priority: int | None = None
    restart_policy: Literal["Never", "OnFailure", "Always"] = "Never"
    containers: int = Field(1, ge=1, description="containers; every one uses every claim")


class WorkloadSpec(StrictModel):
    """A source of pods."""

    name: str = Field(min_length=1, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    namespace: str = "default"
    arrival: Arrivals
    count: int | None = Field(None, ge=0, description="pods to create; None = until until_s")
    start_s: float = Field(0.0, ge=0)
    until_s: float | None = Field(None, gt=0, description="no arrivals after this time")
    pod: PodTemplate = Field(default_factory=PodTemplate)
    claims: list[PodClaimSpec] = Field(default_factory=list)
    run_duration_s: Dist | None = Field(
        None, description="how long a pod runs once started; None = until the end of the run"
    )

    @model_validator(mode="after")
    def _bounded(self) -> WorkloadSpec:
        if (
            self.count is None
            and self.until_s is None
            and self.arrival.type in ("constant", "poisson")
        ):
            raise ValueError("an endless arrival process needs 'count' or 'until_s'")
        return self


def _none_to_empty_list(value: Any) -> Any:
    return [] if value is None else value


ListField = BeforeValidator(_none_to_empty_list)


class Scenario(StrictModel):
    """A whole simulation: cluster, drivers, control plane, workloads and run settings."""

    name: str = Field("scenario", pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$")
    description: str = ""
    seed: int = Field(1, ge=0)
    replications: int = Field(1, ge=1)
    horizon_s: float = Field(3600.0, gt=0, description="simulated time at which the run stops")
    check_invariants: bool = False
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)
    resource_classes: Annotated[list[ResourceClassSpec], ListField] = Field(default_factory=list)
    drivers: Annotated[list[DriverConfig], ListField] = Field(default_factory=list)
    control_plane: ControlPlaneConfig = Field(default_factory=ControlPlaneConfig)
    kubelet: KubeletConfig = Field(default_factory=KubeletConfig)
    node_faults: Annotated[list[NodeFaultSpec], ListField] = Field(
        default_factory=list,
        description="kubelet restarts, node reboots and kubelet plugin failures of chosen nodes",
    )
    shared_claims: Annotated[list[SharedClaimSpec], ListField] = Field(default_factory=list)
    workloads: Annotated[list[WorkloadSpec], ListField] = Field(default_factory=list)
    manifests: Annotated[list[str], ListField] = Field(
        default_factory=list, description="Kubernetes YAML files or folders applied at time 0"
    )
    manifest_run_duration_s: float | None = Field(
        None,
        gt=0,
        description="run duration given to manifest pods and to the pods of manifest Jobs and "
        "Deployments that have no sim.dra/run-duration-s annotation, seconds (used for "
        "restartPolicy Never or OnFailure only); None = they run until the horizon",
    )
    record_objects: Literal["auto", "all", "none"] = Field(
        "auto",
        description="object versions kept in objects.parquet for `dra-sim get`: all, none, or "
        "auto (all while the run creates at most 5000 pods, then the final state only)",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_driver_inventories(cls, data: Any) -> Any:
        """Give each driver model the devices that the node pools declare for it."""
        if not isinstance(data, Mapping):
            return data
        drivers = data.get("drivers")
        cluster = data.get("cluster")
        if not isinstance(drivers, list) or not isinstance(cluster, Mapping):
            return data
        pools = cluster.get("node_pools")
        if not isinstance(pools, list):
            return data
        filled = []
        for driver in drivers:
            if isinstance(driver, Mapping) and isinstance(driver.get("name"), str):
                driver = dict(driver)
                settings = driver.get("model_settings")
                driver["model_settings"] = inventory_settings(
                    driver["name"],
                    driver.get("model", "node-local"),
                    dict(settings) if isinstance(settings, Mapping) else {},
                    pools,
                )
            filled.append(driver)
        return {**data, "drivers": filled}

    @model_validator(mode="after")
    def _check_unique_names(self) -> Scenario:
        """Reject two entries that would create objects (or pods) with the same name."""
        lists: list[tuple[str, list[Any]]] = [
            ("cluster.node_pools", [pool.name for pool in self.cluster.node_pools]),
            ("drivers", [driver.name for driver in self.drivers]),
            ("resource_classes", [cls.name for cls in self.resource_classes]),
            ("shared_claims", [(c.namespace, c.name) for c in self.shared_claims]),
            ("workloads", [(w.namespace, w.name) for w in self.workloads]),
        ]
        for index, workload in enumerate(self.workloads):
            lists.append((f"workloads[{index}].claims", [c.name for c in workload.claims]))
        problems = []
        for path, names in lists:
            first_index: dict[Any, int] = {}
            for index, name in enumerate(names):
                if name in first_index:
                    shown = name[1] if isinstance(name, tuple) else name
                    problems.append(
                        f"{path}[{index}].name: duplicate name {shown!r} "
                        f"(also {path}[{first_index[name]}]); names must be unique"
                    )
                else:
                    first_index[name] = index
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _check_references(self) -> Scenario:
        drivers = {driver.name for driver in self.drivers}
        classes = {cls.name for cls in self.resource_classes}
        shared = {(claim.namespace, claim.name) for claim in self.shared_claims}
        problems: list[str] = []
        for index, cls in enumerate(self.resource_classes):
            if cls.driver_name not in drivers:
                problems.append(
                    f"resource_classes[{index}].driver_name: no driver named {cls.driver_name!r}"
                    f" (drivers: {sorted(drivers) or 'none'})"
                )
        for index, pool in enumerate(self.cluster.node_pools):
            for driver in pool.devices:
                if driver not in drivers:
                    problems.append(
                        f"cluster.node_pools[{index}].devices: no driver named {driver!r}"
                        f" (drivers: {sorted(drivers) or 'none'})"
                    )
        has_manifests = bool(self.manifests)
        for index, claim in enumerate(self.shared_claims):
            if claim.resource_class not in classes and not has_manifests:
                problems.append(
                    f"shared_claims[{index}].resource_class: no resource class named "
                    f"{claim.resource_class!r} (classes: {sorted(classes) or 'none'})"
                )
        for w_index, workload in enumerate(self.workloads):
            for c_index, pod_claim in enumerate(workload.claims):
                path = f"workloads[{w_index}].claims[{c_index}]"
                if pod_claim.template is not None:
                    name = pod_claim.template.resource_class
                    if name not in classes and not has_manifests:
                        problems.append(
                            f"{path}.template.resource_class: no resource class named {name!r}"
                            f" (classes: {sorted(classes) or 'none'})"
                        )
                elif (workload.namespace, pod_claim.claim) not in shared and not has_manifests:
                    problems.append(
                        f"{path}.claim: no shared claim named {pod_claim.claim!r} in namespace "
                        f"{workload.namespace!r} (shared claims: "
                        f"{sorted(name for _, name in shared) or 'none'})"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _check_node_faults(self) -> Scenario:
        """Reject fault entries that name an unknown node, pool or driver, or conflict."""
        self.node_faults_by_node()
        return self

    def node_faults_by_node(self) -> dict[str, NodeFaultSpec]:
        """Return the faults of each node that a `node_faults` entry names.

        A node named by several entries gets all their restarts, reboots and
        failure windows. A single-valued fault (such as `max_devices`) must
        be the same in all of them, except where an entry leaves it at its
        default.

        Raises:
            ValueError: an entry names an unknown node, node pool or driver, or
                two entries set the same single-valued fault of a node.
        """
        pools = {pool.name: pool.node_names() for pool in self.cluster.node_pools}
        nodes = {node for names in pools.values() for node in names}
        drivers = sorted(driver.name for driver in self.drivers)
        found: dict[str, NodeFaultSpec] = {}
        for index, spec in enumerate(self.node_faults):
            entry = f"node_faults[{index}]"
            for driver in spec.plugins:
                if driver not in drivers:
                    raise ValueError(
                        f"{entry}.plugins: no driver named {driver!r}"
                        f" (drivers: {', '.join(drivers) or 'none'})"
                    )
            selected: list[str] = []
            for name_index, name in enumerate(spec.nodes):
                # A pool name takes precedence over a node of the same name.
                if name in pools:
                    selected.extend(pools[name])
                elif name in nodes:
                    selected.append(name)
                else:
                    raise ValueError(
                        f"{entry}.nodes[{name_index}]: no node or node pool named {name!r} "
                        f"({_describe_nodes(pools)})"
                    )
            for node in dict.fromkeys(selected):
                earlier = found.get(node)
                found[node] = spec if earlier is None else _merge_node_faults(earlier, spec, entry)
        return found

    @model_validator(mode="after")
    def _check_workload_times(self) -> Scenario:
        """Reject a workload whose arrivals would start after they end."""
        for index, workload in enumerate(self.workloads):
            if workload.until_s is not None and workload.start_s > workload.until_s:
                raise ValueError(
                    f"workloads[{index}]: start_s ({workload.start_s:g}) is after until_s "
                    f"({workload.until_s:g}), so no pod would arrive; set until_s >= start_s"
                )
        return self

    @model_validator(mode="after")
    def _check_parameters(self) -> Scenario:
        """Reject class and claim parameters that the class's driver model would reject.

        At run time the driver reports such parameters only as a warning on the
        claim and retries, so the pods would stay pending until the horizon.
        """
        models = {driver.name: driver.model for driver in self.drivers}
        class_models = {cls.name: models.get(cls.driver_name) for cls in self.resource_classes}
        entries: list[tuple[str, str, dict[str, Any], bool]] = [
            (f"resource_classes[{index}]", cls.name, cls.parameters, True)
            for index, cls in enumerate(self.resource_classes)
            if cls.parameters is not None
        ]
        entries.extend(
            (f"shared_claims[{index}]", claim.resource_class, claim.parameters, False)
            for index, claim in enumerate(self.shared_claims)
            if claim.parameters is not None
        )
        for w_index, workload in enumerate(self.workloads):
            for c_index, pod_claim in enumerate(workload.claims):
                template = pod_claim.template
                if template is not None and template.parameters is not None:
                    path = f"workloads[{w_index}].claims[{c_index}].template"
                    entries.append((path, template.resource_class, template.parameters, False))
        for path, class_name, parameters, of_class in entries:
            check = _parameter_checks().get(class_models.get(class_name) or "")
            if check is None:
                continue
            try:
                check(parameters, of_class=of_class)
            except ParameterError as error:
                field = error.field.partition(".")[2]
                where = f"{path}.parameters.{field}" if field else f"{path}.parameters"
                message = f"{where}: {error.rule}"
                if error.shows_value:
                    message += f" (got {error.value!r})"
                raise ValueError(message) from None
        return self

    def node_count(self) -> int:
        """Return the number of nodes in all pools."""
        return sum(pool.count for pool in self.cluster.node_pools)


FaultModel = TypeVar("FaultModel", NodeFaults, NodePluginFaults)


def _merge_faults(earlier: FaultModel, later: FaultModel, path: str) -> FaultModel:
    """Join two entries' faults of one node: tuples are concatenated, other values must agree.

    A value equal to the field's default counts as unset, so a resolved
    scenario, which writes every default out, merges as its source did.

    Raises:
        ValueError: the entries set one single-valued fault to different values.
    """
    update: dict[str, Any] = {}
    for name, info in type(later).model_fields.items():
        old, new = getattr(earlier, name), getattr(later, name)
        if isinstance(new, tuple):
            update[name] = old + new
        elif new == info.default or new == old:
            continue
        elif old != info.default:
            raise ValueError(
                f"{path}.{name}: an earlier node_faults entry sets it to {old!r} for the same "
                f"node (got {new!r}); set it in one entry only"
            )
        else:
            update[name] = new
    return earlier.model_copy(update=update)


def _merge_node_faults(earlier: NodeFaultSpec, later: NodeFaultSpec, entry: str) -> NodeFaultSpec:
    """Return the faults of a node named by two `node_faults` entries."""
    plugins = dict(earlier.plugins)
    for driver, faults in later.plugins.items():
        previous = plugins.get(driver)
        path = f"{entry}.plugins.{driver}"
        plugins[driver] = faults if previous is None else _merge_faults(previous, faults, path)
    kubelet = _merge_faults(earlier.kubelet, later.kubelet, f"{entry}.kubelet")
    return NodeFaultSpec(nodes=earlier.nodes + later.nodes, kubelet=kubelet, plugins=plugins)


def _describe_nodes(pools: Mapping[str, list[str]]) -> str:
    """Return the node pools and their nodes, as in `node pools: a, b; nodes: a-0 to a-3, b-0`."""
    if not pools:
        return "the cluster has no node pools"
    ranges = []
    for names in pools.values():
        if len(names) == 1:
            ranges.append(names[0])
        elif names:
            ranges.append(f"{names[0]} to {names[-1]}")
    return f"node pools: {', '.join(pools)}; nodes: {', '.join(ranges) or 'none'}"


ParameterCheck = Callable[..., None]
"""`check_scenario_parameters(spec, *, of_class)` of a driver model module."""


def _parameter_checks() -> dict[str, ParameterCheck]:
    """Return the scenario parameter check of each built-in driver model, by model name.

    NOTE: parameters of a class served by another registered model are not
    checked before the run; its driver reports them at run time.
    """
    from sim.drivers import devices, gpushare, node_local

    return {
        "devices": devices.check_scenario_parameters,
        # The network-attached model parses parameters with the devices model's parsers.
        "network-attached": devices.check_scenario_parameters,
        "gpushare": gpushare.check_scenario_parameters,
        "node-local": node_local.check_scenario_parameters,
    }


def inventory_settings(
    driver: str, model: Any, settings: dict[str, Any], pools: list[Any]
) -> dict[str, Any]:
    """Return a driver model's settings with its inventory taken from raw node-pool data.

    The `devices` model gets every device of every node; the `node-local`
    model (the Kubernetes test driver) gets the nodes with devices and, as its
    claim limit, the largest device count of those pools. Settings the user
    gave are kept.
    """
    with_devices = []
    for pool in pools:
        if not isinstance(pool, Mapping):
            continue
        devices = pool.get("devices")
        if isinstance(devices, Mapping) and isinstance(devices.get(driver), Mapping):
            with_devices.append(pool)
    if not with_devices:
        return settings
    try:
        parsed = [NodePool.model_validate(pool) for pool in with_devices]
    except ValidationError:
        # The pools are reported by the main validation with their paths.
        return settings
    if model in ("devices", "gpushare") and "nodes" not in settings:
        inventory: dict[str, list[dict[str, Any]]] = {}
        for pool in parsed:
            spec = pool.devices[driver]
            for node in pool.node_names():
                inventory[node] = [
                    {"name": f"{spec.name_prefix}-{index}", "attributes": dict(spec.attributes)}
                    for index in range(spec.count)
                ]
        return {**settings, "nodes": inventory}
    if model == "node-local":
        filled = dict(settings)
        if not any(filled.get(key) for key in ("nodes", "node_name_prefix", "node_selector")):
            filled["nodes"] = [
                node for pool in parsed if pool.devices[driver].count for node in pool.node_names()
            ]
        if "max_claims_per_node" not in filled:
            filled["max_claims_per_node"] = max(pool.devices[driver].count for pool in parsed)
        return filled
    return settings


# --------------------------------------------------------------------------------------
# Loading, overriding and resolving
# --------------------------------------------------------------------------------------


def _model_fields(model: type[BaseModel]) -> list[str]:
    return sorted(info.alias or name for name, info in model.model_fields.items())


def _suggestion(key: str, allowed: Sequence[str]) -> str:
    """Return "; did you mean 'x'?" for the allowed key closest to `key`, or ""."""
    # A unit suffix left out (`rate` for `rate_per_s`) is too short for difflib's cutoff.
    extended = [name for name in allowed if name.startswith(f"{key}_")]
    close = extended or difflib.get_close_matches(key, allowed, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _describe_location(loc: Sequence[str | int]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _alternatives(annotation: Any) -> list[Any]:
    """Return the types a value of `annotation` can have, with unions split and None dropped."""
    if annotation is None or annotation is type(None):
        return []
    origin = get_origin(annotation)
    if origin is Annotated:
        return _alternatives(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        found: list[Any] = []
        for argument in get_args(annotation):
            found.extend(_alternatives(argument))
        return found
    return [annotation]


def _union_tag(option: Any) -> str | None:
    """Return the name pydantic gives a union member in error locations.

    That is the `type` value of a tagged model (a discriminated union such as
    `arrival`) and the class name of any other class (`str`, `int`, ...).
    """
    if isinstance(option, type) and issubclass(option, BaseModel):
        field = option.model_fields.get("type")
        if field is not None and isinstance(field.default, str):
            return field.default
    if isinstance(option, type):
        return option.__name__
    return None


def _field_named(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _child_annotation(options: list[Any], part: str | int) -> Any:
    """Return the annotation found one step below `options` at a field, key or index."""
    for option in options:
        origin = get_origin(option)
        if isinstance(part, int):
            if origin in (list, tuple):
                return get_args(option)[0]
            continue
        if isinstance(option, type) and issubclass(option, BaseModel):
            field = _field_named(option, part)
            if field is not None:
                return field.annotation
        elif origin is dict:
            return get_args(option)[1]
    return None


def _walk_location(
    loc: Sequence[str | int], root: type[BaseModel]
) -> tuple[list[str | int], list[Any]]:
    """Follow a pydantic error location through the schema.

    Returns:
        The location without the parts pydantic adds for unions and
        validators (`poisson` in `arrival.poisson.rate_per_s`, `str` in
        `cpu.str`), and the types possible at its end.
    """
    path: list[str | int] = []
    options: list[Any] = [root]
    for part in loc:
        if isinstance(part, str) and "[" in part:
            # Validator wrappers such as `function-after[...]` and tags such as `list[...]`.
            continue
        if isinstance(part, str) and len(options) > 1:
            chosen = [option for option in options if _union_tag(option) == part]
            if chosen:
                options = chosen
                continue
        path.append(part)
        options = _alternatives(_child_annotation(options, part))
    return path, options


def format_validation_error(
    error: ValidationError,
    source: str,
    *,
    root: type[BaseModel] = Scenario,
    prefix: Sequence[str | int] = (),
) -> ScenarioError:
    """Turn pydantic's first error into one readable ScenarioError.

    Args:
        error: the error raised when validating data against `root`.
        source: file name for the message.
        root: the model that was validated.
        prefix: location of that model's data inside the scenario.
    """
    errors = error.errors()
    # A misspelt key also makes the key it was meant to be missing: report the misspelling.
    unknown = [item for item in errors if item["type"] == "extra_forbidden"]
    first = unknown[0] if unknown else errors[0]
    loc, _ = _walk_location(first["loc"], root)
    kind = first["type"]
    path = _describe_location([*prefix, *loc])
    value = first.get("input")
    if kind == "extra_forbidden":
        _, parents = _walk_location(first["loc"][:-1], root)
        allowed = sorted(
            {
                key
                for parent in parents
                if isinstance(parent, type) and issubclass(parent, BaseModel)
                for key in _model_fields(parent)
            }
        )
        hint = _suggestion(str(loc[-1]), allowed)
        return ScenarioError(source, path, f"unknown key{hint} (allowed: {', '.join(allowed)})")
    if kind == "missing":
        return ScenarioError(source, path, "required key is missing")
    message = first["msg"]
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        if not path:
            # Cross-field checks put the path at the start of their message.
            return ScenarioError(source, "", message)
    # A value that fits no member of a union fails once per member: list them all.
    expected = []
    for other in errors:
        if _walk_location(other["loc"], root)[0] == loc and other["msg"] not in expected:
            expected.append(other["msg"])
    if len(expected) > 1:
        message = "invalid value; expected " + " or ".join(
            text.removeprefix("Input should be ") for text in expected
        )
    return ScenarioError(source, path, message, value)


def _driver_error(error: ValidationError, source: str) -> ScenarioError | None:
    """Return a precise error for a driver's model name or model settings, else None.

    `DriverConfig` checks its model as a whole, so pydantic reports the problem
    at `drivers[i]`. This function repeats the check to find the field and value.
    """
    first = error.errors()[0]
    loc = first["loc"]
    driver = first.get("input")
    if (
        first["type"] != "value_error"
        or len(loc) != 2
        or loc[0] != "drivers"
        or not isinstance(loc[1], int)
        or not isinstance(driver, Mapping)
    ):
        return None
    prefix: list[str | int] = ["drivers", loc[1]]
    model = driver.get("model", DriverConfig.model_fields["model"].default)
    available = available_driver_models()
    if model not in available:
        suggestion = difflib.get_close_matches(str(model), available, n=1)
        hint = f"; did you mean {suggestion[0]!r}?" if suggestion else ""
        return ScenarioError(
            source,
            _describe_location([*prefix, "model"]),
            f"unknown driver model{hint} (available: {', '.join(available)})",
            model,
        )
    settings_model = get_driver_model(model).Settings
    try:
        settings_model.model_validate(driver.get("model_settings") or {})
    except ValidationError as settings_error:
        return format_validation_error(
            settings_error, source, root=settings_model, prefix=[*prefix, "model_settings"]
        )
    return None


def _boolean_for_number(
    data: Any, annotation: Any, loc: list[str | int]
) -> tuple[list[str | int], str] | None:
    """Find a boolean where the schema expects a number, and return its location and type.

    Pydantic's lax mode turns `true` into 1 for `int` and `float` fields, and a
    YAML `yes`/`true` in a numeric field is almost always a mistake. Fields
    that accept booleans (device attributes, selectors, free-form `Any`) are
    left alone. Driver `model_settings` are checked against the model's own
    settings schema.
    """
    options = _alternatives(annotation)
    if isinstance(data, bool):
        if any(option in (bool, Any) for option in options):
            return None
        if int in options and float not in options:
            return loc, "an integer"
        if int in options or float in options:
            return loc, "a number"
        return None
    found: tuple[list[str | int], str] | None = None
    if isinstance(data, Mapping):
        models = [o for o in options if isinstance(o, type) and issubclass(o, BaseModel)]
        model = _pick_model(models, data) if models else None
        dicts = [o for o in options if get_origin(o) is dict]
        for key, value in data.items():
            child: Any = None
            if model is not None:
                field = _field_named(model, str(key))
                child = field.annotation if field is not None else None
                if model is DriverConfig and key == "model_settings":
                    child = _settings_schema(data.get("model", "node-local"))
            elif dicts:
                child = get_args(dicts[0])[1]
            if child is not None:
                found = _boolean_for_number(value, child, [*loc, str(key)])
            if found:
                return found
    elif isinstance(data, list):
        lists = [o for o in options if get_origin(o) in (list, tuple)]
        if lists:
            for index, item in enumerate(data):
                found = _boolean_for_number(item, get_args(lists[0])[0], [*loc, index])
                if found:
                    return found
    return None


def _settings_schema(model: Any) -> Any:
    """Return the `Settings` model of a driver model name, or None for an unknown name."""
    if not isinstance(model, str) or model not in available_driver_models():
        return None
    return get_driver_model(model).Settings


def parse_scenario(data: Any, *, source: str = "<scenario>") -> Scenario:
    """Validate scenario data (already parsed from YAML).

    Raises:
        ScenarioError: the data breaks the schema.
    """
    if not isinstance(data, Mapping):
        raise ScenarioError(source, "", "a scenario must be a mapping of keys to values", data)
    boolean = _boolean_for_number(data, Scenario, [])
    if boolean is not None:
        loc, expected = boolean
        value: Any = data
        for part in loc:
            value = value[part]
        raise ScenarioError(
            source,
            _describe_location(loc),
            f"invalid value; expected {expected}, not a boolean",
            value,
        )
    try:
        return Scenario.model_validate(data)
    except ValidationError as error:
        raise _driver_error(error, source) or format_validation_error(error, source) from None


def read_scenario_data(path: str | Path) -> dict[str, Any]:
    """Read a scenario file as plain data.

    Raises:
        ScenarioError: the file is missing, is a directory or is not valid YAML.
    """
    file = Path(path)
    source = str(path)
    if file.is_dir():
        raise ScenarioError(
            source, "", "is a directory, not a file; give the path of a scenario YAML file"
        )
    if not file.is_file():
        raise ScenarioError(source, "", "file not found; give the path of a scenario YAML file")
    try:
        data = load_yaml_text(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ScenarioError(source, "", f"invalid YAML: {where}{problem}") from None
    except UnicodeDecodeError as error:
        raise ScenarioError(source, "", f"not a UTF-8 text file: {error}") from None
    if data is None:
        raise ScenarioError(source, "", "the file is empty")
    if not isinstance(data, dict):
        raise ScenarioError(source, "", "a scenario must be a mapping of keys to values")
    return data


def apply_overrides(
    data: dict[str, Any], overrides: Sequence[str], *, source: str
) -> dict[str, Any]:
    """Apply `dotted.key=value` overrides (values parsed as YAML) to scenario data.

    List items are addressed by index (`drivers.0.workers=2`) or, for lists of
    named entries, by name (`drivers.gpu.example.com.workers` is ambiguous, so
    names are written in brackets: `drivers[gpu.example.com].workers=2`).

    Raises:
        ScenarioError: an override is malformed, repeats a key in its value or
            names a key that does not exist.
    """
    result: dict[str, Any] = yaml.safe_load(yaml.safe_dump(data)) or {}
    for override in overrides:
        if "=" not in override:
            raise ScenarioError(
                source, "--set", "expected dotted.key=value, e.g. horizon_s=600", override
            )
        key, raw = override.split("=", 1)
        try:
            value = load_yaml_text(raw) if raw else ""
        except yaml.constructor.ConstructorError as error:
            # Parsed, but not acceptable: a repeated key or an unknown tag.
            raise ScenarioError(
                source, "--set", f"invalid value: {error.problem}", override
            ) from None
        except yaml.YAMLError:
            # Not YAML at all, such as `description=a: b`: the text itself is the value.
            value = raw
        parts = _split_key(key, source=source, override=override)
        if not parts:
            raise ScenarioError(source, "--set", "empty key", override)
        _set_path(result, parts, value, source=source, override=override)
    return result


BRACKET_FORM = "Name a list entry as key[name], e.g. drivers[gpu.example.com].workers=2"
"""The allowed form of a bracketed name in an override key, for error messages."""


def _split_key(key: str, *, source: str, override: str) -> list[str]:
    """Split an override key into keys, indexes and `[name]` parts.

    Raises:
        ScenarioError: a bracket is not closed, is closed without being
            opened, or is opened inside another one.
    """
    parts: list[str] = []
    current = ""
    in_brackets = False
    for char in key:
        if char == "[":
            if in_brackets:
                raise _bracket_error(key, "brackets cannot be nested", source, override)
            if current:
                parts.append(current)
            current = ""
            in_brackets = True
        elif char == "]":
            if not in_brackets:
                raise _bracket_error(key, "']' without a matching '['", source, override)
            parts.append(f"[{current}]")
            current = ""
            in_brackets = False
        elif char == "." and not in_brackets:
            if current:
                parts.append(current)
            current = ""
        else:
            current += char
    if in_brackets:
        raise _bracket_error(key, "'[' is not closed by ']'", source, override)
    if current:
        parts.append(current)
    return parts


def _bracket_error(key: str, problem: str, source: str, override: str) -> ScenarioError:
    return ScenarioError(
        source, "--set", f"invalid key {key!r}: {problem}. {BRACKET_FORM}", override
    )


def _join_key(parts: Sequence[str]) -> str:
    return "".join(
        part if part.startswith("[") or not index else f".{part}"
        for index, part in enumerate(parts)
    )


def _holds_keys(annotation: Any) -> bool:
    """Return whether a value of this type has keys or items that an override may set."""
    for option in _alternatives(annotation):
        if option is Any or get_origin(option) in (dict, list, tuple):
            return True
        if isinstance(option, type) and issubclass(option, BaseModel | dict | list | tuple):
            return True
    return False


def _mapping_values(annotation: Any) -> Any:
    """Return the value type of a mapping with free keys (`devices`, `labels`), else None."""
    options = _alternatives(annotation)
    if any(isinstance(o, type) and issubclass(o, BaseModel) for o in options):
        return None
    for option in options:
        if get_origin(option) is dict:
            return get_args(option)[1]
    return None


def _set_path(container: Any, parts: list[str], value: Any, *, source: str, override: str) -> None:
    models: list[type[BaseModel]] = [Scenario]
    # The value type while `container` is a mapping keyed by names (such as driver names).
    values: Any = None
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        path = _join_key(parts[: position + 1])
        if isinstance(container, list):
            index = _list_index(container, part)
            if index is None:
                list_key = _join_key(parts[:position])
                entries = "1 entry" if len(container) == 1 else f"{len(container)} entries"
                raise ScenarioError(
                    source,
                    path,
                    f"no such list entry; {list_key} has {entries} (use the index or [name] "
                    f"of an entry, or set the whole list, e.g. {list_key}=[...])",
                    override,
                )
            if last:
                container[index] = value
                return
            container = container[index]
            continue
        if not isinstance(container, dict):
            raise ScenarioError(source, path, "cannot set a key inside a plain value", override)
        if values is not None:
            # Any key is allowed, and a bracketed one may contain dots: devices[gpu.example.com].
            key = part[1:-1] if part.startswith("[") and part.endswith("]") else part
            if last:
                container[key] = value
                return
            models = _models_in(values)
            values = None
            if key not in container or container[key] is None:
                container[key] = {}
            container = container[key]
            continue
        model = _pick_model(models, container)
        allowed = _model_fields(model) if model is not None else []
        if model is not None and part not in allowed:
            raise ScenarioError(
                source,
                path,
                f"unknown key{_suggestion(part, allowed)} (allowed: {', '.join(allowed)})",
                override,
            )
        if last:
            container[part] = value
            return
        field = _field_named(model, part) if model is not None else None
        if field is not None and not _holds_keys(field.annotation):
            raise ScenarioError(
                source,
                _join_key(parts[: position + 2]),
                f"cannot set a key inside a plain value ({part} is not a mapping or list)",
                override,
            )
        models = _models_in(field.annotation) if field is not None else []
        values = _mapping_values(field.annotation) if field is not None else None
        if part not in container or container[part] is None:
            is_list = field is not None and any(
                get_origin(option) in (list, tuple) for option in _alternatives(field.annotation)
            )
            container[part] = [] if is_list else {}
        container = container[part]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Return the models a field can hold (several for a union such as `arrival`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for argument in getattr(annotation, "__args__", ()) or ():
        found.extend(model for model in _models_in(argument) if model not in found)
    origin = getattr(annotation, "__origin__", None)
    if not found and origin is not None:
        found = _models_in(origin)
    return found


def _pick_model(models: list[type[BaseModel]], data: Mapping[str, Any]) -> type[BaseModel] | None:
    """Choose the union member that `data` is, by its `type` key; None when unknown."""
    if len(models) == 1:
        return models[0]
    tag = data.get("type")
    for model in models:
        field = model.model_fields.get("type")
        if field is not None and field.default == tag:
            return model
    return None


def _list_index(items: list[Any], part: str) -> int | None:
    if part.startswith("[") and part.endswith("]"):
        name = part[1:-1]
        for index, item in enumerate(items):
            if isinstance(item, dict) and item.get("name") == name:
                return index
        return None
    if part.isdigit() and int(part) < len(items):
        return int(part)
    return None


def load_scenario(
    path: str | Path, *, overrides: Sequence[str] = (), seed: int | None = None
) -> Scenario:
    """Read, override and validate a scenario file; relative manifest paths become absolute.

    Raises:
        ScenarioError: the file, an override or a value is invalid.
    """
    source = str(path)
    data = read_scenario_data(path)
    if overrides:
        data = apply_overrides(data, overrides, source=source)
    if seed is not None:
        data["seed"] = seed
    scenario = parse_scenario(data, source=source)
    base = Path(path).resolve().parent
    manifests = [
        str((base / m).resolve()) if not Path(m).is_absolute() else m for m in scenario.manifests
    ]
    for index, manifest in enumerate(manifests):
        if not Path(manifest).exists():
            raise ScenarioError(
                source, f"manifests[{index}]", "file or folder not found", scenario.manifests[index]
            )
    return scenario.model_copy(update={"manifests": manifests})


def resolved_data(scenario: Scenario) -> dict[str, Any]:
    """Return the scenario with every default written out (for `scenario.resolved.yaml`).

    The data is plain YAML-able values. Infinite floats stay floats, which
    YAML writes as `.inf` and reads back as infinity.
    """
    data: dict[str, Any] = scenario.model_dump(mode="json", by_alias=True)
    return data


def known_driver_models() -> list[str]:
    """Return the names of the registered driver models (for messages)."""
    return available_driver_models()
