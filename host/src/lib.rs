//! varta-watch: the Linux observer frontend for the Varta core.
pub mod config;
pub mod export;
