//! The 14 IPVS schedulers (docs/internals/schedulers.md), with the kernel's list order, tie-breaks and hooks.
//!
//! A scheduler sees the service's destinations through a [`DestView`] (list order, head =
//! newest) and returns a [`DestId`]. The service table calls the hooks the kernel calls
//! (`add_dest`, `del_dest`, `upd_dest`) and, in addition, [`Scheduler::on_load_change`] whenever a
//! destination's connection counters or OVERLOAD flag change, so that schedulers can keep an
//! index instead of scanning the list (the result must stay exactly the kernel's).
//!
//! | scheduler | decision | index kept | on add/del | on load change |
//! |---|---|---|---|---|
//! | rr, wrr | O(log n) | max tree of `OVERLOAD ? 0 : weight` (rr: 0/1) per position | O(n) rebuild | O(log n) |
//! | lc wlc sed nq fo ovf | O(1) | tournament tree, leftmost best leaf per node | O(n) rebuild | O(log n) |
//! | twos | O(log n) | Fenwick tree of eligible weights | O(n) rebuild | O(log n) |
//! | sh | O(1), fallback O(log size) | bucket table + max tree of usable buckets | O(size + n) | O(1), O(buckets of dest) on a flip |
//! | dh | O(1) | bucket table | O(256) | — |
//! | mh | O(1), fallback expected O(M / usable slots) | Maglev table + usable-slot count | O(M + n) | O(1) |
//! | lblc | O(bucket) | wlc tree + count of half-idle destinations | O(n) rebuild | O(log n) |
//! | lblcr | O(bucket + set) | as lblc | O(n) rebuild | O(log n) |
//!
//! Equivalence with the kernel's loops is checked by `tests/sched_equiv.rs`, which runs random
//! add/edit/delete/load/schedule sequences against literal transcriptions of the C code.
//! The indexes are only as current as the calls to [`Scheduler::on_load_change`]: every
//! change of a destination's counters or OVERLOAD flag must be reported (the service table's
//! `load_changed`).

use std::net::IpAddr;

use crate::addr::Protocol;
use crate::dest::{Dest, DestArena, DestId};
use crate::error::{Error, Result};
use crate::service::ServiceFlags;
use crate::time::{Duration, Time};

mod hashing;
mod index;
mod lblc;
mod least;
mod mh_grace;
mod pewma;
mod rr;
mod twos;
mod wrr;

pub use hashing::{fold_af, mh_offset_skip, Dh, Mh, Sh, MH_K1, MH_K2};
pub use lblc::{Lblc, Lblcr};
pub use least::Least;
pub use pewma::Pewma;
pub use rr::Rr;
pub use twos::Twos;
pub use wrr::Wrr;

use least::Metric;

/// The scheduler algorithms.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum SchedKind {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connection.
    Lc,
    /// Weighted least connection (ipvsadm's default).
    Wlc,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Source hashing.
    Sh,
    /// Destination hashing.
    Dh,
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Weighted fail-over.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Maglev hashing.
    Mh,
    /// Power of two choices.
    Twos,
    /// Latency-aware power of two choices (rvs's own, not a kernel scheduler).
    Pewma,
}

impl SchedKind {
    /// Every scheduler, in the order ipvsadm's help lists them (twos last).
    pub const ALL: [SchedKind; 14] = [
        SchedKind::Rr,
        SchedKind::Wrr,
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Lblc,
        SchedKind::Lblcr,
        SchedKind::Dh,
        SchedKind::Sh,
        SchedKind::Sed,
        SchedKind::Nq,
        SchedKind::Fo,
        SchedKind::Ovf,
        SchedKind::Mh,
        SchedKind::Twos,
    ];

    /// The schedulers of rvs's own, after the kernel's ([`SchedKind::ALL`] is the kernel's 14,
    /// whose behaviour is checked against transcriptions of the kernel's code).
    pub const OURS: [SchedKind; 1] = [SchedKind::Pewma];

