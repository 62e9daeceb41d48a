//! The TAP edge: a kernel network interface whose frames usbnetd reads and writes.
//!
//! We use our own five ioctls (in [`crate::sys::tap`]) rather than a crate: `tun-tap` is
//! passively maintained on futures 0.1, and `tun-rs` is a large async-first crate that still
//! lacks `TUNSETCARRIER`, the one call link state needs. The interface is not persistent:
//! dropping the [`Tap`] (or the process dying) removes it.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::class::{mac_text, LinkEvent, Mac};
use crate::sys::tap as sys;

/// How to create the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapConfig {
    /// Interface name (at most 15 bytes).
    pub name: String,
    /// MAC address.
    pub mac: Mac,
    /// IP MTU.
    pub mtu: u32,
    /// Transmit queue length: frames the kernel queues for us while the OUT ring is full.
    pub txqueuelen: u32,
    /// Ask for TCP segmentation and checksum offload (`IFF_VNET_HDR` + `TUNSETOFFLOAD`):
    /// the kernel then hands over TCP super-packets of up to 64 KiB in one read, and usbnetd
    /// segments them and finishes checksums itself.
    pub offload: bool,
}

/// Errors creating the TAP, each with the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TapError {
    /// `/dev/net/tun` is missing.
    #[error("/dev/net/tun does not exist: load the tun module (modprobe tun) or, in a container, pass /dev/net/tun through")]
    NoTun,
    /// No CAP_NET_ADMIN.
    #[error("permission denied creating TAP interface {0}: run as root or give usbnetd CAP_NET_ADMIN (the systemd unit does)")]
    Permission(String),
    /// The name is taken by a non-TAP interface or another TAP owner.
    #[error("cannot create TAP interface {0}: the name is in use; choose another with --ifname")]
    Busy(String),
    /// Any other failure.
    #[error("{what} on {name}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Interface.
        name: String,
        /// OS error.
        source: io::Error,
    },
}

/// How long to wait for udev to finish with a new interface.
const UDEV_WAIT: Duration = Duration::from_secs(3);

/// Where udev runs, wait (bounded) until it has handled the new interface (its database
/// entry exists), and set our MAC again if its link policy replaced it. Setting the MAC
/// first narrows that race but cannot close it: in the lab's systemd guest udev won it
/// once in about thirty plugs, and systemd-networkd then left the interface unconfigured.
fn keep_mac_past_udev(file: &File, name: &str, mac: Mac) -> io::Result<()> {
    if !Path::new("/run/udev/control").exists() {
        return Ok(());
    }
    let sys = format!("/sys/class/net/{name}");
    let Ok(ifindex) = std::fs::read_to_string(format!("{sys}/ifindex")) else {
        return Ok(());
    };
    let db = format!("/run/udev/data/n{}", ifindex.trim());
    let t0 = Instant::now();
    while !Path::new(&db).exists() && t0.elapsed() < UDEV_WAIT {
        std::thread::sleep(Duration::from_millis(5));
    }
    log::debug!("{name}: udev done with it after {:?}", t0.elapsed());
    let now = std::fs::read_to_string(format!("{sys}/address")).unwrap_or_default();
    let want = mac_text(&mac);
    if now.trim() != want {
        log::warn!(
            "udev replaced {name}'s MAC with {} (its MACAddressPolicy); setting {want} again",
            now.trim()
        );
        sys::tap_set_mac(file, name, mac)?;
    }
    Ok(())
}

/// A live TAP interface.
#[derive(Debug)]
pub struct Tap {
    file: Arc<File>,
    name: String,
    offload: bool,
}

