//! The mock X API's scenario file: the stream's pace and one script per
//! connection attempt (see `examples/scenario.toml`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::rules::NewRule;
use crate::mock::MockError;

/// What ends a scripted connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Keep streaming.
    #[default]
    None,
    /// End the body cleanly.
    Close,
    /// Send half of the next tweet's line, then end the body.
    CutMidLine,
    /// Send nothing more, not even keep-alives, and keep the connection open.
    Stall,
    /// Send X's `operational-disconnect` error line, then end the body.
    OperationalDisconnect,
}

/// One connection attempt's script.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionScript {
    /// Answer this status instead of a stream (401, 429, 503, …).
    pub status: u16,
    /// With 429: say `TooManyConnections` (another connection holds the stream).
    pub too_many_connections: bool,
    /// Wait this long before answering (a slow server).
    pub delay_ms: u64,
    /// Start by sending again the last N tweets already sent (what a reconnect or backfill does).
    pub duplicates: u64,
    /// Then send N tweets at once, unpaced.
    pub burst: u64,
    /// Then send this many paced tweets before the fault (absent: no limit).
    pub tweets: Option<u64>,
    /// What happens after `tweets`.
    pub fault: Fault,
}

impl Default for ConnectionScript {
    fn default() -> Self {
        ConnectionScript {
            status: 200,
            too_many_connections: false,
            delay_ms: 0,
            duplicates: 0,
            burst: 0,
            tweets: None,
            fault: Fault::None,
        }
    }
}

/// The scenario file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Tweets per second on a healthy connection; 0 = as fast as possible.
    pub rate: f64,
    /// Send `\r\n` after this many seconds without a tweet.
    pub keepalive_secs: f64,
    /// Stop producing tweets after this many in all (0 = never); keep-alives go on.
    pub total_tweets: u64,
    /// Start with these rules (`[[rule]] value, tag`), as if synced before.
    pub rule: Vec<NewRule>,
    /// Scripts for the first connection attempts, in order.
    pub connection: Vec<ConnectionScript>,
    /// The search endpoints: corpus, rate-limit budget, scripted calls.
    pub search: super::SearchScenario,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            rate: 20.0,
            keepalive_secs: 20.0,
            total_tweets: 0,
            rule: Vec::new(),
            connection: Vec::new(),
            search: super::SearchScenario::default(),
        }
    }
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Self, MockError> {
        crate::mock::load_scenario(path, |s: &Scenario| {
            let valid = s.rate >= 0.0
                && s.rate.is_finite()
                && s.keepalive_secs > 0.0
                && s.keepalive_secs.is_finite();
            valid
                .then_some(())
                .ok_or("rate must be >= 0 and keepalive_secs > 0")
        })
    }

    /// The script of connection attempt `index` (a healthy stream past the list).
    pub fn script(&self, index: usize) -> ConnectionScript {
        self.connection.get(index).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(&p, "rate = 5.0\n[[connection]]\nstatus = 503\n[[connection]]\ntweets = 3\nfault = \"cut_mid_line\"\n").unwrap();
        let s = Scenario::load(&p).unwrap();
        assert_eq!(s.connection.len(), 2);
        assert_eq!(s.connection[1].fault, Fault::CutMidLine);
        std::fs::write(&p, "rate = 5.0\n[[connection]]\nfault = \"explode\"\n").unwrap();
        let err = Scenario::load(&p).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("explode"), "{err}");
        std::fs::write(&p, "rate = -1.0\n").unwrap();
        assert!(Scenario::load(&p).is_err());
        std::fs::write(&p, "rat = 1.0\n").unwrap();
        assert!(
            Scenario::load(&p)
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
    }

    #[test]
    fn the_example_scenario_parses() {
        Scenario::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/scenario.toml"
        )))
        .unwrap();
    }

    #[test]
    fn attempts_past_the_list_get_a_healthy_stream() {
        let s = Scenario {
            connection: vec![ConnectionScript {
                status: 503,
                ..ConnectionScript::default()
            }],
            ..Scenario::default()
        };
        assert_eq!(s.script(0).status, 503);
        assert_eq!(s.script(1).status, 200);
        assert_eq!(s.script(1).fault, Fault::None);
    }
}
