//! REMOTE_NDIS messages: the control messages carried by SEND_ENCAPSULATED_COMMAND /
//! GET_ENCAPSULATED_RESPONSE, and the `REMOTE_NDIS_PACKET_MSG` framing of the bulk data.
//!
//! Every message starts with `MessageType` and `MessageLength` (both le32). Offsets inside a
//! message (`InformationBufferOffset`, `StatusBufferOffset`, `DataOffset`) count from the byte
//! after `MessageLength` (offset 8), which is where the kernel's `rndis_host` and the RNDIS
//! specification put them.
//!
//! Device bytes are hostile: `rndis_host` has had out-of-bounds reads from lengths and offsets
//! it trusted. Here [`MessageView::check_len`] bounds `MessageLength` by the bytes received,
//! and each typed view's `check_len` bounds its buffers by `MessageLength`, all with checked
//! arithmetic; [`Message::parse`] and [`Packets`] only build views with `new_checked`, so no
//! input makes them panic (the `rndis` fuzz target checks that).

use super::{get_u32, set_u32};

/// `MessageType` values.
pub mod msg {
    /// A data packet (bulk endpoints only).
    pub const PACKET: u32 = 0x0000_0001;
    /// Host → device: initialize.
    pub const INITIALIZE: u32 = 0x0000_0002;
    /// Host → device: halt (no reply).
    pub const HALT: u32 = 0x0000_0003;
    /// Host → device: query an OID.
    pub const QUERY: u32 = 0x0000_0004;
    /// Host → device: set an OID.
    pub const SET: u32 = 0x0000_0005;
    /// Host → device: soft reset.
    pub const RESET: u32 = 0x0000_0006;
    /// Device → host: status change (media connect/disconnect, ...).
    pub const INDICATE_STATUS: u32 = 0x0000_0007;
    /// Either way: are you alive?
    pub const KEEPALIVE: u32 = 0x0000_0008;
    /// Bit set in the reply to a request.
    pub const COMPLETION: u32 = 0x8000_0000;
    /// Reply to INITIALIZE.
    pub const INITIALIZE_CMPLT: u32 = INITIALIZE | COMPLETION;
    /// Reply to QUERY.
    pub const QUERY_CMPLT: u32 = QUERY | COMPLETION;
    /// Reply to SET.
    pub const SET_CMPLT: u32 = SET | COMPLETION;
    /// Reply to RESET.
    pub const RESET_CMPLT: u32 = RESET | COMPLETION;
    /// Reply to KEEPALIVE.
    pub const KEEPALIVE_CMPLT: u32 = KEEPALIVE | COMPLETION;
}

/// `Status` values.
pub mod status {
    /// Success.
    pub const SUCCESS: u32 = 0x0000_0000;
    /// Failure.
    pub const FAILURE: u32 = 0xc000_0001;
    /// The OID is not supported.
    pub const NOT_SUPPORTED: u32 = 0xc000_00bb;
    /// INDICATE_STATUS: the medium is connected.
    pub const MEDIA_CONNECT: u32 = 0x4001_000b;
    /// INDICATE_STATUS: the medium is disconnected.
    pub const MEDIA_DISCONNECT: u32 = 0x4001_000c;
}

/// The NDIS object identifiers usbnetd queries or sets.
pub mod oid {
    /// Largest network packet, Ethernet header not included (so: the MTU).
    pub const GEN_MAXIMUM_FRAME_SIZE: u32 = 0x0001_0106;
    /// The link's bit rate, in units of 100 bit/s (le32).
    pub const GEN_LINK_SPEED: u32 = 0x0001_0107;
    /// The packet filter (`NDIS_PACKET_TYPE_*` bits, le32).
    pub const GEN_CURRENT_PACKET_FILTER: u32 = 0x0001_010e;
    /// Media state: 0 connected, 1 disconnected (le32).
    pub const GEN_MEDIA_CONNECT_STATUS: u32 = 0x0001_0114;
    /// The burnt-in MAC address (6 bytes).
    pub const PERMANENT_ADDRESS_802_3: u32 = 0x0101_0101;
}

