//! Fuzz the NTB parameter path: a `GET_NTB_PARAMETERS` reply (or a `GET_NTB_INPUT_SIZE`
//! reply) straight from a hostile device, through `NtbParams::from_device`, to the OUT NTBs
//! built with the result.
//!
//! Invariants: parsing never panics and fails only on a short reply; whatever the device
//! said, the sanitized parameters are usable (divisor ≥ 1, remainder < divisor, NDP alignment
//! a power of two ≥ 4, size within the format), or the bind is refused with a typed error;
//! an accepted set carries one full-size frame in an NTB no larger than `dwNtbOutMaxSize`
//! (never a silently dead interface), and that NTB decodes back to exactly the frame.
//!
//! Seeds: `fuzz/seeds/ntb_params/` (the lab's hostile device, `hostile --dump-seeds`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use usbnetd::wire::{
    parse_ntb, NtbBuilder, NtbFormat, NtbInputSize, NtbParameters, NtbParametersError, NtbParams,
    RxLimits, NTB_PARAMETERS_LEN,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(size) = NtbInputSize::parse(data) {
        assert!(data.len() >= 4);
        assert_eq!(size.max_datagrams.is_some(), data.len() >= 8);
    }
    let reply = match NtbParameters::parse(data) {
        Ok(p) => p,
        Err(NtbParametersError::Short { len, need }) => {
            assert_eq!(len, data.len());
            assert!(len < need && need == NTB_PARAMETERS_LEN);
            return;
        }
        Err(e) => panic!("unexpected error {e}"),
    };
    // The frame sizes a bind asks for: the smallest Ethernet frame, MTU 1500 with and
    // without a VLAN tag, and one picked by the input.
    let picked = data
        .get(NTB_PARAMETERS_LEN..NTB_PARAMETERS_LEN + 2)
        .map_or(1514, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    for format in [NtbFormat::Ntb16, NtbFormat::Ntb32] {
        for frame_len in [14, 1514, 1518, picked.max(14)] {
            let Ok(p) = NtbParams::from_device(&reply, format, frame_len) else {
                continue;
            };
            assert!(format == NtbFormat::Ntb16 || reply.supports_ntb32());
            assert!(p.divisor >= 1 && p.remainder < p.divisor);
            assert!(p.ndp_alignment >= 4 && p.ndp_alignment.is_power_of_two());
            assert!(p.max_size <= reply.ntb_out_max_size);
            assert!(p.max_size as usize <= format.max_block_len());
            assert!(p.ntb_len_for_one(frame_len) <= p.max_size as usize);
            one_frame(p, frame_len);
        }
    }
});

/// Builds an NTB with one `frame_len`-byte frame and decodes it back.
fn one_frame(p: NtbParams, frame_len: usize) {
    let frame: Vec<u8> = (0..frame_len).map(|i| i as u8).collect();
    // The builder keeps NTBs within the buffer too: no need for a 4 GiB NTB-32 buffer, only
    // for what one frame needs (plus the short-packet byte). A fixed cap was too small for a
    // 64 KiB frame after a 64 KiB payload remainder.
    let need = p.ntb_len_for_one(frame_len).saturating_add(1);
    let mut out: Vec<u8> = Vec::with_capacity((p.max_size as usize).min(need));
    let mut b = NtbBuilder::new(p).with_short_packet_padding(512);
    b.begin(&mut out, 7);
    b.push(&mut out, &frame)
        .expect("an accepted parameter set carries one full frame");
    let len = b.finish(&mut out);
    assert!(len <= p.max_size as usize, "{len} > {}", p.max_size);
    let limits = RxLimits {
        max_datagram_len: usize::MAX,
        max_datagrams: usize::MAX,
        max_ndps: 1,
    };
    let mut it = parse_ntb(&out, &limits).expect("own NTB decodes");
    assert_eq!(it.next(), Some(&frame[..]));
    assert_eq!(it.next(), None);
}
