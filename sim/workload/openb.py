"""The Alibaba "openb" GPU trace: reading it, and turning it into a scenario or a pod list.

The trace (GitHub `alibaba/clusterdata`, folder `cluster-trace-gpu-v2023`,
published with Weng et al., USENIX ATC '23; research or study use only, with
attribution) has two kinds of CSV files:

* node lists, `sn,cpu_milli,memory_mib,gpu,model`: one row per node, with CPU
  in millicores, memory in MiB, the number of GPUs and the GPU model (empty
  for CPU-only nodes);
* pod lists, `name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,
  pod_phase,creation_time,deletion_time,scheduled_time`: one row per pod. A
  pod asks for `num_gpu` whole GPUs, or for `gpu_milli` thousandths of one
  GPU when `num_gpu` is 1 and `gpu_milli` < 1000. `gpu_spec` lists the GPU
  models it accepts, separated by `|` (empty: any). Times are seconds from an
  unstated origin. The `multigpu*` files have only the first five columns.

Reading rules:

* Pod lists are sorted by creation time (stable, so equal times keep file
  order). Files without timestamps get one arrival per second in file order,
  and their pods run until the end of the simulation; placement studies
  accept them, but `read_pods(..., require_times=True)`, which `dra-sim
  import openb` uses, rejects them.
* A pod's run duration is its observed lifetime, `deletion_time -
  creation_time`. The simulator starts counting it when the pod starts
  running, so a pod that waits longer than it did in the trace also ends
  later.
* A bad file (missing column, non-numeric value, negative count, fractional
  GPU request with several GPUs) raises one `TraceError` naming the file, the
  row (1-based, header is row 1), the column and the value.

`build_scenario` returns scenario data (plain dicts, as in a YAML file): one
node pool per distinct node shape, one `gpushare` driver, one resource class,
and one workload per distinct pod shape whose pods arrive at the trace times
(`{type: trace}` arrivals). `TraceWorkloadSource` creates those pods.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import simpy

from sim.cluster.kubelet import RUN_DURATION_ANNOTATION
from sim.cluster.world import World
from sim.drivers.gpu_policies import (
    MILLI_PER_GPU,
    POLICY_NAMES,
    GpuCluster,
    GpuRequest,
    WorkloadMix,
)
from sim.scenario import WorkloadSpec
from sim.workload.synthetic import WorkloadSource

logger = logging.getLogger(__name__)

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
"""Columns every pod list has; `gpu_spec` and the times are optional (`multigpu*` lacks them)."""
TIME_COLUMNS = ("creation_time", "deletion_time")
"""Columns with the arrival time and lifetime of a pod; a scenario replay needs them."""
POD_HEADER = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
    "creation_time,deletion_time,scheduled_time"
)
"""Header of a full openb pod list, shown when a pod list lacks a column."""

GPU_MODEL_LABEL = "gpu.model"
"""Node label with the GPU model of the node's GPUs (absent on CPU-only nodes)."""
DEFAULT_DRIVER = "gpu.openb.example.com"
DEFAULT_CLASS = "gpu"
TRACE_NAME_ANNOTATION = "sim.dra/trace-name"
"""Pod annotation with the pod's name in the trace."""
FILE_ORDER_INTERVAL_S = 1.0
"""Arrival interval for pod lists without timestamps."""


class TraceError(ValueError):
    """A trace file that cannot be read, with the file, row, column and value."""

    def __init__(
        self,
        path: str | Path,
        problem: str,
        *,
        row: int | None = None,
        column: str | None = None,
        value: str | None = None,
    ) -> None:
        where = str(path)
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column!r}"
        message = f"{where}: {problem}"
        if value is not None:
            message += f" (got {value!r})"
        super().__init__(message)
        self.path = str(path)
        self.row = row
        self.column = column
        self.value = value


@dataclass(frozen=True)
class TraceNode:
    """One node of a node list."""

    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    model: str


