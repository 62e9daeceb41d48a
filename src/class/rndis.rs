//! RNDIS (Microsoft's Remote NDIS over USB): control messages wrapped in
//! SEND_ENCAPSULATED_COMMAND / GET_ENCAPSULATED_RESPONSE, Ethernet frames wrapped in
//! REMOTE_NDIS_PACKET_MSG on the bulk endpoints. Reference for behaviour: the kernel's
//! `rndis_host`.
//!
//! Bring-up: INITIALIZE (the device answers with the largest transfer and the number of
//! packets per transfer it takes, and their alignment), QUERY OID_802_3_PERMANENT_ADDRESS
//! (MAC), QUERY OID_GEN_MAXIMUM_FRAME_SIZE (MTU), SET OID_GEN_CURRENT_PACKET_FILTER (the
//! Linux gadget starts passing frames only then), QUERY OID_GEN_MEDIA_CONNECT_STATUS. Each
//! reply is polled with GET_ENCAPSULATED_RESPONSE in a bounded loop rather than waited for
//! on the interrupt endpoint, which the datapath opens only later; replies are matched by
//! type and RequestId, and stale or unsolicited messages met on the way are handled or
//! skipped. At run time every RESPONSE_AVAILABLE notification leads to one
//! GET_ENCAPSULATED_RESPONSE: INDICATE_STATUS media connect/disconnect becomes carrier, a
//! KEEPALIVE from the device is answered with KEEPALIVE_CMPLT. `unbind` sends HALT.
//!
//! Data: several PACKET_MSGs per transfer both ways. Out, as many as the device's
//! MaxPacketsPerTransfer and MaxTransferSize allow (both the Linux gadget and QEMU's usb-net
//! say one), each aligned to its PacketAlignmentFactor; a transfer that would end on a
//! wMaxPacketSize boundary gets one extra zero byte instead of a zero-length packet, as
//! `rndis_host` sends. In, every PACKET_MSG of a transfer is delivered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nusb::transfer::TransferError;

use super::ecm::round_up;
use super::{
    derived_mac, BindError, Binding, BusFacts, ClassDriver, LinkEvent, LinkInfo, Mac, Refused,
    RxDrops, RxFixup, StatusFixup, TxFixup, ETH_HLEN,
};
use crate::probe::{ClassKind, NetFunction};
use crate::usb::{Buffer, Control};
use crate::wire::cdc::request;
use crate::wire::rndis::{
    self, emit_packet_header, msg, oid, packet_type, status, Message, PACKET_HEADER_LEN,
};

/// The packet filter usbnetd sets once at bind, the kernel's `RNDIS_DEFAULT_FILTER`: our
/// address, broadcast, all multicast (no multicast list is programmed, and IPv6 neighbour
/// discovery needs multicast) and promiscuous. `rndis_host` never changes it afterwards,
/// so an RNDIS interface works as a bridge port or under tcpdump without a runtime SET
/// (which would have to share the encapsulated-response channel with the status hook).
pub const PACKET_FILTER: u32 = packet_type::DIRECTED
    | packet_type::BROADCAST
    | packet_type::ALL_MULTICAST
    | packet_type::PROMISCUOUS;

/// wLength of GET_ENCAPSULATED_RESPONSE (rndis_host's control buffer size).
pub const RESPONSE_BUFFER: u16 = 1025;

/// How long bind polls for one reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause between polls when the device has no response ready yet.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Largest OUT transfer usbnetd builds, whatever the device allows.
pub const TX_TRANSFER_CAP: usize = 16384;

/// Most PACKET_MSGs usbnetd puts in one OUT transfer, whatever the device allows.
pub const TX_PACKETS_CAP: u32 = 64;

/// Largest PacketAlignmentFactor honoured (2^7 = 128 bytes); larger values are nonsense.
pub const MAX_ALIGNMENT_FACTOR: u32 = 7;

/// Length of one RESPONSE_AVAILABLE notification.
pub const NOTIFICATION_LEN: usize = 8;

/// IN transfers logged whole at trace level, for captures.
pub const TRACED_TRANSFERS: u8 = 8;

/// The RNDIS class driver.
#[derive(Debug, Default)]
pub struct Rndis {
    next_id: u32,
    iface: Option<u8>,
    /// INITIALIZE succeeded: a bind that fails later sends HALT, so that the device is not
    /// left initialized for nobody.
    initialized: bool,
}

/// Encapsulated commands to one control interface.
#[derive(Clone)]
pub struct RndisControl {
    ctl: Arc<dyn Control>,
    iface: u8,
}

impl std::fmt::Debug for RndisControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RndisControl")
            .field("iface", &self.iface)
            .finish()
    }
}

/// Media state learned from the device (`None`: not told).
type Media = Option<bool>;

impl RndisControl {
    /// Commands go to interface `iface` through `ctl`.
    pub fn new(ctl: Arc<dyn Control>, iface: u8) -> RndisControl {
        RndisControl { ctl, iface }
    }

    /// SEND_ENCAPSULATED_COMMAND with `m`.
    pub fn send(&self, m: &Message<'_>) -> Result<(), TransferError> {
        let bytes = m.to_vec();
        log::trace!("RNDIS command {bytes:02x?}");
        self.ctl
            .class_out(request::SEND_ENCAPSULATED_COMMAND, 0, self.iface, &bytes)
    }

