//! picortex-runner: the agent host that lives in a chat's tmux session (window `agent`), as the
//! chat's workspace owner. It takes turns from the daemon over a unix socket, runs them one at a
//! time through an agent backend, writes each result durably to `~/.picortex/turns/<id>.json`
//! before answering, prints a readable live transcript to its window, and exits after an idle
//! timeout. Because it lives in tmux and not in the daemon, a daemon restart loses no turn.

pub mod backend;
pub mod cli;
pub mod outbox_files;
pub mod protocol;
pub mod server;
pub mod transcript;
pub mod turn_files;
