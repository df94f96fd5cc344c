//! An in-memory [`PacketPort`] for testing the data plane without root or interfaces: frames
//! pushed with [`MemIo::inject`] are received, frames sent (or marked for transmission while
//! a block is walked) are collected in [`MemIo::sent`].

use std::collections::VecDeque;
use std::time::Duration;

use crate::{Error, FrameSink, PacketPort, PortStats, RxBlock, RxFrame};

/// A queue-backed [`PacketPort`]; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct MemIo {
    mac: [u8; 6],
    ifindex: u32,
    rx: VecDeque<Vec<u8>>,
    /// Most frames per block; 0 for all that are queued.
    block_frames: usize,
    /// The frames of the block lent out last.
    inflight: Vec<Vec<u8>>,
    sent: Vec<(u32, Vec<u8>)>,
    stats: PortStats,
}

impl MemIo {
    /// An empty port with the given identity.
    pub fn new(mac: [u8; 6], ifindex: u32) -> Self {
        MemIo {
            mac,
            ifindex,
            ..MemIo::default()
        }
    }

    /// Cuts the received frames into blocks of at most `n` frames (0: every queued frame
    /// makes one block, the default).
    pub fn with_block_frames(mut self, n: usize) -> Self {
        self.block_frames = n;
        self
    }

    /// Queues a frame to be received.
    pub fn inject(&mut self, frame: &[u8]) {
        self.rx.push_back(frame.to_vec());
    }

    /// Frames transmitted so far, with the interface each was sent on, oldest first.
    pub fn sent(&self) -> &[(u32, Vec<u8>)] {
        &self.sent
    }

    /// Takes the transmitted frames, leaving the list empty.
    pub fn take_sent(&mut self) -> Vec<(u32, Vec<u8>)> {
        std::mem::take(&mut self.sent)
    }
}

/// A block of [`MemIo`] frames.
#[derive(Debug)]
pub struct MemBlock<'a> {
    frames: std::slice::IterMut<'a, Vec<u8>>,
    current: Option<RxFrame<'a>>,
    ifindex: u32,
    /// Marked frames, moved to `sent` when the block is finished.
    pending: Vec<(u32, Vec<u8>)>,
    sent: &'a mut Vec<(u32, Vec<u8>)>,
    stats: &'a mut PortStats,
}

impl MemBlock<'_> {
    fn retire_current(&mut self) {
        if let Some(f) = self.current.take() {
            if let Some(ifindex) = f.tx_ifindex() {
                self.pending.push((ifindex, f.data().to_vec()));
            }
        }
    }
}

impl<'a> RxBlock<'a> for MemBlock<'a> {
    fn next_frame(&mut self) -> Option<&mut RxFrame<'a>> {
        self.retire_current();
        let buf = self.frames.next()?;
        self.stats.rx_frames += 1;
        self.current = Some(RxFrame::new(buf, self.ifindex));
        self.current.as_mut()
    }

    fn finish(self) {}
}

impl Drop for MemBlock<'_> {
    fn drop(&mut self) {
        self.retire_current();
        self.stats.tx_frames += self.pending.len() as u64;
        self.sent.append(&mut self.pending);
    }
}

impl FrameSink for MemIo {
    fn send_frames(&mut self, frames: &[&[u8]]) -> usize {
        for f in frames {
            self.sent.push((self.ifindex, f.to_vec()));
        }
        self.stats.tx_frames += frames.len() as u64;
        frames.len()
    }
}

impl PacketPort for MemIo {
    type Block<'a> = MemBlock<'a>;

    /// Lends out the queued frames (at most the block size); never waits (an empty queue is
    /// an immediate timeout).
    fn next_block(&mut self, _timeout: Duration) -> Result<Option<MemBlock<'_>>, Error> {
        if self.rx.is_empty() {
            return Ok(None);
        }
        let n = match self.block_frames {
            0 => self.rx.len(),
            n => n.min(self.rx.len()),
        };
        self.inflight.clear();
        self.inflight.extend(self.rx.drain(..n));
        Ok(Some(MemBlock {
            frames: self.inflight.iter_mut(),
            current: None,
            ifindex: self.ifindex,
            pending: Vec::new(),
            sent: &mut self.sent,
            stats: &mut self.stats,
        }))
    }

    fn stats(&mut self) -> Result<PortStats, Error> {
        Ok(self.stats)
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_rewrite_transmit() {
        let mut io = MemIo::new([2, 0, 0, 0, 0, 1], 3);
        io.inject(&[1u8; 60]);
        io.inject(&[2u8; 60]);
        let mut n = 0;
        let mut block = io.next_block(Duration::ZERO).unwrap().expect("a block");
        while let Some(fr) = block.next_frame() {
            n += 1;
            if fr.data()[0] == 1 {
                fr.data_mut()[0] = 9;
                fr.truncate(42);
                fr.transmit_on(5);
            }
        }
        block.finish();
        assert_eq!(n, 2);
        assert_eq!(io.send_frames(&[&[7u8; 14]]), 1);
        let st = io.stats().unwrap();
        assert_eq!((st.rx_frames, st.tx_frames), (2, 2));
        let sent = io.take_sent();
        assert_eq!(sent.len(), 2);
        assert_eq!((sent[0].0, sent[0].1.len(), sent[0].1[0]), (5, 42, 9));
        assert_eq!(sent[1], (3, vec![7u8; 14]));
        assert!(io.sent().is_empty());
        assert!(io.next_block(Duration::ZERO).unwrap().is_none());
    }

    #[test]
    fn marked_frames_leave_when_the_block_is_finished() {
        let mut io = MemIo::new([2, 0, 0, 0, 0, 1], 3).with_block_frames(2);
        for k in 0..3u8 {
            io.inject(&[k; 60]);
        }
        let mut block = io.next_block(Duration::ZERO).unwrap().expect("a block");
        while let Some(fr) = block.next_frame() {
            fr.transmit();
        }
        block.finish();
        assert_eq!(io.take_sent().len(), 2, "one block of two frames");
        let mut block = io.next_block(Duration::ZERO).unwrap().expect("the rest");
        let fr = block.next_frame().expect("a frame");
        fr.transmit();
        assert!(block.next_frame().is_none());
        drop(block);
        assert_eq!(io.take_sent(), vec![(3, vec![2u8; 60])]);
    }
}
