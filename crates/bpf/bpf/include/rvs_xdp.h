/* The layout shared by bpf/xdp.c and crates/bpf/src/xdp.rs (which mirrors it with #[repr(C)]
 * structs and checks their sizes). Change both together. */
#ifndef RVS_XDP_H
#define RVS_XDP_H

#include <linux/types.h>

/* A packet's 5-tuple as it is on the wire (one entry per direction of a connection).
 * IPv4 addresses use the first 4 bytes of the 16, the rest is zero. */
struct rvs_flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 family; /* 4 or 6 */
	__u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad[2];
};

/* What to do with a packet of the flow (written by rvsd) and what happened (written here). */
enum rvs_flow_op {
	RVS_OP_REWRITE = 1, /* NAT, FULLNAT, DR: addresses/ports per flags, MACs, TTL */
	RVS_OP_IPIP = 2,    /* TUN: IP-in-IP (4in4, 6in4, 4in6, 6in6) */
	RVS_OP_GUE = 3,     /* TUN: UDP from sport to dport, GUE header, inner packet */
	RVS_OP_GRE = 4,     /* TUN: GRE header (version 0), inner packet */
};

#define RVS_F_SRC 0x01       /* rewrite the source to saddr:sport */
#define RVS_F_DST 0x02       /* rewrite the destination to daddr:dport */
#define RVS_F_PMTU_DISC 0x04 /* tunnel: copy DF from an IPv4 inner header */
#define RVS_F_OUTER_V6 0x08  /* tunnel: the outer header is IPv6 */
#define RVS_F_TUN_CSUM 0x10  /* GUE: UDP checksum (else 0); GRE: C bit and checksum word */

struct rvs_flow {
	__u32 ifindex;  /* egress interface: XDP_TX when it is the ingress one, else devmap */
	__u16 max_len;  /* largest (inner) L3 length forwarded here; longer goes to userspace */
	__u8 op;        /* enum rvs_flow_op */
	__u8 flags;     /* RVS_F_* */
	__u8 dst_mac[6];
	__u8 src_mac[6];
	__u8 saddr[16]; /* new source (rewrite) or outer source (tunnel) */
	__u8 daddr[16]; /* new destination (rewrite) or outer destination (tunnel) */
	__be16 sport;   /* new source port (rewrite) or GUE's UDP source port */
	__be16 dport;   /* new destination port (rewrite) or the GUE port */
	/* Where the flow direction's frames come in (the offered frame's interface) and that
	 * interface's MAC: a unicast frame arriving there at that MAC is the director's without
	 * a look-up in rvs_port_macs. in_ifindex 0: look it up for every frame. */
	__u32 in_ifindex;
	__u8 in_mac[6];
	__u8 pad[6];
	/* Written by the program. */
	__u64 packets;
	__u64 bytes;        /* L3 length (of the inner packet for tunnels), as IPVS counts */
	__u64 last_seen_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
};

/* Per-CPU verdict counters, index into the rvs_xdp_stats array. */
enum rvs_xdp_stat {
	RVS_STAT_TX = 0,       /* forwarded out of the ingress interface */
	RVS_STAT_REDIRECT,     /* forwarded out of another interface */
	RVS_STAT_PASS_NOFLOW,  /* no entry: userspace decides */
	RVS_STAT_PASS_STATE,   /* may change the connection's state (SYN, FIN, RST) */
	RVS_STAT_PASS_OTHER,   /* not a case the fast path handles (ICMP, fragment, options, ...) */
	RVS_STAT_PASS_LIMIT,   /* has an entry but too big, TTL expiring, no egress: userspace */
	RVS_STAT_XSK,          /* not forwarded here, redirected to the slow path's AF_XDP socket */
	RVS_STAT_PASS_OTHERHOST, /* unicast for another host's MAC that would have been forwarded,
				  * answered or sent to the XSK: the kernel drops it, untouched */
	RVS_STAT_MAX,
};

/* The MAC of an interface the program runs on (rvs_port_macs, by ifindex): a unicast frame
 * whose destination is another MAC is another host's (the kernel's PACKET_OTHERHOST). */
struct rvs_port_mac {
	__u8 mac[6];
	__u8 pad[2];
};

/* The slow path over AF_XDP (docs/internals/packet-plane.md#the-af_xdp-slow-path).
 *
 * A packet the program does not forward goes to the XSK of the receive queue it arrived on
 * when rvsd's userspace plane is the one to handle it — the packets rvsd's nft guard keeps
 * from the host stack — and to the host stack (XDP_PASS, where the AF_PACKET tap sees it)
 * otherwise. rvs_take holds those rules as keys: */
enum rvs_take_kind {
	RVS_TAKE_VIP_ADDR = 1, /* destination address (port-0 and firewall-mark services) */
	RVS_TAKE_VIP_SVC,      /* destination address, protocol, port */
	RVS_TAKE_LPORT,        /* destination address and protocol, port in the value's ranges */
	RVS_TAKE_KEEP,         /* destination is the director's own: not taken by the rules below */
	RVS_TAKE_RS_ADDR,      /* source address (a NAT real server) */
	RVS_TAKE_RS_SVC,       /* source address, protocol, port */
};

struct rvs_take_key {
	__u8 addr[16];
	__be16 port;   /* 0 where the kind has no port */
	__u8 family;   /* 4 or 6 */
	__u8 proto;    /* 0 where the kind has no protocol */
	__u8 kind;     /* enum rvs_take_kind */
	__u8 pad[3];
};

#define RVS_TAKE_RANGES 4
/* RVS_TAKE_LPORT: up to four port ranges (host order, inclusive); unused ones are lo > hi. */
struct rvs_take_val {
	__u16 lo[RVS_TAKE_RANGES];
	__u16 hi[RVS_TAKE_RANGES];
};

/* XSKMAP index: an interface's slot (rvs_xsk_slots, by ifindex) times this, plus the queue. */
#define RVS_XSK_QUEUES 64
#define RVS_XSK_SLOTS 64
/* Longest frame redirected to an XSK (the UMEM chunk less the kernel's XDP headroom); longer
 * ones (GRO/GSO super-frames) stay on the AF_PACKET path. Equal to rvs_packet_io::xsk::MAX_FRAME. */
#define RVS_XSK_MAX_FRAME 3584

#endif
