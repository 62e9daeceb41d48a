//! Transfer buffers: heap memory, or zero-copy memory mapped from usbfs.
//!
//! A usbfs URB whose buffer lies in memory mapped from the device node
//! (`mmap` on the usbfs fd, Linux ≥ 4.6) is handed to the host controller as it is: no
//! kernel allocation and no copy at submission, no copy at reaping. Otherwise usbfs
//! `kmalloc`s a bounce buffer per URB and copies through it both ways, which the lab's
//! instruction profile puts among the kernel's costs under every frame of the
//! one-frame-per-transfer classes.
//!
//! [`Buffer`] follows nusb's `Buffer` (filled length, requested length for IN, capacity),
//! so the ring, the classes and the fake device use either kind alike. A [`Region`] is
//! one mapping carved into equal slots; a mapped buffer gives its slot back when dropped,
//! and the mapping goes away with the last slot.
//!
//! The `unsafe` here is the mapping's edge: `mmap`/`munmap` of the usbfs node and the
//! slices over a slot, which exactly one [`Buffer`] owns at a time.

use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use nusb::transfer::TransferError;

/// A transfer's memory: the filled part (`len`), what an IN transfer asks for
/// (`requested_len`) and what it can hold (`capacity`), and a tag the submitter may set
/// (as an URB's `context`), which comes back with the completion.
pub struct Buffer {
    mem: Mem,
    requested: usize,
    tag: u32,
}

enum Mem {
    Heap(Vec<u8>),
    Mapped(Slot),
}

/// One slot of a [`Region`], owned by exactly one buffer.
struct Slot {
    region: Arc<Region>,
    offset: usize,
    len: usize,
}

impl Buffer {
    /// An empty heap buffer with room for (and asking for) `requested_len` bytes.
    pub fn new(requested_len: usize) -> Buffer {
        Buffer {
            mem: Mem::Heap(Vec::with_capacity(requested_len)),
            requested: requested_len,
            tag: 0,
        }
    }

    /// The submitter's tag (0 unless set).
    pub fn tag(&self) -> u32 {
        self.tag
    }

    /// Set the submitter's tag.
    pub fn set_tag(&mut self, tag: u32) {
        self.tag = tag;
    }

    /// Bytes filled.
    pub fn len(&self) -> usize {
        match &self.mem {
            Mem::Heap(v) => v.len(),
            Mem::Mapped(s) => s.len,
        }
    }

    /// Whether nothing is filled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the buffer holds without reallocating (a mapped slot never grows).
    pub fn capacity(&self) -> usize {
        match &self.mem {
            Mem::Heap(v) => v.capacity(),
            Mem::Mapped(s) => s.region.slot,
        }
    }

    /// Bytes an IN transfer asks for.
    pub fn requested_len(&self) -> usize {
        self.requested
    }

    /// Ask for `len` bytes (IN), at most the capacity.
    pub fn set_requested_len(&mut self, len: usize) {
        self.requested = len.min(self.capacity());
    }

    /// Forget the content; keep the memory.
    pub fn clear(&mut self) {
        match &mut self.mem {
            Mem::Heap(v) => v.clear(),
            Mem::Mapped(s) => s.len = 0,
        }
    }

