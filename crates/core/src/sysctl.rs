//! The IPVS sysctls (`/proc/sys/net/ipv4/vs/*`): one table of every name the kernel registers,
//! with its default, the kernel's write validation, and what rvs does with it.
//!
//! Why one table: the daemon's `--sysctl`, the control socket, `rvsadm --sysctl`, the metrics
//! and the subsystems that honour a value all read the same [`TABLE`] and the same
//! [`SysctlSet`], so a name is never accepted by one path and unknown to another. A value is
//! validated exactly as the kernel's `proc_handler` validates a write (ranges, power of two,
//! `sync_threshold`'s pair rule, the defence modes 0..3), and an entry rvs does not act on yet
//! is [`Effect::NotYet`]: it is listed with a note and setting it answers with a warning,
//! never silently. A subsystem that starts honouring an entry changes that entry's effect to
//! [`Effect::Acts`] here and reads the value from the daemon's one [`SysctlSet`]; the
//! connection-sync engine gets the `sync_*` values as [`SysctlSet::sync_params`] (a daemon
//! takes the values in force when it starts, the packet path's thresholds change at once).
//!
//! Semantics of each value: `docs/internals/sysctls.md`.

use std::fmt;

use crate::director::Director;
use crate::time::Duration;

/// How a value is written and checked (the kernel's `proc_handler`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `proc_dointvec`: any `int`.
    Int,
    /// `proc_dointvec_minmax` and the handlers that range-check one `int` (inclusive bounds):
    /// `proc_do_defense_mode` is 0..=3, `sync_version` 0..=1, `sync_retries` 0..=3,
    /// `est_nice` -20..=19.
    Range(i64, i64),
    /// `proc_do_sync_ports`: an `int` ≥ 1 that is a power of two.
    PowerOfTwo,
    /// `proc_doulongvec_minmax` without bounds: an `unsigned long`.
    ULong,
    /// `proc_dointvec_jiffies`: seconds, an `int` ≥ 0 that fits `INT_MAX / HZ` (HZ = 1000 at
    /// worst, so 2147483).
    Seconds,
    /// `proc_do_sync_threshold`: two `int`s, both ≥ 0, and the first below the second unless
    /// the second is 0.
    SyncThreshold,
    /// `ipvs_proc_est_cpulist`: a CPU list (`0-3,6`), possibly empty.
    CpuList,
}

