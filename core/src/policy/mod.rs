//! Pure policies: decisions over state and `now`, no I/O.
