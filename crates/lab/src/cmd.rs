//! Running programs inside a namespace: one-shot commands with a deadline, and long-running
//! processes that are killed when their handle is dropped.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{LabError, Result};

/// Default deadline of a one-shot command: long enough for a slow CI box, short enough that a hung
/// program cannot stall a test suite.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often we look at a child that has not finished yet.
const POLL: Duration = Duration::from_millis(5);

/// A command to run inside a network namespace (`ip netns exec NS program args…`), or on the host
/// when built with [`NsCommand::host`].
///
/// Every run is bounded: [`NsCommand::output`] kills the program when its timeout expires.
#[derive(Debug)]
pub struct NsCommand {
    argv: Vec<String>,
    timeout: Duration,
    stdin: Option<Vec<u8>>,
    envs: Vec<(String, String)>,
}

/// What a finished command produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything written on stdout.
    pub stdout: Vec<u8>,
    /// Everything written on stderr.
    pub stderr: Vec<u8>,
}

impl Output {
    /// stdout as (lossy) UTF-8.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

impl NsCommand {
    /// `program` run inside namespace `netns` through `ip netns exec`, which also remounts `/sys`
    /// so that `/sys/class/net` shows the namespace's interfaces.
    pub fn new(netns: &str, program: &str) -> Self {
        NsCommand {
            argv: vec![
                "ip".into(),
                "netns".into(),
                "exec".into(),
                netns.into(),
                program.into(),
            ],
            timeout: DEFAULT_TIMEOUT,
            stdin: None,
            envs: Vec::new(),
        }
    }