/// What rvs does with an entry.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// rvs applies it as the kernel does.
    Acts,
    /// Accepted, stored, listed and exported, but nothing in rvs reads it yet; setting it
    /// answers with a warning naming why. The text says why.
    NotYet(&'static str),
    /// Shown but not writable (a write is refused as the kernel refuses a write to a 0444
    /// sysctl, `EACCES`). The text says why.
    ReadOnly(&'static str),
}

/// One sysctl.
#[derive(Copy, Clone, Debug)]
pub struct Def {
    /// Name under `net.ipv4.vs.`.
    pub name: &'static str,
    /// Write rule.
    pub kind: Kind,
    /// Default value as the kernel prints it (`sync_qlen_max` and `est_cpulist` depend on the
    /// machine: see [`MachineDefaults`]).
    pub default: &'static str,
    /// What rvs does with it.
    pub effect: Effect,
}

const EST_NOTE: &str = "rvs runs the rate estimator in the daemon's ticker, not in kernel threads";

/// Every sysctl of `/proc/sys/net/ipv4/vs/`, in the kernel's registration order, followed by
/// those of the lblc/lblcr modules, then rvs's own (named `rvs_*`): `rvs_mh_grace` keeps mh's
/// previous table for mid-stream packets after a real-server change (docs/scale-out.md),
/// `rvs_conn_max` bounds the connection table (docs/internals/sysctls.md), `rvs_syn_proxy`
/// answers TCP SYNs to NAT and full-NAT services with SYN cookies (docs/internals/syn-flood.md),
/// and `rvs_pewma_*` are the latency-aware scheduler's parameters
/// ([`crate::latency::PewmaParams`], whose bounds the ranges here repeat; the cross rule
/// floor ≤ unmeasured ≤ ceiling is checked by [`SysctlSet::set`]).
pub const TABLE: &[Def] = &[
    def("amemthresh", Kind::Int, "1024", Effect::Acts),
    def("am_droprate", Kind::Int, "10", Effect::Acts),
    def("drop_entry", Kind::Range(0, 3), "0", Effect::Acts),
    def("drop_packet", Kind::Range(0, 3), "0", Effect::Acts),
    def(
        "conntrack",
        Kind::Int,
        "0",
        Effect::ReadOnly("rvs keeps no netfilter conntrack entries for its connections"),
    ),
    def("secure_tcp", Kind::Range(0, 3), "0", Effect::Acts),
    def(
        "snat_reroute",
        Kind::Int,
        "1",
        Effect::NotYet(
            "the packet plane routes NAT replies itself; there is no netfilter re-route",
        ),
    ),
    def("sync_version", Kind::Range(0, 1), "1", Effect::Acts),
    def("sync_ports", Kind::PowerOfTwo, "1", Effect::Acts),
    def("sync_persist_mode", Kind::Int, "0", Effect::Acts),
    def("sync_qlen_max", Kind::ULong, "", Effect::Acts),
    def("sync_sock_size", Kind::Int, "0", Effect::Acts),
    def("cache_bypass", Kind::Int, "0", Effect::Acts),
    def("expire_nodest_conn", Kind::Int, "0", Effect::Acts),
    def("sloppy_tcp", Kind::Int, "0", Effect::Acts),
    def("sloppy_sctp", Kind::Int, "0", Effect::Acts),
    def("expire_quiescent_template", Kind::Int, "0", Effect::Acts),
    def("sync_threshold", Kind::SyncThreshold, "3 50", Effect::Acts),
    def("sync_refresh_period", Kind::Seconds, "0", Effect::Acts),
    def("sync_retries", Kind::Range(0, 3), "0", Effect::Acts),
    def(
        "nat_icmp_send",
        Kind::Int,
        "0",
        Effect::NotYet("the packet plane does not answer stray real-server packets with ICMP yet"),
    ),
    def("pmtu_disc", Kind::Int, "1", Effect::Acts),
    def("backup_only", Kind::Int, "0", Effect::Acts),
    def("conn_reuse_mode", Kind::Int, "1", Effect::Acts),
    def(
        "schedule_icmp",
        Kind::Int,
        "0",
        Effect::NotYet("the packet plane never schedules a connection from an ICMP error yet"),
    ),
    def(
        "ignore_tunneled",
        Kind::Int,
        "0",
        Effect::NotYet("the packet plane passes unknown protocols to the host unmarked"),
    ),
    def("run_estimation", Kind::Int, "1", Effect::Acts),
    def("est_cpulist", Kind::CpuList, "", Effect::NotYet(EST_NOTE)),
    def(
        "est_nice",
        Kind::Range(-20, 19),
        "0",
        Effect::NotYet(EST_NOTE),
    ),
    def(
        "debug_level",
        Kind::Int,
        "0",
        Effect::ReadOnly("kernel debug output (CONFIG_IP_VS_DEBUG); rvs logs through RUST_LOG"),
    ),
    def("lblc_expiration", Kind::Seconds, "86400", Effect::Acts),
    def("lblcr_expiration", Kind::Seconds, "86400", Effect::Acts),
    // rvs additions (no kernel counterpart; the `rvs_` prefix says so).
    def("rvs_mh_grace", Kind::Seconds, "0", Effect::Acts),
    // Machine-dependent default: see [`conn_max_default`].
    def(
        "rvs_conn_max",
        Kind::Range(1, 0x7fff_ffff),
        "1048576",
        Effect::Acts,
    ),
    def("rvs_syn_proxy", Kind::Range(0, 1), "0", Effect::Acts),
    def(
        "rvs_pewma_decay_ms",
        Kind::Range(100, 60_000),
        "2000",
        Effect::Acts,
    ),
    def(
        "rvs_pewma_floor_us",
        Kind::Range(1, 1_000_000),
        "50",
        Effect::Acts,
    ),
    def(
        "rvs_pewma_ceiling_us",
        Kind::Range(1, 60_000_000),
        "10000000",
        Effect::Acts,
    ),
    def(
        "rvs_pewma_unmeasured_us",
        Kind::Range(1, 60_000_000),
        "1000",
        Effect::Acts,
    ),
    def(
        "rvs_pewma_explore",
        Kind::Range(2, 65_536),
        "64",
        Effect::Acts,
    ),
];

/// The default `rvs_conn_max` for `free_buffer_pages` pages of memory: a quarter of it at
/// 256 bytes an entry (what an entry costs with its index slots and the slab's growth slack,
/// measured at about 245 B under a SYN flood), i.e. one entry per 1 KiB, and at least 65 536.
pub fn conn_max_default(free_buffer_pages: u64) -> i64 {
    (free_buffer_pages.saturating_mul(4)).clamp(65_536, 0x7fff_ffff) as i64
}

const fn def(name: &'static str, kind: Kind, default: &'static str, effect: Effect) -> Def {
    Def {
        name,
        kind,
        default,
        effect,
    }
}

/// The entry named `name`.
pub fn lookup(name: &str) -> Option<(usize, &'static Def)> {
    TABLE.iter().enumerate().find(|(_, d)| d.name == name)
}

/// The machine-dependent defaults.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MachineDefaults {
    /// `nr_free_buffer_pages()`: `sync_qlen_max` defaults to a 32nd of it.
    pub free_buffer_pages: u64,
    /// Number of CPUs: `est_cpulist` defaults to all of them.
    pub cpus: u32,
}

