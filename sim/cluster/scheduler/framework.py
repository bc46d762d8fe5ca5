"""The kube-scheduler framework vocabulary: status codes, cycle state, events, plugins.

A scheduling cycle runs plugins at fixed extension points (PreEnqueue,
PreFilter, Filter, PostFilter, PreScore, Score, Reserve, Unreserve, PostBind).
Each returns a `Status` whose code tells the queue what to do next:

* Success: go on.
* Unschedulable: this node (or the pod) does not fit now; preemption may help.
* UnschedulableAndUnresolvable: no point in preempting; wait for an event.
* Pending (1.29): the cycle worked but another component must act first; an
  event from the plugin that returned it moves the pod to activeQ at once.
* Error: something unexpected; the pod goes through backoff.
* Skip: the plugin has nothing to do for this pod.

Filter plugins here are vectorised: they see a boolean mask of the nodes still
alive and return which of them they reject, instead of running once per node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum, IntEnum, IntFlag
from typing import Any

import numpy as np
import numpy.typing as npt

from sim.api.types import Pod

BoolArray = npt.NDArray[np.bool_]


class Code(IntEnum):
    """Framework status codes, with kube-scheduler's numbering."""

    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    WAIT = 4
    SKIP = 5
    PENDING = 6

    @property
    def label(self) -> str:
        """The name kube-scheduler prints for this code."""
        return _CODE_LABELS[self]


_CODE_LABELS = {
    Code.SUCCESS: "Success",
    Code.ERROR: "Error",
    Code.UNSCHEDULABLE: "Unschedulable",
    Code.UNSCHEDULABLE_AND_UNRESOLVABLE: "UnschedulableAndUnresolvable",
    Code.WAIT: "Wait",
    Code.SKIP: "Skip",
    Code.PENDING: "Pending",
}


@dataclass(frozen=True)
class Status:
    """Result of one plugin call."""

    code: Code = Code.SUCCESS
    message: str = ""
    plugin: str = ""

    @property
    def is_success(self) -> bool:
        """Whether the code is Success."""
        return self.code == Code.SUCCESS

    @property
    def is_rejected(self) -> bool:
        """Whether the code is Unschedulable, UnschedulableAndUnresolvable or Pending."""
        return self.code in (
            Code.UNSCHEDULABLE,
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            Code.PENDING,
        )

    def with_plugin(self, plugin: str) -> Status:
        """Return the same status, attributed to `plugin`."""
        return Status(self.code, self.message, plugin)


SUCCESS = Status()


class ActionType(IntFlag):
    """What happened to an object, as kube-scheduler's ClusterEvent action types."""

    ADD = 1
    DELETE = 2
    UPDATE_NODE_ALLOCATABLE = 4
    UPDATE_NODE_LABEL = 8
    UPDATE_NODE_TAINT = 16
    UPDATE_NODE_CONDITION = 32
    UPDATE = 64
    ALL = 127


class Resource(Enum):
    """Kinds a ClusterEvent can be about."""

    POD = "Pod"
    ASSIGNED_POD = "AssignedPod"
    NODE = "Node"
    RESOURCE_CLAIM = "ResourceClaim"
    POD_SCHEDULING_CONTEXT = "PodSchedulingContext"
    RESOURCE_CLASS = "ResourceClass"
    WILDCARD = "*"


@dataclass(frozen=True)
class ClusterEvent:
    """An object change that may make unschedulable pods schedulable."""

    resource: Resource
    action: ActionType
    label: str
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        # The queue looks events up by value on every informer event. Hashing the enum
        # members each time showed up in profiles, so the hash is computed once.
        object.__setattr__(self, "_hash", hash((self.resource, int(self.action), self.label)))

    def __hash__(self) -> int:
        return self._hash

    def matches(self, registered: ClusterEvent) -> bool:
        """Whether a plugin that registered `registered` is interested in this event."""
        if self.resource == Resource.WILDCARD:
            return True
        return registered.resource == self.resource and bool(registered.action & self.action)


UNSCHEDULABLE_TIMEOUT = ClusterEvent(Resource.WILDCARD, ActionType.ALL, "UnschedulableTimeout")


class QueueingHint(IntEnum):
    """A plugin's answer to "may this event make the pod schedulable?" (1.29 names)."""

    SKIP = 0
    QUEUE = 1


HintFn = Callable[[Pod, Any, Any], QueueingHint]
"""Queueing hint function: (pod, old object, new object) -> hint."""


@dataclass(frozen=True, eq=False)
class HintIndex:
    """A promise about a queueing hint that lets the queue skip most waiting pods.

    The hint returns Skip for a pod unless `object_key(new)` is one of
    `pod_keys(pod)`. `object_key` returns None when no pod can match (for
    example when `new` is None). The queue then offers an event only to the
    pods filed under its key, and to the pods no plugin rejected.
    """

    object_key: Callable[[Any], str | None]
    pod_keys: Callable[[Pod], Iterable[str]]


@dataclass(frozen=True)
class EventRegistration:
    """An event a plugin wants to hear about, with an optional queueing hint and its index."""

    event: ClusterEvent
    hint: HintFn | None = None
    index: HintIndex | None = None


@dataclass
class CycleState:
    """Per-cycle data that plugins write in PreFilter and read later (one per attempt)."""

    data: dict[str, Any] = field(default_factory=dict)
    skip_filter_plugins: set[str] = field(default_factory=set)
    skip_score_plugins: set[str] = field(default_factory=set)


@dataclass
class FilterResult:
    """What a vectorised Filter rejected among the alive nodes.

    `rejections` lists (mask of rejected nodes, code, reason) groups; the
    masks of one call are disjoint and every rejected node is in exactly one.
    """

    rejections: list[tuple[BoolArray, Code, str]] = field(default_factory=list)

    def reject(self, mask: BoolArray, code: Code, reason: str) -> None:
        """Add a group of rejected nodes (ignored when the mask is empty)."""
        if mask.any():
            self.rejections.append((mask, code, reason))


def pod_key(pod: Pod) -> str:
    """Return `namespace/name` of a pod."""
    return f"{pod.metadata.namespace}/{pod.metadata.name}"
