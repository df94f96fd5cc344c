//! The master's sink: what a master daemon installs in every shard's
//! [`rvs_core::sync::SyncTap`]. The packet path, which already holds the shard's lock, encodes
//! each announced record straight into the datagram that will carry it — one [`Outbox`] per
//! `sync_ports` port, so a connection always travels on the same port — and the master thread
//! only collects finished datagrams (a few pointer moves per 40 connections) and sends them
//! outside the lock. No per-connection queue, copy or allocation: a datagram's buffer comes
//! back through [`MasterSink::recycle`] once sent.
//!
//! The kernel's rules hold as in [`Outbox`]: at most `sync_qlen_max` full messages wait per
//! port (beyond, dropped and counted), a partly filled message is collected once it has waited
//! the flush delay (never more than 2 s), and a changed `sync_version` closes the message under
//! construction.

use rvs_core::sync::{SyncConn, SyncParams, SyncSink, SyncV4};
use rvs_core::Time;

use crate::encode::Version;
use crate::outbox::{Outbox, TxStats};

/// One message ready to send.
#[derive(Debug)]
pub struct Datagram {
    /// Index of the sync port (socket) it goes out on.
    pub port: usize,
    /// The message.
    pub bytes: Vec<u8>,
    /// When its oldest record was announced (ms of the clock the packet path passes in): the
    /// start of its sync lag.
    pub oldest_ms: u64,
}

/// Encoders and send queues of one shard, one per sync port.
#[derive(Clone, Debug)]
pub struct MasterSink {
    outs: Vec<Outbox>,
    /// Records dropped with full queues since the sink was installed (never reset, unlike the
    /// counters [`MasterSink::take_stats`] hands out).
    dropped: u64,
}

impl MasterSink {
    /// A sink for `ports` sync ports (at least one), messages of `version`, `syncid`, at most
    /// `maxlen` bytes, at most `qlen_max` full messages waiting per port, partial messages
    /// collected after `flush_after_ms`.
    pub fn new(
        version: Version,
        syncid: u8,
        maxlen: u32,
        qlen_max: u32,
        ports: usize,
        flush_after_ms: u64,
    ) -> MasterSink {
        let outs = (0..ports.max(1))
            .map(|_| Outbox::new(version, syncid, maxlen, qlen_max, flush_after_ms))
            .collect();
        MasterSink { outs, dropped: 0 }
    }

    /// Move every message due at `now_ms` to `out`: the full ones, and partial ones that have
    /// waited the flush delay.
    pub fn collect(&mut self, now_ms: u64, out: &mut Vec<Datagram>) {
        for (port, o) in self.outs.iter_mut().enumerate() {
            while let Some((bytes, oldest_ms)) = o.poll_timed(now_ms) {
                out.push(Datagram {
                    port,
                    bytes,
                    oldest_ms,
                });
            }
        }
    }

    /// Hand back a sent datagram's buffer.
    pub fn recycle(&mut self, d: Datagram) {
        if let Some(o) = self.outs.get_mut(d.port) {
            o.recycle(d.bytes);
        }
    }

    /// When the oldest record not collected yet was announced, if any waits.
    pub fn oldest_unsent(&self) -> Option<u64> {
        self.outs.iter().filter_map(Outbox::oldest_unsent).min()
    }

    /// The counters since the last call (summed over the ports), reset.
    pub fn take_stats(&mut self) -> TxStats {
        let mut t = TxStats::default();
        for o in &mut self.outs {
            t.add(&std::mem::take(&mut o.stats));
        }
        self.dropped += t.dropped_records;
        t
    }
}

impl SyncSink for MasterSink {
    fn announce(&mut self, c: &SyncConn, params: &SyncParams, now: Time) {
        let i = c.port_index(self.outs.len() as u32);
        let o = &mut self.outs[i];
        let v = Version::from_sysctl(params.version);
        if o.version() != v {
            o.set_version(v);
        }
        // Refusals (IPv6 under version 0, …) are counted by the outbox.
        let _ = o.push(c, now.0);
    }

    fn announce_v4(&mut self, r: &SyncV4, params: &SyncParams, now: Time) {
        let i = r.port_index(self.outs.len() as u32);
        let Some(o) = self.outs.get_mut(i) else {
            return;
        };
        let v = Version::from_sysctl(params.version);
        if o.version() != v {
            o.set_version(v);
        }
        let _ = o.push_v4(r, now.0);
    }

