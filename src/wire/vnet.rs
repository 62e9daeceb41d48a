//! `struct virtio_net_hdr` (the 10-byte header a TAP with `IFF_VNET_HDR` puts before every
//! frame, little-endian on the hosts we run on): what the kernel left for us to do to the
//! frame (finish a checksum, segment a TCP super-packet).

use super::Field;

mod field {
    use super::Field;
    pub const FLAGS: usize = 0;
    pub const GSO_TYPE: usize = 1;
    pub const HDR_LEN: Field = 2..4;
    pub const GSO_SIZE: Field = 4..6;
    pub const CSUM_START: Field = 6..8;
    pub const CSUM_OFFSET: Field = 8..10;
}

/// Length of the header (without the mergeable-buffers count, which TAP does not use).
pub const LEN: usize = field::CSUM_OFFSET.end;

/// `flags`: the checksum from `csum_start` to the end must be computed and stored at
/// `csum_start + csum_offset` (the pseudo-header sum is already there).
pub const F_NEEDS_CSUM: u8 = 1;
/// `gso_type`: not a super-packet.
pub const GSO_NONE: u8 = 0;
/// `gso_type`: TCP over IPv4 super-packet.
pub const GSO_TCPV4: u8 = 1;
/// `gso_type`: UDP fragmentation offload (legacy).
pub const GSO_UDP: u8 = 3;
/// `gso_type`: TCP over IPv6 super-packet.
pub const GSO_TCPV6: u8 = 4;
/// `gso_type` flag: the TCP stream uses ECN (CWR only on the first segment).
pub const GSO_ECN: u8 = 0x80;

/// Errors reading a virtio-net header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VnetError {
    /// Fewer than [`LEN`] bytes.
    #[error("virtio-net header truncated: {0} bytes")]
    Truncated(usize),
}

/// A checked view over a virtio-net header at the start of a buffer.
#[derive(Debug, Clone, Copy)]
pub struct VnetHeader<T: AsRef<[u8]>> {
    buffer: T,
}

fn get_u16(b: &[u8], f: Field) -> u16 {
    u16::from_le_bytes([b[f.start], b[f.start + 1]])
}

impl<T: AsRef<[u8]>> VnetHeader<T> {
    /// Wrap without checking (for emitting).
    pub const fn new_unchecked(buffer: T) -> Self {
        VnetHeader { buffer }
    }
    /// Wrap and check the length.
    pub fn new_checked(buffer: T) -> Result<Self, VnetError> {
        let v = Self::new_unchecked(buffer);
        v.check_len()?;
        Ok(v)
    }
    /// At least [`LEN`] bytes.
    pub fn check_len(&self) -> Result<(), VnetError> {
        let n = self.buffer.as_ref().len();
        if n < LEN {
            return Err(VnetError::Truncated(n));
        }
        Ok(())
    }
    /// `flags`.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    /// `gso_type`.
    pub fn gso_type(&self) -> u8 {
        self.buffer.as_ref()[field::GSO_TYPE]
    }
    /// `hdr_len`: bytes of headers (Ethernet, IP, TCP) in a super-packet (a hint).
    pub fn hdr_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::HDR_LEN)
    }
    /// `gso_size`: payload bytes per segment (the MSS).
    pub fn gso_size(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::GSO_SIZE)
    }
    /// `csum_start`: where the checksummed range starts, from the frame's first byte.
    pub fn csum_start(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CSUM_START)
    }
    /// `csum_offset`: where the checksum goes, from `csum_start`.
    pub fn csum_offset(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CSUM_OFFSET)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VnetHeader<T> {
    /// Write a header that asks nothing of the receiver (no checksum, no GSO).
    pub fn set_plain(&mut self) {
        self.buffer.as_mut()[..LEN].fill(0);
    }
    /// Write every field.
    pub fn set(
        &mut self,
        flags: u8,
        gso_type: u8,
        hdr_len: u16,
        gso_size: u16,
        csum_start: u16,
        csum_offset: u16,
    ) {
        let b = self.buffer.as_mut();
        b[field::FLAGS] = flags;
        b[field::GSO_TYPE] = gso_type;
        b[field::HDR_LEN].copy_from_slice(&hdr_len.to_le_bytes());
        b[field::GSO_SIZE].copy_from_slice(&gso_size.to_le_bytes());
        b[field::CSUM_START].copy_from_slice(&csum_start.to_le_bytes());
        b[field::CSUM_OFFSET].copy_from_slice(&csum_offset.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[rustfmt::skip]
    fn tcp4_super_packet_header() {
        let bytes = [
            0x01,       // flags: NEEDS_CSUM
            0x01,       // gso_type: TCPV4
            0x42, 0x00, // hdr_len 66
            0xa8, 0x05, // gso_size 1448
            0x22, 0x00, // csum_start 34
            0x10, 0x00, // csum_offset 16
        ];
        let h = VnetHeader::new_checked(&bytes[..]).unwrap();
        assert_eq!((h.flags(), h.gso_type(), h.hdr_len(), h.gso_size()), (1, GSO_TCPV4, 66, 1448));
        assert_eq!((h.csum_start(), h.csum_offset()), (34, 16));
        let mut out = [0xa5u8; LEN];
        VnetHeader::new_unchecked(&mut out[..]).set(1, GSO_TCPV4, 66, 1448, 34, 16);
        assert_eq!(out, bytes);
        assert_eq!(VnetHeader::new_checked(&bytes[..9]).unwrap_err(), VnetError::Truncated(9));
    }
}
