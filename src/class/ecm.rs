//! CDC-ECM (Ethernet Control Model): one Ethernet frame per bulk transfer, a ZLP when a
//! frame fills its last packet exactly, MAC from the iMACAddress string, link state from
//! NETWORK_CONNECTION notifications. Reference for behaviour: the kernel's `cdc_ether`.

use super::{
    mac_from_function, mtu_from_segment_size, BindError, Binding, BusFacts, CdcStatus, ClassDriver,
    LinkInfo, Refused, RxDrops, RxFixup, RxMode, TxFixup, ETH_HLEN,
};
use crate::probe::{ClassKind, NetFunction};
use std::sync::Arc;

use crate::usb::{Buffer, Control};
use crate::wire::cdc::{packet_filter, request};

/// The CDC-ECM class driver.
#[derive(Debug, Default)]
pub struct Ecm;

/// The CDC packet filter (SET_ETHERNET_PACKET_FILTER's wValue) for `mode`: our own
/// address, broadcast and all multicast (we program no multicast list, so IPv6 neighbour
/// discovery needs all of it), and every frame while the interface is promiscuous. The
/// same bits as the kernel's `usbnet_cdc_update_filter`, which ECM and NCM share.
pub fn packet_filter_for(mode: RxMode) -> u16 {
    let base = packet_filter::DIRECTED | packet_filter::BROADCAST | packet_filter::ALL_MULTICAST;
    if mode.promiscuous {
        base | packet_filter::PROMISCUOUS
    } else {
        base
    }
}

/// Send SET_ETHERNET_PACKET_FILTER for `mode` to the control interface `ctrl`; returns
/// the request as the log names it.
pub fn set_packet_filter(ctl: &dyn Control, ctrl: u8, mode: RxMode) -> Result<String, BindError> {
    let filter = packet_filter_for(mode);
    ctl.class_out(request::SET_ETHERNET_PACKET_FILTER, filter, ctrl, &[])
        .map_err(|source| BindError::Control {
            what: "SET_ETHERNET_PACKET_FILTER",
            source,
        })?;
    Ok(format!("SET_ETHERNET_PACKET_FILTER {filter:#06x}"))
}

/// Round `n` up to a non-zero multiple of `m`.
pub fn round_up(n: usize, m: usize) -> usize {
    let m = m.max(1);
    n.div_ceil(m).max(1) * m
}

impl ClassDriver for Ecm {
    fn kind(&self) -> ClassKind {
        ClassKind::Ecm
    }

    fn bind(
        &mut self,
        ctl: &Arc<dyn Control>,
        func: &NetFunction,
        bus: BusFacts,
    ) -> Result<Binding, BindError> {
        let seed = format!(
            "ecm:{:016x}:{}:{}",
            bus.identity, func.configuration, func.data_interface
        );
        let (mac, mac_source) = mac_from_function(&**ctl, func, &seed);
        let mtu = mtu_from_segment_size(func.max_segment_size);
        let max_frame = mtu as usize + ETH_HLEN;
        if let Some(ctrl) = func.control_interface {
            // Some devices stall this request; the kernel ignores that too.
            if let Err(e) = set_packet_filter(&**ctl, ctrl, RxMode::default()) {
                log::warn!("{e}; going on with the device default");
            }
        }
        // One frame per transfer: ask for a little more than the largest frame, rounded to
        // whole packets, so every frame ends with a short packet or a ZLP.
        let rx_transfer_size = round_up(max_frame + 1, bus.max_packet);
        Ok(Binding {
            link: LinkInfo {
                mac,
                mac_source,
                mtu,
                rx_transfer_size,
                tx_transfer_size: max_frame,
                carrier_from_status: func.interrupt_in.is_some(),
                speed_bps: None,
                framing: "one frame per transfer".into(),
            },
            rx: Box::new(EcmRx::new(max_frame)),
            tx: Box::new(EcmTx::new(max_frame, bus.max_packet)),
            status: Box::new(CdcStatus::default()),
        })
    }

    fn set_rx_mode(
        &mut self,
        ctl: &dyn Control,
        func: &NetFunction,
        mode: RxMode,
    ) -> Result<Option<String>, BindError> {
        func.control_interface
            .map(|ctrl| set_packet_filter(ctl, ctrl, mode))
            .transpose()
    }
}

