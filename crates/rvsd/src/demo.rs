//! `rvsd --demo`: two small built-in HTTP real servers on loopback and a round-robin virtual
//! service over them, so a newcomer can try rvs without any other program.

use std::net::SocketAddr;

use rvs_control::model as m;
use rvs_control::proto::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The demo's virtual service.
pub const VIP: &str = "127.0.0.1:8080";
/// The demo's real servers and the names they answer with.
pub const REAL_SERVERS: [(&str, &str); 2] =
    [("RS1", "127.0.0.11:8081"), ("RS2", "127.0.0.12:8081")];

/// The requests that set the demo table up: `-A -t 127.0.0.1:8080 -s rr` and two `-m` real
/// servers.
pub fn table() -> Vec<Request> {
    let vip: SocketAddr = VIP.parse().expect("constant address");
    let key = m::ServiceKey::Addr {
        protocol: m::Protocol::Tcp,
        addr: vip.ip(),
        port: vip.port(),
    };
    let mut spec = m::ServiceSpec::with_defaults(key.clone());
    spec.scheduler = "rr".into();
    let mut reqs = vec![Request::AddService(spec)];
    // Added in reverse so that the kernel's list order (newest first) is RS1, RS2 and rr
    // answers RS1 first.
    for (_, rs) in REAL_SERVERS.iter().rev() {
        let a: SocketAddr = rs.parse().expect("constant address");
        let mut d = m::DestSpec::with_defaults(a.ip(), a.port());
        d.method = m::ForwardMethod::Masq;
        reqs.push(Request::AddDest {
            service: key.clone(),
            dest: d,
        });
    }
    reqs
}

/// What to try, printed at start.
pub fn banner(socket: &std::path::Path) -> String {
    let sock = socket.display();
    format!(
        "rvsd demo: virtual service TCP {VIP} (rr) → RS1 127.0.0.11:8081, RS2 127.0.0.12:8081 (NAT)\n\
         Try:\n  curl http://{VIP}/      # twice: RS1 then RS2 (round robin)\n  \
         rvsadm --socket {sock} -Ln\n  rvsadm --socket {sock} -Ln --stats\n  rvsadm --socket {sock} -Lnc\n\
         Stop with Ctrl-C."
    )
}

/// Start the built-in real servers (one task each).
pub async fn start_real_servers() -> std::io::Result<()> {
    for (name, addr) in REAL_SERVERS {
        let a: SocketAddr = addr.parse().expect("constant address");
        let l = TcpListener::bind(a).await?;
        let body = format!("{name} server - {}\n", a.ip());
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else {
                    continue;
                };
                let body = body.clone();
                tokio::spawn(async move {
                    let _ = http_session(s, &body).await;
                });
            }
        });
    }
    Ok(())
}

/// Answer HTTP/1.x requests on one connection with `body`, honouring keep-alive.
async fn http_session(mut s: TcpStream, body: &str) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(2048);
    let mut tmp = [0u8; 2048];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 16 * 1024 {
                return Ok(());
            }
            let n = s.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let http10 = head.lines().next().is_some_and(|l| l.ends_with("http/1.0"));
        let close = head.contains("connection: close") || (http10 && !head.contains("keep-alive"));
        buf.drain(..end);
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        s.write_all(resp.as_bytes()).await?;
        if close {
            return s.shutdown().await;
        }
    }
}
