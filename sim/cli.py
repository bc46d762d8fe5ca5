"""The `dra-sim` command line."""

from __future__ import annotations

import typer

from sim import __version__

app = typer.Typer(
    name="dra-sim",
    help="Simulate Kubernetes scheduling with classic Dynamic Resource Allocation "
    "(resource.k8s.io/v1alpha2).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dra-sim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Simulate Kubernetes scheduling with classic Dynamic Resource Allocation."""


def main() -> None:
    """Run the `dra-sim` command."""
    app()
