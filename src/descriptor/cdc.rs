//! CDC functional descriptors (`CS_INTERFACE`, 0x24): checked views by subtype, and the
//! owned [`CdcDescriptor`] the parsed tree keeps.
//!
//! Layouts from USB CDC 1.2 (§5.2.3, tables 15-16), PSTN 1.2 (tables 3-4), ECM 1.2
//! (table 3), WMC 1.1 (§6.7.2.5, §6.7.2.6) and NCM 1.0 (table 5-2). Every one starts with
//! `bLength`, `bDescriptorType` (0x24) and `bDescriptorSubtype`.

use serde::Serialize;

use super::views::{descriptor_type, descriptor_view, Kind};
use super::{hex_bytes, ParseErrorKind};

/// `bDescriptorSubtype` values of the CDC functional descriptors (CDC 1.2 table 13).
pub mod subtype {
    /// Header functional descriptor.
    pub const HEADER: u8 = 0x00;
    /// Call management functional descriptor.
    pub const CALL_MANAGEMENT: u8 = 0x01;
    /// Abstract control management functional descriptor.
    pub const ACM: u8 = 0x02;
    /// Union functional descriptor.
    pub const UNION: u8 = 0x06;
    /// Country selection functional descriptor.
    pub const COUNTRY_SELECTION: u8 = 0x07;
    /// Ethernet networking functional descriptor.
    pub const ETHERNET: u8 = 0x0f;
    /// Mobile direct line model functional descriptor.
    pub const MDLM: u8 = 0x12;
    /// MDLM detail functional descriptor.
    pub const MDLM_DETAIL: u8 = 0x13;
    /// Device management model functional descriptor.
    pub const DMM: u8 = 0x14;
    /// OBEX service identifier functional descriptor.
    pub const OBEX: u8 = 0x15;
    /// NCM functional descriptor.
    pub const NCM: u8 = 0x1a;
    /// MBIM functional descriptor.
    pub const MBIM: u8 = 0x1b;
    /// MBIM extended functional descriptor.
    pub const MBIM_EXTENDED: u8 = 0x1c;
}

/// Field offsets of the CDC functional descriptors. Width follows from the accessor's type.
pub mod field {
    /// `bDescriptorSubtype` (u8), common to all.
    pub const B_DESCRIPTOR_SUBTYPE: usize = 2;
    /// Header: `bcdCDC` (u16).
    pub const HEADER_BCD_CDC: usize = 3;
    /// Call management: `bmCapabilities` (u8).
    pub const CALL_MGMT_BM_CAPABILITIES: usize = 3;
    /// Call management: `bDataInterface` (u8).
    pub const CALL_MGMT_B_DATA_INTERFACE: usize = 4;
    /// ACM: `bmCapabilities` (u8).
    pub const ACM_BM_CAPABILITIES: usize = 3;
    /// Union: `bControlInterface` (u8).
    pub const UNION_B_CONTROL_INTERFACE: usize = 3;
    /// Union: first `bSubordinateInterface` (u8); one byte each up to `bLength`.
    pub const UNION_B_SUBORDINATE_INTERFACE0: usize = 4;
    /// Ethernet: `iMACAddress` (u8).
    pub const ETHERNET_I_MAC_ADDRESS: usize = 3;
    /// Ethernet: `bmEthernetStatistics` (u32).
    pub const ETHERNET_BM_ETHERNET_STATISTICS: usize = 4;
    /// Ethernet: `wMaxSegmentSize` (u16).
    pub const ETHERNET_W_MAX_SEGMENT_SIZE: usize = 8;
    /// Ethernet: `wNumberMCFilters` (u16).
    pub const ETHERNET_W_NUMBER_MC_FILTERS: usize = 10;
    /// Ethernet: `bNumberPowerFilters` (u8).
    pub const ETHERNET_B_NUMBER_POWER_FILTERS: usize = 12;
    /// MDLM: `bcdVersion` (u16).
    pub const MDLM_BCD_VERSION: usize = 3;
    /// MDLM: `bGUID` (16 bytes).
    pub const MDLM_B_GUID: usize = 5;
    /// MDLM detail: `bGuidDescriptorType` (u8).
    pub const MDLM_DETAIL_B_GUID_DESCRIPTOR_TYPE: usize = 3;
    /// MDLM detail: first byte of `bDetailData`, which runs to `bLength`.
    pub const MDLM_DETAIL_B_DETAIL_DATA: usize = 4;
    /// NCM: `bcdNcmVersion` (u16).
    pub const NCM_BCD_NCM_VERSION: usize = 3;
    /// NCM: `bmNetworkCapabilities` (u8).
    pub const NCM_BM_NETWORK_CAPABILITIES: usize = 5;
}

