//! The spec checker itself (`tests/common/spec/`): it must fail on a planted
//! bad request, a planted off-spec answer and a planted undeclared parameter,
//! through the proxy as well as called directly, and pass what the published
//! specs (and the allow-list's documented differences) say.

mod common;

use common::http;
use common::spec::{self, Api, Exchange, SpecProxy, Violation};

fn x_request(method: &str, target: &str, body: &str) -> Vec<Violation> {
    let ct = (!body.is_empty()).then_some("application/json");
    Api::X.check_request(&Exchange::new(method, target, ct, body.as_bytes()))
}

fn x_response(method: &str, target: &str, status: u16, body: &str) -> Vec<Violation> {
    let ex = Exchange::new(method, target, None, b"");
    let ct = if status < 300 {
        "application/json"
    } else {
        "application/problem+json"
    };
    Api::X.check_response(&ex, status, ct, body.as_bytes(), "response")
}

fn places(v: &[Violation]) -> Vec<String> {
    v.iter().map(|v| v.place.clone()).collect()
}

#[test]
fn a_request_the_spec_declares_passes() {
    let v = x_request(
        "GET",
        "/2/tweets/search/stream?tweet.fields=created_at,lang,author_id&expansions=author_id&user.fields=username&backfill_minutes=2",
        "",
    );
    assert!(v.is_empty(), "{v:?}");
    let v = x_request(
        "POST",
        "/2/webhooks",
        r#"{"url":"https://example.com/hook"}"#,
    );
    assert!(v.is_empty(), "{v:?}");
}

#[test]
fn a_planted_bad_request_fails_the_check() {
    // A value outside the parameter's enum, over its maximum, of the wrong type.
    let v = x_request(
        "GET",
        "/2/tweets/search/stream?tweet.fields=created_at,not_a_field&backfill_minutes=9",
        "",
    );
    let p = places(&v);
    assert!(
        p.iter().any(|p| p.starts_with("query tweet.fields")),
        "{v:?}"
    );
    assert!(
        p.iter().any(|p| p.starts_with("query backfill_minutes")),
        "{v:?}"
    );
    assert!(v.iter().any(|v| v.rule.contains("enum")), "{v:?}");
    assert!(v.iter().any(|v| v.rule.contains("maximum")), "{v:?}");
    let v = x_request("GET", "/2/tweets/search/recent?query=a&max_results=ten", "");
    assert_eq!(places(&v), ["query max_results"], "{v:?}");
    // A body that misses a required member, a path that does not exist.
    let v = x_request(
        "POST",
        "/2/webhooks",
        r#"{"uri":"https://example.com/hook"}"#,
    );
    assert!(v.iter().any(|v| v.place == "request body"), "{v:?}");
    let v = x_request("GET", "/2/tweets/search/nowhere", "");
    assert_eq!(v[0].rule, "the operation exists", "{v:?}");
    // A required parameter left out.
    let v = x_request("GET", "/2/tweets/search/recent", "");
    assert!(
        v.iter()
            .any(|v| v.place == "query query" && v.rule == "required"),
        "{v:?}"
    );
}

#[test]
fn a_planted_undeclared_parameter_fails_the_check() {
    let v = x_request("GET", "/2/tweets/search/stream?bogus=1", "");
    assert_eq!(places(&v), ["query bogus"], "{v:?}");
    assert_eq!(v[0].rule, "declared");
    assert_eq!(v[0].endpoint, "GET /2/tweets/search/stream");
}

#[test]
fn a_planted_off_spec_answer_fails_the_check() {
    // The shape our client and mock used for stream links: `data.links`.
    let v = x_response(
        "GET",
        "/2/tweets/search/webhooks",
        200,
        r#"{"data":{"links":[{"webhook_id":"1","instance_id":"2"}]}}"#,
    );
    assert!(v.iter().any(|v| v.place == "response at /data"), "{v:?}");
    // The spec's shape passes.
    let v = x_response(
        "GET",
        "/2/tweets/search/webhooks",
        200,
        r#"{"data":[{"webhook_id":"1","instance_id":"2","fields":["tweet.fields=created_at"]}]}"#,
    );
    assert!(v.is_empty(), "{v:?}");
    // Members the spec does not list.
    let v = x_response(
        "DELETE",
        "/2/connections/all",
        200,
        r#"{"killed_connections":1}"#,
    );
    assert!(!v.is_empty());
    // A problem of no known type, and one missing its detail.
    let v = x_response(
        "GET",
        "/2/tweets/search/stream",
        400,
        r#"{"title":"x","detail":"y","type":"https://api.x.com/2/problems/made-up"}"#,
    );
    assert!(!v.is_empty());
    let v = x_response(
        "GET",
        "/2/tweets/search/stream",
        400,
        r#"{"title":"Invalid Request","type":"https://api.x.com/2/problems/invalid-request"}"#,
    );
    assert!(v.iter().any(|v| v.message.contains("detail")), "{v:?}");
    // An undeclared success status.
    let v = x_response("GET", "/2/webhooks", 204, "{}");
    assert!(v[0].message.contains("204"), "{v:?}");
}

