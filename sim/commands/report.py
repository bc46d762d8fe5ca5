"""The `dra-sim report` command: plots and a self-contained HTML page of one run."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the `report` command to the application."""
    app.command(name="report")(report)


def report(
    results: Annotated[Path, typer.Argument(help="Results directory written by `dra-sim run`.")],
    open_: Annotated[
        bool, typer.Option("--open", help="Open the report in the default web browser.")
    ] = False,
    timeline_pods: Annotated[
        int,
        typer.Option(
            "--timeline-pods", min=1, help="Pods in the timeline; larger runs show a sample."
        ),
    ] = 25,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed of the timeline's sample of pods.")
    ] = 0,
) -> None:
    """Write RESULTS/plots/*.png and RESULTS/report.html (images embedded, no network needed)."""
    from sim.analysis import ResultsDirectoryError
    from sim.analysis.report import write_report
    from sim.cli import fail

    try:
        page = write_report(results, timeline_pods=timeline_pods, seed=seed)
    except ResultsDirectoryError as error:
        fail(str(error))
    typer.echo(f"report: {page}")
    if open_:
        webbrowser.open(page.resolve().as_uri())
