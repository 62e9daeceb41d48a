//! Byte formats of the CDC-NCM datapath and of the CDC control plane.
//!
//! * [`ntb`]: NCM Transfer Blocks (NTB-16 and NTB-32, USB CDC NCM 1.0 §3): checked views over
//!   the headers, a zero-copy decoder ([`parse_ntb`]) and an in-place encoder ([`NtbBuilder`]).
//! * [`ntb_params`]: the `GET_NTB_PARAMETERS` reply and the `SET_NTB_INPUT_SIZE` payload
//!   (NCM 1.0 §6.2).
//! * [`notify`]: CDC notifications from the interrupt endpoint, with a reassembler for
//!   notifications split across transfers.
//! * [`cdc`]: request, notification and filter codes.
//! * [`rndis`]: REMOTE_NDIS control messages and the PACKET_MSG data framing.
//! * [`eem`]: CDC-EEM data and command packets.
//!
//! Everything here is little-endian, as USB is, and nothing here is `unsafe`.
//!
//! # The checked-view contract
//!
//! Each view (`Nth16<T>`, `Ndp16<T>`, [`NtbParametersView`], [`NotificationView`], ...) wraps a
//! byte buffer `T: AsRef<[u8]>` and reads its fields in place. All bounds arithmetic lives in one
//! method per view, `check_len`:
//!
//! * Once `check_len` (or `new_checked`, which calls it) has returned `Ok`, no accessor of that
//!   view panics, for any content of the buffer, as long as the buffer itself is not modified.
//!   Accessors whose result depends on a variable-length part (a datagram pointer entry, say)
//!   return `Option` rather than index past what `check_len` covered.
//! * Bytes that come from a device are hostile. Wrap them with `new_checked` and nothing else;
//!   `new_unchecked` on device bytes is a bug, because its accessors may panic.
//! * When *emitting* into a buffer, use `new_unchecked` and the setters. Never use
//!   `new_checked` there: the check would read length fields that have not been written yet.
//!   It may well pass on a zeroed buffer and then fail (or, worse, pass for the wrong reasons)
//!   on a reused transfer buffer that still holds the previous transfer's bytes, and we reuse
//!   transfer buffers. Setters document when they panic (a buffer too short for the field).
//!
//! Higher-level parsers ([`parse_ntb`], the `Repr`-style `parse` functions) only ever build
//! views with `new_checked`, so they never panic on any input; the fuzz targets in `fuzz/`
//! check exactly that.
//!
//! # Output buffers
//!
//! The TX path writes into an [`OutBuf`]: a `Vec<u8>` in tests, a [`crate::usb::Buffer`]
//! (usbfs-mapped, zero-copy, where it can be) in the ring. Neither may be written past its
//! capacity per transfer (a `Vec` would reallocate, a mapped buffer would move to the heap),
//! so the builders here check the capacity themselves before writing anything.
//!
//! # Example
//!
//! A `Repr` emitted and parsed back (as the fakes do), then the TX parameters derived from it:
//!
//! ```
//! use usbnetd::wire::{NtbFormat, NtbParameters, NtbParametersView, NtbParams};
//!
//! let repr = NtbParameters {
//!     length: 28,
//!     formats_supported: 0x0001,
//!     ntb_out_max_size: 16384,
//!     ndp_out_divisor: 4,
//!     ndp_out_payload_remainder: 2,
//!     ndp_out_alignment: 4,
//!     ..NtbParameters::default()
//! };
//! let mut bytes = [0u8; 28];
//! repr.emit(&mut NtbParametersView::new_unchecked(&mut bytes[..]));
//! assert_eq!(NtbParameters::parse(&bytes), Ok(repr));
//! // A short reply is an error, not a structure full of zeros.
//! assert!(NtbParameters::parse(&bytes[..10]).is_err());
//!
//! let tx = NtbParams::from_device(&repr, NtbFormat::Ntb16, 1514).unwrap();
//! assert_eq!((tx.max_size, tx.divisor, tx.remainder), (16384, 4, 2));
//! ```

pub mod cdc;
pub mod eem;
pub mod notify;
pub mod ntb;
pub mod ntb_params;
pub mod rndis;
pub mod vnet;

pub use self::notify::{
    Notification, NotificationReader, NotificationView, NotifyError, ReaderStats,
    HEADER_LEN as NOTIFICATION_HEADER_LEN,
};
pub use self::ntb::{
    padding_for_zlp, parse_ntb, Datagrams, DropCounts, Ndp16, Ndp32, NtbBuilder, NtbError,
    NtbFormat, NtbParams, Nth16, Nth32, PushError, RxLimits, TxParamsError,
};
pub use self::ntb_params::{
    NtbInputSize, NtbParameters, NtbParametersError, NtbParametersView, LEN as NTB_PARAMETERS_LEN,
};

/// A byte range of a fixed-size field inside a header.
pub(crate) type Field = core::ops::Range<usize>;

/// Reads a little-endian `u16` at `field` (two bytes). Panics if `buf` is too short, which a
/// successful `check_len` rules out.
#[inline]
pub(crate) fn get_u16(buf: &[u8], field: Field) -> u16 {
    let mut b = [0u8; 2];
    b.copy_from_slice(&buf[field]);
    u16::from_le_bytes(b)
}

/// Reads a little-endian `u32` at `field` (four bytes). Panics if `buf` is too short.
#[inline]
pub(crate) fn get_u32(buf: &[u8], field: Field) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[field]);
    u32::from_le_bytes(b)
}

