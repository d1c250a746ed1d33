//! Filtered-stream rules: the rules file, `--track` conversion, and `sync`.
//!
//! `rules.toml` holds `[[rule]]` tables with `value` and an optional `tag`.
//! `sync` diffs the file against the live rules by (value, tag), validates
//! what is new with `dry_run=true`, deletes what is gone, adds what is new.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::locate::{ConfigError, find_field_line};
use crate::sources::twitter::api::{ApiError, LiveRule, NewRule, TwitterApi};

/// X's limit on a rule's length (Pro and Enterprise allow more; the mock enforces this one).
pub const MAX_RULE_CHARS: usize = 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<NewRule>,
}

/// `--rules-mode`: what `ingest twitter --rules FILE` does with the live rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RulesMode {
    /// Make the live rules equal to the rules file before connecting.
    #[default]
    Sync,
    /// Leave the live rules alone.
    Keep,
}

/// Reads a rules file; errors name the file, the line and the field.
pub fn load(path: &Path) -> Result<Vec<NewRule>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadRules {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Parses rules text (see [`load`]).
pub fn parse(path: &Path, text: &str) -> Result<Vec<NewRule>, ConfigError> {
    let invalid = |line: Option<usize>, field: &str, message: String| ConfigError::Invalid {
        path: Some(path.to_owned()),
        line,
        field: field.to_owned(),
        message,
    };
    let file: RulesFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        invalid(line, "rule", e.message().trim().to_owned())
    })?;
    let rule_lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim().replace(' ', "") == "[[rule]]")
        .map(|(i, _)| i + 1)
        .collect();
    let mut seen = BTreeSet::new();
    for (i, rule) in file.rule.iter().enumerate() {
        let line = rule_lines.get(i).copied();
        if rule.value.trim().is_empty() {
            return Err(invalid(
                line,
                &format!("rule[{i}].value"),
                "a rule's value cannot be empty".into(),
            ));
        }
        if rule.value.chars().count() > MAX_RULE_CHARS {
            return Err(invalid(
                line,
                &format!("rule[{i}].value"),
                format!("a rule is at most {MAX_RULE_CHARS} characters"),
            ));
        }
        if !seen.insert(rule.value.trim()) {
            return Err(invalid(
                line,
                &format!("rule[{i}].value"),
                format!("the rule `{}` appears twice", rule.value),
            ));
        }
    }
    if file.rule.is_empty() {
        return Err(invalid(
            find_field_line(text, "rule"),
            "rule",
            "the file holds no [[rule]] table".into(),
        ));
    }
    Ok(file.rule)
}

/// How many filtered-stream rules the app and its project hold, against
/// their caps (2.167's `GetRuleCountsResponseData`; the caps and the project
/// count are strings there, the app's count a number: both are read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCounts {
    pub client_app_id: Option<String>,
    pub client_app_rules: u64,
    pub cap_per_client_app: u64,
    pub project_rules: u64,
    pub cap_per_project: u64,
}

