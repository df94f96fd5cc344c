//! rvsd — the rvs director daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use clap::{CommandFactory as _, Parser};
use rvs_control::proto::Request;
use rvsd::balancer::DirectorBalancer;
use rvsd::clock::Clock;
use rvsd::control_server::{self, SocketFile};
use rvsd::daemon::Daemon;
use rvsd::state::{Planes, State};
use rvsd::{demo, rules};
use tokio::signal::unix::{signal, SignalKind};

/// Command line of rvsd.
#[derive(Parser, Debug)]
#[command(
    name = "rvsd",
    version,
    about = "rvs director: Linux Virtual Server in userspace, administered with rvsadm (ipvsadm)"
)]
struct Args {
    /// Control socket path (default /run/rvs/rvsd.sock as root, else
    /// $XDG_RUNTIME_DIR/rvs/rvsd.sock; $RVS_SOCKET overrides the default).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Write the process id to this file.
    #[arg(long)]
    pidfile: Option<PathBuf>,
    /// Load an ipvsadm-save rules file at start; SIGHUP re-reads it and applies the difference.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// HTTP address of the Prometheus metrics (`/metrics`), the status page (`/`) and its
    /// JSON (`/api/status`, `/api/history`), or `off`.
    #[arg(long, default_value = "127.0.0.1:9760")]
    metrics_listen: String,
    /// Start two built-in HTTP real servers and a demo virtual service on 127.0.0.1:8080.
    #[arg(long)]
    demo: bool,
    /// Socket proxy worker threads (default: one per CPU).
    #[arg(long)]
    workers: Option<usize>,
    /// Kernel splicing of proxied TCP flows once connected (BPF sockmap: the kernel moves the
    /// bytes between the two sockets): `auto` where the kernel allows it, `on` (the same, but a
    /// kernel that refuses is a warning), `off` (every byte through the proxy's threads).
    #[arg(long, default_value = "off", value_parser = parse_proxy_splice)]
    proxy_splice: rvs_proxy::KernelSplice,
    /// With `--proxy-splice`: reads a TCP flow is relayed by the proxy before it is handed to
    /// the kernel (a read that fills the buffer hands it over at once). 0: at connect. Short
    /// flows are cheaper in user space than the splice set-up.
    #[arg(long, default_value_t = rvs_proxy::ProxyConfig::default().kernel_splice_after)]
    proxy_splice_after: u32,
    /// How long open connections may take to finish, in seconds: on SIGTERM, and for a real
    /// server that a reload of `-f` removed (drained, then deleted).
    #[arg(long, default_value_t = 30)]
    drain_time: u64,
    /// keepalived configuration file: run it (SIGHUP reloads it), or check it with `-t`.
    #[arg(short = 'f', long = "use-file")]
    use_file: Option<PathBuf>,
    /// Check the keepalived configuration (`-f`, default /etc/keepalived/keepalived.conf) and
    /// exit with keepalived's exit classes (0 ok, 2 missing value, 4 cannot run, 5 errors,
    /// 6 script security).
    #[arg(short = 't', long = "config-test")]
    config_test: bool,
    /// Configuration id for `@ID` lines (default: the short host name).
    #[arg(short = 'i', long = "config-id")]
    config_id: Option<String>,
    /// Run the VRRP instances (`vrrp_instance`, `vrrp_sync_group`, `vrrp_script`) of this
    /// keepalived configuration while the table comes from `--rules` (with `-f`, the VRRP
    /// instances of that file run anyway).
    #[arg(long)]
    vrrp: Option<PathBuf>,
    /// Run the packet data plane (NAT, DR, TUN, FULLNAT) on this interface; repeatable.
    /// Every service whose VIP is not a loopback address then goes to the packet plane.
    #[arg(long)]
    interface: Vec<String>,
    /// Packet plane: mark packets `PROTO:ADDR:PORT[-PORT]=MARK` for firewall-mark services
    /// (`-f MARK`), as an nft `meta mark set` rule would for the kernel; repeatable. The
    /// director's own nft mark rules are read and applied as well.
    #[arg(long = "fwmark-rule", value_parser = rvsd::packet_plane::parse_mark_rule)]
    fwmark_rule: Vec<rvs_packet::plane::MarkRule>,
    /// Packet plane worker threads per interface (PACKET_FANOUT by flow hash).
    #[arg(long, default_value_t = 1)]
    packet_workers: usize,
    /// Packet plane: the XDP fast path for established connections. `auto` tries it (native
    /// mode where the driver has it, else generic) and falls back to AF_PACKET alone with one
    /// log line saying why; `on` requires it; `native` / `generic` require that mode; `off`.
    #[arg(long, default_value = "off", value_parser = clap::value_parser!(rvsd::packet_plane::XdpSetting))]
    xdp: rvsd::packet_plane::XdpSetting,
    /// Packet plane with `--xdp`: where the packets the XDP program does not forward go.
    /// `auto` (default): an AF_XDP socket per worker (the program redirects to it the packets
    /// the plane handles), AF_PACKET where one cannot be bound (one log line says why); `xsk`
    /// requires AF_XDP; `af_packet` keeps the AF_PACKET tap alone.
    #[arg(long, default_value = "auto", value_parser = clap::value_parser!(rvsd::packet_plane::SlowPathSetting))]
    xdp_slow_path: rvsd::packet_plane::SlowPathSetting,
    /// Set an IPVS sysctl at start, `NAME=VALUE` as under /proc/sys/net/ipv4/vs/ (e.g.
    /// `sloppy_tcp=1`); repeatable. `rvsadm --sysctl` lists and changes them at run time.
    #[arg(long = "sysctl", value_name = "NAME=VALUE", value_parser = parse_sysctl_arg)]
    sysctl: Vec<(String, String)>,
    /// Scale-out: keep a route VIP/32 (/128) on `lo` in this kernel routing table for every VIP
    /// that can be served, for a routing daemon (BIRD, FRR, GoBGP) to announce by BGP.
    #[arg(long, value_name = "TABLE")]
    announce_table: Option<u32>,
    /// Route protocol number of the announced routes (not kernel/boot/static/bird).
    #[arg(long, value_name = "PROTO", default_value_t = rvsd::announce::DEFAULT_PROTOCOL)]
    announce_protocol: u8,
    /// On SIGTERM with --announce-table: seconds between withdrawing the routes and starting
    /// to drain, while rvsd still forwards (the routers' convergence time).
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    announce_delay: f64,
    /// Docker discovery: containers labelled `rvs.service=tcp:VIP:PORT` become real servers
    /// while they run and are healthy (docs/containers.md). SOCKET: the dockerd API socket
    /// (default /var/run/docker.sock).
    #[arg(long, value_name = "SOCKET", num_args = 0..=1,
          default_missing_value = rvsd::discovery::docker::DEFAULT_SOCKET)]
    docker: Option<PathBuf>,
    /// etcd as the table's source of truth: the services and real servers under
    /// `--etcd-prefix` (docs/containers.md). `http://HOST:PORT` or `https://HOST:PORT`;
    /// several members comma-separated.
    #[arg(long, value_name = "URL")]
    etcd: Option<String>,
    /// The etcd key prefix whose services and real servers are the table.
    #[arg(long, value_name = "PREFIX", default_value = "/rvs", requires = "etcd")]
    etcd_prefix: String,
    /// CA certificate(s), PEM, that sign etcd's server certificate (with https://).
    #[arg(long, value_name = "FILE", requires = "etcd")]
    etcd_cacert: Option<PathBuf>,
    /// Client certificate, PEM, for etcd's client-certificate authentication.
    #[arg(long, value_name = "FILE", requires = "etcd")]
    etcd_cert: Option<PathBuf>,
    /// Private key of --etcd-cert, PEM.
    #[arg(long, value_name = "FILE", requires = "etcd")]
    etcd_key: Option<PathBuf>,
    /// etcd user authentication: NAME:PASSWORD, or NAME with the password in
    /// $RVS_ETCD_PASSWORD (which keeps it out of the process list).
    #[arg(long, value_name = "NAME[:PASSWORD]", requires = "etcd")]
    etcd_user: Option<String>,
    /// Safe failback: a director started with `lvs_sync_daemon` holds VRRP preemption until its
    /// bulk connection resync from the MASTER ended, but at most this many seconds (0: no hold).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    sync_resync_hold: f64,
    /// Bulk resync pacing on a master: datagrams per second one answer may use (the live sync
    /// stream always goes first).
    #[arg(long, value_name = "N", default_value_t = rvsd::sync::DEFAULT_RESYNC_RATE,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    sync_resync_rate: u32,
    /// Print the rvsd(8) manual page (roff) and exit (used to build the package).
    #[arg(long, hide = true)]
    generate_man: bool,
    /// Print a completion script for SHELL (bash, zsh, fish, ...) and exit.
    #[arg(long, hide = true, value_name = "SHELL")]
    generate_completions: Option<clap_complete::Shell>,
}

