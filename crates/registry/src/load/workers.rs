//! `workers.csv`: one row per worker,
//! `id,name,kind,grid,department,townships,phone,duty`.
//!
//! Rows are read with the `csv` crate (quoted fields work as usual) and
//! checked on their own here; references to grids, departments and
//! townships are checked by the caller once the other files are read.

use std::collections::HashMap;

use super::report::{code_problem, one_of, text_problem, Report, Src};
use crate::types::{DutyWindow, WorkerKind};

pub(crate) const COLUMNS: [&str; 8] =
    ["id", "name", "kind", "grid", "department", "townships", "phone", "duty"];

/// One row, checked as far as it can be alone.
pub(crate) struct Row {
    pub line: usize,
    pub id: String,
    pub name: String,
    pub kind: Option<WorkerKind>,
    pub grid: String,
    pub department: String,
    pub townships: Vec<String>,
    pub phone: String,
    pub duty: Vec<DutyWindow>,
}

pub(crate) struct WorkersFile {
    pub rows: Vec<Row>,
    /// id -> row index (first occurrence).
    pub by_id: HashMap<String, usize>,
    /// Every worker the file means to list was read: no row failed to read
    /// as a row (a wrong number of columns, a quote never closed) and there
    /// is at least one. When not, an id missing from `by_id` may be one of
    /// the unread rows, so references to it are not reported as unknown.
    pub complete: bool,
}