/// `NDIS_PACKET_TYPE_*` bits for [`oid::GEN_CURRENT_PACKET_FILTER`].
pub mod packet_type {
    /// Frames to our address.
    pub const DIRECTED: u32 = 0x0000_0001;
    /// Multicast frames to the programmed list.
    pub const MULTICAST: u32 = 0x0000_0002;
    /// All multicast frames.
    pub const ALL_MULTICAST: u32 = 0x0000_0004;
    /// Broadcast frames.
    pub const BROADCAST: u32 = 0x0000_0008;
    /// Everything.
    pub const PROMISCUOUS: u32 = 0x0000_0020;
}

/// The 802.3 medium in INITIALIZE_CMPLT's `Medium`.
pub const MEDIUM_802_3: u32 = 0;

/// The RESPONSE_AVAILABLE notification on the interrupt endpoint (le32 1, then reserved).
pub const NOTIFY_RESPONSE_AVAILABLE: u32 = 0x0000_0001;

/// Offsets inside a message count from here (the byte after `MessageLength`).
pub const OFFSET_BASE: usize = 8;

/// Byte ranges of the fields.
pub mod field {
    use crate::wire::Field;
    /// `MessageType`.
    pub const TYPE: Field = 0..4;
    /// `MessageLength`.
    pub const LENGTH: Field = 4..8;
    /// `RequestId` (every control message but INDICATE_STATUS and RESET).
    pub const REQUEST_ID: Field = 8..12;
    /// `Status` of a completion (after `RequestId`).
    pub const STATUS: Field = 12..16;

    /// INITIALIZE: `MajorVersion`.
    pub const INIT_MAJOR: Field = 12..16;
    /// INITIALIZE: `MinorVersion`.
    pub const INIT_MINOR: Field = 16..20;
    /// INITIALIZE: `MaxTransferSize` (the largest transfer the host takes).
    pub const INIT_MAX_TRANSFER: Field = 20..24;

    /// INITIALIZE_CMPLT: `MajorVersion`.
    pub const INITC_MAJOR: Field = 16..20;
    /// INITIALIZE_CMPLT: `MinorVersion`.
    pub const INITC_MINOR: Field = 20..24;
    /// INITIALIZE_CMPLT: `DeviceFlags`.
    pub const INITC_DEVICE_FLAGS: Field = 24..28;
    /// INITIALIZE_CMPLT: `Medium`.
    pub const INITC_MEDIUM: Field = 28..32;
    /// INITIALIZE_CMPLT: `MaxPacketsPerTransfer` (host → device).
    pub const INITC_MAX_PACKETS: Field = 32..36;
    /// INITIALIZE_CMPLT: `MaxTransferSize` (the largest transfer the device takes).
    pub const INITC_MAX_TRANSFER: Field = 36..40;
    /// INITIALIZE_CMPLT: `PacketAlignmentFactor` (a power of two exponent).
    pub const INITC_ALIGNMENT: Field = 40..44;
    /// INITIALIZE_CMPLT: `AFListOffset` (reserved).
    pub const INITC_AF_LIST_OFFSET: Field = 44..48;
    /// INITIALIZE_CMPLT: `AFListSize` (reserved).
    pub const INITC_AF_LIST_SIZE: Field = 48..52;

    /// QUERY / SET: `Oid`.
    pub const REQ_OID: Field = 12..16;
    /// QUERY / SET: `InformationBufferLength`.
    pub const REQ_INFO_LEN: Field = 16..20;
    /// QUERY / SET: `InformationBufferOffset`.
    pub const REQ_INFO_OFFSET: Field = 20..24;
    /// QUERY / SET: `DeviceVcHandle` (reserved).
    pub const REQ_VC_HANDLE: Field = 24..28;

    /// QUERY_CMPLT: `InformationBufferLength`.
    pub const QC_INFO_LEN: Field = 16..20;
    /// QUERY_CMPLT: `InformationBufferOffset`.
    pub const QC_INFO_OFFSET: Field = 20..24;

    /// RESET_CMPLT: `Status`.
    pub const RESETC_STATUS: Field = 8..12;
    /// RESET_CMPLT: `AddressingReset`.
    pub const RESETC_ADDRESSING_RESET: Field = 12..16;

    /// INDICATE_STATUS: `Status`.
    pub const IND_STATUS: Field = 8..12;
    /// INDICATE_STATUS: `StatusBufferLength`.
    pub const IND_BUF_LEN: Field = 12..16;
    /// INDICATE_STATUS: `StatusBufferOffset`.
    pub const IND_BUF_OFFSET: Field = 16..20;