/// `bmNetworkCapabilities` bits of the NCM functional descriptor (NCM 1.0 table 5-2).
pub mod ncm_capability {
    /// Bit 0: `SetEthernetPacketFilter`.
    pub const PACKET_FILTER: u8 = 0x01;
    /// Bit 1: `Get/SetNetAddress`.
    pub const NET_ADDRESS: u8 = 0x02;
    /// Bit 2: `Send/GetEncapsulated{Command,Response}`.
    pub const ENCAPSULATED_COMMAND: u8 = 0x04;
    /// Bit 3: `Get/SetMaxDatagramSize`.
    pub const MAX_DATAGRAM_SIZE: u8 = 0x08;
    /// Bit 4: `Get/SetCrcMode`.
    pub const CRC_MODE: u8 = 0x10;
    /// Bit 5: 8-byte `GetNtbInputSize`/`SetNtbInputSize`.
    pub const NTB_INPUT_SIZE_8: u8 = 0x20;
}

/// The "SAFE" MDLM GUID (Linux `f_subset`, Belcarra; `drivers/net/usb/zaurus.c`).
pub const MDLM_GUID_SAFE: [u8; 16] = [
    0x5d, 0x34, 0xcf, 0x66, 0x11, 0x18, 0x11, 0xd6, 0xa2, 0x1a, 0x00, 0x01, 0x02, 0xca, 0x9a, 0x7f,
];

/// The "BLAN" MDLM GUID (Belcarra; `drivers/net/usb/zaurus.c`).
pub const MDLM_GUID_BLAN: [u8; 16] = [
    0x74, 0xf0, 0x3d, 0xbd, 0x1e, 0xc1, 0x44, 0x70, 0xa3, 0x67, 0x71, 0x34, 0xc9, 0xf5, 0x54, 0x37,
];

