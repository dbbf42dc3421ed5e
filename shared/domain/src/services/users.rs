//! Users: profiles (public, full, batch cards), profile updates, badges and their awarding,
//! the leaderboard and the latest badges.
//!
//! Everything cached about one user lives in that user's own namespace (`user.{id}`), so an
//! update invalidates all of it in one O(1) step: the namespace's generation moves on, and a
//! load that started before cannot store what it read (its lease carries the old
//! generation). A user's badges live in `achievements`, the leaderboard in `leaderboard`;
//! an award moves both on, and the user's namespace (profiles show points).

use super::products::raw_all;
use super::*;
use crate::model::users::{Badge, BadgeCode, Preferences, ProfilePatch, PublicUser, SellerFigures};

/// Anybody's view of a user: the card and the seller's figures.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PublicProfile {
    #[serde(flatten)]
    pub user: PublicUser,
    pub figures: SellerFigures,
}

/// The signed-in user's own profile: the public one and the preferences.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FullProfile {
    #[serde(flatten)]
    pub profile: PublicProfile,
    pub preferences: Preferences,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct AchievementsSummary {
    pub count: usize,
    pub points: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest: Option<Badge>,
}

/// A user's badges, newest first, and their summary.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Achievements {
    pub user_id: String,
    pub badges: Vec<Badge>,
    pub summary: AchievementsSummary,
}

/// One row of the leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LeaderEntry {
    /// 1 for the first.
    pub rank: usize,
    pub user_id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    pub points: u64,
    pub badges: u32,
}

/// What [`Marketplace::warm_users`] loaded.
#[derive(Debug, Clone, Serialize)]
pub struct UsersWarmed {
    pub leaderboard: WarmReport,
    pub profiles: WarmReport,
}

fn user_not_found(id: &str) -> ServiceError {
    ServiceError::NotFound { code: "user_not_found", message: format!("user {id} not found") }
}

impl Marketplace {
    /// Users by id as cards (no preferences), like [`batch_products`](Self::batch_products):
    /// one MGET (each user's generation and card), one BatchGetItem for the misses.
    pub async fn batch_users(&self, ids: &[String]) -> Result<BatchAnswer> {
        let store = self.inner.store.users.clone();
        let policy = profile_policy(self.inner.user_ttls.profile);
        self.batch(
            ids,
            |c, id| user_key(c, id, "card"),
            &policy,
            move |wanted: Vec<String>| async move {
                let found = store.get_users(&wanted).await?;
                raw_all(found.iter().map(|u| u.as_ref().map(PublicUser::from)).collect())
            },
        )
        .await
    }

    /// A user's public profile (card and seller figures).
    pub async fn user_profile(&self, id: &Id) -> Result<Cached<PublicProfile>> {
        let key = user_key(&self.inner.cache, id, "profile")?;
        let policy = profile_policy(self.inner.user_ttls.profile);
        self.user_view(id, key, policy, |store, id| async move { load_profile(&*store, &id).await }).await
    }

    /// The signed-in user's full profile (with preferences), cached per user.
    pub async fn my_profile(&self, caller: &Id) -> Result<Cached<FullProfile>> {
        let key = user_key(&self.inner.cache, caller, "me")?;
        let policy = profile_policy(self.inner.user_ttls.profile);
        self.user_view(caller, key, policy, |store, id| async move { load_full(&*store, &id).await }).await
    }

    /// One cached view of user `id` under `key`, loaded by `load` (None: no such user, 404).
    async fn user_view<T, F, Fut>(
        &self,
        id: &Id,
        key: livecache_cache::Key,
        policy: livecache_cache::Policy,
        load: F,
    ) -> Result<Cached<T>>
    where
        T: Serialize + serde::de::DeserializeOwned + Send + 'static,
        F: FnOnce(Arc<dyn UserStore>, String) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Option<T>, StoreError>> + Send + 'static,
    {
        let (store, owned) = (self.inner.store.users.clone(), id.to_string());
        let found = self.inner.cache.get_or_load(&key, &policy, move || load(store, owned)).await?;
        let value = found.value.ok_or_else(|| user_not_found(id))?;
        Ok(Cached::from_lookup(value, found.source))
    }

