//! The `usbnetd` command line: `run` (the default), `dump`, `list`, `stats`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use usbnetd::dump::{self, Strings};
use usbnetd::probe::{self, ClassKind};
use usbnetd::ring::Stop;
use usbnetd::run::{self, RunOptions};
use usbnetd::usb::{self, Selector, UsbError};
use usbnetd::{descriptor, stats};

/// Userspace host driver for USB network dongles (CDC-NCM, CDC-ECM, ...): claims the
/// device through usbfs and brings it up as a TAP interface.
#[derive(Debug, Parser)]
#[command(name = "usbnetd", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Bring a USB network function up as a TAP interface (the default command).
    Run(RunArgs),
    /// Print a device's descriptors (lsusb -v style, CDC decoded) and what usbnetd would drive.
    Dump(DumpArgs),
    /// One line per USB network function present.
    List,
    /// Counters of running instances.
    Stats(StatsArgs),
    /// Write the man pages or the shell completions into DIR (used by tools/package).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// man: usbnetd.1 and usbnetd-SUBCOMMAND.1; completions: usbnetd.bash, _usbnetd (zsh),
    /// usbnetd.fish.
    #[arg(value_parser = ["man", "completions"])]
    what: String,
    /// Output directory (created if missing).
    dir: PathBuf,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Device: VID:PID, bus-port path (1-1.2), /dev/bus/usb/BBB/DDD or a sysfs device path
    /// (/sys/devices/.../1-1.2, as the systemd unit passes it). Default: the first USB
    /// network function present.
    #[arg(long, short = 'd')]
    device: Option<String>,
    /// Interface name. Default: enx + the MAC's 12 hex digits.
    #[arg(long, short = 'i')]
    ifname: Option<String>,
    /// Drive this class even when the device offers a preferred one.
    #[arg(long, value_parser = parse_class)]
    class: Option<ClassKind>,
    /// Bulk IN transfers kept in flight (default: from speed and transfer size).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    rx_queue: Option<u16>,
    /// Bulk OUT transfers allowed in flight before reading from the TAP pauses.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    tx_queue: Option<u16>,
    /// TAP transmit queue length (frames the kernel holds while the OUT ring is full).
    #[arg(long, default_value_t = 1000)]
    txqueuelen: u32,
    /// Directory for the live stats file read by `usbnetd stats`.
    #[arg(long, default_value = run::STATS_DIR)]
    stats_dir: PathBuf,
    /// Let the kernel segment TCP and compute checksums before frames reach usbnetd
    /// (by default the TAP hands over 64 KiB TCP super-packets, cut up here: fewer reads).
    #[arg(long)]
    no_offload: bool,
    /// Nice value of the datapath threads (-20..19; 0 leaves it alone). Negative values
    /// need CAP_SYS_NICE; without it usbnetd says so and runs at the default priority.
    #[arg(long, default_value_t = -10, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-20..=19))]
    nice: i32,
    /// Scheduling policy of the datapath: batch (SCHED_BATCH: a wake-up does not preempt
    /// the running task; under CPU contention completions are handled in fewer, larger
    /// batches) or normal (SCHED_OTHER: every wake-up may preempt, for the lowest latency
    /// on a loaded CPU). Neither needs a capability.
    #[arg(long, value_name = "POLICY", default_value = "batch",
          value_parser = ["batch", "normal"])]
    sched: String,
    /// Record what crosses the bus into this pcap file (tshark/Wireshark read it; no root
    /// or usbmon needed).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// What --pcap records: usb (every transfer, usbmon format) or ethernet (the frames).
    #[arg(long, value_name = "LINK", default_value = "usb", requires = "pcap",
          value_parser = ["usb", "ethernet"])]
    pcap_link: String,
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Args)]
struct DumpArgs {
    /// Read raw descriptor bytes (device descriptor + configurations) from a file.
    #[arg(long, conflicts_with = "device")]
    file: Option<PathBuf>,
    /// A live device: VID:PID, bus-port path or /dev/bus/usb/BBB/DDD.
    #[arg(long, short = 'd')]
    device: Option<String>,
    /// One JSON object (per device) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct StatsArgs {
    /// Interface name; default: every running instance.
    ifname: Option<String>,
    /// JSON output.
    #[arg(long)]
    json: bool,
    /// Directory the instances publish in.
    #[arg(long, default_value = run::STATS_DIR)]
    stats_dir: PathBuf,
}

