#!/usr/bin/env bash
# l4lb lab: a client, a router, a one-armed load balancer and three HTTP backends,
# each in its own network namespace on this machine. See docs/LAB.md.
#
#   lab/lab.sh up [dnat|gre|ipip] [--driver af_packet|af_xdp] [--balancer auto|l4lb|nft|none] [--workers N]
#   lab/lab.sh curl [N]        # N requests to the VIP (IPv4 and IPv6), tally per backend
#   lab/lab.sh backend be2 down   # up|down|drain, applied by l4lb on SIGHUP
#   lab/lab.sh status
#   lab/lab.sh down            # idempotent
#
#   client 172.16.0.2 ── router ── lb 10.0.0.2 (VIP 198.51.100.10, 2001:db8::10 routed here)
#                          │
#                        br-be ── be1 10.1.0.11, be2 10.1.0.12, be3 10.1.0.13
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LAB_DIR/.." && pwd)"
RUN_DIR="$LAB_DIR/run"

NS_CLIENT=l4lb-client
NS_ROUTER=l4lb-router
NS_LB=l4lb-lb
BACKENDS=(be1 be2 be3)
ALL_NS=("$NS_CLIENT" "$NS_ROUTER" "$NS_LB" l4lb-be1 l4lb-be2 l4lb-be3)

VIP4=198.51.100.10
VIP6=2001:db8::10
VIP_PORT=80
CLIENT4=172.16.0.2
CLIENT6=fd00:1::2
ROUTER_CLIENT4=172.16.0.1
ROUTER_CLIENT6=fd00:1::1
LB4=10.0.0.2
LB6=fd00::2
ROUTER_LB4=10.0.0.1
ROUTER_LB6=fd00::1
LB_MAC=02:00:00:00:00:01
ROUTER_LB_MAC=02:00:00:00:00:fe
ROUTER_BE4=10.1.0.1
ROUTER_BE6=fd00:2::1
BE4=(10.1.0.11 10.1.0.12 10.1.0.13)
BE6=(fd00:2::11 fd00:2::12 fd00:2::13)
# The LB and backend segments carry tunnelled packets (+24 bytes for IPv4 GRE, +44
# for IPv6 GRE): their MTU is raised so full-size client packets fit once wrapped.
INNER_MTU=1500
OUTER_MTU=1600
# Policy-routing table the router uses to send DNAT replies back through the LB.
DNAT_TABLE=100

