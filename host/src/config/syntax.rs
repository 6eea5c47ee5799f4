//! The TOML subset Varta's configuration files and board profiles are written in, read
//! without serde: `[table]` and `[[array.of.tables]]` headers, `key = value` lines, `#`
//! comments, and values that are basic or literal strings, integers (with `_`, `0x`), booleans
//! and arrays of those (over several lines, trailing comma allowed). Anything else (floats,
//! dates, inline tables, dotted keys, multi-line strings) is refused with its line, which is
//! also what every other error carries.
//!
//! A general TOML crate costs the embedded binary ~165 KB for features these files never use;
//! this reader is a few hundred lines, fuzzed through the config-file target.

use std::fmt;

/// A value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// An array.
    Array(Vec<Value>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Bool(_) => "a boolean",
            Value::Array(_) => "an array",
        }
    }
}

/// `key = value` on `line`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
    /// 1-based line of the key.
    pub line: usize,
}

/// A `[name]` or `[[name]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// Header name.
    pub name: String,
    /// `[[name]]`.
    pub array: bool,
    /// Line of the header.
    pub line: usize,
    /// Its entries, in order.
    pub entries: Vec<Entry>,
}

/// A parsed file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Document {
    /// Entries before the first header.
    pub root: Vec<Entry>,
    /// Tables in file order.
    pub tables: Vec<Table>,
}

/// An error with its 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// Line.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.line, self.msg)
    }
}

fn err<T>(line: usize, msg: impl Into<String>) -> Result<T, Error> {
    Err(Error {
        line,
        msg: msg.into(),
    })
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
    line: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }
    /// Spaces and tabs.
    fn blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    /// Blanks, newlines and comments (inside arrays).
    fn gaps(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump();
                }
                Some(b'#') => self.comment(),
                _ => return,
            }
        }
    }
    fn comment(&mut self) {
        while !matches!(self.peek(), None | Some(b'\n')) {
            self.i += 1;
        }
    }
    /// After a value or header: blanks, an optional comment, then a newline or the end.
    fn end_of_line(&mut self) -> Result<(), Error> {
        self.blanks();
        if self.peek() == Some(b'#') {
            self.comment();
        }
        match self.peek() {
            None => Ok(()),
            Some(b'\n') => {
                self.bump();
                Ok(())
            }
            Some(b'\r') if self.s.get(self.i + 1) == Some(&b'\n') => {
                self.bump();
                self.bump();
                Ok(())
            }
            Some(c) => err(
                self.line,
                format!("unexpected {:?} after the value", c as char),
            ),
        }
    }
    fn key(&mut self) -> Result<String, Error> {
        let line = self.line;
        let key = match self.peek() {
            Some(b'"') => self.basic_string()?,
            Some(b'\'') => self.literal_string()?,
            _ => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
                {
                    self.i += 1;
                }
                if start == self.i {
                    return err(line, "expected a key");
                }
                String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
            }
        };
        if self.peek() == Some(b'.') {
            return err(line, "dotted keys are not supported here");
        }
        Ok(key)
    }
    fn basic_string(&mut self) -> Result<String, Error> {
        let line = self.line;
        self.bump(); // "
        if self.s[self.i..].starts_with(b"\"\"") {
            return err(line, "multi-line strings are not supported here");
        }
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.bump() {
                None | Some(b'\n') => return err(line, "unterminated string"),
                Some(b'"') => break,
                Some(b'\\') => match self.bump() {
                    Some(b'"') => out.push(b'"'),
                    Some(b'\\') => out.push(b'\\'),
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b'b') => out.push(8),
                    Some(b'f') => out.push(12),
                    Some(b'e') => out.push(0x1b),
                    Some(c @ (b'u' | b'U')) => {
                        let n = if c == b'u' { 4 } else { 8 };
                        let hex = self.s.get(self.i..self.i + n).unwrap_or_default();
                        let cp = std::str::from_utf8(hex)
                            .ok()
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .and_then(char::from_u32)
                            .ok_or(Error {
                                line,
                                msg: "invalid unicode escape".into(),
                            })?;
                        self.i += n;
                        let mut b = [0u8; 4];
                        out.extend_from_slice(cp.encode_utf8(&mut b).as_bytes());
                    }
                    _ => return err(line, "invalid escape in string"),
                },
                Some(c) if c < 0x20 && c != b'\t' => {
                    return err(line, "control character in string")
                }
                Some(c) => out.push(c),
            }
        }
        String::from_utf8(out).or_else(|_| err(line, "string is not valid UTF-8"))
    }
    fn literal_string(&mut self) -> Result<String, Error> {
        let line = self.line;
        self.bump(); // '
        if self.s[self.i..].starts_with(b"''") {
            return err(line, "multi-line strings are not supported here");
        }
        let start = self.i;
        loop {
            match self.bump() {
                None | Some(b'\n') => return err(line, "unterminated string"),
                Some(b'\'') => break,
                Some(_) => {}
            }
        }
        String::from_utf8(self.s[start..self.i - 1].to_vec())
            .or_else(|_| err(line, "string is not valid UTF-8"))
    }
    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        let line = self.line;
        match self.peek() {
            Some(b'"') => Ok(Value::Str(self.basic_string()?)),
            Some(b'\'') => Ok(Value::Str(self.literal_string()?)),
            Some(b'[') => {
                if depth > 8 {
                    return err(line, "arrays nested too deeply");
                }
                self.bump();
                let mut items = Vec::new();
                loop {
                    self.gaps();
                    if self.peek() == Some(b']') {
                        self.bump();
                        return Ok(Value::Array(items));
                    }
                    items.push(self.value(depth + 1)?);
                    self.gaps();
                    match self.bump() {
                        Some(b',') => {}
                        Some(b']') => return Ok(Value::Array(items)),
                        None => return err(line, "unterminated array"),
                        Some(c) => {
                            return err(
                                self.line,
                                format!("expected ',' or ']' in array, found {:?}", c as char),
                            )
                        }
                    }
                }
            }
            Some(b'{') => err(line, "inline tables are not supported here"),
            Some(_) => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'+' | b'.' | b':'))
                {
                    self.i += 1;
                }
                let word = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                match word {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "" => err(line, "expected a value"),
                    w => parse_int(w).map(Value::Int).ok_or(Error {
                        line,
                        msg: format!("{w:?} is not a string, integer, boolean or array"),
                    }),
                }
            }
            None => err(line, "expected a value"),
        }
    }
}

