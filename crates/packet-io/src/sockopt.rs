//! Socket options that neither socket2 nor nix wraps, for the tunnel endpoints of the labs
//! and tests. Kept here because this crate is the one place `unsafe` is allowed.

#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd};

/// `UDP_NO_CHECK6_TX` (linux/udp.h, level `SOL_UDP`): send IPv6 UDP with checksum 0.
pub const UDP_NO_CHECK6_TX: i32 = 101;
/// `UDP_NO_CHECK6_RX` (linux/udp.h, level `SOL_UDP`): accept IPv6 UDP with checksum 0 (RFC
/// 6935/6936, as the kernel's own `fou` GUE sockets do).
pub const UDP_NO_CHECK6_RX: i32 = 102;

/// Turns on the boolean `SOL_UDP` option `name` (one of the constants above) of `sock`.
pub fn set_udp_flag(sock: &impl AsFd, name: i32) -> std::io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: the descriptor is borrowed from `sock`, so it is open for the call; the value
    // pointer and length describe a live `c_int`, which is what the kernel reads for this
    // option.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_fd().as_raw_fd(),
            libc::SOL_UDP,
            name,
            std::ptr::addr_of!(one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
