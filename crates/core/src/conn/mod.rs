//! The connection table (docs/internals/connections.md): entries, hash indexes for both directions, the protocol state
//! machines and expiry on a timer wheel.
//!
//! # Shape
//!
//! A [`ConnTable`] owns a slab of [`Conn`] entries addressed by a small [`ConnId`], two hash
//! indexes of slab indexes (flat open-addressing tables of 8-byte `(hash tag, slab id)` slots,
//! see `index.rs`) and a hierarchical timer wheel whose links live in the entries. Addresses that repeat across many connections (virtual, real
//! server and full-NAT local addresses) are interned in a small reference-counted pool so an
//! entry stores a 4-byte reference instead of 16 bytes; only the client address is inline.
//! Persistence-engine data (SIP Call-ID) lives out of line in its own slab.
//!
//! Indexes, as in the kernel:
//! - *client index*, hashed on `<proto, caddr, cport>` (a random seed mixed in): client-side
//!   look-ups compare vaddr:vport too ([`ConnTable::lookup_in`]); NAT reply look-ups use the
//!   reply's destination (= client) as key and compare the reply's source with daddr:dport
//!   ([`ConnTable::lookup_out`]); templates are found with cport 0
//!   ([`ConnTable::lookup_template`]); PE templates hash on the Call-ID instead.
//! - *local index* for full-NAT replies, hashed on `<proto, laddr, lport>` and comparing
//!   daddr:dport ([`ConnTable::lookup_fullnat_out`]).
//!
//! The hash seed is passed in ([`HashSeed`]): tuples are attacker-chosen, and rvs-core does no
//! I/O, so the daemon draws the seed from the OS at start-up.
//!
//! # Cost model
//!
//! With millions of entries neither the index nor the slab fits in cache, so a look-up costs
//! what its dependent cache misses cost. A hit reads one index line (the 32-bit tags filter out
//! other entries without touching their slab lines) and then the matching entry, whose key
//! fields share one cache line: two dependent misses. A miss reads only the index line(s).
//! Per packet, the timer restart usually only writes the entry's deadline (see
//! `Wheel::restart`), on the line the look-up brought in. A data plane that processes frames in
//! batches should use [`ConnTable::lookup_in_batch`] / [`ConnTable::lookup_out_batch`], which
//! overlap the misses of different packets.
//!
//! # How the director drives it
//!
//! Per packet of a known connection:
//! 1. `lookup_in` (client side; it already retries with cport 0 for NO_CPORT conns),
//!    `lookup_out` (NAT reply) or `lookup_fullnat_out` (full-NAT reply).
//! 2. For a packet that could start a new connection (TCP SYN, SCTP INIT), ask
//!    [`state::existing_conn_action`] with [`ConnTable::existing`]: it says whether to use the
//!    conn, reschedule (after [`ConnTable::expire_now`] on the old one) or drop.
//! 3. Count `in_pkts` ([`ConnTable::get_mut`]) and per-dest statistics (the director's job).
//! 4. [`ConnTable::on_packet`]: state transition (TCP/UDP/SCTP tables, NOOUTPUT handling),
//!    active/inactive counter moves on the [`Dest`](crate::Dest) (and `load_changed` on the
//!    service table), template ASSURED marking, timeout = table value, timer restart.
//!
//! New connection (after scheduling): [`ConnTable::insert`] with a [`NewConn`] (flags
//! TEMPLATE / ONE_PACKET / NO_CPORT / SYNC as needed; forwarding method, INACTIVE and NOOUTPUT
//! are inherited from the dest exactly as `ip_vs_bind_dest` does and the dest counters are
//! bumped), then [`ConnTable::set_control`] to link it under its template, then `on_packet` for
//! the packet itself. ONE_PACKET entries are not hashed; their timer fires at the next
//! [`ConnTable::expire`] (or remove them yourself after forwarding). Persistence templates: look
//! up with `lookup_template`, invalidate with [`ConnTable::invalidate_template`], refresh with
//! [`ConnTable::restart_timer`].
//!
//! Expiry: call [`ConnTable::expire`] regularly (e.g. every 10–100 ms) with a work budget. It
//! re-arms entries that control others for 60 s (overwriting their timeout with 60 s, the
//! kernel's quirk) and removes the rest, unbinding them from their dest (counters, OVERLOAD
//! hysteresis, `load_changed`) and from their controller (`n_control`). Lower level:
//! [`ConnTable::poll_expired`] + [`ConnTable::remove_and_unbind`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashMap;

use crate::addr::Family;
use crate::dest::DestId;
use crate::error::{Error, Result};
use crate::table::ServiceTable;
use crate::time::{Duration, Time};

mod index;
pub mod state;
mod wheel;

#[cfg(test)]
mod tests;

use index::Index;
use state::{proto, tmpl, TableDir};
pub use state::{ConnSysctls, Direction, ExistingAction, ExistingConn, TcpFlags, Timeouts};
pub use wheel::TICK_MS;
use wheel::{Wheel, FREE, NIL, UNLINKED};

/// `IP_VS_CONN_F_*` connection flags (`include/uapi/linux/ip_vs.h`), plus rvs's full-NAT
/// forwarding code.
pub mod flags {
    /// Mask of the forwarding method.
    pub const FWD_MASK: u32 = 0x0007;
    /// NAT (masquerading).
    pub const MASQ: u32 = 0x0000;
    /// Local node.
    pub const LOCALNODE: u32 = 0x0001;
    /// Tunnelling.
    pub const TUNNEL: u32 = 0x0002;
    /// Direct routing.
    pub const DROUTE: u32 = 0x0003;
    /// Cache bypass.
    pub const BYPASS: u32 = 0x0004;
    /// Full NAT (rvs / DPVS).
    pub const FULLNAT: u32 = 0x0005;
    /// Created by the sync daemon.
    pub const SYNC: u32 = 0x0020;
    /// Hashed in the table (maintained by [`super::ConnTable`]).
    pub const HASHED: u32 = 0x0040;
    /// The director does not see replies (DR, TUN, local): INPUT_ONLY state table.
    pub const NOOUTPUT: u32 = 0x0080;
    /// Counted in the dest's inactive counter.
    pub const INACTIVE: u32 = 0x0100;
    /// Outgoing sequence adjustment (FTP helper).
    pub const OUT_SEQ: u32 = 0x0200;
    /// Incoming sequence adjustment (FTP helper).
    pub const IN_SEQ: u32 = 0x0400;
    /// Client port not known yet (FTP helper, sync).
    pub const NO_CPORT: u32 = 0x0800;
    /// Persistence template.
    pub const TEMPLATE: u32 = 0x1000;
    /// One-packet scheduling: never hashed, expires at once.
    pub const ONE_PACKET: u32 = 0x2000;
    /// Keep netfilter conntrack.
    pub const NFCT: u32 = 0x10000;
    /// Opened by the packet plane's SYN proxy: the director answered the client's handshake
    /// with a SYN cookie, so the two halves of the connection number their bytes from
    /// different initial sequence numbers and every packet is adjusted
    /// ([`super::SeqAdjust`], docs/internals/syn-flood.md). rvs addition; like every flag
    /// from bit 16 up, it is never sent to a sync backup.
    pub const SYNPROXY: u32 = 0x20000;
}

/// Timeout the kernel gives a new connection before its first state transition
/// (`ip_vs_conn_new`: 3 s).
pub const INITIAL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long expiry is postponed for an entry that still controls others (docs/internals/connections.md#when-a-packet-meets-an-existing-entry).
pub const EXPIRE_LATER: Duration = Duration::from_secs(60);
/// Longest persistence-engine data (SIP Call-ID).
pub const PE_DATA_MAX: usize = 255;
/// Port value an invalidated template gets (`0xffff`).
pub const INVALID_PORT: u16 = 0xffff;

/// Index of a connection in its table. Re-used after the connection is removed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

/// Random key for the connection hash indexes, drawn by the caller (e.g. from `getrandom`) at
/// start-up. A fixed seed makes the table vulnerable to hash flooding.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HashSeed(pub [u64; 4]);

const NONE_REF: u32 = u32::MAX;
const MAX_ENTRIES: usize = 0x7fff_ffff;

/// An address stored in a fixed 16-byte form (IPv4 in the first four bytes).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
struct Addr16 {
    bytes: [u8; 16],
    v6: bool,
}

impl Addr16 {
    #[inline]
    fn of(a: &IpAddr) -> Addr16 {
        match a {
            IpAddr::V4(v4) => {
                let mut bytes = [0u8; 16];
                bytes[..4].copy_from_slice(&v4.octets());
                Addr16 { bytes, v6: false }
            }
            IpAddr::V6(v6) => Addr16 {
                bytes: v6.octets(),
                v6: true,
            },
        }
    }
    fn ip(&self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(self.bytes))
        } else {
            IpAddr::V4(Ipv4Addr::new(
                self.bytes[0],
                self.bytes[1],
                self.bytes[2],
                self.bytes[3],
            ))
        }
    }
}

