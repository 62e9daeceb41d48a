//! Tests with bytes captured in the lab (`lab run --env LAB_RUST_LOG=usbnetd::class=trace`,
//! usbnetd's own trace of GET_ENCAPSULATED_RESPONSE replies and IN transfers) from the Linux
//! `f_rndis` gadget and QEMU's usb-net (configuration 2), and hostile variants of them.

use super::*;

macro_rules! captured {
    ($name:literal) => {
        include_bytes!(concat!("../../../tests/fixtures/captured/", $name))
    };
}

const F_INIT_CMPLT: &[u8] = captured!("f_rndis_init_cmplt.bin");
const F_QUERY_MAC: &[u8] = captured!("f_rndis_query_mac.bin");
const F_QUERY_FRAME: &[u8] = captured!("f_rndis_query_frame_size.bin");
const F_QUERY_MEDIA: &[u8] = captured!("f_rndis_query_media.bin");
const F_SET_CMPLT: &[u8] = captured!("f_rndis_set_cmplt.bin");
const F_INDICATE: &[u8] = captured!("f_rndis_indicate_connect.bin");
const F_PACKET_ARP: &[u8] = captured!("f_rndis_packet_arp.bin");
const F_PACKET_ICMP: &[u8] = captured!("f_rndis_packet_icmp.bin");
const Q_INIT_CMPLT: &[u8] = captured!("qemu_rndis_init_cmplt.bin");
const Q_QUERY_MAC: &[u8] = captured!("qemu_rndis_query_mac.bin");
const Q_QUERY_FRAME: &[u8] = captured!("qemu_rndis_query_frame_size.bin");
const Q_SET_CMPLT: &[u8] = captured!("qemu_rndis_set_cmplt.bin");
const Q_PACKET_DHCP: &[u8] = captured!("qemu_rndis_packet_dhcp.bin");
const Q_PACKET_ARP: &[u8] = captured!("qemu_rndis_packet_arp.bin");

