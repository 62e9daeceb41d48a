//! `usbnetd dump`: the parsed descriptors in `lsusb -v` style with the CDC functional
//! descriptors decoded, then what the probe found and what usbnetd would drive; or the same
//! as one JSON object.
//!
//! Rendering never fails and never panics: whatever parsed is printed, then the parse error
//! (with its byte offset) if there was one. Text from the device (string descriptors) is
//! printed quoted and escaped, so control characters cannot reach the terminal.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::descriptor::cdc::{format_guid, ncm_capability, MDLM_GUID_BLAN, MDLM_GUID_SAFE};
use crate::descriptor::{
    to_hex, CdcDescriptor, Configuration, DescriptorSet, Device, Endpoint, Iad, Interface, Parsed,
    RawDescriptor, SsCompanion, TransferType,
};
use crate::probe::{self, NetFunction};

/// Decoded string descriptors by index. Empty when dumping a file; filled from the device
/// when dumping a live one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Strings {
    map: BTreeMap<u8, String>,
}

impl Strings {
    /// No strings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the text of string `index`. Index 0 (the language list, or "no string") is
    /// ignored.
    pub fn insert(&mut self, index: u8, text: impl Into<String>) {
        if index != 0 {
            self.map.insert(index, text.into());
        }
    }

    /// The text of string `index`, if known. Always `None` for index 0.
    pub fn get(&self, index: u8) -> Option<&str> {
        self.map.get(&index).map(String::as_str)
    }

    /// Every known string, by ascending index.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &str)> + '_ {
        self.map.iter().map(|(&i, s)| (i, s.as_str()))
    }

    /// Number of known strings.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if no string is known.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<S: Into<String>> FromIterator<(u8, S)> for Strings {
    fn from_iter<I: IntoIterator<Item = (u8, S)>>(iter: I) -> Self {
        let mut strings = Strings::new();
        for (i, s) in iter {
            strings.insert(i, s);
        }
        strings
    }
}

/// Every non-zero string index the set refers to (device, configurations, IADs, interfaces,
/// `iMACAddress`), ascending: what to read from a live device before rendering.
pub fn string_indices(set: &DescriptorSet) -> Vec<u8> {
    let mut indices = BTreeSet::new();
    if let Some(d) = &set.device {
        indices.extend([d.manufacturer_index, d.product_index, d.serial_index]);
    }
    for c in &set.configurations {
        indices.insert(c.string_index);
        indices.extend(c.iads.iter().map(|a| a.string_index));
        for i in &c.interfaces {
            indices.insert(i.string_index);
            for d in &i.cdc {
                if let CdcDescriptor::Ethernet {
                    mac_string_index, ..
                } = d
                {
                    indices.insert(*mac_string_index);
                }
            }
        }
    }
    indices.remove(&0);
    indices.into_iter().collect()
}

/// Renders `parsed` as text: the descriptors, warnings, the parse error if any, then the
/// probe result and the chosen function.
pub fn render_text(parsed: &Parsed, strings: &Strings) -> String {
    let mut out = String::new();
    write_text(parsed, strings, &mut out);
    out
}

/// Like [`render_text`], appending to `out`.
pub fn write_text(parsed: &Parsed, strings: &Strings, out: &mut String) {
    let mut w = Writer { out, strings };
    let set = &parsed.set;
    let super_speed = set.device.as_ref().is_some_and(|d| d.usb_version >= 0x0300);
    let config_indent = match &set.device {
        Some(d) => {
            w.device(d);
            2
        }
        None => 0,
    };
    for c in &set.configurations {
        w.configuration(config_indent, c, super_speed);
    }
    for warning in &parsed.warnings {
        w.line(0, format_args!("warning: {warning}"));
    }
    if let Some(e) = &parsed.error {
        w.line(0, format_args!("error: {e}"));
    }
    w.probe(set);
}

