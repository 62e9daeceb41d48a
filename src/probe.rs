//! From a parsed [`DescriptorSet`], every USB network function the device offers, and which
//! one usbnetd would drive.
//!
//! Detection is by the class triple (class, subclass, protocol) of the function's first
//! interface, as the kernel's `cdc_ncm`, `cdc_ether`, `rndis_host`, `cdc_eem`, `zaurus` and
//! `cdc_subset` drivers match:
//!
//! | class | triple | interfaces |
//! |---|---|---|
//! | CDC-NCM | 02/0D/00 | control + data (Union) |
//! | CDC-ECM | 02/06/00 | control + data (Union) |
//! | RNDIS | 02/02/FF, E0/01/03, EF/04/01 | control + data (Union, else the next interface) |
//! | CDC-EEM | 02/0C/07 | one interface with both bulk endpoints |
//! | CDC subset (SAFE/BLAN) | 02/0A/00 with a SAFE or BLAN MDLM descriptor | one interface |
//! | CDC subset (vendor) | FF/xx/xx, device ID in [`SUBSET_DEVICE_IDS`] | one interface |
//!
//! A candidate that cannot be driven (a Union naming a missing interface, no usable bulk
//! pair, an IAD that disagrees, ...) is listed in [`ProbeResult::rejected`] with the reason.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::descriptor::cdc::{format_guid, MDLM_GUID_BLAN, MDLM_GUID_SAFE};
use crate::descriptor::{
    CdcDescriptor, Configuration, DescriptorSet, Endpoint, Interface, TransferType,
};

/// The USB network classes usbnetd knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassKind {
    /// CDC Network Control Model: Ethernet frames aggregated into NTBs.
    Ncm,
    /// CDC Ethernet Control Model: one Ethernet frame per transfer.
    Ecm,
    /// Microsoft Remote NDIS: frames wrapped in `REMOTE_NDIS_PACKET_MSG`, RPC control.
    Rndis,
    /// CDC Ethernet Emulation Model: 2-byte headers, single interface.
    Eem,
    /// The "CDC subset" / SAFE: plain Ethernet frames on two bulk endpoints, no control.
    Subset,
}

impl ClassKind {
    /// Every class, in order of preference (most preferred first).
    pub const PREFERENCE: [ClassKind; 5] = [
        ClassKind::Ncm,
        ClassKind::Ecm,
        ClassKind::Eem,
        ClassKind::Subset,
        ClassKind::Rndis,
    ];

    /// The human name: "CDC-NCM", "CDC-ECM", "RNDIS", "CDC-EEM", "CDC subset".
    pub fn name(self) -> &'static str {
        match self {
            ClassKind::Ncm => "CDC-NCM",
            ClassKind::Ecm => "CDC-ECM",
            ClassKind::Rndis => "RNDIS",
            ClassKind::Eem => "CDC-EEM",
            ClassKind::Subset => "CDC subset",
        }
    }

    /// The short name used on the command line and in JSON ("ncm", "ecm", ...).
    pub fn short_name(self) -> &'static str {
        match self {
            ClassKind::Ncm => "ncm",
            ClassKind::Ecm => "ecm",
            ClassKind::Rndis => "rndis",
            ClassKind::Eem => "eem",
            ClassKind::Subset => "subset",
        }
    }

    /// Position in [`Self::PREFERENCE`]: lower is preferred.
    pub fn rank(self) -> usize {
        Self::PREFERENCE
            .iter()
            .position(|&k| k == self)
            .unwrap_or(usize::MAX)
    }

    /// Why this class is preferred over the ones after it.
    fn merits(self) -> &'static str {
        match self {
            ClassKind::Ncm => "aggregates frames into NTBs, standard class, no vendor protocol",
            ClassKind::Ecm => {
                "standard class with plain Ethernet frames and link notifications, no vendor \
                 protocol"
            }
            ClassKind::Eem => "standard class with light framing, no vendor protocol",
            ClassKind::Subset => "plain Ethernet frames, no vendor protocol",
            ClassKind::Rndis => "a vendor protocol, used only when nothing else is offered",
        }
    }
}

