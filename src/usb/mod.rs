//! The USB edge: finding devices (nusb's enumeration), reading their descriptors, opening
//! and claiming them through usbfs ([`usbfs`], ours), and the small seams the rest of the
//! crate drives:
//! [`Pipe`] (one endpoint's transfer queue) and [`Control`] (class requests on EP0).
//!
//! Nothing here knows about network classes; the probe decides what to claim.

pub mod buffer;
pub mod pipe;
pub mod usbfs;

pub use buffer::{Buffer, Completion};
pub use pipe::Pipe;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nusb::transfer::TransferError;
use nusb::MaybeFuture;

/// Where usbfs device nodes live.
pub const USBFS_ROOT: &str = "/dev/bus/usb";

/// Timeout for control transfers issued during bring-up.
pub const CONTROL_TIMEOUT: Duration = Duration::from_millis(1000);

/// Errors from the USB edge, each worded so a user knows what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsbError {
    /// `/dev/bus/usb` does not exist.
    #[error("no USB bus on this machine: {USBFS_ROOT} does not exist (is usbfs mounted? in a container, pass the device through)")]
    NoUsbBus,
    /// A `--device` selector could not be parsed.
    #[error("invalid device selector {0:?}: use VID:PID (0525:a4a2), a bus-port path (1-1.2), /dev/bus/usb/BBB/DDD or a sysfs device path")]
    BadSelector(String),
    /// No device matched the selector.
    #[error("no USB device matches {0}: check `usbnetd list` or `lsusb` for the right VID:PID or bus-port")]
    NoSuchDevice(String),
    /// Several devices matched a VID:PID selector.
    #[error("{count} devices match {sel}: select one by bus-port path ({paths})")]
    Ambiguous {
        /// The selector.
        sel: String,
        /// How many matched.
        count: usize,
        /// Their bus-port paths.
        paths: String,
    },
    /// The device node cannot be opened for lack of permission.
    #[error("permission denied opening {0}: run as root or install the usbnetd udev rule (udev/90-usbnetd.rules)")]
    PermissionDenied(String),
    /// An interface is claimed by another program.
    #[error("interface {interface} of {device} is busy: another program (not a kernel driver) has claimed it; stop it first")]
    Busy {
        /// Device bus-port path.
        device: String,
        /// Interface number.
        interface: u8,
    },
    /// The device went away.
    #[error("device {0} was unplugged")]
    Disconnected(String),
    /// Reading descriptors failed.
    #[error("cannot read descriptors of {path}: {source}")]
    Read {
        /// File read.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Any other USB error, with what was being done.
    #[error("{what}: {source}")]
    Usb {
        /// What was being done.
        what: String,
        /// nusb's error.
        source: nusb::Error,
    },
    /// A usbfs operation failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A control transfer failed.
    #[error("{what}: {source}")]
    Transfer {
        /// What was being done.
        what: String,
        /// The transfer error.
        source: TransferError,
    },
}

impl UsbError {
    /// Map a nusb error from operation `what` on `device` to a user-facing error.
    pub fn from_nusb(what: impl Into<String>, device: &str, e: nusb::Error) -> UsbError {
        match e.kind() {
            nusb::ErrorKind::PermissionDenied => UsbError::PermissionDenied(device.to_string()),
            nusb::ErrorKind::Disconnected => UsbError::Disconnected(device.to_string()),
            _ => UsbError::Usb {
                what: what.into(),
                source: e,
            },
        }
    }
}

/// Which device `--device` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `VID:PID` in hex.
    VidPid(u16, u16),
    /// A bus-port path as in sysfs: `1-1`, `2-1.4`.
    Port(String),
    /// A usbfs node: `/dev/bus/usb/BBB/DDD`.
    Node {
        /// Bus number.
        bus: u8,
        /// Device address.
        address: u8,
    },
}

impl FromStr for Selector {
    type Err = UsbError;

