"""Building a simulated cluster from a scenario, running it and collecting the results.

`build(scenario)` creates the world at time 0: the API server with the nodes,
resource classes, parameter objects, shared claims, claim templates and
manifests of the scenario, and the components (kube-scheduler, the
resourceclaim controller, the garbage collector, one controller per driver,
one kubelet per node with a plugin per driver). `run(...)` advances simulated
time to the horizon, or stops earlier once every workload has created its pods
and every pod has finished. The recorder's tuples then become the output
tables.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sim.api.codec import ManifestError, load_path
from sim.api.errors import AlreadyExists, APIError
from sim.api.types import (
    GenericObject,
    Node,
    NodeSpec,
    NodeStatus,
    ObjectMeta,
    Pod,
    ResourceClaim,
    ResourceClaimParametersReference,
    ResourceClaimSpec,
    ResourceClaimTemplate,
    ResourceClaimTemplateSpec,
    ResourceClass,
    ResourceClassParametersReference,
    Taint,
    TopLevelObject,
    kind_of,
)
from sim.api.validation import prepare_for_create
from sim.cluster.claimcontroller import ResourceClaimController
from sim.cluster.driver import DriverController, SharedDeviceModel
from sim.cluster.garbagecollector import GarbageCollector
from sim.cluster.kubelet import Kubelet, NodePlugin
from sim.cluster.podgc import PodGarbageCollector
from sim.cluster.scheduler.scheduler import KubeScheduler
from sim.cluster.workloadcontrollers import (
    WorkloadController,
    WorkloadSpecError,
    check_workload_object,
    has_workload_objects,
    register_workload_kinds,
    start_workload_controllers,
    with_default_run_duration,
)
from sim.cluster.world import World
from sim.drivers.devices import SIM_PARAMETERS_GROUP
from sim.metrics.objects import ObjectRecorder
from sim.metrics.tracker import Tracker
from sim.scenario import ClaimSpec, NodeFaultSpec, Scenario
from sim.workload.openb import TraceWorkloadSource
from sim.workload.synthetic import WorkloadSource

logger = logging.getLogger(__name__)

HOSTNAME_LABEL = "kubernetes.io/hostname"
NODE_POOL_LABEL = "sim.dra/node-pool"
"""Label that names the node pool a node belongs to."""
PARAMETERS_API_VERSION = f"{SIM_PARAMETERS_GROUP}/v1"


class SetupError(ValueError):
    """An object of the scenario could not be created (e.g. a manifest the API server rejects)."""


@dataclass
class Simulation:
    """A built world with its components, ready to run."""

    scenario: Scenario
    world: World
    scheduler: KubeScheduler
    claim_controller: ResourceClaimController
    garbage_collector: GarbageCollector
    pod_gc: PodGarbageCollector
    drivers: dict[str, DriverController]
    kubelets: dict[str, Kubelet]
    sources: list[WorkloadSource]
    node_pools: dict[str, str]
    tracker: Tracker
    ignored_manifest_fields: list[str] = field(default_factory=list)
    """Manifest fields the simulator does not model, as `path pattern (count)`, most first."""
    workload_controllers: list[WorkloadController] = field(default_factory=list)
    """Deployment, ReplicaSet and Job controllers, started when the manifests create any."""
    object_recorder: ObjectRecorder | None = None
    wall_time_s: float = 0.0
    events_processed: int = 0
    end_time_s: float = 0.0
    """Simulated time up to which the run has advanced."""
    _unfinished_pod: str = field(default="", init=False, repr=False)
    """Informer key of the pod that kept the last `drained()` check from passing."""

    def drained(self) -> bool:
        """Whether every source is done and no pod is left that has not finished."""
        if not all(source.finished for source in self.sources):
            return False
        if not all(controller.finished() for controller in self.workload_controllers):
            return False
        pods = self.scheduler.pods.cache
        # A long-running pod is usually still running at the next check, and thousands of
        # finished pods can come after it in the cache.
        last = pods.get(self._unfinished_pod)
        if last is not None and not last.done:
            return False
        # Newest first: the pods still running are mostly the last ones created.
        for key, pod in reversed(pods.items()):
            if not pod.done:
                self._unfinished_pod = key
                return False
        return True

    def run(
        self,
        until_s: float | None = None,
        *,
        progress: Callable[[float], None] | None = None,
        check_interval_s: float = 10.0,
    ) -> None:
        """Advance simulated time to `until_s` (default: the horizon) or until drained."""
        env = self.world.env
        horizon = until_s if until_s is not None else self.scenario.horizon_s
        started = time.perf_counter()
        steps = 0
        stop_at = float(env.now)
        with _fewer_collections():
            while stop_at < horizon:
                stop_at = min(horizon, stop_at + check_interval_s)
                while env.peek() <= stop_at:
                    env.step()
                    steps += 1
                self.end_time_s = stop_at
                if progress is not None:
                    progress(stop_at)
                if self.drained():
                    break
        self.events_processed += steps
        self.wall_time_s += time.perf_counter() - started


GC_YOUNGEST_THRESHOLD = 100_000
"""Allocations between two collections of the youngest generation while a simulation runs.

