//! Leases: a fill never undoes an invalidation.
//!
//! Before loading, a loader writes a lease into the key itself — the value it saw (if any)
//! with a new header, or a header with no value — by a compare-and-swap against what its read
//! returned. It stores its result by a compare-and-swap against its lease. Deleting the key
//! (key or pattern invalidation) destroys the lease, so a value read from the source before
//! the delete can no longer be stored after it; the epoch/generation stamp covers namespace
//! and global invalidation the same way. This is the lease of Facebook's memcache, kept in
//! the value's own key so that it works unchanged on one node, a cluster (one slot, one
//! script) and in memory, and costs a hit nothing: the lease travels in the header the MGET
//! already returns. The lease is also the cross-instance lock: others see it and wait for
//! its value (or serve a stale one) instead of loading too.

use super::*;
use crate::kv::Swap;

/// A lease this instance holds on one key.
pub(super) struct Lease {
    /// The header of the lease entry: what the fill and the release expect to find.
    prefix: Vec<u8>,
    /// What to put back if the load fails: the value that was there, with its TTL; None:
    /// delete the lease.
    restore: Option<(Vec<u8>, Duration)>,
}

/// The outcome of asking for a lease.
pub(super) enum Leased {
    Held(Lease),
    /// Another loader holds it, or the key changed since it was read.
    Busy,
    /// The backend could not be asked (or was not readable): nothing to coordinate with.
    Unavailable,
}

impl Cache {
    /// A lease on `key`, given what `read` saw.
    pub(super) async fn lease(&self, key: &Key, read: &Read, policy: &Policy) -> Leased {
        self.leases(&[(key, read)], policy).await.pop().unwrap_or(Leased::Unavailable)
    }

    /// Leases on several keys in one pipelined round trip.
    pub(super) async fn leases(&self, wanted: &[(&Key, &Read)], policy: &Policy) -> Vec<Leased> {
        let now = self.inner.clock.now_ms();
        let mut out: Vec<Leased> = Vec::with_capacity(wanted.len());
        let mut swaps = Vec::new();
        let mut pending = Vec::new();
        for (key, read) in wanted {
            let Some(stamp) = read.stamp else {
                out.push(Leased::Unavailable);
                continue;
            };
            if read.lease_until > now {
                out.push(Leased::Busy);
                continue;
            }
            let until = now + self.lock_ttl(policy).as_millis() as u64;
            let (bytes, ttl, restore) = match read.raw.as_ref().filter(|r| r.times.keep_until > now) {
                // Keep the value readable (stale, fail-safe) while the lease is on it.
                Some(raw) => {
                    let left = Duration::from_millis(raw.times.keep_until - now);
                    (raw.entry().rewrite(until), left.max(self.lock_ttl(policy)), Some((raw.bytes.clone(), left)))
                }
                None => (entry::lease_only(stamp, until), self.lock_ttl(policy), None),
            };
            let prefix = entry::prefix(&bytes).to_vec();
            swaps.push(Swap { key: key.as_str().to_string(), expect: read.current(), value: Some((bytes, ttl)) });
            pending.push((out.len(), Lease { prefix, restore }));
            out.push(Leased::Busy);
        }
        if swaps.is_empty() {
            return out;
        }
        match self.inner.backend.swap(&swaps).await {
            Ok(applied) => {
                for ((at, lease), ok) in pending.into_iter().zip(applied) {
                    if ok {
                        out[at] = Leased::Held(lease);
                    }
                }
            }
            Err(e) => {
                self.backend_error("lease", &e);
                for (at, _) in pending {
                    out[at] = Leased::Unavailable;
                }
            }
        }
        out
    }

    /// Stores loaded values under the leases taken for them; a fill whose lease was voided
    /// (the key was invalidated meanwhile) is dropped. Returns how many were stored.
    pub(super) async fn fill(&self, fills: Vec<(&Key, Lease, Stamp, Vec<u8>)>, policy: &Policy) -> usize {
        if fills.is_empty() {
            return 0;
        }
        let swaps: Vec<Swap> = fills
            .into_iter()
            .map(|(key, lease, stamp, json)| {
                let (times, ttl) = self.times_for(policy, json == b"null");
                let (tag, body) = self.inner.codec.pack_json(json);
                Swap {
                    key: key.as_str().to_string(),
                    expect: Some(lease.prefix),
                    value: Some((entry::write(stamp, times, tag, &body), ttl)),
                }
            })
            .collect();
        match self.inner.backend.swap(&swaps).await {
            Ok(applied) => {
                let stored = applied.iter().filter(|ok| **ok).count();
                self.inner.stats.add(|c| &c.sets, stored as u64);
                self.inner.stats.add(|c| &c.voided, (applied.len() - stored) as u64);
                if stored < applied.len() {
                    tracing::debug!(voided = applied.len() - stored, "fills dropped: invalidated while loading");
                }
                stored
            }
            Err(e) => {
                self.backend_error("fill", &e);
                0
            }
        }
    }

    /// Gives leases back after a failed load: the value that was there returns (or the lease
    /// is deleted), unless the key changed meanwhile.
    pub(super) async fn release(&self, leases: Vec<(&Key, Lease)>) {
        if leases.is_empty() {
            return;
        }
        let swaps: Vec<Swap> = leases
            .into_iter()
            .map(|(key, lease)| Swap {
                key: key.as_str().to_string(),
                expect: Some(lease.prefix),
                value: lease.restore,
            })
            .collect();
        if let Err(e) = self.inner.backend.swap(&swaps).await {
            self.backend_error("release", &e);
        }
    }
}