impl Tap {
    /// Create the interface, set MAC, MTU and queue length, carrier off, and bring it up.
    /// On any error nothing is left behind (the fd closes and the interface goes).
    pub fn create(cfg: &TapConfig) -> Result<Tap, TapError> {
        if sys::if_exists(&cfg.name) {
            return Err(TapError::Busy(cfg.name.clone()));
        }
        let flags = if cfg.offload { libc::IFF_VNET_HDR } else { 0 };
        let (file, name) =
            sys::tap_create(&cfg.name, flags).map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => TapError::NoTun,
                Some(libc::EPERM) | Some(libc::EACCES) => TapError::Permission(cfg.name.clone()),
                Some(libc::EBUSY) | Some(libc::EINVAL) => TapError::Busy(cfg.name.clone()),
                _ => TapError::Io {
                    what: "TUNSETIFF",
                    name: cfg.name.clone(),
                    source: e,
                },
            })?;
        let io = |what: &'static str| {
            let name = name.clone();
            move |source| TapError::Io { what, name, source }
        };
        // The MAC first: udev applies its link policy (systemd's default
        // MACAddressPolicy=persistent gives a TAP a MAC made from its name) to an interface
        // whose address is still the kernel's random one when it handles the "add" event,
        // which may be any moment after TUNSETIFF.
        sys::tap_set_mac(&file, &name, cfg.mac).map_err(io("setting the MAC address"))?;
        sys::tap_set_carrier(&file, false).map_err(io("TUNSETCARRIER"))?;
        if cfg.offload {
            let f = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;
            sys::tap_set_offload(&file, f).map_err(io("TUNSETOFFLOAD"))?;
        }
        sys::if_set_mtu(&name, cfg.mtu).map_err(io("setting the MTU"))?;
        sys::if_set_txqlen(&name, cfg.txqueuelen).map_err(io("setting txqueuelen"))?;
        sys::if_set_up(&name, true).map_err(io("bringing the interface up"))?;
        keep_mac_past_udev(&file, &name, cfg.mac).map_err(io("setting the MAC address"))?;
        Ok(Tap {
            file: Arc::new(file),
            name,
            offload: cfg.offload,
        })
    }

    /// Whether frames carry a virtio-net header (offloads on).
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fd frames are read from and written to (non-blocking).
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Set the carrier (the kernel's lower_up) from the device's link state.
    pub fn set_carrier(&self, on: bool) -> io::Result<()> {
        sys::tap_set_carrier(&self.file, on)
    }

    /// The interface as it is now, read in one look: its name asked of the fd (so a
    /// renamed interface is still found), then its MTU and flags from
    /// `/sys/class/net/NAME/`.
    pub fn state(&self) -> io::Result<IfState> {
        let name = sys::tap_name(&self.file)?;
        let attr = |attr: &str, parse: fn(&str) -> Option<u32>| {
            let path = format!("/sys/class/net/{name}/{attr}");
            let text = std::fs::read_to_string(&path)?;
            parse(&text).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{path}: {:?}", text.trim()),
                )
            })
        };
        let mtu = attr("mtu", |t| t.trim().parse().ok())?;
        let flags = attr("flags", parse_sysfs_flags)?;
        Ok(IfState {
            mtu,
            // The kernel's own flags count every reason for IFF_PROMISC (`ip link set
            // promisc on`, a bridge port, a packet socket such as tcpdump's);
            // `SIOCGIFFLAGS` and the netlink link flags show only the first.
            promiscuous: flags & libc::IFF_PROMISC as u32 != 0,
            name,
        })
    }

    /// Set the link speed the interface reports (`ethtool`, `/sys/class/net/NAME/speed`)
    /// from the device's bit rate: whole Mbit/s, rounded down as usbnet does; `None` (or
    /// 0) for unknown.
    pub fn set_speed(&self, bps: Option<u64>) -> io::Result<()> {
        set_speed(&self.file, bps)
    }

    /// A callback that tells whether the interface is up (administratively: `ip link set
    /// IF up`), for the RX thread, which stops polling the device while it is down. It
    /// asks under the interface's name now; when it cannot tell, it says up.
    pub fn up_checker(&self) -> impl FnMut() -> bool + Send + 'static {
        let file = self.file.clone();
        move || match sys::tap_name(&file).and_then(|name| sys::if_flags(&name)) {
            Ok(flags) => flags & libc::IFF_UP as libc::c_short != 0,
            Err(e) => {
                log::debug!("cannot read the interface's flags: {e}");
                true
            }
        }
    }

    /// A callback that carries the device's link events to the interface, for the RX
    /// thread: carrier through the fd, speed through ethtool.
    pub fn link_setter(&self) -> impl FnMut(LinkEvent) + Send + 'static {
        let file = self.file.clone();
        move |ev| match ev {
            LinkEvent::Carrier(on) => {
                if let Err(e) = sys::tap_set_carrier(&file, on) {
                    log::warn!("TUNSETCARRIER {on}: {e}");
                }
            }
            LinkEvent::Speed { down_bps, up_bps } => {
                // usbnet reports the receive (device → host) rate, the transmit rate
                // when that is unset.
                let bps = if down_bps != 0 { down_bps } else { up_bps };
                if let Err(e) = set_speed(&file, Some(bps.into())) {
                    log::warn!("setting the interface's link speed: {e}");
                }
            }
        }
    }
}

