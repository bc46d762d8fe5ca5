"""Paper mode: the GPU-sharing fragmentation experiment on the openb trace, without a control plane.

This reproduces the experiment of Weng et al., "Beware of Fragmentation"
(USENIX ATC '23), on the Alibaba openb trace: pods arrive one after another
and never leave; each is placed at once by a policy or dropped (never
retried); the GPU allocation ratio is read as the arrived GPU demand grows
past the cluster's GPU capacity.

The workload of one run (seed `s`):

1. the trace's pods in a random order (permutation drawn from the seed);
2. then further pods drawn at random, with replacement, from the trace,
   appended until the next draw would push the arrived GPU demand above
   `demand_ratio` times the cluster's GPU capacity (1.3 in the paper). When
   the trace alone exceeds the target, random pods are removed instead.

Placement is a direct loop over numpy node state (`GpuCluster`) using the
policy code of `sim.drivers.gpu_policies`, as a scheduler with only that
policy enabled would do: keep the nodes where the pod fits (GPUs, GPU model,
CPU, memory), score them, take one of the best, pick its GPUs by the policy.
Node scores are cached per request kind until the node changes, so a run of
about 10,800 placements on 1,213 nodes takes seconds.

Ties between the best nodes go, by default, to the first of them in a node
order drawn at random once per run (`tie_break="node-order"`), as in the
authors' simulator. `tie_break="random"` draws uniformly among them at each
placement, as upstream kube-scheduler does. The choice moves FGD by about
5 points, because with uniform draws FGD spreads pods over idle nodes and
the 8-GPU pods then find no free node (`docs/policies.md`).

Metrics, sampled each time the arrived demand passes a grid point
(`grid_step_percent`):

* GPU allocation ratio: allocated GPU milli / total GPU milli;
* fragmentation amount: expected fragmented GPU capacity for the workload
  mix (`sim.drivers.gpu_policies.fragmentation`), in GPUs, and its ratio to
  the idle GPU capacity;
* unallocated GPUs by cause (the columns of `FRAGMENT_CAUSES`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from sim.drivers.gpu_policies import (
    FRAGMENT_CAUSES,
    MILLI_PER_GPU,
    POLICY_NAMES,
    SATISFIED,
    FloatArray,
    GpuCluster,
    GpuPolicy,
    GpuRequest,
    IntArray,
    WorkloadMix,
    fragmentation,
    make_policy,
)
from sim.experiments.stats import t_interval
from sim.workload.openb import TraceNode, TracePod, gpu_cluster, workload_mix

logger = logging.getLogger(__name__)

PAPER_DEMAND_RATIO = 1.3
"""Arrived GPU demand at the end of a run, as a multiple of the cluster's GPU capacity."""

PAPER_ALLOCATION_PERCENT = {
    "fgd": 95.4,
    "best-fit": 93.1,
    "gpu-packing": 92.0,
    "gpu-clustering": 91.9,
    "dot-product": 90.9,
    "random": 87.5,
}
"""GPU allocation ratio (%) at 130 % arrived demand on the default openb trace, as published."""

TieBreak = Literal["node-order", "random"]
"""Rule for picking one of the nodes with the best score in paper mode.

`node-order`: the first of them in a node order drawn at random once per run
(the authors' simulator). `random`: a uniform draw at each placement
(upstream kube-scheduler's `selectHost`).
"""
TIE_BREAKS: tuple[str, ...] = get_args(TieBreak)


@dataclass(frozen=True)
class PaperSettings:
    """Settings of one paper-mode run.

    Raises:
        ValueError: on construction, for an unknown `tie_break`.
    """

    demand_ratio: float = PAPER_DEMAND_RATIO
    grid_step_percent: float = 1.0
    mix_coverage: float = 0.95
    """Share of the trace's pods that the FGD workload mix covers."""
    tie_break: TieBreak = "node-order"
    """Rule for picking among equally scored nodes (see `TieBreak`)."""

    def __post_init__(self) -> None:
        if self.tie_break not in TIE_BREAKS:
            raise ValueError(
                f"invalid tie_break {self.tie_break!r}; use one of: {', '.join(TIE_BREAKS)}"
            )

    def grid(self) -> FloatArray:
        """Arrived-demand grid points in percent, from 0 to the target."""
        end = self.demand_ratio * 100.0
        points: FloatArray = np.arange(0.0, end + 1e-9, self.grid_step_percent)
        return points


