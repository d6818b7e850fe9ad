//! Keys in URLs. Every key value has exactly one canonical path segment, and every segment
//! decodes to exactly one canonical key JSON, so `GET /v1/{api}/{seg}/{seg}` finds the entry
//! whose key is `[v1, v2]`.
//!
//! The rule:
//! - a NULL key value is the segment `~null`; an empty string is `~empty`;
//! - every other value is written in its canonical text (integers `-42`, decimals with their
//!   scale `12.50`, timestamps `2026-11-01T08:30:00Z`, dates `2026-11-01`, booleans `true`,
//!   strings as they are) and percent-encoded: every byte other than `A-Z a-z 0-9 - _ .` is
//!   `%XX` (upper-case hex);
//! - a string made only of dots is `~` followed by those dots (`.` is `~.`, `..` is `~..`):
//!   URL parsers treat `.` and `..`, and even `%2E`, as relative path steps and remove them;
//! - decoding accepts any percent-encoding of the same bytes, then requires the canonical text
//!   of the key's type (`05` is not an integer key; `5` is).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::canonical;

/// The type of one key column as lookups need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    Int,
    Float,
    Bool,
    Str,
    Decimal { scale: i8 },
    Date,
    Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("expected {expected} key segments, got {got}")]
    Arity { expected: usize, got: usize },
    #[error("key segment {index}: {message}")]
    Segment { index: usize, message: String },
}

pub const NULL_SEGMENT: &str = "~null";
pub const EMPTY_SEGMENT: &str = "~empty";

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

fn is_dots(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b == b'.')
}

fn percent_encode(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if is_dots(text) {
        out.push('~');
        out.push_str(text);
        return;
    }
    for b in text.bytes() {
        if is_plain(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
    }
}

/// The URL path (segments joined by `/`, no leading slash) of a canonical key JSON array.
/// `None` if `key_json` is not a JSON array of scalars.
///
/// Numbers keep the exact text of the key JSON: re-printing a parsed float could change its
/// spelling (`1e+25` for `1e25`) or, with a parser that is not correctly rounded, its digits.
pub fn encode_key(key_json: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(key_json).ok()?;
    let mut out = String::new();
    for (i, element) in array_elements(text)?.into_iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        match element {
            "null" => out.push_str(NULL_SEGMENT),
            "true" | "false" => out.push_str(element),
            s if s.starts_with('"') => match serde_json::from_str::<String>(s).ok()? {
                s if s.is_empty() => out.push_str(EMPTY_SEGMENT),
                s => percent_encode(&s, &mut out),
            },
            number => {
                // Only a JSON number may be passed through as is.
                if !matches!(
                    serde_json::from_str::<serde_json::Value>(number),
                    Ok(serde_json::Value::Number(_))
                ) {
                    return None;
                }
                percent_encode(number, &mut out)
            }
        }
    }
    Some(out)
}

/// The top-level elements of a JSON array, as text (whitespace trimmed), without parsing them.
fn array_elements(text: &str) -> Option<Vec<&str>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    if inner.trim().is_empty() {
        return Some(vec![]);
    }
    let bytes = inner.as_bytes();
    let mut elements = Vec::new();
    let (mut start, mut in_string, mut escaped, mut depth) = (0, false, false, 0u32);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            b'[' | b'{' if !in_string => depth += 1,
            b']' | b'}' if !in_string => depth = depth.checked_sub(1)?,
            b',' if !in_string && depth == 0 => {
                elements.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    elements.push(inner[start..].trim());
    // Nested arrays and objects are not key values.
    if in_string
        || elements
            .iter()
            .any(|e| e.starts_with('[') || e.starts_with('{'))
    {
        return None;
    }
    Some(elements)
}

