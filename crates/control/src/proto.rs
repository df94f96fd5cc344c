//! Requests, responses and errors exchanged over the control socket.

use crate::model::*;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// Version of this protocol. Bump on any incompatible change of the types in this crate,
/// including a new [`Request`] or [`Payload`] variant: a peer built before it could not decode
/// the message and would drop the connection, where a version mismatch is reported clearly at
/// the handshake.
///
/// History: 1 = the IPVS requests; 2 = [`Request::GetVrrp`] / [`Payload::Vrrp`];
/// 3 = [`Request::GetSysctls`] / [`Request::SetSysctl`] / [`Payload::Sysctls`];
/// 4 = [`Request::Batch`] / [`Payload::Batch`] / [`ErrorKind::CannotListen`].
pub const PROTOCOL_VERSION: u32 = 4;

/// One operation, mirroring ipvsadm's kernel calls (docs/internals/ipvsadm.md) plus rvs additions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Must be the first message on a connection (see [`crate::codec`]).
    Hello {
        /// [`PROTOCOL_VERSION`] of the client.
        protocol: u32,
        /// Free-form client identification, e.g. `rvsadm 0.1.0`.
        client: String,
    },
    /// Version and connection table size → [`Payload::Info`].
    GetInfo,
    /// `-A`. Errors: EEXIST, ENOENT (scheduler/PE), EINVAL.
    AddService(ServiceSpec),
    /// `-E` (full replacement). Errors: ESRCH, ENOENT, EINVAL.
    EditService(ServiceSpec),
    /// `-D`. Errors: ESRCH.
    DelService(ServiceKey),
    /// `-C`: remove every service.
    Flush,
    /// `-Z`: zero one service's counters (`Some`) or everything (`None`). Errors: ESRCH.
    Zero(Option<ServiceKey>),
    /// `-a`. Errors: ESRCH (no service), EEXIST, EINVAL, ERANGE.
    AddDest {
        /// The service.
        service: ServiceKey,
        /// The new real server.
        dest: DestSpec,
    },
    /// `-e` (full replacement). Errors: ESRCH, ENOENT, EINVAL, ERANGE.
    EditDest {
        /// The service.
        service: ServiceKey,
        /// The real server (identified by addr + port) and its new settings.
        dest: DestSpec,
    },
    /// `-d`. Errors: ESRCH, ENOENT.
    DelDest {
        /// The service.
        service: ServiceKey,
        /// Real server address.
        addr: IpAddr,
        /// Real server port.
        port: u16,
    },
    /// `--set tcp tcpfin udp` (0 = leave unchanged).
    SetTimeouts(Timeouts),
    /// All services with their real servers → [`Payload::Services`], in table order.
    GetServices,
    /// One service with its real servers → [`Payload::Service`]. Errors: ESRCH.
    GetService(ServiceKey),
    /// Real servers of one service → [`Payload::Dests`]. Errors: ESRCH.
    GetDests(ServiceKey),
    /// Connection table → [`Payload::Conns`].
    GetConns,
    /// → [`Payload::Timeouts`].
    GetTimeouts,
    /// Running sync daemons → [`Payload::Daemons`].
    GetDaemons,
    /// `--start-daemon`. Errors: EEXIST, or `Unsupported` while sync does not exist.
    StartDaemon(DaemonConfig),
    /// `--stop-daemon`. Errors: ESRCH.
    StopDaemon {
        /// Which daemon.
        role: SyncRole,
        /// Sync ID given by the user (ignored by the kernel).
        syncid: u8,
    },
    /// `--add-laddr -z LIP`: add a FULLNAT local address. Errors: ESRCH, EEXIST, EINVAL.
    AddLocalAddr {
        /// The service.
        service: ServiceKey,
        /// The local address.
        addr: IpAddr,
    },
    /// `--del-laddr -z LIP`. Errors: ESRCH, ENOENT.
    DelLocalAddr {
        /// The service.
        service: ServiceKey,
        /// The local address.
        addr: IpAddr,
    },
    /// `--get-laddr`: for one service or all → [`Payload::LocalAddrs`]. Errors: ESRCH.
    GetLocalAddrs(Option<ServiceKey>),
    /// rvs addition (`-L --vrrp`): the status of every VRRP instance → [`Payload::Vrrp`], in
    /// configuration order; empty when rvsd runs no `vrrp_instance`.
    GetVrrp,
    /// rvs addition (`rvsadm --sysctl`): every IPVS sysctl with its value → [`Payload::Sysctls`].
    GetSysctls,
    /// rvs addition (`rvsadm --sysctl NAME=VALUE`): set one IPVS sysctl. Errors: ENOENT (no
    /// such name), EINVAL (the kernel's check refuses the value), EPERM (read-only in rvs);
    /// a sysctl that rvs does not act on yet is stored and answered with a warning.
    SetSysctl {
        /// Name under `net.ipv4.vs.`, e.g. `sloppy_tcp`.
        name: String,
        /// The value as written to `/proc/sys/net/ipv4/vs/NAME`.
        value: String,
    },
    /// rvs addition (`rvsadm -R`, rules files): table changes applied in order under one lock
    /// of the table and handed to the data planes once, at the end → [`Payload::Batch`], one
    /// response per request in the same order. Why: publishing the table to the planes costs
    /// time proportional to its size, so 110 000 `-R` lines sent one by one cost time
    /// proportional to the square of the table; a batch costs that once. A failed request
    /// does not stop the others (ipvsadm `-R` goes on after a failed line). Only the requests
    /// for which [`Request::is_batchable`] holds may be inside; anything else is answered
    /// EINVAL in its place.
    Batch(Vec<Request>),
}

