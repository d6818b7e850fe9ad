//! Canonical JSON values and the entry digest: the bytes an edge stores and a lookup serves.
//!
//! The publisher writes every cell through these encoders (fields in spec order, integers as
//! integers, DECIMAL as a string with the type's scale, floats in shortest round-trip form with
//! non-finite as `null`, dates `YYYY-MM-DD`, timestamps RFC 3339 UTC with `Z` and a fraction only
//! when non-zero, strings escaped as `serde_json` does); lookups encode URL keys with the same
//! ones, so a key typed in a URL is byte for byte the key the publisher wrote.

use xxhash_rust::xxh3::Xxh3;

/// One key's answer: the key as a canonical JSON array, the value as canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// `key value`, both as their canonical JSON: how logs and test failures show an entry.
impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            String::from_utf8_lossy(&self.key),
            String::from_utf8_lossy(&self.value)
        )
    }
}

/// The line `tablecast run` writes for an entry: `{"key":[…],"value":…}`.
pub fn write_jsonl_line(
    out: &mut impl std::io::Write,
    key: &[u8],
    value: &[u8],
) -> std::io::Result<()> {
    for part in [&b"{\"key\":"[..], key, b",\"value\":", value, b"}\n"] {
        out.write_all(part)?;
    }
    Ok(())
}

/// Order-independent digest of a set of entries: count, bytes and the wrapping sum of each
/// entry's xxh3. Computed while writing, recomputed by a verifier in any order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checksum {
    pub keys: u64,
    pub bytes: u64,
    pub sum: u64,
}

impl Checksum {
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        self.keys += 1;
        self.bytes += (key.len() + value.len()) as u64;
        self.sum = self.sum.wrapping_add(entry_hash(key, value));
    }

    pub fn merge(&mut self, other: &Checksum) {
        self.keys += other.keys;
        self.bytes += other.bytes;
        self.sum = self.sum.wrapping_add(other.sum);
    }

    pub fn hex(&self) -> String {
        format!("{:016x}", self.sum)
    }
}

/// xxh3-64 of the key length, key and value: stable across versions and platforms.
pub fn entry_hash(key: &[u8], value: &[u8]) -> u64 {
    let mut h = Xxh3::new();
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key);
    h.update(value);
    h.digest()
}

/// Shortest round-trip form (`ryu`, as `serde_json` prints floats); NaN and infinities are `null`.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// A JSON string, escaped exactly as `serde_json` does (`"`, `\`, control characters).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `1234.50` for 123450 at scale 2; negative scales multiply out.
pub fn write_decimal(out: &mut Vec<u8>, unscaled: i128, scale: i8) {
    let mut ints = itoa::Buffer::new();
    if scale <= 0 {
        out.extend_from_slice(ints.format(unscaled).as_bytes());
        out.extend(std::iter::repeat_n(
            b'0',
            if unscaled == 0 { 0 } else { (-scale) as usize },
        ));
        return;
    }
    if unscaled < 0 {
        out.push(b'-');
    }
    let digits = ints.format(unscaled.unsigned_abs()).as_bytes();
    let scale = scale as usize;
    if digits.len() <= scale {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    }
}

/// Civil date from days since the epoch (Howard Hinnant's algorithm), for any i32.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn write_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut ints = itoa::Buffer::new();
    let s = ints.format(v).as_bytes();
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(s.len())));
    out.extend_from_slice(s);
}

fn write_year(out: &mut Vec<u8>, y: i64) {
    if y < 0 {
        out.push(b'-');
    }
    write_padded(out, y.unsigned_abs(), 4);
}

pub fn write_date(out: &mut Vec<u8>, days: i32) {
    let (y, m, d) = civil_from_days(i64::from(days));
    write_year(out, y);
    out.push(b'-');
    write_padded(out, u64::from(m), 2);
    out.push(b'-');
    write_padded(out, u64::from(d), 2);
}

/// `2026-11-01T08:30:00Z`, `…:00.25Z`: a fraction only when non-zero, trailing zeros trimmed.
///
/// Years 0–9999 are written from a fixed template, two digits at a time: timestamps are most of
/// the bytes of a list API such as `recent_activity`, and this is on every one of them.
pub fn write_timestamp_micros(out: &mut Vec<u8>, micros: i64) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    if (0..=9999).contains(&y) {
        let mut text = *b"0000-00-00T00:00:00";
        put_two_digits(&mut text[0..2], y as u32 / 100);
        put_two_digits(&mut text[2..4], y as u32 % 100);
        put_two_digits(&mut text[5..7], m);
        put_two_digits(&mut text[8..10], d);
        put_two_digits(&mut text[11..13], sod / 3600);
        put_two_digits(&mut text[14..16], sod / 60 % 60);
        put_two_digits(&mut text[17..19], sod % 60);
        out.extend_from_slice(&text);
    } else {
        write_date(out, days as i32);
        out.push(b'T');
        write_padded(out, u64::from(sod / 3600), 2);
        out.push(b':');
        write_padded(out, u64::from(sod / 60 % 60), 2);
        out.push(b':');
        write_padded(out, u64::from(sod % 60), 2);
    }
    if frac != 0 {
        let mut text = *b".000000";
        put_two_digits(&mut text[1..3], frac / 10_000);
        put_two_digits(&mut text[3..5], frac / 100 % 100);
        put_two_digits(&mut text[5..7], frac % 100);
        let mut len = text.len();
        while text[len - 1] == b'0' {
            len -= 1;
        }
        out.extend_from_slice(&text[..len]);
    }
    out.push(b'Z');
}

