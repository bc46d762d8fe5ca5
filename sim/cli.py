"""The `dra-sim` command line.

Every error a user can cause (a bad scenario, a missing file, a bad option)
prints one line naming the file, the field, the value and what is allowed, and
exits with code 2 without a traceback and without leaving a results directory.
Ctrl-C during `run` prints one line and exits with code 130; the results
directory is only created, by an atomic rename, once it is complete.
"""

from __future__ import annotations

import logging
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

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

# Named explicitly: under `python -m sim.cli` the module is `__main__`.
logger = logging.getLogger("sim.cli")

USAGE_ERROR = 2
RUN_FAILED = 1
INTERRUPTED = 130
"""Exit code after Ctrl-C: 128 + SIGINT, as shells report it."""


VERBOSE_HELP = "Log more: -v for run phases, -vv for every event."


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dra-sim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help=VERBOSE_HELP)] = 0,
) -> None:
    """Simulate Kubernetes scheduling with classic Dynamic Resource Allocation."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    set_verbosity(verbose)


def set_verbosity(verbose: int) -> None:
    """Set the root log level for a `-v` count: 1 is INFO, 2 or more is DEBUG.

    A count of 0 keeps the current level, so `dra-sim -v run` and
    `dra-sim run -v` both log at INFO.
    """
    if verbose == 1:
        logging.getLogger().setLevel(logging.INFO)
    elif verbose >= 2:
        logging.getLogger().setLevel(logging.DEBUG)


def fail(message: str) -> NoReturn:
    """Print a one-line error and exit with code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(USAGE_ERROR)


def fail_if_unwritable(path: Path, description: str, fix: str) -> None:
    """Exit with code 2 when no file or folder can be created at `path`.

    Args:
        path: the file or folder the command is about to create.
        description: what `path` is, for the message ("results directory").
        fix: what the user can do instead ("choose another --output").
    """
    from sim.results import unwritable_reason

    problem = unwritable_reason(path)
    if problem is not None:
        fail(f"{path}: cannot create the {description}: {problem}; {fix}")


def _load(scenario_path: Path, overrides: list[str], seed: str | None) -> Any:
    from sim.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(
            scenario_path, overrides=overrides, seed=_parse_seed(seed, str(scenario_path))
        )
    except ScenarioError as error:
        fail(str(error))


def _parse_seed(raw: str | None, source: str) -> int | None:
    """Return the `--seed` value as an integer.

    Raises:
        ScenarioError: the value is not a non-negative integer.
    """
    from sim.scenario import ScenarioError

    if raw is None:
        return None
    text = raw.strip()
    if not text.isdigit():
        raise ScenarioError(source, "--seed", "invalid seed; expected an integer >= 0", raw)
    return int(text)


def _default_output(name: str, seed: int) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("results") / name / f"{stamp}-seed{seed}"


def _format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{key}={_format_value(item)}" for key, item in value.items())
    return str(value)


def print_summary(summary: dict[str, Any]) -> None:
    """Print the summary metrics as an aligned table of name, value and unit."""
    from sim.analysis.summary import summary_unit

    rows = [(key, _format_value(value), summary_unit(key)) for key, value in summary.items()]
    key_width = max((len(key) for key, _, _ in rows), default=0)
    value_width = max((len(value) for _, value, _ in rows), default=0)
    for key, value, unit in rows:
        typer.echo(f"{key:<{key_width}}  {value:<{value_width}}  {unit}")


@app.command()
def run(
    scenario: Annotated[
        Path | None,
        typer.Argument(help="Scenario YAML file; optional with --manifest (default cluster)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Results directory (must not exist); default results/<name>/<time>-seed<N>/.",
        ),
    ] = None,
    seed: Annotated[
        str | None,
        typer.Option(
            "--seed", metavar="INTEGER", help="Seed (an integer >= 0); overrides the scenario's."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a scenario value: dotted.key=value (repeatable)."),
    ] = None,
    until: Annotated[
        float | None,
        typer.Option("--until", min=0.0, help="Stop at this simulated time, seconds."),
    ] = None,
    check_invariants: Annotated[
        bool,
        typer.Option("--check-invariants", help="Check cluster invariants after every API write."),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print no progress and no summary.")
    ] = False,
    manifest: Annotated[
        list[Path] | None,
        typer.Option(
            "--manifest",
            help="Kubernetes YAML file or folder to apply at time 0 (repeatable); "
            "without SCENARIO, runs on the default cluster.",
        ),
    ] = None,
    cluster: Annotated[
        Path | None,
        typer.Option(
            "--cluster",
            help="Scenario file whose cluster replaces the default one (with --manifest and "
            "no SCENARIO).",
        ),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help=VERBOSE_HELP)] = 0,
) -> None:
    """Run a scenario, or manifests on a cluster, and write the results directory."""
    set_verbosity(verbose)
    if until is not None and not math.isfinite(until):
        fail(f"--until: invalid time {until}; expected a finite number of seconds >= 0")
    source = _scenario_source(scenario, manifest or [], cluster)
    try:
        _run(source, output, seed, set_ or [], until, check_invariants, quiet, manifest or [])
    except KeyboardInterrupt:
        # Results.write removes its staging directory on any exception, so
        # nothing of the run is left on disk.
        typer.echo("interrupted; no results written", err=True)
        raise typer.Exit(INTERRUPTED) from None


