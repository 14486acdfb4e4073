//! Allocator settings for long runs: glibc's malloc is told to hand large buffers back.
//!
//! By default glibc raises its mmap threshold each time a large block is freed, so the burst
//! buffers of a long `run` (Kafka fetches, decoded polls, the history writer's queue) end up in the
//! heap and leave it fragmented: the full soak's RSS crept from 32 to 41 MiB while the live heap
//! stayed flat. A fixed threshold keeps such buffers in mappings of their own, returned to the
//! system when freed, and two arenas serve `run`'s few busy threads (docs/PERFORMANCE.md, soak).

/// Blocks at least this large get a mapping of their own.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 64 * 1024;
/// Most malloc arenas (glibc's default is eight per core).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: i32 = 2;

/// Applies the settings unless the user set glibc's own variables; call first in `main`.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |name: &str| std::env::var_os(name).is_some();
        #[allow(unsafe_code)]
        // SAFETY: mallopt only changes allocator parameters, and `main` calls this before it starts
        // any other thread.
        unsafe {
            if !set("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            }
            if !set("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, ARENAS);
            }
        }
    }
}
