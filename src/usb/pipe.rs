//! [`Pipe`]: one endpoint's queue of in-flight transfers, the seam the transfer ring drives.
//!
//! It is nusb's `Endpoint` queue model (submit buffers, take completions in order) reduced to
//! what the ring needs, so that the in-memory fake device can stand in for a real endpoint.

use std::task::{Context, Poll};

use nusb::transfer::{Buffer, BulkOrInterrupt, Completion, EndpointDirection};

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
    /// The next completion in submission order, or `Pending` with the waker registered.
    fn poll_complete(&mut self, cx: &mut Context<'_>) -> Poll<Completion>;
    /// Transfers submitted and not yet returned by `poll_complete`.
    fn pending(&self) -> usize;
    /// Ask for every pending transfer to complete (as `Cancelled`) soon.
    fn cancel_all(&mut self);
    /// Clear a halt (stall) condition; no transfer may be pending.
    fn clear_halt(&mut self) -> Result<(), nusb::Error>;
}

impl<T: BulkOrInterrupt, D: EndpointDirection> Pipe for nusb::Endpoint<T, D> {
    fn address(&self) -> u8 {
        self.endpoint_address()
    }
    fn max_packet_size(&self) -> usize {
        nusb::Endpoint::max_packet_size(self)
    }
    fn allocate(&self, len: usize) -> Buffer {
        nusb::Endpoint::allocate(self, len)
    }
    fn submit(&mut self, buf: Buffer) {
        nusb::Endpoint::submit(self, buf)
    }
    fn poll_complete(&mut self, cx: &mut Context<'_>) -> Poll<Completion> {
        self.poll_next_complete(cx)
    }
    fn pending(&self) -> usize {
        nusb::Endpoint::pending(self)
    }
    fn cancel_all(&mut self) {
        nusb::Endpoint::cancel_all(self)
    }
    fn clear_halt(&mut self) -> Result<(), nusb::Error> {
        use nusb::MaybeFuture;
        nusb::Endpoint::clear_halt(self).wait()
    }
}
