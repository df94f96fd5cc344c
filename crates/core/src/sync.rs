//! Connection synchronisation between directors: what a synchronised entry carries, and the
//! settings that drive the kernel's rules (`docs/internals/sync.md`).
//!
//! The wire format lives in the `rvs-sync` crate; this module owns the model both ends share: a
//! [`SyncConn`] is one connection or template as a master announces it and a backup applies it,
//! independent of the protocol version that carries it.

use std::collections::VecDeque;
use std::net::IpAddr;

use crate::addr::{Family, Protocol};
use crate::conn::state::{proto, sctp, tcp, tmpl};
use crate::conn::{flags, ConnId, ConnTable, NewConn};
use crate::dest::DestId;
use crate::director::Director;
use crate::service::ServiceKey;
use crate::time::{Duration, Time};

/// Sequence-number adjustment of one direction (`struct ip_vs_seq`), carried by the SEQ option
/// when a connection has IN_SEQ/OUT_SEQ (the FTP helper's NAT rewrites).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqAdjust {
    /// Sequence number at which the current delta starts to apply.
    pub init_seq: u32,
    /// Delta applied to sequence numbers after `init_seq`.
    pub delta: u32,
    /// Delta applied before `init_seq`.
    pub previous_delta: u32,
}

/// Sequence adjustments of both directions (`struct ip_vs_sync_conn_options`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqData {
    /// Client → server.
    pub in_seq: SeqAdjust,
    /// Server → client.
    pub out_seq: SeqAdjust,
}

/// One connection or persistence template as it travels between directors.
///
/// All three addresses have the family of `caddr`, except the virtual address of a fwmark
/// template, which is the mark as an IPv4 address (as in the connection table) whatever the
/// family; on the wire an IPv6 record carries it in its first four bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SyncConn {
    /// IANA protocol; 0 for fwmark templates.
    pub protocol: u8,
    /// `IP_VS_CONN_F_*` flags as the master has them (HASHED is never sent).
    pub flags: u32,
    /// Protocol state (templates: NONE or ASSURED).
    pub state: u16,
    /// Client address (the masked client network for templates).
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real-server address.
    pub daddr: IpAddr,
    /// Real-server port.
    pub dport: u16,
    /// Firewall mark (version 1 only; 0 from version 0).
    pub fwmark: u32,
    /// Timeout in seconds (version 1 only; 0 from version 0, where the backup uses its own
    /// timeout for the state).
    pub timeout_secs: u32,
    /// Sequence adjustments; present exactly when `flags` has IN_SEQ or OUT_SEQ.
    pub seq: Option<SeqData>,
    /// Persistence-engine data (SIP Call-ID), ≤ 255 bytes; empty when none.
    pub pe_data: Vec<u8>,
    /// Persistence-engine name (`sip`), ≤ 16 bytes; empty when none. Sent only with PE data.
    pub pe_name: Vec<u8>,
    /// FULLNAT: the director's local address and port the real server talks to (an rvs option
    /// kernel peers skip; version 1 only). Same family as the real server.
    pub local: Option<(IpAddr, u16)>,
}

/// Which of `ports` sync sockets (a power of two) carries the connection of this client
/// tuple: the same one for every update of it, so a backup applies them in order.
fn tuple_port(caddr: &[u8], cport: u16, vport: u16, protocol: u8, ports: u32) -> usize {
    if ports <= 1 {
        return 0;
    }
    // FNV-1a over the client tuple: cheap, and spreads clients over the sockets.
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |b: &[u8]| {
        for x in b {
            h = (h ^ u32::from(*x)).wrapping_mul(0x0100_0193);
        }
    };
    eat(caddr);
    eat(&cport.to_be_bytes());
    eat(&vport.to_be_bytes());
    eat(&[protocol]);
    (h & (ports - 1)) as usize
}

impl SyncConn {
    /// Which of `ports` sync sockets (a power of two) carries this connection: the same one
    /// for every update of it, so a backup applies them in order.
    pub fn port_index(&self, ports: u32) -> usize {
        match self.caddr {
            IpAddr::V4(a) => tuple_port(&a.octets(), self.cport, self.vport, self.protocol, ports),
            IpAddr::V6(a) => tuple_port(&a.octets(), self.cport, self.vport, self.protocol, ports),
        }
    }

    /// Whether the entry is IPv6 (by its client address).
    pub fn is_v6(&self) -> bool {
        self.caddr.is_ipv6()
    }
}

/// The common [`SyncConn`] in fixed form: an IPv4 connection or template with nothing
/// optional — no sequence adjustments (neither IN_SEQ nor OUT_SEQ), no persistence-engine
/// data or name, no full-NAT local address — which is what nearly every announcement is.
///
/// Why a second form: the packet path announces one record per new connection, and building
/// a whole `SyncConn` (three `IpAddr`s, two `Vec`s, the options), moving it and dropping it
/// cost more than encoding it. This one is read straight from the entry
/// ([`crate::conn::ConnTable::sync_v4`]) and handed to [`SyncSink::announce_v4`]; it means
/// exactly the `SyncConn` [`SyncV4::to_conn`] gives.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SyncV4 {
    /// IANA protocol; 0 for fwmark templates.
    pub protocol: u8,
    /// `IP_VS_CONN_F_*` flags, HASHED removed, neither IN_SEQ nor OUT_SEQ.
    pub flags: u32,
    /// Protocol state.
    pub state: u16,
    /// Client address.
    pub caddr: [u8; 4],
    /// Client port.
    pub cport: u16,
    /// Virtual address (a fwmark template: the mark).
    pub vaddr: [u8; 4],
    /// Virtual port.
    pub vport: u16,
    /// Real-server address.
    pub daddr: [u8; 4],
    /// Real-server port.
    pub dport: u16,
    /// Firewall mark.
    pub fwmark: u32,
    /// Timeout in seconds.
    pub timeout_secs: u32,
}

