//! Every key the cache writes is built here: `[{prefix}:]{version}:{namespace}:{part}:…`.
//!
//! Caller-supplied parts are validated so that glob characters (`*`, `?`, `[`), hash-tag braces,
//! the `:` separator or whitespace never reach a key or a pattern. Filter sets hash stably (the
//! same filters in any order give the same key), and coordinates round to 2 decimals (~1 km) so
//! that neighbours share location keys.

use std::fmt::Write;

use crate::error::{CacheError, Result};

/// Longest caller-supplied key part accepted.
pub const MAX_PART_LEN: usize = 128;

/// The namespace of the engine's own bookkeeping keys (generations, stats, locks).
pub(crate) const META_NS: &str = "_meta";

/// How many hashes the statistics aggregate is spread over.
pub const STATS_SHARDS: u32 = 4;

/// A fully built cache key and the namespace it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    ns: String,
    full: String,
}

impl Key {
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.full)
    }
}

/// Builds keys for one deployment: an optional prefix (tenancy, tests) and the key version.
#[derive(Debug, Clone)]
pub struct Keyspace {
    root: String,
    /// The configured version (`v1`): the name a version has until one is given.
    version: String,
    /// Built once: read on every lookup.
    epoch: String,
}

impl Keyspace {
    /// `version` is the schema version of cached values (e.g. `v1`): changing it at deploy time
    /// makes every older key unreachable.
    pub fn new(prefix: Option<&str>, version: &str) -> Result<Self> {
        validate_part(version)?;
        let root = match prefix {
            Some(p) if !p.is_empty() => {
                validate_part(p)?;
                format!("{p}:{version}")
            }
            _ => version.to_string(),
        };
        let epoch = format!("{root}:{META_NS}:epoch");
        Ok(Self { root, version: version.to_string(), epoch })
    }

    /// The configured version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The part every key of this keyspace starts with (`[{prefix}:]{version}`).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// `{root}:{ns}:{parts…}`; every part is validated.
    pub fn key(&self, ns: &str, parts: &[&str]) -> Result<Key> {
        validate_part(ns)?;
        let mut full =
            String::with_capacity(self.root.len() + ns.len() + 2 + parts.iter().map(|p| p.len() + 1).sum::<usize>());
        full.push_str(&self.root);
        full.push(':');
        full.push_str(ns);
        for p in parts {
            validate_part(p)?;
            full.push(':');
            full.push_str(p);
        }
        Ok(Key { ns: ns.to_string(), full })
    }

    /// A key whose cluster hash slot is fixed by `{tag}`, for keys that must travel together
    /// (RENAME, multi-key scripts): `{root}:{tag}:{ns}:{parts…}`.
    pub fn tagged_key(&self, tag: &str, ns: &str, parts: &[&str]) -> Result<Key> {
        validate_part(tag)?;
        let inner = self.key(ns, parts)?;
        let rest = &inner.full[self.root.len()..];
        Ok(Key { ns: inner.ns, full: format!("{}:{{{tag}}}{rest}", self.root) })
    }

    /// The glob matching every key of a namespace, optionally narrowed by an admin pattern
    /// that may use `*` and `?` but not `[`, braces or whitespace.
    pub fn pattern(&self, ns: &str, tail: Option<&str>) -> Result<String> {
        validate_part(ns)?;
        let tail = tail.unwrap_or("*");
        if tail.is_empty()
            || tail.len() > 256
            || !tail.bytes().all(|b| b.is_ascii_alphanumeric() || b":-_.@+=*?".contains(&b))
        {
            return Err(CacheError::InvalidKey {
                part: tail.to_string(),
                reason: "patterns may use letters, digits, `:-_.@+=`, `*` and `?` only",
            });
        }
        Ok(format!("{}:{ns}:{tail}", self.root))
    }

    /// The glob of every key of this keyspace.
    pub fn all_pattern(&self) -> String {
        format!("{}:*", self.root)
    }

    /// Key of a namespace's generation counter.
    pub fn generation_key(&self, ns: &str) -> String {
        format!("{}:{META_NS}:gen:{ns}", self.root)
    }

    /// Key of the keyspace's version name (set by [`Cache::name_version`](crate::Cache::name_version)).
    pub fn version_name_key(&self) -> String {
        format!("{}:{META_NS}:version_name", self.root)
    }

    /// Key of the keyspace-wide epoch (bumped to invalidate everything).
    pub fn epoch_key(&self) -> String {
        self.epoch.clone()
    }

    /// Key of shard `shard` of the statistics aggregate: each instance adds to one of
    /// [`STATS_SHARDS`] hashes (on different slots), so that no key takes every instance's
    /// writes; the stats endpoint reads them all.
    pub fn stats_key(&self, shard: u32) -> String {
        format!("{}:{META_NS}:stats:packed{}", self.root, shard % STATS_SHARDS)
    }
}

