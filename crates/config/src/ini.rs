//! The ini dialect of `input_config.ini`.
//!
//! Why a hand-written parser: the seeds' files are read by Python's `configparser` and then
//! every value is cut at its first `;` (`inputs=data; # the input`). No ini crate reproduces that
//! combination: the common ones either accept keys before any section header silently (Python
//! raises `MissingSectionHeaderError`, which the seeds list as an error users meet) or treat `;`
//! as the start of an inline comment everywhere, and none reports duplicate keys and sections
//! with line numbers the way `configparser(strict=True)` does. The dialect is small, so it is
//! parsed here in one screen of code:
//!
//! * `[SECTION]` headers (text after the closing `]` must be a comment);
//! * `key=value;` or `key: value;` lines; the key is case-insensitive (lower-cased, as
//!   configparser's `optionxform`), spaces around the delimiter are trimmed;
//! * the value ends at the first `;`, anything after it (a `# comment`) is ignored;
//! * whole-line comments start with `#` or `;`, blank lines are ignored;
//! * a line indented deeper than its key line continues the previous value (configparser's
//!   continuation lines), joined with `\n`;
//! * a key before the first section header, a line without a delimiter, an empty key, a
//!   duplicate section and a duplicate key in one section are errors with the line number.

use crate::error::{ConfigError, Result};

/// One `key=value;` entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Lower-cased key.
    pub key: String,
    /// The value, cut at the first `;` and trimmed.
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// One `[SECTION]` and its entries in file order.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    /// The header text, trimmed.
    pub name: String,
    /// 1-based line of the header.
    pub line: usize,
    /// The entries, in file order.
    pub entries: Vec<Entry>,
}

impl Section {
    /// The entry for `key` (lower-case).
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// Parses the whole text; `path` is only used in messages.
pub(crate) fn parse(text: &str, path: &str) -> Result<Vec<Section>> {
    let syntax = |line: usize, message: String| ConfigError::Syntax {
        path: path.to_string(),
        line,
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut sections: Vec<Section> = Vec::new();
    // Raw (uncut) values of the current section's entries, and the indentation of the key line
    // of the entry that continuation lines would extend.
    let mut raw: Vec<Vec<String>> = Vec::new();
    let mut open_entry: Option<usize> = None;

    for (index, line) in text.lines().enumerate() {
        let lineno = index + 1;
        let stripped = line.trim();
        if stripped.is_empty() || stripped.starts_with('#') || stripped.starts_with(';') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if let (Some(key_indent), Some(section)) = (open_entry, sections.last()) {
            if indent > key_indent && !section.entries.is_empty() {
                if let Some(values) = raw.last_mut().and_then(|v| v.last_mut()) {
                    if values.contains(';') {
                        let (key, key_line) = section
                            .entries
                            .last()
                            .map(|e| (e.key.as_str(), e.line))
                            .unwrap_or(("", 0));
                        return Err(syntax(
                            lineno,
                            format!(
                                "'{stripped}' is indented deeper than `{key}` (line {key_line}), so \
                                 it would continue that value, which `;` already ended; remove \
                                 the indentation"
                            ),
                        ));
                    }
                    values.push('\n');
                    values.push_str(stripped);
                }
                continue;
            }
        }
        open_entry = None;

        if let Some(rest) = stripped.strip_prefix('[') {
            let Some(close) = rest.rfind(']') else {
                return Err(syntax(
                    lineno,
                    format!("section header `{stripped}` has no closing `]`"),
                ));
            };
            let after = rest[close + 1..].trim();
            if !(after.is_empty() || after.starts_with('#') || after.starts_with(';')) {
                return Err(syntax(
                    lineno,
                    format!(
                        "unexpected text `{after}` after section header; only a `# comment` may follow `]`"
                    ),
                ));
            }
            let name = rest[..close].trim().to_string();
            if name.is_empty() {
                return Err(syntax(lineno, "empty section header `[]`".to_string()));
            }
            if let Some(first) = sections.iter().find(|s| s.name == name) {
                return Err(syntax(
                    lineno,
                    format!(
                        "section [{name}] already exists (first at line {}); merge the two sections",
                        first.line
                    ),
                ));
            }
            sections.push(Section {
                name,
                line: lineno,
                entries: Vec::new(),
            });
            raw.push(Vec::new());
            continue;
        }

        let Some(section) = sections.last_mut() else {
            return Err(syntax(
                lineno,
                format!(
                    "File contains no section headers. file: '{path}', line: {lineno}: '{stripped}' \
                     (configparser.MissingSectionHeaderError); put a section header such as \
                     [INPUT_CONFIG] before the first key"
                ),
            ));
        };
        let Some(delim) = stripped.find(['=', ':']) else {
            return Err(syntax(
                lineno,
                format!(
                    "Source contains parsing errors: '{stripped}' is not a `key=value;` line \
                     (a key, `=`, the value, ending with `;`)"
                ),
            ));
        };
        let key = stripped[..delim].trim().to_lowercase();
        if key.is_empty() {
            return Err(syntax(
                lineno,
                format!(
                    "line '{stripped}' has no key before `{}`",
                    &stripped[delim..=delim]
                ),
            ));
        }
        if let Some(first) = section.get(&key) {
            return Err(syntax(
                lineno,
                format!(
                    "option `{key}` in section [{}] already exists (first at line {}); keep one",
                    section.name, first.line
                ),
            ));
        }
        section.entries.push(Entry {
            key,
            value: String::new(),
            line: lineno,
        });
        if let Some(values) = raw.last_mut() {
            values.push(stripped[delim + 1..].trim().to_string());
        }
        open_entry = Some(indent);
    }

    // Cut every value at its first `;`.
    for (section, values) in sections.iter_mut().zip(raw) {
        for (entry, value) in section.entries.iter_mut().zip(values) {
            match value.find(';') {
                Some(end) => entry.value = value[..end].trim().to_string(),
                None => {
                    if value.contains('#') {
                        return Err(syntax(
                            entry.line,
                            format!(
                                "the value of `{}` has no closing `;` but contains `#`: end the \
                                 value with `;` before a comment (`{}=...; # comment`)",
                                entry.key, entry.key
                            ),
                        ));
                    }
                    entry.value = value.trim().to_string();
                }
            }
        }
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_end_at_semicolon() {
        let s = parse(
            "# c\n[INPUT_CONFIG] # x\nInputs = data; # the input\n; comment\nmean=1:2:3;\n",
            "t.ini",
        )
        .unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].entries[0].key, "inputs");
        assert_eq!(s[0].entries[0].value, "data");
        assert_eq!(s[0].entries[1].value, "1:2:3");
        assert_eq!(s[0].entries[1].line, 5);
    }

    #[test]
    fn continuation_lines() {
        let s = parse("[A]\ninputs = a,\n   b;\nx=1\n", "t.ini").unwrap();
        assert_eq!(s[0].entries[0].value, "a,\nb");
        assert_eq!(s[0].entries[1].value, "1");
    }

    #[test]
    fn missing_header() {
        let e = parse("inputs=data;\n", "t.ini").unwrap_err().to_string();
        assert!(
            e.starts_with("t.ini:1: File contains no section headers."),
            "{e}"
        );
    }
}