/// Renders `parsed` as one JSON object with the keys `device`, `configurations`,
/// `warnings`, `functions`, `rejected`, `chosen`, `chosen_reason`, `strings` and `error`.
pub fn render_json(parsed: &Parsed, strings: &Strings) -> Value {
    let result = probe::probe_all(&parsed.set);
    let choice = probe::choose(&result.functions);
    let strings_obj: serde_json::Map<String, Value> = strings
        .iter()
        .map(|(i, s)| (i.to_string(), Value::from(s)))
        .collect();
    let warnings: Vec<Value> = parsed
        .warnings
        .iter()
        .map(|w| json!({ "offset": w.offset, "message": w.kind.to_string() }))
        .collect();
    json!({
        "device": parsed.set.device,
        "configurations": parsed.set.configurations,
        "warnings": warnings,
        "functions": result.functions,
        "rejected": result.rejected,
        "chosen": choice.as_ref().map(|c| c.index),
        "chosen_reason": choice.map(|c| c.reason),
        "strings": strings_obj,
        "error": parsed.error.as_ref().map(|e| json!({
            "offset": e.offset,
            "message": e.kind.to_string(),
        })),
    })
}

/// Name column width, as lsusb lays it out.
const NAME_WIDTH: usize = 20;

struct Writer<'a> {
    out: &'a mut String,
    strings: &'a Strings,
}

