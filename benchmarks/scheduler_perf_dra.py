"""Run the scheduler_perf DRA workloads in the simulator and print their figures.

The Kubernetes integration benchmark scheduler_perf has two classic-DRA test
cases with 2000 pods each: SchedulingWithResourceClaimTemplate (one claim per
pod) and SchedulingWithMultipleResourceClaims (four claims from two drivers),
each on 100 and on 200 nodes. This script runs the four workloads with
queueing hints on and off, from `scenarios/scheduler-perf-claim-template.yaml`
and `scenarios/scheduler-perf-multiple-claims.yaml`, and prints one row per run:

* scheduled: pods bound, out of all pods created (init and measured);
* attempts/pod: scheduling cycles per measured pod, mean;
* writes/pod: API writes made for the measured pods, mean, in total and per
  component. A write counts for the measured pods when it goes to their
  namespace (their claims, PodSchedulingContexts, bindings and pod status).
  The pods' own creates are not included, because the workload writes them
  to the API server directly instead of through a recorded client;
* pods/s: measured pods divided by the simulated time from the first measured
  pod's creation to the last measured pod's binding;
* init s: simulated time at which the last init pod was bound; the measured
  pods start later, at the measured workload's `start_s`;
* sim s: simulated time at which the last pod was bound;
* wall s, cpu s: wall-clock and CPU time of building and running the
  simulation (CPU time is the steadier figure on a busy machine);
* failed writes: failed write requests of the whole run, as
  `<HTTP status>:<count>` (409 is a conflict).

As in scheduler_perf, only the pods of the last workload (namespace `test`)
are measured. The init pods must all be bound before the measured pods start;
the script reports a run where they are not.

Usage, from the repository root:

    python benchmarks/scheduler_perf_dra.py                 # all 8 runs, one at a time
    python benchmarks/scheduler_perf_dra.py --jobs 4        # 4 runs at once
    python benchmarks/scheduler_perf_dra.py --workload claim-template --nodes 100 --hints on

Runs at once compete for CPU time, so `--jobs` above 1 inflates the wall
times it reports.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sim.metrics.recorder import API_REQUEST_COLUMNS
from sim.metrics.tables import pods_table
from sim.scenario import Scenario, load_scenario
from sim.simulation import Simulation, build

logger = logging.getLogger(__name__)

SCENARIOS_DIR = Path(__file__).resolve().parents[1] / "scenarios"
STEP_S = 1.0
"""Simulated time between two checks whether every pod is bound, seconds."""

_COMPONENT = API_REQUEST_COLUMNS.index("component")
_NAMESPACE = API_REQUEST_COLUMNS.index("namespace")
_WRITE = API_REQUEST_COLUMNS.index("write")
_CODE = API_REQUEST_COLUMNS.index("code")

COMPONENT_GROUPS = {
    "kube-scheduler": "scheduler",
    "resourceclaim-controller": "controller",
    "driver": "drivers",
    "kubelet": "kubelets",
}
"""Column name per recorder component, where `driver/<name>` and `kubelet/<node>` go by prefix."""


@dataclass(frozen=True)
class Workload:
    """One scheduler_perf DRA workload: a scenario file at one cluster size."""

    name: str
    scenario: Path
    nodes: int
    max_claims_per_node: int
    """Claims per node and driver (the test driver's maxClaimsPerNode)."""

    def overrides(self, hints: bool) -> list[str]:
        """Return the `--set` overrides that select this size and the queueing hints."""
        settings = [
            f"cluster.node_pools.0.count={self.nodes}",
            f"control_plane.queueing_hints={str(hints).lower()}",
        ]
        for driver in load_scenario(self.scenario).drivers:
            settings.append(
                f"drivers[{driver.name}].model_settings.max_claims_per_node="
                f"{self.max_claims_per_node}"
            )
        return settings


WORKLOADS = (
    Workload("claim-template", SCENARIOS_DIR / "scheduler-perf-claim-template.yaml", 100, 20),
    Workload("claim-template", SCENARIOS_DIR / "scheduler-perf-claim-template.yaml", 200, 10),
    Workload("multiple-claims", SCENARIOS_DIR / "scheduler-perf-multiple-claims.yaml", 100, 40),
    Workload("multiple-claims", SCENARIOS_DIR / "scheduler-perf-multiple-claims.yaml", 200, 20),
)
"""The four workloads (sizes and maxClaimsPerNode from scheduler_perf's performance-config)."""


@dataclass(frozen=True)
class Figures:
    """Figures of one run."""

    workload: str
    nodes: int
    hints: bool
    pods_created: int
    pods_scheduled: int
    measured_pods: int
    attempts_per_pod: float
    """Scheduling cycles per measured pod, mean."""
    writes_per_pod: float
    """API writes in the measured pods' namespace per measured pod (their creates excluded)."""
    writes_per_pod_by_component: dict[str, float] = field(default_factory=dict)
    throughput_pods_per_s: float = math.nan
    """Measured pods / (last measured binding - first measured creation), simulated."""
    measured_start_s: float = math.nan
    """Creation time of the first measured pod, simulated seconds."""
    init_done_s: float = math.nan
    """Binding time of the last init pod, simulated seconds (NaN when one was never bound)."""
    end_s: float = math.nan
    """Binding time of the last pod, or the horizon when some pod was never bound."""
    wall_time_s: float = math.nan
    cpu_time_s: float = math.nan
    write_errors: dict[int, int] = field(default_factory=dict)
    """Failed write requests of the whole run by HTTP status code (409 = conflict)."""

    @property
    def complete(self) -> bool:
        """Whether every created pod was bound."""
        return self.pods_created > 0 and self.pods_scheduled == self.pods_created

    @property
    def phases_separate(self) -> bool:
        """Whether every init pod was bound before the first measured pod was created."""
        return self.init_done_s < self.measured_start_s


def run_until_bound(simulation: Simulation, step_s: float = STEP_S) -> None:
    """Advance the simulation until every pod of every workload is bound, or to the horizon."""
    scenario = simulation.scenario
    expected = sum(workload.count or 0 for workload in scenario.workloads)
    now = float(simulation.world.env.now)
    while now < scenario.horizon_s:
        now = min(scenario.horizon_s, now + step_s)
        simulation.run(until_s=now)
        bound = sum(1 for pod in simulation.tracker.pods.values() if not math.isnan(pod.bound_s))
        if bound >= expected:
            return


def measure(
    simulation: Simulation,
    *,
    workload: str,
    nodes: int,
    wall_time_s: float = math.nan,
    cpu_time_s: float = math.nan,
) -> Figures:
    """Compute a finished run's figures, measuring the pods of the scenario's last workload."""
    scenario = simulation.scenario
    measured_namespace = scenario.workloads[-1].namespace
    pods = pods_table(simulation.tracker, simulation.world.recorder.cycles)
    measured = pods[pods["namespace"] == measured_namespace]
    others = pods[pods["namespace"] != measured_namespace]
    scheduled = int(pods["scheduled_s"].notna().sum())
    measured_count = len(measured)

    writes: dict[str, int] = {}
    errors: dict[int, int] = {}
    for request in simulation.world.recorder.api_requests:
        if not request[_WRITE]:
            continue
        code = int(request[_CODE])
        if code >= 400:
            errors[code] = errors.get(code, 0) + 1
        if request[_NAMESPACE] != measured_namespace:
            continue
        component = str(request[_COMPONENT])
        group = COMPONENT_GROUPS.get(component.split("/", 1)[0], component)
        writes[group] = writes.get(group, 0) + 1
    per_pod = {
        group: count / measured_count if measured_count else math.nan
        for group, count in sorted(writes.items())
    }

    measured_start = float(measured["created_s"].min()) if measured_count else math.nan
    measured_end = float(measured["scheduled_s"].max()) if measured_count else math.nan
    all_bound = scheduled == len(pods)
    throughput = math.nan
    if measured_count and measured["scheduled_s"].notna().all():
        throughput = measured_count / (measured_end - measured_start)
    init_done = math.nan
    if len(others) and others["scheduled_s"].notna().all():
        init_done = float(others["scheduled_s"].max())
    elif not len(others):
        init_done = -math.inf

    return Figures(
        workload=workload,
        nodes=nodes,
        hints=scenario.control_plane.queueing_hints,
        pods_created=len(pods),
        pods_scheduled=scheduled,
        measured_pods=measured_count,
        attempts_per_pod=float(measured["attempts"].mean()) if measured_count else math.nan,
        writes_per_pod=sum(writes.values()) / measured_count if measured_count else math.nan,
        writes_per_pod_by_component=per_pod,
        throughput_pods_per_s=throughput,
        measured_start_s=measured_start,
        init_done_s=init_done,
        end_s=float(pods["scheduled_s"].max()) if all_bound else scenario.horizon_s,
        wall_time_s=wall_time_s,
        cpu_time_s=cpu_time_s,
        write_errors=dict(sorted(errors.items())),
    )


def run_scenario(
    scenario: Scenario, *, workload: str, nodes: int, check_invariants: bool = False
) -> tuple[Simulation, Figures]:
    """Build and run a scenario until every pod is bound, and return it with its figures."""
    started = time.perf_counter()
    cpu_started = time.process_time()
    simulation = build(scenario, check_invariants=check_invariants)
    run_until_bound(simulation)
    figures = measure(
        simulation,
        workload=workload,
        nodes=nodes,
        wall_time_s=time.perf_counter() - started,
        cpu_time_s=time.process_time() - cpu_started,
    )
    return simulation, figures


def run_workload(
    workload: Workload,
    hints: bool,
    *,
    extra_overrides: Sequence[str] = (),
    check_invariants: bool = False,
) -> Figures:
    """Run one workload at its full size with queueing hints on or off."""
    overrides = [*workload.overrides(hints), *extra_overrides]
    scenario = load_scenario(workload.scenario, overrides=overrides)
    logger.info("running %s on %d nodes, hints %s", workload.name, workload.nodes, hints)
    _, figures = run_scenario(
        scenario, workload=workload.name, nodes=workload.nodes, check_invariants=check_invariants
    )
    logger.info(
        "finished %s on %d nodes, hints %s: %d/%d pods bound in %.1f s wall time",
        workload.name,
        workload.nodes,
        hints,
        figures.pods_scheduled,
        figures.pods_created,
        figures.wall_time_s,
    )
    return figures


TABLE_COLUMNS = (
    ("workload", "<16"),
    ("nodes", ">5"),
    ("hints", "<5"),
    ("scheduled", ">9"),
    ("attempts/pod", ">12"),
    ("writes/pod", ">10"),
    ("scheduler", ">9"),
    ("controller", ">10"),
    ("drivers", ">7"),
    ("kubelets", ">8"),
    ("pods/s", ">6"),
    ("init s", ">6"),
    ("sim s", ">7"),
    ("wall s", ">7"),
    ("cpu s", ">7"),
    ("failed writes", "<13"),
)


def format_table(rows: Sequence[Figures]) -> str:
    """Return the figures as a fixed-width text table with a header line."""
    lines = [" ".join(f"{name:{spec}}" for name, spec in TABLE_COLUMNS)]
    for row in rows:
        by_component = row.writes_per_pod_by_component
        cells = (
            row.workload,
            str(row.nodes),
            "on" if row.hints else "off",
            f"{row.pods_scheduled}/{row.pods_created}",
            f"{row.attempts_per_pod:.2f}",
            f"{row.writes_per_pod:.2f}",
            *(
                f"{by_component.get(group, 0.0):.2f}"
                for group in ("scheduler", "controller", "drivers", "kubelets")
            ),
            f"{row.throughput_pods_per_s:.1f}",
            f"{row.init_done_s:.1f}",
            f"{row.end_s:.1f}",
            f"{row.wall_time_s:.1f}",
            f"{row.cpu_time_s:.1f}",
            " ".join(f"{code}:{count}" for code, count in row.write_errors.items()) or "-",
        )
        lines.append(
            " ".join(f"{cell:{spec}}" for cell, (_, spec) in zip(cells, TABLE_COLUMNS, strict=True))
        )
    return "\n".join(lines)


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--workload",
        choices=sorted({workload.name for workload in WORKLOADS}),
        action="append",
        help="run only this workload (repeatable; default: both)",
    )
    parser.add_argument(
        "--nodes",
        type=int,
        choices=sorted({workload.nodes for workload in WORKLOADS}),
        action="append",
        help="run only this cluster size (repeatable; default: 100 and 200)",
    )
    parser.add_argument(
        "--hints",
        choices=("on", "off"),
        action="append",
        help="run only with queueing hints on or off (repeatable; default: both)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra scenario override for every run, as for `dra-sim run --set`",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs at once, in separate processes (default: 1)"
    )
    parser.add_argument(
        "--check-invariants",
        action="store_true",
        help="check the cluster invariants after every API write (slower)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected workloads, print the table, and return 1 if a run did not complete."""
    arguments = _parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    runs = [
        (workload, hints == "on")
        for workload in WORKLOADS
        if arguments.workload is None or workload.name in arguments.workload
        if arguments.nodes is None or workload.nodes in arguments.nodes
        for hints in ("on", "off")
        if arguments.hints is None or hints in arguments.hints
    ]
    if arguments.jobs > 1:
        with ProcessPoolExecutor(max_workers=arguments.jobs) as pool:
            futures = [
                pool.submit(
                    run_workload,
                    workload,
                    hints,
                    extra_overrides=arguments.overrides,
                    check_invariants=arguments.check_invariants,
                )
                for workload, hints in runs
            ]
            rows = [future.result() for future in futures]
    else:
        rows = [
            run_workload(
                workload,
                hints,
                extra_overrides=arguments.overrides,
                check_invariants=arguments.check_invariants,
            )
            for workload, hints in runs
        ]

    print(format_table(rows))
    failed = False
    for row in rows:
        label = f"{row.workload} on {row.nodes} nodes, hints {'on' if row.hints else 'off'}"
        if not row.complete:
            print(
                f"{label}: only {row.pods_scheduled} of {row.pods_created} pods were bound "
                f"by the horizon ({row.end_s:.0f} s); raise horizon_s with --set",
                file=sys.stderr,
            )
            failed = True
        elif not row.phases_separate:
            print(
                f"{label}: the last init pod was bound at {row.init_done_s:.1f} s, after the "
                f"measured pods started at {row.measured_start_s:.1f} s; raise the measured "
                "workload's start_s so that the phases do not overlap",
                file=sys.stderr,
            )
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
