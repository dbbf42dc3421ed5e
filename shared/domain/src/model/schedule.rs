//! Every job, named once, and when each runs: what the services (job status) and the jobs
//! share, in a module of its own so that neither depends on the other for it.

use crate::model::time::Timestamp;

/// When a scheduled job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every period (whole minutes).
    Every(std::time::Duration),
    /// Every day at this time (UTC).
    DailyAt { hour: u32, minute: u32 },
}

impl Schedule {
    /// The EventBridge schedule expression.
    pub fn expression(&self) -> String {
        match self {
            Schedule::Every(d) if d.as_secs() == 60 => "rate(1 minute)".into(),
            Schedule::Every(d) => format!("rate({} minutes)", d.as_secs() / 60),
            Schedule::DailyAt { hour, minute } => format!("cron({minute} {hour} * * ? *)"),
        }
    }

    /// When the next run is due: a period after the last run started (now if that has
    /// passed or it never ran), or the next time of day after `now`.
    pub fn next_run(&self, last_started: Option<Timestamp>, now: Timestamp) -> Timestamp {
        match self {
            Schedule::Every(d) => {
                let period = chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::MAX);
                last_started.map(|t| t + period).filter(|t| *t > now).unwrap_or(now)
            }
            Schedule::DailyAt { hour, minute } => {
                let today = now.date_naive().and_hms_opt(*hour, *minute, 0).unwrap_or_default().and_utc();
                if today > now {
                    today
                } else {
                    today + chrono::Duration::days(1)
                }
            }
        }
    }
}

/// Every job, named once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    ViewSync,
    OfferExpiry,
    CacheCleanup,
    CacheEvents,
    /// Invalidation from the cached tables' change log (DynamoDB Streams).
    ChangeLog,
}

impl Job {
    /// The scheduled jobs (whose runs `GET /api/v1/cache/jobs` shows).
    pub const SCHEDULED: [Job; 3] = [Job::ViewSync, Job::OfferExpiry, Job::CacheCleanup];

    /// When it runs (None: on events, not on a schedule). `template.yaml` declares the same
    /// (a test compares).
    pub fn schedule(&self) -> Option<Schedule> {
        match self {
            Job::ViewSync | Job::OfferExpiry => Some(Schedule::Every(std::time::Duration::from_secs(60))),
            Job::CacheCleanup => Some(Schedule::DailyAt { hour: 3, minute: 0 }),
            Job::CacheEvents | Job::ChangeLog => None,
        }
    }

    /// Its name: the function's, the run records', the metrics' dimension.
    pub fn name(&self) -> &'static str {
        match self {
            Job::ViewSync => "view-sync",
            Job::OfferExpiry => "offer-expiry",
            Job::CacheCleanup => "cache-cleanup",
            Job::CacheEvents => "cache-events",
            Job::ChangeLog => "change-log",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_runs_follow_the_schedules() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        let now = at("2026-11-21T17:10:30Z");
        let every = Job::ViewSync.schedule().unwrap();
        assert_eq!(every.expression(), "rate(1 minute)");
        assert_eq!(every.next_run(Some(at("2026-11-21T17:10:00Z")), now), at("2026-11-21T17:11:00Z"));
        assert_eq!(every.next_run(Some(at("2026-11-21T17:00:00Z")), now), now, "overdue: now");
        assert_eq!(every.next_run(None, now), now);
        let nightly = Job::CacheCleanup.schedule().unwrap();
        assert_eq!(nightly.expression(), "cron(0 3 * * ? *)");
        assert_eq!(nightly.next_run(None, now), at("2026-11-22T03:00:00Z"));
        assert_eq!(nightly.next_run(None, at("2026-11-21T02:59:00Z")), at("2026-11-21T03:00:00Z"));
        assert!(Job::CacheEvents.schedule().is_none());
    }
}
