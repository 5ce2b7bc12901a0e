//! Heap accounting: every allocation is tagged with the side that made it — the sim (its API
//! handlers, watch streams and workload simulator) or the operator (everything else) — so
//! the scale bench can say how much of the process's memory is the operator's own.

use std::{
    alloc::{GlobalAlloc, Layout},
    cell::Cell,
    pin::Pin,
    sync::atomic::{AtomicU8, AtomicUsize, Ordering},
    task::{Context, Poll},
};

/// Allocations made by the operator.
pub const OPERATOR: usize = 0;
/// Allocations made by the sim.
pub const SIM: usize = 1;

thread_local! {
    static SIDE: Cell<usize> = const { Cell::new(OPERATOR) };
}
static LIVE: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
static PEAK: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
static PEAK_TOTAL: AtomicUsize = AtomicUsize::new(0);

/// The operator's allocator (jemalloc), with a header before each block naming its side.
pub struct Tagging;

static INNER: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Whether blocks carry a side header: `CUTOVER_BENCH_HEAP_BY_SIDE=1`, read once at the
/// first allocation and fixed for the process. Off, the allocator is plain jemalloc, so
/// RSS and CPU are the binary's own; on, each block is 16 bytes larger.
fn tagging() -> bool {
    static MODE: AtomicU8 = AtomicU8::new(0);
    match MODE.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            unsafe extern "C" {
                fn getenv(name: *const std::ffi::c_char) -> *const std::ffi::c_char;
            }
            // SAFETY: a NUL-terminated name; getenv does not allocate, and the value
            // is only read here.
            let on = unsafe {
                let v = getenv(c"CUTOVER_BENCH_HEAP_BY_SIDE".as_ptr());
                !v.is_null() && *v == b'1' as std::ffi::c_char
            };
            MODE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
    }
}

/// Whether the heap is being split by side in this run.
pub fn enabled() -> bool {
    tagging()
}

fn header(layout: Layout) -> usize {
    layout.align().max(16)
}

fn grow(side: usize, by: usize) {
    let live = LIVE[side].fetch_add(by, Ordering::Relaxed) + by;
    // Plain loads first: a new peak is rare, and locked updates on every allocation
    // would cost the benchmark CPU it then reports.
    if live > PEAK[side].load(Ordering::Relaxed) {
        PEAK[side].fetch_max(live, Ordering::Relaxed);
    }
    let total = LIVE[OPERATOR].load(Ordering::Relaxed) + LIVE[SIM].load(Ordering::Relaxed);
    if total > PEAK_TOTAL.load(Ordering::Relaxed) {
        PEAK_TOTAL.fetch_max(total, Ordering::Relaxed);
    }
}

// SAFETY: every block handed out is a jemalloc block offset by `header(layout)` bytes,
// which keeps the caller's alignment; the side is stored in the 8 bytes before it.
unsafe impl GlobalAlloc for Tagging {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !tagging() {
            // SAFETY: passed through unchanged.
            return unsafe { INNER.alloc(layout) };
        }
        let h = header(layout);
        let Ok(outer) = Layout::from_size_align(layout.size() + h, layout.align().max(16)) else {
            return std::ptr::null_mut();
        };
        // SAFETY: outer has a non-zero size.
        let base = unsafe { INNER.alloc(outer) };
        if base.is_null() {
            return base;
        }
        let side = SIDE.try_with(Cell::get).unwrap_or(OPERATOR);
        // SAFETY: base has h >= 16 bytes before the caller's block.
        unsafe {
            let user = base.add(h);
            (user.sub(8) as *mut usize).write(side);
            grow(side, layout.size());
            user
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !tagging() {
            // SAFETY: passed through unchanged.
            return unsafe { INNER.dealloc(ptr, layout) };
        }
        let h = header(layout);
        // SAFETY: ptr came from alloc above with the same layout.
        unsafe {
            let side = (ptr.sub(8) as *const usize).read();
            LIVE[side].fetch_sub(layout.size(), Ordering::Relaxed);
            let outer =
                Layout::from_size_align_unchecked(layout.size() + h, layout.align().max(16));
            INNER.dealloc(ptr.sub(h), outer);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !tagging() {
            // SAFETY: passed through unchanged.
            return unsafe { INNER.realloc(ptr, layout, new_size) };
        }
        let h = header(layout);
        // SAFETY: ptr came from alloc above with the same layout; the header moves with
        // the block, so its side stays.
        unsafe {
            let side = (ptr.sub(8) as *const usize).read();
            let outer =
                Layout::from_size_align_unchecked(layout.size() + h, layout.align().max(16));
            let base = INNER.realloc(ptr.sub(h), outer, new_size + h);
            if base.is_null() {
                return base;
            }
            LIVE[side].fetch_sub(layout.size(), Ordering::Relaxed);
            grow(side, new_size);
            base.add(h)
        }
    }
}

/// Peak live heap bytes of one side.
pub fn peak(side: usize) -> usize {
    PEAK[side].load(Ordering::Relaxed)
}

/// Peak live heap bytes of both sides together.
pub fn peak_total() -> usize {
    PEAK_TOTAL.load(Ordering::Relaxed)
}

/// Live heap bytes of one side now.
pub fn live(side: usize) -> usize {
    LIVE[side].load(Ordering::Relaxed)
}

/// CPU nanoseconds spent on the sim's side, while the heap is split by side.
static SIM_CPU_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// CPU time of the calling thread in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_ns() -> u64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: t is a valid timespec for the call to fill.
    if unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return 0;
    }
    (t.sec as u64).saturating_mul(1_000_000_000) + t.nsec as u64
}

fn with_side<R>(side: usize, f: impl FnOnce() -> R) -> R {
    let before = SIDE.with(|s| s.replace(side));
    // Only the outermost entry to the sim's side is timed, so nested entries count once.
    let timed = tagging() && side == SIM && before != SIM;
    let started = if timed { thread_cpu_ns() } else { 0 };
    let out = f();
    if timed {
        SIM_CPU_NS.fetch_add(thread_cpu_ns().saturating_sub(started), Ordering::Relaxed);
    }
    SIDE.with(|s| s.set(before));
    out
}

/// CPU seconds spent on the sim's side so far (polls of its futures and bodies).
pub fn sim_cpu_seconds() -> f64 {
    SIM_CPU_NS.load(Ordering::Relaxed) as f64 / 1e9
}

/// A future or body whose polls allocate on the sim's side.
pub struct Sim<T>(pub Pin<Box<T>>);

impl<F: Future> Future for Sim<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        with_side(SIM, || self.0.as_mut().poll(cx))
    }
}

impl<B: hyper::body::Body> hyper::body::Body for Sim<B> {
    type Data = B::Data;
    type Error = B::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<B::Data>, B::Error>>> {
        with_side(SIM, || self.0.as_mut().poll_frame(cx))
    }
    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        self.0.size_hint()
    }
}