fn parse_class(s: &str) -> Result<ClassKind, String> {
    match s.to_ascii_lowercase().as_str() {
        "ncm" => Ok(ClassKind::Ncm),
        "ecm" => Ok(ClassKind::Ecm),
        "rndis" => Ok(ClassKind::Rndis),
        "eem" => Ok(ClassKind::Eem),
        "subset" => Ok(ClassKind::Subset),
        _ => Err("expected one of: ncm, ecm, rndis, eem, subset".into()),
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format_timestamp_millis()
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        None => cmd_run(cli.run),
        Some(Cmd::Run(a)) => cmd_run(a),
        Some(Cmd::Dump(a)) => {
            init_logging(0);
            cmd_dump(a)
        }
        Some(Cmd::List) => {
            init_logging(0);
            cmd_list()
        }
        Some(Cmd::Stats(a)) => cmd_stats(a),
        Some(Cmd::Generate(a)) => cmd_generate(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(msg) => {
            eprintln!("usbnetd: {msg}");
            ExitCode::from(1)
        }
    }
}

type CmdResult = Result<u8, String>;

/// `println!` that does not panic when stdout is a closed pipe (`usbnetd dump | head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

fn selector(s: &str) -> Result<Selector, String> {
    s.parse::<Selector>().map_err(|e| e.to_string())
}

fn cmd_run(a: RunArgs) -> CmdResult {
    init_logging(a.verbose);
    let opts = RunOptions {
        device: a.device.as_deref().map(selector).transpose()?,
        ifname: a.ifname,
        class: a.class,
        rx_queue: a.rx_queue.map(usize::from),
        tx_queue: a.tx_queue.map(usize::from),
        txqueuelen: a.txqueuelen,
        no_offload: a.no_offload,
        nice: a.nice,
        sched_batch: a.sched == "batch",
        stats_dir: a.stats_dir,
        pcap: a.pcap,
        pcap_link: a.pcap_link.parse()?,
    };
    if let Some(n) = &opts.ifname {
        if n.is_empty() || n.len() > 15 || n.contains('/') || n.contains(char::is_whitespace) {
            return Err(format!(
                "invalid interface name {n:?}: use 1 to 15 characters, no '/' or spaces"
            ));
        }
    }
    let stop = Arc::new(Stop::new().map_err(|e| format!("cannot set up signal handling: {e}"))?);
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let w = stop
            .writer()
            .map_err(|e| format!("cannot set up signal handling: {e}"))?;
        signal_hook::low_level::pipe::register(sig, w)
            .map_err(|e| format!("cannot set up signal handling: {e}"))?;
    }
    let ended = run::run(&opts, stop).map_err(|e| e.to_string())?;
    Ok(ended.status() as u8)
}

