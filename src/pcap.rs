//! `--pcap FILE`: what crossed the bus, as a pcap file `tshark`/Wireshark decode, without
//! root or debugfs.
//!
//! Two link types:
//!
//! * [`PcapLink::Usb`] (`LINKTYPE_USB_LINUX_MMAPPED`, 220): every control, bulk and interrupt
//!   transfer as the kernel's usbmon binary interface reports it: a 64-byte header (URB id,
//!   event `S`ubmit / `C`omplete, transfer type, endpoint, device, status, lengths, time) and
//!   the data. The capture opens with the device and configuration descriptors usbnetd read,
//!   recorded as GET_DESCRIPTOR transfers, so that a dissector knows which class each
//!   endpoint belongs to (Wireshark then decodes NCM NTBs and the frames inside them). Raw
//!   transfers are recorded, so frames the class dropped as malformed are in the file too.
//! * [`PcapLink::Ethernet`] (`LINKTYPE_ETHERNET`, 1): the Ethernet frames the class decoded
//!   (RX) and accepted for sending (TX).
//!
//! Recording goes through wrappers over the existing seams: [`RecordingPipe`] around a
//! [`Pipe`], [`RecordingControl`] around a [`Control`], and [`wrap_binding`] around a class's
//! RX/TX hooks; the ring and the classes do not know about it. A write error stops the
//! recording (logged once), never the datapath.
//!
//! The file layout (pcap 2.4, microsecond timestamps, little-endian) is written by
//! [`PcapWriter`] and read back by [`read`] with checked views ([`UsbmonPacket`]).

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nusb::transfer::TransferError;

use crate::usb::{Buffer, Completion};

use crate::class::{Binding, Refused, RxDrops, RxFixup, TxFixup};
use crate::usb::{Control, Pipe};

/// pcap magic for microsecond timestamps (written little-endian).
pub const PCAP_MAGIC: u32 = 0xa1b2_c3d4;
/// pcap file header length.
pub const FILE_HEADER_LEN: usize = 24;
/// pcap record header length.
pub const RECORD_HEADER_LEN: usize = 16;
/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// `LINKTYPE_USB_LINUX_MMAPPED`: the usbmon binary (mmap) header, 64 bytes, then data.
pub const LINKTYPE_USB_LINUX_MMAPPED: u32 = 220;
/// Bytes of data kept per record (longer transfers are truncated, `orig_len` tells).
pub const SNAPLEN: u32 = 256 * 1024;
/// Length of the usbmon header before the data.
pub const USBMON_HEADER_LEN: usize = 64;
/// How often buffered records are flushed to the file at the latest.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// usbmon status of a submission (`-EINPROGRESS`).
pub const STATUS_IN_PROGRESS: i32 = -115;

/// Which link type `--pcap` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PcapLink {
    /// USB transfers (usbmon format).
    #[default]
    Usb,
    /// Ethernet frames.
    Ethernet,
}

impl PcapLink {
    /// The pcap link type number.
    pub fn linktype(self) -> u32 {
        match self {
            PcapLink::Usb => LINKTYPE_USB_LINUX_MMAPPED,
            PcapLink::Ethernet => LINKTYPE_ETHERNET,
        }
    }
}

impl std::str::FromStr for PcapLink {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "usb" => Ok(PcapLink::Usb),
            "ethernet" => Ok(PcapLink::Ethernet),
            _ => Err("expected usb or ethernet".into()),
        }
    }
}

/// usbmon transfer types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum XferType {
    /// Isochronous (never produced by usbnetd).
    Iso = 0,
    /// Interrupt.
    Interrupt = 1,
    /// Control.
    Control = 2,
    /// Bulk.
    Bulk = 3,
}

/// usbmon event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Event {
    /// Submission (`S`).
    Submit = b'S',
    /// Completion (`C`).
    Complete = b'C',
    /// Submission error (`E`).
    Error = b'E',
}

