//! Idle keep-alive connections to real servers, per worker, for the HTTP relay of the content
//! persistence engines ([`crate::pe_relay`]).
//!
//! Without it, a client connection whose requests go to different real servers (no cookie yet,
//! round robin) would close its server connection and open a new one for every request: a
//! connect, an accept at the server and a FIN exchange per request. With it, a server
//! connection that finished a response cleanly (complete, framed by a known length,
//! `Connection: close` absent, not upgraded) is parked here when its client connection moves
//! to another server or ends, and the next request routed to that server on any client
//! connection of the worker takes it.
//!
//! Rules that keep reuse safe:
//! * only connections without a PROXY protocol header are parked (that header names one
//!   client for the whole server connection);
//! * a parked connection is keyed by the real server and the local address it was opened from
//!   (full-NAT source), so a request never leaves from another address than its service says;
//! * only a request the relay can send again is given a parked connection (idempotent method,
//!   no body: [`reusable_for`]); if the server closed the connection meanwhile (its keep-alive
//!   timeout racing the reuse), the relay sees the failure before any byte of an answer and
//!   sends the same request on a fresh connection;
//! * bounded: [`MAX_PER_SERVER`] per real server and [`MAX_TOTAL`] per worker, the oldest
//!   closed first; a connection parked longer than [`MAX_IDLE`] is closed (a purge task runs
//!   while the pool is not empty), well under common server keep-alive timeouts (nginx 75 s,
//!   Apache 5 s), so stale connections are rare and harmless.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::api::{Backend, ProxyProtocol};
use crate::worker::Worker;

/// Idle connections kept per real server and worker.
pub(crate) const MAX_PER_SERVER: usize = 256;
/// Idle connections kept per worker over all real servers.
pub(crate) const MAX_TOTAL: usize = 1024;
/// Longest a connection stays parked.
pub(crate) const MAX_IDLE: Duration = Duration::from_secs(3);

/// Which parked connections a backend may use: same real server, same local address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    addr: SocketAddr,
    source: Option<IpAddr>,
}

impl Key {
    /// The key of `b`'s connections, `None` when they cannot be shared (PROXY header).
    pub fn of(b: &Backend) -> Option<Key> {
        (b.proxy_protocol == ProxyProtocol::Off).then_some(Key {
            addr: b.addr,
            source: b.source,
        })
    }
}

/// Whether a request may go over a parked connection: the relay must be able to send it again
/// on a fresh connection if the parked one turns out closed, so the whole request is in hand
/// (no body) and repeating it is harmless (an idempotent method, RFC 9110 §9.2.2).
pub(crate) fn reusable_for(method: &[u8], has_body: bool) -> bool {
    !has_body
        && matches!(
            method,
            b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
        )
}

/// The pool of one worker.
#[derive(Default)]
pub(crate) struct ServerPool {
    idle: RefCell<HashMap<Key, VecDeque<(Instant, TcpStream)>>>,
    total: Cell<usize>,
    /// A purge task is running.
    purging: Cell<bool>,
}

impl ServerPool {
    /// A parked connection to `key`'s server, the most recently parked first.
    pub fn take(&self, key: Key) -> Option<TcpStream> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&key)?;
        let now = Instant::now();
        let mut found = None;
        while let Some((at, s)) = list.pop_back() {
            self.total.set(self.total.get() - 1);
            if now.duration_since(at) < MAX_IDLE {
                found = Some(s);
                break;
            }
        }
        if list.is_empty() {
            idle.remove(&key);
        }
        found
    }

    /// Park an idle connection (its last response complete) for `key`'s server.
    pub fn put(w: &Rc<Worker>, key: Key, sock: TcpStream) {
        let pool = &w.server_pool;
        {
            let mut idle = pool.idle.borrow_mut();
            if pool.total.get() >= MAX_TOTAL {
                // Full: close the oldest of the largest list (cheap enough at this bound, and
                // rare: only when more than MAX_TOTAL connections sit idle at once).
                if let Some(list) = idle.values_mut().max_by_key(|l| l.len()) {
                    list.pop_front();
                    pool.total.set(pool.total.get() - 1);
                }
            }
            let list = idle.entry(key).or_default();
            if list.len() >= MAX_PER_SERVER {
                list.pop_front();
                pool.total.set(pool.total.get() - 1);
            }
            list.push_back((Instant::now(), sock));
            pool.total.set(pool.total.get() + 1);
        }
        if !pool.purging.replace(true) {
            tokio::task::spawn_local(purge(w.clone()));
        }
    }

    /// Close the connections parked longer than [`MAX_IDLE`]; whether any remain.
    fn purge(&self, now: Instant) -> bool {
        let mut idle = self.idle.borrow_mut();
        idle.retain(|_, list| {
            while list
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) >= MAX_IDLE)
            {
                list.pop_front();
                self.total.set(self.total.get() - 1);
            }
            !list.is_empty()
        });
        !idle.is_empty()
    }
}

/// Runs while connections are parked: closes the expired ones every half [`MAX_IDLE`].
async fn purge(w: Rc<Worker>) {
    loop {
        tokio::time::sleep(MAX_IDLE / 2).await;
        if !w.server_pool.purge(Instant::now()) {
            w.server_pool.purging.set(false);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_repeatable_requests_take_parked_connections() {
        assert!(reusable_for(b"GET", false));
        assert!(reusable_for(b"HEAD", false));
        assert!(!reusable_for(b"GET", true));
        assert!(!reusable_for(b"POST", false));
        assert!(!reusable_for(b"PATCH", false));
        assert!(!reusable_for(b"CONNECT", false));
    }

    #[test]
    fn proxy_protocol_connections_are_not_shared() {
        let mut b = Backend::new("127.0.0.1:80".parse().unwrap(), crate::api::FlowHandle(1));
        assert!(Key::of(&b).is_some());
        b.proxy_protocol = ProxyProtocol::V1;
        assert!(Key::of(&b).is_none());
    }
}
