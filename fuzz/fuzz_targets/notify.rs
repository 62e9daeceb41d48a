//! Fuzz the notification reader with arbitrary interrupt transfers.
//!
//! The input is cut into transfers: each starts with a length byte (mod 33), then that many
//! bytes. The reader must never panic, never yield more than one notification per 8 bytes fed,
//! and must stay usable: after the fuzzed stream, a NETWORK_CONNECTION in its own transfer is
//! always understood (the resync rule).
#![no_main]

use libfuzzer_sys::fuzz_target;
use usbnetd::wire::{Notification, NotificationReader, NotificationView};

fuzz_target!(|data: &[u8]| {
    let _ = Notification::parse_bytes(data);
    if let Ok(v) = NotificationView::new_checked(data) {
        assert!(v.data().len() + 8 <= data.len());
    }

    let mut reader = NotificationReader::new();
    let mut out: Vec<Notification> = Vec::new();
    let mut fed = 0usize;
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n % 33).min(tail.len());
        let (transfer, tail) = tail.split_at(n);
        let before = out.len();
        let got = reader.feed(transfer, &mut out);
        assert_eq!(out.len() - before, got);
        fed += transfer.len();
        rest = tail;
    }
    assert!(out.len() * 8 <= fed);

    let up = Notification::NetworkConnection { connected: true };
    let mut last = Vec::new();
    reader.feed(&up.to_bytes(0), &mut last);
    assert_eq!(last, [up]);
    assert!(!reader.is_pending());
});
