//! Every alarm and dashboard widget in `template.yaml` reads a metric the code emits, and every
//! metric the code emits is on the dashboard. CloudWatch never says that a metric does not
//! exist: a metric is its namespace, its name and its exact set of dimensions, and an alarm on
//! any other combination simply never fires. The EMF lines are the ones the functions print
//! (the cache counters after each invocation, a job's outcome after each run).

use std::collections::BTreeSet;
use std::path::Path;

use livecache_runtime::telemetry::{job_line, Metrics};
use serde_json::Value as Json;
use serde_yaml::Value;

/// (namespace, name, dimension names sorted).
type MetricId = (String, String, Vec<String>);

fn template() -> Value {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    serde_yaml::from_str(&std::fs::read_to_string(root.join("template.yaml")).unwrap()).unwrap()
}

/// What the EMF lines declare: each metric under each of its dimension sets.
fn emitted() -> BTreeSet<MetricId> {
    let lines = [
        Metrics::default().line("feeds", &Default::default(), 1).expect("a line"),
        job_line("view-sync", true, 12, Some(1.5)),
        Metrics::default()
            .verify_line(livecache_domain::services::VerifyCounts { consistent: 3, inconsistent: 1, settled: 1 })
            .expect("a line"),
    ];
    let mut out = BTreeSet::new();
    for line in lines {
        for directive in line["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            let ns = directive["Namespace"].as_str().unwrap();
            for set in directive["Dimensions"].as_array().unwrap() {
                let mut dims: Vec<String> =
                    set.as_array().unwrap().iter().map(|d| d.as_str().unwrap().into()).collect();
                dims.sort();
                for metric in directive["Metrics"].as_array().unwrap() {
                    let name = metric["Name"].as_str().unwrap();
                    assert!(line.get(name).is_some(), "{name} declared without a value");
                    for d in &dims {
                        assert!(line.get(d).is_some(), "dimension {d} declared without a value");
                    }
                    out.insert((ns.into(), name.into(), dims.clone()));
                }
            }
        }
    }
    out
}

fn yaml_metric(m: &Value) -> MetricId {
    let mut dims: Vec<String> = m["Dimensions"]
        .as_sequence()
        .map(|d| d.iter().map(|x| x["Name"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    dims.sort();
    (m["Namespace"].as_str().unwrap().into(), m["MetricName"].as_str().unwrap().into(), dims)
}

/// The metrics each alarm reads, by alarm.
fn alarm_metrics(t: &Value) -> Vec<(String, MetricId)> {
    let mut out = Vec::new();
    for (id, r) in t["Resources"].as_mapping().unwrap() {
        if r["Type"].as_str() != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        let id = id.as_str().unwrap().to_string();
        let p = &r["Properties"];
        if p["MetricName"].is_string() {
            out.push((id.clone(), yaml_metric(p)));
        }
        for m in p["Metrics"].as_sequence().into_iter().flatten() {
            if !m["MetricStat"].is_null() {
                out.push((id.clone(), yaml_metric(&m["MetricStat"]["Metric"])));
            }
        }
    }
    out
}

/// The metrics each dashboard widget shows, by widget title (expressions skipped).
fn dashboard_metrics(t: &Value) -> Vec<(String, MetricId)> {
    let body = &t["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"];
    let text = match body {
        Value::Tagged(tagged) => tagged.value.as_str().unwrap().to_string(),
        other => other.as_str().unwrap().to_string(),
    };
    // ${...} substitutions are values (ids, the region), never metric or dimension names.
    let mut plain = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("${") {
        plain.push_str(&rest[..at]);
        rest = &rest[at + rest[at..].find('}').unwrap() + 1..];
        plain.push('x');
    }
    plain.push_str(rest);
    let body: Json = serde_json::from_str(&plain).unwrap();
    let mut out = Vec::new();
    for widget in body["widgets"].as_array().unwrap() {
        let title = widget["properties"]["title"].as_str().unwrap_or_default().to_string();
        for row in widget["properties"]["metrics"].as_array().into_iter().flatten() {
            let parts: Vec<&str> = row.as_array().unwrap().iter().filter_map(Json::as_str).collect();
            if parts.len() < 2 {
                continue; // an expression
            }
            assert!(parts.len() % 2 == 0, "{title}: {row}: dimensions come in name/value pairs");
            let mut dims: Vec<String> = parts[2..].chunks(2).map(|c| c[0].to_string()).collect();
            dims.sort();
            out.push((title.clone(), (parts[0].into(), parts[1].into(), dims)));
        }
    }
    out
}

#[test]
fn every_alarm_and_widget_reads_a_metric_the_code_emits() {
    let t = template();
    let emitted = emitted();
    let mut missing = Vec::new();
    for (source, metric) in alarm_metrics(&t).into_iter().chain(dashboard_metrics(&t)) {
        if metric.0 == "livecache" && !emitted.contains(&metric) {
            missing.push(format!("{source}: {metric:?}"));
        }
    }
    assert!(missing.is_empty(), "read but never emitted (emitted: {emitted:#?}):\n{}", missing.join("\n"));
}

#[test]
fn every_metric_the_code_emits_is_on_the_dashboard() {
    let shown: BTreeSet<String> = dashboard_metrics(&template()).into_iter().map(|(_, m)| m.1).collect();
    let absent: BTreeSet<String> = emitted().into_iter().map(|m| m.1).filter(|name| !shown.contains(name)).collect();
    assert!(absent.is_empty(), "emitted but on no widget: {absent:?}");
}

#[test]
fn the_cache_alarms_read_the_fleet_wide_metrics() {
    let alarms = alarm_metrics(&template());
    for alarm in ["CacheErrorRateAlarm", "CacheBreakerAlarm"] {
        let read: Vec<&MetricId> = alarms.iter().filter(|(a, _)| a == alarm).map(|(_, m)| m).collect();
        assert!(!read.is_empty(), "{alarm} reads no metric");
        assert!(read.iter().all(|m| m.0 == "livecache" && m.2.is_empty()), "{alarm}: {read:?}");
    }
}
