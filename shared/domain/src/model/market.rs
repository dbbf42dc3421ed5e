//! The marketplace's models, with the JSON field names the API and the store use.

use serde::{Deserialize, Serialize};

use crate::model::time::{self, Timestamp};

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant,)* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(format!(
                        "unknown {} {other:?}; expected one of: {}",
                        stringify!($name).to_lowercase(),
                        [$($text),*].join(", ")
                    )),
                }
            }
        }
    };
}

pub(crate) use string_enum;

string_enum!(
    /// How a job run ended.
    JobOutcome { Ok = "ok", Error = "error" }
);

string_enum!(
    /// Product categories.
    Category {
        Fashion = "fashion",
        Electronics = "electronics",
        Home = "home",
        Collectibles = "collectibles",
        Sports = "sports",
        Beauty = "beauty",
        Books = "books",
        Toys = "toys",
    }
);

string_enum!(
    /// The state an item is in.
    Condition {
        New = "new",
        LikeNew = "like_new",
        Good = "good",
        Fair = "fair",
        Poor = "poor",
    }
);

string_enum!(
    /// A live stream's life: SCHEDULED → LIVE → ENDED.
    StreamStatus {
        Scheduled = "SCHEDULED",
        Live = "LIVE",
        Ended = "ENDED",
    }
);

string_enum!(
    OfferStatus {
        Pending = "PENDING",
        Accepted = "ACCEPTED",
        Rejected = "REJECTED",
        Withdrawn = "WITHDRAWN",
        Expired = "EXPIRED",
    }
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: String,
    pub seller_id: String,
    pub title: String,
    /// In major units (e.g. 12.50).
    pub price: f64,
    /// ISO 4217.
    pub currency: String,
    pub condition: Condition,
    pub category: Category,
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(with = "time::rfc3339_ms")]
    pub created_at: Timestamp,
    #[serde(default)]
    pub view_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub avatar: Option<String>,
    #[serde(default)]
    pub bio: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(with = "time::rfc3339_ms")]
    pub created_at: Timestamp,
    #[serde(default)]
    pub preferences: Preferences,
    /// Points of the badges held (kept by the store as badges are awarded).
    #[serde(default)]
    pub points: u64,
    /// How many badges are held.
    #[serde(default)]
    pub badges: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    pub id: String,
    pub seller_id: String,
    pub title: String,
    pub status: StreamStatus,
    #[serde(default, with = "time::rfc3339_ms_opt", skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, with = "time::rfc3339_ms_opt", skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    #[serde(default)]
    pub view_count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub id: String,
    pub product_id: String,
    pub buyer_id: String,
    pub seller_id: String,
    pub amount: f64,
    pub currency: String,
    pub status: OfferStatus,
    #[serde(with = "time::rfc3339_ms")]
    pub created_at: Timestamp,
    #[serde(with = "time::rfc3339_ms")]
    pub expires_at: Timestamp,
}

/// A product as the feeds show it: a summary, whether its seller is live now, and (in the
/// community feed) how far away it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedItem {
    pub id: String,
    pub seller_id: String,
    pub title: String,
    pub price: f64,
    pub currency: String,
    pub condition: Condition,
    pub category: Category,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(with = "time::rfc3339_ms")]
    pub created_at: Timestamp,
    pub view_count: i64,
    pub seller_live: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<f64>,
}

impl FeedItem {
    pub(crate) fn from_product(p: &Product, seller_live: bool, distance_km: Option<f64>) -> Self {
        Self {
            id: p.id.clone(),
            seller_id: p.seller_id.clone(),
            title: p.title.clone(),
            price: p.price,
            currency: p.currency.clone(),
            condition: p.condition,
            category: p.category,
            image: p.images.first().cloned(),
            created_at: p.created_at,
            view_count: p.view_count,
            seller_live,
            stream_id: p.stream_id.clone(),
            distance_km: distance_km.map(|d| (d * 100.0).round() / 100.0),
        }
    }
}

/// The record a scheduled job leaves after each run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRun {
    pub job: String,
    #[serde(with = "time::rfc3339_ms")]
    pub started_at: Timestamp,
    #[serde(with = "time::rfc3339_ms")]
    pub finished_at: Timestamp,
    pub duration_ms: u64,
    pub outcome: JobOutcome,
    /// What the run reports (counts), as JSON.
    pub figures: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a signed-in user chose; only in their own full profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preferences {
    pub language: String,
    pub notifications: Notifications,
    pub interests: Vec<Category>,
    pub accessibility: Accessibility,
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            language: "en".into(),
            notifications: Notifications { live_alerts: true, offers: true, email_digest: false },
            interests: Vec::new(),
            accessibility: Accessibility::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Notifications {
    /// A followed seller goes live.
    pub live_alerts: bool,
    /// Offers made, extended or expiring.
    pub offers: bool,
    pub email_digest: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Accessibility {
    pub reduced_motion: bool,
    pub high_contrast: bool,
    pub captions: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the cache stores is what it serves: a product read back from its JSON is the same
    /// product, to the last bit of every coordinate (JSON parsing must round-trip floats).
    #[test]
    fn every_demo_product_survives_its_json_exactly() {
        let data = crate::seed::generate(crate::seed::SeedSize::SMALL, time::from_millis(1_700_000_000_000));
        let changed: Vec<&str> = data
            .products
            .iter()
            .filter(|p| serde_json::from_slice::<Product>(&serde_json::to_vec(p).unwrap()).unwrap() != **p)
            .map(|p| p.id.as_str())
            .collect();
        assert!(changed.is_empty(), "{} of {} changed: {changed:?}", changed.len(), data.products.len());
    }

    #[test]
    fn json_names_are_stable() {
        let s = Stream {
            id: "s1".into(),
            seller_id: "u1".into(),
            title: "t".into(),
            status: StreamStatus::Live,
            started_at: Some(time::from_millis(0)),
            ended_at: None,
            view_count: 3,
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["status"], "LIVE");
        assert_eq!(v["started_at"], "1970-01-01T00:00:00.000Z");
        assert!(v.get("ended_at").is_none());
        assert_eq!("like_new".parse::<Condition>().unwrap(), Condition::LikeNew);
        assert!("shoes".parse::<Category>().unwrap_err().contains("fashion"));
    }
}
