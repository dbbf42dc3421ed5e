//! Values on the wire: serde JSON, compressed above a threshold (LZ4 by default, zlib when
//! chosen), tagged so a reader knows which — any reader reads every tag — and capped on the way
//! back in so a corrupt or hostile value cannot blow up memory.

use std::cell::RefCell;
use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::{Decompress, FlushDecompress, Status};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::CodecError;

/// Plain JSON follows the tag.
pub const TAG_JSON: u8 = 0x01;
/// zlib-compressed JSON follows the tag.
pub const TAG_ZLIB_JSON: u8 = 0x02;
/// LZ4-compressed JSON follows the tag: the JSON's length (u32, little-endian), then one LZ4
/// block.
pub const TAG_LZ4_JSON: u8 = 0x03;

/// How values above the threshold are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// LZ4: inflating a 6 KB feed page takes a few µs, a tenth of zlib's time, for a
    /// somewhat larger value. The default: every hit pays the decompression, once per read.
    Lz4,
    /// zlib at a level 0–9: smaller values (Redis memory, network bytes), slower reads.
    Zlib { level: u32 },
}

#[derive(Debug, Clone)]
pub struct Codec {
    /// Values whose JSON is longer than this are compressed.
    pub compress_over: usize,
    /// Decoding refuses values that would decompress to more than this.
    pub max_decoded: usize,
    pub compression: Compression,
}

impl Default for Codec {
    fn default() -> Self {
        Self { compress_over: 1024, max_decoded: 8 * 1024 * 1024, compression: Compression::Lz4 }
    }
}

impl Codec {
    /// Serialises `value` and returns `(tag, body)`.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<(u8, Vec<u8>), CodecError> {
        let json = serde_json::to_vec(value)?;
        Ok(self.pack_json(json))
    }

    /// Compresses already-serialised JSON when it is over the threshold (and when that makes
    /// it smaller).
    pub fn pack_json(&self, json: Vec<u8>) -> (u8, Vec<u8>) {
        if json.len() <= self.compress_over {
            return (TAG_JSON, json);
        }
        let packed = match self.compression {
            Compression::Lz4 if u32::try_from(json.len()).is_ok() => {
                Some((TAG_LZ4_JSON, lz4_flex::block::compress_prepend_size(&json)))
            }
            Compression::Lz4 => None,
            Compression::Zlib { level } => {
                let mut enc = ZlibEncoder::new(Vec::with_capacity(json.len() / 4), flate2::Compression::new(level));
                // Writing into a Vec cannot fail.
                enc.write_all(&json).ok().and_then(|_| enc.finish().ok()).map(|z| (TAG_ZLIB_JSON, z))
            }
        };
        match packed {
            Some((tag, body)) if body.len() < json.len() => (tag, body),
            _ => (TAG_JSON, json),
        }
    }

    /// Returns the JSON text of a tagged body, decompressing within the cap.
    pub fn unpack_json<'a>(&self, tag: u8, body: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>, CodecError> {
        match tag {
            TAG_JSON => {
                if body.len() > self.max_decoded {
                    return Err(CodecError::TooLarge { limit: self.max_decoded });
                }
                Ok(std::borrow::Cow::Borrowed(body))
            }
            TAG_ZLIB_JSON => inflate_capped(body, self.max_decoded).map(std::borrow::Cow::Owned),
            TAG_LZ4_JSON => unlz4_capped(body, self.max_decoded).map(std::borrow::Cow::Owned),
            other => Err(CodecError::UnknownFormat(other)),
        }
    }

    /// Decodes a tagged body into `T`.
    pub fn decode<T: FromJson>(&self, tag: u8, body: &[u8]) -> Result<T, CodecError> {
        T::from_json(self.unpack_json(tag, body)?)
    }
}

/// How a value becomes the JSON the cache stores. Every `Serialize` type is one; a type may
/// instead carry JSON it already holds (see [`FromJson`]).
pub trait ToJson {
    fn to_json(&self) -> Result<Vec<u8>, CodecError>;
}

