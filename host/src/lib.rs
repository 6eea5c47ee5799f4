//! varta-watch: the Linux observer frontend for the Varta core.
pub mod audit;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod doctor;
pub mod export;
pub mod identity;
pub mod listener;
pub mod logging;
pub mod observer;
pub mod pidwatch;
pub mod recovery;
pub mod sdnotify;
pub mod signals;
pub mod status;
pub mod timer;