impl fmt::Display for ClassKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of [`ClassKind::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown class {0:?}: expected ncm, ecm, rndis, eem or subset")]
pub struct UnknownClass(pub String);

impl FromStr for ClassKind {
    type Err = UnknownClass;

    /// Accepts the short names ("ncm", "ecm", "rndis", "eem", "subset"), any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::PREFERENCE
            .into_iter()
            .find(|k| k.short_name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownClass(s.to_string()))
    }
}

/// Device IDs (idVendor, idProduct) of the vendor-specific "CDC subset" links that the
/// kernel's `drivers/net/usb/cdc_subset.c` lists: one vendor interface, one bulk IN, one
/// bulk OUT, no control. The Linux Ethernet/RNDIS gadget's second configuration
/// (0525:a4a2 at bcdDevice 2.03) is left out: it is matched by class instead.
pub const SUBSET_DEVICE_IDS: &[(u16, u16, &str)] = &[
    (0x0402, 0x5632, "ALi M5632"),
    (0x182d, 0x207c, "SiteCom CN-124 (ALi M5632)"),
    (0x0547, 0x2720, "AnchorChips 2720"),
    (0x0547, 0x2727, "Xircom PGUNET (AnchorChips 2720)"),
    (0x050d, 0x0004, "Belkin F5U104"),
    (0x056c, 0x8100, "eTEK"),
    (0x0525, 0x9901, "Advance USBNET (eTEK)"),
    (0x0525, 0x2888, "Epson USB client"),
    (0x050f, 0x0190, "KC Technology KC-190"),
    (0x049f, 0x505a, "Linux usb-eth (Compaq Itsy IDs)"),
    (0x0e7e, 0x1001, "G.Mate Yopy"),
    (0x8086, 0x07d3, "blob boot loader"),
    (0x1286, 0x8001, "blob boot loader"),
];

/// One USB network function and everything needed to claim and drive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetFunction {
    /// The class.
    pub class: ClassKind,
    /// `bConfigurationValue` of the configuration holding it (not its index).
    pub configuration: u8,
    /// The control (communications) interface; `None` for single-interface functions
    /// (CDC-EEM, CDC subset), whose data interface is the only one.
    pub control_interface: Option<u8>,
    /// The interface carrying the bulk endpoints.
    pub data_interface: u8,
    /// The alternate setting of the data interface that has the bulk pair (1 for ECM and
    /// NCM, whose alt 0 has no endpoints).
    pub data_alt_setting: u8,
    /// Bulk IN endpoint address.
    pub bulk_in: u8,
    /// Bulk OUT endpoint address.
    pub bulk_out: u8,
    /// Interrupt IN (notification) endpoint address on the control interface, if any.
    pub interrupt_in: Option<u8>,
    /// Max packet size of the bulk IN endpoint (bits 0..10 of `wMaxPacketSize`).
    pub max_packet_size: u16,
    /// Max packet size of the bulk OUT endpoint.
    pub bulk_out_max_packet_size: u16,
    /// Max packet size of the interrupt endpoint.
    pub interrupt_max_packet_size: Option<u16>,
    /// `bInterval` of the interrupt endpoint.
    pub interrupt_interval: Option<u8>,
    /// `wMaxSegmentSize` from the CDC Ethernet Networking descriptor.
    pub max_segment_size: Option<u16>,
    /// `iMACAddress` from the CDC Ethernet Networking descriptor (0 is reported as `None`).
    pub mac_string_index: Option<u8>,
    /// `bmNetworkCapabilities` from the NCM functional descriptor.
    pub ncm_capabilities: Option<u8>,
    /// `bcdNcmVersion` from the NCM functional descriptor.
    pub ncm_version: Option<u16>,
    /// For a SAFE/BLAN subset: `bmDataCapabilities` from the MDLM detail descriptor (bit 0:
    /// frames carry a CRC-32 trailer, the "Zaurus" framing).
    pub mdlm_data_capabilities: Option<u8>,
    /// True when an interface association descriptor covers this function and agrees
    /// with its interfaces.
    pub iad_checked: bool,
    /// How the function was found where that was not by the book (fallbacks, quirks).
    pub notes: Vec<String>,
}

impl fmt::Display for NetFunction {
    /// One line: `CDC-NCM, configuration 1, control interface 0, data interface 1 alt 1,
    /// bulk IN 0x81, bulk OUT 0x02, interrupt 0x83 (16 bytes, interval 9), max packet 512,
    /// max segment 1514, MAC string 6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, configuration {}", self.class, self.configuration)?;
        match self.control_interface {
            Some(c) => write!(
                f,
                ", control interface {c}, data interface {} alt {}",
                self.data_interface, self.data_alt_setting
            )?,
            None => write!(
                f,
                ", interface {} alt {}",
                self.data_interface, self.data_alt_setting
            )?,
        }
        write!(
            f,
            ", bulk IN 0x{:02x}, bulk OUT 0x{:02x}",
            self.bulk_in, self.bulk_out
        )?;
        if let Some(ep) = self.interrupt_in {
            write!(f, ", interrupt 0x{ep:02x}")?;
            if let (Some(size), Some(interval)) =
                (self.interrupt_max_packet_size, self.interrupt_interval)
            {
                write!(f, " ({size} bytes, interval {interval})")?;
            }
        }
        write!(f, ", max packet {}", self.max_packet_size)?;
        if self.bulk_out_max_packet_size != self.max_packet_size {
            write!(f, " IN / {} OUT", self.bulk_out_max_packet_size)?;
        }
        if let Some(mss) = self.max_segment_size {
            write!(f, ", max segment {mss}")?;
        }
        if let Some(idx) = self.mac_string_index {
            write!(f, ", MAC string {idx}")?;
        }
        Ok(())
    }
}

