"""The files of a sweep directory and the layout of its runs table.

A sweep directory contains:

* `runs.parquet`: one row per run, rewritten atomically after every completed
  run. Rows are sorted by `point`, then `replication`. The columns, in order:
  * `point`, the design-point id;
  * one column per swept parameter, named by its dotted key;
  * `replication`, `seed`, `status` (`ok` or `failed`) and `error` ("" for ok
    runs). A swept `seed` is the parameter column, with no second `seed`;
  * every summary metric of `docs/metrics.md` as float64, in name order. A
    metric is NaN where the run's summary has null, and in failed runs;
  * `run_wall_time_s`, `started_unix_s` and `worker` (`host:pid`).
* `summary.csv`: per design point and metric, the mean, standard deviation and
  t-interval (see `sim.experiments.stats`).
* `scenario.resolved.yaml`: the base scenario (before the swept overrides)
  with every default written out.
* `sweep.json`: parameters, replications, executor, versions and run counts.
* `plots/`: PNG plots, written by `sim.experiments.plots.report_sweep`.

Only the columns in `WALL_CLOCK_COLUMNS` differ between two sweeps of the same
design; every other value is the same whatever the executor and worker count.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.experiments.design import DesignPoint, Parameter, format_value
from sim.experiments.worker import RunRecord

RUNS_FILE = "runs.parquet"
SUMMARY_FILE = "summary.csv"
SWEEP_FILE = "sweep.json"
SCENARIO_FILE = "scenario.resolved.yaml"
PLOTS_DIR = "plots"

RUN_COLUMNS = ("replication", "seed", "status", "error")
"""Columns between the parameters and the metrics."""
TIMING_COLUMNS = ("run_wall_time_s", "started_unix_s", "worker")
"""Columns after the metrics: when, where and how long each run ran."""
WALL_CLOCK_COLUMNS = (
    "wall_time_s",
    "sim_seconds_per_wall_second",
    "events_per_wall_second",
    *TIMING_COLUMNS,
)
"""Columns whose values depend on the machine and the moment, not on the design."""


def parameter_dtype(values: Sequence[Any]) -> str:
    """Return the column dtype for a parameter: bool, int64, float64 or str (text)."""
    if all(isinstance(value, bool) for value in values):
        return "bool"
    if all(isinstance(value, int) and not isinstance(value, bool) for value in values):
        return "int64"
    if all(isinstance(value, int | float) and not isinstance(value, bool) for value in values):
        return "float64"
    return "str"


def parameter_cell(value: Any, dtype: str) -> Any:
    """Return a parameter value as stored in its column (lists and mappings as YAML text)."""
    if dtype == "str" and not isinstance(value, str):
        return format_value(value)
    return value


def runs_frame(
    records: Iterable[RunRecord],
    parameters: Sequence[Parameter],
    points: Mapping[int, DesignPoint],
    seeds: Mapping[int, int],
) -> pd.DataFrame:
    """Build the runs table from run records, in the layout described in the module docstring.

    Args:
        records: One record per run, in any order.
        parameters: The swept parameters, in command-line order.
        points: Design points by id.
        seeds: Scenario seed of each design point, by id.
    """
    ordered = sorted(records, key=lambda record: (record.point, record.replication))
    metric_names = sorted({name for record in ordered for name in record.metrics})
    keys = [parameter.key for parameter in parameters]
    columns: dict[str, Any] = {"point": np.array([r.point for r in ordered], dtype="int64")}
    for parameter in parameters:
        dtype = parameter_dtype(parameter.values)
        cells = [parameter_cell(points[r.point].values[parameter.key], dtype) for r in ordered]
        columns[parameter.key] = pd.Series(cells, dtype=dtype)
    columns["replication"] = np.array([r.replication for r in ordered], dtype="int64")
    if "seed" not in keys:
        columns["seed"] = np.array([seeds[r.point] for r in ordered], dtype="int64")
    columns["status"] = pd.Series([r.status for r in ordered], dtype="str")
    columns["error"] = pd.Series([r.error for r in ordered], dtype="str")
    for name in metric_names:
        values = [record.metrics.get(name) for record in ordered]
        columns[name] = np.array(
            [np.nan if value is None else value for value in values], dtype="float64"
        )
    columns["run_wall_time_s"] = np.array([r.run_wall_time_s for r in ordered], dtype="float64")
    columns["started_unix_s"] = np.array([r.started_unix_s for r in ordered], dtype="float64")
    columns["worker"] = pd.Series([r.worker for r in ordered], dtype="str")
    return pd.DataFrame({name: _reset(column) for name, column in columns.items()})


def _reset(column: Any) -> Any:
    if isinstance(column, pd.Series):
        return column.reset_index(drop=True)
    return column


def parameter_columns(runs: pd.DataFrame) -> list[str]:
    """Return the parameter columns of a runs table: those between `point` and `replication`."""
    names = list(runs.columns)
    try:
        start = names.index("point") + 1
        end = names.index("replication")
    except ValueError:
        raise ValueError(
            "not a runs table: it needs the columns 'point' and 'replication' "
            f"(columns: {', '.join(names)})"
        ) from None
    return names[start:end]


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """Return the summary-metric columns of a runs table, in table order."""
    fixed = {"point", *parameter_columns(runs), *RUN_COLUMNS, *TIMING_COLUMNS}
    return [name for name in runs.columns if name not in fixed]


def records_from_frame(runs: pd.DataFrame) -> list[RunRecord]:
    """Turn the rows of a runs table back into run records (to resume a sweep)."""
    metrics = metric_columns(runs)
    records = []
    for row in runs.to_dict("records"):
        values: dict[str, float | None] = {}
        if row["status"] != "failed":
            for name in metrics:
                value = float(row[name])
                values[name] = None if np.isnan(value) else value
        records.append(
            RunRecord(
                point=int(row["point"]),
                replication=int(row["replication"]),
                status=str(row["status"]),
                error=str(row["error"]),
                metrics=values,
                run_wall_time_s=float(row["run_wall_time_s"]),
                started_unix_s=float(row["started_unix_s"]),
                worker=str(row["worker"]),
            )
        )
    return records


def read_runs(directory: str | Path) -> pd.DataFrame:
    """Read `runs.parquet` of a sweep directory.

    Raises:
        FileNotFoundError: the directory has no runs table.
    """
    path = Path(directory) / RUNS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no runs table; is {directory} a sweep directory?")
    return pd.read_parquet(path)


def read_sweep_info(directory: str | Path) -> dict[str, Any]:
    """Read `sweep.json` of a sweep directory.

    Raises:
        FileNotFoundError: the directory has no `sweep.json`.
    """
    path = Path(directory) / SWEEP_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; is {directory} a sweep directory?")
    info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return info


def is_sweep_directory(directory: str | Path) -> bool:
    """Return whether `directory` was written by a sweep (it contains `sweep.json`)."""
    return (Path(directory) / SWEEP_FILE).is_file()


def write_atomic(path: Path, content: bytes | str | pd.DataFrame) -> None:
    """Write a file so that readers see either the old or the new version, never a partial one.

    The content goes to a temporary file in the same folder, which is then
    renamed over `path` (`os.replace` is atomic on POSIX and Windows). A
    process killed mid-write leaves a `.<name>.<pid>.tmp` file behind, which
    `remove_stale_temporaries` deletes.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(content, pd.DataFrame):
            content.to_parquet(temporary, index=False)
        elif isinstance(content, str):
            temporary.write_text(content, encoding="utf-8")
        else:
            temporary.write_bytes(content)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def remove_stale_temporaries(directory: Path) -> None:
    """Delete temporary files that a killed sweep left in its directory."""
    for leftover in directory.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
