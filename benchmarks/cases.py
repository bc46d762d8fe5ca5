"""Benchmark cases of dra-sim, and the child process that runs one case and measures it.

`python -m benchmarks` starts each case in a fresh interpreter with

    python -m benchmarks.cases CASE [--quick] --progress FILE --output FILE

so that the peak memory of one case is not mixed with another's. The child
builds the case, runs it, turns the recorder into the output tables (as
`sim.simulate` does) and writes one JSON object to `--output`. While it runs
it rewrites `--progress` with the simulated time and the pods created so far,
so that the parent can report how far a case got when it is stopped at its
wall-time limit.

Cases:

* `quickstart`: `scenarios/quickstart.yaml` (4 nodes, 100 pods);
* `scheduler-perf-1claim`: kube-scheduler's scheduler_perf workload
  SchedulingWithResourceClaimTemplate, 2000 pods with one template claim each
  on 100 nodes (`scenarios/scheduler-perf-claim-template.yaml`), run until
  every pod is bound, because its pods never finish;
* `openb-paper`: one seed of the openb paper mode (FGD policy, seed 0) on the
  default openb trace, which places pods in a numpy loop without SimPy;
* `synthetic-1k`, `synthetic-5k`, `synthetic-10k`: 1,000 / 5,000 / 10,000
  nodes with 10 pods per node (see `synthetic_scenario`).

The scaling series (`series-*`) are synthetic scenarios of 100 to 800 nodes
and 500 to 4000 pods.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.distributions import LogNormal
from sim.scenario import Scenario, apply_overrides, load_scenario, parse_scenario
from sim.simulation import Simulation, build

REPOSITORY = Path(__file__).resolve().parents[1]
SCENARIOS_DIR = REPOSITORY / "scenarios"
OPENB_TRACE_DIR = REPOSITORY.parent / "shared" / "corpus" / "openb" / "csv"
"""Default openb trace folder: `../shared/corpus/openb/csv` next to the checkout."""

OPENB_NODES_FILE = "openb_node_list_gpu_node.csv"
OPENB_PODS_FILE = "openb_pod_list_default.csv"
OPENB_POLICY = "fgd"
OPENB_SEED = 0

SYNTHETIC_DRIVER = "test-driver.cdi.k8s.io"
SYNTHETIC_CLASS = "local-device"
DEVICES_PER_NODE = 8
"""Claims that fit on one node in the synthetic cases (`node-local` model limit)."""
BUSY_SHARE = 0.5
"""Share of the devices that the synthetic arrival rate keeps busy in steady state."""
RUN_DURATION = LogNormal(median=600.0, sigma=0.5)
"""Run time of a synthetic pod once started, seconds (mean about 680 s)."""
SYNTHETIC_TAIL_MEDIANS = 20
"""Simulated time after the last synthetic arrival before the horizon, in median run times.

A run stops earlier as soon as every pod has finished; the margin covers the
longest run time of 100,000 log-normal draws with room to spare.
"""

PROGRESS_INTERVAL_S = 1.0
"""Minimum wall time between two rewrites of the progress file, seconds."""
BOUND_CHECK_S = 1.0
"""Simulated time between two checks whether every pod is bound, seconds."""

SCHEDULER_PERF_SCENARIO = SCENARIOS_DIR / "scheduler-perf-claim-template.yaml"
SCHEDULER_PERF_QUICK = (
    "cluster.node_pools.0.count=10",
    "workloads.0.count=100",
    "workloads.1.count=100",
    "horizon_s=120",
)
QUICKSTART_QUICK = ("workloads.0.count=20", "horizon_s=300")


class CaseSkipped(Exception):
    """A case cannot run on this machine (its input is missing); the message says why."""


@dataclass(frozen=True)
class Case:
    """One benchmark case: how to build it, in full and quick size."""

    name: str
    description: str
    scenario: Callable[[bool], Scenario] | None
    """Build the case's scenario (argument: quick); None for the openb paper mode."""
    until_bound: bool = False
    """Stop once every pod is bound, for workloads whose pods never finish."""


# --------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------


