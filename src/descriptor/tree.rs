//! The owned descriptor tree and the parser that builds it from device-supplied bytes.

use std::collections::BTreeSet;

use serde::Serialize;

use super::cdc::CdcDescriptor;
use super::views::{
    descriptor_type, ConfigurationDescriptor, DescriptorHeader, DeviceDescriptor,
    EndpointDescriptor, InterfaceAssociation, InterfaceDescriptor, SsEndpointCompanion,
    TransferType,
};
use super::{hex_bytes, ParseError, ParseErrorKind};

/// Interface classes whose `CS_INTERFACE` descriptors are decoded as CDC functional
/// descriptors: Communications (0x02), CDC Data (0x0A), Wireless Controller (0xE0, RNDIS),
/// Miscellaneous (0xEF, RNDIS) and Vendor Specific (0xFF, which vendor ECM/RNDIS look-alikes
/// use). Other classes (audio, video, ...) reuse 0x24 with their own subtypes, so their
/// class-specific descriptors stay raw.
pub const CDC_DECODED_CLASSES: [u8; 5] = [0x02, 0x0a, 0xe0, 0xef, 0xff];

/// Everything parsed from one device's descriptor bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DescriptorSet {
    /// The device descriptor; `None` when the input was a bare configuration block.
    pub device: Option<Device>,
    /// The configurations in input order (not sorted by `bConfigurationValue`).
    pub configurations: Vec<Configuration>,
}

impl DescriptorSet {
    /// The configuration whose `bConfigurationValue` is `value`.
    pub fn configuration(&self, value: u8) -> Option<&Configuration> {
        self.configurations.iter().find(|c| c.value == value)
    }
}

/// The device descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// Byte offset in the input (always 0).
    pub offset: usize,
    /// `bLength`.
    pub length: u8,
    /// `bcdUSB`.
    pub usb_version: u16,
    /// `bDeviceClass`.
    pub class: u8,
    /// `bDeviceSubClass`.
    pub subclass: u8,
    /// `bDeviceProtocol`.
    pub protocol: u8,
    /// `bMaxPacketSize0`.
    pub max_packet_size0: u8,
    /// `idVendor`.
    pub vendor_id: u16,
    /// `idProduct`.
    pub product_id: u16,
    /// `bcdDevice`.
    pub device_version: u16,
    /// `iManufacturer`.
    pub manufacturer_index: u8,
    /// `iProduct`.
    pub product_index: u8,
    /// `iSerialNumber`.
    pub serial_index: u8,
    /// `bNumConfigurations`.
    pub num_configurations: u8,
}

/// One configuration and everything in its block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Configuration {
    /// Byte offset of the configuration header in the input.
    pub offset: usize,
    /// `bLength` of the header.
    pub length: u8,
    /// `wTotalLength`.
    pub total_length: u16,
    /// `bNumInterfaces`.
    pub num_interfaces: u8,
    /// `bConfigurationValue`.
    pub value: u8,
    /// `iConfiguration`.
    pub string_index: u8,
    /// `bmAttributes`.
    pub attributes: u8,
    /// `bMaxPower` (raw; 2 mA units, 8 mA at SuperSpeed).
    pub max_power: u8,
    /// Every interface descriptor, one entry per alternate setting, in input order.
    pub interfaces: Vec<Interface>,
    /// Interface association descriptors, in input order.
    pub iads: Vec<Iad>,
    /// Descriptors before the first interface that are not IADs.
    pub extra: Vec<RawDescriptor>,
    /// False when the parse stopped inside this configuration: it holds only what came
    /// before the error, and the probe will not drive it.
    pub complete: bool,
}

impl Configuration {
    /// Every alternate setting of interface `number`, in input order.
    pub fn alternates(&self, number: u8) -> impl Iterator<Item = &Interface> + '_ {
        self.interfaces.iter().filter(move |i| i.number == number)
    }

    /// The distinct interface numbers, ascending.
    pub fn interface_numbers(&self) -> Vec<u8> {
        let set: BTreeSet<u8> = self.interfaces.iter().map(|i| i.number).collect();
        set.into_iter().collect()
    }

    /// The IAD whose range covers interface `number`, if any.
    pub fn iad_for(&self, number: u8) -> Option<&Iad> {
        self.iads.iter().find(|a| a.covers(number))
    }
}

