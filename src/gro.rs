//! Receive coalescing (GRO in userspace): consecutive TCP segments of one flow that arrive
//! in the same IN transfer are merged into one super-packet and written to the TAP once,
//! with a virtio-net header that tells the kernel how to treat it (GSO TCP, MSS, checksum
//! partial), as a NIC with LRO/GRO hands them to the stack. One `write` per burst instead of
//! one per frame, and the TCP stack processes one large packet.
//!
//! Only segments we have checked are merged: IPv4 without options or fragmentation, or IPv6
//! without extension headers; TCP with ACK (PSH allowed, ending the batch) and nothing else
//! among SYN/FIN/RST/URG/ECE/CWR; a payload; valid IP and TCP checksums (the checksum the
//! stack will no longer verify is verified here first). Within a batch every segment has
//! the same addresses, ports, ACK number, window and options, the sequence numbers are
//! contiguous, and every segment but the last carries exactly the first one's payload size.
//! Anything else passes through unchanged.

use crate::gso::{csum_add, csum_copy, csum_fold};
use crate::wire::vnet::{self, VnetHeader};

/// Largest packet (from the IP header on) we build: the IPv4 total-length limit.
const MAX_IP_LEN: usize = 65_535;

const ETH_HLEN: usize = 14;
const IPPROTO_TCP: u8 = 6;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;

/// A virtio-net header that asks nothing: for frames passed through unchanged.
pub const PLAIN_HEADER: [u8; vnet::LEN] = [0; vnet::LEN];

/// What we know of a TCP segment we may merge.
#[derive(Debug, Clone, Copy)]
struct Seg {
    v6: bool,
    /// Offset of the TCP header.
    l4: usize,
    /// Offset of the payload.
    data: usize,
    seq: u32,
    flags: u8,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The pseudo-header sum for TCP of `tcp_len` bytes.
fn pseudo_sum(frame: &[u8], v6: bool, tcp_len: usize) -> u64 {
    if v6 {
        let s = csum_add(0, &frame[ETH_HLEN + 8..ETH_HLEN + 40]);
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
        let s = csum_add(0, &frame[ETH_HLEN + 12..ETH_HLEN + 20]);
        csum_add(s, &[0, IPPROTO_TCP, (tcp_len >> 8) as u8, tcp_len as u8])
    }
}

/// Whether `frame` is a TCP segment we may merge (see the module doc), and its layout. The
/// TCP checksum is left to the caller, which verifies it while copying the payload.
fn classify(frame: &[u8]) -> Option<Seg> {
    if frame.len() < ETH_HLEN + 40 {
        return None;
    }
    let (v6, l4, ip_end) = match be16(frame, 12) {
        0x0800 => {
            let ip = &frame[ETH_HLEN..];
            let total = usize::from(be16(ip, 2));
            // IHL 5, not a fragment (MF clear, offset 0), TCP, checksum right.
            if ip[0] != 0x45 || be16(ip, 6) & 0x3fff != 0 || ip[9] != IPPROTO_TCP {
                return None;
            }
            if csum_fold(csum_add(0, &ip[..20])) != 0 {
                return None;
            }
            (false, ETH_HLEN + 20, ETH_HLEN + total)
        }
        0x86dd => {
            let ip = &frame[ETH_HLEN..];
            if ip[0] >> 4 != 6 || ip[6] != IPPROTO_TCP || frame.len() < ETH_HLEN + 60 {
                return None;
            }
            (
                true,
                ETH_HLEN + 40,
                ETH_HLEN + 40 + usize::from(be16(ip, 4)),
            )
        }
        _ => return None,
    };
    // The frame may carry Ethernet padding after the IP packet; nothing else.
    if ip_end > frame.len() || ip_end < l4 + 20 || frame.len() - ip_end > 64 {
        return None;
    }
    let doff = usize::from(frame[l4 + 12] >> 4) * 4;
    let data = l4 + doff;
    let flags = frame[l4 + 13];
    if doff < 20 || data >= ip_end || flags & !(TCP_ACK | TCP_PSH) != 0 || flags & TCP_ACK == 0 {
        return None;
    }
    Some(Seg {
        v6,
        l4,
        data,
        seq: be32(frame, l4 + 4),
        flags,
    })
}

/// The batch being built.
#[derive(Debug, Clone, Copy)]
struct Batch {
    first: Seg,
    /// Payload size of the first segment: the MSS of the super-packet.
    mss: usize,
    /// Payload size of the last segment added.
    last_len: usize,
    next_seq: u32,
    segments: usize,
}

/// The coalescer: feed it every received frame of one transfer, then [`Gro::flush`].
#[derive(Debug)]
pub struct Gro {
    /// virtio-net header + the packet being built, in `buf[..len]`; allocated (and
    /// initialised) once at its full size, so that a payload is copied in without clearing
    /// its room first.
    buf: Vec<u8>,
    len: usize,
    batch: Option<Batch>,
    /// Super-packets written (two or more segments).
    pub merged_packets: u64,
}

impl Default for Gro {
    fn default() -> Self {
        Gro::new()
    }
}

impl Gro {
    /// An empty coalescer (its buffer is allocated once, here).
    pub fn new() -> Gro {
        Gro {
            buf: vec![0; vnet::LEN + ETH_HLEN + MAX_IP_LEN],
            len: 0,
            batch: None,
            merged_packets: 0,
        }
    }

