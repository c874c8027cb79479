//! `county.toml`: the county, its townships, communities and villages,
//! departments and case categories.
//!
//! Every value is read as `toml::Spanned` so that a semantic error can name
//! its line; values are optional at the serde level so that a missing field
//! is reported with the others instead of stopping the parse.

use std::collections::HashMap;
use std::ops::Range;

use geo::MultiPolygon;
use gridline_model::DurationMs;
use serde::Deserialize;
use toml::Spanned;

use super::geometry;
use super::report::{code_problem, keyword_problem, one_of, text_problem, Report, Src};
use crate::types::{
    Category, CategoryIdx, Community, CommunityIdx, CommunityKind, Department, DeptIdx, Handling, Limits,
    Township, TownshipIdx, TownshipKind,
};

type Opt<T> = Option<Spanned<T>>;

/// A TOML table read as `T`, and nothing else: serde would also read a
/// struct from an array, field by field in order, so that
/// `claim = ["1h", "30m", "10m"]` or `[[county]]` would pass for a table
/// (or fail with a message about the first field). Any other value is
/// reported as not what [`Shape::EXPECTED`] says.
struct Table<T>(T);

/// What a table read as [`Table`] is, for messages.
trait Shape {
    /// "a table { ... }"
    const EXPECTED: &'static str;
    /// What is wrong with an array where the table should be.
    const ARRAY: &'static str = "invalid type: array";
}

