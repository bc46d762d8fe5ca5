"""The codec against real DRA manifests and the official OpenAPI schemas of resource.k8s.io.

Every manifest of the corpus is a test case by file name. Files written for
resource.k8s.io/v1alpha2 load in lenient mode (they carry container images,
commands and volumes that the simulator does not model), except for these,
which are rejected with a message naming the problem:

* three files with authoring mistakes. One writes a container claim as a bare
  string, one writes pod claims in the flattened form of Kubernetes 1.31, and a
  web page uses an en dash in a YAML document separator (and puts `name:` at
  the top level);
* two files that need Kubernetes 1.30: the `ResourceClaimParameters` kind and
  the `structuredParameters` field of ResourceClass are not part of the 1.27 and
  1.29 API that the simulator models;
* the scheduler_perf configuration, which is a list of benchmark cases and not
  a Kubernetes manifest.

Files under `later-api/` use resource.k8s.io/v1alpha3 or v1beta1 and are
rejected because only v1alpha2 is supported.

Objects the codec writes for the resource.k8s.io kinds must validate against
the 1.27 and 1.29 OpenAPI schemas, and every key written must be a property
that the schema declares, so that a misspelled alias cannot pass unnoticed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from sim.api.codec import LoadResult, ManifestError, load_path, to_dict
from sim.api.types import (
    AllocationResult,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    ObjectMeta,
    OwnerReference,
    PodSchedulingContext,
    PodSchedulingContextSpec,
    PodSchedulingContextStatus,
    ResourceClaim,
    ResourceClaimConsumerReference,
    ResourceClaimList,
    ResourceClaimParametersReference,
    ResourceClaimSchedulingStatus,
    ResourceClaimSpec,
    ResourceClaimStatus,
    ResourceClaimTemplate,
    ResourceClaimTemplateSpec,
    ResourceClass,
    ResourceClassParametersReference,
    ResourceHandle,
    TopLevelObject,
    kind_of,
)

# Same location as the `corpus_dir` fixture; needed here at collection time to
# turn each file into a test case.
CORPUS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
MANIFESTS_DIR = CORPUS_DIR / "manifests"
OPENAPI_RELEASES = ("1.27", "1.29")

# Name of the single case generated when the corpus is missing, so that the
# tests fail through the `corpus_dir` fixture instead of collecting nothing.
MISSING = "<corpus missing>"

K8S = "kubernetes__kubernetes"
WEBSITE_PAGE = (
    "kubernetes__website/content__en__docs__concepts__scheduling-eviction__"
    "dynamic-resource-allocation.md"
)

# File -> fragments that the rejection message must contain.
REJECTED: dict[str, tuple[str, ...]] = {
    f"{K8S}/test__e2e__dra__test-driver__deploy__example__pod-external.yaml": (
        "spec.containers[0].resources.claims[0]",
        "'resource'",
        '"- name: resource" instead of "- resource"',
    ),
    f"{K8S}/test__e2e__dra__test-driver__deploy__example__pod-shared.yaml": (
        "spec.resourceClaims[0].resourceClaimName",
        "flattened form of Kubernetes 1.31",
        'under "source:"',
    ),
    WEBSITE_PAGE: (
        "line 103, column 1",
        "Line 102 is '–--'",
        "en dash (U+2013)",
        "'---'",
    ),
    f"{K8S}/test__integration__scheduler_perf__config__dra__resourceclaimparameters.yaml": (
        "kind: ResourceClaimParameters is not supported",
        "only in Kubernetes 1.30",
    ),
    f"{K8S}/test__integration__scheduler_perf__config__dra__resourceclass-structured.yaml": (
        "structuredParameters",
        "only in Kubernetes 1.30",
    ),
    f"{K8S}/test__integration__scheduler_perf__config__performance-config.yaml": (
        "document 1 (line 15)",
        "expected a Kubernetes object",
        "got a list",
    ),
}


def _manifest_names(folder: Path, *, later_api: bool) -> list[str]:
    """Return the manifest files under `folder` as posix paths relative to it."""
    if not folder.is_dir():
        return [MISSING]
    names = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if not path.is_file() or path.name == "SOURCES.md":
            continue
        if relative.startswith("later-api/") != later_api:
            continue
        names.append(relative)
    return names


MANIFESTS = _manifest_names(MANIFESTS_DIR, later_api=False)
LATER_API_MANIFESTS = _manifest_names(MANIFESTS_DIR, later_api=True)
LOADABLE = [name for name in MANIFESTS if name not in REJECTED]


def _manifest_path(corpus_dir: Path, name: str) -> Path:
    assert name != MISSING, "the corpus has no manifests folder"
    return corpus_dir / "manifests" / name


# --------------------------------------------------------------------------------------
# Loading every manifest
# --------------------------------------------------------------------------------------


def test_corpus_has_expected_files(corpus_dir: Path) -> None:
    names = _manifest_names(corpus_dir / "manifests", later_api=False)
    for rejected in REJECTED:
        assert rejected in names
    # The 1.27-1.29 manifests that load; update this number when the corpus grows.
    assert len(LOADABLE) == 34
    assert len(LATER_API_MANIFESTS) == 5


@pytest.mark.parametrize("name", LOADABLE)
def test_manifest_loads_leniently(corpus_dir: Path, name: str) -> None:
    result = load_path(_manifest_path(corpus_dir, name), lenient=True)

    assert result.objects
    for obj in result.objects:
        assert obj.metadata.name or obj.metadata.generate_name


@pytest.mark.parametrize("name", sorted(REJECTED))
@pytest.mark.parametrize("lenient", [False, True], ids=["strict", "lenient"])
def test_manifest_rejected_with_reason(corpus_dir: Path, name: str, lenient: bool) -> None:
    path = _manifest_path(corpus_dir, name)

    with pytest.raises(ManifestError) as caught:
        load_path(path, lenient=lenient)

    message = str(caught.value)
    assert message.startswith(str(path))
    assert "\n" not in message
    for fragment in REJECTED[name]:
        assert fragment in message


@pytest.mark.parametrize("name", LATER_API_MANIFESTS)
def test_later_api_rejected(corpus_dir: Path, name: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_path(_manifest_path(corpus_dir, name), lenient=True)

    assert caught.value.path == "apiVersion"
    assert "Only resource.k8s.io/v1alpha2 is supported" in str(caught.value)


def test_website_page_top_level_name(corpus_dir: Path, tmp_path: Path) -> None:
    # Once the separator and the "..." placeholder of the second example are
    # fixed, the next problem is `name:` at the top level of the ResourceClass.
    text = (corpus_dir / "manifests" / WEBSITE_PAGE).read_text(encoding="utf-8")
    fixed = text.replace("\n–--\n", "\n---\n").replace("\n  ...\n", "\n")
    page = tmp_path / "page.md"
    page.write_text(fixed, encoding="utf-8")

    with pytest.raises(ManifestError) as caught:
        load_path(page, lenient=True)

    error = caught.value
    assert error.document == 0
    assert error.line == 79
    assert error.path == "name"
    assert 'belongs under "metadata:"' in str(error)


def test_lenient_load_reports_ignored_fields(corpus_dir: Path) -> None:
    name = "kubernetes-sigs__dra-example-driver/demo__gpu-test1.yaml"
    result = load_path(_manifest_path(corpus_dir, name), lenient=True)

    paths = {(f.kind, f.name, f.path) for f in result.ignored}
    assert ("Pod", "pod0", "spec.containers[0].image") in paths
    assert ("Pod", "pod0", "spec.containers[0].command") in paths


def test_load_all_corpus_timing(corpus_dir: Path) -> None:
    start = time.perf_counter()
    total = LoadResult()
    for name in LOADABLE:
        total.extend(load_path(_manifest_path(corpus_dir, name), lenient=True))
    elapsed = time.perf_counter() - start

    print(
        f"loaded {len(LOADABLE)} corpus files ({len(total.objects)} objects, "
        f"{len(total.ignored)} ignored fields) in {elapsed * 1000:.1f} ms"
    )
    assert total.objects


# --------------------------------------------------------------------------------------
# OpenAPI schemas of resource.k8s.io/v1alpha2
# --------------------------------------------------------------------------------------

SCHEMA_PREFIX = "io.k8s.api.resource.v1alpha2."


class OpenAPISchemas:
    """The `components/schemas` of one OpenAPI v3 document, with `$ref` resolution."""

    def __init__(self, path: Path) -> None:
        self.document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        self.uri = f"urn:openapi:{path.name}"
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(self.uri, resource)

    def schema(self, name: str) -> dict[str, Any]:
        return self.document["components"]["schemas"][name]  # type: ignore[no-any-return]

    def validator(self, name: str) -> Draft202012Validator:
        ref = {"$ref": f"{self.uri}#/components/schemas/{name}"}
        return Draft202012Validator(ref, registry=self.registry)

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Follow `$ref` and single-entry `allOf` wrappers down to a schema with content."""
        while True:
            if "$ref" in schema:
                schema = self.schema(schema["$ref"].rsplit("/", 1)[-1])
            elif "allOf" in schema and len(schema["allOf"]) == 1:
                schema = schema["allOf"][0]
            else:
                return schema

    def undeclared_keys(self, instance: Any, schema: dict[str, Any], path: str = "") -> list[str]:
        """Return the paths of object keys that the schema does not declare as properties."""
        schema = self.resolve(schema)
        found: list[str] = []
        if isinstance(instance, dict):
            properties = schema.get("properties")
            additional = schema.get("additionalProperties")
            for key, value in instance.items():
                child = f"{path}.{key}" if path else key
                if properties is not None and key in properties:
                    found += self.undeclared_keys(value, properties[key], child)
                elif isinstance(additional, dict):
                    found += self.undeclared_keys(value, additional, f"{path}[{key}]")
                elif properties is not None or additional is False:
                    found.append(child)
        elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
            for i, item in enumerate(instance):
                found += self.undeclared_keys(item, schema["items"], f"{path}[{i}]")
        return found


