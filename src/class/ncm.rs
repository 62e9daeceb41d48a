//! CDC-NCM (Network Control Model): frames travel in NCM Transfer Blocks, several per bulk
//! transfer both ways. Bring-up reads GET_NTB_PARAMETERS, keeps NTB-16, tells the device
//! the IN size we accept and, where it has Get/SetMaxDatagramSize, the largest datagram
//! (wMaxSegmentSize), and builds OUT NTBs within the device's limits (dwNtbOutMaxSize,
//! wNdpOutDivisor / wNdpOutPayloadRemainder / wNdpOutAlignment, wNtbOutMaxDatagrams).
//! Reference for behaviour: the kernel's `cdc_ncm`, minus its TX timer: an NTB is closed as
//! soon as the TAP has nothing more to give (the ring decides when).

use super::{
    mac_from_function, mtu_from_segment_size, BindError, Binding, BusFacts, CdcStatus, ClassDriver,
    LinkInfo, Refused, RxDrops, RxFixup, RxMode, TxFixup, ETH_HLEN,
};
use crate::class::ecm::{round_up, set_packet_filter};
use crate::descriptor::cdc::ncm_capability;
use crate::probe::{ClassKind, NetFunction};
use std::sync::Arc;

use crate::usb::{Buffer, Control};
use crate::wire::cdc::{request, NTB_FORMAT_16};
use crate::wire::{
    self, NtbBuilder, NtbFormat, NtbInputSize, NtbParameters, NtbParams, PushError, RxLimits,
};

/// Largest NTB we ask the device to send (NTB-16 cannot exceed 64 KiB). Bigger NTBs mean
/// more frames per completion, and every completion costs us a wake-up.
pub const RX_NTB_MAX: u32 = 65_535;
/// Largest NTB we build, whatever the device would take: a 32 KiB NTB carries 21 full
/// frames; beyond that latency grows faster than throughput.
pub const TX_NTB_MAX: u32 = 32_768;
/// Smallest IN size worth running with: one NTH, one NDP and one full frame.
pub const RX_NTB_MIN: u32 = 2048;

/// The CDC-NCM class driver.
#[derive(Debug, Default)]
pub struct Ncm;

impl ClassDriver for Ncm {
    fn kind(&self) -> ClassKind {
        ClassKind::Ncm
    }

