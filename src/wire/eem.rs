//! CDC-EEM (Ethernet Emulation Model) packets: a 2-byte little-endian header, then the payload.
//!
//! * Data packet (bit 15 clear): bit 14 `bmCRC`, bits 13..0 the payload length, which counts
//!   the Ethernet frame plus a 4-byte trailer. With `bmCRC` set the trailer is the frame's
//!   CRC-32 (little-endian, as Ethernet's FCS); clear, it is the sentinel bytes
//!   `DE AD BE EF`. A data packet of length 0 is the zero-length EEM packet: a sender appends
//!   one where a transfer would otherwise end exactly on a wMaxPacketSize boundary, instead of
//!   a USB zero-length packet (the kernel's `cdc_eem` and the `f_eem` gadget both do).
//! * Command packet (bit 15 set): bit 14 reserved (0), bits 13..11 the command, bits 10..0
//!   its parameter. Echo and Echo Response carry `parameter` bytes of data after the header.
//!
//! One bulk transfer carries any number of EEM packets back to back. [`packets`] walks them
//! with checked arithmetic; a length that runs past the transfer ends the walk with an error.

use crate::wire::OutBuf;
/// Length of the EEM header.
pub const HEADER_LEN: usize = 2;
/// Length of the CRC / sentinel trailer of a data packet.
pub const CRC_LEN: usize = 4;
/// The sentinel in place of a CRC, as it appears on the wire.
pub const SENTINEL: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];
/// Bit 15: command packet.
pub const TYPE_COMMAND: u16 = 0x8000;
/// Bit 14 of a data packet: the trailer is a real CRC-32.
pub const DATA_CRC: u16 = 0x4000;
/// Bits 13..0 of a data packet: payload length.
pub const DATA_LEN_MASK: u16 = 0x3fff;
/// Largest data payload (frame + trailer) the header can express.
pub const MAX_DATA_LEN: usize = DATA_LEN_MASK as usize;
/// Bits 10..0 of a command packet: parameter.
pub const CMD_PARAM_MASK: u16 = 0x07ff;
/// The zero-length EEM packet, as bytes.
pub const ZERO_LENGTH_PACKET: [u8; 2] = [0, 0];

/// EEM command codes (bits 13..11).
pub mod cmd {
    /// Echo: answer with an Echo Response carrying the same data.
    pub const ECHO: u8 = 0;
    /// Echo Response.
    pub const ECHO_RESPONSE: u8 = 1;
    /// Suspend Hint.
    pub const SUSPEND_HINT: u8 = 2;
    /// Response Hint (parameter: a delay).
    pub const RESPONSE_HINT: u8 = 3;
    /// Response Complete Hint.
    pub const RESPONSE_COMPLETE_HINT: u8 = 4;
    /// Tickle.
    pub const TICKLE: u8 = 5;
}

/// Why an EEM packet was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EemError {
    /// Bytes left that cannot hold a header.
    #[error("{0} stray byte(s) at the end of the EEM transfer")]
    Stray(usize),
    /// The header's length runs past the transfer.
    #[error("EEM packet of {len} bytes at offset {offset} runs past the {total}-byte transfer")]
    Truncated {
        /// Offset of the header in the transfer.
        offset: usize,
        /// Payload length from the header.
        len: usize,
        /// Transfer length.
        total: usize,
    },
    /// A data packet too short to hold its trailer.
    #[error("EEM data packet of {0} bytes cannot hold its 4-byte CRC")]
    NoCrc(usize),
}

