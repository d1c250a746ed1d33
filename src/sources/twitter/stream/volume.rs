//! Which X stream `ingest twitter` reads: the filtered stream (the default),
//! the volume streams (1% sample, 10% sample "decahose", firehose) and the
//! Post and User compliance streams, with the `partition` each one needs.
//!
//! The facts come from X's API reference (docs.x.com, "Stream sampled
//! Posts", "Stream 10% sampled Posts", "Stream all Posts", "Stream Posts
//! compliance data", "Stream Users compliance data"):
//!
//! | stream | path | `partition` |
//! |---|---|---|
//! | filter | `/2/tweets/search/stream` | none |
//! | sample | `/2/tweets/sample/stream` | none |
//! | sample10 | `/2/tweets/sample10/stream` | required, 1–2 |
//! | firehose | `/2/tweets/firehose/stream` | required, 1–20 |
//! | firehose-lang `--lang en` | `/2/tweets/firehose/stream/lang/en` | required, 1–8 |
//! | firehose-lang `--lang ja\|ko\|pt` | `/2/tweets/firehose/stream/lang/{ja,ko,pt}` | required, 1–2 |
//! | likes-firehose | `/2/likes/firehose/stream` | required, 1–20 |
//! | likes-sample10 | `/2/likes/sample10/stream` | required, 1–2 |
//! | likes-compliance | `/2/likes/compliance/stream` | none |
//! | labels | `/2/tweets/label/stream` | none |
//! | activity | `/2/activity/stream` | none |
//! | compliance | `/2/tweets/compliance/stream` | required, 1–4 |
//! | user-compliance | `/2/users/compliance/stream` | required, 1–4 |
//!
//! Every one takes `backfill_minutes` (0–5). Only the filtered stream has
//! rules (and answers 409 without them); only the Post streams take
//! `tweet.fields`, `expansions` and `user.fields`.

use std::ops::RangeInclusive;

use serde::{Deserialize, Deserializer};

use crate::sources::twitter::api::STREAM_PATH;

/// The language of `--stream firehose-lang` (`--lang`): X serves a firehose
/// of each of these, under its own path with its own partitions (spec 2.167).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    En,
    Ja,
    Ko,
    Pt,
}

impl Lang {
    /// Every name `--lang` takes.
    pub const NAMES: &'static [&'static str] = &["en", "ja", "ko", "pt"];

    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
            Lang::Ko => "ko",
            Lang::Pt => "pt",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Lang::En => "/2/tweets/firehose/stream/lang/en",
            Lang::Ja => "/2/tweets/firehose/stream/lang/ja",
            Lang::Ko => "/2/tweets/firehose/stream/lang/ko",
            Lang::Pt => "/2/tweets/firehose/stream/lang/pt",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Lang::En => "the English firehose",
            Lang::Ja => "the Japanese firehose",
            Lang::Ko => "the Korean firehose",
            Lang::Pt => "the Portuguese firehose",
        }
    }

    /// The last partition (the spec: 8 for English, 2 for the others).
    fn partitions(self) -> u32 {
        match self {
            Lang::En => 8,
            Lang::Ja | Lang::Ko | Lang::Pt => 2,
        }
    }
}

/// The X stream to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StreamKind {
    /// The filtered stream: posts matching the app's rules.
    #[default]
    Filter,
    /// About 1% of all public posts.
    Sample,
    /// 10% of all public posts ("decahose"), in 2 partitions.
    Sample10,
    /// All public posts, in 20 partitions.
    Firehose,
    /// All public posts in one language (`--lang`; `--stream firehose-lang`):
    /// English in 8 partitions, Japanese, Korean and Portuguese in 2.
    FirehoseLang(Lang),
    /// Every public like, in 20 partitions: records of kind `like`.
    LikesFirehose,
    /// 10% of public likes, in 2 partitions: records of kind `like`.
    LikesSample10,
    /// Unlikes (`delete` of a `favorite`): records of kind `compliance`, tag `like_delete`.
    LikesCompliance,
    /// Labels applied to or removed from posts (`public_tweet_notice`,
    /// `public_tweet_unviewable`): records of kind `compliance`.
    Labels,
    /// X Activity API events for the app's subscriptions: `activity_event` records.
    Activity,
    /// Post compliance events (delete, withheld, drop, undrop, tweet_edit), in 4 partitions.
    Compliance,
    /// User compliance events (user_delete, user_protect, scrub_geo, …), in 4 partitions.
    UserCompliance,
}

