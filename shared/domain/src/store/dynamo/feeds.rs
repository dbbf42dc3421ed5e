//! The discover and community feeds from the product indexes.

use super::*;

impl DynamoStore {
    pub(super) async fn discover_impl(&self, q: &DiscoverQuery) -> Result<FeedPage> {
        let need = q.page.end() + 1;
        let live = self.live_sellers().await?;
        let table = &self.tables.products;
        // Products of live sellers rank first under live_first: fetch them by seller.
        let mut candidates: HashMap<String, Product> = HashMap::new();
        if q.sort == FeedSort::LiveFirst {
            let per_seller: Vec<Vec<Item>> =
                futures::stream::iter(live.iter().cloned())
                    .map(|seller| async move {
                        self.query_index(table, "by_seller", "seller_id", &seller, Some(need)).await
                    })
                    .buffer_unordered(8)
                    .try_collect()
                    .await?;
            for p in Self::products_of(per_seller.into_iter().flatten().collect())? {
                if q.category.is_none_or(|c| p.category == c) {
                    candidates.insert(p.id.clone(), p);
                }
            }
        }
        // The newest of each category; over-fetch by the live items already held so that the
        // newest non-live products are all there.
        let categories: Vec<Category> = q.category.map(|c| vec![c]).unwrap_or_else(|| Category::ALL.to_vec());
        let live_in = |c: Category| candidates.values().filter(|p| p.category == c).count();
        let limits: Vec<(Category, usize)> = categories.iter().map(|c| (*c, need + live_in(*c))).collect();
        let per_category: Vec<Vec<Item>> = futures::stream::iter(limits)
            .map(|(c, limit)| self.query_index(table, "by_category", "category", c.as_str(), Some(limit)))
            .buffer_unordered(8)
            .try_collect()
            .await?;
        for p in Self::products_of(per_category.into_iter().flatten().collect())? {
            candidates.insert(p.id.clone(), p);
        }
        Ok(rank_discover(candidates.into_values().collect(), &live, q))
    }

    pub(super) async fn community_impl(&self, q: &CommunityQuery) -> Result<FeedPage> {
        let precision = geo::precision_for(q.radius_km);
        let (index, attr) = if precision == 5 { ("by_gh5", "gh5") } else { ("by_gh4", "gh4") };
        let cells = geo::cells_covering(q.lat, q.lon, q.radius_km, precision);
        let table = &self.tables.products;
        let per_cell: Vec<Vec<Item>> = futures::stream::iter(cells)
            .map(|cell| async move { self.query_index(table, index, attr, &cell, None).await })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        let candidates = Self::products_of(per_cell.into_iter().flatten().collect())?;
        let live = self.live_sellers().await?;
        Ok(rank_community(candidates, &live, q))
    }
}