    /// PACKET_MSG: `DataOffset`.
    pub const PKT_DATA_OFFSET: Field = 8..12;
    /// PACKET_MSG: `DataLength`.
    pub const PKT_DATA_LEN: Field = 12..16;
    /// PACKET_MSG: `OOBDataOffset`.
    pub const PKT_OOB_OFFSET: Field = 16..20;
    /// PACKET_MSG: `OOBDataLength`.
    pub const PKT_OOB_LEN: Field = 20..24;
    /// PACKET_MSG: `NumOOBDataElements`.
    pub const PKT_OOB_NUM: Field = 24..28;
    /// PACKET_MSG: `PerPacketInfoOffset`.
    pub const PKT_PPI_OFFSET: Field = 28..32;
    /// PACKET_MSG: `PerPacketInfoLength`.
    pub const PKT_PPI_LEN: Field = 32..36;
    /// PACKET_MSG: `VcHandle`.
    pub const PKT_VC_HANDLE: Field = 36..40;
    /// PACKET_MSG: `Reserved`.
    pub const PKT_RESERVED: Field = 40..44;
}

/// Length of the common header (`MessageType`, `MessageLength`).
pub const HEADER_LEN: usize = field::LENGTH.end;
/// Length of the PACKET_MSG header; the frame follows at [`PACKET_DATA_OFFSET`].
pub const PACKET_HEADER_LEN: usize = field::PKT_RESERVED.end;
/// The `DataOffset` usbnetd writes: the frame right after the header.
pub const PACKET_DATA_OFFSET: u32 = (PACKET_HEADER_LEN - OFFSET_BASE) as u32;
/// Length of INITIALIZE.
pub const INITIALIZE_LEN: usize = field::INIT_MAX_TRANSFER.end;
/// Length of INITIALIZE_CMPLT.
pub const INITIALIZE_CMPLT_LEN: usize = field::INITC_AF_LIST_SIZE.end;
/// Length of the QUERY / SET header (the information buffer follows).
pub const REQUEST_HEADER_LEN: usize = field::REQ_VC_HANDLE.end;
/// Length of the QUERY_CMPLT header (the information buffer follows).
pub const QUERY_CMPLT_HEADER_LEN: usize = field::QC_INFO_OFFSET.end;
/// Length of INDICATE_STATUS's header (the status buffer follows).
pub const INDICATE_HEADER_LEN: usize = field::IND_BUF_OFFSET.end;
/// Length of HALT, KEEPALIVE (type, length, request id).
pub const REQUEST_ID_MSG_LEN: usize = field::REQUEST_ID.end;
/// Length of SET_CMPLT, KEEPALIVE_CMPLT (type, length, request id, status).
pub const STATUS_MSG_LEN: usize = field::STATUS.end;
/// Length of RESET_CMPLT.
pub const RESET_CMPLT_LEN: usize = field::RESETC_ADDRESSING_RESET.end;

/// Why a message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RndisError {
    /// Fewer bytes than the message's fixed part.
    #[error("RNDIS message is {len} bytes, its header needs {need}")]
    Short {
        /// Bytes available (received, or `MessageLength` when that is smaller).
        len: usize,
        /// Bytes the fixed part needs.
        need: usize,
    },
    /// `MessageLength` is larger than the bytes received, or smaller than a header.
    #[error("RNDIS MessageLength {declared} does not fit the {received} bytes received")]
    BadLength {
        /// `MessageLength`.
        declared: u32,
        /// Bytes received.
        received: usize,
    },
    /// A buffer (`what`) at `offset` + `len` (from byte 8) lies outside the message, overlaps
    /// its header, or overflows.
    #[error(
        "RNDIS {what} at offset {offset}, length {len} lies outside the {msg_len}-byte message"
    )]
    BadBuffer {
        /// Which buffer.
        what: &'static str,
        /// The offset field (from byte 8).
        offset: u32,
        /// The length field.
        len: u32,
        /// `MessageLength`.
        msg_len: usize,
    },
    /// A message of another type where `expected` was wanted.
    #[error("RNDIS message type {found:#010x} where {expected:#010x} was expected")]
    WrongType {
        /// Type found.
        found: u32,
        /// Type expected.
        expected: u32,
    },
    /// A message type this module does not know.
    #[error("unknown RNDIS message type {0:#010x}")]
    UnknownType(u32),
}

