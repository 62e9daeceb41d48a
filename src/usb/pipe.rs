//! [`Pipe`]: one endpoint's queue of in-flight transfers, the seam the transfer ring drives.
//!
//! It is nusb's `Endpoint` queue model (submit buffers, take completions in order) reduced to
//! what the ring needs, so that the in-memory fake device ([`crate::fake`]) can stand in for
//! a real endpoint ([`crate::usb::usbfs::UsbfsPipe`]).

use std::task::{Context, Poll};

use std::os::fd::OwnedFd;
use std::sync::Arc;

use nusb::transfer::TransferError;

use crate::usb::{Buffer, Completion};

/// One endpoint's transfer queue.
pub trait Pipe: Send {
    /// The endpoint address (bit 7 set for IN).
    fn address(&self) -> u8;
    /// wMaxPacketSize of the endpoint.
    fn max_packet_size(&self) -> usize;
    /// A buffer suited to this endpoint (zero-copy where the platform allows).
    fn allocate(&self, len: usize) -> Buffer;
    /// Queue a transfer. IN: `requested_len` bytes are asked for; OUT: the buffer's bytes are sent.
    fn submit(&mut self, buf: Buffer);
    /// The next completion in submission order, or `Pending` (with the waker registered,
    /// unless [`Pipe::wait_fd`] gives an fd to poll instead: then only completions that
    /// [`Pipe::reap`] has moved to user space are returned, and the caller reaps when the
    /// fd is ready). An IN completion's data is `buffer[..actual_len]`; the buffer may be
    /// longer.
    fn poll_complete(&mut self, cx: &mut Context<'_>) -> Poll<Completion>;
    /// Transfers submitted and not yet returned by `poll_complete`.
    fn pending(&self) -> usize;
    /// Ask for every pending transfer to complete (as `Cancelled`) soon.
    fn cancel_all(&mut self);
    /// Clear a halt (stall) condition; no transfer may be pending.
    fn clear_halt(&mut self) -> Result<(), TransferError>;
    /// An fd that `poll(2)` reports ready (`POLLOUT`) while a completion waits, for
    /// endpoints that are reaped by the caller's thread instead of waking a waker.
    fn wait_fd(&self) -> Option<Arc<OwnedFd>> {
        None
    }
    /// With a [`Pipe::wait_fd`]: move every completion the OS has ready (for any pipe
    /// sharing the fd) onto its pipe's queue, so the fd stops reporting ready.
    fn reap(&mut self) {}
    /// A completion of this pipe waits in user space, to be taken without asking the OS
    /// (with a [`Pipe::wait_fd`]: it was reaped while another pipe sharing the fd polled,
    /// and the fd no longer reports it). The caller must take it before sleeping.
    fn has_completion(&self) -> bool {
        false
    }
}