#[test]
fn the_allow_list_reads_the_documented_differences_and_nothing_else() {
    for a in spec::allow::X {
        assert!(a.reason.contains("docs.x.com"), "{}: {}", a.id, a.reason);
    }
    // Live X's problem domain and a 201 on rule creation.
    let v = x_response(
        "GET",
        "/2/tweets/search/stream",
        400,
        r#"{"title":"Invalid Request","detail":"d","type":"https://api.twitter.com/2/problems/invalid-request"}"#,
    );
    assert!(v.is_empty(), "{v:?}");
    let v = x_response(
        "POST",
        "/2/tweets/search/stream/rules",
        201,
        r#"{"data":[{"id":"1","value":"a"}],"meta":{"sent":"2026-01-01T00:00:00.000Z","summary":{"created":1,"not_created":0,"valid":1,"invalid":0}}}"#,
    );
    assert!(v.is_empty(), "{v:?}");
    // Search with the docs' `tweet.fields`, still checked against the enum.
    let v = x_request(
        "GET",
        "/2/tweets/search/recent?query=a&tweet.fields=created_at,lang",
        "",
    );
    assert!(v.is_empty(), "{v:?}");
    let v = x_request(
        "GET",
        "/2/tweets/search/recent?query=a&tweet.fields=nope",
        "",
    );
    assert!(!v.is_empty());
    // The stream problems the docs name, in their documented shape only.
    let line = r#"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect","detail":"This stream has been disconnected upstream for operational reasons.","type":"https://api.twitter.com/2/problems/operational-disconnect"}]}"#;
    let ex = Exchange::new("GET", "/2/tweets/search/stream", None, b"");
    let v = Api::X.check_response(&ex, 200, "application/json", line.as_bytes(), "line");
    assert!(v.is_empty(), "{v:?}");
    let bad = line.replace("\"title\":\"operational-disconnect\",", "");
    let v = Api::X.check_response(&ex, 200, "application/json", bad.as_bytes(), "line");
    assert!(!v.is_empty());
    // Stream-link field parameters are checked against the stream's.
    let v = x_request(
        "POST",
        "/2/tweets/search/webhooks/123?tweet.fields=created_at&expansions=author_id",
        "",
    );
    assert!(v.is_empty(), "{v:?}");
    let v = x_request(
        "POST",
        "/2/tweets/search/webhooks/123?tweet.fields=nope",
        "",
    );
    assert_eq!(v[0].endpoint, "POST /2/tweets/search/webhooks/123", "{v:?}");
}

fn tg(target: &str, content_type: Option<&str>, body: &[u8]) -> Vec<Violation> {
    Api::Telegram.check_request(&Exchange::new("POST", target, content_type, body))
}

