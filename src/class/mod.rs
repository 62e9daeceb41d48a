//! Network classes as plug-ins, after the kernel's `struct driver_info`.
//!
//! A class is one file implementing [`ClassDriver`]: `bind` does the class's control-plane
//! bring-up over [`Control`] and returns a [`Binding`] with three small hooks, one per flow:
//! [`RxFixup`] (one completed bulk IN transfer → Ethernet frames), [`TxFixup`] (frames → one
//! bulk OUT transfer) and [`StatusFixup`] (interrupt notifications → [`LinkEvent`]s). The
//! transfer ring ([`crate::ring`]) and the TAP edge never know which class they carry.

pub mod ecm;
pub mod eem;
pub mod ncm;
pub mod rndis;
pub mod subset;

use crate::probe::{ClassKind, NetFunction};
use std::sync::Arc;

use crate::usb::{Buffer, Control};

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

/// Ethernet header length (destination, source, EtherType).
pub const ETH_HLEN: usize = 14;

/// What the bring-up learned about the link, for the TAP and the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// The device's MAC address (the TAP takes it).
    pub mac: Mac,
    /// Where the MAC came from, for the log ("iMACAddress string 3", ...).
    pub mac_source: String,
    /// IP MTU (frame size minus the Ethernet header).
    pub mtu: u32,
    /// Bytes to request per bulk IN transfer (a multiple of wMaxPacketSize).
    pub rx_transfer_size: usize,
    /// Largest bulk OUT transfer the TX framer produces.
    pub tx_transfer_size: usize,
    /// Whether the class reports carrier through notifications; when false, carrier is on
    /// from the start.
    pub carrier_from_status: bool,
    /// The link's bit rate as the device told it at bind (RNDIS `OID_GEN_LINK_SPEED`);
    /// CDC devices tell theirs later, in a CONNECTION_SPEED_CHANGE notification.
    pub speed_bps: Option<u64>,
    /// A short description of the negotiated framing for the "up" log line.
    pub framing: String,
}

/// A link-state change reported by the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    /// Carrier on or off.
    Carrier(bool),
    /// Link speed in bits per second, downstream and upstream.
    Speed {
        /// Device → host bit rate.
        down_bps: u32,
        /// Host → device bit rate.
        up_bps: u32,
    },
}

/// Frames dropped while decoding IN transfers, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RxDrops {
    /// Whole transfers rejected (bad NTB header, bad framing).
    pub bad_transfer: u64,
    /// Single datagrams/frames rejected (out of range, overlap, too short, too long).
    pub bad_frame: u64,
}

/// Splits a completed bulk IN transfer into Ethernet frames.
pub trait RxFixup: Send {
    /// Call `deliver` once per frame in `xfer`, in order; count what is dropped in `drops`.
    fn rx_fixup(&mut self, xfer: &[u8], deliver: &mut dyn FnMut(&[u8]), drops: &mut RxDrops);
}

/// Why a frame was not added to the open transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The transfer is full: submit it and start another before pushing this frame again.
    Full,
    /// The frame can never be sent (larger than the device takes, shorter than an
    /// Ethernet header): drop it and count it.
    Invalid,
}

/// Packs frames into one bulk OUT transfer.
pub trait TxFixup: Send {
    /// Start a new transfer in `out` (cleared by the caller).
    fn begin(&mut self, out: &mut Buffer);
    /// Add a whole Ethernet frame of `len` bytes that `fill` writes in place: every byte
    /// of the slice it is given, which may hold an earlier transfer's data. The ring cuts
    /// TCP segments straight into the transfer this way, with no scratch copy. An error
    /// leaves `out` untouched and `fill` uncalled.
    fn push_with(
        &mut self,
        out: &mut Buffer,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), Refused>;
    /// Add `frame` (a whole Ethernet frame). An error leaves `out` untouched.
    fn push(&mut self, out: &mut Buffer, frame: &[u8]) -> Result<(), Refused> {
        self.push_with(out, frame.len(), &mut |d| d.copy_from_slice(frame))
    }
    /// Close the transfer (headers, padding). Returns whether a zero-length packet must
    /// follow it (its length is a multiple of wMaxPacketSize and the class wants a ZLP).
    fn finish(&mut self, out: &mut Buffer) -> bool;
    /// Whether the open transfer holds any frame.
    fn is_empty(&self) -> bool;
    /// Whether the open transfer takes no further frame whatever its size (ECM after one
    /// frame, RNDIS at the device's packets per transfer): the ring submits it at once
    /// instead of after the next read from the network finds it full.
    fn is_full(&self) -> bool {
        false
    }
}

/// Turns interrupt-endpoint data into link events.
pub trait StatusFixup: Send {
    /// One completed interrupt transfer; append what it means to `events`.
    fn status(&mut self, data: &[u8], events: &mut Vec<LinkEvent>);
}

