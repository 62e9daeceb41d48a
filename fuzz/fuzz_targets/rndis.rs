//! Fuzz the RNDIS message parser, the PACKET_MSG walk and the TX framer.
//!
//! The input is a message (or an IN transfer) from a hostile device, as the seeds captured
//! from the Linux gadget and QEMU are, and the lab's hostile RNDIS catalogue
//! (`hostile --dump-seeds`: `hostile-*`, lying replies and malformed transfers).
//!
//! * `Message::parse` must not panic; what it parses must emit and parse back to itself, and
//!   every buffer it returns must lie inside the input.
//! * The PACKET_MSG walk must not panic, must end, and every frame must lie inside the input.
//! * The same bytes then drive `RndisTx`: device limits from the first bytes, then frame
//!   lengths. Every transfer must respect the limits and walk back to exactly the frames
//!   pushed into it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usbnetd::class::rndis::RndisTx;
use usbnetd::class::{Refused, TxFixup};
use usbnetd::wire::rndis::{packets, Message, PACKET_HEADER_LEN};

fn inside(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        match m {
            Message::Query { info, .. }
            | Message::Set { info, .. }
            | Message::QueryCmplt { info, .. } => assert!(inside(data, info)),
            Message::IndicateStatus { buffer, .. } => assert!(inside(data, buffer)),
            Message::Packet { data: d } => assert!(inside(data, d)),
            _ => {}
        }
        let bytes = m.to_vec();
        assert_eq!(bytes.len(), m.buffer_len());
        assert_eq!(Message::parse(&bytes), Ok(m));
    }

    let mut n = 0usize;
    for p in packets(data) {
        n += 1;
        if let Ok(f) = p {
            assert!(inside(data, f));
        }
    }
    assert!(n <= data.len() / 8 + 1);

    encode(data);
});

fn encode(data: &[u8]) {
    let [a, b, c, d, rest @ ..] = data else {
        return;
    };
    let max_frame = 1514;
    let max_transfer = PACKET_HEADER_LEN + max_frame + usize::from(*a) * 64;
    let max_packets = usize::from(*b % 8) + 1;
    let align = 1usize << (c % 8);
    let max_packet = [8usize, 64, 512, 1024][usize::from(d % 4)];
    let mut tx = RndisTx::new(max_frame, max_transfer, max_packets, align, max_packet);
    let frames: Vec<Vec<u8>> = rest
        .chunks(2)
        .map(|c| {
            let len = usize::from(u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)])) % 1600;
            vec![c[0]; len]
        })
        .collect();
    let mut out = usbnetd::usb::Buffer::new(0);
    let mut pushed: Vec<&[u8]> = Vec::new();
    let check = |out: &mut usbnetd::usb::Buffer, tx: &mut RndisTx, pushed: &mut Vec<&[u8]>| {
        let zlp = tx.finish(out);
        assert!(!zlp);
        assert!(out.is_empty() || out.len() % max_packet != 0);
        assert!(out.len() <= max_transfer + 1 || pushed.len() == 1);
        assert!(pushed.len() <= max_packets);
        let back: Vec<&[u8]> = packets(out).map(|p| p.unwrap()).collect();
        assert_eq!(&back, pushed);
        out.clear();
        pushed.clear();
        tx.begin(out);
    };
    tx.begin(&mut out);
    for f in &frames {
        match tx.push(&mut out, f) {
            Ok(()) => pushed.push(f),
            Err(Refused::Invalid) => assert!(f.len() < 14 || f.len() > max_frame),
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
}
