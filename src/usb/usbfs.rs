//! Our own usbfs edge for the datapath: one device node, its ioctls, and URBs reaped by
//! the ring's own thread.
//!
//! nusb reaps every transfer on an events thread of its own and then wakes the caller: two
//! wake-ups per completion. A network driver that completes a frame per transfer (CDC-ECM,
//! the subset, RNDIS on the Linux gadget) pays that hop on every frame, which on a busy CPU
//! was most of its latency. Here the ring polls the usbfs fd itself (usbfs marks it
//! writable while a completed URB waits), reaps every ready URB with
//! `USBDEVFS_REAPURBNDELAY` in one go and sorts them onto per-endpoint queues, so a wake-up
//! costs one `poll(2)` and completions are batched like the kernel's bottom half does.
//!
//! The crate's USB-side `unsafe` is here (the ioctls and the URB memory hand-off) and in
//! [`super::buffer`] (the usbfs mapping the bulk buffers live in). An URB and its buffer
//! are boxed and owned by the kernel from
//! `SUBMITURB` until `REAPURBNDELAY` hands the same pointer back; the device keeps the set
//! of pointers in flight so that nothing the kernel may still write is ever freed.

use std::collections::{HashSet, VecDeque};
use std::ffi::c_void;
use std::fs::OpenOptions;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use nusb::transfer::TransferError;

use super::buffer::{Buffer, Completion, Region};

use super::{Control, Pipe};

// ioctl request numbers, from <linux/usbdevice_fs.h> (`_IOC(dir, 'U', nr, size)`), in the
// asm-generic encoding (x86, ARM, RISC-V, s390x: 14 size bits, NONE 0 / WRITE 1 / READ 2)
// or the one of powerpc, mips and sparc (13 size bits, NONE 1 / READ 2 / WRITE 4).
const IOC_LEGACY: bool = cfg!(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "mips32r6",
    target_arch = "mips64r6",
    target_arch = "sparc",
    target_arch = "sparc64"
));
const IOC_SIZE_BITS: u64 = if IOC_LEGACY { 13 } else { 14 };
const IOC_NONE: u64 = if IOC_LEGACY { 1 } else { 0 };
const IOC_WRITE: u64 = if IOC_LEGACY { 4 } else { 1 };
const IOC_READ: u64 = 2;
const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << (16 + IOC_SIZE_BITS)) | ((size as u64) << 16) | ((b'U' as u64) << 8) | nr
}
const USBDEVFS_CONTROL: u64 = ioc(IOC_READ | IOC_WRITE, 0, size_of::<CtrlTransfer>());
const USBDEVFS_SETINTERFACE: u64 = ioc(IOC_READ, 4, size_of::<SetInterface>());
const USBDEVFS_SETCONFIGURATION: u64 = ioc(IOC_READ, 5, size_of::<u32>());
const USBDEVFS_SUBMITURB: u64 = ioc(IOC_READ, 10, size_of::<RawUrb>());
const USBDEVFS_DISCARDURB: u64 = ioc(IOC_NONE, 11, 0);
const USBDEVFS_REAPURBNDELAY: u64 = ioc(IOC_WRITE, 13, size_of::<*mut c_void>());
const USBDEVFS_CLAIMINTERFACE: u64 = ioc(IOC_READ, 15, size_of::<u32>());
const USBDEVFS_RELEASEINTERFACE: u64 = ioc(IOC_READ, 16, size_of::<u32>());
const USBDEVFS_IOCTL: u64 = ioc(IOC_READ | IOC_WRITE, 18, size_of::<IoctlArg>());
const USBDEVFS_CLEAR_HALT: u64 = ioc(IOC_READ, 21, size_of::<u32>());
const USBDEVFS_DISCONNECT: u64 = ioc(IOC_NONE, 22, 0);
const USBDEVFS_CONNECT: u64 = ioc(IOC_NONE, 23, 0);
const USBDEVFS_DISCONNECT_CLAIM: u64 = ioc(IOC_READ, 27, size_of::<DisconnectClaim>());
const USBDEVFS_GET_SPEED: u64 = ioc(IOC_NONE, 31, 0);

