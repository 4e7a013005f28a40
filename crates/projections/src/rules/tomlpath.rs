//! Turns a TOML deserialisation error (message + byte span) into a field path such as
//! `thresholds[1].share`, so that a pack author is told which field is wrong.
//!
//! The `toml` crate reports where in the text an error is, not which key path; this module replays
//! the document's table headers up to that offset. It understands what rule packs use: `[table]`,
//! `[[array.of.tables]]`, `key = value` lines, multi-line arrays and one level of inline tables.
//! It is a reporting aid only: a path it cannot work out is given as `(document)`.

use std::collections::BTreeMap;

/// (field path, message) for an error from `toml::from_str`.
pub(super) fn describe(
    text: &str,
    message: &str,
    span: Option<std::ops::Range<usize>>,
) -> (String, String) {
    let message = message.trim().to_owned();
    let Some(span) = span else {
        return ("(document)".to_owned(), message);
    };
    let at = locate(text, span.start);
    // A missing field is reported at the table that lacks it.
    let field = if let Some(missing) = backticked_after(&message, "missing field ") {
        let table = match at.place {
            Place::Value => at.key_path(),
            _ => at.table.clone(),
        };
        join(&table, missing)
    } else {
        match at.place {
            Place::Header | Place::Other => at.table.clone(),
            Place::Key | Place::Value => at.key_path(),
        }
    };
    let field = if field.is_empty() {
        "(document)".to_owned()
    } else {
        field
    };
    (field, message)
}

fn backticked_after<'a>(message: &'a str, lead: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(lead)?.strip_prefix('`')?;
    rest.split('`').next()
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}.{b}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// On a `[table]` or `[[array]]` header line.
    Header,
    /// On a key, before its `=`.
    Key,
    /// In a value (possibly a continuation line of a multi-line array).
    Value,
    Other,
}

#[derive(Debug)]
struct Location {
    table: String,
    key: String,
    inner: Option<String>,
    place: Place,
}

impl Location {
    fn key_path(&self) -> String {
        let p = join(&self.table, &self.key);
        match &self.inner {
            Some(inner) => join(&p, inner),
            None => p,
        }
    }
}

fn locate(text: &str, offset: usize) -> Location {
    let mut arrays: BTreeMap<String, usize> = BTreeMap::new();
    let mut table = String::new();
    let mut key = String::new();
    let mut depth = 0i32;
    let mut pos = 0usize;
    for line in text.split_inclusive('\n') {
        let start = pos;
        pos += line.len();
        let here = offset >= start && offset < pos;
        let col = offset.saturating_sub(start);
        if depth > 0 {
            depth += bracket_delta(line);
            if here {
                return Location {
                    table,
                    key,
                    inner: inline_key(line, col),
                    place: Place::Value,
                };
            }
            continue;
        }
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            let (name, is_array) = header_name(trimmed);
            if is_array {
                let n = arrays.entry(name.clone()).or_insert(0);
                *n += 1;
                let child = format!("{name}.");
                arrays.retain(|k, _| !k.starts_with(&child));
            }
            table = render(&name, &arrays);
            key.clear();
            if here {
                return Location {
                    table,
                    key,
                    inner: None,
                    place: Place::Header,
                };
            }
            continue;
        }
        if let Some(eq) = find_unquoted(line, '=') {
            if !trimmed.starts_with('#') {
                key = unquote(line[..eq].trim());
                depth += bracket_delta(&line[eq + 1..]);
                if here {
                    let (inner, place) = if col <= eq {
                        (None, Place::Key)
                    } else {
                        (inline_key(&line[eq + 1..], col - eq - 1), Place::Value)
                    };
                    return Location {
                        table,
                        key,
                        inner,
                        place,
                    };
                }
                continue;
            }
        }
        if here {
            return Location {
                table,
                key: String::new(),
                inner: None,
                place: Place::Other,
            };
        }
    }
    Location {
        table,
        key: String::new(),
        inner: None,
        place: Place::Other,
    }
}