impl SyncV4 {
    /// `c` in fixed form, if it is one (see [`SyncV4`]).
    pub fn of(c: &SyncConn) -> Option<SyncV4> {
        let (IpAddr::V4(ca), IpAddr::V4(va), IpAddr::V4(da)) = (c.caddr, c.vaddr, c.daddr) else {
            return None;
        };
        if c.flags & (flags::IN_SEQ | flags::OUT_SEQ) != 0
            || !c.pe_data.is_empty()
            || !c.pe_name.is_empty()
            || c.local.is_some()
        {
            return None;
        }
        Some(SyncV4 {
            protocol: c.protocol,
            flags: c.flags & !flags::HASHED,
            state: c.state,
            caddr: ca.octets(),
            cport: c.cport,
            vaddr: va.octets(),
            vport: c.vport,
            daddr: da.octets(),
            dport: c.dport,
            fwmark: c.fwmark,
            timeout_secs: c.timeout_secs,
        })
    }

    /// The same record as a [`SyncConn`].
    pub fn to_conn(&self) -> SyncConn {
        SyncConn {
            protocol: self.protocol,
            flags: self.flags,
            state: self.state,
            caddr: IpAddr::from(self.caddr),
            cport: self.cport,
            vaddr: IpAddr::from(self.vaddr),
            vport: self.vport,
            daddr: IpAddr::from(self.daddr),
            dport: self.dport,
            fwmark: self.fwmark,
            timeout_secs: self.timeout_secs,
            seq: None,
            pe_data: Vec::new(),
            pe_name: Vec::new(),
            local: None,
        }
    }

    /// [`SyncConn::port_index`] of the same record.
    #[inline]
    pub fn port_index(&self, ports: u32) -> usize {
        tuple_port(&self.caddr, self.cport, self.vport, self.protocol, ports)
    }
}

/// The kernel's `sync_threshold` default: threshold 3, period 50.
pub const DEFAULT_SYNC_THRESHOLD: (u32, u32) = (3, 50);
/// Default `sync_qlen_max`: the kernel uses free pages / 32; rvs uses a fixed bound that holds
/// about 5 MB of 1472-byte messages.
pub const DEFAULT_SYNC_QLEN_MAX: u32 = 4096;

/// The sysctls that drive connection synchronisation (`/proc/sys/net/ipv4/vs/sync_*`,
/// `backup_only`), with the kernel's defaults.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SyncParams {
    /// `sync_version`: 0 or 1 (default 1).
    pub version: u8,
    /// `sync_threshold` first value (default 3).
    pub threshold: u32,
    /// `sync_threshold` second value, the period (default 50).
    pub period: u32,
    /// `sync_refresh_period` in seconds (default 0: off).
    pub refresh_period_secs: u32,
    /// `sync_retries` 0..=3 (default 0).
    pub retries: u32,
    /// `sync_persist_mode`: for persistent services sync only templates (default false).
    pub persist_mode: bool,
    /// `sync_qlen_max`: queued messages beyond this are dropped.
    pub qlen_max: u32,
    /// `sync_sock_size`: SNDBUF/RCVBUF, 0 = system default.
    pub sock_size: u32,
    /// `backup_only`: no forwarding while the backup daemon runs.
    pub backup_only: bool,
    /// `sync_ports`: sockets (and ports, from the daemon's port up) per daemon, a power of
    /// two 1..=64, read when a daemon starts.
    pub ports: u32,
}

