"""Analysis of results directories for people: plots, an HTML report, stories and comparisons.

Everything here reads only the files of a results directory (through
`sim.results.Results`), never a live simulation:

* `sim.analysis.plots`: matplotlib figures (latency CDFs, pods over time,
  device use, attempts and writes, deallocations and conflicts, timelines);
* `sim.analysis.report`: the self-contained `report.html` of a run;
* `sim.analysis.explain`: the story of one pod or claim, write by write;
* `sim.analysis.compare`: the summary metrics of two runs side by side;
* `sim.analysis.derived`, `sim.analysis.devices` and `sim.analysis.summary`:
  the derived tables, device use over time and summary formatting that all
  of them share.
"""

from __future__ import annotations

from pathlib import Path

from sim.result_files import ResultsDirectoryError
from sim.results import Results

__all__ = ["REQUIRED_FILES", "ResultsDirectoryError", "read_results"]

REQUIRED_FILES = ("scenario.resolved.yaml", "summary.json", "manifest.json")
"""Files without which a folder is not a results directory."""


def read_results(directory: str | Path) -> Results:
    """Read a results directory, raising an error that names what is missing.

    Raises:
        ResultsDirectoryError: the path does not exist, is not a folder,
            lacks one of `REQUIRED_FILES`, or contains a damaged file.
    """
    base = Path(directory)
    if not base.exists():
        raise ResultsDirectoryError(f"{base}: results directory not found")
    if not base.is_dir():
        raise ResultsDirectoryError(f"{base}: not a directory; give a results directory")
    missing = [name for name in REQUIRED_FILES if not (base / name).is_file()]
    if missing:
        raise ResultsDirectoryError(
            f"{base}: not a results directory (missing {', '.join(missing)}); "
            "write one with `dra-sim run SCENARIO -o DIR`"
        )
    return Results.read(base)
