//! The transfer ring: the kernel's URB model in userspace.
//!
//! One thread runs both directions ([`run`]; [`run_rx`] and [`run_tx`] run one direction
//! alone, for tests), an event loop over the endpoints' [`Pipe`]s:
//!
//! * **RX**: `rx_queue` bulk IN transfers are always in flight. Each completion goes through
//!   the class's [`RxFixup`]; every frame is written to the network side and the same buffer
//!   is resubmitted at once, so steady state allocates nothing. The interrupt endpoint lives
//!   here too: its notifications become carrier changes.
//! * **TX**: frames are read from the network side while fewer than `tx_queue` OUT
//!   transfers are in flight, packed by the class's [`TxFixup`] (NCM: as many as are ready
//!   into one NTB), and the transfer is submitted as soon as the network side has nothing
//!   more to read or the transfer is full: no timer ever holds a frame. When every slot is in
//!   flight the ring stops reading (the frames wait in the TAP's queue, as
//!   `netif_stop_queue` makes the stack wait) and counts a `tx_busy` stop; a completion frees
//!   the slot and reading resumes. A frame that has been read is never dropped for lack of
//!   room: it is carried until a slot frees.
//!
//! The thread sleeps in one `poll(2)`: on the usbfs fd of the device (POLLOUT while a
//! completion waits to be reaped), on an eventfd that waker-driven pipes (the in-memory fake
//! device) write, on the shared stop fd, and on the network fd while TX has room. One
//! wake-up serves every completion that is ready and both directions. Errors follow one
//! policy table ([`Policy::of`]): a stall is cleared and the ring goes on, faults are
//! counted and retried with a breaker, a disconnect ends the run.

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use nusb::transfer::TransferError;

use crate::usb::{Buffer, Completion};
use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};

use crate::class::{LinkEvent, Refused, RxDrops, RxFixup, StatusFixup, TxFixup};
use crate::gro::Gro;
use crate::gso::{self, Prepared};
use crate::stats::Stats;
use crate::usb::Pipe;
use crate::wire::vnet;

/// Consecutive failed transfers on one endpoint after which the ring gives up (the kernel's
/// usbnet kills RX at 20 errors in 30 completions; a userspace driver can simply stop and
/// let the supervisor restart it), once they have also lasted [`BREAKER_SPAN`].
pub const ERROR_BREAKER: u32 = 64;

/// How long a run of failures must last before the breaker trips: a spike that ends sooner
/// (usbfs memory, shared by every process, taken for a moment by another usbfs user) is
/// ridden out instead of ending the run.
pub const BREAKER_SPAN: Duration = Duration::from_secs(1);

/// Pause, once per step that had a failed IN transfer to retry, before resubmitting it:
/// faults come in bursts during a disconnect that is about to be reported. Once per step,
/// not per failure: the one thread carries both directions, and a ring whose every
/// resubmission fails (usbfs memory taken by another process) must not sleep a pause per
/// transfer in a row.
const RETRY_PAUSE: Duration = Duration::from_millis(1);

/// Counts consecutive failures on one endpoint.
#[derive(Debug, Default)]
struct Breaker {
    in_row: u32,
    since: Option<Instant>,
}

impl Breaker {
    fn ok(&mut self) {
        self.in_row = 0;
        self.since = None;
    }

    /// One more failure; `true` when the breaker trips.
    fn failed(&mut self) -> bool {
        self.in_row += 1;
        let since = *self.since.get_or_insert_with(Instant::now);
        self.in_row >= ERROR_BREAKER && since.elapsed() >= BREAKER_SPAN
    }
}

/// How long teardown waits for cancelled transfers to come back.
pub const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// While the interface is down, how often the RX side looks whether it is up again (it
/// also looks as soon as the interface has a frame to send, which it has only when up).
pub const NET_DOWN_RECHECK: Duration = Duration::from_secs(1);

/// What to do with a failed transfer: the one place errors are classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Cancelled by us (teardown): stop resubmitting.
    Cancelled,
    /// Endpoint halted: drain, CLEAR_FEATURE(ENDPOINT_HALT), resume.
    ClearHalt,
    /// Device gone: end the run.
    Unplugged,
    /// Count, back off briefly, resubmit; the breaker ends a run of them.
    Retry,
}

impl Policy {
    /// Classify a transfer error.
    pub fn of(e: TransferError) -> Policy {
        match e {
            TransferError::Cancelled => Policy::Cancelled,
            TransferError::Stall => Policy::ClearHalt,
            TransferError::Disconnected => Policy::Unplugged,
            _ => Policy::Retry,
        }
    }
}

/// Why a ring thread ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop (signal, or the other direction ended).
    Stopped,
    /// The device went away.
    Unplugged,
    /// Too many consecutive transfer errors, or an I/O error on the network side.
    Failed(String),
}

/// What the breaker's message adds after the last error: usbfs refusing memory (ENOMEM,
/// past `usbfs_memory_mb`) is a setting to change, not a device fault.
fn breaker_hint(e: TransferError) -> &'static str {
    match e {
        TransferError::Unknown(n) if n == libc::ENOMEM as u32 => {
            "; usbfs memory is exhausted: raise /sys/module/usbcore/parameters/usbfs_memory_mb \
             or lower --rx-queue/--tx-queue"
        }
        _ => "",
    }
}

/// A shared, level-triggered stop flag that `poll(2)` can wait on.
#[derive(Debug)]
pub struct Stop {
    reader: UnixStream,
    writer: UnixStream,
}

impl Stop {
    /// A new, untriggered stop flag.
    pub fn new() -> io::Result<Stop> {
        let (reader, writer) = UnixStream::pair()?;
        writer.set_nonblocking(true)?;
        Ok(Stop { reader, writer })
    }

    /// Trigger it (idempotent; safe from any thread).
    pub fn trigger(&self) {
        let _ = (&self.writer).write(&[1]);
    }

    /// The end a signal handler may write to (`signal_hook::low_level::pipe`).
    pub fn writer(&self) -> io::Result<UnixStream> {
        self.writer.try_clone()
    }

