"""Shared fixtures: the location of the real-world input corpus.

The corpus (real DRA manifests, OpenAPI schemas, traces) lives next to the
repository, in `../shared/corpus` relative to the repository root, and tests
read it in place. CI always has it, so a missing corpus fails the tests that
need it instead of skipping them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CORPUS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


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
