//! Broken config directories: each test starts from the embedded Jidong
//! files, breaks one thing, loads the directory from disk and compares the
//! whole error report with the expected text (`$DIR` stands for the
//! directory). The expected texts are what an operator sees from
//! `gridline registry check`.

use gridline_registry::{embedded, Registry};

struct Files {
    county: String,
    workers: String,
    grids: String,
}

/// Replaces the first occurrence of `from` (which must exist) with `to`.
fn replace_first(text: &mut String, from: &str, to: &str) {
    let at = text.find(from).unwrap_or_else(|| panic!("{from:?} is not in the file"));
    text.replace_range(at..at + from.len(), to);
}

/// Replaces the whole of line `n` (1-based).
fn replace_line(text: &mut String, n: usize, to: &str) {
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines[n - 1] = to;
    *text = lines.join("\n");
}

fn line(text: &str, n: usize) -> &str {
    text.split('\n').nth(n - 1).expect("the line exists")
}

fn check(mutate: impl FnOnce(&mut Files), expect: &str) {
    let f = Files {
        county: embedded::COUNTY_TOML.to_string(),
        workers: embedded::WORKERS_CSV.to_string(),
        grids: embedded::GRIDS_GEOJSON.to_string(),
    };
    check_files(f, mutate, expect);
}

fn check_files(mut f: Files, mutate: impl FnOnce(&mut Files), expect: &str) {
    mutate(&mut f);
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("county.toml"), &f.county).unwrap();
    std::fs::write(dir.path().join("workers.csv"), &f.workers).unwrap();
    std::fs::write(dir.path().join("grids.geojson"), &f.grids).unwrap();
    let got = match Registry::load_dir(dir.path()) {
        Ok(_) => "(loaded without errors)".to_string(),
        Err(e) => e.to_string().replace(&dir.path().display().to_string(), "$DIR"),
    };
    let expect = expect.trim();
    assert!(got == expect, "\n--- expected:\n{expect}\n--- got:\n{got}\n");
}

#[test]
fn unchanged_files_load() {
    check(|_| {}, "(loaded without errors)");
}

#[test]
fn unknown_department_in_a_category() {
    check(
        |f| replace_first(&mut f.county, "department = \"water\"", "department = \"wter\""),
        r#"
$DIR/county.toml:82: category.department: unknown department "wter"
"#,
    );
}

#[test]
fn category_without_department() {
    check(
        |f| replace_first(&mut f.county, "department = \"water\"\n", ""),
        r#"
$DIR/county.toml:78: category.department: required when handling = "department"
"#,
    );
}

#[test]
fn grid_category_with_a_department() {
    check(
        |f| {
            replace_first(
                &mut f.county,
                "handling = \"grid\"\n",
                "handling = \"grid\"\ndepartment = \"civil\"\n",
            )
        },
        r#"
$DIR/county.toml:154: category.department: a category handled by the grid has no department (use handling = "grid_with_department" for both)
"#,
    );
}

#[test]
fn bad_duration() {
    check(
        |f| replace_first(&mut f.county, "normal = \"1h\"", "normal = \"1 hour\""),
        r#"
$DIR/county.toml:75: category.claim.normal: `1 hour` is not a duration: expected a positive number and s, m, h or d (e.g. 2h)
"#,
    );
}

#[test]
fn claim_longer_than_close() {
    check(
        |f| replace_first(&mut f.county, "normal = \"1h\"", "normal = \"3d\""),
        r#"
$DIR/county.toml:75: category.claim.normal: the time to claim (3d) is longer than the time to close (2d)
"#,
    );
}

/// A limit that does not read does not hide another priority's limits out
/// of order.
#[test]
fn claim_longer_than_close_beside_a_bad_duration() {
    check(
        |f| {
            replace_first(
                &mut f.county,
                "claim = { normal = \"1h\", urgent = \"30m\", emergency = \"10m\" }",
                "claim = { normal = \"1 hour\", urgent = \"30m\", emergency = \"5h\" }",
            )
        },
        r#"
$DIR/county.toml:75: category.claim.normal: `1 hour` is not a duration: expected a positive number and s, m, h or d (e.g. 2h)
$DIR/county.toml:75: category.claim.emergency: the time to claim (5h) is longer than the time to close (4h)
"#,
    );
}

#[test]
fn toml_syntax_error() {
    check(
        |f| replace_first(&mut f.county, "[[township]]", "[[township]"),
        r#"
$DIR/county.toml:256: township: invalid table header; expected `.`, `]]`
"#,
    );
}

#[test]
fn toml_wrong_type() {
    check(
        |f| replace_first(&mut f.county, "warn_at_percent = 80", "warn_at_percent = \"80\""),
        r#"
$DIR/county.toml:13: county.warn_at_percent: invalid type: string "80", expected an integer
"#,
    );
}

#[test]
fn toml_wrong_type_inside_a_multi_line_array() {
    check(
        |f| {
            replace_first(
                &mut f.county,
                r#"keywords = ["漏水", "停水", "水管""#,
                "keywords = [\n  \"漏水\",\n  42, \"停水\",\n  \"水管\"",
            )
        },
        r#"
$DIR/county.toml:85: category.keywords: invalid type: integer `42`, expected a string
"#,
    );
}

#[test]
fn toml_unknown_field() {
    check(
        |f| replace_first(&mut f.county, "handling = ", "handlign = "),
        r#"
$DIR/county.toml:63: category.handlign: unknown field `handlign`, expected one of `code`, `name`, `handling`, `department`, `keywords`, `claim`, `close`
"#,
    );
}

