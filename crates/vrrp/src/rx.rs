//! Receive validation as keepalived 2.2.7 does it (`vrrp_check_packet`, docs/internals/vrrp.md#receive-checks):
//! the same checks in the same order, each failure a distinct [`Reject`] reason, counted in
//! [`RxCounters`].

use std::fmt;
use std::net::IpAddr;

use crate::config::InstanceConfig;
use crate::ip::RxPacket;
use crate::wire::{message_len, ChecksumMode, Family, Packet, Version, HEADER_LEN};

/// Why a received advert was ignored. Every variant is one row of docs/internals/vrrp.md#receive-checks (plus the VRID/family
/// demultiplexing that keepalived does before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// The advert is for another VRID (normally filtered by the driver's demultiplexing).
    Vrid {
        /// VRID in the packet.
        got: u8,
    },
    /// Source address family differs from the instance's.
    Family,
    /// #1: an AH header was received; AH authentication is not supported (never configured).
    AhHeader,
    /// #2: packet length differs from the length implied by the address count.
    Length {
        /// Bytes received (VRRP message).
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// #3: multicast advert with TTL / hop limit ≠ 255.
    Ttl {
        /// Received TTL.
        got: u8,
    },
    /// #4: version differs from the configured one.
    Version {
        /// Received version nibble.
        got: u8,
        /// Configured version.
        expected: u8,
    },
    /// #5: v2 auth type not 0, 1 or 2.
    InvalidAuthType(u8),
    /// #6: v2 auth type differs from the configured one.
    AuthTypeMismatch {
        /// Received auth type.
        got: u8,
        /// Configured auth type.
        expected: u8,
    },
    /// #7: v2 PASS password differs.
    Password,
    /// #9: v2 advertisement interval differs.
    AdvertInterval {
        /// Received interval (seconds).
        got: u16,
        /// Configured interval (seconds).
        expected: u16,
    },
    /// #10: packet type is not ADVERTISEMENT.
    Type(u8),
    /// #11: number of addresses differs from the configured VIP count.
    AddressCount {
        /// Received count.
        got: u8,
        /// Configured count.
        expected: usize,
    },
    /// #12: IPv4 total length differs from the bytes received.
    IpLength {
        /// Total length field.
        total_len: u16,
        /// Bytes received.
        received: usize,
    },
    /// #13: checksum does not verify.
    Checksum,
    /// #14: multicast advert for a unicast instance or vice versa.
    Multicast {
        /// Whether the instance expected a multicast destination.
        expected_multicast: bool,
    },
    /// #15: a configured VIP is not in the advert.
    MissingVip(IpAddr),
    /// #16: unicast source is not a configured peer (`check_unicast_src`).
    NotAPeer(IpAddr),
    /// #16: unicast TTL outside the peer's `min_ttl..max_ttl`.
    PeerTtl {
        /// Received TTL.
        got: u8,
        /// Peer's minimum.
        min: u8,
        /// Peer's maximum.
        max: u8,
    },
}

/// Reject reasons without their data, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // one per Reject variant, same meaning
pub enum RejectKind {
    Vrid,
    Family,
    AhHeader,
    Length,
    Ttl,
    Version,
    InvalidAuthType,
    AuthTypeMismatch,
    Password,
    AdvertInterval,
    Type,
    AddressCount,
    IpLength,
    Checksum,
    Multicast,
    MissingVip,
    NotAPeer,
    PeerTtl,
}

impl RejectKind {
    /// All kinds, in counter order.
    pub const ALL: [RejectKind; 18] = [
        RejectKind::Vrid,
        RejectKind::Family,
        RejectKind::AhHeader,
        RejectKind::Length,
        RejectKind::Ttl,
        RejectKind::Version,
        RejectKind::InvalidAuthType,
        RejectKind::AuthTypeMismatch,
        RejectKind::Password,
        RejectKind::AdvertInterval,
        RejectKind::Type,
        RejectKind::AddressCount,
        RejectKind::IpLength,
        RejectKind::Checksum,
        RejectKind::Multicast,
        RejectKind::MissingVip,
        RejectKind::NotAPeer,
        RejectKind::PeerTtl,
    ];