fn put_two_digits(slot: &mut [u8], v: u32) {
    slot[0] = b'0' + (v / 10) as u8;
    slot[1] = b'0' + (v % 10) as u8;
}

/// Parses `-123.45` into the unscaled integer of a DECIMAL(p, s), refusing lost digits.
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Result<i128, String> {
    let bad = || format!("{text:?} is not a decimal({precision},{scale}) literal");
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let scale = scale.max(0) as usize;
    let frac_trimmed = frac_part.trim_end_matches('0');
    if frac_trimmed.len() > scale {
        return Err(format!("{text:?} has more than {scale} decimal places"));
    }
    let int_digits = int_part.trim_start_matches('0');
    if int_digits.len() + scale > precision as usize {
        return Err(format!(
            "{text:?} does not fit decimal({precision},{scale})"
        ));
    }
    let mut unscaled: i128 = 0;
    for b in int_digits.bytes().chain(frac_trimmed.bytes()) {
        unscaled = unscaled * 10 + i128::from(b - b'0');
    }
    unscaled *= 10i128.pow((scale - frac_trimmed.len()) as u32);
    Ok(if negative { -unscaled } else { unscaled })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_escape_like_serde_json() {
        for v in [
            "plain",
            "quote\"back\\slash",
            "tab\tnl\ncr\r",
            "\u{1}\u{1f}",
            "日本語 🦀",
            "",
            "/%?#",
        ] {
            assert_eq!(s(|o| write_str(o, v)), serde_json::to_string(v).unwrap());
        }
    }

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(s(|o| write_decimal(o, 123450, 2)), "1234.50");
        assert_eq!(s(|o| write_decimal(o, -5, 2)), "-0.05");
        assert_eq!(s(|o| write_decimal(o, 0, 2)), "0.00");
        assert_eq!(s(|o| write_decimal(o, 7, 0)), "7");
        assert_eq!(s(|o| write_decimal(o, 7, -2)), "700");
        assert_eq!(
            s(|o| write_decimal(o, i128::MAX, 10)),
            "17014118346046923173168730371.5884105727"
        );
    }

    #[test]
    fn floats_are_shortest_round_trip() {
        assert_eq!(s(|o| write_f64(o, 0.1)), "0.1");
        assert_eq!(s(|o| write_f64(o, 3.0)), "3.0");
        assert_eq!(s(|o| write_f64(o, 1e300)), "1e300");
        assert_eq!(s(|o| write_f64(o, 5e-324)), "5e-324");
        assert_eq!(s(|o| write_f64(o, f64::NAN)), "null");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(s(|o| write_timestamp_micros(o, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            s(|o| write_timestamp_micros(o, 1_761_985_800_250_000)),
            "2025-11-01T08:30:00.25Z"
        );
        assert_eq!(
            s(|o| write_timestamp_micros(o, -1)),
            "1969-12-31T23:59:59.999999Z"
        );
        assert_eq!(s(|o| write_date(o, 20_393)), "2025-11-01");
        // Years outside the four-digit template.
        assert_eq!(
            s(|o| write_timestamp_micros(o, 253_402_300_800_000_001)),
            "10000-01-01T00:00:00.000001Z"
        );
        assert_eq!(
            s(|o| write_timestamp_micros(
                o,
                -62_167_219_200_000_000 - 86_400_000_000 + 3_723_400_000
            )),
            "-0001-12-31T01:02:03.4Z"
        );
        // Cross-check against chrono over a spread of instants.
        for micros in [
            1i64,
            86_399_999_999,
            951_782_400_000_000,
            -62_135_596_800_000_000,
            253_402_300_799_000_000,
        ] {
            let t = chrono::DateTime::from_timestamp_micros(micros).unwrap();
            let expected = t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            let ours = s(|o| write_timestamp_micros(o, micros));
            // chrono prints fractions in groups of 3 digits; ours trims every trailing zero.
            let trimmed = expected
                .trim_end_matches('Z')
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
                + "Z";
            let expected_trimmed = if expected.contains('.') {
                trimmed
            } else {
                expected
            };
            assert_eq!(ours, expected_trimmed);
        }
    }

    #[test]
    fn checksum_is_order_independent() {
        let mut a = Checksum::default();
        a.add(b"[1]", b"{}");
        a.add(b"[2]", b"[]");
        let mut b = Checksum::default();
        b.add(b"[2]", b"[]");
        b.add(b"[1]", b"{}");
        assert_eq!(a, b);
        assert_eq!(a.keys, 2);
    }
}
