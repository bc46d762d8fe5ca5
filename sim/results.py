"""Running a scenario end to end and writing its results directory.

`simulate(scenario)` builds the cluster, runs it and returns a `Results`
object with the output tables as pandas DataFrames and the summary metrics.
`Results.write(directory)` stores everything atomically: the files are written
into a temporary directory next to the target, which is renamed into place
only when complete, so an interrupted run never leaves half a results
directory behind.

A results directory holds:

* `scenario.resolved.yaml`: the scenario with every default written out;
* `manifest.json`: dra-sim, Python and library versions, seed, replication,
  wall time, simulated time, SimPy events processed, and the claim and class
  parameters that a driver rejected (`driver_parameter_errors`);
* `pods.parquet`, `claims.parquet`, `events.parquet`, `api_requests.parquet`,
  `cycles.parquet`, `utilization.parquet`: the tables of `docs/metrics.md`;
* `objects.parquet`: the API object versions that `dra-sim get` reads
  (`sim.metrics.objects`; absent with `record_objects: none`);
* `summary.json`: the summary metrics.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sim import __version__
from sim.metrics.tables import TABLE_SCHEMAS
from sim.result_files import ResultsDirectoryError, read_json, read_table, read_yaml
from sim.scenario import Scenario, ScenarioError, parse_scenario, resolved_data
from sim.simulation import Simulation, build

logger = logging.getLogger(__name__)

TABLE_NAMES = tuple(TABLE_SCHEMAS)
LIBRARIES = ("simpy", "numpy", "pandas", "pyarrow", "pydantic", "scipy", "PyYAML")


@dataclass
class Results:
    """The outcome of one run: tables, summary metrics and the run's manifest."""

    scenario: Scenario
    tables: dict[str, pd.DataFrame]
    summary: dict[str, Any]
    manifest: dict[str, Any]
    simulation: Simulation | None = field(default=None, repr=False)
    """The finished simulation, for inspecting objects at the end (None when read from disk)."""
    objects_table: pd.DataFrame | None = field(default=None, repr=False)
    """The objects table when read from disk; see `objects`."""

    @property
    def objects(self) -> pd.DataFrame | None:
        """Recorded object versions (`sim.metrics.objects`); None with `record_objects: none`.

        A finished simulation builds the table on first use, so runs whose
        results are never written or read (sweeps) do not pay for it.
        """
        recorder = self.simulation.object_recorder if self.simulation is not None else None
        if self.objects_table is None and recorder is not None:
            self.objects_table = recorder.table()
        return self.objects_table

    def __getattr__(self, name: str) -> pd.DataFrame:
        tables = self.__dict__.get("tables", {})
        if name in tables:
            table: pd.DataFrame = tables[name]
            return table
        raise AttributeError(name)

    def write(self, directory: str | Path) -> Path:
        """Write the results into `directory` (which must not exist yet), atomically.

        The files go into a hidden staging directory next to `directory`, which
        is renamed into place when complete and removed on any failure.

        Raises:
            FileExistsError: `directory` already exists.
            OSError: a file could not be written (nothing is left behind).
        """
        target = Path(directory)
        if target.exists():
            raise FileExistsError(f"results directory {target} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Not tempfile.mkdtemp: its mode 0700 would stay on the renamed directory,
        # while mkdir applies the user's umask like any other new directory.
        staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            self._write_files(staging)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def _write_files(self, directory: Path) -> None:
        resolved = yaml.safe_dump(resolved_data(self.scenario), sort_keys=False)
        (directory / "scenario.resolved.yaml").write_text(resolved, encoding="utf-8")
        (directory / "manifest.json").write_text(
            json.dumps(self.manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        (directory / "summary.json").write_text(
            json.dumps(self.summary, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        for name, table in self.tables.items():
            table.to_parquet(directory / f"{name}.parquet", index=False)
        objects = self.objects
        if objects is not None:
            objects.to_parquet(directory / "objects.parquet", index=False)

    @classmethod
    def read(cls, directory: str | Path) -> Results:
        """Read a results directory written by `write`.

        Raises:
            ResultsDirectoryError: a file is damaged or unreadable, or the
                resolved scenario no longer validates.
        """
        base = Path(directory)
        scenario_path = base / "scenario.resolved.yaml"
        try:
            scenario = parse_scenario(read_yaml(scenario_path), source=str(scenario_path))
        except ScenarioError as error:
            raise ResultsDirectoryError(
                f"{error}; run the scenario again with `dra-sim run` to recreate the results "
                "directory"
            ) from None
        tables = {
            name: read_table(base / f"{name}.parquet", TABLE_SCHEMAS[name])
            for name in TABLE_NAMES
            if (base / f"{name}.parquet").exists()
        }
        summary = read_json(base / "summary.json")
        manifest = read_json(base / "manifest.json")
        objects_path = base / "objects.parquet"
        objects = read_table(objects_path) if objects_path.exists() else None
        return cls(
            scenario=scenario,
            tables=tables,
            summary=summary,
            manifest=manifest,
            objects_table=objects,
        )


def unwritable_reason(path: str | Path) -> str | None:
    """Return why no file or folder can be created at `path`, or None when one can.

    Commands call it before they compute or print anything, so that an
    unusable output path fails at once and leaves nothing behind. The
    nearest existing parent of `path` must be a folder in which this process
    can create a folder. The check creates an empty folder there and removes it
    at once, because permission bits do not tell (root may write anywhere by
    them, but not into /proc). NOTE: a full disk or a quota still only shows
    when the results are written.
    """
    parent = Path(path).absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, not a folder"
    try:
        probe = tempfile.mkdtemp(prefix=".dra-sim-write-check-", dir=parent)
    except OSError as error:
        return f"cannot create folders in {parent}: {error.strerror or error}"
    os.rmdir(probe)
    return None


MAX_PARAMETER_ERRORS = 20
"""Distinct parameter errors kept in `manifest.json`."""


def driver_parameter_errors(simulation: Simulation) -> list[dict[str, Any]]:
    """Return the distinct rejected-parameters warnings of all drivers, oldest first.

    A driver that cannot parse a claim's or class's parameters records a
    Warning event and retries the claim with backoff, so its pods stay pending
    without any other sign. Each entry has the driver, the object the warning
    is about, the message and the first time, in seconds. The warnings are
    those the driver controller marks with `DriverWarning.parameter_error`.
    """
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name, controller in simulation.drivers.items():
        for warning in controller.warnings:
            if not warning.parameter_error or warning.message in seen:
                continue
            seen.add(warning.message)
            errors.append(
                {
                    "driver": name,
                    "object": warning.object,
                    "message": warning.message,
                    "time_s": warning.time_s,
                }
            )
    errors.sort(key=lambda error: float(error["time_s"]))
    return errors


def _library_versions() -> dict[str, str]:
    versions = {}
    for library in LIBRARIES:
        try:
            versions[library] = metadata.version(library)
        except metadata.PackageNotFoundError:
            versions[library] = "not installed"
    return versions


def simulate(
    scenario: Scenario,
    *,
    seed: int | None = None,
    replication: int = 0,
    until_s: float | None = None,
    check_invariants: bool = False,
    progress: Callable[[float], None] | None = None,
) -> Results:
    """Build and run a scenario; return its tables and summary.

    Args:
        scenario: the scenario (see `sim.load_scenario`).
        seed: overrides the scenario's seed.
        replication: replication index; replication r of any scenario uses
            the random streams `SeedSequence([seed, r, stream])`.
        until_s: stop at this simulated time instead of the horizon.
        check_invariants: check the cluster invariants after every API write.
        progress: called with the simulated time every few simulated seconds.
    """
    from sim.metrics.summary import summarize
    from sim.metrics.tables import build_tables

    effective_seed = scenario.seed if seed is None else seed
    if effective_seed != scenario.seed:
        scenario = scenario.model_copy(update={"seed": effective_seed})
    simulation = build(scenario, replication=replication, check_invariants=check_invariants)
    simulation.run(until_s, progress=progress)
    tables = build_tables(simulation.world.recorder, simulation.tracker, simulation.end_time_s)
    summary = summarize(
        tables,
        wall_time_s=simulation.wall_time_s,
        sim_time_s=simulation.end_time_s,
        events_processed=simulation.events_processed,
    )
    manifest = {
        "dra_sim_version": __version__,
        "python": platform.python_version(),
        "libraries": _library_versions(),
        "scenario": scenario.name,
        "seed": effective_seed,
        "replication": replication,
        "wall_time_s": simulation.wall_time_s,
        "sim_time_s": simulation.end_time_s,
        "events_processed": simulation.events_processed,
        "ignored_manifest_fields": simulation.ignored_manifest_fields,
    }
    if simulation.object_recorder is not None:
        manifest["objects_recorded"] = simulation.object_recorder.recorded
    parameter_errors = driver_parameter_errors(simulation)
    manifest["driver_parameter_errors"] = parameter_errors[:MAX_PARAMETER_ERRORS]
    if parameter_errors:
        first = parameter_errors[0]
        logger.warning(
            "a driver rejected claim or class parameters, so the pods that use them stay "
            "pending; first of %d distinct warnings (all in manifest.json "
            "driver_parameter_errors), at %g s, driver %s, %s: %s",
            len(parameter_errors),
            first["time_s"],
            first["driver"],
            first["object"],
            first["message"],
        )
    return Results(
        scenario=scenario, tables=tables, summary=summary, manifest=manifest, simulation=simulation
    )
