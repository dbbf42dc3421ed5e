//! Black box: two app instances sharing one redis-server and moto, the change log followed,
//! clients writing profiles and moving streams live and back while others read through both
//! instances — and Redis frozen for 3 s, later killed and restarted empty a second later. Every operation's
//! start and end is recorded; a read is stale when it started after the client had seen a
//! newer write acknowledged (and no later write of the same thing was in flight). Allowed: the
//! window after a freeze until the change log has applied what was committed (measured and
//! printed beside the documented [`BOUND`]); outside it, 0 stale reads, for profiles,
//! everything showing them (full profile, batch card, leaderboard) and the live list. When it
//! fails, the history is written to a file (its path is in the message).

mod common;

use livecache_domain::Id;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use livecache_domain::services::Marketplace;
use livecache_domain::users::ProfilePatch;
use livecache_domain::StreamStatus;
use livecache_testkit::{scratch_dir, RedisServer};
use serde::Serialize;

/// The documented bound: after Redis answers again, a change acknowledged while it did not is
/// invalidated within this (the breaker's 2 s cooldown and the retry). Reads are excused until
/// the follower has applied every change committed before the thaw — measured, not assumed, so
/// that no assertion depends on how fast the machine is — and the window is printed beside it.
const BOUND: Duration = Duration::from_secs(5);

/// How long the window may take before the change log counts as stuck: on a loaded machine the
/// follower's moto reads are slow, and that is not a stale read.
const STUCK_AFTER: Duration = Duration::from_secs(30);
/// How long the clients go on after Redis is back from the kill (reads checked against the
/// writes acknowledged around it).
const AFTER_FAULTS: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize)]
struct Op {
    client: String,
    instance: usize,
    /// `write`, `profile`, `me`, `card`, `leaderboard`, `go_live`, `end`, `live`.
    kind: &'static str,
    /// A user id or a stream id.
    key: String,
    /// A profile's version (0: the seeded name), or 1/0 for "in the live list".
    value: i64,
    start_ms: u64,
    end_ms: u64,
    ok: bool,
}

#[derive(Clone)]
struct History {
    t0: Instant,
    /// Set when the clients are to stop.
    stop: Arc<std::sync::atomic::AtomicBool>,
    ops: Arc<Mutex<Vec<Op>>>,
}

