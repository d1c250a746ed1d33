//! The search checkpoint: per query and endpoint, the newest id every sink
//! confirmed (the `since_id` of the next pass) and the pass in progress (its
//! window and the `next_token` of its first unconfirmed page).
//!
//! A pass is one run through the pages of one request, newest first. Its
//! state is saved after each page the sinks confirmed whole, so a killed
//! pass resumes at the first unconfirmed page; the pass's newest id becomes
//! the next `since_id` only when its last page is confirmed, so no older
//! page of an unfinished pass is ever skipped.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Endpoint;
use super::page::{MAX_TOKEN_BYTES, is_post_id};
use crate::state::{Checkpoint, LockFile, StateError};

/// The request of a pass (without `next_token`), as sent to X.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_id: Option<String>,
}

/// A pass with at least one confirmed page and more to come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pass {
    pub window: Window,
    /// The first page not yet confirmed.
    pub next_token: String,
    /// The newest post of the pass (its first page's `newest_id`).
    pub newest_id: Option<String>,
    /// The oldest post confirmed so far.
    pub oldest_id: Option<String>,
    /// Pages confirmed.
    pub pages: u64,
}

/// The file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchState {
    pub query: String,
    pub endpoint: Endpoint,
    /// Every post of the query up to this id is confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<Pass>,
}

impl SearchState {
    pub fn new(query: &str, endpoint: Endpoint) -> Self {
        SearchState {
            query: query.to_owned(),
            endpoint,
            newest_id: None,
            pass: None,
        }
    }

    /// Checks what a file could hold that X never sent: ids that are not
    /// post ids, a token longer than a page may give.
    fn check(&self) -> Result<(), String> {
        let pass = self.pass.as_ref();
        let ids = [
            ("newest_id", self.newest_id.as_ref()),
            ("pass.newest_id", pass.and_then(|p| p.newest_id.as_ref())),
            ("pass.oldest_id", pass.and_then(|p| p.oldest_id.as_ref())),
            (
                "pass.window.since_id",
                pass.and_then(|p| p.window.since_id.as_ref()),
            ),
            (
                "pass.window.until_id",
                pass.and_then(|p| p.window.until_id.as_ref()),
            ),
        ];
        for (field, id) in ids {
            if let Some(id) = id.filter(|id| !is_post_id(id)) {
                let id: String = id.chars().take(40).collect();
                return Err(format!(
                    "`{field}` is {id:?}, not a post id (1 to 19 digits)"
                ));
            }
        }
        match pass.map(|p| p.next_token.len()) {
            Some(n) if n == 0 || n > MAX_TOKEN_BYTES => Err(format!(
                "`pass.next_token` is {n} bytes long (1 to {MAX_TOKEN_BYTES})"
            )),
            _ => Ok(()),
        }
    }

    /// A page of the pass on `window` was confirmed whole: move on.
    pub fn page_confirmed(&mut self, window: &Window, meta: &super::page::Meta) {
        let pass_newest = self
            .pass
            .as_ref()
            .and_then(|p| p.newest_id.clone())
            .or_else(|| meta.newest_id.clone());
        let pages = self.pass.as_ref().map_or(0, |p| p.pages) + 1;
        match &meta.next_token {
            Some(token) => {
                let oldest = meta
                    .oldest_id
                    .clone()
                    .or_else(|| self.pass.as_ref().and_then(|p| p.oldest_id.clone()));
                self.pass = Some(Pass {
                    window: window.clone(),
                    next_token: token.clone(),
                    newest_id: pass_newest,
                    oldest_id: oldest,
                    pages,
                });
            }
            None => {
                self.pass = None;
                self.newest_id = newer(self.newest_id.take(), pass_newest);
            }
        }
    }
}