    /// Whether it has been triggered.
    pub fn is_set(&self) -> bool {
        let mut fds = [PollFd::new(&self.reader, PollFlags::IN)];
        matches!(poll(&mut fds, Some(&rustix::time::Timespec::default())), Ok(n) if n > 0)
    }
}

/// A waker that makes an eventfd readable: a waker-driven pipe's completion wakes our `poll`.
struct EventFdWaker(OwnedFd);

impl Wake for EventFdWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let _ = rustix::io::write(&self.0, &1u64.to_ne_bytes());
    }
}

/// One thread's sleep/wake machinery.
struct Sleeper {
    efd: Arc<EventFdWaker>,
    waker: Waker,
    /// fds of pipes reaped by this thread (usbfs): ready while a completion waits.
    usb: Vec<Arc<OwnedFd>>,
}

/// What woke a sleep.
#[derive(Debug, Clone, Copy, Default)]
struct Woken {
    /// The stop flag is set.
    stop: bool,
    /// A USB completion waits to be reaped.
    usb: bool,
    /// The network fd (when it was watched) has a frame to read.
    net: bool,
}

impl Sleeper {
    fn new() -> io::Result<Sleeper> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        let efd = Arc::new(EventFdWaker(fd));
        let waker = Waker::from(efd.clone());
        Ok(Sleeper {
            efd,
            waker,
            usb: Vec::new(),
        })
    }

    /// Also wake when `pipe`'s fd (if it has one) reports a completion.
    fn watch(&mut self, pipe: &dyn Pipe) {
        if let Some(fd) = pipe.wait_fd() {
            use std::os::fd::AsRawFd;
            if !self.usb.iter().any(|f| f.as_raw_fd() == fd.as_raw_fd()) {
                self.usb.push(fd);
            }
        }
    }

    /// Sleep until a completion wakes us, `stop` (if given) is set or `extra` is readable.
    fn sleep(&self, stop: Option<&Stop>, extra: Option<&File>, timeout: Option<Duration>) -> Woken {
        let ts = timeout.map(|d| rustix::time::Timespec {
            tv_sec: d.as_secs() as _,
            tv_nsec: d.subsec_nanos() as _,
        });
        let mut fds = Vec::with_capacity(3 + self.usb.len());
        fds.push(PollFd::new(&self.efd.0, PollFlags::IN));
        // Without a stop flag to watch, slot 1 asks the eventfd for nothing (an eventfd
        // reports no error or hang-up, the only events poll(2) returns unasked).
        match stop {
            Some(stop) => fds.push(PollFd::new(&stop.reader, PollFlags::IN)),
            None => fds.push(PollFd::new(&self.efd.0, PollFlags::empty())),
        }
        for u in &self.usb {
            fds.push(PollFd::new(&**u, PollFlags::OUT));
        }
        if let Some(f) = extra {
            fds.push(PollFd::from_borrowed_fd(f.as_fd(), PollFlags::IN));
        }
        let _ = poll(&mut fds, ts.as_ref());
        let n = self.usb.len();
        let woken = Woken {
            stop: !fds[1].revents().is_empty(),
            usb: fds[2..2 + n].iter().any(|f| !f.revents().is_empty()),
            net: fds.get(2 + n).is_some_and(|f| !f.revents().is_empty()),
        };
        if !fds[0].revents().is_empty() {
            let mut b = [0u8; 8];
            let _ = rustix::io::read(&self.efd.0, &mut b);
        }
        woken
    }
}

/// One TAP write of a virtio-net header and a packet; a refusal is counted. `false` if
/// the network side refused it.
fn write_tap(net: &File, stats: &Stats, hdr: &[u8], pkt: &[u8]) -> bool {
    let iov = [IoSlice::new(hdr), IoSlice::new(pkt)];
    let written = (&*net).write_vectored(&iov).is_ok();
    if !written {
        Stats::add(&stats.rx_drop_tap, 1);
    }
    written
}

/// Take the next completion from `pipe` if one is ready (registering `waker` otherwise).
fn next(pipe: &mut dyn Pipe, waker: &Waker) -> Option<Completion> {
    if pipe.pending() == 0 {
        return None;
    }
    match pipe.poll_complete(&mut Context::from_waker(waker)) {
        Poll::Ready(c) => Some(c),
        Poll::Pending => None,
    }
}

/// Cancel everything on `pipes` and wait, [`DRAIN_TIMEOUT`] at most for them all, for it to
/// come back. The stop flag is not watched here: it is usually what ended the run, and a
/// sleep it would end at once turned this wait into a spin.
fn drain(pipes: &mut [&mut dyn Pipe], sleeper: &Sleeper) {
    for p in pipes.iter_mut() {
        p.cancel_all();
    }
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while pipes.iter().any(|p| p.pending() > 0) && Instant::now() < deadline {
        let mut took = false;
        for p in pipes.iter_mut() {
            while next(&mut **p, &sleeper.waker).is_some() {
                took = true;
            }
        }
        if !took {
            sleeper.sleep(None, None, Some(Duration::from_millis(20)));
            for p in pipes.iter_mut() {
                p.reap();
            }
        }
    }
}

/// Ring sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingConfig {
    /// Bulk IN transfers kept in flight.
    pub rx_queue: usize,
    /// Bulk OUT transfers allowed in flight.
    pub tx_queue: usize,
    /// Bytes requested per IN transfer (a multiple of wMaxPacketSize).
    pub rx_transfer_size: usize,
    /// Largest OUT transfer.
    pub tx_transfer_size: usize,
    /// Largest frame the network side may hand us (MTU + Ethernet header).
    pub max_frame: usize,
    /// The network fd is a TAP with `IFF_VNET_HDR`: every frame read or written carries a
    /// virtio-net header, and reads may be TCP super-packets (TSO) or need a checksum.
    pub vnet: bool,
    /// How long a full OUT ring may go without a completion before its transfers are
    /// unlinked ([`TX_TIMEOUT`] by default).
    pub tx_timeout: Duration,
}

/// usbnet's TX_TIMEOUT_JIFFIES: when the OUT ring has been full this long with no
/// transfer completing (a device that stopped taking data), the kernel's netdev
/// watchdog calls usbnet's `tx_timeout`, which unlinks every OUT transfer; so does
/// the ring. Their frames are counted lost and the ring takes new ones; a device that
/// takes data again gets fresh frames instead of seconds-old ones.
pub const TX_TIMEOUT: Duration = Duration::from_secs(5);