/// The negative errno usbmon reports for a completion status.
pub fn status_errno(status: &Result<(), TransferError>) -> i32 {
    match status {
        Ok(()) => 0,
        Err(TransferError::Cancelled) => -libc::ENOENT,
        Err(TransferError::Stall) => -libc::EPIPE,
        Err(TransferError::Disconnected) => -libc::ESHUTDOWN,
        Err(TransferError::Fault) => -libc::EPROTO,
        Err(TransferError::InvalidArgument) => -libc::EINVAL,
        Err(TransferError::Unknown(e)) => i32::try_from(*e).map(|e| -e).unwrap_or(-libc::EIO),
    }
}

/// One usbmon event, as [`UsbmonPacket`] lays it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbmonRepr {
    /// URB id: the same for a transfer's submission and completion.
    pub id: u64,
    /// Event.
    pub event: Event,
    /// Transfer type.
    pub xfer: XferType,
    /// Endpoint address (bit 7 set for IN; control: 0x80 for IN requests, 0 for OUT).
    pub endpoint: u8,
    /// Device address on its bus.
    pub devnum: u8,
    /// Bus number.
    pub busnum: u16,
    /// The SETUP packet (control submissions only).
    pub setup: Option<[u8; 8]>,
    /// Time of the event since the Unix epoch.
    pub time: Duration,
    /// 0, or a negative errno; [`STATUS_IN_PROGRESS`] on submission.
    pub status: i32,
    /// Length of the transfer: requested (submission) or actual (completion).
    pub length: u32,
    /// Whether data follows: OUT submissions and IN completions carry it.
    pub has_data: bool,
    /// Polling interval (interrupt endpoints).
    pub interval: i32,
}

/// Field offsets of the usbmon mmap header (`struct usbmon_packet`, little-endian here).
mod field {
    pub const ID: usize = 0;
    pub const TYPE: usize = 8;
    pub const XFER_TYPE: usize = 9;
    pub const EPNUM: usize = 10;
    pub const DEVNUM: usize = 11;
    pub const BUSNUM: usize = 12;
    pub const FLAG_SETUP: usize = 14;
    pub const FLAG_DATA: usize = 15;
    pub const TS_SEC: usize = 16;
    pub const TS_USEC: usize = 24;
    pub const STATUS: usize = 28;
    pub const LENGTH: usize = 32;
    pub const LEN_CAP: usize = 36;
    pub const SETUP: usize = 40;
    pub const INTERVAL: usize = 48;
    pub const START_FRAME: usize = 52;
    pub const XFER_FLAGS: usize = 56;
    pub const NDESC: usize = 60;
}

impl UsbmonRepr {
    /// The 64-byte header for this event with `len_cap` bytes of data following it.
    pub fn emit(&self, len_cap: u32) -> [u8; USBMON_HEADER_LEN] {
        use field::*;
        let mut h = [0u8; USBMON_HEADER_LEN];
        h[ID..ID + 8].copy_from_slice(&self.id.to_le_bytes());
        h[TYPE] = self.event as u8;
        h[XFER_TYPE] = self.xfer as u8;
        h[EPNUM] = self.endpoint;
        h[DEVNUM] = self.devnum;
        h[BUSNUM..BUSNUM + 2].copy_from_slice(&self.busnum.to_le_bytes());
        h[FLAG_SETUP] = if self.setup.is_some() { 0 } else { b'-' };
        // As the kernel: 0 when data is present, '<' for an IN submission, '>' for an
        // OUT completion, '=' for no data otherwise.
        h[FLAG_DATA] = if self.has_data && len_cap > 0 {
            0
        } else if self.event == Event::Submit && self.endpoint & 0x80 != 0 {
            b'<'
        } else if self.event == Event::Complete && self.endpoint & 0x80 == 0 {
            b'>'
        } else {
            b'='
        };
        let sec = i64::try_from(self.time.as_secs()).unwrap_or(i64::MAX);
        h[TS_SEC..TS_SEC + 8].copy_from_slice(&sec.to_le_bytes());
        h[TS_USEC..TS_USEC + 4].copy_from_slice(&(self.time.subsec_micros() as i32).to_le_bytes());
        h[STATUS..STATUS + 4].copy_from_slice(&self.status.to_le_bytes());
        h[LENGTH..LENGTH + 4].copy_from_slice(&self.length.to_le_bytes());
        h[LEN_CAP..LEN_CAP + 4].copy_from_slice(&len_cap.to_le_bytes());
        if let Some(s) = self.setup {
            h[SETUP..SETUP + 8].copy_from_slice(&s);
        }
        h[INTERVAL..INTERVAL + 4].copy_from_slice(&self.interval.to_le_bytes());
        h[START_FRAME..START_FRAME + 4].copy_from_slice(&0i32.to_le_bytes());
        h[XFER_FLAGS..XFER_FLAGS + 4].copy_from_slice(&0u32.to_le_bytes());
        h[NDESC..NDESC + 4].copy_from_slice(&0u32.to_le_bytes());
        h
    }
}