/// A segment's bytes, %-decoded; borrowed when it has no escape (the usual case).
fn percent_decode(segment: &str) -> Result<Cow<'_, str>, String> {
    if !segment.contains('%') {
        return Ok(Cow::Borrowed(segment));
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or("truncated %-escape")?;
            let hex = std::str::from_utf8(hex).map_err(|_| "bad %-escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad %-escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| "not UTF-8 after %-decoding".to_string())
}

/// Turns URL segments (still percent-encoded) into the canonical key JSON of an entry.
pub fn decode_key<S: AsRef<str>>(segments: &[S], types: &[KeyType]) -> Result<Vec<u8>, KeyError> {
    write_key(segments, types, |out, segment, ty| {
        let raw = segment.as_ref();
        if raw == NULL_SEGMENT {
            out.extend_from_slice(b"null");
            return Ok(());
        }
        if raw == EMPTY_SEGMENT {
            if ty != KeyType::Str {
                return Err("~empty is only a string key".into());
            }
            out.extend_from_slice(b"\"\"");
            return Ok(());
        }
        if raw.starts_with('~') && is_dots(&raw[1..]) {
            if ty != KeyType::Str {
                return Err("~dots is only a string key".into());
            }
            canonical::write_str(out, &raw[1..]);
            return Ok(());
        }
        let text = percent_decode(raw)?;
        if text.is_empty() {
            return Err("empty segment (an empty string is ~empty)".into());
        }
        if text.starts_with('~') && raw.starts_with('~') {
            return Err(format!(
                "unknown special segment {raw:?} (use %7E for a literal ~)"
            ));
        }
        write_canonical(out, &text, ty)
    })
}

/// The canonical key JSON of a key given as JSON values (a batch lookup's keys): the key that
/// the URL path [`encode_key`] makes of the same values decodes to, without the round trip
/// through text. A string value is the segment's text, so `["5"]` is the integer key 5 here as
/// in a URL.
pub fn key_from_values(
    values: &[serde_json::Value],
    types: &[KeyType],
) -> Result<Vec<u8>, KeyError> {
    use serde_json::Value;
    write_key(values, types, |out, value, ty| match value {
        Value::Null => {
            out.extend_from_slice(b"null");
            Ok(())
        }
        Value::Bool(b) => write_canonical(out, if *b { "true" } else { "false" }, ty),
        Value::Number(n) => match n.as_i64() {
            // Always the canonical spelling of an integer key: no text to check.
            Some(v) if ty == KeyType::Int => {
                out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
                Ok(())
            }
            _ => write_canonical(out, &n.to_string(), ty),
        },
        Value::String(s) if s.is_empty() => {
            if ty != KeyType::Str {
                return Err("an empty string is only a string key".into());
            }
            out.extend_from_slice(b"\"\"");
            Ok(())
        }
        Value::String(s) => write_canonical(out, s, ty),
        Value::Array(_) | Value::Object(_) => Err("not a scalar".into()),
    })
}

/// The canonical key JSON `[…]` of one item per key column, each appended by `write` for its
/// column's type; an error names the item that failed.
fn write_key<T>(
    items: &[T],
    types: &[KeyType],
    mut write: impl FnMut(&mut Vec<u8>, &T, KeyType) -> Result<(), String>,
) -> Result<Vec<u8>, KeyError> {
    if items.len() != types.len() {
        return Err(KeyError::Arity {
            expected: types.len(),
            got: items.len(),
        });
    }
    let mut out = Vec::with_capacity(64);
    out.push(b'[');
    for (index, (item, ty)) in items.iter().zip(types).enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write(&mut out, item, *ty).map_err(|message| KeyError::Segment { index, message })?;
    }
    out.push(b']');
    Ok(out)
}

