//! Checked zero-copy views over the standard USB descriptors (USB 2.0 §9.6, USB 3.2 §9.6.7,
//! the Interface Association ECN).
//!
//! Each view wraps any `T: AsRef<[u8]>` that starts with the descriptor. See the
//! [module documentation](super) for the contract between `check_len` and the accessors.

use super::ParseErrorKind;

/// `bDescriptorType` values this crate names (USB 2.0 table 9-5, USB 3.2 table 9-6, CDC 1.2
/// table 12).
pub mod descriptor_type {
    /// `DEVICE`.
    pub const DEVICE: u8 = 0x01;
    /// `CONFIGURATION`.
    pub const CONFIGURATION: u8 = 0x02;
    /// `STRING`.
    pub const STRING: u8 = 0x03;
    /// `INTERFACE`.
    pub const INTERFACE: u8 = 0x04;
    /// `ENDPOINT`.
    pub const ENDPOINT: u8 = 0x05;
    /// `DEVICE_QUALIFIER`.
    pub const DEVICE_QUALIFIER: u8 = 0x06;
    /// `OTHER_SPEED_CONFIGURATION`.
    pub const OTHER_SPEED_CONFIGURATION: u8 = 0x07;
    /// `OTG`.
    pub const OTG: u8 = 0x09;
    /// `DEBUG`.
    pub const DEBUG: u8 = 0x0A;
    /// `INTERFACE_ASSOCIATION`.
    pub const INTERFACE_ASSOCIATION: u8 = 0x0B;
    /// `BOS`.
    pub const BOS: u8 = 0x0F;
    /// `HID` (class-specific, HID 1.11 §7.1).
    pub const HID: u8 = 0x21;
    /// `CS_INTERFACE`: class-specific interface descriptor (CDC functional descriptors).
    pub const CS_INTERFACE: u8 = 0x24;
    /// `CS_ENDPOINT`: class-specific endpoint descriptor.
    pub const CS_ENDPOINT: u8 = 0x25;
    /// `SUPERSPEED_USB_ENDPOINT_COMPANION`.
    pub const SS_ENDPOINT_COMPANION: u8 = 0x30;
    /// `SUPERSPEEDPLUS_ISOCHRONOUS_ENDPOINT_COMPANION`.
    pub const SSP_ISOCH_ENDPOINT_COMPANION: u8 = 0x31;
}

/// What a view's `new_checked` requires of the type bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// Any `bDescriptorType`.
    Any,
    /// Exactly this `bDescriptorType`.
    Type(u8),
    /// `CS_INTERFACE` with this `bDescriptorSubtype` at byte 2.
    CdcSubtype(u8),
}

/// The bounds check every view shares: the buffer holds the 2-byte header, `bLength` is at
/// least 2 and at most the buffer, and at least `min_len`.
pub(crate) fn check_descriptor(
    buf: &[u8],
    descriptor: &'static str,
    min_len: usize,
) -> Result<(), ParseErrorKind> {
    let available = buf.len();
    let [b_length, descriptor_type, ..] = *buf else {
        return Err(ParseErrorKind::Truncated {
            needed: 2,
            available,
        });
    };
    if b_length < 2 {
        return Err(ParseErrorKind::BadLength { b_length });
    }
    if usize::from(b_length) > available {
        return Err(ParseErrorKind::PastEnd {
            descriptor_type,
            b_length,
            available,
        });
    }
    if usize::from(b_length) < min_len {
        return Err(ParseErrorKind::TooShort {
            descriptor,
            b_length,
            minimum: min_len,
        });
    }
    Ok(())
}

/// The type check of `new_checked`; the caller has run [`check_descriptor`] with a minimum
/// of at least 3 for [`Kind::CdcSubtype`].
pub(crate) fn check_kind(buf: &[u8], kind: Kind) -> Result<(), ParseErrorKind> {
    let found = buf.get(1).copied().unwrap_or(0);
    match kind {
        Kind::Any => Ok(()),
        Kind::Type(expected) if expected == found => Ok(()),
        Kind::Type(expected) => Err(ParseErrorKind::WrongType { expected, found }),
        Kind::CdcSubtype(expected) => {
            if found != descriptor_type::CS_INTERFACE {
                return Err(ParseErrorKind::WrongType {
                    expected: descriptor_type::CS_INTERFACE,
                    found,
                });
            }
            let subtype = buf.get(2).copied().unwrap_or(0);
            if subtype == expected {
                Ok(())
            } else {
                Err(ParseErrorKind::WrongSubtype {
                    expected,
                    found: subtype,
                })
            }
        }
    }
}

/// A little-endian field of a fixed width; `at` is the offset of its first byte.
pub(crate) trait LeField: Sized + Copy {
    fn read(buf: &[u8], at: usize) -> Self;
    fn write(self, buf: &mut [u8], at: usize);
}

impl LeField for u8 {
    #[inline]
    fn read(buf: &[u8], at: usize) -> Self {
        buf[at]
    }
    #[inline]
    fn write(self, buf: &mut [u8], at: usize) {
        buf[at] = self;
    }
}

impl LeField for u16 {
    #[inline]
    fn read(buf: &[u8], at: usize) -> Self {
        u16::from_le_bytes([buf[at], buf[at + 1]])
    }
    #[inline]
    fn write(self, buf: &mut [u8], at: usize) {
        buf[at..at + 2].copy_from_slice(&self.to_le_bytes());
    }
}

impl LeField for u32 {
    #[inline]
    fn read(buf: &[u8], at: usize) -> Self {
        u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
    }
    #[inline]
    fn write(self, buf: &mut [u8], at: usize) {
        buf[at..at + 4].copy_from_slice(&self.to_le_bytes());
    }
}