@dataclass(frozen=True)
class TracePod:
    """One pod of a pod list, with its arrival and run duration in seconds."""

    name: str
    request: GpuRequest
    arrival_s: float
    duration_s: float | None
    """Observed lifetime (deletion - creation); None when the trace has no times."""

    @property
    def shape(self) -> tuple[int, int, int, int, tuple[str, ...]]:
        """(CPU, memory, GPU count, GPU milli, models): pods of one shape share a workload."""
        r = self.request
        return (r.cpu_milli, r.memory_mib, r.gpu_count, r.gpu_milli, tuple(sorted(r.models)))


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def _rows(
    path: Path, required: Sequence[str], expected_header: str
) -> tuple[list[str], Iterable[tuple[int, dict[str, str]]]]:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as error:
        raise TraceError(path, f"cannot open the file: {error.strerror or error}") from None
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = list(reader.fieldnames or [])
            missing = [column for column in required if column not in header]
            if missing:
                raise TraceError(
                    path,
                    f"missing column(s) {', '.join(missing)}; expected the header "
                    f"{expected_header} (the file's header is: "
                    f"{','.join(header) or 'empty'})",
                    row=1,
                )
            rows = [(index + 2, row) for index, row in enumerate(reader)]
        except UnicodeDecodeError as error:
            raise TraceError(
                path,
                f"not a UTF-8 text file ({error.reason}); give an openb CSV file",
            ) from None
        except csv.Error as error:
            raise TraceError(path, f"invalid CSV: {error}", row=reader.line_num) from None
    return header, rows


def _integer(path: Path, row: int, column: str, text: str | None, *, minimum: int = 0) -> int:
    value = (text or "").strip()
    try:
        number = float(value)
    except ValueError:
        raise TraceError(path, "not a number", row=row, column=column, value=value) from None
    if not math.isfinite(number) or number != int(number):
        raise TraceError(path, "not a whole number", row=row, column=column, value=value)
    if number < minimum:
        raise TraceError(path, f"must be >= {minimum}", row=row, column=column, value=value)
    return int(number)


def read_nodes(path: str | Path) -> list[TraceNode]:
    """Read a node list (`sn,cpu_milli,memory_mib,gpu,model`).

    Raises:
        TraceError: the file is missing, lacks a column or has a bad value.
    """
    file = Path(path)
    _header, rows = _rows(file, NODE_COLUMNS, ",".join(NODE_COLUMNS))
    nodes: list[TraceNode] = []
    seen: set[str] = set()
    for number, row in rows:
        name = (row.get("sn") or "").strip()
        if not name:
            raise TraceError(file, "empty node name", row=number, column="sn", value=name)
        if name in seen:
            raise TraceError(file, "node listed twice", row=number, column="sn", value=name)
        seen.add(name)
        gpus = _integer(file, number, "gpu", row.get("gpu"))
        model = (row.get("model") or "").strip()
        if model.lower() == "nan":
            model = ""
        if gpus > 0 and not model:
            raise TraceError(
                file, "a node with GPUs needs a GPU model", row=number, column="model", value=model
            )
        nodes.append(
            TraceNode(
                name=name,
                cpu_milli=_integer(file, number, "cpu_milli", row.get("cpu_milli")),
                memory_mib=_integer(file, number, "memory_mib", row.get("memory_mib")),
                gpus=gpus,
                model=model if gpus > 0 else "",
            )
        )
    if not nodes:
        raise TraceError(file, "the node list has no rows")
    return nodes


def read_pods(path: str | Path, *, require_times: bool = False) -> list[TracePod]:
    """Read a pod list, sorted by creation time (file order when it has no times).

    Args:
        path: the pod list CSV file.
        require_times: reject a file without `creation_time` and
            `deletion_time`. A replay needs them: without them every pod
            arrives one second after the previous one and never ends.

    Raises:
        TraceError: the file is missing, lacks a column or has a bad value.
    """
    file = Path(path)
    required = (*POD_COLUMNS, *TIME_COLUMNS) if require_times else POD_COLUMNS
    header, rows = _rows(file, required, POD_HEADER)
    has_times = all(column in header for column in TIME_COLUMNS)
    if any(column in header for column in TIME_COLUMNS) and not has_times:
        present = [c for c in TIME_COLUMNS if c in header]
        raise TraceError(file, f"has {present[0]} but not both of {', '.join(TIME_COLUMNS)}", row=1)
    pods: list[TracePod] = []
    for index, (number, row) in enumerate(rows):
        pods.append(_pod(file, number, row, index, has_times))
    if not pods:
        raise TraceError(file, "the pod list has no rows")
    if has_times:
        pods.sort(key=lambda pod: pod.arrival_s)
    return pods


