"""Shared fixtures of the sweep tests: a tiny scenario that runs in about 0.1 s.

The tiny scenario has one node pool `n` without devices and one workload `w`
whose pods arrive as a Poisson process of rate 0.2 per second until 20 s and
run for 1 s. So `pods_created` is Poisson-distributed with mean 4, a known
truth for the interval checks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

TINY_RATE_PER_S = 0.2
TINY_UNTIL_S = 20.0

TINY_SCENARIO = {
    "name": "tiny",
    "seed": 11,
    "replications": 3,
    "horizon_s": 40.0,
    "cluster": {"node_pools": [{"name": "n", "count": 1}]},
    "workloads": [
        {
            "name": "w",
            "arrival": {"type": "poisson", "rate_per_s": TINY_RATE_PER_S},
            "until_s": TINY_UNTIL_S,
            "run_duration_s": 1.0,
        }
    ],
}

CLI = [sys.executable, "-c", "import sys; from sim.cli import main; sys.exit(main())"]
"""Command prefix that runs `dra-sim` with this interpreter."""


def write_scenario(folder: Path, data: dict[str, object], name: str = "tiny.yaml") -> Path:
    """Write scenario data as YAML and return the file."""
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def tiny_scenario(tmp_path: Path) -> Path:
    """Return the path of the tiny scenario, written in the test's folder."""
    return write_scenario(tmp_path, TINY_SCENARIO)