/// A candidate function that cannot be driven, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// `bConfigurationValue`.
    pub configuration: u8,
    /// The interface that looked like a network function.
    pub interface: u8,
    /// The class it looked like.
    pub class: ClassKind,
    /// Why it was rejected.
    pub reason: String,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, configuration {}, interface {}: {}",
            self.class, self.configuration, self.interface, self.reason
        )
    }
}

/// Everything [`probe_all`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    /// Functions that can be driven, in configuration (input) order, then interface order.
    pub functions: Vec<NetFunction>,
    /// Candidates that cannot, with reasons.
    pub rejected: Vec<Rejected>,
}

/// Which function to drive, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choice {
    /// Index into the functions passed to [`choose`].
    pub index: usize,
    /// Why, in words.
    pub reason: String,
}

/// Every network function in `set` that can be driven. See [`probe_all`] for the rejected
/// candidates too.
pub fn probe(set: &DescriptorSet) -> Vec<NetFunction> {
    probe_all(set).functions
}

/// Every network function in `set`, and every candidate that was rejected with the reason.
pub fn probe_all(set: &DescriptorSet) -> ProbeResult {
    let mut result = ProbeResult::default();
    let ids = set.device.as_ref().map(|d| (d.vendor_id, d.product_id));
    for config in &set.configurations {
        // SET_CONFIGURATION takes the value: 0 means "unconfigured", and a value two
        // configurations share cannot select either reliably.
        let shared = set
            .configurations
            .iter()
            .filter(|c| c.value == config.value)
            .count();
        let config_problem = if !config.complete {
            Some(format!(
                "configuration {} is malformed (the parse stopped inside it)",
                config.value
            ))
        } else if config.value == 0 {
            Some(
                "bConfigurationValue 0 means \"not configured\"; this configuration cannot be \
                 selected"
                    .to_string(),
            )
        } else if shared > 1 {
            Some(format!(
                "{shared} configurations share bConfigurationValue {}; none of them can be \
                 selected reliably",
                config.value
            ))
        } else {
            None
        };
        // Interfaces already taken as another function's data interface.
        let mut used: BTreeSet<u8> = BTreeSet::new();
        for number in config.interface_numbers() {
            if used.contains(&number) {
                continue;
            }
            let Some(first) = config.alternates(number).next() else {
                continue;
            };
            let Some(class) = classify(first, config, ids) else {
                continue;
            };
            let built = match (&config_problem, class) {
                (Some(problem), _) => Err(problem.clone()),
                (None, class) => match class {
                    ClassKind::Ncm | ClassKind::Ecm | ClassKind::Rndis => {
                        build_pair(config, first, class)
                    }
                    ClassKind::Eem | ClassKind::Subset => build_single(config, first, class, ids),
                },
            };
            match built {
                Ok(func) => {
                    used.insert(func.data_interface);
                    if let Some(c) = func.control_interface {
                        used.insert(c);
                    }
                    result.functions.push(func);
                }
                Err(reason) => {
                    log::debug!(
                        "probe: {class} candidate in configuration {} interface {number} \
                         rejected: {reason}",
                        config.value
                    );
                    result.rejected.push(Rejected {
                        configuration: config.value,
                        interface: number,
                        class,
                        reason,
                    });
                }
            }
        }
    }
    result
}

