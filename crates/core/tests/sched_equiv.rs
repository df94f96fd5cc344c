//! The fast schedulers against naive references: literal transcriptions of the kernel's loops
//! (`ip_vs_<name>.c`) over the destination list, driven through the same random sequences of
//! add / edit / delete / load changes / schedules. Any difference in any choice fails.

mod sched_util;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use rvs_core::addr::fold;
use rvs_core::hash::{hash_32, hsiphash_1u32};
use rvs_core::sched::{DestView, Flow, RandomSource, SchedParams};
use rvs_core::{DestConfig, DestId, SchedKind, ServiceFlags, Time};
use sched_util::{flow, Lcg, Svc};

// ------------------------------------------------------------------ reference schedulers

/// A reference scheduler: kernel state + literal loops.
struct Reference {
    kind: SchedKind,
    /// rr `sched_data` / wrr `cl`: `None` is the list head.
    cursor: Option<DestId>,
    cw: i64,
    mw: i64,
    di: i64,
    /// sh / dh / mh tables.
    table: Vec<Option<DestId>>,
    /// lblc: daddr → (dest, lastuse).
    lblc: HashMap<IpAddr, (DestId, Time)>,
    /// lblcr: daddr → (set in kernel order, lastuse, lastmod).
    lblcr: HashMap<IpAddr, (Vec<DestId>, Time, Time)>,
    params: SchedParams,
}

