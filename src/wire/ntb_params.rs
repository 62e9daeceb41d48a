//! The NTB parameter structure (`GET_NTB_PARAMETERS` reply, NCM 1.0 §6.2.1, Table 6-3) and
//! the `SET_NTB_INPUT_SIZE` payload (NCM 1.0 §6.2.7, Table 6-4).
//!
//! The reply is 28 bytes. A device that answers with fewer (the kernel's `cdc_ncm` accepted 10
//! or even 0 bytes and then ran with zeroed limits, transmitting nothing) gets a typed
//! [`NtbParametersError::Short`] here; the caller decides whether to fail the bind.

use super::{get_u16, get_u32, set_u16, set_u32};

/// Byte ranges of the fields of the NTB parameter structure.
pub mod field {
    use crate::wire::Field;
    /// `wLength`: size of this structure (0x1C).
    pub const LENGTH: Field = 0..2;
    /// `bmNtbFormatsSupported`: bit 0 NTB-16, bit 1 NTB-32.
    pub const FORMATS_SUPPORTED: Field = 2..4;
    /// `dwNtbInMaxSize`: largest IN NTB the function can send.
    pub const NTB_IN_MAX_SIZE: Field = 4..8;
    /// `wNdpInDivisor`: IN datagram alignment divisor.
    pub const NDP_IN_DIVISOR: Field = 8..10;
    /// `wNdpInPayloadRemainder`: IN datagram alignment remainder.
    pub const NDP_IN_PAYLOAD_REMAINDER: Field = 10..12;
    /// `wNdpInAlignment`: IN NDP alignment.
    pub const NDP_IN_ALIGNMENT: Field = 12..14;
    /// `wReserved`.
    pub const RESERVED: Field = 14..16;
    /// `dwNtbOutMaxSize`: largest OUT NTB the function accepts.
    pub const NTB_OUT_MAX_SIZE: Field = 16..20;
    /// `wNdpOutDivisor`: OUT datagram alignment divisor.
    pub const NDP_OUT_DIVISOR: Field = 20..22;
    /// `wNdpOutPayloadRemainder`: OUT datagram alignment remainder.
    pub const NDP_OUT_PAYLOAD_REMAINDER: Field = 22..24;
    /// `wNdpOutAlignment`: OUT NDP alignment.
    pub const NDP_OUT_ALIGNMENT: Field = 24..26;
    /// `wNtbOutMaxDatagrams`: most datagrams per OUT NTB (0 = no limit).
    pub const NTB_OUT_MAX_DATAGRAMS: Field = 26..28;

    /// `SET_NTB_INPUT_SIZE` / `GET_NTB_INPUT_SIZE`: `dwNtbInMaxSize`.
    pub const INPUT_SIZE_MAX_SIZE: Field = 0..4;
    /// `SET_NTB_INPUT_SIZE` (8-byte form): `wNtbInMaxDatagrams`.
    pub const INPUT_SIZE_MAX_DATAGRAMS: Field = 4..6;
    /// `SET_NTB_INPUT_SIZE` (8-byte form): `wReserved`.
    pub const INPUT_SIZE_RESERVED: Field = 6..8;
}

/// Length of the NTB parameter structure.
pub const LEN: usize = field::NTB_OUT_MAX_DATAGRAMS.end;

/// Why an NTB parameter reply (or an NTB input size payload) was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NtbParametersError {
    /// The device answered with fewer bytes than the structure has.
    #[error("NTB parameter reply is {len} bytes, expected at least {need}")]
    Short {
        /// Bytes received.
        len: usize,
        /// Bytes required.
        need: usize,
    },
}

