"""In-memory Kubernetes API server: storage, optimistic concurrency, watches and garbage collection.

kube-apiserver is the only shared state of a Kubernetes cluster: every component
reads objects through list and watch, and changes them with create, update,
patch and delete requests guarded by `metadata.resourceVersion`. `APIServer`
reproduces the behaviour of those requests that the DRA components depend on,
synchronously and without time (latency is charged by the callers in
`sim.cluster`):

* one global resourceVersion counter, bumped by every committed write like
  etcd's revision. An empty store is at resourceVersion 1, so a watch from "1"
  replays every write;
* 409 Conflict on a stale resourceVersion, 404, 409 AlreadyExists, 422 Invalid
  (from `sim.api.validation`) and 410 Gone, with kube-apiserver's messages;
* the defaults of `sim.api.validation`, among them the selector and pod
  labels that a Job gets on create;
* the status subresource: writes to the main resource keep the stored status,
  writes to `/status` keep the stored spec and metadata;
* JSON merge patch (RFC 7386), JSON patch (RFC 6902) and server-side apply
  (modelled as a merge patch);
* finalizers and `deletionTimestamp`, and ownerReference garbage collection with
  the Background, Foreground and Orphan propagation policies, either run inside
  the deleting call (`synchronous_gc=True`) or left to an external collector;
* list with label and field selectors and limit/continue pagination over a
  consistent snapshot, and watches that replay a bounded history.

Watch events are delivered synchronously, in commit order, at the end of the
request that committed them; a write made from inside a watch callback is
delivered after the events already queued. Stored objects are immutable and
handed out without copies.

Not modelled: admission (namespaces need not exist and a namespace being
deleted accepts new objects), namespace deletion of contents, graceful pod
deletion (`deletionGracePeriodSeconds`: a pod without finalizers is removed at
once), `managedFields` and apply conflicts between field managers, list-map
merging in server-side apply, watch bookmarks, and instances or kind
registration going away when a CustomResourceDefinition is deleted.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import builtins
import copy
import functools
import json
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from pydantic import BaseModel

from sim.api.codec import ManifestError, from_dict, to_dict
from sim.api.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    FieldError,
    Gone,
    Invalid,
    NotFound,
)
from sim.api.selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    field_value,
    parse_field_selector,
    parse_label_selector,
)
from sim.api.types import (
    TYPED_KINDS,
    GenericObject,
    OwnerReference,
    Pod,
    PodCondition,
    PodPhase,
    TopLevelObject,
    kind_of,
)
from sim.api.validation import (
    apply_defaults,
    prepare_for_create,
    validate_create,
    validate_status_update,
    validate_update,
)

__all__ = [
    "EPOCH",
    "FINALIZER_FOREGROUND_DELETION",
    "FINALIZER_ORPHAN",
    "APIServer",
    "ListResult",
    "Watch",
    "WatchEvent",
    "WriteRecord",
    "format_timestamp",
    "json_patch",
    "merge_patch",
    "parse_timestamp",
]

T = TypeVar("T", bound=TopLevelObject)

EPOCH: Final = datetime(2024, 1, 1, tzinfo=UTC)
"""Wall-clock time of simulated second 0; timestamps are EPOCH + clock() seconds."""

FINALIZER_ORPHAN: Final = "orphan"
"""Finalizer that keeps an Orphan-deleted owner until its dependents are orphaned."""

FINALIZER_FOREGROUND_DELETION: Final = "foregroundDeletion"
"""Finalizer that keeps a Foreground-deleted owner until its blocking dependents are gone."""

_GC_FINALIZERS: Final = frozenset({FINALIZER_ORPHAN, FINALIZER_FOREGROUND_DELETION})

# Characters of generated name suffixes: kube-apiserver leaves out vowels (no words) and
# the look-alikes 0, 1 and 3.
_NAME_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
_NAME_SUFFIX_LENGTH: Final = 5
_MAX_GENERATE_NAME_PREFIX: Final = 63 - _NAME_SUFFIX_LENGTH
_GENERATE_NAME_ATTEMPTS: Final = 8

_INITIAL_RESOURCE_VERSION: Final = 1
_OPTIMISTIC_LOCK_MESSAGE: Final = (
    "the object has been modified; please apply your changes to the latest version and try again"
)
_PROPAGATION_POLICIES: Final = ("Background", "Foreground", "Orphan")
_PATCH_TYPES: Final = ("merge", "json", "apply")

# Kinds whose status survives create: the kubelet registers a Node with its status, and
# static or imported pods carry theirs. Other kinds with a status subresource start empty.
_CREATE_KEEPS_STATUS: Final = frozenset({"Pod", "Node"})

_CRD_KIND: Final = "CustomResourceDefinition"
_CRD_API_VERSION: Final = "apiextensions.k8s.io/v1"

# Built-in kinds without a typed model that are cluster-scoped; every other generic kind
# without a registration is namespaced (ConfigMap, Secret, Deployment, driver parameters).
_CLUSTER_SCOPED_BUILTIN_KINDS: Final = {
    _CRD_KIND: _CRD_API_VERSION,
    "APIService": "apiregistration.k8s.io/v1",
    "CertificateSigningRequest": "certificates.k8s.io/v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1",
    "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "CSIDriver": "storage.k8s.io/v1",
    "CSINode": "storage.k8s.io/v1",
    "IngressClass": "networking.k8s.io/v1",
    "MutatingWebhookConfiguration": "admissionregistration.k8s.io/v1",
    "PersistentVolume": "v1",
    "PriorityClass": "scheduling.k8s.io/v1",
    "RuntimeClass": "node.k8s.io/v1",
    "StorageClass": "storage.k8s.io/v1",
    "ValidatingWebhookConfiguration": "admissionregistration.k8s.io/v1",
    "VolumeAttachment": "storage.k8s.io/v1",
}

ADDED: Final = "ADDED"
MODIFIED: Final = "MODIFIED"
DELETED: Final = "DELETED"

_Key = tuple[str, str]  # (namespace, name) within one kind, in etcd key order
_ObjectKey = tuple[str, str, str]  # (kind, namespace, name)
# Aliases for annotations inside APIServer, whose `list` method hides the builtin.
_KeyList = list[_Key]
_ObjectList = list[TopLevelObject]


# --------------------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------------------


def format_timestamp(seconds: float) -> str:
    """Format simulated seconds as RFC 3339, truncated to whole seconds like metav1.Time."""
    return _format_whole_seconds(int(seconds // 1))


@functools.lru_cache(maxsize=4096)
def _format_whole_seconds(seconds: int) -> str:
    # Every write in the same simulated second carries the same text.
    return (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> float:
    """Return the simulated seconds of an RFC 3339 timestamp written by `format_timestamp`."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment - EPOCH).total_seconds()


