//! A real server that answers HTTP after a fixed delay (python3 asyncio), for latency-aware
//! scheduling tests: one request per connection, `Connection: close`.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::proc::Proc;
use crate::wait::wait_until;

const SERVER: &str = r#"
import asyncio, sys
host, port, delay, body = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) / 1000.0, sys.argv[4].encode()
RESP = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body
async def serve(r, w):
    try:
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = await r.read(4096)
            if not chunk:
                return
            data += chunk
        await asyncio.sleep(delay)
        w.write(RESP)
        await w.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        w.close()
async def main():
    s = await asyncio.start_server(serve, host, port, backlog=1024, reuse_address=True)
    async with s:
        await s.serve_forever()
asyncio.run(main())
"#;

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
