"""The garbage collector of kube-controller-manager, for the kinds DRA creates on behalf of pods.

Objects point at the objects they belong to with `metadata.ownerReferences`.
When an owner disappears, the garbage collector deletes its dependents: a
ResourceClaim generated from a template goes with its pod, and so does the
pod's PodSchedulingContext. An ownerReference to a UID that no longer exists,
or never existed, is treated the same way. Owners deleted with the Foreground
or Orphan propagation policy wait, behind a finalizer, until the collector has
deleted or released their dependents.

The simulated API server runs with `synchronous_gc=False`, so this component
is the only one that deletes dependents in a simulation, and every deletion it
makes is an API request with latency, like any other component's.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Generator
from typing import Any

import simpy

from sim.api.errors import APIError, Conflict, NotFound
from sim.api.server import FINALIZER_FOREGROUND_DELETION, FINALIZER_ORPHAN
from sim.api.types import OwnerReference, TopLevelObject
from sim.cluster.client import (
    KUBE_CONTROLLER_MANAGER,
    APIClient,
    resource_name,
    shared_informer,
)
from sim.cluster.config import GarbageCollectorConfig
from sim.cluster.workqueue import WorkQueue, log_retry
from sim.cluster.world import World

logger = logging.getLogger(__name__)

COMPONENT = "garbage-collector"
"""Component name in the `api_requests` table and in the random stream names."""

OWNER_KINDS = ("Pod", "ResourceClaim", "PodSchedulingContext")
"""Kinds whose objects the collector watches; any of them may own other objects."""

DEPENDENT_KINDS = ("ResourceClaim", "PodSchedulingContext")
"""Kinds whose objects are deleted when their owners are gone."""

OWNER_UID_INDEX = "owner-uid"

DEFAULT_WORKERS = 20
"""Parallel deletions: kube-controller-manager's `--concurrent-gc-syncs` default."""

DEFAULT_QPS = 20.0
"""Client request rate: kube-controller-manager's `--kube-api-qps` default, requests/s."""

DEFAULT_BURST = 30
"""Client burst: kube-controller-manager's `--kube-api-burst` default, requests."""

ABSENT_OWNER_CACHE_SIZE = 500
"""UIDs of owners known to be gone, remembered so that their dependents need no owner lookup."""

DEPENDENT_PREFIX = "dependent:"
FOREGROUND_PREFIX = "foreground:"
ORPHAN_PREFIX = "orphan:"


def _owner_uids(obj: TopLevelObject) -> list[str]:
    return [ref.uid for ref in obj.metadata.owner_references]


def _object_key(kind: str, namespace: str, name: str) -> str:
    return f"{kind}:{namespace}/{name}"


def _split_object_key(key: str) -> tuple[str, str, str]:
    kind, _, rest = key.partition(":")
    namespace, _, name = rest.rpartition("/")
    return kind, namespace, name


