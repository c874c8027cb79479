//! The lexical layer shared by requests and replies: a line is a word and
//! then `key=value` pairs; values are bare or quoted with four escapes.
//!
//! Errors here are plain messages; the caller decides whether they become an
//! `ERR bad_request` (requests) or a [`crate::ParseError`] (replies).

/// Longest key accepted, in bytes (keys are ASCII).
pub const KEY_MAX_BYTES: usize = 32;

/// Strips one line terminator: `\n`, `\r\n` or a lone trailing `\r`.
pub(crate) fn strip_terminator(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

/// Space and tab separate tokens; nothing else does.
pub(crate) fn is_separator(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Rejects control characters anywhere in the line, except tab.
pub(crate) fn check_controls(line: &str) -> Result<(), String> {
    // The control characters are U+0000-U+001F, U+007F and U+0080-U+009F,
    // which UTF-8 writes as one byte below 0x20, 0x7F, or 0xC2 then
    // 0x80-0x9F: a line without those bytes (and tab aside) has none.
    if !line.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f || b == 0xc2) {
        return Ok(());
    }
    match line.chars().enumerate().find(|(_, c)| c.is_control() && *c != '\t') {
        None => Ok(()),
        Some((i, c)) => {
            Err(format!("control character U+{:04X} at character {} is not allowed", c as u32, i + 1))
        }
    }
}

/// Splits off the first word; `None` when the line holds only separators.
pub(crate) fn split_word(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(is_separator);
    if s.is_empty() {
        return None;
    }
    let end = s.find(is_separator).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

/// `[a-z0-9_]`, 1 to [`KEY_MAX_BYTES`] long.
pub fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= KEY_MAX_BYTES
        && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

pub(crate) use gridline_model::reply::clip;

/// Splits `key=value ...` into pairs, in line order. With `allow_duplicates`
/// false a repeated key is an error (requests); replies tolerate it.
pub(crate) fn pairs(mut s: &str, allow_duplicates: bool) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    // The keys so far, for the duplicate check: a line may hold very many
    // fields (the line limit is configurable), and comparing each with every
    // earlier one took seconds for a long line.
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    loop {
        s = s.trim_start_matches(is_separator);
        if s.is_empty() {
            return Ok(out);
        }
        let token_end = s.find(is_separator).unwrap_or(s.len());
        let Some(eq) = s[..token_end].find('=') else {
            return Err(format!("expected key=value, got `{}`", clip(&s[..token_end])));
        };
        let key = &s[..eq];
        if !is_key(key) {
            return Err(format!("bad key `{}`: keys are a-z, 0-9 and _ (at most 32)", clip(key)));
        }
        s = &s[eq + 1..];
        let value = if s.starts_with('"') {
            let (v, rest) = quoted(s, key)?;
            if !rest.is_empty() && !rest.starts_with(is_separator) {
                return Err(format!("{key}: expected a space after the closing quote"));
            }
            s = rest;
            v
        } else {
            let end = s.find(is_separator).unwrap_or(s.len());
            let v = &s[..end];
            if v.contains(['"', '=']) {
                return Err(format!("{key}: a bare value may not contain `\"` or `=`; quote it"));
            }
            s = &s[end..];
            v.to_string()
        };
        if !allow_duplicates && !seen.insert(key) {
            return Err(format!("duplicate field `{key}`"));
        }
        out.push((key.to_string(), value));
    }
}

/// Reads a quoted value at the start of `s` (which begins with `"`) and
/// returns it unescaped with the rest of the input after the closing quote.
/// `what` names the value in error messages.
pub(crate) fn quoted<'a>(s: &'a str, what: &str) -> Result<(String, &'a str), String> {
    debug_assert!(s.starts_with('"'));
    let mut value = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '"')) => value.push('"'),
                Some((_, '\\')) => value.push('\\'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, other)) => {
                    return Err(format!(
                        "{what}: bad escape `\\{other}` (only \\\", \\\\, \\n and \\t are escapes)"
                    ))
                }
                None => break,
            },
            c => value.push(c),
        }
    }
    Err(format!("{what}: unterminated quoted value"))
}

/// Whether `v` can be written without quotes and read back the same.
/// (Character by character: a byte-by-byte version was slower on this
/// machine for the Chinese texts replies carry.)
pub fn is_bare(v: &str) -> bool {
    !v.is_empty()
        && v.chars().all(|c| {
            if c.is_ascii() {
                c > ' ' && c != '\x7f' && c != '"' && c != '='
            } else {
                !c.is_whitespace() && !c.is_control()
            }
        })
}

/// Writes a value bare when it can be, quoted and escaped otherwise.
///
/// Control characters other than LF and tab cannot be expressed on the wire;
/// they are written as U+FFFD so a line never breaks (values that came in
/// through the protocol never hold them).
pub fn write_value(out: &mut String, v: &str) {
    if is_bare(v) {
        out.push_str(v);
    } else {
        write_quoted(out, v);
    }
}

/// Writes a value quoted and escaped, whatever it holds.
pub fn write_quoted(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes ` key=value` (with the leading space).
pub(crate) fn write_pair(out: &mut String, key: &str, value: &str) {
    debug_assert!(is_key(key), "bad key {key:?}");
    out.push(' ');
    out.push_str(key);
    out.push('=');
    write_value(out, value);
}

/// Characters that draw nothing and are not spaces: Unicode's format
/// characters (zero-width spaces and joiners, direction marks and
/// overrides, the byte-order mark, the soft hyphen, tags), variation
/// selectors, and the blank fillers (Braille blank, Hangul fillers). A
/// value of nothing but these and spaces says nothing; a name holding one
/// reads as another name.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definitions the fast paths must agree with.
    fn is_bare_by_chars(v: &str) -> bool {
        !v.is_empty() && v.chars().all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=')
    }

    fn has_control_by_chars(line: &str) -> bool {
        line.chars().any(|c| c.is_control() && c != '\t')
    }

    /// Strings rich in the characters that matter: ASCII, controls (C0 and
    /// C1), Unicode spaces, and other text such as CJK.
    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                any::<char>(),
                prop::sample::select(vec![
                    ' ', '\t', '\n', '\r', '"', '=', '\u{7f}', '\u{80}', '\u{85}', '\u{9f}', '\u{a0}', '°',
                    '\u{3000}', '室', 'a', '0',
                ]),
                // Non-ASCII white space, and its neighbours that share its first bytes.
                prop::sample::select(vec![
                    '\u{a1}', '\u{1680}', '\u{1681}', '\u{167f}', '\u{2000}', '\u{200a}', '\u{200b}',
                    '\u{2027}', '\u{2028}', '\u{2029}', '\u{202a}', '\u{202f}', '\u{2030}', '\u{205e}',
                    '\u{205f}', '\u{2060}', '\u{3001}', '\u{3002}', '\u{2fff}', '，',
                ]),
            ],
            0..12,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    #[test]
    fn is_bare_agrees_with_its_definition_for_every_character() {
        let mut s = String::new();
        for c in (0..=char::MAX as u32).filter_map(char::from_u32) {
            s.clear();
            s.push('a');
            s.push(c);
            s.push('室');
            assert_eq!(is_bare(&s), is_bare_by_chars(&s), "U+{:04X}", c as u32);
        }
    }

    proptest! {
        #[test]
        fn is_bare_agrees_with_its_definition(v in text()) {
            prop_assert_eq!(is_bare(&v), is_bare_by_chars(&v));
        }

        #[test]
        fn check_controls_agrees_with_its_definition(v in text()) {
            prop_assert_eq!(check_controls(&v).is_err(), has_control_by_chars(&v));
        }
    }
}