    fn from_str(s: &str) -> Result<Self, UsbError> {
        let bad = || UsbError::BadSelector(s.to_string());
        if let Some(rest) = s.strip_prefix("/dev/bus/usb/") {
            let (b, d) = rest.split_once('/').ok_or_else(bad)?;
            return Ok(Selector::Node {
                bus: b.parse().map_err(|_| bad())?,
                address: d.parse().map_err(|_| bad())?,
            });
        }
        // A sysfs device path (/sys/devices/.../1-1.2; systemd's %I drops the leading
        // slash): the device's directory name is its bus-port path.
        let sysfs = s.strip_prefix('/').unwrap_or(s).strip_prefix("sys/");
        let port = sysfs.map_or(s, |p| p.rsplit('/').next().unwrap_or_default());
        if let (Some((v, p)), None) = (s.split_once(':'), sysfs) {
            let parse = |x: &str| {
                if x.is_empty() || x.len() > 4 {
                    return Err(bad());
                }
                u16::from_str_radix(x, 16).map_err(|_| bad())
            };
            return Ok(Selector::VidPid(parse(v)?, parse(p)?));
        }
        // bus-port: digits, '-', then digits separated by '.'
        let (bus, ports) = port.split_once('-').ok_or_else(bad)?;
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(bus) || !ports.split('.').all(digits) {
            return Err(bad());
        }
        Ok(Selector::Port(port.to_string()))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::VidPid(v, p) => write!(f, "{v:04x}:{p:04x}"),
            Selector::Port(p) => write!(f, "{p}"),
            Selector::Node { bus, address } => write!(f, "{USBFS_ROOT}/{bus:03}/{address:03}"),
        }
    }
}

/// A USB device present on the machine, with its raw descriptor set.
#[derive(Debug, Clone)]
pub struct UsbDevice {
    /// nusb's enumeration record (sysfs-backed).
    pub info: nusb::DeviceInfo,
    /// Bus-port path, e.g. `1-1.2` (the sysfs name).
    pub port_path: String,
    /// The usbfs node.
    pub node: PathBuf,
}

impl UsbDevice {
    fn from_info(info: nusb::DeviceInfo) -> UsbDevice {
        let port_path = info
            .sysfs_path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let node = PathBuf::from(format!(
            "{USBFS_ROOT}/{:03}/{:03}",
            info.busnum(),
            info.device_address()
        ));
        UsbDevice {
            info,
            port_path,
            node,
        }
    }

    /// `VID:PID` as text.
    pub fn vid_pid(&self) -> String {
        format!(
            "{:04x}:{:04x}",
            self.info.vendor_id(),
            self.info.product_id()
        )
    }

    /// Whether the selector names this device.
    pub fn matches(&self, sel: &Selector) -> bool {
        match sel {
            Selector::VidPid(v, p) => self.info.vendor_id() == *v && self.info.product_id() == *p,
            Selector::Port(p) => &self.port_path == p,
            Selector::Node { bus, address } => {
                self.info.busnum() == *bus && self.info.device_address() == *address
            }
        }
    }

    /// The raw descriptor set: the device descriptor followed by every configuration's
    /// complete block, as reading the usbfs node returns it (sysfs `descriptors` as fallback).
    pub fn read_descriptors(&self) -> Result<Vec<u8>, UsbError> {
        match std::fs::read(&self.node) {
            Ok(b) => Ok(b),
            Err(e) => {
                let sysfs = self.info.sysfs_path().join("descriptors");
                std::fs::read(&sysfs).map_err(|_| match e.kind() {
                    std::io::ErrorKind::PermissionDenied => {
                        UsbError::PermissionDenied(self.node.display().to_string())
                    }
                    _ => UsbError::Read {
                        path: self.node.display().to_string(),
                        source: e,
                    },
                })
            }
        }
    }

    /// The kernel driver bound to interface `iface` of the active configuration, from sysfs.
    pub fn interface_driver(&self, iface: u8) -> Option<String> {
        let cfg = read_sysfs_u8(self.info.sysfs_path(), "bConfigurationValue")?;
        let link = self
            .info
            .sysfs_path()
            .join(format!("{}:{}.{}", self.port_path, cfg, iface))
            .join("driver");
        std::fs::read_link(link)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    }

    /// bNumInterfaces of the active configuration, from sysfs (0 when unconfigured).
    pub fn interface_count(&self) -> u8 {
        read_sysfs_u8(self.info.sysfs_path(), "bNumInterfaces").unwrap_or(0)
    }

    /// The active configuration value from sysfs (0: unconfigured).
    pub fn active_configuration(&self) -> Option<u8> {
        read_sysfs_u8(self.info.sysfs_path(), "bConfigurationValue")
    }

