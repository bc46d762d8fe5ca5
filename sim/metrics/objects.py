"""Every version of every API object of a run, so that the cluster can be read back later.

Users read a real cluster with `kubectl get`. To give them the same view of a
simulated one, `ObjectRecorder` receives every committed API write (through
the world's write hooks) and keeps the object as written. At the end of the
run `ObjectRecorder.table()` turns them into the `objects` table, written as
`objects.parquet`, one row per object version:

| column | meaning |
| --- | --- |
| `time_s` | simulated time of the write, seconds |
| `resource_version` | the write's resourceVersion (global, so it orders the rows) |
| `verb` | request verb: create, update, patch, delete, deletecollection |
| `subresource` | "status", "binding" or "" |
| `kind`, `namespace`, `name` | the object ("" namespace for cluster-scoped kinds) |
| `event_type` | the watch event the write produced: ADDED, MODIFIED or DELETED |
| `object` | the object after the write, as compact JSON in its Kubernetes wire form |

How much is kept is the scenario setting `record_objects`:

* `all`: every version;
* `none`: nothing (no table);
* `auto` (the default): every version while the run has created at most
  `AUTO_MAX_PODS` pods. Once it creates more, the recorder drops the history
  and keeps only the last version of each object that still exists, so that
  large runs cost little memory.

`ObjectHistory` reads the table back and returns the objects as they stood
at any time of the run (`dra-sim get --at`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sim.api.codec import to_dict
from sim.api.server import DELETED, WriteRecord
from sim.api.types import TopLevelObject
from sim.cluster.world import World
from sim.result_files import read_json, read_table

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

OBJECT_COLUMNS = (
    "time_s",
    "resource_version",
    "verb",
    "subresource",
    "kind",
    "namespace",
    "name",
    "event_type",
    "object",
)

AUTO_MAX_PODS = 5000
"""Pods a run may create before `record_objects: auto` keeps only the final state."""

RecordObjects = Literal["auto", "all", "none"]
Recorded = Literal["all", "final", "none"]
"""Contents of a run's objects table: every version, the final state only, or nothing."""

_Key = tuple[str, str, str]  # (kind, namespace, name)


@dataclass(frozen=True, slots=True)
class _Version:
    time_s: float
    record: WriteRecord


class ObjectRecorder:
    """Write hook that keeps the object versions of a run (see the module docstring).

    Attach it before the first object is created, so that the setup writes
    at time 0 are recorded too. Objects are immutable, so the recorder keeps
    references during the run and converts them to JSON only in `table()`.
    """

    def __init__(
        self, world: World, mode: RecordObjects = "auto", *, auto_max_pods: int = AUTO_MAX_PODS
    ) -> None:
        self.world = world
        self.mode: RecordObjects = mode
        self.auto_max_pods = auto_max_pods
        self.recorded: Recorded = "none" if mode == "none" else "all"
        self.pods_created = 0
        self._history: list[_Version] = []
        self._last: dict[_Key, _Version] = {}

    def attach(self) -> None:
        """Start receiving the world's API writes (does nothing for mode `none`)."""
        if self.mode != "none":
            self.world.add_write_hook(self._on_write)

    def _on_write(self, record: WriteRecord) -> None:
        version = _Version(self.world.now, record)
        if record.kind == "Pod" and record.verb == "create" and record.subresource == "":
            self.pods_created += 1
            if self.mode == "auto" and self.pods_created == self.auto_max_pods + 1:
                self._keep_final_state_only()
        if self.recorded == "all":
            self._history.append(version)
            return
        key = (record.kind, record.namespace, record.name)
        if record.event_type == DELETED:
            self._last.pop(key, None)
        else:
            self._last[key] = version

    def _keep_final_state_only(self) -> None:
        logger.info(
            "more than %d pods created: objects.parquet keeps the final state only "
            "(set record_objects: all to keep every version)",
            self.auto_max_pods,
        )
        for version in self._history:
            record = version.record
            key = (record.kind, record.namespace, record.name)
            if record.event_type == DELETED:
                self._last.pop(key, None)
            else:
                self._last[key] = version
        self._history = []
        self.recorded = "final"

    def versions(self) -> list[tuple[float, WriteRecord]]:
        """Return the kept versions as (time, write) in commit order."""
        kept = self._history if self.recorded == "all" else list(self._last.values())
        ordered = sorted(kept, key=lambda version: version.record.resource_version)
        return [(version.time_s, version.record) for version in ordered]

    def table(self) -> pd.DataFrame | None:
        """Return the objects table (columns `OBJECT_COLUMNS`), or None for mode `none`."""
        import pandas as pd

        if self.recorded == "none":
            return None
        rows = [
            (
                time_s,
                record.resource_version,
                record.verb,
                record.subresource,
                record.kind,
                record.namespace,
                record.name,
                record.event_type,
                object_json(record.object),
            )
            for time_s, record in self.versions()
        ]
        table = pd.DataFrame.from_records(rows, columns=list(OBJECT_COLUMNS))
        return table.astype({"time_s": "float64", "resource_version": "int64"})


