//! What a write's outcome means: the `update` reply's per-statement errors
//! (retry or dead-letter), and which driver errors and server codes are
//! worth retrying.

use mongodb::bson::{Bson, Document};
use mongodb::error::{ErrorKind, RETRYABLE_WRITE_ERROR};

use crate::sinks::RecordResults;

/// Whether a server error code is worth retrying (network, elections,
/// interruptions, write conflicts, duplicate keys from racing upserts, throttling).
pub fn retryable_code(code: i32) -> bool {
    matches!(
        code,
        6 | 7
            | 50
            | 64
            | 89
            | 91
            | 112
            | 189
            | 262
            | 9001
            | 10107
            | 11000
            | 11600
            | 11602
            | 13435
            | 13436
            | 16500
            | 462
            | 134
    )
}

/// Reads an `update` reply: statements with a transient write error go to
/// `failed`, the others with an error to `rejected`; a write concern error, or
/// an error that names no statement of this command, fails them all (upserts
/// make the retry harmless).
pub(super) fn read_reply(reply: &Document, indexes: &[usize], out: &mut RecordResults) {
    if let Ok(wce) = reply.get_document("writeConcernError") {
        // The writes may have landed; upserts make the retry harmless.
        out.failed.extend_from_slice(indexes);
        out.note(format!(
            "write concern error: {}",
            wce.get_str("errmsg").unwrap_or("")
        ));
        return;
    }
    let Ok(errors) = reply.get_array("writeErrors") else {
        return;
    };
    fn statement<'a>(e: &'a Bson, indexes: &[usize]) -> Option<(&'a Document, usize)> {
        let Bson::Document(e) = e else { return None };
        let i = match e.get("index") {
            Some(Bson::Int32(i)) => usize::try_from(*i).ok()?,
            Some(Bson::Int64(i)) => usize::try_from(*i).ok()?,
            _ => return None,
        };
        indexes.get(i).map(|&i| (e, i))
    }
    if !errors.iter().all(|e| statement(e, indexes).is_some()) {
        // An error we cannot pin on a statement: none of them counts as written
        // (upserts make the retry harmless).
        out.failed.extend_from_slice(indexes);
        out.note("a write error without a usable statement index".into());
        return;
    }
    for (e, i) in errors.iter().filter_map(|e| statement(e, indexes)) {
        let code = match e.get("code") {
            Some(Bson::Int32(c)) => *c,
            Some(Bson::Int64(c)) => *c as i32,
            _ => 0,
        };
        let m = format!(
            "write error {code}: {}",
            e.get_str("errmsg").unwrap_or("(no message)")
        );
        // A duplicate key on `_id` is a race between two upserts (retry wins);
        // on another unique index it fails every time.
        let other_index = code == 11000 && duplicate_on_other_index(e);
        if retryable_code(code) && !other_index {
            out.failed.push(i);
        } else {
            out.rejected.push((i, m.clone()));
        }
        out.note(m);
    }
}

/// A duplicate-key error that names a unique index other than `_id`.
fn duplicate_on_other_index(e: &Document) -> bool {
    if let Ok(pattern) = e.get_document("keyPattern") {
        return !pattern.contains_key("_id");
    }
    e.get_str("errmsg")
        .ok()
        .and_then(|m| m.split("index: ").nth(1))
        .is_some_and(|index| !index.starts_with("_id_"))
}

/// MongoDB's code for a namespace it refuses (`InvalidNamespace`).
const INVALID_NAMESPACE: i32 = 73;

/// Whether the server refused a command for good: an invalid namespace (a
/// collection name it will never take, whatever the retry), or a refusal
/// (`ok: 0`) whose reply carries no error code at all, which the driver can
/// only report as unreadable. Neither is a network failure worth retrying.
pub(super) fn is_refusal(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => namespace_refused(c.code, &c.message),
        ErrorKind::InvalidResponse { message, .. } => refusal_without_code(message),
        _ => false,
    }
}

/// The server's own words (`errmsg` of its reply), when the driver kept the reply.
pub(super) fn server_message(e: &mongodb::error::Error) -> Option<String> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) if !c.message.is_empty() => Some(c.message.clone()),
        _ => e
            .server_response()
            .and_then(|r| r.get_str("errmsg").ok())
            .map(str::to_owned),
    }
}

/// A command error that refuses the namespace.
fn namespace_refused(code: i32, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    code == INVALID_NAMESPACE
        || m.contains("invalid namespace")
        || m.contains("invalid collection name")
}

