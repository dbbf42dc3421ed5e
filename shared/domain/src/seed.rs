//! Demo data: a realistic, deterministic data set for the dev server, the tests and the
//! benchmarks — 5,000 products over every category and 8 cities, 500 users, 100 streams (20
//! live), 1,000 pending offers of which 100 are already due.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::model::error::Result;
use crate::model::market::{Category, Condition, Offer, OfferStatus, Product, Stream, StreamStatus, User};
use crate::model::time::{self, Timestamp};
use crate::model::users::{Accessibility, Badge, BadgeCode, Notifications, Preferences, SellerFigures, LANGUAGES};
use crate::ports::store::Store;

/// Cities products and users are spread around (name, lat, lon).
pub const CITIES: [(&str, f64, f64); 8] = [
    ("Berlin", 52.520, 13.405),
    ("Paris", 48.857, 2.352),
    ("London", 51.507, -0.128),
    ("Madrid", 40.417, -3.704),
    ("Rome", 41.903, 12.496),
    ("Amsterdam", 52.370, 4.895),
    ("Vienna", 48.208, 16.373),
    ("Warsaw", 52.230, 21.012),
];

#[derive(Debug, Clone, Copy)]
pub struct SeedSize {
    pub products: usize,
    pub users: usize,
    pub streams: usize,
    pub live_streams: usize,
    pub offers: usize,
    pub due_offers: usize,
}

impl SeedSize {
    pub const DEMO: SeedSize =
        SeedSize { products: 5000, users: 500, streams: 100, live_streams: 20, offers: 1000, due_offers: 100 };
    pub const SMALL: SeedSize =
        SeedSize { products: 300, users: 50, streams: 20, live_streams: 5, offers: 60, due_offers: 10 };
}

#[derive(Debug, Clone)]
pub struct DemoData {
    pub products: Vec<Product>,
    pub users: Vec<User>,
    pub streams: Vec<Stream>,
    pub offers: Vec<Offer>,
    /// Badges some sellers start with (their figures earn them).
    pub badges: Vec<Badge>,
}

pub fn user_id(i: usize) -> String {
    format!("user-{i:04}")
}

pub fn product_id(i: usize) -> String {
    format!("prod-{i:05}")
}

pub fn stream_id(i: usize) -> String {
    format!("stream-{i:03}")
}

pub fn offer_id(i: usize) -> String {
    format!("offer-{i:05}")
}

const ADJECTIVES: [&str; 10] =
    ["Vintage", "Handmade", "Rare", "Classic", "Compact", "Signed", "Retro", "Limited", "Mint", "Custom"];
const NOUNS: [(&str, Category); 16] = [
    ("denim jacket", Category::Fashion),
    ("sneakers", Category::Fashion),
    ("film camera", Category::Electronics),
    ("headphones", Category::Electronics),
    ("ceramic vase", Category::Home),
    ("desk lamp", Category::Home),
    ("trading cards", Category::Collectibles),
    ("vinyl record", Category::Collectibles),
    ("road bike", Category::Sports),
    ("tennis racket", Category::Sports),
    ("perfume", Category::Beauty),
    ("skincare set", Category::Beauty),
    ("first edition", Category::Books),
    ("comic bundle", Category::Books),
    ("building set", Category::Toys),
    ("board game", Category::Toys),
];

