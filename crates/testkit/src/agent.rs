//! A load agent speaking HAProxy's agent protocol, for AGENT_CHECK tests: a python3 TCP
//! server that answers every connection with the current contents of a reply file and closes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::proc::Proc;
use crate::wait::wait_until;

const SERVER: &str = r#"
import socket, sys
ip, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET6 if ':' in ip else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((ip, port))
s.listen(64)
while True:
    c, _ = s.accept()
    try:
        with open(path, 'rb') as f:
            c.sendall(f.read())
    except OSError:
        pass
    c.close()
"#;

/// The agent process; killed on drop.
#[derive(Debug)]
pub struct Agent {
    _proc: Proc,
    reply: PathBuf,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Agent {
    /// Start an agent on `addr` answering `reply` (a line such as `"75%\n"`); the reply file
    /// lives in `dir`. Waits (bounded) until it accepts connections.
    ///
    /// # Panics
    /// If python3 cannot be started or the agent does not listen within 5 s.
    pub fn start(dir: &Path, addr: SocketAddr, reply: &str) -> Agent {
        let file = dir.join(format!("agent-{}-{}", addr.ip(), addr.port()));
        std::fs::write(&file, reply).expect("agent reply file");
        let mut cmd = Command::new("python3");
        cmd.args(["-c", SERVER])
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let proc = Proc::spawn("python3 agent", cmd);
        let up = wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        assert!(up, "agent on {addr} never listened");
        Agent {
            _proc: proc,
            reply: file,
            addr,
        }
    }

    /// Answer `reply` from the next connection on.
    ///
    /// # Panics
    /// If the reply file cannot be written.
    pub fn set(&self, reply: &str) {
        // Write then rename, so a connection never reads a half-written reply.
        let tmp = self.reply.with_extension("new");
        std::fs::write(&tmp, reply).expect("agent reply file");
        std::fs::rename(&tmp, &self.reply).expect("agent reply file");
    }
}
