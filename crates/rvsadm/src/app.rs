//! Running parsed commands against rvsd: requests, ipvsadm's error texts and exit codes.

use crate::args::{parse_command, Command, Format, Parsed};
use crate::format;
use crate::names::Names;
use crate::restore::{read_line, ByteReader};
use rvs_control::proto::BATCH_MAX;
use rvs_control::*;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use thiserror::Error;

/// Something that answers requests: rvsd over its socket in production, anything else in tests.
pub trait Backend {
    /// Sends one request and returns the response.
    fn call(&mut self, req: &Request) -> Result<Response, BackendError>;
}

/// rvsd could not be reached or the conversation broke.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// The real backend: connects lazily to the rvsd socket on the first request.
pub struct SocketBackend {
    cli_socket: Option<PathBuf>,
    client: Option<Client>,
}

impl SocketBackend {
    /// `cli_socket` is the `--socket` value, if given.
    pub fn new(cli_socket: Option<PathBuf>) -> Self {
        SocketBackend {
            cli_socket,
            client: None,
        }
    }
}

impl Backend for SocketBackend {
    fn call(&mut self, req: &Request) -> Result<Response, BackendError> {
        if self.client.is_none() {
            let path = resolve_socket_path(self.cli_socket.as_deref())
                .map_err(|e| BackendError(e.to_string()))?;
            let client = Client::connect(&path, concat!("rvsadm ", env!("CARGO_PKG_VERSION")))
                .map_err(|e| BackendError(e.to_string()))?;
            self.client = Some(client);
        }
        let client = self.client.as_mut().expect("connected above");
        client.call(req).map_err(|e| BackendError(e.to_string()))
    }
}

/// Removes `--socket PATH` / `--socket=PATH` (an rvs option that popt-style parsing must not
/// see) from the arguments, up to a `--`. Returns the path, or an error line.
pub fn take_socket_option(args: &mut Vec<String>) -> Result<Option<PathBuf>, String> {
    let mut found = None;
    let mut i = 1;
    while i < args.len() {
        if args[i] == "--" {
            break;
        }
        if let Some(p) = args[i].strip_prefix("--socket=") {
            found = Some(PathBuf::from(p));
            args.remove(i);
            continue;
        }
        if args[i] == "--socket" {
            if i + 1 >= args.len() {
                return Err("--socket: missing argument".to_string());
            }
            found = Some(PathBuf::from(args[i + 1].clone()));
            args.drain(i..i + 2);
            continue;
        }
        i += 1;
    }
    Ok(found)
}

/// Which libipvs call an error belongs to (`ipvs_func`), for `ipvs_strerror`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `--sysctl` (rvs): rvsd's text names the sysctl and the rule, as sysctl(8) would.
    Sysctl,
    /// `ipvs_add_service`.
    AddService,
    /// `ipvs_update_service`.
    EditService,
    /// `ipvs_del_service`.
    DelService,
    /// `ipvs_zero_service`.
    Zero,
    /// `ipvs_add_dest`.
    AddDest,
    /// `ipvs_update_dest`.
    EditDest,
    /// `ipvs_del_dest`.
    DelDest,
    /// `ipvs_start_daemon`.
    StartDaemon,
    /// `ipvs_stop_daemon`.
    StopDaemon,
    /// `ipvs_get_services`.
    GetServices,
    /// `ipvs_get_service`.
    GetService,
    /// `--add-laddr` (rvs).
    AddLaddr,
    /// `--del-laddr` (rvs).
    DelLaddr,
    /// `--get-laddr` (rvs).
    GetLaddr,
    /// Anything else (flush, timeouts, info, connections, daemons).
    Other,
}

