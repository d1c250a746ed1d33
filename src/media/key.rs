//! The object path of a stored item: a template over the item's content
//! hash, platform, type and extension (content-addressed: the same bytes
//! always get the same path), and the extension and MIME type of the bytes.

/// Longest template accepted.
const MAX_TEMPLATE_LEN: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Platform,
    Type,
    Ext,
    /// `{sha256}` or `{sha256:A:B}` (hex digits A..B).
    Sha256(usize, usize),
}

/// A parsed `[media] path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    parts: Vec<Part>,
    text: String,
}

/// What a path is rendered from.
#[derive(Debug, Clone, Copy)]
pub struct PathValues<'a> {
    pub platform: &'a str,
    pub kind: &'a str,
    pub sha256: &'a str,
    pub ext: &'a str,
}

impl PathTemplate {
    /// Parses a template; it must hold the whole `{sha256}` (so distinct
    /// bytes never share a path), no `..` segment and no empty one.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_TEMPLATE_LEN {
            return Err(format!(
                "is {} bytes long; at most {MAX_TEMPLATE_LEN}",
                text.len()
            ));
        }
        if text.chars().any(char::is_control) {
            return Err("holds a control character".into());
        }
        let trimmed = text.trim_start_matches('/');
        if trimmed.is_empty() || trimmed.ends_with('/') {
            return Err(format!("`{text}` names no file"));
        }
        if trimmed
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(format!(
                "`{text}` holds an empty, `.` or `..` segment: a path template names files inside its directory"
            ));
        }
        let parts = parse_parts(text)?;
        if !parts.contains(&Part::Sha256(0, 64)) {
            return Err(format!(
                "`{text}` lacks `{{sha256}}`: paths are content-addressed, so that distinct bytes never share a path"
            ));
        }
        Ok(PathTemplate {
            parts,
            text: text.to_owned(),
        })
    }

    /// Starts at the file system's root.
    pub fn is_absolute(&self) -> bool {
        self.text.starts_with('/')
    }

    /// The directory every path of the template is under: its literal start
    /// up to the last `/` before the first placeholder (`media/`), or empty.
    pub fn static_dir(&self) -> &str {
        let literal = self.text.split('{').next().unwrap_or("");
        match literal.rfind('/') {
            Some(i) => &self.text[..=i],
            None => "",
        }
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The path for these values.
    pub fn render(&self, v: &PathValues<'_>) -> String {
        let mut out = String::with_capacity(self.text.len() + 64);
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Platform => out.push_str(v.platform),
                Part::Type => out.push_str(v.kind),
                Part::Ext => out.push_str(v.ext),
                Part::Sha256(a, b) => out.push_str(v.sha256.get(*a..*b).unwrap_or(v.sha256)),
            }
        }
        out
    }
}

fn parse_parts(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(Part::Literal(rest[..open].to_owned()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("`{text}` has a `{{` without its `}}`"))?;
        parts.push(placeholder(&rest[open + 1..open + close])?);
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("`{text}` has a `}}` without its `{{`"));
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.to_owned()));
    }
    Ok(parts)
}

fn placeholder(name: &str) -> Result<Part, String> {
    match name {
        "platform" => Ok(Part::Platform),
        "type" => Ok(Part::Type),
        "ext" => Ok(Part::Ext),
        "sha256" => Ok(Part::Sha256(0, 64)),
        _ => {
            let range = name
                .strip_prefix("sha256:")
                .and_then(|r| r.split_once(':'))
                .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
                .filter(|(a, b)| a < b && *b <= 64);
            match range {
                Some((a, b)) => Ok(Part::Sha256(a, b)),
                None => Err(format!(
                    "`{{{}}}` is not a placeholder: use {{platform}}, {{type}}, {{ext}}, {{sha256}} or {{sha256:A:B}} (hex digits A to B, B at most 64)",
                    name.escape_debug()
                )),
            }
        }
    }
}