/// A key inside an inline table is named with the keys it is under, not
/// with the key before it on the line.
#[test]
fn toml_errors_inside_an_inline_table_name_the_whole_path() {
    let close = r#"close = { normal = "2d", urgent = "12h", emergency = "4h" }"#;
    check(
        |f| replace_first(&mut f.county, close, &close.replace("emergency", "emergncy")),
        r#"
$DIR/county.toml:76: category.close.emergncy: unknown field `emergncy`, expected one of `normal`, `urgent`, `emergency`
"#,
    );
    check(
        |f| replace_first(&mut f.county, close, &close.replace(r#""4h""#, "600")),
        r#"
$DIR/county.toml:76: category.close.emergency: invalid type: integer `600`, expected a string
"#,
    );
}

/// A value that is not the table expected says what is expected in the
/// file's terms, not Rust's; an array is not read as a table field by field.
#[test]
fn a_value_that_should_be_a_table_says_which_table() {
    let claim = r#"claim = { normal = "1h", urgent = "30m", emergency = "10m" }"#;
    check(
        |f| replace_first(&mut f.county, claim, r#"claim = "1h""#),
        r#"
$DIR/county.toml:75: category.claim: invalid type: string "1h", expected a table of durations { normal = "..", urgent = "..", emergency = ".." }
"#,
    );
    check(
        |f| replace_first(&mut f.county, claim, r#"claim = ["1h", "30m", "10m"]"#),
        r#"
$DIR/county.toml:75: category.claim: invalid type: array, expected a table of durations { normal = "..", urgent = "..", emergency = ".." }
"#,
    );
    check(
        |f| replace_first(&mut f.county, "\n[county]\n", "\n[[county]]\n"),
        r#"
$DIR/county.toml:7: county: invalid type: an array of tables [[county]], expected the table [county] (in single brackets, once)
"#,
    );
}

/// An empty MultiPolygon is one problem, not a boundary that every grid
/// lies outside of.
#[test]
fn an_empty_boundary() {
    check(
        |f| {
            let at = f.county.find("[county.boundary]").unwrap();
            f.county.truncate(at);
            f.county.push_str("[county.boundary]\ntype = \"MultiPolygon\"\ncoordinates = []\n");
        },
        r#"
$DIR/county.toml:1481: county.boundary.coordinates: empty: a MultiPolygon needs at least one polygon
"#,
    );
}

#[test]
fn empty_required_fields() {
    check(
        |f| {
            replace_first(&mut f.county, "name = \"县水务局\"", "name = \"\"");
            replace_first(&mut f.county, "name = \"鸡东镇\"\n", "");
            replace_first(&mut f.workers, "W00004,尹平昌,", "W00004,,");
            replace_first(&mut f.grids, "\"name\":\"南华社区第2网格\"", "\"name\":\" \"");
        },
        r#"
$DIR/county.toml:20: department.name: must not be empty
$DIR/county.toml:256: township.name: required but missing
$DIR/grids.geojson:3: feature 1: properties.name: must not be empty
$DIR/workers.csv:5: name: must not be empty
"#,
    );
}

#[test]
fn invalid_kinds() {
    check(
        |f| {
            replace_first(&mut f.county, "kind = \"town\"", "kind = \"city\"");
            replace_first(&mut f.workers, ",full_time,", ",fulltime,");
            replace_first(&mut f.grids, "\"kind\":\"urban\"", "\"kind\":\"town\"");
        },
        r#"
$DIR/county.toml:259: township.kind: "city" is not valid: expected town or township
$DIR/grids.geojson:2: feature 0: properties.kind: "town" is not valid: expected urban, rural or dedicated
$DIR/workers.csv:2: kind: "fulltime" is not valid: expected full_time, part_time or department
"#,
    );
}

#[test]
fn duplicate_codes_in_county() {
    check(
        |f| {
            replace_first(&mut f.county, "code = \"drainage\"", "code = \"water\"");
            f.county.push_str("\n[[township]]\ncode = \"JDZ\"\nname = \"新镇\"\nkind = \"town\"\n");
        },
        r#"
$DIR/county.toml:88: category.code: duplicate code "water" (first defined at line 79)
$DIR/county.toml:1509: township.code: duplicate code "JDZ" (first defined at line 257)
"#,
    );
}

#[test]
fn unknown_references_in_county() {
    check(
        |f| {
            replace_first(&mut f.county, "general_category = \"general\"", "general_category = \"generl\"");
            replace_first(&mut f.county, "township = \"JDZ\"", "township = \"JDX\"");
            replace_first(&mut f.county, "lead = \"W00001\"", "lead = \"W99999\"");
        },
        r#"
$DIR/county.toml:14: county.general_category: unknown category "generl"
$DIR/county.toml:321: community.township: unknown township "JDX"
$DIR/county.toml:324: community.lead: unknown worker "W99999" (not in workers.csv)
"#,
    );
}

#[test]
fn general_category_handled_by_a_department() {
    check(
        |f| replace_first(&mut f.county, "general_category = \"general\"", "general_category = \"water\""),
        r#"
$DIR/county.toml:14: county.general_category: category "water" has handling = "department"; the general category must be handled by the grid
"#,
    );
}

/// ROUTE reports the keywords it matched joined by commas: a keyword with
/// a comma in it would read as two. Refused in every keyword list.
#[test]
fn a_keyword_with_a_comma_is_refused() {
    check(
        |f| replace_first(&mut f.county, "\"下水道\"", "\"下水道,化粪池\""),
        r#"
$DIR/county.toml:92: category.keywords: keyword "下水道,化粪池" contains `,`, which separates keywords in ROUTE's reply: list its parts as keywords of their own
"#,
    );
    check(
        |f| replace_first(&mut f.grids, "\"嘉禾公寓\"", "\"嘉禾公寓,1号楼\""),
        r#"
$DIR/grids.geojson:2: feature 0: properties.keywords: keyword "嘉禾公寓,1号楼" contains `,`, which separates keywords in ROUTE's reply: list its parts as keywords of their own
"#,
    );
}

/// Names and keywords reach replies, the case log and a terminal
/// (`gridline route`): a control character or a line break in one is named
/// with its file, line and field.
#[test]
fn a_control_character_in_a_name_or_keyword_is_refused() {
    check(
        |f| {
            replace_first(&mut f.workers, "W00001,杜慧,", "W00001,杜\u{7}慧,");
            replace_first(&mut f.county, "name = \"县水务局\"", "name = \"县水务\\u2028局\"");
            replace_first(&mut f.county, "\"下水道\"", "\"下水\\n道\"");
            replace_first(
                &mut f.grids,
                "\"name\":\"南华社区第1网格\"",
                "\"name\":\"南华社区\\u001b[2J第1网格\"",
            );
            replace_first(&mut f.grids, "\"嘉禾公寓\"", "\"嘉禾\\t公寓\"");
        },
        r#"
$DIR/county.toml:20: department.name: a control character or line break (U+2028) is not allowed: names are one line
$DIR/county.toml:92: category.keywords: a control character or line break (U+000A) is not allowed: names are one line
$DIR/grids.geojson:2: feature 0: properties.name: a control character or line break (U+001B) is not allowed: names are one line
$DIR/grids.geojson:2: feature 0: properties.keywords: a control character or line break (U+0009) is not allowed: names are one line
$DIR/workers.csv:2: name: a control character or line break (U+0007) is not allowed: names are one line
"#,
    );
}

#[test]
fn keyword_in_two_categories() {
    check(
        |f| replace_first(&mut f.county, "\"下水道\"", "\"漏水\""),
        r#"
$DIR/county.toml:92: category.keywords: keyword "漏水" already belongs to category water (line 83)
"#,
    );
}

#[test]
fn worker_in_a_missing_grid() {
    check(
        |f| replace_first(&mut f.workers, ",JDZ-NH-01,", ",JDZ-NH-99,"),
        r#"
$DIR/workers.csv:2: grid: unknown grid "JDZ-NH-99" (not in grids.geojson)
"#,
    );
}

#[test]
fn duplicate_worker_id() {
    check(
        |f| replace_first(&mut f.workers, "W00003,", "W00002,"),
        r#"
$DIR/workers.csv:4: id: duplicate worker id "W00002" (first at line 3)
"#,
    );
}

#[test]
fn worker_with_both_or_neither_grid_and_department() {
    check(
        |f| {
            let w = line(&f.workers, 2).replace(",,,", ",water,,");
            replace_line(&mut f.workers, 2, &w);
            let w = line(&f.workers, 3).replace(",JDZ-NH-01,", ",,");
            replace_line(&mut f.workers, 3, &w);
            let last = f.workers.trim_end().lines().count();
            let w = line(&f.workers, last).replace(",,health,", ",JDZ-NH-01,,");
            replace_line(&mut f.workers, last, &w);
        },
        r#"
$DIR/workers.csv:2: department: a full_time worker has a grid, not a department (professionals have kind department)
$DIR/workers.csv:3: grid: required for a part_time worker
$DIR/workers.csv:2492: department: required for a department professional
$DIR/workers.csv:2492: grid: a department professional has a department, not a grid
"#,
    );
}

#[test]
fn worker_unknown_department_and_township() {
    check(
        |f| {
            let last = f.workers.trim_end().lines().count();
            let w = line(&f.workers, last).replace(",health,", ",helth,").replace(",YAZ,", ",YAZ;XXZ,");
            replace_line(&mut f.workers, last, &w);
        },
        r#"
$DIR/workers.csv:2492: department: unknown department "helth" (not in county.toml)
$DIR/workers.csv:2492: townships: unknown township "XXZ" (not in county.toml)
"#,
    );
}

#[test]
fn csv_wrong_column_count_bad_phone_and_duty() {
    check(
        |f| {
            // Line 2: W00001, full-time; 3: W00002 and 4: W00003, part-time; 5: W00004, full-time.
            let w = line(&f.workers, 2).to_string();
            replace_line(&mut f.workers, 2, &format!("{w},extra"));
            let w = line(&f.workers, 3).rsplit_once(',').map(|(a, _)| format!("{a},8:00-12:00")).unwrap();
            replace_line(&mut f.workers, 3, &w);
            let w =
                line(&f.workers, 4).rsplit_once(',').map(|(a, _)| format!("{a},08:00-12:00;20:00")).unwrap();
            replace_line(&mut f.workers, 4, &w);
            let w = line(&f.workers, 5).replace(",13601781553,", ",136-0178-1553,");
            replace_line(&mut f.workers, 5, &format!("{w}08:00-12:00"));
        },
        r#"
$DIR/workers.csv:2: (row): expected 8 columns, found 9
$DIR/workers.csv:3: duty: "8:00-12:00" is not a duty window: expected HH:MM-HH:MM, e.g. 08:00-12:00 or 20:00-08:00
$DIR/workers.csv:4: duty: "20:00" is not a duty window: expected HH:MM-HH:MM, e.g. 08:00-12:00 or 20:00-08:00
$DIR/workers.csv:5: phone: "136-0178-1553" is not a phone number: 3 to 20 digits, nothing else
$DIR/workers.csv:5: duty: only part-time workers have duty hours; leave it empty
"#,
    );
}

#[test]
fn csv_bad_header() {
    check(
        |f| replace_first(&mut f.workers, "townships,phone", "township,phone"),
        r#"
$DIR/workers.csv:1: (header): unknown column "township"; the columns are id,name,kind,grid,department,townships,phone,duty
$DIR/workers.csv:1: (header): missing column "townships"; the columns are id,name,kind,grid,department,townships,phone,duty
"#,
    );
}

#[test]
fn duplicate_grid_code() {
    check(
        |f| replace_first(&mut f.grids, "\"code\":\"JDZ-NH-03\"", "\"code\":\"JDZ-NH-02\""),
        r#"
$DIR/grids.geojson:4: feature 2: properties.code: duplicate grid code "JDZ-NH-02" (first at feature 1)
$DIR/workers.csv:8: grid: unknown grid "JDZ-NH-03" (not in grids.geojson)
$DIR/workers.csv:9: grid: unknown grid "JDZ-NH-03" (not in grids.geojson)
$DIR/workers.csv:10: grid: unknown grid "JDZ-NH-03" (not in grids.geojson)
$DIR/workers.csv:11: grid: unknown grid "JDZ-NH-03" (not in grids.geojson)
$DIR/workers.csv:12: grid: unknown grid "JDZ-NH-03" (not in grids.geojson)
"#,
    );
}

#[test]
fn unknown_community_and_kind_mismatch() {
    check(
        |f| {
            replace_first(&mut f.grids, "\"community\":\"JDZ-NH\"", "\"community\":\"JDZ-NX\"");
            replace_first(&mut f.grids, "\"kind\":\"rural\"", "\"kind\":\"urban\"");
        },
        r#"
$DIR/grids.geojson:2: feature 0: properties.community: unknown community "JDZ-NX" (not in county.toml)
$DIR/grids.geojson:93: feature 91: properties.kind: an urban grid cannot be in a village (JDZ-V01); its grids are rural
"#,
    );
}

#[test]
fn overlapping_grids() {
    // Move the second corner of grid JDZ-NH-01 east, into JDZ-NH-02.
    check(
        |f| replace_first(&mut f.grids, "[131.091386,45.237825]", "[131.093386,45.237825]"),
        r#"
$DIR/grids.geojson:3: feature 1: geometry: overlaps grid JDZ-NH-01 (feature 0)
"#,
    );
}

#[test]
fn invalid_polygons() {
    check(
        |f| {
            let bowtie = "[[[131.1,45.2],[131.2,45.3],[131.2,45.2],[131.1,45.3],[131.1,45.2]]]";
            let open = "[[[131.1,45.2],[131.2,45.2],[131.2,45.3],[131.1,45.3]]]";
            let short = "[[[131.1,45.2],[131.2,45.2],[131.1,45.2]]]";
            for (n, coords) in [(4, bowtie), (5, open), (6, short)] {
                let l = line(&f.grids, n);
                let at = l.find("\"coordinates\":").unwrap() + "\"coordinates\":".len();
                let end = l.rfind("}}").unwrap();
                let new = format!("{}{coords}{}", &l[..at], &l[end..]);
                replace_line(&mut f.grids, n, &new);
            }
        },
        r#"
$DIR/grids.geojson:4: feature 2: geometry: invalid polygon: ring 0 crosses itself at [131.15, 45.25]
$DIR/grids.geojson:5: feature 3: geometry: invalid polygon: ring 0 is not closed: its last point must repeat its first
$DIR/grids.geojson:6: feature 4: geometry: invalid polygon: ring 0 has 3 distinct points; a ring needs at least 4, the last repeating the first
"#,
    );
}

#[test]
fn geometry_of_the_wrong_type() {
    check(
        |f| replace_first(&mut f.grids, "\"type\":\"Polygon\"", "\"type\":\"LineString\""),
        r#"
$DIR/grids.geojson:2: feature 0: geometry: expected a Polygon, found a LineString
"#,
    );
}

/// Two `features` lists (two files pasted together, say): JSON readers keep
/// the last key of a name, so every grid of the first was dropped without
/// a word, and the report blamed hundreds of communities for having no
/// grid. The duplicate itself is named, with its line; so is one inside a
/// feature.
#[test]
fn a_key_given_twice_is_named_not_silently_dropped() {
    check(
        |f| {
            let end = f.grids.trim_end().len();
            f.grids.replace_range(end - 1.., ",\n\"features\": []}\n");
        },
        r#"
$DIR/grids.geojson:629: (json): duplicate key `features`: a JSON reader keeps only the last (column 10)
"#,
    );
    check(
        |f| {
            replace_first(
                &mut f.grids,
                "\"properties\":{\"code\":\"JDZ-NH-01\"",
                "\"properties\":{\"code\":\"JDZ-NH-01\",\"code\":\"X\"",
            )
        },
        r#"
$DIR/grids.geojson:2: (json): duplicate key `code`: a JSON reader keeps only the last (column 57)
"#,
    );
}

#[test]
fn json_syntax_error() {
    check(
        |f| replace_first(&mut f.grids, "\"features\":[", "\"features\":[,"),
        r#"
$DIR/grids.geojson:1: (json): expected value (column 188)
"#,
    );
}

#[test]
fn dedicated_grid_outside_any_grid() {
    // Move the school JDZ-S01 far into the north of the county.
    check(
        |f| {
            let n = f.grids.lines().position(|l| l.contains("\"JDZ-S01\"")).unwrap() + 1;
            let l = line(&f.grids, n).replace("[131.", "[130.").replace(",45.", ",44.");
            replace_line(&mut f.grids, n, &l);
        },
        r#"
$DIR/grids.geojson:620: feature 618: geometry: a dedicated grid must lie inside one non-dedicated grid; none contains it
"#,
    );
}

#[test]
fn grid_outside_the_boundary() {
    // Pull the county's south-west corner in; only grid MDX-V01-01 has it.
    check(
        |f| f.county = f.county.replace("[130.558885, 44.862464]", "[130.568885, 44.872464]"),
        r#"
$DIR/grids.geojson:587: feature 585: geometry: lies (partly) outside the county boundary ([county.boundary] in county.toml)
"#,
    );
}

#[test]
fn missing_directory() {
    let err = Registry::load_dir(std::path::Path::new("/nonexistent/gridline-config")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/nonexistent/gridline-config: (directory): no such directory; \
         a config directory holds county.toml, workers.csv, grids.geojson"
    );
}

#[test]
fn missing_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("workers.csv"), embedded::WORKERS_CSV).unwrap();
    let err = Registry::load_dir(dir.path()).unwrap_err();
    let got = err.to_string().replace(&dir.path().display().to_string(), "$DIR");
    assert_eq!(
        got,
        "$DIR/county.toml: (file): cannot read: No such file or directory (os error 2)\n\
         $DIR/grids.geojson: (file): cannot read: No such file or directory (os error 2)"
    );
}

/// A file that cannot be read (missing, here) does not stop the others
/// from being checked; references into it are not reported as unknown.
#[test]
fn a_missing_file_does_not_stop_the_others_from_being_checked() {
    let dir = tempfile::tempdir().unwrap();
    let county = embedded::COUNTY_TOML.replacen("name = \"县水务局\"", "name = \"\"", 1);
    let grids = embedded::GRIDS_GEOJSON.replacen("\"name\":\"南华社区第2网格\"", "\"name\":\" \"", 1);
    std::fs::write(dir.path().join("county.toml"), county).unwrap();
    std::fs::write(dir.path().join("grids.geojson"), grids).unwrap();
    let err = Registry::load_dir(dir.path()).unwrap_err();
    let got = err.to_string().replace(&dir.path().display().to_string(), "$DIR");
    assert_eq!(
        got,
        "$DIR/county.toml:20: department.name: must not be empty\n\
         $DIR/grids.geojson:3: feature 1: properties.name: must not be empty\n\
         $DIR/workers.csv: (file): cannot read: No such file or directory (os error 2)"
    );
}

/// A quote never closed takes the rest of workers.csv into one field: it
/// is named where it opens, and the leads in county.toml that the lost rows
/// would have listed are not reported as unknown workers.
#[test]
fn an_unterminated_quote_in_workers_csv_is_named_without_its_consequences() {
    check(
        |f| replace_first(&mut f.workers, "W00003,韩成,", "W00003,\"韩成,"),
        r#"
$DIR/workers.csv:4: name: unterminated quote: the quoted field opened on line 4 is never closed, so the rest of the file (to line 2492) was read into it; close the quote (a quote inside a quoted field is written twice: "")
"#,
    );
    // In the last column the row still has its eight.
    check(
        |f| replace_first(&mut f.workers, "13207072815,06:00", "13207072815,\"06:00"),
        r#"
$DIR/workers.csv:3: duty: unterminated quote: the quoted field opened on line 3 is never closed, so the rest of the file (to line 2492) was read into it; close the quote (a quote inside a quoted field is written twice: "")
"#,
    );
}

#[test]
fn a_workers_csv_with_only_its_header() {
    check(
        |f| f.workers = line(&f.workers, 1).to_string() + "\n",
        r#"
$DIR/workers.csv:1: (rows): no workers (only the header): a county needs its workers listed
"#,
    );
}

/// A row of the wrong length is reported; a lead that may have been in it
/// (or in any row not read) is not also an unknown worker.
#[test]
fn a_short_row_does_not_make_leads_unknown_workers() {
    check(
        |f| replace_first(&mut f.workers, "W00004,尹平昌,full_time,", "W00004;尹平昌;full_time;"),
        r#"
$DIR/workers.csv:5: (row): expected 8 columns, found 5
"#,
    );
}

/// A county written from scratch: one township, one village of two grids
/// with a school inside one, no boundary (so it is the grids' union).
const SMALL_COUNTY: &str = r#"
[county]
name = "小县"
code = "XX"
utc_offset_minutes = 480
centre = [120.5, 40.5]
command_centre = "小县网格中心"
general_category = "general"

[[township]]
code = "T1"
name = "一镇"
kind = "town"
lead = "W1"

[[community]]
code = "T1-V1"
name = "一村"
township = "T1"
kind = "village"
keywords = ["一村"]

[[department]]
code = "water"
name = "水务局"

[[category]]
code = "general"
name = "综合"
handling = "grid"
claim = { normal = "2h", urgent = "1h", emergency = "30m" }
close = { normal = "3d", urgent = "1d", emergency = "4h" }

[[category]]
code = "water"
name = "供水"
handling = "department"
department = "water"
keywords = ["漏水"]
claim = { normal = "2h", urgent = "1h", emergency = "30m" }
close = { normal = "3d", urgent = "1d", emergency = "4h" }
"#;

const SMALL_WORKERS: &str = "id,name,kind,grid,department,townships,phone,duty
W1,甲,full_time,T1-V1-01,,,13800000001,
W2,乙,part_time,T1-V1-02,,,,20:00-08:00
W3,丙,department,,water,T1,13800000003,
";

const SMALL_GRIDS: &str = r#"{"type": "FeatureCollection", "features": [
{"type": "Feature", "properties": {"code": "T1-V1-01", "name": "一村一网格", "kind": "rural", "community": "T1-V1"},
 "geometry": {"type": "Polygon", "coordinates": [[[120, 40], [121, 40], [121, 41], [120, 41], [120, 40]]]}},
{"type": "Feature", "properties": {"code": "T1-V1-02", "name": "一村二网格", "kind": "rural", "community": "T1-V1"},
 "geometry": {"type": "Polygon", "coordinates": [[[121, 40], [122, 40], [122, 41], [121, 41], [121, 40]]]}},
{"type": "Feature", "properties": {"code": "T1-S1", "name": "一中", "kind": "dedicated", "community": "T1-V1", "site": "school"},
 "geometry": {"type": "Polygon", "coordinates": [[[121.2, 40.2], [121.4, 40.2], [121.4, 40.4], [121.2, 40.4], [121.2, 40.2]]]}}
]}"#;

