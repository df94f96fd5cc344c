//! A headless Chromium driven over the Chrome DevTools Protocol: a WebSocket on loopback,
//! spoken with the little of RFC 6455 a client needs (handshake, masked text frames out,
//! unmasked frames in, ping/pong), so the test needs no WebSocket crate.
//!
//! Console messages of level error, uncaught exceptions and log entries of level error
//! (failed loads, CSP violations) are collected from the moment the page is opened.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{wait_until, which, Proc};

/// A running headless Chromium with one page attached.
pub struct Browser {
    _proc: Proc,
    _profile: tempfile::TempDir,
    ws: TcpStream,
    next_id: u64,
    /// Error-level console messages, exceptions and log entries seen so far.
    pub errors: Vec<String>,
    /// The browser's stderr.
    pub log: PathBuf,
}

/// `GET path` from the DevTools HTTP server (HTTP/1.1: it ignores 1.0 and keeps the
/// connection open, so the body is read by its length).
fn http_get(port: u16, path: &str) -> String {
    // Errors read as an empty answer: the caller polls until the browser is ready.
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return String::new();
    }
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        if s.read_exact(&mut b).is_err() {
            return String::new();
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len.min(1 << 20)];
    if s.read_exact(&mut body).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&body).into_owned()
}

impl Browser {
    /// Start Chromium (as the brief for root: `--no-sandbox`, a fresh profile, nothing from
    /// the network) and attach to its blank page.
    pub fn start(log_dir: &Path) -> Browser {
        let chromium = which("chromium").expect("chromium installed (checked by require!)");
        let profile = tempfile::Builder::new()
            .prefix("rvs-chromium-")
            .tempdir()
            .expect("profile dir");
        let log = log_dir.join("chromium.log");
        let mut cmd = Command::new(chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1280,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("chromium log"));
        let mut proc = Proc::spawn("chromium", cmd);
        let port_file = profile.path().join("DevToolsActivePort");
        let up = wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
            proc.try_status().is_some()
                || std::fs::read_to_string(&port_file).is_ok_and(|s| s.lines().count() >= 2)
        });
        assert!(
            up && proc.try_status().is_none(),
            "chromium did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let port: u16 = std::fs::read_to_string(&port_file)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim()
            .parse()
            .expect("DevTools port");
        // The blank page's own WebSocket (the list may take a moment to show it).
        let mut ws_url = None;
        wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
            let list: Value =
                serde_json::from_str(&http_get(port, "/json/list")).unwrap_or(json!([]));
            ws_url = list.as_array().and_then(|a| {
                a.iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(String::from))
            });
            ws_url.is_some()
        });
        let ws_url = ws_url.unwrap_or_else(|| {
            panic!(
                "no page target in /json/list: {}",
                http_get(port, "/json/list")
            )
        });
        let path = ws_url
            .splitn(4, '/')
            .nth(3)
            .map(|p| format!("/{p}"))
            .expect("ws path");
        let mut ws = TcpStream::connect(("127.0.0.1", port)).expect("connect to the page");
        ws.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            ws,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        // The handshake answer, read byte by byte so nothing after it is consumed.
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
            ws.read_exact(&mut b).expect("handshake answer");
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "WebSocket refused: {head}"
        );
        let mut br = Browser {
            _proc: proc,
            _profile: profile,
            ws,
            next_id: 0,
            errors: Vec::new(),
            log,
        };
        for m in ["Runtime.enable", "Log.enable", "Page.enable"] {
            br.call(m, json!({}));
        }
        br
    }

    fn send_frame(&mut self, text: &str) {
        let p = text.as_bytes();
        let mut f = vec![0x81u8];
        match p.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x5a, 0x17, 0xc3, 0x88];
        f.extend_from_slice(&mask);
        f.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.ws.write_all(&f).expect("send to DevTools");
    }

    fn send_control(&mut self, opcode: u8, payload: &[u8]) {
        let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        f.extend_from_slice(payload);
        let _ = self.ws.write_all(&f);
    }

    /// One whole message (fragments joined; pings answered).
    fn read_message(&mut self) -> Value {
        let mut msg = Vec::new();
        loop {
            let mut h = [0u8; 2];
            self.ws.read_exact(&mut h).expect("DevTools frame");
            let (fin, opcode) = (h[0] & 0x80 != 0, h[0] & 0x0f);
            let len = match h[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.ws.read_exact(&mut b).unwrap();
                    u64::from(u16::from_be_bytes(b))
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.ws.read_exact(&mut b).unwrap();
                    u64::from_be_bytes(b)
                }
                n => u64::from(n),
            };
            assert!(len < 64 << 20, "DevTools frame of {len} bytes");
            let mut p = vec![0u8; len as usize];
            self.ws.read_exact(&mut p).expect("DevTools payload");
            match opcode {
                9 => self.send_control(10, &p),
                8 => panic!("DevTools closed the connection"),
                10 => {}
                _ => {
                    msg.extend_from_slice(&p);
                    if fin {
                        return serde_json::from_slice(&msg).expect("DevTools JSON");
                    }
                }
            }
        }
    }

    fn note_event(&mut self, m: &Value) {
        let p = &m["params"];
        match m["method"].as_str() {
            Some("Runtime.consoleAPICalled") if p["type"] == "error" || p["type"] == "assert" => {
                self.errors
                    .push(format!("console.{}: {}", p["type"], p["args"]));
            }
            Some("Runtime.exceptionThrown") => {
                self.errors
                    .push(format!("exception: {}", p["exceptionDetails"]));
            }
            Some("Log.entryAdded") if p["entry"]["level"] == "error" => {
                self.errors.push(format!("log: {}", p["entry"]));
            }
            _ => {}
        }
    }

    /// Call a DevTools method and return its result (events in between are noted).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let text = json!({"id": id, "method": method, "params": params}).to_string();
        self.send_frame(&text);
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < end, "{method}: no answer within 30 s");
            let m = self.read_message();
            if m["id"].as_u64() == Some(id) {
                assert!(m.get("error").is_none(), "{method}: {}", m["error"]);
                return m["result"].clone();
            }
            self.note_event(&m);
        }
    }

    /// Evaluate a JavaScript expression in the page; its value (JSON-serialisable).
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "{expr}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Open `url` in the page.
    pub fn navigate(&mut self, url: &str) {
        let r = self.call("Page.navigate", json!({"url": url}));
        assert!(r.get("errorText").is_none(), "navigate {url}: {r}");
    }

    /// A PNG of the page as it is drawn now.
    pub fn screenshot(&mut self) -> Vec<u8> {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        base64_decode(r["data"].as_str().expect("screenshot data"))
    }

    /// The browser's log (for failure messages).
    pub fn log_text(&self) -> String {
        BufReader::new(std::fs::File::open(&self.log).expect("chromium log"))
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.contains("dbus"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Standard base64 (the screenshot), padding and whitespace tolerated.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
