"""Time paper mode and reproduce the FGD paper's allocation table on the openb trace.

Usage:
    python benchmarks/openb_paper.py TRACE_CSV_DIR [--seeds 10] [--jobs -1]
        [--tie-break node-order|random]

TRACE_CSV_DIR holds `openb_node_list_gpu_node.csv` and
`openb_pod_list_default.csv` (GitHub alibaba/clusterdata, folder
cluster-trace-gpu-v2023/csv; research or study use only). The script prints
the wall time of one FGD run (one process) and, per policy, the mean,
standard deviation and 95 % t interval of the GPU allocation ratio at 130 %
arrived GPU demand over the seeds, next to the published value.
`--tie-break` sets how equally scored nodes are chosen (see
`sim.experiments.openb_paper.TieBreak`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sim.experiments.openb_paper import (
    TIE_BREAKS,
    PaperSettings,
    run_paper,
    run_study,
    summarize,
)
from sim.workload.openb import read_nodes, read_pods


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", type=Path, help="folder with the openb CSV files")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per policy")
    parser.add_argument("--jobs", type=int, default=-1, help="processes (-1: all cores)")
    parser.add_argument(
        "--tie-break",
        choices=TIE_BREAKS,
        default="node-order",
        help=(
            "rule for picking among equally scored nodes "
            "(default: node-order, as in the authors' simulator)"
        ),
    )
    args = parser.parse_args()
    settings = PaperSettings(tie_break=args.tie_break)

    nodes = read_nodes(args.trace / "openb_node_list_gpu_node.csv")
    pods = read_pods(args.trace / "openb_pod_list_default.csv")

    started = time.perf_counter()
    single = run_paper(nodes, pods, "fgd", 0, settings)
    elapsed = time.perf_counter() - started
    print(
        f"one FGD run: {single.arrivals} arrivals on {len(nodes)} nodes, "
        f"{elapsed:.1f} s wall time (one process)"
    )

    runs = run_study(nodes, pods, seeds=range(args.seeds), settings=settings, jobs=args.jobs)
    table = summarize(runs)
    print(table.to_string(index=False, float_format=lambda value: f"{value:.2f}"))


if __name__ == "__main__":
    main()