fn cmd_dump(a: DumpArgs) -> CmdResult {
    if let Some(path) = a.file {
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{}: no such file", path.display()),
            _ => format!("cannot read {}: {e}", path.display()),
        })?;
        return Ok(print_dump(&bytes, &Strings::default(), a.json));
    }
    let devices = match a.device.as_deref() {
        Some(s) => vec![usb::find(&selector(s)?).map_err(|e| e.to_string())?],
        None => {
            let all = usb::devices().map_err(|e| e.to_string())?;
            let net: Vec<_> = all
                .into_iter()
                .filter(|d| {
                    d.read_descriptors()
                        .map(|b| !probe::probe(&descriptor::parse(&b).set).is_empty())
                        .unwrap_or(false)
                })
                .collect();
            if net.is_empty() {
                return Err(
                    "no USB network device present: plug one, or name any device with --device"
                        .into(),
                );
            }
            net
        }
    };
    let mut status = 0;
    for d in devices {
        let bytes = d.read_descriptors().map_err(|e| e.to_string())?;
        let strings = live_strings(&d, &bytes);
        if !a.json {
            out!(
                "Device {} ({}), {}",
                d.port_path,
                d.vid_pid(),
                d.node.display()
            );
        }
        status = status.max(print_dump(&bytes, &strings, a.json));
    }
    Ok(status)
}

/// Every string descriptor the set refers to, read from the live device (best effort:
/// reading needs write access to the node; without it, sysfs gives the device strings).
fn live_strings(d: &usb::UsbDevice, bytes: &[u8]) -> Strings {
    let parsed = descriptor::parse(bytes);
    let mut strings = Strings::default();
    let indices = dump::string_indices(&parsed.set);
    match d.open() {
        Ok(dev) => {
            for i in indices {
                if let Some(s) = usb::read_string(&dev, i) {
                    strings.insert(i, s);
                }
            }
        }
        Err(UsbError::PermissionDenied(_)) => {
            log::debug!("no access to {}; strings from sysfs only", d.node.display());
            if let Some(dev) = &parsed.set.device {
                for (idx, s) in [
                    (dev.manufacturer_index, d.info.manufacturer_string()),
                    (dev.product_index, d.info.product_string()),
                    (dev.serial_index, d.info.serial_number()),
                ] {
                    if let (Some(s), true) = (s, idx != 0) {
                        strings.insert(idx, s.to_string());
                    }
                }
            }
        }
        Err(_) => {}
    }
    strings
}

fn print_dump(bytes: &[u8], strings: &Strings, json: bool) -> u8 {
    let parsed = descriptor::parse(bytes);
    if json {
        let v = dump::render_json(&parsed, strings);
        out!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        out!(
            "{}",
            dump::render_text(&parsed, strings).trim_end_matches('\n')
        );
    }
    if let Some(e) = &parsed.error {
        if json {
            eprintln!("usbnetd: malformed descriptors: {e}");
        }
        return 1;
    }
    0
}

fn cmd_list() -> CmdResult {
    let devices = usb::devices().map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for d in &devices {
        let Ok(bytes) = d.read_descriptors() else {
            continue;
        };
        let parsed = descriptor::parse(&bytes);
        let functions = probe::probe(&parsed.set);
        if functions.is_empty() {
            continue;
        }
        let chosen = probe::choose(&functions).map(|c| c.index);
        let dev = d.open().ok();
        for (i, f) in functions.iter().enumerate() {
            let iface = f.control_interface.unwrap_or(f.data_interface);
            let driver = if d.active_configuration() == Some(f.configuration) {
                d.interface_driver(iface).unwrap_or_else(|| "-".into())
            } else {
                format!("- (configuration {} not active)", f.configuration)
            };
            let mac = match (&dev, f.mac_string_index) {
                (Some(dev), Some(idx)) => usb::read_string(dev, idx)
                    .and_then(|s| usbnetd::class::parse_mac_string(&s))
                    .map(|m| usbnetd::class::mac_text(&m))
                    .unwrap_or_else(|| "?".into()),
                (None, Some(_)) => "? (no access)".into(),
                (_, None) => "-".into(),
            };
            rows.push(format!(
                "{:<8} {}  {:<10} {:<28} driver {:<10} MAC {}{}",
                d.port_path,
                d.vid_pid(),
                f.class.to_string(),
                d.info.product_string().unwrap_or("?"),
                driver,
                mac,
                if functions.len() > 1 && chosen == Some(i) {
                    "  (preferred)"
                } else {
                    ""
                }
            ));
        }
    }
    if rows.is_empty() {
        out!(
            "no USB network functions present ({} USB devices seen)",
            devices.len()
        );
    }
    for r in rows {
        out!("{r}");
    }
    Ok(0)
}

