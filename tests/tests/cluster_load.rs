//! Cluster-native, counted: a warm mixed workload (product reads, discover and community pages,
//! batches of ten) through the Lambda glue on a private 3-master cluster (and a TLS one), every
//! master's commands recorded with MONITOR and split per request by a marker each master sees
//! between two requests. What it must show: a warm feed or product hit is one command (the view
//! increment apart: one per product read), no key is touched by more than 5 % of requests, and
//! the busiest master runs at most 1.25× the mean.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use livecache_cache::{key_slot, Backend, DeferredTasks, RedisBackend, RedisConfig};
use livecache_http::lambda::after_response;
use livecache_http::{AdminAuth, ApiRequest, App};
use livecache_runtime::telemetry::Metrics;
use livecache_testkit::{test_ca, RedisCluster};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Product,
    Discover,
    Community,
    Batch,
}

/// A small deterministic generator (the workload is the same every run).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// 600 requests: 300 product reads over the 300 products, 150 discover pages (with and without
/// a category, both sorts, pages 1–3), 100 community pages in four cities, 50 batches of ten.
fn workload() -> Vec<(Kind, ApiRequest)> {
    const CATEGORIES: [&str; 8] =
        ["fashion", "electronics", "home", "collectibles", "sports", "beauty", "books", "toys"];
    const CITIES: [(f64, f64); 4] = [(52.520, 13.405), (48.857, 2.352), (51.507, -0.128), (40.417, -3.704)];
    let mut rng = Lcg(7);
    let product = |rng: &mut Lcg| format!("prod-{:05}", rng.below(300));
    let mut kinds: Vec<Kind> = [(Kind::Product, 300), (Kind::Discover, 150), (Kind::Community, 100), (Kind::Batch, 50)]
        .into_iter()
        .flat_map(|(k, n)| std::iter::repeat_n(k, n))
        .collect();
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.below(i as u64 + 1) as usize);
    }
    kinds
        .into_iter()
        .map(|kind| {
            let req = match kind {
                Kind::Product => common::request(Method::GET, &format!("/api/v1/products/{}", product(&mut rng)), None),
                Kind::Discover => {
                    let page = 1 + rng.below(3);
                    let sort = ["live_first", "newest"][rng.below(2) as usize];
                    let category = match rng.below(9) as usize {
                        8 => String::new(),
                        c => format!("&category={}", CATEGORIES[c]),
                    };
                    let path = format!("/api/v1/feeds/discover?page={page}&per_page=20&sort={sort}{category}");
                    common::request(Method::GET, &path, None)
                }
                Kind::Community => {
                    let (lat, lon) = CITIES[rng.below(4) as usize];
                    let page = 1 + rng.below(2);
                    let path =
                        format!("/api/v1/feeds/community?lat={lat}&lon={lon}&radius_km=10&page={page}&per_page=20");
                    common::request(Method::GET, &path, None)
                }
                Kind::Batch => {
                    let ids: Vec<String> = (0..10).map(|_| product(&mut rng)).collect();
                    common::request(Method::POST, "/api/v1/batch/products", Some(json!({ "product_ids": ids })))
                }
            };
            (kind, req)
        })
        .collect()
}

/// The slot ranges each master owns, by port (from `CLUSTER NODES`).
fn slot_owners(cluster: &RedisCluster) -> HashMap<u16, Vec<(u16, u16)>> {
    let text = cluster.nodes()[0].cli(&["CLUSTER", "NODES"]).expect("CLUSTER NODES");
    let mut out = HashMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 9 || !fields[2].contains("master") {
            continue;
        }
        let port: u16 = fields[1].split('@').next().unwrap().rsplit(':').next().unwrap().parse().unwrap();
        let ranges = fields[8..]
            .iter()
            .filter(|r| !r.starts_with('['))
            .map(|r| match r.split_once('-') {
                Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                None => (r.parse().unwrap(), r.parse().unwrap()),
            })
            .collect();
        out.insert(port, ranges);
    }
    out
}

/// The quoted arguments of one MONITOR line, unescaped enough to compare keys.
fn monitor_args(line: &str) -> Option<(bool, Vec<String>)> {
    let (head, rest) = line.split_once("] ")?;
    let from_script = head.ends_with("lua");
    let mut args = Vec::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut arg = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => arg.push(chars.next().unwrap_or('\\')),
                '"' => break,
                c => arg.push(c),
            }
        }
        args.push(arg);
    }
    Some((from_script, args))
}

/// What the workload cost, per request kind and per key.
#[derive(Debug, Default)]
struct Tally {
    requests: BTreeMap<Kind, u64>,
    /// Commands per kind, the view increments apart.
    commands: BTreeMap<Kind, u64>,
    view_increments: u64,
    per_master: Vec<u64>,
    /// Requests that touched each key.
    touched: HashMap<String, HashSet<usize>>,
}

