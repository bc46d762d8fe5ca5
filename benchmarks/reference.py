"""Bare SimPy reference: the same arrivals and SimPy events per pod, without Kubernetes logic.

dra-sim's wall time depends on the machine. Dividing it by the wall time of
this program, run on the same machine just after the case, gives a figure
that carries across machines: how many times more expensive a dra-sim pod is
than the bare SimPy event loop doing the same number of steps.

The program replays a case's arrival process (the same workloads, arrival
times and run durations, drawn from the same named random streams as
`sim.workload.synthetic.WorkloadSource`) and gives each pod its own SimPy
process that yields `k` timeouts spread evenly over the pod's lifetime: its
run duration, or the rest of the simulated run when the pod never finishes.
`k` is chosen so that the total number of SimPy events equals the `--events`
count that the real run processed:

* the arrival process: 1 start event and 1 timeout per arrival;
* each pod process: 1 start event, `k` timeouts and 1 end event.

So `k = (events - 2 * workloads) / pods - 3`, spread as evenly as integers
allow. The event loop is the one `Simulation.run` uses: `env.step()` while
`env.peek()` is before the end.

Usage (normally started by `python -m benchmarks`):

    python -m benchmarks.reference CASE [--quick] --events N --sim-end-s T --output FILE
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import simpy

from benchmarks.cases import ALL_CASES, peak_rss_mb, write_json_atomic
from sim.cluster.world import RandomStreams
from sim.scenario import Scenario
from sim.workload.synthetic import arrival_times

Arrival = tuple[float, float]
"""(arrival time, lifetime) of one pod, simulated seconds."""


def arrivals(scenario: Scenario, sim_end_s: float) -> list[list[Arrival]]:
    """Return each workload's arrivals as dra-sim would create them in replication 0.

    A pod without a run duration lives until `sim_end_s`.
    """
    streams = RandomStreams(scenario.seed, 0)
    result: list[list[Arrival]] = []
    for spec in scenario.workloads:
        arrival_rng = streams.stream(f"workload/{spec.name}/arrivals")
        duration_rng = streams.stream(f"workload/{spec.name}/durations")
        trace_durations = getattr(spec.arrival, "run_durations_s", None)
        pods: list[Arrival] = []
        for index, at in enumerate(arrival_times(spec, arrival_rng)):
            if spec.count is not None and index >= spec.count:
                break
            if spec.until_s is not None and at > spec.until_s:
                break
            lifetime: float | None = None
            if trace_durations is not None:
                lifetime = trace_durations[index]
            elif spec.run_duration_s is not None:
                lifetime = spec.run_duration_s.sample(duration_rng)
            if lifetime is None:
                lifetime = max(0.0, sim_end_s - at)
            pods.append((at, lifetime))
        result.append(pods)
    return result


def steps_per_pod(events: int, workloads: int, pods: int) -> list[int]:
    """Return the timeouts of each pod so that the run processes `events` SimPy events in all."""
    if pods == 0:
        return []
    timeouts = max(0, events - 2 * workloads - 3 * pods)
    base, extra = divmod(timeouts, pods)
    return [base + 1 if index < extra else base for index in range(pods)]


def _pod(env: simpy.Environment, lifetime: float, steps: int) -> Generator[simpy.Event, Any, None]:
    delay = lifetime / steps if steps else 0.0
    for _ in range(steps):
        yield env.timeout(delay)


def _source(
    env: simpy.Environment, pods: list[Arrival], steps: list[int]
) -> Generator[simpy.Event, Any, None]:
    for (at, lifetime), count in zip(pods, steps, strict=True):
        yield env.timeout(max(0.0, at - float(env.now)))
        env.process(_pod(env, lifetime, count))


def run_reference(scenario: Scenario, events: int, sim_end_s: float) -> dict[str, Any]:
    """Run the reference for a scenario whose real run processed `events` events.

    Returns:
        pods, events (processed by the reference), wall_s and cpu_s of the
        event loop, and timeouts_per_pod (mean).
    """
    workloads = arrivals(scenario, sim_end_s)
    pods = sum(len(pods) for pods in workloads)
    steps = steps_per_pod(events, len(workloads), pods)

    env = simpy.Environment()
    offset = 0
    for pods_of_workload in workloads:
        count = len(pods_of_workload)
        env.process(_source(env, pods_of_workload, steps[offset : offset + count]))
        offset += count

    started = time.perf_counter()
    cpu_started = time.process_time()
    processed = 0
    while env.peek() < math.inf:
        env.step()
        processed += 1
    return {
        "pods": pods,
        "events": processed,
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu_started,
        "timeouts_per_pod": sum(steps) / pods if pods else 0.0,
    }


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.reference",
        description="Run the bare SimPy reference of one benchmark case.",
    )
    parser.add_argument("case", choices=sorted(ALL_CASES), help="case name")
    parser.add_argument("--quick", action="store_true", help="use the case's small variant")
    parser.add_argument(
        "--events", type=int, required=True, help="SimPy events the real run processed"
    )
    parser.add_argument(
        "--sim-end-s",
        type=float,
        required=True,
        help="simulated time the real run reached, seconds (lifetime of pods that never finish)",
    )
    parser.add_argument("--output", type=Path, required=True, help="JSON file for the result")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the reference of one case and write its result as JSON."""
    arguments = _parse_arguments(argv)
    make_scenario = ALL_CASES[arguments.case].scenario
    if make_scenario is None:
        print(
            f"case {arguments.case} runs no SimPy events, so it has no reference", file=sys.stderr
        )
        return 2
    result = run_reference(make_scenario(arguments.quick), arguments.events, arguments.sim_end_s)
    result["peak_rss_mb"] = peak_rss_mb()
    write_json_atomic(arguments.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
