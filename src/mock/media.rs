//! The media files both mocks serve, with deterministic bytes: photos (one
//! shared by several posts and messages), a small video, a voice note, a
//! document, a sticker, one over the Bot API's 20 MiB download limit, one that
//! fails twice (HTTP 500) and then succeeds, and one that is gone (404).
//! Tests compute the expected SHA-256 from [`bytes`].

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::lock;

/// What a file's URL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Serves the bytes.
    Serve,
    /// Answers 500 twice, then serves the bytes.
    FailTwice,
    /// Answers 404.
    Gone,
}

/// One file of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MockFile {
    /// The file name (the last URL segment).
    pub name: &'static str,
    /// The record's media type.
    pub kind: &'static str,
    pub size: usize,
    pub content_type: &'static str,
    pub behaviour: Behaviour,
}

const fn file(
    name: &'static str,
    kind: &'static str,
    size: usize,
    content_type: &'static str,
    behaviour: Behaviour,
) -> MockFile {
    MockFile {
        name,
        kind,
        size,
        content_type,
        behaviour,
    }
}

/// Over the Bot API's 20 MiB download limit (the default `max_bytes`).
pub const BIG_BYTES: usize = 20 * 1024 * 1024 + 1;

/// Every file the mocks serve.
pub const FILES: [MockFile; 10] = [
    file(
        "photo-shared.jpg",
        "photo",
        24_000,
        "image/jpeg",
        Behaviour::Serve,
    ),
    file(
        "photo-2.jpg",
        "photo",
        41_000,
        "image/jpeg",
        Behaviour::Serve,
    ),
    file("clip.mp4", "video", 300_000, "video/mp4", Behaviour::Serve),
    file(
        "flaky.jpg",
        "photo",
        15_000,
        "image/jpeg",
        Behaviour::FailTwice,
    ),
    file(
        "huge.mp4",
        "video",
        BIG_BYTES,
        "video/mp4",
        Behaviour::Serve,
    ),
    file("gone.jpg", "photo", 9_000, "image/jpeg", Behaviour::Gone),
    file("note.oga", "voice", 8_000, "audio/ogg", Behaviour::Serve),
    file(
        "paper.pdf",
        "document",
        52_000,
        "application/pdf",
        Behaviour::Serve,
    ),
    file(
        "sticker.webp",
        "sticker",
        7_000,
        "image/webp",
        Behaviour::Serve,
    ),
    file(
        "loop.mp4",
        "animation",
        64_000,
        "video/mp4",
        Behaviour::Serve,
    ),
];

/// The file called `name`.
pub fn find(name: &str) -> Option<&'static MockFile> {
    FILES.iter().find(|f| f.name == name)
}

/// Largest generated file (benchmarks' distinct photos).
pub const MAX_GENERATED_BYTES: u64 = 64 * 1024 * 1024;

/// The name of generated photo `n` of `size` bytes (`gen-7-50000.jpg`), for
/// benchmarks that need every photo distinct.
pub fn generated_name(n: u64, size: u64) -> String {
    format!("gen-{n}-{}.jpg", size.min(MAX_GENERATED_BYTES))
}

/// The size of a generated photo's name, if it is one.
pub fn generated_size(name: &str) -> Option<u64> {
    let (_, size) = name
        .strip_prefix("gen-")?
        .strip_suffix(".jpg")?
        .split_once('-')?;
    size.parse().ok().filter(|s| *s <= MAX_GENERATED_BYTES)
}

/// The bytes of a generated photo: a JPEG header, then a stream seeded by its name.
pub fn generated_bytes(name: &str, size: u64) -> Vec<u8> {
    bytes_of(name, size as usize, "image/jpeg")
}

/// The file's bytes: a header that fits its type, then a pseudo-random
/// stream seeded by its name (the same bytes every run).
pub fn bytes(f: &MockFile) -> Vec<u8> {
    bytes_of(f.name, f.size, f.content_type)
}

fn bytes_of(name: &str, size: usize, content_type: &str) -> Vec<u8> {
    let magic: &[u8] = match content_type {
        "image/jpeg" => &[0xFF, 0xD8, 0xFF, 0xE0],
        "video/mp4" => b"\0\0\0\x18ftypmp42",
        "audio/ogg" => b"OggS",
        "application/pdf" => b"%PDF-1.7\n",
        "image/webp" => b"RIFF\0\0\0\0WEBP",
        _ => b"",
    };
    let mut seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&magic[..magic.len().min(size)]);
    while out.len() < size {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let take = (size - out.len()).min(8);
        out.extend_from_slice(&seed.to_le_bytes()[..take]);
    }
    out
}

/// Downloads per file so far (for the fail-twice file).
#[derive(Debug, Default)]
pub struct Served {
    attempts: Mutex<HashMap<&'static str, u32>>,
}

impl Served {
    /// Answers a download of `name` as the catalog says; error bodies say
    /// `echo` (the request path, as some proxies echo it) when given.
    pub fn answer(&self, name: &str, echo: Option<&str>) -> Response {
        let body = |text: &str| match echo {
            Some(path) => format!("{text}: {path}"),
            None => text.to_owned(),
        };
        if let Some(size) = generated_size(name) {
            let bytes = generated_bytes(name, size);
            return ([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response();
        }
        let Some(f) = find(name) else {
            return (StatusCode::NOT_FOUND, body("no such file")).into_response();
        };
        let n = {
            let mut attempts = lock(&self.attempts);
            let n = attempts.entry(f.name).or_default();
            *n += 1;
            *n
        };
        match f.behaviour {
            Behaviour::Gone => (StatusCode::NOT_FOUND, body("gone")).into_response(),
            Behaviour::FailTwice if n <= 2 => {
                (StatusCode::INTERNAL_SERVER_ERROR, body("try again")).into_response()
            }
            Behaviour::Serve | Behaviour::FailTwice => {
                ([(header::CONTENT_TYPE, f.content_type)], bytes(f)).into_response()
            }
        }
    }

    /// Download attempts of `name` so far.
    pub fn attempts(&self, name: &str) -> u32 {
        lock(&self.attempts).get(name).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_deterministic_sized_and_distinct() {
        for f in FILES.iter().filter(|f| f.size < 1_000_000) {
            let b = bytes(f);
            assert_eq!(b.len(), f.size, "{}", f.name);
            assert_eq!(b, bytes(f));
        }
        assert_ne!(bytes(&FILES[0])[..100], bytes(&FILES[1])[..100]);
        assert!(FILES.iter().any(|f| f.size > 20 * 1024 * 1024));
    }

    #[test]
    fn the_flaky_file_fails_twice_then_serves() {
        let served = Served::default();
        let status = |r: Response| r.status().as_u16();
        assert_eq!(status(served.answer("flaky.jpg", None)), 500);
        assert_eq!(status(served.answer("flaky.jpg", None)), 500);
        assert_eq!(status(served.answer("flaky.jpg", None)), 200);
        assert_eq!(status(served.answer("gone.jpg", Some("/x"))), 404);
        assert_eq!(status(served.answer("nope.jpg", None)), 404);
        assert_eq!(served.attempts("flaky.jpg"), 3);
    }
}
