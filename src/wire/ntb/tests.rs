//! Unit tests of the NTB views, decoder and encoder.

use super::tests_support::GADGET_NTB16;
use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// An NTB-32 as the Linux NCM gadget sends it in NTB-32 mode: one 42-byte frame at 16, the
/// NDP32 ("ncm0") at 60 with its `wLength` counting the zero entry.
#[rustfmt::skip]
static GADGET_NTB32: [u8; 92] = [
    // NTH32 @0
    0x6e, 0x63, 0x6d, 0x68, // dwSignature "ncmh"
    0x10, 0x00,             // wHeaderLength 16
    0x07, 0x00,             // wSequence 7
    0x5c, 0x00, 0x00, 0x00, // dwBlockLength 92
    0x3c, 0x00, 0x00, 0x00, // dwNdpIndex 60
    // datagram 0 @16, 42 bytes: ARP request
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x06,
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
    0xc0, 0xa8, 0x07, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0x07, 0x01,
    0x00, 0x00,             // pad to 60
    // NDP32 @60
    0x6e, 0x63, 0x6d, 0x30, // dwSignature "ncm0"
    0x20, 0x00,             // wLength 32 = 16 + 2 entries
    0x00, 0x00,             // wReserved6
    0x00, 0x00, 0x00, 0x00, // dwNextNdpIndex 0
    0x00, 0x00, 0x00, 0x00, // dwReserved12
    0x10, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, // datagram 0: index 16, length 42
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // terminator
];

fn collect(bytes: &[u8], limits: &RxLimits) -> (Vec<Vec<u8>>, DropCounts, Option<NtbError>) {
    let mut it = parse_ntb(bytes, limits).expect("NTB accepted");
    let frames = it.by_ref().map(<[u8]>::to_vec).collect();
    (frames, it.drops(), it.last_drop())
}

fn err(bytes: &[u8]) -> NtbError {
    parse_ntb(bytes, &RxLimits::default()).unwrap_err()
}

/// A zeroed NTB-16 of `len` bytes with a valid NTH (block = len) pointing at `ndp`.
fn ntb16(len: usize, ndp: u16) -> Vec<u8> {
    let mut b = vec![0u8; len];
    let mut h = Nth16::new_unchecked(&mut b[..]);
    h.set_signature(NTH16_SIGNATURE);
    h.set_header_len(12);
    h.set_block_len(len as u16);
    h.set_ndp_index(ndp);
    b
}

/// Writes an NDP16 at `at` listing `entries` exactly (the caller adds the terminator) with
/// `wLength` = 8 + 4 × entries.
fn put_ndp16(b: &mut [u8], at: usize, next: u16, entries: &[(u16, u16)]) {
    let mut n = Ndp16::new_unchecked(&mut b[..], at);
    n.set_signature(NDP16_SIGNATURE);
    n.set_length((8 + 4 * entries.len()) as u16);
    n.set_next_index(next);
    for (i, &(idx, len)) in entries.iter().enumerate() {
        n.set_entry(i, idx, len);
    }
}

/// Fills `b[at..at+len]` with a recognisable frame.
fn put_frame(b: &mut [u8], at: usize, len: usize, tag: u8) {
    for (i, x) in b[at..at + len].iter_mut().enumerate() {
        *x = tag ^ (i as u8);
    }
}

fn frame(len: usize, tag: u8) -> Vec<u8> {
    (0..len).map(|i| tag ^ (i as u8)).collect()
}

fn params(format: NtbFormat, max_size: u32, div: u16, rem: u16, align: u16) -> NtbParams {
    NtbParams {
        format,
        max_size,
        max_datagrams: 0,
        divisor: div,
        remainder: rem,
        ndp_alignment: align,
    }
}

// ---------------------------------------------------------------------------------------------
// Real layouts
// ---------------------------------------------------------------------------------------------

#[test]
fn gadget_ntb16_deconstruct() {
    let nth = Nth16::new_checked(&GADGET_NTB16[..]).unwrap();
    assert_eq!(nth.signature(), NTH16_SIGNATURE);
    assert_eq!(nth.header_len(), 12);
    assert_eq!(nth.sequence(), 0);
    assert_eq!(nth.block_len(), 120);
    assert_eq!(nth.ndp_index(), 100);
    let ndp = Ndp16::new_checked(nth.block(), 100).unwrap();
    assert!(!ndp.is_crc());
    assert_eq!(ndp.length(), 20);
    assert_eq!(ndp.next_index(), 0);
    assert_eq!(ndp.entry_count(), 3);
    assert_eq!(ndp.entry(0), Some((12, 42)));
    assert_eq!(ndp.entry(1), Some((56, 42)));
    assert_eq!(ndp.entry(2), Some((0, 0)));
    assert_eq!(ndp.entry(3), None);

    let mut it = parse_ntb(&GADGET_NTB16, &RxLimits::default()).unwrap();
    assert_eq!(it.format(), NtbFormat::Ntb16);
    assert_eq!(it.block_len(), 120);
    assert_eq!(it.next(), Some(&GADGET_NTB16[12..54]));
    assert_eq!(it.next(), Some(&GADGET_NTB16[56..98]));
    assert_eq!(it.next(), None);
    assert_eq!(it.next(), None);
    assert!(it.drops().is_clean());
    assert_eq!(it.delivered(), 2);
    // An ARP request then an ARP reply.
    assert_eq!(&GADGET_NTB16[24..26], &[0x08, 0x06]);
    assert_eq!(&GADGET_NTB16[68..70], &[0x08, 0x06]);
}

#[test]
fn gadget_ntb16_construct() {
    // The same NTB from our builder with the gadget's parameters, into a reused buffer
    // that still holds junk.
    let mut out = crate::usb::Buffer::new(16384);
    out.extend_fill(16384, 0xa5);
    let mut b = NtbBuilder::new(params(NtbFormat::Ntb16, 16384, 4, 0, 4));
    b.begin(&mut out, 0);
    b.push(&mut out, &GADGET_NTB16[12..54]).unwrap();
    b.push(&mut out, &GADGET_NTB16[56..98]).unwrap();
    assert_eq!(b.finish(&mut out), 120);
    assert_eq!(&out[..], &GADGET_NTB16[..]);
}