/// Builds the data set relative to `now` (deterministic for a given size and `now`).
pub fn generate(size: SeedSize, now: Timestamp) -> DemoData {
    let mut rng = StdRng::seed_from_u64(0x11fe_cace);
    let now_ms = now.timestamp_millis();
    let users: Vec<User> = (0..size.users)
        .map(|i| {
            let city = CITIES[i % CITIES.len()].0;
            User {
                id: user_id(i),
                name: format!("Seller {i}"),
                avatar: Some(format!("https://img.livecache.dev/u/{i:04}.jpg")),
                bio: Some(format!("Collector and seller from {city}.")),
                city: Some(city.into()),
                created_at: time::from_millis(now_ms - rng.random_range(30..700) * 86_400_000),
                preferences: Preferences {
                    language: LANGUAGES[i % LANGUAGES.len()].into(),
                    notifications: Notifications { live_alerts: i % 3 != 0, offers: true, email_digest: i % 4 == 0 },
                    interests: vec![NOUNS[i % NOUNS.len()].1, NOUNS[(i * 7 + 3) % NOUNS.len()].1],
                    accessibility: Accessibility {
                        reduced_motion: i % 9 == 0,
                        high_contrast: i % 11 == 0,
                        captions: i % 5 == 0,
                    },
                },
                points: 0,
                badges: 0,
            }
        })
        .collect();
    let streams: Vec<Stream> = (0..size.streams)
        .map(|i| {
            let status = if i < size.live_streams {
                StreamStatus::Live
            } else if i < size.streams * 7 / 10 {
                StreamStatus::Scheduled
            } else {
                StreamStatus::Ended
            };
            let started = now_ms - rng.random_range(1..180) * 60_000;
            Stream {
                id: stream_id(i),
                // Stream i belongs to seller i (so live sellers are the first users).
                seller_id: user_id(i % size.users),
                title: format!("Live drop #{i}"),
                status,
                started_at: (status != StreamStatus::Scheduled).then(|| time::from_millis(started)),
                ended_at: (status == StreamStatus::Ended).then(|| time::from_millis(started + 45 * 60_000)),
                view_count: if status == StreamStatus::Scheduled { 0 } else { rng.random_range(10..5000) },
            }
        })
        .collect();
    let products: Vec<Product> = (0..size.products)
        .map(|i| {
            let seller = rng.random_range(0..size.users);
            let (_, lat, lon) = CITIES[rng.random_range(0..CITIES.len())];
            let (noun, category) = NOUNS[rng.random_range(0..NOUNS.len())];
            let live_stream = streams.iter().find(|s| s.status == StreamStatus::Live && s.seller_id == user_id(seller));
            Product {
                id: product_id(i),
                seller_id: user_id(seller),
                title: format!("{} {}", ADJECTIVES[rng.random_range(0..ADJECTIVES.len())], noun),
                price: (rng.random_range(100..50_000) as f64) / 100.0,
                currency: "EUR".into(),
                condition: Condition::ALL[rng.random_range(0..Condition::ALL.len())],
                category,
                lat: lat + rng.random_range(-0.08..0.08),
                lon: lon + rng.random_range(-0.12..0.12),
                images: (0..rng.random_range(1..4))
                    .map(|k| format!("https://img.livecache.dev/p/{i:05}/{k}.jpg"))
                    .collect(),
                created_at: time::from_millis(now_ms - rng.random_range(0..30 * 86_400_000i64)),
                view_count: rng.random_range(0..2000),
                stream_id: live_stream.map(|s| s.id.clone()),
            }
        })
        .collect();
    let offers: Vec<Offer> = (0..size.offers)
        .map(|i| {
            let p = &products[rng.random_range(0..products.len())];
            let mut buyer = rng.random_range(0..size.users);
            if user_id(buyer) == p.seller_id {
                buyer = (buyer + 1) % size.users;
            }
            let expires_in = if i < size.due_offers { -rng.random_range(1..120) } else { rng.random_range(1..600) };
            Offer {
                id: offer_id(i),
                product_id: p.id.clone(),
                buyer_id: user_id(buyer),
                seller_id: p.seller_id.clone(),
                amount: (p.price * rng.random_range(0.6..0.95) * 100.0).round() / 100.0,
                currency: p.currency.clone(),
                status: OfferStatus::Pending,
                created_at: time::from_millis(now_ms - 3_600_000),
                expires_at: time::from_millis(now_ms + expires_in * 60_000),
            }
        })
        .collect();
    let badges = demo_badges(&users, &streams, &products, now_ms);
    DemoData { products, users, streams, offers, badges }
}

/// How many of the first sellers start with the badges their figures earn.
const BADGED_SELLERS: usize = 10;

/// The badges the first sellers' figures earn, a minute apart (newest: the first seller's).
fn demo_badges(users: &[User], streams: &[Stream], products: &[Product], now_ms: i64) -> Vec<Badge> {
    let mut out = Vec::new();
    for user in users.iter().take(BADGED_SELLERS) {
        let mine = products.iter().filter(|p| p.seller_id == user.id);
        let (products_listed, total_views) = mine.fold((0, 0), |(n, v), p| (n + 1, v + p.view_count));
        let streams_hosted =
            streams.iter().filter(|s| s.seller_id == user.id && s.status != StreamStatus::Scheduled).count() as u64;
        let figures = SellerFigures { products_listed, streams_hosted, total_views };
        for code in BadgeCode::ALL.iter().filter(|c| c.earned(&figures)) {
            let at = time::from_millis(now_ms - (out.len() as i64 + 1) * 60_000);
            out.push(Badge::new(&user.id, *code, at));
        }
    }
    out
}

/// Writes the data set into a store.
pub async fn seed(store: &dyn Store, data: &DemoData) -> Result<()> {
    store.put_users(&data.users).await?;
    store.put_streams(&data.streams).await?;
    store.put_products(&data.products).await?;
    store.put_offers(&data.offers).await?;
    for badge in &data.badges {
        store.award_badge(badge).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_data_is_realistic_and_deterministic() {
        let now = time::now();
        let a = generate(SeedSize::DEMO, now);
        let b = generate(SeedSize::DEMO, now);
        assert_eq!(a.products, b.products);
        assert_eq!((a.products.len(), a.users.len(), a.streams.len(), a.offers.len()), (5000, 500, 100, 1000));
        assert_eq!(a.streams.iter().filter(|s| s.status == StreamStatus::Live).count(), 20);
        assert_eq!(a.offers.iter().filter(|o| o.expires_at <= now).count(), 100);
        assert!(a.offers.iter().all(|o| o.buyer_id != o.seller_id));
        for c in Category::ALL {
            assert!(a.products.iter().filter(|p| p.category == *c).count() > 300, "{c}");
        }
        assert!(a.products.iter().any(|p| p.stream_id.is_some()));
    }
}
