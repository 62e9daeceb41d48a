//! The lab's hostile-device catalogue (`tools/lab/hostile`, written to `fuzz/seeds/` by
//! `hostile --dump-seeds`) through the decoders, byte for byte as the device sends it.
//!
//! Each NTB case carries the frames a strict host delivers (`min`) and at most (`max`, the
//! distinct well-placed datagrams in the transfer); the decoder must stay in that range,
//! never deliver a byte twice, and account for every datagram it does not deliver. The
//! RNDIS catalogue (`hostile --class rndis`) goes through `RndisRx` the same way, and its
//! lying bring-up replies through the message parser.

use std::collections::BTreeMap;
use std::path::Path;

use usbnetd::wire::{
    parse_ntb, Notification, NotificationReader, NtbFormat, NtbParameters, NtbParams, RxLimits,
};

fn seeds(dir: &str) -> BTreeMap<String, Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(dir);
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(case) = name.strip_prefix("hostile-") {
            out.insert(case.to_owned(), std::fs::read(e.path()).unwrap());
        }
    }
    out
}

/// (case, min, max): datagrams of the malformed transfer a correct host delivers.
const NTB_CASES: &[(&str, usize, usize)] = &[
    ("nth-sig", 0, 0),
    ("nth-hdrlen-0", 0, 1),
    ("nth-hdrlen-8", 0, 1),
    ("nth-hdrlen-16", 0, 1),
    ("block-len-0", 0, 1),
    ("block-len-8", 0, 0),
    ("block-len-big", 0, 1),
    ("truncated", 0, 0),
    ("ndp-index-out", 0, 0),
    ("ndp-index-nth", 0, 0),
    ("ndp-unaligned", 0, 1),
    ("ndp-sig", 0, 0),
    ("ndp32-in-ntb16", 0, 0),
    ("ndp-crc", 0, 0),
    ("ndp-near-end", 0, 0),
    ("ndp-len-8", 0, 0),
    ("ndp-unterminated", 0, 2),
    ("ndp-empty", 0, 0),
    ("ndp-self-loop", 0, 1),
    ("ndp-loop-2", 0, 2),
    ("ndp-chain-repeat", 0, 1),
    ("ndp-chain-40", 40, 40),
    ("dg-overflow", 1, 1),
    ("dg-past-block", 1, 1),
    ("dg-in-nth", 1, 1),
    ("dg-zero-len", 1, 1),
    ("dg-runt", 2, 2),
    ("dg-repeat-1000", 1, 1),
    ("dg-overlap", 1, 1),
    ("ntb32-while-16", 0, 1),
    ("garbage", 0, 0),
];

#[test]
fn every_hostile_ntb_stays_within_what_it_carries() {
    let all = seeds("ntb");
    assert_eq!(all.len(), NTB_CASES.len(), "catalogue and table differ");
    let limits = RxLimits::for_mtu(1500);
    for &(case, min, max) in NTB_CASES {
        // the fuzz target's mode byte first
        let transfer = &all
            .get(case)
            .unwrap_or_else(|| panic!("no seed for {case}"))[1..];
        let (got, counted) = match parse_ntb(transfer, &limits) {
            Err(_) => (0, 1),
            Ok(mut it) => {
                let mut spans = Vec::new();
                let base = transfer.as_ptr() as usize;
                for d in it.by_ref() {
                    let start = d.as_ptr() as usize - base;
                    spans.push((start, start + d.len()));
                }
                spans.sort_unstable();
                assert!(
                    spans.windows(2).all(|w| w[0].1 <= w[1].0),
                    "{case}: overlapping datagrams {spans:?}"
                );
                let d = it.drops();
                // what the NCM class adds to rx_drop_bad_frame
                let counted = d.datagrams() + d.bad_ndp + d.crc_ndp + d.capped;
                (spans.len(), counted as usize)
            }
        };
        assert!(
            (min..=max).contains(&got),
            "{case}: {got} datagrams, want {min}..={max}"
        );
        if got < max {
            assert!(
                counted > 0,
                "{case}: {got} of {max} delivered, no drop counted"
            );
        }
    }
}

