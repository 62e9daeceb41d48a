//! NCM Transfer Blocks, NTB-16 and NTB-32 (USB CDC NCM 1.0 §3).
//!
//! An NTB is one bulk transfer: an NTB header (NTH) at offset 0, then, anywhere inside the
//! block, datagrams (Ethernet frames without FCS) and one or more NCM datagram pointer tables
//! (NDPs) chained through `wNextNdpIndex`. Each NDP lists `(index, length)` pairs and ends with
//! a `(0, 0)` entry.
//!
//! ```text
//! NTB-16                                   NTB-32
//! 0  dwSignature "NCMH"                    0  dwSignature "ncmh"
//! 4  wHeaderLength = 12                    4  wHeaderLength = 16
//! 6  wSequence                             6  wSequence
//! 8  wBlockLength                          8  dwBlockLength
//! 10 wNdpIndex                             12 dwNdpIndex
//!
//! NDP16 ("NCM0", "NCM1" = with CRC)        NDP32 ("ncm0", "ncm1")
//! 0  dwSignature                           0  dwSignature
//! 4  wLength (>= 16, multiple of 4)        4  wLength (>= 32, multiple of 8)
//! 6  wNextNdpIndex                         6  wReserved6
//! 8  (wDatagramIndex, wDatagramLength)*    8  dwNextNdpIndex
//!                                          12 dwReserved12
//!                                          16 (dwDatagramIndex, dwDatagramLength)*
//! ```
//!
//! # Receiving
//!
//! [`parse_ntb`] checks the NTH and the first NDP and returns [`Datagrams`], an iterator of
//! datagram slices borrowed from the transfer (no copy). Problems with the header or the first
//! NDP reject the whole transfer ([`NtbError`]); problems with a single datagram, or with a
//! chained NDP, drop only that datagram (or the rest of the chain) and are counted in
//! [`DropCounts`], with the last reason kept for the log ([`Datagrams::last_drop`]).
//!
//! The decoder is written against a hostile device:
//!
//! * it reads nothing outside the block (`wBlockLength`, itself checked against the transfer),
//!   and every offset sum is checked;
//! * every NDP is checked as a whole where it is (`index + wLength <= block`), not as if it
//!   started at offset 0 (the `cdc_ncm` out-of-bounds read fixed in 2026);
//! * an NDP that overlaps an earlier one or a datagram (a self-pointing or backward-pointing
//!   `wNextNdpIndex`) ends the walk: `cdc_ncm` delivered one frame 51 times from a
//!   self-pointing NDP. Chained NDPs are therefore disjoint, so a chain can be no longer than
//!   the block holds NDPs of the minimum length, and that is its only bound by default
//!   ([`RxLimits::max_ndps`] can set a lower one): a legal chain delivers every datagram;
//! * no two delivered datagrams overlap, and none overlaps the NTH or an NDP: an NDP that
//!   repeats one pointer yields the datagram once (`cdc_ncm` delivered 1000 copies). So the
//!   bytes delivered per NTB never exceed the block length;
//! * datagrams per NTB are capped ([`RxLimits::max_datagrams`]).
//!
//! Only no-CRC NDPs (`NCM0`/`ncm0`) are delivered: the host never enables CRC mode
//! (`SET_CRC_MODE`), so `NCM1`/`ncm1` NDPs are skipped and counted, as `cdc_ncm` does.
//!
//! ## `wBlockLength` = 0
//!
//! NCM 1.0 §3.2.1 allows `wBlockLength = 0x0000`, meaning the block is ended by a short packet,
//! i.e. it is the whole transfer. The Linux host produces it when its 64 KiB TX size wraps the
//! 16-bit field, and Microsoft's `UsbNcm` host driver accepts it. We treat a zero
//! `wBlockLength` *and* a zero `dwBlockLength` the same way: the block is the whole transfer.
//! Nothing is lost in safety: everything is still bounded by the transfer.
//!
//! # Sending
//!
//! [`NtbBuilder`] writes one NTB in place into an [`OutBuf`] (a reused transfer buffer): the
//! NTH, then each datagram at an offset ≡ `wNdpOutPayloadRemainder` (mod `wNdpOutDivisor`), then
//! at [`finish`](NtbBuilder::finish) a single NDP (aligned to `wNdpOutAlignment`) at the end,
//! the layout the Linux gadget and Windows use, which every function must accept. The device's
//! constraints come from `GET_NTB_PARAMETERS` through [`NtbParams::from_device`].

use core::fmt;
use core::iter::FusedIterator;

use super::cdc;
use super::ntb_params::NtbParameters;
use super::{get_u16, get_u32, set_u16, set_u32, OutBuf};

/// `dwSignature` of an NTH16: "NCMH".
pub const NTH16_SIGNATURE: u32 = 0x484D_434E;
/// `dwSignature` of an NTH32: "ncmh".
pub const NTH32_SIGNATURE: u32 = 0x686D_636E;
/// `dwSignature` of an NDP16 without CRC: "NCM0".
pub const NDP16_SIGNATURE: u32 = 0x304D_434E;
/// `dwSignature` of an NDP16 whose datagrams carry a CRC-32: "NCM1".
pub const NDP16_CRC_SIGNATURE: u32 = 0x314D_434E;
/// `dwSignature` of an NDP32 without CRC: "ncm0".
pub const NDP32_SIGNATURE: u32 = 0x306D_636E;
/// `dwSignature` of an NDP32 whose datagrams carry a CRC-32: "ncm1".
pub const NDP32_CRC_SIGNATURE: u32 = 0x316D_636E;

/// Every NDP starts on a 4-byte boundary (NCM 1.0 §3.3).
pub const NDP_ALIGN: usize = 4;
/// The shortest datagram accepted or sent: an Ethernet header.
pub const MIN_DATAGRAM_LEN: usize = 14;

/// Field layout of the NTH16 (NCM 1.0 Table 3-1).
pub mod nth16 {
    use crate::wire::Field;
    /// `dwSignature`.
    pub const SIGNATURE: Field = 0..4;
    /// `wHeaderLength`.
    pub const HEADER_LENGTH: Field = 4..6;
    /// `wSequence`.
    pub const SEQUENCE: Field = 6..8;
    /// `wBlockLength`.
    pub const BLOCK_LENGTH: Field = 8..10;
    /// `wNdpIndex`.
    pub const NDP_INDEX: Field = 10..12;
    /// Length of the NTH16, the only valid `wHeaderLength`.
    pub const HEADER_LEN: usize = NDP_INDEX.end;
}

/// Field layout of the NTH32 (NCM 1.0 Table 3-2).
pub mod nth32 {
    use crate::wire::Field;
    /// `dwSignature`.
    pub const SIGNATURE: Field = 0..4;
    /// `wHeaderLength`.
    pub const HEADER_LENGTH: Field = 4..6;
    /// `wSequence`.
    pub const SEQUENCE: Field = 6..8;
    /// `dwBlockLength`.
    pub const BLOCK_LENGTH: Field = 8..12;
    /// `dwNdpIndex`.
    pub const NDP_INDEX: Field = 12..16;
    /// Length of the NTH32, the only valid `wHeaderLength`.
    pub const HEADER_LEN: usize = NDP_INDEX.end;
}

/// Field layout of the NDP16 (NCM 1.0 Table 3-3), relative to the NDP's start.
pub mod ndp16 {
    use crate::wire::Field;
    /// `dwSignature`.
    pub const SIGNATURE: Field = 0..4;
    /// `wLength`.
    pub const LENGTH: Field = 4..6;
    /// `wNextNdpIndex`.
    pub const NEXT_NDP_INDEX: Field = 6..8;
    /// Length of the fixed part; the entries follow.
    pub const HEADER_LEN: usize = NEXT_NDP_INDEX.end;
    /// Length of one `(wDatagramIndex, wDatagramLength)` entry.
    pub const ENTRY_LEN: usize = 4;
    /// Smallest valid `wLength`: the header, one datagram and the terminator.
    pub const MIN_LEN: usize = HEADER_LEN + 2 * ENTRY_LEN;
    /// `wLength` is a multiple of this.
    pub const LEN_MULTIPLE: usize = 4;
    /// `wDatagramIndex` of entry `n`.
    pub const fn entry_index(n: usize) -> Field {
        let at = HEADER_LEN + n * ENTRY_LEN;
        at..at + 2
    }
    /// `wDatagramLength` of entry `n`.
    pub const fn entry_length(n: usize) -> Field {
        let at = HEADER_LEN + n * ENTRY_LEN + 2;
        at..at + 2
    }
}

