//! Protocol state machines as pure functions (docs/internals/connections.md, docs/internals/sysctls.md#memory-pressure-defences): the TCP normal and secure_tcp tables,
//! UDP, SCTP, template states, timeouts with `--set`, and the decisions the kernel takes when a
//! packet meets an existing connection (`conn_reuse_mode`, `expire_nodest_conn`, sloppy
//! creation).
//!
//! Nothing here touches a connection table; [`super::ConnTable::on_packet`] applies these
//! functions to an entry and moves the destination counters.

use crate::error::{Error, Result};
use crate::time::Duration;

/// Direction of a packet relative to the connection (`IP_VS_DIR_*`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → real server (through the director).
    Input,
    /// Real server → client (replies; only NAT and full-NAT see these).
    Output,
}

/// The row set of a state table actually used for a packet: `INPUT_ONLY` replaces `INPUT`
/// while the connection has `NOOUTPUT` (DR, TUN, local), docs/internals/connections.md#tcp.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum TableDir {
    /// `IP_VS_DIR_INPUT`.
    Input = 0,
    /// `IP_VS_DIR_OUTPUT`.
    Output = 1,
    /// `IP_VS_DIR_INPUT_ONLY`.
    InputOnly = 2,
}

// ---------------------------------------------------------------------------------------------
// TCP

/// TCP states (`IP_VS_TCP_S_*`), numbered as the kernel numbers them.
pub mod tcp {
    /// `NONE`.
    pub const NONE: u8 = 0;
    /// `ESTABLISHED`.
    pub const ESTABLISHED: u8 = 1;
    /// `SYN_SENT`.
    pub const SYN_SENT: u8 = 2;
    /// `SYN_RECV`.
    pub const SYN_RECV: u8 = 3;
    /// `FIN_WAIT`.
    pub const FIN_WAIT: u8 = 4;
    /// `TIME_WAIT`.
    pub const TIME_WAIT: u8 = 5;
    /// `CLOSE`.
    pub const CLOSE: u8 = 6;
    /// `CLOSE_WAIT`.
    pub const CLOSE_WAIT: u8 = 7;
    /// `LAST_ACK`.
    pub const LAST_ACK: u8 = 8;
    /// `LISTEN` (only the FTP helper uses it).
    pub const LISTEN: u8 = 9;
    /// `SYNACK`.
    pub const SYNACK: u8 = 10;
    /// Number of TCP states (`IP_VS_TCP_S_LAST`).
    pub const COUNT: usize = 11;
}

/// TCP state names as `ipvsadm -Lc` and `/proc/net/ip_vs_conn` print them.
pub const TCP_STATE_NAMES: [&str; tcp::COUNT] = [
    "NONE",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "SYNACK",
];

/// Default TCP timeouts in seconds (`tcp_timeouts[]`).
pub const TCP_DEFAULT_TIMEOUTS_SECS: [u64; tcp::COUNT] =
    [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120];

/// Whether a TCP state counts as "active" for the destination counters (docs/internals/connections.md):
/// ESTABLISHED, SYN_SENT, SYN_RECV, SYNACK.
pub fn tcp_state_active(state: u8) -> bool {
    matches!(
        state,
        tcp::ESTABLISHED | tcp::SYN_SENT | tcp::SYN_RECV | tcp::SYNACK
    )
}

/// The four TCP header flags the state machine looks at.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags {
    /// SYN.
    pub syn: bool,
    /// FIN.
    pub fin: bool,
    /// ACK.
    pub ack: bool,
    /// RST.
    pub rst: bool,
}

