//! The one way rvsd takes a mutex.
//!
//! A thread that panics while holding one of rvsd's locks poisons it; every structure they
//! guard (the control state, shards, published snapshots, learned neighbours) keeps its
//! invariants between calls, so the lock is recovered rather than the daemon brought down
//! by every later user.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Lock `m`, recovering it when poisoned (see the module docs).
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
