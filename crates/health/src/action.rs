//! What the engine asks the daemon to do.

use std::fmt;
use std::net::SocketAddr;

use crate::config::{Command, VsKey};

/// One step for the daemon to apply, in order, through the same path as rvsadm.
///
/// IPVS semantics the daemon must provide (docs/internals/keepalived.md#virtual-servers): "already exists" on add and "not found"
/// on remove are success; a [`Action::SetWeight`] on a missing destination falls back to an add.
/// The destination's forwarding method and thresholds come from the daemon's own config (the
/// real server's, or the VS's `sorry_server_lvs_method` when `sorry` is true).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Add a destination (`ipvsadm -a`).
    AddDest {
        /// Virtual service.
        vs: VsKey,
        /// Destination address.
        dest: SocketAddr,
        /// Weight to install.
        weight: u32,
        /// This is the sorry server.
        sorry: bool,
    },
    /// Edit a destination's weight (`ipvsadm -e`); add it if absent.
    SetWeight {
        /// Virtual service.
        vs: VsKey,
        /// Destination address.
        dest: SocketAddr,
        /// New weight.
        weight: u32,
        /// This is the sorry server.
        sorry: bool,
    },
    /// Delete a destination at once (`ipvsadm -d`): health failure, quorum, shutdown.
    RemoveDest {
        /// Virtual service.
        vs: VsKey,
        /// Destination address.
        dest: SocketAddr,
        /// This is the sorry server.
        sorry: bool,
    },
    /// The configuration no longer has this destination (reload, docs/internals/keepalived.md#reload-sighup). keepalived deletes
    /// it at once; rvs drains it instead (weight 0, delete when its connections end or after a
    /// bounded time, issue 5 item 4) — the policy is the daemon's.
    DrainDest {
        /// Virtual service.
        vs: VsKey,
        /// Destination address.
        dest: SocketAddr,
        /// This was the sorry server.
        sorry: bool,
    },
    /// Run a notify/quorum command asynchronously (docs/internals/keepalived.md#notifications). [`crate::run_command`] does it
    /// the way keepalived does.
    RunCommand(Command),
    /// A state change to report: `lvs_notify_fifo` line, log, metrics (docs/internals/keepalived.md#notifications). Comes after
    /// the IPVS change and the command, as in keepalived.
    Notify(Notification),
}

/// A real server or quorum state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// A real server became alive or not alive.
    RealServer {
        /// Virtual service.
        vs: VsKey,
        /// Real server.
        rs: SocketAddr,
        /// New state.
        up: bool,
    },
    /// A virtual service gained or lost quorum.
    Quorum {
        /// Virtual service.
        vs: VsKey,
        /// New state.
        up: bool,
    },
}

impl Notification {
    /// The `lvs_notify_fifo` line without the newline (docs/internals/keepalived.md#notifications), e.g.
    /// `RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 DOWN`. The RS is printed with the VS protocol.
    pub fn fifo_line(&self) -> String {
        let ud = |up: bool| if up { "UP" } else { "DOWN" };
        match self {
            Notification::RealServer { vs, rs, up } => {
                let proto = match vs {
                    VsKey::Addr { protocol, .. } => protocol.lower_name(),
                    _ => "none",
                };
                format!(
                    "RS [{}]:{}:{} {} {}",
                    rs.ip(),
                    proto,
                    rs.port(),
                    vs,
                    ud(*up)
                )
            }
            Notification::Quorum { vs, up } => format!("VS {} {}", vs, ud(*up)),
        }
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fifo_line())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Protocol;

    #[test]
    fn fifo_lines() {
        let vs = VsKey::Addr {
            protocol: Protocol::Tcp,
            addr: "192.168.201.15:80".parse().unwrap(),
        };
        let n = Notification::RealServer {
            vs: vs.clone(),
            rs: "1.2.3.4:80".parse().unwrap(),
            up: false,
        };
        assert_eq!(
            n.fifo_line(),
            "RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 DOWN"
        );
        let q = Notification::Quorum { vs, up: true };
        assert_eq!(q.fifo_line(), "VS [192.168.201.15]:tcp:80 UP");
    }
}
