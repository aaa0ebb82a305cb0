#!/usr/bin/env bash
# iperf3 through snakeswan, through strongSwan kernel-libipsec and over the bare link (see throughput.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/throughput.py "$@"
