"""API clients and informers: how a component talks to the simulated API server.

Real components reach kube-apiserver through client-go: every request takes a
round trip and passes a client-side QPS/burst limiter, and components read
objects from informer caches that watch events fill some time after each
commit. Both effects shape DRA's timing, so they are modelled here:

* `APIClient` methods are SimPy generators (`obj = yield from client.update(c)`).
  A request first waits for a token of the component's rate limiter, then
  takes one draw of the request latency; the API server commits the write at
  the end of that time and the result (or `APIError`) is returned.
* `Informer` lists a kind once at start, then receives every watch event after
  a drawn watch delay, in commit order, and calls the registered handlers. A
  component that writes from its cache copy gets 409 Conflict when the copy is
  stale, exactly as a real controller does.

Every request becomes one row of the `api_requests` table.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Generator, Iterable
from typing import Any, TypeVar

import simpy

from sim.api.errors import APIError
from sim.api.server import WatchEvent
from sim.api.types import Pod, TopLevelObject, kind_of
from sim.cluster.ratelimit import TokenBucket
from sim.cluster.world import World
from sim.distributions import Distribution

T = TypeVar("T")
Obj = TypeVar("Obj", bound=TopLevelObject)
Request = Generator[simpy.Event, Any, T]
"""A SimPy generator that performs one API request and returns its result."""


@functools.cache
def resource_name(kind: str) -> str:
    """Return the lower-case plural resource name of a kind (ResourceClass -> resourceclasses).

    Cached, so that the millions of request records share one string per kind.
    """
    lower = kind.lower()
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + "s"


def object_key(namespace: str, name: str) -> str:
    """Return the informer key of an object: `namespace/name`, or `name` when cluster-scoped."""
    return f"{namespace}/{name}" if namespace else name


class APIClient:
    """One component's connection to the API server, with latency and a QPS limit."""

    def __init__(
        self,
        world: World,
        component: str,
        *,
        qps: float | None = None,
        burst: int | None = None,
        latency_s: Distribution | None = None,
    ) -> None:
        self.world = world
        self.component = component
        self._env = world.env
        self._api = world.api
        self._limiter = TokenBucket(qps, burst or 1) if qps else None
        self._latency = latency_s if latency_s is not None else world.config.request_latency_s
        self._rng = world.streams.stream(f"client/{component}")

    def create(self, obj: Obj, *, dry_run: bool = False, reason: str = "") -> Request[Obj]:
        """Create an object."""
        result = yield from self._call(
            "create",
            kind_of(obj),
            obj.metadata.namespace,
            obj.metadata.name,
            "",
            True,
            lambda: self._api.create(obj, dry_run=dry_run),
            reason,
        )
        return result  # type: ignore[no-any-return]

    def get(self, kind: str, name: str, namespace: str = "", *, reason: str = "") -> Request[Any]:
        """Read one object live from the API server (not from a cache)."""
        result = yield from self._call(
            "get",
            kind,
            namespace,
            name,
            "",
            False,
            lambda: self._api.get(kind, name, namespace),
            reason,
        )
        return result

    def update(self, obj: Obj, *, reason: str = "") -> Request[Obj]:
        """Update the main resource (metadata and spec), with the resourceVersion precondition."""
        result = yield from self._call(
            "update",
            kind_of(obj),
            obj.metadata.namespace,
            obj.metadata.name,
            "",
            True,
            lambda: self._api.update(obj),
            reason,
        )
        return result  # type: ignore[no-any-return]

    def update_status(self, obj: Obj, *, reason: str = "") -> Request[Obj]:
        """Update the status subresource, with the resourceVersion precondition."""
        result = yield from self._call(
            "update",
            kind_of(obj),
            obj.metadata.namespace,
            obj.metadata.name,
            "status",
            True,
            lambda: self._api.update_status(obj),
            reason,
        )
        return result  # type: ignore[no-any-return]

    def patch(
        self,
        kind: str,
        name: str,
        namespace: str,
        patch: Any,
        *,
        patch_type: str = "merge",
        subresource: str = "",
        field_manager: str = "",
        force: bool = False,
        reason: str = "",
    ) -> Request[Any]:
        """Patch an object (JSON merge patch, JSON patch or server-side apply)."""
        verb = "apply" if patch_type == "apply" else "patch"
        result = yield from self._call(
            verb,
            kind,
            namespace,
            name,
            subresource,
            True,
            lambda: self._api.patch(
                kind,
                name,
                namespace,
                patch,
                patch_type=patch_type,
                subresource=subresource,
                field_manager=field_manager or self.component,
                force=force,
            ),
            reason,
        )
        return result

    def delete(
        self,
        kind: str,
        name: str,
        namespace: str = "",
        *,
        propagation_policy: str = "Background",
        uid_precondition: str | None = None,
        reason: str = "",
    ) -> Request[Any]:
        """Delete an object; returns it when finalizers keep it, None when it is gone."""
        result = yield from self._call(
            "delete",
            kind,
            namespace,
            name,
            "",
            True,
            lambda: self._api.delete(
                kind,
                name,
                namespace,
                propagation_policy=propagation_policy,
                uid_precondition=uid_precondition,
            ),
            reason,
        )
        return result

    def bind(self, pod: Pod, node_name: str, *, reason: str = "") -> Request[Pod]:
        """Bind a pod to a node through the `pods/binding` subresource."""
        result = yield from self._call(
            "create",
            "Pod",
            pod.metadata.namespace,
            pod.metadata.name,
            "binding",
            True,
            lambda: self._api.bind(
                pod.metadata.namespace, pod.metadata.name, node_name, pod_uid=pod.metadata.uid
            ),
            reason,
        )
        return result  # type: ignore[no-any-return]

    def _call(
        self,
        verb: str,
        kind: str,
        namespace: str,
        name: str,
        subresource: str,
        write: bool,
        operation: Callable[[], Any],
        reason: str,
    ) -> Request[Any]:
        start = float(self._env.now)
        wait = self._limiter.reserve(start) if self._limiter is not None else 0.0
        delay = wait + self._latency.sample(self._rng)
        if delay > 0:
            yield self._env.timeout(delay)
        recorder = self.world.recorder
        resource = resource_name(kind)
        # The API server's write hook reads who wrote and why (for the events table).
        self.world.current_actor = self.component
        self.world.current_reason = reason
        try:
            result = operation()
        except APIError as error:
            self.world.current_actor = self.world.current_reason = ""
            recorder.api_request(
                float(self._env.now),
                self.component,
                verb,
                resource,
                namespace,
                name,
                subresource,
                error.code,
                delay,
                write,
            )
            raise
        # Writes made directly on the API server afterwards belong to nobody.
        self.world.current_actor = self.world.current_reason = ""
        code = 201 if verb == "create" else 200
        recorder.api_request(
            float(self._env.now),
            self.component,
            verb,
            resource,
            namespace,
            name,
            subresource,
            code,
            delay,
            write,
        )
        return result