    /// One GET_ENCAPSULATED_RESPONSE: `None` when the device has nothing (the Linux gadget
    /// stalls, QEMU answers one zero byte).
    pub fn response(&self) -> Result<Option<Vec<u8>>, TransferError> {
        match self.ctl.class_in(
            request::GET_ENCAPSULATED_RESPONSE,
            0,
            self.iface,
            RESPONSE_BUFFER,
        ) {
            Ok(v) if v.len() >= rndis::HEADER_LEN => {
                log::trace!("RNDIS response {v:02x?}");
                Ok(Some(v))
            }
            Ok(_) | Err(TransferError::Stall) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Act on a message the device sent on its own: media state, KEEPALIVE. Returns the
    /// carrier change it means, if any.
    pub fn unsolicited(&self, m: &Message<'_>) -> Option<bool> {
        match *m {
            Message::IndicateStatus {
                status: status::MEDIA_CONNECT,
                ..
            } => Some(true),
            Message::IndicateStatus {
                status: status::MEDIA_DISCONNECT,
                ..
            } => Some(false),
            Message::IndicateStatus { status, .. } => {
                log::debug!("RNDIS status indication {status:#010x} ignored");
                None
            }
            Message::Keepalive { request_id } => {
                let reply = Message::KeepaliveCmplt {
                    request_id,
                    status: status::SUCCESS,
                };
                if let Err(e) = self.send(&reply) {
                    log::warn!("RNDIS KEEPALIVE_CMPLT failed: {e}");
                }
                None
            }
            ref other => {
                log::debug!("RNDIS message skipped: {other:?}");
                None
            }
        }
    }

    /// Send `m` and poll for the reply of type `reply` with the same RequestId; messages met
    /// on the way go through [`unsolicited`](Self::unsolicited) (their media state lands in
    /// `media`). Returns the reply's bytes once its header (type, RequestId) matches, whether
    /// or not the rest parses: the caller decides whether a malformed reply is fatal, and
    /// says why, instead of waiting out the timeout. A timeout names the last message
    /// skipped (a reply of the wrong type or RequestId is such a message).
    fn command(
        &self,
        m: &Message<'_>,
        reply: u32,
        what: &'static str,
        media: &mut Media,
    ) -> Result<Vec<u8>, BindError> {
        let id = m.request_id();
        self.send(m)
            .map_err(|source| BindError::Control { what, source })?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let (mut skipped, mut last_skipped) = (0u32, String::new());
        // Bounded by time, whatever the device answers (a device that keeps sending other
        // messages must not hold bind forever).
        while Instant::now() < deadline {
            let got = self
                .response()
                .map_err(|source| BindError::Control { what, source })?;
            let Some(bytes) = got else {
                std::thread::sleep(POLL_INTERVAL);
                continue;
            };
            if le32(&bytes) == Some(reply) && bytes.get(8..).and_then(le32) == id {
                return Ok(bytes);
            }
            skipped += 1;
            match Message::parse(&bytes) {
                Ok(other) => {
                    last_skipped = match other.request_id() {
                        Some(rid) => {
                            format!("type {:#010x}, RequestId {rid}", other.message_type())
                        }
                        None => format!("type {:#010x}", other.message_type()),
                    };
                    if let Some(up) = self.unsolicited(&other) {
                        *media = Some(up);
                    }
                }
                Err(e) => {
                    log::debug!("RNDIS response skipped while waiting for {what}: {e}");
                    last_skipped = e.to_string();
                }
            }
        }
        let mut detail = format!("no reply within {} ms", REPLY_TIMEOUT.as_millis());
        if skipped > 0 {
            detail += &format!(
                " ({skipped} other message(s) skipped, the last: {last_skipped}; \
                 wanted type {reply:#010x}, RequestId {})",
                id.unwrap_or(0)
            );
        }
        Err(BindError::BadReply { what, detail })
    }
}

impl Rndis {
    fn id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.next_id
    }

    /// QUERY `oid`: the information buffer, or why there is none (a failed status, or a
    /// QUERY_CMPLT whose lengths or offsets lie).
    fn query(
        &mut self,
        rc: &RndisControl,
        oid: u32,
        what: &'static str,
        media: &mut Media,
    ) -> Result<Result<Vec<u8>, NoValue>, BindError> {
        let q = Message::Query {
            request_id: self.id(),
            oid,
            info: &[],
        };
        let bytes = rc.command(&q, msg::QUERY_CMPLT, what, media)?;
        match Message::parse(&bytes) {
            Ok(Message::QueryCmplt {
                status: status::SUCCESS,
                info,
                ..
            }) => Ok(Ok(info.to_vec())),
            Ok(Message::QueryCmplt { status, .. }) => Ok(Err(NoValue::Status(status))),
            Ok(_) => unreachable_reply(what),
            Err(e) => Ok(Err(NoValue::Malformed(e))),
        }
    }
}

/// Why a QUERY gave no value.
#[derive(Debug)]
enum NoValue {
    /// QUERY_CMPLT with a failed status.
    Status(u32),
    /// QUERY_CMPLT whose buffer lies (the kernel's rndis_host had out-of-bounds reads here).
    Malformed(rndis::RndisError),
}

impl std::fmt::Display for NoValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoValue::Status(st) => write!(f, "status {st:#010x}"),
            NoValue::Malformed(e) => write!(f, "malformed reply: {e}"),
        }
    }
}

fn unreachable_reply<T>(what: &'static str) -> Result<T, BindError> {
    // `command` returns only bytes whose header has the wanted type.
    Err(BindError::BadReply {
        what,
        detail: "reply changed type".into(),
    })
}

fn le32(b: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(..4)?.try_into().ok()?))
}

impl ClassDriver for Rndis {
    fn kind(&self) -> ClassKind {
        ClassKind::Rndis
    }

    fn bind(
        &mut self,
        ctl: &Arc<dyn Control>,
        func: &NetFunction,
        bus: BusFacts,
    ) -> Result<Binding, BindError> {
        self.initialized = false;
        let r = self.bind_steps(ctl, func, bus);
        if r.is_err() && self.initialized {
            self.unbind(&**ctl, func);
        }
        r
    }

    fn unbind(&mut self, ctl: &dyn Control, func: &NetFunction) {
        let Some(iface) = self.iface.or(func.control_interface) else {
            return;
        };
        let halt = Message::Halt {
            request_id: self.id(),
        };
        match ctl.class_out(request::SEND_ENCAPSULATED_COMMAND, 0, iface, &halt.to_vec()) {
            Ok(()) => log::debug!("RNDIS HALT sent"),
            Err(e) => log::debug!("RNDIS HALT: {e}"),
        }
    }
}

