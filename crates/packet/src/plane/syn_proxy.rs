//! The SYN proxy's part of [`Plane::process`] (docs/internals/syn-flood.md), for services whose
//! real servers are all NAT or full-NAT while `rvs_syn_proxy` is on:
//!
//! 1. A client's SYN with no connection is answered with a SYN-ACK whose sequence number is a
//!    SYN cookie ([`crate::syncookie`]) and whose window is 0; nothing is stored.
//! 2. The client's ACK is checked: a valid cookie schedules the connection as its SYN would
//!    have been, the entry is marked SYNPROXY, and the ACK becomes the real server's SYN (the
//!    client's ISN, MSS and window). An invalid one is dropped (`bad_cookie`).
//! 3. The real server's SYN-ACK fixes the offset between the two numberings and becomes the
//!    window update that lets the client send (so the client's first data also completes the
//!    server's handshake). A retransmitted SYN-ACK — the client had nothing to send — is
//!    answered with the ACK the server waits for.
//! 4. From then on every segment is shifted: the client's acknowledgements (and SACK blocks)
//!    up by the offset, the server's sequence numbers down.

use rvs_core::conn::{HashSeed, SeqAdjust};

use super::*;
use crate::syncookie::{self, CookieKey, Tuple, Way};
use crate::tcp::flags as tcpf;

/// What the SYN proxy of a plane did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SynProxyCounters {
    /// SYNs answered with a cookie.
    pub cookies_sent: u64,
    /// ACKs whose cookie was valid (each opened a connection, or was refused by the director
    /// as a SYN would have been).
    pub cookies_valid: u64,
    /// Real-server handshakes completed (the SYN-ACK seen and turned into the client's window
    /// update).
    pub servers_answered: u64,
}

/// The key of the cookies, derived once from the director's random hash seed (all the
/// workers of a plane lend the same director, so they agree on it).
#[derive(Clone, Copy)]
pub(super) struct KeyCache(HashSeed, CookieKey);

const SYN_ONLY: TcpFlags = TcpFlags {
    syn: true,
    fin: false,
    rst: false,
    ack: false,
};

impl<N: Neighbours> Plane<N> {
    /// The SYN proxy's counters.
    pub fn syn_proxy_counters(&self) -> &SynProxyCounters {
        &self.syn
    }

    fn cookie_key(&mut self, director: &Director) -> CookieKey {
        let seed = director.conns.seed();
        match self.cookie_key {
            Some(KeyCache(s, k)) if s == seed => k,
            _ => {
                let k = CookieKey::derive(seed.0);
                self.cookie_key = Some(KeyCache(seed, k));
                k
            }
        }
    }

