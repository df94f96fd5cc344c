/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tunnel encapsulation for the XDP fast path (bpf/xdp.c): IP-in-IP, GUE and GRE, each with
 * an IPv4 or IPv6 outer header, built exactly as the userspace plane builds them
 * (crates/packet/src/tunnel.rs, `encapsulate`), so a flow's packets are the same bytes
 * whichever path sends them — but for the outer IPv4 identification, which is the kernel's
 * per-packet random number here and a counter there (receivers read it only to reassemble).
 *
 * The checksum options: GUE with `--tun-csum` or `--tun-remcsum` gets the outer UDP checksum
 * (pseudo-header, UDP and GUE headers, the whole inner packet), GRE with `--tun-csum` the C bit
 * and the RFC 2784 checksum (GRE header and inner packet). Those sums cover every byte of the
 * inner packet, which the program reads in 512-byte chunks into a per-CPU scratch buffer
 * (bpf_xdp_load_bytes) and sums with bpf_csum_diff: exact whatever the inner checksum holds.
 * `--tun-remcsum` adds its GUE option only to a packet whose inner checksum is partial, and
 * such a packet never gets here (xdp.c passes it to userspace, which completes it), so it
 * sends what `--tun-csum` sends.
 *
 * Included by xdp.c after its helpers (get16, fold, ipv4_csum, struct parsed). */
#ifndef RVS_ENCAP_H
#define RVS_ENCAP_H

#define RVS_CSUM_CHUNK 512
/* Chunks summed at most: 18 * 512 = 9216 bytes, a jumbo frame. */
#define RVS_CSUM_MAX_CHUNKS 18

/* Twice the chunk, so that a length masked with RVS_CSUM_MASK is provably inside. */
struct rvs_csum_scratch {
	__u8 b[2 * RVS_CSUM_CHUNK];
};
#define RVS_CSUM_MASK (2 * RVS_CSUM_CHUNK - 1)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rvs_csum_scratch);
} rvs_csum_scratch SEC(".maps");

enum rvs_encap_result {
	RVS_ENCAP_OK = 0,        /* encapsulated, MACs still to write */
	RVS_ENCAP_UNTOUCHED = 1, /* not done, packet as it was: userspace */
	RVS_ENCAP_BROKEN = 2,    /* failed after changing the packet: abort */
};

/* Adds to *acc (host-order 16-bit words, unfolded) the ones' complement sum of the `len`
 * bytes at offset `off` of the packet, zero-padded to an even length. 0, or -1 on failure. */
static __always_inline int sum_packet(struct xdp_md *ctx, __u32 off, __u32 len, __u64 *acc)
{
	__u32 zero = 0;
	struct rvs_csum_scratch *sb = bpf_map_lookup_elem(&rvs_csum_scratch, &zero);
	if (!sb)
		return -1;
	/* bpf_csum_diff sums memory as the CPU loads it; the sum's byte order is fixed once,
	 * at the end (a ones' complement sum commutes with swapping bytes). Every chunk starts
	 * at an even offset, so the order is the same for all of them. */
	__u32 s = 0;
#pragma clang loop unroll(disable)
	for (int i = 0; i < RVS_CSUM_MAX_CHUNKS; i++) {
		if (len == 0)
			break;
		__u64 n = len < RVS_CSUM_CHUNK ? len : RVS_CSUM_CHUNK;
		/* Bound n where the verifier sees it (clang would drop a plain mask it can
		 * prove redundant, and hand the helper the unbounded len instead). */
		asm volatile("%0 &= 0x3ff" : "+r"(n));
		if (n == 0)
			return -1;
		if (bpf_xdp_load_bytes(ctx, off, sb->b, n))
			return -1;
		/* bpf_csum_diff takes whole 4-byte words: zero the (at most 3) bytes after the
		 * last chunk's end. Only the last chunk can end off a word. */
		__u64 w = (n + 3) & ~3ull;
#pragma unroll
		for (__u64 k = 0; k < 3; k++)
			if (n + k < w)
				sb->b[(n + k) & RVS_CSUM_MASK] = 0;
		w &= RVS_CSUM_MASK;
		long r = bpf_csum_diff(0, 0, (__be32 *)sb->b, w, s);
		if (r < 0)
			return -1;
		s = (__u32)r;
		off += n;
		len -= n;
	}
	if (len != 0)
		return -1;
	*acc += bpf_ntohs(fold(s));
	return 0;
}

