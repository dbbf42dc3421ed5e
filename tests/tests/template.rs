//! `template.yaml` and the code agree: every function crate has a template resource built from
//! it and every template function a crate; the HTTP API routes are the routes served (admin
//! ones on IAM auth); every environment variable the template sets is one the code reads.

use std::collections::BTreeSet;
use std::path::Path;

use livecache_http::{Access, ROUTES};
use serde_yaml::Value;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn template() -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(root().join("template.yaml")).unwrap()).unwrap()
}

fn functions(t: &Value) -> Vec<(String, &Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(k, r)| (k.as_str().unwrap().to_string(), r))
        .collect()
}

#[test]
fn every_function_crate_has_a_resource_and_every_resource_a_crate() {
    let t = template();
    let mut built: BTreeSet<String> = BTreeSet::new();
    for (name, r) in functions(&t) {
        assert_eq!(r["Metadata"]["BuildMethod"].as_str(), Some("rust-cargolambda"), "{name}");
        assert_eq!(r["Properties"]["Handler"].as_str(), Some("bootstrap"), "{name}");
        built.insert(r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_string());
    }
    let crates: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(built, crates);
}

#[test]
fn the_streams_function_may_move_a_sellers_products_in_the_feed_index() {
    let t = template();
    let statements = t["Resources"]["StreamsFunction"]["Properties"]["Policies"][0]["Statement"].as_sequence().unwrap();
    let allows = |action: &str, resource: &str| {
        statements.iter().any(|st| {
            st["Action"].as_sequence().unwrap().iter().any(|a| a.as_str() == Some(action))
                && st["Resource"].as_sequence().unwrap().iter().any(|r| format!("{r:?}").contains(resource))
        })
    };
    assert!(allows("dynamodb:UpdateItem", "ProductsTable.Arn"));
    assert!(allows("dynamodb:Query", "ProductsTable.Arn}/index/by_seller"));
}

#[test]
fn each_scheduled_job_runs_on_its_own_schedule() {
    let t = template();
    let mut seen = Vec::new();
    for (name, r) in functions(&t) {
        let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        let Some(job) = livecache_domain::jobs::Job::SCHEDULED.into_iter().find(|j| j.name() == binary) else {
            continue;
        };
        let events = r["Properties"]["Events"].as_mapping().unwrap();
        let declared: Vec<&str> = events
            .values()
            .filter(|e| e["Type"].as_str() == Some("Schedule"))
            .filter_map(|e| e["Properties"]["Schedule"].as_str())
            .collect();
        assert_eq!(declared, vec![job.schedule().unwrap().expression().as_str()], "{name}");
        seen.push(job);
    }
    assert_eq!(seen.len(), livecache_domain::jobs::Job::SCHEDULED.len());
}

#[test]
fn the_http_api_routes_are_the_routes_served() {
    let t = template();
    let mut declared = BTreeSet::new();
    for (name, r) in functions(&t) {
        let Some(events) = r["Properties"]["Events"].as_mapping() else { continue };
        for (_, e) in events {
            if e["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let p = &e["Properties"];
            let auth = match p["Auth"]["Authorizer"].as_str() {
                Some("AWS_IAM") => Access::Admin,
                Some("JwtAuthorizer") => Access::User,
                _ => Access::Public,
            };
            let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_string();
            declared.insert((
                p["Method"].as_str().unwrap().to_string(),
                p["Path"].as_str().unwrap().to_string(),
                binary,
                format!("{auth:?}"),
            ));
            assert!(!name.is_empty());
        }
    }
    let served: BTreeSet<(String, String, String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.pattern.to_string(), r.function.to_string(), format!("{:?}", r.access)))
        .collect();
    assert_eq!(declared, served);
}

#[test]
fn schedules_and_the_event_rule_are_declared() {
    let t = template();
    let trigger = |f: &str| t["Resources"][f]["Properties"]["Events"]["Trigger"].clone();
    assert_eq!(trigger("ViewSyncFunction")["Properties"]["Schedule"].as_str(), Some("rate(1 minute)"));
    assert_eq!(trigger("OfferExpiryFunction")["Properties"]["Schedule"].as_str(), Some("rate(1 minute)"));
    assert_eq!(trigger("CacheCleanupFunction")["Properties"]["Schedule"].as_str(), Some("cron(0 3 * * ? *)"));
    let rule = trigger("CacheEventsFunction");
    assert_eq!(rule["Type"].as_str(), Some("EventBridgeRule"));
    let types: Vec<&str> = rule["Properties"]["Pattern"]["detail-type"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(types, ["ProductUpdated", "StreamStatusChanged"]);
}

/// Names passed to `std::env::var("…")` anywhere in the code, plus the table variables.
fn variables_the_code_reads() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = livecache_domain::tables::ALL.iter().map(|t| t.env.to_string()).collect();
    let mut stack = vec![root().join("shared"), root().join("functions"), root().join("infra")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                // `env::var("X")`, and `var("X")` through the configuration's lookup.
                for (i, _) in text.match_indices("var(\"") {
                    let rest = &text[i + "var(\"".len()..];
                    names.insert(rest[..rest.find('"').unwrap()].to_string());
                }
                for (i, _) in text.match_indices("env_num(\"") {
                    let rest = &text[i + "env_num(\"".len()..];
                    names.insert(rest[..rest.find('"').unwrap()].to_string());
                }
            }
        }
    }
    names
}