fn len_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A checked view over one message: `MessageLength` is at least the common header and at
/// most the bytes received. Accessors see only the message's own bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MessageView<T> {
    /// Wraps `buffer` without checking; accessors may panic unless `check_len` succeeded.
    pub const fn new_unchecked(buffer: T) -> Self {
        MessageView { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len). Use this for device bytes.
    pub fn new_checked(buffer: T) -> Result<Self, RndisError> {
        let v = Self::new_unchecked(buffer);
        v.check_len()?;
        Ok(v)
    }

    /// The 8-byte header is there and `MessageLength` lies in `8..=received`. Bytes after
    /// `MessageLength` (padding, the next message) are not part of this message.
    pub fn check_len(&self) -> Result<(), RndisError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(RndisError::Short {
                len: b.len(),
                need: HEADER_LEN,
            });
        }
        let declared = get_u32(b, field::LENGTH);
        match usize::try_from(declared) {
            Ok(n) if (HEADER_LEN..=b.len()).contains(&n) => Ok(()),
            _ => Err(RndisError::BadLength {
                declared,
                received: b.len(),
            }),
        }
    }

    /// `MessageType`.
    pub fn message_type(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::TYPE)
    }

    /// `MessageLength`.
    pub fn message_length(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::LENGTH)
    }

    /// The message's bytes (`MessageLength` of them).
    pub fn bytes(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        // check_len: HEADER_LEN <= MessageLength <= b.len().
        &b[..self.message_length() as usize]
    }

    /// The message's bytes, `Short` when fewer than `need`.
    fn fixed(&self, need: usize) -> Result<&[u8], RndisError> {
        let b = self.bytes();
        if b.len() < need {
            Err(RndisError::Short { len: b.len(), need })
        } else {
            Ok(b)
        }
    }
}

/// The bytes of a buffer at `offset` (from byte 8) and `len` inside `msg`, which must not
/// start before `header_len`. A zero `len` is an empty buffer whatever the offset says.
fn sub_buffer<'a>(
    msg: &'a [u8],
    what: &'static str,
    header_len: usize,
    offset: u32,
    len: u32,
) -> Result<&'a [u8], RndisError> {
    if len == 0 {
        return Ok(&[]);
    }
    let bad = RndisError::BadBuffer {
        what,
        offset,
        len,
        msg_len: msg.len(),
    };
    let start = usize::try_from(offset)
        .ok()
        .and_then(|o| o.checked_add(OFFSET_BASE))
        .ok_or(bad)?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| start.checked_add(l))
        .ok_or(bad)?;
    if start < header_len || end > msg.len() {
        return Err(bad);
    }
    Ok(&msg[start..end])
}

/// One RNDIS message, parsed (device → host and host → device), or built for emitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// REMOTE_NDIS_INITIALIZE_MSG.
    Initialize {
        /// RequestId.
        request_id: u32,
        /// MajorVersion (1).
        major: u32,
        /// MinorVersion (0).
        minor: u32,
        /// The largest transfer the host accepts.
        max_transfer_size: u32,
    },
    /// REMOTE_NDIS_INITIALIZE_CMPLT.
    InitializeCmplt {
        /// RequestId.
        request_id: u32,
        /// Status.
        status: u32,
        /// MajorVersion.
        major: u32,
        /// MinorVersion.
        minor: u32,
        /// DeviceFlags (1: connectionless).
        device_flags: u32,
        /// Medium (0: 802.3).
        medium: u32,
        /// Most PACKET_MSGs the device takes in one transfer.
        max_packets_per_transfer: u32,
        /// The largest transfer the device takes.
        max_transfer_size: u32,
        /// Each PACKET_MSG in a transfer starts at a multiple of 2^this.
        packet_alignment_factor: u32,
    },
    /// REMOTE_NDIS_HALT_MSG.
    Halt {
        /// RequestId.
        request_id: u32,
    },
    /// REMOTE_NDIS_QUERY_MSG.
    Query {
        /// RequestId.
        request_id: u32,
        /// The OID.
        oid: u32,
        /// Input data (usually empty).
        info: &'a [u8],
    },
    /// REMOTE_NDIS_QUERY_CMPLT.
    QueryCmplt {
        /// RequestId.
        request_id: u32,
        /// Status.
        status: u32,
        /// The OID's value.
        info: &'a [u8],
    },
    /// REMOTE_NDIS_SET_MSG.
    Set {
        /// RequestId.
        request_id: u32,
        /// The OID.
        oid: u32,
        /// The value.
        info: &'a [u8],
    },
    /// REMOTE_NDIS_SET_CMPLT.
    SetCmplt {
        /// RequestId.
        request_id: u32,
        /// Status.
        status: u32,
    },
    /// REMOTE_NDIS_RESET_MSG.
    Reset,
    /// REMOTE_NDIS_RESET_CMPLT.
    ResetCmplt {
        /// Status.
        status: u32,
        /// Whether the host must re-send its multicast list.
        addressing_reset: u32,
    },
    /// REMOTE_NDIS_INDICATE_STATUS_MSG.
    IndicateStatus {
        /// The status code ([`status::MEDIA_CONNECT`], ...).
        status: u32,
        /// Status details.
        buffer: &'a [u8],
    },
    /// REMOTE_NDIS_KEEPALIVE_MSG.
    Keepalive {
        /// RequestId.
        request_id: u32,
    },
    /// REMOTE_NDIS_KEEPALIVE_CMPLT.
    KeepaliveCmplt {
        /// RequestId.
        request_id: u32,
        /// Status.
        status: u32,
    },
    /// REMOTE_NDIS_PACKET_MSG (the frame only; out-of-band data is ignored).
    Packet {
        /// The Ethernet frame.
        data: &'a [u8],
    },
}