/* The outer headers of a tunnel, written in front of the inner packet (already in place
 * after the Ethernet header's room). `v6` is a constant at each call, so every offset is. */
static __always_inline int write_outer(struct xdp_md *ctx, const int v6, __u8 op, __u8 flags,
				       const struct parsed *p, __u8 ttl, const __u8 *osrc,
				       const __u8 *odst, __be16 gue_sport, __be16 gue_port)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	const int ip_len = v6 ? 40 : 20;
	const __u32 l4_off = sizeof(struct ethhdr) + ip_len;
	__u8 *o = data + sizeof(struct ethhdr);
	__u8 *t = o + ip_len;
	/* The inner packet has at least 28 bytes, more than the 12 the GUE headers take. */
	if ((void *)(t + 12) > end)
		return RVS_ENCAP_BROKEN;
	int csum = (flags & RVS_F_TUN_CSUM) != 0;
	__u32 extra = op == RVS_OP_GUE ? 12 : op == RVS_OP_GRE ? (csum ? 8 : 4) : 0;
	__u32 l3_len = p->l3_len;
	__u8 inner_proto = p->v6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
	__u8 next = op == RVS_OP_GUE ? IPPROTO_UDP : op == RVS_OP_GRE ? IPPROTO_GRE : inner_proto;
	/* INET_ECN_encapsulate: DSCP copied, CE becomes ECT(0), other ECN codepoints copied. */
	__u8 ecn = p->tos & 3;
	__u8 tos = (p->tos & ~3) | (ecn == 3 ? 2 : ecn);

	if (v6) {
		__u16 plen = extra + l3_len;
		o[0] = 0x60 | (tos >> 4);
		o[1] = (tos & 0xf) << 4;
		o[2] = 0;
		o[3] = 0;
		o[4] = plen >> 8;
		o[5] = plen & 0xff;
		o[6] = next;
		o[7] = ttl;
		__builtin_memcpy(o + 8, osrc, 16);
		__builtin_memcpy(o + 24, odst, 16);
	} else {
		__u16 tot = 20 + extra + l3_len;
		__u16 id = bpf_get_prandom_u32();
		int df = !p->v6 && (flags & RVS_F_PMTU_DISC) && p->df;
		o[0] = 0x45;
		o[1] = tos;
		o[2] = tot >> 8;
		o[3] = tot & 0xff;
		o[4] = id >> 8;
		o[5] = id & 0xff;
		o[6] = df ? 0x40 : 0;
		o[7] = 0;
		o[8] = ttl;
		o[9] = next;
		o[10] = 0;
		o[11] = 0;
		__builtin_memcpy(o + 12, osrc, 4);
		__builtin_memcpy(o + 16, odst, 4);
		__u16 h = ipv4_csum(o);
		o[10] = h >> 8;
		o[11] = h & 0xff;
	}

	if (op == RVS_OP_GUE) {
		__u32 ulen = 12 + l3_len;
		__builtin_memcpy(t, &gue_sport, 2);
		__builtin_memcpy(t + 2, &gue_port, 2);
		t[4] = ulen >> 8;
		t[5] = ulen & 0xff;
		t[6] = 0;
		t[7] = 0;
		/* GUE variant 0, no options: version 0, C 0, hlen 0, protocol, flags 0. */
		t[8] = 0;
		t[9] = inner_proto;
		t[10] = 0;
		t[11] = 0;
		if (csum) {
			__u64 acc = IPPROTO_UDP + ulen;
			const int words = v6 ? 8 : 2;
#pragma unroll
			for (int i = 0; i < 8; i++) {
				if (i >= words)
					break;
				acc += get16(osrc + 2 * i);
				acc += get16(odst + 2 * i);
			}
			if (sum_packet(ctx, l4_off, ulen, &acc))
				return RVS_ENCAP_BROKEN;
			__u16 c = ~fold(acc);
			if (c == 0)
				c = 0xffff;
			data = (void *)(long)ctx->data;
			end = (void *)(long)ctx->data_end;
			t = data + l4_off;
			if ((void *)(t + 8) > end)
				return RVS_ENCAP_BROKEN;
			t[6] = c >> 8;
			t[7] = c & 0xff;
		}
	} else if (op == RVS_OP_GRE) {
		t[0] = csum ? 0x80 : 0;
		t[1] = 0;
		t[2] = p->v6 ? 0x86 : 0x08;
		t[3] = p->v6 ? 0xdd : 0x00;
		if (csum) {
			t[4] = 0;
			t[5] = 0;
			t[6] = 0;
			t[7] = 0;
			__u64 acc = 0;
			if (sum_packet(ctx, l4_off, 8 + l3_len, &acc))
				return RVS_ENCAP_BROKEN;
			__u16 c = ~fold(acc);
			data = (void *)(long)ctx->data;
			end = (void *)(long)ctx->data_end;
			t = data + l4_off;
			if ((void *)(t + 8) > end)
				return RVS_ENCAP_BROKEN;
			t[4] = c >> 8;
			t[5] = c & 0xff;
		}
	}
	return RVS_ENCAP_OK;
}