    /// Whether `frame` (classified as `seg`) extends the current batch.
    fn extends(&self, b: &Batch, frame: &[u8], seg: &Seg) -> bool {
        let head = &self.buf[vnet::LEN..self.len];
        let payload = payload_len(frame, seg);
        seg.v6 == b.first.v6
            && seg.data == b.first.data
            && b.first.flags & TCP_PSH == 0
            && b.last_len == b.mss
            && payload <= b.mss
            && seg.seq == b.next_seq
            && head.len() + payload <= ETH_HLEN + MAX_IP_LEN
            // Ethernet header, then the IP fields that must match (v4: TOS, DF/TTL/protocol,
            // addresses; v6: traffic class/flow label, next header/hop limit, addresses).
            && frame[..ETH_HLEN] == head[..ETH_HLEN]
            && same_ip(frame, head, seg.v6)
            // Ports, then ACK number, then data offset, window and options (all but the
            // flags, the checksum and the urgent pointer).
            && frame[seg.l4..seg.l4 + 4] == head[seg.l4..seg.l4 + 4]
            && frame[seg.l4 + 8..seg.l4 + 12] == head[seg.l4 + 8..seg.l4 + 12]
            && frame[seg.l4 + 14..seg.l4 + 16] == head[seg.l4 + 14..seg.l4 + 16]
            && frame[seg.l4 + 20..seg.data] == head[seg.l4 + 20..seg.data]
    }