log() { printf 'lab: %s\n' "$*"; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

need() {
    local missing=()
    for t in ip nft ethtool curl python3; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
    if ((${#missing[@]})); then
        die "missing tools: ${missing[*]} (Debian: apt-get install iproute2 nftables ethtool curl python3)"
    fi
    [[ $(id -u) == 0 ]] || die "must run as root (network namespaces)"
}

# Wire-like veths: no checksum offload, no segmentation offload. Packet sockets and
# AF_XDP see frames before the kernel would fill checksums or split super-frames.
no_offloads() {
    local ns=$1 dev=$2
    nsx "$ns" ethtool -K "$dev" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
}

sysctl_ns() { local ns=$1; shift; for kv in "$@"; do nsx "$ns" sysctl -qw "$kv" >/dev/null; done; }

# The l4lb binary to run: $L4LB, else the first of target/release, target/debug and
# PATH that has the `run` subcommand (a stale build may not).
l4lb_bin() {
    if [[ -n "${L4LB:-}" ]]; then echo "$L4LB"; return; fi
    local b
    for b in "$REPO_DIR/target/release/l4lb" "$REPO_DIR/target/debug/l4lb" "$(command -v l4lb 2>/dev/null)"; do
        [[ -n $b && -x $b ]] && "$b" run --help >/dev/null 2>&1 && { echo "$b"; return; }
    done
}

l4lb_can_run() {
    local bin; bin=$(l4lb_bin)
    [[ -n "$bin" ]] && "$bin" run --help >/dev/null 2>&1
}

# The backends' decapsulation companion (docs/DECAP.md): bpf/decap.bpf.o if built
# (make -C bpf), else compiled from bpf/decap.bpf.c into lab/run/ when clang is here.
decap_object() {
    if [[ -f $REPO_DIR/bpf/decap.bpf.o ]]; then echo "$REPO_DIR/bpf/decap.bpf.o"; return; fi
    [[ -f $REPO_DIR/bpf/decap.bpf.c ]] && command -v clang >/dev/null 2>&1 || return 0
    local out="$RUN_DIR/decap.bpf.o"
    if clang -O2 -g -target bpf -Wall -I"/usr/include/$(uname -m)-linux-gnu" \
        -c "$REPO_DIR/bpf/decap.bpf.c" -o "$out" 2>"$RUN_DIR/decap-build.log"; then
        echo "$out"
    fi
}

# The l4lb process in the LB namespace (setsid may have forked: not $! of the launch).
l4lb_pid() {
    local p
    for p in $(ip netns pids "$NS_LB" 2>/dev/null); do
        [[ $(cat "/proc/$p/comm" 2>/dev/null) == l4lb ]] && { echo "$p"; return; }
    done
}

# Backend states set with `lab.sh backend NAME STATE` (lab/run/states: "be2 down").
backend_state() {
    local st
    st=$(awk -v b="$1" '$1 == b {s = $2} END {print s}' "$RUN_DIR/states" 2>/dev/null)
    echo "${st:-up}"
}

write_config() {
    local mode=$1 driver=$2 workers=${3:-1} f="$RUN_DIR/l4lb.toml"
    {
        echo "# Written by lab/lab.sh up $mode --driver $driver. Topology: docs/LAB.md."
        echo "[node]"
        echo "mac = \"$LB_MAC\""
        echo "gateway_mac = \"$ROUTER_LB_MAC\""
        echo "ipv4 = \"$LB4\""
        echo "ipv6 = \"$LB6\""
        echo "mtu = $OUTER_MTU"
        echo
        echo "[dataplane]"
        echo "workers = $workers"
        echo "flow_table_capacity = 65536"
        echo
        echo "[io]"
        echo "driver = \"$driver\""
        echo "interface = \"eth0\""
        echo "ring_size = 2048"
        [[ $driver == af_xdp ]] && echo "xdp_mode = \"auto\""
        for fam in 4 6; do
            local vip=$VIP4 name=web4 addrs=("${BE4[@]}")
            if [[ $fam == 6 ]]; then vip=$VIP6; name=web6; addrs=("${BE6[@]}"); fi
            echo
            echo "[[vip]]"
            echo "name = \"$name\""
            echo "address = \"$vip\""
            echo "port = $VIP_PORT"
            echo "protocol = \"tcp\""
            echo "forwarding = \"$mode\""
            echo "hash = \"5-tuple\""
            echo "table_size = 65537"
            local k
            for k in 0 1 2; do
                echo
                echo "  [[vip.backend]]"
                echo "  address = \"${addrs[$k]}\""
                echo "  weight = 1"
                echo "  state = \"$(backend_state "${BACKENDS[$k]}")\""
            done
        done
    } >"$f"
    log "wrote $f ($mode, $driver)"
}

start_backend_http() {
    local i=$1 name=${BACKENDS[$1]} ns=l4lb-${BACKENDS[$1]}
    local dir="$RUN_DIR/www-$name"
    mkdir -p "$dir"
    printf 'backend %s %s %s\n' "$name" "${BE4[$i]}" "${BE6[$i]}" >"$dir/index.html"
    # Port 80 on every address of the namespace, IPv4 and IPv6 (a dual-stack socket):
    # its own address (DNAT) and the VIP on lo (GRE/IPIP direct server return).
    nsx "$ns" setsid python3 -m http.server "$VIP_PORT" --bind :: --directory "$dir" \
        >"$RUN_DIR/http-$name.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/http-$name.pid"
}

nft_dnat() {
    nsx "$NS_LB" nft -f - <<EOF
table ip l4lb_lab {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr $VIP4 tcp dport $VIP_PORT dnat to numgen inc mod 3 map { 0 : ${BE4[0]}, 1 : ${BE4[1]}, 2 : ${BE4[2]} }
    }
}
table ip6 l4lb_lab {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        ip6 daddr $VIP6 tcp dport $VIP_PORT dnat to numgen inc mod 3 map { 0 : ${BE6[0]}, 1 : ${BE6[1]}, 2 : ${BE6[2]} }
    }
}
EOF
    # The kernel forwards here (and only in this variant): DNAT'd packets go back
    # out of eth0 to the router.
    sysctl_ns "$NS_LB" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
        net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.eth0.send_redirects=0
}

# AF_PACKET only copies frames: the LB's kernel would process every VIP packet (and
# every DNAT reply) too, just to drop it. A netdev ingress rule drops them after the
# packet sockets took their copy (taps run before ingress hooks) and before the IP
# stack: the kernel cannot answer VIP traffic even if misconfigured, and does no work
# for it. The same traffic AF_XDP's program steals.
nft_afpacket_ingress() {
    nsx "$NS_LB" nft -f - <<EOF
table netdev l4lb_afpacket {
    chain ingress {
        type filter hook ingress device "eth0" priority -500; policy accept;
        ip daddr $VIP4 drop
        ip6 daddr $VIP6 drop
        ip saddr 10.1.0.0/24 tcp sport $VIP_PORT drop
        ip6 saddr fd00:2::/64 tcp sport $VIP_PORT drop
    }
}
EOF
}

cmd_up() {
    local mode=dnat driver=af_packet balancer=auto workers=1
    while (($#)); do
        case $1 in
            dnat|gre|ipip) mode=$1 ;;
            --driver) driver=${2:?}; shift ;;
            --balancer) balancer=${2:?}; shift ;;
            --workers) workers=${2:?}; shift ;;
            *) die "unknown argument: $1 (usage: lab.sh up [dnat|gre|ipip] [--driver af_packet|af_xdp] [--balancer auto|l4lb|nft|none] [--workers N])" ;;
        esac
        shift
    done
    [[ $workers =~ ^[1-9][0-9]?$ ]] || die "--workers must be 1..99"
    # One l4lb worker per RX queue of the LB's veth: with N > 1 both ends of the LB
    # link get N queues, and the router's transmit hash spreads flows over them
    # (like a NIC's RSS; a DNAT reply usually lands on another queue than its request).
    local queues=()
    ((workers > 1)) && queues=(numtxqueues "$workers" numrxqueues "$workers")
    [[ $driver == af_packet || $driver == af_xdp ]] || die "driver must be af_packet or af_xdp"
    need
    if [[ $balancer == auto ]]; then
        if l4lb_can_run; then balancer=l4lb; elif [[ $mode == dnat ]]; then balancer=nft; else balancer=none; fi
    fi
    [[ $balancer == nft && $mode != dnat ]] && die "the nftables balancer only does dnat"
    cmd_down quiet
    mkdir -p "$RUN_DIR"
    echo "$mode $driver $balancer $workers" >"$RUN_DIR/mode"
    rm -f "$RUN_DIR/states"

    for ns in "${ALL_NS[@]}"; do
        ip netns add "$ns"
        nsx "$ns" ip link set lo up
    done

    # client <-> router
    ip link add eth0 netns "$NS_CLIENT" type veth peer name to-client netns "$NS_ROUTER"
    # lb <-> router (the LB's only interface)
    ip link add eth0 netns "$NS_LB" address "$LB_MAC" "${queues[@]}" type veth \
        peer name to-lb netns "$NS_ROUTER" address "$ROUTER_LB_MAC" "${queues[@]}"
    # backends: one segment, a bridge in the router namespace
    nsx "$NS_ROUTER" ip link add br-be type bridge
    for i in 0 1 2; do
        local b=${BACKENDS[$i]}
        ip link add eth0 netns "l4lb-$b" type veth peer name "to-$b" netns "$NS_ROUTER"
        nsx "$NS_ROUTER" ip link set "to-$b" master br-be mtu "$OUTER_MTU" up
    done

    # Addresses (nodad: usable at once) and links.
    nsx "$NS_CLIENT" ip addr add "$CLIENT4/24" dev eth0
    nsx "$NS_CLIENT" ip addr add "$CLIENT6/64" dev eth0 nodad
    nsx "$NS_CLIENT" ip link set eth0 mtu "$INNER_MTU" up
    nsx "$NS_CLIENT" ip route add default via "$ROUTER_CLIENT4"
    nsx "$NS_CLIENT" ip -6 route add default via "$ROUTER_CLIENT6"

    nsx "$NS_ROUTER" ip addr add "$ROUTER_CLIENT4/24" dev to-client
    nsx "$NS_ROUTER" ip addr add "$ROUTER_CLIENT6/64" dev to-client nodad
    nsx "$NS_ROUTER" ip link set to-client mtu "$INNER_MTU" up
    nsx "$NS_ROUTER" ip addr add "$ROUTER_LB4/24" dev to-lb
    nsx "$NS_ROUTER" ip addr add "$ROUTER_LB6/64" dev to-lb nodad
    nsx "$NS_ROUTER" ip link set to-lb mtu "$OUTER_MTU" up
    nsx "$NS_ROUTER" ip addr add "$ROUTER_BE4/24" dev br-be
    nsx "$NS_ROUTER" ip addr add "$ROUTER_BE6/64" dev br-be nodad
    nsx "$NS_ROUTER" ip link set br-be mtu "$OUTER_MTU" up
    # The VIPs live behind the LB.
    nsx "$NS_ROUTER" ip route add "$VIP4/32" via "$LB4"
    nsx "$NS_ROUTER" ip -6 route add "$VIP6/128" via "$LB6"
    # rp_filter off: in GRE/IPIP mode replies from the VIP arrive from the backends'
    # side while the VIP's route points at the LB.
    sysctl_ns "$NS_ROUTER" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
        net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
        net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0
    for d in to-client to-lb br-be; do sysctl_ns "$NS_ROUTER" "net.ipv4.conf.$d.rp_filter=0"; done

    nsx "$NS_LB" ip addr add "$LB4/24" dev eth0
    nsx "$NS_LB" ip addr add "$LB6/64" dev eth0 nodad
    nsx "$NS_LB" ip link set eth0 mtu "$OUTER_MTU" up
    nsx "$NS_LB" ip route add default via "$ROUTER_LB4"
    nsx "$NS_LB" ip -6 route add default via "$ROUTER_LB6"
    # With l4lb on AF_PACKET the kernel sees a copy of every frame: it must not
    # forward (or answer) VIP traffic itself. No VIP address here, forwarding off.
    sysctl_ns "$NS_LB" net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0 net.ipv4.conf.all.rp_filter=0 \
        net.ipv4.conf.eth0.rp_filter=0

    for i in 0 1 2; do
        local ns=l4lb-${BACKENDS[$i]}
        nsx "$ns" ip addr add "${BE4[$i]}/24" dev eth0
        nsx "$ns" ip addr add "${BE6[$i]}/64" dev eth0 nodad
        nsx "$ns" ip link set eth0 mtu "$OUTER_MTU" up
        nsx "$ns" ip route add default via "$ROUTER_BE4"
        nsx "$ns" ip -6 route add default via "$ROUTER_BE6"
        if [[ $mode != dnat ]]; then
            # Direct server return: the VIP is local (so the decapsulated packet is
            # accepted and the reply leaves from the VIP) but never announced.
            nsx "$ns" ip addr add "$VIP4/32" dev lo
            nsx "$ns" ip addr add "$VIP6/128" dev lo nodad
            sysctl_ns "$ns" net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
                net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0
        fi
    done

    if [[ $mode == dnat ]]; then
        # Replies from the backends' HTTP servers must pass the LB to get their
        # source rewritten back to the VIP: the router sends traffic arriving from
        # the backend segment with source port 80 to the LB instead of the client.
        nsx "$NS_ROUTER" ip route add default via "$LB4" table "$DNAT_TABLE"
        nsx "$NS_ROUTER" ip -6 route add default via "$LB6" table "$DNAT_TABLE"
        nsx "$NS_ROUTER" ip rule add iif br-be ipproto tcp sport "$VIP_PORT" lookup "$DNAT_TABLE" priority 100
        nsx "$NS_ROUTER" ip -6 rule add iif br-be ipproto tcp sport "$VIP_PORT" lookup "$DNAT_TABLE" priority 100
    else
        local obj
        obj=$(decap_object)
        if [[ -n $obj ]]; then
            for b in "${BACKENDS[@]}"; do
                nsx "l4lb-$b" ip link set dev eth0 xdpgeneric obj "$obj" sec xdp
            done
            log "loaded $obj (XDP generic) on the backends' eth0"
        else
            log "warning: no bpf/decap.bpf.o and no clang to build it: backends cannot decapsulate $mode (no GRE/IPIP devices on this kernel)"
        fi
    fi

    for ns in "${ALL_NS[@]}"; do
        for dev in $(nsx "$ns" ls /sys/class/net); do
            [[ $dev == lo || $dev == br-be ]] || no_offloads "$ns" "$dev"
        done
    done

    for i in 0 1 2; do start_backend_http "$i"; done
    write_config "$mode" "$driver" "$workers"

    if [[ $driver == af_packet && $balancer != nft ]]; then
        nft_afpacket_ingress
        log "netdev ingress rule in $NS_LB: the kernel drops VIP traffic after AF_PACKET copied it"
    fi
    case $balancer in
        l4lb)
            local bin; bin=$(l4lb_bin)
            nsx "$NS_LB" setsid "$bin" run --config "$RUN_DIR/l4lb.toml" >"$RUN_DIR/l4lb.log" 2>&1 </dev/null &
            for _ in $(seq 100); do
                grep -q "forwarding" "$RUN_DIR/l4lb.log" 2>/dev/null && break
                sleep 0.1
            done
            [[ -n $(l4lb_pid) ]] || { cat "$RUN_DIR/l4lb.log" >&2; die "l4lb run exited at start"; }
            l4lb_pid >"$RUN_DIR/l4lb.pid"
            log "started $bin run in $NS_LB (log: $RUN_DIR/l4lb.log)"
            ;;
        nft)
            nft_dnat
            log "balancing with nftables DNAT (numgen inc mod 3) in $NS_LB: the kernel, not l4lb"
            ;;
        none)
            if [[ $mode == dnat ]]; then log "no balancer started (--balancer none)"
            else log "no balancer started (l4lb run unavailable; nftables cannot do $mode)"; fi
            ;;
        *) die "unknown balancer $balancer" ;;
    esac
    wait_http
    log "up: mode $mode, driver $driver, balancer $balancer, $workers worker(s). Try: lab/lab.sh curl 30"
}

