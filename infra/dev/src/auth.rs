//! The dev server's stand-in for API Gateway's JWT authorizer: on routes that require a
//! signed-in caller it verifies `Authorization: Bearer <JWT>` (HS256 with a local development
//! key; issuer, audience and expiry checked) and hands the claims to the handlers exactly where
//! API Gateway puts them. `livecache-dev token --sub <user-id>` mints such tokens.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub const ISSUER: &str = "livecache-dev";
pub const AUDIENCE: &str = "livecache-api";
/// The development key when `LIVECACHE_DEV_JWT_SECRET` is not set. Local use only: the
/// deployed API verifies tokens of a real issuer (SAM parameters `JwtIssuer`, `JwtAudience`).
pub const DEFAULT_DEV_SECRET: &str = "livecache-local-development-key-not-for-production";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    aud: String,
    iat: u64,
    exp: u64,
}

#[derive(Clone)]
pub struct DevAuth {
    secret: Vec<u8>,
}

impl std::fmt::Debug for DevAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevAuth { .. }") // never print the key
    }
}

impl DevAuth {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self { secret: secret.into() }
    }

    /// `LIVECACHE_DEV_JWT_SECRET`, or the default development key.
    pub fn from_env() -> Self {
        Self::new(
            std::env::var("LIVECACHE_DEV_JWT_SECRET")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_DEV_SECRET.into()),
        )
    }

    /// A token for `sub`, valid `ttl_secs` from now.
    pub fn mint(&self, sub: &str, ttl_secs: i64) -> String {
        let now = now_secs();
        let claims = Claims {
            sub: sub.into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: (now as i64 + ttl_secs).max(0) as u64,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&self.secret)).unwrap_or_default()
    }

    /// The claims of a valid bearer token, as a JSON object.
    pub fn verify(&self, authorization: Option<&str>) -> Result<serde_json::Value, &'static str> {
        let token = authorization.and_then(|v| v.strip_prefix("Bearer ")).ok_or("a bearer JWT is required")?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 0;
        let data =
            decode::<Claims>(token, &DecodingKey::from_secret(&self.secret), &validation).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired",
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => "the token's signature is not valid",
                    jsonwebtoken::errors::ErrorKind::InvalidIssuer
                    | jsonwebtoken::errors::ErrorKind::InvalidAudience => "the token was not issued for this API",
                    _ => "the token is not a valid JWT",
                }
            })?;
        serde_json::to_value(data.claims).map_err(|_| "the token is not a valid JWT")
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_verified_for_signature_issuer_audience_and_expiry() {
        let auth = DevAuth::new("k1");
        let good = auth.mint("user-0001", 60);
        let claims = auth.verify(Some(&format!("Bearer {good}"))).unwrap();
        assert_eq!(claims["sub"], "user-0001");
        assert!(auth.verify(None).is_err());
        assert!(auth.verify(Some(&good)).is_err(), "Bearer prefix required");
        assert_eq!(auth.verify(Some(&format!("Bearer {}", auth.mint("u", -10)))).unwrap_err(), "the token has expired");
        let forged = DevAuth::new("k2").mint("user-0001", 60);
        assert_eq!(auth.verify(Some(&format!("Bearer {forged}"))).unwrap_err(), "the token's signature is not valid");
        assert!(auth.verify(Some("Bearer not.a.jwt")).is_err());
    }
}
