//! The `usbnetd` command line.
fn main() {}