wait_http() {
    for i in 0 1 2; do
        local ns=l4lb-${BACKENDS[$i]} ok=0
        for _ in $(seq 50); do
            if nsx "$ns" curl -s -m 1 -o /dev/null "http://${BE4[$i]}/"; then ok=1; break; fi
            sleep 0.1
        done
        ((ok)) || die "HTTP server on ${BACKENDS[$i]} did not start (see $RUN_DIR/http-${BACKENDS[$i]}.log)"
    done
}

cmd_curl() {
    local n=${1:-30}
    [[ -d /run/netns && -e /run/netns/$NS_CLIENT ]] || die "lab is not up"
    for url in "http://$VIP4/" "http://[$VIP6]/"; do
        declare -A tally=()
        local fail=0
        for _ in $(seq "$n"); do
            local body
            if body=$(nsx "$NS_CLIENT" curl -s -g -m 2 "$url"); then
                local who; who=$(awk '{print $2}' <<<"$body")
                tally[$who]=$(( ${tally[$who]:-0} + 1 ))
            else
                fail=$((fail + 1))
            fi
        done
        printf '%-24s' "$url"
        for b in "${BACKENDS[@]}"; do printf ' %s=%d' "$b" "${tally[$b]:-0}"; done
        printf ' failed=%d\n' "$fail"
        unset tally
    done
}

