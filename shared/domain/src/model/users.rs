//! Users beyond their name: preferences, profile updates, seller figures, badges and the
//! leaderboard's entries.

use serde::{Deserialize, Serialize};

pub use crate::model::market::{Accessibility, Notifications, Preferences};
use crate::model::market::{Category, User};
use crate::model::time::{self, Timestamp};

/// Languages a user can choose.
pub(crate) const LANGUAGES: [&str; 8] = ["en", "de", "fr", "es", "it", "nl", "pl", "pt"];
pub(crate) const MAX_NAME: usize = 60;
pub(crate) const MAX_BIO: usize = 500;
pub(crate) const MAX_CITY: usize = 60;
pub(crate) const MAX_AVATAR: usize = 300;
pub(crate) const MAX_INTERESTS: usize = 10;

/// What anybody may see of a user (batch reads, the public profile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicUser {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bio: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(with = "time::rfc3339_ms")]
    pub created_at: Timestamp,
    /// Points of the badges earned (the leaderboard's score).
    pub points: u64,
    pub badges: u32,
}

impl From<&User> for PublicUser {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            name: u.name.clone(),
            avatar: u.avatar.clone(),
            bio: u.bio.clone(),
            city: u.city.clone(),
            created_at: u.created_at,
            points: u.points,
            badges: u.badges,
        }
    }
}

/// What a seller has done, counted from the data: what the public profile shows and what
/// badges are awarded on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SellerFigures {
    pub products_listed: u64,
    /// Streams that went live (live now or ended).
    pub streams_hosted: u64,
    /// Views of the seller's products, as synced to the database.
    pub total_views: i64,
}

/// A change to the signed-in user's profile: only the fields given change; unknown fields are
/// refused. An empty `avatar`, `bio` or `city` clears it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub avatar: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub bio: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub city: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub preferences: Option<PreferencesPatch>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreferencesPatch {
    #[serde(default, deserialize_with = "present")]
    pub language: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub notifications: Option<NotificationsPatch>,
    #[serde(default, deserialize_with = "present")]
    pub interests: Option<Vec<Category>>,
    #[serde(default, deserialize_with = "present")]
    pub accessibility: Option<AccessibilityPatch>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsPatch {
    #[serde(default, deserialize_with = "present")]
    pub live_alerts: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub offers: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub email_digest: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessibilityPatch {
    #[serde(default, deserialize_with = "present")]
    pub reduced_motion: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub high_contrast: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub captions: Option<bool>,
}

/// A field that, when given, must have its type (`null` is refused like any wrong type).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Why a profile change was refused: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidProfile {
    pub field: &'static str,
    pub reason: String,
}

/// Characters no profile text may hold: control characters (C0, DEL, C1).
fn control(c: char) -> bool {
    c.is_control()
}

fn text(field: &'static str, v: &str, max: usize, required: bool) -> Result<Option<String>, InvalidProfile> {
    let bad = |reason: String| Err(InvalidProfile { field, reason });
    if v.chars().count() > max {
        return bad(format!("at most {max} characters"));
    }
    if v.chars().any(control) {
        return bad("must not contain control characters".into());
    }
    match (v.is_empty(), required) {
        (true, true) => bad("must not be empty".into()),
        (true, false) => Ok(None),
        (false, _) => Ok(Some(v.to_string())),
    }
}

