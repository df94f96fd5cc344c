//! Published snapshots: how the control side hands a data plane what it needs.
//!
//! The control plane changes rarely (a control request, a health-check verdict, a VRRP
//! transition); the data planes read on every connection or packet batch. So the control
//! side builds a complete new value and *publishes* it; a reader keeps a [`Snapshot`] (an
//! `Arc` of the value and the version it had) and, on its fast path, compares one atomic
//! version counter with its snapshot's. Only after a publication does it take the slot's
//! lock, once, to fetch the new `Arc`. Readers never take the lock of the state the value
//! was computed from.
//!
//! A publication also wakes whoever waits for one: threads ([`Published::wait_newer`], a
//! condition variable) and async tasks ([`Published::wait_until`]), so followers react to a
//! change when it happens instead of polling for it.
//!
//! Users: the proxy's routes ([`crate::shard::Routes`]), the packet plane's view of the
//! table and the generation it applied ([`crate::packet_plane`]).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::LocalKey;
use std::time::Duration;

use crate::lock::lock;

/// A value the control side replaces as a whole and data planes read without its lock.
#[derive(Debug)]
pub struct Published<T> {
    /// Unique per `Published` for the process lifetime: a per-thread cache
    /// ([`Published::with_cached`]) is never taken for another one's.
    id: u64,
    /// Bumped by every publication, under `slot`'s lock, so a version read under that lock
    /// always belongs to the value beside it.
    version: AtomicU64,
    slot: Mutex<Arc<T>>,
    /// Signalled (with `slot`'s mutex) on every publication, for waiting threads.
    changed: Condvar,
    /// Notified on every publication, for waiting async tasks.
    notify: tokio::sync::Notify,
    /// Rung on every publication, for a follower that waits on more than this value.
    bell: Option<Arc<Doorbell>>,
}

/// A wake-up for one thread that follows several sources (published values, work queued by
/// others): each source rings it, the follower waits on it.
#[derive(Debug, Default)]
pub struct Doorbell {
    rung: Mutex<bool>,
    cv: Condvar,
}

impl Doorbell {
    /// Wakes the follower (or makes its next wait return at once).
    pub fn ring(&self) {
        *lock(&self.rung) = true;
        self.cv.notify_all();
    }

    /// Waits until rung or `timeout` passes; returns whether it was rung, and resets it.
    pub fn wait(&self, timeout: Duration) -> bool {
        let rung = lock(&self.rung);
        let (mut rung, _) = self
            .cv
            .wait_timeout_while(rung, timeout, |r| !*r)
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *rung, false)
    }
}

/// A reader's copy of a published value and the version it had.
#[derive(Debug)]
pub struct Snapshot<T> {
    version: u64,
    value: Arc<T>,
}

impl<T> Clone for Snapshot<T> {
    fn clone(&self) -> Self {
        Snapshot {
            version: self.version,
            value: self.value.clone(),
        }
    }
}

impl<T> Snapshot<T> {
    /// The version of the value (0 for the initial one, then one more per publication).
    pub fn version(&self) -> u64 {
        self.version
    }
}

impl<T> std::ops::Deref for Snapshot<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// A per-thread cache of a [`Published`] value: (identity of the `Published`, its snapshot).
pub type ThreadCache<T> = RefCell<Option<(u64, Snapshot<T>)>>;

impl<T: Default> Default for Published<T> {
    fn default() -> Self {
        Published::new(T::default())
    }
}

