//! CDC notifications from the interrupt endpoint (USB CDC 1.2 §6.3).
//!
//! A notification is an 8-byte header shaped like a setup packet, then `wLength` data bytes:
//!
//! ```text
//! 0 bmRequestType     0xA1 (device to host, class, interface)
//! 1 bNotificationCode NETWORK_CONNECTION 0x00, RESPONSE_AVAILABLE 0x01,
//!                     CONNECTION_SPEED_CHANGE 0x2A, ...
//! 2 wValue            NETWORK_CONNECTION: 1 connected, 0 disconnected
//! 4 wIndex            the interface
//! 6 wLength           data bytes that follow (CONNECTION_SPEED_CHANGE: 8)
//! 8 data              CONNECTION_SPEED_CHANGE: DLBitRRate (u32), ULBitRate (u32)
//! ```
//!
//! [`NotificationView`] and [`Notification::parse`] handle one whole notification.
//! [`NotificationReader`] handles the stream of interrupt transfers, where one notification
//! may be split: with an 8-byte `wMaxPacketSize` (or a host that reads 8 bytes at a time, as
//! `usbnet` does) the header and the 8 data bytes of CONNECTION_SPEED_CHANGE arrive in two
//! transfers.

use super::cdc::{notification as code, REQUEST_TYPE_CLASS_INTERFACE_IN};
use super::{get_u16, get_u32, set_u16, set_u32};

/// Byte ranges of the notification header.
pub mod field {
    use crate::wire::Field;
    /// `bmRequestType`.
    pub const REQUEST_TYPE: usize = 0;
    /// `bNotificationCode`.
    pub const NOTIFICATION: usize = 1;
    /// `wValue`.
    pub const VALUE: Field = 2..4;
    /// `wIndex`.
    pub const INDEX: Field = 4..6;
    /// `wLength`.
    pub const LENGTH: Field = 6..8;
    /// CONNECTION_SPEED_CHANGE data: `DLBitRRate`, relative to the data.
    pub const DL_BIT_RATE: Field = 0..4;
    /// CONNECTION_SPEED_CHANGE data: `ULBitRate`, relative to the data.
    pub const UL_BIT_RATE: Field = 4..8;
}

/// Length of the notification header.
pub const HEADER_LEN: usize = 8;
/// Data length of CONNECTION_SPEED_CHANGE.
pub const SPEED_CHANGE_DATA_LEN: usize = 8;

/// Why a notification could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// Fewer bytes than the header, or than header + `wLength`.
    #[error("notification of {len} bytes, needs {need}")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// `bmRequestType` is not 0xA1.
    #[error("bmRequestType {0:#04x} is not a class notification (0xa1)")]
    BadRequestType(u8),
    /// A known notification with a `wLength` too small for its data.
    #[error("notification {code:#04x} has wLength {length}, needs {need}")]
    BadLength {
        /// `bNotificationCode`.
        code: u8,
        /// `wLength`.
        length: u16,
        /// Data bytes required.
        need: usize,
    },
}

