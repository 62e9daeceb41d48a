//! An in-memory fake device behind the same [`Pipe`] seam the ring drives, for fast tests
//! and fault injection: deliver IN data, stall, unplug, and complete OUT transfers slowly to
//! force back-pressure. The real proof is the lab; this is for what the lab cannot force.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use nusb::transfer::TransferError;

use crate::usb::{Buffer, Completion};

use crate::usb::Pipe;

#[derive(Debug, Default)]
struct State {
    /// Submitted, not yet completed, in order.
    submitted: VecDeque<Buffer>,
    /// Completed, not yet taken by the ring.
    done: VecDeque<Completion>,
    waker: Option<Waker>,
    /// OUT: complete every submission at once.
    auto_complete: bool,
    /// OUT: payloads of every completed transfer, in order.
    sent: Vec<Vec<u8>>,
    /// Data pointers of every buffer ever submitted (to prove recycling).
    buffers_seen: Vec<usize>,
    halted: bool,
    /// A stall fails only the transfer it hit; the others, and any submitted while halted,
    /// wait on the endpoint until cancelled or the halt is cleared (xHCI's behaviour, where
    /// dummy_hcd fails them all).
    queue_on_halt: bool,
    halts_cleared: u32,
    unplugged: bool,
    submissions: u64,
}

impl State {
    /// OUT: the device took `buf` whole.
    fn complete_sent(&mut self, buf: Buffer) {
        self.sent.push(buf.to_vec());
        let n = buf.len();
        self.done.push_back(Completion {
            buffer: buf,
            actual_len: n,
            status: Ok(()),
        });
    }

    /// `buf` comes back failed with `e`.
    fn complete_failed(&mut self, buf: Buffer, e: TransferError) {
        self.done.push_back(Completion {
            buffer: buf,
            actual_len: 0,
            status: Err(e),
        });
    }

    /// IN: complete the oldest pending transfer with `data` (truncated to its request);
    /// false when none is pending.
    fn complete_oldest(&mut self, data: &[u8]) -> bool {
        let Some(mut b) = self.submitted.pop_front() else {
            return false;
        };
        let n = data.len().min(b.requested_len());
        b.clear();
        b.extend_from_slice(&data[..n]);
        self.done.push_back(Completion {
            buffer: b,
            actual_len: n,
            status: Ok(()),
        });
        true
    }
}

/// One fake endpoint; clone the [`FakeHandle`] to drive it from the test.
#[derive(Debug)]
pub struct FakePipe {
    address: u8,
    max_packet: usize,
    state: Arc<Mutex<State>>,
}

/// The device side of a [`FakePipe`].
#[derive(Debug, Clone)]
pub struct FakeHandle {
    state: Arc<Mutex<State>>,
}

/// A fake endpoint and the handle that drives it.
pub fn pipe(address: u8, max_packet: usize) -> (FakePipe, FakeHandle) {
    let state = Arc::new(Mutex::new(State::default()));
    (
        FakePipe {
            address,
            max_packet,
            state: state.clone(),
        },
        FakeHandle { state },
    )
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeHandle {
    fn finish(&self, mut st: MutexGuard<'_, State>) {
        if let Some(w) = st.waker.take() {
            drop(st);
            w.wake();
        }
    }

    /// OUT: complete transfers as soon as they are submitted.
    pub fn set_auto_complete(&self, on: bool) {
        let mut st = lock(&self.state);
        st.auto_complete = on;
        if on {
            while let Some(b) = st.submitted.pop_front() {
                st.complete_sent(b);
            }
        }
        self.finish(st);
    }

    /// OUT: complete up to `n` pending transfers successfully; returns how many.
    pub fn complete_out(&self, n: usize) -> usize {
        let mut st = lock(&self.state);
        let mut k = 0;
        while k < n {
            let Some(b) = st.submitted.pop_front() else {
                break;
            };
            st.complete_sent(b);
            k += 1;
        }
        self.finish(st);
        k
    }

    /// IN: complete the oldest pending transfer with `data` (truncated to its request).
    /// Returns false when no transfer is pending.
    pub fn deliver(&self, data: &[u8]) -> bool {
        let mut st = lock(&self.state);
        if !st.complete_oldest(data) {
            return false;
        }
        self.finish(st);
        true
    }

    /// IN: complete the `n` oldest pending transfers with `data` and stall the next one,
    /// all at once (the ring sees them in one batch). Returns false when fewer than `n + 1`
    /// transfers are pending.
    pub fn deliver_then_stall(&self, data: &[u8], n: usize) -> bool {
        let mut st = lock(&self.state);
        if st.submitted.len() <= n {
            return false;
        }
        for _ in 0..n {
            st.complete_oldest(data);
        }
        drop(st);
        self.fail(TransferError::Stall)
    }

    /// Halt as xHCI does (see `State::queue_on_halt`) instead of as dummy_hcd does.
    pub fn set_queue_on_halt(&self, on: bool) {
        lock(&self.state).queue_on_halt = on;
    }

    /// Fail the oldest pending transfer with `e`. A stall also halts the endpoint until the
    /// ring clears it, and every other transfer in flight fails with it, as dummy_hcd
    /// returns each URB queued on a halted endpoint with -EPIPE (unless
    /// [`FakeHandle::set_queue_on_halt`]: then they wait).
    pub fn fail(&self, e: TransferError) -> bool {
        let mut st = lock(&self.state);
        let Some(b) = st.submitted.pop_front() else {
            return false;
        };
        st.complete_failed(b, e);
        if e == TransferError::Stall && st.queue_on_halt {
            st.halted = true;
        } else if e == TransferError::Stall {
            st.halted = true;
            while let Some(b) = st.submitted.pop_front() {
                st.complete_failed(b, e);
            }
        }
        self.finish(st);
        true
    }

    /// Unplug: every pending transfer fails with `Disconnected`, and so will new ones.
    pub fn unplug(&self) {
        let mut st = lock(&self.state);
        st.unplugged = true;
        while let Some(b) = st.submitted.pop_front() {
            st.complete_failed(b, TransferError::Disconnected);
        }
        self.finish(st);
    }

    /// Transfers submitted and not completed by the device.
    pub fn in_flight(&self) -> usize {
        lock(&self.state).submitted.len()
    }

    /// Payloads of the completed OUT transfers so far (drained).
    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut lock(&self.state).sent)
    }

    /// Distinct buffers (by data pointer) ever submitted.
    pub fn distinct_buffers(&self) -> usize {
        let st = lock(&self.state);
        let mut v = st.buffers_seen.clone();
        v.sort_unstable();
        v.dedup();
        v.len()
    }

    /// Submissions so far.
    pub fn submissions(&self) -> u64 {
        lock(&self.state).submissions
    }

    /// Halts cleared by the ring.
    pub fn halts_cleared(&self) -> u32 {
        lock(&self.state).halts_cleared
    }

    /// Whether the endpoint is halted now.
    pub fn is_halted(&self) -> bool {
        lock(&self.state).halted
    }
}

