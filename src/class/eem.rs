//! CDC-EEM (Ethernet Emulation Model): one interface, two bulk endpoints, no control
//! requests and no notifications. Frames travel as EEM data packets (a 2-byte header, the
//! frame, a CRC-32 or the 0xDEADBEEF sentinel), several per transfer both ways; commands
//! share the bulk pipes. Reference for behaviour: the kernel's `cdc_eem` (host) and `f_eem`
//! (gadget).
//!
//! * MAC: EEM descriptors carry none, so the MAC is a stable locally administered one
//!   derived from the function (as the CDC subset class does); carrier is on from the start.
//! * RX: every EEM packet of a transfer; data packets whose CRC (bmCRC set) or sentinel is
//!   wrong are dropped as `cdc_eem` drops them; zero-length EEM packets are padding.
//! * TX: frames packed into one transfer up to one full-sized EEM packet's worth (1520
//!   bytes): a device sizes its OUT requests for one frame (the Linux gadget: 2048 bytes)
//!   and does not reassemble an EEM packet split over two requests, so a longer transfer is
//!   not safe without knowing the device. Small frames (TCP ACKs) still share a transfer.
//!   The trailer is the sentinel (no CRC computed per frame; `cdc_eem` and `f_eem` accept
//!   it). A transfer that would end on a wMaxPacketSize boundary gets a zero-length EEM
//!   packet instead of a USB zero-length packet.
//! * Echo from the device: the Echo Response goes out at the head of the next OUT transfer
//!   (the ring builds OUT transfers only when it has a frame to send, so the answer waits
//!   for the next frame). Other commands are logged.

use std::sync::{Arc, Mutex};

use super::ecm::round_up;
use super::{
    derived_mac, BindError, Binding, BusFacts, ClassDriver, LinkInfo, Refused, RxDrops, RxFixup,
    TxFixup, ETH_HLEN,
};
use crate::class::subset::NoStatus;
use crate::probe::{ClassKind, NetFunction};
use crate::usb::{Buffer, Control};
use crate::wire::eem::{self, EemPacket};

/// Echo Responses held for the next OUT transfer at most; further Echos are not answered.
pub const MAX_PENDING_ECHOS: usize = 4;

/// The CDC-EEM class driver.
#[derive(Debug, Default)]
pub struct Eem;

/// Echo payloads waiting for their response, shared by the RX and TX hooks.
pub type EchoQueue = Arc<Mutex<Vec<Vec<u8>>>>;

impl ClassDriver for Eem {
    fn kind(&self) -> ClassKind {
        ClassKind::Eem
    }

    fn bind(
        &mut self,
        _ctl: &Arc<dyn Control>,
        func: &NetFunction,
        bus: BusFacts,
    ) -> Result<Binding, BindError> {
        let seed = format!(
            "eem:{:016x}:{}:{}:{}",
            bus.identity, func.configuration, func.data_interface, func.bulk_in
        );
        let mac = derived_mac(&seed);
        let mtu = 1500u32;
        let max_frame = mtu as usize + ETH_HLEN;
        let full = eem::data_packet_len(max_frame);
        let echos = EchoQueue::default();
        Ok(Binding {
            link: LinkInfo {
                mac,
                mac_source: "derived (locally administered; EEM devices report none)".into(),
                mtu,
                // A full packet plus a zero-length EEM packet, and a byte so that the
                // transfer ends short.
                rx_transfer_size: round_up(full + eem::HEADER_LEN + 1, bus.max_packet),
                tx_transfer_size: full + eem::HEADER_LEN,
                carrier_from_status: false,
                speed_bps: None,
                framing: format!("EEM packets, up to {full} B per OUT transfer, sentinel CRC"),
            },
            rx: Box::new(EemRx::new(max_frame, echos.clone())),
            tx: Box::new(EemTx::new(max_frame, full, bus.max_packet, echos)),
            status: Box::new(NoStatus),
        })
    }
}

