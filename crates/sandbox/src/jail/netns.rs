//! The chat's network namespace: loopback up and nothing else, so the only way out is the
//! gateway forwarder the init runs on 127.0.0.1.

use std::os::fd::AsRawFd as _;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

use super::JailError;

/// Brings the namespace's `lo` up (a new network namespace starts with it down).
#[allow(unsafe_code)]
pub(crate) fn loopback_up() -> Result<(), JailError> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(JailError::sys("socket for the loopback ioctl"))?;
    // SAFETY: `ifreq` is a plain C struct for which all-zero bytes are a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the interface named in `request` and fills its flags; the
    // pointer is to a live, correctly sized ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } != 0 {
        return Err(JailError::Io {
            what: "reading the flags of lo".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: SIOCGIFFLAGS just wrote the flags member of the union.
    let flags = unsafe { request.ifr_ifru.ifru_flags };
    request.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: as above; SIOCSIFFLAGS reads the same struct.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } != 0 {
        return Err(JailError::Io {
            what: "bringing lo up".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}
