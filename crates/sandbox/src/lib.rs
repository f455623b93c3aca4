//! picortex-sandbox: everything about keeping one chat away from the others and from the host.
//!
//! * [`ids`]: chat directory and user names, and the validation every identifier passes before
//!   it touches a path or a system call.
//! * [`confine`]: Landlock confinement (used on its own without root, and as one layer of the
//!   sandbox with it).

pub mod confine;
pub mod ids;
