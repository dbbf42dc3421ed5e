//! Where the DynamoDB part of a cold start goes: each step of building the AWS SDK clients,
//! timed on its own (median of the runs given, default 20, each in a fresh process so nothing
//! is warm), as the functions build them and with the SDK's default chains for comparison.
//! `init-profile [runs]`; run by `infra/coldstart.sh` after the cold starts, with the variables
//! Lambda sets.

use std::time::Instant;

fn step<T>(name: &str, f: impl FnOnce() -> T, out: &mut Vec<(String, f64)>) -> T {
    let t = Instant::now();
    let v = f();
    out.push((name.to_string(), t.elapsed().as_secs_f64() * 1000.0));
    v
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("--once") {
        let mut out = Vec::new();
        let variant = std::env::args().nth(2).unwrap_or_default();
        let t = Instant::now();
        let sdk = match variant.as_str() {
            // The SDK's default chains, for comparison: profile files, SSO, web identity, ECS
            // and IMDS credential providers are all built.
            "sdk-defaults" => aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await,
            _ => livecache_domain::config::aws_config().await,
        };
        out.push(("aws_config::load".to_string(), t.elapsed().as_secs_f64() * 1000.0));
        let _ddb = step("dynamodb::Client::new", || aws_sdk_dynamodb::Client::new(&sdk), &mut out);
        let _eb = step("eventbridge::Client::new", || aws_sdk_eventbridge::Client::new(&sdk), &mut out);
        println!("{}", serde_json::to_string(&out).unwrap());
        return;
    }
    let runs: usize = std::env::args().nth(1).and_then(|r| r.parse().ok()).unwrap_or(20);
    for variant in ["livecache", "sdk-defaults"] {
        profile(runs, variant);
    }
}

fn profile(runs: usize, variant: &str) {
    let me = std::env::current_exe().unwrap();
    let mut all: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut order = Vec::new();
    for _ in 0..runs {
        let out = std::process::Command::new(&me).arg("--once").arg(variant).output().unwrap();
        let steps: Vec<(String, f64)> = serde_json::from_slice(&out.stdout).unwrap();
        for (name, ms) in steps {
            if !order.contains(&name) {
                order.push(name.clone());
            }
            all.entry(name).or_default().push(ms);
        }
    }
    println!("SDK client construction ({variant}), median of {runs} fresh processes (ms):");
    for name in order {
        let mut v = all.remove(&name).unwrap();
        v.sort_by(|a, b| a.total_cmp(b));
        println!("  {name:<26} {:>6.2}", v[v.len() / 2]);
    }
}
