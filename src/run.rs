//! `usbnetd run`: bring a USB network function up as a TAP interface and bridge it until a
//! signal or unplug, then hand everything back.
//!
//! Bring-up order, after the kernel's usbnet family: select the probed configuration (only
//! when it is not the active one), detach kernel drivers and claim the control and data
//! interfaces, data interface to alt 0, class bind (control requests), data interface to its
//! data alt setting, open the endpoints, create the TAP, start the ring. Every step's
//! resources are owned values dropped in reverse order on any error, so a failed start
//! leaves nothing behind: no TAP, interfaces released, kernel driver re-attached.

use std::path::PathBuf;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;

use crate::class::{self, BindError, BusFacts, RxMode};
use crate::descriptor;
use crate::pcap::{wrap_pipe, XferType};
use crate::probe::{self, ClassKind, NetFunction};
use crate::ring::{self, Exit, RingConfig, RxSide, Stop, TxSide};
use crate::stats::Stats;
use crate::tap::{self, IfState, Tap, TapConfig, TapError};
use crate::usb::usbfs::{Device, Speed, UsbfsControl, UsbfsPipe};
use crate::usb::{self, Selector, UsbDevice, UsbError};

/// Exit status when the device was unplugged (systemd's unit lists it as a success).
pub const EXIT_UNPLUGGED: i32 = 3;
/// Exit status when the datapath failed (repeated transfer errors, TAP I/O error).
pub const EXIT_DATAPATH: i32 = 4;

/// Where running instances publish their counters.
pub const STATS_DIR: &str = "/run/usbnetd";

/// Options of `usbnetd run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Which device; `None`: the first USB network function present.
    pub device: Option<Selector>,
    /// Interface name; `None`: `enx` + MAC.
    pub ifname: Option<String>,
    /// Drive this class even if the probe prefers another one the device offers.
    pub class: Option<ClassKind>,
    /// Bulk IN transfers in flight (default from speed and transfer size).
    pub rx_queue: Option<usize>,
    /// Bulk OUT transfers in flight.
    pub tx_queue: Option<usize>,
    /// TAP txqueuelen.
    pub txqueuelen: u32,
    /// Leave TCP segmentation and checksums to the kernel (no `IFF_VNET_HDR`).
    pub no_offload: bool,
    /// Nice value for the datapath (0: leave the priority alone).
    pub nice: i32,
    /// Run the datapath as SCHED_BATCH (`--sched batch`, the default).
    pub sched_batch: bool,
    /// Directory for the stats file.
    pub stats_dir: PathBuf,
    /// Record what crosses the bus (or the frames) into this pcap file.
    pub pcap: Option<PathBuf>,
    /// What `pcap` records.
    pub pcap_link: crate::pcap::PcapLink,
}

/// Everything that can stop `run` before the datapath starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// USB-side problem.
    #[error(transparent)]
    Usb(#[from] UsbError),
    /// TAP-side problem.
    #[error(transparent)]
    Tap(#[from] TapError),
    /// Class bring-up failed.
    #[error("{class} bring-up failed: {source}")]
    Bind {
        /// Class.
        class: ClassKind,
        /// Cause.
        source: BindError,
    },
    /// No network function found.
    #[error("{0}")]
    NoFunction(String),
    /// Setting up the process (signals, threads).
    #[error("{0}")]
    Setup(String),
}

/// How a run ended once the interface was up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The interface that was up.
    pub ifname: String,
    /// Why it ended.
    pub exit: Exit,
}

impl Ended {
    /// The process exit status for this end.
    pub fn status(&self) -> i32 {
        match self.exit {
            Exit::Stopped => 0,
            Exit::Unplugged => EXIT_UNPLUGGED,
            Exit::Failed(_) => EXIT_DATAPATH,
        }
    }
}

/// The device and function to drive.
pub struct Target {
    /// The device.
    pub dev: UsbDevice,
    /// The function.
    pub func: NetFunction,
    /// Why this function (when the device had several).
    pub reason: String,
}

