//! `openapi.yaml` describes exactly the routes the API serves, with the admin routes (and only
//! those) under the bearer scheme, and an error answer for every operation.

use std::collections::BTreeSet;

use livecache_http::routes::{Access, ROUTES};
use serde_yaml::Value;

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_routes_served_and_the_routes_described_are_the_same_set() {
    let spec = spec();
    let mut described = BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().unwrap() {
        for (method, _) in item.as_mapping().unwrap() {
            described.insert((method.as_str().unwrap().to_uppercase(), path.as_str().unwrap().to_string()));
        }
    }
    let served: BTreeSet<(String, String)> =
        ROUTES.iter().map(|r| (r.method.to_string(), r.pattern.to_string())).collect();
    assert_eq!(described, served);
}

#[test]
fn admin_routes_and_only_they_require_the_bearer_token_and_every_operation_has_errors() {
    let spec = spec();
    for r in ROUTES {
        let op = &spec["paths"][r.pattern][r.method.as_str().to_lowercase().as_str()];
        let secured = op["security"].as_sequence().is_some_and(|s| !s.is_empty());
        assert_eq!(secured, r.access == Access::Admin, "{} {}", r.method, r.pattern);
        let responses = op["responses"].as_mapping().unwrap();
        assert!(
            responses.keys().any(|k| k.as_str().is_some_and(|s| s.starts_with('4') || s == "503")),
            "{} {} declares its errors",
            r.method,
            r.pattern
        );
        if r.pattern.contains("{id}") {
            assert!(responses.contains_key("404"), "{} {} declares 404", r.method, r.pattern);
        }
    }
}
