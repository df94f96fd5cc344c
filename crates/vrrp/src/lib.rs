//! `rvs-vrrp`: VRRP v2 (RFC 3768) and v3 (RFC 5798) as keepalived 2.2.7 implements it, sans-IO.
//!
//! * [`wire`] and [`ip`]: packet views, decoding and encoding, checksums, raw-socket IP headers.
//! * [`rx`]: receive validation in keepalived's order, each failure a counted [`Reject`] reason.
//! * [`Instance`]: the INIT/BACKUP/MASTER/FAULT state machine of one `vrrp_instance`. Time is an
//!   argument ([`std::time::Duration`] since an arbitrary epoch chosen by the driver), inputs are
//!   method calls, outputs are [`Action`]s drained with [`Instance::poll_action`] plus the next
//!   deadline from [`Instance::poll_timeout`] — the quinn-proto / smoltcp style. No I/O, no clock.
//! * [`SyncGroup`]: a `vrrp_sync_group` coordinator moving several instances together.
//! * [`notify`]: keepalived's notify-script arguments and FIFO lines; [`script`]: `vrrp_script`
//!   rise/fall counting; [`garp`]: the gratuitous ARP / unsolicited NA frames keepalived sends.
//!
//! The facts this follows are in `spec/keepalived.md` §3; quirks of keepalived that are copied on
//! purpose are named in comments where they are implemented.

#![warn(missing_docs)]

pub mod config;
mod error;
pub mod garp;
pub mod instance;
pub mod ip;
pub mod notify;
pub mod rx;
pub mod script;
pub mod sync;
pub mod wire;

pub use config::{Auth, GarpConfig, InitialState, InstanceConfig, TrackerConfig, UnicastPeer};
pub use error::Error;
pub use instance::{Action, Counters, Instance, State, Transmit};
pub use ip::RxPacket;
pub use notify::{Notify, NotifyState, Subject};
pub use rx::{Reject, RejectKind, RxCounters};
pub use sync::{GroupAction, SyncGroup};
pub use wire::{Advert, ChecksumMode, Family, Packet, Version};
