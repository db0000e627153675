#!/usr/bin/env bash
# DPDK io-forwarding benchmark, side by side on the same vdevs and the same core:
#   1. dpdk-testpmd --forward-mode=io          (DPDK's own baseline)
#   2. dataplane/examples/dpdk_fwd             (the same loop through l4lb's Port trait)
# Both read a capture of established-flow 64-byte TCP packets from
# net_pcap(infinite_rx=1) and send to net_null(no-rx=1), one queue, one forwarding
# core. Prints one RESULT line per run and the ratio. Needs root (EAL) and DPDK
# (apt-get install dpdk libdpdk-dev pkg-config clang libclang-dev).
#
# Environment:
#   DURATION=10      measured seconds per run (after WARMUP)
#   WARMUP=2         seconds ignored at the start of each run
#   CORE=1           forwarding core (the main lcore is 0)
#   FLOWS=1024       flows in the generated capture
#   PACKETS=8192     packets in the generated capture
#   CAPTURE=         use this pcap instead of generating one
#   HUGE=auto        auto|1|0: 2 MB hugepages (set up here, undone at exit) or --no-huge
#   RUNS=1           repeat both runs this many times (alternating)
set -euo pipefail

DURATION=${DURATION:-10}
[ "$DURATION" -ge 3 ] || { echo "bench-dpdk: DURATION must be >= 3" >&2; exit 2; }
WARMUP=${WARMUP:-2}
CORE=${CORE:-1}
FLOWS=${FLOWS:-1024}
PACKETS=${PACKETS:-8192}
CAPTURE=${CAPTURE:-}
HUGE=${HUGE:-auto}
RUNS=${RUNS:-1}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/l4lb-bench-dpdk.XXXXXX)
HUGE_SET=0
OLD_NR=""
MOUNTED=0
MADE_DIR=0

cleanup() {
    rm -rf "$WORK" /var/run/dpdk/l4lb-bench-tp /var/run/dpdk/l4lb-bench-fwd
    rm -f /dev/hugepages/l4lb-bench-*
    if [ "$MOUNTED" = 1 ]; then umount /dev/hugepages || true; fi
    if [ "$MADE_DIR" = 1 ]; then rmdir /dev/hugepages || true; fi
    if [ "$HUGE_SET" = 1 ]; then echo "$OLD_NR" > /proc/sys/vm/nr_hugepages || true; fi
}
trap cleanup EXIT

