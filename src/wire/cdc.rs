//! CDC and CDC-NCM control-plane codes: class request codes, packet-filter bits,
//! notification codes and NTB format selectors.
//!
//! Sources: USB CDC 1.2 §6.2 (requests) and §6.3 (notifications), USB CDC ECM 1.2 §6.2.4
//! (`SET_ETHERNET_PACKET_FILTER`), USB CDC NCM 1.0 §6.2 (NCM requests). Codes we do not use
//! are listed anyway so the table reads like the spec.

/// `bmRequestType` of a class request to an interface, host to device (OUT).
pub const REQUEST_TYPE_CLASS_INTERFACE_OUT: u8 = 0x21;
/// `bmRequestType` of a class request to an interface, device to host (IN); also the
/// `bmRequestType` byte that starts every CDC notification.
pub const REQUEST_TYPE_CLASS_INTERFACE_IN: u8 = 0xA1;

/// Class-specific request codes (`bRequest`).
pub mod request {
    /// CDC 1.2 §6.2.1: send an encapsulated command (RNDIS, MBIM, ...).
    pub const SEND_ENCAPSULATED_COMMAND: u8 = 0x00;
    /// CDC 1.2 §6.2.2: read the response to an encapsulated command.
    pub const GET_ENCAPSULATED_RESPONSE: u8 = 0x01;
    /// ECM 1.2 §6.2.4: set the Ethernet packet filter (`wValue` = [`super::packet_filter`] bits).
    pub const SET_ETHERNET_PACKET_FILTER: u8 = 0x43;
    /// NCM 1.0 §6.2.1: read the NTB parameter structure (28 bytes).
    pub const GET_NTB_PARAMETERS: u8 = 0x80;
    /// NCM 1.0 §6.2.2: read the function's current EUI-48 address.
    pub const GET_NET_ADDRESS: u8 = 0x81;
    /// NCM 1.0 §6.2.3: set the function's EUI-48 address.
    pub const SET_NET_ADDRESS: u8 = 0x82;
    /// NCM 1.0 §6.2.4: read the NTB format in use (0 = NTB-16, 1 = NTB-32).
    pub const GET_NTB_FORMAT: u8 = 0x83;
    /// NCM 1.0 §6.2.5: select the NTB format (`wValue` = [`super::NTB_FORMAT_16`] or
    /// [`super::NTB_FORMAT_32`]).
    pub const SET_NTB_FORMAT: u8 = 0x84;
    /// NCM 1.0 §6.2.6: read the IN NTB size in use.
    pub const GET_NTB_INPUT_SIZE: u8 = 0x85;
    /// NCM 1.0 §6.2.7: set the largest IN NTB the function may send (4- or 8-byte payload,
    /// see [`crate::wire::NtbInputSize`]).
    pub const SET_NTB_INPUT_SIZE: u8 = 0x86;
    /// NCM 1.0 §6.2.8: read the maximum datagram size.
    pub const GET_MAX_DATAGRAM_SIZE: u8 = 0x87;
    /// NCM 1.0 §6.2.9: set the maximum datagram size.
    pub const SET_MAX_DATAGRAM_SIZE: u8 = 0x88;
    /// NCM 1.0 §6.2.10: read the CRC mode.
    pub const GET_CRC_MODE: u8 = 0x89;
    /// NCM 1.0 §6.2.11: set the CRC mode (0 = no CRC, 1 = CRC appended to each datagram).
    pub const SET_CRC_MODE: u8 = 0x8A;
}

/// Bits of the `wValue` of `SET_ETHERNET_PACKET_FILTER` (ECM 1.2 Table 8).
pub mod packet_filter {
    /// Every frame on the wire.
    pub const PROMISCUOUS: u16 = 0x01;
    /// Every multicast frame.
    pub const ALL_MULTICAST: u16 = 0x02;
    /// Frames addressed to this function's address.
    pub const DIRECTED: u16 = 0x04;
    /// Broadcast frames.
    pub const BROADCAST: u16 = 0x08;
    /// Multicast frames matching the multicast filter list.
    pub const MULTICAST: u16 = 0x10;
}

/// Notification codes (`bNotificationCode`, CDC 1.2 Table 20).
pub mod notification {
    /// Link up or down (`wValue` 1 or 0, no data).
    pub const NETWORK_CONNECTION: u8 = 0x00;
    /// A response to an encapsulated command is ready (no data).
    pub const RESPONSE_AVAILABLE: u8 = 0x01;
    /// Serial state (ACM; not used by network functions).
    pub const SERIAL_STATE: u8 = 0x20;
    /// Link speed changed; 8 data bytes: `DLBitRRate` then `ULBitRate`, both `u32`.
    pub const CONNECTION_SPEED_CHANGE: u8 = 0x2A;
}

/// `wValue` of `SET_NTB_FORMAT` selecting NTB-16.
pub const NTB_FORMAT_16: u16 = 0x0000;
/// `wValue` of `SET_NTB_FORMAT` selecting NTB-32.
pub const NTB_FORMAT_32: u16 = 0x0001;

/// `bmNtbFormatsSupported` bit: NTB-16 (the spec requires every function to set it).
pub const NTB_FORMATS_16: u16 = 0x0001;
/// `bmNtbFormatsSupported` bit: NTB-32.
pub const NTB_FORMATS_32: u16 = 0x0002;

/// `bmNetworkCapabilities` bit of the NCM functional descriptor: the function accepts the
/// 8-byte form of `SET_NTB_INPUT_SIZE` (with `wNtbInMaxDatagrams`). NCM 1.0 Table 5-2, bit D5.
pub const NCM_CAP_NTB_INPUT_SIZE_8: u8 = 0x20;
