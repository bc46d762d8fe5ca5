"""`scenarios/openb/generate.sh`: where it writes, and that a rerun overwrites its output.

The script calls `dra-sim` from PATH. The tests put a `dra-sim` first on
PATH that runs this checkout's `python -m sim.cli`, and feed the script a
small trace: the first rows of the real node and pod lists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scenarios" / "openb" / "generate.sh"
GENERATED = [
    "openb-default-driver-fgd.yaml",
    "openb-default-scheduler-fgd.yaml",
    "openb-reduced-driver-fgd.yaml",
]


@pytest.fixture
def small_trace(corpus_dir: Path, tmp_path: Path) -> Path:
    """Return a trace folder with the first 40 nodes and the first 60 pods of openb."""
    source = corpus_dir / "openb" / "csv"
    trace = tmp_path / "trace"
    trace.mkdir()
    for name, rows in (("openb_node_list_gpu_node.csv", 40), ("openb_pod_list_default.csv", 60)):
        lines = (source / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (trace / name).write_text("".join(lines[: rows + 1]), encoding="utf-8")
    return trace


def run_script(*args: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "dra-sim"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m sim.cli "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [str(SCRIPT), *(str(arg) for arg in args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_default_output_ignored_by_git() -> None:
    if shutil.which("git") is None:
        pytest.fail("git is needed to check .gitignore", pytrace=False)
    for name in GENERATED:
        path = ROOT / "scenarios" / "openb" / "generated" / name
        result = subprocess.run(
            ["git", "check-ignore", "--no-index", "--quiet", str(path)],
            cwd=ROOT,
            check=False,
        )
        assert result.returncode == 0, f"{path} is not ignored by git"


def test_rerun_overwrites_same_files(small_trace: Path, tmp_path: Path) -> None:
    output = tmp_path / "generated"

    first = run_script(small_trace, output, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    before = {path.name: path.read_text(encoding="utf-8") for path in output.iterdir()}
    second = run_script(small_trace, output, tmp_path=tmp_path)

    assert second.returncode == 0, second.stderr
    after = {path.name: path.read_text(encoding="utf-8") for path in output.iterdir()}
    assert sorted(after) == GENERATED
    assert after == before
