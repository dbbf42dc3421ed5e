//! View counts: a chunk of ADDs and its marker in one transaction, so a chunk counts once.

use super::*;

#[async_trait]
impl ViewStore for DynamoStore {
    async fn apply_view_chunk(&self, chunk: &ViewChunk) -> Result<ChunkOutcome> {
        let mut products = chunk.products.clone();
        let mut streams = chunk.streams.clone();
        let mut skipped = 0usize;
        let now = time::now();
        for attempt in 0..MAX_ATTEMPTS {
            let marker = Put::builder()
                .table_name(&self.tables.jobs)
                .item("pk", s(format!("viewsync#{}", chunk.id)))
                .item("applied_at", s(time::format(&now)))
                .item("ttl", n(epoch_secs(&now, MARKER_TTL)))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(sdk_error)?;
            let mut items = vec![TransactWriteItem::builder().put(marker).build()];
            for (table, deltas) in [(&self.tables.products, &products), (&self.tables.streams, &streams)] {
                for (id, by) in deltas {
                    let update = Update::builder()
                        .table_name(table)
                        .key("id", s(id.as_str()))
                        .update_expression("ADD view_count :n")
                        .condition_expression("attribute_exists(id)")
                        .expression_attribute_values(":n", n(by))
                        .build()
                        .map_err(sdk_error)?;
                    items.push(TransactWriteItem::builder().update(update).build());
                }
            }
            match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
                Ok(_) => {
                    return Ok(ChunkOutcome {
                        applied: true,
                        products: products.len(),
                        streams: streams.len(),
                        views: products.iter().chain(streams.iter()).map(|(_, n)| n).sum(),
                        skipped_missing: skipped,
                    })
                }
                Err(e) => {
                    let reasons: Vec<Option<String>> = match e.as_service_error() {
                        Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => {
                            c.cancellation_reasons().iter().map(|r| r.code().map(str::to_string)).collect()
                        }
                        _ => {
                            tracing::warn!(chunk = %chunk.id, attempt, error = ?e, "view chunk write failed; retrying");
                            backoff(attempt).await;
                            continue;
                        }
                    };
                    let failed = |i: usize| reasons.get(i).and_then(|r| r.as_deref()) == Some("ConditionalCheckFailed");
                    if failed(0) {
                        // The marker exists: this chunk was applied by an earlier attempt.
                        return Ok(ChunkOutcome::default());
                    }
                    let missing_products: HashSet<usize> = (0..products.len()).filter(|i| failed(1 + i)).collect();
                    let missing_streams: HashSet<usize> =
                        (0..streams.len()).filter(|i| failed(1 + products.len() + i)).collect();
                    if missing_products.is_empty() && missing_streams.is_empty() {
                        // Conflicts or throttling: try the same transaction again.
                        backoff(attempt).await;
                        continue;
                    }
                    skipped += missing_products.len() + missing_streams.len();
                    tracing::warn!(chunk = %chunk.id, dropped = skipped, "views for deleted items dropped");
                    products = products
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| !missing_products.contains(i))
                        .map(|(_, p)| p)
                        .collect();
                    streams = streams
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| !missing_streams.contains(i))
                        .map(|(_, p)| p)
                        .collect();
                }
            }
        }
        Err(StoreError::Backend(format!("view chunk {} not applied after {MAX_ATTEMPTS} attempts", chunk.id)))
    }
}
