//! The DynamoDB tables and indexes, in one place. `template.yaml` declares the same ones (a test
//! compares them), the tests and the dev server create them from here.
//!
//! | table | key | indexes | TTL |
//! |---|---|---|---|
//! | products | `id` | `by_feed_live` / `by_feed_new` (feed, rank_live / rank_new), `by_category_live` / `by_category_new` (category, rank_live / rank_new), `by_seller` (seller_id, created_at), `by_gh5` / `by_gh4` / `by_gh3` (geohash cell, rank_new) | |
//!
//! The feed indexes' sort keys are the feeds' ranks, so a page is one query read with `Limit`:
//! `rank_new` = `{created_at}#{id}` (newest first), `rank_live` = `{1|0}#{created_at}#{id}`
//! (the seller live now first, then newest), both read in descending order; `feed` is `all`
//! on every product (one partition for the feeds without a category).
//! | users | `id` | | |
//! | streams | `id` | `by_status` (status, started_at) | |
//! | offers | `id` | `by_due` (due_shard, due_at): sparse, only offers PENDING or EXPIRED-not-yet-announced | `ttl` (a week after expiry) |
//! | jobs | `pk` | | `ttl` (view-sync chunk markers) |

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use crate::model::error::{Result, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexDef {
    pub name: &'static str,
    pub hash: &'static str,
    pub range: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDef {
    /// Logical id of the table in `template.yaml`.
    pub resource: &'static str,
    /// Environment variable holding its name.
    pub env: &'static str,
    /// Name used when the variable is unset (local runs).
    pub default_name: &'static str,
    pub hash: &'static str,
    pub indexes: &'static [IndexDef],
    pub ttl_attribute: Option<&'static str>,
    /// Whether its items are cached: then its change log (a DynamoDB stream of new and old
    /// images) drives invalidation (`jobs::change_log`).
    pub change_log: bool,
}

pub(crate) const PRODUCTS: TableDef = TableDef {
    resource: "ProductsTable",
    env: "PRODUCTS_TABLE",
    default_name: "livecache-products",
    hash: "id",
    indexes: &[
        IndexDef { name: "by_feed_live", hash: "feed", range: "rank_live" },
        IndexDef { name: "by_feed_new", hash: "feed", range: "rank_new" },
        IndexDef { name: "by_category_live", hash: "category", range: "rank_live" },
        IndexDef { name: "by_category_new", hash: "category", range: "rank_new" },
        IndexDef { name: "by_seller", hash: "seller_id", range: "created_at" },
        IndexDef { name: "by_gh5", hash: "gh5", range: "rank_new" },
        IndexDef { name: "by_gh4", hash: "gh4", range: "rank_new" },
        IndexDef { name: "by_gh3", hash: "gh3", range: "rank_new" },
        IndexDef { name: "by_gh5c", hash: "gh5c", range: "rank_new" },
        IndexDef { name: "by_gh4c", hash: "gh4c", range: "rank_new" },
        IndexDef { name: "by_gh3c", hash: "gh3c", range: "rank_new" },
    ],
    ttl_attribute: None,
    change_log: true,
};

pub(crate) const USERS: TableDef = TableDef {
    resource: "UsersTable",
    env: "USERS_TABLE",
    default_name: "livecache-users",
    hash: "id",
    indexes: &[
        IndexDef { name: "by_points", hash: "board", range: "points_rank" },
        IndexDef { name: "by_owner", hash: "owner", range: "recency" },
        IndexDef { name: "by_recent", hash: "recent", range: "recency" },
    ],
    ttl_attribute: None,
    change_log: true,
};

pub(crate) const STREAMS: TableDef = TableDef {
    resource: "StreamsTable",
    env: "STREAMS_TABLE",
    default_name: "livecache-streams",
    hash: "id",
    indexes: &[
        IndexDef { name: "by_status", hash: "status", range: "started_at" },
        IndexDef { name: "by_seller", hash: "seller_id", range: "id" },
    ],
    ttl_attribute: None,
    change_log: true,
};

pub(crate) const OFFERS: TableDef = TableDef {
    resource: "OffersTable",
    env: "OFFERS_TABLE",
    default_name: "livecache-offers",
    hash: "id",
    indexes: &[IndexDef { name: "by_due", hash: "due_shard", range: "due_at" }],
    ttl_attribute: Some("ttl"),
    change_log: false,
};

pub(crate) const JOBS: TableDef = TableDef {
    resource: "JobsTable",
    env: "JOBS_TABLE",
    default_name: "livecache-jobs",
    hash: "pk",
    indexes: &[],
    ttl_attribute: Some("ttl"),
    change_log: false,
};

/// WebSocket connections of the refresh push (expire with their `ttl`).
pub(crate) const CONNECTIONS: TableDef = TableDef {
    resource: "ConnectionsTable",
    env: "CONNECTIONS_TABLE",
    default_name: "livecache-connections",
    hash: "id",
    indexes: &[],
    ttl_attribute: Some("ttl"),
    change_log: false,
};

pub const ALL: [TableDef; 6] = [PRODUCTS, USERS, STREAMS, OFFERS, JOBS, CONNECTIONS];

/// Actual table names, from the environment or given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub products: String,
    pub users: String,
    pub streams: String,
    pub offers: String,
    pub jobs: String,
    pub connections: String,
}

impl TableNames {
    /// Names with a common prefix (tests: one set of tables per run).
    pub fn prefixed(prefix: &str) -> Self {
        let n = |t: &TableDef| format!("{prefix}-{}", t.default_name.trim_start_matches("livecache-"));
        Self {
            products: n(&PRODUCTS),
            users: n(&USERS),
            streams: n(&STREAMS),
            offers: n(&OFFERS),
            jobs: n(&JOBS),
            connections: n(&CONNECTIONS),
        }
    }

    pub fn defaults() -> Self {
        Self::prefixed("livecache")
    }

    /// Reads each table's variable (see [`ALL`]); unset means the default name. An invalid name
    /// is an error naming the variable.
    pub fn from_env() -> Result<Self> {
        let read = |t: &TableDef| -> Result<String> {
            match std::env::var(t.env) {
                Ok(v) if !v.trim().is_empty() => {
                    let v = v.trim().to_string();
                    let ok = (3..=255).contains(&v.len())
                        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                    if ok {
                        Ok(v)
                    } else {
                        Err(StoreError::Config(format!(
                            "{} = {v:?} is not a valid DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)",
                            t.env
                        )))
                    }
                }
                _ => Ok(t.default_name.to_string()),
            }
        };
        Ok(Self {
            products: read(&PRODUCTS)?,
            users: read(&USERS)?,
            streams: read(&STREAMS)?,
            offers: read(&OFFERS)?,
            jobs: read(&JOBS)?,
            connections: read(&CONNECTIONS)?,
        })
    }

    pub(crate) fn name_of(&self, t: &TableDef) -> &str {
        match t.resource {
            "ProductsTable" => &self.products,
            "UsersTable" => &self.users,
            "StreamsTable" => &self.streams,
            "OffersTable" => &self.offers,
            "ConnectionsTable" => &self.connections,
            _ => &self.jobs,
        }
    }
}

fn sdk<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The change log a cached table carries: both images, so a consumer sees what changed.
fn change_log_spec() -> Result<StreamSpecification> {
    StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewAndOldImages)
        .build()
        .map_err(sdk)
}

