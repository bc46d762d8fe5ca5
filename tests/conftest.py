"""Shared fixtures: the location of the real-world input corpus.

The corpus (real DRA manifests, OpenAPI schemas, traces) lives next to the
repository, in `../shared/corpus` relative to the repository root, and tests
read it in place. CI always has it, so a missing corpus fails the tests that
need it instead of skipping them.

Command-line tests start `python -m sim.cli` in subprocesses. This module
puts the repository root first on their PYTHONPATH so they run this
checkout's code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
CORPUS_DIR = REPOSITORY_ROOT.parent / "shared" / "corpus"

# Subprocesses that run `python -m sim.cli` from a temporary directory would
# otherwise import whichever `sim` is installed, which may be another checkout.
os.environ["PYTHONPATH"] = os.pathsep.join(
    part for part in (str(REPOSITORY_ROOT), os.environ.get("PYTHONPATH", "")) if part
)


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """Return the corpus folder, failing the test when it is missing."""
    if not CORPUS_DIR.is_dir():
        pytest.fail(
            f"the input corpus was not found at {CORPUS_DIR}; tests that read real "
            "manifests need it next to the repository (../shared/corpus)",
            pytrace=False,
        )
    return CORPUS_DIR
