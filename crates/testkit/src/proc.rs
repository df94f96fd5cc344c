//! Processes the tests start: each in its own process group, killed with the group on drop.

use std::io::Write as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::rvsd::Adm;
use crate::wait::wait_until;

/// A child process in its own process group; the whole group is killed on drop — also when
/// a test panics — so nothing outlives the test.
#[derive(Debug)]
pub struct Proc {
    pub(crate) child: Child,
    name: String,
    done: Option<ExitStatus>,
}

impl Proc {
    /// Spawn `cmd` in a new process group.
    ///
    /// # Panics
    /// If it cannot be started.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            name: name.to_string(),
            done: None,
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal to the process (not its group).
    ///
    /// # Panics
    /// If the signal cannot be sent.
    pub fn signal(&self, sig: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.pid()).expect("pid fits i32"));
        nix::sys::signal::kill(pid, sig)
            .unwrap_or_else(|e| panic!("kill -{sig:?} {} ({}): {e}", self.pid(), self.name));
    }

    /// The exit status if the process has exited (non-blocking).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.done.is_none() {
            self.done = self.child.try_wait().expect("try_wait");
        }
        self.done
    }

    /// Wait for the process to exit, at most `limit`.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_until(limit, Duration::from_millis(20), || {
            self.try_status().is_some()
        });
        self.done
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The group id is the child's pid (process_group(0)); killing the group also takes
        // any children it forked. Only our own group is signalled.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Run `cmd` to completion with `stdin`, at most `limit` (killed and a panic beyond it).
///
/// # Panics
/// If it does not finish within `limit`.
pub fn run_bounded(name: &str, mut cmd: Command, stdin: &str, limit: Duration) -> Adm {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut p = Proc::spawn(name, cmd);
    let mut input = p.child.stdin.take().expect("stdin");
    // Readers on their own threads: a full pipe must not block the child.
    let read = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = read(p.child.stdout.take().map(|s| Box::new(s) as _));
    let err = read(p.child.stderr.take().map(|s| Box::new(s) as _));
    // A child that exits without reading its input is not an error here.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let st = p
        .wait_timeout(limit)
        .unwrap_or_else(|| panic!("{name} did not finish within {limit:?}"));
    Adm {
        code: st.code().unwrap_or(-1),
        out: out.join().expect("stdout reader"),
        err: err.join().expect("stderr reader"),
    }
}
