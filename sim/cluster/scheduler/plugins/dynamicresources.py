"""The DynamicResources scheduler plugin of classic DRA (Kubernetes 1.27-1.29).

The plugin never allocates. It keeps pods out of the active queue until their
claims exist (PreEnqueue), filters nodes by where allocated claims are
available and by what drivers reported as unsuitable for pending claims
(PreFilter, Filter), publishes candidate nodes and the chosen node in the
pod's PodSchedulingContext (PreScore, Reserve), reserves allocated claims for
the pod (Reserve), asks a driver to deallocate a claim that keeps a pod from
fitting anywhere (PostFilter) and deletes the PodSchedulingContext once the pod
is bound (PostBind). Its API writes are synchronous in the scheduling thread,
as in the real scheduler, so they stall all scheduling.

Modelled: every branch of the 1.29 plugin, including Unreserve's stale snapshot
(it removes reservations that existed at PreFilter time and keeps those added
in the same Reserve), the position quirk when recording PostFilter candidates
(switchable to the intended behaviour), random 128-node subsets of potential
nodes, the server-side-apply fallback on PodSchedulingContext conflicts and
the queueing hints. 1.27/1.28 differences: no PreEnqueue in 1.27, waiting
results are UnschedulableAndUnresolvable instead of Pending, a missing class is
an Error, the PodSchedulingContext is written on every node selection, a
conflict is an Error, and PostFilter does not clear selectedNode first.

Simplified: class lookup and suitableNodes matching happen in PreFilter in
all versions (1.27/1.28 did it per node in Filter; the outcome is the same).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.api.errors import APIError, Conflict
from sim.api.selectors import CompiledNodeSelector, SelectorError, compile_node_selector
from sim.api.types import (
    AllocationMode,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodSchedulingContext,
    PodSchedulingContextSpec,
    ResourceClaim,
    ResourceClaimSchedulingStatus,
    is_controlled_by,
    pod_consumer_reference,
)
from sim.api.validation import POD_SCHEDULING_NODE_LIST_MAX_SIZE
from sim.cluster.claims import ClaimNameError, ResolvedClaim, check_owner, resolve_claim_name
from sim.cluster.client import APIClient, Informer
from sim.cluster.scheduler.framework import (
    SUCCESS,
    ActionType,
    BoolArray,
    ClusterEvent,
    Code,
    CycleState,
    EventRegistration,
    FilterResult,
    HintIndex,
    QueueingHint,
    Resource,
    Status,
)
from sim.cluster.scheduler.nodetable import NodeTable

logger = logging.getLogger(__name__)

NAME = "DynamicResources"

CLAIM_NAMES_CACHE_SIZE = 100_000
"""Pods whose claim names the queueing hint remembers before the cache starts over."""


def _object_name(obj: Any) -> str | None:
    """Return the index key of a claim event: its name, since pods use only claims they name."""
    return None if obj is None else str(obj.metadata.name)


def _object_key(obj: Any) -> str | None:
    """Return the index key of a PodSchedulingContext event: namespace/name, as for its pod."""
    return None if obj is None else f"{obj.metadata.namespace}/{obj.metadata.name}"


def _pod_key(pod: Pod) -> tuple[str]:
    """Return a pod's one PodSchedulingContext key: its own namespace/name."""
    return (f"{pod.metadata.namespace}/{pod.metadata.name}",)


@dataclass
class DRAState:
    """What PreFilter learned about the pod's claims, read by the later extension points.

    `claims` is the informer copy of each claim as seen in PreFilter; it is not
    refreshed when the plugin itself writes (that is what makes Unreserve act on
    a stale snapshot, as the real plugin does).
    """

    claims: list[ResourceClaim] = field(default_factory=list)
    pod_claim_names: list[str] = field(default_factory=list)
    selectors: list[CompiledNodeSelector | None] = field(default_factory=list)
    info: list[ResourceClaimSchedulingStatus | None] = field(default_factory=list)
    scheduling_context: PodSchedulingContext | None = None
    unavailable_claims: set[int] = field(default_factory=set)
    pre_scored: bool = False
    selected_node: str | None = None
    potential_nodes: tuple[str, ...] | None = None


