//! The per-agent tracker.
