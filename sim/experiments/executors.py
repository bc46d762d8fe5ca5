"""Executors that run a sweep's tasks in parallel and yield each record as it completes.

* `LocalExecutor`: a joblib process pool on this machine (loky backend). With
  one job the runs execute in the calling process, one after the other.
* `DaskExecutor`: a Dask distributed cluster. Given an address such as
  `tcp://10.0.0.5:8786` it connects to that scheduler. Without one, it starts
  a `LocalCluster` of worker processes on 127.0.0.1 and stops it afterwards.
  Every worker must have the same dra-sim installed, and the scenario's
  manifest files at the same absolute paths as on the submitting machine.

Both send plain `RunTask` data and call `sim.experiments.worker.run_task`,
which returns a failed record when the simulation raises an `Exception`. So
an exception that reaches the caller means that the executor itself broke (a
worker process died, the scheduler went away), not that a simulation failed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, Literal, Self

from sim.experiments.design import SweepError
from sim.experiments.worker import STATUS_FAILED, RunRecord, RunTask, run_task

logger = logging.getLogger(__name__)

ExecutorName = Literal["local", "dask"]
EXECUTOR_NAMES: tuple[ExecutorName, ...] = ("local", "dask")
DEFAULT_CONNECT_TIMEOUT_S = 30.0


class LocalExecutor:
    """Runs tasks in a joblib process pool (loky backend) with `jobs` workers."""

    name: ExecutorName = "local"

    def __init__(self, jobs: int) -> None:
        """Prepare a pool of `jobs` worker processes (1 = run in this process)."""
        if jobs < 1:
            raise SweepError(f"--jobs {jobs}: the number of workers must be at least 1")
        self.jobs = jobs

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        return None

    def run(self, tasks: Sequence[RunTask]) -> Iterator[RunRecord]:
        """Yield the record of each task in order of completion."""
        from joblib import Parallel, delayed

        if not tasks:
            return
        # batch_size=1 returns every run as soon as it finishes, so a killed
        # sweep loses only the runs that were executing.
        parallel = Parallel(
            n_jobs=self.jobs, backend="loky", return_as="generator_unordered", batch_size=1
        )
        yield from parallel(delayed(run_task)(task) for task in tasks)

    def describe(self) -> dict[str, Any]:
        """Return the executor settings recorded in `sweep.json`."""
        return {"executor": self.name, "backend": "loky", "jobs": self.jobs}


class DaskExecutor:
    """Runs tasks on a Dask distributed cluster: an existing one, or a local one it starts."""

    name: ExecutorName = "dask"

    def __init__(
        self,
        jobs: int,
        address: str | None = None,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    ) -> None:
        """Prepare the executor; nothing connects until the `with` block starts.

        Args:
            jobs: Worker processes of the local cluster started when `address`
                is None; ignored with an address (the cluster has its own).
            address: Scheduler address, e.g. `tcp://127.0.0.1:8786`.
            connect_timeout_s: How long to wait for the scheduler, seconds.
        """
        if jobs < 1:
            raise SweepError(f"--jobs {jobs}: the number of workers must be at least 1")
        if connect_timeout_s <= 0:
            raise SweepError(f"connect timeout {connect_timeout_s} s: must be positive")
        self.jobs = jobs
        self.address = address
        self.connect_timeout_s = connect_timeout_s
        self._cluster: Any = None
        self._client: Any = None

    def __enter__(self) -> Self:
        distributed = _dask_distributed()
        if self.address is None:
            self._cluster = distributed.LocalCluster(
                n_workers=self.jobs,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                # The scheduler always serves HTTP. A free port on the loopback
                # interface avoids clashing with another cluster on 8787.
                dashboard_address="127.0.0.1:0",
                silence_logs=logging.ERROR,
            )
            self._client = distributed.Client(self._cluster)
            logger.info("started a local Dask cluster at %s", self._cluster.scheduler_address)
            return self
        try:
            self._client = distributed.Client(self.address, timeout=f"{self.connect_timeout_s}s")
        except (OSError, ValueError, TypeError) as error:
            raise SweepError(
                f"--dask-address {self.address}: cannot connect to the Dask scheduler ({error}); "
                "give a running scheduler's address, e.g. tcp://127.0.0.1:8786"
            ) from None
        logger.info("connected to the Dask scheduler at %s", self.address)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def run(self, tasks: Sequence[RunTask]) -> Iterator[RunRecord]:
        """Yield the record of each task in order of completion.

        A task whose future raises (its worker died, or the scheduler gave up
        on it) is yielded as a failed record with the error.
        """
        distributed = _dask_distributed()
        if self._client is None:
            raise RuntimeError("DaskExecutor.run called outside its `with` block")
        if not tasks:
            return
        futures = self._client.map(run_task, list(tasks), pure=False)
        by_key = {future.key: task for future, task in zip(futures, tasks, strict=True)}
        for future in distributed.as_completed(futures):
            task = by_key[future.key]
            try:
                record: RunRecord = future.result()
            except Exception as error:
                # Raised by Dask for the task as a whole (for example KilledWorker),
                # since run_task itself returns failures as records.
                logger.warning(
                    "Dask could not run design point %d replication %d: %s",
                    task.point,
                    task.replication,
                    error,
                )
                record = RunRecord(
                    point=task.point,
                    replication=task.replication,
                    status=STATUS_FAILED,
                    error=f"{type(error).__name__}: {error}",
                )
            future.release()
            yield record

    def describe(self) -> dict[str, Any]:
        """Return the executor settings recorded in `sweep.json`."""
        workers = 0
        if self._client is not None:
            workers = len(self._client.nthreads())
        return {
            "executor": self.name,
            "address": self.address or "local cluster on 127.0.0.1",
            "workers": workers,
        }


def make_executor(
    name: str,
    jobs: int,
    address: str | None = None,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> LocalExecutor | DaskExecutor:
    """Return the executor called `name` (`local` or `dask`).

    Raises:
        SweepError: the name is unknown, or an address is given for the local executor.
    """
    if name == "local":
        if address is not None:
            raise SweepError(
                "--dask-address needs --executor dask (the local executor runs on this machine)"
            )
        return LocalExecutor(jobs)
    if name == "dask":
        return DaskExecutor(jobs, address, connect_timeout_s)
    raise SweepError(
        f"--executor {name!r}: unknown executor; use one of {', '.join(EXECUTOR_NAMES)}"
    )


def _dask_distributed() -> Any:
    """Import `dask.distributed`, typed as Any because its functions have no annotations."""
    from importlib import import_module

    return import_module("dask.distributed")