impl StreamKind {
    /// Every name `--stream` and `[twitter] stream` take.
    pub const NAMES: &'static [&'static str] = &[
        "filter",
        "sample",
        "sample10",
        "firehose",
        "firehose-lang",
        "likes-firehose",
        "likes-sample10",
        "likes-compliance",
        "labels",
        "activity",
        "compliance",
        "user-compliance",
    ];

    /// The stream a name means; `firehose-lang` is English until `--lang` says otherwise.
    pub fn from_name(name: &str) -> Option<StreamKind> {
        Some(match name {
            "filter" => StreamKind::Filter,
            "sample" => StreamKind::Sample,
            "sample10" => StreamKind::Sample10,
            "firehose" => StreamKind::Firehose,
            "firehose-lang" => StreamKind::FirehoseLang(Lang::default()),
            "likes-firehose" => StreamKind::LikesFirehose,
            "likes-sample10" => StreamKind::LikesSample10,
            "likes-compliance" => StreamKind::LikesCompliance,
            "labels" => StreamKind::Labels,
            "activity" => StreamKind::Activity,
            "compliance" => StreamKind::Compliance,
            "user-compliance" => StreamKind::UserCompliance,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Filter => "filter",
            StreamKind::Sample => "sample",
            StreamKind::Sample10 => "sample10",
            StreamKind::Firehose => "firehose",
            StreamKind::FirehoseLang(_) => "firehose-lang",
            StreamKind::LikesFirehose => "likes-firehose",
            StreamKind::LikesSample10 => "likes-sample10",
            StreamKind::LikesCompliance => "likes-compliance",
            StreamKind::Labels => "labels",
            StreamKind::Activity => "activity",
            StreamKind::Compliance => "compliance",
            StreamKind::UserCompliance => "user-compliance",
        }
    }

    /// The endpoint's path.
    pub fn path(self) -> &'static str {
        match self {
            StreamKind::Filter => STREAM_PATH,
            StreamKind::Sample => SAMPLE_PATH,
            StreamKind::Sample10 => SAMPLE10_PATH,
            StreamKind::Firehose => FIREHOSE_PATH,
            StreamKind::FirehoseLang(lang) => lang.path(),
            StreamKind::LikesFirehose => LIKES_FIREHOSE_PATH,
            StreamKind::LikesSample10 => LIKES_SAMPLE10_PATH,
            StreamKind::LikesCompliance => LIKES_COMPLIANCE_PATH,
            StreamKind::Labels => LABELS_PATH,
            StreamKind::Activity => ACTIVITY_PATH,
            StreamKind::Compliance => TWEETS_COMPLIANCE_PATH,
            StreamKind::UserCompliance => USERS_COMPLIANCE_PATH,
        }
    }

    /// What the logs call it.
    pub fn label(self) -> &'static str {
        match self {
            StreamKind::Filter => "the filtered stream",
            StreamKind::Sample => "the 1% sampled stream",
            StreamKind::Sample10 => "the 10% sampled stream (decahose)",
            StreamKind::Firehose => "the firehose",
            StreamKind::FirehoseLang(lang) => lang.label(),
            StreamKind::LikesFirehose => "the likes firehose",
            StreamKind::LikesSample10 => "the 10% sampled likes stream",
            StreamKind::LikesCompliance => "the likes compliance stream",
            StreamKind::Labels => "the post labels stream",
            StreamKind::Activity => "the X Activity stream",
            StreamKind::Compliance => "the Post compliance stream",
            StreamKind::UserCompliance => "the User compliance stream",
        }
    }

    /// The partitions X serves, for the streams that require `partition`.
    pub fn partitions(self) -> Option<RangeInclusive<u32>> {
        match self {
            StreamKind::Filter
            | StreamKind::Sample
            | StreamKind::LikesCompliance
            | StreamKind::Labels
            | StreamKind::Activity => None,
            StreamKind::Sample10 => Some(1..=SAMPLE10_PARTITIONS),
            StreamKind::Firehose => Some(1..=FIREHOSE_PARTITIONS),
            StreamKind::FirehoseLang(lang) => Some(1..=lang.partitions()),
            StreamKind::LikesFirehose => Some(1..=FIREHOSE_PARTITIONS),
            StreamKind::LikesSample10 => Some(1..=SAMPLE10_PARTITIONS),
            StreamKind::Compliance | StreamKind::UserCompliance => Some(1..=COMPLIANCE_PARTITIONS),
        }
    }

    /// Whether the stream carries compliance events rather than posts.
    pub fn is_compliance(self) -> bool {
        matches!(
            self,
            StreamKind::Compliance
                | StreamKind::UserCompliance
                | StreamKind::LikesCompliance
                | StreamKind::Labels
        )
    }

    /// Whether the stream carries likes (records of kind `like`).
    pub fn is_likes(self) -> bool {
        matches!(self, StreamKind::LikesFirehose | StreamKind::LikesSample10)
    }

    /// Whether the stream takes the post streams' `tweet.fields`, `expansions`, `user.fields`.
    pub fn takes_fields(self) -> bool {
        !self.is_compliance() && !self.is_likes() && self != StreamKind::Activity
    }

    /// The likes streams' own field lists (their expansions are the liked
    /// post's author, not a post's); empty for the other streams.
    pub fn like_query(self, user_fields: &str) -> Vec<(&'static str, String)> {
        if !self.is_likes() {
            return Vec::new();
        }
        let mut q = vec![
            (
                "like_with_tweet_author.fields",
                crate::sources::twitter::likes::LIKE_FIELDS.to_owned(),
            ),
            (
                "expansions",
                crate::sources::twitter::likes::LIKE_EXPANSIONS.to_owned(),
            ),
        ];
        if !user_fields.is_empty() {
            q.push(("user.fields", user_fields.to_owned()));
        }
        q
    }

    /// Whether the stream has rules (and 409 means "no rules").
    pub fn has_rules(self) -> bool {
        self == StreamKind::Filter
    }

    /// What names this stream's state (lock, write-ahead log) beside the
    /// account: each partition is its own process, so each gets its own.
    pub fn state_suffix(self, partition: Option<u32>) -> String {
        match (self, partition) {
            (StreamKind::Filter, _) => String::new(),
            (StreamKind::FirehoseLang(l), Some(p)) => format!("-firehose-lang-{}-p{p}", l.name()),
            (k, Some(p)) => format!("-{}-p{p}", k.name()),
            (k, None) => format!("-{}", k.name()),
        }
    }
}