/// Picks the function to drive: CDC-NCM over CDC-ECM over CDC-EEM over CDC subset over
/// RNDIS; among equals, the first. `None` if `functions` is empty.
pub fn choose(functions: &[NetFunction]) -> Option<Choice> {
    let (index, best) = functions
        .iter()
        .enumerate()
        .min_by_key(|(i, f)| (f.class.rank(), *i))?;
    let others: Vec<&NetFunction> = functions
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, f)| f)
        .collect();
    if others.is_empty() {
        return Some(Choice {
            index,
            reason: format!(
                "{} is the only network function the device offers",
                best.class
            ),
        });
    }
    let mut parts = Vec::new();
    let worse: Vec<String> = others
        .iter()
        .filter(|f| f.class != best.class)
        .map(|f| format!("{} (configuration {})", f.class, f.configuration))
        .collect();
    if !worse.is_empty() {
        parts.push(format!(
            "{} (configuration {}) preferred over {}: {}",
            best.class,
            best.configuration,
            worse.join(" and "),
            best.class.merits()
        ));
    }
    let same = others.iter().filter(|f| f.class == best.class).count();
    if same > 0 {
        parts.push(format!(
            "first of {} {} functions (configuration {}, data interface {})",
            same + 1,
            best.class,
            best.configuration,
            best.data_interface
        ));
    }
    Some(Choice {
        index,
        reason: parts.join("; "),
    })
}

/// The class an interface's first alternate setting announces, if it is a network one.
fn classify(
    iface: &Interface,
    config: &Configuration,
    ids: Option<(u16, u16)>,
) -> Option<ClassKind> {
    match iface.class_triple() {
        (0x02, 0x0d, 0x00) => Some(ClassKind::Ncm),
        (0x02, 0x06, 0x00) => Some(ClassKind::Ecm),
        (0x02, 0x02, 0xff) | (0xe0, 0x01, 0x03) | (0xef, 0x04, 0x01) => Some(ClassKind::Rndis),
        (0x02, 0x0c, 0x07) => Some(ClassKind::Eem),
        (0x02, 0x0a, 0x00) => Some(ClassKind::Subset),
        (0xff, _, _) if is_subset_device(ids) && config.interface_numbers().len() == 1 => {
            Some(ClassKind::Subset)
        }
        _ => None,
    }
}

fn is_subset_device(ids: Option<(u16, u16)>) -> bool {
    ids.is_some_and(|(v, p)| {
        SUBSET_DEVICE_IDS
            .iter()
            .any(|&(sv, sp, _)| (sv, sp) == (v, p))
    })
}