impl<'a> Message<'a> {
    /// Parse the message at the start of `bytes` (anything after `MessageLength` is ignored).
    pub fn parse(bytes: &'a [u8]) -> Result<Message<'a>, RndisError> {
        let view = MessageView::new_checked(bytes)?;
        let ty = view.message_type();
        // The message's own bytes: `bytes` cut to MessageLength.
        let b: &'a [u8] = &bytes[..view.bytes().len()];
        let fixed = |need: usize| -> Result<&'a [u8], RndisError> {
            if b.len() < need {
                Err(RndisError::Short { len: b.len(), need })
            } else {
                Ok(b)
            }
        };
        Ok(match ty {
            msg::PACKET => Message::Packet {
                data: PacketView::new_checked(b)?.into_data(),
            },
            msg::INITIALIZE => {
                let b = fixed(INITIALIZE_LEN)?;
                Message::Initialize {
                    request_id: get_u32(b, field::REQUEST_ID),
                    major: get_u32(b, field::INIT_MAJOR),
                    minor: get_u32(b, field::INIT_MINOR),
                    max_transfer_size: get_u32(b, field::INIT_MAX_TRANSFER),
                }
            }
            msg::INITIALIZE_CMPLT => {
                let b = fixed(INITIALIZE_CMPLT_LEN)?;
                Message::InitializeCmplt {
                    request_id: get_u32(b, field::REQUEST_ID),
                    status: get_u32(b, field::STATUS),
                    major: get_u32(b, field::INITC_MAJOR),
                    minor: get_u32(b, field::INITC_MINOR),
                    device_flags: get_u32(b, field::INITC_DEVICE_FLAGS),
                    medium: get_u32(b, field::INITC_MEDIUM),
                    max_packets_per_transfer: get_u32(b, field::INITC_MAX_PACKETS),
                    max_transfer_size: get_u32(b, field::INITC_MAX_TRANSFER),
                    packet_alignment_factor: get_u32(b, field::INITC_ALIGNMENT),
                }
            }
            msg::HALT | msg::KEEPALIVE => {
                let b = fixed(REQUEST_ID_MSG_LEN)?;
                let request_id = get_u32(b, field::REQUEST_ID);
                if ty == msg::HALT {
                    Message::Halt { request_id }
                } else {
                    Message::Keepalive { request_id }
                }
            }
            msg::QUERY | msg::SET => {
                let b = fixed(REQUEST_HEADER_LEN)?;
                let info = sub_buffer(
                    b,
                    "information buffer",
                    REQUEST_HEADER_LEN,
                    get_u32(b, field::REQ_INFO_OFFSET),
                    get_u32(b, field::REQ_INFO_LEN),
                )?;
                let (request_id, oid) = (get_u32(b, field::REQUEST_ID), get_u32(b, field::REQ_OID));
                if ty == msg::QUERY {
                    Message::Query {
                        request_id,
                        oid,
                        info,
                    }
                } else {
                    Message::Set {
                        request_id,
                        oid,
                        info,
                    }
                }
            }
            msg::QUERY_CMPLT => {
                let b = fixed(QUERY_CMPLT_HEADER_LEN)?;
                Message::QueryCmplt {
                    request_id: get_u32(b, field::REQUEST_ID),
                    status: get_u32(b, field::STATUS),
                    info: sub_buffer(
                        b,
                        "information buffer",
                        QUERY_CMPLT_HEADER_LEN,
                        get_u32(b, field::QC_INFO_OFFSET),
                        get_u32(b, field::QC_INFO_LEN),
                    )?,
                }
            }
            msg::SET_CMPLT | msg::KEEPALIVE_CMPLT => {
                let b = fixed(STATUS_MSG_LEN)?;
                let (request_id, status) =
                    (get_u32(b, field::REQUEST_ID), get_u32(b, field::STATUS));
                if ty == msg::SET_CMPLT {
                    Message::SetCmplt { request_id, status }
                } else {
                    Message::KeepaliveCmplt { request_id, status }
                }
            }
            msg::RESET => Message::Reset,
            msg::RESET_CMPLT => {
                let b = fixed(RESET_CMPLT_LEN)?;
                Message::ResetCmplt {
                    status: get_u32(b, field::RESETC_STATUS),
                    addressing_reset: get_u32(b, field::RESETC_ADDRESSING_RESET),
                }
            }
            msg::INDICATE_STATUS => {
                let b = fixed(INDICATE_HEADER_LEN)?;
                Message::IndicateStatus {
                    status: get_u32(b, field::IND_STATUS),
                    buffer: sub_buffer(
                        b,
                        "status buffer",
                        INDICATE_HEADER_LEN,
                        get_u32(b, field::IND_BUF_OFFSET),
                        get_u32(b, field::IND_BUF_LEN),
                    )?,
                }
            }
            other => return Err(RndisError::UnknownType(other)),
        })
    }