# Set a backend's state in both VIPs, rewrite the config and make l4lb reload it
# (SIGHUP): new connections avoid a `down` or `drain` backend; established ones on
# other backends continue.
cmd_backend() {
    local name=${1:-} state=${2:-}
    [[ $name =~ ^be[123]$ && $state =~ ^(up|down|drain)$ ]] || die "usage: lab.sh backend be1|be2|be3 up|down|drain"
    [[ -f $RUN_DIR/mode ]] || die "lab is not up"
    local mode driver balancer workers
    read -r mode driver balancer workers <"$RUN_DIR/mode"
    [[ $balancer == l4lb ]] || die "backend states need l4lb as the balancer (this lab runs: $balancer)"
    { grep -v "^$name " "$RUN_DIR/states" 2>/dev/null || true; echo "$name $state"; } >"$RUN_DIR/states.new"
    mv "$RUN_DIR/states.new" "$RUN_DIR/states"
    write_config "$mode" "$driver" "${workers:-1}" >/dev/null
    local pid; pid=$(l4lb_pid)
    [[ -n $pid ]] || die "l4lb is not running in $NS_LB"
    kill -HUP "$pid"
    sleep 0.5
    log "$name is $state (config reloaded)"
}

cmd_status() {
    local up=0
    for ns in "${ALL_NS[@]}"; do [[ -e /run/netns/$ns ]] && up=$((up + 1)); done
    if ((up == 0)); then echo "lab: down"; return 0; fi
    echo "lab: $up/${#ALL_NS[@]} namespaces up; mode/driver/balancer: $(cat "$RUN_DIR/mode" 2>/dev/null || echo '?')"
    for ns in "${ALL_NS[@]}"; do
        [[ -e /run/netns/$ns ]] || { echo "  $ns: missing"; continue; }
        local addrs; addrs=$(nsx "$ns" ip -br addr show | awk '$1 != "lo" || NF > 3 {print "    " $0}')
        echo "  $ns: pids [$(ip netns pids "$ns" | tr '\n' ' ')]"
        echo "$addrs"
    done
    if [[ -e /run/netns/$NS_LB ]]; then
        nsx "$NS_LB" nft list ruleset 2>/dev/null | grep -q 'ip l4lb_lab' && echo "  nftables DNAT active in $NS_LB"
        nsx "$NS_LB" nft list ruleset 2>/dev/null | grep -q l4lb_afpacket && echo "  AF_PACKET ingress drop rule active in $NS_LB"
    fi
}

