//! Logging shim: core code logs through `defmt`, `log`, or nothing, chosen by feature.
//!
//! The macros take format arguments that both `defmt` and `log` accept (plain `{}`
//! placeholders with `Format`/`Display` values). With neither feature the arguments are
//! still type-checked but nothing is emitted.
#![allow(unused_macros)]

macro_rules! core_trace {
    ($($arg:tt)+) => {{
        #[cfg(feature = "defmt")]
        ::defmt::trace!($($arg)+);
        #[cfg(all(feature = "log", not(feature = "defmt")))]
        ::log::trace!($($arg)+);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = || { let _ = ::core::format_args!($($arg)+); }; }
    }};
}

macro_rules! core_debug {
    ($($arg:tt)+) => {{
        #[cfg(feature = "defmt")]
        ::defmt::debug!($($arg)+);
        #[cfg(all(feature = "log", not(feature = "defmt")))]
        ::log::debug!($($arg)+);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = || { let _ = ::core::format_args!($($arg)+); }; }
    }};
}

macro_rules! core_warn {
    ($($arg:tt)+) => {{
        #[cfg(feature = "defmt")]
        ::defmt::warn!($($arg)+);
        #[cfg(all(feature = "log", not(feature = "defmt")))]
        ::log::warn!($($arg)+);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = || { let _ = ::core::format_args!($($arg)+); }; }
    }};
}
