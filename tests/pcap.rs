//! `--pcap`: the recording wrappers over the fake device write pcap files that read back
//! with the right file header, usbmon headers (event, type, endpoint, URB id pairing,
//! status, lengths, SETUP) and data; the Ethernet link records the frames.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use nusb::transfer::TransferError;
use usbnetd::class::{driver_for, BusFacts, RxDrops};
use usbnetd::fake::{self, FakeControl};
use usbnetd::pcap::{
    self, PcapError, PcapLink, Recorder, RecordingControl, UsbmonPacket, XferType,
    LINKTYPE_ETHERNET, LINKTYPE_USB_LINUX_MMAPPED, STATUS_IN_PROGRESS,
};
use usbnetd::probe::{ClassKind, NetFunction};
use usbnetd::usb::Buffer;
use usbnetd::usb::{Control, Pipe};

/// A `Write` into a buffer the test keeps a handle to.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const BUS: u16 = 3;
const DEV: u8 = 7;

fn recorder(link: PcapLink) -> (Arc<Recorder>, Shared) {
    let out = Shared::default();
    let rec = Recorder::to_writer(Box::new(out.clone()), link, BUS, DEV, "test".into()).unwrap();
    (rec, out)
}

/// Drop the recorder (flush) and parse what it wrote.
fn records(rec: Arc<Recorder>, out: Shared) -> (pcap::FileHeader, Vec<pcap::Record>) {
    drop(rec);
    let bytes = out.0.lock().unwrap().clone();
    pcap::read(&bytes).unwrap()
}

fn usbmon(r: &pcap::Record) -> UsbmonPacket<&[u8]> {
    UsbmonPacket::new_checked(&r.data[..]).unwrap()
}

fn poll(p: &mut dyn Pipe) -> Option<usbnetd::usb::Completion> {
    match p.poll_complete(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(c) => Some(c),
        Poll::Pending => None,
    }
}

#[test]
fn bulk_in_and_out_transfers_are_recorded_as_usbmon_pairs() {
    let (rec, out) = recorder(PcapLink::Usb);
    let (bulk_in, dev_in) = fake::pipe(0x81, 512);
    let (bulk_out, dev_out) = fake::pipe(0x02, 512);
    let mut pin = pcap::wrap_pipe(Box::new(bulk_in), XferType::Bulk, Some(&rec));
    let mut pout = pcap::wrap_pipe(Box::new(bulk_out), XferType::Bulk, Some(&rec));

    let mut b = pin.allocate(2048);
    b.set_requested_len(2048);
    pin.submit(b);
    assert!(poll(&mut *pin).is_none());
    assert!(dev_in.deliver(b"device says hello"));
    let c = poll(&mut *pin).expect("IN completion");
    assert_eq!(c.actual_len, 17);

    pout.submit(Buffer::from(b"host says hi".to_vec()));
    dev_out.complete_out(1);
    assert!(poll(&mut *pout).is_some());

    // A failed IN transfer: status -EPIPE, no data.
    let mut b = pin.allocate(512);
    b.set_requested_len(512);
    pin.submit(b);
    dev_in.fail(TransferError::Stall);
    assert!(poll(&mut *pin).unwrap().status.is_err());
    drop((pin, pout));

    let (hdr, recs) = records(rec, out);
    assert_eq!(hdr.version, (2, 4));
    assert_eq!(hdr.linktype, LINKTYPE_USB_LINUX_MMAPPED);
    assert_eq!(hdr.snaplen, pcap::SNAPLEN);
    assert_eq!(recs.len(), 6);
    let p: Vec<_> = recs.iter().map(usbmon).collect();
    for x in &p {
        assert_eq!((x.busnum(), x.devnum()), (BUS, DEV));
        assert_eq!(x.xfer_type(), XferType::Bulk as u8);
        assert_eq!(x.flag_setup(), b'-');
        assert!(x.ts_sec() > 1_600_000_000, "timestamp {}", x.ts_sec());
        assert!((0..1_000_000).contains(&x.ts_usec()));
    }
    // IN submit: requested length, no data ('<').
    assert_eq!((p[0].event(), p[0].endpoint()), (b'S', 0x81));
    assert_eq!(
        (p[0].length(), p[0].len_cap(), p[0].flag_data()),
        (2048, 0, b'<')
    );
    assert_eq!(p[0].status(), STATUS_IN_PROGRESS);
    // IN complete: same URB id, actual length, the data.
    assert_eq!((p[1].event(), p[1].id()), (b'C', p[0].id()));
    assert_eq!((p[1].status(), p[1].length(), p[1].flag_data()), (0, 17, 0));
    assert_eq!(p[1].data(), b"device says hello");
    assert_eq!(recs[1].orig_len as usize, pcap::USBMON_HEADER_LEN + 17);
    // OUT submit carries the data; OUT complete carries none ('>').
    assert_eq!(
        (p[2].event(), p[2].endpoint(), p[2].data()),
        (b'S', 0x02, &b"host says hi"[..])
    );
    assert_eq!(
        (p[3].event(), p[3].id(), p[3].length()),
        (b'C', p[2].id(), 12)
    );
    assert_eq!((p[3].len_cap(), p[3].flag_data()), (0, b'>'));
    assert_ne!(p[0].id(), p[2].id());
    // The stalled transfer.
    assert_eq!(
        (p[5].event(), p[5].id(), p[5].status()),
        (b'C', p[4].id(), -32)
    );
    assert_eq!(p[5].len_cap(), 0);
}