    /// Append `data`. A buffer grows if it must (a mapped one moves to the heap first:
    /// nothing is ever cut).
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let at = self.len();
        if let Mem::Mapped(s) = &mut self.mem {
            if data.len() <= s.region.slot - at {
                s.len = at + data.len();
                self[at..].copy_from_slice(data);
                return;
            }
            self.spill_to_heap(at + data.len());
        }
        if let Mem::Heap(v) = &mut self.mem {
            v.extend_from_slice(data);
        }
    }

    /// Append `n` bytes that `fill` writes (all of them). A mapped slot's bytes are not
    /// cleared first: `fill` sees what an earlier transfer left there, and must overwrite
    /// it. Like [`Buffer::extend_from_slice`], a buffer too small grows.
    pub fn extend_with(&mut self, n: usize, fill: &mut dyn FnMut(&mut [u8])) {
        let at = self.len();
        match &mut self.mem {
            Mem::Mapped(s) if n <= s.region.slot - at => s.len = at + n,
            _ => self.resize(at + n, 0),
        }
        fill(&mut self[at..at + n]);
    }

    /// Grow or shrink to `len` bytes, new bytes set to `value` (as `Vec::resize`).
    pub fn resize(&mut self, len: usize, value: u8) {
        let at = self.len();
        if let Mem::Mapped(s) = &mut self.mem {
            if len <= s.region.slot {
                s.len = len;
                if len > at {
                    self[at..].fill(value);
                }
                return;
            }
            self.spill_to_heap(len);
        }
        if let Mem::Heap(v) = &mut self.mem {
            v.resize(len, value);
        }
    }

    /// Append one byte.
    pub fn push(&mut self, byte: u8) {
        self.extend_from_slice(&[byte]);
    }

    /// Move a mapped buffer's content to the heap, with room for `want` bytes (its slot
    /// goes back to the region). Only a class that writes past the capacity it was given
    /// gets here.
    fn spill_to_heap(&mut self, want: usize) {
        let mut v = Vec::with_capacity(want.max(self.capacity()));
        v.extend_from_slice(self);
        self.mem = Mem::Heap(v);
    }

    /// Whether the memory is mapped from usbfs (submitted without a copy).
    pub fn is_zero_copy(&self) -> bool {
        matches!(self.mem, Mem::Mapped(_))
    }

    /// Fill to `len` bytes (at most the capacity) for a transfer to write into. Bytes that
    /// become visible are initialised but not cleared: a heap buffer's are zeroed, a mapped
    /// slot's keep what they held (zeros, or an earlier transfer's data).
    pub fn set_len(&mut self, len: usize) {
        let len = len.min(self.capacity());
        match &mut self.mem {
            Mem::Heap(v) => v.resize(len, 0),
            Mem::Mapped(s) => s.len = len,
        }
    }
}

impl Slot {
    fn ptr(&self) -> *mut u8 {
        // SAFETY: `offset + slot <= size` for every slot handed out (Region::take), so the
        // result stays inside the one mapping.
        unsafe { self.region.base.as_ptr().add(self.offset) }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.region
            .free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(self.offset);
    }
}

impl Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.mem {
            Mem::Heap(v) => v,
            // SAFETY: the slot is `region.slot` bytes inside a live mapping (the Arc keeps
            // it), initialised (mmap zero-fills it; the kernel only writes into it), and
            // owned by this buffer alone: no other slice aliases it, and the kernel writes
            // it only while the URB is in flight, when the buffer is out of safe reach.
            Mem::Mapped(s) => unsafe { std::slice::from_raw_parts(s.ptr(), s.len) },
        }
    }
}

impl DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.mem {
            Mem::Heap(v) => v,
            // SAFETY: as for `deref`; `&mut self` makes this the only reference.
            Mem::Mapped(s) => unsafe { std::slice::from_raw_parts_mut(s.ptr(), s.len) },
        }
    }
}

impl From<Vec<u8>> for Buffer {
    fn from(v: Vec<u8>) -> Buffer {
        Buffer {
            requested: v.len(),
            mem: Mem::Heap(v),
            tag: 0,
        }
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("len", &self.len())
            .field("requested", &self.requested)
            .field("capacity", &self.capacity())
            .field("zero_copy", &self.is_zero_copy())
            .finish()
    }
}

/// A finished transfer: its buffer (IN data in `buffer[..actual_len]`), the byte count
/// and the outcome.
#[derive(Debug)]
pub struct Completion {
    /// The buffer, back from the device (resubmit it to recycle it).
    pub buffer: Buffer,
    /// Bytes transferred.
    pub actual_len: usize,
    /// `Ok` or why the transfer failed.
    pub status: Result<(), TransferError>,
}

