//! The process's global allocator, chosen by what the process is.
//!
//! The control plane (`skiff server`, `skiff scheduler`, `skiff bench`) allocates and frees small
//! objects from many threads at a high rate (JSON documents, watch events, HTTP/2 frames); under
//! glibc's malloc a sixth of the API server's CPU went to the allocator in the scheduler bench
//! (fastbin consolidation, chunk unlinking, arena locks), and mimalloc made the whole path 20–40 %
//! faster. The helpers that run once per pod (`skiff shim`, `skiff pause`, `skiff exec`) are the
//! opposite case: tiny, long-lived, counted per pod, and mimalloc's segments cost them about
//! 0.8 MiB each, so they keep the C library's allocator. mimalloc is built without transparent
//! huge pages (`no_thp`): huge pages would grow the server's RSS by tens of MiB.
//!
//! The choice is made once, at the process's first allocation (before `main`, on one thread), from
//! the first argument in `/proc/self/cmdline`, read with raw system calls (no allocation while
//! deciding). Every later allocation, reallocation and free goes to the same allocator, so memory
//! never crosses allocators; a child forked without exec inherits the choice with the heap.
//!
//! What does not live here: anything else about the process's start (`main`).
//!
//! This is the one module of the workspace that allows `unsafe`: a global allocator cannot be
//! written without it. Each block only forwards to an allocator or makes one system call.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

/// Not decided yet.
const UNDECIDED: u8 = 0;
/// The C library's malloc.
const SYSTEM: u8 = 1;
/// mimalloc.
const MIMALLOC: u8 = 2;

/// The subcommands that run control-plane components.
const CONTROL_PLANE: [&[u8]; 3] = [b"server", b"scheduler", b"bench"];

/// The global allocator: mimalloc for control-plane processes, the C library's otherwise.
#[derive(Debug, Default)]
pub struct RoleAllocator {
    choice: AtomicU8,
}

impl RoleAllocator {
    /// An allocator that decides at its first use.
    pub const fn new() -> Self {
        Self { choice: AtomicU8::new(UNDECIDED) }
    }

    fn uses_mimalloc(&self) -> bool {
        match self.choice.load(Ordering::Relaxed) {
            UNDECIDED => {
                let decided = if control_plane(&read_cmdline()) { MIMALLOC } else { SYSTEM };
                // The first allocation happens on the main thread before any other exists; should
                // two threads ever race here, both read the same command line.
                let _ = self.choice.compare_exchange(UNDECIDED, decided, Ordering::Relaxed, Ordering::Relaxed);
                self.choice.load(Ordering::Relaxed) == MIMALLOC
            }
            choice => choice == MIMALLOC,
        }
    }
}

// SAFETY: every call is forwarded to one allocator, the same for the life of the process (the
// choice never changes once made), so each block is freed or resized by the allocator that made
// it; both allocators uphold `GlobalAlloc`'s contract themselves.
unsafe impl GlobalAlloc for RoleAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        unsafe { if self.uses_mimalloc() { mimalloc::MiMalloc.alloc(layout) } else { System.alloc(layout) } }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        unsafe {
            if self.uses_mimalloc() { mimalloc::MiMalloc.alloc_zeroed(layout) } else { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from the same allocator (see the impl's comment).
        unsafe {
            if self.uses_mimalloc() { mimalloc::MiMalloc.dealloc(ptr, layout) } else { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from the same allocator (see the impl's comment).
        unsafe {
            if self.uses_mimalloc() {
                mimalloc::MiMalloc.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            }
        }
    }
}

/// Up to 256 bytes of `/proc/self/cmdline` (enough for the subcommand), read without allocating;
/// empty when it cannot be read.
fn read_cmdline() -> CmdLine {
    let mut out = CmdLine { bytes: [0; 256], len: 0 };
    // SAFETY: a NUL-terminated path, a buffer of the length passed, and a descriptor closed once.
    unsafe {
        let fd = libc::open(c"/proc/self/cmdline".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return out;
        }
        let n = libc::read(fd, out.bytes.as_mut_ptr().cast(), out.bytes.len());
        libc::close(fd);
        out.len = usize::try_from(n).unwrap_or(0);
    }
    out
}

/// A fixed-size copy of the start of the command line.
struct CmdLine {
    bytes: [u8; 256],
    len: usize,
}

impl std::ops::Deref for CmdLine {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Whether the NUL-separated command line `cmdline` runs a control-plane subcommand.
fn control_plane(cmdline: &[u8]) -> bool {
    let subcommand = cmdline.split(|b| *b == 0).nth(1).unwrap_or_default();
    CONTROL_PLANE.contains(&subcommand)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_plane_subcommands_are_recognised() {
        assert!(control_plane(b"/usr/local/bin/skiff\0server\0--disable-agent\0"));
        assert!(control_plane(b"skiff\0scheduler\0--kubeconfig\0k\0"));
        assert!(control_plane(b"skiff\0bench\0scheduler\0"));
        assert!(!control_plane(b"skiff\0shim\0--foreground\0/run/x\0"));
        assert!(!control_plane(b"skiff\0pause\0--foreground\0/run/x\0"));
        assert!(!control_plane(b"skiff\0servers\0"));
        assert!(!control_plane(b"skiff\0"));
        assert!(!control_plane(b""));
    }

    #[test]
    fn this_process_reads_its_own_command_line() {
        let cmdline = read_cmdline();
        let program = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        assert!(!program.is_empty(), "the test binary's own path");
    }

    #[test]
    fn blocks_round_trip_through_the_chosen_allocator() {
        let a = RoleAllocator::new();
        let layout = Layout::from_size_align(100, 16).expect("layout");
        // SAFETY: a fresh block of `layout`, grown, then freed with its current layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            p.write_bytes(7, 100);
            let q = a.realloc(p, layout, 4000);
            assert!(!q.is_null());
            assert_eq!(*q.add(99), 7, "realloc keeps the contents");
            a.dealloc(q, Layout::from_size_align(4000, 16).expect("layout"));
        }
        assert_eq!(a.choice.load(Ordering::Relaxed), SYSTEM, "a test binary is not the control plane");
    }
}
