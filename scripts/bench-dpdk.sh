#!/usr/bin/env bash
# DPDK benchmark, side by side on the same vdevs, same machine, same run:
#   1. dpdk-testpmd --forward-mode=io          (DPDK's own baseline)
#   2. dataplane/examples/dpdk_fwd             (the same loop through l4lb's Port trait)
#   3. l4lb run                                (the whole pipeline: parse, flow table,
#                                               Maglev, GRE encapsulation in the mbuf)
# All read a capture of established-flow 64-byte TCP packets to a GRE VIP (made by
# `l4lb gen --established-only --size 64`) from net_pcap(infinite_rx=1) and send to
# net_null(no-rx=1). First one queue / one forwarding core, then (WORKERS2=1) two
# queues / two forwarding threads for testpmd and l4lb. Prints one RESULT line per
# run and the ratios. Needs root (EAL) and DPDK
# (apt-get install dpdk libdpdk-dev pkg-config clang libclang-dev).
#
# Environment:
#   DURATION=10      measured seconds per run (after WARMUP)
#   WARMUP=2         seconds ignored at the start of each run
#   CORE=1           forwarding core (the main lcore is 0); the 2-worker runs use CORE and CORE2
#   CORE2=0          second forwarding core for the 2-worker runs
#   FLOWS=1024       flows in the generated capture
#   PACKETS=8192     packets in the generated capture
#   CAPTURE=         use this pcap instead of generating one (must be to the GRE VIP below)
#   HUGE=auto        auto|1|0: 2 MB hugepages (set up here, undone at exit) or --no-huge
#   RUNS=1           repeat the runs this many times (alternating)
#   FWD=1            also run dpdk_fwd (the Port-trait loop without the pipeline)
#   LADDER=0         1: also run dpdk_fwd --work parse, encap and table (the pipeline's
#                    parts one by one on the same port; see dataplane/examples/dpdk_fwd.rs)
#   WORKERS2=1       also run testpmd and l4lb with two queues / two forwarding threads
#   PERF=            write a `perf record` profile of each l4lb run's process to this file
#   FLOW_CAPACITY=65536  l4lb's flow_table_capacity
#   L4LB_BIN=        run this l4lb binary (built with --features dpdk) instead of building one
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
CORE2=${CORE2:-0}
FWD_RUN=${FWD:-1}
LADDER=${LADDER:-0}
WORKERS2=${WORKERS2:-1}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/l4lb-bench-dpdk.XXXXXX)
HUGE_SET=0
OLD_NR=""
MOUNTED=0
MADE_DIR=0

