"""GPU placement policies for GPU-sharing clusters, and the fragmentation measure.

A GPU-sharing cluster hands out GPUs in thousandths ("milli"): a pod asks
either for `n` whole GPUs (1000 milli each) or for a fraction of one GPU
(`gpu_milli` < 1000). Where such pods go decides how much GPU capacity ends up
stranded in slivers that no pending pod can use. This module holds the six
policies compared in Weng et al., "Beware of Fragmentation: Scheduling
GPU-Sharing Workloads with Fragmentation Gradient Descent" (USENIX ATC '23),
written against numpy node state so that the same code serves three callers:

* the fast placement loop of `sim.experiments.openb_paper` (no control plane);
* the device-aware scheduler plugin (`sim.cluster.scheduler.plugins.deviceaware`),
  which scores nodes with the driver's GPU inventory;
* the `gpushare` driver model (`sim.drivers.gpushare`), which under classic DRA
  can only veto nodes (UnsuitableNodes) and pick GPUs on the selected node.

Every policy returns node scores in [0, 100], already truncated to integers
as kube-scheduler plugins return `int64` scores, and picks the GPUs on a node.
`docs/policies.md` gives each formula. The normalisation constants
(128 cores, 8 GPUs) are the largest node of the Alibaba openb trace, as in the
paper's simulator.

Module contents: `GpuRequest` (what a pod asks for), `GpuCluster` (mutable
per-node GPU, CPU and memory state), `NodeRows` (a read-only slice of it that
policies score), `WorkloadMix` and `fragmentation` (the measure), and the
policies with `make_policy` to build one by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

MILLI_PER_GPU = 1000
"""Thousandths of a GPU in one whole GPU."""
MAX_SPEC_CPU_MILLI = 128_000
"""CPU of the largest openb node, millicores: scales the CPU terms of DotProduct and BestFit."""
MAX_SPEC_GPU_MILLI = 8 * MILLI_PER_GPU
"""GPUs of the largest openb node, in milli: scales the GPU terms of the scores."""
MAX_NODE_SCORE = 100
DEFAULT_CPU_REQUEST_MILLI = 100
"""CPU that kube-scheduler assumes for a pod that requests none (`GetNonzeroRequests`)."""
FGD_SCALE_MILLI = 1000.0
"""FGD divides the fragmentation change (milli) by this before the sigmoid."""

FRAGMENT_CAUSES = (
    "lack_both",
    "lack_gpu",
    "satisfied",
    "lack_cpu",
    "cpu_only",
    "cpu_only_lack_cpu",
    "no_access",
)
"""How idle GPU capacity on a node relates to one kind of pod (columns of `fragmentation`).

`satisfied` is the part that the pod kind can use; everything else is a
fragment for it: the node lacks CPU and GPU (`lack_both`), GPU (`lack_gpu`,
including the idle slivers below the pod's per-GPU request on a node that
fits it), CPU (`lack_cpu`), the pod needs no GPU (`cpu_only`,
`cpu_only_lack_cpu`), or the node's GPU model is not allowed (`no_access`).
"""
SATISFIED = FRAGMENT_CAUSES.index("satisfied")


# --------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuRequest:
    """The resources one pod requests: CPU, memory and GPUs (whole or a share of one).

    Raises:
        ValueError: on construction, when the numbers do not describe a valid request.
    """

    gpu_count: int = 0
    """GPUs: 0 for a CPU-only pod, 1 for a shared or single GPU, more for whole GPUs."""
    gpu_milli: int = 0
    """Thousandths of each GPU: 1000 for whole GPUs, 1-999 for a share of one GPU."""
    cpu_milli: int = 0
    memory_mib: int = 0
    models: frozenset[str] = frozenset()
    """GPU models the pod accepts; empty means any model."""

    def __post_init__(self) -> None:
        if self.gpu_count < 0 or self.cpu_milli < 0 or self.memory_mib < 0:
            raise ValueError(f"negative amount in {self}")
        if self.gpu_count == 0 and self.gpu_milli != 0:
            raise ValueError(f"gpu_milli must be 0 without GPUs, got {self.gpu_milli}")
        if self.gpu_count > 0 and not 0 < self.gpu_milli <= MILLI_PER_GPU:
            raise ValueError(f"gpu_milli must be in 1..1000, got {self.gpu_milli}")
        if self.gpu_count > 1 and self.gpu_milli != MILLI_PER_GPU:
            raise ValueError(
                f"a share of a GPU (gpu_milli {self.gpu_milli}) needs gpu_count 1, "
                f"got {self.gpu_count}"
            )

    @property
    def shared(self) -> bool:
        """Whether the pod asks for a share of one GPU (less than 1000 milli)."""
        return self.gpu_count == 1 and self.gpu_milli < MILLI_PER_GPU

    @property
    def total_gpu_milli(self) -> int:
        """GPU capacity the pod takes, milli."""
        return self.gpu_count * self.gpu_milli

    @property
    def gpu_devices(self) -> float:
        """GPUs the pod takes, a share of one GPU as its fraction (250 milli: 0.25)."""
        return self.total_gpu_milli / MILLI_PER_GPU

    @property
    def scoring_cpu_milli(self) -> int:
        """CPU request with kube-scheduler's non-zero default, millicores."""
        return self.cpu_milli or DEFAULT_CPU_REQUEST_MILLI

    @property
    def affinity(self) -> int:
        """GPU affinity class for GpuClustering: -1 no GPU, 0 shared GPU, n for n whole GPUs."""
        if self.gpu_count == 0:
            return -1
        return 0 if self.shared else self.gpu_count

    @property
    def score_key(self) -> tuple[int, int, int, frozenset[str]]:
        """The fields that node scores depend on (memory only decides feasibility)."""
        return (self.gpu_count, self.gpu_milli, self.scoring_cpu_milli, self.models)