/// `ipvs_strerror`: ipvsadm's text for an error of operation `op`.
pub fn ipvs_strerror(op: Op, e: &RemoteError) -> String {
    use ErrorKind::*;
    if let (Op::Sysctl, Some(d)) = (op, &e.detail) {
        return d.clone();
    }
    let specific = match (op, e.kind) {
        (Op::AddService, Eexist) => Some("Service already exists"),
        (Op::AddService | Op::EditService, Enoent) => {
            Some("Scheduler or persistence engine not found")
        }
        (Op::EditService | Op::DelService | Op::Zero, Esrch) => Some("No such service"),
        (Op::AddDest | Op::EditDest | Op::DelDest, Esrch) => Some("Service not defined"),
        (Op::AddDest, Eexist) => Some("Destination already exists"),
        (Op::EditDest | Op::DelDest, Enoent) => Some("No such destination"),
        (Op::StartDaemon, Eexist) => Some("Daemon has already run"),
        (Op::StopDaemon, Esrch) => Some("No daemon is running"),
        (Op::GetServices | Op::GetService, Esrch) => Some("No such service"),
        (Op::AddLaddr | Op::DelLaddr | Op::GetLaddr, Esrch) => Some("Service not defined"),
        (Op::AddLaddr, Eexist) => Some("Local address already exists"),
        (Op::DelLaddr, Enoent) => Some("No such local address"),
        (_, Eperm) => Some("Permission denied (you must be root)"),
        (_, Einval) => {
            Some("Invalid operation.  Possibly wrong module version, address not unicast, ...")
        }
        (_, Enoprotoopt) => Some("Protocol not available"),
        (_, Enomem) => Some("Memory allocation problem"),
        (_, Eopnotsupp) => Some("Operation not supported with IPv6"),
        (_, Eafnosupport) => Some("Operation not supported with specified address family"),
        (_, Emsgsize) => Some("Module is wrong version"),
        _ => None,
    };
    match (specific, e.kind, &e.detail) {
        (Some(s), _, _) => s.to_string(),
        (None, Unsupported | ProtocolMismatch | Internal | CannotListen | Managed, Some(d)) => {
            d.clone()
        }
        (None, k, _) => k.strerror().to_string(),
    }
}

/// Whether a command is a table change that `-R` may queue into a batch (the commands behind
/// [`Request::is_batchable`]).
fn is_table_change(c: &Command) -> bool {
    matches!(
        c,
        Command::AddService(_)
            | Command::EditService(_)
            | Command::DelService(_)
            | Command::Zero(_)
            | Command::AddDest(..)
            | Command::EditDest(..)
            | Command::DelDest(..)
            | Command::Flush
            | Command::SetTimeouts(_)
            | Command::AddLaddr(..)
            | Command::DelLaddr(..)
    )
}

/// How a command ended: a status to return, or the whole process must exit now.
enum Flow {
    Return(i32),
    Exit(i32),
}

/// Minimum IPVS version ipvsadm 1.31 accepts without a warning (1.1.4).
const MIN_IPVS_VERSION: u32 = 0x0001_0104;

/// One rvsadm invocation.
pub struct App<'a> {
    backend: &'a mut dyn Backend,
    names: &'a dyn Names,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    info: Option<Info>,
    io_failed: bool,
    /// During `-R`: table changes not sent yet, with the call each answers for. They go to
    /// rvsd as one [`Request::Batch`] (see [`App::flush`]) when [`BATCH_MAX`] are queued, and
    /// before anything else is done or printed, so the output and the table are what line
    /// by line sending gives, at a cost independent of the table's size.
    pending: Option<Vec<(Request, Op)>>,
}

impl<'a> App<'a> {
    /// An invocation writing to `out`/`err`, resolving names with `names`.
    pub fn new(
        backend: &'a mut dyn Backend,
        names: &'a dyn Names,
        out: &'a mut dyn Write,
        err: &'a mut dyn Write,
    ) -> Self {
        App {
            backend,
            names,
            out,
            err,
            info: None,
            io_failed: false,
            pending: None,
        }
    }

    fn put(&mut self, s: &str) {
        if !self.io_failed && self.out.write_all(s.as_bytes()).is_err() {
            self.io_failed = true;
        }
    }

    /// `-L --json`: `{"KEY": records}` with the control protocol's own records (the status
    /// page's `/api/status` uses the same ones), pretty-printed, one trailing newline.
    fn put_json(&mut self, key: &str, v: serde_json::Result<serde_json::Value>) {
        let doc = v.map(|v| serde_json::json!({ key: v }));
        match doc.and_then(|d| serde_json::to_string_pretty(&d)) {
            Ok(text) => self.put(&(text + "\n")),
            Err(e) => self.eput(&format!("rvsadm: cannot write JSON: {e}\n")),
        }
    }

