//! Logs as JSON lines, and cache counters as CloudWatch Embedded Metric Format lines.

use std::sync::Mutex;

use livecache_cache::CountsSnapshot;
use livecache_cache::StatsReport;
use livecache_domain::services::VerifyCounts;

/// JSON logs on stdout; level from `RUST_LOG` (default `info`). Safe to call twice.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ =
        tracing_subscriber::fmt().json().with_env_filter(filter).with_current_span(false).with_target(true).try_init();
}

/// Emits the cache counters that moved since the last call as one EMF line.
#[derive(Debug, Default)]
pub struct Metrics {
    last: Mutex<(CountsSnapshot, u64)>,
    last_verify: Mutex<VerifyCounts>,
}

impl Metrics {
    /// `report` and `trips`: the instance's cache statistics and breaker openings so far.
    pub fn emit(&self, function: &str, report: &StatsReport, trips: u64) {
        if let Some(line) = self.line(function, report, trips) {
            println!("{line}");
        }
    }

    /// The EMF line [`emit`](Self::emit) prints: the counters that moved since the last call,
    /// each published twice — per function, and fleet-wide (no dimension), which is what the
    /// alarms and the dashboard's fleet widgets read (a metric with other dimensions is
    /// another metric). None when nothing moved.
    pub fn line(&self, function: &str, report: &StatsReport, trips: u64) -> Option<serde_json::Value> {
        let now = report.counts;
        let (delta, opened) = {
            let mut guard = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let (last, last_trips) = &mut *guard;
            let d = CountsSnapshot {
                hits: now.hits - last.hits,
                misses: now.misses - last.misses,
                stale: now.stale - last.stale,
                fail_safe: now.fail_safe - last.fail_safe,
                loads: now.loads - last.loads,
                load_errors: now.load_errors - last.load_errors,
                errors: now.errors - last.errors,
                ..CountsSnapshot::default()
            };
            let opened = trips - *last_trips;
            (*last, *last_trips) = (now, trips);
            (d, opened)
        };
        if delta == CountsSnapshot::default() && opened == 0 {
            return None;
        }
        Some(emf_line(
            ("function", function),
            DimensionSets::AlsoFleetWide,
            &[
                ("CacheHits", "Count", delta.hits.into()),
                ("CacheMisses", "Count", delta.misses.into()),
                ("CacheStale", "Count", delta.stale.into()),
                ("CacheFailSafe", "Count", delta.fail_safe.into()),
                ("CacheLoads", "Count", delta.loads.into()),
                ("CacheLoadErrors", "Count", delta.load_errors.into()),
                ("CacheErrors", "Count", delta.errors.into()),
                ("CacheBreakerOpened", "Count", opened.into()),
                ("CacheLatencyP99", "Microseconds", report.latency.p99_us.into()),
            ],
        ))
    }
}

impl Metrics {
    /// Emits what the sampled consistency checks found since the last call (see
    /// [`verify_line`](Self::verify_line)).
    pub fn emit_verify(&self, counts: VerifyCounts) {
        if let Some(line) = self.verify_line(counts) {
            println!("{line}");
        }
    }

    /// The EMF line of the sampled consistency checks of product hits that moved since the
    /// last call (dimension `namespace`): consistent, inconsistent (served a value the source
    /// no longer holds, with no invalidation coming), settled (a write in flight). None when
    /// none ran.
    pub fn verify_line(&self, counts: VerifyCounts) -> Option<serde_json::Value> {
        let delta = {
            let mut last = self.last_verify.lock().unwrap_or_else(|p| p.into_inner());
            let d = VerifyCounts {
                consistent: counts.consistent - last.consistent,
                inconsistent: counts.inconsistent - last.inconsistent,
                settled: counts.settled - last.settled,
            };
            *last = counts;
            d
        };
        if delta == VerifyCounts::default() {
            return None;
        }
        Some(emf_line(
            ("namespace", "products"),
            DimensionSets::Only,
            &[
                ("CacheConsistent", "Count", delta.consistent.into()),
                ("CacheInconsistent", "Count", delta.inconsistent.into()),
                ("CacheVerifySettled", "Count", delta.settled.into()),
            ],
        ))
    }
}

/// One log line (target `init`) per cold start saying where its time went, in milliseconds.
pub fn log_init(function: &str, started: std::time::Instant, t: crate::deps::InitTimings, extension_ms: Option<f64>) {
    tracing::info!(
        target: "init",
        function,
        cache_ms = t.cache_ms,
        data_ms = t.data_ms,
        extension_ms = extension_ms.unwrap_or(0.0),
        total_ms = started.elapsed().as_secs_f64() * 1000.0,
        "initialised"
    );
}

/// One EMF line per job run: whether it failed, how long it took, and its lag (how long after
/// its scheduled time it started), for the operators' alarms and dashboard.
pub fn emit_job(job: &str, failed: bool, duration_ms: u64, lag_secs: Option<f64>) {
    println!("{}", job_line(job, failed, duration_ms, lag_secs));
}

/// The EMF line [`emit_job`] prints (per job: each job's lag and failures are their own).
pub fn job_line(job: &str, failed: bool, duration_ms: u64, lag_secs: Option<f64>) -> serde_json::Value {
    emf_line(
        ("job", job),
        DimensionSets::Only,
        &[
            ("JobFailed", "Count", u64::from(failed).into()),
            ("JobDurationMs", "Milliseconds", duration_ms.into()),
            ("JobLagSeconds", "Seconds", lag_secs.unwrap_or(0.0).into()),
        ],
    )
}

/// Which dimension sets a line's metrics are published under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DimensionSets {
    /// Under its one dimension only.
    Only,
    /// Under its dimension and under none (the fleet-wide sum, in the same line).
    AlsoFleetWide,
}

/// One CloudWatch Embedded Metric Format line in the `livecache` namespace: the metrics
/// `(name, unit, value)` under one dimension `(name, value)`, and also under none if `sets` says so.
fn emf_line(
    dimension: (&str, &str),
    sets: DimensionSets,
    metrics: &[(&str, &str, serde_json::Value)],
) -> serde_json::Value {
    let dimensions = match sets {
        DimensionSets::Only => serde_json::json!([[dimension.0]]),
        DimensionSets::AlsoFleetWide => serde_json::json!([[dimension.0], []]),
    };
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": chrono::Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "livecache",
                "Dimensions": dimensions,
                "Metrics": metrics.iter().map(|(name, unit, _)| serde_json::json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }]
        },
        dimension.0: dimension.1,
    });
    for (name, _, value) in metrics {
        line[*name] = value.clone();
    }
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_emf_line_declares_each_metric_and_carries_its_value_and_dimension() {
        let line =
            super::emf_line(("job", "view-sync"), super::DimensionSets::Only, &[("JobFailed", "Count", 1u64.into())]);
        let declared = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], "livecache");
        assert_eq!(declared["Dimensions"], serde_json::json!([["job"]]));
        assert_eq!(declared["Metrics"], serde_json::json!([{"Name": "JobFailed", "Unit": "Count"}]));
        assert_eq!((line["job"].as_str(), line["JobFailed"].as_u64()), (Some("view-sync"), Some(1)));
    }

    #[test]
    fn cache_counters_are_published_per_function_and_fleet_wide() {
        let line = super::Metrics::default().line("feeds", &Default::default(), 1).unwrap();
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["function"], []]));
        assert_eq!(line["CacheBreakerOpened"], 1);
        assert!(super::Metrics::default().line("feeds", &Default::default(), 0).is_none());
    }
}