fn check_small(mutate: impl FnOnce(&mut Files), expect: &str) {
    check_files(
        Files { county: SMALL_COUNTY.into(), workers: SMALL_WORKERS.into(), grids: SMALL_GRIDS.into() },
        mutate,
        expect,
    );
}

#[test]
fn a_small_county_without_a_boundary_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("county.toml"), SMALL_COUNTY).unwrap();
    std::fs::write(dir.path().join("workers.csv"), SMALL_WORKERS).unwrap();
    std::fs::write(dir.path().join("grids.geojson"), SMALL_GRIDS).unwrap();
    let r = Registry::load_dir(dir.path()).unwrap();
    use geo::{Area, Contains};
    assert!((r.county.boundary.unsigned_area() - 2.0).abs() < 1e-9, "the union of the two grids");
    assert!(r.county.boundary.contains(&geo::Point::new(121.0, 40.5)), "the shared edge is inside");
    let school = r.grid(r.grid_idx("T1-S1").unwrap());
    assert_eq!(school.parent, r.grid_idx("T1-V1-02"));
    assert_eq!(r.township(r.township_idx("T1").unwrap()).lead, r.worker_idx("W1"));
    let water = r.department_idx("water").unwrap();
    assert_eq!(r.professionals(water, r.township_idx("T1").unwrap()), [r.worker_idx("W3").unwrap()]);
    let w2 = r.worker(r.worker_idx("W2").unwrap());
    assert!(w2.on_duty(23 * 60) && !w2.on_duty(12 * 60));
    assert_eq!(r.community(r.community_idx("T1-V1").unwrap()).grids.len(), 3);
}

