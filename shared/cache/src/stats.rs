//! Statistics: lock-free counters and a latency histogram per instance, flushed as deltas into
//! shared Redis hashes, so the stats endpoint can report every instance.
//!
//! An instance adds to one of [`STATS_SHARDS`](crate::keys::STATS_SHARDS) values, picked at
//! random when it starts, each holding every counter packed (one `BITFIELD` command adds a
//! flush's deltas), at most once per flush interval (and when it shuts down), not per request: 1,000 instances flushing every 10 s make 100 writes a second spread over the
//! shards (25 per value) — next to nothing for one Redis shard — and a warm hit costs one
//! command.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::kv::Counters;

/// Histogram buckets: 8 per decade from 1 µs to 100 s.
const BUCKETS: usize = 8 * 8 + 1;

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Per-instance counters.
        #[derive(Debug, Default)]
        pub struct Counts { $(pub $name: AtomicU64,)* }

        /// A point-in-time copy of `Counts`.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
        pub struct CountsSnapshot { $(pub $name: u64,)* }

        impl Counts {
            fn snapshot(&self) -> CountsSnapshot {
                CountsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        impl CountsSnapshot {
            fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }

            fn from_map(m: &HashMap<String, i64>) -> Self {
                Self { $($name: m.get(stringify!($name)).copied().unwrap_or(0).max(0) as u64,)* }
            }

            fn minus(&self, o: &Self) -> Self {
                Self { $($name: self.$name.saturating_sub(o.$name),)* }
            }
        }
    };
}

// `voided`: fills dropped because their key was invalidated while they loaded.
// `revalidated`: hits whose value came from this instance's L1 copy, confirmed unchanged by
// the same round trip that read the stamps.
counters!(
    hits,
    misses,
    stale,
    fail_safe,
    coalesced,
    loads,
    load_errors,
    sets,
    deletes,
    invalidations,
    errors,
    decode_errors,
    refreshes,
    voided,
    revalidated
);

#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self { buckets: std::array::from_fn(|_| AtomicU64::new(0)), sum_us: AtomicU64::new(0) }
    }
}

fn bucket_of(us: u64) -> usize {
    if us <= 1 {
        return 0;
    }
    (((us as f64).log10() * 8.0).ceil() as usize).min(BUCKETS - 1)
}

/// Upper bound of bucket `i` in microseconds.
fn bucket_bound(i: usize) -> f64 {
    10f64.powf(i as f64 / 8.0)
}

impl Histogram {
    pub fn record(&self, d: Duration) {
        let us = d.as_micros() as u64;
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn counts(&self) -> [u64; BUCKETS] {
        std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed))
    }
}

/// Latency figures in microseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

fn latency_of(buckets: &[u64], sum_us: u64) -> Latency {
    let count: u64 = buckets.iter().sum();
    if count == 0 {
        return Latency::default();
    }
    let pct = |p: f64| {
        let rank = ((count as f64) * p).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (i, n) in buckets.iter().enumerate() {
            acc += n;
            if acc >= rank {
                return bucket_bound(i);
            }
        }
        bucket_bound(BUCKETS - 1)
    };
    Latency { count, mean_us: sum_us as f64 / count as f64, p50_us: pct(0.50), p99_us: pct(0.99) }
}

/// What the stats endpoint shows: counters, hit rate and latency.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct StatsReport {
    #[serde(flatten)]
    pub counts: CountsSnapshot,
    /// hits (fresh and stale) over lookups.
    pub hit_rate: f64,
    pub latency: Latency,
}

impl StatsReport {
    fn new(counts: CountsSnapshot, buckets: &[u64], sum_us: u64) -> Self {
        let served = counts.hits + counts.stale + counts.coalesced;
        let lookups = served + counts.misses;
        Self {
            counts,
            hit_rate: if lookups == 0 { 0.0 } else { served as f64 / lookups as f64 },
            latency: latency_of(buckets, sum_us),
        }
    }
}

/// The aggregate's packed counters, in slot order: the counters, the latency buckets, the
/// latency sum.
fn slot_names() -> Vec<String> {
    let counters = CountsSnapshot::default().fields().into_iter().map(|(k, _)| k.to_string());
    counters.chain((0..BUCKETS).map(|i| format!("lat_b{i}"))).chain(["lat_sum_us".to_string()]).collect()
}

/// Counters, latency buckets and latency sum at one moment.
type Figures = (CountsSnapshot, [u64; BUCKETS], u64);

#[derive(Debug)]
pub struct Stats {
    pub counts: Counts,
    pub latency: Histogram,
    /// What was last added to the shared hash, so a flush sends only the difference.
    flushed: Mutex<Figures>,
    /// The aggregate shard this instance adds to.
    shard: u32,
    /// Clock time (ms) of the last flush by [`flush_if_due`](Self::flush_if_due); 0 before the
    /// first call, which starts the first period.
    last_flush_ms: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            counts: Counts::default(),
            latency: Histogram::default(),
            flushed: Mutex::new((CountsSnapshot::default(), [0; BUCKETS], 0)),
            shard: rand::random::<u32>() % crate::keys::STATS_SHARDS,
            last_flush_ms: AtomicU64::new(0),
        }
    }
}

