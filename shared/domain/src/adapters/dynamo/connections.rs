//! WebSocket connections of the refresh push: one item each, with a `ttl` DynamoDB expires
//! them by (a connection whose `$disconnect` was lost does not stay for ever).

use super::*;
use crate::ports::push::{Connection, Connections, CONNECTION_TTL};

#[async_trait]
impl Connections for DynamoStore {
    async fn connect(&self, c: &Connection) -> Result<()> {
        let mut item = to_item(c)?;
        item.insert("ttl".into(), n(epoch_secs(&time::now(), CONNECTION_TTL)));
        self.client
            .put_item()
            .table_name(&self.tables.connections)
            .set_item(Some(item))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn subscribe(&self, id: &str, feeds: &[String]) -> Result<bool> {
        let feeds = AttributeValue::L(feeds.iter().map(|f| s(f.as_str())).collect());
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key("id", s(id))
            .update_expression("SET feeds = :f")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":f", feeds)
            .send()
            .await;
        condition_held(result)
    }

    async fn disconnect(&self, id: &str) -> Result<()> {
        self.client
            .delete_item()
            .table_name(&self.tables.connections)
            .key("id", s(id))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn connections(&self) -> Result<Vec<Connection>> {
        let now = time::now().timestamp();
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.tables.connections)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_error)?;
            for item in page.items.unwrap_or_default() {
                // Expired items may linger until DynamoDB deletes them.
                let expired =
                    matches!(item.get("ttl"), Some(AttributeValue::N(t)) if t.parse::<i64>().is_ok_and(|t| t <= now));
                if !expired {
                    out.push(from_item(item)?);
                }
            }
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(out);
            }
        }
    }
}