impl Default for SyncParams {
    fn default() -> Self {
        SyncParams {
            version: 1,
            threshold: DEFAULT_SYNC_THRESHOLD.0,
            period: DEFAULT_SYNC_THRESHOLD.1,
            refresh_period_secs: 0,
            retries: 0,
            persist_mode: false,
            qlen_max: DEFAULT_SYNC_QLEN_MAX,
            sock_size: 0,
            backup_only: false,
            ports: 1,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Master: when a connection is announced

/// Whether `state` of `protocol` is one the master announces (TCP: ESTABLISHED, FIN_WAIT,
/// CLOSE, CLOSE_WAIT, TIME_WAIT; SCTP: ESTABLISHED, the SHUTDOWN states, CLOSED; others
/// always), and whether it is the protocol's ESTABLISHED state.
fn synced_state(protocol: u8, state: u8) -> Option<bool> {
    match protocol {
        proto::TCP => matches!(
            state,
            tcp::ESTABLISHED | tcp::FIN_WAIT | tcp::CLOSE | tcp::CLOSE_WAIT | tcp::TIME_WAIT
        )
        .then_some(state == tcp::ESTABLISHED),
        proto::SCTP => matches!(
            state,
            sctp::ESTABLISHED
                | sctp::SHUTDOWN_SENT
                | sctp::SHUTDOWN_RECEIVED
                | sctp::SHUTDOWN_ACK_SENT
                | sctp::CLOSED
        )
        .then_some(state == sctp::ESTABLISHED),
        _ => Some(false),
    }
}

/// The states whose entry is announced at once on a change into them (the synced states
/// other than ESTABLISHED), as bit masks by state number.
const TCP_FORCED: u32 =
    1 << tcp::FIN_WAIT | 1 << tcp::CLOSE | 1 << tcp::CLOSE_WAIT | 1 << tcp::TIME_WAIT;
const SCTP_FORCED: u32 = 1 << sctp::SHUTDOWN_SENT
    | 1 << sctp::SHUTDOWN_RECEIVED
    | 1 << sctp::SHUTDOWN_ACK_SENT
    | 1 << sctp::CLOSED;

/// What the packet path can decide about announcing an entry from the entry in hand
/// ([`decide_in_hand`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum InHand {
    /// Nothing is announced at this packet (the entry is unchanged).
    No,
    /// The entry is announced: the rules' decision is already recorded in it (`old_state`,
    /// `sync_endtime`), only its record remains to be written.
    Yes,
    /// The entry alone does not decide: run the full rules ([`Director::sync_conn`]).
    Rules,
}

/// The kernel's rules ([`sync_needed`]) for the common entry, decided on the entry the packet
/// path already holds, with no look-up: every forwarded client packet of a master runs this.
/// It decides when the packet-count rule alone governs (no refresh period, a period set,
/// version 1), the entry is a connection and nothing controls it (no template whose own
/// counter advances with each packet, no persistence mode to consult); then it gives exactly
/// what [`sync_needed`] gives, including what that records in the entry. Anything else is
/// [`InHand::Rules`].
#[inline]
pub(crate) fn decide_in_hand(
    p: &SyncParams,
    c: &mut crate::conn::Conn,
    pkts: u32,
    now: Time,
) -> InHand {
    if c.control().is_some()
        || p.refresh_period_secs != 0
        || p.period == 0
        || p.version == 0
        || c.is_template()
    {
        return InHand::Rules;
    }
    let state = c.state();
    let on_period = pkts % p.period == p.threshold;
    // Most packets: off the period and no state change (UDP never changes state).
    if !on_period && state == c.old_state {
        return InHand::No;
    }
    let forced = match c.protocol() {
        proto::TCP => TCP_FORCED,
        proto::SCTP => SCTP_FORCED,
        _ => 0,
    };
    // A change into a synced state other than ESTABLISHED is announced at once; otherwise
    // only the packet count can announce (TCP/SCTP in a synced state, other protocols always).
    let forced_now = state != c.old_state && state < 32 && forced & (1 << state) != 0;
    if !forced_now && (!on_period || synced_state(c.protocol(), state).is_none()) {
        return InHand::No;
    }
    c.old_state = state;
    c.sync_endtime = (now.0 as u32).wrapping_add(c.timeout_ms()) & !3;
    InHand::Yes
}

/// For `added` client packets of one entry counted at once after its count `before` (a kernel
/// fast path forwarded them; rvs-core learns their number later): the packet count to run
/// [`sync_needed`] with, or `None` when none of those packets would have been announced by
/// the packet rule. The kernel runs the rules at every packet; a batch is announced once when
/// any count in `before + 1 ..= before + added` would have been: with a period, the last such
/// count that is `threshold` modulo `period`; without one, `threshold` itself when the batch
/// reached it, or — with a refresh period, whose time rule then decides alone — the batch's
/// last count.
pub fn batch_count(p: &SyncParams, before: u32, added: u32) -> Option<u32> {
    if added == 0 {
        return None;
    }
    let last = before.wrapping_add(added);
    if p.period > 0 {
        // How far back from `last` the nearest count `threshold` modulo `period` lies.
        let back = (last % p.period + p.period - p.threshold % p.period) % p.period;
        return (back < added).then(|| last.wrapping_sub(back));
    }
    if p.refresh_period_secs != 0 {
        return Some(last);
    }
    let ahead = p.threshold.wrapping_sub(before);
    (ahead >= 1 && ahead <= added).then_some(p.threshold)
}

/// Whether entry `id` is controlled, directly or further up, by a persistence template.
fn in_persistence(conns: &ConnTable, id: ConnId) -> bool {
    let mut cur = conns.get(id).and_then(|c| c.control());
    for _ in 0..8 {
        let Some(p) = cur.and_then(|p| conns.get(p)) else {
            return false;
        };
        if p.is_template() {
            return true;
        }
        cur = p.control();
    }
    false
}

/// `ip_vs_sync_conn_needed`: decide whether entry `id`, seen with packet count `pkts`, is
/// announced now, and record the decision in the entry (`old_state`, `sync_endtime`).
///
/// Time is kept in milliseconds where the kernel uses jiffies; the expiry time is rounded down
/// to a multiple of 4 so that its low 2 bits can count the retries, as the kernel does.
pub fn sync_needed(
    p: &SyncParams,
    conns: &mut ConnTable,
    id: ConnId,
    pkts: u32,
    now: Time,
) -> bool {
    // Cheapest rejections first. On the packet path [`may_announce`] has already turned
    // away most packets (a handshake, the packets between two periods); this runs for the
    // rest, for templates and controllers, and for entries re-armed at expiry.
    let persistent = p.persist_mode && in_persistence(conns, id);
    let Some(c) = conns.get_mut(id) else {
        return false;
    };
    let template = c.is_template();
    let refresh = p.refresh_period_secs.saturating_mul(1000);
    // A state change into a state other than ESTABLISHED.
    let mut force_now = false;
    if !template {
        if persistent {
            return false;
        }
        let Some(established) = synced_state(c.protocol(), c.state()) else {
            return false;
        };
        // A state change is announced at once, except into ESTABLISHED, which waits for the
        // packet-count rule below (and stays a "change" until announced).
        let force = matches!(c.protocol(), proto::TCP | proto::SCTP) && c.state() != c.old_state;
        force_now = force && !established;
        if !force_now && refresh == 0 && p.period > 0 && pkts % p.period != p.threshold {
            return false;
        }
    }
    // Templates have no state filter.
    let orig = c.sync_endtime;
    let now_ms = now.0 as u32;
    let timeout = c.timeout_ms();
    let mut n = now_ms.wrapping_add(timeout) & !3;
    if force_now {
        c.old_state = c.state();
        c.sync_endtime = n;
        return true;
    }
    if refresh > 0 {
        let diff = i64::from(n.wrapping_sub(orig) as i32);
        let min_diff = i64::from((timeout / 2).max(10_000));
        if diff.abs() < i64::from(refresh).min(min_diff) {
            let retries = orig & 3;
            if retries >= p.retries {
                return false;
            }
            // time_before(now, orig - timeout + refresh / 8)
            let not_before = orig.wrapping_sub(timeout).wrapping_add(refresh / 8);
            if (now_ms.wrapping_sub(not_before) as i32) < 0 {
                return false;
            }
            n |= retries + 1;
        }
    }
    if p.period > 0 {
        if !template && pkts % p.period != p.threshold {
            return false;
        }
    } else if refresh == 0 && pkts != p.threshold {
        return false;
    }
    c.old_state = c.state();
    c.sync_endtime = n;
    // The kernel's cmpxchg always succeeds here: one thread owns the table.
    true
}

/// Most announcements a [`SyncQueue`] holds; beyond this they are dropped and counted (the
/// engine drains far more often than this fills).
pub const TAP_CAPACITY: usize = 65_536;

/// Where a master's announcements go, called by the packet path under the shard's lock.
///
/// The daemon installs the wire encoder of rvs-sync here, so a record is written straight into
/// the datagram it travels in, with no per-connection queue, copy or allocation in between;
/// the master thread only collects finished datagrams. [`SyncQueue`] keeps the records
/// themselves, for the model's tests and for any user that encodes elsewhere. A trait because
/// rvs-core sits below the wire crate.
pub trait SyncSink: Send + std::fmt::Debug {
    /// Entry `c` is to be announced at `now` under the sysctls `params`.
    fn announce(&mut self, c: &SyncConn, params: &SyncParams, now: Time);
    /// The same for an entry in the common fixed form (most announcements): a sink that
    /// encodes writes it without building a [`SyncConn`].
    fn announce_v4(&mut self, r: &SyncV4, params: &SyncParams, now: Time) {
        self.announce(&r.to_conn(), params, now);
    }
    /// Announcements the sink holds that the engine has not collected yet.
    fn waiting(&self) -> usize;
    /// Announcements dropped because the sink was full, since it was installed.
    fn dropped(&self) -> u64;
    /// A copy (a cloned [`Director`] keeps announcing to its own copy).
    fn clone_box(&self) -> Box<dyn SyncSink>;
    /// For the engine, which knows the concrete sink it installed ([`SyncTap::sink_mut`]).
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}

/// A sink that keeps the announced records, oldest first, for [`SyncTap::drain_into`].
#[derive(Clone, Debug, Default)]
pub struct SyncQueue {
    queue: VecDeque<SyncConn>,
    /// When the oldest waiting announcement was queued (the start of the sync lag).
    oldest: Option<Time>,
    dropped: u64,
}

impl SyncSink for SyncQueue {
    fn announce(&mut self, c: &SyncConn, _params: &SyncParams, now: Time) {
        if self.queue.len() >= TAP_CAPACITY {
            self.dropped += 1;
            return;
        }
        self.oldest.get_or_insert(now);
        self.queue.push_back(c.clone());
    }
    fn waiting(&self) -> usize {
        self.queue.len()
    }
    fn dropped(&self) -> u64 {
        self.dropped
    }
    fn clone_box(&self) -> Box<dyn SyncSink> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// The master side of a director: while a master daemon runs, the packet path hands the
/// entries the kernel's rules say to announce to a [`SyncSink`]; the sync engine collects
/// from it (outside the data plane's lock) and sends.
#[derive(Debug, Default)]
pub struct SyncTap {
    /// The sync sysctls.
    pub params: SyncParams,
    backup: bool,
    /// Present exactly while a master daemon runs.
    sink: Option<Box<dyn SyncSink>>,
    /// Announcements made since start.
    pub queued: u64,
}

impl Clone for SyncTap {
    fn clone(&self) -> Self {
        SyncTap {
            params: self.params,
            backup: self.backup,
            sink: self.sink.as_ref().map(|s| s.clone_box()),
            queued: self.queued,
        }
    }
}

impl SyncTap {
    /// Whether a master daemon runs (the packet path announces connections).
    pub fn is_master(&self) -> bool {
        self.sink.is_some()
    }
    /// Start announcing into a [`SyncQueue`] (read with [`SyncTap::drain_into`]), or stop.
    /// Stopping discards what was not collected.
    pub fn set_master(&mut self, on: bool) {
        self.sink = on.then(|| Box::new(SyncQueue::default()) as Box<dyn SyncSink>);
    }
    /// Start announcing into `sink` (replacing any other; what it held is discarded).
    pub fn set_sink(&mut self, sink: Box<dyn SyncSink>) {
        self.sink = Some(sink);
    }
    /// The installed sink, if it is a `T`.
    pub fn sink_mut<T: SyncSink + 'static>(&mut self) -> Option<&mut T> {
        self.sink.as_mut()?.as_any_mut().downcast_mut::<T>()
    }
    /// Whether a backup daemon runs (with `backup_only` the director then forwards nothing).
    pub fn is_backup(&self) -> bool {
        self.backup
    }
    /// A backup daemon started or stopped.
    pub fn set_backup(&mut self, on: bool) {
        self.backup = on;
    }
    /// `backup_only` in force: a backup daemon runs and the sysctl is set, so packets are
    /// left to the host stack untouched (`sysctl_backup_only`).
    pub fn forwarding_disabled(&self) -> bool {
        self.backup && self.params.backup_only
    }
    /// Announcements waiting in the sink.
    pub fn len(&self) -> usize {
        self.sink.as_ref().map_or(0, |s| s.waiting())
    }
    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Announcements the sink dropped because it was full.
    pub fn dropped_full(&self) -> u64 {
        self.sink.as_ref().map_or(0, |s| s.dropped())
    }
    /// With a [`SyncQueue`] sink: move every waiting announcement to `out`, oldest first;
    /// returns when the oldest of them was queued.
    pub fn drain_into(&mut self, out: &mut Vec<SyncConn>) -> Option<Time> {
        let q = self.sink_mut::<SyncQueue>()?;
        out.extend(q.queue.drain(..));
        q.oldest.take()
    }
    fn push(&mut self, c: &SyncConn, now: Time) {
        if let Some(s) = self.sink.as_mut() {
            self.queued += 1;
            s.announce(c, &self.params, now);
        }
    }
    #[inline]
    fn push_v4(&mut self, r: &SyncV4, now: Time) {
        if let Some(s) = self.sink.as_mut() {
            self.queued += 1;
            s.announce_v4(r, &self.params, now);
        }
    }
}

/// Why a received record was not applied (the kernel's "single msg dropped" cases).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ApplySkip {
    /// Not a template and the protocol is not TCP, UDP or SCTP.
    UnknownProtocol,
    /// A state number the protocol does not have.
    BadState,
    /// PE data without a PE name, or a PE this director does not have.
    PeUnknown,
    /// The record is an expiry notice for a connection that already moved to another real
    /// server (INACTIVE and a different destination): ignored.
    StaleInactive,
    /// Version 0 carries IPv4 only, or the addresses mix families.
    BadAddress,
    /// The connection table refused the entry.
    TableFull,
}

impl ApplySkip {
    /// Every reason, for metrics.
    pub const ALL: [ApplySkip; 6] = [
        ApplySkip::UnknownProtocol,
        ApplySkip::BadState,
        ApplySkip::PeUnknown,
        ApplySkip::StaleInactive,
        ApplySkip::BadAddress,
        ApplySkip::TableFull,
    ];
    /// Name for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplySkip::UnknownProtocol => "unknown_protocol",
            ApplySkip::BadState => "bad_state",
            ApplySkip::PeUnknown => "pe_unknown",
            ApplySkip::StaleInactive => "stale_inactive",
            ApplySkip::BadAddress => "bad_address",
            ApplySkip::TableFull => "table_full",
        }
    }
}

