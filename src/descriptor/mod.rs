//! USB descriptors: checked zero-copy views over device-supplied bytes, and the owned tree
//! [`parse`] builds from the descriptor set usbfs returns for `/dev/bus/usb/BBB/DDD` (the
//! device descriptor followed by every configuration's complete block, the same bytes as
//! sysfs `descriptors`).
//!
//! # The view contract
//!
//! Every view ([`DeviceDescriptor`], [`ConfigurationDescriptor`], [`CdcUnion`], ...) wraps
//! any `T: AsRef<[u8]>` and follows the smoltcp `wire` pattern:
//!
//! * `new_unchecked(buf)` wraps the buffer and checks nothing. Its accessors index the
//!   buffer directly, so on a buffer that is too short they panic.
//! * `check_len()` does all the bounds arithmetic in one place: the buffer holds the 2-byte
//!   header, `bLength` is at least 2, at least the type's minimum and at most the buffer.
//!   **Once `check_len()` has returned `Ok(())`, no accessor panics**, including those of
//!   variable-length parts (`CdcUnion::subordinate_interfaces`, string data), which stop at
//!   `bLength`. The configuration view adds `check_total_length()` for `wTotalLength`.
//! * `new_checked(buf)` is `new_unchecked` + `check_len` + a check of `bDescriptorType`
//!   (and of the subtype for CDC functional descriptors). **Bytes from a device are
//!   untrusted: wrap them only with `new_checked`.** As long as the buffer is not changed
//!   afterwards, the accessors cannot fail.
//! * Setters exist to build descriptors (tests, fixtures). Do not use `new_checked` on a
//!   buffer you are about to fill: the check may pass on stale bytes from an earlier use of
//!   the buffer and then describe lengths you never wrote. Use `new_unchecked`, write every
//!   field, then `check_len`. Setting `bLength` invalidates an earlier `check_len`.
//!
//! All multi-byte fields are little-endian. Field offsets are named constants in each
//! module's `field` module. Nothing in this module uses `unsafe`, and every number the device
//! supplies is added with checked or saturating arithmetic.
//!
//! # The tree
//!
//! [`parse`] returns a [`Parsed`]: the [`DescriptorSet`] parsed so far, the first
//! [`ParseError`] (with its byte offset) if any, and [`Warning`]s. The parse stops at the
//! first error but keeps what came before, so `usbnetd dump` can print what parsed and then
//! the error. See [`parse`] for the rules.

pub mod cdc;
pub mod tree;
pub mod views;

pub use cdc::{
    CdcAcm, CdcCallManagement, CdcDescriptor, CdcEthernet, CdcFunctional, CdcHeader, CdcMdlm,
    CdcMdlmDetail, CdcNcm, CdcUnion,
};
pub use tree::{
    parse, parse_config, Configuration, DescriptorSet, Device, Endpoint, Iad, Interface, Parsed,
    RawDescriptor, SsCompanion, Warning, WarningKind,
};
pub use views::{
    descriptor_type, ConfigurationDescriptor, DescriptorHeader, DeviceDescriptor,
    EndpointDescriptor, InterfaceAssociation, InterfaceDescriptor, SsEndpointCompanion,
    StringDescriptor, TransferType,
};

/// A parse failure and where it happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {kind}")]
pub struct ParseError {
    /// Byte offset in the input of the descriptor (or configuration header) at fault.
    pub offset: usize,
    /// What went wrong.
    pub kind: ParseErrorKind,
}

