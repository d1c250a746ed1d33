//! [`run`]: one source into its sinks through the pipeline, to a summary; and
//! [`Error`], with the one map from every error to its exit code
//! ([`Error::exit_code`], [`source_exit_code`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span};

use crate::config::{ConfigError, NamedSink, ResolveError, Settings};
#[cfg(feature = "mock")]
use crate::mock;
use crate::pipeline::{RunLimits, SinkHandle, SinkSpec, SinkSummary, StopReason};
use crate::record::{NormalizeOptions, RunInfo};
use crate::sinks::{AnySink, BuildError, Sink, SinkError};
use crate::sources::twitter::search::SearchError;
use crate::sources::{Source, SourceContext, SourceCounters, SourceError};
use crate::state::{DeadLetters, StateError};
use crate::{exit_codes, monitor, pipeline, sources, state};

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("sink `{name}` is not ready: {source}")]
    SinkNotReady { name: String, source: SinkError },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    TwitterApi(#[from] sources::twitter::api::ApiError),
    #[cfg(feature = "mock")]
    #[error(transparent)]
    Mock(#[from] mock::MockError),
    #[error(transparent)]
    Telegram(#[from] sources::telegram::api::TelegramError),
    #[error("{0}")]
    MissingSecret(String),
    /// The command needs a client this build was compiled without (exit 78).
    #[error("{0}")]
    CompiledOut(String),
    #[error(transparent)]
    Metrics(#[from] monitor::ListenError),
    #[error(transparent)]
    Webhooks(#[from] sources::twitter::webhooks::manage::WebhooksError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error(transparent)]
    Top(#[from] crate::top::TopError),
    #[error(transparent)]
    Search(#[from] SearchError),
}

impl From<ResolveError> for Error {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::Config(c) => Error::Config(c),
            ResolveError::Usage(u) => Error::Usage(u),
        }
    }
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => exit_codes::CONFIG,
            Error::Usage(_) => exit_codes::USAGE,
            Error::MissingSecret(_) => exit_codes::CONFIG,
            Error::CompiledOut(_) => exit_codes::CONFIG,
            Error::TwitterApi(sources::twitter::api::ApiError::Rules(_)) => exit_codes::CONFIG,
            #[cfg(feature = "mock")]
            Error::Mock(
                mock::MockError::Scenario { .. } | mock::MockError::ScenarioRead { .. },
            ) => exit_codes::CONFIG,
            #[cfg(feature = "mock")]
            Error::Mock(_) => exit_codes::FAILURE,
            Error::Webhooks(
                sources::twitter::webhooks::manage::WebhooksError::Refused { .. }
                | sources::twitter::webhooks::manage::WebhooksError::NotValid { .. }
                | sources::twitter::webhooks::manage::WebhooksError::Invalid(_),
            ) => exit_codes::CONFIG,
            Error::Report(crate::report::ReportError::NoParquet { .. }) => exit_codes::CONFIG,
            Error::Search(SearchError::BadRequest(_)) => exit_codes::CONFIG,
            Error::Top(crate::top::TopError::BadUrl { .. } | crate::top::TopError::NoTerminal) => {
                exit_codes::USAGE
            }
            Error::SinkNotReady { .. }
            | Error::State(_)
            | Error::TwitterApi(_)
            | Error::Telegram(_)
            | Error::Metrics(_)
            | Error::Webhooks(_)
            | Error::Report(_)
            | Error::Search(_)
            | Error::Top(_) => exit_codes::FAILURE,
        }
    }
}

/// The exit code a source's failure asks for: 78 for a search X refuses as
/// malformed (fix the query or the window), else 1.
pub fn source_exit_code(e: &SourceError) -> u8 {
    match e {
        SourceError::Search(SearchError::BadRequest(_)) => exit_codes::CONFIG,
        _ => exit_codes::FAILURE,
    }
}

/// The source's figures in the summary.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SourceSummary {
    pub name: String,
    /// Records the source produced.
    pub records: u64,
    /// Input that could not become a record (in the dead-letter file).
    pub malformed: u64,
    /// Control messages seen (not records).
    pub control: u64,
    /// Items dropped as already seen (X reconnects and backfill).
    pub duplicates: u64,
    /// Connections opened (live sources).
    pub connections: u64,
    /// Items of no kind the source knows, recorded as `activity_event`s (X webhooks).
    #[serde(skip_serializing_if = "is_zero")]
    pub unknown: u64,
    /// Items recorded from a replay job (X webhooks).
    #[serde(skip_serializing_if = "is_zero")]
    pub replayed: u64,
    /// What became of the records' media (with `--media`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Media items by outcome (`--media`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MediaSummary {
    /// Items downloaded and stored.
    pub stored: u64,
    /// Items that pointed at a file stored earlier in the run.
    pub reused: u64,
    /// Items skipped (over `max_bytes`, or a type not asked for).
    pub skipped: u64,
    /// Items that failed for good (marked with `error` in their record).
    pub failed: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// Download attempts retried.
    pub retries: u64,
}

impl MediaSummary {
    fn of(c: &sources::MediaCounters) -> Self {
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        MediaSummary {
            stored: n(&c.stored),
            reused: n(&c.reused),
            skipped: n(&c.skipped),
            failed: n(&c.failed),
            bytes: n(&c.bytes),
            retries: n(&c.retries),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The one-line JSON summary of a run (`--summary`).
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub started_at: String,
    pub elapsed_secs: f64,
    pub stop_reason: StopReason,
    pub source: SourceSummary,
    /// Records that entered the pipeline.
    pub records_in: u64,
    /// Records read past `--max-records` and not delivered.
    pub over_limit: u64,
    pub sinks: BTreeMap<String, SinkSummary>,
    /// Dead-letter entries written by this run (source and sinks).
    pub dead_letters: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_file: Option<String>,
    pub exit_code: u8,
}

/// Builds the sink a config describes (`run` and `check` both go through it).
pub fn build_sink(named: &NamedSink) -> Result<AnySink, Error> {
    let context = |m: String| format!("sink `{}`: {m}", named.name);
    named.config.build(&named.name).map_err(|e| match e {
        BuildError::Invalid(m) => Error::Usage(context(m)),
        BuildError::MissingSecret(m) => Error::MissingSecret(context(m)),
        e @ BuildError::CompiledOut(_) => Error::MissingSecret(context(e.to_string())),
    })
}

/// Checks and starts one sink.
async fn start_sink(
    mut sink: AnySink,
    named: &NamedSink,
    dead_letters: &DeadLetters,
    abort: &CancellationToken,
) -> Result<SinkHandle, Error> {
    match sink.healthcheck().await {
        Ok(()) => {}
        // Not reachable yet (a broker still starting, a network blip): the run
        // starts, records queue, and the sink's retries deliver them later.
        Err(e @ SinkError::Retryable { .. }) => {
            tracing::warn!(sink = %named.name, error = %e, "sink not reachable yet; records will wait and be retried");
        }
        Err(source) => {
            return Err(Error::SinkNotReady {
                name: named.name.clone(),
                source,
            });
        }
    }
    let spec = SinkSpec {
        sink,
        kind: named.config.type_name(),
        config: named.config.common(),
    };
    Ok(pipeline::spawn_sink(
        spec,
        dead_letters.clone(),
        abort.clone(),
    ))
}

async fn start_sinks(
    settings: &Settings,
    dead_letters: &DeadLetters,
    abort: &CancellationToken,
) -> Result<Vec<SinkHandle>, Error> {
    let mut handles = Vec::with_capacity(settings.sinks.len());
    for named in &settings.sinks {
        handles.push(start_sink(build_sink(named)?, named, dead_letters, abort).await?);
    }
    Ok(handles)
}

/// Runs one source into the configured sinks until the input ends, a limit is
/// reached or `shutdown` fires; then drains every sink and returns the summary.
pub async fn run<S: Source>(
    settings: &Settings,
    source: S,
    shutdown: CancellationToken,
) -> Result<RunSummary, Error> {
    let started = Instant::now();
    state::ensure_dir(&settings.state_dir)?;
    state::remove_stale_temp_files(&settings.state_dir);
    let run = Arc::new(RunInfo::new(settings.duration.map(|d| d.as_secs())));
    let dead_letters = DeadLetters::new(&settings.state_dir, &run.id);
    let abort = CancellationToken::new();
    let listener = monitor::Watch::bind(settings.metrics_addr).await?;
    let sinks = start_sinks(settings, &dead_letters, &abort).await?;
    let counters = Arc::new(SourceCounters::default());
    let source_name = source.name();
    let budget = pipeline::MemoryBudget::for_sinks(&sinks);
    let monitor = Arc::new(
        monitor::Monitor::new(
            source_name,
            counters.clone(),
            sinks.iter().map(SinkHandle::probe).collect(),
            settings.unhealthy_after,
        )
        .with_budget(budget.clone()),
    );
    let watch = monitor::Watch::start(&monitor, listener, settings.progress);
    info!(run_id = %run.id, sinks = sinks.len(), "run started");

    let ctx = source_context(settings, &run, &dead_letters, &counters);
    let stop = shutdown.child_token();
    let (tx, rx) = mpsc::channel(pipeline::SOURCE_CHANNEL_CAPACITY);
    let media = media_stage(settings, &budget, &counters)?;
    let out =
        sources::SourceOutput::new(tx, counters.clone(), dead_letters.clone()).with_media(media);
    let source_task = spawn_source(source, ctx, out, &monitor, stop.clone());
    let limits = RunLimits {
        duration: settings.duration,
        max_records: settings.max_records,
        shutdown_timeout: settings.shutdown_timeout,
    };
    let routed = pipeline::route(rx, sinks, limits, budget, stop, shutdown, abort).await;
    let (source_error, source_exit) = match source_task.await {
        Ok(Ok(())) => (None, None),
        Ok(Err(e)) => (Some(e.to_string()), Some(source_exit_code(&e))),
        Err(e) => (Some(format!("the source task panicked: {e}")), None),
    };
    watch.stop().await;
    if let Some(e) = &source_error {
        error!(source = source_name, error = %e, "source failed");
    }
    let written = dead_letters.written();
    let mut summary = summarize(
        &run,
        started,
        source_name,
        &counters,
        routed,
        (source_error, source_exit),
        &dead_letters,
    );
    if settings.media.is_some() {
        summary.source.media = Some(MediaSummary::of(&counters.media));
    }
    log_finish(&summary, written, &dead_letters);
    Ok(summary)
}

/// Starts the source on its own task; the monitor learns when it ends.
fn spawn_source<S: Source>(
    source: S,
    ctx: SourceContext,
    out: sources::SourceOutput,
    monitor: &Arc<monitor::Monitor>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<Result<(), SourceError>> {
    let source_name = source.name();
    let monitor = monitor.clone();
    let source_run = async move {
        let result = source.run(ctx, out, stop).await;
        monitor.source_ended(result.as_ref().err().map(ToString::to_string));
        result
    };
    tokio::spawn(source_run.instrument(info_span!("source", name = source_name)))
}

fn log_finish(summary: &RunSummary, written: u64, dead_letters: &DeadLetters) {
    info!(
        records = summary.records_in,
        dead_letters = summary.dead_letters,
        elapsed_secs = summary.elapsed_secs,
        stop_reason = ?summary.stop_reason,
        "run finished"
    );
    if written > 0 {
        tracing::warn!(entries = written, file = %dead_letters.path().display(), "dead letters written");
    }
}

/// The media stage, when media capture is on.
fn media_stage(
    settings: &Settings,
    budget: &pipeline::MemoryBudget,
    counters: &Arc<SourceCounters>,
) -> Result<Option<Arc<dyn sources::MediaResolver>>, Error> {
    let Some(media) = &settings.media else {
        return Ok(None);
    };
    let stage = crate::media::MediaStage::new(media.clone(), budget.clone(), counters.clone())
        .map_err(|m| Error::Usage(format!("[media]: {m}")))?;
    info!(path = media.path.as_str(), "media capture on");
    Ok(Some(Arc::new(stage)))
}

/// What the source gets besides its output: normalizer options, the state
/// directory, the dead-letter file and its counters.
fn source_context(
    settings: &Settings,
    run: &Arc<RunInfo>,
    dead_letters: &DeadLetters,
    counters: &Arc<SourceCounters>,
) -> SourceContext {
    SourceContext {
        normalize: NormalizeOptions {
            keep_raw: settings.keep_raw,
            transliterate: settings.transliterate,
            run: run.clone(),
            media: settings.media.is_some(),
        },
        state_dir: settings.state_dir.clone(),
        dead_letters: dead_letters.clone(),
        counters: counters.clone(),
    }
}

/// The run's summary from what the source, the router and the dead-letter
/// file report; its exit code is the source's own (78 for a refused search)
/// or 1 when anything failed or went to the dead-letter file, else 0.
fn summarize(
    run: &RunInfo,
    started: Instant,
    source_name: &str,
    counters: &SourceCounters,
    routed: pipeline::RouterOutcome,
    (source_error, source_exit): (Option<String>, Option<u8>),
    dead_letters: &DeadLetters,
) -> RunSummary {
    let written = dead_letters.written();
    let failed = source_error.is_some()
        || routed.flush_failed
        || routed
            .per_sink
            .values()
            .any(|s| s.dead_lettered > 0 || s.lost > 0);
    RunSummary {
        run_id: run.id.clone(),
        started_at: run.started_at.clone(),
        elapsed_secs: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        stop_reason: if source_error.is_some() {
            StopReason::SourceFailed
        } else {
            routed.stop_reason
        },
        source: SourceSummary {
            name: source_name.to_owned(),
            records: counters.records.load(Ordering::Relaxed),
            malformed: counters.malformed.load(Ordering::Relaxed),
            control: counters.control.load(Ordering::Relaxed),
            duplicates: counters.duplicates.load(Ordering::Relaxed),
            connections: counters.connections.load(Ordering::Relaxed),
            unknown: counters.unknown.load(Ordering::Relaxed),
            replayed: counters.replayed.load(Ordering::Relaxed),
            media: None,
            error: source_error,
        },
        records_in: routed.records_in,
        over_limit: routed.dropped_over_limit,
        sinks: routed.per_sink,
        dead_letters: written,
        dead_letter_file: (written > 0).then(|| dead_letters.path().display().to_string()),
        exit_code: if let Some(code) = source_exit.filter(|c| *c != exit_codes::FAILURE) {
            code
        } else if failed {
            exit_codes::FAILURE
        } else {
            exit_codes::SUCCESS
        },
    }
}