    /// Feed one frame. `emit(header, packet)` is called for every complete TAP write.
    pub fn push(&mut self, frame: &[u8], emit: &mut dyn FnMut(&[u8], &[u8])) {
        let Some(seg) = classify(frame) else {
            self.flush(emit);
            emit(&PLAIN_HEADER, frame);
            return;
        };
        let payload = payload_len(frame, &seg);
        let data = &frame[seg.data..seg.data + payload];
        // The TCP checksum: pseudo-header and TCP header (a multiple of 4 bytes: the sums
        // chain) here, the payload while it is copied into the batch. A segment that fails
        // it is passed through alone (the stack drops it), its copy forgotten.
        let tcp_len = seg.data - seg.l4 + payload;
        let head_sum = csum_add(pseudo_sum(frame, seg.v6, tcp_len), &frame[seg.l4..seg.data]);
        if let Some(mut b) = self.batch {
            if self.extends(&b, frame, &seg) {
                let at = self.len;
                let sum = csum_copy(head_sum, &mut self.buf[at..at + payload], data);
                if csum_fold(sum) != 0 {
                    self.flush(emit);
                    emit(&PLAIN_HEADER, frame);
                    return;
                }
                self.len += payload;
                b.last_len = payload;
                b.next_seq = b.next_seq.wrapping_add(payload as u32);
                b.segments += 1;
                if seg.flags & TCP_PSH != 0 {
                    let at = vnet::LEN + b.first.l4 + 13;
                    self.buf[at] |= TCP_PSH;
                    b.first.flags |= TCP_PSH;
                }
                self.batch = Some(b);
                if seg.flags & TCP_PSH != 0 {
                    self.flush(emit);
                }
                return;
            }
            self.flush(emit);
        }
        let end = vnet::LEN + seg.data + payload;
        if end > self.buf.len() {
            // An IPv6 jumbo-sized first segment: larger than any packet we build.
            emit(&PLAIN_HEADER, frame);
            return;
        }
        let sum = csum_copy(head_sum, &mut self.buf[vnet::LEN + seg.data..end], data);
        if csum_fold(sum) != 0 {
            emit(&PLAIN_HEADER, frame);
            return;
        }
        self.buf[..vnet::LEN].copy_from_slice(&PLAIN_HEADER);
        self.buf[vnet::LEN..vnet::LEN + seg.data].copy_from_slice(&frame[..seg.data]);
        self.len = end;
        self.batch = Some(Batch {
            first: seg,
            mss: payload,
            last_len: payload,
            next_seq: seg.seq.wrapping_add(payload as u32),
            segments: 1,
        });
        if seg.flags & TCP_PSH != 0 {
            self.flush(emit);
        }
    }