    /// `MessageType` of this message.
    pub fn message_type(&self) -> u32 {
        match self {
            Message::Initialize { .. } => msg::INITIALIZE,
            Message::InitializeCmplt { .. } => msg::INITIALIZE_CMPLT,
            Message::Halt { .. } => msg::HALT,
            Message::Query { .. } => msg::QUERY,
            Message::QueryCmplt { .. } => msg::QUERY_CMPLT,
            Message::Set { .. } => msg::SET,
            Message::SetCmplt { .. } => msg::SET_CMPLT,
            Message::Reset => msg::RESET,
            Message::ResetCmplt { .. } => msg::RESET_CMPLT,
            Message::IndicateStatus { .. } => msg::INDICATE_STATUS,
            Message::Keepalive { .. } => msg::KEEPALIVE,
            Message::KeepaliveCmplt { .. } => msg::KEEPALIVE_CMPLT,
            Message::Packet { .. } => msg::PACKET,
        }
    }

    /// `RequestId`, for the messages that carry one.
    pub fn request_id(&self) -> Option<u32> {
        match *self {
            Message::Initialize { request_id, .. }
            | Message::InitializeCmplt { request_id, .. }
            | Message::Halt { request_id }
            | Message::Query { request_id, .. }
            | Message::QueryCmplt { request_id, .. }
            | Message::Set { request_id, .. }
            | Message::SetCmplt { request_id, .. }
            | Message::Keepalive { request_id }
            | Message::KeepaliveCmplt { request_id, .. } => Some(request_id),
            _ => None,
        }
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Message::Initialize { .. } => INITIALIZE_LEN,
            Message::InitializeCmplt { .. } => INITIALIZE_CMPLT_LEN,
            Message::Halt { .. } | Message::Keepalive { .. } | Message::Reset => REQUEST_ID_MSG_LEN,
            Message::Query { info, .. } | Message::Set { info, .. } => {
                REQUEST_HEADER_LEN + info.len()
            }
            Message::QueryCmplt { info, .. } => QUERY_CMPLT_HEADER_LEN + info.len(),
            Message::SetCmplt { .. } | Message::KeepaliveCmplt { .. } => STATUS_MSG_LEN,
            Message::ResetCmplt { .. } => RESET_CMPLT_LEN,
            Message::IndicateStatus { buffer, .. } => INDICATE_HEADER_LEN + buffer.len(),
            Message::Packet { data } => PACKET_HEADER_LEN + data.len(),
        }
    }

    /// Write the message into `out[..self.buffer_len()]`. Panics if `out` is shorter.
    pub fn emit(&self, out: &mut [u8]) {
        let n = self.buffer_len();
        let b = &mut out[..n];
        b.fill(0);
        set_u32(b, field::TYPE, self.message_type());
        set_u32(b, field::LENGTH, len_of(n));
        if let Some(id) = self.request_id() {
            set_u32(b, field::REQUEST_ID, id);
        }
        match *self {
            Message::Initialize {
                major,
                minor,
                max_transfer_size,
                ..
            } => {
                set_u32(b, field::INIT_MAJOR, major);
                set_u32(b, field::INIT_MINOR, minor);
                set_u32(b, field::INIT_MAX_TRANSFER, max_transfer_size);
            }
            Message::InitializeCmplt {
                status,
                major,
                minor,
                device_flags,
                medium,
                max_packets_per_transfer,
                max_transfer_size,
                packet_alignment_factor,
                ..
            } => {
                set_u32(b, field::STATUS, status);
                set_u32(b, field::INITC_MAJOR, major);
                set_u32(b, field::INITC_MINOR, minor);
                set_u32(b, field::INITC_DEVICE_FLAGS, device_flags);
                set_u32(b, field::INITC_MEDIUM, medium);
                set_u32(b, field::INITC_MAX_PACKETS, max_packets_per_transfer);
                set_u32(b, field::INITC_MAX_TRANSFER, max_transfer_size);
                set_u32(b, field::INITC_ALIGNMENT, packet_alignment_factor);
            }
            Message::Query { oid, info, .. } | Message::Set { oid, info, .. } => {
                set_u32(b, field::REQ_OID, oid);
                set_u32(b, field::REQ_INFO_LEN, len_of(info.len()));
                if !info.is_empty() {
                    set_u32(
                        b,
                        field::REQ_INFO_OFFSET,
                        len_of(REQUEST_HEADER_LEN - OFFSET_BASE),
                    );
                }
                b[REQUEST_HEADER_LEN..].copy_from_slice(info);
            }
            Message::QueryCmplt { status, info, .. } => {
                set_u32(b, field::STATUS, status);
                set_u32(b, field::QC_INFO_LEN, len_of(info.len()));
                if !info.is_empty() {
                    set_u32(
                        b,
                        field::QC_INFO_OFFSET,
                        len_of(QUERY_CMPLT_HEADER_LEN - OFFSET_BASE),
                    );
                }
                b[QUERY_CMPLT_HEADER_LEN..].copy_from_slice(info);
            }
            Message::SetCmplt { status, .. } | Message::KeepaliveCmplt { status, .. } => {
                set_u32(b, field::STATUS, status);
            }
            Message::ResetCmplt {
                status,
                addressing_reset,
            } => {
                set_u32(b, field::RESETC_STATUS, status);
                set_u32(b, field::RESETC_ADDRESSING_RESET, addressing_reset);
            }
            Message::IndicateStatus { status, buffer } => {
                set_u32(b, field::IND_STATUS, status);
                set_u32(b, field::IND_BUF_LEN, len_of(buffer.len()));
                if !buffer.is_empty() {
                    set_u32(
                        b,
                        field::IND_BUF_OFFSET,
                        len_of(INDICATE_HEADER_LEN - OFFSET_BASE),
                    );
                }
                b[INDICATE_HEADER_LEN..].copy_from_slice(buffer);
            }
            Message::Packet { data } => {
                emit_packet_header(b, data.len());
                b[PACKET_HEADER_LEN..].copy_from_slice(data);
            }
            Message::Halt { .. } | Message::Keepalive { .. } | Message::Reset => {}
        }
    }

    /// The message as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// Write a PACKET_MSG header for a `data_len`-byte frame that follows it directly into
