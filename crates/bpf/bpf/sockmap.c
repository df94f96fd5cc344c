// SPDX-License-Identifier: GPL-2.0-or-later
/* Kernel splicing of the socket proxy's TCP flows (docs/internals/proxy-plane.md#kernel-splicing).
 *
 * Once the proxy has both sockets of a flow (client side and real-server side, the PROXY
 * header already written), it puts them into rvs_socks and tells rvs_dirs, per socket, which
 * socket its data goes to. From then on every skb a socket receives runs this stream verdict
 * program, which hands it to the peer socket's send path (bpf_sk_redirect_hash without
 * BPF_F_INGRESS): the bytes never reach user space. The program counts the payload bytes and
 * skbs it moved per direction, for the statistics and for the proxy's "is everything sent?"
 * check before it forwards a half-close.
 *
 * Zero-length skbs (a bare FIN handed over by tcp_read_skb) are dropped: the FIN itself is
 * already recorded by TCP (the socket reads EOF), and redirecting an empty skb would make the
 * peer's transmit path report EPIPE on a healthy socket. A socket without an rvs_dirs entry is
 * passed to its own receive queue (SK_PASS), so user space reads it as usual.
 *
 * A socket whose peer is not in rvs_socks is *held*: its data is passed to its own receive
 * queue, now and for the rest of the flow, and user space relays that direction. The proxy
 * inserts the two sockets one after the other, so data that reaches the first one before the
 * second is in the hash has nowhere to go; dropping it (as an earlier version did) lost a
 * request that arrived in that window and stalled the flow. Passing only that skb would let
 * later skbs, redirected by the kernel, overtake it on the way to the peer; holding the socket
 * for good keeps the bytes in order (user space forwards them one read after another). A peer
 * also leaves the hash when it closes; then the flow is ending and user space finds the error. */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* One direction of a spliced flow, keyed by the receiving socket's cookie. */
struct rvs_splice_dir {
	__u64 peer;    /* cookie of the socket this one's data is sent from */
	__u64 bytes;   /* payload bytes redirected */
	__u64 skbs;    /* skbs redirected */
	__u64 last_ns; /* bpf_ktime_get_ns() of the last redirect */
	__u64 held;    /* nonzero: passed to user space from now on (see above) */
};

/* The sockets of spliced flows, keyed by socket cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u32);
} rvs_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct rvs_splice_dir);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} rvs_dirs SEC(".maps");

SEC("sk_skb/stream_verdict")
int rvs_splice(struct __sk_buff *skb)
{
	if (skb->len == 0)
		return SK_DROP;
	__u64 me = bpf_get_socket_cookie(skb);
	struct rvs_splice_dir *d = bpf_map_lookup_elem(&rvs_dirs, &me);
	if (!d || d->held)
		return SK_PASS;
	__u64 peer = d->peer;
	__u32 len = skb->len;
	if (bpf_sk_redirect_hash(skb, &rvs_socks, &peer, 0) != SK_PASS) {
		/* The peer is not in the hash (not yet, or no longer): nothing was moved. */
		d->held = 1;
		return SK_PASS;
	}
	__sync_fetch_and_add(&d->bytes, len);
	__sync_fetch_and_add(&d->skbs, 1);
	d->last_ns = bpf_ktime_get_ns();
	return SK_PASS;
}
