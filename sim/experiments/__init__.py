"""Studies with many runs: seeded replications, confidence intervals and parameter sweeps.

A sweep runs the Cartesian product of some scenario parameters (design
points), each for N replications, on a local process pool or a Dask cluster,
and writes a sweep directory (layout in `sim.experiments.store`):

    from sim.experiments import run_sweep, smallest_meeting

    outcome = run_sweep(
        "scenarios/capacity-sweep.yaml",
        ["cluster.node_pools[gpu-node].count=2,3,4,5,6"],
        replications=10,
        jobs=4,
    )
    smallest_meeting(
        outcome.directory,
        "cluster.node_pools[gpu-node].count",
        "scheduling_latency_s_p95",
        "<=",
        30,
    )

Replication r of every design point uses the scenario seed and replication
index r, so all design points see the same random arrivals (common random
numbers). The statistics are defined in `sim.experiments.stats`, and the plots
in `sim.experiments.plots`.
"""

from sim.experiments.design import Parameter, SweepError, parse_parameter
from sim.experiments.plots import plot_sweep, report_sweep
from sim.experiments.runner import SweepOutcome, run_sweep
from sim.experiments.stats import (
    Interval,
    Target,
    parse_target,
    smallest_meeting,
    summarize_runs,
    t_interval,
)
from sim.experiments.store import WALL_CLOCK_COLUMNS, is_sweep_directory, read_runs

__all__ = [
    "WALL_CLOCK_COLUMNS",
    "Interval",
    "Parameter",
    "SweepError",
    "SweepOutcome",
    "Target",
    "is_sweep_directory",
    "parse_parameter",
    "parse_target",
    "plot_sweep",
    "read_runs",
    "report_sweep",
    "run_sweep",
    "smallest_meeting",
    "summarize_runs",
    "t_interval",
]
