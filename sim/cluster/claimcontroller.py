"""The resourceclaim controller of kube-controller-manager.

A pod that lists a ResourceClaimTemplate in `spec.resourceClaims` needs a claim
of its own. This controller creates that claim, owned by the pod, and (1.28+)
records its generated name in `pod.status.resourceClaimStatuses`. It also keeps
`status.reservedFor` of every claim accurate. Consumers that were deleted,
replaced by a new pod of the same name or (1.28+) finished are removed from
it. A WaitForFirstConsumer claim that loses its last consumer gets
`deallocationRequested` (1.28+), and a generated claim whose pod is done is
deleted (1.28+). For pods that were bound without kube-scheduler (1.28+) it
plays the scheduler's part: it creates a PodSchedulingContext that only names
the pod's node, and reserves already allocated claims for the pod.

The controller reads objects from informers and writes through its own
`APIClient`; work is funnelled through one rate-limited work queue with keys
`pod:<namespace>/<name>` and `claim:<namespace>/<name>`.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Generator, Iterable
from typing import Any

import simpy

from sim.api.errors import APIError, Conflict, NotFound
from sim.api.types import (
    AllocationMode,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodResourceClaim,
    PodSchedulingContext,
    PodSchedulingContextSpec,
    ResourceClaim,
    ResourceClaimConsumerReference,
    ResourceClaimTemplate,
    is_controlled_by,
    pod_consumer_reference,
)
from sim.cluster.claims import ClaimNameError, check_owner, resolve_claim_name
from sim.cluster.client import KUBE_CONTROLLER_MANAGER, APIClient, Informer, shared_informer
from sim.cluster.config import ClaimControllerConfig
from sim.cluster.workqueue import WorkQueue, log_retry
from sim.cluster.world import World

logger = logging.getLogger(__name__)

COMPONENT = "resourceclaim-controller"
"""Component name in the `api_requests` table and in the random stream names."""

FIELD_MANAGER = "ResourceClaimController"
"""Server-side apply field manager of the pod status patch, as kube-controller-manager names it."""

POD_CLAIM_NAME_ANNOTATION = "resource.kubernetes.io/pod-claim-name"
"""Annotation (1.28+) tying a generated claim to its `pod.spec.resourceClaims[].name`."""

GENERATED_NAME_MAX_BASE_LENGTH = 57
"""Longest `<pod>-<entry>` base of a generated claim name.

