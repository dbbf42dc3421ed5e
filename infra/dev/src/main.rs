//! `livecache-dev`: the whole API on one port.
//!
//! ```text
//! cargo run -p livecache-dev                 # http://127.0.0.1:3000, in-memory cache and data
//! cargo run -p livecache-dev -- --port 8080  # or PORT=8080
//! cargo run -p livecache-dev -- --no-jobs    # without the in-process schedules
//! cargo run -p livecache-dev -- token --sub user-0001   # a JWT for the signed-in routes
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p livecache-dev
//! AWS_ENDPOINT_URL=http://127.0.0.1:5000 DATA_CREATE_TABLES=true cargo run -p livecache-dev
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use livecache_cache::SpawnTasks;
use livecache_dev::DevAuth;
use livecache_http::AdminAuth;
use livecache_http::App;
use livecache_runtime::{jobs, telemetry, Config, Deps};

struct Args {
    host: String,
    port: u16,
    jobs: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        host: std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into()),
        port: match std::env::var("PORT") {
            Ok(p) if !p.is_empty() => p.parse().with_context(|| format!("PORT = {p:?} is not a port number"))?,
            _ => 3000,
        },
        jobs: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" | "-p" => {
                let v = it.next().context("--port needs a value")?;
                args.port = v.parse().with_context(|| format!("--port {v:?} is not a port number"))?;
            }
            "--host" => args.host = it.next().context("--host needs a value")?,
            "--no-jobs" => args.jobs = false,
            "--help" | "-h" => {
                println!(
                    "livecache-dev [--host 127.0.0.1] [--port 3000] [--no-jobs]\n\n\
                     Runs view-sync and offer-expiry every minute and cache-cleanup at 03:00 UTC in-process\n\
                     unless --no-jobs. Environment: see the README's configuration table."
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(args)
}

/// `LIVECACHE_ADMIN_TOKEN`, if set and not empty (the dev server's admin bearer token; on AWS
/// the admin routes use IAM instead).
fn admin_token_from_env() -> Option<String> {
    std::env::var("LIVECACHE_ADMIN_TOKEN").ok().filter(|t| !t.trim().is_empty())
}

/// `livecache-dev token --sub <user-id> [--ttl-secs 3600]`: prints a development JWT.
fn token_command(mut it: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let (mut sub, mut ttl) = (None, 3600i64);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--sub" => sub = Some(it.next().context("--sub needs a user id")?),
            "--ttl-secs" => {
                ttl = it.next().context("--ttl-secs needs a number")?.parse().context("--ttl-secs must be a number")?
            }
            other => bail!("unknown argument {other:?}; usage: livecache-dev token --sub <user-id> [--ttl-secs 3600]"),
        }
    }
    let sub = sub.context("usage: livecache-dev token --sub <user-id> [--ttl-secs 3600]")?;
    livecache_domain::Id::parse(&sub).map_err(|e| anyhow::anyhow!("--sub: {e}"))?;
    println!("{}", DevAuth::from_env().mint(&sub, ttl));
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("token") {
        return token_command(std::env::args().skip(2));
    }
    telemetry::init();
    let args = parse_args()?;
    let config = Config::from_env()?;
    let (deps, _) = Deps::build(&config).await?;
    let (admin_token, generated) = match admin_token_from_env() {
        Some(t) => (t, false),
        None => (format!("{:032x}", rand::random::<u128>()), true),
    };
    let app = Arc::new(App::new(&deps, Arc::new(SpawnTasks), AdminAuth::Token(admin_token.clone()), None));
    app.market.set_verify_rate(config.verify_rate);
    // The schedules and the event rule, in-process.
    let _schedules = if args.jobs { jobs::spawn_schedules(app.market.clone(), config.jobs) } else { Vec::new() };
    // On DynamoDB (an emulator here; on AWS the change-log function) the tables' change log
    // is followed, so a write whose own invalidation failed is still invalidated.
    let _follower = if deps.store.changes_logged() {
        let sdk = livecache_domain::config::aws_config().await;
        Some(livecache_dev::follow::follow(app.market.clone(), &sdk, &config.data.tables).await?)
    } else {
        None
    };
    let refreshes = livecache_dev::Refreshes::new();
    if let Some(bus) = &deps.bus {
        bus.subscribe(Arc::new(jobs::InProcessCacheEvents(app.market.clone())));
        bus.subscribe(Arc::new(refreshes.clone()));
    }
    let addr: SocketAddr =
        format!("{}:{}", args.host, args.port).parse().context("--host/--port do not form an address")?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("livecache-dev listening on {url} (cache: {}, data: {})", deps.backend.backend(), deps.store.kind());
    println!("  try: curl '{url}/api/v1/feeds/discover?per_page=5'");
    if generated {
        println!("  admin token (generated; set LIVECACHE_ADMIN_TOKEN to choose one): {admin_token}");
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        println!("livecache-dev: shutting down");
    };
    println!("  signed-in routes: Authorization: Bearer $(livecache-dev token --sub user-0001)");
    println!("  live refresh: a WebSocket on {}/ws", url.replacen("http", "ws", 1));
    livecache_dev::serve(listener, app, DevAuth::from_env(), refreshes, shutdown).await?;
    Ok(())
}