/// The driver's words for an `ok: 0` reply it cannot read as an error (no `code`).
fn refusal_without_code(message: &str) -> bool {
    message.starts_with("error deserializing command error")
}

/// Whether trying again can help: network trouble, server selection, retryable
/// labels and codes; not bad credentials, TLS settings, arguments or a refusal.
pub(super) fn is_transient(e: &mongodb::error::Error) -> bool {
    if is_refusal(e) {
        return false;
    }
    e.contains_label(RETRYABLE_WRITE_ERROR)
        || match e.kind.as_ref() {
            ErrorKind::Command(c) => retryable_code(c.code),
            ErrorKind::Authentication { .. }
            | ErrorKind::InvalidArgument { .. }
            | ErrorKind::InvalidTlsConfig { .. }
            | ErrorKind::BsonSerialization(_) => false,
            _ => true,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    #[test]
    fn write_errors_are_retried_or_rejected_by_code() {
        // Statement 0 → batch index 10, 1 → 11, 2 → 12.
        let reply = doc! {
            "ok": 1, "n": 1,
            "writeErrors": [
                { "index": 0, "code": 11000, "errmsg": "E11000 duplicate key" },
                { "index": 2, "code": 2, "errmsg": "bad value" },
            ],
        };
        let mut out = RecordResults::default();
        read_reply(&reply, &[10, 11, 12], &mut out);
        assert_eq!(out.failed, [10]);
        assert_eq!(out.rejected, [(12, "write error 2: bad value".to_owned())]);
        let reply =
            doc! { "ok": 1, "n": 3, "writeConcernError": { "code": 64, "errmsg": "waiting" } };
        let mut out = RecordResults::default();
        read_reply(&reply, &[0, 1, 2], &mut out);
        assert_eq!(out.failed, [0, 1, 2]);
        let mut out = RecordResults::default();
        read_reply(&doc! { "ok": 1, "n": 3 }, &[0, 1, 2], &mut out);
        assert!(out.failed.is_empty() && out.rejected.is_empty());
        // A duplicate on a unique index of the user's is not a race: rejected.
        let reply = doc! { "ok": 1, "n": 2, "writeErrors": [
            { "index": 0, "code": 11000, "errmsg": "E11000 duplicate key error collection: d.c index: url_1 dup key: { url: \"x\" }" },
            { "index": 1, "code": 11000, "errmsg": "E11000 duplicate key error collection: d.c index: _id_ dup key: { _id: \"y\" }" },
        ] };
        let mut out = RecordResults::default();
        read_reply(&reply, &[0, 1, 2], &mut out);
        assert_eq!(out.failed, [1]);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].0, 0);
        // An error that names no statement of the command: nothing counts as written.
        let reply = doc! { "ok": 1, "n": 2, "writeErrors": [ { "index": 7, "code": 2 } ] };
        let mut out = RecordResults::default();
        read_reply(&reply, &[0, 1, 2], &mut out);
        assert_eq!(out.failed, [0, 1, 2]);
        assert!(out.rejected.is_empty());
    }

    #[test]
    fn a_refused_namespace_is_permanent() {
        use mongodb::error::{CommandError, Error};
        let command = |code: i32, message: &str| -> Error {
            let c: CommandError = mongodb::bson::from_document(
                doc! { "code": code, "codeName": "X", "errmsg": message },
            )
            .unwrap();
            ErrorKind::Command(c).into()
        };
        let e = command(73, "Invalid namespace specified 'ingest.end.'");
        assert!(is_refusal(&e) && !is_transient(&e));
        let e = command(2, "Invalid collection name: ..");
        assert!(is_refusal(&e) && !is_transient(&e));
        // A network failure and a retryable code stay transient.
        let e = command(91, "shutdown in progress");
        assert!(!is_refusal(&e) && is_transient(&e));
        // nx-27017 refuses without a code: the driver cannot read the reply.
        assert!(refusal_without_code(
            "error deserializing command error: missing field `code`"
        ));
        assert!(!refusal_without_code("missing 'ok' value in response"));
        assert!(!namespace_refused(6, "host unreachable"));
    }

    #[test]
    fn error_codes_are_classified() {
        assert!(retryable_code(11000) && retryable_code(91) && retryable_code(10107));
        assert!(!retryable_code(2) && !retryable_code(10334) && !retryable_code(13));
    }
}
