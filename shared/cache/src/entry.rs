//! The stored form of a cached value: a fixed header, then the codec body.
//!
//! ```text
//! "LC" | layout 2 | codec tag | nonce u64 | lease_until u64
//!      | epoch u64 | generation u64 | fresh_until u64 | stale_until u64 | keep_until u64 | body
//! ```
//! Times are clock milliseconds (big-endian). `epoch` and `generation` are the keyspace epoch
//! and namespace generation the value was written under: when either has moved on, the value
//! is invalidated. Anything that does not parse is a miss.
//!
//! `nonce` is random per write, so the header names one write of the key: a fill is a
//! compare-and-swap against the header its loader saw, and any delete in between (a key or a
//! pattern invalidation) makes it fail. `lease_until` > 0 marks a lease: a loader is filling the
//! key until then (the cross-instance lock lives in the key itself). A lease on a key that had
//! no usable value is a header with no value (`keep_until` = 0, empty body).

use crate::error::CodecError;

const MAGIC: &[u8; 2] = b"LC";
const LAYOUT: u8 = 2;
pub const HEADER_LEN: usize = 4 + 8 * 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub epoch: u64,
    pub generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// Until then the value is fresh.
    pub fresh_until: u64,
    /// Until then it may be served stale while a refresh runs.
    pub stale_until: u64,
    /// Until then it may stand in when the loader fails (fail-safe).
    pub keep_until: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Serve and refresh.
    Stale,
    /// Only if the loader fails.
    FailSafe,
    Expired,
}

impl Times {
    pub fn at(&self, now: u64) -> Freshness {
        if now < self.fresh_until {
            Freshness::Fresh
        } else if now < self.stale_until {
            Freshness::Stale
        } else if now < self.keep_until {
            Freshness::FailSafe
        } else {
            Freshness::Expired
        }
    }
}

#[derive(Debug)]
pub struct Entry<'a> {
    pub nonce: u64,
    /// Clock milliseconds until which a loader holds a lease on the key; 0: none.
    pub lease_until: u64,
    pub stamp: Stamp,
    pub times: Times,
    pub tag: u8,
    pub body: &'a [u8],
}

impl Entry<'_> {
    /// Whether a lease other than an expired one is on the key at `now`.
    pub fn leased_at(&self, now: u64) -> bool {
        self.lease_until > now
    }

    /// The same value under a new write: a fresh nonce and the given lease (0: none).
    pub fn rewrite(&self, lease_until: u64) -> Vec<u8> {
        encode(rand::random(), lease_until, self.stamp, self.times, self.tag, self.body)
    }
}

/// A value written now: a fresh nonce, no lease.
pub fn write(stamp: Stamp, times: Times, tag: u8, body: &[u8]) -> Vec<u8> {
    encode(rand::random(), 0, stamp, times, tag, body)
}

/// A lease on a key that has no usable value: a header with no value, leased until `until`.
pub fn lease_only(stamp: Stamp, until: u64) -> Vec<u8> {
    encode(rand::random(), until, stamp, Times { fresh_until: 0, stale_until: 0, keep_until: 0 }, 0, &[])
}

/// The bytes a compare-and-swap compares: the header (which holds the write's nonce), or the
/// whole value when it is shorter.
pub fn prefix(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(HEADER_LEN)]
}

fn encode(nonce: u64, lease_until: u64, stamp: Stamp, times: Times, tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.push(LAYOUT);
    out.push(tag);
    for n in [nonce, lease_until, stamp.epoch, stamp.generation, times.fresh_until, times.stale_until, times.keep_until]
    {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

pub fn read(bytes: &[u8]) -> Result<Entry<'_>, CodecError> {
    if bytes.len() < HEADER_LEN {
        return Err(CodecError::Truncated);
    }
    if &bytes[..2] != MAGIC || bytes[2] != LAYOUT {
        return Err(CodecError::UnknownFormat(bytes[2]));
    }
    let n = |i: usize| {
        let start = 4 + 8 * i;
        let mut buf = [0u8; 8];
        buf.copy_from_slice(&bytes[start..start + 8]);
        u64::from_be_bytes(buf)
    };
    Ok(Entry {
        nonce: n(0),
        lease_until: n(1),
        stamp: Stamp { epoch: n(2), generation: n(3) },
        times: Times { fresh_until: n(4), stale_until: n(5), keep_until: n(6) },
        tag: bytes[3],
        body: &bytes[HEADER_LEN..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let stamp = Stamp { epoch: 1, generation: 2 };
        let times = Times { fresh_until: 10, stale_until: 20, keep_until: 30 };
        let bytes = write(stamp, times, 1, b"{}");
        let e = read(&bytes).unwrap();
        assert_eq!((e.stamp, e.times, e.tag, e.body), (stamp, times, 1, &b"{}"[..]));
        assert!(read(b"short").is_err());
        assert!(read(&[b'X'; HEADER_LEN]).is_err());
        assert_eq!(times.at(5), Freshness::Fresh);
        assert_eq!(times.at(15), Freshness::Stale);
        assert_eq!(times.at(25), Freshness::FailSafe);
        assert_eq!(times.at(30), Freshness::Expired);
    }

    #[test]
    fn every_write_has_its_own_header_and_a_lease_keeps_the_value() {
        let stamp = Stamp { epoch: 1, generation: 2 };
        let times = Times { fresh_until: 10, stale_until: 20, keep_until: 30 };
        let (a, b) = (write(stamp, times, 1, b"{}"), write(stamp, times, 1, b"{}"));
        assert_ne!(prefix(&a), prefix(&b), "two writes of one value differ in their nonce");
        let leased = read(&a).unwrap().rewrite(99);
        let e = read(&leased).unwrap();
        assert_eq!((e.stamp, e.times, e.body, e.lease_until), (stamp, times, &b"{}"[..], 99));
        assert!(e.leased_at(98) && !e.leased_at(99));
        let only = lease_only(stamp, 50);
        let e = read(&only).unwrap();
        assert_eq!((e.times.at(0), e.body.len(), e.lease_until), (Freshness::Expired, 0, 50));
        assert_eq!(prefix(b"abc"), b"abc");
    }
}
