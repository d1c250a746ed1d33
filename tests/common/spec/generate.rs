//! Payloads built from the published schemas: a random instance of a JSON
//! Schema (as [`super::openapi`] and [`super::telegram`] convert the specs),
//! seeded so that a failing case is named by its seed. Required members
//! always, optional ones at random (fewer the deeper), strings from a set that
//! stresses escaping (quotes, backslashes, newlines, emoji, right-to-left and
//! control characters), the id and code patterns the specs use.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

/// Texts that stress a JSON writer and a normalizer.
const TEXTS: [&str; 12] = [
    "hello",
    "",
    "quote \" and backslash \\ and slash /",
    "line one\nline two\r\n\ttab",
    "emoji 👋🏽 and 𝕏",
    "مرحبا بالعالم",
    "日本語のテキスト",
    "control \u{0001}\u{001f} and \u{007f}",
    "right-to-left \u{202e}override\u{202c}",
    "a long one a long one a long one a long one a long one a long one",
    "<script>alert(1)</script>",
    "zero\u{0000}byte",
];

pub struct Gen<'a> {
    /// The document `$ref`s point into.
    root: &'a Value,
    pub rng: StdRng,
    depth: usize,
    /// Values made so far: past [`NODE_BUDGET`] arrays take their fewest items
    /// and objects only their required members, so a seed cannot make a
    /// document so large that its check takes minutes (required members that
    /// nest arrays of objects grow exponentially with depth otherwise).
    nodes: usize,
}

/// See [`Gen::nodes`].
const NODE_BUDGET: usize = 400;

/// A schema whose instances hold no other schema's: a scalar type.
fn is_leaf(schema: &Value) -> bool {
    schema.get("$ref").is_none()
        && matches!(
            schema.get("type").and_then(Value::as_str),
            Some("string" | "integer" | "number" | "boolean")
        )
}

impl<'a> Gen<'a> {
    pub fn new(root: &'a Value, seed: u64) -> Gen<'a> {
        Gen {
            root,
            rng: StdRng::seed_from_u64(seed),
            depth: 0,
            nodes: 0,
        }
    }

    pub fn text(&mut self) -> String {
        let mut s = TEXTS[self.rng.random_range(0..TEXTS.len())].to_owned();
        if self.rng.random_bool(0.3) {
            s.push_str(TEXTS[self.rng.random_range(0..TEXTS.len())]);
        }
        s
    }

    pub fn digits(&mut self, min: usize, max: usize) -> String {
        let n = self.rng.random_range(min..=max);
        let mut s: String = (0..n)
            .map(|_| char::from(b'0' + self.rng.random_range(0..10u8)))
            .collect();
        if n > 1 && s.starts_with('0') {
            s.replace_range(0..1, "1");
        }
        s
    }

    /// A string matching `pattern`, for the patterns the specs use.
    fn pattern(&mut self, pattern: &str) -> String {
        if pattern.contains("https?://") {
            return format!("{} https://example.com/{}", self.text(), self.digits(1, 5));
        }
        // `^[class]{m,n}$`, `^[class]{n}$`, `^[class]+$`.
        let inner = pattern.trim_start_matches('^').trim_end_matches('$');
        let Some((class, count)) = inner.strip_prefix('[').and_then(|r| r.split_once(']')) else {
            return "x".into();
        };
        let (min, max) = match count {
            "+" => (1, 12),
            c => {
                let c = c.trim_start_matches('{').trim_end_matches('}');
                match c.split_once(',') {
                    Some((a, b)) => (a.parse().unwrap_or(1), b.parse().unwrap_or(12)),
                    None => {
                        let n = c.parse().unwrap_or(1);
                        (n, n)
                    }
                }
            }
        };
        let mut chars = Vec::new();
        let bytes: Vec<char> = class.chars().collect();
        let mut i = 0;
        while i < bytes.len() {
            if i + 2 < bytes.len() && bytes[i + 1] == '-' {
                chars.extend(bytes[i]..=bytes[i + 2]);
                i += 3;
            } else {
                chars.push(bytes[i]);
                i += 1;
            }
        }
        if class == "0-9" {
            return self.digits(min, max);
        }
        let n = self.rng.random_range(min..=max);
        (0..n)
            .map(|_| chars[self.rng.random_range(0..chars.len())])
            .collect()
    }

    fn resolve(&self, r: &str) -> &'a Value {
        self.root
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {r}"))
    }

    /// A random instance of `schema`.
    pub fn value(&mut self, schema: &Value) -> Value {
        self.depth += 1;
        self.nodes += 1;
        let v = self.value_inner(schema);
        self.depth -= 1;
        v
    }

