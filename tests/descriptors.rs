//! Descriptor parsing, probing and dump rendering through the public API, on the fixtures in
//! `tests/fixtures/` and on malformed variants of every one of them.
//!
//! Fixtures: `tests/fixtures/<name>.bin` hold a device's descriptor set as usbfs returns it,
//! captured in the lab from the Linux gadget functions and QEMU's usb-net
//! (`tools/lab/lab capture --update`; the lab's `capture` scenario fails when they drift).
//! [`handmade`] keeps the same sets built by hand from the specifications, annotated byte by
//! byte, as extra parser input. Where they disagree, the captures are right: the hand-built
//! sets guessed bcdDevice 6.12 and 500 mA (the lab's gadgets say 1.0N and 100 mA) and, for
//! acm_ncm, string indices one lower than configfs allocates. Golden renderings sit next to the
//! fixtures as `<name>.dump.txt` and `<name>.dump.json`; regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test descriptors`.

use std::path::PathBuf;

use usbnetd::descriptor::{self, ParseError, ParseErrorKind, Parsed};
use usbnetd::dump::{self, Strings};
use usbnetd::probe::{self, ClassKind, NetFunction};

const FIXTURES: [&str; 7] = [
    "ncm",
    "ecm",
    "rndis",
    "eem",
    "geth",
    "acm_ncm",
    "qemu_usbnet",
];

fn fixture_path(name: &str, ext: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.{ext}"))
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name, "bin");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse_ok(name: &str) -> Parsed {
    let parsed = descriptor::parse(&fixture(name));
    assert_eq!(parsed.error, None, "{name}");
    assert!(parsed.warnings.is_empty(), "{name}: {:?}", parsed.warnings);
    parsed
}

fn only_function(name: &str) -> NetFunction {
    let parsed = parse_ok(name);
    let result = probe::probe_all(&parsed.set);
    assert!(result.rejected.is_empty(), "{name}: {:?}", result.rejected);
    assert_eq!(result.functions.len(), 1, "{name}: {:?}", result.functions);
    result
        .functions
        .into_iter()
        .next()
        .unwrap_or_else(|| unreachable!())
}

/// Runs everything downstream of the parser on `bytes`; checks the error, if any, points
/// into the input.
fn exercise(bytes: &[u8]) -> Parsed {
    let parsed = descriptor::parse(bytes);
    if let Some(e) = &parsed.error {
        assert!(
            e.offset <= bytes.len(),
            "offset {} past input of {}: {e}",
            e.offset,
            bytes.len()
        );
        assert!(!e.to_string().is_empty());
    }
    let result = probe::probe_all(&parsed.set);
    let choice = probe::choose(&result.functions);
    if let Some(c) = &choice {
        assert!(c.index < result.functions.len());
    }
    let text = dump::render_text(&parsed, &Strings::new());
    assert!(text.contains("usbnetd would drive:"));
    let json = dump::render_json(&parsed, &Strings::new());
    assert!(json.get("functions").is_some());
    parsed
}

/// Offsets of every descriptor in a well-formed set (the whole set is one run of
/// descriptors, each `bLength` long).
fn descriptor_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        offsets.push(pos);
        pos += usize::from(bytes[pos]);
    }
    offsets
}

// ---------------------------------------------------------------------------------------
// Each fixture, with concrete expectations.

#[test]
fn ncm_fixture() {
    let f = only_function("ncm");
    assert_eq!(f.class, ClassKind::Ncm);
    assert_eq!(f.configuration, 1);
    assert_eq!(
        (f.control_interface, f.data_interface, f.data_alt_setting),
        (Some(0), 1, 1)
    );
    assert_eq!(
        (f.bulk_in, f.bulk_out, f.interrupt_in),
        (0x81, 0x02, Some(0x85))
    );
    assert_eq!((f.max_packet_size, f.bulk_out_max_packet_size), (512, 512));
    assert_eq!(
        (f.interrupt_max_packet_size, f.interrupt_interval),
        (Some(16), Some(9))
    );
    assert_eq!(
        (f.max_segment_size, f.mac_string_index),
        (Some(1514), Some(6))
    );
    assert_eq!(
        (f.ncm_version, f.ncm_capabilities),
        (Some(0x0100), Some(0x11))
    );
    assert!(f.iad_checked);
    assert!(f.notes.is_empty(), "{:?}", f.notes);
    assert_eq!(
        f.to_string(),
        "CDC-NCM, configuration 1, control interface 0, data interface 1 alt 1, bulk IN 0x81, \
         bulk OUT 0x02, interrupt 0x85 (16 bytes, interval 9), max packet 512, max segment \
         1514, MAC string 6"
    );
}

#[test]
fn ecm_fixture() {
    let f = only_function("ecm");
    assert_eq!(f.class, ClassKind::Ecm);
    assert_eq!(f.configuration, 1);
    assert_eq!(
        (f.control_interface, f.data_interface, f.data_alt_setting),
        (Some(0), 1, 1)
    );
    assert_eq!(
        (f.bulk_in, f.bulk_out, f.interrupt_in),
        (0x81, 0x02, Some(0x85))
    );
    assert_eq!(
        (f.interrupt_max_packet_size, f.interrupt_interval),
        (Some(16), Some(9))
    );
    assert_eq!(
        (f.max_segment_size, f.mac_string_index),
        (Some(1514), Some(6))
    );
    assert_eq!((f.ncm_version, f.ncm_capabilities), (None, None));
    assert!(f.iad_checked);
}