/// What applying a record did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A new entry was created.
    Created(ConnId),
    /// An existing entry was updated.
    Updated(ConnId),
}

/// Connection flags a backup keeps from a version-1 record (`IP_VS_CONN_F_BACKUP_MASK`).
pub const BACKUP_MASK: u32 = flags::FWD_MASK
    | flags::NOOUTPUT
    | flags::INACTIVE
    | flags::IN_SEQ
    | flags::OUT_SEQ
    | flags::NO_CPORT
    | flags::TEMPLATE;
/// Timeout of a version-0 template (no timeout travels): 3 minutes.
pub const V0_TEMPLATE_TIMEOUT: Duration = Duration::from_secs(180);
/// Longest timeout a record may set (`MAX_SCHEDULE_TIMEOUT / HZ` bounds it in the kernel; the
/// connection table stores milliseconds in 32 bits).
const MAX_SYNC_TIMEOUT_SECS: u32 = u32::MAX / 1000;

impl Director {
    /// After a forwarded client packet of entry `id` whose count is `pkts` (`ip_vs_sync_conn`):
    /// queue the entry, and then its controller, if the rules say so. Called by the packet path
    /// only while a master daemon runs.
    pub(crate) fn sync_conn(&mut self, mut id: ConnId, mut pkts: u32, now: Time) {
        let p = self.sync.params;
        // A connection, its template, and at most an FTP-style controller above that.
        for _ in 0..4 {
            let Some(c) = self.conns.get(id) else { return };
            let one_packet = c.flags() & flags::ONE_PACKET != 0;
            let control = c.control();
            if p.version == 0 {
                if c.family() != Family::Inet || one_packet {
                    return;
                }
                if !sync_needed(&p, &mut self.conns, id, pkts, now) {
                    return;
                }
                self.sync_record(id, now);
            } else if !one_packet && sync_needed(&p, &mut self.conns, id, pkts, now) {
                self.sync_record(id, now);
            }
            let Some(ctl) = control else { return };
            pkts = match self.conns.get_mut(ctl) {
                Some(t) if t.is_template() => {
                    t.in_pkts = t.in_pkts.wrapping_add(1);
                    t.in_pkts
                }
                Some(_) => p.threshold,
                None => return,
            };
            id = ctl;
        }
    }

