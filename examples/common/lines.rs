//! Realistic X filtered-stream lines for the benchmarks (shared by the examples
//! that `#[path]`-include this file).

use std::io::Write;

const TEXTS: [&str; 8] = [
    "Just shipped a new release of our data pipeline 🚀 #rustlang #dataengineering",
    "مرحبا بالعالم — هذا اختبار للبث المباشر من واجهة برمجة التطبيقات",
    "Привет, мир! Потоковые данные идут без потерь, даже при переподключении.",
    "データ収集のテストです。フィルターストリームからのツイート 📡",
    "שלום עולם, זוהי בדיקה של זרם הנתונים בזמן אמת",
    "Breaking: researchers publish the full dataset of 2026 election posts, 12M rows, CC-BY 📊 https://t.co/abc123",
    "lol 😂😂😂 this is the best thread I've read all week 🧵👇",
    "¿Alguien sabe si la API v2 sigue enviando keep-alives cada 20 segundos? 🤔",
];
const LANGS: [&str; 8] = ["en", "ar", "ru", "ja", "iw", "en", "en", "es"];

/// One realistic stream line for tweet number `i`.
pub fn line(i: u64, out: &mut Vec<u8>) {
    let k = (i % 8) as usize;
    let author = 1_000_000 + (i * 7919) % 50_000;
    let id = 1_600_000_000_000_000_000u64 + i;
    let text = if i.is_multiple_of(50) {
        TEXTS[k].repeat(12)
    } else {
        TEXTS[k].to_owned()
    };
    let rule = i % 3;
    write!(
        out,
        r#"{{"data":{{"id":"{id}","text":{text},"author_id":"{author}","created_at":"2026-11-22T07:{m:02}:{s:02}.000Z","lang":"{lang}","conversation_id":"{id}","source":"Twitter for iPhone","edit_history_tweet_ids":["{id}"],"public_metrics":{{"retweet_count":{rt},"reply_count":3,"like_count":{likes},"quote_count":0}}}},"includes":{{"users":[{{"id":"{author}","name":"User {author}","username":"user_{author}","verified":false}}]}},"matching_rules":[{{"id":"159000000000000000{rule}","tag":"topic-{rule}"}}]}}"#,
        text = serde_json::to_string(&text).unwrap(),
        m = (i / 60) % 60,
        s = i % 60,
        lang = LANGS[k],
        rt = i % 1000,
        likes = (i * 13) % 10_000,
    )
    .unwrap();
    out.extend_from_slice(b"\r\n");
}