#[test]
fn interleaved_in_flight_transfers_pair_by_submission_order() {
    let (rec, out) = recorder(PcapLink::Usb);
    let (bulk_in, dev) = fake::pipe(0x81, 512);
    let mut pin = pcap::wrap_pipe(Box::new(bulk_in), XferType::Interrupt, Some(&rec));
    for _ in 0..3 {
        let mut b = pin.allocate(64);
        b.set_requested_len(64);
        pin.submit(b);
    }
    for i in 0..3u8 {
        dev.deliver(&[i; 5]);
    }
    for _ in 0..3 {
        poll(&mut *pin).unwrap();
    }
    drop(pin);
    let (_, recs) = records(rec, out);
    let p: Vec<_> = recs.iter().map(usbmon).collect();
    let submits: Vec<u64> = p[..3].iter().map(|x| x.id()).collect();
    let completes: Vec<u64> = p[3..].iter().map(|x| x.id()).collect();
    assert_eq!(submits, completes);
    for (i, x) in p[3..].iter().enumerate() {
        assert_eq!(x.xfer_type(), XferType::Interrupt as u8);
        assert_eq!(x.data(), &[i as u8; 5]);
    }
}

#[test]
fn control_requests_record_setup_and_data() {
    let (rec, out) = recorder(PcapLink::Usb);
    let mut fc = FakeControl::default();
    fc.replies.insert(0x80, vec![1, 2, 3, 4]);
    fc.strings.insert(3, "0242ac110002".into());
    let ctl = RecordingControl::new(fc, Some(&rec));
    assert_eq!(ctl.class_in(0x80, 0, 0, 28).unwrap(), vec![1, 2, 3, 4]);
    ctl.class_out(0x86, 0, 0, &[0x00, 0x40, 0, 0]).unwrap();
    assert!(ctl.class_in(0x99, 0, 0, 8).is_err());
    assert_eq!(ctl.string(3).as_deref(), Some("0242ac110002"));
    drop(ctl);
    let (_, recs) = records(rec, out);
    let p: Vec<_> = recs.iter().map(usbmon).collect();
    assert_eq!(p.len(), 8);
    for x in &p {
        assert_eq!(x.xfer_type(), XferType::Control as u8);
    }
    // GET_NTB_PARAMETERS: class IN to interface 0, wLength 28, 4 bytes back.
    assert_eq!(
        (p[0].event(), p[0].endpoint(), p[0].flag_setup()),
        (b'S', 0x80, 0)
    );
    assert_eq!(p[0].setup(), [0xa1, 0x80, 0, 0, 0, 0, 28, 0]);
    assert_eq!(
        (p[1].id(), p[1].status(), p[1].data()),
        (p[0].id(), 0, &[1u8, 2, 3, 4][..])
    );
    // SET_NTB_INPUT_SIZE: class OUT with its data on the submission.
    assert_eq!(p[2].setup(), [0x21, 0x86, 0, 0, 0, 0, 4, 0]);
    assert_eq!(
        (p[2].endpoint(), p[2].data()),
        (0x00, &[0x00, 0x40, 0, 0][..])
    );
    assert_eq!((p[3].event(), p[3].length(), p[3].len_cap()), (b'C', 4, 0));
    // A stalled request.
    assert_eq!(p[5].status(), -32);
    // The MAC string, re-encoded as a string descriptor.
    assert_eq!(p[6].setup()[..4], [0x80, 0x06, 3, 3]);
    let d = p[7].data();
    assert_eq!((d[0] as usize, d[1]), (d.len(), 3));
    assert_eq!(d.len(), 2 + 2 * 12);
}

