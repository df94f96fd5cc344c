//! Counters of services, destinations and the whole director (docs/internals/connections.md#counters).

use core::ops::{AddAssign, Sub};

/// The five IPVS counters.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections scheduled (templates and synced connections excluded).
    pub conns: u64,
    /// Packets client → server.
    pub inpkts: u64,
    /// Packets server → client seen by the director (0 for DR/TUN).
    pub outpkts: u64,
    /// Bytes client → server (IP length before rewriting).
    pub inbytes: u64,
    /// Bytes server → client.
    pub outbytes: u64,
}

impl AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.conns = self.conns.wrapping_add(o.conns);
        self.inpkts = self.inpkts.wrapping_add(o.inpkts);
        self.outpkts = self.outpkts.wrapping_add(o.outpkts);
        self.inbytes = self.inbytes.wrapping_add(o.inbytes);
        self.outbytes = self.outbytes.wrapping_add(o.outbytes);
    }
}

impl Sub for Counters {
    type Output = Counters;
    fn sub(self, o: Counters) -> Counters {
        Counters {
            conns: self.conns.wrapping_sub(o.conns),
            inpkts: self.inpkts.wrapping_sub(o.inpkts),
            outpkts: self.outpkts.wrapping_sub(o.outpkts),
            inbytes: self.inbytes.wrapping_sub(o.inbytes),
            outbytes: self.outbytes.wrapping_sub(o.outbytes),
        }
    }
}

/// A batch of traffic of one connection, as a socket data plane reports it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Packets client → server.
    pub in_pkts: u64,
    /// Bytes client → server.
    pub in_bytes: u64,
    /// Packets server → client.
    pub out_pkts: u64,
    /// Bytes server → client.
    pub out_bytes: u64,
}

/// Counters plus the zero point recorded by `ipvsadm -Z` and the rate estimator.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Running totals since creation.
    pub live: Counters,
    /// Values at the last zeroing; what users see is `live - zero`.
    pub zero: Counters,
    /// The 2-second rate estimator.
    pub est: crate::estimator::Estimator,
    /// On its table's list of estimators with work (`ServiceTable::moving`).
    pub(crate) listed: bool,
}

impl Stats {
    /// The counters as `ipvsadm --stats` shows them (relative to the last zeroing).
    pub fn shown(&self) -> Counters {
        self.live - self.zero
    }
    /// `ipvsadm -Z`: remember the current values as the zero point and reset the estimator.
    pub fn zero(&mut self) {
        self.zero = self.live;
        self.est.reset(self.live);
    }
    /// Whether an estimator step would change nothing (see
    /// [`crate::estimator::Estimator::is_settled`]).
    pub fn is_settled(&self) -> bool {
        self.est.is_settled(self.live)
    }
    /// One connection scheduled.
    pub fn count_conn(&mut self) {
        self.live.conns = self.live.conns.wrapping_add(1);
    }
    /// One packet client → server of `bytes` bytes.
    pub fn count_in(&mut self, bytes: u64) {
        self.live.inpkts = self.live.inpkts.wrapping_add(1);
        self.live.inbytes = self.live.inbytes.wrapping_add(bytes);
    }
    /// A batch of traffic.
    pub fn count_traffic(&mut self, t: Traffic) {
        self.live.inpkts = self.live.inpkts.wrapping_add(t.in_pkts);
        self.live.inbytes = self.live.inbytes.wrapping_add(t.in_bytes);
        self.live.outpkts = self.live.outpkts.wrapping_add(t.out_pkts);
        self.live.outbytes = self.live.outbytes.wrapping_add(t.out_bytes);
    }
    /// One packet server → client of `bytes` bytes.
    pub fn count_out(&mut self, bytes: u64) {
        self.live.outpkts = self.live.outpkts.wrapping_add(1);
        self.live.outbytes = self.live.outbytes.wrapping_add(bytes);
    }
}
