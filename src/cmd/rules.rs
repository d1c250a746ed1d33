//! `ingest rules list|counts|validate|sync|clear`: the X filtered stream's rules.

use std::io::Write;

use super::twitter::missing_token;
use crate::cli::{RulesAction, RulesCommon};
use crate::config::LoadedConfig;
use crate::run::Error;
use crate::secret::Secret;
use crate::sources::twitter::api::{BEARER_TOKEN_VARS, NewRule, TwitterApi};
use crate::sources::twitter::api_base;
use crate::sources::twitter::stream::rules;

fn api_for(common: &RulesCommon, loaded: &LoadedConfig) -> Result<TwitterApi, Error> {
    let token = Secret::from_env(&BEARER_TOKEN_VARS).ok_or_else(missing_token)?;
    Ok(TwitterApi::new(
        &api_base(common.api.twitter_api_base.as_deref(), &loaded.file.twitter),
        token,
    )?)
}

pub async fn run(action: RulesAction, loaded: &LoadedConfig) -> Result<u8, Error> {
    let mut out = Vec::new();
    match action {
        RulesAction::List(common) => {
            let api = api_for(&common, loaded)?;
            for r in api.rules().await? {
                writeln!(out, "{}\t{}\t{}", r.id, r.value, r.tag.unwrap_or_default())
                    .expect("writing to a Vec");
            }
        }
        RulesAction::Counts(common) => {
            let body = api_for(&common, loaded)?.rule_counts().await?;
            for line in rules::RuleCounts::parse(&body)?.lines() {
                writeln!(out, "{line}").expect("writing to a Vec");
            }
        }
        RulesAction::Validate {
            rules: path,
            common,
        } => {
            let wanted = rules::load(&path)?;
            let api = api_for(&common, loaded)?;
            // A rule already live is valid (X accepted it); X's dry run would
            // call it a duplicate, so only the others are sent.
            let live = api.rules().await?;
            let is_live = |r: &NewRule| live.iter().any(|l| l.value.trim() == r.value.trim());
            let new: Vec<NewRule> = wanted.iter().filter(|r| !is_live(r)).cloned().collect();
            api.add_rules(&new, true).await?;
            let already = wanted.len() - new.len();
            writeln!(
                out,
                "{} rule(s) valid ({already} already live)",
                wanted.len()
            )
            .expect("writing to a Vec");
        }
        RulesAction::Sync {
            rules: path,
            common,
        } => {
            let wanted = rules::load(&path)?;
            let api = api_for(&common, loaded)?;
            for line in rules::sync(&api, &wanted, rules::Scope::All)
                .await?
                .describe()
            {
                writeln!(out, "{line}").expect("writing to a Vec");
            }
        }
        RulesAction::Clear { yes, common } => {
            if !yes {
                return Err(Error::Usage(
                    "`rules clear` deletes every live rule: add --yes to confirm".into(),
                ));
            }
            let api = api_for(&common, loaded)?;
            let live = api.rules().await?;
            api.delete_rules(&live.iter().map(|r| r.id.clone()).collect::<Vec<_>>())
                .await?;
            writeln!(out, "{} rule(s) deleted", live.len()).expect("writing to a Vec");
        }
    }
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| Error::Usage(format!("cannot write to standard output: {e}")))?;
    Ok(crate::exit_codes::SUCCESS)
}
