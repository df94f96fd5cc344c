//! rvsd: the rvs director daemon.
//!
//! It owns the IPVS table (rvs-core), kept in shards — one `Director` per service the socket
//! proxy carries and one for all packet-plane services ([`shard`]) — behind the control state
//! every change goes through ([`state::State`]). It serves rvsadm over the control socket
//! (rvs-control), carries traffic with the socket proxy (rvs-proxy) and the packet plane
//! ([`packet_plane`], `--interface`), exposes Prometheus metrics, loads ipvsadm-save rules files
//! and applies their difference on SIGHUP, and runs keepalived.conf virtual servers with their
//! health checkers ([`keepalived`], `rvsd -f`) and VRRP instances ([`vrrp`]).
//! How the pieces fit: docs/internals/architecture.md.

pub mod announce;
pub mod announce_control;
pub mod announce_status;
pub mod balancer;
pub mod capabilities;
pub mod clock;
pub mod control_server;
pub mod convert;
pub mod cow_map;
pub mod daemon;
pub mod demo;
pub mod discovery;
pub mod exposition;
pub mod fd_limit;
pub mod keepalived;
pub mod learned_neighbours;
pub mod listing;
pub mod lock;
pub mod manual;
pub mod memory;
pub mod metrics;
pub mod nft_marks;
pub mod off_runtime;
pub mod packet_plane;
pub mod pe;
pub mod published;
pub mod rules;
pub mod sd_notify;
pub mod shard;
pub mod state;
pub mod status;
pub mod syn_proxy_check;
pub mod sync;
#[cfg(test)]
mod test_support;
pub mod vrrp;
pub mod web;
