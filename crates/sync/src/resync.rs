//! Bulk resync, an rvs extension the kernel does not have (`docs/internals/sync.md#bulk-resync`):
//! a backup daemon that starts asks the master for its whole table and gets it back as ordinary
//! version-1 messages, sent unicast to the asker and paced, followed by an end marker.
//!
//! Two control messages travel besides the ordinary sync messages. They are built so that a
//! kernel sync daemon that ever received one would drop it silently: both start with a magic
//! whose second byte pair, read as the kernel's `size` field, is far larger than the datagram
//! itself, and the kernel drops a message whose `size` differs from what it received
//! ("bogus message size", a debug-level message only) before looking at anything else.
//! Besides, they never reach a kernel socket in the first place: the request goes to the sync
//! group on a separate port ([`resync_port`]) no kernel daemon listens on, and the records and
//! the end marker go unicast to the rvs backup that asked.
//!
//! Layout (big-endian):
//! - request, 12 bytes: `"RVSQ"`, version 1, syncid, 2 bytes 0, nonce (u32);
//! - end marker, 16 bytes: `"RVSE"`, version 1, syncid, 2 bytes 0, nonce (u32), records sent
//!   (u32).

/// First bytes of a resync request. Read as a kernel header: `size` = 0x5351.
pub const REQUEST_MAGIC: [u8; 4] = *b"RVSQ";
/// First bytes of a resync end marker. Read as a kernel header: `size` = 0x5345.
pub const END_MAGIC: [u8; 4] = *b"RVSE";
/// Version of the control messages.
pub const RESYNC_VERSION: u8 = 1;
/// Length of a request.
pub const REQUEST_LEN: usize = 12;
/// Length of an end marker.
pub const END_LEN: usize = 16;
/// The resync port is the sync port plus this: just past the 64 ports `sync_ports` may use
/// (8848 … 8911 by default), so no kernel receive thread of the pair ever listens on it.
pub const RESYNC_PORT_OFFSET: u16 = 64;

/// The port resync requests are multicast to, for a sync daemon on `port`.
pub fn resync_port(port: u16) -> u16 {
    port.wrapping_add(RESYNC_PORT_OFFSET)
}

/// A control message of the resync exchange.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// "Send me your table": from a backup, multicast to the resync port.
    Request {
        /// The asker's sync id (a master with another non-zero id ignores it).
        syncid: u8,
        /// Chosen by the asker; the end marker repeats it.
        nonce: u32,
    },
    /// "That was all": from the master, after the last record of the table, unicast.
    End {
        /// The master's sync id.
        syncid: u8,
        /// The request's nonce.
        nonce: u32,
        /// Records the master sent for this request (the asker compares with what arrived).
        records: u32,
    },
}

impl Control {
    /// The message on the wire.
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            Control::Request { syncid, nonce } => {
                let mut b = Vec::with_capacity(REQUEST_LEN);
                b.extend_from_slice(&REQUEST_MAGIC);
                b.extend_from_slice(&[RESYNC_VERSION, syncid, 0, 0]);
                b.extend_from_slice(&nonce.to_be_bytes());
                b
            }
            Control::End {
                syncid,
                nonce,
                records,
            } => {
                let mut b = Vec::with_capacity(END_LEN);
                b.extend_from_slice(&END_MAGIC);
                b.extend_from_slice(&[RESYNC_VERSION, syncid, 0, 0]);
                b.extend_from_slice(&nonce.to_be_bytes());
                b.extend_from_slice(&records.to_be_bytes());
                b
            }
        }
    }

    /// Read a control message; `None` for anything else (an ordinary sync message, a wrong
    /// length, an unknown version, non-zero reserved bytes).
    pub fn parse(b: &[u8]) -> Option<Control> {
        let magic: [u8; 4] = b.get(..4)?.try_into().ok()?;
        let (&[version, syncid, r0, r1], rest) = b.get(4..)?.split_first_chunk::<4>()?;
        if version != RESYNC_VERSION || r0 != 0 || r1 != 0 {
            return None;
        }
        let be32 = |s: &[u8]| -> Option<u32> { Some(u32::from_be_bytes(s.try_into().ok()?)) };
        match magic {
            REQUEST_MAGIC if b.len() == REQUEST_LEN => Some(Control::Request {
                syncid,
                nonce: be32(rest)?,
            }),
            END_MAGIC if b.len() == END_LEN => Some(Control::End {
                syncid,
                nonce: be32(&rest[..4])?,
                records: be32(&rest[4..])?,
            }),
            _ => None,
        }
    }

    /// Whether the message is for a daemon with sync id `mine` (0 accepts every id, as for
    /// ordinary messages).
    pub fn matches(&self, mine: u8) -> bool {
        let id = match *self {
            Control::Request { syncid, .. } | Control::End { syncid, .. } => syncid,
        };
        mine == 0 || id == 0 || id == mine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_exact_bytes() {
        let q = Control::Request {
            syncid: 7,
            nonce: 0x0102_0304,
        };
        let b = q.encode();
        assert_eq!(b, b"RVSQ\x01\x07\x00\x00\x01\x02\x03\x04");
        assert_eq!(Control::parse(&b), Some(q));
        let e = Control::End {
            syncid: 7,
            nonce: 9,
            records: 200,
        };
        let b = e.encode();
        assert_eq!(b.len(), END_LEN);
        assert_eq!(Control::parse(&b), Some(e));
    }

    #[test]
    fn a_kernel_receiver_sees_a_bogus_size() {
        // The kernel drops a message whose be16 at offset 2 is not the datagram length.
        for m in [
            Control::Request {
                syncid: 0,
                nonce: 0,
            }
            .encode(),
            Control::End {
                syncid: 0,
                nonce: 0,
                records: 0,
            }
            .encode(),
        ] {
            let size = usize::from(u16::from_be_bytes([m[2], m[3]]));
            assert_ne!(size, m.len());
            assert!(
                crate::parse(&m, 0).is_err(),
                "rvs's own decoder refuses it too"
            );
        }
    }

    #[test]
    fn anything_else_is_not_a_control_message() {
        let good = Control::Request {
            syncid: 1,
            nonce: 5,
        }
        .encode();
        for cut in 0..good.len() {
            assert_eq!(Control::parse(&good[..cut]), None);
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(Control::parse(&long), None);
        let mut v2 = good.clone();
        v2[4] = 2;
        assert_eq!(Control::parse(&v2), None);
        let mut res = good;
        res[6] = 1;
        assert_eq!(Control::parse(&res), None);
        // An ordinary version-1 message.
        assert_eq!(Control::parse(&[0, 1, 0, 8, 0, 1, 0, 0]), None);
    }

    #[test]
    fn syncid_filter() {
        let q = Control::Request {
            syncid: 3,
            nonce: 0,
        };
        assert!(q.matches(0) && q.matches(3) && !q.matches(4));
        assert!(Control::Request {
            syncid: 0,
            nonce: 0
        }
        .matches(4));
        assert_eq!(resync_port(8848), 8912);
    }
}