    fn eput(&mut self, s: &str) {
        if !self.io_failed && self.err.write_all(s.as_bytes()).is_err() {
            self.io_failed = true;
        }
    }

    /// Runs `args` (with `args[0]` the program name); `stdin` feeds `-R`. Returns the exit
    /// status (ipvsadm's `-1` is 255).
    pub fn run(&mut self, args: &[String], stdin: &mut dyn BufRead) -> i32 {
        let code = match self.process(args, false, stdin) {
            Flow::Return(c) | Flow::Exit(c) => c,
        };
        let _ = self.out.flush();
        let _ = self.err.flush();
        if self.io_failed && code == 0 {
            1
        } else {
            code
        }
    }

    /// Sends a request; a transport failure ends the process with status 2 (one line).
    fn call(&mut self, req: &Request) -> Result<Response, Flow> {
        if self.info.is_none() && !matches!(req, Request::GetInfo) {
            self.fetch_info()?;
        }
        match self.backend.call(req) {
            Ok(r) => {
                for w in &r.warnings {
                    let line = format!("{w}\n");
                    self.eput(&line);
                }
                Ok(r)
            }
            Err(e) => {
                let line = format!("{e}\n");
                self.eput(&line);
                Err(Flow::Exit(2))
            }
        }
    }

    /// Like ipvsadm's start-up: fetch the version once and warn if it is too old.
    fn fetch_info(&mut self) -> Result<Info, Flow> {
        if let Some(i) = self.info {
            return Ok(i);
        }
        let r = self.call(&Request::GetInfo)?;
        let info = match r.result {
            Ok(Payload::Info(i)) => i,
            Ok(other) => return Err(self.unexpected(&other)),
            Err(e) => {
                let line = format!(
                    "Can't initialize ipvs: {}\nAre you sure that IP Virtual Server is built in the kernel or as module?\n",
                    ipvs_strerror(Op::Other, &e)
                );
                self.eput(&line);
                return Err(Flow::Exit(2));
            }
        };
        if info.version < MIN_IPVS_VERSION {
            let v = info.version;
            let line = format!(
                "Warning: IPVS version mismatch: \n  Kernel compiled with IPVS version {}.{}.{}\n  ipvsadm v1.31  requires minimum IPVS version 1.1.4\n\n",
                (v >> 16) & 0xff,
                (v >> 8) & 0xff,
                v & 0xff
            );
            self.eput(&line);
        }
        self.info = Some(info);
        Ok(info)
    }

    fn unexpected(&mut self, p: &Payload) -> Flow {
        let kind = match p {
            Payload::Hello { .. } => "hello",
            Payload::Done => "done",
            Payload::Info(_) => "info",
            Payload::Services(_) => "services",
            Payload::Service(_) => "service",
            Payload::Dests(_) => "dests",
            Payload::Conns(_) => "conns",
            Payload::Timeouts(_) => "timeouts",
            Payload::Daemons(_) => "daemons",
            Payload::LocalAddrs(_) => "local addresses",
            Payload::Vrrp(_) => "vrrp",
            Payload::Sysctls(_) => "sysctls",
            Payload::Batch(_) => "batch",
        };
        let line = format!("rvsd sent an unexpected answer ({kind})\n");
        self.eput(&line);
        Flow::Exit(1)
    }

    /// A listing request: data or print the error and exit 1 (ipvsadm's `exit(1)`).
    fn fetch(&mut self, req: Request, op: Op) -> Result<Payload, Flow> {
        let r = self.call(&req)?;
        match r.result {
            Ok(p) => Ok(p),
            Err(e) => {
                let line = format!("{}\n", ipvs_strerror(op, &e));
                self.eput(&line);
                Err(Flow::Exit(1))
            }
        }
    }

