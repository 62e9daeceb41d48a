//! NTB decode and encode against a plain copy of the same bytes.
//!
//! Two shapes: 10 × 1514-byte datagrams (bulk traffic) and 40 × 64-byte datagrams (small
//! packets, where the per-datagram cost shows). "memcpy" copies the same frames into a reused
//! buffer, one `extend_from_slice` each: the floor any encoder pays, and what a decoder that
//! copied (instead of lending slices) would pay.

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use usbnetd::wire::{parse_ntb, NtbBuilder, NtbFormat, NtbParams, RxLimits};

fn params() -> NtbParams {
    NtbParams {
        format: NtbFormat::Ntb16,
        max_size: 65535,
        max_datagrams: 0,
        divisor: 4,
        remainder: 2,
        ndp_alignment: 4,
    }
    .sanitize(1514)
    .expect("params")
}

fn frames(count: usize, len: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| (0..len).map(|j| (i * 31 + j) as u8).collect())
        .collect()
}

fn encode(builder: &mut NtbBuilder, out: &mut Vec<u8>, frames: &[Vec<u8>]) -> usize {
    builder.begin(out, 0);
    for f in frames {
        builder.push(out, f).expect("fits");
    }
    builder.finish(out)
}

fn bench_shape(c: &mut Criterion, name: &str, count: usize, len: usize) {
    let frames = frames(count, len);
    let mut builder = NtbBuilder::new(params());
    let mut out = Vec::with_capacity(65536);
    encode(&mut builder, &mut out, &frames);
    let ntb = out.clone();
    let limits = RxLimits::default();
    assert_eq!(parse_ntb(&ntb, &limits).unwrap().count(), count);

    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes((count * len) as u64));
    g.bench_function("decode", |b| {
        b.iter(|| {
            let it = parse_ntb(black_box(&ntb), &limits).unwrap();
            it.fold(0usize, |acc, d| acc + black_box(d).len())
        })
    });
    g.bench_function("encode", |b| {
        b.iter(|| encode(&mut builder, &mut out, black_box(&frames)))
    });
    let mut copy: Vec<u8> = Vec::with_capacity(65536);
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            copy.clear();
            for f in black_box(&frames) {
                copy.extend_from_slice(f);
            }
            copy.len()
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_shape(c, "ntb16_10x1514", 10, 1514);
    bench_shape(c, "ntb16_40x64", 40, 64);
}

criterion_group!(ntb, benches);
criterion_main!(ntb);