/* Encapsulates the packet `p` for the entry's tunnel: the inner TTL decremented (the inner
 * packet is forwarded), Ethernet padding trimmed, the outer headers pushed in front. The
 * Ethernet addresses are the caller's to write. */
static __always_inline int encapsulate(struct xdp_md *ctx, const struct parsed *p, __u8 op,
				       __u8 flags, const __u8 *osrc, const __u8 *odst,
				       __be16 gue_sport, __be16 gue_port)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	int outer_v6 = (flags & RVS_F_OUTER_V6) != 0;
	int csum = (flags & RVS_F_TUN_CSUM) != 0;
	int extra = op == RVS_OP_GUE ? 12 : op == RVS_OP_GRE ? (csum ? 8 : 4) : 0;
	int hdr = (outer_v6 ? 40 : 20) + extra;
	__u8 *ip = data + sizeof(struct ethhdr);
	__u8 ttl = p->ttl - 1;
	if (p->v6) {
		if ((void *)(ip + 40) > end)
			return RVS_ENCAP_UNTOUCHED;
		ip[7] = ttl;
	} else {
		if ((void *)(ip + 20) > end)
			return RVS_ENCAP_UNTOUCHED;
		ip[8] = ttl;
		ip[10] = 0;
		ip[11] = 0;
		__u16 h = ipv4_csum(ip);
		ip[10] = h >> 8;
		ip[11] = h & 0xff;
	}
	/* Ethernet padding after the inner packet goes. */
	int pad = (int)((long)end - (long)data) - (int)(p->l3_off + p->l3_len);
	if (pad > 0 && bpf_xdp_adjust_tail(ctx, -pad))
		return RVS_ENCAP_BROKEN;
	if (bpf_xdp_adjust_head(ctx, -hdr))
		return RVS_ENCAP_BROKEN;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	struct ethhdr *oeth = data;
	if ((void *)(oeth + 1) > end)
		return RVS_ENCAP_BROKEN;
	oeth->h_proto = outer_v6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);
	if (outer_v6)
		return write_outer(ctx, 1, op, flags, p, ttl, osrc, odst, gue_sport, gue_port);
	return write_outer(ctx, 0, op, flags, p, ttl, osrc, odst, gue_sport, gue_port);
}

#endif