/// Formats a GUID in byte order as `5d34cf66-1118-11d6-a21a-000102ca9a7f`.
pub fn format_guid(guid: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in guid.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

descriptor_view! {
    /// Any CDC functional descriptor, seen through its three header bytes.
    pub struct CdcFunctional;
    name = "CDC functional", min_len = 3,
    kind = Kind::Type(descriptor_type::CS_INTERFACE);
    fields {
        /// `bDescriptorSubtype`.
        #[doc(alias = "bDescriptorSubtype")]
        subtype / set_subtype: u8 = field::B_DESCRIPTOR_SUBTYPE;
    }
}

descriptor_view! {
    /// Header functional descriptor (subtype 0x00, 5 bytes).
    pub struct CdcHeader;
    name = "CDC Header", min_len = 5, kind = Kind::CdcSubtype(subtype::HEADER);
    fields {
        /// `bDescriptorSubtype`.
        subtype / set_subtype: u8 = field::B_DESCRIPTOR_SUBTYPE;
        /// `bcdCDC`: CDC release in BCD.
        #[doc(alias = "bcdCDC")]
        cdc_version / set_cdc_version: u16 = field::HEADER_BCD_CDC;
    }
}

descriptor_view! {
    /// Call management functional descriptor (subtype 0x01, 5 bytes; PSTN 1.2 table 3).
    pub struct CdcCallManagement;
    name = "CDC Call Management", min_len = 5,
    kind = Kind::CdcSubtype(subtype::CALL_MANAGEMENT);
    fields {
        /// `bDescriptorSubtype`.
        subtype / set_subtype: u8 = field::B_DESCRIPTOR_SUBTYPE;
        /// `bmCapabilities`.
        #[doc(alias = "bmCapabilities")]
        capabilities / set_capabilities: u8 = field::CALL_MGMT_BM_CAPABILITIES;
        /// `bDataInterface`.
        #[doc(alias = "bDataInterface")]
        data_interface / set_data_interface: u8 = field::CALL_MGMT_B_DATA_INTERFACE;
    }
}

descriptor_view! {
    /// Abstract control management functional descriptor (subtype 0x02, 4 bytes; PSTN 1.2
    /// table 4).
    pub struct CdcAcm;
    name = "CDC ACM", min_len = 4, kind = Kind::CdcSubtype(subtype::ACM);
    fields {
        /// `bDescriptorSubtype`.
        subtype / set_subtype: u8 = field::B_DESCRIPTOR_SUBTYPE;
        /// `bmCapabilities`.
        #[doc(alias = "bmCapabilities")]
        capabilities / set_capabilities: u8 = field::ACM_BM_CAPABILITIES;
    }
}

descriptor_view! {
    /// Union functional descriptor (subtype 0x06): a control interface and one or more
    /// subordinate interfaces, 4 + N bytes with N ≥ 1.
    pub struct CdcUnion;
    name = "CDC Union", min_len = 5, kind = Kind::CdcSubtype(subtype::UNION);
    fields {
        /// `bDescriptorSubtype`.
        subtype / set_subtype: u8 = field::B_DESCRIPTOR_SUBTYPE;
        /// `bControlInterface` (`bMasterInterface0` in older texts).
        #[doc(alias = "bControlInterface")]
        #[doc(alias = "bMasterInterface0")]
        control_interface / set_control_interface: u8 = field::UNION_B_CONTROL_INTERFACE;
    }
}

impl<T: AsRef<[u8]>> CdcUnion<T> {
    /// `bSubordinateInterface0..N` (`bSlaveInterface` in older texts), up to `bLength`.
    #[doc(alias = "bSubordinateInterface0")]
    pub fn subordinate_interfaces(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        &buf[field::UNION_B_SUBORDINATE_INTERFACE0..usize::from(self.length())]
    }
}

descriptor_view! {
    /// Ethernet networking functional descriptor (subtype 0x0F, 13 bytes; ECM 1.2 table 3).
    pub struct CdcEthernet;
    name = "CDC Ethernet Networking", min_len = 13, kind = Kind::CdcSubtype(subtype::ETHERNET);
    fields {
        /// `bDescriptorSubtype`.
        subtype / set_subtype: u8 = field::B_DESCRIPTOR_SUBTYPE;
        /// `iMACAddress`: string index of the MAC address as 12 hex digits.
        #[doc(alias = "iMACAddress")]
        mac_address_index / set_mac_address_index: u8 = field::ETHERNET_I_MAC_ADDRESS;
        /// `bmEthernetStatistics`: which statistics the device counts.
        #[doc(alias = "bmEthernetStatistics")]
        ethernet_statistics / set_ethernet_statistics: u32 =
            field::ETHERNET_BM_ETHERNET_STATISTICS;
        /// `wMaxSegmentSize`: largest Ethernet frame, header included, without FCS.
        #[doc(alias = "wMaxSegmentSize")]
        max_segment_size / set_max_segment_size: u16 = field::ETHERNET_W_MAX_SEGMENT_SIZE;
        /// `wNumberMCFilters`: bit 15 set means imperfect filtering.
        #[doc(alias = "wNumberMCFilters")]
        number_mc_filters / set_number_mc_filters: u16 = field::ETHERNET_W_NUMBER_MC_FILTERS;
        /// `bNumberPowerFilters`.
        #[doc(alias = "bNumberPowerFilters")]
        number_power_filters / set_number_power_filters: u8 =
            field::ETHERNET_B_NUMBER_POWER_FILTERS;
    }
}

descriptor_view! {
    /// Mobile direct line model functional descriptor (subtype 0x12, 21 bytes; WMC 1.1
    /// §6.7.2.5).
    pub struct CdcMdlm;
    name = "CDC MDLM", min_len = 21, kind = Kind::CdcSubtype(subtype::MDLM);
    fields {
        /// `bDescriptorSubtype`.
        subtype / set_subtype: u8 = field::B_DESCRIPTOR_SUBTYPE;
        /// `bcdVersion`.
        #[doc(alias = "bcdVersion")]
        version / set_version: u16 = field::MDLM_BCD_VERSION;
    }
}

impl<T: AsRef<[u8]>> CdcMdlm<T> {
    /// `bGUID`: identifies the vendor's model (see [`MDLM_GUID_SAFE`]).
    #[doc(alias = "bGUID")]
    pub fn guid(&self) -> [u8; 16] {
        let buf = self.buffer.as_ref();
        let mut guid = [0; 16];
        guid.copy_from_slice(&buf[field::MDLM_B_GUID..field::MDLM_B_GUID + 16]);
        guid
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> CdcMdlm<T> {
    /// Sets `bGUID`.
    pub fn set_guid(&mut self, guid: [u8; 16]) {
        let buf = self.buffer.as_mut();
        buf[field::MDLM_B_GUID..field::MDLM_B_GUID + 16].copy_from_slice(&guid);
    }
}

descriptor_view! {
    /// MDLM detail functional descriptor (subtype 0x13; WMC 1.1 §6.7.2.6): a type byte
    /// and vendor-defined detail data up to `bLength`.
    pub struct CdcMdlmDetail;
    name = "CDC MDLM Detail", min_len = 4, kind = Kind::CdcSubtype(subtype::MDLM_DETAIL);
    fields {
        /// `bDescriptorSubtype`.
        subtype / set_subtype: u8 = field::B_DESCRIPTOR_SUBTYPE;
        /// `bGuidDescriptorType`: for SAFE 0, for BLAN 1.
        #[doc(alias = "bGuidDescriptorType")]
        guid_descriptor_type / set_guid_descriptor_type: u8 =
            field::MDLM_DETAIL_B_GUID_DESCRIPTOR_TYPE;
    }
}

impl<T: AsRef<[u8]>> CdcMdlmDetail<T> {
    /// `bDetailData`: for SAFE and BLAN, `bmNetworkCapabilities`, `bmDataCapabilities`
    /// (bit 0 = CRC trailer framing) and, for BLAN, `bPad`.
    #[doc(alias = "bDetailData")]
    pub fn detail_data(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        &buf[field::MDLM_DETAIL_B_DETAIL_DATA..usize::from(self.length())]
    }
}

descriptor_view! {
    /// NCM functional descriptor (subtype 0x1A, 6 bytes; NCM 1.0 table 5-2).
    pub struct CdcNcm;
    name = "CDC NCM", min_len = 6, kind = Kind::CdcSubtype(subtype::NCM);
    fields {
        /// `bDescriptorSubtype`.
        subtype / set_subtype: u8 = field::B_DESCRIPTOR_SUBTYPE;
        /// `bcdNcmVersion`.
        #[doc(alias = "bcdNcmVersion")]
        ncm_version / set_ncm_version: u16 = field::NCM_BCD_NCM_VERSION;
        /// `bmNetworkCapabilities` (see [`ncm_capability`]).
        #[doc(alias = "bmNetworkCapabilities")]
        network_capabilities / set_network_capabilities: u8 =
            field::NCM_BM_NETWORK_CAPABILITIES;
    }
}

/// A CDC functional descriptor, decoded when its subtype is one usbnetd uses and kept as
/// bytes otherwise. `offset` is where it starts in the parsed input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CdcDescriptor {
    /// Header (0x00).
    Header {
        /// Byte offset in the input.
        offset: usize,
        /// `bcdCDC`.
        cdc_version: u16,
    },
    /// Call management (0x01).
    CallManagement {
        /// Byte offset in the input.
        offset: usize,
        /// `bmCapabilities`.
        capabilities: u8,
        /// `bDataInterface`.
        data_interface: u8,
    },
    /// Abstract control management (0x02).
    Acm {
        /// Byte offset in the input.
        offset: usize,
        /// `bmCapabilities`.
        capabilities: u8,
    },
    /// Union (0x06).
    Union {
        /// Byte offset in the input.
        offset: usize,
        /// `bControlInterface`.
        control_interface: u8,
        /// `bSubordinateInterface0..N` (at least one).
        subordinate_interfaces: Vec<u8>,
    },
    /// Ethernet networking (0x0F).
    Ethernet {
        /// Byte offset in the input.
        offset: usize,
        /// `iMACAddress`.
        mac_string_index: u8,
        /// `bmEthernetStatistics`.
        ethernet_statistics: u32,
        /// `wMaxSegmentSize`.
        max_segment_size: u16,
        /// `wNumberMCFilters`.
        number_mc_filters: u16,
        /// `bNumberPowerFilters`.
        number_power_filters: u8,
    },
    /// Mobile direct line model (0x12).
    Mdlm {
        /// Byte offset in the input.
        offset: usize,
        /// `bcdVersion`.
        version: u16,
        /// `bGUID`, serialized as `5d34cf66-1118-11d6-a21a-000102ca9a7f`.
        #[serde(serialize_with = "serialize_guid")]
        guid: [u8; 16],
    },
    /// MDLM detail (0x13).
    MdlmDetail {
        /// Byte offset in the input.
        offset: usize,
        /// `bGuidDescriptorType`.
        guid_descriptor_type: u8,
        /// `bDetailData`, serialized as hex.
        #[serde(serialize_with = "hex_bytes")]
        detail: Vec<u8>,
    },
    /// NCM (0x1A).
    Ncm {
        /// Byte offset in the input.
        offset: usize,
        /// `bcdNcmVersion`.
        ncm_version: u16,
        /// `bmNetworkCapabilities`.
        network_capabilities: u8,
    },
    /// Any other subtype, kept whole.
    Other {
        /// Byte offset in the input.
        offset: usize,
        /// `bDescriptorSubtype`.
        subtype: u8,
        /// The whole descriptor (`bLength` bytes), serialized as hex.
        #[serde(serialize_with = "hex_bytes")]
        bytes: Vec<u8>,
    },
}

fn serialize_guid<S: serde::Serializer>(guid: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_guid(guid))
}

impl CdcDescriptor {
    /// Decodes one CDC functional descriptor: `bytes` holds exactly `bLength` bytes (the
    /// caller has split it off with a checked header). Fails if the descriptor is shorter
    /// than its subtype requires.
    pub fn decode(offset: usize, bytes: &[u8]) -> Result<Self, ParseErrorKind> {
        let generic = CdcFunctional::new_checked(bytes)?;
        Ok(match generic.subtype() {
            subtype::HEADER => {
                let v = CdcHeader::new_checked(bytes)?;
                Self::Header {
                    offset,
                    cdc_version: v.cdc_version(),
                }
            }
            subtype::CALL_MANAGEMENT => {
                let v = CdcCallManagement::new_checked(bytes)?;
                Self::CallManagement {
                    offset,
                    capabilities: v.capabilities(),
                    data_interface: v.data_interface(),
                }
            }
            subtype::ACM => {
                let v = CdcAcm::new_checked(bytes)?;
                Self::Acm {
                    offset,
                    capabilities: v.capabilities(),
                }
            }
            subtype::UNION => {
                let v = CdcUnion::new_checked(bytes)?;
                Self::Union {
                    offset,
                    control_interface: v.control_interface(),
                    subordinate_interfaces: v.subordinate_interfaces().to_vec(),
                }
            }
            subtype::ETHERNET => {
                let v = CdcEthernet::new_checked(bytes)?;
                Self::Ethernet {
                    offset,
                    mac_string_index: v.mac_address_index(),
                    ethernet_statistics: v.ethernet_statistics(),
                    max_segment_size: v.max_segment_size(),
                    number_mc_filters: v.number_mc_filters(),
                    number_power_filters: v.number_power_filters(),
                }
            }
            subtype::MDLM => {
                let v = CdcMdlm::new_checked(bytes)?;
                Self::Mdlm {
                    offset,
                    version: v.version(),
                    guid: v.guid(),
                }
            }
            subtype::MDLM_DETAIL => {
                let v = CdcMdlmDetail::new_checked(bytes)?;
                Self::MdlmDetail {
                    offset,
                    guid_descriptor_type: v.guid_descriptor_type(),
                    detail: v.detail_data().to_vec(),
                }
            }
            subtype::NCM => {
                let v = CdcNcm::new_checked(bytes)?;
                Self::Ncm {
                    offset,
                    ncm_version: v.ncm_version(),
                    network_capabilities: v.network_capabilities(),
                }
            }
            other => Self::Other {
                offset,
                subtype: other,
                bytes: generic.as_bytes().to_vec(),
            },
        })
    }

    /// Byte offset of this descriptor in the parsed input.
    pub fn offset(&self) -> usize {
        match self {
            Self::Header { offset, .. }
            | Self::CallManagement { offset, .. }
            | Self::Acm { offset, .. }
            | Self::Union { offset, .. }
            | Self::Ethernet { offset, .. }
            | Self::Mdlm { offset, .. }
            | Self::MdlmDetail { offset, .. }
            | Self::Ncm { offset, .. }
            | Self::Other { offset, .. } => *offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The CDC descriptors of QEMU usb-net's CDC-ECM control interface (dev-network.c).
    #[rustfmt::skip]
    static HEADER: [u8; 5] = [
        0x05,       // bLength
        0x24,       // bDescriptorType CS_INTERFACE
        0x00,       // bDescriptorSubtype Header
        0x10, 0x01, // bcdCDC 1.10
    ];
    #[rustfmt::skip]
    static UNION: [u8; 5] = [
        0x05, // bLength
        0x24, // CS_INTERFACE
        0x06, // Union
        0x00, // bControlInterface 0
        0x01, // bSubordinateInterface0 1
    ];
    #[rustfmt::skip]
    static ETHERNET: [u8; 13] = [
        0x0d,                   // bLength
        0x24,                   // CS_INTERFACE
        0x0f,                   // Ethernet Networking
        0x03,                   // iMACAddress
        0x00, 0x00, 0x00, 0x00, // bmEthernetStatistics
        0xea, 0x05,             // wMaxSegmentSize 1514
        0x00, 0x00,             // wNumberMCFilters
        0x00,                   // bNumberPowerFilters
    ];
    // RNDIS control interface extras (f_rndis.c): call management and ACM.
    #[rustfmt::skip]
    static CALL_MGMT: [u8; 5] = [
        0x05, 0x24, 0x01,
        0x00, // bmCapabilities
        0x01, // bDataInterface
    ];
    #[rustfmt::skip]
    static ACM: [u8; 4] = [0x04, 0x24, 0x02, 0x02 /* bmCapabilities: line coding */];
    // f_subset.c SAFE descriptors.
    #[rustfmt::skip]
    static MDLM: [u8; 21] = [
        0x15, 0x24, 0x12,
        0x00, 0x01, // bcdVersion 1.00
        0x5d, 0x34, 0xcf, 0x66, 0x11, 0x18, 0x11, 0xd6, // bGUID (SAFE)
        0xa2, 0x1a, 0x00, 0x01, 0x02, 0xca, 0x9a, 0x7f,
    ];
    #[rustfmt::skip]
    static MDLM_DETAIL: [u8; 6] = [
        0x06, 0x24, 0x13,
        0x00, // bGuidDescriptorType: SAFE
        0x00, // bmNetworkCapabilities
        0x00, // bmDataCapabilities: raw
    ];
    // f_ncm.c ncm_desc.
    #[rustfmt::skip]
    static NCM: [u8; 6] = [
        0x06, 0x24, 0x1a,
        0x00, 0x01, // bcdNcmVersion 1.00
        0x11,       // bmNetworkCapabilities: packet filter, CRC mode
    ];

    #[test]
    fn header_round_trip() {
        let v = CdcHeader::new_checked(&HEADER[..]).unwrap();
        assert_eq!(v.cdc_version(), 0x0110);
        let mut b = vec![0xa5; 5];
        let mut w = CdcHeader::new_unchecked(&mut b);
        w.set_length(5);
        w.set_descriptor_type(0x24);
        w.set_subtype(subtype::HEADER);
        w.set_cdc_version(0x0110);
        assert_eq!(&b[..], &HEADER[..]);
        let mut short = HEADER;
        short[0] = 4;
        assert_eq!(
            CdcHeader::new_checked(&short[..]),
            Err(ParseErrorKind::TooShort {
                descriptor: "CDC Header",
                b_length: 4,
                minimum: 5
            })
        );
    }

    #[test]
    fn union_round_trip() {
        let v = CdcUnion::new_checked(&UNION[..]).unwrap();
        assert_eq!(v.control_interface(), 0);
        assert_eq!(v.subordinate_interfaces(), &[1]);
        let mut b = vec![0xa5; 5];
        let mut w = CdcUnion::new_unchecked(&mut b);
        w.set_length(5);
        w.set_descriptor_type(0x24);
        w.set_subtype(subtype::UNION);
        w.set_control_interface(0);
        b[4] = 1;
        assert_eq!(&b[..], &UNION[..]);
        // Two subordinates.
        let two = [0x06u8, 0x24, 0x06, 0x00, 0x01, 0x02];
        assert_eq!(
            CdcUnion::new_checked(&two[..])
                .unwrap()
                .subordinate_interfaces(),
            &[1, 2]
        );
        // No subordinate at all.
        let mut short = UNION;
        short[0] = 4;
        assert_eq!(
            CdcUnion::new_checked(&short[..]),
            Err(ParseErrorKind::TooShort {
                descriptor: "CDC Union",
                b_length: 4,
                minimum: 5
            })
        );
        // Wrong subtype.
        assert_eq!(
            CdcUnion::new_checked(&HEADER[..]),
            Err(ParseErrorKind::WrongSubtype {
                expected: 0x06,
                found: 0x00
            })
        );
    }

    #[test]
    fn ethernet_round_trip() {
        let v = CdcEthernet::new_checked(&ETHERNET[..]).unwrap();
        assert_eq!(v.mac_address_index(), 3);
        assert_eq!(v.ethernet_statistics(), 0);
        assert_eq!(v.max_segment_size(), 1514);
        assert_eq!(v.number_mc_filters(), 0);
        assert_eq!(v.number_power_filters(), 0);
        let mut b = vec![0xa5; 13];
        let mut w = CdcEthernet::new_unchecked(&mut b);
        w.set_length(13);
        w.set_descriptor_type(0x24);
        w.set_subtype(subtype::ETHERNET);
        w.set_mac_address_index(3);
        w.set_ethernet_statistics(0);
        w.set_max_segment_size(1514);
        w.set_number_mc_filters(0);
        w.set_number_power_filters(0);
        assert_eq!(&b[..], &ETHERNET[..]);
        let mut short = ETHERNET;
        short[0] = 12;
        assert!(matches!(
            CdcEthernet::new_checked(&short[..12]),
            Err(ParseErrorKind::TooShort { minimum: 13, .. })
        ));
    }

    #[test]
    fn call_management_and_acm() {
        let v = CdcCallManagement::new_checked(&CALL_MGMT[..]).unwrap();
        assert_eq!((v.capabilities(), v.data_interface()), (0, 1));
        let mut b = vec![0xa5; 5];
        let mut w = CdcCallManagement::new_unchecked(&mut b);
        w.set_length(5);
        w.set_descriptor_type(0x24);
        w.set_subtype(subtype::CALL_MANAGEMENT);
        w.set_capabilities(0);
        w.set_data_interface(1);
        assert_eq!(&b[..], &CALL_MGMT[..]);
        let mut short = CALL_MGMT;
        short[0] = 4;
        assert!(CdcCallManagement::new_checked(&short[..]).is_err());

        let a = CdcAcm::new_checked(&ACM[..]).unwrap();
        assert_eq!(a.capabilities(), 2);
        let mut b = vec![0xa5; 4];
        let mut w = CdcAcm::new_unchecked(&mut b);
        w.set_length(4);
        w.set_descriptor_type(0x24);
        w.set_subtype(subtype::ACM);
        w.set_capabilities(2);
        assert_eq!(&b[..], &ACM[..]);
        let mut short = ACM;
        short[0] = 3;
        assert!(matches!(
            CdcAcm::new_checked(&short[..]),
            Err(ParseErrorKind::TooShort { minimum: 4, .. })
        ));
    }

    #[test]
    fn mdlm_round_trip() {
        let v = CdcMdlm::new_checked(&MDLM[..]).unwrap();
        assert_eq!(v.version(), 0x0100);
        assert_eq!(v.guid(), MDLM_GUID_SAFE);
        assert_eq!(
            format_guid(&v.guid()),
            "5d34cf66-1118-11d6-a21a-000102ca9a7f"
        );
        let mut b = vec![0xa5; 21];
        let mut w = CdcMdlm::new_unchecked(&mut b);
        w.set_length(21);
        w.set_descriptor_type(0x24);
        w.set_subtype(subtype::MDLM);
        w.set_version(0x0100);
        w.set_guid(MDLM_GUID_SAFE);
        assert_eq!(&b[..], &MDLM[..]);
        let mut short = MDLM;
        short[0] = 20;
        assert!(matches!(
            CdcMdlm::new_checked(&short[..]),
            Err(ParseErrorKind::TooShort { minimum: 21, .. })
        ));

        let d = CdcMdlmDetail::new_checked(&MDLM_DETAIL[..]).unwrap();
        assert_eq!(d.guid_descriptor_type(), 0);
        assert_eq!(d.detail_data(), &[0, 0]);
        let mut b = vec![0xa5; 6];
        let mut w = CdcMdlmDetail::new_unchecked(&mut b);
        w.set_length(6);
        w.set_descriptor_type(0x24);
        w.set_subtype(subtype::MDLM_DETAIL);
        w.set_guid_descriptor_type(0);
        b[4] = 0;
        b[5] = 0;
        assert_eq!(&b[..], &MDLM_DETAIL[..]);
        let mut short = MDLM_DETAIL;
        short[0] = 3;
        assert!(matches!(
            CdcMdlmDetail::new_checked(&short[..]),
            Err(ParseErrorKind::TooShort { minimum: 4, .. })
        ));
    }

    #[test]
    fn ncm_round_trip() {
        let v = CdcNcm::new_checked(&NCM[..]).unwrap();
        assert_eq!(v.ncm_version(), 0x0100);
        assert_eq!(
            v.network_capabilities(),
            ncm_capability::PACKET_FILTER | ncm_capability::CRC_MODE
        );
        let mut b = vec![0xa5; 6];
        let mut w = CdcNcm::new_unchecked(&mut b);
        w.set_length(6);
        w.set_descriptor_type(0x24);
        w.set_subtype(subtype::NCM);
        w.set_ncm_version(0x0100);
        w.set_network_capabilities(0x11);
        assert_eq!(&b[..], &NCM[..]);
        let mut short = NCM;
        short[0] = 5;
        assert!(matches!(
            CdcNcm::new_checked(&short[..]),
            Err(ParseErrorKind::TooShort { minimum: 6, .. })
        ));
    }

    #[test]
    fn decode_dispatches_by_subtype() {
        assert_eq!(
            CdcDescriptor::decode(7, &UNION),
            Ok(CdcDescriptor::Union {
                offset: 7,
                control_interface: 0,
                subordinate_interfaces: vec![1]
            })
        );
        assert!(matches!(
            CdcDescriptor::decode(0, &NCM),
            Ok(CdcDescriptor::Ncm {
                ncm_version: 0x0100,
                network_capabilities: 0x11,
                ..
            })
        ));
        let country = [0x06u8, 0x24, 0x07, 0x01, 0x55, 0x53];
        assert_eq!(
            CdcDescriptor::decode(3, &country),
            Ok(CdcDescriptor::Other {
                offset: 3,
                subtype: 0x07,
                bytes: country.to_vec()
            })
        );
        assert_eq!(
            CdcDescriptor::decode(0, &[0x02, 0x24]),
            Err(ParseErrorKind::TooShort {
                descriptor: "CDC functional",
                b_length: 2,
                minimum: 3
            })
        );
    }
}
