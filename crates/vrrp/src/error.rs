//! The crate's error type.

/// Errors from decoding/encoding packets and from validating an instance configuration.
///
/// Receive-validation failures of well-formed packets are not errors but
/// [`crate::rx::Reject`] reasons, because they are counted and logged, not propagated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the structure it should hold.
    #[error("truncated packet: need {need} bytes, got {got}")]
    Truncated {
        /// Bytes required.
        need: usize,
        /// Bytes available.
        got: usize,
    },
    /// The VRRP version nibble is neither 2 nor 3.
    #[error("unknown VRRP version {0}")]
    UnknownVersion(u8),
    /// The IP version nibble is neither 4 nor 6.
    #[error("not an IP packet (version nibble {0})")]
    NotIp(u8),
    /// The IP protocol / next header is not VRRP (nor AH carrying VRRP).
    #[error("IP protocol {0} is not VRRP")]
    NotVrrp(u8),
    /// A field does not fit its wire encoding.
    #[error("{0} out of range")]
    FieldRange(&'static str),
    /// Addresses of different families in one packet, or src/dst families differ.
    #[error("address family mismatch")]
    FamilyMismatch,
    /// More than 255 addresses in one advert.
    #[error("{0} addresses do not fit one advert (max 255)")]
    TooManyAddresses(usize),
    /// An instance configuration is invalid; the text says which field and why.
    #[error("invalid VRRP instance configuration: {0}")]
    Config(String),
}