/// The newer of two post ids (ids grow with time; compared as numbers).
pub fn newer(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if id_key(&b) > id_key(&a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

fn id_key(id: &str) -> (usize, &str) {
    let id = id.trim_start_matches('0');
    (id.len(), id)
}

/// The state file of a query on an endpoint, and the lock that keeps a
/// second run off it.
pub struct Store {
    checkpoint: Checkpoint,
    _lock: LockFile,
}

/// A short, stable name for a query on an endpoint.
pub fn key(query: &str, endpoint: Endpoint) -> String {
    crate::state::secret_fingerprint(&format!("{}\n{query}", endpoint.name()))
}

impl Store {
    /// Locks and opens the state of `query` on `endpoint` in `dir`.
    pub fn open(dir: &Path, query: &str, endpoint: Endpoint) -> Result<Self, StateError> {
        let k = key(query, endpoint);
        let lock = LockFile::acquire(
            dir.join(format!("twitter-search-{k}.lock")),
            "this X search (same query and endpoint)",
        )?;
        Ok(Store {
            checkpoint: Checkpoint::new(dir.join(format!("twitter-search-{k}.json"))),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        self.checkpoint.path()
    }

    /// The saved state, or a fresh one; a file of another query (a hash
    /// collision, or a file copied by hand) is not reused. A file whose ids
    /// are not post ids (or whose token no URL could carry) is an error that
    /// names it: it was edited or damaged, and X would be blamed for it.
    pub fn load(&self, query: &str, endpoint: Endpoint) -> Result<SearchState, StateError> {
        Ok(match self.checkpoint.load::<SearchState>()? {
            Some(s) if s.query == query && s.endpoint == endpoint => {
                s.check().map_err(|why| StateError::Checkpoint {
                    path: self.path().to_owned(),
                    source: std::io::Error::other(format!(
                        "{why}; fix the value, or delete the file to start this search afresh (the next run backfills its window again)"
                    )),
                })?;
                s
            }
            Some(s) => {
                tracing::warn!(file = %self.path().display(), other = %s.query, "the search checkpoint belongs to another query; starting afresh");
                SearchState::new(query, endpoint)
            }
            None => SearchState::new(query, endpoint),
        })
    }

    pub fn save(&self, state: &SearchState) -> Result<(), StateError> {
        self.checkpoint.save(state)
    }
}

#[cfg(test)]
mod tests {
    use super::super::page::Meta;
    use super::*;

    fn meta(newest: &str, oldest: &str, next: Option<&str>) -> Meta {
        Meta {
            newest_id: Some(newest.into()),
            oldest_id: Some(oldest.into()),
            result_count: Some(1),
            next_token: next.map(str::to_owned),
        }
    }

    #[test]
    fn the_since_id_moves_only_when_a_pass_ends() {
        let w = Window {
            start_time: Some("2026-11-29T00:00:00Z".into()),
            ..Window::default()
        };
        let mut s = SearchState::new("cats", Endpoint::Recent);
        s.page_confirmed(&w, &meta("300", "201", Some("t1")));
        assert_eq!(s.newest_id, None, "an unfinished pass moves nothing");
        let p = s.pass.clone().unwrap();
        assert_eq!(
            (
                p.next_token.as_str(),
                p.newest_id.as_deref(),
                p.oldest_id.as_deref(),
                p.pages
            ),
            ("t1", Some("300"), Some("201"), 1)
        );
        s.page_confirmed(&w, &meta("200", "101", Some("t2")));
        assert_eq!(s.pass.as_ref().unwrap().newest_id.as_deref(), Some("300"));
        assert_eq!(s.pass.as_ref().unwrap().oldest_id.as_deref(), Some("101"));
        s.page_confirmed(&w, &meta("100", "1", None));
        assert_eq!(
            (s.newest_id.as_deref(), s.pass.is_none()),
            (Some("300"), true)
        );
        // The next pass (since_id 300) finds nothing: the watermark stays.
        s.page_confirmed(&Window::default(), &Meta::default());
        assert_eq!(s.newest_id.as_deref(), Some("300"));
    }

    #[test]
    fn ids_compare_as_numbers() {
        let n = |a: &str, b: &str| newer(Some(a.into()), Some(b.into())).unwrap();
        assert_eq!(n("99", "100"), "100");
        assert_eq!(
            n("1650000000000000010", "1650000000000000009"),
            "1650000000000000010"
        );
        assert_eq!(newer(None, Some("5".into())).as_deref(), Some("5"));
    }

    #[test]
    fn the_state_is_keyed_by_query_and_endpoint_and_locked() {
        let dir = tempfile::tempdir().unwrap();
        assert_ne!(
            key("cats", Endpoint::Recent),
            key("cats", Endpoint::Archive)
        );
        assert_ne!(key("cats", Endpoint::Recent), key("dogs", Endpoint::Recent));
        let store = Store::open(dir.path(), "cats", Endpoint::Recent).unwrap();
        let err = Store::open(dir.path(), "cats", Endpoint::Recent)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("another ingest run"), "{err}");
        let mut s = store.load("cats", Endpoint::Recent).unwrap();
        s.newest_id = Some("42".into());
        store.save(&s).unwrap();
        assert_eq!(store.load("cats", Endpoint::Recent).unwrap(), s);
        // Another query never reuses it, even pointed at the same file.
        assert_eq!(
            store.load("dogs", Endpoint::Recent).unwrap().newest_id,
            None
        );
        let other = Store::open(dir.path(), "dogs", Endpoint::Recent).unwrap();
        assert_ne!(other.path(), store.path());
        // Ids that are not post ids: an error naming the file and the way out.
        for (field, text) in [
            (
                "newest_id",
                r#"{"query":"cats","endpoint":"recent","newest_id":"abc&x=1"}"#,
            ),
            (
                "pass.oldest_id",
                r#"{"query":"cats","endpoint":"recent","pass":{"window":{},"next_token":"t","oldest_id":"../x","pages":1}}"#,
            ),
            (
                "pass.window.since_id",
                r#"{"query":"cats","endpoint":"recent","pass":{"window":{"since_id":"1 OR 1"},"next_token":"t","pages":1}}"#,
            ),
            (
                "pass.next_token",
                r#"{"query":"cats","endpoint":"recent","pass":{"window":{},"next_token":"","pages":1}}"#,
            ),
        ] {
            std::fs::write(store.path(), text).unwrap();
            let err = store
                .load("cats", Endpoint::Recent)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&store.path().display().to_string())
                    && err.contains(field)
                    && err.contains("delete the file"),
                "{err}"
            );
        }
        // A corrupt file is an error naming it, not a silent restart.
        std::fs::write(store.path(), b"{\"query\":").unwrap();
        let err = store
            .load("cats", Endpoint::Recent)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&store.path().display().to_string()), "{err}");
    }
}