fn overloaded(v: &DestView<'_>, i: usize) -> bool {
    v.at(i).overload
}
fn weight(v: &DestView<'_>, i: usize) -> i64 {
    i64::from(v.at(i).weight())
}
fn overhead(v: &DestView<'_>, i: usize) -> i64 {
    v.at(i).overhead() as i64
}
fn active(v: &DestView<'_>, i: usize) -> i64 {
    i64::from(v.at(i).active)
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Reference {
    fn new(kind: SchedKind, v: &DestView<'_>, params: SchedParams) -> Reference {
        let mut r = Reference {
            kind,
            cursor: None,
            cw: 0,
            mw: 0,
            di: 1,
            table: Vec::new(),
            lblc: HashMap::new(),
            lblcr: HashMap::new(),
            params,
        };
        match kind {
            SchedKind::Wrr => {
                r.di = Self::wrr_gcd(v);
                r.mw = Self::wrr_max(v) - (r.di - 1);
                r.cw = r.mw;
            }
            SchedKind::Sh => r.sh_reassign(v),
            SchedKind::Dh => r.dh_reassign(v),
            SchedKind::Mh => r.mh_reassign(v),
            _ => {}
        }
        r
    }

    fn pos(v: &DestView<'_>, id: DestId) -> Option<usize> {
        v.ids.iter().position(|&x| x == id)
    }

    // ---- hooks

    fn add_dest(&mut self, v: &DestView<'_>) {
        match self.kind {
            SchedKind::Wrr => self.wrr_changed(v),
            SchedKind::Sh => self.sh_reassign(v),
            SchedKind::Dh => self.dh_reassign(v),
            SchedKind::Mh => self.mh_reassign(v),
            _ => {}
        }
    }

    /// `ids_before` is the list before the unlink.
    fn del_dest(&mut self, v: &DestView<'_>, id: DestId, ids_before: &[DestId]) {
        match self.kind {
            SchedKind::Rr if self.cursor == Some(id) => {
                // p->next->prev: the predecessor in the old list, or the head.
                let p = ids_before.iter().position(|&x| x == id).unwrap();
                self.cursor = if p == 0 {
                    None
                } else {
                    Some(ids_before[p - 1])
                };
            }
            SchedKind::Wrr => self.wrr_changed(v),
            SchedKind::Sh => self.sh_reassign(v),
            SchedKind::Dh => self.dh_reassign(v),
            SchedKind::Mh => self.mh_reassign(v),
            _ => {}
        }
    }

    fn edit_dest(&mut self, v: &DestView<'_>) {
        match self.kind {
            SchedKind::Wrr => self.wrr_changed(v),
            SchedKind::Sh => self.sh_reassign(v),
            SchedKind::Mh => self.mh_reassign(v),
            _ => {}
        }
    }

    // ---- rr

    fn rr(&mut self, v: &DestView<'_>) -> Option<DestId> {
        let n = v.len();
        let last = self.cursor.and_then(|c| Self::pos(v, c));
        let mut dest = last; // None = head
        let mut pass = 0;
        loop {
            // list_for_each_entry_continue(dest, ...)
            let mut i = dest.map_or(0, |p| p + 1);
            while i < n {
                if !overloaded(v, i) && weight(v, i) > 0 {
                    self.cursor = Some(v.ids[i]);
                    return Some(v.ids[i]);
                }
                if Some(i) == last {
                    return None;
                }
                i += 1;
            }
            dest = None;
            pass += 1;
            if !(pass < 2 && last.is_some()) {
                return None;
            }
        }
    }

    // ---- wrr

    fn wrr_gcd(v: &DestView<'_>) -> i64 {
        let mut g = 0;
        for i in 0..v.len() {
            let w = weight(v, i);
            if w > 0 {
                g = if g > 0 { gcd(w, g) } else { w };
            }
        }
        if g != 0 {
            g
        } else {
            1
        }
    }

    fn wrr_max(v: &DestView<'_>) -> i64 {
        (0..v.len()).map(|i| weight(v, i)).fold(0, i64::max)
    }

    fn wrr_changed(&mut self, v: &DestView<'_>) {
        self.cursor = None;
        self.di = Self::wrr_gcd(v);
        self.mw = Self::wrr_max(v) - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    fn wrr(&mut self, v: &DestView<'_>) -> Option<DestId> {
        let n = v.len();
        let mut dest: Option<usize> = self.cursor.and_then(|c| Self::pos(v, c));
        if self.mw == 0 {
            self.cursor = dest.map(|p| v.ids[p]);
            return None;
        }
        let last = dest;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            let mut i = dest.map_or(0, |p| p + 1);
            while i < n {
                if !overloaded(v, i) && weight(v, i) >= self.cw {
                    self.cursor = Some(v.ids[i]);
                    return self.cursor;
                }
                if Some(i) == stop {
                    self.cursor = Some(v.ids[i]);
                    return None;
                }
                i += 1;
            }
            dest = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cursor = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }

    // ---- lc wlc sed nq fo ovf

    fn lc(v: &DestView<'_>) -> Option<DestId> {
        let mut least: Option<usize> = None;
        let mut loh = 0;
        for i in 0..v.len() {
            if overloaded(v, i) || weight(v, i) == 0 {
                continue;
            }
            let doh = overhead(v, i);
            if least.is_none() || doh < loh {
                least = Some(i);
                loh = doh;
            }
        }
        least.map(|i| v.ids[i])
    }

    /// wlc with the cost function `oh` (wlc: overhead; sed: active + 1).
    fn wlc_like(v: &DestView<'_>, oh: impl Fn(&DestView<'_>, usize) -> i64) -> Option<DestId> {
        let n = v.len();
        let mut i = 0;
        let mut least = None;
        while i < n {
            if !overloaded(v, i) && weight(v, i) > 0 {
                least = Some(i);
                break;
            }
            i += 1;
        }
        let mut l = least?;
        let mut loh = oh(v, l);
        for j in l + 1..n {
            if overloaded(v, j) {
                continue;
            }
            let doh = oh(v, j);
            if loh * weight(v, j) > doh * weight(v, l) {
                l = j;
                loh = doh;
            }
        }
        Some(v.ids[l])
    }

    fn nq(v: &DestView<'_>) -> Option<DestId> {
        let mut least: Option<usize> = None;
        let mut loh = 0;
        for i in 0..v.len() {
            if overloaded(v, i) || weight(v, i) == 0 {
                continue;
            }
            let doh = active(v, i) + 1;
            if active(v, i) == 0 {
                return Some(v.ids[i]);
            }
            if least.is_none_or(|l| loh * weight(v, i) > doh * weight(v, l)) {
                least = Some(i);
                loh = doh;
            }
        }
        least.map(|i| v.ids[i])
    }

    fn fo(v: &DestView<'_>) -> Option<DestId> {
        let mut h = None;
        let mut hw = 0;
        for i in 0..v.len() {
            if !overloaded(v, i) && weight(v, i) > hw {
                h = Some(i);
                hw = weight(v, i);
            }
        }
        h.map(|i| v.ids[i])
    }

    fn ovf(v: &DestView<'_>) -> Option<DestId> {
        let mut h: Option<usize> = None;
        for i in 0..v.len() {
            let w = weight(v, i);
            if overloaded(v, i) || active(v, i) > w || w == 0 {
                continue;
            }
            if h.is_none_or(|h| w > weight(v, h)) {
                h = Some(i);
            }
        }
        h.map(|i| v.ids[i])
    }

    // ---- twos

    fn twos(v: &DestView<'_>, rng: &mut dyn RandomSource) -> Option<DestId> {
        let mut total: i64 = 0;
        let mut any = false;
        for i in 0..v.len() {
            if !overloaded(v, i) && weight(v, i) > 0 {
                total += weight(v, i);
                any = true;
            }
        }
        if !any {
            return None;
        }
        total += 1;
        let mut r1 = i64::from(rng.below(total as u32));
        let mut r2 = i64::from(rng.below(total as u32));
        let (mut c1, mut c2) = (None, None);
        let (mut w1, mut w2, mut o1, mut o2) = (-1i64, -1i64, 0i64, 0i64);
        for i in 0..v.len() {
            if overloaded(v, i) {
                continue;
            }
            let w = weight(v, i);
            if w <= 0 {
                continue;
            }
            r1 -= w;
            r2 -= w;
            if r1 <= 0 && w1 == -1 {
                c1 = Some(i);
                w1 = w;
                o1 = overhead(v, i);
            }
            if r2 <= 0 && w2 == -1 {
                c2 = Some(i);
                w2 = w;
                o2 = overhead(v, i);
            }
            if w1 != -1 && w2 != -1 {
                break;
            }
        }
        let mut c = c1;
        if c2.is_some() && w2 * o1 > w1 * o2 {
            c = c2;
        }
        c.map(|i| v.ids[i])
    }

    // ---- sh

    fn sh_size(&self) -> usize {
        1 << self.params.sh_tab_bits
    }

    fn sh_reassign(&mut self, v: &DestView<'_>) {
        let size = self.sh_size();
        self.table = vec![None; size];
        let n = v.len();
        // p walks the list; "p == head → p = p->next".
        let mut p: Option<usize> = None;
        let mut d_count = 0;
        for b in 0..size {
            if n == 0 {
                continue;
            }
            let cur = p.unwrap_or(0);
            self.table[b] = Some(v.ids[cur]);
            d_count += 1;
            if d_count >= weight(v, cur) {
                p = if cur + 1 < n { Some(cur + 1) } else { None };
                d_count = 0;
            } else {
                p = Some(cur);
            }
        }
    }

    fn sh_hashkey(&self, addr: &IpAddr, port: u16, offset: u32) -> usize {
        let bits = u32::from(self.params.sh_tab_bits);
        let h = hash_32(u32::from(port).wrapping_add(fold(addr)), bits);
        (offset.wrapping_add(h) & ((1 << bits) - 1)) as usize
    }

    fn unavailable(v: &DestView<'_>, id: DestId) -> bool {
        let d = &v.arena[id];
        d.weight() == 0 || d.overload
    }

    fn hash_input(f: &Flow, with_port: bool) -> (IpAddr, u16) {
        let addr = if f.inverse { f.daddr } else { f.saddr };
        let port = if with_port && f.proto.is_some() {
            if f.inverse {
                f.dport
            } else {
                f.sport
            }
        } else {
            0
        };
        (addr, port)
    }

    fn sh(&self, v: &DestView<'_>, f: &Flow, flags: ServiceFlags) -> Option<DestId> {
        let (addr, port) = Self::hash_input(f, flags.has(ServiceFlags::SH_PORT));
        let ih = self.sh_hashkey(&addr, port, 0);
        let dest = self.table[ih];
        if !flags.has(ServiceFlags::SH_FALLBACK) {
            return dest.filter(|&d| !Self::unavailable(v, d));
        }
        let d = dest?;
        if !Self::unavailable(v, d) {
            return Some(d);
        }
        let size = self.sh_size() as u32;
        for offset in 0..size {
            let roffset = (offset + ih as u32) % size;
            let h = self.sh_hashkey(&addr, port, roffset);
            let d = self.table[h]?;
            if !Self::unavailable(v, d) {
                return Some(d);
            }
        }
        None
    }

    // ---- dh

    fn dh_reassign(&mut self, v: &DestView<'_>) {
        self.table = vec![None; 256];
        let n = v.len();
        let mut p = 0;
        for b in 0..256 {
            if n == 0 {
                continue;
            }
            self.table[b] = Some(v.ids[p]);
            p = (p + 1) % n;
        }
    }

    fn dh(&self, v: &DestView<'_>, f: &Flow) -> Option<DestId> {
        let d = self.table[hash_32(fold(&f.daddr), 8) as usize]?;
        let dd = &v.arena[d];
        if !dd.available || dd.weight() == 0 || dd.overload {
            return None;
        }
        Some(d)
    }

    // ---- mh

    fn mh_m(&self) -> u32 {
        rvs_core::table::mh_table_size(self.params.mh_tab_index).unwrap()
    }

    fn mh_hashkey(addr: &IpAddr, port: u16, key: u64, offset: u32) -> u32 {
        let v = offset
            .wrapping_add(u32::from(port))
            .wrapping_add(fold(addr));
        hsiphash_1u32(v, key)
    }

    fn mh_reassign(&mut self, v: &DestView<'_>) {
        let m = self.mh_m();
        let mut g = 0i64;
        let mut mxw = 0i64;
        for (_, d) in v.iter() {
            let w = i64::from(d.last_weight);
            if w > 0 {
                g = if g > 0 { gcd(w, g) } else { w };
            }
            mxw = mxw.max(w);
        }
        if g < 1 {
            self.table = vec![None; m as usize];
            return;
        }
        let bits = i64::from(self.params.mh_tab_index / 2);
        let fls = 64 - i64::from(((mxw / g) as u64).leading_zeros());
        let rshift = (fls - bits).max(0);
        struct Ds {
            skip: u32,
            perm: u32,
            turns: i64,
        }
        let mut ds: Vec<Ds> = v
            .iter()
            .map(|(_, d)| {
                let offset = Self::mh_hashkey(&d.cfg.addr, d.cfg.port, 2_654_435_761, 0) % m;
                let skip =
                    Self::mh_hashkey(&d.cfg.addr, d.cfg.port, 2_654_446_892, 0) % (m - 1) + 1;
                let lw = i64::from(d.last_weight);
                let t = (lw / g) >> rshift;
                Ds {
                    skip,
                    perm: offset,
                    turns: if t != 0 { t } else { i64::from(lw != 0) },
                }
            })
            .collect();
        let mut taken = vec![false; m as usize];
        if self.table.len() != m as usize {
            self.table = vec![None; m as usize];
        }
        let n_dests = v.len();
        let mut n = 0u32;
        let mut dt_count = 0i64;
        // p = &svc->destinations (None = head), as in ip_vs_mh_populate.
        let mut p: Option<usize> = None;
        'out: while n < m {
            if p.is_none() {
                p = if n_dests > 0 { Some(0) } else { None };
            }
            let mut k = 0usize;
            while let Some(pi) = p {
                if ds[k].turns < 1 {
                    p = if pi + 1 < n_dests { Some(pi + 1) } else { None };
                    k += 1;
                    continue;
                }
                let mut c = ds[k].perm;
                while taken[c as usize] {
                    ds[k].perm += ds[k].skip;
                    if ds[k].perm >= m {
                        ds[k].perm -= m;
                    }
                    c = ds[k].perm;
                }
                taken[c as usize] = true;
                self.table[c as usize] = Some(v.ids[pi]);
                n += 1;
                if n == m {
                    break 'out;
                }
                dt_count += 1;
                if dt_count >= ds[k].turns {
                    dt_count = 0;
                    p = if pi + 1 < n_dests { Some(pi + 1) } else { None };
                    k += 1;
                }
            }
        }
    }

    fn mh(&self, v: &DestView<'_>, f: &Flow, flags: ServiceFlags) -> Option<DestId> {
        let (addr, port) = Self::hash_input(f, flags.has(ServiceFlags::MH_PORT));
        let m = self.mh_m();
        let ih = Self::mh_hashkey(&addr, port, 2_654_435_761, 0) % m;
        let dest = self.table[ih as usize];
        if !flags.has(ServiceFlags::MH_FALLBACK) {
            return dest.filter(|&d| !Self::unavailable(v, d));
        }
        let d = dest?;
        if !Self::unavailable(v, d) {
            return Some(d);
        }
        for offset in 0..m {
            let roffset = (offset + ih) % m;
            let h = Self::mh_hashkey(&addr, port, 2_654_435_761, roffset) % m;
            let d = self.table[h as usize]?;
            if !Self::unavailable(v, d) {
                return Some(d);
            }
        }
        None
    }

    // ---- lblc / lblcr

    fn lblc_overloaded(v: &DestView<'_>, id: DestId) -> bool {
        let d = &v.arena[id];
        if i64::from(d.active) > i64::from(d.weight()) {
            for (_, e) in v.iter() {
                if i64::from(e.active) * 2 < i64::from(e.weight()) {
                    return true;
                }
            }
        }
        false
    }

    fn lblc(&mut self, v: &DestView<'_>, f: &Flow, now: Time) -> Option<DestId> {
        if let Some(en) = self.lblc.get_mut(&f.daddr) {
            en.1 = now;
            let d = &v.arena[en.0];
            if d.available && d.weight() > 0 && !Self::lblc_overloaded(v, en.0) {
                return Some(en.0);
            }
        }
        let dest = Self::wlc_like(v, overhead)?;
        self.lblc.insert(f.daddr, (dest, now));
        Some(dest)
    }

    fn set_min(v: &DestView<'_>, set: &[DestId]) -> Option<DestId> {
        let mut it = set.iter();
        let mut least = None;
        for &e in it.by_ref() {
            let d = &v.arena[e];
            if d.overload {
                continue;
            }
            if d.weight() > 0 && d.available {
                least = Some(e);
                break;
            }
        }
        let mut l = least?;
        let mut loh = v.arena[l].overhead() as i64;
        for &e in it {
            let d = &v.arena[e];
            if d.overload {
                continue;
            }
            let doh = d.overhead() as i64;
            if loh * i64::from(d.weight()) > doh * i64::from(v.arena[l].weight()) && d.available {
                l = e;
                loh = doh;
            }
        }
        Some(l)
    }

    fn set_max(v: &DestView<'_>, set: &[DestId]) -> Option<DestId> {
        let mut it = set.iter();
        let mut most = None;
        for &e in it.by_ref() {
            if v.arena[e].weight() > 0 {
                most = Some(e);
                break;
            }
        }
        let mut m = most?;
        let mut moh = v.arena[m].overhead() as i64;
        for &e in it {
            let d = &v.arena[e];
            let doh = d.overhead() as i64;
            if moh * i64::from(d.weight()) < doh * i64::from(v.arena[m].weight()) && d.weight() > 0
            {
                m = e;
                moh = doh;
            }
        }
        Some(m)
    }

    fn lblcr(&mut self, v: &DestView<'_>, f: &Flow, now: Time) -> Option<DestId> {
        let exp = Time::from_secs(u64::from(self.params.lblcr_expiration)).0;
        if let Some(en) = self.lblcr.get_mut(&f.daddr) {
            en.1 = now;
            let dest = Self::set_min(v, &en.0);
            if en.0.len() > 1 && now.0 > en.2 .0 + exp {
                if let Some(m) = Self::set_max(v, &en.0) {
                    let i = en.0.iter().position(|&x| x == m).unwrap();
                    en.0.remove(i);
                    en.2 = now;
                }
            }
            if let Some(d) = dest {
                if !Self::lblc_overloaded(v, d) {
                    return Some(d);
                }
            }
            let d = Self::wlc_like(v, overhead)?;
            if !en.0.contains(&d) {
                en.0.insert(0, d);
                en.2 = now;
            }
            return Some(d);
        }
        let d = Self::wlc_like(v, overhead)?;
        self.lblcr.insert(f.daddr, (vec![d], now, now));
        Some(d)
    }

    fn schedule(
        &mut self,
        v: &DestView<'_>,
        f: &Flow,
        flags: ServiceFlags,
        now: Time,
        rng: &mut dyn RandomSource,
    ) -> Option<DestId> {
        match self.kind {
            SchedKind::Rr => self.rr(v),
            SchedKind::Wrr => self.wrr(v),
            SchedKind::Lc => Self::lc(v),
            SchedKind::Wlc => Self::wlc_like(v, overhead),
            SchedKind::Sed => Self::wlc_like(v, |v, i| active(v, i) + 1),
            SchedKind::Nq => Self::nq(v),
            SchedKind::Fo => Self::fo(v),
            SchedKind::Ovf => Self::ovf(v),
            SchedKind::Twos => Self::twos(v, rng),
            SchedKind::Sh => self.sh(v, f, flags),
            SchedKind::Dh => self.dh(v, f),
            SchedKind::Mh => self.mh(v, f, flags),
            SchedKind::Lblc => self.lblc(v, f, now),
            SchedKind::Lblcr => self.lblcr(v, f, now),
            // rvs's own scheduler has no kernel code to compare with (tests/pewma.rs).
            SchedKind::Pewma => None,
        }
    }
}