/// Reads workers.csv; `None` (reported) if its header is not usable.
pub(crate) fn read(src: &Src<'_>, report: &mut Report) -> Option<WorkersFile> {
    let text = src.text.strip_prefix('\u{feff}').unwrap_or(src.text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let unterminated = unterminated_quote(text);
    if let Some(u) = unterminated.as_ref().filter(|u| u.record_line == 1) {
        report.line(src, u.line, "(header)", u.message(src));
        return None;
    }
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(e) => {
            report.line(src, csv_line(&e).unwrap_or(1), "(header)", format!("cannot read the header: {e}"));
            return None;
        }
    };
    if header.iter().all(String::is_empty) {
        report.line(
            src,
            1,
            "(header)",
            format!("the file is empty; expected the header {}", COLUMNS.join(",")),
        );
        return None;
    }
    // Column positions by name, so a county may order its columns freely.
    let mut pos = [usize::MAX; COLUMNS.len()];
    let mut header_ok = true;
    for (i, h) in header.iter().enumerate() {
        match COLUMNS.iter().position(|c| c == h) {
            Some(c) if pos[c] == usize::MAX => pos[c] = i,
            Some(_) => {
                report.line(src, 1, "(header)", format!("column \"{h}\" appears twice"));
                header_ok = false;
            }
            None => {
                report.line(
                    src,
                    1,
                    "(header)",
                    format!("unknown column \"{h}\"; the columns are {}", COLUMNS.join(",")),
                );
                header_ok = false;
            }
        }
    }
    for (c, p) in COLUMNS.iter().zip(pos) {
        if p == usize::MAX {
            report.line(
                src,
                1,
                "(header)",
                format!("missing column \"{c}\"; the columns are {}", COLUMNS.join(",")),
            );
            header_ok = false;
        }
    }
    if !header_ok {
        return None;
    }

    let mut rows = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut complete = true;
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                report.line(src, csv_line(&e).unwrap_or(1), "(row)", e.to_string());
                complete = false;
                continue;
            }
        };
        let line = record.position().map_or(1, |p| p.line() as usize);
        let unclosed = unterminated.as_ref().filter(|u| u.record_line == line);
        if record.len() != header.len() || unclosed.is_some() {
            complete = false;
            match unclosed {
                // The rest of the file is in its last field: its column
                // count says nothing.
                Some(u) => {
                    let field = header.get(u.field).map_or("(row)", String::as_str);
                    report.line(src, u.line, field, u.message(src));
                }
                None => report.line(
                    src,
                    line,
                    "(row)",
                    format!("expected {} columns, found {}", header.len(), record.len()),
                ),
            }
            // Keep its id, so that references to the worker do not fail as well.
            let id = record.get(pos[0]).unwrap_or("").to_string();
            if code_problem(&id).is_none() && !first_line.contains_key(&id) {
                first_line.insert(id.clone(), line);
                by_id.insert(id.clone(), rows.len());
            }
            rows.push(Row {
                line,
                id,
                name: String::new(),
                kind: None,
                grid: String::new(),
                department: String::new(),
                townships: Vec::new(),
                phone: String::new(),
                duty: Vec::new(),
            });
            continue;
        }
        let get = |name: usize| record.get(pos[name]).unwrap_or("").to_string();
        let (id, name, kind, grid, department, townships, phone, duty) =
            (get(0), get(1), get(2), get(3), get(4), get(5), get(6), get(7));
        let mut err = |field: &str, msg: String| report.line(src, line, field, msg);

        if let Some(msg) = code_problem(&id) {
            err("id", msg);
        } else if let Some(first) = first_line.get(&id) {
            err("id", format!("duplicate worker id \"{id}\" (first at line {first})"));
        } else {
            first_line.insert(id.clone(), line);
            by_id.insert(id.clone(), rows.len());
        }
        if name.is_empty() {
            err("name", "must not be empty".into());
        } else if let Some(msg) = text_problem(&name) {
            err("name", msg);
        }
        let kinds = [
            ("full_time", WorkerKind::FullTime),
            ("part_time", WorkerKind::PartTime),
            ("department", WorkerKind::Department),
        ];
        let kind = match kinds.iter().find(|k| k.0 == kind) {
            Some(k) => Some(k.1),
            None if kind.is_empty() => {
                err("kind", "must not be empty".into());
                None
            }
            None => {
                let names: Vec<&str> = kinds.iter().map(|k| k.0).collect();
                err("kind", format!("\"{kind}\" is not valid: expected {}", one_of(&names)));
                None
            }
        };
        let townships: Vec<String> =
            townships.split(';').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect();
        match kind {
            Some(k @ (WorkerKind::FullTime | WorkerKind::PartTime)) => {
                if grid.is_empty() {
                    err("grid", format!("required for a {} worker", k.as_str()));
                }
                if !department.is_empty() {
                    err(
                        "department",
                        format!(
                            "a {} worker has a grid, not a department (professionals have kind department)",
                            k.as_str()
                        ),
                    );
                }
                if !townships.is_empty() {
                    err(
                        "townships",
                        format!("only department professionals cover townships, not a {} worker", k.as_str()),
                    );
                }
            }
            Some(WorkerKind::Department) => {
                if department.is_empty() {
                    err("department", "required for a department professional".into());
                }
                if !grid.is_empty() {
                    err("grid", "a department professional has a department, not a grid".into());
                }
                if townships.is_empty() {
                    err("townships", "required for a department professional: the township codes it covers, separated by ;".into());
                }
            }
            None => {}
        }
        for (i, t) in townships.iter().enumerate() {
            if townships[..i].contains(t) {
                err("townships", format!("township \"{t}\" is listed twice"));
            }
        }
        if !phone.is_empty()
            && (!phone.bytes().all(|b| b.is_ascii_digit()) || !(3..=20).contains(&phone.len()))
        {
            err("phone", format!("\"{phone}\" is not a phone number: 3 to 20 digits, nothing else"));
        }
        let duty = if duty.is_empty() {
            Vec::new()
        } else if kind.is_some_and(|k| k != WorkerKind::PartTime) {
            err("duty", "only part-time workers have duty hours; leave it empty".into());
            Vec::new()
        } else {
            match parse_duty(&duty) {
                Ok(w) => w,
                Err(msg) => {
                    err("duty", msg);
                    Vec::new()
                }
            }
        };
        rows.push(Row { line, id, name, kind, grid, department, townships, phone, duty });
    }
    if rows.is_empty() && complete {
        report.line(src, 1, "(rows)", "no workers (only the header): a county needs its workers listed");
        complete = false;
    }
    Some(WorkersFile { rows, by_id, complete })
}