    fn value_inner(&mut self, schema: &Value) -> Value {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let target = self.resolve(r);
            return self.value(target);
        }
        if let Some(c) = schema.get("const") {
            return c.clone();
        }
        if let Some(Value::Array(e)) = schema.get("enum") {
            let choices: Vec<&Value> = e.iter().filter(|v| !v.is_null()).collect();
            return choices[self.rng.random_range(0..choices.len())].clone();
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(alts)) = schema.get(key) {
                let mut alts: Vec<&Value> = alts.iter().filter(|a| a["type"] != "null").collect();
                // Deep down, a recursive union (`RichText` holds `RichText`)
                // ends on a leaf alternative where it has one.
                if self.depth > 6 || self.nodes > NODE_BUDGET {
                    let leaves: Vec<&Value> = alts.iter().copied().filter(|a| is_leaf(a)).collect();
                    if !leaves.is_empty() {
                        alts = leaves;
                    }
                }
                let pick = alts[self.rng.random_range(0..alts.len())];
                return self.value(pick);
            }
        }
        if let Some(Value::Array(branches)) = schema.get("allOf") {
            // A discriminated union (openapi.rs): one branch's `then`.
            if branches.iter().all(|b| b.get("then").is_some()) {
                let b = &branches[self.rng.random_range(0..branches.len())];
                return self.value(&b["then"]);
            }
            // A subtype with its discriminator checked first (telegram.rs):
            // the type itself is the last branch and holds the `const`.
            if let Some(last) = branches.last() {
                return self.value(last);
            }
        }
        let kind = match schema.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("null")
                .to_owned(),
            _ if schema.get("properties").is_some() => "object".into(),
            _ => "string".into(),
        };
        match kind.as_str() {
            "object" => self.object(schema),
            "array" => {
                let min = schema["minItems"].as_u64().unwrap_or(0) as usize;
                let most = schema["maxItems"]
                    .as_u64()
                    .map_or(usize::MAX, |m| m as usize);
                let max = if self.depth > 6 || self.nodes > NODE_BUDGET {
                    min
                } else {
                    min.max(3).min(most)
                };
                let n = self.rng.random_range(min..=max);
                let items = schema.get("items").cloned().unwrap_or(json!({}));
                let mut out: Vec<Value> = (0..n).map(|_| self.value(&items)).collect();
                if schema["uniqueItems"] == true {
                    out.dedup();
                    let mut seen = Vec::new();
                    out.retain(|v| {
                        let fresh = !seen.contains(v);
                        seen.push(v.clone());
                        fresh
                    });
                }
                Value::Array(out)
            }
            "integer" => {
                let min = schema["minimum"].as_i64().unwrap_or(0);
                let max = schema["maximum"].as_i64().unwrap_or(min + 1_000_000);
                json!(self.rng.random_range(min..=max))
            }
            "number" => json!(self.rng.random_range(-90.0..90.0f64)),
            "boolean" => json!(self.rng.random_bool(0.5)),
            "null" => Value::Null,
            _ => self.string(schema),
        }
    }

    fn string(&mut self, schema: &Value) -> Value {
        if let Some(p) = schema["pattern"].as_str() {
            return json!(self.pattern(p));
        }
        if schema["format"] == "date-time" {
            let secs = self.rng.random_range(1_500_000_000..1_800_000_000i64);
            let t = chrono::DateTime::from_timestamp(secs, 0).unwrap();
            return json!(t.format("%Y-%m-%dT%H:%M:%S.000Z").to_string());
        }
        if schema["format"] == "uri" {
            return json!(format!("https://example.com/{}", self.digits(1, 6)));
        }
        let mut s = self.text();
        let min = schema["minLength"].as_u64().unwrap_or(0) as usize;
        let max = schema["maxLength"].as_u64().map(|m| m as usize);
        while s.chars().count() < min {
            s.push('x');
        }
        if let Some(max) = max {
            s = s.chars().take(max).collect();
        }
        json!(s)
    }

    fn object(&mut self, schema: &Value) -> Value {
        let mut out = Map::new();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let chance = match self.depth {
            _ if self.nodes > NODE_BUDGET => 0.0,
            0..=2 => 0.6,
            3..=4 => 0.3,
            _ => 0.0,
        };
        if let Some(props) = schema["properties"].as_object() {
            for (name, s) in props {
                if required.contains(&name.as_str()) || self.rng.random_bool(chance) {
                    let v = self.value(s);
                    out.insert(name.clone(), v);
                }
            }
        }
        Value::Object(out)
    }
}
