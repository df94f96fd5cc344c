// SPDX-License-Identifier: GPL-2.0-or-later
/* The benches' packet sink (bench/packet.sh, `rvs-lab sink`; crates/bpf/src/sink.rs).
 *
 * Attached to the far end of the director's link toward the real servers, it counts and drops
 * what the director forwarded there: IPv4 UDP datagrams to port 9 and TCP segments to port 80
 * whose destination is in the real servers' prefix (so a frame the director did not rewrite,
 * still addressed to the VIP, is not counted as delivered). Everything else (ARP, ICMP, other
 * traffic) is passed to the stack as if the program were not there.
 *
 * Why a program and not the real servers' own receive (an nft counter in their namespaces,
 * the earlier method): on a 2-CPU machine the far side shares its CPU with the generator, and
 * the bridge plus two namespaces' IP receive cost about as much per packet as the director's
 * own work — the far side, not the director, then limited what could be measured. Counting at
 * the first point after the director keeps that CPU for the generator. */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

/* The real servers' prefix, network order (mirror: crates/bpf/src/sink.rs, struct Cfg). */
struct rvs_sink_cfg {
	__u32 net;
	__u32 mask;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rvs_sink_cfg);
} rvs_sink_cfg SEC(".maps");

enum rvs_sink_stat {
	RVS_SINK_UDP9 = 0,	/* UDP to port 9 in the prefix: counted, dropped */
	RVS_SINK_TCP80 = 1,	/* TCP to port 80 in the prefix: counted, dropped */
	RVS_SINK_NSTATS = 2,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RVS_SINK_NSTATS);
	__type(key, __u32);
	__type(value, __u64);
} rvs_sink_stats SEC(".maps");

SEC("xdp")
int rvs_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 zero = 0, stat;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5)
		return XDP_PASS;
	struct rvs_sink_cfg *c = bpf_map_lookup_elem(&rvs_sink_cfg, &zero);
	if (!c || (ip->daddr & c->mask) != c->net)
		return XDP_PASS;
	__u16 *ports = (void *)(ip + 1);
	if ((void *)(ports + 2) > end)
		return XDP_PASS;
	if (ip->protocol == IPPROTO_UDP && ports[1] == bpf_htons(9))
		stat = RVS_SINK_UDP9;
	else if (ip->protocol == IPPROTO_TCP && ports[1] == bpf_htons(80))
		stat = RVS_SINK_TCP80;
	else
		return XDP_PASS;
	__u64 *n = bpf_map_lookup_elem(&rvs_sink_stats, &stat);
	if (n)
		*n += 1;
	return XDP_DROP;
}
