//! What the TAP hands over with offloads on (virtio-net header + frame or TCP super-packet):
//! `prepare` and every segment must never panic, and each segment is exactly as long as
//! `segment_len` said (the room the ring reserves for it in the transfer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use usbnetd::gso::{prepare, Prepared};
use usbnetd::wire::vnet;

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    if let Ok(Prepared::Segments(seg)) = prepare(&mut buf) {
        let packet = &buf[vnet::LEN..];
        let mut out = vec![0u8; seg.max_segment_len()];
        let mut total = 0usize;
        for i in 0..seg.count().min(100_000) {
            // As the ring does it: into exactly the room `segment_len` asked for.
            let len = seg.segment_len(i);
            assert!(len <= out.len());
            let n = seg.segment(packet, i, &mut out[..len]);
            assert_eq!(n, len);
            total += n;
        }
        assert!(seg.count() >= 1);
        let _ = total;
    }
});