/// One thing inside a configuration or an interface, for printing in input order.
enum Item<'a> {
    Iad(&'a Iad),
    Interface(&'a Interface),
    Raw(&'a RawDescriptor),
    Cdc(&'a CdcDescriptor),
    Endpoint(&'a Endpoint),
}

impl Item<'_> {
    fn offset(&self) -> usize {
        match self {
            Item::Iad(a) => a.offset,
            Item::Interface(i) => i.offset,
            Item::Raw(r) => r.offset,
            Item::Cdc(c) => c.offset(),
            Item::Endpoint(e) => e.offset,
        }
    }
}

impl Writer<'_> {
    fn line(&mut self, indent: usize, text: std::fmt::Arguments<'_>) {
        let _ = writeln!(self.out, "{:indent$}{text}", "");
    }

    /// `name value [comment]`, the value right-aligned after the name column.
    fn field(&mut self, indent: usize, name: &str, value: impl std::fmt::Display, comment: &str) {
        let value = value.to_string();
        let _ = write!(self.out, "{:indent$}{name:<NAME_WIDTH$} {value:>5}", "");
        if !comment.is_empty() {
            let _ = write!(self.out, " {comment}");
        }
        self.out.push('\n');
    }

    /// A string index field: the index, then the quoted text when known.
    fn string_field(&mut self, indent: usize, name: &str, index: u8) {
        let comment = match self.strings.get(index) {
            Some(s) => format!("{s:?}"),
            None => String::new(),
        };
        self.field(indent, name, index, &comment);
    }

    fn hex_lines(&mut self, indent: usize, bytes: &[u8]) {
        for chunk in bytes.chunks(16) {
            self.line(indent, format_args!("{}", to_hex(chunk, " ")));
        }
    }

    fn device(&mut self, d: &Device) {
        self.line(0, format_args!("Device Descriptor (byte {}):", d.offset));
        self.field(2, "bLength", d.length, "");
        self.field(2, "bDescriptorType", 1, "");
        self.field(2, "bcdUSB", bcd(d.usb_version), "");
        self.field(2, "bDeviceClass", d.class, device_class_name(d.class));
        self.field(
            2,
            "bDeviceSubClass",
            d.subclass,
            subclass_name(d.class, d.subclass),
        );
        self.field(
            2,
            "bDeviceProtocol",
            d.protocol,
            protocol_name(d.class, d.subclass, d.protocol),
        );
        self.field(2, "bMaxPacketSize0", d.max_packet_size0, "");
        self.field(2, "idVendor", format!("0x{:04x}", d.vendor_id), "");
        self.field(2, "idProduct", format!("0x{:04x}", d.product_id), "");
        self.field(2, "bcdDevice", bcd(d.device_version), "");
        self.string_field(2, "iManufacturer", d.manufacturer_index);
        self.string_field(2, "iProduct", d.product_index);
        self.string_field(2, "iSerial", d.serial_index);
        self.field(2, "bNumConfigurations", d.num_configurations, "");
    }

    fn configuration(&mut self, indent: usize, c: &Configuration, super_speed: bool) {
        let i = indent + 2;
        self.line(
            indent,
            format_args!("Configuration Descriptor (byte {}):", c.offset),
        );
        self.field(i, "bLength", c.length, "");
        self.field(i, "bDescriptorType", 2, "");
        self.field(i, "wTotalLength", format!("0x{:04x}", c.total_length), "");
        self.field(i, "bNumInterfaces", c.num_interfaces, "");
        self.field(i, "bConfigurationValue", c.value, "");
        self.string_field(i, "iConfiguration", c.string_index);
        self.field(i, "bmAttributes", format!("0x{:02x}", c.attributes), "");
        if c.attributes & 0x40 != 0 {
            self.line(i + 2, format_args!("Self Powered"));
        } else {
            self.line(i + 2, format_args!("(Bus Powered)"));
        }
        if c.attributes & 0x20 != 0 {
            self.line(i + 2, format_args!("Remote Wakeup"));
        }
        let unit = if super_speed { 8 } else { 2 };
        self.field(
            i,
            "MaxPower",
            format!("{}mA", u32::from(c.max_power) * unit),
            "",
        );

        let mut items: Vec<Item<'_>> = Vec::new();
        items.extend(c.iads.iter().map(Item::Iad));
        items.extend(c.interfaces.iter().map(Item::Interface));
        items.extend(c.extra.iter().map(Item::Raw));
        items.sort_by_key(Item::offset);
        for item in items {
            match item {
                Item::Iad(a) => self.iad(i, a),
                Item::Interface(iface) => self.interface(i, iface),
                Item::Raw(r) => self.raw(i, r),
                Item::Cdc(_) | Item::Endpoint(_) => {}
            }
        }
    }

    fn iad(&mut self, indent: usize, a: &Iad) {
        let i = indent + 2;
        self.line(
            indent,
            format_args!("Interface Association (byte {}):", a.offset),
        );
        self.field(i, "bLength", a.length, "");
        self.field(i, "bDescriptorType", 11, "");
        self.field(i, "bFirstInterface", a.first_interface, "");
        self.field(i, "bInterfaceCount", a.interface_count, "");
        self.field(
            i,
            "bFunctionClass",
            a.function_class,
            class_name(a.function_class),
        );
        self.field(
            i,
            "bFunctionSubClass",
            a.function_subclass,
            subclass_name(a.function_class, a.function_subclass),
        );
        self.field(
            i,
            "bFunctionProtocol",
            a.function_protocol,
            protocol_name(a.function_class, a.function_subclass, a.function_protocol),
        );
        self.string_field(i, "iFunction", a.string_index);
    }

    fn interface(&mut self, indent: usize, iface: &Interface) {
        let i = indent + 2;
        self.line(
            indent,
            format_args!("Interface Descriptor (byte {}):", iface.offset),
        );
        self.field(i, "bLength", iface.length, "");
        self.field(i, "bDescriptorType", 4, "");
        self.field(i, "bInterfaceNumber", iface.number, "");
        self.field(i, "bAlternateSetting", iface.alt_setting, "");
        self.field(i, "bNumEndpoints", iface.num_endpoints, "");
        self.field(i, "bInterfaceClass", iface.class, class_name(iface.class));
        self.field(
            i,
            "bInterfaceSubClass",
            iface.subclass,
            subclass_name(iface.class, iface.subclass),
        );
        self.field(
            i,
            "bInterfaceProtocol",
            iface.protocol,
            protocol_name(iface.class, iface.subclass, iface.protocol),
        );
        self.string_field(i, "iInterface", iface.string_index);

        let mut items: Vec<Item<'_>> = Vec::new();
        items.extend(iface.cdc.iter().map(Item::Cdc));
        items.extend(iface.extra.iter().map(Item::Raw));
        items.extend(iface.endpoints.iter().map(Item::Endpoint));
        items.sort_by_key(Item::offset);
        for item in items {
            match item {
                Item::Cdc(d) => self.cdc(i, d),
                Item::Raw(r) => self.raw(i, r),
                Item::Endpoint(e) => self.endpoint(i, e),
                Item::Iad(_) | Item::Interface(_) => {}
            }
        }
    }

    fn raw(&mut self, indent: usize, r: &RawDescriptor) {
        self.line(
            indent,
            format_args!(
                "{} descriptor type 0x{:02x} (byte {}):",
                raw_type_name(r.descriptor_type),
                r.descriptor_type,
                r.offset
            ),
        );
        self.hex_lines(indent + 2, &r.bytes);
    }

    fn cdc(&mut self, indent: usize, d: &CdcDescriptor) {
        let i = indent + 2;
        match d {
            CdcDescriptor::Header {
                offset,
                cdc_version,
            } => {
                self.line(indent, format_args!("CDC Header (byte {offset}):"));
                self.field(i, "bcdCDC", bcd(*cdc_version), "");
            }
            CdcDescriptor::CallManagement {
                offset,
                capabilities,
                data_interface,
            } => {
                self.line(indent, format_args!("CDC Call Management (byte {offset}):"));
                self.field(i, "bmCapabilities", format!("0x{capabilities:02x}"), "");
                self.bits(
                    i + 2,
                    *capabilities,
                    &[(0x01, "call management"), (0x02, "use DataInterface")],
                );
                self.field(i, "bDataInterface", data_interface, "");
            }
            CdcDescriptor::Acm {
                offset,
                capabilities,
            } => {
                self.line(indent, format_args!("CDC ACM (byte {offset}):"));
                self.field(i, "bmCapabilities", format!("0x{capabilities:02x}"), "");
                self.bits(
                    i + 2,
                    *capabilities,
                    &[
                        (0x01, "comm features"),
                        (0x02, "line coding and serial state"),
                        (0x04, "sends break"),
                        (0x08, "connection notifications"),
                    ],
                );
            }
            CdcDescriptor::Union {
                offset,
                control_interface,
                subordinate_interfaces,
            } => {
                self.line(indent, format_args!("CDC Union (byte {offset}):"));
                self.field(i, "bMasterInterface", control_interface, "");
                let subs: Vec<String> = subordinate_interfaces.iter().map(u8::to_string).collect();
                self.field(i, "bSlaveInterface", subs.join(" "), "");
            }
            CdcDescriptor::Ethernet {
                offset,
                mac_string_index,
                ethernet_statistics,
                max_segment_size,
                number_mc_filters,
                number_power_filters,
            } => {
                self.line(indent, format_args!("CDC Ethernet (byte {offset}):"));
                self.string_field(i, "iMacAddress", *mac_string_index);
                self.field(
                    i,
                    "bmEthernetStatistics",
                    format!("0x{ethernet_statistics:08x}"),
                    "",
                );
                self.field(i, "wMaxSegmentSize", max_segment_size, "");
                self.field(
                    i,
                    "wNumberMCFilters",
                    format!("0x{number_mc_filters:04x}"),
                    "",
                );
                self.field(i, "bNumberPowerFilters", number_power_filters, "");
            }
            CdcDescriptor::Mdlm {
                offset,
                version,
                guid,
            } => {
                self.line(indent, format_args!("CDC MDLM (byte {offset}):"));
                self.field(i, "bcdVersion", bcd(*version), "");
                let name = if *guid == MDLM_GUID_SAFE {
                    "(SAFE)"
                } else if *guid == MDLM_GUID_BLAN {
                    "(BLAN)"
                } else {
                    ""
                };
                self.field(i, "bGUID", format!("{{{}}}", format_guid(guid)), name);
            }
            CdcDescriptor::MdlmDetail {
                offset,
                guid_descriptor_type,
                detail,
            } => {
                self.line(indent, format_args!("CDC MDLM detail (byte {offset}):"));
                self.field(i, "bGuidDescriptorType", guid_descriptor_type, "");
                self.field(i, "bDetailData", to_hex(detail, " "), "");
            }
            CdcDescriptor::Ncm {
                offset,
                ncm_version,
                network_capabilities,
            } => {
                self.line(indent, format_args!("CDC NCM (byte {offset}):"));
                self.field(i, "bcdNcmVersion", bcd(*ncm_version), "");
                self.field(
                    i,
                    "bmNetworkCapabilities",
                    format!("0x{network_capabilities:02x}"),
                    "",
                );
                self.bits(
                    i + 2,
                    *network_capabilities,
                    &[
                        (ncm_capability::PACKET_FILTER, "packet filter"),
                        (ncm_capability::NET_ADDRESS, "net address"),
                        (
                            ncm_capability::ENCAPSULATED_COMMAND,
                            "encapsulated commands",
                        ),
                        (ncm_capability::MAX_DATAGRAM_SIZE, "max datagram size"),
                        (ncm_capability::CRC_MODE, "crc mode"),
                        (ncm_capability::NTB_INPUT_SIZE_8, "8-byte ntb input size"),
                    ],
                );
            }
            CdcDescriptor::Other {
                offset,
                subtype,
                bytes,
            } => {
                self.line(
                    indent,
                    format_args!("CDC descriptor subtype 0x{subtype:02x} (byte {offset}):"),
                );
                self.hex_lines(i, bytes);
            }
        }
    }

    fn bits(&mut self, indent: usize, value: u8, names: &[(u8, &str)]) {
        for &(bit, name) in names {
            if value & bit != 0 {
                self.line(indent, format_args!("{name}"));
            }
        }
    }

    fn endpoint(&mut self, indent: usize, e: &Endpoint) {
        let i = indent + 2;
        self.line(
            indent,
            format_args!("Endpoint Descriptor (byte {}):", e.offset),
        );
        self.field(i, "bLength", e.length, "");
        self.field(i, "bDescriptorType", 5, "");
        let dir = if e.is_in() { "IN" } else { "OUT" };
        self.field(
            i,
            "bEndpointAddress",
            format!("0x{:02x}", e.address),
            &format!(" EP {} {dir}", e.number()),
        );
        self.field(i, "bmAttributes", e.attributes, "");
        self.line(
            i + 2,
            format_args!("Transfer Type            {}", e.transfer_type.name()),
        );
        if e.transfer_type == TransferType::Isochronous {
            let sync = ["None", "Asynchronous", "Adaptive", "Synchronous"];
            let usage = ["Data", "Feedback", "Implicit feedback Data", "(reserved)"];
            let s = sync
                .get(usize::from((e.attributes >> 2) & 3))
                .copied()
                .unwrap_or("");
            let u = usage
                .get(usize::from((e.attributes >> 4) & 3))
                .copied()
                .unwrap_or("");
            self.line(i + 2, format_args!("Synch Type               {s}"));
            self.line(i + 2, format_args!("Usage Type               {u}"));
        }
        self.field(
            i,
            "wMaxPacketSize",
            format!("0x{:04x}", e.max_packet_size_raw),
            &format!(" {}x {} bytes", e.mult, e.max_packet_size),
        );
        self.field(i, "bInterval", e.interval, "");
        if let Some(c) = &e.ss_companion {
            self.companion(i, c);
        }
    }

    fn companion(&mut self, indent: usize, c: &SsCompanion) {
        let i = indent + 2;
        self.line(
            indent,
            format_args!("SuperSpeed Endpoint Companion (byte {}):", c.offset),
        );
        self.field(i, "bLength", c.length, "");
        self.field(i, "bDescriptorType", 48, "");
        self.field(i, "bMaxBurst", c.max_burst, "");
        self.field(i, "bmAttributes", format!("0x{:02x}", c.attributes), "");
        self.field(i, "wBytesPerInterval", c.bytes_per_interval, "");
    }

    fn probe(&mut self, set: &DescriptorSet) {
        let result = probe::probe_all(set);
        self.line(0, format_args!(""));
        if result.functions.is_empty() {
            self.line(0, format_args!("Network functions: none"));
        } else {
            self.line(0, format_args!("Network functions:"));
        }
        for (n, f) in result.functions.iter().enumerate() {
            let text = self.function_line(f);
            self.line(2, format_args!("[{n}] {text}"));
            if f.iad_checked {
                self.line(6, format_args!("interface association agrees"));
            }
            for note in &f.notes {
                self.line(6, format_args!("note: {note}"));
            }
        }
        if !result.rejected.is_empty() {
            self.line(0, format_args!("Rejected:"));
            for r in &result.rejected {
                self.line(2, format_args!("{r}"));
            }
        }
        match probe::choose(&result.functions) {
            Some(choice) => {
                let chosen = result
                    .functions
                    .get(choice.index)
                    .map(|f| self.function_line(f))
                    .unwrap_or_default();
                self.line(0, format_args!("usbnetd would drive: {chosen}"));
                if result.functions.len() > 1 {
                    self.line(2, format_args!("because: {}", choice.reason));
                }
            }
            None => self.line(
                0,
                format_args!("usbnetd would drive: nothing (no USB network function found)"),
            ),
        }
    }

    /// The function's one-line summary, with the MAC string's text when known.
    fn function_line(&self, f: &NetFunction) -> String {
        let mut text = f.to_string();
        if let Some(mac) = f.mac_string_index.and_then(|i| self.strings.get(i)) {
            let _ = write!(text, " {mac:?}");
        }
        text
    }
}

/// `0x0210` as `2.10`.
fn bcd(v: u16) -> String {
    format!("{:x}.{:02x}", v >> 8, v & 0xff)
}

fn device_class_name(class: u8) -> &'static str {
    match class {
        0x00 => "(Defined at Interface level)",
        other => class_name(other),
    }
}

fn class_name(class: u8) -> &'static str {
    match class {
        0x01 => "Audio",
        0x02 => "Communications",
        0x03 => "Human Interface Device",
        0x05 => "Physical Interface Device",
        0x06 => "Imaging",
        0x07 => "Printer",
        0x08 => "Mass Storage",
        0x09 => "Hub",
        0x0a => "CDC Data",
        0x0b => "Chip/SmartCard",
        0x0d => "Content Security",
        0x0e => "Video",
        0x0f => "Personal Healthcare",
        0x10 => "Audio/Video",
        0xdc => "Diagnostic",
        0xe0 => "Wireless",
        0xef => "Miscellaneous Device",
        0xfe => "Application Specific Interface",
        0xff => "Vendor Specific Class",
        _ => "",
    }
}