@pytest.fixture(scope="module", params=OPENAPI_RELEASES, ids=lambda r: f"openapi-{r}")
def openapi(request: pytest.FixtureRequest, corpus_dir: Path) -> OpenAPISchemas:
    release: str = request.param
    return OpenAPISchemas(
        corpus_dir / "openapi" / f"apis__resource.k8s.io__v1alpha2_openapi.release-{release}.json"
    )


def assert_matches_schema(openapi: OpenAPISchemas, wire: dict[str, Any]) -> None:
    name = SCHEMA_PREFIX + wire["kind"]
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in openapi.validator(name).iter_errors(wire)
    ]
    assert errors == []
    assert openapi.undeclared_keys(wire, openapi.schema(name)) == []


def _corpus_resource_objects(corpus_dir: Path) -> Iterator[TopLevelObject]:
    for name in LOADABLE:
        for obj in load_path(_manifest_path(corpus_dir, name), lenient=True).objects:
            if kind_of(obj).startswith("Resource") or kind_of(obj) == "PodSchedulingContext":
                yield obj


def test_corpus_objects_match_openapi(corpus_dir: Path, openapi: OpenAPISchemas) -> None:
    objects = list(_corpus_resource_objects(corpus_dir))
    kinds = {kind_of(obj) for obj in objects}

    assert kinds == {"ResourceClass", "ResourceClaim", "ResourceClaimTemplate"}
    for obj in objects:
        assert_matches_schema(openapi, to_dict(obj))