/// `out[..PACKET_HEADER_LEN]`. Panics if `out` is shorter.
pub fn emit_packet_header(out: &mut [u8], data_len: usize) {
    let h = &mut out[..PACKET_HEADER_LEN];
    h.fill(0);
    set_u32(h, field::TYPE, msg::PACKET);
    set_u32(h, field::LENGTH, len_of(PACKET_HEADER_LEN + data_len));
    set_u32(h, field::PKT_DATA_OFFSET, PACKET_DATA_OFFSET);
    set_u32(h, field::PKT_DATA_LEN, len_of(data_len));
}

/// A checked view over one PACKET_MSG: the type is PACKET, the 44-byte header is inside
/// `MessageLength`, and `DataOffset`/`DataLength` lie inside the message after the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> PacketView<T> {
    /// Wraps `buffer` without checking; accessors may panic unless `check_len` succeeded.
    pub const fn new_unchecked(buffer: T) -> Self {
        PacketView { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len). Use this for device bytes.
    pub fn new_checked(buffer: T) -> Result<Self, RndisError> {
        let v = Self::new_unchecked(buffer);
        v.check_len()?;
        Ok(v)
    }

    /// See the type's doc.
    pub fn check_len(&self) -> Result<(), RndisError> {
        let m = MessageView::new_checked(self.buffer.as_ref())?;
        if m.message_type() != msg::PACKET {
            return Err(RndisError::WrongType {
                found: m.message_type(),
                expected: msg::PACKET,
            });
        }
        let b = m.fixed(PACKET_HEADER_LEN)?;
        sub_buffer(
            b,
            "packet data",
            PACKET_HEADER_LEN,
            get_u32(b, field::PKT_DATA_OFFSET),
            get_u32(b, field::PKT_DATA_LEN),
        )?;
        Ok(())
    }

    /// `MessageLength`.
    pub fn message_length(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::LENGTH)
    }

    /// `DataOffset` (from byte 8).
    pub fn data_offset(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::PKT_DATA_OFFSET)
    }

    /// `DataLength`.
    pub fn data_length(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::PKT_DATA_LEN)
    }

    /// The frame.
    pub fn data(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        if self.data_length() == 0 {
            return &[];
        }
        // check_len: 8 + DataOffset >= 44 and 8 + DataOffset + DataLength <= MessageLength
        // <= b.len(), without overflow.
        let start = self.data_offset() as usize + OFFSET_BASE;
        &b[start..start + self.data_length() as usize]
    }
}

