"""The `dra-sim compare` command: two runs' metrics side by side and their latency CDFs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

PLOT_NAME = "latency-comparison.png"


def register(app: typer.Typer) -> None:
    """Add the `compare` command to the application."""
    app.command(name="compare")(compare)


def compare(
    results_a: Annotated[Path, typer.Argument(help="First results directory (a).")],
    results_b: Annotated[Path, typer.Argument(help="Second results directory (b).")],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help=f"Folder for the comparison plot ({PLOT_NAME}); created if needed.",
        ),
    ] = Path("."),
) -> None:
    """Print the summary metrics of two runs with b - a and b / a, and plot their latency CDFs."""
    from sim.analysis import ResultsDirectoryError, read_results
    from sim.analysis.compare import compare_summaries, format_comparison, run_labels
    from sim.analysis.plots import plot_latency_comparison, save_figure
    from sim.cli import fail, fail_if_unwritable

    try:
        first = read_results(results_a)
        second = read_results(results_b)
    except ResultsDirectoryError as error:
        fail(str(error))
    if output.exists() and not output.is_dir():
        fail(f"{output}: --output must be a folder, and this is a file")
    fail_if_unwritable(output / PLOT_NAME, "comparison plot", "choose another --output")
    label_a, label_b = run_labels(results_a, results_b)
    typer.echo(f"a = {label_a}\nb = {label_b}\n")
    typer.echo(format_comparison(compare_summaries(first, second), "a", "b"))
    figure = plot_latency_comparison({label_a: first, label_b: second})
    written = save_figure(figure, output / PLOT_NAME)
    typer.echo(f"\nplot: {written}")
