"""The `dra-sim explain` command: the story of one pod or claim, write by write."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class ObjectKind(StrEnum):
    """Kinds of object whose story `explain` prints."""

    POD = "pod"
    CLAIM = "claim"


def register(app: typer.Typer) -> None:
    """Add the `explain` command to the application."""
    app.command(name="explain")(explain)


def explain(
    results: Annotated[Path, typer.Argument(help="Results directory written by `dra-sim run`.")],
    kind: Annotated[ObjectKind, typer.Argument(help="pod or claim (a ResourceClaim).")],
    name: Annotated[str, typer.Argument(help="Name of the pod or claim.")],
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="Namespace of the object.")
    ] = "default",
    reads: Annotated[
        bool,
        typer.Option(
            "--reads", help="Also list GET requests (by default only the kubelet's claim reads)."
        ),
    ] = False,
) -> None:
    """Print what happened to a pod or claim, in simulated-time order, and why."""
    from sim.analysis import ResultsDirectoryError, read_results
    from sim.analysis.explain import ObjectNotFoundError, explain_claim, explain_pod
    from sim.cli import fail

    try:
        loaded = read_results(results)
        if kind is ObjectKind.POD:
            stories = explain_pod(loaded, name, namespace, include_reads=reads)
        else:
            stories = explain_claim(loaded, name, namespace, include_reads=reads)
    except (ResultsDirectoryError, ObjectNotFoundError) as error:
        fail(str(error))
    typer.echo("\n\n".join(story.format() for story in stories))
