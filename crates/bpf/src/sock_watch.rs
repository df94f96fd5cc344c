//! Spliced sockets out of tokio's way: one epoll set per worker that watches the sockets of
//! kernel-spliced flows for the only events user space still acts on — the peer's FIN
//! (`EPOLLRDHUP`), a reset or error (`EPOLLERR`/`EPOLLHUP`, always reported).
//!
//! Why not tokio's reactor: tokio registers every socket for `EPOLLIN|EPOLLOUT|EPOLLRDHUP`
//! (edge-triggered) and that cannot be narrowed. A spliced socket gets a readable wake-up each
//! time the sockmap program has redirected what it received (the kernel calls the socket's own
//! data-ready hook after the verdict) and writable edges as the redirected data leaves: about 1.5
//! wake-ups of the worker per request, each only to find nothing to do (measured,
//! docs/internals/proxy-plane.md "Why splicing is slower"). Registered for `EPOLLRDHUP` alone,
//! those wake-ups are filtered out inside the kernel (epoll ignores a wake-up whose event key is
//! not in the mask), so a spliced flow costs the worker nothing until it ends.
//!
//! The set's own descriptor is registered in tokio (an epoll fd is readable while it has
//! events): one task per worker ([`SockWatch::run`]) takes the events in batches and wakes the
//! flows they belong to. It lives in this crate, next to the sockmap it serves, because
//! registering a descriptor with tokio and calling epoll are `unsafe`.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::{Poll, Waker};

use tokio::io::unix::AsyncFd;

/// Events taken from the set per `epoll_wait`.
const BATCH: usize = 64;

/// What a watched socket reported: its peer's FIN, or an error/hang-up.
pub const ENDED: u32 = (libc::EPOLLRDHUP | libc::EPOLLERR | libc::EPOLLHUP) as u32;

/// The epoll descriptor (owned), as tokio needs it (`AsRawFd`).
struct Set(OwnedFd);

impl AsRawFd for Set {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Set {
    fn new() -> io::Result<Set> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new descriptor
        // that nothing else owns.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        Ok(Set(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ctl(&self, op: libc::c_int, fd: impl AsFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: both descriptors are open for the call (owned by `self`, borrowed `fd`); `ev`
        // is a live local the kernel only reads (and ignores for EPOLL_CTL_DEL).
        let r = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd.as_fd().as_raw_fd(), &mut ev) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Ready events, without blocking.
    fn take(&self, events: &mut [libc::epoll_event]) -> io::Result<usize> {
        // SAFETY: `events` is a live, writable buffer of `events.len()` entries, the most the
        // kernel writes; the descriptor is owned by `self`.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// One flow's registration: the events seen on its two sockets since it last looked, and the
/// task to wake.
#[derive(Default)]
struct Slot {
    /// Bumped when the slot is freed, so an event of its previous flow is not taken for this one.
    generation: u32,
    events: [u32; 2],
    waker: Option<Waker>,
}

/// The epoll set of one worker's spliced sockets (see the module documentation).
pub struct SockWatch {
    set: AsyncFd<Set>,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
    /// Sockets in the set (for tests and diagnostics).
    watched: Cell<usize>,
}

/// A flow's two sockets in the set. Dropping it forgets the flow's events; the sockets leave
/// the set when they are closed (the kernel drops a closed file's entries), which the flow does
/// right after, or with [`Watched::remove`] while they stay open.
pub struct Watched<'a> {
    watch: &'a SockWatch,
    index: u32,
}

impl SockWatch {
    /// A new, empty set registered with the current tokio runtime (call from a worker thread).
    pub fn new() -> io::Result<Rc<SockWatch>> {
        // SAFETY: the AsyncFd owns the Set, which owns the descriptor: it stays open and the
        // same for the AsyncFd's whole life, and `as_raw_fd` always returns it.
        let set =
            unsafe { AsyncFd::register_with_interest(Set::new()?, tokio::io::Interest::READABLE) }?;
        Ok(Rc::new(SockWatch {
            set,
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            watched: Cell::new(0),
        }))
    }