/// The status hook shared by the CDC classes (ECM, NCM): NETWORK_CONNECTION and
/// CONNECTION_SPEED_CHANGE notifications, reassembled across interrupt transfers.
#[derive(Debug, Default)]
pub struct CdcStatus {
    reader: crate::wire::NotificationReader,
    scratch: Vec<crate::wire::Notification>,
}

impl StatusFixup for CdcStatus {
    fn status(&mut self, data: &[u8], events: &mut Vec<LinkEvent>) {
        use crate::wire::Notification;
        self.scratch.clear();
        self.reader.feed(data, &mut self.scratch);
        for n in self.scratch.drain(..) {
            match n {
                Notification::NetworkConnection { connected } => {
                    events.push(LinkEvent::Carrier(connected))
                }
                Notification::ConnectionSpeedChange {
                    downlink_bps,
                    uplink_bps,
                } => events.push(LinkEvent::Speed {
                    down_bps: downlink_bps,
                    up_bps: uplink_bps,
                }),
                other => log::debug!("notification ignored: {other:?}"),
            }
        }
    }
}

/// The per-flow hooks a bound class hands to the datapath.
pub struct Binding {
    /// Link facts for the TAP and ring sizing.
    pub link: LinkInfo,
    /// RX hook.
    pub rx: Box<dyn RxFixup>,
    /// TX hook.
    pub tx: Box<dyn TxFixup>,
    /// Status hook.
    pub status: Box<dyn StatusFixup>,
}

/// What the network side wants the device to pass up, after the kernel's
/// `ndo_set_rx_mode`: read from the interface's flags, where `IFF_PROMISC` counts
/// `ip link set promisc on`, bridge ports and packet sockets (tcpdump) alike.
///
/// All multicast is always asked for (usbnetd programs no multicast list, and IPv6 keeps
/// the list of any interface non-empty, which is when `cdc_ether` asks for it too).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RxMode {
    /// Pass up frames for any destination address, not only ours.
    pub promiscuous: bool,
}

/// Why a bind failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// A control request failed.
    #[error("{what} failed: {source}")]
    Control {
        /// The request.
        what: &'static str,
        /// Transfer error.
        source: nusb::transfer::TransferError,
    },
    /// The device answered with something unusable.
    #[error("device answered {what} with unusable data: {detail}")]
    BadReply {
        /// The request.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The class is not implemented yet.
    #[error("{0} is not supported by this usbnetd yet")]
    Unsupported(ClassKind),
}

/// Facts about the bus the bind needs besides the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusFacts {
    /// wMaxPacketSize of the bulk endpoints.
    pub max_packet: usize,
    /// Whether the device runs at SuperSpeed or faster.
    pub super_speed: bool,
    /// A stable hash of which device this is and where (bus-port path, VID:PID, serial
    /// number), mixed into derived MACs: two identical dongles get different MACs, and a
    /// dongle keeps its MAC across replugs into the same port. 0 when unknown (tests).
    pub identity: u64,
}

/// [`BusFacts::identity`] from the device's bus-port path, VID:PID and serial number.
pub fn device_identity(port_path: &str, vid_pid: &str, serial: Option<&str>) -> u64 {
    fnv1a64(&format!("{port_path}|{vid_pid}|{}", serial.unwrap_or("")))
}

/// One network class.
pub trait ClassDriver: Send {
    /// Which class this is.
    fn kind(&self) -> ClassKind;
    /// Control-plane bring-up; the data interface is at alt setting 0 during bind and the
    /// datapath switches it to `func.data_alt_setting` afterwards.
    /// `ctl` is shared so that a class whose status hook needs control requests at run time
    /// (RNDIS: GET_ENCAPSULATED_RESPONSE, KEEPALIVE_CMPLT) can keep a clone in it.
    fn bind(
        &mut self,
        ctl: &Arc<dyn Control>,
        func: &NetFunction,
        bus: BusFacts,
    ) -> Result<Binding, BindError>;
    /// Undo bind on the device (best effort, never fails).
    fn unbind(&mut self, _ctl: &dyn Control, _func: &NetFunction) {}
    /// Follow a change of the interface's receive mode on the device, as the kernel's
    /// `driver_info->set_rx_mode` does. Returns what was sent, for the log, or `None` when
    /// the class has no receive filter to program (the device passes every frame up).
    fn set_rx_mode(
        &mut self,
        _ctl: &dyn Control,
        _func: &NetFunction,
        _mode: RxMode,
    ) -> Result<Option<String>, BindError> {
        Ok(None)
    }
}

