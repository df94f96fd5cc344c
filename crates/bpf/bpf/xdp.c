// SPDX-License-Identifier: GPL-2.0-or-later
/* The packet plane's XDP fast path (docs/internals/packet-plane.md#the-xdp-fast-path).
 *
 * Forwards the packets of connections rvsd already has, without leaving the kernel: it looks
 * the packet's 5-tuple up in rvs_flows (an entry per direction, installed by rvsd once
 * rvs-core has the connection established) and applies the entry's precomputed rewrite:
 * NAT (either direction), FULLNAT (either direction), DR, or a tunnel (IP-in-IP, GUE, GRE:
 * encap.h), with the
 * TTL decrement, incremental transport checksums, a recomputed IPv4 header checksum and the
 * next hop's MACs, then XDP_TX or XDP_REDIRECT through rvs_xdp_ports.
 *
 * Only frames addressed to the receiving interface's MAC (or broadcast / multicast) are the
 * director's: a unicast frame for another host's MAC is passed untouched, as the kernel drops
 * it (PACKET_OTHERHOST).
 *
 * It never schedules and never changes a connection's state: TCP SYN/FIN/RST, ICMP, fragments,
 * IPv4 options, IPv6 extension headers, UDP without checksum, packets that would expire (TTL
 * <= 1) or exceed the entry's MTU, and everything unknown go untouched to the userspace path,
 * which sees exactly what it would have seen without this program: through the AF_XDP socket
 * of the receive queue (rvs_xsks) when rvsd registered one and the packet is one rvsd handles
 * (rvs_take), else XDP_PASS to the host stack, where rvsd's AF_PACKET tap sees it. */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "rvs_xdp.h"
#include "syn_answer.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__type(key, struct rvs_flow_key);
	__type(value, struct rvs_flow);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} rvs_flows SEC(".maps");

/* The plane's interfaces, by ifindex, for XDP_REDIRECT. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} rvs_xdp_ports SEC(".maps");

/* The MAC of each interface the program is attached to, by ifindex: written by the loader
 * before it attaches (rvs_bpf::xdp::FastPath::attach), so the program never runs on an
 * interface without one. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct rvs_port_mac);
} rvs_port_macs SEC(".maps");

/* The slow path's AF_XDP sockets, at slot * RVS_XSK_QUEUES + rx queue. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, RVS_XSK_SLOTS * RVS_XSK_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} rvs_xsks SEC(".maps");

/* An interface's slot in rvs_xsks, by ifindex; no entry: no XSK on that interface. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RVS_XSK_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} rvs_xsk_slots SEC(".maps");

/* What the userspace plane takes (see rvs_xdp.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 16);
	__type(key, struct rvs_take_key);
	__type(value, struct rvs_take_val);
} rvs_take SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RVS_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} rvs_xdp_stats SEC(".maps");

static __always_inline int count(__u32 stat, int verdict)
{
	__u64 *n = bpf_map_lookup_elem(&rvs_xdp_stats, &stat);
	if (n)
		*n += 1;
	return verdict;
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) |
		(a[5] ^ b[5])) == 0;
}

/* Whether a unicast destination MAC is the receiving interface's own. An interface with no
 * registered MAC has none: nothing is for it (the loader registers one before attaching). */
static __always_inline int own_mac(const struct xdp_md *ctx, const __u8 *dst)
{
	__u32 ifindex = ctx->ingress_ifindex;
	const struct rvs_port_mac *m = bpf_map_lookup_elem(&rvs_port_macs, &ifindex);
	return m && mac_eq(dst, m->mac);
}

static __always_inline __u16 get16(const __u8 *b)
{
	return ((__u16)b[0] << 8) | b[1];
}

