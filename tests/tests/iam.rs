//! Every AWS call a function makes is one its role in `template.yaml` allows. moto allows
//! everything; IAM does not. Each function's real handler is driven on moto — every HTTP route
//! it serves (the `events/http/` requests, and the paths those do not reach), every job and
//! event it handles — with an interceptor on its SDK clients recording the actions and resource
//! ARNs of each call ([`common::aws_calls`]); each is then evaluated against that function's
//! policy statements as IAM would (wildcards in actions and resources; a transaction needs the
//! per-item actions on each of its tables).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::aws_calls::{iam_match, AwsCalls, Need, ACCOUNT, REGION, WS_API, WS_STAGE};
use livecache_cache::{Backend, DeferredTasks, Keyspace, MemoryBackend, SystemClock};
use livecache_domain::seed::{self, SeedSize};
use livecache_domain::tables::{self, TableNames};
use livecache_domain::ManagementApiPoster;
use livecache_domain::{DynamoStore, EventBridgePublisher};
use livecache_http::lambda::{after_response, to_api_request};
use livecache_http::{match_route, AdminAuth, App};
use livecache_runtime::jobs::{handle, Job};
use livecache_runtime::telemetry::Metrics;
use livecache_runtime::{Deps, JobSettings};
use livecache_testkit::{shared_moto, unique_prefix};
use serde_json::Value as Json;
use serde_yaml::Value;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read_json(rel: &str) -> Json {
    serde_json::from_str(&std::fs::read_to_string(root().join(rel)).unwrap()).unwrap()
}

/// The physical names the template's logical ids stand for in this run.
struct Names {
    tables: TableNames,
    bus: String,
}

impl Names {
    fn reference(&self, id: &str) -> String {
        let t = &self.tables;
        match id {
            "ProductsTable" => t.products.clone(),
            "UsersTable" => t.users.clone(),
            "StreamsTable" => t.streams.clone(),
            "OffersTable" => t.offers.clone(),
            "JobsTable" => t.jobs.clone(),
            "ConnectionsTable" => t.connections.clone(),
            "EventBus" => self.bus.clone(),
            "WebSocketApi" => WS_API.into(),
            "WebSocketStage" => WS_STAGE.into(),
            "AWS::Region" => REGION.into(),
            "AWS::AccountId" => ACCOUNT.into(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            other => panic!("the IAM test cannot resolve !Ref {other}: add it to Names"),
        }
    }

    fn attribute(&self, path: &str) -> String {
        let (id, attr) = path.split_once('.').unwrap();
        assert_eq!(attr, "Arn", "!GetAtt {path}");
        let name = self.reference(id);
        if id == "EventBus" {
            format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}")
        } else {
            format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}")
        }
    }

    /// A template value (`!Ref`, `!GetAtt`, `!Sub` or plain) as the string CloudFormation makes.
    fn resolve(&self, v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Tagged(t) => {
                let text = t.value.as_str().unwrap_or_else(|| panic!("unsupported {v:?}"));
                match t.tag.to_string().trim_start_matches('!') {
                    "Ref" => self.reference(text),
                    "GetAtt" => self.attribute(text),
                    "Sub" => {
                        let mut out = String::new();
                        let mut rest = text;
                        while let Some(at) = rest.find("${") {
                            out.push_str(&rest[..at]);
                            let end = rest[at..].find('}').unwrap() + at;
                            let name = &rest[at + 2..end];
                            out.push_str(&if name.contains('.') && !name.starts_with("AWS::") {
                                self.attribute(name)
                            } else {
                                self.reference(name)
                            });
                            rest = &rest[end + 1..];
                        }
                        out.push_str(rest);
                        out
                    }
                    other => panic!("unsupported tag {other} in {v:?}"),
                }
            }
            other => panic!("unsupported policy value {other:?}"),
        }
    }
}

/// One Allow statement: its actions and resource ARNs.
#[derive(Debug)]
struct Statement {
    actions: Vec<String>,
    resources: Vec<String>,
}

