//! A fixed delay on the packets a namespace sends toward one network, for tests that need a
//! slow path (the latency-aware scheduler's SYN → SYN-ACK samples).
//!
//! # Why it exists
//!
//! The usual tool, `tc qdisc … netem delay`, needs the kernel's `sch_netem`, which the kernels
//! these labs run on do not have. The lab does the delay in userspace instead, with a TUN
//! device, as the [`crate::decap`] module does for tunnels.
//!
//! # How it works
//!
//! Inside the namespace it creates a TUN device (`rvsdly0` unless told otherwise) and routes
//! `dest` through it (`ip route replace DEST dev rvsdly0 src SRC`): every packet the namespace
//! sends to `dest` — a SYN-ACK included — is read by a thread of this process, held `delay`,
//! and written back into the device. For the kernel that is a packet *arriving* on `rvsdly0`;
//! a policy rule (`ip rule add iif rvsdly0 lookup TABLE`) sends it through a table whose
//! default route is the real path (`via GW dev DEV`), so the namespace forwards it there. That
//! takes forwarding on, reverse-path filtering off and `accept_local` on the device (the
//! packets carry the namespace's own source address). Each packet is forwarded once, so its
//! TTL drops by one.
//!
//! Dropping the [`OutputDelay`] stops the thread, which closes the device; the kernel removes
//! the device and its route with it, and the policy rule is deleted.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

use crate::error::{LabError, Result};
use crate::netns::Netns;

/// Largest packet held; the TUN device's MTU is the default 1500.
const BUF: usize = 65_536;

/// Packets held at once; beyond that new ones are dropped (a test sends far fewer).
const MAX_HELD: usize = 4096;

/// Where the delayed packets go and how long they wait.
#[derive(Debug, Clone)]
pub struct DelayConfig {
    /// Destination prefix whose packets are delayed (`10.1.0.0/24`).
    pub dest: String,
    /// Source address the namespace uses toward `dest` (its address on `dev`).
    pub src: Ipv4Addr,
    /// The real next hop toward `dest`, and the device it is on.
    pub gw: Ipv4Addr,
    /// The device of the real path.
    pub dev: String,
    /// Routing table of the forwarding rule (any table the namespace does not use).
    pub table: u32,
    /// How long each packet is held.
    pub delay: Duration,
    /// TUN device name (1..=15 characters).
    pub tun: String,
}

/// A running delay (see the module docs). Stops, and undoes its routing, when dropped.
#[derive(Debug)]
pub struct OutputDelay {
    stop: Arc<AtomicBool>,
    delayed: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    ns: Netns,
    cfg: DelayConfig,
}

impl OutputDelay {
    /// Delays what `ns` sends to `cfg.dest` by `cfg.delay`.
    ///
    /// # Errors
    /// The device, a sysctl, the route or the rule could not be set up.
    pub fn start(ns: &Netns, cfg: DelayConfig) -> Result<OutputDelay> {
        if cfg.tun.is_empty() || cfg.tun.len() > 15 {
            return Err(LabError::Invalid(format!(
                "TUN device name {:?} must be 1..=15 characters",
                cfg.tun
            )));
        }
        let path = format!("/run/netns/{}", ns.name());
        let file = File::open(&path).map_err(|e| LabError::io(path, e))?;
        let name = ns.name().to_owned();
        let tun_name = cfg.tun.clone();
        // The device must be created, and `/proc/sys/net` written, by a thread inside the
        // namespace; a scoped thread keeps the caller's own namespace untouched.
        let device = thread::scope(|s| {
            s.spawn(move || -> Result<tun::Device> {
                setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| LabError::Sys {
                    context: format!("setns into {name}"),
                    source,
                })?;
                let mut tcfg = tun::Configuration::default();
                tcfg.tun_name(&tun_name).up();
                let device = tun::create(&tcfg).map_err(|source| LabError::Tun {
                    name: tun_name.clone(),
                    source,
                })?;
                for (file, v) in [
                    ("ipv4/ip_forward".to_owned(), "1"),
                    ("ipv4/conf/all/rp_filter".to_owned(), "0"),
                    (format!("ipv4/conf/{tun_name}/rp_filter"), "0"),
                    (format!("ipv4/conf/{tun_name}/accept_local"), "1"),
                ] {
                    let p = format!("/proc/sys/net/{file}");
                    fs::write(&p, v).map_err(|e| LabError::io(p, e))?;
                }
                Ok(device)
            })
            .join()
            .map_err(|_| LabError::ThreadPanicked(ns.name().to_owned()))?
        })?;
        let table = cfg.table.to_string();
        let gw = cfg.gw.to_string();
        let src = cfg.src.to_string();
        ns.ip([
            "route", "replace", "default", "via", &gw, "dev", &cfg.dev, "table", &table,
        ])?;
        ns.ip(["rule", "add", "iif", &cfg.tun, "lookup", &table])?;
        let stop = Arc::new(AtomicBool::new(false));
        let delayed = Arc::new(AtomicU64::new(0));
        // From here on, dropping the handle undoes the rule (and the device with the thread).
        let mut d = OutputDelay {
            stop: Arc::clone(&stop),
            delayed: Arc::clone(&delayed),
            thread: None,
            ns: ns.clone(),
            cfg: cfg.clone(),
        };
        let delay = cfg.delay;
        d.thread = Some(
            thread::Builder::new()
                .name(format!("delay-{}", cfg.tun))
                .spawn(move || run(&device, delay, &stop, &delayed))
                .map_err(|e| LabError::io("spawning the delay thread", e))?,
        );
        ns.ip(["route", "replace", &cfg.dest, "dev", &cfg.tun, "src", &src])?;
        Ok(d)
    }

    /// Packets delayed so far.
    pub fn delayed(&self) -> u64 {
        self.delayed.load(Ordering::Relaxed)
    }
}

impl Drop for OutputDelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // The worker waits at most 50 ms per read, so this join is bounded.
            let _ = t.join();
        }
        let table = self.cfg.table.to_string();
        let _ = self
            .ns
            .ip(["rule", "del", "iif", &self.cfg.tun, "lookup", &table]);
        let _ = self.ns.ip(["route", "flush", "table", &table]);
    }
}

/// Hold each packet read from `device` for `delay`, then write it back.
fn run(device: &tun::Device, delay: Duration, stop: &AtomicBool, delayed: &AtomicU64) {
    let mut held: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut buf = vec![0u8; BUF];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, p)) = held.pop_front() {
                if device.send(&p).is_ok() {
                    delayed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let wait = held.front().map_or(Duration::from_millis(50), |(due, _)| {
            due.saturating_duration_since(now)
                .clamp(Duration::from_micros(100), Duration::from_millis(50))
        });
        match device.recv_timeout(&mut buf, wait) {
            Ok(n) if n > 0 && held.len() < MAX_HELD => {
                held.push_back((Instant::now() + delay, buf[..n].to_vec()));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
