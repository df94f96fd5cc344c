//! rvs-sync: the IPVS connection-synchronisation protocol, without I/O
//! (`docs/internals/sync.md`).
//!
//! - [`wire`]: sizes, option types, defaults and `sync_maxlen` as the kernel computes it.
//! - [`encode`]: the master's [`Encoder`], filling messages of version 0 or 1 up to
//!   `sync_maxlen`, byte-compatible with the kernel's sync daemon.
//! - [`outbox`]: the master's send queue, bounded by `sync_qlen_max`, flushing partial
//!   messages after a short delay (never later than the kernel's 2 s).
//! - [`sink`]: the master's [`MasterSink`], installed in each shard so the packet path
//!   encodes announced records straight into datagrams.
//! - [`resync`]: the control messages of bulk resync (an rvs extension kernel peers drop).
//! - [`decode`]: the backup's hardened decoder; every malformed datagram is reported with a
//!   reason ([`DropReason`], [`SkipReason`]) and counted in [`RxStats`], never a panic.
//!
//! The connection model both ends share, [`rvs_core::sync::SyncConn`], lives in rvs-core.

pub mod decode;
pub mod encode;
pub mod outbox;
pub mod resync;
pub mod rx_stats;
pub mod sink;
pub mod wire;

pub use decode::{parse, DropReason, Message, RecordError, Records, SkipReason};
pub use encode::{EncodeError, Encoder, Version};
pub use outbox::{Outbox, TxStats};
pub use rvs_core::sync::{SeqAdjust, SeqData, SyncConn, SyncV4};
pub use rx_stats::RxStats;
pub use sink::{Datagram, MasterSink};
