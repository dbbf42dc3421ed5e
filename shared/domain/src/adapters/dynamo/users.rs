//! Users' profiles, figures, badges and the leaderboard. Badges are items of the users table
//! (`id` = `badge#{user}#{code}`), read per user (`by_owner`) and across the marketplace
//! (`by_recent`), both sorted by [`Badge::recency`]; a user holding points carries
//! `board` and `points_rank`, the sort key of `by_points` (the leaderboard, one query with
//! `Limit`).

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;

use super::*;
use crate::model::users::{points_rank, Badge, SellerFigures};

/// The partition of the leaderboard index and of the recent-badges index.
const BOARD: &str = "sellers";
const RECENT: &str = "all";

fn badge_id(b: &Badge) -> String {
    format!("badge#{}#{}", b.user_id, b.code)
}

impl DynamoStore {
    /// Sets `points_rank` from the points the user holds now, unless they changed meanwhile
    /// (another award: then from those).
    async fn rerank_user(&self, id: &str) -> Result<()> {
        for attempt in 0..MAX_ATTEMPTS {
            let Some(user) = self.get::<User>(&self.tables.users, id).await? else { return Ok(()) };
            let result = self
                .client
                .update_item()
                .table_name(&self.tables.users)
                .key("id", s(id))
                .update_expression("SET points_rank = :rank")
                .condition_expression("points = :p")
                .expression_attribute_values(":rank", s(points_rank(user.points, id)))
                .expression_attribute_values(":p", n(user.points))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) if is_conditional_failure(&e) => backoff(attempt).await,
                Err(e) => return Err(sdk_error(e)),
            }
        }
        Err(StoreError::Backend(format!("leaderboard rank of {id} not set after {MAX_ATTEMPTS} attempts")))
    }
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn get_user(&self, id: &str) -> Result<Option<User>> {
        self.get(&self.tables.users, id).await
    }

    async fn get_users(&self, ids: &[String]) -> Result<Vec<Option<User>>> {
        self.batch_get(&self.tables.users, ids).await
    }

    async fn put_users(&self, items: &[User]) -> Result<()> {
        let items = items.iter().map(to_item).collect::<Result<Vec<_>>>()?;
        self.batch_put(&self.tables.users, items).await
    }

    async fn save_profile(&self, user: &User) -> Result<bool> {
        let prefs =
            serde_dynamo::to_attribute_value(&user.preferences).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut set = vec!["#name = :name", "preferences = :prefs"];
        let mut remove = Vec::new();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.tables.users)
            .key("id", s(&user.id))
            .condition_expression("attribute_exists(id)")
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":name", s(&user.name))
            .expression_attribute_values(":prefs", prefs);
        for (attr, value) in [("avatar", &user.avatar), ("bio", &user.bio), ("city", &user.city)] {
            match value {
                Some(v) => {
                    set.push(match attr {
                        "avatar" => "avatar = :avatar",
                        "bio" => "bio = :bio",
                        _ => "city = :city",
                    });
                    update = update.expression_attribute_values(format!(":{attr}"), s(v));
                }
                None => remove.push(attr),
            }
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        condition_held(update.update_expression(expression).send().await)
    }

    async fn seller_figures(&self, user: &str) -> Result<SellerFigures> {
        let products = self.query_index(&self.tables.products, "by_seller", "seller_id", user, None).await?;
        let total_views =
            products.iter().map(|p| from_item::<Product>(p.clone()).map(|p| p.view_count)).sum::<Result<i64>>()?;
        let streams = self.query_index(&self.tables.streams, "by_seller", "seller_id", user, None).await?;
        let mut streams_hosted = 0;
        for item in streams {
            if from_item::<Stream>(item)?.status != StreamStatus::Scheduled {
                streams_hosted += 1;
            }
        }
        Ok(SellerFigures { products_listed: products.len() as u64, streams_hosted, total_views })
    }

    /// One transaction: the badge's item (only if absent) and the user's points; then the
    /// user's leaderboard rank is set from the points it now holds.
    async fn award_badge(&self, badge: &Badge) -> Result<bool> {
        let mut item = to_item(badge)?;
        item.insert("id".into(), s(badge_id(badge)));
        item.insert("owner".into(), s(&badge.user_id));
        item.insert("recent".into(), s(RECENT));
        item.insert("recency".into(), s(badge.recency()));
        let put = Put::builder()
            .table_name(&self.tables.users)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(id)")
            .build()
            .map_err(sdk_error)?;
        let points = Update::builder()
            .table_name(&self.tables.users)
            .key("id", s(&badge.user_id))
            .update_expression("SET board = :board ADD points :p, badges :one")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":board", s(BOARD))
            .expression_attribute_values(":p", n(badge.points))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(sdk_error)?;
        let items =
            vec![TransactWriteItem::builder().put(put).build(), TransactWriteItem::builder().update(points).build()];
        for attempt in 0..MAX_ATTEMPTS {
            match self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await {
                Ok(_) => {
                    self.rerank_user(&badge.user_id).await?;
                    return Ok(true);
                }
                Err(e) => {
                    let reasons: Vec<Option<String>> = match e.as_service_error() {
                        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                            c.cancellation_reasons().iter().map(|r| r.code().map(str::to_string)).collect()
                        }
                        _ => return Err(sdk_error(e)),
                    };
                    let failed = |i: usize| reasons.get(i).and_then(|r| r.as_deref()) == Some("ConditionalCheckFailed");
                    if failed(0) {
                        return Ok(false);
                    }
                    if failed(1) {
                        return Err(StoreError::NotFound { kind: "user", id: badge.user_id.clone() });
                    }
                    // A conflict with another transaction on the same user: again.
                    backoff(attempt).await;
                }
            }
        }
        Err(StoreError::Backend(format!("badge {} not awarded after {MAX_ATTEMPTS} attempts", badge_id(badge))))
    }

    async fn badges_of(&self, user: &str) -> Result<Vec<Badge>> {
        let items = self.query_index(&self.tables.users, "by_owner", "owner", user, None).await?;
        items.into_iter().map(from_item).collect()
    }

    async fn recent_badges(&self, limit: usize) -> Result<Vec<Badge>> {
        let items = self.query_index(&self.tables.users, "by_recent", "recent", RECENT, Some(limit)).await?;
        items.into_iter().take(limit).map(from_item).collect()
    }

    async fn leaderboard(&self, offset: usize, limit: usize) -> Result<Vec<User>> {
        let items = self.query_index(&self.tables.users, "by_points", "board", BOARD, Some(offset + limit)).await?;
        items.into_iter().skip(offset).take(limit).map(from_item).collect()
    }
}