MAX_ARRIVAL_RATE = 20.0
"""Highest synthetic arrival rate, pods/s.

The modelled kube-scheduler binds about 29 pods per simulated second with
classic DRA and queueing hints off (10,000 nodes). Above that rate the
pending queue, and with it memory, grows for the whole run, so the large
clusters get longer run times instead of faster arrivals.
"""


def synthetic_arrival_rate(nodes: int, mean_run_s: float = RUN_DURATION.mean()) -> float:
    """Return the Poisson arrival rate, pods/s, that keeps `BUSY_SHARE` of the devices busy.

    By Little's law the devices in use are rate * mean run time, each pod
    holding one device; the time a pod waits before it starts is left out.
    The rate is capped at `MAX_ARRIVAL_RATE`; see `synthetic_run_duration`.
    """
    return min(MAX_ARRIVAL_RATE, BUSY_SHARE * DEVICES_PER_NODE * nodes / mean_run_s)


def synthetic_run_duration(nodes: int) -> LogNormal:
    """Return the run time of the synthetic pods on `nodes` nodes, seconds.

    This is `RUN_DURATION`, stretched where the arrival rate is capped, so
    that `BUSY_SHARE` of the devices stay busy on every cluster size.
    """
    uncapped = BUSY_SHARE * DEVICES_PER_NODE * nodes / RUN_DURATION.mean()
    stretch = max(1.0, uncapped / MAX_ARRIVAL_RATE)
    return LogNormal(median=RUN_DURATION.median * stretch, sigma=RUN_DURATION.sigma)


def synthetic_scenario(nodes: int, pods: int, name: str | None = None) -> Scenario:
    """Return a synthetic cluster of `nodes` nodes that serves `pods` pods, then drains.

    Every node has `DEVICES_PER_NODE` devices of a `node-local` driver (the
    Kubernetes test driver). Each pod asks for one device through a claim
    template (WaitForFirstConsumer), runs for a log-normal time
    (`synthetic_run_duration(nodes)`) and finishes, so the cluster turns over.
    Pods arrive as a Poisson process at `synthetic_arrival_rate(nodes)`, so
    about half the devices are busy once the cluster reaches steady state. The API clients
    of kube-scheduler and the resourceclaim controller get 5000 QPS and burst
    5000, as in scheduler_perf, so that client rate limits do not cap the
    scheduling rate of the large clusters.
    """
    rate = synthetic_arrival_rate(nodes)
    run_duration = synthetic_run_duration(nodes)
    data: dict[str, Any] = {
        "name": name or f"synthetic-{nodes}n-{pods}p",
        "description": f"{nodes} nodes with {DEVICES_PER_NODE} node-local devices, {pods} pods",
        "seed": 1,
        "horizon_s": pods / rate + SYNTHETIC_TAIL_MEDIANS * run_duration.median,
        "record_objects": "none",
        "cluster": {
            "node_pools": [
                {
                    "name": "node",
                    "count": nodes,
                    "cpu": "64",
                    "memory": "256Gi",
                    "devices": {SYNTHETIC_DRIVER: {"count": DEVICES_PER_NODE}},
                }
            ]
        },
        "drivers": [{"name": SYNTHETIC_DRIVER, "model": "node-local", "workers": 5}],
        "resource_classes": [{"name": SYNTHETIC_CLASS, "driver_name": SYNTHETIC_DRIVER}],
        "control_plane": {
            "scheduler": {"qps": 5000, "burst": 5000},
            "claim_controller": {"qps": 5000, "burst": 5000},
        },
        "workloads": [
            {
                "name": "batch",
                "arrival": {"type": "poisson", "rate_per_s": rate},
                "count": pods,
                "pod": {"cpu": "1", "memory": "2Gi"},
                "claims": [{"name": "device", "template": {"resource_class": SYNTHETIC_CLASS}}],
                "run_duration_s": run_duration.model_dump(),
            }
        ],
    }
    return parse_scenario(data, source=f"benchmark case {data['name']}")


def _synthetic(
    nodes: int, pods: int, quick_nodes: int, quick_pods: int
) -> Callable[[bool], Scenario]:
    def make(quick: bool) -> Scenario:
        if quick:
            return synthetic_scenario(quick_nodes, quick_pods)
        return synthetic_scenario(nodes, pods)

    return make