# --------------------------------------------------------------------------------------
# Cluster state
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeRows:
    """Read-only GPU and CPU state of some nodes, as policies score it.

    `gpu_left` has one row per node and one column per GPU slot; slots beyond
    a node's `gpu_count` hold 0, which no request can use.
    """

    gpu_left: IntArray
    """Free thousandths per GPU, shape (nodes, slots)."""
    gpu_count: IntArray
    model: IntArray
    """Index of each node's GPU model in `model_names`."""
    model_names: tuple[str, ...]
    affinity: IntArray
    """Pods per GpuClustering affinity class on each node, shape (nodes, classes)."""
    cpu_left: IntArray | None = None
    """Free CPU per node, millicores; None when the caller does not know it."""

    def __len__(self) -> int:
        return int(self.gpu_left.shape[0])

    def take(self, index: int | IntArray) -> NodeRows:
        """Return the state of a subset of these rows."""
        rows = np.atleast_1d(np.asarray(index, dtype=np.int64))
        return NodeRows(
            gpu_left=self.gpu_left[rows],
            gpu_count=self.gpu_count[rows],
            model=self.model[rows],
            model_names=self.model_names,
            affinity=self.affinity[rows],
            cpu_left=None if self.cpu_left is None else self.cpu_left[rows],
        )


def model_access(model_names: Sequence[str], models: frozenset[str]) -> BoolArray:
    """Return which model indexes a request accepting `models` may use (empty = any model).

    The empty model name stands for nodes without GPUs; a request that names
    models never accepts them.
    """
    if not models:
        return np.ones(len(model_names), dtype=bool)
    return np.array([name in models for name in model_names], dtype=bool)


def gpu_fits(rows: NodeRows, request: GpuRequest) -> BoolArray:
    """Return which nodes have the request's GPUs free and an accepted model (CPU not checked)."""
    if request.gpu_count == 0:
        return np.ones(len(rows), dtype=bool)
    usable = (rows.gpu_left >= request.gpu_milli).sum(axis=1) >= request.gpu_count
    access = model_access(rows.model_names, request.models)
    result: BoolArray = usable & access[rows.model]
    return result