/// A sysctl value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// One integer (`int` or `unsigned long`).
    Int(i64),
    /// `sync_threshold`: threshold and period.
    Pair(i64, i64),
    /// `est_cpulist`, normalised (`0-3,6`).
    Text(String),
}

impl fmt::Display for Value {
    /// As `sysctl -n` prints it (`sync_threshold` tab-separated as `proc_dointvec` does).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Pair(a, b) => write!(f, "{a}\t{b}"),
            Value::Text(t) => f.write_str(t),
        }
    }
}

/// Why a write was refused, errno style.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SysctlError {
    /// No such sysctl (`ENOENT`).
    Unknown(String),
    /// The value does not pass the kernel's check (`EINVAL`, or `ERANGE` for a CPU beyond the
    /// machine's).
    Invalid {
        /// The sysctl.
        name: &'static str,
        /// The refused text.
        value: String,
        /// What the kernel requires.
        why: String,
    },
    /// A read-only entry (`EACCES`).
    ReadOnly {
        /// The sysctl.
        name: &'static str,
        /// Why rvs does not let it be written.
        why: &'static str,
    },
}

impl fmt::Display for SysctlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysctlError::Unknown(n) => write!(f, "net.ipv4.vs.{n}: no such sysctl"),
            SysctlError::Invalid { name, value, why } => {
                write!(f, "net.ipv4.vs.{name}: invalid value {value:?}: {why}")
            }
            SysctlError::ReadOnly { name, why } => {
                write!(f, "net.ipv4.vs.{name}: read-only in rvs: {why}")
            }
        }
    }
}

impl std::error::Error for SysctlError {}

/// The current value of every entry of [`TABLE`], in table order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysctlSet {
    values: Vec<Value>,
}

impl SysctlSet {
    /// The kernel's defaults on a machine described by `m`.
    pub fn new(m: MachineDefaults) -> SysctlSet {
        let values = TABLE
            .iter()
            .map(|d| match d.name {
                "sync_qlen_max" => {
                    Value::Int((m.free_buffer_pages / 32).min(i64::MAX as u64) as i64)
                }
                "rvs_conn_max" => Value::Int(conn_max_default(m.free_buffer_pages)),
                "est_cpulist" => Value::Text(match m.cpus {
                    0 | 1 => "0".to_string(),
                    n => format!("0-{}", n - 1),
                }),
                _ => parse(d, d.default, u32::MAX).unwrap_or(Value::Int(0)),
            })
            .collect();
        SysctlSet { values }
    }

