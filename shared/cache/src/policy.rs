//! How long values live and how misses are loaded.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// How long a value is fresh.
    pub ttl: Duration,
    /// Fraction of `ttl` added at random (0.0–1.0) so keys written together expire apart.
    pub jitter: f64,
    /// After `ttl`, how long a stale value is served while one refresh runs (0 = no SWR).
    pub stale_for: Duration,
    /// After the stale window, how long a value is kept to stand in when the loader fails.
    pub fail_safe_for: Duration,
    /// TTL for a loaded `null` (negative caching, e.g. unknown ids); None stores `null` like
    /// any other value.
    pub negative_ttl: Option<Duration>,
    /// How long a load may take before it counts as failed.
    pub load_timeout: Duration,
    /// Lifetime of the cross-instance load lock.
    pub lock_ttl: Duration,
    /// How long an instance that did not get the lock waits for the holder's value.
    pub lock_wait: Duration,
}

impl Policy {
    /// A read-through policy: fresh for `ttl`, no stale serving, 10% jitter.
    pub fn ttl(ttl: Duration) -> Self {
        Self {
            ttl,
            jitter: 0.1,
            stale_for: Duration::ZERO,
            fail_safe_for: Duration::ZERO,
            negative_ttl: None,
            load_timeout: Duration::from_secs(3),
            lock_ttl: Duration::from_secs(3),
            lock_wait: Duration::from_millis(250),
        }
    }

    /// Serves stale values for `stale_for` after `ttl` while refreshing.
    pub fn stale_while_revalidate(mut self, stale_for: Duration) -> Self {
        self.stale_for = stale_for;
        self
    }

    /// Keeps values `for` longer to stand in when the loader fails.
    pub fn fail_safe(mut self, max_stale_age: Duration) -> Self {
        self.fail_safe_for = max_stale_age;
        self
    }

    pub fn negative(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction.clamp(0.0, 1.0);
        self
    }

    pub fn load_timeout(mut self, t: Duration) -> Self {
        self.load_timeout = t;
        self
    }

    pub fn lock(mut self, ttl: Duration, wait: Duration) -> Self {
        self.lock_ttl = ttl;
        self.lock_wait = wait;
        self
    }

    /// The fresh lifetime with jitter applied.
    pub(crate) fn jittered_ttl(&self, fresh: Duration) -> Duration {
        if self.jitter <= 0.0 || fresh.is_zero() {
            return fresh;
        }
        let extra = fresh.as_secs_f64() * self.jitter * rand::random::<f64>();
        fresh + Duration::from_secs_f64(extra)
    }
}
