// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l4lb XDP front end: redirect into the AF_XDP sockets only what l4lb must
 * handle, pass everything else to the kernel.
 *
 * Redirected (to xsks[rx_queue_index]):
 *   - TCP/UDP whose (dst address, dst port, protocol) is a VIP (exact port, or
 *     the VIP's any-port entry, port 0), in map `vips`;
 *   - ICMP / ICMPv6 (except NDP and router messages) and fragments addressed to
 *     a VIP address, in map `vip_addrs`;
 *   - TCP/UDP whose (src address, src port, protocol) is a DNAT backend (the
 *     backend's replies), in map `dnat_backends`.
 * Passed: everything else (ARP, NDP, SSH, BGP, the host's own traffic), and
 * whatever would be redirected when no socket is bound on the RX queue.
 *
 * Keys hold addresses as 16 bytes: IPv6 as is, IPv4 as IPv4-mapped IPv6
 * (::ffff:a.b.c.d); ports in network byte order. The loader in
 * dataplane/src/port/af_xdp/ builds the same layout.
 *
 * IPv6 extension headers walked (at most 4): hop-by-hop, routing, destination
 * options, AH; a fragment header means "fragment".
 *
 * Frames may carry one 802.1Q (0x8100) or 802.1ad (0x88a8) tag.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_QUEUES 256
#define MAX_VIPS 4096
#define MAX_BACKENDS 65536
#define IPV6_EXT_MAX 4

struct addr_port_proto {
	__u8 addr[16];
	__be16 port; /* 0 in `vips` = any port */
	__u8 proto;
	__u8 pad;
};

struct addr_only {
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VIPS);
	__type(key, struct addr_port_proto);
	__type(value, __u32);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VIPS);
	__type(key, struct addr_only);
	__type(value, __u32);
} vip_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, struct addr_port_proto);
	__type(value, __u32);
} dnat_backends SEC(".maps");

/* Verdict counters, one slot per enum value below (read by the loader). */
enum verdict {
	V_PASS_NOT_IP = 0,   /* ARP, LLDP, unknown ethertypes */
	V_PASS_NO_MATCH,     /* IP, but not for l4lb */
	V_PASS_MALFORMED,    /* truncated headers: the kernel decides */
	V_PASS_NO_SOCKET,    /* for l4lb, but no socket on this queue */
	V_REDIRECT_VIP,      /* TCP/UDP to a VIP */
	V_REDIRECT_VIP_ADDR, /* ICMP or fragment to a VIP address */
	V_REDIRECT_DNAT,     /* reply from a DNAT backend */
	V_REDIRECT_FAILED,   /* bpf_redirect_map refused */
	V_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, V_MAX);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

static __always_inline void count(__u32 v)
{
	__u64 *c = bpf_map_lookup_elem(&verdicts, &v);
	if (c)
		*c += 1;
}

static __always_inline int pass(__u32 v)
{
	count(v);
	return XDP_PASS;
}

static __always_inline int redirect(struct xdp_md *ctx, __u32 v)
{
	__u32 q = ctx->rx_queue_index;
	if (!bpf_map_lookup_elem(&xsks, &q))
		return pass(V_PASS_NO_SOCKET);
	int rc = bpf_redirect_map(&xsks, q, XDP_PASS);
	count(rc == XDP_REDIRECT ? v : V_REDIRECT_FAILED);
	return rc;
}

static __always_inline void map_v4(__u8 *dst, __be32 a)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &a, 4);
}

/* TCP/UDP: VIP (exact port, then any port), then DNAT backend reply. */
static __always_inline int l4_lookup(struct xdp_md *ctx, const __u8 *saddr16, const __u8 *daddr16,
				     void *l4, void *data_end, __u8 proto)
{
	struct addr_port_proto k = {};
	__be16 *ports = l4;

	if ((void *)(ports + 2) > data_end)
		return pass(V_PASS_MALFORMED);
	__builtin_memcpy(k.addr, daddr16, 16);
	k.proto = proto;
	k.port = ports[1];
	if (bpf_map_lookup_elem(&vips, &k))
		return redirect(ctx, V_REDIRECT_VIP);
	k.port = 0;
	if (bpf_map_lookup_elem(&vips, &k))
		return redirect(ctx, V_REDIRECT_VIP);
	__builtin_memcpy(k.addr, saddr16, 16);
	k.port = ports[0];
	if (bpf_map_lookup_elem(&dnat_backends, &k))
		return redirect(ctx, V_REDIRECT_DNAT);
	return pass(V_PASS_NO_MATCH);
}