impl Rndis {
    /// The bring-up; [`ClassDriver::bind`] adds the HALT when it fails half-way.
    fn bind_steps(
        &mut self,
        ctl: &Arc<dyn Control>,
        func: &NetFunction,
        bus: BusFacts,
    ) -> Result<Binding, BindError> {
        let iface = func.control_interface.ok_or(BindError::BadReply {
            what: "the RNDIS descriptors",
            detail: "no control interface to send encapsulated commands to".into(),
        })?;
        self.iface = Some(iface);
        let rc = RndisControl::new(ctl.clone(), iface);
        let mut media: Media = None;

        // One full frame per IN transfer at least, in whole packets (as rndis_host asks).
        let rx_transfer_size = round_up(PACKET_HEADER_LEN + 1500 + ETH_HLEN + 1, bus.max_packet);
        let init = Message::Initialize {
            request_id: self.id(),
            major: 1,
            minor: 0,
            max_transfer_size: rx_transfer_size as u32,
        };
        let what = "RNDIS INITIALIZE";
        let bytes = rc.command(&init, msg::INITIALIZE_CMPLT, what, &mut media)?;
        let parsed = Message::parse(&bytes).map_err(|e| BindError::BadReply {
            what,
            detail: format!("malformed INITIALIZE_CMPLT: {e}"),
        })?;
        let Message::InitializeCmplt {
            status: st,
            major,
            minor,
            medium,
            max_packets_per_transfer,
            max_transfer_size,
            packet_alignment_factor,
            ..
        } = parsed
        else {
            return unreachable_reply(what);
        };
        if st != status::SUCCESS {
            return Err(BindError::BadReply {
                what,
                detail: format!("status {st:#010x}"),
            });
        }
        self.initialized = true;
        if medium != rndis::MEDIUM_802_3 {
            return Err(BindError::BadReply {
                what,
                detail: format!("medium {medium} is not 802.3"),
            });
        }
        let dev_max_transfer = (max_transfer_size as usize).min(TX_TRANSFER_CAP);
        if dev_max_transfer < PACKET_HEADER_LEN + ETH_HLEN + 68 {
            return Err(BindError::BadReply {
                what,
                detail: format!("MaxTransferSize {max_transfer_size} cannot hold a frame"),
            });
        }
        let max_packets = max_packets_per_transfer.clamp(1, TX_PACKETS_CAP);
        let align_factor = if packet_alignment_factor > MAX_ALIGNMENT_FACTOR {
            log::warn!("RNDIS PacketAlignmentFactor {packet_alignment_factor} ignored");
            0
        } else {
            packet_alignment_factor
        };

        let what = "RNDIS QUERY OID_802_3_PERMANENT_ADDRESS";
        let (mac, mac_source): (Mac, String) =
            match self.query(&rc, oid::PERMANENT_ADDRESS_802_3, what, &mut media)? {
                Ok(info) => match <[u8; 6]>::try_from(info.get(..6).unwrap_or(&[])) {
                    Ok(m) if m != [0; 6] && m[0] & 1 == 0 => {
                        (m, "OID_802_3_PERMANENT_ADDRESS".into())
                    }
                    _ => {
                        log::warn!("RNDIS permanent address {info:02x?} unusable; deriving one");
                        derived(func, bus)
                    }
                },
                Err(why) => {
                    log::warn!("RNDIS permanent address query failed ({why}); deriving one");
                    derived(func, bus)
                }
            };

        let what = "RNDIS QUERY OID_GEN_MAXIMUM_FRAME_SIZE";
        let frame_size = match self.query(&rc, oid::GEN_MAXIMUM_FRAME_SIZE, what, &mut media)? {
            Ok(info) => le32(&info),
            Err(why @ NoValue::Malformed(_)) => {
                log::warn!("{what}: {why}");
                None
            }
            Err(why) => {
                log::debug!("{what}: {why}");
                None
            }
        };
        // MTU: the device's frame size (which excludes the Ethernet header), no more than one
        // PACKET_MSG in the device's MaxTransferSize, and no more than the 1500 our IN
        // transfer size was advertised for.
        let fits = (dev_max_transfer - PACKET_HEADER_LEN - ETH_HLEN) as u32;
        let mtu = match frame_size {
            Some(f) if f >= 68 => f.min(1500).min(fits),
            other => {
                match other {
                    Some(f) => log::warn!("RNDIS maximum frame size {f} unusable; MTU 1500"),
                    None => log::warn!("RNDIS maximum frame size unknown; MTU 1500"),
                }
                1500u32.min(fits)
            }
        };
        let max_frame = mtu as usize + ETH_HLEN;

        let what = "RNDIS SET OID_GEN_CURRENT_PACKET_FILTER";
        let set = Message::Set {
            request_id: self.id(),
            oid: oid::GEN_CURRENT_PACKET_FILTER,
            info: &PACKET_FILTER.to_le_bytes(),
        };
        let bytes = rc.command(&set, msg::SET_CMPLT, what, &mut media)?;
        match Message::parse(&bytes) {
            Ok(Message::SetCmplt {
                status: status::SUCCESS,
                ..
            }) => {}
            Ok(Message::SetCmplt { status, .. }) => {
                return Err(BindError::BadReply {
                    what,
                    detail: format!("status {status:#010x}"),
                })
            }
            _ => return unreachable_reply(what),
        }

        let what = "RNDIS QUERY OID_GEN_MEDIA_CONNECT_STATUS";
        match self.query(&rc, oid::GEN_MEDIA_CONNECT_STATUS, what, &mut media)? {
            Ok(info) => match le32(&info) {
                Some(0) => media = Some(true),
                Some(1) => media = Some(false),
                other => log::debug!("{what}: {other:?}"),
            },
            Err(why) => log::debug!("{what}: {why}"),
        }

        // rndis_host does not ask; Windows does, and so `ethtool` can show it.
        let what = "RNDIS QUERY OID_GEN_LINK_SPEED";
        let speed_bps = match self.query(&rc, oid::GEN_LINK_SPEED, what, &mut media)? {
            Ok(info) => le32(&info).filter(|&s| s != 0).map(|s| u64::from(s) * 100),
            Err(why) => {
                log::debug!("{what}: {why}");
                None
            }
        };

        let align = 1usize << align_factor;
        // The largest transfer this device can take: `max_packets` messages of the largest
        // frame (each but the last padded to the alignment) within its MaxTransferSize. The
        // ring sizes its OUT queue from this, so a device that takes one packet per
        // transfer gets as many transfers in flight as ECM (usbnet, too, sizes the queue
        // from the frame), not a queue sized for MaxTransferSize-byte transfers it never gets.
        let msg = PACKET_HEADER_LEN + max_frame;
        let per_transfer = (max_packets as usize - 1)
            .saturating_mul(round_up(msg, align))
            .saturating_add(msg);
        let tx_max = dev_max_transfer.min(per_transfer).max(msg);
        Ok(Binding {
            link: LinkInfo {
                mac,
                mac_source,
                mtu,
                rx_transfer_size,
                // + 1: the pad byte that replaces a zero-length packet.
                tx_transfer_size: tx_max + 1,
                // Without an interrupt endpoint nothing could ever turn carrier on; a device
                // that said "disconnected" starts without carrier.
                carrier_from_status: func.interrupt_in.is_some() && media == Some(false),
                speed_bps,
                framing: format!(
                    "RNDIS {major}.{minor}, device takes {max_packets} packet(s) and \
                     {max_transfer_size} B per transfer (alignment {align})"
                ),
            },
            rx: Box::new(RndisRx::new(max_frame)),
            tx: Box::new(RndisTx::new(
                max_frame,
                tx_max,
                max_packets as usize,
                align,
                bus.max_packet,
            )),
            status: Box::new(RndisStatus { rc }),
        })
    }
}