/// Checked view of one notification; the buffer may extend past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NotificationView<T> {
    /// Wraps a buffer without checks (for emitting).
    pub const fn new_unchecked(buffer: T) -> Self {
        NotificationView { buffer }
    }

    /// Wraps device bytes after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, NotifyError> {
        let v = Self::new_unchecked(buffer);
        v.check_len()?;
        Ok(v)
    }

    /// Checks that the buffer holds the header and the `wLength` data bytes.
    pub fn check_len(&self) -> Result<(), NotifyError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(NotifyError::Truncated {
                len,
                need: HEADER_LEN,
            });
        }
        let need = HEADER_LEN + usize::from(self.length());
        if len < need {
            return Err(NotifyError::Truncated { len, need });
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// `bmRequestType`.
    pub fn request_type(&self) -> u8 {
        self.buffer.as_ref()[field::REQUEST_TYPE]
    }
    /// `bNotificationCode`.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::NOTIFICATION]
    }
    /// `wValue`.
    pub fn value(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::VALUE)
    }
    /// `wIndex`.
    pub fn index(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::INDEX)
    }
    /// `wLength`.
    pub fn length(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }
    /// The `wLength` data bytes.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.length())]
    }
    /// Bytes of this notification (header + data).
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.length())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> NotificationView<T> {
    /// Writes `bmRequestType`. Setters panic if the buffer is shorter than the field.
    pub fn set_request_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::REQUEST_TYPE] = v;
    }
    /// Writes `bNotificationCode`.
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::NOTIFICATION] = v;
    }
    /// Writes `wValue`.
    pub fn set_value(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::VALUE, v)
    }
    /// Writes `wIndex`.
    pub fn set_index(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::INDEX, v)
    }
    /// Writes `wLength`.
    pub fn set_length(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v)
    }
    /// The data bytes after the header, writable (as far as the buffer goes).
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// A notification, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notification {
    /// NETWORK_CONNECTION (0x00): carrier.
    NetworkConnection {
        /// `wValue` != 0.
        connected: bool,
    },
    /// RESPONSE_AVAILABLE (0x01): read it with GET_ENCAPSULATED_RESPONSE.
    ResponseAvailable,
    /// CONNECTION_SPEED_CHANGE (0x2A).
    ConnectionSpeedChange {
        /// `DLBitRRate`: device to host (IN) bits per second.
        downlink_bps: u32,
        /// `ULBitRate`: host to device (OUT) bits per second.
        uplink_bps: u32,
    },
    /// Any other code; the data is not kept.
    Unknown {
        /// `bNotificationCode`.
        code: u8,
        /// `wValue`.
        value: u16,
        /// `wLength`.
        length: u16,
    },
}

impl Notification {
    /// Parses a checked view. Extra data beyond what a known notification needs is ignored.
    pub fn parse<T: AsRef<[u8]>>(view: &NotificationView<T>) -> Result<Notification, NotifyError> {
        view.check_len()?;
        Self::from_parts(
            view.request_type(),
            view.code(),
            view.value(),
            view.length(),
            view.data(),
        )
    }

    /// Parses the notification at the start of `bytes`.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Notification, NotifyError> {
        Self::parse(&NotificationView::new_checked(bytes)?)
    }

    /// `data` may be shorter than `length` (when the reader skipped it); a known notification
    /// that needs more data than `data` holds is [`NotifyError::BadLength`].
    fn from_parts(
        request_type: u8,
        code: u8,
        value: u16,
        length: u16,
        data: &[u8],
    ) -> Result<Notification, NotifyError> {
        if request_type != REQUEST_TYPE_CLASS_INTERFACE_IN {
            return Err(NotifyError::BadRequestType(request_type));
        }
        Ok(match code {
            code::NETWORK_CONNECTION => Notification::NetworkConnection {
                connected: value != 0,
            },
            code::RESPONSE_AVAILABLE => Notification::ResponseAvailable,
            code::CONNECTION_SPEED_CHANGE => {
                if data.len() < SPEED_CHANGE_DATA_LEN {
                    return Err(NotifyError::BadLength {
                        code,
                        length,
                        need: SPEED_CHANGE_DATA_LEN,
                    });
                }
                Notification::ConnectionSpeedChange {
                    downlink_bps: get_u32(data, field::DL_BIT_RATE),
                    uplink_bps: get_u32(data, field::UL_BIT_RATE),
                }
            }
            code => Notification::Unknown {
                code,
                value,
                length,
            },
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Notification::ConnectionSpeedChange { .. } => HEADER_LEN + SPEED_CHANGE_DATA_LEN,
            Notification::Unknown { length, .. } => HEADER_LEN + *length as usize,
            _ => HEADER_LEN,
        }
    }

    /// Writes the notification as a device would, for interface `interface` (for tests and
    /// fakes); unknown notifications get zeroed data.
    ///
    /// # Panics
    /// If `buf` is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit(&self, buf: &mut [u8], interface: u16) {
        let mut v = NotificationView::new_unchecked(&mut buf[..]);
        v.set_request_type(REQUEST_TYPE_CLASS_INTERFACE_IN);
        v.set_index(interface);
        let (c, value, length) = match *self {
            Notification::NetworkConnection { connected } => {
                (code::NETWORK_CONNECTION, u16::from(connected), 0)
            }
            Notification::ResponseAvailable => (code::RESPONSE_AVAILABLE, 0, 0),
            Notification::ConnectionSpeedChange { .. } => (
                code::CONNECTION_SPEED_CHANGE,
                0,
                SPEED_CHANGE_DATA_LEN as u16,
            ),
            Notification::Unknown {
                code,
                value,
                length,
            } => (code, value, length),
        };
        v.set_code(c);
        v.set_value(value);
        v.set_length(length);
        let data = &mut v.data_mut()[..usize::from(length)];
        match *self {
            Notification::ConnectionSpeedChange {
                downlink_bps,
                uplink_bps,
            } => {
                set_u32(data, field::DL_BIT_RATE, downlink_bps);
                set_u32(data, field::UL_BIT_RATE, uplink_bps);
            }
            _ => data.fill(0),
        }
    }

    /// The notification as bytes (tests and fakes; allocates).
    pub fn to_bytes(&self, interface: u16) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v, interface);
        v
    }
}