    /// Every entry with its value, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static Def, &Value)> {
        TABLE.iter().zip(self.values.iter())
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        lookup(name).map(|(i, _)| &self.values[i])
    }

    /// The integer value of `name` (0 for a name that is not an integer entry).
    pub fn int(&self, name: &str) -> i64 {
        match self.get(name) {
            Some(Value::Int(v)) => *v,
            _ => 0,
        }
    }

    /// The pair value of `name` (`sync_threshold`).
    pub fn pair(&self, name: &str) -> Option<(i64, i64)> {
        match self.get(name) {
            Some(Value::Pair(a, b)) => Some((*a, *b)),
            _ => None,
        }
    }

    /// Validate and store `text` as the value of `name` (`cpus`: the machine's CPU count, for
    /// `est_cpulist`). Returns the entry, so the caller can apply it and warn for
    /// [`Effect::NotYet`].
    pub fn set(&mut self, name: &str, text: &str, cpus: u32) -> Result<&'static Def, SysctlError> {
        let (i, d) = lookup(name).ok_or_else(|| SysctlError::Unknown(name.to_string()))?;
        if let Effect::ReadOnly(why) = d.effect {
            return Err(SysctlError::ReadOnly { name: d.name, why });
        }
        let v = parse(d, text, cpus)?;
        let old = std::mem::replace(&mut self.values[i], v);
        if d.name.starts_with("rvs_pewma_") {
            let p = self.pewma_params();
            if !(p.floor_us <= p.unmeasured_us && p.unmeasured_us <= p.ceiling_us) {
                self.values[i] = old;
                return Err(SysctlError::Invalid {
                    name: d.name,
                    value: text.to_string(),
                    why: format!(
                        "rvs_pewma_floor_us ≤ rvs_pewma_unmeasured_us ≤ rvs_pewma_ceiling_us \
                         must hold (now {} ≤ {} ≤ {} would not)",
                        p.floor_us, p.unmeasured_us, p.ceiling_us
                    ),
                });
            }
        }
        Ok(d)
    }

    /// The `rvs_pewma_*` values as the latency-aware scheduler's parameters.
    pub fn pewma_params(&self) -> crate::latency::PewmaParams {
        let u = |n: &str| self.int(n).clamp(0, i64::from(u32::MAX)) as u32;
        crate::latency::PewmaParams {
            decay_ms: u("rvs_pewma_decay_ms"),
            floor_us: u("rvs_pewma_floor_us"),
            ceiling_us: u("rvs_pewma_ceiling_us"),
            unmeasured_us: u("rvs_pewma_unmeasured_us"),
            explore: u("rvs_pewma_explore"),
        }
    }

    /// The `sync_*` and `backup_only` values as the connection-sync engine reads them (the
    /// one way it should: this table owns the names, defaults and checks).
    pub fn sync_params(&self) -> crate::sync::SyncParams {
        let u = |n: &str| self.int(n).clamp(0, i64::from(u32::MAX)) as u32;
        let (threshold, period) = self.pair("sync_threshold").unwrap_or((3, 50));
        crate::sync::SyncParams {
            version: u("sync_version") as u8,
            threshold: threshold.clamp(0, i64::from(u32::MAX)) as u32,
            period: period.clamp(0, i64::from(u32::MAX)) as u32,
            refresh_period_secs: u("sync_refresh_period"),
            retries: u("sync_retries"),
            persist_mode: self.int("sync_persist_mode") != 0,
            qlen_max: u("sync_qlen_max"),
            sock_size: u("sync_sock_size"),
            backup_only: self.int("backup_only") != 0,
            ports: u("sync_ports").clamp(1, 64),
        }
    }

    /// Apply every entry that the director model reads (a new director, e.g. a new shard).
    pub fn apply_all(&self, d: &mut Director) {
        for def in TABLE {
            self.apply(def.name, d);
        }
    }

    /// Apply entry `name` to director `d`, where the core owns its behaviour. Entries owned by
    /// a data plane (`pmtu_disc`) or not acted on are ignored here.
    pub fn apply(&self, name: &str, d: &mut Director) {
        let v = self.int(name);
        let on = v != 0;
        // The defence modes keep their automatic state (1 ↔ 2) until written.
        let mode = crate::defense::Mode(v.clamp(0, 3) as u8);
        match name {
            "amemthresh" => d.defense.amemthresh = v.max(0) as u64,
            "am_droprate" => d.defense.am_droprate = v.clamp(0, i64::from(u32::MAX)) as u32,
            "drop_entry" => d.defense.drop_entry = mode,
            "drop_packet" => d.defense.drop_packet = mode,
            "secure_tcp" => d.defense.secure_tcp = mode,
            "cache_bypass" => d.sys.cache_bypass = on,
            "expire_nodest_conn" => d.sys.conn.expire_nodest_conn = on,
            "sloppy_tcp" => d.sys.conn.sloppy_tcp = on,
            "sloppy_sctp" => d.sys.conn.sloppy_sctp = on,
            "expire_quiescent_template" => d.sys.expire_quiescent_template = on,
            // The kernel tests the bits of the int as written.
            "conn_reuse_mode" => d.sys.conn.conn_reuse_mode = v as i32 as u32,
            "run_estimation" => d.sys.run_estimation = on,
            // Read by the packet path only while a master sync daemon runs.
            n if n.starts_with("sync_") || n == "backup_only" => d.sync.params = self.sync_params(),
            "rvs_mh_grace" => d.table.set_mh_grace(Duration::from_secs(v.max(0) as u64)),
            "rvs_conn_max" => d
                .conns
                .set_max_entries(v.clamp(1, i64::from(i32::MAX)) as usize),
            "rvs_syn_proxy" => d.sys.syn_proxy = on,
            n if n.starts_with("rvs_pewma_") => d.table.set_pewma(self.pewma_params()),
            "lblc_expiration" | "lblcr_expiration" => {
                let lblc = Duration::from_secs(self.int("lblc_expiration").max(0) as u64);
                let lblcr = Duration::from_secs(self.int("lblcr_expiration").max(0) as u64);
                d.table.set_lblc_expiration(lblc, lblcr);
            }
            _ => {}
        }
    }
}