    /// A stable snake_case name for metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            RejectKind::Vrid => "vrid",
            RejectKind::Family => "family",
            RejectKind::AhHeader => "ah_header",
            RejectKind::Length => "length",
            RejectKind::Ttl => "ttl",
            RejectKind::Version => "version",
            RejectKind::InvalidAuthType => "invalid_auth_type",
            RejectKind::AuthTypeMismatch => "auth_type_mismatch",
            RejectKind::Password => "password",
            RejectKind::AdvertInterval => "advert_interval",
            RejectKind::Type => "type",
            RejectKind::AddressCount => "address_count",
            RejectKind::IpLength => "ip_length",
            RejectKind::Checksum => "checksum",
            RejectKind::Multicast => "multicast",
            RejectKind::MissingVip => "missing_vip",
            RejectKind::NotAPeer => "not_a_peer",
            RejectKind::PeerTtl => "peer_ttl",
        }
    }
}

impl Reject {
    /// The counter this reason increments.
    pub fn kind(&self) -> RejectKind {
        match self {
            Reject::Vrid { .. } => RejectKind::Vrid,
            Reject::Family => RejectKind::Family,
            Reject::AhHeader => RejectKind::AhHeader,
            Reject::Length { .. } => RejectKind::Length,
            Reject::Ttl { .. } => RejectKind::Ttl,
            Reject::Version { .. } => RejectKind::Version,
            Reject::InvalidAuthType(_) => RejectKind::InvalidAuthType,
            Reject::AuthTypeMismatch { .. } => RejectKind::AuthTypeMismatch,
            Reject::Password => RejectKind::Password,
            Reject::AdvertInterval { .. } => RejectKind::AdvertInterval,
            Reject::Type(_) => RejectKind::Type,
            Reject::AddressCount { .. } => RejectKind::AddressCount,
            Reject::IpLength { .. } => RejectKind::IpLength,
            Reject::Checksum => RejectKind::Checksum,
            Reject::Multicast { .. } => RejectKind::Multicast,
            Reject::MissingVip(_) => RejectKind::MissingVip,
            Reject::NotAPeer(_) => RejectKind::NotAPeer,
            Reject::PeerTtl { .. } => RejectKind::PeerTtl,
        }
    }
}

impl fmt::Display for Reject {
    /// keepalived 2.2.7's log text for the reason, without the `(instance)` prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::Vrid { got } => write!(f, "Unknown VRID({got}) received. ignoring..."),
            Reject::Family => write!(f, "address family mismatch"),
            Reject::AhHeader => {
                write!(
                    f,
                    "Received AH header but auth type not AH (AH unsupported)"
                )
            }
            Reject::Length { got, expected } => {
                let w = if got > expected { "long" } else { "short" };
                write!(f, "vrrp packet too {w}, length {got} and expect {expected}")
            }
            Reject::Ttl { got } => write!(f, "invalid TTL/HL. Received {got} and expect 255"),
            Reject::Version { got, expected } => {
                write!(f, "wrong version. Received {got} and expect {expected}")
            }
            Reject::InvalidAuthType(t) => write!(f, "Invalid auth type: {t}"),
            Reject::AuthTypeMismatch { got, expected } => {
                write!(f, "received a {got} auth, expecting {expected}!")
            }
            Reject::Password => write!(f, "received an invalid passwd!"),
            Reject::AdvertInterval { got, expected } => write!(
                f,
                "advertisement interval mismatch mine={expected} sec rcv'd={got} sec"
            ),
            Reject::Type(t) => write!(f, "Invalid packet type. {t} and expect 1"),
            Reject::AddressCount { got, expected } => write!(
                f,
                "received an unexpected ip number count {got}, expected {expected}!"
            ),
            Reject::IpLength {
                total_len,
                received,
            } => write!(
                f,
                "ip_tot_len mismatch against received length. {total_len} and received {received}"
            ),
            Reject::Checksum => write!(f, "Invalid VRRP checksum"),
            Reject::Multicast { expected_multicast } => {
                if *expected_multicast {
                    write!(f, "Expected multicast packet but received unicast packet")
                } else {
                    write!(f, "Expected unicast packet but received multicast packet")
                }
            }
            Reject::MissingVip(a) => {
                write!(
                    f,
                    "ip address associated with VRID not present in MASTER advert: {a}"
                )
            }
            Reject::NotAPeer(a) => write!(f, "unicast source address {a} not a unicast peer"),
            Reject::PeerTtl { got, min, max } => {
                write!(f, "TTL/HL {got} not in range {min} - {max}")
            }
        }
    }
}

