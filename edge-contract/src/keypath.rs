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

fn percent_decode(segment: &str) -> Result<String, String> {
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
    String::from_utf8(out).map_err(|_| "not UTF-8 after %-decoding".to_string())
}

/// Turns URL segments (still percent-encoded) into the canonical key JSON of an entry.
pub fn decode_key<S: AsRef<str>>(segments: &[S], types: &[KeyType]) -> Result<Vec<u8>, KeyError> {
    if segments.len() != types.len() {
        return Err(KeyError::Arity {
            expected: types.len(),
            got: segments.len(),
        });
    }
    let mut out = Vec::with_capacity(64);
    out.push(b'[');
    for (index, (segment, ty)) in segments.iter().zip(types).enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let err = |message: String| KeyError::Segment { index, message };
        let raw = segment.as_ref();
        if raw == NULL_SEGMENT {
            out.extend_from_slice(b"null");
            continue;
        }
        let text = percent_decode(raw).map_err(err)?;
        if raw == EMPTY_SEGMENT {
            if *ty != KeyType::Str {
                return Err(err("~empty is only a string key".into()));
            }
            out.extend_from_slice(b"\"\"");
            continue;
        }
        if text.is_empty() {
            return Err(err("empty segment (an empty string is ~empty)".into()));
        }
        if raw.starts_with('~') && is_dots(&raw[1..]) {
            if *ty != KeyType::Str {
                return Err(err("~dots is only a string key".into()));
            }
            canonical::write_str(&mut out, &raw[1..]);
            continue;
        }
        if text.starts_with('~') && raw.starts_with('~') {
            return Err(err(format!(
                "unknown special segment {raw:?} (use %7E for a literal ~)"
            )));
        }
        let canonical = |ok: bool, form: String| {
            if ok {
                Ok(form)
            } else {
                Err(err(format!("{text:?} is not a canonical {ty:?} key")))
            }
        };
        match ty {
            KeyType::Str => canonical::write_str(&mut out, &text),
            KeyType::Int => {
                let v: i128 = text
                    .parse()
                    .map_err(|_| err(format!("{text:?} is not an integer")))?;
                out.extend_from_slice(canonical(v.to_string() == text, text.clone())?.as_bytes());
            }
            KeyType::Float => {
                let v: f64 = text
                    .parse()
                    .map_err(|_| err(format!("{text:?} is not a number")))?;
                let mut form = Vec::new();
                canonical::write_f64(&mut form, v);
                let form = String::from_utf8(form).unwrap_or_default();
                out.extend_from_slice(canonical(form == text, text.clone())?.as_bytes());
            }
            KeyType::Bool => out.extend_from_slice(
                canonical(text == "true" || text == "false", text.clone())?.as_bytes(),
            ),
            KeyType::Decimal { scale } => {
                let unscaled = canonical::parse_decimal(&text, 38, (*scale).max(0)).map_err(err)?;
                let mut form = Vec::new();
                canonical::write_decimal(&mut form, unscaled, *scale);
                let form = String::from_utf8(form).unwrap_or_default();
                canonical(form == text, String::new())?;
                canonical::write_str(&mut out, &form);
            }
            KeyType::Date => {
                let d = chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                    .map_err(|_| err(format!("{text:?} is not a date")))?;
                canonical(d.format("%Y-%m-%d").to_string() == text, String::new())?;
                canonical::write_str(&mut out, &text);
            }
            KeyType::Timestamp => {
                let t = chrono::DateTime::parse_from_rfc3339(&text)
                    .map_err(|_| err(format!("{text:?} is not an RFC 3339 timestamp")))?;
                let mut form = Vec::new();
                canonical::write_timestamp_micros(&mut form, t.timestamp_micros());
                let form = String::from_utf8(form).unwrap_or_default();
                canonical(form == text, String::new())?;
                canonical::write_str(&mut out, &form);
            }
        }
    }
    out.push(b']');
    Ok(out)
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
        // Any percent-encoding of the same bytes is the same key.
        assert_eq!(decode_key(&["%61"], &[KeyType::Str]).unwrap(), br#"["a"]"#);
    }
}
