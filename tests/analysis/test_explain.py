"""Tests of `explain`: the story of one pod or claim, in order, with components and reasons.

The runs are small and acceptance-like: one pod `job-0` requests one device
through a claim template on a cluster of two nodes with one device each. The
driver allocates in 0.05 s and the pod runs for 5 s. The mixed run of
`conftest.py` supplies a shared claim.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sim import Results
from sim.analysis.explain import ObjectNotFoundError, Step, explain_claim, explain_pod
from sim.analysis.requests import describe_request
from sim.cli import app

SINGLE_POD = """
name: single
seed: 2
horizon_s: 60
cluster:
  node_pools:
    - name: gpu-node
      count: 2
      devices:
        gpu.example.com: {count: 1}
drivers:
  - name: gpu.example.com
    model: devices
    allocate_latency_s: {type: constant, value: 0.05}
resource_classes:
  - name: gpu
    driver_name: gpu.example.com
workloads:
  - name: job
    arrival: {type: times, at_s: [1]}
    claims:
      - name: gpu
        template: {resource_class: gpu}
    run_duration_s: {type: constant, value: 5}
"""


@pytest.fixture(scope="module")
def wffc(run_scenario: Callable[..., Path]) -> Results:
    return Results.read(run_scenario(SINGLE_POD))


@pytest.fixture(scope="module")
def immediate(run_scenario: Callable[..., Path]) -> Results:
    overrides = ("workloads.0.claims.0.template.allocation_mode=Immediate",)
    return Results.read(run_scenario(SINGLE_POD, overrides))


Expected = tuple[str, str]
"""(actor prefix, words the step's text contains)."""


def positions(steps: list[Step], expected: list[Expected]) -> list[int]:
    """Return the index of each expected step, searching forward from the previous one."""
    found = []
    start = 0
    for actor, words in expected:
        for index in range(start, len(steps)):
            if steps[index].actor.startswith(actor) and words in steps[index].text:
                found.append(index)
                start = index + 1
                break
        else:
            lines = "\n".join(f"{s.time_s:.3f} {s.actor}: {s.text}" for s in steps)
            pytest.fail(f"no step ({actor!r}, {words!r}) after step {start}:\n{lines}")
    return found


def only_claim(results: Results) -> str:
    (name,) = results.claims["name"]
    return str(name)


def test_template_claim_story_in_order(wffc: Results) -> None:
    claim = only_claim(wffc)
    node = str(wffc.pods["node"].iloc[0])
    (story,) = explain_claim(wffc, claim)

    positions(
        story.steps,
        [
            ("resourceclaim-controller", f"created claim {claim}"),
            ("kube-scheduler", "created PodSchedulingContext job-0"),
            ("driver/gpu.example.com", f"added its finalizer to claim {claim}"),
            (
                "driver/gpu.example.com",
                f"allocated claim {claim} on node {node} and reserved it for pod job-0",
            ),
            ("kube-scheduler", f"bound pod job-0 to node {node}"),
            (f"kubelet/{node}", f"read claim {claim} to prepare its resources"),
            (f"kubelet/{node}", "pod job-0 is Running"),
            ("resourceclaim-controller", "removed the finished pod from status.reservedFor"),
            ("resourceclaim-controller", f"deleted claim {claim}"),
            ("driver/gpu.example.com", f"deallocated claim {claim}"),
            (
                "driver/gpu.example.com",
                f"removed its finalizer, so the API server removed claim {claim}",
            ),
        ],
    )
    times = [step.time_s for step in story.steps]
    assert times == sorted(times)


def test_transitions_carry_component_reasons(wffc: Results) -> None:
    (story,) = explain_claim(wffc, only_claim(wffc))
    by_transition = {step.transition: step for step in story.steps if step.transition}

    assert by_transition["claim (new) -> Pending"].reason == "create claim from template"
    assert by_transition["claim Pending -> Reserved"].reason == "allocate"
    assert by_transition["claim Reserved -> DeallocationRequested"].actor == (
        "resourceclaim-controller"
    )
    assert by_transition["claim Deleting -> Deleted"].reason == "remove finalizer"


def test_pod_story_lists_every_attempt_and_wait(wffc: Results) -> None:
    (story,) = explain_pod(wffc, "job-0")
    attempts = [step for step in story.steps if step.source == "attempt"]
    waits = [step for step in story.steps if step.source == "wait"]

    assert len(attempts) == int(wffc.pods["attempts"].iloc[0]) == len(wffc.cycles)
    assert "of 2 feasible nodes" in attempts[0].text
    assert "DynamicResources rejected that node at Reserve" in attempts[0].text
    assert "assumed the pod there" in attempts[-1].text
    assert len(waits) >= 1
    # The last wait ends after the driver's allocation, and the story gives a cause.
    assert "backoff" in waits[-1].text or "driver/gpu.example.com allocated" in waits[-1].text
    assert all(step.actor == "kube-scheduler" for step in attempts + waits)


@pytest.mark.parametrize(
    ("version", "status"), [("1.29", "Pending"), ("1.28", "Unschedulable")], ids=["1.29", "1.28"]
)
def test_reserve_rejection_names_selected_node(
    run_scenario: Callable[..., Path], version: str, status: str
) -> None:
    # Before 1.29, DynamicResources' Reserve waits for the driver with an Unschedulable status.
    overrides = (f"control_plane.kubernetes_version='{version}'",)
    results = Results.read(run_scenario(SINGLE_POD, overrides))
    (story,) = explain_pod(results, "job-0")
    first = next(step for step in story.steps if step.source == "attempt")
    (cycle,) = results.cycles.loc[results.cycles["attempt"] == 1].itertuples(index=False)

    assert cycle.node != ""
    assert cycle.message.startswith("0/1 nodes are available: 1 ")
    assert first.text == (
        f"attempt 1: selected node {cycle.node} of 2 feasible nodes, then DynamicResources "
        f'rejected that node at Reserve with status {status}: "waiting for resource driver '
        'to allocate resource"'
    )


def test_wait_cites_only_earlier_writes(wffc: Results, mixed: Results) -> None:
    for results in (wffc, mixed):
        for name in results.pods["name"]:
            (story,) = explain_pod(results, str(name))
            steps = story.steps
            for index, step in enumerate(steps):
                if step.source != "wait" or step.actor == "end of run":
                    continue
                attempt = steps[index + 1]
                cited = re.findall(r"t=(\d+\.\d+) s", step.text)

                assert attempt.source == "attempt", step.text
                assert step.time_s == attempt.time_s, step.text
                assert all(float(time) <= round(step.time_s, 3) for time in cited), step.text


def test_pod_story_shows_writes_once(wffc: Results) -> None:
    (story,) = explain_pod(wffc, "job-0")
    bound = [step for step in story.steps if "bound pod job-0" in step.text]

    assert len(bound) == 1
    assert bound[0].reason.startswith("bound to node")
    assert bound[0].transition == "Pod Pending -> Bound"


def test_immediate_claim_allocated_before_scheduling(immediate: Results) -> None:
    claim = only_claim(immediate)
    (story,) = explain_pod(immediate, "job-0")

    first_attempt, allocated, reserved, bound = positions(
        story.steps,
        [
            ("kube-scheduler", "attempt 1: unschedulable"),
            ("driver/gpu.example.com", f"allocated claim {claim} on node"),
            ("kube-scheduler", f"reserved claim {claim}: added pod job-0"),
            ("kube-scheduler", "bound pod job-0"),
        ],
    )
    assert "unallocated immediate resourceclaim" in story.steps[first_attempt].text
    assert first_attempt < allocated < reserved < bound
    retry = next(step for step in story.steps if "before attempt 2" in step.text)
    assert "consistent with the backoff of 1 s after 1 attempt(s)" in retry.text
    assert "PodSchedulingContext" not in "".join(
        step.text for step in story.steps if "created" in step.text
    )


def test_shared_claim_pod_story_leaves_out_other_pods(mixed: Results) -> None:
    (story,) = explain_pod(mixed, "notebook-1")
    others = {"notebook-0", "notebook-2"}

    assert any("shared by 3 pods" in fact for fact in story.facts)
    assert not any(name in step.text for step in story.steps for name in others)
    assert any("pod notebook-1" in step.text and "reservedFor" in step.text for step in story.steps)


def test_shared_claim_story_lists_consumers(mixed: Results) -> None:
    (story,) = explain_claim(mixed, "shared-gpu")
    bound = [step.text for step in story.steps if step.text.startswith("bound pod")]

    assert sorted(text.split()[2] for text in bound) == ["notebook-0", "notebook-1", "notebook-2"]
    assert any("pods using it: notebook-0, notebook-1, notebook-2" in fact for fact in story.facts)


def test_unknown_pod_names_similar_ones(wffc: Results) -> None:
    with pytest.raises(ObjectNotFoundError, match=r"no pod named 'job' .*similar names: job-0"):
        explain_pod(wffc, "job")


def test_story_format_aligns_columns(wffc: Results) -> None:
    (story,) = explain_pod(wffc, "job-0")
    lines = story.format().splitlines()

    assert lines[0].startswith("Pod default/job-0 (uid ")
    steps = [line for line in lines if line.startswith("t=")]
    assert len(steps) == len(story.steps)
    assert len({line.index(" s  ") for line in steps}) == 1


@pytest.mark.parametrize(
    ("request_fields", "text"),
    [
        pytest.param(
            ("kube-scheduler", "create", "pods", "p", "binding", 201), "bound pod p", id="binding"
        ),
        pytest.param(
            ("driver/d", "update", "podschedulingcontexts", "p", "status", 200),
            "published unsuitable nodes",
            id="unsuitable-nodes",
        ),
        pytest.param(
            ("driver/d", "update", "resourceclaims", "c", "status", 409),
            "update of claim c status rejected with 409 Conflict",
            id="conflict",
        ),
        pytest.param(
            ("resourceclaim-controller", "delete", "resourceclaims", "c", "", 404),
            "rejected with 404 NotFound: the object was already gone",
            id="not-found",
        ),
        pytest.param(
            ("kube-scheduler", "create", "podschedulingcontexts", "p", "", 409),
            "409 AlreadyExists",
            id="already-exists",
        ),
        pytest.param(
            ("garbage-collector", "delete", "resourceclaims", "c", "", 200),
            "deleted claim c, whose owner is gone",
            id="garbage-collector",
        ),
    ],
)
def test_describe_request(request_fields, text: str) -> None:
    component, verb, resource, name, subresource, code = request_fields

    assert text in describe_request(component, verb, resource, name, subresource, code, 1.0)


def test_cli_explain_prints_story(wffc: Results, run_scenario: Callable[..., Path]) -> None:
    directory = run_scenario(SINGLE_POD)
    claim = only_claim(Results.read(directory))
    runner = CliRunner()

    pod = runner.invoke(app, ["explain", str(directory), "pod", "job-0"])
    claim_story = runner.invoke(app, ["explain", str(directory), "claim", claim, "-n", "default"])
    missing = runner.invoke(app, ["explain", str(directory), "pod", "nope"])
    wrong_namespace = runner.invoke(app, ["explain", str(directory), "pod", "job-0", "-n", "x"])

    assert pod.exit_code == 0, pod.output
    assert "bound pod job-0" in pod.output
    assert claim_story.exit_code == 0
    assert claim_story.output.startswith(f"ResourceClaim default/{claim}")
    assert missing.exit_code == 2
    assert "no pod named 'nope'" in missing.output
    assert wrong_namespace.exit_code == 2


def test_cli_explain_reads_flag_adds_gets(run_scenario: Callable[..., Path]) -> None:
    directory = run_scenario(SINGLE_POD)
    runner = CliRunner()

    default = runner.invoke(app, ["explain", str(directory), "pod", "job-0"])
    with_reads = runner.invoke(app, ["explain", str(directory), "pod", "job-0", "--reads"])

    assert "read pod job-0 to find its claims" not in default.output
    assert "read pod job-0 to find its claims" in with_reads.output


def test_pending_pod_story_ends_at_run_end(run_scenario: Callable[..., Path]) -> None:
    crowded = (
        SINGLE_POD.replace("count: 2", "count: 1")
        .replace("at_s: [1]", "at_s: [1, 1.5]")
        .replace("value: 5}", "value: 100}")
        .replace("horizon_s: 60", "horizon_s: 20")
    )
    results = Results.read(run_scenario(crowded))
    (story,) = explain_pod(results, "job-1")
    last = story.steps[-1]

    assert results.pods.set_index("name").loc["job-1", "node"] == ""
    assert last.actor == "end of run"
    assert last.time_s == pytest.approx(20.0)
    assert "the run ended with pod job-1 not bound" in last.text
    assert "Unschedulable" in last.text


def test_unbound_pod_story_quotes_reserve_message(run_scenario: Callable[..., Path]) -> None:
    # The run ends while the driver is still allocating (at about 1.08 s).
    results = Results.read(run_scenario(SINGLE_POD.replace("horizon_s: 60", "horizon_s: 1.05")))
    (story,) = explain_pod(results, "job-0")
    last = story.steps[-1]
    node = str(results.cycles["node"].iloc[-1])

    assert last.actor == "end of run"
    assert f"DynamicResources rejected the selected node {node} at Reserve" in last.text
    assert last.text.endswith(
        'with status Pending: "waiting for resource driver to provide information"'
    )
    assert "nodes are available" not in last.text
