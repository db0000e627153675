#!/usr/bin/env bash
# The main job on a bundled example: generate 200,000 packets of synthetic client
# traffic (flows of equal popularity, so shares follow the weights; TCP handshakes, data, FIN/RST, IPv4 and IPv6)
# towards examples/gre.toml's VIPs, replay it through the data plane with two
# workers, and print what happened: per VIP and backend packets and share, drops,
# flows. Outputs land in ./demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-examples/gre.toml}
OUT=${OUT:-demo-out}
mkdir -p "$OUT"
cargo build --release -q -p controlplane
L4LB=target/release/l4lb
$L4LB check --config "$CONFIG"
$L4LB table --config "$CONFIG" | head -20
$L4LB gen --config "$CONFIG" --output "$OUT/traffic.pcap" --flows 20000 --packets 200000 --seed 42 --zipf 0
$L4LB replay --config "$CONFIG" --input "$OUT/traffic.pcap" --output "$OUT/out.pcap" \
    --host-output "$OUT/host.pcap" --workers 2 --stats-json "$OUT/stats.json"
echo "outputs: $OUT/out.pcap (sent), $OUT/host.pcap (to host), $OUT/stats.json (counters)"
