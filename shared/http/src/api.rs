//! A request and a response as the handlers see them, whatever carried them (API Gateway via
//! lambda_http, or the dev server), and the one place errors become HTTP statuses.

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use livecache_domain::services::ServiceError;
use serde::Serialize;

/// Requests larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The Lambda request id (or one made up by the dev server).
    pub request_id: String,
    /// JWT claims put there by the API Gateway authorizer (or the dev server's emulation).
    pub claims: Option<serde_json::Value>,
    /// The IAM principal (user or role ARN) API Gateway's IAM authorizer verified from the
    /// request's SigV4 signature; set only by the Lambda request path.
    pub iam_principal: Option<String>,
}

impl ApiRequest {
    pub fn new(method: Method, path_and_query: &str) -> Self {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        Self {
            method,
            path: path.to_string(),
            query: parse_query(query),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            request_id: String::new(),
            claims: None,
            iam_principal: None,
        }
    }
}

/// Decodes `a=1&b=x%20y` into pairs.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub body: Vec<u8>,
    /// For the request log line: `hit`, `miss`, `stale` or none.
    pub cache: Option<&'static str>,
    /// Headers besides `content-type` (e.g. `allow` on a 405).
    pub headers: Vec<(http::HeaderName, String)>,
}

impl ApiResponse {
    pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Self {
        let mut body = Vec::with_capacity(4096);
        match serde_json::to_writer(&mut body, value) {
            Ok(()) => Self { status, body, cache: None, headers: Vec::new() },
            Err(e) => ApiError::internal(format!("response could not be encoded: {e}")).into_response(),
        }
    }

    /// An answer whose JSON is already written.
    pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Self {
        Self { status, body, cache: None, headers: Vec::new() }
    }

    pub fn with_header(mut self, name: http::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_cache(mut self, cached: bool, stale: bool) -> Self {
        self.cache = Some(match (cached, stale) {
            (_, true) => "stale",
            (true, false) => "hit",
            (false, false) => "miss",
        });
        self
    }
}

/// An error answer: `{"error": "<stable_code>", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn into_response(self) -> ApiResponse {
        let body = serde_json::to_vec(&ErrorBody { error: self.code, message: &self.message })
            .unwrap_or_else(|_| br#"{"error":"internal","message":"error"}"#.to_vec());
        ApiResponse { status: self.status, body, cache: None, headers: Vec::new() }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid { code, message } => Self::new(StatusCode::BAD_REQUEST, code, message),
            ServiceError::NotFound { code, message } => Self::new(StatusCode::NOT_FOUND, code, message),
            ServiceError::Conflict { code, message } => Self::new(StatusCode::CONFLICT, code, message),
            ServiceError::Forbidden { code, message } => Self::new(StatusCode::FORBIDDEN, code, message),
            ServiceError::Unavailable(message) => Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message),
        }
    }
}
