//! `BPF_PROG_TEST_RUN`: runs a loaded program once on a packet the caller supplies and returns
//! its verdict and the packet as the program left it, without any interface — how the golden
//! fixtures are checked against the XDP program (the way Katran tests its program).
//!
//! aya 0.14 keeps its own wrapper private, so this is the raw `bpf(2)` call.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

/// `BPF_PROG_TEST_RUN`'s attribute block (`union bpf_attr`, the `test` member).
#[repr(C)]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// `struct xdp_md` as the test run takes it: the packet's extent and the ingress interface.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;
/// `BPF_F_TEST_XDP_LIVE_FRAMES`: frames the program returns `XDP_TX`/`XDP_REDIRECT` for are
/// really sent.
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// Result of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The program's return value (for XDP: `XDP_PASS` = 2, `XDP_TX` = 3, `XDP_REDIRECT` = 4...).
    pub retval: u32,
    /// The packet after the program (grown or shrunk by `bpf_xdp_adjust_head/tail`).
    pub data: Vec<u8>,
    /// The kernel's measure of the run, in nanoseconds (its clock around the program, not
    /// the system call): what `benches/xdp_program.rs` adds up.
    pub duration_ns: u32,
}

/// XDP verdicts.
pub mod verdict {
    /// `XDP_ABORTED`.
    pub const ABORTED: u32 = 0;
    /// `XDP_DROP`.
    pub const DROP: u32 = 1;
    /// `XDP_PASS`.
    pub const PASS: u32 = 2;
    /// `XDP_TX`.
    pub const TX: u32 = 3;
    /// `XDP_REDIRECT`.
    pub const REDIRECT: u32 = 4;
}

/// Runs the XDP program `prog` once on `frame` as if received on `ingress_ifindex` (an
/// interface of the caller's network namespace; 0 for none).
pub fn xdp(prog: BorrowedFd<'_>, frame: &[u8], ingress_ifindex: u32) -> io::Result<Run> {
    // Room for encapsulation headers pushed in front of the frame.
    let mut out = vec![0u8; frame.len() + 256];
    let ctx = XdpMd {
        // The packet is all data: no metadata before it.
        data_end: frame.len() as u32,
        ingress_ifindex,
        ..XdpMd::default()
    };
    let mut attr = TestAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_size_out: out.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: 1,
        ctx_size_in: std::mem::size_of::<XdpMd>() as u32,
        ctx_in: &ctx as *const XdpMd as u64,
        ..TestAttr::default()
    };
    // The kernel reads `data_size_in` bytes from `frame` and at most `ctx_size_in` bytes from
    // `ctx`, and writes at most `data_size_out` bytes into `out`: all three live until the
    // call returns, and `out` is not aliased.
    test_run(&mut attr)?;
    out.truncate(attr.data_size_out as usize);
    Ok(Run {
        retval: attr.retval,
        data: out,
        duration_ns: attr.duration,
    })
}

/// Runs the XDP program `prog` `repeat` times in live-frames mode: each repetition gets a fresh
/// copy of `frame` as if received on `ingress_ifindex`, and a frame the program returns
/// `XDP_TX` for leaves through that interface's `ndo_xdp_xmit` (`XDP_REDIRECT`: its target).
/// The kernel batches the transmissions by `batch` frames (1..=256; 0: its default of 64).
/// What is sent is not reported here: the program counts what it produced, the interface what
/// it could transmit.
pub fn xdp_live(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    ingress_ifindex: u32,
    repeat: u32,
    batch: u32,
) -> io::Result<()> {
    let ctx = XdpMd {
        data_end: frame.len() as u32,
        ingress_ifindex,
        ..XdpMd::default()
    };
    let mut attr = TestAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat,
        ctx_size_in: std::mem::size_of::<XdpMd>() as u32,
        ctx_in: &ctx as *const XdpMd as u64,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size: batch,
        ..TestAttr::default()
    };
    // In live-frames mode the kernel only reads: `data_size_in` bytes from `frame` and
    // `ctx_size_in` bytes from `ctx`, both alive until the call returns; no output buffer.
    test_run(&mut attr)
}

/// Runs like [`xdp_live`] until `deadline`: one call with as many repetitions as the kernel
/// takes (`u32::MAX`), ended by a signal to this thread at the deadline. Why one call: each
/// live-frames call ends with an RCU grace period (the kernel tears its page pool down), 24-40
/// ms on the VM this was measured on, whatever the call's size — many short calls would send
/// in bursts with long silences between them. The kernel checks for a pending signal after
/// each batch and then returns `EINTR`, which is the normal end here.
pub fn xdp_live_until(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    ingress_ifindex: u32,
    batch: u32,
    deadline: Instant,
) -> io::Result<()> {
    install_wake_handler()?;
    // SAFETY: pthread_self has no preconditions; it names the calling thread.
    let me = unsafe { libc::pthread_self() };
    let done = Arc::new(AtomicBool::new(false));
    let stopper = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            // Until the deadline in short sleeps (the caller may finish early on an error),
            // then a signal every few milliseconds until the caller says it is out of the
            // call (a signal that came just before it entered the kernel did not stop it);
            // bounded either way.
            let step = Duration::from_millis(5);
            for _ in 0..STOPPER_STEPS {
                if done.load(Ordering::Acquire) {
                    return;
                }
                let now = Instant::now();
                if now < deadline {
                    std::thread::sleep((deadline - now).min(step));
                    continue;
                }
                // SAFETY: `me` is the thread running `xdp_live_until`, which joins this thread
                // before it returns, so the id names a live thread; SIGALRM has a handler
                // (install_wake_handler), so it interrupts the call and kills nothing.
                unsafe { libc::pthread_kill(me, libc::SIGALRM) };
                std::thread::sleep(step);
            }
        })
    };
    let result = loop {
        if Instant::now() >= deadline {
            break Ok(());
        }
        match xdp_live(prog, frame, ingress_ifindex, u32::MAX, batch) {
            // All repetitions done before the deadline (a slow rate): go on.
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    done.store(true, Ordering::Release);
    let _ = stopper.join();
    result
}

/// How many 5 ms steps the stopper thread takes at most: a run of up to a day, then 10 s of
/// signals.
const STOPPER_STEPS: u32 = 86_400 * 200 + 2_000;

/// SIGALRM gets a handler that does nothing, without `SA_RESTART`: its only effect is to
/// interrupt the live-frames call ([`xdp_live_until`]).
fn install_wake_handler() -> io::Result<()> {
    extern "C" fn wake(_: libc::c_int) {}
    static INSTALL: Once = Once::new();
    let mut rc = 0;
    INSTALL.call_once(|| {
        // SAFETY: a zeroed `sigaction` is a valid value (empty mask, no flags) which is then
        // filled in; `wake` is async-signal-safe (it does nothing); the old action is not asked for.
        rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = wake as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut())
        };
    });
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The `bpf(BPF_PROG_TEST_RUN)` call itself, for the two callers above: each builds `attr`
/// from buffers it keeps alive for the call, and says which the kernel reads and writes.
fn test_run(attr: &mut TestAttr) -> io::Result<()> {
    // SAFETY: `attr` is a valid, fully initialised BPF_PROG_TEST_RUN attribute block, borrowed
    // mutably for the whole call (the kernel writes `retval`, `duration` and
    // `data_size_out` back into it); every pointer in it is to a buffer of the stated size
    // that the caller keeps alive and unaliased until this returns (see the callers).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            attr as *mut TestAttr,
            std::mem::size_of::<TestAttr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