    /// The kernel module suffix / ipvsadm name.
    pub fn name(self) -> &'static str {
        match self {
            SchedKind::Rr => "rr",
            SchedKind::Wrr => "wrr",
            SchedKind::Lc => "lc",
            SchedKind::Wlc => "wlc",
            SchedKind::Sed => "sed",
            SchedKind::Nq => "nq",
            SchedKind::Sh => "sh",
            SchedKind::Dh => "dh",
            SchedKind::Lblc => "lblc",
            SchedKind::Lblcr => "lblcr",
            SchedKind::Fo => "fo",
            SchedKind::Ovf => "ovf",
            SchedKind::Mh => "mh",
            SchedKind::Twos => "twos",
            SchedKind::Pewma => "pewma",
        }
    }

    /// Look a scheduler up by name; `Ok(None)` is the "none" scheduler.
    pub fn from_name(name: &str) -> Result<Option<SchedKind>> {
        if name == "none" {
            return Ok(None);
        }
        SchedKind::ALL
            .iter()
            .chain(SchedKind::OURS.iter())
            .copied()
            .find(|k| k.name() == name)
            .map(Some)
            .ok_or_else(|| Error::UnknownScheduler(name.to_string()))
    }
}

/// Compile-time parameters of the kernel's schedulers, selectable here.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SchedParams {
    /// `CONFIG_IP_VS_MH_TAB_INDEX` (8..=17): mh table size is the `index - 8`-th prime of
    /// 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071. Default 12 (4093).
    pub mh_tab_index: u8,
    /// `CONFIG_IP_VS_SH_TAB_BITS` (4..=20), default 8 (256 buckets).
    pub sh_tab_bits: u8,
    /// `lblc_expiration` sysctl in seconds (default 86400).
    pub lblc_expiration: u32,
    /// `lblcr_expiration` sysctl in seconds (default 86400).
    pub lblcr_expiration: u32,
    /// `rvs_mh_grace` sysctl in seconds (rvs addition, default 0 = off): how long mh keeps the
    /// table of before a real-server change for packets that do not start a connection.
    pub mh_grace: u32,
    /// pewma's parameters (rvs addition).
    pub pewma: crate::latency::PewmaParams,
}

impl Default for SchedParams {
    fn default() -> Self {
        SchedParams {
            mh_tab_index: 12,
            sh_tab_bits: 8,
            lblc_expiration: 86400,
            lblcr_expiration: 86400,
            mh_grace: 0,
            pewma: crate::latency::PewmaParams::default(),
        }
    }
}

/// What a scheduler may look at in the packet that starts a connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    /// Transport protocol (`None` for other IP protocols, e.g. ICMP under fwmark services).
    pub proto: Option<Protocol>,
    /// Source address.
    pub saddr: IpAddr,
    /// Source port (0 if the protocol has none).
    pub sport: u16,
    /// Destination address.
    pub daddr: IpAddr,
    /// Destination port.
    pub dport: u16,
    /// The kernel's `iph->hdr_flags & IP_VS_HDR_INVERSE`: scheduling for an ICMP error in the
    /// reverse direction, so hashing schedulers use the destination instead of the source.
    pub inverse: bool,
    /// The packet does not start a connection: a TCP segment without SYN or an SCTP packet
    /// without INIT, taken under `sloppy_tcp`/`sloppy_sctp` by a director that has no entry
    /// for it (its flow was moved here). Only mh reads it, for its previous table
    /// (`rvs_mh_grace`, an rvs addition); the kernel's schedulers do not see it.
    pub midstream: bool,
}

/// A random source for twos; the kernel uses `get_random_u32_below`.
pub trait RandomSource {
    /// A uniformly distributed value in `0..n` (`n > 0`).
    fn below(&mut self, n: u32) -> u32;
}

/// A read-only view of a service's destinations in list order.
#[derive(Copy, Clone)]
pub struct DestView<'a> {
    /// Destination ids, head (newest) first.
    pub ids: &'a [DestId],
    /// The arena holding them.
    pub arena: &'a DestArena,
}

