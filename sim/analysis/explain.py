"""The story of one pod or claim: every write, attempt and wait, in simulated-time order.

`kubectl describe` shows a few recent events of an object. A story here lists
everything the results tables know about it, merged from three tables:

* `events`: state transitions, with the component that caused each and its
  reason;
* `api_requests`: every request on the object (and, for a pod, on its claims
  and its PodSchedulingContext), with the result code. A write that caused a
  transition is shown once, on the transition's line;
* `cycles`: every scheduling attempt, with the selected node, the number of
  feasible nodes and the status message.

Before each scheduling attempt the story states how long the pod waited in
the scheduling queue and what the tables show about why. That line is
stamped at the end of the wait, the start of the attempt, so every write it
cites comes before it. The queue's moves are not recorded, so the reason is
inferred: a wait whose end matches the backoff of
`pod_initial_backoff_s * 2^(attempts-1)` and a backoffQ sweep is reported as
backoff; otherwise the last write to the pod, its claims or its
PodSchedulingContext before the attempt is named.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sim.analysis import derived
from sim.analysis.requests import (
    KIND_RESOURCES,
    ClaimFacts,
    component_kind,
    describe_request,
    describe_transition,
)
from sim.results import Results

SAME_TIME_S = 1e-9
"""Two recorded times closer than this are the same simulated instant."""

BUSY_GAP_S = 0.05
"""Maximum pause between attempts of a busy kube-scheduler (a cycle and a few requests), s."""

MIN_WAIT_S = 1e-3
"""Shorter gaps between a pod's scheduling attempts are not reported as waits, seconds."""

ATTEMPT, EVENT, WAIT = "attempt", "event", "wait"

END_OF_RUN = "end of run"
"""Actor of the last step of a pod that the run ended before it was bound."""

RESERVE_FIT_ERROR = re.compile(r"0/1 nodes are available: 1 (?P<message>.*?)\.?")
"""kube-scheduler's FitError around a Reserve rejection of the one selected node."""


class ObjectNotFoundError(LookupError):
    """The results tables contain no pod or claim of the requested name."""


@dataclass(frozen=True)
class Step:
    """One line of a story."""

    time_s: float
    actor: str
    text: str
    reason: str = ""
    """The component's own reason, for steps that are state transitions."""
    transition: str = ""
    """`<kind>: <from> -> <to>` for steps that are state transitions."""
    source: str = EVENT
    """`event` (transition or request), `attempt` (scheduling cycle) or `wait`."""


