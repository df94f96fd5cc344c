//! The packet data plane inside rvsd; see [`worker`] (split into modules next).

mod worker;

pub use worker::*;