/// One EEM packet from a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EemPacket<'a> {
    /// A data packet.
    Data {
        /// `bmCRC`: `trailer` is a CRC-32 rather than the sentinel.
        crc: bool,
        /// The Ethernet frame (trailer removed).
        frame: &'a [u8],
        /// The 4-byte trailer.
        trailer: [u8; 4],
    },
    /// The zero-length EEM packet (padding).
    ZeroLength,
    /// Echo: the peer wants `data` back in an Echo Response.
    Echo(&'a [u8]),
    /// Echo Response.
    EchoResponse(&'a [u8]),
    /// Any other command, with its code and parameter (bit 14 is reported as `reserved`).
    Command {
        /// bmEEMCmd.
        code: u8,
        /// bmEEMCmdParam.
        param: u16,
        /// Bit 14 was set (reserved; the kernel ignores such commands).
        reserved: bool,
    },
}

impl EemPacket<'_> {
    /// Whether a data packet's trailer is right: a matching CRC-32 with `bmCRC`, the sentinel
    /// without. Always true for other packets.
    pub fn trailer_ok(&self) -> bool {
        match self {
            EemPacket::Data {
                crc: true,
                frame,
                trailer,
            } => crc32(frame).to_le_bytes() == *trailer,
            EemPacket::Data {
                crc: false,
                trailer,
                ..
            } => *trailer == SENTINEL,
            _ => true,
        }
    }
}

/// Builds a packet from its header and payload.
type MakePacket<'a> = fn(u16, &'a [u8]) -> Result<EemPacket<'a>, EemError>;

/// Iterator over the EEM packets of one transfer; see [`packets`].
#[derive(Debug, Clone)]
pub struct Packets<'a> {
    xfer: &'a [u8],
    pos: usize,
}

/// Walk the EEM packets of `xfer`: each packet, or one error and then nothing.
pub fn packets(xfer: &[u8]) -> Packets<'_> {
    Packets { xfer, pos: 0 }
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<EemPacket<'a>, EemError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.xfer.get(self.pos..).unwrap_or(&[]);
        if rest.is_empty() {
            return None;
        }
        let Some(&[lo, hi]) = rest.get(..HEADER_LEN) else {
            self.pos = self.xfer.len();
            return Some(Err(EemError::Stray(rest.len())));
        };
        let header = u16::from_le_bytes([lo, hi]);
        let body = &rest[HEADER_LEN..];
        let (len, make): (usize, MakePacket<'a>) = if header & TYPE_COMMAND == 0 {
            (usize::from(header & DATA_LEN_MASK), data_packet)
        } else {
            let code = ((header >> 11) & 0x7) as u8;
            let carries_data =
                header & DATA_CRC == 0 && (code == cmd::ECHO || code == cmd::ECHO_RESPONSE);
            let len = if carries_data {
                usize::from(header & CMD_PARAM_MASK)
            } else {
                0
            };
            (len, command_packet)
        };
        let Some(payload) = body.get(..len) else {
            let total = self.xfer.len();
            let offset = self.pos;
            self.pos = total;
            return Some(Err(EemError::Truncated { offset, len, total }));
        };
        // len <= body.len() = xfer.len() - pos - 2: no overflow.
        self.pos += HEADER_LEN + len;
        let r = make(header, payload);
        if r.is_err() {
            self.pos = self.xfer.len();
        }
        Some(r)
    }
}

fn data_packet(header: u16, payload: &[u8]) -> Result<EemPacket<'_>, EemError> {
    if payload.is_empty() {
        return Ok(EemPacket::ZeroLength);
    }
    let Some(split) = payload.len().checked_sub(CRC_LEN) else {
        return Err(EemError::NoCrc(payload.len()));
    };
    let (frame, t) = payload.split_at(split);
    let mut trailer = [0u8; 4];
    trailer.copy_from_slice(t);
    Ok(EemPacket::Data {
        crc: header & DATA_CRC != 0,
        frame,
        trailer,
    })
}

fn command_packet(header: u16, payload: &[u8]) -> Result<EemPacket<'_>, EemError> {
    let code = ((header >> 11) & 0x7) as u8;
    let reserved = header & DATA_CRC != 0;
    Ok(match code {
        cmd::ECHO if !reserved => EemPacket::Echo(payload),
        cmd::ECHO_RESPONSE if !reserved => EemPacket::EchoResponse(payload),
        _ => EemPacket::Command {
            code,
            param: header & CMD_PARAM_MASK,
            reserved,
        },
    })
}