/// Per-instance receive counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RxCounters {
    /// Adverts offered to the instance (in any state).
    pub received: u64,
    /// Adverts that passed validation.
    pub accepted: u64,
    /// Adverts ignored because the instance was in INIT/FAULT/STOPPED.
    pub ignored_state: u64,
    /// Valid adverts with priority 0.
    pub priority_zero: u64,
    rejected: [u64; RejectKind::ALL.len()],
}

impl RxCounters {
    /// Count one rejection.
    pub fn count(&mut self, kind: RejectKind) {
        if let Some(i) = RejectKind::ALL.iter().position(|k| *k == kind) {
            self.rejected[i] = self.rejected[i].saturating_add(1);
        }
    }

    /// Rejections of one kind.
    pub fn rejected(&self, kind: RejectKind) -> u64 {
        RejectKind::ALL
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| self.rejected[i])
    }

    /// All rejections.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }
}

/// The facts of a valid advert the state machine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidAdvert {
    /// Sender (the tie-break address).
    pub src: IpAddr,
    /// Advertised priority.
    pub priority: u8,
    /// Advertised interval in centiseconds (v2: seconds × 100).
    pub interval_cs: u16,
    /// The checksum only verified with the pre-1.3.6 unicast variant: switch to it (keepalived
    /// logs `Setting unicast VRRPv3 checksum to old version`).
    pub old_unicast_checksum: bool,
}

