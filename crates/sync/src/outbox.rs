//! The master's send queue: records become messages (via the [`Encoder`]), full messages wait
//! in a queue bounded by `sync_qlen_max` (beyond it they are dropped and counted), and a partly
//! filled message goes out once it has waited `flush_after` — the kernel flushes after at most
//! 2 s; rvs defaults to 20 ms so that a quiet master's updates are not late by seconds.
//! Time is passed in (milliseconds of any monotonic clock).

use std::collections::VecDeque;

use rvs_core::sync::{SyncConn, SyncV4};

use crate::encode::{EncodeError, Encoder, Version};

/// The kernel's longest wait for a partly filled message.
pub const KERNEL_FLUSH_MS: u64 = 2000;
/// rvs's default wait.
pub const DEFAULT_FLUSH_MS: u64 = 20;

/// Counters of the send side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Records encoded.
    pub records: u64,
    /// Records the encoder refused, by [`EncodeError`] (IPv6 under version 0, mixed families,
    /// oversized PE data).
    pub refused: u64,
    /// Messages finished.
    pub messages: u64,
    /// Messages dropped because `sync_qlen_max` were already waiting.
    pub dropped_queue_full: u64,
    /// The records those messages carried.
    pub dropped_records: u64,
}

impl TxStats {
    /// Add `o`'s counts.
    pub fn add(&mut self, o: &TxStats) {
        self.records += o.records;
        self.refused += o.refused;
        self.messages += o.messages;
        self.dropped_queue_full += o.dropped_queue_full;
        self.dropped_records += o.dropped_records;
    }
}

/// Encoder + bounded queue + flush timer.
#[derive(Clone, Debug)]
pub struct Outbox {
    enc: Encoder,
    /// Full messages, each with the time its oldest record was queued by the packet path.
    queue: VecDeque<(Vec<u8>, u64)>,
    qlen_max: usize,
    flush_after_ms: u64,
    /// When the message under construction got its first record.
    started_ms: Option<u64>,
    /// When the oldest record of the message under construction was queued by the packet
    /// path (for the sync lag).
    oldest_ms: Option<u64>,
    /// Counters.
    pub stats: TxStats,
}

impl Outbox {
    /// An outbox for messages of `version`, `syncid`, at most `maxlen` bytes, with at most
    /// `qlen_max` full messages waiting and partial messages flushed after `flush_after_ms`
    /// (capped at the kernel's 2 s).
    pub fn new(
        version: Version,
        syncid: u8,
        maxlen: u32,
        qlen_max: u32,
        flush_after_ms: u64,
    ) -> Outbox {
        Outbox {
            enc: Encoder::new(version, syncid, maxlen),
            queue: VecDeque::new(),
            qlen_max: qlen_max.max(1) as usize,
            flush_after_ms: flush_after_ms.min(KERNEL_FLUSH_MS),
            started_ms: None,
            oldest_ms: None,
            stats: TxStats::default(),
        }
    }

    /// Messages waiting to be sent.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Records not handed out yet: in waiting messages and in the one under construction.
    pub fn waiting_records(&self) -> usize {
        let nr = |m: &Vec<u8>| usize::from(message_records(m));
        self.queue.iter().map(|(m, _)| nr(m)).sum::<usize>() + usize::from(self.enc.pending())
    }

    /// The version records are written in.
    pub fn version(&self) -> Version {
        self.enc.version()
    }

    /// Hand back a sent message's buffer for reuse (no allocation per message).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.enc.recycle(buf);
    }

    /// Change the protocol version (the `sync_version` sysctl): the current message is closed.
    pub fn set_version(&mut self, v: Version) {
        if let Some(m) = self.enc.set_version(v) {
            let oldest = self.oldest_ms.take().unwrap_or(0);
            self.enqueue(m, oldest);
            self.started_ms = None;
        }
    }

    /// Add one record at time `now_ms`.
    pub fn push(&mut self, c: &SyncConn, now_ms: u64) -> Result<(), EncodeError> {
        self.push_queued(c, now_ms, now_ms)
    }

    /// Add one record at time `now_ms` that the packet path queued at `queued_ms` (the sync lag
    /// of its message is measured from the oldest such time).
    pub fn push_queued(
        &mut self,
        c: &SyncConn,
        now_ms: u64,
        queued_ms: u64,
    ) -> Result<(), EncodeError> {
        let r = self.enc.push(c);
        self.pushed(r, now_ms, queued_ms)
    }

    /// [`Outbox::push`] of a record in fixed form (no [`SyncConn`] built).
    #[inline]
    pub fn push_v4(&mut self, r: &SyncV4, now_ms: u64) -> Result<(), EncodeError> {
        let r = self.enc.push_v4(r);
        self.pushed(r, now_ms, now_ms)
    }

    /// The bookkeeping after the encoder took a record (or refused it).
    #[inline]
    fn pushed(
        &mut self,
        r: Result<Option<Vec<u8>>, EncodeError>,
        now_ms: u64,
        queued_ms: u64,
    ) -> Result<(), EncodeError> {
        match r {
            Ok(done) => {
                self.stats.records += 1;
                if let Some(m) = done {
                    let oldest = self.oldest_ms.take().unwrap_or(queued_ms);
                    self.enqueue(m, oldest);
                    self.started_ms = Some(now_ms);
                } else if self.started_ms.is_none() {
                    self.started_ms = Some(now_ms);
                }
                self.oldest_ms = Some(self.oldest_ms.map_or(queued_ms, |o| o.min(queued_ms)));
                Ok(())
            }
            Err(e) => {
                self.stats.refused += 1;
                Err(e)
            }
        }
    }

    /// The next message to send at time `now_ms`: a queued full message, else the partial one
    /// if it has waited long enough.
    pub fn poll(&mut self, now_ms: u64) -> Option<Vec<u8>> {
        self.poll_timed(now_ms).map(|(m, _)| m)
    }

    /// Like [`Outbox::poll`], with the time the message's oldest record was queued.
    pub fn poll_timed(&mut self, now_ms: u64) -> Option<(Vec<u8>, u64)> {
        if let Some(m) = self.queue.pop_front() {
            return Some(m);
        }
        let started = self.started_ms?;
        if now_ms.saturating_sub(started) >= self.flush_after_ms {
            self.started_ms = None;
            let oldest = self.oldest_ms.take().unwrap_or(started);
            let m = self.enc.finish();
            if m.is_some() {
                self.stats.messages += 1;
            }
            return m.map(|m| (m, oldest));
        }
        None
    }

    /// When the oldest record not sent yet was queued by the packet path, if any waits.
    pub fn oldest_unsent(&self) -> Option<u64> {
        self.queue
            .iter()
            .map(|(_, t)| *t)
            .chain(self.oldest_ms)
            .min()
    }

    /// Milliseconds until the partial message is due, if there is one and nothing is queued.
    pub fn due_in(&self, now_ms: u64) -> Option<u64> {
        if !self.queue.is_empty() {
            return Some(0);
        }
        self.started_ms
            .map(|s| (s + self.flush_after_ms).saturating_sub(now_ms))
    }

    fn enqueue(&mut self, m: Vec<u8>, oldest_ms: u64) {
        self.stats.messages += 1;
        if self.queue.len() >= self.qlen_max {
            self.stats.dropped_queue_full += 1;
            self.stats.dropped_records += u64::from(message_records(&m));
            self.enc.recycle(m);
            return;
        }
        self.queue.push_back((m, oldest_ms));
    }
}