/// A quoted field whose closing quote never comes: the csv reader takes
/// the rest of the file into it, as one field of one row.
struct Unterminated {
    /// The line its row starts on.
    record_line: usize,
    /// The line of the opening quote.
    line: usize,
    /// Its column (0-based, as in the header).
    field: usize,
}

impl Unterminated {
    fn message(&self, src: &Src<'_>) -> String {
        let last = src.line_of(src.text.len().saturating_sub(1));
        format!(
            "unterminated quote: the quoted field opened on line {} is never closed, \
             so the rest of the file (to line {last}) was read into it; close the quote \
             (a quote inside a quoted field is written twice: \"\")",
            self.line
        )
    }
}

/// Finds a quoted field that is never closed, reading quotes as the csv
/// reader does: a quote opens a quoted field only as the field's first
/// character; inside one, `""` is a quote and `"` closes it.
fn unterminated_quote(text: &str) -> Option<Unterminated> {
    let (mut line, mut record_line, mut field) = (1, 1, 0);
    let mut field_start = true;
    let mut open: Option<Unterminated> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if open.is_some() {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                }
                '"' => open = None,
                '\n' => line += 1,
                _ => {}
            }
            continue;
        }
        match c {
            '"' if field_start => {
                open = Some(Unterminated { record_line, line, field });
                field_start = false;
            }
            ',' => {
                field += 1;
                field_start = true;
            }
            '\n' => {
                line += 1;
                record_line = line;
                field = 0;
                field_start = true;
            }
            '\r' => {}
            _ => field_start = false,
        }
    }
    open
}

fn csv_line(e: &csv::Error) -> Option<usize> {
    e.position().map(|p| p.line() as usize)
}

/// `08:00-12:00;20:00-08:00`: windows in local time; one may wrap midnight;
/// `24:00` is allowed as an end.
pub(crate) fn parse_duty(s: &str) -> Result<Vec<DutyWindow>, String> {
    let bad = |w: &str| {
        format!("\"{w}\" is not a duty window: expected HH:MM-HH:MM, e.g. 08:00-12:00 or 20:00-08:00")
    };
    let mut out = Vec::new();
    for w in s.split(';').map(str::trim) {
        let (a, b) = w.split_once('-').ok_or_else(|| bad(w))?;
        let (start_min, end_min) =
            (minute(a.trim(), false).ok_or_else(|| bad(w))?, minute(b.trim(), true).ok_or_else(|| bad(w))?);
        if start_min == end_min {
            return Err(format!("\"{w}\" is an empty duty window (leave duty empty for always on duty)"));
        }
        out.push(DutyWindow { start_min, end_min });
    }
    Ok(out)
}

fn minute(s: &str, end: bool) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if end => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unterminated_quote_is_found_where_it_opens() {
        let find = |t: &str| unterminated_quote(t).map(|u| (u.record_line, u.line, u.field));
        assert_eq!(find("a,b\n1,\"x\"\"y\",2\n3,\"m\nn\",4\n"), None);
        assert_eq!(find("a,b\n1,x\"y\n"), None, "a quote inside a field is a character");
        assert_eq!(find("a,b\n1,\"x\n2,y\n"), Some((2, 2, 1)));
        assert_eq!(find("a,b\n\"1\nx\",\"y\n"), Some((2, 3, 1)));
        assert_eq!(find("a,\"b\n1,2\n"), Some((1, 1, 1)));
    }

    #[test]
    fn duty_windows() {
        let w = parse_duty("08:00-12:00; 20:00-08:00").unwrap();
        assert_eq!(
            w,
            [DutyWindow { start_min: 480, end_min: 720 }, DutyWindow { start_min: 1200, end_min: 480 }]
        );
        assert!(w[1].contains(23 * 60) && w[1].contains(60) && !w[1].contains(600));
        assert_eq!(parse_duty("18:00-24:00").unwrap()[0].end_min, 1440);
        for bad in ["8:00-12:00", "08:00", "08:00-25:00", "24:00-08:00", "08:60-09:00", "x", "08:00-08:00"] {
            assert!(parse_duty(bad).is_err(), "{bad}");
        }
    }
}