const URB_TYPE_INTERRUPT: u8 = 1;
const URB_TYPE_BULK: u8 = 3;
/// `USBDEVFS_DISCONNECT_CLAIM_EXCEPT_DRIVER`: detach any driver but the named one.
const DISCONNECT_CLAIM_EXCEPT_DRIVER: u32 = 0x02;

#[repr(C)]
struct CtrlTransfer {
    request_type: u8,
    request: u8,
    value: u16,
    index: u16,
    length: u16,
    timeout_ms: u32,
    data: *mut c_void,
}

#[repr(C)]
struct SetInterface {
    interface: u32,
    alt_setting: u32,
}

#[repr(C)]
struct IoctlArg {
    ifno: i32,
    ioctl_code: i32,
    data: *mut c_void,
}

#[repr(C)]
struct DisconnectClaim {
    interface: u32,
    flags: u32,
    driver: [u8; 256],
}

/// `struct usbdevfs_urb` without the iso descriptors we never use.
#[repr(C)]
struct RawUrb {
    kind: u8,
    endpoint: u8,
    status: i32,
    flags: u32,
    buffer: *mut c_void,
    buffer_length: i32,
    actual_length: i32,
    start_frame: i32,
    number_of_packets: i32,
    error_count: i32,
    signr: u32,
    usercontext: *mut c_void,
}

impl RawUrb {
    /// A bulk or interrupt URB for `length` bytes at `buffer`, nothing else set.
    fn new(kind: u8, endpoint: u8, buffer: *mut c_void, length: usize) -> RawUrb {
        RawUrb {
            kind,
            endpoint,
            status: 0,
            flags: 0,
            buffer,
            buffer_length: length.try_into().unwrap_or(i32::MAX),
            actual_length: 0,
            start_frame: 0,
            number_of_packets: 0,
            error_count: 0,
            signr: 0,
            usercontext: std::ptr::null_mut(),
        }
    }
}

/// One transfer in flight: the kernel's view first (its address is what is submitted and
/// reaped), then the buffer it points into.
#[repr(C)]
struct Urb {
    raw: RawUrb,
    buf: Buffer,
}

// SAFETY: the raw pointers in `raw` are only handed to the kernel, never dereferenced
// here: `buffer` points into `buf` (owned by the same Urb, itself Send) while the URB is
// in flight, and a spare Urb's pointers are stale and overwritten before it is submitted
// again. Moving the box to another thread moves neither the buffer nor the URB.
unsafe impl Send for Urb {}

/// Device speed as usbfs reports it (`enum usb_device_speed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speed {
    /// Unknown.
    Unknown,
    /// 1.5 Mbit/s.
    Low,
    /// 12 Mbit/s.
    Full,
    /// 480 Mbit/s.
    High,
    /// Wireless USB.
    Wireless,
    /// 5 Gbit/s.
    Super,
    /// 10 Gbit/s or more.
    SuperPlus,
}

/// Completions reaped from the fd, waiting for their endpoint's pipe.
#[derive(Default)]
struct Reaped {
    /// One queue per endpoint, indexed by [`ep_index`].
    queues: Vec<VecDeque<Completion>>,
    /// URBs owned by the kernel: submitted, not yet reaped.
    in_flight: HashSet<usize, BuildHasherDefault<AddrHasher>>,
    /// Reaped URB boxes (their buffers moved out), reused by the next submissions: no
    /// allocation per transfer in the steady state. Never more than were ever in flight.
    /// Boxed because a submitted URB's address is what the kernel holds and hands back.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Urb>>,
}

/// A hasher for the addresses of our own boxed URBs: they are unique and need no
/// protection from chosen collisions, so one multiply replaces SipHash, which the lab's
/// profile showed at ~1% of the guest's instructions (an insert and a remove per URB).
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        // Boxes are 8-aligned, so the low 3 bits carry nothing. hashbrown takes the
        // bucket from the low bits and a tag from the top 7: multiply (odd constant) the
        // rest and fold the high half down so that both ends vary.
        let h = (n as u64 >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 32);
    }
}

fn ep_index(addr: u8) -> usize {
    usize::from(addr & 0x0f) | usize::from(addr & 0x80) >> 3
}