impl TcpFlags {
    /// From the TCP header's flag byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10).
    pub fn from_byte(b: u8) -> TcpFlags {
        TcpFlags {
            fin: b & 0x01 != 0,
            syn: b & 0x02 != 0,
            rst: b & 0x04 != 0,
            ack: b & 0x10 != 0,
        }
    }
    /// The row of the state table (`tcp_state_idx`): precedence RST > SYN > FIN > ACK; `None`
    /// when none of them is set (the kernel then moves to CLOSE).
    pub fn row(self) -> Option<usize> {
        if self.rst {
            Some(ROW_RST)
        } else if self.syn {
            Some(ROW_SYN)
        } else if self.fin {
            Some(ROW_FIN)
        } else if self.ack {
            Some(ROW_ACK)
        } else {
            None
        }
    }
}

const ROW_SYN: usize = 0;
const ROW_FIN: usize = 1;
const ROW_ACK: usize = 2;
const ROW_RST: usize = 3;

/// A TCP state table: `[direction][flag row][current state] -> next state`.
pub type TcpTable = [[[u8; tcp::COUNT]; 4]; 3];

// Short names so the tables below read like the kernel's tables (docs/internals/connections.md#tcp).
const ES: u8 = tcp::ESTABLISHED;
const SS: u8 = tcp::SYN_SENT;
const SR: u8 = tcp::SYN_RECV;
const FW: u8 = tcp::FIN_WAIT;
const TW: u8 = tcp::TIME_WAIT;
const CL: u8 = tcp::CLOSE;
const CW: u8 = tcp::CLOSE_WAIT;
const LA: u8 = tcp::LAST_ACK;
const LI: u8 = tcp::LISTEN;
const SA: u8 = tcp::SYNACK;

