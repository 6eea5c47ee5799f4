//! Fuzz properties for the observer's parsers of outside input, shared by the libFuzzer
//! targets (nightly, `cargo fuzz run <target>`) and the stable replay test: the /metrics
//! request router, the audit record parser (audit files are read back after crashes and by
//! `audit verify`), the recovery command splitter and the TOML configuration.

use std::path::Path;
use varta_host::audit::record::{self, Entry, Kind};
use varta_host::config::file;
use varta_host::export::http;
use varta_host::recovery::command;

/// Route an arbitrary request head, with and without a token. Never panics.
pub fn http_request(data: &[u8]) {
    let _ = http::route(data, None);
    let _ = http::route(data, Some(b"secret-token"));
}

/// Parse an arbitrary line as an audit record (never panics), and check that any text used
/// as a record's fields formats to a line that parses back with a verifying hash.
pub fn audit_line(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = record::parse(text);
    // Formatting any entry text gives a line that parses back and verifies.
    let e = Entry {
        kind: Kind::Spawn,
        pid: Some(1),
        name: text.chars().take(64).collect(),
        child: None,
        attempt: Some(1),
        detail: text.to_string(),
    };
    let (line, hash) = record::format(1, 2, 3, &e, &record::GENESIS);
    let back = record::parse(line.strip_suffix('\n').expect("newline")).expect("own line parses");
    assert_eq!(back.hash, hash);
    assert_eq!(back.computed, hash);
}

/// Split an arbitrary string as `--recovery-exec`; no word may be empty unless quoted and
/// no NUL may come through.
pub fn exec_split(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(words) = command::split(text) {
        assert!(!words.is_empty());
        assert!(words.iter().all(|w| !w.contains('\0')));
    }
    if let Ok(argv) = command::parse_exec_flag(text) {
        assert!(!argv.is_empty());
    }
}

/// Parse an arbitrary configuration file; errors must name the file.
pub fn config_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = file::parse(Path::new("fuzz.toml"), text) {
        assert!(e.0.starts_with("fuzz.toml:"), "{}", e.0);
    }
}
