//! usbnetd: a Linux userspace host driver for USB network functions.
//!
//! The crate is laid out the way a frame travels:
//!
//! * [`descriptor`]: checked, zero-copy views over the descriptor bytes a device returns, and the
//!   parsed tree (device, configurations, interfaces, endpoints, CDC functional descriptors).
//! * [`probe`]: from a parsed tree, every USB network function and what it takes to drive it.
//! * [`wire`]: byte formats of the datapath and control plane (NTB-16/32, CDC notifications, ...).
//! * [`class`]: one file per class (NCM, ECM, ...) implementing [`class::ClassDriver`]: bind,
//!   framing and status; the generic datapath never knows which class it carries.
//! * [`usb`]: the USB edge: finding devices (nusb's enumeration), opening and claiming them
//!   and submitting and reaping URBs through our own usbfs edge ([`usb::usbfs`]), and the
//!   [`usb::Pipe`] / [`usb::Control`] seams the ring and the classes drive (a real device or
//!   [`fake`]).
//! * [`ring`]: the pipelined URB-style transfer ring with back-pressure.
//! * [`tap`]: the TAP edge.
//!
//! All `unsafe` lives in [`sys`] (TAP and scheduler ioctls), [`usb::usbfs`] (usbfs ioctls
//! and the URB hand-off) and [`usb::buffer`] (the usbfs memory mapping); pure logic has
//! none.
#![warn(rust_2018_idioms)]

pub mod class;
pub mod descriptor;
pub mod dump;
pub mod fake;
pub mod gro;
pub mod gso;
pub mod pcap;
pub mod probe;
pub mod ring;
pub mod run;
pub mod sdnotify;
pub mod stats;
pub mod sys;
pub mod tap;
pub mod usb;
pub mod wire;
