//! The operating-system edge: every `unsafe` block of usbnetd is in this module (the usbfs
//! side is nusb's). One safe function per ioctl; callers never write `unsafe`.

pub mod sched;
pub mod tap;