/// ECM receive: the transfer is the frame.
#[derive(Debug)]
pub struct EcmRx {
    max_frame: usize,
}

impl EcmRx {
    /// Frames of up to `max_frame` bytes (Ethernet header included).
    pub fn new(max_frame: usize) -> EcmRx {
        EcmRx { max_frame }
    }
}

impl RxFixup for EcmRx {
    fn rx_fixup(&mut self, xfer: &[u8], deliver: &mut dyn FnMut(&[u8]), drops: &mut RxDrops) {
        if xfer.len() < ETH_HLEN || xfer.len() > self.max_frame {
            drops.bad_frame += 1;
            return;
        }
        deliver(xfer);
    }
}

/// ECM transmit: one frame per transfer.
#[derive(Debug)]
pub struct EcmTx {
    max_frame: usize,
    max_packet: usize,
    has_frame: bool,
}

impl EcmTx {
    /// Frames of up to `max_frame` bytes; a ZLP after a frame that fills its last
    /// `max_packet`-byte packet.
    pub fn new(max_frame: usize, max_packet: usize) -> EcmTx {
        EcmTx {
            max_frame,
            max_packet: max_packet.max(1),
            has_frame: false,
        }
    }
}

impl TxFixup for EcmTx {
    fn begin(&mut self, _out: &mut Buffer) {
        self.has_frame = false;
    }

    fn push_with(
        &mut self,
        out: &mut Buffer,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), Refused> {
        if len > self.max_frame || len < ETH_HLEN {
            return Err(Refused::Invalid);
        }
        if self.has_frame {
            return Err(Refused::Full);
        }
        out.extend_with(len, fill);
        self.has_frame = true;
        Ok(())
    }

    fn finish(&mut self, out: &mut Buffer) -> bool {
        !out.is_empty() && out.len() % self.max_packet == 0
    }

    fn is_empty(&self) -> bool {
        !self.has_frame
    }

    fn is_full(&self) -> bool {
        self.has_frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_one_frame_per_transfer_with_zlp_on_packet_boundary() {
        let mut tx = EcmTx {
            max_frame: 1514,
            max_packet: 512,
            has_frame: false,
        };
        let mut out = Buffer::new(0);
        tx.begin(&mut out);
        assert!(tx.is_empty());
        assert!(!tx.is_full());
        tx.push(&mut out, &[0xaa; 1024]).unwrap();
        assert!(
            tx.is_full(),
            "one frame fills an ECM transfer: submit it at once"
        );
        assert_eq!(tx.push(&mut out, &[0xbb; 60]), Err(Refused::Full));
        assert_eq!(out.len(), 1024);
        assert!(tx.finish(&mut out), "1024 = 2 x 512 needs a ZLP");
        out.clear();
        tx.begin(&mut out);
        assert!(!tx.is_full(), "a new transfer takes a frame again");
        tx.push(&mut out, &[0xaa; 1000]).unwrap();
        assert!(!tx.finish(&mut out));
    }

    #[test]
    fn tx_refuses_oversized_frame() {
        let mut tx = EcmTx {
            max_frame: 1514,
            max_packet: 512,
            has_frame: false,
        };
        let mut out = Buffer::new(0);
        tx.begin(&mut out);
        assert_eq!(tx.push(&mut out, &[0; 1515]), Err(Refused::Invalid));
        assert_eq!(tx.push(&mut out, &[0; 13]), Err(Refused::Invalid));
        assert!(out.is_empty());
    }

    #[test]
    fn rx_drops_runts_and_giants() {
        let mut rx = EcmRx { max_frame: 1514 };
        let mut drops = RxDrops::default();
        let mut got = Vec::new();
        for len in [0usize, 13, 14, 1514, 1515] {
            rx.rx_fixup(&vec![1u8; len], &mut |f| got.push(f.len()), &mut drops);
        }
        assert_eq!(got, vec![14, 1514]);
        assert_eq!(drops.bad_frame, 3);
    }

    #[test]
    fn round_up_to_packets() {
        assert_eq!(round_up(1515, 512), 1536);
        assert_eq!(round_up(1515, 64), 1536);
        assert_eq!(round_up(0, 512), 512);
        assert_eq!(round_up(5, 0), 5);
    }
}
