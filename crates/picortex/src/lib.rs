//! picortex: text an AI coding agent from any phone. This crate is the daemon and its CLI:
//! configuration, the canonical store, webhook ingest, the turn scheduler, agent backends, the
//! outbox sender and the HTTP server. See ARCHITECTURE.md for the path of a message.

pub mod agent;
pub mod attachments;
pub mod channel;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod doctor;
pub mod gate;
pub mod gatekeeper;
pub mod gateway;
pub mod ingest;
pub mod isolation;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod runner_agent;
pub mod scheduler;
pub mod sender;
pub mod server;
pub mod shaping;
pub mod store;
pub mod workspace;