// ------------------------------------------------------------------ random operations

#[derive(Clone, Debug)]
enum Op {
    Add { i: u8, w: u32, u: u32, l: u32 },
    Edit { k: usize, w: u32, u: u32, l: u32 },
    Del { k: usize },
    Bind { k: usize, active: bool, n: u32 },
    Unbind { k: usize, active: bool, n: u32 },
    Move { k: usize, to_active: bool },
    Sched { src: u8, sport: u16, dst: u8, n: u8 },
    Advance { secs: u64 },
}

fn weight_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..5,
        Just(6u32),
        Just(8),
        Just(12),
        Just(100),
        1000u32..2000
    ]
}

fn op_strategy(addrs: u8) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..addrs, weight_strategy(), 0u32..6, 0u32..4)
            .prop_map(|(i, w, u, l)| Op::Add { i, w, u, l }),
        2 => (any::<usize>(), weight_strategy(), 0u32..6, 0u32..4)
            .prop_map(|(k, w, u, l)| Op::Edit { k, w, u, l }),
        1 => any::<usize>().prop_map(|k| Op::Del { k }),
        4 => (any::<usize>(), any::<bool>(), 1u32..4)
            .prop_map(|(k, active, n)| Op::Bind { k, active, n }),
        3 => (any::<usize>(), any::<bool>(), 1u32..4)
            .prop_map(|(k, active, n)| Op::Unbind { k, active, n }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(k, to_active)| Op::Move { k, to_active }),
        6 => (0u8..20, 1000u16..1010, 0u8..6, 1u8..4)
            .prop_map(|(src, sport, dst, n)| Op::Sched { src, sport, dst, n }),
        1 => (0u64..40).prop_map(|secs| Op::Advance { secs }),
    ]
}