impl History {
    fn ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    fn running(&self) -> bool {
        !self.stop.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn push(&self, op: Op) {
        self.ops.lock().unwrap().push(op);
    }
}

/// The version a profile name carries (`… v{n}`; the seeded name is 0).
fn version(name: &str) -> i64 {
    name.rsplit_once(" v").and_then(|(_, n)| n.parse().ok()).unwrap_or(0)
}

async fn read(m: &Marketplace, kind: &'static str, user: &str) -> Result<i64, String> {
    let e = |e: livecache_domain::services::ServiceError| e.to_string();
    Ok(match kind {
        "profile" => version(&m.user_profile(&Id::parse(user).unwrap()).await.map_err(e)?.value.user.name),
        "me" => version(&m.my_profile(&Id::parse(user).unwrap()).await.map_err(e)?.value.profile.user.name),
        "card" => {
            let answer = m.batch_users(&[user.to_string()]).await.map_err(e)?;
            let card: serde_json::Value = serde_json::from_str(answer.items[0].get()).unwrap();
            version(card["name"].as_str().unwrap_or_default())
        }
        _ => {
            let board = m.leaderboard(0, 20).await.map_err(e)?;
            version(&board.value.iter().find(|r| r.user_id == user).ok_or("not on the board")?.name)
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_stale_read_after_an_acknowledged_write_on_two_instances_through_redis_faults() {
    let server = Arc::new(RedisServer::start());
    let tables = common::dynamo_tables("read-after-write").await;
    let (deps, _bus, _clock, data) = common::deps_over("read-after-write", tables.store.clone(), tables.data.clone());
    let deps = livecache_runtime::Deps { load_timeout: Some(Duration::from_secs(30)), ..deps };
    let instances = common::instances(2, &server.url(), &deps).await;
    let instances = Arc::new(instances);
    let follower =
        Arc::new(livecache_dev::follow::follow(instances[0].clone(), &tables.sdk, &tables.names).await.unwrap());
    follower.caught_up().await;

    // Writers: three sellers on the leaderboard's first page, each changing its own name.
    let board = instances[0].leaderboard(0, 20).await.unwrap().value;
    let writers: Vec<String> = board.iter().take(3).map(|r| r.user_id.clone()).collect();
    assert_eq!(writers.len(), 3, "sellers with points in the seed");
    let streams: Vec<(String, String)> = data
        .streams
        .iter()
        .filter(|s| s.status == StreamStatus::Scheduled)
        .take(12)
        .map(|s| (s.id.clone(), s.seller_id.clone()))
        .collect();
    let history = History { t0: Instant::now(), stop: Default::default(), ops: Default::default() };
    let mut clients = Vec::new();
    for (w, user) in writers.iter().enumerate() {
        let (h, ms, user) = (history.clone(), instances.clone(), user.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0;
            while h.running() {
                n += 1;
                let instance = n as usize % 2;
                let patch: ProfilePatch =
                    serde_json::from_value(serde_json::json!({ "name": format!("Seller {w} v{n}") })).unwrap();
                let start_ms = h.ms();
                let ok = ms[instance].update_my_profile(&Id::parse(&user).unwrap(), &patch).await.is_ok();
                let op = Op {
                    client: format!("writer{w}"),
                    instance,
                    kind: "write",
                    key: user.clone(),
                    value: n,
                    start_ms,
                    end_ms: h.ms(),
                    ok,
                };
                h.push(op);
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }));
    }
    // One seller after another goes live and ends.
    {
        let (h, ms) = (history.clone(), instances.clone());
        clients.push(tokio::spawn(async move {
            for (i, (id, seller)) in streams.iter().enumerate() {
                for (j, to) in [StreamStatus::Live, StreamStatus::Ended].into_iter().enumerate() {
                    if !h.running() {
                        return;
                    }
                    let instance = (i + j) % 2;
                    let start_ms = h.ms();
                    let ok = ms[instance]
                        .transition_stream(&Id::parse(id).unwrap(), to, &Id::parse(seller).unwrap())
                        .await
                        .is_ok();
                    let kind = if to == StreamStatus::Live { "go_live" } else { "end" };
                    let value = i64::from(to == StreamStatus::Live);
                    h.push(Op {
                        client: "seller".into(),
                        instance,
                        kind,
                        key: id.clone(),
                        value,
                        start_ms,
                        end_ms: h.ms(),
                        ok,
                    });
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }));
    }
    // Readers through both instances.
    for r in 0..4usize {
        let (h, ms, writers) = (history.clone(), instances.clone(), writers.clone());
        let watched: Vec<String> = data.streams.iter().map(|s| s.id.clone()).collect();
        clients.push(tokio::spawn(async move {
            let kinds = ["profile", "me", "card", "leaderboard", "live"];
            let mut i = r;
            while h.running() {
                i += 1;
                let (instance, kind, user) = (i % 2, kinds[i % kinds.len()], &writers[i % writers.len()]);
                let start_ms = h.ms();
                if kind == "live" {
                    let live = ms[instance].live_streams().await;
                    let end_ms = h.ms();
                    let shown: Vec<String> =
                        live.as_ref().map(|l| l.value.iter().map(|s| s.id.clone()).collect()).unwrap_or_default();
                    for id in &watched {
                        let value = i64::from(shown.contains(id));
                        h.push(Op {
                            client: format!("reader{r}"),
                            instance,
                            kind,
                            key: id.clone(),
                            value,
                            start_ms,
                            end_ms,
                            ok: live.is_ok(),
                        });
                    }
                } else {
                    let got = read(&ms[instance], kind, user).await;
                    let op = Op {
                        client: format!("reader{r}"),
                        instance,
                        kind,
                        key: user.clone(),
                        value: *got.as_ref().unwrap_or(&-1),
                        start_ms,
                        end_ms: h.ms(),
                        ok: got.is_ok(),
                    };
                    h.push(op);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    // Faults: frozen from 2 s to 5 s; killed at 7 s, back (empty) a second later. When the follower has
    // applied what was committed up to the thaw, the freeze's window closes.
    // The kill waits for that (at 7 s at the earliest), so the two faults never overlap.
    let (thawed_tx, thawed_rx) = tokio::sync::oneshot::channel::<()>();
    let (applied_tx, applied_rx) = std::sync::mpsc::channel::<u64>();
    let applied = {
        let (h, follower) = (history.clone(), follower.clone());
        tokio::spawn(async move {
            thawed_rx.await.unwrap();
            follower.caught_up().await;
            let at = h.ms();
            applied_tx.send(at).unwrap();
            at
        })
    };
    let faults = {
        let (h, server) = (history.clone(), server.clone());
        tokio::task::spawn_blocking(move || {
            let at = |t: u64| std::thread::sleep(Duration::from_millis(t.saturating_sub(h.ms())));
            at(2_000);
            let frozen = server.freeze();
            let from = h.ms();
            at(5_000);
            drop(frozen);
            let freeze = (from, h.ms());
            thawed_tx.send(()).unwrap();
            let applied = applied_rx.recv().unwrap();
            at(7_000.max(applied + 500));
            server.kill();
            let from = h.ms();
            at(from + 1_000);
            server.restart();
            let kill = (from, h.ms());
            std::thread::sleep(AFTER_FAULTS);
            h.stop.store(true, std::sync::atomic::Ordering::SeqCst);
            (freeze, kill)
        })
    };
    for c in clients {
        c.await.unwrap();
    }
    let (freeze, kill) = faults.await.unwrap();
    let applied = applied.await.unwrap();
    follower.caught_up().await;
    let window = Duration::from_millis(applied - freeze.1);
    println!("changes acknowledged during the freeze applied {window:?} after it ended (bound {BOUND:?})");
    assert!(window < STUCK_AFTER, "the change log did not apply the freeze's changes within {STUCK_AFTER:?}");

    let ops = history.ops.lock().unwrap().clone();
    // A freeze keeps what was cached before it: reads until the follower has applied the
    // changes committed up to the thaw are excused. A kill empties the cache: nothing is
    // excused around it.
    let excused = |start: u64| start >= freeze.0 && start <= applied;
    let mut writes: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops.iter().filter(|o| matches!(o.kind, "write" | "go_live" | "end")) {
        writes.entry(&op.key).or_default().push(op);
    }
    let mut stale = Vec::new();
    let (mut checked, mut reads) = (0, 0);
    for op in ops.iter().filter(|o| !matches!(o.kind, "write" | "go_live" | "end")) {
        reads += 1;
        assert!(op.ok, "a read failed (Redis faults must cost no request): {op:?}");
        let Some(ws) = writes.get(op.key.as_str()) else { continue };
        // What the reader must see: the last write acknowledged before it started, unless a
        // later write of the same thing overlaps the read (then either may show).
        let acked = ws.iter().filter(|w| w.ok && w.end_ms < op.start_ms).max_by_key(|w| w.end_ms);
        let overlapping = ws.iter().any(|w| w.start_ms <= op.end_ms && w.end_ms >= op.start_ms);
        let Some(acked) = acked else { continue };
        if overlapping || excused(op.start_ms) {
            continue;
        }
        checked += 1;
        let fresh = if op.kind == "live" { op.value == acked.value } else { op.value >= acked.value };
        if !fresh {
            stale.push((op.clone(), (*acked).clone()));
        }
    }
    let writes_ok = ops.iter().filter(|o| matches!(o.kind, "write" | "go_live" | "end") && o.ok).count();
    println!("{reads} reads ({checked} checked outside the fault bounds), {writes_ok} writes acknowledged, frozen {freeze:?} ms, killed {kill:?} ms, stale {}", stale.len());
    if !stale.is_empty() || checked < 30 {
        let path = scratch_dir("read-after-write").join("history.json");
        let dump = serde_json::json!({ "frozen_ms": freeze, "killed_ms": kill, "bound_ms": BOUND.as_millis() as u64, "applied_ms": applied, "stale": stale.iter().map(|(r, w)| serde_json::json!({"read": r, "acknowledged": w})).collect::<Vec<_>>(), "ops": ops });
        std::fs::write(&path, serde_json::to_vec_pretty(&dump).unwrap()).unwrap();
        panic!(
            "{} stale reads of {checked} checked (first: {:?}); history in {}",
            stale.len(),
            stale.first(),
            path.display()
        );
    }
    let failed_writes: Vec<&Op> =
        ops.iter().filter(|o| matches!(o.kind, "write" | "go_live" | "end") && !o.ok).collect();
    assert!(failed_writes.is_empty(), "a write failed during a Redis fault: {failed_writes:?}");
}