/// One mapping of usbfs memory, cut into `count` slots of `slot` bytes.
pub struct Region {
    base: NonNull<u8>,
    size: usize,
    slot: usize,
    free: Mutex<Vec<usize>>,
}

// SAFETY: the mapping is plain memory; each slot is reached only through the one Buffer
// that owns it, and the free list is behind a mutex.
unsafe impl Send for Region {}
// SAFETY: as above; shared references to a Region only touch `free` (locked) and
// immutable fields.
unsafe impl Sync for Region {}

impl Region {
    /// Map `count` slots of `slot` bytes from the usbfs node `fd` (`slot` a multiple of 64
    /// so that every slot is cache-line aligned). Fails where usbfs cannot (old kernels,
    /// `usbfs_memory_mb` exhausted, no contiguous memory for the controller).
    ///
    /// # Safety
    ///
    /// `fd` must be a usbfs device node: each `mmap` of one is fresh memory that no other
    /// mapping shares. Mapped twice, another file would hand two buffers the same bytes.
    pub unsafe fn map(fd: BorrowedFd<'_>, slot: usize, count: usize) -> io::Result<Arc<Region>> {
        // SAFETY: the caller guarantees the mapping is fresh memory (see above).
        unsafe { Region::mmap(Some(fd), slot, count) }
    }

    /// The same geometry over fresh anonymous shared memory: the slots behave as mapped
    /// ones (for tests; usbfs is not involved).
    pub fn anonymous(slot: usize, count: usize) -> io::Result<Arc<Region>> {
        // SAFETY: an anonymous mapping is fresh memory no other mapping shares.
        unsafe { Region::mmap(None, slot, count) }
    }