/// Linux caps all in-flight usbfs memory at `usbfs_memory_mb` (16 MiB by default, shared by
/// every process). Queue depths are clamped so one instance uses at most a quarter of it;
/// past the cap, submissions fail with ENOMEM, which nusb reports as a failed transfer.
pub const USBFS_BUDGET: usize = 4 << 20;

impl RingConfig {
    /// Shrink the queue depths so the whole ring fits in half of the usbfs cap
    /// (`usbfs_memory_mb`, in MiB, shared by every process; 0 means no cap), instead of
    /// running into ENOMEM on every submission past it. Each direction keeps at least half
    /// of that budget when it needs it; a queue never grows and never drops below one
    /// transfer. Returns the line to log when a depth shrank.
    pub fn fit_usbfs_cap(&mut self, cap_mb: u64) -> Option<String> {
        if cap_mb == 0 {
            return None;
        }
        let budget = usize::try_from(cap_mb.saturating_mul(1 << 20) / 2).unwrap_or(usize::MAX);
        let rx_size = self.rx_transfer_size.max(1);
        let tx_size = self.tx_transfer_size.max(1);
        let (rx0, tx0) = (self.rx_queue, self.tx_queue);
        let tx_bytes = tx0.saturating_mul(tx_size);
        if rx0.saturating_mul(rx_size).saturating_add(tx_bytes) <= budget {
            return None;
        }
        let rx_share = budget - tx_bytes.min(budget / 2);
        self.rx_queue = rx0.min(rx_share / rx_size).max(1);
        let tx_share = budget.saturating_sub(self.rx_queue * rx_size);
        self.tx_queue = tx0.min(tx_share / tx_size).max(1);
        Some(format!(
            "usbfs_memory_mb is {cap_mb}: rx queue {rx0} -> {}, tx queue {tx0} -> {} transfers \
             to fit half of it (raise /sys/module/usbcore/parameters/usbfs_memory_mb for deeper queues)",
            self.rx_queue, self.tx_queue
        ))
    }

    /// Default depths from speed and transfer size, after usbnet's rx_qlen reasoning: keep
    /// the host controller busy for several milliseconds under load (60 full frames' worth
    /// at high speed, five times that at SuperSpeed), at least 4 and at most what the usbfs
    /// budget allows. We go deeper than usbnet at small transfer sizes because every
    /// completion costs a userspace wake-up.
    pub fn sized(
        rx_transfer_size: usize,
        tx_transfer_size: usize,
        max_frame: usize,
        super_speed: bool,
        full_speed: bool,
    ) -> RingConfig {
        let budget_bytes = if super_speed {
            5 * 60 * 1518
        } else {
            60 * 1518
        };
        let depth = |size: usize| {
            let size = size.max(1);
            let want = if full_speed {
                8
            } else {
                (budget_bytes / size).clamp(8, 64)
            };
            want.min(USBFS_BUDGET / 2 / size).max(4)
        };
        RingConfig {
            rx_queue: depth(rx_transfer_size),
            tx_queue: depth(tx_transfer_size),
            rx_transfer_size,
            tx_transfer_size,
            max_frame,
            vnet: false,
            tx_timeout: TX_TIMEOUT,
        }
    }
}

/// The RX side: bulk IN + interrupt IN → frames to the network, link events.
pub struct RxSide {
    /// Bulk IN endpoint.
    pub bulk_in: Box<dyn Pipe>,
    /// Interrupt IN endpoint, if the function has one.
    pub interrupt: Option<Box<dyn Pipe>>,
    /// Class RX hook.
    pub rx: Box<dyn RxFixup>,
    /// Class status hook.
    pub status: Box<dyn StatusFixup>,
    /// Where frames go (TAP fd).
    pub net: Arc<File>,
    /// Called on every carrier change and every speed the device reports.
    pub on_link: Box<dyn FnMut(LinkEvent) + Send>,
    /// Whether the network side takes frames now (the interface is up). Asked when a
    /// write is refused, and while it is down; see [`RxState::net_down`].
    pub net_up: Box<dyn FnMut() -> bool + Send>,
}

/// The TX side: frames from the network → bulk OUT.
pub struct TxSide {
    /// Bulk OUT endpoint.
    pub bulk_out: Box<dyn Pipe>,
    /// Class TX hook.
    pub tx: Box<dyn TxFixup>,
    /// Where frames come from (TAP fd, non-blocking).
    pub net: Arc<File>,
}

/// RX state between steps.
struct RxState {
    side: RxSide,
    cfg: RingConfig,
    drops: RxDrops,
    events: Vec<LinkEvent>,
    /// The bulk IN endpoint's halt and error state.
    bulk: EpState,
    /// Received buffers not yet resubmitted: they go back in a batch once more than
    /// [`RxState::spare_max`] wait, so that a lone frame's TAP write is not followed by a
    /// submission before the thread sleeps and the woken reader gets the CPU.
    spare: Vec<Buffer>,
    spare_max: usize,
    /// Receive coalescing, when the network side takes virtio-net headers.
    gro: Option<Gro>,
    /// The TAP starts without carrier when the class reports it; act on changes only
    /// (some devices repeat NETWORK_CONNECTION many times a second).
    carrier: Option<bool>,
    /// The interrupt endpoint's halt and error state.
    int: EpState,
    /// The network side was found down (an interface set down refuses every frame):
    /// bulk IN is not polled until it is up again, as usbnet's `stop` kills its IN
    /// transfers and its `open` submits them again. The device keeps what it has to
    /// send meanwhile instead of usbnetd reading and dropping it. Since when, for the
    /// next look.
    net_down: Option<Instant>,
}

/// An endpoint's halt and error state (bulk IN, interrupt IN, bulk OUT).
#[derive(Default)]
struct EpState {
    /// A stall is being cleared: it is, once nothing of the endpoint is pending.
    halting: bool,
    /// IN: buffers held back meanwhile (or for good, once `off`).
    held: Vec<Buffer>,
    errors: Breaker,
    /// Its breaker tripped: no longer resubmitted (the interrupt endpoint only; bulk IN
    /// and bulk OUT end the run instead).
    off: bool,
}