impl RuleCounts {
    /// Reads X's answer (under `data`); anything else is an error naming what is missing.
    pub fn parse(body: &str) -> Result<RuleCounts, ApiError> {
        let bad = |what: &str| {
            let shown: String = body.chars().take(200).collect();
            ApiError::Decode(format!("rule counts: {what} (answer: {shown})"))
        };
        let v: serde_json::Value =
            serde_json::from_str(body).map_err(|e| bad(&format!("not JSON ({e})")))?;
        let data = v.get("data").ok_or_else(|| bad("no `data`"))?;
        let number = |v: Option<&serde_json::Value>, name: &str| {
            v.and_then(|n| n.as_u64().or_else(|| n.as_str()?.trim().parse().ok()))
                .ok_or_else(|| bad(&format!("no count `{name}`")))
        };
        let app = data.get("client_app_rules_count");
        Ok(RuleCounts {
            client_app_id: app
                .and_then(|a| a.get("client_app_id"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            client_app_rules: number(
                app.and_then(|a| a.get("rule_count")),
                "client_app_rules_count.rule_count",
            )?,
            cap_per_client_app: number(data.get("cap_per_client_app"), "cap_per_client_app")?,
            project_rules: number(data.get("project_rules_count"), "project_rules_count")?,
            cap_per_project: number(data.get("cap_per_project"), "cap_per_project")?,
        })
    }

    /// Tab-separated lines: scope, rules held, cap, what is left.
    pub fn lines(&self) -> Vec<String> {
        let line = |scope: &str, held: u64, cap: u64| {
            format!("{scope}\t{held}\t{cap}\t{}", cap.saturating_sub(held))
        };
        vec![
            line("app", self.client_app_rules, self.cap_per_client_app),
            line("project", self.project_rules, self.cap_per_project),
        ]
    }
}

/// Converts the retired v1.1 `track` syntax (comma = OR, space = AND) into v2
/// rules tagged `track`: one rule, or as many as X's 1024-character limit needs
/// (each an OR of whole comma groups), as v1.1 took far longer `track` lists.
pub fn track_to_rules(track: &str) -> Result<Vec<NewRule>, String> {
    let groups = track_groups(track);
    let groups: Vec<Vec<&str>> = groups
        .iter()
        .map(|g| g.iter().map(String::as_str).collect())
        .collect();
    if groups.is_empty() {
        return Err(
            "--track is empty: give terms like \"rust lang,tokio\" (comma = OR, space = AND)"
                .into(),
        );
    }
    let mut rules: Vec<String> = Vec::new();
    let mut current: Vec<&[&str]> = Vec::new();
    for group in &groups {
        let alone = track_value(&[group]);
        if alone.chars().count() > MAX_RULE_CHARS {
            return Err(format!(
                "--track term \"{}\" is {} characters as a rule; X allows {MAX_RULE_CHARS}",
                group.join(" "),
                alone.chars().count()
            ));
        }
        current.push(group);
        if track_value(&current).chars().count() > MAX_RULE_CHARS {
            current.pop();
            rules.push(track_value(&current));
            current = vec![group];
        }
    }
    rules.push(track_value(&current));
    Ok(rules
        .into_iter()
        .map(|value| NewRule {
            value,
            tag: Some(TRACK_TAG.into()),
        })
        .collect())
}

/// The groups of a `--track` list: comma-separated, each its words.
pub fn track_groups(track: &str) -> Vec<Vec<String>> {
    track
        .split(',')
        .map(|g| g.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|g| !g.is_empty())
        .collect()
}

/// The tags `track:<group>` of the `--track` groups a post matches: every
/// word of the group in its text, as X matches keywords (tokenized, case
/// ignored; `cats` matches `#cats`), a `#tag` in its hashtags or its text.
/// X says which rule matched, not which term: this is decided here.
pub fn track_tags(groups: &[Vec<String>], text: &str, hashtags: &[String]) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for w in text
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '#' | '@' | '$')))
        .filter(|w| !w.is_empty())
    {
        let w = w.to_lowercase();
        let bare = w.trim_start_matches(['#', '@', '$']);
        if bare.len() != w.len() && !bare.is_empty() {
            words.push(bare.to_owned());
        }
        words.push(w);
    }
    let has = |term: &str| {
        let term = term.to_lowercase();
        words.contains(&term)
            || term
                .strip_prefix('#')
                .is_some_and(|t| hashtags.iter().any(|h| h.to_lowercase() == t))
    };
    groups
        .iter()
        .filter(|g| g.iter().all(|term| has(term)))
        .map(|g| format!("{TRACK_TAG}:{}", g.join(" ")))
        .collect()
}

