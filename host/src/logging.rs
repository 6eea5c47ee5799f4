//! The `log` backend for the Linux binaries: text or JSON lines on stderr, rate-limited per
//! call site so a flood of identical warnings cannot drown the journal or slow the loop.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

/// Output format.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// `LEVEL target: message`
    Text,
    /// One JSON object per line: `{"ts_ms":…,"level":"…","target":"…","msg":"…"}`
    Json,
}

/// Per call site: at most `BURST` records, refilled at one per `REFILL_MS`.
const BURST: u32 = 20;
const REFILL_MS: u64 = 500;

#[derive(Debug)]
struct Bucket {
    tokens: u32,
    last_ms: u64,
    suppressed: u64,
}

/// The logger. Install with [`init`].
#[derive(Debug)]
pub struct Logger {
    format: Format,
    level: LevelFilter,
    buckets: Mutex<HashMap<(&'static str, u32), Bucket>>,
}

impl Logger {
    /// A logger writing `format` at `level` and above.
    pub fn new(format: Format, level: LevelFilter) -> Self {
        Logger {
            format,
            level,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Decide whether a record from this call site may be written now; returns how many
    /// were suppressed before it (to report), or None to drop it.
    fn admit(&self, key: (&'static str, u32), now_ms: u64) -> Option<u64> {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = map.entry(key).or_insert(Bucket {
            tokens: BURST,
            last_ms: now_ms,
            suppressed: 0,
        });
        let refill = (now_ms.saturating_sub(b.last_ms) / REFILL_MS) as u32;
        if refill > 0 {
            b.tokens = (b.tokens + refill).min(BURST);
            b.last_ms = now_ms;
        }
        if b.tokens == 0 {
            b.suppressed += 1;
            return None;
        }
        b.tokens -= 1;
        Some(std::mem::take(&mut b.suppressed))
    }

    /// Render a record as one line (without the trailing newline).
    pub fn render(
        &self,
        level: Level,
        target: &str,
        msg: &str,
        ts_ms: u64,
        suppressed: u64,
    ) -> String {
        match self.format {
            Format::Text => {
                let mut s = format!("{:<5} {}: {}", level, target, msg);
                if suppressed > 0 {
                    s.push_str(&format!(" ({} similar messages suppressed)", suppressed));
                }
                s
            }
            Format::Json => {
                let mut v = serde_json::json!({
                    "ts_ms": ts_ms,
                    "level": level.as_str().to_ascii_lowercase(),
                    "target": target,
                    "msg": msg,
                });
                if suppressed > 0 {
                    v["suppressed"] = serde_json::json!(suppressed);
                }
                v.to_string()
            }
        }
    }
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let now_ms = crate::clock::wall_ms();
        let key = (r.file_static().unwrap_or("?"), r.line().unwrap_or(0));
        let Some(suppressed) = self.admit(key, now_ms) else {
            return;
        };
        let line = self.render(
            r.level(),
            r.target(),
            &r.args().to_string(),
            now_ms,
            suppressed,
        );
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}", line);
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Install the global logger (first call wins).
pub fn init(format: Format, level: LevelFilter) {
    let logger = Box::leak(Box::new(Logger::new(format, level)));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_per_call_site() {
        let l = Logger::new(Format::Text, LevelFilter::Info);
        let k = ("f.rs", 1);
        for _ in 0..BURST {
            assert_eq!(l.admit(k, 1000), Some(0));
        }
        assert_eq!(l.admit(k, 1000), None);
        assert_eq!(l.admit(k, 1000), None);
        assert_eq!(
            l.admit(("f.rs", 2), 1000),
            Some(0),
            "other sites unaffected"
        );
        assert_eq!(
            l.admit(k, 1000 + REFILL_MS),
            Some(2),
            "reports what it suppressed"
        );
    }

    #[test]
    fn json_lines_escape() {
        let l = Logger::new(Format::Json, LevelFilter::Info);
        let s = l.render(Level::Warn, "varta", "agent \"x\"\nstalled", 5, 3);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["msg"], "agent \"x\"\nstalled");
        assert_eq!(v["level"], "warn");
        assert_eq!(v["suppressed"], 3);
        assert!(!s.contains('\n'));
        let t = Logger::new(Format::Text, LevelFilter::Info).render(Level::Info, "v", "hi", 0, 0);
        assert_eq!(t, "INFO  v: hi");
    }
}
