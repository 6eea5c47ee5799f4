//! One audit record: its TSV line, its SHA-256 link to the previous record, and parsing it
//! back. A line is
//!
//! ```text
//! seq  wall_ms  mono_ns  kind  pid  name  child  attempt  detail  prev  hash
//! ```
//!
//! tab-separated, `-` for a column that does not apply. `hash` is the hex SHA-256 of
//! `"varta-audit/1\n"` followed by the line up to and including `prev`, so every record
//! commits to the one before it: editing, deleting or reordering lines breaks the chain.

use sha2::{Digest, Sha256};

/// Schema version written in each file's header.
pub const SCHEMA: &str = "v1";
/// Domain separator hashed before every record.
const DOMAIN: &[u8] = b"varta-audit/1\n";
/// The column names, in order.
pub const COLUMNS: [&str; 11] = [
    "seq", "wall_ms", "mono_ns", "kind", "pid", "name", "child", "attempt", "detail", "prev",
    "hash",
];

/// The `prev` of the very first record of a chain.
pub const GENESIS: [u8; 32] = [0; 32];

/// The header line that starts every audit file.
pub fn header() -> String {
    format!("#varta-audit\t{}\t{}\n", SCHEMA, COLUMNS.join("\t"))
}

/// What a record reports.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The observer started (or resumed the log).
    Boot,
    /// A recovery command was started.
    Spawn,
    /// A recovery command ended (or could not be started).
    Complete,
    /// A recovery was refused for safety.
    Refused,
    /// The restart budget is spent; the rule escalates.
    Escalated,
    /// The restart budget is spent; the rule gives up.
    GaveUp,
    /// Why the board was last reset (embedded frontend).
    ResetReason,
    /// The log continues from a rotated file.
    Rotate,
    /// Orderly stop.
    Stop,
}

impl Kind {
    /// Column value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Boot => "boot",
            Kind::Spawn => "spawn",
            Kind::Complete => "complete",
            Kind::Refused => "refused",
            Kind::Escalated => "escalated",
            Kind::GaveUp => "gave_up",
            Kind::ResetReason => "reset_reason",
            Kind::Rotate => "rotate",
            Kind::Stop => "stop",
        }
    }

    /// Parse a column value.
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "boot" => Kind::Boot,
            "spawn" => Kind::Spawn,
            "complete" => Kind::Complete,
            "refused" => Kind::Refused,
            "escalated" => Kind::Escalated,
            "gave_up" => Kind::GaveUp,
            "reset_reason" => Kind::ResetReason,
            "rotate" => Kind::Rotate,
            "stop" => Kind::Stop,
            _ => return None,
        })
    }
}

/// The caller's part of a record (the log adds seq, times and the chain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Kind.
    pub kind: Kind,
    /// Agent pid.
    pub pid: Option<u32>,
    /// Agent name.
    pub name: String,
    /// Recovery command pid.
    pub child: Option<u32>,
    /// Attempt within the budget window.
    pub attempt: Option<u16>,
    /// Free text (argv, outcome, reason), escaped on write.
    pub detail: String,
}

impl Entry {
    /// An entry of `kind` with only a detail.
    pub fn note(kind: Kind, detail: impl Into<String>) -> Self {
        Entry {
            kind,
            pid: None,
            name: String::new(),
            child: None,
            attempt: None,
            detail: detail.into(),
        }
    }
}

/// A complete record as read back from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Sequence number (consecutive across rotated files).
    pub seq: u64,
    /// Wall-clock milliseconds since the Unix epoch.
    pub wall_ms: u64,
    /// The observer's monotonic clock, nanoseconds.
    pub mono_ns: u64,
    /// Kind (as written; unknown kinds fail parsing).
    pub kind: Kind,
    /// The rest of the columns, unescaped as written.
    pub columns: [String; 5],
    /// Hash of the previous record.
    pub prev: [u8; 32],
    /// This record's hash as written.
    pub hash: [u8; 32],
    /// Hash recomputed over the line.
    pub computed: [u8; 32],
}