    /// Hand entry `id`, which the rules said to announce, to the sink.
    #[inline]
    pub(crate) fn sync_record(&mut self, id: ConnId, now: Time) {
        // The common record straight from the entry; the others (IPv6, engine data, full-NAT
        // local address, sequence data) as a whole [`SyncConn`].
        if let Some(r) = self.conns.sync_v4(id) {
            self.sync.push_v4(&r, now);
        } else if let Some(s) = self.snapshot(id) {
            self.sync.push(&s, now);
        }
    }

    /// The persistence engine of the service `dest` belongs to.
    pub fn pe_of(&self, dest: Option<crate::dest::DestId>) -> Option<&crate::service::PeKind> {
        let d = self.table.dests.get(dest?)?;
        self.table.service(d.svc)?.cfg.pe.as_ref()
    }

    /// Whether a service has a real server of the other address family (a tunnel "mixed"
    /// service): the sync protocol cannot carry those connections, so the kernel refuses to
    /// start a sync daemon while one exists, and refuses such a real server while a daemon
    /// runs (EINVAL both ways).
    pub fn has_mixed_family_dests(&self) -> bool {
        self.table.services().any(|(_, s)| {
            let fam = s.key.family();
            s.dests.iter().any(|d| {
                self.table
                    .dests
                    .get(*d)
                    .is_some_and(|d| Family::of(&d.cfg.addr) != fam)
            })
        })
    }

