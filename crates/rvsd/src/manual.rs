//! rvsd(8) and the shell completions, generated from the command-line definition that
//! `--help` prints (so the manual's OPTIONS cannot drift from the parser), plus the sections
//! a daemon's manual needs and clap does not know: signals, files, the HTTP listener, the
//! service manager, exit status.

use clap_complete::Shell;

/// The hand-written sections, in roff, after clap's NAME, SYNOPSIS, DESCRIPTION and OPTIONS.
const EXTRA: &str = r#".SH "TABLE SOURCES"
The table comes from one of: rvsadm(8) commands over the control socket (always available),
an ipvsadm\-save style rules file (\fB\-\-rules\fR; rvsadm\-save(8) writes one), or a
keepalived configuration (\fB\-f\fR, see rvs\-keepalived.conf(5)), whose virtual servers are
health checked and whose VRRP instances run. \fB\-\-vrrp\fR runs the VRRP instances of a
keepalived configuration while the table comes from \fB\-\-rules\fR.
.PP
Services whose virtual address is a loopback address, and every service without
\fB\-\-interface\fR, are carried by the socket proxy (layer 4, NAT semantics). With
\fB\-\-interface\fR, the packet plane carries NAT, DR, TUN and FULLNAT services on that
interface.
.SH SIGNALS
.TP
.B SIGHUP
Re\-read the rules file (\fB\-\-rules\fR) or the keepalived configuration (\fB\-f\fR, and
\fB\-\-vrrp\fR) and apply the difference to the running table. A file with errors is reported
and the running table is kept.
.TP
.BR SIGTERM ", " SIGINT
Stop: VRRP instances give up their addresses, no new connection is accepted, and open ones may
finish within \fB\-\-drain\-time\fR seconds.
.SH "HTTP LISTENER"
\fB\-\-metrics\-listen\fR (default 127.0.0.1:9760) serves:
.TP
.B /metrics
Prometheus metrics (labels as node_exporter's IPVS collector).
.TP
.B /
The status page: services, real servers, health, VRRP state and live charts of connections,
packets and bytes per second over the last five minutes. Self\-contained; it loads nothing
from elsewhere.
.TP
.B /api/status
The same data as JSON.
.TP
.B /api/history
The per\-second rates behind the charts, as JSON.
.SH "SERVICE MANAGER"
When \fBNOTIFY_SOCKET\fR is set (systemd \fBType=notify\fR), rvsd sends \fBREADY=1\fR once
the table, the data planes, VRRP, the control socket and the HTTP listener are up,
\fBSTATUS=\fR lines, \fBRELOADING=1\fR and \fBREADY=1\fR around a SIGHUP reload,
\fBSTOPPING=1\fR on SIGTERM, and \fBWATCHDOG=1\fR every half \fBWATCHDOG_USEC\fR from its
periodic ticker when a watchdog is configured.
.PP
At start, before any thread exists, rvsd removes from its effective, permitted and inheritable
capability sets everything except CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE,
CAP_SETUID, CAP_SETGID, CAP_KILL and CAP_DAC_READ_SEARCH, which the running daemon needs for
changes made later (listeners, VRRP addresses, scripts run as another user). The bounding set
is left to the service manager (the shipped unit sets it to the same list).
.SH ENVIRONMENT
.TP
.B RVS_SOCKET
Default control socket path.
.TP
.B RUST_LOG
Log filter (default \fBinfo\fR); the log goes to standard error.
.TP
.BR NOTIFY_SOCKET ", " WATCHDOG_USEC ", " WATCHDOG_PID
Set by systemd; see SERVICE MANAGER.
.SH FILES
.TP
.B /run/rvs/rvsd.sock
Control socket (as root).
.TP
.B /etc/rvs/rules
Rules file of the packaged service (see /etc/default/rvsd).
.TP
.B /etc/default/rvsd
Options of the packaged service (\fBRVSD_ARGS\fR).
.TP
.B /usr/lib/systemd/system/rvsd.service
The systemd unit.
.SH "EXIT STATUS"
0 after a clean stop. 1 when start\-up fails (the message names what failed). 2 for
conflicting options. With \fB\-t\fR: 0 valid, 2 missing value, 4 cannot run, 5 errors,
6 script security, as keepalived \fB\-t\fR.
.SH "SEE ALSO"
rvsadm(8), rvsadm\-save(8), rvsadm\-restore(8), rvs\-keepalived.conf(5), ipvsadm(8),
keepalived(8), systemd.service(5)
"#;

/// rvsd(8) in roff.
pub fn man_page(cmd: clap::Command) -> String {
    let man = clap_mangen::Man::new(cmd).section("8");
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);
    let _ = man.render_description_section(&mut out);
    let _ = man.render_options_section(&mut out);
    let mut s = String::from_utf8_lossy(&out).into_owned();
    s.push_str(EXTRA);
    let mut v = Vec::new();
    let _ = man.render_version_section(&mut v);
    s.push_str(&String::from_utf8_lossy(&v));
    s
}

/// A completion script for `shell`.
pub fn completions(mut cmd: clap::Command, shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "rvsd", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}