/// A read-only view of one usbmon record (header + data), smoltcp-style.
#[derive(Debug, Clone, Copy)]
pub struct UsbmonPacket<T: AsRef<[u8]>> {
    buffer: T,
}

/// Why bytes are not a pcap file or a usbmon record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcapError {
    /// Shorter than the structure at `at`.
    #[error("truncated at byte {at}: need {need} more bytes")]
    Truncated {
        /// Offset of the structure.
        at: usize,
        /// Bytes missing.
        need: usize,
    },
    /// Not a little-endian microsecond pcap file.
    #[error("bad magic {0:#010x}: not a little-endian pcap file with microsecond timestamps")]
    BadMagic(u32),
    /// A record says it holds more than it has room for.
    #[error("record at byte {at}: captured length {len} is larger than the snap length or the original length")]
    BadLength {
        /// Offset of the record header.
        at: usize,
        /// The captured length.
        len: u32,
    },
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

impl<T: AsRef<[u8]>> UsbmonPacket<T> {
    /// Wrap without checking (accessors may panic on short buffers: call `check_len`).
    pub fn new_unchecked(buffer: T) -> Self {
        UsbmonPacket { buffer }
    }
    /// Wrap and check that the header and the captured data are there.
    pub fn new_checked(buffer: T) -> Result<Self, PcapError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Header present and `len_cap` bytes of data after it.
    pub fn check_len(&self) -> Result<(), PcapError> {
        let b = self.buffer.as_ref();
        if b.len() < USBMON_HEADER_LEN {
            return Err(PcapError::Truncated {
                at: 0,
                need: USBMON_HEADER_LEN - b.len(),
            });
        }
        let cap = le_u32(b, field::LEN_CAP) as usize;
        if b.len() - USBMON_HEADER_LEN < cap {
            return Err(PcapError::Truncated {
                at: USBMON_HEADER_LEN,
                need: cap - (b.len() - USBMON_HEADER_LEN),
            });
        }
        Ok(())
    }
    /// URB id.
    pub fn id(&self) -> u64 {
        le_u64(self.buffer.as_ref(), field::ID)
    }
    /// Event type byte (`S`, `C`, `E`).
    pub fn event(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// Transfer type (0 iso, 1 interrupt, 2 control, 3 bulk).
    pub fn xfer_type(&self) -> u8 {
        self.buffer.as_ref()[field::XFER_TYPE]
    }
    /// Endpoint address with direction bit.
    pub fn endpoint(&self) -> u8 {
        self.buffer.as_ref()[field::EPNUM]
    }
    /// Device address.
    pub fn devnum(&self) -> u8 {
        self.buffer.as_ref()[field::DEVNUM]
    }
    /// Bus number.
    pub fn busnum(&self) -> u16 {
        le_u16(self.buffer.as_ref(), field::BUSNUM)
    }
    /// 0 when a SETUP packet is present.
    pub fn flag_setup(&self) -> u8 {
        self.buffer.as_ref()[field::FLAG_SETUP]
    }
    /// 0 when data is present, else `<`, `>` or `=`.
    pub fn flag_data(&self) -> u8 {
        self.buffer.as_ref()[field::FLAG_DATA]
    }
    /// Seconds part of the timestamp.
    pub fn ts_sec(&self) -> i64 {
        le_u64(self.buffer.as_ref(), field::TS_SEC) as i64
    }
    /// Microseconds part of the timestamp.
    pub fn ts_usec(&self) -> i32 {
        le_u32(self.buffer.as_ref(), field::TS_USEC) as i32
    }
    /// Status (0, negative errno, or -EINPROGRESS).
    pub fn status(&self) -> i32 {
        le_u32(self.buffer.as_ref(), field::STATUS) as i32
    }
    /// Transfer length (requested or actual).
    pub fn length(&self) -> u32 {
        le_u32(self.buffer.as_ref(), field::LENGTH)
    }
    /// Bytes of data captured after the header.
    pub fn len_cap(&self) -> u32 {
        le_u32(self.buffer.as_ref(), field::LEN_CAP)
    }
    /// The SETUP packet bytes (meaningful when `flag_setup() == 0`).
    pub fn setup(&self) -> [u8; 8] {
        let mut s = [0u8; 8];
        s.copy_from_slice(&self.buffer.as_ref()[field::SETUP..field::SETUP + 8]);
        s
    }
    /// Polling interval.
    pub fn interval(&self) -> i32 {
        le_u32(self.buffer.as_ref(), field::INTERVAL) as i32
    }
    /// The captured data.
    pub fn data(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[USBMON_HEADER_LEN..USBMON_HEADER_LEN + self.len_cap() as usize]
    }
}

/// The pcap global header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// Major, minor version (2, 4).
    pub version: (u16, u16),
    /// Snap length.
    pub snaplen: u32,
    /// Link type.
    pub linktype: u32,
}

