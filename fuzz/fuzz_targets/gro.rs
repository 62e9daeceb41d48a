//! Received frames (device bytes) through the coalescer: no panic, every write within
//! bounds, and no more payload out than in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usbnetd::gro::Gro;

fuzz_target!(|data: &[u8]| {
    // Frames: a length byte pair, then that many bytes.
    let mut g = Gro::new();
    let mut rest = data;
    let mut bytes_in = 0usize;
    let mut bytes_out = 0usize;
    while rest.len() >= 2 {
        let n = (usize::from(rest[0]) << 8 | usize::from(rest[1])).min(rest.len() - 2);
        let frame = &rest[2..2 + n];
        rest = &rest[2 + n..];
        bytes_in += frame.len();
        g.push(frame, &mut |h, p| {
            assert_eq!(h.len(), 10);
            bytes_out += p.len();
        });
    }
    g.flush(&mut |_, p| bytes_out += p.len());
    assert!(bytes_out <= bytes_in);
});