    /// Changes the caller's profile or preferences (validated; an empty change is refused).
    /// Before it answers, everything cached about the caller is invalidated (one O(1) step),
    /// so no read after it (single, full, batch) serves the old profile. When Redis fails
    /// after the write, it is acknowledged all the same and invalidated once Redis answers
    /// (`invalidate_after_write`): a client's retry must not be
    /// refused, nor served the old profile for long.
    pub async fn update_my_profile(&self, caller: &Id, patch: &ProfilePatch) -> Result<FullProfile> {
        if patch.is_empty() {
            return Err(ServiceError::invalid("invalid_body", "give at least one field to change"));
        }
        let user = self.inner.store.users.get_user(caller).await?.ok_or_else(|| user_not_found(caller))?;
        let updated = patch.apply(&user).map_err(|e| ServiceError::invalid("invalid_profile", e.to_string()))?;
        if !self.inner.store.users.save_profile(&updated).await? {
            return Err(user_not_found(caller));
        }
        // Leaderboard pages carry names and avatars; only users holding points are on them. A
        // profile change is rare; a leaderboard hit stays one read.
        let on_board = updated.points > 0 && (updated.name != user.name || updated.avatar != user.avatar);
        let mut stale = vec![Stale::User(caller.to_string())];
        if on_board {
            stale.push(Stale::Namespace(NS_LEADERBOARD));
        }
        self.invalidate_after_write("profile", stale).await;
        let figures = self.inner.store.users.seller_figures(caller).await?;
        Ok(full_profile(updated, figures))
    }

    /// Invalidates everything cached about user `id`: its namespace (profiles, card) and its
    /// badges. Returns the namespace's new generation.
    pub(crate) async fn invalidate_user_data(&self, id: &str) -> Result<u64> {
        let cache = &self.inner.cache;
        let generation = cache.invalidate_namespace(&user_namespace(id)).await?;
        cache.invalidate(&achievements_key(cache, id)?).await?;
        Ok(generation)
    }

    /// A user's badges and their summary.
    pub async fn achievements(&self, id: &Id) -> Result<Cached<Achievements>> {
        let key = achievements_key(&self.inner.cache, id)?;
        let policy = board_policy(self.inner.user_ttls.achievements);
        self.user_view(id, key, policy, |store, id| async move {
            let Some(user) = store.get_user(&id).await? else { return Ok(None) };
            let badges = store.badges_of(&id).await?;
            let summary =
                AchievementsSummary { count: badges.len(), points: user.points, latest: badges.first().cloned() };
            Ok(Some(Achievements { user_id: id, badges, summary }))
        })
        .await
    }

    /// Sellers by points, from `offset` (0-based), at most `limit`.
    pub async fn leaderboard(&self, offset: usize, limit: usize) -> Result<Cached<Vec<LeaderEntry>>> {
        let key = leaderboard_key(&self.inner.cache, offset, limit)?;
        let store = self.inner.store.users.clone();
        let policy = board_policy(self.inner.user_ttls.leaderboard);
        let found = self
            .inner
            .cache
            .get_or_load(&key, &policy, move || async move { load_board(&*store, offset, limit).await })
            .await?;
        Ok(Cached::from_lookup(found.value, found.source))
    }

    /// The latest badges across the marketplace, at most `limit`.
    pub async fn recent_achievements(&self, limit: usize) -> Result<Cached<Vec<Badge>>> {
        let key = recent_badges_key(&self.inner.cache, limit)?;
        let store = self.inner.store.users.clone();
        let policy = board_policy(self.inner.user_ttls.recent);
        let found = self
            .inner
            .cache
            .get_or_load(&key, &policy, move || async move { store.recent_badges(limit).await })
            .await?;
        Ok(Cached::from_lookup(found.value, found.source))
    }

    /// Admin: everything cached about one user.
    pub async fn invalidate_user(&self, id: &Id) -> Result<Invalidated> {
        let generation = self.invalidate_user_data(id).await?;
        Ok(Invalidated::User { user: id.into(), generation })
    }

