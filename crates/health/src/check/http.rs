//! HTTP_GET / SSL_GET (docs/internals/keepalived.md#checkers-and-their-timers): keepalived's request bytes, status code set, MD5 digest of
//! the body, TLS without certificate verification.

use std::sync::Arc;
use std::time::Duration;

use md5::{Digest, Md5};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{net, CheckContext, MiscWeight};
use crate::config::{HttpCheck, HttpProtocol, HttpUrl};
use crate::error::{Error, Result};

/// Largest response header block we accept before giving up on a url.
const MAX_HEADER: usize = 64 * 1024;

/// Largest body we read: a server streaming without end fails the check instead of holding
/// the checker forever (each read is bounded by `connect_timeout`, the whole body by this).
const MAX_BODY: u64 = 64 * 1024 * 1024;

/// Accepts any server certificate, like keepalived's SSL_GET (which never verifies the peer).
/// Handshake signatures are still checked with the provider's algorithms: that is part of TLS
/// itself, not of certificate trust.
#[derive(Debug)]
struct NoCertVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Client configs built once per engine: with and without SNI.
#[derive(Clone)]
pub(crate) struct TlsConfigs {
    sni: Arc<ClientConfig>,
    no_sni: Arc<ClientConfig>,
}

impl TlsConfigs {
    pub(crate) fn new() -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let build = |sni: bool| -> Result<Arc<ClientConfig>> {
            let mut c = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::Tls(e.to_string()))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoCertVerification(provider.clone())))
                .with_no_client_auth();
            c.enable_sni = sni;
            Ok(Arc::new(c))
        };
        Ok(TlsConfigs {
            sni: build(true)?,
            no_sni: build(false)?,
        })
    }
}

/// The `Host:` value: url `virtualhost` → checker (RS/VS-resolved) `virtualhost` →
/// `<connect ip>:<port>` (IPv6 bracketed), docs/internals/keepalived.md#checkers-and-their-timers.
fn host_header(h: &HttpCheck, url: &HttpUrl) -> String {
    url.virtualhost
        .clone()
        .or_else(|| h.virtualhost.clone())
        .unwrap_or_else(|| h.connect.connect.to_string())
}

/// keepalived's request bytes (docs/internals/keepalived.md#checkers-and-their-timers).
pub(crate) fn request(proto: HttpProtocol, path: &str, host: &str) -> String {
    let (minor, close) = match proto {
        HttpProtocol::Http10 => (0, false),
        HttpProtocol::Http10Close => (0, true),
        HttpProtocol::Http11 => (1, true),
    };
    format!(
        "GET {path} HTTP/1.{minor}\r\nUser-Agent: KeepAliveClient\r\n{}Host: {host}\r\n\r\n",
        if close { "Connection: close\r\n" } else { "" }
    )
}

pub(crate) async fn check(
    h: &HttpCheck,
    timeout: Duration,
    ctx: &CheckContext,
) -> Result<Option<MiscWeight>> {
    if h.urls.is_empty() {
        // keepalived: "HTTP/SSL_GET checker has no urls specified - ignoring" (docs/internals/keepalived.md#checkers-and-their-timers).
        return Err(Error::Unsupported(
            "HTTP_GET/SSL_GET checker has no url".into(),
        ));
    }
    for url in &h.urls {
        check_url(h, url, timeout, ctx).await?;
    }
    Ok(None)
}

pub(crate) async fn check_url(
    h: &HttpCheck,
    url: &HttpUrl,
    timeout: Duration,
    ctx: &CheckContext,
) -> Result<()> {
    let host = host_header(h, url);
    let req = request(h.protocol, &url.path, &host);
    let tcp = net::tcp_connect(&h.connect, timeout).await?;
    match &h.tls {
        None => exchange(tcp, &req, url, timeout).await,
        Some(tls) => {
            // keepalived sends SNI only with `enable_sni` and a virtual host (docs/internals/keepalived.md#checkers-and-their-timers).
            let vhost = url.virtualhost.as_ref().or(h.virtualhost.as_ref());
            let sni_name = if tls.enable_sni {
                vhost.and_then(|v| ServerName::try_from(v.clone()).ok())
            } else {
                None
            };
            let (cfg, name) = match sni_name {
                Some(n @ ServerName::DnsName(_)) => (ctx.tls.sni.clone(), n),
                _ => (
                    ctx.tls.no_sni.clone(),
                    ServerName::IpAddress(h.connect.connect.ip().into()),
                ),
            };
            let connector = tokio_rustls::TlsConnector::from(cfg);
            let stream = match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
                Err(_) => return Err(Error::Timeout("TLS handshake")),
                Ok(r) => r.map_err(|e| Error::Tls(e.to_string()))?,
            };
            exchange(stream, &req, url, timeout).await
        }
    }
}

