//! An in-memory [`FrameIo`] for testing the data plane without root or interfaces: frames
//! pushed with [`MemIo::inject`] are received, frames sent (or marked for transmission in the
//! receive callback) are collected in [`MemIo::sent`].

use std::collections::VecDeque;
use std::time::Duration;

use crate::{Error, FrameIo, PortStats, RxFrame};

/// A queue-backed [`FrameIo`]; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct MemIo {
    mac: [u8; 6],
    ifindex: u32,
    rx: VecDeque<Vec<u8>>,
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

impl FrameIo for MemIo {
    /// Delivers every queued frame; never waits (an empty queue is an immediate timeout).
    fn recv_batch(
        &mut self,
        _timeout: Duration,
        f: &mut dyn FnMut(&mut RxFrame<'_>),
    ) -> Result<usize, Error> {
        let n = self.rx.len();
        for mut buf in self.rx.drain(..) {
            let mut frame = RxFrame::new(&mut buf, self.ifindex);
            f(&mut frame);
            if let Some(ifindex) = frame.tx_ifindex() {
                let len = frame.data().len();
                buf.truncate(len);
                self.sent.push((ifindex, buf));
                self.stats.tx_frames += 1;
            }
        }
        self.stats.rx_frames += n as u64;
        Ok(n)
    }

    fn send_batch(&mut self, frames: &[&[u8]]) -> Result<usize, Error> {
        for f in frames {
            self.sent.push((self.ifindex, f.to_vec()));
        }
        self.stats.tx_frames += frames.len() as u64;
        Ok(frames.len())
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
        let dynio: &mut dyn FrameIo = &mut io;
        let n = dynio
            .recv_batch(Duration::ZERO, &mut |fr| {
                if fr.data()[0] == 1 {
                    fr.data_mut()[0] = 9;
                    fr.truncate(42);
                    fr.transmit_on(5);
                }
            })
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(dynio.send_batch(&[&[7u8; 14]]).unwrap(), 1);
        let st = dynio.stats().unwrap();
        assert_eq!((st.rx_frames, st.tx_frames), (2, 2));
        let sent = io.take_sent();
        assert_eq!(sent.len(), 2);
        assert_eq!((sent[0].0, sent[0].1.len(), sent[0].1[0]), (5, 42, 9));
        assert_eq!(sent[1], (3, vec![7u8; 14]));
        assert!(io.sent().is_empty());
        assert_eq!(io.recv_batch(Duration::ZERO, &mut |_| {}).unwrap(), 0);
    }
}