/// Field layout of the NDP32 (NCM 1.0 Table 3-4), relative to the NDP's start.
pub mod ndp32 {
    use crate::wire::Field;
    /// `dwSignature`.
    pub const SIGNATURE: Field = 0..4;
    /// `wLength`.
    pub const LENGTH: Field = 4..6;
    /// `wReserved6`.
    pub const RESERVED6: Field = 6..8;
    /// `dwNextNdpIndex`.
    pub const NEXT_NDP_INDEX: Field = 8..12;
    /// `dwReserved12`.
    pub const RESERVED12: Field = 12..16;
    /// Length of the fixed part; the entries follow.
    pub const HEADER_LEN: usize = RESERVED12.end;
    /// Length of one `(dwDatagramIndex, dwDatagramLength)` entry.
    pub const ENTRY_LEN: usize = 8;
    /// Smallest valid `wLength`: the header, one datagram and the terminator.
    pub const MIN_LEN: usize = HEADER_LEN + 2 * ENTRY_LEN;
    /// `wLength` is a multiple of this.
    pub const LEN_MULTIPLE: usize = 8;
    /// `dwDatagramIndex` of entry `n`.
    pub const fn entry_index(n: usize) -> Field {
        let at = HEADER_LEN + n * ENTRY_LEN;
        at..at + 4
    }
    /// `dwDatagramLength` of entry `n`.
    pub const fn entry_length(n: usize) -> Field {
        let at = HEADER_LEN + n * ENTRY_LEN + 4;
        at..at + 4
    }
}

/// The two NTB formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NtbFormat {
    /// NTB-16: 16-bit lengths and offsets, blocks up to 64 KiB. Every function supports it.
    Ntb16,
    /// NTB-32: 32-bit lengths and offsets.
    Ntb32,
}

impl NtbFormat {
    /// Length of the NTH.
    pub const fn nth_len(self) -> usize {
        match self {
            NtbFormat::Ntb16 => nth16::HEADER_LEN,
            NtbFormat::Ntb32 => nth32::HEADER_LEN,
        }
    }
    /// Length of the fixed part of an NDP.
    pub const fn ndp_header_len(self) -> usize {
        match self {
            NtbFormat::Ntb16 => ndp16::HEADER_LEN,
            NtbFormat::Ntb32 => ndp32::HEADER_LEN,
        }
    }
    /// Length of one datagram pointer entry.
    pub const fn entry_len(self) -> usize {
        match self {
            NtbFormat::Ntb16 => ndp16::ENTRY_LEN,
            NtbFormat::Ntb32 => ndp32::ENTRY_LEN,
        }
    }
    /// `wLength` of an NDP listing `datagrams` datagrams plus the `(0, 0)` terminator.
    pub const fn ndp_len(self, datagrams: usize) -> usize {
        self.ndp_header_len() + (datagrams + 1) * self.entry_len()
    }
    /// Largest block the length field can express.
    pub const fn max_block_len(self) -> usize {
        match self {
            NtbFormat::Ntb16 => u16::MAX as usize,
            NtbFormat::Ntb32 => u32::MAX as usize,
        }
    }
    /// Most NDPs a block of `block_len` bytes can hold without two of them overlapping: the
    /// bound on any chain the decoder walks.
    pub const fn max_ndps(self, block_len: usize) -> usize {
        let min = match self {
            NtbFormat::Ntb16 => ndp16::MIN_LEN,
            NtbFormat::Ntb32 => ndp32::MIN_LEN,
        };
        block_len.saturating_sub(self.nth_len()) / min
    }
    /// Most datagrams one NDP can list: its `wLength` is 16 bits in both formats.
    pub const fn max_ndp_datagrams(self) -> usize {
        let max_len = u16::MAX as usize / self.entry_len() * self.entry_len();
        (max_len - self.ndp_header_len()) / self.entry_len() - 1
    }
    /// Entry `n` of the NDP whose entries start at `entries_at` in `block`. The caller has
    /// checked that the entry lies inside the NDP, and so inside the block.
    #[inline]
    fn read_entry(self, block: &[u8], entries_at: usize, n: usize) -> (usize, usize) {
        match self {
            NtbFormat::Ntb16 => {
                let at = entries_at + n * ndp16::ENTRY_LEN;
                let index = get_u16(block, at..at + 2);
                (
                    usize::from(index),
                    usize::from(get_u16(block, at + 2..at + 4)),
                )
            }
            NtbFormat::Ntb32 => {
                let at = entries_at + n * ndp32::ENTRY_LEN;
                let index = get_u32(block, at..at + 4);
                (to_usize(index), to_usize(get_u32(block, at + 4..at + 8)))
            }
        }
    }

    /// The `wValue` of `SET_NTB_FORMAT` selecting this format.
    pub const fn request_value(self) -> u16 {
        match self {
            NtbFormat::Ntb16 => cdc::NTB_FORMAT_16,
            NtbFormat::Ntb32 => cdc::NTB_FORMAT_32,
        }
    }
}

impl fmt::Display for NtbFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NtbFormat::Ntb16 => "NTB-16",
            NtbFormat::Ntb32 => "NTB-32",
        })
    }
}

/// Why an NTB, an NDP or a datagram was rejected. Offsets are from the start of the NTB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NtbError {
    /// The transfer is shorter than the NTH.
    #[error("transfer of {len} bytes is shorter than an NTB header ({need} bytes)")]
    Truncated {
        /// Transfer length.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The transfer does not start with "NCMH" or "ncmh".
    #[error("bad NTH signature {0:#010x}")]
    BadSignature(u32),
    /// `wHeaderLength` is not 12 (NTB-16) or 16 (NTB-32).
    #[error("wHeaderLength is {got}, expected {expected}")]
    BadHeaderLength {
        /// Value found.
        got: u16,
        /// Value required.
        expected: u16,
    },
    /// The block length is larger than the transfer.
    #[error("block length {block} exceeds the {transfer}-byte transfer")]
    BlockTooLong {
        /// `wBlockLength`/`dwBlockLength`.
        block: usize,
        /// Transfer length.
        transfer: usize,
    },
    /// The block length is smaller than the NTH.
    #[error("block length {block} is shorter than the {header}-byte header")]
    BlockTooShort {
        /// `wBlockLength`/`dwBlockLength`.
        block: usize,
        /// NTH length.
        header: usize,
    },
    /// An NDP index points into the NTH, or its header does not fit in the block.
    #[error("NDP index {index} is outside the {block}-byte block")]
    NdpOutOfRange {
        /// The NDP index.
        index: usize,
        /// Block length.
        block: usize,
    },
    /// An NDP index is not a multiple of 4.
    #[error("NDP index {index} is not 4-byte aligned")]
    NdpMisaligned {
        /// The NDP index.
        index: usize,
    },
    /// An NDP signature is not one of the format's two.
    #[error("bad NDP signature {signature:#010x} at {index}")]
    BadNdpSignature {
        /// The NDP index.
        index: usize,
        /// Signature found.
        signature: u32,
    },
    /// An NDP's `wLength` is too small, not a multiple of 4 (8 for NDP32), or runs past the
    /// block from where the NDP is.
    #[error("NDP at {index} has an invalid wLength {length} ({room} bytes left in the block)")]
    BadNdpLength {
        /// The NDP index.
        index: usize,
        /// `wLength`.
        length: usize,
        /// Bytes from the NDP to the end of the block.
        room: usize,
    },
    /// `wNextNdpIndex` points back at an NDP already walked.
    #[error("NDP chain loops back to the NDP at {index}")]
    NdpLoop {
        /// The repeated NDP index.
        index: usize,
    },
    /// An NDP overlaps an earlier NDP or a datagram already delivered.
    #[error("NDP at {index} overlaps an earlier NDP or datagram")]
    NdpOverlap {
        /// The NDP index.
        index: usize,
    },
    /// More NDPs are chained than [`RxLimits::max_ndps`].
    #[error("more than {max} NDPs chained")]
    NdpChainTooLong {
        /// The cap.
        max: usize,
    },
    /// An NDP's entries run to its `wLength` without a `(0, 0)` terminator.
    #[error("NDP at {index} has no (0, 0) terminator")]
    NdpUnterminated {
        /// The NDP index.
        index: usize,
    },
    /// An NDP is in CRC mode ("NCM1"/"ncm1"), which the host never enables.
    #[error("NDP at {index} is in CRC mode (signature {signature:#010x}), which is not enabled")]
    CrcNdp {
        /// The NDP index.
        index: usize,
        /// Its signature.
        signature: u32,
    },
    /// A datagram starts inside the NTH or ends past the block.
    #[error("datagram {index}+{len} is outside the block ({header}..{block})")]
    DatagramOutOfRange {
        /// `wDatagramIndex`.
        index: usize,
        /// `wDatagramLength`.
        len: usize,
        /// NTH length.
        header: usize,
        /// Block length.
        block: usize,
    },
    /// A datagram is shorter than an Ethernet header.
    #[error("datagram at {index} is {len} bytes, shorter than an Ethernet header")]
    DatagramTooShort {
        /// `wDatagramIndex`.
        index: usize,
        /// `wDatagramLength`.
        len: usize,
    },
    /// A datagram is longer than [`RxLimits::max_datagram_len`].
    #[error("datagram at {index} is {len} bytes, more than {max}")]
    DatagramTooLong {
        /// `wDatagramIndex`.
        index: usize,
        /// `wDatagramLength`.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A datagram overlaps one already delivered (a repeated pointer, say) or an NDP.
    #[error("datagram {index}+{len} overlaps an earlier datagram or an NDP")]
    DatagramOverlap {
        /// `wDatagramIndex`.
        index: usize,
        /// `wDatagramLength`.
        len: usize,
    },
    /// More datagrams than [`RxLimits::max_datagrams`]; the rest of the NTB was not read.
    #[error("more than {max} datagrams in one NTB")]
    TooManyDatagrams {
        /// The cap.
        max: usize,
    },
}

// ---------------------------------------------------------------------------------------------
// Checked views
// ---------------------------------------------------------------------------------------------

/// Checked view of an NTB-16 header; the buffer is the whole transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nth16<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Nth16<T> {
    /// Wraps a buffer without checks (for emitting). Accessors may panic unless
    /// [`check_len`](Self::check_len) passed.
    pub const fn new_unchecked(buffer: T) -> Self {
        Nth16 { buffer }
    }

    /// Wraps device bytes after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, NtbError> {
        let v = Self::new_unchecked(buffer);
        v.check_len()?;
        Ok(v)
    }

    /// Checks everything needed before the header can be used: the buffer holds an NTH, the
    /// signature is "NCMH", `wHeaderLength` is 12, and the block (see
    /// [`block_len`](Self::block_len)) fits in the buffer and holds the header. `wNdpIndex`
    /// is checked when the NDP is opened ([`Ndp16::new_checked`]).
    pub fn check_len(&self) -> Result<(), NtbError> {
        let len = self.buffer.as_ref().len();
        if len < nth16::HEADER_LEN {
            return Err(NtbError::Truncated {
                len,
                need: nth16::HEADER_LEN,
            });
        }
        if self.signature() != NTH16_SIGNATURE {
            return Err(NtbError::BadSignature(self.signature()));
        }
        if usize::from(self.header_len()) != nth16::HEADER_LEN {
            return Err(NtbError::BadHeaderLength {
                got: self.header_len(),
                expected: nth16::HEADER_LEN as u16,
            });
        }
        check_block(usize::from(self.block_len_field()), len, nth16::HEADER_LEN)
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// `dwSignature`.
    pub fn signature(&self) -> u32 {
        get_u32(self.buffer.as_ref(), nth16::SIGNATURE)
    }
    /// `wHeaderLength`.
    pub fn header_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), nth16::HEADER_LENGTH)
    }
    /// `wSequence`.
    pub fn sequence(&self) -> u16 {
        get_u16(self.buffer.as_ref(), nth16::SEQUENCE)
    }
    /// `wBlockLength` as sent (0 = the whole transfer).
    pub fn block_len_field(&self) -> u16 {
        get_u16(self.buffer.as_ref(), nth16::BLOCK_LENGTH)
    }
    /// The block length in effect: `wBlockLength`, or the buffer length when it is 0.
    pub fn block_len(&self) -> usize {
        effective_block(
            usize::from(self.block_len_field()),
            self.buffer.as_ref().len(),
        )
    }
    /// `wNdpIndex`.
    pub fn ndp_index(&self) -> u16 {
        get_u16(self.buffer.as_ref(), nth16::NDP_INDEX)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Nth16<&'a T> {
    /// The block (`..block_len`), borrowed for the buffer's lifetime.
    pub fn block(&self) -> &'a [u8] {
        &self.buffer.as_ref()[..self.block_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Nth16<T> {
    /// Writes `dwSignature` (normally [`NTH16_SIGNATURE`]). Setters panic if the buffer is
    /// shorter than 12 bytes.
    pub fn set_signature(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), nth16::SIGNATURE, v)
    }
    /// Writes `wHeaderLength`.
    pub fn set_header_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), nth16::HEADER_LENGTH, v)
    }
    /// Writes `wSequence`.
    pub fn set_sequence(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), nth16::SEQUENCE, v)
    }
    /// Writes `wBlockLength`.
    pub fn set_block_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), nth16::BLOCK_LENGTH, v)
    }
    /// Writes `wNdpIndex`.
    pub fn set_ndp_index(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), nth16::NDP_INDEX, v)
    }
}

