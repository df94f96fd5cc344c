//! The director: service table + connection table + the kernel's packet pipeline.
//!
//! This is where the pieces meet as `ip_vs_core.c` joins them: the checks on a packet that
//! matches an existing connection (docs/internals/connections.md#when-a-packet-meets-an-existing-entry), scheduling of a new connection (docs/internals/connections.md#life-of-an-entry) with persistence
//! templates and one-packet scheduling (docs/internals/persistence.md), the SIP persistence engine (docs/internals/persistence.md#persistence-engines---pe-sip), per-packet
//! state and statistics, expiry with the re-arm of controlling entries, the 2-second rate
//! estimator and the once-a-second defences. The data planes call [`Director::packet_in`] for
//! client→server packets and [`Director::packet_out`] for replies that pass through the
//! director, and [`Director::tick`] regularly.

use std::net::{IpAddr, Ipv4Addr};

use crate::addr::{mask_addr, Protocol};
use crate::conn::state::{
    existing_conn_action, sctp_can_create, tcp_can_create, tmpl, ConnSysctls, Direction,
    ExistingAction,
};
use crate::conn::{flags, ConnId, ConnTable, Expired, HashSeed, NewConn, Segment, INITIAL_TIMEOUT};
use crate::defense::Defense;
use crate::dest::{DestId, FwdMethod};
use crate::estimator::PERIOD;
use crate::pe_sip;
use crate::sched::{Flow, RandomSource};
use crate::service::{PeKind, ServiceFlags, ServiceId, ServiceKey};
use crate::stats::{Stats, Traffic};
use crate::sync::{InHand, SyncTap};
use crate::table::ServiceTable;
use crate::time::{Duration, Time};

mod pe;
pub use pe::{PeKey, PeRecord, PeTarget};

/// FTP control port: persistence and lookup rules treat it specially (docs/internals/connections.md#services-and-real-servers, docs/internals/persistence.md).
const FTPPORT: u16 = 21;
/// FTP data port: the kernel never schedules a connection whose client port is 20 (docs/internals/connections.md#life-of-an-entry).
const FTPDATA: u16 = 20;

/// The sysctls of `/proc/sys/net/ipv4/vs/` that the core applies (docs/internals/sysctls.md); written through
/// [`crate::sysctl::SysctlSet::apply`].
#[derive(Clone, Debug)]
pub struct Sysctls {
    /// Connection-level settings: timeouts, sloppy_tcp/sctp, conn_reuse_mode,
    /// expire_nodest_conn, and whether secure_tcp is in force.
    pub conn: ConnSysctls,
    /// `expire_quiescent_template`: templates whose dest has weight 0 are invalidated.
    pub expire_quiescent_template: bool,
    /// `cache_bypass`: a fwmark service with no usable dest forwards to the original destination.
    pub cache_bypass: bool,
    /// `run_estimation`: the 2-second rate estimator runs (rates freeze while it is off).
    pub run_estimation: bool,
    /// `rvs_syn_proxy`: the packet plane answers a TCP SYN to a NAT / full-NAT service with a
    /// SYN cookie and creates the connection only when the client's ACK proves the handshake
    /// (docs/internals/syn-flood.md).
    pub syn_proxy: bool,
}

impl Default for Sysctls {
    fn default() -> Sysctls {
        Sysctls {
            conn: ConnSysctls::default(),
            expire_quiescent_template: false,
            cache_bypass: false,
            run_estimation: true,
            syn_proxy: false,
        }
    }
}

/// A packet as the core needs to see it.
#[derive(Copy, Clone, Debug)]
pub struct Packet<'a> {
    /// Packet mark (`skb->mark`); 0 if none.
    pub fwmark: u32,
    /// Transport protocol.
    pub proto: Protocol,
    /// Source address.
    pub saddr: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub daddr: IpAddr,
    /// Destination port.
    pub dport: u16,
    /// Protocol details for the state machine.
    pub seg: Segment,
    /// IP length in bytes, for the byte counters.
    pub len: u32,
    /// Transport payload (only the SIP persistence engine reads it).
    pub payload: &'a [u8],
}

impl Packet<'_> {
    /// `is_new_conn`: a TCP SYN or an SCTP INIT.
    fn starts_connection(&self) -> bool {
        match self.seg {
            Segment::Tcp(f) => f.syn,
            Segment::Sctp(ch) => ch == crate::conn::state::chunk::INIT,
            _ => false,
        }
    }
    /// Whether this packet may create a connection (`*_conn_schedule`).
    fn may_create(&self, sys: &ConnSysctls) -> bool {
        match self.seg {
            Segment::Tcp(f) => tcp_can_create(f, sys.sloppy_tcp),
            Segment::Sctp(ch) => sctp_can_create(ch, sys.sloppy_sctp),
            Segment::Udp => true,
            Segment::Other => false,
        }
    }
}

/// Where a client→server packet goes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The connection (`None` for one-packet scheduling: the entry was used and freed).
    pub conn: Option<ConnId>,
    /// The destination (`None` for a cache-bypass connection).
    pub dest: Option<DestId>,
    /// Forwarding method.
    pub fwd: FwdMethod,
    /// Real server address (the original destination for bypass).
    pub daddr: IpAddr,
    /// Real server port.
    pub dport: u16,
    /// Full-NAT local address and port.
    pub local: Option<(IpAddr, u16)>,
    /// Whether this packet created the connection.
    pub new: bool,
}