/// The driver for a probed class.
pub fn driver_for(kind: ClassKind) -> Result<Box<dyn ClassDriver>, BindError> {
    match kind {
        ClassKind::Ncm => Ok(Box::new(ncm::Ncm)),
        ClassKind::Ecm => Ok(Box::new(ecm::Ecm)),
        ClassKind::Subset => Ok(Box::new(subset::Subset)),
        ClassKind::Rndis => Ok(Box::new(rndis::Rndis::default())),
        ClassKind::Eem => Ok(Box::new(eem::Eem)),
    }
}

/// `aa:bb:cc:dd:ee:ff`, the way `ip link` and sysfs write an address.
pub fn mac_text(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parse the 12-hex-digit iMACAddress string (`"0242ac110002"`).
pub fn parse_mac_string(s: &str) -> Option<Mac> {
    let s = s.trim();
    if s.len() != 12 || !s.is_ascii() {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, b) in mac.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(mac)
}

/// A stable locally administered MAC derived from `seed` (e.g. the bus-port path and serial),
/// for devices that report none.
pub fn derived_mac(seed: &str) -> Mac {
    let b = fnv1a64(seed).to_le_bytes();
    // Locally administered (bit 1), unicast (bit 0 clear).
    [(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]]
}

/// FNV-1a 64 of `seed`: stable across runs and versions, which is all this needs.
fn fnv1a64(seed: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The MAC from the function's iMACAddress string, or a derived one.
pub fn mac_from_function(ctl: &dyn Control, func: &NetFunction, seed: &str) -> (Mac, String) {
    if let Some(idx) = func.mac_string_index {
        match ctl.string(idx).as_deref().map(parse_mac_string) {
            Some(Some(mac)) if mac != [0; 6] && mac[0] & 1 == 0 => {
                return (mac, format!("iMACAddress string {idx}"));
            }
            Some(_) => log::warn!("iMACAddress string {idx} is not a usable MAC; deriving one"),
            None => log::warn!("cannot read iMACAddress string {idx}; deriving a MAC"),
        }
    }
    (derived_mac(seed), "derived (locally administered)".into())
}

/// IP MTU from wMaxSegmentSize (which counts the Ethernet header), with sane bounds.
pub fn mtu_from_segment_size(seg: Option<u16>) -> u32 {
    match seg.map(u32::from) {
        Some(s) if s >= 68 + ETH_HLEN as u32 => (s - ETH_HLEN as u32).min(9000),
        Some(s) => {
            log::warn!("wMaxSegmentSize {s} cannot carry an IPv4 packet; using MTU 1500");
            1500
        }
        None => 1500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_text_is_what_sysfs_writes() {
        assert_eq!(
            mac_text(&[0x02, 0x4c, 0x41, 0x42, 0x01, 0xab]),
            "02:4c:41:42:01:ab"
        );
    }

    #[test]
    fn mac_strings() {
        assert_eq!(
            parse_mac_string("ee1e4bb2c4e5"),
            Some([0xee, 0x1e, 0x4b, 0xb2, 0xc4, 0xe5])
        );
        assert_eq!(parse_mac_string("EE1E4BB2C4E5").unwrap()[0], 0xee);
        for bad in [
            "",
            "ee1e4bb2c4e",
            "ee1e4bb2c4e5f",
            "zz1e4bb2c4e5",
            "éé1e4bb2c4",
        ] {
            assert_eq!(parse_mac_string(bad), None, "{bad}");
        }
    }

    #[test]
    fn derived_mac_is_local_unicast_and_stable() {
        let a = derived_mac("1-1:serial");
        assert_eq!(a[0] & 0x03, 0x02);
        assert_eq!(a, derived_mac("1-1:serial"));
        assert_ne!(a, derived_mac("1-2:serial"));
    }

    #[test]
    fn device_identity_tells_ports_and_serials_apart() {
        let a = device_identity("1-1", "0525:a4a2", Some("123"));
        assert_eq!(a, device_identity("1-1", "0525:a4a2", Some("123")));
        assert_ne!(a, device_identity("1-2", "0525:a4a2", Some("123")));
        assert_ne!(a, device_identity("1-1", "0525:a4a2", Some("124")));
        assert_ne!(a, device_identity("1-1", "0525:a4a2", None));
        let mac = |id: u64| derived_mac(&format!("eem:{id:016x}:1:0:129"));
        assert_ne!(
            mac(a),
            mac(device_identity("1-2", "0525:a4a2", Some("123")))
        );
    }

    #[test]
    fn mtu_bounds() {
        assert_eq!(mtu_from_segment_size(Some(1514)), 1500);
        assert_eq!(mtu_from_segment_size(Some(0)), 1500);
        assert_eq!(mtu_from_segment_size(None), 1500);
        assert_eq!(mtu_from_segment_size(Some(9014)), 9000);
        assert_eq!(mtu_from_segment_size(Some(u16::MAX)), 9000);
    }
}
