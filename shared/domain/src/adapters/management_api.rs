//! The [`Poster`] on AWS: API Gateway's Management API.

use async_trait::async_trait;

use crate::ports::push::{Delivery, Poster};

/// [`Poster`] through API Gateway's Management API (`POST @connections/{id}`).
#[derive(Debug, Clone)]
pub struct ManagementApiPoster {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl ManagementApiPoster {
    /// A client for the WebSocket API stage at `endpoint`
    /// (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`).
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(sdk).endpoint_url(endpoint).build();
        Self::from_client(aws_sdk_apigatewaymanagement::Client::from_conf(conf))
    }

    /// Over a client configured by the caller (its endpoint, interceptors).
    pub fn from_client(client: aws_sdk_apigatewaymanagement::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Poster for ManagementApiPoster {
    async fn post(&self, connection: &str, data: &[u8]) -> std::result::Result<Delivery, String> {
        let sent = self
            .client
            .post_to_connection()
            .connection_id(connection)
            .data(aws_sdk_apigatewaymanagement::primitives::Blob::new(data))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Delivery::Delivered),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_gone_exception()) => Ok(Delivery::Gone),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 410) => Ok(Delivery::Gone),
            Err(e) => Err(format!("{e:?}").chars().take(300).collect()),
        }
    }
}