@dataclass
class PaperRun:
    """The outcome of one run: curves over the arrived-demand grid and final numbers."""

    policy: str
    seed: int
    arrived_percent: FloatArray
    """Grid points: arrived GPU demand as a percentage of the GPU capacity."""
    allocation_percent: FloatArray
    """Allocated GPU capacity as a percentage of the GPU capacity, at each grid point."""
    fragment_gpus: FloatArray
    """Expected fragmented GPU capacity, GPUs, at each grid point."""
    fragment_ratio_percent: FloatArray
    """Fragmented share of the idle GPU capacity, percent, at each grid point."""
    arrivals: int
    placed: int
    dropped: int
    final_arrived_percent: float
    final_allocation_percent: float
    unallocated_gpus: dict[str, float] = field(default_factory=dict)
    """Idle GPUs at the end, split by cause (`FRAGMENT_CAUSES`)."""
    used_nodes: int = 0
    """Nodes with at least part of one GPU allocated at the end."""
    wall_time_s: float = 0.0

    def curve(self) -> pd.DataFrame:
        """Return the curves as a table with one row per grid point."""
        return pd.DataFrame(
            {
                "policy": self.policy,
                "seed": self.seed,
                "arrived_percent": self.arrived_percent,
                "allocation_percent": self.allocation_percent,
                "fragment_gpus": self.fragment_gpus,
                "fragment_ratio_percent": self.fragment_ratio_percent,
            }
        )


def arrival_sequence(
    pods: Sequence[GpuRequest],
    capacity_milli: int,
    demand_ratio: float,
    rng: np.random.Generator,
) -> list[GpuRequest]:
    """Return the arriving requests of one run: shuffled trace pods, then random extra draws.

    Raises:
        ValueError: the trace is empty or requests no GPU at all.
    """
    if not pods:
        raise ValueError("the trace has no pods")
    target = demand_ratio * capacity_milli
    order = rng.permutation(len(pods))
    arrivals = [pods[int(i)] for i in order]
    demand = sum(request.total_gpu_milli for request in arrivals)
    if demand == 0:
        raise ValueError("the trace requests no GPU, so no demand ratio can be reached")
    while demand > target and arrivals:
        removed = arrivals.pop(int(rng.integers(len(arrivals))))
        demand -= removed.total_gpu_milli
    while True:
        extra = pods[int(rng.integers(len(pods)))]
        if demand + extra.total_gpu_milli > target:
            break
        arrivals.append(extra)
        demand += extra.total_gpu_milli
    return arrivals


class _ScoreCache:
    """Node scores per request kind, valid until the node's state changes."""

    def __init__(self, policy: GpuPolicy, cluster: GpuCluster, rng: np.random.Generator) -> None:
        self.policy = policy
        self.cluster = cluster
        self.rng = rng
        self._entries: dict[tuple[Any, ...], tuple[FloatArray, IntArray]] = {}

    def scores(self, request: GpuRequest, rows: IntArray) -> FloatArray:
        if not self.policy.node_local:
            return self.policy.score(self.cluster.view(rows), request, self.rng)
        entry = self._entries.get(request.score_key)
        if entry is None:
            size = len(self.cluster)
            entry = (np.zeros(size), np.full(size, -1, dtype=np.int64))
            self._entries[request.score_key] = entry
        scores, versions = entry
        stale = rows[versions[rows] != self.cluster.version[rows]]
        if len(stale):
            scores[stale] = self.policy.score(self.cluster.view(stale), request, self.rng)
            versions[stale] = self.cluster.version[stale]
        result: FloatArray = scores[rows]
        return result