/// Writes `v` little-endian at `field` (two bytes). Panics if `buf` is too short.
#[inline]
pub(crate) fn set_u16(buf: &mut [u8], field: Field, v: u16) {
    buf[field].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` little-endian at `field` (four bytes). Panics if `buf` is too short.
#[inline]
pub(crate) fn set_u32(buf: &mut [u8], field: Field, v: u32) {
    buf[field].copy_from_slice(&v.to_le_bytes());
}

/// The output buffer the TX path writes one transfer into.
///
/// Implemented for `Vec<u8>` and for [`crate::usb::Buffer`] (the transfer buffer). The
/// builders in this module never write past [`capacity`](OutBuf::capacity): either buffer
/// would grow (a mapped one by moving to the heap), which the datapath must not do per
/// transfer. So a
/// `Vec` used as an `OutBuf` must be created with the capacity it is meant to have
/// (`Vec::with_capacity`); `Vec::new()` has room for nothing.
pub trait OutBuf {
    /// Number of bytes written so far (the filled part).
    fn len(&self) -> usize;
    /// Whether nothing has been written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of bytes the buffer can hold without reallocating.
    fn capacity(&self) -> usize;
    /// Appends `s`. The caller checks `len() + s.len() <= capacity()` first; implementations
    /// may panic otherwise.
    fn extend_from_slice(&mut self, s: &[u8]);
    /// Appends `n` copies of `v` and returns the appended bytes. The caller checks
    /// `len() + n <= capacity()` first; implementations may panic otherwise.
    fn extend_fill(&mut self, n: usize, v: u8) -> &mut [u8];
    /// Appends `n` bytes that `fill` writes, every one of them: a frame built in place
    /// instead of in a scratch buffer and copied. The bytes `fill` sees may hold anything
    /// (a recycled transfer buffer is not cleared first). The caller checks
    /// `len() + n <= capacity()` first; implementations may panic otherwise.
    fn extend_with(&mut self, n: usize, fill: &mut dyn FnMut(&mut [u8])) {
        fill(self.extend_fill(n, 0));
    }
    /// The filled part, writable (for patching headers after the fact).
    fn as_mut_slice(&mut self) -> &mut [u8];
    /// Forgets the content; keeps the capacity.
    fn clear(&mut self);
}

impl OutBuf for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
    fn extend_from_slice(&mut self, s: &[u8]) {
        Vec::extend_from_slice(self, s);
    }
    fn extend_fill(&mut self, n: usize, v: u8) -> &mut [u8] {
        let start = Vec::len(self);
        self.resize(start + n, v);
        &mut self[start..]
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        Vec::as_mut_slice(self)
    }
    fn clear(&mut self) {
        Vec::clear(self);
    }
}

impl OutBuf for crate::usb::Buffer {
    fn len(&self) -> usize {
        crate::usb::Buffer::len(self)
    }
    fn capacity(&self) -> usize {
        crate::usb::Buffer::capacity(self)
    }
    fn extend_from_slice(&mut self, s: &[u8]) {
        crate::usb::Buffer::extend_from_slice(self, s);
    }
    fn extend_fill(&mut self, n: usize, v: u8) -> &mut [u8] {
        let start = crate::usb::Buffer::len(self);
        self.resize(start + n, v);
        &mut self[start..]
    }
    fn extend_with(&mut self, n: usize, fill: &mut dyn FnMut(&mut [u8])) {
        crate::usb::Buffer::extend_with(self, n, fill);
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self[..]
    }
    fn clear(&mut self) {
        crate::usb::Buffer::clear(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(out: &mut impl OutBuf) {
        assert!(out.is_empty());
        out.extend_from_slice(&[1, 2, 3]);
        let fill = out.extend_fill(2, 0xee);
        assert_eq!(fill, &[0xee, 0xee]);
        fill[1] = 9;
        out.as_mut_slice()[0] = 7;
        assert_eq!(out.as_mut_slice(), &[7, 2, 3, 0xee, 9]);
        assert_eq!(out.len(), 5);
        out.clear();
        assert_eq!(out.len(), 0);
        assert!(out.capacity() >= 16);
    }

    #[test]
    fn outbuf_vec() {
        let mut v: Vec<u8> = Vec::with_capacity(16);
        exercise(&mut v);
        assert_eq!(OutBuf::capacity(&v), 16);
    }

    #[test]
    fn outbuf_transfer_buffer() {
        let mut b = crate::usb::Buffer::new(16);
        exercise(&mut b);
        // The same over a mapped slot (anonymous shared memory stands in for usbfs).
        let region = crate::usb::buffer::Region::anonymous(64, 1).unwrap();
        let mut m = region.take().unwrap();
        m.extend_from_slice(&[0x55; 64]);
        m.clear();
        exercise(&mut m);
        assert!(m.is_zero_copy());
        assert_eq!(OutBuf::capacity(&m), 64);
    }

    #[test]
    fn le_helpers() {
        let mut b = [0u8; 6];
        set_u16(&mut b, 0..2, 0x1234);
        set_u32(&mut b, 2..6, 0xdead_beef);
        assert_eq!(b, [0x34, 0x12, 0xef, 0xbe, 0xad, 0xde]);
        assert_eq!(get_u16(&b, 0..2), 0x1234);
        assert_eq!(get_u32(&b, 2..6), 0xdead_beef);
    }
}
