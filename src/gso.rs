//! Transmit offloads done in userspace: with `IFF_VNET_HDR` and `TUNSETOFFLOAD` the TAP hands
//! us TCP super-packets (up to 64 KiB, one `read`) and frames whose checksum is left to us,
//! as a NIC with TSO and checksum offload would get them. Here they become wire frames: the
//! checksum finished, super-packets cut into MSS-sized segments with their IP and TCP
//! headers fixed up. One TAP read instead of one per frame is where the saving is.
//!
//! The input comes from our own kernel, not a device, but it is still checked: anything we
//! do not understand (IP options are fine; IPv6 extension headers, non-TCP GSO are not) is
//! refused with an error and the frame is dropped and counted.

use crate::wire::vnet::{self, VnetHeader};

/// Why a frame from the TAP could not be prepared for the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GsoError {
    /// The header or the frame is shorter than its fields say.
    #[error("frame too short for its headers")]
    Truncated,
    /// A checksum position outside the frame.
    #[error("checksum start {start} + offset {offset} outside a {len}-byte frame")]
    BadChecksumOffset {
        /// csum_start.
        start: usize,
        /// csum_offset.
        offset: usize,
        /// frame length.
        len: usize,
    },
    /// A GSO type or packet layout we do not segment.
    #[error("unsupported offload: gso_type {0:#x}")]
    Unsupported(u8),
    /// gso_size 0.
    #[error("gso_size 0")]
    ZeroMss,
}

/// One's-complement sum of `data` as big-endian 16-bit words, added to `sum`.
///
/// The result is congruent (mod 0xffff) to that sum, which is all [`csum_fold`] needs;
/// sums chain as long as every `data` but the last has an even length. One's-complement
/// addition does not care about byte order (RFC 1071 §2(B)), so the bytes are added as
/// little-endian 64-bit words, eight words a round (see `Acc`), and the folded 16-bit
/// result is swapped once: this runs once per byte of every frame usbnetd segments or
/// coalesces, and was the largest user-space cost in the lab's profile.
#[inline]
pub fn csum_add(sum: u64, data: &[u8]) -> u64 {
    let mut acc = Acc::default();
    let mut blocks = data.chunks_exact(64);
    for b in &mut blocks {
        for w in b.chunks_exact(8) {
            acc.add(le_word(w));
        }
    }
    sum + fold_le(sum_rest(acc.total(), blocks.remainder()))
}

/// As [`csum_add`] over `src`, copying it into `dst` on the way (the shorter length of
/// the two counts): one pass over the bytes where a copy then a sum made two. TCP
/// segmentation cuts every payload byte this way.
pub fn csum_copy(sum: u64, dst: &mut [u8], src: &[u8]) -> u64 {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    let mut acc = Acc::default();
    let mut d = dst.chunks_exact_mut(64);
    let mut s = src.chunks_exact(64);
    for (db, sb) in (&mut d).zip(&mut s) {
        for (dw, sw) in db.chunks_exact_mut(8).zip(sb.chunks_exact(8)) {
            let w = le_word(sw);
            dw.copy_from_slice(&w.to_le_bytes());
            acc.add(w);
        }
    }
    d.into_remainder().copy_from_slice(s.remainder());
    sum + fold_le(sum_rest(acc.total(), s.remainder()))
}

/// The little-endian 64-bit word in the first 8 bytes of `c`.
#[inline(always)]
fn le_word(c: &[u8]) -> u64 {
    u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
}

/// `acc` plus what is left after the 64-byte blocks (under 64 bytes): its whole words,
/// then its last bytes as one zero-padded word. 2^64 words of 2^64 - 1 each would be
/// needed to overflow 128 bits.
#[inline(always)]
fn sum_rest(mut acc: u128, rest: &[u8]) -> u128 {
    let mut words = rest.chunks_exact(8);
    for w in &mut words {
        acc += u128::from(le_word(w));
    }
    let mut tail = 0u64;
    for (i, &b) in words.remainder().iter().enumerate() {
        tail |= u64::from(b) << (8 * i);
    }
    acc + u128::from(tail)
}

