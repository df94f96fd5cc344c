//! The kernel's memory-pressure defences (docs/internals/sysctls.md#memory-pressure-defences: `drop_entry`, `drop_packet`, `secure_tcp`), as
//! pure functions the data planes apply. `update_defense_level` runs once per second with the
//! available memory the caller measured.

/// One defence sysctl: 0 off, 1/2 automatic (2 = currently active), 3 always on.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Mode(pub u8);

impl Mode {
    /// Advance the automatic modes: 1 → 2 under memory pressure, 2 → 1 when it is over.
    /// Returns whether the defence is active now.
    fn step(&mut self, nomem: bool) -> bool {
        match self.0 {
            1 if nomem => {
                self.0 = 2;
                true
            }
            2 if !nomem => {
                self.0 = 1;
                false
            }
            2 => true,
            3 => true,
            _ => false,
        }
    }
}

/// Defence settings and state of one director.
#[derive(Clone, Debug)]
pub struct Defense {
    /// `amemthresh`, in pages (default 1024).
    pub amemthresh: u64,
    /// `am_droprate` (default 10).
    pub am_droprate: u32,
    /// `drop_entry` mode.
    pub drop_entry: Mode,
    /// `drop_packet` mode.
    pub drop_packet: Mode,
    /// `secure_tcp` mode.
    pub secure_tcp: Mode,
    drop_entry_active: bool,
    secure_tcp_active: bool,
    drop_rate: u32,
    drop_counter: u32,
    entry_counters: [u8; 9],
}

impl Default for Defense {
    fn default() -> Self {
        Defense {
            amemthresh: 1024,
            am_droprate: 10,
            drop_entry: Mode(0),
            drop_packet: Mode(0),
            secure_tcp: Mode(0),
            drop_entry_active: false,
            secure_tcp_active: false,
            drop_rate: 0,
            drop_counter: 0,
            entry_counters: [0; 9],
        }
    }
}

impl Defense {
    /// `update_defense_level`: call once per second with the available memory in pages
    /// (free + buffers, as the kernel counts it).
    pub fn update(&mut self, available_pages: u64) {
        let nomem = available_pages < self.amemthresh;
        self.drop_entry_active = self.drop_entry.step(nomem);
        let drop_packet_active = self.drop_packet.step(nomem);
        self.drop_rate = match self.drop_packet.0 {
            3 => self.am_droprate,
            _ if drop_packet_active => {
                // amemthresh / (amemthresh - available), at least 1 so that it means something.
                let gap = self.amemthresh.saturating_sub(available_pages).max(1);
                (self.amemthresh / gap).clamp(1, u64::from(u32::MAX)) as u32
            }
            _ => 0,
        };
        if self.drop_rate != 0 && self.drop_packet.0 != 3 {
            self.drop_counter = self.drop_rate;
        }
        self.secure_tcp_active = self.secure_tcp.step(nomem);
    }

    /// Whether the random entry dropping pass should run this second.
    pub fn drop_entry_active(&self) -> bool {
        self.drop_entry_active
    }

    /// Whether TCP connections use the secure_tcp state table.
    pub fn secure_tcp_active(&self) -> bool {
        self.secure_tcp_active
    }

    /// `ip_vs_todrop`: whether to drop this new-connection packet (1 of every `drop_rate`).
    pub fn todrop_packet(&mut self) -> bool {
        if self.drop_rate == 0 {
            return false;
        }
        self.drop_counter = self.drop_counter.saturating_sub(1);
        if self.drop_counter > 0 {
            return false;
        }
        self.drop_counter = self.drop_rate;
        true
    }

    /// The rate rule of `todrop_entry` for an ESTABLISHED/UDP candidate: only entries idle for
    /// at least 60 s whose `in_pkts` is 1..=8; with `in_pkts = i`, every i-th candidate is
    /// dropped (separate counter per i).
    pub fn todrop_entry(&mut self, in_pkts: u32, idle_secs: u64) -> bool {
        if idle_secs < 60 || in_pkts > 8 || in_pkts == 0 {
            return false;
        }
        let i = in_pkts as usize;
        // The kernel's counters start at 0 and are signed: the first candidate of each class
        // is dropped, then every i-th.
        if self.entry_counters[i] > 1 {
            self.entry_counters[i] -= 1;
            return false;
        }
        self.entry_counters[i] = i as u8;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_mode_follows_memory() {
        let mut d = Defense {
            drop_entry: Mode(1),
            secure_tcp: Mode(1),
            ..Defense::default()
        };
        d.update(5000);
        assert!(!d.drop_entry_active() && !d.secure_tcp_active());
        assert_eq!(d.drop_entry, Mode(1));
        d.update(100);
        assert!(d.drop_entry_active() && d.secure_tcp_active());
        assert_eq!(d.drop_entry, Mode(2));
        d.update(2000);
        assert!(!d.drop_entry_active());
        assert_eq!(d.drop_entry, Mode(1));
    }

    #[test]
    fn mode_3_is_always_on_and_0_never() {
        let mut d = Defense {
            drop_entry: Mode(3),
            ..Defense::default()
        };
        d.update(1 << 30);
        assert!(d.drop_entry_active());
        assert!(!d.secure_tcp_active());
    }

    #[test]
    fn drop_packet_rate_automatic() {
        // amemthresh 1024, available 768 → rate 1024/256 = 4: every 4th packet dropped.
        let mut d = Defense {
            drop_packet: Mode(1),
            ..Defense::default()
        };
        d.update(768);
        let drops: Vec<bool> = (0..8).map(|_| d.todrop_packet()).collect();
        assert_eq!(
            drops,
            [false, false, false, true, false, false, false, true]
        );
        d.update(4096);
        assert!(!(0..10).any(|_| d.todrop_packet()));
    }

    #[test]
    fn drop_packet_mode_3_uses_am_droprate() {
        let mut d = Defense {
            drop_packet: Mode(3),
            am_droprate: 2,
            ..Defense::default()
        };
        d.update(1 << 30);
        let n = (0..10).filter(|_| d.todrop_packet()).count();
        assert_eq!(n, 5);
    }

    #[test]
    fn entry_rate_rule() {
        let mut d = Defense::default();
        assert!(!d.todrop_entry(1, 59), "younger than 60 s is kept");
        assert!(!d.todrop_entry(0, 100));
        assert!(!d.todrop_entry(9, 100));
        // in_pkts 1: every candidate.
        assert!(d.todrop_entry(1, 60));
        assert!(d.todrop_entry(1, 60));
        // in_pkts 3: first, then every third.
        let v: Vec<bool> = (0..7).map(|_| d.todrop_entry(3, 60)).collect();
        assert_eq!(v, [true, false, false, true, false, false, true]);
    }
}
