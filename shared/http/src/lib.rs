//! The HTTP glue every HTTP function shares, on top of the runtime (`livecache-runtime`: the
//! configuration, the clients, telemetry): a request/response independent of what carried it
//! ([`api`]), the route table ([`routes`]), one thin handler per route ([`handlers`]), the
//! application ([`app`]), and running on Lambda with post-response work held open by an
//! internal extension ([`lambda`]). Only [`lambda`] touches `lambda_http`.

pub mod api;
pub mod app;
pub mod handlers;
pub mod lambda;
pub mod routes;

pub use api::{ApiError, ApiRequest, ApiResponse};
pub use app::{AdminAuth, App};
pub use routes::{Route, ROUTES};