def _count(number: int, noun: str) -> str:
    """Return `number noun`, with the noun in the plural unless the number is 1."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _scenario_source(scenario: Path | None, manifests: list[Path], cluster: Path | None) -> Path:
    """Return the scenario file of a run: SCENARIO, else --cluster, else the default cluster."""
    from sim.data import DEFAULT_CLUSTER

    if scenario is None and not manifests:
        fail(
            "missing SCENARIO; give a scenario file, or --manifest PATH to run manifests "
            "on the default cluster"
        )
    if scenario is not None and cluster is not None:
        fail(
            "--cluster replaces the cluster of a run without SCENARIO; drop it, or put the "
            "manifests into the scenario's manifests list"
        )
    if cluster is not None and not cluster.is_file():
        problem = "is a directory" if cluster.is_dir() else "file not found"
        fail(
            f"--cluster {cluster}: {problem}; give a scenario YAML file whose cluster "
            "replaces the default one"
        )
    return scenario or cluster or DEFAULT_CLUSTER


def _describe_source(scenario: Path) -> str:
    from sim.data import DEFAULT_CLUSTER

    return "default cluster" if scenario == DEFAULT_CLUSTER else str(scenario)


def _add_manifests(loaded: Any, manifests: list[Path]) -> Any:
    """Return the scenario with the --manifest paths (made absolute) after its own manifests."""
    paths = []
    for path in manifests:
        if not path.exists():
            fail(f"{path}: --manifest file or folder not found")
        paths.append(str(path.resolve()))
    return loaded.model_copy(update={"manifests": [*loaded.manifests, *paths]})


def _run(
    scenario: Path,
    output: Path | None,
    seed: str | None,
    overrides: list[str],
    until: float | None,
    check_invariants: bool,
    quiet: bool,
    manifests: list[Path] | None = None,
) -> None:
    from sim.results import simulate
    from sim.simulation import SetupError

    loaded = _add_manifests(_load(scenario, overrides, seed), manifests or [])
    target = output or _default_output(loaded.name, loaded.seed)
    if target.exists() and not target.is_dir():
        fail(f"{target}: a file with this name exists; choose another --output")
    if target.exists():
        fail(f"{target}: results directory already exists; choose another --output")
    fail_if_unwritable(target, "results directory", "choose another --output")
    horizon = until if until is not None else loaded.horizon_s
    logger.info(
        "simulating %s (seed %d, %d nodes, %d workloads) up to t=%gs",
        loaded.name,
        loaded.seed,
        loaded.node_count(),
        len(loaded.workloads),
        horizon,
    )

    progress_bar = None
    if not quiet:
        from tqdm import tqdm

        # The bar appears only for runs that last longer than `delay` seconds.
        progress_bar = tqdm(
            total=horizon,
            unit="sim s",
            delay=2.0,
            file=sys.stderr,
            dynamic_ncols=True,
            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} sim s [{elapsed}<{remaining}]",
        )

    def advance(now: float) -> None:
        if progress_bar is not None:
            progress_bar.update(now - progress_bar.n)

    try:
        results = simulate(
            loaded, until_s=until, check_invariants=check_invariants, progress=advance
        )
    except SetupError as error:
        fail(f"{_describe_source(scenario)}: {error}")
    finally:
        if progress_bar is not None:
            progress_bar.close()
    try:
        written = results.write(target)
    except OSError as error:
        typer.echo(f"error: {target}: cannot write the results: {error}", err=True)
        raise typer.Exit(RUN_FAILED) from None
    logger.info("wrote %s", written)
    if quiet:
        return
    try:
        print_summary(results.summary)
        typer.echo(f"results: {written}")
    except KeyboardInterrupt:
        # Too late for "no results written": the directory is complete.
        typer.echo(f"interrupted; results written to {written}", err=True)
        raise typer.Exit(INTERRUPTED) from None


@app.command()
def validate(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a scenario value: dotted.key=value (repeatable)."),
    ] = None,
) -> None:
    """Check a scenario (and the manifests it names) without running it."""
    from sim.simulation import SetupError, build

    loaded = _load(scenario, set_ or [], None)
    try:
        build(loaded)
    except SetupError as error:
        fail(f"{scenario}: {error}")
    typer.echo(
        f"{scenario}: valid ({_count(loaded.node_count(), 'node')}, "
        f"{_count(len(loaded.drivers), 'driver')}, {_count(len(loaded.workloads), 'workload')})"
    )


def _register_commands() -> None:
    from importlib import import_module

    from sim.commands import COMMAND_MODULES

    for name in COMMAND_MODULES:
        import_module(f"sim.commands.{name}").register(app)


_register_commands()


def main() -> None:
    """Run the `dra-sim` command; usage errors print one line and exit with code 2."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as error:
        # Usage errors (unknown option, bad option value, missing argument).
        if type(error).__name__ == "NoArgsIsHelpError":
            typer.echo(error.format_message(), err=True)
        else:
            typer.echo(f"error: {error.format_message()}", err=True)
        code = error.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        code = RUN_FAILED
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
