//! Offers: creation, reads by buyer or seller, extension until due, the expiring-soon list
//! and its Redis index (rebuilt from DynamoDB when lost).

use super::*;

/// How an offer's expiry is given.
#[derive(Debug, Clone, Copy)]
pub enum Expiry {
    InMinutes(u32),
    At(Timestamp),
}

#[derive(Debug, Clone)]
pub struct NewOffer {
    pub product_id: Id,
    /// The signed-in caller: the buyer.
    pub caller: Id,
    /// The buyer as the request named it, if it did: it must be the caller.
    pub buyer_id: Option<String>,
    pub amount: f64,
    pub expiry: Expiry,
}

/// The longest an offer may run.
pub(crate) const MAX_OFFER_MINUTES: u32 = 7 * 24 * 60;

impl Marketplace {
    pub(crate) async fn product_for_offer(&self, product_id: &Id) -> Result<Product> {
        self.inner.store.products.get_product(product_id).await?.ok_or_else(|| ServiceError::NotFound {
            code: "product_not_found",
            message: format!("product {product_id} not found"),
        })
    }

    /// Validates and stores an offer, then tracks it in the expiry index.
    /// The buyer is the caller. A different `buyer_id` in the request is refused (403
    /// `buyer_mismatch`), not silently replaced, so a client bug cannot place an offer it did
    /// not mean; nobody offers on their own product (403 `own_product`).
    pub async fn create_offer(&self, new: NewOffer) -> Result<Offer> {
        if new.buyer_id.as_deref().is_some_and(|b| b != new.caller) {
            return Err(ServiceError::Forbidden {
                code: "buyer_mismatch",
                message: "buyer_id must be the signed-in caller (or left out)".into(),
            });
        }
        // Amounts are kept in cents: anything that rounds to less than one cent is no offer.
        if !new.amount.is_finite() || new.amount < 0.01 || new.amount > 1e9 {
            return Err(ServiceError::invalid("invalid_amount", "amount must be from 0.01 to 1000000000"));
        }
        let product = self.product_for_offer(&new.product_id).await?;
        if product.seller_id == new.caller {
            return Err(ServiceError::Forbidden {
                code: "own_product",
                message: "a seller cannot make an offer on their own product".into(),
            });
        }
        let now = time::now();
        let expires_at = expiry_time(new.expiry, now)?;
        let offer = Offer {
            id: format!("offer-{:016x}", rand::random::<u64>()),
            product_id: product.id.clone(),
            buyer_id: new.caller.into(),
            seller_id: product.seller_id.clone(),
            amount: (new.amount * 100.0).round() / 100.0,
            currency: product.currency.clone(),
            status: OfferStatus::Pending,
            created_at: now,
            expires_at,
        };
        self.inner.store.offers.create_offer(&offer).await?;
        self.track_expiry(&offer).await;
        Ok(offer)
    }

    async fn track_expiry(&self, offer: &Offer) {
        if let Err(e) = self.inner.offer_index.track(offer).await {
            tracing::error!(error = %e, offer = %offer.id, "offer not tracked in the expiry index");
        }
    }

    /// An offer, for its buyer or seller only: anyone else is told it does not exist.
    pub async fn offer_for(&self, id: &Id, caller: &Id) -> Result<Offer> {
        let offer = self.offer(id).await?;
        if offer.buyer_id != caller && offer.seller_id != caller {
            return Err(ServiceError::NotFound { code: "offer_not_found", message: format!("offer {id} not found") });
        }
        Ok(offer)
    }

    pub async fn offer(&self, id: &Id) -> Result<Offer> {
        self.inner
            .store
            .offers
            .get_offer(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound { code: "offer_not_found", message: format!("offer {id} not found") })
    }

    /// Moves a pending offer's expiry (from now, or to a time).
    /// Only the offer's buyer may (403 `not_offer_buyer`).
    pub async fn extend_offer(&self, id: &Id, expiry: Expiry, caller: &Id) -> Result<Offer> {
        if self.offer(id).await?.buyer_id != caller {
            return Err(ServiceError::Forbidden {
                code: "not_offer_buyer",
                message: "only the offer's buyer may extend it".into(),
            });
        }
        let now = time::now();
        let expires_at = expiry_time(expiry, now)?;
        // Refused (409) once the offer is due, even if the expiry job has not run yet.
        let offer = self.inner.store.offers.extend_offer(id, expires_at, now).await?;
        self.track_expiry(&offer).await;
        Ok(offer)
    }

    /// The caller's pending offers (as buyer or seller) expiring within `window`, soonest first.
    /// Read from the caller's shard of the Redis index (one slot); an index that has lost its
    /// contents (a flush, a restart without persistence, a failover) is rebuilt from DynamoDB
    /// first.
    pub async fn expiring_soon(&self, caller: &Id, window: Duration) -> Result<Vec<Offer>> {
        let index = &self.inner.offer_index;
        if !matches!(index.is_built_for(caller).await, Ok(true)) {
            if let Err(e) = self.repair_expiry_index().await {
                tracing::warn!(error = %e, "expiry index not rebuilt");
            }
        }
        let now = time::now().timestamp_millis() as u64;
        let ids = index.due_for(caller, now, window, 500).await?;
        let offers = self.inner.store.offers.get_offers(&ids).await?;
        let mut out: Vec<Offer> = offers
            .into_iter()
            .flatten()
            .filter(|o| o.status == OfferStatus::Pending && (o.buyer_id == caller || o.seller_id == caller))
            .collect();
        out.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Rebuilds the Redis expiry index from DynamoDB's due-offer index (every PENDING offer),
    /// then marks it complete; returns how many offers it holds. Run when a mark is missing
    /// and by the nightly cleanup. An entry it adds for an offer settled meanwhile is harmless
    /// (readers check the status) and pruned by the next cleanup.
    pub(crate) async fn repair_expiry_index(&self) -> Result<usize> {
        let horizon = time::now() + chrono::Duration::minutes(MAX_OFFER_MINUTES as i64 + 24 * 60);
        let pending: Vec<Offer> = self
            .inner
            .store
            .offers
            .offers_due_by(horizon, usize::MAX)
            .await?
            .into_iter()
            .filter(|o| o.status == OfferStatus::Pending)
            .collect();
        self.inner.offer_index.rebuild(&pending).await?;
        tracing::info!(offers = pending.len(), "expiry index rebuilt from the due-offer index");
        Ok(pending.len())
    }
}

fn expiry_time(expiry: Expiry, now: Timestamp) -> Result<Timestamp> {
    let at = match expiry {
        Expiry::InMinutes(m) if (1..=MAX_OFFER_MINUTES).contains(&m) => {
            time::from_millis(now.timestamp_millis() + m as i64 * 60_000)
        }
        Expiry::InMinutes(_) => {
            return Err(ServiceError::invalid(
                "invalid_expiry",
                format!("expires_in_minutes must be 1 to {MAX_OFFER_MINUTES}"),
            ))
        }
        Expiry::At(at) => at,
    };
    let horizon = now.timestamp_millis() + MAX_OFFER_MINUTES as i64 * 60_000;
    if at <= now || at.timestamp_millis() > horizon {
        return Err(ServiceError::invalid(
            "invalid_expiry",
            "expires_at must be in the future and at most 7 days away",
        ));
    }
    Ok(at)
}