fn derived(func: &NetFunction, bus: BusFacts) -> (Mac, String) {
    let seed = format!(
        "rndis:{:016x}:{}:{}:{}",
        bus.identity, func.configuration, func.data_interface, func.bulk_in
    );
    (derived_mac(&seed), "derived (locally administered)".into())
}

/// The runtime status hook: RESPONSE_AVAILABLE → GET_ENCAPSULATED_RESPONSE → carrier.
#[derive(Debug)]
pub struct RndisStatus {
    rc: RndisControl,
}

impl RndisStatus {
    /// A hook issuing its requests through `rc`.
    pub fn new(rc: RndisControl) -> RndisStatus {
        RndisStatus { rc }
    }
}

impl StatusFixup for RndisStatus {
    fn status(&mut self, data: &[u8], events: &mut Vec<LinkEvent>) {
        // Each 8-byte RESPONSE_AVAILABLE announces one response (the Linux gadget sends
        // two in one transfer when two are queued); devices differ in the other bytes, so
        // any notification counts. One announced for a response bind already read finds
        // nothing, and the loop stops there.
        let announced = data.len().div_ceil(NOTIFICATION_LEN);
        for _ in 0..announced {
            match self.rc.response() {
                Ok(Some(bytes)) => match Message::parse(&bytes) {
                    Ok(m) => {
                        if let Some(up) = self.rc.unsolicited(&m) {
                            events.push(LinkEvent::Carrier(up));
                        }
                    }
                    Err(e) => log::debug!("RNDIS response dropped: {e}"),
                },
                Ok(None) => {
                    log::debug!("RNDIS notification {data:02x?} with no response pending");
                    break;
                }
                Err(e) => {
                    log::debug!("RNDIS GET_ENCAPSULATED_RESPONSE: {e}");
                    break;
                }
            }
        }
    }
}

/// RNDIS receive: every PACKET_MSG of the transfer.
#[derive(Debug)]
pub struct RndisRx {
    max_frame: usize,
    traced: u8,
}

impl RndisRx {
    /// Frames of up to `max_frame` bytes.
    pub fn new(max_frame: usize) -> RndisRx {
        RndisRx {
            max_frame,
            traced: 0,
        }
    }
}

impl RxFixup for RndisRx {
    fn rx_fixup(&mut self, xfer: &[u8], deliver: &mut dyn FnMut(&[u8]), drops: &mut RxDrops) {
        if self.traced < TRACED_TRANSFERS && log::log_enabled!(log::Level::Trace) {
            self.traced += 1;
            log::trace!("RNDIS IN transfer {xfer:02x?}");
        }
        for p in rndis::packets(xfer) {
            match p {
                Ok(f) if (ETH_HLEN..=self.max_frame).contains(&f.len()) => deliver(f),
                Ok(_) => drops.bad_frame += 1,
                // One message with lying data offsets, skipped alone (the walk goes on).
                Err(e @ rndis::RndisError::BadBuffer { .. }) => {
                    log::debug!("RNDIS IN transfer of {} bytes: {e}", xfer.len());
                    drops.bad_frame += 1;
                }
                // The rest of the transfer cannot be framed.
                Err(e) => {
                    log::debug!("RNDIS IN transfer of {} bytes: {e}", xfer.len());
                    drops.bad_transfer += 1;
                }
            }
        }
    }
}

/// RNDIS transmit: PACKET_MSGs back to back, within the device's limits.
#[derive(Debug)]
pub struct RndisTx {
    max_frame: usize,
    max_transfer: usize,
    max_packets: usize,
    align: usize,
    max_packet: usize,
    count: usize,
    last: usize,
}

impl RndisTx {
    /// Frames of up to `max_frame` bytes; transfers of at most `max_transfer` bytes and
    /// `max_packets` messages, each message starting at a multiple of `align`; a pad byte
    /// when a transfer would end on a `max_packet` boundary.
    pub fn new(
        max_frame: usize,
        max_transfer: usize,
        max_packets: usize,
        align: usize,
        max_packet: usize,
    ) -> RndisTx {
        RndisTx {
            max_frame,
            max_transfer,
            max_packets: max_packets.max(1),
            align: align.max(1),
            max_packet: max_packet.max(1),
            count: 0,
            last: 0,
        }
    }
}

impl TxFixup for RndisTx {
    fn begin(&mut self, _out: &mut Buffer) {
        self.count = 0;
        self.last = 0;
    }