/// One alternate setting of one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// Byte offset in the input.
    pub offset: usize,
    /// `bLength` (9; longer descriptors are allowed and their extra bytes ignored).
    pub length: u8,
    /// `bInterfaceNumber`.
    pub number: u8,
    /// `bAlternateSetting`.
    pub alt_setting: u8,
    /// `bNumEndpoints` as declared.
    pub num_endpoints: u8,
    /// `bInterfaceClass`.
    pub class: u8,
    /// `bInterfaceSubClass`.
    pub subclass: u8,
    /// `bInterfaceProtocol`.
    pub protocol: u8,
    /// `iInterface`.
    pub string_index: u8,
    /// The endpoint descriptors that follow, in input order.
    pub endpoints: Vec<Endpoint>,
    /// CDC functional descriptors that follow (only for the classes in
    /// [`CDC_DECODED_CLASSES`]).
    pub cdc: Vec<CdcDescriptor>,
    /// Any other descriptors that follow (HID, vendor, class-specific of other classes, ...).
    pub extra: Vec<RawDescriptor>,
}

impl Interface {
    /// The `(class, subclass, protocol)` triple.
    pub fn class_triple(&self) -> (u8, u8, u8) {
        (self.class, self.subclass, self.protocol)
    }
}

/// An endpoint descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Byte offset in the input.
    pub offset: usize,
    /// `bLength` (7, or 9 for audio endpoints).
    pub length: u8,
    /// `bEndpointAddress`.
    pub address: u8,
    /// `bmAttributes` (raw).
    pub attributes: u8,
    /// The transfer type from `bmAttributes`.
    pub transfer_type: TransferType,
    /// `wMaxPacketSize` as stored.
    pub max_packet_size_raw: u16,
    /// Packet size in bytes: bits 0..10 of `wMaxPacketSize`.
    pub max_packet_size: u16,
    /// Transactions per microframe, 1 + bits 11..12 of `wMaxPacketSize`.
    pub mult: u8,
    /// `bInterval`.
    pub interval: u8,
    /// The SuperSpeed endpoint companion that follows, if any.
    pub ss_companion: Option<SsCompanion>,
}

impl Endpoint {
    /// True for an IN (device-to-host) endpoint.
    pub fn is_in(&self) -> bool {
        self.address & 0x80 != 0
    }

    /// The endpoint number (bits 0..3 of the address).
    pub fn number(&self) -> u8 {
        self.address & 0x0f
    }
}

/// A SuperSpeed endpoint companion descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SsCompanion {
    /// Byte offset in the input.
    pub offset: usize,
    /// `bLength`.
    pub length: u8,
    /// `bMaxBurst`.
    pub max_burst: u8,
    /// `bmAttributes`.
    pub attributes: u8,
    /// `wBytesPerInterval`.
    pub bytes_per_interval: u16,
}

/// An interface association descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Iad {
    /// Byte offset in the input.
    pub offset: usize,
    /// `bLength`.
    pub length: u8,
    /// `bFirstInterface`.
    pub first_interface: u8,
    /// `bInterfaceCount`.
    pub interface_count: u8,
    /// `bFunctionClass`.
    pub function_class: u8,
    /// `bFunctionSubClass`.
    pub function_subclass: u8,
    /// `bFunctionProtocol`.
    pub function_protocol: u8,
    /// `iFunction`.
    pub string_index: u8,
}

impl Iad {
    /// True if interface `number` lies in `bFirstInterface .. bFirstInterface +
    /// bInterfaceCount` (computed without overflow).
    pub fn covers(&self, number: u8) -> bool {
        let first = u16::from(self.first_interface);
        let n = u16::from(number);
        n >= first && n < first + u16::from(self.interface_count)
    }
}

/// A descriptor kept as bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawDescriptor {
    /// Byte offset in the input.
    pub offset: usize,
    /// `bDescriptorType`.
    pub descriptor_type: u8,
    /// The whole descriptor (`bLength` bytes), serialized as hex.
    #[serde(serialize_with = "hex_bytes")]
    pub bytes: Vec<u8>,
}

/// Something odd that did not stop the parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Byte offset of the descriptor concerned.
    pub offset: usize,
    /// What was odd.
    pub kind: WarningKind,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.kind)
    }
}