/// Whether `bytes` starts with the header of a well-formed known notification, in the strict
/// shape devices send: NETWORK_CONNECTION with `wValue` 0 or 1 and no data,
/// RESPONSE_AVAILABLE with no data, CONNECTION_SPEED_CHANGE with 8 data bytes.
fn is_strict_header(bytes: &[u8]) -> bool {
    if bytes.len() < HEADER_LEN || bytes[field::REQUEST_TYPE] != REQUEST_TYPE_CLASS_INTERFACE_IN {
        return false;
    }
    let value = get_u16(bytes, field::VALUE);
    let length = usize::from(get_u16(bytes, field::LENGTH));
    match bytes[field::NOTIFICATION] {
        code::NETWORK_CONNECTION => value <= 1 && length == 0,
        code::RESPONSE_AVAILABLE => value == 0 && length == 0,
        code::CONNECTION_SPEED_CHANGE => value == 0 && length == SPEED_CHANGE_DATA_LEN,
        _ => false,
    }
}

/// Data bytes the reader buffers; longer data is skipped.
const MAX_BUFFERED_DATA: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between notifications.
    Idle,
    /// Part of a header (`have` < 8 bytes, the first being 0xA1).
    Header { buf: [u8; HEADER_LEN], have: usize },
    /// A header, waiting for `need` (≤ 16) data bytes.
    Data {
        header: [u8; HEADER_LEN],
        data: [u8; MAX_BUFFERED_DATA],
        have: usize,
        need: usize,
    },
    /// A header whose long data is being skipped.
    Skip {
        header: [u8; HEADER_LEN],
        remaining: usize,
    },
}

/// Counters of [`NotificationReader`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReaderStats {
    /// Notifications delivered (known and unknown).
    pub notifications: u64,
    /// Bytes discarded because they did not start with a notification header.
    pub garbage_bytes: u64,
    /// Partial notifications abandoned because a transfer started with a new header.
    pub orphaned: u32,
    /// Whole notifications that did not parse (a CONNECTION_SPEED_CHANGE with short data).
    pub malformed: u32,
}

/// Reassembles notifications from interrupt transfers; see the [module doc](self).
///
/// Feed every completed interrupt transfer to [`feed`](Self::feed). A transfer may hold
/// several notifications, or part of one; the reader keeps at most one partial notification.
///
/// **Resync.** A transfer that begins with a well-formed known header (see below) while the
/// reader is in the middle of a notification means the rest of that notification was lost: it
/// is dropped (counted in [`ReaderStats::orphaned`]) and the new one parsed. This is what
/// `cdc_ncm` got wrong: after losing the data half of a CONNECTION_SPEED_CHANGE it read the
/// next NETWORK_CONNECTION header as the two bit rates, and the link stayed down. The cost:
/// speed data whose first eight bytes look exactly like such a header (DLBitRRate ≡ 0x..00A1,
/// 0x..01A1 or 0x..2AA1 with a matching ULBitRate) would be taken for one; link state matters
/// more than an informational bit rate.
///
/// Bytes at the start of a notification that are not 0xA1 are garbage: the rest of that
/// transfer is discarded and counted, never guessed at.
#[derive(Debug, Clone)]
pub struct NotificationReader {
    state: State,
    stats: ReaderStats,
}

impl Default for NotificationReader {
    fn default() -> Self {
        Self::new()
    }
}

