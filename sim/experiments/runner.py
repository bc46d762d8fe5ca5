"""Running a sweep: design points times replications, on an executor, into a sweep directory.

`run_sweep` validates everything before it runs anything. A bad parameter
key or value, a bad option or an unreachable Dask scheduler raises
`SweepError`, and no directory is created. Then it writes `scenario.resolved.yaml`
and `sweep.json`, submits every run that is not done yet, and rewrites
`runs.parquet` atomically after each completed run. Killing the sweep
therefore loses only the runs that were executing. `resume=True` continues a
sweep directory: runs recorded with status `ok` are skipped, and failed runs
are run again.

Replication r of every design point uses the point's scenario seed and
replication index r, so all points see the same arrival and duration streams
(common random numbers) and their differences are not blurred by sampling
noise.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sim import __version__
from sim.experiments.design import (
    BaseScenario,
    DesignPoint,
    Parameter,
    SweepError,
    check_design,
    check_keys,
    check_unique_keys,
    design_points,
    parse_parameter,
    read_base,
    scenario_for,
)
from sim.experiments.executors import DEFAULT_CONNECT_TIMEOUT_S, make_executor
from sim.experiments.stats import DEFAULT_LEVEL, summarize_runs
from sim.experiments.store import (
    RUNS_FILE,
    SCENARIO_FILE,
    SUMMARY_FILE,
    SWEEP_FILE,
    is_sweep_directory,
    read_runs,
    read_sweep_info,
    records_from_frame,
    remove_stale_temporaries,
    runs_frame,
    write_atomic,
)
from sim.experiments.worker import STATUS_FAILED, STATUS_OK, RunRecord, RunTask
from sim.results import unwritable_reason
from sim.scenario import ScenarioError, resolved_data

logger = logging.getLogger(__name__)

SWEEP_FORMAT = 1
"""Version of the sweep directory layout, stored in `sweep.json`."""
LIBRARIES = (
    "simpy",
    "numpy",
    "pandas",
    "pyarrow",
    "pydantic",
    "scipy",
    "PyYAML",
    "joblib",
    "dask",
    "distributed",
)


@dataclass
class SweepOutcome:
    """The outcome of a sweep: its directory, its tables and the runs executed or skipped."""

    directory: Path
    runs: pd.DataFrame
    """The runs table, as written to `runs.parquet`."""
    summary: pd.DataFrame
    """The summary table, as written to `summary.csv`."""
    executed: int
    """Runs executed by this call."""
    skipped: int
    """Runs found done in the directory and not run again (resume)."""

    @property
    def failed(self) -> int:
        """Runs in the table whose status is `failed`."""
        return int((self.runs["status"] == STATUS_FAILED).sum())


@dataclass(frozen=True)
class _Design:
    parameters: list[Parameter]
    points: list[DesignPoint]
    seeds: dict[int, int]
    replications: int


def run_sweep(
    scenario: str | Path,
    parameters: Sequence[str | Parameter] = (),
    *,
    replications: int | None = None,
    jobs: int = 1,
    executor: str = "local",
    dask_address: str | None = None,
    output: str | Path | None = None,
    resume: bool = False,
    overrides: Sequence[str] = (),
    progress: bool = False,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> SweepOutcome:
    """Run every design point `replications` times and write the sweep directory.

    Args:
        scenario: Path of the scenario YAML file.
        parameters: Swept keys with values, as `dotted.key=v1,v2,...` or `Parameter`.
        replications: Runs per design point; default the scenario's `replications`.
        jobs: Worker processes (local pool, or the local Dask cluster).
        executor: `local` (joblib) or `dask`.
        dask_address: Address of a running Dask scheduler (executor `dask` only).
        output: Sweep directory; default `results/<scenario name>/<UTC time>-sweep`.
        resume: Continue the sweep in `output` instead of starting a new one.
        overrides: `dotted.key=value` overrides applied to the base scenario.
        progress: Show a progress bar with the estimated time left on stderr.
        connect_timeout_s: How long to wait for the Dask scheduler, seconds.

    Raises:
        SweepError: invalid input; nothing was run.
    """
    if resume and output is None:
        raise SweepError("--resume needs the directory of the sweep to continue: give -o DIR")
    base, design = _prepare(scenario, parameters, overrides, replications)
    base_scenario = scenario_for(base, [])
    directory = Path(output) if output is not None else _default_directory(base_scenario.name)
    parameter_data = [{"key": p.key, "values": list(p.values)} for p in design.parameters]
    records = _existing_records(directory, resume, parameter_data, base.digest())
    # A resumed sweep rewrites files in its existing directory, a new one creates it.
    new_path, description = (
        (directory / RUNS_FILE, "runs table") if resume else (directory, "directory")
    )
    problem = unwritable_reason(new_path)
    if problem is not None:
        raise SweepError(
            f"{new_path}: cannot create the sweep {description}: {problem}; choose another -o"
        )
    done = {
        (record.point, record.replication)
        for record in records.values()
        if record.status == STATUS_OK
    }
    tasks = [
        RunTask(point.point, replication, base, point.overrides())
        for point in design.points
        for replication in range(design.replications)
        if (point.point, replication) not in done
    ]
    total = len(design.points) * design.replications

    with make_executor(executor, jobs, dask_address, connect_timeout_s) as pool:
        directory.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(directory)
        resolved = yaml.safe_dump(resolved_data(base_scenario), sort_keys=False)
        write_atomic(directory / SCENARIO_FILE, resolved)
        info = {
            "format": SWEEP_FORMAT,
            "scenario": str(scenario),
            "scenario_name": base_scenario.name,
            "set": list(overrides),
            "seed": base_scenario.seed,
            "base_sha256": base.digest(),
            "parameters": parameter_data,
            "design_points": len(design.points),
            "replications": design.replications,
            **pool.describe(),
            "versions": _versions(),
            "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "status": "running",
        }
        write_atomic(directory / SWEEP_FILE, json.dumps(info, indent=2) + "\n")
        logger.info(
            "sweep of %d design points x %d replications into %s: %d runs to do, %d done",
            len(design.points),
            design.replications,
            directory,
            len(tasks),
            len(done),
        )

        bar = _progress_bar(total, total - len(tasks)) if progress else None
        try:
            for record in pool.run(tasks):
                records[(record.point, record.replication)] = record
                frame = runs_frame(
                    records.values(), design.parameters, _by_id(design), design.seeds
                )
                write_atomic(directory / RUNS_FILE, frame)
                if record.status == STATUS_FAILED:
                    logger.warning(
                        "design point %d replication %d failed: %s",
                        record.point,
                        record.replication,
                        record.error,
                    )
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()

    runs = runs_frame(records.values(), design.parameters, _by_id(design), design.seeds)
    write_atomic(directory / RUNS_FILE, runs)
    summary = summarize_runs(runs, DEFAULT_LEVEL)
    write_atomic(directory / SUMMARY_FILE, summary.to_csv(index=False))
    failed = int((runs["status"] == STATUS_FAILED).sum())
    info.update(
        finished_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        status="failed runs" if failed else "complete",
        runs_total=total,
        runs_ok=int((runs["status"] == STATUS_OK).sum()),
        runs_failed=failed,
    )
    write_atomic(directory / SWEEP_FILE, json.dumps(info, indent=2) + "\n")
    logger.info("sweep finished: %d runs, %d failed, in %s", len(runs), failed, directory)
    return SweepOutcome(
        directory=directory,
        runs=runs,
        summary=summary,
        executed=len(tasks),
        skipped=len(done),
    )


def _prepare(
    scenario: str | Path,
    parameters: Sequence[str | Parameter],
    overrides: Sequence[str],
    replications: int | None,
) -> tuple[BaseScenario, _Design]:
    """Read the base scenario and validate the parameters and every design point."""
    try:
        base = read_base(scenario, overrides)
        base_scenario = scenario_for(base, [])
    except ScenarioError as error:
        raise SweepError(str(error)) from None
    parsed = [parse_parameter(p) if isinstance(p, str) else p for p in parameters]
    check_unique_keys(parsed)
    check_keys(base, parsed)
    points = design_points(parsed)
    scenarios = check_design(base, points)
    count = base_scenario.replications if replications is None else replications
    if count < 1:
        raise SweepError(f"--replications {count}: must be at least 1")
    seeds = {point.point: built.seed for point, built in zip(points, scenarios, strict=True)}
    return base, _Design(parameters=parsed, points=points, seeds=seeds, replications=count)


def _by_id(design: _Design) -> dict[int, DesignPoint]:
    return {point.point: point for point in design.points}


def _existing_records(
    directory: Path, resume: bool, parameters: list[dict[str, Any]], digest: str
) -> dict[tuple[int, int], RunRecord]:
    """Return the runs already recorded in `directory` (resume), checking it is the same sweep."""
    if not resume:
        if directory.exists():
            raise SweepError(
                f"{directory}: the output directory already exists; "
                "use --resume to continue that sweep or choose another -o"
            )
        return {}
    if not is_sweep_directory(directory):
        raise SweepError(f"{directory}: --resume needs a sweep directory (with {SWEEP_FILE})")
    info = read_sweep_info(directory)
    if json.loads(json.dumps(parameters)) != info.get("parameters"):
        recorded = (
            ", ".join(f"{p['key']}={p['values']}" for p in info.get("parameters", [])) or "none"
        )
        raise SweepError(
            f"{directory}: the sweep was started with other parameters ({recorded}); "
            "resume it with the same --param options"
        )
    if info.get("base_sha256") != digest:
        raise SweepError(
            f"{directory}: the sweep was started from another scenario or other --set "
            f"options ({info.get('scenario')}, set {info.get('set')}); resume it with the same ones"
        )
    if not (directory / RUNS_FILE).is_file():
        return {}
    records = records_from_frame(read_runs(directory))
    return {(record.point, record.replication): record for record in records}


def _default_directory(name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("results") / name / f"{stamp}-sweep"


def _versions() -> dict[str, str]:
    versions = {"dra_sim": __version__, "python": platform.python_version()}
    for library in LIBRARIES:
        try:
            versions[library] = metadata.version(library)
        except metadata.PackageNotFoundError:
            versions[library] = "not installed"
    return versions


def _progress_bar(total: int, initial: int) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="run",
        desc="sweep",
        file=sys.stderr,
        dynamic_ncols=True,
    )