/// Find what to drive.
pub fn select(sel: Option<&Selector>, class: Option<ClassKind>) -> Result<Target, RunError> {
    let candidates = match sel {
        Some(s) => vec![usb::find(s)?],
        None => usb::devices()?,
    };
    let mut why_not = Vec::new();
    let mut rejected = Vec::new();
    for dev in candidates {
        let bytes = match dev.read_descriptors() {
            Ok(b) => b,
            Err(e) if sel.is_some() => return Err(e.into()),
            Err(_) => continue,
        };
        let parsed = descriptor::parse(&bytes);
        let found = probe::probe_all(&parsed.set);
        let functions = found.functions;
        rejected.extend(found.rejected);
        let pick = match class {
            Some(k) => functions
                .iter()
                .position(|f| f.class == k)
                .map(|i| (i, format!("{k} requested with --class"))),
            None => probe::choose(&functions).map(|c| (c.index, c.reason)),
        };
        match pick {
            Some((i, reason)) => {
                return Ok(Target {
                    dev,
                    func: functions[i].clone(),
                    reason,
                })
            }
            None => why_not.push(format!("{} ({})", dev.port_path, dev.vid_pid())),
        }
    }
    let what = match class {
        Some(k) => format!("no {k} function"),
        None => "no USB network function".into(),
    };
    Err(RunError::NoFunction(match sel {
        Some(s) => device_refusal(&s.to_string(), &what, &rejected),
        None if why_not.is_empty() => {
            format!("{what} found: plug a dongle, or name one with --device")
        }
        None => format!("{what} found among {}", why_not.join(", ")),
    }))
}

