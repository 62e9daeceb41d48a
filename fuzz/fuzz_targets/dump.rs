//! Fuzz `usbnetd dump`: parse arbitrary bytes as descriptors, then render the tree as text
//! and as JSON, with the bytes also offered as a string descriptor.
//!
//! Invariants: nothing panics; the text always ends with the probe's verdict; the JSON
//! serializes. (`descriptors` fuzzes the parsers alone, many times faster.)
//!
//! Seeds: those of `descriptors` (`fuzz/seeds/descriptors`, `tests/fixtures/*.bin`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use usbnetd::descriptor;
use usbnetd::dump::{self, Strings};

fuzz_target!(|data: &[u8]| {
    let parsed = descriptor::parse(data);
    let strings: Strings = descriptor::decode_string(data)
        .ok()
        .map(|s| (2u8, s))
        .into_iter()
        .collect();
    let text = dump::render_text(&parsed, &strings);
    assert!(text.contains("usbnetd would drive:"));
    let json = dump::render_json(&parsed, &strings);
    assert!(!json.to_string().is_empty());
});
