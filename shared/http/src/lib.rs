//! The HTTP glue every function shares: a request/response independent of what carried it
//! ([`api`]), the route table ([`routes`]), one thin handler per route ([`handlers`]), the
//! application and its dependencies ([`app`]), and running on Lambda with post-response work
//! held open by an internal extension ([`lambda`]). Only [`lambda`] touches `lambda_http`.

pub mod api;
pub mod app;
pub mod handlers;
pub mod lambda;
pub mod routes;
pub mod telemetry;
pub mod worker;

pub use api::{ApiError, ApiRequest, ApiResponse};
pub use app::{AdminAuth, App, Deps};
pub use routes::{Route, ROUTES};
