"""`dra-sim run --manifest`: real manifests on the default cluster from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from sim.cli import app
from tests.manifests.conftest import E2E, EXAMPLE, EXAMPLE_CLASS, K8S, SCHEDULER_PERF

WEBSITE_PAGE = (
    "kubernetes__website/content__en__docs__concepts__scheduling-eviction__"
    "dynamic-resource-allocation.md"
)

# Corpus files that a real API server (or the v1alpha2 API) rejects, with a part of the message.
REJECTED = {
    E2E + "pod-external.yaml": '"- name: resource" instead of "- resource"',
    E2E + "pod-shared.yaml": "flattened form of Kubernetes 1.31",
    WEBSITE_PAGE: "en dash (U+2013)",
    SCHEDULER_PERF
    + "dra__resourceclaimparameters.yaml": "ResourceClaimParameters is not supported",
    SCHEDULER_PERF + "dra__resourceclass-structured.yaml": "structuredParameters",
    SCHEDULER_PERF + "performance-config.yaml": "expected a Kubernetes object",
    "later-api/" + EXAMPLE + "demo__gpu-test4.yaml": "Only resource.k8s.io/v1alpha2 is supported",
    "later-api/" + K8S + "test__e2e__dra__test-driver__deploy__example__resourceclaim.yaml": (
        "Only resource.k8s.io/v1alpha2 is supported"
    ),
}


def run(*args: Any) -> Any:
    return CliRunner().invoke(app, ["run", "--check-invariants", *map(str, args)])


def test_manifests_on_default_cluster(corpus_dir: Path, tmp_path: Path) -> None:
    manifests = corpus_dir / "manifests"

    result = run(
        "--manifest",
        manifests / EXAMPLE_CLASS,
        "--manifest",
        manifests / EXAMPLE / "demo__gpu-test2.yaml",
        "-o",
        tmp_path / "out",
        "-q",
    )

    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    resolved = yaml.safe_load((out / "scenario.resolved.yaml").read_text(encoding="utf-8"))
    assert resolved["name"] == "default-cluster"
    assert resolved["horizon_s"] == 120.0
    assert resolved["manifests"][-1].endswith("demo__gpu-test2.yaml")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["ignored_manifest_fields"] == [
        "spec.containers[].args (2)",
        "spec.containers[].command (2)",
        "spec.containers[].image (2)",
    ]
    assert manifest["objects_recorded"] == "all"
    assert (out / "objects.parquet").is_file()


def test_custom_cluster_file(corpus_dir: Path, tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(
        yaml.safe_dump(
            {
                "name": "one-node",
                "horizon_s": 30,
                "cluster": {
                    "node_pools": [
                        {
                            "name": "n",
                            "count": 1,
                            "devices": {"gpu.resource.example.com": {"count": 1}},
                        }
                    ]
                },
                "drivers": [{"name": "gpu.resource.example.com", "model": "devices"}],
            }
        ),
        encoding="utf-8",
    )
    manifests = corpus_dir / "manifests"

    result = run(
        "--cluster",
        cluster,
        "--manifest",
        manifests / EXAMPLE_CLASS,
        "--manifest",
        manifests / EXAMPLE / "demo__gpu-test1.yaml",
        "-o",
        tmp_path / "out",
        "-q",
    )

    assert result.exit_code == 0, result.output
    pods = CliRunner().invoke(app, ["get", str(tmp_path / "out"), "pods", "-n", "gpu-test1"])
    # One device for two pods that each need their own: one runs, one waits.
    assert sorted(line.split()[2] for line in pods.stdout.splitlines()[1:]) == [
        "Pending",
        "Running",
    ]


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_broken_corpus_file_exit_2(corpus_dir: Path, tmp_path: Path, name: str) -> None:
    path = corpus_dir / "manifests" / name

    result = run("--manifest", path, "-o", tmp_path / "out", "-q")

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: default cluster: {path.resolve()}")
    assert REJECTED[name] in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "missing SCENARIO; give a scenario file, or --manifest PATH"),
        (
            ("--manifest", "/no/such/file.yaml"),
            "/no/such/file.yaml: --manifest file or folder not found",
        ),
        (
            ("scenario.yaml", "--cluster", "c.yaml", "--manifest", "m.yaml"),
            "--cluster replaces the cluster of a run without SCENARIO",
        ),
    ],
    ids=["nothing-to-run", "missing-manifest", "cluster-with-scenario"],
)
def test_bad_run_arguments_exit_2(args: tuple[str, ...], message: str) -> None:
    result = run(*args)

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}")
    assert result.stderr.count("\n") == 1


def test_bad_deployment_exit_2(tmp_path: Path) -> None:
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec: {replicas: -1, selector: {matchLabels: {a: b}}, template: {}}\n",
        encoding="utf-8",
    )

    result = run("--manifest", manifest, "-o", tmp_path / "out", "-q")

    assert result.exit_code == 2
    assert result.stderr == (
        "error: default cluster: Deployment default/web: spec.replicas: expected an integer "
        "of 0 or more (got -1)\n"
    )