impl NotificationReader {
    /// A reader between notifications.
    pub const fn new() -> Self {
        NotificationReader {
            state: State::Idle,
            stats: ReaderStats {
                notifications: 0,
                garbage_bytes: 0,
                orphaned: 0,
                malformed: 0,
            },
        }
    }

    /// Counters so far.
    pub const fn stats(&self) -> ReaderStats {
        self.stats
    }

    /// Whether part of a notification is held.
    pub const fn is_pending(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Forgets a partial notification (after the endpoint was reset, say). Not counted.
    pub fn reset(&mut self) {
        self.state = State::Idle;
    }

    /// Consumes one interrupt transfer and appends the notifications it completes to `out`;
    /// returns how many. At most one notification per 8 bytes fed, never a panic.
    pub fn feed(&mut self, transfer: &[u8], out: &mut impl Extend<Notification>) -> usize {
        let mut n = 0;
        if self.is_pending() && is_strict_header(transfer) {
            self.stats.orphaned += 1;
            self.state = State::Idle;
        }
        let mut rest = transfer;
        while !rest.is_empty() {
            match &mut self.state {
                State::Idle => {
                    if rest[0] != REQUEST_TYPE_CLASS_INTERFACE_IN {
                        self.stats.garbage_bytes += rest.len() as u64;
                        break;
                    }
                    let take = rest.len().min(HEADER_LEN);
                    let mut buf = [0u8; HEADER_LEN];
                    buf[..take].copy_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if take < HEADER_LEN {
                        self.state = State::Header { buf, have: take };
                    } else {
                        n += self.start(buf, out);
                    }
                }
                State::Header { buf, have } => {
                    let take = rest.len().min(HEADER_LEN - *have);
                    buf[*have..*have + take].copy_from_slice(&rest[..take]);
                    *have += take;
                    rest = &rest[take..];
                    if *have == HEADER_LEN {
                        let header = *buf;
                        self.state = State::Idle;
                        n += self.start(header, out);
                    }
                }
                State::Data {
                    header,
                    data,
                    have,
                    need,
                } => {
                    let take = rest.len().min(*need - *have);
                    data[*have..*have + take].copy_from_slice(&rest[..take]);
                    *have += take;
                    rest = &rest[take..];
                    if *have == *need {
                        let (header, data, need) = (*header, *data, *need);
                        self.state = State::Idle;
                        n += self.complete(&header, &data[..need], out);
                    }
                }
                State::Skip { header, remaining } => {
                    let take = rest.len().min(*remaining);
                    *remaining -= take;
                    rest = &rest[take..];
                    if *remaining == 0 {
                        let header = *header;
                        self.state = State::Idle;
                        n += self.complete(&header, &[], out);
                    }
                }
            }
        }
        n
    }

    /// A whole header is in: complete it now or wait for its data.
    fn start(&mut self, header: [u8; HEADER_LEN], out: &mut impl Extend<Notification>) -> usize {
        let need = usize::from(get_u16(&header, field::LENGTH));
        if need == 0 {
            self.complete(&header, &[], out)
        } else if need <= MAX_BUFFERED_DATA {
            self.state = State::Data {
                header,
                data: [0; MAX_BUFFERED_DATA],
                have: 0,
                need,
            };
            0
        } else {
            self.state = State::Skip {
                header,
                remaining: need,
            };
            0
        }
    }

    fn complete(
        &mut self,
        header: &[u8; HEADER_LEN],
        data: &[u8],
        out: &mut impl Extend<Notification>,
    ) -> usize {
        let parsed = Notification::from_parts(
            header[field::REQUEST_TYPE],
            header[field::NOTIFICATION],
            get_u16(header, field::VALUE),
            get_u16(header, field::LENGTH),
            data,
        );
        match parsed {
            Ok(n) => {
                out.extend(Some(n));
                self.stats.notifications += 1;
                1
            }
            Err(_) => {
                self.stats.malformed += 1;
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NETWORK_CONNECTION "connected" on interface 0, as the Linux NCM gadget sends it.
    #[rustfmt::skip]
    static CONNECT: [u8; 8] = [
        0xa1,       // bmRequestType: device to host, class, interface
        0x00,       // bNotificationCode NETWORK_CONNECTION
        0x01, 0x00, // wValue 1 = connected
        0x00, 0x00, // wIndex interface 0
        0x00, 0x00, // wLength 0
    ];

    /// CONNECTION_SPEED_CHANGE with 100 Mbit/s down, 50 Mbit/s up, interface 0. The Linux
    /// gadget sends this before NETWORK_CONNECTION.
    #[rustfmt::skip]
    static SPEED: [u8; 16] = [
        0xa1,                   // bmRequestType
        0x2a,                   // bNotificationCode CONNECTION_SPEED_CHANGE
        0x00, 0x00,             // wValue
        0x00, 0x00,             // wIndex interface 0
        0x08, 0x00,             // wLength 8
        0x00, 0xe1, 0xf5, 0x05, // DLBitRRate 100_000_000
        0x80, 0xf0, 0xfa, 0x02, // ULBitRate 50_000_000
    ];

    const SPEED_N: Notification = Notification::ConnectionSpeedChange {
        downlink_bps: 100_000_000,
        uplink_bps: 50_000_000,
    };
    const UP: Notification = Notification::NetworkConnection { connected: true };
    const DOWN: Notification = Notification::NetworkConnection { connected: false };

    fn feed_all(r: &mut NotificationReader, transfers: &[&[u8]]) -> Vec<Notification> {
        let mut out = Vec::new();
        for t in transfers {
            r.feed(t, &mut out);
        }
        out
    }

    #[test]
    fn deconstruct() {
        let v = NotificationView::new_checked(&CONNECT[..]).unwrap();
        assert_eq!(
            (v.request_type(), v.code(), v.value(), v.index(), v.length()),
            (0xa1, 0, 1, 0, 0)
        );
        assert_eq!(Notification::parse(&v), Ok(UP));
        let v = NotificationView::new_checked(&SPEED[..]).unwrap();
        assert_eq!(v.data(), &SPEED[8..]);
        assert_eq!(v.total_len(), 16);
        assert_eq!(Notification::parse(&v), Ok(SPEED_N));
        assert_eq!(
            Notification::parse_bytes(&[0xa1, 0x01, 0, 0, 0, 0, 0, 0]),
            Ok(Notification::ResponseAvailable)
        );
    }

    #[test]
    fn construct() {
        assert_eq!(UP.to_bytes(0), CONNECT);
        assert_eq!(SPEED_N.to_bytes(0), SPEED);
        let mut buf = [0xa5u8; 8];
        DOWN.emit(&mut buf, 3);
        assert_eq!(buf, [0xa1, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00]);
        let unknown = Notification::Unknown {
            code: 0x20,
            value: 0,
            length: 2,
        };
        assert_eq!(unknown.to_bytes(1), [0xa1, 0x20, 0, 0, 1, 0, 2, 0, 0, 0]);
        assert_eq!(Notification::parse_bytes(&unknown.to_bytes(1)), Ok(unknown));
    }

    #[test]
    fn negative() {
        assert_eq!(
            Notification::parse_bytes(&CONNECT[..7]),
            Err(NotifyError::Truncated { len: 7, need: 8 })
        );
        assert_eq!(
            Notification::parse_bytes(&SPEED[..15]),
            Err(NotifyError::Truncated { len: 15, need: 16 })
        );
        let mut b = CONNECT;
        b[0] = 0x21;
        assert_eq!(
            Notification::parse_bytes(&b),
            Err(NotifyError::BadRequestType(0x21))
        );
        let mut b = SPEED;
        b[6] = 4;
        assert_eq!(
            Notification::parse_bytes(&b),
            Err(NotifyError::BadLength {
                code: 0x2a,
                length: 4,
                need: 8
            })
        );
    }

    #[test]
    fn reader_whole_and_concatenated() {
        let mut r = NotificationReader::new();
        assert_eq!(feed_all(&mut r, &[&CONNECT, &SPEED]), [UP, SPEED_N]);
        let both: Vec<u8> = [&SPEED[..], &CONNECT[..]].concat();
        assert_eq!(feed_all(&mut r, &[&both]), [SPEED_N, UP]);
        assert_eq!(r.stats().notifications, 4);
        assert!(!r.is_pending());
    }

    #[test]
    fn speed_change_split_in_two() {
        let mut r = NotificationReader::new();
        let mut out = Vec::new();
        assert_eq!(r.feed(&SPEED[..8], &mut out), 0);
        assert!(r.is_pending());
        assert_eq!(r.feed(&SPEED[8..], &mut out), 1);
        assert_eq!(out, [SPEED_N]);
        // And byte by byte.
        let mut r = NotificationReader::new();
        let chunks: Vec<&[u8]> = SPEED.chunks(1).chain(CONNECT.chunks(3)).collect();
        assert_eq!(feed_all(&mut r, &chunks), [SPEED_N, UP]);
        assert_eq!(
            r.stats(),
            ReaderStats {
                notifications: 2,
                ..ReaderStats::default()
            }
        );
    }

    /// The data half of a CONNECTION_SPEED_CHANGE is lost; the next transfer is a
    /// NETWORK_CONNECTION. `cdc_ncm` read its 8 bytes as the bit rates and the link stayed
    /// down; we resync on the header.
    #[test]
    fn orphaned_half_resyncs_on_the_next_header() {
        let mut r = NotificationReader::new();
        assert_eq!(feed_all(&mut r, &[&SPEED[..8], &CONNECT]), [UP]);
        assert_eq!(r.stats().orphaned, 1);
        assert!(!r.is_pending());
        // A whole new speed change after an orphaned header.
        assert_eq!(feed_all(&mut r, &[&SPEED[..8], &SPEED]), [SPEED_N]);
        // An orphaned partial header.
        assert_eq!(feed_all(&mut r, &[&SPEED[..5], &DOWN.to_bytes(0)]), [DOWN]);
        assert_eq!(r.stats().orphaned, 3);
        assert_eq!(r.stats().malformed, 0);
    }

    #[test]
    fn lone_data_half_is_garbage() {
        let mut r = NotificationReader::new();
        assert_eq!(feed_all(&mut r, &[&SPEED[8..], &CONNECT]), [UP]);
        assert_eq!(r.stats().garbage_bytes, 8);
    }

    #[test]
    fn garbage_discards_the_rest_of_the_transfer() {
        let mut r = NotificationReader::new();
        let t: Vec<u8> = [&CONNECT[..], &[0x00, 0xa1], &CONNECT[..]].concat();
        assert_eq!(feed_all(&mut r, &[&t]), [UP]);
        assert_eq!(r.stats().garbage_bytes, 10);
    }

    #[test]
    fn unknown_and_long_notifications_are_skipped_whole() {
        let mut r = NotificationReader::new();
        // SERIAL_STATE with 2 data bytes, then a vendor code with 100 bytes split in three.
        let serial = [0xa1, 0x20, 0, 0, 0, 0, 2, 0, 3, 0];
        let mut long = vec![0xa1, 0xee, 7, 0, 0, 0, 100, 0];
        long.extend(std::iter::repeat_n(0x55, 100));
        let out = feed_all(
            &mut r,
            &[&serial, &long[..50], &long[50..90], &long[90..], &CONNECT],
        );
        assert_eq!(
            out,
            [
                Notification::Unknown {
                    code: 0x20,
                    value: 0,
                    length: 2
                },
                Notification::Unknown {
                    code: 0xee,
                    value: 7,
                    length: 100
                },
                UP
            ]
        );
        // A speed change claiming 20 data bytes is skipped and counted as malformed.
        let mut bad = SPEED.to_vec();
        bad[6] = 20;
        bad.extend_from_slice(&[0; 12]);
        assert_eq!(feed_all(&mut r, &[&bad]), []);
        assert_eq!(r.stats().malformed, 1);
    }

    #[test]
    fn reset_forgets() {
        let mut r = NotificationReader::new();
        feed_all(&mut r, &[&SPEED[..8]]);
        r.reset();
        assert!(!r.is_pending());
        assert_eq!(feed_all(&mut r, &[&SPEED[8..]]), []);
        assert_eq!(r.stats().orphaned, 0);
    }

    #[test]
    fn random_chunks_never_amplify() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut r = NotificationReader::new();
        let mut total = 0usize;
        let mut out = Vec::new();
        for _ in 0..20_000 {
            let len = (rnd() % 24) as usize;
            let mut t: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            if len > 0 && rnd() % 2 == 0 {
                t[0] = 0xa1;
            }
            total += t.len();
            r.feed(&t, &mut out);
        }
        assert!(out.len() * HEADER_LEN <= total);
    }
}
