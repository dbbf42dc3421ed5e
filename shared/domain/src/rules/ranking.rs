//! Feed ranking (filters, order, pages), the same for both store adapters: the DynamoDB
//! adapter reads pages in this order from indexes whose sort keys are the ranks
//! (`rank_live`, `rank_new`); the memory adapter ranks everything it holds.

use std::collections::HashSet;

use super::geo;
use crate::model::market::{FeedItem, Product};
use crate::model::time::{self, Timestamp};
use crate::ports::store::{CommunityQuery, DiscoverQuery, FeedPage, FeedSort, PageRequest};

/// Most products read from one geohash cell for one community page; a page that would need
/// more is refused ([`StoreError::TooBroad`](crate::StoreError::TooBroad)) rather than read without bound.
pub const CELL_READ_CAP: usize = 1_000;

/// The newest-first sort key of a product: `{created_at}#{id}` (ms precision, fixed width,
/// so text order is time order).
pub(crate) fn rank_new(p: &Product) -> String {
    rank_new_of(&p.created_at, &p.id)
}

fn rank_new_of(created_at: &Timestamp, id: &str) -> String {
    format!("{}#{id}", time::format(&time::from_millis(created_at.timestamp_millis())))
}

/// The live-first sort key: `1#` (seller live now) or `0#`, then [`rank_new`].
pub(crate) fn rank_live(p: &Product, seller_live: bool) -> String {
    rank_live_of(&p.created_at, &p.id, seller_live)
}

fn rank_live_of(created_at: &Timestamp, id: &str, seller_live: bool) -> String {
    format!("{}#{}", if seller_live { 1 } else { 0 }, rank_new_of(created_at, id))
}

/// A served feed item's sort key in `sort`'s ranking (what a page after it starts below).
pub(crate) fn item_rank(item: &FeedItem, sort: FeedSort) -> String {
    match sort {
        FeedSort::LiveFirst => rank_live_of(&item.created_at, &item.id, item.seller_live),
        FeedSort::Newest => rank_new_of(&item.created_at, &item.id),
    }
}

/// [`rank_discover`] of the products that rank after `after` (the page that follows it).
pub(crate) fn rank_discover_after(
    candidates: Vec<Product>,
    live_sellers: &HashSet<String>,
    q: &DiscoverQuery,
    after: &FeedItem,
) -> FeedPage {
    let bound = item_rank(after, q.sort);
    let key = |p: &Product| match q.sort {
        FeedSort::LiveFirst => rank_live(p, live_sellers.contains(&p.seller_id)),
        FeedSort::Newest => rank_new(p),
    };
    let rest: Vec<Product> = candidates.into_iter().filter(|p| key(p) < bound).collect();
    rank_discover(rest, live_sellers, &DiscoverQuery { page: PageRequest { page: 1, ..q.page }, ..q.clone() })
}

/// Newest first (ms), then the higher id: the order of [`rank_new`] read descending.
pub(crate) fn newest_first(a: &Product, b: &Product) -> std::cmp::Ordering {
    b.created_at.timestamp_millis().cmp(&a.created_at.timestamp_millis()).then(b.id.cmp(&a.id))
}

/// Whether a product passes a community query's filters and lies within its radius.
pub(crate) fn community_match(p: &Product, q: &CommunityQuery) -> bool {
    q.category.is_none_or(|c| p.category == c)
        && q.condition.is_none_or(|c| p.condition == c)
        && q.min_price.is_none_or(|m| p.price >= m)
        && q.max_price.is_none_or(|m| p.price <= m)
        && geo::distance_km(q.lat, q.lon, p.lat, p.lon) <= q.radius_km
}

/// Ranks products into a discover page: live sellers first (for `live_first`), then
/// `newest_first`.
pub fn rank_discover(candidates: Vec<Product>, live_sellers: &HashSet<String>, q: &DiscoverQuery) -> FeedPage {
    let mut items: Vec<Product> =
        candidates.into_iter().filter(|p| q.category.is_none_or(|c| p.category == c)).collect();
    items.sort_by(|a, b| {
        let live = |p: &Product| live_sellers.contains(&p.seller_id);
        let first = match q.sort {
            FeedSort::LiveFirst => live(b).cmp(&live(a)),
            FeedSort::Newest => std::cmp::Ordering::Equal,
        };
        first.then(newest_first(a, b))
    });
    page_of(items.into_iter().map(|p| FeedItem::from_product(&p, live_sellers.contains(&p.seller_id), None)), q.page)
}

/// Ranks products into a community page: those within the radius that pass the filters, by
/// area — the covering cells of [`geo::plan_cells`], the point's own first, then by distance —
/// then `newest_first` within an area (each item with its exact distance). Empty when the
/// area cannot be planned (the adapters refuse such a query).
pub fn rank_community(candidates: Vec<Product>, live_sellers: &HashSet<String>, q: &CommunityQuery) -> FeedPage {
    let Ok((precision, cells)) = geo::plan_cells(q.lat, q.lon, q.radius_km) else {
        return FeedPage { items: Vec::new(), has_more: false };
    };
    let area = |p: &Product| {
        let cell = geo::geohash(p.lat, p.lon, precision);
        cells.iter().position(|c| *c == cell).unwrap_or(usize::MAX)
    };
    let mut items: Vec<(usize, Product)> =
        candidates.into_iter().filter(|p| community_match(p, q)).map(|p| (area(&p), p)).collect();
    items.sort_by(|(ca, a), (cb, b)| ca.cmp(cb).then(newest_first(a, b)));
    page_of(
        items.into_iter().map(|(_, p)| {
            let d = geo::distance_km(q.lat, q.lon, p.lat, p.lon);
            FeedItem::from_product(&p, live_sellers.contains(&p.seller_id), Some(d))
        }),
        q.page,
    )
}

pub(crate) fn page_of(ranked: impl Iterator<Item = FeedItem>, page: PageRequest) -> FeedPage {
    let mut items: Vec<FeedItem> = ranked.skip(page.offset()).take(page.per_page as usize + 1).collect();
    let has_more = items.len() > page.per_page as usize;
    items.truncate(page.per_page as usize);
    FeedPage { items, has_more }
}