/// The kernel's cap on all in-flight usbfs memory, in MiB (0: none), if readable.
fn usbfs_memory_mb() -> Option<u64> {
    std::fs::read_to_string("/sys/module/usbcore/parameters/usbfs_memory_mb")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The one-line refusal for a named device with nothing to drive: the first candidate's
/// rejection names the lie (an endpoint of the wrong type, wMaxPacketSize 0, a Union naming a
/// missing interface) instead of leaving the user to find it in `usbnetd dump`.
fn device_refusal(sel: &str, what: &str, rejected: &[probe::Rejected]) -> String {
    match rejected.first() {
        Some(r) => format!("{sel}: {what} found: {r} (see `usbnetd dump --device {sel}`)"),
        None => format!("{sel}: {what} found (see `usbnetd dump --device {sel}`)"),
    }
}

/// The claimed interfaces and how to hand the device back to the kernel.
///
/// Re-attaching as each interface is released lets the wrong driver win (QEMU's usb-net:
/// `cdc_subset` matches the data interface by VID:PID and takes it before `cdc_ether`
/// probes the control interface, whose probe then fails with EBUSY). Instead every
/// interface is released first; then the configuration we found is restored if we changed
/// it (which re-probes everything), or the control interface is re-attached first, so its
/// driver claims the data interface as it expects, and the data interface after it.
struct Claimed {
    dev: Arc<Device>,
    /// Interfaces claimed, in claim order.
    claimed: Vec<u8>,
    /// The data interface, when it was moved off alt 0.
    data_alt_set: Option<u8>,
    /// Interfaces to re-attach, control first.
    reattach: Vec<u8>,
    /// The configuration to restore, when we changed it.
    restore_config: Option<u8>,
    /// The notification endpoint and its wMaxPacketSize, read once more at hand-back.
    notify_ep: Option<(u8, usize)>,
}

impl Claimed {
    /// Read what the function says about the link going away (it queues a
    /// NETWORK_CONNECTION on alt 0), so that the driver bound next finds the notification
    /// pipe empty and gets a fresh link-up. Left unread, the Linux NCM gadget kept the
    /// stale one in flight and cdc_ncm, re-bound after usbnetd, sometimes never saw carrier.
    fn read_stale_notifications(&self) {
        use std::task::{Context, Poll, Waker};
        let Some((addr, mps)) = self.notify_ep else {
            return;
        };
        let mut ep = UsbfsPipe::interrupt(&self.dev, addr, mps);
        let len = mps.max(16).next_multiple_of(mps.max(1));
        let mut buf = usb::Pipe::allocate(&ep, len);
        buf.set_requested_len(len);
        usb::Pipe::submit(&mut ep, buf);
        let deadline = std::time::Instant::now() + Duration::from_millis(100);
        let mut cx = Context::from_waker(Waker::noop());
        while std::time::Instant::now() < deadline {
            usb::Pipe::reap(&mut ep);
            match usb::Pipe::poll_complete(&mut ep, &mut cx) {
                Poll::Ready(c) if c.status.is_ok() => {
                    log::debug!(
                        "notification at hand-back: {:02x?}",
                        &c.buffer[..c.actual_len.min(c.buffer.len())]
                    );
                    usb::Pipe::submit(&mut ep, c.buffer);
                }
                Poll::Ready(_) => break,
                Poll::Pending => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        // Dropping the pipe discards what is still in flight and waits for it.
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        // Back to alt 0 first, as the USB core does when a kernel driver unbinds: the
        // function sees the link go away and starts clean (fresh NETWORK_CONNECTION) for
        // the driver that binds next. (Without it, cdc_ncm re-bound after usbnetd sometimes
        // never got carrier from the Linux NCM gadget.)
        if let Some(d) = self.data_alt_set {
            if let Err(e) = self.dev.set_alt_setting(d, 0) {
                log::debug!("data interface back to alt 0: {e}");
            }
            self.read_stale_notifications();
        }
        for &i in self.claimed.iter().rev() {
            if let Err(e) = self.dev.release(i) {
                log::debug!("release interface {i}: {e}");
            }
        }
        if let Some(cfg) = self.restore_config {
            match self.dev.set_configuration(cfg) {
                Ok(()) => return,
                Err(e) => log::warn!("could not restore configuration {cfg}: {e}"),
            }
        }
        for &i in &self.reattach {
            match self.dev.attach_kernel_driver(i) {
                Ok(()) => log::debug!("interface {i} handed back to the kernel"),
                // Busy: the control interface's driver already took it.
                Err(e) => log::debug!("re-attach interface {i}: {e}"),
            }
        }
    }
}

/// Map an OS error from operation `what` on `device` to a user-facing error.
fn os_err(what: &str, device: &str, e: std::io::Error) -> UsbError {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => UsbError::PermissionDenied(device.to_string()),
        Some(libc::ENODEV) => UsbError::Disconnected(device.to_string()),
        _ => UsbError::Os {
            what: what.to_string(),
            source: e,
        },
    }
}

/// Run until stopped. `stop` is triggered by signals (set up by the caller).
pub fn run(opts: &RunOptions, stop: Arc<Stop>) -> Result<Ended, RunError> {
    let Target { dev, func, reason } = select(opts.device.as_ref(), opts.class)?;
    // A kernel driver completes transfers in interrupt context, ahead of every task; we
    // are a task, and on a busy CPU each wake-up of ours can wait a scheduler slice. A
    // raised priority keeps the datapath close to the kernel's latency. Best effort: it
    // needs CAP_SYS_NICE, and without it usbnetd runs at the default priority.
    if opts.nice != 0 {
        match crate::sys::sched::set_nice(opts.nice) {
            Ok(()) => log::debug!("nice {}", opts.nice),
            Err(e) => log::info!("running at the default priority (nice {}: {e})", opts.nice),
        }
    }
    // SCHED_BATCH: a woken datapath does not preempt the running task but runs at its
    // turn, so on a busy CPU one wake-up serves more completions and fewer context
    // switches are paid (in the lab, where the device's own stack shares the one CPU,
    // ECM device->host went from 58 to 89 Mbit/s, medians of 6 alternating runs in one
    // boot). An idle CPU runs it at once, so idle latency is unchanged.
    if opts.sched_batch {
        match crate::sys::sched::set_batch() {
            Ok(()) => log::debug!("scheduling policy SCHED_BATCH"),
            Err(e) => log::info!("scheduling policy left as it was (SCHED_BATCH: {e})"),
        }
    }
    let devname = format!("{} ({})", dev.port_path, dev.vid_pid());
    log::info!("{devname}: driving {} ({reason})", func.class);
    let rec = crate::pcap::for_device(opts.pcap.as_deref(), opts.pcap_link, &dev)
        .map_err(RunError::Setup)?;
    let mut driver = class::driver_for(func.class).map_err(|source| RunError::Bind {
        class: func.class,
        source,
    })?;
    let node = dev.node.display().to_string();
    let device = Device::open(&dev.node).map_err(|e| os_err("open", &node, e))?;
    let err = |what: &str, e: std::io::Error| os_err(what, &devname, e);

    // Configuration.
    let active = dev.active_configuration().unwrap_or(0);
    let mut claimed = Claimed {
        dev: device.clone(),
        claimed: Vec::new(),
        data_alt_set: None,
        reattach: func
            .control_interface
            .into_iter()
            .chain([func.data_interface])
            .collect(),
        restore_config: (active != func.configuration && active != 0).then_some(active),
        notify_ep: func.interrupt_in.map(|a| {
            (
                a,
                usize::from(func.interrupt_max_packet_size.unwrap_or(16)).max(1),
            )
        }),
    };
    if active != func.configuration {
        log::info!(
            "{devname}: switching configuration {active} -> {}",
            func.configuration
        );
        for i in 0..dev.interface_count() {
            // ENODATA (no driver bound) is fine.
            let _ = device.detach_kernel_driver(i);
        }
        device
            .set_configuration(func.configuration)
            .map_err(|e| err("set configuration", e))?;
    }

    // Interfaces.
    let claim = |claimed: &mut Claimed, n: u8| {
        device.detach_and_claim(n).map_err(|e| {
            if e.raw_os_error() == Some(libc::EBUSY) {
                UsbError::Busy {
                    device: devname.clone(),
                    interface: n,
                }
            } else {
                err(&format!("claim interface {n}"), e)
            }
        })?;
        claimed.claimed.push(n);
        Ok::<(), UsbError>(())
    };
    if let Some(c) = func.control_interface {
        claim(&mut claimed, c)?;
    }
    claim(&mut claimed, func.data_interface)?;
    if func.data_alt_setting != 0 {
        device
            .set_alt_setting(func.data_interface, 0)
            .map_err(|e| err("data interface alt 0", e))?;
    }

    // Class bind.
    let ctl: Arc<dyn usb::Control> = Arc::new(crate::pcap::RecordingControl::new(
        UsbfsControl {
            dev: device.clone(),
        },
        rec.as_ref(),
    ));
    let speed = device.speed();
    let bus = BusFacts {
        max_packet: usize::from(func.max_packet_size).max(1),
        super_speed: matches!(speed, Speed::Super | Speed::SuperPlus),
        identity: class::device_identity(&dev.port_path, &dev.vid_pid(), dev.info.serial_number()),
    };
    let binding = driver
        .bind(&ctl, &func, bus)
        .map_err(|source| RunError::Bind {
            class: func.class,
            source,
        })?;
    let binding = crate::pcap::wrap_binding(binding, rec.as_ref());
    let unbind = |driver: &mut Box<dyn class::ClassDriver>| driver.unbind(&*ctl, &func);
    let result = (|| {
        if func.data_alt_setting != 0 {
            device
                .set_alt_setting(func.data_interface, func.data_alt_setting)
                .map_err(|e| err(&format!("data interface alt {}", func.data_alt_setting), e))?;
            claimed.data_alt_set = Some(func.data_interface);
        }
        let pipes = || {
            let bulk_in = UsbfsPipe::bulk(&device, func.bulk_in, func.max_packet_size.into());
            let bulk_out =
                UsbfsPipe::bulk(&device, func.bulk_out, func.bulk_out_max_packet_size.into());
            let interrupt = match (func.interrupt_in, func.control_interface) {
                (Some(addr), Some(_)) => Some(UsbfsPipe::interrupt(
                    &device,
                    addr,
                    usize::from(func.interrupt_max_packet_size.unwrap_or(16)).max(1),
                )),
                _ => None,
            };
            (bulk_in, bulk_out, interrupt)
        };
        let link = binding.link.clone();
        let ifname = opts
            .ifname
            .clone()
            .unwrap_or_else(|| tap::default_name(&link.mac));
        let tap = Tap::create(&TapConfig {
            name: ifname,
            mac: link.mac,
            mtu: link.mtu,
            txqueuelen: opts.txqueuelen,
            offload: !opts.no_offload,
        })?;
        if !link.carrier_from_status {
            let _ = tap.set_carrier(true);
        }
        // Unknown until the device tells (a TAP's own default, 10 Mbit/s, would be a guess).
        if let Err(e) = tap.set_speed(link.speed_bps) {
            log::warn!("{}: cannot set the link speed it reports: {e}", tap.name());
        }
        let max_frame = link.mtu as usize + class::ETH_HLEN;
        let mut cfg = RingConfig::sized(
            link.rx_transfer_size,
            link.tx_transfer_size,
            max_frame,
            bus.super_speed,
            matches!(speed, Speed::Full | Speed::Low),
        );
        cfg.vnet = tap.offload();
        cfg.rx_queue = opts.rx_queue.unwrap_or(cfg.rx_queue);
        cfg.tx_queue = opts.tx_queue.unwrap_or(cfg.tx_queue);
        if let Some(line) = usbfs_memory_mb().and_then(|mb| cfg.fit_usbfs_cap(mb)) {
            log::warn!("{line}");
        }
        let mac = crate::class::mac_text(&link.mac);
        log::info!(
            "{} up: MAC {mac} ({}), MTU {}, {} on {devname}, {} speed, {}; rx queue {} x {} B, tx queue {} x {} B",
            tap.name(),
            link.mac_source,
            link.mtu,
            func.class,
            format!("{speed:?}").to_lowercase(),
            link.framing,
            cfg.rx_queue,
            cfg.rx_transfer_size,
            cfg.tx_queue,
            cfg.tx_transfer_size,
        );
        crate::sdnotify::ready(&format!("{} up on {devname}", tap.name()));
        let stats = Arc::new(Stats::default());
        if let Some(bps) = link.speed_bps {
            Stats::set(&stats.speed_down_bps, bps);
            Stats::set(&stats.speed_up_bps, bps);
        }
        let mut stats_file = StatsFile::new(&opts.stats_dir, tap.name());
        let mut next_binding = Some(binding);
        let mut resets = ResetBudget::default();
        // The interface's name now: it follows a rename (`ip link set IF name NEW`) seen
        // by the once-a-second look, for the log lines and the exit message.
        let mut ifname = tap.name().to_string();
        let exit = loop {
            let Some(binding) = next_binding.take() else {
                break Exit::Failed("no class binding for the ring".into());
            };
            let (bulk_in, bulk_out, interrupt) = pipes();
            let exit = std::thread::scope(|s| {
                let rx = RxSide {
                    bulk_in: wrap_pipe(Box::new(bulk_in), XferType::Bulk, rec.as_ref()),
                    interrupt: interrupt
                        .map(|i| wrap_pipe(Box::new(i), XferType::Interrupt, rec.as_ref())),
                    rx: binding.rx,
                    status: binding.status,
                    net: tap.file(),
                    on_link: Box::new(tap.link_setter()),
                    net_up: Box::new(tap.up_checker()),
                };
                let tx = TxSide {
                    bulk_out: wrap_pipe(Box::new(bulk_out), XferType::Bulk, rec.as_ref()),
                    tx: binding.tx,
                    net: tap.file(),
                };
                let (st, sp) = (&*stats, &*stop);
                let (done, finished) = std::sync::mpsc::channel::<()>();
                // Named, so that `top -H` and the lab's placement sampler can tell it apart.
                let ring = std::thread::Builder::new()
                    .name("usbnetd-ring".into())
                    .spawn_scoped(s, move || {
                        let e = ring::run(rx, tx, cfg, st, sp);
                        // An unplug may be a reset, after which the ring runs again.
                        if e != Exit::Unplugged {
                            sp.trigger();
                        }
                        drop(done);
                        e
                    });
                let ring = match ring {
                    Ok(r) => r,
                    Err(e) => return Exit::Failed(format!("cannot start the ring thread: {e}")),
                };
                // The stats file is refreshed every second until the ring is done, and only when
                // a counter moved: an idle link costs no file I/O (in the lab a rewrite took ~2 ms
                // of CPU). This thread sleeps in between (the ring's end, or its panic, closes
                // the channel). Each second it also carries a change of the interface's receive
                // mode to the device, as the kernel's `set_rx_mode` work does.
                let mut rx_mode = RxModeWatch::default();
                while let Err(RecvTimeoutError::Timeout) =
                    finished.recv_timeout(Duration::from_secs(1))
                {
                    let now = tap.state().ok();
                    if let Some(now) = &now {
                        ifname.clone_from(&now.name);
                        stats_file.follow(&ifname);
                        keep_mtu_within(now, link.mtu);
                    }
                    stats_file.refresh(&stats.snapshot());
                    let mode = now.map(|now| RxMode {
                        promiscuous: now.promiscuous,
                    });
                    rx_mode.poll(mode, |mode| {
                        apply_rx_mode(driver.as_mut(), &*ctl, &func, &ifname, mode)
                    });
                }
                ring.join()
                    .unwrap_or(Exit::Failed("ring thread panicked".into()))
            });
            if exit != Exit::Unplugged {
                break exit;
            }
            // The device is gone, or was reset: another program's USBDEVFS_RESET, the hub
            // driver recovering from transfer errors, or a resume that had to reset it.
            // A reset ends every transfer as an unplug does but leaves the device on the
            // bus, its interfaces taken from us and offered to the kernel's driver again
            // (which then binds and makes a netdev of its own, as it does on a reset under
            // it). As the kernel's drivers bind again, so do we: claim the interfaces
            // back, bind the class again, and go on with the same interface.
            match take_back_after_reset(&device, &func, &mut driver, &ctl, bus, &link) {
                Ok(None) => break exit,
                Ok(Some(_)) if resets.spend().is_err() => {
                    break Exit::Failed(format!(
                        "the device was reset {} times within {} s; giving up on it",
                        ResetBudget::MAX,
                        ResetBudget::WINDOW.as_secs()
                    ))
                }
                Ok(Some(b)) => {
                    Stats::add(&stats.device_resets, 1);
                    log::warn!(
                        "{devname} was reset; its interfaces are claimed back and {ifname} goes on"
                    );
                    let _ = tap.set_carrier(!link.carrier_from_status);
                    next_binding = Some(crate::pcap::wrap_binding(b, rec.as_ref()));
                }
                Err(e) => break Exit::Failed(e),
            }
        };
        if let Ok(now) = tap.state() {
            ifname = now.name;
        }
        crate::sdnotify::stopping(&format!("{ifname}: {}", ring::describe(&exit)));
        stats_file.write(&stats.snapshot());
        let snap = stats.snapshot();
        log::info!(
            "{}: {}; rx {} frames, tx {} frames, tx_busy {}, drops rx {}/{}/{} tx {}/{}",
            ifname,
            ring::describe(&exit),
            snap.rx_frames,
            snap.tx_frames,
            snap.tx_busy,
            snap.rx_drop_bad_transfer,
            snap.rx_drop_bad_frame,
            snap.rx_drop_tap,
            snap.tx_drop_invalid,
            snap.tx_drop_error,
        );
        stats_file.remove();
        Ok(Ended { ifname, exit })
    })();
    if !matches!(&result, Ok(e) if e.exit == Exit::Unplugged) {
        unbind(&mut driver);
    }
    drop(ctl);
    drop(claimed);
    result
}

/// How often the device may be reset under us before usbnetd gives up on it: a device
/// that resets itself again and again is broken, and each recovery costs a bind.
#[derive(Debug, Default)]
struct ResetBudget {
    recent: Vec<std::time::Instant>,
}

impl ResetBudget {
    /// Resets allowed within [`ResetBudget::WINDOW`].
    const MAX: usize = 5;
    const WINDOW: Duration = Duration::from_secs(60);

    /// Count one more reset; `Err` once there were too many lately.
    fn spend(&mut self) -> Result<(), ()> {
        let now = std::time::Instant::now();
        self.recent
            .retain(|t| now.duration_since(*t) < Self::WINDOW);
        if self.recent.len() >= Self::MAX {
            return Err(());
        }
        self.recent.push(now);
        Ok(())
    }
}

/// After the ring saw the device vanish: `Ok(None)` if it is gone from the bus, or a new
/// binding if it was reset and is ours again (interfaces claimed, class bound, data
/// interface at its alt setting). The device must come back as it was: same MAC and MTU,
/// since the interface keeps them.
fn take_back_after_reset(
    device: &Device,
    func: &NetFunction,
    driver: &mut Box<dyn class::ClassDriver>,
    ctl: &Arc<dyn usb::Control>,
    bus: BusFacts,
    link: &class::LinkInfo,
) -> Result<Option<class::Binding>, String> {
    for n in func
        .control_interface
        .into_iter()
        .chain([func.data_interface])
    {
        // Still ours (a suspend flushes every transfer without taking the interfaces), or
        // free, or taken by the kernel's driver after a reset: claim it back from that.
        let claimed = match device.claim(n) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => device.detach_and_claim(n),
            r => r,
        };
        match claimed {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
            Err(e) => return Err(format!("after a reset, claiming interface {n}: {e}")),
        }
    }
    if func.data_alt_setting != 0 {
        device
            .set_alt_setting(func.data_interface, 0)
            .map_err(|e| format!("after a reset, data interface alt 0: {e}"))?;
    }
    let b = driver
        .bind(ctl, func, bus)
        .map_err(|e| format!("after a reset, {} bring-up failed: {e}", func.class))?;
    if b.link.mac != link.mac || b.link.mtu != link.mtu {
        return Err(format!(
            "after a reset the device has MAC {} and MTU {} (it had {} and {}); run usbnetd again",
            class::mac_text(&b.link.mac),
            b.link.mtu,
            class::mac_text(&link.mac),
            link.mtu
        ));
    }
    if func.data_alt_setting != 0 {
        device
            .set_alt_setting(func.data_interface, func.data_alt_setting)
            .map_err(|e| {
                format!(
                    "after a reset, data interface alt {}: {e}",
                    func.data_alt_setting
                )
            })?;
    }
    Ok(Some(b))
}

/// An MTU raised past what the device takes (`ip link set IF mtu 9000` on a dongle of
/// 1500) is set back to the device's, with a warning: the kernel's `cdc_ncm` refuses such
/// an MTU (its `max_mtu`), where a TAP takes anything up to 65535, and usbnetd could only
/// drop every frame above the device's limit, which TCP, segmenting to the new MTU, would
/// then retransmit in vain. A lower MTU is left as it is.
fn keep_mtu_within(now: &IfState, max: u32) {
    let (ifname, mtu) = (&now.name, now.mtu);
    if mtu <= max {
        return;
    }
    match now.set_mtu(max) {
        Ok(()) => log::warn!("{ifname}: MTU {mtu} is more than the device takes; set back to {max}"),
        Err(e) => log::warn!(
            "{ifname}: MTU {mtu} is more than the device takes ({max}), and setting it back failed: {e}"
        ),
    }
}

/// Program receive mode `mode` on the device through the class, and log what came of it.
fn apply_rx_mode(
    driver: &mut dyn class::ClassDriver,
    ctl: &dyn usb::Control,
    func: &NetFunction,
    ifname: &str,
    mode: RxMode,
) {
    let what = if mode.promiscuous { "on" } else { "off" };
    match driver.set_rx_mode(ctl, func, mode) {
        Ok(Some(sent)) => log::info!("{ifname}: promiscuous {what}: {sent}"),
        Ok(None) => log::debug!(
            "{ifname}: promiscuous {what}; {} has no receive filter to set",
            func.class
        ),
        Err(e) => {
            log::warn!("{ifname}: promiscuous {what}, but the device refused the filter: {e}")
        }
    }
}

/// Carries the interface's receive mode to the device when it changes (promiscuous on or
/// off); the bring-up programmed the default, not promiscuous.
#[derive(Debug, Default)]
struct RxModeWatch {
    applied: RxMode,
}

impl RxModeWatch {
    /// One look at the interface: `now` is its mode, `None` when it could not be read (the
    /// interface is going away), and `apply` programs the device. A refused request is not
    /// retried until the mode changes again, as the kernel does not retry it either.
    fn poll(&mut self, now: Option<RxMode>, apply: impl FnOnce(RxMode)) {
        if let Some(mode) = now.filter(|m| *m != self.applied) {
            self.applied = mode;
            apply(mode);
        }
    }
}

/// The per-instance JSON stats file under [`STATS_DIR`].
pub struct StatsFile {
    path: Option<PathBuf>,
    /// What the file holds now.
    written: Option<crate::stats::Snapshot>,
}

impl StatsFile {
    /// Create the directory if needed; on failure the instance simply publishes nothing.
    pub fn new(dir: &std::path::Path, ifname: &str) -> StatsFile {
        let path = std::fs::create_dir_all(dir)
            .map(|()| dir.join(format!("{ifname}.json")))
            .map_err(|e| log::warn!("stats will not be published in {}: {e}", dir.display()))
            .ok();
        StatsFile {
            path,
            written: None,
        }
    }

    /// Replace the file atomically with `snap`.
    pub fn write(&mut self, snap: &crate::stats::Snapshot) {
        let Some(path) = &self.path else { return };
        let tmp = path.with_extension("json.tmp");
        if let Ok(json) = serde_json::to_vec_pretty(snap) {
            if std::fs::write(&tmp, json).is_ok() && std::fs::rename(&tmp, path).is_ok() {
                self.written = Some(*snap);
            }
        }
    }

    /// [`StatsFile::write`] if `snap` differs from what the file holds.
    pub fn refresh(&mut self, snap: &crate::stats::Snapshot) {
        if self.written.as_ref() != Some(snap) {
            self.write(snap);
        }
    }

    /// Follow a rename of the interface (`ip link set OLD name NEW`), so that
    /// `usbnetd stats NEW` finds the instance: the file moves to `NEW.json`.
    pub fn follow(&mut self, ifname: &str) {
        let Some(path) = &self.path else { return };
        let new = path.with_file_name(format!("{ifname}.json"));
        if new == *path {
            return;
        }
        match std::fs::rename(path, &new) {
            Ok(()) => self.path = Some(new),
            // Not written yet: the next write goes to the new name.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.path = Some(new),
            Err(e) => log::warn!("stats file {} not renamed: {e}", path.display()),
        }
    }

    /// Remove the file (the instance is gone).
    pub fn remove(&self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hostile lab device's descriptors with its bulk IN endpoint declared interrupt.
    const EP_TYPE: &[u8] = include_bytes!("../fuzz/seeds/descriptors/hostile-ep-type");
    /// ... with a Union naming interface 5, which does not exist.
    const UNION_MISSING: &[u8] = include_bytes!("../fuzz/seeds/descriptors/hostile-union-missing");

    #[test]
    fn reset_budget_allows_five_a_minute() {
        let mut b = ResetBudget::default();
        for _ in 0..ResetBudget::MAX {
            assert!(b.spend().is_ok());
        }
        assert!(b.spend().is_err());
        // Resets older than the window no longer count.
        let old = std::time::Instant::now() - ResetBudget::WINDOW - Duration::from_secs(1);
        b.recent.iter_mut().for_each(|t| *t = old);
        assert!(b.spend().is_ok());
    }

    #[test]
    fn rx_mode_goes_to_the_device_only_when_it_changes() {
        let mut watch = RxModeWatch::default();
        let mut sent = Vec::new();
        let on = RxMode { promiscuous: true };
        let off = RxMode::default();
        // Not promiscuous, as the bring-up left it: nothing to send.
        watch.poll(Some(off), |m| sent.push(m));
        assert!(sent.is_empty());
        watch.poll(Some(on), |m| sent.push(m));
        watch.poll(Some(on), |m| sent.push(m));
        // An unreadable interface changes nothing.
        watch.poll(None, |m| sent.push(m));
        watch.poll(Some(off), |m| sent.push(m));
        watch.poll(Some(off), |m| sent.push(m));
        watch.poll(Some(on), |m| sent.push(m));
        assert_eq!(sent, vec![on, off, on]);
    }

    #[test]
    fn stats_file_is_rewritten_only_when_a_counter_moved() {
        let dir = std::env::temp_dir().join(format!("usbnetd-stats-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut f = StatsFile::new(&dir, "usbnet9");
        let path = dir.join("usbnet9.json");
        let mut snap = crate::stats::Snapshot::default();
        f.refresh(&snap);
        assert!(path.exists(), "the first refresh publishes");
        std::fs::remove_file(&path).unwrap();
        f.refresh(&snap);
        assert!(!path.exists(), "nothing moved: no rewrite");
        snap.rx_frames = 3;
        f.refresh(&snap);
        let back: crate::stats::Snapshot =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, snap);
        // The final write at exit is unconditional.
        std::fs::remove_file(&path).unwrap();
        f.write(&snap);
        assert!(path.exists());
        f.remove();
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stats_file_follows_a_renamed_interface() {
        let dir = std::env::temp_dir().join(format!("usbnetd-rename-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut f = StatsFile::new(&dir, "usbnet9");
        // Renamed before anything was written: the first write takes the new name.
        f.follow("wan0");
        let mut snap = crate::stats::Snapshot::default();
        f.refresh(&snap);
        assert!(dir.join("wan0.json").exists());
        assert!(!dir.join("usbnet9.json").exists());
        // Renamed after: the file moves, and later writes land there.
        f.follow("wan1");
        assert!(!dir.join("wan0.json").exists());
        snap.tx_frames = 7;
        f.refresh(&snap);
        let back: crate::stats::Snapshot =
            serde_json::from_slice(&std::fs::read(dir.join("wan1.json")).unwrap()).unwrap();
        assert_eq!(back, snap);
        f.follow("wan1");
        assert!(dir.join("wan1.json").exists());
        f.remove();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn refusal_for(bytes: &[u8]) -> String {
        let found = probe::probe_all(&descriptor::parse(bytes).set);
        assert!(found.functions.is_empty());
        device_refusal("1-1", "no USB network function", &found.rejected)
    }

    #[test]
    fn refusal_names_the_lying_descriptor() {
        assert_eq!(
            refusal_for(EP_TYPE),
            "1-1: no USB network function found: CDC-NCM, configuration 1, interface 0: \
             interface 1 alt 1: endpoint 0x81 is interrupt, not bulk \
             (see `usbnetd dump --device 1-1`)"
        );
        assert!(refusal_for(UNION_MISSING)
            .contains("CDC Union names data interface 5, which does not exist"));
    }

    #[test]
    fn refusal_without_candidates_points_at_dump() {
        assert_eq!(
            device_refusal("1-1", "no USB network function", &[]),
            "1-1: no USB network function found (see `usbnetd dump --device 1-1`)"
        );
    }
}
