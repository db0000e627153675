#!/usr/bin/env bash
# End-to-end check of the lab with l4lb as the balancer: for each forwarding mode,
# real HTTP requests from the client through each VIP (IPv4 and IPv6) must all
# succeed and every backend must get a share; the LB host still answers pings (non-VIP
# traffic reaches its kernel); in DNAT mode a backend set down takes no new
# connections. Exit status 0 only if everything held. Leaves nothing behind.
#
#   lab/smoke.sh [--driver af_packet|af_xdp] [--modes "dnat gre ipip"] [--requests N]
set -euo pipefail
LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DRIVER=af_packet
MODES="dnat gre ipip"
N=60
while (($#)); do
    case $1 in
        --driver) DRIVER=${2:?}; shift ;;
        --modes) MODES=${2:?}; shift ;;
        --requests) N=${2:?}; shift ;;
        *) echo "usage: $0 [--driver af_packet|af_xdp] [--modes \"dnat gre ipip\"] [--requests N]" >&2; exit 2 ;;
    esac
    shift
done
LAB="$LAB_DIR/lab.sh"
fail=0
trap '"$LAB" down >/dev/null 2>&1 || true' EXIT
check() { if eval "$2"; then echo "  ok   $1"; else echo "  FAIL $1"; fail=1; fi; }

# requests URL N -> "be1 be2 be3 failed" counts
requests() {
    local url=$1 n=$2 b1=0 b2=0 b3=0 bad=0 body
    for _ in $(seq "$n"); do
        if body=$(ip netns exec l4lb-client curl -s -g -m 2 "$url"); then
            case $(awk '{print $2}' <<<"$body") in
                be1) b1=$((b1 + 1)) ;; be2) b2=$((b2 + 1)) ;; be3) b3=$((b3 + 1)) ;; *) bad=$((bad + 1)) ;;
            esac
        else
            bad=$((bad + 1))
        fi
    done
    echo "$b1 $b2 $b3 $bad"
}

for mode in $MODES; do
    echo "mode $mode, driver $DRIVER"
    "$LAB" up "$mode" --driver "$DRIVER" --balancer l4lb >/dev/null
    for url in "http://198.51.100.10/" "http://[2001:db8::10]/"; do
        read -r b1 b2 b3 bad < <(requests "$url" "$N")
        min=$((N / 10))
        echo "  $url: be1=$b1 be2=$b2 be3=$b3 failed=$bad"
        check "$url: all $N requests answered" "[[ $bad == 0 ]]"
        check "$url: every backend >= 10% of requests" "(( b1 >= min && b2 >= min && b3 >= min ))"
    done
    check "ping to the LB host (non-VIP traffic reaches its kernel)" \
        "ip netns exec l4lb-client ping -c 1 -W 2 10.0.0.2 >/dev/null && ip netns exec l4lb-client ping -6 -c 1 -W 2 fd00::2 >/dev/null"
    if [[ $mode == dnat ]]; then
        "$LAB" backend be2 down >/dev/null
        read -r b1 b2 b3 bad < <(requests "http://198.51.100.10/" 30)
        echo "  be2 down: be1=$b1 be2=$b2 be3=$b3 failed=$bad"
        check "backend set down takes no new connections" "[[ $b2 == 0 && $bad == 0 ]]"
    fi
    "$LAB" down >/dev/null
done
if ((fail)); then echo "smoke: FAILED"; exit 1; fi
echo "smoke: all checks passed"