impl EpState {
    /// A stall on `pipe` (the `what` endpoint), unless its clear is under way: counted
    /// once in `errors`, however many transfers it fails, and the transfers queued behind
    /// it are unlinked, as usbnet does before clearing a halt: a host controller may hold
    /// them on the halted endpoint (xHCI does, where dummy_hcd fails them), and the clear
    /// waits for them all. `true` if it began.
    fn begin_halt(&mut self, pipe: &mut dyn Pipe, errors: &AtomicU64, what: &str) -> bool {
        if self.halting {
            return false;
        }
        Stats::add(errors, 1);
        log::warn!("{what} 0x{:02x} stalled; clearing the halt", pipe.address());
        pipe.cancel_all();
        self.halting = true;
        true
    }

    /// Once nothing of `pipe` is pending, clear its halt (counted when it worked) and
    /// resubmit what was held. `Ok(true)` if it did.
    fn end_halt(&mut self, pipe: &mut dyn Pipe, stats: &Stats, what: &str) -> Result<bool, Exit> {
        if !self.halting || pipe.pending() > 0 {
            return Ok(false);
        }
        match pipe.clear_halt() {
            Ok(()) => Stats::add(&stats.stalls_cleared, 1),
            Err(TransferError::Disconnected) => return Err(Exit::Unplugged),
            Err(e) => log::warn!("clear halt on {what} failed: {e}"),
        }
        self.halting = false;
        if !self.off {
            for b in self.held.drain(..) {
                pipe.submit(b);
            }
        }
        Ok(true)
    }
}

impl RxState {
    fn new(side: RxSide, cfg: RingConfig) -> RxState {
        RxState {
            side,
            cfg,
            drops: RxDrops::default(),
            events: Vec::new(),
            bulk: EpState::default(),
            spare: Vec::new(),
            // between steps at most a quarter of the ring (and at most 8) waits here
            spare_max: (cfg.rx_queue / 4).min(8),
            gro: cfg.vnet.then(Gro::new),
            carrier: None,
            int: EpState::default(),
            net_down: None,
        }
    }

    /// A write was refused: if the network side is down, stop polling bulk IN (what is
    /// in flight is cancelled; the buffers wait in `spare`).
    fn refused(&mut self) {
        if self.net_down.is_some() || (self.side.net_up)() {
            return;
        }
        log::info!("the interface is down: bulk IN paused until it is up");
        self.net_down = Some(Instant::now());
        self.side.bulk_in.cancel_all();
    }

    /// While the network side is down, look again (at once if `now`, else once per
    /// [`NET_DOWN_RECHECK`]); once it is up, put every IN transfer back in flight.
    fn recheck_net(&mut self, now: bool) {
        let Some(since) = self.net_down else {
            return;
        };
        if !now && since.elapsed() < NET_DOWN_RECHECK {
            return;
        }
        if !(self.side.net_up)() {
            self.net_down = Some(Instant::now());
            return;
        }
        log::info!("the interface is up: bulk IN resumed");
        self.net_down = None;
        self.resubmit_spare();
    }

    /// Put the buffers waiting in `spare` back in flight, unless a halt is being cleared
    /// (they wait for the clear) or the network side is down (they wait for it to be up).
    fn resubmit_spare(&mut self) {
        if self.bulk.halting || self.net_down.is_some() {
            return;
        }
        for b in self.spare.drain(..) {
            self.side.bulk_in.submit(b);
        }
    }

    /// How long a sleep may last: while the network side is down, until the next look.
    fn sleep_limit(&self) -> Option<Duration> {
        self.net_down.map(|_| NET_DOWN_RECHECK)
    }

    /// Put every IN transfer in flight (allocated once, here).
    fn start(&mut self) {
        let size = self.cfg.rx_transfer_size;
        for _ in 0..self.cfg.rx_queue.max(1) {
            let mut b = self.side.bulk_in.allocate(size);
            b.set_requested_len(size);
            self.side.bulk_in.submit(b);
        }
        if let Some(int) = self.side.interrupt.as_mut() {
            let mps = int.max_packet_size().max(1);
            // 16 bytes hold the largest CDC notification we act on (CONNECTION_SPEED_CHANGE).
            let len = 16usize.div_ceil(mps) * mps;
            for _ in 0..2 {
                let mut b = int.allocate(len);
                b.set_requested_len(len);
                int.submit(b);
            }
        }
    }