class DynamicResources:
    """kube-scheduler's DynamicResources plugin for classic DRA."""

    name = NAME

    def __init__(
        self,
        *,
        table: NodeTable,
        client: APIClient,
        claims: Informer,
        scheduling_contexts: Informer,
        classes: Informer,
        rng: np.random.Generator,
        minor_version: int = 29,
        postfilter_candidates: str = "faithful",
    ) -> None:
        self.table = table
        self.client = client
        self.claims = claims
        self.scheduling_contexts = scheduling_contexts
        self.classes = classes
        self.rng = rng
        self.minor_version = minor_version
        # Before 1.28 a template entry's claim is named `<pod>-<entry>` instead of the
        # name recorded in the pod status.
        self._legacy_claim_names = minor_version < 28
        self.intended_candidates = postfilter_candidates == "intended"
        self._claim_names_cache: dict[str, tuple[Pod, frozenset[str]]] = {}
        """Pod UID -> (the pod object, the claim names it refers to)."""

    # ----------------------------------------------------------------------------------
    # Events and queueing hints
    # ----------------------------------------------------------------------------------

    def events(self) -> list[EventRegistration]:
        """Return the cluster events that may make a waiting pod schedulable."""
        registrations = [
            EventRegistration(
                ClusterEvent(
                    Resource.RESOURCE_CLAIM,
                    ActionType.ADD | ActionType.UPDATE,
                    "ResourceClaimChange",
                ),
                self.claim_hint,
                HintIndex(_object_name, self._claim_names),
            ),
            EventRegistration(
                ClusterEvent(
                    Resource.POD_SCHEDULING_CONTEXT,
                    ActionType.ADD | ActionType.UPDATE,
                    "PodSchedulingContextChange",
                ),
                self.scheduling_context_hint,
                HintIndex(_object_key, _pod_key),
            ),
            EventRegistration(
                ClusterEvent(
                    Resource.NODE,
                    ActionType.ADD | ActionType.UPDATE_NODE_LABEL,
                    "NodeAddOrLabelChange",
                )
            ),
        ]
        if self.minor_version >= 29:
            registrations.append(
                EventRegistration(
                    ClusterEvent(
                        Resource.RESOURCE_CLASS,
                        ActionType.ADD | ActionType.UPDATE,
                        "ResourceClassChange",
                    )
                )
            )
        return registrations

    def claim_hint(self, pod: Pod, old: Any, new: Any) -> QueueingHint:
        """Queue the pod when a claim it uses was created or its status changed."""
        if new is None:
            return QueueingHint.SKIP
        # A claim with the new object's UID also has its name, so a pod that names no claim
        # of that name cannot use it. This check runs for every waiting pod on every event.
        if new.metadata.name not in self._claim_names(pod):
            return QueueingHint.SKIP
        try:
            resolved = self._pod_claims(pod)
        except ClaimNameError:
            return QueueingHint.SKIP
        if not any(claim.metadata.uid == new.metadata.uid for _, claim in resolved):
            return QueueingHint.SKIP
        if old is None:
            return QueueingHint.QUEUE
        if old.status == new.status:
            # Typically the driver only added its finalizer.
            return QueueingHint.SKIP
        return QueueingHint.QUEUE

    def scheduling_context_hint(self, pod: Pod, old: Any, new: Any) -> QueueingHint:
        """Queue the pod once drivers answered for all pending claims or rejected its node."""
        if new is None:
            return QueueingHint.SKIP
        if (
            new.metadata.name != pod.metadata.name
            or new.metadata.namespace != pod.metadata.namespace
        ):
            return QueueingHint.SKIP
        try:
            resolved = self._pod_claims(pod)
        except ClaimNameError:
            return QueueingHint.SKIP
        for pod_claim_name, claim in resolved:
            if (
                claim.mode == AllocationMode.WAIT_FOR_FIRST_CONSUMER
                and not claim.allocated
                and new.claim_status(pod_claim_name) is None
            ):
                # Wait until every driver has answered.
                return QueueingHint.SKIP
        if old is None or len(old.status.resource_claims) < len(new.status.resource_claims):
            return QueueingHint.QUEUE
        selected = new.spec.selected_node
        if selected and any(
            selected in entry.unsuitable_nodes for entry in new.status.resource_claims
        ):
            return QueueingHint.QUEUE
        if old.spec != new.spec and old.status == new.status:
            return QueueingHint.SKIP
        return QueueingHint.QUEUE

    # ----------------------------------------------------------------------------------
    # PreEnqueue, PreFilter, Filter
    # ----------------------------------------------------------------------------------

    def pre_enqueue(self, pod: Pod) -> Status:
        """Keep the pod out of activeQ until all its claims exist and belong to it (1.28+)."""
        if self.minor_version < 28 or not pod.spec.resource_claims:
            return SUCCESS
        try:
            self._pod_claims(pod)
        except ClaimNameError as error:
            return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, str(error), NAME)
        return SUCCESS

    def pre_filter(self, state: CycleState, pod: Pod) -> Status:
        """Snapshot the pod's claims, build node selectors and read the drivers' answers."""
        dra = DRAState()
        state.data[NAME] = dra
        if not pod.spec.resource_claims:
            return Status(Code.SKIP)
        try:
            resolved = self._pod_claims(pod)
        except ClaimNameError as error:
            message = str(error)
            if self.minor_version < 28:
                message = (
                    f"waiting for dynamic resource controller to create the resourceclaim: {error}"
                )
            return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, message, NAME)
        if not resolved:
            return Status(Code.SKIP)

        scheduling_context = self.scheduling_contexts.get(pod.metadata.name, pod.metadata.namespace)
        if scheduling_context is not None and not is_controlled_by(
            scheduling_context, pod.metadata.uid
        ):
            return Status(
                Code.ERROR,
                f"PodSchedulingContext object with UID {scheduling_context.metadata.uid} is not "
                f"owned by Pod {pod.metadata.namespace}/{pod.metadata.name}",
                NAME,
            )
        dra.scheduling_context = scheduling_context

        selectors: list[CompiledNodeSelector | None] = []
        info: list[ResourceClaimSchedulingStatus | None] = []
        for pod_claim_name, claim in resolved:
            allocation = claim.status.allocation
            if claim.mode == AllocationMode.IMMEDIATE and allocation is None:
                return self._unresolvable("unallocated immediate resourceclaim")
            if claim.status.deallocation_requested:
                return self._unresolvable("resourceclaim must be reallocated")
            if (
                allocation is not None
                and not claim.can_be_reserved()
                and not claim.reserved_for_uid(pod.metadata.uid)
            ):
                return self._unresolvable("resourceclaim in use")
            selector: CompiledNodeSelector | None = None
            entry: ResourceClaimSchedulingStatus | None = None
            try:
                if allocation is not None:
                    if allocation.available_on_nodes is not None:
                        selector = compile_node_selector(allocation.available_on_nodes)
                else:
                    resource_class = self.classes.get(claim.spec.resource_class_name)
                    if resource_class is None:
                        message = f"resource class {claim.spec.resource_class_name} does not exist"
                        if self.minor_version < 29:
                            return Status(Code.ERROR, message, NAME)
                        return self._unresolvable(message)
                    if resource_class.suitable_nodes is not None:
                        selector = compile_node_selector(resource_class.suitable_nodes)
                    if scheduling_context is not None:
                        entry = scheduling_context.claim_status(pod_claim_name)
            except SelectorError as error:
                return Status(Code.ERROR, str(error), NAME)
            selectors.append(selector)
            info.append(entry)

        dra.claims = [claim for _, claim in resolved]
        dra.pod_claim_names = [name for name, _ in resolved]
        dra.selectors = selectors
        dra.info = info
        return SUCCESS

    def filter(self, state: CycleState, pod: Pod, alive: BoolArray) -> FilterResult:
        """Reject nodes where allocated claims are unavailable or pending claims cannot go.

        Claims are checked in pod order per node: a pending claim that rejects a
        node ends that node's check at once, so the allocated claims that were
        unavailable there are not recorded as PostFilter candidates.
        """
        result = FilterResult()
        dra: DRAState = state.data[NAME]
        if not dra.claims:
            return result
        table = self.table
        decided = np.zeros(len(table), dtype=bool)
        unavailable: list[tuple[int, BoolArray]] = []
        for index, claim in enumerate(dra.claims):
            selector = dra.selectors[index]
            if claim.allocated:
                if selector is not None:
                    unavailable.append((index, ~selector.mask(table.labels)))
                continue
            if claim.mode != AllocationMode.WAIT_FOR_FIRST_CONSUMER:
                result.reject(
                    alive & ~decided,
                    Code.ERROR,
                    f"internal error, unexpected allocation mode {claim.spec.allocation_mode}",
                )
                decided |= alive
                continue
            if selector is not None:
                excluded = alive & ~decided & ~selector.mask(table.labels)
                result.reject(
                    excluded,
                    Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                    "excluded by resource class node filter",
                )
                decided |= excluded
            entry = dra.info[index]
            if entry is not None and entry.unsuitable_nodes:
                unsuitable = alive & ~decided & table.mask_of(entry.unsuitable_nodes)
                result.reject(
                    unsuitable,
                    Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                    "resourceclaim cannot be allocated for the node (unsuitable)",
                )
                decided |= unsuitable

        if not unavailable:
            return result
        open_nodes = alive & ~decided
        counts = np.zeros(len(table), dtype=np.int64)
        masks = []
        for index, column in unavailable:
            mask = open_nodes & column
            counts += mask
            masks.append((index, mask))
        rejected = counts > 0
        self._record_unavailable(dra, masks, counts)
        result.reject(
            rejected, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, "resourceclaim not available on the node"
        )
        return result

    def _record_unavailable(
        self, dra: DRAState, masks: list[tuple[int, BoolArray]], counts: np.ndarray
    ) -> None:
        if self.intended_candidates:
            for index, mask in masks:
                if mask.any() and dra.claims[index].mode == AllocationMode.WAIT_FOR_FIRST_CONSUMER:
                    dra.unavailable_claims.add(index)
            return
        # Kubernetes 1.27-1.29 loop over positions 0..len(U)-1 of the unavailable
        # list U and test the pod's claim at that position, not U's members: when
        # any of the pod's first len(U) claims is WaitForFirstConsumer, all of U
        # becomes a candidate (Immediate claims included).
        wffc_prefix = np.zeros(len(dra.claims) + 1, dtype=bool)
        for position, claim in enumerate(dra.claims):
            is_wffc = claim.mode == AllocationMode.WAIT_FOR_FIRST_CONSUMER
            wffc_prefix[position + 1] = wffc_prefix[position] or is_wffc
        recorded_nodes = wffc_prefix[np.minimum(counts, len(dra.claims))]
        for index, mask in masks:
            if (mask & recorded_nodes).any():
                dra.unavailable_claims.add(index)

    # ----------------------------------------------------------------------------------
    # PostFilter, PreScore, Reserve, Unreserve, PostBind
    # ----------------------------------------------------------------------------------

    def post_filter(self, state: CycleState, pod: Pod) -> Generator[Any, Any, Status]:
        """Ask for deallocation of one claim that made nodes fail and that no other pod uses."""
        dra: DRAState | None = state.data.get(NAME)
        if dra is None or not dra.claims:
            return Status(Code.UNSCHEDULABLE, "no new claims to deallocate", NAME)
        candidates = sorted(dra.unavailable_claims)
        # Go iterates the candidate set in random order.
        order: list[int] = [int(i) for i in self.rng.permutation(len(candidates))]
        for position in order:
            index = candidates[int(position)]
            claim = dra.claims[index]
            reserved = claim.status.reserved_for
            if reserved and not (len(reserved) == 1 and reserved[0].uid == pod.metadata.uid):
                continue
            context = dra.scheduling_context
            if self.minor_version >= 29 and context is not None and context.spec.selected_node:
                # Stop asking the driver to allocate before asking it to deallocate,
                # otherwise it may allocate again for the old node.
                dra.selected_node = ""
                try:
                    yield from self._publish(dra, pod)
                except APIError as error:
                    return Status(Code.ERROR, str(error), NAME)
            request = claim.with_status(deallocation_requested=True, reserved_for=())
            try:
                yield from self.client.update_status(request, reason="request deallocation")
            except APIError as error:
                return Status(Code.ERROR, str(error), NAME)
            return SUCCESS
        return Status(Code.UNSCHEDULABLE, "still not schedulable", NAME)

    def pre_score(self, state: CycleState, pod: Pod, rows: np.ndarray) -> Status:
        """Remember the feasible nodes as potential nodes (a random 128 when there are more)."""
        dra: DRAState | None = state.data.get(NAME)
        if dra is None:
            return SUCCESS
        dra.pre_scored = True
        if not dra.claims or all(claim.allocated for claim in dra.claims):
            return SUCCESS
        all_names = self.table.names
        names = [all_names[row] for row in rows.tolist()]
        context = dra.scheduling_context
        if context is not None and set(context.spec.potential_nodes).issuperset(names):
            return SUCCESS
        if len(names) > POD_SCHEDULING_NODE_LIST_MAX_SIZE:
            chosen = self.rng.choice(len(names), POD_SCHEDULING_NODE_LIST_MAX_SIZE, replace=False)
            names = [names[int(i)] for i in chosen]
        dra.potential_nodes = tuple(sorted(names))
        return SUCCESS

    def reserve(self, state: CycleState, pod: Pod, node: str) -> Generator[Any, Any, Status]:
        """Reserve allocated claims for the pod and ask drivers to allocate pending ones."""
        dra: DRAState | None = state.data.get(NAME)
        if dra is None or not dra.claims:
            return SUCCESS
        pending = with_info = 0
        for index, claim in enumerate(dra.claims):
            if claim.allocated:
                if claim.reserved_for_uid(pod.metadata.uid):
                    continue
                # The PreFilter copy carries its resourceVersion: a newer write makes this 409.
                reserved = (*claim.status.reserved_for, pod_consumer_reference(pod))
                try:
                    yield from self.client.update_status(
                        claim.with_status(reserved_for=reserved), reason="reserve for pod"
                    )
                except APIError as error:
                    return Status(Code.ERROR, str(error), NAME)
            else:
                pending += 1
                context = dra.scheduling_context
                if context is not None and context.claim_status(dra.pod_claim_names[index]):
                    with_info += 1
        if pending == 0:
            return SUCCESS

        context = dra.scheduling_context
        if self.minor_version >= 29:
            needs_node_info = not dra.pre_scored
        else:
            needs_node_info = context is None or not context.spec.potential_nodes
        if needs_node_info and (context is None or node not in context.spec.potential_nodes):
            dra.potential_nodes = (node,)

        waiting = Code.PENDING if self.minor_version >= 29 else Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        if (pending == 1 or with_info == pending) and (
            self.minor_version < 29 or context is None or context.spec.selected_node != node
        ):
            dra.selected_node = node
            try:
                yield from self._publish(dra, pod, force_write=self.minor_version < 29)
            except APIError as error:
                return Status(Code.ERROR, str(error), NAME)
            return Status(waiting, "waiting for resource driver to allocate resource", NAME)
        try:
            yield from self._publish(dra, pod)
        except APIError as error:
            return Status(Code.ERROR, str(error), NAME)
        return Status(waiting, "waiting for resource driver to provide information", NAME)

    def unreserve(self, state: CycleState, pod: Pod, node: str) -> Generator[Any, Any, None]:
        """Remove the pod from claims that were reserved for it at PreFilter time."""
        dra: DRAState | None = state.data.get(NAME)
        if dra is None:
            return
        uid = pod.metadata.uid
        for claim in dra.claims:
            if not claim.allocated or not claim.reserved_for_uid(uid):
                continue
            remaining = tuple(ref for ref in claim.status.reserved_for if ref.uid != uid)
            try:
                yield from self.client.update_status(
                    claim.with_status(reserved_for=remaining), reason="unreserve after failed cycle"
                )
            except APIError as error:
                # The next attempt tries again; the real plugin only logs this.
                logger.debug("unreserve of %s failed: %s", claim.key, error)

    def post_bind(self, state: CycleState, pod: Pod, node: str) -> Generator[Any, Any, None]:
        """Delete the pod's PodSchedulingContext; errors are ignored, as in the real plugin."""
        dra: DRAState | None = state.data.get(NAME)
        if dra is None or not dra.claims:
            return
        try:
            yield from self.client.delete(
                "PodSchedulingContext",
                pod.metadata.name,
                pod.metadata.namespace,
                reason="pod is bound",
            )
        except APIError as error:
            logger.debug("deleting PodSchedulingContext of %s failed: %s", pod.metadata.name, error)

    # ----------------------------------------------------------------------------------
    # Helpers
    # ----------------------------------------------------------------------------------

    def _unresolvable(self, message: str) -> Status:
        return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, message, NAME)

    def forget_pod(self, uid: str) -> None:
        """Drop what the plugin remembers about a deleted pod (its cached claim names)."""
        self._claim_names_cache.pop(uid, None)

    def _claim_names(self, pod: Pod) -> frozenset[str]:
        """Return the names of the claims the pod refers to so far (cached per pod object)."""
        cached = self._claim_names_cache.get(pod.metadata.uid)
        if cached is not None and cached[0] is pod:
            return cached[1]
        found = frozenset(
            resolved.claim_name for resolved in self._resolve_claims(pod, skip_unresolvable=True)
        )
        if len(self._claim_names_cache) >= CLAIM_NAMES_CACHE_SIZE:
            self._claim_names_cache.clear()
        self._claim_names_cache[pod.metadata.uid] = (pod, found)
        return found

    def _resolve_claims(self, pod: Pod, *, skip_unresolvable: bool) -> Iterator[ResolvedClaim]:
        """Yield the claim of each pod claim in pod order, leaving out entries that need none.

        The generator resolves one entry per step, so a caller that checks each
        claim before taking the next raises the error of the first bad entry.

        Raises:
            ClaimNameError: an entry cannot be resolved and `skip_unresolvable` is False.
        """
        for pod_claim in pod.spec.resource_claims:
            try:
                resolved = resolve_claim_name(pod, pod_claim, legacy_names=self._legacy_claim_names)
            except ClaimNameError:
                if skip_unresolvable:
                    continue
                raise
            if resolved is not None:
                yield resolved

    def _pod_claims(self, pod: Pod) -> list[tuple[str, ResourceClaim]]:
        """Resolve and fetch every claim of the pod from the informer, in pod order.

        Raises:
            ClaimNameError: a claim is not created yet, is missing, is being
                deleted or belongs to another pod.
        """
        resolved_claims: list[tuple[str, ResourceClaim]] = []
        for resolved in self._resolve_claims(pod, skip_unresolvable=False):
            claim = self.claims.get(resolved.claim_name, pod.metadata.namespace)
            if claim is None:
                raise ClaimNameError(f'resourceclaim "{resolved.claim_name}" not found')
            if claim.deleting:
                raise ClaimNameError(f'resourceclaim "{resolved.claim_name}" is being deleted')
            if not check_owner(pod, claim, resolved):
                raise ClaimNameError(
                    f"ResourceClaim {pod.metadata.namespace}/{resolved.claim_name} was not "
                    f"created for pod {pod.metadata.namespace}/{pod.metadata.name} "
                    "(pod is not owner)"
                )
            resolved_claims.append((resolved.pod_claim_name, claim))
        return resolved_claims

    def _publish(
        self, dra: DRAState, pod: Pod, *, force_write: bool = False
    ) -> Generator[Any, Any, None]:
        """Create or update the PodSchedulingContext with the dirty spec fields.

        Raises:
            APIError: the write failed (in 1.29 a conflict is retried once with
                server-side apply first).
        """
        if dra.selected_node is None and dra.potential_nodes is None and not force_write:
            return
        context = dra.scheduling_context
        if context is None:
            owner = OwnerReference(
                api_version="v1",
                kind="Pod",
                name=pod.metadata.name,
                uid=pod.metadata.uid,
                controller=True,
                block_owner_deletion=True if self.minor_version >= 29 else None,
            )
            created = PodSchedulingContext(
                metadata=ObjectMeta(
                    name=pod.metadata.name,
                    namespace=pod.metadata.namespace,
                    owner_references=(owner,),
                ),
                spec=PodSchedulingContextSpec(
                    selected_node=dra.selected_node or "",
                    potential_nodes=dra.potential_nodes or (),
                ),
            )
            yield from self.client.create(created, reason="start negotiation")
        else:
            spec = context.spec
            if dra.selected_node is not None:
                spec = spec.model_copy(update={"selected_node": dra.selected_node})
            if dra.potential_nodes is not None:
                spec = spec.model_copy(update={"potential_nodes": dra.potential_nodes})
            try:
                yield from self.client.update(
                    context.model_copy(update={"spec": spec}), reason="update negotiation"
                )
            except Conflict:
                if self.minor_version < 29:
                    raise
                patch = {
                    "spec": {
                        "selectedNode": spec.selected_node or None,
                        "potentialNodes": list(spec.potential_nodes) or None,
                    }
                }
                yield from self.client.patch(
                    "PodSchedulingContext",
                    pod.metadata.name,
                    pod.metadata.namespace,
                    patch,
                    patch_type="apply",
                    field_manager="kube-scheduler",
                    force=True,
                    reason="update negotiation (server-side apply after conflict)",
                )
        dra.selected_node = None
        dra.potential_nodes = None
