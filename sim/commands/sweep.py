"""The `dra-sim sweep` command: many seeded runs over a grid of scenario parameters.

Exit codes:

* 0: every run succeeded.
* 1: at least one run failed, or the executor stopped on an error. A failed
  run's error is in `runs.parquet`, and the other runs completed.
* 2: invalid input, reported on one line before anything runs. Examples are an
  unknown `--param` key, a malformed value, an invalid option, executor or
  Dask address, and an output directory that exists without `--resume`.
"""

from __future__ import annotations

import logging
import math
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:
    from sim.experiments.stats import Target

SHOWN_FAILURES = 3
"""Failed runs whose error the command prints; the rest are only in runs.parquet."""


def register(app: typer.Typer) -> None:
    """Add the `sweep` command to `app`."""
    app.command(name="sweep")(sweep)


def sweep(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="Swept scenario value: dotted.key=v1,v2,... (repeatable; the design is the "
            "Cartesian product).",
        ),
    ] = None,
    replications: Annotated[
        int | None,
        typer.Option(
            "--replications", "-r", min=1, help="Runs per design point; default the scenario's."
        ),
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, help="Worker processes running at once.")
    ] = 1,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            help="local (joblib process pool) or dask; default dask when --dask-address is "
            "given, else local.",
        ),
    ] = None,
    dask_address: Annotated[
        str | None,
        typer.Option(
            "--dask-address",
            help="Dask scheduler to use, e.g. tcp://10.0.0.5:8786; without it, --executor dask "
            "starts a local cluster of --jobs workers on 127.0.0.1.",
        ),
    ] = None,
    dask_timeout: Annotated[
        float,
        typer.Option("--dask-timeout", min=0.001, help="Seconds to wait for the Dask scheduler."),
    ] = 30.0,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Sweep directory; default results/<name>/<time>-sweep/.",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the sweep in --output: skip runs recorded as ok, run the others.",
        ),
    ] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a base scenario value: dotted.key=value (repeatable)."
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="Print the smallest value of the first --param meeting METRIC<=VALUE "
            "(or <, >, >=), e.g. 'scheduling_latency_s_p95<=30'.",
        ),
    ] = None,
    target_by: Annotated[
        str,
        typer.Option(
            "--target-by",
            help="What must meet --target: 'bound' (the 95% confidence bound) or 'mean'.",
        ),
    ] = "bound",
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print no progress bar and no summary.")
    ] = False,
) -> None:
    """Run a grid of scenario parameters, N seeded replications each, and summarize them.

    Replication r of every design point uses the scenario seed and replication
    index r (common random numbers). Results go to DIR/runs.parquet (one row
    per run), DIR/summary.csv (mean, standard deviation and 95% t-interval per
    design point and metric), DIR/scenario.resolved.yaml and DIR/sweep.json.
    Exit code 1 means at least one run failed; 2 means invalid input.
    """
    from sim.cli import fail
    from sim.experiments.design import SweepError
    from sim.experiments.runner import run_sweep
    from sim.experiments.worker import STATUS_FAILED
    from sim.scenario import ScenarioError

    parameters = param or []
    overrides = set_ or []
    chosen_executor = executor or ("dask" if dask_address is not None else "local")
    checked_target = None
    if target is not None:
        checked_target = _check_target(scenario, parameters, overrides, target, target_by)
    if quiet and chosen_executor == "dask":
        _silence_dask_logs()

    try:
        outcome = run_sweep(
            scenario,
            parameters,
            replications=replications,
            jobs=jobs,
            executor=chosen_executor,
            dask_address=dask_address,
            output=output,
            resume=resume,
            overrides=overrides,
            progress=not quiet,
            connect_timeout_s=dask_timeout,
        )
    except (SweepError, ScenarioError) as error:
        fail(str(error))

    runs = outcome.runs
    failed = runs[runs["status"] == STATUS_FAILED]
    if not quiet:
        typer.echo(_run_counts(len(runs), outcome.executed, outcome.skipped, len(failed)))
        for _, row in failed.head(SHOWN_FAILURES).iterrows():
            typer.echo(
                f"failed: design point {row['point']} replication {row['replication']}: "
                f"{row['error']}",
                err=True,
            )
        typer.echo(f"results: {outcome.directory}")
    if checked_target is not None:
        parameter, goal = checked_target
        _print_target(
            outcome.directory, parameter, goal, "mean" if target_by == "mean" else "bound"
        )
    if len(failed):
        raise typer.Exit(1)


