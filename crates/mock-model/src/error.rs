//! Errors: a script that cannot be loaded or does not make sense.

use std::path::PathBuf;

/// Why a script was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The script file could not be read.
    #[error("cannot read script {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a script in JSON form.
    #[error("invalid script JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A `prompt_regex` does not compile.
    #[error("rule {rule}: invalid regex {pattern:?}: {source}")]
    Regex {
        /// The rule's name or `#index`.
        rule: String,
        /// The pattern.
        pattern: String,
        /// The compiler's complaint.
        #[source]
        source: regex::Error,
    },
    /// A rule without steps.
    #[error("rule {rule} has no steps")]
    EmptyRule {
        /// The rule's name or `#index`.
        rule: String,
    },
    /// An error step whose status is not an HTTP error status.
    #[error("rule {rule}: error status {status} is not a 4xx/5xx status")]
    BadStatus {
        /// The rule's name, `#index` or `default`.
        rule: String,
        /// The status given.
        status: u16,
    },
    /// A tool_use step without calls.
    #[error("rule {rule}: a tool_use step needs at least one call")]
    NoCalls {
        /// The rule's name, `#index` or `default`.
        rule: String,
    },
    /// A tool call whose input is not a JSON object.
    #[error("rule {rule}: the input of tool {tool} must be a JSON object")]
    BadToolInput {
        /// The rule's name, `#index` or `default`.
        rule: String,
        /// The tool.
        tool: String,
    },
}
