//! The operating-system edge for the TAP and the scheduler: one safe function per ioctl;
//! callers never write `unsafe`. (The usbfs edge is [`crate::usb::usbfs`] and
//! [`crate::usb::buffer`].)

pub mod sched;
pub mod tap;