impl<T> std::ops::Deref for Table<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<'de, T: Deserialize<'de> + Shape> Deserialize<'de> for Table<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Shape> serde::de::Visitor<'de> for V<T> {
            type Value = Table<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(T::EXPECTED)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Table<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Table)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Table<T>, A::Error> {
                Err(serde::de::Error::custom(format_args!("{}, expected {}", T::ARRAY, T::EXPECTED)))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl Shape for RawCounty {
    const EXPECTED: &'static str = "the table [county] (in single brackets, once)";
    const ARRAY: &'static str = "invalid type: an array of tables [[county]]";
}
impl Shape for RawGeometry {
    const EXPECTED: &'static str =
        "a table [county.boundary] with type = \"Polygon\" or \"MultiPolygon\" and coordinates";
}
impl Shape for RawTownship {
    const EXPECTED: &'static str = "a table [[township]]";
}
impl Shape for RawCommunity {
    const EXPECTED: &'static str = "a table [[community]]";
}
impl Shape for RawDepartment {
    const EXPECTED: &'static str = "a table [[department]]";
}
impl Shape for RawCategory {
    const EXPECTED: &'static str = "a table [[category]]";
}
impl Shape for RawLimits {
    const EXPECTED: &'static str =
        "a table of durations { normal = \"..\", urgent = \"..\", emergency = \"..\" }";
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    county: Opt<Table<RawCounty>>,
    #[serde(default)]
    township: Vec<Spanned<Table<RawTownship>>>,
    #[serde(default)]
    community: Vec<Spanned<Table<RawCommunity>>>,
    #[serde(default)]
    department: Vec<Spanned<Table<RawDepartment>>>,
    #[serde(default)]
    category: Vec<Spanned<Table<RawCategory>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCounty {
    name: Opt<String>,
    code: Opt<String>,
    utc_offset_minutes: Opt<i64>,
    centre: Opt<Vec<f64>>,
    command_centre: Opt<String>,
    warn_at_percent: Opt<i64>,
    general_category: Opt<String>,
    boundary: Opt<Table<RawGeometry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGeometry {
    #[serde(rename = "type")]
    kind: Opt<String>,
    coordinates: Opt<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTownship {
    code: Opt<String>,
    name: Opt<String>,
    kind: Opt<String>,
    lead: Opt<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommunity {
    code: Opt<String>,
    name: Opt<String>,
    township: Opt<String>,
    kind: Opt<String>,
    keywords: Opt<Vec<Spanned<String>>>,
    lead: Opt<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDepartment {
    code: Opt<String>,
    name: Opt<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    code: Opt<String>,
    name: Opt<String>,
    handling: Opt<String>,
    department: Opt<String>,
    keywords: Opt<Vec<Spanned<String>>>,
    claim: Opt<Table<RawLimits>>,
    close: Opt<Table<RawLimits>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    normal: Opt<String>,
    urgent: Opt<String>,
    emergency: Opt<String>,
}

/// A reference to a worker, resolved once workers.csv is read.
pub(crate) struct WorkerRef {
    pub id: String,
    pub line: usize,
    pub field: &'static str,
}

/// county.toml, checked as far as it can be on its own. References into
/// the other files (leads) are kept for later; everything else is resolved.
pub(crate) struct CountyFile {
    pub name: String,
    pub code: String,
    pub utc_offset_min: i32,
    pub centre: (f64, f64),
    pub command_centre: String,
    pub warn_at_percent: u8,
    pub general_category: Option<CategoryIdx>,
    pub boundary: Option<MultiPolygon<f64>>,
    pub townships: Vec<Township>,
    pub township_leads: Vec<Option<WorkerRef>>,
    pub communities: Vec<Community>,
    /// `None` where the kind was invalid (reported), so grids are not checked against it.
    pub community_kinds: Vec<Option<CommunityKind>>,
    pub community_lines: Vec<usize>,
    pub community_leads: Vec<Option<WorkerRef>>,
    pub departments: Vec<Department>,
    pub categories: Vec<Category>,
    pub townships_by_code: HashMap<String, TownshipIdx>,
    pub communities_by_code: HashMap<String, CommunityIdx>,
    pub departments_by_code: HashMap<String, DeptIdx>,
    pub categories_by_code: HashMap<String, CategoryIdx>,
}

struct Cx<'s, 'r> {
    src: &'s Src<'s>,
    report: &'r mut Report,
}

impl Cx<'_, '_> {
    fn line(&self, span: Range<usize>) -> usize {
        self.src.line_of(span.start)
    }

    fn err(&mut self, line: usize, field: impl Into<String>, message: impl Into<String>) {
        self.report.line(self.src, line, field, message);
    }

    /// A required, non-empty text; `None` (reported) if missing or empty.
    fn text(&mut self, field: &str, table_line: usize, v: &Opt<String>) -> Option<(String, usize)> {
        let Some(v) = v else {
            self.err(table_line, field, "required but missing");
            return None;
        };
        let line = self.line(v.span());
        let s = v.get_ref().trim();
        if s.is_empty() {
            self.err(line, field, "must not be empty");
            return None;
        }
        if let Some(msg) = text_problem(s) {
            self.err(line, field, msg);
            return None;
        }
        Some((s.to_string(), line))
    }

    /// A required code (see [`code_problem`]).
    fn code(&mut self, field: &str, table_line: usize, v: &Opt<String>) -> Option<(String, usize)> {
        let Some(v) = v else {
            self.err(table_line, field, "required but missing");
            return None;
        };
        let line = self.line(v.span());
        let s = v.get_ref().trim();
        if let Some(msg) = code_problem(s) {
            self.err(line, field, msg);
            return None;
        }
        Some((s.to_string(), line))
    }

    /// A required value from a fixed list.
    fn choice<T: Copy>(
        &mut self,
        field: &str,
        table_line: usize,
        v: &Opt<String>,
        options: &[(&str, T)],
    ) -> Option<T> {
        let (s, line) = self.text(field, table_line, v)?;
        match options.iter().find(|o| o.0 == s) {
            Some(o) => Some(o.1),
            None => {
                let names: Vec<&str> = options.iter().map(|o| o.0).collect();
                self.err(line, field, format!("\"{s}\" is not valid: expected {}", one_of(&names)));
                None
            }
        }
    }

    /// Registers a code, reporting a duplicate at its second occurrence.
    fn unique<I: Copy>(
        &mut self,
        map: &mut HashMap<String, (I, usize)>,
        field: &str,
        code: &str,
        line: usize,
        idx: I,
    ) {
        if let Some(&(_, first)) = map.get(code) {
            self.err(line, field, format!("duplicate code \"{code}\" (first defined at line {first})"));
        } else {
            map.insert(code.to_string(), (idx, line));
        }
    }

    /// A keyword list: optional, each keyword non-empty, without a `,`
    /// (`ROUTE` lists the keywords it matched joined by commas), and not
    /// repeated.
    fn keywords(&mut self, field: &str, v: &Opt<Vec<Spanned<String>>>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for k in v.iter().flat_map(|v| v.get_ref()) {
            let line = self.line(k.span());
            let s = k.get_ref().trim();
            if let Some(problem) = keyword_problem(s) {
                self.err(line, field, problem);
            } else if out.iter().any(|o| o == s) {
                self.err(line, field, format!("keyword \"{s}\" is listed twice"));
            } else {
                out.push(s.to_string());
            }
        }
        out
    }

    fn worker_ref(&mut self, field: &'static str, v: &Opt<String>) -> Option<WorkerRef> {
        let v = v.as_ref()?;
        let line = self.line(v.span());
        let id = v.get_ref().trim();
        if let Some(msg) = code_problem(id) {
            self.err(line, field, msg);
            return None;
        }
        Some(WorkerRef { id: id.to_string(), line, field })
    }
}

fn strip<I>(m: HashMap<String, (I, usize)>) -> HashMap<String, I> {
    m.into_iter().map(|(k, (i, _))| (k, i)).collect()
}

/// Reads county.toml. `None` if it does not parse as TOML of the right
/// shape (the error is reported); otherwise the checked contents, with any
/// semantic errors reported.
pub(crate) fn read(src: &Src<'_>, report: &mut Report) -> Option<CountyFile> {
    // The deserializer's key path names the field of a value of the wrong
    // shape (`category.close.emergency`, inside an inline table too); a
    // syntax error, found before any value is read, has none and is named
    // from the text around it.
    let doc: RawDoc = match serde_path_to_error::deserialize(toml::Deserializer::new(src.text)) {
        Ok(d) => d,
        Err(e) => {
            let path = key_path(e.path());
            let e = e.into_inner();
            let (line, field) = match (e.span(), path) {
                (Some(span), Some(path)) => (src.line_of(span.start), path),
                (Some(span), None) => (src.line_of(span.start), field_at(src, span.start)),
                (None, path) => (1, path.unwrap_or_else(|| "(toml)".to_string())),
            };
            let msg = e.message().trim().replace('\n', "; ");
            let msg = msg
                .replace("expected i64", "expected an integer")
                .replace("expected f64", "expected a number");
            report.line(src, line, field, msg);
            return None;
        }
    };
    let mut cx = Cx { src, report };

    // [[department]]
    let mut departments = Vec::new();
    let mut dept_codes = HashMap::new();
    for d in &doc.department {
        let at = cx.line(d.span());
        let d = d.get_ref();
        let idx = DeptIdx(departments.len() as u32);
        let code = cx.code("department.code", at, &d.code);
        if let Some((c, l)) = &code {
            cx.unique(&mut dept_codes, "department.code", c, *l, idx);
        }
        let name = cx.text("department.name", at, &d.name);
        departments.push(Department {
            code: code.map(|c| c.0).unwrap_or_default(),
            name: name.map(|n| n.0).unwrap_or_default(),
            professionals: Vec::new(),
        });
    }

    // [[category]]
    let mut categories = Vec::new();
    let mut category_codes = HashMap::new();
    let mut category_handling = Vec::new();
    // keyword as matched (folded) -> (category code, line, keyword as
    // written), to find a keyword claimed twice.
    let mut keyword_owner: HashMap<String, (String, usize, String)> = HashMap::new();
    for k in &doc.category {
        let at = cx.line(k.span());
        let k = k.get_ref();
        let idx = CategoryIdx(categories.len() as u32);
        let code = cx.code("category.code", at, &k.code);
        if let Some((c, l)) = &code {
            cx.unique(&mut category_codes, "category.code", c, *l, idx);
        }
        let name = cx.text("category.name", at, &k.name);
        let handling = cx.choice(
            "category.handling",
            at,
            &k.handling,
            &[
                ("grid", Handling::Grid),
                ("department", Handling::Department),
                ("grid_with_department", Handling::GridWithDepartment),
            ],
        );
        let department = match (&k.department, handling) {
            (None, Some(Handling::Department | Handling::GridWithDepartment)) => {
                let h = handling.map(Handling::as_str).unwrap_or_default();
                cx.err(at, "category.department", format!("required when handling = \"{h}\""));
                None
            }
            (Some(d), Some(Handling::Grid)) => {
                let line = cx.line(d.span());
                cx.err(
                    line,
                    "category.department",
                    "a category handled by the grid has no department \
                     (use handling = \"grid_with_department\" for both)",
                );
                None
            }
            (Some(d), _) => {
                let line = cx.line(d.span());
                let code = d.get_ref().trim();
                match dept_codes.get(code) {
                    Some(&(i, _)) => Some(i),
                    None => {
                        cx.err(line, "category.department", format!("unknown department \"{code}\""));
                        None
                    }
                }
            }
            (None, _) => None,
        };
        let keywords = cx.keywords("category.keywords", &k.keywords);
        if let (Some((c, _)), Some(list)) = (&code, &k.keywords) {
            for kw in list.get_ref() {
                let s = kw.get_ref().trim();
                if s.is_empty() {
                    continue; // reported by `keywords` above
                }
                let line = cx.line(kw.span());
                let folded = crate::words::normalize(s);
                match keyword_owner.get(&folded) {
                    Some((owner, first, as_written)) if owner != c => {
                        let written = if as_written == s {
                            String::new()
                        } else {
                            format!(", as \"{as_written}\"; routing matches the two alike")
                        };
                        cx.err(
                            line,
                            "category.keywords",
                            format!(
                                "keyword \"{s}\" already belongs to category {owner} (line {first}{written})"
                            ),
                        )
                    }
                    Some(_) => {}
                    None => {
                        keyword_owner.insert(folded, (c.clone(), line, s.to_string()));
                    }
                }
            }
        }
        let claim = limits(&mut cx, "category.claim", at, &k.claim);
        let close = limits(&mut cx, "category.close", at, &k.close);
        // Each priority whose two limits read, whatever the others' (a
        // misspelt normal limit does not hide an urgent one out of order).
        if let Some(c) = &k.claim {
            for (i, p) in ["normal", "urgent", "emergency"].iter().enumerate() {
                let (Some(claim), Some(close)) = (claim[i], close[i]) else { continue };
                if claim > close {
                    let line = cx.line(c.span());
                    cx.err(
                        line,
                        format!("category.claim.{p}"),
                        format!(
                            "the time to claim ({}) is longer than the time to close ({})",
                            claim.human(),
                            close.human()
                        ),
                    );
                }
            }
        }
        category_handling.push(handling);
        categories.push(Category {
            code: code.map(|c| c.0).unwrap_or_default(),
            name: name.map(|n| n.0).unwrap_or_default(),
            handling: handling.unwrap_or(Handling::Grid),
            department,
            keywords,
            limits: Limits {
                claim: claim.map(|d| d.unwrap_or(DurationMs(1))),
                close: close.map(|d| d.unwrap_or(DurationMs(1))),
            },
        });
    }

    // [[township]]
    let mut townships = Vec::new();
    let mut township_lines = Vec::new();
    let mut township_leads = Vec::new();
    let mut township_codes = HashMap::new();
    for t in &doc.township {
        let at = cx.line(t.span());
        let t = t.get_ref();
        let idx = TownshipIdx(townships.len() as u32);
        let code = cx.code("township.code", at, &t.code);
        if let Some((c, l)) = &code {
            cx.unique(&mut township_codes, "township.code", c, *l, idx);
        }
        let name = cx.text("township.name", at, &t.name);
        let kind = cx.choice(
            "township.kind",
            at,
            &t.kind,
            &[("town", TownshipKind::Town), ("township", TownshipKind::Township)],
        );
        township_leads.push(cx.worker_ref("township.lead", &t.lead));
        townships.push(Township {
            code: code.map(|c| c.0).unwrap_or_default(),
            name: name.map(|n| n.0).unwrap_or_default(),
            kind: kind.unwrap_or(TownshipKind::Town),
            lead: None,
            communities: Vec::new(),
        });
        township_lines.push(at);
    }

    // [[community]]
    let mut communities = Vec::new();
    let mut community_lines = Vec::new();
    let mut community_kinds = Vec::new();
    let mut community_leads = Vec::new();
    let mut community_codes = HashMap::new();
    for c in &doc.community {
        let at = cx.line(c.span());
        let c = c.get_ref();
        let idx = CommunityIdx(communities.len() as u32);
        let code = cx.code("community.code", at, &c.code);
        if let Some((s, l)) = &code {
            cx.unique(&mut community_codes, "community.code", s, *l, idx);
        }
        let name = cx.text("community.name", at, &c.name);
        let township = match cx.text("community.township", at, &c.township) {
            Some((s, line)) => match township_codes.get(&s) {
                Some(&(i, _)) => Some(i),
                None => {
                    cx.err(line, "community.township", format!("unknown township \"{s}\""));
                    None
                }
            },
            None => None,
        };
        let kind = cx.choice(
            "community.kind",
            at,
            &c.kind,
            &[("community", CommunityKind::Community), ("village", CommunityKind::Village)],
        );
        let keywords = cx.keywords("community.keywords", &c.keywords);
        community_leads.push(cx.worker_ref("community.lead", &c.lead));
        if let Some(t) = township {
            townships[t.ix()].communities.push(idx);
        }
        communities.push(Community {
            code: code.map(|c| c.0).unwrap_or_default(),
            name: name.map(|n| n.0).unwrap_or_default(),
            kind: kind.unwrap_or(CommunityKind::Community),
            township: township.unwrap_or(TownshipIdx(0)),
            keywords,
            lead: None,
            grids: Vec::new(),
        });
        community_lines.push(at);
        community_kinds.push(kind);
    }
    for (i, t) in townships.iter().enumerate() {
        let registered = township_codes.get(&t.code).is_some_and(|&(ti, _)| ti == TownshipIdx(i as u32));
        if t.communities.is_empty() && registered {
            cx.err(
                township_lines[i],
                "township.code",
                format!("township {} has no community or village", t.code),
            );
        }
    }

    // [county]
    let Some(county) = &doc.county else {
        cx.err(1, "county", "the [county] table is missing");
        return None;
    };
    let at = cx.line(county.span());
    let county = county.get_ref();
    let name = cx.text("county.name", at, &county.name);
    let code = cx.code("county.code", at, &county.code);
    if let Some((c, l)) = &code {
        if c.len() > 8 || !c.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
            cx.err(
                *l,
                "county.code",
                format!("\"{c}\" is not a case number prefix: 1 to 8 letters A-Z or digits"),
            );
        }
    }
    let utc_offset_min = match &county.utc_offset_minutes {
        None => {
            cx.err(at, "county.utc_offset_minutes", "required but missing");
            0
        }
        Some(v) if !(-720..=840).contains(v.get_ref()) => {
            let line = cx.line(v.span());
            cx.err(line, "county.utc_offset_minutes", format!("{} is not between -720 and 840", v.get_ref()));
            0
        }
        Some(v) => *v.get_ref() as i32,
    };
    let centre = match &county.centre {
        None => {
            cx.err(at, "county.centre", "required but missing");
            (0.0, 0.0)
        }
        Some(v) => match v.get_ref().as_slice() {
            &[lon, lat] if (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat) => (lon, lat),
            _ => {
                let line = cx.line(v.span());
                cx.err(line, "county.centre", "expected [longitude, latitude] in degrees");
                (0.0, 0.0)
            }
        },
    };
    let command_centre = cx.text("county.command_centre", at, &county.command_centre);
    let warn_at_percent = match &county.warn_at_percent {
        None => 80,
        Some(v) if !(1..=99).contains(v.get_ref()) => {
            let line = cx.line(v.span());
            cx.err(line, "county.warn_at_percent", format!("{} is not between 1 and 99", v.get_ref()));
            80
        }
        Some(v) => *v.get_ref() as u8,
    };
    let general_category = match cx.code("county.general_category", at, &county.general_category) {
        None => None,
        Some((c, line)) => match category_codes.get(&c) {
            None => {
                cx.err(line, "county.general_category", format!("unknown category \"{c}\""));
                None
            }
            Some(&(i, _)) => {
                if let Some(h) = category_handling[i.ix()].filter(|&h| h != Handling::Grid) {
                    cx.err(
                        line,
                        "county.general_category",
                        format!(
                            "category \"{c}\" has handling = \"{}\"; the general category must be handled by the grid",
                            h.as_str()
                        ),
                    );
                }
                Some(i)
            }
        },
    };
    let boundary = match &county.boundary {
        None => None,
        Some(b) => boundary(&mut cx, b),
    };
    if doc.township.is_empty() {
        cx.err(1, "township", "no [[township]]: a county needs at least one");
    }

    Some(CountyFile {
        name: name.map(|n| n.0).unwrap_or_default(),
        code: code.map(|c| c.0).unwrap_or_default(),
        utc_offset_min,
        centre,
        command_centre: command_centre.map(|c| c.0).unwrap_or_default(),
        warn_at_percent,
        general_category,
        boundary,
        townships,
        township_leads,
        communities,
        community_kinds,
        community_lines,
        community_leads,
        departments,
        categories,
        townships_by_code: strip(township_codes),
        communities_by_code: strip(community_codes),
        departments_by_code: strip(dept_codes),
        categories_by_code: strip(category_codes),
    })
}

/// The longest time limit. Deadlines are reckoned in milliseconds as
/// `i64` (a deadline plus further limits for escalation, a percentage of a
/// limit for its warning point), so limits must stay far from overflow;
/// a year is beyond any county's rules.
const LIMIT_MAX: DurationMs = DurationMs(365 * 86_400_000);

/// `claim = { normal = "2h", urgent = "30m", emergency = "10m" }`
fn limits(
    cx: &mut Cx<'_, '_>,
    field: &str,
    table_line: usize,
    v: &Opt<Table<RawLimits>>,
) -> [Option<DurationMs>; 3] {
    let mut out = [None; 3];
    let Some(v) = v else {
        cx.err(
            table_line,
            field,
            "required but missing: { normal = \"..\", urgent = \"..\", emergency = \"..\" }",
        );
        return out;
    };
    let at = cx.line(v.span());
    let l = v.get_ref();
    for (i, (p, d)) in
        [("normal", &l.normal), ("urgent", &l.urgent), ("emergency", &l.emergency)].into_iter().enumerate()
    {
        let f = format!("{field}.{p}");
        let Some((s, line)) = cx.text(&f, at, d) else { continue };
        match DurationMs::parse(&s) {
            Ok(d) if d > LIMIT_MAX => {
                cx.err(line, f, format!("`{s}` is too long: a time limit is at most 365d"))
            }
            Ok(d) => out[i] = Some(d),
            Err(e) => cx.err(line, f, e.to_string()),
        }
    }
    out
}

/// `[county.boundary]`: a GeoJSON-style Polygon or MultiPolygon.
fn boundary(cx: &mut Cx<'_, '_>, b: &Spanned<Table<RawGeometry>>) -> Option<MultiPolygon<f64>> {
    let at = cx.line(b.span());
    let b = b.get_ref();
    let kind =
        cx.choice("county.boundary.type", at, &b.kind, &[("Polygon", false), ("MultiPolygon", true)])?;
    let Some(coords) = &b.coordinates else {
        cx.err(at, "county.boundary.coordinates", "required but missing");
        return None;
    };
    let line = cx.line(coords.span());
    let field = "county.boundary.coordinates";
    let polygons: Vec<Vec<Vec<Vec<f64>>>> = if kind {
        match nested(coords.get_ref(), 5) {
            Some(p) => {
                let polygons: Vec<_> = p.into_list().into_iter().map(Nested::into_polygon).collect();
                if polygons.is_empty() {
                    // Not a boundary every grid lies outside of.
                    cx.err(line, field, "empty: a MultiPolygon needs at least one polygon");
                    return None;
                }
                polygons
            }
            None => {
                cx.err(line, field, "expected polygons of rings of [longitude, latitude]");
                return None;
            }
        }
    } else {
        match nested(coords.get_ref(), 4) {
            Some(p) => vec![p.into_polygon()],
            None => {
                cx.err(line, field, "expected rings of [longitude, latitude]");
                return None;
            }
        }
    };
    let mut out = Vec::new();
    for (i, rings) in polygons.iter().enumerate() {
        match geometry::polygon(rings) {
            Ok(p) => out.push(p),
            Err(msg) => {
                let msg = if kind { format!("polygon {i}: {msg}") } else { msg };
                cx.err(line, field, msg);
                return None;
            }
        }
    }
    Some(MultiPolygon::new(out))
}

/// Nested TOML arrays of numbers, `depth` levels deep (1 = a number).
enum Nested {
    Number(f64),
    List(Vec<Nested>),
}

impl Nested {
    fn into_list(self) -> Vec<Nested> {
        match self {
            Nested::List(l) => l,
            Nested::Number(_) => Vec::new(),
        }
    }
    fn into_position(self) -> Vec<f64> {
        self.into_list().into_iter().map(|n| if let Nested::Number(x) = n { x } else { f64::NAN }).collect()
    }
    fn into_polygon(self) -> Vec<Vec<Vec<f64>>> {
        self.into_list()
            .into_iter()
            .map(|r| r.into_list().into_iter().map(Nested::into_position).collect())
            .collect()
    }
}

fn nested(v: &toml::Value, depth: usize) -> Option<Nested> {
    match (v, depth) {
        (toml::Value::Float(x), 1) => Some(Nested::Number(*x)),
        (toml::Value::Integer(i), 1) => Some(Nested::Number(*i as f64)),
        (toml::Value::Array(a), d) if d > 1 => {
            a.iter().map(|x| nested(x, d - 1)).collect::<Option<Vec<_>>>().map(Nested::List)
        }
        _ => None,
    }
}

/// A deserializer's key path as a field is named: its keys joined by dots,
/// without array indexes (`category.keywords`) or the keys that
/// `toml::Spanned` reads through; `None` if it has no key.
fn key_path(path: &serde_path_to_error::Path) -> Option<String> {
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            serde_path_to_error::Segment::Map { key } if !key.starts_with("$__") => Some(key.as_str()),
            _ => None,
        })
        .collect();
    (!keys.is_empty()).then(|| keys.join("."))
}

/// The field a TOML parse error points at: `table.key` from the text around
/// the error (the key on its line, the table above it), or `(toml)` when
/// there is neither.
fn field_at(src: &Src<'_>, offset: usize) -> String {
    let offset = offset.min(src.text.len());
    let line_no = src.line_of(offset);
    let line = src.line_text(line_no);
    let line_start = src.text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let mut col = (offset - line_start).min(line.len());
    while !line.is_char_boundary(col) {
        col -= 1;
    }
    let before = &line[..col];
    let key = if before.trim().is_empty() {
        // The error is on the key itself (e.g. an unknown field).
        line.split_once('=').map(|(k, _)| k.trim().trim_matches(['"', '\'']).to_string())
    } else {
        // The error is on a value: the nearest `key =` before it (an `=`
        // inside a quoted string is not one).
        last_equals(before).map(|i| key_before(&before[..i]))
    };
    let key = key
        .or_else(|| {
            // A line without a key of its own: a line of a multi-line value.
            let continues = last_equals(line).is_none() && table_header(line).is_none();
            continues.then(|| opened_above(src, line_no)).flatten()
        })
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let table = (1..=line_no).rev().find_map(|l| table_header(src.line_text(l))).map(str::to_string);
    match (table, key) {
        (Some(t), Some(k)) => format!("{t}.{k}"),
        (None, Some(k)) => k,
        (Some(t), None) => t,
        (None, None) => "(toml)".to_string(),
    }
}

/// For a value on a line of its own inside a multi-line array or inline
/// table, the key whose value it is: the nearest `key =` above (up to the
/// table's header) whose value opens more brackets than it closes.
fn opened_above(src: &Src<'_>, line_no: usize) -> Option<String> {
    for l in (1..line_no).rev() {
        let line = src.line_text(l);
        if table_header(line).is_some() {
            return None;
        }
        let Some(i) = last_equals(line) else { continue };
        let value = &line[i + 1..];
        let opens = value.matches(['[', '{']).count();
        let closes = value.matches([']', '}']).count();
        if opens <= closes {
            return None;
        }
        return Some(key_before(&line[..i]));
    }
    None
}

/// The key that `text` (a line up to one of its `=`) ends with, as the
/// field is named: each part of a dotted key without its quotes, joined by
/// dots (`a."key words"` is `a.key words`); a quoted part whole, spaces and
/// all. A bare part is what follows the last `{`, `,`, space, dot or quote
/// before it, whatever that character's width (a bare key with an
/// ideographic space is named from the space on).
fn key_before(text: &str) -> String {
    let mut rest = text.trim_end();
    let mut parts = Vec::new();
    loop {
        let quoted = match rest.chars().next_back() {
            Some(q @ ('"' | '\'')) => {
                opening_quote(rest, q).map(|open| (open, &rest[open + 1..rest.len() - 1]))
            }
            _ => None,
        };
        let (start, part) = quoted.unwrap_or_else(|| {
            // (A quote without its opening one is left out.)
            let bare = rest.trim_end_matches(['"', '\'']);
            let start = bare
                .char_indices()
                .rev()
                .find(|&(_, c)| matches!(c, '{' | ',' | '.' | '"' | '\'') || c.is_whitespace())
                .map_or(0, |(j, c)| j + c.len_utf8());
            (start, &bare[start..])
        });
        parts.push(part);
        // Another part before a dot (spaces around it are allowed)?
        match rest[..start].trim_end().strip_suffix('.') {
            Some(before) => rest = before.trim_end(),
            _ => break,
        }
    }
    parts.reverse();
    parts.join(".")
}

/// Where the quoted key that `k` ends with (in quotes `q`) opens: the
/// quote before its last one that is not escaped (a literal string, in
/// single quotes, has no escapes).
fn opening_quote(k: &str, q: char) -> Option<usize> {
    let mut end = k.len() - 1;
    while let Some(open) = k[..end].rfind(q) {
        if q == '\'' || !k[..open].ends_with('\\') {
            return Some(open);
        }
        end = open;
    }
    None
}

/// The table a line opens, `county.boundary` for `[county.boundary]` or
/// `township` for `[[township]]`; `None` for other lines, such as a line of
/// a multi-line array (`[130.55, 44.86], [130.59, 44.86],`).
fn table_header(line: &str) -> Option<&str> {
    let t = line.trim().strip_prefix('[')?;
    let t = t.strip_prefix('[').unwrap_or(t);
    // (A header missing a bracket, `[[township]`, is still one.)
    let (name, rest) = t.split_once(']').unwrap_or((t, ""));
    let rest = rest.trim_start_matches(']').trim_start();
    let header = (rest.is_empty() || rest.starts_with('#')) && !name.contains(',');
    header.then(|| name.trim())
}

/// The byte offset of the last `=` in a line of TOML that is not inside a
/// quoted string.
fn last_equals(line: &str) -> Option<usize> {
    let mut quote = None;
    let mut escaped = false;
    let mut last = None;
    for (i, c) in line.char_indices() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '=' => last = Some(i),
            None => {}
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::key_before;

    #[test]
    fn the_key_before_an_equals_sign_is_named_part_by_part() {
        for (text, key) in [
            ("keywords ", "keywords"),
            ("  { a = 1, b", "b"),
            ("a.b", "a.b"),
            ("a . b ", "a.b"),
            ("\"key words\"", "key words"),
            ("'key words'", "key words"),
            ("a.\"b c\"", "a.b c"),
            ("\"a\" . 'b c' ", "a.b c"),
            ("{ x = \"v\", \"b c\"", "b c"),
            ("{ x = 'v\\', 'b c'", "b c"),
            ("\"say \\\"hi\\\"\"", "say \\\"hi\\\""),
            ("'say \"hi\"'", "say \"hi\""),
            ("\"x\\\\\"", "x\\\\"),
            ("\"key\u{3000}words\"", "key\u{3000}words"),
            ("key\u{3000}words", "words"),
            ("key\u{3000}words\"", "words"),
            ("é\"", "é"),
            ("\"", ""),
            ("'", ""),
            ("", ""),
            (".", "."),
            ("\u{3000}.\u{3000}", "."),
        ] {
            assert_eq!(key_before(text), key, "{text:?}");
        }
    }
}