/// Declares a view type: the struct, `new_unchecked`/`new_checked`/`check_len`, the common
/// header accessors and setters, then one getter/setter pair per listed field.
macro_rules! descriptor_view {
    (
        $(#[$meta:meta])*
        pub struct $name:ident;
        name = $desc:literal, min_len = $min:expr, kind = $kind:expr;
        fields {
            $(
                $(#[$fmeta:meta])*
                $get:ident / $set:ident : $ty:ty = $field:expr;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Smallest `bLength` this descriptor may have.
            pub const MIN_LEN: usize = $min;

            /// Wraps `buffer` without checking it. Accessors may panic until
            /// [`Self::check_len`] has returned `Ok(())`; use [`Self::new_checked`] for
            /// device-supplied bytes.
            pub const fn new_unchecked(buffer: T) -> Self {
                Self { buffer }
            }

            /// Wraps untrusted bytes: runs [`Self::check_len`], then checks the
            /// descriptor type (and, for CDC functional descriptors, the subtype).
            pub fn new_checked(buffer: T) -> Result<Self, $crate::descriptor::ParseErrorKind> {
                let view = Self::new_unchecked(buffer);
                view.check_len()?;
                $crate::descriptor::views::check_kind(view.buffer.as_ref(), $kind)?;
                Ok(view)
            }

            #[doc = concat!(
                "Checks that the buffer holds the whole descriptor: `bLength` is at least 2 and ",
                "at least [`Self::MIN_LEN`], and the buffer holds `bLength` bytes. If this ",
                "returns `Ok(())`, no accessor of this ", $desc, " view panics. Setting ",
                "`bLength` invalidates the check."
            )]
            pub fn check_len(&self) -> Result<(), $crate::descriptor::ParseErrorKind> {
                $crate::descriptor::views::check_descriptor(
                    self.buffer.as_ref(),
                    $desc,
                    Self::MIN_LEN,
                )
            }

            /// Unwraps the underlying buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }

            /// `bLength`: the size of this descriptor in bytes.
            #[doc(alias = "bLength")]
            #[inline]
            pub fn length(&self) -> u8 {
                <u8 as $crate::descriptor::views::LeField>::read(self.buffer.as_ref(), 0)
            }

            /// `bDescriptorType`.
            #[doc(alias = "bDescriptorType")]
            #[inline]
            pub fn descriptor_type(&self) -> u8 {
                <u8 as $crate::descriptor::views::LeField>::read(self.buffer.as_ref(), 1)
            }

            /// The descriptor's bytes: the first `bLength` bytes of the buffer.
            #[inline]
            pub fn as_bytes(&self) -> &[u8] {
                let buf = self.buffer.as_ref();
                &buf[..usize::from(self.length())]
            }

            $(
                $(#[$fmeta])*
                #[inline]
                pub fn $get(&self) -> $ty {
                    <$ty as $crate::descriptor::views::LeField>::read(self.buffer.as_ref(), $field)
                }
            )*
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            /// Sets `bLength`; this invalidates [`Self::check_len`].
            #[inline]
            pub fn set_length(&mut self, value: u8) {
                $crate::descriptor::views::LeField::write(value, self.buffer.as_mut(), 0)
            }

            /// Sets `bDescriptorType`.
            #[inline]
            pub fn set_descriptor_type(&mut self, value: u8) {
                $crate::descriptor::views::LeField::write(value, self.buffer.as_mut(), 1)
            }

            $(
                #[doc = concat!("Sets the field read by [`Self::", stringify!($get), "`].")]
                #[inline]
                pub fn $set(&mut self, value: $ty) {
                    $crate::descriptor::views::LeField::write(value, self.buffer.as_mut(), $field)
                }
            )*
        }
    };
}
pub(crate) use descriptor_view;

/// Field offsets of the standard descriptors (USB 2.0 tables 9-8, 9-10, 9-12, 9-13, 9-16;
/// USB 3.2 table 9-27; IAD ECN table 9-Z). Width follows from the accessor's type.
pub mod field {
    /// Offsets shared by every descriptor.
    pub mod header {
        /// `bLength` (u8).
        pub const B_LENGTH: usize = 0;
        /// `bDescriptorType` (u8).
        pub const B_DESCRIPTOR_TYPE: usize = 1;
    }
    /// Device descriptor (18 bytes).
    pub mod device {
        /// `bcdUSB` (u16).
        pub const BCD_USB: usize = 2;
        /// `bDeviceClass` (u8).
        pub const B_DEVICE_CLASS: usize = 4;
        /// `bDeviceSubClass` (u8).
        pub const B_DEVICE_SUB_CLASS: usize = 5;
        /// `bDeviceProtocol` (u8).
        pub const B_DEVICE_PROTOCOL: usize = 6;
        /// `bMaxPacketSize0` (u8).
        pub const B_MAX_PACKET_SIZE0: usize = 7;
        /// `idVendor` (u16).
        pub const ID_VENDOR: usize = 8;
        /// `idProduct` (u16).
        pub const ID_PRODUCT: usize = 10;
        /// `bcdDevice` (u16).
        pub const BCD_DEVICE: usize = 12;
        /// `iManufacturer` (u8).
        pub const I_MANUFACTURER: usize = 14;
        /// `iProduct` (u8).
        pub const I_PRODUCT: usize = 15;
        /// `iSerialNumber` (u8).
        pub const I_SERIAL_NUMBER: usize = 16;
        /// `bNumConfigurations` (u8).
        pub const B_NUM_CONFIGURATIONS: usize = 17;
        /// Length of the descriptor.
        pub const LEN: usize = 18;
    }
    /// Configuration descriptor header (9 bytes).
    pub mod configuration {
        /// `wTotalLength` (u16).
        pub const W_TOTAL_LENGTH: usize = 2;
        /// `bNumInterfaces` (u8).
        pub const B_NUM_INTERFACES: usize = 4;
        /// `bConfigurationValue` (u8).
        pub const B_CONFIGURATION_VALUE: usize = 5;
        /// `iConfiguration` (u8).
        pub const I_CONFIGURATION: usize = 6;
        /// `bmAttributes` (u8).
        pub const BM_ATTRIBUTES: usize = 7;
        /// `bMaxPower` (u8).
        pub const B_MAX_POWER: usize = 8;
        /// Length of the header.
        pub const LEN: usize = 9;
    }
    /// Interface descriptor (9 bytes).
    pub mod interface {
        /// `bInterfaceNumber` (u8).
        pub const B_INTERFACE_NUMBER: usize = 2;
        /// `bAlternateSetting` (u8).
        pub const B_ALTERNATE_SETTING: usize = 3;
        /// `bNumEndpoints` (u8).
        pub const B_NUM_ENDPOINTS: usize = 4;
        /// `bInterfaceClass` (u8).
        pub const B_INTERFACE_CLASS: usize = 5;
        /// `bInterfaceSubClass` (u8).
        pub const B_INTERFACE_SUB_CLASS: usize = 6;
        /// `bInterfaceProtocol` (u8).
        pub const B_INTERFACE_PROTOCOL: usize = 7;
        /// `iInterface` (u8).
        pub const I_INTERFACE: usize = 8;
        /// Length of the descriptor.
        pub const LEN: usize = 9;
    }
    /// Endpoint descriptor (7 bytes; audio endpoints have 9).
    pub mod endpoint {
        /// `bEndpointAddress` (u8).
        pub const B_ENDPOINT_ADDRESS: usize = 2;
        /// `bmAttributes` (u8).
        pub const BM_ATTRIBUTES: usize = 3;
        /// `wMaxPacketSize` (u16).
        pub const W_MAX_PACKET_SIZE: usize = 4;
        /// `bInterval` (u8).
        pub const B_INTERVAL: usize = 6;
        /// Length of the descriptor.
        pub const LEN: usize = 7;
    }
    /// SuperSpeed endpoint companion (6 bytes).
    pub mod ss_companion {
        /// `bMaxBurst` (u8).
        pub const B_MAX_BURST: usize = 2;
        /// `bmAttributes` (u8).
        pub const BM_ATTRIBUTES: usize = 3;
        /// `wBytesPerInterval` (u16).
        pub const W_BYTES_PER_INTERVAL: usize = 4;
        /// Length of the descriptor.
        pub const LEN: usize = 6;
    }
    /// Interface association descriptor (8 bytes).
    pub mod iad {
        /// `bFirstInterface` (u8).
        pub const B_FIRST_INTERFACE: usize = 2;
        /// `bInterfaceCount` (u8).
        pub const B_INTERFACE_COUNT: usize = 3;
        /// `bFunctionClass` (u8).
        pub const B_FUNCTION_CLASS: usize = 4;
        /// `bFunctionSubClass` (u8).
        pub const B_FUNCTION_SUB_CLASS: usize = 5;
        /// `bFunctionProtocol` (u8).
        pub const B_FUNCTION_PROTOCOL: usize = 6;
        /// `iFunction` (u8).
        pub const I_FUNCTION: usize = 7;
        /// Length of the descriptor.
        pub const LEN: usize = 8;
    }
    /// String descriptor (2 bytes + UTF-16LE code units).
    pub mod string {
        /// First byte of `bString` (or of `wLANGID[0]` in string 0).
        pub const B_STRING: usize = 2;
    }
}

descriptor_view! {
    /// Any descriptor, seen only through its two header bytes (`bLength`, `bDescriptorType`).
    pub struct DescriptorHeader;
    name = "generic", min_len = 2, kind = Kind::Any;
    fields {}
}

descriptor_view! {
    /// The device descriptor (`bDescriptorType` 0x01, 18 bytes).
    pub struct DeviceDescriptor;
    name = "device", min_len = field::device::LEN, kind = Kind::Type(descriptor_type::DEVICE);
    fields {
        /// `bcdUSB`: USB release in BCD (0x0200 is USB 2.00).
        #[doc(alias = "bcdUSB")]
        usb_version / set_usb_version: u16 = field::device::BCD_USB;
        /// `bDeviceClass`.
        #[doc(alias = "bDeviceClass")]
        device_class / set_device_class: u8 = field::device::B_DEVICE_CLASS;
        /// `bDeviceSubClass`.
        #[doc(alias = "bDeviceSubClass")]
        device_subclass / set_device_subclass: u8 = field::device::B_DEVICE_SUB_CLASS;
        /// `bDeviceProtocol`.
        #[doc(alias = "bDeviceProtocol")]
        device_protocol / set_device_protocol: u8 = field::device::B_DEVICE_PROTOCOL;
        /// `bMaxPacketSize0`: max packet size of endpoint zero.
        #[doc(alias = "bMaxPacketSize0")]
        max_packet_size0 / set_max_packet_size0: u8 = field::device::B_MAX_PACKET_SIZE0;
        /// `idVendor`.
        #[doc(alias = "idVendor")]
        vendor_id / set_vendor_id: u16 = field::device::ID_VENDOR;
        /// `idProduct`.
        #[doc(alias = "idProduct")]
        product_id / set_product_id: u16 = field::device::ID_PRODUCT;
        /// `bcdDevice`: device release in BCD.
        #[doc(alias = "bcdDevice")]
        device_version / set_device_version: u16 = field::device::BCD_DEVICE;
        /// `iManufacturer`: string index, 0 for none.
        #[doc(alias = "iManufacturer")]
        manufacturer_index / set_manufacturer_index: u8 = field::device::I_MANUFACTURER;
        /// `iProduct`: string index, 0 for none.
        #[doc(alias = "iProduct")]
        product_index / set_product_index: u8 = field::device::I_PRODUCT;
        /// `iSerialNumber`: string index, 0 for none.
        #[doc(alias = "iSerialNumber")]
        serial_number_index / set_serial_number_index: u8 = field::device::I_SERIAL_NUMBER;
        /// `bNumConfigurations`.
        #[doc(alias = "bNumConfigurations")]
        num_configurations / set_num_configurations: u8 = field::device::B_NUM_CONFIGURATIONS;
    }
}

descriptor_view! {
    /// A configuration descriptor (`bDescriptorType` 0x02), viewed over its 9-byte header or
    /// over the whole configuration block that `wTotalLength` announces.
    ///
    /// [`check_len`](Self::check_len) checks only the header; call
    /// [`check_total_length`](Self::check_total_length) before [`body`](Self::body).
    pub struct ConfigurationDescriptor;
    name = "configuration", min_len = field::configuration::LEN,
    kind = Kind::Type(descriptor_type::CONFIGURATION);
    fields {
        /// `wTotalLength`: bytes in the whole block (this header and every descriptor of
        /// the configuration).
        #[doc(alias = "wTotalLength")]
        total_length / set_total_length: u16 = field::configuration::W_TOTAL_LENGTH;
        /// `bNumInterfaces`: interfaces (not alternate settings) in the configuration.
        #[doc(alias = "bNumInterfaces")]
        num_interfaces / set_num_interfaces: u8 = field::configuration::B_NUM_INTERFACES;
        /// `bConfigurationValue`: the value `SET_CONFIGURATION` takes.
        #[doc(alias = "bConfigurationValue")]
        configuration_value / set_configuration_value: u8 =
            field::configuration::B_CONFIGURATION_VALUE;
        /// `iConfiguration`: string index, 0 for none.
        #[doc(alias = "iConfiguration")]
        string_index / set_string_index: u8 = field::configuration::I_CONFIGURATION;
        /// `bmAttributes`: bit 6 self-powered, bit 5 remote wakeup (bit 7 reserved, set).
        #[doc(alias = "bmAttributes")]
        attributes / set_attributes: u8 = field::configuration::BM_ATTRIBUTES;
        /// `bMaxPower`: in 2 mA units (8 mA at SuperSpeed).
        #[doc(alias = "bMaxPower")]
        max_power / set_max_power: u8 = field::configuration::B_MAX_POWER;
    }
}

impl<T: AsRef<[u8]>> ConfigurationDescriptor<T> {
    /// Checks `wTotalLength` against the header and the buffer: it must be at least
    /// `bLength`, and the buffer must hold `wTotalLength` bytes. Requires a successful
    /// [`check_len`](Self::check_len). If both return `Ok(())`, [`body`](Self::body)
    /// does not panic.
    pub fn check_total_length(&self) -> Result<(), ParseErrorKind> {
        let total = usize::from(self.total_length());
        let header = usize::from(self.length());
        let available = self.buffer.as_ref().len();
        if total < header {
            return Err(ParseErrorKind::TotalLengthTooSmall {
                total_length: self.total_length(),
                needed: header,
            });
        }
        if total > available {
            return Err(ParseErrorKind::TotalLengthTooLarge {
                total_length: self.total_length(),
                available,
            });
        }
        Ok(())
    }

    /// The descriptors after the header, up to `wTotalLength`.
    pub fn body(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        &buf[usize::from(self.length())..usize::from(self.total_length())]
    }

    /// `bmAttributes` bit 6: the device is self-powered in this configuration.
    pub fn self_powered(&self) -> bool {
        self.attributes() & 0x40 != 0
    }

    /// `bmAttributes` bit 5: the configuration supports remote wakeup.
    pub fn remote_wakeup(&self) -> bool {
        self.attributes() & 0x20 != 0
    }
}

descriptor_view! {
    /// An interface descriptor (`bDescriptorType` 0x04): one alternate setting of one
    /// interface.
    pub struct InterfaceDescriptor;
    name = "interface", min_len = field::interface::LEN,
    kind = Kind::Type(descriptor_type::INTERFACE);
    fields {
        /// `bInterfaceNumber`.
        #[doc(alias = "bInterfaceNumber")]
        interface_number / set_interface_number: u8 = field::interface::B_INTERFACE_NUMBER;
        /// `bAlternateSetting`.
        #[doc(alias = "bAlternateSetting")]
        alternate_setting / set_alternate_setting: u8 = field::interface::B_ALTERNATE_SETTING;
        /// `bNumEndpoints`: endpoints besides endpoint zero.
        #[doc(alias = "bNumEndpoints")]
        num_endpoints / set_num_endpoints: u8 = field::interface::B_NUM_ENDPOINTS;
        /// `bInterfaceClass`.
        #[doc(alias = "bInterfaceClass")]
        interface_class / set_interface_class: u8 = field::interface::B_INTERFACE_CLASS;
        /// `bInterfaceSubClass`.
        #[doc(alias = "bInterfaceSubClass")]
        interface_subclass / set_interface_subclass: u8 =
            field::interface::B_INTERFACE_SUB_CLASS;
        /// `bInterfaceProtocol`.
        #[doc(alias = "bInterfaceProtocol")]
        interface_protocol / set_interface_protocol: u8 =
            field::interface::B_INTERFACE_PROTOCOL;
        /// `iInterface`: string index, 0 for none.
        #[doc(alias = "iInterface")]
        string_index / set_string_index: u8 = field::interface::I_INTERFACE;
    }
}

/// The transfer type in bits 0..1 of an endpoint's `bmAttributes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferType {
    /// 0: control.
    Control,
    /// 1: isochronous.
    Isochronous,
    /// 2: bulk.
    Bulk,
    /// 3: interrupt.
    Interrupt,
}

impl TransferType {
    /// Decodes bits 0..1 of `bmAttributes`.
    pub fn from_attributes(attributes: u8) -> Self {
        match attributes & 0x03 {
            0 => Self::Control,
            1 => Self::Isochronous,
            2 => Self::Bulk,
            _ => Self::Interrupt,
        }
    }

    /// The name `lsusb` prints ("Bulk", "Interrupt", ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Control => "Control",
            Self::Isochronous => "Isochronous",
            Self::Bulk => "Bulk",
            Self::Interrupt => "Interrupt",
        }
    }
}