fn set_speed(file: &File, bps: Option<u64>) -> io::Result<()> {
    let name = sys::tap_name(file)?;
    sys::if_set_link_speed(&name, link_mbps(bps))
}

/// Mbit/s for the interface from a device's bit rate (`None` or 0: unknown), as usbnet
/// reports it: rounded down, and capped where ethtool's field ends.
pub fn link_mbps(bps: Option<u64>) -> Option<u32> {
    match bps? / 1_000_000 {
        0 => None,
        m => u32::try_from(m.min(u64::from(u32::MAX - 1))).ok(),
    }
}

/// What [`Tap::state`] read of the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfState {
    /// Its name now, which differs from [`Tap::name`] after a rename.
    pub name: String,
    /// Its MTU now (someone may have changed it since [`Tap::create`]).
    pub mtu: u32,
    /// Whether it is promiscuous, for any reason.
    pub promiscuous: bool,
}

impl IfState {
    /// Set the interface's MTU, under its name now.
    pub fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        sys::if_set_mtu(&self.name, mtu)
    }
}

/// The default interface name for a MAC: `enx` + 12 hex digits, as systemd names USB NICs.
pub fn default_name(mac: &Mac) -> String {
    let mut s = String::from("enx");
    for b in mac {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The hexadecimal flags word sysfs writes (`0x1103\n`).
pub fn parse_sysfs_flags(text: &str) -> Option<u32> {
    u32::from_str_radix(text.trim().strip_prefix("0x")?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_flags_parse() {
        // up, broadcast, running, multicast; then the same with IFF_PROMISC.
        assert_eq!(parse_sysfs_flags("0x1003\n"), Some(0x1003));
        assert_eq!(parse_sysfs_flags("0x1103"), Some(0x1103));
        for bad in ["", "1003", "0x", "0xzz", "0x1_0000_0000"] {
            assert_eq!(parse_sysfs_flags(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn link_speed_in_whole_mbits() {
        // f_ncm / f_ecm at high speed: 13 packets of 512 bytes per microframe.
        assert_eq!(link_mbps(Some(425_984_000)), Some(425));
        // QEMU's usb-net: OID_GEN_LINK_SPEED 1,000,000 x 100 bit/s.
        assert_eq!(link_mbps(Some(100_000_000)), Some(100));
        assert_eq!(link_mbps(Some(999_999)), None);
        assert_eq!(link_mbps(Some(0)), None);
        assert_eq!(link_mbps(None), None);
        // u32::MAX is ethtool's "unknown": a rate that large is capped below it.
        assert_eq!(link_mbps(Some(u64::MAX)), Some(u32::MAX - 1));
    }

    #[test]
    fn enx_name_fits_ifnamsiz() {
        let n = default_name(&[0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);
        assert_eq!(n, "enx0242ac110002");
        assert!(n.len() < crate::sys::tap::IFNAMSIZ);
    }
}