    /// A change request: 0, or print ipvsadm's text and return -1 (255). During `-R` a table
    /// change is queued instead (0 for now; its own status comes from [`App::flush`]).
    fn change(&mut self, req: Request, op: Op) -> Result<i32, Flow> {
        if let Some(p) = self.pending.as_mut() {
            if req.is_batchable() {
                p.push((req, op));
                if p.len() >= BATCH_MAX {
                    return Ok(self.flush()?.unwrap_or(0));
                }
                return Ok(0);
            }
        }
        let r = self.call(&req)?;
        self.answered(r.result, op)
    }

    /// The status of a change's answer, printing ipvsadm's text for an error.
    fn answered(&mut self, result: Result<Payload, RemoteError>, op: Op) -> Result<i32, Flow> {
        match result {
            Ok(Payload::Done) => Ok(0),
            Ok(other) => Err(self.unexpected(&other)),
            Err(e) => {
                let line = format!("{}\n", ipvs_strerror(op, &e));
                self.eput(&line);
                Ok(255)
            }
        }
    }

    /// Send the queued `-R` changes as one batch and print each answer as [`App::change`]
    /// would have. Returns the last one's status (`None`: nothing was queued).
    fn flush(&mut self) -> Result<Option<i32>, Flow> {
        let queued = match self.pending.as_mut() {
            Some(p) if !p.is_empty() => std::mem::take(p),
            _ => return Ok(None),
        };
        let (reqs, ops): (Vec<Request>, Vec<Op>) = queued.into_iter().unzip();
        let r = self.call(&Request::Batch(reqs))?;
        let answers = match r.result {
            Ok(Payload::Batch(a)) if a.len() == ops.len() => a,
            Ok(other) => return Err(self.unexpected(&other)),
            Err(e) => {
                let line = format!("{}\n", ipvs_strerror(Op::Other, &e));
                self.eput(&line);
                return Err(Flow::Exit(1));
            }
        };
        let mut code = 0;
        for (a, op) in answers.into_iter().zip(ops) {
            for w in &a.warnings {
                let line = format!("{w}\n");
                self.eput(&line);
            }
            code = self.answered(a.result, op)?;
        }
        Ok(Some(code))
    }

