//! Timestamps: UTC, millisecond precision, always written in one fixed-width RFC 3339 form
//! (`2026-11-21T05:00:00.000Z`) so that string order is time order (DynamoDB sort keys).

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

pub type Timestamp = DateTime<Utc>;

pub fn now() -> Timestamp {
    truncate(Utc::now())
}

/// Drops sub-millisecond precision, as storage does.
pub fn truncate(t: Timestamp) -> Timestamp {
    from_millis(t.timestamp_millis())
}

pub fn from_millis(ms: i64) -> Timestamp {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub fn format(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// serde for [`Timestamp`] fields.
pub(crate) mod rfc3339_ms {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s).map(|t| truncate(t.with_timezone(&Utc))).map_err(serde::de::Error::custom)
    }
}

/// serde for `Option<Timestamp>` fields.
pub(crate) mod rfc3339_ms_opt {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format(t)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| {
            DateTime::parse_from_rfc3339(&s).map(|t| truncate(t.with_timezone(&Utc))).map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_so_string_order_is_time_order() {
        let a = from_millis(1_763_700_000_000);
        let b = from_millis(1_763_700_000_001);
        assert_eq!(format(&a), "2025-11-21T04:40:00.000Z");
        assert!(format(&a) < format(&b));
    }
}