/// How a value is read back from the JSON the cache stored. Every `DeserializeOwned` type is
/// one; a type that is served as the bytes it was stored as may check their form and keep them,
/// instead of parsing them on every hit (the engine wrote them: its entry header and stamp were
/// checked before this is called).
pub trait FromJson: Sized {
    fn from_json(json: std::borrow::Cow<'_, [u8]>) -> Result<Self, CodecError>;
}

impl<T: Serialize + ?Sized> ToJson for T {
    fn to_json(&self) -> Result<Vec<u8>, CodecError> {
        Ok(serde_json::to_vec(self)?)
    }
}

impl<T: DeserializeOwned> FromJson for T {
    fn from_json(json: std::borrow::Cow<'_, [u8]>) -> Result<Self, CodecError> {
        Ok(serde_json::from_slice(&json)?)
    }
}

thread_local! {
    // Building an inflater allocates and initialises its window; for values of a few KiB that
    // costs more than inflating them, so each thread keeps one and resets it.
    static INFLATER: RefCell<Decompress> = RefCell::new(Decompress::new(true));
}

/// Inflates a zlib stream, refusing to produce more than `cap` bytes.
fn inflate_capped(body: &[u8], cap: usize) -> Result<Vec<u8>, CodecError> {
    INFLATER.with(|cell| {
        let mut inflater = cell.borrow_mut();
        inflater.reset(true);
        let mut out: Vec<u8> = Vec::with_capacity((body.len() * 4).clamp(256, cap.saturating_add(1)));
        loop {
            let consumed = inflater.total_in() as usize;
            let status = inflater
                .decompress_vec(&body[consumed..], &mut out, FlushDecompress::Finish)
                .map_err(|e| CodecError::Zlib(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
            if out.len() > cap {
                return Err(CodecError::TooLarge { limit: cap });
            }
            match status {
                Status::StreamEnd => return Ok(out),
                _ if out.len() < out.capacity() && inflater.total_in() as usize == body.len() => {
                    return Err(CodecError::Zlib(std::io::ErrorKind::UnexpectedEof.into()));
                }
                _ => out.reserve((out.capacity()).min(cap + 1 - out.len()).max(256)),
            }
        }
    })
}

/// Decompresses an LZ4 body, refusing one whose declared length is over `cap` (before
/// allocating) or that does not decompress to exactly that length.
fn unlz4_capped(body: &[u8], cap: usize) -> Result<Vec<u8>, CodecError> {
    let (len, block) = body.split_first_chunk::<4>().ok_or(CodecError::Truncated)?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > cap {
        return Err(CodecError::TooLarge { limit: cap });
    }
    // lz4_flex's decoder checks every read and write against the buffers' bounds (a malformed
    // block is an error, never a read or write outside them).
    match lz4_flex::block::decompress(block, len) {
        Ok(out) if out.len() == len => Ok(out),
        Ok(_) => Err(CodecError::Truncated),
        Err(e) => Err(CodecError::Lz4(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZLIB: Compression = Compression::Zlib { level: 1 };

    /// Each compression with the tag it writes.
    fn each() -> [(Codec, u8); 2] {
        [
            (Codec { compression: Compression::Lz4, ..Codec::default() }, TAG_LZ4_JSON),
            (Codec { compression: ZLIB, ..Codec::default() }, TAG_ZLIB_JSON),
        ]
    }

    #[test]
    fn small_values_stay_plain_and_large_ones_are_compressed() {
        assert_eq!(Codec::default().compression, Compression::Lz4);
        for (codec, compressed) in each() {
            let (tag, body) = codec.encode(&"short").unwrap();
            assert_eq!(tag, TAG_JSON);
            assert_eq!(body, b"\"short\"");
            let big: Vec<String> = (0..200).map(|i| format!("item-{i}")).collect();
            let (tag, body) = codec.encode(&big).unwrap();
            assert_eq!(tag, compressed);
            let back: Vec<String> = codec.decode(tag, &body).unwrap();
            assert_eq!(back, big);
            // Any codec reads what any other wrote.
            for (reader, _) in each() {
                assert_eq!(reader.decode::<Vec<String>>(tag, &body).unwrap(), big);
            }
        }
    }

    #[test]
    fn decompression_is_capped() {
        for (codec, compressed) in each() {
            let capped = Codec { max_decoded: 4096, ..codec.clone() };
            let bomb = vec![b'a'; 1 << 20];
            let (tag, body) = codec.pack_json(bomb);
            assert_eq!(tag, compressed);
            assert!(matches!(capped.unpack_json(tag, &body), Err(CodecError::TooLarge { .. })));
        }
    }

    #[test]
    fn truncated_streams_are_errors_and_the_inflater_recovers() {
        for (codec, _) in each() {
            let big: Vec<String> = (0..500).map(|i| format!("item-{i}")).collect();
            let (tag, body) = codec.encode(&big).unwrap();
            assert!(codec.decode::<Vec<String>>(tag, &body[..body.len() / 2]).is_err());
            assert_eq!(codec.decode::<Vec<String>>(tag, &body).unwrap(), big, "the shared inflater was reset");
            // Output exactly at the cap is accepted; one byte over is not.
            let json = serde_json::to_vec(&big).unwrap();
            let at_cap = Codec { max_decoded: json.len(), ..codec.clone() };
            assert!(at_cap.decode::<Vec<String>>(tag, &body).is_ok());
            let below = Codec { max_decoded: json.len() - 1, ..codec.clone() };
            assert!(matches!(below.unpack_json(tag, &body), Err(CodecError::TooLarge { .. })));
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let codec = Codec::default();
        assert!(codec.decode::<String>(TAG_ZLIB_JSON, b"not zlib").is_err());
        assert!(codec.decode::<String>(TAG_JSON, b"{nope").is_err());
        assert!(matches!(codec.decode::<String>(0x7f, b"x"), Err(CodecError::UnknownFormat(0x7f))));
        // LZ4: too short for its length, a length over the cap (refused before allocating),
        // a block that is not LZ4, and one that decompresses short of its declared length.
        assert!(matches!(codec.decode::<String>(TAG_LZ4_JSON, b"ab"), Err(CodecError::Truncated)));
        assert!(matches!(codec.unpack_json(TAG_LZ4_JSON, &u32::MAX.to_le_bytes()), Err(CodecError::TooLarge { .. })));
        let mut bad = 64u32.to_le_bytes().to_vec();
        bad.extend_from_slice(&[0xff; 16]);
        assert!(codec.decode::<String>(TAG_LZ4_JSON, &bad).is_err());
        let mut short = 64u32.to_le_bytes().to_vec();
        short.extend_from_slice(&lz4_flex::block::compress(b"\"only a few bytes\""));
        assert!(codec.decode::<String>(TAG_LZ4_JSON, &short).is_err());
        // A block that decompresses to more than its declared length: refused, no write past it.
        let long: Vec<u8> = serde_json::to_vec(&"many bytes ".repeat(100)).unwrap();
        let mut over = 16u32.to_le_bytes().to_vec();
        over.extend_from_slice(&lz4_flex::block::compress(&long));
        assert!(codec.decode::<String>(TAG_LZ4_JSON, &over).is_err());
        // Every truncation of a good value, and every single-byte corruption: errors or the
        // value, never a panic.
        let (_, good) = codec.pack_json(long.clone());
        for cut in 0..good.len() {
            let _ = codec.unpack_json(TAG_LZ4_JSON, &good[..cut]);
        }
        for i in 4..good.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] ^= flip;
                let _ = codec.unpack_json(TAG_LZ4_JSON, &bad);
            }
        }
    }
}