    /// Write what is being built (call at the end of every transfer).
    pub fn flush(&mut self, emit: &mut dyn FnMut(&[u8], &[u8])) {
        let Some(b) = self.batch.take() else { return };
        let (hdr, pkt) = self.buf[..self.len].split_at_mut(vnet::LEN);
        if b.segments == 1 {
            emit(&PLAIN_HEADER, pkt);
            return;
        }
        let l4 = b.first.l4;
        let tcp_len = pkt.len() - l4;
        if b.first.v6 {
            let plen = (pkt.len() - ETH_HLEN - 40) as u16;
            pkt[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&plen.to_be_bytes());
        } else {
            let total = (pkt.len() - ETH_HLEN) as u16;
            pkt[ETH_HLEN + 2..ETH_HLEN + 4].copy_from_slice(&total.to_be_bytes());
            pkt[ETH_HLEN + 10..ETH_HLEN + 12].fill(0);
            let c = csum_fold(csum_add(0, &pkt[ETH_HLEN..ETH_HLEN + 20]));
            pkt[ETH_HLEN + 10..ETH_HLEN + 12].copy_from_slice(&c.to_be_bytes());
        }
        // Checksum partial: the pseudo-header sum in place, the kernel treats the packet as
        // verified (we verified every segment) and would complete it if it forwarded it.
        let partial = !csum_fold(pseudo_sum(pkt, b.first.v6, tcp_len));
        pkt[l4 + 16..l4 + 18].copy_from_slice(&partial.to_be_bytes());
        let gso = if b.first.v6 {
            vnet::GSO_TCPV6
        } else {
            vnet::GSO_TCPV4
        };
        VnetHeader::new_unchecked(&mut *hdr).set(
            vnet::F_NEEDS_CSUM,
            gso,
            b.first.data as u16,
            b.mss as u16,
            l4 as u16,
            16,
        );
        self.merged_packets += 1;
        emit(hdr, pkt);
    }
}

/// TCP payload bytes of a classified frame (Ethernet padding excluded).
fn payload_len(frame: &[u8], seg: &Seg) -> usize {
    let ip_end = if seg.v6 {
        ETH_HLEN + 40 + usize::from(be16(frame, ETH_HLEN + 4))
    } else {
        ETH_HLEN + usize::from(be16(frame, ETH_HLEN + 2))
    };
    ip_end - seg.data
}

/// The IP header fields that must be equal for two segments to merge.
fn same_ip(a: &[u8], b: &[u8], v6: bool) -> bool {
    let ip = ETH_HLEN;
    if v6 {
        a[ip..ip + 4] == b[ip..ip + 4] && a[ip + 6..ip + 40] == b[ip + 6..ip + 40]
    } else {
        // TOS, flags (DF), TTL, protocol, addresses; not length, id or checksum.
        a[ip + 1] == b[ip + 1]
            && a[ip + 6] & 0x40 == b[ip + 6] & 0x40
            && a[ip + 8..ip + 10] == b[ip + 8..ip + 10]
            && a[ip + 12..ip + 20] == b[ip + 12..ip + 20]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gso::{prepare, Prepared};

    /// An Ethernet/IPv4/TCP segment with valid checksums.
    fn seg(seq: u32, payload: &[u8], flags: u8, ip_id: u16) -> Vec<u8> {
        let mut f = vec![0u8; 54];
        f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
        f[18..20].copy_from_slice(&ip_id.to_be_bytes());
        f[20] = 0x40; // DF
        f[22] = 64;
        f[23] = IPPROTO_TCP;
        f[26..30].copy_from_slice(&[192, 168, 77, 2]);
        f[30..34].copy_from_slice(&[192, 168, 77, 1]);
        f[34..36].copy_from_slice(&5201u16.to_be_bytes());
        f[36..38].copy_from_slice(&40000u16.to_be_bytes());
        f[38..42].copy_from_slice(&seq.to_be_bytes());
        f[42..46].copy_from_slice(&77u32.to_be_bytes());
        f[46] = 0x50;
        f[47] = flags;
        f[48..50].copy_from_slice(&500u16.to_be_bytes());
        f.extend_from_slice(payload);
        let c = csum_fold(csum_add(0, &f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        let tcp_len = f.len() - 34;
        let c = csum_fold(csum_add(pseudo_sum(&f, false, tcp_len), &f[34..]));
        f[50..52].copy_from_slice(&c.to_be_bytes());
        f
    }

    /// (virtio-net header, packet) per TAP write.
    type Writes = Vec<(Vec<u8>, Vec<u8>)>;

    fn run(frames: &[Vec<u8>]) -> (Writes, u64) {
        let mut g = Gro::new();
        let mut out = Vec::new();
        for f in frames {
            g.push(f, &mut |h, p| out.push((h.to_vec(), p.to_vec())));
        }
        g.flush(&mut |h, p| out.push((h.to_vec(), p.to_vec())));
        (out, g.merged_packets)
    }

    #[test]
    fn merges_a_burst_and_the_kernel_view_segments_back_to_the_originals() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let frames: Vec<Vec<u8>> = data
            .chunks(1448)
            .enumerate()
            .map(|(i, c)| {
                let last = (i + 1) * 1448 >= data.len();
                seg(
                    1000 + (i * 1448) as u32,
                    c,
                    if last { 0x18 } else { 0x10 },
                    i as u16,
                )
            })
            .collect();
        let (out, merged) = run(&frames);
        assert_eq!((out.len(), merged), (1, 1));
        let (hdr, pkt) = &out[0];
        let h = VnetHeader::new_checked(&hdr[..]).unwrap();
        assert_eq!(
            (h.gso_type(), h.gso_size(), h.hdr_len()),
            (vnet::GSO_TCPV4, 1448, 54)
        );
        assert_eq!(&pkt[54..], &data[..]);
        assert_eq!(pkt[47] & TCP_PSH, TCP_PSH, "PSH of the last segment kept");
        // Cut it again as the kernel's GSO would: the segments are the originals'
        // payloads with valid checksums.
        let mut buf = hdr.clone();
        buf.extend_from_slice(pkt);
        let Prepared::Segments(s) = prepare(&mut buf).unwrap() else {
            panic!("not a super-packet")
        };
        assert_eq!(s.count(), frames.len());
        let mut out = vec![0u8; s.max_segment_len()];
        for (i, f) in frames.iter().enumerate() {
            let n = s.segment(&buf[vnet::LEN..], i, &mut out);
            assert!(classify(&out[..n]).is_some(), "segment {i} valid");
            assert_eq!(&out[54..n], &f[54..]);
        }
    }

    #[test]
    fn does_not_merge_what_it_must_not() {
        let p = vec![7u8; 1000];
        // A gap in sequence numbers.
        let (out, merged) = run(&[seg(0, &p, 0x10, 0), seg(2000, &p, 0x10, 1)]);
        assert_eq!((out.len(), merged), (2, 0));
        // A bad TCP checksum: passed through unmerged for the kernel to drop.
        let mut bad = seg(1000, &p, 0x10, 1);
        bad[60] ^= 0xff;
        let (out, merged) = run(&[seg(0, &p, 0x10, 0), bad.clone()]);
        assert_eq!((out.len(), merged), (2, 0));
        assert_eq!(out[1].1, bad);
        // ... also as the first of a burst (the payload is verified as it is copied).
        let mut bad0 = seg(0, &p, 0x10, 0);
        bad0[100] ^= 0x01;
        let (out, merged) = run(&[bad0.clone(), seg(1000, &p, 0x10, 1)]);
        assert_eq!((out.len(), merged), (2, 0));
        assert_eq!(out[0], (PLAIN_HEADER.to_vec(), bad0));
        // ... and in the middle of one: the batch before it is written whole and right.
        let q: Vec<u8> = (0..1000u32).map(|i| (i * 13) as u8).collect();
        let mut bad2 = seg(2000, &q, 0x10, 2);
        bad2[500] ^= 0x80;
        let frames = [
            seg(0, &q, 0x10, 0),
            seg(1000, &q, 0x10, 1),
            bad2.clone(),
            seg(3000, &q, 0x10, 3),
        ];
        let (out, merged) = run(&frames);
        assert_eq!((out.len(), merged), (3, 1));
        assert_eq!(out[0].1.len(), 54 + 2000);
        assert_eq!(&out[0].1[54..1054], &q[..]);
        assert_eq!(&out[0].1[1054..], &q[..]);
        assert_eq!(out[1].1, bad2);
        assert_eq!(out[2].1, frames[3]);
        // SYN/FIN, a different ACK, a longer segment after a shorter one.
        let (out, _) = run(&[seg(0, &p, 0x11, 0), seg(1000, &p, 0x10, 1)]);
        assert_eq!(out.len(), 2);
        let mut other_ack = seg(1000, &p, 0x10, 1);
        other_ack[45] ^= 1;
        let (out, _) = run(&[seg(0, &p, 0x10, 0), other_ack]);
        assert_eq!(out.len(), 2);
        let (out, _) = run(&[seg(0, &p[..500], 0x10, 0), seg(500, &p, 0x10, 1)]);
        assert_eq!(out.len(), 2);
        // A segment after PSH starts a new batch.
        let (out, _) = run(&[seg(0, &p, 0x18, 0), seg(1000, &p, 0x10, 1)]);
        assert_eq!(out.len(), 2);
        // Not TCP at all: unchanged, with a plain header.
        let arp = vec![0xffu8; 60];
        let (out, _) = run(std::slice::from_ref(&arp));
        assert_eq!(out, vec![(PLAIN_HEADER.to_vec(), arp)]);
    }

    #[test]
    fn stops_before_64k() {
        let p = vec![1u8; 1448];
        let frames: Vec<Vec<u8>> = (0..60).map(|i| seg(i * 1448, &p, 0x10, i as u16)).collect();
        let (out, _) = run(&frames);
        assert!(out.len() >= 2);
        for (_, pkt) in &out {
            assert!(pkt.len() - ETH_HLEN <= MAX_IP_LEN);
        }
        let total: usize = out.iter().map(|(_, p)| p.len() - 54).sum();
        assert_eq!(total, 60 * 1448);
    }

    #[test]
    fn hostile_frames_never_panic() {
        let mut x: u32 = 0x9e37_79b9;
        let mut g = Gro::new();
        let base = seg(0, &[3u8; 200], 0x10, 0);
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let mut f = base.clone();
            let i = x as usize % f.len();
            f[i] ^= (x >> 8) as u8;
            f.truncate(x as usize % (f.len() + 1));
            g.push(&f, &mut |_, _| {});
        }
        g.flush(&mut |_, _| {});
    }
}
