//! The mock Telegram Bot API's scenario file: the update queue's size and
//! pace, the accepted token, a webhook set at start, and scripted
//! `getUpdates` answers.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::mock::MockError;

/// One scripted `getUpdates` answer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallScript {
    pub status: u16,
    /// With 409: `webhook` (a webhook is set) or `other_poller`.
    pub kind: Option<String>,
    /// With 429: seconds to wait.
    pub retry_after: u64,
    pub delay_ms: u64,
}

impl Default for CallScript {
    fn default() -> Self {
        CallScript {
            status: 200,
            kind: None,
            retry_after: 1,
            delay_ms: 0,
        }
    }
}

/// The scenario file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramScenario {
    /// Updates queued at start.
    pub updates: u64,
    /// New updates per second after that; 0 = none.
    pub rate: f64,
    /// Stop producing updates after this many in all (0 = never).
    pub total_updates: u64,
    /// Accept only this bot token (absent: any well-formed token).
    pub token: Option<String>,
    /// Start with this webhook set (`getUpdates` then answers 409).
    pub webhook_url: Option<String>,
    /// Scripts for the first `getUpdates` answers, in order.
    pub call: Vec<CallScript>,
    /// The bot's `allowed_updates` setting at start, as an earlier call left
    /// it (empty: the Bot API's default, every type but the opt-in ones).
    pub allowed_updates: Vec<String>,
    /// After the `updates` messages, queue one update of every other `Update`
    /// field the Bot API lists (those the setting lets the bot have).
    pub every_type: bool,
    /// Hold every file download this long before answering (a slow file
    /// server, for tests that stop a run in the middle of its downloads).
    pub media_delay_ms: u64,
    /// File download errors quote the request path, bot token included (as
    /// some proxies and error pages do): for redaction tests.
    pub echo_path_in_errors: bool,
    /// Every message carries a photo of its own of this many bytes (0: the
    /// catalog's media on every fifth message): media benchmarks.
    pub distinct_photo_bytes: u64,
}

impl Default for TelegramScenario {
    fn default() -> Self {
        TelegramScenario {
            updates: 40,
            rate: 0.0,
            total_updates: 0,
            token: None,
            webhook_url: None,
            call: Vec::new(),
            allowed_updates: Vec::new(),
            every_type: true,
            media_delay_ms: 0,
            echo_path_in_errors: false,
            distinct_photo_bytes: 0,
        }
    }
}

impl TelegramScenario {
    pub fn load(path: &Path) -> Result<Self, MockError> {
        crate::mock::load_scenario(path, |s: &TelegramScenario| {
            let valid = s.rate >= 0.0 && s.rate.is_finite();
            valid.then_some(()).ok_or("rate must be >= 0")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(
            &p,
            "updates = 3\n[[call]]\nstatus = 409\nkind = \"webhook\"\n",
        )
        .unwrap();
        let s = TelegramScenario::load(&p).unwrap();
        assert_eq!(
            (s.updates, s.call[0].status, s.call[0].retry_after),
            (3, 409, 1)
        );
        std::fs::write(&p, "rate = -1.0\n").unwrap();
        assert!(TelegramScenario::load(&p).is_err());
        std::fs::write(&p, "updates = 1\n[[call]]\nstatuss = 1\n").unwrap();
        let err = TelegramScenario::load(&p).unwrap_err().to_string();
        assert!(
            err.contains("line 3") && err.contains("unknown field"),
            "{err}"
        );
    }
}