    /// Every entry a bulk resync carries (`docs/internals/sync.md#bulk-resync`): templates, and
    /// connections in a state the master announces (so a backup ends with what the live stream
    /// would have given it). Resolve each with [`Director::resync_record`], in small batches,
    /// so the table's lock is never held for the whole table.
    pub fn resync_ids(&self) -> Vec<ConnId> {
        self.conns.iter().collect()
    }

    /// Entry `id` as a bulk-resync record, or `None` if it is gone or not one the stream syncs.
    pub fn resync_record(&self, id: ConnId) -> Option<SyncConn> {
        let c = self.conns.get(id)?;
        if !c.is_template() && synced_state(c.protocol(), c.state()).is_none() {
            return None;
        }
        self.snapshot(id)
    }

    /// Entry `id` as a sync record. Built from the entry and its pooled addresses directly
    /// (not a whole [`crate::conn::ConnInfo`]): the packet path does this for every announced
    /// connection.
    #[inline]
    pub fn snapshot(&self, id: ConnId) -> Option<SyncConn> {
        let (c, (vaddr, daddr, local), pe) = self.conns.sync_view(id)?;
        let pe_data = pe.map(<[u8]>::to_vec).unwrap_or_default();
        let pe_name = if pe_data.is_empty() {
            Vec::new()
        } else {
            match self.pe_of(c.dest()) {
                // The content engines' templates are not sent: their keys are meaningful to
                // this daemon only (the cookie engine's hash key is per daemon), and their
                // names do not fit the protocol's 16 bytes. A backup schedules such requests
                // anew.
                Some(pe) if pe.content_only() => return None,
                _ => crate::service::PeKind::Sip.name().into_bytes(),
            }
        };
        Some(SyncConn {
            protocol: c.protocol(),
            flags: c.flags() & !flags::HASHED,
            state: u16::from(c.state()),
            caddr: c.caddr(),
            cport: c.cport(),
            vaddr,
            vport: c.vport(),
            daddr,
            dport: c.dport(),
            fwmark: c.fwmark,
            timeout_secs: c.timeout_ms() / 1000,
            seq: None,
            pe_data,
            pe_name,
            local,
        })
    }

    /// The local real server a synced entry belongs to (`ip_vs_find_dest`): the service by
    /// fwmark or by `<protocol, vaddr, vport>`, then the dest by address and port (port 0 for
    /// non-NAT fwmark services), then by address with port 0.
    fn sync_find_dest(&self, c: &SyncConn, fl: u32) -> Option<DestId> {
        let family = Family::of(&c.caddr);
        let sid = if c.fwmark != 0 {
            self.table.id_of(&ServiceKey::Fwmark {
                family,
                mark: c.fwmark,
            })
        } else {
            None
        };
        let sid = match sid {
            Some(s) => s,
            None => {
                let proto = Protocol::from_number(c.protocol)?;
                self.table.find(0, proto, &c.vaddr, c.vport)?
            }
        };
        let mut port = c.dport;
        if c.fwmark != 0 && fl & flags::FWD_MASK != flags::MASQ {
            port = 0;
        }
        self.table
            .find_dest(sid, &c.daddr, port)
            .or_else(|| self.table.find_dest(sid, &c.daddr, port ^ c.dport))
    }