class GarbageCollector:
    """kube-controller-manager's garbage collector (`pkg/controller/garbagecollector`), simplified.

    Modelled:
        * Informers on Pods, ResourceClaims and PodSchedulingContexts. Every
          object in them is an owner the collector tracks, and the
          ResourceClaims and PodSchedulingContexts are the dependents it
          deletes.
        * Deletion of dependents with Background propagation, a delay after
          the owner's delete event arrives (`GarbageCollectorConfig.delay_s`,
          drawn per dependent), and a UID precondition so that a new object
          of the same name is never hit.
        * Dangling ownerReferences: an owner UID the informers do not hold is
          looked up with a live GET; if the object is missing or has another
          UID, the reference is dangling. Owners found missing are cached
          (500 UIDs), as the real collector's absent-owner cache does.
        * A dependent that still has a live owner only loses its dangling
          references (an update).
        * Foreground deletion: the dependents of an owner holding the
          `foregroundDeletion` finalizer are deleted, then the finalizer is
          removed through `APIServer.finish_foreground_deletion` once no
          dependent with `blockOwnerDeletion` remains. Orphan deletion goes
          through `APIServer.finish_orphan_deletion`.
        * `workers` parallel workers on one rate-limited work queue, and a
          client with the kube-controller-manager QPS limit.

    Simplified:
        * The dependency graph is the informers' contents, not a graph of every
          kind the API server serves. Pods are owners only: a pod whose owner
          (for example a Job) is missing is never deleted.
        * Dependents of a foreground-deleted owner are deleted with Background
          propagation, and their own dependents follow through the normal path.
        * The finalizer removals by `finish_foreground_deletion` and
          `finish_orphan_deletion` take one request latency but bypass the
          client's rate limiter.

    Not modelled:
        * Dependents of kinds registered at run time (GenericObject kinds such
          as driver parameter objects) are not collected in the background;
          only a foreground deletion reaches them, through the API server's
          own dependents index.
    """

    def __init__(
        self,
        world: World,
        config: GarbageCollectorConfig | None = None,
        *,
        workers: int = DEFAULT_WORKERS,
        qps: float = DEFAULT_QPS,
        burst: int = DEFAULT_BURST,
    ) -> None:
        self.world = world
        self.config = config or world.config.garbage_collector
        self.workers = workers
        self.client = APIClient(world, COMPONENT, qps=qps, burst=burst)
        self.queue = WorkQueue(world.env, "garbage_collector_attempt_to_delete")
        self.informers = {
            kind: shared_informer(world, KUBE_CONTROLLER_MANAGER, kind) for kind in OWNER_KINDS
        }
        self._delay_rng = world.streams.stream(f"{COMPONENT}/delay")
        self._latency_rng = world.streams.stream(f"{COMPONENT}/finalizer-requests")
        self._present: dict[str, tuple[str, str, str]] = {}
        """UID -> (kind, namespace, name) of every object the informers hold."""
        self._absent_owners: OrderedDict[str, None] = OrderedDict()
        self._started = False

        for kind, informer in self.informers.items():
            if kind in DEPENDENT_KINDS:
                informer.add_index(OWNER_UID_INDEX, _owner_uids)
            informer.add_handler(
                self._handler(kind, self._on_upsert),
                self._update_handler(kind),
                self._handler(kind, self._on_delete),
            )

    def start(self) -> None:
        """Start the informers (owners first) and the workers."""
        if self._started:
            return
        self._started = True
        for informer in self.informers.values():
            informer.start()
        for _ in range(self.workers):
            self.world.env.process(self._run_worker())
        logger.info("garbage collector started: %d workers", self.workers)

    # ----------------------------------------------------------------------------------
    # Event handlers: they only queue keys, so they never wait
    # ----------------------------------------------------------------------------------

    def _handler(
        self, kind: str, handle: Callable[[str, TopLevelObject], None]
    ) -> Callable[[Any], None]:
        return lambda obj: handle(kind, obj)

    def _update_handler(self, kind: str) -> Callable[[Any, Any], None]:
        return lambda _old, obj: self._on_upsert(kind, obj)

    def _on_upsert(self, kind: str, obj: TopLevelObject) -> None:
        meta = obj.metadata
        self._present[meta.uid] = (kind, meta.namespace, meta.name)
        self._absent_owners.pop(meta.uid, None)
        key = _object_key(kind, meta.namespace, meta.name)

        if obj.deleting and FINALIZER_FOREGROUND_DELETION in meta.finalizers:
            self.queue.add(FOREGROUND_PREFIX + key)
        if obj.deleting and FINALIZER_ORPHAN in meta.finalizers:
            self.queue.add(ORPHAN_PREFIX + key)

        if kind in DEPENDENT_KINDS and any(
            ref.uid not in self._present for ref in meta.owner_references
        ):
            self._schedule_dependent(key)

    def _on_delete(self, kind: str, obj: TopLevelObject) -> None:
        meta = obj.metadata
        if self._present.get(meta.uid) == (kind, meta.namespace, meta.name):
            del self._present[meta.uid]

        dependents = [
            (dependent_kind, dependent)
            for dependent_kind in DEPENDENT_KINDS
            for dependent in self.informers[dependent_kind].by_index(OWNER_UID_INDEX, meta.uid)
        ]
        if dependents:
            self._remember_absent(meta.uid)
        for dependent_kind, dependent in dependents:
            self._schedule_dependent(
                _object_key(dependent_kind, dependent.metadata.namespace, dependent.metadata.name)
            )

        # An owner in foreground deletion may be waiting for this object to go.
        for ref in meta.owner_references:
            owner = self._present.get(ref.uid)
            if owner is not None:
                self.queue.add(FOREGROUND_PREFIX + _object_key(*owner))

    def _schedule_dependent(self, key: str) -> None:
        delay = self.config.delay_s.sample(self._delay_rng)
        self.queue.add_after(DEPENDENT_PREFIX + key, delay)

    def _remember_absent(self, uid: str) -> None:
        self._absent_owners[uid] = None
        self._absent_owners.move_to_end(uid)
        while len(self._absent_owners) > ABSENT_OWNER_CACHE_SIZE:
            self._absent_owners.popitem(last=False)

    # ----------------------------------------------------------------------------------
    # Workers
    # ----------------------------------------------------------------------------------

    def _run_worker(self) -> Generator[simpy.Event, Any, None]:
        yield from self.queue.work(self._process, (APIError,), self._log_retry)

    def _log_retry(self, key: str, error: Exception, retries: int) -> None:
        level = logging.INFO if retries == 0 else logging.DEBUG
        log_retry(logger, level, self.world.now, key, retries, error)

    def _process(self, key: str) -> Generator[simpy.Event, Any, None]:
        prefix, _, object_key = key.partition(":")
        kind, namespace, name = _split_object_key(object_key)
        if prefix + ":" == DEPENDENT_PREFIX:
            yield from self.attempt_to_delete(kind, namespace, name)
        elif prefix + ":" == FOREGROUND_PREFIX:
            yield from self.process_foreground_deletion(kind, namespace, name)
        elif prefix + ":" == ORPHAN_PREFIX:
            yield from self.process_orphan_deletion(kind, namespace, name)
        else:
            raise ValueError(f"unexpected garbage collector work queue key {key!r}")

    # ----------------------------------------------------------------------------------
    # Dependents
    # ----------------------------------------------------------------------------------

    def attempt_to_delete(
        self, kind: str, namespace: str, name: str
    ) -> Generator[simpy.Event, Any, None]:
        """Delete a dependent whose owners are all gone, or drop its dangling references."""
        obj: TopLevelObject | None = self.informers[kind].get(name, namespace)
        if obj is None or obj.deleting or not obj.metadata.owner_references:
            return

        dangling: list[OwnerReference] = []
        for ref in obj.metadata.owner_references:
            exists = yield from self._owner_exists(ref, namespace)
            if not exists:
                dangling.append(ref)
        if not dangling:
            return

        if len(dangling) < len(obj.metadata.owner_references):
            dangling_uids = {ref.uid for ref in dangling}
            remaining = tuple(
                ref for ref in obj.metadata.owner_references if ref.uid not in dangling_uids
            )
            yield from self.client.update(
                obj.with_meta(owner_references=remaining),
                reason="remove dangling owner references",
            )
            return

        try:
            yield from self.client.delete(
                kind,
                name,
                namespace,
                propagation_policy="Background",
                uid_precondition=obj.metadata.uid,
                reason="owner is gone",
            )
        except (NotFound, Conflict):
            # Gone already, or replaced by a new object of the same name.
            return
        logger.debug(
            "t=%.6f deleted %s %s/%s: owner is gone", self.world.now, kind, namespace, name
        )

    def _owner_exists(
        self, ref: OwnerReference, namespace: str
    ) -> Generator[simpy.Event, Any, bool]:
        """Decide whether a reference's owner exists, with a live GET when informers lack it."""
        if ref.uid in self._absent_owners:
            return False
        if ref.uid in self._present:
            return True
        # The owner may be of an unwatched kind, or the informer has not caught up yet.
        try:
            owner: TopLevelObject = yield from self.client.get(
                ref.kind, ref.name, namespace, reason="look up owner"
            )
        except NotFound:
            self._remember_absent(ref.uid)
            return False
        if owner.metadata.uid != ref.uid:
            self._remember_absent(ref.uid)
            return False
        return True

    # ----------------------------------------------------------------------------------
    # Owners deleted with Foreground or Orphan propagation
    # ----------------------------------------------------------------------------------

    def process_foreground_deletion(
        self, kind: str, namespace: str, name: str
    ) -> Generator[simpy.Event, Any, None]:
        """Delete the dependents of an owner in foreground deletion, then release the owner."""
        owner: TopLevelObject | None = self.informers[kind].get(name, namespace)
        if owner is None or FINALIZER_FOREGROUND_DELETION not in owner.metadata.finalizers:
            return
        owner_uid = owner.metadata.uid
        for dependent in self.world.api.dependents_of(owner_uid):
            if dependent.deleting:
                continue
            others = [r for r in dependent.metadata.owner_references if r.uid != owner_uid]
            alive = []
            for ref in others:
                exists = yield from self._owner_exists(ref, dependent.metadata.namespace)
                if exists:
                    alive.append(ref)
            meta = dependent.metadata
            if alive:
                yield from self.client.update(
                    dependent.with_meta(owner_references=tuple(alive)),
                    reason="remove reference to owner in foreground deletion",
                )
                continue
            try:
                yield from self.client.delete(
                    dependent.KIND or dependent.kind,
                    meta.name,
                    meta.namespace,
                    uid_precondition=meta.uid,
                    reason="owner deleted in foreground",
                )
            except (NotFound, Conflict):
                continue
        # The last blocking dependent's delete event queues the owner again.
        yield from self._finish_with_helper(
            kind,
            namespace,
            name,
            self.world.api.finish_foreground_deletion,
            "finish foreground deletion",
        )

    def process_orphan_deletion(
        self, kind: str, namespace: str, name: str
    ) -> Generator[simpy.Event, Any, None]:
        """Remove the references to an owner deleted with Orphan, then its finalizer."""
        owner: TopLevelObject | None = self.informers[kind].get(name, namespace)
        if owner is None or FINALIZER_ORPHAN not in owner.metadata.finalizers:
            return
        yield from self._finish_with_helper(
            kind, namespace, name, self.world.api.finish_orphan_deletion, "orphan dependents"
        )

    def _finish_with_helper(
        self,
        kind: str,
        namespace: str,
        name: str,
        helper: Callable[[str, str, str], bool],
        reason: str,
    ) -> Generator[simpy.Event, Any, None]:
        """Call an API server finalizer helper after one request latency.

        The request is recorded in `api_requests` only when the helper wrote
        something; a helper that finds the owner gone or still blocked writes
        nothing.
        """
        latency = self.world.config.request_latency_s.sample(self._latency_rng)
        if latency > 0:
            yield self.world.env.timeout(latency)
        self.world.current_actor = COMPONENT
        self.world.current_reason = reason
        try:
            done = helper(kind, name, namespace)
        except NotFound:
            return
        if not done:
            logger.debug(
                "t=%.6f %s %s/%s: still waiting for dependents",
                self.world.now,
                kind,
                namespace,
                name,
            )
            return
        self.world.recorder.api_request(
            self.world.now,
            COMPONENT,
            "patch",
            resource_name(kind),
            namespace,
            name,
            "",
            200,
            latency,
            True,
        )
        logger.debug("t=%.6f %s: %s %s/%s", self.world.now, reason, kind, namespace, name)
