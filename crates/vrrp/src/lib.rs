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
//! ```
//! use std::time::Duration;
//! use rvs_vrrp::{Action, Instance, InstanceConfig, State, Version};
//!
//! let cfg = InstanceConfig::new(
//!     "VI_1",
//!     51,
//!     Version::V2,
//!     "10.0.0.2".parse().unwrap(),
//!     vec!["10.0.0.100".parse().unwrap()],
//! );
//! let mut vi = Instance::new(cfg).unwrap();
//! vi.start(Duration::ZERO);
//! assert_eq!(vi.state(), State::Backup);
//! assert!(matches!(vi.poll_action(), Some(Action::Notify(_)))); // notify_backup
//! // Nobody advertises: after Master_Down_Interval (3 × 1 s + 156/256 s) we take over.
//! let deadline = vi.poll_timeout().unwrap();
//! assert_eq!(deadline, Duration::from_micros(3_609_375));
//! vi.handle_timeout(deadline);
//! assert_eq!(vi.state(), State::Master);
//! assert_eq!(vi.poll_action(), Some(Action::SendAdvert { priority: 100 }));
//! let packets = vi.encode_adverts(100).unwrap(); // IPv4 header + VRRP, to 224.0.0.18
//! assert_eq!(packets[0].packet.len(), 20 + 8 + 4 + 8);
//! assert_eq!(vi.poll_action(), Some(Action::AddVips));
//! ```
//!
//! The facts this follows are in docs/internals/vrrp.md; quirks of keepalived that are copied on
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