/// Checked view of an NTB-32 header; the buffer is the whole transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nth32<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Nth32<T> {
    /// Wraps a buffer without checks (for emitting).
    pub const fn new_unchecked(buffer: T) -> Self {
        Nth32 { buffer }
    }

    /// Wraps device bytes after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, NtbError> {
        let v = Self::new_unchecked(buffer);
        v.check_len()?;
        Ok(v)
    }

    /// As [`Nth16::check_len`], for "ncmh" and a 16-byte header.
    pub fn check_len(&self) -> Result<(), NtbError> {
        let len = self.buffer.as_ref().len();
        if len < nth32::HEADER_LEN {
            return Err(NtbError::Truncated {
                len,
                need: nth32::HEADER_LEN,
            });
        }
        if self.signature() != NTH32_SIGNATURE {
            return Err(NtbError::BadSignature(self.signature()));
        }
        if usize::from(self.header_len()) != nth32::HEADER_LEN {
            return Err(NtbError::BadHeaderLength {
                got: self.header_len(),
                expected: nth32::HEADER_LEN as u16,
            });
        }
        check_block(to_usize(self.block_len_field()), len, nth32::HEADER_LEN)
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// `dwSignature`.
    pub fn signature(&self) -> u32 {
        get_u32(self.buffer.as_ref(), nth32::SIGNATURE)
    }
    /// `wHeaderLength`.
    pub fn header_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), nth32::HEADER_LENGTH)
    }
    /// `wSequence`.
    pub fn sequence(&self) -> u16 {
        get_u16(self.buffer.as_ref(), nth32::SEQUENCE)
    }
    /// `dwBlockLength` as sent (0 = the whole transfer).
    pub fn block_len_field(&self) -> u32 {
        get_u32(self.buffer.as_ref(), nth32::BLOCK_LENGTH)
    }
    /// The block length in effect: `dwBlockLength`, or the buffer length when it is 0.
    pub fn block_len(&self) -> usize {
        effective_block(to_usize(self.block_len_field()), self.buffer.as_ref().len())
    }
    /// `dwNdpIndex`.
    pub fn ndp_index(&self) -> u32 {
        get_u32(self.buffer.as_ref(), nth32::NDP_INDEX)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Nth32<&'a T> {
    /// The block (`..block_len`), borrowed for the buffer's lifetime.
    pub fn block(&self) -> &'a [u8] {
        &self.buffer.as_ref()[..self.block_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Nth32<T> {
    /// Writes `dwSignature` (normally [`NTH32_SIGNATURE`]). Setters panic if the buffer is
    /// shorter than 16 bytes.
    pub fn set_signature(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), nth32::SIGNATURE, v)
    }
    /// Writes `wHeaderLength`.
    pub fn set_header_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), nth32::HEADER_LENGTH, v)
    }
    /// Writes `wSequence`.
    pub fn set_sequence(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), nth32::SEQUENCE, v)
    }
    /// Writes `dwBlockLength`.
    pub fn set_block_len(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), nth32::BLOCK_LENGTH, v)
    }
    /// Writes `dwNdpIndex`.
    pub fn set_ndp_index(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), nth32::NDP_INDEX, v)
    }
}

/// Checked view of an NDP16 at `offset` inside a block.
///
/// The view keeps the whole block and the NDP's offset, so that the one check that matters,
/// `offset + wLength <= block length`, is made where the NDP actually is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ndp16<T: AsRef<[u8]>> {
    buffer: T,
    offset: usize,
}

impl<T: AsRef<[u8]>> Ndp16<T> {
    /// Wraps the NDP at `offset` of `block` without checks (for emitting).
    pub const fn new_unchecked(block: T, offset: usize) -> Self {
        Ndp16 {
            buffer: block,
            offset,
        }
    }

    /// Wraps device bytes after [`check_len`](Self::check_len).
    pub fn new_checked(block: T, offset: usize) -> Result<Self, NtbError> {
        let v = Self::new_unchecked(block, offset);
        v.check_len()?;
        Ok(v)
    }

    /// Checks that the NDP lies after the NTH16, is 4-byte aligned, has an NDP16 signature
    /// ("NCM0" or "NCM1"), and that its `wLength` is at least 16, a multiple of 4, and fits in
    /// the block *from the NDP's offset*. After this, [`entry`](Self::entry) never panics.
    pub fn check_len(&self) -> Result<(), NtbError> {
        let block = self.buffer.as_ref();
        check_ndp_place(
            self.offset,
            block.len(),
            nth16::HEADER_LEN,
            ndp16::HEADER_LEN,
        )?;
        let signature = self.signature();
        if signature != NDP16_SIGNATURE && signature != NDP16_CRC_SIGNATURE {
            return Err(NtbError::BadNdpSignature {
                index: self.offset,
                signature,
            });
        }
        check_ndp_len(
            self.offset,
            usize::from(self.length()),
            block.len(),
            ndp16::MIN_LEN,
            ndp16::LEN_MULTIPLE,
        )
    }