#[test]
fn rndis_fixture() {
    let f = only_function("rndis");
    assert_eq!(f.class, ClassKind::Rndis);
    assert_eq!(f.configuration, 1);
    assert_eq!(
        (f.control_interface, f.data_interface, f.data_alt_setting),
        (Some(0), 1, 0)
    );
    assert_eq!(
        (f.bulk_in, f.bulk_out, f.interrupt_in),
        (0x81, 0x02, Some(0x85))
    );
    assert_eq!(
        (f.interrupt_max_packet_size, f.interrupt_interval),
        (Some(8), Some(9))
    );
    assert_eq!(f.max_packet_size, 512);
    assert_eq!((f.max_segment_size, f.mac_string_index), (None, None));
    // The gadget's IAD says 02/06/00 while the control interface says 02/02/FF; only the
    // interface range is cross-checked.
    assert!(f.iad_checked);
}

#[test]
fn eem_fixture() {
    let f = only_function("eem");
    assert_eq!(f.class, ClassKind::Eem);
    assert_eq!(
        (f.control_interface, f.data_interface, f.data_alt_setting),
        (None, 0, 0)
    );
    assert_eq!((f.bulk_in, f.bulk_out, f.interrupt_in), (0x81, 0x02, None));
    assert_eq!(f.max_packet_size, 512);
    assert_eq!((f.max_segment_size, f.mac_string_index), (None, None));
    assert!(!f.iad_checked);
}

#[test]
fn geth_fixture() {
    let f = only_function("geth");
    assert_eq!(f.class, ClassKind::Subset);
    assert_eq!(
        (f.control_interface, f.data_interface, f.data_alt_setting),
        (None, 0, 0)
    );
    assert_eq!((f.bulk_in, f.bulk_out, f.interrupt_in), (0x81, 0x02, None));
    assert_eq!(
        (f.max_segment_size, f.mac_string_index),
        (Some(1514), Some(6))
    );
    assert_eq!(f.mdlm_data_capabilities, Some(0));
}

#[test]
fn acm_ncm_fixture_finds_ncm_among_acm() {
    let parsed = parse_ok("acm_ncm");
    let config = &parsed.set.configurations[0];
    assert_eq!(config.iads.len(), 2);
    assert_eq!(config.interface_numbers(), vec![0, 1, 2, 3]);
    let f = only_function("acm_ncm");
    assert_eq!(f.class, ClassKind::Ncm);
    assert_eq!(
        (f.control_interface, f.data_interface, f.data_alt_setting),
        (Some(2), 3, 1)
    );
    assert_eq!(
        (f.bulk_in, f.bulk_out, f.interrupt_in),
        (0x86, 0x07, Some(0x8a))
    );
    // configfs numbers the ACM function's strings before NCM's: iMACAddress is 10.
    assert_eq!(f.mac_string_index, Some(10));
    assert!(f.iad_checked);
}

#[test]
fn qemu_usbnet_chooses_ecm_config_1_over_rndis_config_2() {
    let parsed = parse_ok("qemu_usbnet");
    let values: Vec<u8> = parsed.set.configurations.iter().map(|c| c.value).collect();
    assert_eq!(
        values,
        vec![2, 1],
        "RNDIS is the first configuration QEMU lists"
    );
    let result = probe::probe_all(&parsed.set);
    assert!(result.rejected.is_empty(), "{:?}", result.rejected);
    let fs = &result.functions;
    assert_eq!(fs.len(), 2);
    assert_eq!((fs[0].class, fs[0].configuration), (ClassKind::Rndis, 2));
    assert_eq!(
        (fs[0].bulk_in, fs[0].bulk_out, fs[0].interrupt_in),
        (0x82, 0x02, Some(0x81))
    );
    assert_eq!(
        (fs[0].max_packet_size, fs[0].interrupt_interval),
        (64, Some(32))
    );
    assert_eq!((fs[1].class, fs[1].configuration), (ClassKind::Ecm, 1));
    assert_eq!(
        (
            fs[1].control_interface,
            fs[1].data_interface,
            fs[1].data_alt_setting
        ),
        (Some(0), 1, 1)
    );
    assert_eq!(
        (fs[1].bulk_in, fs[1].bulk_out, fs[1].interrupt_in),
        (0x82, 0x02, Some(0x81))
    );
    assert_eq!(
        (fs[1].max_segment_size, fs[1].mac_string_index),
        (Some(1514), Some(3))
    );
    assert!(!fs[1].iad_checked);
    let choice = probe::choose(fs).expect("a choice");
    assert_eq!(choice.index, 1);
    assert!(
        choice
            .reason
            .starts_with("CDC-ECM (configuration 1) preferred over RNDIS (configuration 2): "),
        "{}",
        choice.reason
    );
}

#[test]
fn every_fixture_parses_cleanly_and_yields_a_function() {
    for name in FIXTURES {
        let parsed = parse_ok(name);
        assert!(parsed.set.device.is_some(), "{name}");
        assert!(!probe::probe(&parsed.set).is_empty(), "{name}");
        exercise(&fixture(name));
    }
}

// ---------------------------------------------------------------------------------------
// Golden renderings.

