//! The ports' implementations: DynamoDB and in memory for the store, EventBridge and
//! in-process for events, the Management API for the refresh push.

pub(crate) mod dynamo;
pub(crate) mod eventbridge;
pub(crate) mod in_process;
pub(crate) mod management_api;
pub(crate) mod memory;
