//! The command line's words handed to the connectors as plain data: each
//! connector's `config::resolve` takes its `*Flags` (never a clap type), so
//! the connectors sit below the command line and resolve their own keys.

use super::{
    KafkaArgs, MediaArgs, ReplayArgs, TelegramArgs, TwitterArgs, TwitterCountsArgs,
    TwitterSearchArgs, TwitterWebhookArgs,
};
use crate::sources::kafka::KafkaFlags;
use crate::sources::replay::ReplayFlags;
use crate::sources::telegram::config::TelegramFlags;
use crate::sources::twitter::search::config::SearchFlags;
use crate::sources::twitter::search::counts::config::CountsFlags;
use crate::sources::twitter::stream::config::StreamFlags;
use crate::sources::twitter::webhooks::replay::ReplayOnStart;

impl TwitterWebhookArgs {
    pub fn replay_flags(&self) -> ReplayOnStart {
        ReplayOnStart {
            webhook_id: self.webhook_id.clone(),
            after: self.replay_after,
            enabled: !self.no_replay,
        }
    }
}

impl TwitterArgs {
    pub fn flags(&self) -> StreamFlags {
        StreamFlags {
            api_base: self.api.twitter_api_base.clone(),
            rules: self.rules.clone(),
            track: self.track.clone(),
            rules_mode: self.rules_mode,
            stream: self.stream,
            partition: self.partition,
            lang: self.lang,
            stall_timeout: self.stall_timeout,
            reset_connections: self.reset_connections,
            buffer: self.buffer,
            tweet_fields: self.tweet_fields.clone(),
            expansions: self.expansions.clone(),
            user_fields: self.user_fields.clone(),
            backfill_minutes: self.backfill_minutes,
            mock: self.mock.then(|| self.mock_scenario.clone()),
        }
    }
}

impl TwitterSearchArgs {
    pub fn flags(&self) -> SearchFlags {
        SearchFlags {
            api_base: self.api.twitter_api_base.clone(),
            query: self.query.clone(),
            archive: self.archive,
            start_time: self.start_time.clone(),
            end_time: self.end_time.clone(),
            since_id: self.since_id.clone(),
            until_id: self.until_id.clone(),
            poll: self.poll,
            tweet_fields: self.tweet_fields.clone(),
            expansions: self.expansions.clone(),
            user_fields: self.user_fields.clone(),
            mock: self.mock.then(|| self.mock_scenario.clone()),
        }
    }
}

impl TwitterCountsArgs {
    pub fn flags(&self) -> CountsFlags {
        CountsFlags {
            search: SearchFlags {
                api_base: self.api.twitter_api_base.clone(),
                query: self.query.clone(),
                archive: self.archive,
                start_time: self.start_time.clone(),
                end_time: self.end_time.clone(),
                mock: self.mock.then(|| self.mock_scenario.clone()),
                ..SearchFlags::default()
            },
            granularity: self.granularity,
        }
    }
}

impl KafkaArgs {
    pub fn flags(&self) -> KafkaFlags {
        KafkaFlags {
            brokers: self.brokers.clone(),
            topics: self.topics.clone(),
            group: self.group.clone(),
            from: self.from,
            platform: self.platform,
            until_idle: self.until_idle,
        }
    }
}

impl ReplayArgs {
    pub fn flags(&self) -> ReplayFlags {
        ReplayFlags {
            input: self.input.clone(),
            platform: self.platform,
            max_line_bytes: self.max_line_bytes,
        }
    }
}

impl MediaArgs {
    pub fn flags(&self) -> crate::media::MediaFlags {
        crate::media::MediaFlags {
            media: self.media,
            video: self.media_video,
        }
    }
}

impl TelegramArgs {
    pub fn flags(&self) -> TelegramFlags {
        TelegramFlags {
            api_base: self.telegram_api_base.clone(),
            chat_ids: self.chat_ids.clone(),
            allowed_updates: self.allowed_updates.clone(),
            poll_timeout: self.poll_timeout,
            webhook_path: self.webhook_path.clone(),
        }
    }
}
