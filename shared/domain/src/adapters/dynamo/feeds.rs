//! The discover and community feeds, each page read in ranked order from an index: what a page
//! costs depends on the page, not on how many products exist or how many sellers are live.

use super::*;
use crate::ports::store::PageRequest;
use crate::rules::ranking::CELL_READ_CAP;

/// Where the community read is in one cell.
struct CellCursor {
    cell: String,
    /// Where the next read starts: `Some(None)` from the top, `Some(Some(key))` after `key`,
    /// `None` when the cell is read to its end.
    next: Option<Option<Item>>,
    read: usize,
    /// How many items the next read asks for.
    limit: usize,
}

/// The id of the marker item saying that a cell partition (a `by_gh*` index value) holds
/// products. Markers live in the products table under ids no product can have (`#` is not an id
/// character), carry no index attribute (so no index holds them), and are written before the
/// products they mark; a cell never loses its marker (a marked cell that is empty costs one
/// empty query).
fn marker_id(cell: &str) -> String {
    format!("cell#{cell}")
}

/// The marker items of the cells `products` are in, at every indexed precision, alone and per
/// category, each once.
pub(super) fn cell_markers(products: &[Product]) -> Vec<Item> {
    let mut ids: Vec<String> = products
        .iter()
        .flat_map(|p| {
            product_cells(p).flat_map(|(_, cell, with_category)| [marker_id(&cell), marker_id(&with_category)])
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids.into_iter().map(|id| HashMap::from([("id".to_string(), s(id))])).collect()
}

/// The feed index of a discover query: name, partition attribute and value, sort attribute.
fn discover_index(q: &DiscoverQuery) -> (&'static str, &'static str, &'static str, &'static str) {
    match (q.sort, q.category) {
        (FeedSort::LiveFirst, None) => ("by_feed_live", "feed", FEED_PARTITION, "rank_live"),
        (FeedSort::Newest, None) => ("by_feed_new", "feed", FEED_PARTITION, "rank_new"),
        (FeedSort::LiveFirst, Some(c)) => ("by_category_live", "category", c.as_str(), "rank_live"),
        (FeedSort::Newest, Some(c)) => ("by_category_new", "category", c.as_str(), "rank_new"),
    }
}

impl DynamoStore {
    /// Adds one cell's products that match `q` to `matches`, in rank order, reading the cell a
    /// slice at a time until `need` are found or the cell ends.
    async fn read_cell_matches(
        &self,
        index: &str,
        attr: &str,
        cell: &str,
        q: &CommunityQuery,
        need: usize,
        matches: &mut Vec<(Product, bool)>,
    ) -> Result<()> {
        let mut c =
            CellCursor { cell: cell.to_string(), next: Some(None), read: 0, limit: (need - matches.len()).max(10) };
        let mut in_cell: Vec<(Product, bool)> = Vec::new();
        while matches.len() + in_cell.len() < need {
            let Some(_) = c.next else { break };
            if c.read >= CELL_READ_CAP {
                return Err(StoreError::TooBroad(format!(
                    "more than {CELL_READ_CAP} products of one area would have to be read to fill this page; \
                     narrow the radius or loosen the filters"
                )));
            }
            let (items, next) = self.read_cell(index, attr, &c).await?;
            c.read += items.len();
            c.next = next;
            in_cell.extend(items.into_iter().filter(|(p, _)| community_match(p, q)));
            let missing = need.saturating_sub(matches.len() + in_cell.len());
            let rate = (in_cell.len().max(1) as f64) / (c.read.max(1) as f64);
            // At least twice the last read: at most 8 reads a cell, from 10 to the cap.
            let estimate = (missing as f64 / rate * 1.25) as usize + 1;
            c.limit = estimate.max(c.limit * 2).min(CELL_READ_CAP.saturating_sub(c.read).max(1));
        }
        // A cell's products in rank order (the index's order is newest first).
        in_cell.sort_by(|(a, _), (b, _)| newest_first(a, b));
        matches.extend(in_cell);
        Ok(())
    }

    /// The next slice of one cell, newest first, and where the one after starts (None: done).
    async fn read_cell(
        &self,
        index: &str,
        attr: &str,
        c: &CellCursor,
    ) -> Result<(Vec<(Product, bool)>, Option<Option<Item>>)> {
        let start = c.next.clone().flatten();
        let (items, next) =
            self.query_index_from(&self.tables.products, index, attr, &c.cell, Some(c.limit), start).await?;
        Ok((Self::feed_products(items)?, next.map(Some)))
    }

    /// Products of feed-index items, each with whether its seller is live (from `rank_live`).
    fn feed_products(items: Vec<Item>) -> Result<Vec<(Product, bool)>> {
        items
            .into_iter()
            .map(|item| {
                let live = item.get("rank_live").and_then(|v| v.as_s().ok()).is_some_and(|r| r.starts_with("1#"));
                Ok((from_item(item)?, live))
            })
            .collect()
    }

    /// Writes the seller's live state into the feed rank of each of their products (after a
    /// go-live or an end; a bounded write fan-out on a rare event instead of a read fan-out on
    /// every feed miss). A product deleted meanwhile is not recreated.
    pub(super) async fn rerank_seller(&self, seller: &str, live: bool) -> Result<usize> {
        let table = &self.tables.products;
        let products = Self::products_of(self.query_index(table, "by_seller", "seller_id", seller, None).await?)?;
        let n = products.len();
        futures::stream::iter(products)
            .map(|p| async move {
                let result = self
                    .client
                    .update_item()
                    .table_name(table)
                    .key("id", s(&p.id))
                    .update_expression("SET rank_live = :r")
                    .condition_expression("attribute_exists(id)")
                    .expression_attribute_values(":r", s(rank_live(&p, live)))
                    .send()
                    .await;
                unless_condition_failed(result)
            })
            .buffer_unordered(8)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(n)
    }
}

#[async_trait]
impl FeedStore for DynamoStore {
    /// One query on the feed index whose sort key is the page's rank, with `Limit` = the items
    /// up to the end of the page, plus one (to know whether more follow).
    async fn discover(&self, q: &DiscoverQuery) -> Result<FeedPage> {
        let (index, attr, value, _) = discover_index(q);
        let items = self.query_index(&self.tables.products, index, attr, value, Some(q.page.end() + 1)).await?;
        let ranked = Self::feed_products(items)?;
        Ok(page_of(ranked.into_iter().map(|(p, live)| FeedItem::from_product(&p, live, None)), q.page))
    }

    /// The page after `after`: one query starting below its rank (`ExclusiveStartKey`), with
    /// `Limit` = a page plus one, however deep.
    async fn discover_after(&self, q: &DiscoverQuery, after: &FeedItem) -> Result<FeedPage> {
        let (index, attr, value, range) = discover_index(q);
        let start: Item = [
            ("id".to_string(), s(&after.id)),
            (attr.to_string(), s(value)),
            (range.to_string(), s(item_rank(after, q.sort))),
        ]
        .into_iter()
        .collect();
        let page = PageRequest { page: 1, ..q.page };
        let table = &self.tables.products;
        let (items, _) = self.query_index_from(table, index, attr, value, Some(page.end() + 1), Some(start)).await?;
        let ranked = Self::feed_products(items)?;
        Ok(page_of(ranked.into_iter().map(|(p, live)| FeedItem::from_product(&p, live, None)), page))
    }

    /// The covering cells (with a category: those cells' products of that category) at the
    /// finest indexed precision that needs at most
    /// [`MAX_CELLS`](crate::rules::geo::MAX_CELLS) of them, nearest first, each read newest first
    /// until the page is full: a page from a dense area is one query of about a page (divided
    /// by the share of products that match the filters), however much data there is. A cell
    /// is read a slice at a time, each asking for what is missing at the match rate seen so
    /// far (at least twice the slice before); never more than [`CELL_READ_CAP`] items a cell.
    /// Past the nearest cell, only cells whose marker says they hold products are queried.
    async fn community(&self, q: &CommunityQuery) -> Result<FeedPage> {
        let (precision, cells) = geo::plan_cells(q.lat, q.lon, q.radius_km).map_err(StoreError::TooBroad)?;
        // With a category, the cells split by category: only that category's products are read.
        let (index, attr) = match (precision, q.category.is_some()) {
            (5, false) => ("by_gh5", "gh5"),
            (4, false) => ("by_gh4", "gh4"),
            (_, false) => ("by_gh3", "gh3"),
            (5, true) => ("by_gh5c", "gh5c"),
            (4, true) => ("by_gh4c", "gh4c"),
            (_, true) => ("by_gh3c", "gh3c"),
        };
        let cells: Vec<String> = cells
            .into_iter()
            .map(|cell| match q.category {
                Some(category) => category_cell(&cell, category),
                None => cell,
            })
            .collect();
        let need = q.page.end() + 1;
        let mut matches: Vec<(Product, bool)> = Vec::new();
        if let Some((nearest, others)) = cells.split_first() {
            self.read_cell_matches(index, attr, nearest, q, need, &mut matches).await?;
            if matches.len() < need && !others.is_empty() {
                // The nearest cell did not fill the page: one read of the other cells'
                // markers, and only the cells that hold products are queried (an empty area
                // costs 2 calls, not one per cell).
                let markers: Vec<String> = others.iter().map(|c| marker_id(c)).collect();
                let held = self.batch_get_items(&self.tables.products, &markers, false, Some("id")).await?;
                for (cell, marker) in others.iter().zip(&markers) {
                    if held.contains_key(marker) {
                        self.read_cell_matches(index, attr, cell, q, need, &mut matches).await?;
                        if matches.len() >= need {
                            break;
                        }
                    }
                }
            }
        }
        Ok(page_of(
            matches.into_iter().map(|(p, live)| {
                let d = geo::distance_km(q.lat, q.lon, p.lat, p.lon);
                FeedItem::from_product(&p, live, Some(d))
            }),
            q.page,
        ))
    }
}