Object names of generated claims stay within 63 characters: the base, an
optional hyphen and the 5 random characters the API server appends.
"""

POD_KEY_PREFIX = "pod:"
CLAIM_KEY_PREFIX = "claim:"
POD_CLAIM_INDEX = "claim"
"""Pod informer index: `<namespace>/<claim name>` of every claim the pod refers to."""
CLAIM_OWNER_INDEX = "pod-owner"
"""Claim informer index: UID of the pod that controls the claim."""

MUTATION_CACHE_TTL_S = 3600.0
"""Lifetime of a mutation cache entry, seconds (client-go's value: one hour)."""
MUTATION_CACHE_MAX_ENTRIES = 100
"""Size of client-go's mutation cache LRU."""


class SyncError(Exception):
    """A sync failed for a reason other than an API error; the key is retried with backoff."""


# --------------------------------------------------------------------------------------
# Helpers: names, pod state, ownership
# --------------------------------------------------------------------------------------


def generated_claim_base_name(pod_name: str, pod_claim_name: str) -> str:
    """Return `<pod>-<entry>`, shortened to at most 57 characters.

    When the joined name is too long, both parts are cut by the same factor
    (57 / length of the joined name), so each keeps a share proportional to
    its length. Cutting only the end, as the API server would, could drop the
    entry name completely when the pod name is long.

    Each part keeps at least one character, and the pod part gives way when
    that pushes the total over 57. The real controller truncates with the
    plain factor, so a one-character pod name with a 63-character entry
    produces a name starting with "-", which the API server rejects.
    """
    base = f"{pod_name}-{pod_claim_name}"
    if len(base) <= GENERATED_NAME_MAX_BASE_LENGTH:
        return base
    claim_length = max(1, len(pod_claim_name) * GENERATED_NAME_MAX_BASE_LENGTH // len(base))
    pod_length = max(
        1,
        min(
            len(pod_name) * GENERATED_NAME_MAX_BASE_LENGTH // len(base),
            GENERATED_NAME_MAX_BASE_LENGTH - 1 - claim_length,
        ),
    )
    return f"{pod_name[:pod_length]}-{pod_claim_name[:claim_length]}"


def generate_name_for(pod_name: str, pod_claim_name: str, minor_version: int) -> str:
    """Return the `generateName` of a claim created from a template (1.28+).

    1.28 uses the base name as it is, so the random suffix follows without a
    separator; 1.29 adds a hyphen before the suffix.
    """
    base = generated_claim_base_name(pod_name, pod_claim_name)
    return base if minor_version == 28 else base + "-"


def is_pod_done(pod: Pod) -> bool:
    """Whether the pod will certainly never run again: terminal phase, or deleted before binding."""
    return pod.done or (pod.deleting and not pod.spec.node_name)


def pod_needs_claims(pod: Pod, deleted: bool) -> tuple[bool, str]:
    """Return whether the pod may still use its claims, and why."""
    if deleted:
        return False, "pod got removed"
    if pod.done:
        return False, "pod has terminated"
    if pod.deleting and not pod.spec.node_name:
        return False, "pod got deleted before scheduling"
    return True, "pod might run"


def owning_pod(claim: ResourceClaim) -> OwnerReference | None:
    """Return the controlling ownerReference of the claim if it points at a pod."""
    for ref in claim.metadata.owner_references:
        if ref.controller and ref.api_version == "v1" and ref.kind == "Pod":
            return ref
    return None


def _claim_owner_index(claim: ResourceClaim) -> list[str]:
    ref = owning_pod(claim)
    return [ref.uid] if ref is not None else []


def _split_key(key: str) -> tuple[str, str, str]:
    prefix, _, rest = key.partition(":")
    namespace, _, name = rest.rpartition("/")
    return prefix + ":", namespace, name


# --------------------------------------------------------------------------------------
# Caches
# --------------------------------------------------------------------------------------


class DeletedPodCache:
    """LRU set of UIDs of pods the controller saw being deleted.

    A reservation for a UID in this set is dropped without asking the API
    server whether the pod still exists.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._uids: OrderedDict[str, None] = OrderedDict()

    def add(self, uid: str) -> None:
        """Remember a UID, evicting the least recently used one when full."""
        self._uids[uid] = None
        self._uids.move_to_end(uid)
        while len(self._uids) > self.max_entries:
            self._uids.popitem(last=False)

    def has(self, uid: str) -> bool:
        """Return whether the UID is remembered, counting a hit as a use."""
        if uid not in self._uids:
            return False
        self._uids.move_to_end(uid)
        return True

    def __len__(self) -> int:
        return len(self._uids)


class ClaimMutationCache:
    """Claims this controller created, overlaid on the claim informer (client-go's mutation cache).

    After a create, the informer may not have the new claim yet. If the pod
    status patch that records the name fails and the pod is synced again,
    the orphan must be found here, or a second claim would be created. An
    entry is dropped once the informer contains the same or a newer
    resourceVersion of the claim, after one hour, or when more than 100
    entries are remembered. As in client-go, a claim that is deleted before
    the informer ever held it stays in the cache until its entry expires.
    """

    def __init__(self, informer: Informer, env: simpy.Environment) -> None:
        self._informer = informer
        self._env = env
        # Claim key -> (claim, expiry time in s, UID of the owning pod or "").
        self._entries: OrderedDict[str, tuple[ResourceClaim, float, str]] = OrderedDict()

    def mutation(self, claim: ResourceClaim) -> None:
        """Remember a claim returned by the API server."""
        owner = owning_pod(claim)
        self._entries[claim.key] = (
            claim,
            float(self._env.now) + MUTATION_CACHE_TTL_S,
            owner.uid if owner is not None else "",
        )
        self._entries.move_to_end(claim.key)
        while len(self._entries) > MUTATION_CACHE_MAX_ENTRIES:
            self._entries.popitem(last=False)

    def by_owner_uid(self, uid: str) -> list[ResourceClaim]:
        """Return the claims controlled by the pod with this UID, newest copy of each."""
        self._expire()
        claims: list[ResourceClaim] = []
        seen: set[str] = set()
        for cached in self._informer.by_index(CLAIM_OWNER_INDEX, uid):
            seen.add(cached.key)
            claims.append(self._newer(cached))
        # Claims the informer has not delivered yet count too.
        for key, (claim, _expires, owner_uid) in self._entries.items():
            if owner_uid == uid and key not in seen:
                claims.append(claim)
        return claims

    def _newer(self, cached: ResourceClaim) -> ResourceClaim:
        entry = self._entries.get(cached.key)
        if entry is None:
            return cached
        remembered = entry[0]
        if int(cached.resource_version or 0) >= int(remembered.resource_version or 0):
            del self._entries[cached.key]
            return cached
        return remembered

    def _expire(self) -> None:
        # Entries are kept in the order of their expiry time (a refresh moves one to the end).
        now = float(self._env.now)
        while self._entries:
            key, (_claim, expires, _owner) = next(iter(self._entries.items()))
            if expires > now:
                return
            del self._entries[key]


# --------------------------------------------------------------------------------------
# The controller
# --------------------------------------------------------------------------------------


class ResourceClaimController:
    """kube-controller-manager's resourceclaim controller (`pkg/controller/resourceclaim`).

    Modelled:
        * Informers on Pods, ResourceClaims, ResourceClaimTemplates and
          PodSchedulingContexts (the last one without event handlers), a pod
          index by claim name and a claim index by owning pod UID.
        * The event handlers: which pod and claim keys each change queues,
          including the "pod does not need its claims any more" rule and the
          deleted-pod LRU.
        * `syncPod`: claims from templates, with the owner reference and the
          annotation. Names are deterministic in 1.27, and 1.28 and 1.29 use
          `generateName` without and with a trailing hyphen, shortening long
          names. Orphans are re-used through a mutation cache, the names go
          into `status.resourceClaimStatuses` with one server-side apply, and
          pods that already have `spec.nodeName` are handled.
        * `syncClaim`: removal of stale `reservedFor` entries (deleted LRU,
          informer, live GET), deallocation request of WaitForFirstConsumer
          claims, deletion of generated claims of finished pods.
        * The version differences of 1.27 and 1.28/1.29.
        * `workers` parallel workers on one client-go rate-limited work queue,
          and a client with the kube-controller-manager QPS limit.

    Simplified:
        * The `FailedResourceClaimCreation` warning event is a log record, not
          an Event object.

    Changed on purpose:
        * A finished pod with `spec.nodeName` gets no PodSchedulingContext and
          no reservation. The 1.28/1.29 code gives it both, so the release of
          its claims and its re-reservation undo each other for as long as
          the pod exists; `reserve_for_finished_pods` restores that.

    Not modelled:
        * Metrics of the controller and its CPU time (syncs take only the time
          of their API requests).
    """

    def __init__(self, world: World, config: ClaimControllerConfig | None = None) -> None:
        self.world = world
        self.config = config or world.config.claim_controller
        self.minor_version = world.config.version_tuple[1]
        self.client = APIClient(world, COMPONENT, qps=self.config.qps, burst=self.config.burst)
        self.queue = WorkQueue(world.env, "resource_claim")
        self.pods = shared_informer(world, KUBE_CONTROLLER_MANAGER, "Pod")
        self.claims = shared_informer(world, KUBE_CONTROLLER_MANAGER, "ResourceClaim")
        self.templates = shared_informer(world, KUBE_CONTROLLER_MANAGER, "ResourceClaimTemplate")
        self.scheduling_contexts = shared_informer(
            world, KUBE_CONTROLLER_MANAGER, "PodSchedulingContext"
        )
        self.deleted_pods = DeletedPodCache(self.config.deleted_pod_memory)
        self.claim_cache = ClaimMutationCache(self.claims, world.env)
        self._started = False

        self.pods.add_index(POD_CLAIM_INDEX, self._pod_claim_index)
        self.claims.add_index(CLAIM_OWNER_INDEX, _claim_owner_index)
        self.pods.add_handler(
            lambda pod: self._on_pod_event(pod, deleted=False),
            lambda _old, pod: self._on_pod_event(pod, deleted=False),
            lambda pod: self._on_pod_event(pod, deleted=True),
        )
        self.claims.add_handler(
            lambda claim: self._on_claim_event(claim, deleted=False),
            lambda _old, claim: self._on_claim_event(claim, deleted=False),
            lambda claim: self._on_claim_event(claim, deleted=True),
        )

    @property
    def legacy(self) -> bool:
        """Whether the 1.27 behaviour applies (deterministic names, no pod status, fewer duties)."""
        return self.minor_version < 28

    def start(self) -> None:
        """Start the informers (claims before pods, so pod handlers see claims) and the workers."""
        if self._started:
            return
        self._started = True
        self.templates.start()
        self.scheduling_contexts.start()
        self.claims.start()
        self.pods.start()
        for _ in range(self.config.workers):
            self.world.env.process(self._run_worker())
        logger.info(
            "resourceclaim controller started: Kubernetes 1.%d, %d workers",
            self.minor_version,
            self.config.workers,
        )

    # ----------------------------------------------------------------------------------
    # Event handlers: they only queue keys, so they never wait
    # ----------------------------------------------------------------------------------

    def _resolve(self, pod: Pod, pod_claim: PodResourceClaim) -> str | None:
        """Return the claim name of a pod claim; None when no claim is needed."""
        resolved = resolve_claim_name(pod, pod_claim, legacy_names=self.legacy)
        return None if resolved is None else resolved.claim_name

    def _pod_claim_index(self, pod: Pod) -> list[str]:
        keys = []
        for pod_claim in pod.spec.resource_claims:
            # 1.27 indexes only template entries.
            if self.legacy and not pod_claim.source.resource_claim_template_name:
                continue
            try:
                claim_name = self._resolve(pod, pod_claim)
            except ClaimNameError:
                continue
            if claim_name is not None:
                keys.append(f"{pod.metadata.namespace}/{claim_name}")
        return keys

    def _on_pod_event(self, pod: Pod, *, deleted: bool) -> None:
        if deleted and self.legacy:
            # 1.27 remembers every deleted pod, with or without claims.
            self.deleted_pods.add(pod.metadata.uid)
        if not pod.spec.resource_claims:
            return
        if deleted and not self.legacy:
            self.deleted_pods.add(pod.metadata.uid)

        needs_claims, reason = pod_needs_claims(pod, deleted)
        if not needs_claims:
            self._queue_claims_of(pod, reason)

        if self.legacy:
            # 1.27 syncs every pod that is not being deleted and has a template entry.
            if not pod.deleting and any(
                pod_claim.source.resource_claim_template_name
                for pod_claim in pod.spec.resource_claims
            ):
                self.queue.add(POD_KEY_PREFIX + pod.key)
            return

        needs_work, reason = self._pod_needs_work(pod)
        logger.debug("pod %s %s: %s", pod.key, "queued" if needs_work else "not queued", reason)
        if needs_work:
            self.queue.add(POD_KEY_PREFIX + pod.key)

    def _queue_claims_of(self, pod: Pod, reason: str) -> None:
        for pod_claim in pod.spec.resource_claims:
            try:
                claim_name = self._resolve(pod, pod_claim)
            except ClaimNameError:
                # The claim was never created, so there is no reservation to release.
                continue
            if claim_name is not None:
                logger.debug("pod %s (%s): checking claim %s", pod.key, reason, claim_name)
                self.queue.add(f"{CLAIM_KEY_PREFIX}{pod.metadata.namespace}/{claim_name}")

    def _pod_needs_work(self, pod: Pod) -> tuple[bool, str]:
        """Decide whether a pod must be synced (1.28+), and why."""
        if pod.deleting:
            return False, "pod is being deleted"
        config = self.config
        if is_pod_done(pod) and not (
            config.recreate_claims_for_finished_pods or config.reserve_for_finished_pods
        ):
            # NOTE: the 1.28/1.29 code reads as if it handled finished pods like running
            # ones (recreating deleted claims, reserving again); both loops are off by
            # default (see the config fields).
            return False, "pod is done"
        for pod_claim in pod.spec.resource_claims:
            try:
                resolved = resolve_claim_name(pod, pod_claim)
            except ClaimNameError:
                return True, f"claim name of entry {pod_claim.name!r} not recorded yet"
            if resolved is None:
                # The real controller stops scanning here, even if later entries need work.
                return False, "claim is not needed"
            claim: ResourceClaim | None = self.claims.get(
                resolved.claim_name, pod.metadata.namespace
            )
            if claim is None:
                if pod_claim.source.resource_claim_template_name:
                    return True, "must create ResourceClaim from template"
                return False, "claim is missing and must be created by the user"
            if not check_owner(pod, claim, resolved):
                return False, "conflicting claim needs to be removed by the user"
            if not pod.spec.node_name or not self._helps_bound_pod(pod):
                continue
            if claim.mode == AllocationMode.WAIT_FOR_FIRST_CONSUMER and not claim.allocated:
                scheduling = self.scheduling_contexts.get(pod.metadata.name, pod.metadata.namespace)
                if scheduling is None:
                    return True, "need to create PodSchedulingContext for scheduled pod"
                if scheduling.spec.selected_node != pod.spec.node_name:
                    return True, "need to update PodSchedulingContext for scheduled pod"
            if (
                claim.allocated
                and not claim.reserved_for_uid(pod.metadata.uid)
                and claim.can_be_reserved()
            ):
                return True, "need to reserve claim for pod"
        return False, "nothing to do"

    def _on_claim_event(self, claim: ResourceClaim, *, deleted: bool) -> None:
        if not deleted:
            # Also at start-up: every claim is checked for stale reservations.
            self.queue.add(CLAIM_KEY_PREFIX + claim.key)
            if self.legacy:
                return
        # A deleted claim may have to be created again; a changed one may let a bound pod progress.
        for pod in self.pods.by_index(POD_CLAIM_INDEX, claim.key):
            self._on_pod_event(pod, deleted=False)

    # ----------------------------------------------------------------------------------
    # Workers
    # ----------------------------------------------------------------------------------

    def _run_worker(self) -> Generator[simpy.Event, Any, None]:
        yield from self.queue.work(
            self._sync, (APIError, SyncError, ClaimNameError), self._log_retry
        )

    def _log_retry(self, key: str, error: Exception, retries: int) -> None:
        # Conflicts and vanished objects are routine races with stale caches: they are
        # logged at info level. Other first failures are warnings, retries debug.
        level = logging.DEBUG
        if retries == 0:
            routine = isinstance(error, Conflict | NotFound)
            level = logging.INFO if routine else logging.WARNING
        log_retry(logger, level, self.world.now, key, retries, error)

    def _sync(self, key: str) -> Generator[simpy.Event, Any, None]:
        prefix, namespace, name = _split_key(key)
        if prefix == POD_KEY_PREFIX:
            yield from self.sync_pod(namespace, name)
        elif prefix == CLAIM_KEY_PREFIX:
            yield from self.sync_claim(namespace, name)
        else:
            raise SyncError(f"unexpected work queue key {key!r}")

    # ----------------------------------------------------------------------------------
    # syncPod
    # ----------------------------------------------------------------------------------

    def sync_pod(self, namespace: str, name: str) -> Generator[simpy.Event, Any, None]:
        """Create missing claims of a pod, record their names, and help a pod that is bound."""
        pod: Pod | None = self.pods.get(name, namespace)
        if pod is None or pod.deleting:
            return

        created_names: dict[str, str] = {}
        for pod_claim in pod.spec.resource_claims:
            try:
                if self.legacy:
                    yield from self._handle_pod_claim_legacy(pod, pod_claim)
                else:
                    yield from self._handle_pod_claim(pod, pod_claim, created_names)
            except (APIError, SyncError) as error:
                # The real controller also emits this as a Warning event on the pod.
                raise SyncError(
                    f"FailedResourceClaimCreation: PodResourceClaim {pod_claim.name}: {error}"
                ) from error

        if self.legacy:
            return

        if created_names:
            yield from self._record_claim_names(pod, created_names)

        if pod.spec.node_name and self._helps_bound_pod(pod):
            yield from self._help_bound_pod(pod)

    def _helps_bound_pod(self, pod: Pod) -> bool:
        """Return whether the controller does the scheduler's part for a pod with `spec.nodeName`.

        The 1.28/1.29 code also does it for finished pods, which releases and
        reserves their claims in turn; `reserve_for_finished_pods` keeps that.
        """
        return self.config.reserve_for_finished_pods or not is_pod_done(pod)

    def _handle_pod_claim_legacy(
        self, pod: Pod, pod_claim: PodResourceClaim
    ) -> Generator[simpy.Event, Any, None]:
        """Create the claim `<pod>-<entry>` of a template entry (1.27)."""
        template_name = pod_claim.source.resource_claim_template_name
        if not template_name:
            return
        claim_name = f"{pod.metadata.name}-{pod_claim.name}"
        existing: ResourceClaim | None = self.claims.get(claim_name, pod.metadata.namespace)
        if existing is not None:
            if not is_controlled_by(existing, pod.metadata.uid):
                raise SyncError(
                    f"ResourceClaim {claim_name} was not created for the pod; "
                    "delete it so that the pod can get its own claim"
                )
            return
        template = self._template(pod, template_name)
        claim = self._claim_from_template(pod, pod_claim, template, name=claim_name)
        yield from self.client.create(claim, reason="create claim from template")

    def _handle_pod_claim(
        self, pod: Pod, pod_claim: PodResourceClaim, created_names: dict[str, str]
    ) -> Generator[simpy.Event, Any, None]:
        """Ensure a template entry has a claim (1.28+), adding its name to `created_names`."""
        source = pod_claim.source
        if not source.resource_claim_name and not source.resource_claim_template_name:
            raise SyncError(
                f"checking for claim before creating it: entry {pod_claim.name!r} has "
                "neither resourceClaimName nor resourceClaimTemplateName"
            )
        try:
            resolved = resolve_claim_name(pod, pod_claim)
        except ClaimNameError:
            pass  # no name recorded yet: look for an orphan or create the claim below
        else:
            if resolved is None:
                return
            recorded: ResourceClaim | None = self.claims.get(
                resolved.claim_name, pod.metadata.namespace
            )
            # A recorded claim that vanished or changed hands is created again.
            if recorded is not None:
                if check_owner(pod, recorded, resolved):
                    return
                logger.error(
                    "t=%.6f claim %s recorded for pod %s is no longer owned by it; "
                    "creating a new one",
                    self.world.now,
                    recorded.key,
                    pod.key,
                )

        template_name = source.resource_claim_template_name
        if not template_name:
            return

        # An orphan is a claim created earlier whose name never reached the pod status.
        claim: ResourceClaim | None = self._find_orphan(pod, pod_claim)
        if claim is None:
            template = self._template(pod, template_name)
            new_claim = self._claim_from_template(
                pod,
                pod_claim,
                template,
                generate_name=generate_name_for(
                    pod.metadata.name, pod_claim.name, self.minor_version
                ),
            )
            claim = yield from self.client.create(new_claim, reason="create claim from template")
            self.claim_cache.mutation(claim)
        else:
            logger.debug("pod %s: re-using orphaned claim %s", pod.key, claim.key)
        created_names[pod_claim.name] = claim.metadata.name

    def _find_orphan(self, pod: Pod, pod_claim: PodResourceClaim) -> ResourceClaim | None:
        deterministic_name = f"{pod.metadata.name}-{pod_claim.name}"
        for claim in self.claim_cache.by_owner_uid(pod.metadata.uid):
            annotation = claim.metadata.annotations.get(POD_CLAIM_NAME_ANNOTATION)
            if annotation is not None and annotation != pod_claim.name:
                continue
            # Without the annotation, only a claim of a 1.27 control plane qualifies.
            if annotation is None and claim.metadata.name != deterministic_name:
                continue
            return claim
        return None

    def _template(self, pod: Pod, template_name: str) -> ResourceClaimTemplate:
        template: ResourceClaimTemplate | None = self.templates.get(
            template_name, pod.metadata.namespace
        )
        if template is None:
            raise SyncError(
                f"ResourceClaimTemplate {pod.metadata.namespace}/{template_name} not found; "
                "create it, the pod is retried with backoff"
            )
        return template

    def _claim_from_template(
        self,
        pod: Pod,
        pod_claim: PodResourceClaim,
        template: ResourceClaimTemplate,
        *,
        name: str = "",
        generate_name: str = "",
    ) -> ResourceClaim:
        annotations = dict(template.spec.metadata.annotations)
        if not self.legacy:
            annotations[POD_CLAIM_NAME_ANNOTATION] = pod_claim.name
        owner = OwnerReference(
            api_version="v1",
            kind="Pod",
            name=pod.metadata.name,
            uid=pod.metadata.uid,
            controller=True,
            block_owner_deletion=True,
        )
        return ResourceClaim(
            metadata=ObjectMeta(
                name=name,
                generate_name=generate_name,
                namespace=pod.metadata.namespace,
                owner_references=(owner,),
                labels=dict(template.spec.metadata.labels),
                annotations=annotations,
            ),
            spec=template.spec.spec,
        )

    def _record_claim_names(
        self, pod: Pod, created_names: dict[str, str]
    ) -> Generator[simpy.Event, Any, None]:
        """Write the generated names into `pod.status.resourceClaimStatuses` (one apply patch)."""
        statuses = [
            {"name": pod_claim.name, "resourceClaimName": created_names[pod_claim.name]}
            for pod_claim in pod.spec.resource_claims
            if pod_claim.name in created_names
        ]
        patch = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod.metadata.name, "namespace": pod.metadata.namespace},
            "status": {"resourceClaimStatuses": statuses},
        }
        yield from self.client.patch(
            "Pod",
            pod.metadata.name,
            pod.metadata.namespace,
            patch,
            patch_type="apply",
            subresource="status",
            field_manager=FIELD_MANAGER,
            force=True,
            reason="record generated claim names",
        )

    def _help_bound_pod(self, pod: Pod) -> Generator[simpy.Event, Any, None]:
        """Do the scheduler's part for a pod that already has `spec.nodeName` (1.28+)."""
        for pod_claim in pod.spec.resource_claims:
            resolved = resolve_claim_name(pod, pod_claim)
            if resolved is None:
                continue
            claim: ResourceClaim | None = self.claims.get(
                resolved.claim_name, pod.metadata.namespace
            )
            if claim is None:
                # The claim event queues the pod again once the claim exists.
                return
            if not check_owner(pod, claim, resolved):
                raise SyncError(f"ResourceClaim {claim.key} was not created for pod {pod.key}")
            if claim.mode == AllocationMode.WAIT_FOR_FIRST_CONSUMER and not claim.allocated:
                yield from self._ensure_scheduling_context(pod)
                return
            if (
                claim.allocated
                and not claim.reserved_for_uid(pod.metadata.uid)
                and claim.can_be_reserved()
            ):
                reserved = claim.with_status(
                    reserved_for=(*claim.status.reserved_for, pod_consumer_reference(pod))
                )
                yield from self.client.update_status(reserved, reason="reserve claim for bound pod")

    def _ensure_scheduling_context(self, pod: Pod) -> Generator[simpy.Event, Any, None]:
        """Create or update the pod's PodSchedulingContext so that it selects the pod's node."""
        node_name = pod.spec.node_name
        scheduling: PodSchedulingContext | None = self.scheduling_contexts.get(
            pod.metadata.name, pod.metadata.namespace
        )
        if scheduling is None:
            # No potential nodes: negotiation is over, the driver only has to allocate.
            scheduling = PodSchedulingContext(
                metadata=ObjectMeta(
                    name=pod.metadata.name,
                    namespace=pod.metadata.namespace,
                    owner_references=(
                        OwnerReference(
                            api_version="v1",
                            kind="Pod",
                            name=pod.metadata.name,
                            uid=pod.metadata.uid,
                            controller=True,
                        ),
                    ),
                ),
                spec=PodSchedulingContextSpec(selected_node=node_name),
            )
            yield from self.client.create(
                scheduling, reason="create PodSchedulingContext for bound pod"
            )
            return
        if scheduling.spec.selected_node != node_name:
            updated = scheduling.model_copy(
                update={"spec": scheduling.spec.model_copy(update={"selected_node": node_name})}
            )
            yield from self.client.update(updated, reason="select node of bound pod")

    # ----------------------------------------------------------------------------------
    # syncClaim
    # ----------------------------------------------------------------------------------

    def sync_claim(self, namespace: str, name: str) -> Generator[simpy.Event, Any, None]:
        """Drop stale reservations of a claim, and delete a generated claim whose pod is done."""
        claim: ResourceClaim | None = self.claims.get(name, namespace)
        if claim is None:
            return

        reserved_for = claim.status.reserved_for
        valid = yield from self._valid_reservations(claim, reserved_for)
        if len(valid) < len(reserved_for):
            changes: dict[str, Any] = {"reserved_for": tuple(valid)}
            reason = "remove stale reservations"
            # Deallocating right after the last consumer left lets the next consumer
            # land on any node, and frees the device for other claims.
            if (
                not self.legacy
                and not valid
                and claim.mode == AllocationMode.WAIT_FOR_FIRST_CONSUMER
            ):
                changes["deallocation_requested"] = True
                reason = "remove stale reservations, request deallocation"
            yield from self.client.update_status(claim.with_status(**changes), reason=reason)

        if self.legacy or valid:
            return
        yield from self._delete_if_pod_done(claim)

    def _valid_reservations(
        self, claim: ResourceClaim, reserved_for: Iterable[ResourceClaimConsumerReference]
    ) -> Generator[simpy.Event, Any, list[ResourceClaimConsumerReference]]:
        valid = []
        for ref in reserved_for:
            if ref.api_group != "" or ref.resource != "pods":
                raise SyncError(
                    f"claim {claim.key}: unsupported reservedFor entry "
                    f"{ref.api_group or 'core'}/{ref.resource} {ref.name} (uid {ref.uid}); "
                    "only pods are supported"
                )
            keep = yield from self._pod_may_use_claim(claim, ref)
            if keep:
                valid.append(ref)
        return valid

    def _pod_may_use_claim(
        self, claim: ResourceClaim, ref: ResourceClaimConsumerReference
    ) -> Generator[simpy.Event, Any, bool]:
        """Decide whether a pod in `reservedFor` keeps its reservation."""
        if self.deleted_pods.has(ref.uid):
            return False
        pod: Pod | None = self.pods.get(ref.name, claim.metadata.namespace)
        if pod is None:
            # The informer may lag behind the writer of the reservation. Removing a
            # pod that is being scheduled would be wrong, so ask the API server.
            try:
                live: Pod = yield from self.client.get(
                    "Pod", ref.name, claim.metadata.namespace, reason="check reserved pod"
                )
            except NotFound:
                return False
            return live.metadata.uid == ref.uid
        if pod.metadata.uid != ref.uid:
            return False
        # 1.27 keeps the reservations of pods that finished.
        return self.legacy or not is_pod_done(pod)

    def _delete_if_pod_done(self, claim: ResourceClaim) -> Generator[simpy.Event, Any, None]:
        """Delete an unused generated claim whose pod is replaced or done (1.28+)."""
        owner = owning_pod(claim)
        if owner is None:
            return
        pod: Pod | None = self.pods.get(owner.name, claim.metadata.namespace)
        if pod is None:
            # Maybe not seen yet; the garbage collector removes the claim if the pod is gone.
            return
        if pod.metadata.uid != owner.uid or is_pod_done(pod):
            yield from self.client.delete(
                "ResourceClaim",
                claim.metadata.name,
                claim.metadata.namespace,
                reason="delete claim of finished pod",
            )