descriptor_view! {
    /// An endpoint descriptor (`bDescriptorType` 0x05).
    pub struct EndpointDescriptor;
    name = "endpoint", min_len = field::endpoint::LEN,
    kind = Kind::Type(descriptor_type::ENDPOINT);
    fields {
        /// `bEndpointAddress`: bit 7 direction (1 = IN), bits 0..3 the endpoint number.
        #[doc(alias = "bEndpointAddress")]
        address / set_address: u8 = field::endpoint::B_ENDPOINT_ADDRESS;
        /// `bmAttributes`: transfer type in bits 0..1 (see [`Self::transfer_type`]).
        #[doc(alias = "bmAttributes")]
        attributes / set_attributes: u8 = field::endpoint::BM_ATTRIBUTES;
        /// `wMaxPacketSize` as stored: size in bits 0..10, additional high-bandwidth
        /// transactions per microframe in bits 11..12.
        #[doc(alias = "wMaxPacketSize")]
        max_packet_size_raw / set_max_packet_size_raw: u16 =
            field::endpoint::W_MAX_PACKET_SIZE;
        /// `bInterval`: polling interval, in frames or as an exponent depending on speed
        /// and type.
        #[doc(alias = "bInterval")]
        interval / set_interval: u8 = field::endpoint::B_INTERVAL;
    }
}