/// How many requests a sender puts in one [`Request::Batch`]: large enough that publishing
/// once per batch is cheap next to applying it, small enough that a batch of the largest
/// requests stays far below the control socket's frame limit.
pub const BATCH_MAX: usize = 2048;

impl Request {
    /// Whether the request may be part of a [`Request::Batch`]: the table changes ipvsadm
    /// makes (services, real servers, local addresses, timeouts, zeroing, flush).
    pub fn is_batchable(&self) -> bool {
        matches!(
            self,
            Request::AddService(_)
                | Request::EditService(_)
                | Request::DelService(_)
                | Request::Flush
                | Request::Zero(_)
                | Request::AddDest { .. }
                | Request::EditDest { .. }
                | Request::DelDest { .. }
                | Request::SetTimeouts(_)
                | Request::AddLocalAddr { .. }
                | Request::DelLocalAddr { .. }
        )
    }
}

/// Successful answer data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// Answer to [`Request::Hello`].
    Hello {
        /// [`PROTOCOL_VERSION`] of the server.
        protocol: u32,
        /// Free-form server identification, e.g. `rvsd 0.1.0`.
        server: String,
    },
    /// The operation was done; nothing to return.
    Done,
    /// Answer to [`Request::GetInfo`].
    Info(Info),
    /// Answer to [`Request::GetServices`].
    Services(Vec<ServiceEntry>),
    /// Answer to [`Request::GetService`].
    Service(ServiceEntry),
    /// Answer to [`Request::GetDests`].
    Dests(Vec<DestEntry>),
    /// Answer to [`Request::GetConns`].
    Conns(Vec<ConnEntry>),
    /// Answer to [`Request::GetTimeouts`].
    Timeouts(Timeouts),
    /// Answer to [`Request::GetDaemons`]: zero, one or two entries.
    Daemons(Vec<DaemonConfig>),
    /// Answer to [`Request::GetLocalAddrs`].
    LocalAddrs(Vec<ServiceLocalAddrs>),
    /// Answer to [`Request::GetVrrp`].
    Vrrp(Vec<VrrpInstanceEntry>),
    /// Answer to [`Request::GetSysctls`], in the kernel's order.
    Sysctls(Vec<SysctlEntry>),
    /// Answer to [`Request::Batch`]: one response per request, in order.
    Batch(Vec<Response>),
}

