"""Files that ship with dra-sim.

`DEFAULT_CLUSTER` is the scenario that `dra-sim run --manifest PATH` uses
when no scenario is given: two GPU nodes with the drivers of the public
classic-DRA demos, no workload of its own, and a horizon of 120 s.
"""

from pathlib import Path

DEFAULT_CLUSTER = Path(__file__).resolve().parent / "default-cluster.yaml"
"""Path of the default cluster scenario."""
