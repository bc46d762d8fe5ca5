"""The scheduler's node snapshot as numpy columns (one row per node).

kube-scheduler keeps a cache of nodes and of the pods assigned or assumed on
them, and every Filter and Score plugin reads it per node. Here the same data
lives in arrays, so that a plugin decides for all nodes with a few vector
operations: allocatable and requested CPU (millicores), memory (bytes) and pod
counts, the unschedulable flag, one boolean column per distinct taint, and
the node labels in a `NodeLabelTable` for selector masks.

Rows are never reused: a deleted node keeps its row with `present` False.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from sim.api.quantity import int_value, milli_value
from sim.api.selectors import NodeLabelTable
from sim.api.types import Node, Pod, Taint

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Requests counted for scoring when a container sets none (kube-scheduler's
# DefaultMilliCPURequest and DefaultMemoryRequest), so that empty pods still spread.
DEFAULT_SCORING_CPU_MILLI = 100
DEFAULT_SCORING_MEMORY_BYTES = 200 * 1024 * 1024

TaintKey = tuple[str, str, str]


def pod_requests(pod: Pod) -> tuple[int, int]:
    """Return the pod's effective CPU (millicores) and memory (bytes) requests.

    The effective request is the larger of the sum over regular containers and
    the largest init container, as kube-scheduler computes it (pod overhead and
    sidecar init containers are not modelled).
    """
    cpu = memory = 0
    for container in pod.spec.containers:
        requests = container.resources.requests
        cpu += milli_value(requests["cpu"]) if "cpu" in requests else 0
        memory += int_value(requests["memory"]) if "memory" in requests else 0
    for container in pod.spec.init_containers:
        requests = container.resources.requests
        if "cpu" in requests:
            cpu = max(cpu, milli_value(requests["cpu"]))
        if "memory" in requests:
            memory = max(memory, int_value(requests["memory"]))
    return cpu, memory


def pod_scoring_requests(pod: Pod) -> tuple[int, int]:
    """Return CPU and memory requests with kube-scheduler's non-zero defaults for scoring."""
    cpu = memory = 0
    for container in pod.spec.containers:
        requests = container.resources.requests
        cpu += milli_value(requests["cpu"]) if "cpu" in requests else DEFAULT_SCORING_CPU_MILLI
        memory += (
            int_value(requests["memory"]) if "memory" in requests else DEFAULT_SCORING_MEMORY_BYTES
        )
    return cpu, memory