fn list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Sequence(s) => s.iter().collect(),
        // Absent (a function without inline policies): nothing.
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// The Allow statements of each function's inline policies, by its binary's name.
fn policies(names: &Names) -> BTreeMap<String, (String, Vec<Statement>)> {
    let t: Value = serde_yaml::from_str(&std::fs::read_to_string(root().join("template.yaml")).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for (id, r) in t["Resources"].as_mapping().unwrap() {
        if r["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_string();
        let mut statements = Vec::new();
        for policy in list(&r["Properties"]["Policies"]) {
            for st in list(&policy["Statement"]) {
                assert_eq!(st["Effect"].as_str(), Some("Allow"), "{id:?}: only Allow statements are modelled");
                statements.push(Statement {
                    actions: list(&st["Action"]).iter().map(|a| names.resolve(a)).collect(),
                    resources: list(&st["Resource"]).iter().map(|a| names.resolve(a)).collect(),
                });
            }
        }
        out.insert(binary, (id.as_str().unwrap().to_string(), statements));
    }
    out
}

fn allowed(statements: &[Statement], need: &Need) -> bool {
    statements.iter().any(|st| {
        st.actions.iter().any(|a| iam_match(&a.to_ascii_lowercase(), &need.action.to_ascii_lowercase()))
            && st.resources.iter().any(|r| iam_match(r, &need.resource))
    })
}

/// The run's services: tables and bus in moto, one in-memory cache shared by every function.
struct World {
    endpoint: String,
    names: Names,
    backend: Arc<dyn Backend>,
    keyspace: Keyspace,
}

impl World {
    async fn sdk(&self) -> aws_config::SdkConfig {
        livecache_domain::config::emulator_config(&self.endpoint).await
    }

    async fn dynamo(&self, calls: &AwsCalls) -> DynamoStore {
        let sdk = self.sdk().await;
        let ddb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(calls.clone()).build(),
        );
        DynamoStore::new(ddb, self.names.tables.clone())
    }

    /// A function's clients, every one recording into `calls`.
    async fn deps(&self, calls: &AwsCalls) -> Deps {
        let sdk = self.sdk().await;
        let eb = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(&sdk).interceptor(calls.clone()).build(),
        );
        Deps {
            backend: self.backend.clone(),
            keyspace: self.keyspace.clone(),
            store: Arc::new(self.dynamo(calls).await),
            events: Arc::new(EventBridgePublisher::new(eb, self.names.bus.clone())),
            bus: None,
            clock: Arc::new(SystemClock),
            load_timeout: Some(Duration::from_secs(30)),
            l1_bytes: livecache_runtime::DEFAULT_L1_MB << 20,
            user_ttls: Default::default(),
        }
    }

    fn poster(&self, sdk: &aws_config::SdkConfig, calls: &AwsCalls) -> ManagementApiPoster {
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(&self.endpoint)
            .interceptor(calls.clone())
            .build();
        ManagementApiPoster::from_client(aws_sdk_apigatewaymanagement::Client::from_conf(conf))
    }
}

/// An API Gateway v2 request for `method path?query` (the paths the sample events miss).
fn request(method: &str, path: &str, query: &str) -> Json {
    let mut event = read_json("events/http/feeds-discover.json");
    event["routeKey"] = format!("{method} {path}").into();
    event["rawPath"] = path.into();
    event["rawQueryString"] = query.into();
    event["queryStringParameters"] = form_query(query);
    event["requestContext"]["http"]["method"] = method.into();
    event["requestContext"]["http"]["path"] = path.into();
    event
}