/// One rule's value: the groups ORed, a multi-word group in parentheses.
fn track_value(groups: &[&[&str]]) -> String {
    if let [only] = groups {
        return only.join(" ");
    }
    groups
        .iter()
        .map(|g| {
            if g.len() > 1 {
                format!("({})", g.join(" "))
            } else {
                g[0].to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The tag of the rules `--track` makes: a `--track` run manages those and
/// no others.
pub const TRACK_TAG: &str = "track";

/// Which live rules a sync may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every live rule of the app (`--rules`: the file is the whole set).
    All,
    /// Only the rules with this tag (`--track`'s own); the others stay.
    Tagged(&'a str),
}

/// What `sync` changes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    pub delete: Vec<LiveRule>,
    pub add: Vec<NewRule>,
    pub keep: Vec<LiveRule>,
    /// Live rules outside the sync's scope, left as they are.
    pub others: usize,
}

impl SyncPlan {
    pub fn is_noop(&self) -> bool {
        self.delete.is_empty() && self.add.is_empty()
    }

    /// One line per change, then a summary line.
    pub fn describe(&self) -> Vec<String> {
        let tag = |t: &Option<String>| t.as_ref().map(|t| format!("  [{t}]")).unwrap_or_default();
        let mut out: Vec<String> = self
            .delete
            .iter()
            .map(|r| format!("- {}{}", r.value, tag(&r.tag)))
            .collect();
        out.extend(
            self.add
                .iter()
                .map(|r| format!("+ {}{}", r.value, tag(&r.tag))),
        );
        if self.is_noop() {
            out.push(format!(
                "rules in sync: {} rule(s), nothing to change",
                self.keep.len()
            ));
        } else {
            out.push(format!(
                "{} added, {} deleted, {} kept",
                self.add.len(),
                self.delete.len(),
                self.keep.len()
            ));
        }
        if self.others > 0 {
            out.push(format!(
                "{} other live rule(s) of the app left in place",
                self.others
            ));
        }
        out
    }
}

/// Diffs live rules against wanted ones by (value, tag); a live rule outside
/// `scope` is never deleted.
pub fn plan(live: &[LiveRule], wanted: &[NewRule], scope: Scope<'_>) -> SyncPlan {
    let key = |v: &str, t: &Option<String>| (v.trim().to_owned(), t.clone());
    let wanted_keys: BTreeSet<_> = wanted.iter().map(|r| key(&r.value, &r.tag)).collect();
    let live_keys: BTreeSet<_> = live.iter().map(|r| key(&r.value, &r.tag)).collect();
    let mut plan = SyncPlan::default();
    for r in live {
        let ours = match scope {
            Scope::All => true,
            Scope::Tagged(tag) => r.tag.as_deref() == Some(tag),
        };
        if wanted_keys.contains(&key(&r.value, &r.tag)) {
            plan.keep.push(r.clone());
        } else if ours {
            plan.delete.push(r.clone());
        } else {
            plan.others += 1;
        }
    }
    plan.add = wanted
        .iter()
        .filter(|r| !live_keys.contains(&key(&r.value, &r.tag)))
        .cloned()
        .collect();
    plan
}

/// Makes the live rules in `scope` equal to `wanted`: validate new rules,
/// delete, add.
pub async fn sync(
    api: &TwitterApi,
    wanted: &[NewRule],
    scope: Scope<'_>,
) -> Result<SyncPlan, ApiError> {
    let live = api.rules().await?;
    let plan = plan(&live, wanted, scope);
    // Validate first (dry run), so a bad rule changes nothing. A re-tagged rule
    // keeps its value, which X already accepted, and would only be reported as
    // a duplicate of the rule about to be deleted: leave it out of the dry run.
    let to_validate: Vec<NewRule> = plan
        .add
        .iter()
        .filter(|r| !plan.delete.iter().any(|d| d.value.trim() == r.value.trim()))
        .cloned()
        .collect();
    api.add_rules(&to_validate, true).await?;
    api.delete_rules(&plan.delete.iter().map(|r| r.id.clone()).collect::<Vec<_>>())
        .await?;
    api.add_rules(&plan.add, false).await?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_counts_are_read_as_2_167_spells_them_and_bad_answers_are_errors() {
        let body = r#"{"data":{"cap_per_client_app":"1000","cap_per_project":"5000","project_rules_count":"7","client_app_rules_count":{"client_app_id":"29884211","rule_count":3}}}"#;
        let c = RuleCounts::parse(body).unwrap();
        assert_eq!(c.client_app_rules, 3);
        assert_eq!(c.client_app_id.as_deref(), Some("29884211"));
        assert_eq!(c.lines(), ["app\t3\t1000\t997", "project\t7\t5000\t4993"]);
        for bad in [
            "",
            "{",
            r#"{"errors":[{"title":"x"}]}"#,
            r#"{"data":{"cap_per_client_app":"lots","cap_per_project":"5","project_rules_count":"1","client_app_rules_count":{"rule_count":1}}}"#,
            r#"{"data":{"cap_per_client_app":"5","cap_per_project":"5","project_rules_count":"-1","client_app_rules_count":{"rule_count":1}}}"#,
            r#"{"data":{"cap_per_client_app":"5","cap_per_project":"5","project_rules_count":"1"}}"#,
        ] {
            let e = RuleCounts::parse(bad).unwrap_err().to_string();
            assert!(e.contains("rule counts"), "{bad}: {e}");
        }
    }

    fn live(id: &str, value: &str, tag: Option<&str>) -> LiveRule {
        LiveRule {
            id: id.into(),
            value: value.into(),
            tag: tag.map(Into::into),
        }
    }
    fn new(value: &str, tag: Option<&str>) -> NewRule {
        NewRule {
            value: value.into(),
            tag: tag.map(Into::into),
        }
    }

    fn one(track: &str) -> String {
        let rules = track_to_rules(track).unwrap();
        assert_eq!(rules.len(), 1, "{rules:?}");
        rules[0].value.clone()
    }

    /// Each post is tagged with the `--track` groups its text holds.
    #[test]
    fn track_tags_name_the_groups_a_post_matched() {
        let groups = track_groups("#F1, rust lang ,Cats");
        assert_eq!(groups, [vec!["#F1"], vec!["rust", "lang"], vec!["Cats"]]);
        let tags = |text: &str, hashtags: &[&str]| {
            let hashtags: Vec<String> = hashtags.iter().map(|h| h.to_string()).collect();
            track_tags(&groups, text, &hashtags)
        };
        assert_eq!(tags("Race day #f1!", &["f1"]), ["track:#F1"]);
        assert_eq!(
            tags("lang of rust; #cats", &[]),
            ["track:rust lang", "track:Cats"]
        );
        assert!(tags("F1 rusty language concatenate", &[]).is_empty());
        assert_eq!(tags("no text but", &["F1"]), ["track:#F1"]);
    }

    #[test]
    fn track_syntax_becomes_one_rule() {
        assert_eq!(one("a b,c"), "(a b) OR c");
        assert_eq!(one("rust"), "rust");
        assert_eq!(one("rust lang"), "rust lang");
        assert_eq!(one(" x , y  z ,, w"), "x OR (y z) OR w");
        assert!(track_to_rules(" , ").is_err());
        assert!(
            track_to_rules(&"w".repeat(1100))
                .unwrap_err()
                .contains("characters")
        );
    }

    #[test]
    fn a_long_track_list_splits_into_rules_within_the_limit() {
        let terms: Vec<String> = (0..600).map(|i| format!("term{i} x{i}")).collect();
        let track = terms.join(",");
        let rules = track_to_rules(&track).unwrap();
        assert!(rules.len() > 1, "{} rules", rules.len());
        for rule in &rules {
            assert!(
                rule.value.chars().count() <= MAX_RULE_CHARS,
                "{}",
                rule.value
            );
            assert_eq!(rule.tag.as_deref(), Some("track"));
        }
        // Every group is in exactly one rule, in order, and nothing else is.
        let back: Vec<String> = rules
            .iter()
            .flat_map(|r| r.value.split(" OR ").map(str::to_owned).collect::<Vec<_>>())
            .collect();
        let want: Vec<String> = terms.iter().map(|t| format!("({t})")).collect();
        assert_eq!(back, want);
        // Packed: no two neighbours would have fit in one rule.
        for pair in rules.windows(2) {
            let joined = format!("{} OR {}", pair[0].value, pair[1].value);
            assert!(joined.chars().count() > MAX_RULE_CHARS);
        }
    }

    #[test]
    fn plan_diffs_by_value_and_tag() {
        let rules = [
            live("1", "cats", Some("pets")),
            live("2", "dogs", None),
            live("3", "birds", Some("old")),
        ];
        let wanted = [
            new("cats", Some("pets")),
            new("birds", Some("new")),
            new("fish", None),
        ];
        let p = plan(&rules, &wanted, Scope::All);
        assert_eq!(
            p.keep.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["1"]
        );
        assert_eq!(
            p.delete.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["2", "3"]
        );
        assert_eq!(p.add, [new("birds", Some("new")), new("fish", None)]);
        assert_eq!(p.describe().last().unwrap(), "2 added, 2 deleted, 1 kept");
        let same = plan(
            &[live("1", "cats", Some("pets"))],
            &[new("cats", Some("pets"))],
            Scope::All,
        );
        assert!(same.is_noop());
        assert_eq!(
            same.describe(),
            ["rules in sync: 1 rule(s), nothing to change"]
        );
    }

    #[test]
    fn a_tagged_scope_deletes_only_its_own_rules() {
        let rules = [
            live("1", "old terms", Some(TRACK_TAG)),
            live("2", "production", Some("prod")),
            live("3", "untagged", None),
            live("4", "cats", Some(TRACK_TAG)),
        ];
        let wanted = [new("cats", Some(TRACK_TAG)), new("dogs", Some(TRACK_TAG))];
        let p = plan(&rules, &wanted, Scope::Tagged(TRACK_TAG));
        assert_eq!(
            p.delete.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["1"]
        );
        assert_eq!(p.add, [new("dogs", Some(TRACK_TAG))]);
        assert_eq!((p.keep.len(), p.others), (1, 2));
        assert_eq!(
            p.describe().last().unwrap(),
            "2 other live rule(s) of the app left in place"
        );
        let all = plan(&rules, &wanted, Scope::All);
        assert_eq!(all.delete.len(), 3);
    }

    #[test]
    fn rules_files_are_checked() {
        let p = Path::new("rules.toml");
        let rules = parse(
            p,
            "[[rule]]\nvalue = \"cats has:images\"\ntag = \"cats\"\n\n[[rule]]\nvalue = \"dogs\"\n",
        )
        .unwrap();
        assert_eq!(
            rules,
            [new("cats has:images", Some("cats")), new("dogs", None)]
        );
        let err = parse(p, "[[rule]]\nvalue = \"a\"\n[[rule]]\nvalue = \"\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rules.toml line 3") && err.contains("empty"),
            "{err}"
        );
        let err = parse(p, "[[rule]]\nvalue = \"a\"\n[[rule]]\nvalue = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("twice"), "{err}");
        let err = parse(p, "[[rule]]\nvalue = \"a\"\nlabel = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown field") && err.contains("line"),
            "{err}"
        );
        assert!(
            parse(p, "")
                .unwrap_err()
                .to_string()
                .contains("no [[rule]]")
        );
        let long = format!("[[rule]]\nvalue = \"{}\"\n", "x".repeat(1025));
        assert!(parse(p, &long).unwrap_err().to_string().contains("1024"));
    }
}
