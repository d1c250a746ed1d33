//! The Prometheus text format (0.0.4), as much of it as `/metrics` writes:
//! `# HELP` / `# TYPE` comments, and `name{label="value",...} value [timestamp]`
//! lines. Strict: a line that is neither is an error naming the line, since
//! the body is then not what an ingest run serves.

/// One sample: a metric name, its labels, its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Series {
    /// The value of label `key`, or "".
    pub fn label(&self, key: &str) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Why a line is not a sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}: {text:?}")]
pub struct ParseError {
    pub line: usize,
    pub reason: &'static str,
    /// The line's first 80 characters.
    pub text: String,
}

fn is_name_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
}

/// Splits a metric or label name off the front of `s`.
fn name(s: &str) -> Option<(&str, &str)> {
    let end = s
        .char_indices()
        .find(|(i, c)| !is_name_char(*c, *i == 0))
        .map_or(s.len(), |(i, _)| i);
    (end > 0).then(|| s.split_at(end))
}

/// A sample's labels, in order.
type Labels = Vec<(String, String)>;

/// Parses `{k="v",...}` off the front of `s` (which starts after the `{`).
fn labels(mut s: &str) -> Result<(Labels, &str), &'static str> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((out, rest));
        }
        let (key, rest) = name(s).ok_or("a label without a name")?;
        let mut rest = rest
            .trim_start()
            .strip_prefix("=\"")
            .ok_or("a label without =\"value\"")?;
        let mut value = String::new();
        loop {
            let mut chars = rest.chars();
            match chars.next().ok_or("an unterminated label value")? {
                '"' => break,
                '\\' => match chars.next().ok_or("an unterminated label value")? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                c => value.push(c),
            }
            rest = chars.as_str();
        }
        rest = &rest[1..];
        out.push((key.to_owned(), value));
        s = rest.trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

fn number(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        s => s.parse().ok(),
    }
}

fn sample(line: &str) -> Result<Series, &'static str> {
    let (metric, rest) = name(line).ok_or("not a metric name")?;
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inner) => labels(inner)?,
        None => (Vec::new(), rest),
    };
    let mut fields = rest.split_whitespace();
    let value = fields
        .next()
        .and_then(number)
        .ok_or("no number after the name")?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| "a timestamp that is not an integer")?;
    }
    if fields.next().is_some() {
        return Err("text after the value");
    }
    Ok(Series {
        name: metric.to_owned(),
        labels,
        value,
    })
}

/// Every sample of a `/metrics` body.
pub fn parse(body: &str) -> Result<Vec<Series>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in body.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(sample(line).map_err(|reason| ParseError {
            line: i + 1,
            reason,
            text: line.chars().take(80).collect(),
        })?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_labels_escapes_and_timestamps() {
        let body = "# HELP x y\n# TYPE a counter\na_total{sink=\"s\\\"1\",type=\"file\"} 12 1700000000\nb 0.5\nc{} NaN\n";
        let s = parse(body).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].name, "a_total");
        assert_eq!(s[0].label("sink"), "s\"1");
        assert_eq!(s[0].label("type"), "file");
        assert_eq!(s[0].value, 12.0);
        assert_eq!(s[1].value, 0.5);
        assert!(s[2].value.is_nan());
    }

    #[test]
    fn junk_is_an_error_naming_the_line() {
        for (body, line) in [
            ("ok 1\n<html>", 2),
            ("x{a=\"1} 2", 1),
            ("x{a=1} 2", 1),
            ("x one", 1),
            ("x 1 2 3", 1),
            ("x", 1),
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.line, line, "{body}: {e}");
        }
    }
}
