// SPDX-License-Identifier: GPL-2.0-or-later
/* The benches' packet generator (bench/packet.sh, `rvs-lab trafficgen`; crates/bpf/src/trafficgen.rs).
 *
 * Run with BPF_PROG_TEST_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES): the kernel
 * hands the program a copy of a template frame (IPv4, no options, UDP or TCP) per repetition,
 * and an XDP_TX verdict sends it out of the interface named as the run's ingress, through that
 * driver's ndo_xdp_xmit (for a veth: straight into the peer's receive ring). No socket, no skb
 * on the sending side: a frame costs the generator's CPU tens of nanoseconds, so the receiver,
 * not the generator, is what a bench measures.
 *
 * Each frame gets the next value of a sequence (rvs_gen_seq, one writer: the run's CPU): as its
 * transport source port (a fixed set of flows, span = number of flows) or as its IPv4 source
 * address (span distinct sources: new connections, a SYN flood), with the checksums updated
 * by RFC 1624's HC' = ~(~HC + ~m + m') from sums precomputed over the template.
 *
 * The program first copies the whole template over the frame. A live frame's page comes back
 * to the run's page pool after the receiver is done with it — and the receiver rewrites
 * frames in place (a NAT director changes the destination, the TTL, the MACs): without the
 * copy, the next frame built on that page would carry the previous one's rewritten headers
 * (measured: about half the frames reached the director already addressed to a real
 * server).
 *
 * Pacing (rvs_gen_pace) is done here, in the kernel's loop, not by calling the kernel at a
 * rate: each live-frames BPF_PROG_TEST_RUN call ends with an RCU grace period when it tears
 * its page pool down (measured on this VM: 24-40 ms per call, whatever its size), so a caller
 * pacing with many small calls got about a thousand frames a second, and one flat out with
 * large calls delivered its frames in bursts of a few milliseconds with tens of milliseconds
 * of silence between them. rvs-lab makes ONE call for the whole run (a huge repetition count,
 * ended by a signal at the deadline), and when a rate is set the program drops (XDP_DROP: the
 * page goes straight back to the pool, a few tens of nanoseconds) every repetition that comes
 * before the next frame's due time. */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

/* Every frame is 60 bytes (64 with the FCS): Ethernet, IPv4, UDP with 18 bytes or a TCP SYN. */
#define RVS_GEN_LEN 60

/* What varies (mirror: crates/bpf/src/trafficgen.rs, struct Cfg). */
enum rvs_gen_mode {
	RVS_GEN_SPORT = 0,	/* the transport source port: base + seq % span */
	RVS_GEN_SADDR = 1,	/* the IPv4 source address: base + seq % span */
};

struct rvs_gen_cfg {
	__u32 mode;		/* enum rvs_gen_mode */
	__u32 span;		/* how many distinct values (0: the frame is sent as it is) */
	__u32 base;		/* first port or address, host order */
	__u32 l4_csum_off;	/* offset of the transport checksum in the frame */
	__u32 ip_sum;		/* ~IP header checksum, plus ~each varied word of the template */
	__u32 l4_sum;		/* ~transport checksum, plus ~each varied word of the template */
	__u32 udp;		/* 1: a computed checksum of 0 is sent as 0xffff (RFC 768) */
	__u32 pad;
	__u8 frame[RVS_GEN_LEN];	/* the template, written over every frame */
	__u8 pad2[64 - RVS_GEN_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rvs_gen_cfg);
} rvs_gen_cfg SEC(".maps");

/* Frames the program has produced (the offered count). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} rvs_gen_seq SEC(".maps");

/* The pacer, in units of 1/256 ns (so a rate's interval keeps its fraction): interval 0 means
 * flat out. next is the next frame's due time; a generator that fell behind (preempted) does
 * not catch up by more than burst (the receiver's ring would overflow at a rate it sustains
 * on average): it skips the rest, and the produced count says what was really sent. */
struct rvs_gen_pace {
	__u64 interval;		/* 1/256 ns between frames; 0: no pacing */
	__u64 burst;		/* 1/256 ns: (frames it may send back to back when behind - 1) * interval */
	__u64 next;		/* 1/256 ns: when the next frame is due (0: at once) */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rvs_gen_pace);
} rvs_gen_pace SEC(".maps");

static __always_inline __u16 finish(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int rvs_trafficgen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct rvs_gen_cfg *c = bpf_map_lookup_elem(&rvs_gen_cfg, &zero);
	__u64 *seq = bpf_map_lookup_elem(&rvs_gen_seq, &zero);
	struct rvs_gen_pace *pace = bpf_map_lookup_elem(&rvs_gen_pace, &zero);

	if (!c || !seq || !pace)
		return XDP_ABORTED;
	if (pace->interval) {
		__u64 now = bpf_ktime_get_ns() << 8;
		__u64 next = pace->next;
		if (next + pace->burst < now)
			next = now - pace->burst;
		if (now < next)
			return XDP_DROP;
		pace->next = next + pace->interval;
	}
	if (data + RVS_GEN_LEN > end)
		return XDP_ABORTED;
	__builtin_memcpy(data, c->frame, RVS_GEN_LEN);
	__u64 n = *seq;
	*seq = n + 1;
	if (c->span == 0)
		return XDP_TX;

	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u32 off = c->l4_csum_off;
	if (off != 40 && off != 50)
		return XDP_ABORTED;
	__u16 *l4_csum = data + off;
	if ((void *)(l4_csum + 1) > end)
		return XDP_ABORTED;

	__u32 v = c->base + (__u32)(n % c->span);
	__u32 l4 = c->l4_sum;
	__u16 out;
	if (c->mode == RVS_GEN_SPORT) {
		__u16 *sport = (void *)(ip + 1);
		__u16 p = bpf_htons((__u16)v);
		*sport = p;
		l4 += p;
	} else {
		__u32 a = bpf_htonl(v);
		__u32 w = (a & 0xffff) + (a >> 16);
		ip->saddr = a;
		ip->check = finish(c->ip_sum + w);
		l4 += w;
	}
	out = finish(l4);
	if (c->udp && out == 0)
		out = 0xffff;
	*l4_csum = out;
	return XDP_TX;
}
