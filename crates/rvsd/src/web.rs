//! The HTTP listener (`--metrics-listen`): Prometheus metrics, the built-in status page and
//! its JSON.
//!
//! - `GET /metrics`: the Prometheus text exposition ([`crate::metrics::render`]).
//! - `GET /`: the status page — one self-contained HTML document (vanilla JavaScript, charts
//!   drawn on canvases; a Content-Security-Policy forbids anything from elsewhere) that polls
//!   the two documents below and redraws without reloading.
//! - `GET /api/status`: [`crate::status::StatusDoc`] as JSON (services, real servers, VRRP).
//! - `GET /api/history`: [`crate::status::History`] as JSON, the per-second rates of every
//!   service and real server over the last five minutes, sampled here once a second so that
//!   a page opened now already shows the minutes before.
//!
//! HTTP is handled by hand, as for the metrics before: a request head read with a size and
//! time bound, one response, the connection closed. Nothing here changes the table.

use crate::lock::lock;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::daemon::Daemon;
use crate::status::History;

/// The status page.
const PAGE: &str = include_str!("status_page.html");

/// The page may run its own inline script and style and fetch from this listener only.
const PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
                        style-src 'unsafe-inline'; connect-src 'self'; img-src data:";

/// Largest request head read.
const MAX_HEAD: usize = 8192;

struct Reply {
    status: &'static str,
    content_type: &'static str,
    extra: &'static str,
    body: String,
}

fn route(method: &str, path: &str, daemon: &Daemon, history: &Mutex<History>) -> Reply {
    let path = path.split('?').next().unwrap_or("");
    let ok = |content_type, body| Reply {
        status: "200 OK",
        content_type,
        extra: "",
        body,
    };
    if method != "GET" {
        return Reply {
            status: "405 Method Not Allowed",
            content_type: "text/plain",
            extra: "Allow: GET\r\n",
            body: "rvsd: only GET\n".into(),
        };
    }
    match path {
        "/metrics" => {
            daemon.sweep_xdp();
            ok(
                "text/plain; version=0.0.4",
                crate::metrics::render(&daemon.lock()),
            )
        }
        "/" | "/index.html" => Reply {
            status: "200 OK",
            content_type: "text/html; charset=utf-8",
            extra: "Cache-Control: no-store\r\n",
            body: PAGE.to_string(),
        },
        "/api/status" => {
            daemon.sweep_xdp();
            let doc = crate::status::snapshot(&daemon.lock());
            ok(
                "application/json",
                serde_json::to_string(&doc).unwrap_or_default(),
            )
        }
        "/api/history" => {
            let h = lock(history);
            ok(
                "application/json",
                serde_json::to_string(&*h).unwrap_or_default(),
            )
        }
        _ => Reply {
            status: "404 Not Found",
            content_type: "text/plain",
            extra: "",
            body: "rvsd: the status page is at /, metrics at /metrics, JSON at /api/status \
                   and /api/history\n"
                .into(),
        },
    }
}

async fn handle(mut s: tokio::net::TcpStream, daemon: Arc<Daemon>, history: Arc<Mutex<History>>) {
    let mut req = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    // Read the request head, bounded in size and time.
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < MAX_HEAD {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if read.is_err() {
        return;
    }
    let line = req.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    // Snapshots take the state and shard locks briefly; off the runtime thread regardless.
    let (m, p) = (method.to_string(), path.to_string());
    let Ok(r) = tokio::task::spawn_blocking(move || route(&m, &p, &daemon, &history)).await else {
        return;
    };
    let csp = if r.content_type.starts_with("text/html") {
        format!("Content-Security-Policy: {PAGE_CSP}\r\n")
    } else {
        String::new()
    };
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}{csp}Connection: close\r\n\r\n",
        r.status,
        r.content_type,
        r.body.len(),
        r.extra
    );
    let _ = s.write_all(head.as_bytes()).await;
    if method != "HEAD" {
        let _ = s.write_all(r.body.as_bytes()).await;
    }
    let _ = s.shutdown().await;
}

/// Serve the listener until dropped, sampling the charts' history once a second.
pub async fn serve(listener: TcpListener, daemon: Arc<Daemon>) {
    let history = Arc::new(Mutex::new(History::default()));
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                let (d, h) = (daemon.clone(), history.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    let doc = crate::status::snapshot_limited(
                        &d.lock(),
                        crate::status::HISTORY_SERIES,
                    );
                    lock(&h).sample(&doc);
                })
                .await;
            }
            a = listener.accept() => match a {
                Ok((s, _)) => {
                    tokio::spawn(handle(s, daemon.clone(), history.clone()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            },
        }
    }
}