#[test]
fn descriptors_open_the_capture_as_get_descriptor() {
    let set = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ncm.bin"
    ))
    .unwrap();
    let (rec, out) = recorder(PcapLink::Usb);
    rec.descriptors(&set);
    let (_, recs) = records(rec, out);
    let p: Vec<_> = recs.iter().map(usbmon).collect();
    assert_eq!(p.len(), 4, "device + one configuration, each S and C");
    assert_eq!(p[0].setup()[..4], [0x80, 0x06, 0, 1]);
    assert_eq!(p[1].data(), &set[..18]);
    assert_eq!(p[2].setup()[..4], [0x80, 0x06, 0, 2]);
    assert_eq!(p[3].data(), &set[18..]);
    // Truncated sets record what there is and never panic.
    for n in 0..set.len() {
        let (rec, out) = recorder(PcapLink::Usb);
        rec.descriptors(&set[..n]);
        let (_, recs) = records(rec, out);
        assert!(recs.len() <= 4);
    }
}

fn ncm_function() -> NetFunction {
    NetFunction {
        class: ClassKind::Ncm,
        configuration: 1,
        control_interface: Some(0),
        data_interface: 1,
        data_alt_setting: 1,
        bulk_in: 0x81,
        bulk_out: 0x02,
        interrupt_in: Some(0x83),
        max_packet_size: 512,
        bulk_out_max_packet_size: 512,
        interrupt_max_packet_size: Some(16),
        interrupt_interval: Some(9),
        max_segment_size: Some(1514),
        mac_string_index: None,
        ncm_capabilities: Some(0),
        ncm_version: Some(0x0100),
        mdlm_data_capabilities: None,
        iad_checked: false,
        notes: Vec::new(),
    }
}

fn ncm_binding() -> usbnetd::class::Binding {
    let mut c = FakeControl::default();
    #[rustfmt::skip]
    c.replies.insert(0x80, vec![
        0x1c, 0x00, 0x01, 0x00, 0x00, 0x40, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
    ]);
    driver_for(ClassKind::Ncm)
        .unwrap()
        .bind(
            &(std::sync::Arc::new(c) as std::sync::Arc<dyn usbnetd::usb::Control>),
            &ncm_function(),
            BusFacts {
                max_packet: 512,
                super_speed: false,
                identity: 0,
            },
        )
        .unwrap()
}