/// An open usbfs device node.
pub struct Device {
    fd: Arc<OwnedFd>,
    reaped: Mutex<Reaped>,
    /// The length of each endpoint's queue in `reaped`, written under its lock and read
    /// without it: the ring asks "anything waiting?" on every step, which must not cost a
    /// lock (two atomic read-modify-writes, a helper call each under the lab's TCG).
    ready: [AtomicU32; 32],
}

/// Map an errno from usbfs to a transfer error (URB status or ioctl failure).
fn transfer_error(errno: i32) -> TransferError {
    match errno {
        libc::ENOENT | libc::ECONNRESET | libc::ETIMEDOUT => TransferError::Cancelled,
        libc::EPIPE => TransferError::Stall,
        libc::ENODEV | libc::ESHUTDOWN => TransferError::Disconnected,
        libc::EPROTO
        | libc::EILSEQ
        | libc::ETIME
        | libc::EOVERFLOW
        | libc::ECOMM
        | libc::ENOSR
        | libc::EREMOTEIO => TransferError::Fault,
        libc::EINVAL | libc::EMSGSIZE => TransferError::InvalidArgument,
        other => TransferError::Unknown(other as u32),
    }
}

impl Device {
    /// Open a usbfs node (`/dev/bus/usb/BBB/DDD`) read-write.
    pub fn open(node: &Path) -> io::Result<Arc<Device>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(node)?;
        Ok(Arc::new(Device {
            fd: Arc::new(file.into()),
            reaped: Mutex::new(Reaped {
                queues: (0..32).map(|_| VecDeque::new()).collect(),
                in_flight: HashSet::default(),
                spare: Vec::new(),
            }),
            ready: std::array::from_fn(|_| AtomicU32::new(0)),
        }))
    }

    /// The fd: readable as `POLLOUT` while a completed URB waits to be reaped.
    pub fn fd(&self) -> Arc<OwnedFd> {
        self.fd.clone()
    }

    fn ioctl(&self, req: u64, arg: *mut c_void) -> io::Result<i32> {
        // SAFETY: every caller passes a request number built from <linux/usbdevice_fs.h>
        // together with a pointer to the matching #[repr(C)] argument (or an integer
        // argument where the ioctl takes one), alive for the duration of the call.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), req as _, arg) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }

    /// Detach whatever kernel driver has interface `iface` and claim it, atomically; fails
    /// with `EBUSY` when another usbfs program holds it.
    pub fn detach_and_claim(&self, iface: u8) -> io::Result<()> {
        let mut dc = DisconnectClaim {
            interface: iface.into(),
            flags: DISCONNECT_CLAIM_EXCEPT_DRIVER,
            driver: [0; 256],
        };
        dc.driver[..5].copy_from_slice(b"usbfs");
        self.ioctl(
            USBDEVFS_DISCONNECT_CLAIM,
            (&mut dc as *mut DisconnectClaim).cast(),
        )
        .map(drop)
    }

    /// Claim interface `iface` if no driver has it; succeeds at once if this fd holds it
    /// already, fails with `EBUSY` when a driver (a kernel one, another program) does.
    pub fn claim(&self, iface: u8) -> io::Result<()> {
        let mut n = u32::from(iface);
        self.ioctl(USBDEVFS_CLAIMINTERFACE, (&mut n as *mut u32).cast())
            .map(drop)
    }

    /// Release a claimed interface.
    pub fn release(&self, iface: u8) -> io::Result<()> {
        let mut n = u32::from(iface);
        self.ioctl(USBDEVFS_RELEASEINTERFACE, (&mut n as *mut u32).cast())
            .map(drop)
    }

    fn driver_ioctl(&self, iface: u8, code: u64) -> io::Result<()> {
        let mut arg = IoctlArg {
            ifno: iface.into(),
            ioctl_code: code as i32,
            data: std::ptr::null_mut(),
        };
        self.ioctl(USBDEVFS_IOCTL, (&mut arg as *mut IoctlArg).cast())
            .map(drop)
    }

    /// Unbind the kernel driver from interface `iface` (`ENODATA`: none bound).
    pub fn detach_kernel_driver(&self, iface: u8) -> io::Result<()> {
        self.driver_ioctl(iface, USBDEVFS_DISCONNECT)
    }

    /// Let the kernel probe drivers for interface `iface` again.
    pub fn attach_kernel_driver(&self, iface: u8) -> io::Result<()> {
        self.driver_ioctl(iface, USBDEVFS_CONNECT)
    }

    /// SET_CONFIGURATION; every interface must be free of drivers.
    pub fn set_configuration(&self, value: u8) -> io::Result<()> {
        let mut v = u32::from(value);
        self.ioctl(USBDEVFS_SETCONFIGURATION, (&mut v as *mut u32).cast())
            .map(drop)
    }

    /// SET_INTERFACE on a claimed interface.
    pub fn set_alt_setting(&self, iface: u8, alt: u8) -> io::Result<()> {
        let mut si = SetInterface {
            interface: iface.into(),
            alt_setting: alt.into(),
        };
        self.ioctl(USBDEVFS_SETINTERFACE, (&mut si as *mut SetInterface).cast())
            .map(drop)
    }

    /// CLEAR_FEATURE(ENDPOINT_HALT) and reset the host side's data toggle.
    pub fn clear_halt(&self, endpoint: u8) -> Result<(), TransferError> {
        let mut ep = u32::from(endpoint);
        self.ioctl(USBDEVFS_CLEAR_HALT, (&mut ep as *mut u32).cast())
            .map(drop)
            .map_err(|e| transfer_error(e.raw_os_error().unwrap_or(0)))
    }

    /// The device's speed.
    pub fn speed(&self) -> Speed {
        match self.ioctl(USBDEVFS_GET_SPEED, std::ptr::null_mut()) {
            Ok(1) => Speed::Low,
            Ok(2) => Speed::Full,
            Ok(3) => Speed::High,
            Ok(4) => Speed::Wireless,
            Ok(5) => Speed::Super,
            Ok(6) => Speed::SuperPlus,
            _ => Speed::Unknown,
        }
    }

    /// A synchronous control transfer on endpoint 0. IN (bit 7 of `request_type`): `data`
    /// is filled and the received length returned; OUT: `data` is sent.
    pub fn control(
        &self,
        request_type: u8,
        request: u8,
        value: u16,
        index: u16,
        data: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, TransferError> {
        let length = u16::try_from(data.len()).map_err(|_| TransferError::InvalidArgument)?;
        let mut ct = CtrlTransfer {
            request_type,
            request,
            value,
            index,
            length,
            timeout_ms: timeout.as_millis().try_into().unwrap_or(u32::MAX),
            data: data.as_mut_ptr().cast(),
        };
        // `ct.data` points into `data`, which outlives the call; usbfs reads or writes at
        // most `length` bytes there.
        self.ioctl(USBDEVFS_CONTROL, (&mut ct as *mut CtrlTransfer).cast())
            .map(|n| n as usize)
            .map_err(|e| transfer_error(e.raw_os_error().unwrap_or(0)))
    }

    fn lock(&self) -> MutexGuard<'_, Reaped> {
        self.reaped.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a bulk or interrupt transfer on `endpoint`. A refused submission comes back
    /// at once as a failed completion on that endpoint's queue, as a failed transfer would.
    fn submit(&self, kind: u8, endpoint: u8, mut buf: Buffer) {
        let is_in = endpoint & 0x80 != 0;
        let length = if is_in {
            // Every byte up to the capacity is initialised once (a mapped slot always
            // is), so that the length can later be set to whatever the device sent without
            // exposing uninitialised memory.
            buf.set_len(buf.capacity());
            buf.requested_len().min(buf.len())
        } else {
            buf.len()
        };
        // The filled part is what the kernel reads or writes (`length <= buf.len()`). A heap
        // buffer's block does not move when the Buffer moves into the box, and a mapped
        // slot never moves, so the pointer stays valid while the URB is in flight.
        let raw = RawUrb::new(kind, endpoint, buf.as_mut_ptr().cast(), length);
        let mut reaped = self.lock();
        let urb = match reaped.spare.pop() {
            Some(mut urb) => {
                *urb = Urb { raw, buf };
                urb
            }
            None => Box::new(Urb { raw, buf }),
        };
        // `raw` is the first field of a #[repr(C)] struct, so a pointer to it is a pointer
        // to the whole `Urb`.
        let ptr = Box::into_raw(urb);
        match self.ioctl(USBDEVFS_SUBMITURB, ptr.cast()) {
            Ok(_) => {
                reaped.in_flight.insert(ptr as usize);
            }
            Err(e) => {
                // SAFETY: the kernel refused the URB, so it never took ownership of it;
                // `ptr` came from `Box::into_raw` just above.
                let mut urb = unsafe { Box::from_raw(ptr) };
                let c = completion(&mut urb, Err(transfer_error(e.raw_os_error().unwrap_or(0))));
                self.queue(&mut reaped, endpoint, c);
                reaped.spare.push(urb);
            }
        }
    }

    /// Reap every completed URB and sort them onto their endpoints' queues.
    fn reap_all(&self, reaped: &mut Reaped) {
        loop {
            let mut out: *mut c_void = std::ptr::null_mut();
            if self
                .ioctl(
                    USBDEVFS_REAPURBNDELAY,
                    (&mut out as *mut *mut c_void).cast(),
                )
                .is_err()
            {
                // EAGAIN: nothing more; ENODEV: gone (pending URBs were reaped first).
                return;
            }
            if !reaped.in_flight.remove(&(out as usize)) {
                log::error!("usbfs returned an URB we did not submit; ignored");
                continue;
            }
            // SAFETY: `out` is a pointer we submitted (it was in `in_flight`, now removed)
            // and usbfs hands each URB back exactly once, after which it no longer touches
            // it; it came from `Box::into_raw` in `submit`.
            let mut urb = unsafe { Box::from_raw(out.cast::<Urb>()) };
            let status = match urb.raw.status {
                0 => Ok(()),
                s => Err(transfer_error(-s)),
            };
            let ep = urb.raw.endpoint;
            // An IN buffer keeps its full (initialised) length: the data is
            // `buffer[..actual_len]`, and resubmitting it needs no re-initialisation.
            let c = completion(&mut urb, status);
            self.queue(reaped, ep, c);
            reaped.spare.push(urb);
        }
    }

    /// Take the next completion of `endpoint` that is already in user space. It asks the
    /// kernel nothing: the caller reaps ([`Device::reap`]) when `poll(2)` reports the fd
    /// ready, so a step that finds nothing costs no `REAPURBNDELAY` returning EAGAIN (the
    /// lab's trace of an idle ping showed two or three of them around every wake-up).
    fn take(&self, endpoint: u8) -> Option<Completion> {
        let i = ep_index(endpoint);
        let mut reaped = self.lock();
        let c = reaped.queues[i].pop_front();
        self.ready[i].store(reaped.queues[i].len() as u32, Ordering::Relaxed);
        c
    }

    /// Append `c` to `endpoint`'s queue (the lock held: `reaped`).
    fn queue(&self, reaped: &mut Reaped, endpoint: u8, c: Completion) {
        let i = ep_index(endpoint);
        reaped.queues[i].push_back(c);
        self.ready[i].store(reaped.queues[i].len() as u32, Ordering::Relaxed);
    }

    /// Whether a completion of `endpoint` waits in user space (no lock taken: a reap
    /// running on another thread may make it true just after).
    fn has_ready(&self, endpoint: u8) -> bool {
        self.ready[ep_index(endpoint)].load(Ordering::Relaxed) > 0
    }

    /// Reap every completion the kernel has ready onto the endpoints' queues.
    fn reap(&self) {
        let mut reaped = self.lock();
        self.reap_all(&mut reaped);
    }

    /// Ask the kernel to give back every URB of `endpoint` soon (as cancelled).
    fn discard(&self, endpoint: u8) {
        let reaped = self.lock();
        for &p in &reaped.in_flight {
            // SAFETY: `p` is in flight, so the kernel has not handed it back and the box is
            // alive; reading its endpoint field does not race with the kernel, which never
            // writes the URB outside REAPURBNDELAY (which needs the lock we hold).
            let ep = unsafe { (*(p as *const Urb)).raw.endpoint };
            if ep == endpoint {
                // EINVAL: it completed meanwhile; it will be reaped as it is.
                let _ = self.ioctl(USBDEVFS_DISCARDURB, p as *mut c_void);
            }
        }
    }
}

/// A returned URB as the [`Completion`] the ring speaks. An IN buffer keeps its full
/// (initialised) length: the data is `buffer[..actual_len]`.
fn completion(urb: &mut Urb, status: Result<(), TransferError>) -> Completion {
    let actual = usize::try_from(urb.raw.actual_length).unwrap_or(0);
    Completion {
        // An empty heap buffer holds no allocation: the box goes back to the spares.
        buffer: std::mem::replace(&mut urb.buf, Buffer::new(0)),
        actual_len: actual,
        status,
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let mut reaped = self.lock();
        for (i, _) in reaped
            .queues
            .iter()
            .enumerate()
            .filter(|(_, q)| !q.is_empty())
        {
            log::trace!("endpoint queue {i} dropped with completions");
        }
        if !reaped.in_flight.is_empty() {
            // The fd closes after this (the OwnedFd is dropped with us, unless a pipe or the
            // ring still holds a clone of it, in which case the URBs stay owned by the
            // kernel and are leaked rather than freed under it).
            log::debug!("{} URBs still in flight at close", reaped.in_flight.len());
            reaped.in_flight.clear();
        }
    }
}

/// Bytes per mapping of zero-copy bulk buffers: several transfers share one, so that usbfs's
/// lookup of a submitted buffer (a walk over the fd's mappings) stays short and the
/// controller's contiguous allocation stays small.
const REGION_BYTES: usize = 128 << 10;

/// One bulk or interrupt endpoint of a claimed interface, as a [`Pipe`] for the ring.
pub struct UsbfsPipe {
    dev: Arc<Device>,
    kind: u8,
    address: u8,
    max_packet: usize,
    pending: usize,
    /// Mappings that bulk buffers are carved from; `None` once mapping failed (the pipe
    /// then allocates heap buffers, which usbfs copies through).
    regions: std::cell::RefCell<Option<Vec<Arc<Region>>>>,
}

impl UsbfsPipe {
    /// A bulk endpoint.
    pub fn bulk(dev: &Arc<Device>, address: u8, max_packet: usize) -> UsbfsPipe {
        UsbfsPipe::new(dev, URB_TYPE_BULK, address, max_packet)
    }

    /// An interrupt endpoint.
    pub fn interrupt(dev: &Arc<Device>, address: u8, max_packet: usize) -> UsbfsPipe {
        UsbfsPipe::new(dev, URB_TYPE_INTERRUPT, address, max_packet)
    }

    fn new(dev: &Arc<Device>, kind: u8, address: u8, max_packet: usize) -> UsbfsPipe {
        UsbfsPipe {
            dev: dev.clone(),
            kind,
            address,
            max_packet,
            pending: 0,
            regions: std::cell::RefCell::new((kind == URB_TYPE_BULK).then(Vec::new)),
        }
    }

    /// A zero-copy buffer of at least `len` bytes from this pipe's mappings (a new mapping
    /// when they are full), or `None` where usbfs cannot map (then never again).
    fn mapped(&self, len: usize) -> Option<Buffer> {
        let mut regions = self.regions.borrow_mut();
        let list = regions.as_mut()?;
        let slot = len.max(1).div_ceil(64) * 64;
        let mut buf = match list
            .iter()
            .find_map(|r| (r.slot_len() == slot).then(|| r.take()).flatten())
        {
            Some(b) => b,
            None => {
                let fd = self.dev.fd();
                // SAFETY: `fd` is this device's usbfs node, where each mmap is fresh
                // memory (usbdev_mmap allocates a new usb_memory per call).
                match unsafe { Region::map(fd.as_fd(), slot, (REGION_BYTES / slot).max(1)) } {
                    Ok(r) => {
                        let b = r.take();
                        list.push(r);
                        b?
                    }
                    Err(e) => {
                        log::info!(
                            "endpoint 0x{:02x}: no zero-copy buffers ({e}); usbfs copies each transfer",
                            self.address
                        );
                        *regions = None;
                        return None;
                    }
                }
            }
        };
        buf.set_requested_len(len);
        Some(buf)
    }
}

impl Pipe for UsbfsPipe {
    fn address(&self) -> u8 {
        self.address
    }
    fn max_packet_size(&self) -> usize {
        self.max_packet
    }
    fn allocate(&self, len: usize) -> Buffer {
        self.mapped(len).unwrap_or_else(|| Buffer::new(len))
    }
    fn submit(&mut self, buf: Buffer) {
        self.pending += 1;
        self.dev.submit(self.kind, self.address, buf);
    }
    fn poll_complete(&mut self, _cx: &mut Context<'_>) -> Poll<Completion> {
        if self.pending == 0 {
            return Poll::Pending;
        }
        match self.dev.take(self.address) {
            Some(c) => {
                self.pending -= 1;
                Poll::Ready(c)
            }
            None => Poll::Pending,
        }
    }
    fn pending(&self) -> usize {
        self.pending
    }
    fn cancel_all(&mut self) {
        self.dev.discard(self.address);
    }
    fn clear_halt(&mut self) -> Result<(), TransferError> {
        self.dev.clear_halt(self.address)
    }
    fn wait_fd(&self) -> Option<Arc<OwnedFd>> {
        Some(self.dev.fd())
    }
    fn reap(&mut self) {
        self.dev.reap();
    }
    fn has_completion(&self) -> bool {
        self.pending > 0 && self.dev.has_ready(self.address)
    }
}

impl Drop for UsbfsPipe {
    fn drop(&mut self) {
        if self.pending > 0 {
            // Give the kernel a moment to return what is in flight, so that the memory is
            // freed rather than leaked; whatever is left stays leaked on purpose (see
            // `Device`'s drop: the kernel may still write it), a bounded loss once per run.
            self.dev.discard(self.address);
            let deadline = std::time::Instant::now() + Duration::from_millis(200);
            while self.pending > 0 && std::time::Instant::now() < deadline {
                self.dev.reap();
                match self.dev.take(self.address) {
                    Some(_) => self.pending -= 1,
                    None => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        }
    }
}

/// [`Control`] over the usbfs node: class requests to an interface, strings.
pub struct UsbfsControl {
    /// The device.
    pub dev: Arc<Device>,
}

impl Control for UsbfsControl {
    fn class_in(
        &self,
        request: u8,
        value: u16,
        interface: u8,
        length: u16,
    ) -> Result<Vec<u8>, TransferError> {
        let mut data = vec![0u8; length.into()];
        let n = self.dev.control(
            0xa1,
            request,
            value,
            interface.into(),
            &mut data,
            super::CONTROL_TIMEOUT,
        )?;
        data.truncate(n);
        Ok(data)
    }

    fn class_out(
        &self,
        request: u8,
        value: u16,
        interface: u8,
        data: &[u8],
    ) -> Result<(), TransferError> {
        let mut data = data.to_vec();
        self.dev.control(
            0x21,
            request,
            value,
            interface.into(),
            &mut data,
            super::CONTROL_TIMEOUT,
        )?;
        Ok(())
    }

    fn string(&self, index: u8) -> Option<String> {
        if index == 0 {
            return None;
        }
        let get = |index: u8, lang: u16| {
            let mut buf = [0u8; 255];
            let n = self
                .dev
                .control(
                    0x80,
                    6, // GET_DESCRIPTOR
                    0x0300 | u16::from(index),
                    lang,
                    &mut buf,
                    super::CONTROL_TIMEOUT,
                )
                .ok()?;
            let n = n.min(usize::from(buf[0])).min(buf.len());
            (n >= 2 && buf[1] == 3).then(|| buf[2..n].to_vec())
        };
        let langs = get(0, 0)?;
        let lang = langs
            .get(..2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .unwrap_or(0x0409);
        let raw = get(index, lang)?;
        let units: Vec<u16> = raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        Some(String::from_utf16_lossy(&units))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn ioctl_numbers_match_the_kernel_header() {
        // Values as printed by a C program including <linux/usbdevice_fs.h> on x86_64.
        assert_eq!(USBDEVFS_CONTROL, 0xc018_5500);
        assert_eq!(USBDEVFS_SETINTERFACE, 0x8008_5504);
        assert_eq!(USBDEVFS_SETCONFIGURATION, 0x8004_5505);
        assert_eq!(USBDEVFS_CLAIMINTERFACE, 0x8004_550f);
        assert_eq!(USBDEVFS_SUBMITURB, 0x8038_550a);
        assert_eq!(USBDEVFS_DISCARDURB, 0x0000_550b);
        assert_eq!(USBDEVFS_REAPURBNDELAY, 0x4008_550d);
        assert_eq!(USBDEVFS_RELEASEINTERFACE, 0x8004_5510);
        assert_eq!(USBDEVFS_IOCTL, 0xc010_5512);
        assert_eq!(USBDEVFS_CLEAR_HALT, 0x8004_5515);
        assert_eq!(USBDEVFS_DISCONNECT, 0x0000_5516);
        assert_eq!(USBDEVFS_CONNECT, 0x0000_5517);
        assert_eq!(USBDEVFS_DISCONNECT_CLAIM, 0x8108_551b);
        assert_eq!(USBDEVFS_GET_SPEED, 0x0000_551f);
    }

    #[test]
    #[cfg(all(target_pointer_width = "32", target_arch = "x86"))]
    fn ioctl_numbers_match_the_kernel_header_on_i686() {
        // Pointers and the URB are smaller there (the URB is 44 bytes).
        assert_eq!(USBDEVFS_CONTROL, 0xc010_5500);
        assert_eq!(USBDEVFS_SUBMITURB, 0x802c_550a);
        assert_eq!(USBDEVFS_REAPURBNDELAY, 0x4004_550d);
        assert_eq!(USBDEVFS_IOCTL, 0xc00c_5512);
        assert_eq!(USBDEVFS_DISCONNECT_CLAIM, 0x8108_551b);
    }

    #[test]
    fn ioctl_encoding_follows_the_architecture() {
        // _IOC's layout: direction above the size field, then 'U', then the number.
        let dir_shift = if IOC_LEGACY { 29 } else { 30 };
        assert_eq!(USBDEVFS_DISCARDURB, (IOC_NONE << dir_shift) | 0x550b);
        assert_eq!(USBDEVFS_CLEAR_HALT >> dir_shift, IOC_READ);
        assert_eq!(USBDEVFS_REAPURBNDELAY >> dir_shift, IOC_WRITE);
        assert_eq!(
            (USBDEVFS_SUBMITURB >> 16) & ((1 << (dir_shift - 16)) - 1),
            size_of::<RawUrb>() as u64
        );
    }

    #[test]
    fn endpoint_queues_are_distinct() {
        let mut seen = HashSet::new();
        for ep in (0u8..16).chain(0x80..0x90) {
            assert!(ep_index(ep) < 32);
            assert!(seen.insert(ep_index(ep)), "{ep:#x}");
        }
    }

    #[test]
    fn urb_status_mapping() {
        assert_eq!(transfer_error(libc::EPIPE), TransferError::Stall);
        assert_eq!(transfer_error(libc::ENOENT), TransferError::Cancelled);
        assert_eq!(transfer_error(libc::ESHUTDOWN), TransferError::Disconnected);
        assert_eq!(transfer_error(libc::ENODEV), TransferError::Disconnected);
        assert_eq!(transfer_error(libc::EPROTO), TransferError::Fault);
        assert_eq!(
            transfer_error(libc::ENOMEM),
            TransferError::Unknown(libc::ENOMEM as u32)
        );
    }

    #[test]
    fn completion_keeps_the_requested_length() {
        let mut buf = Buffer::new(2048);
        buf.set_len(2048);
        let mut raw = RawUrb::new(URB_TYPE_BULK, 0x81, std::ptr::null_mut(), 2048);
        raw.actual_length = 60;
        let mut urb = Urb { raw, buf };
        let c = completion(&mut urb, Ok(()));
        assert!(
            urb.buf.is_empty() && urb.buf.capacity() == 0,
            "the box keeps no buffer"
        );
        assert_eq!(c.actual_len, 60);
        assert_eq!(c.buffer.len(), 2048, "IN data is buffer[..actual_len]");
        assert_eq!(c.buffer.requested_len(), 2048);
        assert!(c.buffer.capacity() >= 2048);
    }
}