impl<'a> PacketView<&'a [u8]> {
    /// The frame, borrowed for as long as the buffer.
    pub fn into_data(self) -> &'a [u8] {
        if self.data_length() == 0 {
            return &[];
        }
        // As in `data`.
        let start = self.data_offset() as usize + OFFSET_BASE;
        &self.buffer[start..start + self.data_length() as usize]
    }
}

/// The PACKET_MSGs of one bulk IN transfer, in order. Yields each frame or an error per
/// message. A PACKET_MSG whose header is sound (type PACKET, `MessageLength` at least the
/// 44-byte header and inside the transfer) but whose `DataOffset`/`DataLength` lie
/// ([`RndisError::BadBuffer`]) is skipped alone: its `MessageLength` still says where the
/// next message starts. Any other error ends the walk (a length that cannot be trusted
/// leaves no way to find the next message). Every step moves forward by at least one
/// header, so no byte is yielded twice and the walk ends.
/// Fewer than 8 bytes after the last message are padding (a device ends a transfer that
/// fills its last packet with one extra byte instead of a zero-length packet) and ignored.
#[derive(Debug, Clone)]
pub struct Packets<'a> {
    rest: &'a [u8],
}

/// Iterate over the PACKET_MSGs in `xfer`.
pub fn packets(xfer: &[u8]) -> Packets<'_> {
    Packets { rest: xfer }
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<&'a [u8], RndisError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < HEADER_LEN {
            self.rest = &[];
            return None;
        }
        let rest = self.rest;
        match PacketView::new_checked(rest) {
            Ok(p) => {
                // check_len: MessageLength <= rest.len().
                let (msg, tail) = rest.split_at(p.message_length() as usize);
                self.rest = tail;
                Some(Ok(PacketView::new_unchecked(msg).into_data()))
            }
            Err(e @ RndisError::BadBuffer { msg_len, .. }) => {
                // BadBuffer comes only after the header checks passed: msg_len is
                // MessageLength, 44..=rest.len().
                self.rest = rest.get(msg_len..).unwrap_or(&[]);
                Some(Err(e))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests;
