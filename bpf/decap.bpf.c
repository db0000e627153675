// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l4lb backend-side decapsulation companion.
 *
 * For l4lb's GRE and IPIP direct-server-return modes the backend receives the
 * client's packet inside an outer IPv4/IPv6 header (+ GRE). Where the kernel has
 * no GRE/IPIP tunnel devices (or you do not want them), this XDP program strips
 * the outer header in place with bpf_xdp_adjust_head, so the backend's stack sees
 * the client's packet to the VIP (configured on the backend's loopback) and
 * answers the client directly from the VIP.
 *
 * Decapsulated: outer IPv4 (not fragmented) or IPv6 (no extension headers) whose
 * protocol is
 *   47 GRE   (version 0, no routing bit; checksum/key/sequence fields skipped),
 *            protocol type 0x0800 or 0x86DD,
 *   4  IPIP  (IPv4 in IP),
 *   41 IPv6 in IP;
 * the inner header's version must match. The Ethernet type (behind at most one
 * VLAN tag) is rewritten for the inner family. Everything else passes untouched.
 * Optionally (maps below, filled by the Rust loader or bpftool) only packets to
 * this host's tunnel endpoint addresses and/or from the load balancers.
 *
 * Load with iproute2:  ip link set dev eth0 xdpgeneric obj decap.bpf.o sec xdp
 * (or `xdp` for native mode where the driver has it); unload with
 * `ip link set dev eth0 xdpgeneric off`.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define GRE_CSUM 0x8000
#define GRE_ROUTING 0x4000
#define GRE_KEY 0x2000
#define GRE_SEQ 0x1000
#define GRE_VERSION 0x0007

enum decap_counter {
	D_PASS = 0,  /* not a tunnel packet we handle */
	D_GRE,       /* GRE decapsulated */
	D_IPIP,      /* IPv4-in-IP decapsulated */
	D_IP6IP,     /* IPv6-in-IP decapsulated */
	D_FAILED,    /* bpf_xdp_adjust_head refused: passed as is */
	D_FILTERED,  /* tunnel packet not for one of our endpoints / not from an allowed source */
	D_MAX,
};

/*
 * Optional filters, off when loaded by iproute2 (every map empty):
 * decap_config[0] bit 0: decapsulate only if the outer destination is in decap_dsts
 * (this host's tunnel endpoint addresses); bit 1: only if the outer source is in
 * decap_srcs (the load balancers). Addresses as 16 bytes, IPv4 as ::ffff:a.b.c.d.
 */
#define CHECK_DST 1
#define CHECK_SRC 2

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} decap_config SEC(".maps");

struct addr16 {
	__u8 a[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct addr16);
	__type(value, __u32);
} decap_dsts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct addr16);
	__type(value, __u32);
} decap_srcs SEC(".maps");

static __always_inline void map_v4(struct addr16 *k, __be32 a)
{
	__builtin_memset(k->a, 0, 10);
	k->a[10] = 0xff;
	k->a[11] = 0xff;
	__builtin_memcpy(k->a + 12, &a, 4);
}

/* Whether the configured filters accept this outer (src, dst). */
static __always_inline int endpoints_allowed(struct addr16 *src, struct addr16 *dst)
{
	__u32 zero = 0;
	__u32 *cfg = bpf_map_lookup_elem(&decap_config, &zero);
	__u32 flags = cfg ? *cfg : 0;

	if ((flags & CHECK_DST) && !bpf_map_lookup_elem(&decap_dsts, dst))
		return 0;
	if ((flags & CHECK_SRC) && !bpf_map_lookup_elem(&decap_srcs, src))
		return 0;
	return 1;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, D_MAX);
	__type(key, __u32);
	__type(value, __u64);
} decap_stats SEC(".maps");

static __always_inline int count(__u32 c, int verdict)
{
	__u64 *v = bpf_map_lookup_elem(&decap_stats, &c);
	if (v)
		*v += 1;
	return verdict;
}

struct grehdr {
	__be16 flags;
	__be16 protocol;
};

