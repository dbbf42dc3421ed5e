//! `openapi.yaml` describes exactly the routes the API serves, each under the security scheme
//! it has (signed-in routes: bearer JWT; admin routes: the admin token; reads: none), with
//! error answers; and the template's authorizers agree with the spec.

use std::collections::BTreeSet;

use livecache_http::{Access, ROUTES};
use serde_yaml::Value;

/// The security scheme an operation declares, if any.
fn scheme_of(op: &Value) -> Option<&str> {
    op["security"].as_sequence()?.first()?.as_mapping()?.keys().next()?.as_str()
}

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
fn each_route_declares_its_security_scheme_and_its_errors() {
    let spec = spec();
    for r in ROUTES {
        let op = &spec["paths"][r.pattern][r.method.as_str().to_lowercase().as_str()];
        let scheme = scheme_of(op);
        let wanted = match r.access {
            Access::Public => None,
            Access::User => Some("bearerJwt"),
            Access::Admin => Some("adminToken"),
        };
        assert_eq!(scheme, wanted, "{} {}", r.method, r.pattern);
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

#[test]
fn the_template_and_the_spec_agree_on_who_may_call_what() {
    let spec = spec();
    let template: Value = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for (_, res) in template["Resources"].as_mapping().unwrap() {
        let Some(events) = res["Properties"]["Events"].as_mapping() else { continue };
        for (_, e) in events {
            if e["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let p = &e["Properties"];
            let authorizer = p["Auth"]["Authorizer"].as_str();
            let op = &spec["paths"][p["Path"].as_str().unwrap()][p["Method"].as_str().unwrap().to_lowercase().as_str()];
            let scheme = scheme_of(op);
            let expected = match authorizer {
                None => None,
                Some("JwtAuthorizer") => Some("bearerJwt"),
                Some("AWS_IAM") => Some("adminToken"),
                Some(other) => panic!("unknown authorizer {other}"),
            };
            assert_eq!(scheme, expected, "{:?} {:?}", p["Method"], p["Path"]);
            checked += 1;
        }
    }
    assert_eq!(checked, ROUTES.len());
}
