//! TUN/TAP and interface ioctls: one safe function per ioctl (see `linux/if_tun.h`,
//! `linux/sockios.h`). Every `unsafe` block of the TAP edge is in this file.

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// `IFNAMSIZ` from `linux/if.h`, including the terminating NUL.
pub const IFNAMSIZ: usize = libc::IFNAMSIZ;

/// An all-zero `ifreq` with `name` copied into `ifr_name`.
fn ifreq_named(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "interface name {name:?} must be 1 to {} bytes",
                IFNAMSIZ - 1
            ),
        ));
    }
    // SAFETY: `ifreq` is a plain C struct/union of integers and arrays, for which all-zero
    // bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

fn ifreq_name(req: &libc::ifreq) -> String {
    let raw: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&raw).into_owned()
}

/// Open `/dev/net/tun` and attach it to a TAP interface named `name` (a `%d` pattern is
/// allowed) with `IFF_TAP | IFF_NO_PI` plus `extra_flags`. Returns the fd and the name the
/// kernel gave. The interface disappears when the fd is closed (it is not made persistent).
pub fn tap_create(name: &str, extra_flags: libc::c_int) -> io::Result<(File, String)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open("/dev/net/tun")?;
    let mut req = ifreq_named(name)?;
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | extra_flags) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`; `req` is a valid, initialised
    // ifreq that lives for the whole call, and `file` is an open /dev/net/tun fd.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((file, ifreq_name(&req)))
}

/// `TUNGETIFF`: the interface's current name, which follows a rename (`ip link set name`)
/// made after `TUNSETIFF`.
pub fn tap_name(tap: &File) -> io::Result<String> {
    // SAFETY: `ifreq` is a plain C struct/union of integers and arrays, for which all-zero
    // bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // SAFETY: TUNGETIFF writes one `struct ifreq` through the pointer; `req` is valid and
    // exclusively borrowed for the call, and `tap` is an attached /dev/net/tun fd.
    let rc = unsafe { libc::ioctl(tap.as_raw_fd(), libc::TUNGETIFF, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ifreq_name(&req))
}

/// `TUNSETCARRIER`: set the TAP interface's carrier (lower_up) on or off.
pub fn tap_set_carrier(tap: &File, on: bool) -> io::Result<()> {
    let value: libc::c_int = on.into();
    // SAFETY: TUNSETCARRIER reads one `int` through the pointer; `value` outlives the call.
    let rc = unsafe { libc::ioctl(tap.as_raw_fd(), libc::TUNSETCARRIER, &value) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `TUNSETOFFLOAD`: which offloads (`TUN_F_*`) the kernel may leave to us in what we read.
pub fn tap_set_offload(tap: &File, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes the flags as the ioctl's integer argument, no pointer.
    let rc = unsafe { libc::ioctl(tap.as_raw_fd(), libc::TUNSETOFFLOAD, flags as libc::c_ulong) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `SIOCSIFHWADDR` on the TAP fd (handled by the tun driver itself): set the MAC address.
pub fn tap_set_mac(tap: &File, name: &str, mac: [u8; 6]) -> io::Result<()> {
    let mut req = ifreq_named(name)?;
    // SAFETY: writing the `ifru_hwaddr` member of a zeroed union of plain integer types.
    unsafe {
        req.ifr_ifru.ifru_hwaddr.sa_family = libc::ARPHRD_ETHER;
        for (dst, &src) in req.ifr_ifru.ifru_hwaddr.sa_data.iter_mut().zip(&mac) {
            *dst = src as libc::c_char;
        }
    }
    // SAFETY: SIOCSIFHWADDR reads a `struct ifreq`; `req` is valid for the call.
    let rc = unsafe { libc::ioctl(tap.as_raw_fd(), libc::SIOCSIFHWADDR, &req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An `AF_INET` datagram socket, the handle the `SIOCSIF*` ioctls need.
fn ctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; on success we own the returned fd exclusively.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly created, valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sock_ioctl(req: &mut libc::ifreq, op: libc::Ioctl) -> io::Result<()> {
    let sock = ctl_socket()?;
    // SAFETY: the SIOC[GS]IF* ioctls read/write one `struct ifreq`; `req` is valid and
    // exclusively borrowed for the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), op, req as *mut libc::ifreq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `SIOCSIFMTU`: set the interface MTU.
pub fn if_set_mtu(name: &str, mtu: u32) -> io::Result<()> {
    let mut req = ifreq_named(name)?;
    req.ifr_ifru.ifru_mtu = mtu as libc::c_int;
    sock_ioctl(&mut req, libc::SIOCSIFMTU)
}

/// `SIOCSIFTXQLEN`: set the interface's transmit queue length (the TAP's ring size).
pub fn if_set_txqlen(name: &str, qlen: u32) -> io::Result<()> {
    let mut req = ifreq_named(name)?;
    // `ifr_qlen` shares the union with `ifr_ifindex`/`ifr_mtu` (an int).
    req.ifr_ifru.ifru_mtu = qlen as libc::c_int;
    sock_ioctl(&mut req, libc::SIOCSIFTXQLEN)
}

/// `SIOCGIFFLAGS`: the interface's flags (`IFF_*`).
pub fn if_flags(name: &str) -> io::Result<libc::c_short> {
    let mut req = ifreq_named(name)?;
    sock_ioctl(&mut req, libc::SIOCGIFFLAGS)?;
    // SAFETY: SIOCGIFFLAGS filled `ifru_flags`; reading the short member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_flags })
}

/// `SIOCGIFFLAGS` + `SIOCSIFFLAGS`: set or clear `IFF_UP`.
pub fn if_set_up(name: &str, up: bool) -> io::Result<()> {
    let mut req = ifreq_named(name)?;
    let mut flags = if_flags(name)?;
    if up {
        flags |= libc::IFF_UP as libc::c_short;
    } else {
        flags &= !(libc::IFF_UP as libc::c_short);
    }
    req.ifr_ifru.ifru_flags = flags;
    sock_ioctl(&mut req, libc::SIOCSIFFLAGS)
}

/// Whether an interface of that name exists now (`if_nametoindex`).
pub fn if_exists(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else {
        return false;
    };
    let c: &CStr = &c;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

/// `struct ethtool_cmd` from `linux/ethtool.h`: the argument of the legacy
/// `ETHTOOL_GSET` / `ETHTOOL_SSET` commands, which the kernel converts to and from the
/// driver's link settings.
#[repr(C)]
#[derive(Debug, Default)]
struct EthtoolCmd {
    cmd: u32,
    supported: u32,
    advertising: u32,
    speed: u16,
    duplex: u8,
    port: u8,
    phy_address: u8,
    transceiver: u8,
    autoneg: u8,
    mdio_support: u8,
    maxtxpkt: u32,
    maxrxpkt: u32,
    speed_hi: u16,
    eth_tp_mdix: u8,
    eth_tp_mdix_ctrl: u8,
    lp_advertising: u32,
    reserved: [u32; 2],
}

const ETHTOOL_GSET: u32 = 0x1;
const ETHTOOL_SSET: u32 = 0x2;
const DUPLEX_FULL: u8 = 0x1;
const DUPLEX_UNKNOWN: u8 = 0xff;
/// `SPEED_UNKNOWN` (-1) as the legacy command's two halves carry it.
const SPEED_UNKNOWN: u32 = u32::MAX;

const _: () = assert!(std::mem::size_of::<EthtoolCmd>() == 44);

/// `SIOCETHTOOL` with a legacy command: the kernel reads and writes `cmd` in place.
fn ethtool(name: &str, cmd: &mut EthtoolCmd) -> io::Result<()> {
    let mut req = ifreq_named(name)?;
    req.ifr_ifru.ifru_data = (cmd as *mut EthtoolCmd).cast();
    let sock = ctl_socket()?;
    // SAFETY: SIOCETHTOOL reads the `ifreq` and, through `ifru_data`, reads and writes one
    // 44-byte `struct ethtool_cmd` (the size is asserted above) for the GSET/SSET commands
    // used here; both `req` and `*cmd` are valid and exclusively borrowed for the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The link speed an interface reports (`ethtool NAME`, `/sys/class/net/NAME/speed`), in
/// Mbit/s: `Some` for a known speed (full duplex), `None` for unknown. A TAP only stores
/// what it is given (it shapes nothing); its own default is 10 Mbit/s, which says nothing
/// of the device behind it. Read-modify-write (`ETHTOOL_GSET`, then `ETHTOOL_SSET`), so the
/// port and the rest keep the driver's values. Needs CAP_NET_ADMIN.
pub fn if_set_link_speed(name: &str, mbps: Option<u32>) -> io::Result<()> {
    let mut cmd = EthtoolCmd {
        cmd: ETHTOOL_GSET,
        ..EthtoolCmd::default()
    };
    ethtool(name, &mut cmd)?;
    let (speed, duplex) = match mbps {
        Some(m) => (m, DUPLEX_FULL),
        None => (SPEED_UNKNOWN, DUPLEX_UNKNOWN),
    };
    cmd.cmd = ETHTOOL_SSET;
    cmd.speed = speed as u16;
    cmd.speed_hi = (speed >> 16) as u16;
    cmd.duplex = duplex;
    ethtool(name, &mut cmd)
}
