"""The HTML report of one results directory.

`write_report(directory)` draws every plot of `sim.analysis.plots.PLOTS`,
writes each as `plots/<name>.png` and writes `report.html`. The page shows
the run's facts, the summary metrics and every plot, embedded as a base64
`data:` URI, so it needs no other file and no network. Each file is written
to a temporary name and renamed into place, so an interrupted report never
leaves a half-written file.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from sim import __version__
from sim.analysis import ResultsDirectoryError, derived, devices, plots, read_results
from sim.analysis.summary import format_metric, ordered_summary_keys, summary_unit
from sim.results import Results, unwritable_reason

REPORT_NAME = "report.html"
PLOTS_DIR = "plots"

UTILIZATION_TOLERANCE = 0.01
"""Relative gap between reconstructed and tabled mean device use above which the report warns."""

CAPTIONS: dict[str, str] = {
    "pods-over-time": (
        "Pods created but not yet bound (pending) and pods whose containers run. A pending "
        "curve that keeps rising means the cluster or the control plane cannot keep up with "
        "the arrivals."
    ),
    "latency-cdf-by-mode": (
        "Fraction of pods whose latency is at most x, per allocation mode of their claims. "
        "Scheduling latency runs from the pod's creation to its binding, startup latency "
        "to its first Running status. The dotted line marks the 95th percentile of all pods."
    ),
    "latency-cdf-by-workload": "The same latency CDFs, per workload.",
    "device-utilization": (
        "Devices held by allocated claims, per driver and node pool, against the pool's "
        "capacity. The dotted line is the time-weighted mean of the utilization table. A "
        "claim holds its devices from its allocation to its deallocation, so allocated "
        "claims waiting for their pods count as used."
    ),
    "attempts-and-writes": (
        "Left: how many scheduling attempts pods needed. Right: API writes per created pod, "
        "per component, counting writes on every kind of object (claims, "
        "PodSchedulingContexts, pods); failed writes are mostly 409 Conflicts that the "
        "component retries."
    ),
    "deallocations-and-conflicts": (
        "Deallocations (a claim's allocation cleared) and API requests rejected with 409 "
        "Conflict, per time bin. Conflicts come from components that wrote an object another "
        "component had changed since they read it."
    ),
    "timeline": (
        "The states of each pod and of its claims over time, from the events table; each "
        "tick on a pod's row is a scheduling attempt. `dra-sim explain RESULTS pod NAME` "
        "tells the story of one row in words."
    ),
}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border-bottom: 1px solid #ddd; padding: 0.25em 0.8em; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 2em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #444; max-width: 60em; }
.note { background: #fff7e0; border-left: 4px solid #f2c14e; padding: 0.5em 1em; }
footer { color: #777; margin-top: 3em; font-size: 0.9em; }
"""


def write_report(directory: str | Path, *, timeline_pods: int = 25, seed: int = 0) -> Path:
    """Write `plots/*.png` and `report.html` into a results directory; return the report path.

    Args:
        directory: a results directory written by `dra-sim run` or `Results.write`.
        timeline_pods: pods shown in the timeline; larger runs show a sample.
        seed: seed of the timeline's sample.

    Raises:
        ResultsDirectoryError: the directory cannot be read, or the report
            cannot be written into it.
    """
    base = Path(directory)
    results = read_results(base)
    # Checked before drawing, so a read-only results directory fails at once.
    for new_file in (base / REPORT_NAME, base / PLOTS_DIR / f"{plots.PLOTS[0][0]}.png"):
        problem = unwritable_reason(new_file)
        if problem is not None:
            raise ResultsDirectoryError(
                f"{new_file}: cannot write the report: {problem}; make {base} writable, "
                "or copy it and report on the copy"
            )
    figures = plots.draw_report_plots(results, timeline_pods=timeline_pods, seed=seed)
    images: dict[str, bytes] = {}
    for name, figure in figures.items():
        images[name] = plots.figure_png(figure)
        plots.write_atomically(base / PLOTS_DIR / f"{name}.png", images[name])
    page = render_html(results, images, notes(results, timeline_pods), source=base)
    return plots.write_atomically(base / REPORT_NAME, page.encode("utf-8"))


