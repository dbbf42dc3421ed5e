//! Streams: the live list (`by_status`) and the conditional transitions, which move the
//! seller's products in the live-first ranking.

use super::*;

#[async_trait]
impl StreamStore for DynamoStore {
    async fn get_stream(&self, id: &str) -> Result<Option<Stream>> {
        self.get(&self.tables.streams, id).await
    }

    async fn put_streams(&self, items: &[Stream]) -> Result<()> {
        let rows = items.iter().map(to_item).collect::<Result<Vec<_>>>()?;
        self.batch_put(&self.tables.streams, rows).await?;
        let live = self.live_sellers().await?;
        let sellers: HashSet<&str> = items.iter().map(|st| st.seller_id.as_str()).collect();
        for seller in sellers {
            self.rerank_seller(seller, live.contains(seller)).await?;
        }
        Ok(())
    }

    async fn live_streams(&self) -> Result<Vec<Stream>> {
        let items =
            self.query_index(&self.tables.streams, "by_status", "status", StreamStatus::Live.as_str(), None).await?;
        let mut live: Vec<Stream> = items.into_iter().map(from_item).collect::<Result<_>>()?;
        live.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.id.cmp(&b.id)));
        Ok(live)
    }

    async fn transition_stream(&self, id: &str, to: StreamStatus, at: Timestamp) -> Result<Stream> {
        let (from, stamp) = match to {
            StreamStatus::Live => (StreamStatus::Scheduled, "started_at"),
            StreamStatus::Ended => (StreamStatus::Live, "ended_at"),
            StreamStatus::Scheduled => {
                let current =
                    self.get_stream(id).await?.ok_or_else(|| StoreError::NotFound { kind: "stream", id: id.into() })?;
                return Err(StoreError::InvalidTransition { id: id.into(), from: current.status, to });
            }
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.streams)
            .key("id", s(id))
            .update_expression("SET #s = :to, #t = :at")
            .condition_expression("#s = :from")
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#t", stamp)
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":from", s(from.as_str()))
            .expression_attribute_values(":at", s(time::format(&at)))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let stream: Stream = from_item(out.attributes.unwrap_or_default())?;
                // The seller's products move in the live-first ranking (still live if another
                // of their streams is).
                let live = to == StreamStatus::Live || self.live_sellers().await?.contains(&stream.seller_id);
                self.rerank_seller(&stream.seller_id, live).await?;
                Ok(stream)
            }
            Err(e) if is_conditional_failure(&e) => match self.get_stream(id).await? {
                None => Err(StoreError::NotFound { kind: "stream", id: id.into() }),
                Some(current) => Err(StoreError::InvalidTransition { id: id.into(), from: current.status, to }),
            },
            Err(e) => Err(sdk_error(e)),
        }
    }
}