fn check_golden(name: &str, ext: &str, actual: &str) {
    let path = fixture_path(name, ext);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (create it with UPDATE_GOLDEN=1 cargo test --test descriptors)",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_string(), |n| format!("line {}", n + 1));
        panic!(
            "{} differs from the renderer's output at {line}; if the change is intended, run \
             UPDATE_GOLDEN=1 cargo test --test descriptors\n--- actual ---\n{actual}",
            path.display()
        );
    }
}

#[test]
fn golden_text_and_json() {
    for name in FIXTURES {
        let parsed = descriptor::parse(&fixture(name));
        let text = dump::render_text(&parsed, &Strings::new());
        check_golden(name, "dump.txt", &text);
        let json = dump::render_json(&parsed, &Strings::new());
        let json = serde_json::to_string_pretty(&json).expect("JSON renders") + "\n";
        check_golden(name, "dump.json", &json);
    }
}

#[test]
fn json_functions_have_the_documented_keys() {
    let parsed = descriptor::parse(&fixture("ncm"));
    let v = dump::render_json(&parsed, &Strings::new());
    let f = &v["functions"][0];
    for key in [
        "class",
        "configuration",
        "control_interface",
        "data_interface",
        "data_alt_setting",
        "bulk_in",
        "bulk_out",
        "interrupt_in",
        "max_packet_size",
        "interrupt_max_packet_size",
        "interrupt_interval",
        "max_segment_size",
        "mac_string_index",
        "ncm_capabilities",
        "ncm_version",
        "iad_checked",
    ] {
        assert!(f.get(key).is_some(), "functions[0] lacks {key}: {f}");
    }
    assert_eq!(f["class"], "ncm");
    assert_eq!(f["bulk_in"], 0x81);
    assert_eq!(v["chosen"], 0);
    assert_eq!(v["error"], serde_json::Value::Null);
}

#[test]
fn text_with_strings_quotes_them() {
    let parsed = descriptor::parse(&fixture("ncm"));
    let strings: Strings = [(2u8, "Gadget"), (6, "ee1e4bb2c4e5")].into_iter().collect();
    let text = dump::render_text(&parsed, &strings);
    assert!(
        text.contains("iProduct                 2 \"Gadget\"\n"),
        "{text}"
    );
    assert!(
        text.contains("iMacAddress              6 \"ee1e4bb2c4e5\"\n"),
        "{text}"
    );
    assert!(text.contains("MAC string 6 \"ee1e4bb2c4e5\"\n"), "{text}");
}

// ---------------------------------------------------------------------------------------
// Malformed variants of every fixture.

#[test]
fn every_truncation_is_a_clean_error_or_a_prefix() {
    for name in FIXTURES {
        let bytes = fixture(name);
        let full = descriptor::parse(&bytes);
        for n in 0..bytes.len() {
            let parsed = exercise(&bytes[..n]);
            match &parsed.error {
                Some(e) => assert!(e.offset <= n, "{name}[..{n}]: {e}"),
                None => {
                    // Cut exactly between configurations: the configurations that remain
                    // are the full parse's first ones.
                    let k = parsed.set.configurations.len();
                    assert!(
                        k < full.set.configurations.len(),
                        "{name}[..{n}] parsed whole"
                    );
                    assert_eq!(parsed.set.configurations[..], full.set.configurations[..k]);
                }
            }
        }
    }
}

#[test]
fn b_length_0_and_1_at_every_descriptor() {
    for name in FIXTURES {
        let bytes = fixture(name);
        for offset in descriptor_offsets(&bytes) {
            for bad in [0u8, 1] {
                let mut b = bytes.clone();
                b[offset] = bad;
                let parsed = exercise(&b);
                assert_eq!(
                    parsed.error,
                    Some(ParseError {
                        offset,
                        kind: ParseErrorKind::BadLength { b_length: bad }
                    }),
                    "{name}: bLength {bad} at byte {offset}"
                );
            }
        }
    }
}

#[test]
fn descriptor_running_past_its_block_or_the_data() {
    for name in FIXTURES {
        let bytes = fixture(name);
        let parsed = descriptor::parse(&bytes);
        let config_offsets: Vec<usize> =
            parsed.set.configurations.iter().map(|c| c.offset).collect();
        let offsets = descriptor_offsets(&bytes);
        for &offset in &offsets {
            // bLength 255 from here runs past the end of the data.
            let mut b = bytes.clone();
            b[offset] = 0xff;
            let e = exercise(&b).error;
            if offset + 0xff > bytes.len() {
                let e = e.expect("an error");
                assert_eq!(
                    e.offset, offset,
                    "{name}: bLength 255 at byte {offset}: {e}"
                );
                assert!(
                    matches!(e.kind, ParseErrorKind::PastEnd { b_length: 0xff, .. }),
                    "{name}: bLength 255 at byte {offset}: {e}"
                );
            }
            // A slightly longer bLength swallows the next descriptor's first bytes: whatever
            // follows, no panic and an error (if any) inside the input.
            for grow in [1u8, 3] {
                let mut b = bytes.clone();
                b[offset] = bytes[offset].saturating_add(grow);
                exercise(&b);
            }
        }
        // The last descriptor, lengthened past the end of the data (and of its block).
        let last = *offsets.last().expect("descriptors");
        let mut b = bytes.clone();
        b[last] += 2;
        let e = exercise(&b).error.expect("error");
        assert!(
            e.offset == last || config_offsets.contains(&e.offset),
            "{name}: last descriptor at {last}, error {e}"
        );
    }
}

