use super::glob_match;

#[test]
fn glob_matches_like_redis() {
    assert!(glob_match("v1:feeds:*", "v1:feeds:discover:1"));
    assert!(glob_match("v1:p?:x", "v1:pa:x"));
    assert!(!glob_match("v1:feeds:*", "v1:products:1"));
    assert!(glob_match("*", ""));
    assert!(glob_match("a*b*c", "aXXbYYc"));
    assert!(!glob_match("a*b*c", "aXXbYY"));
}