/// One tracked flow or persistence template (docs/internals/connections.md#the-table). 96 bytes, laid out for the packet path.
///
/// Key fields (addresses, ports, protocol, hashing-relevant flags) are read through accessors
/// and changed only through [`ConnTable`] methods so the indexes stay consistent.
///
/// Layout (`repr(C)`, 32-byte aligned, so each 32-byte quarter of a cache line holds one of
/// these groups and the first group never straddles two lines):
/// - bytes 0..32: everything a client-side look-up compares (client address and port,
///   virtual address reference and port, flags, protocol, family) plus the state, so a
///   look-up reads one cache line of the slab;
/// - bytes 32..64: what every packet touches after the look-up (timer deadline and link,
///   timeout, packet counter) and the NAT reply key;
/// - bytes 64..96: the rest (controller links, dest, full-NAT and PE references).
#[derive(Clone, Debug)]
#[repr(C, align(32))]
pub struct Conn {
    caddr: [u8; 16],
    vaddr: u32,
    cport: u16,
    vport: u16,
    flags: u32,
    protocol: u8,
    v6: bool,
    state: u8,
    /// State before the last transition (for connection sync); maintained by `on_packet`.
    pub old_state: u8,
    /// Expiry time in ms, valid while the timer is armed.
    expires: u64,
    pub(crate) prev: u32,
    /// Timeout in ms.
    timeout: u32,
    /// Incoming packet counter (the director increments it; used by sync and drop_entry).
    pub in_pkts: u32,
    /// Low 32 bits of the wheel tick the entry is filed under (see [`Wheel::restart`]).
    pub(crate) due: u32,
    daddr: u32,
    dport: u16,
    lport: u16,
    pub(crate) next: u32,
    dest: u32,
    laddr: u32,
    /// Firewall mark of the packet that created the connection.
    pub fwmark: u32,
    control: u32,
    n_control: u32,
    pe: u32,
    /// Expiry time (ms, low 32 bits, rounded down to 4 ms) at the last sync, with the retries
    /// done in its low 2 bits (`sync_endtime`); maintained by the sync master's rules.
    pub sync_endtime: u32,
}

// The layout above is what the look-up cost rests on; keep it from drifting.
const _: () = assert!(core::mem::size_of::<Conn>() == 96);

impl Conn {
    fn vacant() -> Conn {
        Conn {
            expires: 0,
            caddr: [0; 16],
            vaddr: NONE_REF,
            daddr: NONE_REF,
            laddr: NONE_REF,
            cport: 0,
            vport: 0,
            dport: 0,
            lport: 0,
            fwmark: 0,
            flags: 0,
            dest: NONE_REF,
            control: NONE_REF,
            n_control: 0,
            in_pkts: 0,
            timeout: 0,
            due: 0,
            next: NIL,
            prev: FREE,
            pe: NONE_REF,
            v6: false,
            protocol: 0,
            state: 0,
            old_state: 0,
            sync_endtime: 0,
        }
    }
    #[inline]
    fn live(&self) -> bool {
        self.prev != FREE
    }
    /// Address family (of the client address).
    pub fn family(&self) -> Family {
        if self.v6 {
            Family::Inet6
        } else {
            Family::Inet
        }
    }
    /// IANA protocol (0 for fwmark templates).
    pub fn protocol(&self) -> u8 {
        self.protocol
    }
    /// Client address.
    pub fn caddr(&self) -> IpAddr {
        Addr16 {
            bytes: self.caddr,
            v6: self.v6,
        }
        .ip()
    }
    /// Client port.
    pub fn cport(&self) -> u16 {
        self.cport
    }
    /// Virtual port.
    pub fn vport(&self) -> u16 {
        self.vport
    }
    /// Real-server port.
    pub fn dport(&self) -> u16 {
        self.dport
    }
    /// Full-NAT local port (0 when not full-NAT).
    pub fn lport(&self) -> u16 {
        self.lport
    }
    /// `IP_VS_CONN_F_*` flags.
    pub fn flags(&self) -> u32 {
        self.flags
    }
    /// Forwarding method code (`flags & FWD_MASK`).
    pub fn fwd(&self) -> u32 {
        self.flags & flags::FWD_MASK
    }
    /// Whether this is a persistence template.
    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }
    /// Protocol state (templates: [`state::tmpl`]).
    pub fn state(&self) -> u8 {
        self.state
    }
    /// State name as `ipvsadm -Lc` prints it.
    pub fn state_name(&self) -> &'static str {
        state::state_name(self.protocol, self.is_template(), self.state)
    }
    /// Current timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.timeout))
    }
    /// Current timeout in milliseconds (without a [`Duration`]'s conversions: the sync
    /// master reads it on the packet path).
    #[inline]
    pub fn timeout_ms(&self) -> u32 {
        self.timeout
    }
    /// When the timer fires, if armed.
    pub fn expires(&self) -> Option<Time> {
        Wheel::is_armed(self).then_some(Time(self.expires))
    }
    /// Destination the connection is bound to.
    pub fn dest(&self) -> Option<DestId> {
        (self.dest != NONE_REF).then_some(DestId(self.dest))
    }
    /// Controlling template or connection.
    pub fn control(&self) -> Option<ConnId> {
        (self.control != NONE_REF).then_some(ConnId(self.control))
    }
    /// Number of connections this entry controls.
    pub fn n_control(&self) -> u32 {
        self.n_control
    }
    /// Whether `flags` has `INACTIVE`.
    pub fn is_inactive(&self) -> bool {
        self.flags & flags::INACTIVE != 0
    }
}

/// What to insert: the tuple, destination and initial flags of a new connection or template.
#[derive(Clone, Debug)]
pub struct NewConn<'a> {
    /// IANA protocol; `0` (`IPPROTO_IP`) for fwmark templates.
    pub protocol: u8,
    /// Client address (the masked client network for templates). Its family is the entry's.
    pub caddr: IpAddr,
    /// Client port (0 for templates and NO_CPORT conns).
    pub cport: u16,
    /// Virtual address; for fwmark templates the mark as an IPv4 address
    /// (`Ipv4Addr::from(mark)`), whatever the service family.
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real-server address.
    pub daddr: IpAddr,
    /// Real-server port.
    pub dport: u16,
    /// Full-NAT local address and port the director uses towards the real server.
    pub local: Option<(IpAddr, u16)>,
    /// Packet mark at creation.
    pub fwmark: u32,
    /// Initial `IP_VS_CONN_F_*` flags: TEMPLATE, ONE_PACKET, NO_CPORT, SYNC (+ INACTIVE and
    /// forwarding method for sync-created conns). With a dest the forwarding method, INACTIVE
    /// and NOOUTPUT are inherited from it (see [`ConnTable::insert`]).
    pub flags: u32,
    /// Destination to bind to (counters are bumped).
    pub dest: Option<DestId>,
    /// Initial timeout: [`INITIAL_TIMEOUT`] for connections, the persistence timeout for
    /// templates. Capped at `u32::MAX` ms.
    pub timeout: Duration,
    /// Persistence-engine data (SIP Call-ID, ≤ [`PE_DATA_MAX`] bytes).
    pub pe_data: Option<&'a [u8]>,
}

impl<'a> NewConn<'a> {
    /// A connection `caddr:cport → vaddr:vport` to `daddr:dport`, with no flags, no dest and the
    /// kernel's initial 3 s timeout.
    pub fn new(
        protocol: u8,
        caddr: IpAddr,
        cport: u16,
        vaddr: IpAddr,
        vport: u16,
        daddr: IpAddr,
        dport: u16,
    ) -> NewConn<'a> {
        NewConn {
            protocol,
            caddr,
            cport,
            vaddr,
            vport,
            daddr,
            dport,
            local: None,
            fwmark: 0,
            flags: 0,
            dest: None,
            timeout: INITIAL_TIMEOUT,
            pe_data: None,
        }
    }
}

/// A protocol-aware description of one packet for [`ConnTable::on_packet`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// TCP with its flags.
    Tcp(TcpFlags),
    /// UDP.
    Udp,
    /// SCTP with the effective chunk type ([`state::sctp_event_chunk`]).
    Sctp(u8),
    /// Anything else: no state machine, only the timer is restarted.
    Other,
}