#[test]
fn w_total_length_too_large_and_too_small() {
    for name in FIXTURES {
        let bytes = fixture(name);
        let parsed = descriptor::parse(&bytes);
        for c in &parsed.set.configurations {
            let at = c.offset + 2;
            let set_total = |total: u16| {
                let mut b = bytes.clone();
                b[at..at + 2].copy_from_slice(&total.to_le_bytes());
                b
            };
            let available = bytes.len() - c.offset;
            let large = u16::try_from(available + 1).expect("small fixture");
            let p = exercise(&set_total(large));
            assert_eq!(
                p.error,
                Some(ParseError {
                    offset: c.offset,
                    kind: ParseErrorKind::TotalLengthTooLarge {
                        total_length: large,
                        available
                    },
                }),
                "{name} config {}",
                c.value
            );
            // What is there still parsed.
            let kept = p
                .set
                .configurations
                .iter()
                .find(|k| k.offset == c.offset)
                .expect("kept");
            assert_eq!(kept.interfaces.len(), c.interfaces.len(), "{name}");

            for small in [0u16, 8] {
                let p = exercise(&set_total(small));
                assert_eq!(
                    p.error,
                    Some(ParseError {
                        offset: c.offset,
                        kind: ParseErrorKind::TotalLengthTooSmall {
                            total_length: small,
                            needed: 9
                        },
                    }),
                    "{name}"
                );
            }
            // One byte short: the last descriptor of the block crosses wTotalLength.
            let short = c.total_length - 1;
            let p = exercise(&set_total(short));
            assert_eq!(
                p.error,
                Some(ParseError {
                    offset: c.offset,
                    kind: ParseErrorKind::TotalLengthTooSmall {
                        total_length: short,
                        needed: usize::from(c.total_length),
                    },
                }),
                "{name}"
            );
        }
    }
}

#[test]
fn union_naming_a_missing_interface_is_rejected() {
    for name in FIXTURES {
        let bytes = fixture(name);
        let unions: Vec<usize> = descriptor_offsets(&bytes)
            .into_iter()
            .filter(|&o| bytes[o + 1] == 0x24 && bytes.get(o + 2) == Some(&0x06))
            .collect();
        for offset in unions {
            let mut b = bytes.clone();
            b[offset + 4] = 0x7f;
            let parsed = exercise(&b);
            assert_eq!(parsed.error, None);
            let result = probe::probe_all(&parsed.set);
            let control = bytes[offset + 3];
            let rejected: Vec<_> = result
                .rejected
                .iter()
                .filter(|r| r.interface == control && r.reason.contains("data interface 127"))
                .collect();
            // The ACM Union in acm_ncm is not a network candidate, so nothing is rejected.
            if name == "acm_ncm" && control == 0 {
                assert!(rejected.is_empty());
                continue;
            }
            assert_eq!(
                rejected.len(),
                1,
                "{name}: union at {offset}: {:?}",
                result.rejected
            );
            assert!(
                rejected[0]
                    .reason
                    .ends_with("which does not exist in configuration 1")
                    || rejected[0]
                        .reason
                        .ends_with("which does not exist in configuration 2"),
                "{}",
                rejected[0].reason
            );
        }
    }
}

#[test]
fn bulk_endpoint_with_w_max_packet_size_0_is_rejected() {
    for name in FIXTURES {
        let bytes = fixture(name);
        let parsed = descriptor::parse(&bytes);
        for f in probe::probe(&parsed.set) {
            let config = parsed.set.configuration(f.configuration).expect("config");
            let ep = config
                .alternates(f.data_interface)
                .find(|i| i.alt_setting == f.data_alt_setting)
                .and_then(|i| i.endpoints.iter().find(|e| e.address == f.bulk_in))
                .expect("bulk IN endpoint");
            let mut b = bytes.clone();
            b[ep.offset + 4] = 0;
            b[ep.offset + 5] = 0;
            let parsed = exercise(&b);
            let result = probe::probe_all(&parsed.set);
            assert!(
                !result
                    .functions
                    .iter()
                    .any(|g| g.configuration == f.configuration
                        && g.data_interface == f.data_interface),
                "{name}: still driven"
            );
            let reason = format!("bulk IN endpoint 0x{:02x} has wMaxPacketSize 0", f.bulk_in);
            assert!(
                result
                    .rejected
                    .iter()
                    .any(|r| r.configuration == f.configuration && r.reason.ends_with(&reason)),
                "{name}: {:?}",
                result.rejected
            );
        }
    }
}

#[test]
fn bulk_endpoint_that_is_really_interrupt_or_iso_is_rejected() {
    let bytes = fixture("ecm");
    let parsed = descriptor::parse(&bytes);
    let f = &probe::probe(&parsed.set)[0];
    let config = parsed.set.configuration(f.configuration).expect("config");
    let ep = config
        .alternates(f.data_interface)
        .find(|i| i.alt_setting == f.data_alt_setting)
        .and_then(|i| i.endpoints.iter().find(|e| e.address == f.bulk_out))
        .expect("bulk OUT");
    for (attributes, word) in [(0x03u8, "interrupt"), (0x01, "isochronous")] {
        let mut b = bytes.clone();
        b[ep.offset + 3] = attributes;
        let result = probe::probe_all(&exercise(&b).set);
        assert!(result.functions.is_empty());
        assert_eq!(
            result.rejected[0].reason,
            format!("interface 1 alt 1: endpoint 0x02 is {word}, not bulk")
        );
    }
}