    /// Consumes the view, returning the block.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Offset of the NDP in the block.
    pub const fn offset(&self) -> usize {
        self.offset
    }
    fn ndp(&self) -> &[u8] {
        &self.buffer.as_ref()[self.offset..]
    }
    /// `dwSignature`.
    pub fn signature(&self) -> u32 {
        get_u32(self.ndp(), ndp16::SIGNATURE)
    }
    /// Whether this is a CRC-mode NDP ("NCM1").
    pub fn is_crc(&self) -> bool {
        self.signature() == NDP16_CRC_SIGNATURE
    }
    /// `wLength`.
    pub fn length(&self) -> u16 {
        get_u16(self.ndp(), ndp16::LENGTH)
    }
    /// `wNextNdpIndex` (0 = last NDP).
    pub fn next_index(&self) -> u16 {
        get_u16(self.ndp(), ndp16::NEXT_NDP_INDEX)
    }
    /// Entries `wLength` has room for, terminator included.
    pub fn entry_count(&self) -> usize {
        usize::from(self.length()).saturating_sub(ndp16::HEADER_LEN) / ndp16::ENTRY_LEN
    }
    /// Entry `n` as `(wDatagramIndex, wDatagramLength)`, or `None` past `wLength`.
    pub fn entry(&self, n: usize) -> Option<(u16, u16)> {
        if n >= self.entry_count() {
            return None;
        }
        let ndp = self.ndp();
        Some((
            get_u16(ndp, ndp16::entry_index(n)),
            get_u16(ndp, ndp16::entry_length(n)),
        ))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ndp16<T> {
    fn ndp_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[self.offset..]
    }
    /// Writes `dwSignature`. Setters panic if the field is past the end of the buffer.
    pub fn set_signature(&mut self, v: u32) {
        set_u32(self.ndp_mut(), ndp16::SIGNATURE, v)
    }
    /// Writes `wLength`.
    pub fn set_length(&mut self, v: u16) {
        set_u16(self.ndp_mut(), ndp16::LENGTH, v)
    }
    /// Writes `wNextNdpIndex`.
    pub fn set_next_index(&mut self, v: u16) {
        set_u16(self.ndp_mut(), ndp16::NEXT_NDP_INDEX, v)
    }
    /// Writes entry `n`. Does not look at `wLength`.
    pub fn set_entry(&mut self, n: usize, index: u16, len: u16) {
        let ndp = self.ndp_mut();
        set_u16(ndp, ndp16::entry_index(n), index);
        set_u16(ndp, ndp16::entry_length(n), len);
    }
}

/// Checked view of an NDP32 at `offset` inside a block; see [`Ndp16`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ndp32<T: AsRef<[u8]>> {
    buffer: T,
    offset: usize,
}

impl<T: AsRef<[u8]>> Ndp32<T> {
    /// Wraps the NDP at `offset` of `block` without checks (for emitting).
    pub const fn new_unchecked(block: T, offset: usize) -> Self {
        Ndp32 {
            buffer: block,
            offset,
        }
    }

    /// Wraps device bytes after [`check_len`](Self::check_len).
    pub fn new_checked(block: T, offset: usize) -> Result<Self, NtbError> {
        let v = Self::new_unchecked(block, offset);
        v.check_len()?;
        Ok(v)
    }

    /// As [`Ndp16::check_len`]: after the NTH32, 4-byte aligned, "ncm0"/"ncm1", `wLength` at
    /// least 32, a multiple of 8, and within the block from the NDP's offset.
    pub fn check_len(&self) -> Result<(), NtbError> {
        let block = self.buffer.as_ref();
        check_ndp_place(
            self.offset,
            block.len(),
            nth32::HEADER_LEN,
            ndp32::HEADER_LEN,
        )?;
        let signature = self.signature();
        if signature != NDP32_SIGNATURE && signature != NDP32_CRC_SIGNATURE {
            return Err(NtbError::BadNdpSignature {
                index: self.offset,
                signature,
            });
        }
        check_ndp_len(
            self.offset,
            usize::from(self.length()),
            block.len(),
            ndp32::MIN_LEN,
            ndp32::LEN_MULTIPLE,
        )
    }

    /// Consumes the view, returning the block.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Offset of the NDP in the block.
    pub const fn offset(&self) -> usize {
        self.offset
    }
    fn ndp(&self) -> &[u8] {
        &self.buffer.as_ref()[self.offset..]
    }
    /// `dwSignature`.
    pub fn signature(&self) -> u32 {
        get_u32(self.ndp(), ndp32::SIGNATURE)
    }
    /// Whether this is a CRC-mode NDP ("ncm1").
    pub fn is_crc(&self) -> bool {
        self.signature() == NDP32_CRC_SIGNATURE
    }
    /// `wLength`.
    pub fn length(&self) -> u16 {
        get_u16(self.ndp(), ndp32::LENGTH)
    }
    /// `dwNextNdpIndex` (0 = last NDP).
    pub fn next_index(&self) -> u32 {
        get_u32(self.ndp(), ndp32::NEXT_NDP_INDEX)
    }
    /// Entries `wLength` has room for, terminator included.
    pub fn entry_count(&self) -> usize {
        usize::from(self.length()).saturating_sub(ndp32::HEADER_LEN) / ndp32::ENTRY_LEN
    }
    /// Entry `n` as `(dwDatagramIndex, dwDatagramLength)`, or `None` past `wLength`.
    pub fn entry(&self, n: usize) -> Option<(u32, u32)> {
        if n >= self.entry_count() {
            return None;
        }
        let ndp = self.ndp();
        Some((
            get_u32(ndp, ndp32::entry_index(n)),
            get_u32(ndp, ndp32::entry_length(n)),
        ))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ndp32<T> {
    fn ndp_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[self.offset..]
    }
    /// Writes `dwSignature`. Setters panic if the field is past the end of the buffer.
    pub fn set_signature(&mut self, v: u32) {
        set_u32(self.ndp_mut(), ndp32::SIGNATURE, v)
    }
    /// Writes `wLength`.
    pub fn set_length(&mut self, v: u16) {
        set_u16(self.ndp_mut(), ndp32::LENGTH, v)
    }
    /// Writes `wReserved6` and `dwReserved12` (both must be 0).
    pub fn set_reserved(&mut self, v6: u16, v12: u32) {
        let ndp = self.ndp_mut();
        set_u16(ndp, ndp32::RESERVED6, v6);
        set_u32(ndp, ndp32::RESERVED12, v12);
    }
    /// Writes `dwNextNdpIndex`.
    pub fn set_next_index(&mut self, v: u32) {
        set_u32(self.ndp_mut(), ndp32::NEXT_NDP_INDEX, v)
    }
    /// Writes entry `n`. Does not look at `wLength`.
    pub fn set_entry(&mut self, n: usize, index: u32, len: u32) {
        let ndp = self.ndp_mut();
        set_u32(ndp, ndp32::entry_index(n), index);
        set_u32(ndp, ndp32::entry_length(n), len);
    }
}

/// `u32` → `usize`; lossless on the 32- and 64-bit targets this crate builds for.
#[inline]
fn to_usize(v: u32) -> usize {
    v as usize
}

/// The block length in effect: the field, or the transfer when it is 0 (NCM 1.0 §3.2.1), and
/// never more than `u32::MAX` so that every offset inside fits a `u32`.
fn effective_block(field: usize, transfer: usize) -> usize {
    let block = if field == 0 { transfer } else { field };
    block.min(u32::MAX as usize)
}

fn check_block(field: usize, transfer: usize, header: usize) -> Result<(), NtbError> {
    let block = effective_block(field, transfer);
    if block > transfer {
        Err(NtbError::BlockTooLong { block, transfer })
    } else if block < header {
        Err(NtbError::BlockTooShort { block, header })
    } else {
        Ok(())
    }
}

fn check_ndp_place(index: usize, block: usize, nth_len: usize, hdr: usize) -> Result<(), NtbError> {
    let fits = index.checked_add(hdr).is_some_and(|end| end <= block);
    if index < nth_len || !fits {
        Err(NtbError::NdpOutOfRange { index, block })
    } else if index % NDP_ALIGN != 0 {
        Err(NtbError::NdpMisaligned { index })
    } else {
        Ok(())
    }
}

fn check_ndp_len(
    index: usize,
    length: usize,
    block: usize,
    min: usize,
    multiple: usize,
) -> Result<(), NtbError> {
    // check_ndp_place guaranteed index <= block.
    let room = block - index;
    if length < min || length % multiple != 0 || length > room {
        Err(NtbError::BadNdpLength {
            index,
            length,
            room,
        })
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------------

/// Limits the decoder enforces on what a device sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxLimits {
    /// Longest datagram delivered (Ethernet header included, no FCS). Longer ones are dropped.
    pub max_datagram_len: usize,
    /// Most datagrams delivered per NTB; the rest of the NTB is not read.
    pub max_datagrams: usize,
    /// Most NDPs walked per NTB. Never more than the block holds disjoint NDPs of the
    /// minimum length ([`NtbFormat::max_ndps`]), whatever this says.
    pub max_ndps: usize,
}

impl RxLimits {
    /// Limits for an IP MTU: datagrams up to `mtu` + 14 (Ethernet header) + 4 (one VLAN tag),
    /// 1024 datagrams per NTB (a 16 KiB NTB of 60-byte frames holds about 250; a 64 KiB one
    /// of bare 14-byte headers could list about 3600), and as many chained NDPs as the block
    /// holds (devices use one; the spec allows a chain, and disjointness bounds it).
    /// `mtu` saturates rather than overflows.
    pub const fn for_mtu(mtu: usize) -> RxLimits {
        RxLimits {
            max_datagram_len: mtu.saturating_add(MIN_DATAGRAM_LEN + 4),
            max_datagrams: 1024,
            max_ndps: usize::MAX,
        }
    }
}

impl Default for RxLimits {
    /// [`RxLimits::for_mtu`]`(1500)`.
    fn default() -> Self {
        RxLimits::for_mtu(1500)
    }
}

/// What [`Datagrams`] dropped, by reason. Whole-NTB rejections are [`parse_ntb`] errors
/// instead.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DropCounts {
    /// Chained NDPs rejected (out of range, misaligned, bad signature or length, loop,
    /// overlap, chain too long); the walk stops at the first.
    pub bad_ndp: u32,
    /// CRC-mode NDPs skipped with their datagrams.
    pub crc_ndp: u32,
    /// NDPs with no `(0, 0)` terminator (their datagrams are still delivered).
    pub unterminated_ndp: u32,
    /// Datagram entries dropped for their index or length: outside the block, inside the NTH,
    /// shorter than an Ethernet header, longer than [`RxLimits::max_datagram_len`].
    pub bad_datagram: u32,
    /// Datagram entries dropped for overlapping an earlier datagram or an NDP (repeated
    /// pointers included).
    pub overlap: u32,
    /// 1 if [`RxLimits::max_datagrams`] cut the NTB short.
    pub capped: u32,
}

impl DropCounts {
    /// Datagram entries dropped (bad, overlapping), not counting NDP-level drops.
    pub const fn datagrams(&self) -> u32 {
        self.bad_datagram + self.overlap
    }
    /// Whether nothing was dropped or skipped.
    pub const fn is_clean(&self) -> bool {
        self.bad_ndp == 0
            && self.crc_ndp == 0
            && self.unterminated_ndp == 0
            && self.bad_datagram == 0
            && self.overlap == 0
            && self.capped == 0
    }
}

/// A half-open byte range `[start, end)` inside a block (which is at most `u32::MAX` long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

/// Slots of [`SpanSet`].
const SPAN_SLOTS: usize = 32;

/// The byte ranges of the datagrams delivered so far, sorted and disjoint, in a fixed array.
///
/// Datagrams normally come in ascending order, so an insert is normally a compare and an
/// append. Out-of-order datagrams take a binary search and a shift. When the array is full,
/// two neighbouring ranges are merged into one covering range (the gap between them becomes
/// "taken"), so the set can only err towards reporting an overlap: a real overlap is never
/// missed, and a datagram placed in such a gap *after* more than 32 others is dropped. No
/// real device does that.
#[derive(Debug, Clone)]
struct SpanSet {
    spans: [Span; SPAN_SLOTS],
    len: usize,
}

impl SpanSet {
    const fn new() -> Self {
        SpanSet {
            spans: [Span { start: 0, end: 0 }; SPAN_SLOTS],
            len: 0,
        }
    }