/// Bytes a data packet for a `frame_len`-byte frame takes.
pub const fn data_packet_len(frame_len: usize) -> usize {
    HEADER_LEN + frame_len + CRC_LEN
}

/// Append a data packet for `frame` to `out`, with a real CRC-32 (`with_crc`) or the
/// sentinel. Returns false (and appends nothing) when the frame is too long for the header.
pub fn push_data(out: &mut impl OutBuf, frame: &[u8], with_crc: bool) -> bool {
    push_data_with(
        out,
        frame.len(),
        &mut |d| d.copy_from_slice(frame),
        with_crc,
    )
}

/// As [`push_data`] for a `frame_len`-byte frame that `fill` writes in place (every byte
/// of the slice it is given).
pub fn push_data_with(
    out: &mut impl OutBuf,
    frame_len: usize,
    fill: &mut dyn FnMut(&mut [u8]),
    with_crc: bool,
) -> bool {
    let len = frame_len + CRC_LEN;
    if len > MAX_DATA_LEN {
        return false;
    }
    // len <= 0x3fff: fits the 14-bit field.
    let header = len as u16 | if with_crc { DATA_CRC } else { 0 };
    out.extend_from_slice(&header.to_le_bytes());
    let at = out.len();
    out.extend_with(frame_len, fill);
    if with_crc {
        let crc = crc32(&out.as_mut_slice()[at..at + frame_len]);
        out.extend_from_slice(&crc.to_le_bytes());
    } else {
        out.extend_from_slice(&SENTINEL);
    }
    true
}

/// Append an Echo (`response` false) or Echo Response carrying `data` (at most 2047 bytes;
/// longer data is cut).
pub fn push_echo(out: &mut impl OutBuf, data: &[u8], response: bool) {
    let data = &data[..data.len().min(usize::from(CMD_PARAM_MASK))];
    let code = if response {
        cmd::ECHO_RESPONSE
    } else {
        cmd::ECHO
    };
    // data.len() <= 0x7ff.
    let header = TYPE_COMMAND | (u16::from(code) << 11) | data.len() as u16;
    out.extend_from_slice(&header.to_le_bytes());
    out.extend_from_slice(data);
}

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC_TABLE: [u32; 256] = crc_table();