/// xorshift64*: deterministic, no extra crates.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn pseudo_random_byte_flips_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut errors = 0;
    let mut clean = 0;
    for name in FIXTURES {
        let bytes = fixture(name);
        for _ in 0..600 {
            let mut b = bytes.clone();
            for _ in 0..=rng.below(3) {
                let i = rng.below(b.len());
                b[i] = match rng.below(4) {
                    0 => 0,
                    1 => 0xff,
                    2 => b[i] ^ (1 << rng.below(8)),
                    _ => rng.next() as u8,
                };
            }
            if rng.below(8) == 0 {
                let cut = rng.below(b.len());
                b.truncate(cut);
            }
            match exercise(&b).error {
                Some(_) => errors += 1,
                None => clean += 1,
            }
        }
    }
    // Both outcomes happen: the flips are neither all harmless nor all fatal.
    assert!(
        errors > 100 && clean > 100,
        "errors {errors}, clean {clean}"
    );
}

/// Inputs the `descriptors` fuzz target found, each once a probe bug: in order, an interface
/// listing alternate setting 0 twice inside a configuration whose wTotalLength runs past the
/// data; two configurations sharing bConfigurationValue 2; an alternate setting listing
/// endpoint 0x02 twice (isochronous, then bulk). Every function probed must name endpoints
/// that exist, with the right direction and type.
#[test]
fn fuzz_regressions() {
    let cases = [
        "12010002020000402505a2a4000001020a0209024300020209c03209040036000202ff06052400100105\
         240100010424020005240600010705810310002009040100021100000407058202400000070502024000\
         0009027000020107c032090400000102060005052400100105240600010d240f0300000000ea05000000\
         0705810310002009040100000a00000009040100f80a0000040705820240000007050202400000",
        "12010002020000402505a2a4000001020a0209024300020209c03209040036000202ff06052400100105\
         240100010424020005240600010705810300002009040100020a0000040705820240000007000001020a\
         0209024300020209c03209040036000202ff060524001001052401000104240200052406000107058103\
         00002009040100020a000004070582024000000705020240000009025000020107c03209040000010206\
         00ffffffffffffffffffffff820240000007050202400000",
        "12010002000000406b1d04011206010203010902580002010480fa080b00020206000809040000010206\
         0005052400100105240600010d240f0600000000ea050000000705850310000909040100000a00000707\
         05810200020007050205810200020007050202000200",
    ];
    for hex in cases {
        let hex: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let parsed = exercise(&bytes);
        for f in probe::probe(&parsed.set) {
            let config = parsed
                .set
                .configuration(f.configuration)
                .expect("configuration");
            let alt = config
                .alternates(f.data_interface)
                .find(|i| i.alt_setting == f.data_alt_setting)
                .expect("alternate setting");
            let ep = |a: u8| {
                alt.endpoints
                    .iter()
                    .find(|e| e.address == a)
                    .expect("endpoint")
            };
            assert!(ep(f.bulk_in).is_in() && !ep(f.bulk_out).is_in());
            assert_eq!(ep(f.bulk_in).transfer_type, descriptor::TransferType::Bulk);
            assert_eq!(ep(f.bulk_out).transfer_type, descriptor::TransferType::Bulk);
        }
    }
}

#[test]
fn garbage_inputs() {
    for bytes in [
        &[][..],
        &[0x00],
        &[0x12],
        &[0x12, 0x01],
        &[0x02, 0x02],
        &[0x09, 0x02, 0xff, 0xff, 0, 0, 0, 0, 0],
        &[
            0x09, 0x02, 0x09, 0x00, 0, 0, 0, 0, 0, 0x09, 0x02, 0x09, 0x00, 0, 0, 0, 0, 0,
        ],
        &[0xff; 64],
        &[0x02; 64],
    ] {
        exercise(bytes);
    }
}

// ---------------------------------------------------------------------------------------
// The hand-built fixtures.

#[test]
fn handmade_sets_parse_cleanly() {
    // Whatever the .bin files hold (hand-built or lab captures), the hand-built sets must
    // stay valid.
    for (name, bytes) in handmade::all() {
        let parsed = descriptor::parse(&bytes);
        assert_eq!(parsed.error, None, "{name}");
        assert!(parsed.warnings.is_empty(), "{name}: {:?}", parsed.warnings);
    }
}