class ObjectHistoryError(ValueError):
    """A results directory or a time that the recorded objects do not cover."""


class ObjectHistory:
    """The objects of a finished run, read back from its objects table.

    Args:
        table: The objects table (columns `OBJECT_COLUMNS`).
        recorded: What the table holds, as the run's manifest states it.
        end_time_s: Simulated time at which the run stopped.
    """

    def __init__(self, table: pd.DataFrame, recorded: Recorded, end_time_s: float) -> None:
        self.table = table.sort_values("resource_version", kind="stable")
        self.recorded = recorded
        self.end_time_s = end_time_s

    @classmethod
    def read(cls, directory: str | Path) -> ObjectHistory:
        """Read `objects.parquet` and `manifest.json` of a results directory.

        Raises:
            ObjectHistoryError: the directory or its `manifest.json` is missing,
                or the run recorded no objects.
            ResultsDirectoryError: `manifest.json` or `objects.parquet` is
                damaged or unreadable.
        """
        base = Path(directory)
        if not base.is_dir():
            raise ObjectHistoryError(f"{base}: results directory not found")
        manifest_path = base / "manifest.json"
        if not manifest_path.is_file():
            raise ObjectHistoryError(
                f"{base}: not a results directory (missing manifest.json); "
                "write one with `dra-sim run SCENARIO -o DIR`"
            )
        manifest = read_json(manifest_path)
        path = base / "objects.parquet"
        if not path.is_file():
            raise ObjectHistoryError(
                f"{base}: the run recorded no objects (record_objects: none); run it again "
                "with --set record_objects=all"
            )
        recorded = manifest.get("objects_recorded", "all")
        end_time_s = float(manifest.get("sim_time_s", 0.0))
        return cls(read_table(path), recorded, end_time_s)

    def kinds(self) -> dict[str, bool]:
        """Return every kind in the table and whether it is namespaced."""
        scopes: dict[str, bool] = {}
        for kind, namespace in zip(self.table["kind"], self.table["namespace"], strict=True):
            scopes[kind] = scopes.get(kind, False) or namespace != ""
        return scopes

    def objects_at(self, time_s: float | None = None) -> Iterator[dict[str, Any]]:
        """Yield every object that existed at `time_s` (default: the end), in its last version.

        Objects come in (kind, namespace, name) order.

        Raises:
            ObjectHistoryError: `time_s` is outside the run, or before its end
                while only the final state was recorded.
        """
        if time_s is None:
            time_s = self.end_time_s
        if time_s < 0 or time_s > self.end_time_s:
            raise ObjectHistoryError(
                f"--at {time_s:g}: the run covers 0 to {self.end_time_s:g} simulated seconds"
            )
        if self.recorded == "final" and time_s < self.end_time_s:
            raise ObjectHistoryError(
                f"--at {time_s:g}: this run kept only the final state of its objects because "
                f"it created more than {AUTO_MAX_PODS} pods; run it again with "
                "--set record_objects=all to read earlier states"
            )
        rows = self.table[self.table["time_s"] <= time_s]
        latest = rows.drop_duplicates(["kind", "namespace", "name"], keep="last")
        latest = latest[latest["event_type"] != DELETED]
        latest = latest.sort_values(["kind", "namespace", "name"], kind="stable")
        for text in latest["object"]:
            yield json.loads(text)


def object_json(obj: TopLevelObject) -> str:
    """Return an object as the compact JSON stored in the `object` column."""
    return json.dumps(to_dict(obj), separators=(",", ":"), ensure_ascii=False)