def _pod(file: Path, number: int, row: dict[str, str], index: int, has_times: bool) -> TracePod:
    name = (row.get("name") or "").strip() or f"pod-{index}"
    cpu = _integer(file, number, "cpu_milli", row.get("cpu_milli"))
    memory = _integer(file, number, "memory_mib", row.get("memory_mib"))
    count = _integer(file, number, "num_gpu", row.get("num_gpu"))
    milli = _integer(file, number, "gpu_milli", row.get("gpu_milli"))
    spec = (row.get("gpu_spec") or "").strip()
    models = frozenset(part.strip() for part in spec.split("|") if part.strip())
    if spec.lower() == "nan":
        models = frozenset()
    if count == 0:
        # CPU-only pods carry gpu_milli 0; a stray value has no meaning without GPUs.
        milli = 0
        models = frozenset()
    elif milli == 0 or milli > MILLI_PER_GPU:
        raise TraceError(
            file,
            "gpu_milli must be in 1..1000 for a GPU pod",
            row=number,
            column="gpu_milli",
            value=row.get("gpu_milli"),
        )
    elif count > 1 and milli != MILLI_PER_GPU:
        raise TraceError(
            file,
            "a share of a GPU (gpu_milli < 1000) needs num_gpu 1",
            row=number,
            column="num_gpu",
            value=row.get("num_gpu"),
        )
    request = GpuRequest(count, milli, cpu, memory, models)
    if not has_times:
        return TracePod(name, request, index * FILE_ORDER_INTERVAL_S, None)
    created = _integer(file, number, "creation_time", row.get("creation_time"))
    deleted = _integer(file, number, "deletion_time", row.get("deletion_time"))
    if deleted < created:
        raise TraceError(
            file,
            f"deletion_time is before creation_time ({created})",
            row=number,
            column="deletion_time",
            value=row.get("deletion_time"),
        )
    return TracePod(name, request, float(created), float(deleted - created))


# --------------------------------------------------------------------------------------
# Cluster state and workload mix
# --------------------------------------------------------------------------------------


def gpu_cluster(nodes: Sequence[TraceNode], *, track_cpu: bool = True) -> GpuCluster:
    """Return the placement state of a node list with every GPU free."""
    return GpuCluster(
        [node.name for node in nodes],
        [node.gpus for node in nodes],
        [node.model for node in nodes],
        cpu_milli=[node.cpu_milli for node in nodes] if track_cpu else None,
        memory_mib=[node.memory_mib for node in nodes] if track_cpu else None,
    )


def workload_mix(pods: Sequence[TracePod], coverage: float = 0.95) -> WorkloadMix:
    """Return the mix of the most common pod kinds of a trace (FGD's expected workload)."""
    return WorkloadMix.from_requests((pod.request for pod in pods), coverage)


def mix_settings(mix: WorkloadMix) -> list[dict[str, Any]]:
    """Return a workload mix as scenario data (`gpushare` model setting `workload_mix`)."""
    result: list[dict[str, Any]] = []
    for entry in mix.entries:
        item: dict[str, Any] = {
            "weight": round(entry.weight, 6),
            "gpu_count": entry.gpu_count,
            "gpu_milli": entry.gpu_milli,
            "cpu_milli": entry.cpu_milli,
        }
        if entry.models:
            item["models"] = sorted(entry.models)
        result.append(item)
    return result