def notes(results: Results, timeline_pods: int) -> list[str]:
    """Return warnings about what the plots estimate or leave out for this run."""
    found = []
    for use in devices.device_use(results):
        tabled = use.table_mean_in_use
        estimated = use.mean_in_use
        if math.isnan(tabled) or tabled == 0:
            continue
        if abs(estimated - tabled) > UTILIZATION_TOLERANCE * tabled:
            found.append(
                f"Device use of {use.driver} in pool {use.pool or '(none)'} is reconstructed "
                f"from claim states with an estimated device count per claim: its mean, "
                f"{estimated:.3g} devices, differs from the utilization table's "
                f"{tabled:.3g}. The per-claim device counts are not in the results files."
            )
    pods = len(derived.table(results, "pods"))
    if pods > timeline_pods:
        found.append(f"The timeline shows a random sample of {timeline_pods} of {pods} pods.")
    modes = derived.pod_allocation_modes(results)
    unknown = int((modes == derived.UNKNOWN_MODE).sum()) if len(modes) else 0
    if unknown:
        found.append(
            f"{unknown} pod(s) have claims that could not be matched to the claims table "
            "(pods outside the scenario's workloads); their allocation mode is 'unknown'."
        )
    return found


def render_html(
    results: Results, images: dict[str, bytes], warnings: list[str], *, source: Path
) -> str:
    """Return the report page with the images embedded as base64 PNG data URIs."""
    scenario = results.scenario
    manifest = results.manifest
    title = f"dra-sim report: {scenario.name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if scenario.description:
        parts.append(f"<p>{html.escape(scenario.description)}</p>")
    parts.append(_facts_table(results))
    parts.extend(f'<p class="note">{html.escape(note)}</p>' for note in warnings)
    parts.append("<h2>Summary metrics</h2>")
    parts.append(_summary_table(results.summary))
    for name, heading in plots.PLOTS:
        if name not in images:
            continue
        encoded = base64.b64encode(images[name]).decode("ascii")
        parts.extend(
            [
                f'<figure id="{name}">',
                f"<h2>{html.escape(heading)}</h2>",
                f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(heading)}">',
                f"<figcaption>{html.escape(CAPTIONS.get(name, ''))}</figcaption>",
                "</figure>",
            ]
        )
    parts.extend(
        [
            f"<footer>Generated by dra-sim {html.escape(__version__)} from "
            f"{html.escape(str(source))} "
            f"(run by dra-sim {html.escape(str(manifest.get('dra_sim_version', '?')))}). "
            "Metrics are defined in docs/metrics.md.</footer>",
            "</body>",
            "</html>",
        ]
    )
    return "\n".join(parts) + "\n"


def _facts_table(results: Results) -> str:
    scenario = results.scenario
    manifest = results.manifest
    facts = [
        ("seed", str(manifest.get("seed", scenario.seed))),
        ("replication", str(manifest.get("replication", 0))),
        ("Kubernetes version", scenario.control_plane.kubernetes_version),
        ("nodes", str(scenario.node_count())),
        ("drivers", ", ".join(f"{d.name} ({d.model})" for d in scenario.drivers) or "none"),
        ("simulated time", f"{derived.end_time_s(results):.6g} s"),
        ("wall time", f"{float(manifest.get('wall_time_s', math.nan)):.3g} s"),
    ]
    rows = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
        for name, value in facts
    )
    return f'<table class="facts">{rows}</table>'


def _summary_table(summary: dict[str, object]) -> str:
    rows = ["<tr><th>metric</th><th>value</th><th>unit</th></tr>"]
    for key in ordered_summary_keys(summary):
        rows.append(
            f"<tr><td>{html.escape(key)}</td>"
            f'<td class="number">{html.escape(format_metric(summary[key]))}</td>'
            f"<td>{html.escape(summary_unit(key))}</td></tr>"
        )
    return f'<table class="summary">{"".join(rows)}</table>'