/// Validate `rx` for the instance configured by `cfg`. `check_vips` says whether checks 11 and 15
/// apply (always in MASTER; in BACKUP unless `skip_check_adv_addr` and the same master as last
/// time). `mode` is the checksum variant currently in use for v3/IPv4.
pub fn validate(
    cfg: &InstanceConfig,
    rx: &RxPacket<'_>,
    check_vips: bool,
    mode: ChecksumMode,
) -> Result<ValidAdvert, Reject> {
    let family = cfg.family();
    if Family::of(&rx.src) != family {
        return Err(Reject::Family);
    }
    let b = rx.vrrp;
    // Too short to hold even the header: keepalived's dispatcher drops it as a length error.
    if b.len() < HEADER_LEN {
        return Err(Reject::Length {
            got: b.len(),
            expected: message_len(cfg.version, family, cfg.vips.len().min(255) as u8),
        });
    }
    if b[1] != cfg.vrid {
        return Err(Reject::Vrid { got: b[1] });
    }
    // #1: AH is never configured (validate() refuses it), so any AH header is a mismatch.
    if rx.ah {
        return Err(Reject::AhHeader);
    }
    // #2: the expected length uses the *configured* version (a v3 packet at a v2 instance is
    // "too short" before it is "wrong version", as in keepalived).
    let expected = message_len(cfg.version, family, b[3]);
    if b.len() != expected {
        return Err(Reject::Length {
            got: b.len(),
            expected,
        });
    }
    // #3: only multicast adverts must arrive with TTL 255.
    if !cfg.is_unicast() && rx.ttl != 255 {
        return Err(Reject::Ttl { got: rx.ttl });
    }
    // #4
    let vn = b[0] >> 4;
    if vn != cfg.version.number() {
        return Err(Reject::Version {
            got: vn,
            expected: cfg.version.number(),
        });
    }
    // The length matches the configured version, so the view cannot fail; map defensively.
    let p = Packet::new_checked(b, family).map_err(|_| Reject::Length {
        got: b.len(),
        expected,
    })?;
    if cfg.version == Version::V2 {
        // #5, #6, #7
        let at = p.auth_type_raw();
        if at > 2 {
            return Err(Reject::InvalidAuthType(at));
        }
        if at != cfg.auth_type() {
            return Err(Reject::AuthTypeMismatch {
                got: at,
                expected: cfg.auth_type(),
            });
        }
        if at == 1 && p.auth_data() != Some(cfg.auth_data()) {
            return Err(Reject::Password);
        }
        // #9 (v3 mismatches are not checked in 2.2.7: the backup adopts the master's interval)
        let want = cfg.wire_interval();
        if u16::from(p.adver_int_v2()) != want {
            return Err(Reject::AdvertInterval {
                got: u16::from(p.adver_int_v2()),
                expected: want,
            });
        }
    }
    // #10
    if p.packet_type() != 1 {
        return Err(Reject::Type(p.packet_type()));
    }
    // #11
    if check_vips && usize::from(p.count()) != cfg.vips.len() {
        return Err(Reject::AddressCount {
            got: p.count(),
            expected: cfg.vips.len(),
        });
    }
    // #12
    if let Some(tl) = rx.ip_total_len {
        if usize::from(tl) != rx.received_len {
            return Err(Reject::IpLength {
                total_len: tl,
                received: rx.received_len,
            });
        }
    }
    // #13: the configured variant; for unicast v3/IPv4 fall back to the old variant when allowed.
    let mut old_unicast_checksum = false;
    if !p.verify_checksum(rx.src, rx.dst, mode) {
        let v3v4 = cfg.version == Version::V3 && family == Family::Inet;
        if v3v4
            && cfg.is_unicast()
            && cfg.old_unicast_autodetect
            && mode != ChecksumMode::OldUnicast
            && p.verify_checksum(rx.src, rx.dst, ChecksumMode::OldUnicast)
        {
            old_unicast_checksum = true;
        } else {
            return Err(Reject::Checksum);
        }
    }
    // #14
    if rx.dst.is_multicast() == cfg.is_unicast() {
        return Err(Reject::Multicast {
            expected_multicast: !cfg.is_unicast(),
        });
    }
    // #15
    if check_vips {
        if let Some(v) = cfg.vips.iter().find(|v| !p.addresses().any(|a| a == **v)) {
            return Err(Reject::MissingVip(*v));
        }
    }
    // #16
    let peer_limits = cfg
        .unicast_peers
        .iter()
        .any(|p| p.min_ttl != 0 || p.max_ttl != 255);
    if cfg.is_unicast() && (cfg.check_unicast_src || peer_limits) {
        match cfg.unicast_peers.iter().find(|p| p.addr == rx.src) {
            None => return Err(Reject::NotAPeer(rx.src)),
            Some(peer) if rx.ttl < peer.min_ttl || rx.ttl > peer.max_ttl => {
                return Err(Reject::PeerTtl {
                    got: rx.ttl,
                    min: peer.min_ttl,
                    max: peer.max_ttl,
                })
            }
            Some(_) => {}
        }
    }
    let interval_cs = match cfg.version {
        Version::V2 => u16::from(p.adver_int_v2()) * 100,
        Version::V3 => p.max_adver_int_v3(),
    };
    Ok(ValidAdvert {
        src: rx.src,
        priority: p.priority(),
        interval_cs,
        old_unicast_checksum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Auth, UnicastPeer};
    use crate::ip::{encode_ipv4, Ipv4Header};
    use crate::wire::{pass_auth_data, Advert, AUTH_DATA_LEN};
    use std::net::Ipv4Addr;

    const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

    fn cfg() -> InstanceConfig {
        let mut c = InstanceConfig::new(
            "VI_1",
            51,
            Version::V2,
            IpAddr::V4(ME),
            vec!["10.0.0.100".parse().unwrap(), "10.0.0.101".parse().unwrap()],
        );
        c.auth = Auth::Pass(pass_auth_data(b"secret"));
        c
    }

    fn advert(c: &InstanceConfig) -> Advert {
        Advert {
            version: c.version,
            packet_type: 1,
            vrid: c.vrid,
            priority: 150,
            auth_or_reserved: if c.version == Version::V2 {
                c.auth_type()
            } else {
                0
            },
            adver_int: c.wire_interval(),
            addresses: c.vips.clone(),
            auth_data: c.auth_data(),
        }
    }

    fn packet(a: &Advert, dst: Ipv4Addr) -> Vec<u8> {
        encode_ipv4(a, PEER, dst, 7, 255, ChecksumMode::PseudoHeader).unwrap()
    }

    fn check(c: &InstanceConfig, pkt: &[u8]) -> Result<ValidAdvert, Reject> {
        validate(
            c,
            &RxPacket::parse(pkt).unwrap(),
            true,
            ChecksumMode::PseudoHeader,
        )
    }

    /// Rewrite the IPv4 header after editing the packet so only the intended check fails.
    fn fix_ip(pkt: &mut [u8]) {
        pkt[10] = 0;
        pkt[11] = 0;
        let c = crate::wire::internet_checksum(&pkt[..20]);
        pkt[10..12].copy_from_slice(&c.to_be_bytes());
    }

    /// Recompute the VRRP checksum of a v2 packet after editing it.
    fn fix_vrrp(pkt: &mut [u8]) {
        pkt[26] = 0;
        pkt[27] = 0;
        let c = crate::wire::internet_checksum(&pkt[20..]);
        pkt[26..28].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn valid_advert_passes() {
        let c = cfg();
        let v = check(&c, &packet(&advert(&c), GROUP)).unwrap();
        assert_eq!(v.priority, 150);
        assert_eq!(v.src, IpAddr::V4(PEER));
        assert_eq!(v.interval_cs, 100);
        assert!(!v.old_unicast_checksum);
    }

    #[test]
    fn each_check_has_its_own_reason() {
        let c = cfg();
        let good = packet(&advert(&c), GROUP);

        let mut a = advert(&c);
        a.vrid = 52;
        assert_eq!(check(&c, &packet(&a, GROUP)), Err(Reject::Vrid { got: 52 }));

        // #2 length: one trailing byte (IP total length adjusted so only #2 fails).
        let mut p = good.clone();
        p.push(0);
        p[3] += 1;
        fix_ip(&mut p);
        assert_eq!(
            check(&c, &p),
            Err(Reject::Length {
                got: 25,
                expected: 24
            })
        );
        // ... and a v3 packet at a v2 instance is "too short" before "wrong version".
        let mut a = advert(&c);
        a.version = Version::V3;
        a.auth_or_reserved = 0;
        assert!(matches!(
            check(&c, &packet(&a, GROUP)),
            Err(Reject::Length {
                got: 16,
                expected: 24
            })
        ));

        // #3 TTL (multicast)
        let mut p = good.clone();
        p[8] = 254;
        fix_ip(&mut p);
        assert_eq!(check(&c, &p), Err(Reject::Ttl { got: 254 }));

        // #4 version: v3 nibble on a v2-sized packet.
        let mut p = good.clone();
        p[20] = 0x31;
        fix_vrrp(&mut p);
        assert_eq!(
            check(&c, &p),
            Err(Reject::Version {
                got: 3,
                expected: 2
            })
        );

        // #5, #6, #7
        let mut p = good.clone();
        p[24] = 3;
        fix_vrrp(&mut p);
        assert_eq!(check(&c, &p), Err(Reject::InvalidAuthType(3)));
        let mut a = advert(&c);
        a.auth_or_reserved = 0;
        a.auth_data = [0; AUTH_DATA_LEN];
        assert_eq!(
            check(&c, &packet(&a, GROUP)),
            Err(Reject::AuthTypeMismatch {
                got: 0,
                expected: 1
            })
        );
        let mut a = advert(&c);
        a.auth_data = pass_auth_data(b"secreT");
        assert_eq!(check(&c, &packet(&a, GROUP)), Err(Reject::Password));

        // #9
        let mut a = advert(&c);
        a.adver_int = 3;
        assert_eq!(
            check(&c, &packet(&a, GROUP)),
            Err(Reject::AdvertInterval {
                got: 3,
                expected: 1
            })
        );

        // #10
        let mut a = advert(&c);
        a.packet_type = 2;
        assert_eq!(check(&c, &packet(&a, GROUP)), Err(Reject::Type(2)));

        // #11
        let mut a = advert(&c);
        a.addresses.pop();
        assert_eq!(
            check(&c, &packet(&a, GROUP)),
            Err(Reject::AddressCount {
                got: 1,
                expected: 2
            })
        );

        // #12: total length says one byte more than received.
        let mut p = good.clone();
        p[3] += 1;
        fix_ip(&mut p);
        let rx = RxPacket::parse(&p).unwrap();
        assert_eq!(
            validate(&c, &rx, true, ChecksumMode::PseudoHeader),
            Err(Reject::IpLength {
                total_len: 45,
                received: 44
            })
        );

        // #13
        let mut p = good.clone();
        p[27] ^= 1;
        assert_eq!(check(&c, &p), Err(Reject::Checksum));

        // #14: unicast destination for a multicast instance, and vice versa.
        assert_eq!(
            check(&c, &packet(&advert(&c), ME)),
            Err(Reject::Multicast {
                expected_multicast: true
            })
        );
        let mut uc = cfg();
        uc.unicast_peers = vec![UnicastPeer::new(IpAddr::V4(PEER))];
        assert_eq!(
            check(&uc, &good),
            Err(Reject::Multicast {
                expected_multicast: false
            })
        );

        // #15
        let mut a = advert(&c);
        a.addresses[1] = "10.0.0.102".parse().unwrap();
        assert_eq!(
            check(&c, &packet(&a, GROUP)),
            Err(Reject::MissingVip("10.0.0.101".parse().unwrap()))
        );
    }

    #[test]
    fn vip_checks_can_be_skipped() {
        let c = cfg();
        let mut a = advert(&c);
        a.addresses.pop();
        let p = packet(&a, GROUP);
        let rx = RxPacket::parse(&p).unwrap();
        assert!(validate(&c, &rx, false, ChecksumMode::PseudoHeader).is_ok());
    }

    #[test]
    fn unicast_source_and_ttl_checks() {
        let mut c = cfg();
        c.unicast_peers = vec![UnicastPeer {
            addr: IpAddr::V4(PEER),
            min_ttl: 250,
            max_ttl: 255,
        }];
        let a = advert(&c);
        // TTL is not checked against 255 for unicast, only against the peer's range.
        let p = encode_ipv4(&a, PEER, ME, 1, 251, ChecksumMode::PseudoHeader).unwrap();
        assert!(check(&c, &p).is_ok());
        let p = encode_ipv4(&a, PEER, ME, 1, 64, ChecksumMode::PseudoHeader).unwrap();
        assert_eq!(
            check(&c, &p),
            Err(Reject::PeerTtl {
                got: 64,
                min: 250,
                max: 255
            })
        );
        let other = Ipv4Addr::new(10, 0, 0, 9);
        let p = encode_ipv4(&a, other, ME, 1, 255, ChecksumMode::PseudoHeader).unwrap();
        assert_eq!(check(&c, &p), Err(Reject::NotAPeer(IpAddr::V4(other))));
        // Without check_unicast_src or TTL limits any source is fine.
        c.unicast_peers[0].min_ttl = 0;
        assert!(check(&c, &p).is_ok());
        c.check_unicast_src = true;
        assert!(check(&c, &p).is_err());
    }

    #[test]
    fn ah_header_is_rejected_clearly() {
        let c = cfg();
        let mut msg = Vec::new();
        advert(&c)
            .emit(
                &mut msg,
                IpAddr::V4(PEER),
                IpAddr::V4(GROUP),
                ChecksumMode::PseudoHeader,
            )
            .unwrap();
        let mut ah = vec![112, 4, 0, 0];
        ah.extend_from_slice(&[0; 20]);
        let mut h = Ipv4Header::vrrp(PEER, GROUP, 1, 255, ah.len() + msg.len());
        h.protocol = crate::wire::IPPROTO_AH;
        let mut p = Vec::new();
        h.emit(&mut p);
        p.extend_from_slice(&ah);
        p.extend_from_slice(&msg);
        let r = check(&c, &p).unwrap_err();
        assert_eq!(r, Reject::AhHeader);
        assert!(r.to_string().contains("AH"));
    }

    #[test]
    fn short_and_wrong_family_packets() {
        let c = cfg();
        let rx = RxPacket {
            src: IpAddr::V4(PEER),
            dst: IpAddr::V4(GROUP),
            ttl: 255,
            ip_total_len: None,
            received_len: 3,
            ah: false,
            vrrp: &[0x21, 51, 100],
        };
        assert!(matches!(
            validate(&c, &rx, true, ChecksumMode::PseudoHeader),
            Err(Reject::Length { got: 3, .. })
        ));
        let rx = RxPacket::from_ipv6_parts(
            "fe80::1".parse().unwrap(),
            "ff02::12".parse().unwrap(),
            255,
            &[0x31, 51, 100, 0, 0, 100, 0, 0],
        );
        assert_eq!(
            validate(&c, &rx, true, ChecksumMode::PseudoHeader),
            Err(Reject::Family)
        );
    }

    #[test]
    fn counters_and_names() {
        let mut k = RxCounters::default();
        k.count(RejectKind::Password);
        k.count(RejectKind::Password);
        k.count(RejectKind::Ttl);
        assert_eq!(k.rejected(RejectKind::Password), 2);
        assert_eq!(k.rejected(RejectKind::Checksum), 0);
        assert_eq!(k.rejected_total(), 3);
        let names: std::collections::HashSet<_> =
            RejectKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), RejectKind::ALL.len(), "distinct metric labels");
        assert_eq!(
            Reject::AdvertInterval {
                got: 2,
                expected: 1
            }
            .to_string(),
            "advertisement interval mismatch mine=1 sec rcv'd=2 sec"
        );
    }
}
