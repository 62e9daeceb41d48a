//! CDC subset / SAFE (the Linux gadget's "geth", MDLM devices, the `cdc_subset` list): plain
//! Ethernet frames, one per bulk transfer as in ECM, and no control plane at all: no
//! requests, no notifications (carrier is on from the start). The MAC comes from the CDC
//! Ethernet descriptor's iMACAddress when the device has one, else a stable locally
//! administered one derived from the device. Reference for behaviour: the kernel's
//! `cdc_subset` (and `zaurus` for the MDLM flavour).

use super::ecm::{round_up, EcmRx, EcmTx};
use super::{
    mac_from_function, mtu_from_segment_size, BindError, Binding, BusFacts, ClassDriver, LinkEvent,
    LinkInfo, StatusFixup, ETH_HLEN,
};
use crate::probe::{ClassKind, NetFunction};
use std::sync::Arc;

use crate::usb::Control;

/// `bmDataCapabilities` bit 0 in the MDLM detail descriptor: every frame carries a CRC-32
/// trailer (the Zaurus framing).
pub const MDLM_CRC: u8 = 0x01;

/// The CDC subset class driver.
#[derive(Debug, Default)]
pub struct Subset;

/// No interrupt endpoint, nothing to report.
#[derive(Debug, Default)]
pub struct NoStatus;

impl StatusFixup for NoStatus {
    fn status(&mut self, _data: &[u8], _events: &mut Vec<LinkEvent>) {}
}

impl ClassDriver for Subset {
    fn kind(&self) -> ClassKind {
        ClassKind::Subset
    }

    fn bind(
        &mut self,
        ctl: &Arc<dyn Control>,
        func: &NetFunction,
        bus: BusFacts,
    ) -> Result<Binding, BindError> {
        if func.mdlm_data_capabilities.unwrap_or(0) & MDLM_CRC != 0 {
            return Err(BindError::BadReply {
                what: "the MDLM detail descriptor",
                detail: "this device frames with a CRC-32 trailer (Zaurus), which usbnetd \
                         does not speak yet"
                    .into(),
            });
        }
        let seed = format!(
            "subset:{:016x}:{}:{}:{}",
            bus.identity, func.configuration, func.data_interface, func.bulk_in
        );
        let (mac, mac_source) = mac_from_function(&**ctl, func, &seed);
        let mtu = mtu_from_segment_size(func.max_segment_size);
        let max_frame = mtu as usize + ETH_HLEN;
        Ok(Binding {
            link: LinkInfo {
                mac,
                mac_source,
                mtu,
                rx_transfer_size: round_up(max_frame + 1, bus.max_packet),
                tx_transfer_size: max_frame,
                carrier_from_status: false,
                speed_bps: None,
                framing: "one frame per transfer, no control".into(),
            },
            rx: Box::new(EcmRx::new(max_frame)),
            tx: Box::new(EcmTx::new(max_frame, bus.max_packet)),
            status: Box::new(NoStatus),
        })
    }
}