    /// Handle every completion that is ready. `Ok(true)` if anything happened.
    fn step(&mut self, waker: &Waker, stats: &Stats, stop: &Stop) -> Result<bool, Exit> {
        let mut worked = false;
        // A failed transfer to retry was seen: pause once, at the end of the step.
        let mut pause = false;
        // The network side refused a frame.
        let mut refused = false;
        self.recheck_net(false);
        while let Some(c) = next(self.side.bulk_in.as_mut(), waker) {
            worked = true;
            match c.status {
                Ok(()) => {
                    self.bulk.errors.ok();
                    Stats::add(&stats.rx_transfers, 1);
                    let data = &c.buffer[..c.actual_len.min(c.buffer.len())];
                    let before = self.drops;
                    let net = &self.side.net;
                    let count = |frame: &[u8]| {
                        Stats::add(&stats.rx_frames, 1);
                        Stats::add(&stats.rx_bytes, frame.len() as u64);
                    };
                    match self.gro.as_mut() {
                        Some(gro) => {
                            // With offloads on: coalesce each transfer's TCP bursts.
                            let mut write = |hdr: &[u8], pkt: &[u8]| {
                                refused |= !write_tap(net, stats, hdr, pkt);
                            };
                            let merged = gro.merged_packets;
                            self.side.rx.rx_fixup(
                                data,
                                &mut |frame| {
                                    count(frame);
                                    gro.push(frame, &mut write);
                                },
                                &mut self.drops,
                            );
                            Stats::add(&stats.rx_gro_packets, gro.merged_packets - merged);
                        }
                        None => self.side.rx.rx_fixup(
                            data,
                            &mut |frame| match (&**net).write(frame) {
                                Ok(_) => count(frame),
                                Err(_) => {
                                    refused = true;
                                    Stats::add(&stats.rx_drop_tap, 1)
                                }
                            },
                            &mut self.drops,
                        ),
                    }
                    Stats::add(
                        &stats.rx_drop_bad_transfer,
                        self.drops.bad_transfer - before.bad_transfer,
                    );
                    Stats::add(
                        &stats.rx_drop_bad_frame,
                        self.drops.bad_frame - before.bad_frame,
                    );
                }
                Err(e) => match Policy::of(e) {
                    Policy::Cancelled if stop.is_set() => return Err(Exit::Stopped),
                    Policy::Cancelled => {}
                    Policy::Unplugged => return Err(Exit::Unplugged),
                    Policy::ClearHalt => {
                        // One halt, one error: the other transfers in flight come back
                        // failed with it (dummy_hcd fails each with -EPIPE).
                        if self.bulk.begin_halt(
                            self.side.bulk_in.as_mut(),
                            &stats.rx_errors,
                            "bulk IN",
                        ) {
                            // What waits for resubmission waits for the clear too.
                            self.bulk.held.append(&mut self.spare);
                        }
                    }
                    Policy::Retry => {
                        Stats::add(&stats.rx_errors, 1);
                        if self.bulk.errors.failed() {
                            return Err(Exit::Failed(format!(
                                "{} bulk IN transfers failed in a row (last: {e}){}",
                                self.bulk.errors.in_row,
                                breaker_hint(e)
                            )));
                        }
                        pause = true;
                    }
                },
            }
            if self.bulk.halting {
                self.bulk.held.push(c.buffer);
            } else {
                self.spare.push(c.buffer);
            }
        }
        // Coalescing spans every transfer that was ready at once (ECM sends one frame per
        // transfer); what is held is written as soon as nothing more is ready.
        if let Some(gro) = self.gro.as_mut() {
            let net = &self.side.net;
            let merged = gro.merged_packets;
            gro.flush(&mut |hdr, pkt| refused |= !write_tap(net, stats, hdr, pkt));
            Stats::add(&stats.rx_gro_packets, gro.merged_packets - merged);
        }
        if refused {
            self.refused();
        }
        // Resubmit after the frames are written, and only once several wait: between
        // steps at least `rx_queue - spare_max` transfers stay in flight.
        if self.spare.len() > self.spare_max {
            self.resubmit_spare();
        }
        worked |= self
            .bulk
            .end_halt(self.side.bulk_in.as_mut(), stats, "bulk IN")?;
        if let Some(int) = self.side.interrupt.as_mut() {
            let st = &mut self.int;
            while let Some(c) = next(int.as_mut(), waker) {
                worked = true;
                match c.status {
                    Ok(()) => {
                        st.errors.ok();
                        Stats::add(&stats.notifications, 1);
                        let data = &c.buffer[..c.actual_len.min(c.buffer.len())];
                        self.side.status.status(data, &mut self.events);
                    }
                    Err(e) => match Policy::of(e) {
                        Policy::Unplugged => return Err(Exit::Unplugged),
                        Policy::Cancelled if stop.is_set() => return Err(Exit::Stopped),
                        Policy::Cancelled => {}
                        Policy::ClearHalt => {
                            // As for bulk IN: unlink the other transfer, clear once both
                            // are back (resubmitting each at once kept one pending forever).
                            st.begin_halt(int.as_mut(), &stats.rx_errors, "interrupt IN");
                        }
                        Policy::Retry => {
                            Stats::add(&stats.rx_errors, 1);
                            if st.errors.failed() {
                                // Link notifications are lost, the data path is not: go on
                                // without them rather than end the run.
                                log::warn!(
                                    "{} interrupt IN transfers failed in a row (last: {e}); \
                                     link state notifications are off from now on",
                                    st.errors.in_row
                                );
                                st.off = true;
                            } else {
                                pause = true;
                            }
                        }
                    },
                }
                if st.halting || st.off {
                    st.held.push(c.buffer);
                } else {
                    int.submit(c.buffer);
                }
            }
            worked |= st.end_halt(int.as_mut(), stats, "interrupt IN")?;
        }
        if pause {
            std::thread::sleep(RETRY_PAUSE);
        }
        for ev in self.events.drain(..) {
            match ev {
                LinkEvent::Carrier(on) if self.carrier == Some(on) => {}
                LinkEvent::Carrier(on) => {
                    self.carrier = Some(on);
                    Stats::add(&stats.carrier_changes, 1);
                    log::info!("link {}", if on { "up" } else { "down" });
                    (self.side.on_link)(ev);
                }
                LinkEvent::Speed { down_bps, up_bps } => {
                    Stats::set(&stats.speed_down_bps, down_bps.into());
                    Stats::set(&stats.speed_up_bps, up_bps.into());
                    log::info!("link speed {down_bps} bit/s down, {up_bps} bit/s up");
                    (self.side.on_link)(ev);
                }
            }
        }
        Ok(worked)
    }

    /// A completion was reaped into user space by another pipe's poll and waits there
    /// (the fd no longer reports it): step again before sleeping.
    fn has_completion(&self) -> bool {
        self.side.bulk_in.has_completion()
            || self
                .side
                .interrupt
                .as_ref()
                .is_some_and(|i| i.has_completion())
    }

    /// Let `sleeper` wake on this side's pipes' fds.
    fn watch(&self, sleeper: &mut Sleeper) {
        sleeper.watch(self.side.bulk_in.as_ref());
        if let Some(int) = self.side.interrupt.as_ref() {
            sleeper.watch(int.as_ref());
        }
    }

    /// This side's pipes, for [`drain`].
    fn pipes(&mut self) -> Vec<&mut dyn Pipe> {
        let mut v: Vec<&mut dyn Pipe> = vec![self.side.bulk_in.as_mut()];
        if let Some(int) = self.side.interrupt.as_mut() {
            v.push(int.as_mut());
        }
        v
    }
}