die() { echo "bench-dpdk: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (DPDK EAL)"
command -v dpdk-testpmd >/dev/null || die "dpdk-testpmd not found (apt-get install dpdk)"
pkg-config --exists libdpdk || die "libdpdk not found (apt-get install libdpdk-dev pkg-config)"

# --- memory: hugepages if we can, else --no-huge -------------------------------
MEM=(--no-huge -m 1024)
if [ "$HUGE" != 0 ]; then
    OLD_NR=$(cat /proc/sys/vm/nr_hugepages)
    if [ "$OLD_NR" -lt 512 ]; then
        if echo 512 > /proc/sys/vm/nr_hugepages 2>/dev/null; then HUGE_SET=1; fi
    fi
    if ! grep -q " /dev/hugepages hugetlbfs " /proc/mounts; then
        if [ ! -d /dev/hugepages ]; then mkdir /dev/hugepages && MADE_DIR=1; fi
        if mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null; then MOUNTED=1; fi
    fi
    if [ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -ge 512 ] &&
        grep -q " /dev/hugepages hugetlbfs " /proc/mounts; then
        MEM=(-m 512 --huge-unlink)
    elif [ "$HUGE" = 1 ]; then
        die "could not set up 512 hugepages of 2 MB"
    fi
fi

# --- the capture: established TCP flows, 64-byte frames ---------------------------
if [ -z "$CAPTURE" ]; then
    CAPTURE="$WORK/flows.pcap"
    python3 - "$CAPTURE" "$FLOWS" "$PACKETS" <<'EOF'
import struct, sys
path, flows, packets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
with open(path, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    vip = bytes([10, 0, 0, 1])
    for i in range(packets):
        fl = (i * 7919) % flows
        src = bytes([172, 16, (fl >> 8) & 0xff, fl & 0xff])
        sport = 1024 + fl % 60000
        tcp = struct.pack("!HHIIBBHHH", sport, 80, 1000 + i, 1, 5 << 4, 0x10, 65535, 0, 0) + b"\0" * 6
        pseudo = src + vip + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xffff, 0x4000, 64, 6, 0, src, vip)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        eth = bytes([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]) + b"\x08\x00"
        frame = eth + ip + tcp
        frame += b"\0" * (60 - len(frame))  # 64 bytes on the wire with the FCS
        f.write(struct.pack("<IIII", i // 1000000, i % 1000000, len(frame), len(frame)) + frame)
EOF
fi

VDEVS=(--vdev="net_pcap0,rx_pcap=$CAPTURE,infinite_rx=1" --vdev=net_null0,no-rx=1)
echo "bench-dpdk: capture $CAPTURE ($(stat -c %s "$CAPTURE") bytes), memory: ${MEM[*]}, core $CORE, ${DURATION}s"

# --- our example, built once -------------------------------------------------------
(cd "$ROOT" && cargo build --release -q -p dataplane --features dpdk --example dpdk_fwd)
FWD="$ROOT/target/release/examples/dpdk_fwd"

HZ=$(getconf CLK_TCK)

# CPU ticks (user + system) of the thread of process $1 whose name matches $2.
thread_ticks() {
    local t
    for t in /proc/"$1"/task/*; do
        if grep -qxE "$2" "$t/comm" 2>/dev/null; then awk '{ print $14 + $15 }' "$t/stat"; return; fi
    done
    echo 0
}

# Share of one CPU the forwarding thread got during the measured window (the
# machine may be shared: a share well below 100% means the figure is low because
# the thread was preempted). Runs in the background beside the benchmark.
cpu_share() { # pid thread-regex -> prints the share in %
    local a b i
    # Wait until the thread polls (it has used CPU), then skip the warm-up.
    for i in $(seq 300); do
        [ "$(thread_ticks "$1" "$2")" -gt 0 ] && break
        sleep 0.1
    done
    sleep "$WARMUP"
    a=$(thread_ticks "$1" "$2")
    sleep $((DURATION - 1))
    b=$(thread_ticks "$1" "$2")
    awk -v a="$a" -v b="$b" -v hz="$HZ" -v d=$((DURATION - 1)) 'BEGIN { printf "%.0f", 100 * (b - a) / hz / d }'
}

run_testpmd() {
    local log="$WORK/testpmd.log"
    timeout -s INT $((WARMUP + DURATION + 3)) dpdk-testpmd -l "0,$CORE" --no-pci "${MEM[@]}" \
        --file-prefix=l4lb-bench-tp "${VDEVS[@]}" --log-level=lib.eal:warning -- \
        --forward-mode=io --nb-cores=1 --rxq=1 --txq=1 --burst=32 --stats-period=1 --no-lsc-interrupt \
        </dev/null >"$log" 2>&1 &
    local pid=$!
    local share
    local tp_pid="" i
    for i in $(seq 50); do
        tp_pid=$(pgrep -P "$pid" dpdk-testpmd) && break
        sleep 0.1
    done
    share=$(cpu_share "${tp_pid:-$pid}" '(rte|lcore)-worker-[0-9]+')
    wait "$pid" || true
    # Port 0 (net_pcap) Rx-pps, one sample a second; drop the warm-up samples and the last one.
    local mpps
    mpps=$(awk -v skip="$WARMUP" '
        /NIC statistics for port 0/ { p0 = 1; next }
        /NIC statistics for port/   { p0 = 0 }
        p0 && /Rx-pps:/ { n++; if (n > skip) { v[m++] = $2 } }
        END { if (m > 1) m--; s = 0; for (i = 0; i < m; i++) s += v[i]; if (m) printf "%.3f", s / m / 1e6; else print "nan" }
    ' "$log")
    echo "RESULT testpmd io mpps=$mpps cpu_share=${share}%"
    [ "$mpps" != nan ] || { tail -20 "$log" >&2; die "no testpmd figures"; }
}

run_fwd() {
    local log="$WORK/fwd.log"
    # infinite_rx keeps the whole capture in mbufs of the RX pool: size the pool for it.
    local mbufs=$(( PACKETS + 4096 > 8191 ? PACKETS + 4096 : 8191 ))
    "$FWD" --rx net_pcap0 --tx net_null0 --seconds "$DURATION" --warmup "$WARMUP" --cores "$CORE" \
        --mbufs "$mbufs" -- \
        -l 0 --no-pci "${MEM[@]}" --file-prefix=l4lb-bench-fwd "${VDEVS[@]}" --log-level=lib.eal:warning \
        >"$log" 2>&1 &
    local pid=$!
    local share
    share=$(cpu_share "$pid" 'l4lb-fwd-0')
    wait "$pid" || { cat "$log" >&2; die "dpdk_fwd failed"; }
    echo "$(grep '^RESULT' "$log") cpu_share=${share}%"
}

for _ in $(seq "$RUNS"); do
    TP=$(run_testpmd); echo "$TP"
    FW=$(run_fwd); echo "$FW"
    tp=$(echo "$TP" | sed -n 's/.* mpps=\([0-9.]*\).*/\1/p'); fw=$(echo "$FW" | sed -n 's/.* mpps=\([0-9.]*\).*/\1/p')
    tps=$(echo "$TP" | sed -n 's/.*cpu_share=\([0-9]*\)%.*/\1/p'); fws=$(echo "$FW" | sed -n 's/.*cpu_share=\([0-9]*\)%.*/\1/p')
    # Per CPU-second of the forwarding thread: corrects for preemption on a shared machine.
    awk -v a="$fw" -v b="$tp" -v as="$fws" -v bs="$tps" 'BEGIN {
        printf "RESULT ratio l4lb-port/testpmd = %.1f%% (wall clock)", 100 * a / b
        if (as > 0 && bs > 0) printf ", %.1f%% per CPU-second (testpmd %.2f, l4lb-port %.2f Mpps/CPU-s)", \
            100 * (a / as) / (b / bs), 100 * b / bs, 100 * a / as
        printf "\n" }'
done
