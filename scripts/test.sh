#!/usr/bin/env bash
# Runs every l4lb test on a fresh Debian 12 machine: installs what it needs
# (apt packages, as root), builds every feature, runs unit, golden, replay,
# capture, DPDK and network-namespace tests. Root-only tests skip themselves,
# with a printed reason, when not run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(pkg-config clang llvm libclang-dev libbpf-dev libxdp-dev xdp-tools bpftool m4
      dpdk dpdk-dev libdpdk-dev tshark python3-scapy tcpdump iproute2 nftables iputils-ping curl python3 ethtool)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    elif command -v sudo >/dev/null; then
        sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "warning: cannot install ${missing[*]} (not root); tests needing them will skip"
    fi
fi

if [ "$(id -u)" -eq 0 ]; then
    mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
fi

FEATURES=""
if pkg-config --exists libdpdk 2>/dev/null; then FEATURES="dpdk"; fi
if command -v clang >/dev/null && [ -f /usr/include/bpf/bpf_helpers.h ]; then
    FEATURES="${FEATURES:+$FEATURES,}af_xdp"
fi

export CARGO_TERM_COLOR=never
echo "== cargo test (features: ${FEATURES:-none})"
if [ -n "$FEATURES" ]; then
    cargo test --workspace --features "controlplane/${FEATURES//,/ controlplane/}" -- --test-threads=2
else
    cargo test --workspace -- --test-threads=2
fi
