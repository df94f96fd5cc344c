//! MISC_CHECK (docs/internals/keepalived.md#checkers-and-their-timers) and running notify commands (docs/internals/keepalived.md#notifications).

use std::process::{ExitStatus, Stdio};

use super::MiscWeight;

/// Time between SIGTERM and SIGKILL for a MISC_CHECK program that overran `misc_timeout`.
const KILL_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
use crate::config::{Command, MiscCheck};
use crate::error::{Error, Result};

/// Look a user or group up by name (or take it as a number) in an `/etc/passwd`-style file.
/// Returns (id, primary gid) — the gid is only meaningful for passwd.
fn lookup(file: &str, name: &str) -> Result<(u32, u32)> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok((n, n));
    }
    let text = std::fs::read_to_string(file).map_err(Error::io("reading user database"))?;
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 3 && f[0] == name {
            let id = f[2]
                .parse()
                .map_err(|_| Error::Misc(format!("bad entry for {name} in {file}")))?;
            let gid = f.get(3).and_then(|g| g.parse().ok()).unwrap_or(id);
            return Ok((id, gid));
        }
    }
    Err(Error::Misc(format!(
        "unknown user/group {name:?} (not in {file})"
    )))
}

/// The user id and group id to run a command as: `user` from `/etc/passwd` (or a number), its
/// primary group unless `group` (from `/etc/group`, or a number) is given.
pub fn run_as_ids(user: &str, group: Option<&str>) -> Result<(u32, u32)> {
    let (uid, gid) = lookup("/etc/passwd", user)?;
    let gid = match group {
        Some(g) => lookup("/etc/group", g)?.0,
        None => gid,
    };
    Ok((uid, gid))
}

/// Build the process for `cmd`: argv executed directly (no shell, docs/internals/keepalived.md#notifications), stdio to
/// /dev/null, user/group switched when given.
fn process(cmd: &Command) -> Result<tokio::process::Command> {
    let (prog, args) = cmd
        .argv
        .split_first()
        .ok_or_else(|| Error::Misc("empty command".into()))?;
    let mut p = tokio::process::Command::new(prog);
    p.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(user) = &cmd.user {
        let (uid, gid) = run_as_ids(user, cmd.group.as_deref())?;
        p.uid(uid).gid(gid);
    } else if let Some(g) = &cmd.group {
        p.gid(lookup("/etc/group", g)?.0);
    }
    Ok(p)
}

/// Run a notify/quorum command to completion and return its exit status.
///
/// keepalived runs these asynchronously (docs/internals/keepalived.md#notifications): the daemon should spawn a task per
/// [`crate::Action::RunCommand`] rather than await this inline.
pub async fn run_command(cmd: &Command) -> Result<ExitStatus> {
    let mut p = process(cmd)?;
    p.kill_on_drop(false);
    let mut child = p
        .spawn()
        .map_err(|e| Error::Misc(format!("cannot run {:?}: {e}", cmd.argv[0])))?;
    child.wait().await.map_err(Error::io("waiting for command"))
}

pub(crate) async fn check(m: &MiscCheck) -> Result<Option<MiscWeight>> {
    let prog = m.command.argv.first().cloned().unwrap_or_default();
    let mut p = process(&m.command)?;
    // Own process group, so a timed-out script's children can be killed with it.
    p.process_group(0);
    let mut child = p
        .spawn()
        .map_err(|e| Error::Misc(format!("cannot run {prog:?}: {e}")))?;
    let status = match tokio::time::timeout(m.timeout, child.wait()).await {
        Err(_) => {
            // keepalived sends SIGTERM, then SIGKILL 2 s later (docs/internals/keepalived.md#checkers-and-their-timers).
            let pid = child
                .id()
                .and_then(|p| i32::try_from(p).ok())
                .and_then(rustix::process::Pid::from_raw);
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let exited = tokio::time::timeout(KILL_GRACE, child.wait()).await.is_ok();
            if !exited {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            // Whatever the script started dies with it (keepalived kills the group too).
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            return Err(Error::Misc(format!("{prog} timed out")));
        }
        Ok(r) => r.map_err(Error::io("waiting for MISC_CHECK program"))?,
    };
    match (status.code(), m.dynamic) {
        (Some(0), false) => Ok(None),
        (Some(0), true) => Ok(Some(MiscWeight::Configured)),
        (Some(c @ 2..=255), true) => Ok(Some(MiscWeight::Weight(c as u32 - 2))),
        (Some(c), _) => Err(Error::Misc(format!(
            "{prog} failed (exited with status {c})"
        ))),
        (None, _) => Err(Error::Misc(format!("{prog} killed by a signal"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_root_and_numbers() {
        assert_eq!(lookup("/etc/passwd", "root").unwrap(), (0, 0));
        assert_eq!(lookup("/etc/passwd", "1234").unwrap(), (1234, 1234));
        assert!(lookup("/etc/passwd", "no-such-user-rvs").is_err());
    }
}
