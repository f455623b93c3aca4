//! The seccomp deny-list applied to every program in a sandbox, last thing before `exec`.
//!
//! It is a deny-list on purpose: the agent runs arbitrary developer tools, so everything
//! ordinary must keep working, while the calls that attack the kernel or other processes, or undo
//! the sandbox (new namespaces, mounts, tracing, keyrings, modules, MPTCP, terminal injection),
//! fail with EPERM. `clone3` fails with ENOSYS instead, because its flags sit behind a pointer a
//! filter cannot read: libc then falls back to `clone`, whose flags the filter does check.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// `IPPROTO_MPTCP`, not in every libc.
const IPPROTO_MPTCP: u64 = 262;

/// Namespace flags no sandboxed process may ask `clone` or `unshare` for.
const NAMESPACE_FLAGS: [libc::c_int; 8] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWTIME,
];

/// Calls refused whatever their arguments.
const DENIED: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_userfaultfd,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_keyctl,
    libc::SYS_acct,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_name_to_handle_at,
    libc::SYS_open_by_handle_at,
];

#[derive(Debug, thiserror::Error)]
pub(crate) enum SeccompError {
    #[error("building the seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("installing the seccomp filter: {0}")]
    Install(#[from] seccompiler::Error),
    #[error("no seccomp support for this architecture: {0}")]
    Arch(String),
}

/// The compiled filters, built before the program's process drops its privileges.
pub(crate) struct Filters {
    deny: BpfProgram,
    clone3: BpfProgram,
}

pub(crate) fn build() -> Result<Filters, SeccompError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| SeccompError::Arch(e.to_string()))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &call in DENIED {
        rules.insert(call, Vec::new());
    }
    // Any one namespace flag in the first argument is enough to refuse.
    let namespace_rules = || -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
        NAMESPACE_FLAGS
            .iter()
            .map(|&flag| {
                let flag = flag as u64;
                SeccompRule::new(vec![SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::MaskedEq(flag),
                    flag,
                )?])
            })
            .collect()
    };
    rules.insert(libc::SYS_clone, namespace_rules()?);
    rules.insert(libc::SYS_unshare, namespace_rules()?);
    rules.insert(
        libc::SYS_socket,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            2,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            IPPROTO_MPTCP,
        )?])?],
    );
    // The request numbers are c_ulong, which is u64 only on 64-bit targets.
    #[allow(clippy::unnecessary_cast)]
    let terminal_requests = [libc::TIOCSTI as u64, libc::TIOCLINUX as u64];
    rules.insert(
        libc::SYS_ioctl,
        terminal_requests
            .into_iter()
            .map(|request| {
                SeccompRule::new(vec![SeccompCondition::new(
                    1,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Eq,
                    request,
                )?])
            })
            .collect::<Result<_, _>>()?,
    );
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?;
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    Ok(Filters {
        deny: deny.try_into()?,
        clone3: clone3.try_into()?,
    })
}

/// Installs the filters on the calling thread (the program's only thread, just before `exec`).
/// no_new_privs must already be set.
pub(crate) fn install(filters: &Filters) -> Result<(), SeccompError> {
    seccompiler::apply_filter(&filters.clone3)?;
    seccompiler::apply_filter(&filters.deny)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_compile_for_this_architecture() {
        let filters = build().unwrap();
        assert!(!filters.deny.is_empty());
        assert!(!filters.clone3.is_empty());
    }
}