#[test]
fn gadget_ntb32_deconstruct_and_construct() {
    let nth = Nth32::new_checked(&GADGET_NTB32[..]).unwrap();
    assert_eq!(
        (
            nth.header_len(),
            nth.sequence(),
            nth.block_len(),
            nth.ndp_index()
        ),
        (16, 7, 92, 60)
    );
    let ndp = Ndp32::new_checked(nth.block(), 60).unwrap();
    assert_eq!(
        (ndp.length(), ndp.next_index(), ndp.entry_count()),
        (32, 0, 2)
    );
    assert_eq!(ndp.entry(0), Some((16, 42)));
    assert_eq!(ndp.entry(1), Some((0, 0)));

    let (frames, drops, _) = collect(&GADGET_NTB32, &RxLimits::default());
    assert_eq!(frames, vec![GADGET_NTB32[16..58].to_vec()]);
    assert!(drops.is_clean());

    let mut out = Vec::with_capacity(4096);
    let mut b = NtbBuilder::new(params(NtbFormat::Ntb32, 4096, 4, 0, 4));
    b.begin(&mut out, 7);
    b.push(&mut out, &GADGET_NTB32[16..58]).unwrap();
    assert_eq!(b.finish(&mut out), 92);
    assert_eq!(out, GADGET_NTB32);
}

// ---------------------------------------------------------------------------------------------
// One negative test per length and index field
// ---------------------------------------------------------------------------------------------

fn corrupt(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = GADGET_NTB16.to_vec();
    f(&mut b);
    b
}

#[test]
fn truncated_transfer() {
    assert_eq!(err(&[]), NtbError::Truncated { len: 0, need: 12 });
    assert_eq!(
        err(&GADGET_NTB16[..10]),
        NtbError::Truncated { len: 10, need: 12 }
    );
    assert_eq!(
        err(&GADGET_NTB32[..15]),
        NtbError::Truncated { len: 15, need: 16 }
    );
}

#[test]
fn bad_nth_signature() {
    let b = corrupt(|b| b[3] = b'X');
    assert_eq!(err(&b), NtbError::BadSignature(0x584D_434E));
}

#[test]
fn bad_header_length() {
    let b = corrupt(|b| b[4] = 16);
    assert_eq!(
        err(&b),
        NtbError::BadHeaderLength {
            got: 16,
            expected: 12
        }
    );
    let mut b = GADGET_NTB32.to_vec();
    b[4] = 12;
    assert_eq!(
        err(&b),
        NtbError::BadHeaderLength {
            got: 12,
            expected: 16
        }
    );
}

#[test]
fn block_length_longer_than_transfer() {
    let b = corrupt(|b| Nth16::new_unchecked(&mut b[..]).set_block_len(121));
    assert_eq!(
        err(&b),
        NtbError::BlockTooLong {
            block: 121,
            transfer: 120
        }
    );
    let mut b = GADGET_NTB32.to_vec();
    Nth32::new_unchecked(&mut b[..]).set_block_len(u32::MAX);
    assert_eq!(
        err(&b),
        NtbError::BlockTooLong {
            block: u32::MAX as usize,
            transfer: 92
        }
    );
}

#[test]
fn block_length_shorter_than_header() {
    let b = corrupt(|b| Nth16::new_unchecked(&mut b[..]).set_block_len(11));
    assert_eq!(
        err(&b),
        NtbError::BlockTooShort {
            block: 11,
            header: 12
        }
    );
}

#[test]
fn block_length_cuts_the_ndp() {
    let b = corrupt(|b| Nth16::new_unchecked(&mut b[..]).set_block_len(116));
    assert_eq!(
        err(&b),
        NtbError::BadNdpLength {
            index: 100,
            length: 20,
            room: 16
        }
    );
    let b = corrupt(|b| Nth16::new_unchecked(&mut b[..]).set_block_len(104));
    assert_eq!(
        err(&b),
        NtbError::NdpOutOfRange {
            index: 100,
            block: 104
        }
    );
}

#[test]
fn block_length_cuts_a_datagram() {
    // Trailing bytes after the block are ignored; a datagram crossing the block end is not
    // delivered.
    let mut b = ntb16(200, 12);
    put_ndp16(&mut b, 12, 0, &[(40, 60), (100, 60), (0, 0)]);
    Nth16::new_unchecked(&mut b[..]).set_block_len(150);
    let (frames, drops, last) = collect(&b, &RxLimits::default());
    assert_eq!(frames.len(), 1);
    assert_eq!(drops.bad_datagram, 1);
    assert_eq!(
        last,
        Some(NtbError::DatagramOutOfRange {
            index: 100,
            len: 60,
            header: 12,
            block: 150
        })
    );
}

#[test]
fn block_length_zero_means_the_whole_transfer() {
    let b = corrupt(|b| Nth16::new_unchecked(&mut b[..]).set_block_len(0));
    let (frames, drops, _) = collect(&b, &RxLimits::default());
    assert_eq!(frames.len(), 2);
    assert!(drops.is_clean());
    let mut b = GADGET_NTB32.to_vec();
    Nth32::new_unchecked(&mut b[..]).set_block_len(0);
    assert_eq!(collect(&b, &RxLimits::default()).0.len(), 1);
}

#[test]
fn ndp_index_out_of_range() {
    for (index, e) in [
        (
            0,
            NtbError::NdpOutOfRange {
                index: 0,
                block: 120,
            },
        ),
        (
            8,
            NtbError::NdpOutOfRange {
                index: 8,
                block: 120,
            },
        ),
        (
            116,
            NtbError::NdpOutOfRange {
                index: 116,
                block: 120,
            },
        ),
        (
            0xfffc,
            NtbError::NdpOutOfRange {
                index: 0xfffc,
                block: 120,
            },
        ),
        (102, NtbError::NdpMisaligned { index: 102 }),
    ] {
        let b = corrupt(|b| Nth16::new_unchecked(&mut b[..]).set_ndp_index(index));
        assert_eq!(err(&b), e, "wNdpIndex {index}");
    }
    let mut b = GADGET_NTB32.to_vec();
    Nth32::new_unchecked(&mut b[..]).set_ndp_index(u32::MAX - 3);
    assert_eq!(
        err(&b),
        NtbError::NdpOutOfRange {
            index: u32::MAX as usize - 3,
            block: 92
        }
    );
}