/// A checked view over a `GET_NTB_PARAMETERS` reply; see the module doc of [`crate::wire`]
/// for the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtbParametersView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NtbParametersView<T> {
    /// Wraps `buffer` without checking it; accessors may panic unless
    /// [`check_len`](Self::check_len) succeeded.
    pub const fn new_unchecked(buffer: T) -> Self {
        NtbParametersView { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len). Use this for device bytes.
    pub fn new_checked(buffer: T) -> Result<Self, NtbParametersError> {
        let v = Self::new_unchecked(buffer);
        v.check_len()?;
        Ok(v)
    }

    /// Checks that the buffer holds the whole 28-byte structure. The `wLength` field is not
    /// required to say 28: only the bytes actually received count, and extra bytes are ignored.
    pub fn check_len(&self) -> Result<(), NtbParametersError> {
        let len = self.buffer.as_ref().len();
        if len < LEN {
            Err(NtbParametersError::Short { len, need: LEN })
        } else {
            Ok(())
        }
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// `wLength`.
    pub fn length(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }
    /// `bmNtbFormatsSupported`.
    pub fn formats_supported(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::FORMATS_SUPPORTED)
    }
    /// `dwNtbInMaxSize`.
    pub fn ntb_in_max_size(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::NTB_IN_MAX_SIZE)
    }
    /// `wNdpInDivisor`.
    pub fn ndp_in_divisor(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::NDP_IN_DIVISOR)
    }
    /// `wNdpInPayloadRemainder`.
    pub fn ndp_in_payload_remainder(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::NDP_IN_PAYLOAD_REMAINDER)
    }
    /// `wNdpInAlignment`.
    pub fn ndp_in_alignment(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::NDP_IN_ALIGNMENT)
    }
    /// `dwNtbOutMaxSize`.
    pub fn ntb_out_max_size(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::NTB_OUT_MAX_SIZE)
    }
    /// `wNdpOutDivisor`.
    pub fn ndp_out_divisor(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::NDP_OUT_DIVISOR)
    }
    /// `wNdpOutPayloadRemainder`.
    pub fn ndp_out_payload_remainder(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::NDP_OUT_PAYLOAD_REMAINDER)
    }
    /// `wNdpOutAlignment`.
    pub fn ndp_out_alignment(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::NDP_OUT_ALIGNMENT)
    }
    /// `wNtbOutMaxDatagrams`.
    pub fn ntb_out_max_datagrams(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::NTB_OUT_MAX_DATAGRAMS)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> NtbParametersView<T> {
    /// Sets `wLength`. Panics if the buffer is shorter than 28 bytes (as do all setters).
    pub fn set_length(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v)
    }
    /// Sets `bmNtbFormatsSupported`.
    pub fn set_formats_supported(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::FORMATS_SUPPORTED, v)
    }
    /// Sets `dwNtbInMaxSize`.
    pub fn set_ntb_in_max_size(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::NTB_IN_MAX_SIZE, v)
    }
    /// Sets `wNdpInDivisor`.
    pub fn set_ndp_in_divisor(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::NDP_IN_DIVISOR, v)
    }
    /// Sets `wNdpInPayloadRemainder`.
    pub fn set_ndp_in_payload_remainder(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::NDP_IN_PAYLOAD_REMAINDER, v)
    }
    /// Sets `wNdpInAlignment`.
    pub fn set_ndp_in_alignment(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::NDP_IN_ALIGNMENT, v)
    }
    /// Sets `wReserved`.
    pub fn set_reserved(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::RESERVED, v)
    }
    /// Sets `dwNtbOutMaxSize`.
    pub fn set_ntb_out_max_size(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::NTB_OUT_MAX_SIZE, v)
    }
    /// Sets `wNdpOutDivisor`.
    pub fn set_ndp_out_divisor(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::NDP_OUT_DIVISOR, v)
    }
    /// Sets `wNdpOutPayloadRemainder`.
    pub fn set_ndp_out_payload_remainder(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::NDP_OUT_PAYLOAD_REMAINDER, v)
    }
    /// Sets `wNdpOutAlignment`.
    pub fn set_ndp_out_alignment(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::NDP_OUT_ALIGNMENT, v)
    }
    /// Sets `wNtbOutMaxDatagrams`.
    pub fn set_ntb_out_max_datagrams(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::NTB_OUT_MAX_DATAGRAMS, v)
    }
}

/// The NTB parameter structure, parsed. Values are as the device sent them; the TX side
/// sanitizes the OUT half with [`NtbParams::from_device`](crate::wire::NtbParams::from_device).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NtbParameters {
    /// `wLength` as sent (normally 28).
    pub length: u16,
    /// `bmNtbFormatsSupported`: [`NTB_FORMATS_16`](crate::wire::cdc::NTB_FORMATS_16),
    /// [`NTB_FORMATS_32`](crate::wire::cdc::NTB_FORMATS_32).
    pub formats_supported: u16,
    /// `dwNtbInMaxSize`.
    pub ntb_in_max_size: u32,
    /// `wNdpInDivisor`.
    pub ndp_in_divisor: u16,
    /// `wNdpInPayloadRemainder`.
    pub ndp_in_payload_remainder: u16,
    /// `wNdpInAlignment`.
    pub ndp_in_alignment: u16,
    /// `dwNtbOutMaxSize`.
    pub ntb_out_max_size: u32,
    /// `wNdpOutDivisor`.
    pub ndp_out_divisor: u16,
    /// `wNdpOutPayloadRemainder`.
    pub ndp_out_payload_remainder: u16,
    /// `wNdpOutAlignment`.
    pub ndp_out_alignment: u16,
    /// `wNtbOutMaxDatagrams` (0 = no limit).
    pub ntb_out_max_datagrams: u16,
}