/// One pcap record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Timestamp since the epoch.
    pub time: Duration,
    /// Length on the wire (or of the whole transfer record).
    pub orig_len: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

/// Parse a whole pcap file (little-endian, microsecond timestamps).
pub fn read(bytes: &[u8]) -> Result<(FileHeader, Vec<Record>), PcapError> {
    if bytes.len() < FILE_HEADER_LEN {
        return Err(PcapError::Truncated {
            at: 0,
            need: FILE_HEADER_LEN - bytes.len(),
        });
    }
    let magic = le_u32(bytes, 0);
    if magic != PCAP_MAGIC {
        return Err(PcapError::BadMagic(magic));
    }
    let header = FileHeader {
        version: (le_u16(bytes, 4), le_u16(bytes, 6)),
        snaplen: le_u32(bytes, 16),
        linktype: le_u32(bytes, 20),
    };
    let mut records = Vec::new();
    let mut at = FILE_HEADER_LEN;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < RECORD_HEADER_LEN {
            return Err(PcapError::Truncated {
                at,
                need: RECORD_HEADER_LEN - rest.len(),
            });
        }
        let incl = le_u32(rest, 8);
        let orig = le_u32(rest, 12);
        if incl > header.snaplen.max(USBMON_HEADER_LEN as u32) || incl > orig {
            return Err(PcapError::BadLength { at, len: incl });
        }
        let body = &rest[RECORD_HEADER_LEN..];
        if body.len() < incl as usize {
            return Err(PcapError::Truncated {
                at: at + RECORD_HEADER_LEN,
                need: incl as usize - body.len(),
            });
        }
        records.push(Record {
            time: Duration::new(
                u64::from(le_u32(rest, 0)),
                le_u32(rest, 4).min(999_999) * 1000,
            ),
            orig_len: orig,
            data: body[..incl as usize].to_vec(),
        });
        at += RECORD_HEADER_LEN + incl as usize;
    }
    Ok((header, records))
}

/// Writes a pcap stream: the global header at creation, then records.
pub struct PcapWriter<W: Write> {
    out: W,
    linktype: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Write the global header for `link` to `out`.
    pub fn new(mut out: W, link: PcapLink) -> io::Result<PcapWriter<W>> {
        let mut h = [0u8; FILE_HEADER_LEN];
        h[0..4].copy_from_slice(&PCAP_MAGIC.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone 0, sigfigs 0
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&link.linktype().to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter {
            out,
            linktype: link.linktype(),
        })
    }