#[test]
fn every_variable_the_template_sets_is_read_by_the_code() {
    let t = template();
    let read = variables_the_code_reads();
    let mut set: Vec<(String, String)> = Vec::new();
    for (k, _) in t["Globals"]["Function"]["Environment"]["Variables"].as_mapping().unwrap() {
        set.push(("Globals".into(), k.as_str().unwrap().to_string()));
    }
    for (name, r) in functions(&t) {
        if let Some(vars) = r["Properties"]["Environment"]["Variables"].as_mapping() {
            for (k, _) in vars {
                set.push((name.clone(), k.as_str().unwrap().to_string()));
            }
        }
    }
    for (owner, var) in &set {
        assert!(read.contains(var), "{owner} sets {var}, which no code reads (the code reads {read:?})");
    }
    for needed in
        ["REDIS_URL", "EVENT_BUS_NAME", "DATA_BACKEND", "PRODUCTS_TABLE", "JOBS_TABLE", "ADMIN_PRINCIPAL_ARNS"]
    {
        assert!(set.iter().any(|(_, v)| v == needed), "the template does not set {needed}");
    }
}

#[test]
fn the_api_is_throttled_and_the_jwt_authorizer_is_parameterised() {
    let t = template();
    let api = &t["Resources"]["HttpApi"]["Properties"];
    assert!(format!("{:?}", api["DefaultRouteSettings"]["ThrottlingBurstLimit"]).contains("ThrottlingBurstLimit"));
    assert!(format!("{:?}", api["DefaultRouteSettings"]["ThrottlingRateLimit"]).contains("ThrottlingRateLimit"));
    let jwt = &api["Auth"]["Authorizers"]["JwtAuthorizer"]["JwtConfiguration"];
    assert!(format!("{:?}", jwt["issuer"]).contains("JwtIssuer"));
    assert!(format!("{:?}", jwt["audience"]).contains("JwtAudience"));
    for p in ["JwtIssuer", "JwtAudience", "ThrottlingBurstLimit", "ThrottlingRateLimit"] {
        assert!(!t["Parameters"][p].is_null(), "parameter {p}");
    }
}