cmd_down() {
    local quiet=${1:-}
    for ns in "${ALL_NS[@]}"; do
        [[ -e /run/netns/$ns ]] || continue
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    done
    # Give l4lb time to drain and print its final counters (SIGTERM), then force.
    local left
    for _ in $(seq 30); do
        left=0
        for ns in "${ALL_NS[@]}"; do
            [[ -e /run/netns/$ns ]] && [[ -n $(ip netns pids "$ns" 2>/dev/null) ]] && left=1
        done
        ((left)) || break
        sleep 0.1
    done
    for ns in "${ALL_NS[@]}"; do
        [[ -e /run/netns/$ns ]] || continue
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    if [[ -z $quiet && -s $RUN_DIR/l4lb.log ]]; then
        log "l4lb's last words ($RUN_DIR/l4lb.log):"
        tail -n 15 "$RUN_DIR/l4lb.log" | sed 's/\x1b\[[0-9;]*m//g; s/^/  /'
    fi
    rm -rf "$RUN_DIR/states" "$RUN_DIR"/www-* "$RUN_DIR"/*.pid "$RUN_DIR"/*.log "$RUN_DIR"/*.pcap "$RUN_DIR"/*.out "$RUN_DIR/mode" \
        "$RUN_DIR/l4lb.toml" "$RUN_DIR/decap.bpf.o" 2>/dev/null || true
    [[ -n $quiet ]] || log "down"
}

case ${1:-} in
    up) shift; cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    curl) shift; cmd_curl "$@" ;;
    backend) shift; cmd_backend "$@" ;;
    *) echo "usage: $0 up [dnat|gre|ipip] [--driver af_packet|af_xdp] [--balancer auto|l4lb|nft|none] [--workers N] | curl [N] | backend beN up|down|drain | status | down" >&2; exit 2 ;;
esac