/// What [`ConnTable::on_packet`] did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PacketOutcome {
    /// State before.
    pub old_state: u8,
    /// State after.
    pub new_state: u8,
    /// The dest whose active/inactive counters moved (already applied, and `load_changed`
    /// called), with `true` for inactive → active.
    pub moved: Option<(DestId, bool)>,
    /// The controlling template that just became ASSURED.
    pub assured: Option<ConnId>,
}

/// One client-side look-up of a batch: the arguments of [`ConnTable::lookup_in`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct InKey {
    /// IANA protocol.
    pub protocol: u8,
    /// Client (source) address.
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual (destination) address.
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
}

/// One NAT reply look-up of a batch: the arguments of [`ConnTable::lookup_out`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OutKey {
    /// IANA protocol.
    pub protocol: u8,
    /// Real-server (source) address.
    pub saddr: IpAddr,
    /// Real-server port.
    pub sport: u16,
    /// Client (destination) address.
    pub daddr: IpAddr,
    /// Client port.
    pub dport: u16,
}

/// Keys a batch look-up works on at a time: enough independent cache misses in flight to
/// cover memory latency, few enough that the index and slab lines it pulled in are still in L1
/// when it comes back to them.
const BATCH_CHUNK: usize = 16;

/// Result of removing a connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    /// The id it had (now free).
    pub id: ConnId,
    /// IANA protocol.
    pub protocol: u8,
    /// Flags at removal.
    pub flags: u32,
    /// State at removal.
    pub state: u8,
    /// The dest it was unbound from.
    pub dest: Option<DestId>,
    /// The controller whose `n_control` was decremented.
    pub control: Option<ConnId>,
}

/// One event of [`ConnTable::expire`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Expired {
    /// The entry controls others: its expiry was postponed by 60 s and its timeout set to 60 s.
    Rearmed(ConnId),
    /// The entry was removed.
    Removed(Removed),
}

/// An entry's virtual address, real-server address and full-NAT local address with its port
/// ([`ConnTable::sync_view`]).
pub type PooledAddrs = (IpAddr, IpAddr, Option<(IpAddr, u16)>);

/// A resolved, read-only view of one entry for listing (`ipvsadm -Lc`, `/proc/net/ip_vs_conn`)
/// and for the control plane.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo<'a> {
    /// Id in the table.
    pub id: ConnId,
    /// Family of the client side.
    pub family: Family,
    /// IANA protocol.
    pub protocol: u8,
    /// Client address.
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual address (fwmark templates: the mark as IPv4).
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real-server address (its family is the dest family).
    pub daddr: IpAddr,
    /// Real-server port.
    pub dport: u16,
    /// Full-NAT local address and port.
    pub local: Option<(IpAddr, u16)>,
    /// Packet mark at creation.
    pub fwmark: u32,
    /// Flags.
    pub flags: u32,
    /// State.
    pub state: u8,
    /// State name as printed.
    pub state_name: &'static str,
    /// Timeout.
    pub timeout: Duration,
    /// Expiry time if the timer is armed.
    pub expires: Option<Time>,
    /// Destination.
    pub dest: Option<DestId>,
    /// Controller.
    pub control: Option<ConnId>,
    /// Number controlled.
    pub n_control: u32,
    /// Incoming packets.
    pub in_pkts: u32,
    /// Persistence-engine data.
    pub pe_data: Option<&'a [u8]>,
}

impl ConnInfo<'_> {
    /// Seconds until expiry as `ipvsadm -Lc` prints them: `(expires - now)` in ms / 1000,
    /// clamped at 0.
    pub fn expires_in_secs(&self, now: Time) -> u64 {
        self.expires
            .map(|e| e.saturating_since(now).as_secs())
            .unwrap_or(0)
    }
}

#[derive(Copy, Clone, Debug)]
struct PoolSlot {
    addr: Addr16,
    refs: u32,
}

/// Reference-counted interning of the addresses that repeat across connections.
#[derive(Clone, Debug, Default)]
struct AddrPool {
    slots: Vec<PoolSlot>,
    free: Vec<u32>,
    map: HashMap<Addr16, u32>,
}

impl AddrPool {
    fn acquire(&mut self, a: Addr16) -> u32 {
        if let Some(&i) = self.map.get(&a) {
            self.slots[i as usize].refs += 1;
            return i;
        }
        let slot = PoolSlot { addr: a, refs: 1 };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.map.insert(a, i);
        i
    }
    fn release(&mut self, i: u32) {
        let Some(s) = self.slots.get_mut(i as usize) else {
            return;
        };
        s.refs = s.refs.saturating_sub(1);
        if s.refs == 0 {
            let a = s.addr;
            self.map.remove(&a);
            self.free.push(i);
        }
    }
    #[inline]
    fn get(&self, i: u32) -> Option<&Addr16> {
        self.slots.get(i as usize).map(|s| &s.addr)
    }
    fn bytes(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<PoolSlot>()
            + self.free.capacity() * 4
            + self.map.capacity() * (core::mem::size_of::<(Addr16, u32)>() + 1)
    }
}

#[derive(Clone, Debug)]
struct PeSlot {
    len: u8,
    data: [u8; PE_DATA_MAX],
}

/// Fixed odd constants (digits of pi) mixed into the multipliers.
const MIX0: u64 = 0x243f_6a88_85a3_08d3;
const MIX1: u64 = 0x1319_8a2e_0370_7345;

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

impl HashSeed {
    /// Keyed folded-multiply hash of `<proto, addr, port>` (the wyhash/foldhash construction):
    /// fast, and without the key an attacker cannot aim tuples at one bucket.
    #[inline]
    fn addr_port(&self, proto: u8, addr: &[u8; 16], port: u16) -> u64 {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&addr[..8]);
        hi.copy_from_slice(&addr[8..]);
        // The fixed constants keep a multiplier from being zero for a degenerate seed (an
        // all-zero key would otherwise zero every IPv4 hash, whose high half is 0).
        let x = fold_mul(
            u64::from_le_bytes(lo) ^ self.0[0],
            u64::from_le_bytes(hi) ^ self.0[1] ^ MIX0,
        );
        fold_mul(
            x ^ ((u64::from(port) << 8) | u64::from(proto)) ^ self.0[2],
            self.0[3] ^ MIX1,
        )
    }
    /// Hash of a PE template key: the Call-ID replaces the client address (as `ip_vs_pe_sip`
    /// `hashkey_raw` does).
    fn pe(&self, proto: u8, data: &[u8], vport: u16) -> u64 {
        let mut h = self.0[0] ^ (data.len() as u64);
        for chunk in data.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            h = fold_mul(h ^ u64::from_le_bytes(w) ^ self.0[1], self.0[2] ^ MIX0);
        }
        fold_mul(
            h ^ ((u64::from(vport) << 8) | u64::from(proto)) ^ self.0[3],
            self.0[1] ^ MIX1,
        )
    }
}

/// The connection table of one director (or of one worker, if the data plane shards by flow).
#[derive(Clone, Debug)]
pub struct ConnTable {
    slab: Vec<Conn>,
    free_head: u32,
    len: usize,
    by_client: Index,
    by_local: Index,
    pool: AddrPool,
    pe: Vec<PeSlot>,
    pe_free: Vec<u32>,
    wheel: Wheel,
    seed: HashSeed,
    no_cport: u32,
    expired: Vec<u32>,
    /// Most entries the table holds (`rvs_conn_max`); an insert beyond it is refused.
    max_entries: usize,
    /// Inserts refused because the table held `max_entries`.
    refused_full: u64,
    /// Sequence adjustments of the entries flagged SYNPROXY, by slot. A side table because
    /// few entries have one and [`Conn`] has no room to spare (96 bytes, three cache halves).
    seq: HashMap<u32, SeqAdjust>,
}

/// The sequence-number bookkeeping of a SYN-proxied connection (flag [`flags::SYNPROXY`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SeqAdjust {
    /// The initial sequence number the director gave the client (its SYN cookie).
    pub client_isn: u32,
    /// The real server's initial sequence number minus `client_isn`, once its SYN-ACK came;
    /// `None` while the director waits for it.
    pub delta: Option<u32>,
    /// The window of the client's handshake ACK: what the director advertises on the client's
    /// behalf when it completes the real server's handshake itself.
    pub client_window: u16,
}

/// The error [`ConnTable::insert`] returns when the table holds its maximum number of entries.
pub const TABLE_FULL: &str = "connection table full";