    fn bind(
        &mut self,
        ctl: &Arc<dyn Control>,
        func: &NetFunction,
        bus: BusFacts,
    ) -> Result<Binding, BindError> {
        let ctrl = func.control_interface.unwrap_or(func.data_interface);
        let raw = ctl
            .class_in(
                request::GET_NTB_PARAMETERS,
                0,
                ctrl,
                wire::NTB_PARAMETERS_LEN as u16,
            )
            .map_err(|source| BindError::Control {
                what: "GET_NTB_PARAMETERS",
                source,
            })?;
        let p = NtbParameters::parse(&raw).map_err(|e| BindError::BadReply {
            what: "GET_NTB_PARAMETERS",
            detail: e.to_string(),
        })?;
        log::debug!("NTB parameters: {p:?}");
        if p.ntb_in_max_size < RX_NTB_MIN {
            return Err(BindError::BadReply {
                what: "GET_NTB_PARAMETERS",
                detail: format!(
                    "dwNtbInMaxSize {} is too small for one full frame",
                    p.ntb_in_max_size
                ),
            });
        }
        let seed = format!(
            "ncm:{:016x}:{}:{}",
            bus.identity, func.configuration, func.data_interface
        );
        let (mac, mac_source) = mac_from_function(&**ctl, func, &seed);
        let mtu = mtu_from_segment_size(func.max_segment_size);
        let max_frame = mtu as usize + ETH_HLEN;
        let mut device_tx = p;
        device_tx.ntb_out_max_size = device_tx.ntb_out_max_size.min(TX_NTB_MAX);
        let tx = NtbParams::from_device(&device_tx, FORMAT, max_frame).map_err(|e| {
            BindError::BadReply {
                what: "GET_NTB_PARAMETERS",
                detail: e.to_string(),
            }
        })?;
        if p.supports_ntb32() {
            // Both formats offered: say which one we speak (the device's default is 16).
            if let Err(e) = ctl.class_out(request::SET_NTB_FORMAT, NTB_FORMAT_16, ctrl, &[]) {
                log::warn!("SET_NTB_FORMAT(NTB-16) failed: {e}");
            }
        }
        let rx_size = p.ntb_in_max_size.min(RX_NTB_MAX);
        if rx_size != p.ntb_in_max_size {
            let payload = NtbInputSize {
                max_size: rx_size,
                max_datagrams: (func.ncm_capabilities.unwrap_or(0)
                    & wire::cdc::NCM_CAP_NTB_INPUT_SIZE_8
                    != 0)
                    .then_some(0),
            }
            .to_bytes();
            ctl.class_out(request::SET_NTB_INPUT_SIZE, 0, ctrl, &payload)
                .map_err(|source| BindError::Control {
                    what: "SET_NTB_INPUT_SIZE",
                    source,
                })?;
        }
        if let Err(e) = set_packet_filter(&**ctl, ctrl, RxMode::default()) {
            log::debug!("{e}; going on with the device default");
        }
        if func.ncm_capabilities.unwrap_or(0) & ncm_capability::MAX_DATAGRAM_SIZE != 0 {
            agree_max_datagram_size(&**ctl, ctrl, max_frame);
        }
        let limits = RxLimits::for_mtu(mtu as usize);
        let framing = format!(
            "NTB-16, IN {} B, OUT {} B (divisor {}, remainder {}, NDP alignment {}, max {} datagrams)",
            rx_size,
            tx.max_size,
            tx.divisor,
            tx.remainder,
            tx.ndp_alignment,
            tx.max_datagrams
        );
        let tx_size = tx.max_size as usize;
        Ok(Binding {
            link: LinkInfo {
                mac,
                mac_source,
                mtu,
                rx_transfer_size: round_up(rx_size as usize, bus.max_packet),
                tx_transfer_size: tx_size,
                carrier_from_status: func.interrupt_in.is_some(),
                speed_bps: None,
                framing,
            },
            rx: Box::new(NcmRx { limits }),
            tx: Box::new(NcmTx {
                // Rather than a ZLP, one zero byte ends an NTB that would end on a packet
                // boundary short of the device's maximum (as cdc_ncm does).
                builder: NtbBuilder::new(tx).with_short_packet_padding(bus.max_packet),
                sequence: 0,
                frames: 0,
            }),
            status: Box::new(CdcStatus::default()),
        })
    }

    fn set_rx_mode(
        &mut self,
        ctl: &dyn Control,
        func: &NetFunction,
        mode: RxMode,
    ) -> Result<Option<String>, BindError> {
        let ctrl = func.control_interface.unwrap_or(func.data_interface);
        set_packet_filter(ctl, ctrl, mode).map(Some)
    }
}

/// A function that has `Get/SetMaxDatagramSize` may start with a smaller largest datagram
/// than wMaxSegmentSize (the size our MTU comes from): read it and, if it differs, set it
/// to `max_frame`, as the kernel's `cdc_ncm_set_dgram_size` does at bind. Failures are
/// logged and bring-up goes on, as there.
fn agree_max_datagram_size(ctl: &dyn Control, ctrl: u8, max_frame: usize) {
    let want = u16::try_from(max_frame).unwrap_or(u16::MAX);
    let now = match ctl.class_in(request::GET_MAX_DATAGRAM_SIZE, 0, ctrl, 2) {
        Ok(b) if b.len() == 2 => u16::from_le_bytes([b[0], b[1]]),
        Ok(b) => {
            log::warn!(
                "GET_MAX_DATAGRAM_SIZE answered {} bytes, not 2; leaving it",
                b.len()
            );
            return;
        }
        Err(e) => {
            log::warn!("GET_MAX_DATAGRAM_SIZE failed ({e}); leaving it");
            return;
        }
    };
    if now == want {
        return;
    }
    match ctl.class_out(request::SET_MAX_DATAGRAM_SIZE, 0, ctrl, &want.to_le_bytes()) {
        Ok(()) => log::info!("maximum datagram size {now} -> {want}"),
        Err(e) => log::warn!("SET_MAX_DATAGRAM_SIZE {want} (device has {now}) failed: {e}"),
    }
}

/// NCM receive: every datagram of every NDP of the NTB.
#[derive(Debug)]
pub struct NcmRx {
    limits: RxLimits,
}