class NodeTable:
    """Columnar snapshot of nodes and the resources their pods request."""

    _INT_COLUMNS = (
        "allocatable_cpu",
        "allocatable_memory",
        "allocatable_pods",
        "requested_cpu",
        "requested_memory",
        "requested_pods",
        "scoring_cpu",
        "scoring_memory",
    )

    def __init__(self) -> None:
        self.names: list[str] = []
        self.nodes: list[Node | None] = []
        self.labels = NodeLabelTable()
        self._rows: dict[str, int] = {}
        self._capacity = 0
        # Columns are allocated with spare capacity and exposed as views of the
        # used rows, so adding 10,000 nodes one by one stays linear.
        self._bool_columns: dict[str, BoolArray] = {
            "present": np.zeros(0, dtype=bool),
            "unschedulable": np.zeros(0, dtype=bool),
        }
        self._int_columns: dict[str, IntArray] = {
            name: np.zeros(0, dtype=np.int64) for name in self._INT_COLUMNS
        }
        self._taint_columns: dict[TaintKey, BoolArray] = {}
        self.version = 0
        self._pod_rows: dict[str, tuple[int, int, int, int, int]] = {}

    @property
    def present(self) -> BoolArray:
        """Whether each row's node exists."""
        return self._bool_columns["present"][: len(self.names)]

    @property
    def unschedulable(self) -> BoolArray:
        """`spec.unschedulable` of each node (cordoned)."""
        return self._bool_columns["unschedulable"][: len(self.names)]

    @property
    def allocatable_cpu(self) -> IntArray:
        """Allocatable CPU per node, millicores."""
        return self._int_columns["allocatable_cpu"][: len(self.names)]

    @property
    def allocatable_memory(self) -> IntArray:
        """Allocatable memory per node, bytes."""
        return self._int_columns["allocatable_memory"][: len(self.names)]

    @property
    def allocatable_pods(self) -> IntArray:
        """Maximum number of pods per node."""
        return self._int_columns["allocatable_pods"][: len(self.names)]

    @property
    def requested_cpu(self) -> IntArray:
        """CPU requested by the pods assigned or assumed on each node, millicores."""
        return self._int_columns["requested_cpu"][: len(self.names)]

    @property
    def requested_memory(self) -> IntArray:
        """Memory requested by the pods on each node, bytes."""
        return self._int_columns["requested_memory"][: len(self.names)]

    @property
    def requested_pods(self) -> IntArray:
        """Number of pods on each node."""
        return self._int_columns["requested_pods"][: len(self.names)]

    @property
    def scoring_cpu(self) -> IntArray:
        """CPU requests with the non-zero scoring defaults, millicores."""
        return self._int_columns["scoring_cpu"][: len(self.names)]

    @property
    def scoring_memory(self) -> IntArray:
        """Memory requests with the non-zero scoring defaults, bytes."""
        return self._int_columns["scoring_memory"][: len(self.names)]

    @property
    def taints(self) -> dict[TaintKey, BoolArray]:
        """One column per distinct (key, value, effect) taint: which nodes carry it."""
        count = len(self.names)
        return {key: column[:count] for key, column in self._taint_columns.items()}

    def __len__(self) -> int:
        return len(self.names)

    def row_of(self, name: str) -> int | None:
        """Return the row of a node, or None when the node is unknown."""
        return self._rows.get(name)

    def mask_of(self, names: Iterable[str]) -> BoolArray:
        """Return a mask that is True on the rows of the named (known) nodes."""
        mask = np.zeros(len(self.names), dtype=bool)
        rows = [self._rows[name] for name in names if name in self._rows]
        if rows:
            mask[rows] = True
        return mask

    def upsert_node(self, node: Node) -> int:
        """Add a node or refresh its row from a newer object; return its row."""
        name = node.metadata.name
        row = self._rows.get(name)
        if row is None:
            row = self._append_row(name)
            label_row = self.labels.add(name, node.metadata.labels)
            assert label_row == row, "label table and node table rows diverged"
        else:
            self.labels.set_labels(row, node.metadata.labels)
        self.nodes[row] = node
        self.present[row] = True
        self.unschedulable[row] = node.spec.unschedulable
        allocatable = node.status.allocatable or node.status.capacity
        self.allocatable_cpu[row] = milli_value(allocatable["cpu"]) if "cpu" in allocatable else 0
        self.allocatable_memory[row] = (
            int_value(allocatable["memory"]) if "memory" in allocatable else 0
        )
        self.allocatable_pods[row] = int_value(allocatable["pods"]) if "pods" in allocatable else 0
        self._set_taints(row, node.spec.taints)
        self.version += 1
        return row

    def remove_node(self, name: str) -> None:
        """Mark a node as gone."""
        row = self._rows.get(name)
        if row is None:
            return
        self.present[row] = False
        self.nodes[row] = None
        self.version += 1

    def add_pod(self, pod: Pod, node_name: str) -> None:
        """Count a pod's requests on a node (assumed or bound); a second call is a no-op."""
        uid = pod.metadata.uid
        row = self._rows.get(node_name)
        if row is None or uid in self._pod_rows:
            return
        cpu, memory = pod_requests(pod)
        scoring_cpu, scoring_memory = pod_scoring_requests(pod)
        self._pod_rows[uid] = (row, cpu, memory, scoring_cpu, scoring_memory)
        self.requested_cpu[row] += cpu
        self.requested_memory[row] += memory
        self.requested_pods[row] += 1
        self.scoring_cpu[row] += scoring_cpu
        self.scoring_memory[row] += scoring_memory

    def remove_pod(self, uid: str) -> None:
        """Stop counting a pod (deleted, finished, or an assumption that was forgotten)."""
        entry = self._pod_rows.pop(uid, None)
        if entry is None:
            return
        row, cpu, memory, scoring_cpu, scoring_memory = entry
        self.requested_cpu[row] -= cpu
        self.requested_memory[row] -= memory
        self.requested_pods[row] -= 1
        self.scoring_cpu[row] -= scoring_cpu
        self.scoring_memory[row] -= scoring_memory

    def has_pod(self, uid: str) -> bool:
        """Whether the pod's requests are counted on some node."""
        return uid in self._pod_rows

    def _append_row(self, name: str) -> int:
        row = len(self.names)
        if row >= self._capacity:
            self._grow(max(16, 2 * self._capacity))
        self.names.append(name)
        self.nodes.append(None)
        self._rows[name] = row
        return row

    def _grow(self, capacity: int) -> None:
        def grown(column: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
            bigger = np.zeros(capacity, dtype=column.dtype)
            bigger[: column.shape[0]] = column
            return bigger

        self._bool_columns = {k: grown(v) for k, v in self._bool_columns.items()}  # type: ignore[misc]
        self._int_columns = {k: grown(v) for k, v in self._int_columns.items()}  # type: ignore[misc]
        self._taint_columns = {k: grown(v) for k, v in self._taint_columns.items()}  # type: ignore[misc]
        self._capacity = capacity

    def _set_taints(self, row: int, taints: tuple[Taint, ...]) -> None:
        for column in self._taint_columns.values():
            column[row] = False
        for taint in taints:
            key = (taint.key, taint.value, taint.effect)
            if key not in self._taint_columns:
                self._taint_columns[key] = np.zeros(self._capacity, dtype=bool)
            self._taint_columns[key][row] = True
