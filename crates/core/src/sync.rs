//! Connection synchronisation between directors: what a synchronised entry carries, and the
//! settings that drive the kernel's rules (`docs/internals/sync.md`).
//!
//! The wire format lives in the `rvs-sync` crate; this module owns the model both ends share: a
//! [`SyncConn`] is one connection or template as a master announces it and a backup applies it,
//! independent of the protocol version that carries it.

use std::net::IpAddr;

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
}

impl SyncConn {
    /// Whether the entry is IPv6 (by its client address).
    pub fn is_v6(&self) -> bool {
        self.caddr.is_ipv6()
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
        }
    }
}
