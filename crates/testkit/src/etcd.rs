//! A real etcd for the tests: its own data directory and loopback ports, stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::proc::Proc;
use crate::wait::wait_until;

/// A running etcd (one member) on `IP:2379` (clients) and `IP:2380` (peers).
pub struct Etcd {
    proc: Option<Proc>,
    /// `http://IP:2379`, or `https://IP:2379` with [`Etcd::start_tls`].
    pub url: String,
    ip: String,
    dir: PathBuf,
    /// The certificates of a TLS etcd ([`Etcd::start_tls`]).
    pub tls: Option<EtcdTls>,
    /// `NAME:PASSWORD` etcdctl authenticates with once [`Etcd::enable_auth`] ran.
    user: Option<String>,
}

/// The files of a TLS etcd: a CA, and a client certificate signed by it (the server's own
/// certificate, for the etcd's address, is signed by the same CA).
#[derive(Debug, Clone)]
pub struct EtcdTls {
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// A client certificate (PEM) etcd accepts (`--client-cert-auth`).
    pub cert: PathBuf,
    /// Its key (PEM).
    pub key: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    /// Whether etcd requires client certificates (`--client-cert-auth`).
    client_cert_auth: bool,
}

/// `openssl ARGS` in `dir`.
///
/// # Panics
/// If openssl fails.
fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

impl EtcdTls {
    /// A CA, a server certificate for `ip` and a client certificate, in `dir`.
    fn make(dir: &Path, ip: &str) -> EtcdTls {
        let key = |name: &str| openssl(dir, &["genrsa", "-out", name, "2048"]);
        key("ca.key");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "ca.key",
                "-days",
                "2",
                "-subj",
                "/CN=rvs test CA",
                "-out",
                "ca.pem",
            ],
        );
        let sign = |name: &str, subj: &str, ext: &str| {
            key(&format!("{name}.key"));
            openssl(
                dir,
                &[
                    "req",
                    "-new",
                    "-key",
                    &format!("{name}.key"),
                    "-subj",
                    subj,
                    "-out",
                    &format!("{name}.csr"),
                ],
            );
            std::fs::write(dir.join(format!("{name}.ext")), ext).expect("write ext");
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    &format!("{name}.ext"),
                    "-out",
                    &format!("{name}.pem"),
                ],
            );
        };
        sign(
            "server",
            "/CN=etcd",
            // clientAuth too: etcd's JSON gateway dials the server with the server's own
            // certificate when client certificates are required.
            &format!("subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth,clientAuth\n"),
        );
        sign("client", "/CN=rvs-client", "extendedKeyUsage=clientAuth\n");
        EtcdTls {
            ca: dir.join("ca.pem"),
            cert: dir.join("client.pem"),
            key: dir.join("client.key"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert_auth: false,
        }
    }
}

impl Etcd {
    /// Start etcd on loopback address `ip` with its data in `dir/etcd`; waits (≤ 20 s) until it
    /// answers.
    ///
    /// # Panics
    /// If it does not come up (its log is in the message).
    pub fn start(dir: &Path, ip: &str) -> Etcd {
        let mut e = Etcd {
            proc: None,
            url: format!("http://{ip}:2379"),
            ip: ip.to_string(),
            dir: dir.to_path_buf(),
            tls: None,
            user: None,
        };
        e.restart();
        e
    }

    /// [`Etcd::start`] serving clients over TLS only, with client certificates required
    /// (`--client-cert-auth`) when `client_certs`: a CA, the server's and a client's
    /// certificate are made with openssl in `dir` ([`Etcd::tls`]).
    ///
    /// # Panics
    /// If the certificates cannot be made or etcd does not come up.
    pub fn start_tls(dir: &Path, ip: &str, client_certs: bool) -> Etcd {
        let mut tls = EtcdTls::make(dir, ip);
        tls.client_cert_auth = client_certs;
        let mut e = Etcd {
            proc: None,
            url: format!("https://{ip}:2379"),
            ip: ip.to_string(),
            dir: dir.to_path_buf(),
            tls: Some(tls),
            user: None,
        };
        e.restart();
        e
    }

    /// Turns on etcd's authentication: user `root` with `password` (role root), then
    /// `auth enable`; etcdctl of this handle authenticates as root from then on.
    ///
    /// # Panics
    /// If etcdctl fails.
    pub fn enable_auth(&mut self, password: &str) {
        self.ctl(&["user", "add", &format!("root:{password}")]);
        self.ctl(&["auth", "enable"]);
        self.user = Some(format!("root:{password}"));
    }

