//! A real server that answers HTTP after a fixed delay (python3 asyncio, `slow_http.py`, which
//! bench/latency.sh runs too), for latency-aware scheduling tests: one request per connection,
//! `Connection: close`.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::proc::Proc;
use crate::wait::wait_until;

/// The server itself, one file shared with bench/latency.sh.
const SERVER: &str = include_str!("slow_http.py");

/// The server process; killed on drop.
#[derive(Debug)]
pub struct SlowHttp {
    _proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl SlowHttp {
    /// Serve `body` on `addr`, each answer `delay` after the request arrived. Waits (bounded)
    /// until it accepts connections.
    ///
    /// # Panics
    /// If python3 cannot be started or the server does not listen within 5 s.
    pub fn start(addr: SocketAddr, delay: Duration, body: &str) -> SlowHttp {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", SERVER])
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(delay.as_millis().to_string())
            .arg(body)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let proc = Proc::spawn("python3 slow http", cmd);
        let up = wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        assert!(up, "slow http server on {addr} never listened");
        SlowHttp { _proc: proc, addr }
    }
}