/// Why a packet is dropped.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Its connection's destination was deleted and `expire_nodest_conn` is off.
    DestUnavailable,
    /// The drop_packet defence.
    Defense,
    /// The persistence engine could not parse the packet (SIP without a valid Call-ID).
    PersistenceEngine,
    /// A connection entry could not be created.
    NoMemory,
    /// The connection table holds `rvs_conn_max` entries: no new entry until some expire.
    TableFull,
    /// A full-NAT connection could not get a local address and port: the service has no local
    /// address, or every `<laddr, lport>` toward this real server is taken (rvs, DPVS's
    /// `--add-laddr` pools; the kernel has no full-NAT).
    NoLocalAddress,
}

/// Chooses the local address and port of a new full-NAT connection (DPVS-style
/// `--add-laddr` pools, owned by the packet data plane). Asked by
/// [`Director::packet_in_fullnat`] once per new connection to a `--fullnat` destination,
/// before the entry is created, so the entry is hashed in the local index with its local
/// address from the start and replies can be matched by [`ConnTable::lookup_fullnat_out`].
pub trait LocalAddrs {
    /// A free `(laddr, lport)` for a `proto` connection of service `svc` toward the real
    /// server `rs:rs_port`, or `None` if none is left. `conns` answers "is this tuple taken"
    /// through [`ConnTable::lookup_fullnat_out`]`(proto, rs, rs_port, laddr, lport)`.
    fn pick(
        &mut self,
        svc: &ServiceKey,
        proto: u8,
        rs: IpAddr,
        rs_port: u16,
        conns: &ConnTable,
    ) -> Option<(IpAddr, u16)>;
}

/// The verdict for a client→server packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward as the route says.
    Forward(Route),
    /// Not IPVS traffic (or a packet IPVS lets through): hand it to the host stack.
    Pass,
    /// No destination available: answer with ICMP port unreachable and drop (`ip_vs_leave`).
    Reject,
    /// Drop silently.
    Drop(DropReason),
}

/// Where a reply goes (NAT and full-NAT: rewrite the source back to the virtual service).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ReplyRoute {
    /// The connection.
    pub conn: ConnId,
    /// Virtual address the reply must come from.
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Client address.
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Forwarding method of the connection.
    pub fwd: FwdMethod,
}

/// The verdict for a packet whose connection entry could not be inserted.
pub(crate) fn insert_refused(e: &crate::Error) -> Verdict {
    match e {
        crate::Error::Range(m) if *m == crate::conn::TABLE_FULL => {
            Verdict::Drop(DropReason::TableFull)
        }
        _ => Verdict::Drop(DropReason::NoMemory),
    }
}

fn fwd_of(flags_: u32) -> FwdMethod {
    match flags_ & flags::FWD_MASK {
        flags::MASQ => FwdMethod::Masq,
        flags::LOCALNODE => FwdMethod::Local,
        flags::TUNNEL => FwdMethod::Tunnel,
        flags::DROUTE => FwdMethod::Route,
        flags::BYPASS => FwdMethod::Bypass,
        _ => FwdMethod::FullNat,
    }
}

/// One director: everything `ip_vs` keeps per network namespace.
#[derive(Clone, Debug)]
pub struct Director {
    /// Services and destinations.
    pub table: ServiceTable,
    /// Connections and templates.
    pub conns: ConnTable,
    /// Settings.
    pub sys: Sysctls,
    /// Memory-pressure defences.
    pub defense: Defense,
    /// Totals over every service (`ipvsadm --stats` has them in `/proc/net/ip_vs_stats`).
    pub total: Stats,
    /// Connection synchronisation: the sync sysctls and, while a master daemon runs, the
    /// announcements the packet path queued for the sync engine.
    pub sync: SyncTap,
    next_estimate: Time,
    next_second: Time,
    expired: Vec<Expired>,
}

