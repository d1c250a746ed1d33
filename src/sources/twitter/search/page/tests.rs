use super::*;
use serde_json::{Value, json};

fn page(v: Value) -> Page {
    parse_page(v.to_string().as_bytes()).unwrap()
}

fn line(p: &Page, i: usize) -> Value {
    serde_json::from_slice(&p.lines[i]).unwrap()
}

#[test]
fn each_post_gets_the_includes_it_refers_to() {
    let p = page(json!({
        "data": [
            {"id": "3", "text": "reply", "author_id": "u1", "in_reply_to_user_id": "u2",
             "referenced_tweets": [{"type": "quoted", "id": "9"}],
             "attachments": {"media_keys": ["m1"], "poll_ids": ["p1"]},
             "geo": {"place_id": "pl1"},
             "entities": {"mentions": [{"start": 0, "end": 4, "username": "carl"}]}},
            {"id": "2", "text": "plain", "author_id": "u2"}
        ],
        "includes": {
            "users": [{"id": "u1", "username": "ann"}, {"id": "u2", "username": "bob"},
                      {"id": "u3", "username": "carl"}, {"id": "u4", "username": "dee"},
                      {"id": "u1", "username": "ann"}],
            "tweets": [{"id": "9", "text": "quoted", "author_id": "u4"}],
            "media": [{"media_key": "m1", "type": "photo"}, {"media_key": "m2", "type": "photo"}],
            "places": [{"id": "pl1", "full_name": "Köln"}],
            "polls": [{"id": "p1", "options": []}],
            "topics": [{"id": "t"}]
        },
        "meta": {"newest_id": "3", "oldest_id": "2", "result_count": 2, "next_token": "abc"}
    }));
    assert_eq!(p.meta.next_token.as_deref(), Some("abc"));
    assert_eq!(p.lines.len(), 2);
    let first = line(&p, 0);
    let users: Vec<&str> = first["includes"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        users,
        ["u1", "u2", "u3", "u4"],
        "author, replied-to, mention, quoted author; once each"
    );
    assert_eq!(first["includes"]["tweets"][0]["id"], "9");
    assert_eq!(first["includes"]["media"].as_array().unwrap().len(), 1);
    assert_eq!(first["includes"]["places"][0]["full_name"], "Köln");
    assert_eq!(first["includes"]["polls"][0]["id"], "p1");
    assert_eq!(
        line(&p, 1),
        json!({"data": {"id": "2", "text": "plain", "author_id": "u2"},
                   "includes": {"users": [{"id": "u2", "username": "bob"}]}})
    );
}

#[test]
fn an_empty_page_has_meta_and_no_lines() {
    let p = page(json!({"meta": {"result_count": 0}}));
    assert!(p.lines.is_empty());
    assert_eq!(p.meta.next_token, None);
    let p = page(json!({"data": [{"id": "1", "text": "no author"}], "meta": {"result_count": 1}}));
    assert_eq!(
        line(&p, 0),
        json!({"data": {"id": "1", "text": "no author"}})
    );
}

#[test]
fn hostile_pages_are_refused_with_a_reason() {
    let err = |b: &[u8]| parse_page(b).unwrap_err();
    assert!(matches!(
        err(b"{\"data\":[{\"id\":\"1\"}"),
        PageError::Json(_)
    ));
    assert!(matches!(
        err(b"<html>502 Bad Gateway</html>"),
        PageError::Json(_)
    ));
    assert!(matches!(err(b""), PageError::Json(_)));
    assert!(matches!(err(&[0xff, 0xfe, b'{']), PageError::Json(_)));
    assert_eq!(err(b"{\"data\":[]}"), PageError::NoMeta);
    assert_eq!(
        err(b"{\"data\":{\"id\":\"1\"},\"meta\":{}}"),
        PageError::DataNotArray
    );
    assert_eq!(
        err(b"{\"data\":[{\"id\":\"1\"}],\"meta\":{\"result_count\":100}}"),
        PageError::CountMismatch { said: 100, held: 1 }
    );
    // Odd but parseable: includes of the wrong shape are ignored, odd posts pass through
    // (the normalizer dead-letters them one by one).
    let p = page(json!({"data": [5, {"id": "1"}], "includes": {"users": [1, "x"]}, "meta": {}}));
    assert_eq!(p.lines[0], b"{\"data\":5}");
    assert_eq!(p.lines.len(), 2);
    // A deeply nested post passes through whole (no stack overflow); the
    // normalizer's recursion limit refuses it later, one dead letter.
    let deep = format!(
        "{{\"data\":[{}1{}],\"meta\":{{}}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let p = parse_page(deep.as_bytes())
        .map_err(|e| e.to_string())
        .map(|p| p.lines.len());
    assert_eq!(p, Ok(1));
    let deep = format!("{{\"meta\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(matches!(err(deep.as_bytes()), PageError::Json(_)));
}

#[test]
fn ids_that_are_not_post_ids_make_the_page_unusable() {
    let err = |v: Value| parse_page(v.to_string().as_bytes()).unwrap_err();
    for bad in [
        "../../x",
        "abc&x=1",
        "",
        "12345678901234567890",
        "-1",
        "1 ",
        "١٢",
    ] {
        let e = err(json!({"data": [{"id": bad}], "meta": {}}));
        assert!(
            matches!(
                e,
                PageError::BadId {
                    field: "post id",
                    ..
                }
            ),
            "{bad}: {e}"
        );
        let e = err(json!({"meta": {"newest_id": bad}}));
        assert!(e.to_string().contains("`newest_id`"), "{bad}: {e}");
        let e = err(json!({"meta": {"oldest_id": bad}}));
        assert!(e.to_string().contains("`oldest_id`"), "{bad}: {e}");
    }
    for bad in [json!(7), json!(["1"]), json!({"n": "1"})] {
        let e = err(json!({"data": [{"id": bad}], "meta": {}}));
        assert!(matches!(e, PageError::BadId { .. }), "{bad}: {e}");
    }
    let e = err(json!({"meta": {"next_token": "t".repeat(200_000)}}));
    assert_eq!(e, PageError::LongToken { len: 200_000 });
    let p = page(
        json!({"data": [{"id": "9999999999999999999"}, {"text": "no id"}],
            "meta": {"newest_id": "0", "next_token": "t".repeat(MAX_TOKEN_BYTES)}}),
    );
    assert_eq!(p.ids, [Some(9_999_999_999_999_999_999), None]);
}