    /// Admin: loads the first `pages` leaderboard pages (20 rows each) and the public profiles
    /// of up to `sellers` top sellers — those of the most viewed live streams first, then the
    /// leaderboard's — that are not cached.
    pub async fn warm_users(&self, pages: u32, sellers: usize) -> Result<UsersWarmed> {
        let cache = &self.inner.cache;
        let ttls = self.inner.user_ttls;
        let mut boards = Vec::new();
        for page in 0..pages as usize {
            let store = self.inner.store.users.clone();
            let key = leaderboard_key(cache, page * 20, 20)?;
            boards.push((key, async move { load_board(&*store, page * 20, 20).await }));
        }
        let leaderboard = cache.warm(boards, &board_policy(ttls.leaderboard)).await;
        let mut live = self.inner.store.streams.live_streams().await?;
        live.sort_by_key(|s| std::cmp::Reverse(s.view_count));
        let top = self.inner.store.users.leaderboard(0, sellers).await?;
        let mut ids: Vec<String> = Vec::new();
        for id in live.into_iter().map(|s| s.seller_id).chain(top.into_iter().map(|u| u.id)) {
            if ids.len() < sellers && !ids.contains(&id) {
                ids.push(id);
            }
        }
        let mut profiles = Vec::new();
        for id in ids {
            let store = self.inner.store.users.clone();
            let key = user_key(cache, &id, "profile")?;
            profiles.push((key, async move { load_profile(&*store, &id).await }));
        }
        let profiles = cache.warm(profiles, &profile_policy(ttls.profile)).await;
        Ok(UsersWarmed { leaderboard, profiles })
    }

    /// Awards seller `id` every badge its figures earn that it does not hold yet; each at most
    /// once however many times (or how concurrently) this runs. When any was awarded, that
    /// user's data, the badges and the leaderboard are invalidated. The badges awarded now.
    pub async fn award_badges(&self, id: &Id) -> Result<Vec<Badge>> {
        let store = &self.inner.store.users;
        let figures = store.seller_figures(id).await?;
        let held: Vec<BadgeCode> = store.badges_of(id).await?.into_iter().map(|b| b.code).collect();
        let now = time::now();
        let mut awarded = Vec::new();
        for code in BadgeCode::ALL.iter().filter(|c| c.earned(&figures) && !held.contains(c)) {
            let badge = Badge::new(id, *code, now);
            if store.award_badge(&badge).await? {
                awarded.push(badge);
            }
        }
        if !awarded.is_empty() {
            self.invalidate_user_data(id).await?;
            for ns in [NS_ACHIEVEMENTS, NS_LEADERBOARD] {
                self.inner.cache.invalidate_namespace(ns).await?;
            }
        }
        Ok(awarded)
    }
}

/// Leaderboard rows from `offset`, ranked from 1.
async fn load_board(store: &dyn UserStore, offset: usize, limit: usize) -> Result<Vec<LeaderEntry>, StoreError> {
    let users = store.leaderboard(offset, limit).await?;
    let rows = users.into_iter().enumerate().map(|(i, u)| LeaderEntry {
        rank: offset + i + 1,
        user_id: u.id,
        name: u.name,
        avatar: u.avatar,
        points: u.points,
        badges: u.badges,
    });
    Ok(rows.collect())
}

fn full_profile(user: crate::model::market::User, figures: SellerFigures) -> FullProfile {
    FullProfile { profile: PublicProfile { user: PublicUser::from(&user), figures }, preferences: user.preferences }
}

/// A user and their figures (two index queries besides the user's item).
async fn load_full(store: &dyn UserStore, id: &str) -> Result<Option<FullProfile>, StoreError> {
    let Some(user) = store.get_user(id).await? else { return Ok(None) };
    let figures = store.seller_figures(id).await?;
    Ok(Some(full_profile(user, figures)))
}

async fn load_profile(store: &dyn UserStore, id: &str) -> Result<Option<PublicProfile>, StoreError> {
    Ok(load_full(store, id).await?.map(|full| full.profile))
}