#[test]
fn bad_ndp_signature() {
    let b = corrupt(|b| b[103] = b'2');
    assert_eq!(
        err(&b),
        NtbError::BadNdpSignature {
            index: 100,
            signature: 0x324D_434E
        }
    );
    // An NTB-32 signature in an NTB-16.
    let b = corrupt(|b| b[100..104].copy_from_slice(b"ncm0"));
    assert!(matches!(err(&b), NtbError::BadNdpSignature { .. }));
}

#[test]
fn bad_ndp_length() {
    for (wlength, room) in [(0u16, 20), (12, 20), (18, 20), (24, 20), (0xfffc, 20)] {
        let b = corrupt(|b| Ndp16::new_unchecked(&mut b[..], 100).set_length(wlength));
        assert_eq!(
            err(&b),
            NtbError::BadNdpLength {
                index: 100,
                length: usize::from(wlength),
                room
            },
            "wLength {wlength}"
        );
    }
    // NDP32: at least 32 and a multiple of 8.
    for wlength in [24u16, 36] {
        let mut b = GADGET_NTB32.to_vec();
        Ndp32::new_unchecked(&mut b[..], 60).set_length(wlength);
        assert!(
            matches!(err(&b), NtbError::BadNdpLength { .. }),
            "wLength {wlength}"
        );
    }
}

#[test]
fn bad_datagram_index_and_length() {
    let limits = RxLimits::for_mtu(1500);
    let cases: [((u16, u16), NtbError); 6] = [
        (
            (4, 42),
            NtbError::DatagramOutOfRange {
                index: 4,
                len: 42,
                header: 12,
                block: 120,
            },
        ),
        (
            (12, 109),
            NtbError::DatagramOutOfRange {
                index: 12,
                len: 109,
                header: 12,
                block: 120,
            },
        ),
        (
            (0xffff, 0xffff),
            NtbError::DatagramOutOfRange {
                index: 0xffff,
                len: 0xffff,
                header: 12,
                block: 120,
            },
        ),
        ((12, 13), NtbError::DatagramTooShort { index: 12, len: 13 }),
        ((12, 90), NtbError::DatagramOverlap { index: 12, len: 90 }), // runs into the NDP
        ((96, 20), NtbError::DatagramOverlap { index: 96, len: 20 }),
    ];
    for ((idx, len), e) in cases {
        let b = corrupt(|b| Ndp16::new_unchecked(&mut b[..], 100).set_entry(0, idx, len));
        let (frames, drops, last) = collect(&b, &limits);
        assert_eq!(last, Some(e), "entry ({idx}, {len})");
        assert_eq!(
            frames,
            vec![GADGET_NTB16[56..98].to_vec()],
            "the other datagram survives"
        );
        assert_eq!(drops.datagrams(), 1);
    }
    let tight = RxLimits {
        max_datagram_len: 41,
        ..limits
    };
    let (frames, drops, last) = collect(&GADGET_NTB16, &tight);
    assert!(frames.is_empty());
    assert_eq!(drops.bad_datagram, 2);
    assert_eq!(
        last,
        Some(NtbError::DatagramTooLong {
            index: 56,
            len: 42,
            max: 41
        })
    );
}

// ---------------------------------------------------------------------------------------------
// The kernel's failures, as named cases
// ---------------------------------------------------------------------------------------------

/// `cdc_ncm_rx_verify_ndp16` checked `sizeof(ndp16) + n * sizeof(dpe16) <= skb->len`, as if
/// the NDP were at offset 0, so an NDP near the end of the block could list entries past it.
#[test]
fn ndp_at_large_index_with_many_entries_is_checked_where_it_is() {
    // 4000-byte block; NDP at 3600 claims 200 entries (808 bytes): fits "from offset 0", not
    // from 3600.
    let mut b = ntb16(4000, 3600);
    Ndp16::new_unchecked(&mut b[..], 3600).set_signature(NDP16_SIGNATURE);
    Ndp16::new_unchecked(&mut b[..], 3600).set_length(8 + 200 * 4);
    assert_eq!(
        err(&b),
        NtbError::BadNdpLength {
            index: 3600,
            length: 808,
            room: 400
        }
    );

    // The same NDP with a wLength that exactly fills the block is fine, and all 98 entries
    // (the last being the terminator) are read from where the NDP is.
    let mut entries: Vec<(u16, u16)> = (0..97).map(|i| (12 + i * 36, 36)).collect();
    entries.push((0, 0));
    let mut b = ntb16(4000, 3600);
    put_ndp16(&mut b, 3600, 0, &entries);
    assert_eq!(Ndp16::new_checked(&b[..], 3600).unwrap().entry_count(), 98);
    let (frames, drops, _) = collect(&b, &RxLimits::default());
    assert_eq!(frames.len(), 97);
    assert!(drops.is_clean());
}

/// The kernel delivered one frame 51 times from an NDP whose `wNextNdpIndex` pointed at
/// itself.
#[test]
fn self_pointing_ndp_is_walked_once() {
    let b = corrupt(|b| Ndp16::new_unchecked(&mut b[..], 100).set_next_index(100));
    let (frames, drops, last) = collect(&b, &RxLimits::default());
    assert_eq!(frames.len(), 2);
    assert_eq!(drops.bad_ndp, 1);
    assert_eq!(last, Some(NtbError::NdpLoop { index: 100 }));
}

#[test]
fn ndp_chain_pointing_back_is_cut() {
    // NDP A @12 → NDP B @32 → A again.
    let mut b = ntb16(300, 12);
    put_ndp16(&mut b, 12, 32, &[(100, 50), (0, 0)]);
    put_ndp16(&mut b, 32, 12, &[(160, 50), (0, 0)]);
    put_frame(&mut b, 100, 50, 1);
    put_frame(&mut b, 160, 50, 2);
    let (frames, drops, last) = collect(&b, &RxLimits::default());
    assert_eq!(frames, vec![frame(50, 1), frame(50, 2)]);
    assert_eq!(drops.bad_ndp, 1);
    assert_eq!(last, Some(NtbError::NdpLoop { index: 12 }));
}

