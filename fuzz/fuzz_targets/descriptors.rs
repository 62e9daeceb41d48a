//! Fuzz the descriptor parsers: parse → probe → choose on arbitrary bytes, plus the string
//! decoders. (`dump` fuzzes what renders the parsed tree.)
//!
//! Invariants: nothing panics; a parse error points inside the input; every probed function
//! names endpoints that exist in its configuration with the right direction and a non-zero
//! packet size; the choice indexes the functions.
//!
//! Seeds: `tests/fixtures/*.bin` (run with `cargo fuzz run descriptors corpus/descriptors
//! ../tests/fixtures`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use usbnetd::descriptor::{self, TransferType};
use usbnetd::probe;

fuzz_target!(|data: &[u8]| {
    let _ = descriptor::decode_string(data);
    let _ = descriptor::decode_language_ids(data);
    let single = descriptor::parse_config(data);
    assert!(single.set.configurations.len() <= 1);

    let parsed = descriptor::parse(data);
    if let Some(e) = &parsed.error {
        assert!(
            e.offset <= data.len(),
            "error offset {} past {} bytes",
            e.offset,
            data.len()
        );
    }

    let result = probe::probe_all(&parsed.set);
    for f in &result.functions {
        let config = parsed
            .set
            .configuration(f.configuration)
            .expect("function's configuration");
        let alt = config
            .alternates(f.data_interface)
            .find(|i| i.alt_setting == f.data_alt_setting)
            .expect("data alternate setting");
        let find = |address: u8| alt.endpoints.iter().find(|e| e.address == address);
        let bulk_in = find(f.bulk_in).expect("bulk IN endpoint");
        let bulk_out = find(f.bulk_out).expect("bulk OUT endpoint");
        assert!(bulk_in.is_in() && !bulk_out.is_in());
        assert_eq!(bulk_in.transfer_type, TransferType::Bulk);
        assert_eq!(bulk_out.transfer_type, TransferType::Bulk);
        assert!(bulk_in.max_packet_size > 0 && bulk_out.max_packet_size > 0);
        assert_eq!(f.max_packet_size, bulk_in.max_packet_size);
        if let Some(c) = f.control_interface {
            assert_ne!(c, f.data_interface);
        }
        let _ = f.to_string();
    }
    let choice = probe::choose(&result.functions);
    if let Some(c) = &choice {
        assert!(c.index < result.functions.len());
        assert!(!c.reason.is_empty());
    }
    assert_eq!(result.functions.is_empty(), choice.is_none());
});
