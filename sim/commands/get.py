"""The `dra-sim get` command: read the objects of a finished run as `kubectl get` reads a cluster.

`dra-sim get RESULTS KIND [NAME]` prints the objects of one kind as they
stood at the end of the run (or at `--at SECONDS`), from the run's
`objects.parquet` (see `sim.metrics.objects`). Kinds take the names and
short names kubectl accepts (`pods`, `po`, `resourceclaims`, `deploy`,
...). The default output is kubectl's table for that kind, `-o wide` adds
its wide columns, and `-o yaml` / `-o json` print the objects in their
Kubernetes wire form, as a `kind: List` unless one NAME is given.

The tables follow kubectl 1.29 and the kube-apiserver table printers of
1.27-1.29. Where the simulator lacks a field that kubectl shows, the column
is derived from what it has (see `pod_status`, `node_status`) or shows
`<none>`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from sim.api.server import parse_timestamp
from sim.cluster.client import resource_name
from sim.metrics.objects import ObjectHistory, ObjectHistoryError

OUTPUT_FORMATS = ("yaml", "json", "wide")
NONE = "<none>"

KIND_ALIASES: dict[str, str] = {
    "pods": "Pod",
    "pod": "Pod",
    "po": "Pod",
    "nodes": "Node",
    "node": "Node",
    "no": "Node",
    "namespaces": "Namespace",
    "namespace": "Namespace",
    "ns": "Namespace",
    "configmaps": "ConfigMap",
    "configmap": "ConfigMap",
    "cm": "ConfigMap",
    "resourceclaims": "ResourceClaim",
    "resourceclaim": "ResourceClaim",
    "resourceclaimtemplates": "ResourceClaimTemplate",
    "resourceclaimtemplate": "ResourceClaimTemplate",
    "resourceclasses": "ResourceClass",
    "resourceclass": "ResourceClass",
    "podschedulingcontexts": "PodSchedulingContext",
    "podschedulingcontext": "PodSchedulingContext",
    "deployments": "Deployment",
    "deployment": "Deployment",
    "deploy": "Deployment",
    "replicasets": "ReplicaSet",
    "replicaset": "ReplicaSet",
    "rs": "ReplicaSet",
    "jobs": "Job",
    "job": "Job",
    "customresourcedefinitions": "CustomResourceDefinition",
    "customresourcedefinition": "CustomResourceDefinition",
    "crd": "CustomResourceDefinition",
    "crds": "CustomResourceDefinition",
}
"""kubectl resource names, singular names and short names of the kinds a run can contain."""

KIND_GROUPS: dict[str, str] = {
    "ResourceClaim": "resource.k8s.io",
    "ResourceClaimTemplate": "resource.k8s.io",
    "ResourceClass": "resource.k8s.io",
    "PodSchedulingContext": "resource.k8s.io",
    "Deployment": "apps",
    "ReplicaSet": "apps",
    "Job": "batch",
    "CustomResourceDefinition": "apiextensions.k8s.io",
}
"""API group of the kinds above outside the core group (as in `resourceclaims.resource.k8s.io`)."""

CLUSTER_SCOPED_KINDS = frozenset({"Node", "Namespace", "ResourceClass", "CustomResourceDefinition"})


class GetError(ValueError):
    """A `dra-sim get` request that fails: an unknown kind, a missing object, a bad option."""


# --------------------------------------------------------------------------------------
# Kinds
# --------------------------------------------------------------------------------------


def plural_name(kind: str) -> str:
    """Return the resource name kubectl uses for a kind (`pods`, `resourceclasses`, ...).

    Kinds that already end in "s", such as driver `GpuClaimParameters`, are
    their own plural, as their CustomResourceDefinitions declare.
    """
    for name, aliased in KIND_ALIASES.items():
        if aliased == kind:
            return name
    lower = kind.lower()
    return lower if lower.endswith("s") else resource_name(kind)


def resolve_kind(text: str, run_kinds: Iterable[str] = ()) -> str:
    """Return the kind that a kubectl resource argument names.

    Accepts the names in `KIND_ALIASES`, with or without the API group
    (`resourceclaims.resource.k8s.io`), and for the other kinds of the run
    (driver parameter objects) the kind, its lower-case form or its plural.

    Raises:
        GetError: no kind has this name.
    """
    wanted = text.strip().lower()
    name, _, group = wanted.partition(".")
    kind = KIND_ALIASES.get(name)
    if kind is not None and (not group or group == KIND_GROUPS.get(kind, "")):
        return kind
    for candidate in run_kinds:
        names = {candidate.lower(), plural_name(candidate)}
        if wanted in names or name in names:
            return candidate
    known = sorted({*KIND_ALIASES.values(), *run_kinds})
    raise GetError(
        f"unknown resource type {text!r}; known types: "
        + ", ".join(plural_name(kind) for kind in known)
    )


def is_namespaced(kind: str, run_scopes: Mapping[str, bool]) -> bool:
    """Whether objects of `kind` live in namespaces (from the run's objects when it has any)."""
    if kind in run_scopes:
        return run_scopes[kind]
    return kind not in CLUSTER_SCOPED_KINDS


# --------------------------------------------------------------------------------------
# Selecting objects
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """The selection of one `dra-sim get` call: kind, optional name, namespace, time."""

    kind: str
    name: str | None = None
    namespace: str = "default"
    all_namespaces: bool = False
    at_s: float | None = None


def select_objects(history: ObjectHistory, request: Request) -> list[dict[str, Any]]:
    """Return the objects that a request selects, in (namespace, name) order.

    Raises:
        GetError: one NAME was asked for and no such object existed at the time.
        ObjectHistoryError: the time is outside the run.
    """
    namespaced = is_namespaced(request.kind, history.kinds())
    selected = []
    for obj in history.objects_at(request.at_s):
        if obj.get("kind") != request.kind:
            continue
        metadata = obj.get("metadata", {})
        other_namespace = metadata.get("namespace", "") != request.namespace
        if namespaced and not request.all_namespaces and other_namespace:
            continue
        if request.name is not None and metadata.get("name") != request.name:
            continue
        selected.append(obj)
    if request.name is not None and not selected:
        where = f" in namespace {request.namespace!r}" if namespaced else ""
        when = f" at {request.at_s:g} s" if request.at_s is not None else ""
        raise GetError(f'{plural_name(request.kind)} "{request.name}" not found{where}{when}')
    return selected


# --------------------------------------------------------------------------------------
# Column values
# --------------------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """Format a duration as kubectl's AGE column does (apimachinery's `HumanDuration`).

    The unit grows with the duration:

    * below 2 minutes: seconds (`119s`);
    * below 10 minutes: minutes and seconds (`9m59s`);
    * below 3 hours: minutes (`179m`);
    * below 8 hours: hours and minutes (`3h1m`);
    * below 2 days: hours (`47h`);
    * below 8 days: days and hours (`2d2h`);
    * below 2 years: days (`8d`);
    * below 8 years: years and days (`2y70d`), then years.
    """
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = divmod(hours // 24, 365)
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


@dataclass(frozen=True)
class TableContext:
    """Values that table cells use besides the object."""

    now_s: float
    """The simulated time the table describes, seconds (for AGE and DURATION)."""
    kubernetes_version: str = ""
    """The simulated Kubernetes version, such as 1.29 (for the nodes' VERSION)."""


def _age(obj: Mapping[str, Any], context: TableContext) -> str:
    created = obj.get("metadata", {}).get("creationTimestamp")
    if not created:
        return NONE
    return human_duration(context.now_s - parse_timestamp(created))


def _field(obj: Mapping[str, Any], *path: str, default: Any = None) -> Any:
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return default
        value = value[key]
    return value


def _text(value: Any) -> str:
    return NONE if value in (None, "") else str(value)


def pod_status(pod: Mapping[str, Any]) -> str:
    """Return the STATUS column of a pod.

    kubectl shows the phase unless a container state or the pod has a more
    specific reason. The simulator writes no container statuses, so this
    function derives the reasons they would give. A bound pod that has not
    started is ContainerCreating. A Succeeded pod is Completed, because its
    containers exited with 0, and a Failed one is Error. A pod with a
    deletionTimestamp is Terminating.
    """
    phase = _field(pod, "status", "phase", default="") or "Pending"
    if _field(pod, "metadata", "deletionTimestamp"):
        return "Terminating"
    if phase == "Succeeded":
        return "Completed"
    if phase == "Failed":
        return "Error"
    if phase == "Pending":
        if _field(pod, "spec", "nodeName"):
            return "ContainerCreating"
        for condition in _field(pod, "status", "conditions", default=()):
            if condition.get("type") == "PodScheduled" and condition.get("reason") == (
                "SchedulingGated"
            ):
                return "SchedulingGated"
    return str(phase)


def _pod_ready(pod: Mapping[str, Any]) -> str:
    containers = len(_field(pod, "spec", "containers", default=()))
    running = _field(pod, "status", "phase") == "Running" and not _field(
        pod, "metadata", "deletionTimestamp"
    )
    return f"{containers if running else 0}/{containers}"


def resource_claim_state(claim: Mapping[str, Any]) -> str:
    """Return the STATE column of a ResourceClaim (the 1.27-1.29 server-side printer).

    The state lists, joined with commas:

    * `deleted` when a deletionTimestamp is set;
    * `pending` when the claim is not allocated and not deleted;
    * `allocated` when it is, followed by `reserved` when `reservedFor` has
      entries, or else by `deallocating` when deletion or deallocation is
      requested.

    Examples: `allocated,reserved`, `deleted,allocated,deallocating`.

    NOTE: written from the kube-apiserver printer of 1.27-1.29 as we know it
    (`resourceClaimState`); later releases dropped `deallocating`.
    """
    states = []
    deleted = bool(_field(claim, "metadata", "deletionTimestamp"))
    if deleted:
        states.append("deleted")
    if _field(claim, "status", "allocation") is None:
        if not deleted:
            states.append("pending")
    else:
        states.append("allocated")
        if _field(claim, "status", "reservedFor"):
            states.append("reserved")
        elif deleted or _field(claim, "status", "deallocationRequested"):
            states.append("deallocating")
    return ",".join(states)


def node_status(node: Mapping[str, Any]) -> str:
    """Return the STATUS column of a node.

    Simulated nodes carry no conditions and are always ready, so a node is
    Ready unless a Ready condition reports otherwise; cordoned nodes add
    SchedulingDisabled, as kubectl shows them.
    """
    status = "Ready"
    for condition in _field(node, "status", "conditions", default=()):
        if condition.get("type") == "Ready" and condition.get("status") != "True":
            status = "NotReady" if condition.get("status") == "False" else "Unknown"
    if _field(node, "spec", "unschedulable"):
        status += ",SchedulingDisabled"
    return status


def _containers(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    containers = _field(obj, "spec", "template", "spec", "containers", default=[])
    return [c for c in containers if isinstance(c, Mapping)]


def _container_names(obj: Mapping[str, Any]) -> str:
    return _text(",".join(str(c.get("name", "")) for c in _containers(obj)))


def _container_images(obj: Mapping[str, Any]) -> str:
    return _text(",".join(str(c.get("image", "")) for c in _containers(obj)))


def format_label_selector(selector: Any) -> str:
    """Format a metav1.LabelSelector as kubectl's SELECTOR column (`app=web,tier in (a,b)`)."""
    if not isinstance(selector, Mapping):
        return NONE
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or ():
        key = expression.get("key", "")
        operator = expression.get("operator", "")
        values = ",".join(expression.get("values") or ())
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) or NONE


def _job_completions(job: Mapping[str, Any]) -> str:
    succeeded = int(_field(job, "status", "succeeded", default=0) or 0)
    completions = _field(job, "spec", "completions")
    if completions is not None:
        return f"{succeeded}/{completions}"
    parallelism = _field(job, "spec", "parallelism", default=1)
    if parallelism is not None and parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def _job_duration(job: Mapping[str, Any], context: TableContext) -> str:
    start = _field(job, "status", "startTime")
    if not start:
        return ""
    end = _field(job, "status", "completionTime")
    end_s = parse_timestamp(end) if end else context.now_s
    return human_duration(end_s - parse_timestamp(start))


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------

Cell = Callable[[Mapping[str, Any], TableContext], str]
"""A column value from an object and the table's context."""


@dataclass(frozen=True)
class Column:
    """One table column: its header, how to compute it, and whether only `-o wide` shows it."""

    header: str
    value: Cell
    wide: bool = False


def _name(obj: Mapping[str, Any], _context: TableContext) -> str:
    return str(_field(obj, "metadata", "name", default=""))


NAME = Column("NAME", _name)
AGE = Column("AGE", _age)
WORKLOAD_WIDE_COLUMNS = (
    Column("CONTAINERS", lambda o, _: _container_names(o), wide=True),
    Column("IMAGES", lambda o, _: _container_images(o), wide=True),
    Column(
        "SELECTOR", lambda o, _: format_label_selector(_field(o, "spec", "selector")), wide=True
    ),
)
"""The `-o wide` columns after AGE in the Deployment, ReplicaSet and Job tables."""

COLUMNS: dict[str, list[Column]] = {
    "Pod": [
        NAME,
        Column("READY", lambda o, _: _pod_ready(o)),
        Column("STATUS", lambda o, _: pod_status(o)),
        Column("RESTARTS", lambda o, _: "0"),
        AGE,
        Column("IP", lambda o, _: NONE, wide=True),
        Column("NODE", lambda o, _: _text(_field(o, "spec", "nodeName")), wide=True),
        Column(
            "NOMINATED NODE",
            lambda o, _: _text(_field(o, "status", "nominatedNodeName")),
            wide=True,
        ),
        Column("READINESS GATES", lambda o, _: NONE, wide=True),
    ],
    "ResourceClaim": [
        NAME,
        Column("RESOURCECLASSNAME", lambda o, _: _text(_field(o, "spec", "resourceClassName"))),
        Column("ALLOCATIONMODE", lambda o, _: _text(_field(o, "spec", "allocationMode"))),
        Column("STATE", lambda o, _: resource_claim_state(o)),
        AGE,
    ],
    "ResourceClaimTemplate": [
        NAME,
        Column(
            "RESOURCECLASSNAME",
            lambda o, _: _text(_field(o, "spec", "spec", "resourceClassName")),
        ),
        Column("ALLOCATIONMODE", lambda o, _: _text(_field(o, "spec", "spec", "allocationMode"))),
        AGE,
    ],
    "ResourceClass": [NAME, Column("DRIVERNAME", lambda o, _: _text(o.get("driverName"))), AGE],
    "PodSchedulingContext": [
        NAME,
        Column("SELECTEDNODE", lambda o, _: _text(_field(o, "spec", "selectedNode"))),
        AGE,
    ],
    "Node": [
        NAME,
        Column("STATUS", lambda o, _: node_status(o)),
        Column("ROLES", lambda o, _: NONE),
        AGE,
        Column("VERSION", lambda o, c: f"v{c.kubernetes_version}" if c.kubernetes_version else ""),
        Column("INTERNAL-IP", lambda o, _: NONE, wide=True),
        Column("EXTERNAL-IP", lambda o, _: NONE, wide=True),
        Column("OS-IMAGE", lambda o, _: "<unknown>", wide=True),
        Column("KERNEL-VERSION", lambda o, _: "<unknown>", wide=True),
        Column("CONTAINER-RUNTIME", lambda o, _: "<unknown>", wide=True),
    ],
    "Namespace": [NAME, Column("STATUS", lambda o, _: "Active"), AGE],
    "ConfigMap": [NAME, Column("DATA", lambda o, _: str(len(o.get("data") or {}))), AGE],
    "Deployment": [
        NAME,
        Column(
            "READY",
            lambda o, _: (
                f"{_field(o, 'status', 'readyReplicas', default=0)}/"
                f"{_field(o, 'spec', 'replicas', default=1)}"
            ),
        ),
        Column("UP-TO-DATE", lambda o, _: str(_field(o, "status", "updatedReplicas", default=0))),
        Column("AVAILABLE", lambda o, _: str(_field(o, "status", "availableReplicas", default=0))),
        AGE,
        *WORKLOAD_WIDE_COLUMNS,
    ],
    "ReplicaSet": [
        NAME,
        Column("DESIRED", lambda o, _: str(_field(o, "spec", "replicas", default=1))),
        Column("CURRENT", lambda o, _: str(_field(o, "status", "replicas", default=0))),
        Column("READY", lambda o, _: str(_field(o, "status", "readyReplicas", default=0))),
        AGE,
        *WORKLOAD_WIDE_COLUMNS,
    ],
    "Job": [
        NAME,
        Column("COMPLETIONS", lambda o, _: _job_completions(o)),
        Column("DURATION", _job_duration),
        AGE,
        *WORKLOAD_WIDE_COLUMNS,
    ],
    "CustomResourceDefinition": [
        NAME,
        Column("CREATED AT", lambda o, _: _text(_field(o, "metadata", "creationTimestamp"))),
    ],
}
"""Table columns per kind; any other kind gets NAME and AGE, as kubectl shows custom resources."""


def render_table(
    objects: Sequence[Mapping[str, Any]],
    kind: str,
    context: TableContext,
    *,
    wide: bool = False,
    with_namespace: bool = False,
) -> str:
    """Format objects as kubectl's table: upper-case headers, columns 3 spaces apart."""
    columns = [c for c in COLUMNS.get(kind, [NAME, AGE]) if wide or not c.wide]
    headers = [column.header for column in columns]
    rows = [[column.value(obj, context) for column in columns] for obj in objects]
    if with_namespace:
        headers.insert(0, "NAMESPACE")
        for row, obj in zip(rows, objects, strict=True):
            row.insert(0, str(_field(obj, "metadata", "namespace", default="")))
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for cells in [headers, *rows]:
        padded = [cell.ljust(width) for cell, width in zip(cells[:-1], widths, strict=False)]
        lines.append("   ".join([*padded, cells[-1]]).rstrip())
    return "\n".join(lines)


def render_objects(objects: Sequence[Mapping[str, Any]], output: str, *, single: bool) -> str:
    """Format objects as YAML or JSON: one object for a single NAME, else a `kind: List`.

    YAML keys are sorted, as kubectl prints them; JSON keeps the wire order.
    """
    document: Mapping[str, Any]
    if single:
        document = objects[0]
    else:
        document = {
            "apiVersion": "v1",
            "items": list(objects),
            "kind": "List",
            "metadata": {"resourceVersion": ""},
        }
    if output == "json":
        return json.dumps(document, indent=4, ensure_ascii=False)
    return yaml.safe_dump(dict(document), sort_keys=True, allow_unicode=True).rstrip("\n")


def no_resources_message(kind: str, namespace: str, namespaced: bool, all_namespaces: bool) -> str:
    """Return kubectl's message for an empty result."""
    if namespaced and not all_namespaces:
        return f"No resources found in {namespace} namespace."
    return "No resources found"


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------


def get_output(
    results: Path,
    kind_text: str,
    name: str | None = None,
    *,
    namespace: str | None = None,
    all_namespaces: bool = False,
    output: str | None = None,
    at_s: float | None = None,
) -> tuple[str, bool]:
    """Return what `dra-sim get` prints and whether it goes to stderr (empty result).

    Raises:
        GetError: a bad argument, an unknown kind or a missing object.
        ObjectHistoryError: a missing or unusable results directory, or a time
            outside the run.
        ResultsDirectoryError: a damaged or unreadable file in the results directory.
    """
    if namespace is not None and all_namespaces:
        raise GetError("give -n NAMESPACE or -A (all namespaces), not both")
    if output is not None and output not in OUTPUT_FORMATS:
        raise GetError(f"unknown output format {output!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    if name is not None and all_namespaces:
        raise GetError("a NAME cannot be combined with -A; give its namespace with -n")
    history = ObjectHistory.read(results)
    scopes = history.kinds()
    kind = resolve_kind(kind_text, scopes)
    request = Request(
        kind=kind,
        name=name,
        namespace=namespace or "default",
        all_namespaces=all_namespaces,
        at_s=at_s,
    )
    objects = select_objects(history, request)
    namespaced = is_namespaced(kind, scopes)
    if not objects:
        return no_resources_message(kind, request.namespace, namespaced, all_namespaces), True
    if output in ("yaml", "json"):
        return render_objects(objects, output, single=name is not None), False
    context = TableContext(
        now_s=history.end_time_s if at_s is None else at_s,
        kubernetes_version=_kubernetes_version(results),
    )
    table = render_table(
        objects,
        kind,
        context,
        wide=output == "wide",
        with_namespace=all_namespaces and namespaced,
    )
    return table, False


def _kubernetes_version(results: Path) -> str:
    """Return the run's `control_plane.kubernetes_version`, or "" when it cannot be read."""
    try:
        data = yaml.safe_load((results / "scenario.resolved.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return ""
    version = _field(data, "control_plane", "kubernetes_version", default="")
    return str(version)


def register(app: typer.Typer) -> None:
    """Add the `get` command."""

    @app.command("get")
    def get(
        results: Annotated[Path, typer.Argument(help="Results directory of a run.")],
        kind: Annotated[
            str,
            typer.Argument(
                help="Resource type, as kubectl names it: pods, po, resourceclaims, ..."
            ),
        ],
        name: Annotated[str | None, typer.Argument(help="Print only this object.")] = None,
        namespace: Annotated[
            str | None,
            typer.Option("--namespace", "-n", help="Namespace to list (default: default)."),
        ] = None,
        all_namespaces: Annotated[
            bool, typer.Option("--all-namespaces", "-A", help="List objects of all namespaces.")
        ] = False,
        output: Annotated[
            str | None,
            typer.Option("--output", "-o", help="Output format: yaml, json or wide."),
        ] = None,
        at: Annotated[
            float | None,
            typer.Option(
                "--at", help="Show the objects as they stood at this simulated time, seconds."
            ),
        ] = None,
    ) -> None:
        """Print the objects of a run as kubectl get prints them, at the end or at --at."""
        from sim.cli import fail
        from sim.result_files import ResultsDirectoryError

        if at is not None and not (math.isfinite(at) and at >= 0):
            fail(f"--at: invalid time {at}; expected a finite number of seconds >= 0")
        try:
            text, to_stderr = get_output(
                results,
                kind,
                name,
                namespace=namespace,
                all_namespaces=all_namespaces,
                output=output,
                at_s=at,
            )
        except (GetError, ObjectHistoryError, ResultsDirectoryError) as error:
            fail(str(error))
        typer.echo(text, err=to_stderr)