/// Hash of entry `c` for the client index.
#[inline]
fn client_hash(seed: &HashSeed, pe: &[PeSlot], c: &Conn) -> u64 {
    if c.flags & flags::TEMPLATE != 0 && c.pe != NONE_REF {
        if let Some(p) = pe.get(c.pe as usize) {
            return seed.pe(c.protocol, &p.data[..usize::from(p.len)], c.vport);
        }
    }
    seed.addr_port(c.protocol, &c.caddr, c.cport)
}

/// Hash of entry `c` for the full-NAT local index.
#[inline]
fn local_hash(seed: &HashSeed, pool: &AddrPool, c: &Conn) -> u64 {
    let l = pool.get(c.laddr).map(|a| a.bytes).unwrap_or([0; 16]);
    seed.addr_port(c.protocol, &l, c.lport)
}

impl ConnTable {
    /// An empty table whose timer wheel starts at `now`.
    pub fn new(seed: HashSeed, now: Time) -> ConnTable {
        ConnTable::with_capacity(seed, now, 0)
    }

    /// An empty table with room for `n` connections, so that growth (an O(n) rehash and copy)
    /// does not happen on the packet path. Size it to the expected peak: without it the slab
    /// grows by doubling and may carry up to 2× slack (88 B per unused slot).
    pub fn with_capacity(seed: HashSeed, now: Time, n: usize) -> ConnTable {
        ConnTable {
            slab: Vec::with_capacity(n),
            free_head: NIL,
            len: 0,
            by_client: Index::with_capacity(n),
            by_local: Index::default(),
            pool: AddrPool::default(),
            pe: Vec::new(),
            pe_free: Vec::new(),
            wheel: Wheel::new(now.0),
            seed,
            no_cport: 0,
            expired: Vec::new(),
            max_entries: MAX_ENTRIES,
            refused_full: 0,
            seq: HashMap::new(),
        }
    }

    /// Marks entry `id` as SYN-proxied ([`flags::SYNPROXY`]) with sequence bookkeeping `s`.
    /// Returns false if `id` is not live.
    pub fn set_seq_adjust(&mut self, id: ConnId, s: SeqAdjust) -> bool {
        let Some(c) = self.get_mut(id) else {
            return false;
        };
        c.flags |= flags::SYNPROXY;
        self.seq.insert(id.0, s);
        true
    }

    /// The sequence bookkeeping of a SYN-proxied entry.
    pub fn seq_adjust(&self, id: ConnId) -> Option<SeqAdjust> {
        let c = self.get(id)?;
        if c.flags & flags::SYNPROXY == 0 {
            return None;
        }
        self.seq.get(&id.0).copied()
    }

    /// Bound the number of entries (`rvs_conn_max`): once the table holds `n`, inserts are
    /// refused with [`TABLE_FULL`] and counted, so that a flood of new flows cannot grow it
    /// (and the daemon's memory) without limit. Entries already there are untouched, even if
    /// there are more than `n`; they leave as they expire.
    pub fn set_max_entries(&mut self, n: usize) {
        self.max_entries = n.clamp(1, MAX_ENTRIES);
    }

    /// The bound set by [`ConnTable::set_max_entries`].
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// How many inserts were refused because the table was full.
    pub fn refused_full(&self) -> u64 {
        self.refused_full
    }

    /// The key of the table's hash, for a data plane that needs a secret of its own derived
    /// from the daemon's random seed (the SYN proxy's cookie key).
    pub fn seed(&self) -> HashSeed {
        self.seed
    }

    /// Number of entries (connections and templates, hashed or not).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of entries in the client index (what `-Lc` lists).
    pub fn hashed_len(&self) -> usize {
        self.by_client.len()
    }

    /// Number of armed timers.
    pub fn armed_timers(&self) -> usize {
        self.wheel.armed()
    }

    /// Bytes of memory held: slab, indexes (8-byte slots, all of them), address pool, PE slab
    /// and timer wheel.
    pub fn memory_bytes(&self) -> usize {
        self.slab.capacity() * core::mem::size_of::<Conn>()
            + self.by_client.bytes()
            + self.by_local.bytes()
            + self.pool.bytes()
            + self.pe.capacity() * core::mem::size_of::<PeSlot>()
            + self.pe_free.capacity() * 4
            + self.seq.capacity() * (4 + core::mem::size_of::<SeqAdjust>() + 1)
            + (6 * 64 + 1) * 4
    }

