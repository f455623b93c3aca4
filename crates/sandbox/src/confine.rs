//! Landlock confinement of a chat's tmux server and everything in it (the runner, the agent,
//! the owner's shell window): read-write beneath the chat's home, read and execute on the
//! system's program and library paths (and the directories of the runner and agent CLI), read
//! on `/proc`, `/sys` and `/dev`, read-write on the few devices a terminal needs, and, where
//! the kernel has them, abstract unix sockets and signals scoped to the chat's own processes.
//!
//! Without root (no per-chat users or namespaces), this is what keeps one chat's agent out of
//! another chat's files; it is applied by the launcher that starts the chat's tmux server, so a
//! process inside cannot undo it by talking to tmux. With root, the sandbox ([`crate::jail`])
//! applies it to every program as one of its layers ([`confine_paths`], adding the sandbox's
//! private temporary directories).

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, path_beneath_rules,
};

/// The newest Landlock ABI this code knows how to use; older kernels get what they support.
const TARGET_ABI: ABI = ABI::V6;

/// System paths a chat may read and execute from.
const SYSTEM_EXEC: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/opt",
];
/// System paths a chat may read.
const SYSTEM_READ: &[&str] = &["/proc", "/sys", "/dev"];
/// Devices a terminal and ordinary programs need to write.
const DEVICES_RW: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("building the Landlock ruleset: {0}")]
    Ruleset(#[from] landlock::RulesetError),
}

/// How much of the confinement the kernel enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    /// Every requested restriction is in force.
    Full,
    /// Some restrictions are missing on this kernel (e.g. no scoping before ABI 6).
    Partial,
    /// The kernel has no Landlock: nothing is confined.
    None,
}

/// The newest Landlock ABI this kernel offers, up to the one this code uses (0: none).
pub fn kernel_abi() -> i32 {
    for (abi, n) in [
        (ABI::V6, 6),
        (ABI::V5, 5),
        (ABI::V4, 4),
        (ABI::V3, 3),
        (ABI::V2, 2),
        (ABI::V1, 1),
    ] {
        let supported = Ruleset::default()
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(AccessFs::from_all(abi))
            .and_then(|r| r.create())
            .is_ok();
        if supported {
            return n;
        }
    }
    0
}

/// Confines the calling process (and all it starts afterwards) to `home`, plus read-only and
/// executable access to the system and to `exec_dirs`.
pub fn confine(home: &Path, exec_dirs: &[PathBuf]) -> Result<Enforcement, ConfineError> {
    confine_paths(&[home.to_path_buf()], exec_dirs)
}

/// Like [`confine`], with several read-write trees: the sandbox adds its private `/tmp`,
/// `/var/tmp` and `/dev/shm` to the home (without it, `/tmp` is shared between chats and stays
/// out of reach).
pub fn confine_paths(
    writable: &[PathBuf],
    exec_dirs: &[PathBuf],
) -> Result<Enforcement, ConfineError> {
    let abi = TARGET_ABI;
    let read_exec = AccessFs::from_read(abi);
    let read_only = AccessFs::from_read(abi) & !AccessFs::Execute;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))?
        .scope(Scope::AbstractUnixSocket | Scope::Signal)?
        .create()?
        .add_rules(path_beneath_rules(writable, AccessFs::from_all(abi)))?
        .add_rules(path_beneath_rules(SYSTEM_EXEC, read_exec))?
        .add_rules(path_beneath_rules(exec_dirs, read_exec))?
        .add_rules(path_beneath_rules(SYSTEM_READ, read_only))?
        .add_rules(path_beneath_rules(DEVICES_RW, AccessFs::from_all(abi)))?
        .restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforcement::Full,
        RulesetStatus::PartiallyEnforced => Enforcement::Partial,
        RulesetStatus::NotEnforced => Enforcement::None,
    })
}