    fn overlaps(&self, start: u32, end: u32) -> bool {
        let spans = &self.spans[..self.len];
        let i = spans.partition_point(|s| s.end <= start);
        i < spans.len() && spans[i].start < end
    }

    /// Whether a stored range starts exactly at `start` (one not merged with a neighbour).
    fn starts_at(&self, start: u32) -> bool {
        let spans = &self.spans[..self.len];
        let i = spans.partition_point(|s| s.end <= start);
        i < spans.len() && spans[i].start == start
    }

    /// Adds `[start, end)` unless it overlaps a stored range; returns whether it was added.
    fn insert(&mut self, start: u32, end: u32) -> bool {
        let n = self.len;
        if n == 0 || start >= self.spans[n - 1].end {
            // In order: the common case.
            if n == SPAN_SLOTS {
                self.spans[n - 1].end = end;
            } else {
                self.spans[n] = Span { start, end };
                self.len += 1;
            }
            return true;
        }
        if self.overlaps(start, end) {
            return false;
        }
        if n == SPAN_SLOTS {
            self.merge_closest();
            // The merge may have covered the new range.
            if self.overlaps(start, end) {
                return false;
            }
        }
        let n = self.len;
        let i = self.spans[..n].partition_point(|s| s.end <= start);
        self.spans.copy_within(i..n, i + 1);
        self.spans[i] = Span { start, end };
        self.len += 1;
        true
    }

    /// Merges the two neighbours with the smallest gap between them.
    fn merge_closest(&mut self) {
        let n = self.len;
        let mut best = 0;
        let mut best_gap = u32::MAX;
        for j in 0..n - 1 {
            let gap = self.spans[j + 1].start - self.spans[j].end;
            if gap < best_gap {
                best_gap = gap;
                best = j;
            }
        }
        self.spans[best].end = self.spans[best + 1].end;
        self.spans.copy_within(best + 2..n, best + 1);
        self.len -= 1;
    }
}

/// An NDP of either format, validated.
#[derive(Debug, Clone, Copy)]
enum AnyNdp<'a> {
    N16(Ndp16<&'a [u8]>),
    N32(Ndp32<&'a [u8]>),
}

impl<'a> AnyNdp<'a> {
    fn new_checked(format: NtbFormat, block: &'a [u8], index: usize) -> Result<Self, NtbError> {
        Ok(match format {
            NtbFormat::Ntb16 => AnyNdp::N16(Ndp16::new_checked(block, index)?),
            NtbFormat::Ntb32 => AnyNdp::N32(Ndp32::new_checked(block, index)?),
        })
    }
    fn offset(&self) -> usize {
        match self {
            AnyNdp::N16(n) => n.offset(),
            AnyNdp::N32(n) => n.offset(),
        }
    }
    fn length(&self) -> usize {
        usize::from(match self {
            AnyNdp::N16(n) => n.length(),
            AnyNdp::N32(n) => n.length(),
        })
    }
    fn signature(&self) -> u32 {
        match self {
            AnyNdp::N16(n) => n.signature(),
            AnyNdp::N32(n) => n.signature(),
        }
    }
    fn is_crc(&self) -> bool {
        match self {
            AnyNdp::N16(n) => n.is_crc(),
            AnyNdp::N32(n) => n.is_crc(),
        }
    }
    fn next_index(&self) -> usize {
        match self {
            AnyNdp::N16(n) => usize::from(n.next_index()),
            AnyNdp::N32(n) => to_usize(n.next_index()),
        }
    }
    fn walk(&self) -> Walk {
        let (header, count) = match self {
            AnyNdp::N16(n) => (ndp16::HEADER_LEN, n.entry_count()),
            AnyNdp::N32(n) => (ndp32::HEADER_LEN, n.entry_count()),
        };
        Walk {
            offset: self.offset(),
            next: self.next_index(),
            entries_at: self.offset() + header,
            count,
            entry: 0,
        }
    }
}

/// The NDP being walked, flattened for the hot loop: where its entries start, how many
/// `wLength` covers, and the next one to read.
#[derive(Debug, Clone, Copy)]
struct Walk {
    offset: usize,
    next: usize,
    entries_at: usize,
    count: usize,
    entry: usize,
}

/// The datagrams of one NTB, borrowed from the transfer; see [`parse_ntb`].
///
/// Yields each valid datagram once, in NDP order. Drops are counted in
/// [`drops`](Self::drops); read it after the loop.
#[derive(Debug, Clone)]
pub struct Datagrams<'a> {
    block: &'a [u8],
    format: NtbFormat,
    sequence: u16,
    limits: RxLimits,
    /// The NDP being walked.
    ndp: Option<Walk>,
    /// The byte ranges of the NDPs walked so far (for loop and overlap checks); like
    /// `spans`, it can only err towards reporting an overlap.
    ndps: SpanSet,
    ndp_count: usize,
    /// Datagrams delivered so far.
    spans: SpanSet,
    delivered: usize,
    drops: DropCounts,
    last_drop: Option<NtbError>,
}

/// Decodes one NTB (NTB-16 or NTB-32, told apart by the NTH signature).
///
/// Checks the NTH and the first NDP; their errors reject the transfer. The returned iterator
/// checks each datagram and chained NDP as it goes, dropping and counting the bad ones. Never
/// panics, reads nothing outside `transfer[..block length]`, and ends after at most
/// `block length / 4` pointer entries.
///
/// ```
/// use usbnetd::wire::{parse_ntb, RxLimits};
/// # let transfer = usbnetd::wire::ntb::tests_support::two_frame_ntb16();
/// let mut frames = parse_ntb(&transfer, &RxLimits::default())?;
/// for frame in frames.by_ref() {
///     assert!(frame.len() >= 14);
/// }
/// assert!(frames.drops().is_clean());
/// # Ok::<(), usbnetd::wire::NtbError>(())
/// ```
pub fn parse_ntb<'a>(transfer: &'a [u8], limits: &RxLimits) -> Result<Datagrams<'a>, NtbError> {
    if transfer.len() < 4 {
        return Err(NtbError::Truncated {
            len: transfer.len(),
            need: nth16::HEADER_LEN,
        });
    }
    let (format, block, sequence, ndp_index) = match get_u32(transfer, 0..4) {
        NTH16_SIGNATURE => {
            let nth = Nth16::new_checked(transfer)?;
            (
                NtbFormat::Ntb16,
                nth.block(),
                nth.sequence(),
                usize::from(nth.ndp_index()),
            )
        }
        NTH32_SIGNATURE => {
            let nth = Nth32::new_checked(transfer)?;
            (
                NtbFormat::Ntb32,
                nth.block(),
                nth.sequence(),
                to_usize(nth.ndp_index()),
            )
        }
        other => return Err(NtbError::BadSignature(other)),
    };
    let mut limits = *limits;
    limits.max_ndps = limits.max_ndps.min(format.max_ndps(block.len())).max(1);
    let mut it = Datagrams {
        block,
        format,
        sequence,
        limits,
        ndp: None,
        ndps: SpanSet::new(),
        ndp_count: 0,
        spans: SpanSet::new(),
        delivered: 0,
        drops: DropCounts::default(),
        last_drop: None,
    };
    let first = it.open_ndp(ndp_index)?;
    it.enter(first);
    Ok(it)
}