/// TX state between steps.
struct TxState {
    side: TxSide,
    /// OUT transfers allowed in flight.
    slots: usize,
    /// OUT buffers not in flight; allocated once (from the pipe: zero-copy where it can),
    /// recycled from completions.
    free: Vec<Buffer>,
    /// Where a frame is read from the network: room for anything the TAP can hand over
    /// (the MTU can be raised under us): a frame the device cannot take is dropped and
    /// counted, never truncated.
    frame: Vec<u8>,
    /// What was read from the network and has not all fit the open transfer yet.
    carry: Option<Carry>,
    /// Frames carry a virtio-net header (TAP with offloads): super-packets to segment,
    /// checksums to finish.
    vnet: bool,
    /// The transfer being filled.
    open: Option<Buffer>,
    open_frames: u64,
    /// Transfers submitted so far (ZLPs included): tells a step that it submitted.
    submitted: u64,
    busy: bool,
    /// While every slot is in flight: since when no OUT transfer completed (the TX
    /// watchdog's clock), and how long it may run.
    stalled_since: Option<Instant>,
    tx_timeout: Duration,
    /// The bulk OUT endpoint's halt and error state (nothing is held: a failed transfer's
    /// frames are lost, and its buffer goes back to `free`).
    ep: EpState,
    /// The network side returned nothing to the last read and `poll(2)` has not reported
    /// it readable since: a step does not read it again (one EAGAIN read fewer on every
    /// wake-up that is for USB completions alone).
    net_drained: bool,
    /// The OUT pipe is reaped through an fd: a submission needs no further poll of the
    /// pipe before sleeping (a waker-driven pipe registers its waker only on a poll).
    fd_pipe: bool,
}

/// A read from the network not (entirely) in a transfer yet.
#[derive(Debug, Clone, Copy)]
struct Carry {
    /// Bytes read (virtio-net header included when there is one).
    len: usize,
    /// What the read is.
    prep: Prepared,
    /// The next segment to push.
    next: usize,
}

/// What a TX step did.
struct TxStep {
    /// Anything happened (loop again before sleeping).
    worked: bool,
    /// There is room for a frame: wake when the network has one.
    room: bool,
}

impl TxState {
    /// Whether OUT completions are left uncollected for now: only once half the slots are
    /// in flight (or a frame waits, or a halt is pending) is the endpoint polled.
    fn lazy(&self) -> bool {
        self.free.len() * 2 > self.slots && self.carry.is_none() && !self.ep.halting
    }

    /// An OUT completion waits in user space (see [`RxState::has_completion`]): the next
    /// step takes it, lazy or not (it costs no system call, and it may be a stall that
    /// must stop frames from going into the halted endpoint).
    fn wants_completion(&self) -> bool {
        self.side.bulk_out.has_completion()
    }

    fn new(side: TxSide, cfg: RingConfig) -> TxState {
        let slots = cfg.tx_queue.max(1);
        let fd_pipe = side.bulk_out.wait_fd().is_some();
        // A class may close a full transfer with a byte or two more (RNDIS's one-byte
        // short packet, EEM's zero-length packet): room for those too.
        let free = (0..slots)
            .map(|_| side.bulk_out.allocate(cfg.tx_transfer_size + TX_SLACK))
            .collect();
        TxState {
            side,
            slots,
            free,
            frame: vec![0u8; cfg.max_frame.max(65_536) + vnet::LEN],
            carry: None,
            vnet: cfg.vnet,
            open: None,
            open_frames: 0,
            submitted: 0,
            busy: false,
            stalled_since: None,
            tx_timeout: cfg.tx_timeout,
            ep: EpState::default(),
            net_drained: false,
            fd_pipe,
        }
    }

    /// The TX watchdog: the ring has been full for [`RingConfig::tx_timeout`] with no
    /// completion (see [`TX_TIMEOUT`]): unlink every OUT transfer. Their completions
    /// (cancelled) count their frames lost and free the slots.
    fn watchdog(&mut self, stats: &Stats) {
        let Some(since) = self.stalled_since else {
            return;
        };
        if self.ep.halting || since.elapsed() < self.tx_timeout {
            return;
        }
        log::warn!(
            "bulk OUT: no transfer completed in {:?} with all {} in flight; unlinking them \
             (the device takes no data)",
            self.tx_timeout,
            self.slots
        );
        Stats::add(&stats.tx_timeouts, 1);
        self.side.bulk_out.cancel_all();
        self.stalled_since = Some(Instant::now());
    }

    /// How long a sleep may last: while the ring is full, until the watchdog is due.
    fn sleep_limit(&self) -> Option<Duration> {
        self.stalled_since
            .map(|since| self.tx_timeout.saturating_sub(since.elapsed()))
    }

    /// What a sleep that watched the network fd when `watched` says about it.
    fn woke(&mut self, watched: bool, woken: Woken) {
        // Unwatched (no room), it may have filled meanwhile: read it again.
        self.net_drained = watched && !woken.net;
    }

    /// Take every OUT completion that is ready: free its slot, act on its status.
    /// `Ok(true)` if there was any.
    fn collect(&mut self, waker: &Waker, stats: &Stats, stop: &Stop) -> Result<bool, Exit> {
        let mut any = false;
        while let Some(c) = next(self.side.bulk_out.as_mut(), waker) {
            any = true;
            let is_zlp = c.buffer.capacity() == 0;
            if c.status.is_err() && !stop.is_set() {
                // The frames it carried (its tag, set at submission) are lost.
                Stats::add(&stats.tx_drop_error, c.buffer.tag().into());
            }
            match c.status {
                Ok(()) => self.ep.errors.ok(),
                Err(e) => match Policy::of(e) {
                    Policy::Unplugged => return Err(Exit::Unplugged),
                    Policy::Cancelled if stop.is_set() => return Err(Exit::Stopped),
                    // Unlinked to clear a halt (its frames are counted lost above).
                    Policy::Cancelled => {}
                    Policy::ClearHalt => {
                        self.ep.begin_halt(
                            self.side.bulk_out.as_mut(),
                            &stats.tx_errors,
                            "bulk OUT",
                        );
                    }
                    Policy::Retry => {
                        Stats::add(&stats.tx_errors, 1);
                        if self.ep.errors.failed() {
                            return Err(Exit::Failed(format!(
                                "{} bulk OUT transfers failed in a row (last: {e}){}",
                                self.ep.errors.in_row,
                                breaker_hint(e)
                            )));
                        }
                    }
                },
            }
            if !is_zlp {
                let mut v = c.buffer;
                v.clear();
                self.free.push(v);
            }
        }
        // The device took something: the watchdog's clock starts again (once per
        // collection, not per completion: a full ring under load collects often).
        if any && self.stalled_since.is_some() {
            self.stalled_since = Some(Instant::now());
        }
        Ok(any)
    }

