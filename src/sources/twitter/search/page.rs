//! One search page (`data`, `includes`, `meta`, maybe `errors`) cut into one
//! stream-shaped line per post: `{"data": post, "includes": {…}}` with the
//! expanded objects that post refers to. The stream's normalizer turns each
//! line into a record, so a post makes the same record whichever endpoint
//! delivered it.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::value::RawValue;

/// The kinds of `includes`, in the order a line lists them, and the field
/// that identifies an object of each.
const INCLUDE_KINDS: [(&str, &str); 5] = [
    ("users", "id"),
    ("tweets", "id"),
    ("media", "media_key"),
    ("places", "id"),
    ("polls", "id"),
];

/// `meta` of a page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Meta {
    #[serde(default)]
    pub newest_id: Option<String>,
    #[serde(default)]
    pub oldest_id: Option<String>,
    #[serde(default)]
    pub result_count: Option<u64>,
    #[serde(default)]
    pub next_token: Option<String>,
}

/// Longest `next_token` taken from a page (X's are a few dozen characters):
/// a longer one is a broken or hostile page, and no URL could carry it.
pub const MAX_TOKEN_BYTES: usize = 1024;

/// Whether `id` is a post id as X writes them: 1 to 19 ASCII digits (a `u64`).
pub fn is_post_id(id: &str) -> bool {
    (1..=19).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

/// A parsed page: its meta and one line per post, in page order (newest first).
#[derive(Debug)]
pub struct Page {
    pub meta: Meta,
    pub lines: Vec<Vec<u8>>,
    /// The id of each line's post (`None`: the post has no `id`; the
    /// normalizer dead-letters it).
    pub ids: Vec<Option<u64>>,
    /// Partial errors X reported beside the data (objects it could not expand).
    pub partial_errors: usize,
}

/// Why a page is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PageError {
    #[error("the search page is not valid JSON: {0}")]
    Json(String),
    #[error("the search page has no `meta` object")]
    NoMeta,
    #[error("the search page's `data` is not an array")]
    DataNotArray,
    #[error(
        "the search page says `result_count` {said} but holds {held} posts: it looks truncated"
    )]
    CountMismatch { said: u64, held: usize },
    #[error("the search page's {field} is {value}, not a post id (1 to 19 digits)")]
    BadId { field: &'static str, value: String },
    #[error("the search page's `next_token` is {len} bytes long (at most {MAX_TOKEN_BYTES})")]
    LongToken { len: usize },
}

/// A value for a message: cut to 40 characters, quoted and escaped.
fn shown(v: &str) -> String {
    let cut: String = v.chars().take(40).collect();
    let more = if cut.len() < v.len() { "…" } else { "" };
    format!("{cut:?}{more}")
}

/// The `id` of a post, for the check.
#[derive(Deserialize)]
struct PostId<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

/// The id of a post: `Ok(None)` when it has none (or is not an object: the
/// normalizer refuses it), an error when it has one that is not a post id.
fn post_id(post: &RawValue) -> Result<Option<u64>, PageError> {
    if !post.get().starts_with('{') {
        return Ok(None);
    }
    let Ok(PostId { id: Some(raw) }) = serde_json::from_str::<PostId<'_>>(post.get()) else {
        return Ok(None);
    };
    let text = raw.get();
    let bad = || PageError::BadId {
        field: "post id",
        value: shown(text),
    };
    let digits = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|t| is_post_id(t))
        .ok_or_else(bad)?;
    digits.parse().map(Some).map_err(|_| bad())
}

/// Checks `meta`: its ids are post ids, its token fits a URL.
fn check_meta(meta: &Meta) -> Result<(), PageError> {
    for (field, v) in [
        ("`newest_id`", &meta.newest_id),
        ("`oldest_id`", &meta.oldest_id),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !is_post_id(v)) {
            return Err(PageError::BadId {
                field,
                value: shown(v),
            });
        }
    }
    match meta.next_token.as_deref() {
        Some(t) if t.len() > MAX_TOKEN_BYTES => Err(PageError::LongToken { len: t.len() }),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct RawPage<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    includes: Option<RawIncludes<'a>>,
    #[serde(default)]
    meta: Option<Meta>,
    #[serde(borrow, default)]
    errors: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize, Default)]
struct RawIncludes<'a> {
    #[serde(borrow, default)]
    users: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    tweets: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    media: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    places: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    polls: Vec<&'a RawValue>,
}

impl<'a> RawIncludes<'a> {
    fn kind(&self, name: &str) -> &[&'a RawValue] {
        match name {
            "users" => &self.users,
            "tweets" => &self.tweets,
            "media" => &self.media,
            "places" => &self.places,
            _ => &self.polls,
        }
    }
}

/// An included object's key fields.
#[derive(Deserialize, Default)]
struct Keyed {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    media_key: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    author_id: Option<String>,
}

/// What a post refers to, by expansion.
#[derive(Deserialize, Default)]
struct Refers {
    #[serde(default)]
    author_id: Option<String>,
    #[serde(default)]
    in_reply_to_user_id: Option<String>,
    #[serde(default)]
    referenced_tweets: Vec<Keyed>,
    #[serde(default)]
    attachments: Option<Attachments>,
    #[serde(default)]
    geo: Option<Geo>,
    #[serde(default)]
    entities: Option<Entities>,
}