    /// Sockets currently in the set.
    pub fn watched(&self) -> usize {
        self.watched.get()
    }

    /// Puts a flow's two sockets (side 0 and side 1) into the set, edge-triggered, for the
    /// peer's FIN and errors only. A socket already ended is reported at once (epoll checks the
    /// current state when a socket is added).
    pub fn watch<'a>(&'a self, a: impl AsFd, b: impl AsFd) -> io::Result<Watched<'a>> {
        let index = match self.free.borrow_mut().pop() {
            Some(i) => i,
            None => {
                let mut slots = self.slots.borrow_mut();
                slots.push(Slot::default());
                (slots.len() - 1) as u32
            }
        };
        let generation = self.slots.borrow()[index as usize].generation;
        let flags = (libc::EPOLLRDHUP | libc::EPOLLET) as u32;
        let token = |side: u64| (u64::from(generation) << 32) | (u64::from(index) << 1) | side;
        let set = self.set.get_ref();
        let add = libc::EPOLL_CTL_ADD;
        let added = set.ctl(add, a.as_fd(), flags, token(0));
        if let Err(e) = added.and_then(|()| set.ctl(add, b.as_fd(), flags, token(1))) {
            let _ = set.ctl(libc::EPOLL_CTL_DEL, a.as_fd(), 0, 0);
            self.free.borrow_mut().push(index);
            return Err(e);
        }
        self.watched.set(self.watched.get() + 2);
        Ok(Watched { watch: self, index })
    }

    /// Takes the flows' events in batches as long as the worker runs: run as one task per
    /// worker. Returns only if the set itself fails (then the flows wait for their idle limits
    /// or the drain, as a lost wake-up would leave them: the caller says so in the log).
    pub async fn run(self: Rc<Self>) -> io::Error {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; BATCH];
        loop {
            let mut ready = match self.set.readable().await {
                Ok(r) => r,
                Err(e) => return e,
            };
            let n = match self.set.get_ref().take(&mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return e,
            };
            {
                let mut slots = self.slots.borrow_mut();
                for ev in &events[..n] {
                    let (token, bits) = (ev.u64, ev.events);
                    let (generation, index, side) = (
                        (token >> 32) as u32,
                        ((token as u32) >> 1) as usize,
                        token & 1,
                    );
                    let Some(slot) = slots.get_mut(index) else {
                        continue;
                    };
                    if slot.generation != generation {
                        continue;
                    }
                    slot.events[side as usize] |= bits;
                    if let Some(w) = slot.waker.take() {
                        w.wake();
                    }
                }
            }
            // A short batch emptied the set's ready list: wait for the next edge.
            if n < BATCH {
                ready.clear_ready();
            }
        }
    }
}

impl Watched<'_> {
    /// Waits until either socket reported something, and returns (and forgets) what each did.
    pub async fn next(&self) -> [u32; 2] {
        poll_fn(|cx| {
            let mut slots = self.watch.slots.borrow_mut();
            let slot = &mut slots[self.index as usize];
            let ev = std::mem::take(&mut slot.events);
            if ev != [0, 0] {
                return Poll::Ready(ev);
            }
            match &slot.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => slot.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// Takes the flow's sockets (the two given to [`SockWatch::watch`]) out of the set while
    /// they stay open: before they go back to tokio.
    pub fn remove(self, a: impl AsFd, b: impl AsFd) {
        let set = self.watch.set.get_ref();
        let _ = set.ctl(libc::EPOLL_CTL_DEL, a, 0, 0);
        let _ = set.ctl(libc::EPOLL_CTL_DEL, b, 0, 0);
    }
}

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        self.watch.watched.set(self.watch.watched.get() - 2);
        let mut slots = self.watch.slots.borrow_mut();
        let slot = &mut slots[self.index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        slot.events = [0, 0];
        slot.waker = None;
        self.watch.free.borrow_mut().push(self.index);
    }
}