/// The kinds of [`Warning`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WarningKind {
    /// `bNumConfigurations` differs from the configurations present.
    #[error("device declares {declared} configuration(s) but {found} follow")]
    NumConfigurations {
        /// `bNumConfigurations`.
        declared: u8,
        /// Configurations parsed.
        found: usize,
    },
    /// `bNumInterfaces` differs from the distinct interface numbers present.
    #[error("configuration {value} declares {declared} interface(s) but {found} are present")]
    NumInterfaces {
        /// `bConfigurationValue`.
        value: u8,
        /// `bNumInterfaces`.
        declared: u8,
        /// Distinct interface numbers parsed.
        found: usize,
    },
    /// `bNumEndpoints` differs from the endpoint descriptors that follow.
    #[error(
        "interface {number} alt {alt_setting} declares {declared} endpoint(s) but {found} follow"
    )]
    NumEndpoints {
        /// `bInterfaceNumber`.
        number: u8,
        /// `bAlternateSetting`.
        alt_setting: u8,
        /// `bNumEndpoints`.
        declared: u8,
        /// Endpoint descriptors parsed.
        found: usize,
    },
    /// A SuperSpeed endpoint companion with no endpoint right before it; kept as raw.
    #[error("SuperSpeed endpoint companion does not follow an endpoint; kept as raw bytes")]
    StrayCompanion,
}

/// The result of [`parse`]: everything parsed up to the first error, the error, and
/// warnings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// What parsed. When `error` is set, this holds the descriptors before it (a
    /// configuration whose body failed is kept with the descriptors parsed so far).
    pub set: DescriptorSet,
    /// The first error, if any; parsing stops there.
    pub error: Option<ParseError>,
    /// Oddities that did not stop the parse (counts that disagree, stray companions).
    pub warnings: Vec<Warning>,
}

