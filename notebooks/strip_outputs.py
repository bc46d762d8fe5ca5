"""Remove outputs, execution counts and run timings from Jupyter notebooks.

Notebooks are committed without outputs, so diffs show only what a person
wrote and the tests run every notebook from a clean state. Two ways to strip:

* as a git filter, so that outputs never reach the index (`.gitattributes`
  applies the filter `strip-notebook-outputs` to `notebooks/*.ipynb`; each
  clone enables it once):

      git config filter.strip-notebook-outputs.clean "python notebooks/strip_outputs.py"

* by hand: `python notebooks/strip_outputs.py notebooks/*.ipynb`.

With no file arguments the script is a filter: it reads a notebook on
standard input and writes the stripped notebook to standard output. It uses
only the standard library and writes JSON the way nbformat does (indent 1,
sorted keys, a final newline), so a stripped notebook is byte-identical to
one saved by Jupyter without outputs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

CELL_METADATA_FROM_RUNS = ("execution", "collapsed", "scrolled")
"""Cell metadata keys that Jupyter or nbclient write when a notebook runs."""


def strip(notebook: dict[str, Any]) -> dict[str, Any]:
    """Return the notebook without outputs, execution counts and run metadata."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        metadata = cell.get("metadata", {})
        for key in CELL_METADATA_FROM_RUNS:
            metadata.pop(key, None)
    return notebook


def dumps(notebook: dict[str, Any]) -> str:
    """Serialize a notebook as nbformat does."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(arguments: list[str]) -> int:
    """Strip the named notebooks in place, or standard input to standard output."""
    if not arguments:
        sys.stdout.write(dumps(strip(json.load(sys.stdin))))
        return 0
    for name in arguments:
        path = Path(name)
        stripped = dumps(strip(json.loads(path.read_text(encoding="utf-8"))))
        if stripped != path.read_text(encoding="utf-8"):
            path.write_text(stripped, encoding="utf-8")
            print(f"stripped {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
