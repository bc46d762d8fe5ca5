"""Tests of the teaching notebooks: committed without outputs, and each one runs.

Each notebook's first code cell is tagged `parameters`. The tests replace it
with smaller values, so that every notebook runs in well under a minute on an
idle machine, and execute the notebook in a fresh kernel from the
`notebooks/` folder, as a reader would. The kernel's TMPDIR is the test's
tmp_path, so the notebooks' scratch folders are removed with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import CORPUS_DIR

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
STRIP_SCRIPT = NOTEBOOK_DIR / "strip_outputs.py"

SMALL_PARAMETERS = {
    "01-claim-lifecycle": "run_duration_s = 3.0\nallocate_latency_s = 0.05\nnodes = 2",
    "02-sharing-and-deallocation": "consumers = 36\nrun_duration_s = 10.0",
    "03-capacity-planning": (
        "node_counts = [3, 5]\nseeds = [1, 2]\npods = 30\ntarget_p95_s = 15.0"
    ),
    "04-driver-design": (
        "latencies_s = [0.05, 2.0]\n"
        'placements = ["pack", "spread"]\n'
        "seeds = [1]\n"
        "small_pods = 20\n"
        "large_pods = 4"
    ),
}

OPENB_CSV_DIR = CORPUS_DIR / "openb" / "csv"
SMALL_PARAMETERS["05-openb-fragmentation"] = (
    f"csv_dir = {str(OPENB_CSV_DIR)!r}\n"
    'policies = ["random", "fgd"]\n'
    "seeds = 2\n"
    "jobs = 1\n"
    "replay_pods = 40\n"
    "replay_nodes = 20"
)

CELL_TIMEOUT_S = 300


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_teaching_notebooks_exist() -> None:
    stems = {path.stem for path in notebook_paths()}

    assert set(SMALL_PARAMETERS) <= stems


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda path: path.stem)
def test_notebook_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)

    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {index} has outputs; run strip_outputs.py"
            assert cell.execution_count is None, f"cell {index} has an execution count"
        assert "execution" not in cell.metadata, f"cell {index} has run timings"


def test_strip_script_removes_outputs(tmp_path: Path) -> None:
    source = NOTEBOOK_DIR / "01-claim-lifecycle.ipynb"
    notebook = json.loads(source.read_text(encoding="utf-8"))
    code = next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hello\n"]}]
    code["execution_count"] = 7
    code["metadata"]["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00Z"}
    dirty = tmp_path / "dirty.ipynb"
    dirty.write_text(json.dumps(notebook), encoding="utf-8")

    filtered = subprocess.run(
        [sys.executable, str(STRIP_SCRIPT)],
        input=dirty.read_text(encoding="utf-8"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    subprocess.run([sys.executable, str(STRIP_SCRIPT), str(dirty)], check=True)

    assert filtered == source.read_text(encoding="utf-8")
    assert dirty.read_text(encoding="utf-8") == filtered


@pytest.mark.parametrize("stem", sorted(SMALL_PARAMETERS))
def test_notebook_runs(stem: str, tmp_path: Path) -> None:
    path = NOTEBOOK_DIR / f"{stem}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    (parameters,) = [
        cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])
    ]
    parameters.source = SMALL_PARAMETERS[stem]

    # The notebooks write scratch files under tempfile.mkdtemp(), which follows
    # TMPDIR, so pointing TMPDIR at tmp_path lets pytest remove them.
    NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    ).execute(env={**os.environ, "TMPDIR": str(tmp_path)})

    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    errors = [output for output in outputs if output.output_type == "error"]
    assert errors == []
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) >= 2, "every notebook draws at least two plots"
    if "dra-sim-notebook-" in path.read_text(encoding="utf-8"):
        assert list(tmp_path.glob("dra-sim-notebook-*")), "scratch folder not under tmp_path"