    fn push_with(
        &mut self,
        out: &mut Buffer,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), Refused> {
        if len < ETH_HLEN || len > self.max_frame {
            return Err(Refused::Invalid);
        }
        let start = if self.count == 0 {
            out.len()
        } else {
            round_up(out.len(), self.align)
        };
        let end = start + PACKET_HEADER_LEN + len;
        if self.count > 0 && (self.count >= self.max_packets || end > self.max_transfer) {
            return Err(Refused::Full);
        }
        if self.count > 0 && start > out.len() {
            // The padding belongs to the previous message (MessageLength covers it).
            let pad = start - out.len();
            out.resize(start, 0);
            let len_field = self.last + rndis::field::LENGTH.start;
            let old = le32(&out[len_field..]).unwrap_or(0);
            out[len_field..len_field + 4].copy_from_slice(&(old + pad as u32).to_le_bytes());
        }
        self.last = out.len();
        out.resize(start + PACKET_HEADER_LEN, 0);
        emit_packet_header(&mut out[start..], len);
        out.extend_with(len, fill);
        self.count += 1;
        Ok(())
    }

    fn finish(&mut self, out: &mut Buffer) -> bool {
        if !out.is_empty() && out.len() % self.max_packet == 0 {
            out.push(0);
        }
        false
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn is_full(&self) -> bool {
        self.count >= self.max_packets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// A scripted RNDIS device: answers commands as the Linux gadget does (stall when no
    /// response is queued), with extra messages to inject before each reply.
    #[derive(Default)]
    struct Device {
        queue: Mutex<VecDeque<Vec<u8>>>,
        /// Messages queued ahead of the next reply (stale indications, keepalives).
        inject: Mutex<Vec<Vec<u8>>>,
        sent: Mutex<Vec<Vec<u8>>>,
        media_disconnected: bool,
        /// Rewrites each reply before it is queued (the hostile device's lies).
        mangle: Option<fn(&mut Vec<u8>)>,
        /// MaxPacketsPerTransfer to announce (0: 4).
        max_packets: u32,
        /// Answer OID_GEN_LINK_SPEED with an empty buffer.
        no_link_speed: bool,
    }

    impl Control for Device {
        fn class_in(&self, req: u8, _: u16, iface: u8, _: u16) -> Result<Vec<u8>, TransferError> {
            assert_eq!((req, iface), (request::GET_ENCAPSULATED_RESPONSE, 0));
            self.queue
                .lock()
                .unwrap()
                .pop_front()
                .ok_or(TransferError::Stall)
        }
        fn class_out(&self, req: u8, _: u16, iface: u8, data: &[u8]) -> Result<(), TransferError> {
            assert_eq!((req, iface), (request::SEND_ENCAPSULATED_COMMAND, 0));
            self.sent.lock().unwrap().push(data.to_vec());
            let mut q = self.queue.lock().unwrap();
            q.extend(self.inject.lock().unwrap().drain(..));
            let ok = status::SUCCESS;
            let reply = match Message::parse(data).unwrap() {
                Message::Initialize { request_id, .. } => Message::InitializeCmplt {
                    request_id,
                    status: ok,
                    major: 1,
                    minor: 0,
                    device_flags: 1,
                    medium: 0,
                    max_packets_per_transfer: if self.max_packets == 0 {
                        4
                    } else {
                        self.max_packets
                    },
                    max_transfer_size: 8192,
                    packet_alignment_factor: 2,
                }
                .to_vec(),
                Message::Query {
                    request_id, oid, ..
                } => {
                    let info: Vec<u8> = match oid {
                        oid::PERMANENT_ADDRESS_802_3 => vec![0x02, 1, 2, 3, 4, 5],
                        oid::GEN_MAXIMUM_FRAME_SIZE => 1500u32.to_le_bytes().to_vec(),
                        // f_rndis at high speed: 425,984,000 bit/s in units of 100.
                        oid::GEN_LINK_SPEED if !self.no_link_speed => {
                            4_259_840u32.to_le_bytes().to_vec()
                        }
                        oid::GEN_MEDIA_CONNECT_STATUS => {
                            u32::from(self.media_disconnected).to_le_bytes().to_vec()
                        }
                        _ => vec![],
                    };
                    Message::QueryCmplt {
                        request_id,
                        status: ok,
                        info: &info,
                    }
                    .to_vec()
                }
                Message::Set { request_id, .. } => Message::SetCmplt {
                    request_id,
                    status: ok,
                }
                .to_vec(),
                Message::Halt { .. } | Message::KeepaliveCmplt { .. } => return Ok(()),
                other => panic!("unexpected {other:?}"),
            };
            let mut reply = reply;
            if let Some(f) = self.mangle {
                f(&mut reply);
            }
            q.push_back(reply);
            Ok(())
        }
        fn string(&self, _: u8) -> Option<String> {
            None
        }
    }

    fn function() -> NetFunction {
        NetFunction {
            class: ClassKind::Rndis,
            configuration: 1,
            control_interface: Some(0),
            data_interface: 1,
            data_alt_setting: 0,
            bulk_in: 0x81,
            bulk_out: 0x02,
            interrupt_in: Some(0x83),
            max_packet_size: 512,
            bulk_out_max_packet_size: 512,
            interrupt_max_packet_size: Some(8),
            interrupt_interval: Some(9),
            max_segment_size: None,
            mac_string_index: None,
            ncm_capabilities: None,
            ncm_version: None,
            mdlm_data_capabilities: None,
            iad_checked: true,
            notes: vec![],
        }
    }

    const BUS: BusFacts = BusFacts {
        max_packet: 512,
        super_speed: false,
        identity: 0,
    };

    #[test]
    fn bind_initializes_queries_sets_and_skips_what_comes_between() {
        let dev = Arc::new(Device::default());
        // A stale indication and a keepalive from the device before the INITIALIZE reply.
        dev.inject.lock().unwrap().extend([
            Message::IndicateStatus {
                status: status::MEDIA_DISCONNECT,
                buffer: &[],
            }
            .to_vec(),
            Message::Keepalive { request_id: 77 }.to_vec(),
            // A stale reply to somebody else's INITIALIZE.
            Message::InitializeCmplt {
                request_id: 99,
                status: 1,
                major: 0,
                minor: 0,
                device_flags: 0,
                medium: 5,
                max_packets_per_transfer: 0,
                max_transfer_size: 0,
                packet_alignment_factor: 0,
            }
            .to_vec(),
        ]);
        let ctl: Arc<dyn Control> = dev.clone();
        let mut drv = Rndis::default();
        let b = drv.bind(&ctl, &function(), BUS).unwrap();
        assert_eq!(b.link.mac, [0x02, 1, 2, 3, 4, 5]);
        assert_eq!(b.link.mtu, 1500);
        assert_eq!(b.link.rx_transfer_size, 2048);
        // Four messages of 44 + 1514 bytes, the first three padded to 8 (3 * 1560 + 1558),
        // under the device's 8192, + the pad byte.
        assert_eq!(b.link.tx_transfer_size, 6239);
        // The media query (connected) came after the stale "disconnected".
        assert!(!b.link.carrier_from_status);
        let sent = dev.sent.lock().unwrap().clone();
        let kinds: Vec<u32> = sent
            .iter()
            .map(|m| Message::parse(m).unwrap().message_type())
            .collect();
        assert_eq!(
            kinds,
            [
                msg::INITIALIZE,
                msg::KEEPALIVE_CMPLT,
                msg::QUERY,
                msg::QUERY,
                msg::SET,
                msg::QUERY,
                msg::QUERY
            ]
        );
        // The last query asked for the link speed, and its answer (in units of 100 bit/s)
        // is the interface's.
        assert!(matches!(
            Message::parse(&sent[6]),
            Ok(Message::Query {
                oid: oid::GEN_LINK_SPEED,
                ..
            })
        ));
        assert_eq!(b.link.speed_bps, Some(425_984_000));
        assert_eq!(
            Message::parse(&sent[1]),
            Ok(Message::KeepaliveCmplt {
                request_id: 77,
                status: 0
            })
        );
        // rndis_host's RNDIS_DEFAULT_FILTER: directed, all multicast, broadcast, promiscuous.
        assert_eq!(
            Message::parse(&sent[4]),
            Ok(Message::Set {
                request_id: 4,
                oid: oid::GEN_CURRENT_PACKET_FILTER,
                info: &[0x2d, 0, 0, 0]
            })
        );
        // HALT on unbind.
        drv.unbind(&*ctl, &function());
        let last = dev.sent.lock().unwrap().last().cloned().unwrap();
        assert!(matches!(Message::parse(&last), Ok(Message::Halt { .. })));
    }

    #[test]
    fn a_one_packet_device_gets_an_out_queue_as_deep_as_ecm() {
        // f_rndis and QEMU's usb-net take one packet per transfer and announce a larger
        // MaxTransferSize: transfers are one message long, and the OUT queue is sized so.
        let dev = Arc::new(Device {
            max_packets: 1,
            ..Device::default()
        });
        let ctl: Arc<dyn Control> = dev;
        let b = Rndis::default().bind(&ctl, &function(), BUS).unwrap();
        assert_eq!(b.link.tx_transfer_size, 44 + 1514 + 1);
        let rndis =
            crate::ring::RingConfig::sized(2048, b.link.tx_transfer_size, 1514, false, false);
        let ecm = crate::ring::RingConfig::sized(1536, 1515, 1514, false, false);
        assert_eq!(rndis.tx_queue, 58);
        assert!(
            rndis.tx_queue * 100 >= ecm.tx_queue * 95,
            "{rndis:?} vs {ecm:?}"
        );
    }

    #[test]
    fn a_device_without_a_link_speed_binds_with_the_speed_unknown() {
        let dev = Arc::new(Device {
            no_link_speed: true,
            ..Device::default()
        });
        let ctl: Arc<dyn Control> = dev.clone();
        let b = Rndis::default().bind(&ctl, &function(), BUS).unwrap();
        assert_eq!(b.link.speed_bps, None);
        assert_eq!(b.link.mtu, 1500);
    }

    #[test]
    fn bind_waits_for_carrier_when_the_device_says_disconnected() {
        let dev = Arc::new(Device {
            media_disconnected: true,
            ..Device::default()
        });
        let ctl: Arc<dyn Control> = dev.clone();
        let b = Rndis::default().bind(&ctl, &function(), BUS).unwrap();
        assert!(b.link.carrier_from_status);
    }

    #[test]
    fn bind_gives_up_on_a_silent_device_in_bounded_time() {
        struct Silent;
        impl Control for Silent {
            fn class_in(&self, _: u8, _: u16, _: u8, _: u16) -> Result<Vec<u8>, TransferError> {
                Ok(vec![0]) // QEMU's "nothing pending"
            }
            fn class_out(&self, _: u8, _: u16, _: u8, _: &[u8]) -> Result<(), TransferError> {
                Ok(())
            }
            fn string(&self, _: u8) -> Option<String> {
                None
            }
        }
        let ctl: Arc<dyn Control> = Arc::new(Silent);
        let t = Instant::now();
        let e = Rndis::default().bind(&ctl, &function(), BUS).err().unwrap();
        assert!(e.to_string().contains("INITIALIZE"), "{e}");
        assert!(t.elapsed() < REPLY_TIMEOUT + Duration::from_secs(1));
    }

    #[test]
    fn runtime_notifications_bring_carrier_and_keepalive_answers() {
        let dev = Arc::new(Device::default());
        let ctl: Arc<dyn Control> = dev.clone();
        let mut b = Rndis::default().bind(&ctl, &function(), BUS).unwrap();
        let mut events = Vec::new();
        // Nothing queued: the notification is a stale one.
        b.status.status(&[1, 0, 0, 0, 0, 0, 0, 0], &mut events);
        assert!(events.is_empty());
        {
            let mut q = dev.queue.lock().unwrap();
            q.push_back(
                Message::IndicateStatus {
                    status: status::MEDIA_DISCONNECT,
                    buffer: &[],
                }
                .to_vec(),
            );
            q.push_back(Message::Keepalive { request_id: 5 }.to_vec());
            q.push_back(
                Message::IndicateStatus {
                    status: status::MEDIA_CONNECT,
                    buffer: &[],
                }
                .to_vec(),
            );
        }
        // Two notifications in one transfer (as the gadget sends them), then one.
        b.status.status(
            &[1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
            &mut events,
        );
        b.status.status(&[1, 0, 0, 0, 0, 0, 0, 0], &mut events);
        assert_eq!(
            events,
            [LinkEvent::Carrier(false), LinkEvent::Carrier(true)]
        );
        let last = dev.sent.lock().unwrap().last().cloned().unwrap();
        assert_eq!(
            Message::parse(&last),
            Ok(Message::KeepaliveCmplt {
                request_id: 5,
                status: 0
            })
        );
    }

    fn put(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn mangled(f: fn(&mut Vec<u8>)) -> Arc<Device> {
        Arc::new(Device {
            mangle: Some(f),
            ..Device::default()
        })
    }

    fn sent_types(dev: &Device) -> Vec<u32> {
        dev.sent
            .lock()
            .unwrap()
            .iter()
            .map(|m| Message::parse(m).unwrap().message_type())
            .collect()
    }

    #[test]
    // One signature for every mangler: some of them truncate the reply.
    #[allow(clippy::ptr_arg)]
    fn a_malformed_initialize_cmplt_is_refused_at_once_naming_the_lie() {
        // hostile --reply init-len-long: MessageLength 200, 52 bytes sent (rndis_host
        // accepted this). And init-short: a 24-byte INITIALIZE_CMPLT.
        fn long(r: &mut Vec<u8>) {
            if le32(r) == Some(msg::INITIALIZE_CMPLT) {
                put(r, 4, 200);
            }
        }
        fn short(r: &mut Vec<u8>) {
            if le32(r) == Some(msg::INITIALIZE_CMPLT) {
                r.truncate(24);
                put(r, 4, 24);
            }
        }
        for (f, want) in [
            (
                long as fn(&mut Vec<u8>),
                "MessageLength 200 does not fit the 52 bytes",
            ),
            (short, "24 bytes, its header needs 52"),
        ] {
            let dev = mangled(f);
            let ctl: Arc<dyn Control> = dev.clone();
            let t = Instant::now();
            let e = Rndis::default().bind(&ctl, &function(), BUS).err().unwrap();
            let e = e.to_string();
            assert!(
                e.contains("malformed INITIALIZE_CMPLT") && e.contains(want),
                "{e}"
            );
            assert!(t.elapsed() < REPLY_TIMEOUT, "no waiting out the timeout");
            // Never initialized: no HALT.
            assert_eq!(sent_types(&dev), [msg::INITIALIZE]);
        }
    }

    #[test]
    fn a_reply_with_the_wrong_request_id_times_out_naming_what_was_skipped() {
        // hostile --reply init-id: RequestId + 7.
        let dev = mangled(|r| {
            if le32(r) == Some(msg::INITIALIZE_CMPLT) {
                put(r, 8, 8);
            }
        });
        let ctl: Arc<dyn Control> = dev.clone();
        let e = Rndis::default().bind(&ctl, &function(), BUS).err().unwrap();
        let e = e.to_string();
        assert!(
            e.contains("no reply within")
                && e.contains("RequestId 8;")
                && e.contains("RequestId 1"),
            "{e}"
        );
    }

    #[test]
    // One signature for every mangler: some of them truncate the reply.
    #[allow(clippy::ptr_arg)]
    fn lying_mac_and_frame_size_replies_fall_back_and_bind() {
        // hostile --reply mac-offset-wrap (8 + InformationBufferOffset wraps to 0),
        // mac-len-wrap, mac-past-msg, mac-5; then frame-0.
        fn offset_wrap(r: &mut Vec<u8>) {
            if r.len() == 30 {
                put(r, 20, 0xffff_fff8);
            }
        }
        fn len_wrap(r: &mut Vec<u8>) {
            if r.len() == 30 {
                put(r, 16, 0xffff_fff0);
            }
        }
        fn past(r: &mut Vec<u8>) {
            if r.len() == 30 {
                put(r, 16, 400);
            }
        }
        fn five(r: &mut Vec<u8>) {
            if r.len() == 30 {
                r.truncate(29);
                put(r, 4, 29);
                put(r, 16, 5);
            }
        }
        for f in [offset_wrap as fn(&mut Vec<u8>), len_wrap, past, five] {
            let dev = mangled(f);
            let ctl: Arc<dyn Control> = dev.clone();
            let b = Rndis::default().bind(&ctl, &function(), BUS).unwrap();
            assert!(
                b.link.mac_source.starts_with("derived"),
                "{}",
                b.link.mac_source
            );
            assert_eq!(b.link.mac[0] & 3, 2, "locally administered unicast");
            assert_eq!(b.link.mtu, 1500);
        }
        let dev = mangled(|r| {
            // the 4-byte frame size reply: 0
            if r.len() == 28 && le32(&r[24..]) == Some(1500) {
                put(r, 24, 0);
            }
        });
        let ctl: Arc<dyn Control> = dev.clone();
        let b = Rndis::default().bind(&ctl, &function(), BUS).unwrap();
        assert_eq!((b.link.mtu, b.link.mac), (1500, [0x02, 1, 2, 3, 4, 5]));
    }

    #[test]
    fn a_bind_failing_after_initialize_halts_the_device() {
        let dev = mangled(|r| {
            if le32(r) == Some(msg::SET_CMPLT) {
                put(r, 12, status::FAILURE);
            }
        });
        let ctl: Arc<dyn Control> = dev.clone();
        let e = Rndis::default().bind(&ctl, &function(), BUS).err().unwrap();
        assert!(e.to_string().contains("status 0xc0000001"), "{e}");
        assert_eq!(
            sent_types(&dev),
            [msg::INITIALIZE, msg::QUERY, msg::QUERY, msg::SET, msg::HALT]
        );
    }

    #[test]
    fn rx_skips_a_message_whose_data_lies_and_keeps_the_next() {
        // hostile case mid-data-lie: three messages, the middle DataLength 200 in a
        // 124-byte message.
        let mut xfer = Vec::new();
        for (len, fill) in [(60usize, 1u8), (80, 2), (100, 3)] {
            xfer.extend_from_slice(
                &Message::Packet {
                    data: &frame(len, fill),
                }
                .to_vec(),
            );
        }
        put(&mut xfer, 104 + 12, 200);
        let mut rx = RndisRx::new(1514);
        let mut drops = RxDrops::default();
        let mut got = Vec::new();
        rx.rx_fixup(&xfer, &mut |f| got.push((f.len(), f[0])), &mut drops);
        assert_eq!(got, [(60, 1), (100, 3)]);
        assert_eq!((drops.bad_frame, drops.bad_transfer), (1, 0));
    }

    fn frame(len: usize, fill: u8) -> Vec<u8> {
        vec![fill; len]
    }

    #[test]
    fn tx_one_packet_per_transfer_when_the_device_says_one() {
        let mut tx = RndisTx::new(1514, 1580, 1, 1, 512);
        let mut out = Buffer::new(0);
        tx.begin(&mut out);
        assert!(!tx.is_full());
        tx.push(&mut out, &frame(100, 1)).unwrap();
        assert!(tx.is_full(), "the device's one packet per transfer");
        assert_eq!(tx.push(&mut out, &frame(60, 2)), Err(Refused::Full));
        assert_eq!(out.len(), 144);
        assert_eq!(
            Message::parse(&out),
            Ok(Message::Packet {
                data: &frame(100, 1)
            })
        );
        assert!(!tx.finish(&mut out));
        assert_eq!(out.len(), 144);
    }

    #[test]
    fn tx_pads_a_transfer_that_ends_on_a_packet_boundary() {
        let mut tx = RndisTx::new(1514, 1580, 1, 1, 512);
        let mut out = Buffer::new(0);
        tx.begin(&mut out);
        tx.push(&mut out, &frame(512 - 44, 1)).unwrap();
        assert!(!tx.finish(&mut out), "a pad byte, no ZLP");
        assert_eq!(out.len(), 513);
        // The pad is outside the message; the device (and our RX) ignore it.
        let got: Vec<_> = rndis::packets(&out).collect();
        assert_eq!(got, [Ok(&frame(468, 1)[..])]);
    }

    #[test]
    fn tx_batches_aligned_messages_within_the_device_limits() {
        let mut tx = RndisTx::new(1514, 400, 3, 8, 512);
        let mut out = Buffer::new(0);
        tx.begin(&mut out);
        tx.push(&mut out, &frame(61, 1)).unwrap();
        tx.push(&mut out, &frame(62, 2)).unwrap();
        assert!(!tx.is_full(), "2 of 3 packets");
        tx.push(&mut out, &frame(63, 3)).unwrap();
        assert!(tx.is_full(), "3 of 3 packets");
        assert_eq!(
            tx.push(&mut out, &frame(60, 4)),
            Err(Refused::Full),
            "3 packets"
        );
        // Message 1: 105 bytes, padded to 112; message 2 at 112: 106 → 224; message 3.
        assert_eq!(out.len(), 224 + 44 + 63);
        assert_eq!(le32(&out[4..]), Some(112));
        assert_eq!(le32(&out[112 + 4..]), Some(112));
        let got: Vec<_> = rndis::packets(&out).map(|p| p.unwrap().len()).collect();
        assert_eq!(got, [61, 62, 63]);
        // Size limit.
        let mut tx = RndisTx::new(1514, 400, 10, 1, 512);
        out.clear();
        tx.begin(&mut out);
        tx.push(&mut out, &frame(300, 1)).unwrap();
        assert_eq!(tx.push(&mut out, &frame(60, 1)), Err(Refused::Full));
        assert_eq!(tx.push(&mut out, &frame(1515, 1)), Err(Refused::Invalid));
        assert_eq!(tx.push(&mut out, &frame(13, 1)), Err(Refused::Invalid));
    }

    #[test]
    fn rx_delivers_every_packet_and_counts_the_bad() {
        let mut xfer = Vec::new();
        for (len, fill) in [(60usize, 1u8), (1514, 2), (13, 3), (100, 4)] {
            xfer.extend_from_slice(
                &Message::Packet {
                    data: &frame(len, fill),
                }
                .to_vec(),
            );
        }
        xfer.push(0); // pad byte
        let mut rx = RndisRx::new(1514);
        let mut drops = RxDrops::default();
        let mut got = Vec::new();
        rx.rx_fixup(&xfer, &mut |f| got.push((f.len(), f[0])), &mut drops);
        assert_eq!(got, [(60, 1), (1514, 2), (100, 4)]);
        assert_eq!(drops.bad_frame, 1);
        assert_eq!(drops.bad_transfer, 0);
        // A message whose length runs past the transfer ends it.
        let mut bad = Message::Packet {
            data: &frame(60, 1),
        }
        .to_vec();
        bad.extend_from_slice(
            &Message::Packet {
                data: &frame(60, 2),
            }
            .to_vec(),
        );
        bad[104 + 4] = 0xff;
        got.clear();
        rx.rx_fixup(&bad, &mut |f| got.push((f.len(), f[0])), &mut drops);
        assert_eq!(got, [(60, 1)]);
        assert_eq!(drops.bad_transfer, 1);
    }

    #[test]
    fn tx_push_with_builds_the_frame_in_place_and_calls_fill_only_when_it_fits() {
        // f_rndis: one message per transfer.
        let mut tx = RndisTx::new(1514, 1580, 1, 1, 512);
        let mut out = Buffer::new(2048);
        tx.begin(&mut out);
        let mut calls = 0;
        tx.push_with(&mut out, 100, &mut |d| {
            calls += 1;
            d.fill(0xab);
        })
        .unwrap();
        assert_eq!(out.len(), PACKET_HEADER_LEN + 100);
        assert!(out[PACKET_HEADER_LEN..].iter().all(|&b| b == 0xab));
        // The same message as `push` of those bytes would give.
        let mut copy = Buffer::new(2048);
        let mut tx2 = RndisTx::new(1514, 1580, 1, 1, 512);
        tx2.begin(&mut copy);
        tx2.push(&mut copy, &[0xab; 100]).unwrap();
        assert_eq!(&out[..], &copy[..]);
        // Full, or a frame it can never take: nothing written, `fill` never called.
        let r = tx.push_with(&mut out, 60, &mut |_| calls += 1);
        assert_eq!(r, Err(Refused::Full));
        let mut fresh = Buffer::new(2048);
        tx.begin(&mut fresh);
        let r = tx.push_with(&mut fresh, 1515, &mut |_| calls += 1);
        assert_eq!(r, Err(Refused::Invalid));
        assert_eq!(calls, 1);
        assert_eq!(out.len(), PACKET_HEADER_LEN + 100);
        assert!(fresh.is_empty());
    }
}