#[test]
fn small_county_errors() {
    check_small(
        |f| {
            f.county = f.county.replace("kind = \"village\"", "kind = \"hamlet\"");
            f.county = f.county.replace("code = \"XX\"", "code = \"xx-1\"");
            f.grids = f.grids.replace("[121.2, 40.2]", "[120.9, 40.2]");
        },
        r#"
$DIR/county.toml:4: county.code: "xx-1" is not a case number prefix: 1 to 8 letters A-Z or digits
$DIR/county.toml:20: community.kind: "hamlet" is not valid: expected community or village
$DIR/grids.geojson:6: feature 2: geometry: a dedicated grid must lie inside one non-dedicated grid; none contains it
"#,
    );
}

#[test]
fn no_grids_at_all() {
    check_small(
        |f| {
            f.grids = "{\"type\":\"FeatureCollection\",\"features\":[]}".into();
            f.workers =
                "id,name,kind,grid,department,townships,phone,duty\nW1,甲,full_time,T1-V1-01,,,,\n".into();
        },
        r#"
$DIR/county.toml:16: community.code: community T1-V1 has no grid in grids.geojson
$DIR/grids.geojson:1: features: no grids: a county needs at least one urban or rural grid
$DIR/workers.csv:2: grid: unknown grid "T1-V1-01" (not in grids.geojson)
"#,
    );
}