/// A function with a control interface and a data interface (NCM, ECM, RNDIS).
fn build_pair(
    config: &Configuration,
    ctrl: &Interface,
    class: ClassKind,
) -> Result<NetFunction, String> {
    let mut notes = Vec::new();
    let union = ctrl.cdc.iter().find_map(|d| match d {
        CdcDescriptor::Union {
            control_interface,
            subordinate_interfaces,
            ..
        } => Some((*control_interface, subordinate_interfaces.as_slice())),
        _ => None,
    });
    let (control, data) = match union {
        Some((c, subordinates)) => {
            let first = *subordinates
                .first()
                .ok_or("CDC Union descriptor names no subordinate interface")?;
            if c == ctrl.number {
                (c, first)
            } else if first == ctrl.number {
                // Some devices swap the two (the kernel's cdc_ether tolerates it too).
                notes.push(format!(
                    "CDC Union lists control and data interfaces swapped; using interface {} \
                     as control and {c} as data",
                    ctrl.number
                ));
                (ctrl.number, c)
            } else {
                return Err(format!(
                    "CDC Union names control interface {c}, but it sits on interface {}",
                    ctrl.number
                ));
            }
        }
        None if class == ClassKind::Rndis => {
            // Microsoft-style RNDIS (E0/01/03, EF/04/01) may have no Union. Like Linux
            // rndis_host (via usbnet_generic_cdc_bind), take the next interface number as
            // the data interface.
            let next = ctrl
                .number
                .checked_add(1)
                .ok_or("no CDC Union descriptor, and no interface after 255")?;
            notes.push(format!(
                "no CDC Union descriptor: data interface taken as the next interface ({next}), \
                 as Linux rndis_host does"
            ));
            (ctrl.number, next)
        }
        None => return Err("no CDC Union descriptor, so the data interface is unknown".to_string()),
    };
    if data == control {
        return Err(format!(
            "CDC Union names interface {data} as both control and data"
        ));
    }
    let Some(data_first) = config.alternates(data).next() else {
        return Err(format!(
            "CDC Union names data interface {data}, which does not exist in configuration {}",
            config.value
        ));
    };
    if data_first.class != 0x0a {
        notes.push(format!(
            "data interface {data} has class 0x{:02x}, not CDC Data (0x0a)",
            data_first.class
        ));
    }
    let (alt, bulk_in, bulk_out) = pick_data_alt(config, data)?;

    let interrupt = ctrl
        .endpoints
        .iter()
        .find(|e| e.is_in() && e.transfer_type == TransferType::Interrupt);
    let interrupt = match interrupt {
        Some(ep) if ep.max_packet_size == 0 || ep.number() == 0 => {
            notes.push(format!(
                "interrupt endpoint 0x{:02x} is unusable (wMaxPacketSize {}); running without \
                 notifications",
                ep.address, ep.max_packet_size
            ));
            None
        }
        other => other,
    };

    if let Some(ep) = interrupt.filter(|e| e.address == bulk_in.address) {
        return Err(format!(
            "interrupt endpoint 0x{:02x} of control interface {control} has the address of the \
             bulk IN endpoint",
            ep.address
        ));
    }

    let iad_checked = match config.iad_for(control) {
        Some(iad) if !iad.covers(data) => {
            return Err(format!(
                "the interface association covering control interface {control} (interfaces \
                 {} to {}) does not include data interface {data}",
                iad.first_interface,
                u16::from(iad.first_interface) + u16::from(iad.interface_count) - 1
            ));
        }
        Some(_) => true,
        None => false,
    };

    let ether = ethernet_of(ctrl);
    if ether.is_none() && matches!(class, ClassKind::Ecm | ClassKind::Ncm) {
        return Err(
            "no CDC Ethernet Networking descriptor (it gives the MAC address and the maximum \
             segment size)"
                .to_string(),
        );
    }
    let ncm = ctrl.cdc.iter().find_map(|d| match d {
        CdcDescriptor::Ncm {
            ncm_version,
            network_capabilities,
            ..
        } => Some((*ncm_version, *network_capabilities)),
        _ => None,
    });
    if class == ClassKind::Ncm && ncm.is_none() {
        notes.push("no NCM functional descriptor: assuming no optional NCM requests".to_string());
    }

    Ok(NetFunction {
        class,
        configuration: config.value,
        control_interface: Some(control),
        data_interface: data,
        data_alt_setting: alt,
        bulk_in: bulk_in.address,
        bulk_out: bulk_out.address,
        interrupt_in: interrupt.map(|e| e.address),
        max_packet_size: bulk_in.max_packet_size,
        bulk_out_max_packet_size: bulk_out.max_packet_size,
        interrupt_max_packet_size: interrupt.map(|e| e.max_packet_size),
        interrupt_interval: interrupt.map(|e| e.interval),
        max_segment_size: ether.map(|(_, mss)| mss),
        mac_string_index: ether.map(|(idx, _)| idx).filter(|&i| i != 0),
        ncm_capabilities: if class == ClassKind::Ncm {
            ncm.map(|(_, caps)| caps)
        } else {
            None
        },
        ncm_version: if class == ClassKind::Ncm {
            ncm.map(|(v, _)| v)
        } else {
            None
        },
        mdlm_data_capabilities: None,
        iad_checked,
        notes,
    })
}

/// A function on one interface (EEM, CDC subset).
fn build_single(
    config: &Configuration,
    iface: &Interface,
    class: ClassKind,
    ids: Option<(u16, u16)>,
) -> Result<NetFunction, String> {
    let mut notes = Vec::new();
    let number = iface.number;
    let mut mdlm_data_capabilities = None;
    if class == ClassKind::Subset && iface.class == 0x02 {
        let guid = iface.cdc.iter().find_map(|d| match d {
            CdcDescriptor::Mdlm { guid, .. } => Some(*guid),
            _ => None,
        });
        match guid {
            None => {
                return Err("CDC MDLM interface without an MDLM functional descriptor".to_string())
            }
            Some(g) if g != MDLM_GUID_SAFE && g != MDLM_GUID_BLAN => {
                return Err(format!(
                    "MDLM GUID {} is neither SAFE nor BLAN: a real WMC MDLM function, not an \
                     Ethernet link",
                    format_guid(&g)
                ));
            }
            Some(_) => {}
        }
        mdlm_data_capabilities = iface.cdc.iter().find_map(|d| match d {
            CdcDescriptor::MdlmDetail { detail, .. } => detail.get(1).copied(),
            _ => None,
        });
    }
    let (alt, bulk_in, bulk_out) = pick_data_alt(config, number)?;
    if class == ClassKind::Subset && iface.class == 0xff {
        let Some(alt_iface) = config.alternates(number).find(|i| i.alt_setting == alt) else {
            return Err(format!("interface {number} alt {alt} vanished"));
        };
        let count = |dir_in: bool| {
            alt_iface
                .endpoints
                .iter()
                .filter(|e| e.is_in() == dir_in && e.transfer_type == TransferType::Bulk)
                .count()
        };
        if count(true) != 1 || count(false) != 1 {
            return Err(format!(
                "vendor interface {number} alt {alt} has {} bulk IN and {} bulk OUT endpoints; \
                 a CDC subset link has exactly one of each",
                count(true),
                count(false)
            ));
        }
        if let Some((v, p)) = ids {
            if let Some(&(_, _, name)) = SUBSET_DEVICE_IDS
                .iter()
                .find(|&&(sv, sp, _)| (sv, sp) == (v, p))
            {
                notes.push(format!(
                    "vendor-specific interface driven as CDC subset because {v:04x}:{p:04x} is \
                     a known subset device ({name})"
                ));
            }
        }
    }
    let ether = ethernet_of(iface);
    Ok(NetFunction {
        class,
        configuration: config.value,
        control_interface: None,
        data_interface: number,
        data_alt_setting: alt,
        bulk_in: bulk_in.address,
        bulk_out: bulk_out.address,
        interrupt_in: None,
        max_packet_size: bulk_in.max_packet_size,
        bulk_out_max_packet_size: bulk_out.max_packet_size,
        interrupt_max_packet_size: None,
        interrupt_interval: None,
        max_segment_size: ether.map(|(_, mss)| mss),
        mac_string_index: ether.map(|(idx, _)| idx).filter(|&i| i != 0),
        ncm_capabilities: None,
        ncm_version: None,
        mdlm_data_capabilities,
        iad_checked: config.iad_for(number).is_some(),
        notes,
    })
}