    fn step(&mut self, waker: &Waker, stats: &Stats, stop: &Stop) -> Result<TxStep, Exit> {
        // 1. Completions free slots. They are collected lazily: only once half the slots
        // are in flight (or a frame waits, or a halt is pending) is the endpoint polled.
        // Light traffic (ACKs) then costs no collection per OUT transfer (and, with a
        // waker-driven pipe, no wake-up either; a usbfs fd wakes for any completion).
        // Completions already in user space are taken even when lazy (no system call; one
        // may be a stall), but as no work to loop again for, which would cost a reap and a
        // TAP read per wake-up of light traffic: what they free is used below.
        let mut worked = false;
        if !self.lazy() {
            worked = self.collect(waker, stats, stop)?;
        } else if self.side.bulk_out.has_completion() {
            self.collect(waker, stats, stop)?;
        }
        worked |= self
            .ep
            .end_halt(self.side.bulk_out.as_mut(), stats, "bulk OUT")?;

        // 2. Fill transfers from the network while a slot is free.
        let mut net_empty = false;
        let submitted_before = self.submitted;
        loop {
            if self.ep.halting {
                // A stall stops filling until its halt is cleared.
                break;
            }
            let mut c = match self.carry.take() {
                Some(c) => c,
                None if self.net_drained => {
                    net_empty = true;
                    break;
                }
                None => {
                    let len = match (&*self.side.net).read(&mut self.frame) {
                        Ok(0) => {
                            net_empty = true;
                            self.net_drained = true;
                            break;
                        }
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            net_empty = true;
                            self.net_drained = true;
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(Exit::Failed(format!("reading the TAP: {e}"))),
                    };
                    let prep = if self.vnet {
                        match gso::prepare(&mut self.frame[..len]) {
                            Ok(p) => p,
                            Err(e) => {
                                log::debug!("dropping a {len}-byte frame from the TAP: {e}");
                                Stats::add(&stats.tx_drop_invalid, 1);
                                continue;
                            }
                        }
                    } else {
                        Prepared::Frame
                    };
                    if matches!(prep, Prepared::Segments(_)) {
                        Stats::add(&stats.tx_gso_packets, 1);
                    }
                    Carry { len, prep, next: 0 }
                }
            };
            if self.open.is_none() {
                if self.free.is_empty() {
                    // Before calling the ring full, take back what completed meanwhile
                    // (left lazily, or not reaped yet): the stop is counted only when
                    // every slot really is in flight.
                    self.side.bulk_out.reap();
                    self.collect(waker, stats, stop)?;
                }
                match self.free.pop() {
                    Some(mut v) if !self.ep.halting => {
                        self.side.tx.begin(&mut v);
                        self.open = Some(v);
                        self.open_frames = 0;
                    }
                    Some(v) => {
                        // That collection found a stall: wait for the halt to clear.
                        self.free.push(v);
                        self.carry = Some(c);
                        break;
                    }
                    None => {
                        self.carry = Some(c);
                        if !self.busy {
                            self.busy = true;
                            Stats::add(&stats.tx_busy, 1);
                        }
                        break;
                    }
                }
            }
            let off = if self.vnet { vnet::LEN } else { 0 };
            let packet = &self.frame[off..c.len];
            let out = self.open.as_mut().expect("open transfer");
            // Push the frame, or the super-packet's segments from `c.next` on.
            let count = match c.prep {
                Prepared::Frame => 1,
                Prepared::Segments(seg) => seg.count(),
            };
            while c.next < count {
                // A segment is cut straight into the transfer (copied and checksummed
                // once); a transfer that refuses it leaves it uncut for the next one.
                let (len, pushed) = match c.prep {
                    Prepared::Frame => (packet.len(), self.side.tx.push(out, packet)),
                    Prepared::Segments(seg) => {
                        let (i, len) = (c.next, seg.segment_len(c.next));
                        let fill = &mut |d: &mut [u8]| {
                            seg.segment(packet, i, d);
                        };
                        (len, self.side.tx.push_with(out, len, fill))
                    }
                };
                match pushed {
                    Ok(()) => {
                        self.open_frames += 1;
                        Stats::add(&stats.tx_bytes, len as u64);
                    }
                    Err(Refused::Full) if !self.side.tx.is_empty() => break,
                    // A class that calls an empty transfer full cannot take this frame.
                    Err(_) => Stats::add(&stats.tx_drop_invalid, 1),
                }
                c.next += 1;
                // A full transfer is submitted below as soon as it fills, so only this
                // push can have filled it.
                if self.side.tx.is_full() {
                    break;
                }
            }
            if c.next < count {
                self.carry = Some(c);
            }
            // A transfer the rest did not fit, or one the class calls full (one frame per
            // transfer, or the device's limit): hand it over now rather than after the next
            // read, which for a lone frame (a ping) is an EAGAIN between frame and device.
            if c.next < count || self.side.tx.is_full() {
                self.submit_open(stats);
            }
        }
        // 3. Flush as soon as the network has nothing more for us: no timer holds a frame.
        if net_empty && self.open.is_some() && !self.side.tx.is_empty() {
            self.submit_open(stats);
        }
        if self.carry.is_none() && !self.free.is_empty() {
            self.busy = false;
        }
        // After a submission a waker-driven pipe must be polled again before sleeping:
        // that registers the waker (it is registered only on a poll that finds nothing
        // ready). A pipe with an fd is watched by the sleep itself.
        worked |= !self.fd_pipe && self.submitted != submitted_before;
        let room = self.carry.is_none()
            && (self.open.is_some() || !self.free.is_empty())
            && !self.ep.halting;
        // The watchdog's clock runs while the network is not read for want of a slot
        // (whether or not a frame waits yet), as the kernel's runs from netif_stop_queue;
        // every completion restarts it (in `collect`).
        match (!room && !self.ep.halting, self.stalled_since) {
            (true, None) => self.stalled_since = Some(Instant::now()),
            (false, Some(_)) => self.stalled_since = None,
            _ => {}
        }
        self.watchdog(stats);
        if !room {
            // "Drained" is only worth knowing while a sleep watches the network fd, which
            // it does only with room; a frame that came after the EAGAIN must be seen
            // (and the stop counted) as soon as a slot is wanted.
            self.net_drained = false;
        }
        Ok(TxStep { worked, room })
    }