impl NtbParameters {
    /// Parses a reply. Fails only on a short reply; the values are not judged here.
    pub fn parse(bytes: &[u8]) -> Result<NtbParameters, NtbParametersError> {
        let v = NtbParametersView::new_checked(bytes)?;
        Ok(NtbParameters {
            length: v.length(),
            formats_supported: v.formats_supported(),
            ntb_in_max_size: v.ntb_in_max_size(),
            ndp_in_divisor: v.ndp_in_divisor(),
            ndp_in_payload_remainder: v.ndp_in_payload_remainder(),
            ndp_in_alignment: v.ndp_in_alignment(),
            ntb_out_max_size: v.ntb_out_max_size(),
            ndp_out_divisor: v.ndp_out_divisor(),
            ndp_out_payload_remainder: v.ndp_out_payload_remainder(),
            ndp_out_alignment: v.ndp_out_alignment(),
            ntb_out_max_datagrams: v.ntb_out_max_datagrams(),
        })
    }

    /// Bytes [`emit`](Self::emit) writes (28).
    pub const fn buffer_len(&self) -> usize {
        LEN
    }

    /// Writes the structure (as a device would; for tests and fakes) into the first 28 bytes
    /// of `view`, with `wReserved` zero.
    ///
    /// # Panics
    /// If the view's buffer is shorter than 28 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, view: &mut NtbParametersView<T>) {
        view.set_length(self.length);
        view.set_formats_supported(self.formats_supported);
        view.set_ntb_in_max_size(self.ntb_in_max_size);
        view.set_ndp_in_divisor(self.ndp_in_divisor);
        view.set_ndp_in_payload_remainder(self.ndp_in_payload_remainder);
        view.set_ndp_in_alignment(self.ndp_in_alignment);
        view.set_reserved(0);
        view.set_ntb_out_max_size(self.ntb_out_max_size);
        view.set_ndp_out_divisor(self.ndp_out_divisor);
        view.set_ndp_out_payload_remainder(self.ndp_out_payload_remainder);
        view.set_ndp_out_alignment(self.ndp_out_alignment);
        view.set_ntb_out_max_datagrams(self.ntb_out_max_datagrams);
    }

    /// Whether the function supports NTB-32.
    pub const fn supports_ntb32(&self) -> bool {
        self.formats_supported & super::cdc::NTB_FORMATS_32 != 0
    }
}

/// The `SET_NTB_INPUT_SIZE` payload (and the `GET_NTB_INPUT_SIZE` reply): the largest IN NTB
/// the host accepts, and optionally the most datagrams per IN NTB.
///
/// The 8-byte form (with `wNtbInMaxDatagrams`) may only be sent when the NCM functional
/// descriptor sets bit D5 of `bmNetworkCapabilities`
/// ([`NCM_CAP_NTB_INPUT_SIZE_8`](crate::wire::cdc::NCM_CAP_NTB_INPUT_SIZE_8)); otherwise the
/// 4-byte form is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtbInputSize {
    /// `dwNtbInMaxSize`.
    pub max_size: u32,
    /// `wNtbInMaxDatagrams` (0 = no limit); `Some` selects the 8-byte form.
    pub max_datagrams: Option<u16>,
}

impl NtbInputSize {
    /// Bytes of the payload: 4, or 8 with `max_datagrams`.
    pub const fn buffer_len(&self) -> usize {
        match self.max_datagrams {
            Some(_) => field::INPUT_SIZE_RESERVED.end,
            None => field::INPUT_SIZE_MAX_SIZE.end,
        }
    }

