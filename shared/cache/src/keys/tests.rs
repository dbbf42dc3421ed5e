use super::*;

#[test]
fn keys_have_version_namespace_and_parts() {
    let ks = Keyspace::new(None, "v1").unwrap().with_slot_groups(1).unwrap();
    assert_eq!(ks.key("products", &["p-1"]).unwrap().as_str(), "v1:products:p-1");
    assert_eq!(ks.epoch_key(0), "v1:_meta:epoch");
    let ks = Keyspace::new(Some("tenant"), "v2").unwrap().with_slot_groups(1).unwrap();
    assert_eq!(ks.key("feeds", &["discover", "1"]).unwrap().as_str(), "tenant:v2:feeds:discover:1");
    // With slot groups (the default), a value key ends in its group's tag.
    let ks = Keyspace::new(Some("tenant"), "v2").unwrap();
    let key = ks.key("feeds", &["discover", "1"]).unwrap();
    assert_eq!(key.as_str(), format!("tenant:v2:feeds:discover:1:{{{}}}", group_tag(key.group(), DEFAULT_SLOT_GROUPS)));
    assert_eq!(
        ks.tagged_key("views", "pending", &["products"]).unwrap().as_str(),
        "tenant:v2:{views}:pending:products"
    );
}

#[test]
fn a_key_and_the_stamps_it_is_judged_by_share_one_slot_and_groups_spread_over_the_slots() {
    use crate::slot::slot;
    assert_eq!(Keyspace::new(None, "v1").unwrap().slot_groups(), DEFAULT_SLOT_GROUPS);
    let ks = Keyspace::new(Some("t"), "v1").unwrap().with_slot_groups(64).unwrap();
    let mut per_group = vec![0usize; 64];
    for i in 0..6400 {
        let key = ks.key("products", &[&format!("prod-{i:05}")]).unwrap();
        let g = key.group();
        per_group[g as usize] += 1;
        let at = slot(key.as_str().as_bytes());
        assert_eq!(slot(ks.epoch_key(g).as_bytes()), at, "{key}");
        assert_eq!(slot(ks.generation_key("products", g).as_bytes()), at, "{key}");
        assert_eq!(ks.group_of(key.as_str()), g);
    }
    assert!(per_group.iter().all(|n| (50..=150).contains(n)), "keys spread over the groups: {per_group:?}");
    // Group i's slot lies in the i-th 64th of the slot space: a third of the groups on each
    // of three masters (0-5460, 5461-10922, 10923-16383).
    let thirds = (0..64u16).fold([0; 3], |mut n, g| {
        n[(slot(ks.epoch_key(g).as_bytes()) as usize * 3) / 16384] += 1;
        n
    });
    assert!(thirds.iter().all(|n| (21..=22).contains(n)), "{thirds:?}");
    // An entity's namespace is in one group: invalidating it moves one generation.
    let card = ks.key("user.u1", &["card", "u1"]).unwrap();
    let me = ks.key("user.u1", &["me", "u1"]).unwrap();
    assert_eq!(card.group(), me.group());
    assert_eq!(ks.groups_of("user.u1"), vec![card.group()]);
    assert_eq!(ks.groups_of("products").len(), 64);
    // Patterns match grouped keys.
    let pattern = ks.pattern("products", Some("prod-0000*")).unwrap();
    let key = ks.key("products", &["prod-00001"]).unwrap();
    assert!(crate::kv::memory::glob_match(&pattern, key.as_str()), "{pattern} {key}");
}

#[test]
fn the_sweep_reads_key_layouts_here() {
    let ks = Keyspace::new(Some("t"), "v2").unwrap();
    assert_eq!(ks.sweep_pattern(), "t:v*:*");
    assert_eq!(ks.classify("t:v1:products:p1"), KeyKind::OtherVersion);
    assert_eq!(ks.classify("t:v2:products:p1"), KeyKind::InNamespace("products"));
    assert_eq!(ks.classify("t:v2:_meta:gen:products"), KeyKind::Bookkeeping);
    assert_eq!(ks.classify("t:v2:{views}:views:pending:products"), KeyKind::Bookkeeping);
    assert_eq!(ks.classify("t:vx:products:p1"), KeyKind::Foreign);
    assert_eq!(ks.classify("other:v2:products:p1"), KeyKind::Foreign);
    let plain = Keyspace::new(None, "release").unwrap();
    assert_eq!(plain.sweep_pattern(), "release:*");
    assert_eq!(plain.classify("release:feeds:1"), KeyKind::InNamespace("feeds"));
}

#[test]
fn glob_characters_whitespace_and_separators_are_refused() {
    let ks = Keyspace::new(None, "v1").unwrap();
    for bad in ["*", "a?", "a[b]", "a b", "a\tb", "", "a:b", "{x}", "é", &"x".repeat(129)] {
        assert!(ks.key("products", &[bad]).is_err(), "{bad:?} accepted");
    }
    assert!(ks.key("bad ns", &["1"]).is_err());
    assert!(ks.pattern("products", Some("p-*")).is_ok());
    assert!(ks.pattern("products", Some("[a-z]*")).is_err());
}

#[test]
fn filter_hash_ignores_order_and_absent_values() {
    let a = filter_hash([("category", Some("shoes")), ("sort", Some("newest")), ("min", None::<&str>)]);
    let b = filter_hash([("sort", Some("newest")), ("category", Some("shoes"))]);
    let c = filter_hash([("sort", Some("newest")), ("category", Some("hats"))]);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.len(), 16);
    // Values that differ only in where a separator falls do not collide.
    assert_ne!(filter_hash([("a", Some("b&c=d"))]), filter_hash([("a", Some("b")), ("c", Some("d"))]));
    // Stable across builds and releases: FNV-1a 64 of `8=category&5=shoes&4=sort&6=newest&`.
    assert_eq!(a, "3268b9d05cc64a9e");
}

#[test]
fn coordinates_round_to_two_decimals() {
    assert_eq!(round_coord(52.520_008), "52.52");
    assert_eq!(round_coord(13.404_954), "13.40");
    assert_eq!(round_coord(-0.001), "0.00");
    assert_eq!(round_coord(-73.985_7), "-73.99");
}