#[test]
fn telegram_requests_are_held_to_the_bot_api_in_every_encoding() {
    let m = "/bot123:abc/getUpdates";
    assert!(tg(&format!("{m}?offset=5&timeout=30"), None, b"").is_empty());
    assert!(
        tg(
            m,
            Some("application/json"),
            br#"{"offset":5,"allowed_updates":["message"]}"#
        )
        .is_empty()
    );
    assert!(
        tg(
            m,
            Some("application/x-www-form-urlencoded"),
            b"offset=5&allowed_updates=%5B%22message%22%5D"
        )
        .is_empty()
    );
    let multipart = b"--XX\r\nContent-Disposition: form-data; name=\"offset\"\r\n\r\n5\r\n--XX\r\nContent-Disposition: form-data; name=\"limit\"\r\n\r\n10\r\n--XX--\r\n";
    assert!(tg(m, Some("multipart/form-data; boundary=XX"), multipart).is_empty());
    // Planted: a wrong type, an undeclared field, an unknown method, a
    // missing required field.
    assert!(!tg(&format!("{m}?offset=abc"), None, b"").is_empty());
    let v = tg(m, Some("application/json"), br#"{"ofset":5}"#);
    assert!(v[0].message.contains("ofset"), "{v:?}");
    assert!(!tg("/bot123:abc/getUpdatez", None, b"").is_empty());
    assert!(!tg("/bot123:abc/setWebhook", Some("application/json"), b"{}").is_empty());
    // Method names are case-insensitive.
    assert!(tg("/bot123:abc/getupdates?offset=1", None, b"").is_empty());
}

#[test]
fn telegram_answers_are_held_to_the_bot_api() {
    let ex = Exchange::new("POST", "/bot123:abc/getUpdates", None, b"");
    let check = |status: u16, body: &str| {
        Api::Telegram.check_response(&ex, status, "application/json", body.as_bytes(), "answer")
    };
    let good = r#"{"ok":true,"result":[{"update_id":1,"message":{"message_id":2,"date":3,"chat":{"id":4,"type":"private"},"text":"hi"}}]}"#;
    assert!(check(200, good).is_empty(), "{:?}", check(200, good));
    // Planted: a member Message does not have, a missing required member.
    let v = check(200, &good.replace("\"text\"", "\"txet\""));
    assert!(v.iter().any(|v| v.message.contains("txet")), "{v:?}");
    let v = check(200, &good.replace("\"date\":3,", ""));
    assert!(!v.is_empty());
    let err = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1","parameters":{"retry_after":1}}"#;
    assert!(check(429, err).is_empty());
    assert!(!check(409, err).is_empty(), "error_code must be the status");
    assert!(
        spec::telegram()
            .update_fields()
            .contains(&"business_message".to_owned())
    );
}

const DEPTH: usize = 40;

#[test]
fn a_union_member_is_told_apart_by_its_discriminator_at_any_depth() {
    let t = spec::telegram();
    let check = |v: serde_json::Value| {
        let mut out = Vec::new();
        t.check_update(&v, "test", &mut out);
        out
    };
    let reaction = |kind: &str| {
        serde_json::json!({"update_id": 1, "message_reaction": {
            "chat": {"id": 4, "type": "private"}, "message_id": 2, "date": 3,
            "old_reaction": [],
            "new_reaction": [{"type": kind, "emoji": "👍"}]
        }})
    };
    assert!(check(reaction("emoji")).is_empty());
    // `ReactionTypeEmoji.type` is "always \"emoji\"": another word is off-spec.
    let v = check(reaction("bogus"));
    assert!(!v.is_empty(), "a ReactionType of type \"bogus\" passed");
    // `RichText` holds `RichText`. A link (`RichTextUrl`: `type`, `text`,
    // `url`) is the 16th member of the union: every member before it that
    // takes `type` and `text` walks the whole inner text before refusing
    // `url`, unless its `type` is checked first. With the discriminator the
    // check is linear in the depth; without it, exponential.
    let mut text = serde_json::json!("deep");
    for i in 0..DEPTH {
        text = serde_json::json!({"type": "url", "text": [text, "and"], "url": format!("https://example.com/{i}")});
    }
    let message = |text: serde_json::Value| {
        serde_json::json!({"update_id": 1, "message": {
            "message_id": 2, "date": 3, "chat": {"id": 4, "type": "private"},
            "rich_message": {"blocks": [{"type": "paragraph", "text": text}]}
        }})
    };
    let deep = message(text.clone());
    assert!(check(deep).is_empty());
    let planted = message(serde_json::json!({"type": "paragraph", "text": text}));
    assert!(
        !check(planted).is_empty(),
        "a block's type inside a text passed"
    );
}

/// One canned HTTP answer to every connection.
fn planted_upstream(answer: &'static str) -> String {
    common::canned_server(Some(answer))
}

#[test]
fn the_proxy_finds_a_planted_bad_request_and_a_planted_bad_answer() {
    let upstream = planted_upstream(r#"{"data":{"links":[]}}"#);
    let proxy = SpecProxy::start(Api::X, &upstream);
    let addr = proxy.url.trim_start_matches("http://").to_owned();
    let (status, body) = http(&addr, "GET", "/2/tweets/search/webhooks?bogus=1", &[], b"");
    assert_eq!((status, body.as_str()), (200, r#"{"data":{"links":[]}}"#));
    let v = proxy.take_violations();
    assert!(v.iter().any(|v| v.place == "query bogus"), "{v:?}");
    assert!(
        v.iter().any(|v| v.place == "response 200 at /data"),
        "{v:?}"
    );
    assert_eq!(proxy.checked().0, 1);
    // `/mock/…` control paths are not the API's.
    http(&addr, "GET", "/mock/anything?x=1", &[], b"");
    assert!(proxy.take_violations().is_empty());
}

#[test]
#[should_panic(expected = "breaks the published X spec")]
fn a_violation_fails_the_test_that_caused_it() {
    let upstream = planted_upstream(r#"{"killed_connections":1}"#);
    let proxy = SpecProxy::start(Api::X, &upstream);
    let addr = proxy.url.trim_start_matches("http://").to_owned();
    http(&addr, "DELETE", "/2/connections/all", &[], b"");
    drop(proxy);
}

#[test]
fn a_planted_off_spec_stream_line_is_found_after_the_client_read_it() {
    // A post whose text is a number, after a keep-alive and a good line.
    let upstream = planted_upstream(
        "\r\n{\"data\":{\"id\":\"1\",\"text\":\"ok\"}}\r\n{\"data\":{\"id\":\"2\",\"text\":7}}\r\n",
    );
    let proxy = SpecProxy::start(Api::X, &upstream);
    let addr = proxy.url.trim_start_matches("http://").to_owned();
    let (status, body) = http(&addr, "GET", "/2/tweets/search/stream", &[], b"");
    assert_eq!(status, 200, "{body}");
    let v = proxy.take_violations();
    assert_eq!(
        proxy.checked(),
        (1, 2),
        "two lines checked, the keep-alive skipped"
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].place, "stream line at /data/text", "{v:?}");
    assert!(v[0].rule.ends_with("/type"), "{v:?}");
}
