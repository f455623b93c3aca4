//! picortex.
