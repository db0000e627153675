#!/usr/bin/env bash
# AF_PACKET rx -> tx forwarding rate, isolated from the lab's router path.
#
#   lab/bench-afpacket-fwd.sh [--duration SECS] [--rate PPS]
#
# Two namespaces joined by a veth: the generator (controlplane::live_gen over an
# AF_PACKET TX ring) sends 64-byte TCP frames of 1000 flows to a VIP; the minimal
# forwarder of the live_gen example receives them with rx_burst (in place), rewrites
# the destination to one of three backends, fixes the checksums and sends them back
# out with tx_burst, to a MAC nobody has (the generator's kernel drops them on
# arrival). Prints the generator's and the forwarder's reports: forwarded packets,
# losses, and the forwarder's busy time per packet (its capacity estimate).
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION=5
RATE=""
while (($#)); do
    case $1 in
        --duration) DURATION=${2:?}; shift ;;
        --rate) RATE=${2:?}; shift ;;
        *) echo "usage: $0 [--duration SECS] [--rate PPS]" >&2; exit 2 ;;
    esac
    shift
done
[[ $(id -u) == 0 ]] || { echo "bench: must run as root" >&2; exit 1; }
GEN=${LIVE_GEN:-$REPO_DIR/target/release/examples/live_gen}
if [[ ! -x $GEN ]]; then
    (cd "$REPO_DIR" && cargo build --release -q -p controlplane --example live_gen)
fi
NS_GEN=l4lb-fwdb-gen
NS_FWD=l4lb-fwdb-fwd
TMP=$(mktemp -d)
cleanup() {
    for ns in $NS_GEN $NS_FWD; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
cleanup
TMP=$(mktemp -d)
ip netns add $NS_GEN
ip netns add $NS_FWD
ip link add g0 netns $NS_GEN type veth peer name f0 netns $NS_FWD address 02:00:00:00:00:01
for pair in "$NS_GEN g0" "$NS_FWD f0"; do
    set -- $pair
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null
    ip -n "$1" link set "$2" up
done
gmac=$(ip netns exec $NS_GEN cat /sys/class/net/g0/address)
"$GEN" synth --output "$TMP/frames.pcap" --src-mac "$gmac" --dst-mac 02:00:00:00:00:01 \
    --src-base 172.16.0.100 --dst 198.51.100.10 --flows 1000 >/dev/null
ip netns exec $NS_FWD "$GEN" forward --interface f0 --vip 198.51.100.10 \
    --backends 10.1.0.11,10.1.0.12,10.1.0.13 --src-mac 02:00:00:00:00:01 --dst-mac 02:00:00:00:00:77 \
    --duration $((DURATION + 2)) >"$TMP/fwd.out" &
fwd=$!
sleep 0.5
rate_args=()
[[ -n $RATE ]] && rate_args=(--rate "$RATE")
ip netns exec $NS_GEN "$GEN" transmit --interface g0 --input "$TMP/frames.pcap" --loop --duration "$DURATION" \
    "${rate_args[@]}" | sed 's/^/generator: /'
wait $fwd
sed 's/^/forwarder: /' "$TMP/fwd.out"