static __always_inline int to_vip_addr(struct xdp_md *ctx, const __u8 *daddr16)
{
	struct addr_only a;

	__builtin_memcpy(a.addr, daddr16, 16);
	if (bpf_map_lookup_elem(&vip_addrs, &a))
		return redirect(ctx, V_REDIRECT_VIP_ADDR);
	return pass(V_PASS_NO_MATCH);
}

static __always_inline int handle_v4(struct xdp_md *ctx, void *l3, void *data_end)
{
	struct iphdr *ip = l3;
	__u8 s[16], d[16];

	if ((void *)(ip + 1) > data_end || ip->ihl < 5)
		return pass(V_PASS_MALFORMED);
	map_v4(s, ip->saddr);
	map_v4(d, ip->daddr);
	/* Fragments (MF set or offset non-zero) carry ports only in the first one. */
	if (ip->frag_off & bpf_htons(0x3fff))
		return to_vip_addr(ctx, d);
	void *l4 = l3 + ip->ihl * 4;
	switch (ip->protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		return l4_lookup(ctx, s, d, l4, data_end, ip->protocol);
	case IPPROTO_ICMP:
		return to_vip_addr(ctx, d);
	default:
		return pass(V_PASS_NO_MATCH);
	}
}

struct ext_hdr {
	__u8 next;
	__u8 len;
};

static __always_inline int handle_v6(struct xdp_md *ctx, void *l3, void *data_end)
{
	struct ipv6hdr *ip6 = l3;

	if ((void *)(ip6 + 1) > data_end)
		return pass(V_PASS_MALFORMED);
	__u8 *s = ip6->saddr.in6_u.u6_addr8;
	__u8 *d = ip6->daddr.in6_u.u6_addr8;
	__u8 next = ip6->nexthdr;
	void *p = ip6 + 1;

#pragma unroll
	for (int i = 0; i < IPV6_EXT_MAX; i++) {
		struct ext_hdr *e = p;
		switch (next) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			if ((void *)(e + 1) > data_end)
				return pass(V_PASS_MALFORMED);
			next = e->next;
			p += (e->len + 1) * 8;
			break;
		case IPPROTO_AH: /* length in 4-byte units, minus 2 */
			if ((void *)(e + 1) > data_end)
				return pass(V_PASS_MALFORMED);
			next = e->next;
			p += (e->len + 2) * 4;
			break;
		case IPPROTO_FRAGMENT:
			return to_vip_addr(ctx, d);
		default:
			goto upper;
		}
	}
upper:
	switch (next) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		return l4_lookup(ctx, s, d, p, data_end, next);
	case IPPROTO_ICMPV6: {
		__u8 *type = p;
		if ((void *)(type + 1) > data_end)
			return pass(V_PASS_MALFORMED);
		/* Router/neighbour discovery (133..137) always goes to the kernel. */
		if (*type >= 133 && *type <= 137)
			return pass(V_PASS_NO_MATCH);
		return to_vip_addr(ctx, d);
	}
	default:
		return pass(V_PASS_NO_MATCH);
	}
}

SEC("xdp")
int l4lb_redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3 = eth + 1;

	if (l3 > data_end)
		return pass(V_PASS_MALFORMED);
	__be16 type = eth->h_proto;
	if (type == bpf_htons(ETH_P_8021Q) || type == bpf_htons(ETH_P_8021AD)) {
		__be16 *tag = l3; /* TCI, then the encapsulated ethertype */
		if ((void *)(tag + 2) > data_end)
			return pass(V_PASS_MALFORMED);
		type = tag[1];
		l3 = tag + 2;
	}
	if (type == bpf_htons(ETH_P_IP))
		return handle_v4(ctx, l3, data_end);
	if (type == bpf_htons(ETH_P_IPV6))
		return handle_v6(ctx, l3, data_end);
	return pass(V_PASS_NOT_IP);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
