//! Network-namespace scaffolding for the root-only tests: namespaces that are deleted on drop
//! (also when a test panics), threads that run inside a namespace, and small frame builders.
#![allow(dead_code)]

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{setns, CloneFlags};

/// True if the tests can create namespaces (root, `ip`, `nft`, `ping`); otherwise skipped with
/// the reason, or a failure under CI (see rvs-require).
pub fn can_run() -> bool {
    rvs_require::root() && rvs_require::tools(&["ip", "nft", "ping"])
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("rvsio-{}-{n}-{tag}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.sh("ip link set lo up");
        ns
    }

    /// Runs a shell command in the namespace; panics with its output if it fails.
    pub fn sh(&self, cmd: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", cmd])
            .output()
            .expect("run ip netns exec");
        assert!(
            out.status.success(),
            "`{cmd}` in {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a shell command in the namespace and returns whether it succeeded, and its output.
    pub fn try_sh(&self, cmd: &str) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", cmd])
            .output()
            .expect("run ip netns exec");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Runs `f` on a new thread that has entered this namespace (sockets it opens live there;
    /// processes it spawns start there).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(move || {
                enter(&path);
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    pub fn mac(&self, ifname: &str) -> [u8; 6] {
        let text = self.sh(&format!(
            "cat /sys/class/net/{ifname}/address 2>/dev/null || ip -br link show {ifname}"
        ));
        parse_mac(&text)
    }
}

/// Enters the namespace at `path` on the calling thread.
pub fn enter(path: &str) {
    let f = File::open(path).expect("open netns");
    setns(f, CloneFlags::CLONE_NEWNET).expect("setns");
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn parse_mac(text: &str) -> [u8; 6] {
    for word in text.split_whitespace() {
        let parts: Vec<&str> = word.split(':').collect();
        if parts.len() == 6 {
            if let Ok(v) = parts
                .iter()
                .map(|p| u8::from_str_radix(p, 16))
                .collect::<Result<Vec<u8>, _>>()
            {
                return [v[0], v[1], v[2], v[3], v[4], v[5]];
            }
        }
    }
    panic!("no MAC in {text:?}")
}

/// Two namespaces joined by a veth pair `a0` (in `a`, 10.77.0.1/24, fd77::1/64) — `b0` (in
/// `b`, 10.77.0.2/24, fd77::2/64), both up, IPv6 without duplicate address detection.
pub struct Pair {
    pub a: Netns,
    pub b: Netns,
}

impl Pair {
    pub fn new(tag: &str) -> Pair {
        let a = Netns::new(&format!("{tag}a"));
        let b = Netns::new(&format!("{tag}b"));
        run(&[
            "ip", "link", "add", "a0", "netns", &a.name, "type", "veth", "peer", "name", "b0",
            "netns", &b.name,
        ]);
        a.sh("ip addr add 10.77.0.1/24 dev a0 && ip addr add fd77::1/64 dev a0 nodad && ip link set a0 up");
        b.sh("ip addr add 10.77.0.2/24 dev b0 && ip addr add fd77::2/64 dev b0 nodad && ip link set b0 up");
        Pair { a, b }
    }
}

/// An Ethernet frame with a private EtherType (0x88b5, IEEE local experimental) carrying a
/// magic and a sequence number, padded to `len` bytes.
pub fn marker_frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(22)];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(b"RVS!");
    f[18..22].copy_from_slice(&seq.to_be_bytes());
    f
}

/// The sequence number of a marker frame (untagged), if it is one.
pub fn marker_seq(f: &[u8]) -> Option<u32> {
    if f.len() >= 22 && f[12..14] == [0x88, 0xb5] && &f[14..18] == b"RVS!" {
        Some(u32::from_be_bytes([f[18], f[19], f[20], f[21]]))
    } else {
        None
    }
}

/// An Ethernet/IPv4/UDP frame with a valid IPv4 header checksum (UDP checksum 0: none).
pub fn udp4_frame(
    dst: [u8; 6],
    src: [u8; 6],
    sip: [u8; 4],
    dip: [u8; 4],
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let ip_len = 20 + 8 + payload.len();
    let mut f = vec![0u8; 14 + ip_len];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&sip);
    ip[16..20].copy_from_slice(&dip);
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f[42..].copy_from_slice(payload);
    f
}