#[test]
fn operators_are_alarmed_through_the_topic_and_have_a_dashboard() {
    let t = template();
    let resources = t["Resources"].as_mapping().unwrap();
    let alarms: Vec<(&str, &Value)> = resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .map(|(k, r)| (k.as_str().unwrap(), r))
        .collect();
    for (name, alarm) in &alarms {
        let actions = format!("{:?}", alarm["Properties"]["AlarmActions"]);
        assert!(actions.contains("AlarmTopicArn"), "{name} notifies the operators' topic: {actions}");
    }
    let metric_of = |name: &str| {
        let a = alarms.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("alarm {name}")).1;
        format!("{:?}", a["Properties"])
    };
    // Each scheduled job: failed, and did not run in its window.
    for job in ["ViewSync", "OfferExpiry", "CacheCleanup"] {
        let failed = metric_of(&format!("{job}FailedAlarm"));
        assert!(failed.contains("Errors") && failed.contains(&format!("{job}Function")), "{failed}");
        // A period without a run has no data point: it pages through INSUFFICIENT_DATA, and
        // the time from deploy to the first run (no data yet) pages nobody.
        let missed = &t["Resources"][format!("{job}MissedAlarm").as_str()]["Properties"];
        assert_eq!(missed["MetricName"].as_str(), Some("Invocations"));
        assert_eq!(missed["TreatMissingData"].as_str(), Some("missing"), "{job}MissedAlarm");
        assert!(format!("{:?}", missed["InsufficientDataActions"]).contains("AlarmTopicArn"), "{job}MissedAlarm");
    }
    assert!(metric_of("Api5xxRateAlarm").contains("5xx"));
    assert!(metric_of("CacheErrorRateAlarm").contains("CacheErrors"));
    // The EMF metrics the alarms read are the ones the functions emit.
    let telemetry = std::fs::read_to_string(root().join("shared/runtime/src/telemetry.rs")).unwrap();
    for metric in ["CacheErrors", "CacheHits", "CacheMisses", "CacheBreakerOpened", "JobLagSeconds", "JobFailed"] {
        assert!(telemetry.contains(&format!("\"{metric}\"")), "the functions emit {metric}");
    }
    assert!(metric_of("CacheBreakerAlarm").contains("CacheBreakerOpened"));
    assert_eq!(t["Parameters"]["AlarmTopicArn"]["Type"].as_str(), Some("String"));
    let dashboard = format!("{:?}", t["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]);
    for widget in ["hit rate", "Latency", "reads saved", "JobLagSeconds"] {
        assert!(dashboard.contains(widget), "the dashboard shows {widget}");
    }
}

/// Whether function `f`'s policy allows `action` on a resource whose text contains `resource`.
fn allows(t: &Value, f: &str, action: &str, resource: &str) -> bool {
    let statements = t["Resources"][f]["Properties"]["Policies"][0]["Statement"].as_sequence().unwrap();
    statements.iter().any(|st| {
        st["Action"].as_sequence().unwrap().iter().any(|a| a.as_str() == Some(action))
            && st["Resource"].as_sequence().unwrap().iter().any(|r| format!("{r:?}").contains(resource))
    })
}

#[test]
fn users_and_awards_may_do_what_they_need_and_no_more() {
    let t = template();
    assert!(allows(&t, "UsersFunction", "dynamodb:UpdateItem", "UsersTable.Arn"));
    assert!(allows(&t, "UsersFunction", "dynamodb:Query", "UsersTable.Arn}/index/*"));
    assert!(allows(&t, "UsersFunction", "dynamodb:Query", "StreamsTable.Arn}/index/by_seller"));
    assert!(
        !allows(&t, "UsersFunction", "dynamodb:PutItem", "UsersTable.Arn"),
        "a profile change never replaces the item"
    );
    // Awarding: the badge's item and the points in one transaction.
    assert!(allows(&t, "CacheEventsFunction", "dynamodb:PutItem", "UsersTable.Arn"));
    assert!(allows(&t, "CacheEventsFunction", "dynamodb:UpdateItem", "UsersTable.Arn"));
    let users = &t["Resources"]["UsersTable"]["Properties"]["GlobalSecondaryIndexes"];
    let names: Vec<&str> = users.as_sequence().unwrap().iter().map(|i| i["IndexName"].as_str().unwrap()).collect();
    assert_eq!(names, ["by_points", "by_owner", "by_recent"]);
}

#[test]
fn the_refresh_push_has_its_websocket_api_connections_table_and_least_privilege() {
    let t = template();
    let r = &t["Resources"];
    assert_eq!(r["WebSocketApi"]["Properties"]["ProtocolType"].as_str(), Some("WEBSOCKET"));
    let routes: BTreeSet<&str> = r
        .as_mapping()
        .unwrap()
        .values()
        .filter(|v| v["Type"].as_str() == Some("AWS::ApiGatewayV2::Route"))
        .map(|v| v["Properties"]["RouteKey"].as_str().unwrap())
        .collect();
    assert_eq!(routes, BTreeSet::from(["$connect", "$disconnect", "subscribe", "$default"]));
    let ttl = &r["ConnectionsTable"]["Properties"]["TimeToLiveSpecification"];
    assert_eq!((ttl["AttributeName"].as_str(), ttl["Enabled"].as_bool()), (Some("ttl"), Some(true)));
    let rule = &r["PushFunction"]["Properties"]["Events"]["Trigger"];
    assert_eq!(
        rule["Properties"]["Pattern"],
        r["CacheEventsFunction"]["Properties"]["Events"]["Trigger"]["Properties"]["Pattern"]
    );
    let endpoint = format!("{:?}", r["PushFunction"]["Properties"]["Environment"]["Variables"]["WEBSOCKET_ENDPOINT"]);
    assert!(endpoint.contains("WebSocketApi") && endpoint.contains("WebSocketStage"), "{endpoint}");
    assert!(allows(&t, "PushFunction", "execute-api:ManageConnections", "@connections/*"));
    assert!(allows(&t, "PushFunction", "dynamodb:DeleteItem", "ConnectionsTable.Arn"));
    assert!(allows(&t, "WsFunction", "dynamodb:PutItem", "ConnectionsTable.Arn"));
    assert!(!allows(&t, "WsFunction", "dynamodb:Scan", "ConnectionsTable.Arn"));
}

/// The functions whose binary serves the WebSocket routes or posts pushes: no Redis, no VPC.
fn without_redis(t: &Value) -> BTreeSet<String> {
    functions(t)
        .into_iter()
        .filter(|(_, r)| {
            let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
            let main = std::fs::read_to_string(root().join(format!("functions/{binary}/src/main.rs"))).unwrap();
            main.contains("run_socket") || main.contains("run_push")
        })
        .map(|(name, _)| name)
        .collect()
}

#[test]
fn only_the_functions_that_use_redis_run_in_the_vpc_and_are_given_its_url() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert!(globals["VpcConfig"].is_null(), "the VPC is per function: a global one gives every role the VPC policy");
    assert!(globals["Environment"]["Variables"]["REDIS_URL"].is_null());
    let outside = without_redis(&t);
    assert_eq!(outside, BTreeSet::from(["PushFunction".to_string(), "WsFunction".to_string()]));
    for (name, r) in functions(&t) {
        let p = &r["Properties"];
        let redis = !outside.contains(&name);
        assert_eq!(!p["VpcConfig"].is_null(), redis, "{name}: VpcConfig");
        assert_eq!(!p["Environment"]["Variables"]["REDIS_URL"].is_null(), redis, "{name}: REDIS_URL");
    }
}

