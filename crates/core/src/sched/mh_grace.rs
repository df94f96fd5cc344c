//! mh's previous table (an rvs addition, the `rvs_mh_grace` sysctl; docs/scale-out.md).
//!
//! Why: behind an ECMP router every director runs the same `mh` table, so a flow that the
//! router moves to another director (a director lost, added or stopped) is looked up there and
//! lands on the real server it already uses. A real-server change (add, delete, weight) rebuilds
//! the table and moves some slots; a flow that then moves to another director is looked up in
//! the *new* table and, for the moved slots, reaches a real server that does not know it (RST).
//! The kernel has nothing for this. Like GLB's second chance, the director keeps the table that
//! was in force before the last change for a grace period, and a packet that does not start a
//! connection (`Flow::midstream`: taken with `sloppy_tcp`/`sloppy_sctp`) is sent where that
//! table pointed: such a flow most likely started before the change. A SYN always uses the
//! current table.
//!
//! The price: a flow that *started* after the change and moves to another director during the
//! grace period is sent to its pre-change real server and breaks. Without a real server that
//! forwards unknown flows onwards (GLB's redirect module), a director cannot tell the two apart;
//! the grace should be just long enough to cover a director change that follows a real-server
//! change (the period in which both can happen). Only the most recent previous table is kept.

use std::net::IpAddr;

use crate::dest::DestId;
use crate::sched::DestView;
use crate::time::{Duration, Time};

/// Which destination each id of a table stood for, so that an id freed and reused by another
/// destination is never followed.
pub(crate) type Members = Vec<(DestId, IpAddr, u16)>;

/// The members of `view` (one entry per linked destination, in list order).
pub(crate) fn members(view: &DestView<'_>, into: &mut Members) {
    into.clear();
    into.extend(view.iter().map(|(id, d)| (id, d.cfg.addr, d.cfg.port)));
}

#[derive(Clone, Debug)]
struct Previous {
    lookup: Vec<Option<DestId>>,
    members: Members,
    /// Start of the grace: the first [`PreviousTable::tick`] after the change (at most a tick
    /// later than the change itself); `None` until then, which counts as within the grace.
    since: Option<Time>,
}

/// The table before the last change, while its grace lasts.
#[derive(Clone, Debug, Default)]
pub(crate) struct PreviousTable {
    grace: Duration,
    previous: Option<Box<Previous>>,
}

impl PreviousTable {
    pub(crate) fn new(grace: Duration) -> PreviousTable {
        PreviousTable {
            grace,
            previous: None,
        }
    }

    /// Whether a change should hand over the outgoing table (grace on).
    pub(crate) fn wanted(&self) -> bool {
        self.grace > Duration::ZERO
    }

    /// A new grace length; 0 forgets the kept table at once.
    pub(crate) fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
        if !self.wanted() {
            self.previous = None;
        }
    }

    /// The table was rebuilt from `old` (with `old_members`) to `new`. A rebuild that changed
    /// nothing (an edit that leaves the table as it was) keeps the table already kept, and an
    /// empty old table (the first build, or a service that had no usable weight) is not kept.
    pub(crate) fn changed(
        &mut self,
        old: Vec<Option<DestId>>,
        old_members: Members,
        new: &[Option<DestId>],
    ) {
        if !self.wanted() || old.as_slice() == new || old.iter().all(Option::is_none) {
            return;
        }
        self.previous = Some(Box::new(Previous {
            lookup: old,
            members: old_members,
            since: None,
        }));
    }

    /// Start the grace of a freshly kept table, or forget it once the grace is over.
    pub(crate) fn tick(&mut self, now: Time) {
        let Some(p) = self.previous.as_mut() else {
            return;
        };
        match p.since {
            None => p.since = Some(now),
            Some(s) if now.saturating_since(s) >= self.grace => self.previous = None,
            Some(_) => {}
        }
    }

    /// Where the kept table sends slot `slot`, if a table is kept, that slot had a destination,
    /// and that destination is still the same one, linked into this service and `usable`.
    pub(crate) fn choose(
        &self,
        slot: u32,
        view: &DestView<'_>,
        usable: impl Fn(DestId) -> bool,
    ) -> Option<DestId> {
        let p = self.previous.as_deref()?;
        let id = (*p.lookup.get(slot as usize)?)?;
        let &(_, addr, port) = p.members.iter().find(|m| m.0 == id)?;
        let d = view.arena.get(id)?;
        let same = d.cfg.addr == addr && d.cfg.port == port;
        (same && view.pos_of(id).is_some() && usable(id)).then_some(id)
    }

    /// Whether a previous table is kept now (for tests and inspection).
    pub(crate) fn is_kept(&self) -> bool {
        self.previous.is_some()
    }
}
