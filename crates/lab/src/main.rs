//! `rvs-lab`: bring a lab up by hand, look at it, take it down.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use rvs_bpf::trafficgen::{Proto, Spec, Vary};
use rvs_lab::trafficgen;
use rvs_lab::{
    cleanup_orphans, cleanup_stale, list_namespaces, BuildOptions, DecapConfig, Decapsulator, Lab,
    LabKind, NsCommand, SelftestMode, Topology, CLI_PREFIX, TEST_PREFIX,
};

#[derive(Parser)]
#[command(
    name = "rvs-lab",
    version,
    about = "Network-namespace labs for rvs: NAT, DR, TUN, FULLNAT, the kernel IPVS selftest, an HA pair"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build a topology, print it with the commands to try next, and leave it up.
    Up {
        /// Which topology.
        kind: Kind,
        /// Namespace name prefix (namespaces are PREFIX-ROLE).
        #[arg(long, default_value = CLI_PREFIX)]
        prefix: String,
        /// Setup of the selftest topology (the kernel's ipvs.sh runs dr, nat, tun).
        #[arg(long, value_enum, default_value_t = Mode::Dr)]
        mode: Mode,
        /// Number of real servers (not for selftest, which has one).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=i64::from(rvs_lab::topo::MAX_REAL_SERVERS)))]
        real_servers: u8,
        /// Do not start nginx on the real servers.
        #[arg(long)]
        no_nginx: bool,
    },
    /// Remove a lab: kill the processes inside its namespaces, delete them.
    Down {
        /// Namespace name prefix given to `up`.
        #[arg(long, default_value = CLI_PREFIX)]
        prefix: String,
        /// Also remove test labs whose test process is gone.
        #[arg(long)]
        orphans: bool,
    },
    /// List the namespaces of rvs labs (CLI and test labs).
    List,
    /// Run a userspace tunnel decapsulator in the current namespace until killed
    /// (`rvs-lab up tun` starts these under `ip netns exec`).
    Decap {
        /// TUN device to create.
        #[arg(long, default_value = rvs_lab::decap::DEFAULT_DEV)]
        dev: String,
        /// Also accept GUE on this UDP port.
        #[arg(long)]
        gue_port: Option<u16>,
    },
    /// Send 64-byte IPv4 frames out of an interface of the current namespace with the
    /// kernel's live-frames BPF_PROG_TEST_RUN (the benches' generator: no socket, no skb on
    /// the sending CPU), then print how many were produced. Run it under `ip netns exec`.
    Trafficgen {
        /// The sending interface.
        #[arg(long)]
        dev: String,
        /// The receiver's MAC address.
        #[arg(long)]
        dst_mac: String,
        /// IPv4 source (with --sources: unused, the sources are generated).
        #[arg(long)]
        src: Ipv4Addr,
        /// IPv4 destination.
        #[arg(long)]
        dst: Ipv4Addr,
        /// UDP datagrams or TCP SYNs.
        #[arg(long, value_enum, default_value_t = GenProto::Udp)]
        proto: GenProto,
        /// The first flow's source port.
        #[arg(long, default_value_t = 10000)]
        sport: u16,
        /// Destination port.
        #[arg(long, default_value_t = 9)]
        dport: u16,
        /// Steady flows: the source port runs through this many ports.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
        flows: u32,
        /// New flows: the source address runs through this many addresses from
        /// --first-source instead (one port).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        sources: Option<u32>,
        /// The first generated source address.
        #[arg(long, default_value = "10.128.0.0")]
        first_source: Ipv4Addr,
        /// Frames per second (0: as fast as it goes).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Seconds to send.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Send nothing: write the template frame (the first flow's) to this file, e.g. for
        /// `bpftool prog run ... data_in FILE`.
        #[arg(long)]
        write_frame: Option<std::path::PathBuf>,
    },
    /// Count and drop, with an XDP program on an interface of the current namespace, the UDP
    /// datagrams to port 9 and TCP segments to port 80 addressed into a prefix (what a director
    /// forwarded to its real servers); the counts go to a file every 20 ms. The benches' far
    /// side. Run it under `ip netns exec`; it detaches when killed.
    Sink {
        /// The interface.
        #[arg(long)]
        dev: String,
        /// The real servers' prefix, a.b.c.d/len.
        #[arg(long)]
        prefix: String,
        /// Where the counts go ("udp9 N" and "tcp80 M" lines, replaced whole).
        #[arg(long)]
        count_file: std::path::PathBuf,
        /// Seconds until it detaches by itself.
        #[arg(long, default_value_t = 3600)]
        seconds: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum GenProto {
    /// 64-byte UDP datagrams.
    Udp,
    /// TCP SYNs.
    Syn,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// Client, director with two interfaces, real servers whose gateway is the DIP.
    Nat,
    /// Client, router, director and real servers on one segment, VIP on the servers' lo.
    Dr,
    /// Real servers on routed networks, each with a userspace IPIP/GRE/GUE decapsulator.
    Tun,
    /// Real servers with no route to the client; a local address on the director.
    Fullnat,
    /// The kernel IPVS selftest's three namespaces (see --mode).
    Selftest,
    /// Two directors on the client segment, for VRRP.
    Ha,
    /// Two directors (VRRP) for direct routing: real servers with the VIP on lo answer the
    /// client through a router, not through a director.
    HaDr,
    /// `ha-dr` with a userspace decapsulator on every real server, for tunnelling.
    HaTun,
    /// Scale-out: three directors (rvsd + BIRD) behind an ECMP router running BIRD with BGP
    /// multipath and BFD, four DR real servers, a client behind the router.
    Ecmp,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Dr,
    Nat,
    Tun,
}

impl Kind {
    fn lab_kind(self, mode: Mode) -> LabKind {
        match self {
            Kind::Nat => LabKind::Nat,
            Kind::Dr => LabKind::Dr,
            Kind::Tun => LabKind::Tun,
            Kind::Fullnat => LabKind::Fullnat,
            Kind::Selftest => LabKind::Selftest(match mode {
                Mode::Dr => SelftestMode::Dr,
                Mode::Nat => SelftestMode::Nat,
                Mode::Tun => SelftestMode::Tun,
            }),
            Kind::Ha => LabKind::Ha,
            Kind::HaDr => LabKind::HaDr,
            Kind::HaTun => LabKind::HaTun,
            Kind::Ecmp => unreachable!("ecmp is built by up_ecmp"),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Up {
            kind,
            prefix,
            mode,
            real_servers,
            no_nginx,
        } => match kind {
            // Three directors and four real servers unless --real-servers says otherwise.
            Kind::Ecmp => up_ecmp(&prefix, real_servers, !no_nginx),
            _ => up(kind.lab_kind(mode), &prefix, real_servers, !no_nginx),
        },
        Cmd::Down { prefix, orphans } => down(&prefix, orphans),
        Cmd::List => list(),
        Cmd::Decap { dev, gue_port } => decap(dev, gue_port),
        Cmd::Sink {
            dev,
            prefix,
            count_file,
            seconds,
        } => parse_prefix(&prefix)
            .and_then(|p| rvs_lab::sink::run(&dev, p, &count_file, Duration::from_secs(seconds))),
        Cmd::Trafficgen {
            dev,
            dst_mac,
            src,
            dst,
            proto,
            sport,
            dport,
            flows,
            sources,
            first_source,
            rate,
            seconds,
            write_frame,
        } => trafficgen(
            dev,
            &dst_mac,
            (src, dst),
            proto,
            (sport, dport),
            match sources {
                Some(count) => Vary::SourceAddr {
                    first: first_source,
                    count,
                },
                None => Vary::SourcePort { count: flows },
            },
            rate,
            seconds,
            write_frame,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvs-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn up(kind: LabKind, prefix: &str, real_servers: u8, nginx: bool) -> rvs_lab::Result<()> {
    if !list_namespaces(prefix)?.is_empty() {
        return Err(rvs_lab::LabError::Invalid(format!(
            "a lab with prefix {prefix} is up; `rvs-lab down --prefix {prefix}` first"
        )));
    }
    let lab = Lab::with_prefix(prefix)?;
    // Decapsulators must outlive this command, so they run as processes inside the real
    // servers' namespaces, where `down` finds and kills them.
    let mut topo = Topology::build(
        lab,
        kind,
        BuildOptions {
            in_process_decap: false,
            real_servers,
        },
    )?;
    let exe = std::env::current_exe().map_err(|e| rvs_lab::LabError::io("current_exe", e))?;
    let exe = exe.display().to_string();
    let cfg = topo.decap_config();
    for role in topo.decap_roles().to_vec() {
        let Some(node) = topo.node(&role) else {
            continue;
        };
        let mut cmd = node.ns.cmd(&exe).args(["decap", "--dev", &cfg.dev]);
        if let Some(p) = cfg.gue_port {
            cmd = cmd.args(["--gue-port", &p.to_string()]);
        }
        let child = cmd.spawn()?;
        let ns = node.ns.clone();
        topo.lab_mut().own(child);
        // The device appears once the decapsulator runs; waiting makes `up` report failures.
        wait_link(&ns, &cfg.dev)?;
    }
    topo.write_walkthrough_files()?;
    if nginx {
        if which("nginx") {
            topo.start_nginx()?;
        } else {
            eprintln!("rvs-lab: nginx not found, real servers serve nothing (apt-get install nginx-light)");
        }
    }
    topo.keep();
    print!("{topo}");
    Ok(())
}

/// `rvs-lab up ecmp`: the scale-out lab with BIRD running on the router and the directors;
/// rvsd is left for the person to start (the printed commands).
fn up_ecmp(prefix: &str, real_servers: u8, nginx: bool) -> rvs_lab::Result<()> {
    if !list_namespaces(prefix)?.is_empty() {
        return Err(rvs_lab::LabError::Invalid(format!(
            "a lab with prefix {prefix} is up; `rvs-lab down --prefix {prefix}` first"
        )));
    }
    if !which("bird") {
        return Err(rvs_lab::LabError::Invalid(
            "bird not found (apt-get install bird2)".into(),
        ));
    }
    let lab = Lab::with_prefix(prefix)?;
    // `--real-servers` defaults to 2 for the other labs; this one is about four.
    let rs = if real_servers == 2 {
        4
    } else {
        usize::from(real_servers)
    };
    let mut e = rvs_lab::ecmp::Ecmp::build(lab, 3, rs)?;
    e.start_bird()?;
    if nginx && which("nginx") {
        e.start_nginx()?;
    }
    e.keep();
    print!("{e}");
    Ok(())
}

fn wait_link(ns: &rvs_lab::Netns, dev: &str) -> rvs_lab::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if ns.links()?.iter().any(|l| l == dev) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(rvs_lab::LabError::Timeout {
        what: format!("decapsulator device {dev} in {}", ns.name()),
        after: std::time::Duration::from_secs(5),
    })
}

fn which(program: &str) -> bool {
    NsCommand::host("sh")
        .args(["-c", &format!("command -v {program}")])
        .run()
        .is_ok()
}

fn down(prefix: &str, orphans: bool) -> rvs_lab::Result<()> {
    let removed = cleanup_stale(prefix)?;
    for n in &removed {
        println!("deleted {n}");
    }
    if orphans {
        for n in cleanup_orphans()? {
            println!("deleted {n}");
        }
    }
    if removed.is_empty() {
        println!("no namespaces with prefix {prefix}-");
    }
    Ok(())
}

fn list() -> rvs_lab::Result<()> {
    for prefix in [CLI_PREFIX, TEST_PREFIX] {
        for n in list_namespaces(prefix)? {
            println!("{n}");
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn trafficgen(
    dev: String,
    dst_mac: &str,
    (src, dst): (Ipv4Addr, Ipv4Addr),
    proto: GenProto,
    (sport, dport): (u16, u16),
    vary: Vary,
    rate: u64,
    seconds: f64,
    write_frame: Option<std::path::PathBuf>,
) -> rvs_lab::Result<()> {
    if !(seconds > 0.0 && seconds < 86_400.0) {
        return Err(rvs_lab::LabError::Invalid(format!(
            "--seconds {seconds}: between 0 and a day"
        )));
    }
    let spec = Spec {
        dst_mac: trafficgen::parse_mac(dst_mac)?,
        src_mac: trafficgen::mac_of(&dev)?,
        saddr: src,
        daddr: dst,
        proto: match proto {
            GenProto::Udp => Proto::Udp,
            GenProto::Syn => Proto::TcpSyn,
        },
        sport,
        dport,
        vary,
    };
    if let Some(path) = write_frame {
        return std::fs::write(&path, rvs_bpf::trafficgen::frame(&spec))
            .map_err(|e| rvs_lab::LabError::io(path.display().to_string(), e));
    }
    let report = trafficgen::run(&trafficgen::Options {
        dev,
        spec,
        rate,
        duration: Duration::from_secs_f64(seconds),
    })?;
    let secs = report.elapsed.as_secs_f64();
    println!(
        "produced {} frames in {secs:.3} s ({:.0} per second), cpu {} ns",
        report.produced,
        report.produced as f64 / secs,
        report.cpu.as_nanos()
    );
    Ok(())
}

/// `a.b.c.d/len`.
fn parse_prefix(s: &str) -> rvs_lab::Result<(Ipv4Addr, u8)> {
    let bad =
        || rvs_lab::LabError::Invalid(format!("--prefix {s}: not an IPv4 prefix a.b.c.d/len"));
    let (a, l) = s.split_once('/').ok_or_else(bad)?;
    let len: u8 = l.parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(bad());
    }
    Ok((a.parse().map_err(|_| bad())?, len))
}

fn decap(dev: String, gue_port: Option<u16>) -> rvs_lab::Result<()> {
    let d = Decapsulator::start(
        None,
        DecapConfig {
            dev,
            gue_port,
            ..DecapConfig::default()
        },
    )?;
    // Runs until killed (`rvs-lab down` kills every process in the lab's namespaces); the
    // worker only ends by itself if poll(2) fails, which is then reported.
    while d.is_running() {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    Err(rvs_lab::LabError::Invalid(format!(
        "decapsulator on {} stopped unexpectedly",
        d.dev()
    )))
}