impl ProfilePatch {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `user` with this change applied, or why it is refused.
    pub fn apply(&self, user: &User) -> Result<User, InvalidProfile> {
        let mut u = user.clone();
        if let Some(name) = &self.name {
            u.name = text("name", name, MAX_NAME, true)?.unwrap_or_default();
        }
        if let Some(avatar) = &self.avatar {
            u.avatar = text("avatar", avatar, MAX_AVATAR, false)?;
            let url = |a: &str| a.len() > 8 && a.starts_with("https://") && !a.contains(char::is_whitespace);
            if u.avatar.as_deref().is_some_and(|a| !url(a)) {
                return Err(InvalidProfile {
                    field: "avatar",
                    reason: "must be an https:// URL without spaces".into(),
                });
            }
        }
        if let Some(bio) = &self.bio {
            u.bio = text("bio", bio, MAX_BIO, false)?;
        }
        if let Some(city) = &self.city {
            u.city = text("city", city, MAX_CITY, false)?;
        }
        if let Some(p) = &self.preferences {
            let prefs = &mut u.preferences;
            if let Some(lang) = &p.language {
                if !LANGUAGES.contains(&lang.as_str()) {
                    return Err(InvalidProfile {
                        field: "preferences.language",
                        reason: format!("one of {}", LANGUAGES.join(", ")),
                    });
                }
                prefs.language = lang.clone();
            }
            if let Some(n) = &p.notifications {
                let to = &mut prefs.notifications;
                to.live_alerts = n.live_alerts.unwrap_or(to.live_alerts);
                to.offers = n.offers.unwrap_or(to.offers);
                to.email_digest = n.email_digest.unwrap_or(to.email_digest);
            }
            if let Some(interests) = &p.interests {
                if interests.len() > MAX_INTERESTS {
                    return Err(InvalidProfile {
                        field: "preferences.interests",
                        reason: format!("at most {MAX_INTERESTS}"),
                    });
                }
                let mut seen = Vec::new();
                for c in interests {
                    if !seen.contains(c) {
                        seen.push(*c);
                    }
                }
                prefs.interests = seen;
            }
            if let Some(a) = &p.accessibility {
                let to = &mut prefs.accessibility;
                to.reduced_motion = a.reduced_motion.unwrap_or(to.reduced_motion);
                to.high_contrast = a.high_contrast.unwrap_or(to.high_contrast);
                to.captions = a.captions.unwrap_or(to.captions);
            }
        }
        Ok(u)
    }
}

crate::model::market::string_enum! {
    /// The badges the system awards, each when a seller's figures cross its threshold.
    BadgeCode {
        FirstLive = "first_live",
        Streams10 = "streams_10",
        Catalog10 = "catalog_10",
        Views100 = "views_100",
        Views1000 = "views_1000",
        Views10000 = "views_10000",
    }
}

impl BadgeCode {
    pub(crate) fn title(&self) -> &'static str {
        match self {
            BadgeCode::FirstLive => "First live stream",
            BadgeCode::Streams10 => "Ten live streams",
            BadgeCode::Catalog10 => "Ten products listed",
            BadgeCode::Views100 => "100 views",
            BadgeCode::Views1000 => "1,000 views",
            BadgeCode::Views10000 => "10,000 views",
        }
    }

    pub fn points(&self) -> u64 {
        match self {
            BadgeCode::FirstLive => 10,
            BadgeCode::Streams10 => 50,
            BadgeCode::Catalog10 => 10,
            BadgeCode::Views100 => 10,
            BadgeCode::Views1000 => 25,
            BadgeCode::Views10000 => 100,
        }
    }

    /// Whether figures `f` earn it.
    pub fn earned(&self, f: &SellerFigures) -> bool {
        match self {
            BadgeCode::FirstLive => f.streams_hosted >= 1,
            BadgeCode::Streams10 => f.streams_hosted >= 10,
            BadgeCode::Catalog10 => f.products_listed >= 10,
            BadgeCode::Views100 => f.total_views >= 100,
            BadgeCode::Views1000 => f.total_views >= 1_000,
            BadgeCode::Views10000 => f.total_views >= 10_000,
        }
    }
}

/// A badge one user holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Badge {
    pub user_id: String,
    pub code: BadgeCode,
    pub title: String,
    pub points: u64,
    #[serde(with = "time::rfc3339_ms")]
    pub awarded_at: Timestamp,
}

impl Badge {
    pub fn new(user_id: &str, code: BadgeCode, awarded_at: Timestamp) -> Self {
        Self { user_id: user_id.into(), code, title: code.title().into(), points: code.points(), awarded_at }
    }

    /// The order of recent badges: newest first, then by user and code (descending).
    pub fn recency(&self) -> String {
        format!("{}#{}#{}", time::format(&self.awarded_at), self.user_id, self.code)
    }
}

/// The leaderboard's order: more points first, then the higher id (both adapters rank so).
pub(crate) fn points_rank(points: u64, id: &str) -> String {
    format!("{points:012}#{id}")
}