    fn process(&mut self, args: &[String], reading_stdin: bool, stdin: &mut dyn BufRead) -> Flow {
        let parsed = parse_command(args, reading_stdin, self.names);
        // Anything but a queued change is done after what is queued: send it first.
        let queues = matches!(&parsed, Ok(p) if is_table_change(&p.command));
        if !queues {
            if let Err(f) = self.flush() {
                return f;
            }
        }
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) => {
                self.put(&e.stdout);
                self.eput(&e.stderr);
                return if e.soft {
                    Flow::Return(e.code)
                } else {
                    Flow::Exit(e.code)
                };
            }
        };
        match self.execute(&parsed, args, stdin) {
            Ok(c) => Flow::Return(c),
            Err(f) => f,
        }
    }

    fn restore(&mut self, args: &[String], stdin: &mut dyn BufRead) -> Flow {
        let program = args.first().cloned().unwrap_or_else(|| "ipvsadm".into());
        let mut reader = ByteReader::new(stdin);
        let mut result = 0;
        let outer = self.pending.replace(Vec::new());
        let flow = self.restore_lines(&program, &mut reader, &mut result);
        // What is still queued is sent whatever ended the input; its last answer is the
        // last line's status.
        let sent = self.flush();
        self.pending = outer;
        match (flow, sent) {
            (Some(exit), _) | (None, Err(exit)) => exit,
            (None, Ok(Some(c))) => Flow::Return(c),
            (None, Ok(None)) => Flow::Return(result),
        }
    }

    /// The lines of a `-R` stream; `Some` when one ends the process.
    fn restore_lines(
        &mut self,
        program: &str,
        reader: &mut ByteReader<&mut dyn BufRead>,
        result: &mut i32,
    ) -> Option<Flow> {
        loop {
            let line = match read_line(reader, program) {
                Ok(Some(l)) => l,
                Ok(None) => return None,
                Err(e) => {
                    if let Err(f) = self.flush() {
                        return Some(f);
                    }
                    let line = format!("reading standard input: {e}\n");
                    self.eput(&line);
                    return Some(Flow::Exit(1));
                }
            };
            if line.len() > 1 {
                let mut no_input: &[u8] = &[];
                match self.process(&line, true, &mut no_input) {
                    Flow::Return(c) => *result = c,
                    Flow::Exit(c) => return Some(Flow::Exit(c)),
                }
            }
        }
    }

    fn execute(
        &mut self,
        p: &Parsed,
        args: &[String],
        stdin: &mut dyn BufRead,
    ) -> Result<i32, Flow> {
        let fmt: &Format = &p.format;
        let names = self.names;
        match &p.command {
            Command::ListAll => {
                let info = self.fetch_info()?;
                let services = match self.fetch(Request::GetServices, Op::GetServices)? {
                    Payload::Services(s) => s,
                    other => return Err(self.unexpected(&other)),
                };
                if fmt.json {
                    self.put_json("services", serde_json::to_value(&services));
                    return Ok(0);
                }
                let text = format::list_all(&info, &services, fmt, names);
                self.put(&text);
                Ok(0)
            }
            Command::Save => {
                let services = match self.fetch(Request::GetServices, Op::GetServices)? {
                    Payload::Services(s) => s,
                    other => return Err(self.unexpected(&other)),
                };
                let text = format::save(&services, fmt, names);
                self.put(&text);
                Ok(0)
            }
            Command::ListService(key) => {
                let entry = match self.fetch(Request::GetService(key.clone()), Op::GetService)? {
                    Payload::Service(s) => s,
                    other => return Err(self.unexpected(&other)),
                };
                if fmt.json {
                    self.put_json("services", serde_json::to_value([&entry]));
                    return Ok(0);
                }
                let text = format::list_service(&entry, fmt, names);
                self.put(&text);
                Ok(0)
            }
            Command::ListConns => {
                let conns = match self.fetch(Request::GetConns, Op::Other)? {
                    Payload::Conns(c) => c,
                    other => return Err(self.unexpected(&other)),
                };
                if fmt.json {
                    self.put_json("connections", serde_json::to_value(&conns));
                    return Ok(0);
                }
                let text = format::list_conns(&conns, fmt, names);
                self.put(&text);
                Ok(0)
            }
            Command::ListTimeout => {
                let t = match self.fetch(Request::GetTimeouts, Op::Other)? {
                    Payload::Timeouts(t) => t,
                    other => return Err(self.unexpected(&other)),
                };
                if fmt.json {
                    self.put_json("timeouts", serde_json::to_value(t));
                    return Ok(0);
                }
                self.put(&format::timeouts(&t));
                Ok(0)
            }
            Command::ListDaemon => {
                let d = match self.fetch(Request::GetDaemons, Op::Other)? {
                    Payload::Daemons(d) => d,
                    other => return Err(self.unexpected(&other)),
                };
                if fmt.json {
                    self.put_json("daemons", serde_json::to_value(&d));
                    return Ok(0);
                }
                self.put(&format::daemons(&d));
                Ok(0)
            }
            Command::ListVrrp => {
                let v = match self.fetch(Request::GetVrrp, Op::Other)? {
                    Payload::Vrrp(v) => v,
                    other => return Err(self.unexpected(&other)),
                };
                if fmt.json {
                    self.put_json("vrrp", serde_json::to_value(&v));
                    return Ok(0);
                }
                self.put(&format::vrrp(&v));
                Ok(0)
            }
            Command::GetSysctl(name) => {
                let all = match self.fetch(Request::GetSysctls, Op::Sysctl)? {
                    Payload::Sysctls(v) => v,
                    other => return Err(self.unexpected(&other)),
                };
                let shown: Vec<_> = match name {
                    None => all,
                    Some(n) => all.into_iter().filter(|e| &e.name == n).collect(),
                };
                if let (Some(n), true) = (name, shown.is_empty()) {
                    let line = format!("net.ipv4.vs.{n}: no such sysctl\n");
                    self.eput(&line);
                    return Err(Flow::Exit(1));
                }
                self.put(&format::sysctls(&shown));
                Ok(0)
            }
            Command::SetSysctl(name, value) => self.change(
                Request::SetSysctl {
                    name: name.clone(),
                    value: value.clone(),
                },
                Op::Sysctl,
            ),
            Command::GetLaddr(key) => {
                let l = match self.fetch(Request::GetLocalAddrs(key.clone()), Op::GetLaddr)? {
                    Payload::LocalAddrs(l) => l,
                    other => return Err(self.unexpected(&other)),
                };
                let text = format::laddrs(&l, fmt, names);
                self.put(&text);
                Ok(0)
            }
            Command::Restore => match self.restore(args, stdin) {
                Flow::Return(c) => Ok(c),
                exit => Err(exit),
            },
            Command::Flush => self.change(Request::Flush, Op::Other),
            Command::AddService(s) => self.change(Request::AddService(s.clone()), Op::AddService),
            Command::EditService(s) => {
                self.change(Request::EditService(s.clone()), Op::EditService)
            }
            Command::DelService(k) => self.change(Request::DelService(k.clone()), Op::DelService),
            Command::Zero(k) => self.change(Request::Zero(k.clone()), Op::Zero),
            Command::AddDest(k, d) => self.change(
                Request::AddDest {
                    service: k.clone(),
                    dest: d.clone(),
                },
                Op::AddDest,
            ),
            Command::EditDest(k, d) => self.change(
                Request::EditDest {
                    service: k.clone(),
                    dest: d.clone(),
                },
                Op::EditDest,
            ),
            Command::DelDest(k, addr, port) => self.change(
                Request::DelDest {
                    service: k.clone(),
                    addr: *addr,
                    port: *port,
                },
                Op::DelDest,
            ),
            Command::SetTimeouts(t) => self.change(Request::SetTimeouts(*t), Op::Other),
            Command::StartDaemon(d) => {
                self.change(Request::StartDaemon(d.clone()), Op::StartDaemon)
            }
            Command::StopDaemon(role, syncid) => self.change(
                Request::StopDaemon {
                    role: *role,
                    syncid: *syncid,
                },
                Op::StopDaemon,
            ),
            Command::AddLaddr(k, a) => self.change(
                Request::AddLocalAddr {
                    service: k.clone(),
                    addr: *a,
                },
                Op::AddLaddr,
            ),
            Command::DelLaddr(k, a) => self.change(
                Request::DelLocalAddr {
                    service: k.clone(),
                    addr: *a,
                },
                Op::DelLaddr,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_option_is_taken_out() {
        let mut a: Vec<String> = ["rvsadm", "-Ln", "--socket", "/x.sock", "--stats"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            take_socket_option(&mut a),
            Ok(Some(PathBuf::from("/x.sock")))
        );
        assert_eq!(a, vec!["rvsadm", "-Ln", "--stats"]);
        let mut b: Vec<String> = ["rvsadm", "--socket=/y", "-C"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(take_socket_option(&mut b), Ok(Some(PathBuf::from("/y"))));
        assert_eq!(b, vec!["rvsadm", "-C"]);
        let mut c: Vec<String> = ["rvsadm", "-C", "--socket"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(take_socket_option(&mut c).is_err());
    }

    #[test]
    fn strerror_texts() {
        let e = |k| RemoteError::new(k);
        assert_eq!(
            ipvs_strerror(Op::AddService, &e(ErrorKind::Eexist)),
            "Service already exists"
        );
        assert_eq!(
            ipvs_strerror(Op::AddDest, &e(ErrorKind::Esrch)),
            "Service not defined"
        );
        assert_eq!(
            ipvs_strerror(Op::DelDest, &e(ErrorKind::Enoent)),
            "No such destination"
        );
        assert_eq!(
            ipvs_strerror(Op::AddDest, &e(ErrorKind::Erange)),
            "Numerical result out of range"
        );
        assert_eq!(
            ipvs_strerror(Op::Other, &e(ErrorKind::Enodev)),
            "No such device"
        );
        assert_eq!(
            ipvs_strerror(
                Op::StartDaemon,
                &RemoteError::with_detail(ErrorKind::Unsupported, "no sync yet")
            ),
            "no sync yet"
        );
    }
}