def _selector() -> NodeSelector:
    return NodeSelector(
        node_selector_terms=(
            NodeSelectorTerm(
                match_expressions=(
                    NodeSelectorRequirement(
                        key="kubernetes.io/hostname", operator="In", values=("node-1",)
                    ),
                ),
                match_fields=(
                    NodeSelectorRequirement(
                        key="metadata.name", operator="NotIn", values=("node-2",)
                    ),
                ),
            ),
        )
    )


def _metadata(name: str) -> ObjectMeta:
    return ObjectMeta(
        name=name,
        generate_name=f"{name}-",
        namespace="default",
        uid=f"uid-{name}",
        resource_version="42",
        generation=3,
        creation_timestamp="2024-01-01T00:00:00Z",
        deletion_timestamp="2024-01-01T00:05:00Z",
        labels={"app": "demo"},
        annotations={"note": "built by hand"},
        finalizers=("resource.k8s.io/delete-protection",),
        owner_references=(
            OwnerReference(
                api_version="v1",
                kind="Pod",
                name="pod-0",
                uid="uid-pod-0",
                controller=True,
                block_owner_deletion=True,
            ),
        ),
    )


def _full_status_objects() -> list[TopLevelObject]:
    claim_spec = ResourceClaimSpec(
        resource_class_name="gpu.example.com",
        parameters_ref=ResourceClaimParametersReference(
            api_group="gpu.resource.example.com", kind="GpuClaimParameters", name="params"
        ),
        allocation_mode="Immediate",
    )
    return [
        ResourceClass(
            metadata=_metadata("gpu.example.com").model_copy(update={"namespace": ""}),
            driver_name="gpu.resource.example.com",
            parameters_ref=ResourceClassParametersReference(
                api_group="gpu.resource.example.com",
                kind="GpuClassParameters",
                name="class-params",
                namespace="drivers",
            ),
            suitable_nodes=_selector(),
        ),
        ResourceClaim(
            metadata=_metadata("claim-0"),
            spec=claim_spec,
            status=ResourceClaimStatus(
                allocation=AllocationResult(
                    resource_handles=(
                        ResourceHandle(driver_name="gpu.resource.example.com", data="gpu-0"),
                    ),
                    available_on_nodes=_selector(),
                    shareable=True,
                ),
                reserved_for=(
                    ResourceClaimConsumerReference(
                        api_group="", resource="pods", name="pod-0", uid="uid-pod-0"
                    ),
                ),
                deallocation_requested=True,
                driver_name="gpu.resource.example.com",
            ),
        ),
        ResourceClaimTemplate(
            metadata=_metadata("template-0"),
            spec=ResourceClaimTemplateSpec(metadata=_metadata("generated"), spec=claim_spec),
        ),
        PodSchedulingContext(
            metadata=_metadata("pod-0"),
            spec=PodSchedulingContextSpec(
                selected_node="node-1", potential_nodes=("node-1", "node-2")
            ),
            status=PodSchedulingContextStatus(
                resource_claims=(
                    ResourceClaimSchedulingStatus(name="gpu", unsuitable_nodes=("node-2",)),
                )
            ),
        ),
    ]


@pytest.mark.parametrize("obj", _full_status_objects(), ids=kind_of)
def test_full_object_matches_openapi(openapi: OpenAPISchemas, obj: TopLevelObject) -> None:
    assert_matches_schema(openapi, to_dict(obj))


def test_claim_list_matches_openapi(openapi: OpenAPISchemas) -> None:
    claims = tuple(o for o in _full_status_objects() if isinstance(o, ResourceClaim))
    wire = to_dict(ResourceClaimList(items=claims))

    assert_matches_schema(openapi, wire)


def test_schema_check_catches_misspelled_key(openapi: OpenAPISchemas) -> None:
    wire = to_dict(_full_status_objects()[1])
    wire["status"]["reservedFor"][0]["UID"] = "x"
    wire["spec"]["resourceClassname"] = "y"

    undeclared = openapi.undeclared_keys(wire, openapi.schema(SCHEMA_PREFIX + "ResourceClaim"))

    assert undeclared == ["spec.resourceClassname", "status.reservedFor[0].UID"]