fn form_query(query: &str) -> Json {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), Json::from(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_each_function_makes_is_allowed_by_its_role_in_the_template() {
    let endpoint = shared_moto().endpoint();
    let prefix = unique_prefix("iam");
    let names = Names { tables: TableNames::prefixed(&prefix), bus: format!("{prefix}-bus") };
    let sdk = livecache_domain::config::emulator_config(&endpoint).await;
    tables::create_all(&aws_sdk_dynamodb::Client::new(&sdk), &names.tables).await.unwrap();
    aws_sdk_eventbridge::Client::new(&sdk).create_event_bus().name(&names.bus).send().await.unwrap();
    let world = World {
        endpoint,
        names,
        backend: Arc::new(MemoryBackend::new(100_000)),
        keyspace: Keyspace::new(Some(&prefix), "v1").unwrap(),
    };
    {
        // The demo data set, which the sample events name (its streams, offers and owners).
        let seeding = world.deps(&AwsCalls::default()).await;
        seed::seed(&*seeding.store, &seed::generate(SeedSize::DEMO, livecache_domain::time::now())).await.unwrap();
    }

    let mut recorded: BTreeMap<String, Vec<Need>> = BTreeMap::new();

    // HTTP functions: every sample request through the function that serves it, its
    // post-response work included, then the paths the samples do not reach.
    let mut requests: Vec<(String, Json)> = std::fs::read_dir(root().join("events/http"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), read_json(p.to_str().unwrap())))
        .collect();
    requests.sort_by(|a, b| a.0.cmp(&b.0));
    // A community page in an empty area (the nearest cell does not fill it: the other cells'
    // markers are read), the same page again, a product read twice (a view, then a hit).
    requests.push((
        "community-empty-area".into(),
        request("GET", "/api/v1/feeds/community", "lat=-48.9&lon=-123.4&radius_km=50"),
    ));
    requests.push((
        "community-empty-area-category".into(),
        request("GET", "/api/v1/feeds/community", "lat=-48.9&lon=-123.4&radius_km=50&category=fashion"),
    ));
    requests.push(("discover-page-2".into(), request("GET", "/api/v1/feeds/discover", "page=2&per_page=20")));
    let mut apps: BTreeMap<&'static str, (AwsCalls, Arc<DeferredTasks>, App, Metrics)> = BTreeMap::new();
    for (name, event) in &requests {
        let method: http::Method = event["requestContext"]["http"]["method"].as_str().unwrap().parse().unwrap();
        let (def, _) = match_route(&method, event["rawPath"].as_str().unwrap(), None)
            .unwrap_or_else(|_| panic!("{name}: no route"));
        if !apps.contains_key(def.function) {
            let calls = AwsCalls::default();
            let tasks = Arc::new(DeferredTasks::new());
            let deps = world.deps(&calls).await;
            let app = App::new(&deps, tasks.clone(), AdminAuth::Iam { principals: vec![] }, Some(def.function));
            apps.insert(def.function, (calls, tasks, app, Metrics::default()));
        }
        let (_, tasks, app, metrics) = &apps[def.function];
        let req = lambda_http::request::from_str(&event.to_string()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let resp = app.handle(to_api_request(req)).await;
        assert!(resp.status.is_success(), "{name}: {} {}", resp.status, String::from_utf8_lossy(&resp.body));
        after_response(tasks, app, metrics, def.function, Instant::now() + Duration::from_secs(10)).await;
    }
    for (function, (calls, ..)) in apps {
        recorded.entry(function.to_string()).or_default().extend(calls.take());
    }

    // Jobs and event-driven functions, on their sample events.
    let settings = JobSettings::default();
    let jobs = [
        (Job::ViewSync, "events/jobs/schedule-view-sync.json"),
        (Job::OfferExpiry, "events/jobs/schedule-offer-expiry.json"),
        (Job::CacheCleanup, "events/jobs/schedule-cache-cleanup.json"),
        (Job::CacheEvents, "events/jobs/product-updated.json"),
        (Job::CacheEvents, "events/jobs/stream-status-changed.json"),
        (Job::ChangeLog, "events/jobs/change-log.json"),
    ];
    for (job, event) in jobs {
        let calls = AwsCalls::default();
        let deps = world.deps(&calls).await;
        let tasks = Arc::new(DeferredTasks::new());
        let market = deps.market(tasks.clone());
        let deadline = Instant::now() + livecache_runtime::jobs::SAFETY_MARGIN + Duration::from_secs(1);
        // The change log's records name this test's tables (the sample names the defaults).
        let event = read_json(event).to_string();
        let event = event
            .replace(":table/livecache-users/", &format!(":table/{}/", world.names.tables.users))
            .replace(":table/livecache-products/", &format!(":table/{}/", world.names.tables.products));
        let settings = JobSettings { tables: world.names.tables.clone(), ..settings.clone() };
        let out = handle(job, &market, &serde_json::from_str(&event).unwrap(), deadline, &settings).await;
        assert!(out.is_ok(), "{event}: {out:?}");
        tasks.run_all().await;
        market.flush_stats().await.unwrap();
        recorded.entry(job.name().to_string()).or_default().extend(calls.take());
    }

    // The WebSocket routes (ws), and a push to the connection they made (push).
    let ws_calls = AwsCalls::default();
    let ws_store = world.dynamo(&ws_calls).await;
    let socket = |file: &str| read_json(&format!("events/ws/{file}.json"));
    for file in ["connect", "subscribe"] {
        let out = livecache_domain::push::handle_socket_event(&ws_store, &socket(file)).await;
        assert_eq!(out["statusCode"], 200, "{file}: {out}");
    }
    let push_calls = AwsCalls::default();
    let push_store = world.dynamo(&push_calls).await;
    let poster = world.poster(&world.sdk().await, &push_calls);
    let out =
        livecache_runtime::push::push_event(&push_store, &poster, &read_json("events/jobs/stream-status-changed.json"))
            .await
            .unwrap();
    assert_eq!(out["report"]["delivered"], 1, "{out}");
    let out = livecache_domain::push::handle_socket_event(&ws_store, &socket("disconnect")).await;
    assert_eq!(out["statusCode"], 200, "disconnect: {out}");
    recorded.insert("ws".into(), ws_calls.take());
    recorded.insert("push".into(), push_calls.take());

    // Every function was driven, and every call it made is allowed.
    let policies = policies(&world.names);
    let crates: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let driven: BTreeSet<String> = recorded.keys().cloned().collect();
    assert_eq!(driven, crates, "every function is driven");
    // change-log talks to Redis only: Lambda's event source reads its streams, with the role
    // SAM attaches for a DynamoDB event (AWSLambdaDynamoDBExecutionRole).
    let silent: Vec<&str> = recorded.iter().filter(|(_, n)| n.is_empty()).map(|(f, _)| f.as_str()).collect();
    assert_eq!(silent, ["change-log"], "every other function calls AWS");
    let mut denied = Vec::new();
    for (function, needs) in &recorded {
        let (resource, statements) = &policies[function];
        let needs: BTreeSet<&Need> = needs.iter().collect();
        for need in needs {
            if !allowed(statements, need) {
                denied.push(format!(
                    "{resource} ({function}) calls {} on {}, which its policy does not allow; it allows {statements:#?}",
                    need.action, need.resource
                ));
            }
        }
    }
    assert!(denied.is_empty(), "AccessDenied on AWS:\n{}", denied.join("\n"));
}