def run_paper(
    nodes: Sequence[TraceNode],
    pods: Sequence[TracePod],
    policy: str,
    seed: int,
    settings: PaperSettings | None = None,
    *,
    mix: WorkloadMix | None = None,
) -> PaperRun:
    """Run paper mode once: place the seed's arrival sequence with one policy.

    Args:
        nodes: the node list (only nodes with GPUs can host GPU pods).
        pods: the trace's pods; their order does not matter.
        policy: a name from `POLICY_NAMES`.
        seed: seed of the arrival order, the extra draws, the node order and
            every random choice.
        settings: demand target, grid and tie-break rule.
        mix: FGD's workload mix; by default the most common kinds of `pods`.

    Raises:
        ValueError: the policy is unknown or the trace is empty.
    """
    settings = settings or PaperSettings()
    started = time.perf_counter()
    workload_rng, tie_rng, policy_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(3)
    )
    if mix is None:
        mix = workload_mix(pods, settings.mix_coverage)
    chosen = make_policy(policy, mix)
    cluster = gpu_cluster(nodes)
    capacity = cluster.gpu_capacity_milli
    if capacity == 0:
        raise ValueError("the node list has no GPUs")
    arrivals = arrival_sequence(
        [pod.request for pod in pods], capacity, settings.demand_ratio, workload_rng
    )

    cache = _ScoreCache(chosen, cluster, policy_rng)
    # Position of each node in the run's node order; the lowest position wins a tie.
    # Drawn only for node-order ties, so random-tie runs keep their earlier draws.
    node_rank: IntArray = (
        tie_rng.permutation(len(cluster))
        if settings.tie_break == "node-order"
        else np.arange(len(cluster))
    )
    causes = fragmentation(cluster.view(), mix)
    grid = settings.grid()
    allocation = np.zeros(len(grid))
    fragment = np.zeros(len(grid))
    ratio = np.zeros(len(grid))
    next_point = 0
    arrived = 0
    placed = 0

    def record_until(limit_percent: float) -> None:
        nonlocal next_point
        allocated = cluster.gpu_allocated_milli
        idle = capacity - allocated
        fragmented = float(causes.sum()) - float(causes[:, SATISFIED].sum())
        while next_point < len(grid) and grid[next_point] < limit_percent:
            allocation[next_point] = 100.0 * allocated / capacity
            fragment[next_point] = fragmented / MILLI_PER_GPU
            ratio[next_point] = 100.0 * fragmented / idle if idle else 0.0
            next_point += 1

    for request in arrivals:
        record_until(100.0 * (arrived + request.total_gpu_milli) / capacity)
        arrived += request.total_gpu_milli
        rows = np.flatnonzero(cluster.feasible(request))
        if len(rows) == 0:
            continue
        scores = cache.scores(request, rows)
        best = rows[scores == scores.max()]
        if len(best) == 1:
            row = int(best[0])
        elif settings.tie_break == "node-order":
            row = int(best[np.argmin(node_rank[best])])
        else:
            row = int(best[int(tie_rng.integers(len(best)))])
        gpus = chosen.select_gpus(cluster.view(np.array([row])), request, policy_rng)
        cluster.allocate(row, request, gpus)
        causes[row] = fragmentation(cluster.view(np.array([row])), mix)[0]
        placed += 1
    record_until(np.inf)

    unallocated = causes.sum(axis=0) / MILLI_PER_GPU
    run = PaperRun(
        policy=policy,
        seed=seed,
        arrived_percent=grid,
        allocation_percent=allocation,
        fragment_gpus=fragment,
        fragment_ratio_percent=ratio,
        arrivals=len(arrivals),
        placed=placed,
        dropped=len(arrivals) - placed,
        final_arrived_percent=100.0 * arrived / capacity,
        final_allocation_percent=100.0 * cluster.gpu_allocated_milli / capacity,
        unallocated_gpus={c: float(v) for c, v in zip(FRAGMENT_CAUSES, unallocated, strict=True)},
        used_nodes=int((cluster.gpu_left.sum(axis=1) < cluster.gpu_count * MILLI_PER_GPU).sum()),
        wall_time_s=time.perf_counter() - started,
    )
    logger.info(
        "paper mode %s seed %d: %d arrivals, %d dropped, allocation %.2f %% in %.1f s",
        policy,
        seed,
        run.arrivals,
        run.dropped,
        run.final_allocation_percent,
        run.wall_time_s,
    )
    return run


def run_study(
    nodes: Sequence[TraceNode],
    pods: Sequence[TracePod],
    policies: Sequence[str] = POLICY_NAMES,
    seeds: Sequence[int] = range(10),
    settings: PaperSettings | None = None,
    *,
    jobs: int = 1,
) -> list[PaperRun]:
    """Run every policy with every seed (in `jobs` processes with joblib when jobs != 1)."""
    settings = settings or PaperSettings()
    mix = workload_mix(pods, settings.mix_coverage)
    tasks = [(policy, seed) for policy in policies for seed in seeds]
    if jobs == 1:
        return [run_paper(nodes, pods, p, s, settings, mix=mix) for p, s in tasks]
    from joblib import Parallel, delayed

    runs: list[PaperRun] = Parallel(n_jobs=jobs)(
        delayed(run_paper)(nodes, pods, p, s, settings, mix=mix) for p, s in tasks
    )
    return runs


def curves(runs: Sequence[PaperRun]) -> pd.DataFrame:
    """Return the curves of many runs as one long table."""
    return pd.concat([run.curve() for run in runs], ignore_index=True)


def summarize(runs: Sequence[PaperRun], level: float = 0.95) -> pd.DataFrame:
    """Return the final GPU allocation per policy: mean, std, t interval, gap to the paper.

    Columns: policy, runs, mean, std, ci_low, ci_high (percent), paper
    (published value), gap (mean - paper, percentage points), wall_time_s
    (mean per run).
    """
    rows: list[dict[str, Any]] = []
    policies = list(dict.fromkeys(run.policy for run in runs))
    for policy in policies:
        members = [run for run in runs if run.policy == policy]
        interval = t_interval([run.final_allocation_percent for run in members], level)
        paper = PAPER_ALLOCATION_PERCENT.get(policy, float("nan"))
        rows.append(
            {
                "policy": policy,
                "runs": interval.n,
                "mean": interval.mean,
                "std": interval.std,
                "ci_low": interval.mean - interval.half_width,
                "ci_high": interval.mean + interval.half_width,
                "paper": paper,
                "gap": interval.mean - paper,
                "wall_time_s": float(np.mean([run.wall_time_s for run in members])),
            }
        )
    return pd.DataFrame(rows)