    /// Open the device node for I/O.
    pub fn open(&self) -> Result<nusb::Device, UsbError> {
        self.info
            .open()
            .wait()
            .map_err(|e| UsbError::from_nusb("open", &self.node.display().to_string(), e))
    }
}

fn read_sysfs_u8(dir: &Path, attr: &str) -> Option<u8> {
    std::fs::read_to_string(dir.join(attr))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Every USB device present (root hubs excluded).
pub fn devices() -> Result<Vec<UsbDevice>, UsbError> {
    if !Path::new(USBFS_ROOT).exists() {
        return Err(UsbError::NoUsbBus);
    }
    let list = nusb::list_devices().wait().map_err(|e| UsbError::Usb {
        what: "listing USB devices".into(),
        source: e,
    })?;
    let mut out: Vec<UsbDevice> = list
        .filter(|d| !d.port_chain().is_empty())
        .map(UsbDevice::from_info)
        .collect();
    out.sort_by(|a, b| a.port_path.cmp(&b.port_path));
    Ok(out)
}

/// The one device a selector names.
pub fn find(sel: &Selector) -> Result<UsbDevice, UsbError> {
    let matches: Vec<UsbDevice> = devices()?.into_iter().filter(|d| d.matches(sel)).collect();
    match matches.len() {
        0 => Err(UsbError::NoSuchDevice(sel.to_string())),
        1 => Ok(matches.into_iter().next().expect("one element")),
        n => Err(UsbError::Ambiguous {
            sel: sel.to_string(),
            count: n,
            paths: matches
                .iter()
                .map(|d| d.port_path.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Read string descriptor `index` (first language) from an open device.
pub fn read_string(dev: &nusb::Device, index: u8) -> Option<String> {
    let idx = std::num::NonZeroU8::new(index)?;
    let lang = dev
        .get_string_descriptor_supported_languages(CONTROL_TIMEOUT)
        .wait()
        .ok()
        .and_then(|mut l| l.next())
        .unwrap_or(0x0409);
    dev.get_string_descriptor(idx, lang, CONTROL_TIMEOUT)
        .wait()
        .ok()
}

/// Class-specific requests on the default control pipe, addressed to one interface.
/// The seam between a class's bind and the device (real or fake). `Sync` because a class may
/// keep it (as `Arc<dyn Control>`) in its status hook, which runs on the datapath thread.
pub trait Control: Send + Sync {
    /// A class IN request to interface `interface`.
    fn class_in(
        &self,
        request: u8,
        value: u16,
        interface: u8,
        length: u16,
    ) -> Result<Vec<u8>, TransferError>;
    /// A class OUT request to interface `interface`.
    fn class_out(
        &self,
        request: u8,
        value: u16,
        interface: u8,
        data: &[u8],
    ) -> Result<(), TransferError>;
    /// String descriptor `index`, decoded; `None` when absent or unreadable.
    fn string(&self, index: u8) -> Option<String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse() {
        assert_eq!(
            "0525:a4a2".parse::<Selector>().unwrap(),
            Selector::VidPid(0x0525, 0xa4a2)
        );
        assert_eq!(
            "1-1.2".parse::<Selector>().unwrap(),
            Selector::Port("1-1.2".into())
        );
        assert_eq!(
            "/dev/bus/usb/001/004".parse::<Selector>().unwrap(),
            Selector::Node { bus: 1, address: 4 }
        );
        assert_eq!(
            "/sys/devices/platform/dummy_hcd.0/usb1/1-1"
                .parse::<Selector>()
                .unwrap(),
            Selector::Port("1-1".into())
        );
        assert_eq!(
            "sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1.4"
                .parse::<Selector>()
                .unwrap(),
            Selector::Port("2-1.4".into())
        );
        for bad in [
            "",
            "/sys/devices/platform/dummy_hcd.0/usb1",
            "/sys/",
            "xyz",
            "1-",
            "1-a",
            "0525:",
            ":a4a2",
            "12345:1",
            "/dev/bus/usb/1",
        ] {
            let e = bad.parse::<Selector>().unwrap_err();
            assert!(e.to_string().contains("VID:PID"), "{bad}: {e}");
        }
    }

    #[test]
    fn selector_display_round_trips() {
        for s in ["0525:a4a2", "1-1.2", "/dev/bus/usb/001/004"] {
            assert_eq!(s.parse::<Selector>().unwrap().to_string(), s);
        }
    }
}