fn subclass_name(class: u8, subclass: u8) -> &'static str {
    match (class, subclass) {
        (0x02, 0x01) => "Direct Line",
        (0x02, 0x02) => "Abstract (modem)",
        (0x02, 0x06) => "Ethernet Networking",
        (0x02, 0x0a) => "Mobile Direct Line Model",
        (0x02, 0x0c) => "Ethernet Emulation Model",
        (0x02, 0x0d) => "Network Control Model",
        (0x02, 0x0e) => "Mobile Broadband Interface Model",
        (0xe0, 0x01) => "Radio Frequency",
        (0xef, 0x02) => "Common Class",
        (0xef, 0x04) => "Network Control",
        (0xff, _) => "Vendor Specific Subclass",
        _ => "",
    }
}

fn protocol_name(class: u8, subclass: u8, protocol: u8) -> &'static str {
    match (class, subclass, protocol) {
        (0x02, 0x02, 0x01) => "AT-commands (v.25ter)",
        (0x02, 0x02, 0xff) => "Vendor Specific (MSFT RNDIS?)",
        (0x02, 0x0c, 0x07) => "Ethernet Emulation Model",
        (0x0a, 0x00, 0x01) => "Network Transfer Block",
        (0xe0, 0x01, 0x03) => "RNDIS",
        (0xef, 0x02, 0x01) => "Interface Association",
        (0xef, 0x04, 0x01) => "RNDIS over Ethernet",
        (0xff, _, _) => "Vendor Specific Protocol",
        _ => "",
    }
}

