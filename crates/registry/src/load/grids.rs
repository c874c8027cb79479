//! `grids.geojson`: a FeatureCollection, one Polygon feature per grid with
//! the properties `code`, `name`, `kind`, `community`, `keywords`, `site`.
//!
//! Each feature is checked on its own here (properties, polygon validity);
//! the caller resolves communities and checks the grids against each other.
//! Errors name the feature's index and the line it starts on.

use std::collections::HashMap;

use geo::Polygon;
use serde_json::Value;

use super::geometry;
use super::report::{code_problem, keyword_problem, one_of, text_problem, Report, Src};
use crate::types::GridKind;

/// One feature, checked as far as it can be alone.
pub(crate) struct Feature {
    pub index: usize,
    pub line: usize,
    pub code: String,
    pub name: String,
    pub kind: Option<GridKind>,
    pub community: String,
    pub keywords: Vec<String>,
    pub site: Option<String>,
    /// `None` if the geometry is missing or invalid (reported).
    pub polygon: Option<Polygon<f64>>,
}

pub(crate) struct GridsFile {
    pub features: Vec<Feature>,
    /// code -> feature index (first occurrence).
    pub by_code: HashMap<String, usize>,
}

/// Reads grids.geojson; `None` (reported) if it is not a FeatureCollection.
pub(crate) fn read(src: &Src<'_>, report: &mut Report) -> Option<GridsFile> {
    // A byte-order mark, as Windows editors write it, is not JSON; skip it.
    let text = src.text.strip_prefix('\u{feff}').unwrap_or(src.text);
    let root: Value = match serde_json::from_str::<NoKeyTwice>(text) {
        Ok(NoKeyTwice(v)) => v,
        Err(e) => {
            // serde_json's message ends with " at line L column C"; we give the line ourselves.
            let msg = e.to_string();
            let msg = msg.rsplit_once(" at line ").map_or(msg.as_str(), |(m, _)| m);
            report.line(src, e.line().max(1), "(json)", format!("{msg} (column {})", e.column()));
            return None;
        }
    };
    let features = match (&root["type"], &root["features"]) {
        (Value::String(t), Value::Array(f)) if t == "FeatureCollection" => f,
        _ => {
            report.line(
                src,
                1,
                "(json)",
                "expected a FeatureCollection: {\"type\": \"FeatureCollection\", \"features\": [...]}",
            );
            return None;
        }
    };
    let lines = feature_lines(src);
    let mut out = Vec::with_capacity(features.len());
    let mut by_code: HashMap<String, usize> = HashMap::new();
    for (index, value) in features.iter().enumerate() {
        let line = lines.get(index).copied().unwrap_or(1);
        let mut err = |field: &str, msg: String| report.feature(src, index, line, field, msg);
        // Properties are read from the JSON as it is, so that a bad geometry
        // does not hide the grid's code (and every worker in it) as well.
        if value.get("type").and_then(Value::as_str) != Some("Feature") {
            err("type", "expected a GeoJSON Feature: {\"type\": \"Feature\", \"properties\": {...}, \"geometry\": {...}}".into());
            continue;
        }
        let empty = serde_json::Map::new();
        let props = match value.get("properties") {
            Some(Value::Object(p)) => p,
            None | Some(Value::Null) => &empty,
            Some(other) => {
                err("properties", format!("expected an object, found {other}"));
                &empty
            }
        };
        let text = |key: &str, err: &mut dyn FnMut(&str, String)| -> String {
            let field = format!("properties.{key}");
            match props.get(key) {
                None | Some(Value::Null) => {
                    err(&field, "required but missing".into());
                    String::new()
                }
                Some(Value::String(s)) if s.trim().is_empty() => {
                    err(&field, "must not be empty".into());
                    String::new()
                }
                Some(Value::String(s)) => match text_problem(s.trim()) {
                    Some(msg) => {
                        err(&field, msg);
                        String::new()
                    }
                    None => s.trim().to_string(),
                },
                Some(other) => {
                    err(&field, format!("expected a string, found {other}"));
                    String::new()
                }
            }
        };
        let code = text("code", &mut err);
        if !code.is_empty() {
            if let Some(msg) = code_problem(&code) {
                err("properties.code", msg);
            } else if let Some(&first) = by_code.get(&code) {
                err("properties.code", format!("duplicate grid code \"{code}\" (first at feature {first})"));
            } else {
                by_code.insert(code.clone(), index);
            }
        }
        let name = text("name", &mut err);
        let kind_text = text("kind", &mut err);
        let kinds =
            [("urban", GridKind::Urban), ("rural", GridKind::Rural), ("dedicated", GridKind::Dedicated)];
        let kind = match kinds.iter().find(|k| k.0 == kind_text) {
            Some(k) => Some(k.1),
            None => {
                if !kind_text.is_empty() {
                    let names: Vec<&str> = kinds.iter().map(|k| k.0).collect();
                    err(
                        "properties.kind",
                        format!("\"{kind_text}\" is not valid: expected {}", one_of(&names)),
                    );
                }
                None
            }
        };
        let community = text("community", &mut err);
        let mut keywords: Vec<String> = Vec::new();
        match props.get("keywords") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for k in list {
                    let Some(s) = k.as_str().map(str::trim) else {
                        err("properties.keywords", format!("expected strings, found {k}"));
                        continue;
                    };
                    if let Some(problem) = keyword_problem(s) {
                        err("properties.keywords", problem);
                    } else if keywords.iter().any(|o| o == s) {
                        err("properties.keywords", format!("keyword \"{s}\" is listed twice"));
                    } else {
                        keywords.push(s.to_string());
                    }
                }
            }
            Some(other) => err("properties.keywords", format!("expected an array of strings, found {other}")),
        }
        let site = match (props.get("site"), kind) {
            (None | Some(Value::Null), Some(GridKind::Dedicated)) => {
                err("properties.site", "required for a dedicated grid: the kind of site, e.g. school".into());
                None
            }
            (None | Some(Value::Null), _) => None,
            (Some(Value::String(s)), Some(GridKind::Dedicated) | None) => {
                let s = s.trim();
                if s.is_empty()
                    || !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                {
                    err(
                        "properties.site",
                        format!("\"{s}\" is not a site kind: lowercase letters, digits and _, e.g. industrial_park"),
                    );
                }
                Some(s.to_string())
            }
            (Some(_), Some(k)) if k != GridKind::Dedicated => {
                err(
                    "properties.site",
                    format!("only dedicated grids have a site, not a {} grid", k.as_str()),
                );
                None
            }
            (Some(other), _) => {
                err("properties.site", format!("expected a string, found {other}"));
                None
            }
        };
        let polygon = match value.get("geometry") {
            None | Some(Value::Null) => {
                err("geometry", "required but missing".into());
                None
            }
            Some(g) => match g.get("type").and_then(Value::as_str) {
                Some("Polygon") => match polygon_shape(g.get("coordinates")).and_then(|()| {
                    geojson::Geometry::from_json_value(g.clone()).map_err(|e| format!("invalid Polygon: {e}"))
                }) {
                    Ok(geojson::Geometry { value: geojson::Value::Polygon(rings), .. }) => {
                        match geometry::polygon(&rings) {
                            Ok(p) => Some(p),
                            Err(msg) => {
                                err("geometry", format!("invalid polygon: {msg}"));
                                None
                            }
                        }
                    }
                    Ok(_) => unreachable!("the type was Polygon"),
                    Err(msg) => {
                        err("geometry", msg);
                        None
                    }
                },
                Some(other) => {
                    err("geometry", format!("expected a Polygon, found a {other}"));
                    None
                }
                None => {
                    err(
                        "geometry",
                        "expected a Polygon: {\"type\": \"Polygon\", \"coordinates\": [...]}".into(),
                    );
                    None
                }
            },
        };
        out.push(Feature { index, line, code, name, kind, community, keywords, site, polygon });
    }
    Some(GridsFile { features: out, by_code })
}

