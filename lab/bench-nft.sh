#!/usr/bin/env bash
# Baseline for the side-by-side throughput comparison: the kernel's own nftables
# DNAT load balancing (numgen inc mod 3) in the lab's LB namespace, driven by the
# same AF_PACKET generator that will drive l4lb.
#
#   lab/bench-nft.sh [--duration SECS] [--rate PPS] [--flows N] [--size BYTES]
#                    [--balancer nft|afpacket|l4lb|l4lb-xdp]
#
# `--balancer l4lb` runs `l4lb run` (DNAT, driver af_packet) in the LB namespace,
# `l4lb-xdp` the same with driver af_xdp (a binary built with `--features af_xdp`);
# the binary is $L4LB or target/release/l4lb (lab/lab.sh picks it).
#
# `--balancer afpacket` replaces nftables by the minimal AF_PACKET forwarder of the
# live_gen example (rewrite the destination, send back out): what the AF_PACKET port
# itself costs on the same path (not l4lb's pipeline; that comparison comes with
# `l4lb run`). FWD_ARGS=--sleep-when-idle makes it sleep in poll(2) when idle instead
# of busy-polling.
#
# 1. brings the lab up in dnat mode with the nftables balancer (lab/lab.sh);
# 2. writes a capture of 64-byte TCP ACK frames of N flows from 172.16.0.100-199 to
#    the IPv4 VIP, addressed to the router's MAC, and sends it in a loop from the
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
        *) echo "usage: $0 [--duration SECS] [--rate PPS] [--flows N] [--size BYTES] [--balancer nft|afpacket|l4lb|l4lb-xdp]" >&2; exit 2 ;;
    esac
    shift
done

log() { printf 'bench: %s\n' "$*"; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

GEN=${LIVE_GEN:-$REPO_DIR/target/release/examples/live_gen}
if [[ ! -x $GEN || -n "${REBUILD:-}" ]]; then
    log "building the generator (cargo build --release -p controlplane --example live_gen)"
    (cd "$REPO_DIR" && cargo build --release -q -p controlplane --example live_gen)
fi

case $BALANCER in
    nft) "$LAB_DIR/lab.sh" up dnat --balancer nft >/dev/null ;;
    afpacket) "$LAB_DIR/lab.sh" up dnat --balancer none >/dev/null ;;
    l4lb) "$LAB_DIR/lab.sh" up dnat --balancer l4lb --driver af_packet >/dev/null ;;
    l4lb-xdp) "$LAB_DIR/lab.sh" up dnat --balancer l4lb --driver af_xdp >/dev/null ;;
    *) echo "bench: unknown balancer $BALANCER" >&2; exit 2 ;;
esac
log "lab up (dnat, balancer $BALANCER)"
fwd_pid=""
if [[ $BALANCER == afpacket ]]; then
    nsx l4lb-lb "$GEN" forward --interface eth0 --vip 198.51.100.10 --backends 10.1.0.11,10.1.0.12,10.1.0.13 \
        --src-mac 02:00:00:00:00:01 --dst-mac 02:00:00:00:00:fe --duration $((DURATION + 4)) ${FWD_ARGS:-} \
        >"$RUN_DIR/forward.out" 2>&1 &
    fwd_pid=$!
    sleep 0.5
fi

client_mac=$(nsx l4lb-client cat /sys/class/net/eth0/address)
router_mac=$(nsx l4lb-router cat /sys/class/net/to-client/address)
pcap="$RUN_DIR/bench-$FLOWS-$SIZE.pcap"
"$GEN" synth --output "$pcap" --src-mac "$client_mac" --dst-mac "$router_mac" \
    --src-base 172.16.0.100 --sources 100 --dst 198.51.100.10 --dport 80 --flows "$FLOWS" --size "$SIZE" >/dev/null

# Count and drop the test traffic at each backend, before conntrack (priority raw):
# backends do not answer it, so only the forward path is measured.
for b in be1 be2 be3; do
    nsx "l4lb-$b" nft -f - <<'EOF'
table ip l4lb_bench {
    counter delivered { }
    chain pre {
        type filter hook prerouting priority raw; policy accept;
        ip saddr 172.16.0.100-172.16.0.199 tcp dport 80 counter name delivered drop
    }
}
EOF
done

# Warm up: one packet per flow creates the conntrack entries (new-flow path), then
# reset the counters so the run measures established flows.
"$GEN" transmit --interface eth0 --input "$pcap" --count "$FLOWS" --rate 20000 >/dev/null 2>&1 \
    < /dev/null || true
sleep 0.3
for b in be1 be2 be3; do nsx "l4lb-$b" nft reset counter ip l4lb_bench delivered >/dev/null; done
lb_before=$(nsx l4lb-lb cat /sys/class/net/eth0/statistics/rx_packets)

rate_args=()
[[ -n $RATE ]] && rate_args=(--rate "$RATE")
log "transmitting for ${DURATION}s from l4lb-client (${RATE:-max} pps, $FLOWS flows, ${SIZE}-byte frames)"
out=$(nsx l4lb-client "$GEN" transmit --interface eth0 --input "$pcap" --loop --duration "$DURATION" "${rate_args[@]}")
echo "$out" | grep -v '^RESULT'
sleep 0.5

if [[ -n $fwd_pid ]]; then
    wait "$fwd_pid" || true
    grep -v '^RESULT' "$RUN_DIR/forward.out" | sed 's/^/forwarder: /'
fi
res=$(echo "$out" | grep '^RESULT')
val() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<" ${res#RESULT}"; }
sent=$(val sent); elapsed=$(val elapsed); gen_pps=$(val pps); gen_drop=$(val dropped)
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
