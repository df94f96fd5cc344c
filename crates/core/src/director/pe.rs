//! Content persistence engines (`cookie`, `cookie-learn`, `header`, `sni`) on a socket data
//! plane: the proxy reads a key from the flow's bytes (a cookie, a header value, a TLS server
//! name) and asks here which real server it goes to (docs/internals/persistence.md).
//!
//! They use the kernel's template machinery with two differences from `-p`/`--pe sip`:
//! the template's client address is the unspecified address (the key alone decides: the point
//! of these engines is to follow a user behind changing or shared addresses, so the `-M` mask
//! does not apply), and the server is found *before* the connection entry is made
//! ([`Director::pe_target`], then [`Director::open_flow_to`]), because one client connection
//! carries many requests and each is routed by its own key: a request whose key leads to the
//! server the connection already uses needs no new entry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{DropReason, Packet, Verdict, FTPPORT};
use crate::conn::{flags, ConnId, NewConn, INITIAL_TIMEOUT};
use crate::dest::DestId;
use crate::sched::{Flow, RandomSource};
use crate::time::{Duration, Time};
use crate::Director;

/// What a content engine found in a flow's bytes.
pub struct PeKey<'a> {
    /// The key (cookie, header or server-name value); `None`: the request carries none.
    pub data: Option<&'a [u8]>,
    /// The real server the key names by itself (an engine cookie whose keyed hash verified),
    /// used when no template matches: the cookie outlives its template.
    pub named: Option<(IpAddr, u16)>,
    /// Which template a server chosen by the scheduler gets.
    pub record: PeRecord<'a>,
}

/// The template made for a server the scheduler chose.
pub enum PeRecord<'a> {
    /// Keyed by the request's key (`header`, `sni`).
    Data,
    /// Keyed by the value this function gives for the server's address and port (the
    /// `cookie` engine: the cookie the client is about to receive).
    Issued(&'a dyn Fn(IpAddr, u16) -> Vec<u8>),
    /// None (`cookie-learn`: only what a real server sets is learnt, see
    /// [`Director::pe_learn`]).
    Nothing,
}

/// Where a request goes: the real server and the template that sent it there.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PeTarget {
    /// The real server.
    pub dest: DestId,
    /// The template (`None` when the request had no key and the engine records none).
    pub template: Option<ConnId>,
}

/// The template key of a content engine: `<proto, unspecified, vaddr, vport, data>`.
struct TemplateKey {
    proto: u8,
    caddr: IpAddr,
    vaddr: IpAddr,
    vport: u16,
    fwmark: u32,
}

impl TemplateKey {
    fn of(pkt: &Packet<'_>) -> TemplateKey {
        TemplateKey {
            proto: pkt.proto.number(),
            caddr: match pkt.saddr {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            },
            vaddr: pkt.daddr,
            vport: if pkt.dport == FTPPORT { 0 } else { pkt.dport },
            fwmark: pkt.fwmark,
        }
    }
}

impl Director {
    /// The real server for a request of a content-engine service: a valid template of its
    /// key, else the server the key names (if usable), else the scheduler (making the
    /// template `key.record` says). Templates are checked as the kernel checks them: a
    /// removed or unavailable server, or (with `expire_quiescent_template`) one with weight
    /// 0, invalidates the template and the request is scheduled anew.
    pub fn pe_target(
        &mut self,
        pkt: &Packet<'_>,
        key: &PeKey<'_>,
        now: Time,
        rng: &mut dyn RandomSource,
    ) -> Result<PeTarget, Verdict> {
        if self.sync.forwarding_disabled() {
            return Err(Verdict::Pass);
        }
        let sid = self
            .table
            .find(pkt.fwmark, pkt.proto, &pkt.daddr, pkt.dport)
            .ok_or(Verdict::Pass)?;
        if self.defense.todrop_packet() {
            return Err(Verdict::Drop(DropReason::Defense));
        }
        let timeout = self.table.service(sid).ok_or(Verdict::Pass)?.cfg.timeout;
        let tk = TemplateKey::of(pkt);
        if let Some(data) = key.data {
            let found = self
                .conns
                .lookup_template(tk.proto, &tk.caddr, &tk.vaddr, tk.vport, Some(data))
                .filter(|&t| self.check_template(t));
            if let Some(t) = found {
                if let Some(dest) = self.conns.get(t).and_then(|c| c.dest()) {
                    self.conns.restart_timer(t, now);
                    return Ok(PeTarget {
                        dest,
                        template: Some(t),
                    });
                }
            }
            if let Some((addr, port)) = key.named {
                if let Some(dest) = self.usable_dest(sid, addr, port) {
                    let t = self.pe_template(&tk, dest, timeout, data, now)?;
                    return Ok(PeTarget {
                        dest,
                        template: Some(t),
                    });
                }
            }
        }
        let flow = Flow {
            proto: Some(pkt.proto),
            saddr: pkt.saddr,
            sport: pkt.sport,
            daddr: pkt.daddr,
            dport: pkt.dport,
            inverse: false,
            // The proxy schedules connections it accepted: never mid-stream.
            midstream: false,
        };
        let Some(dest) = self.table.schedule(sid, &flow, now, rng) else {
            return Err(self.leave(sid, pkt, now));
        };
        let record = match (&key.record, key.data) {
            (PeRecord::Data, Some(d)) => Some(d.to_vec()),
            (PeRecord::Issued(f), _) => {
                let d = &self.table.dests[dest];
                Some(f(d.cfg.addr, d.cfg.port))
            }
            _ => None,
        };
        let template = match record {
            Some(r) => Some(self.pe_template(&tk, dest, timeout, &r, now)?),
            None => None,
        };
        Ok(PeTarget { dest, template })
    }

