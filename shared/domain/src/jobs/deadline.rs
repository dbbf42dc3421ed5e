//! The time budget of a run: a deadline read through an injectable clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// The time a job run sees: the real clock, or one a test drives so that no assertion depends
/// on how fast the machine is.
pub trait RunClock: Send + Sync {
    fn now(&self) -> Instant;
    fn sleep(&self, d: Duration) -> futures::future::BoxFuture<'static, ()>;

    /// Resolves once `d` has passed on this clock while something is awaited (what cuts a
    /// write off at the deadline). The real clock's time passes while waiting; a clock that
    /// moves only when read never times a wait out.
    fn timeout(&self, d: Duration) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Tokio's clock.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RealClock;

impl RunClock for RealClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, d: Duration) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// When a run must be finished (the Lambda deadline), and how much of the time before it is
/// kept in reserve: work starts only while more than `margin` is left, and nothing that was
/// started runs past the deadline itself.
#[derive(Clone)]
pub struct Deadline {
    at: Option<Instant>,
    margin: Duration,
    clock: Arc<dyn RunClock>,
}

impl std::fmt::Debug for Deadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deadline").field("remaining", &self.remaining()).field("margin", &self.margin).finish()
    }
}

impl Deadline {
    /// `at` on the real clock, with no reserve.
    pub fn at(at: Instant) -> Self {
        Self::with_clock(at, Arc::new(RealClock))
    }

    /// `at` as read by `clock`.
    pub fn with_clock(at: Instant, clock: Arc<dyn RunClock>) -> Self {
        Self { at: Some(at), margin: Duration::ZERO, clock }
    }

    /// No deadline (a drain called directly).
    pub fn never() -> Self {
        Self { at: None, margin: Duration::ZERO, clock: Arc::new(RealClock) }
    }

    /// The same deadline with `margin` kept in reserve.
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Time left before the deadline itself (`Duration::MAX` when there is none).
    pub(crate) fn remaining(&self) -> Duration {
        self.at.map_or(Duration::MAX, |at| at.saturating_duration_since(self.clock.now()))
    }

    /// Time left for starting new work: the remaining time less the reserve.
    pub(crate) fn budget(&self) -> Duration {
        self.remaining().saturating_sub(self.margin)
    }

    /// Whether new work may start.
    pub(crate) fn allows_work(&self) -> bool {
        !self.budget().is_zero()
    }

    pub async fn sleep(&self, d: Duration) {
        self.clock.sleep(d).await
    }

    /// Runs `work`, giving up when the deadline itself passes (`None`).
    pub(crate) async fn bounded<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        match self.at {
            None => Some(work.await),
            Some(_) => {
                let expired = self.clock.timeout(self.remaining());
                tokio::select! {
                    v = work => Some(v),
                    () = expired => None,
                }
            }
        }
    }
}