/// Outcome of reading a response.
struct Response {
    status: u16,
    digest: [u8; 16],
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    req: &str,
    url: &HttpUrl,
    timeout: Duration,
) -> Result<()> {
    net::step(timeout, "HTTP write", s.write_all(req.as_bytes())).await?;
    net::step(timeout, "HTTP write", s.flush()).await?;
    let resp = read_response(&mut s, timeout).await?;
    judge(url, &resp)
}

/// Judgement in keepalived's order: status code, then digest (docs/internals/keepalived.md#checkers-and-their-timers).
fn judge(url: &HttpUrl, resp: &Response) -> Result<()> {
    let ok_status = if url.status_codes.is_empty() {
        (200..=299).contains(&resp.status)
    } else {
        url.status_codes
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&resp.status))
    };
    if !ok_status {
        return Err(Error::Http(format!(
            "status code error: {} for url {}",
            resp.status, url.path
        )));
    }
    if let Some(want) = url.digest {
        if want != resp.digest {
            return Err(Error::Http(format!(
                "MD5 digest error: got {} for url {}",
                hex(&resp.digest),
                url.path
            )));
        }
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn read_some<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut [u8],
    timeout: Duration,
) -> Result<usize> {
    match tokio::time::timeout(timeout, s.read(buf)).await {
        Err(_) => Err(Error::Timeout("HTTP read")),
        // A TLS peer closing without close_notify ends the body like a plain EOF.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
        Ok(r) => r.map_err(Error::io("HTTP read")),
    }
}

async fn read_response<S: AsyncRead + Unpin>(s: &mut S, timeout: Duration) -> Result<Response> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > MAX_HEADER {
            return Err(Error::Http("response header too large".into()));
        }
        let n = read_some(s, &mut chunk, timeout).await?;
        if n == 0 {
            return Err(Error::Http(if buf.is_empty() {
                "no data received".into()
            } else {
                "incomplete response header".into()
            }));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let status = match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => code
            .parse::<u16>()
            .map_err(|_| Error::Http(format!("bad status line {status_line:?}")))?,
        _ => return Err(Error::Http(format!("bad status line {status_line:?}"))),
    };
    let content_length = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<u64>().ok())
            .flatten()
    });
    // MD5 of the body, only the first Content-Length bytes if that header is present.
    let mut md5 = Md5::new();
    let mut remaining = content_length.unwrap_or(u64::MAX);
    let mut feed = |data: &[u8], remaining: &mut u64| {
        let take = (data.len() as u64).min(*remaining) as usize;
        md5.update(&data[..take]);
        *remaining -= take as u64;
    };
    feed(&buf[header_end..], &mut remaining);
    let mut total = (buf.len() - header_end) as u64;
    while remaining > 0 {
        let n = read_some(s, &mut chunk, timeout).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_BODY {
            return Err(Error::Http(format!("body larger than {MAX_BODY} bytes")));
        }
        feed(&chunk[..n], &mut remaining);
    }
    Ok(Response {
        status,
        digest: md5.finalize().into(),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes() {
        assert_eq!(
            request(HttpProtocol::Http10, "/x", "h:80"),
            "GET /x HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: h:80\r\n\r\n"
        );
        assert_eq!(
            request(HttpProtocol::Http10Close, "/", "h"),
            "GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: h\r\n\r\n"
        );
        assert_eq!(
            request(HttpProtocol::Http11, "/", "h"),
            "GET / HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: h\r\n\r\n"
        );
    }

    #[test]
    fn status_ranges_and_default() {
        let mut url = HttpUrl::new("/");
        let r = |status| Response {
            status,
            digest: [0; 16],
        };
        assert!(judge(&url, &r(204)).is_ok());
        assert!(judge(&url, &r(301)).is_err());
        url.status_codes = vec![(301, 302), (404, 404)];
        assert!(judge(&url, &r(302)).is_ok());
        assert!(judge(&url, &r(404)).is_ok());
        assert!(judge(&url, &r(200)).is_err());
    }

    #[tokio::test]
    async fn md5_limited_to_content_length() {
        let raw = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA".to_vec();
        let mut s = &raw[..];
        let r = read_response(&mut s, Duration::from_secs(1)).await.unwrap();
        assert_eq!(r.status, 200);
        let want: [u8; 16] = Md5::digest(b"hello").into();
        assert_eq!(r.digest, want);
    }
}