    /// Open the connection entry of a flow to a server found by [`Director::pe_target`]
    /// (under its template), as [`Director::open_flow`] does for other services. An entry
    /// left over with the same client tuple is dropped first: the socket plane has accepted a
    /// new connection (or moved this one to another server), so the old one is over.
    pub fn open_flow_to(&mut self, pkt: &Packet<'_>, target: PeTarget, now: Time) -> Verdict {
        let proto = pkt.proto.number();
        if let Some(old) = self
            .conns
            .lookup_in(proto, &pkt.saddr, pkt.sport, &pkt.daddr, pkt.dport)
        {
            self.expire_conn_now(old, now);
        }
        let Some(d) = self.table.dests.get(target.dest) else {
            return Verdict::Reject;
        };
        let dport = if d.cfg.port != 0 {
            d.cfg.port
        } else {
            pkt.dport
        };
        let mut n = NewConn::new(
            proto, pkt.saddr, pkt.sport, pkt.daddr, pkt.dport, d.cfg.addr, dport,
        );
        n.dest = Some(target.dest);
        n.fwmark = pkt.fwmark;
        if target.template.is_some() {
            n.timeout = INITIAL_TIMEOUT;
        }
        let id = match self.conns.insert(&n, now, &mut self.table) {
            Ok(id) => id,
            Err(e) => return super::insert_refused(&e),
        };
        if let Some(t) = target.template {
            self.conns.set_control(id, t);
            self.conns.restart_timer(t, now);
        }
        self.count_conn(target.dest);
        self.account_in(id, pkt, now, true, false)
    }

    /// `cookie-learn`: real server `dest` has set the session key `data` for the service of
    /// `pkt`: requests carrying it go there from now on (a template of that key that pointed
    /// elsewhere is invalidated). Returns false if the server or service is gone.
    pub fn pe_learn(&mut self, pkt: &Packet<'_>, data: &[u8], dest: DestId, now: Time) -> bool {
        let Some(sid) = self
            .table
            .find(pkt.fwmark, pkt.proto, &pkt.daddr, pkt.dport)
        else {
            return false;
        };
        let Some(svc) = self.table.service(sid) else {
            return false;
        };
        if !svc.dests.contains(&dest) {
            return false;
        }
        let timeout = svc.cfg.timeout;
        self.pe_template(&TemplateKey::of(pkt), dest, timeout, data, now)
            .is_ok()
    }

    /// A destination of service `sid` at `addr:port` that a template could still send to.
    fn usable_dest(
        &self,
        sid: crate::service::ServiceId,
        addr: IpAddr,
        port: u16,
    ) -> Option<DestId> {
        let svc = self.table.service(sid)?;
        svc.dests.iter().copied().find(|&id| {
            self.table.dests.get(id).is_some_and(|d| {
                d.cfg.addr == addr
                    && d.cfg.port == port
                    && d.available
                    && !(self.sys.expire_quiescent_template && d.weight() == 0)
            })
        })
    }

    /// The template `<key, data>` bound to `dest`: the existing one (timer restarted) if it
    /// already points there; otherwise a new one, after invalidating one that points
    /// elsewhere.
    fn pe_template(
        &mut self,
        tk: &TemplateKey,
        dest: DestId,
        timeout: u32,
        data: &[u8],
        now: Time,
    ) -> Result<ConnId, Verdict> {
        if let Some(t) =
            self.conns
                .lookup_template(tk.proto, &tk.caddr, &tk.vaddr, tk.vport, Some(data))
        {
            if self.conns.get(t).and_then(|c| c.dest()) == Some(dest) {
                self.conns.restart_timer(t, now);
                return Ok(t);
            }
            self.conns.invalidate_template(t);
        }
        let d = &self.table.dests[dest];
        let tdport = if tk.vport != 0 { d.cfg.port } else { 0 };
        let mut n = NewConn::new(
            tk.proto, tk.caddr, 0, tk.vaddr, tk.vport, d.cfg.addr, tdport,
        );
        n.flags = flags::TEMPLATE;
        n.dest = Some(dest);
        n.fwmark = tk.fwmark;
        n.timeout = Duration::from_secs(u64::from(timeout));
        n.pe_data = Some(data);
        self.conns
            .insert(&n, now, &mut self.table)
            .map_err(|e| super::insert_refused(&e))
    }
}