cleanup() {
    rm -rf "$WORK" /var/run/dpdk/l4lb-bench-tp /var/run/dpdk/l4lb-bench-fwd /var/run/dpdk/l4lb-bench-lb
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

# --- l4lb and the example, built once ----------------------------------------------
if [ -n "${L4LB_BIN:-}" ]; then
    L4LB="$L4LB_BIN"
else
    (cd "$ROOT" && cargo build --release -q -p controlplane --features dpdk)
    L4LB="$ROOT/target/release/l4lb"
fi
if [ "$FWD_RUN" = 1 ] || [ "$LADDER" = 1 ]; then
    (cd "$ROOT" && cargo build --release -q -p dataplane --features dpdk --example dpdk_fwd)
fi
FWD="$ROOT/target/release/examples/dpdk_fwd"

# --- the capture: established TCP flows to a GRE VIP, 64-byte frames ---------------
# The VIP and backends of the l4lb runs (node and VIP section of their config).
LB_CONFIG='[node]
mac = "02:00:00:00:00:01"
gateway_mac = "02:00:00:00:00:fe"
ipv4 = "10.0.0.2"

[[vip]]
name = "bench"
address = "198.51.100.10"
port = 80
protocol = "tcp"
forwarding = "gre"
  [[vip.backend]]
  address = "10.1.0.11"
  [[vip.backend]]
  address = "10.1.0.12"
  [[vip.backend]]
  address = "10.1.0.13"
  [[vip.backend]]
  address = "10.1.0.14"
'
echo "$LB_CONFIG" >"$WORK/gen.toml"
if [ -z "$CAPTURE" ]; then
    CAPTURE="$WORK/flows.pcap"
    "$L4LB" gen --config "$WORK/gen.toml" --output "$CAPTURE" --flows "$FLOWS" --packets "$PACKETS" \
        --established-only --size 64 --zipf 0 --seed 1 >/dev/null
fi

# vdevs for $1 queues: net_pcap replays the capture on each RX queue (one pcap
# handle per queue), net_null swallows what every TX queue sends.
vdevs() {
    local rx="" q
    for q in $(seq "$1"); do rx="$rx,rx_pcap=$CAPTURE"; done
    VDEVS=(--vdev="net_pcap0${rx},infinite_rx=1" --vdev=net_null0,no-rx=1)
}
vdevs 1
echo "bench-dpdk: capture $CAPTURE ($(stat -c %s "$CAPTURE") bytes), memory: ${MEM[*]}, core $CORE, ${DURATION}s"
echo "bench-dpdk: $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"


HZ=$(getconf CLK_TCK)

# CPU ticks (user + system) of the threads of process $1 whose name matches $2 (summed).
thread_ticks() {
    local t n=0
    for t in /proc/"$1"/task/*; do
        if grep -qxE "$2" "$t/comm" 2>/dev/null; then n=$((n + $(awk '{ print $14 + $15 }' "$t/stat"))); fi
    done
    echo "$n"
}

# Share of one CPU the forwarding thread got during the measured window (the
# machine may be shared: a share well below 100% means the figure is low because
# the thread was preempted). Runs in the background beside the benchmark.
cpu_share() { # pid thread-regex -> prints the share in % of one CPU (summed over threads)
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

run_testpmd() { # [queues]
    local q=${1:-1}
    local log="$WORK/testpmd.log" lcores="0@0,1@$CORE"
    [ "$q" = 1 ] || lcores="$lcores,2@$CORE2"
    vdevs "$q"
    # Enough mbufs for the capture that infinite_rx keeps on each RX queue, plus rings.
    timeout -s INT $((WARMUP + DURATION + 3)) dpdk-testpmd --lcores "$lcores" --no-pci "${MEM[@]}" \
        --file-prefix=l4lb-bench-tp "${VDEVS[@]}" --log-level=lib.eal:warning -- \
        --forward-mode=io --nb-cores="$q" --rxq="$q" --txq="$q" --burst=32 --stats-period=1 --no-lsc-interrupt \
        --total-num-mbufs=$(( (PACKETS + 4096) * q + 8192 )) \
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
    echo "RESULT testpmd io queues=$q mpps=$mpps cpu_share=${share}%"
    [ "$mpps" != nan ] || { tail -20 "$log" >&2; die "no testpmd figures"; }
}

run_fwd() { # [work]
    local log="$WORK/fwd.log" work=${1:-io}
    # infinite_rx keeps the whole capture in mbufs of the RX pool: size the pool for it.
    local mbufs=$(( PACKETS + 4096 > 8191 ? PACKETS + 4096 : 8191 ))
    "$FWD" --rx net_pcap0 --tx net_null0 --seconds "$DURATION" --warmup "$WARMUP" --cores "$CORE" \
        --mbufs "$mbufs" --work "$work" -- \
        -l 0 --no-pci "${MEM[@]}" --file-prefix=l4lb-bench-fwd "${VDEVS[@]}" --log-level=lib.eal:warning \
        >"$log" 2>&1 &
    local pid=$!
    local share
    share=$(cpu_share "$pid" 'l4lb-fwd-0')
    wait "$pid" || { cat "$log" >&2; die "dpdk_fwd failed"; }
    echo "$(grep '^RESULT' "$log") cpu_share=${share}%"
}

run_l4lb() { # workers
    local w=$1 cores="$CORE"
    [ "$w" = 1 ] || cores="$CORE, $CORE2"
    vdevs "$w"
    local log="$WORK/l4lb.log" cfg="$WORK/l4lb.toml" a args=""
    local mbufs=$(( PACKETS + 4096 > 8191 ? PACKETS + 4096 : 8191 ))
    for a in -l 0 --no-pci "${MEM[@]}" --file-prefix=l4lb-bench-lb "${VDEVS[@]}" --log-level=lib.eal:warning; do
        args="$args\"$a\", "
    done
    cat >"$cfg" <<EOF
$LB_CONFIG
[dataplane]
workers = $w
flow_table_capacity = ${FLOW_CAPACITY:-65536}

[io]
driver = "dpdk"
cores = [$cores]
ring_size = 1024

[io.dpdk]
eal_args = [${args%, }]
port = 0
tx_port = 1
mbufs = $mbufs
EOF
    timeout --preserve-status -s INT $((WARMUP + DURATION + 2)) "$L4LB" run --stats-interval 1s --config "$cfg" \
        </dev/null >"$log" 2>&1 &
    local pid=$!
    local lb_pid="" i share
    for i in $(seq 50); do
        lb_pid=$(pgrep -P "$pid" l4lb) && break
        sleep 0.1
    done
    if [ -n "${PERF:-}" ]; then
        perf record -F 2000 -g -o "$PERF" -p "${lb_pid:-$pid}" -- sleep "$DURATION" >/dev/null 2>&1 &
    fi
    share=$(cpu_share "${lb_pid:-$pid}" 'l4lb-worker-[0-9]+')
    wait "$pid" || { cat "$log" >&2; die "l4lb run failed"; }
    # rx_mpps of each 1-second counter line; drop the warm-up samples and the last one.
    local mpps
    mpps=$(awk -v skip="$WARMUP" '
        / counters / { for (i = 1; i <= NF; i++) if ($i ~ /^rx_mpps=/) { n++; if (n > skip) v[m++] = substr($i, 9) } }
        END { if (m > 1) m--; s = 0; for (i = 0; i < m; i++) s += v[i]; if (m) printf "%.3f", s / m; else print "nan" }
    ' "$log")
    [ "$mpps" != nan ] || { cat "$log" >&2; die "no l4lb figures"; }
    local totals
    totals=$(grep -E '^(packets|port|drops):' "$log" | tr '\n' ';')
    echo "RESULT l4lb run workers=$w mpps=$mpps cpu_share=${share}% final: $totals"
}

# ratio A-line B-line label
ratio() {
    local a b as bs
    a=$(echo "$1" | sed -n 's/.* mpps=\([0-9.]*\).*/\1/p'); b=$(echo "$2" | sed -n 's/.* mpps=\([0-9.]*\).*/\1/p')
    as=$(echo "$1" | sed -n 's/.*cpu_share=\([0-9]*\)%.*/\1/p'); bs=$(echo "$2" | sed -n 's/.*cpu_share=\([0-9]*\)%.*/\1/p')
    # Per CPU-second of the forwarding threads: corrects for preemption on a shared machine.
    awk -v a="$a" -v b="$b" -v as="$as" -v bs="$bs" -v l="$3" 'BEGIN {
        printf "RESULT ratio %s = %.1f%% (wall clock; %.1f vs %.1f ns/packet)", l, 100 * a / b, 1000 / a, 1000 / b
        if (as > 0 && bs > 0) printf ", %.1f%% per CPU-second (%.2f vs %.2f Mpps/CPU-s)", \
            100 * (a / as) / (b / bs), 100 * a / as, 100 * b / bs
        printf "\n" }'
}

for _ in $(seq "$RUNS"); do
    TP=$(run_testpmd 1); echo "$TP"
    if [ "$FWD_RUN" = 1 ]; then
        vdevs 1
        FW=$(run_fwd); echo "$FW"
        ratio "$FW" "$TP" "l4lb-port/testpmd"
    fi
    if [ "$LADDER" = 1 ]; then
        vdevs 1
        for work in parse encap table; do
            FW=$(run_fwd "$work"); echo "$FW"
            ratio "$FW" "$TP" "dpdk_fwd --work $work/testpmd"
        done
    fi
    LB=$(run_l4lb 1); echo "$LB"
    ratio "$LB" "$TP" "l4lb/testpmd (1 worker)"
    if [ "$WORKERS2" = 1 ]; then
        TP2=$(run_testpmd 2); echo "$TP2"
        LB2=$(run_l4lb 2); echo "$LB2"
        ratio "$LB2" "$TP2" "l4lb/testpmd (2 workers)"
        ratio "$LB2" "$LB" "l4lb 2 workers/1 worker"
    fi
done