#[test]
fn every_function_logs_to_a_group_kept_for_the_retention_parameter() {
    let t = template();
    for (name, r) in functions(&t) {
        let logging = &r["Properties"]["LoggingConfig"];
        assert_eq!(logging["LogFormat"].as_str(), Some("JSON"), "{name}");
        let group = format!("{:?}", logging["LogGroup"]);
        let id = t["Resources"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap())
            .find(|k| group.contains(&format!("\"{k}\"")))
            .unwrap_or_else(|| panic!("{name}: LogGroup {group} is no resource"));
        let lg = &t["Resources"][id];
        assert_eq!(lg["Type"].as_str(), Some("AWS::Logs::LogGroup"), "{name}");
        assert!(format!("{:?}", lg["Properties"]["RetentionInDays"]).contains("LogRetentionDays"), "{name}");
        let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        assert!(format!("{:?}", lg["Properties"]["LogGroupName"])
            .contains(&format!("/aws/lambda/${{AWS::StackName}}-{binary}")));
    }
    assert!(t["Parameters"]["LogRetentionDays"]["Default"].as_u64().is_some());
}

#[test]
fn asynchronous_functions_keep_what_fails_and_scheduled_jobs_are_not_retried() {
    let t = template();
    let r = &t["Resources"];
    for (name, f) in functions(&t) {
        let events: Vec<&str> = f["Properties"]["Events"]
            .as_mapping()
            .map(|m| m.values().filter_map(|e| e["Type"].as_str()).collect())
            .unwrap_or_default();
        let config = &f["Properties"]["EventInvokeConfig"];
        if events.contains(&"Schedule") {
            assert_eq!(
                config["MaximumRetryAttempts"].as_u64(),
                Some(0),
                "{name}: the next run picks up, a retry overlaps it"
            );
        }
        if events.contains(&"EventBridgeRule") {
            assert!(config["MaximumRetryAttempts"].as_u64().is_some_and(|n| n <= 2), "{name}");
            assert!(config["MaximumEventAgeInSeconds"].as_u64().is_some(), "{name}");
            let on_failure = &config["DestinationConfig"]["OnFailure"];
            assert_eq!(on_failure["Type"].as_str(), Some("SQS"), "{name}");
            let queue = format!("{:?}", on_failure["Destination"]);
            let queue = r
                .as_mapping()
                .unwrap()
                .iter()
                .find(|(k, q)| {
                    q["Type"].as_str() == Some("AWS::SQS::Queue")
                        && queue.contains(&format!("\"{}.Arn\"", k.as_str().unwrap()))
                })
                .map(|(k, _)| k.as_str().unwrap().to_string())
                .unwrap_or_else(|| panic!("{name}: on-failure destination {queue} is no queue of the template"));
            let alarmed = |metric: &str, dimension: &str| {
                r.as_mapping().unwrap().values().any(|a| {
                    a["Type"].as_str() == Some("AWS::CloudWatch::Alarm")
                        && a["Properties"]["MetricName"].as_str() == Some(metric)
                        && format!("{:?}", a["Properties"]["Dimensions"]).contains(dimension)
                })
            };
            assert!(alarmed("ApproximateNumberOfMessagesVisible", &format!("\"{queue}.QueueName\"")), "{queue} depth");
            assert!(alarmed("Errors", &format!("\"{name}\"")), "{name} errors");
            // Only the events this API's handlers understand, from the sources they trust.
            let pattern = &f["Properties"]["Events"]["Trigger"]["Properties"]["Pattern"];
            assert!(format!("{:?}", pattern["source"]).contains("EventSources"), "{name}: {pattern:?}");
        }
    }
    assert_eq!(t["Parameters"]["EventSources"]["Default"].as_str(), Some(livecache_domain::events::SOURCE));
}