class GpuCluster:
    """Mutable per-node state: free GPU milli per GPU, CPU, memory, pods per affinity class.

    Nodes are rows, in the order given. `version` counts the changes of each
    row, so that callers can cache node scores until the node changes.
    """

    def __init__(
        self,
        names: Sequence[str],
        gpu_counts: Sequence[int],
        models: Sequence[str],
        *,
        cpu_milli: Sequence[int] | None = None,
        memory_mib: Sequence[int] | None = None,
        max_gpus: int | None = None,
    ) -> None:
        """Create the cluster with every GPU free.

        Args:
            names: node names.
            gpu_counts: GPUs per node.
            models: GPU model per node ("" for a node without GPUs).
            cpu_milli: allocatable CPU per node; None when CPU is not tracked
                (a DRA driver does not see the CPU use of a node).
            memory_mib: allocatable memory per node; None when not tracked.
            max_gpus: GPU slots per row (default: the largest count).
        """
        count = len(names)
        if len(gpu_counts) != count or len(models) != count:
            raise ValueError("names, gpu_counts and models must have the same length")
        self.names = list(names)
        self.row_of = {name: row for row, name in enumerate(self.names)}
        self.gpu_count = np.asarray(gpu_counts, dtype=np.int64)
        if (self.gpu_count < 0).any():
            raise ValueError("GPU counts must not be negative")
        slots = max_gpus if max_gpus is not None else int(self.gpu_count.max(initial=0))
        slots = max(slots, 1)
        self.gpu_left = np.zeros((count, slots), dtype=np.int64)
        for row, gpus in enumerate(self.gpu_count):
            self.gpu_left[row, : int(gpus)] = MILLI_PER_GPU
        names_of_models = sorted({*models, ""})
        self.model_names: tuple[str, ...] = tuple(names_of_models)
        index = {name: i for i, name in enumerate(self.model_names)}
        self.model = np.array([index[m] for m in models], dtype=np.int64)
        self.track_cpu = cpu_milli is not None
        self.cpu_capacity = np.asarray(
            cpu_milli if cpu_milli is not None else np.zeros(count), dtype=np.int64
        )
        self.cpu_left = self.cpu_capacity.copy()
        self.track_memory = memory_mib is not None
        self.memory_capacity = np.asarray(
            memory_mib if memory_mib is not None else np.zeros(count), dtype=np.int64
        )
        self.memory_left = self.memory_capacity.copy()
        self.affinity = np.zeros((count, slots + 1), dtype=np.int64)
        self.version = np.zeros(count, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def gpu_capacity_milli(self) -> int:
        """GPU capacity of the whole cluster, milli."""
        return int(self.gpu_count.sum()) * MILLI_PER_GPU

    @property
    def gpu_allocated_milli(self) -> int:
        """Allocated GPU capacity of the whole cluster, milli."""
        return self.gpu_capacity_milli - int(self.gpu_left.sum())

    def view(self, rows: IntArray | None = None, *, cpu_left: IntArray | None = None) -> NodeRows:
        """Return the state of some rows (all by default) for scoring.

        Args:
            rows: row indexes; None for all rows.
            cpu_left: free CPU of these rows from another source (the
                scheduler's node table); by default the tracked CPU, or None
                when CPU is not tracked.
        """
        select = slice(None) if rows is None else rows
        if cpu_left is None and self.track_cpu:
            cpu_left = self.cpu_left[select]
        return NodeRows(
            gpu_left=self.gpu_left[select],
            gpu_count=self.gpu_count[select],
            model=self.model[select],
            model_names=self.model_names,
            affinity=self.affinity[select],
            cpu_left=cpu_left,
        )

    def feasible(self, request: GpuRequest) -> BoolArray:
        """Return which nodes can host the request: GPUs, model, tracked CPU and memory."""
        mask = gpu_fits(self.view(), request)
        if self.track_cpu:
            mask &= self.cpu_left >= request.scoring_cpu_milli
        if self.track_memory:
            mask &= self.memory_left >= request.memory_mib
        return mask

    def allocate(self, row: int, request: GpuRequest, gpus: Sequence[int]) -> None:
        """Take the request's resources on a node, from the given GPU slots.

        Raises:
            ValueError: the GPUs are not free enough, or their number is wrong.
        """
        self._check_gpus(row, request, gpus)
        for gpu in gpus:
            if self.gpu_left[row, gpu] < request.gpu_milli:
                raise ValueError(
                    f"node {self.names[row]} GPU {gpu} has {self.gpu_left[row, gpu]} milli "
                    f"free, the request needs {request.gpu_milli}"
                )
        for gpu in gpus:
            self.gpu_left[row, gpu] -= request.gpu_milli
        self.cpu_left[row] -= request.scoring_cpu_milli if self.track_cpu else 0
        self.memory_left[row] -= request.memory_mib if self.track_memory else 0
        if request.affinity >= 0:
            self.affinity[row, request.affinity] += 1
        self.version[row] += 1

    def release(self, row: int, request: GpuRequest, gpus: Sequence[int]) -> None:
        """Give back what `allocate` took.

        Raises:
            ValueError: a GPU would end up with more than 1000 milli free.
        """
        self._check_gpus(row, request, gpus)
        for gpu in gpus:
            if self.gpu_left[row, gpu] + request.gpu_milli > MILLI_PER_GPU:
                raise ValueError(
                    f"node {self.names[row]} GPU {gpu} would have more than "
                    f"{MILLI_PER_GPU} milli free"
                )
        for gpu in gpus:
            self.gpu_left[row, gpu] += request.gpu_milli
        self.cpu_left[row] += request.scoring_cpu_milli if self.track_cpu else 0
        self.memory_left[row] += request.memory_mib if self.track_memory else 0
        if request.affinity >= 0:
            self.affinity[row, request.affinity] -= 1
        self.version[row] += 1

    def _check_gpus(self, row: int, request: GpuRequest, gpus: Sequence[int]) -> None:
        if len(gpus) != request.gpu_count or len(set(gpus)) != len(gpus):
            raise ValueError(f"request {request} needs {request.gpu_count} distinct GPUs: {gpus}")
        limit = int(self.gpu_count[row])
        for gpu in gpus:
            if not 0 <= gpu < limit:
                raise ValueError(f"node {self.names[row]} has no GPU {gpu} (it has {limit})")


# --------------------------------------------------------------------------------------
# Workload mix and fragmentation
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MixEntry:
    """One kind of pod in a workload mix, with its share of all pods."""

    weight: float
    gpu_count: int = 0
    gpu_milli: int = 0
    cpu_milli: int = 0
    models: frozenset[str] = frozenset()


@dataclass
class WorkloadMix:
    """The kinds of pods expected to arrive and their shares (weights sum to 1).

    FGD measures a node's fragmentation against this mix: the expected amount
    of its idle GPU capacity that the next arriving pod could not use.
    """

    entries: tuple[MixEntry, ...]
    _access: dict[tuple[str, ...], BoolArray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.entries:
            raise ValueError("a workload mix needs at least one entry")
        total = sum(entry.weight for entry in self.entries)
        if total <= 0 or any(entry.weight < 0 for entry in self.entries):
            raise ValueError("workload mix weights must be non-negative with a positive sum")
        self.entries = tuple(
            MixEntry(e.weight / total, e.gpu_count, e.gpu_milli, e.cpu_milli, e.models)
            for e in self.entries
        )
        self.weight = np.array([e.weight for e in self.entries], dtype=np.float64)
        self.milli = np.array([e.gpu_milli for e in self.entries], dtype=np.int64)
        self.count = np.array([e.gpu_count for e in self.entries], dtype=np.int64)
        self.cpu = np.array(
            [e.cpu_milli or DEFAULT_CPU_REQUEST_MILLI for e in self.entries], dtype=np.int64
        )
        self.gpu_kind = self.milli > 0

    @classmethod
    def from_requests(
        cls,
        requests: Iterable[GpuRequest],
        coverage: float = 0.95,
        *,
        include_cpu_only: bool = True,
    ) -> WorkloadMix:
        """Build the mix of the most frequent request kinds that cover `coverage` of the pods.

        Kinds are (CPU, GPU count, GPU milli, models); memory is left out, as
        the fragmentation measure does not use it. Kinds are taken in order
        of decreasing frequency until they cover `coverage` of all pods, and
        their weights are renormalised to sum to 1 (the paper's simulator
        uses 95 %). Equal frequencies are ordered by the larger CPU, GPU
        milli, GPU count and model list first, so the result is deterministic.

        Raises:
            ValueError: no request qualifies, or coverage is not in (0, 1].
        """
        if not 0 < coverage <= 1:
            raise ValueError(f"coverage must be in (0, 1], got {coverage}")
        counts: dict[tuple[int, int, int, frozenset[str]], int] = {}
        for request in requests:
            if request.gpu_count == 0 and not include_cpu_only:
                continue
            key = (request.scoring_cpu_milli, request.gpu_milli, request.gpu_count, request.models)
            counts[key] = counts.get(key, 0) + 1
        if not counts:
            raise ValueError("no requests to build a workload mix from")
        total = sum(counts.values())
        ordered = sorted(
            counts.items(),
            key=lambda item: (
                item[1],
                item[0][0],
                item[0][1],
                item[0][2],
                "|".join(sorted(item[0][3])),
            ),
            reverse=True,
        )
        chosen: list[MixEntry] = []
        covered = 0
        for (cpu, milli, gpus, models), number in ordered:
            if covered >= coverage * total:
                break
            chosen.append(MixEntry(float(number), gpus, milli, cpu, models))
            covered += number
        return cls(tuple(chosen))

    def access(self, model_names: tuple[str, ...]) -> BoolArray:
        """Return (entries, models): whether each entry may use each GPU model."""
        cached = self._access.get(model_names)
        if cached is None:
            cached = np.stack([model_access(model_names, e.models) for e in self.entries])
            self._access[model_names] = cached
        return cached


def fragmentation(rows: NodeRows, mix: WorkloadMix) -> FloatArray:
    """Return the expected idle GPU milli per node by cause, shape (nodes, len(FRAGMENT_CAUSES)).

    For each kind of pod in the mix, the node's idle GPU capacity is split by
    what stops that pod from using it; the result weighs the kinds by their
    share. A node's fragmentation is the sum of all columns but `satisfied`.
    Without CPU information (`rows.cpu_left` None) CPU never blocks a pod.
    """
    left = rows.gpu_left
    total = left.sum(axis=1).astype(np.float64)
    nodes = len(rows)
    kinds = len(mix.entries)
    milli = mix.milli
    usable = left[:, None, :] >= milli[None, :, None]
    enough_gpu = usable.sum(axis=2) >= mix.count[None, :]
    below = np.where(usable, 0, left[:, None, :]).sum(axis=2).astype(np.float64)
    if rows.cpu_left is None:
        enough_cpu = np.ones((nodes, kinds), dtype=bool)
    else:
        enough_cpu = rows.cpu_left[:, None] >= mix.cpu[None, :]
    access = mix.access(rows.model_names).T[rows.model]
    gpu_kind = np.broadcast_to(mix.gpu_kind[None, :], (nodes, kinds))

    satisfied = gpu_kind & access & enough_gpu & enough_cpu
    causes = np.zeros((nodes, kinds, len(FRAGMENT_CAUSES)), dtype=np.float64)
    full = np.broadcast_to(total[:, None], (nodes, kinds))
    index = FRAGMENT_CAUSES.index
    causes[..., index("lack_gpu")] = np.where(satisfied, below, 0.0)
    causes[..., SATISFIED] = np.where(satisfied, full - below, 0.0)
    gpu_ok = gpu_kind & access
    causes[..., index("lack_cpu")] = np.where(gpu_ok & enough_gpu & ~enough_cpu, full, 0.0)
    causes[..., index("lack_gpu")] += np.where(gpu_ok & ~enough_gpu & enough_cpu, full, 0.0)
    causes[..., index("lack_both")] = np.where(gpu_ok & ~enough_gpu & ~enough_cpu, full, 0.0)
    causes[..., index("no_access")] = np.where(gpu_kind & ~access, full, 0.0)
    causes[..., index("cpu_only")] = np.where(~gpu_kind & enough_cpu, full, 0.0)
    causes[..., index("cpu_only_lack_cpu")] = np.where(~gpu_kind & ~enough_cpu, full, 0.0)
    result: FloatArray = np.einsum("nkc,k->nc", causes, mix.weight)
    return result


def fragment_milli(rows: NodeRows, mix: WorkloadMix) -> FloatArray:
    """Return each node's expected fragmented GPU milli (all causes but `satisfied`)."""
    left = rows.gpu_left
    total = left.sum(axis=1).astype(np.float64)
    usable = left[:, None, :] >= mix.milli[None, :, None]
    enough_gpu = usable.sum(axis=2) >= mix.count[None, :]
    below = np.where(usable, 0, left[:, None, :]).sum(axis=2).astype(np.float64)
    satisfied = enough_gpu & mix.gpu_kind[None, :]
    if rows.cpu_left is not None:
        satisfied &= rows.cpu_left[:, None] >= mix.cpu[None, :]
    satisfied &= mix.access(rows.model_names).T[rows.model]
    per_kind = np.where(satisfied, below, total[:, None])
    result: FloatArray = per_kind @ mix.weight
    return result


# --------------------------------------------------------------------------------------
# GPU selection on one node
# --------------------------------------------------------------------------------------


def whole_gpus(gpu_left: IntArray, count: int) -> list[int]:
    """Return the first `count` fully free GPUs in slot order.

    Raises:
        ValueError: fewer than `count` GPUs are fully free.
    """
    free = [int(g) for g in np.flatnonzero(gpu_left == MILLI_PER_GPU)[:count]]
    if len(free) < count:
        raise ValueError(f"{count} free GPUs requested, {len(free)} free")
    return free


def best_fit_gpu(gpu_left: IntArray, milli: int) -> int:
    """Return the GPU with the least free milli that still fits `milli` (lowest slot on ties).

    Raises:
        ValueError: no GPU has `milli` free.
    """
    fitting = np.flatnonzero(gpu_left >= milli)
    if len(fitting) == 0:
        raise ValueError(f"no GPU has {milli} milli free")
    return int(fitting[np.argmin(gpu_left[fitting])])


def random_gpu(gpu_left: IntArray, milli: int, rng: np.random.Generator) -> int:
    """Return a uniformly random GPU that fits `milli`.

    Raises:
        ValueError: no GPU has `milli` free.
    """
    fitting = np.flatnonzero(gpu_left >= milli)
    if len(fitting) == 0:
        raise ValueError(f"no GPU has {milli} milli free")
    return int(fitting[int(rng.integers(len(fitting)))])


# --------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------


class GpuPolicy(Protocol):
    """Scores nodes for a request and picks the GPUs on the chosen node."""

    name: ClassVar[str]
    node_local: ClassVar[bool]
    """Whether a node's score depends only on that node's state (so it can be cached)."""

    def score(self, rows: NodeRows, request: GpuRequest, rng: np.random.Generator) -> FloatArray:
        """Return a score in [0, 100] (an integer value) per row; all rows can host the request."""
        ...

    def select_gpus(
        self, node: NodeRows, request: GpuRequest, rng: np.random.Generator
    ) -> list[int]:
        """Return the GPU slots to use on a single node (`node` has one row)."""
        ...


def _gpu_total_left(rows: NodeRows) -> FloatArray:
    result: FloatArray = rows.gpu_left.sum(axis=1).astype(np.float64)
    return result


def _cpu_left(rows: NodeRows) -> FloatArray:
    """Free CPU per row, or zeros when unknown (CPU terms then drop out of the scores)."""
    if rows.cpu_left is None:
        return np.zeros(len(rows), dtype=np.float64)
    result: FloatArray = rows.cpu_left.astype(np.float64)
    return result


def _request_cpu(rows: NodeRows, request: GpuRequest) -> float:
    return 0.0 if rows.cpu_left is None else float(request.scoring_cpu_milli)


class _BestFitGpus:
    """GPU selection shared by DotProduct, GpuPacking, GpuClustering and BestFit."""

    def select_gpus(
        self, node: NodeRows, request: GpuRequest, rng: np.random.Generator
    ) -> list[int]:
        """Return the best-fitting GPU for a share, or the first fully free GPUs."""
        if request.gpu_count == 0:
            return []
        left = node.gpu_left[0]
        if request.shared:
            return [best_fit_gpu(left, request.gpu_milli)]
        return whole_gpus(left, request.gpu_count)


class RandomPolicy:
    """Random: a uniformly random feasible node and a random fitting GPU."""

    name: ClassVar[str] = "random"
    node_local: ClassVar[bool] = False

    def score(self, rows: NodeRows, request: GpuRequest, rng: np.random.Generator) -> FloatArray:
        """Return 100 for one random row and 0 for the others."""
        scores = np.zeros(len(rows), dtype=np.float64)
        if len(rows):
            scores[int(rng.integers(len(rows)))] = MAX_NODE_SCORE
        return scores

    def select_gpus(
        self, node: NodeRows, request: GpuRequest, rng: np.random.Generator
    ) -> list[int]:
        """Return a random fitting GPU for a share, or the first fully free GPUs."""
        if request.gpu_count == 0:
            return []
        left = node.gpu_left[0]
        if request.shared:
            return [random_gpu(left, request.gpu_milli, rng)]
        return whole_gpus(left, request.gpu_count)


class DotProductPolicy(_BestFitGpus):
    """DotProduct (Tetris): prefer nodes whose free resources align least with the request.

    score = floor(100 * (1 - (r_cpu * f_cpu + r_gpu * f_gpu) / 2)), with free
    (f) and requested (r) CPU and GPU divided by 128 cores and 8 GPUs.
    """

    name: ClassVar[str] = "dot-product"
    node_local: ClassVar[bool] = True

    def score(self, rows: NodeRows, request: GpuRequest, rng: np.random.Generator) -> FloatArray:
        """Return the dot-product score of every row."""
        free_cpu = _cpu_left(rows) / MAX_SPEC_CPU_MILLI
        free_gpu = _gpu_total_left(rows) / MAX_SPEC_GPU_MILLI
        want_cpu = _request_cpu(rows, request) / MAX_SPEC_CPU_MILLI
        want_gpu = request.total_gpu_milli / MAX_SPEC_GPU_MILLI
        dot = (free_cpu * want_cpu + free_gpu * want_gpu) / 2
        result: FloatArray = np.floor(MAX_NODE_SCORE * (1.0 - dot))
        return result


class GpuPackingPolicy(_BestFitGpus):
    """GpuPacking: shared GPUs first, then free GPUs on used nodes, then idle nodes.

    Scores (integers): a share that fits on partly used GPUs scores
    max(100 - sum(free% of the GPUs used) / 10, 50); a request that needs fully
    free GPUs on a used node scores max(50 - fully free GPUs used, 33); on a
    node with every GPU free it scores max(33 - free GPUs, free GPUs).
    CPU-only pods score 0 everywhere.
    """

    name: ClassVar[str] = "gpu-packing"
    node_local: ClassVar[bool] = True

    def score(self, rows: NodeRows, request: GpuRequest, rng: np.random.Generator) -> FloatArray:
        """Return the packing score of every row."""
        nodes = len(rows)
        if request.gpu_count == 0:
            return np.zeros(nodes, dtype=np.float64)
        left = rows.gpu_left
        fully_free = (left == MILLI_PER_GPU).sum(axis=1)
        idle_node = fully_free == rows.gpu_count
        # GPUs are used in ascending order of free milli; padding slots (0) never fit.
        order = np.argsort(left, axis=1, kind="stable")
        ordered = np.take_along_axis(left, order, axis=1)
        fits = ordered >= request.gpu_milli
        used = fits & (np.cumsum(fits, axis=1) <= request.gpu_count)
        free_used = (used & (ordered == MILLI_PER_GPU)).sum(axis=1)
        percent_used = np.where(used, ordered * 100 // MILLI_PER_GPU, 0).sum(axis=1)

        shared_score = np.maximum(MAX_NODE_SCORE - percent_used // 10, MAX_NODE_SCORE // 2)
        free_score = np.maximum(MAX_NODE_SCORE // 2 - free_used, MAX_NODE_SCORE // 3)
        idle_score = np.maximum(MAX_NODE_SCORE // 3 - fully_free, fully_free)
        scores = np.where(free_used > 0, free_score, shared_score)
        scores = np.where(idle_node, idle_score, scores)
        result: FloatArray = scores.astype(np.float64)
        return result


class GpuClusteringPolicy(_BestFitGpus):
    """GpuClustering: put pods with the same GPU request (affinity class) together.

    With u = floor(25 * (8000 - free GPU milli) / 8000), a node scores u + 75
    when it only holds pods of the request's class, u + 50 when it holds that
    class among others, u + 25 when it holds no GPU pod, and u otherwise.
    CPU-only pods score 0 everywhere.
    """

    name: ClassVar[str] = "gpu-clustering"
    node_local: ClassVar[bool] = True

    def score(self, rows: NodeRows, request: GpuRequest, rng: np.random.Generator) -> FloatArray:
        """Return the clustering score of every row."""
        nodes = len(rows)
        if request.gpu_count == 0:
            return np.zeros(nodes, dtype=np.float64)
        left = rows.gpu_left.sum(axis=1)
        used = (MAX_NODE_SCORE // 4) * (MAX_SPEC_GPU_MILLI - left) // MAX_SPEC_GPU_MILLI
        classes = (rows.affinity > 0).sum(axis=1)
        affinity = request.affinity
        same = (
            rows.affinity[:, affinity] > 0
            if affinity < rows.affinity.shape[1]
            else np.zeros(nodes, dtype=bool)
        )
        offset = np.where(
            same,
            np.where(classes == 1, 3 * MAX_NODE_SCORE // 4, 2 * MAX_NODE_SCORE // 4),
            np.where(classes == 0, MAX_NODE_SCORE // 4, 0),
        )
        result: FloatArray = (used + offset).astype(np.float64)
        return result


class BestFitPolicy(_BestFitGpus):
    """BestFit: prefer the node with the least CPU and GPU left after placement.

    score = floor(100 * (1 - 0.5 * (f_cpu - r_cpu) / 128 cores - 0.5 * (f_gpu - r_gpu) / 8 GPUs)).
    """

    name: ClassVar[str] = "best-fit"
    node_local: ClassVar[bool] = True

    def score(self, rows: NodeRows, request: GpuRequest, rng: np.random.Generator) -> FloatArray:
        """Return the best-fit score of every row."""
        cpu_after = (_cpu_left(rows) - _request_cpu(rows, request)) / MAX_SPEC_CPU_MILLI
        gpu_after = (_gpu_total_left(rows) - request.total_gpu_milli) / MAX_SPEC_GPU_MILLI
        leftover = 0.5 * cpu_after + 0.5 * gpu_after
        result: FloatArray = np.floor(MAX_NODE_SCORE * (1.0 - leftover))
        return result


class FGDPolicy:
    """FGD (fragmentation gradient descent): the placement that adds the least fragmentation.

    For each candidate (a node, and for a share also the GPU on it) the score
    is floor(100 * sigmoid((F_before - F_after) / 1000)), where F is the
    node's expected fragmented GPU milli for the workload mix
    (`fragment_milli`). A share takes the GPU with the highest score (lowest
    slot on ties); whole GPUs take the first fully free ones.
    """

    name: ClassVar[str] = "fgd"
    node_local: ClassVar[bool] = True

    def __init__(self, mix: WorkloadMix) -> None:
        self.mix = mix

    def score(self, rows: NodeRows, request: GpuRequest, rng: np.random.Generator) -> FloatArray:
        """Return the FGD score of every row."""
        scores, _gpus = self.evaluate(rows, request)
        return scores

    def select_gpus(
        self, node: NodeRows, request: GpuRequest, rng: np.random.Generator
    ) -> list[int]:
        """Return the GPU with the best FGD score for a share, or the first fully free GPUs."""
        if request.gpu_count == 0:
            return []
        if request.shared:
            _scores, gpus = self.evaluate(node, request)
            return [int(gpus[0])]
        return whole_gpus(node.gpu_left[0], request.gpu_count)

    def evaluate(self, rows: NodeRows, request: GpuRequest) -> tuple[FloatArray, IntArray]:
        """Return the score per row and, for a share, the chosen GPU per row (else -1)."""
        nodes = len(rows)
        chosen = np.full(nodes, -1, dtype=np.int64)
        if nodes == 0:
            return np.zeros(0, dtype=np.float64), chosen
        before = fragment_milli(rows, self.mix)
        cpu_after = None
        if rows.cpu_left is not None:
            cpu_after = rows.cpu_left - request.scoring_cpu_milli
        if not request.shared:
            after_left = rows.gpu_left.copy()
            if request.gpu_count:
                free = after_left == MILLI_PER_GPU
                take = free & (np.cumsum(free, axis=1) <= request.gpu_count)
                after_left[take] = 0
            after = fragment_milli(
                NodeRows(
                    after_left,
                    rows.gpu_count,
                    rows.model,
                    rows.model_names,
                    rows.affinity,
                    cpu_after,
                ),
                self.mix,
            )
            return _fgd_score(before - after), chosen

        # A share: one candidate per distinct free amount on each node (equal
        # amounts give equal states), keeping the lowest slot of each amount.
        left = rows.gpu_left
        slots = left.shape[1]
        fits = left >= request.gpu_milli
        earlier_same = (left[:, :, None] == left[:, None, :]) & np.tri(
            slots, slots, -1, dtype=bool
        )[None, :, :]
        candidate = fits & ~earlier_same.any(axis=2)
        node_index, slot_index = np.nonzero(candidate)
        states = left[node_index].copy()
        states[np.arange(len(node_index)), slot_index] -= request.gpu_milli
        after = fragment_milli(
            NodeRows(
                states,
                rows.gpu_count[node_index],
                rows.model[node_index],
                rows.model_names,
                rows.affinity[node_index],
                None if cpu_after is None else cpu_after[node_index],
            ),
            self.mix,
        )
        grid = np.full((nodes, slots), -1.0)
        grid[node_index, slot_index] = _fgd_score(before[node_index] - after)
        chosen = np.argmax(grid, axis=1).astype(np.int64)
        best = grid[np.arange(nodes), chosen]
        chosen[best < 0] = -1
        scores: FloatArray = np.maximum(best, 0.0)
        return scores, chosen


def _fgd_score(gain_milli: FloatArray) -> FloatArray:
    """Map a fragmentation decrease (milli, negative for an increase) to an integer score."""
    result: FloatArray = np.floor(MAX_NODE_SCORE / (1.0 + np.exp(-gain_milli / FGD_SCALE_MILLI)))
    return result


POLICY_NAMES = ("random", "dot-product", "gpu-packing", "gpu-clustering", "best-fit", "fgd")
"""Registered policy names, in the order of the paper's figures."""


def make_policy(name: str, mix: WorkloadMix | None = None) -> GpuPolicy:
    """Build a policy by name; FGD needs the workload mix.

    Raises:
        ValueError: the name is unknown, or FGD was asked for without a mix.
    """
    if name == "fgd":
        if mix is None:
            raise ValueError("policy 'fgd' needs a workload mix (the expected pod requests)")
        return FGDPolicy(mix)
    simple: Mapping[str, type[GpuPolicy]] = {
        "random": RandomPolicy,
        "dot-product": DotProductPolicy,
        "gpu-packing": GpuPackingPolicy,
        "gpu-clustering": GpuClusteringPolicy,
        "best-fit": BestFitPolicy,
    }
    cls = simple.get(name)
    if cls is None:
        raise ValueError(f"unknown GPU policy {name!r}; available: {', '.join(POLICY_NAMES)}")
    return cls()
