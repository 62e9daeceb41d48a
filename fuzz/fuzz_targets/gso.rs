//! What the TAP hands over with offloads on (virtio-net header + frame or TCP super-packet):
//! `prepare` and every segment must never panic, and segments stay within their bounds.
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
            let n = seg.segment(packet, i, &mut out);
            assert!(n <= out.len());
            total += n;
        }
        assert!(seg.count() >= 1);
        let _ = total;
    }
});