/// Kernel-errno-like error kinds, so that rvsadm can print ipvsadm's exact texts (docs/internals/ipvsadm.md#exit-status-and-error-texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// EPERM: caller not allowed.
    Eperm,
    /// ENOENT: scheduler/PE not found, or no such destination / local address.
    Enoent,
    /// ESRCH: no such service, or no daemon running.
    Esrch,
    /// EEXIST: service, destination, daemon or local address already exists.
    Eexist,
    /// EINVAL: malformed or semantically invalid request.
    Einval,
    /// ERANGE: weight or thresholds out of range.
    Erange,
    /// EBUSY: resource busy.
    Ebusy,
    /// ENOMEM: out of memory or table full.
    Enomem,
    /// ENODEV: no such interface.
    Enodev,
    /// ENOPROTOOPT.
    Enoprotoopt,
    /// EOPNOTSUPP.
    Eopnotsupp,
    /// EAFNOSUPPORT: unsupported address family.
    Eafnosupport,
    /// EMSGSIZE.
    Emsgsize,
    /// rvs addition: the operation exists in ipvsadm but rvs does not implement it (yet);
    /// the error's `detail` says what and why, and rvsadm prints that text.
    Unsupported,
    /// rvs addition: the handshake failed (protocol versions differ); see `detail`.
    ProtocolMismatch,
    /// rvs addition: the daemon failed internally; see `detail`.
    Internal,
    /// rvs addition: the entry belongs to another source of the table (etcd, Docker
    /// discovery) and an rvsadm change of it would be undone; `detail` names the source.
    Managed,
    /// rvs addition: the socket proxy could not listen on a new service's address (address in
    /// use, out of descriptors, ...): the service was not added; `detail` names the address
    /// and the system's reason, and rvsadm prints it.
    CannotListen,
}

impl ErrorKind {
    /// glibc's `strerror` text, used by ipvsadm when no specific text applies.
    pub fn strerror(self) -> &'static str {
        match self {
            ErrorKind::Eperm => "Operation not permitted",
            ErrorKind::Enoent => "No such file or directory",
            ErrorKind::Esrch => "No such process",
            ErrorKind::Eexist => "File exists",
            ErrorKind::Einval => "Invalid argument",
            ErrorKind::Erange => "Numerical result out of range",
            ErrorKind::Ebusy => "Device or resource busy",
            ErrorKind::Enomem => "Cannot allocate memory",
            ErrorKind::Enodev => "No such device",
            ErrorKind::Enoprotoopt => "Protocol not available",
            ErrorKind::Eopnotsupp => "Operation not supported",
            ErrorKind::Eafnosupport => "Address family not supported by protocol",
            ErrorKind::Emsgsize => "Message too long",
            ErrorKind::Unsupported => "Operation not supported",
            ErrorKind::ProtocolMismatch => "Protocol version mismatch",
            ErrorKind::Internal => "Internal error",
            ErrorKind::Managed => "Operation not permitted",
            ErrorKind::CannotListen => "Cannot listen on the service address",
        }
    }
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    /// What went wrong, errno style.
    pub kind: ErrorKind,
    /// Human text. Required for `Unsupported`, `ProtocolMismatch`, `Internal`, `CannotListen`
    /// and `Managed`; rvsadm prints it instead of an errno text for those kinds. Optional
    /// (ignored by rvsadm) otherwise.
    pub detail: Option<String>,
}

impl RemoteError {
    /// An errno-style error without detail.
    pub fn new(kind: ErrorKind) -> Self {
        RemoteError { kind, detail: None }
    }

    /// An error with a human-readable detail.
    pub fn with_detail(kind: ErrorKind, detail: impl Into<String>) -> Self {
        RemoteError {
            kind,
            detail: Some(detail.into()),
        }
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.detail {
            Some(d) => f.write_str(d),
            None => f.write_str(self.kind.strerror()),
        }
    }
}

impl std::error::Error for RemoteError {}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Data, or an error.
    pub result: Result<Payload, RemoteError>,
    /// One-line notes that rvsadm prints to stderr (before any output), e.g. that a DR real
    /// server is accepted into the table but not served without the packet data plane.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Response {
    /// A successful response without warnings.
    pub fn ok(payload: Payload) -> Self {
        Response {
            result: Ok(payload),
            warnings: Vec::new(),
        }
    }

    /// An error response without warnings.
    pub fn err(error: RemoteError) -> Self {
        Response {
            result: Err(error),
            warnings: Vec::new(),
        }
    }

    /// Adds a warning (builder style).
    pub fn warn(mut self, w: impl Into<String>) -> Self {
        self.warnings.push(w.into());
        self
    }
}