    /// One record of `parts` concatenated, of which at most [`SNAPLEN`] bytes are kept;
    /// `orig_len` is the length before truncation.
    pub fn record(&mut self, time: Duration, parts: &[&[u8]], orig_len: usize) -> io::Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let incl = total.min(SNAPLEN as usize);
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[0..4].copy_from_slice(&(time.as_secs() as u32).to_le_bytes());
        h[4..8].copy_from_slice(&time.subsec_micros().to_le_bytes());
        h[8..12].copy_from_slice(&(incl as u32).to_le_bytes());
        let orig = u32::try_from(orig_len.max(incl)).unwrap_or(u32::MAX);
        h[12..16].copy_from_slice(&orig.to_le_bytes());
        self.out.write_all(&h)?;
        let mut left = incl;
        for p in parts {
            let n = p.len().min(left);
            self.out.write_all(&p[..n])?;
            left -= n;
        }
        Ok(())
    }

    /// The link type this stream was opened with.
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// Flush the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

struct Sink {
    writer: Option<PcapWriter<Box<dyn Write + Send>>>,
    last_flush: Instant,
    next_id: u64,
}

/// The shared recorder every wrapper of one run writes to.
pub struct Recorder {
    link: PcapLink,
    busnum: u16,
    devnum: u8,
    sink: Mutex<Sink>,
    what: String,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("link", &self.link)
            .field("busnum", &self.busnum)
            .field("devnum", &self.devnum)
            .field("what", &self.what)
            .finish()
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Recorder {
    /// Create (truncate) `path` and record `link` for the device at `busnum`/`devnum`.
    pub fn create(
        path: &Path,
        link: PcapLink,
        busnum: u16,
        devnum: u8,
    ) -> io::Result<Arc<Recorder>> {
        let file = File::create(path)?;
        Self::to_writer(
            Box::new(BufWriter::with_capacity(256 * 1024, file)),
            link,
            busnum,
            devnum,
            path.display().to_string(),
        )
    }

    /// Record into any writer (tests: a `Vec<u8>` behind a shared handle).
    pub fn to_writer(
        out: Box<dyn Write + Send>,
        link: PcapLink,
        busnum: u16,
        devnum: u8,
        what: String,
    ) -> io::Result<Arc<Recorder>> {
        let writer = PcapWriter::new(out, link)?;
        Ok(Arc::new(Recorder {
            link,
            busnum,
            devnum,
            sink: Mutex::new(Sink {
                writer: Some(writer),
                last_flush: Instant::now(),
                next_id: 1,
            }),
            what,
        }))
    }

    /// The link type recorded.
    pub fn link(&self) -> PcapLink {
        self.link
    }

    fn lock(&self) -> MutexGuard<'_, Sink> {
        self.sink.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh URB id.
    pub fn next_id(&self) -> u64 {
        let mut s = self.lock();
        let id = s.next_id;
        s.next_id += 1;
        id
    }

    fn write(&self, parts: &[&[u8]], orig_len: usize) {
        let mut s = self.lock();
        let Some(w) = s.writer.as_mut() else { return };
        let mut r = w.record(now(), parts, orig_len);
        let flush = s.last_flush.elapsed() >= FLUSH_EVERY;
        if flush && r.is_ok() {
            s.last_flush = Instant::now();
            r = s.writer.as_mut().map_or(Ok(()), |w| w.flush());
        }
        if let Err(e) = r {
            log::warn!("pcap {}: {e}; recording stopped", self.what);
            s.writer = None;
        }
    }

    /// Record one USB event (USB link only); `data` is what follows the header.
    pub fn usb(&self, ev: &UsbmonRepr, data: &[u8]) {
        if self.link != PcapLink::Usb {
            return;
        }
        let cap = data
            .len()
            .min(SNAPLEN as usize - USBMON_HEADER_LEN)
            .min(u32::MAX as usize);
        let h = ev.emit(cap as u32);
        self.write(&[&h, &data[..cap]], USBMON_HEADER_LEN + data.len());
    }

    /// A usbmon event for this device with the current time.
    pub fn event(
        &self,
        id: u64,
        event: Event,
        xfer: XferType,
        endpoint: u8,
        status: i32,
        length: usize,
    ) -> UsbmonRepr {
        UsbmonRepr {
            id,
            event,
            xfer,
            endpoint,
            devnum: self.devnum,
            busnum: self.busnum,
            setup: None,
            time: now(),
            status,
            length: u32::try_from(length).unwrap_or(u32::MAX),
            has_data: false,
            interval: 0,
        }
    }

    /// Record one Ethernet frame (Ethernet link only).
    pub fn frame(&self, frame: &[u8]) {
        if self.link == PcapLink::Ethernet {
            self.write(&[frame], frame.len());
        }
    }

    /// Record a control transfer that completed: SETUP + OUT data, then the completion
    /// with the IN data.
    pub fn control(&self, setup: [u8; 8], out: &[u8], result: Result<&[u8], &TransferError>) {
        if self.link != PcapLink::Usb {
            return;
        }
        let id = self.next_id();
        let ep = setup[0] & 0x80;
        let w_length = usize::from(u16::from_le_bytes([setup[6], setup[7]]));
        let mut s = self.event(
            id,
            Event::Submit,
            XferType::Control,
            ep,
            STATUS_IN_PROGRESS,
            w_length,
        );
        s.setup = Some(setup);
        s.has_data = ep == 0;
        self.usb(&s, if ep == 0 { out } else { &[] });
        let (status, len, data): (i32, usize, &[u8]) = match result {
            Ok(d) if ep != 0 => (0, d.len(), d),
            Ok(_) => (0, out.len(), &[]),
            Err(e) => (status_errno(&Err(*e)), 0, &[]),
        };
        let mut c = self.event(id, Event::Complete, XferType::Control, ep, status, len);
        c.has_data = ep != 0;
        self.usb(&c, data);
    }

    /// Open the capture with the descriptors the device returned (device descriptor, then
    /// each configuration's whole block, as usbfs reads them), as GET_DESCRIPTOR transfers,
    /// so that dissectors learn the interfaces and endpoints. Malformed input is recorded as
    /// far as it goes.
    pub fn descriptors(&self, set: &[u8]) {
        const DEVICE_LEN: usize = 18;
        let Some(dev) = set.get(..DEVICE_LEN) else {
            return;
        };
        self.control(get_descriptor(1, 0, DEVICE_LEN as u16), &[], Ok(dev));
        let mut at = DEVICE_LEN;
        let mut index = 0u8;
        while let Some(h) = set.get(at..at + 4) {
            let total = usize::from(u16::from_le_bytes([h[2], h[3]]));
            if h[1] != 2 || total < 4 {
                break;
            }
            let block = &set[at..(at + total).min(set.len())];
            self.control(get_descriptor(2, index, total as u16), &[], Ok(block));
            at += total;
            index = index.wrapping_add(1);
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(w) = self.lock().writer.as_mut() {
            if let Err(e) = w.flush() {
                log::warn!("pcap {}: {e}", self.what);
            }
        }
    }
}

/// The SETUP packet of a standard GET_DESCRIPTOR request.
fn get_descriptor(kind: u8, index: u8, length: u16) -> [u8; 8] {
    let l = length.to_le_bytes();
    [0x80, 0x06, index, kind, 0, 0, l[0], l[1]]
}

/// The SETUP packet of a class request to an interface.
pub fn class_setup(dir_in: bool, request: u8, value: u16, interface: u8, length: u16) -> [u8; 8] {
    let v = value.to_le_bytes();
    let l = length.to_le_bytes();
    [
        if dir_in { 0xa1 } else { 0x21 },
        request,
        v[0],
        v[1],
        interface,
        0,
        l[0],
        l[1],
    ]
}

/// A [`Pipe`] that records every submission and completion of the pipe it wraps.
pub struct RecordingPipe {
    inner: Box<dyn Pipe>,
    rec: Arc<Recorder>,
    xfer: XferType,
    interval: i32,
    /// URB ids of the transfers in flight, oldest first (pipes complete in order).
    in_flight: VecDeque<u64>,
}

impl RecordingPipe {
    /// Record `inner`'s transfers as `xfer` transfers (interrupt: with `interval`).
    pub fn new(
        inner: Box<dyn Pipe>,
        xfer: XferType,
        interval: i32,
        rec: Arc<Recorder>,
    ) -> RecordingPipe {
        RecordingPipe {
            inner,
            rec,
            xfer,
            interval,
            in_flight: VecDeque::new(),
        }
    }
}

impl Pipe for RecordingPipe {
    fn address(&self) -> u8 {
        self.inner.address()
    }
    fn max_packet_size(&self) -> usize {
        self.inner.max_packet_size()
    }
    fn allocate(&self, len: usize) -> Buffer {
        self.inner.allocate(len)
    }
    fn submit(&mut self, buf: Buffer) {
        let id = self.rec.next_id();
        let ep = self.inner.address();
        let is_in = ep & 0x80 != 0;
        let len = if is_in {
            buf.requested_len()
        } else {
            buf.len()
        };
        let mut ev = self
            .rec
            .event(id, Event::Submit, self.xfer, ep, STATUS_IN_PROGRESS, len);
        ev.interval = self.interval;
        ev.has_data = !is_in;
        self.rec.usb(&ev, if is_in { &[] } else { &buf[..] });
        self.in_flight.push_back(id);
        self.inner.submit(buf);
    }
    fn poll_complete(&mut self, cx: &mut Context<'_>) -> Poll<Completion> {
        let done = self.inner.poll_complete(cx);
        if let Poll::Ready(c) = &done {
            let id = self
                .in_flight
                .pop_front()
                .unwrap_or_else(|| self.rec.next_id());
            let ep = self.inner.address();
            let is_in = ep & 0x80 != 0;
            let mut ev = self.rec.event(
                id,
                Event::Complete,
                self.xfer,
                ep,
                status_errno(&c.status),
                c.actual_len,
            );
            ev.interval = self.interval;
            ev.has_data = is_in;
            let data: &[u8] = if is_in {
                &c.buffer[..c.actual_len.min(c.buffer.len())]
            } else {
                &[]
            };
            self.rec.usb(&ev, data);
        }
        done
    }
    fn pending(&self) -> usize {
        self.inner.pending()
    }
    fn cancel_all(&mut self) {
        self.inner.cancel_all()
    }
    fn clear_halt(&mut self) -> Result<(), TransferError> {
        let r = self.inner.clear_halt();
        // CLEAR_FEATURE(ENDPOINT_HALT) to the endpoint, as the kernel would send it.
        let setup = [0x02, 0x01, 0, 0, self.inner.address(), 0, 0, 0];
        self.rec.control(setup, &[], r.as_ref().map(|()| &[][..]));
        r
    }
    fn wait_fd(&self) -> Option<Arc<std::os::fd::OwnedFd>> {
        self.inner.wait_fd()
    }
    fn reap(&mut self) {
        self.inner.reap()
    }
    fn has_completion(&self) -> bool {
        self.inner.has_completion()
    }
}

/// `pipe` as is without a USB recorder, else wrapped in a [`RecordingPipe`].
pub fn wrap_pipe(
    pipe: Box<dyn Pipe>,
    xfer: XferType,
    rec: Option<&Arc<Recorder>>,
) -> Box<dyn Pipe> {
    match rec {
        Some(r) if r.link() == PcapLink::Usb => {
            Box::new(RecordingPipe::new(pipe, xfer, 0, Arc::clone(r)))
        }
        _ => pipe,
    }
}

/// A [`Control`] that records every request made through the one it wraps (USB link).
pub struct RecordingControl<C: Control> {
    inner: C,
    rec: Option<Arc<Recorder>>,
}

impl<C: Control> RecordingControl<C> {
    /// Wrap `inner`; with `rec` `None` (or an Ethernet recorder) it only forwards.
    pub fn new(inner: C, rec: Option<&Arc<Recorder>>) -> RecordingControl<C> {
        RecordingControl {
            inner,
            rec: rec.filter(|r| r.link() == PcapLink::Usb).cloned(),
        }
    }
}

impl<C: Control> Control for RecordingControl<C> {
    fn class_in(
        &self,
        request: u8,
        value: u16,
        interface: u8,
        length: u16,
    ) -> Result<Vec<u8>, TransferError> {
        let r = self.inner.class_in(request, value, interface, length);
        if let Some(rec) = &self.rec {
            let setup = class_setup(true, request, value, interface, length);
            rec.control(setup, &[], r.as_deref());
        }
        r
    }
    fn class_out(
        &self,
        request: u8,
        value: u16,
        interface: u8,
        data: &[u8],
    ) -> Result<(), TransferError> {
        let r = self.inner.class_out(request, value, interface, data);
        if let Some(rec) = &self.rec {
            let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
            let setup = class_setup(false, request, value, interface, len);
            rec.control(setup, data, r.as_ref().map(|()| &[][..]));
        }
        r
    }
    /// Recorded as GET_DESCRIPTOR(STRING) with the string re-encoded as the descriptor
    /// (UTF-16LE; language 0x0409 in wIndex): the seam returns the decoded text only.
    fn string(&self, index: u8) -> Option<String> {
        let s = self.inner.string(index);
        if let Some(rec) = &self.rec {
            let mut desc = vec![0u8, 3];
            if let Some(s) = &s {
                for u in s.encode_utf16().take(126) {
                    desc.extend_from_slice(&u.to_le_bytes());
                }
            }
            desc[0] = desc.len() as u8;
            let setup = [0x80, 0x06, index, 3, 0x09, 0x04, 0xff, 0x00];
            let result = match &s {
                Some(_) => Ok(&desc[..]),
                None => Err(&TransferError::Stall),
            };
            rec.control(setup, &[], result);
        }
        s
    }
}

struct RecordingRx {
    inner: Box<dyn RxFixup>,
    rec: Arc<Recorder>,
}

impl RxFixup for RecordingRx {
    fn rx_fixup(&mut self, xfer: &[u8], deliver: &mut dyn FnMut(&[u8]), drops: &mut RxDrops) {
        let rec = &self.rec;
        self.inner.rx_fixup(
            xfer,
            &mut |f| {
                rec.frame(f);
                deliver(f)
            },
            drops,
        )
    }
}

struct RecordingTx {
    inner: Box<dyn TxFixup>,
    rec: Arc<Recorder>,
}

impl TxFixup for RecordingTx {
    fn begin(&mut self, out: &mut Buffer) {
        self.inner.begin(out)
    }
    fn push_with(
        &mut self,
        out: &mut Buffer,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), Refused> {
        // `fill` runs only for a frame the transfer takes: record what it wrote.
        let rec = &self.rec;
        self.inner.push_with(out, len, &mut |d| {
            fill(d);
            rec.frame(d);
        })
    }
    fn finish(&mut self, out: &mut Buffer) -> bool {
        self.inner.finish(out)
    }
    fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
    fn is_full(&self) -> bool {
        self.inner.is_full()
    }
}

/// With an Ethernet recorder, the binding with its RX and TX hooks recording every frame
/// they deliver or accept; otherwise the binding unchanged.
pub fn wrap_binding(b: Binding, rec: Option<&Arc<Recorder>>) -> Binding {
    match rec {
        Some(r) if r.link() == PcapLink::Ethernet => Binding {
            link: b.link,
            rx: Box::new(RecordingRx {
                inner: b.rx,
                rec: Arc::clone(r),
            }),
            tx: Box::new(RecordingTx {
                inner: b.tx,
                rec: Arc::clone(r),
            }),
            status: b.status,
        },
        _ => b,
    }
}

/// For `usbnetd run --pcap`: create the file and, for the USB link, record the device's
/// descriptors first. `None` without a path.
pub fn for_device(
    path: Option<&Path>,
    link: PcapLink,
    dev: &crate::usb::UsbDevice,
) -> Result<Option<Arc<Recorder>>, String> {
    let Some(path) = path else { return Ok(None) };
    let rec = Recorder::create(
        path,
        link,
        u16::from(dev.info.busnum()),
        dev.info.device_address(),
    )
    .map_err(|e| {
        format!(
            "cannot create pcap file {}: {e} (choose a writable path for --pcap)",
            path.display()
        )
    })?;
    if link == PcapLink::Usb {
        match dev.read_descriptors() {
            Ok(set) => rec.descriptors(&set),
            Err(e) => log::warn!("pcap: descriptors not recorded: {e}"),
        }
    }
    log::info!(
        "recording {} to {}",
        match link {
            PcapLink::Usb => "USB transfers",
            PcapLink::Ethernet => "Ethernet frames",
        },
        path.display()
    );
    Ok(Some(rec))
}
