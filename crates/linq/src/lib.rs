//! Linq Partner API v3.
