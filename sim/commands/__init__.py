"""Subcommands of `dra-sim` beyond `run` and `validate`, one module each.

Every module here defines `register(app)`, which adds its commands to the
typer application; `sim.cli` calls it for each module in `COMMAND_MODULES`.
"""

COMMAND_MODULES = ("get", "report", "explain", "compare", "sweep", "importer")
"""Modules of this package that add commands, in the order of `dra-sim --help`."""