/// Parse and check a written value as the kernel's handler for `d` does.
fn parse(d: &'static Def, text: &str, cpus: u32) -> Result<Value, SysctlError> {
    let bad = |why: &str| SysctlError::Invalid {
        name: d.name,
        value: text.to_string(),
        why: why.to_string(),
    };
    let t = text.trim();
    let int = |s: &str| -> Result<i64, SysctlError> {
        s.parse::<i64>()
            .ok()
            .filter(|v| i32::try_from(*v).is_ok())
            .ok_or_else(|| bad("not an integer that fits an int"))
    };
    Ok(match d.kind {
        Kind::Int => Value::Int(int(t)?),
        Kind::Range(lo, hi) => {
            let v = int(t)?;
            if v < lo || v > hi {
                return Err(bad(&format!("must be {lo}..{hi}")));
            }
            Value::Int(v)
        }
        Kind::PowerOfTwo => {
            let v = int(t)?;
            if v < 1 || (v & (v - 1)) != 0 {
                return Err(bad("must be a power of two, at least 1"));
            }
            Value::Int(v)
        }
        Kind::ULong => Value::Int(
            t.parse::<u64>()
                .ok()
                .and_then(|v| i64::try_from(v).ok())
                .ok_or_else(|| bad("not an unsigned integer"))?,
        ),
        Kind::Seconds => {
            let v = int(t)?;
            if !(0..=2_147_483).contains(&v) {
                return Err(bad("must be 0..2147483 seconds"));
            }
            Value::Int(v)
        }
        Kind::SyncThreshold => {
            let mut it = t
                .split(|c: char| c.is_whitespace())
                .filter(|s| !s.is_empty());
            let (Some(a), Some(b), None) = (it.next(), it.next(), it.next()) else {
                return Err(bad("two integers are needed: threshold and period"));
            };
            let (a, b) = (int(a)?, int(b)?);
            if a < 0 || b < 0 || (a >= b && b != 0) {
                return Err(bad(
                    "both must be at least 0 and the threshold below the period (or period 0)",
                ));
            }
            Value::Pair(a, b)
        }
        Kind::CpuList => Value::Text(cpulist(t, cpus).map_err(|w| bad(&w))?),
    })
}

