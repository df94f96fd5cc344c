//! The rvs BPF programs and their loader.
//!
//! This crate is the one home of every BPF program rvs runs in the kernel. Each program is a C
//! file `bpf/NAME.c`, compiled by `build.rs` with clang (`-target bpf -O2 -g`) into an object
//! that is embedded in the binary; nothing prebuilt lives in the repository. A module per
//! program loads it with aya and wraps its maps: [`xdp`] (the packet plane's fast path),
//! [`sockmap`] (kernel splicing of the socket proxy's TCP flows), with [`sock_watch`] (the
//! epoll set that watches spliced sockets outside tokio), [`trafficgen`] (the benches' packet
//! generator).
//!
//! A machine without clang still builds this crate: no object is embedded and [`object`]
//! answers [`Unavailable`] with the reason ("built without clang"), which the daemon reports
//! when it would have used the program.
//!
//! `unsafe` is confined to [`test_run`] (the raw `bpf(2)` call aya does not expose), the map
//! value layouts, the socket
//! options of [`sockmap`] and the epoll calls of [`sock_watch`], each block with its
//! `// SAFETY:` reasoning.

pub mod sink;
pub mod sock_watch;
pub mod sockmap;
pub mod syn_answer;
pub mod test_run;
pub mod trafficgen;
pub mod xdp;

mod objects {
    include!(concat!(env!("OUT_DIR"), "/objects.rs"));
}

/// A program's object is not in this build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("BPF program {program} unavailable: {reason}")]
pub struct Unavailable {
    /// The program asked for (`bpf/NAME.c`).
    pub program: String,
    /// Why: "built without clang", or "no such program in this build".
    pub reason: &'static str,
}

/// The compiled object of `bpf/NAME.c` (an ELF file aya loads).
pub fn object(name: &str) -> Result<&'static [u8], Unavailable> {
    if let Some(reason) = objects::UNAVAILABLE {
        return Err(Unavailable {
            program: name.to_string(),
            reason,
        });
    }
    objects::OBJECTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
        .ok_or_else(|| Unavailable {
            program: name.to_string(),
            reason: "no such program in this build",
        })
}

/// The names of the programs in this build.
pub fn programs() -> impl Iterator<Item = &'static str> {
    objects::OBJECTS.iter().map(|(n, _)| *n)
}