impl<'a> Datagrams<'a> {
    /// The NTB format.
    pub const fn format(&self) -> NtbFormat {
        self.format
    }
    /// `wSequence` of the NTH.
    pub const fn sequence(&self) -> u16 {
        self.sequence
    }
    /// The block length in effect (see the module doc on `wBlockLength` = 0).
    pub const fn block_len(&self) -> usize {
        self.block.len()
    }
    /// Datagrams delivered so far.
    pub const fn delivered(&self) -> usize {
        self.delivered
    }
    /// What was dropped so far.
    pub const fn drops(&self) -> DropCounts {
        self.drops
    }
    /// The reason for the most recent drop, with the offending values, for the log.
    pub const fn last_drop(&self) -> Option<NtbError> {
        self.last_drop
    }

    fn record(&mut self, e: NtbError) {
        self.last_drop = Some(e);
    }

    /// Validates the NDP at `index` as the next one of the chain and records its range.
    fn open_ndp(&mut self, index: usize) -> Result<AnyNdp<'a>, NtbError> {
        if self.ndp_count >= self.limits.max_ndps {
            return Err(NtbError::NdpChainTooLong {
                max: self.limits.max_ndps,
            });
        }
        let ndp = AnyNdp::new_checked(self.format, self.block, index)?;
        // Both ends are inside the block, which is at most u32::MAX long.
        let (start, end) = (index as u32, (index + ndp.length()) as u32);
        if self.ndps.overlaps(start, end) {
            return Err(if self.ndps.starts_at(start) {
                NtbError::NdpLoop { index }
            } else {
                NtbError::NdpOverlap { index }
            });
        }
        if self.spans.overlaps(start, end) {
            return Err(NtbError::NdpOverlap { index });
        }
        self.ndps.insert(start, end);
        self.ndp_count += 1;
        Ok(ndp)
    }

    /// Makes `ndp` current, skipping over CRC-mode NDPs along the chain.
    fn enter(&mut self, mut ndp: AnyNdp<'a>) {
        loop {
            if !ndp.is_crc() {
                self.ndp = Some(ndp.walk());
                return;
            }
            self.drops.crc_ndp += 1;
            self.record(NtbError::CrcNdp {
                index: ndp.offset(),
                signature: ndp.signature(),
            });
            match self.follow(ndp.next_index()) {
                Some(next) => ndp = next,
                None => return,
            }
        }
    }

    /// Opens the NDP `next` points at, if any; a bad one ends the walk.
    fn follow(&mut self, next: usize) -> Option<AnyNdp<'a>> {
        self.ndp = None;
        if next == 0 {
            return None;
        }
        match self.open_ndp(next) {
            Ok(ndp) => Some(ndp),
            Err(e) => {
                self.drops.bad_ndp += 1;
                self.record(e);
                None
            }
        }
    }

    /// Checks one non-terminator entry and claims its bytes.
    fn check_datagram(&mut self, index: usize, len: usize) -> Result<&'a [u8], NtbError> {
        let header = self.format.nth_len();
        let block = self.block.len();
        let end = match index.checked_add(len) {
            Some(end) if index >= header && end <= block => end,
            _ => {
                return Err(NtbError::DatagramOutOfRange {
                    index,
                    len,
                    header,
                    block,
                })
            }
        };
        if len < MIN_DATAGRAM_LEN {
            return Err(NtbError::DatagramTooShort { index, len });
        }
        if len > self.limits.max_datagram_len {
            return Err(NtbError::DatagramTooLong {
                index,
                len,
                max: self.limits.max_datagram_len,
            });
        }
        // Inside the block, so both fit in u32.
        let (start, end32) = (index as u32, end as u32);
        if self.ndps.overlaps(start, end32) || !self.spans.insert(start, end32) {
            return Err(NtbError::DatagramOverlap { index, len });
        }
        Ok(&self.block[index..end])
    }
}

impl<'a> Iterator for Datagrams<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // Each turn consumes one entry or one NDP; both are finite (entries are bounded by
        // wLength, NDPs by the chain cap and by being disjoint), so this loop ends.
        loop {
            let walk = self.ndp.as_mut()?;
            if walk.entry >= walk.count {
                // Ran into wLength without a terminator.
                let (offset, next) = (walk.offset, walk.next);
                self.drops.unterminated_ndp += 1;
                self.record(NtbError::NdpUnterminated { index: offset });
                if let Some(next) = self.follow(next) {
                    self.enter(next);
                }
                continue;
            }
            // entry < count: inside the NDP, which check_len put inside the block.
            let (index, len) = self
                .format
                .read_entry(self.block, walk.entries_at, walk.entry);
            walk.entry += 1;
            let next = walk.next;
            if index == 0 || len == 0 {
                // The terminator (a zero index or length ends the list, NCM 1.0 §3.3.1).
                if let Some(next) = self.follow(next) {
                    self.enter(next);
                }
                continue;
            }
            if self.delivered >= self.limits.max_datagrams {
                self.drops.capped = 1;
                self.record(NtbError::TooManyDatagrams {
                    max: self.limits.max_datagrams,
                });
                self.ndp = None;
                return None;
            }
            match self.check_datagram(index, len) {
                Ok(d) => {
                    self.delivered += 1;
                    return Some(d);
                }
                Err(e) => {
                    match e {
                        NtbError::DatagramOverlap { .. } => self.drops.overlap += 1,
                        _ => self.drops.bad_datagram += 1,
                    }
                    self.record(e);
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.ndp.is_none() {
            (0, Some(0))
        } else {
            (
                0,
                Some(self.limits.max_datagrams.saturating_sub(self.delivered)),
            )
        }
    }
}

impl FusedIterator for Datagrams<'_> {}

// ---------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------

/// The host's TX constraints, from the OUT half of `GET_NTB_PARAMETERS` (NCM 1.0 Table 6-3).
///
/// Build it with [`from_device`](Self::from_device) (or fill it in and call
/// [`sanitize`](Self::sanitize)) so that the rules below hold:
///
/// * `divisor` 0 → 1; `remainder` ≥ `divisor` → `remainder % divisor`;
/// * `ndp_alignment` 0, below 4, or not a power of two → 4 (the spec requires a power of two
///   of at least 4);
/// * `max_size` above what the format's length field can say → clamped (65535 for NTB-16);
/// * `max_size` too small for one full-size frame with its NTH, alignment padding and NDP →
///   [`TxParamsError::MaxSizeTooSmall`]. A device reporting such a `dwNtbOutMaxSize` fails the
///   bind instead of binding and then transmitting nothing (the kernel clamped to a 184-byte
///   minimum and sent no frame at all). The error says which frame size would fit, should the
///   caller prefer lowering the MTU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtbParams {
    /// The format selected with `SET_NTB_FORMAT`.
    pub format: NtbFormat,
    /// `dwNtbOutMaxSize`: the largest NTB the device accepts.
    pub max_size: u32,
    /// `wNtbOutMaxDatagrams`: most datagrams per NTB, 0 = no limit.
    pub max_datagrams: u16,
    /// `wNdpOutDivisor`.
    pub divisor: u16,
    /// `wNdpOutPayloadRemainder`: each datagram starts at an offset ≡ `remainder` (mod
    /// `divisor`).
    pub remainder: u16,
    /// `wNdpOutAlignment`: the NDP starts at a multiple of this.
    pub ndp_alignment: u16,
}