    /// # Safety
    ///
    /// A mapping of `fd` (or anonymous memory) must be fresh memory no other mapping shares.
    unsafe fn mmap(
        fd: Option<BorrowedFd<'_>>,
        slot: usize,
        count: usize,
    ) -> io::Result<Arc<Region>> {
        let page = 4096;
        let size = slot
            .checked_mul(count)
            .filter(|&n| n > 0 && slot % 64 == 0)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?
            .div_ceil(page)
            * page;
        let (flags, raw) = match fd {
            Some(fd) => (libc::MAP_SHARED, fd.as_raw_fd()),
            None => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a new mapping at an address the kernel picks (no existing memory is
        // affected); the result is checked before use. That the memory is this region's
        // alone is the caller's guarantee.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave 0"))?;
        let free = (0..size / slot).rev().map(|i| i * slot).collect();
        Ok(Arc::new(Region {
            base,
            size,
            slot,
            free: Mutex::new(free),
        }))
    }

    /// A free slot as an empty buffer asking for its whole capacity, if one is left.
    pub fn take(self: &Arc<Region>) -> Option<Buffer> {
        let offset = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
        Some(Buffer {
            mem: Mem::Mapped(Slot {
                region: self.clone(),
                offset,
                len: 0,
            }),
            requested: self.slot,
            tag: 0,
        })
    }

    /// Bytes per slot.
    pub fn slot_len(&self) -> usize {
        self.slot
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `base`/`size` are exactly what mmap returned; the last Arc is going, so
        // no slot (and no slice over one) is left. A URB still in flight in the kernel
        // keeps usbfs's memory alive on its own until it completes.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_buffer_follows_nusb_semantics() {
        let mut b = Buffer::new(16);
        assert_eq!((b.len(), b.requested_len()), (0, 16));
        assert!(b.capacity() >= 16);
        b.extend_from_slice(&[1, 2, 3]);
        assert_eq!(&b[..], &[1, 2, 3]);
        b.set_requested_len(1 << 20);
        assert_eq!(b.requested_len(), b.capacity());
        b.set_len(5);
        assert_eq!(&b[..], &[1, 2, 3, 0, 0]);
        assert!(!b.is_zero_copy());
        let b = Buffer::from(vec![9; 4]);
        assert_eq!((b.len(), b.requested_len()), (4, 4));
    }

    #[test]
    fn extend_with_builds_in_place_and_grows_when_it_must() {
        let r = Region::anonymous(1024, 2).unwrap();
        let mut b = r.take().unwrap();
        b.extend_from_slice(&[3; 100]);
        b.clear();
        // A recycled slot: `fill` sees the old bytes and overwrites what it was given.
        let mut seen = Vec::new();
        b.extend_with(4, &mut |d| {
            seen.extend_from_slice(d);
            d.copy_from_slice(&[1, 2, 3, 4]);
        });
        assert_eq!(seen, [3; 4], "a mapped slot is not cleared first");
        b.extend_with(2, &mut |d| d.fill(9));
        assert_eq!(&b[..], &[1, 2, 3, 4, 9, 9]);
        assert!(b.is_zero_copy());
        // Past the slot it moves to the heap, content whole.
        b.extend_with(1100, &mut |d| d.fill(5));
        assert!(!b.is_zero_copy());
        assert_eq!(b.len(), 1106);
        assert_eq!(&b[..6], &[1, 2, 3, 4, 9, 9]);
        assert!(b[6..].iter().all(|&x| x == 5));
        // A heap buffer hands `fill` zeros.
        let mut h = Buffer::new(8);
        h.extend_with(3, &mut |d| {
            assert_eq!(d, &[0, 0, 0]);
            d[1] = 7;
        });
        assert_eq!(&h[..], &[0, 7, 0]);
    }

    #[test]
    fn region_slots_are_disjoint_and_come_back() {
        // Anonymous shared memory stands in for the usbfs node.
        let r = Region::anonymous(1536, 5).unwrap();
        // 5 x 1536 rounds up to two pages: 5 slots.
        let mut bufs: Vec<Buffer> = std::iter::from_fn(|| r.take()).collect();
        assert_eq!(bufs.len(), 5);
        for (i, b) in bufs.iter_mut().enumerate() {
            assert!(b.is_zero_copy());
            assert_eq!((b.capacity(), b.requested_len(), b.len()), (1536, 1536, 0));
            b.set_len(1536);
            assert!(b.iter().all(|&x| x == 0), "a fresh slot reads as zeros");
            b.fill(i as u8 + 1);
        }
        for (i, b) in bufs.iter().enumerate() {
            assert!(
                b.iter().all(|&x| x == i as u8 + 1),
                "slot {i} was overwritten"
            );
        }
        let mut b = bufs.pop().unwrap();
        b.clear();
        b.extend_from_slice(&[7; 1000]);
        b.resize(1200, 9);
        b.push(1);
        assert!(b.is_zero_copy());
        assert_eq!(b.len(), 1201);
        assert!(b[..1000].iter().all(|&x| x == 7) && b[1000..1200].iter().all(|&x| x == 9));
        b.resize(10, 0);
        assert_eq!(&b[..], &[7; 10]);
        // Past the slot the content moves to the heap, whole; the slot is free again.
        b.extend_from_slice(&[8; 2000]);
        assert!(!b.is_zero_copy());
        assert_eq!(b.len(), 2010);
        assert!(b[..10].iter().all(|&x| x == 7) && b[10..].iter().all(|&x| x == 8));
        let back = r
            .take()
            .expect("the slot came back when the buffer left it");
        drop(back);
        drop(b);
        let again = r.take();
        assert!(again.is_some(), "a dropped slot is free again");
        assert!(r.take().is_none(), "every other slot is still taken");
        assert_eq!(r.slot_len(), 1536);
    }

    #[test]
    fn bad_geometry_is_refused() {
        assert!(Region::anonymous(1500, 4).is_err(), "not a multiple of 64");
        assert!(Region::anonymous(1536, 0).is_err());
    }
}
