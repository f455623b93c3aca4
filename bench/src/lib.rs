//! Benchmarks of the picortex daemon, measured on the machine they run on.
//!
//! The `ingest` binary drives the real daemon (`picortex::daemon::start`) with pre-signed
//! `message.received` webhooks and compares it with the raw cost of the same SQLite inserts.
//! The pieces it is built from live here so other benchmarks can reuse them:
//!
//! * [`webhooks`]: pre-built, pre-signed webhook deliveries (signing stays out of the timing),
//!   or one with exactly the text given (an owner command);
//! * [`sink`]: a stand-in for the Linq API that accepts every reply the daemon sends;
//! * [`linq_standin`]: a Linq stand-in that hands each chat's reply to whoever waits for it,
//!   and the driver that times a turn from the webhook's 200 to that reply;
//! * [`chat_home`]: what a chat's home tells from outside (the runner's turn files), the sandbox
//!   helper's audit log, and the clean-up of every chat a benchmark made;
//! * [`load`]: closed-loop (as fast as possible) and open-loop (fixed offered rate) HTTP load;
//! * [`baseline`]: plain SQLite inserts of the same rows, one per transaction, batched, and
//!   one per transaction at a fixed pace;
//! * [`stats`]: latency percentiles;
//! * [`cpu`]: CPU time per thread group and for the whole host, to see where the time went;
//! * [`flush_probe`]: the disk's own flush latency while a phase runs;
//! * [`machine`]: what the figures were measured on;
//! * [`harness`]: the daemon's log file, the two runtimes every binary uses, tools on `PATH`;
//! * [`sync`]: locking that survives a panicked holder.

pub mod baseline;
pub mod chat_home;
pub mod cpu;
pub mod flush_probe;
pub mod harness;
pub mod linq_standin;
pub mod load;
pub mod machine;
pub mod sink;
pub mod stats;
pub mod sync;
pub mod webhooks;
