#!/usr/bin/env bash
# The side-by-side throughput comparison of docs/PERFORMANCE.md ("Live (veth)"): lab/bench-nft.sh
# for nftables DNAT, l4lb over AF_PACKET and l4lb over AF_XDP, RUNS times each, back
# to back, then the median of each balancer's delivered pps (and its drops).
#
#   lab/bench-live.sh [--runs 3] [--duration 5] [more lab/bench-nft.sh options]
#
# Tears the lab down at the end.
set -euo pipefail
LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUNS=3
DURATION=5
EXTRA=()
while (($#)); do
    case $1 in
        --runs) RUNS=${2:?}; shift ;;
        --duration) DURATION=${2:?}; shift ;;
        *) EXTRA+=("$1") ;;
    esac
    shift
done
trap '"$LAB_DIR/lab.sh" down >/dev/null 2>&1 || true' EXIT
declare -A results
for run in $(seq "$RUNS"); do
    for bal in nft l4lb l4lb-xdp; do
        line=$("$LAB_DIR/bench-nft.sh" --balancer "$bal" --duration "$DURATION" "${EXTRA[@]}" | grep '^RESULT')
        echo "run $run: $line"
        results[$bal]+="$line"$'\n'
    done
done
val() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
nft_pps=$(val delivered_pps <<<"${results[nft]}" | median)
printf '%-10s %14s %14s %12s %12s %10s\n' balancer delivered_pps gen_pps lost gen_dropped vs_nft
for bal in nft l4lb l4lb-xdp; do
    r=${results[$bal]}
    d=$(val delivered_pps <<<"$r" | median)
    printf '%-10s %14.0f %14.0f %12.0f %12.0f %9.2fx\n' "$bal" "$d" "$(val gen_pps <<<"$r" | median)" \
        "$(val lost <<<"$r" | median)" "$(val gen_dropped <<<"$r" | median)" "$(awk -v a="$d" -v b="$nft_pps" 'BEGIN {print (b > 0) ? a / b : 0}')"
done