/// A running sum of 64-bit words for the checksum loops. On x86-64 the words go into one
/// `adc` chain (`_addcarry_u64`: the carry stays in the flag across a block's eight
/// words, and a carry out of the last word is the one bit kept); elsewhere each
/// overflow is counted.
#[derive(Default)]
struct Acc {
    sum: u64,
    #[cfg(target_arch = "x86_64")]
    carry: u8,
    #[cfg(not(target_arch = "x86_64"))]
    carries: u64,
}

impl Acc {
    #[inline(always)]
    fn add(&mut self, w: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            self.carry = std::arch::x86_64::_addcarry_u64(self.carry, self.sum, w, &mut self.sum);
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let (s, c) = self.sum.overflowing_add(w);
            self.sum = s;
            self.carries += u64::from(c);
        }
    }

    /// The sum so far as a 128-bit value.
    fn total(&self) -> u128 {
        #[cfg(target_arch = "x86_64")]
        let carries = u64::from(self.carry);
        #[cfg(not(target_arch = "x86_64"))]
        let carries = self.carries;
        u128::from(self.sum) + (u128::from(carries) << 64)
    }
}

/// Fold a little-endian sum of 64-bit words (2^64 = 1 mod 0xffff, so the high half adds
/// in) to 16 bits, swapped into big-endian order.
fn fold_le(acc: u128) -> u64 {
    let mut le = (acc & u128::from(u64::MAX)) + (acc >> 64);
    while le >> 16 != 0 {
        le = (le & 0xffff) + (le >> 16);
    }
    u64::from((le as u16).swap_bytes())
}

/// Fold a sum from [`csum_add`] to the 16-bit one's-complement checksum (complemented).
pub fn csum_fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Finish a partial checksum in place: the sum over `frame[start..]` stored at
/// `start + offset` (which already holds the pseudo-header sum, as the kernel leaves it).
pub fn finish_checksum(frame: &mut [u8], start: usize, offset: usize) -> Result<(), GsoError> {
    let len = frame.len();
    let bad = GsoError::BadChecksumOffset { start, offset, len };
    let at = start.checked_add(offset).ok_or(bad)?;
    if start >= len || at.checked_add(2).is_none_or(|end| end > len) {
        return Err(bad);
    }
    let c = csum_fold(csum_add(0, &frame[start..]));
    // A computed 0 is sent as 0xffff for UDP; for TCP both mean the same.
    let c = if c == 0 { 0xffff } else { c };
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// The layout of a TCP super-packet, for cutting it into segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegmenter {
    l3: usize,
    l4: usize,
    hdr_len: usize,
    mss: usize,
    payload: usize,
    v6: bool,
}

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const IPPROTO_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

impl TcpSegmenter {
    /// Check `frame` (Ethernet, optionally one VLAN tag, IPv4 or IPv6 without extension
    /// headers, TCP) and prepare to cut it into `mss`-byte payloads.
    pub fn new(frame: &[u8], mss: usize) -> Result<TcpSegmenter, GsoError> {
        if mss == 0 {
            return Err(GsoError::ZeroMss);
        }
        let be16 = |at: usize| -> Result<u16, GsoError> {
            frame
                .get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or(GsoError::Truncated)
        };
        let mut l3 = 14;
        let mut ethertype = be16(12)?;
        if ethertype == ETH_P_8021Q {
            ethertype = be16(16)?;
            l3 = 18;
        }
        let byte = |at: usize| frame.get(at).copied().ok_or(GsoError::Truncated);
        let (l4, v6) = match ethertype {
            ETH_P_IPV4 => {
                let ihl = usize::from(byte(l3)? & 0x0f) * 4;
                if ihl < 20 || byte(l3 + 9)? != IPPROTO_TCP {
                    return Err(GsoError::Unsupported(vnet::GSO_TCPV4));
                }
                (l3 + ihl, false)
            }
            ETH_P_IPV6 => {
                if byte(l3 + 6)? != IPPROTO_TCP {
                    return Err(GsoError::Unsupported(vnet::GSO_TCPV6));
                }
                (l3 + 40, true)
            }
            _ => return Err(GsoError::Unsupported(0)),
        };
        let doff = usize::from(byte(l4 + 12)? >> 4) * 4;
        let hdr_len = l4 + doff;
        if doff < 20 || hdr_len > frame.len() {
            return Err(GsoError::Truncated);
        }
        Ok(TcpSegmenter {
            l3,
            l4,
            hdr_len,
            mss,
            payload: frame.len() - hdr_len,
            v6,
        })
    }

