//! The stored form of a cached value: a fixed header, then the codec body.
//!
//! ```text
//! "LC" | layout 1 | codec tag | epoch u64 | generation u64 | fresh_until u64 | stale_until u64 | keep_until u64 | body
//! ```
//! Times are clock milliseconds (big-endian). `epoch` and `generation` are the keyspace epoch
//! and namespace generation the value was written under: when either has moved on, the value
//! is invalidated. Anything that does not parse is a miss.

use crate::error::CodecError;

const MAGIC: &[u8; 2] = b"LC";
const LAYOUT: u8 = 1;
pub const HEADER_LEN: usize = 4 + 8 * 5;

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
    pub stamp: Stamp,
    pub times: Times,
    pub tag: u8,
    pub body: &'a [u8],
}

pub fn write(stamp: Stamp, times: Times, tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.push(LAYOUT);
    out.push(tag);
    for n in [stamp.epoch, stamp.generation, times.fresh_until, times.stale_until, times.keep_until] {
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
        stamp: Stamp { epoch: n(0), generation: n(1) },
        times: Times { fresh_until: n(2), stale_until: n(3), keep_until: n(4) },
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
}
