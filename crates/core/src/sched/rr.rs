//! rr — round robin (docs/internals/schedulers.md#rr--round-robin).

use crate::dest::{Dest, DestId};
use crate::sched::index::MaxTree;
use crate::sched::DestView;

/// Cursor into the destination list (`None` is the list head), plus an index of eligible
/// positions so that the walk to the next eligible destination is O(log n) instead of the
/// kernel's O(n) when many destinations are quiesced or overloaded.
#[derive(Clone, Debug, Default)]
pub struct Rr {
    cursor: Option<DestId>,
    /// 1 at every eligible position, 0 elsewhere.
    eligible: MaxTree,
}

fn val(d: &Dest) -> u64 {
    u64::from(d.eligible())
}

impl Rr {
    pub(crate) fn new(view: &DestView<'_>) -> Rr {
        let mut r = Rr::default();
        r.rebuild(view);
        r
    }

    fn rebuild(&mut self, view: &DestView<'_>) {
        self.eligible
            .rebuild(view.len(), |p| view.get(p).map_or(0, val));
    }

    pub(crate) fn schedule(&mut self, view: &DestView<'_>) -> Option<DestId> {
        if view.is_empty() {
            return None;
        }
        // The kernel walks from the element after the cursor, wraps over the head once and
        // ends with the cursor element itself; from the head it does one pass. Both amount to
        // "first eligible at or after start, else first eligible before start".
        let start = self
            .cursor
            .and_then(|c| view.pos_of(c))
            .map_or(0, |p| p + 1);
        let pos = self
            .eligible
            .first_at_least(start, 1)
            .or_else(|| self.eligible.first_at_least(0, 1))?;
        let id = *view.ids.get(pos)?;
        self.cursor = Some(id);
        Some(id)
    }

    pub(crate) fn on_add_dest(&mut self, view: &DestView<'_>) {
        // The kernel has no add hook: the new head is reached at the next wrap.
        self.rebuild(view);
    }

    pub(crate) fn on_del_dest(&mut self, view: &DestView<'_>, id: DestId, old_pos: usize) {
        if self.cursor == Some(id) {
            // The cursor moves to the removed destination's predecessor (the head if it was
            // first): `p->next->prev` in `ip_vs_rr_del_dest`.
            self.cursor = if old_pos == 0 {
                None
            } else {
                view.ids.get(old_pos - 1).copied()
            };
        }
        self.rebuild(view);
    }

    pub(crate) fn on_change(&mut self, view: &DestView<'_>, id: DestId) {
        if let Some(p) = view.pos_of(id) {
            self.eligible.update(p, view.get(p).map_or(0, val));
        }
    }
}