fn frame(i: u8, len: usize) -> Vec<u8> {
    let mut f = vec![i; len];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

#[test]
fn ethernet_link_records_frames_both_ways() {
    let (rec, out) = recorder(PcapLink::Ethernet);
    // A plain binding builds an NTB with two frames, as a device would send it.
    let mut plain = ncm_binding();
    let mut ntb = Buffer::new(16384);
    plain.tx.begin(&mut ntb);
    plain.tx.push(&mut ntb, &frame(1, 60)).unwrap();
    plain.tx.push(&mut ntb, &frame(2, 98)).unwrap();
    plain.tx.finish(&mut ntb);

    let mut b = pcap::wrap_binding(ncm_binding(), Some(&rec));
    let mut got = Vec::new();
    let mut drops = RxDrops::default();
    b.rx.rx_fixup(&ntb, &mut |f| got.push(f.to_vec()), &mut drops);
    assert_eq!(got, vec![frame(1, 60), frame(2, 98)]);
    let mut o = Buffer::new(16384);
    b.tx.begin(&mut o);
    b.tx.push(&mut o, &frame(3, 70)).unwrap();
    assert!(
        b.tx.push(&mut o, &[0u8; 4]).is_err(),
        "too short: refused, not recorded"
    );
    b.tx.finish(&mut o);
    drop(b);
    let (hdr, recs) = records(rec, out);
    assert_eq!(hdr.linktype, LINKTYPE_ETHERNET);
    let frames: Vec<Vec<u8>> = recs.iter().map(|r| r.data.clone()).collect();
    assert_eq!(frames, vec![frame(1, 60), frame(2, 98), frame(3, 70)]);

    // An Ethernet recorder leaves pipes and control unwrapped (nothing USB recorded).
    let (rec, out) = recorder(PcapLink::Ethernet);
    let (p, dev) = fake::pipe(0x02, 512);
    let mut p = pcap::wrap_pipe(Box::new(p), XferType::Bulk, Some(&rec));
    p.submit(Buffer::from(vec![1, 2, 3]));
    dev.complete_out(1);
    poll(&mut *p).unwrap();
    drop(p);
    assert!(records(rec, out).1.is_empty());
}

#[test]
fn a_real_file_reads_back_after_the_recorder_is_dropped() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("pcap-test-{}.pcap", std::process::id()));
    let rec = Recorder::create(&path, PcapLink::Usb, 1, 2).unwrap();
    let (p, dev) = fake::pipe(0x81, 512);
    let mut p = pcap::wrap_pipe(Box::new(p), XferType::Bulk, Some(&rec));
    let mut b = p.allocate(512);
    b.set_requested_len(512);
    p.submit(b);
    dev.deliver(&[0xab; 100]);
    poll(&mut *p).unwrap();
    drop((p, rec));
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let (hdr, recs) = pcap::read(&bytes).unwrap();
    assert_eq!(hdr.linktype, LINKTYPE_USB_LINUX_MMAPPED);
    assert_eq!(recs.len(), 2);
    assert_eq!(usbmon(&recs[1]).data(), &[0xab; 100][..]);
    assert!(Recorder::create(
        std::path::Path::new("/nonexistent/dir/x.pcap"),
        PcapLink::Usb,
        1,
        2
    )
    .is_err());
}

#[test]
fn malformed_files_are_typed_errors() {
    let (rec, out) = recorder(PcapLink::Usb);
    rec.descriptors(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ecm.bin"
        ))
        .unwrap(),
    );
    drop(rec);
    let good = out.0.lock().unwrap().clone();
    assert!(pcap::read(&good).is_ok());
    for n in 0..good.len() {
        match pcap::read(&good[..n]) {
            Err(PcapError::Truncated { .. }) => {}
            Ok((_, r)) => assert!(n == pcap::FILE_HEADER_LEN || !r.is_empty(), "cut at {n}"),
            Err(e) => panic!("cut at {n}: {e}"),
        }
    }
    let mut bad = good.clone();
    bad[0] ^= 0xff;
    assert!(matches!(pcap::read(&bad), Err(PcapError::BadMagic(_))));
    let mut bad = good.clone();
    // first record's incl_len larger than its orig_len
    bad[pcap::FILE_HEADER_LEN + 8] = 0xff;
    assert!(matches!(pcap::read(&bad), Err(PcapError::BadLength { .. })));
    assert!(UsbmonPacket::new_checked(&[0u8; 63][..]).is_err());
    let mut p = [0u8; 64];
    p[36] = 1; // len_cap 1, no data
    assert!(UsbmonPacket::new_checked(&p[..]).is_err());
}
