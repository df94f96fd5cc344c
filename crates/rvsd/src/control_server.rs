//! The control socket: rvsadm's requests over a Unix stream, length-prefixed JSON frames, with a
//! version handshake first (see `rvs_control::codec`).
//!
//! A connection cannot make rvsd hold much or wait long: a request frame is at most
//! [`MAX_REQUEST_FRAME`] bytes (a longer length prefix is answered with `EMSGSIZE` naming the
//! limit and the connection is closed before any of the body is read), a frame must arrive
//! whole within [`FRAME_TIMEOUT`] of its first byte (a slowloris client is dropped), and a
//! connection idle for [`IDLE_TIMEOUT`] between requests is closed. Each connection is its
//! own task, so none of this delays the others.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rvs_control::codec::{encode, CodecError, FrameBuffer, MAX_REQUEST_FRAME};
use rvs_control::proto::{ErrorKind, Payload, RemoteError, Request, Response, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::time::Instant;

use crate::daemon::Daemon;

/// Bind the control socket at `path` with mode 0600, creating its directory (mode 0700) and
/// replacing a stale socket file that nobody listens on.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another rvsd is already listening on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Accept and serve control connections until the listener is dropped.
pub async fn serve(listener: UnixListener, daemon: Arc<Daemon>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let d = daemon.clone();
                tokio::spawn(async move {
                    if let Err(e) = session(stream, d).await {
                        tracing::debug!("control session ended: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("control socket accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn send(stream: &mut UnixStream, r: &Response) -> std::io::Result<()> {
    let bytes = encode(r).map_err(std::io::Error::other)?;
    stream.write_all(&bytes).await
}

/// How long a request frame may take to arrive, from its first byte to its last.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may stay open with no request in progress.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

async fn session(mut stream: UnixStream, daemon: Arc<Daemon>) -> std::io::Result<()> {
    let mut fb = FrameBuffer::with_limit(MAX_REQUEST_FRAME);
    let mut buf = vec![0u8; 64 * 1024];
    let mut greeted = false;
    loop {
        let idle_since = Instant::now();
        let mut frame_started: Option<Instant> = None;
        let req: Request = loop {
            match fb.next_message() {
                Ok(Some(r)) => break r,
                Ok(None) => {}
                Err(CodecError::TooLarge { len, limit }) => {
                    let detail = format!(
                        "request of {len} bytes exceeds the control socket's limit of {limit} \
                         bytes ({} MiB); connection closed",
                        limit >> 20
                    );
                    tracing::warn!("control connection: {detail}");
                    let r = Response::err(RemoteError::with_detail(ErrorKind::Emsgsize, detail));
                    return send(&mut stream, &r).await;
                }
                Err(e) => {
                    return Err(std::io::Error::other(e));
                }
            }
            if fb.pending() > 0 && frame_started.is_none() {
                frame_started = Some(Instant::now());
            }
            let deadline = match frame_started {
                Some(t) => t + FRAME_TIMEOUT,
                None => idle_since + IDLE_TIMEOUT,
            };
            let n = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(r) => r?,
                Err(_) => {
                    let why = match frame_started {
                        Some(_) => format!(
                            "a request frame did not arrive whole within {} s ({} bytes so far)",
                            FRAME_TIMEOUT.as_secs(),
                            fb.pending()
                        ),
                        None => format!("idle for {} s", IDLE_TIMEOUT.as_secs()),
                    };
                    tracing::info!("control connection closed: {why}");
                    return Ok(());
                }
            };
            if n == 0 {
                return Ok(());
            }
            fb.push(&buf[..n]);
        };
        if !greeted {
            match req {
                Request::Hello { protocol, .. } if protocol == PROTOCOL_VERSION => {
                    greeted = true;
                    let r = Response::ok(Payload::Hello {
                        protocol: PROTOCOL_VERSION,
                        server: format!("rvsd {}", env!("CARGO_PKG_VERSION")),
                    });
                    send(&mut stream, &r).await?;
                    continue;
                }
                Request::Hello { protocol, .. } => {
                    let r = Response::err(RemoteError {
                        kind: ErrorKind::ProtocolMismatch,
                        detail: Some(format!(
                            "rvsd speaks control protocol {PROTOCOL_VERSION}, the client {protocol}"
                        )),
                    });
                    return send(&mut stream, &r).await;
                }
                _ => {
                    let r = Response::err(RemoteError {
                        kind: ErrorKind::ProtocolMismatch,
                        detail: Some("the first message must be Hello".into()),
                    });
                    return send(&mut stream, &r).await;
                }
            }
        }
        let r = admit(&daemon, req).await;
        send(&mut stream, &r).await?;
    }
}

/// Apply an rvsadm request, except changes to entries a discovery source owns (etcd,
/// Docker): those are changed there, and refused here with a message naming the source. In a
/// batch (`rvsadm -R`) each refused request is answered in its place and the others are
/// applied, as a failed line does not stop ipvsadm -R.
async fn admit(daemon: &Arc<Daemon>, req: Request) -> Response {
    let refusals: Vec<Option<RemoteError>> = {
        let st = daemon.lock();
        match &req {
            Request::Batch(reqs) => reqs.iter().map(|r| st.managed.refusal(r)).collect(),
            r => vec![st.managed.refusal(r)],
        }
    };
    if refusals.iter().all(Option::is_none) {
        return daemon.request(req).await;
    }
    let Request::Batch(reqs) = req else {
        let e = refusals.into_iter().flatten().next();
        return Response::err(e.unwrap_or_else(|| RemoteError::new(ErrorKind::Internal)));
    };
    let allowed: Vec<Request> = reqs
        .into_iter()
        .zip(&refusals)
        .filter(|(_, r)| r.is_none())
        .map(|(q, _)| q)
        .collect();
    let mut resp = daemon.request(Request::Batch(allowed)).await;
    if let Ok(Payload::Batch(answers)) = &mut resp.result {
        let mut answers = std::mem::take(answers).into_iter();
        let merged = refusals
            .into_iter()
            .map(|r| match r {
                Some(e) => Response::err(e),
                None => answers
                    .next()
                    .unwrap_or_else(|| Response::err(RemoteError::new(ErrorKind::Internal))),
            })
            .collect();
        resp.result = Ok(Payload::Batch(merged));
    }
    resp
}

/// Removes the socket file when dropped.
pub struct SocketFile(pub PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