impl<'a> DestView<'a> {
    /// Number of destinations.
    #[inline]
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// Whether the service has no destination.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// The destination at list position `pos`.
    ///
    /// # Panics
    /// If `pos` is out of range; the schedulers use [`DestView::get`].
    #[inline]
    pub fn at(&self, pos: usize) -> &'a Dest {
        &self.arena[self.ids[pos]]
    }
    /// The destination at list position `pos`, if there is one.
    #[inline]
    pub fn get(&self, pos: usize) -> Option<&'a Dest> {
        self.ids.get(pos).and_then(|&id| self.arena.get(id))
    }
    /// The list position of `id` if it is linked into this service (the kernel's AVAILABLE
    /// flag, checked against this very list).
    #[inline]
    pub fn pos_of(&self, id: DestId) -> Option<usize> {
        let d = self.arena.get(id)?;
        let p = d.list_pos();
        (d.available && self.ids.get(p) == Some(&id)).then_some(p)
    }
    /// Destinations in list order with their ids.
    pub fn iter(&self) -> impl Iterator<Item = (DestId, &'a Dest)> + 'a {
        let arena = self.arena;
        self.ids.iter().map(move |&id| (id, &arena[id]))
    }
}

/// A scheduler instance bound to one service.
///
/// Besides the kernel's hooks, every variant is told about load changes
/// ([`Scheduler::on_load_change`]) so that it can keep its index current; the choice is always
/// the one the kernel's code would make on the same list.
#[derive(Clone, Debug)]
pub enum Scheduler {
    /// Round robin.
    Rr(Rr),
    /// Weighted round robin.
    Wrr(Wrr),
    /// lc, wlc, sed, nq, fo or ovf.
    Least(Least),
    /// Source hashing.
    Sh(Sh),
    /// Destination hashing.
    Dh(Dh),
    /// Locality-based least connection.
    Lblc(Lblc),
    /// Locality-based least connection with replication.
    Lblcr(Lblcr),
    /// Maglev hashing.
    Mh(Mh),
    /// Power of two choices.
    Twos(Twos),
    /// Latency-aware power of two choices.
    Pewma(Pewma),
}

impl Scheduler {
    /// Set the cache expiration of an lblc (`lblc`) or lblcr (`lblcr`) scheduler; others have
    /// none.
    pub fn set_expiration(&mut self, lblc: Duration, lblcr: Duration) {
        match self {
            Scheduler::Lblc(s) => s.expiration = lblc,
            Scheduler::Lblcr(s) => s.expiration = lblcr,
            _ => {}
        }
    }

    /// Set how long an mh scheduler keeps its previous table (`rvs_mh_grace`); others have
    /// none.
    pub fn set_mh_grace(&mut self, grace: Duration) {
        if let Scheduler::Mh(s) = self {
            s.set_grace(grace);
        }
    }

    /// Set a pewma scheduler's parameters (`rvs_pewma_*`, clamped to their bounds); others
    /// have none.
    pub fn set_pewma(&mut self, params: crate::latency::PewmaParams) {
        if let Scheduler::Pewma(s) = self {
            s.set_params(params);
        }
    }
}

impl Scheduler {
    /// `init_service`: bind a new scheduler of `kind` to a service whose destinations are `view`.
    pub fn new(
        kind: SchedKind,
        view: &DestView<'_>,
        flags: ServiceFlags,
        params: &SchedParams,
        now: Time,
    ) -> Result<Scheduler> {
        let _ = flags;
        let least = |m| Scheduler::Least(Least::new(m, view));
        Ok(match kind {
            SchedKind::Rr => Scheduler::Rr(Rr::new(view)),
            SchedKind::Wrr => Scheduler::Wrr(Wrr::new(view)),
            SchedKind::Lc => least(Metric::Lc),
            SchedKind::Wlc => least(Metric::Wlc),
            SchedKind::Sed => least(Metric::Sed),
            SchedKind::Nq => least(Metric::Nq),
            SchedKind::Fo => least(Metric::Fo),
            SchedKind::Ovf => least(Metric::Ovf),
            SchedKind::Sh => {
                // CONFIG_IP_VS_SH_TAB_BITS is limited to 4..=20 by Kconfig.
                if !(4..=20).contains(&params.sh_tab_bits) {
                    return Err(Error::Invalid("sh table bits must be 4..=20"));
                }
                Scheduler::Sh(Sh::new(view, params.sh_tab_bits))
            }
            SchedKind::Dh => Scheduler::Dh(Dh::new(view)),
            SchedKind::Lblc => Scheduler::Lblc(Lblc::new(view, now, params.lblc_expiration)),
            SchedKind::Lblcr => Scheduler::Lblcr(Lblcr::new(view, now, params.lblcr_expiration)),
            SchedKind::Mh => {
                let m = crate::table::mh_table_size(params.mh_tab_index)
                    .ok_or(Error::Invalid("mh table index must be 8..=17"))?;
                if view.len() > m as usize {
                    return Err(Error::Invalid("more destinations than mh table slots"));
                }
                Scheduler::Mh(Mh::new(
                    view,
                    m,
                    params.mh_tab_index,
                    Duration::from_secs(u64::from(params.mh_grace)),
                ))
            }
            SchedKind::Twos => Scheduler::Twos(Twos::new(view)),
            SchedKind::Pewma => Scheduler::Pewma(Pewma::new(view, params.pewma)),
        })
    }