    /// Close the open transfer and submit it (and a ZLP after it when the class asks).
    /// Frames and transfers are counted here, when they are handed to the device: OUT
    /// completions are collected lazily; failures are counted when they come back.
    fn submit_open(&mut self, stats: &Stats) {
        let Some(mut v) = self.open.take() else {
            return;
        };
        let zlp = self.side.tx.finish(&mut v);
        v.set_tag(u32::try_from(self.open_frames).unwrap_or(u32::MAX));
        self.side.bulk_out.submit(v);
        self.submitted += 1;
        Stats::add(&stats.tx_transfers, 1);
        Stats::add(&stats.tx_frames, self.open_frames);
        if zlp {
            self.side.bulk_out.submit(Buffer::new(0));
            self.submitted += 1;
            Stats::add(&stats.tx_zlps, 1);
        }
    }
}

/// Bytes an OUT buffer holds beyond the largest transfer (see [`TxState::new`]).
const TX_SLACK: usize = 64;

fn start_sleeper() -> Result<Sleeper, Exit> {
    Sleeper::new().map_err(|e| Exit::Failed(format!("eventfd: {e}")))
}

/// Run both directions in one thread until stop, unplug or failure: one `poll(2)` for
/// completions, the network fd and the stop flag. On a loaded machine this avoids a
/// thread hop between a received frame and the ACK it provokes, and lets one wake-up
/// serve both directions.
pub fn run(rx: RxSide, tx: TxSide, cfg: RingConfig, stats: &Stats, stop: &Stop) -> Exit {
    let mut sleeper = match start_sleeper() {
        Ok(s) => s,
        Err(e) => return e,
    };
    let mut rx = RxState::new(rx, cfg);
    let mut tx = TxState::new(tx, cfg);
    rx.watch(&mut sleeper);
    sleeper.watch(tx.side.bulk_out.as_ref());
    rx.start();
    let exit = loop {
        let r = rx.step(&sleeper.waker, stats, stop);
        let t = tx.step(&sleeper.waker, stats, stop);
        let (rw, t) = match (r, t) {
            (Err(e), _) | (_, Err(e)) => break e,
            (Ok(rw), Ok(t)) => (rw, t),
        };
        if rw || t.worked {
            // Busy: take what completed meanwhile without a poll. A frame written up ran
            // the stack's receive path in this thread, which often queues a frame to
            // send (an ACK for data, more data for an ACK): read the network again.
            rx.side.bulk_in.reap();
            if rw {
                tx.net_drained = false;
            }
        } else if !rx.has_completion() && !tx.wants_completion() {
            let net = tx.side.net.clone();
            let limit = match (rx.sleep_limit(), tx.sleep_limit()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let woken = sleeper.sleep(Some(stop), t.room.then_some(&*net), limit);
            Stats::add(&stats.wakeups, 1);
            if woken.stop {
                break Exit::Stopped;
            }
            // A frame to send means the interface is up again.
            rx.recheck_net(woken.net);
            tx.woke(t.room, woken);
            if woken.usb {
                // Completions may belong to a pipe the next steps do not poll (TX polls
                // its completions lazily): move them to their queues so the fd calms.
                rx.side.bulk_in.reap();
            }
        }
    };
    let mut pipes = rx.pipes();
    pipes.push(tx.side.bulk_out.as_mut());
    drain(&mut pipes, &sleeper);
    exit
}

/// Run the RX direction alone until stop, unplug or failure.
pub fn run_rx(side: RxSide, cfg: RingConfig, stats: &Stats, stop: &Stop) -> Exit {
    let mut sleeper = match start_sleeper() {
        Ok(s) => s,
        Err(e) => return e,
    };
    let mut rx = RxState::new(side, cfg);
    rx.watch(&mut sleeper);
    rx.start();
    let exit = loop {
        match rx.step(&sleeper.waker, stats, stop) {
            Err(e) => break e,
            Ok(true) => {}
            Ok(false) if rx.has_completion() => {}
            Ok(false) => {
                let woken = sleeper.sleep(Some(stop), None, rx.sleep_limit());
                if woken.stop {
                    break Exit::Stopped;
                }
                if woken.usb {
                    rx.side.bulk_in.reap();
                }
            }
        }
    };
    drain(&mut rx.pipes(), &sleeper);
    exit
}

/// Run the TX direction alone until stop, unplug or failure.
pub fn run_tx(side: TxSide, cfg: RingConfig, stats: &Stats, stop: &Stop) -> Exit {
    let mut sleeper = match start_sleeper() {
        Ok(s) => s,
        Err(e) => return e,
    };
    let mut tx = TxState::new(side, cfg);
    sleeper.watch(tx.side.bulk_out.as_ref());
    let exit = loop {
        match tx.step(&sleeper.waker, stats, stop) {
            Err(e) => break e,
            Ok(t) if t.worked || tx.wants_completion() => {}
            Ok(t) => {
                let net = tx.side.net.clone();
                let woken = sleeper.sleep(Some(stop), t.room.then_some(&*net), tx.sleep_limit());
                if woken.stop {
                    break Exit::Stopped;
                }
                tx.woke(t.room, woken);
                if woken.usb {
                    tx.side.bulk_out.reap();
                }
            }
        }
    };
    drain(&mut [tx.side.bulk_out.as_mut()], &sleeper);
    exit
}

/// Count a finished run's exit in the log, for the supervisor.
pub fn describe(exit: &Exit) -> String {
    match exit {
        Exit::Stopped => "stopped".into(),
        Exit::Unplugged => "device unplugged".into(),
        Exit::Failed(why) => format!("failed: {why}"),
    }
}
