//! Kernel splicing of the socket proxy's TCP flows (`bpf/sockmap.c`): loading the stream
//! verdict program, and putting a flow's two sockets into its socket hash.
//!
//! Once spliced, every byte one socket receives is sent from the other by the kernel (the
//! program redirects the socket's skbs to its peer's transmit path); user space no longer reads
//! or writes the flow's data. It still sees the end of each direction (the socket reads EOF or
//! an error), so the proxy keeps forwarding half-closes and resets itself, and it reads what
//! moved from [`Splicer::moved`]. A closed socket leaves the hash by itself (the kernel removes
//! it); [`Splicer::unsplice`] drops the per-direction entries.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use aya::maps::{HashMap, MapData, MapError, SockHash};
use aya::programs::{ProgramError, SkSkb};
use aya::Ebpf;

/// The program's name in `bpf/sockmap.c`.
const PROGRAM: &str = "rvs_splice";

/// Why splicing is not available or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object is not in this build.
    #[error("kernel splicing unavailable: {0}")]
    Unavailable(&'static str),
    /// The kernel refused to load the object (no BPF, no permission, verifier).
    #[error("kernel splicing unavailable: loading the program: {0}")]
    Load(#[from] aya::EbpfError),
    /// Loading or attaching the program failed.
    #[error("kernel splicing unavailable: {0}")]
    Program(#[from] ProgramError),
    /// A map operation failed (e.g. the hash is full, or the socket is not established).
    #[error("splice map: {0}")]
    Map(#[from] MapError),
    /// A socket option could not be read or set.
    #[error("splice socket: {0}")]
    Io(#[from] io::Error),
    /// The object does not have what this module expects (out of step with `bpf/sockmap.c`).
    #[error("splice object: {0}")]
    Object(String),
}

/// One direction's entry (the C `struct rvs_splice_dir`), keyed by the receiving socket's
/// cookie.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Dir {
    peer: u64,
    bytes: u64,
    skbs: u64,
    last_ns: u64,
    held: u64,
}

const _: () = assert!(std::mem::size_of::<Dir>() == 40);

// SAFETY: #[repr(C)] struct of five u64 (no padding, size asserted above), so every bit pattern
// is a valid value and it can be copied to and from the kernel as plain bytes.
unsafe impl aya::Pod for Dir {}

/// A spliced pair: the two sockets' cookies (their keys in the maps), and how much each had
/// taken for sending when it was spliced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// Cookie of the first socket given to [`Splicer::splice`].
    pub a: u64,
    /// Cookie of the second.
    pub b: u64,
    written_a: u64,
    written_b: u64,
}

/// What the kernel moved in one direction since the pair was spliced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Payload bytes.
    pub bytes: u64,
    /// skbs (each one or more segments as received).
    pub skbs: u64,
    /// `CLOCK_MONOTONIC` nanoseconds of the last move; 0 when nothing moved.
    pub last_ns: u64,
}

/// The loaded program and its two maps. One per proxy worker (its methods take `&mut self`).
pub struct Splicer {
    // Keeps the program loaded and attached to `socks`.
    _ebpf: Ebpf,
    socks: SockHash<MapData, u64>,
    dirs: HashMap<MapData, u64, Dir>,
}

impl std::fmt::Debug for Splicer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Splicer")
    }
}