    /// Writes the payload into the start of `buf` and returns its length.
    ///
    /// # Panics
    /// If `buf` is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        set_u32(buf, field::INPUT_SIZE_MAX_SIZE, self.max_size);
        if let Some(n) = self.max_datagrams {
            set_u16(buf, field::INPUT_SIZE_MAX_DATAGRAMS, n);
            set_u16(buf, field::INPUT_SIZE_RESERVED, 0);
        }
        self.buffer_len()
    }

    /// The payload as bytes (control path; allocates).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }

    /// Parses a `GET_NTB_INPUT_SIZE` reply: 8 bytes give both fields, 4 to 7 bytes only the
    /// size, fewer is an error.
    pub fn parse(bytes: &[u8]) -> Result<NtbInputSize, NtbParametersError> {
        let short = field::INPUT_SIZE_MAX_SIZE.end;
        let long = field::INPUT_SIZE_RESERVED.end;
        if bytes.len() < short {
            return Err(NtbParametersError::Short {
                len: bytes.len(),
                need: short,
            });
        }
        Ok(NtbInputSize {
            max_size: get_u32(bytes, field::INPUT_SIZE_MAX_SIZE),
            max_datagrams: (bytes.len() >= long)
                .then(|| get_u16(bytes, field::INPUT_SIZE_MAX_DATAGRAMS)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reply of the Linux NCM gadget (`drivers/usb/gadget/function/f_ncm.c`,
    /// `ntb_parameters`): both formats, 16 KiB each way, divisor 4, remainder 0, alignment 4,
    /// no datagram limit.
    #[rustfmt::skip]
    static GADGET_REPLY: [u8; 28] = [
        0x1c, 0x00,             // wLength = 28
        0x03, 0x00,             // bmNtbFormatsSupported = NTB-16 | NTB-32
        0x00, 0x40, 0x00, 0x00, // dwNtbInMaxSize = 16384
        0x04, 0x00,             // wNdpInDivisor = 4
        0x00, 0x00,             // wNdpInPayloadRemainder = 0
        0x04, 0x00,             // wNdpInAlignment = 4
        0x00, 0x00,             // wReserved
        0x00, 0x40, 0x00, 0x00, // dwNtbOutMaxSize = 16384
        0x04, 0x00,             // wNdpOutDivisor = 4
        0x00, 0x00,             // wNdpOutPayloadRemainder = 0
        0x04, 0x00,             // wNdpOutAlignment = 4
        0x00, 0x00,             // wNtbOutMaxDatagrams = 0 (no limit)
    ];

    fn gadget_repr() -> NtbParameters {
        NtbParameters {
            length: 28,
            formats_supported: 3,
            ntb_in_max_size: 16384,
            ndp_in_divisor: 4,
            ndp_in_payload_remainder: 0,
            ndp_in_alignment: 4,
            ntb_out_max_size: 16384,
            ndp_out_divisor: 4,
            ndp_out_payload_remainder: 0,
            ndp_out_alignment: 4,
            ntb_out_max_datagrams: 0,
        }
    }

    #[test]
    fn deconstruct() {
        let p = NtbParameters::parse(&GADGET_REPLY).unwrap();
        assert_eq!(p, gadget_repr());
        assert!(p.supports_ntb32());
    }

    #[test]
    fn construct() {
        let mut bytes = vec![0xa5; 28];
        let repr = gadget_repr();
        assert_eq!(repr.buffer_len(), 28);
        repr.emit(&mut NtbParametersView::new_unchecked(&mut bytes));
        assert_eq!(bytes, GADGET_REPLY);
    }

    #[test]
    fn field_offsets_per_table_6_3() {
        let mut bytes = [0u8; 28];
        let mut v = NtbParametersView::new_unchecked(&mut bytes[..]);
        v.set_ntb_out_max_size(0x0102_0304);
        v.set_ntb_out_max_datagrams(0x0506);
        assert_eq!(&bytes[16..20], &[4, 3, 2, 1]);
        assert_eq!(&bytes[26..28], &[6, 5]);
    }

    #[test]
    fn short_reply_is_an_error() {
        // The kernel accepted these and then transmitted nothing.
        for len in [0, 10, 27] {
            assert_eq!(
                NtbParameters::parse(&GADGET_REPLY[..len]),
                Err(NtbParametersError::Short { len, need: 28 })
            );
        }
    }

    #[test]
    fn long_reply_ignores_the_tail_and_wlength_is_reported_as_sent() {
        let mut bytes = GADGET_REPLY.to_vec();
        bytes.extend_from_slice(&[0xff; 4]);
        bytes[0] = 0x20;
        let p = NtbParameters::parse(&bytes).unwrap();
        assert_eq!(p.length, 32);
        assert_eq!(p.ntb_out_max_datagrams, 0);
    }

    #[rustfmt::skip]
    #[test]
    fn ntb_input_size_forms() {
        let short = NtbInputSize { max_size: 0x8000, max_datagrams: None };
        assert_eq!(short.to_bytes(), [0x00, 0x80, 0x00, 0x00]);
        let long = NtbInputSize { max_size: 65536, max_datagrams: Some(32) };
        assert_eq!(long.to_bytes(), [
            0x00, 0x00, 0x01, 0x00, // dwNtbInMaxSize = 65536
            0x20, 0x00,             // wNtbInMaxDatagrams = 32
            0x00, 0x00,             // wReserved
        ]);
        assert_eq!(NtbInputSize::parse(&long.to_bytes()), Ok(long));
        assert_eq!(NtbInputSize::parse(&short.to_bytes()), Ok(short));
        assert_eq!(
            NtbInputSize::parse(&[1, 2, 3]),
            Err(NtbParametersError::Short { len: 3, need: 4 })
        );
    }
}
