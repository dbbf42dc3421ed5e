//! Users: batch reads (one MGET, one BatchGetItem for the misses).

use super::products::raw_all;
use super::*;

impl Marketplace {
    /// Users by id, like [`batch_products`](Self::batch_products).
    pub async fn batch_users(&self, ids: &[String]) -> Result<BatchAnswer> {
        let store = self.inner.store.clone();
        self.batch(ids, NS_USERS, &user_policy(), move |wanted: Vec<String>| async move {
            raw_all(store.get_users(&wanted).await?)
        })
        .await
    }
}
