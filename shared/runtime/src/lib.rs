//! The runtime every function shares, HTTP or not: the typed [`Config`] read once at init,
//! the clients built from it ([`Deps`]), telemetry (tracing, EMF metrics, the init log line),
//! running the scheduled and event-driven jobs on `lambda_runtime` ([`jobs`]), and the live
//! refresh push's two functions, `ws` and `push` ([`push`]). It does not
//! link `lambda_http`: the HTTP glue (`livecache-http`) builds on it, the job functions use it
//! alone.

#![warn(unreachable_pub)]

pub mod after;
mod config;
mod deps;
pub mod jobs;
pub mod push;
pub mod telemetry;

pub use config::{Config, JobSettings, PushConfig, DEFAULT_L1_MB, DEFAULT_VERIFY_RATE, STATS_FLUSH_DEFAULT};

/// A function's init: the configuration read once, then the clients built from it, and where
/// the time went; an error is logged before it is returned (it ends the cold start).
pub async fn init() -> anyhow::Result<(Config, Deps, InitTimings)> {
    let built = async {
        let config = Config::from_env()?;
        let (deps, timings) = Deps::build(&config).await?;
        anyhow::Ok((config, deps, timings))
    };
    built.await.inspect_err(|e| tracing::error!(error = %e, "configuration error"))
}
pub use deps::{Deps, InitTimings};
pub use jobs::{handle, Job};