/// A JSON value, read as serde_json's `Value` is but refused if an object in
/// it has a key twice: `Value` keeps the last silently, so a second
/// `features` list (two files pasted together) dropped every grid of the
/// first without a word. The error carries the duplicate's line and column.
struct NoKeyTwice(Value);

impl<'de> serde::Deserialize<'de> for NoKeyTwice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoKeyTwiceVisitor)
    }
}

struct NoKeyTwiceVisitor;

impl<'de> serde::de::Visitor<'de> for NoKeyTwiceVisitor {
    type Value = NoKeyTwice;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<NoKeyTwice, E> {
        Ok(NoKeyTwice(Value::Bool(b)))
    }
    fn visit_i64<E>(self, n: i64) -> Result<NoKeyTwice, E> {
        Ok(NoKeyTwice(Value::from(n)))
    }
    fn visit_u64<E>(self, n: u64) -> Result<NoKeyTwice, E> {
        Ok(NoKeyTwice(Value::from(n)))
    }
    fn visit_f64<E>(self, n: f64) -> Result<NoKeyTwice, E> {
        // JSON has no NaN or infinity, so every number read has a `Number`.
        Ok(NoKeyTwice(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)))
    }
    fn visit_str<E>(self, s: &str) -> Result<NoKeyTwice, E> {
        Ok(NoKeyTwice(Value::String(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> Result<NoKeyTwice, E> {
        Ok(NoKeyTwice(Value::String(s)))
    }
    fn visit_unit<E>(self) -> Result<NoKeyTwice, E> {
        Ok(NoKeyTwice(Value::Null))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<NoKeyTwice, A::Error> {
        let mut items = Vec::new();
        while let Some(NoKeyTwice(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(NoKeyTwice(Value::Array(items)))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<NoKeyTwice, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate key `{key}`: a JSON reader keeps only the last"
                )));
            }
            let NoKeyTwice(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(NoKeyTwice(Value::Object(out)))
    }
}

/// The line each element of the top-level `features` array starts on (an
/// element that is not an object too, so that the ones after it keep their
/// own lines). The text is known to be valid JSON, so a small scanner that
/// tracks strings and nesting is enough.
fn feature_lines(src: &Src<'_>) -> Vec<usize> {
    let bytes = src.text.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut string_start = 0;
    let mut last_key_at_depth_1: Option<(usize, usize)> = None;
    let mut in_features = false;
    // In `features`, after its `[` or a `,`: the next token starts an element.
    let mut element_next = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                if depth == 1 {
                    last_key_at_depth_1 = Some((string_start, i));
                }
            }
            continue;
        }
        if element_next && !b.is_ascii_whitespace() {
            element_next = false;
            if b != b']' {
                out.push(src.line_of(i));
            }
        }
        match b {
            b'"' => {
                in_string = true;
                string_start = i + 1;
            }
            b'{' | b'[' => {
                if depth == 1 && b == b'[' {
                    in_features = last_key_at_depth_1.is_some_and(|(s, e)| &src.text[s..e] == "features");
                    element_next = in_features;
                }
                depth += 1;
            }
            b',' if depth == 2 && in_features => element_next = true,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    in_features = false;
                }
            }
            _ => {}
        }
    }
    out
}