@dataclass
class Story:
    """The whole story of one object: a heading, summary facts and the steps in order."""

    title: str
    facts: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def format(self) -> str:
        """Render the story as text, one step per line."""
        lines = [self.title, *(f"  {fact}" for fact in self.facts), ""]
        time_width = max((len(f"{step.time_s:.3f}") for step in self.steps), default=1)
        actor_width = max((len(step.actor) for step in self.steps), default=1)
        for step in self.steps:
            details = []
            if step.reason:
                details.append(f'reason "{step.reason}"')
            if step.transition:
                details.append(step.transition)
            suffix = f"  [{'; '.join(details)}]" if details else ""
            lines.append(
                f"t={step.time_s:>{time_width}.3f} s  {step.actor:<{actor_width}}  "
                f"{step.text}{suffix}"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------


def explain_pod(
    results: Results, name: str, namespace: str = "default", *, include_reads: bool = False
) -> list[Story]:
    """Return the story of every pod named `namespace/name` (one per UID, oldest first).

    Args:
        results: the run.
        name: the pod's name.
        namespace: the pod's namespace.
        include_reads: list every GET request too; by default only the
            kubelet's reads of claims (which mark NodePrepareResources) are shown.

    Raises:
        ObjectNotFoundError: no pod of that name was ever created in the run.
    """
    context = _Context(results, include_reads)
    pods = context.pods
    found = pods[(pods["namespace"] == namespace) & (pods["name"] == name)]
    if found.empty:
        raise ObjectNotFoundError(_not_found("pod", name, namespace, pods))
    return [context.pod_story(row) for row in found.itertuples(index=False)]


def explain_claim(
    results: Results, name: str, namespace: str = "default", *, include_reads: bool = False
) -> list[Story]:
    """Return the story of every ResourceClaim named `namespace/name` (one per UID).

    The story contains the claim's transitions and requests, and the main
    steps of the pods that use it (binding, start, end). For a claim generated
    for one pod it also contains that pod's scheduling attempts and its
    PodSchedulingContext, where the allocation is negotiated.

    Raises:
        ObjectNotFoundError: no claim of that name was ever created in the run.
    """
    context = _Context(results, include_reads)
    claims = context.claims
    found = claims[(claims["namespace"] == namespace) & (claims["name"] == name)]
    if found.empty:
        raise ObjectNotFoundError(_not_found("claim", name, namespace, claims))
    return [context.claim_story(row) for row in found.itertuples(index=False)]


def _not_found(kind: str, name: str, namespace: str, frame: pd.DataFrame) -> str:
    names: list[str] = (
        [str(n) for n in frame.loc[frame["namespace"] == namespace, "name"]] if len(frame) else []
    )
    close = sorted({n for n in names if name in n or n in name})[:5]
    examples = sorted(set(names))[:5]
    hint = f"; similar names: {', '.join(close)}" if close else ""
    if not hint and examples:
        hint = f"; names in this namespace include {', '.join(examples)}"
    return f"no {kind} named {name!r} in namespace {namespace!r} in these results{hint}"


# --------------------------------------------------------------------------------------
# Building stories
# --------------------------------------------------------------------------------------


class _Context:
    """The tables of one run, indexed for building stories."""

    def __init__(self, results: Results, include_reads: bool) -> None:
        self.results = results
        self.include_reads = include_reads
        self.end_s = derived.end_time_s(results)
        self.pods = derived.table(results, "pods")
        self.claims = derived.table(results, "claims")
        self.events = derived.table(results, "events")
        self.requests = derived.table(results, "api_requests")
        self.cycles = derived.table(results, "cycles")
        self.links = derived.pod_claim_links(results)
        self.minor = derived.kubernetes_minor(results)
        self.scheduler = results.scenario.control_plane.scheduler
        self.claim_facts = {
            str(row.uid): ClaimFacts(
                name=str(row.name),
                mode=str(row.mode),
                driver=str(row.driver),
                nodes=tuple(node for node in str(row.nodes).split(",") if node),
                first_allocated_s=derived.as_float(row.first_allocated_s),
                deallocated_s=derived.as_float(row.deallocated_s),
                generated=bool(row.generated),
            )
            for row in self.claims.itertuples(index=False)
        }
        self.pod_names = {str(row.uid): str(row.name) for row in self.pods.itertuples(index=False)}
        self.pod_nodes = {str(row.uid): str(row.node) for row in self.pods.itertuples(index=False)}

    # -- pods -----------------------------------------------------------------------

    def pod_story(self, pod: Any) -> Story:
        uid, namespace, name = str(pod.uid), str(pod.namespace), str(pod.name)
        start = _or(pod.created_s, 0.0)
        stop = _or(pod.deleted_s, self.end_s)
        links = self.links[self.links["pod_uid"] == uid]
        claim_uids = [str(claim_uid) for claim_uid in links["claim_uid"]]

        cycles = self.cycles[self.cycles["pod_uid"] == uid] if len(self.cycles) else self.cycles
        event_frames = [self.events[(self.events["kind"] == "Pod") & (self.events["uid"] == uid)]]
        request_frames = [
            self._requests("pods", namespace, name, start, stop),
            self._requests("podschedulingcontexts", namespace, name, start, stop),
        ]
        for claim_uid in claim_uids:
            claim_events = self.events[
                (self.events["kind"] == "ResourceClaim") & (self.events["uid"] == claim_uid)
            ]
            claim_requests = self._claim_requests(claim_uid)
            if self._is_shared(claim_uid):
                claim_events, claim_requests = self._own_share(
                    pod, cycles, claim_events, claim_requests
                )
            event_frames.append(claim_events)
            request_frames.append(claim_requests)

        steps = self._merge(pd.concat(event_frames), pd.concat(request_frames), consumer=uid)
        steps.extend(self._attempt_steps(cycles))
        steps.extend(self._wait_steps(pod, cycles, claim_uids))
        steps.extend(self._unfinished_steps(pod, cycles))
        story = Story(title=f"Pod {namespace}/{name} (uid {uid})", steps=_ordered(steps))
        story.facts = self._pod_facts(pod, claim_uids)
        return story

    def _is_shared(self, claim_uid: str) -> bool:
        """Return whether more than one pod uses the claim."""
        return int((self.links["claim_uid"] == claim_uid).sum()) > 1

    def _own_share(
        self, pod: Any, cycles: pd.DataFrame, events: pd.DataFrame, requests: pd.DataFrame
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Keep the parts of a shared claim's history that concern this pod.

        The tables do not say for which pod a write on a shared claim was
        made. Kept are the claim's changes of state (allocation, first
        reservation, deallocation), kube-scheduler's requests during this
        pod's scheduling attempts and binding, and the reads of the kubelet
        of the pod's node while it started the pod.
        """
        windows: list[tuple[str, float, float]] = []
        bound = _or(pod.scheduled_s, math.inf)
        for cycle in cycles.itertuples(index=False):
            start = derived.as_float(cycle.time_s)
            stop = start + derived.as_float(cycle.duration_s)
            if str(cycle.result) == "Scheduled":
                stop = max(stop, bound)
            # A write at the very start of the cycle belongs to an earlier pod's binding.
            windows.append(("kube-scheduler", start + 2 * SAME_TIME_S, stop))
        if pod.node:
            windows.append(
                (
                    f"kubelet/{pod.node}",
                    _or(pod.scheduled_s, math.inf),
                    _or(pod.running_s, math.inf),
                )
            )

        def attributed(frame: pd.DataFrame, column: str) -> pd.Series:
            keep = pd.Series(False, index=frame.index)
            for component, start, stop in windows:
                keep |= (
                    (frame[column] == component)
                    & (frame["time_s"] >= start - SAME_TIME_S)
                    & (frame["time_s"] <= stop + SAME_TIME_S)
                )
            return keep

        own_events = events[
            (events["from_state"] != events["to_state"]) | attributed(events, "actor")
        ]
        if requests.empty:
            return own_events, requests
        caused = pd.Series(False, index=requests.index)
        for event in own_events.itertuples(index=False):
            caused |= (
                (requests["time_s"] - derived.as_float(event.time_s)).abs() < SAME_TIME_S
            ) & (requests["component"] == event.actor)
        return own_events, requests[attributed(requests, "component") | caused]

    def _pod_facts(self, pod: Any, claim_uids: list[str]) -> list[str]:
        attempts = derived.as_int(pod.attempts)
        facts = [
            f"workload {pod.workload or '(none)'}, node {pod.node or '(not bound)'}, "
            f"final phase {pod.final_phase or 'Pending'}, {attempts} scheduling attempt(s)"
        ]
        scheduling = derived.as_float(pod.scheduled_s) - derived.as_float(pod.created_s)
        startup = derived.as_float(pod.running_s) - derived.as_float(pod.created_s)
        facts.append(
            f"scheduling latency {_seconds(scheduling)}, startup latency {_seconds(startup)}"
        )
        if claim_uids:
            described = []
            for claim_uid in claim_uids:
                claim = self.claim_facts[claim_uid]
                described.append(f"{claim.name} ({claim.mode}, driver {claim.driver})")
            facts.append(f"claims: {', '.join(described)}")
            for claim_uid in claim_uids:
                if self._is_shared(claim_uid):
                    name = self.claim_facts[claim_uid].name
                    users = int((self.links["claim_uid"] == claim_uid).sum())
                    facts.append(
                        f"{name} is shared by {users} pods: only its changes of state and the "
                        "writes made while this pod was scheduled and started are shown "
                        f"(`explain ... claim {name}` shows all)"
                    )
        elif derived.as_int(pod.claims) > 0:
            facts.append(
                f"claims: {derived.as_int(pod.claims)}, not found in the claims table (the pod's "
                "claim entries are not recorded for pods outside the scenario's workloads)"
            )
        else:
            facts.append("claims: none")
        return facts

    # -- claims ---------------------------------------------------------------------

    def claim_story(self, claim: Any) -> Story:
        uid, namespace, name = str(claim.uid), str(claim.namespace), str(claim.name)
        events = self.events[(self.events["kind"] == "ResourceClaim") & (self.events["uid"] == uid)]
        consumers = [
            str(pod_uid) for pod_uid in self.links.loc[self.links["claim_uid"] == uid, "pod_uid"]
        ]
        consumer = consumers[0] if bool(claim.generated) and len(consumers) == 1 else ""

        pod_events = self.events[
            (self.events["kind"] == "Pod")
            & self.events["uid"].isin(consumers)
            & self.events["to_state"].isin(
                [
                    "Created",
                    "Bound",
                    "ContainerCreating",
                    "Running",
                    "Succeeded",
                    "Failed",
                    "Deleted",
                ]
            )
        ]
        if len(consumers) > 1:
            pod_events = pod_events[pod_events["to_state"] != "Created"]
        requests = [self._claim_requests(uid)]
        steps: list[Step] = []
        if consumer:
            # A claim generated for one pod is negotiated in that pod's scheduling context.
            pod = self.pods[self.pods["uid"] == consumer].iloc[0]
            start, stop = _or(pod["created_s"], 0.0), _or(pod["deleted_s"], self.end_s)
            requests.append(
                self._requests("podschedulingcontexts", namespace, str(pod["name"]), start, stop)
            )
            cycles = self.cycles[self.cycles["pod_uid"] == consumer]
            steps.extend(self._attempt_steps(cycles))
        steps.extend(self._merge(pd.concat([events, pod_events]), pd.concat(requests), consumer))
        story = Story(title=f"ResourceClaim {namespace}/{name} (uid {uid})", steps=_ordered(steps))
        story.facts = self._claim_facts(claim, consumers)
        return story

    def _claim_facts(self, claim: Any, consumers: list[str]) -> list[str]:
        shareable = claim.shareable
        sharing = "unknown"
        if not pd.isna(shareable):
            sharing = "yes" if shareable else "no"
        origin = "generated from a template" if bool(claim.generated) else "created by a user"
        allocations = derived.as_int(claim.allocations)
        deallocations = derived.as_int(claim.deallocations)
        consumers_at_most = derived.as_int(claim.max_consumers)
        facts = [
            f"{claim.mode}, class {claim.resource_class}, driver {claim.driver}, {origin}, "
            f"shareable {sharing}",
            f"allocations {allocations}, deallocations {deallocations}, "
            f"nodes {claim.nodes or '(none)'}, at most {consumers_at_most} consumer(s) "
            "in reservedFor",
        ]
        names = [self.pod_names[pod_uid] for pod_uid in consumers]
        if names:
            shown = ", ".join(names[:10]) + (
                f" and {len(names) - 10} more" if len(names) > 10 else ""
            )
            facts.append(f"pods using it: {shown}")
        return facts

    # -- sources --------------------------------------------------------------------

    def _requests(
        self, resource: str, namespace: str, name: str, start: float, stop: float
    ) -> pd.DataFrame:
        requests = self.requests
        if requests.empty:
            return requests
        return requests[
            (requests["resource"] == resource)
            & (requests["namespace"] == namespace)
            & (requests["name"] == name)
            & (requests["time_s"] >= start - SAME_TIME_S)
            & (requests["time_s"] <= stop + SAME_TIME_S)
        ]

    def _claim_requests(self, claim_uid: str) -> pd.DataFrame:
        claim = self.claims[self.claims["uid"] == claim_uid].iloc[0]
        start = _or(claim["created_s"], 0.0)
        stop = _or(claim["deleted_s"], self.end_s)
        named = self._requests(
            "resourceclaims", str(claim["namespace"]), str(claim["name"]), start, stop
        )
        if self.requests.empty:
            return named
        # A claim created with generateName has no name in its create request.
        created = self.requests[
            (self.requests["resource"] == "resourceclaims")
            & (self.requests["verb"] == "create")
            & (self.requests["namespace"] == claim["namespace"])
            & (self.requests["name"] == "")
            & ((self.requests["time_s"] - start).abs() < SAME_TIME_S)
        ]
        found: pd.DataFrame = pd.concat([created, named]).assign(claim_uid=claim_uid)
        return found

    def _merge(self, events: pd.DataFrame, requests: pd.DataFrame, consumer: str) -> list[Step]:
        """Describe transitions and requests; a write that caused a transition is shown once."""
        requests = requests[~requests.index.duplicated()] if len(requests) else requests
        unused = dict.fromkeys(requests.index) if len(requests) else {}
        steps: list[Step] = []
        for event in events.itertuples(index=False):
            match = self._matching_request(event, requests, unused)
            if match is not None:
                del unused[match]
            steps.append(self._event_step(event, consumer))
        for index in unused:
            request = requests.loc[index]
            if not self._shown(request):
                continue
            claim_uid = request.get("claim_uid")
            facts = self.claim_facts.get(str(claim_uid)) if isinstance(claim_uid, str) else None
            text = describe_request(
                str(request["component"]),
                str(request["verb"]),
                str(request["resource"]),
                str(request["name"]),
                str(request["subresource"]),
                int(request["code"]),
                float(request["time_s"]),
                facts,
            )
            steps.append(Step(float(request["time_s"]), str(request["component"]), text))
        return steps

    def _matching_request(
        self, event: Any, requests: pd.DataFrame, unused: dict[Any, None]
    ) -> Any | None:
        if requests.empty:
            return None
        resource = KIND_RESOURCES.get(str(event.kind), "")
        candidates = requests[
            ((requests["time_s"] - derived.as_float(event.time_s)).abs() < SAME_TIME_S)
            & (requests["component"] == event.actor)
            & (requests["resource"] == resource)
            & requests["name"].isin([event.name, ""])
            & requests["write"]
            & (requests["code"] < 400)
        ]
        for index in candidates.index:
            if index in unused:
                return index
        return None

    def _event_step(self, event: Any, consumer: str) -> Step:
        kind = str(event.kind)
        uid = str(event.uid)
        claim = self.claim_facts.get(uid) if kind == "ResourceClaim" else None
        node = self.pod_nodes.get(uid, "") if kind == "Pod" else ""
        consumer_name = self._consumer_name(event, claim, consumer)
        text = describe_transition(
            kind,
            str(event.name),
            str(event.from_state),
            str(event.to_state),
            str(event.actor),
            claim=claim,
            consumer=consumer_name,
            node=node,
        )
        if str(event.actor) == "setup" and not str(event.from_state):
            text += " at the start of the run (a scenario object)"
        label = "Pod" if kind == "Pod" else "claim"
        transition = f"{label} {event.from_state or '(new)'} -> {event.to_state}"
        return Step(
            derived.as_float(event.time_s), str(event.actor), text, str(event.reason), transition
        )

    def _consumer_name(self, event: Any, claim: ClaimFacts | None, consumer: str) -> str:
        """Name the pod a claim transition is for, where the tables determine it."""
        if claim is None or str(event.to_state) != "Reserved":
            return ""
        owners = self.links.loc[self.links["claim_uid"] == str(event.uid), "pod_uid"].tolist()
        if claim.generated and len(owners) == 1:
            return self.pod_names.get(str(owners[0]), "")
        # For a shared claim, the consumer is only known when telling that pod's story
        # and the pod was bound right after the reservation.
        if consumer and str(event.actor) == "kube-scheduler":
            bound = self.pods.loc[self.pods["uid"] == consumer, "scheduled_s"]
            if len(bound) and derived.as_float(event.time_s) <= float(bound.iloc[0]) + SAME_TIME_S:
                nearest = self._last_reservation_before(str(event.uid), float(bound.iloc[0]))
                if (
                    nearest is not None
                    and abs(nearest - derived.as_float(event.time_s)) < SAME_TIME_S
                ):
                    return self.pod_names.get(consumer, "")
        return ""

    def _last_reservation_before(self, claim_uid: str, time_s: float) -> float | None:
        rows = self.events[
            (self.events["kind"] == "ResourceClaim")
            & (self.events["uid"] == claim_uid)
            & (self.events["to_state"] == "Reserved")
            & (self.events["actor"] == "kube-scheduler")
            & (self.events["time_s"] <= time_s + SAME_TIME_S)
        ]
        return float(rows["time_s"].iloc[-1]) if len(rows) else None

    def _shown(self, request: pd.Series) -> bool:
        if self.include_reads or bool(request["write"]):
            return True
        # The kubelet reads a claim only to prepare it, so that read marks the step.
        return component_kind(str(request["component"])) == "kubelet" and (
            request["resource"] == "resourceclaims"
        )

    # -- scheduling -----------------------------------------------------------------

    def _attempt_steps(self, cycles: pd.DataFrame) -> list[Step]:
        return [
            Step(
                derived.as_float(cycle.time_s),
                "kube-scheduler",
                _describe_cycle(cycle),
                source=ATTEMPT,
            )
            for cycle in cycles.itertuples(index=False)
        ]

    def _wait_steps(self, pod: Any, cycles: pd.DataFrame, claim_uids: list[str]) -> list[Step]:
        steps: list[Step] = []
        previous_end = _or(pod.created_s, math.nan)
        previous: Any | None = None
        for cycle in cycles.itertuples(index=False):
            start = derived.as_float(cycle.time_s)
            gap = start - previous_end
            if not math.isnan(gap) and gap >= MIN_WAIT_S:
                why = self._wait_reason(pod, previous, previous_end, start, claim_uids)
                why += self._busy(str(pod.uid), previous_end, start)
                attempt = derived.as_int(cycle.attempt)
                # Stamped at the attempt, not at the start of the wait, because the cited
                # cause is the last write before the attempt and must not postdate its line.
                steps.append(
                    Step(
                        start,
                        "kube-scheduler",
                        f"waited {gap:.3f} s in the scheduling queue before attempt {attempt}{why}",
                        source=WAIT,
                    )
                )
            previous_end = start + derived.as_float(cycle.duration_s)
            previous = cycle
        return steps

    def _busy_between(self, pod_uid: str, since: float, until: float) -> bool:
        """Return whether kube-scheduler ran other pods' attempts back to back in the window."""
        cycles = self.cycles
        starts = cycles.loc[
            (cycles["pod_uid"] != pod_uid)
            & (cycles["time_s"] >= since - SAME_TIME_S)
            & (cycles["time_s"] < until - SAME_TIME_S),
            "time_s",
        ].tolist()
        points = [since, *sorted(float(t) for t in starts), until]
        return all(b - a <= BUSY_GAP_S for a, b in itertools.pairwise(points))

    def _busy(self, pod_uid: str, since: float, until: float) -> str:
        """Say how many attempts of other pods kube-scheduler ran during a wait."""
        cycles = self.cycles
        others = cycles[
            (cycles["pod_uid"] != pod_uid)
            & (cycles["time_s"] >= since - SAME_TIME_S)
            & (cycles["time_s"] < until - SAME_TIME_S)
        ]
        if others.empty:
            return ""
        pods = others["pod_uid"].nunique()
        return f"; meanwhile kube-scheduler ran {len(others)} attempt(s) for {pods} other pod(s)"

    def _unfinished_steps(self, pod: Any, cycles: pd.DataFrame) -> list[Step]:
        """Say where a pod still was when the run ended, if it was never bound."""
        if not math.isnan(derived.as_float(pod.scheduled_s)) or not math.isnan(
            derived.as_float(pod.deleted_s)
        ):
            return []
        text = f"the run ended with pod {pod.name} not bound"
        if len(cycles):
            last: Any = next(cycles.tail(1).itertuples(index=False))
            waited = self.end_s - derived.as_float(last.time_s) - derived.as_float(last.duration_s)
            text += f", {waited:.3f} s after its attempt {derived.as_int(last.attempt)}, "
            if _rejected_at_reserve(last):
                text += (
                    f"in which {last.plugin or 'a plugin'} rejected the selected node "
                    f"{last.node} at Reserve with status {last.result}: "
                    f'"{_reserve_message(last)}"'
                )
            else:
                text += f"which ended {last.result}: {str(last.message).rstrip('.')}"
        else:
            text += " and never tried by kube-scheduler"
        return [Step(self.end_s, END_OF_RUN, text, source=WAIT)]

    def _wait_reason(
        self, pod: Any, previous: Any | None, since: float, until: float, claim_uids: list[str]
    ) -> str:
        config = self.scheduler
        if previous is None:
            recorded = self._last_write(pod, claim_uids, since, until, "resourceclaim-controller")
            if self.minor >= 28 and recorded is not None:
                return (
                    f" (the resourceclaim-controller recorded the pod's claim names at "
                    f"t={recorded:.3f} s; until then DynamicResources' PreEnqueue keeps the "
                    "pod out of activeQ)"
                )
            return ""

        attempts = derived.as_int(previous.attempt)
        backoff = min(config.pod_initial_backoff_s * 2 ** (attempts - 1), config.pod_max_backoff_s)
        sweep = config.backoff_flush_interval_s
        release = math.ceil((since + backoff) / sweep - 1e-9) * sweep
        if until >= release - 1e-6 and self._busy_between(str(pod.uid), release, until):
            return (
                f" (consistent with the backoff of {backoff:g} s after {attempts} attempt(s), "
                f"released by the backoffQ sweep at t={release:.3f} s)"
            )

        unschedulable_sweep = config.unschedulable_flush_interval_s
        on_leftover = abs(until / unschedulable_sweep - round(until / unschedulable_sweep)) < 1e-6
        if on_leftover and until - since >= config.pod_max_in_unschedulable_pods_s:
            return (
                f" (consistent with the sweep every {unschedulable_sweep:g} s that retries pods "
                f"unschedulable for more than {config.pod_max_in_unschedulable_pods_s:g} s)"
            )

        write = self._last_write_step(pod, claim_uids, since, until)
        if write is not None:
            return (
                f"; the last related write before it: t={write.time_s:.3f} s "
                f"{write.actor} {write.text}"
            )
        return " (why is not recorded: the results do not record moves between scheduling queues)"

    def _related_writes(
        self, pod: Any, claim_uids: list[str], since: float, until: float
    ) -> pd.DataFrame:
        frames = [
            self._requests("pods", str(pod.namespace), str(pod.name), since, until),
            self._requests(
                "podschedulingcontexts", str(pod.namespace), str(pod.name), since, until
            ),
        ]
        # Writes on a shared claim are mostly made for other pods, so they are left out.
        frames.extend(
            self._claim_requests(claim_uid)
            for claim_uid in claim_uids
            if not self._is_shared(claim_uid)
        )
        related = pd.concat(frames)
        if related.empty:
            return related
        # kube-scheduler's own PodScheduled condition patch never requeues a pod.
        own_condition = (
            (related["component"] == "kube-scheduler")
            & (related["resource"] == "pods")
            & (related["subresource"] == "status")
        )
        return related[
            related["write"]
            & ~own_condition
            & (related["code"] < 400)
            & (related["time_s"] >= since - SAME_TIME_S)
            & (related["time_s"] <= until)
        ].sort_values("time_s", kind="stable")

    def _last_write(
        self, pod: Any, claim_uids: list[str], since: float, until: float, component: str
    ) -> float | None:
        related = self._related_writes(pod, claim_uids, since, until)
        if related.empty:
            return None
        own = related[related["component"] == component]
        return float(own["time_s"].iloc[-1]) if len(own) else None

    def _last_write_step(
        self, pod: Any, claim_uids: list[str], since: float, until: float
    ) -> Step | None:
        related = self._related_writes(pod, claim_uids, since, until)
        if related.empty:
            return None
        last = related.iloc[-1]
        claim_uid = last.get("claim_uid")
        facts = self.claim_facts.get(str(claim_uid)) if isinstance(claim_uid, str) else None
        text = describe_request(
            str(last["component"]),
            str(last["verb"]),
            str(last["resource"]),
            str(last["name"]),
            str(last["subresource"]),
            int(last["code"]),
            float(last["time_s"]),
            facts,
        )
        return Step(float(last["time_s"]), str(last["component"]), text)


def _describe_cycle(cycle: Any) -> str:
    attempt = derived.as_int(cycle.attempt)
    node = str(cycle.node)
    feasible = derived.as_int(cycle.feasible_nodes)
    plural = "" if feasible == 1 else "s"
    selected = f"selected node {node} of {feasible} feasible node{plural}" if node else ""
    message = str(cycle.message).rstrip(".")
    result = str(cycle.result)
    if result == "Scheduled":
        return f"attempt {attempt}: {selected} and assumed the pod there; binding follows"
    if _rejected_at_reserve(cycle):
        plugin = cycle.plugin or "a plugin"
        return (
            f"attempt {attempt}: {selected}, then {plugin} rejected that node at Reserve "
            f'with status {result}: "{_reserve_message(cycle)}"'
        )
    if result == "Pending":
        return f"attempt {attempt}: {cycle.plugin} returned Pending: {message}"
    if result == "Unschedulable":
        return (
            f"attempt {attempt}: unschedulable, rejected by {cycle.plugin} "
            f"({feasible} feasible node{plural}): {message}"
        )
    plugin = f" in {cycle.plugin}" if cycle.plugin else ""
    return f"attempt {attempt}: error{plugin}: {message}"


def _rejected_at_reserve(cycle: Any) -> bool:
    """Return whether a Reserve plugin rejected the node that kube-scheduler had selected.

    Only a failed cycle that got past Filter records a node, and the only
    rejection after that point (apart from a binding error) is at Reserve.
    """
    return bool(str(cycle.node)) and str(cycle.result) in ("Pending", "Unschedulable")


def _reserve_message(cycle: Any) -> str:
    """Return the Reserve plugin's own message, without the FitError wrapping it."""
    message = str(cycle.message)
    match = RESERVE_FIT_ERROR.fullmatch(message)
    return match.group("message") if match else message.rstrip(".")


def _ordered(steps: Iterable[Step]) -> list[Step]:
    """Sort steps by time. At one instant, writes come first, then a wait's line, then the attempt.

    kube-scheduler charges a cycle's cost before the cycle writes anything, so
    with a positive cost (the default) a write at the instant an attempt starts
    was made before the attempt. NOTE: with a zero cycle cost, an attempt's
    own first writes can share its instant and are listed before it.
    """
    rank = {EVENT: 0, WAIT: 1, ATTEMPT: 2}
    return sorted(steps, key=lambda step: (round(step.time_s, 9), rank[step.source]))


def _or(value: Any, default: float) -> float:
    number = float(value)
    return default if math.isnan(number) else number


def _seconds(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f} s"
