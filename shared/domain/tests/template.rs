//! `template.yaml` declares exactly the tables, keys, indexes and TTL attributes the code uses
//! (`livecache_domain::tables`), with a change log on the cached ones, and passes their names in the variables the code reads.

use livecache_domain::tables::{self, TableDef};
use serde_yaml::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("template.yaml at the workspace root")).unwrap()
}

fn key_schema(v: &Value) -> Vec<(String, String)> {
    v.as_sequence()
        .unwrap()
        .iter()
        .map(|k| (k["AttributeName"].as_str().unwrap().to_string(), k["KeyType"].as_str().unwrap().to_string()))
        .collect()
}

fn check(t: &Value, def: &TableDef) {
    let res = &t["Resources"][def.resource];
    assert_eq!(res["Type"].as_str(), Some("AWS::DynamoDB::Table"), "{} is a table", def.resource);
    let p = &res["Properties"];
    assert_eq!(p["BillingMode"].as_str(), Some("PAY_PER_REQUEST"), "{} on demand", def.resource);
    assert_eq!(key_schema(&p["KeySchema"]), vec![(def.hash.to_string(), "HASH".to_string())], "{} key", def.resource);
    let declared: Vec<(String, String)> = p["GlobalSecondaryIndexes"]
        .as_sequence()
        .map(|ixs| {
            ixs.iter()
                .map(|ix| {
                    assert_eq!(ix["Projection"]["ProjectionType"].as_str(), Some("ALL"));
                    let ks = key_schema(&ix["KeySchema"]);
                    (ix["IndexName"].as_str().unwrap().to_string(), format!("{}/{}", ks[0].0, ks[1].0))
                })
                .collect()
        })
        .unwrap_or_default();
    let wanted: Vec<(String, String)> =
        def.indexes.iter().map(|i| (i.name.to_string(), format!("{}/{}", i.hash, i.range))).collect();
    assert_eq!(declared, wanted, "{} indexes", def.resource);
    let mut attrs: Vec<String> = p["AttributeDefinitions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["AttributeType"].as_str(), Some("S"));
            a["AttributeName"].as_str().unwrap().to_string()
        })
        .collect();
    attrs.sort();
    let mut used: Vec<String> =
        std::iter::once(def.hash).chain(def.indexes.iter().flat_map(|i| [i.hash, i.range])).map(String::from).collect();
    used.sort();
    used.dedup();
    assert_eq!(attrs, used, "{} attribute definitions", def.resource);
    assert_eq!(p["TimeToLiveSpecification"]["AttributeName"].as_str(), def.ttl_attribute, "{} TTL", def.resource);
    // A cached table's change log drives invalidation: it needs both images (what changed).
    let stream = p["StreamSpecification"]["StreamViewType"].as_str();
    let wanted = def.change_log.then_some("NEW_AND_OLD_IMAGES");
    assert_eq!(stream, wanted, "{} change log", def.resource);
}

#[test]
fn tables_in_the_template_match_the_code() {
    let t = template();
    for def in tables::ALL {
        check(&t, &def);
    }
    let declared: Vec<&str> = t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::DynamoDB::Table"))
        .map(|(k, _)| k.as_str().unwrap())
        .collect();
    assert_eq!(declared.len(), tables::ALL.len(), "no table the code does not know: {declared:?}");
}

#[test]
fn every_function_gets_the_table_and_bus_variables() {
    let t = template();
    let vars = &t["Globals"]["Function"]["Environment"]["Variables"];
    for def in tables::ALL {
        let v = &vars[def.env];
        let tagged = format!("{v:?}");
        assert!(tagged.contains(def.resource), "{} must be !Ref {}: {tagged}", def.env, def.resource);
    }
    assert!(!vars["EVENT_BUS_NAME"].is_null());
}
