"""`dra-sim get`: kubectl-style tables and wire-form objects read from a results directory.

One small run (example-driver and Intel demos, a Deployment and a Job) is
written once per module, and the tests read it back through the command
line.
Objects printed with `-o json` must validate against the resource.k8s.io
OpenAPI schemas of Kubernetes 1.27 and 1.29.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from typer.testing import CliRunner

from sim.cli import app
from sim.cluster.kubelet import RUN_DURATION_ANNOTATION
from sim.commands.get import human_duration, resolve_kind, resource_claim_state
from sim.results import simulate
from tests.manifests.conftest import EXAMPLE, EXAMPLE_CLASS, INTEL, INTEL_CLASSES, default_cluster

JOB = f"""
apiVersion: batch/v1
kind: Job
metadata:
  name: batch
spec:
  completions: 2
  template:
    metadata:
      annotations: {{{RUN_DURATION_ANNOTATION}: "20"}}
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: busybox
"""

RESOURCE_KINDS = ("ResourceClaim", "ResourceClaimTemplate", "ResourceClass", "PodSchedulingContext")


@pytest.fixture(scope="module")
def results_dir(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("get")
    job = base / "job.yaml"
    job.write_text(JOB, encoding="utf-8")
    scenario = default_cluster(
        corpus_dir,
        [
            EXAMPLE_CLASS,
            EXAMPLE + "demo__gpu-test3.yaml",
            INTEL_CLASSES,
            INTEL + "delayed__inline__pod-inline-too-big.yaml",
            INTEL + "delayed__inline__inline-deployment.yaml",
        ],
    )
    scenario = scenario.model_copy(update={"manifests": [*scenario.manifests, str(job)]})
    return simulate(scenario, check_invariants=True).write(base / "run")


def get(*args: str) -> Any:
    return CliRunner().invoke(app, ["get", *map(str, args)])


def ok(*args: str) -> str:
    result = get(*args)
    assert result.exit_code == 0, result.output
    text: str = result.stdout
    return text


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------


def test_pods_table_snapshot(results_dir: Path) -> None:
    assert ok(results_dir, "pods", "-A") == (
        "NAMESPACE   NAME                                     READY   STATUS      RESTARTS   AGE\n"
        "default     batch-8rdvn                              0/1     Completed   0          100s\n"
        "default     batch-k8pxd                              0/1     Completed   0          2m\n"
        "default     inline-gpu-deployment-5987bdb985-6l7sm   2/2     Running     0          2m\n"
        "default     inline-gpu-deployment-5987bdb985-fvkpr   2/2     Running     0          2m\n"
        "default     test-inline-claim-too-big                0/2     Pending     0          2m\n"
        "gpu-test3   pod0                                     1/1     Running     0          2m\n"
        "gpu-test3   pod1                                     1/1     Running     0          2m\n"
    )


def test_resourceclaims_table_snapshot(results_dir: Path) -> None:
    assert ok(results_dir, "resourceclaims", "-n", "gpu-test3") == (
        "NAME         RESOURCECLASSNAME   ALLOCATIONMODE         STATE                AGE\n"
        "shared-gpu   gpu.example.com     WaitForFirstConsumer   allocated,reserved   2m\n"
    )


def test_wide_pods_show_node(results_dir: Path) -> None:
    lines = ok(results_dir, "po", "-n", "gpu-test3", "-o", "wide").splitlines()

    assert lines[0].split() == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
    ]
    assert all(" gpu-node-" in line for line in lines[1:])


def test_tables_of_other_kinds(results_dir: Path) -> None:
    assert ok(results_dir, "deploy").splitlines() == [
        "NAME                    READY   UP-TO-DATE   AVAILABLE   AGE",
        "inline-gpu-deployment   2/2     2            2           2m",
    ]
    # Completions 2 with parallelism 1: two pods of 20 s, one after the other.
    assert ok(results_dir, "jobs").splitlines()[1].split() == ["batch", "2/2", "40s", "2m"]
    assert ok(results_dir, "rs").splitlines()[1].split()[1:4] == ["2", "2", "2"]
    assert ok(results_dir, "resourceclasses").splitlines()[0].split() == [
        "NAME",
        "DRIVERNAME",
        "AGE",
    ]
    assert ok(results_dir, "nodes").splitlines()[1].split() == [
        "gpu-node-0",
        "Ready",
        "<none>",
        "2m",
        "v1.29",
    ]
    assert ok(results_dir, "podschedulingcontexts").splitlines() == [
        "NAME                        SELECTEDNODE   AGE",
        "test-inline-claim-too-big   gpu-node-0     2m",
    ]


@pytest.mark.parametrize(
    ("kind", "containers"),
    [
        ("deploy", "with-resource,without-resource"),
        ("rs", "with-resource,without-resource"),
        ("jobs", "work"),
    ],
)
def test_wide_workloads_show_containers(results_dir: Path, kind: str, containers: str) -> None:
    header, row = ok(results_dir, kind, "-o", "wide").splitlines()

    assert header.split()[-4:] == ["AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert row.split()[-3] == containers


def test_wide_job_shows_generated_selector(results_dir: Path) -> None:
    job = json.loads(ok(results_dir, "jobs", "batch", "-o", "json"))
    uid = job["metadata"]["uid"]

    header, row = ok(results_dir, "jobs", "-o", "wide").splitlines()

    assert header.split()[-1] == "SELECTOR"
    assert row.split()[-1] == f"batch.kubernetes.io/controller-uid={uid}"


def test_get_at_earlier_time(results_dir: Path) -> None:
    lines = ok(results_dir, "pods", "-n", "gpu-test3", "--at", "0").splitlines()

    assert [line.split() for line in lines[1:]] == [
        ["pod0", "0/1", "Pending", "0", "0s"],
        ["pod1", "0/1", "Pending", "0", "0s"],
    ]


def test_empty_result_message(results_dir: Path) -> None:
    result = get(results_dir, "pods", "-n", "nothing-here")

    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "No resources found in nothing-here namespace.\n"


# --------------------------------------------------------------------------------------
# Objects in wire form
# --------------------------------------------------------------------------------------


class Schemas:
    """The components/schemas of one resource.k8s.io OpenAPI document, with $ref resolution."""

    def __init__(self, path: Path) -> None:
        self.document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        self.uri = f"urn:openapi:{path.name}"
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(self.uri, resource)

    def errors(self, name: str, instance: Any) -> list[str]:
        ref = {"$ref": f"{self.uri}#/components/schemas/{name}"}
        validator = Draft202012Validator(ref, registry=self.registry)
        return [
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(instance)
        ]

    def undeclared(self, instance: Any, name: str, path: str = "") -> list[str]:
        """Return the keys of `instance` that the schema does not declare."""
        schema = self.document["components"]["schemas"][name]
        return self._undeclared(instance, schema, path)

    def _undeclared(self, instance: Any, schema: dict[str, Any], path: str) -> list[str]:
        while "$ref" in schema or ("allOf" in schema and len(schema["allOf"]) == 1):
            if "$ref" in schema:
                schema = self.document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
            else:
                schema = schema["allOf"][0]
        found: list[str] = []
        if isinstance(instance, dict) and "properties" in schema:
            for key, value in instance.items():
                if key in schema["properties"]:
                    found += self._undeclared(value, schema["properties"][key], f"{path}.{key}")
                elif not isinstance(schema.get("additionalProperties"), dict):
                    found.append(f"{path}.{key}")
        elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
            for item in instance:
                found += self._undeclared(item, schema["items"], path)
        return found


@pytest.fixture(scope="module", params=["1.27", "1.29"], ids=lambda r: f"openapi-{r}")
def schemas(request: pytest.FixtureRequest, corpus_dir: Path) -> Schemas:
    name = f"apis__resource.k8s.io__v1alpha2_openapi.release-{request.param}.json"
    return Schemas(corpus_dir / "openapi" / name)


@pytest.mark.parametrize("kind", RESOURCE_KINDS)
def test_json_matches_openapi(results_dir: Path, schemas: Schemas, kind: str) -> None:
    plural = {"ResourceClass": "resourceclasses"}.get(kind, kind.lower() + "s")
    document = json.loads(ok(results_dir, plural, "-A", "-o", "json"))

    assert (document["apiVersion"], document["kind"]) == ("v1", "List")
    assert document["items"]
    for item in document["items"]:
        assert item["apiVersion"] == "resource.k8s.io/v1alpha2"
        assert item["kind"] == kind
        metadata = item["metadata"]
        assert metadata["uid"]
        assert metadata["resourceVersion"]
        assert metadata["creationTimestamp"].startswith("2024-01-01T")
        name = f"io.k8s.api.resource.v1alpha2.{kind}"
        assert schemas.errors(name, item) == []
        assert schemas.undeclared(item, name) == []


@pytest.mark.parametrize("kind", ["pods", "nodes", "deployments", "jobs", "namespaces"])
def test_metadata_matches_openapi(results_dir: Path, schemas: Schemas, kind: str) -> None:
    document = json.loads(ok(results_dir, kind, "-A", "-o", "json"))

    assert document["items"]
    for item in document["items"]:
        assert set(item) >= {"apiVersion", "kind", "metadata"}
        meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        assert schemas.errors(meta, item["metadata"]) == []


def test_claim_status_in_wire_form(results_dir: Path) -> None:
    claim = json.loads(
        ok(results_dir, "resourceclaims", "shared-gpu", "-n", "gpu-test3", "-o", "json")
    )

    assert claim["spec"] == {
        "resourceClassName": "gpu.example.com",
        "allocationMode": "WaitForFirstConsumer",
    }
    assert claim["status"]["driverName"] == "gpu.resource.example.com"
    assert {ref["name"] for ref in claim["status"]["reservedFor"]} == {"pod0", "pod1"}
    assert claim["status"]["allocation"]["shareable"] is True


def test_yaml_output_equals_json(results_dir: Path) -> None:
    as_yaml = yaml.safe_load(ok(results_dir, "pod", "pod0", "-n", "gpu-test3", "-o", "yaml"))
    as_json = json.loads(ok(results_dir, "pod", "pod0", "-n", "gpu-test3", "-o", "json"))

    assert as_yaml == as_json
    assert as_yaml["kind"] == "Pod"
    assert as_yaml["spec"]["nodeName"].startswith("gpu-node-")


# --------------------------------------------------------------------------------------
# Bad arguments
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("widgets",), "unknown resource type 'widgets'; known types: "),
        (("pods", "nope"), "pods \"nope\" not found in namespace 'default'"),
        (("pods", "--at", "500"), "--at 500: the run covers 0 to 120 simulated seconds"),
        (("pods", "-n", "x", "-A"), "give -n NAMESPACE or -A (all namespaces), not both"),
        (("pods", "-o", "xml"), "unknown output format 'xml'; use one of yaml, json, wide"),
    ],
    ids=["unknown-kind", "missing-object", "at-beyond-run", "namespace-and-all", "bad-output"],
)
def test_bad_arguments_exit_2(results_dir: Path, args: tuple[str, ...], message: str) -> None:
    result = get(results_dir, *args)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


def test_missing_results_dir_exit_2(tmp_path: Path) -> None:
    result = get(tmp_path / "absent", "pods")

    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path / 'absent'}: results directory not found\n"


# --------------------------------------------------------------------------------------
# Column helpers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "kind"),
    [
        ("pods", "Pod"),
        ("po", "Pod"),
        ("pod", "Pod"),
        ("no", "Node"),
        ("nodes", "Node"),
        ("resourceclaims", "ResourceClaim"),
        ("resourceclaims.resource.k8s.io", "ResourceClaim"),
        ("resourceclaimtemplates", "ResourceClaimTemplate"),
        ("resourceclasses", "ResourceClass"),
        ("podschedulingcontexts", "PodSchedulingContext"),
        ("deploy", "Deployment"),
        ("deployments.apps", "Deployment"),
        ("jobs", "Job"),
        ("rs", "ReplicaSet"),
        ("gpuclaimparameters", "GpuClaimParameters"),
        ("GpuClaimParameters", "GpuClaimParameters"),
    ],
)
def test_kind_aliases(alias: str, kind: str) -> None:
    assert resolve_kind(alias, ["GpuClaimParameters"]) == kind


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (150, "2m30s"),
        (599, "9m59s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (50 * 3600, "2d2h"),
        (8 * 86400, "8d"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


ALLOCATION = {"availableOnNodes": {}, "resourceHandles": [{"driverName": "d"}]}
RESERVED = [{"resource": "pods", "name": "p", "uid": "u"}]


@pytest.mark.parametrize(
    ("metadata", "status", "state"),
    [
        ({}, {}, "pending"),
        ({}, {"allocation": ALLOCATION}, "allocated"),
        ({}, {"allocation": ALLOCATION, "reservedFor": RESERVED}, "allocated,reserved"),
        ({}, {"allocation": ALLOCATION, "deallocationRequested": True}, "allocated,deallocating"),
        ({"deletionTimestamp": "t"}, {}, "deleted"),
        ({"deletionTimestamp": "t"}, {"allocation": ALLOCATION}, "deleted,allocated,deallocating"),
        (
            {"deletionTimestamp": "t"},
            {"allocation": ALLOCATION, "reservedFor": RESERVED},
            "deleted,allocated,reserved",
        ),
    ],
    ids=[
        "pending",
        "allocated",
        "reserved",
        "deallocating",
        "deleted",
        "deleted-allocated",
        "deleted-reserved",
    ],
)
def test_resource_claim_state(metadata: dict[str, Any], status: dict[str, Any], state: str) -> None:
    assert resource_claim_state({"metadata": metadata, "status": status}) == state
