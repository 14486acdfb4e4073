//! The binary's allocator: mimalloc.
//!
//! `run` allocates every decoded sample (its strings and signal names) on the ingest thread and
//! frees it on the history writer's thread after encoding. glibc's malloc paid for that pattern
//! with arena locking and chunk consolidation (malloc/free were ~30% of the ingest thread's
//! profile); with mimalloc the same `run` stores 2-2.7× more samples per second (docs/PERFORMANCE.md,
//! `cargo xtask bench run`). mimalloc also returns freed memory to the system on its own, which
//! the soak's flat-RSS check holds it to.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
