//! Production measures its consistency: a sampled share of product hits (`set_verify_rate`,
//! e.g. 0.001) is checked after the response against the source of truth. A hit that matches
//! the source (view counts aside: they are write-behind by design) is consistent. One that
//! does not is looked at again after [`VERIFY_SETTLE`] — a write in flight (committed, its
//! invalidation not yet done) looks the same for a moment: if the cache then no longer serves
//! a value that differs from the source, the check is settled; if it still does, nothing is
//! going to repair it before its TTL, and it is counted inconsistent and logged.

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

/// How long a mismatch is given to be repaired by the invalidation of a write in flight.
pub(crate) const VERIFY_SETTLE: Duration = Duration::from_millis(1000);

/// What the sampled checks found since start-up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VerifyCounts {
    pub consistent: u64,
    pub inconsistent: u64,
    /// Mismatches a write in flight explained: repaired within `VERIFY_SETTLE`.
    pub settled: u64,
}

/// The checks' findings and what they cost (the admin statistics show it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    #[serde(flatten)]
    pub counts: VerifyCounts,
    /// Reads of the source the checks made: what they cost the database.
    pub source_reads: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Verifier {
    rate_bits: AtomicU64,
    consistent: AtomicU64,
    inconsistent: AtomicU64,
    settled: AtomicU64,
    source_reads: AtomicU64,
}

/// The same product, its view count aside.
fn same(served: &Product, source: &Option<Product>) -> bool {
    source.as_ref().is_some_and(|s| Product { view_count: served.view_count, ..s.clone() } == *served)
}

impl Marketplace {
    /// The share of product hits checked against the source (0 to 1; 0 checks none).
    pub fn set_verify_rate(&self, rate: f64) {
        self.inner.verifier.rate_bits.store(rate.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }

    pub fn verify_counts(&self) -> VerifyCounts {
        let v = &self.inner.verifier;
        VerifyCounts {
            consistent: v.consistent.load(Ordering::Relaxed),
            inconsistent: v.inconsistent.load(Ordering::Relaxed),
            settled: v.settled.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn verify_report(&self) -> VerifyReport {
        VerifyReport {
            counts: self.verify_counts(),
            source_reads: self.inner.verifier.source_reads.load(Ordering::Relaxed),
        }
    }

    /// Samples a product served from the cache for a check after the response.
    pub(crate) fn sample_product_hit(&self, key: &livecache_cache::Key, served: &Product) {
        let rate = f64::from_bits(self.inner.verifier.rate_bits.load(Ordering::Relaxed));
        if rate <= 0.0 || rand::random::<f64>() >= rate {
            return;
        }
        let (market, key, served) = (self.clone(), key.clone(), served.clone());
        self.inner.tasks.submit(Box::pin(async move { market.verify_product(key, served).await }));
    }

    async fn verify_product(&self, key: livecache_cache::Key, served: Product) {
        let v = &self.inner.verifier;
        v.source_reads.fetch_add(1, Ordering::Relaxed);
        let Ok(source) = self.inner.store.products.get_product(&served.id).await else { return };
        if same(&served, &source) {
            v.consistent.fetch_add(1, Ordering::Relaxed);
            return;
        }
        tokio::time::sleep(VERIFY_SETTLE).await;
        v.source_reads.fetch_add(1, Ordering::Relaxed);
        let Ok(source) = self.inner.store.products.get_product(&served.id).await else { return };
        let still = self.inner.cache.get::<Option<Product>>(&key).await.and_then(|l| l.value);
        match still {
            Some(cached) if !same(&cached, &source) => {
                v.inconsistent.fetch_add(1, Ordering::Relaxed);
                tracing::error!(key = key.as_str(), "cache inconsistent with the source: it serves a value the source no longer holds and no invalidation is coming");
            }
            _ => {
                v.settled.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
