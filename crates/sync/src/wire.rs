//! Constants of the IPVS sync protocol (`docs/internals/sync.md`): header and record sizes,
//! option types, the defaults of the transport. Every multi-byte field is big-endian except the
//! version-0 sequence data (see [`crate::encode`]).

use std::net::{IpAddr, Ipv4Addr};

/// Version-1 message header (`struct ip_vs_sync_mesg`): reserved (0), syncid, size (be16),
/// nr_conns, version (1), spare (be16, 0).
pub const V1_HEADER_LEN: usize = 8;
/// Version-0 message header (`struct ip_vs_sync_mesg_v0`): nr_conns, syncid, size (be16).
pub const V0_HEADER_LEN: usize = 4;
/// Version-1 IPv4 record without options (`struct ip_vs_sync_v4`).
pub const V1_V4_RECORD_LEN: usize = 36;
/// Version-1 IPv6 record without options (`struct ip_vs_sync_v6`).
pub const V1_V6_RECORD_LEN: usize = 72;
/// Version-0 record (`struct ip_vs_sync_conn_v0`).
pub const V0_RECORD_LEN: usize = 24;
/// Sequence data (`struct ip_vs_sync_conn_options`): two `{init_seq, delta, previous_delta}`.
pub const SEQ_DATA_LEN: usize = 24;
/// Version-0 record followed by its sequence data.
pub const V0_FULL_RECORD_LEN: usize = V0_RECORD_LEN + SEQ_DATA_LEN;

/// The `version` byte of a version-1 header.
pub const PROTO_VERSION_1: u8 = 1;
/// Record type bit: IPv6 addresses (`STYPE_F_INET6`).
pub const TYPE_F_INET6: u8 = 0x01;
/// The record version lives in the high 4 bits of `ver_size`, the record length in the low 12.
pub const VER_SHIFT: u16 = 12;
/// Mask of the record length in `ver_size`.
pub const SIZE_MASK: u16 = 0x0fff;

/// Option: sequence data (24 bytes).
pub const OPT_SEQ_DATA: u8 = 1;
/// Option: persistence-engine data (1..=255 bytes).
pub const OPT_PE_DATA: u8 = 2;
/// Option: persistence-engine name (1..=16 bytes).
pub const OPT_PE_NAME: u8 = 3;
/// Option type bit: the option may be ignored by a receiver that does not know it
/// (`IPVS_OPT_F_PARAM`). Receivers mask it off before matching the known types.
pub const OPT_F_OPTIONAL: u8 = 0x40;
/// Option (rvs): the FULLNAT local address and port, 4 or 16 address bytes (the record's
/// family) then the port. Always sent with [`OPT_F_OPTIONAL`], so that a kernel receiver skips
/// it; its type without that bit (0x10) is none of the kernel's (1..=3).
pub const OPT_LOCAL_ADDR: u8 = 0x10;
/// Longest PE data (`IP_VS_PEDATA_MAXLEN`).
pub const PE_DATA_MAX: usize = 255;
/// Longest PE name (`IP_VS_PENAME_MAXLEN`).
pub const PE_NAME_MAX: usize = 16;

/// Connection flags a backup keeps from a version-1 record (`IP_VS_CONN_F_BACKUP_MASK`):
/// forwarding method, NOOUTPUT, INACTIVE, the SEQ bits, NO_CPORT and TEMPLATE.
pub const BACKUP_FLAGS_MASK: u32 = {
    use rvs_core::conn::flags::*;
    FWD_MASK | NOOUTPUT | INACTIVE | OUT_SEQ | IN_SEQ | NO_CPORT | TEMPLATE
};

/// Default multicast group (IPv4).
pub const DEFAULT_GROUP: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 81));
/// Default UDP port; with `sync_ports` = N, thread i uses `port + i`.
pub const DEFAULT_PORT: u16 = 8848;
/// Default multicast TTL.
pub const DEFAULT_TTL: u8 = 1;

/// IPv4 + UDP header bytes the kernel subtracts from the MTU.
pub const V4_UDP_OVERHEAD: u32 = 28;
/// IPv6 + UDP header bytes.
pub const V6_UDP_OVERHEAD: u32 = 48;

/// The daemon role a maximum message length is computed for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sends.
    Master,
    /// Receives.
    Backup,
}

/// `sync_maxlen` as the kernel fixes it at daemon start: a given value is clamped to
/// 1..=65535−hdr (master) or 1024..=65535−hdr (backup); without one the master uses
/// 1500 − hdr whatever the interface, the backup `clamp(mtu, 1500, 65535)` − hdr, where hdr is
/// the IP + UDP header length of the group's family.
pub fn effective_maxlen(role: Role, given: u32, if_mtu: u32, v6_group: bool) -> u32 {
    let hlen = if v6_group {
        V6_UDP_OVERHEAD
    } else {
        V4_UDP_OVERHEAD
    };
    let (mtu, min) = match role {
        Role::Master => (1500, 1),
        Role::Backup => (if_mtu.clamp(1500, 65535), 1024),
    };
    if given != 0 {
        given.clamp(min, 65535 - hlen)
    } else {
        mtu - hlen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxlen_defaults_and_clamps() {
        assert_eq!(effective_maxlen(Role::Master, 0, 9000, false), 1472);
        assert_eq!(effective_maxlen(Role::Master, 0, 9000, true), 1452);
        assert_eq!(effective_maxlen(Role::Backup, 0, 9000, false), 8972);
        assert_eq!(effective_maxlen(Role::Backup, 0, 1280, false), 1472);
        assert_eq!(effective_maxlen(Role::Backup, 100, 1500, false), 1024);
        assert_eq!(effective_maxlen(Role::Master, 100, 1500, false), 100);
        assert_eq!(effective_maxlen(Role::Master, 65535, 1500, false), 65507);
        assert_eq!(effective_maxlen(Role::Master, 65535, 1500, true), 65487);
    }
}
