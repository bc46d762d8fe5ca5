"""One run of a sweep, as executed by a worker process.

`run_task` is the only function executors send to workers. It takes and
returns plain data (a `RunTask` of dicts and strings, a `RunRecord` of numbers
and strings), so the same call works in a joblib worker, a Dask worker on
another machine, or the calling process. A run that raises is returned as a
failed record with its error text instead of raising, so one bad run never
stops a sweep.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sim.experiments.design import BaseScenario, scenario_for

logger = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_FAILED = "failed"
MAX_ERROR_CHARS = 4000
"""Longer error texts are cut, so that a runaway message cannot bloat runs.parquet."""


@dataclass(frozen=True)
class RunTask:
    """The input of one run: a design point's overrides, a replication index and the base data."""

    point: int
    replication: int
    base: BaseScenario
    overrides: Sequence[str]


@dataclass
class RunRecord:
    """The outcome of one run, as plain data."""

    point: int
    replication: int
    status: str
    error: str
    metrics: dict[str, float | None] = field(default_factory=dict)
    run_wall_time_s: float = 0.0
    """Wall-clock time of the whole task: building the scenario, running it, summarizing."""
    started_unix_s: float = 0.0
    """Wall-clock start of the task, seconds since the Unix epoch."""
    worker: str = ""
    """`host:pid` of the process that ran the task."""


def run_task(task: RunTask) -> RunRecord:
    """Build the task's scenario, run replication `task.replication` and summarize it.

    The seed is the design point's scenario seed and the replication index is
    `task.replication`, so replication r of every design point draws from the
    same random streams (common random numbers).

    Returns:
        A record with status `ok` and the summary metrics, or status `failed`
        and the error text when building or running the simulation raised.
    """
    from sim.results import simulate

    started_unix = time.time()
    started = time.perf_counter()
    record = RunRecord(
        point=task.point,
        replication=task.replication,
        status=STATUS_OK,
        error="",
        started_unix_s=started_unix,
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )
    try:
        scenario = scenario_for(task.base, task.overrides)
        results = simulate(scenario, replication=task.replication)
        record.metrics = {key: _metric(value) for key, value in results.summary.items()}
    except Exception as error:
        # Any error of one run, including a broken invariant, is that run's
        # outcome: it is recorded and the sweep goes on. The sweep logs the
        # failure as a warning, so the worker logs only the traceback, at DEBUG.
        logger.debug(
            "run of design point %d replication %d failed",
            task.point,
            task.replication,
            exc_info=error,
        )
        record.status = STATUS_FAILED
        record.error = _error_text(error)
    record.run_wall_time_s = time.perf_counter() - started
    return record


def _metric(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)


def _error_text(error: Exception) -> str:
    """Return `Type: message (at file:line)`, naming the innermost frame that raised."""
    text = f"{type(error).__name__}: {error}"
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {os.path.basename(last.filename)}:{last.lineno})"
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 3] + "..."
    return text