#[test]
fn bytes_that_are_not_utf8_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut county = SMALL_COUNTY.as_bytes().to_vec();
    // Line 3 is `name = "小县"`: GBK-encoded, say (小县 is D0 A1 CF D8).
    let at = county.windows(6).position(|w| w == "小县".as_bytes()).unwrap();
    county.splice(at..at + 6, [0xd0, 0xa1, 0xcf, 0xd8]);
    std::fs::write(dir.path().join("county.toml"), county).unwrap();
    std::fs::write(dir.path().join("workers.csv"), SMALL_WORKERS).unwrap();
    std::fs::write(dir.path().join("grids.geojson"), SMALL_GRIDS).unwrap();
    let err = Registry::load_dir(dir.path()).unwrap_err();
    let got = err.to_string().replace(&dir.path().display().to_string(), "$DIR");
    assert_eq!(
        got,
        "$DIR/county.toml:3: (encoding): not UTF-8: byte 0xCF at column 10; save the file as UTF-8"
    );
}

#[cfg(unix)]
#[test]
fn a_config_file_that_is_not_a_regular_file_is_not_read_past_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("county.toml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::fs::write(dir.path().join("workers.csv"), SMALL_WORKERS).unwrap();
    std::fs::write(dir.path().join("grids.geojson"), SMALL_GRIDS).unwrap();
    // Something writes more than the limit into it (a pipe, a device...).
    // Left running if the loader never opens the pipe.
    std::thread::spawn(move || {
        use std::io::Write;
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let chunk = vec![b'#'; 1 << 20];
        for _ in 0..(gridline_registry::load::FILE_BYTES_MAX >> 20) + 8 {
            if w.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let err = Registry::load_dir(dir.path()).unwrap_err();
    let got = err.to_string().replace(&dir.path().display().to_string(), "$DIR");
    assert_eq!(got, "$DIR/county.toml: (file): not a regular file");
}

/// A comb: `teeth` long horizontal teeth off a thin spine, all edges
/// overlapping in x. Valid, and well within the 64 MiB limit.
fn comb(teeth: usize) -> String {
    let h = 0.5 / teeth as f64;
    let top = 40.0 + 2.0 * teeth as f64 * h;
    let mut ring = vec![(120.0, 40.0), (120.0, top)];
    for i in 0..teeth {
        let yt = top - 2.0 * i as f64 * h;
        ring.extend([(121.0, yt), (121.0, yt - h)]);
        if i + 1 < teeth {
            ring.extend([(120.01, yt - h), (120.01, yt - 2.0 * h)]);
        }
    }
    ring.extend([(121.0, 40.0), (120.0, 40.0)]);
    let coords: Vec<String> = ring.iter().map(|(x, y)| format!("[{x}, {y}]")).collect();
    format!(
        r#"{{"type": "FeatureCollection", "features": [{{"type": "Feature", "properties": {{"code": "T1-V1-01", "name": "梳", "kind": "rural", "community": "T1-V1"}}, "geometry": {{"type": "Polygon", "coordinates": [[{}]]}}}}]}}"#,
        coords.join(",")
    )
}

/// A valid polygon of 32,000 points (1 MB) loads: its self-crossing check
/// (an R-tree over the edges; the unit test in `geometry.rs` bounds the
/// pairs it looks at) took about 38 s in a debug build as a sweep over x.
#[test]
fn a_polygon_of_many_long_edges_loads() {
    check_small(
        |f| {
            f.grids = comb(8000);
            f.workers =
                "id,name,kind,grid,department,townships,phone,duty\nW1,甲,full_time,T1-V1-01,,,,\n".into();
            f.county = f.county.replace("lead = \"W1\"\n", "");
        },
        "(loaded without errors)",
    );
}

/// A TOML syntax error after a string holding an ideographic space (U+3000,
/// as a Chinese input method types it) and an `=`: the field is the key of
/// the line, and finding it must not slice inside the 3-byte space.
#[test]
fn toml_syntax_error_after_a_string_with_a_wide_space_and_an_equals_sign() {
    check(
        |f| replace_first(&mut f.county, "name = \"鸡东县\"", "name = \"鸡东　县=鸡东\" 县"),
        r#"
$DIR/county.toml:8: county.name: expected newline, `#`
"#,
    );
}

/// A syntax error on a line of a multi-line array: the field is the key
/// above whose value the array is, named as written but without quotes:
/// a quoted key whole, spaces and all, not by its last word; a dotted key
/// with every part (`x."key words"` is `x.key words`); a quote inside a
/// single-quoted part is the key's own. A quoted key holding an ideographic
/// space (U+3000) must not be sliced inside the 3-byte space (a panic
/// instead of the report).
#[test]
fn toml_syntax_error_in_a_multi_line_array_names_the_key_above_as_written() {
    for (key, named) in [
        ("\"key　words\"", "key　words"),
        ("\"key words\"", "key words"),
        ("'key words'", "key words"),
        ("x.\"key words\"", "x.key words"),
        ("x . 'key words'", "x.key words"),
        ("\"x\".\"key\"", "x.key"),
        ("'say \"hi\"'", "say \"hi\""),
    ] {
        check(
            |f| {
                replace_first(
                    &mut f.county,
                    r#"keywords = ["漏水", "停水", "水管""#,
                    &format!("{key} = [\n  \"漏水\",\n  \"停水\" \"水管\""),
                )
            },
            &format!("$DIR/county.toml:85: category.{named}: invalid array; expected `]`"),
        );
    }
}

/// A syntax error inside the boundary's coordinates, an array over many
/// lines that start with `[`: those lines are positions, not table headers,
/// and the key is the one whose value the array is.
#[test]
fn toml_syntax_error_in_a_multi_line_array_names_its_key() {
    check(
        |f| {
            replace_first(
                &mut f.county,
                "[130.558885, 44.862464], [130.593953",
                "[130.558885, 44.862464] [130.593953",
            )
        },
        r#"
$DIR/county.toml:1482: county.boundary.coordinates: invalid array; expected `]`
"#,
    );
}

/// An element of `features` that is not an object still counts: the
/// features after it are named at their own lines, not their neighbours'.
#[test]
fn a_feature_that_is_not_an_object_does_not_shift_the_lines_of_the_others() {
    check_small(
        |f| {
            f.grids = f.grids.replacen("\"features\": [", "\"features\": [\nnull,", 1);
            f.grids = f.grids.replacen("\"name\": \"一村二网格\"", "\"name\": 5", 1);
        },
        r#"
$DIR/grids.geojson:2: feature 0: type: expected a GeoJSON Feature: {"type": "Feature", "properties": {...}, "geometry": {...}}
$DIR/grids.geojson:5: feature 2: properties.name: expected a string, found 5
"#,
    );
}

/// UTF-8 with a byte-order mark, as Windows editors save it, in every file.
#[test]
fn a_byte_order_mark_is_tolerated_in_every_file() {
    check_small(
        |f| {
            for text in [&mut f.county, &mut f.workers, &mut f.grids] {
                text.insert(0, '\u{feff}');
            }
        },
        "(loaded without errors)",
    );
}

/// A time limit is at most a year: a longer one (this one parses as an
/// i64 of milliseconds) overflowed the server's deadline arithmetic.
#[test]
fn a_time_limit_longer_than_a_year() {
    check(
        |f| {
            replace_first(&mut f.county, "normal = \"2d\"", "normal = \"9000000000000000s\"");
            replace_first(&mut f.county, "urgent = \"12h\"", "urgent = \"366d\"");
            replace_first(&mut f.county, "emergency = \"4h\"", "emergency = \"365d\"");
        },
        r#"
$DIR/county.toml:76: category.close.normal: `9000000000000000s` is too long: a time limit is at most 365d
$DIR/county.toml:76: category.close.urgent: `366d` is too long: a time limit is at most 365d
"#,
    );
}

/// A hole inside another hole (an "island"): the overlap check counted the
/// island as the grid's, routing did not; such a polygon is refused.
#[test]
fn a_hole_inside_another_hole() {
    check_small(
        |f| {
            f.grids = f.grids.replacen(
                "[[[120, 40], [121, 40], [121, 41], [120, 41], [120, 40]]]",
                "[[[120, 40], [121, 40], [121, 41], [120, 41], [120, 40]],
                  [[120.1, 40.1], [120.9, 40.1], [120.9, 40.9], [120.1, 40.9], [120.1, 40.1]],
                  [[120.2, 40.2], [120.8, 40.2], [120.8, 40.8], [120.2, 40.8], [120.2, 40.2]]]",
                1,
            );
        },
        r#"
$DIR/grids.geojson:2: feature 0: geometry: invalid polygon: ring 2 (a hole) lies inside ring 1, another hole: an island in a hole is a grid of its own
"#,
    );
}

/// Routing reads full-width forms as ASCII and Chinese numerals as Arabic
/// digits, so `ＰＭ２.５` and `PM2.5`, or `三楼漏水` and `3楼漏水`, are one
/// keyword: in two categories, the second could never win with it.
#[test]
fn keyword_in_two_categories_written_two_ways() {
    for (first, second) in [("PM2.5", "ＰＭ２.５"), ("3楼漏水", "三楼漏水")] {
        check_small(
            |f| {
                let with = |k: &str| format!("handling = \"grid\"\nkeywords = [\"{k}\"]\n");
                replace_first(&mut f.county, "handling = \"grid\"\n", &with(first));
                replace_first(&mut f.county, "keywords = [\"漏水\"]", &format!("keywords = [\"漏水\", \"{second}\"]"));
            },
            &format!(
                "\n$DIR/county.toml:40: category.keywords: keyword \"{second}\" already belongs to category general (line 31, as \"{first}\"; routing matches the two alike)\n"
            ),
        );
    }
}

/// An empty keyword is one error, not also a keyword "" that another
/// category's empty keyword already owns.
#[test]
fn empty_keywords_in_two_categories_are_only_empty() {
    check_small(
        |f| {
            replace_first(&mut f.county, "handling = \"grid\"\n", "handling = \"grid\"\nkeywords = [\" \"]\n");
            replace_first(&mut f.county, "keywords = [\"漏水\"]", "keywords = [\"漏水\", \"\"]");
        },
        "\n$DIR/county.toml:31: category.keywords: a keyword must not be empty\n$DIR/county.toml:40: category.keywords: a keyword must not be empty\n",
    );
}

/// A coordinate that is not a number, a point that is not a pair and a ring
/// that is not a list are named by their place in the polygon.
#[test]
fn polygon_coordinates_of_the_wrong_shape_are_named_by_place() {
    check_small(
        |f| {
            replace_first(
                &mut f.grids,
                "[121, 41], [120, 41], [120, 40]]]",
                "[121, \"41\"], [120, 41], [120, 40]]]",
            );
            replace_first(&mut f.grids, "[122, 41], [121, 41]", "[122], [121, 41]");
            replace_first(
                &mut f.grids,
                "\"coordinates\": [[[121.2, 40.2]",
                "\"coordinates\": [7, [[121.2, 40.2]",
            );
        },
        r#"
$DIR/grids.geojson:2: feature 0: geometry: coordinates[0][2][1]: expected a number, found "41"
$DIR/grids.geojson:4: feature 1: geometry: coordinates[0][2]: expected a point [longitude, latitude], found [122]
$DIR/grids.geojson:6: feature 2: geometry: coordinates[0]: expected a ring (a list of points), found 7
"#,
    );
}
