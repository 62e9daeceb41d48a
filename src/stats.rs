//! Datapath counters: written by the ring threads with relaxed atomics (each counter is
//! independent; readers want a recent value, not a consistent cut), read by the stats file
//! writer and by `usbnetd stats`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Live counters of one running instance.
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A copy of [`Stats`] at one moment, for JSON and display.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Snapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Stats {
            /// Read every counter.
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        impl Snapshot {
            /// `(name, value)` pairs in declaration order, for text output.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }
        }
    };
}

counters! {
    /// Frames written to the TAP.
    rx_frames,
    /// Bytes of frames written to the TAP.
    rx_bytes,
    /// Bulk IN transfers completed with data.
    rx_transfers,
    /// TCP super-packets written to the TAP, each merged from several received segments.
    rx_gro_packets,
    /// IN transfers rejected whole by the class (bad NTB header, ...).
    rx_drop_bad_transfer,
    /// Single frames/datagrams rejected by the class.
    rx_drop_bad_frame,
    /// Writes the TAP refused (interface down, queue full).
    rx_drop_tap,
    /// Frames read from the TAP and handed to the device (in OUT transfers).
    tx_frames,
    /// Bytes of those frames.
    tx_bytes,
    /// TCP super-packets from the TAP cut into frames here (TSO).
    tx_gso_packets,
    /// Bulk OUT transfers submitted (NTBs for NCM).
    tx_transfers,
    /// Zero-length packets sent after transfers ending on a packet boundary.
    tx_zlps,
    /// Times the OUT ring was full and reading from the TAP stopped (NETDEV_TX_BUSY).
    tx_busy,
    /// Frames dropped because no transfer can carry them (larger than the device takes,
    /// shorter than an Ethernet header).
    tx_drop_invalid,
    /// OUT transfers that failed (their frames are lost; a stall counts once, however
    /// many transfers it failed; collected lazily, so they may show up to half a ring
    /// late).
    tx_errors,
    /// Frames lost in OUT transfers that failed (or were unlinked to clear a halt, or by
    /// the TX watchdog): the frames behind `tx_errors` and `tx_timeouts`.
    tx_drop_error,
    /// Times the OUT ring was full for 5 s with no transfer completing, and its
    /// transfers were unlinked (usbnet's `tx_timeout`).
    tx_timeouts,
    /// IN transfers that failed (not counting cancellation at exit).
    rx_errors,
    /// Stalled endpoints cleared with CLEAR_FEATURE(ENDPOINT_HALT).
    stalls_cleared,
    /// Interrupt notifications received.
    notifications,
    /// Carrier changes reported by the device.
    carrier_changes,
    /// Times the device was reset under usbnetd (its interfaces taken away) and usbnetd
    /// claimed and bound it again.
    device_resets,
    /// Times the datapath thread woke from `poll(2)`: transfers per wake-up show how well
    /// completions batch.
    wakeups,
    /// Last reported downstream speed (bit/s: a CDC speed notification, or RNDIS
    /// OID_GEN_LINK_SPEED at bind), 0 when unknown.
    speed_down_bps,
    /// Last reported upstream speed (bit/s), 0 when unknown.
    speed_up_bps,
}

impl Stats {
    /// Add `n` to counter `c`.
    #[inline]
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Set counter `c` to `v`.
    #[inline]
    pub fn set(c: &AtomicU64, v: u64) {
        c.store(v, Ordering::Relaxed);
    }
}
