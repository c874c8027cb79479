//! Collecting load errors: each source file with its line index, and the
//! list of problems found so far.

use std::path::PathBuf;

use super::LoadError;

/// One source file: its path (for messages), its text and where its lines start.
pub(crate) struct Src<'a> {
    pub path: PathBuf,
    pub text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Src<'a> {
    pub fn new(path: PathBuf, text: &'a str) -> Src<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Src { path, text, line_starts }
    }

    /// The 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset)
    }

    /// The text of a 1-based line, without its line end.
    pub fn line_text(&self, line: usize) -> &'a str {
        let start = self.line_starts.get(line.saturating_sub(1)).copied().unwrap_or(self.text.len());
        let end = self.line_starts.get(line).map_or(self.text.len(), |&e| e.saturating_sub(1));
        self.text[start..end.max(start)].trim_end_matches('\r')
    }
}

/// Every problem found, in the order found; sorted when handed out.
#[derive(Default)]
pub(crate) struct Report {
    pub errors: Vec<LoadError>,
}

impl Report {
    /// A problem at a line of a TOML or CSV file.
    pub fn line(&mut self, src: &Src<'_>, line: usize, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(LoadError {
            file: src.path.clone(),
            line: Some(line),
            feature: None,
            field: field.into(),
            message: message.into(),
        });
    }

    /// A problem in a GeoJSON feature, which starts at `line`.
    pub fn feature(
        &mut self,
        src: &Src<'_>,
        feature: usize,
        line: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.errors.push(LoadError {
            file: src.path.clone(),
            line: Some(line),
            feature: Some(feature),
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors sorted by file, then line and feature (stable: ties keep
    /// the order in which they were found).
    pub fn into_sorted(mut self) -> Vec<LoadError> {
        self.errors.sort_by(|a, b| {
            (&a.file, a.line.unwrap_or(0), a.feature.unwrap_or(0)).cmp(&(
                &b.file,
                b.line.unwrap_or(0),
                b.feature.unwrap_or(0),
            ))
        });
        self.errors
    }
}

/// What is wrong with one keyword (trimmed), if anything: empty, or holding
/// a `,`, which separates the keywords `ROUTE` reports it matched.
pub(crate) fn keyword_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("a keyword must not be empty".into());
    }
    if let Some(p) = text_problem(s) {
        return Some(p);
    }
    if s.contains(',') {
        return Some(format!(
            "keyword \"{s}\" contains `,`, which separates keywords in ROUTE's reply: list its parts as keywords of their own"
        ));
    }
    None
}

/// Names and keywords go into routing's explanations, replies and the
/// case log, and `gridline route` prints them to a terminal: one line, no
/// control characters (a bell, an escape sequence, a line break).
pub(crate) fn text_problem(s: &str) -> Option<String> {
    let c = s.chars().find(|&c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))?;
    Some(format!("a control character or line break (U+{:04X}) is not allowed: names are one line", c as u32))
}

/// Codes and ids travel on the wire as bare values and in file names: ASCII
/// letters, digits, `-`, `_` and `.` only.
pub(crate) fn code_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("must not be empty".into());
    }
    if s.len() > 64 {
        return Some(format!("\"{s}\" is too long: at most 64 characters"));
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Some(format!("\"{s}\" is not a valid code: use ASCII letters, digits, '-', '_' or '.'"));
    }
    None
}

/// "a, b or c"
pub(crate) fn one_of(options: &[&str]) -> String {
    match options {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based() {
        let s = Src::new("f".into(), "a\nbc\r\n\nd");
        assert_eq!([s.line_of(0), s.line_of(1), s.line_of(2), s.line_of(6), s.line_of(7)], [1, 1, 2, 3, 4]);
        assert_eq!([s.line_text(1), s.line_text(2), s.line_text(3), s.line_text(4)], ["a", "bc", "", "d"]);
        assert_eq!(one_of(&["a", "b", "c"]), "a, b or c");
    }
}