impl<T: AsRef<[u8]>> EndpointDescriptor<T> {
    /// The transfer type from `bmAttributes`.
    pub fn transfer_type(&self) -> TransferType {
        TransferType::from_attributes(self.attributes())
    }

    /// True for an IN (device-to-host) endpoint.
    pub fn is_in(&self) -> bool {
        self.address() & 0x80 != 0
    }

    /// The endpoint number (bits 0..3 of the address).
    pub fn number(&self) -> u8 {
        self.address() & 0x0f
    }

    /// The packet size in bytes: bits 0..10 of `wMaxPacketSize`.
    pub fn max_packet_size(&self) -> u16 {
        self.max_packet_size_raw() & 0x07ff
    }

    /// Transactions per microframe (1 to 4) from bits 11..12 of `wMaxPacketSize`; 4 is
    /// reserved by the specification and reported as is.
    pub fn mult(&self) -> u8 {
        // Two bits: at most 3, so + 1 cannot overflow.
        ((self.max_packet_size_raw() >> 11) & 0x03) as u8 + 1
    }
}

descriptor_view! {
    /// A SuperSpeed endpoint companion descriptor (`bDescriptorType` 0x30), which follows
    /// its endpoint descriptor.
    pub struct SsEndpointCompanion;
    name = "SuperSpeed endpoint companion", min_len = field::ss_companion::LEN,
    kind = Kind::Type(descriptor_type::SS_ENDPOINT_COMPANION);
    fields {
        /// `bMaxBurst`: packets per burst minus one (0..15).
        #[doc(alias = "bMaxBurst")]
        max_burst / set_max_burst: u8 = field::ss_companion::B_MAX_BURST;
        /// `bmAttributes`: max streams (bulk) or Mult (isochronous).
        #[doc(alias = "bmAttributes")]
        attributes / set_attributes: u8 = field::ss_companion::BM_ATTRIBUTES;
        /// `wBytesPerInterval`: for periodic endpoints.
        #[doc(alias = "wBytesPerInterval")]
        bytes_per_interval / set_bytes_per_interval: u16 =
            field::ss_companion::W_BYTES_PER_INTERVAL;
    }
}