/// Why the device's TX parameters are unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxParamsError {
    /// The requested format is not in `bmNtbFormatsSupported`.
    #[error("the device does not support {format} (bmNtbFormatsSupported {supported:#06x})")]
    FormatNotSupported {
        /// The format asked for.
        format: NtbFormat,
        /// `bmNtbFormatsSupported`.
        supported: u16,
    },
    /// `dwNtbOutMaxSize` cannot carry one full-size frame.
    #[error(
        "dwNtbOutMaxSize {max_size} cannot carry one {frame}-byte frame \
         (that needs {needed} bytes; the largest frame that fits is {largest})"
    )]
    MaxSizeTooSmall {
        /// `dwNtbOutMaxSize` as reported.
        max_size: u32,
        /// The frame size asked for.
        frame: usize,
        /// The NTB size one such frame needs.
        needed: usize,
        /// The largest frame that fits.
        largest: usize,
    },
}

/// Smallest `off >= cur` with `off % divisor == remainder` (`remainder < divisor`).
#[inline]
fn align_to(cur: usize, divisor: usize, remainder: usize) -> usize {
    let pad = if divisor.is_power_of_two() {
        remainder.wrapping_sub(cur) & (divisor - 1)
    } else {
        (remainder + divisor - cur % divisor) % divisor
    };
    cur.saturating_add(pad)
}

/// `x` rounded up to a multiple of `align` (a power of two).
fn align_up(x: usize, align: usize) -> usize {
    x.checked_add(align - 1)
        .map_or(usize::MAX, |v| v & !(align - 1))
}

impl NtbParams {
    /// The OUT parameters of a `GET_NTB_PARAMETERS` reply for `format`, sanitized for frames
    /// of up to `max_frame_len` bytes (Ethernet header included).
    ///
    /// NTB-16 is accepted whatever `bmNtbFormatsSupported` says (the spec makes it
    /// mandatory); NTB-32 needs bit 1.
    pub fn from_device(
        reply: &NtbParameters,
        format: NtbFormat,
        max_frame_len: usize,
    ) -> Result<NtbParams, TxParamsError> {
        if format == NtbFormat::Ntb32 && !reply.supports_ntb32() {
            return Err(TxParamsError::FormatNotSupported {
                format,
                supported: reply.formats_supported,
            });
        }
        NtbParams {
            format,
            max_size: reply.ntb_out_max_size,
            max_datagrams: reply.ntb_out_max_datagrams,
            divisor: reply.ndp_out_divisor,
            remainder: reply.ndp_out_payload_remainder,
            ndp_alignment: reply.ndp_out_alignment,
        }
        .sanitize(max_frame_len)
    }

    /// Applies the rules in the type's doc; fails if one `max_frame_len`-byte frame does not
    /// fit in `max_size`.
    pub fn sanitize(self, max_frame_len: usize) -> Result<NtbParams, TxParamsError> {
        let p = self.normalized();
        let needed = p.ntb_len_for_one(max_frame_len);
        let max = p.max_size as usize;
        if needed > max {
            return Err(TxParamsError::MaxSizeTooSmall {
                max_size: self.max_size,
                frame: max_frame_len,
                needed,
                largest: p.largest_frame_within(max),
            });
        }
        Ok(p)
    }

    /// The infallible part of [`sanitize`](Self::sanitize).
    fn normalized(mut self) -> NtbParams {
        self.max_size = self
            .max_size
            .min(self.format.max_block_len().min(u32::MAX as usize) as u32);
        if self.divisor == 0 {
            self.divisor = 1;
        }
        self.remainder %= self.divisor;
        if self.ndp_alignment < NDP_ALIGN as u16 || !self.ndp_alignment.is_power_of_two() {
            self.ndp_alignment = NDP_ALIGN as u16;
        }
        self
    }

    /// Offset of the first datagram.
    fn first_offset(&self) -> usize {
        align_to(
            self.format.nth_len(),
            usize::from(self.divisor),
            usize::from(self.remainder),
        )
    }

    /// The NTB length one frame of `frame_len` bytes needs, with these (normalized)
    /// parameters.
    pub fn ntb_len_for_one(&self, frame_len: usize) -> usize {
        let p = self.normalized();
        let end = p.first_offset().saturating_add(frame_len);
        align_up(end, usize::from(p.ndp_alignment)).saturating_add(p.format.ndp_len(1))
    }

    /// The largest frame an NTB of at most `limit` bytes can carry alone (0 if none).
    pub fn largest_frame_within(&self, limit: usize) -> usize {
        let p = self.normalized();
        let Some(room) = limit.checked_sub(p.format.ndp_len(1)) else {
            return 0;
        };
        let ndp_at = room & !(usize::from(p.ndp_alignment) - 1);
        ndp_at.saturating_sub(p.first_offset())
    }
}

/// Why [`NtbBuilder::push`] refused a frame. Nothing was written in either case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The NTB is full (size, datagram count, or NDP room): finish and send it, begin a new
    /// one and push the frame again.
    #[error("the NTB is full")]
    Full,
    /// The frame does not fit even in an empty NTB with this buffer and these parameters:
    /// drop it (retrying cannot help).
    #[error("a {len}-byte frame does not fit in an NTB (at most {max} bytes)")]
    TooLarge {
        /// Frame length.
        len: usize,
        /// The largest frame that fits an empty NTB.
        max: usize,
    },
    /// The frame is shorter than an Ethernet header; a zero length would even end the NDP.
    #[error("a {len}-byte frame is shorter than an Ethernet header")]
    TooShort {
        /// Frame length.
        len: usize,
    },
}

/// Writes NTBs in place into an [`OutBuf`]; see the [module doc](self).
///
/// ```
/// use usbnetd::wire::{parse_ntb, NtbBuilder, NtbFormat, NtbParams, RxLimits};
/// let params = NtbParams {
///     format: NtbFormat::Ntb16, max_size: 16384, max_datagrams: 0,
///     divisor: 4, remainder: 2, ndp_alignment: 4,
/// }.sanitize(1514).unwrap();
/// let mut builder = NtbBuilder::new(params);
/// let mut out: Vec<u8> = Vec::with_capacity(16384);
/// builder.begin(&mut out, 1);
/// builder.push(&mut out, &[0xab; 60]).unwrap();
/// builder.push(&mut out, &[0xcd; 1514]).unwrap();
/// let len = builder.finish(&mut out);
/// assert_eq!(len, out.len());
/// let frames: Vec<&[u8]> = parse_ntb(&out, &RxLimits::default()).unwrap().collect();
/// assert_eq!(frames, [&[0xab; 60][..], &[0xcd; 1514][..]]);
/// ```
#[derive(Debug, Clone)]
pub struct NtbBuilder {
    params: NtbParams,
    /// `(index, length)` of the datagrams of the open NTB; reused, so it stops allocating
    /// once it has grown to the largest NTB.
    entries: Vec<(u32, u32)>,
    /// Size limit of the open NTB: `max_size`, the buffer's capacity, and the padding byte.
    limit: usize,
    open: bool,
    /// Whether the open NTB has its NTH (false when the buffer cannot even hold that).
    has_nth: bool,
    sequence: u16,
    short_packet: Option<usize>,
}

impl NtbBuilder {
    /// A builder for `params` (normalized as in [`NtbParams::sanitize`], minus the size
    /// check: use `sanitize` or `from_device` to get that).
    pub fn new(params: NtbParams) -> NtbBuilder {
        let params = params.normalized();
        let hint = match params.max_datagrams {
            0 => 64,
            n => usize::from(n).min(64),
        };
        NtbBuilder {
            params,
            entries: Vec::with_capacity(hint),
            limit: 0,
            open: false,
            has_nth: false,
            sequence: 0,
            short_packet: None,
        }
    }

    /// Makes [`finish`](Self::finish) append one zero byte (counted in the block length)
    /// when the NTB would otherwise need a zero-length packet to end it; see
    /// [`padding_for_zlp`]. `max_packet` is the bulk OUT endpoint's `wMaxPacketSize`. The
    /// byte is reserved up
    /// front, so `finish` always has room for it. A `max_packet` of 0 or 1 turns it off.
    pub fn with_short_packet_padding(mut self, max_packet: usize) -> NtbBuilder {
        self.short_packet = (max_packet > 1).then_some(max_packet);
        self
    }

    /// The (normalized) parameters.
    pub const fn params(&self) -> &NtbParams {
        &self.params
    }

    /// Datagrams in the open NTB.
    pub fn datagrams(&self) -> usize {
        self.entries.len()
    }

    /// Whether the open NTB holds no datagram.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The size limit of an NTB in `out`.
    fn limit_for(&self, capacity: usize) -> usize {
        let max = self.params.max_size as usize;
        match self.short_packet {
            Some(_) if capacity < max => capacity.saturating_sub(1),
            _ => capacity.min(max),
        }
    }

    /// Starts an NTB in `out` (cleared first) with `wSequence` = `sequence`: writes the NTH
    /// with the block length and NDP index still 0.
    pub fn begin(&mut self, out: &mut impl OutBuf, sequence: u16) {
        out.clear();
        self.entries.clear();
        self.sequence = sequence;
        self.open = true;
        self.limit = self.limit_for(out.capacity());
        let hdr = self.params.format.nth_len();
        self.has_nth = hdr <= self.limit;
        if !self.has_nth {
            // Every push will report TooLarge.
            return;
        }
        let nth = out.extend_fill(hdr, 0);
        match self.params.format {
            NtbFormat::Ntb16 => {
                let mut h = Nth16::new_unchecked(nth);
                h.set_signature(NTH16_SIGNATURE);
                h.set_header_len(nth16::HEADER_LEN as u16);
                h.set_sequence(sequence);
            }
            NtbFormat::Ntb32 => {
                let mut h = Nth32::new_unchecked(nth);
                h.set_signature(NTH32_SIGNATURE);
                h.set_header_len(nth32::HEADER_LEN as u16);
                h.set_sequence(sequence);
            }
        }
    }