/// What went wrong while parsing descriptors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Fewer bytes are left than a descriptor header needs.
    #[error("only {available} byte(s) left where a descriptor needs at least {needed}")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// `bLength` 0 or 1 cannot even cover the header (and would never advance).
    #[error("descriptor bLength {b_length} is invalid (at least 2 is needed)")]
    BadLength {
        /// The `bLength` found.
        b_length: u8,
    },
    /// `bLength` runs past the end of the data.
    #[error(
        "descriptor type 0x{descriptor_type:02x} bLength {b_length} runs past the end of the \
         data ({available} byte(s) left)"
    )]
    PastEnd {
        /// `bDescriptorType` of the descriptor.
        descriptor_type: u8,
        /// Its `bLength`.
        b_length: u8,
        /// Bytes left from the descriptor's start.
        available: usize,
    },
    /// `bLength` is below the minimum of the descriptor's type.
    #[error("{descriptor} descriptor bLength {b_length} is shorter than its minimum {minimum}")]
    TooShort {
        /// Which descriptor ("configuration", "CDC Union", ...).
        descriptor: &'static str,
        /// Its `bLength`.
        b_length: u8,
        /// The minimum for its type.
        minimum: usize,
    },
    /// A descriptor of another type was found where one type is required.
    #[error("expected descriptor type 0x{expected:02x}, found 0x{found:02x}")]
    WrongType {
        /// The type required.
        expected: u8,
        /// The type found.
        found: u8,
    },
    /// A CDC functional descriptor of another subtype than the view requires.
    #[error("expected CDC subtype 0x{expected:02x}, found 0x{found:02x}")]
    WrongSubtype {
        /// The subtype required.
        expected: u8,
        /// The subtype found.
        found: u8,
    },
    /// `wTotalLength` runs past the end of the data (the data may be truncated).
    #[error(
        "configuration wTotalLength {total_length} runs past the end of the data \
         ({available} bytes)"
    )]
    TotalLengthTooLarge {
        /// `wTotalLength`.
        total_length: u16,
        /// Bytes from the configuration header to the end of the data.
        available: usize,
    },
    /// `wTotalLength` is smaller than the header or than the descriptors of the block.
    #[error(
        "configuration wTotalLength {total_length} is smaller than the {needed} bytes its \
         descriptors need"
    )]
    TotalLengthTooSmall {
        /// `wTotalLength`.
        total_length: u16,
        /// Bytes from the configuration header to the end of the descriptor that crosses
        /// `wTotalLength` (or the header length).
        needed: usize,
    },
    /// An endpoint descriptor came before any interface descriptor of its configuration.
    #[error("endpoint descriptor before any interface descriptor")]
    EndpointOutsideInterface,
}

/// Decodes one string descriptor (`bDescriptorType` 0x03) as read from the device: UTF-16LE
/// text after the 2-byte header, up to `bLength`. Unpaired surrogates become U+FFFD; an odd
/// trailing byte is ignored. For string 0 (the language list) use [`decode_language_ids`].
pub fn decode_string(bytes: &[u8]) -> Result<String, ParseError> {
    StringDescriptor::new_checked(bytes)
        .map(|s| s.to_string_lossy())
        .map_err(|kind| ParseError { offset: 0, kind })
}

/// Decodes string descriptor 0: the language IDs the device supports (0x0409 is US
/// English).
pub fn decode_language_ids(bytes: &[u8]) -> Result<Vec<u16>, ParseError> {
    StringDescriptor::new_checked(bytes)
        .map(|s| s.language_ids())
        .map_err(|kind| ParseError { offset: 0, kind })
}

/// Serializes bytes as lowercase hex without separators (for `--json`).
pub(crate) fn hex_bytes<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&to_hex(bytes, ""))
}