def _quickstart(quick: bool) -> Scenario:
    overrides = QUICKSTART_QUICK if quick else ()
    return load_scenario(SCENARIOS_DIR / "quickstart.yaml", overrides=overrides)


SCHEDULER_PERF_DATA: dict[str, Any] = {
    "name": "scheduler-perf-claim-template",
    "seed": 1,
    "horizon_s": 3600,
    "cluster": {
        "node_pools": [
            {"name": "scheduler-perf-dra", "count": 100, "cpu": "4", "memory": "32Gi", "pods": 110}
        ]
    },
    "drivers": [
        {
            "name": "test-driver.cdi.k8s.io",
            "model": "node-local",
            "workers": 5,
            "model_settings": {
                "node_name_prefix": "scheduler-perf-dra-",
                "max_claims_per_node": 20,
            },
        }
    ],
    "resource_classes": [{"name": "test-class", "driver_name": "test-driver.cdi.k8s.io"}],
    "control_plane": {
        "kubernetes_version": "1.29",
        "queueing_hints": True,
        "request_latency_s": 0.004,
        "scheduler": {"qps": 5000, "burst": 5000},
        "claim_controller": {"workers": 5, "qps": 5000, "burst": 5000},
    },
    "workloads": [
        {
            "name": phase,
            "namespace": phase,
            "start_s": start_s,
            "arrival": {"type": "constant", "interval_s": 0.000133},
            "count": 1000,
            "pod": {"cpu": "100m", "memory": "200Mi"},
            "claims": [{"name": "resource", "template": {"resource_class": "test-class"}}],
        }
        for phase, start_s in (("init", 0), ("test", 60))
    ],
}
"""The scheduler_perf one-claim workload, used when its scenario file is missing.

2000 pods (1000 `init`, then 1000 `test` from t=60 s) with one template claim
each, on 100 nodes of the test driver with 20 claims per node, 5000 QPS
clients and one pod created every 0.133 ms (30 creators, 4 ms per request).
"""


def _scheduler_perf(quick: bool) -> Scenario:
    overrides = SCHEDULER_PERF_QUICK if quick else ()
    if SCHEDULER_PERF_SCENARIO.is_file():
        return load_scenario(SCHEDULER_PERF_SCENARIO, overrides=overrides)
    data = apply_overrides(SCHEDULER_PERF_DATA, overrides, source="scheduler_perf case")
    return parse_scenario(data, source="scheduler_perf case")


CASES: dict[str, Case] = {
    case.name: case
    for case in (
        Case("quickstart", "scenarios/quickstart.yaml: 4 nodes, 100 pods", _quickstart),
        Case(
            "scheduler-perf-1claim",
            "scheduler_perf one claim per pod: 2000 pods on 100 nodes, until all are bound",
            _scheduler_perf,
            until_bound=True,
        ),
        Case("openb-paper", "openb paper mode, FGD policy, one seed", None),
        Case("synthetic-1k", "1,000 nodes, 10,000 pods", _synthetic(1000, 10_000, 20, 200)),
        Case("synthetic-5k", "5,000 nodes, 50,000 pods", _synthetic(5000, 50_000, 50, 500)),
        Case("synthetic-10k", "10,000 nodes, 100,000 pods", _synthetic(10_000, 100_000, 100, 1000)),
    )
}
"""The default cases, in the order `python -m benchmarks` runs them."""

SERIES_NODES = 100
SERIES_PODS = (500, 1000, 2000, 4000)
"""Pods of the fixed-nodes series (on `SERIES_NODES` nodes)."""
SERIES_FIXED_PODS = 1000
SERIES_NODE_COUNTS = (100, 200, 400, 800)
"""Nodes of the fixed-pods series (with `SERIES_FIXED_PODS` pods)."""


