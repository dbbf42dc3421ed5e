//! Every route of the API, which function serves it, and how a path matches.

use http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Discover,
    Community,
    Product,
    ProductViews,
    BatchUsers,
    BatchProducts,
    GoLive,
    EndStream,
    LiveStreams,
    CreateOffer,
    GetOffer,
    ExtendOffer,
    ExpiringSoon,
    CacheStats,
    CacheStatsDetails,
    CacheJobs,
    CacheJobsDetails,
    Invalidate,
    Warm,
    UserProfile,
    MyProfile,
    UpdateMyProfile,
    UserAchievements,
    Leaderboard,
    RecentAchievements,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    /// A signed-in caller: the API Gateway JWT authorizer (the dev server emulates it); the
    /// handler takes the caller from the `sub` claim.
    User,
    /// On AWS: IAM auth (SigV4), the identity taken from the request context (see
    /// [`AdminAuth`](crate::app::AdminAuth)); on the dev server: its admin bearer token.
    Admin,
}

#[derive(Debug, Clone)]
pub struct RouteDef {
    pub route: Route,
    pub method: Method,
    /// With `{name}` segments, as API Gateway writes them.
    pub pattern: &'static str,
    /// The function crate that serves it.
    pub function: &'static str,
    pub access: Access,
}

const fn def(route: Route, method: Method, pattern: &'static str, function: &'static str, access: Access) -> RouteDef {
    RouteDef { route, method, pattern, function, access }
}

pub const ROUTES: &[RouteDef] = &[
    def(Route::Discover, Method::GET, "/api/v1/feeds/discover", "feeds", Access::Public),
    def(Route::Community, Method::GET, "/api/v1/feeds/community", "feeds", Access::Public),
    def(Route::Product, Method::GET, "/api/v1/products/{id}", "products", Access::Public),
    def(Route::ProductViews, Method::GET, "/api/v1/products/{id}/views", "products", Access::Public),
    def(Route::BatchUsers, Method::POST, "/api/v1/batch/users", "batch", Access::Public),
    def(Route::BatchProducts, Method::POST, "/api/v1/batch/products", "batch", Access::Public),
    def(Route::GoLive, Method::POST, "/api/v1/streams/{id}/go-live", "streams", Access::User),
    def(Route::EndStream, Method::POST, "/api/v1/streams/{id}/end", "streams", Access::User),
    def(Route::LiveStreams, Method::GET, "/api/v1/streams/live", "streams", Access::Public),
    def(Route::CreateOffer, Method::POST, "/api/v1/offers", "offers", Access::User),
    def(Route::GetOffer, Method::GET, "/api/v1/offers/{id}", "offers", Access::User),
    def(Route::ExtendOffer, Method::POST, "/api/v1/offers/{id}/extend", "offers", Access::User),
    def(Route::ExpiringSoon, Method::GET, "/api/v1/offers/expiring-soon", "offers", Access::User),
    def(Route::CacheStats, Method::GET, "/api/v1/cache/stats", "stats", Access::Public),
    def(Route::CacheStatsDetails, Method::GET, "/api/v1/cache/stats/details", "stats", Access::Admin),
    def(Route::CacheJobs, Method::GET, "/api/v1/cache/jobs", "stats", Access::Public),
    def(Route::CacheJobsDetails, Method::GET, "/api/v1/cache/jobs/details", "stats", Access::Admin),
    def(Route::Invalidate, Method::POST, "/api/v1/cache/invalidate", "stats", Access::Admin),
    def(Route::Warm, Method::POST, "/api/v1/cache/warm", "stats", Access::Admin),
    def(Route::UserProfile, Method::GET, "/api/v1/users/{id}", "users", Access::Public),
    def(Route::MyProfile, Method::GET, "/api/v1/users/me", "users", Access::User),
    def(Route::UpdateMyProfile, Method::PATCH, "/api/v1/users/me", "users", Access::User),
    def(Route::UserAchievements, Method::GET, "/api/v1/users/{id}/achievements", "users", Access::Public),
    def(Route::Leaderboard, Method::GET, "/api/v1/leaderboard", "users", Access::Public),
    def(Route::RecentAchievements, Method::GET, "/api/v1/achievements/recent", "users", Access::Public),
];