fn cmd_stats(a: StatsArgs) -> CmdResult {
    let files: Vec<PathBuf> = match &a.ifname {
        Some(n) => vec![a.stats_dir.join(format!("{n}.json"))],
        None => std::fs::read_dir(&a.stats_dir)
            .map(|rd| {
                let mut v: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default(),
    };
    if files.is_empty() {
        return Err(format!(
            "no running usbnetd instance publishes stats in {}",
            a.stats_dir.display()
        ));
    }
    let mut all = serde_json::Map::new();
    for f in files {
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&f).map_err(|_| {
            format!(
                "no running usbnetd instance for {name} (no {})",
                f.display()
            )
        })?;
        let snap: stats::Snapshot = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a usbnetd stats file: {e}", f.display()))?;
        if a.json {
            all.insert(name, serde_json::to_value(snap).unwrap_or_default());
        } else {
            out!("{name}:");
            for (k, v) in snap.fields() {
                out!("  {k:<22} {v}");
            }
        }
    }
    if a.json {
        let v = match (&a.ifname, all.len()) {
            (Some(_), 1) => all.into_iter().next().map(|(_, v)| v).unwrap_or_default(),
            _ => serde_json::Value::Object(all),
        };
        out!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    Ok(0)
}

/// Sections of the main man page that clap does not know about.
const MAN_EXTRA: &str = r#".SH "EXIT STATUS"
.TP
0
stopped by SIGINT or SIGTERM
.TP
1
could not start (the message names the fix)
.TP
3
the device was unplugged
.TP
4
the datapath failed (repeated transfer errors, TAP I/O error)
.SH FILES
.TP
/run/usbnetd/IFNAME.json
live counters of each running instance, read by \fBusbnetd stats\fR
.TP
/usr/lib/udev/rules.d/90-usbnetd.rules
gives group usbnetd the USB network devices and starts usbnetd@.service on plug;
an earlier rule setting ENV{USBNETD_IGNORE}="1" leaves a device to the kernel
.TP
/usr/lib/systemd/system/usbnetd@.service
one instance per plugged device, as user usbnetd with CAP_NET_ADMIN only
.SH "SEE ALSO"
\fBsystemd.network\fR(5), \fBtshark\fR(1), \fBudev\fR(7)
"#;

fn cmd_generate(a: GenerateArgs) -> CmdResult {
    use clap::CommandFactory;
    let dir = &a.dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let write_err =
        |p: &std::path::Path, e: std::io::Error| format!("cannot write {}: {e}", p.display());
    let mut cmd = Cli::command();
    cmd.build();
    match a.what.as_str() {
        "man" => {
            let path = dir.join("usbnetd.1");
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd.clone())
                .render(&mut page)
                .map_err(|e| write_err(&path, e))?;
            page.extend_from_slice(MAN_EXTRA.as_bytes());
            std::fs::write(&path, page).map_err(|e| write_err(&path, e))?;
            out!("{}", path.display());
            for sub in cmd
                .get_subcommands()
                .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            {
                let name = format!("usbnetd-{}", sub.get_name());
                let path = dir.join(format!("{name}.1"));
                let mut page = Vec::new();
                clap_mangen::Man::new(sub.clone().name(name.clone()))
                    .render(&mut page)
                    .map_err(|e| write_err(&path, e))?;
                std::fs::write(&path, page).map_err(|e| write_err(&path, e))?;
                out!("{}", path.display());
            }
        }
        _ => {
            use clap_complete::Shell;
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                let path = clap_complete::generate_to(shell, &mut cmd, "usbnetd", dir)
                    .map_err(|e| write_err(dir, e))?;
                out!("{}", path.display());
            }
        }
    }
    Ok(0)
}
