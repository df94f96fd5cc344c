// SPDX-License-Identifier: GPL-2.0-or-later
/* SYN answering in XDP for services with the SYN proxy on (docs/internals/syn-flood.md#syn-answering-in-xdp).
 *
 * Why: under a SYN flood at the veth limit the userspace SYN proxy answers every SYN it sees,
 * but the flood overflows the receive ring before userspace sees them, legitimate SYNs among
 * them. Here a client's SYN to a SYN-proxied service gets the same cookie SYN-ACK the
 * userspace proxy (crates/packet/src/plane/syn_proxy.rs) would send, straight back out of the
 * interface it came in on (XDP_TX): same cookie (SipHash-2-4 under the key rvsd derives from
 * its director's seed, rvsd's clock in 64-second units, the client's MSS class), same bytes.
 * Nothing is stored: the client's ACK goes to userspace as before, whose proxy checks the
 * cookie and opens the connection unchanged.
 *
 * What it answers is a subset of what userspace answers: an untagged IPv4 frame, no IP
 * options or fragment (xdp.c checked those and the IP header checksum), TCP flags SYN without
 * ACK/RST/FIN, a data offset inside the packet, to a service in rvs_syn_svcs (rvsd puts there
 * the address:port services its director would SYN-proxy: TCP, not firewall-mark, not port 0,
 * every real server NAT or full-NAT, rvs_syn_proxy=1), on an interface in rvs_syn_mtu.
 * Everything else is left to userspace (return -1), which answers, forwards or drops it as
 * before.
 *
 * One difference is known and documented: userspace does not answer a SYN whose 4-tuple
 * already has a connection entry (a client reusing a port while the director still holds the
 * old connection in TIME_WAIT); this program cannot see the table and answers it too, and the
 * client's ACK then meets the old entry in userspace (docs/internals/syn-flood.md says what
 * follows). */
#ifndef RVS_SYN_ANSWER_H
#define RVS_SYN_ANSWER_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* The layout shared with crates/bpf/src/xdp.rs (#[repr(C)] mirrors, sizes checked there). */

/* rvs_syn_cfg[0]: everything the cookie needs besides the packet. */
struct rvs_syn_cfg {
	__u64 key[2];   /* SipHash-2-4 key (rvs_packet::syncookie::CookieKey) */
	__u64 epoch_ns; /* CLOCK_MONOTONIC of rvsd's clock zero: Time = (now - epoch) in ms */
	__u32 on;       /* 0: answer nothing */
	__u32 pad;
};

/* A SYN-proxied service, the key of rvs_syn_svcs (value: unused __u32). IPv4 addresses use
 * the first 4 bytes. */
struct rvs_syn_svc {
	__u8 addr[16];
	__be16 port;
	__u8 family; /* 4 or 6 */
	__u8 pad;
};

enum rvs_syn_stat {
	RVS_SYN_ANSWERED = 0, /* SYN-ACK with a cookie sent (XDP_TX) */
	RVS_SYN_LEFT,         /* a SYN to a served service left to userspace (shape, no room) */
	RVS_SYN_STAT_MAX,
};

/* The cookie's time unit and the MSS classes: rvs_packet::syncookie::{PERIOD_SECS, MSS_V4}. */
#define RVS_SYN_PERIOD_SECS 64
#define RVS_SYN_MSS0 536
#define RVS_SYN_MSS1 1300
#define RVS_SYN_MSS2 1440
#define RVS_SYN_MSS3 1460

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rvs_syn_cfg);
} rvs_syn_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 16);
	__type(key, struct rvs_syn_svc);
	__type(value, __u32);
} rvs_syn_svcs SEC(".maps");