impl Pipe for FakePipe {
    fn address(&self) -> u8 {
        self.address
    }
    fn max_packet_size(&self) -> usize {
        self.max_packet
    }
    fn allocate(&self, len: usize) -> Buffer {
        Buffer::new(len)
    }
    fn submit(&mut self, buf: Buffer) {
        let mut st = lock(&self.state);
        st.submissions += 1;
        if buf.capacity() > 0 {
            let p = buf.as_ptr() as usize;
            st.buffers_seen.push(p);
        }
        if st.unplugged {
            st.complete_failed(buf, TransferError::Disconnected);
        } else if st.halted && st.queue_on_halt {
            st.submitted.push_back(buf);
        } else if st.halted {
            st.complete_failed(buf, TransferError::Stall);
        } else if st.auto_complete && self.address & 0x80 == 0 {
            st.complete_sent(buf);
        } else {
            st.submitted.push_back(buf);
        }
        if !st.done.is_empty() {
            if let Some(w) = st.waker.take() {
                drop(st);
                w.wake();
            }
        }
    }
    fn poll_complete(&mut self, cx: &mut Context<'_>) -> Poll<Completion> {
        let mut st = lock(&self.state);
        match st.done.pop_front() {
            Some(c) => Poll::Ready(c),
            None => {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
    fn pending(&self) -> usize {
        let st = lock(&self.state);
        st.submitted.len() + st.done.len()
    }
    fn cancel_all(&mut self) {
        let mut st = lock(&self.state);
        while let Some(b) = st.submitted.pop_front() {
            st.complete_failed(b, TransferError::Cancelled);
        }
        if let Some(w) = st.waker.take() {
            drop(st);
            w.wake();
        }
    }
    fn clear_halt(&mut self) -> Result<(), TransferError> {
        let mut st = lock(&self.state);
        st.halted = false;
        st.halts_cleared += 1;
        Ok(())
    }
    fn has_completion(&self) -> bool {
        !lock(&self.state).done.is_empty()
    }
}

/// One logged control request: (bRequest, wValue, wIndex, OUT data).
pub type ControlRecord = (u8, u16, u8, Vec<u8>);

/// A fake control pipe: canned replies per class request, strings, and a log of requests.
#[derive(Debug, Default)]
pub struct FakeControl {
    /// Reply data for class IN requests, by bRequest.
    pub replies: std::collections::HashMap<u8, Vec<u8>>,
    /// Requests that fail with a stall, by bRequest.
    pub stalls: Vec<u8>,
    /// String descriptors by index.
    pub strings: std::collections::HashMap<u8, String>,
    /// Every request seen: (bRequest, wValue, wIndex, OUT data).
    pub log: Mutex<Vec<ControlRecord>>,
}

impl crate::usb::Control for FakeControl {
    fn class_in(
        &self,
        request: u8,
        value: u16,
        interface: u8,
        length: u16,
    ) -> Result<Vec<u8>, TransferError> {
        lock_log(&self.log).push((request, value, interface, Vec::new()));
        if self.stalls.contains(&request) {
            return Err(TransferError::Stall);
        }
        let mut r = self
            .replies
            .get(&request)
            .cloned()
            .ok_or(TransferError::Stall)?;
        r.truncate(length.into());
        Ok(r)
    }
    fn class_out(
        &self,
        request: u8,
        value: u16,
        interface: u8,
        data: &[u8],
    ) -> Result<(), TransferError> {
        lock_log(&self.log).push((request, value, interface, data.to_vec()));
        if self.stalls.contains(&request) {
            return Err(TransferError::Stall);
        }
        Ok(())
    }
    fn string(&self, index: u8) -> Option<String> {
        self.strings.get(&index).cloned()
    }
}

fn lock_log<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
