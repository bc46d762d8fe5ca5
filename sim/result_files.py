"""Reading the files of a results directory, with one error type for a damaged file.

A results directory can be edited, truncated by a full disk or copied in
part. Every command that reads one (`report`, `explain`, `compare`, `get`)
reads its files through `read_table`, `read_json` and `read_yaml`, which
turn a parse or I/O error, or a table without one of its columns, into
`ResultsDirectoryError`. Its message names the file and tells the user to
run the scenario again, which recreates it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import pandas as pd


class ResultsDirectoryError(ValueError):
    """A results directory, or a file in it, that is missing, damaged, unreadable or read-only."""


def damaged_file_error(path: Path, error: BaseException) -> ResultsDirectoryError:
    """Return the error for a results file that exists but cannot be read or parsed."""
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    # pyarrow repeats the path ("... source '<path>': <reason>"), which the message already names.
    reason = reason.partition(f"'{path}': ")[2] or reason
    # Parser messages can span lines, and the command prints one line.
    reason = " ".join(reason.split())
    return ResultsDirectoryError(
        f"{path}: damaged or unreadable results file ({reason}); "
        "run the scenario again with `dra-sim run` to recreate the results directory"
    )


def read_table(path: str | Path, columns: Iterable[str] = ()) -> pd.DataFrame:
    """Read one Parquet table of a results directory.

    Args:
        path: the Parquet file.
        columns: the columns the table must have, for example those of a
            table written by an older or edited run.

    Raises:
        ResultsDirectoryError: the file cannot be read, is not a valid Parquet
            file, or lacks one of `columns`.
    """
    # Imported here so that commands which read no table start without pandas.
    import pandas as pd
    import pyarrow as pa

    file = Path(path)
    try:
        table = pd.read_parquet(file)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise damaged_file_error(file, error) from None
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise damaged_file_error(file, ValueError(f"missing columns: {', '.join(missing)}"))
    return table


def read_json(path: str | Path) -> dict[str, Any]:
    """Read one JSON object file of a results directory (`summary.json`, `manifest.json`).

    Raises:
        ResultsDirectoryError: the file cannot be read, is not valid JSON, or
            contains something other than an object.
    """
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise damaged_file_error(file, error) from None
    if not isinstance(data, dict):
        raise damaged_file_error(
            file, ValueError(f"expected a JSON object, got {type(data).__name__}")
        )
    return data


def read_yaml(path: str | Path) -> Any:
    """Read one YAML file of a results directory (`scenario.resolved.yaml`).

    Raises:
        ResultsDirectoryError: the file cannot be read or is not valid YAML.
    """
    file = Path(path)
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise damaged_file_error(file, error) from None