# --------------------------------------------------------------------------------------
# Scenario data
# --------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def node_pools(nodes: Sequence[TraceNode], driver: str = DEFAULT_DRIVER) -> list[dict[str, Any]]:
    """Group identical nodes (CPU, memory, GPUs, model) into node pools, in first-seen order."""
    groups: dict[tuple[int, int, int, str], int] = {}
    for node in nodes:
        key = (node.cpu_milli, node.memory_mib, node.gpus, node.model)
        groups[key] = groups.get(key, 0) + 1
    pools: list[dict[str, Any]] = []
    for (cpu, memory, gpus, model), count in groups.items():
        name = f"{_slug(model) if model else 'cpu'}-{gpus}g-{cpu // 1000}c-{memory // 1024}gi"
        pool: dict[str, Any] = {
            "name": name,
            "count": count,
            "cpu": f"{cpu}m",
            "memory": f"{memory}Mi",
            "pods": 110,
        }
        if gpus > 0:
            pool["labels"] = {GPU_MODEL_LABEL: model}
            pool["devices"] = {
                driver: {"count": gpus, "attributes": {"model": model}, "name_prefix": "gpu"}
            }
        pools.append(pool)
    return pools


def claim_parameters(request: GpuRequest) -> dict[str, Any]:
    """Return the `gpushare` claim parameters for a pod's GPU request."""
    parameters: dict[str, Any] = {"count": request.gpu_count}
    if request.shared:
        parameters["gpu_milli"] = request.gpu_milli
    if request.models:
        parameters["models"] = sorted(request.models)
    return parameters


def workloads(
    pods: Sequence[TracePod], *, resource_class: str = DEFAULT_CLASS, time_scale: float = 1.0
) -> list[dict[str, Any]]:
    """Return one workload per pod shape, whose pods arrive at their (scaled) trace times.

    Times are shifted so that the first pod arrives at 0 and divided by
    `time_scale` (1 replays the trace in its own time; 1000 runs it 1000 times
    faster, durations included).

    Raises:
        ValueError: time_scale is not positive and finite.
    """
    if not (math.isfinite(time_scale) and time_scale > 0):
        raise ValueError(f"time_scale must be positive and finite, got {time_scale}")
    start = min((pod.arrival_s for pod in pods), default=0.0)
    by_shape: dict[tuple[int, int, int, int, tuple[str, ...]], list[TracePod]] = {}
    for pod in pods:
        by_shape.setdefault(pod.shape, []).append(pod)
    result: list[dict[str, Any]] = []
    for index, (shape, members) in enumerate(by_shape.items()):
        cpu, memory, gpus, _milli, _models = shape
        request = members[0].request
        durations = [
            None if pod.duration_s is None else round(pod.duration_s / time_scale, 6)
            for pod in members
        ]
        workload: dict[str, Any] = {
            "name": f"shape-{index:03d}",
            "arrival": {
                "type": "trace",
                "at_s": [round((pod.arrival_s - start) / time_scale, 6) for pod in members],
                "run_durations_s": durations,
                "names": [pod.name for pod in members],
            },
            "pod": {"cpu": f"{cpu}m", "memory": f"{memory}Mi"},
        }
        if gpus > 0:
            workload["claims"] = [
                {
                    "name": "gpu",
                    "template": {
                        "resource_class": resource_class,
                        "parameters": claim_parameters(request),
                    },
                }
            ]
        result.append(workload)
    return result


@dataclass(frozen=True)
class ImportOptions:
    """Choices for `build_scenario` (the options of `dra-sim import openb`)."""

    policy: str = "fgd"
    """GPU placement policy (`sim.drivers.gpu_policies.POLICY_NAMES`)."""
    placement: str = "driver"
    """"driver": classic DRA, the driver steers; "scheduler": device-aware scheduler plugin."""
    max_nodes: int | None = None
    max_pods: int | None = None
    time_scale: float = 1.0
    driver: str = DEFAULT_DRIVER
    name: str = "openb"

    def __post_init__(self) -> None:
        if self.policy not in POLICY_NAMES:
            raise ValueError(
                f"unknown policy {self.policy!r}; available: {', '.join(POLICY_NAMES)}"
            )
        if self.placement not in ("driver", "scheduler"):
            raise ValueError(f"placement must be 'driver' or 'scheduler', got {self.placement!r}")
        for label, value in (("max_nodes", self.max_nodes), ("max_pods", self.max_pods)):
            if value is not None and value < 1:
                raise ValueError(f"{label} must be at least 1, got {value}")
        if not (math.isfinite(self.time_scale) and self.time_scale > 0):
            raise ValueError(
                f"--time-scale: invalid value {self.time_scale}; "
                "time_scale must be positive and finite"
            )