#[test]
fn chained_ndps_are_all_walked() {
    // Two NDPs, the second before the first, plus a datagram listed after the terminator of
    // the first (never read).
    let mut b = ntb16(400, 200);
    put_ndp16(&mut b, 200, 12, &[(40, 60), (0, 0), (300, 60)]);
    put_ndp16(&mut b, 12, 0, &[(120, 60), (0, 0)]);
    put_frame(&mut b, 40, 60, 1);
    put_frame(&mut b, 120, 60, 2);
    let (frames, drops, _) = collect(&b, &RxLimits::default());
    assert_eq!(frames, vec![frame(60, 1), frame(60, 2)]);
    assert!(drops.is_clean());
}

#[test]
fn ndp_overlapping_a_datagram_or_ndp_ends_the_chain() {
    let mut b = ntb16(400, 200);
    put_ndp16(&mut b, 200, 100, &[(40, 80), (0, 0)]);
    put_ndp16(&mut b, 100, 0, &[(300, 60), (0, 0)]); // sits inside datagram 40..120
    let (frames, drops, last) = collect(&b, &RxLimits::default());
    assert_eq!(frames.len(), 1);
    assert_eq!(drops.bad_ndp, 1);
    assert_eq!(last, Some(NtbError::NdpOverlap { index: 100 }));

    // The next NDP (188..204) runs into this one (200..216).
    let mut b = ntb16(400, 200);
    put_ndp16(&mut b, 188, 0, &[(300, 60), (0, 0)]);
    put_ndp16(&mut b, 200, 188, &[(40, 80), (0, 0)]);
    let (frames, drops, last) = collect(&b, &RxLimits::default());
    assert_eq!(frames.len(), 1);
    assert_eq!(drops.bad_ndp, 1);
    assert_eq!(last, Some(NtbError::NdpOverlap { index: 188 }));
}

#[test]
fn ndp_chain_is_capped() {
    // Ten NDPs in a row, each listing one datagram.
    let mut b = ntb16(2000, 12);
    for i in 0..10u16 {
        let at = 12 + i * 16;
        let next = if i == 9 { 0 } else { at + 16 };
        put_ndp16(
            &mut b,
            usize::from(at),
            next,
            &[(400 + i * 100, 60), (0, 0)],
        );
    }
    let limits = RxLimits {
        max_ndps: 4,
        ..RxLimits::default()
    };
    let (frames, drops, last) = collect(&b, &limits);
    assert_eq!(frames.len(), 4);
    assert_eq!(drops.bad_ndp, 1);
    assert_eq!(last, Some(NtbError::NdpChainTooLong { max: 4 }));
    // By default the chain is bounded only by what the block holds: all ten are walked.
    let (frames, drops, _) = collect(&b, &RxLimits::default());
    assert_eq!(frames.len(), 10);
    assert!(drops.is_clean(), "{drops:?}");
}

/// `n` NDPs back to back from offset 12, each listing one 60-byte datagram placed after all
/// of them; NDP `i` points at NDP `next(i)` (`None` ends the chain).
fn ndp_chain(n: usize, next: impl Fn(usize) -> Option<usize>) -> Vec<u8> {
    let ndp_at = |i: usize| 12 + 16 * i;
    let dg_at = |i: usize| ndp_at(n) + 60 * i;
    let mut b = ntb16(dg_at(n), 12);
    for i in 0..n {
        let next = next(i).map_or(0, |j| ndp_at(j) as u16);
        put_ndp16(&mut b, ndp_at(i), next, &[(dg_at(i) as u16, 60), (0, 0)]);
        put_frame(&mut b, dg_at(i), 60, i as u8);
    }
    b
}

/// The hostile lab case ndp-chain-40: a legal chain of 40 NDPs (more than the 32 ranges the
/// decoder keeps apart) delivers all 40 datagrams, each once.
#[test]
fn a_legal_chain_longer_than_the_span_slots_delivers_everything() {
    let b = ndp_chain(40, |i| (i < 39).then_some(i + 1));
    let (frames, drops, _) = collect(&b, &RxLimits::default());
    assert_eq!(frames, (0..40).map(|i| frame(60, i)).collect::<Vec<_>>());
    assert!(drops.is_clean(), "{drops:?}");
    // Walked backwards (the NTH points at the last NDP, each at the one before it) too.
    let mut b = ndp_chain(40, |i| i.checked_sub(1));
    Nth16::new_unchecked(&mut b[..]).set_ndp_index(12 + 16 * 39);
    let (frames, drops, _) = collect(&b, &RxLimits::default());
    assert_eq!(
        frames,
        (0..40).rev().map(|i| frame(60, i)).collect::<Vec<_>>()
    );
    assert!(drops.is_clean(), "{drops:?}");
}

/// A long chain whose last NDP loops back (to the first, or into the middle) still yields
/// each datagram once: the loop is caught by overlap, not by a count.
#[test]
fn a_long_chain_that_loops_back_never_repeats_a_datagram() {
    for back in [0, 1, 20, 38, 39] {
        let b = ndp_chain(40, |i| Some(if i == 39 { back } else { i + 1 }));
        let (frames, drops, last) = collect(&b, &RxLimits::default());
        assert_eq!(frames.len(), 40, "loop back to NDP {back}");
        assert_eq!(drops.bad_ndp, 1, "loop back to NDP {back}");
        let index = 12 + 16 * back;
        assert!(
            matches!(last, Some(NtbError::NdpLoop { index: i } | NtbError::NdpOverlap { index: i }) if i == index),
            "loop back to NDP {back}: {last:?}"
        );
    }
    // Into the first NDP, which is kept on its own: named a loop.
    let b = ndp_chain(40, |i| Some((i + 1) % 40));
    let (_, _, last) = collect(&b, &RxLimits::default());
    assert_eq!(last, Some(NtbError::NdpLoop { index: 12 }));
}