impl Director {
    /// A director with an empty table at time `now`. `seed` keys the connection hash; take it from
    /// a random source so that clients cannot aim their tuples at one bucket.
    pub fn new(seed: HashSeed, now: Time) -> Director {
        Director {
            table: ServiceTable::new(),
            conns: ConnTable::new(seed, now),
            sys: Sysctls::default(),
            defense: Defense::default(),
            total: Stats::default(),
            sync: SyncTap::default(),
            next_estimate: now + PERIOD,
            next_second: now + Duration::from_secs(1),
            expired: Vec::new(),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Client → server

    /// Handle a client→server packet (`ip_vs_in_hook`): find its connection or schedule a new
    /// one, run the state machine, count it, and say where it goes.
    pub fn packet_in(
        &mut self,
        pkt: &Packet<'_>,
        now: Time,
        rng: &mut dyn RandomSource,
    ) -> Verdict {
        self.input(pkt, now, rng, true, None)
    }

    /// [`Director::packet_in`] for a data plane that owns full-NAT local address pools: a new
    /// connection to a `--fullnat` destination takes its local address and port from `local`
    /// (dropped with [`DropReason::NoLocalAddress`] if there is none). Everything else is
    /// exactly [`Director::packet_in`].
    pub fn packet_in_fullnat(
        &mut self,
        pkt: &Packet<'_>,
        now: Time,
        rng: &mut dyn RandomSource,
        local: &mut dyn LocalAddrs,
    ) -> Verdict {
        self.input(pkt, now, rng, true, Some(local))
    }

    /// Whether the packet plane's SYN proxy answers for a TCP packet to `daddr:dport` (mark
    /// `fwmark`): `rvs_syn_proxy` is on and the service it belongs to has real servers, all of
    /// them NAT or full-NAT — the methods whose replies pass through the director, so that it
    /// can open the connection to the real server itself and adjust sequence numbers both ways
    /// (docs/internals/syn-flood.md says why DR and TUN cannot).
    pub fn syn_proxy_serves(&self, fwmark: u32, daddr: &IpAddr, dport: u16) -> bool {
        if !self.sys.syn_proxy {
            return false;
        }
        let Some(svc) = self
            .table
            .find(fwmark, Protocol::Tcp, daddr, dport)
            .and_then(|sid| self.table.service(sid))
        else {
            return false;
        };
        !svc.dests.is_empty()
            && svc.dests.iter().all(|&d| {
                self.table
                    .dests
                    .get(d)
                    .is_some_and(|d| matches!(d.cfg.fwd, FwdMethod::Masq | FwdMethod::FullNat))
            })
    }

    /// Like [`Director::packet_in`] for a socket data plane that sees connection events rather
    /// than packets: the event (e.g. a SYN for an accepted TCP connection, or a UDP flow's first
    /// datagram) finds or schedules the connection and drives its state, but no packet or byte
    /// is counted — traffic is reported separately with [`Director::conn_traffic`].
    pub fn open_flow(
        &mut self,
        pkt: &Packet<'_>,
        now: Time,
        rng: &mut dyn RandomSource,
    ) -> Verdict {
        self.input(pkt, now, rng, false, None)
    }

    /// Drive the state machine of connection `id` with an event seen by a socket data plane
    /// (no traffic is counted). Returns false if the connection no longer exists.
    pub fn conn_event(&mut self, id: ConnId, dir: Direction, seg: Segment, now: Time) -> bool {
        self.conns
            .on_packet(id, dir, seg, &self.sys.conn, now, &mut self.table)
            .is_some()
    }

    /// Count traffic a socket data plane relayed for connection `id` (`in` = client → server)
    /// and restart its timer, as packets of the connection would. Returns false if the
    /// connection no longer exists.
    pub fn conn_traffic(&mut self, id: ConnId, traffic: Traffic, now: Time) -> bool {
        let Some(c) = self.conns.get_mut(id) else {
            return false;
        };
        c.in_pkts = c
            .in_pkts
            .wrapping_add(u32::try_from(traffic.in_pkts).unwrap_or(u32::MAX));
        let dest = c.dest();
        self.count_many(dest, traffic);
        self.conns.restart_timer(id, now);
        true
    }

    /// Count `traffic` a kernel fast path (rvsd's XDP program) forwarded for connection `id`
    /// since the last call, as [`Director::conn_traffic`] does, and — on a sync master — run
    /// the sync rules for that batch of client packets.
    ///
    /// Why: the kernel runs its rules at every client packet (`in_pkts % period ==
    /// threshold`: packets 3, 53, 103 ...), and the packet path does so here, but the packets
    /// the fast path forwards never reach it: rvs-core learns only their number, every sweep.
    /// Without this a flow whose third packet already went through the program was never
    /// announced, and one the program carries was never announced again, so its entry on the
    /// backup expired while the connection lived on. A batch is announced once when any of its
    /// packets would have been ([`crate::sync::batch_count`]).
    pub fn fast_path_traffic(&mut self, id: ConnId, traffic: Traffic, now: Time) -> bool {
        let Some(before) = self.conns.get(id).map(|c| c.in_pkts) else {
            return false;
        };
        self.conn_traffic(id, traffic, now);
        if self.sync.is_master() {
            let added = u32::try_from(traffic.in_pkts).unwrap_or(u32::MAX);
            if let Some(pkts) = crate::sync::batch_count(&self.sync.params, before, added) {
                self.sync_conn(id, pkts, now);
            }
        }
        true
    }

    fn input(
        &mut self,
        pkt: &Packet<'_>,
        now: Time,
        rng: &mut dyn RandomSource,
        count: bool,
        local: Option<&mut dyn LocalAddrs>,
    ) -> Verdict {
        if self.sync.forwarding_disabled() {
            return Verdict::Pass;
        }
        let proto = pkt.proto.number();
        let mut found = self
            .conns
            .lookup_in(proto, &pkt.saddr, pkt.sport, &pkt.daddr, pkt.dport);
        if let Some(id) = found {
            if let Some(ex) = self.conns.existing(id, &self.table) {
                match existing_conn_action(&self.sys.conn, &ex, pkt.starts_connection(), false) {
                    ExistingAction::Use => {}
                    ExistingAction::Reschedule { expire_old } => {
                        if expire_old {
                            self.expire_conn_now(id, now);
                        }
                        found = None;
                    }
                    ExistingAction::Drop { expire_old } => {
                        if expire_old {
                            self.expire_conn_now(id, now);
                        }
                        return Verdict::Drop(DropReason::DestUnavailable);
                    }
                }
            }
        }
        let (id, new) = match found {
            Some(id) => (id, false),
            None => match self.try_schedule(pkt, now, rng, local) {
                Ok(id) => (id, true),
                Err(v) => return v,
            },
        };
        self.account_in(id, pkt, now, new, count)
    }

    /// Remove connection `id` at once, as if it had expired (a socket data plane whose connect to
    /// the real server failed). Entries that control others are only made to expire.
    pub fn abort_conn(&mut self, id: ConnId, now: Time) {
        self.expire_conn_now(id, now);
    }

    /// Remove a connection now (the kernel's `ip_vs_conn_expire_now` fires its timer at once; we
    /// remove it directly so the new connection for the same tuple is the only one that
    /// matches). Entries that control others are only made to expire, which re-arms them.
    fn expire_conn_now(&mut self, id: ConnId, now: Time) {
        let controls = self.conns.get(id).is_some_and(|c| c.n_control() > 0);
        if controls {
            self.conns.expire_now(id, now);
        } else if let Some(r) = self.conns.remove_and_unbind(id, now, &mut self.table) {
            self.drop_unused_controller(r.control, now);
        }
    }

    /// After a connection was dropped outright (not by its normal timeout): drop its controller
    /// too if that is a non-ASSURED template that controls nothing any more (`ip_vs_conn_expire`
    /// with `cp->timeout == 0`).
    fn drop_unused_controller(&mut self, control: Option<ConnId>, now: Time) {
        let Some(ct) = control else { return };
        let Some(c) = self.conns.get(ct) else { return };
        let unused = c.n_control() == 0;
        let assured_template = c.is_template() && c.state() & tmpl::ASSURED != 0;
        if unused && !assured_template {
            self.conns.remove_and_unbind(ct, now, &mut self.table);
        }
    }

    fn account_in(
        &mut self,
        id: ConnId,
        pkt: &Packet<'_>,
        now: Time,
        new: bool,
        count: bool,
    ) -> Verdict {
        self.conns.on_packet(
            id,
            Direction::Input,
            pkt.seg,
            &self.sys.conn,
            now,
            &mut self.table,
        );
        let Some(info) = self.conns.info(id) else {
            return Verdict::Drop(DropReason::NoMemory);
        };
        let route = Route {
            conn: Some(id),
            dest: info.dest,
            fwd: fwd_of(info.flags),
            daddr: info.daddr,
            dport: info.dport,
            local: info.local,
            new,
        };
        let (dest, one_packet, control) =
            (info.dest, info.flags & flags::ONE_PACKET != 0, info.control);
        let mut pkts = 0;
        let master = count && self.sync.is_master();
        // The sync rules, decided on the entry in hand when it alone decides (the common
        // entry: no template above it, the packet-count rule): a master's packet then costs
        // a few instructions, and an announced entry needs no second look-up.
        let mut announce = if master { InHand::Rules } else { InHand::No };
        if count {
            if let Some(c) = self.conns.get_mut(id) {
                c.in_pkts = c.in_pkts.wrapping_add(1);
                pkts = c.in_pkts;
                if master && !one_packet {
                    announce = crate::sync::decide_in_hand(&self.sync.params, c, pkts, now);
                }
            }
            self.count(dest, u64::from(pkt.len), true);
        }
        match announce {
            InHand::No => {}
            InHand::Yes => self.sync_record(id, now),
            InHand::Rules => {
                // `ip_vs_sync_conn`: one-packet entries count as at the threshold (only their
                // template can be announced, and the sync rules count the template's packet).
                let pkts = if one_packet {
                    self.sync.params.threshold
                } else {
                    pkts
                };
                self.sync_conn(id, pkts, now);
            }
        }
        if one_packet {
            // One-packet scheduling: the entry served this packet and is gone; its template
            // (if persistent) still counts the packet.
            if let Some(t) = control
                .filter(|_| !master)
                .and_then(|t| self.conns.get_mut(t))
            {
                t.in_pkts = t.in_pkts.wrapping_add(1);
            }
            self.conns.remove_and_unbind(id, now, &mut self.table);
            return Verdict::Forward(Route {
                conn: None,
                ..route
            });
        }
        Verdict::Forward(route)
    }

    /// `ip_vs_in_stats` / `ip_vs_out_stats`: counted only while the dest is AVAILABLE.
    fn count(&mut self, dest: Option<DestId>, bytes: u64, inbound: bool) {
        let Some(did) = dest else { return };
        let add = |s: &mut Stats| {
            if inbound {
                s.count_in(bytes)
            } else {
                s.count_out(bytes)
            }
        };
        if self.table.count(did, true, add) {
            add(&mut self.total);
        }
    }

    /// A data plane measured how long `dest` took to answer (`us` microseconds: connect plus
    /// time to first byte on the socket proxy, SYN → SYN-ACK on the packet plane), for the
    /// latency-aware scheduler ([`crate::latency::LatencyEwma`]). Only destinations of a
    /// `pewma` service keep samples; for the others this is a look-up and nothing more.
    pub fn latency_sample(&mut self, dest: DestId, us: u64, now: Time) {
        let Some(d) = self.table.dests.get(dest) else {
            return;
        };
        let Some(crate::sched::Scheduler::Pewma(s)) =
            self.table.service(d.svc).and_then(|s| s.scheduler())
        else {
            return;
        };
        let params = *s.params();
        if let Some(d) = self.table.dests.get_mut(dest) {
            d.latency.sample(us, now, &params);
        }
    }

    /// Count traffic of a flow that has no connection entry (one-packet scheduling) against its
    /// destination, its service and the total.
    pub fn dest_traffic(&mut self, dest: DestId, t: Traffic) {
        self.count_many(Some(dest), t);
    }

    /// Add a batch of traffic to the dest, its service and the total (AVAILABLE dests only).
    fn count_many(&mut self, dest: Option<DestId>, t: Traffic) {
        let Some(did) = dest else { return };
        if self.table.count(did, true, |s| s.count_traffic(t)) {
            self.total.count_traffic(t);
        }
    }

    /// `ip_vs_conn_stats`: one more connection for the dest, its service and the total.
    fn count_conn(&mut self, dest: DestId) {
        if self.table.count(dest, false, Stats::count_conn) {
            self.total.count_conn();
        }
    }

    /// `ip_vs_try_to_schedule` + `ip_vs_schedule` (docs/internals/connections.md#life-of-an-entry).
    fn try_schedule(
        &mut self,
        pkt: &Packet<'_>,
        now: Time,
        rng: &mut dyn RandomSource,
        local: Option<&mut dyn LocalAddrs>,
    ) -> Result<ConnId, Verdict> {
        if !pkt.may_create(&self.sys.conn) {
            return Err(Verdict::Pass);
        }
        let Some(sid) = self
            .table
            .find(pkt.fwmark, pkt.proto, &pkt.daddr, pkt.dport)
        else {
            return Err(Verdict::Pass);
        };
        if self.defense.todrop_packet() {
            return Err(Verdict::Drop(DropReason::Defense));
        }
        // Never schedule active FTP data connections coming from a real server.
        if pkt.sport == FTPDATA {
            return Err(Verdict::Pass);
        }
        let Some(svc) = self.table.service(sid) else {
            return Err(Verdict::Pass);
        };
        let (key, cfg_flags, persistent) = (svc.key, svc.cfg.flags, svc.cfg.is_persistent());
        let flow = Flow {
            proto: Some(pkt.proto),
            saddr: pkt.saddr,
            sport: pkt.sport,
            daddr: pkt.daddr,
            dport: pkt.dport,
            inverse: false,
            midstream: matches!(pkt.seg, Segment::Tcp(_) | Segment::Sctp(_))
                && !pkt.starts_connection(),
        };
        let one_packet = if cfg_flags.has(ServiceFlags::ONEPACKET) && pkt.proto == Protocol::Udp {
            flags::ONE_PACKET
        } else {
            0
        };
        if persistent {
            return self.schedule_persistent(sid, pkt, &flow, one_packet, now, rng, local);
        }
        if key.fwmark() == 0 && pkt.dport != key.port() {
            // A non-persistent port-0 (or FTP-matched) service cannot schedule this packet.
            return Err(self.leave(sid, pkt, now));
        }
        let Some(dest) = self.table.schedule(sid, &flow, now, rng) else {
            return Err(self.leave(sid, pkt, now));
        };
        let d = &self.table.dests[dest];
        let dport = if d.cfg.port != 0 {
            d.cfg.port
        } else {
            pkt.dport
        };
        let mut n = NewConn::new(
            pkt.proto.number(),
            pkt.saddr,
            pkt.sport,
            pkt.daddr,
            pkt.dport,
            d.cfg.addr,
            dport,
        );
        n.flags = one_packet;
        n.dest = Some(dest);
        n.fwmark = pkt.fwmark;
        n.local = self.pick_local(local, &key, pkt.proto.number(), dest, dport)?;
        let id = self
            .conns
            .insert(&n, now, &mut self.table)
            .map_err(|e| insert_refused(&e))?;
        self.count_conn(dest);
        Ok(id)
    }

    /// The full-NAT local address of a new connection to `dest` (real-server port `dport`), when a picker is given and
    /// the dest is `--fullnat`; `None` otherwise (the entry then has no local address).
    fn pick_local(
        &self,
        local: Option<&mut dyn LocalAddrs>,
        key: &ServiceKey,
        proto: u8,
        dest: DestId,
        dport: u16,
    ) -> Result<Option<(IpAddr, u16)>, Verdict> {
        let (Some(local), Some(d)) = (local, self.table.dests.get(dest)) else {
            return Ok(None);
        };
        if d.cfg.fwd != FwdMethod::FullNat {
            return Ok(None);
        }
        match local.pick(key, proto, d.cfg.addr, dport, &self.conns) {
            Some(l) => Ok(Some(l)),
            None => Err(Verdict::Drop(DropReason::NoLocalAddress)),
        }
    }

    /// `ip_vs_sched_persist` (docs/internals/persistence.md).
    #[allow(clippy::too_many_arguments)]
    fn schedule_persistent(
        &mut self,
        sid: ServiceId,
        pkt: &Packet<'_>,
        flow: &Flow,
        one_packet: u32,
        now: Time,
        rng: &mut dyn RandomSource,
        local: Option<&mut dyn LocalAddrs>,
    ) -> Result<ConnId, Verdict> {
        let Some(svc) = self.table.service(sid) else {
            return Err(Verdict::Pass);
        };
        let (key, netmask, timeout) = (svc.key, svc.cfg.netmask, svc.cfg.timeout);
        let pe = svc.cfg.pe.as_ref().map(PeKind::content_only);
        let snet = mask_addr(&pkt.saddr, netmask);
        // Template key: <proto, snet, 0, vaddr, vport> where vport is the service port for a
        // normal service, 0 for FTP and port-0 services, and <IPPROTO_IP, snet, 0, fwmark, 0> for
        // fwmark services.
        let (tproto, tvaddr, tvport) = if pkt.dport == key.port() {
            let vport = if key.port() != FTPPORT { pkt.dport } else { 0 };
            (pkt.proto.number(), pkt.daddr, vport)
        } else if key.fwmark() != 0 {
            (0u8, IpAddr::V4(Ipv4Addr::from(key.fwmark())), 0)
        } else {
            (pkt.proto.number(), pkt.daddr, 0)
        };
        let pe_data = match pe {
            // SIP: the Call-ID of the packet's payload. A TCP SYN has none, so on the packet
            // plane only UDP works, as in the kernel; the socket proxy hands over the first
            // segment of a TCP connection.
            Some(false) => match pe_sip::call_id(pkt.payload) {
                Some(d) => Some(d),
                None => return Err(Verdict::Drop(DropReason::PersistenceEngine)),
            },
            // The content engines' keys come through `pe_target` (socket proxy only); the
            // control plane refuses them on services of the packet plane.
            Some(true) => return Err(Verdict::Drop(DropReason::PersistenceEngine)),
            None => None,
        };
        let template = self
            .conns
            .lookup_template(tproto, &snet, &tvaddr, tvport, pe_data)
            .filter(|&t| self.check_template(t));
        let (template, dest) = match template {
            Some(t) => match self.conns.get(t).and_then(|c| c.dest()) {
                Some(d) => (t, d),
                None => return Err(self.leave(sid, pkt, now)),
            },
            None => {
                let Some(dest) = self.table.schedule(sid, flow, now, rng) else {
                    return Err(self.leave(sid, pkt, now));
                };
                let d = &self.table.dests[dest];
                let tdport = if pkt.dport == key.port() && key.port() != FTPPORT {
                    d.cfg.port
                } else {
                    0
                };
                let mut n = NewConn::new(tproto, snet, 0, tvaddr, tvport, d.cfg.addr, tdport);
                n.flags = flags::TEMPLATE;
                n.dest = Some(dest);
                n.fwmark = pkt.fwmark;
                n.timeout = Duration::from_secs(u64::from(timeout));
                n.pe_data = pe_data;
                let t = self
                    .conns
                    .insert(&n, now, &mut self.table)
                    .map_err(|e| insert_refused(&e))?;
                (t, dest)
            }
        };
        let d = &self.table.dests[dest];
        let dport = if pkt.dport == key.port() && d.cfg.port != 0 {
            d.cfg.port
        } else {
            pkt.dport
        };
        let mut n = NewConn::new(
            pkt.proto.number(),
            pkt.saddr,
            pkt.sport,
            pkt.daddr,
            pkt.dport,
            d.cfg.addr,
            dport,
        );
        n.flags = one_packet;
        n.dest = Some(dest);
        n.fwmark = pkt.fwmark;
        n.timeout = INITIAL_TIMEOUT;
        n.local = self.pick_local(local, &key, pkt.proto.number(), dest, dport)?;
        let id = self
            .conns
            .insert(&n, now, &mut self.table)
            .map_err(|e| insert_refused(&e))?;
        self.conns.set_control(id, template);
        // `ip_vs_conn_put(ct)`: the template's timer restarts with its own timeout.
        self.conns.restart_timer(template, now);
        self.count_conn(dest);
        Ok(id)
    }

    /// `ip_vs_check_template`: a template is valid while its dest exists, is AVAILABLE and (with
    /// `expire_quiescent_template`) has a non-zero weight; otherwise it is invalidated in place
    /// (its ports set to 0xffff and re-hashed so it never matches again) and left to expire.
    fn check_template(&mut self, t: ConnId) -> bool {
        let dest = self.conns.get(t).and_then(|c| c.dest());
        let ok = dest.and_then(|d| self.table.dests.get(d)).is_some_and(|d| {
            d.available && !(self.sys.expire_quiescent_template && d.weight() == 0)
        });
        if !ok {
            self.conns.invalidate_template(t);
        }
        ok
    }

    /// `ip_vs_leave`: what happens to a packet for which no destination could be chosen.
    fn leave(&mut self, sid: ServiceId, pkt: &Packet<'_>, now: Time) -> Verdict {
        let Some(svc) = self.table.service(sid) else {
            return Verdict::Pass;
        };
        let key = svc.key;
        if self.sys.cache_bypass && key.fwmark() != 0 {
            // Forward unchanged to the original destination; the data plane checks that it is
            // a non-local unicast address, as the kernel does, before using this route.
            let mut n = NewConn::new(
                pkt.proto.number(),
                pkt.saddr,
                pkt.sport,
                pkt.daddr,
                pkt.dport,
                pkt.daddr,
                pkt.dport,
            );
            n.flags = flags::BYPASS;
            n.fwmark = pkt.fwmark;
            return match self.conns.insert(&n, now, &mut self.table) {
                Ok(id) => Verdict::Forward(Route {
                    conn: Some(id),
                    dest: None,
                    fwd: FwdMethod::Bypass,
                    daddr: pkt.daddr,
                    dport: pkt.dport,
                    local: None,
                    new: true,
                }),
                Err(e) => insert_refused(&e),
            };
        }
        if matches!(key, ServiceKey::Addr { port: FTPPORT, .. }) && pkt.dport != FTPPORT {
            return Verdict::Pass;
        }
        Verdict::Reject
    }

    // -----------------------------------------------------------------------------------------
    // Server → client

    /// Handle a reply that passes through the director (`ip_vs_out_hook`): NAT replies are
    /// matched by the client tuple and the real server's address, full-NAT replies by the local
    /// address and port. Returns `None` if it belongs to no connection.
    pub fn packet_out(&mut self, pkt: &Packet<'_>, now: Time) -> Option<ReplyRoute> {
        if self.sync.forwarding_disabled() {
            return None;
        }
        let proto = pkt.proto.number();
        let id = self
            .conns
            .lookup_out(proto, &pkt.saddr, pkt.sport, &pkt.daddr, pkt.dport)
            .or_else(|| {
                self.conns
                    .lookup_fullnat_out(proto, &pkt.saddr, pkt.sport, &pkt.daddr, pkt.dport)
            })?;
        let syn_ack = self.syn_ack_time(id, pkt.seg, now);
        self.conns.on_packet(
            id,
            Direction::Output,
            pkt.seg,
            &self.sys.conn,
            now,
            &mut self.table,
        );
        let info = self.conns.info(id)?;
        let route = ReplyRoute {
            conn: id,
            vaddr: info.vaddr,
            vport: info.vport,
            caddr: info.caddr,
            cport: info.cport,
            fwd: fwd_of(info.flags),
        };
        let dest = info.dest;
        self.count(dest, u64::from(pkt.len), false);
        if let (Some(ms), Some(d)) = (syn_ack, dest) {
            self.latency_sample(d, ms.saturating_mul(1000), now);
        }
        Some(route)
    }

    /// For a real server's SYN-ACK to a NAT or full-NAT connection still in SYN_RECV: the time
    /// since the client's (last) SYN, in ms. The entry keeps no creation time, but in SYN_RECV
    /// its timer was last restarted by that SYN: `expires − timeout` is when it passed.
    fn syn_ack_time(&self, id: ConnId, seg: Segment, now: Time) -> Option<u64> {
        let Segment::Tcp(f) = seg else { return None };
        if !(f.syn && f.ack) {
            return None;
        }
        let c = self.conns.get(id)?;
        if c.state() != crate::conn::state::tcp::SYN_RECV
            || !matches!(fwd_of(c.flags()), FwdMethod::Masq | FwdMethod::FullNat)
        {
            return None;
        }
        let armed = c.expires()?;
        let syn_at = armed.0.checked_sub(c.timeout().as_millis())?;
        Some(now.0.saturating_sub(syn_at))
    }

    // -----------------------------------------------------------------------------------------
    // Time

    /// Expire connections and run the periodic work that is due: the defences and scheduler
    /// housekeeping every second, the rate estimator every 2 s. `available_pages` is the free
    /// memory the caller measured, for the automatic defences. At most `budget` connections are
    /// expired per call; returns true if more are due (call again soon).
    pub fn tick(
        &mut self,
        now: Time,
        available_pages: u64,
        budget: usize,
        rng: &mut dyn RandomSource,
    ) -> bool {
        let mut out = core::mem::take(&mut self.expired);
        out.clear();
        let more = self.conns.expire(now, budget, &mut self.table, &mut out);
        if self.sync.is_master() {
            // An entry kept alive at expiry (it controls others) is announced again, so the
            // backup's copy does not expire under its children.
            let threshold = self.sync.params.threshold;
            for e in &out {
                if let Expired::Rearmed(id) = *e {
                    self.sync_conn(id, threshold, now);
                }
            }
        }
        self.expired = out;
        while now >= self.next_second {
            self.next_second = self.next_second + Duration::from_secs(1);
            self.defense.update(available_pages);
            self.sys.conn.secure_tcp = self.defense.secure_tcp_active();
            if self.defense.drop_entry_active() {
                self.random_drop_entry(now, rng);
            }
            self.table.tick(now);
        }
        while now >= self.next_estimate {
            self.next_estimate = self.next_estimate + PERIOD;
            if !self.sys.run_estimation {
                continue;
            }
            self.table.estimate();
            self.total.est.tick(self.total.live);
        }
        more
    }

    /// Whether [`Director::tick`] has nothing to do however long it is not called: no
    /// connection entry (nothing to expire, no drop_entry candidate), no estimator with work,
    /// no trashed destination waiting, no scheduler housekeeping. A data plane may then stop
    /// ticking this director until it uses it again, and must call [`Director::resume`]
    /// first: that is how an idle table of 10 000 services costs its ticker nothing.
    pub fn settled(&self) -> bool {
        let est = self.sys.run_estimation;
        self.conns.is_empty() && self.table.at_rest(est) && (!est || self.total.is_settled())
    }

    /// Bring a [`Director::settled`] director that has not been ticked for a while up to
    /// `now`, before anything else uses it, with what every skipped tick would have left:
    /// the defences' state from the current memory figure (`update_defense_level` depends on
    /// nothing else), the schedulers' housekeeping caught up, and the estimator's 2-second
    /// steps skipped (each was the identity on settled estimators), keeping their phase.
    pub fn resume(&mut self, now: Time, available_pages: u64) {
        // Nothing is armed: this only moves the wheel's clock, so new timers are filed
        // relative to now.
        let mut out = core::mem::take(&mut self.expired);
        out.clear();
        self.conns.expire(now, 1, &mut self.table, &mut out);
        self.expired = out;
        let second = Duration::from_secs(1);
        if now >= self.next_second {
            let missed = now.saturating_since(self.next_second).0 / second.0 + 1;
            self.next_second = self.next_second + Duration(missed * second.0);
            self.defense.update(available_pages);
            self.sys.conn.secure_tcp = self.defense.secure_tcp_active();
            self.table.resume(now);
            self.table.tick(now);
        }
        if now >= self.next_estimate {
            let missed = now.saturating_since(self.next_estimate).0 / PERIOD.0 + 1;
            self.next_estimate = self.next_estimate + Duration(missed * PERIOD.0);
        }
    }

    /// `ip_vs_random_dropentry`: scan a random 1/32 of the table and drop what the rules allow
    /// (docs/internals/sysctls.md#memory-pressure-defences drop_entry).
    fn random_drop_entry(&mut self, now: Time, rng: &mut dyn RandomSource) {
        let n = self.conns.hashed_len();
        if n == 0 {
            return;
        }
        let chunk = (n / 32).max(1);
        let start = rng.below(n as u32) as usize;
        // The kernel picks random hash buckets; a random window over the index is the same
        // sampling without exposing bucket internals.
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .skip(start)
            .chain(self.conns.iter())
            .take(chunk)
            .collect();
        for id in ids {
            if self.todrop(id, now) {
                if let Some(r) = self.conns.remove_and_unbind(id, now, &mut self.table) {
                    self.drop_unused_controller(r.control, now);
                }
            }
        }
    }

    /// Whether entry `id` may be dropped by drop_entry.
    fn todrop(&mut self, id: ConnId, now: Time) -> bool {
        use crate::conn::state::{sctp, tcp};
        let Some(c) = self.conns.get(id) else {
            return false;
        };
        if c.n_control() > 0 {
            return false;
        }
        let idle = c
            .expires()
            .map(|e| now.saturating_since(e - c.timeout()).as_secs())
            .unwrap_or(0);
        let in_pkts = c.in_pkts;
        if c.is_template() {
            if c.state() & tmpl::ASSURED == 0 {
                return true;
            }
            // ASSURED templates are kept, except those of one-packet services.
            let ops = c
                .dest()
                .and_then(|d| self.table.dests.get(d))
                .and_then(|d| self.table.service(d.svc))
                .is_some_and(|s| s.cfg.flags.has(ServiceFlags::ONEPACKET));
            return ops && self.defense.todrop_entry(in_pkts, idle);
        }
        match c.protocol() {
            6 => match c.state() {
                tcp::SYN_RECV | tcp::SYNACK => true,
                tcp::ESTABLISHED => self.defense.todrop_entry(in_pkts, idle),
                _ => false,
            },
            132 => match c.state() {
                sctp::INIT1 | sctp::INIT => true,
                sctp::ESTABLISHED => self.defense.todrop_entry(in_pkts, idle),
                _ => false,
            },
            _ => self.defense.todrop_entry(in_pkts, idle),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Administration

    /// `ipvsadm -Z` for one service (and its dests), or everything with `None`.
    pub fn zero(&mut self, svc: Option<ServiceId>) {
        match svc {
            Some(sid) => {
                let dests: Vec<DestId> = self
                    .table
                    .service(sid)
                    .map(|s| s.dests.clone())
                    .unwrap_or_default();
                if let Some(s) = self.table.service_stats_mut(sid) {
                    s.zero();
                }
                for d in dests {
                    if let Some(d) = self.table.dests.get_mut(d) {
                        d.stats.zero();
                    }
                }
            }
            None => {
                self.table.for_each_stats_mut(Stats::zero);
                self.total.zero();
            }
        }
    }

    /// `ipvsadm -C`: delete every service. As in the kernel, connections are not flushed: they
    /// stay until they expire, and their packets are dropped (or, with `expire_nodest_conn`,
    /// expired) because their destinations are no longer available.
    pub fn clear(&mut self, now: Time) {
        self.table.clear(now);
        if self.sys.conn.expire_nodest_conn {
            self.expire_nodest(now);
        }
    }

    /// `ipvsadm -d`: delete a destination; with `expire_nodest_conn` its connections are expired
    /// at once (the kernel queues the same sweep).
    pub fn del_dest(
        &mut self,
        key: &ServiceKey,
        addr: &IpAddr,
        port: u16,
        now: Time,
    ) -> crate::Result<DestId> {
        let id = self.table.del_dest(key, addr, port, now)?;
        if self.sys.conn.expire_nodest_conn {
            self.expire_nodest(now);
        }
        Ok(id)
    }

    /// `ipvsadm -D`: delete a service (its destinations go to the trash).
    pub fn del_service(&mut self, key: &ServiceKey, now: Time) -> crate::Result<()> {
        self.table.del_service(key, now)?;
        if self.sys.conn.expire_nodest_conn {
            self.expire_nodest(now);
        }
        Ok(())
    }

    /// Expire every connection whose destination is no longer available.
    fn expire_nodest(&mut self, now: Time) {
        let gone: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|&id| {
                self.conns
                    .get(id)
                    .and_then(|c| c.dest())
                    .and_then(|d| self.table.dests.get(d))
                    .is_some_and(|d| !d.available)
            })
            .collect();
        for id in gone {
            self.expire_conn_now(id, now);
        }
    }
}