def build_scenario(
    nodes: Sequence[TraceNode],
    pods: Sequence[TracePod],
    options: ImportOptions | None = None,
    *,
    source: str = "",
) -> dict[str, Any]:
    """Return scenario data that replays a trace through classic DRA with a `gpushare` driver.

    The FGD workload mix is taken from all the pods given (before `max_pods`
    cuts the list), so a reduced replay keeps the full trace's mix. The
    horizon is the last arrival plus the longest run duration, plus an hour.
    """
    options = options or ImportOptions()
    mix = workload_mix(pods)
    if options.max_nodes is not None:
        nodes = nodes[: options.max_nodes]
    if options.max_pods is not None:
        pods = pods[: options.max_pods]
    start = min(pod.arrival_s for pod in pods)
    end = max(
        (pod.arrival_s - start + (pod.duration_s or 0.0)) / options.time_scale for pod in pods
    )
    steering = "best" if options.placement == "driver" else "none"
    scheduler: dict[str, Any] = {"scoring_strategy": "MostAllocated"}
    if options.placement == "scheduler":
        scheduler["device_aware_policy"] = options.policy
    description = (
        f"Alibaba openb trace{f' ({source})' if source else ''}: {len(nodes)} nodes, "
        f"{len(pods)} pods, policy {options.policy} placed by the "
        f"{'driver (classic DRA)' if options.placement == 'driver' else 'device-aware scheduler'}"
    )
    return {
        "name": options.name,
        "description": description,
        "seed": 1,
        "horizon_s": math.ceil(end + 3600.0),
        "cluster": {"node_pools": node_pools(nodes, options.driver)},
        "drivers": [
            {
                "name": options.driver,
                "model": "gpushare",
                "model_settings": {
                    "policy": options.policy,
                    "steering": steering,
                    "workload_mix": mix_settings(mix),
                },
            }
        ],
        "resource_classes": [{"name": DEFAULT_CLASS, "driver_name": options.driver}],
        "control_plane": {"scheduler": scheduler},
        "workloads": workloads(pods, time_scale=options.time_scale),
    }


# --------------------------------------------------------------------------------------
# The trace workload source
# --------------------------------------------------------------------------------------


class TraceWorkloadSource(WorkloadSource):
    """Creates a workload's pods at listed times, each with its own run duration.

    Used for workloads with `{type: trace}` arrivals: pod `i` arrives at
    `at_s[i]` (in time order), runs for `run_durations_s[i]` seconds once
    started (None: until the end of the run) and carries its trace name in
    the annotation `sim.dra/trace-name`.
    """

    def __init__(self, world: World, spec: WorkloadSpec, template_names: dict[str, str]) -> None:
        super().__init__(world, spec, template_names)
        arrival = spec.arrival
        if arrival.type != "trace":
            raise ValueError(f"workload {spec.name}: TraceWorkloadSource needs trace arrivals")
        names = list(arrival.names) if arrival.names else [""] * len(arrival.at_s)
        self._plan = sorted(
            zip(arrival.at_s, arrival.run_durations_s, names, strict=True), key=lambda item: item[0]
        )

    def _run(self) -> Generator[simpy.Event, Any, None]:
        env = self.world.env
        spec = self.spec
        for at, duration, name in self._plan:
            if spec.count is not None and self.created >= spec.count:
                break
            time = spec.start_s + at
            if spec.until_s is not None and time > spec.until_s:
                break
            if time > env.now:
                yield env.timeout(time - float(env.now))
            pod = self.build_pod(self.created)
            annotations = dict(pod.metadata.annotations)
            annotations.pop(RUN_DURATION_ANNOTATION, None)
            if duration is not None:
                annotations[RUN_DURATION_ANNOTATION] = repr(float(duration))
            if name:
                annotations[TRACE_NAME_ANNOTATION] = name
            pod = pod.with_meta(annotations=annotations)
            self.world.current_actor = "workload"
            self.world.current_reason = f"arrival of workload {spec.name}"
            self.world.api.create(pod)
            self.created += 1
        self.finished = True