#[test]
fn hostile_ntb_parameters_are_clamped_or_refused() {
    for (case, bytes) in seeds("ntb_params") {
        let Ok(reply) = NtbParameters::parse(&bytes) else {
            assert!(bytes.len() < 28, "{case}: full reply refused");
            continue;
        };
        match NtbParams::from_device(&reply, NtbFormat::Ntb16, 1514) {
            Ok(p) => {
                assert!(p.divisor >= 1 && p.remainder < p.divisor, "{case}: {p:?}");
                assert!(p.ndp_alignment >= 4 && p.ndp_alignment.is_power_of_two());
                assert!(p.ntb_len_for_one(1514) <= p.max_size as usize, "{case}");
            }
            Err(e) => {
                // refused only when one full frame cannot fit
                assert!(reply.ntb_out_max_size < 2048, "{case}: refused: {e}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
}

#[test]
fn hostile_notification_streams_end_with_the_link_up() {
    for (case, bytes) in seeds("notify") {
        let mut reader = NotificationReader::new();
        let mut out = Vec::new();
        let mut rest = &bytes[..];
        while let Some((&n, tail)) = rest.split_first() {
            let (xfer, tail) = tail.split_at(usize::from(n).min(tail.len()));
            reader.feed(xfer, &mut out);
            rest = tail;
        }
        assert_eq!(
            out.last(),
            Some(&Notification::NetworkConnection { connected: true }),
            "{case}: {out:?}"
        );
    }
}

/// (case, min, max): frames of the malformed RNDIS transfer a correct host delivers
/// (`hostile --class rndis --list`; the seeds are `fuzz/seeds/rndis/hostile-CASE`).
const RNDIS_CASES: &[(&str, usize, usize)] = &[
    ("data-offset-wrap", 0, 0),
    ("data-len-wrap", 0, 0),
    ("data-past-msg", 0, 0),
    ("data-in-header", 0, 0),
    ("msglen-0", 0, 0),
    ("msglen-20", 0, 0),
    ("msglen-big", 0, 0),
    ("wrong-type", 0, 0),
    ("mid-data-lie", 1, 2),
    ("mid-len-lie", 1, 1),
    ("mid-len-short", 1, 1),
    ("five-per-transfer", 5, 5),
    ("data-zero-len", 0, 0),
    ("runt", 0, 0),
    ("giant", 0, 0),
    ("oob-ppi-outside", 0, 1),
    ("trailing-junk", 1, 1),
    ("garbage", 0, 0),
];

#[test]
fn every_hostile_rndis_transfer_stays_within_what_it_carries() {
    use usbnetd::class::rndis::RndisRx;
    use usbnetd::class::{RxDrops, RxFixup};
    let all = seeds("rndis");
    let data = all
        .keys()
        .filter(|k| !k.starts_with("reply-") && !k.starts_with("indicate-"))
        .count();
    assert_eq!(data, RNDIS_CASES.len(), "catalogue and table differ");
    for &(case, min, max) in RNDIS_CASES {
        let transfer = all
            .get(case)
            .unwrap_or_else(|| panic!("no seed for {case}"));
        let base = transfer.as_ptr() as usize;
        let mut spans = Vec::new();
        let mut drops = RxDrops::default();
        RndisRx::new(1514).rx_fixup(
            transfer,
            &mut |f| {
                let start = f.as_ptr() as usize - base;
                spans.push((start, start + f.len()));
            },
            &mut drops,
        );
        let got = spans.len();
        assert!(
            (min..=max).contains(&got),
            "{case}: {got} frames, want {min}..={max}"
        );
        spans.sort_unstable();
        assert!(
            spans.windows(2).all(|w| w[0].1 <= w[1].0),
            "{case}: overlapping frames {spans:?}"
        );
        // The bytes delivered are the transfer's, each once, and no frame comes from a
        // message header (44 bytes before every frame at least).
        assert!(spans.iter().all(|&(s, e)| s >= 44 && e <= transfer.len()));
        if got < max || max == 0 {
            assert!(
                drops.bad_frame + drops.bad_transfer > 0,
                "{case}: {got} of {max} delivered, no drop counted"
            );
        }
    }
}

#[test]
fn the_hostile_rndis_replies_parse_or_fail_with_a_reason() {
    use usbnetd::wire::rndis::Message;
    let all = seeds("rndis");
    let replies: Vec<_> = all
        .iter()
        .filter(|(k, _)| k.starts_with("reply-") || k.starts_with("indicate-"))
        .collect();
    assert!(replies.len() >= 20, "{} replies", replies.len());
    for (case, bytes) in replies {
        match Message::parse(bytes) {
            Ok(m) => {
                // what parses re-emits to a message that parses the same
                assert_eq!(Message::parse(&m.to_vec()), Ok(m), "{case}");
            }
            Err(e) => assert!(!e.to_string().is_empty(), "{case}"),
        }
    }
    // the lies the bring-up must not take at face value
    for case in [
        "reply-init-len-long",
        "reply-init-short",
        "reply-mac-offset-wrap-query",
        "reply-mac-len-wrap-query",
        "reply-mac-past-msg-query",
        "indicate-bad-0",
        "indicate-bad-1",
        "indicate-bad-2",
        "indicate-bad-3",
    ] {
        assert!(Message::parse(&all[case]).is_err(), "{case} parsed");
    }
}