fn le(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn initialize_cmplt_from_the_gadget_and_qemu() {
    for bytes in [F_INIT_CMPLT, Q_INIT_CMPLT] {
        let m = Message::parse(bytes).unwrap();
        assert_eq!(
            m,
            Message::InitializeCmplt {
                request_id: 1,
                status: status::SUCCESS,
                major: 1,
                minor: 0,
                device_flags: 1,
                medium: MEDIUM_802_3,
                max_packets_per_transfer: 1,
                max_transfer_size: 1580,
                packet_alignment_factor: 0,
            }
        );
        // The Repr emits what it parsed, byte for byte.
        assert_eq!(m.to_vec(), bytes);
    }
}

#[test]
fn query_replies_from_the_gadget_and_qemu() {
    let mac = |b| match Message::parse(b).unwrap() {
        Message::QueryCmplt {
            request_id: 2,
            status: status::SUCCESS,
            info,
        } => info.to_vec(),
        other => panic!("{other:?}"),
    };
    assert_eq!(mac(F_QUERY_MAC), [0x02, 0x4c, 0x41, 0x42, 0x03, 0x01]);
    assert_eq!(mac(Q_QUERY_MAC), [0x02, 0x4c, 0x41, 0x42, 0x07, 0x01]);
    let frame = |b| match Message::parse(b).unwrap() {
        Message::QueryCmplt { info, .. } => u32::from_le_bytes(info.try_into().unwrap()),
        other => panic!("{other:?}"),
    };
    // The gadget says 1500 (its MTU), QEMU 1514 (a whole Ethernet frame).
    assert_eq!(frame(F_QUERY_FRAME), 1500);
    assert_eq!(frame(Q_QUERY_FRAME), 1514);
    assert_eq!(frame(F_QUERY_MEDIA), 0, "connected");
    for b in [F_QUERY_MAC, F_QUERY_FRAME, Q_QUERY_MAC] {
        assert_eq!(Message::parse(b).unwrap().to_vec(), b);
    }
}

#[test]
fn set_cmplt_and_indicate_status() {
    for b in [F_SET_CMPLT, Q_SET_CMPLT] {
        assert_eq!(
            Message::parse(b),
            Ok(Message::SetCmplt {
                request_id: 4,
                status: status::SUCCESS
            })
        );
    }
    assert_eq!(
        Message::parse(F_INDICATE),
        Ok(Message::IndicateStatus {
            status: status::MEDIA_CONNECT,
            buffer: &[]
        })
    );
}

#[test]
fn requests_emit_as_rndis_host_sends_them() {
    // What usbnetd sent the gadget (and the gadget accepted), checked field by field.
    let init = Message::Initialize {
        request_id: 1,
        major: 1,
        minor: 0,
        max_transfer_size: 2048,
    }
    .to_vec();
    assert_eq!(
        init,
        [
            2, 0, 0, 0, // REMOTE_NDIS_INITIALIZE_MSG
            24, 0, 0, 0, // MessageLength
            1, 0, 0, 0, // RequestId
            1, 0, 0, 0, // MajorVersion
            0, 0, 0, 0, // MinorVersion
            0, 8, 0, 0, // MaxTransferSize 2048
        ]
    );
    let set = Message::Set {
        request_id: 4,
        oid: oid::GEN_CURRENT_PACKET_FILTER,
        info: &0x0du32.to_le_bytes(),
    }
    .to_vec();
    assert_eq!(
        set,
        [
            5, 0, 0, 0, // REMOTE_NDIS_SET_MSG
            32, 0, 0, 0, // MessageLength
            4, 0, 0, 0, // RequestId
            0x0e, 1, 1, 0, // OID_GEN_CURRENT_PACKET_FILTER
            4, 0, 0, 0, // InformationBufferLength
            20, 0, 0, 0, // InformationBufferOffset (from byte 8: right after the header)
            0, 0, 0, 0, // DeviceVcHandle
            0x0d, 0, 0, 0, // directed | all multicast | broadcast
        ]
    );
    for m in [
        Message::Halt { request_id: 9 },
        Message::Keepalive { request_id: 7 },
        Message::KeepaliveCmplt {
            request_id: 7,
            status: 0,
        },
        Message::Reset,
        Message::ResetCmplt {
            status: 0,
            addressing_reset: 1,
        },
        Message::Query {
            request_id: 3,
            oid: oid::GEN_MAXIMUM_FRAME_SIZE,
            info: &[],
        },
    ] {
        assert_eq!(Message::parse(&m.to_vec()), Ok(m));
    }
}

#[test]
fn packets_from_the_gadget_and_qemu() {
    fn one(b: &[u8]) -> &[u8] {
        let v: Vec<_> = packets(b).collect();
        assert_eq!(v.len(), 1, "{v:?}");
        v[0].unwrap()
    }
    let arp = one(F_PACKET_ARP);
    assert_eq!(arp.len(), 42);
    assert_eq!(&arp[12..14], &[0x08, 0x06], "ARP");
    assert_eq!(one(F_PACKET_ICMP).len(), 98);
    let dhcp = one(Q_PACKET_DHCP);
    assert_eq!(dhcp.len(), 590);
    assert_eq!(&dhcp[..6], &[0xff; 6], "broadcast from slirp");
    assert_eq!(one(Q_PACKET_ARP).len(), 64);
    // Several messages in one transfer, and the pad byte a device adds instead of a ZLP.
    let mut xfer = [F_PACKET_ARP, F_PACKET_ICMP, Q_PACKET_ARP].concat();
    xfer.push(0);
    let lens: Vec<_> = packets(&xfer).map(|p| p.unwrap().len()).collect();
    assert_eq!(lens, [42, 98, 64]);
    // Our emitter writes what the devices write.
    assert_eq!(Message::Packet { data: arp }.to_vec(), F_PACKET_ARP);
}

#[test]
fn message_length_beyond_the_bytes_received() {
    let mut b = F_QUERY_MAC.to_vec();
    le(&mut b, 4, 31);
    assert_eq!(
        Message::parse(&b),
        Err(RndisError::BadLength {
            declared: 31,
            received: 30
        })
    );
    le(&mut b, 4, u32::MAX);
    assert!(matches!(
        Message::parse(&b),
        Err(RndisError::BadLength { .. })
    ));
    // Zero and below-header lengths would make a walk loop forever: rejected.
    for n in [0u32, 7] {
        let mut p = F_PACKET_ARP.to_vec();
        le(&mut p, 4, n);
        let v: Vec<_> = packets(&p).collect();
        assert!(
            matches!(v[..], [Err(RndisError::BadLength { .. })]),
            "{v:?}"
        );
    }
    // Header cut short.
    assert!(matches!(
        Message::parse(&F_INIT_CMPLT[..7]),
        Err(RndisError::Short { len: 7, need: 8 })
    ));
    // MessageLength shorter than the type's fixed part.
    let mut b = F_INIT_CMPLT.to_vec();
    le(&mut b, 4, 40);
    assert!(matches!(
        Message::parse(&b),
        Err(RndisError::Short { len: 40, need: 52 })
    ));
}

#[test]
fn information_buffer_out_of_range() {
    // Offset + length past MessageLength.
    let mut b = F_QUERY_MAC.to_vec();
    le(&mut b, 16, 7);
    assert!(matches!(
        Message::parse(&b),
        Err(RndisError::BadBuffer { len: 7, .. })
    ));
    // An offset that wraps a 32-bit sum back into range.
    let mut b = F_QUERY_MAC.to_vec();
    le(&mut b, 20, u32::MAX - 3);
    assert!(matches!(
        Message::parse(&b),
        Err(RndisError::BadBuffer { .. })
    ));
    // Length that wraps.
    let mut b = F_QUERY_MAC.to_vec();
    le(&mut b, 16, u32::MAX);
    assert!(matches!(
        Message::parse(&b),
        Err(RndisError::BadBuffer { .. })
    ));
    // Pointing into the header.
    let mut b = F_QUERY_MAC.to_vec();
    le(&mut b, 20, 0);
    assert!(matches!(
        Message::parse(&b),
        Err(RndisError::BadBuffer { .. })
    ));
    // Same for the status buffer of an indication.
    let mut b = F_INDICATE.to_vec();
    le(&mut b, 12, 4);
    le(&mut b, 16, 12);
    assert!(matches!(
        Message::parse(&b),
        Err(RndisError::BadBuffer { .. })
    ));
}

#[test]
fn packet_data_out_of_range() {
    let cases: [(usize, u32); 5] = [
        (12, 43),           // DataLength one past the message
        (8, 37),            // DataOffset one further: data runs past the end
        (8, 35),            // DataOffset into the header
        (8, u32::MAX - 7),  // DataOffset + 8 wraps to 0
        (12, u32::MAX - 8), // DataOffset + DataLength wraps
    ];
    for (at, v) in cases {
        let mut p = F_PACKET_ARP.to_vec();
        le(&mut p, at, v);
        let got: Vec<_> = packets(&p).collect();
        assert!(
            matches!(got[..], [Err(RndisError::BadBuffer { .. })]),
            "field {at} = {v:#x}: {got:?}"
        );
    }
    // Good, a message whose DataLength lies but whose MessageLength is sound, good (the
    // hostile device's `mid-data-lie`): the liar alone is skipped, the third one arrives.
    let mut bad = F_PACKET_ARP.to_vec();
    le(&mut bad, 12, 1000);
    let xfer = [F_PACKET_ICMP, &bad, F_PACKET_ARP].concat();
    let got: Vec<_> = packets(&xfer).collect();
    assert_eq!(got.len(), 3);
    assert!(matches!(got[1], Err(RndisError::BadBuffer { .. })));
    assert_eq!(got[0], Ok(&F_PACKET_ICMP[44..]));
    assert_eq!(got[2], Ok(&F_PACKET_ARP[44..]));
    // The middle MessageLength lies (past the transfer, or cutting its own frame so that
    // the next "message" starts inside the frame): nothing after it can be found, and
    // nothing after it is yielded.
    for len in [4000u32, 60] {
        let mut bad = F_PACKET_ARP.to_vec();
        le(&mut bad, 4, len);
        let xfer = [F_PACKET_ICMP, &bad, F_PACKET_ARP].concat();
        let got: Vec<_> = packets(&xfer).collect();
        assert_eq!(got[0], Ok(&F_PACKET_ICMP[44..]));
        assert!(
            got.len() >= 2 && got[1..].iter().all(|r| r.is_err()),
            "MessageLength {len}: {got:?}"
        );
    }
    // A control message on the data pipe is not a packet.
    assert!(matches!(
        packets(F_SET_CMPLT).next(),
        Some(Err(RndisError::WrongType { .. }))
    ));
}

#[test]
fn unknown_types_and_truncations_never_panic() {
    let mut b = F_SET_CMPLT.to_vec();
    le(&mut b, 0, 0x1234);
    assert_eq!(Message::parse(&b), Err(RndisError::UnknownType(0x1234)));
    for src in [
        F_INIT_CMPLT,
        F_QUERY_MAC,
        F_INDICATE,
        F_PACKET_ICMP,
        Q_PACKET_DHCP,
    ] {
        for n in 0..src.len() {
            let _ = Message::parse(&src[..n]);
            let _ = packets(&src[..n]).count();
        }
    }
}
