//! `ingest twitter-webhook ACTION` against a server that answers 2xx bodies in
//! none of the shapes X documents, or not at all: each is an error naming the
//! endpoint (never "valid", "deleted" or an empty list with exit 0), and a
//! server that does not answer is "timed out after N s".

mod common;

use std::process::Output;

use common::*;

fn manage(base: &str, args: &[&str]) -> Output {
    Env::new()
        .with("TWITTER_BEARER_TOKEN", "app-bearer-token")
        .cmd()
        .arg("twitter-webhook")
        .args(args)
        .args(["--twitter-api-base", base])
        .output()
        .unwrap()
}

#[test]
fn answers_in_no_documented_shape_are_errors_naming_the_endpoint() {
    let undocumented = [
        "null",
        "\"valid\"",
        "[]",
        "{}",
        "garbage",
        r#"{"data":"x"}"#,
        r#"{"data":{"attempted":true}}"#,
        r#"{"unexpected":{"links":[]}}"#,
    ];
    let actions: [(&[&str], &str, &str); 6] = [
        (&["validate", "123"], "PUT /2/webhooks/123", "valid"),
        (&["delete", "123"], "DELETE /2/webhooks/123", "deleted"),
        (&["list"], "GET /2/webhooks", ""),
        (
            &["stream-links", "--json"],
            "GET /2/tweets/search/webhooks",
            "links",
        ),
        (
            &["stream-link", "123"],
            "POST /2/tweets/search/webhooks/123",
            "linked",
        ),
        (
            &["activity-unsubscribe", "9"],
            "DELETE /2/activity/subscriptions/9",
            "deleted",
        ),
    ];
    for body in undocumented {
        let base = canned_server(Some(body));
        for (args, endpoint, success) in actions {
            let out = manage(&base, args);
            // `{}` and `null` are documented for some lists and deletes (an
            // empty list; a 204); the rest never are.
            let lenient = matches!((body, args[0]), ("{}", "list" | "stream-links"))
                || matches!((body, args[0]), ("null", "delete" | "activity-unsubscribe"));
            if lenient {
                continue;
            }
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{args:?} on {body}: {err}");
            assert!(err.contains(endpoint), "{args:?} on {body}: {err}");
            let printed = String::from_utf8_lossy(&out.stdout);
            assert!(
                success.is_empty() || !printed.contains(success),
                "{args:?} on {body} printed {printed}"
            );
        }
    }
}

#[test]
fn a_refused_validation_and_a_kept_link_are_said_as_such() {
    let base = canned_server(Some(r#"{"data":{"valid":false}}"#));
    let out = manage(&base, &["validate", "123"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("could not validate the webhook 123"));
    let base = canned_server(Some(r#"{"data":{"deleted":false}}"#));
    let out = manage(&base, &["delete", "123"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("did not delete"), "{}", stderr(&out));
    // Both documented shapes of the stream links are read.
    for body in [
        r#"{"data":[{"webhook_id":"5","instance_id":"1","fields":["tweet.fields=lang"]}]}"#,
        r#"{"data":{"links":[{"webhook_id":"5","instance_id":"1","fields":["tweet.fields=lang"]}]}}"#,
    ] {
        let base = canned_server(Some(body));
        let out = manage(&base, &["stream-links", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["links"][0]["webhook_id"], "5", "{body}");
    }
}

#[test]
fn a_server_that_never_answers_is_a_timeout_naming_its_length() {
    let base = canned_server(None);
    let out = manage(&base, &["validate", "123", "--api-timeout", "1s"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("timed out after 1 s") && err.contains("PUT /2/webhooks/123"),
        "{err}"
    );
    assert!(!err.contains("cannot reach"), "{err}");
}