    /// Which algorithm this is.
    pub fn kind(&self) -> SchedKind {
        match self {
            Scheduler::Rr(_) => SchedKind::Rr,
            Scheduler::Wrr(_) => SchedKind::Wrr,
            Scheduler::Least(l) => match l.metric() {
                Metric::Lc => SchedKind::Lc,
                Metric::Wlc => SchedKind::Wlc,
                Metric::Sed => SchedKind::Sed,
                Metric::Nq => SchedKind::Nq,
                Metric::Fo => SchedKind::Fo,
                Metric::Ovf => SchedKind::Ovf,
            },
            Scheduler::Sh(_) => SchedKind::Sh,
            Scheduler::Dh(_) => SchedKind::Dh,
            Scheduler::Lblc(_) => SchedKind::Lblc,
            Scheduler::Lblcr(_) => SchedKind::Lblcr,
            Scheduler::Mh(_) => SchedKind::Mh,
            Scheduler::Twos(_) => SchedKind::Twos,
            Scheduler::Pewma(_) => SchedKind::Pewma,
        }
    }

    /// Choose a destination for a new connection, or `None` ("no destination available").
    /// Never allocates, except that lblc/lblcr grow their cache like the kernel's `kmalloc`.
    pub fn schedule(
        &mut self,
        view: &DestView<'_>,
        flow: &Flow,
        flags: ServiceFlags,
        now: Time,
        rng: &mut dyn RandomSource,
    ) -> Option<DestId> {
        match self {
            Scheduler::Rr(s) => s.schedule(view),
            Scheduler::Wrr(s) => s.schedule(view),
            Scheduler::Least(s) => s.schedule(view),
            Scheduler::Sh(s) => s.schedule(view, flow, flags),
            Scheduler::Dh(s) => s.schedule(view, flow),
            Scheduler::Lblc(s) => s.schedule(view, &flow.daddr, now),
            Scheduler::Lblcr(s) => s.schedule(view, &flow.daddr, now),
            Scheduler::Mh(s) => s.schedule(view, flow, flags),
            Scheduler::Twos(s) => s.schedule(view, rng),
            Scheduler::Pewma(s) => s.schedule(view, now, rng),
        }
    }

    /// `add_dest`: `id` was just linked at the head of the list. Every list position moved, so
    /// the indexes are rebuilt (O(n), like the kernel's own table rebuilds).
    pub fn on_add_dest(&mut self, view: &DestView<'_>, flags: ServiceFlags, id: DestId) {
        let _ = (flags, id);
        match self {
            Scheduler::Rr(s) => s.on_add_dest(view),
            Scheduler::Wrr(s) => s.dest_changed(view),
            Scheduler::Least(s) => s.rebuild(view),
            Scheduler::Sh(s) => s.reassign(view),
            Scheduler::Dh(s) => s.reassign(view),
            // The kernel has no add hook for lblc/lblcr: only the wlc index moves.
            Scheduler::Lblc(s) => s.rebuild(view),
            Scheduler::Lblcr(s) => s.rebuild(view),
            Scheduler::Mh(s) => s.reassign(view),
            Scheduler::Twos(s) => s.rebuild(view),
            Scheduler::Pewma(s) => s.rebuild(view),
        }
    }

