//! A transmission waiting for its next hop: the plane's half of the kernel's neighbour queue.
//!
//! IPVS handles a packet once — scheduling, connection state, statistics, the rewrite the
//! connection asks for — and hands it to the route; when the route's neighbour is not resolved
//! yet, the neighbour layer queues the finished packet (`arp_queue`, bounded by
//! `unres_qlen_bytes`) and sends it once the MAC is known, or drops it when resolution fails.
//! Nothing goes through IPVS a second time.
//!
//! The plane's next-hop lookup ([`Neighbours`]) answers the egress port and the MAC together,
//! from a cache filled outside the batch, so when it has no answer the plane knows neither.
//! [`Plane::process`] then does everything that does not depend on the next hop (the director's
//! work and the rewrites made before the transmit step: ICMP relays, SYN-proxy sequence shifts)
//! and stops before the transmit sequence of [`crate::xmit`] (TTL, MTU check against the egress
//! port, the method's rewrite or encapsulation, MACs). The frame is left in the buffer as it
//! stands and dropped (counted [`DropReason::NoRoute`]), and the plane keeps a [`Pending`]: the
//! destination whose next hop is missing, where the frame lies, and the transmission decided.
//! The caller may copy the frame and hold it with the `Pending`; once the next hop is known,
//! [`Plane::send_pending`] finishes the transmission without the director — as the neighbour
//! queue only finishes what IPVS already did, so the packet is counted, scheduled and moved
//! through its state machine once.
//!
//! An ICMP error the plane generates toward a client about one of its tunnel packets is kept
//! the same way: generated at once (the director's part), its MACs written when the client's
//! next hop is known — the kernel's neighbour queue holding a locally generated packet.
//!
//! A datagram the plane reassembled has no `Pending`: it is dropped, as it was before frames
//! were held (sending it on later would need its fragment sizes as well).

use super::*;

/// The transmission the plane decided for a frame, before its next hop is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Xmit {
    /// NAT, NAT reply, full-NAT or DR: a [`Method`] needs nothing of the next hop (never
    /// [`Method::Tun`], which is [`Xmit::Tunnel`]).
    Rewrite(Method<'static>),
    /// A tunnel: the parameters decided from the real server's configuration; the outer
    /// source address and the MACs are left unspecified here and written from the next hop
    /// when the frame is sent (see `Plane::send`).
    Tunnel(TunnelParams),
    /// A frame the plane generated (an ICMP error toward a client about a tunnel packet):
    /// complete but for its MACs, which are all that is left to write.
    Local,
}

/// What the plane needs to finish the transmission of a frame whose next hop was missing:
/// take it with [`Plane::take_pending`] right after [`Plane::process`] (or
/// [`Plane::send_pending`]) returned `Drop(NoRoute)`, keep it with a copy of the frame
/// ([`Pending::frame`]), and call [`Plane::send_pending`] once the next hop of
/// [`Pending::next`] is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub(super) next: IpAddr,
    pub(super) port_in: PortId,
    pub(super) start: usize,
    pub(super) len: usize,
    pub(super) xmit: Xmit,
    pub(super) relayed_icmp: bool,
}

impl Pending {
    /// The destination whose next hop is missing (the real server, the client, or the
    /// tunnel's far end).
    pub fn next(&self) -> IpAddr {
        self.next
    }

    /// Where the frame to keep lies in the buffer given to the call that made this:
    /// `(start, len)`. It is the frame as the plane left it before the transmit step, with
    /// complete checksums when the input had them.
    pub fn frame(&self) -> (usize, usize) {
        (self.start, self.len)
    }
}

impl<N: Neighbours> Plane<N> {
    /// The transmission the last [`Plane::process`] or [`Plane::send_pending`] could not
    /// finish for want of a next hop, if any (see the module docs).
    pub fn take_pending(&mut self) -> Option<Pending> {
        self.pending.take()
    }

    /// Finishes the transmission of a frame held with `held`, now copied to
    /// `buf[start..start + len]` (with the headroom and room after it that
    /// [`Plane::process`] asks for): looks up the next hop and runs the transmit sequence,
    /// without the director. The verdict is what `process` would have returned had the
    /// next hop been known; `Drop(NoRoute)` with a new [`Plane::take_pending`] when it is
    /// still missing.
    pub fn send_pending(
        &mut self,
        held: &Pending,
        buf: &mut [u8],
        start: usize,
        len: usize,
    ) -> Verdict {
        self.pending = None;
        self.offer_ctx = None;
        self.reasm_ctx = None;
        let Some(end) = start.checked_add(len).filter(|&e| e <= buf.len()) else {
            return self.drop(DropReason::NoRoom);
        };
        let f = Frame {
            start,
            end,
            port_in: held.port_in,
        };
        // It parsed when it was held; the plane's own rewrites keep it parseable.
        let Ok(p) = parse(&buf[start..end]) else {
            return self.drop(DropReason::Malformed);
        };
        self.send(buf, f, &p, held.xmit, held.next, held.relayed_icmp)
    }
}
