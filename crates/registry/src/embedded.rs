//! The default registry, compiled in: Jidong County (鸡东县), Jixi, Heilongjiang.
//! Its geometry is synthetic; `config/jidong/README.md` says how it was made.

use std::sync::OnceLock;

use crate::load::Sources;
use crate::types::Registry;

pub const COUNTY_TOML: &str = include_str!("../../../config/jidong/county.toml");
pub const WORKERS_CSV: &str = include_str!("../../../config/jidong/workers.csv");
pub const GRIDS_GEOJSON: &str = include_str!("../../../config/jidong/grids.geojson");

/// The embedded sources, named as the files they came from.
pub fn sources() -> Sources<'static> {
    Sources {
        dir: "<embedded>/config/jidong".into(),
        county_toml: COUNTY_TOML,
        workers_csv: WORKERS_CSV,
        grids_geojson: GRIDS_GEOJSON,
    }
}

/// The embedded Jidong registry, loaded and checked once.
///
/// # Panics
/// If the embedded files do not load; a test guards this, so a build that
/// ships broken defaults cannot pass CI.
pub fn jidong() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| match Registry::from_sources(&sources()) {
        Ok(r) => r,
        Err(e) => panic!("the embedded Jidong registry does not load:\n{e}"),
    })
}