    /// `program` run in the caller's own namespace (used for `ip netns add/del` and friends).
    pub fn host(program: &str) -> Self {
        NsCommand {
            argv: vec![program.into()],
            timeout: DEFAULT_TIMEOUT,
            stdin: None,
            envs: Vec::new(),
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<str>) -> Self {
        self.argv.push(arg.as_ref().to_owned());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.argv
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the program.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Deadline for [`NsCommand::output`] / [`NsCommand::run`] (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Bytes fed to the program's stdin (stdin is empty otherwise).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// The command line, space separated, for messages.
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }

    fn std_command(&self) -> Command {
        let mut c = Command::new(&self.argv[0]);
        c.args(&self.argv[1..]);
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c
    }

    /// Runs to completion (or until the timeout, when the program is killed and
    /// [`LabError::Timeout`] returned) and returns whatever it produced, successful or not.
    pub fn output(self) -> Result<Output> {
        let mut cmd = self.std_command();
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| LabError::Spawn {
            command: self.display(),
            source,
        })?;
        // Pipes are drained on threads so that a chatty program cannot fill a pipe and block
        // while we wait for it to exit.
        let feeder = match (child.stdin.take(), self.stdin.clone()) {
            (Some(mut pipe), Some(bytes)) => Some(thread::spawn(move || {
                // A program that exits without reading its input is not an error here.
                let _ = pipe.write_all(&bytes);
            })),
            _ => None,
        };
        let out = drain(child.stdout.take());
        let err = drain(child.stderr.take());
        let status = wait_deadline(&mut child, self.timeout);
        let grace = Instant::now() + DRAIN_GRACE;
        let stdout = out.collect(grace);
        let stderr = err.collect(grace);
        // The feeder ends when the program exits (its stdin pipe breaks) or has read it all.
        drop(feeder);
        match status {
            Some(status) => Ok(Output {
                status,
                stdout,
                stderr,
            }),
            None => Err(LabError::Timeout {
                what: self.display(),
                after: self.timeout,
            }),
        }
    }

    /// Runs to completion and fails unless the program exits 0; returns stdout.
    pub fn run(self) -> Result<String> {
        let command = self.display();
        let out = self.output()?;
        if out.status.success() {
            Ok(out.stdout_str())
        } else {
            Err(LabError::Command {
                command,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    /// Starts the program in the background. The returned handle kills it when dropped.
    /// stdin is the bytes given with [`NsCommand::stdin`] (then closed) or empty; stdout and
    /// stderr are discarded (see [`NsCommand::spawn_captured`]).
    pub fn spawn(self) -> Result<NsChild> {
        self.spawn_with(Stdio::null(), Stdio::null())
    }

    /// Like [`NsCommand::spawn`] with stdout captured: read it with [`NsChild::wait_output`].
    pub fn spawn_captured(self) -> Result<NsChild> {
        self.spawn_with(Stdio::piped(), Stdio::piped())
    }

    fn spawn_with(self, stdout: Stdio, stderr: Stdio) -> Result<NsChild> {
        let mut cmd = self.std_command();
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(stdout)
        .stderr(stderr);
        let mut child = cmd.spawn().map_err(|source| LabError::Spawn {
            command: self.display(),
            source,
        })?;
        let command = self.display();
        if let (Some(mut pipe), Some(bytes)) = (child.stdin.take(), self.stdin) {
            thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let out = child.stdout.take().map(|p| drain(Some(p)));
        let err = child.stderr.take().map(|p| drain(Some(p)));
        Ok(NsChild {
            child: Some(child),
            command,
            out,
            err,
        })
    }
}

/// A pipe being read to its end on a thread.
#[derive(Debug)]
struct Drain {
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

/// How long we wait for a pipe to reach end-of-file after its program exited. A daemon the
/// program left behind may keep the pipe open forever; we then return what was read so far
/// rather than hang.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

impl Drain {
    /// What the pipe delivered, waiting for its end at most until `deadline`.
    fn collect(self, deadline: Instant) -> Vec<u8> {
        let _ = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let mut buf = self
            .buf
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::take(&mut *buf)
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Drain {
    let (tx, done) = mpsc::channel();
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buf);
    thread::spawn(move || {
        if let Some(mut p) = pipe {
            let mut chunk = [0u8; 4096];
            // Ends at end-of-file or on a read error; each read makes progress or ends it.
            while let Ok(n @ 1..) = p.read(&mut chunk) {
                sink.lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .extend_from_slice(&chunk[..n]);
            }
        }
        let _ = tx.send(());
    });
    Drain { buf, done }
}

/// Waits for `child` at most `timeout`; on expiry kills it (SIGKILL), reaps it and returns `None`.
fn wait_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// A long-running process started inside a namespace. Dropping the handle stops it: SIGTERM,
/// then SIGKILL if it is still alive after a short grace period (nginx needs the TERM to take
/// its workers down with it).
#[derive(Debug)]
pub struct NsChild {
    child: Option<Child>,
    command: String,
    out: Option<Drain>,
    err: Option<Drain>,
}

/// Grace period between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_millis(1000);

impl NsChild {
    /// Process id (`ip netns exec` execs the program, so this is the program itself).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The command line it was started with.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Waits at most `timeout` for the process to exit by itself; kills it on expiry and returns
    /// [`LabError::Timeout`]. Returns what it printed when started with
    /// [`NsCommand::spawn_captured`] (empty otherwise).
    pub fn wait_output(mut self, timeout: Duration) -> Result<Output> {
        let Some(mut child) = self.child.take() else {
            return Err(LabError::Invalid(format!(
                "{} already reaped",
                self.command
            )));
        };
        let status = wait_deadline(&mut child, timeout);
        let grace = Instant::now() + DRAIN_GRACE;
        let stdout = self.out.take().map(|d| d.collect(grace));
        let stderr = self.err.take().map(|d| d.collect(grace));
        match status {
            Some(status) => Ok(Output {
                status,
                stdout: stdout.unwrap_or_default(),
                stderr: stderr.unwrap_or_default(),
            }),
            None => Err(LabError::Timeout {
                what: self.command.clone(),
                after: timeout,
            }),
        }
    }

    /// Leaves the process running after the handle is gone (the `rvs-lab up` command uses this;
    /// `rvs-lab down` later kills everything inside the lab's namespaces). Returns its pid.
    pub fn detach(mut self) -> Option<u32> {
        self.child.take().map(|c| c.id())
    }

    /// Stops the process now (same as dropping the handle).
    pub fn stop(mut self) {
        self.terminate();
    }

    /// Kills the process now (SIGKILL, no grace: like a crash) and reaps it.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `sig` to the process (not reaped; see [`NsChild::wait_output`]).
    pub fn signal(&self, sig: Signal) {
        if let Some(pid) = self.pid().and_then(|p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }

    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            if wait_deadline(&mut child, GRACE).is_none() {
                // wait_deadline already sent SIGKILL and reaped it.
            }
        } else {
            let _ = child.wait();
        }
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        self.terminate();
    }
}