/// The chain bound is what the block holds: a 64 KiB NTB of minimal NDPs (no datagrams)
/// whose last one loops to the first is walked once; one packed full ends at the bound.
#[test]
fn a_block_full_of_ndps_is_walked_once_to_its_end() {
    let max = (65535 - 12) / 16;
    assert_eq!(NtbFormat::Ntb16.max_ndps(65535), max);
    for (n, want) in [
        (4000, NtbError::NdpLoop { index: 12 }),
        (max, NtbError::NdpChainTooLong { max }),
    ] {
        let mut b = ntb16(65535, 12);
        for i in 0..n {
            let at = 12 + 16 * i;
            let next = if i + 1 == n { 12 } else { at + 16 };
            put_ndp16(&mut b, at, next as u16, &[(0, 0), (0, 0)]);
        }
        let mut it = parse_ntb(&b, &RxLimits::default()).unwrap();
        assert_eq!(it.by_ref().count(), 0);
        assert_eq!(it.drops().bad_ndp, 1, "{n} NDPs");
        assert_eq!(it.last_drop(), Some(want), "{n} NDPs");
    }
}

/// The kernel delivered 1000 copies of one datagram from an NDP repeating one pointer.
#[test]
fn repeated_pointer_is_delivered_once() {
    let mut entries = vec![(12u16, 60u16); 1000];
    entries.push((0, 0));
    let ndp_at = 76;
    let mut b = ntb16(ndp_at + 8 + 4 * entries.len(), ndp_at as u16);
    put_ndp16(&mut b, ndp_at, 0, &entries);
    let (frames, drops, last) = collect(&b, &RxLimits::default());
    assert_eq!(frames.len(), 1);
    assert_eq!(drops.overlap, 999);
    assert_eq!(last, Some(NtbError::DatagramOverlap { index: 12, len: 60 }));
}

#[test]
fn partial_overlap_is_dropped_disjoint_out_of_order_is_kept() {
    let mut b = ntb16(400, 300);
    // 12..72, then 200..260 (before 12 in a second pass), 40..100 overlaps, 100..160 fits the
    // gap between, 72..100 fits exactly between 12..72 and 100..160.
    put_ndp16(
        &mut b,
        300,
        0,
        &[(200, 60), (12, 60), (40, 60), (100, 60), (72, 28), (0, 0)],
    );
    let (frames, drops, last) = collect(&b, &RxLimits::default());
    assert_eq!(frames.len(), 4);
    assert_eq!(drops.overlap, 1);
    assert_eq!(last, Some(NtbError::DatagramOverlap { index: 40, len: 60 }));
}

#[test]
fn datagram_cap() {
    let limits = RxLimits {
        max_datagrams: 1,
        ..RxLimits::default()
    };
    let (frames, drops, last) = collect(&GADGET_NTB16, &limits);
    assert_eq!(frames.len(), 1);
    assert_eq!(drops.capped, 1);
    assert_eq!(last, Some(NtbError::TooManyDatagrams { max: 1 }));
    // Exactly at the cap is not "capped".
    let limits = RxLimits {
        max_datagrams: 2,
        ..RxLimits::default()
    };
    assert!(collect(&GADGET_NTB16, &limits).1.is_clean());
}

#[test]
fn zero_index_or_length_ends_the_list() {
    for stop in [(0u16, 42u16), (56, 0)] {
        let mut b = ntb16(400, 300);
        put_ndp16(&mut b, 300, 0, &[(12, 42), stop, (100, 42), (0, 0)]);
        let (frames, drops, _) = collect(&b, &RxLimits::default());
        assert_eq!(frames.len(), 1, "{stop:?}");
        assert!(drops.is_clean());
    }
}

#[test]
fn unterminated_ndp_still_delivers_and_is_counted() {
    let mut b = ntb16(400, 300);
    put_ndp16(&mut b, 300, 0, &[(12, 42), (100, 42)]);
    let (frames, drops, last) = collect(&b, &RxLimits::default());
    assert_eq!(frames.len(), 2);
    assert_eq!(drops.unterminated_ndp, 1);
    assert_eq!(last, Some(NtbError::NdpUnterminated { index: 300 }));
}

#[test]
fn crc_ndp_is_skipped_and_the_chain_followed() {
    let mut b = ntb16(400, 300);
    put_ndp16(&mut b, 300, 340, &[(12, 46), (0, 0)]);
    Ndp16::new_unchecked(&mut b[..], 300).set_signature(NDP16_CRC_SIGNATURE);
    put_ndp16(&mut b, 340, 0, &[(100, 60), (0, 0)]);
    let (frames, drops, last) = collect(&b, &RxLimits::default());
    assert_eq!(frames.len(), 1);
    assert_eq!(drops.crc_ndp, 1);
    assert_eq!(
        last,
        Some(NtbError::CrcNdp {
            index: 300,
            signature: NDP16_CRC_SIGNATURE
        })
    );
}

// ---------------------------------------------------------------------------------------------
// SpanSet
// ---------------------------------------------------------------------------------------------

#[test]
fn span_set_ascending_past_capacity() {
    let mut s = SpanSet::new();
    for i in 0..200u32 {
        assert!(s.insert(i * 100, i * 100 + 60));
    }
    assert_eq!(s.len, SPAN_SLOTS);
    // Everything inserted is still covered.
    for i in 0..200u32 {
        assert!(s.overlaps(i * 100 + 10, i * 100 + 11), "{i}");
        assert!(!s.insert(i * 100, i * 100 + 60));
    }
}