    fn waiting(&self) -> usize {
        self.outs.iter().map(Outbox::waiting_records).sum()
    }

    fn dropped(&self) -> u64 {
        self.dropped
            + self
                .outs
                .iter()
                .map(|o| o.stats.dropped_records)
                .sum::<u64>()
    }

    fn clone_box(&self) -> Box<dyn SyncSink> {
        Box::new(self.clone())
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn c(i: u16) -> SyncConn {
        SyncConn {
            protocol: 6,
            flags: 0,
            state: 1,
            caddr: IpAddr::V4(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8)),
            cport: 1000 + i,
            vaddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            vport: 80,
            daddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
            dport: 80,
            fwmark: 0,
            timeout_secs: 900,
            seq: None,
            pe_data: Vec::new(),
            pe_name: Vec::new(),
            local: None,
        }
    }

    #[test]
    fn records_fill_datagrams_that_the_engine_collects_and_recycles() {
        let p = SyncParams::default();
        let mut s = MasterSink::new(Version::V1, 1, 1472, 16, 1, 20);
        // (1472 - 8) / 36 = 40 records per message.
        for i in 0..100 {
            s.announce(&c(i), &p, Time(5));
        }
        assert_eq!(s.waiting(), 100);
        let mut out = Vec::new();
        s.collect(10, &mut out);
        assert_eq!(out.len(), 2, "two full messages at once, the partial waits");
        assert!(out.iter().all(|d| d.bytes[4] == 40 && d.oldest_ms == 5));
        assert_eq!(s.waiting(), 20);
        s.collect(24, &mut out);
        assert_eq!(out.len(), 2, "the partial one waits 20 ms");
        s.collect(25, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].bytes[4], 20);
        let sent: Vec<*const u8> = out.iter().map(|d| d.bytes.as_ptr()).collect();
        for d in out.drain(..) {
            s.recycle(d);
        }
        // The 41st record closes a full message.
        for i in 0..41 {
            s.announce(&c(i), &p, Time(30));
        }
        s.collect(30, &mut out);
        assert_eq!(out.len(), 1);
        assert!(
            sent.contains(&out[0].bytes.as_ptr()),
            "a recycled buffer carries the next message"
        );
        let t = s.take_stats();
        assert_eq!((t.records, t.messages), (141, 4));
        assert_eq!(s.take_stats().records, 0, "taken");
    }

    #[test]
    fn each_port_has_its_own_message_and_a_connection_keeps_its_port() {
        let p = SyncParams::default();
        let mut s = MasterSink::new(Version::V1, 1, 1472, 16, 4, 20);
        for i in 0..64 {
            s.announce(&c(i), &p, Time(0));
        }
        let mut out = Vec::new();
        s.collect(20, &mut out);
        assert!(out.len() > 1 && out.len() <= 4);
        let total: usize = out.iter().map(|d| usize::from(d.bytes[4])).sum();
        assert_eq!(total, 64);
        for d in &out {
            // Decode the client ports of the port's message and check each hashes there.
            let mut at = 8;
            for _ in 0..d.bytes[4] {
                let cport = u16::from_be_bytes([d.bytes[at + 10], d.bytes[at + 11]]);
                assert_eq!(c(cport - 1000).port_index(4), d.port);
                at += 36;
            }
        }
    }

    #[test]
    fn a_full_queue_drops_whole_messages_and_counts_their_records() {
        let p = SyncParams::default();
        // 100 bytes hold two records; one full message may wait.
        let mut s = MasterSink::new(Version::V1, 0, 100, 1, 1, 20);
        for i in 0..7 {
            s.announce(&c(i), &p, Time(0));
        }
        // Closed: after records 3, 5, 7 → three messages, two dropped.
        assert_eq!(s.dropped(), 4);
        let t = s.take_stats();
        assert_eq!((t.dropped_queue_full, t.dropped_records), (2, 4));
        assert_eq!(s.dropped(), 4, "kept across take_stats");
    }

    #[test]
    fn a_changed_sync_version_closes_the_message() {
        let mut p = SyncParams::default();
        let mut s = MasterSink::new(Version::V1, 0, 1472, 16, 1, 20);
        s.announce(&c(1), &p, Time(0));
        p.version = 0;
        s.announce(&c(2), &p, Time(0));
        let mut out = Vec::new();
        s.collect(0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes[5], 1, "the version-1 message went out");
        s.collect(20, &mut out);
        assert_eq!(out[1].bytes[0], 1, "then a version-0 one with one record");
    }
}