# --------------------------------------------------------------------------------------
# Public records
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One committed write, passed to `on_write` before its watch event is delivered.

    `verb` is the request verb: "create", "update", "patch", "delete" or
    "deletecollection". A pods/binding request is verb "create" with subresource
    "binding". Writes of the synchronous garbage collector are "delete" (dependent
    removed) or "patch" (ownerReference or GC finalizer removed). `event_type` is
    the watch event the write produced, so an update that removes the last
    finalizer of a deleting object is verb "update" with event_type DELETED.
    """

    verb: str
    kind: str
    namespace: str
    name: str
    subresource: str
    resource_version: int
    object: TopLevelObject
    event_type: str = MODIFIED
    field_manager: str = ""


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """A watch notification: ADDED, MODIFIED or DELETED and the object at `resource_version`."""

    type: str
    object: TopLevelObject
    resource_version: int


@dataclass(frozen=True, slots=True)
class ListResult:
    """One page of a list request.

    `resource_version` is the revision the page was read at (for a continued
    list, the revision of the first page). `continue_token` is empty on the last
    page. `remaining_item_count` counts the items after this page and is None
    when a selector was given, as kube-apiserver reports it.
    """

    items: tuple[TopLevelObject, ...]
    resource_version: int
    continue_token: str = ""
    remaining_item_count: int | None = None


@dataclass(frozen=True, slots=True)
class _Change:
    """A committed write as kept in the watch history: the new object and the one it replaced."""

    resource_version: int
    kind: str
    type: str
    object: TopLevelObject
    previous: TopLevelObject | None


@dataclass(frozen=True, slots=True)
class _KindInfo:
    """Scope, status subresource and message name of a kind."""

    kind: str
    api_version: str
    namespaced: bool
    has_status: bool
    resource: str  # qualified resource used in messages, e.g. "resourceclaims.resource.k8s.io"
    typed: bool


_DependentList = list[tuple[_KindInfo, TopLevelObject]]
_FieldErrorList = list[FieldError]
_ChangeList = list[_Change]


def _as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _plural_of(kind: str) -> str:
    """Guess the resource name of a kind the way kube-apiserver does for kinds without a CRD."""
    singular = kind.lower()
    if singular.endswith("s"):
        return singular + "es"
    if singular.endswith("y"):
        return singular[:-1] + "ies"
    return singular + "s"


def _group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _qualified_resource(plural: str, api_version: str) -> str:
    group = _group_of(api_version)
    return f"{plural}.{group}" if group else plural


# --------------------------------------------------------------------------------------
# Watches
# --------------------------------------------------------------------------------------


class Watch:
    """An open watch on one kind: events go to `callback`, or to `events` when there is none.

    Namespace, label and field filters apply as in kube-apiserver's watch cache:
    an object that starts matching a selector arrives as ADDED, and one that
    stops matching arrives as DELETED carrying its previous content with the
    event's resourceVersion.
    """

    def __init__(
        self,
        kind: str,
        namespace: str | None,
        label_selector: LabelSelector | None,
        field_selector: FieldSelector | None,
        callback: Callable[[WatchEvent], None] | None,
        start_resource_version: int,
        detach: Callable[[Watch], None],
    ) -> None:
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.callback = callback
        self.events: deque[WatchEvent] = deque()
        self._after = start_resource_version  # events at or below this revision are skipped
        self._detach = detach
        self._stopped = False
        self.index_value: str | None = None
        """The `spec.nodeName` value the server indexes this watch under, if any."""

    @property
    def stopped(self) -> bool:
        """Whether `stop()` was called."""
        return self._stopped

    def stop(self) -> None:
        """Stop delivering events; already queued `events` stay readable."""
        if not self._stopped:
            self._stopped = True
            self._detach(self)

    def _matches(self, obj: TopLevelObject) -> bool:
        if self.label_selector is not None and not self.label_selector.matches(obj.metadata.labels):
            return False
        return self.field_selector is None or self.field_selector.matches(obj)

    def _emit(self, event: WatchEvent) -> None:
        if self.callback is None:
            self.events.append(event)
        else:
            self.callback(event)

    def _offer(self, change: _Change) -> None:
        if self._stopped or change.resource_version <= self._after:
            return
        if self.namespace is not None and change.object.metadata.namespace != self.namespace:
            return
        event = self._convert(change)
        if event is not None:
            self._emit(event)

    def _convert(self, change: _Change) -> WatchEvent | None:
        rv = change.resource_version
        if self.label_selector is None and self.field_selector is None:
            return WatchEvent(change.type, change.object, rv)
        now_matches = change.type != DELETED and self._matches(change.object)
        previous = change.previous
        before_matched = previous is not None and self._matches(previous)
        if now_matches:
            return WatchEvent(MODIFIED if before_matched else ADDED, change.object, rv)
        if not before_matched or previous is None:
            return None
        if change.type == DELETED:
            return WatchEvent(DELETED, change.object, rv)
        return WatchEvent(DELETED, previous.with_meta(resource_version=str(rv)), rv)


# --------------------------------------------------------------------------------------
# JSON merge patch (RFC 7386) and JSON patch (RFC 6902)
# --------------------------------------------------------------------------------------


class _PatchApplyError(Exception):
    """A JSON patch operation that cannot be applied to the document (HTTP 422)."""

    def __init__(self, pointer: str, operation: str, detail: str) -> None:
        super().__init__(detail)
        self.pointer = pointer
        self.operation = operation
        self.detail = detail


@functools.cache
def _model_fields_by_alias(cls: type[BaseModel]) -> dict[str, tuple[str, type[BaseModel]]]:
    """Map the wire name of each field of `cls` whose type is a model to (field name, model)."""
    fields: dict[str, tuple[str, type[BaseModel]]] = {}
    for field_name, info in cls.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields[info.alias or field_name] = (field_name, annotation)
    return fields


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch (RFC 7386): objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _json_equal(a: Any, b: Any) -> bool:
    """Compare JSON values as JSON does: true is not 1, but 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _parse_pointer(pointer: str, operation: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise BadRequest(
            f'invalid JSON pointer "{pointer}" in {operation} operation: must start with "/"'
        )
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def _array_index(token: str, length: int, pointer: str, operation: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return length
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise _PatchApplyError(pointer, operation, f'"{token}" is not an array index')
    index = int(token)
    limit = length if allow_end else length - 1
    if index > limit:
        raise _PatchApplyError(
            pointer, operation, f"array index {index} is out of range (length {length})"
        )
    return index


def _resolve_parent(doc: Any, tokens: list[str], pointer: str, operation: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise _PatchApplyError(pointer, operation, "path does not exist")
            node = node[token]
        elif isinstance(node, list):
            node = node[_array_index(token, len(node), pointer, operation, allow_end=False)]
        else:
            raise _PatchApplyError(pointer, operation, "path does not exist")
    return node


def _pointer_get(doc: Any, pointer: str, operation: str) -> Any:
    tokens = _parse_pointer(pointer, operation)
    if not tokens:
        return doc
    parent = _resolve_parent(doc, tokens, pointer, operation)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _PatchApplyError(pointer, operation, "path does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_array_index(last, len(parent), pointer, operation, allow_end=False)]
    raise _PatchApplyError(pointer, operation, "path does not exist")


def _pointer_add(doc: Any, pointer: str, value: Any, operation: str) -> Any:
    tokens = _parse_pointer(pointer, operation)
    if not tokens:
        return value
    parent = _resolve_parent(doc, tokens, pointer, operation)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_array_index(last, len(parent), pointer, operation, allow_end=True), value)
    else:
        raise _PatchApplyError(pointer, operation, "path does not exist")
    return doc


def _pointer_remove(doc: Any, pointer: str, operation: str) -> tuple[Any, Any]:
    tokens = _parse_pointer(pointer, operation)
    if not tokens:
        raise _PatchApplyError(pointer, operation, "cannot remove the whole document")
    parent = _resolve_parent(doc, tokens, pointer, operation)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _PatchApplyError(pointer, operation, "path does not exist")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_array_index(last, len(parent), pointer, operation, allow_end=False))
    raise _PatchApplyError(pointer, operation, "path does not exist")


def _operation_field(operation: Mapping[str, Any], field: str, index: int) -> Any:
    if field not in operation:
        name = operation.get("op", "")
        raise BadRequest(f'JSON patch operation {index} ("{name}") is missing "{field}"')
    return operation[field]


def json_patch(document: Any, operations: Sequence[Any]) -> Any:
    """Apply a JSON patch (RFC 6902) to a copy of `document` and return the result.

    Raises:
        BadRequest: the patch is not a list of well-formed operations.
        _PatchApplyError: an operation does not apply (missing path, bad index, failed test).
    """
    doc = copy.deepcopy(document)
    for index, operation in enumerate(operations):
        if not isinstance(operation, Mapping):
            raise BadRequest(f"JSON patch operation {index} is not an object: {operation!r}")
        op = operation.get("op")
        path = _operation_field(operation, "path", index)
        if not isinstance(path, str):
            raise BadRequest(f"JSON patch operation {index} has a non-string path: {path!r}")
        if op == "add":
            value = copy.deepcopy(_operation_field(operation, "value", index))
            doc = _pointer_add(doc, path, value, "add")
        elif op == "remove":
            doc, _ = _pointer_remove(doc, path, "remove")
        elif op == "replace":
            value = copy.deepcopy(_operation_field(operation, "value", index))
            _pointer_get(doc, path, "replace")
            doc, _ = _pointer_remove(doc, path, "replace") if path else (doc, None)
            doc = _pointer_add(doc, path, value, "replace")
        elif op in ("move", "copy"):
            source = _operation_field(operation, "from", index)
            if not isinstance(source, str):
                raise BadRequest(f"JSON patch operation {index} has a non-string from: {source!r}")
            if op == "move":
                if path.startswith(source + "/"):
                    raise _PatchApplyError(
                        path, "move", f'cannot move "{source}" into its own child'
                    )
                doc, value = _pointer_remove(doc, source, "move")
            else:
                value = copy.deepcopy(_pointer_get(doc, source, "copy"))
            doc = _pointer_add(doc, path, value, op)
        elif op == "test":
            expected = _operation_field(operation, "value", index)
            actual = _pointer_get(doc, path, "test")
            if not _json_equal(actual, expected):
                raise _PatchApplyError(
                    path, "test", f"value is {json.dumps(actual)}, expected {json.dumps(expected)}"
                )
        else:
            raise BadRequest(f"JSON patch operation {index} has unsupported op {op!r}")
    return doc


# --------------------------------------------------------------------------------------
# Continue tokens
# --------------------------------------------------------------------------------------


def _encode_continue(kind: str, namespace: str, resource_version: int, last: _Key) -> str:
    payload = {"kind": kind, "ns": namespace, "rv": resource_version, "start": list(last)}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def _decode_continue(token: str, kind: str, namespace: str) -> tuple[int, _Key]:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
        rv = int(payload["rv"])
        start_ns, start_name = payload["start"]
        token_kind, token_ns = payload["kind"], payload["ns"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise BadRequest(f"continue key is not valid: {token!r}") from exc
    if token_kind != kind or token_ns != namespace:
        raise BadRequest(
            f"continue key is not valid: it continues a list of {token_kind} in namespace "
            f'"{token_ns}", not {kind} in "{namespace}"'
        )
    return rv, (str(start_ns), str(start_name))


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------


class APIServer:
    """In-memory kube-apiserver with etcd-like revisions, watches and garbage collection.

    Args:
        clock: Current simulated time in seconds; timestamps are `EPOCH` plus this.
        seed: Seed of the generator of UIDs and generated names.
        watch_history: Number of committed writes kept for watches and continued
            lists that start from an older resourceVersion; older ones get 410 Gone.
        synchronous_gc: Run ownerReference garbage collection inside the deleting
            call. When False, an external collector uses `dependents_of`,
            `finish_foreground_deletion` and `finish_orphan_deletion`.
        on_write: Called with a `WriteRecord` for every committed write, before
            the write's watch events are delivered.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = lambda: 0.0,
        seed: int = 0,
        watch_history: int = 100_000,
        synchronous_gc: bool = True,
        on_write: Callable[[WriteRecord], None] | None = None,
    ) -> None:
        if watch_history < 1:
            raise ValueError(f"watch_history must be at least 1, got {watch_history}")
        self._clock = clock
        self._rng = random.Random(seed)
        self._synchronous_gc = synchronous_gc
        self._on_write = on_write

        self._rv = _INITIAL_RESOURCE_VERSION
        self._kinds: dict[str, _KindInfo] = {}
        self._objects: dict[str, dict[_Key, TopLevelObject]] = {}
        self._sorted_keys: dict[
            str, _KeyList
        ] = {}  # per kind, dropped when a key is added or removed
        self._by_uid: dict[str, _ObjectKey] = {}
        self._dependents: dict[str, set[_ObjectKey]] = {}  # owner uid -> objects referring to it

        self._history: deque[_Change] = deque()
        self._history_limit = watch_history
        self._history_floor = _INITIAL_RESOURCE_VERSION  # newest revision no longer in the history
        self._watchers: dict[str, list[Watch]] = {}
        self._node_watchers: dict[str, dict[str, list[Watch]]] = {}
        """Watches with a `spec.nodeName=<node>` field selector, by kind and node."""
        self._pending: deque[tuple[WriteRecord, _Change]] = deque()
        self._delivering = False
        self._gc_queue: deque[TopLevelObject] = deque()  # removed objects whose dependents need GC
        self._owner_rechecks: deque[str] = deque()  # owner uids whose dependents changed

        for cls in TYPED_KINDS.values():
            self._kinds[cls.KIND] = _KindInfo(
                kind=cls.KIND,
                api_version=cls.API_VERSION,
                namespaced=cls.NAMESPACED,
                has_status=cls.HAS_STATUS,
                resource=_qualified_resource(_plural_of(cls.KIND), cls.API_VERSION),
                typed=True,
            )
        crd_plural = "customresourcedefinitions"
        self._kinds[_CRD_KIND] = _KindInfo(
            _CRD_KIND,
            _CRD_API_VERSION,
            False,
            True,
            _qualified_resource(crd_plural, _CRD_API_VERSION),
            False,
        )

    # ----------------------------------------------------------------------------------
    # Kinds
    # ----------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The global revision: the resourceVersion of the latest committed write."""
        return self._rv

    def register_kind(
        self,
        kind: str,
        api_version: str,
        namespaced: bool,
        *,
        has_status: bool = False,
        plural: str = "",
    ) -> None:
        """Serve a generic kind with the given scope, as a CustomResourceDefinition does.

        Args:
            kind: The kind, e.g. "GpuClaimParameters".
            api_version: "group/version" of the kind.
            namespaced: Whether objects live in a namespace.
            has_status: Whether the kind has a status subresource (`body["status"]`).
            plural: Resource name used in error messages; guessed from the kind when empty.

        Raises:
            ValueError: the kind has a typed model, or objects of it are stored
                under the other scope.
        """
        if kind in TYPED_KINDS:
            raise ValueError(
                f"kind {kind} has a typed model and a fixed scope; it cannot be registered"
            )
        stored = self._objects.get(kind)
        current = self._kinds.get(kind)
        if stored and current is not None and current.namespaced != namespaced:
            raise ValueError(
                f"kind {kind} already has stored objects as "
                f"{'namespaced' if current.namespaced else 'cluster-scoped'}; delete them first"
            )
        resource = _qualified_resource(plural or _plural_of(kind), api_version)
        self._kinds[kind] = _KindInfo(kind, api_version, namespaced, has_status, resource, False)

    def _kind_info(self, kind: str) -> _KindInfo:
        info = self._kinds.get(kind)
        if info is not None:
            return info
        if not kind:
            raise BadRequest("Object 'Kind' is missing")
        api_version = _CLUSTER_SCOPED_BUILTIN_KINDS.get(kind, "")
        namespaced = kind not in _CLUSTER_SCOPED_BUILTIN_KINDS
        return _KindInfo(
            kind,
            api_version,
            namespaced,
            False,
            _qualified_resource(_plural_of(kind), api_version),
            False,
        )

    def _object_kind_info(self, obj: TopLevelObject) -> _KindInfo:
        kind = kind_of(obj)
        info = self._kind_info(kind)
        if info.typed and not isinstance(obj, TYPED_KINDS[kind]):
            raise BadRequest(
                f"kind {kind} must be a {TYPED_KINDS[kind].__name__}, not a {type(obj).__name__}"
            )
        return info

    @staticmethod
    def _scope_namespace(info: _KindInfo, namespace: str | None) -> str:
        """Return "" for cluster-scoped kinds, and "default" for namespaced ones without one."""
        if not info.namespaced:
            return ""
        return namespace or "default"

    # ----------------------------------------------------------------------------------
    # Read
    # ----------------------------------------------------------------------------------

    def get(self, kind: str, name: str, namespace: str = "") -> TopLevelObject:
        """Return the stored object; namespace "" means "default" for namespaced kinds.

        Raises:
            NotFound: no such object.
        """
        info = self._kind_info(kind)
        key = (self._scope_namespace(info, namespace), name)
        obj = self._objects.get(kind, {}).get(key)
        if obj is None:
            raise self._not_found(info, name)
        return obj

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
        limit: int = 0,
        continue_token: str = "",
    ) -> ListResult:
        """List objects of a kind in (namespace, name) order, one page of `limit` items at a time.

        Args:
            kind: The kind to list.
            namespace: Only this namespace; None or "" lists all namespaces.
            label_selector: Selector on labels, as text ("a=b,c in (x,y)") or parsed.
            field_selector: Selector on metadata.name / metadata.namespace.
            limit: Page size; 0 returns everything.
            continue_token: Token of the previous page. The continued page is read at
                that page's revision, so writes in between do not show.

        Raises:
            BadRequest: a selector, the limit or the continue token is invalid.
            Gone: the continue token's revision is older than the kept history.
        """
        info = self._kind_info(kind)
        scope = (namespace or "") if info.namespaced else ""
        labels = self._label_selector(label_selector)
        fields = self._field_selector(field_selector)
        if limit < 0:
            raise BadRequest(f"limit must not be negative, got {limit}")

        list_rv = self._rv
        start: _Key | None = None
        if continue_token:
            list_rv, start = _decode_continue(continue_token, kind, scope)
        keys, view = self._snapshot(kind, list_rv)

        lo = bisect.bisect_left(keys, (scope,)) if scope else 0
        hi = bisect.bisect_left(keys, (scope + "\x00",)) if scope else len(keys)
        if start is not None:
            lo = max(lo, bisect.bisect_right(keys, start))

        items: _ObjectList = []
        position = lo
        while position < hi and (limit == 0 or len(items) < limit):
            obj = view(keys[position])
            position += 1
            if obj is not None and self._selected(obj, labels, fields):
                items.append(obj)

        more = any(
            obj is not None and self._selected(obj, labels, fields)
            for obj in (view(keys[i]) for i in range(position, hi))
        )
        token = ""
        remaining: int | None = None
        if more and items:
            last = items[-1]
            token = _encode_continue(
                kind, scope, list_rv, (last.metadata.namespace, last.metadata.name)
            )
            if labels is None and fields is None:
                remaining = sum(1 for i in range(position, hi) if view(keys[i]) is not None)
        return ListResult(tuple(items), list_rv, token, remaining)

    def _snapshot(
        self, kind: str, resource_version: int
    ) -> tuple[_KeyList, Callable[[_Key], TopLevelObject | None]]:
        """Return the sorted keys of a kind and a lookup of the object at a past revision."""
        current = self._objects.get(kind, {})
        keys = self._sorted(kind)
        if resource_version >= self._rv:
            return keys, current.get
        if resource_version < self._history_floor:
            raise Gone(
                "The provided continue parameter is too old to display a consistent list result. "
                "Start a new list without the continue parameter."
            )

        # Undo the writes after the snapshot revision, newest first, so that each key ends
        # with the object it had at that revision (None when it did not exist yet).
        overlay: dict[_Key, TopLevelObject | None] = {}
        for change in reversed(self._history):
            if change.resource_version <= resource_version:
                break
            if change.kind == kind:
                meta = change.object.metadata
                overlay[(meta.namespace, meta.name)] = change.previous
        if not overlay:
            return keys, current.get
        merged = sorted(set(keys).union(overlay))

        def lookup(key: _Key) -> TopLevelObject | None:
            return overlay[key] if key in overlay else current.get(key)

        return merged, lookup

    @staticmethod
    def _selected(
        obj: TopLevelObject, labels: LabelSelector | None, fields: FieldSelector | None
    ) -> bool:
        if labels is not None and not labels.matches(obj.metadata.labels):
            return False
        return fields is None or fields.matches(obj)

    @staticmethod
    def _label_selector(selector: str | LabelSelector | None) -> LabelSelector | None:
        if selector is None or (isinstance(selector, str) and not selector.strip()):
            return None
        if not isinstance(selector, str):
            return selector
        try:
            return parse_label_selector(selector)
        except SelectorError as exc:
            raise BadRequest(str(exc)) from exc

    @staticmethod
    def _field_selector(selector: str | FieldSelector | None) -> FieldSelector | None:
        if selector is None or (isinstance(selector, str) and not selector.strip()):
            return None
        if not isinstance(selector, str):
            return selector
        try:
            return parse_field_selector(selector)
        except SelectorError as exc:
            raise BadRequest(str(exc)) from exc

    # ----------------------------------------------------------------------------------
    # Watch
    # ----------------------------------------------------------------------------------

    def watch(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        resource_version: str | int = "",
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
        callback: Callable[[WatchEvent], None] | None = None,
    ) -> Watch:
        """Open a watch on a kind.

        `resource_version` "" starts at the current revision with no initial
        events. "0" first sends a synthetic ADDED event for every existing
        matching object, as kube-apiserver does for "any version". A number N
        replays the kept writes after N, then continues live; a revision above the
        current one skips writes until the server gets past it.

        Raises:
            BadRequest: the resourceVersion or a selector is invalid.
            Gone: N is older than the kept history ("too old resource version").
        """
        info = self._kind_info(kind)
        scope = (namespace or None) if info.namespaced else None
        labels = self._label_selector(label_selector)
        fields = self._field_selector(field_selector)
        text = str(resource_version)
        if text in ("", "0"):
            start = self._rv
        else:
            try:
                start = int(text)
            except ValueError as exc:
                raise BadRequest(f"invalid resource version {text!r}") from exc
            if start < 0:
                raise BadRequest(f"invalid resource version {text!r}")
            if start < self._history_floor:
                raise Gone(f"too old resource version: {start} ({self._history_floor})")

        # Writes committed but not yet delivered (the watch is opened from a callback) reach
        # a numbered watch through the delivery queue, so its replay stops at the last
        # delivered revision. "" and "0" start after them because they start "now".
        delivered = self._rv - len(self._pending)
        after = self._rv if text in ("", "0") else max(start, delivered)
        watch = Watch(kind, scope, labels, fields, callback, after, self._detach)
        node_name = fields.equality_value("spec.nodeName") if fields is not None else None
        if node_name is not None:
            # Like the watch cache's pod index: a kubelet's watch only sees its node's pods.
            watch.index_value = node_name
            self._node_watchers.setdefault(kind, {}).setdefault(node_name, []).append(watch)
        else:
            self._watchers.setdefault(kind, []).append(watch)

        # Writes made by the callback during the initial events are queued behind them.
        outer_delivery = self._delivering
        self._delivering = True
        try:
            if text == "0":
                objects = self._objects.get(kind, {})
                for obj in [objects[key] for key in self._sorted(kind)]:
                    if (scope is None or obj.metadata.namespace == scope) and watch._matches(obj):
                        watch._emit(WatchEvent(ADDED, obj, int(obj.metadata.resource_version)))
            elif start < delivered:
                replay = Watch(kind, scope, labels, fields, watch._emit, start, lambda _: None)
                for change in self._history_between(start, delivered):
                    if change.kind == kind:
                        replay._offer(change)
        finally:
            self._delivering = outer_delivery
        self._finish_request()
        return watch

    @staticmethod
    def _indexed_watchers(
        indexed: dict[str, builtins.list[Watch]], change: _Change
    ) -> builtins.list[Watch]:
        """Return the node-indexed watches that may care about a change (old and new node)."""
        node = field_value(change.object, "spec.nodeName")
        previous = change.previous
        old_node = node if previous is None else field_value(previous, "spec.nodeName")
        if old_node == node:
            return builtins.list(indexed.get(node, ()))
        found: builtins.list[Watch] = []
        for name in sorted((node, old_node)):
            found.extend(indexed.get(name, ()))
        return found

    def _history_between(self, after: int, up_to: int) -> Iterator[_Change]:
        """Yield kept changes with after < resourceVersion <= up_to, oldest first."""
        newer: _ChangeList = []
        for change in reversed(self._history):
            if change.resource_version <= after:
                break
            if change.resource_version <= up_to:
                newer.append(change)
        return reversed(newer)

    def _detach(self, watch: Watch) -> None:
        if watch.index_value is not None:
            watchers = self._node_watchers.get(watch.kind, {}).get(watch.index_value, [])
        else:
            watchers = self._watchers.get(watch.kind, [])
        if watch in watchers:
            watchers.remove(watch)

    def _sorted(self, kind: str) -> _KeyList:
        keys = self._sorted_keys.get(kind)
        if keys is None:
            keys = sorted(self._objects.get(kind, {}))
            self._sorted_keys[kind] = keys
        return keys

    # ----------------------------------------------------------------------------------
    # Commit, history and delivery
    # ----------------------------------------------------------------------------------

    def _now(self) -> str:
        return format_timestamp(self._clock())

    def _put(
        self,
        info: _KindInfo,
        obj: TopLevelObject,
        previous: TopLevelObject | None,
        verb: str,
        subresource: str = "",
        field_manager: str = "",
    ) -> TopLevelObject:
        """Store `obj` under a new revision and queue its record and watch event."""
        self._rv += 1
        rv = self._rv
        obj = obj.with_meta(resource_version=str(rv))
        meta = obj.metadata
        key = (meta.namespace, meta.name)
        objects = self._objects.setdefault(info.kind, {})
        if previous is None:
            self._sorted_keys.pop(info.kind, None)
            self._by_uid[meta.uid] = (info.kind, meta.namespace, meta.name)
        objects[key] = obj
        old_refs = previous.metadata.owner_references if previous is not None else ()
        if old_refs != meta.owner_references:
            self._index_owners(info.kind, key, old_refs, meta.owner_references)
            if self._synchronous_gc:
                self._owner_rechecks.extend(r.uid for r in old_refs)
        event_type = ADDED if previous is None else MODIFIED
        self._record(info, obj, previous, event_type, verb, subresource, field_manager)
        return obj

    def _remove(
        self,
        info: _KindInfo,
        obj: TopLevelObject,
        stored: TopLevelObject,
        verb: str,
        subresource: str = "",
        field_manager: str = "",
    ) -> TopLevelObject:
        """Remove the stored object under a new revision; `obj` is reported as its last state."""
        self._rv += 1
        deleted: TopLevelObject = obj.with_meta(resource_version=str(self._rv))
        meta = stored.metadata
        key = (meta.namespace, meta.name)
        del self._objects[info.kind][key]
        self._sorted_keys.pop(info.kind, None)
        self._by_uid.pop(meta.uid, None)
        if meta.owner_references:
            self._index_owners(info.kind, key, meta.owner_references, ())
        self._record(info, deleted, stored, DELETED, verb, subresource, field_manager)
        if self._synchronous_gc:
            self._gc_queue.append(deleted)
        return deleted

    def _index_owners(
        self, kind: str, key: _Key, old: Iterable[OwnerReference], new: Iterable[OwnerReference]
    ) -> None:
        object_key = (kind, key[0], key[1])
        for ref in old:
            dependents = self._dependents.get(ref.uid)
            if dependents is not None:
                dependents.discard(object_key)
                if not dependents:
                    del self._dependents[ref.uid]
        for ref in new:
            self._dependents.setdefault(ref.uid, set()).add(object_key)

    def _record(
        self,
        info: _KindInfo,
        obj: TopLevelObject,
        previous: TopLevelObject | None,
        event_type: str,
        verb: str,
        subresource: str,
        field_manager: str,
    ) -> None:
        rv = self._rv
        change = _Change(rv, info.kind, event_type, obj, previous)
        self._history.append(change)
        if len(self._history) > self._history_limit:
            self._history_floor = self._history.popleft().resource_version
        meta = obj.metadata
        record = WriteRecord(
            verb,
            info.kind,
            meta.namespace,
            meta.name,
            subresource,
            rv,
            obj,
            event_type,
            field_manager,
        )
        self._pending.append((record, change))

    def _finish_request(self) -> None:
        """Run queued garbage collection, then deliver queued records and events in commit order."""
        while self._gc_queue or self._owner_rechecks:
            if self._gc_queue:
                self._collect_after_removal(self._gc_queue.popleft())
            else:
                self._recheck_owner(self._owner_rechecks.popleft())
        if self._delivering:
            return  # a write from inside a callback: the outer delivery loop picks it up
        self._delivering = True
        try:
            while self._pending:
                record, change = self._pending.popleft()
                if self._on_write is not None:
                    self._on_write(record)
                for watch in tuple(self._watchers.get(change.kind, ())):
                    watch._offer(change)
                indexed = self._node_watchers.get(change.kind)
                if indexed:
                    for watch in self._indexed_watchers(indexed, change):
                        watch._offer(change)
        finally:
            self._delivering = False

    # ----------------------------------------------------------------------------------
    # Create
    # ----------------------------------------------------------------------------------

    def create(self, obj: T, *, dry_run: bool = False) -> T:
        """Create an object and return it as stored.

        The server fills `metadata.name` from `generateName`, the namespace
        ("default" for namespaced kinds), uid, resourceVersion, generation 1 and
        creationTimestamp. A status sent with the object is reset for kinds with
        a status subresource, except Pod and Node: the kubelet registers nodes
        with their status, and static and imported pods carry theirs
        (kube-apiserver resets a pod's status). An empty pod phase becomes
        Pending. A `batch/v1` Job without `manualSelector: true` gets its
        generated selector and pod labels (`sim.api.validation.batch`). A
        resourceVersion sent with the object is ignored
        (kube-apiserver rejects it; ignoring it lets exported manifests load).
        With `dry_run` the result has an empty resourceVersion and nothing is
        stored.

        Raises:
            Invalid: validation failed.
            AlreadyExists: an object with this name exists.
            BadRequest: the kind is missing or does not match the object's class.
        """
        try:
            return self._create(obj, dry_run=dry_run, verb="create")
        finally:
            self._finish_request()

    def _create(self, obj: T, *, dry_run: bool, verb: str, field_manager: str = "") -> T:
        info = self._object_kind_info(obj)
        meta = obj.metadata
        namespace = self._scope_namespace(info, meta.namespace)
        if not meta.name and not meta.generate_name:
            raise Invalid(
                info.kind,
                "",
                [FieldError("metadata.name", "Required", "name or generateName is required")],
            )

        changes: dict[str, Any] = {
            "metadata": meta.model_copy(
                update={
                    "namespace": namespace,
                    "uid": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                    "resource_version": "",
                    "generation": 1,
                    "creation_timestamp": self._now(),
                    "deletion_timestamp": None,
                }
            )
        }
        if info.typed:
            # Typed classes fix apiVersion and kind; the fields stay empty, as the codec
            # leaves them, so that stored objects equal objects built in code.
            changes["api_version"] = ""
            changes["kind"] = ""
        elif not obj.api_version and info.api_version:
            changes["api_version"] = info.api_version
        candidate = obj.model_copy(update=changes)
        if info.has_status and info.kind not in _CREATE_KEEPS_STATUS:
            candidate = self._with_status(info, candidate, None)
        if isinstance(candidate, Pod) and not candidate.status.phase:
            status = candidate.status.model_copy(update={"phase": PodPhase.PENDING.value})
            candidate = candidate.model_copy(update={"status": status})
        candidate = apply_defaults(candidate)
        if not meta.name:
            candidate = candidate.with_meta(name=self._generate_name(info, candidate))
        # Create-only defaults need the final name and uid (a Job's generated selector).
        candidate = prepare_for_create(candidate)

        errors = validate_create(candidate)
        if errors:
            raise Invalid(info.kind, candidate.metadata.name, errors)
        if meta.name and (namespace, meta.name) in self._objects.get(info.kind, {}):
            raise self._already_exists(info, meta.name)
        defined: _KindInfo | None = None
        if info.kind == _CRD_KIND and isinstance(candidate, GenericObject):
            defined = self._crd_kind_info(candidate)

        if dry_run:
            return candidate
        stored = self._put(info, candidate, None, verb, field_manager=field_manager)
        if defined is not None:
            self._kinds[defined.kind] = defined
        return stored  # type: ignore[return-value]  # with_meta keeps the class of obj

    def _generate_name(self, info: _KindInfo, candidate: TopLevelObject) -> str:
        """Return generateName plus a random suffix that no stored object uses.

        Raises:
            AlreadyExists: every attempt collided with a stored name.
        """
        prefix = candidate.metadata.generate_name[:_MAX_GENERATE_NAME_PREFIX]
        objects = self._objects.get(info.kind, {})
        namespace = candidate.metadata.namespace
        name = ""
        for _ in range(_GENERATE_NAME_ATTEMPTS):
            suffix = "".join(self._rng.choice(_NAME_ALPHABET) for _ in range(_NAME_SUFFIX_LENGTH))
            name = prefix + suffix
            if (namespace, name) not in objects:
                break
        else:
            raise self._already_exists(info, name)
        return name

    def _crd_kind_info(self, crd: GenericObject) -> _KindInfo:
        """Validate a CustomResourceDefinition and return the kind it defines."""
        spec = _as_mapping(crd.body.get("spec"))
        names = _as_mapping(spec.get("names"))
        group = spec.get("group", "")
        kind = names.get("kind", "")
        plural = names.get("plural", "")
        scope = spec.get("scope", "")
        versions = [_as_mapping(v) for v in spec.get("versions") or ()]

        errors: _FieldErrorList = []
        if not isinstance(group, str) or not group:
            errors.append(FieldError("spec.group", "Required", ""))
        if not isinstance(kind, str) or not kind:
            errors.append(FieldError("spec.names.kind", "Required", ""))
        if not isinstance(plural, str) or not plural:
            errors.append(FieldError("spec.names.plural", "Required", ""))
        if scope not in ("Namespaced", "Cluster"):
            errors.append(
                FieldError("spec.scope", "NotSupported", '"Cluster", "Namespaced"', scope)
            )
        if not versions or not all(v.get("name") for v in versions):
            errors.append(
                FieldError("spec.versions", "Invalid", "must have at least one named version")
            )
        if not errors and crd.metadata.name != f"{plural}.{group}":
            errors.append(
                FieldError(
                    "metadata.name",
                    "Invalid",
                    'must be spec.names.plural+"."+spec.group',
                    crd.metadata.name,
                )
            )
        if not errors and kind in TYPED_KINDS:
            errors.append(FieldError("spec.names.kind", "Invalid", "is a built-in kind", kind))
        if errors:
            raise Invalid(_CRD_KIND, crd.metadata.name, errors)

        storage = next((v for v in versions if v.get("storage")), versions[0])
        api_version = f"{group}/{storage['name']}"
        has_status = any(
            isinstance(v.get("subresources"), Mapping) and "status" in v["subresources"]
            for v in versions
        )
        return _KindInfo(
            kind,
            api_version,
            scope == "Namespaced",
            has_status,
            _qualified_resource(plural, api_version),
            False,
        )

    # ----------------------------------------------------------------------------------
    # Status and content helpers
    # ----------------------------------------------------------------------------------

    @staticmethod
    def _status_of(info: _KindInfo, obj: TopLevelObject) -> Any:
        if isinstance(obj, GenericObject):
            return obj.body.get("status")
        return getattr(obj, "status", None)

    @staticmethod
    def _with_status(info: _KindInfo, obj: T, status: Any) -> T:
        """Return obj with the given status; None resets it to the empty status."""
        if isinstance(obj, GenericObject):
            body = {k: v for k, v in obj.body.items() if k != "status"}
            if status is not None:
                body["status"] = status
            return obj.model_copy(update={"body": body})
        if status is None:
            status = type(obj).model_fields["status"].get_default(call_default_factory=True)
        return obj.model_copy(update={"status": status})

    @staticmethod
    def _content_of(info: _KindInfo, obj: TopLevelObject) -> tuple[Any, ...]:
        """Return what bumps metadata.generation when it changes: all but metadata and status."""
        if isinstance(obj, GenericObject):
            if info.has_status:
                return tuple((k, v) for k, v in obj.body.items() if k != "status")
            return (obj.body,)
        return tuple(
            getattr(obj, name)
            for name in type(obj).model_fields
            if name not in ("api_version", "kind", "metadata", "status")
        )

    # ----------------------------------------------------------------------------------
    # Update and update status
    # ----------------------------------------------------------------------------------

    def update(self, obj: T, *, dry_run: bool = False) -> T:
        """Replace the main resource of a stored object and return the result.

        A non-empty `metadata.resourceVersion` must equal the stored one; an empty
        one updates unconditionally. Status changes are dropped (the stored status
        is kept), and uid, creationTimestamp and deletionTimestamp cannot change.
        generation is bumped when anything but metadata and status changed. An
        update identical to the stored object writes nothing and returns the
        stored object. Removing the last finalizer of a deleting object removes
        the object; the returned object then carries the removal's revision.

        Raises:
            NotFound: no such object.
            Conflict: the resourceVersion is stale.
            Invalid: validation failed, the uid differs, or finalizers were added
                to a deleting object.
        """
        try:
            return self._update(obj, dry_run=dry_run, verb="update")
        finally:
            self._finish_request()

    def _stored_for(self, info: _KindInfo, obj: T) -> T:
        """Return the stored object with obj's key, which has obj's kind and so obj's class."""
        namespace = self._scope_namespace(info, obj.metadata.namespace)
        stored = self._objects.get(info.kind, {}).get((namespace, obj.metadata.name))
        if stored is None:
            raise self._not_found(info, obj.metadata.name)
        return stored  # type: ignore[return-value]

    def _check_write_preconditions(
        self, info: _KindInfo, obj: TopLevelObject, stored: TopLevelObject
    ) -> None:
        meta = obj.metadata
        if meta.resource_version and meta.resource_version != stored.metadata.resource_version:
            raise self._conflict(info, meta.name, _OPTIMISTIC_LOCK_MESSAGE)
        if meta.uid and meta.uid != stored.metadata.uid:
            raise Invalid(
                info.kind,
                meta.name,
                [FieldError("metadata.uid", "Invalid", "field is immutable", meta.uid)],
            )

    def _update(self, obj: T, *, dry_run: bool, verb: str, field_manager: str = "") -> T:
        info = self._object_kind_info(obj)
        stored = self._stored_for(info, obj)
        self._check_write_preconditions(info, obj, stored)
        old = stored.metadata

        meta = obj.metadata.model_copy(
            update={
                "namespace": old.namespace,
                "uid": old.uid,
                "resource_version": old.resource_version,
                "generation": old.generation,
                "creation_timestamp": old.creation_timestamp,
                "deletion_timestamp": old.deletion_timestamp,
            }
        )
        changes: dict[str, Any] = {"metadata": meta}
        if info.typed:
            changes["api_version"] = ""
            changes["kind"] = ""
        elif not obj.api_version:
            changes["api_version"] = stored.api_version
        candidate = obj.model_copy(update=changes)
        if info.has_status:
            candidate = self._with_status(info, candidate, self._status_of(info, stored))
        candidate = apply_defaults(candidate)
        if self._content_of(info, candidate) != self._content_of(info, stored):
            candidate = candidate.with_meta(generation=old.generation + 1)
        elif candidate == stored:
            return stored

        errors = validate_update(candidate, stored)
        if errors:
            raise Invalid(info.kind, meta.name, errors)
        return self._commit_update(info, candidate, stored, verb, "", field_manager, dry_run)

    def _commit_update(
        self,
        info: _KindInfo,
        candidate: T,
        stored: TopLevelObject,
        verb: str,
        subresource: str,
        field_manager: str,
        dry_run: bool,
    ) -> T:
        """Store an updated object, or remove it when it is deleting and has no finalizers left."""
        removes = (
            candidate.metadata.deletion_timestamp is not None and not candidate.metadata.finalizers
        )
        if dry_run:
            return candidate
        if removes:
            return self._remove(info, candidate, stored, verb, subresource, field_manager)  # type: ignore[return-value]
        return self._put(info, candidate, stored, verb, subresource, field_manager)  # type: ignore[return-value]

    def update_status(self, obj: T, *, dry_run: bool = False) -> T:
        """Replace the status of a stored object through the status subresource.

        The stored spec and metadata are kept whatever `obj` carries; only its
        resourceVersion (precondition) and uid (must match) are checked. A status
        equal to the stored one writes nothing.

        Raises:
            NotFound: no such object, or the kind has no status subresource.
            Conflict: the resourceVersion is stale.
            Invalid: validation of the status update failed.
        """
        try:
            return self._update_status(obj, dry_run=dry_run, verb="update")
        finally:
            self._finish_request()

    def _update_status(self, obj: T, *, dry_run: bool, verb: str, field_manager: str = "") -> T:
        info = self._object_kind_info(obj)
        if not info.has_status:
            raise NotFound(
                f"the server could not find the requested resource ({info.resource}/status)"
            )
        stored = self._stored_for(info, obj)
        self._check_write_preconditions(info, obj, stored)

        status = self._status_of(info, obj)
        if status == self._status_of(info, stored):
            return stored
        candidate = self._with_status(info, stored, status)
        errors = validate_status_update(candidate, stored)
        if errors:
            raise Invalid(info.kind, stored.metadata.name, errors)
        return self._commit_update(info, candidate, stored, verb, "status", field_manager, dry_run)

    # ----------------------------------------------------------------------------------
    # Patch
    # ----------------------------------------------------------------------------------

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
        dry_run: bool = False,
    ) -> TopLevelObject:
        """Patch an object and store the result through the update or update-status path.

        The patch applies to the object's JSON form (`sim.api.codec.to_dict`),
        which is then decoded strictly: unknown fields are a BadRequest.
        `patch` is a dict (merge, apply), a list of operations (json), or the
        same as JSON text. The stored resourceVersion is in the patched
        document, so a patch is unconditional unless it sets
        `metadata.resourceVersion` itself.

        patch_type "apply" (server-side apply) is a merge patch that also creates
        the object when it does not exist. `field_manager` is recorded in the
        `WriteRecord`; `force` is accepted, because conflicts between field
        managers are not modelled.

        Raises:
            NotFound: no such object (except for apply on the main resource).
            BadRequest: the patch cannot be parsed, has an unsupported type, or
                yields an undecodable object or another name.
            Invalid: a JSON patch operation does not apply (HTTP 422, which is
                what kube-apiserver returns for a failed "test" or a missing
                path), or the patched object fails validation.
            Conflict: the patch sets a stale resourceVersion.
        """
        try:
            return self._patch(
                kind, name, namespace, patch, patch_type, subresource, field_manager, force, dry_run
            )
        finally:
            self._finish_request()

    def _patch(
        self,
        kind: str,
        name: str,
        namespace: str,
        patch: Any,
        patch_type: str,
        subresource: str,
        field_manager: str,
        force: bool,
        dry_run: bool,
    ) -> TopLevelObject:
        del force  # accepted for compatibility; field-manager conflicts are not modelled
        if patch_type not in _PATCH_TYPES:
            raise BadRequest(
                f"unsupported patch type {patch_type!r}; use one of {', '.join(_PATCH_TYPES)}"
            )
        if subresource not in ("", "status"):
            raise BadRequest(f'unsupported subresource {subresource!r}; use "" or "status"')
        if isinstance(patch, str | bytes):
            try:
                patch = json.loads(patch)
            except ValueError as exc:
                raise BadRequest(f"invalid JSON in patch: {exc}") from exc
        if patch_type == "json":
            if not isinstance(patch, list):
                raise BadRequest(
                    f"a JSON patch must be a list of operations, got {type(patch).__name__}"
                )
        elif not isinstance(patch, Mapping):
            raise BadRequest(
                f"a {patch_type} patch must be a JSON object, got {type(patch).__name__}"
            )

        info = self._kind_info(kind)
        scope_namespace = self._scope_namespace(info, namespace)
        stored = self._objects.get(kind, {}).get((scope_namespace, name))
        if stored is None:
            if patch_type == "apply" and subresource == "":
                return self._apply_create(
                    info, name, scope_namespace, patch, field_manager, dry_run
                )
            raise self._not_found(info, name)

        if patch_type != "json":
            merged = self._merge_patch_fields(info, name, scope_namespace, stored, patch)
            if merged is not None:
                if subresource == "status":
                    return self._update_status(
                        merged, dry_run=dry_run, verb="patch", field_manager=field_manager
                    )
                return self._update(
                    merged, dry_run=dry_run, verb="patch", field_manager=field_manager
                )
        document = to_dict(stored)
        if patch_type == "json":
            try:
                patched = json_patch(document, patch)
            except _PatchApplyError as exc:
                error = FieldError(exc.pointer, "Invalid", exc.detail, exc.operation)
                raise Invalid(info.kind, name, [error]) from exc
        else:
            patched = merge_patch(document, patch)
        obj = self._decode_patched(info, name, scope_namespace, patched)
        verb = "patch"
        if subresource == "status":
            return self._update_status(obj, dry_run=dry_run, verb=verb, field_manager=field_manager)
        return self._update(obj, dry_run=dry_run, verb=verb, field_manager=field_manager)

    def _decode_patched(
        self, info: _KindInfo, name: str, namespace: str, patched: Any
    ) -> TopLevelObject:
        if not isinstance(patched, Mapping):
            raise BadRequest(f"the patched {info.kind} is not a JSON object")
        obj = self._decode_typed_fast(info, patched)
        if obj is None:
            obj = self._decode_strict(info, name, patched)
        meta = obj.metadata
        if meta.name != name or self._scope_namespace(info, meta.namespace) != namespace:
            raise BadRequest(
                f"the name of the object ({meta.namespace}/{meta.name}) does not match the name "
                f"on the URL ({namespace}/{name})"
            )
        return obj

    @staticmethod
    def _merge_patch_fields(
        info: _KindInfo,
        name: str,
        namespace: str,
        stored: TopLevelObject,
        patch: Mapping[str, Any],
    ) -> TopLevelObject | None:
        """Apply a merge patch field by field to a typed object; None when it needs the slow path.

        A merge patch merges each top-level key on its own, so only the fields
        the patch names are encoded, merged and decoded again (strictly, from
        JSON). A patch that names an unknown field, deletes a whole field,
        changes the name or does not decode returns None, and the whole-object
        path then reports the error as before.
        """
        cls = TYPED_KINDS.get(info.kind)
        if cls is None or type(stored) is not cls:
            return None
        fields = _model_fields_by_alias(cls)
        update: dict[str, Any] = {}
        for key, value in patch.items():
            if key == "apiVersion" and value == cls.API_VERSION:
                continue
            if key == "kind" and value == info.kind:
                continue
            field = fields.get(key)
            if field is None or not isinstance(value, Mapping):
                return None
            field_name, model_type = field
            current = getattr(stored, field_name)
            document = (
                current.model_dump(mode="json", by_alias=True, exclude_defaults=True)
                if current is not None
                else {}
            )
            try:
                update[field_name] = model_type.model_validate_json(
                    json.dumps(merge_patch(document, value)), strict=True
                )
            except ValueError:
                return None
        merged = stored.model_copy(update=update)
        meta = merged.metadata
        if meta.name != name or meta.namespace != namespace:
            return None
        return merged

    @staticmethod
    def _decode_typed_fast(info: _KindInfo, patched: Mapping[str, Any]) -> TopLevelObject | None:
        """Decode a patched typed object with one strict pydantic pass; None if that fails.

        Most patches come from components and are valid, and the codec's field walk
        (which only serves precise error messages) costs more than the patch itself.
        """
        cls = TYPED_KINDS.get(info.kind)
        if cls is None or patched.get("kind") != info.kind:
            return None
        if patched.get("apiVersion") != cls.API_VERSION:
            return None
        body = {key: value for key, value in patched.items() if key not in ("apiVersion", "kind")}
        try:
            return cls.model_validate_json(json.dumps(body), strict=True)
        except ValueError:
            return None

    @staticmethod
    def _decode_strict(info: _KindInfo, name: str, patched: Mapping[str, Any]) -> TopLevelObject:
        try:
            obj, _ = from_dict(patched, source=f"patch of {info.kind} {name}")
        except (ManifestError, ValueError) as exc:
            raise BadRequest(f"the patched {info.kind} {name!r} cannot be decoded: {exc}") from exc
        if kind_of(obj) != info.kind:
            raise BadRequest(f"the patch changes kind {info.kind} to {kind_of(obj)}")
        return obj

    def _apply_create(
        self,
        info: _KindInfo,
        name: str,
        namespace: str,
        patch: Mapping[str, Any],
        field_manager: str,
        dry_run: bool,
    ) -> TopLevelObject:
        document = merge_patch({}, patch)
        metadata = document.setdefault("metadata", {})
        metadata.setdefault("name", name)
        if namespace:
            metadata.setdefault("namespace", namespace)
        document.setdefault("kind", info.kind)
        if info.api_version:
            document.setdefault("apiVersion", info.api_version)
        obj = self._decode_patched(info, name, namespace, document)
        return self._create(obj, dry_run=dry_run, verb="patch", field_manager=field_manager)

    # ----------------------------------------------------------------------------------
    # Delete and garbage collection
    # ----------------------------------------------------------------------------------

    def delete(
        self,
        kind: str,
        name: str,
        namespace: str = "",
        *,
        propagation_policy: str = "Background",
        uid_precondition: str | None = None,
        resource_version_precondition: str | None = None,
        dry_run: bool = False,
    ) -> TopLevelObject | None:
        """Delete an object; return it when finalizers keep it, or None when it was removed.

        An object with finalizers only gets `deletionTimestamp` (set once, with a
        generation bump). Dependents (objects with an ownerReference to its uid)
        are handled by `propagation_policy`:

        * Background: removed after the owner is gone.
        * Foreground: the owner gets the `foregroundDeletion` finalizer, the
          dependents are deleted, and the owner goes once no dependent with
          `blockOwnerDeletion: true` remains.
        * Orphan: the owner gets the `orphan` finalizer, the ownerReferences to it
          are removed from the dependents, and then the owner goes.

        With `synchronous_gc` all of this happens inside this call; otherwise only
        the owner's own write does, and an external collector finishes the rest.

        Raises:
            NotFound: no such object.
            Conflict: a uid or resourceVersion precondition failed.
            Invalid: unknown propagation policy.
        """
        try:
            info = self._kind_info(kind)
            self._check_policy(propagation_policy)
            stored = self._objects.get(kind, {}).get((self._scope_namespace(info, namespace), name))
            if stored is None:
                raise self._not_found(info, name)
            self._check_delete_preconditions(
                info, stored, uid_precondition, resource_version_precondition
            )
            return self._delete_object(info, stored, propagation_policy, "delete", dry_run=dry_run)
        finally:
            self._finish_request()

    def delete_collection(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
        propagation_policy: str = "Background",
    ) -> int:
        """Delete every matching object as `delete` does; return how many matched.

        Objects kept by finalizers count as deleted, as in kube-apiserver's
        deletecollection response.
        """
        try:
            self._check_policy(propagation_policy)
            matched = self.list(
                kind, namespace, label_selector=label_selector, field_selector=field_selector
            )
            info = self._kind_info(kind)
            for obj in matched.items:
                meta = obj.metadata
                current = self._objects.get(kind, {}).get((meta.namespace, meta.name))
                if current is not None and current.metadata.uid == meta.uid:
                    self._delete_object(info, current, propagation_policy, "deletecollection")
            return len(matched.items)
        finally:
            self._finish_request()

    @staticmethod
    def _check_policy(policy: str) -> None:
        if policy not in _PROPAGATION_POLICIES:
            supported = ", ".join(f'"{p}"' for p in _PROPAGATION_POLICIES)
            raise Invalid(
                "DeleteOptions",
                "",
                [FieldError("propagationPolicy", "NotSupported", supported, policy)],
            )

    def _check_delete_preconditions(
        self, info: _KindInfo, stored: TopLevelObject, uid: str | None, resource_version: str | None
    ) -> None:
        meta = stored.metadata
        if uid is not None and uid != meta.uid:
            raise self._conflict(
                info,
                meta.name,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta.uid}",
            )
        if resource_version is not None and resource_version != meta.resource_version:
            raise self._conflict(
                info,
                meta.name,
                f"Precondition failed: ResourceVersion in precondition: {resource_version}, "
                f"ResourceVersion in object meta: {meta.resource_version}",
            )

    def _delete_object(
        self,
        info: _KindInfo,
        stored: TopLevelObject,
        policy: str,
        verb: str,
        *,
        dry_run: bool = False,
    ) -> TopLevelObject | None:
        meta = stored.metadata
        gc_finalizer = {
            "Orphan": FINALIZER_ORPHAN,
            "Foreground": FINALIZER_FOREGROUND_DELETION,
        }.get(policy)
        finalizers = tuple(f for f in meta.finalizers if f not in _GC_FINALIZERS)
        # With synchronous GC an owner without dependents needs no GC finalizer: nothing
        # would be orphaned or waited for.
        if gc_finalizer is not None and (not self._synchronous_gc or meta.uid in self._dependents):
            finalizers += (gc_finalizer,)

        if not finalizers:
            if not dry_run:
                self._remove(info, stored, stored, verb)
            return None

        if meta.deletion_timestamp is not None and finalizers == meta.finalizers:
            current = stored
        else:
            changes: dict[str, Any] = {"finalizers": finalizers}
            if meta.deletion_timestamp is None:
                changes["deletion_timestamp"] = self._now()
                changes["generation"] = meta.generation + 1
            candidate = stored.with_meta(**changes)
            if dry_run:
                return candidate  # type: ignore[no-any-return]
            current = self._put(info, candidate, stored, verb)
        if dry_run:
            return current

        key = (meta.namespace, meta.name)
        if self._synchronous_gc and gc_finalizer in current.metadata.finalizers:
            if gc_finalizer == FINALIZER_ORPHAN:
                self._orphan_dependents(current)
            else:
                self._delete_dependents_in_foreground(current)
            owner = self._objects[info.kind].get(key)
            if owner is not None and gc_finalizer == FINALIZER_ORPHAN:
                self._drop_finalizer(info, owner, FINALIZER_ORPHAN)
            elif owner is not None:
                self._finish_foreground(info, owner)
        return self._objects.get(info.kind, {}).get(key)

    def _drop_finalizer(self, info: _KindInfo, obj: TopLevelObject, finalizer: str) -> None:
        """Remove a GC finalizer; the object goes when it was the last one."""
        remaining = tuple(f for f in obj.metadata.finalizers if f != finalizer)
        self._commit_update(info, obj.with_meta(finalizers=remaining), obj, "patch", "", "", False)

    def _dependent_objects(self, owner_uid: str) -> _DependentList:
        result: _DependentList = []
        for kind, namespace, name in sorted(self._dependents.get(owner_uid, ())):
            obj = self._objects.get(kind, {}).get((namespace, name))
            if obj is not None:
                result.append((self._kind_info(kind), obj))
        return result

    def _drop_owner_references(self, info: _KindInfo, obj: TopLevelObject, uids: set[str]) -> None:
        refs = tuple(r for r in obj.metadata.owner_references if r.uid not in uids)
        self._put(info, obj.with_meta(owner_references=refs), obj, "patch")

    def _orphan_dependents(self, owner: TopLevelObject) -> None:
        for info, dependent in self._dependent_objects(owner.metadata.uid):
            self._drop_owner_references(info, dependent, {owner.metadata.uid})

    def _delete_dependents_in_foreground(self, owner: TopLevelObject) -> None:
        """Delete the dependents of an owner in foreground deletion, as the garbage collector does.

        A dependent that still has another existing owner only loses its reference
        to this one. A dependent that has dependents itself is deleted in the
        foreground too, so that its blocking dependents also block this owner.
        """
        owner_uid = owner.metadata.uid
        for info, dependent in self._dependent_objects(owner_uid):
            if dependent.metadata.deletion_timestamp is not None:
                continue  # already on its way out; it blocks until its finalizers are gone
            other_owners = [
                r
                for r in dependent.metadata.owner_references
                if r.uid != owner_uid and r.uid in self._by_uid
            ]
            if other_owners:
                self._drop_owner_references(info, dependent, {owner_uid})
                continue
            policy = "Foreground" if dependent.metadata.uid in self._dependents else "Background"
            self._delete_object(info, dependent, policy, "delete")

    def _blocking_dependents(self, owner_uid: str) -> _ObjectList:
        return [
            obj
            for _, obj in self._dependent_objects(owner_uid)
            if any(
                r.uid == owner_uid and r.block_owner_deletion for r in obj.metadata.owner_references
            )
        ]

    def _finish_foreground(self, info: _KindInfo, owner: TopLevelObject) -> bool:
        if FINALIZER_FOREGROUND_DELETION not in owner.metadata.finalizers:
            return False
        if self._blocking_dependents(owner.metadata.uid):
            return False
        self._drop_finalizer(info, owner, FINALIZER_FOREGROUND_DELETION)
        return True

    def _collect_after_removal(self, removed: TopLevelObject) -> None:
        """Synchronous GC after an object is gone: collect its dependents, unblock its owners."""
        for info, dependent in self._dependent_objects(removed.metadata.uid):
            if dependent.metadata.deletion_timestamp is not None:
                continue  # already being deleted; its own finalizers decide when it goes
            refs = dependent.metadata.owner_references
            dangling = {r.uid for r in refs if r.uid not in self._by_uid}
            if len(dangling) < len({r.uid for r in refs}):
                self._drop_owner_references(info, dependent, dangling)
            else:
                self._delete_object(info, dependent, "Background", "delete")
        self._owner_rechecks.extend(r.uid for r in removed.metadata.owner_references)

    def _recheck_owner(self, uid: str) -> None:
        """Finish the foreground deletion of an owner whose dependents changed."""
        owner_key = self._by_uid.get(uid)
        if owner_key is None:
            return
        kind, namespace, name = owner_key
        owner = self._objects[kind][(namespace, name)]
        if owner.metadata.deletion_timestamp is not None:
            self._finish_foreground(self._kind_info(kind), owner)

    def dependents_of(self, uid: str) -> _ObjectList:
        """Return the stored objects with an ownerReference to `uid`, by (kind, namespace, name).

        The index also lists the dependents of owners that are already gone, so
        a garbage collector finds the objects left behind by a Background deletion.
        """
        return [obj for _, obj in self._dependent_objects(uid)]

    def finish_foreground_deletion(self, kind: str, name: str, namespace: str = "") -> bool:
        """Remove the `foregroundDeletion` finalizer once no blocking dependent remains.

        For an external garbage collector, after it deleted the dependents. The
        owner is removed when no other finalizer keeps it.

        Returns:
            Whether the finalizer was removed; False while a dependent with
            `blockOwnerDeletion: true` exists or when the finalizer is absent.

        Raises:
            NotFound: no such object.
        """
        try:
            info = self._kind_info(kind)
            owner = self.get(kind, name, namespace)
            return self._finish_foreground(info, owner)
        finally:
            self._finish_request()

    def finish_orphan_deletion(self, kind: str, name: str, namespace: str = "") -> bool:
        """Remove ownerReferences to an owner deleted with Orphan, then its `orphan` finalizer.

        For an external garbage collector. Returns whether the finalizer was there.

        Raises:
            NotFound: no such object.
        """
        try:
            info = self._kind_info(kind)
            owner = self.get(kind, name, namespace)
            if FINALIZER_ORPHAN not in owner.metadata.finalizers:
                return False
            self._orphan_dependents(owner)
            self._drop_finalizer(info, owner, FINALIZER_ORPHAN)
            return True
        finally:
            self._finish_request()

    # ----------------------------------------------------------------------------------
    # pods/binding
    # ----------------------------------------------------------------------------------

    def bind(
        self, namespace: str, pod_name: str, node_name: str, *, pod_uid: str | None = None
    ) -> Pod:
        """Bind a pod to a node (POST pods/binding): set spec.nodeName and PodScheduled=True.

        Raises:
            NotFound: no such pod.
            Conflict: the uid precondition failed, the pod is being deleted, or it
                is already assigned to a node.
            Invalid: node_name is empty.
        """
        try:
            return self._bind(namespace, pod_name, node_name, pod_uid)
        finally:
            self._finish_request()

    def _bind(self, namespace: str, pod_name: str, node_name: str, pod_uid: str | None) -> Pod:
        info = self._kinds["Pod"]
        if not node_name:
            raise Invalid("Binding", pod_name, [FieldError("target.name", "Required", "")])
        stored = self._objects.get("Pod", {}).get(
            (self._scope_namespace(info, namespace), pod_name)
        )
        if not isinstance(stored, Pod):
            raise self._not_found(info, pod_name)
        self._check_delete_preconditions(info, stored, pod_uid, None)
        if stored.metadata.deletion_timestamp is not None:
            raise Conflict(
                f'Operation cannot be fulfilled on pods/binding "{pod_name}": '
                f"pod {pod_name} is being deleted, cannot be assigned to a host"
            )
        if stored.spec.node_name:
            raise Conflict(
                f'Operation cannot be fulfilled on pods/binding "{pod_name}": '
                f'pod {pod_name} is already assigned to node "{stored.spec.node_name}"'
            )

        conditions = [c for c in stored.status.conditions if c.type != "PodScheduled"]
        previous = next((c for c in stored.status.conditions if c.type == "PodScheduled"), None)
        if previous is not None and previous.status == "True":
            scheduled = previous
        else:
            scheduled = PodCondition(
                type="PodScheduled", status="True", last_transition_time=self._now()
            )
        conditions.append(scheduled)
        bound = stored.model_copy(
            update={
                "spec": stored.spec.model_copy(update={"node_name": node_name}),
                "status": stored.status.model_copy(update={"conditions": tuple(conditions)}),
            }
        )
        result = self._put(info, bound, stored, "create", "binding")
        assert isinstance(result, Pod)
        return result

    # ----------------------------------------------------------------------------------
    # Errors
    # ----------------------------------------------------------------------------------

    @staticmethod
    def _not_found(info: _KindInfo, name: str) -> NotFound:
        return NotFound(f'{info.resource} "{name}" not found')

    @staticmethod
    def _already_exists(info: _KindInfo, name: str) -> AlreadyExists:
        return AlreadyExists(f'{info.resource} "{name}" already exists')

    @staticmethod
    def _conflict(info: _KindInfo, name: str, reason: str) -> Conflict:
        return Conflict(f'Operation cannot be fulfilled on {info.resource} "{name}": {reason}')