/// What a key found by a scan is, as far as the sweep is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind<'a> {
    /// Under the same prefix, another key version (`v<n>`): unreachable.
    OtherVersion,
    /// Not of this keyspace (another prefix, or a version not of the `v<n>` form).
    Foreign,
    /// The engine's bookkeeping (`_meta`) or a hash-tagged key (`{tag}`): state, kept.
    Bookkeeping,
    /// A key of namespace `ns` of this keyspace.
    InNamespace(&'a str),
}

impl Keyspace {
    /// The glob one SCAN uses to find every key the sweep judges: every `v<n>` version under
    /// the prefix, or only this keyspace when its version is not of that form.
    pub fn sweep_pattern(&self) -> String {
        let (prefix, version) = self.prefix_and_version();
        if version.starts_with('v') {
            format!("{prefix}v*:*")
        } else {
            format!("{}:*", self.root)
        }
    }

    /// Reads a key's layout (`[{prefix}:]{version}:{namespace}:…`): the one place that parses it.
    pub fn classify<'k>(&self, key: &'k str) -> KeyKind<'k> {
        let (prefix, version) = self.prefix_and_version();
        let Some(rest) = key.strip_prefix(prefix.as_str()) else {
            return KeyKind::Foreign;
        };
        let key_version = rest.split(':').next().unwrap_or_default();
        let is_version = key_version.len() > 1
            && key_version.starts_with('v')
            && key_version[1..].bytes().all(|b| b.is_ascii_digit());
        if key_version != version {
            return if is_version { KeyKind::OtherVersion } else { KeyKind::Foreign };
        }
        let after_root = &rest[key_version.len()..].trim_start_matches(':');
        let ns = after_root.split(':').next().unwrap_or_default();
        if ns == META_NS || after_root.starts_with('{') {
            KeyKind::Bookkeeping
        } else {
            KeyKind::InNamespace(ns)
        }
    }

    fn prefix_and_version(&self) -> (String, &str) {
        match self.root.rsplit_once(':') {
            Some((p, v)) => (format!("{p}:"), v),
            None => (String::new(), self.root.as_str()),
        }
    }
}

/// Accepts ASCII letters, digits and `-_.@+=`, 1 to [`MAX_PART_LEN`] characters.
pub(crate) fn validate_part(part: &str) -> Result<()> {
    let reason = if part.is_empty() {
        Some("must not be empty")
    } else if part.len() > MAX_PART_LEN {
        Some("is longer than 128 characters")
    } else if !part.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b'+' | b'=')) {
        Some("may contain only letters, digits and -_.@+=")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(CacheError::InvalidKey { part: part.chars().take(MAX_PART_LEN).collect(), reason }),
    }
}

/// A short stable hash of a filter set: pairs are sorted by name, absent values skipped, so the
/// same filters in any order give the same key part. (FNV-1a 64, which is stable across builds
/// and platforms, unlike `std`'s hasher.)
pub fn filter_hash<'a, I, V>(filters: I) -> String
where
    I: IntoIterator<Item = (&'a str, Option<V>)>,
    V: AsRef<str>,
{
    let mut pairs: Vec<(&str, V)> = filters.into_iter().filter_map(|(k, v)| Some((k, v?))).collect();
    pairs.sort_by(|a, b| (a.0, a.1.as_ref()).cmp(&(b.0, b.1.as_ref())));
    // The canonical form `{len}={name}&{len}={value}&…` is hashed as it is written (every
    // feed request builds two such keys: nothing is allocated for it).
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    for (k, v) in &pairs {
        let v = v.as_ref();
        let _ = write!(h, "{}={}&{}={}&", k.len(), k, v.len(), v);
    }
    format!("{:016x}", h.0)
}

/// FNV-1a 64 over whatever is written into it.
struct Fnv(u64);

impl std::fmt::Write for Fnv {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for b in s.bytes() {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(())
    }
}

/// A coordinate rounded to 2 decimals as a key part (`-0.00` becomes `0.00`).
pub fn round_coord(x: f64) -> String {
    let r = (x * 100.0).round() / 100.0;
    let r = if r == 0.0 { 0.0 } else { r };
    format!("{r:.2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_version_namespace_and_parts() {
        let ks = Keyspace::new(None, "v1").unwrap();
        assert_eq!(ks.key("products", &["p-1"]).unwrap().as_str(), "v1:products:p-1");
        let ks = Keyspace::new(Some("tenant"), "v2").unwrap();
        assert_eq!(ks.key("feeds", &["discover", "1"]).unwrap().as_str(), "tenant:v2:feeds:discover:1");
        assert_eq!(
            ks.tagged_key("views", "pending", &["products"]).unwrap().as_str(),
            "tenant:v2:{views}:pending:products"
        );
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
}
