//! Offers: conditional create, expire (PENDING and due), extend (PENDING and not due), and the
//! sparse `by_due` index read with a bound.

use super::*;

/// How many partitions the due-offer index is spread over (`due_shard` = `due#0` … `due#3`),
/// so that no single index partition takes every offer's writes.
const DUE_SHARDS: u32 = 4;

/// The due-offer index's partition `shard` (`due#{shard}`).
fn due_partition(shard: u32) -> String {
    format!("due#{shard}")
}

/// The due-offer index's partition of an offer.
pub(super) fn due_shard(id: &str) -> String {
    let h = id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    due_partition(h % DUE_SHARDS)
}

/// The due-offer index's sort key: the expiry in epoch milliseconds, zero-padded so that text
/// order is time order.
pub(super) fn due_at(t: &Timestamp) -> String {
    format!("{:015}", t.timestamp_millis().max(0))
}

impl DynamoStore {
    /// An UpdateItem on one offer, `#s` naming its status.
    fn offer_update(&self, id: &str) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.tables.offers)
            .key("id", s(id))
            .expression_attribute_names("#s", "status")
    }
}

#[async_trait]
impl OfferStore for DynamoStore {
    async fn get_offer(&self, id: &str) -> Result<Option<Offer>> {
        self.get(&self.tables.offers, id).await
    }

    async fn get_offers(&self, ids: &[String]) -> Result<Vec<Option<Offer>>> {
        self.batch_get(&self.tables.offers, ids).await
    }

    async fn put_offers(&self, items: &[Offer]) -> Result<()> {
        let items = items.iter().map(Self::offer_item).collect::<Result<Vec<_>>>()?;
        self.batch_put(&self.tables.offers, items).await
    }

    async fn create_offer(&self, offer: &Offer) -> Result<()> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.offers)
            .set_item(Some(Self::offer_item(offer)?))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => {
                Err(StoreError::AlreadyExists { kind: "offer", id: offer.id.clone() })
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn expire_offer(&self, id: &str, now: Timestamp) -> Result<ExpireOutcome> {
        // The due-index keys stay until the OfferExpired is out (`offer_announced`).
        let result = self
            .offer_update(id)
            .update_expression("SET #s = :expired")
            .condition_expression("#s = :pending AND due_at <= :now")
            .expression_attribute_values(":expired", s(OfferStatus::Expired.as_str()))
            .expression_attribute_values(":pending", s(OfferStatus::Pending.as_str()))
            .expression_attribute_values(":now", s(due_at(&now)))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(ExpireOutcome::Expired(from_item(out.attributes.unwrap_or_default())?)),
            Err(e) if is_conditional_failure(&e) => Ok(match self.get_offer(id).await? {
                None => ExpireOutcome::Missing,
                Some(o) if o.status != OfferStatus::Pending => ExpireOutcome::NotPending(o.status),
                Some(o) => ExpireOutcome::NotDue(o),
            }),
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn extend_offer(&self, id: &str, expires_at: Timestamp, now: Timestamp) -> Result<Offer> {
        let result = self
            .offer_update(id)
            .update_expression("SET expires_at = :e, #ttl = :ttl, due_at = :due")
            .condition_expression("#s = :pending AND due_at > :now")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":e", s(time::format(&expires_at)))
            .expression_attribute_values(":ttl", n(epoch_secs(&expires_at, OFFER_TTL_AFTER_EXPIRY)))
            .expression_attribute_values(":due", s(due_at(&expires_at)))
            .expression_attribute_values(":pending", s(OfferStatus::Pending.as_str()))
            .expression_attribute_values(":now", s(due_at(&now)))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => from_item(out.attributes.unwrap_or_default()),
            Err(e) if is_conditional_failure(&e) => match self.get_offer(id).await? {
                None => Err(StoreError::NotFound { kind: "offer", id: id.into() }),
                Some(o) => Err(extend_conflict(&o)),
            },
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn offers_due_by(&self, until: Timestamp, limit: usize) -> Result<Vec<Offer>> {
        let until = due_at(&until);
        let shards = (0..DUE_SHARDS).map(|i| {
            let until = until.clone();
            async move {
                let mut out: Vec<Item> = Vec::new();
                let mut start: Option<Item> = None;
                loop {
                    let page = self
                        .client
                        .query()
                        .table_name(&self.tables.offers)
                        .index_name("by_due")
                        .key_condition_expression("due_shard = :s AND due_at <= :until")
                        .expression_attribute_values(":s", s(due_partition(i)))
                        .expression_attribute_values(":until", s(until.as_str()))
                        .limit((limit - out.len()).clamp(1, 1000) as i32)
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(sdk_error)?;
                    out.extend(page.items.unwrap_or_default());
                    start = page.last_evaluated_key.filter(|k| !k.is_empty());
                    if start.is_none() || out.len() >= limit {
                        return Ok::<_, StoreError>(out);
                    }
                }
            }
        });
        let mut offers: Vec<Offer> = Vec::new();
        for items in futures::future::try_join_all(shards).await? {
            offers.extend(items.into_iter().map(from_item).collect::<Result<Vec<Offer>>>()?);
        }
        offers.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then_with(|| a.id.cmp(&b.id)));
        offers.truncate(limit);
        Ok(offers)
    }

    async fn offer_announced(&self, id: &str) -> Result<()> {
        let result = self
            .offer_update(id)
            .update_expression("REMOVE due_shard, due_at")
            .condition_expression("attribute_exists(id) AND #s <> :pending")
            .expression_attribute_values(":pending", s(OfferStatus::Pending.as_str()))
            .send()
            .await;
        unless_condition_failed(result)
    }
}