    /// Apply one received record as a backup (`ip_vs_proc_sync_conn` + `ip_vs_proc_conn`):
    /// validate it, create or update the entry (flag SYNC, the dest's forwarding method), set its
    /// state, `in_pkts` = `sync_threshold` and its timeout — from the record (version 1) or the
    /// local table for its state (version 0, `v0` = true; templates 3 minutes) — and restart its
    /// timer. Synced entries then carry traffic like any other when this director forwards.
    pub fn apply_synced(
        &mut self,
        c: &SyncConn,
        v0: bool,
        now: Time,
    ) -> Result<Applied, ApplySkip> {
        let fl = if v0 {
            (c.flags | flags::SYNC) & !flags::HASHED
        } else {
            (c.flags & BACKUP_MASK) | flags::SYNC
        };
        let template = fl & flags::TEMPLATE != 0;
        if !template {
            let states = match c.protocol {
                proto::TCP => tcp::COUNT,
                proto::UDP => 1,
                proto::SCTP => sctp::COUNT,
                _ => return Err(ApplySkip::UnknownProtocol),
            };
            if usize::from(c.state) >= states {
                return Err(ApplySkip::BadState);
            }
        }
        if !c.pe_data.is_empty() && c.pe_name != b"sip" {
            return Err(ApplySkip::PeUnknown);
        }
        let v6 = c.caddr.is_ipv6();
        if (v0 && v6) || c.daddr.is_ipv6() != v6 {
            return Err(ApplySkip::BadAddress);
        }
        // Fwmark templates keep the mark as an IPv4 virtual address (first four bytes of an
        // IPv6 record's address).
        let vaddr = match c.vaddr {
            IpAddr::V6(a) if template && c.protocol == proto::IP => {
                let o = a.octets();
                IpAddr::V4(std::net::Ipv4Addr::new(o[0], o[1], o[2], o[3]))
            }
            a => a,
        };
        if vaddr.is_ipv6() != v6 && !(template && c.protocol == proto::IP) {
            return Err(ApplySkip::BadAddress);
        }
        let pe = (!c.pe_data.is_empty()).then_some(c.pe_data.as_slice());
        let existing = if template {
            self.conns
                .lookup_template(c.protocol, &c.caddr, &vaddr, c.vport, pe)
        } else {
            let found = self
                .conns
                .lookup_in(c.protocol, &c.caddr, c.cport, &vaddr, c.vport);
            match found.and_then(|id| self.conns.info(id).map(|i| (id, i.daddr, i.dport))) {
                Some((id, daddr, dport)) if daddr != c.daddr || dport != c.dport => {
                    if fl & flags::INACTIVE != 0 {
                        return Err(ApplySkip::StaleInactive);
                    }
                    // The master moved the client to another real server: replace.
                    self.expire_synced(id, now);
                    None
                }
                other => other.map(|(id, _, _)| id),
            }
        };
        let result = match existing {
            Some(id) => {
                // Only INACTIVE and the SEQ bits change (`IP_VS_CONN_F_BACKUP_UPD_MASK`).
                self.conns
                    .set_synced_inactive(id, fl & flags::INACTIVE != 0, &mut self.table);
                let seq_bits = flags::IN_SEQ | flags::OUT_SEQ;
                let set = fl & seq_bits;
                let clear = seq_bits & !set;
                self.conns.update_flags(id, set, clear);
                if self.conns.get(id).is_some_and(|e| e.dest().is_none()) {
                    if let Some(d) = self.sync_find_dest(c, fl) {
                        self.conns.bind_dest(id, d, &mut self.table);
                    }
                }
                Applied::Updated(id)
            }
            None => {
                // Without a matching local dest the entry stays unbound (a later record
                // retries) and keeps the master's forwarding bits.
                let dest = self.sync_find_dest(c, fl);
                let n = NewConn {
                    protocol: c.protocol,
                    caddr: c.caddr,
                    cport: c.cport,
                    vaddr,
                    vport: c.vport,
                    daddr: c.daddr,
                    dport: c.dport,
                    // FULLNAT: replies to the local address find the entry; the local
                    // address itself moves with the VIP (docs/internals/sync.md).
                    local: c.local.filter(|(a, _)| a.is_ipv6() == c.daddr.is_ipv6()),
                    fwmark: c.fwmark,
                    flags: fl,
                    dest,
                    timeout: crate::conn::INITIAL_TIMEOUT,
                    pe_data: if template { pe } else { None },
                };
                let id = self
                    .conns
                    .insert(&n, now, &mut self.table)
                    .map_err(|_| ApplySkip::TableFull)?;
                Applied::Created(id)
            }
        };
        let id = match result {
            Applied::Created(id) | Applied::Updated(id) => id,
        };
        let state = u8::try_from(c.state).unwrap_or(if template { tmpl::ASSURED } else { 0 });
        self.conns.set_synced_state(id, state);
        if let Some(e) = self.conns.get_mut(id) {
            e.in_pkts = self.sync.params.threshold;
        }
        let timeout = if c.timeout_secs != 0 {
            Duration::from_secs(u64::from(c.timeout_secs.min(MAX_SYNC_TIMEOUT_SECS)))
        } else if !template {
            self.sys.conn.timeouts.for_state(c.protocol, state)
        } else {
            V0_TEMPLATE_TIMEOUT
        };
        self.conns.set_timeout(id, timeout);
        self.conns.restart_timer(id, now);
        Ok(result)
    }

