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
use livecache_testkit::{test_ca, RedisCluster, RedisServer};
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

/// The master serving `slot`.
fn owner(cluster: &RedisCluster, slot: u16) -> &RedisServer {
    let port = slot_owners(cluster)
        .into_iter()
        .find(|(_, ranges)| ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
        .unwrap()
        .0;
    cluster.nodes().iter().find(|n| n.port() == port).unwrap()
}

/// The page the slot tests make hot: discover, newest first, page 1 of 20.
const HOT_PAGE: &str = "/api/v1/feeds/discover?page=1&per_page=20&sort=newest";

/// [`HOT_PAGE`]'s cache key.
fn hot_page_key(backend: &Arc<dyn Backend>, deps: &livecache_runtime::Deps) -> livecache_cache::Key {
    let cache = livecache_cache::Cache::builder(backend.clone()).keyspace(deps.keyspace.clone()).build();
    let query = livecache_domain::store::DiscoverQuery {
        page: livecache_domain::store::PageRequest { page: 1, per_page: 20 },
        category: None,
        sort: livecache_domain::store::FeedSort::Newest,
    };
    livecache_domain::services::keys::discover_key(&cache, &query).unwrap()
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

async fn connect(cluster: &RedisCluster, tls: bool) -> Arc<dyn Backend> {
    let mut config = RedisConfig::from_url(&cluster.urls().join(",")).unwrap();
    if tls {
        config.ca_cert = Some(test_ca().ca_pem());
    }
    Arc::new(RedisBackend::connect(config).await.unwrap())
}

/// One command a master ran for a request: the master's index, the command, the keys it named.
#[derive(Debug, Clone)]
struct Command {
    master: usize,
    name: String,
    keys: Vec<String>,
}

/// Runs `requests` one by one through `app` (post-response work after each) while every master
/// of `cluster` is recorded; the commands each request made (scripts' inner commands, topology
/// and health checks left out). A marker key each master owns is read between two requests.
async fn record(
    cluster: &RedisCluster,
    backend: &Arc<dyn Backend>,
    root: &str,
    app: &App,
    tasks: &DeferredTasks,
    requests: &[ApiRequest],
) -> Vec<Vec<Command>> {
    let metrics = Metrics::default();
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
    for (i, req) in requests.iter().cloned().enumerate() {
        mark(i).await;
        let status = app.handle(req).await.status.as_u16();
        assert!((200..300).contains(&status), "request {i}: {status}");
        after_response(tasks, app, &metrics, "all", Instant::now() + Duration::from_secs(10)).await;
    }
    mark(requests.len()).await;
    let mut out = vec![Vec::new(); requests.len()];
    for (master, monitor) in monitors.into_iter().enumerate() {
        let mut current: Option<usize> = None;
        let last = format!("marker:{{{}}}:{}", markers[master], requests.len());
        for line in monitor.stop_after(&last).lines() {
            let Some((from_script, args)) = monitor_args(line) else { continue };
            let Some(name) = args.first().map(|c| c.to_ascii_uppercase()) else { continue };
            if name == "GET" && args.get(1).is_some_and(|k| k.starts_with("marker:")) {
                let n: usize = args[1].rsplit(':').next().unwrap().parse().unwrap();
                current = (n < requests.len()).then_some(n);
                continue;
            }
            let Some(i) = current else { continue };
            if from_script || matches!(name.as_str(), "CLUSTER" | "INFO" | "PING" | "READONLY" | "CLIENT" | "HELLO") {
                continue;
            }
            let keys = args[1..].iter().filter(|a| a.starts_with(root)).cloned().collect();
            out[i].push(Command { master, name, keys });
        }
    }
    out
}

async fn run(cluster: &RedisCluster, tls: bool, name: &str) -> Tally {
    let backend = connect(cluster, tls).await;
    let (deps, _bus, _clock, _data) = common::deps_on_backend(name, backend.clone()).await;
    let root = deps.keyspace.root().to_string();
    let tasks = Arc::new(DeferredTasks::new());
    let app = App::new(&deps, tasks.clone(), AdminAuth::Disabled, None);
    let metrics = Metrics::default();
    let (kinds, requests): (Vec<Kind>, Vec<ApiRequest>) = workload().into_iter().unzip();
    // Cold: every value loaded once (and next pages prefetched).
    for req in requests.clone() {
        assert_eq!(app.handle(req).await.status.as_u16(), 200);
        after_response(&tasks, &app, &metrics, "all", Instant::now() + Duration::from_secs(10)).await;
    }
    // Warm: the same requests again, recorded.
    let recorded = record(cluster, &backend, &root, &app, &tasks, &requests).await;
    let mut tally = Tally { per_master: vec![0; cluster.nodes().len()], ..Tally::default() };
    for (i, commands) in recorded.iter().enumerate() {
        *tally.requests.entry(kinds[i]).or_default() += 1;
        for c in commands {
            tally.per_master[c.master] += 1;
            if c.keys.iter().any(|k| k.contains(":views:")) {
                tally.view_increments += 1;
            } else {
                *tally.commands.entry(kinds[i]).or_default() += 1;
            }
            for key in &c.keys {
                tally.touched.entry(key.clone()).or_default().insert(i);
            }
        }
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

/// An operator sees a hot slot: the detailed statistics list the busiest slots as the servers
/// count them (Valkey's `CLUSTER SLOT-STATS`, ordered by CPU time). One discover page read 300
/// times is among them, named with its master, and is the slot that sent the most bytes.
///
/// CPU time is measured, not counted: on a loaded machine one command of another slot that is
/// descheduled mid-way (or a script's first compile) can outweigh 300 fast reads, so which slot
/// tops the CPU order is not asserted; the bytes each slot sent are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_statistics_name_the_hot_slot_where_the_servers_count_slots() {
    let cluster = RedisCluster::start_valkey(3);
    let backend = connect(&cluster, false).await;
    let (deps, _bus, _clock, _data) = common::deps_on_backend("slot-stats", backend.clone()).await;
    let tasks = Arc::new(DeferredTasks::new());
    let app = App::new(&deps, tasks.clone(), AdminAuth::Disabled, None);
    let metrics = Metrics::default();
    for req in workload()
        .into_iter()
        .map(|(_, r)| r)
        .chain(std::iter::repeat_n(common::request(Method::GET, HOT_PAGE, None), 300))
    {
        assert_eq!(app.handle(req).await.status.as_u16(), 200);
        after_response(&tasks, &app, &metrics, "all", Instant::now() + Duration::from_secs(10)).await;
    }
    let hot = key_slot(hot_page_key(&backend, &deps).as_str().as_bytes());
    let details = app.market.cache_stats_details().await.unwrap();
    let slots = &details.slots;
    println!("busiest slots: {:?}", slots.slots.iter().take(3).collect::<Vec<_>>());
    assert!(slots.available, "{slots:?}");
    assert_eq!(slots.ordered_by.as_deref(), Some("cpu-usec"));
    assert_eq!(slots.slots.len(), livecache_domain::services::HOT_SLOTS);
    let cpu: Vec<u64> = slots.slots.iter().map(|s| s.cpu_usec.unwrap()).collect();
    assert!(cpu.windows(2).all(|w| w[0] >= w[1]), "ordered by CPU time: {slots:?}");
    let at = slots.slots.iter().position(|s| s.slot == hot);
    let at = at.unwrap_or_else(|| panic!("the page's slot {hot} is listed: {slots:?}"));
    let page = &slots.slots[at];
    let most_out = slots.slots.iter().max_by_key(|s| s.network_bytes_out.unwrap()).unwrap();
    assert_eq!(most_out.slot, hot, "the page's slot sent the most bytes: {slots:?}");
    assert!(page.network_bytes_out.unwrap() > 300 * 1000, "300 pages went out of it");
    assert_eq!(page.node, format!("127.0.0.1:{}", owner(&cluster, hot).port()));
    // The answer as the admin route serves it.
    let json = serde_json::to_value(&details).unwrap();
    assert_eq!(json["slots"]["slots"][at]["slot"], json!(hot));
}

/// Where the servers do not count slots (redis-server 7), or there are none, the statistics
/// say so instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_statistics_say_why_they_are_missing() {
    let cluster = RedisCluster::start(3);
    let (deps, ..) = common::deps_on_backend("slot-stats-none", connect(&cluster, false).await).await;
    let market = deps.market(Arc::new(DeferredTasks::new()));
    let slots = market.cache_stats_details().await.unwrap().slots;
    assert!(!slots.available && slots.slots.is_empty());
    assert!(slots.reason.as_deref().unwrap().contains("CLUSTER SLOT-STATS"), "{slots:?}");
    let server = RedisServer::start();
    let single: Arc<dyn Backend> =
        Arc::new(RedisBackend::connect(RedisConfig::from_url(&server.url()).unwrap()).await.unwrap());
    let (deps, ..) = common::deps_on_backend("slot-stats-single", single).await;
    let slots = deps.market(Arc::new(DeferredTasks::new())).cache_stats_details().await.unwrap().slots;
    assert_eq!(slots.reason.as_deref(), Some("not a cluster: one server holds every slot"));
    let (deps, ..) = common::memory_deps("slot-stats-memory").await;
    let slots = deps.market(Arc::new(DeferredTasks::new())).cache_stats_details().await.unwrap().slots;
    assert!(!slots.available, "{slots:?}");
}

/// The offer index on a cluster: a new offer writes the expiry index in at most two slots (its
/// buyer's shard and its seller's), the offers of many users spread over the shards, and a
/// user's expiring-soon read is two commands on one slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_are_indexed_in_their_users_slots_and_read_from_one() {
    let cluster = RedisCluster::start(3);
    let backend = connect(&cluster, false).await;
    let (deps, _bus, _clock, data) = common::deps_on_backend("offer-index", backend.clone()).await;
    let root = deps.keyspace.root().to_string();
    let tasks = Arc::new(DeferredTasks::new());
    let app = App::new(&deps, tasks.clone(), AdminAuth::Disabled, None);
    let signed_in = |user: &str, mut req: ApiRequest| {
        req.claims = Some(json!({ "sub": user }));
        req
    };
    let buyers: Vec<&str> = data.users.iter().take(40).map(|u| u.id.as_str()).collect();
    let creates: Vec<ApiRequest> = buyers
        .iter()
        .enumerate()
        .map(|(i, buyer)| {
            let product = data.products.iter().cycle().skip(i * 7).find(|p| p.seller_id != *buyer).unwrap();
            let body = json!({ "product_id": product.id, "amount": 5.0, "expires_in_minutes": 30 });
            signed_in(buyer, common::request(Method::POST, "/api/v1/offers", Some(body)))
        })
        .collect();
    let read = |user: &str| {
        signed_in(user, common::request(Method::GET, "/api/v1/offers/expiring-soon?within_minutes=60", None))
    };
    // The first read finds no index and builds it from the database.
    assert_eq!(app.handle(read(buyers[0])).await.status.as_u16(), 200);
    let reads: Vec<ApiRequest> = buyers.iter().map(|b| read(b)).collect();
    let recorded = record(&cluster, &backend, &root, &app, &tasks, &[creates, reads].concat()).await;
    let index_commands = |commands: &[Command]| -> Vec<Command> {
        commands.iter().filter(|c| c.keys.iter().any(|k| k.contains(":offers:"))).cloned().collect()
    };
    let mut shards = HashSet::new();
    for (i, commands) in recorded[..buyers.len()].iter().enumerate() {
        let writes = index_commands(commands);
        assert!((1..=2).contains(&writes.len()), "offer {i}: {writes:?}");
        assert!(writes.iter().all(|c| c.name == "ZADD"), "offer {i}: {writes:?}");
        shards.extend(writes.iter().flat_map(|c| c.keys.clone()));
    }
    println!("40 offers listed in {} of 16 index shards", shards.len());
    assert!(shards.len() >= 8, "the offers spread over the shards: {shards:?}");
    for (i, commands) in recorded[buyers.len()..].iter().enumerate() {
        let used = index_commands(commands);
        let slots: HashSet<u16> = used.iter().flat_map(|c| c.keys.iter().map(|k| key_slot(k.as_bytes()))).collect();
        assert_eq!((used.len(), slots.len()), (2, 1), "read {i}: {used:?}");
    }
}

/// The bytes and CPU a warm feed-page hit costs the master serving it, with and without L1, and
/// the ElastiCache Serverless ECPUs they come to: a simple command costs
/// one ECPU per KB moved, a script by its CPU time against a simple command's (measured here as
/// a GET of a small key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_page_held_in_l1_moves_a_few_bytes_per_hit() {
    let cluster = RedisCluster::start_valkey(3);
    let backend = connect(&cluster, false).await;
    let (deps, _bus, _clock, _data) = common::deps_on_backend("l1-bytes", backend.clone()).await;
    let (without, deps) = (
        livecache_runtime::Deps { l1_bytes: 0, ..deps.clone() },
        livecache_runtime::Deps { l1_bytes: 32 << 20, ..deps },
    );
    let key = hot_page_key(&backend, &deps);
    let slot = key_slot(key.as_str().as_bytes());
    // (bytes in, bytes out) of the master serving `slot` (`INFO stats`: what went over its
    // client connections) and its CPU µs (`INFO commandstats`: a script's time, which holds its
    // inner commands', else every command's), since the last reset.
    let figures = |slot: u16| -> (f64, f64, f64) {
        let node = owner(&cluster, slot);
        let info = node.cli(&["INFO", "stats"]).unwrap();
        let stat = |name: &str| {
            info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).unwrap().trim().parse::<f64>().unwrap()
        };
        let (bytes_in, bytes_out) = (stat("total_net_input_bytes"), stat("total_net_output_bytes"));
        let commands = node.cli(&["INFO", "commandstats"]).unwrap();
        let usec = |l: &str| l.split(",usec=").nth(1)?.split(',').next()?.parse::<f64>().ok();
        let served = commands.lines().filter(|l| {
            !l.starts_with("cmdstat_config") && !l.starts_with("cmdstat_cluster") && !l.starts_with("cmdstat_info")
        });
        let cpu = match commands.lines().find(|l| l.starts_with("cmdstat_evalsha:")) {
            Some(script) => usec(script).unwrap_or(0.0),
            None => served.filter_map(usec).sum(),
        };
        (bytes_in, bytes_out, cpu)
    };
    let reset = || {
        for n in cluster.nodes() {
            n.cli(&["CONFIG", "RESETSTAT"]).unwrap();
        }
    };
    const HITS: usize = 200;
    let mut bodies = Vec::new();
    let mut measured = Vec::new();
    for (label, deps) in [("without L1", &without), ("with L1", &deps)] {
        let tasks = Arc::new(DeferredTasks::new());
        let app = App::new(deps, tasks.clone(), AdminAuth::Disabled, None);
        let metrics = Metrics::default();
        for _ in 0..2 {
            app.handle(common::request(Method::GET, HOT_PAGE, None)).await;
            after_response(&tasks, &app, &metrics, "all", Instant::now() + Duration::from_secs(10)).await;
        }
        reset();
        let before = app.market.cache_report().counts.revalidated;
        for _ in 0..HITS {
            let resp = app.handle(common::request(Method::GET, HOT_PAGE, None)).await;
            assert_eq!(resp.status.as_u16(), 200);
            bodies.push(resp.body.clone());
            after_response(&tasks, &app, &metrics, "all", Instant::now() + Duration::from_secs(10)).await;
        }
        let (bytes_in, bytes_out, cpu) = figures(slot);
        let revalidated = app.market.cache_report().counts.revalidated - before;
        assert_eq!(revalidated, if deps.l1_bytes > 0 { HITS as u64 } else { 0 }, "{label}");
        measured.push((label, bytes_in / HITS as f64, bytes_out / HITS as f64, cpu / HITS as f64));
    }
    // A simple command's CPU on this machine: GETs of a small key.
    let small = "simple:{base}";
    backend.set(small, b"0123456789", None).await.unwrap();
    reset();
    for _ in 0..HITS {
        backend.get(small).await.unwrap();
    }
    let simple_cpu = figures(key_slot(small.as_bytes())).2 / HITS as f64;
    let stored = backend.get(key.as_str()).await.unwrap().unwrap().len();
    let ecpu = |bytes: f64, cpu: f64, script: bool| {
        let by_bytes = (bytes / 1024.0).max(1.0);
        if script {
            by_bytes.max(cpu / simple_cpu)
        } else {
            by_bytes
        }
    };
    let (_, in0, out0, cpu0) = measured[0];
    let (_, in1, out1, cpu1) = measured[1];
    println!(
        "a {stored}-byte stored page, per hit: without L1 {in0:.0} B in, {out0:.0} B out, {cpu0:.1} µs, {:.2} ECPU; \
         with L1 {in1:.0} B in, {out1:.0} B out, {cpu1:.1} µs, {:.2} ECPU (a simple GET: {simple_cpu:.1} µs)",
        ecpu(in0 + out0, cpu0, false),
        ecpu(in1 + out1, cpu1, true),
    );
    assert!(stored > 1024, "the page is worth holding: {stored} bytes");
    assert!(out1 * 10.0 < out0, "with L1 a hit sends back under a tenth of the bytes: {out1} vs {out0}");
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every answer is the same page");
}
