//! picortex-sandbox: everything about keeping one chat away from the others and from the host.
//!
//! * [`archive`]: a home to one verified `.tar.zst` and back (owners remapped to a new uid).
//! * [`ids`]: chat directory and user names, and the validation every identifier passes before
//!   it touches a path or a system call.
//! * [`confine`]: Landlock confinement (used on its own without root, and as one layer of the
//!   sandbox with it).
//! * [`jail`]: the sandbox a chat's processes run in (namespaces, cgroup, rlimits,
//!   no_new_privs, Landlock, seccomp, the chat's own uid) and its init process, which reaps
//!   orphans and relays the model gateway into the chat's network namespace ([`forward`]).
//! * [`protocol`], [`server`], [`client`]: the privileged helper's typed operations over a unix
//!   socket, the server that checks its peer's credentials, and the daemon's client.
//! * [`provision`]: per-chat Linux users, groups and homes.
//! * [`cli`]: the helper's command line (`picortex-sandbox serve`, also `picortex sandbox`).
//! * [`tmux`]: a chat's tmux server, driven by path (by the daemon without the sandbox, by
//!   the helper with it).
//! * [`process`]: running a short-lived program with a deadline.
//! * [`probe`]: what this host's kernel offers (namespaces, Landlock ABI, seccomp, cgroups).

pub mod archive;
pub mod cli;
pub mod client;
pub mod confine;
pub mod forward;
pub mod ids;
pub mod jail;
pub mod probe;
pub mod process;
pub mod protocol;
pub mod provision;
pub mod server;
pub mod tmux;