/// The record count in the header of a message the encoder wrote: a version-0 message has
/// it in byte 0, never 0; a version-1 message has 0 there and the count in byte 4.
fn message_records(m: &[u8]) -> u8 {
    match m.first() {
        Some(0) => m.get(4).copied().unwrap_or(0),
        Some(n) => *n,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn c(i: u16) -> SyncConn {
        SyncConn {
            protocol: 17,
            flags: 0,
            state: 0,
            caddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            cport: i,
            vaddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            vport: 53,
            daddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
            dport: 53,
            fwmark: 0,
            timeout_secs: 300,
            seq: None,
            pe_data: Vec::new(),
            pe_name: Vec::new(),
            local: None,
        }
    }

    #[test]
    fn partial_message_waits_for_the_flush_delay() {
        let mut o = Outbox::new(Version::V1, 0, 1472, 10, 20);
        o.push(&c(1), 1000).unwrap();
        assert_eq!(o.poll(1000), None);
        assert_eq!(o.due_in(1005), Some(15));
        assert_eq!(o.poll(1019), None);
        let m = o.poll(1020).unwrap();
        assert_eq!(m.len(), 8 + 36);
        assert_eq!(o.poll(5000), None);
        assert_eq!(o.due_in(5000), None);
    }

    #[test]
    fn flush_is_never_later_than_the_kernels_two_seconds() {
        let mut o = Outbox::new(Version::V1, 0, 1472, 10, 60_000);
        o.push(&c(1), 0).unwrap();
        assert_eq!(o.poll(1999), None);
        assert!(o.poll(2000).is_some());
    }

    #[test]
    fn full_messages_go_at_once_and_the_queue_is_bounded() {
        // 100 bytes hold two records: every third push closes a message.
        let mut o = Outbox::new(Version::V1, 0, 100, 2, 20);
        for i in 0..9 {
            o.push(&c(i), 0).unwrap();
        }
        // Messages closed: after pushes 3, 5, 7, 9 → 4, of which 2 fit the queue.
        assert_eq!(o.queued(), 2);
        assert_eq!(o.stats.dropped_queue_full, 2);
        assert!(o.poll(0).is_some());
        assert!(o.poll(0).is_some());
        assert_eq!(o.poll(0), None, "the partial one waits");
        assert_eq!(o.poll(20).map(|m| m[4]), Some(1));
        assert_eq!(o.stats.records, 9);
    }

    #[test]
    fn each_message_carries_the_queue_time_of_its_oldest_record() {
        // 100 bytes hold two records.
        let mut o = Outbox::new(Version::V1, 0, 100, 10, 20);
        o.push_queued(&c(1), 50, 30).unwrap();
        o.push_queued(&c(2), 50, 10).unwrap();
        assert_eq!(o.oldest_unsent(), Some(10));
        o.push_queued(&c(3), 60, 40).unwrap();
        assert_eq!(o.oldest_unsent(), Some(10));
        assert_eq!(o.poll_timed(60).map(|(_, t)| t), Some(10));
        assert_eq!(o.oldest_unsent(), Some(40));
        assert_eq!(o.poll_timed(60), None);
        assert_eq!(o.poll_timed(80).map(|(_, t)| t), Some(40));
        assert_eq!(o.oldest_unsent(), None);
    }

    #[test]
    fn version_change_closes_the_message() {
        let mut o = Outbox::new(Version::V1, 0, 1472, 10, 20);
        o.push(&c(1), 0).unwrap();
        o.set_version(Version::V0);
        let m = o.poll(0).unwrap();
        assert_eq!(m[5], 1, "the closed message is version 1");
        o.push(&c(2), 0).unwrap();
        let m = o.poll(100).unwrap();
        assert_eq!(m[0], 1, "the next is version 0: one record");
    }
}