/// Parse a CPU list (`cpulist_parse`: `N`, `N-M`, `N-M:S/G`, comma-separated; empty allowed)
/// and print it normalised as `%*pbl` does.
fn cpulist(t: &str, cpus: u32) -> Result<String, String> {
    let mut set = vec![false; cpus.min(4096) as usize];
    if !t.is_empty() {
        for part in t.split(',') {
            let (range, stride) = match part.split_once(':') {
                Some((r, s)) => {
                    let (used, group) = s.split_once('/').ok_or("a stride is USED/GROUP")?;
                    let used: u32 = used.parse().map_err(|_| "bad stride")?;
                    let group: u32 = group.parse().map_err(|_| "bad stride")?;
                    if used == 0 || group == 0 || used > group {
                        return Err("bad stride".into());
                    }
                    (r, Some((used, group)))
                }
                None => (part, None),
            };
            let (a, b) = match range.split_once('-') {
                Some((a, b)) => (a, b),
                None => (range, range),
            };
            let a: u32 = a.trim().parse().map_err(|_| format!("bad CPU {a:?}"))?;
            let b: u32 = b.trim().parse().map_err(|_| format!("bad CPU {b:?}"))?;
            if a > b {
                return Err(format!("bad range {range:?}"));
            }
            if b as usize >= set.len() {
                return Err(format!("CPU {b} is beyond this machine's {cpus}"));
            }
            for c in a..=b {
                let keep = stride.is_none_or(|(u, g)| (c - a) % g < u);
                if keep {
                    set[c as usize] = true;
                }
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < set.len() {
        if set[i] {
            let s = i;
            while i + 1 < set.len() && set[i + 1] {
                i += 1;
            }
            out.push(if s == i {
                s.to_string()
            } else {
                format!("{s}-{i}")
            });
        }
        i += 1;
    }
    Ok(out.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::HashSeed;
    use crate::time::Time;

    const M: MachineDefaults = MachineDefaults {
        free_buffer_pages: 32_000,
        cpus: 4,
    };

    #[test]
    fn defaults_are_the_kernels() {
        let s = SysctlSet::new(M);
        assert_eq!(s.int("conn_reuse_mode"), 1);
        assert_eq!(s.int("amemthresh"), 1024);
        assert_eq!(s.int("sync_qlen_max"), 1000);
        // A quarter of 32 000 pages at 256 B an entry; never below 65 536.
        assert_eq!(s.int("rvs_conn_max"), 128_000);
        assert_eq!(conn_max_default(1000), 65_536);
        assert_eq!(conn_max_default(4 << 20), 16 << 20);
        assert_eq!(s.pair("sync_threshold"), Some((3, 50)));
        assert_eq!(s.get("est_cpulist"), Some(&Value::Text("0-3".into())));
        assert_eq!(s.get("sync_threshold").unwrap().to_string(), "3\t50");
        // Names are unique.
        for (i, d) in TABLE.iter().enumerate() {
            assert_eq!(lookup(d.name).unwrap().0, i, "{}", d.name);
        }
        // The kernel's 32, then rvs's own, each named `rvs_*`.
        assert_eq!(TABLE.len(), 40);
        assert!(TABLE[32..].iter().all(|d| d.name.starts_with("rvs_")));
        assert!(TABLE[..32].iter().all(|d| !d.name.starts_with("rvs_")));
    }

    #[test]
    fn writes_are_validated_as_the_kernel_does() {
        let mut s = SysctlSet::new(M);
        let bad = |s: &mut SysctlSet, n: &str, v: &str| {
            assert!(
                matches!(s.set(n, v, 4), Err(SysctlError::Invalid { .. })),
                "{n}={v} accepted"
            );
        };
        bad(&mut s, "drop_entry", "4");
        bad(&mut s, "secure_tcp", "-1");
        bad(&mut s, "sync_version", "2");
        bad(&mut s, "sync_ports", "3");
        bad(&mut s, "sync_ports", "0");
        bad(&mut s, "sync_retries", "4");
        bad(&mut s, "est_nice", "20");
        bad(&mut s, "sync_threshold", "50 50");
        bad(&mut s, "sync_threshold", "3");
        bad(&mut s, "sync_threshold", "-1 0");
        bad(&mut s, "sloppy_tcp", "yes");
        bad(&mut s, "sloppy_tcp", "4294967296");
        bad(&mut s, "lblc_expiration", "-1");
        bad(&mut s, "est_cpulist", "0-9");
        bad(&mut s, "est_cpulist", "3-1");
        // Unchanged after the refusals.
        assert_eq!(s, SysctlSet::new(M));
        s.set("sync_threshold", "5 0", 4).unwrap();
        assert_eq!(s.pair("sync_threshold"), Some((5, 0)));
        s.set("sync_ports", "8", 4).unwrap();
        s.set("est_nice", "-20", 4).unwrap();
        s.set("sloppy_tcp", " 7\n", 4).unwrap();
        assert_eq!(s.int("sloppy_tcp"), 7);
        s.set("est_cpulist", "3,0-1", 4).unwrap();
        assert_eq!(s.get("est_cpulist"), Some(&Value::Text("0-1,3".into())));
        s.set("est_cpulist", "0-3:1/2", 4).unwrap();
        assert_eq!(s.get("est_cpulist"), Some(&Value::Text("0,2".into())));
        s.set("est_cpulist", "", 4).unwrap();
        assert_eq!(s.get("est_cpulist"), Some(&Value::Text(String::new())));
        assert!(matches!(
            s.set("conntrack", "0", 4),
            Err(SysctlError::ReadOnly { .. })
        ));
        assert!(matches!(
            s.set("no_such", "0", 4),
            Err(SysctlError::Unknown(_))
        ));
    }

    #[test]
    fn acting_entries_reach_the_director() {
        let mut s = SysctlSet::new(M);
        let mut d = Director::new(HashSeed([1, 2, 3, 4]), Time::from_secs(0));
        for (n, v) in [
            ("sloppy_tcp", "1"),
            ("sloppy_sctp", "1"),
            ("conn_reuse_mode", "2"),
            ("expire_nodest_conn", "1"),
            ("expire_quiescent_template", "1"),
            ("cache_bypass", "1"),
            ("secure_tcp", "3"),
            ("drop_entry", "1"),
            ("drop_packet", "3"),
            ("amemthresh", "2048"),
            ("am_droprate", "20"),
            ("run_estimation", "0"),
            ("lblc_expiration", "60"),
            ("rvs_conn_max", "5000"),
            ("rvs_syn_proxy", "1"),
        ] {
            let def = s.set(n, v, 4).unwrap();
            assert_eq!(def.effect, Effect::Acts, "{n}");
            s.apply(n, &mut d);
        }
        assert!(d.sys.conn.sloppy_tcp && d.sys.conn.sloppy_sctp);
        assert_eq!(d.sys.conn.conn_reuse_mode, 2);
        assert!(d.sys.conn.expire_nodest_conn);
        assert!(d.sys.expire_quiescent_template && d.sys.cache_bypass);
        assert!(!d.sys.run_estimation);
        assert_eq!(d.defense.secure_tcp, crate::defense::Mode(3));
        assert_eq!(d.defense.drop_entry, crate::defense::Mode(1));
        assert_eq!(d.defense.drop_packet, crate::defense::Mode(3));
        assert_eq!((d.defense.amemthresh, d.defense.am_droprate), (2048, 20));
        assert_eq!(d.table.params.lblc_expiration, 60);
        assert_eq!(d.conns.max_entries(), 5000);
        assert!(d.sys.syn_proxy);
        // A fresh director gets everything at once.
        let mut d2 = Director::new(HashSeed([1, 2, 3, 4]), Time::from_secs(0));
        s.apply_all(&mut d2);
        assert!(d2.sys.conn.sloppy_tcp && !d2.sys.run_estimation);
        assert_eq!(d2.table.params.lblc_expiration, 60);
        assert_eq!(d2.conns.max_entries(), 5000);
    }

    #[test]
    fn sync_params_come_from_the_table() {
        let mut s = SysctlSet::new(M);
        let d = s.sync_params();
        assert_eq!(
            (d.version, d.threshold, d.period, d.qlen_max),
            (1, 3, 50, 1000)
        );
        s.set("sync_version", "0", 4).unwrap();
        s.set("sync_threshold", "10 100", 4).unwrap();
        s.set("sync_retries", "2", 4).unwrap();
        s.set("backup_only", "1", 4).unwrap();
        let p = s.sync_params();
        assert_eq!(
            (p.version, p.threshold, p.period, p.retries),
            (0, 10, 100, 2)
        );
        assert!(p.backup_only && !p.persist_mode);
        let mut d = Director::new(HashSeed([1, 2, 3, 4]), Time::from_secs(0));
        s.apply("sync_threshold", &mut d);
        assert_eq!(d.sync.params, p);
    }

    #[test]
    fn pewma_parameters_are_bounded_and_reach_the_schedulers() {
        let mut s = SysctlSet::new(M);
        assert_eq!(s.pewma_params(), crate::latency::PewmaParams::default());
        for (n, v) in [
            ("rvs_pewma_decay_ms", "99"),
            ("rvs_pewma_decay_ms", "60001"),
            ("rvs_pewma_floor_us", "0"),
            ("rvs_pewma_ceiling_us", "60000001"),
            ("rvs_pewma_explore", "1"),
            ("rvs_pewma_explore", "65537"),
            // Cross rule: the unmeasured value between floor and ceiling.
            ("rvs_pewma_unmeasured_us", "20"),
            ("rvs_pewma_floor_us", "2000"),
            ("rvs_pewma_ceiling_us", "999"),
        ] {
            let e = s.set(n, v, 4).unwrap_err();
            assert!(matches!(e, SysctlError::Invalid { .. }), "{n}={v}: {e}");
        }
        // A refused write leaves the previous value.
        assert_eq!(s.pewma_params(), crate::latency::PewmaParams::default());
        let mut d = Director::new(HashSeed([1, 2, 3, 4]), Time::from_secs(0));
        for (n, v) in [
            ("rvs_pewma_decay_ms", "500"),
            ("rvs_pewma_floor_us", "100"),
            ("rvs_pewma_ceiling_us", "2000000"),
            ("rvs_pewma_unmeasured_us", "5000"),
            ("rvs_pewma_explore", "16"),
        ] {
            assert_eq!(s.set(n, v, 4).unwrap().effect, Effect::Acts);
            s.apply(n, &mut d);
        }
        let want = crate::latency::PewmaParams {
            decay_ms: 500,
            floor_us: 100,
            ceiling_us: 2_000_000,
            unmeasured_us: 5000,
            explore: 16,
        };
        assert_eq!(s.pewma_params(), want);
        assert_eq!(d.table.params.pewma, want);
    }

    #[test]
    fn every_entry_that_is_not_acted_on_says_why() {
        for d in TABLE {
            match d.effect {
                Effect::NotYet(w) | Effect::ReadOnly(w) => assert!(!w.is_empty(), "{}", d.name),
                Effect::Acts => {}
            }
        }
    }
}
