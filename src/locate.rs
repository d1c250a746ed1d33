//! Where in a TOML file a field is written, for errors that name the file,
//! the line and the field: a config file's, a rules file's.

use std::path::{Path, PathBuf};

/// A config problem: what, where (file, line, field) and why. Exit code 78.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A rules file (`--rules`, `[twitter] rules`) that cannot be read.
    #[error("cannot read rules file {path}: {source}")]
    ReadRules {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", location(path, *line, field))]
    Invalid {
        path: Option<PathBuf>,
        line: Option<usize>,
        field: String,
        message: String,
    },
}

/// Errors of resolving a command's settings: bad config (78) or bad usage (2).
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
}

/// The config file a connector resolves its table against: its path and
/// text, so that an error names the file, the line and the field.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileAt<'a> {
    pub path: Option<&'a Path>,
    pub text: &'a str,
}

impl FileAt<'_> {
    /// An error about `field` (a dotted path such as `twitter.stall_timeout`), pointing at its line.
    pub fn error(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.map(Path::to_owned),
            line: find_field_line(self.text, field),
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// A bad value from a flag (a usage error naming `--flag`) or from the
    /// file (a config error at `table.field`'s line).
    pub fn bad(&self, from_file: Option<&str>, flag: &str, message: String) -> ResolveError {
        match from_file {
            Some(field) => self.error(field, message).into(),
            None => ResolveError::Usage(format!("--{flag}: {message}")),
        }
    }
}

pub(crate) fn location(path: &Option<PathBuf>, line: Option<usize>, field: &str) -> String {
    let mut s = match path {
        Some(p) => format!("config error in {}", p.display()),
        None => "config error".to_owned(),
    };
    if let Some(line) = line {
        s.push_str(&format!(" line {line}"));
    }
    if !field.is_empty() {
        s.push_str(&format!(", field `{field}`"));
    }
    s
}

/// The 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The dotted table path in force at `line` (1-based): the last `[header]` above it.
pub(crate) fn table_at(text: &str, line: usize) -> String {
    let mut table = String::new();
    for l in text.lines().take(line) {
        if let Some(h) = header_path(l) {
            table = h;
        }
    }
    table
}

/// The dotted path a `[table]` or `[[array]]` header line names, quotes and
/// escapes resolved (`[sinks."a]b"]` is `sinks.a]b`).
pub(crate) fn header_path(line: &str) -> Option<String> {
    let rest = line.trim().strip_prefix('[')?;
    let rest = rest.strip_prefix('[').unwrap_or(rest);
    // The header ends at the first `]` outside quotes.
    let (mut quote, mut escaped, mut end) = (None, false, rest.len());
    for (i, c) in rest.char_indices() {
        match (quote, c) {
            (Some('"'), _) if escaped => escaped = false,
            (Some('"'), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, ']') => {
                end = i;
                break;
            }
            (None, _) => {}
        }
    }
    let key = &rest[..end];
    // TOML itself reads the dotted key; a broken one is taken as written.
    let Ok(mut table) = toml::from_str::<toml::Table>(&format!("{key} = 0")) else {
        return Some(key.trim().replace(['"', '\'', ' '], ""));
    };
    let mut path = Vec::new();
    while let Some((k, v)) = table.into_iter().next() {
        path.push(k);
        match v {
            toml::Value::Table(inner) => table = inner,
            _ => break,
        }
    }
    Some(path.join("."))
}

/// The key written on a line, if it is a `key = value` line.
pub(crate) fn key_on_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?.trim();
    if l.starts_with('[') || l.starts_with('#') {
        return None;
    }
    let key = l.split('=').next()?.trim();
    (!key.is_empty() && !key.contains(' ')).then(|| key.trim_matches('"').to_owned())
}

/// Turns a parse error's position into (line, dotted field). When the error names
/// a field (`unknown field `x``, `missing field `y``) that sits inside the spanned
/// table, the line of that field is used.
pub(crate) fn locate(text: &str, offset: usize, message: &str) -> (Option<usize>, String) {
    let mut line = line_of(text, offset);
    let named = message.split('`').nth(1).map(str::to_owned);
    if let (Some(name), true) = (&named, message.starts_with("unknown field")) {
        // The span covers the whole table; find the offending key inside it.
        let table = table_at(text, line);
        let start_line = line;
        for (i, l) in text.lines().enumerate().skip(start_line - 1) {
            let t = l.trim();
            if i + 1 > start_line && t.starts_with('[') && table_at(text, i + 1) != table {
                break;
            }
            if key_on_line(text, i + 1).as_deref() == Some(name.as_str()) {
                line = i + 1;
                break;
            }
        }
    }
    let table = table_at(text, line);
    // An unknown table (`[twiter]`) is reported on its header: the field is
    // the table itself, not `twiter.twiter`.
    let header = text
        .lines()
        .nth(line.saturating_sub(1))
        .is_some_and(|l| l.trim_start().starts_with('['));
    if header && named.as_deref() == table.rsplit('.').next() {
        return (Some(line), table);
    }
    let key = key_on_line(text, line).or_else(|| {
        if message.starts_with("missing field") || message.starts_with("unknown field") {
            named.clone()
        } else {
            None
        }
    });
    let field = match (table.is_empty(), key) {
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{table}.{k}"),
        (_, None) => table,
    };
    (Some(line), field)
}

/// The line where a dotted field (`sinks.lake.format` or `sinks.lake`) is
/// written. A key may itself hold dots (`properties."sasl.password"`): a key
/// line matches when its table and key together spell the field.
pub fn find_field_line(text: &str, field: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().starts_with('[') {
            current = table_at(text, i + 1);
            if current == field {
                return Some(i + 1);
            }
            continue;
        }
        let Some(key) = key_on_line(text, i + 1) else {
            continue;
        };
        let spelled = if current.is_empty() {
            field == key
        } else {
            field.len() == current.len() + 1 + key.len()
                && field.starts_with(current.as_str())
                && field[current.len()..].starts_with('.')
                && field.ends_with(key.as_str())
        };
        if spelled {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_found_on_its_own_line_even_with_dots_in_its_key() {
        let text = "[sinks.bus]\ntype = \"kafka\"\n[sinks.bus.properties]\n\"sasl.username\" = \"u\"\n\"sasl.password\" = \"${P}\"\n";
        assert_eq!(find_field_line(text, "sinks.bus.type"), Some(2));
        assert_eq!(find_field_line(text, "sinks.bus.properties"), Some(3));
        assert_eq!(
            find_field_line(text, "sinks.bus.properties.sasl.password"),
            Some(5)
        );
        assert_eq!(find_field_line(text, "sinks.bus.properties.sasl"), None);
        assert_eq!(find_field_line("top = 1\n", "top"), Some(1));
    }
}