/// Lowercase hex of `bytes`, joined by `sep`.
pub fn to_hex(bytes: &[u8], sep: &str) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display() {
        let e = ParseError {
            offset: 27,
            kind: ParseErrorKind::TotalLengthTooLarge {
                total_length: 300,
                available: 120,
            },
        };
        assert_eq!(
            e.to_string(),
            "at byte 27: configuration wTotalLength 300 runs past the end of the data (120 bytes)"
        );
    }

    #[test]
    fn strings() {
        assert_eq!(
            decode_string(&[0x0a, 0x03, b'Q', 0, b'E', 0, b'M', 0, b'U', 0]).unwrap(),
            "QEMU"
        );
        assert_eq!(decode_string(&[0x02, 0x03]).unwrap(), "");
        assert_eq!(
            decode_language_ids(&[0x04, 0x03, 0x09, 0x04]).unwrap(),
            vec![0x0409]
        );
        assert_eq!(
            decode_string(&[0x04, 0x02, 0, 0]).unwrap_err().kind,
            ParseErrorKind::WrongType {
                expected: 3,
                found: 2
            }
        );
        assert_eq!(
            decode_string(&[0x0c, 0x03, b'a', 0]).unwrap_err().kind,
            ParseErrorKind::PastEnd {
                descriptor_type: 3,
                b_length: 12,
                available: 4
            }
        );
        assert_eq!(
            decode_string(&[0x00, 0x03]).unwrap_err().kind,
            ParseErrorKind::BadLength { b_length: 0 }
        );
    }

    // Device + one configuration: interface 0 with an interrupt endpoint, an HID-like raw
    // descriptor, a CDC header, then interface 1 alt 0 and a SuperSpeed companion.
    #[rustfmt::skip]
    fn small_set() -> Vec<u8> {
        vec![
            // device (offset 0)
            0x12, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x40, 0x6b, 0x1d, 0x04, 0x01, 0x00, 0x01,
            0x01, 0x02, 0x03, 0x01,
            // configuration (offset 18), wTotalLength 9+9+5+7+6+9+7+6 = 58
            0x09, 0x02, 58, 0x00, 0x02, 0x01, 0x00, 0x80, 0xfa,
            // interface 0 alt 0, class 0x02/0x06/0x00 (offset 27)
            0x09, 0x04, 0x00, 0x00, 0x01, 0x02, 0x06, 0x00, 0x00,
            // CDC header (offset 36)
            0x05, 0x24, 0x00, 0x10, 0x01,
            // endpoint 0x83 interrupt 16 bytes (offset 41)
            0x07, 0x05, 0x83, 0x03, 0x10, 0x00, 0x09,
            // unknown type 0x77 (offset 48)
            0x06, 0x77, 0x01, 0x02, 0x03, 0x04,
            // interface 1 alt 0, vendor (offset 54)
            0x09, 0x04, 0x01, 0x00, 0x01, 0xff, 0x00, 0x00, 0x00,
            // endpoint 0x81 bulk 1024 (offset 63)
            0x07, 0x05, 0x81, 0x02, 0x00, 0x04, 0x00,
            // SS companion (offset 70)
            0x06, 0x30, 0x0f, 0x00, 0x00, 0x00,
        ]
    }

    #[test]
    fn parse_small_set() {
        let bytes = small_set();
        let p = parse(&bytes);
        assert_eq!(p.error, None);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let dev = p.set.device.as_ref().unwrap();
        assert_eq!((dev.vendor_id, dev.product_id), (0x1d6b, 0x0104));
        let cfg = &p.set.configurations[0];
        assert_eq!((cfg.offset, cfg.total_length, cfg.value), (18, 58, 1));
        assert_eq!(cfg.interfaces.len(), 2);
        let i0 = &cfg.interfaces[0];
        assert_eq!(i0.offset, 27);
        assert_eq!(
            i0.cdc,
            vec![CdcDescriptor::Header {
                offset: 36,
                cdc_version: 0x0110
            }]
        );
        assert_eq!(i0.endpoints[0].address, 0x83);
        assert_eq!(i0.endpoints[0].transfer_type, TransferType::Interrupt);
        assert_eq!(i0.extra[0].offset, 48);
        assert_eq!(i0.extra[0].descriptor_type, 0x77);
        let ep = &cfg.interfaces[1].endpoints[0];
        assert_eq!(ep.max_packet_size, 1024);
        assert_eq!(ep.ss_companion.as_ref().unwrap().max_burst, 15);
    }

    #[test]
    fn parse_errors_have_offsets() {
        let bytes = small_set();
        // bLength 0 in the CDC header.
        let mut b = bytes.clone();
        b[36] = 0;
        let p = parse(&b);
        assert_eq!(
            p.error.unwrap(),
            ParseError {
                offset: 36,
                kind: ParseErrorKind::BadLength { b_length: 0 }
            }
        );
        assert_eq!(p.set.configurations[0].interfaces.len(), 1);
        // CDC header too short.
        let mut b = bytes.clone();
        b[36] = 4;
        let e = parse(&b).error.unwrap();
        assert_eq!(e.offset, 36);
        assert!(matches!(
            e.kind,
            ParseErrorKind::TooShort {
                descriptor: "CDC Header",
                ..
            }
        ));
        // Endpoint before interface: turn the first interface into an unknown type.
        let mut b = bytes.clone();
        b[28] = 0x77;
        let e = parse(&b).error.unwrap();
        assert_eq!(
            e,
            ParseError {
                offset: 41,
                kind: ParseErrorKind::EndpointOutsideInterface
            }
        );
        // wTotalLength too large: parse what is there, then report it.
        let mut b = bytes.clone();
        b[20] = 200;
        let p = parse(&b);
        assert_eq!(
            p.error.unwrap(),
            ParseError {
                offset: 18,
                kind: ParseErrorKind::TotalLengthTooLarge {
                    total_length: 200,
                    available: 58
                }
            }
        );
        assert_eq!(p.set.configurations[0].interfaces.len(), 2);
        // wTotalLength cuts the companion in two.
        let mut b = bytes.clone();
        b[20] = 55;
        let e = parse(&b).error.unwrap();
        assert_eq!(
            e,
            ParseError {
                offset: 18,
                kind: ParseErrorKind::TotalLengthTooSmall {
                    total_length: 55,
                    needed: 58
                }
            }
        );
        // wTotalLength under the header.
        let mut b = bytes.clone();
        b[20] = 8;
        let e = parse(&b).error.unwrap();
        assert_eq!(
            e,
            ParseError {
                offset: 18,
                kind: ParseErrorKind::TotalLengthTooSmall {
                    total_length: 8,
                    needed: 9
                }
            }
        );
        // First descriptor is neither device nor configuration.
        assert_eq!(
            parse(&[0x09, 0x04, 0, 0, 0, 0, 0, 0, 0])
                .error
                .unwrap()
                .kind,
            ParseErrorKind::WrongType {
                expected: 1,
                found: 4
            }
        );
        assert_eq!(
            parse(&[]).error.unwrap(),
            ParseError {
                offset: 0,
                kind: ParseErrorKind::Truncated {
                    needed: 2,
                    available: 0
                }
            }
        );
    }

    #[test]
    fn bare_configuration_and_warnings() {
        let bytes = small_set();
        let p = parse(&bytes[18..]);
        assert_eq!(p.error, None);
        assert!(p.set.device.is_none());
        assert_eq!(p.set.configurations[0].offset, 0);
        let p = parse_config(&bytes[18..]);
        assert_eq!(p.error, None);
        assert_eq!(p.set.configurations.len(), 1);

        // bNumConfigurations 2 with one present; bNumEndpoints 2 with one present.
        let mut b = bytes.clone();
        b[17] = 2;
        b[31] = 2;
        let p = parse(&b);
        assert_eq!(p.error, None);
        assert_eq!(
            p.warnings
                .iter()
                .map(|w| w.kind.clone())
                .collect::<Vec<_>>(),
            vec![
                WarningKind::NumEndpoints {
                    number: 0,
                    alt_setting: 0,
                    declared: 2,
                    found: 1
                },
                WarningKind::NumConfigurations {
                    declared: 2,
                    found: 1
                },
            ]
        );
    }

    #[test]
    fn cdc_descriptors_of_other_classes_stay_raw() {
        let mut set = small_set();
        set[32] = 0x01; // interface 0 becomes audio: its 0x24 descriptor is not CDC
        let p = parse(&set);
        assert_eq!(p.error, None);
        let i0 = &p.set.configurations[0].interfaces[0];
        assert!(i0.cdc.is_empty());
        assert_eq!(i0.extra[0].descriptor_type, 0x24);
    }
}
