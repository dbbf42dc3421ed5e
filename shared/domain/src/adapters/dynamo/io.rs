//! The adapter's reads and writes in bulk: one item, BatchGetItem and BatchWriteItem in
//! chunks with their unprocessed parts retried, and index queries with `Limit` and paging.

use super::*;

impl DynamoStore {
    pub(super) async fn get<T: DeserializeOwned>(&self, table: &str, id: &str) -> Result<Option<T>> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        out.item.map(from_item).transpose()
    }

    /// BatchGetItem over distinct ids in chunks of 100, retrying UnprocessedKeys with backoff.
    pub(super) async fn batch_get<T: DeserializeOwned>(&self, table: &str, ids: &[String]) -> Result<Vec<Option<T>>> {
        let found = self.batch_get_items(table, ids, true, None).await?;
        ids.iter().map(|id| found.get(id).cloned().map(from_item).transpose()).collect()
    }

    /// The items of `ids` that exist, by id (`consistent`: strongly consistent reads;
    /// `projection`: only these attributes).
    pub(super) async fn batch_get_items(
        &self,
        table: &str,
        ids: &[String],
        consistent: bool,
        projection: Option<&str>,
    ) -> Result<HashMap<String, Item>> {
        let mut distinct: Vec<&String> = Vec::new();
        let mut seen = HashSet::new();
        for id in ids {
            if seen.insert(id) {
                distinct.push(id);
            }
        }
        let mut found: HashMap<String, Item> = HashMap::with_capacity(distinct.len());
        for chunk in distinct.chunks(BATCH_GET_MAX) {
            let keys: Vec<Item> = chunk.iter().map(|id| HashMap::from([("id".to_string(), s(id.as_str()))])).collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(consistent)
                .set_projection_expression(projection.map(str::to_string))
                .build()
                .map_err(sdk_error)?;
            let mut pending = Some(request);
            let mut attempt = 0;
            while let Some(request) = pending.take() {
                let out = self.client.batch_get_item().request_items(table, request).send().await.map_err(sdk_error)?;
                for item in out.responses.and_then(|mut r| r.remove(table)).unwrap_or_default() {
                    if let Some(AttributeValue::S(id)) = item.get("id") {
                        found.insert(id.clone(), item);
                    }
                }
                pending = out.unprocessed_keys.and_then(|mut u| u.remove(table)).filter(|k| !k.keys.is_empty());
                if pending.is_some() {
                    attempt += 1;
                    if attempt >= MAX_ATTEMPTS {
                        return Err(StoreError::Backend(format!(
                            "BatchGetItem on {table}: keys still unprocessed after {attempt} attempts"
                        )));
                    }
                    backoff(attempt).await;
                }
            }
        }
        Ok(found)
    }

    /// BatchWriteItem in chunks of 25, retrying UnprocessedItems with backoff.
    pub(super) async fn batch_put(&self, table: &str, items: Vec<Item>) -> Result<()> {
        for chunk in items.chunks(BATCH_WRITE_MAX) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    Ok(WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item.clone())).build().map_err(sdk_error)?)
                        .build())
                })
                .collect::<Result<_>>()?;
            let mut attempt = 0;
            while !pending.is_empty() {
                let out =
                    self.client.batch_write_item().request_items(table, pending).send().await.map_err(sdk_error)?;
                pending = out.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt >= MAX_ATTEMPTS {
                        return Err(StoreError::Backend(format!(
                            "BatchWriteItem on {table}: items still unprocessed after {attempt} attempts"
                        )));
                    }
                    backoff(attempt).await;
                }
            }
        }
        Ok(())
    }

    /// Items of one index partition, newest first, up to `limit` (all when None).
    pub(super) async fn query_index(
        &self,
        table: &str,
        index: &str,
        attr: &str,
        value: &str,
        limit: Option<usize>,
    ) -> Result<Vec<Item>> {
        Ok(self.query_index_from(table, index, attr, value, limit, None).await?.0)
    }

    /// Items of one index partition in descending order after `start` (exclusive; from the
    /// top when None), up to `limit` (all when None), and where the partition goes on (None:
    /// read to its end).
    pub(super) async fn query_index_from(
        &self,
        table: &str,
        index: &str,
        attr: &str,
        value: &str,
        limit: Option<usize>,
        mut start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        let mut out = Vec::new();
        loop {
            let mut q = self
                .client
                .query()
                .table_name(table)
                .index_name(index)
                .key_condition_expression("#k = :v")
                .expression_attribute_names("#k", attr)
                .expression_attribute_values(":v", s(value))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take());
            if let Some(limit) = limit {
                q = q.limit((limit - out.len()).min(1000) as i32);
            }
            let page = q.send().await.map_err(sdk_error)?;
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() || limit.is_some_and(|l| out.len() >= l) {
                return Ok((out, start));
            }
        }
    }
}
