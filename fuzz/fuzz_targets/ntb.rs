//! Fuzz the NTB decoder and encoder.
//!
//! The first byte picks the mode.
//!
//! * Even: the rest is an IN transfer from a hostile device. `parse_ntb` must not panic, and
//!   every datagram it yields must lie inside the transfer, after the NTH, within the length
//!   limits, disjoint from every other one, and no more of them than the cap.
//! * Odd: the rest drives an `NtbBuilder`: device TX parameters from the first bytes, then
//!   frame lengths. Every NTB it produces must respect the size, alignment and count limits
//!   and decode back to exactly the frames pushed into it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usbnetd::wire::ntb::{nth16, nth32, MIN_DATAGRAM_LEN};
use usbnetd::wire::{
    padding_for_zlp, parse_ntb, NtbBuilder, NtbFormat, NtbParams, Nth16, Nth32, PushError, RxLimits,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        decode(mode, rest);
    } else {
        encode(rest);
    }
});

fn decode(mode: u8, transfer: &[u8]) {
    let limits = RxLimits {
        max_datagram_len: if mode & 2 == 0 { 1518 } else { 65535 },
        max_datagrams: if mode & 4 == 0 {
            1024
        } else {
            usize::from(mode >> 3)
        },
        max_ndps: usize::from(mode >> 4),
    };
    let Ok(mut it) = parse_ntb(transfer, &limits) else {
        return;
    };
    let header = it.format().nth_len();
    let block_len = it.block_len();
    assert!(block_len <= transfer.len());
    let base = transfer.as_ptr() as usize;
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for d in it.by_ref() {
        let start = d.as_ptr() as usize - base;
        let end = start + d.len();
        assert!(end <= block_len);
        assert!(start >= header);
        assert!(d.len() >= MIN_DATAGRAM_LEN && d.len() <= limits.max_datagram_len);
        spans.push((start, end));
    }
    assert!(spans.len() <= limits.max_datagrams);
    assert_eq!(spans.len(), it.delivered());
    spans.sort_unstable();
    assert!(
        spans.windows(2).all(|w| w[0].1 <= w[1].0),
        "overlapping datagrams"
    );
    assert_eq!(it.next(), None);
    if let Some(e) = it.last_drop() {
        let _ = e.to_string();
    }
}

/// Reads little-endian integers off the front of the input, zero when it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
}

fn encode(data: &[u8]) {
    let mut input = Input(data);
    let flags = input.u8();
    let format = if flags & 1 == 0 {
        NtbFormat::Ntb16
    } else {
        NtbFormat::Ntb32
    };
    let raw = NtbParams {
        format,
        max_size: u32::from(input.u16()) << ((flags >> 1) & 3),
        max_datagrams: u16::from(input.u8() & 0x1f),
        divisor: input.u16() & 0x3ff,
        remainder: input.u16() & 0x3ff,
        ndp_alignment: input.u16() & 0x3ff,
    };
    let capacity = usize::from(input.u16()) << 2;
    let max_packet = (flags & 0x08 != 0).then(|| 8usize << (input.u8() & 7));
    let Ok(params) = raw.sanitize(MIN_DATAGRAM_LEN) else {
        return;
    };
    assert!(params.remainder < params.divisor);
    assert!(params.ndp_alignment >= 4 && params.ndp_alignment.is_power_of_two());

    let mut builder = NtbBuilder::new(params);
    if let Some(mp) = max_packet {
        builder = builder.with_short_packet_padding(mp);
    }
    let mut out: Vec<u8> = Vec::with_capacity(capacity);
    let cap = out.capacity();
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let mut seq = 0u16;
    let mut tag = 0u8;
    builder.begin(&mut out, seq);
    for _ in 0..200 {
        if input.0.is_empty() {
            break;
        }
        let len = usize::from(input.u16() & 0x7ff);
        tag = tag.wrapping_add(1);
        let frame: Vec<u8> = (0..len).map(|i| tag ^ (i as u8)).collect();
        match builder.push(&mut out, &frame) {
            Ok(()) => pending.push(frame),
            Err(PushError::Full) => {
                assert!(!pending.is_empty(), "Full on an empty NTB");
                let before = out.len();
                assert_eq!(builder.push(&mut out, &frame), Err(PushError::Full));
                assert_eq!(out.len(), before, "a refused push wrote");
                flush(
                    &mut builder,
                    &mut out,
                    &mut pending,
                    params,
                    cap,
                    max_packet,
                    seq,
                );
                seq = seq.wrapping_add(1);
                builder.begin(&mut out, seq);
                match builder.push(&mut out, &frame) {
                    Ok(()) => pending.push(frame),
                    Err(PushError::TooLarge { max, .. }) => assert!(frame.len() > max),
                    Err(e) => panic!("{e}"),
                }
            }
            Err(PushError::TooLarge { len, max }) => {
                assert!(pending.is_empty());
                assert!(len > max);
            }
            Err(PushError::TooShort { len }) => assert!(len < MIN_DATAGRAM_LEN),
            Err(e) => panic!("{e}"),
        }
    }
    flush(
        &mut builder,
        &mut out,
        &mut pending,
        params,
        cap,
        max_packet,
        seq,
    );
}

fn flush(
    builder: &mut NtbBuilder,
    out: &mut Vec<u8>,
    pending: &mut Vec<Vec<u8>>,
    params: NtbParams,
    cap: usize,
    max_packet: Option<usize>,
    seq: u16,
) {
    let len = builder.finish(out);
    assert_eq!(len, out.len());
    if pending.is_empty() {
        assert_eq!(len, 0);
        return;
    }
    let max_size = params.max_size as usize;
    assert!(
        len <= cap && len <= max_size,
        "NTB of {len} bytes, cap {cap}, max {max_size}"
    );
    if let Some(mp) = max_packet {
        assert!(
            !padding_for_zlp(len, mp, max_size),
            "{len} bytes still needs a ZLP"
        );
    }
    if params.max_datagrams != 0 {
        assert!(pending.len() <= usize::from(params.max_datagrams));
    }
    let ndp = match params.format {
        NtbFormat::Ntb16 => {
            let h = Nth16::new_checked(&out[..]).expect("own NTH16");
            assert_eq!(usize::from(h.header_len()), nth16::HEADER_LEN);
            usize::from(h.ndp_index())
        }
        NtbFormat::Ntb32 => {
            let h = Nth32::new_checked(&out[..]).expect("own NTH32");
            assert_eq!(usize::from(h.header_len()), nth32::HEADER_LEN);
            h.ndp_index() as usize
        }
    };
    assert_eq!(ndp % usize::from(params.ndp_alignment), 0);
    let limits = RxLimits {
        max_datagram_len: usize::MAX,
        max_datagrams: usize::MAX,
        max_ndps: 1,
    };
    let mut it = parse_ntb(out, &limits).expect("own NTB decodes");
    assert_eq!(it.sequence(), seq);
    let base = out.as_ptr() as usize;
    let mut n = 0;
    for (got, want) in it.by_ref().zip(pending.iter()) {
        let off = got.as_ptr() as usize - base;
        assert_eq!(
            off % usize::from(params.divisor),
            usize::from(params.remainder)
        );
        assert_eq!(got, &want[..]);
        n += 1;
    }
    assert_eq!(n, pending.len());
    assert_eq!(it.next(), None);
    assert!(it.drops().is_clean(), "{:?}", it.last_drop());
    pending.clear();
}