    fn log(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    /// Start it again (after [`Etcd::stop`]) on the same data: same keys, same revisions.
    ///
    /// # Panics
    /// If it does not come up.
    pub fn restart(&mut self) {
        let ip = &self.ip;
        let mut cmd = Command::new("etcd");
        cmd.args(["--name", "rvs-test", "--data-dir"])
            .arg(self.dir.join("etcd"))
            .args(["--listen-client-urls", &self.url])
            .args(["--advertise-client-urls", &self.url])
            .args(["--listen-peer-urls", &format!("http://{ip}:2380")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://{ip}:2380"),
            ])
            .args(["--initial-cluster", &format!("rvs-test=http://{ip}:2380")]);
        if let Some(t) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&t.server_cert)
                .arg("--key-file")
                .arg(&t.server_key);
            // etcd turns on client-certificate authentication whenever it has a trusted CA,
            // whatever --client-cert-auth says: the CA only for that mode.
            if t.client_cert_auth {
                cmd.arg("--trusted-ca-file")
                    .arg(&t.ca)
                    .arg("--client-cert-auth");
            }
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log())
                .expect("etcd log"),
        );
        let mut p = Proc::spawn("etcd", cmd);
        let up = wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
            p.try_status().is_some() || self.ctl_quiet(&["endpoint", "health"]).status.success()
        });
        let exited = p.try_status();
        assert!(
            up && exited.is_none(),
            "etcd did not come up (exit {exited:?}); log:\n{}",
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
        self.proc = Some(p);
    }

    /// Stop it (SIGTERM, then SIGKILL after 10 s); the data stays for [`Etcd::restart`].
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal(nix::sys::signal::Signal::SIGTERM);
            if p.wait_timeout(Duration::from_secs(10)).is_none() {
                drop(p);
            }
        }
    }

    fn ctl_quiet(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.url, "--command-timeout", "3s"]);
        if let Some(t) = &self.tls {
            cmd.arg("--cacert")
                .arg(&t.ca)
                .arg("--cert")
                .arg(&t.cert)
                .arg("--key")
                .arg(&t.key);
        }
        if let Some(u) = &self.user {
            cmd.args(["--user", u]);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run etcdctl")
    }

    /// `etcdctl txn` of `ops` (one per line, e.g. `put KEY VALUE`) as one transaction: every
    /// change at one revision, so a watcher gets them in one response.
    ///
    /// # Panics
    /// If etcdctl fails.
    pub fn txn(&self, ops: &[String]) {
        use std::io::Write as _;
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.url, "--command-timeout", "10s"]);
        if let Some(t) = &self.tls {
            cmd.arg("--cacert")
                .arg(&t.ca)
                .arg("--cert")
                .arg(&t.cert)
                .arg("--key")
                .arg(&t.key);
        }
        if let Some(u) = &self.user {
            cmd.args(["--user", u]);
        }
        // Non-interactive txn: compares, blank line, success ops, blank line, failure ops.
        let mut p = cmd
            .args(["txn"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run etcdctl txn");
        let mut input = String::from("\n");
        for op in ops {
            input.push_str(op);
            input.push('\n');
        }
        input.push_str("\n\n");
        p.stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write txn");
        let o = p.wait_with_output().expect("etcdctl txn");
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with("SUCCESS"),
            "etcdctl txn: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// `etcdctl ARGS` against this etcd; its stdout.
    ///
    /// # Panics
    /// If etcdctl fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let o = self.ctl_quiet(args);
        assert!(
            o.status.success(),
            "etcdctl {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Put `key` = `value`.
    pub fn put(&self, key: &str, value: &str) {
        self.ctl(&["put", key, value]);
    }

    /// Put `key` = `value` with `lease` (hex id, as `lease grant` prints it).
    pub fn put_leased(&self, key: &str, value: &str, lease: &str) {
        self.ctl(&["put", "--lease", lease, key, value]);
    }

    /// Grant a lease of `ttl` seconds; its hex id.
    ///
    /// # Panics
    /// If etcdctl's answer has no id.
    pub fn grant(&self, ttl: u64) -> String {
        // "lease 694d81e1bb2ac40b granted with TTL(2s)"
        let out = self.ctl(&["lease", "grant", &ttl.to_string()]);
        out.split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("lease grant: {out}"))
            .to_string()
    }

    /// Delete `key`.
    pub fn del(&self, key: &str) {
        self.ctl(&["del", key]);
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