impl Parsed {
    /// True if the whole input parsed without error.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

fn at(offset: usize) -> impl Fn(ParseErrorKind) -> ParseError {
    move |kind| ParseError { offset, kind }
}

/// Parses the descriptor set usbfs returns for `/dev/bus/usb/BBB/DDD` (the same bytes as
/// sysfs `descriptors`): the device descriptor, then every configuration's full block.
///
/// A bare configuration block (first descriptor of type 0x02) is accepted too, with
/// [`DescriptorSet::device`] `None`. Never panics. Parsing stops at the first error, which
/// is returned with its byte offset alongside everything parsed before it.
///
/// Rules: `bLength` 0 or 1, a `bLength` past the end of the data, or a descriptor shorter
/// than its type's minimum is an error; `wTotalLength` past the end of the data is an error
/// reported after parsing what is there (a truncated sysfs blob keeps the original
/// `wTotalLength`); `wTotalLength` under 9 or cutting a descriptor in two is an error; an
/// endpoint descriptor before any interface descriptor in its configuration is an error
/// ([`ParseErrorKind::EndpointOutsideInterface`]), since no driver could use it. Fewer
/// configurations than `bNumConfigurations` is only a [`Warning`].
pub fn parse(bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    if let Err(e) = parse_into(bytes, &mut parsed) {
        parsed.error = Some(e);
    }
    parsed
}

/// Parses one configuration block (as `GET_DESCRIPTOR(CONFIGURATION)` returns it); bytes
/// after `wTotalLength` are ignored. The result has no device and at most one
/// configuration.
pub fn parse_config(bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    if let Err(e) = parse_configuration(bytes, 0, &mut parsed) {
        parsed.error = Some(e);
    }
    parsed
}

fn parse_into(bytes: &[u8], parsed: &mut Parsed) -> Result<(), ParseError> {
    let header = DescriptorHeader::new_checked(bytes).map_err(at(0))?;
    let mut pos = 0usize;
    match header.descriptor_type() {
        descriptor_type::DEVICE => {
            let view = DeviceDescriptor::new_checked(bytes).map_err(at(0))?;
            parsed.set.device = Some(Device {
                offset: 0,
                length: view.length(),
                usb_version: view.usb_version(),
                class: view.device_class(),
                subclass: view.device_subclass(),
                protocol: view.device_protocol(),
                max_packet_size0: view.max_packet_size0(),
                vendor_id: view.vendor_id(),
                product_id: view.product_id(),
                device_version: view.device_version(),
                manufacturer_index: view.manufacturer_index(),
                product_index: view.product_index(),
                serial_index: view.serial_number_index(),
                num_configurations: view.num_configurations(),
            });
            pos = usize::from(view.length());
        }
        descriptor_type::CONFIGURATION => {}
        found => {
            return Err(ParseError {
                offset: 0,
                kind: ParseErrorKind::WrongType {
                    expected: descriptor_type::DEVICE,
                    found,
                },
            })
        }
    }
    while pos < bytes.len() {
        pos = parse_configuration(bytes, pos, parsed)?;
    }
    if let Some(device) = &parsed.set.device {
        let found = parsed.set.configurations.len();
        if usize::from(device.num_configurations) != found {
            parsed.warnings.push(Warning {
                offset: 0,
                kind: WarningKind::NumConfigurations {
                    declared: device.num_configurations,
                    found,
                },
            });
        }
    }
    Ok(())
}

/// Parses the configuration block at `offset` into `parsed` and returns the offset after
/// it. On error the configuration (with what parsed of its body) is still pushed.
fn parse_configuration(
    bytes: &[u8],
    offset: usize,
    parsed: &mut Parsed,
) -> Result<usize, ParseError> {
    let rest = bytes.get(offset..).unwrap_or_default();
    let view = ConfigurationDescriptor::new_checked(rest).map_err(at(offset))?;
    let header_len = usize::from(view.length());
    let total = usize::from(view.total_length());
    let mut config = Configuration {
        offset,
        length: view.length(),
        total_length: view.total_length(),
        num_interfaces: view.num_interfaces(),
        value: view.configuration_value(),
        string_index: view.string_index(),
        attributes: view.attributes(),
        max_power: view.max_power(),
        interfaces: Vec::new(),
        iads: Vec::new(),
        extra: Vec::new(),
        complete: false,
    };

    // The total-length check decides how far the body goes. When wTotalLength runs past
    // the data, parse what is there (a truncated blob) and report the length error after.
    let (body_end, total_error) = match view.check_total_length() {
        Ok(()) => (total, None),
        Err(kind @ ParseErrorKind::TotalLengthTooLarge { .. }) => (rest.len(), Some(kind)),
        Err(kind) => {
            parsed.set.configurations.push(config);
            return Err(ParseError { offset, kind });
        }
    };
    let body = rest.get(header_len..body_end).unwrap_or_default();
    let body_result = parse_body(
        body,
        offset.saturating_add(header_len),
        &mut config,
        &mut parsed.warnings,
        total_error.is_none(),
        bytes.len(),
    );
    if total_error.is_none() && body_result.is_ok() {
        config.complete = true;
        count_warnings(&config, &mut parsed.warnings);
    }
    parsed.set.configurations.push(config);
    if let Some(kind) = total_error {
        return Err(ParseError { offset, kind });
    }
    body_result.map_err(|e| match e {
        BodyError::At(e) => e,
        BodyError::CrossesTotal { needed } => ParseError {
            offset,
            kind: ParseErrorKind::TotalLengthTooSmall {
                total_length: u16::try_from(total).unwrap_or(u16::MAX),
                needed,
            },
        },
    })?;
    // total <= rest.len(), so this cannot pass the end of the input.
    Ok(offset.saturating_add(total))
}

enum BodyError {
    At(ParseError),
    /// A descriptor runs past `wTotalLength` but not past the data: `needed` is the
    /// length from the configuration header to that descriptor's end.
    CrossesTotal {
        needed: usize,
    },
}

/// Parses the descriptors of one configuration. `base` is the input offset of `body[0]`;
/// `bounded_by_total` is true when `body` ends at `wTotalLength`, false when `wTotalLength`
/// ran past the data and `body` runs to its end (then a configuration header ends the body);
/// `data_len` is the whole input's length.
fn parse_body(
    body: &[u8],
    base: usize,
    config: &mut Configuration,
    warnings: &mut Vec<Warning>,
    bounded_by_total: bool,
    data_len: usize,
) -> Result<(), BodyError> {
    let header_len = usize::from(config.length);
    let mut pos = 0usize;
    // Index into config.interfaces of the interface descriptors now apply to.
    let mut current: Option<usize> = None;
    while let Some(rest) = body.get(pos..).filter(|r| !r.is_empty()) {
        let abs = base.saturating_add(pos);
        let header = match DescriptorHeader::new_checked(rest) {
            Ok(h) => h,
            Err(ParseErrorKind::PastEnd { b_length, .. }) if bounded_by_total => {
                // Would it fit in the data? Then wTotalLength is what is wrong.
                let end = abs.saturating_add(usize::from(b_length));
                if end <= data_len {
                    let needed = header_len + pos + usize::from(b_length);
                    return Err(BodyError::CrossesTotal { needed });
                }
                let available = data_len.saturating_sub(abs);
                let descriptor_type = rest.get(1).copied().unwrap_or(0);
                return Err(BodyError::At(ParseError {
                    offset: abs,
                    kind: ParseErrorKind::PastEnd {
                        descriptor_type,
                        b_length,
                        available,
                    },
                }));
            }
            Err(kind) => return Err(BodyError::At(ParseError { offset: abs, kind })),
        };
        let len = usize::from(header.length());
        let desc = header.as_bytes();
        if !bounded_by_total && header.descriptor_type() == descriptor_type::CONFIGURATION {
            // wTotalLength ran past the data and this looks like the next configuration:
            // keep only this configuration's own descriptors.
            break;
        }
        let err = |kind| BodyError::At(ParseError { offset: abs, kind });
        match header.descriptor_type() {
            descriptor_type::INTERFACE => {
                let v = InterfaceDescriptor::new_checked(desc).map_err(err)?;
                config.interfaces.push(Interface {
                    offset: abs,
                    length: v.length(),
                    number: v.interface_number(),
                    alt_setting: v.alternate_setting(),
                    num_endpoints: v.num_endpoints(),
                    class: v.interface_class(),
                    subclass: v.interface_subclass(),
                    protocol: v.interface_protocol(),
                    string_index: v.string_index(),
                    endpoints: Vec::new(),
                    cdc: Vec::new(),
                    extra: Vec::new(),
                });
                current = Some(config.interfaces.len() - 1);
            }
            descriptor_type::ENDPOINT => {
                let v = EndpointDescriptor::new_checked(desc).map_err(err)?;
                let iface = current
                    .and_then(|i| config.interfaces.get_mut(i))
                    .ok_or_else(|| err(ParseErrorKind::EndpointOutsideInterface))?;
                iface.endpoints.push(Endpoint {
                    offset: abs,
                    length: v.length(),
                    address: v.address(),
                    attributes: v.attributes(),
                    transfer_type: v.transfer_type(),
                    max_packet_size_raw: v.max_packet_size_raw(),
                    max_packet_size: v.max_packet_size(),
                    mult: v.mult(),
                    interval: v.interval(),
                    ss_companion: None,
                });
            }
            descriptor_type::SS_ENDPOINT_COMPANION => {
                let v = SsEndpointCompanion::new_checked(desc).map_err(err)?;
                let companion = SsCompanion {
                    offset: abs,
                    length: v.length(),
                    max_burst: v.max_burst(),
                    attributes: v.attributes(),
                    bytes_per_interval: v.bytes_per_interval(),
                };
                // It belongs to the endpoint right before it, if that has none yet.
                let slot = current
                    .and_then(|i| config.interfaces.get_mut(i))
                    .and_then(|iface| iface.endpoints.last_mut())
                    .filter(|ep| ep.ss_companion.is_none());
                match slot {
                    Some(ep) => ep.ss_companion = Some(companion),
                    None => {
                        warnings.push(Warning {
                            offset: abs,
                            kind: WarningKind::StrayCompanion,
                        });
                        push_raw(config, current, abs, desc);
                    }
                }
            }
            descriptor_type::INTERFACE_ASSOCIATION => {
                let v = InterfaceAssociation::new_checked(desc).map_err(err)?;
                config.iads.push(Iad {
                    offset: abs,
                    length: v.length(),
                    first_interface: v.first_interface(),
                    interface_count: v.interface_count(),
                    function_class: v.function_class(),
                    function_subclass: v.function_subclass(),
                    function_protocol: v.function_protocol(),
                    string_index: v.string_index(),
                });
            }
            descriptor_type::CS_INTERFACE => {
                let iface = current
                    .and_then(|i| config.interfaces.get_mut(i))
                    .filter(|iface| CDC_DECODED_CLASSES.contains(&iface.class));
                match iface {
                    Some(iface) => {
                        let cdc = CdcDescriptor::decode(abs, desc).map_err(err)?;
                        iface.cdc.push(cdc);
                    }
                    None => push_raw(config, current, abs, desc),
                }
            }
            _ => push_raw(config, current, abs, desc),
        }
        pos = pos.saturating_add(len);
    }
    Ok(())
}

fn push_raw(config: &mut Configuration, current: Option<usize>, offset: usize, desc: &[u8]) {
    let raw = RawDescriptor {
        offset,
        descriptor_type: desc.get(1).copied().unwrap_or(0),
        bytes: desc.to_vec(),
    };
    match current.and_then(|i| config.interfaces.get_mut(i)) {
        Some(iface) => iface.extra.push(raw),
        None => config.extra.push(raw),
    }
}

fn count_warnings(config: &Configuration, warnings: &mut Vec<Warning>) {
    let found = config.interface_numbers().len();
    if usize::from(config.num_interfaces) != found {
        warnings.push(Warning {
            offset: config.offset,
            kind: WarningKind::NumInterfaces {
                value: config.value,
                declared: config.num_interfaces,
                found,
            },
        });
    }
    for iface in &config.interfaces {
        if usize::from(iface.num_endpoints) != iface.endpoints.len() {
            warnings.push(Warning {
                offset: iface.offset,
                kind: WarningKind::NumEndpoints {
                    number: iface.number,
                    alt_setting: iface.alt_setting,
                    declared: iface.num_endpoints,
                    found: iface.endpoints.len(),
                },
            });
        }
    }
}