fn raw_type_name(descriptor_type: u8) -> &'static str {
    match descriptor_type {
        0x21 => "HID",
        0x24 => "Class-specific interface",
        0x25 => "Class-specific endpoint",
        0x30 => "SuperSpeed endpoint companion",
        0x31 => "SuperSpeedPlus isochronous companion",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::parse;

    #[rustfmt::skip]
    fn eem() -> Vec<u8> {
        vec![
            0x12, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x40, 0x6b, 0x1d, 0x04, 0x01, 0x00, 0x01,
            0x01, 0x02, 0x03, 0x01,
            0x09, 0x02, 32, 0x00, 0x01, 0x01, 0x00, 0x80, 0xfa,
            0x09, 0x04, 0x00, 0x00, 0x02, 0x02, 0x0c, 0x07, 0x05,
            0x07, 0x05, 0x81, 0x02, 0x00, 0x02, 0x00,
            0x07, 0x05, 0x02, 0x02, 0x00, 0x02, 0x00,
        ]
    }

    #[test]
    fn strings_map() {
        let mut s = Strings::new();
        s.insert(0, "ignored");
        s.insert(2, "Gadget");
        assert_eq!(s.get(0), None);
        assert_eq!(s.get(2), Some("Gadget"));
        assert_eq!(s.len(), 1);
        let t: Strings = [(1u8, "a"), (3, "b")].into_iter().collect();
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![(1, "a"), (3, "b")]);
    }

    #[test]
    fn text_uses_strings_and_escapes_them() {
        let p = parse(&eem());
        let strings: Strings = [(2u8, "Gadget\x1b[31m")].into_iter().collect();
        let text = render_text(&p, &strings);
        assert!(
            text.contains("  iProduct                 2 \"Gadget\\u{1b}[31m\"\n"),
            "{text}"
        );
        assert!(
            text.contains("bEndpointAddress      0x81  EP 1 IN\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "usbnetd would drive: CDC-EEM, configuration 1, interface 0 alt 0, bulk IN 0x81, \
             bulk OUT 0x02, max packet 512\n"
            ),
            "{text}"
        );
        assert!(!text.contains("because"));
        assert_eq!(string_indices(&p.set), vec![1, 2, 3, 5]);
    }

    #[test]
    fn error_is_printed_after_what_parsed() {
        let mut b = eem();
        b[36] = 0;
        let p = parse(&b);
        let text = render_text(&p, &Strings::new());
        assert!(text.contains("Interface Descriptor (byte 27):"));
        assert!(
            text.contains("error: at byte 36: descriptor bLength 0 is invalid"),
            "{text}"
        );
        let v = render_json(&p, &Strings::new());
        assert_eq!(v["error"]["offset"], 36);
        assert_eq!(v["chosen"], Value::Null);
    }

    #[test]
    fn json_keys() {
        let p = parse(&eem());
        let v = render_json(&p, &[(1u8, "Linux")].into_iter().collect());
        for key in [
            "device",
            "configurations",
            "functions",
            "chosen",
            "chosen_reason",
            "strings",
            "error",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["functions"][0]["class"], "eem");
        assert_eq!(v["functions"][0]["control_interface"], Value::Null);
        assert_eq!(v["chosen"], 0);
        assert_eq!(v["strings"]["1"], "Linux");
        assert_eq!(v["error"], Value::Null);
    }
}