descriptor_view! {
    /// An interface association descriptor (`bDescriptorType` 0x0B): groups consecutive
    /// interfaces into one function.
    pub struct InterfaceAssociation;
    name = "interface association", min_len = field::iad::LEN,
    kind = Kind::Type(descriptor_type::INTERFACE_ASSOCIATION);
    fields {
        /// `bFirstInterface`.
        #[doc(alias = "bFirstInterface")]
        first_interface / set_first_interface: u8 = field::iad::B_FIRST_INTERFACE;
        /// `bInterfaceCount`.
        #[doc(alias = "bInterfaceCount")]
        interface_count / set_interface_count: u8 = field::iad::B_INTERFACE_COUNT;
        /// `bFunctionClass`.
        #[doc(alias = "bFunctionClass")]
        function_class / set_function_class: u8 = field::iad::B_FUNCTION_CLASS;
        /// `bFunctionSubClass`.
        #[doc(alias = "bFunctionSubClass")]
        function_subclass / set_function_subclass: u8 = field::iad::B_FUNCTION_SUB_CLASS;
        /// `bFunctionProtocol`.
        #[doc(alias = "bFunctionProtocol")]
        function_protocol / set_function_protocol: u8 = field::iad::B_FUNCTION_PROTOCOL;
        /// `iFunction`: string index, 0 for none.
        #[doc(alias = "iFunction")]
        string_index / set_string_index: u8 = field::iad::I_FUNCTION;
    }
}