KUBE_CONTROLLER_MANAGER = "kube-controller-manager"
"""Process of the resourceclaim controller and the two garbage collectors."""


def shared_informer(world: World, process: str, kind: str) -> Informer:
    """Return the informer of `kind` that every controller in `process` shares.

    Controllers in one process get their informers from one client-go
    SharedInformerFactory, so each kind is watched once and each event
    reaches all their handlers at the same moment.
    """
    key = (process, kind)
    informer = world.shared_informers.get(key)
    if informer is None:
        informer = Informer(world, kind, process)
        world.shared_informers[key] = informer
    return informer


AddHandler = Callable[[Any], None]
UpdateHandler = Callable[[Any, Any], None]
DeleteHandler = Callable[[Any], None]
IndexFunc = Callable[[Any], Iterable[str]]


def _deliver_batch(
    world: World, batch: builtins.list[tuple[Informer, WatchEvent]], _timer: simpy.Event
) -> None:
    """Deliver watch events that share a timer, in the order they were sent."""
    # Every change reached all its watches before this timer fired, so no event can
    # join an open batch any more.
    world.watch_batch_change = None
    world.watch_batches = {}
    for informer, event in batch:
        informer._deliver(event)


class Informer:
    """A component's watch-fed cache of one kind (client-go's shared informer and lister).

    Handlers run when an event is delivered, never inside the writer's API
    call. Events reach this informer in commit order; each is delayed by a
    draw of the watch delay, but never overtakes the previous one.
    """

    def __init__(
        self,
        world: World,
        kind: str,
        component: str,
        *,
        namespace: str | None = None,
        field_selector: str | None = None,
        watch_delay_s: Distribution | None = None,
    ) -> None:
        self.world = world
        self.kind = kind
        self.component = component
        self.namespace = namespace
        self.field_selector = field_selector
        self.cache: dict[str, Any] = {}
        self._env = world.env
        self._delay = watch_delay_s if watch_delay_s is not None else world.config.watch_delay_s
        self._rng = world.streams.stream(f"watch/{component}/{kind}")
        self._on_add: list[AddHandler] = []
        self._on_update: list[UpdateHandler] = []
        self._on_delete: list[DeleteHandler] = []
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self._last_delivery = 0.0
        self._started = False

    def add_handler(
        self,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> None:
        """Register event handlers; `on_add` is also called for each object cached so far."""
        if on_add:
            self._on_add.append(on_add)
            for obj in list(self.cache.values()):
                on_add(obj)
        if on_update:
            self._on_update.append(on_update)
        if on_delete:
            self._on_delete.append(on_delete)

    def add_index(self, name: str, index_func: IndexFunc) -> None:
        """Maintain index `name`: each value that `index_func` yields maps to the object keys."""
        self._indexers[name] = index_func
        index: dict[str, set[str]] = {}
        for key, obj in self.cache.items():
            for value in index_func(obj):
                index.setdefault(value, set()).add(key)
        self._indices[name] = index

    def start(self) -> None:
        """List the kind now and start watching from the list's resourceVersion."""
        if self._started:
            return
        self._started = True
        listed = self.world.api.list(self.kind, self.namespace, field_selector=self.field_selector)
        for obj in listed.items:
            self._store(obj)
        for obj in listed.items:
            for handler in self._on_add:
                handler(obj)
        self.world.api.watch(
            self.kind,
            self.namespace,
            resource_version=listed.resource_version,
            field_selector=self.field_selector,
            callback=self._on_watch_event,
        )

    def get(self, name: str, namespace: str = "") -> Any:
        """Return the cached object, or None."""
        return self.cache.get(object_key(namespace, name))

    def get_by_key(self, key: str) -> Any:
        """Return the cached object stored under an informer key, or None."""
        return self.cache.get(key)

    def list(self, namespace: str | None = None) -> builtins.list[Any]:
        """Return the cached objects, optionally of one namespace."""
        if namespace is None:
            return list(self.cache.values())
        return [obj for obj in self.cache.values() if obj.metadata.namespace == namespace]

    def by_index(self, name: str, value: str) -> builtins.list[Any]:
        """Return the cached objects whose index `name` contains `value`."""
        keys = self._indices[name].get(value, ())
        return [self.cache[key] for key in sorted(keys)]

    def _on_watch_event(self, event: WatchEvent) -> None:
        now = float(self._env.now)
        deliver_at = max(now + self._delay.sample(self._rng), self._last_delivery)
        self._last_delivery = deliver_at
        # The watch events of one change that fall due at the same instant share one timer.
        # The API server hands a change to all its watches back to back and informers
        # schedule nothing else meanwhile, so one timer per event would have run these
        # deliveries one after another. Events of different changes get separate timers,
        # because another event may have been scheduled for that instant between them.
        # NOTE: a handler that starts a SimPy process schedules an urgent event, which runs
        # before the next timer but after the rest of a shared one. The kubelet's handler
        # is the only such handler. The server offers each change to node-indexed watches
        # such as the kubelet's last, so no event follows it in a shared timer.
        world = self.world
        change = (now, event.resource_version)
        if world.watch_batch_change != change:
            world.watch_batch_change = change
            world.watch_batches = {}
        batch = world.watch_batches.get(deliver_at)
        if batch is None:
            batch = world.watch_batches[deliver_at] = []
            timer = self._env.timeout(deliver_at - now)
            timer.callbacks.append(functools.partial(_deliver_batch, world, batch))
        batch.append((self, event))

    def _deliver(self, event: WatchEvent) -> None:
        obj = event.object
        key = object_key(obj.metadata.namespace, obj.metadata.name)
        if event.type == "DELETED":
            old = self.cache.pop(key, None)
            self._unindex(key, old)
            for delete_handler in self._on_delete:
                delete_handler(obj)
            return
        old = self.cache.get(key)
        self._store(obj)
        if old is None:
            for add_handler in self._on_add:
                add_handler(obj)
        else:
            for update_handler in self._on_update:
                update_handler(old, obj)

    def _store(self, obj: Any) -> None:
        key = object_key(obj.metadata.namespace, obj.metadata.name)
        self._unindex(key, self.cache.get(key))
        self.cache[key] = obj
        for name, index_func in self._indexers.items():
            index = self._indices[name]
            for value in index_func(obj):
                index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, old: Any) -> None:
        if old is None:
            return
        for name, index_func in self._indexers.items():
            index = self._indices[name]
            for value in index_func(old):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