#[test]
fn span_set_out_of_order_past_capacity_never_misses_an_overlap() {
    // Pseudo-random disjoint-or-not inserts, checked against a brute-force list of what the
    // set accepted: an accepted span never overlaps an earlier accepted one.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..50 {
        let mut s = SpanSet::new();
        let mut accepted: Vec<(u32, u32)> = Vec::new();
        for _ in 0..300 {
            let start = (rnd() % 60_000) as u32;
            let end = start + 14 + (rnd() % 200) as u32;
            let clash = accepted.iter().any(|&(a, b)| a < end && start < b);
            let ok = s.insert(start, end);
            if clash {
                assert!(!ok, "accepted an overlapping span {start}..{end}");
            }
            if ok {
                accepted.push((start, end));
            }
            // Sorted and disjoint.
            let v = &s.spans[..s.len];
            assert!(v.windows(2).all(|w| w[0].end <= w[1].start));
        }
        // Below capacity nothing disjoint is refused.
        let mut s = SpanSet::new();
        for i in (0..SPAN_SLOTS as u32).rev() {
            assert!(s.insert(i * 50, i * 50 + 40));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------

/// Pushes `frames` through a builder into NTBs of `cap`-byte buffers, flushing on Full, and
/// checks each NTB decodes to the frames it took and respects the alignment rules.
fn round_trip(p: NtbParams, cap: usize, frames: &[Vec<u8>]) -> usize {
    let p = p
        .sanitize(frames.iter().map(Vec::len).max().unwrap_or(14))
        .expect("params");
    let mut b = NtbBuilder::new(p);
    let mut out: Vec<u8> = Vec::with_capacity(cap);
    let mut ntbs = 0;
    let mut pending: Vec<&Vec<u8>> = Vec::new();
    let check = |out: &Vec<u8>, pending: &mut Vec<&Vec<u8>>, seq: u16| {
        assert!(out.len() <= p.max_size as usize && out.len() <= cap);
        let limits = RxLimits {
            max_datagram_len: 65535,
            max_datagrams: usize::MAX,
            max_ndps: 1,
        };
        let mut it = parse_ntb(out, &limits).expect("own NTB parses");
        assert_eq!(it.sequence(), seq);
        assert_eq!(it.format(), p.format);
        let got: Vec<&[u8]> = it.by_ref().collect();
        for d in &got {
            let off = d.as_ptr() as usize - out.as_ptr() as usize;
            assert_eq!(
                off % usize::from(p.divisor),
                usize::from(p.remainder),
                "datagram offset"
            );
        }
        assert!(it.drops().is_clean(), "{:?}", it.last_drop());
        let want: Vec<&[u8]> = pending.iter().map(|f| f.as_slice()).collect();
        assert_eq!(got, want);
        let ndp = match p.format {
            NtbFormat::Ntb16 => usize::from(Nth16::new_unchecked(&out[..]).ndp_index()),
            NtbFormat::Ntb32 => Nth32::new_unchecked(&out[..]).ndp_index() as usize,
        };
        assert_eq!(ndp % usize::from(p.ndp_alignment), 0, "NDP alignment");
        pending.clear();
    };
    let mut seq = 0u16;
    b.begin(&mut out, seq);
    for f in frames {
        match b.push(&mut out, f) {
            Ok(()) => pending.push(f),
            Err(PushError::Full) => {
                let before = out.len();
                assert!(
                    b.push(&mut out, f).is_err() && out.len() == before,
                    "Full wrote"
                );
                b.finish(&mut out);
                check(&out, &mut pending, seq);
                ntbs += 1;
                seq = seq.wrapping_add(1);
                b.begin(&mut out, seq);
                b.push(&mut out, f).expect("fits an empty NTB");
                pending.push(f);
            }
            Err(e) => panic!("{e}"),
        }
    }
    if b.finish(&mut out) > 0 {
        check(&out, &mut pending, seq);
        ntbs += 1;
    }
    ntbs
}

fn mixed_frames() -> Vec<Vec<u8>> {
    [
        60, 1514, 14, 15, 16, 17, 590, 1514, 1514, 64, 1000, 42, 1513, 99,
    ]
    .iter()
    .cycle()
    .take(60)
    .enumerate()
    .map(|(i, &len)| frame(len, i as u8))
    .collect()
}

#[test]
fn round_trip_divisor_4_remainder_2() {
    let n = round_trip(
        params(NtbFormat::Ntb16, 16384, 4, 2, 4),
        16384,
        &mixed_frames(),
    );
    assert!(n >= 3);
}

#[test]
fn round_trip_divisor_1() {
    round_trip(
        params(NtbFormat::Ntb16, 8192, 1, 0, 4),
        8192,
        &mixed_frames(),
    );
}

#[test]
fn round_trip_odd_divisor_and_big_alignment() {
    round_trip(
        params(NtbFormat::Ntb16, 32768, 7, 3, 64),
        32768,
        &mixed_frames(),
    );
    round_trip(
        params(NtbFormat::Ntb16, 65535, 512, 511, 512),
        65536,
        &mixed_frames(),
    );
}

#[test]
fn round_trip_max_datagrams_1() {
    let p = NtbParams {
        max_datagrams: 1,
        ..params(NtbFormat::Ntb16, 16384, 4, 0, 4)
    };
    let frames = mixed_frames();
    assert_eq!(round_trip(p, 16384, &frames), frames.len());
}

#[test]
fn round_trip_ntb32() {
    round_trip(
        params(NtbFormat::Ntb32, 65536, 8, 6, 8),
        65536,
        &mixed_frames(),
    );
    round_trip(
        params(NtbFormat::Ntb32, 200_000, 4, 0, 4),
        131072,
        &mixed_frames(),
    );
}

#[test]
fn round_trip_capacity_below_max_size() {
    // The buffer, not dwNtbOutMaxSize, bounds the NTB.
    round_trip(
        params(NtbFormat::Ntb16, 65535, 4, 0, 4),
        3000,
        &mixed_frames(),
    );
}

#[test]
fn many_small_frames_in_one_ntb() {
    let frames: Vec<Vec<u8>> = (0..3000).map(|i| frame(14, i as u8)).collect();
    let n = round_trip(params(NtbFormat::Ntb16, 65535, 1, 0, 4), 65535, &frames);
    assert!(n <= 2, "{n} NTBs");
    // The NDP32's 16-bit wLength caps the datagrams per NTB at 8188.
    let frames: Vec<Vec<u8>> = (0..9000).map(|i| frame(14, i as u8)).collect();
    let n = round_trip(params(NtbFormat::Ntb32, 1 << 20, 1, 0, 4), 1 << 20, &frames);
    assert_eq!(n, 2);
}

#[test]
fn push_refusals_write_nothing() {
    let p = params(NtbFormat::Ntb16, 2048, 4, 0, 4)
        .sanitize(1514)
        .unwrap();
    let mut b = NtbBuilder::new(p);
    let mut out = Vec::with_capacity(2048);
    b.begin(&mut out, 0);
    assert_eq!(
        b.push(&mut out, &[0; 13]),
        Err(PushError::TooShort { len: 13 })
    );
    assert_eq!(b.push(&mut out, &[]), Err(PushError::TooShort { len: 0 }));
    let largest = p.largest_frame_within(2048);
    assert_eq!(
        b.push(&mut out, &vec![0; largest + 1]),
        Err(PushError::TooLarge {
            len: largest + 1,
            max: largest
        })
    );
    assert_eq!(out.len(), 12);
    b.push(&mut out, &[1; 1514]).unwrap();
    let before = out.clone();
    assert_eq!(b.push(&mut out, &[2; 600]), Err(PushError::Full));
    assert_eq!(out, before);
    assert_eq!(b.datagrams(), 1);
    // The largest frame fits exactly.
    b.begin(&mut out, 1);
    b.push(&mut out, &vec![3; largest]).unwrap();
    assert_eq!(b.finish(&mut out), 2048);
}

#[test]
fn max_datagrams_limit() {
    let p = NtbParams {
        max_datagrams: 2,
        ..params(NtbFormat::Ntb16, 16384, 4, 0, 4)
    };
    let mut b = NtbBuilder::new(p);
    let mut out = Vec::with_capacity(16384);
    b.begin(&mut out, 0);
    b.push(&mut out, &[1; 60]).unwrap();
    b.push(&mut out, &[2; 60]).unwrap();
    assert_eq!(b.push(&mut out, &[3; 60]), Err(PushError::Full));
}

#[test]
fn empty_ntb_is_not_sent() {
    let mut b = NtbBuilder::new(params(NtbFormat::Ntb16, 16384, 4, 0, 4));
    let mut out = Vec::with_capacity(16384);
    b.begin(&mut out, 0);
    assert_eq!(b.finish(&mut out), 0);
    assert!(out.is_empty());
    assert_eq!(b.finish(&mut out), 0);
}

#[test]
fn push_without_begin_begins() {
    let mut b = NtbBuilder::new(params(NtbFormat::Ntb16, 16384, 4, 0, 4));
    let mut out = vec![0xee; 7];
    out.reserve(16384);
    b.push(&mut out, &[1; 60]).unwrap();
    assert!(b.finish(&mut out) > 0);
    assert_eq!(parse_ntb(&out, &RxLimits::default()).unwrap().sequence(), 1);
}

#[test]
fn buffer_too_small_for_anything() {
    // Neither Vec::new() nor a 10-byte transfer buffer may panic or loop: TooLarge, not Full.
    let mut b = NtbBuilder::new(params(NtbFormat::Ntb16, 16384, 4, 0, 4));
    let mut v: Vec<u8> = Vec::new();
    b.begin(&mut v, 0);
    assert!(matches!(
        b.push(&mut v, &[0; 60]),
        Err(PushError::TooLarge { max: 0, .. })
    ));
    assert_eq!(b.finish(&mut v), 0);
    let mut buf = crate::usb::Buffer::new(10);
    b.begin(&mut buf, 0);
    assert!(matches!(
        b.push(&mut buf, &[0; 60]),
        Err(PushError::TooLarge { .. })
    ));
    assert_eq!(buf.len(), 0);
}

#[test]
fn short_packet_padding() {
    // A 64-byte NTB on a 64-byte endpoint gets a 65th byte, counted in wBlockLength.
    // NTH 12 + 36-byte frame = 48, NDP at 48 + 16 = 64.
    let mut b =
        NtbBuilder::new(params(NtbFormat::Ntb16, 16384, 4, 0, 4)).with_short_packet_padding(64);
    let mut out = Vec::with_capacity(16384);
    b.begin(&mut out, 0);
    b.push(&mut out, &[5; 36]).unwrap();
    assert_eq!(b.finish(&mut out), 65);
    assert_eq!(out.len(), 65);
    assert_eq!(Nth16::new_unchecked(&out[..]).block_len(), 65);
    assert_eq!(out[64], 0);
    assert_eq!(parse_ntb(&out, &RxLimits::default()).unwrap().count(), 1);

    // Exactly dwNtbOutMaxSize: no padding needed (the transfer ends by its size).
    let p = params(NtbFormat::Ntb16, 2048, 4, 0, 4);
    let mut b = NtbBuilder::new(p).with_short_packet_padding(512);
    let mut out = Vec::with_capacity(4096);
    b.begin(&mut out, 0);
    b.push(&mut out, &vec![6; p.largest_frame_within(2048)])
        .unwrap();
    assert_eq!(b.finish(&mut out), 2048);

    // Bounded by a 2048-byte buffer below dwNtbOutMaxSize: one byte is held back for the pad.
    let p = params(NtbFormat::Ntb16, 16384, 4, 0, 4);
    let mut b = NtbBuilder::new(p).with_short_packet_padding(512);
    let mut out = crate::usb::Buffer::new(2048);
    b.begin(&mut out, 0);
    let largest = p.largest_frame_within(2047);
    assert!(b.push(&mut out, &vec![6; largest + 4]).is_err());
    b.push(&mut out, &vec![6; largest]).unwrap();
    let len = b.finish(&mut out);
    assert!(len <= 2048);
    assert_ne!(len % 512, 0);
}

#[test]
fn padding_for_zlp_rules() {
    assert!(padding_for_zlp(512, 512, 16384));
    assert!(padding_for_zlp(1024, 512, 16384));
    assert!(!padding_for_zlp(1025, 512, 16384));
    assert!(
        !padding_for_zlp(16384, 512, 16384),
        "a full-size NTB ends by its size"
    );
    assert!(!padding_for_zlp(0, 512, 16384));
    assert!(!padding_for_zlp(512, 0, 16384));
}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

fn reply(out_max: u32, div: u16, rem: u16, align: u16, formats: u16) -> NtbParameters {
    NtbParameters {
        length: 28,
        formats_supported: formats,
        ntb_out_max_size: out_max,
        ndp_out_divisor: div,
        ndp_out_payload_remainder: rem,
        ndp_out_alignment: align,
        ..NtbParameters::default()
    }
}

#[test]
fn params_are_sanitized() {
    let p = NtbParams::from_device(&reply(16384, 0, 5, 0, 1), NtbFormat::Ntb16, 1514).unwrap();
    assert_eq!((p.divisor, p.remainder, p.ndp_alignment), (1, 0, 4));
    let p = NtbParams::from_device(&reply(16384, 4, 6, 3, 1), NtbFormat::Ntb16, 1514).unwrap();
    assert_eq!((p.divisor, p.remainder, p.ndp_alignment), (4, 2, 4));
    let p = NtbParams::from_device(&reply(16384, 4, 2, 2, 1), NtbFormat::Ntb16, 1514).unwrap();
    assert_eq!(p.ndp_alignment, 4);
    let p = NtbParams::from_device(&reply(16384, 4, 2, 32, 1), NtbFormat::Ntb16, 1514).unwrap();
    assert_eq!(p.ndp_alignment, 32);
    // NTB-16 cannot describe more than 65535 bytes.
    let p = NtbParams::from_device(&reply(1 << 20, 4, 0, 4, 3), NtbFormat::Ntb16, 1514).unwrap();
    assert_eq!(p.max_size, 65535);
    let p = NtbParams::from_device(&reply(1 << 20, 4, 0, 4, 3), NtbFormat::Ntb32, 1514).unwrap();
    assert_eq!(p.max_size, 1 << 20);
}

#[test]
fn ntb32_needs_the_format_bit() {
    assert_eq!(
        NtbParams::from_device(&reply(16384, 4, 0, 4, 1), NtbFormat::Ntb32, 1514),
        Err(TxParamsError::FormatNotSupported {
            format: NtbFormat::Ntb32,
            supported: 1
        })
    );
    // NTB-16 is mandatory, so a device that forgot bit 0 still gets it.
    assert!(NtbParams::from_device(&reply(16384, 4, 0, 4, 0), NtbFormat::Ntb16, 1514).is_ok());
}

/// The kernel clamped a too-small dwNtbOutMaxSize to 184 bytes and then sent nothing; we
/// refuse to bind with a reason instead.
#[test]
fn too_small_max_size_is_an_error_not_silence() {
    for max in [0, 10, 184, 1541] {
        let e =
            NtbParams::from_device(&reply(max, 4, 0, 4, 1), NtbFormat::Ntb16, 1514).unwrap_err();
        let TxParamsError::MaxSizeTooSmall {
            needed, largest, ..
        } = e
        else {
            panic!("{e}")
        };
        assert_eq!(needed, 12 + 1514 + 2 + 16);
        assert!(largest < 1514);
        assert!(e.to_string().contains("dwNtbOutMaxSize"));
    }
    // The smallest size that works: NTH 12, frame 1514 (pad 2 to align the NDP), NDP 16.
    assert!(NtbParams::from_device(&reply(1544, 4, 0, 4, 1), NtbFormat::Ntb16, 1514).is_ok());
    // A pathological alignment can make a reasonable size too small.
    assert!(
        NtbParams::from_device(&reply(2048, 1024, 1023, 4, 1), NtbFormat::Ntb16, 1514).is_err()
    );
}

#[test]
fn largest_frame_is_exact() {
    for (fmt, div, rem, align) in [
        (NtbFormat::Ntb16, 4, 0, 4),
        (NtbFormat::Ntb16, 4, 2, 4),
        (NtbFormat::Ntb16, 7, 3, 64),
        (NtbFormat::Ntb32, 8, 6, 8),
    ] {
        let p = params(fmt, 65535, div, rem, align);
        for limit in [0, 30, 60, 100, 1000, 1544, 2048, 4099] {
            let l = p.largest_frame_within(limit);
            if l > 0 {
                assert!(p.ntb_len_for_one(l) <= limit);
            }
            assert!(p.ntb_len_for_one(l + 1) > limit);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Robustness: mutate valid NTBs and check the decoder's promises
// ---------------------------------------------------------------------------------------------

/// The invariants the fuzz target asserts, on deterministic mutations of valid NTBs.
#[test]
fn mutated_ntbs_never_break_the_promises() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut bases: Vec<Vec<u8>> = vec![GADGET_NTB16.to_vec(), GADGET_NTB32.to_vec()];
    let mut b = ntb16(400, 200);
    put_ndp16(&mut b, 200, 12, &[(40, 60), (0, 0)]);
    put_ndp16(&mut b, 12, 0, &[(120, 60), (0, 0)]);
    bases.push(b);
    let limits = RxLimits {
        max_datagrams: 64,
        ..RxLimits::default()
    };
    for _ in 0..30_000 {
        let mut m = bases[(rnd() % bases.len() as u64) as usize].clone();
        for _ in 0..1 + rnd() % 4 {
            let i = (rnd() % m.len() as u64) as usize;
            m[i] = match rnd() % 4 {
                0 => 0,
                1 => 0xff,
                2 => m[i].wrapping_add(4),
                _ => rnd() as u8,
            };
        }
        if rnd() % 8 == 0 {
            let cut = (rnd() % m.len() as u64) as usize;
            m.truncate(cut);
        }
        let Ok(it) = parse_ntb(&m, &limits) else {
            continue;
        };
        let base = m.as_ptr() as usize;
        let mut seen: Vec<(usize, usize)> = Vec::new();
        for d in it {
            let start = d.as_ptr() as usize - base;
            let end = start + d.len();
            assert!(end <= m.len() && start >= 12 && d.len() >= 14);
            assert!(seen.iter().all(|&(a, b)| end <= a || b <= start), "overlap");
            seen.push((start, end));
        }
        assert!(seen.len() <= limits.max_datagrams);
    }
}