A run allocates millions of short-lived objects (events, object copies) next
to a large set of long-lived ones (stored objects, records). Python's default
of 700 starts a collection so often that scanning took 12 % of the wall time
of a run with 1,000 nodes and 5,000 pods.
"""


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Exclude the objects that exist now from collections and collect less often, then restore."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_YOUNGEST_THRESHOLD, thresholds[1], thresholds[2])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _device_count(
    drivers: dict[str, DriverController], claim: ResourceClaim
) -> tuple[str, str, float] | None:
    """Return (driver, node, devices) of an allocated claim, as its driver model reports it.

    Devices are the names the model reports, or the model's `device_amount`
    when it hands out shares of devices.
    """
    driver = claim.status.driver_name
    controller = drivers.get(driver)
    if controller is None:
        return None
    model = controller.model
    found = model.devices_of(claim.metadata.uid)
    if found is None:
        return None
    node, devices = found
    if isinstance(model, SharedDeviceModel):
        amount = model.device_amount(claim.metadata.uid)
        return None if amount is None else (driver, node, amount)
    return driver, node, len(devices)


def _parameters_object(
    kind: str, name: str, namespace: str, spec: dict[str, Any], *, config_map: bool
) -> GenericObject:
    if config_map:
        return GenericObject(
            api_version="v1",
            kind="ConfigMap",
            metadata=ObjectMeta(name=name, namespace=namespace),
            body={"data": {key: str(value) for key, value in spec.items()}},
        )
    return GenericObject(
        api_version=PARAMETERS_API_VERSION,
        kind=kind,
        metadata=ObjectMeta(name=name, namespace=namespace),
        body={"spec": spec},
    )


class _Builder:
    """Creates the objects and components of a scenario in a fresh world."""

    def __init__(self, scenario: Scenario, world: World) -> None:
        self.scenario = scenario
        self.world = world
        self.api = world.api
        self.models = {driver.name: driver.model for driver in scenario.drivers}
        self.class_driver = {cls.name: cls.driver_name for cls in scenario.resource_classes}

    def create(self, obj: Any) -> Any:
        self.world.current_actor = "setup"
        self.world.current_reason = "scenario object at time 0"
        try:
            return self.api.create(obj)
        except APIError as error:
            raise SetupError(
                f"creating {obj.KIND or obj.kind} {obj.metadata.name!r}: {error}"
            ) from None

    def uses_config_maps(self, resource_class: str) -> bool:
        driver = self.class_driver.get(resource_class)
        return driver is not None and self.models.get(driver) == "node-local"

    def nodes(self) -> dict[str, str]:
        pools: dict[str, str] = {}
        for pool in self.scenario.cluster.node_pools:
            taints = tuple(Taint(key=t.key, value=t.value, effect=t.effect) for t in pool.taints)
            allocatable = {"cpu": pool.cpu, "memory": pool.memory, "pods": pool.pods}
            for name in pool.node_names():
                labels = {**pool.labels, HOSTNAME_LABEL: name, NODE_POOL_LABEL: pool.name}
                self.create(
                    Node(
                        metadata=ObjectMeta(name=name, labels=labels),
                        spec=NodeSpec(taints=taints),
                        status=NodeStatus(capacity=allocatable, allocatable=allocatable),
                    )
                )
                pools[name] = pool.name
        return pools

    def classes(self) -> None:
        self.api.register_kind("DeviceClassParameters", PARAMETERS_API_VERSION, namespaced=False)
        for spec in self.scenario.resource_classes:
            reference = None
            if spec.parameters is not None:
                parameters = _parameters_object(
                    "DeviceClassParameters", spec.name, "", spec.parameters, config_map=False
                )
                if self.uses_config_maps(spec.name):
                    parameters = _parameters_object(
                        "ConfigMap", spec.name, "default", spec.parameters, config_map=True
                    )
                self.create(parameters)
                reference = ResourceClassParametersReference(
                    api_group="" if parameters.kind == "ConfigMap" else SIM_PARAMETERS_GROUP,
                    kind=parameters.kind,
                    name=spec.name,
                    namespace=parameters.metadata.namespace,
                )
            self.create(
                ResourceClass(
                    metadata=ObjectMeta(name=spec.name),
                    driver_name=spec.driver_name,
                    parameters_ref=reference,
                    suitable_nodes=spec.suitable_nodes,
                )
            )

    def claim_spec(self, spec: ClaimSpec, name: str, namespace: str) -> ResourceClaimSpec:
        reference = None
        if spec.parameters is not None:
            config_map = self.uses_config_maps(spec.resource_class)
            parameters = _parameters_object(
                "DeviceClaimParameters", name, namespace, spec.parameters, config_map=config_map
            )
            self.create(parameters)
            reference = ResourceClaimParametersReference(
                api_group="" if config_map else SIM_PARAMETERS_GROUP,
                kind=parameters.kind,
                name=name,
            )
        return ResourceClaimSpec(
            resource_class_name=spec.resource_class,
            allocation_mode=spec.allocation_mode,
            parameters_ref=reference,
        )

    def shared_claims(self) -> None:
        for spec in self.scenario.shared_claims:
            self.create(
                ResourceClaim(
                    metadata=ObjectMeta(name=spec.name, namespace=spec.namespace),
                    spec=self.claim_spec(spec, spec.name, spec.namespace),
                )
            )

    def templates(self) -> dict[str, dict[str, str]]:
        names: dict[str, dict[str, str]] = {}
        for workload in self.scenario.workloads:
            names[workload.name] = {}
            for pod_claim in workload.claims:
                if pod_claim.template is None:
                    continue
                name = f"{workload.name}-{pod_claim.name}"
                self.create(
                    ResourceClaimTemplate(
                        metadata=ObjectMeta(name=name, namespace=workload.namespace),
                        spec=ResourceClaimTemplateSpec(
                            spec=self.claim_spec(pod_claim.template, name, workload.namespace)
                        ),
                    )
                )
                names[workload.name][pod_claim.name] = name
        return names

    def manifests(self) -> list[str]:
        """Apply the manifests in order; return the fields not modelled, grouped by path."""
        ignored: list[str] = []
        for path in self.scenario.manifests:
            try:
                result = load_path(path, lenient=True)
            except ManifestError as error:
                raise SetupError(str(error)) from None
            ignored.extend(item.path for item in result.ignored)
            for obj in result.objects:
                try:
                    ignored.extend(check_workload_object(self.api, obj))
                except WorkloadSpecError as error:
                    raise SetupError(str(error)) from None
                if isinstance(obj, Pod):
                    obj = with_default_run_duration(obj, self.scenario.manifest_run_duration_s)
                try:
                    self.apply(obj)
                except SetupError as error:
                    raise SetupError(f"manifest {path}: {error}") from None
        grouped = _group_field_paths(ignored)
        if grouped:
            logger.warning(
                "ignored %d manifest fields that the simulator does not model: %s",
                len(ignored),
                ", ".join(grouped),
            )
        return grouped

    def apply(self, obj: TopLevelObject) -> None:
        """Create a manifest object, or replace the one of that name as `kubectl apply` does.

        Applying an object equal to the stored one changes nothing, so a
        manifest may repeat an object of the cluster or of an earlier manifest.
        The replacement keeps what the API server filled in on create and the
        manifest leaves unset (a Job's generated selector and pod labels), as
        kubectl apply keeps fields that no manifest sets.
        """
        self.world.current_actor = "setup"
        self.world.current_reason = "manifest applied at time 0"
        kind = kind_of(obj)
        try:
            self.api.create(obj)
            return
        except AlreadyExists:
            pass
        except APIError as error:
            raise SetupError(f"creating {kind} {obj.metadata.name!r}: {error}") from None
        stored = self.api.get(kind, obj.metadata.name, obj.metadata.namespace)
        replacement = prepare_for_create(
            obj.with_meta(
                uid=obj.metadata.uid or stored.metadata.uid,
                resource_version=stored.metadata.resource_version,
            )
        )
        try:
            self.api.update(replacement)
        except APIError as error:
            raise SetupError(
                f"applying {kind} {obj.metadata.name!r} over the one that already exists "
                f"(from the cluster or an earlier manifest): {error}"
            ) from None


def _group_field_paths(paths: list[str]) -> list[str]:
    """Return `pattern (count)` per path pattern (list indexes as `[]`), most frequent first."""
    counts = Counter(re.sub(r"\[\d+\]", "[]", path) for path in paths)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [f"{pattern} ({count})" for pattern, count in ordered]


def build(
    scenario: Scenario,
    *,
    seed: int | None = None,
    replication: int = 0,
    check_invariants: bool = False,
) -> Simulation:
    """Create the world of a scenario at time 0 with all its components started.

    Raises:
        SetupError: an object of the scenario or of its manifests was rejected.
    """
    world = World.create(
        scenario.control_plane,
        seed=scenario.seed if seed is None else seed,
        replication=replication,
    )
    object_recorder = ObjectRecorder(world, scenario.record_objects)
    object_recorder.attach()
    register_workload_kinds(world.api)
    drivers: dict[str, DriverController] = {}
    tracker = Tracker(world, device_count=lambda claim: _device_count(drivers, claim))
    tracker.start()
    builder = _Builder(scenario, world)
    node_pools = builder.nodes()
    builder.classes()
    builder.shared_claims()
    template_names = builder.templates()
    ignored = builder.manifests()

    for driver in scenario.drivers:
        drivers[driver.name] = DriverController(world, driver)
    for name, controller in drivers.items():
        for node, use in controller.model.inventory().items():
            if use.total is not None:
                tracker.capacity[(name, node)] = use.total
    tracker.pools.update(node_pools)
    kubelets: dict[str, Kubelet] = {}
    node_faults = scenario.node_faults_by_node()
    for pool in scenario.cluster.node_pools:
        for node in pool.node_names():
            faults = node_faults.get(node, NodeFaultSpec(nodes=[node]))
            plugins = [
                NodePlugin(world, node, driver.name, faults=faults.plugins.get(driver.name))
                for driver in scenario.drivers
            ]
            kubelets[node] = Kubelet(
                world, node, scenario.kubelet, plugins=plugins, faults=faults.kubelet
            )

    if check_invariants or scenario.check_invariants:
        from sim.cluster.invariants import InvariantChecker

        InvariantChecker.for_drivers(world, drivers).attach()

    scheduler = KubeScheduler(world)
    if scheduler.device_aware is not None:
        try:
            scheduler.device_aware.attach(drivers)
        except ValueError as error:
            raise SetupError(str(error)) from None
    claim_controller = ResourceClaimController(world)
    garbage_collector = GarbageCollector(world)
    pod_gc = PodGarbageCollector(world)
    sources: list[WorkloadSource] = []
    for workload in scenario.workloads:
        source_class = TraceWorkloadSource if workload.arrival.type == "trace" else WorkloadSource
        sources.append(source_class(world, workload, template_names[workload.name]))
    scheduler.start()
    claim_controller.start()
    garbage_collector.start()
    pod_gc.start()
    for controller in drivers.values():
        controller.start()
    for kubelet in kubelets.values():
        kubelet.start()
    for source in sources:
        source.start()
    workload_controllers: list[WorkloadController] = []
    if has_workload_objects(world.api):
        workload_controllers = start_workload_controllers(
            world, default_run_duration_s=scenario.manifest_run_duration_s
        )
    return Simulation(
        scenario=scenario,
        world=world,
        scheduler=scheduler,
        claim_controller=claim_controller,
        garbage_collector=garbage_collector,
        pod_gc=pod_gc,
        drivers=drivers,
        kubelets=kubelets,
        sources=sources,
        node_pools=node_pools,
        tracker=tracker,
        ignored_manifest_fields=ignored,
        workload_controllers=workload_controllers,
        object_recorder=object_recorder,
    )
