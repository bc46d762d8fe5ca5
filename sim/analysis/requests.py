"""Plain-language descriptions of API requests and state transitions, for `explain`.

The `api_requests` table records who sent which request and its result code,
but not the reason the component gave for it. The descriptions here are
therefore derived from the request's shape (component, verb, resource,
subresource) and from what the claim was doing at that moment. This works
because each component sends only a few kinds of request, listed in the
component's code.
Transitions of the `events` table carry the component's own reason, which the
story always prints next to the description.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HTTP_REASONS: dict[int, str] = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Gone",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

FAILURE_CONSEQUENCES: dict[int, str] = {
    404: "the object was already gone",
    409: "the object changed since the component read it, so the component retries "
    "with the current version",
    422: "the API server rejected the change as invalid",
    429: "the API server throttled the client",
}

KIND_RESOURCES: dict[str, str] = {
    "Pod": "pods",
    "ResourceClaim": "resourceclaims",
    "PodSchedulingContext": "podschedulingcontexts",
}


@dataclass(frozen=True)
class ClaimFacts:
    """Facts of the `claims` table about one claim, for describing requests on it."""

    name: str
    mode: str
    driver: str
    nodes: tuple[str, ...]
    first_allocated_s: float
    deallocated_s: float
    generated: bool


def component_kind(component: str) -> str:
    """Return the kind of component: `driver`, `kubelet` or the component name itself."""
    if component.startswith("driver/"):
        return "driver"
    if component.startswith("kubelet/"):
        return "kubelet"
    return component


def describe_request(
    component: str,
    verb: str,
    resource: str,
    name: str,
    subresource: str,
    code: int,
    time_s: float,
    claim: ClaimFacts | None = None,
) -> str:
    """Describe one API request in words.

    Args:
        component: the client's component (`kube-scheduler`, `driver/<name>`, ...).
        verb: get, create, update, patch, apply or delete.
        resource: plural resource name.
        name: object name ("" for a create with `generateName`).
        subresource: `status`, `binding` or "".
        code: the HTTP result code.
        time_s: when the response arrived.
        claim: facts about the claim, when the request is on a ResourceClaim.
    """
    if code < 400:
        return _describe_success(component, verb, resource, name, subresource, time_s, claim)
    status = HTTP_REASONS.get(code, "error")
    consequence = FAILURE_CONSEQUENCES.get(code, "the request failed")
    if code == 409 and verb == "create":
        status = "AlreadyExists"
        consequence = "an object of that name already exists"
    part = f" {subresource}" if subresource else ""
    target = f"{_singular(resource)} {name}".strip()
    return f"{verb} of {target}{part} rejected with {code} {status}: {consequence}"


def _describe_success(
    component: str,
    verb: str,
    resource: str,
    name: str,
    subresource: str,
    time_s: float,
    claim: ClaimFacts | None,
) -> str:
    kind = component_kind(component)
    target = f"{_singular(resource)} {name}".strip()
    if verb == "get":
        return _describe_read(kind, resource, target)
    if kind == "garbage-collector":
        if verb == "delete":
            return f"deleted {target}, whose owner is gone"
        return f"removed dangling owner references from {target}"
    if resource == "podschedulingcontexts":
        return _describe_scheduling_context(verb, subresource, target)
    if resource == "resourceclaims":
        return _describe_claim_write(kind, verb, subresource, target, time_s, claim)
    if resource == "pods":
        return _describe_pod_write(kind, verb, subresource, target)
    suffix = f" ({subresource})" if subresource else ""
    return f"sent {verb} {target}{suffix}"


def _singular(resource: str) -> str:
    names = {
        "pods": "pod",
        "resourceclaims": "claim",
        "podschedulingcontexts": "PodSchedulingContext",
        "resourceclasses": "ResourceClass",
        "resourceclaimtemplates": "ResourceClaimTemplate",
        "nodes": "node",
        "configmaps": "ConfigMap",
    }
    return names.get(resource, resource)


def _describe_read(kind: str, resource: str, target: str) -> str:
    if kind == "kubelet" and resource == "resourceclaims":
        return f"read {target} to prepare its resources on the node (NodePrepareResources)"
    if kind == "kubelet" and resource == "pods":
        return f"read {target} before updating its status"
    if kind == "resourceclaim-controller" and resource == "pods":
        return f"read {target} live to check whether it still uses the claim"
    if kind == "driver" and resource == "pods":
        return f"read {target} to find its claims"
    if kind == "driver":
        return f"read the parameters object {target}"
    if kind == "garbage-collector":
        return f"looked up the owner {target}"
    return f"read {target}"


def _describe_scheduling_context(verb: str, subresource: str, target: str) -> str:
    if subresource == "status":
        return f"published unsuitable nodes in the status of {target}"
    if verb == "create":
        return f"created {target} with a selected node and potential nodes (start negotiation)"
    if verb == "apply":
        return f"applied {target} after a conflict (server-side apply)"
    if verb == "delete":
        return f"deleted {target}: the pod is bound, so the negotiation is over"
    return f"updated the selected node or potential nodes of {target}"


def _describe_claim_write(
    kind: str, verb: str, subresource: str, target: str, time_s: float, claim: ClaimFacts | None
) -> str:
    if verb == "create":
        if kind == "resourceclaim-controller":
            return "created a claim from the pod's ResourceClaimTemplate"
        return f"created {target}"
    if verb == "delete":
        return f"requested the deletion of {target}"
    if kind == "driver" and subresource == "":
        if claim is not None and not (time_s > claim.first_allocated_s):
            return f"added its finalizer to {target} (required before allocating)"
        if claim is not None and time_s >= claim.deallocated_s:
            return f"removed its finalizer from {target}"
        return f"updated the metadata of {target} (finalizer)"
    if kind == "driver" and subresource == "status":
        if claim is not None and _same_time(time_s, claim.deallocated_s):
            return f"deallocated {target} (cleared status.allocation)"
        if claim is not None and _same_time(time_s, claim.first_allocated_s):
            return f"allocated {target}{_where(claim)}"
        return f"updated the status of {target} (allocation)"
    if subresource == "status":
        return f"updated status.reservedFor of {target}"
    return f"updated {target}"


def _describe_pod_write(kind: str, verb: str, subresource: str, target: str) -> str:
    if subresource == "binding":
        return f"bound {target}"
    if kind == "kube-scheduler" and subresource == "status":
        return f"recorded the failed attempt in the PodScheduled condition of {target}"
    if kind == "resourceclaim-controller" and subresource == "status":
        return f"recorded the generated claim names in status.resourceClaimStatuses of {target}"
    if kind == "kubelet" and subresource == "status":
        return f"updated the status (phase) of {target}"
    if verb == "delete":
        return f"deleted {target}"
    return f"updated {target}"


def _same_time(a: float, b: float) -> bool:
    return not math.isnan(b) and abs(a - b) < 1e-9


def _where(claim: ClaimFacts) -> str:
    if len(claim.nodes) == 1:
        return f" on node {claim.nodes[0]}"
    if claim.nodes:
        return f" on one of nodes {', '.join(claim.nodes)}"
    return ""


def describe_transition(
    kind: str,
    name: str,
    from_state: str,
    to_state: str,
    actor: str,
    claim: ClaimFacts | None = None,
    consumer: str = "",
    node: str = "",
) -> str:
    """Describe a state transition of the `events` table in words.

    Args:
        kind: Pod or ResourceClaim.
        name: the object's name.
        from_state: the state before ("" for the first transition).
        to_state: the state after.
        actor: the component that caused it.
        claim: facts about the claim (for ResourceClaim transitions).
        consumer: the pod the transition is for, when known.
        node: the pod's node (for Pod transitions).
    """
    if kind == "Pod":
        return _describe_pod_transition(name, from_state, to_state, node)
    return _describe_claim_transition(name, from_state, to_state, actor, claim, consumer)


def _describe_pod_transition(name: str, from_state: str, to_state: str, node: str) -> str:
    on_node = f" on node {node}" if node else ""
    texts = {
        "Created": f"created pod {name}",
        "Bound": f"bound pod {name} to node {node}" if node else f"bound pod {name}",
        "ContainerCreating": f"started pod {name}{on_node}: prepares its claims "
        "(NodePrepareResources), then creates the containers",
        "Running": f"started the containers: pod {name} is Running",
        "Terminating": f"stopping pod {name}: unprepares its claims (NodeUnprepareResources)",
        "Succeeded": f"pod {name} finished: Succeeded",
        "Failed": f"pod {name} finished: Failed",
        "Deleting": f"marked pod {name} for deletion",
        "Deleted": f"pod {name} is gone",
        "Pending": f"pod {name} is Pending{on_node}",
        "Unknown": f"pod {name} is in phase Unknown",
    }
    return texts.get(to_state, f"pod {name}: {from_state or '(new)'} -> {to_state}")


def _describe_claim_transition(
    name: str,
    from_state: str,
    to_state: str,
    actor: str,
    claim: ClaimFacts | None,
    consumer: str,
) -> str:
    where = _where(claim) if claim is not None else ""
    for_pod = f" for pod {consumer}" if consumer else ""
    allocated = ("Allocated", "Reserved", "DeallocationRequested")
    if not from_state:
        return f"created claim {name}"
    if from_state == "Pending" and to_state == "Allocated":
        return f"allocated claim {name}{where}"
    if from_state == "Pending" and to_state == "Reserved":
        return f"allocated claim {name}{where} and reserved it{for_pod} (status.reservedFor)"
    if from_state == "Allocated" and to_state == "Reserved":
        pod = f"pod {consumer}" if consumer else "a pod"
        return f"reserved claim {name}: added {pod} to status.reservedFor"
    if from_state == "Reserved" and to_state == "Reserved":
        if actor == "resourceclaim-controller":
            return f"removed a pod that no longer needs claim {name} from status.reservedFor"
        pod = f"pod {consumer}" if consumer else "a pod"
        return f"added {pod} to status.reservedFor of claim {name} (one more consumer)"
    if from_state == "Reserved" and to_state == "Allocated":
        if actor == "resourceclaim-controller":
            return f"removed the finished pod from status.reservedFor of claim {name}"
        return f"removed the pod from status.reservedFor of claim {name} (unreserve)"
    if to_state == "DeallocationRequested":
        if actor == "resourceclaim-controller":
            return (
                f"removed the finished pod from status.reservedFor of claim {name} and "
                "requested deallocation"
            )
        return f"requested deallocation of claim {name} so that it can be allocated again"
    if from_state in allocated and to_state == "Pending":
        return f"deallocated claim {name}"
    if to_state == "Deleting":
        return f"deleted claim {name}: its finalizer keeps it until the driver releases it"
    if to_state == "Deleted":
        if component_kind(actor) == "driver":
            return f"removed its finalizer, so the API server removed claim {name}"
        return f"claim {name} is gone"
    return f"claim {name}: {from_state} -> {to_state}"
