//! The X Account Activity webhooks, by role: `receive` the server's source
//! (CRC answers, signed deliveries to records), `kinds` what a delivery body
//! holds, `manage` the webhook registration endpoints, `activity` the Activity
//! API subscriptions and filtered-stream webhook links, `oauth1` the user
//! credentials the subscription endpoints are signed with, `replay` X's
//! replay jobs, `memory` what the receiver keeps in the state dir between
//! runs (recorded bodies, the last confirmed delivery).

pub mod activity;
pub mod kinds;
pub mod manage;
pub mod memory;
pub mod oauth1;
pub mod receive;
pub mod replay;
