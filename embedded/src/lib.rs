//! varta-watchd: the embedded-Linux frontend. The observer loop is the host's
//! (`varta_host::daemon`), driven with a [`supervisor::Hardware`] that owns the SoC's
//! watchdog ([`watchdog`]) and status LED ([`led`]), configured by a board profile
//! ([`board`]), with what must survive a reset in a state directory ([`reset`]) and the
//! last boot's cause told from both ([`boot`]).
pub mod board;
pub mod boot;
pub mod led;
pub mod reset;
pub mod supervisor;
pub mod watchdog;
