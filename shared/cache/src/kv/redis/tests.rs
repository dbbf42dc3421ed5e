use super::*;

#[test]
fn info_is_summed_over_nodes() {
    use super::store::parse_info;
    let mut info = ServerInfo::default();
    let text =
        "# Server\r\nredis_version:7.0.15\r\nused_memory:100\r\nkeyspace_hits:3\r\ndb0:keys=5,expires=1,avg_ttl=0\r\n";
    parse_info(text, &mut info);
    parse_info(text, &mut info);
    assert_eq!(info.version, "7.0.15");
    assert_eq!(info.used_memory, 200);
    assert_eq!(info.keys, 10);
    assert_eq!(info.keyspace_hits, 6);
}
