//! A circuit breaker: after `threshold` consecutive failures the backend is skipped for
//! `cooldown`, so a dead Redis costs a request nothing instead of a timeout. After the
//! cool-down one probe is let through; its success closes the circuit. A probe is a
//! [`Permit`]: if its request is cancelled (a client went away) before it reports, dropping
//! the permit frees the probe slot, so the circuit can never stay open for good.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    pub threshold: u32,
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { threshold: 3, cooldown: Duration::from_secs(2) }
    }
}

#[derive(Debug)]
pub(crate) struct Breaker {
    cfg: BreakerConfig,
    base: Instant,
    failures: AtomicU32,
    /// Milliseconds since `base` until which the circuit is open; 0 when closed.
    open_until: AtomicU64,
    probing: AtomicBool,
    trips: AtomicU64,
}

impl Breaker {
    pub(crate) fn new(cfg: BreakerConfig) -> Self {
        Self {
            cfg,
            base: Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            trips: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_millis() as u64 + 1
    }

    /// A permit for one call, or None while the circuit is open. Report the outcome through
    /// it; a permit dropped unreported (the call was cancelled) gives a probe slot back.
    pub(crate) fn permit(&self) -> Option<Permit<'_>> {
        let probe = self.open_until.load(Ordering::Acquire) != 0;
        self.allow().then_some(Permit { breaker: self, probe, reported: false })
    }

    /// Whether a call may go to the backend now.
    pub(crate) fn allow(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        if self.now() < until {
            return false;
        }
        // Half-open: exactly one probe at a time.
        self.probing.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    pub(crate) fn record_success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.open_until.load(Ordering::Relaxed) != 0 {
            self.open_until.store(0, Ordering::Release);
            self.probing.store(false, Ordering::Release);
            tracing::info!("cache backend recovered; circuit closed");
        }
    }

    pub(crate) fn record_failure(&self) {
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let half_open = self.probing.swap(false, Ordering::AcqRel);
        if n >= self.cfg.threshold || half_open {
            let until = self.now() + self.cfg.cooldown.as_millis() as u64;
            if self.open_until.swap(until, Ordering::AcqRel) == 0 {
                self.trips.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    failures = n,
                    cooldown_ms = self.cfg.cooldown.as_millis() as u64,
                    "cache backend failing; circuit opened"
                );
            }
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }

    /// How many times the circuit has opened.
    pub(crate) fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }
}

/// One call let through by the [`Breaker`].
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    /// Whether this call is the half-open probe.
    probe: bool,
    reported: bool,
}

impl Permit<'_> {
    pub(crate) fn success(mut self) {
        self.reported = true;
        self.breaker.record_success();
    }

    pub(crate) fn failure(mut self) {
        self.reported = true;
        self.breaker.record_failure();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            self.breaker.probing.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_lets_one_probe_through_after_cooldown() {
        let b = Breaker::new(BreakerConfig { threshold: 2, cooldown: Duration::from_millis(30) });
        assert!(b.allow());
        b.record_failure();
        assert!(b.allow());
        b.record_failure();
        assert!(!b.allow(), "open after two failures");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "one probe after the cool-down");
        assert!(!b.allow(), "only one probe at a time");
        b.record_failure();
        assert!(!b.allow(), "a failed probe reopens");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
        b.record_success();
        assert!(b.allow() && b.allow(), "closed again");
        assert_eq!(b.trips(), 1);
    }

    #[test]
    fn a_cancelled_probe_frees_the_slot() {
        let b = Breaker::new(BreakerConfig { threshold: 1, cooldown: Duration::from_millis(20) });
        b.permit().unwrap().failure();
        assert!(b.permit().is_none(), "open");
        std::thread::sleep(Duration::from_millis(30));
        let probe = b.permit().expect("the probe");
        assert!(b.permit().is_none(), "one probe at a time");
        drop(probe); // its request was cancelled: no outcome
        let probe = b.permit().expect("the next caller probes instead of the circuit sticking open");
        probe.success();
        assert!(!b.is_open());
        assert!(b.permit().is_some());
    }
}