/// Checks that a Polygon's `coordinates` are rings of points of numbers,
/// naming the first place that is not (`coordinates[0][2][1]`): the GeoJSON
/// reader's own messages say what it expected but not where.
fn polygon_shape(coordinates: Option<&Value>) -> Result<(), String> {
    let short = |v: &Value| {
        let s = v.to_string();
        match s.char_indices().nth(40) {
            Some((at, _)) => format!("{}...", &s[..at]),
            None => s,
        }
    };
    let Some(Value::Array(rings)) = coordinates else {
        return Err(match coordinates {
            None => "coordinates: required but missing".into(),
            Some(v) => format!("coordinates: expected a list of rings, found {}", short(v)),
        });
    };
    for (r, ring) in rings.iter().enumerate() {
        let Value::Array(points) = ring else {
            return Err(format!(
                "coordinates[{r}]: expected a ring (a list of points), found {}",
                short(ring)
            ));
        };
        for (p, point) in points.iter().enumerate() {
            match point {
                Value::Array(xs) if xs.len() >= 2 => {
                    if let Some((i, x)) = xs.iter().enumerate().find(|(_, x)| !x.is_number()) {
                        return Err(format!(
                            "coordinates[{r}][{p}][{i}]: expected a number, found {}",
                            short(x)
                        ));
                    }
                }
                _ => {
                    return Err(format!(
                        "coordinates[{r}][{p}]: expected a point [longitude, latitude], found {}",
                        short(point)
                    ))
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_lines_features_start_on() {
        let text = "{\"type\":\"FeatureCollection\",\n\"bbox\":[1,2],\"x\":{\"features\":[{}]},\n\"features\":[\n{\"a\":\"}{\"},\n\n  {\"b\":[{}]}]}";
        let src = Src::new("g".into(), text);
        assert_eq!(feature_lines(&src), [4, 6]);
        let text = "{\"features\":[1,\n\"x\",\n null ,{},\n[]\n]}";
        let src = Src::new("g".into(), text);
        assert_eq!(feature_lines(&src), [1, 2, 3, 3, 4]);
        let src = Src::new("g".into(), "{\"features\":[ ]}");
        assert_eq!(feature_lines(&src), Vec::<usize>::new());
    }

    /// The one-pass reader gives the very `Value` serde_json gives, numbers
    /// of every kind included.
    #[test]
    fn a_file_without_a_key_twice_reads_as_serde_json_reads_it() {
        let samples = [
            crate::embedded::GRIDS_GEOJSON,
            r#"{"a":[1,-2,18446744073709551615,-9223372036854775808,1.5e300,-0.0,0.1],"b":{"c":null,"d":true,"e":"\u00e9\n"},"f":[]}"#,
        ];
        for text in samples {
            let NoKeyTwice(ours) = serde_json::from_str(text).unwrap();
            assert_eq!(ours, serde_json::from_str::<Value>(text).unwrap());
        }
    }
}
