//! The `wire` module through its public API only, as the class drivers use it: device
//! parameters → TX builder into an nusb buffer → RX decoder, and the notification reader.

use usbnetd::wire::cdc::notification;
use usbnetd::wire::{
    parse_ntb, Notification, NotificationReader, NtbBuilder, NtbFormat, NtbParameters, NtbParams,
    PushError, RxLimits,
};

/// A `GET_NTB_PARAMETERS` reply: NTB-16 and NTB-32, 32 KiB OUT, divisor 4, remainder 2,
/// NDP alignment 4, at most 16 datagrams per OUT NTB.
#[rustfmt::skip]
static REPLY: [u8; 28] = [
    0x1c, 0x00,             // wLength
    0x03, 0x00,             // bmNtbFormatsSupported
    0x00, 0x80, 0x00, 0x00, // dwNtbInMaxSize 32768
    0x04, 0x00,             // wNdpInDivisor
    0x00, 0x00,             // wNdpInPayloadRemainder
    0x04, 0x00,             // wNdpInAlignment
    0x00, 0x00,             // wReserved
    0x00, 0x80, 0x00, 0x00, // dwNtbOutMaxSize 32768
    0x04, 0x00,             // wNdpOutDivisor
    0x02, 0x00,             // wNdpOutPayloadRemainder
    0x04, 0x00,             // wNdpOutAlignment
    0x10, 0x00,             // wNtbOutMaxDatagrams 16
];

#[test]
fn device_params_to_builder_to_decoder() {
    let reply = NtbParameters::parse(&REPLY).unwrap();
    for format in [NtbFormat::Ntb16, NtbFormat::Ntb32] {
        let params = NtbParams::from_device(&reply, format, 1514).unwrap();
        let mut builder = NtbBuilder::new(params).with_short_packet_padding(512);
        let mut out = usbnetd::usb::Buffer::new(32768);
        let frames: Vec<Vec<u8>> = (0..40u8)
            .map(|i| vec![i; 60 + usize::from(i) * 30])
            .collect();
        let mut sent = 0;
        let mut seq = 0u16;
        builder.begin(&mut out, seq);
        let mut flush = |builder: &mut NtbBuilder, out: &mut usbnetd::usb::Buffer| {
            let len = builder.finish(out);
            let it = parse_ntb(&out[..len], &RxLimits::default()).unwrap();
            let got: Vec<&[u8]> = it.collect();
            assert!(got.len() <= 16);
            for g in got {
                assert_eq!(g, &frames[sent][..]);
                sent += 1;
            }
        };
        for f in &frames {
            if let Err(PushError::Full) = builder.push(&mut out, f) {
                flush(&mut builder, &mut out);
                seq += 1;
                builder.begin(&mut out, seq);
                builder.push(&mut out, f).unwrap();
            }
        }
        flush(&mut builder, &mut out);
        assert_eq!(sent, frames.len());
        assert!(
            seq >= 2,
            "{format}: wNtbOutMaxDatagrams and the size both split NTBs"
        );
    }
}

#[test]
fn link_up_after_a_lost_speed_half() {
    let mut reader = NotificationReader::new();
    let mut events = Vec::new();
    let speed = Notification::ConnectionSpeedChange {
        downlink_bps: 480_000_000,
        uplink_bps: 480_000_000,
    }
    .to_bytes(0);
    assert_eq!(speed[1], notification::CONNECTION_SPEED_CHANGE);
    reader.feed(&speed[..8], &mut events);
    reader.feed(
        &Notification::NetworkConnection { connected: true }.to_bytes(0),
        &mut events,
    );
    assert_eq!(
        events,
        [Notification::NetworkConnection { connected: true }]
    );
    assert_eq!(reader.stats().orphaned, 1);
}