/// The normal TCP state table (`tcp_states[]`), docs/internals/connections.md#tcp. Columns: NO ES SS SR FW TW CL CW LA LI SA.
pub const TCP_STATES: TcpTable = [
    // INPUT
    [
        /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // OUTPUT
    [
        /* syn */ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT_ONLY
    [
        /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The secure_tcp state table (`tcp_states_dos[]`), used while the secure_tcp defence is active.
pub const TCP_STATES_SECURE: TcpTable = [
    // INPUT
    [
        /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SA],
        /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, SA],
        /* ack */ [ES, ES, SS, SR, FW, TW, CL, CW, CL, LI, SA],
        /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
    // OUTPUT
    [
        /* syn */ [SS, ES, SS, SA, SS, SS, SS, SS, SS, LI, SA],
        /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT_ONLY
    [
        /* syn */ [SA, ES, ES, SR, SA, SA, SA, SA, SA, SA, SA],
        /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// `set_tcp_state`'s table look-up: the next TCP state for a segment with `flags` in table
/// direction `dir` from `state`. A segment with none of RST/SYN/FIN/ACK gives CLOSE. An
/// out-of-range `state` (corrupt input) is treated as NONE rather than panicking.
pub fn tcp_next_state(secure: bool, dir: TableDir, flags: TcpFlags, state: u8) -> u8 {
    let Some(row) = flags.row() else {
        return tcp::CLOSE;
    };
    let table = if secure {
        &TCP_STATES_SECURE
    } else {
        &TCP_STATES
    };
    let col = if usize::from(state) < tcp::COUNT {
        usize::from(state)
    } else {
        0
    };
    table[dir as usize][row][col]
}

/// Whether a TCP segment may create a connection (`tcp_conn_schedule`): SYN without RST (so
/// SYN+ACK may, for active FTP), or with `sloppy_tcp` any segment without RST.
pub fn tcp_can_create(flags: TcpFlags, sloppy_tcp: bool) -> bool {
    if flags.rst {
        return false;
    }
    flags.syn || sloppy_tcp
}

// ---------------------------------------------------------------------------------------------
// UDP

/// The single UDP state (`IP_VS_UDP_S_NORMAL`), printed as "UDP".
pub const UDP_STATE_NORMAL: u8 = 0;

// ---------------------------------------------------------------------------------------------
// SCTP
//
// The SCTP machine is only summarised in docs/internals/connections.md#sctp. What follows was read from
// the kernel's `net/netfilter/ipvs/ip_vs_proto_sctp.c` (mainline, via the stored copy of
// yailabs/yai) and re-expressed here; the facts relied on are:
// - 14 states NONE INIT1 INIT C-SENT C-REPLIED C-WAIT COOKIE C-ECHOED ESTABLISHED S-SENT
//   S-RECEIVED S-ACK-SENT REJECTED CLOSED, numbered 0..13 in that order, with those names;
// - timeouts 2 s (NONE), 4 s (INIT1, REJECTED), 900 s (ESTABLISHED), 61 s (all others:
//   `IP_VS_SCTP_MAX_RTO` = (60 + 1) s);
// - ten events: DATA (also SACK, HEARTBEAT, HEARTBEAT-ACK, ECNE, CWR and every chunk type above
//   14), INIT, INIT-ACK, COOKIE-ECHO, COOKIE-ACK, SHUTDOWN, SHUTDOWN-ACK, SHUTDOWN-COMPLETE,
//   ERROR, ABORT, chosen from the first chunk's type; if that chunk is COOKIE-ECHO or
//   COOKIE-ACK and the next chunk is ABORT, the event is ABORT (see [`sctp_event_chunk`]);
// - the transition table per direction (INPUT, OUTPUT, INPUT_ONLY) below;
// - only ESTABLISHED counts as active; entering ESTABLISHED assures the controlling template;
// - new connections only on an INIT chunk unless sloppy_sctp.

/// SCTP states (`IP_VS_SCTP_S_*`).
pub mod sctp {
    /// `NONE`.
    pub const NONE: u8 = 0;
    /// `INIT1`: first client INIT seen.
    pub const INIT1: u8 = 1;
    /// `INIT`: a further client INIT seen.
    pub const INIT: u8 = 2;
    /// `C-SENT` (`COOKIE_SENT`).
    pub const COOKIE_SENT: u8 = 3;
    /// `C-REPLIED` (`COOKIE_REPLIED`).
    pub const COOKIE_REPLIED: u8 = 4;
    /// `C-WAIT` (`COOKIE_WAIT`).
    pub const COOKIE_WAIT: u8 = 5;
    /// `COOKIE`.
    pub const COOKIE: u8 = 6;
    /// `C-ECHOED` (`COOKIE_ECHOED`).
    pub const COOKIE_ECHOED: u8 = 7;
    /// `ESTABLISHED`.
    pub const ESTABLISHED: u8 = 8;
    /// `S-SENT` (`SHUTDOWN_SENT`).
    pub const SHUTDOWN_SENT: u8 = 9;
    /// `S-RECEIVED` (`SHUTDOWN_RECEIVED`).
    pub const SHUTDOWN_RECEIVED: u8 = 10;
    /// `S-ACK-SENT` (`SHUTDOWN_ACK_SENT`).
    pub const SHUTDOWN_ACK_SENT: u8 = 11;
    /// `REJECTED`.
    pub const REJECTED: u8 = 12;
    /// `CLOSED`.
    pub const CLOSED: u8 = 13;
    /// Number of SCTP states.
    pub const COUNT: usize = 14;
}

/// SCTP state names as printed.
pub const SCTP_STATE_NAMES: [&str; sctp::COUNT] = [
    "NONE",
    "INIT1",
    "INIT",
    "C-SENT",
    "C-REPLIED",
    "C-WAIT",
    "COOKIE",
    "C-ECHOED",
    "ESTABLISHED",
    "S-SENT",
    "S-RECEIVED",
    "S-ACK-SENT",
    "REJECTED",
    "CLOSED",
];

/// Default SCTP timeouts in seconds.
pub const SCTP_DEFAULT_TIMEOUTS_SECS: [u64; sctp::COUNT] =
    [2, 4, 61, 61, 61, 61, 61, 61, 900, 61, 61, 61, 4, 61];

/// SCTP chunk types the state machine distinguishes (RFC 4960 §3.2).
pub mod chunk {
    /// DATA.
    pub const DATA: u8 = 0;
    /// INIT.
    pub const INIT: u8 = 1;
    /// INIT ACK.
    pub const INIT_ACK: u8 = 2;
    /// ABORT.
    pub const ABORT: u8 = 6;
    /// SHUTDOWN.
    pub const SHUTDOWN: u8 = 7;
    /// SHUTDOWN ACK.
    pub const SHUTDOWN_ACK: u8 = 8;
    /// ERROR.
    pub const ERROR: u8 = 9;
    /// COOKIE ECHO.
    pub const COOKIE_ECHO: u8 = 10;
    /// COOKIE ACK.
    pub const COOKIE_ACK: u8 = 11;
    /// SHUTDOWN COMPLETE.
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

const EV_DATA: usize = 0;
const EV_INIT: usize = 1;
const EV_INIT_ACK: usize = 2;
const EV_COOKIE_ECHO: usize = 3;
const EV_COOKIE_ACK: usize = 4;
const EV_SHUTDOWN: usize = 5;
const EV_SHUTDOWN_ACK: usize = 6;
const EV_SHUTDOWN_COMPLETE: usize = 7;
const EV_ERROR: usize = 8;
const EV_ABORT: usize = 9;
const SCTP_EVENTS: usize = 10;

/// The state-machine event of a chunk type (`sctp_events[]`); unknown types count as DATA.
fn sctp_event(chunk_type: u8) -> usize {
    match chunk_type {
        chunk::INIT => EV_INIT,
        chunk::INIT_ACK => EV_INIT_ACK,
        chunk::ABORT => EV_ABORT,
        chunk::SHUTDOWN => EV_SHUTDOWN,
        chunk::SHUTDOWN_ACK => EV_SHUTDOWN_ACK,
        chunk::ERROR => EV_ERROR,
        chunk::COOKIE_ECHO => EV_COOKIE_ECHO,
        chunk::COOKIE_ACK => EV_COOKIE_ACK,
        chunk::SHUTDOWN_COMPLETE => EV_SHUTDOWN_COMPLETE,
        // DATA, SACK, HEARTBEAT(-ACK), ECNE, CWR and everything unknown.
        _ => EV_DATA,
    }
}

/// The chunk type the state machine should see for a packet whose first chunk is `first` and
/// whose second chunk (if the packet has one) is `second`: the kernel looks past a leading
/// COOKIE-ECHO or COOKIE-ACK and uses ABORT if an ABORT follows it (RFC 4960 §3.3.7 bundling).
pub fn sctp_event_chunk(first: u8, second: Option<u8>) -> u8 {
    if (first == chunk::COOKIE_ECHO || first == chunk::COOKIE_ACK) && second == Some(chunk::ABORT) {
        chunk::ABORT
    } else {
        first
    }
}

type SctpTable = [[[u8; sctp::COUNT]; SCTP_EVENTS]; 3];

// State abbreviations as the kernel source uses them.
const S_I1: u8 = sctp::INIT1;
const S_IN: u8 = sctp::INIT;
const S_CS: u8 = sctp::COOKIE_SENT;
const S_CR: u8 = sctp::COOKIE_REPLIED;
const S_CW: u8 = sctp::COOKIE_WAIT;
const S_CO: u8 = sctp::COOKIE;
const S_CE: u8 = sctp::COOKIE_ECHOED;
const S_ES: u8 = sctp::ESTABLISHED;
const S_SS: u8 = sctp::SHUTDOWN_SENT;
const S_SR: u8 = sctp::SHUTDOWN_RECEIVED;
const S_SA: u8 = sctp::SHUTDOWN_ACK_SENT;
const S_RJ: u8 = sctp::REJECTED;
const S_CL: u8 = sctp::CLOSED;

/// The kernel's SCTP transition table: `[direction][event][state]`. Columns:
/// NO I1 IN CS CR CW CO CE ES SS SR SA RJ CL.
#[rustfmt::skip]
const SCTP_STATES: SctpTable = [
    // INPUT
    [
        /* data */ [S_ES, S_I1, S_IN, S_CS, S_CR, S_CW, S_CO, S_CE, S_ES, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* init */ [S_I1, S_IN, S_IN, S_CS, S_CR, S_CW, S_CO, S_CE, S_ES, S_SS, S_SR, S_SA, S_IN, S_IN],
        /* i_a  */ [S_CW, S_CW, S_CW, S_CS, S_CR, S_CO, S_CO, S_CE, S_ES, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* c_e  */ [S_CR, S_IN, S_IN, S_CR, S_CR, S_CW, S_CO, S_CE, S_ES, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* c_a  */ [S_ES, S_I1, S_IN, S_CS, S_CR, S_CW, S_CO, S_ES, S_ES, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* s    */ [S_SR, S_I1, S_IN, S_CS, S_CR, S_CW, S_CO, S_CE, S_SR, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* s_a  */ [S_CL, S_IN, S_IN, S_CS, S_CR, S_CW, S_CO, S_CE, S_ES, S_CL, S_SR, S_CL, S_RJ, S_CL],
        /* s_c  */ [S_CL, S_CL, S_CL, S_CS, S_CR, S_CW, S_CO, S_CE, S_ES, S_SS, S_SR, S_CL, S_RJ, S_CL],
        /* err  */ [S_CL, S_I1, S_IN, S_CS, S_CR, S_CW, S_CO, S_CL, S_ES, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* ab   */ [S_CL, S_CL, S_CL, S_CL, S_CL, S_RJ, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL],
    ],
    // OUTPUT
    [
        /* data */ [S_ES, S_I1, S_IN, S_CS, S_CR, S_CW, S_CO, S_CE, S_ES, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* init */ [S_CW, S_CW, S_CW, S_CW, S_CW, S_CW, S_CW, S_CW, S_ES, S_CW, S_CW, S_CW, S_CW, S_CW],
        /* i_a  */ [S_CS, S_CS, S_CS, S_CS, S_CR, S_CW, S_CO, S_CE, S_ES, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* c_e  */ [S_CE, S_CE, S_CE, S_CE, S_CE, S_CE, S_CE, S_CE, S_ES, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* c_a  */ [S_ES, S_ES, S_ES, S_ES, S_ES, S_ES, S_ES, S_ES, S_ES, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* s    */ [S_SS, S_SS, S_SS, S_SS, S_SS, S_SS, S_SS, S_SS, S_SS, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* s_a  */ [S_SA, S_SA, S_SA, S_SA, S_SA, S_CW, S_CO, S_CE, S_ES, S_SA, S_SA, S_SA, S_RJ, S_CL],
        /* s_c  */ [S_CL, S_I1, S_IN, S_CS, S_CR, S_CW, S_CO, S_CE, S_ES, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* err  */ [S_CL, S_CL, S_CL, S_CL, S_CL, S_CW, S_CO, S_CE, S_ES, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* ab   */ [S_CL, S_RJ, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL],
    ],
    // INPUT_ONLY
    [
        /* data */ [S_ES, S_I1, S_IN, S_CS, S_CR, S_ES, S_CO, S_CE, S_ES, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* init */ [S_I1, S_IN, S_IN, S_IN, S_IN, S_IN, S_CO, S_CE, S_ES, S_SS, S_SR, S_SA, S_IN, S_IN],
        /* i_a  */ [S_CE, S_CE, S_CE, S_CE, S_CE, S_CE, S_CO, S_CE, S_ES, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* c_e  */ [S_ES, S_ES, S_ES, S_ES, S_ES, S_ES, S_CO, S_CE, S_ES, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* c_a  */ [S_ES, S_I1, S_IN, S_ES, S_ES, S_CW, S_ES, S_ES, S_ES, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* s    */ [S_SR, S_I1, S_IN, S_CS, S_CR, S_CW, S_CO, S_CE, S_SR, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* s_a  */ [S_CL, S_IN, S_IN, S_CS, S_CR, S_CW, S_CO, S_CE, S_CL, S_CL, S_SR, S_CL, S_RJ, S_CL],
        /* s_c  */ [S_CL, S_CL, S_CL, S_CL, S_CL, S_CW, S_CO, S_CE, S_ES, S_SS, S_CL, S_CL, S_RJ, S_CL],
        /* err  */ [S_CL, S_I1, S_IN, S_CS, S_CR, S_CW, S_CO, S_CE, S_ES, S_SS, S_SR, S_SA, S_RJ, S_CL],
        /* ab   */ [S_CL, S_CL, S_CL, S_CL, S_CL, S_RJ, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL, S_CL],
    ],
];

/// `set_sctp_state`'s table look-up for the (effective, see [`sctp_event_chunk`]) chunk type.
pub fn sctp_next_state(dir: TableDir, chunk_type: u8, state: u8) -> u8 {
    let col = if usize::from(state) < sctp::COUNT {
        usize::from(state)
    } else {
        0
    };
    SCTP_STATES[dir as usize][sctp_event(chunk_type)][col]
}

/// Whether an SCTP state counts as active: only ESTABLISHED.
pub fn sctp_state_active(state: u8) -> bool {
    state == sctp::ESTABLISHED
}

/// Whether an SCTP packet may create a connection: its first chunk is INIT, or `sloppy_sctp`.
pub fn sctp_can_create(first_chunk: u8, sloppy_sctp: bool) -> bool {
    first_chunk == chunk::INIT || sloppy_sctp
}

// ---------------------------------------------------------------------------------------------
// Templates and names

/// Template states (`IP_VS_CTPL_S_*`).
pub mod tmpl {
    /// `NONE`.
    pub const NONE: u8 = 0;
    /// `ASSURED`: a controlled TCP/SCTP conn reached ESTABLISHED or a UDP reply was seen.
    pub const ASSURED: u8 = 1;
}

/// IANA numbers of the protocols the state machines know.
pub mod proto {
    /// `IPPROTO_IP` (fwmark templates).
    pub const IP: u8 = 0;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// The state name `ipvsadm -Lc` prints (`ip_vs_state_name`): templates print NONE/ASSURED;
/// TCP, UDP and SCTP their tables ("ERR!" when out of range); other protocols "NONE" for
/// `IPPROTO_IP` and "ERR!" otherwise.
pub fn state_name(protocol: u8, template: bool, state: u8) -> &'static str {
    if template {
        return match state {
            tmpl::NONE => "NONE",
            tmpl::ASSURED => "ASSURED",
            _ => "ERR!",
        };
    }
    let s = usize::from(state);
    match protocol {
        proto::TCP => TCP_STATE_NAMES.get(s).copied().unwrap_or("ERR!"),
        proto::UDP if state == UDP_STATE_NORMAL => "UDP",
        proto::UDP => "ERR!",
        proto::SCTP => SCTP_STATE_NAMES.get(s).copied().unwrap_or("ERR!"),
        proto::IP => "NONE",
        _ => "ERR!",
    }
}

/// Protocol name in `/proc/net/ip_vs_conn` (`ip_vs_proto_name`): TCP, UDP, SCTP, IP for
/// fwmark templates, otherwise `IP_<n>`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ProtoName(pub u8);

impl core::fmt::Display for ProtoName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            proto::IP => f.write_str("IP"),
            proto::TCP => f.write_str("TCP"),
            proto::UDP => f.write_str("UDP"),
            proto::SCTP => f.write_str("SCTP"),
            n => write!(f, "IP_{n}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Timeouts and sysctls

/// Per-state timeouts of one director (per netns in the kernel), in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP, indexed by state.
    pub tcp: [Duration; tcp::COUNT],
    /// UDP.
    pub udp: Duration,
    /// SCTP, indexed by state.
    pub sctp: [Duration; sctp::COUNT],
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            tcp: TCP_DEFAULT_TIMEOUTS_SECS.map(Duration::from_secs),
            udp: Duration::from_secs(300),
            sctp: SCTP_DEFAULT_TIMEOUTS_SECS.map(Duration::from_secs),
        }
    }
}

/// The largest timeout the kernel accepts through `--set`: `INT_MAX / HZ` seconds (HZ = 1000).
pub const MAX_SET_TIMEOUT_SECS: u64 = (i32::MAX as u64) / 1000;

impl Timeouts {
    /// `ipvsadm --set tcp tcpfin udp` (docs/internals/connections.md#timeouts-and---set): seconds, 0 = leave unchanged. `tcp` sets the
    /// ESTABLISHED timeout, `tcpfin` FIN_WAIT and `udp` the UDP timeout. Values above
    /// `INT_MAX / HZ` are rejected with EINVAL as the kernel does, and nothing changes.
    /// Existing connections pick the new value up on their next state update.
    pub fn set(&mut self, tcp_secs: u64, tcpfin_secs: u64, udp_secs: u64) -> Result<()> {
        if tcp_secs > MAX_SET_TIMEOUT_SECS
            || tcpfin_secs > MAX_SET_TIMEOUT_SECS
            || udp_secs > MAX_SET_TIMEOUT_SECS
        {
            return Err(Error::Invalid("timeout out of range"));
        }
        if tcp_secs != 0 {
            self.tcp[usize::from(tcp::ESTABLISHED)] = Duration::from_secs(tcp_secs);
        }
        if tcpfin_secs != 0 {
            self.tcp[usize::from(tcp::FIN_WAIT)] = Duration::from_secs(tcpfin_secs);
        }
        if udp_secs != 0 {
            self.udp = Duration::from_secs(udp_secs);
        }
        Ok(())
    }

    /// The three values `ipvsadm -L --timeout` prints: (tcp, tcpfin, udp) in whole seconds.
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.tcp[usize::from(tcp::ESTABLISHED)].as_secs(),
            self.tcp[usize::from(tcp::FIN_WAIT)].as_secs(),
            self.udp.as_secs(),
        )
    }

    /// The timeout of `state` for `protocol` (UDP ignores the state; unknown protocols and
    /// out-of-range states get the NONE timeout of TCP, 2 s).
    pub fn for_state(&self, protocol: u8, state: u8) -> Duration {
        let s = usize::from(state);
        let none = self.tcp[0];
        match protocol {
            proto::TCP => self.tcp.get(s).copied().unwrap_or(none),
            proto::UDP => self.udp,
            proto::SCTP => self.sctp.get(s).copied().unwrap_or(none),
            _ => none,
        }
    }
}

/// The sysctls the connection code reads (docs/internals/sysctls.md), with the kernel's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnSysctls {
    /// Per-state timeouts (`--set`).
    pub timeouts: Timeouts,
    /// Whether the secure_tcp defence is currently active (the defence policy decides; this
    /// selects [`TCP_STATES_SECURE`]).
    pub secure_tcp: bool,
    /// `sloppy_tcp`.
    pub sloppy_tcp: bool,
    /// `sloppy_sctp`.
    pub sloppy_sctp: bool,
    /// `conn_reuse_mode` bitmap (default 1).
    pub conn_reuse_mode: u32,
    /// `expire_nodest_conn`.
    pub expire_nodest_conn: bool,
}

impl Default for ConnSysctls {
    fn default() -> ConnSysctls {
        ConnSysctls {
            timeouts: Timeouts::default(),
            secure_tcp: false,
            sloppy_tcp: false,
            sloppy_sctp: false,
            conn_reuse_mode: 1,
            expire_nodest_conn: false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decisions for a packet that meets an existing connection

/// What the kernel knows about an existing connection when a packet matches it; a plain copy so
/// the decision is a pure function.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ExistingConn {
    /// IANA protocol.
    pub protocol: u8,
    /// Protocol state.
    pub state: u8,
    /// `IP_VS_CONN_F_*` flags.
    pub flags: u32,
    /// Whether the conn is controlled (has a template or FTP parent).
    pub controlled: bool,
    /// How many conns it controls.
    pub n_control: u32,
    /// Its destination's weight, if it has a destination.
    pub dest_weight: Option<u32>,
    /// Whether its destination is still AVAILABLE (`None` if it has none).
    pub dest_available: Option<bool>,
}

/// The verdict of [`existing_conn_action`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ExistingAction {
    /// Keep using the existing connection for this packet.
    Use,
    /// Ignore the existing connection and handle the packet as a new one (schedule it if it may
    /// create a connection). If `expire_old`, expire the old connection now
    /// ([`super::ConnTable::expire_now`]); the expiry path re-arms it if it controls others.
    Reschedule {
        /// Expire the old connection now.
        expire_old: bool,
    },
    /// Drop the packet silently. If `expire_old`, expire the old connection now.
    Drop {
        /// Expire the old connection now.
        expire_old: bool,
    },
}

/// `is_new_conn_expected`: may a new connection reuse this tuple? Uncontrolled TCP conns in
/// TIME_WAIT or CLOSE, or with `conn_reuse_mode` bit 2 FIN_WAIT with NOOUTPUT (DR/TUN); SCTP in
/// CLOSED.
pub fn is_new_conn_expected(c: &ExistingConn, conn_reuse_mode: u32) -> bool {
    if c.controlled {
        return false;
    }
    match c.protocol {
        proto::TCP => {
            c.state == tcp::TIME_WAIT
                || c.state == tcp::CLOSE
                || (conn_reuse_mode & 2 != 0
                    && c.state == tcp::FIN_WAIT
                    && c.flags & super::flags::NOOUTPUT != 0)
        }
        proto::SCTP => c.state == sctp::CLOSED,
        _ => false,
    }
}

/// The checks of `ip_vs_in_hook` between finding a connection and using it (docs/internals/connections.md#when-a-packet-meets-an-existing-entry, mainline
/// after the 2021 change that made expire_nodest_conn independent of conn_reuse_mode):
///
/// 1. If the packet starts a new connection (`is_new_conn`: TCP SYN / SCTP INIT, first
///    fragment): with `expire_nodest_conn` and a weight-0 dest, or with `conn_reuse_mode` and
///    [`is_new_conn_expected`], the packet is rescheduled; the old conn is expired now unless it
///    controls others. A conn that controls others and uses an old (confirmed) conntrack is not
///    rescheduled in the reuse case; `old_conntrack` makes the packet drop (rvs has no
///    conntrack, so the packet planes pass `false`).
/// 2. Otherwise, if the conn's dest is no longer AVAILABLE: with `expire_nodest_conn` the conn
///    is expired now and the packet handled as new; without it the packet is dropped silently.
pub fn existing_conn_action(
    sys: &ConnSysctls,
    c: &ExistingConn,
    is_new_conn: bool,
    old_conntrack: bool,
) -> ExistingAction {
    if is_new_conn {
        let mut resched = false;
        if sys.expire_nodest_conn && c.dest_weight == Some(0) {
            resched = true;
        } else if sys.conn_reuse_mode != 0 && is_new_conn_expected(c, sys.conn_reuse_mode) {
            resched = c.n_control == 0 || !old_conntrack;
        }
        if resched {
            let expire_old = c.n_control == 0;
            return if old_conntrack {
                ExistingAction::Drop { expire_old }
            } else {
                ExistingAction::Reschedule { expire_old }
            };
        }
    }
    if c.dest_available == Some(false) {
        if sys.expire_nodest_conn {
            return if old_conntrack {
                ExistingAction::Drop { expire_old: true }
            } else {
                ExistingAction::Reschedule { expire_old: true }
            };
        }
        return ExistingAction::Drop { expire_old: false };
    }
    ExistingAction::Use
}