/// Extensions and MIME types we know, both ways.
const TYPES: [(&str, &str); 16] = [
    ("jpg", "image/jpeg"),
    ("png", "image/png"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("mov", "video/quicktime"),
    ("oga", "audio/ogg"),
    ("ogg", "audio/ogg"),
    ("mp3", "audio/mpeg"),
    ("m4a", "audio/mp4"),
    ("pdf", "application/pdf"),
    ("tgs", "application/x-tgsticker"),
    ("txt", "text/plain"),
    ("zip", "application/zip"),
    ("json", "application/json"),
];

/// The MIME type: the platform's or the server's when it is specific, else
/// from the extension, else `application/octet-stream`.
pub fn content_type(given: &[Option<&str>], ext: &str) -> String {
    given
        .iter()
        .flatten()
        .map(|t| t.split(';').next().unwrap_or("").trim())
        .find(|t| is_mime(t) && *t != "application/octet-stream")
        .map(str::to_ascii_lowercase)
        .or_else(|| {
            TYPES
                .iter()
                .find(|(e, _)| *e == ext)
                .map(|(_, t)| (*t).to_owned())
        })
        .unwrap_or_else(|| "application/octet-stream".to_owned())
}

fn is_mime(t: &str) -> bool {
    t.len() <= 100
        && t.split_once('/').is_some_and(|(a, b)| {
            let ok = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
            };
            ok(a) && ok(b)
        })
}

/// The extension of a file name or URL path (`photos/file_7.JPG?x=1` →
/// `jpg`): 1 to 8 ASCII letters and digits, lowercased; else from the MIME
/// type; else `bin`.
pub fn extension(path: Option<&str>, mime: Option<&str>) -> String {
    let from_path = path
        .map(|p| p.split(['?', '#']).next().unwrap_or(""))
        .and_then(|p| p.rsplit('/').next())
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .filter(|e| (1..=8).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_alphanumeric()));
    let ext = from_path.or_else(|| {
        let mime = mime?.split(';').next()?.trim().to_ascii_lowercase();
        TYPES
            .iter()
            .find(|(_, t)| *t == mime)
            .map(|(e, _)| (*e).to_owned())
    });
    match ext.as_deref() {
        Some("jpeg") => "jpg".to_owned(),
        Some(e) => e.to_owned(),
        None => "bin".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> PathValues<'static> {
        PathValues {
            platform: "telegram",
            kind: "photo",
            sha256: "ab12cdef00000000000000000000000000000000000000000000000000000099",
            ext: "jpg",
        }
    }

    #[test]
    fn the_default_path_is_content_addressed() {
        let t = PathTemplate::parse(super::super::config::DEFAULT_PATH).unwrap();
        assert_eq!(
            t.render(&values()),
            "media/telegram/ab/ab12cdef00000000000000000000000000000000000000000000000000000099.jpg"
        );
        assert_eq!(t.static_dir(), "media/");
        let t = PathTemplate::parse("/data/{type}/{sha256:2:6}/{sha256}").unwrap();
        assert!(t.is_absolute());
        assert_eq!(t.static_dir(), "/data/");
        assert_eq!(PathTemplate::parse("{sha256}").unwrap().static_dir(), "");
        assert_eq!(
            t.render(&values()),
            "/data/photo/12cd/ab12cdef00000000000000000000000000000000000000000000000000000099"
        );
    }

    #[test]
    fn bad_templates_say_why() {
        for bad in [
            "",
            "/",
            "media/",
            "media/{platform}.{ext}",
            "media/{sha256:0:2}.{ext}",
            "media/{sha256}/../x",
            "media//{sha256}",
            "./{sha256}",
            "{sha256",
            "{sha256}}",
            "{sha256:2:2}{sha256}",
            "{sha256:0:65}{sha256}",
            "{sha256:a:b}{sha256}",
            "{SHA256}",
            "{sha256}\n",
            "{sha256}\u{0}",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad:?}");
        }
        assert!(PathTemplate::parse(&format!("{}{{sha256}}", "x".repeat(600))).is_err());
    }

    #[test]
    fn extensions_and_types_come_from_the_best_source() {
        assert_eq!(extension(Some("photos/file_7.JPG"), None), "jpg");
        assert_eq!(extension(Some("https://h/m/x.jpeg?name=orig"), None), "jpg");
        assert_eq!(extension(Some("videos/v.mp4"), Some("image/png")), "mp4");
        assert_eq!(extension(Some("voice/file"), Some("audio/ogg")), "oga");
        assert_eq!(extension(Some("a/b.../"), None), "bin");
        assert_eq!(extension(Some("a/b.sh%2F..%2Fx"), None), "bin");
        assert_eq!(extension(Some("a/b.toolongext"), None), "bin");
        assert_eq!(extension(None, None), "bin");
        assert_eq!(
            content_type(&[Some("image/jpeg; q=1")], "bin"),
            "image/jpeg"
        );
        assert_eq!(
            content_type(&[Some("application/octet-stream"), None], "mp4"),
            "video/mp4"
        );
        assert_eq!(
            content_type(&[Some("<script>")], "zzz"),
            "application/octet-stream"
        );
        assert_eq!(content_type(&[None, Some("Video/MP4")], "bin"), "video/mp4");
    }
}
