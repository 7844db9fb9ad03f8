//! The process's allocator: mimalloc, called the plain way whenever a layout lets it.
//!
//! The `mimalloc` crate passes every request to `mi_malloc_aligned`, even for an alignment
//! of 1 to 8. mimalloc v3 serves that from its fast path only when the block is at most
//! 1 KiB and the next free block happens to be aligned. Anything else goes to a generic path,
//! where a block whose size class is not a power of two is over-allocated by `align - 1`
//! bytes (often into a larger size class): about 200 instructions a call where the fast path
//! takes a tenth of that. Our request path makes many such blocks (futures, header maps,
//! buffers over 1 KiB): callgrind counted 20 over-allocations per cached search through
//! `--role proxy+app`, 14 through `--role app`. Calling the plain functions took the
//! instructions per cached search from 103,100 to 97,900 (proxy+app) and from 77,900 to
//! 74,100 (app alone).
//!
//! Every mimalloc block is aligned to at least a word, so a layout asking for no more than
//! that is served by `mi_malloc`/`mi_zalloc`/`mi_realloc`; larger alignments (tokio's
//! cache-padded task cells, for one) keep the aligned calls. Freeing is `mi_free` for both.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every mimalloc block has (its blocks are whole words).
const WORD: usize = std::mem::size_of::<usize>();

/// mimalloc as the global allocator; see the module's note for how it differs from the
/// `mimalloc` crate's.
pub struct MiMalloc;

// SAFETY: every method returns memory from mimalloc that meets the layout's size and
// alignment (mimalloc's plain calls when the alignment is at most a word, which all its blocks
// have, its aligned calls otherwise), or null when mimalloc has none; `dealloc` and `realloc`
// get only pointers this allocator returned.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc takes any size and a power-of-two alignment (a `Layout`'s).
        unsafe {
            if layout.align() <= WORD {
                mi::mi_malloc(layout.size())
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align())
            }
        }
        .cast()
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if layout.align() <= WORD {
                mi::mi_zalloc(layout.size())
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align())
            }
        }
        .cast()
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's promise); mimalloc frees
        // aligned and plain blocks alike.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the caller's promise); the
        // new block keeps the layout's alignment as in `alloc`.
        unsafe {
            if layout.align() <= WORD {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size)
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align())
            }
        }
        .cast()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes up to mimalloc's small-block limit (1 KiB), and over it, odd and round.
    const SMALL: [usize; 6] = [1, 7, 24, 100, 1000, 1024];
    const LARGE: [usize; 7] = [1200, 2400, 4096, 14_006, 70_000, 1 << 18, 5 << 20];
    const ALIGNS: [usize; 6] = [1, 2, 8, 16, 128, 4096];

    #[test]
    fn blocks_keep_their_layout_through_alloc_zeroing_and_realloc() {
        let a = MiMalloc;
        for &size in SMALL.iter().chain(&LARGE) {
            for &align in &ALIGNS {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; every pointer is checked, written within its
                // layout and freed with the layout it was made with.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null(), "{size}/{align}");
                    assert_eq!(p as usize % align, 0, "alloc {size}/{align}");
                    p.write_bytes(0xA5, size);
                    let grown = a.realloc(p, layout, size * 3);
                    assert!(!grown.is_null());
                    assert_eq!(grown as usize % align, 0, "realloc {size}/{align}");
                    assert!(
                        (0..size).all(|i| *grown.add(i) == 0xA5),
                        "realloc kept the bytes"
                    );
                    a.dealloc(grown, Layout::from_size_align(size * 3, align).unwrap());

                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "alloc_zeroed {size}/{align}");
                    assert!((0..size).all(|i| *z.add(i) == 0), "zeroed {size}/{align}");
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
