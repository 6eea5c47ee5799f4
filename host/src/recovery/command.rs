//! Recovery command templates: splitting a `--recovery-exec` string into an argv (never a
//! shell), substituting `{pid}`, `{name}` and `{status}`, and the environment allow-list.
//!
//! Quoting rules of the string form (the config file takes an argv list and needs none):
//! words are separated by blanks; `'...'` keeps everything literally; `"..."` keeps blanks
//! and honours `\"` and `\\`; outside quotes `\` takes the next character literally.
//! Nothing else is special: no `$` expansion, no globbing, no `;`, `|` or redirection.

use std::ffi::OsString;

/// Environment variables passed to recovery commands when the operator gives no list.
pub const DEFAULT_ENV_ALLOW: &[&str] = &["PATH", "LANG", "LC_ALL", "TZ"];

/// `PATH` for recovery commands when the observer's own environment has none.
pub const FALLBACK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Split a command string into words following the quoting rules above.
pub fn split(s: &str) -> Result<Vec<String>, String> {
    // An argv cannot carry NUL bytes (exec would cut the argument there), quoted or not.
    if s.contains('\0') {
        return Err("NUL byte in command".into());
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err("trailing backslash".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    if out.is_empty() {
        return Err("empty command".into());
    }
    Ok(out)
}

/// Parse `--recovery-exec`: split it, and when it names no placeholder at all append
/// `{pid}` as the last argument (the published observer's convention).
pub fn parse_exec_flag(s: &str) -> Result<Vec<String>, String> {
    let mut argv = split(s)?;
    if !argv.iter().any(|a| has_placeholder(a)) {
        argv.push("{pid}".into());
    }
    Ok(argv)
}

fn has_placeholder(a: &str) -> bool {
    a.contains("{pid}") || a.contains("{name}") || a.contains("{status}")
}

/// Values substituted into a template.
#[derive(Clone, Copy, Debug)]
pub struct Vars<'a> {
    /// Agent pid.
    pub pid: u32,
    /// Agent name.
    pub name: &'a str,
    /// What set the recovery off (`stall`, `terminal`, `exited`, `critical`).
    pub status: &'a str,
}

/// Substitute the placeholders in every argument. Each argument stays one argument, whatever
/// the values contain.
pub fn render(template: &[String], v: &Vars<'_>) -> Vec<String> {
    let pid = v.pid.to_string();
    template
        .iter()
        .map(|a| {
            a.replace("{pid}", &pid)
                .replace("{name}", v.name)
                .replace("{status}", v.status)
        })
        .collect()
}

/// The environment a recovery command gets: the allow-listed variables from `source` (with
/// a safe `PATH` when there is none), plus `VARTA_PID`, `VARTA_NAME`, `VARTA_STATUS` and
/// `VARTA_ATTEMPT`.
pub fn environment<I>(
    allow: &[String],
    source: I,
    v: &Vars<'_>,
    attempt: u16,
) -> Vec<(OsString, OsString)>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    let mut env: Vec<(OsString, OsString)> = source
        .into_iter()
        .filter(|(k, _)| allow.iter().any(|a| k == a.as_str()))
        .collect();
    if allow.iter().any(|a| a == "PATH") && !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), FALLBACK_PATH.into()));
    }
    env.push(("VARTA_PID".into(), v.pid.to_string().into()));
    env.push(("VARTA_NAME".into(), v.name.into()));
    env.push(("VARTA_STATUS".into(), v.status.into()));
    env.push(("VARTA_ATTEMPT".into(), attempt.to_string().into()));
    env.sort();
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn split_follows_the_documented_quoting() {
        assert_eq!(split("a b\tc").unwrap(), v(&["a", "b", "c"]));
        assert_eq!(split("  a   ").unwrap(), v(&["a"]));
        assert_eq!(split("'a b' \"c d\"").unwrap(), v(&["a b", "c d"]));
        assert_eq!(split(r#""say \"hi\" \n""#).unwrap(), v(&[r#"say "hi" \n"#]));
        assert_eq!(split(r"a\ b").unwrap(), v(&["a b"]));
        assert_eq!(split("''").unwrap(), v(&[""]));
        assert_eq!(split("x$HOME;rm *").unwrap(), v(&["x$HOME;rm", "*"]));
        assert!(split("'open").is_err());
        assert!(split("\"open").is_err());
        assert!(split("a\\").is_err());
        assert!(split("   ").is_err());
        assert!(split("a\0b").is_err());
        assert!(split("'a\0b'").is_err(), "not even quoted");
    }

    #[test]
    fn exec_flag_appends_the_pid_unless_a_placeholder_is_used() {
        assert_eq!(
            parse_exec_flag("/usr/bin/restart --fast").unwrap(),
            v(&["/usr/bin/restart", "--fast", "{pid}"])
        );
        assert_eq!(
            parse_exec_flag("systemctl restart {name}.service").unwrap(),
            v(&["systemctl", "restart", "{name}.service"])
        );
    }

    #[test]
    fn render_keeps_each_argument_whole() {
        let t = v(&["kill", "-TERM", "{pid}", "--why={status}", "{name}"]);
        let out = render(
            &t,
            &Vars {
                pid: 42,
                name: "a b; rm -rf /",
                status: "stall",
            },
        );
        assert_eq!(
            out,
            v(&["kill", "-TERM", "42", "--why=stall", "a b; rm -rf /"])
        );
    }

    #[test]
    fn environment_is_the_allow_list_plus_varta_variables() {
        let src = vec![
            ("PATH".into(), "/bin".into()),
            ("HOME".into(), "/root".into()),
            ("SECRET".into(), "x".into()),
            ("TZ".into(), "UTC".into()),
        ];
        let vars = Vars {
            pid: 7,
            name: "modem",
            status: "terminal",
        };
        let env = environment(&v(&["PATH", "TZ"]), src, &vars, 2);
        let keys: Vec<_> = env.iter().map(|(k, _)| k.to_str().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "PATH",
                "TZ",
                "VARTA_ATTEMPT",
                "VARTA_NAME",
                "VARTA_PID",
                "VARTA_STATUS"
            ]
        );
        assert!(env.contains(&("VARTA_ATTEMPT".into(), "2".into())));
        let env = environment(&v(&["PATH"]), Vec::new(), &vars, 1);
        assert!(env.contains(&("PATH".into(), FALLBACK_PATH.into())));
    }
}