/// Turns the change log on for an existing table made without it (an older set-up).
async fn enable_change_log(client: &Client, name: &str) -> Result<()> {
    let table = client.describe_table().table_name(name).send().await.map_err(sdk)?;
    if table.table().and_then(|t| t.stream_specification()).is_some_and(|s| s.stream_enabled()) {
        return Ok(());
    }
    client.update_table().table_name(name).stream_specification(change_log_spec()?).send().await.map_err(sdk)?;
    Ok(())
}

/// Creates every table (on-demand capacity, indexes projecting all attributes, TTL, the change
/// log on the cached ones) that does not exist yet; an existing cached table without its change
/// log gets it.
pub async fn create_all(client: &Client, names: &TableNames) -> Result<()> {
    let existing = client.list_tables().send().await.map_err(sdk)?.table_names.unwrap_or_default();
    for def in ALL {
        let name = names.name_of(&def);
        if existing.iter().any(|n| n == name) {
            if def.change_log {
                enable_change_log(client, name).await?;
            }
            continue;
        }
        let mut attrs = vec![def.hash];
        for ix in def.indexes {
            for a in [ix.hash, ix.range] {
                if !attrs.contains(&a) {
                    attrs.push(a);
                }
            }
        }
        let mut req = client.create_table().table_name(name).billing_mode(BillingMode::PayPerRequest).key_schema(
            KeySchemaElement::builder().attribute_name(def.hash).key_type(KeyType::Hash).build().map_err(sdk)?,
        );
        for a in attrs {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(a)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(sdk)?,
            );
        }
        for ix in def.indexes {
            req = req.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(ix.name)
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name(ix.hash)
                            .key_type(KeyType::Hash)
                            .build()
                            .map_err(sdk)?,
                    )
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name(ix.range)
                            .key_type(KeyType::Range)
                            .build()
                            .map_err(sdk)?,
                    )
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()
                    .map_err(sdk)?,
            );
        }
        if def.change_log {
            req = req.stream_specification(change_log_spec()?);
        }
        req.send().await.map_err(sdk)?;
        if let Some(ttl) = def.ttl_attribute {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder().attribute_name(ttl).enabled(true).build().map_err(sdk)?,
                )
                .send()
                .await
                .map_err(sdk)?;
        }
    }
    Ok(())
}

/// Deletes the tables (tests clean up after themselves).
pub async fn drop_all(client: &Client, names: &TableNames) -> Result<()> {
    for def in ALL {
        let _ = client.delete_table().table_name(names.name_of(&def)).send().await;
    }
    Ok(())
}