/// `(iMACAddress, wMaxSegmentSize)` of the interface's first CDC Ethernet descriptor.
fn ethernet_of(iface: &Interface) -> Option<(u8, u16)> {
    iface.cdc.iter().find_map(|d| match d {
        CdcDescriptor::Ethernet {
            mac_string_index,
            max_segment_size,
            ..
        } => Some((*mac_string_index, *max_segment_size)),
        _ => None,
    })
}

/// The first alternate setting of interface `number` with a usable bulk IN + bulk OUT pair.
/// If none has one, the reason from the last alternate setting that had endpoints.
fn pick_data_alt(config: &Configuration, number: u8) -> Result<(u8, &Endpoint, &Endpoint), String> {
    let mut seen = BTreeSet::new();
    if let Some(dup) = config
        .alternates(number)
        .find(|i| !seen.insert(i.alt_setting))
    {
        return Err(format!(
            "interface {number} lists alternate setting {} twice",
            dup.alt_setting
        ));
    }
    let mut last_error = None;
    for alt in config.alternates(number) {
        match bulk_pair(alt) {
            Ok((i, o)) => return Ok((alt.alt_setting, i, o)),
            Err(e) if !alt.endpoints.is_empty() => last_error = Some(e),
            Err(_) => {}
        }
    }
    Err(last_error.unwrap_or_else(|| {
        format!(
            "interface {number} has no alternate setting with a bulk IN and a bulk OUT endpoint"
        )
    }))
}

