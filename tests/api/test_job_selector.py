"""A Job's selector on the API server: generated on create, checked on create and update.

kube-apiserver 1.27-1.29 generates `spec.selector` and the job-name and
controller-uid pod labels unless `spec.manualSelector` is true, and rejects a
selector the user wrote without it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sim.api import APIServer, GenericObject, Invalid, ObjectMeta
from sim.api.validation import validate_create, validate_update

JOB_NAME = "batch.kubernetes.io/job-name"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"


@pytest.fixture
def server() -> APIServer:
    api = APIServer(seed=1)
    api.register_kind("Job", "batch/v1", namespaced=True, has_status=True)
    return api


def make_job(
    spec: dict[str, Any] | None = None, *, name: str = "train", **meta: Any
) -> GenericObject:
    template = {
        "metadata": {"labels": {"app": "train"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
    }
    return GenericObject(
        api_version="batch/v1",
        kind="Job",
        metadata=ObjectMeta(name=name, **meta),
        body={"spec": {"completions": 2, "template": template, **(spec or {})}},
    )


def template_labels(job: GenericObject) -> dict[str, str]:
    labels: dict[str, str] = job.body["spec"]["template"]["metadata"]["labels"]
    return labels


def field_errors(caught: pytest.ExceptionInfo[Invalid]) -> list[tuple[str, str, str]]:
    return [(e.path, e.kind, e.detail) for e in caught.value.errors]


# --------------------------------------------------------------------------------------
# Create
# --------------------------------------------------------------------------------------


def test_create_generates_selector_and_labels(server: APIServer) -> None:
    stored = server.create(make_job())

    assert isinstance(stored, GenericObject)
    uid = stored.metadata.uid
    assert stored.body["spec"]["selector"] == {"matchLabels": {CONTROLLER_UID: uid}}
    assert template_labels(stored) == {
        "app": "train",
        JOB_NAME: "train",
        "job-name": "train",
        CONTROLLER_UID: uid,
        "controller-uid": uid,
    }
    assert server.get("Job", "train", "default") == stored


def test_generated_name_in_job_name_labels(server: APIServer) -> None:
    stored = server.create(make_job(name="", generate_name="train-"))

    assert isinstance(stored, GenericObject)
    name = stored.metadata.name
    assert name.startswith("train-")
    assert template_labels(stored)[JOB_NAME] == name
    assert template_labels(stored)["job-name"] == name


def test_selector_without_manual_selector_rejected(server: APIServer) -> None:
    job = make_job({"selector": {"matchLabels": {"app": "train"}}})

    with pytest.raises(Invalid) as caught:
        server.create(job)

    assert caught.value.code == 422
    assert field_errors(caught) == [("spec.selector", "Invalid", "`selector` not auto-generated")]
    assert caught.value.message.startswith('Job "train" is invalid: [spec.selector: Invalid value:')
    assert not server.list("Job").items


def test_manual_selector_kept(server: APIServer) -> None:
    selector = {"matchLabels": {"app": "train"}}
    job = make_job({"manualSelector": True, "selector": selector})

    stored = server.create(job)

    assert isinstance(stored, GenericObject)
    assert stored.body["spec"] == job.body["spec"]


REJECTED_CREATES: dict[str, tuple[dict[str, Any], list[tuple[str, str, str]]]] = {
    "manual-selector-missing": (
        {"manualSelector": True},
        [
            ("spec.selector", "Required", ""),
            (
                "spec.template.metadata.labels",
                "Invalid",
                "`selector` does not match template `labels`",
            ),
        ],
    ),
    "manual-selector-not-matching-labels": (
        {"manualSelector": True, "selector": {"matchLabels": {"app": "web"}}},
        [
            (
                "spec.template.metadata.labels",
                "Invalid",
                "`selector` does not match template `labels`",
            )
        ],
    ),
    "manual-selector-bad-operator": (
        {
            "manualSelector": True,
            "selector": {"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]},
        },
        [
            (
                "spec.selector.matchExpressions[0].operator",
                "NotSupported",
                "supported values: In, NotIn, Exists, DoesNotExist",
            )
        ],
    ),
    "selector-of-wrong-type": (
        {"selector": "app=train"},
        [("spec.selector", "Invalid", "must be an object")],
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTED_CREATES))
def test_create_rejected(server: APIServer, case: str) -> None:
    spec, expected = REJECTED_CREATES[case]

    with pytest.raises(Invalid) as caught:
        server.create(make_job(spec))

    assert field_errors(caught) == expected


def test_template_label_with_other_value_rejected(server: APIServer) -> None:
    job = make_job()
    job.body["spec"]["template"]["metadata"]["labels"]["job-name"] = "other"

    with pytest.raises(Invalid) as caught:
        server.create(job)

    assert field_errors(caught) == [
        ("spec.template.metadata.labels[job-name]", "Invalid", "must be 'train'")
    ]


# --------------------------------------------------------------------------------------
# Update
# --------------------------------------------------------------------------------------


def updated(job: GenericObject, change: Any) -> GenericObject:
    body = copy.deepcopy(job.body)
    change(body["spec"])
    return job.model_copy(update={"body": body})


def test_update_keeping_selector_accepted(server: APIServer) -> None:
    stored = server.create(make_job())

    result = server.update(updated(stored, lambda spec: spec.update(parallelism=2)))

    assert isinstance(result, GenericObject)
    assert result.body["spec"]["parallelism"] == 2
    assert result.metadata.generation == 2


def test_update_changing_selector_rejected(server: APIServer) -> None:
    stored = server.create(make_job())

    def add_match_label(spec: dict[str, Any]) -> None:
        spec["selector"]["matchLabels"]["app"] = "train"

    with pytest.raises(Invalid) as caught:
        server.update(updated(stored, add_match_label))

    assert ("spec.selector", "Invalid", "field is immutable") in field_errors(caught)


def test_update_dropping_uid_label_rejected(server: APIServer) -> None:
    stored = server.create(make_job())

    def drop_label(spec: dict[str, Any]) -> None:
        del spec["template"]["metadata"]["labels"]["controller-uid"]

    with pytest.raises(Invalid) as caught:
        server.update(updated(stored, drop_label))

    assert field_errors(caught) == [
        (
            "spec.template.metadata.labels[controller-uid]",
            "Required",
            f"must be '{stored.metadata.uid}'",
        )
    ]


def test_legacy_labels_enough_on_update_only() -> None:
    # A Job created before 1.27 has only the labels without the batch.kubernetes.io/ prefix.
    old = make_job({"selector": {"matchLabels": {"controller-uid": "uid-1"}}}, namespace="default")
    old = old.with_meta(uid="uid-1")
    template_labels(old).update({"job-name": "train", "controller-uid": "uid-1"})
    new = updated(old, lambda spec: spec.update(parallelism=2))

    assert validate_update(new, old) == []
    assert [(e.path, e.kind) for e in validate_create(new)] == [
        (f"spec.template.metadata.labels[{CONTROLLER_UID}]", "Required"),
        (f"spec.template.metadata.labels[{JOB_NAME}]", "Required"),
    ]
