//! rvs-core: the IPVS model as a pure library.
//!
//! Services, destinations, the 14 schedulers, the connection table with its state machines,
//! persistence and statistics, following the kernel's IPVS (docs/internals/). Nothing here does
//! I/O, reads a clock or spawns a thread: time is an argument, so every decision is
//! deterministic and testable. The data planes (packet and proxy) and the daemon ask this crate
//! what to do.

pub mod addr;
pub mod conn;
pub mod defense;
pub mod dest;
pub mod director;
pub mod error;
pub mod estimator;
pub mod hash;
pub mod laddr;
pub mod latency;
pub mod pe_sip;
pub mod sched;
pub mod service;
pub mod stats;
pub mod sync;
pub mod sysctl;
pub mod table;
pub mod time;

pub use addr::{Family, Protocol};
pub use conn::{ConnId, ConnTable, HashSeed};
pub use dest::{Dest, DestConfig, DestId, FwdMethod};
pub use director::{Director, Packet, Verdict};
pub use error::{Error, Result};
pub use sched::{Flow, RandomSource, SchedKind, Scheduler};
pub use service::{Service, ServiceConfig, ServiceFlags, ServiceId, ServiceKey};
pub use table::ServiceTable;
pub use time::{Duration, Time};