    /// The entry `id`, if live.
    #[inline]
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.slab.get(id.0 as usize).filter(|c| c.live())
    }

    /// Mutable access to the non-key fields (`in_pkts`, `fwmark`, `old_state`) of entry `id`.
    #[inline]
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slab.get_mut(id.0 as usize).filter(|c| c.live())
    }

    /// A resolved view of entry `id`.
    pub fn info(&self, id: ConnId) -> Option<ConnInfo<'_>> {
        let c = self.get(id)?;
        let addr = |r: u32| self.pool.get(r).map(Addr16::ip);
        let unspec = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        Some(ConnInfo {
            id,
            family: c.family(),
            protocol: c.protocol,
            caddr: c.caddr(),
            cport: c.cport,
            vaddr: addr(c.vaddr).unwrap_or(unspec),
            vport: c.vport,
            daddr: addr(c.daddr).unwrap_or(unspec),
            dport: c.dport,
            local: addr(c.laddr).map(|a| (a, c.lport)),
            fwmark: c.fwmark,
            flags: c.flags,
            state: c.state,
            state_name: c.state_name(),
            timeout: c.timeout(),
            expires: c.expires(),
            dest: c.dest(),
            control: c.control(),
            n_control: c.n_control,
            in_pkts: c.in_pkts,
            pe_data: self.pe_data(id),
        })
    }

    /// Entry `id` with the addresses it keeps in the pool (virtual, real server, full-NAT
    /// local with its port) and its persistence-engine data: what a sync record needs beyond
    /// the entry's own fields, in one look-up and without building a whole [`ConnInfo`] — the
    /// sync master resolves this for every announced connection, on the packet path.
    #[inline]
    pub fn sync_view(&self, id: ConnId) -> Option<(&Conn, PooledAddrs, Option<&[u8]>)> {
        let c = self.get(id)?;
        let addr = |r: u32| self.pool.get(r).map(Addr16::ip);
        let unspec = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let pe = if c.pe == NONE_REF {
            None
        } else {
            self.pe
                .get(c.pe as usize)
                .map(|p| &p.data[..usize::from(p.len)])
        };
        Some((
            c,
            (
                addr(c.vaddr).unwrap_or(unspec),
                addr(c.daddr).unwrap_or(unspec),
                addr(c.laddr).map(|a| (a, c.lport)),
            ),
            pe,
        ))
    }

    /// Entry `id` as the fixed-form sync record, when it is one (IPv4, no sequence data, no
    /// engine data, no full-NAT local address; see [`crate::sync::SyncV4`]): the fields the
    /// record needs and nothing else, for the packet path, which announces one per new
    /// connection. `None` when the entry is gone or needs the general record
    /// ([`ConnTable::sync_view`]).
    #[inline]
    pub fn sync_v4(&self, id: ConnId) -> Option<crate::sync::SyncV4> {
        let c = self.get(id)?;
        if c.v6
            || c.laddr != NONE_REF
            || c.pe != NONE_REF
            || c.flags & (flags::IN_SEQ | flags::OUT_SEQ) != 0
        {
            return None;
        }
        let v4 = |r: u32| match self.pool.get(r) {
            Some(a) if !a.v6 => Some([a.bytes[0], a.bytes[1], a.bytes[2], a.bytes[3]]),
            Some(_) => None,
            None => Some([0; 4]),
        };
        Some(crate::sync::SyncV4 {
            protocol: c.protocol,
            flags: c.flags & !flags::HASHED,
            state: u16::from(c.state),
            caddr: [c.caddr[0], c.caddr[1], c.caddr[2], c.caddr[3]],
            cport: c.cport,
            vaddr: v4(c.vaddr)?,
            vport: c.vport,
            daddr: v4(c.daddr)?,
            dport: c.dport,
            fwmark: c.fwmark,
            timeout_secs: c.timeout / 1000,
        })
    }

    /// Persistence-engine data of entry `id`.
    pub fn pe_data(&self, id: ConnId) -> Option<&[u8]> {
        let c = self.get(id)?;
        let p = self.pe.get(c.pe as usize)?;
        Some(&p.data[..usize::from(p.len)])
    }

    /// Every hashed entry (what `ipvsadm -Lc` lists: ONE_PACKET entries never appear), in index
    /// order. Resolve with [`ConnTable::info`].
    pub fn iter(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.by_client.iter().map(ConnId)
    }

    /// A copy of what [`state::existing_conn_action`] needs about entry `id`.
    pub fn existing(&self, id: ConnId, svc: &ServiceTable) -> Option<ExistingConn> {
        let c = self.get(id)?;
        let d = c.dest().and_then(|d| svc.dests.get(d));
        Some(ExistingConn {
            protocol: c.protocol,
            state: c.state,
            flags: c.flags,
            controlled: c.control != NONE_REF,
            n_control: c.n_control,
            dest_weight: d.map(|d| d.weight()),
            dest_available: d.map(|d| d.available),
        })
    }

    // -----------------------------------------------------------------------------------------
    // Insertion and removal

    /// `ip_vs_conn_new` + `ip_vs_bind_dest` + hashing: create an entry and arm its timer at
    /// `now + timeout`.
    ///
    /// With a dest, the entry inherits the dest's connection flags — its forwarding method,
    /// INACTIVE, and NOOUTPUT unless the method sees replies (NAT, full-NAT) — and is counted in
    /// the dest's `persist` (templates) or `inactive`/`active` counter, with the OVERLOAD check,
    /// and `load_changed` is called. Sync-created entries (flag SYNC) keep their own INACTIVE bit
    /// (non-templates) and take the forwarding method from the dest. ONE_PACKET is dropped for
    /// non-UDP protocols and ONE_PACKET entries are not hashed.
    ///
    /// Errors: PE data longer than 255 bytes, or [`TABLE_FULL`] when the table holds
    /// [`ConnTable::max_entries`] entries (at most 2^31).
    pub fn insert(&mut self, n: &NewConn<'_>, now: Time, svc: &mut ServiceTable) -> Result<ConnId> {
        if n.pe_data.is_some_and(|d| d.len() > PE_DATA_MAX) {
            return Err(Error::Invalid(
                "persistence engine data longer than 255 bytes",
            ));
        }
        if self.len >= self.max_entries || (self.free_head == NIL && self.slab.len() >= MAX_ENTRIES)
        {
            self.refused_full = self.refused_full.wrapping_add(1);
            return Err(Error::Range(TABLE_FULL));
        }
        // Start the two cache misses an insert cannot avoid, the free slab slot and the index
        // line the entry goes to, before the (cached) work below, so they overlap instead of
        // coming one after the other. Plain loads; `hash` recomputes the same hash.
        if let Some(c) = self.slab.get(self.free_head as usize) {
            core::hint::black_box(c.next);
        }
        let h = match n.pe_data {
            Some(d) if n.flags & flags::TEMPLATE != 0 => self.seed.pe(n.protocol, d, n.vport),
            _ => self
                .seed
                .addr_port(n.protocol, &Addr16::of(&n.caddr).bytes, n.cport),
        };
        core::hint::black_box(self.by_client.touch(h));
        let mut fl = n.flags & !flags::HASHED;
        let mut dest_ref = NONE_REF;
        if let Some(did) = n.dest {
            if let Some(d) = svc.dests.get_mut(did) {
                let mut conn_flags = d.cfg.fwd.code() | flags::INACTIVE;
                if !d.cfg.fwd.sees_replies() {
                    conn_flags |= flags::NOOUTPUT;
                }
                if fl & flags::SYNC != 0 {
                    if fl & flags::TEMPLATE == 0 {
                        conn_flags &= !flags::INACTIVE;
                    }
                    fl &= !(flags::FWD_MASK | flags::NOOUTPUT);
                }
                fl |= conn_flags;
                let template = fl & flags::TEMPLATE != 0;
                d.bind_conn(template, fl & flags::INACTIVE != 0);
                dest_ref = did.0;
                svc.load_changed(did);
            }
        }
        if n.protocol != proto::UDP {
            fl &= !flags::ONE_PACKET;
        }

        let v6 = matches!(n.caddr, IpAddr::V6(_));
        let vaddr = self.pool.acquire(Addr16::of(&n.vaddr));
        let daddr = self.pool.acquire(Addr16::of(&n.daddr));
        let (laddr, lport) = match n.local {
            Some((a, p)) => (self.pool.acquire(Addr16::of(&a)), p),
            None => (NONE_REF, 0),
        };
        let pe = match n.pe_data {
            Some(d) => {
                let mut slot = PeSlot {
                    len: d.len() as u8,
                    data: [0; PE_DATA_MAX],
                };
                slot.data[..d.len()].copy_from_slice(d);
                match self.pe_free.pop() {
                    Some(i) => {
                        self.pe[i as usize] = slot;
                        i
                    }
                    None => {
                        self.pe.push(slot);
                        (self.pe.len() - 1) as u32
                    }
                }
            }
            None => NONE_REF,
        };
        if fl & flags::NO_CPORT != 0 {
            self.no_cport += 1;
        }
        let timeout = u32::try_from(n.timeout.as_millis()).unwrap_or(u32::MAX);
        let conn = Conn {
            expires: 0,
            caddr: Addr16::of(&n.caddr).bytes,
            vaddr,
            daddr,
            laddr,
            cport: n.cport,
            vport: n.vport,
            dport: n.dport,
            lport,
            fwmark: n.fwmark,
            flags: fl,
            dest: dest_ref,
            control: NONE_REF,
            n_control: 0,
            in_pkts: 0,
            timeout,
            due: 0,
            next: NIL,
            prev: UNLINKED,
            pe,
            v6,
            protocol: n.protocol,
            state: 0,
            old_state: 0,
            sync_endtime: 0,
        };
        let i = if self.free_head != NIL {
            let i = self.free_head;
            self.free_head = self.slab[i as usize].next;
            self.slab[i as usize] = conn;
            i
        } else {
            self.slab.push(conn);
            (self.slab.len() - 1) as u32
        };
        self.len += 1;
        let id = ConnId(i);
        if fl & flags::ONE_PACKET == 0 {
            self.hash(i);
        }
        self.restart_timer(id, now);
        Ok(id)
    }

    /// Link `child` under `parent` (`ip_vs_control_add`): the child's controller is set and the
    /// parent's `n_control` incremented. A child already controlled is first detached from its
    /// old controller. Returns false if either id is not live or they are equal.
    pub fn set_control(&mut self, child: ConnId, parent: ConnId) -> bool {
        if child == parent || self.get(child).is_none() || self.get(parent).is_none() {
            return false;
        }
        self.detach_control(child);
        self.slab[child.0 as usize].control = parent.0;
        self.slab[parent.0 as usize].n_control += 1;
        true
    }

    /// Detach `child` from its controller (`ip_vs_control_del`).
    pub fn detach_control(&mut self, child: ConnId) -> Option<ConnId> {
        let c = self.get_mut(child)?;
        let p = c.control;
        if p == NONE_REF {
            return None;
        }
        c.control = NONE_REF;
        if let Some(pc) = self.get_mut(ConnId(p)) {
            pc.n_control = pc.n_control.saturating_sub(1);
        }
        Some(ConnId(p))
    }

    /// Remove entry `id` now: stop its timer, unhash it, detach it from its controller, unbind it
    /// from its dest (`Dest::unbind_conn` with its template/inactive bits, then `load_changed`)
    /// and free it.
    ///
    /// Refuses (returns `None`) while the entry controls others: children refer to it by id, so
    /// it must outlive them (the expiry path postpones such entries; use [`ConnTable::clear`] to
    /// flush everything).
    pub fn remove_and_unbind(
        &mut self,
        id: ConnId,
        now: Time,
        svc: &mut ServiceTable,
    ) -> Option<Removed> {
        let c = self.get(id)?;
        if c.n_control > 0 {
            return None;
        }
        let i = id.0;
        self.wheel.stop(&mut self.slab, i);
        self.unhash(id);
        let control = self.detach_control(id);
        let c = &self.slab[i as usize];
        let removed = Removed {
            id,
            protocol: c.protocol,
            flags: c.flags,
            state: c.state,
            dest: c.dest(),
            control,
        };
        if let Some(did) = removed.dest {
            if let Some(d) = svc.dests.get_mut(did) {
                d.unbind_conn(
                    removed.flags & flags::TEMPLATE != 0,
                    removed.flags & flags::INACTIVE != 0,
                    now,
                );
                svc.load_changed(did);
            }
        }
        self.free_slot(i);
        Some(removed)
    }

    fn free_slot(&mut self, i: u32) {
        let c = &self.slab[i as usize];
        let (vaddr, daddr, laddr, pe, fl) = (c.vaddr, c.daddr, c.laddr, c.pe, c.flags);
        self.pool.release(vaddr);
        self.pool.release(daddr);
        if laddr != NONE_REF {
            self.pool.release(laddr);
        }
        if pe != NONE_REF {
            self.pe_free.push(pe);
        }
        if fl & flags::NO_CPORT != 0 {
            self.no_cport = self.no_cport.saturating_sub(1);
        }
        if fl & flags::SYNPROXY != 0 {
            self.seq.remove(&i);
        }
        let mut v = Conn::vacant();
        v.next = self.free_head;
        self.slab[i as usize] = v;
        self.free_head = i;
        self.len -= 1;
    }

    /// Remove every entry (`ip_vs_conn_flush`), unbinding each from its dest.
    pub fn clear(&mut self, now: Time, svc: &mut ServiceTable) {
        let mut touched: Vec<DestId> = Vec::new();
        for c in self.slab.iter().filter(|c| c.live()) {
            if let Some(did) = c.dest() {
                if let Some(d) = svc.dests.get_mut(did) {
                    d.unbind_conn(c.is_template(), c.is_inactive(), now);
                    touched.push(did);
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for did in touched {
            svc.load_changed(did);
        }
        self.slab.clear();
        self.free_head = NIL;
        self.len = 0;
        self.by_client.clear();
        self.by_local.clear();
        self.pool = AddrPool::default();
        self.pe.clear();
        self.pe_free.clear();
        self.wheel = Wheel::new(now.0);
        self.no_cport = 0;
        self.seq.clear();
    }

    // -----------------------------------------------------------------------------------------
    // Hashing

    fn hash(&mut self, i: u32) {
        let c = &self.slab[i as usize];
        let h = client_hash(&self.seed, &self.pe, c);
        let hl = (c.laddr != NONE_REF).then(|| local_hash(&self.seed, &self.pool, c));
        self.by_client.insert(h, i);
        if let Some(h) = hl {
            self.by_local.insert(h, i);
        }
        self.slab[i as usize].flags |= flags::HASHED;
    }

    /// Take entry `id` out of the indexes (`ip_vs_conn_unhash`). Returns false if it was not
    /// hashed.
    pub fn unhash(&mut self, id: ConnId) -> bool {
        let Some(c) = self.get(id) else {
            return false;
        };
        if c.flags & flags::HASHED == 0 {
            return false;
        }
        let h = client_hash(&self.seed, &self.pe, c);
        let hl = (c.laddr != NONE_REF).then(|| local_hash(&self.seed, &self.pool, c));
        self.by_client.remove(h, id.0);
        if let Some(h) = hl {
            self.by_local.remove(h, id.0);
        }
        self.slab[id.0 as usize].flags &= !flags::HASHED;
        true
    }

    /// Put entry `id` back into the indexes (`ip_vs_conn_rehash`). ONE_PACKET entries are never
    /// hashed. Returns false if it was already hashed or cannot be.
    pub fn rehash(&mut self, id: ConnId) -> bool {
        let Some(c) = self.get(id) else {
            return false;
        };
        if c.flags & (flags::HASHED | flags::ONE_PACKET) != 0 {
            return false;
        }
        self.hash(id.0);
        true
    }

    /// Template invalidation of `ip_vs_check_template` (docs/internals/persistence.md): unhash, set vport and dport to
    /// 0xffff and cport to 0, re-hash, so the template no longer matches any look-up but still
    /// lives (and is listed) until it expires. Does nothing if vport is already 0xffff.
    pub fn invalidate_template(&mut self, id: ConnId) -> bool {
        let Some(c) = self.get(id) else {
            return false;
        };
        if c.vport == INVALID_PORT {
            return false;
        }
        let was_hashed = self.unhash(id);
        let c = &mut self.slab[id.0 as usize];
        c.vport = INVALID_PORT;
        c.dport = INVALID_PORT;
        c.cport = 0;
        if was_hashed {
            self.hash(id.0);
        }
        true
    }

    /// `ip_vs_conn_fill_cport`: an entry created without a client port (NO_CPORT) learns it.
    pub fn fill_cport(&mut self, id: ConnId, cport: u16) -> bool {
        let Some(c) = self.get(id) else {
            return false;
        };
        if c.flags & flags::NO_CPORT == 0 {
            return false;
        }
        let was_hashed = self.unhash(id);
        let c = &mut self.slab[id.0 as usize];
        c.flags &= !flags::NO_CPORT;
        c.cport = cport;
        self.no_cport = self.no_cport.saturating_sub(1);
        if was_hashed {
            self.hash(id.0);
        }
        true
    }

    // -----------------------------------------------------------------------------------------
    // Look-ups

    /// Client-side look-up (`ip_vs_conn_in_get`): a packet `caddr:cport → vaddr:vport`. Matches
    /// non-template entries with the kernel's rule that a zero `cport` only matches NO_CPORT
    /// entries and a non-zero one only the others; if nothing matches and NO_CPORT entries
    /// exist, retries with cport 0.
    #[inline]
    pub fn lookup_in(
        &self,
        protocol: u8,
        caddr: &IpAddr,
        cport: u16,
        vaddr: &IpAddr,
        vport: u16,
    ) -> Option<ConnId> {
        let ca = Addr16::of(caddr);
        let va = Addr16::of(vaddr);
        let found = self.in_get(protocol, &ca, cport, &va, vport);
        if found.is_none() && self.no_cport > 0 && cport != 0 {
            return self.in_get(protocol, &ca, 0, &va, vport);
        }
        found
    }

    #[inline]
    fn in_get(
        &self,
        protocol: u8,
        ca: &Addr16,
        cport: u16,
        va: &Addr16,
        vport: u16,
    ) -> Option<ConnId> {
        let h = self.seed.addr_port(protocol, &ca.bytes, cport);
        self.in_get_hashed(h, protocol, ca, cport, va, vport)
    }

    #[inline]
    fn in_get_hashed(
        &self,
        h: u64,
        protocol: u8,
        ca: &Addr16,
        cport: u16,
        va: &Addr16,
        vport: u16,
    ) -> Option<ConnId> {
        self.by_client
            .find(h, |j| {
                let c = &self.slab[j as usize];
                c.cport == cport
                    && c.vport == vport
                    && c.protocol == protocol
                    && c.caddr == ca.bytes
                    && c.v6 == ca.v6
                    && ((cport == 0) == (c.flags & flags::NO_CPORT != 0))
                    && self.pool.get(c.vaddr) == Some(va)
            })
            .map(ConnId)
    }

    /// Read the index line and the first candidate's slab line of a client-index look-up of
    /// `h`, so their cache misses overlap with those of the other keys of a batch. Plain loads
    /// kept alive with `black_box` (no prefetch intrinsics: the crate has no `unsafe`).
    #[inline]
    fn touch_client(&self, h: u64, second: bool) {
        if !second {
            core::hint::black_box(self.by_client.touch(h));
            return;
        }
        // The first tag match is nearly always the entry: read the line the comparison reads.
        if let Some(j) = self.by_client.find(h, |_| true) {
            if let Some(c) = self.slab.get(j as usize) {
                core::hint::black_box(c.cport);
            }
        }
    }

    /// [`ConnTable::lookup_in`] for a batch of packets (`out[i]` for `keys[i]`; `out` must be
    /// at least as long as `keys`). Same results, higher throughput: keys are taken in chunks;
    /// for a chunk, all index lines are read first, then all candidate slab entries, then the
    /// look-ups run on cached lines, so the cache misses of different packets overlap instead
    /// of each look-up waiting for its own two in turn.
    pub fn lookup_in_batch(&self, keys: &[InKey], out: &mut [Option<ConnId>]) {
        assert!(
            out.len() >= keys.len(),
            "lookup_in_batch: output shorter than input"
        );
        for (keys, out) in keys.chunks(BATCH_CHUNK).zip(out.chunks_mut(BATCH_CHUNK)) {
            let mut hs = [0u64; BATCH_CHUNK];
            for (h, k) in hs.iter_mut().zip(keys) {
                *h = self
                    .seed
                    .addr_port(k.protocol, &Addr16::of(&k.caddr).bytes, k.cport);
                self.touch_client(*h, false);
            }
            for &h in &hs[..keys.len()] {
                self.touch_client(h, true);
            }
            for ((o, k), &h) in out.iter_mut().zip(keys).zip(&hs) {
                let ca = Addr16::of(&k.caddr);
                let va = Addr16::of(&k.vaddr);
                let found = self.in_get_hashed(h, k.protocol, &ca, k.cport, &va, k.vport);
                *o = if found.is_none() && self.no_cport > 0 && k.cport != 0 {
                    self.in_get(k.protocol, &ca, 0, &va, k.vport)
                } else {
                    found
                };
            }
        }
    }

    /// [`ConnTable::lookup_out`] for a batch of packets, overlapping their cache misses as
    /// [`ConnTable::lookup_in_batch`] does.
    pub fn lookup_out_batch(&self, keys: &[OutKey], out: &mut [Option<ConnId>]) {
        assert!(
            out.len() >= keys.len(),
            "lookup_out_batch: output shorter than input"
        );
        for (keys, out) in keys.chunks(BATCH_CHUNK).zip(out.chunks_mut(BATCH_CHUNK)) {
            let mut hs = [0u64; BATCH_CHUNK];
            for (h, k) in hs.iter_mut().zip(keys) {
                *h = self
                    .seed
                    .addr_port(k.protocol, &Addr16::of(&k.daddr).bytes, k.dport);
                self.touch_client(*h, false);
            }
            for &h in &hs[..keys.len()] {
                self.touch_client(h, true);
            }
            for ((o, k), &h) in out.iter_mut().zip(keys).zip(&hs) {
                *o = self.out_get_hashed(h, k.protocol, &k.saddr, k.sport, &k.daddr, k.dport);
            }
        }
    }

    /// NAT reply look-up (`ip_vs_conn_out_get`): a packet from the real server `saddr:sport` to
    /// the client `daddr:dport` matches the entry with `daddr:dport == saddr:sport` and
    /// `caddr:cport == daddr:dport`. Templates never match.
    #[inline]
    pub fn lookup_out(
        &self,
        protocol: u8,
        saddr: &IpAddr,
        sport: u16,
        daddr: &IpAddr,
        dport: u16,
    ) -> Option<ConnId> {
        let h = self
            .seed
            .addr_port(protocol, &Addr16::of(daddr).bytes, dport);
        self.out_get_hashed(h, protocol, saddr, sport, daddr, dport)
    }

    #[inline]
    fn out_get_hashed(
        &self,
        h: u64,
        protocol: u8,
        saddr: &IpAddr,
        sport: u16,
        daddr: &IpAddr,
        dport: u16,
    ) -> Option<ConnId> {
        let sa = Addr16::of(saddr);
        let ca = Addr16::of(daddr);
        self.by_client
            .find(h, |j| {
                let c = &self.slab[j as usize];
                c.cport == dport
                    && c.dport == sport
                    && c.protocol == protocol
                    && c.caddr == ca.bytes
                    && c.v6 == ca.v6
                    && c.flags & flags::TEMPLATE == 0
                    && self.pool.get(c.daddr) == Some(&sa)
            })
            .map(ConnId)
    }

    /// Full-NAT reply look-up: a packet from the real server `saddr:sport` to the director's
    /// local address `daddr:dport` matches the entry with `daddr:dport == saddr:sport` and
    /// `laddr:lport == daddr:dport`. Also tells a local-port allocator whether a
    /// `<laddr, lport, daddr, dport>` tuple is taken.
    #[inline]
    pub fn lookup_fullnat_out(
        &self,
        protocol: u8,
        saddr: &IpAddr,
        sport: u16,
        daddr: &IpAddr,
        dport: u16,
    ) -> Option<ConnId> {
        if self.by_local.is_empty() {
            return None;
        }
        let sa = Addr16::of(saddr);
        let la = Addr16::of(daddr);
        let h = self.seed.addr_port(protocol, &la.bytes, dport);
        self.by_local
            .find(h, |j| {
                let c = &self.slab[j as usize];
                c.lport == dport
                    && c.dport == sport
                    && c.protocol == protocol
                    && self.pool.get(c.laddr) == Some(&la)
                    && self.pool.get(c.daddr) == Some(&sa)
            })
            .map(ConnId)
    }

    /// Template look-up (`ip_vs_ct_in_get`): `<protocol, caddr (masked), cport 0, vaddr,
    /// vport>` among TEMPLATE entries. For fwmark templates pass protocol 0 and
    /// `vaddr = Ipv4Addr::from(mark)`. With `pe_data` (SIP), the entry must carry byte-equal PE
    /// data, and the index is searched by the data's hash as the kernel's `hashkey_raw` does.
    pub fn lookup_template(
        &self,
        protocol: u8,
        caddr: &IpAddr,
        vaddr: &IpAddr,
        vport: u16,
        pe_data: Option<&[u8]>,
    ) -> Option<ConnId> {
        let ca = Addr16::of(caddr);
        let va = Addr16::of(vaddr);
        let h = match pe_data {
            Some(d) => self.seed.pe(protocol, d, vport),
            None => self.seed.addr_port(protocol, &ca.bytes, 0),
        };
        self.by_client
            .find(h, |j| {
                let c = &self.slab[j as usize];
                if c.flags & flags::TEMPLATE == 0
                    || c.cport != 0
                    || c.vport != vport
                    || c.protocol != protocol
                    || c.caddr != ca.bytes
                    || c.v6 != ca.v6
                    || self.pool.get(c.vaddr) != Some(&va)
                {
                    return false;
                }
                match pe_data {
                    Some(d) => self
                        .pe
                        .get(c.pe as usize)
                        .is_some_and(|p| &p.data[..usize::from(p.len)] == d),
                    None => true,
                }
            })
            .map(ConnId)
    }

    // -----------------------------------------------------------------------------------------
    // Timers and state

    /// Set and clear `IP_VS_CONN_F_*` bits that carry no table invariants (NFCT, IN_SEQ,
    /// OUT_SEQ, SYNC, NOOUTPUT). Refuses (returns false) for the forwarding method, HASHED,
    /// INACTIVE, NO_CPORT, TEMPLATE and ONE_PACKET, which only change through the table's own
    /// operations because indexes or dest counters depend on them.
    pub fn update_flags(&mut self, id: ConnId, set: u32, clear: u32) -> bool {
        const FIXED: u32 = flags::FWD_MASK
            | flags::HASHED
            | flags::INACTIVE
            | flags::NO_CPORT
            | flags::TEMPLATE
            | flags::ONE_PACKET;
        if (set | clear) & FIXED != 0 {
            return false;
        }
        match self.get_mut(id) {
            Some(c) => {
                c.flags = (c.flags & !clear) | set;
                true
            }
            None => false,
        }
    }

    /// Set entry `id`'s state and `old_state` as a sync backup does with a received record
    /// (no counter moves: the INACTIVE bit decides those). Returns false if `id` is not live.
    pub fn set_synced_state(&mut self, id: ConnId, state: u8) -> bool {
        match self.get_mut(id) {
            Some(c) => {
                c.state = state;
                c.old_state = state;
                true
            }
            None => false,
        }
    }

    /// Replace the INACTIVE bit of a sync-created entry as a newer record says, moving its dest
    /// between the active and inactive counters (`ip_vs_proc_conn` on an existing entry).
    /// Templates only take the bit. Returns false if `id` is not live.
    pub fn set_synced_inactive(
        &mut self,
        id: ConnId,
        inactive: bool,
        svc: &mut ServiceTable,
    ) -> bool {
        let Some(c) = self.get_mut(id) else {
            return false;
        };
        let was = c.flags & flags::INACTIVE != 0;
        if was == inactive {
            return true;
        }
        c.flags ^= flags::INACTIVE;
        let template = c.flags & flags::TEMPLATE != 0;
        if let (false, Some(did)) = (template, c.dest()) {
            if let Some(d) = svc.dests.get_mut(did) {
                d.move_conn(!inactive);
            }
        }
        true
    }

    /// Bind an unbound sync-created entry to `dest` (`ip_vs_try_bind_dest`): the forwarding
    /// method and NOOUTPUT come from the dest, the entry keeps its INACTIVE bit, and the dest's
    /// counters are bumped. Returns false if `id` is not live, already bound, or `dest` unknown.
    pub fn bind_dest(&mut self, id: ConnId, dest: DestId, svc: &mut ServiceTable) -> bool {
        let Some(c) = self.slab.get(id.0 as usize).filter(|c| c.live()) else {
            return false;
        };
        if c.dest != NONE_REF {
            return false;
        }
        let Some(d) = svc.dests.get_mut(dest) else {
            return false;
        };
        let mut fl = c.flags & !(flags::FWD_MASK | flags::NOOUTPUT);
        fl |= d.cfg.fwd.code();
        if !d.cfg.fwd.sees_replies() {
            fl |= flags::NOOUTPUT;
        }
        d.bind_conn(fl & flags::TEMPLATE != 0, fl & flags::INACTIVE != 0);
        svc.load_changed(dest);
        let c = &mut self.slab[id.0 as usize];
        c.flags = fl;
        c.dest = dest.0;
        true
    }

    /// Set entry `id`'s timeout (e.g. a template's persistence timeout) without restarting it.
    pub fn set_timeout(&mut self, id: ConnId, timeout: Duration) -> bool {
        match self.get_mut(id) {
            Some(c) => {
                c.timeout = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
                true
            }
            None => false,
        }
    }

    /// Restart entry `id`'s timer with its current timeout (`__ip_vs_conn_put_timer`); ONE_PACKET
    /// entries expire immediately.
    #[inline]
    pub fn restart_timer(&mut self, id: ConnId, now: Time) -> bool {
        let Some(c) = self.get_mut(id) else {
            return false;
        };
        if c.flags & flags::ONE_PACKET != 0 {
            c.expires = now.0;
            self.wheel.arm_due(&mut self.slab, id.0);
        } else {
            c.expires = now.0.saturating_add(u64::from(c.timeout));
            self.wheel.restart(&mut self.slab, id.0);
        }
        true
    }

    /// `ip_vs_conn_expire_now`: make entry `id` expire at the next [`ConnTable::expire`] (which
    /// still postpones it if it controls others). Only an armed timer is moved, as in the kernel.
    pub fn expire_now(&mut self, id: ConnId, now: Time) -> bool {
        let Some(c) = self.get_mut(id) else {
            return false;
        };
        if !Wheel::is_armed(c) {
            return false;
        }
        c.expires = now.0;
        self.wheel.arm_due(&mut self.slab, id.0);
        true
    }

    /// Apply one packet to entry `id` (the protocol's `state_transition`, then the timer restart
    /// of the final "put"):
    ///
    /// - TCP/SCTP: NOOUTPUT selects the INPUT_ONLY table for input packets and is cleared by the
    ///   first output packet; the next state comes from the table (the secure TCP table when
    ///   `sys.secure_tcp`); on a state change with a dest, the conn moves between the dest's
    ///   inactive and active counters (TCP: ESTABLISHED, SYN_SENT, SYN_RECV, SYNACK are active;
    ///   SCTP: ESTABLISHED) and `load_changed` is called; entering ESTABLISHED assures the
    ///   controlling template.
    /// - UDP: an output packet assures the controlling template; counters never move.
    /// - The timeout becomes the table value of the new state (even if unchanged), then the
    ///   timer restarts. Templates and other protocols only restart their timer.
    pub fn on_packet(
        &mut self,
        id: ConnId,
        dir: Direction,
        seg: Segment,
        sys: &ConnSysctls,
        now: Time,
        svc: &mut ServiceTable,
    ) -> Option<PacketOutcome> {
        let c = self.slab.get_mut(id.0 as usize).filter(|c| c.live())?;
        let old = c.state;
        let mut out = PacketOutcome {
            old_state: old,
            new_state: old,
            moved: None,
            assured: None,
        };
        if c.flags & flags::TEMPLATE != 0 {
            self.restart_timer(id, now);
            return Some(out);
        }
        let mut assure = false;
        let table_dir = |c: &mut Conn| {
            let mut td = match dir {
                Direction::Input => TableDir::Input,
                Direction::Output => TableDir::Output,
            };
            if c.flags & flags::NOOUTPUT != 0 {
                if dir == Direction::Output {
                    c.flags &= !flags::NOOUTPUT;
                } else {
                    td = TableDir::InputOnly;
                }
            }
            td
        };
        let active_fn: Option<fn(u8) -> bool> = match (c.protocol, seg) {
            (proto::TCP, Segment::Tcp(f)) => {
                let td = table_dir(c);
                out.new_state = state::tcp_next_state(sys.secure_tcp, td, f, old);
                Some(state::tcp_state_active)
            }
            (proto::SCTP, Segment::Sctp(ch)) => {
                let td = table_dir(c);
                out.new_state = state::sctp_next_state(td, ch, old);
                Some(state::sctp_state_active)
            }
            (proto::UDP, Segment::Udp) => {
                assure = dir == Direction::Output;
                None
            }
            _ => None,
        };
        if let Some(active) = active_fn {
            let new = out.new_state;
            if new != old {
                if let Some(did) = c.dest() {
                    let inactive = c.flags & flags::INACTIVE != 0;
                    let to_active = if !inactive && !active(new) {
                        c.flags |= flags::INACTIVE;
                        Some(false)
                    } else if inactive && active(new) {
                        c.flags &= !flags::INACTIVE;
                        Some(true)
                    } else {
                        None
                    };
                    if let Some(up) = to_active {
                        if let Some(d) = svc.dests.get_mut(did) {
                            d.move_conn(up);
                            svc.load_changed(did);
                        }
                        out.moved = Some((did, up));
                    }
                }
                let established = match c.protocol {
                    proto::TCP => new == state::tcp::ESTABLISHED,
                    _ => new == state::sctp::ESTABLISHED,
                };
                assure = established;
            }
            c.old_state = old;
            c.state = new;
            c.timeout = clamp_ms(sys.timeouts.for_state(c.protocol, new));
        } else if c.protocol == proto::UDP && seg == Segment::Udp {
            c.timeout = clamp_ms(sys.timeouts.udp);
        }
        if assure {
            out.assured = self.assure_controller(id);
        }
        self.restart_timer(id, now);
        Some(out)
    }

    /// `ip_vs_control_assure_ct`: mark entry `id`'s controlling template ASSURED. Returns the
    /// template if it changed.
    pub fn assure_controller(&mut self, id: ConnId) -> Option<ConnId> {
        let p = self.get(id)?.control;
        let t = self.get_mut(ConnId(p))?;
        if t.flags & flags::TEMPLATE != 0 && t.state & tmpl::ASSURED == 0 {
            t.state |= tmpl::ASSURED;
            return Some(ConnId(p));
        }
        None
    }

    /// Low-level expiry (`now` must not go backwards between calls; a budget of 0 counts as 1):
    /// move the wheel to `now` and append up to `budget` ids whose timer fired
    /// to `out` (their timers are now disarmed; they stay in the table until the caller re-arms
    /// them with [`ConnTable::restart_timer`] or removes them). Returns true if more work is
    /// pending at this `now`.
    pub fn poll_expired(&mut self, now: Time, budget: usize, out: &mut Vec<ConnId>) -> bool {
        let mut ids = core::mem::take(&mut self.expired);
        ids.clear();
        let more = self.wheel.advance(&mut self.slab, now.0, budget, &mut ids);
        out.extend(ids.iter().map(|&i| ConnId(i)));
        self.expired = ids;
        more
    }

    /// Expiry with the kernel's policy (`ip_vs_conn_expire`), doing at most `budget` units of
    /// work: each fired entry that controls others gets `timeout = 60 s` and is re-armed
    /// ([`Expired::Rearmed`]); every other one is removed with [`ConnTable::remove_and_unbind`]
    /// ([`Expired::Removed`]). Events are appended to `out` (a buffer the caller re-uses).
    /// Returns true if more expired entries are pending at this `now` (call again, e.g. on the
    /// next loop iteration, to spread the work).
    pub fn expire(
        &mut self,
        now: Time,
        budget: usize,
        svc: &mut ServiceTable,
        out: &mut Vec<Expired>,
    ) -> bool {
        let mut ids = core::mem::take(&mut self.expired);
        ids.clear();
        let more = self.wheel.advance(&mut self.slab, now.0, budget, &mut ids);
        // Walking the wheel list brought the entries in; read the index line each one is
        // unhashed from now, all at once, so those misses overlap instead of each removal
        // waiting for its own.
        for &i in &ids {
            if let Some(c) = self.slab.get(i as usize) {
                if c.flags & flags::HASHED != 0 {
                    let h = client_hash(&self.seed, &self.pe, c);
                    core::hint::black_box(self.by_client.touch(h));
                }
            }
        }
        for &i in &ids {
            let id = ConnId(i);
            let Some(c) = self.get_mut(id) else {
                continue;
            };
            if c.n_control > 0 {
                // Quirk (docs/internals/persistence.md): the timeout itself is overwritten, so later restarts use 60 s.
                c.timeout = clamp_ms(EXPIRE_LATER);
                self.restart_timer(id, now);
                out.push(Expired::Rearmed(id));
            } else if let Some(r) = self.remove_and_unbind(id, now, svc) {
                out.push(Expired::Removed(r));
            }
        }
        self.expired = ids;
        more
    }
}

#[inline]
fn clamp_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}
