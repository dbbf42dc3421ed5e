//! The HTTP glue every HTTP function shares, on top of the runtime (`livecache-runtime`: the
//! configuration, the clients, telemetry): a request/response independent of what carried it
//! (`api`), the route table (`routes`), one thin handler per route (`handlers/`: one file
//! per area — `feeds`, `products`, `batch`, `streams`, `offers`, `users`, `admin` — and
//! `mod.rs`, which picks the handler and checks the ids and the caller once), the
//! application (`app`), and running on Lambda with post-response work held open by an
//! internal extension ([`lambda`]). Only [`lambda`] touches `lambda_http`.

#![warn(unreachable_pub)]

mod api;
mod app;
mod handlers;
pub mod lambda;
mod routes;

// The public surface: the request entry point and its types; `lambda` runs it on Lambda.
pub use api::{parse_query, ApiError, ApiRequest, ApiResponse, MAX_BODY_BYTES};
pub use app::{AdminAuth, App};
pub use routes::{match_route, Access, Miss, Params, Route, RouteDef, FUNCTIONS, ROUTES};