fn bulk_pair(alt: &Interface) -> Result<(&Endpoint, &Endpoint), String> {
    let here = format!("interface {} alt {}", alt.number, alt.alt_setting);
    let mut seen = BTreeSet::new();
    if let Some(dup) = alt.endpoints.iter().find(|e| !seen.insert(e.address)) {
        return Err(format!("{here} lists endpoint 0x{:02x} twice", dup.address));
    }
    let find = |dir_in: bool| {
        alt.endpoints
            .iter()
            .find(|e| e.is_in() == dir_in && e.transfer_type == TransferType::Bulk)
    };
    let (Some(bulk_in), Some(bulk_out)) = (find(true), find(false)) else {
        // Explain with an endpoint of the missing direction that is not bulk, if any.
        let missing_in = find(true).is_none();
        if let Some(e) = alt.endpoints.iter().find(|e| e.is_in() == missing_in) {
            return Err(format!(
                "{here}: endpoint 0x{:02x} is {}, not bulk",
                e.address,
                e.transfer_type.name().to_lowercase()
            ));
        }
        return Err(format!("{here} has no bulk IN and bulk OUT pair"));
    };
    for (what, e) in [("IN", bulk_in), ("OUT", bulk_out)] {
        if e.max_packet_size == 0 {
            return Err(format!(
                "{here}: bulk {what} endpoint 0x{:02x} has wMaxPacketSize 0",
                e.address
            ));
        }
        if e.number() == 0 {
            return Err(format!(
                "{here}: bulk {what} endpoint address 0x{:02x} names endpoint 0",
                e.address
            ));
        }
    }
    Ok((bulk_in, bulk_out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::parse;

    /// A configuration with ECM (interfaces 0+1) and, as a second configuration, RNDIS with
    /// no Union (Microsoft style E0/01/03).
    #[rustfmt::skip]
    fn ecm_and_ms_rndis() -> Vec<u8> {
        let mut v = vec![
            // device
            0x12, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x40, 0x34, 0x12, 0x78, 0x56, 0x00, 0x01,
            0x00, 0x00, 0x00, 0x02,
        ];
        v.extend_from_slice(&[
            // configuration 1: 9 + 9+5+5+13+7 + 9 + 9+7+7 = 80
            0x09, 0x02, 80, 0x00, 0x02, 0x01, 0x00, 0x80, 0x32,
            0x09, 0x04, 0x00, 0x00, 0x01, 0x02, 0x06, 0x00, 0x00,
            0x05, 0x24, 0x00, 0x10, 0x01,
            0x05, 0x24, 0x06, 0x00, 0x01,
            0x0d, 0x24, 0x0f, 0x03, 0x00, 0x00, 0x00, 0x00, 0xea, 0x05, 0x00, 0x00, 0x00,
            0x07, 0x05, 0x83, 0x03, 0x10, 0x00, 0x09,
            0x09, 0x04, 0x01, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00,
            0x09, 0x04, 0x01, 0x01, 0x02, 0x0a, 0x00, 0x00, 0x00,
            0x07, 0x05, 0x81, 0x02, 0x00, 0x02, 0x00,
            0x07, 0x05, 0x02, 0x02, 0x00, 0x02, 0x00,
        ]);
        v.extend_from_slice(&[
            // configuration 2: 9 + 9+7 + 9+7+7 = 48
            0x09, 0x02, 48, 0x00, 0x02, 0x02, 0x00, 0x80, 0x32,
            0x09, 0x04, 0x00, 0x00, 0x01, 0xe0, 0x01, 0x03, 0x00,
            0x07, 0x05, 0x83, 0x03, 0x08, 0x00, 0x09,
            0x09, 0x04, 0x01, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x00,
            0x07, 0x05, 0x81, 0x02, 0x00, 0x02, 0x00,
            0x07, 0x05, 0x02, 0x02, 0x00, 0x02, 0x00,
        ]);
        v
    }

    #[test]
    fn finds_ecm_and_rndis_without_union() {
        let p = parse(&ecm_and_ms_rndis());
        assert_eq!(p.error, None);
        let r = probe_all(&p.set);
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        assert_eq!(r.functions.len(), 2);
        let ecm = &r.functions[0];
        assert_eq!(ecm.class, ClassKind::Ecm);
        assert_eq!(
            (
                ecm.control_interface,
                ecm.data_interface,
                ecm.data_alt_setting
            ),
            (Some(0), 1, 1)
        );
        assert_eq!(
            (ecm.bulk_in, ecm.bulk_out, ecm.interrupt_in),
            (0x81, 0x02, Some(0x83))
        );
        assert_eq!(
            (ecm.max_segment_size, ecm.mac_string_index),
            (Some(1514), Some(3))
        );
        assert_eq!(
            ecm.to_string(),
            "CDC-ECM, configuration 1, control interface 0, data interface 1 alt 1, bulk IN \
             0x81, bulk OUT 0x02, interrupt 0x83 (16 bytes, interval 9), max packet 512, max \
             segment 1514, MAC string 3"
        );
        let rndis = &r.functions[1];
        assert_eq!(rndis.class, ClassKind::Rndis);
        assert_eq!((rndis.configuration, rndis.data_interface), (2, 1));
        assert!(
            rndis.notes[0].contains("next interface"),
            "{:?}",
            rndis.notes
        );

        let choice = choose(&r.functions).unwrap();
        assert_eq!(choice.index, 0);
        assert_eq!(
            choice.reason,
            "CDC-ECM (configuration 1) preferred over RNDIS (configuration 2): standard class \
             with plain Ethernet frames and link notifications, no vendor protocol"
        );
    }

    #[test]
    fn rejections_carry_reasons() {
        let bytes = ecm_and_ms_rndis();
        // Union subordinate -> 7.
        let mut b = bytes.clone();
        b[18 + 9 + 9 + 5 + 4] = 7;
        let r = probe_all(&parse(&b).set);
        assert_eq!(r.functions.len(), 1);
        assert_eq!(r.rejected[0].class, ClassKind::Ecm);
        assert_eq!(
            r.rejected[0].reason,
            "CDC Union names data interface 7, which does not exist in configuration 1"
        );
        // Bulk IN of the ECM data interface: wMaxPacketSize 0.
        let mut b = bytes.clone();
        let ep = 18 + 9 + 9 + 5 + 5 + 13 + 7 + 9 + 9;
        b[ep + 4] = 0;
        b[ep + 5] = 0;
        let r = probe_all(&parse(&b).set);
        assert_eq!(
            r.rejected[0].reason,
            "interface 1 alt 1: bulk IN endpoint 0x81 has wMaxPacketSize 0"
        );
        // The same endpoint made interrupt.
        let mut b = bytes.clone();
        b[ep + 3] = 0x03;
        let r = probe_all(&parse(&b).set);
        assert_eq!(
            r.rejected[0].reason,
            "interface 1 alt 1: endpoint 0x81 is interrupt, not bulk"
        );
        // No Ethernet descriptor: turn it into an unknown subtype.
        let mut b = bytes.clone();
        b[18 + 9 + 9 + 5 + 5 + 2] = 0x55;
        let r = probe_all(&parse(&b).set);
        assert!(r.rejected[0]
            .reason
            .starts_with("no CDC Ethernet Networking descriptor"));
    }

    #[test]
    fn duplicate_endpoint_addresses_are_rejected() {
        let bytes = ecm_and_ms_rndis();
        let ep_in = 18 + 9 + 9 + 5 + 5 + 13 + 7 + 9 + 9;
        // Bulk OUT 0x02 becomes a second 0x81.
        let mut b = bytes.clone();
        b[ep_in + 7 + 2] = 0x81;
        let r = probe_all(&parse(&b).set);
        assert_eq!(
            r.rejected[0].reason,
            "interface 1 alt 1 lists endpoint 0x81 twice"
        );
        // The interrupt endpoint takes the bulk IN's address.
        let mut b = bytes.clone();
        b[18 + 9 + 9 + 5 + 5 + 13 + 2] = 0x81;
        let r = probe_all(&parse(&b).set);
        assert!(
            r.rejected[0].reason.starts_with("interrupt endpoint 0x81"),
            "{:?}",
            r.rejected
        );
    }

    #[test]
    fn duplicate_alternate_settings_and_partial_configurations_are_rejected() {
        let bytes = ecm_and_ms_rndis();
        // The ECM data interface's alt 1 claims to be alt 0 too.
        let mut b = bytes.clone();
        b[18 + 9 + 9 + 5 + 5 + 13 + 7 + 9 + 3] = 0;
        let r = probe_all(&parse(&b).set);
        assert_eq!(
            r.rejected[0].reason,
            "interface 1 lists alternate setting 0 twice"
        );
        // A truncated set: the second configuration is cut short.
        let p = parse(&bytes[..bytes.len() - 3]);
        assert!(p.error.is_some());
        assert!(!p.set.configurations[1].complete);
        let r = probe_all(&p.set);
        assert_eq!(r.functions.len(), 1);
        assert_eq!(
            r.rejected[0].reason,
            "configuration 2 is malformed (the parse stopped inside it)"
        );
    }

    #[test]
    fn configuration_values_must_be_usable() {
        let bytes = ecm_and_ms_rndis();
        // Both configurations value 1.
        let mut b = bytes.clone();
        b[18 + 80 + 5] = 1;
        let r = probe_all(&parse(&b).set);
        assert!(r.functions.is_empty());
        assert_eq!(r.rejected.len(), 2);
        assert!(r.rejected[0]
            .reason
            .starts_with("2 configurations share bConfigurationValue 1"));
        // Value 0.
        let mut b = bytes.clone();
        b[18 + 5] = 0;
        let r = probe_all(&parse(&b).set);
        assert_eq!(r.functions.len(), 1);
        assert_eq!(r.rejected[0].configuration, 0);
        assert!(r.rejected[0].reason.contains("not configured"));
    }

    #[test]
    fn preference_and_parse_names() {
        assert_eq!("NCM".parse::<ClassKind>(), Ok(ClassKind::Ncm));
        assert!("wifi".parse::<ClassKind>().is_err());
        assert!(ClassKind::Ncm.rank() < ClassKind::Ecm.rank());
        assert!(ClassKind::Subset.rank() < ClassKind::Rndis.rank());
        assert_eq!(serde_json::to_value(ClassKind::Subset).unwrap(), "subset");
        assert_eq!(choose(&[]), None);
    }
}