/// The Ethernet CRC-32 (IEEE 802.3, reflected, init and final XOR all ones) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[usize::from((c as u8) ^ b)] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! captured {
        ($name:literal) => {
            include_bytes!(concat!("../../tests/fixtures/captured/", $name))
        };
    }

    /// IN transfers from the Linux `f_eem` gadget, captured in the lab with usbnetd's trace
    /// (`lab run --env LAB_RUST_LOG=usbnetd::class=trace e2e-eem`): one data packet each,
    /// bmCRC clear and the sentinel, as `f_eem` sends.
    #[test]
    fn packets_from_the_gadget() {
        for (bytes, frame_len, ethertype) in [
            (&captured!("f_eem_arp.bin")[..], 42, [0x08, 0x06]),
            (&captured!("f_eem_icmp.bin")[..], 98, [0x08, 0x00]),
            (&captured!("f_eem_ipv6_mld.bin")[..], 90, [0x86, 0xdd]),
        ] {
            let got: Vec<_> = packets(bytes).collect::<Result<_, _>>().unwrap();
            assert_eq!(got.len(), 1);
            let EemPacket::Data {
                crc: false,
                frame,
                trailer,
            } = got[0]
            else {
                panic!("{:?}", got[0]);
            };
            assert_eq!(frame.len(), frame_len);
            assert_eq!(&frame[12..14], &ethertype);
            assert_eq!(trailer, SENTINEL);
            assert!(got[0].trailer_ok());
            // Our emitter writes the same bytes.
            let mut out = Vec::new();
            push_data(&mut out, frame, false);
            assert_eq!(out, bytes);
        }
    }

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn data_packets_round_trip_with_crc_and_sentinel() {
        let frame: Vec<u8> = (0..60u8).collect();
        let mut out = Vec::new();
        assert!(push_data(&mut out, &frame, true));
        assert!(push_data(&mut out, &frame, false));
        out.extend_from_slice(&ZERO_LENGTH_PACKET);
        assert_eq!(&out[..2], &(0x4000u16 | 64).to_le_bytes());
        assert_eq!(&out[66..68], &64u16.to_le_bytes());
        assert_eq!(&out[128..132], &SENTINEL);
        let got: Vec<_> = packets(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 3);
        assert!(matches!(got[0], EemPacket::Data { crc: true, frame: f, .. } if f == &frame[..]));
        assert!(matches!(got[1], EemPacket::Data { crc: false, frame: f, .. } if f == &frame[..]));
        assert_eq!(got[2], EemPacket::ZeroLength);
        assert!(got.iter().all(|p| p.trailer_ok()));
    }

    #[test]
    fn bad_trailers_are_detected() {
        let frame = [0x11u8; 60];
        let mut out = Vec::new();
        push_data(&mut out, &frame, true);
        out[10] ^= 1; // corrupt the frame
        let p = packets(&out).next().unwrap().unwrap();
        assert!(!p.trailer_ok());
        let mut out = Vec::new();
        push_data(&mut out, &frame, false);
        let last = out.len() - 1;
        out[last] = 0;
        assert!(!packets(&out).next().unwrap().unwrap().trailer_ok());
    }

    #[test]
    fn echo_and_commands() {
        let mut out = Vec::new();
        push_echo(&mut out, b"ping", false);
        push_echo(&mut out, b"pong", true);
        // Tickle (5), Response Hint (3) with parameter 100, and a reserved-bit command.
        out.extend_from_slice(&(0x8000u16 | 5 << 11).to_le_bytes());
        out.extend_from_slice(&(0x8000u16 | 3 << 11 | 100).to_le_bytes());
        out.extend_from_slice(&(0xc000u16 | 4).to_le_bytes());
        assert_eq!(&out[..2], &[0x04, 0x80]);
        assert_eq!(&out[6..8], &[0x04, 0x88]);
        let got: Vec<_> = packets(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            got,
            [
                EemPacket::Echo(b"ping"),
                EemPacket::EchoResponse(b"pong"),
                EemPacket::Command {
                    code: cmd::TICKLE,
                    param: 0,
                    reserved: false
                },
                EemPacket::Command {
                    code: cmd::RESPONSE_HINT,
                    param: 100,
                    reserved: false
                },
                EemPacket::Command {
                    code: cmd::ECHO,
                    param: 4,
                    reserved: true
                },
            ]
        );
    }

    #[test]
    fn hostile_lengths_end_the_walk() {
        // A data packet claiming 0x3fff bytes in a 10-byte transfer.
        let xfer = [0xff, 0x3f, 1, 2, 3, 4, 5, 6, 7, 8];
        let mut it = packets(&xfer);
        assert_eq!(
            it.next(),
            Some(Err(EemError::Truncated {
                offset: 0,
                len: 0x3fff,
                total: 10
            }))
        );
        assert_eq!(it.next(), None);
        // Data packet of 3 bytes: no room for the CRC.
        assert_eq!(
            packets(&[3, 0, 1, 2, 3]).next(),
            Some(Err(EemError::NoCrc(3)))
        );
        // A good packet, then one stray byte.
        let mut out = Vec::new();
        push_data(&mut out, &[0u8; 14], false);
        out.push(0);
        let got: Vec<_> = packets(&out).collect();
        assert!(got[0].is_ok());
        assert_eq!(got[1], Err(EemError::Stray(1)));
        assert_eq!(got.len(), 2);
        // An echo whose data runs past the end.
        assert!(matches!(
            packets(&[0x10, 0x80, 1, 2]).next(),
            Some(Err(EemError::Truncated { len: 16, .. }))
        ));
    }

    #[test]
    fn oversized_frames_are_refused() {
        let mut out = Vec::new();
        assert!(!push_data(&mut out, &vec![0; MAX_DATA_LEN - 3], false));
        assert!(out.is_empty());
        assert!(push_data(&mut out, &vec![0; MAX_DATA_LEN - 4], false));
    }
}