static __always_inline __u16 fold(__u64 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* RFC 1624 eqn. 3 over n changed 16-bit words (host-order checksum value). */
static __always_inline __u64 diff_acc(__u64 acc, const __u8 *old, const __u8 *new, int n)
{
#pragma unroll
	for (int i = 0; i < 8; i++) {
		if (i >= n)
			break;
		acc += (__u16)~get16(old + 2 * i);
		acc += get16(new + 2 * i);
	}
	return acc;
}

/* The IPv4 header checksum of a 20-byte header whose checksum field is zero. */
static __always_inline __u16 ipv4_csum(const __u8 *h)
{
	__u64 s = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		s += get16(h + 2 * i);
	return ~fold(s);
}

static __always_inline int take_has(struct rvs_take_key *k, const __u8 *addr, __be16 port,
				    __u8 proto, __u8 kind)
{
	__builtin_memcpy(k->addr, addr, 16);
	k->port = port;
	k->proto = proto;
	k->kind = kind;
	return bpf_map_lookup_elem(&rvs_take, k) != 0;
}

/* Whether rvsd's userspace plane handles this packet (rvs_take: the nft guard's rules). */
static __always_inline int taken(const struct rvs_flow_key *fk)
{
	struct rvs_take_key k = {};
	k.family = fk->family;
	if (take_has(&k, fk->daddr, 0, 0, RVS_TAKE_VIP_ADDR))
		return 1;
	if (take_has(&k, fk->daddr, fk->dport, fk->proto, RVS_TAKE_VIP_SVC))
		return 1;
	__builtin_memcpy(k.addr, fk->daddr, 16);
	k.port = 0;
	k.proto = fk->proto;
	k.kind = RVS_TAKE_LPORT;
	struct rvs_take_val *r = bpf_map_lookup_elem(&rvs_take, &k);
	if (r) {
		__u16 port = bpf_ntohs(fk->dport);
#pragma unroll
		for (int i = 0; i < RVS_TAKE_RANGES; i++)
			if (r->lo[i] <= port && port <= r->hi[i])
				return 1;
	}
	if (take_has(&k, fk->daddr, 0, 0, RVS_TAKE_KEEP))
		return 0;
	if (take_has(&k, fk->saddr, 0, 0, RVS_TAKE_RS_ADDR))
		return 1;
	return take_has(&k, fk->saddr, fk->sport, fk->proto, RVS_TAKE_RS_SVC);
}

/* A packet this program does not forward: to the slow path's XSK of its receive queue when
 * rvsd handles it and the XSK exists, else to the host stack (and rvsd's AF_PACKET tap). */
static __always_inline int slow_path(struct xdp_md *ctx, const struct rvs_flow_key *fk,
				     __u32 stat)
{
	long len = (long)ctx->data_end - (long)ctx->data;
	if (len > RVS_XSK_MAX_FRAME || !taken(fk))
		return count(stat, XDP_PASS);
	/* Another host's frame is not the slow path's either (the AF_PACKET worker ignores it). */
	const __u8 *dst = (const __u8 *)(long)ctx->data;
	if ((void *)(dst + 6) > (void *)(long)ctx->data_end)
		return count(stat, XDP_PASS);
	if (!(dst[0] & 1) && !own_mac(ctx, dst))
		return count(RVS_STAT_PASS_OTHERHOST, XDP_PASS);
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 *slot = bpf_map_lookup_elem(&rvs_xsk_slots, &ifindex);
	if (!slot || *slot >= RVS_XSK_SLOTS || ctx->rx_queue_index >= RVS_XSK_QUEUES)
		return count(stat, XDP_PASS);
	__u32 at = *slot * RVS_XSK_QUEUES + ctx->rx_queue_index;
	/* No socket at that index: the lower bits of the flags are the verdict, XDP_PASS. */
	if (bpf_redirect_map(&rvs_xsks, at, XDP_PASS) == XDP_REDIRECT)
		return count(RVS_STAT_XSK, XDP_REDIRECT);
	return count(stat, XDP_PASS);
}

struct parsed {
	__u32 l3_len;   /* IP total length */
	__u32 l3_off;   /* offset of the IP header */
	__u8 v6;
	__u8 proto;
	__u8 ttl;
	__u8 tos;
	__u8 df;
};

/* True when the TCP/UDP checksum field holds only the folded pseudo-header sum: a packet
 * handed over with CHECKSUM_PARTIAL (a local sender on a veth, seen by generic XDP), whose
 * checksum a device or the stack was still to complete. XDP has no access to the skb's
 * ip_summed; this is its signature in the bytes. */
static __always_inline int partial_csum(const struct rvs_flow_key *k, const struct parsed *p,
					const __u8 *l4, void *end)
{
	__u16 field;
	if (p->proto == IPPROTO_TCP) {
		if ((void *)(l4 + 18) > end)
			return 0;
		field = get16(l4 + 16);
	} else {
		if ((void *)(l4 + 8) > end)
			return 0;
		field = get16(l4 + 6);
	}
	__u64 s = p->proto + (p->l3_len - (p->v6 ? 40 : 20));
	int words = p->v6 ? 8 : 2;
#pragma unroll
	for (int i = 0; i < 8; i++) {
		if (i >= words)
			break;
		s += get16(k->saddr + 2 * i);
		s += get16(k->daddr + 2 * i);
	}
	__u16 f = fold(s);
	return field == f || (f == 0xffff && field == 0);
}

/* NAT / FULLNAT / DR in place. `v6` is a constant at each call, so every offset below is one
 * and the verifier sees each access checked. Returns 0 (untouched) when the packet is shorter
 * than the headers it needs. */
static __always_inline int rewrite(void *data, void *end, const struct parsed *p, const int v6,
				   __u8 flags, const __u8 *naddr_s, const __u8 *naddr_d,
				   __be16 nsport, __be16 ndport)
{
	const int hlen = v6 ? 40 : 20;
	const int alen = v6 ? 16 : 4;
	const int csum_at = p->proto == IPPROTO_TCP ? 16 : 6;
	__u8 *ip = data + sizeof(struct ethhdr);
	__u8 *l4 = ip + hlen;
	if ((void *)(l4 + 18) > end && p->proto == IPPROTO_TCP)
		return 0;
	if ((void *)(l4 + 8) > end)
		return 0;
	__u8 *sa = v6 ? ip + 8 : ip + 12;
	__u8 *da = v6 ? ip + 24 : ip + 16;
	__u8 *csum = l4 + csum_at;
	if ((void *)(csum + 2) > end)
		return 0;
	__u64 acc = (__u16)~get16(csum);
	if (flags & RVS_F_SRC) {
		acc = diff_acc(acc, sa, naddr_s, alen / 2);
		acc = diff_acc(acc, l4, (const __u8 *)&nsport, 1);
	}
	if (flags & RVS_F_DST) {
		acc = diff_acc(acc, da, naddr_d, alen / 2);
		acc = diff_acc(acc, l4 + 2, (const __u8 *)&ndport, 1);
	}
	__u16 c = ~fold(acc);
	if (p->proto == IPPROTO_UDP && c == 0)
		c = 0xffff;
	if (flags & (RVS_F_SRC | RVS_F_DST)) {
		csum[0] = c >> 8;
		csum[1] = c & 0xff;
	}
	if (flags & RVS_F_SRC) {
		__builtin_memcpy(sa, naddr_s, alen);
		__builtin_memcpy(l4, &nsport, 2);
	}
	if (flags & RVS_F_DST) {
		__builtin_memcpy(da, naddr_d, alen);
		__builtin_memcpy(l4 + 2, &ndport, 2);
	}
	if (v6) {
		ip[7] -= 1;
	} else {
		ip[8] -= 1;
		ip[10] = 0;
		ip[11] = 0;
		__u16 h = ipv4_csum(ip);
		ip[10] = h >> 8;
		ip[11] = h & 0xff;
	}
	return 1;
}

#include "encap.h"

SEC("xdp")
int rvs_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct rvs_flow_key key = {};
	struct parsed p = {};
	__u8 *l4;

	if ((void *)(eth + 1) > end)
		return count(RVS_STAT_PASS_OTHER, XDP_PASS);
	/* A unicast frame for another host's MAC (the kernel's PACKET_OTHERHOST: a switch flooding
	 * an unknown unicast, a VRRP peer's MAC still in its table, a veth, which does not filter
	 * by MAC) is not this director's: the kernel drops it before IP sees it, IPVS never does,
	 * and rvsd's userspace plane ignores it. So it is neither forwarded nor answered here, nor
	 * sent to the slow path; the host stack gets it, to drop as it always does. Broadcast and
	 * multicast frames (ARP, ND) go on as before. The check (own_mac, a map look-up) is made
	 * only where the frame would otherwise be the director's: before a SYN answer, in
	 * slow_path, and after a flow entry is found — where the entry's ingress interface and MAC
	 * spare the look-up for the flow's own frames. A frame passed anyway is not looked at. */
	__u8 dst[6];
	__builtin_memcpy(dst, eth->h_dest, 6);
	const int unicast = !(dst[0] & 1);
	p.l3_off = sizeof(*eth);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return count(RVS_STAT_PASS_OTHER, XDP_PASS);
		/* Options, fragments: userspace. */
		if (ip->version != 4 || ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
			return count(RVS_STAT_PASS_OTHER, XDP_PASS);
		/* A bad header checksum is dropped and counted by userspace. */
		if (ipv4_csum((const __u8 *)ip) != 0)
			return count(RVS_STAT_PASS_OTHER, XDP_PASS);
		p.l3_len = bpf_ntohs(ip->tot_len);
		p.proto = ip->protocol;
		p.ttl = ip->ttl;
		p.tos = ip->tos;
		p.df = (ip->frag_off & bpf_htons(0x4000)) != 0;
		key.family = 4;
		__builtin_memcpy(key.saddr, &ip->saddr, 4);
		__builtin_memcpy(key.daddr, &ip->daddr, 4);
		l4 = (__u8 *)(ip + 1);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return count(RVS_STAT_PASS_OTHER, XDP_PASS);
		if (ip6->version != 6)
			return count(RVS_STAT_PASS_OTHER, XDP_PASS);
		p.v6 = 1;
		p.l3_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		/* Extension headers (fragments among them): userspace. */
		p.proto = ip6->nexthdr;
		p.ttl = ip6->hop_limit;
		p.tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
		key.family = 6;
		__builtin_memcpy(key.saddr, &ip6->saddr, 16);
		__builtin_memcpy(key.daddr, &ip6->daddr, 16);
		l4 = (__u8 *)(ip6 + 1);
	} else {
		return count(RVS_STAT_PASS_OTHER, XDP_PASS);
	}
	/* Truncated packets are userspace's to drop and count. */
	if (data + p.l3_off + p.l3_len > end || p.l3_len > 0xffff)
		return count(RVS_STAT_PASS_OTHER, XDP_PASS);

	key.proto = p.proto;
	if (p.proto == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)l4;
		if ((void *)(tcp + 1) > end)
			return count(RVS_STAT_PASS_OTHER, XDP_PASS);
		if (tcp->doff < 5)
			return count(RVS_STAT_PASS_OTHER, XDP_PASS);
		key.sport = tcp->source;
		key.dport = tcp->dest;
		if (tcp->syn || tcp->fin || tcp->rst) {
			if (unicast && !own_mac(ctx, dst))
				return count(RVS_STAT_PASS_OTHERHOST, XDP_PASS);
			/* A SYN to a SYN-proxied service: its cookie SYN-ACK from here (syn_answer.h). */
			int v = p.v6 ? -1 : rvs_syn_answer(ctx, p.l3_len);
			if (v >= 0)
				return v;
			return slow_path(ctx, &key, RVS_STAT_PASS_STATE);
		}
	} else if (p.proto == IPPROTO_UDP) {
		struct udphdr *udp = (void *)l4;
		if ((void *)(udp + 1) > end)
			return count(RVS_STAT_PASS_OTHER, XDP_PASS);
		key.sport = udp->source;
		key.dport = udp->dest;
		/* No checksum: NAT computes a full one in userspace. */
		if (udp->check == 0)
			return slow_path(ctx, &key, RVS_STAT_PASS_OTHER);
	} else {
		return count(RVS_STAT_PASS_OTHER, XDP_PASS);
	}

	struct rvs_flow *f = bpf_map_lookup_elem(&rvs_flows, &key);
	if (!f)
		return slow_path(ctx, &key, RVS_STAT_PASS_NOFLOW);
	/* The flow's frames at the MAC of the interface they come in on need no look-up. */
	if (unicast && !(f->in_ifindex == ctx->ingress_ifindex && mac_eq(dst, f->in_mac)) &&
	    !own_mac(ctx, dst))
		return count(RVS_STAT_PASS_OTHERHOST, XDP_PASS);
	/* Time exceeded, too big: userspace answers with the ICMP error. */
	if (p.ttl <= 1 || p.l3_len > f->max_len)
		return slow_path(ctx, &key, RVS_STAT_PASS_LIMIT);
	__u32 egress = f->ifindex;
	if (egress != ctx->ingress_ifindex && !bpf_map_lookup_elem(&rvs_xdp_ports, &egress))
		return slow_path(ctx, &key, RVS_STAT_PASS_LIMIT);

	/* Copy the entry's action: the packet pointers are re-derived after adjust_head. */
	__u8 op = f->op, flags = f->flags;
	__u8 dst_mac[6], src_mac[6], naddr_s[16], naddr_d[16];
	__be16 nsport = f->sport, ndport = f->dport;
	__builtin_memcpy(dst_mac, f->dst_mac, 6);
	__builtin_memcpy(src_mac, f->src_mac, 6);
	__builtin_memcpy(naddr_s, f->saddr, 16);
	__builtin_memcpy(naddr_d, f->daddr, 16);
	__u32 l3_len = p.l3_len;

	if (op == RVS_OP_REWRITE) {
		int ok = p.v6 ? rewrite(data, end, &p, 1, flags, naddr_s, naddr_d, nsport, ndport)
			      : rewrite(data, end, &p, 0, flags, naddr_s, naddr_d, nsport, ndport);
		if (!ok)
			return count(RVS_STAT_PASS_OTHER, XDP_PASS);
	} else if (op == RVS_OP_IPIP || op == RVS_OP_GUE || op == RVS_OP_GRE) {
		/* A partial checksum would reach the real server as it is: a kernel tunnel there
		 * keeps the skb's CHECKSUM_PARTIAL state only if the packet never left a veth, and
		 * anything that reads the bytes (a userspace decapsulator, a capture) sees a wrong
		 * checksum. Userspace completes it before encapsulating. */
		if (partial_csum(&key, &p, l4, end))
			return slow_path(ctx, &key, RVS_STAT_PASS_OTHER);
		int e = encapsulate(ctx, &p, op, flags, naddr_s, naddr_d, nsport, ndport);
		if (e == RVS_ENCAP_UNTOUCHED)
			return count(RVS_STAT_PASS_OTHER, XDP_PASS);
		if (e != RVS_ENCAP_OK)
			return count(RVS_STAT_PASS_OTHER, XDP_ABORTED);
	} else {
		return count(RVS_STAT_PASS_OTHER, XDP_PASS);
	}

	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	__builtin_memcpy(eth->h_dest, dst_mac, 6);
	__builtin_memcpy(eth->h_source, src_mac, 6);

	/* The entry may have been replaced since the lookup; the counters are in whichever
	 * value the pointer still holds, which rvsd reads back. */
	__sync_fetch_and_add(&f->packets, 1);
	__sync_fetch_and_add(&f->bytes, l3_len);
	/* The coarse clock: CLOCK_MONOTONIC as of the last tick (at most a few ms behind), read
	 * from memory. bpf_ktime_get_ns reads the clock source and was a sixth of the program's
	 * time for an established flow (benches/xdp_program.rs: 160 -> 133 ns per run, the
	 * kernel's timing of a run included); rvsd maps the time to rvs-core's millisecond clock
	 * for a timer of seconds to minutes. */
	f->last_seen_ns = bpf_ktime_get_coarse_ns();

	if (egress == ctx->ingress_ifindex)
		return count(RVS_STAT_TX, XDP_TX);
	return count(RVS_STAT_REDIRECT, bpf_redirect_map(&rvs_xdp_ports, egress, 0));
}