impl RxFixup for NcmRx {
    fn rx_fixup(&mut self, xfer: &[u8], deliver: &mut dyn FnMut(&[u8]), drops: &mut RxDrops) {
        match wire::parse_ntb(xfer, &self.limits) {
            Ok(mut dgrams) => {
                for d in dgrams.by_ref() {
                    deliver(d);
                }
                let d = dgrams.drops();
                // A CRC-mode NDP is skipped with its datagrams: a drop like any other (the
                // lab's hostile device found these uncounted).
                drops.bad_frame += u64::from(d.datagrams() + d.bad_ndp + d.crc_ndp + d.capped);
                if let Some(e) = dgrams.last_drop() {
                    log::debug!("NTB {}: dropped datagrams, last: {e}", dgrams.sequence());
                }
            }
            Err(e) => {
                log::debug!("dropping NTB of {} bytes: {e}", xfer.len());
                drops.bad_transfer += 1;
            }
        }
    }
}

/// NCM transmit: aggregate frames into one NTB-16.
#[derive(Debug)]
pub struct NcmTx {
    builder: NtbBuilder,
    sequence: u16,
    frames: usize,
}

impl TxFixup for NcmTx {
    fn begin(&mut self, out: &mut Buffer) {
        self.builder.begin(out, self.sequence);
        self.sequence = self.sequence.wrapping_add(1);
        self.frames = 0;
    }

    fn push_with(
        &mut self,
        out: &mut Buffer,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), Refused> {
        self.builder
            .push_with(out, len, fill)
            .map_err(|e| match e {
                PushError::Full => Refused::Full,
                _ => Refused::Invalid,
            })?;
        self.frames += 1;
        Ok(())
    }

    fn finish(&mut self, out: &mut Buffer) -> bool {
        // The builder pads instead of asking for a ZLP (see `with_short_packet_padding`).
        self.builder.finish(out);
        false
    }

    fn is_empty(&self) -> bool {
        self.frames == 0
    }
}

/// The NTB format this class speaks.
pub const FORMAT: NtbFormat = NtbFormat::Ntb16;

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `rx_fixup` on one transfer; returns the frames delivered and the drops.
    fn rx(xfer: &[u8]) -> (Vec<Vec<u8>>, RxDrops) {
        let mut rx = NcmRx {
            limits: RxLimits::for_mtu(1500),
        };
        let mut frames = Vec::new();
        let mut drops = RxDrops::default();
        rx.rx_fixup(xfer, &mut |f| frames.push(f.to_vec()), &mut drops);
        (frames, drops)
    }

    /// From the lab's hostile device (`tools/lab/hostile`, case `ndp-crc`): an NTB-16 whose
    /// only NDP is in CRC mode ("NCM1"), which the host never enabled.
    #[rustfmt::skip]
    fn crc_ndp_ntb() -> Vec<u8> {
        let mut b = vec![
            b'N', b'C', b'M', b'H', // NTH16 signature
            0x0c, 0x00,             // wHeaderLength 12
            0x01, 0x00,             // wSequence
            0x58, 0x00,             // wBlockLength 88
            0x48, 0x00,             // wNdpIndex 72
        ];
        // 12..72: a 60-byte broadcast frame, EtherType 0x88b5
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&[0x02, 0x4c, 0x41, 0x42, 0x09, 0x02, 0x88, 0xb5]);
        frame.resize(60, 0);
        b.extend_from_slice(&frame);
        b.extend_from_slice(&[
            b'N', b'C', b'M', b'1', // NDP16 CRC signature
            0x10, 0x00,             // wLength 16
            0x00, 0x00,             // wNextNdpIndex
            0x0c, 0x00, 0x3c, 0x00, // datagram at 12, 60 bytes
            0x00, 0x00, 0x00, 0x00, // terminator
        ]);
        b
    }

    #[test]
    fn crc_ndp_is_skipped_and_counted() {
        let ntb = crc_ndp_ntb();
        assert_eq!(ntb.len(), 88);
        let (frames, drops) = rx(&ntb);
        assert!(frames.is_empty());
        assert_eq!(drops.bad_transfer + drops.bad_frame, 1);
        // the same NTB with a plain NDP delivers its frame
        let mut plain = ntb.clone();
        plain[75] = b'0';
        let (frames, drops) = rx(&plain);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].len(), 60);
        assert_eq!(drops.bad_transfer + drops.bad_frame, 0);
    }
}
