//! Ids of marketplace things (products, users, streams, offers): one rule, checked where an id
//! enters — a path, a body, a token's subject, an event — and nowhere else.
//!
//! 1 to 128 ASCII letters, digits and `-_.@+=`: safe in a URL path, in a DynamoDB key and as a
//! cache key part (a subset of what the cache's own key check accepts).

/// The longest id accepted.
pub(crate) const MAX_ID_LEN: usize = 128;

/// A checked id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(String);

/// Why text is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id {value:?}: {reason}")]
pub struct InvalidId {
    pub value: String,
    pub reason: &'static str,
}

impl Id {
    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        let reason = if text.is_empty() {
            "is empty"
        } else if text.len() > MAX_ID_LEN {
            "is longer than 128 characters"
        } else if !text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@+=".contains(&b)) {
            "may use letters, digits and -_.@+= only"
        } else {
            return Ok(Self(text.to_string()));
        };
        let value: String = text.chars().take(MAX_ID_LEN + 8).collect();
        Err(InvalidId { value, reason })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The user id of a token's subject (`sub`). Identity providers' subjects hold characters
    /// ids do not (`auth0|5f7c…`, `google-oauth2|1043…`, `…:…`): every byte outside
    /// `A-Za-z0-9-_.@+` — `=` included — is written `=XX` (two upper-case hex digits), so
    /// a subject that already is a plain id (a Cognito UUID, `user-0001`) is its own id, and no
    /// two subjects share one. An error if the result is longer than an id may be.
    pub fn from_subject(sub: &str) -> Result<Self, InvalidId> {
        let mut out = String::with_capacity(sub.len());
        for b in sub.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.@+".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("={b:02X}"));
            }
        }
        Self::parse(&out)
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An id reads as the text it is (`&Id` goes wherever `&str` does).
impl std::ops::Deref for Id {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

// Records keep ids as text (they were checked where they entered): an id compares with it, and
// becomes it.
impl PartialEq<Id> for String {
    fn eq(&self, other: &Id) -> bool {
        *self == other.0
    }
}

impl PartialEq<&Id> for String {
    fn eq(&self, other: &&Id) -> bool {
        *self == other.0
    }
}

impl PartialEq<Id> for &str {
    fn eq(&self, other: &Id) -> bool {
        *self == other.0
    }
}

impl From<Id> for String {
    fn from(id: Id) -> Self {
        id.0
    }
}

impl From<&Id> for String {
    fn from(id: &Id) -> Self {
        id.0.clone()
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_once_by_one_rule() {
        for good in ["prod-00001", "user.a@b+c=d_e", &"x".repeat(128)] {
            assert_eq!(Id::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "a b", "a:b", "a*", "{x}", "é", "a/b", &"x".repeat(129)] {
            assert!(Id::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(Id::parse("a b").unwrap_err().reason, "may use letters, digits and -_.@+= only");
    }

    #[test]
    fn a_subject_is_its_own_id_when_it_can_be_and_otherwise_escaped_one_to_one() {
        for plain in ["user-0001", "5f1b2c3d-4e5f-6789-abcd-ef0123456789", "a.b@c+d"] {
            assert_eq!(Id::from_subject(plain).unwrap().as_str(), plain);
        }
        assert_eq!(
            Id::from_subject("auth0|5f7c8ec7c33c6c004bbafe82").unwrap().as_str(),
            "auth0=7C5f7c8ec7c33c6c004bbafe82"
        );
        assert_eq!(Id::from_subject("google-oauth2|1043").unwrap().as_str(), "google-oauth2=7C1043");
        assert_eq!(Id::from_subject("a:b").unwrap().as_str(), "a=3Ab");
        // `=` is escaped too: "a|b" and the subject "a=7Cb" stay two users.
        assert_ne!(Id::from_subject("a|b").unwrap(), Id::from_subject("a=7Cb").unwrap());
        assert!(Id::from_subject("").is_err());
        assert!(Id::from_subject(&"|".repeat(43)).is_err());
    }
}