impl<'de> Deserialize<'de> for StreamKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
        StreamKind::from_name(&name)
            .ok_or_else(|| serde::de::Error::unknown_variant(&name, StreamKind::NAMES))
    }
}

/// `GET /2/likes/firehose/stream`.
pub const LIKES_FIREHOSE_PATH: &str = "/2/likes/firehose/stream";
/// `GET /2/tweets/label/stream`.
pub const LABELS_PATH: &str = "/2/tweets/label/stream";
/// `GET /2/activity/stream`.
pub const ACTIVITY_PATH: &str = "/2/activity/stream";
/// `GET /2/likes/compliance/stream`.
pub const LIKES_COMPLIANCE_PATH: &str = "/2/likes/compliance/stream";
/// `GET /2/likes/sample10/stream`.
pub const LIKES_SAMPLE10_PATH: &str = "/2/likes/sample10/stream";
/// `GET /2/tweets/sample/stream`.
pub const SAMPLE_PATH: &str = "/2/tweets/sample/stream";
/// `GET /2/tweets/sample10/stream`.
pub const SAMPLE10_PATH: &str = "/2/tweets/sample10/stream";
/// `GET /2/tweets/firehose/stream`.
pub const FIREHOSE_PATH: &str = "/2/tweets/firehose/stream";
/// `GET /2/tweets/compliance/stream`.
pub const TWEETS_COMPLIANCE_PATH: &str = "/2/tweets/compliance/stream";
/// `GET /2/users/compliance/stream`.
pub const USERS_COMPLIANCE_PATH: &str = "/2/users/compliance/stream";

/// Partitions of the 10% sampled stream.
pub const SAMPLE10_PARTITIONS: u32 = 2;
/// Partitions of the firehose.
pub const FIREHOSE_PARTITIONS: u32 = 20;
/// Partitions of each compliance stream.
pub const COMPLIANCE_PARTITIONS: u32 = 4;