/// Make a free-text field safe for one TSV column: `\`, tab, CR and LF are escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// Lower-case hex.
pub fn hex(b: &[u8; 32]) -> String {
    let mut s = String::with_capacity(64);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn digest(body: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(body.as_bytes());
    h.finalize().into()
}

/// Format a record; returns the line (with newline) and its hash.
pub fn format(
    seq: u64,
    wall_ms: u64,
    mono_ns: u64,
    e: &Entry,
    prev: &[u8; 32],
) -> (String, [u8; 32]) {
    let body = format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        seq,
        wall_ms,
        mono_ns,
        e.kind.as_str(),
        opt(e.pid),
        escape(&e.name),
        opt(e.child),
        opt(e.attempt),
        escape(&e.detail),
        hex(prev)
    );
    let hash = digest(&body);
    (format!("{}\t{}\n", body, hex(&hash)), hash)
}

/// Why a line is not a well-formed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

/// Parse one line (without its newline).
pub fn parse(line: &str) -> Result<Record, ParseError> {
    let err = |m: &str| ParseError(m.to_string());
    let (body, hash_col) = line
        .rsplit_once('\t')
        .ok_or_else(|| err("not a tab-separated record"))?;
    let cols: Vec<&str> = body.split('\t').collect();
    if cols.len() != COLUMNS.len() - 1 {
        return Err(ParseError(format!(
            "{} columns, expected {}",
            cols.len() + 1,
            COLUMNS.len()
        )));
    }
    let num = |i: usize| -> Result<u64, ParseError> {
        cols[i]
            .parse()
            .map_err(|_| ParseError(format!("{} is not a number: {:?}", COLUMNS[i], cols[i])))
    };
    let kind =
        Kind::parse(cols[3]).ok_or_else(|| ParseError(format!("unknown kind {:?}", cols[3])))?;
    Ok(Record {
        seq: num(0)?,
        wall_ms: num(1)?,
        mono_ns: num(2)?,
        kind,
        columns: [4, 5, 6, 7, 8].map(|i| cols[i].to_string()),
        prev: unhex(cols[9]).ok_or_else(|| err("prev is not a SHA-256 hex digest"))?,
        hash: unhex(hash_col).ok_or_else(|| err("hash is not a SHA-256 hex digest"))?,
        computed: digest(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            kind: Kind::Spawn,
            pid: Some(42),
            name: "modem\tx".into(),
            child: Some(4242),
            attempt: Some(1),
            detail: "argv=[\"a\",\"b\nc\"]".into(),
        }
    }

    #[test]
    fn round_trip_and_hash() {
        let (line, hash) = format(7, 1_700_000_000_000, 123_456_789, &entry(), &GENESIS);
        assert!(line.ends_with('\n'));
        assert_eq!(
            line.matches('\t').count(),
            10,
            "escaped fields keep 11 columns"
        );
        let r = parse(line.trim_end_matches('\n')).unwrap();
        assert_eq!(r.seq, 7);
        assert_eq!(r.mono_ns, 123_456_789);
        assert_eq!(r.kind, Kind::Spawn);
        assert_eq!(r.columns[1], "modem\\tx");
        assert_eq!(r.hash, hash);
        assert_eq!(r.computed, hash);
        assert_eq!(r.prev, GENESIS);
    }

    #[test]
    fn any_edit_changes_the_hash() {
        let (line, hash) = format(1, 2, 3, &entry(), &GENESIS);
        let edited = line.replacen("4242", "4243", 1);
        let r = parse(edited.trim_end()).unwrap();
        assert_eq!(r.hash, hash);
        assert_ne!(r.computed, r.hash);
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse("").is_err());
        assert!(parse("1\t2").is_err());
        let (line, _) = format(1, 2, 3, &entry(), &GENESIS);
        assert!(parse(&line.replacen("spawn", "launch", 1)).is_err());
        assert!(parse(&line.trim_end()[..line.len() - 10]).is_err());
        assert!(parse(line.trim_end().replacen("1\t2\t", "x\t2\t", 1).as_str()).is_err());
    }
}