def _series_cases() -> dict[str, Case]:
    sizes = [(SERIES_NODES, pods) for pods in SERIES_PODS]
    sizes += [(nodes, SERIES_FIXED_PODS) for nodes in SERIES_NODE_COUNTS]
    cases: dict[str, Case] = {}
    for nodes, pods in dict.fromkeys(sizes):
        name = f"series-{nodes}n-{pods}p"
        cases[name] = Case(
            name,
            f"scaling series: {nodes} nodes, {pods} pods",
            _synthetic(nodes, pods, max(2, nodes // 10), max(20, pods // 10)),
        )
    return cases


SERIES: dict[str, Case] = _series_cases()
"""The scaling series: fixed nodes with growing pods, then fixed pods with growing nodes."""

ALL_CASES: dict[str, Case] = {**CASES, **SERIES}


# --------------------------------------------------------------------------------------
# The child process
# --------------------------------------------------------------------------------------


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` through a temporary file and a rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


class ProgressFile:
    """Rewrites the progress file of a running case, at most once per `PROGRESS_INTERVAL_S`."""

    def __init__(self, path: Path | None, started: float) -> None:
        self.path = path
        self.started = started
        self._last_write = -math.inf

    def due(self) -> bool:
        """Return whether the next `write` without `force` would write the file."""
        return (
            self.path is not None and time.perf_counter() - self._last_write >= PROGRESS_INTERVAL_S
        )

    def write(self, phase: str, *, force: bool = False, **fields: Any) -> None:
        """Record the phase and `fields` (simulated time, pods created, ...)."""
        if self.path is None or not (force or self.due()):
            return
        now = time.perf_counter()
        self._last_write = now
        write_json_atomic(self.path, {"phase": phase, "wall_s": now - self.started, **fields})


def pods_created(simulation: Simulation) -> int:
    """Return the pods the workload sources have created so far."""
    return sum(source.created for source in simulation.sources)


def pods_expected(scenario: Scenario) -> int | None:
    """Return the pods the scenario's workloads will create, or None when a count is open."""
    counts = [workload.count for workload in scenario.workloads]
    if any(count is None for count in counts):
        return None
    return sum(count for count in counts if count is not None)


def pods_bound(simulation: Simulation) -> int:
    """Return the pods that have been bound to a node so far."""
    return sum(1 for pod in simulation.tracker.pods.values() if not math.isnan(pod.bound_s))


def pods_finished(simulation: Simulation) -> int:
    """Return the pods that have finished running so far."""
    return sum(1 for pod in simulation.tracker.pods.values() if not math.isnan(pod.finished_s))


def _run_until_bound(
    simulation: Simulation, expected: int, progress: Callable[[float], None]
) -> None:
    horizon = simulation.scenario.horizon_s
    now = float(simulation.world.env.now)
    while now < horizon:
        now = min(horizon, now + BOUND_CHECK_S)
        simulation.run(until_s=now)
        progress(now)
        if pods_bound(simulation) >= expected:
            return


def run_scenario_case(case: Case, quick: bool, progress_file: ProgressFile) -> dict[str, Any]:
    """Build, run and tabulate one scenario case; return its measurements.

    The result has the phase wall times (`build_s`, `run_s`, `tables_s`),
    `events` (SimPy events processed), `pods` (pods created), `pods_bound`,
    `pods_finished` and `sim_time_s` (simulated seconds reached).
    """
    from sim.metrics.summary import summarize
    from sim.metrics.tables import build_tables

    assert case.scenario is not None
    scenario = case.scenario(quick)
    expected = pods_expected(scenario)
    progress_file.write("build", force=True, pods=0, pods_expected=expected, sim_time_s=0.0)

    started = time.perf_counter()
    cpu_started = time.process_time()
    simulation = build(scenario)
    built = time.perf_counter()

    def progress(sim_time_s: float) -> None:
        # Counting bound and finished pods walks every pod, so only when the file is due.
        if not progress_file.due():
            return
        progress_file.write(
            "run",
            pods=pods_created(simulation),
            pods_expected=expected,
            pods_bound=pods_bound(simulation),
            pods_finished=pods_finished(simulation),
            sim_time_s=sim_time_s,
        )

    if case.until_bound and expected is not None:
        _run_until_bound(simulation, expected, progress)
    else:
        simulation.run(progress=progress)
    ran = time.perf_counter()
    progress_file.write(
        "tables",
        force=True,
        pods=pods_created(simulation),
        pods_expected=expected,
        sim_time_s=simulation.end_time_s,
    )

    tables = build_tables(simulation.world.recorder, simulation.tracker, simulation.end_time_s)
    summary = summarize(
        tables,
        wall_time_s=simulation.wall_time_s,
        sim_time_s=simulation.end_time_s,
        events_processed=simulation.events_processed,
    )
    finished = time.perf_counter()

    pods = pods_created(simulation)
    return {
        "scenario": scenario.name,
        "nodes": scenario.node_count(),
        "pods": pods,
        "pods_expected": expected,
        "pods_bound": pods_bound(simulation),
        "pods_finished": pods_finished(simulation),
        "events": simulation.events_processed,
        "sim_time_s": simulation.end_time_s,
        "build_s": built - started,
        "run_s": ran - built,
        "tables_s": finished - ran,
        "wall_s": finished - started,
        "cpu_s": time.process_time() - cpu_started,
        "scheduling_latency_s_p50": summary.get("scheduling_latency_s_p50"),
        "scheduling_latency_s_p95": summary.get("scheduling_latency_s_p95"),
        "api_requests": len(simulation.world.recorder.api_requests),
    }


def run_openb_case(quick: bool, trace_dir: Path, progress_file: ProgressFile) -> dict[str, Any]:
    """Run one seed of the openb paper mode; return its measurements.

    Quick mode keeps every tenth node, so the arrivals, sized to 130 % of
    the GPU capacity, shrink with it.

    Raises:
        CaseSkipped: the trace files are not in `trace_dir`.
    """
    from sim.experiments.openb_paper import run_paper
    from sim.workload.openb import read_nodes, read_pods

    nodes_file = trace_dir / OPENB_NODES_FILE
    pods_file = trace_dir / OPENB_PODS_FILE
    missing = [str(path) for path in (nodes_file, pods_file) if not path.is_file()]
    if missing:
        raise CaseSkipped(
            f"openb trace not found ({', '.join(missing)}); download cluster-trace-gpu-v2023/csv "
            "from GitHub alibaba/clusterdata and pass its folder with --openb-trace"
        )
    progress_file.write("build", force=True, pods=0, sim_time_s=None)
    started = time.perf_counter()
    cpu_started = time.process_time()
    nodes = read_nodes(nodes_file)
    pods = read_pods(pods_file)
    if quick:
        nodes = nodes[::10]
    loaded = time.perf_counter()
    run = run_paper(nodes, pods, OPENB_POLICY, OPENB_SEED)
    finished = time.perf_counter()
    return {
        "scenario": f"openb paper mode, policy {OPENB_POLICY}, seed {OPENB_SEED}",
        "nodes": len(nodes),
        "pods": run.arrivals,
        "pods_expected": run.arrivals,
        "pods_bound": run.placed,
        "pods_finished": None,
        "events": None,
        "sim_time_s": None,
        "build_s": loaded - started,
        "run_s": finished - loaded,
        "tables_s": 0.0,
        "wall_s": finished - started,
        "cpu_s": time.process_time() - cpu_started,
        "gpu_allocation_percent": run.final_allocation_percent,
    }


def peak_rss_mb() -> float:
    """Return this process's peak resident set size, MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _parse_child_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cases",
        description="Run one benchmark case in this process and write its measurements as JSON.",
    )
    parser.add_argument("case", choices=sorted(ALL_CASES), help="case name")
    parser.add_argument("--quick", action="store_true", help="run the case's small variant")
    parser.add_argument("--output", type=Path, required=True, help="JSON file for the result")
    parser.add_argument("--progress", type=Path, help="JSON file rewritten with the progress")
    parser.add_argument(
        "--openb-trace",
        type=Path,
        default=OPENB_TRACE_DIR,
        help=f"folder with {OPENB_NODES_FILE} and {OPENB_PODS_FILE}",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one case and write its result; exit code 0, or 3 when the case was skipped."""
    arguments = _parse_child_arguments(argv)
    case = ALL_CASES[arguments.case]
    progress_file = ProgressFile(arguments.progress, time.perf_counter())
    try:
        if case.scenario is None:
            result = run_openb_case(arguments.quick, arguments.openb_trace, progress_file)
        else:
            result = run_scenario_case(case, arguments.quick, progress_file)
    except CaseSkipped as skipped:
        write_json_atomic(arguments.output, {"status": "skipped", "message": str(skipped)})
        return 3
    result["status"] = "ok"
    result["peak_rss_mb"] = peak_rss_mb()
    write_json_atomic(arguments.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