/// Descriptor sets built by hand from the Linux gadget function drivers
/// (`drivers/usb/gadget/function/f_{ncm,ecm,rndis,eem,subset,acm}.c`) as configured through
/// configfs on `dummy_hcd` at high speed, and from QEMU's `hw/usb/dev-network.c`. Each line
/// is one descriptor.
///
/// Facts assumed (not captured): configfs strings are allocated in order: 1 manufacturer,
/// 2 product, 3 serial, 4 configuration, then each function's strings in its
/// `usb_string` table order; `dummy_hcd` hands out ep1in-bulk, ep2out-bulk, ep5in-int,
/// ep6in-bulk, ep7out-bulk, ep10in-int in that order, and each function autoconfigures bulk
/// IN, bulk OUT, then the notification endpoint; high-speed interrupt intervals are
/// `USB_MS_TO_HS_INTERVAL(32)` = 9.
#[rustfmt::skip]
mod handmade {
    /// Every hand-built set by fixture name.
    pub fn all() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("ncm", ncm()),
            ("ecm", ecm()),
            ("rndis", rndis()),
            ("eem", eem()),
            ("geth", geth()),
            ("acm_ncm", acm_ncm()),
            ("qemu_usbnet", qemu_usbnet()),
        ]
    }

    /// A configfs gadget's device descriptor: 1d6b:0104 (Linux Foundation Multifunction
    /// Composite Gadget), bcdDevice 6.12, strings 1-3, one configuration.
    fn gadget_device(class: u8, subclass: u8, protocol: u8) -> Vec<u8> {
        vec![
            0x12, 0x01,       // bLength, DEVICE
            0x00, 0x02,       // bcdUSB 2.00
            class, subclass, protocol,
            0x40,             // bMaxPacketSize0 64
            0x6b, 0x1d,       // idVendor 0x1d6b
            0x04, 0x01,       // idProduct 0x0104
            0x12, 0x06,       // bcdDevice 6.12
            0x01, 0x02, 0x03, // iManufacturer, iProduct, iSerialNumber
            0x01,             // bNumConfigurations
        ]
    }

    /// A configuration header (wTotalLength computed) followed by `body`.
    fn config(value: u8, string: u8, attributes: u8, max_power: u8, interfaces: u8, body: &[&[u8]]) -> Vec<u8> {
        let total = 9 + body.iter().map(|d| d.len()).sum::<usize>();
        let total = u16::try_from(total).expect("fits");
        let mut v = vec![0x09, 0x02];
        v.extend_from_slice(&total.to_le_bytes());
        v.extend_from_slice(&[interfaces, value, string, attributes, max_power]);
        for d in body {
            assert_eq!(usize::from(d[0]), d.len(), "bLength of {d:02x?}");
            v.extend_from_slice(d);
        }
        v
    }

    const HS_BULK_512: [u8; 2] = [0x00, 0x02];

    /// f_ncm: IAD, control (02/0d/00) + header, union, ethernet, NCM, notify; data alt 0
    /// (no endpoints) and alt 1 (bulk IN, bulk OUT). Strings 5 control, 6 MAC, 7 data, 8 IAD.
    pub fn ncm() -> Vec<u8> {
        let mut v = gadget_device(0x00, 0x00, 0x00);
        v.extend(config(1, 4, 0x80, 0xfa, 2, &[
            &[0x08, 0x0b, 0x00, 0x02, 0x02, 0x0d, 0x00, 0x08],             // IAD if 0-1, NCM, iFunction 8
            &[0x09, 0x04, 0x00, 0x00, 0x01, 0x02, 0x0d, 0x00, 0x05],       // interface 0 alt 0, 02/0d/00
            &[0x05, 0x24, 0x00, 0x10, 0x01],                               // CDC header 1.10
            &[0x05, 0x24, 0x06, 0x00, 0x01],                               // union: control 0, data 1
            &[0x0d, 0x24, 0x0f, 0x06, 0x00, 0x00, 0x00, 0x00, 0xea, 0x05, 0x00, 0x00, 0x00], // ethernet: iMAC 6, mss 1514
            &[0x06, 0x24, 0x1a, 0x00, 0x01, 0x11],                         // NCM 1.00, filter + CRC mode
            &[0x07, 0x05, 0x85, 0x03, 0x10, 0x00, 0x09],                   // EP 5 IN interrupt 16 bytes, 2^(9-1) uframes
            &[0x09, 0x04, 0x01, 0x00, 0x00, 0x0a, 0x00, 0x01, 0x07],       // interface 1 alt 0, CDC data, NTB
            &[0x09, 0x04, 0x01, 0x01, 0x02, 0x0a, 0x00, 0x01, 0x07],       // interface 1 alt 1
            &[0x07, 0x05, 0x81, 0x02, HS_BULK_512[0], HS_BULK_512[1], 0x00], // EP 1 IN bulk 512
            &[0x07, 0x05, 0x02, 0x02, HS_BULK_512[0], HS_BULK_512[1], 0x00], // EP 2 OUT bulk 512
        ]));
        v
    }

    /// f_ecm: as NCM without the NCM descriptor, data protocol 0. Strings 5 control, 6 MAC,
    /// 7 data, 8 IAD.
    pub fn ecm() -> Vec<u8> {
        let mut v = gadget_device(0x00, 0x00, 0x00);
        v.extend(config(1, 4, 0x80, 0xfa, 2, &[
            &[0x08, 0x0b, 0x00, 0x02, 0x02, 0x06, 0x00, 0x08],             // IAD if 0-1, ECM
            &[0x09, 0x04, 0x00, 0x00, 0x01, 0x02, 0x06, 0x00, 0x05],       // interface 0, 02/06/00
            &[0x05, 0x24, 0x00, 0x10, 0x01],                               // CDC header 1.10
            &[0x05, 0x24, 0x06, 0x00, 0x01],                               // union 0 -> 1
            &[0x0d, 0x24, 0x0f, 0x06, 0x00, 0x00, 0x00, 0x00, 0xea, 0x05, 0x00, 0x00, 0x00], // ethernet
            &[0x07, 0x05, 0x85, 0x03, 0x10, 0x00, 0x09],                   // EP 5 IN interrupt 16
            &[0x09, 0x04, 0x01, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x07],       // interface 1 alt 0
            &[0x09, 0x04, 0x01, 0x01, 0x02, 0x0a, 0x00, 0x00, 0x07],       // interface 1 alt 1
            &[0x07, 0x05, 0x81, 0x02, 0x00, 0x02, 0x00],                   // EP 1 IN bulk 512
            &[0x07, 0x05, 0x02, 0x02, 0x00, 0x02, 0x00],                   // EP 2 OUT bulk 512
        ]));
        v
    }

    /// f_rndis: IAD (02/06/00, the configfs default), control 02/02/ff + header, call
    /// management, ACM, union, notify (8 bytes); data without alternate settings. Strings 5
    /// control, 6 data, 7 IAD.
    pub fn rndis() -> Vec<u8> {
        let mut v = gadget_device(0x00, 0x00, 0x00);
        v.extend(config(1, 4, 0x80, 0xfa, 2, &[
            &[0x08, 0x0b, 0x00, 0x02, 0x02, 0x06, 0x00, 0x07],             // IAD if 0-1, 02/06/00
            &[0x09, 0x04, 0x00, 0x00, 0x01, 0x02, 0x02, 0xff, 0x05],       // interface 0, 02/02/ff
            &[0x05, 0x24, 0x00, 0x10, 0x01],                               // CDC header 1.10
            &[0x05, 0x24, 0x01, 0x00, 0x01],                               // call management, data 1
            &[0x04, 0x24, 0x02, 0x00],                                     // ACM, no capabilities
            &[0x05, 0x24, 0x06, 0x00, 0x01],                               // union 0 -> 1
            &[0x07, 0x05, 0x85, 0x03, 0x08, 0x00, 0x09],                   // EP 5 IN interrupt 8
            &[0x09, 0x04, 0x01, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x06],       // interface 1, CDC data
            &[0x07, 0x05, 0x81, 0x02, 0x00, 0x02, 0x00],                   // EP 1 IN bulk 512
            &[0x07, 0x05, 0x02, 0x02, 0x00, 0x02, 0x00],                   // EP 2 OUT bulk 512
        ]));
        v
    }

    /// f_eem: one interface 02/0c/07 with bulk IN and OUT, no IAD. String 5.
    pub fn eem() -> Vec<u8> {
        let mut v = gadget_device(0x00, 0x00, 0x00);
        v.extend(config(1, 4, 0x80, 0xfa, 1, &[
            &[0x09, 0x04, 0x00, 0x00, 0x02, 0x02, 0x0c, 0x07, 0x05],       // interface 0, 02/0c/07
            &[0x07, 0x05, 0x81, 0x02, 0x00, 0x02, 0x00],                   // EP 1 IN bulk 512
            &[0x07, 0x05, 0x02, 0x02, 0x00, 0x02, 0x00],                   // EP 2 OUT bulk 512
        ]));
        v
    }

    /// f_subset ("geth"): one interface 02/0a/00 with header, MDLM (SAFE GUID), MDLM detail
    /// (SAFE, raw framing), ethernet, bulk IN and OUT. Strings 5 interface, 6 MAC.
    pub fn geth() -> Vec<u8> {
        let mut v = gadget_device(0x00, 0x00, 0x00);
        v.extend(config(1, 4, 0x80, 0xfa, 1, &[
            &[0x09, 0x04, 0x00, 0x00, 0x02, 0x02, 0x0a, 0x00, 0x05],       // interface 0, 02/0a/00
            &[0x05, 0x24, 0x00, 0x10, 0x01],                               // CDC header 1.10
            &[0x15, 0x24, 0x12, 0x00, 0x01,                                // MDLM 1.00, GUID SAFE
              0x5d, 0x34, 0xcf, 0x66, 0x11, 0x18, 0x11, 0xd6,
              0xa2, 0x1a, 0x00, 0x01, 0x02, 0xca, 0x9a, 0x7f],
            &[0x06, 0x24, 0x13, 0x00, 0x00, 0x00],                         // MDLM detail: SAFE, caps 0, raw
            &[0x0d, 0x24, 0x0f, 0x06, 0x00, 0x00, 0x00, 0x00, 0xea, 0x05, 0x00, 0x00, 0x00], // ethernet
            &[0x07, 0x05, 0x81, 0x02, 0x00, 0x02, 0x00],                   // EP 1 IN bulk 512
            &[0x07, 0x05, 0x02, 0x02, 0x00, 0x02, 0x00],                   // EP 2 OUT bulk 512
        ]));
        v
    }

    /// Composite f_acm + f_ncm, each with an IAD; device class EF/02/01. ACM strings 5
    /// control, 6 data, 7 IAD; NCM strings 8 control, 9 MAC, 10 data, 11 IAD.
    pub fn acm_ncm() -> Vec<u8> {
        let mut v = gadget_device(0xef, 0x02, 0x01);
        v.extend(config(1, 4, 0x80, 0xfa, 4, &[
            // ACM, interfaces 0-1
            &[0x08, 0x0b, 0x00, 0x02, 0x02, 0x02, 0x01, 0x07],             // IAD if 0-1, 02/02/01
            &[0x09, 0x04, 0x00, 0x00, 0x01, 0x02, 0x02, 0x01, 0x05],       // interface 0, ACM AT
            &[0x05, 0x24, 0x00, 0x10, 0x01],                               // CDC header 1.10
            &[0x05, 0x24, 0x01, 0x00, 0x01],                               // call management, data 1
            &[0x04, 0x24, 0x02, 0x02],                                     // ACM: line coding
            &[0x05, 0x24, 0x06, 0x00, 0x01],                               // union 0 -> 1
            &[0x07, 0x05, 0x85, 0x03, 0x0a, 0x00, 0x09],                   // EP 5 IN interrupt 10
            &[0x09, 0x04, 0x01, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x06],       // interface 1, CDC data
            &[0x07, 0x05, 0x81, 0x02, 0x00, 0x02, 0x00],                   // EP 1 IN bulk 512
            &[0x07, 0x05, 0x02, 0x02, 0x00, 0x02, 0x00],                   // EP 2 OUT bulk 512
            // NCM, interfaces 2-3
            &[0x08, 0x0b, 0x02, 0x02, 0x02, 0x0d, 0x00, 0x0b],             // IAD if 2-3, NCM
            &[0x09, 0x04, 0x02, 0x00, 0x01, 0x02, 0x0d, 0x00, 0x08],       // interface 2, 02/0d/00
            &[0x05, 0x24, 0x00, 0x10, 0x01],                               // CDC header 1.10
            &[0x05, 0x24, 0x06, 0x02, 0x03],                               // union 2 -> 3
            &[0x0d, 0x24, 0x0f, 0x09, 0x00, 0x00, 0x00, 0x00, 0xea, 0x05, 0x00, 0x00, 0x00], // ethernet, iMAC 9
            &[0x06, 0x24, 0x1a, 0x00, 0x01, 0x11],                         // NCM 1.00
            &[0x07, 0x05, 0x8a, 0x03, 0x10, 0x00, 0x09],                   // EP 10 IN interrupt 16
            &[0x09, 0x04, 0x03, 0x00, 0x00, 0x0a, 0x00, 0x01, 0x0a],       // interface 3 alt 0
            &[0x09, 0x04, 0x03, 0x01, 0x02, 0x0a, 0x00, 0x01, 0x0a],       // interface 3 alt 1
            &[0x07, 0x05, 0x86, 0x02, 0x00, 0x02, 0x00],                   // EP 6 IN bulk 512
            &[0x07, 0x05, 0x07, 0x02, 0x00, 0x02, 0x00],                   // EP 7 OUT bulk 512
        ]));
        v
    }

    /// QEMU usb-net: full speed, 0525:a4a2, class 02; configuration index 0 is RNDIS
    /// (value 2), index 1 is CDC-ECM (value 1). Strings: 1 manufacturer, 2 product,
    /// 3 MAC, 4 data, 5 control, 6 RNDIS control, 7 CDC, 9 RNDIS, 10 serial.
    pub fn qemu_usbnet() -> Vec<u8> {
        let mut v = vec![
            0x12, 0x01, 0x00, 0x02, // DEVICE, bcdUSB 2.00
            0x02, 0x00, 0x00,       // Communications
            0x40,                   // bMaxPacketSize0 64
            0x25, 0x05, 0xa2, 0xa4, // 0525:a4a2
            0x00, 0x00,             // bcdDevice 0.00
            0x01, 0x02, 0x0a,       // strings
            0x02,                   // bNumConfigurations
        ];
        v.extend(config(2, 9, 0xc0, 0x32, 2, &[
            &[0x09, 0x04, 0x00, 0x00, 0x01, 0x02, 0x02, 0xff, 0x06],       // interface 0, RNDIS control
            &[0x05, 0x24, 0x00, 0x10, 0x01],                               // CDC header 1.10
            &[0x05, 0x24, 0x01, 0x00, 0x01],                               // call management, data 1
            &[0x04, 0x24, 0x02, 0x00],                                     // ACM
            &[0x05, 0x24, 0x06, 0x00, 0x01],                               // union 0 -> 1
            &[0x07, 0x05, 0x81, 0x03, 0x10, 0x00, 0x20],                   // EP 1 IN interrupt 16, 32 ms
            &[0x09, 0x04, 0x01, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x04],       // interface 1, CDC data
            &[0x07, 0x05, 0x82, 0x02, 0x40, 0x00, 0x00],                   // EP 2 IN bulk 64
            &[0x07, 0x05, 0x02, 0x02, 0x40, 0x00, 0x00],                   // EP 2 OUT bulk 64
        ]));
        v.extend(config(1, 7, 0xc0, 0x32, 2, &[
            &[0x09, 0x04, 0x00, 0x00, 0x01, 0x02, 0x06, 0x00, 0x05],       // interface 0, ECM control
            &[0x05, 0x24, 0x00, 0x10, 0x01],                               // CDC header 1.10
            &[0x05, 0x24, 0x06, 0x00, 0x01],                               // union 0 -> 1
            &[0x0d, 0x24, 0x0f, 0x03, 0x00, 0x00, 0x00, 0x00, 0xea, 0x05, 0x00, 0x00, 0x00], // ethernet, iMAC 3
            &[0x07, 0x05, 0x81, 0x03, 0x10, 0x00, 0x20],                   // EP 1 IN interrupt 16, 32 ms
            &[0x09, 0x04, 0x01, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00],       // interface 1 alt 0 (off)
            &[0x09, 0x04, 0x01, 0x01, 0x02, 0x0a, 0x00, 0x00, 0x04],       // interface 1 alt 1
            &[0x07, 0x05, 0x82, 0x02, 0x40, 0x00, 0x00],                   // EP 2 IN bulk 64
            &[0x07, 0x05, 0x02, 0x02, 0x40, 0x00, 0x00],                   // EP 2 OUT bulk 64
        ]));
        v
    }
}
