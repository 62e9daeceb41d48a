//! Fuzz the EEM packet walk, the RX hook and the TX framer.
//!
//! The input is an IN transfer from a hostile device, as the seeds captured from the Linux
//! gadget are.
//!
//! * The walk must not panic, must end, and yield at most one packet per header's worth of
//!   input; every frame must lie inside the input.
//! * `EemRx` must not panic; frames it delivers lie within the size limits.
//! * The same bytes then drive `EemTx` (frame lengths; a pending Echo from the RX hook goes
//!   out first): every transfer must avoid ending on a wMaxPacketSize boundary and walk back
//!   to exactly the frames pushed into it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usbnetd::class::eem::{EchoQueue, EemRx, EemTx};
use usbnetd::class::{Refused, RxDrops, RxFixup, TxFixup};
use usbnetd::wire::eem::{packets, EemPacket};

fn inside(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}

fuzz_target!(|data: &[u8]| {
    let mut n = 0usize;
    for p in packets(data) {
        n += 1;
        match p {
            Ok(EemPacket::Data { frame, .. }) => assert!(inside(data, frame)),
            Ok(EemPacket::Echo(d)) | Ok(EemPacket::EchoResponse(d)) => assert!(inside(data, d)),
            _ => {}
        }
    }
    assert!(n <= data.len() / 2 + 1);

    let echos = EchoQueue::default();
    let mut rx = EemRx::new(1514, echos.clone());
    let mut drops = RxDrops::default();
    rx.rx_fixup(
        data,
        &mut |f| assert!((14..=1514).contains(&f.len())),
        &mut drops,
    );

    let Some((&mps_sel, rest)) = data.split_first() else {
        return;
    };
    let max_packet = [8usize, 64, 512, 1024][usize::from(mps_sel % 4)];
    let mut tx = EemTx::new(1514, 1520, max_packet, echos);
    let frames: Vec<Vec<u8>> = rest
        .chunks(2)
        .map(|c| {
            let len = usize::from(u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)])) % 1600;
            vec![c[0]; len]
        })
        .collect();
    let mut out = usbnetd::usb::Buffer::new(0);
    let mut pushed: Vec<&[u8]> = Vec::new();
    let check = |out: &mut usbnetd::usb::Buffer, tx: &mut EemTx, pushed: &mut Vec<&[u8]>| {
        assert!(!tx.finish(out));
        assert!(out.len() % max_packet != 0);
        let back: Vec<&[u8]> = packets(out)
            .map(|p| p.unwrap())
            .filter_map(|p| match p {
                EemPacket::Data { frame, .. } => Some(frame),
                _ => None,
            })
            .collect();
        assert_eq!(&back, pushed);
        out.clear();
        pushed.clear();
        tx.begin(out);
    };
    tx.begin(&mut out);
    for f in &frames {
        match tx.push(&mut out, f) {
            Ok(()) => pushed.push(f),
            Err(Refused::Invalid) => assert!(f.len() < 14 || f.len() > 1514),
            Err(Refused::Full) => {
                assert!(!tx.is_empty());
                check(&mut out, &mut tx, &mut pushed);
                tx.push(&mut out, f).unwrap();
                pushed.push(f);
            }
        }
    }
    if !tx.is_empty() {
        check(&mut out, &mut tx, &mut pushed);
    }
});
