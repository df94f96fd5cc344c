//! rr — round robin (§2.1).

use crate::dest::DestId;
use crate::sched::DestView;

/// Cursor into the destination list: `None` is the list head.
#[derive(Clone, Debug, Default)]
pub struct Rr {
    cursor: Option<DestId>,
}

impl Rr {
    pub(crate) fn schedule(&mut self, view: &DestView<'_>) -> Option<DestId> {
        let n = view.len();
        if n == 0 {
            return None;
        }
        // Walk from the element after the cursor, wrapping over the head once, ending with the
        // cursor element itself; from the head, one pass over the list.
        let start = match self.cursor.and_then(|c| view.arena.get(c)) {
            Some(d) if d.available => d.list_pos() + 1,
            _ => 0,
        };
        let count = n;
        for i in 0..count {
            let pos = (start + i) % n;
            let d = view.at(pos);
            if d.eligible() {
                let id = view.ids[pos];
                self.cursor = Some(id);
                return Some(id);
            }
        }
        None
    }

    pub(crate) fn on_del_dest(&mut self, view: &DestView<'_>, id: DestId, old_pos: usize) {
        if self.cursor == Some(id) {
            // The cursor moves to the removed destination's predecessor (the head if it was first).
            self.cursor = if old_pos == 0 {
                None
            } else {
                Some(view.ids[old_pos - 1])
            };
        }
    }
}