impl Splicer {
    /// Loads `bpf/sockmap.c` and attaches its verdict program to its socket hash. Fails where the
    /// kernel refuses (no BPF, no CAP_BPF/CAP_NET_ADMIN) or the build has no BPF objects.
    pub fn load() -> Result<Splicer, Error> {
        let object = crate::object("sockmap").map_err(|u| Error::Unavailable(u.reason))?;
        let mut ebpf = Ebpf::load(object)?;
        let socks: SockHash<MapData, u64> = SockHash::try_from(
            ebpf.take_map("rvs_socks")
                .ok_or_else(|| Error::Object("no map rvs_socks".into()))?,
        )?;
        let dirs = HashMap::try_from(
            ebpf.take_map("rvs_dirs")
                .ok_or_else(|| Error::Object("no map rvs_dirs".into()))?,
        )?;
        let prog: &mut SkSkb = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| Error::Object(format!("no program {PROGRAM}")))?
            .try_into()?;
        prog.load()?;
        prog.attach(socks.fd())?;
        Ok(Splicer {
            _ebpf: ebpf,
            socks,
            dirs,
        })
    }

    /// Splices two connected TCP sockets: from now on what `a` receives is sent from `b` and
    /// the other way round, including what is already waiting in their receive queues. Fails
    /// (leaving both sockets as they were) when the kernel refuses either socket.
    ///
    /// The sockets join the hash one after the other: data that reaches `a` in between has no
    /// peer to go to, and the program *holds* `a` (its data stays readable by user space, for
    /// the rest of the flow, so that nothing overtakes it). The caller must therefore keep
    /// reading both sockets and forward what it reads, as `rvs-proxy` does.
    pub fn splice(&mut self, a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> Result<Pair, Error> {
        self.splice_pausing(a, b, || {})
    }

    /// [`Splicer::splice`], running `between` after `a` joined the hash and before `b` does:
    /// lets a test put data into that window.
    #[doc(hidden)]
    pub fn splice_pausing(
        &mut self,
        a: BorrowedFd<'_>,
        b: BorrowedFd<'_>,
        between: impl FnOnce(),
    ) -> Result<Pair, Error> {
        let pair = Pair {
            a: cookie(a)?,
            b: cookie(b)?,
            written_a: written(a)?,
            written_b: written(b)?,
        };
        let entry = |peer| Dir {
            peer,
            ..Dir::default()
        };
        // Directions first: a socket is redirected as soon as it is in the hash.
        self.dirs.insert(pair.a, entry(pair.b), 0)?;
        if let Err(e) = self.dirs.insert(pair.b, entry(pair.a), 0) {
            let _ = self.dirs.remove(&pair.a);
            return Err(e.into());
        }
        if let Err(e) = self.socks.insert(pair.a, a, 0) {
            self.unsplice(&pair);
            return Err(e.into());
        }
        between();
        if let Err(e) = self.socks.insert(pair.b, b, 0) {
            let _ = self.socks.remove(&pair.a);
            self.unsplice(&pair);
            return Err(e.into());
        }
        // Data that arrived before the sockets joined the hash sits in their receive queues,
        // and the program only runs when more arrives. Setting SO_RCVLOWAT makes TCP check
        // whether the socket is readable and, if so, call its data-ready hook right away,
        // which is now the program's: the queued bytes are redirected in order, before any
        // later ones.
        kick(a)?;
        kick(b)?;
        Ok(pair)
    }

    /// Whether the program holds the socket `cookie` of a pair (its data goes to user space,
    /// see [`Splicer::splice`]).
    pub fn held(&self, cookie: u64) -> Result<bool, Error> {
        match self.dirs.get(&cookie, 0) {
            Ok(d) => Ok(d.held != 0),
            Err(MapError::KeyNotFound) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Bytes moved `a → b` and `b → a`.
    pub fn moved(&self, pair: &Pair) -> Result<(Moved, Moved), Error> {
        let get = |k: u64| -> Result<Moved, Error> {
            match self.dirs.get(&k, 0) {
                Ok(d) => Ok(Moved {
                    bytes: d.bytes,
                    skbs: d.skbs,
                    last_ns: d.last_ns,
                }),
                Err(MapError::KeyNotFound) => Ok(Moved::default()),
                Err(e) => Err(e.into()),
            }
        };
        Ok((get(pair.a)?, get(pair.b)?))
    }

    /// Bytes redirected toward one socket of the pair that it has not taken yet: toward `b`
    /// (the second socket given to [`Splicer::splice`]) when `toward_b`, else toward `a`; `to`
    /// is that socket. The kernel hands redirected data to the receiving socket's transmit path
    /// from a work queue, so it can lag behind the program (and behind the sender's FIN, which
    /// user space sees as EOF at once): a half-close or close of `to` must wait until this is
    /// 0, or the data still queued for it would be lost. One map lookup, one getsockopt, one
    /// ioctl.
    pub fn unsent(&self, pair: &Pair, to: BorrowedFd<'_>, toward_b: bool) -> Result<u64, Error> {
        let (from, base) = if toward_b {
            (pair.a, pair.written_b)
        } else {
            (pair.b, pair.written_a)
        };
        let redirected = match self.dirs.get(&from, 0) {
            Ok(d) => d.bytes,
            Err(MapError::KeyNotFound) => 0,
            Err(e) => return Err(e.into()),
        };
        Ok(redirected.saturating_sub(written(to)?.wrapping_sub(base)))
    }

    /// Forgets the pair's directions (and its sockets, if still open). Closing a spliced socket
    /// removes it from the socket hash by itself; the direction entries stay until this.
    pub fn unsplice(&mut self, pair: &Pair) {
        let _ = self.dirs.remove(&pair.a);
        let _ = self.dirs.remove(&pair.b);
    }

    /// Spliced sockets still in the hash (for tests and diagnostics).
    pub fn sockets(&self) -> usize {
        self.socks.keys().filter(Result::is_ok).count()
    }

    /// Direction entries still in the map (for tests and diagnostics).
    pub fn directions(&self) -> usize {
        self.dirs.keys().filter(Result::is_ok).count()
    }
}

/// The socket's cookie: a kernel-wide 64-bit id that the program reads from each skb
/// (`bpf_get_socket_cookie`).
fn cookie(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut value: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `fd` is a valid open descriptor for the call (borrowed); `value` and `len` are
    // live locals of the size passed, which the kernel writes at most.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&mut value as *mut u64).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// Bytes the socket has taken for sending since it was opened, plus one for its SYN: the
/// bytes the peer acknowledged (`TCP_INFO` `tcpi_bytes_acked`, SYN included) plus those still
/// in the send queue (`SIOCOUTQ`). Only differences of it are meaningful (before any FIN).
fn written(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: tcp_info is a plain C struct of integers: all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `fd` is a valid open descriptor for the call; `info` and `len` are live locals,
    // and the kernel writes at most `len` bytes into `info`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let needed = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_acked) + 8;
    if (len as usize) < needed {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "TCP_INFO without tcpi_bytes_acked (kernel older than 4.1)",
        ));
    }
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one c_int into the live local `queued`; `fd` is valid.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info.tcpi_bytes_acked + queued.max(0) as u64)
}

/// `SO_RCVLOWAT` = 1 (the default value): runs the socket's data-ready hook if data is queued.
fn kick(fd: BorrowedFd<'_>) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: `fd` is a valid open descriptor for the call; `one` is a live c_int of the size
    // passed, only read by the kernel.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