    /// How many segments the packet makes (at least one).
    pub fn count(&self) -> usize {
        self.payload.div_ceil(self.mss).max(1)
    }

    /// The largest segment, headers included.
    pub fn max_segment_len(&self) -> usize {
        self.hdr_len + self.mss.min(self.payload)
    }

    /// The length of segment `i`, headers included.
    pub fn segment_len(&self, i: usize) -> usize {
        self.hdr_len + self.mss.min(self.payload.saturating_sub(i * self.mss))
    }

    /// Write segment `i` of `frame` into `out` (at least [`Self::segment_len`] bytes)
    /// with its headers fixed up; returns its length.
    pub fn segment(&self, frame: &[u8], i: usize, out: &mut [u8]) -> usize {
        let h = self.hdr_len;
        let start = h + i * self.mss;
        let len = self.segment_len(i);
        let chunk = len - h;
        out[..h].copy_from_slice(&frame[..h]);
        // The payload is copied and summed in one pass; the TCP header (a multiple of 4
        // bytes long, so the sums chain) is summed below, once its fields are set.
        let payload_sum = csum_copy(0, &mut out[h..len], &frame[start..start + chunk]);
        let last = i + 1 >= self.count();
        let (l3, l4) = (self.l3, self.l4);
        let tcp_len = len - l4;
        if self.v6 {
            out[l3 + 4..l3 + 6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
        } else {
            let ip_len = (len - l3) as u16;
            out[l3 + 2..l3 + 4].copy_from_slice(&ip_len.to_be_bytes());
            let id = u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]).wrapping_add(i as u16);
            out[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
            out[l3 + 10..l3 + 12].fill(0);
            let c = csum_fold(csum_add(0, &out[l3..l4]));
            out[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        let seq = u32::from_be_bytes([frame[l4 + 4], frame[l4 + 5], frame[l4 + 6], frame[l4 + 7]])
            .wrapping_add((i * self.mss) as u32);
        out[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = frame[l4 + 13];
        if !last {
            flags &= !(TCP_FIN | TCP_PSH);
        }
        if i != 0 {
            flags &= !TCP_CWR;
        }
        out[l4 + 13] = flags;
        out[l4 + 16..l4 + 18].fill(0);
        let mut sum = if self.v6 {
            let s = csum_add(0, &out[l3 + 8..l3 + 40]);
            csum_add(
                s,
                &[
                    0,
                    0,
                    (tcp_len >> 8) as u8,
                    tcp_len as u8,
                    0,
                    0,
                    0,
                    IPPROTO_TCP,
                ],
            )
        } else {
            let s = csum_add(0, &out[l3 + 12..l3 + 20]);
            csum_add(s, &[0, IPPROTO_TCP, (tcp_len >> 8) as u8, tcp_len as u8])
        };
        sum = csum_add(sum, &out[l4..h]) + payload_sum;
        out[l4 + 16..l4 + 18].copy_from_slice(&csum_fold(sum).to_be_bytes());
        len
    }
}

/// What one TAP read (virtio-net header + frame) becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// One frame, ready as it is (its checksum finished in place if it needed one).
    Frame,
    /// A TCP super-packet to cut into segments.
    Segments(TcpSegmenter),
}

/// Look at the virtio-net header in front of `buf` and make the frame after it ready:
/// finish its checksum in place, or return how to segment it.
pub fn prepare(buf: &mut [u8]) -> Result<Prepared, GsoError> {
    let h = VnetHeader::new_checked(&*buf).map_err(|_| GsoError::Truncated)?;
    let (flags, gso, mss) = (h.flags(), h.gso_type(), usize::from(h.gso_size()));
    let (start, offset) = (usize::from(h.csum_start()), usize::from(h.csum_offset()));
    let frame = &mut buf[vnet::LEN..];
    match gso & !vnet::GSO_ECN {
        vnet::GSO_NONE => {
            if flags & vnet::F_NEEDS_CSUM != 0 {
                finish_checksum(frame, start, offset)?;
            }
            Ok(Prepared::Frame)
        }
        vnet::GSO_TCPV4 | vnet::GSO_TCPV6 => Ok(Prepared::Segments(TcpSegmenter::new(frame, mss)?)),
        other => Err(GsoError::Unsupported(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum as RFC 1071 writes it: big-endian 16-bit words, the last byte of an
    /// odd length padded with a zero.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in data.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u32::from(b));
            sum += hi | lo;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// `n` bytes from a simple LCG seeded with `seed`, so that every lane and carry path
    /// of the checksum loops is exercised.
    fn lcg_bytes(seed: u32, n: usize) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect()
    }

    #[test]
    fn csum_copy_copies_and_sums_as_csum_add_does() {
        let bytes = lcg_bytes(777, 1700);
        for start in 0..9 {
            for len in (0..130).chain([1459, 1460, 1480, 1514, 1591]) {
                let src = &bytes[start..start + len];
                // a dirty destination, offset differently from the source
                let mut dst = vec![0x5au8; len + 3];
                let sum = csum_copy(0x1234, &mut dst[3..], src);
                assert_eq!(&dst[3..], src, "start {start} len {len}");
                assert_eq!(&dst[..3], &[0x5a; 3]);
                assert_eq!(sum, csum_add(0x1234, src), "start {start} len {len}");
            }
        }
        // lengths differ: only the shorter is copied and summed
        let mut short = [0u8; 5];
        assert_eq!(
            csum_copy(0, &mut short, &bytes[..9]),
            csum_add(0, &bytes[..5])
        );
        assert_eq!(&short, &bytes[..5]);
        let mut long = [0u8; 9];
        assert_eq!(
            csum_copy(0, &mut long, &bytes[..5]),
            csum_add(0, &bytes[..5])
        );
        assert_eq!(&long[5..], &[0; 4]);
    }

    #[test]
    fn csum_add_matches_rfc1071_for_every_length_and_alignment() {
        let bytes = lcg_bytes(12345, 1600);
        for start in 0..9 {
            for len in (0..100).chain([1459, 1460, 1480, 1514, 1591]) {
                let d = &bytes[start..start + len];
                assert_eq!(
                    csum_fold(csum_add(0, d)),
                    reference_sum(d),
                    "start {start} len {len}"
                );
            }
        }
        // all-ones words force end-around carries in every lane
        let ff = vec![0xffu8; 1500];
        assert_eq!(csum_fold(csum_add(0, &ff)), reference_sum(&ff));
        // chained over even-length pieces, as the pseudo-header sums are
        let (a, b) = bytes[..1000].split_at(12);
        assert_eq!(
            csum_fold(csum_add(csum_add(0, a), b)),
            reference_sum(&bytes[..1000])
        );
        // a large starting sum (many chained pieces) still folds right
        let big = csum_add(0xffff_ffff_0000, &bytes[..64]);
        let mut expect = [0u8; 70];
        expect[0..6].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0]);
        expect[6..].copy_from_slice(&bytes[..64]);
        assert_eq!(csum_fold(big), reference_sum(&expect));
    }

    /// Ethernet + IPv4 (20) + TCP (20, PSH|ACK) carrying `payload`, checksums right.
    fn tcp4(payload: &[u8], flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 54];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&ETH_P_IPV4.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
        f[18..20].copy_from_slice(&0x1234u16.to_be_bytes());
        f[22] = 64;
        f[23] = IPPROTO_TCP;
        f[26..30].copy_from_slice(&[192, 168, 77, 1]);
        f[30..34].copy_from_slice(&[192, 168, 77, 2]);
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&5201u16.to_be_bytes());
        f[38..42].copy_from_slice(&1000u32.to_be_bytes());
        f[46] = 0x50;
        f[47] = flags;
        f[48..50].copy_from_slice(&502u16.to_be_bytes());
        f.extend_from_slice(payload);
        let c = csum_fold(csum_add(0, &f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        let tcp_len = f.len() - 34;
        let mut s = csum_add(0, &f[26..34]);
        s = csum_add(s, &[0, IPPROTO_TCP, (tcp_len >> 8) as u8, tcp_len as u8]);
        s = csum_add(s, &f[34..]);
        let c = csum_fold(s);
        f[50..52].copy_from_slice(&c.to_be_bytes());
        f
    }

    fn valid_tcp4(f: &[u8]) -> bool {
        let ip_ok = csum_fold(csum_add(0, &f[14..34])) == 0;
        let tcp_len = f.len() - 34;
        let mut s = csum_add(0, &f[26..34]);
        s = csum_add(s, &[0, IPPROTO_TCP, (tcp_len >> 8) as u8, tcp_len as u8]);
        s = csum_add(s, &f[34..]);
        ip_ok && csum_fold(s) == 0
    }

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (checksum 220d).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(csum_fold(csum_add(0, &data)), !0xddf2);
        // Odd length: the last byte is padded with zero.
        assert_eq!(csum_fold(csum_add(0, &[0x01])), !0x0100);
    }

    #[test]
    fn segments_a_super_packet_into_valid_frames() {
        let payload: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
        let sp = tcp4(&payload, 0x18 | TCP_FIN);
        let seg = TcpSegmenter::new(&sp, 1448).unwrap();
        assert_eq!(seg.count(), 3);
        let mut out = vec![0u8; seg.max_segment_len()];
        let mut joined = Vec::new();
        for i in 0..3 {
            let n = seg.segment(&sp, i, &mut out);
            let f = &out[..n];
            assert!(valid_tcp4(f), "segment {i} checksums");
            let seq = u32::from_be_bytes([f[38], f[39], f[40], f[41]]);
            assert_eq!(seq, 1000 + 1448 * i as u32);
            assert_eq!(u16::from_be_bytes([f[18], f[19]]), 0x1234 + i as u16);
            assert_eq!(usize::from(u16::from_be_bytes([f[16], f[17]])), n - 14);
            let fin_psh = f[47] & (TCP_FIN | TCP_PSH);
            assert_eq!(fin_psh != 0, i == 2, "FIN/PSH only on the last segment");
            joined.extend_from_slice(&f[54..]);
        }
        assert_eq!(joined, payload);
    }

    #[test]
    fn finishes_a_partial_checksum() {
        let mut f = tcp4(b"hello", 0x18);
        let good = f.clone();
        // What the kernel leaves with CHECKSUM_PARTIAL: the pseudo-header sum, not complemented.
        let tcp_len = f.len() - 34;
        let mut s = csum_add(0, &f[26..34]);
        s = csum_add(s, &[0, IPPROTO_TCP, (tcp_len >> 8) as u8, tcp_len as u8]);
        let partial = !csum_fold(s);
        f[50..52].copy_from_slice(&partial.to_be_bytes());
        let mut buf = vec![0u8; vnet::LEN];
        VnetHeader::new_unchecked(&mut buf[..]).set(vnet::F_NEEDS_CSUM, 0, 0, 0, 34, 16);
        buf.extend_from_slice(&f);
        assert_eq!(prepare(&mut buf).unwrap(), Prepared::Frame);
        assert_eq!(&buf[vnet::LEN..], &good[..]);
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let mut buf = vec![0u8; vnet::LEN];
        VnetHeader::new_unchecked(&mut buf[..]).set(vnet::F_NEEDS_CSUM, 0, 0, 0, 60, 16);
        buf.extend_from_slice(&tcp4(b"x", 0x10));
        assert!(matches!(
            prepare(&mut buf),
            Err(GsoError::BadChecksumOffset { .. })
        ));
        let mut buf = vec![0u8; vnet::LEN];
        VnetHeader::new_unchecked(&mut buf[..]).set(0, vnet::GSO_UDP, 0, 1400, 0, 0);
        buf.extend_from_slice(&tcp4(b"x", 0x10));
        assert_eq!(prepare(&mut buf), Err(GsoError::Unsupported(vnet::GSO_UDP)));
        let f = tcp4(b"x", 0x10);
        assert_eq!(TcpSegmenter::new(&f, 0), Err(GsoError::ZeroMss));
        assert_eq!(TcpSegmenter::new(&f[..40], 1000), Err(GsoError::Truncated));
        assert!(prepare(&mut [0u8; 3]).is_err());
    }

    #[test]
    fn hostile_input_never_panics() {
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let len = (x % 200) as usize;
            let mut buf: Vec<u8> = (0..len).map(|i| (x >> (i % 24)) as u8).collect();
            if let Ok(Prepared::Segments(s)) = prepare(&mut buf) {
                let mut out = vec![0u8; s.max_segment_len()];
                for i in 0..s.count() {
                    s.segment(&buf[vnet::LEN..], i, &mut out);
                }
            }
        }
    }
}
