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

/// How many slot groups a keyspace spreads its values over unless told otherwise
/// ([`Keyspace::with_slot_groups`]).
pub const DEFAULT_SLOT_GROUPS: u16 = 256;

/// A fully built cache key, the namespace it belongs to and its slot group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    ns: String,
    full: String,
    group: u16,
}

impl Key {
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// Its slot group: the key, its group's copy of the epoch and of its namespace's
    /// generation share one cluster slot, so a read of all three is one command on one node.
    pub fn group(&self) -> u16 {
        self.group
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

/// Builds keys for one deployment: an optional prefix (tenancy, tests), the key version, and
/// the slot groups.
///
/// **Slot groups.** A value key ends in the hash tag of one of G groups (`…:{g17-3}`), and
/// each group keeps its own copy of the epoch and of every namespace's generation under the
/// same tag: reading a key with the stamps it is judged by is one command on one slot — on a
/// cluster as on one node — and no key is read by every request of the fleet. A key's group
/// is a hash of the key (spreading a namespace over every group), or, for an entity's
/// namespace (a name with a `.`, e.g. `user.{id}`: a few keys, invalidated together), of the
/// namespace alone, so that invalidating it moves one generation. Group `i`'s tag is chosen so
/// that its slot falls in the `i`-th G-th of the slot space: a cluster's masters own contiguous
/// slot ranges, so the groups spread evenly over them. One group means no tags: the layout
/// before groups.
#[derive(Debug, Clone)]
pub struct Keyspace {
    root: String,
    /// The configured version (`v1`): the name a version has until one is given.
    version: String,
    /// Each group's hash tag; empty with one group.
    tags: std::sync::Arc<[String]>,
    /// Each group's copy of the epoch key. Built once: read on every lookup.
    epochs: std::sync::Arc<[String]>,
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
        let mut keys = Self { root, version: version.to_string(), tags: Vec::new().into(), epochs: Vec::new().into() };
        keys.set_groups(DEFAULT_SLOT_GROUPS);
        Ok(keys)
    }

    /// With `groups` slot groups (1 to 1024; 1: no tags).
    pub fn with_slot_groups(mut self, groups: u16) -> Result<Self> {
        if !(1..=1024).contains(&groups) {
            return Err(CacheError::InvalidKey { part: groups.to_string(), reason: "slot groups are 1 to 1024" });
        }
        self.set_groups(groups);
        Ok(self)
    }

    fn set_groups(&mut self, groups: u16) {
        self.tags = if groups == 1 { Vec::new() } else { (0..groups).map(|g| group_tag(g, groups)).collect() }.into();
        self.epochs = (0..groups).map(|g| format!("{}:{META_NS}:epoch{}", self.root, self.suffix(g))).collect();
    }

    /// How many slot groups values are spread over.
    pub fn slot_groups(&self) -> u16 {
        self.epochs.len() as u16
    }

    /// `:{tag}` of group `g` (nothing with one group).
    fn suffix(&self, g: u16) -> String {
        self.tags.get(g as usize).map(|t| format!(":{{{t}}}")).unwrap_or_default()
    }

    /// The group of a key of `ns` with `parts`.
    fn group_for(&self, ns: &str, parts: &[&str]) -> u16 {
        let groups = self.slot_groups();
        if groups == 1 {
            return 0;
        }
        let mut h = Fnv(FNV_OFFSET);
        let _ = h.write_str(ns);
        if !is_entity(ns) {
            for p in parts {
                let _ = write!(h, ":{p}");
            }
        }
        (h.0 % groups as u64) as u16
    }

    /// The groups that hold keys of `ns`: its one group for an entity's namespace, else all.
    pub fn groups_of(&self, ns: &str) -> Vec<u16> {
        if is_entity(ns) && self.slot_groups() > 1 {
            vec![self.group_for(ns, &[])]
        } else {
            (0..self.slot_groups()).collect()
        }
    }

    /// The group of a key found by a scan (its tag's), 0 when it has none.
    pub fn group_of(&self, key: &str) -> u16 {
        key.rsplit_once(":{")
            .and_then(|(_, tag)| tag.strip_prefix('g')?.split('-').next()?.parse::<u16>().ok())
            .filter(|g| *g < self.slot_groups())
            .unwrap_or(0)
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
        let group = self.group_for(ns, parts);
        if let Some(tag) = self.tags.get(group as usize) {
            full.push_str(":{");
            full.push_str(tag);
            full.push('}');
        }
        Ok(Key { ns: ns.to_string(), full, group })
    }

    /// A key whose cluster hash slot is fixed by `{tag}`, for keys that must travel together
    /// (RENAME, multi-key scripts): `{root}:{tag}:{ns}:{parts…}`.
    pub fn tagged_key(&self, tag: &str, ns: &str, parts: &[&str]) -> Result<Key> {
        validate_part(tag)?;
        validate_part(ns)?;
        let mut full = format!("{}:{{{tag}}}:{ns}", self.root);
        for p in parts {
            validate_part(p)?;
            full.push(':');
            full.push_str(p);
        }
        Ok(Key { ns: ns.to_string(), full, group: 0 })
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
        let groups = if self.tags.is_empty() { "" } else { ":{*}" };
        Ok(format!("{}:{ns}:{tail}{groups}", self.root))
    }

    /// The glob of every key of this keyspace.
    pub fn all_pattern(&self) -> String {
        format!("{}:*", self.root)
    }

    /// Key of group `group`'s copy of a namespace's generation counter.
    pub fn generation_key(&self, ns: &str, group: u16) -> String {
        format!("{}:{META_NS}:gen:{ns}{}", self.root, self.suffix(group))
    }

    /// Key of the keyspace's version name (set by [`Cache::name_version`](crate::Cache::name_version)).
    pub fn version_name_key(&self) -> String {
        format!("{}:{META_NS}:version_name", self.root)
    }

    /// Key of group `group`'s copy of the keyspace-wide epoch (every copy is bumped to
    /// invalidate everything).
    pub fn epoch_key(&self, group: u16) -> &str {
        &self.epochs[group as usize % self.epochs.len()]
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
    let mut h = Fnv(FNV_OFFSET);
    for (k, v) in &pairs {
        let v = v.as_ref();
        let _ = write!(h, "{}={}&{}={}&", k.len(), k, v.len(), v);
    }
    format!("{:016x}", h.0)
}

/// Whether `ns` is one entity's namespace (`user.{id}`): its keys share one slot group.
fn is_entity(ns: &str) -> bool {
    ns.contains('.')
}

/// The hash tag of group `g` of `groups`.
fn group_tag(g: u16, groups: u16) -> String {
    spread_tag("g", g, groups)
}

/// A hash tag for part `i` of `n` (slot groups, counter shards): `{prefix}{i}-{k}` with the
/// first `k` whose cluster slot lies in the `i`-th `n`-th of the slot space, so that `n` parts
/// spread evenly over a cluster's masters (each owns a contiguous range of slots).
pub fn spread_tag(prefix: &str, i: u16, n: u16) -> String {
    let n = n.max(1) as u32;
    let (lo, hi) = (i as u32 * 16384 / n, (i as u32 + 1) * 16384 / n);
    (0u32..)
        .map(|k| format!("{prefix}{i}-{k}"))
        .find(|tag| (lo..hi).contains(&(crate::slot::slot(tag.as_bytes()) as u32)))
        .expect("every range of slots is hit by some tag")
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

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

/// A stable 64-bit hash of `text` (FNV-1a, the same in every process and release): what
/// sharded state picks its shard by.
pub fn stable_hash(text: &str) -> u64 {
    let mut h = Fnv(FNV_OFFSET);
    let _ = std::fmt::Write::write_str(&mut h, text);
    h.0
}

/// A coordinate rounded to 2 decimals as a key part (`-0.00` becomes `0.00`).
pub fn round_coord(x: f64) -> String {
    let r = (x * 100.0).round() / 100.0;
    let r = if r == 0.0 { 0.0 } else { r };
    format!("{r:.2}")
}

#[cfg(test)]
mod tests;