/// Run `ops` against the real table and the reference; every choice must agree.
fn check(kind: SchedKind, flags: u32, ops: &[Op]) -> Result<(), TestCaseError> {
    let params = SchedParams {
        mh_tab_index: 8,
        lblcr_expiration: 30,
        ..SchedParams::default()
    };
    let mut s = Svc::with(kind, flags, params);
    let mut reference = Reference::new(kind, &s.table.view(s.id).unwrap(), params);
    let mut ref_rng = Lcg(s.rng.0);
    let sflags = ServiceFlags(flags);
    let dests = |s: &Svc| s.table.service(s.id).unwrap().dests.clone();
    for op in ops {
        match *op {
            Op::Add { i, w, u, l } => {
                let cfg = DestConfig::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, i)), 80)
                    .weight(w)
                    .thresholds(u, l.min(u));
                if s.table.add_dest(&s.key, cfg, s.now).is_ok() {
                    reference.add_dest(&s.table.view(s.id).unwrap());
                }
            }
            Op::Edit { k, w, u, l } => {
                let list = dests(&s);
                if list.is_empty() {
                    continue;
                }
                let id = list[k % list.len()];
                let mut cfg = s.table.dests[id].cfg;
                cfg.weight = w;
                cfg.u_threshold = u;
                cfg.l_threshold = l.min(u);
                s.table.edit_dest(&s.key, cfg).unwrap();
                reference.edit_dest(&s.table.view(s.id).unwrap());
            }
            Op::Del { k } => {
                let list = dests(&s);
                if list.is_empty() {
                    continue;
                }
                let id = list[k % list.len()];
                s.del(id);
                reference.del_dest(&s.table.view(s.id).unwrap(), id, &list);
            }
            Op::Bind { k, active, n } => {
                let list = dests(&s);
                if !list.is_empty() {
                    s.bind(list[k % list.len()], n, active);
                }
            }
            Op::Unbind { k, active, n } => {
                let list = dests(&s);
                if !list.is_empty() {
                    s.unbind(list[k % list.len()], n, active);
                }
            }
            Op::Move { k, to_active } => {
                let list = dests(&s);
                if list.is_empty() {
                    continue;
                }
                let id = list[k % list.len()];
                let d = &mut s.table.dests[id];
                let has = if to_active {
                    d.inactive > 0
                } else {
                    d.active > 0
                };
                if has {
                    d.move_conn(to_active);
                    s.table.load_changed(id);
                }
            }
            Op::Sched { src, sport, dst, n } => {
                let f: Flow = flow(
                    IpAddr::V4(Ipv4Addr::new(198, 51, 100, src)),
                    sport,
                    IpAddr::V4(Ipv4Addr::new(203, 0, 113, dst)),
                );
                for _ in 0..n {
                    let got = s.schedule(&f);
                    let want = reference.schedule(
                        &s.table.view(s.id).unwrap(),
                        &f,
                        sflags,
                        s.now,
                        &mut ref_rng,
                    );
                    prop_assert_eq!(got, want, "{:?} flags {} op {:?}", kind, flags, op);
                }
            }
            Op::Advance { secs } => {
                s.now = s.now + rvs_core::Duration::from_secs(secs);
            }
        }
    }
    Ok(())
}