/// The dotted name of a header and whether it is an array of tables.
fn header_name(trimmed: &str) -> (String, bool) {
    let is_array = trimmed.starts_with("[[");
    let inner = trimmed.trim_start_matches('[');
    let inner = inner.split(']').next().unwrap_or("");
    let name = inner
        .split('.')
        .map(|s| unquote(s.trim()))
        .collect::<Vec<_>>()
        .join(".");
    (name, is_array)
}

/// A dotted table name with the current index of every array-of-tables prefix.
fn render(name: &str, arrays: &BTreeMap<String, usize>) -> String {
    let mut prefix = String::new();
    let mut out = String::new();
    for seg in name.split('.') {
        prefix = join(&prefix, seg);
        out = join(&out, seg);
        if let Some(n) = arrays.get(&prefix) {
            out.push_str(&format!("[{}]", n.saturating_sub(1)));
        }
    }
    out
}

fn unquote(s: &str) -> String {
    s.trim_matches(|c| c == '"' || c == '\'').to_owned()
}

/// Net change of `[`/`{` nesting in a line, ignoring strings and comments.
fn bracket_delta(s: &str) -> i32 {
    let mut d = 0;
    for (c, quoted) in scan(s) {
        if quoted {
            continue;
        }
        match c {
            '#' => break,
            '[' | '{' => d += 1,
            ']' | '}' => d -= 1,
            _ => {}
        }
    }
    d
}

/// Characters of `s` with whether each is inside a string.
fn scan(s: &str) -> impl Iterator<Item = (char, bool)> + '_ {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    s.chars().map(move |c| {
        let inside = quote.is_some();
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => {
                if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
        (c, inside || quote.is_some())
    })
}

fn find_unquoted(s: &str, needle: char) -> Option<usize> {
    let mut idx = 0;
    for (c, quoted) in scan(s) {
        if c == needle && !quoted {
            return Some(idx);
        }
        idx += c.len_utf8();
    }
    None
}

/// The inline-table key nearest before `col` in `s` (`{ count = 1, share = "x" }` → `share`).
fn inline_key(s: &str, col: usize) -> Option<String> {
    let before = s.get(..col.min(s.len()))?;
    let mut last_eq = None;
    let mut idx = 0;
    for (c, quoted) in scan(before) {
        if c == '=' && !quoted {
            last_eq = Some(idx);
        }
        idx += c.len_utf8();
    }
    let eq = last_eq?;
    let name: String = before[..eq]
        .trim_end()
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, needle: &str) -> String {
        let start = text.find(needle).unwrap();
        describe(text, "invalid type", Some(start..start + needle.len())).0
    }

    #[test]
    fn paths_for_keys_values_headers_and_arrays() {
        let t = "id = 3\n[population]\ndays = \"x\"\n[[thresholds]]\ncount = 1\n[[thresholds]]\nshare = \"q\"\n[[counts.strict]]\nname = \"a\"\n[[counts.strict]]\nbogus = 1\n";
        assert_eq!(at(t, "3"), "id");
        assert_eq!(at(t, "\"x\""), "population.days");
        assert_eq!(at(t, "\"q\""), "thresholds[1].share");
        assert_eq!(at(t, "bogus"), "counts.strict[1].bogus");
        assert_eq!(at(t, "[population]"), "population");
    }

    #[test]
    fn missing_fields_inline_tables_and_multiline_arrays() {
        let t = "id = \"x\"\n[pop]\nk = 1\n";
        let s = t.find("[pop]").unwrap();
        assert_eq!(
            describe(t, "missing field `days`", Some(s..s + 5)).0,
            "pop.days"
        );
        assert_eq!(describe(t, "missing field `title`", Some(0..8)).0, "title");
        let t = "thresholds = [{ count = 1, share = \"q\" }]\nsources = [\n  \"a\",\n  3,\n]\n";
        assert_eq!(at(t, "\"q\""), "thresholds.share");
        assert_eq!(at(t, "3,"), "sources");
    }
}
