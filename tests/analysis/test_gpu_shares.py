"""GPU shares of the gpushare driver model in the utilization table, the summary and the plot.

Three pods take 100, 200 and 700 thousandths of the one GPU of the cluster,
one after another, so that the GPU is fully allocated from the third arrival
until the first pod finishes. Counted as whole devices, the three shares would
show three GPUs in use on a one-GPU node. Added as floats in arrival order
(0.1 + 0.2 + 0.7), they would show 1.0000000000000002.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim import Results
from sim.analysis.devices import claim_devices, device_use

DRIVER = "gpu.example.com"

SHARES_SCENARIO = f"""
name: gpu-shares
seed: 3
horizon_s: 100
cluster:
  node_pools:
    - name: t4
      count: 1
      cpu: "16"
      memory: 64Gi
      devices:
        {DRIVER}: {{count: 1, attributes: {{model: T4}}, name_prefix: gpu}}
drivers:
  - name: {DRIVER}
    model: gpushare
    model_settings: {{policy: best-fit}}
resource_classes:
  - name: gpu
    driver_name: {DRIVER}
workloads:
  - name: tenth
    arrival: {{type: times, at_s: [1]}}
    claims:
      - name: gpu
        template: {{resource_class: gpu, parameters: {{gpu_milli: 100}}}}
    run_duration_s: {{type: constant, value: 40}}
  - name: fifth
    arrival: {{type: times, at_s: [5]}}
    claims:
      - name: gpu
        template: {{resource_class: gpu, parameters: {{gpu_milli: 200}}}}
    run_duration_s: {{type: constant, value: 40}}
  - name: most
    arrival: {{type: times, at_s: [10]}}
    claims:
      - name: gpu
        template: {{resource_class: gpu, parameters: {{gpu_milli: 700}}}}
    run_duration_s: {{type: constant, value: 40}}
"""


@pytest.fixture(scope="module")
def shares_dir(run_scenario: Callable[..., Path]) -> Path:
    return run_scenario(SHARES_SCENARIO)


@pytest.fixture
def shares(shares_dir: Path) -> Results:
    return Results.read(shares_dir)


def device_rows(results: Results) -> pd.DataFrame:
    utilization = results.tables["utilization"]
    return utilization[utilization["resource"] == "devices"]


def test_every_pod_ran(shares: Results) -> None:
    pods = shares.tables["pods"]
    assert pods["final_phase"].tolist() == ["Succeeded"] * 3


def test_devices_in_use_never_exceed_capacity(shares: Results) -> None:
    rows = device_rows(shares)
    assert not rows.empty
    assert (rows["peak_in_use"] <= rows["capacity"]).all(), rows
    assert (rows["mean_in_use"] <= rows["capacity"]).all(), rows


def test_shares_count_by_their_fraction(shares: Results) -> None:
    (row,) = device_rows(shares).itertuples(index=False)
    assert (row.driver, row.pool, row.capacity) == (DRIVER, "t4", 1.0)
    # All three shares are held together: exactly one GPU, no rounding remainder.
    assert row.peak_in_use == 1.0
    assert 0 < row.mean_utilization < 1
    assert 0 < shares.summary[f"device_utilization_mean.{DRIVER}"] < 1


def test_plot_estimate_counts_shares_by_their_fraction(shares: Results) -> None:
    assert sorted(claim_devices(shares).values()) == [0.1, 0.2, 0.7]
    (use,) = device_use(shares)
    assert float(np.max(use.in_use)) == 1.0
    assert use.mean_in_use == pytest.approx(use.table_mean_in_use)
