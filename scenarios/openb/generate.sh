#!/usr/bin/env bash
# Generate the openb replay scenarios from a local copy of the trace.
#
# Usage: scenarios/openb/generate.sh TRACE_CSV_DIR [OUTPUT_DIR]
#
# TRACE_CSV_DIR is the csv/ folder of cluster-trace-gpu-v2023 (GitHub
# alibaba/clusterdata). The trace is for research or study use only, so the
# generated scenarios stay out of the repository (OUTPUT_DIR defaults to
# scenarios/openb/generated/, which git does not track).
set -euo pipefail

trace=${1:?usage: $0 TRACE_CSV_DIR [OUTPUT_DIR]}
out=${2:-$(dirname "$0")/generated}
mkdir -p "$out"
nodes="$trace/openb_node_list_gpu_node.csv"
pods="$trace/openb_pod_list_default.csv"

# The whole trace in its own time (about 150 simulated days), driver-side FGD.
dra-sim import openb --nodes "$nodes" --pods "$pods" -o "$out/openb-default-driver-fgd.yaml"
# The same with the device-aware scheduler plugin placing pods.
dra-sim import openb --nodes "$nodes" --pods "$pods" --placement scheduler \
  -o "$out/openb-default-scheduler-fgd.yaml"
# A reduced replay (first 300 pods on the first 100 nodes, 20,000 times faster): a minute.
dra-sim import openb --nodes "$nodes" --pods "$pods" --max-pods 300 --max-nodes 100 \
  --time-scale 20000 -o "$out/openb-reduced-driver-fgd.yaml"