SEC("xdp")
int l4lb_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 l2_len = sizeof(struct ethhdr);
	__u8 l2[ETH_HLEN + 4];

	if ((void *)(eth + 1) > data_end)
		return count(D_PASS, XDP_PASS);
	__be16 type = eth->h_proto;
	if (type == bpf_htons(ETH_P_8021Q) || type == bpf_htons(ETH_P_8021AD)) {
		__be16 *tag = (void *)(eth + 1);
		if ((void *)(tag + 2) > data_end)
			return count(D_PASS, XDP_PASS);
		type = tag[1];
		l2_len += 4;
	}

	void *l3 = data + l2_len;
	__u32 outer_len;
	__u8 proto;
	struct addr16 osrc, odst;
	if (type == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > data_end || ip->ihl < 5 || ip->version != 4)
			return count(D_PASS, XDP_PASS);
		if (ip->frag_off & bpf_htons(0x3fff))
			return count(D_PASS, XDP_PASS); /* outer fragment: not ours to reassemble */
		outer_len = ip->ihl * 4;
		proto = ip->protocol;
		map_v4(&osrc, ip->saddr);
		map_v4(&odst, ip->daddr);
	} else if (type == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return count(D_PASS, XDP_PASS);
		outer_len = sizeof(*ip6);
		proto = ip6->nexthdr;
		__builtin_memcpy(osrc.a, &ip6->saddr, 16);
		__builtin_memcpy(odst.a, &ip6->daddr, 16);
	} else {
		return count(D_PASS, XDP_PASS);
	}
	if (outer_len > 60)
		return count(D_PASS, XDP_PASS);

	__u32 strip = outer_len;
	__u8 inner_version;
	__u32 counter;
	switch (proto) {
	case IPPROTO_GRE: {
		struct grehdr *gre = l3 + outer_len;
		if ((void *)(gre + 1) > data_end)
			return count(D_PASS, XDP_PASS);
		__u16 flags = bpf_ntohs(gre->flags);
		if (flags & (GRE_ROUTING | GRE_VERSION))
			return count(D_PASS, XDP_PASS);
		if (gre->protocol == bpf_htons(ETH_P_IP))
			inner_version = 4;
		else if (gre->protocol == bpf_htons(ETH_P_IPV6))
			inner_version = 6;
		else
			return count(D_PASS, XDP_PASS);
		strip += sizeof(*gre);
		if (flags & GRE_CSUM)
			strip += 4;
		if (flags & GRE_KEY)
			strip += 4;
		if (flags & GRE_SEQ)
			strip += 4;
		counter = D_GRE;
		break;
	}
	case IPPROTO_IPIP:
		inner_version = 4;
		counter = D_IPIP;
		break;
	case IPPROTO_IPV6:
		inner_version = 6;
		counter = D_IP6IP;
		break;
	default:
		return count(D_PASS, XDP_PASS);
	}

	if (!endpoints_allowed(&osrc, &odst))
		return count(D_FILTERED, XDP_PASS);

	/* The inner header must be there and be of the announced family. */
	__u8 *inner = l3 + strip;
	if ((void *)(inner + 1) > data_end || (*inner >> 4) != inner_version)
		return count(D_PASS, XDP_PASS);

	/* Keep the L2 header, drop the outer L3 (+GRE), put the L2 header back in front. */
	if (l2_len == ETH_HLEN)
		__builtin_memcpy(l2, data, ETH_HLEN);
	else if (data + ETH_HLEN + 4 <= data_end)
		__builtin_memcpy(l2, data, ETH_HLEN + 4);
	else
		return count(D_PASS, XDP_PASS);

	if (bpf_xdp_adjust_head(ctx, (int)strip))
		return count(D_FAILED, XDP_PASS);

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	__be16 new_type = bpf_htons(inner_version == 4 ? ETH_P_IP : ETH_P_IPV6);
	if (l2_len == ETH_HLEN) {
		if (data + ETH_HLEN > data_end)
			return count(D_FAILED, XDP_DROP);
		__builtin_memcpy(data, l2, ETH_HLEN);
		((struct ethhdr *)data)->h_proto = new_type;
	} else {
		if (data + ETH_HLEN + 4 > data_end)
			return count(D_FAILED, XDP_DROP);
		__builtin_memcpy(data, l2, ETH_HLEN + 4);
		*(__be16 *)(data + ETH_HLEN + 2) = new_type;
	}
	return count(counter, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