impl<T> Published<T> {
    /// A published value at version 0.
    pub fn new(value: T) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Published {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            version: AtomicU64::new(0),
            slot: Mutex::new(Arc::new(value)),
            changed: Condvar::new(),
            notify: tokio::sync::Notify::new(),
            bell: None,
        }
    }

    /// The same, ringing `bell` on every publication.
    pub fn ringing(mut self, bell: Arc<Doorbell>) -> Self {
        self.bell = Some(bell);
        self
    }

    /// Replaces the value, wakes every waiter, and returns the new version.
    pub fn publish(&self, value: T) -> u64 {
        let value = Arc::new(value);
        let v = {
            let mut slot = lock(&self.slot);
            // Dropped after the lock: a reader's clone of the old value may be the last.
            let _old = std::mem::replace(&mut *slot, value);
            self.version.fetch_add(1, Ordering::AcqRel) + 1
        };
        self.changed.notify_all();
        self.notify.notify_waiters();
        if let Some(b) = &self.bell {
            b.ring();
        }
        v
    }

    /// The current version: one atomic load.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The current value and its version.
    pub fn load(&self) -> Snapshot<T> {
        let slot = lock(&self.slot);
        Snapshot {
            version: self.version.load(Ordering::Acquire),
            value: slot.clone(),
        }
    }

    /// Brings `snap` up to date; returns true when it changed. The fast path (nothing
    /// published since) is one atomic load.
    pub fn refresh(&self, snap: &mut Snapshot<T>) -> bool {
        if self.version() == snap.version {
            return false;
        }
        *snap = self.load();
        true
    }

    /// Runs `f` over the current value through a per-thread snapshot kept in `cache`, for
    /// readers that are shared by reference across threads and cannot own a [`Snapshot`].
    pub fn with_cached<R>(
        &self,
        cache: &'static LocalKey<ThreadCache<T>>,
        f: impl FnOnce(&T) -> R,
    ) -> R {
        cache.with(|c| {
            let mut c = c.borrow_mut();
            match &mut *c {
                Some((id, snap)) if *id == self.id => {
                    self.refresh(snap);
                }
                other => *other = Some((self.id, self.load())),
            }
            match &*c {
                Some((_, snap)) => f(snap),
                None => f(&self.load()),
            }
        })
    }

    /// Blocks until a version other than `seen` is published, or `timeout` passes; returns
    /// the version then current.
    pub fn wait_newer(&self, seen: u64, timeout: Duration) -> u64 {
        let slot = lock(&self.slot);
        let (_slot, _) = self
            .changed
            .wait_timeout_while(slot, timeout, |_| {
                self.version.load(Ordering::Acquire) == seen
            })
            .unwrap_or_else(PoisonError::into_inner);
        self.version()
    }

    /// Waits (async) until `done` holds for the published value, at most `timeout`;
    /// returns whether it holds.
    pub async fn wait_until(&self, done: impl Fn(&T) -> bool, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the value is read: a publication in between still wakes us.
            notified.as_mut().enable();
            if done(&self.load()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return done(&self.load());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_follow_publications() {
        let p = Published::new(1u32);
        let mut s = p.load();
        assert_eq!((*s, s.version()), (1, 0));
        assert!(!p.refresh(&mut s), "nothing was published");
        assert_eq!(p.publish(2), 1);
        assert!(p.refresh(&mut s));
        assert_eq!((*s, s.version()), (2, 1));
        assert!(!p.refresh(&mut s));
    }

    thread_local! {
        static CACHE: ThreadCache<u32> = const { RefCell::new(None) };
    }

    #[test]
    fn thread_cache_follows_publications_and_identity() {
        let a = Published::new(1u32);
        let b = Published::new(10u32);
        assert_eq!(a.with_cached(&CACHE, |v| *v), 1);
        a.publish(2);
        assert_eq!(a.with_cached(&CACHE, |v| *v), 2, "a stale copy was used");
        // Another `Published` on the same thread never sees the first one's copy.
        assert_eq!(b.with_cached(&CACHE, |v| *v), 10);
        assert_eq!(a.with_cached(&CACHE, |v| *v), 2);
    }

    #[test]
    fn waiting_threads_wake_on_publication() {
        let p = Arc::new(Published::new(0u32));
        let q = p.clone();
        let t = std::thread::spawn(move || q.wait_newer(0, Duration::from_secs(20)));
        std::thread::sleep(Duration::from_millis(20));
        p.publish(5);
        assert_eq!(t.join().unwrap(), 1);
        // Nothing new: the wait ends at its timeout with the same version.
        assert_eq!(p.wait_newer(1, Duration::from_millis(1)), 1);
    }

    #[test]
    fn publications_ring_the_bell() {
        let bell = Arc::new(Doorbell::default());
        let p = Published::new(0u32).ringing(bell.clone());
        assert!(!bell.wait(Duration::from_millis(1)), "not rung yet");
        p.publish(1);
        assert!(bell.wait(Duration::from_secs(20)));
        assert!(
            !bell.wait(Duration::from_millis(1)),
            "a ring wakes one wait"
        );
        let b = bell.clone();
        let t = std::thread::spawn(move || b.wait(Duration::from_secs(20)));
        std::thread::sleep(Duration::from_millis(20));
        bell.ring();
        assert!(t.join().unwrap());
    }

    #[test]
    fn async_waiters_wake_on_publication() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let p = Arc::new(Published::new(0u64));
        let q = p.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            q.publish(3);
        });
        let started = std::time::Instant::now();
        let ok = rt.block_on(p.wait_until(|g| *g >= 3, Duration::from_secs(20)));
        t.join().unwrap();
        assert!(ok);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "woken by the publication, not the timeout"
        );
        let ok = rt.block_on(p.wait_until(|g| *g >= 4, Duration::from_millis(5)));
        assert!(!ok, "never published: the wait times out");
    }
}
