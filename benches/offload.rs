//! The offload codecs against `memcpy` of the same bytes: the Internet checksum, a TSO
//! super-packet cut into segments (what TX does to every 64 KiB read from the TAP), and
//! received segments coalesced into one super-packet (what RX does before a TAP write).
//! Each moves every payload byte once; `memcpy` is the floor.

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use usbnetd::gro::Gro;
use usbnetd::gso::{csum_add, csum_copy, TcpSegmenter};

const MSS: usize = 1448;
/// Ethernet + IPv4 + TCP with timestamps.
const HDR: usize = 14 + 20 + 32;

/// An Ethernet/IPv4/TCP packet (TCP timestamps) with `payload` bytes at sequence `seq`.
fn tcp_packet(payload: usize, seq: u32) -> Vec<u8> {
    let mut f = vec![0u8; HDR + payload];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (20 + 32 + payload).min(0xffff) as u16;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[20] = 0x40; // DF
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    let ip_sum = usbnetd::gso::csum_fold(csum_add(0, &f[14..34]));
    f[24..26].copy_from_slice(&ip_sum.to_be_bytes());
    let t = 34;
    f[t..t + 2].copy_from_slice(&5201u16.to_be_bytes());
    f[t + 2..t + 4].copy_from_slice(&40000u16.to_be_bytes());
    f[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
    f[t + 8..t + 12].copy_from_slice(&1u32.to_be_bytes());
    f[t + 12] = 8 << 4; // 32-byte header
    f[t + 13] = 0x10; // ACK
    f[t + 14..t + 16].copy_from_slice(&502u16.to_be_bytes());
    f[t + 20..t + 22].copy_from_slice(&[1, 1]);
    f[t + 22..t + 24].copy_from_slice(&[8, 10]);
    let mut x = seq.wrapping_mul(2_654_435_761);
    for b in &mut f[HDR..] {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        *b = (x >> 24) as u8;
    }
    // TCP checksum over the pseudo-header and the segment.
    let tcp_len = (32 + payload) as u16;
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&f[26..34]);
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&tcp_len.to_be_bytes());
    let sum = csum_add(csum_add(0, &pseudo), &f[t..]);
    let tcp_sum = usbnetd::gso::csum_fold(sum);
    f[t + 16..t + 18].copy_from_slice(&tcp_sum.to_be_bytes());
    f
}

fn checksum(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    for len in [64usize, 1448, 65_536] {
        let src: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let mut dst = vec![0u8; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("csum_add", len), &src, |b, s| {
            b.iter(|| csum_add(0, black_box(s)))
        });
        g.bench_with_input(BenchmarkId::new("csum_copy", len), &src, |b, s| {
            b.iter(|| csum_copy(0, black_box(&mut dst), black_box(s)))
        });
        let mut dst2 = vec![0u8; len];
        g.bench_with_input(BenchmarkId::new("memcpy", len), &src, |b, s| {
            b.iter(|| dst2.copy_from_slice(black_box(s)))
        });
    }
    g.finish();
}

fn segment(c: &mut Criterion) {
    // 45 full segments, as the TAP hands over with TSO at a 1500-byte MTU.
    let payload = 45 * MSS;
    let frame = tcp_packet(payload, 1000);
    let seg = TcpSegmenter::new(&frame, MSS).expect("a TSO frame");
    let mut out = vec![0u8; seg.max_segment_len()];
    let mut g = c.benchmark_group("tso_64k");
    g.throughput(Throughput::Bytes(payload as u64));
    g.bench_function("segment", |b| {
        b.iter(|| {
            let mut n = 0;
            for i in 0..seg.count() {
                n += seg.segment(black_box(&frame), i, &mut out);
            }
            n
        })
    });
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            let mut n = 0;
            for i in 0..seg.count() {
                let at = HDR + i * MSS;
                out[..HDR].copy_from_slice(&frame[..HDR]);
                out[HDR..HDR + MSS].copy_from_slice(black_box(&frame[at..at + MSS]));
                n += HDR + MSS;
            }
            n
        })
    });
    g.finish();
}

fn coalesce(c: &mut Criterion) {
    // 44 consecutive full segments (one TAP write of 44 * 1448 bytes of payload).
    let frames: Vec<Vec<u8>> = (0..44)
        .map(|i| tcp_packet(MSS, 1000 + (i * MSS) as u32))
        .collect();
    let mut gro = Gro::new();
    // What is measured is coalescing: the 44 segments make one TAP write.
    let mut writes = 0;
    for f in &frames {
        gro.push(f, &mut |_, _| writes += 1);
    }
    gro.flush(&mut |_, _| writes += 1);
    assert_eq!(writes, 1, "the benchmark's segments were not coalesced");
    let mut g = c.benchmark_group("gro_44");
    g.throughput(Throughput::Bytes((44 * MSS) as u64));
    g.bench_function("coalesce", |b| {
        b.iter(|| {
            let mut written = 0;
            let mut emit = |h: &[u8], p: &[u8]| written += h.len() + p.len();
            for f in &frames {
                gro.push(black_box(f), &mut emit);
            }
            gro.flush(&mut emit);
            written
        })
    });
    let mut dst = vec![0u8; HDR + 44 * MSS];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst[..HDR].copy_from_slice(&frames[0][..HDR]);
            for (i, f) in frames.iter().enumerate() {
                let at = HDR + i * MSS;
                dst[at..at + MSS].copy_from_slice(black_box(&f[HDR..]));
            }
            dst.len()
        })
    });
    g.finish();
}

criterion_group!(benches, checksum, segment, coalesce);
criterion_main!(benches);