    fn expire_synced(&mut self, id: ConnId, now: Time) {
        let controls = self.conns.get(id).is_some_and(|c| c.n_control() > 0);
        if controls {
            self.conns.expire_now(id, now);
        } else {
            self.conns.remove_and_unbind(id, now, &mut self.table);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::HashSeed;
    use crate::table::ServiceTable;

    /// The packet path's decision on the entry in hand is the kernel's rules whenever it
    /// decides: wherever [`decide_in_hand`] says yes or no, [`sync_needed`] says the same and
    /// leaves the entry exactly as the in-hand decision left it (`old_state`, `sync_endtime`),
    /// over every protocol state and previous state, packet counts around several periods,
    /// the threshold/period/refresh settings, both versions, persistence mode, and entries
    /// with and without a template above them.
    #[test]
    fn the_decision_in_hand_is_the_kernels_rules() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut svc = ServiceTable::new();
        let (mut no, mut yes, mut rules) = (0, 0, 0);
        for (protocol, states) in [
            (proto::TCP, tcp::COUNT as u8),
            (proto::SCTP, sctp::COUNT as u8),
            (proto::UDP, 1),
        ] {
            let mut conns = ConnTable::new(HashSeed([1, 2, 3, 4]), Time(0));
            let n = NewConn {
                protocol,
                caddr: ip("10.0.0.9"),
                cport: 1000,
                vaddr: ip("10.0.0.1"),
                vport: 80,
                daddr: ip("10.0.0.2"),
                dport: 80,
                local: None,
                fwmark: 0,
                flags: 0,
                dest: None,
                timeout: crate::conn::INITIAL_TIMEOUT,
                pe_data: None,
            };
            let id = conns.insert(&n, Time(0), &mut svc).unwrap();
            let tpl = NewConn {
                cport: 0,
                flags: flags::TEMPLATE,
                ..n.clone()
            };
            let tid = conns.insert(&tpl, Time(0), &mut svc).unwrap();
            let mut controlled = conns.clone();
            controlled.set_control(id, tid);
            for (table, with_template) in [(&conns, false), (&controlled, true)] {
                for (threshold, period, refresh, version, persist_mode) in [
                    (3, 50, 0, 1, false),
                    (3, 50, 0, 1, true),
                    (0, 1, 0, 1, false),
                    (3, 0, 0, 1, false),
                    (3, 50, 10, 1, false),
                    (3, 50, 0, 0, false),
                ] {
                    let p = SyncParams {
                        threshold,
                        period,
                        refresh_period_secs: refresh,
                        version,
                        persist_mode,
                        ..SyncParams::default()
                    };
                    for state in 0..states {
                        for old in 0..states {
                            for pkts in 0..160 {
                                let now = Time(5000 + u64::from(pkts));
                                let mut t = table.clone();
                                t.set_synced_state(id, state);
                                t.get_mut(id).unwrap().old_state = old;
                                let mut full = t.clone();
                                let c = t.get_mut(id).unwrap();
                                let d = decide_in_hand(&p, c, pkts, now);
                                let what = format!(
                                    "proto {protocol} state {state} old {old} pkts {pkts} \
                                     template {with_template} {p:?}"
                                );
                                let want = match d {
                                    InHand::Rules => {
                                        rules += 1;
                                        continue;
                                    }
                                    InHand::No => {
                                        no += 1;
                                        false
                                    }
                                    InHand::Yes => {
                                        yes += 1;
                                        true
                                    }
                                };
                                assert_eq!(
                                    sync_needed(&p, &mut full, id, pkts, now),
                                    want,
                                    "{what}"
                                );
                                let (a, b) = (t.get(id).unwrap(), full.get(id).unwrap());
                                assert_eq!(
                                    (a.old_state, a.sync_endtime),
                                    (b.old_state, b.sync_endtime),
                                    "{what}"
                                );
                            }
                        }
                    }
                }
            }
        }
        // It decides most packets of the default settings, both ways, and leaves the rest
        // (templates above, refresh period, period 0, version 0) to the rules.
        assert!(
            no > 10_000 && yes > 100 && rules > 10_000,
            "{no} {yes} {rules}"
        );
    }

    /// A batch of packets counted at once is announced exactly when one of its packets,
    /// counted one by one, would have been by the packet rule, and with a count that rule
    /// accepts (so [`sync_needed`] agrees).
    #[test]
    fn a_batch_is_announced_when_one_of_its_packets_would_have_been() {
        for (threshold, period, refresh) in [(3, 50, 0), (0, 1, 0), (3, 0, 0), (7, 10, 0)] {
            let p = SyncParams {
                threshold,
                period,
                refresh_period_secs: refresh,
                ..SyncParams::default()
            };
            let rule = |k: u32| {
                if period > 0 {
                    k % period == threshold
                } else {
                    k == threshold
                }
            };
            for before in 0..130u32 {
                for added in 0..120u32 {
                    let any = (before + 1..=before + added).any(rule);
                    let got = batch_count(&p, before, added);
                    assert_eq!(got.is_some(), any, "{p:?} before {before} added {added}");
                    if let Some(k) = got {
                        assert!(k > before && k <= before + added && rule(k), "{k}");
                    }
                }
            }
        }
        // With a refresh period and no packet period, the time rule decides: the last count.
        let p = SyncParams {
            threshold: 3,
            period: 0,
            refresh_period_secs: 10,
            ..SyncParams::default()
        };
        assert_eq!(batch_count(&p, 100, 5), Some(105));
        assert_eq!(batch_count(&p, 100, 0), None);
    }
}