    /// `del_dest`: `id` was unlinked from list position `old_pos`.
    pub fn on_del_dest(
        &mut self,
        view: &DestView<'_>,
        flags: ServiceFlags,
        id: DestId,
        old_pos: usize,
    ) {
        let _ = flags;
        match self {
            Scheduler::Rr(s) => s.on_del_dest(view, id, old_pos),
            Scheduler::Wrr(s) => s.dest_changed(view),
            Scheduler::Least(s) => s.rebuild(view),
            Scheduler::Sh(s) => s.reassign(view),
            Scheduler::Dh(s) => s.reassign(view),
            // No kernel hook: stale cache entries are rejected lazily.
            Scheduler::Lblc(s) => s.rebuild(view),
            Scheduler::Lblcr(s) => s.rebuild(view),
            Scheduler::Mh(s) => s.reassign(view),
            Scheduler::Twos(s) => s.rebuild(view),
            Scheduler::Pewma(s) => s.rebuild(view),
        }
    }

    /// `upd_dest`: `id`'s configuration was edited.
    pub fn on_edit_dest(&mut self, view: &DestView<'_>, flags: ServiceFlags, id: DestId) {
        let _ = flags;
        match self {
            Scheduler::Rr(s) => s.on_change(view, id),
            Scheduler::Wrr(s) => s.dest_changed(view),
            Scheduler::Least(s) => s.on_change(view, id),
            Scheduler::Sh(s) => s.reassign(view),
            // dh has no upd hook (weights are not used), so its table stays as it was.
            Scheduler::Dh(_) => {}
            Scheduler::Lblc(s) => s.on_change(view, id),
            Scheduler::Lblcr(s) => s.on_change(view, id),
            Scheduler::Mh(s) => s.reassign(view),
            Scheduler::Twos(s) => s.on_change(view, id),
            Scheduler::Pewma(s) => s.on_change(view, id),
        }
    }

    /// `id`'s active/inactive counters or OVERLOAD flag changed (no kernel equivalent: keeps
    /// the indexes current in O(log n)).
    pub fn on_load_change(&mut self, view: &DestView<'_>, id: DestId) {
        match self {
            Scheduler::Rr(s) => s.on_change(view, id),
            Scheduler::Wrr(s) => s.on_load_change(view, id),
            Scheduler::Least(s) => s.on_change(view, id),
            Scheduler::Sh(s) => s.on_load_change(view, id),
            Scheduler::Dh(_) => {}
            Scheduler::Lblc(s) => s.on_change(view, id),
            Scheduler::Lblcr(s) => s.on_change(view, id),
            Scheduler::Mh(s) => s.on_load_change(view, id),
            Scheduler::Twos(s) => s.on_change(view, id),
            Scheduler::Pewma(s) => s.on_change(view, id),
        }
    }

    /// Whether [`Scheduler::tick`] has anything to do: lblc/lblcr with cache entries, mh
    /// keeping a previous table. Without, ticks may be skipped; call [`Scheduler::resume`]
    /// before the next use.
    pub fn needs_ticks(&self) -> bool {
        match self {
            Scheduler::Lblc(s) => s.needs_ticks(),
            Scheduler::Lblcr(s) => s.needs_ticks(),
            Scheduler::Mh(s) => s.keeps_previous(),
            _ => false,
        }
    }

    /// Catch up with the ticks skipped while [`Scheduler::needs_ticks`] was false.
    pub fn resume(&mut self, now: Time) {
        match self {
            Scheduler::Lblc(s) => s.resume(now),
            Scheduler::Lblcr(s) => s.resume(now),
            _ => {}
        }
    }

    /// Periodic housekeeping (lblc/lblcr cache garbage collection every 60 s, the end of mh's
    /// previous-table grace); call about once a second.
    pub fn tick(&mut self, now: Time) {
        match self {
            Scheduler::Lblc(s) => s.tick(now),
            Scheduler::Lblcr(s) => s.tick(now),
            Scheduler::Mh(s) => s.tick(now),
            _ => {}
        }
    }
}