#[derive(Deserialize, Default)]
struct Attachments {
    #[serde(default)]
    media_keys: Vec<String>,
    #[serde(default)]
    poll_ids: Vec<String>,
}

#[derive(Deserialize, Default)]
struct Geo {
    #[serde(default)]
    place_id: Option<String>,
}

#[derive(Deserialize, Default)]
struct Entities {
    #[serde(default)]
    mentions: Vec<Keyed>,
}

/// The keys (ids, media keys, usernames) a post refers to, per include kind.
#[derive(Default)]
struct Wanted {
    users: HashSet<String>,
    usernames: HashSet<String>,
    tweets: HashSet<String>,
    media: HashSet<String>,
    places: HashSet<String>,
    polls: HashSet<String>,
}

impl Wanted {
    fn of(post: &RawValue) -> Wanted {
        let r: Refers = serde_json::from_str(post.get()).unwrap_or_default();
        let mut w = Wanted::default();
        w.users.extend(r.author_id);
        w.users.extend(r.in_reply_to_user_id);
        w.tweets
            .extend(r.referenced_tweets.into_iter().filter_map(|t| t.id));
        if let Some(a) = r.attachments {
            w.media.extend(a.media_keys);
            w.polls.extend(a.poll_ids);
        }
        w.places.extend(r.geo.and_then(|g| g.place_id));
        for m in r.entities.map(|e| e.mentions).unwrap_or_default() {
            w.users.extend(m.id);
            w.usernames.extend(m.username);
        }
        w
    }

    fn wants(&self, kind: &str, k: &Keyed) -> bool {
        let id = k.id.as_deref().unwrap_or("");
        match kind {
            "users" => {
                self.users.contains(id)
                    || k.username
                        .as_deref()
                        .is_some_and(|u| self.usernames.contains(u))
            }
            "tweets" => self.tweets.contains(id),
            "media" => k
                .media_key
                .as_deref()
                .is_some_and(|m| self.media.contains(m)),
            "places" => self.places.contains(id),
            _ => self.polls.contains(id),
        }
    }
}

/// Parses a page body and builds one line per post.
pub fn parse_page(body: &[u8]) -> Result<Page, PageError> {
    let raw: RawPage<'_> =
        serde_json::from_slice(body).map_err(|e| PageError::Json(e.to_string()))?;
    let meta = raw.meta.ok_or(PageError::NoMeta)?;
    check_meta(&meta)?;
    let posts: Vec<&RawValue> = match raw.data {
        None => Vec::new(),
        Some(d) => serde_json::from_str(d.get()).map_err(|_| PageError::DataNotArray)?,
    };
    if let Some(said) = meta.result_count.filter(|n| *n != posts.len() as u64) {
        return Err(PageError::CountMismatch {
            said,
            held: posts.len(),
        });
    }
    let ids = posts.iter().map(|p| post_id(p)).collect::<Result<_, _>>()?;
    let includes = raw.includes.unwrap_or_default();
    let keyed: Vec<Vec<(Keyed, &RawValue)>> = INCLUDE_KINDS
        .iter()
        .map(|(kind, _)| {
            includes
                .kind(kind)
                .iter()
                .map(|v| (serde_json::from_str(v.get()).unwrap_or_default(), *v))
                .collect()
        })
        .collect();
    let lines = posts.iter().map(|post| line_for(post, &keyed)).collect();
    Ok(Page {
        meta,
        lines,
        ids,
        partial_errors: raw.errors.map_or(0, |e| e.len()),
    })
}

/// `{"data": post, "includes": {…}}` with the objects the post refers to
/// (and the authors of the posts it references).
fn line_for(post: &RawValue, keyed: &[Vec<(Keyed, &RawValue)>]) -> Vec<u8> {
    let mut wanted = Wanted::of(post);
    // Referenced posts' authors come with `referenced_tweets.id.author_id`.
    let tweets = &keyed[1];
    let authors: Vec<String> = tweets
        .iter()
        .filter(|(k, _)| wanted.wants("tweets", k))
        .filter_map(|(k, _)| k.author_id.clone())
        .collect();
    wanted.users.extend(authors);
    let mut line = Vec::with_capacity(post.get().len() + 256);
    line.extend_from_slice(b"{\"data\":");
    line.extend_from_slice(post.get().as_bytes());
    let mut opened = false;
    for ((kind, _), objects) in INCLUDE_KINDS.iter().zip(keyed) {
        let mut first = true;
        let mut seen = HashSet::new();
        for (k, raw) in objects {
            let key = k.media_key.as_ref().or(k.id.as_ref());
            if !wanted.wants(kind, k) || key.is_some_and(|key| !seen.insert(key.clone())) {
                continue;
            }
            if !opened {
                line.extend_from_slice(b",\"includes\":{");
                opened = true;
            } else if first {
                line.push(b',');
            }
            if first {
                line.extend_from_slice(format!("\"{kind}\":[").as_bytes());
                first = false;
            } else {
                line.push(b',');
            }
            line.extend_from_slice(raw.get().as_bytes());
        }
        if !first {
            line.push(b']');
        }
    }
    if opened {
        line.push(b'}');
    }
    line.push(b'}');
    line
}

#[cfg(test)]
mod tests;