def _silence_dask_logs() -> None:
    """Keep Dask's INFO messages (scheduler, nanny and worker start and stop) off stderr.

    Importing `distributed` sets its loggers to the levels in its own
    configuration (INFO for `distributed`), so the level is set after the
    import. Warnings and errors still print.
    """
    try:
        import_module("distributed")
    except ImportError:
        # The executor reports the missing package with its own message.
        return
    logging.getLogger("distributed").setLevel(logging.WARNING)


def _run_counts(total: int, executed: int, reused: int, failed: int) -> str:
    """Format the closing line with the runs in the folder, how many were reused, and failures.

    Reused runs are those that `--resume` found finished in the sweep folder.
    """
    runs = f"{total} run{'' if total == 1 else 's'}"
    if reused == 0:
        return f"{runs} executed, {failed} failed"
    return f"{runs} ({executed} executed now, {reused} reused from earlier), {failed} failed"


def _check_target(
    scenario: Path, parameters: list[str], overrides: list[str], text: str, by: str
) -> tuple[str, Target]:
    """Validate --target before anything runs; return the parameter to minimize and the target."""
    from sim.cli import fail
    from sim.experiments.design import SweepError, parse_parameter, read_base, scenario_for
    from sim.experiments.stats import parse_target, summary_metric_names
    from sim.scenario import ScenarioError

    if by not in ("bound", "mean"):
        fail(f"--target-by {by!r}: use 'bound' or 'mean'")
    try:
        parsed = parse_target(text)
    except ValueError as error:
        fail(f"--target: {error}")
    if not parameters:
        fail("--target needs a --param: the target is met by the smallest value of the first one")
    try:
        first = parse_parameter(parameters[0])
        base = scenario_for(read_base(scenario, overrides), [])
    except (SweepError, ScenarioError) as error:
        fail(str(error))
    known = summary_metric_names(driver.name for driver in base.drivers)
    if parsed.metric not in known:
        fail(f"--target: unknown metric {parsed.metric!r} (metrics: {', '.join(known)})")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in first.values):
        fail(f"--target: the values of --param {first.key} must be numbers to find the smallest")
    return first.key, parsed


def _print_target(
    directory: Path, parameter: str, goal: Target, by: Literal["bound", "mean"]
) -> None:
    from sim.cli import fail
    from sim.experiments.stats import DEFAULT_LEVEL, smallest_meeting

    try:
        answers = smallest_meeting(directory, parameter, goal.metric, goal.op, goal.value, by=by)
    except ValueError as error:
        fail(f"--target: {error}")
    level = f"{DEFAULT_LEVEL:.0%}"
    if by == "mean":
        rule = "mean"
    elif goal.op in ("<", "<="):
        rule = f"upper bound of the {level} confidence interval"
    else:
        rule = f"lower bound of the {level} confidence interval"
    typer.echo(f"target: {goal} ({rule})")
    others = [name for name in answers.columns if name not in _ANSWER_COLUMNS and name != parameter]
    for _, row in answers.iterrows():
        where = ", ".join(f"{name}={row[name]}" for name in others)
        prefix = f"  {where}: " if where else "  "
        if not row["met"]:
            typer.echo(f"{prefix}no swept value of {parameter} meets the target")
            continue
        interval = (
            f"{level} CI {_number(row['ci_low'])} to {_number(row['ci_high'])}"
            if not math.isnan(row["ci_low"])
            else "no interval"
        )
        typer.echo(
            f"{prefix}smallest {parameter}: {row[parameter]} "
            f"(mean {_number(row['mean'])}, {interval}, n={row['n']})"
        )


_ANSWER_COLUMNS = ("met", "n", "mean", "ci_low", "ci_high")


def _number(value: float) -> str:
    return f"{value:.4g}"
