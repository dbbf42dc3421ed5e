//! The ports' implementations: DynamoDB and in memory.

pub(crate) mod dynamo;
pub(crate) mod memory;