impl Stats {
    pub fn incr(&self, c: impl Fn(&Counts) -> &AtomicU64) {
        c(&self.counts).fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, c: impl Fn(&Counts) -> &AtomicU64, n: u64) {
        c(&self.counts).fetch_add(n, Ordering::Relaxed);
    }

    /// This instance's figures since it started.
    pub fn report(&self) -> StatsReport {
        StatsReport::new(self.counts.snapshot(), &self.latency.counts(), self.latency.sum_us.load(Ordering::Relaxed))
    }

    /// The aggregate shard this instance adds to.
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// Whether a flush is due at `now_ms`, `every` after the previous one (the first call
    /// starts the first period); claims the slot when it is.
    pub fn flush_due(&self, now_ms: u64, every: Duration) -> bool {
        let last = self.last_flush_ms.load(Ordering::Relaxed);
        if last == 0 {
            let _ = self.last_flush_ms.compare_exchange(0, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed);
            return false;
        }
        now_ms.saturating_sub(last) >= every.as_millis() as u64
            && self.last_flush_ms.compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    /// What changed since the last flush, as hash fields (and the figures it was taken from).
    fn unflushed(&self) -> (Vec<(String, i64)>, Figures) {
        let now = (self.counts.snapshot(), self.latency.counts(), self.latency.sum_us.load(Ordering::Relaxed));
        let before = *self.flushed.lock().unwrap_or_else(|p| p.into_inner());
        let delta = now.0.minus(&before.0);
        let mut fields: Vec<(String, i64)> =
            delta.fields().into_iter().filter(|(_, n)| *n > 0).map(|(k, n)| (k.to_string(), n as i64)).collect();
        for (i, (n, b)) in now.1.iter().zip(before.1.iter()).enumerate() {
            if n > b {
                fields.push((format!("lat_b{i}"), (n - b) as i64));
            }
        }
        if now.2 > before.2 {
            fields.push(("lat_sum_us".into(), (now.2 - before.2) as i64));
        }
        (fields, now)
    }

    /// Adds what changed since the last flush to the shared hash `key`.
    pub async fn flush(&self, counters: &dyn Counters, key: &str) -> Result<()> {
        let (fields, now) = self.unflushed();
        if fields.is_empty() {
            return Ok(());
        }
        // One command: the deltas land in the shard's packed counters.
        let names = slot_names();
        let deltas: Vec<(u32, i64)> =
            fields.iter().filter_map(|(f, n)| names.iter().position(|x| x == f).map(|i| (i as u32, *n))).collect();
        counters.add_slots(key, &deltas).await?;
        *self.flushed.lock().unwrap_or_else(|p| p.into_inner()) = now;
        Ok(())
    }

    /// Every instance's figures: what was flushed into the shard hashes `keys` (read in
    /// parallel, one command each) plus what this instance has not flushed yet (no write).
    pub async fn aggregate(&self, counters: &dyn Counters, keys: &[String]) -> Result<StatsReport> {
        let shards = futures::future::try_join_all(keys.iter().map(|k| counters.slots(k))).await?;
        let names = slot_names();
        let flushed = shards.into_iter().flat_map(|s| s.into_iter().zip(names.iter().cloned()).map(|(n, f)| (f, n)));
        let mut m: HashMap<String, i64> = HashMap::new();
        for (field, n) in flushed.chain(self.unflushed().0) {
            *m.entry(field).or_insert(0) += n;
        }
        let buckets: Vec<u64> =
            (0..BUCKETS).map(|i| m.get(&format!("lat_b{i}")).copied().unwrap_or(0).max(0) as u64).collect();
        let sum = m.get("lat_sum_us").copied().unwrap_or(0).max(0) as u64;
        Ok(StatsReport::new(CountsSnapshot::from_map(&m), &buckets, sum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let s = Stats::default();
        for _ in 0..99 {
            s.latency.record(Duration::from_micros(100));
        }
        s.latency.record(Duration::from_millis(50));
        let r = s.report();
        assert_eq!(r.latency.count, 100);
        assert!((90.0..=140.0).contains(&r.latency.p50_us), "{r:?}");
        assert!(r.latency.p99_us <= 140.0, "{r:?}");
        assert!(r.latency.mean_us > 500.0);
    }

    #[test]
    fn hit_rate_counts_stale_and_coalesced_as_served() {
        let s = Stats::default();
        s.add(|c| &c.hits, 6);
        s.add(|c| &c.stale, 1);
        s.add(|c| &c.coalesced, 1);
        s.add(|c| &c.misses, 2);
        assert!((s.report().hit_rate - 0.8).abs() < 1e-9);
    }
}
