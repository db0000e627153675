#!/usr/bin/env bash
# Side-by-side throughput in the lab: the kernel's own nftables DNAT load balancing
# (numgen inc mod 3), or l4lb run (DNAT) over AF_PACKET or AF_XDP, in the lab's LB
# namespace, driven by the same generator (`l4lb gen --interface`).
#
#   lab/bench-nft.sh [--duration SECS] [--rate PPS] [--flows N] [--size BYTES]
#                    [--balancer nft|l4lb|l4lb-xdp]
#
# `--balancer l4lb` runs `l4lb run` (DNAT, driver af_packet) in the LB namespace,
# `l4lb-xdp` the same with driver af_xdp (a binary built with `--features af_xdp`);
# the binary is $L4LB or target/release/l4lb (lab/lab.sh picks it). lab/bench-live.sh
# runs all three, several times, and prints medians.
#
# 1. brings the lab up in dnat mode with the chosen balancer (lab/lab.sh);
# 2. writes a capture of established-flow TCP frames of N flows (sources in
#    172.16.0.0/12) to the IPv4 VIP, addressed to the router's MAC
#    (`l4lb gen --established-only --zipf 0`), and sends it in a loop from the
#    client at the given rate (default: as fast as the generator goes);
# 3. counts what reaches the backends (an nftables counter that drops the test
#    traffic before conntrack, in each backend), and prints sent, delivered, drops.
#
# Leaves the lab up (lab/lab.sh down removes it). See docs/LAB.md.
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LAB_DIR/.." && pwd)"
RUN_DIR="$LAB_DIR/run"
DURATION=5
RATE=""
FLOWS=1000
SIZE=60
BALANCER=nft

while (($#)); do
    case $1 in
        --duration) DURATION=${2:?}; shift ;;
        --rate) RATE=${2:?}; shift ;;
        --flows) FLOWS=${2:?}; shift ;;
        --size) SIZE=${2:?}; shift ;;
        --balancer) BALANCER=${2:?}; shift ;;
        *) echo "usage: $0 [--duration SECS] [--rate PPS] [--flows N] [--size BYTES] [--balancer nft|l4lb|l4lb-xdp]" >&2; exit 2 ;;
    esac
    shift
done

log() { printf 'bench: %s\n' "$*"; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

GEN=${L4LB:-$REPO_DIR/target/release/l4lb}
if [[ ! -x $GEN ]] || ! "$GEN" sink --help >/dev/null 2>&1; then
    log "building l4lb (cargo build --release -p controlplane --features af_xdp)"
    (cd "$REPO_DIR" && cargo build --release -q -p controlplane --features af_xdp)
fi
export L4LB=$GEN

case $BALANCER in
    nft) "$LAB_DIR/lab.sh" up dnat --balancer nft >/dev/null ;;
    l4lb) "$LAB_DIR/lab.sh" up dnat --balancer l4lb --driver af_packet >/dev/null ;;
    l4lb-xdp) "$LAB_DIR/lab.sh" up dnat --balancer l4lb --driver af_xdp >/dev/null ;;
    *) echo "bench: unknown balancer $BALANCER" >&2; exit 2 ;;
esac
log "lab up (dnat, balancer $BALANCER)"
client_mac=$(nsx l4lb-client cat /sys/class/net/eth0/address)
router_mac=$(nsx l4lb-router cat /sys/class/net/to-client/address)
pcap="$RUN_DIR/bench-$FLOWS-$SIZE.pcap"
"$GEN" gen --config "$RUN_DIR/l4lb.toml" --vip web4 --output "$pcap" --src-mac "$client_mac" --dst-mac "$router_mac" \
    --flows "$FLOWS" --packets $((FLOWS * 10)) --established-only --zipf 0 --size "$SIZE" >/dev/null

# Count and drop the test traffic at each backend, before conntrack (priority raw):
# backends do not answer it, so only the forward path is measured.
for b in be1 be2 be3; do
    nsx "l4lb-$b" nft -f - <<'EOF'
table ip l4lb_bench {
    counter delivered { }
    chain pre {
        type filter hook prerouting priority raw; policy accept;
        ip saddr 172.16.0.0/12 ip saddr != 172.16.0.0/24 tcp dport 80 counter name delivered drop
    }
}
EOF
done

# Warm up: every flow once (the new-flow path: conntrack entries, l4lb flow table),
# then reset the counters so the run measures established flows.
"$GEN" gen --interface eth0 --input "$pcap" --rate 50000 >/dev/null 2>&1 </dev/null || true
sleep 0.3
for b in be1 be2 be3; do nsx "l4lb-$b" nft reset counter ip l4lb_bench delivered >/dev/null; done
lb_before=$(nsx l4lb-lb cat /sys/class/net/eth0/statistics/rx_packets)

rate_args=()
[[ -n $RATE ]] && rate_args=(--rate "$RATE")
log "transmitting for ${DURATION}s from l4lb-client (${RATE:-max} pps, $FLOWS flows, ${SIZE}-byte frames)"
out=$(nsx l4lb-client "$GEN" gen --interface eth0 --input "$pcap" --loop --duration "${DURATION}s" "${rate_args[@]}")
echo "$out"
sleep 0.5

# "eth0: sent N packets (B bytes) in S s: P pps, M Mbit/s, dropped D"
sent=$(sed -n 's/.*sent \([0-9]*\) packets.*/\1/p' <<<"$out")
elapsed=$(sed -n 's/.* in \([0-9.]*\) s:.*/\1/p' <<<"$out")
gen_pps=$(sed -n 's/.* s: \([0-9]*\) pps.*/\1/p' <<<"$out")
gen_drop=$(sed -n 's/.*dropped \([0-9]*\).*/\1/p' <<<"$out")
delivered=0
per_be=""
for b in be1 be2 be3; do
    n=$(nsx "l4lb-$b" nft list counter ip l4lb_bench delivered | sed -n 's/.*packets \([0-9]*\).*/\1/p')
    per_be+=" $b=$n"
    delivered=$((delivered + n))
done
lb_rx=$(( $(nsx l4lb-lb cat /sys/class/net/eth0/statistics/rx_packets) - lb_before ))
lost=$((sent - delivered))
awk -v s="$sent" -v d="$delivered" -v e="$elapsed" -v g="$gen_pps" -v gd="$gen_drop" -v l="$lost" \
    -v lb="$lb_rx" -v per="$per_be" -v bal="$BALANCER" 'BEGIN {
    printf "RESULT balancer=%s sent=%d gen_pps=%.0f gen_dropped=%d lb_rx=%d delivered=%d delivered_pps=%.0f lost=%d (%.2f%%) per_backend:%s\n",
        bal, s, g, gd, lb, d, d / e, l, (s > 0 ? 100 * l / s : 0), per
}'
