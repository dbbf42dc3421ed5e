//! Geohash cells and distances for the community feed.

const BASE32: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";

/// The geohash of a point at `precision` characters.
pub fn geohash(lat: f64, lon: f64, precision: usize) -> String {
    let (mut lat_rng, mut lon_rng) = ((-90.0f64, 90.0f64), (-180.0f64, 180.0f64));
    let mut out = String::with_capacity(precision);
    let (mut bits, mut bit, mut even) = (0usize, 0u8, true);
    while out.len() < precision {
        let (rng, v) = if even { (&mut lon_rng, lon) } else { (&mut lat_rng, lat) };
        let mid = (rng.0 + rng.1) / 2.0;
        if v >= mid {
            bits = bits * 2 + 1;
            rng.0 = mid;
        } else {
            bits *= 2;
            rng.1 = mid;
        }
        even = !even;
        bit += 1;
        if bit == 5 {
            out.push(BASE32[bits] as char);
            bits = 0;
            bit = 0;
        }
    }
    out
}

/// Cell size in degrees (lat, lon) at `precision`.
fn cell_size(precision: usize) -> (f64, f64) {
    let bits = precision * 5;
    let lon_bits = bits.div_ceil(2);
    let lat_bits = bits / 2;
    (180.0 / (1u64 << lat_bits) as f64, 360.0 / (1u64 << lon_bits) as f64)
}

/// Every cell at `precision` that overlaps the bounding box of the circle.
pub fn cells_covering(lat: f64, lon: f64, radius_km: f64, precision: usize) -> Vec<String> {
    let dlat = radius_km / 111.32;
    let dlon = radius_km / (111.32 * lat.to_radians().cos().abs().max(0.01));
    let (lat0, lat1) = ((lat - dlat).max(-89.9999), (lat + dlat).min(89.9999));
    let (lon0, lon1) = (lon - dlon, lon + dlon);
    let (step_lat, step_lon) = cell_size(precision);
    let mut cells = Vec::new();
    let mut y = lat0;
    loop {
        let mut x = lon0;
        loop {
            let wrapped = ((x + 180.0).rem_euclid(360.0)) - 180.0;
            let h = geohash(y, wrapped, precision);
            if !cells.contains(&h) {
                cells.push(h);
            }
            if x >= lon1 {
                break;
            }
            x = (x + step_lon / 2.0).min(lon1);
        }
        if y >= lat1 {
            break;
        }
        y = (y + step_lat / 2.0).min(lat1);
    }
    cells
}

/// Great-circle distance in km.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0088 * a.sqrt().asin()
}

/// The index precision used for a search radius: 5 characters (~4.9 km cells) up to 10 km,
/// 4 (~39 × 19.5 km) beyond.
pub fn precision_for(radius_km: f64) -> usize {
    if radius_km <= 10.0 {
        5
    } else {
        4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_known_points() {
        assert_eq!(geohash(57.64911, 10.40744, 11), "u4pruydqqvj");
        assert_eq!(geohash(52.52, 13.405, 5), "u33dc");
    }

    #[test]
    fn covering_cells_contain_every_point_of_the_circle() {
        let (lat, lon, r) = (52.52, 13.405, 8.0);
        let cells = cells_covering(lat, lon, r, 5);
        for i in 0..360 {
            let a = (i as f64).to_radians();
            for f in [0.25, 0.5, 0.99] {
                let plat = lat + r * f * a.sin() / 111.32;
                let plon = lon + r * f * a.cos() / (111.32 * lat.to_radians().cos());
                assert!(cells.contains(&geohash(plat, plon, 5)), "point at {i}° {f} outside cells");
            }
        }
        assert!(cells.len() <= 30, "{} cells", cells.len());
    }

    #[test]
    fn distances() {
        let d = distance_km(52.52, 13.405, 48.8566, 2.3522);
        assert!((d - 878.0).abs() < 5.0, "{d}");
    }
}
