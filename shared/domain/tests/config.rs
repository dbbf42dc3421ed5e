//! Configuration from the environment: names the variable when it is wrong. (Tests that set
//! variables run in their own process: this file is its own test binary, and its tests run
//! one at a time under a lock.)

use std::sync::Mutex;

use livecache_domain::{DataBackend, DataConfig, TableNames};

static ENV: Mutex<()> = Mutex::new(());

fn with_env<T>(vars: &[(&str, Option<&str>)], f: impl FnOnce() -> T) -> T {
    let _guard = ENV.lock().unwrap_or_else(|p| p.into_inner());
    let saved: Vec<(String, Option<String>)> =
        vars.iter().map(|(k, _)| (k.to_string(), std::env::var(k).ok())).collect();
    for (k, v) in vars {
        match v {
            // The lock serialises every change to the environment in this test binary.
            Some(v) => std::env::set_var(k, v),
            None => std::env::remove_var(k),
        }
    }
    let out = f();
    for (k, v) in saved {
        match v {
            Some(v) => std::env::set_var(&k, v),
            None => std::env::remove_var(&k),
        }
    }
    out
}

const CLEAR: [(&str, Option<&str>); 5] = [
    ("DATA_BACKEND", None),
    ("AWS_LAMBDA_FUNCTION_NAME", None),
    ("AWS_ENDPOINT_URL", None),
    ("AWS_ENDPOINT_URL_DYNAMODB", None),
    ("PRODUCTS_TABLE", None),
];

#[test]
fn defaults_to_memory_locally_and_dynamodb_on_lambda() {
    let cfg = with_env(&CLEAR, || DataConfig::from_env().unwrap());
    assert_eq!(cfg.backend, DataBackend::Memory);
    assert_eq!(cfg.tables, TableNames::defaults());
    let mut vars = CLEAR.to_vec();
    vars[1] = ("AWS_LAMBDA_FUNCTION_NAME", Some("feeds"));
    vars[4] = ("PRODUCTS_TABLE", Some("stack-ProductsTable-1ABC"));
    let cfg = with_env(&vars, || DataConfig::from_env().unwrap());
    assert_eq!(cfg.backend, DataBackend::DynamoDb);
    assert_eq!(cfg.tables.products, "stack-ProductsTable-1ABC");
}

#[test]
fn bad_values_name_their_variable() {
    let mut vars = CLEAR.to_vec();
    vars[4] = ("PRODUCTS_TABLE", Some("bad name!"));
    let err = with_env(&vars, || DataConfig::from_env().unwrap_err());
    assert!(err.to_string().contains("PRODUCTS_TABLE"), "{err}");
    let mut vars = CLEAR.to_vec();
    vars[0] = ("DATA_BACKEND", Some("postgres"));
    let err = with_env(&vars, || DataConfig::from_env().unwrap_err());
    assert!(err.to_string().contains("DATA_BACKEND"), "{err}");
}