/// Up to 10 distinct destinations: lots of delete/re-add from the trash.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op_strategy(10), 1..80)
}

/// Up to 60 distinct destinations: deeper indexes.
fn many_ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op_strategy(60), 40..200)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn rr_matches_kernel_loop(ops in ops()) { check(SchedKind::Rr, 0, &ops)?; }
    #[test]
    fn wrr_matches_kernel_loop(ops in ops()) { check(SchedKind::Wrr, 0, &ops)?; }
    #[test]
    fn lc_matches_kernel_loop(ops in ops()) { check(SchedKind::Lc, 0, &ops)?; }
    #[test]
    fn wlc_matches_kernel_loop(ops in ops()) { check(SchedKind::Wlc, 0, &ops)?; }
    #[test]
    fn sed_matches_kernel_loop(ops in ops()) { check(SchedKind::Sed, 0, &ops)?; }
    #[test]
    fn nq_matches_kernel_loop(ops in ops()) { check(SchedKind::Nq, 0, &ops)?; }
    #[test]
    fn fo_matches_kernel_loop(ops in ops()) { check(SchedKind::Fo, 0, &ops)?; }
    #[test]
    fn ovf_matches_kernel_loop(ops in ops()) { check(SchedKind::Ovf, 0, &ops)?; }
    #[test]
    fn twos_matches_kernel_loop(ops in ops()) { check(SchedKind::Twos, 0, &ops)?; }
    #[test]
    fn lblc_matches_kernel_loop(ops in ops()) { check(SchedKind::Lblc, 0, &ops)?; }
    #[test]
    fn lblcr_matches_kernel_loop(ops in ops()) { check(SchedKind::Lblcr, 0, &ops)?; }
    #[test]
    fn dh_matches_kernel_loop(ops in ops()) { check(SchedKind::Dh, 0, &ops)?; }
    #[test]
    fn sh_matches_kernel_loop(ops in ops(), flags in 0u32..4) {
        check(SchedKind::Sh, flags << 3, &ops)?;
    }
    #[test]
    fn mh_matches_kernel_loop(ops in ops(), flags in 0u32..4) {
        check(SchedKind::Mh, flags << 3, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn every_scheduler_matches_with_many_dests(ops in many_ops(), flags in 0u32..4) {
        for kind in SchedKind::ALL {
            let f = match kind {
                SchedKind::Sh | SchedKind::Mh => flags << 3,
                _ => 0,
            };
            check(kind, f, &ops)?;
        }
    }
}

/// wrr with huge weights and the heaviest destination overloaded: the fast version skips the
/// empty passes arithmetically; the literal loop walks them all. Same answers.
#[test]
fn wrr_huge_weights_match_the_literal_loop() {
    for weights in [
        vec![65535u32, 1, 30000],
        vec![1_000_000, 999_999, 7],
        vec![65534, 2, 4, 65534],
    ] {
        let mut s = Svc::new(SchedKind::Wrr);
        let params = SchedParams::default();
        let mut reference = Reference::new(SchedKind::Wrr, &s.table.view(s.id).unwrap(), params);
        let mut ids = Vec::new();
        for (i, &w) in weights.iter().enumerate() {
            let cfg = DestConfig::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, i as u8)), 80)
                .weight(w)
                .thresholds(1, 0);
            ids.push(s.add_cfg(cfg));
            reference.add_dest(&s.table.view(s.id).unwrap());
        }
        let f = flow(
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
            1,
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)),
        );
        let mut rng = Lcg(1);
        for round in 0..60 {
            // Overload and release destinations as we go.
            let d = ids[round % ids.len()];
            if round % 3 == 0 {
                s.bind(d, 1, true);
            } else if round % 3 == 2 {
                s.unbind(d, 1, true);
            }
            let got = s.schedule(&f);
            let want = reference.schedule(
                &s.table.view(s.id).unwrap(),
                &f,
                ServiceFlags(0),
                s.now,
                &mut rng,
            );
            assert_eq!(got, want, "{weights:?} round {round}");
        }
    }
}