/// Appends the key value whose text is `text` (decoded, not empty) as a key of type `ty`;
/// an error if `text` is not that type's canonical spelling.
fn write_canonical(out: &mut Vec<u8>, text: &str, ty: KeyType) -> Result<(), String> {
    let not_canonical = || format!("{text:?} is not a canonical {ty:?} key");
    match ty {
        KeyType::Str => canonical::write_str(out, text),
        KeyType::Int => {
            text.parse::<i128>()
                .map_err(|_| format!("{text:?} is not an integer"))?;
            // The canonical spelling: no sign but `-`, no leading zero, no `-0`.
            let digits = text.strip_prefix('-').unwrap_or(text);
            let canonical = digits.bytes().all(|b| b.is_ascii_digit())
                && if digits.starts_with('0') {
                    text == "0"
                } else {
                    !digits.is_empty()
                };
            if !canonical {
                return Err(not_canonical());
            }
            out.extend_from_slice(text.as_bytes());
        }
        KeyType::Float => {
            let v: f64 = text
                .parse()
                .map_err(|_| format!("{text:?} is not a number"))?;
            let mut form = Vec::new();
            canonical::write_f64(&mut form, v);
            if form != text.as_bytes() {
                return Err(not_canonical());
            }
            out.extend_from_slice(text.as_bytes());
        }
        KeyType::Bool => {
            if text != "true" && text != "false" {
                return Err(not_canonical());
            }
            out.extend_from_slice(text.as_bytes());
        }
        KeyType::Decimal { scale } => {
            let unscaled = canonical::parse_decimal(text, 38, scale.max(0))?;
            let mut form = Vec::new();
            canonical::write_decimal(&mut form, unscaled, scale);
            if form != text.as_bytes() {
                return Err(not_canonical());
            }
            canonical::write_str(out, text);
        }
        KeyType::Date => {
            let d = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| format!("{text:?} is not a date"))?;
            if d.format("%Y-%m-%d").to_string() != text {
                return Err(not_canonical());
            }
            canonical::write_str(out, text);
        }
        KeyType::Timestamp => {
            let t = chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|_| format!("{text:?} is not an RFC 3339 timestamp"))?;
            let mut form = Vec::new();
            canonical::write_timestamp_micros(&mut form, t.timestamp_micros());
            if form != text.as_bytes() {
                return Err(not_canonical());
            }
            canonical::write_str(out, text);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(key_json: &str, types: &[KeyType]) -> String {
        let path = encode_key(key_json.as_bytes()).unwrap();
        let segments: Vec<&str> = if path.is_empty() {
            vec![]
        } else {
            path.split('/').collect()
        };
        let back = decode_key(&segments, types).unwrap();
        assert_eq!(String::from_utf8(back).unwrap(), key_json, "via {path}");
        path
    }

    #[test]
    fn floats_keep_their_canonical_spelling() {
        // Found by the property test: serde_json re-printed these as `…e+25` and `…995e-236`.
        let f = [KeyType::Float];
        assert_eq!(
            round_trip("[-2.6198508033543223e25]", &f),
            "-2.6198508033543223e25"
        );
        assert_eq!(
            round_trip("[9.069072160233997e-236]", &f),
            "9.069072160233997e-236"
        );
        assert_eq!(encode_key(b"[[1]]"), None);
        assert_eq!(encode_key(b"[1,]"), None);
        assert_eq!(encode_key(br#"["a\"b,c"]"#).as_deref(), Some("a%22b%2Cc"));
    }

    #[test]
    fn hostile_strings_round_trip() {
        let s = [KeyType::Str];
        assert_eq!(round_trip(r#"["a/b"]"#, &s), "a%2Fb");
        assert_eq!(round_trip(r#"[""]"#, &s), "~empty");
        assert_eq!(round_trip("[null]", &s), "~null");
        assert_eq!(round_trip(r#"["~null"]"#, &s), "%7Enull");
        assert_eq!(round_trip(r#"[".."]"#, &s), "~..");
        assert_eq!(round_trip(r#"["."]"#, &s), "~.");
        assert_eq!(round_trip(r#"["a.b"]"#, &s), "a.b");
        assert_eq!(round_trip(r#"["%2F"]"#, &s), "%252F");
        round_trip(r#"["日本語 🦀 ?#"]"#, &s);
        round_trip(r#"["tab\tquote\"back\\"]"#, &s);
    }

    #[test]
    fn typed_keys_round_trip_and_reject_other_spellings() {
        assert_eq!(
            round_trip("[-9223372036854775808]", &[KeyType::Int]),
            "-9223372036854775808"
        );
        assert_eq!(
            round_trip(r#"["12.50"]"#, &[KeyType::Decimal { scale: 2 }]),
            "12.50"
        );
        round_trip(r#"["2026-11-01T08:30:00.25Z"]"#, &[KeyType::Timestamp]);
        round_trip(r#"["facebook",42]"#, &[KeyType::Str, KeyType::Int]);
        assert_eq!(round_trip("[]", &[]), "");
        assert!(decode_key(&["05"], &[KeyType::Int]).is_err());
        assert!(decode_key(&["12.5"], &[KeyType::Decimal { scale: 2 }]).is_err());
        assert!(decode_key(&["x"], &[KeyType::Int]).is_err());
        assert!(decode_key(&[""], &[KeyType::Str]).is_err());
        assert!(decode_key(&["~what"], &[KeyType::Str]).is_err());
        assert!(decode_key(&["%zz"], &[KeyType::Str]).is_err());
        assert_eq!(
            decode_key(&["a", "b"], &[KeyType::Str]),
            Err(KeyError::Arity {
                expected: 1,
                got: 2
            })
        );
        assert!(decode_key(&["-0"], &[KeyType::Int]).is_err());
        assert!(decode_key(&["+5"], &[KeyType::Int]).is_err());
        assert!(decode_key(&["-"], &[KeyType::Int]).is_err());
        assert_eq!(decode_key(&["0"], &[KeyType::Int]).unwrap(), b"[0]");
        // Any percent-encoding of the same bytes is the same key.
        assert_eq!(decode_key(&["%61"], &[KeyType::Str]).unwrap(), br#"["a"]"#);
    }

    /// A batch key given as JSON values is the key its URL path would be, or an error where the
    /// path is one.
    #[test]
    fn keys_from_values_agree_with_their_url_paths() {
        use KeyType::*;
        let cases: &[(&str, &[KeyType])] = &[
            ("[42]", &[Int]),
            ("[-9223372036854775808]", &[Int]),
            ("[18446744073709551615]", &[Int]),
            (r#"["42"]"#, &[Int]),
            (r#"["042"]"#, &[Int]),
            ("[4.5]", &[Int]),
            ("[null]", &[Int]),
            ("[true]", &[Bool]),
            (r#"["true"]"#, &[Bool]),
            ("[1]", &[Bool]),
            ("[2.5]", &[Float]),
            ("[1e25]", &[Float]),
            (r#"["12.50"]"#, &[Decimal { scale: 2 }]),
            ("[12.5]", &[Decimal { scale: 2 }]),
            (r#"["2026-11-01"]"#, &[Date]),
            (r#"["2026-11-1"]"#, &[Date]),
            (r#"["2026-11-01T08:30:00.25Z"]"#, &[Timestamp]),
            (r#"["a/b"]"#, &[Str]),
            (r#"[""]"#, &[Str]),
            (r#"[""]"#, &[Int]),
            (r#"[".."]"#, &[Str]),
            (r#"["~null"]"#, &[Str]),
            (r#"["%2F"]"#, &[Str]),
            (r#"["日本語 🦀 ?#"]"#, &[Str]),
            (r#"["facebook",42]"#, &[Str, Int]),
            ("[1,2]", &[Int]),
            ("[]", &[]),
        ];
        for (json, types) in cases {
            let values: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
            let printed = serde_json::to_vec(&values).unwrap();
            let path = encode_key(&printed).unwrap();
            let segments: Vec<&str> = if values.is_empty() {
                vec![]
            } else {
                path.split('/').collect()
            };
            let via_path = decode_key(&segments, types);
            let direct = key_from_values(&values, types);
            assert_eq!(
                direct.as_ref().ok(),
                via_path.as_ref().ok(),
                "{json} as {types:?}: {direct:?} / {via_path:?}"
            );
        }
    }
}