/// The functions, in the order of [`ROUTES`].
pub const FUNCTIONS: [&str; 7] = ["feeds", "products", "batch", "streams", "offers", "stats", "users"];

/// A path's `{name}` values.
pub type Params = Vec<(&'static str, String)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    NotFound,
    /// The path exists with other methods.
    MethodNotAllowed(Vec<Method>),
}

/// The route for `method path` among those of `function` (all when None), and the path's
/// `{name}` values. Literal segments win over `{name}` ones (`/streams/live` is not a stream id).
pub fn match_route(method: &Method, path: &str, function: Option<&str>) -> Result<(&'static RouteDef, Params), Miss> {
    // Every request is matched (twice on the dev server): the path is split once onto the
    // stack and compared with the patterns split once per process; a match allocates only its
    // parameters.
    const MAX_SEGMENTS: usize = 8;
    let mut segs = [""; MAX_SEGMENTS];
    let mut count = 0;
    for s in path.trim_end_matches('/').split('/') {
        if count == MAX_SEGMENTS {
            return Err(Miss::NotFound);
        }
        segs[count] = s;
        count += 1;
    }
    let segs = &segs[..count];
    let mut allowed = Vec::new();
    let mut best: Option<(usize, usize)> = None;
    for (i, (r, pat)) in ROUTES.iter().zip(PATTERNS.iter()).enumerate() {
        if pat.len() != segs.len() || function.is_some_and(|f| r.function != f) {
            continue;
        }
        let mut literal = 0;
        let ok = pat.iter().zip(segs).all(|(p, s)| match p {
            Segment::Param(_) => !s.is_empty(),
            Segment::Literal(l) => {
                literal += 1;
                l == s
            }
        });
        if !ok {
            continue;
        }
        if r.method != *method {
            allowed.push(r.method.clone());
            continue;
        }
        if best.is_none_or(|(_, l)| literal > l) {
            best = Some((i, literal));
        }
    }
    match best {
        Some((i, _)) => {
            let params = PATTERNS[i]
                .iter()
                .zip(segs)
                .filter_map(|(p, s)| match p {
                    Segment::Param(name) => Some((*name, percent_decode(s))),
                    Segment::Literal(_) => None,
                })
                .collect();
            Ok((&ROUTES[i], params))
        }
        None if !allowed.is_empty() => Err(Miss::MethodNotAllowed(allowed)),
        None => Err(Miss::NotFound),
    }
}

enum Segment {
    Literal(&'static str),
    Param(&'static str),
}

/// [`ROUTES`]' patterns, split into segments once.
static PATTERNS: std::sync::LazyLock<Vec<Vec<Segment>>> = std::sync::LazyLock::new(|| {
    ROUTES
        .iter()
        .map(|r| {
            r.pattern
                .split('/')
                .map(|p| match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(name) => Segment::Param(name),
                    None => Segment::Literal(p),
                })
                .collect()
        })
        .collect()
});

/// A path segment as the client meant it (`%2B` is `+`); a malformed escape is kept as it is,
/// and the id check refuses it.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| segment.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_win_and_params_are_extracted() {
        let (r, p) = match_route(&Method::GET, "/api/v1/streams/live", None).unwrap();
        assert_eq!(r.route, Route::LiveStreams);
        assert!(p.is_empty());
        let (r, p) = match_route(&Method::POST, "/api/v1/streams/s-1/go-live", None).unwrap();
        assert_eq!((r.route, p), (Route::GoLive, vec![("id", "s-1".to_string())]));
        let (r, _) = match_route(&Method::GET, "/api/v1/offers/expiring-soon/", None).unwrap();
        assert_eq!(r.route, Route::ExpiringSoon);
        assert_eq!(match_route(&Method::GET, "/api/v1/nope", None).unwrap_err(), Miss::NotFound);
        assert_eq!(
            match_route(&Method::DELETE, "/api/v1/offers", None).unwrap_err(),
            Miss::MethodNotAllowed(vec![Method::POST])
        );
        assert_eq!(match_route(&Method::GET, "/api/v1/products/p1", Some("feeds")).unwrap_err(), Miss::NotFound);
        let (_, p) = match_route(&Method::GET, "/api/v1/products/%2B57A%3D", None).unwrap();
        assert_eq!(p, vec![("id", "+57A=".to_string())], "path segments are percent-decoded");
    }
}