fn parse_int(w: &str) -> Option<i64> {
    let (neg, body) = match w.as_bytes().first()? {
        b'-' => (true, &w[1..]),
        b'+' => (false, &w[1..]),
        _ => (false, w),
    };
    if body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return None;
    }
    let digits: String = body.chars().filter(|&c| c != '_').collect();
    let v = if let Some(h) = digits.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = digits.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if let Some(b) = digits.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()?
    } else {
        if digits.len() > 1 && digits.starts_with('0') || digits.is_empty() {
            return None;
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

/// Parse a document.
pub fn parse(text: &str) -> Result<Document, Error> {
    let mut c = Cursor {
        s: text.as_bytes(),
        i: 0,
        line: 1,
    };
    let mut doc = Document::default();
    let mut current: Option<Table> = None;
    let mut seen_tables: Vec<String> = Vec::new();
    loop {
        c.gaps();
        let Some(ch) = c.peek() else { break };
        let line = c.line;
        if ch == b'[' {
            c.bump();
            let array = c.peek() == Some(b'[');
            if array {
                c.bump();
            }
            c.blanks();
            let name = c.key()?;
            c.blanks();
            let close: &[u8] = if array { b"]]" } else { b"]" };
            if !c.s[c.i..].starts_with(close) {
                return err(line, "expected ']' to close the table header");
            }
            c.i += close.len();
            c.end_of_line()?;
            if !array {
                if seen_tables.contains(&name) {
                    return err(line, format!("table [{name}] defined twice"));
                }
                seen_tables.push(name.clone());
            }
            if let Some(t) = current.take() {
                doc.tables.push(t);
            }
            current = Some(Table {
                name,
                array,
                line,
                entries: Vec::new(),
            });
            continue;
        }
        let key = c.key()?;
        c.blanks();
        if c.bump() != Some(b'=') {
            return err(line, format!("expected '=' after key `{key}`"));
        }
        c.blanks();
        let value = c.value(0)?;
        c.end_of_line()?;
        let entries = match &mut current {
            Some(t) => &mut t.entries,
            None => &mut doc.root,
        };
        if entries.iter().any(|e| e.key == key) {
            return err(line, format!("key `{key}` given twice"));
        }
        entries.push(Entry { key, value, line });
    }
    if let Some(t) = current.take() {
        doc.tables.push(t);
    }
    Ok(doc)
}

/// Typed, checked access to a table's entries: each getter consumes its key, and
/// [`Fields::finish`] refuses whatever is left as unknown.
pub struct Fields<'a> {
    entries: &'a [Entry],
    used: Vec<bool>,
}

impl<'a> Fields<'a> {
    /// Over `entries`.
    pub fn new(entries: &'a [Entry]) -> Self {
        Fields {
            entries,
            used: vec![false; entries.len()],
        }
    }

    fn take(&mut self, key: &str) -> Option<&'a Entry> {
        let i = self.entries.iter().position(|e| e.key == key)?;
        self.used[i] = true;
        Some(&self.entries[i])
    }

    fn mismatch<T>(e: &Entry, want: &str) -> Result<T, Error> {
        err(
            e.line,
            format!("`{}` must be {}, not {}", e.key, want, e.value.kind()),
        )
    }

    /// A string.
    pub fn str(&mut self, key: &str) -> Result<Option<String>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => Ok(Some(s.clone())),
            Some(e) => Self::mismatch(e, "a string"),
        }
    }

    /// A string kept with its line.
    pub fn str_at(&mut self, key: &str) -> Result<Option<(String, usize)>, Error> {
        let line = self.entries.iter().find(|e| e.key == key).map(|e| e.line);
        Ok(self.str(key)?.zip(line))
    }

    /// A path (a string).
    pub fn path(&mut self, key: &str) -> Result<Option<std::path::PathBuf>, Error> {
        Ok(self.str(key)?.map(Into::into))
    }

    /// A boolean.
    pub fn bool(&mut self, key: &str) -> Result<Option<bool>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(Entry {
                value: Value::Bool(b),
                ..
            }) => Ok(Some(*b)),
            Some(e) => Self::mismatch(e, "true or false"),
        }
    }

    /// An unsigned integer that fits `T`.
    pub fn uint<T: TryFrom<i64>>(&mut self, key: &str) -> Result<Option<T>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(
                e @ Entry {
                    value: Value::Int(v),
                    ..
                },
            ) => match T::try_from(*v) {
                Ok(t) if *v >= 0 => Ok(Some(t)),
                _ => err(e.line, format!("`{}` = {} is out of range", e.key, v)),
            },
            Some(e) => Self::mismatch(e, "a non-negative integer"),
        }
    }

    /// An array, each item converted by `item` (which names the entry in its errors).
    fn list<T>(
        &mut self,
        key: &str,
        what: &str,
        item: impl Fn(&Entry, &Value) -> Result<T, Error>,
    ) -> Result<Option<Vec<T>>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(e) => match &e.value {
                Value::Array(items) => items
                    .iter()
                    .map(|v| item(e, v))
                    .collect::<Result<_, _>>()
                    .map(Some),
                _ => Self::mismatch(e, what),
            },
        }
    }

    /// An array of strings.
    pub fn strs(&mut self, key: &str) -> Result<Option<Vec<String>>, Error> {
        self.list(key, "an array of strings", |e, v| match v {
            Value::Str(s) => Ok(s.clone()),
            other => err(
                e.line,
                format!("`{}` must hold strings, not {}", e.key, other.kind()),
            ),
        })
    }

    /// An array of unsigned integers that fit `T`.
    pub fn uints<T: TryFrom<i64>>(&mut self, key: &str) -> Result<Option<Vec<T>>, Error> {
        self.list(key, "an array of integers", |e, v| match v {
            Value::Int(i) if *i >= 0 => T::try_from(*i)
                .or_else(|_| err(e.line, format!("`{}`: {} is out of range", e.key, i))),
            other => err(
                e.line,
                format!(
                    "`{}` must hold non-negative integers, not {}",
                    e.key,
                    other.kind()
                ),
            ),
        })
    }

    /// Refuse keys nobody asked for.
    pub fn finish(self, known: &str) -> Result<(), Error> {
        match self.used.iter().position(|u| !u) {
            Some(i) => {
                let e = &self.entries[i];
                err(e.line, format!("unknown key `{}` in {}", e.key, known))
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subset_parses() {
        let d = parse(
            "# top\nname = \"x\" # trailing\n\n[observer]\nthreshold_ms = 1_500\nmode = '0o660'\n\
             hex = 0x1f\nneg = -3\non = true\nlist = [\n  \"a\", # one\n  \"b\\u00e9\\n\",\n]\n\
             nums = [1, 2,3]\n\n[[agent]]\nname = \"m\"\n[[agent]]\n\"quoted key\" = false\n",
        )
        .unwrap();
        assert_eq!(d.root[0].value, Value::Str("x".into()));
        let o = &d.tables[0];
        assert_eq!((o.name.as_str(), o.array, o.line), ("observer", false, 4));
        let mut f = Fields::new(&o.entries);
        assert_eq!(f.uint::<u64>("threshold_ms").unwrap(), Some(1500));
        assert_eq!(f.str("mode").unwrap().as_deref(), Some("0o660"));
        assert_eq!(f.uint::<u8>("hex").unwrap(), Some(31));
        assert!(f
            .uint::<u32>("neg")
            .unwrap_err()
            .msg
            .contains("out of range"));
        assert_eq!(f.bool("on").unwrap(), Some(true));
        assert_eq!(
            f.strs("list").unwrap().unwrap(),
            vec!["a".to_string(), "bé\n".to_string()]
        );
        assert_eq!(f.uints::<u32>("nums").unwrap().unwrap(), vec![1, 2, 3]);
        f.finish("[observer]").unwrap();
        assert_eq!(d.tables.len(), 3);
        assert!(d.tables[1].array && d.tables[2].array);
        assert_eq!(d.tables[2].entries[0].key, "quoted key");
    }

    #[test]
    fn errors_name_their_line() {
        let e = |t: &str| parse(t).unwrap_err();
        assert_eq!(e("[observer\n").line, 1);
        assert_eq!(e("a = 1\n\nb = \"open\n").line, 3);
        assert_eq!(e("a = 1\na = 2\n").line, 2);
        assert_eq!(e("[t]\n[t]\n").line, 2);
        assert_eq!(e("a = 1.5\n").line, 1);
        assert_eq!(e("a = {b = 1}\n").line, 1);
        assert_eq!(e("a.b = 1\n").line, 1);
        assert_eq!(e("a = 1 2\n").line, 1);
        assert_eq!(e("a = [1,\n2\n").line, 1);
        assert_eq!(e("a = 1979-05-27\n").line, 1);
        assert_eq!(e("a = \"\"\"x\"\"\"\n").line, 1);
        assert_eq!(e("a = 01\n").line, 1);
        assert_eq!(e("= 1\n").line, 1);
        let d = parse("[o]\nx = \"s\"\ny = 1\n").unwrap();
        let mut f = Fields::new(&d.tables[0].entries);
        let m = f.uint::<u64>("x").unwrap_err();
        assert_eq!(
            (m.line, m.msg.as_str()),
            (2, "`x` must be a non-negative integer, not a string")
        );
        let m = Fields::new(&d.tables[0].entries).finish("[o]").unwrap_err();
        assert_eq!(m.line, 2);
        assert!(m.msg.contains("unknown key `x`"));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for s in [
            "[",
            "[[",
            "a",
            "a =",
            "a = [",
            "a = \"\\u12\"",
            "\"",
            "'",
            "a = '\n",
            "[a]]",
        ] {
            let _ = parse(s);
        }
    }
}