/// `--sysctl NAME=VALUE` (the `net.ipv4.vs.` prefix is accepted); the value is checked by the
/// daemon's sysctl table at start.
fn parse_proxy_splice(s: &str) -> Result<rvs_proxy::KernelSplice, String> {
    rvs_proxy::KernelSplice::parse(s).ok_or_else(|| format!("{s}: expected auto, on or off"))
}

fn parse_sysctl_arg(s: &str) -> Result<(String, String), String> {
    let (n, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}': NAME=VALUE expected"))?;
    let n = n.trim();
    let n = n.strip_prefix("net.ipv4.vs.").unwrap_or(n);
    if n.is_empty() || v.trim().is_empty() {
        return Err(format!("`{s}': NAME=VALUE expected"));
    }
    Ok((n.to_string(), v.trim().to_string()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.generate_man {
        print!("{}", rvsd::manual::man_page(Args::command()));
        return ExitCode::SUCCESS;
    }
    if let Some(shell) = args.generate_completions {
        print!("{}", rvsd::manual::completions(Args::command(), shell));
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if args.config_test {
        let path = args
            .use_file
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/keepalived/keepalived.conf"));
        let report = rvs_config::check(
            &path,
            &rvs_config::CheckOptions {
                config_id: args.config_id.clone(),
                check_interfaces: true,
            },
        );
        let ignored = rvsd::keepalived::parsed_not_acted_on(&report.config);
        for w in &ignored {
            eprintln!("{w}");
        }
        eprint!("{}", report.render());
        if !ignored.is_empty() {
            // keepalived -t exits 0 for these: the status stays keepalived's.
            eprintln!(
                "{} keyword(s) parsed but not acted on by rvsd (listed above; not counted in \
                 the exit status)",
                ignored.len()
            );
        }
        return ExitCode::from(u8::try_from(report.exit_status()).unwrap_or(1));
    }
    if args.use_file.is_some() && args.rules.is_some() {
        eprintln!("rvsd: -f (keepalived.conf) and --rules (ipvsadm-save) both describe the table; use one");
        return ExitCode::from(2);
    }
    match rvsd::fd_limit::raise() {
        Ok(r) if r.before != r.after => tracing::info!(
            "descriptor limit raised from {} to {}",
            r.before.map_or("unlimited".into(), |v| v.to_string()),
            r.after.map_or("unlimited".into(), |v| v.to_string())
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(
            "cannot raise the descriptor limit ({:?}): {e}",
            rvsd::fd_limit::current()
        ),
    }
    // Both before any thread exists: the environment is process-wide, and capabilities are
    // per thread (threads started later inherit the reduced sets).
    rvsd::sd_notify::init_from_env();
    let xdp = !args.interface.is_empty() && args.xdp != rvsd::packet_plane::XdpSetting::Off;
    if args.interface.is_empty() && args.xdp != rvsd::packet_plane::XdpSetting::Off {
        tracing::warn!("--xdp without --interface: there is no packet plane to accelerate");
    }
    if !xdp && args.xdp_slow_path != rvsd::packet_plane::SlowPathSetting::Auto {
        tracing::warn!(
            "--xdp-slow-path is ignored without --interface and --xdp: without the XDP program \
             the slow path is AF_PACKET"
        );
    }
    // The proxy's kernel splicing loads a BPF program and maps too (CAP_BPF), like XDP.
    let bpf = xdp || args.proxy_splice != rvs_proxy::KernelSplice::Off;
    match rvsd::capabilities::drop_unneeded(bpf) {
        Ok(d) if !d.dropped.is_empty() => tracing::info!(
            "capabilities: dropped {}; kept {}",
            rvsd::capabilities::names(d.dropped),
            rvsd::capabilities::names(d.kept)
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("capabilities: cannot drop the unneeded ones: {e}"),
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rvsd: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvsd: {e}");
            ExitCode::from(1)
        }
    }
}

/// The `STATUS=` text for the service manager.
fn status_summary(daemon: &Daemon) -> String {
    let doc = rvsd::status::snapshot_limited(&daemon.lock(), 0);
    rvsd::status::summary(&doc)
}

/// Sends `READY=1` with the new status when a reload is over, however its branch ends.
struct ReadyAgain<'a>(&'a Daemon);

impl Drop for ReadyAgain<'_> {
    fn drop(&mut self) {
        rvsd::sd_notify::notify(&format!(
            "READY=1\n{}",
            rvsd::sd_notify::status_line(&status_summary(self.0))
        ));
    }
}

/// Apply requests at start; any error is fatal and names what failed.
async fn apply_all(daemon: &Arc<Daemon>, reqs: Vec<(String, Request)>) -> Result<(), String> {
    for (what, req) in reqs {
        let r = daemon.request(req).await;
        for w in &r.warnings {
            tracing::warn!("{what}: {w}");
        }
        if let Err(e) = r.result {
            return Err(format!(
                "{what}: {}",
                e.detail.unwrap_or_else(|| e.kind.strerror().to_string())
            ));
        }
    }
    Ok(())
}

/// Check a rules file by playing it on a scratch table (as `ipvsadm -R` would on an empty
/// table), then apply its difference from the running table.
async fn load_rules(daemon: &Arc<Daemon>, path: &std::path::Path) -> Result<usize, String> {
    // Read off the runtime (rvsd::off_runtime): a large file must not stall rvsadm and timers.
    let p = path.to_path_buf();
    let parsed = rvsd::off_runtime::run(
        &path.display().to_string(),
        rvsd::off_runtime::READ_DEADLINE,
        move || rules::parse_file(&p),
    )
    .await??;
    let want = rules::desired(path, &parsed)?;
    let now = daemon.clock.now();
    // The scratch table only checks that the file is valid: with every plane "running" it
    // raises no not-served warnings, which the real apply below logs once for what changes
    // (before, every SIGHUP logged them again even when nothing changed).
    let mut scratch = State::new(now, Planes { packet: true });
    // One batch (publications once, at its end): checking a file of N lines costs O(N).
    let reqs: Vec<Request> = parsed.iter().map(|r| r.req.clone()).collect();
    let answers = scratch.handle_batch(&reqs, now);
    for (r, a) in parsed.iter().zip(answers) {
        if let Err(e) = a.result {
            return Err(format!(
                "{}:{}: {}: {}",
                path.display(),
                r.line,
                r.text,
                e.detail.unwrap_or_else(|| e.kind.strerror().to_string())
            ));
        }
    }
    let (current, laddrs) = {
        let mut st = daemon.lock();
        // Services a discovery source owns are not the rules file's to delete.
        let cur: Vec<_> = st
            .list_services()
            .into_iter()
            .filter(|s| st.managed.owner(&s.spec.key).is_none())
            .collect();
        let l = match st.handle(&Request::GetLocalAddrs(None), now).result {
            Ok(rvs_control::proto::Payload::LocalAddrs(l)) => l,
            _ => Vec::new(),
        };
        (cur, l)
    };
    let reqs = rules::diff(&current, &laddrs, &want);
    let n = reqs.len();
    for chunk in reqs.chunks(rvs_control::proto::BATCH_MAX) {
        let r = daemon.request(Request::Batch(chunk.to_vec())).await;
        for w in &r.warnings {
            tracing::warn!("{}: {w}", path.display());
        }
        let answers = match r.result {
            Ok(rvs_control::proto::Payload::Batch(a)) => a,
            other => {
                tracing::error!("{}: applying a batch: {other:?}", path.display());
                continue;
            }
        };
        for (req, a) in chunk.iter().zip(answers) {
            for w in &a.warnings {
                tracing::warn!("{}: {w}", path.display());
            }
            if let Err(e) = a.result {
                // The scratch run accepted the whole file, so this is unexpected; say what.
                tracing::error!("{}: applying {req:?}: {:?}", path.display(), e);
            }
        }
    }
    Ok(n)
}

/// `lvs_sync_daemon` of `cfg` as the follower follows it: the spec and the VRID of its
/// instance (an unknown instance is dropped: the config check already warned about it, and
/// keepalived then runs both daemons).
fn sync_target(cfg: &rvs_config::Config) -> rvsd::sync::follow::Target {
    let spec = cfg.global.lvs_sync_daemon.as_ref()?;
    let inst = spec
        .instance
        .as_ref()
        .and_then(|n| cfg.vrrp_instances.iter().find(|i| &i.name == n));
    let mut spec = spec.clone();
    if inst.is_none() {
        spec.instance = None;
    }
    Some((spec, inst.map(|i| i.vrid)))
}

/// Load `path` and set up the VRRP driver (started later by the caller); its status goes
/// into the metrics and tells the packet plane which VIPs are not this director's. With
/// `lvs_sync_daemon`, the resync gate is armed for `resync_hold` and the driver holds
/// preemption while it is. Also returns what the sync follower is to follow, started by the
/// caller once the table is in (so that the first resync finds the services its records
/// belong to).
fn prepare_vrrp(
    daemon: &Arc<Daemon>,
    path: &std::path::Path,
    config_id: Option<String>,
    explicit: bool,
    resync_hold: StdDuration,
) -> Result<
    (
        Option<rvsd::vrrp::Prepared>,
        rvsd::sync::follow::Target,
        rvsd::keepalived::netconf::StaticNet,
    ),
    String,
> {
    let opts = rvs_config::CheckOptions {
        config_id,
        check_interfaces: true,
    };
    let (cfg, diags) = rvs_config::load(path, &opts).map_err(|e| e.to_string())?;
    // With -f the LVS part already reported the file's diagnostics.
    if explicit {
        for d in &diags {
            tracing::warn!("{d}");
        }
    }
    let mut h = rvsd::vrrp::prepare(&cfg)?;
    // static_ipaddress / static_routes / static_rules: in place from now until rvsd stops.
    let statics = rvsd::keepalived::netconf::StaticNet::install(&cfg);
    match &h {
        Some(h) => daemon.lock().set_vrrp(h.status()),
        None if explicit => tracing::warn!("{}: no vrrp_instance", path.display()),
        None => {}
    }
    let target = sync_target(&cfg);
    if target.is_some() {
        let gate = daemon.lock().sync.gate.clone();
        gate.arm(resync_hold);
        if let Some(h) = h.as_mut() {
            h.hold_preempt_while(Arc::new(move || gate.holding()));
        }
    }
    Ok((h, target, statics))
}

/// SIGHUP: what `lvs_sync_daemon` says now in `path` (`None` when the file cannot be read:
/// the follower then keeps what it follows).
async fn reload_sync_target(
    path: &std::path::Path,
    config_id: Option<String>,
) -> Option<rvsd::sync::follow::Target> {
    let p = path.to_path_buf();
    let opts = rvs_config::CheckOptions {
        config_id,
        check_interfaces: true,
    };
    let loaded = rvsd::off_runtime::run(
        "lvs_sync_daemon reload",
        rvsd::off_runtime::READ_DEADLINE,
        move || rvs_config::load(&p, &opts),
    )
    .await;
    match loaded {
        Ok(Ok((cfg, _))) => Some(sync_target(&cfg)),
        _ => None,
    }
}

async fn run(args: Args) -> Result<(), String> {
    let socket_path = rvs_control::socket::resolve_socket_path(args.socket.as_deref())
        .map_err(|e| e.to_string())?;
    // etcd options are checked before anything starts (files, URLs, credentials).
    let etcd = match &args.etcd {
        Some(urls) => Some(rvsd::discovery::etcd::Etcd::new(
            &rvsd::discovery::etcd::EtcdOptions {
                urls: urls.clone(),
                prefix: args.etcd_prefix.clone(),
                cacert: args.etcd_cacert.clone(),
                cert: args.etcd_cert.clone(),
                key: args.etcd_key.clone(),
                user: args.etcd_user.clone(),
            },
        )?),
        None => None,
    };
    let clock = Clock::new();
    let planes = Planes {
        packet: !args.interface.is_empty(),
    };
    let state = Arc::new(Mutex::new(State::new(clock.now(), planes)));
    // Stopped (threads joined, nft guard removed) when dropped, on every way out of `run`.
    let packet_plane = if args.interface.is_empty() {
        None
    } else {
        let opts = rvsd::packet_plane::Options {
            marks: args.fwmark_rule.clone(),
            workers_per_interface: args.packet_workers,
            xdp: args.xdp,
            slow_path: args.xdp_slow_path,
            ..Default::default()
        };
        Some(
            rvsd::packet_plane::PacketPlane::start(&args.interface, state.clone(), clock, opts)
                .map_err(|e| format!("packet plane: {e}"))?,
        )
    };
    let balancer = Arc::new(DirectorBalancer {
        routes: rvsd::lock::lock(&state).routes.clone(),
        clock,
    });
    let workers = args.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let proxy = rvs_proxy::Proxy::start(
        rvs_proxy::ProxyConfig {
            workers,
            kernel_splice: args.proxy_splice,
            kernel_splice_after: args.proxy_splice_after,
            ..rvs_proxy::ProxyConfig::default()
        },
        balancer,
    )
    .map_err(|e| format!("cannot start the socket proxy: {e}"))?;
    let daemon = Arc::new(Daemon {
        state,
        clock,
        proxy: Mutex::new(Some(proxy)),
    });

    // Sysctls first: the table loaded below is then served with them from its first packet.
    let sysctls = args
        .sysctl
        .iter()
        .map(|(name, value)| {
            (
                format!("--sysctl {name}={value}"),
                Request::SetSysctl {
                    name: name.clone(),
                    value: value.clone(),
                },
            )
        })
        .collect();
    apply_all(&daemon, sysctls).await?;

    // VRRP instances come from the same keepalived.conf as the virtual servers (`-f`), or from
    // `--vrrp FILE` when the table comes from elsewhere (`--rules`). Set up (its status board
    // attached, every instance INIT) before the table is loaded, so that the packet plane
    // never owns or announces a VIP that VRRP has not made ours; started once the table is in.
    daemon.lock().sync.resync_rate = args.sync_resync_rate;
    let resync_hold = StdDuration::from_secs_f64(args.sync_resync_hold.clamp(0.0, 3600.0));
    let (vrrp, sync_follow, statics) = match args.vrrp.as_ref().or(args.use_file.as_ref()) {
        Some(path) => prepare_vrrp(
            &daemon,
            path,
            args.config_id.clone(),
            args.vrrp.is_some(),
            resync_hold,
        )?,
        None => (None, None, rvsd::keepalived::netconf::StaticNet::default()),
    };

    if args.demo {
        demo::start_real_servers()
            .await
            .map_err(|e| format!("demo real servers: {e}"))?;
        let reqs = demo::table()
            .into_iter()
            .map(|r| ("demo".to_string(), r))
            .collect();
        apply_all(&daemon, reqs).await?;
    }
    if let Some(path) = &args.rules {
        let n = load_rules(&daemon, path).await?;
        tracing::info!("{}: {n} changes applied", path.display());
    }

    let mut kconf = match &args.use_file {
        Some(path) => Some(
            rvsd::keepalived::Keepalived::start(
                daemon.clone(),
                path,
                rvs_config::CheckOptions {
                    config_id: args.config_id.clone(),
                    check_interfaces: true,
                },
                StdDuration::from_secs(args.drain_time),
            )
            .await?,
        ),
        None => None,
    };
    // Discovery sources start once the static table is in: they only add services of their
    // own and leave everything else alone.
    let docker_socket = args.docker.clone().or_else(|| {
        let path = args.use_file.as_ref()?;
        let opts = rvs_config::CheckOptions {
            config_id: args.config_id.clone(),
            check_interfaces: true,
        };
        rvs_config::load(path, &opts)
            .ok()
            .and_then(|(cfg, _)| cfg.global.rvs_docker)
    });
    let drain = StdDuration::from_secs(args.drain_time);
    let mut discovery = Vec::new();
    if let Some(sock) = docker_socket {
        tracing::info!("following Docker containers on {}", sock.display());
        discovery.push(rvsd::discovery::spawn_docker(daemon.clone(), sock, drain));
    }
    if let Some(e) = etcd {
        tracing::info!("following {}", e.owner);
        discovery.push(rvsd::discovery::spawn_etcd(daemon.clone(), e, drain));
    }
    // Followed from the start when the file has `lvs_sync_daemon`, and from a reload that
    // adds one.
    let board = vrrp.as_ref().map(|v| v.status());
    let mut follower = sync_follow
        .is_some()
        .then(|| rvsd::sync::follow::spawn(daemon.clone(), sync_follow.clone(), board.clone()));
    let vrrp = vrrp.map(rvsd::vrrp::Prepared::start);
    // Announce once the table is in, so that no VIP is announced before it can be served.
    // `--announce-table` wins over keepalived.conf's `rvs_announce_table` (which a SIGHUP
    // re-reads: rvsd::announce_control).
    let announce_setting = match args.announce_table {
        Some(table) => Some(rvsd::announce_control::Setting {
            opts: rvsd::announce::Options {
                table,
                protocol: args.announce_protocol,
            },
            delay: StdDuration::from_secs_f64(args.announce_delay.clamp(0.0, 3600.0)),
        }),
        None => kconf
            .as_ref()
            .and_then(|k| k.announce_setting())
            .map(rvsd::announce_control::Setting::from),
    };
    let mut announcer = rvsd::announce_control::AnnounceControl::start(
        daemon.clone(),
        announce_setting,
        args.announce_table.is_some(),
    )?;

    let listener = control_server::bind(&socket_path)
        .map_err(|e| format!("control socket {}: {e}", socket_path.display()))?;
    let _socket_file = SocketFile(socket_path.clone());
    if let Some(p) = &args.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .map_err(|e| format!("pidfile {}: {e}", p.display()))?;
    }
    let control = tokio::spawn(control_server::serve(listener, daemon.clone()));
    let ticker = tokio::spawn(daemon.clone().ticker());
    let metrics_task = if args.metrics_listen != "off" {
        let l = tokio::net::TcpListener::bind(&args.metrics_listen)
            .await
            .map_err(|e| format!("metrics listener {}: {e}", args.metrics_listen))?;
        Some(tokio::spawn(rvsd::web::serve(l, daemon.clone())))
    } else {
        None
    };
    tracing::info!(
        "rvsd {} ready: control socket {}",
        env!("CARGO_PKG_VERSION"),
        socket_path.display()
    );
    if args.demo {
        println!("{}", demo::banner(&socket_path));
    }
    // Table, planes, VRRP, control socket and metrics are up: tell systemd (Type=notify).
    rvsd::sd_notify::notify(&format!(
        "READY=1\n{}",
        rvsd::sd_notify::status_line(&status_summary(&daemon))
    ));

    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    'signals: loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                rvsd::sd_notify::notify("RELOADING=1\nSTATUS=reloading");
                let _ready = ReadyAgain(&daemon);
                // The files are read off the runtime (rvsd::off_runtime), so the control
                // socket, the ticker and the checkers go on meanwhile; SIGTERM/SIGINT during a
                // reload drop it (nothing of it was applied yet if it was still reading).
                let reload = async {
                    let vrrp_file = args.vrrp.as_ref().or(args.use_file.as_ref());
                    if let (Some(v), Some(path)) = (&vrrp, vrrp_file) {
                        v.reload_file(path, args.config_id.clone()).await;
                    }
                    if let Some(path) = vrrp_file {
                        if let Some(t) = reload_sync_target(path, args.config_id.clone()).await {
                            match &follower {
                                Some(f) => f.set(t),
                                None if t.is_some() => {
                                    let b = vrrp.as_ref().map(|v| v.status());
                                    follower =
                                        Some(rvsd::sync::follow::spawn(daemon.clone(), t, b));
                                }
                                None => {}
                            }
                        }
                    }
                    if let Some(k) = kconf.as_mut() {
                        if k.reload().await.is_ok() {
                            announcer.follow_file(k.announce_setting());
                        }
                        return;
                    }
                    match &args.rules {
                        Some(path) => match load_rules(&daemon, path).await {
                            Ok(n) => {
                                tracing::info!("SIGHUP: {}: {n} changes applied", path.display())
                            }
                            Err(e) => tracing::error!("SIGHUP: keeping the running table: {e}"),
                        },
                        None => tracing::info!("SIGHUP: no rules file to re-read"),
                    }
                };
                tokio::select! {
                    _ = reload => {}
                    _ = term.recv() => {
                        tracing::warn!("SIGTERM during a reload: the reload is abandoned");
                        break 'signals;
                    }
                    _ = int.recv() => {
                        tracing::warn!("SIGINT during a reload: the reload is abandoned");
                        break 'signals;
                    }
                }
            }
        }
    }

    // Scale-out: the routers stop sending new flows here first; rvsd forwards what still
    // arrives until they have converged, and only then drains.
    if let Some(delay) = announcer.withdraw_for_stop() {
        rvsd::sd_notify::notify("STATUS=routes withdrawn, waiting for the routers");
        tokio::time::sleep(delay).await;
    }
    tracing::info!(
        "shutting down: no new connections; open ones may finish within {} s",
        args.drain_time
    );
    rvsd::sd_notify::notify(&format!(
        "STOPPING=1\nSTATUS=draining: open connections may finish within {} s",
        args.drain_time
    ));
    if let Some(v) = vrrp {
        v.shutdown().await;
    }
    statics.remove();
    control.abort();
    for d in discovery {
        d.abort();
    }
    if let Some(k) = kconf {
        k.shutdown().await;
    }
    if let Some(m) = metrics_task {
        m.abort();
    }
    ticker.abort();
    let drain = StdDuration::from_secs(args.drain_time);
    let d = daemon.clone();
    let report = tokio::task::spawn_blocking(move || {
        let proxy = rvsd::lock::lock(&d.proxy).take();
        proxy.map(|p| p.shutdown(drain))
    })
    .await
    .map_err(|e| e.to_string())?;
    if let Some(r) = report {
        tracing::info!(
            "drained: {} connection(s) aborted at the deadline",
            r.aborted
        );
    }
    if let Some(p) = packet_plane {
        p.stop();
    }
    if let Some(p) = &args.pidfile {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}