#[test]
fn a_real_account_can_keep_its_own_endpoints_and_browsers_can_call_the_api() {
    let t = template();
    let r = &t["Resources"];
    for (endpoint, condition, parameter) in [
        ("DynamoDbEndpoint", "MakeDynamoDbEndpoint", "CreateDynamoDbEndpoint"),
        ("EventsEndpoint", "MakeEventsEndpoint", "CreateEventsEndpoint"),
    ] {
        assert_eq!(r[endpoint]["Condition"].as_str(), Some(condition), "{endpoint}");
        assert!(format!("{:?}", t["Conditions"][condition]).contains(parameter), "{condition}");
        assert_eq!(t["Parameters"][parameter]["Default"].as_str(), Some("true"));
    }
    let cors = &r["HttpApi"]["Properties"]["CorsConfiguration"];
    assert!(format!("{:?}", cors["AllowOrigins"]).contains("CorsAllowOrigin"), "{cors:?}");
    let headers = format!("{:?}", cors["AllowHeaders"]);
    assert!(headers.contains("authorization") && headers.contains("content-type"), "{headers}");
    for method in ["GET", "POST", "PATCH"] {
        assert!(format!("{:?}", cors["AllowMethods"]).contains(method), "{method}");
    }
}

#[test]
fn change_log_consumes_every_cached_tables_stream_and_never_skips_a_change() {
    let t = template();
    let f = &t["Resources"]["ChangeLogFunction"];
    assert_eq!(f["Metadata"]["BuildProperties"]["Binary"].as_str(), Some("change-log"));
    let sources: Vec<&Value> = f["Properties"]["Events"].as_mapping().unwrap().values().collect();
    let mut streams = BTreeSet::new();
    for e in &sources {
        assert_eq!(e["Type"].as_str(), Some("DynamoDB"));
        let p = &e["Properties"];
        streams.insert(format!("{:?}", p["Stream"]));
        // A failed batch is handed back from its first record and delivered again until
        // records expire (6 h), then named in the dead-letter queue; one batch at a time per
        // shard, so a table's changes apply in order.
        assert_eq!(p["FunctionResponseTypes"][0].as_str(), Some("ReportBatchItemFailures"));
        assert_eq!(p["MaximumRetryAttempts"].as_i64(), Some(-1));
        assert_eq!(p["MaximumRecordAgeInSeconds"].as_i64(), Some(21_600));
        assert_eq!(p["ParallelizationFactor"].as_i64(), Some(1));
        assert_eq!(p["BisectBatchOnFunctionError"].as_bool(), Some(true));
        assert_eq!(p["StartingPosition"].as_str(), Some("TRIM_HORIZON"));
        assert!(
            format!("{:?}", p["DestinationConfig"]["OnFailure"]["Destination"]).contains("ChangeLogDeadLetterQueue")
        );
    }
    let cached: BTreeSet<String> =
        livecache_domain::tables::ALL.iter().filter(|d| d.change_log).map(|d| d.resource.to_string()).collect();
    assert_eq!(streams.len(), cached.len(), "one source per cached table: {streams:?}");
    for table in &cached {
        assert!(streams.iter().any(|s| s.contains(table.as_str())), "{table}'s stream is consumed: {streams:?}");
    }
    // It retries within an invocation until 8 s before its deadline (jobs::SAFETY_MARGIN).
    let timeout = f["Properties"]["Timeout"].as_u64().unwrap();
    assert!(timeout > livecache_runtime::jobs::SAFETY_MARGIN.as_secs() + 10, "{timeout}");
    // Falling behind pages: Lambda's IteratorAge for the function.
    let behind = &t["Resources"]["ChangeLogBehindAlarm"]["Properties"];
    assert_eq!(behind["MetricName"].as_str(), Some("IteratorAge"));
    assert!(format!("{:?}", behind["Dimensions"]).contains("ChangeLogFunction"));
}
