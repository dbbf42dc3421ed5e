//! `coldstart`: how long each function takes from process start to its first
//! `GET /2018-06-01/runtime/invocation/next` against a local mock of the Lambda Runtime API
//! (which also accepts extension registrations), beside `lambda-hello` measured the same way in
//! the same run. Each function's `init` log line says where its time went.
//!
//! ```text
//! coldstart <dir with the release binaries> [runs=10]
//! ```
//!
//! Scenarios: DynamoDB data with a reachable Redis (a redis-server the tool starts), DynamoDB
//! data with no Redis listening, and the embedded demo data (memory store, seeded at init).
//! Nothing in init may wait on the network beyond the bounded Redis connect: the AWS endpoint
//! is a closed local port, so an init-time AWS call would show as a failure or a delay.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;

const HTTP_FUNCTIONS: [&str; 6] = ["feeds", "products", "batch", "streams", "offers", "stats"];
const JOB_FUNCTIONS: [&str; 4] = ["view-sync", "offer-expiry", "cache-cleanup", "cache-events"];

/// Who is waiting for the next `invocation/next` call.
type Waiter = Arc<Mutex<Option<oneshot::Sender<Instant>>>>;

async fn runtime_next(axum::extract::State(waiter): axum::extract::State<Waiter>) -> impl IntoResponse {
    let at = Instant::now();
    if let Some(tx) = waiter.lock().unwrap().take() {
        let _ = tx.send(at);
    }
    // Never answer: the process is killed once its init is measured.
    std::future::pending::<()>().await;
    StatusCode::OK
}

async fn extension_register() -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    headers.insert("lambda-extension-identifier", "coldstart-extension".parse().unwrap());
    (headers, r#"{"functionName":"f","functionVersion":"$LATEST","handler":"bootstrap"}"#)
}

async fn pending() -> impl IntoResponse {
    std::future::pending::<()>().await;
    StatusCode::OK
}

/// Starts the mock Runtime API on a free loopback port.
async fn mock_runtime(waiter: Waiter) -> anyhow::Result<String> {
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(runtime_next))
        .route("/2020-01-01/extension/register", post(extension_register))
        .route("/2020-01-01/extension/event/next", get(pending))
        .fallback(pending)
        .with_state(waiter);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// One cold start of `binary`: milliseconds to its first `next`, and its `init` log line.
async fn cold_start(
    binary: &Path,
    name: &str,
    api: &str,
    waiter: &Waiter,
    env: &[(&str, String)],
) -> anyhow::Result<(f64, Option<serde_json::Value>)> {
    let (tx, rx) = oneshot::channel();
    *waiter.lock().unwrap() = Some(tx);
    let mut cmd = tokio::process::Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "coldstart")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child.stdout.take().context("stdout")?;
    let lines = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["target"] == "init" {
                    return Some(v);
                }
            }
        }
        None
    });
    let at = match tokio::time::timeout(Duration::from_secs(20), rx).await {
        Ok(Ok(at)) => at,
        _ => bail!("{name} did not reach its first `next` within 20 s"),
    };
    let ms = at.duration_since(started).as_secs_f64() * 1000.0;
    // The init line is written before the first `next`; give the pipe a moment to deliver it.
    let init = tokio::time::timeout(Duration::from_millis(500), lines).await.ok().and_then(|r| r.ok()).flatten();
    let _ = child.kill().await;
    Ok((ms, init))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: coldstart <dir with the release binaries> [runs]")?);
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(10);
    let waiter: Waiter = Arc::new(Mutex::new(None));
    let api = mock_runtime(waiter.clone()).await?;
    let redis = livecache_testkit::RedisServer::start();
    let closed = format!("127.0.0.1:{}", livecache_testkit::free_port(false));
    let dynamo = |redis_url: String| {
        vec![
            ("DATA_BACKEND", "dynamodb".to_string()),
            ("AWS_ENDPOINT_URL", format!("http://{closed}")),
            ("REDIS_URL", redis_url),
            ("RUST_LOG", "info".to_string()),
        ]
    };
    let scenarios: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("dynamodb + redis", dynamo(redis.url())),
        ("dynamodb, redis down", dynamo(format!("redis://{closed}"))),
        ("embedded demo data", vec![("DATA_BACKEND", "memory".to_string()), ("RUST_LOG", "info".to_string())]),
    ];
    let mut hello = Vec::new();
    for _ in 0..runs {
        hello.push(cold_start(&dir.join("lambda-hello"), "lambda-hello", &api, &waiter, &[]).await?.0);
    }
    let hello = median(hello);
    println!("init to first `next`, median of {runs} (ms); ratio to lambda-hello ({hello:.2} ms)");
    println!(
        "{:<16} {:<22} {:>8} {:>7}   where the time went (init line, medians, ms)",
        "function", "scenario", "ms", "ratio"
    );
    let all: Vec<&str> = HTTP_FUNCTIONS.iter().chain(JOB_FUNCTIONS.iter()).copied().collect();
    for (scenario, env) in &scenarios {
        for name in &all {
            let mut times = Vec::new();
            let mut phases: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for _ in 0..runs {
                let (ms, init) = cold_start(&dir.join(name), name, &api, &waiter, env).await?;
                times.push(ms);
                if let Some(fields) = init.as_ref().and_then(|v| v["fields"].as_object()) {
                    for (k, v) in fields {
                        if let (Some(k), Some(v)) = (k.strip_suffix("_ms"), v.as_f64()) {
                            phases.entry(k.to_string()).or_default().push(v);
                        }
                    }
                }
            }
            let ms = median(times);
            let phases: Vec<String> = phases.into_iter().map(|(k, v)| format!("{k} {:.2}", median(v))).collect();
            println!("{name:<16} {scenario:<22} {ms:>8.2} {:>6.2}x   {}", ms / hello, phases.join(", "));
        }
    }
    Ok(())
}
