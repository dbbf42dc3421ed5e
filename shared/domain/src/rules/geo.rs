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

/// The bounding box of a cell: `(lat_min, lat_max, lon_min, lon_max)`.
pub(crate) fn bbox(hash: &str) -> (f64, f64, f64, f64) {
    let (mut lat, mut lon) = ((-90.0f64, 90.0f64), (-180.0f64, 180.0f64));
    let mut even = true;
    for c in hash.bytes() {
        let v = BASE32.iter().position(|b| *b == c).unwrap_or(0);
        for shift in (0..5).rev() {
            let rng = if even { &mut lon } else { &mut lat };
            let mid = (rng.0 + rng.1) / 2.0;
            if (v >> shift) & 1 == 1 {
                rng.0 = mid;
            } else {
                rng.1 = mid;
            }
            even = !even;
        }
    }
    (lat.0, lat.1, lon.0, lon.1)
}

/// How far a point is from a cell (0 inside it): to the nearest point of its box.
pub(crate) fn distance_to_cell(lat: f64, lon: f64, hash: &str) -> f64 {
    let (la0, la1, lo0, lo1) = bbox(hash);
    // The cell may lie across the antimeridian from the point: take the nearer copy.
    [lon, lon - 360.0, lon + 360.0]
        .into_iter()
        .map(|x| distance_km(lat, x, lat.clamp(la0, la1), x.clamp(lo0, lo1)))
        .fold(f64::INFINITY, f64::min)
}

/// Cell size in degrees (lat, lon) at `precision`.
fn cell_size(precision: usize) -> (f64, f64) {
    let bits = precision * 5;
    let lon_bits = bits.div_ceil(2);
    let lat_bits = bits / 2;
    (180.0 / (1u64 << lat_bits) as f64, 360.0 / (1u64 << lon_bits) as f64)
}

/// Every cell at `precision` that overlaps the bounding box of the circle (the tests' view of
/// [`covering`]).
#[cfg(test)]
fn cells_covering(lat: f64, lon: f64, radius_km: f64, precision: usize) -> Vec<String> {
    covering(lat, lon, radius_km, precision, usize::MAX)
}

/// Every cell at `precision` that overlaps the bounding box of the circle, giving up (with
/// `max + 1` cells) once more than `max` are found, so that
/// a hostile query costs little to refuse.
fn covering(lat: f64, lon: f64, radius_km: f64, precision: usize, max: usize) -> Vec<String> {
    let dlat = radius_km / 111.32;
    // The box is widest in longitude at its edge nearest a pole; a circle reaching a pole
    // covers every longitude.
    let poleward = (lat.abs() + dlat).min(90.0);
    let dlon = if poleward >= 89.99 { 180.0 } else { (radius_km / (111.32 * poleward.to_radians().cos())).min(180.0) };
    let (lat0, lat1) = ((lat - dlat).max(-89.9999), (lat + dlat).min(89.9999));
    let (lon0, lon1) = if dlon >= 180.0 { (-180.0, 179.9999) } else { (lon - dlon, lon + dlon) };
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
                if cells.len() > max {
                    return cells;
                }
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
pub(crate) fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0088 * a.sqrt().asin()
}

/// Most geohash cells one community query reads (one query each).
pub const MAX_CELLS: usize = 16;

/// The geohash precisions the products table is indexed by (`by_gh5`, `by_gh4`, `by_gh3`).
pub(crate) const INDEXED_PRECISIONS: [usize; 3] = [5, 4, 3];

/// The cells a search around a point reads, nearest first (then by name): the covering cells
/// at the finest indexed precision (~4.9 km, ~39 × 19.5 km, ~156 × 156 km at the equator)
/// that needs at most [`MAX_CELLS`]; an error saying why when none does (near the poles,
/// cells shrink to slivers).
pub fn plan_cells(lat: f64, lon: f64, radius_km: f64) -> Result<(usize, Vec<String>), String> {
    for precision in INDEXED_PRECISIONS {
        let mut cells = covering(lat, lon, radius_km, precision, MAX_CELLS);
        if cells.len() <= MAX_CELLS {
            // Corner cells of the bounding box that the circle does not reach hold nothing it
            // wants: not read.
            let mut by_distance: Vec<(f64, String)> =
                cells.drain(..).map(|c| (distance_to_cell(lat, lon, &c), c)).filter(|(d, _)| *d <= radius_km).collect();
            by_distance.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            return Ok((precision, by_distance.into_iter().map(|(_, c)| c).collect()));
        }
    }
    Err(format!(
        "a {radius_km} km radius around ({lat}, {lon}) spans more than {MAX_CELLS} map cells even at the coarsest \
         grid (near the poles cells are narrow); use a smaller radius"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_reads_a_few_cells_or_is_refused() {
        // Berlin, 5 km: fine cells; 50 km: coarse ones; never more than MAX_CELLS.
        let (p, cells) = plan_cells(52.52, 13.40, 5.0).unwrap();
        assert!(p == 5 && cells.len() <= MAX_CELLS, "{p} {cells:?}");
        let (p, cells) = plan_cells(52.52, 13.40, 50.0).unwrap();
        assert!(p <= 4 && cells.len() <= MAX_CELLS, "{p} {cells:?}");
        // Across the antimeridian: cells on both sides.
        let (_, cells) = plan_cells(0.0, 179.99, 20.0).unwrap();
        assert!(cells.iter().any(|c| c.starts_with('x')) && cells.iter().any(|c| c.starts_with('8')), "{cells:?}");
        // At the poles every grid's cells are slivers: refused, and cheaply (the covering
        // stops after MAX_CELLS + 1 cells).
        for lat in [89.9, -89.95, 90.0] {
            let plan = plan_cells(lat, 0.0, 10.0);
            assert!(plan.is_err(), "{lat}: {plan:?}");
        }
    }

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
    fn far_north_the_covering_holds_every_point_within_the_radius() {
        for (lat, lon, r, precision) in [(70.0, 25.0, 50.0, 3), (78.2, 15.6, 20.0, 4), (-77.8, 166.7, 10.0, 4)] {
            let cells = cells_covering(lat, lon, r, precision);
            for i in -60..=60 {
                for j in -60..=60 {
                    let (plat, plon) = (lat + i as f64 * r / 111.32 / 50.0, lon + j as f64 * 0.05 * r / 10.0);
                    if distance_km(lat, lon, plat, plon) <= r {
                        assert!(
                            cells.contains(&geohash(plat, plon, precision)),
                            "({plat}, {plon}) near ({lat}, {lon})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn cells_decode_to_the_box_they_were_made_from() {
        let h = geohash(52.52, 13.405, 5);
        let (la0, la1, lo0, lo1) = bbox(&h);
        assert!((la0..la1).contains(&52.52) && (lo0..lo1).contains(&13.405));
        assert_eq!(distance_to_cell(52.52, 13.405, &h), 0.0);
        let (_, cells) = plan_cells(52.52, 13.405, 5.0).unwrap();
        assert_eq!(cells[0], h, "the point's own cell comes first");
        let d: Vec<f64> = cells.iter().map(|c| distance_to_cell(52.52, 13.405, c)).collect();
        assert!(d.windows(2).all(|w| w[0] <= w[1]), "{d:?}");
    }

    #[test]
    fn distances() {
        let d = distance_km(52.52, 13.405, 48.8566, 2.3522);
        assert!((d - 878.0).abs() < 5.0, "{d}");
    }
}