/// EEM receive.
#[derive(Debug)]
pub struct EemRx {
    max_frame: usize,
    echos: EchoQueue,
    traced: u8,
}

impl EemRx {
    /// Frames of up to `max_frame` bytes; Echo payloads go to `echos`.
    pub fn new(max_frame: usize, echos: EchoQueue) -> EemRx {
        EemRx {
            max_frame,
            echos,
            traced: 0,
        }
    }
}

impl RxFixup for EemRx {
    fn rx_fixup(&mut self, xfer: &[u8], deliver: &mut dyn FnMut(&[u8]), drops: &mut RxDrops) {
        if self.traced < super::rndis::TRACED_TRANSFERS && log::log_enabled!(log::Level::Trace) {
            self.traced += 1;
            log::trace!("EEM IN transfer {xfer:02x?}");
        }
        for p in eem::packets(xfer) {
            match p {
                Ok(p @ EemPacket::Data { frame, .. }) => {
                    if !(ETH_HLEN..=self.max_frame).contains(&frame.len()) || !p.trailer_ok() {
                        drops.bad_frame += 1;
                    } else {
                        deliver(frame);
                    }
                }
                Ok(EemPacket::ZeroLength) => {}
                Ok(EemPacket::Echo(data)) => {
                    let mut q = self.echos.lock().unwrap_or_else(|p| p.into_inner());
                    if q.len() < MAX_PENDING_ECHOS {
                        log::debug!("EEM echo of {} bytes: answering", data.len());
                        q.push(data.to_vec());
                    } else {
                        log::debug!("EEM echo of {} bytes not answered (queue full)", data.len());
                    }
                }
                Ok(EemPacket::EchoResponse(data)) => {
                    log::debug!("EEM echo response of {} bytes ignored", data.len())
                }
                Ok(EemPacket::Command {
                    code,
                    param,
                    reserved,
                }) => log::debug!(
                    "EEM command {code} (parameter {param}{}) ignored",
                    if reserved { ", reserved bit set" } else { "" }
                ),
                Err(e) => {
                    log::debug!("EEM IN transfer of {} bytes: {e}", xfer.len());
                    drops.bad_transfer += 1;
                }
            }
        }
    }
}

/// EEM transmit.
#[derive(Debug)]
pub struct EemTx {
    max_frame: usize,
    max_transfer: usize,
    max_packet: usize,
    echos: EchoQueue,
    frames: usize,
    has_echo: bool,
}

impl EemTx {
    /// Frames of up to `max_frame` bytes, EEM packets up to `max_transfer` bytes per
    /// transfer (a single frame is always taken), zero-length EEM packet at `max_packet`
    /// boundaries, Echo Responses from `echos`.
    pub fn new(
        max_frame: usize,
        max_transfer: usize,
        max_packet: usize,
        echos: EchoQueue,
    ) -> EemTx {
        EemTx {
            max_frame,
            max_transfer,
            max_packet: max_packet.max(1),
            echos,
            frames: 0,
            has_echo: false,
        }
    }
}

impl TxFixup for EemTx {
    fn begin(&mut self, out: &mut Buffer) {
        self.frames = 0;
        self.has_echo = false;
        let mut q = self.echos.lock().unwrap_or_else(|p| p.into_inner());
        for data in q.drain(..) {
            eem::push_echo(out, &data, true);
            self.has_echo = true;
        }
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
        let end = out.len() + eem::data_packet_len(len);
        if !self.is_empty() && end > self.max_transfer {
            return Err(Refused::Full);
        }
        if !eem::push_data_with(out, len, fill, false) {
            return Err(Refused::Invalid);
        }
        self.frames += 1;
        Ok(())
    }

    fn finish(&mut self, out: &mut Buffer) -> bool {
        if !out.is_empty() && out.len() % self.max_packet == 0 {
            out.extend_from_slice(&eem::ZERO_LENGTH_PACKET);
        }
        false
    }

