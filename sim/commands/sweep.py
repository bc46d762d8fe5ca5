"""The `dra-sim sweep` command (not available yet)."""

import typer


def register(app: typer.Typer) -> None:
    """Add nothing: the command is not implemented yet."""
