//! Counters of what a backup received, by outcome and reason (exported as metrics).

use crate::decode::{parse, DropReason, RecordError, SkipReason};
use rvs_core::sync::SyncConn;

/// What the decoder made of the datagrams it was given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RxStats {
    /// Datagrams received.
    pub datagrams: u64,
    /// Datagrams whose header announced no record (e.g. a version-1 message read as version 0
    /// by its header bytes, or an empty message).
    pub empty: u64,
    /// Records decoded.
    pub records: u64,
    /// Records skipped (unknown mandatory option).
    pub skipped_unknown_option: u64,
    /// Datagrams (or their rest) dropped, indexed like [`DropReason::ALL`].
    pub dropped: [u64; DropReason::ALL.len()],
}

impl RxStats {
    /// Count one drop.
    pub fn note_drop(&mut self, r: DropReason) {
        if let Some(i) = DropReason::ALL.iter().position(|x| *x == r) {
            self.dropped[i] += 1;
        }
    }

    /// Drops of one reason.
    pub fn dropped(&self, r: DropReason) -> u64 {
        DropReason::ALL
            .iter()
            .position(|x| *x == r)
            .map_or(0, |i| self.dropped[i])
    }

    /// Every drop, whatever the reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// Decode `buf` for a backup with `backup_syncid`, hand every good record to `sink`, count
    /// everything. Returns the number of records handed over.
    pub fn decode(
        &mut self,
        buf: &[u8],
        backup_syncid: u8,
        mut sink: impl FnMut(SyncConn),
    ) -> usize {
        self.datagrams += 1;
        let msg = match parse(buf, backup_syncid) {
            Ok(m) => m,
            Err(r) => {
                self.note_drop(r);
                return 0;
            }
        };
        if msg.nr_conns() == 0 {
            self.empty += 1;
            return 0;
        }
        let mut n = 0;
        for r in msg.records() {
            match r {
                Ok(c) => {
                    self.records += 1;
                    n += 1;
                    sink(c);
                }
                Err(RecordError::Skip(SkipReason::UnknownOption)) => {
                    self.skipped_unknown_option += 1
                }
                Err(RecordError::Drop(d)) => self.note_drop(d),
            }
        }
        n
    }
}