descriptor_view! {
    /// A string descriptor (`bDescriptorType` 0x03): UTF-16LE text, or for index 0 the list
    /// of supported language IDs.
    pub struct StringDescriptor;
    name = "string", min_len = 2, kind = Kind::Type(descriptor_type::STRING);
    fields {}
}

impl<T: AsRef<[u8]>> StringDescriptor<T> {
    /// The bytes after the header, up to `bLength`.
    pub fn data(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        &buf[field::string::B_STRING..usize::from(self.length())]
    }

    /// The UTF-16 code units. A trailing odd byte (an odd `bLength`, which the
    /// specification does not allow) is ignored, as the Linux kernel does.
    pub fn code_units(&self) -> impl Iterator<Item = u16> + '_ {
        self.data()
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
    }

    /// The text, with each unpaired surrogate replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> String {
        char::decode_utf16(self.code_units())
            .map(|unit| unit.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    }

    /// For string descriptor 0: the supported language IDs (`wLANGID[]`).
    pub fn language_ids(&self) -> Vec<u16> {
        self.code_units().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // QEMU usb-net (hw/usb/dev-network.c) device descriptor.
    #[rustfmt::skip]
    static DEVICE_BYTES: [u8; 18] = [
        0x12,       // bLength 18
        0x01,       // bDescriptorType DEVICE
        0x00, 0x02, // bcdUSB 2.00
        0x02,       // bDeviceClass Communications
        0x00,       // bDeviceSubClass
        0x00,       // bDeviceProtocol
        0x40,       // bMaxPacketSize0 64
        0x25, 0x05, // idVendor 0x0525
        0xa2, 0xa4, // idProduct 0xa4a2
        0x00, 0x00, // bcdDevice 0.00
        0x01,       // iManufacturer
        0x02,       // iProduct
        0x0a,       // iSerialNumber
        0x02,       // bNumConfigurations
    ];

    #[test]
    fn device_deconstruct() {
        let d = DeviceDescriptor::new_checked(&DEVICE_BYTES[..]).unwrap();
        assert_eq!(d.length(), 18);
        assert_eq!(d.usb_version(), 0x0200);
        assert_eq!(d.device_class(), 0x02);
        assert_eq!(d.max_packet_size0(), 64);
        assert_eq!(d.vendor_id(), 0x0525);
        assert_eq!(d.product_id(), 0xa4a2);
        assert_eq!(d.device_version(), 0);
        assert_eq!(d.manufacturer_index(), 1);
        assert_eq!(d.product_index(), 2);
        assert_eq!(d.serial_number_index(), 10);
        assert_eq!(d.num_configurations(), 2);
    }

    #[test]
    fn device_construct() {
        let mut bytes = vec![0xa5; 18];
        let mut d = DeviceDescriptor::new_unchecked(&mut bytes);
        d.set_length(18);
        d.set_descriptor_type(descriptor_type::DEVICE);
        d.set_usb_version(0x0200);
        d.set_device_class(2);
        d.set_device_subclass(0);
        d.set_device_protocol(0);
        d.set_max_packet_size0(64);
        d.set_vendor_id(0x0525);
        d.set_product_id(0xa4a2);
        d.set_device_version(0);
        d.set_manufacturer_index(1);
        d.set_product_index(2);
        d.set_serial_number_index(10);
        d.set_num_configurations(2);
        assert_eq!(&bytes[..], &DEVICE_BYTES[..]);
    }

    #[test]
    fn device_short_b_length() {
        let mut bytes = DEVICE_BYTES;
        bytes[0] = 17;
        assert_eq!(
            DeviceDescriptor::new_checked(&bytes[..]),
            Err(ParseErrorKind::TooShort {
                descriptor: "device",
                b_length: 17,
                minimum: 18
            })
        );
        assert_eq!(
            DeviceDescriptor::new_checked(&DEVICE_BYTES[..10]),
            Err(ParseErrorKind::PastEnd {
                descriptor_type: 1,
                b_length: 18,
                available: 10
            })
        );
        bytes[0] = 1;
        assert_eq!(
            DeviceDescriptor::new_checked(&bytes[..]),
            Err(ParseErrorKind::BadLength { b_length: 1 })
        );
        assert_eq!(
            DeviceDescriptor::new_checked(&DEVICE_BYTES[..1]),
            Err(ParseErrorKind::Truncated {
                needed: 2,
                available: 1
            })
        );
        let mut wrong = DEVICE_BYTES;
        wrong[1] = 2;
        assert_eq!(
            DeviceDescriptor::new_checked(&wrong[..]),
            Err(ParseErrorKind::WrongType {
                expected: 1,
                found: 2
            })
        );
    }

    // A configuration holding one vendor interface with no endpoints.
    #[rustfmt::skip]
    static CONFIG_BYTES: [u8; 18] = [
        0x09,       // bLength
        0x02,       // bDescriptorType CONFIGURATION
        0x12, 0x00, // wTotalLength 18
        0x01,       // bNumInterfaces
        0x01,       // bConfigurationValue
        0x04,       // iConfiguration
        0xc0,       // bmAttributes: self powered
        0x32,       // bMaxPower 100 mA
        // interface 0 alt 0
        0x09, 0x04, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn configuration_deconstruct() {
        let c = ConfigurationDescriptor::new_checked(&CONFIG_BYTES[..]).unwrap();
        c.check_total_length().unwrap();
        assert_eq!(c.total_length(), 18);
        assert_eq!(c.num_interfaces(), 1);
        assert_eq!(c.configuration_value(), 1);
        assert_eq!(c.string_index(), 4);
        assert_eq!(c.attributes(), 0xc0);
        assert!(c.self_powered());
        assert!(!c.remote_wakeup());
        assert_eq!(c.max_power(), 0x32);
        assert_eq!(c.body(), &CONFIG_BYTES[9..]);
    }

    #[test]
    fn configuration_construct() {
        let mut bytes = vec![0xa5; 9];
        let mut c = ConfigurationDescriptor::new_unchecked(&mut bytes);
        c.set_length(9);
        c.set_descriptor_type(2);
        c.set_total_length(18);
        c.set_num_interfaces(1);
        c.set_configuration_value(1);
        c.set_string_index(4);
        c.set_attributes(0xc0);
        c.set_max_power(0x32);
        assert_eq!(&bytes[..], &CONFIG_BYTES[..9]);
    }

    #[test]
    fn configuration_total_length() {
        let mut bytes = CONFIG_BYTES;
        bytes[2] = 19;
        let c = ConfigurationDescriptor::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            c.check_total_length(),
            Err(ParseErrorKind::TotalLengthTooLarge {
                total_length: 19,
                available: 18
            })
        );
        bytes[2] = 8;
        let c = ConfigurationDescriptor::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            c.check_total_length(),
            Err(ParseErrorKind::TotalLengthTooSmall {
                total_length: 8,
                needed: 9
            })
        );
        let mut short = CONFIG_BYTES;
        short[0] = 8;
        assert_eq!(
            ConfigurationDescriptor::new_checked(&short[..]),
            Err(ParseErrorKind::TooShort {
                descriptor: "configuration",
                b_length: 8,
                minimum: 9
            })
        );
    }

    // CDC data interface, alternate setting 1 (f_ncm.c ncm_data_intf).
    #[rustfmt::skip]
    static INTERFACE_BYTES: [u8; 9] = [
        0x09, // bLength
        0x04, // bDescriptorType INTERFACE
        0x01, // bInterfaceNumber
        0x01, // bAlternateSetting
        0x02, // bNumEndpoints
        0x0a, // bInterfaceClass CDC Data
        0x00, // bInterfaceSubClass
        0x01, // bInterfaceProtocol NTB
        0x07, // iInterface
    ];

    #[test]
    fn interface_round_trip() {
        let i = InterfaceDescriptor::new_checked(&INTERFACE_BYTES[..]).unwrap();
        assert_eq!(i.interface_number(), 1);
        assert_eq!(i.alternate_setting(), 1);
        assert_eq!(i.num_endpoints(), 2);
        assert_eq!(i.interface_class(), 0x0a);
        assert_eq!(i.interface_subclass(), 0);
        assert_eq!(i.interface_protocol(), 1);
        assert_eq!(i.string_index(), 7);

        let mut bytes = vec![0xa5; 9];
        let mut v = InterfaceDescriptor::new_unchecked(&mut bytes);
        v.set_length(9);
        v.set_descriptor_type(4);
        v.set_interface_number(1);
        v.set_alternate_setting(1);
        v.set_num_endpoints(2);
        v.set_interface_class(0x0a);
        v.set_interface_subclass(0);
        v.set_interface_protocol(1);
        v.set_string_index(7);
        assert_eq!(&bytes[..], &INTERFACE_BYTES[..]);

        let mut short = INTERFACE_BYTES;
        short[0] = 8;
        assert_eq!(
            InterfaceDescriptor::new_checked(&short[..]),
            Err(ParseErrorKind::TooShort {
                descriptor: "interface",
                b_length: 8,
                minimum: 9
            })
        );
    }

    // A high-bandwidth isochronous IN endpoint: 3 x 1024 bytes.
    #[rustfmt::skip]
    static ENDPOINT_BYTES: [u8; 7] = [
        0x07,       // bLength
        0x05,       // bDescriptorType ENDPOINT
        0x83,       // bEndpointAddress EP 3 IN
        0x05,       // bmAttributes isochronous, asynchronous
        0x00, 0x14, // wMaxPacketSize 0x1400: 1024 bytes, 2 additional transactions
        0x01,       // bInterval
    ];

    #[test]
    fn endpoint_round_trip() {
        let e = EndpointDescriptor::new_checked(&ENDPOINT_BYTES[..]).unwrap();
        assert_eq!(e.address(), 0x83);
        assert!(e.is_in());
        assert_eq!(e.number(), 3);
        assert_eq!(e.transfer_type(), TransferType::Isochronous);
        assert_eq!(e.max_packet_size_raw(), 0x1400);
        assert_eq!(e.max_packet_size(), 1024);
        assert_eq!(e.mult(), 3);
        assert_eq!(e.interval(), 1);

        let mut bytes = vec![0xa5; 7];
        let mut v = EndpointDescriptor::new_unchecked(&mut bytes);
        v.set_length(7);
        v.set_descriptor_type(5);
        v.set_address(0x83);
        v.set_attributes(0x05);
        v.set_max_packet_size_raw(0x1400);
        v.set_interval(1);
        assert_eq!(&bytes[..], &ENDPOINT_BYTES[..]);

        let mut short = ENDPOINT_BYTES;
        short[0] = 6;
        assert_eq!(
            EndpointDescriptor::new_checked(&short[..]),
            Err(ParseErrorKind::TooShort {
                descriptor: "endpoint",
                b_length: 6,
                minimum: 7
            })
        );
    }

    // f_ncm.c ss_ncm_bulk_comp_desc: bMaxBurst 15.
    #[rustfmt::skip]
    static COMPANION_BYTES: [u8; 6] = [
        0x06,       // bLength
        0x30,       // bDescriptorType SS_ENDPOINT_COMPANION
        0x0f,       // bMaxBurst 15
        0x00,       // bmAttributes
        0x00, 0x00, // wBytesPerInterval
    ];

    #[test]
    fn ss_companion_round_trip() {
        let c = SsEndpointCompanion::new_checked(&COMPANION_BYTES[..]).unwrap();
        assert_eq!(c.max_burst(), 15);
        assert_eq!(c.attributes(), 0);
        assert_eq!(c.bytes_per_interval(), 0);

        let mut bytes = vec![0xa5; 6];
        let mut v = SsEndpointCompanion::new_unchecked(&mut bytes);
        v.set_length(6);
        v.set_descriptor_type(0x30);
        v.set_max_burst(15);
        v.set_attributes(0);
        v.set_bytes_per_interval(0);
        assert_eq!(&bytes[..], &COMPANION_BYTES[..]);

        let mut short = COMPANION_BYTES;
        short[0] = 5;
        assert!(matches!(
            SsEndpointCompanion::new_checked(&short[..]),
            Err(ParseErrorKind::TooShort { minimum: 6, .. })
        ));
    }

    // f_ncm.c ncm_iad_desc with bFirstInterface 0, iFunction 8.
    #[rustfmt::skip]
    static IAD_BYTES: [u8; 8] = [
        0x08, // bLength
        0x0b, // bDescriptorType INTERFACE_ASSOCIATION
        0x00, // bFirstInterface
        0x02, // bInterfaceCount
        0x02, // bFunctionClass Communications
        0x0d, // bFunctionSubClass NCM
        0x00, // bFunctionProtocol
        0x08, // iFunction
    ];

    #[test]
    fn iad_round_trip() {
        let a = InterfaceAssociation::new_checked(&IAD_BYTES[..]).unwrap();
        assert_eq!(a.first_interface(), 0);
        assert_eq!(a.interface_count(), 2);
        assert_eq!(a.function_class(), 2);
        assert_eq!(a.function_subclass(), 0x0d);
        assert_eq!(a.function_protocol(), 0);
        assert_eq!(a.string_index(), 8);

        let mut bytes = vec![0xa5; 8];
        let mut v = InterfaceAssociation::new_unchecked(&mut bytes);
        v.set_length(8);
        v.set_descriptor_type(0x0b);
        v.set_first_interface(0);
        v.set_interface_count(2);
        v.set_function_class(2);
        v.set_function_subclass(0x0d);
        v.set_function_protocol(0);
        v.set_string_index(8);
        assert_eq!(&bytes[..], &IAD_BYTES[..]);

        let mut short = IAD_BYTES;
        short[0] = 7;
        assert!(matches!(
            InterfaceAssociation::new_checked(&short[..]),
            Err(ParseErrorKind::TooShort { minimum: 8, .. })
        ));
    }

    #[rustfmt::skip]
    static STRING_BYTES: [u8; 10] = [
        0x0a,       // bLength 10
        0x03,       // bDescriptorType STRING
        b'Q', 0x00, // "QEMU"
        b'E', 0x00,
        b'M', 0x00,
        b'U', 0x00,
    ];

    #[test]
    fn string_round_trip() {
        let s = StringDescriptor::new_checked(&STRING_BYTES[..]).unwrap();
        assert_eq!(s.to_string_lossy(), "QEMU");
        assert_eq!(s.data(), &STRING_BYTES[2..]);

        let langs = StringDescriptor::new_checked(&[0x04u8, 0x03, 0x09, 0x04][..]).unwrap();
        assert_eq!(langs.language_ids(), vec![0x0409]);

        // An unpaired high surrogate, then 'A', then an odd trailing byte.
        let bad = [0x07u8, 0x03, 0x00, 0xd8, 0x41, 0x00, 0x42];
        let s = StringDescriptor::new_checked(&bad[..]).unwrap();
        assert_eq!(s.to_string_lossy(), "\u{fffd}A");

        // bLength past the end of the buffer.
        let mut long = STRING_BYTES;
        long[0] = 12;
        assert_eq!(
            StringDescriptor::new_checked(&long[..]),
            Err(ParseErrorKind::PastEnd {
                descriptor_type: 3,
                b_length: 12,
                available: 10
            })
        );
    }

    #[test]
    fn header_any_type() {
        let h = DescriptorHeader::new_checked(&[0x02u8, 0x99][..]).unwrap();
        assert_eq!(h.descriptor_type(), 0x99);
        assert_eq!(h.as_bytes(), &[0x02, 0x99]);
        assert_eq!(
            DescriptorHeader::new_checked(&[0x00u8, 0x99][..]),
            Err(ParseErrorKind::BadLength { b_length: 0 })
        );
        assert_eq!(
            DescriptorHeader::new_checked(&[][..]),
            Err(ParseErrorKind::Truncated {
                needed: 2,
                available: 0
            })
        );
    }
}