    /// Appends `frame` (a whole Ethernet frame) as a datagram, or refuses without writing
    /// anything. Checks, before writing, that the datagram, its alignment padding and the
    /// NDP that must list it (plus the optional short-packet byte) fit in
    /// min(`max_size`, `out.capacity()`), and that `max_datagrams` is not reached.
    ///
    /// Without a preceding [`begin`](Self::begin), begins an NTB with the next sequence
    /// number. `out` must not be touched between `begin` and [`finish`](Self::finish).
    pub fn push(&mut self, out: &mut impl OutBuf, frame: &[u8]) -> Result<(), PushError> {
        self.push_with(out, frame.len(), &mut |d| d.copy_from_slice(frame))
    }

    /// As [`push`](Self::push) for a `len`-byte frame that `fill` writes in place (every
    /// byte of the slice it is given), e.g. a TCP segment cut straight into the NTB.
    pub fn push_with(
        &mut self,
        out: &mut impl OutBuf,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), PushError> {
        if len < MIN_DATAGRAM_LEN {
            return Err(PushError::TooShort { len });
        }
        if !self.open {
            self.begin(out, self.sequence.wrapping_add(1));
        }
        let p = &self.params;
        let too_large = || PushError::TooLarge {
            len,
            max: p.largest_frame_within(self.limit),
        };
        if !self.has_nth {
            return Err(too_large());
        }
        let n = self.entries.len() + 1;
        let count_ok = (p.max_datagrams == 0 || n <= usize::from(p.max_datagrams))
            && n <= p.format.max_ndp_datagrams();
        let cur = out.len();
        let off = align_to(cur, usize::from(p.divisor), usize::from(p.remainder));
        let end = off.saturating_add(len);
        let total = align_up(end, usize::from(p.ndp_alignment)).saturating_add(p.format.ndp_len(n));
        if total > self.limit || !count_ok {
            return Err(if self.entries.is_empty() {
                too_large()
            } else {
                PushError::Full
            });
        }
        // total <= limit <= capacity, and limit <= the format's largest block, so the offsets
        // fit the entry fields.
        if off > cur {
            out.extend_fill(off - cur, 0);
        }
        out.extend_with(len, fill);
        self.entries.push((off as u32, len as u32));
        Ok(())
    }

    /// Closes the NTB: writes the NDP (aligned to `ndp_alignment`, entries, `(0, 0)`
    /// terminator), the optional short-packet byte, then patches the NTH's block length and
    /// NDP index. Returns the NTB length (= `out.len()`).
    ///
    /// An NTB without datagrams is not sent: `out` is cleared and 0 returned.
    pub fn finish(&mut self, out: &mut impl OutBuf) -> usize {
        let was_open = core::mem::replace(&mut self.open, false);
        if !was_open || self.entries.is_empty() || !self.has_nth {
            out.clear();
            self.entries.clear();
            return 0;
        }
        let p = self.params;
        let cur = out.len();
        let ndp_at = align_up(cur, usize::from(p.ndp_alignment));
        let n = self.entries.len();
        let ndp_len = p.format.ndp_len(n);
        // push reserved room for exactly this.
        out.extend_fill(ndp_at - cur, 0);
        let ndp = out.extend_fill(ndp_len, 0);
        match p.format {
            NtbFormat::Ntb16 => {
                let mut v = Ndp16::new_unchecked(ndp, 0);
                v.set_signature(NDP16_SIGNATURE);
                v.set_length(ndp_len as u16);
                v.set_next_index(0);
                for (i, &(index, len)) in self.entries.iter().enumerate() {
                    v.set_entry(i, index as u16, len as u16);
                }
            }
            NtbFormat::Ntb32 => {
                let mut v = Ndp32::new_unchecked(ndp, 0);
                v.set_signature(NDP32_SIGNATURE);
                v.set_length(ndp_len as u16);
                v.set_reserved(0, 0);
                v.set_next_index(0);
                for (i, &(index, len)) in self.entries.iter().enumerate() {
                    v.set_entry(i, index, len);
                }
            }
        }
        // The terminator entry is already zero (extend_fill).
        let mut total = ndp_at + ndp_len;
        if let Some(mp) = self.short_packet {
            if padding_for_zlp(total, mp, p.max_size as usize) {
                out.extend_fill(1, 0);
                total += 1;
            }
        }
        let nth = out.as_mut_slice();
        match p.format {
            NtbFormat::Ntb16 => {
                let mut h = Nth16::new_unchecked(nth);
                h.set_block_len(total as u16);
                h.set_ndp_index(ndp_at as u16);
            }
            NtbFormat::Ntb32 => {
                let mut h = Nth32::new_unchecked(nth);
                h.set_block_len(total as u32);
                h.set_ndp_index(ndp_at as u32);
            }
        }
        self.entries.clear();
        total
    }
}

/// Whether a bulk OUT transfer of `len` bytes needs a zero-length packet to end it: `len` is a
/// non-zero multiple of `max_packet` and less than `max_size`, the largest transfer the device
/// expects. (A transfer of exactly `max_size` bytes ends by its size, so it needs none: NCM 1.0
/// §3.2.1.)
///
/// Instead of a ZLP, `cdc_ncm` (for devices without `FLAG_SEND_ZLP`) appends one zero byte
/// ("force short packet"), which the device ignores because no NDP points at it, and counts it
/// in the block length; [`NtbBuilder::with_short_packet_padding`] does the same. (`cdc_ncm`
/// also pads NTBs above a threshold to the full `dwNtbOutMaxSize`; we do not.) Some device
/// controllers handle a ZLP badly, a stray byte never.
pub fn padding_for_zlp(len: usize, max_packet: usize, max_size: usize) -> bool {
    max_packet != 0 && len != 0 && len % max_packet == 0 && len < max_size
}

/// Test vectors shared by the unit tests, the doctests, the benches and the fuzz targets.
#[doc(hidden)]
pub mod tests_support {
    /// An NTB-16 laid out as the Linux NCM gadget (`f_ncm.c`, `ncm_wrap_ntb` /
    /// `package_for_tx`) sends it with its default parameters (divisor 4, remainder 0, NDP
    /// alignment 4): NTH16, the datagrams from offset 12 each padded to 4 bytes, then the NDP
    /// ("NCM0", `wLength` counting the zero entry) at the end. `wSequence` is 0 because the
    /// gadget never sets it. The frames are an ARP request (who-has 192.168.7.1) and its
    /// reply, 42 bytes each (no Ethernet padding on USB).
    #[rustfmt::skip]
    pub const GADGET_NTB16: [u8; 120] = [
        // NTH16 @0
        0x4e, 0x43, 0x4d, 0x48, // dwSignature "NCMH"
        0x0c, 0x00,             // wHeaderLength 12
        0x00, 0x00,             // wSequence 0
        0x78, 0x00,             // wBlockLength 120
        0x64, 0x00,             // wNdpIndex 100
        // datagram 0 @12, 42 bytes: ARP request
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst broadcast
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // src (gadget)
        0x08, 0x06,                         // EtherType ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, // Ethernet/IPv4, hlen 6, plen 4
        0x00, 0x01,                         // op request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // sender MAC
        0xc0, 0xa8, 0x07, 0x02,             // sender IP 192.168.7.2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // target MAC
        0xc0, 0xa8, 0x07, 0x01,             // target IP 192.168.7.1
        0x00, 0x00,                         // pad to 56 (divisor 4)
        // datagram 1 @56, 42 bytes: ARP reply
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst (gadget)
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x08, 0x06,                         // EtherType ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, // Ethernet/IPv4, hlen 6, plen 4
        0x00, 0x02,                         // op reply
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // sender MAC
        0xc0, 0xa8, 0x07, 0x01,             // sender IP 192.168.7.1
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // target MAC
        0xc0, 0xa8, 0x07, 0x02,             // target IP 192.168.7.2
        0x00, 0x00,                         // pad to 100 (wNdpInAlignment 4)
        // NDP16 @100
        0x4e, 0x43, 0x4d, 0x30, // dwSignature "NCM0"
        0x14, 0x00,             // wLength 20 = 8 + 3 entries
        0x00, 0x00,             // wNextNdpIndex 0
        0x0c, 0x00, 0x2a, 0x00, // datagram 0: index 12, length 42
        0x38, 0x00, 0x2a, 0x00, // datagram 1: index 56, length 42
        0x00, 0x00, 0x00, 0x00, // terminator
    ];

    /// [`GADGET_NTB16`] as a `Vec`.
    pub fn two_frame_ntb16() -> Vec<u8> {
        GADGET_NTB16.to_vec()
    }
}

#[cfg(test)]
mod tests;