async fn run(cluster: &RedisCluster, tls: bool, name: &str) -> Tally {
    let mut config = RedisConfig::from_url(&cluster.urls().join(",")).unwrap();
    if tls {
        config.ca_cert = Some(test_ca().ca_pem());
    }
    let backend: Arc<dyn Backend> = Arc::new(RedisBackend::connect(config).await.unwrap());
    let (deps, _bus, _clock, _data) = common::deps_on_backend(name, backend.clone()).await;
    let root = deps.keyspace.root().to_string();
    let tasks = Arc::new(DeferredTasks::new());
    let app = App::new(&deps, tasks.clone(), AdminAuth::Disabled, None);
    let metrics = Metrics::default();
    let deadline = || Instant::now() + Duration::from_secs(10);
    let requests = workload();
    // Cold: every value loaded once (and next pages prefetched).
    for (_, req) in requests.clone() {
        assert_eq!(app.handle(req).await.status.as_u16(), 200);
        after_response(&tasks, &app, &metrics, "all", deadline()).await;
    }
    // A marker key per master, in a slot it owns: GET of it is the boundary between requests.
    let owners = slot_owners(cluster);
    let markers: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|node| {
            let ranges = &owners[&node.port()];
            (0u32..)
                .map(|k| format!("mark{k}"))
                .find(|t| ranges.iter().any(|(a, b)| (*a..=*b).contains(&key_slot(t.as_bytes()))))
                .unwrap()
        })
        .collect();
    let mark = |n: usize| {
        let backend = backend.clone();
        let keys: Vec<String> = markers.iter().map(|t| format!("marker:{{{t}}}:{n}")).collect();
        async move {
            for key in keys {
                backend.get(&key).await.unwrap();
            }
        }
    };
    let monitors: Vec<_> = cluster.nodes().iter().map(|n| n.monitor()).collect();
    // Warm: the same requests again, each between two markers.
    for (i, (_, req)) in requests.iter().cloned().enumerate() {
        mark(i).await;
        assert_eq!(app.handle(req).await.status.as_u16(), 200);
        after_response(&tasks, &app, &metrics, "all", deadline()).await;
    }
    mark(requests.len()).await;
    let mut tally = Tally::default();
    for (kind, _) in &requests {
        *tally.requests.entry(*kind).or_default() += 1;
    }
    for monitor in monitors {
        let mut current: Option<usize> = None;
        let mut on_master = 0;
        for line in monitor.stop().lines() {
            let Some((from_script, args)) = monitor_args(line) else { continue };
            let Some(command) = args.first().map(|c| c.to_ascii_uppercase()) else { continue };
            if command == "GET" && args.get(1).is_some_and(|k| k.starts_with("marker:")) {
                let n: usize = args[1].rsplit(':').next().unwrap().parse().unwrap();
                current = (n < requests.len()).then_some(n);
                continue;
            }
            let Some(i) = current else { continue };
            if from_script || matches!(command.as_str(), "CLUSTER" | "INFO" | "PING" | "READONLY" | "CLIENT" | "HELLO")
            {
                continue;
            }
            on_master += 1;
            let keys: Vec<&String> = args[1..].iter().filter(|a| a.starts_with(&root)).collect();
            if keys.iter().any(|k| k.contains(":views:")) {
                tally.view_increments += 1;
            } else {
                *tally.commands.entry(requests[i].0).or_default() += 1;
            }
            for key in keys {
                tally.touched.entry(key.clone()).or_default().insert(i);
            }
        }
        tally.per_master.push(on_master);
    }
    tally
}

fn check(tally: &Tally, label: &str) {
    let n = |k: Kind| tally.requests.get(&k).copied().unwrap_or(0) as f64;
    let c = |k: Kind| tally.commands.get(&k).copied().unwrap_or(0) as f64;
    let hits = n(Kind::Product) + n(Kind::Discover) + n(Kind::Community);
    let per_hit = (c(Kind::Product) + c(Kind::Discover) + c(Kind::Community)) / hits;
    let per_product = c(Kind::Product) / n(Kind::Product);
    let per_feed = (c(Kind::Discover) + c(Kind::Community)) / (n(Kind::Discover) + n(Kind::Community));
    let views = tally.view_increments as f64 / n(Kind::Product);
    let per_batch = c(Kind::Batch) / n(Kind::Batch);
    let total: u64 = tally.requests.values().sum();
    let mut hottest: Vec<(usize, &String)> = tally.touched.iter().map(|(k, r)| (r.len(), k)).collect();
    hottest.sort_by(|a, b| b.cmp(a));
    let top = hottest.first().map(|(n, _)| *n as f64 / total as f64).unwrap_or(0.0);
    let mean = tally.per_master.iter().sum::<u64>() as f64 / tally.per_master.len() as f64;
    let busiest = *tally.per_master.iter().max().unwrap() as f64 / mean;
    println!(
        "{label}: {total} warm requests; commands per feed or product hit {per_hit:.3} (product {per_product:.3}, \
         feed {per_feed:.3}); view increments per product read {views:.3}; commands per batch of 10 {per_batch:.2}; \
         per master {:?} (busiest / mean {busiest:.2}); hottest keys {:?}",
        tally.per_master,
        hottest
            .iter()
            .take(3)
            .map(|(n, k)| format!("{k} {:.1} %", *n as f64 * 100.0 / total as f64))
            .collect::<Vec<_>>()
    );
    assert!(per_hit <= 1.05, "{label}: {per_hit} commands per hit: {:?}", tally.commands);
    assert!(views <= 1.0, "{label}: {views} view increments per product read");
    assert!(per_batch <= 10.0, "{label}: {per_batch} commands per batch of 10 (one per slot at most)");
    assert!(top <= 0.05, "{label}: {} touched by {:.1} % of requests", hottest[0].1, top * 100.0);
    assert!(busiest <= 1.25, "{label}: busiest master {busiest:.2}× the mean: {:?}", tally.per_master);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_mixed_workload_on_a_cluster_is_one_command_per_hit_on_no_hot_slot() {
    let cluster = RedisCluster::start(3);
    let tally = run(&cluster, false, "cluster-load").await;
    check(&tally, "3-master cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_holds_on_a_tls_cluster() {
    let cluster = RedisCluster::start_tls(3);
    let tally = run(&cluster, true, "cluster-load-tls").await;
    check(&tally, "3-master TLS cluster");
}
