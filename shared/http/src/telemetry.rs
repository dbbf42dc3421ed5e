//! Logs as JSON lines, and cache counters as CloudWatch Embedded Metric Format lines.

use std::sync::Mutex;

use livecache_cache::stats::CountsSnapshot;
use livecache_cache::Cache;

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
}

impl Metrics {
    pub fn emit(&self, function: &str, cache: &Cache) {
        let report = cache.report();
        let now = report.counts;
        let trips = cache.backend().circuit_trips();
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
            return;
        }
        let line = serde_json::json!({
            "_aws": {
                "Timestamp": chrono::Utc::now().timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": "livecache",
                    "Dimensions": [["function"]],
                    "Metrics": [
                        {"Name": "CacheHits", "Unit": "Count"},
                        {"Name": "CacheMisses", "Unit": "Count"},
                        {"Name": "CacheStale", "Unit": "Count"},
                        {"Name": "CacheFailSafe", "Unit": "Count"},
                        {"Name": "CacheLoads", "Unit": "Count"},
                        {"Name": "CacheLoadErrors", "Unit": "Count"},
                        {"Name": "CacheErrors", "Unit": "Count"},
                        {"Name": "CacheBreakerOpened", "Unit": "Count"},
                        {"Name": "CacheLatencyP99", "Unit": "Microseconds"}
                    ]
                }]
            },
            "function": function,
            "CacheHits": delta.hits,
            "CacheMisses": delta.misses,
            "CacheStale": delta.stale,
            "CacheFailSafe": delta.fail_safe,
            "CacheLoads": delta.loads,
            "CacheLoadErrors": delta.load_errors,
            "CacheErrors": delta.errors,
            "CacheBreakerOpened": opened,
            "CacheLatencyP99": report.latency.p99_us,
        });
        println!("{line}");
    }
}

/// One EMF line per job run: whether it failed, how long it took, and its lag (how long after
/// its scheduled time it started), for the operators' alarms and dashboard.
pub fn emit_job(job: &str, failed: bool, duration_ms: u64, lag_secs: Option<f64>) {
    let line = serde_json::json!({
        "_aws": {
            "Timestamp": chrono::Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "livecache",
                "Dimensions": [["job"]],
                "Metrics": [
                    {"Name": "JobFailed", "Unit": "Count"},
                    {"Name": "JobDurationMs", "Unit": "Milliseconds"},
                    {"Name": "JobLagSeconds", "Unit": "Seconds"}
                ]
            }]
        },
        "job": job,
        "JobFailed": u64::from(failed),
        "JobDurationMs": duration_ms,
        "JobLagSeconds": lag_secs.unwrap_or(0.0),
    });
    println!("{line}");
}