/* MTU of the plane's interfaces, by ifindex: the SYN-ACK's MSS is the ingress link's. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} rvs_syn_mtu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RVS_SYN_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} rvs_syn_stats SEC(".maps");

static __always_inline void rvs_syn_count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&rvs_syn_stats, &stat);
	if (n)
		*n += 1;
}

#define RVS_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static __always_inline void rvs_sipround(__u64 *v0, __u64 *v1, __u64 *v2, __u64 *v3)
{
	*v0 += *v1;
	*v1 = RVS_ROTL(*v1, 13);
	*v1 ^= *v0;
	*v0 = RVS_ROTL(*v0, 32);
	*v2 += *v3;
	*v3 = RVS_ROTL(*v3, 16);
	*v3 ^= *v2;
	*v0 += *v3;
	*v3 = RVS_ROTL(*v3, 21);
	*v3 ^= *v0;
	*v2 += *v1;
	*v1 = RVS_ROTL(*v1, 17);
	*v1 ^= *v2;
	*v2 = RVS_ROTL(*v2, 32);
}

/* Stores v at p in network byte order, byte by byte: p need not be aligned. */
static __always_inline void rvs_syn_put_be32(__u8 *p, __u32 v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static __always_inline __u64 rvs_le64(const __u8 *b)
{
	return (__u64)b[0] | (__u64)b[1] << 8 | (__u64)b[2] << 16 | (__u64)b[3] << 24 |
	       (__u64)b[4] << 32 | (__u64)b[5] << 40 | (__u64)b[6] << 48 | (__u64)b[7] << 56;
}

/* SipHash-2-4 of the 41-byte message rvs_packet::syncookie::hash builds: both addresses as
 * 16 bytes (IPv4 mapped, ::ffff:a.b.c.d), the ports and `count` big-endian, then `salt`.
 * m holds the first 36 bytes. */
static __always_inline __u32 rvs_cookie_hash(const __u64 *key, const __u8 *m, __u32 count,
					     __u8 salt)
{
	__u64 v0 = key[0] ^ 0x736f6d6570736575ULL;
	__u64 v1 = key[1] ^ 0x646f72616e646f6dULL;
	__u64 v2 = key[0] ^ 0x6c7967656e657261ULL;
	__u64 v3 = key[1] ^ 0x7465646279746573ULL;
	__u8 last[8];
	__builtin_memcpy(last, m + 32, 4);
	rvs_syn_put_be32(last + 4, count);
#pragma unroll
	for (int i = 0; i < 5; i++) {
		__u64 w = i < 4 ? rvs_le64(m + 8 * i) : rvs_le64(last);
		v3 ^= w;
		rvs_sipround(&v0, &v1, &v2, &v3);
		rvs_sipround(&v0, &v1, &v2, &v3);
		v0 ^= w;
	}
	__u64 b = (41ULL << 56) | salt;
	v3 ^= b;
	rvs_sipround(&v0, &v1, &v2, &v3);
	rvs_sipround(&v0, &v1, &v2, &v3);
	v0 ^= b;
	v2 ^= 0xff;
#pragma unroll
	for (int i = 0; i < 4; i++)
		rvs_sipround(&v0, &v1, &v2, &v3);
	return (__u32)(v0 ^ v1 ^ v2 ^ v3);
}

static __always_inline __u16 rvs_syn_fold(__u64 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* The one's-complement sum's part for `words` big-endian 16-bit words at p (the caller has
 * checked they are inside the packet); unrolled, so `words` must be a constant. */
static __always_inline __u64 rvs_syn_sum16(const __u8 *p, int words)
{
	__u64 s = 0;
#pragma unroll
	for (int i = 0; i < words; i++)
		s += ((__u16)p[2 * i] << 8) | p[2 * i + 1];
	return s;
}

/* The walk over a SYN's options (a bpf_loop callback, so the verifier checks one step, not
 * every path through forty). */
struct rvs_opt_walk {
	__u8 o[64];
	__u32 olen;
	__u32 i;
	__u32 mss;
};

/* One option, as rvs_packet::syncookie::segment reads them: stop at End-of-options or a
 * malformed length; the last MSS option (kind 2, length 4) wins. */
static long rvs_opt_step(__u32 n, void *c)
{
	struct rvs_opt_walk *w = c;
	__u32 i = w->i;
	if (i >= w->olen || i >= 40)
		return 1;
	__u8 kind = w->o[i & 63];
	if (kind == 0)
		return 1;
	if (kind == 1) {
		w->i = i + 1;
		return 0;
	}
	if (i + 1 >= w->olen)
		return 1;
	__u32 len = w->o[(i + 1) & 63];
	if (len < 2 || i + len > w->olen)
		return 1;
	if (kind == 2 && len == 4)
		w->mss = ((__u32)w->o[(i + 2) & 63] << 8) | w->o[(i + 3) & 63];
	w->i = i + len;
	return 0;
}

/* Answers an IPv4 SYN (see the top of this file): XDP_TX with the frame turned into the
 * SYN-ACK, or -1 to leave the packet to the rest of the program. `l3_len` is the IP total
 * length xdp.c read (the packet holds it whole). */
static __always_inline int rvs_syn_answer(struct xdp_md *ctx, __u32 l3_len)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *ip = data + sizeof(struct ethhdr);
	__u8 *th = ip + 20;
	if ((void *)(th + 20) > end)
		return -1;
	/* SYN alone among SYN/ACK/RST/FIN. */
	if ((th[13] & 0x17) != 0x02)
		return -1;
	__u32 k0 = 0;
	struct rvs_syn_cfg *cfg = bpf_map_lookup_elem(&rvs_syn_cfg, &k0);
	if (!cfg || !cfg->on)
		return -1;
	struct rvs_syn_svc svc = {};
	svc.family = 4;
	__builtin_memcpy(svc.addr, ip + 16, 4);
	__builtin_memcpy(&svc.port, th + 2, 2);
	if (!bpf_map_lookup_elem(&rvs_syn_svcs, &svc))
		return -1;
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 *mtu = bpf_map_lookup_elem(&rvs_syn_mtu, &ifindex);
	if (!mtu) {
		rvs_syn_count(RVS_SYN_LEFT);
		return -1;
	}
	/* Userspace drops a data offset beyond the segment as malformed: leave it that. */
	__u32 hl = (th[12] >> 4) * 4;
	if (hl < 20 || l3_len < 20 || hl > l3_len - 20) {
		rvs_syn_count(RVS_SYN_LEFT);
		return -1;
	}
	/* The options, copied to the stack so the walk reads bounded offsets. */
	struct rvs_opt_walk w = {};
	w.olen = hl - 20;
	if (w.olen > 40)
		return -1;
	if (w.olen > 0) {
		__u32 n = w.olen;
		/* Keeps the compiler from folding the checks: the verifier must see 1..40. */
		asm volatile("" : "+r"(n));
		if (n < 1 || n > 40)
			return -1;
		if (bpf_xdp_load_bytes(ctx, sizeof(struct ethhdr) + 40, w.o, n))
			return -1;
	}
	bpf_loop(40, rvs_opt_step, &w, 0);
	__u32 mss = w.mss;
	if (mss == 0)
		mss = RVS_SYN_MSS0;
	__u32 cls = mss >= RVS_SYN_MSS3 ? 3 : mss >= RVS_SYN_MSS2 ? 2 : mss >= RVS_SYN_MSS1 ? 1 : 0;

	/* rvsd's clock: whole seconds, then 64-second units, as the userspace proxy counts. */
	__u64 now = bpf_ktime_get_ns();
	if (now < cfg->epoch_ns)
		return -1;
	__u64 secs = (now - cfg->epoch_ns) / 1000000000ULL;
	__u32 count = (__u32)(secs / RVS_SYN_PERIOD_SECS);

	__u8 m[36] = {};
	m[10] = 0xff;
	m[11] = 0xff;
	__builtin_memcpy(m + 12, ip + 12, 4);
	m[26] = 0xff;
	m[27] = 0xff;
	__builtin_memcpy(m + 28, ip + 16, 4);
	__builtin_memcpy(m + 32, th, 4);
	__u64 key[2] = {cfg->key[0], cfg->key[1]};
	__u32 isn = ((__u32)th[4] << 24) | ((__u32)th[5] << 16) | ((__u32)th[6] << 8) | th[7];
	__u32 cookie = rvs_cookie_hash(key, m, 0, 0) + isn + (count << 24) +
		       ((rvs_cookie_hash(key, m, count, 1) + cls) & 0x00ffffff);
	__u32 our_mss = *mtu > 40 ? *mtu - 40 : 0;
	if (our_mss < 536)
		our_mss = 536;
	if (our_mss > 65535)
		our_mss = 65535;

	/* The answer is exactly Ethernet + 20 + 24 bytes. */
	int delta = (int)(sizeof(struct ethhdr) + 44) - (int)((long)end - (long)data);
	if (delta && bpf_xdp_adjust_tail(ctx, delta)) {
		rvs_syn_count(RVS_SYN_LEFT);
		return -1;
	}
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + sizeof(struct ethhdr) + 44 > end)
		return XDP_ABORTED;
	__u8 *eth = data;
	ip = data + sizeof(struct ethhdr);
	th = ip + 20;
	__u8 mac[6];
	__builtin_memcpy(mac, eth, 6);
	__builtin_memcpy(eth, eth + 6, 6);
	__builtin_memcpy(eth + 6, mac, 6);
	__u8 a[4];
	__builtin_memcpy(a, ip + 12, 4);
	__builtin_memcpy(ip + 12, ip + 16, 4);
	__builtin_memcpy(ip + 16, a, 4);
	/* A packet the director originates: total length, no ident, DF, TTL 64. */
	ip[2] = 0;
	ip[3] = 44;
	ip[4] = 0;
	ip[5] = 0;
	ip[6] = 0x40;
	ip[7] = 0;
	ip[8] = 64;
	ip[10] = 0;
	ip[11] = 0;
	__u16 h = ~rvs_syn_fold(rvs_syn_sum16(ip, 10));
	ip[10] = h >> 8;
	ip[11] = h & 0xff;
	__u8 port[2];
	__builtin_memcpy(port, th, 2);
	__builtin_memcpy(th, th + 2, 2);
	__builtin_memcpy(th + 2, port, 2);
	__u32 ack = isn + 1;
	rvs_syn_put_be32(th + 4, cookie);
	rvs_syn_put_be32(th + 8, ack);
	th[12] = 6 << 4;
	th[13] = 0x12; /* SYN | ACK */
	th[14] = 0;    /* window 0: rvs_packet::syncookie::SYNACK_WINDOW */
	th[15] = 0;
	th[16] = 0;
	th[17] = 0;
	th[18] = 0;
	th[19] = 0;
	th[20] = 2;
	th[21] = 4;
	th[22] = our_mss >> 8;
	th[23] = our_mss & 0xff;
	/* Pseudo header (addresses, protocol, TCP length 24) and the 24 bytes. */
	h = ~rvs_syn_fold(6 + 24 + rvs_syn_sum16(ip + 12, 4) + rvs_syn_sum16(th, 12));
	th[16] = h >> 8;
	th[17] = h & 0xff;
	rvs_syn_count(RVS_SYN_ANSWERED);
	return XDP_TX;
}

#endif