/// Checks `partition` against the stream before anything is sent to X: the
/// partition to send, or the message of a usage error that names the valid range.
pub fn check_partition(kind: StreamKind, partition: Option<u32>) -> Result<Option<u32>, String> {
    match (kind.partitions(), partition) {
        (None, None) => Ok(None),
        (None, Some(p)) => Err(format!(
            "--partition {p}: {} ({}) has no partitions; remove --partition",
            kind.label(),
            kind.path()
        )),
        (Some(range), None) => Err(format!(
            "{} needs --partition N (N from {} to {}): X splits it into {} partitions, one connection each",
            kind.label(),
            range.start(),
            range.end(),
            range.end()
        )),
        (Some(range), Some(p)) if !range.contains(&p) => Err(format!(
            "--partition {p} is out of range for {}: X serves partitions {} to {}",
            kind.label(),
            range.start(),
            range.end()
        )),
        (Some(_), Some(p)) => Ok(Some(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_language_firehose_has_its_path_partitions_and_state() {
        let ja = StreamKind::FirehoseLang(Lang::Ja);
        assert_eq!(ja.path(), "/2/tweets/firehose/stream/lang/ja");
        assert_eq!(ja.partitions(), Some(1..=2));
        assert_eq!(StreamKind::FirehoseLang(Lang::En).partitions(), Some(1..=8));
        assert_eq!(ja.state_suffix(Some(2)), "-firehose-lang-ja-p2");
        assert!(check_partition(ja, Some(3)).unwrap_err().contains("1 to 2"));
        assert_eq!(
            StreamKind::from_name("firehose-lang"),
            Some(StreamKind::FirehoseLang(Lang::En))
        );
    }

    #[test]
    fn every_name_parses_to_its_kind() {
        for name in StreamKind::NAMES {
            let kind: StreamKind =
                serde::Deserialize::deserialize(serde::de::value::StrDeserializer::<
                    serde::de::value::Error,
                >::new(name))
                .unwrap();
            assert_eq!(kind.name(), *name);
        }
        assert_eq!(StreamKind::default(), StreamKind::Filter);
    }

    #[test]
    fn partitions_follow_x_documented_ranges() {
        use StreamKind::*;
        assert_eq!(check_partition(Filter, None), Ok(None));
        assert_eq!(check_partition(Sample, None), Ok(None));
        assert_eq!(check_partition(Sample10, Some(1)), Ok(Some(1)));
        assert_eq!(check_partition(Sample10, Some(2)), Ok(Some(2)));
        assert_eq!(check_partition(Firehose, Some(20)), Ok(Some(20)));
        assert_eq!(check_partition(Compliance, Some(4)), Ok(Some(4)));
        assert_eq!(check_partition(UserCompliance, Some(1)), Ok(Some(1)));
        for (kind, bad) in [
            (Sample10, 0),
            (Sample10, 3),
            (Firehose, 0),
            (Firehose, 21),
            (Compliance, 5),
            (UserCompliance, 0),
            (Sample10, u32::MAX),
        ] {
            let err = check_partition(kind, Some(bad)).unwrap_err();
            let range = kind.partitions().unwrap();
            assert!(
                err.contains(&format!("partitions 1 to {}", range.end())),
                "{kind:?} {bad}: {err}"
            );
        }
        let err = check_partition(Sample10, None).unwrap_err();
        assert!(
            err.contains("--partition N") && err.contains("1 to 2"),
            "{err}"
        );
        let err = check_partition(Firehose, None).unwrap_err();
        assert!(err.contains("1 to 20"), "{err}");
        for kind in [Filter, Sample] {
            let err = check_partition(kind, Some(1)).unwrap_err();
            assert!(err.contains("has no partitions"), "{err}");
        }
    }

    #[test]
    fn only_the_filtered_stream_has_rules_and_each_partition_its_own_state() {
        assert!(StreamKind::Filter.has_rules());
        assert!(!StreamKind::Firehose.has_rules());
        assert!(StreamKind::Compliance.is_compliance() && !StreamKind::Compliance.takes_fields());
        assert_eq!(StreamKind::Filter.state_suffix(None), "");
        assert_eq!(StreamKind::Sample10.state_suffix(Some(2)), "-sample10-p2");
        assert_eq!(StreamKind::Sample.state_suffix(None), "-sample");
        assert_eq!(StreamKind::Sample10.path(), "/2/tweets/sample10/stream");
        assert_eq!(
            StreamKind::UserCompliance.path(),
            "/2/users/compliance/stream"
        );
    }
}
