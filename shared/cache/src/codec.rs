//! Values on the wire: serde JSON, zlib-compressed above a threshold, tagged so a reader
//! knows which, and capped on the way back in so a corrupt or hostile value cannot blow up
//! memory.

use std::cell::RefCell;
use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::{Compression, Decompress, FlushDecompress, Status};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::CodecError;

/// Plain JSON follows the tag.
pub const TAG_JSON: u8 = 0x01;
/// zlib-compressed JSON follows the tag.
pub const TAG_ZLIB_JSON: u8 = 0x02;

#[derive(Debug, Clone)]
pub struct Codec {
    /// Values whose JSON is longer than this are compressed.
    pub compress_over: usize,
    /// Decoding refuses values that would decompress to more than this.
    pub max_decoded: usize,
    /// zlib level, 0–9.
    pub level: u32,
}

impl Default for Codec {
    fn default() -> Self {
        Self { compress_over: 1024, max_decoded: 8 * 1024 * 1024, level: 1 }
    }
}

impl Codec {
    /// Serialises `value` and returns `(tag, body)`.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<(u8, Vec<u8>), CodecError> {
        let json = serde_json::to_vec(value)?;
        Ok(self.pack_json(json))
    }

    /// Compresses already-serialised JSON when it is over the threshold.
    pub fn pack_json(&self, json: Vec<u8>) -> (u8, Vec<u8>) {
        if json.len() <= self.compress_over {
            return (TAG_JSON, json);
        }
        let mut enc = ZlibEncoder::new(Vec::with_capacity(json.len() / 4), Compression::new(self.level));
        // Writing into a Vec cannot fail.
        if enc.write_all(&json).is_err() {
            return (TAG_JSON, json);
        }
        match enc.finish() {
            Ok(z) if z.len() < json.len() => (TAG_ZLIB_JSON, z),
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
            other => Err(CodecError::UnknownFormat(other)),
        }
    }

    /// Decodes a tagged body into `T`.
    pub fn decode<T: DeserializeOwned>(&self, tag: u8, body: &[u8]) -> Result<T, CodecError> {
        let json = self.unpack_json(tag, body)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_stay_plain_and_large_ones_are_compressed() {
        let codec = Codec::default();
        let (tag, body) = codec.encode(&"short").unwrap();
        assert_eq!(tag, TAG_JSON);
        assert_eq!(body, b"\"short\"");
        let big: Vec<String> = (0..200).map(|i| format!("item-{i}")).collect();
        let (tag, body) = codec.encode(&big).unwrap();
        assert_eq!(tag, TAG_ZLIB_JSON);
        let back: Vec<String> = codec.decode(tag, &body).unwrap();
        assert_eq!(back, big);
    }

    #[test]
    fn decompression_is_capped() {
        let codec = Codec { max_decoded: 4096, ..Codec::default() };
        let bomb = vec![b'a'; 1 << 20];
        let (tag, body) = Codec::default().pack_json(bomb);
        assert_eq!(tag, TAG_ZLIB_JSON);
        assert!(matches!(codec.unpack_json(tag, &body), Err(CodecError::TooLarge { .. })));
    }

    #[test]
    fn truncated_streams_are_errors_and_the_inflater_recovers() {
        let codec = Codec::default();
        let big: Vec<String> = (0..500).map(|i| format!("item-{i}")).collect();
        let (tag, body) = codec.encode(&big).unwrap();
        assert!(codec.decode::<Vec<String>>(tag, &body[..body.len() / 2]).is_err());
        assert_eq!(codec.decode::<Vec<String>>(tag, &body).unwrap(), big, "the shared inflater was reset");
        // Output exactly at the cap is accepted; one byte over is not.
        let json = serde_json::to_vec(&big).unwrap();
        let at_cap = Codec { max_decoded: json.len(), ..Codec::default() };
        assert!(at_cap.decode::<Vec<String>>(tag, &body).is_ok());
        let below = Codec { max_decoded: json.len() - 1, ..Codec::default() };
        assert!(matches!(below.unpack_json(tag, &body), Err(CodecError::TooLarge { .. })));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let codec = Codec::default();
        assert!(codec.decode::<String>(TAG_ZLIB_JSON, b"not zlib").is_err());
        assert!(codec.decode::<String>(TAG_JSON, b"{nope").is_err());
        assert!(matches!(codec.decode::<String>(0x7f, b"x"), Err(CodecError::UnknownFormat(0x7f))));
    }
}