    fn is_empty(&self) -> bool {
        self.frames == 0 && !self.has_echo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx() -> EemTx {
        EemTx::new(1514, 1520, 512, EchoQueue::default())
    }

    #[test]
    fn tx_packs_small_frames_and_stops_at_one_full_packet() {
        let mut tx = tx();
        let mut out = Buffer::new(0);
        tx.begin(&mut out);
        // 23 x 66 = 1518 bytes fit in 1520.
        for _ in 0..23 {
            tx.push(&mut out, &[7u8; 60]).unwrap();
        }
        assert_eq!(out.len(), 23 * 66);
        assert_eq!(tx.push(&mut out, &[7u8; 60]), Err(Refused::Full));
        assert!(!tx.finish(&mut out));
        let n = eem::packets(&out).filter(|p| p.is_ok()).count();
        assert_eq!(n, 23);
        // One full-sized frame always fits an empty transfer, never a second.
        out.clear();
        tx.begin(&mut out);
        tx.push(&mut out, &[1u8; 1514]).unwrap();
        assert_eq!(tx.push(&mut out, &[1u8; 60]), Err(Refused::Full));
        assert_eq!(tx.push(&mut out, &[1u8; 1515]), Err(Refused::Invalid));
    }

    #[test]
    fn tx_appends_a_zero_length_eem_packet_on_a_packet_boundary() {
        let mut tx = tx();
        let mut out = Buffer::new(0);
        tx.begin(&mut out);
        tx.push(&mut out, &[1u8; 512 - 6]).unwrap();
        assert_eq!(out.len(), 512);
        assert!(!tx.finish(&mut out), "no USB ZLP");
        assert_eq!(out.len(), 514);
        assert_eq!(&out[512..], &[0, 0]);
        let got: Vec<_> = eem::packets(&out).map(Result::unwrap).collect();
        assert_eq!(got[1], EemPacket::ZeroLength);
    }

    #[test]
    fn echo_from_the_device_is_answered_in_the_next_transfer() {
        let echos = EchoQueue::default();
        let mut rx = EemRx::new(1514, echos.clone());
        let mut tx = EemTx::new(1514, 1520, 512, echos);
        let mut xfer = Vec::new();
        eem::push_echo(&mut xfer, b"are you there", false);
        eem::push_data(&mut xfer, &[5u8; 60], false);
        let mut got = Vec::new();
        let mut drops = RxDrops::default();
        rx.rx_fixup(&xfer, &mut |f| got.push(f.to_vec()), &mut drops);
        assert_eq!(got, [vec![5u8; 60]]);
        let mut out = Buffer::new(0);
        tx.begin(&mut out);
        assert!(!tx.is_empty());
        tx.push(&mut out, &[6u8; 60]).unwrap();
        let got: Vec<_> = eem::packets(&out).map(Result::unwrap).collect();
        assert_eq!(got[0], EemPacket::EchoResponse(b"are you there"));
        assert!(matches!(got[1], EemPacket::Data { .. }));
        // Answered once.
        out.clear();
        tx.begin(&mut out);
        assert!(tx.is_empty() && out.is_empty());
    }

    #[test]
    fn rx_drops_bad_trailers_and_stops_at_a_bad_length() {
        let mut xfer = Vec::new();
        eem::push_data(&mut xfer, &[1u8; 60], true);
        eem::push_data(&mut xfer, &[2u8; 60], false);
        let n = xfer.len();
        xfer[n - 1] = 0; // broken sentinel
        xfer.extend_from_slice(&eem::ZERO_LENGTH_PACKET);
        eem::push_data(&mut xfer, &[3u8; 10], false); // runt
        xfer.extend_from_slice(&[0xff, 0x3f, 0, 0]); // runs past the end
        let mut rx = EemRx::new(1514, EchoQueue::default());
        let mut got = Vec::new();
        let mut drops = RxDrops::default();
        rx.rx_fixup(&xfer, &mut |f| got.push(f[0]), &mut drops);
        assert_eq!(got, [1]);
        assert_eq!(drops.bad_frame, 2);
        assert_eq!(drops.bad_transfer, 1);
    }
}