    /// Step 1 and 2: a client's TCP packet that no connection matched yet. `None` when the
    /// proxy does not serve it (the normal path takes it).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn syn_proxy_open(
        &mut self,
        director: &mut Director,
        buf: &mut [u8],
        f: Frame,
        p: &Parsed,
        head: &Packet<'static>,
        now: Time,
        rng: &mut dyn RandomSource,
    ) -> Option<Verdict> {
        let Segment::Tcp(fl) = head.seg else {
            return None;
        };
        let handshake = (fl.syn && !fl.ack) || (fl.ack && !fl.syn);
        if fl.rst || !handshake || !syncookie::plain_tcp(p) {
            return None;
        }
        if !director.syn_proxy_serves(head.fwmark, &head.daddr, head.dport) {
            return None;
        }
        let conns = &director.conns;
        if conns
            .lookup_in(proto::TCP, &head.saddr, head.sport, &head.daddr, head.dport)
            .is_some()
        {
            return None;
        }
        let Ok(seg) = syncookie::segment(&buf[f.start..f.end], p) else {
            return Some(self.drop(DropReason::Malformed));
        };
        let key = self.cookie_key(director);
        let t = Tuple {
            saddr: head.saddr,
            sport: head.sport,
            daddr: head.daddr,
            dport: head.dport,
        };
        let secs = now.as_millis() / 1000;
        let v6 = p.l3 == L3::Ipv6;
        if fl.syn {
            let cookie =
                syncookie::make(&key, &t, seg.seq, secs, syncookie::mss_index(v6, seg.mss));
            // The director's MSS toward the client: its link's.
            let hdrs = if v6 { 60 } else { 40 };
            let mss = self
                .cfg
                .ports
                .get(usize::from(f.port_in))
                .map_or(1460, |q| {
                    q.mtu.saturating_sub(hdrs).clamp(536, 65535) as u16
                });
            return Some(
                match syncookie::syn_to_synack(&mut buf[f.start..], p, cookie, mss) {
                    Ok(len) => {
                        self.syn.cookies_sent += 1;
                        Verdict::Local {
                            port: f.port_in,
                            start: f.start,
                            len,
                        }
                    }
                    Err(_) => self.drop(DropReason::NoRoom),
                },
            );
        }
        let cookie = seg.ack.wrapping_sub(1);
        let Some(mss) = syncookie::check(&key, &t, seg.seq.wrapping_sub(1), cookie, secs) else {
            return Some(self.drop(DropReason::BadCookie));
        };
        self.syn.cookies_valid += 1;
        let syn = Packet {
            seg: Segment::Tcp(SYN_ONLY),
            ..*head
        };
        let route = match director.packet_in_fullnat(&syn, now, rng, &mut self.cfg.laddrs) {
            rvs_core::Verdict::Forward(r) => r,
            other => return Some(self.refused(other, buf, f, p)),
        };
        let Some(conn) = route.conn else {
            return Some(self.drop(DropReason::NoMemory));
        };
        director.conns.set_seq_adjust(
            conn,
            SeqAdjust {
                client_isn: cookie,
                delta: None,
                client_window: seg.window,
            },
        );
        let Ok(len) = syncookie::ack_to_syn(&mut buf[f.start..], p, syncookie::mss_of(v6, mss))
        else {
            return Some(self.drop(DropReason::NoRoom));
        };
        let f2 = Frame {
            end: f.start + len,
            ..f
        };
        let Ok(p2) = parse(&buf[f2.start..f2.end]) else {
            return Some(self.drop(DropReason::Malformed));
        };
        self.offer_ctx = None;
        Some(self.forward(director, buf, f2, &p2, &route))
    }

    /// Step 3 and 4, server side: a real server's packet on a proxied connection.
    pub(super) fn syn_proxy_reply(
        &mut self,
        director: &mut Director,
        buf: &mut [u8],
        f: Frame,
        p: &Parsed,
        r: &ReplyRoute,
        now: Time,
    ) -> Verdict {
        let Some(sa) = director.conns.seq_adjust(r.conn) else {
            return self.reply(buf, f, p, r);
        };
        if !syncookie::plain_tcp(p) {
            return self.drop(DropReason::Rewrite);
        }
        let Ok(seg) = syncookie::segment(&buf[f.start..f.end], p) else {
            return self.drop(DropReason::Malformed);
        };
        if seg.flags & (tcpf::SYN | tcpf::ACK | tcpf::RST) == tcpf::SYN | tcpf::ACK {
            let delta = seg.seq.wrapping_sub(sa.client_isn);
            if sa.delta.is_none() {
                director.conns.set_seq_adjust(
                    r.conn,
                    SeqAdjust {
                        delta: Some(delta),
                        ..sa
                    },
                );
                self.syn.servers_answered += 1;
                let Ok(len) =
                    syncookie::synack_to_window_update(&mut buf[f.start..], p, sa.client_isn)
                else {
                    return self.drop(DropReason::NoRoom);
                };
                let f2 = Frame {
                    end: f.start + len,
                    ..f
                };
                let Ok(p2) = parse(&buf[f2.start..f2.end]) else {
                    return self.drop(DropReason::Malformed);
                };
                return self.reply(buf, f2, &p2, r);
            }
            // A retransmitted SYN-ACK: the client sent nothing that completed the server's
            // handshake, so the director does.
            let Ok(len) = syncookie::synack_to_ack(&mut buf[f.start..], p, sa.client_window) else {
                return self.drop(DropReason::NoRoom);
            };
            let ack = TcpFlags {
                ack: true,
                ..TcpFlags::default()
            };
            director.conn_event(r.conn, Direction::Input, Segment::Tcp(ack), now);
            return Verdict::Local {
                port: f.port_in,
                start: f.start,
                len,
            };
        }
        let Some(delta) = sa.delta else {
            return self.drop(DropReason::SynProxyWait);
        };
        if syncookie::adjust(&mut buf[f.start..f.end], p, Way::ToClient, delta).is_err() {
            return self.drop(DropReason::Malformed);
        }
        self.reply(buf, f, p, r)
    }

    /// Step 4, client side: shifts a client's packet on proxied connection `conn` before it is
    /// forwarded. `Some(verdict)` when it must not be forwarded: the real server has not
    /// answered yet (the client was given a zero window, so this is a stray packet it will
    /// send again), or the segment cannot be rewritten.
    pub(super) fn syn_proxy_forward(
        &mut self,
        director: &Director,
        buf: &mut [u8],
        f: Frame,
        p: &Parsed,
        conn: ConnId,
    ) -> Option<Verdict> {
        let sa = director.conns.seq_adjust(conn)?;
        let Some(delta) = sa.delta else {
            return Some(self.drop(DropReason::SynProxyWait));
        };
        if !syncookie::plain_tcp(p) {
            return Some(self.drop(DropReason::Rewrite));
        }
        if syncookie::adjust(&mut buf[f.start..f.end], p, Way::ToServer, delta).is_err() {
            return Some(self.drop(DropReason::Malformed));
        }
        None
    }
}
