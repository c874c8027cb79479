//! Loading and checking a county's config directory. (Being written: see issue 2.)

use std::fmt;
use std::path::PathBuf;

use crate::types::Registry;

/// The three files of a config directory, as text.
#[derive(Clone, Debug)]
pub struct Sources<'a> {
    /// Where they came from, for error messages.
    pub dir: PathBuf,
    pub county_toml: &'a str,
    pub workers_csv: &'a str,
    pub grids_geojson: &'a str,
}

/// One problem in a config directory: file, line (or feature index), field, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    /// 1-based line in a TOML or CSV file.
    pub line: Option<usize>,
    /// 0-based feature index in a GeoJSON file.
    pub feature: Option<usize>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(i) = self.feature {
            write!(f, ": feature {i}")?;
        }
        write!(f, ": {}: {}", self.field, self.message)
    }
}

/// Every problem found; a registry with any is not loaded at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

impl Registry {
    /// Reads `county.toml`, `workers.csv` and `grids.geojson` from `dir`.
    pub fn load_dir(dir: &std::path::Path) -> Result<Registry, LoadErrors> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read_to_string(&p).map_err(|e| {
                LoadErrors(vec![LoadError {
                    file: p.clone(),
                    line: None,
                    feature: None,
                    field: "(file)".into(),
                    message: format!("cannot read: {e}"),
                }])
            })
        };
        let (c, w, g) = (read("county.toml")?, read("workers.csv")?, read("grids.geojson")?);
        Registry::from_sources(&Sources {
            dir: dir.to_path_buf(),
            county_toml: &c,
            workers_csv: &w,
            grids_geojson: &g,
        })
    }

    /// Parses and checks the three sources. Nothing is half-loaded.
    pub fn from_sources(_s: &Sources<'_>) -> Result<Registry, LoadErrors> {
        todo!("issue 2: the loader")
    }
}
