#!/usr/bin/env bash
# Generate the openb replay scenarios from a local copy of the trace.
#
# Usage: scenarios/openb/generate.sh TRACE_CSV_DIR [OUTPUT_DIR]
#
# TRACE_CSV_DIR is the csv/ folder of cluster-trace-gpu-v2023 (GitHub
# alibaba/clusterdata). The trace is for research or study use only, so the
# generated scenarios stay out of the repository (OUTPUT_DIR defaults to
# scenarios/openb/generated/, which .gitignore excludes).
#
# A rerun overwrites the three scenarios. They are written to a temporary
# folder first and moved into OUTPUT_DIR only when all three succeed, so a
# failed run leaves the previous files as they were.
set -euo pipefail

trace=${1:?usage: $0 TRACE_CSV_DIR [OUTPUT_DIR]}
out=${2:-$(dirname "$0")/generated}
mkdir -p "$out"
nodes="$trace/openb_node_list_gpu_node.csv"
pods="$trace/openb_pod_list_default.csv"
staging=$(mktemp -d "$out/.generate.XXXXXX")
trap 'rm -rf "$staging"' EXIT

# The whole trace in its own time (about 150 simulated days), driver-side FGD.
dra-sim import openb --nodes "$nodes" --pods "$pods" -o "$staging/openb-default-driver-fgd.yaml"
# The same with the device-aware scheduler plugin placing pods.
dra-sim import openb --nodes "$nodes" --pods "$pods" --placement scheduler \
  -o "$staging/openb-default-scheduler-fgd.yaml"
# A reduced replay (first 300 pods on the first 100 nodes, 20,000 times faster): a minute.
dra-sim import openb --nodes "$nodes" --pods "$pods" --max-pods 300 --max-nodes 100 \
  --time-scale 20000 -o "$staging/openb-reduced-driver-fgd.yaml"

mv -f "$staging"/*.yaml "$out"/
