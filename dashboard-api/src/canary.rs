//! Canary probes: asks a lookup service, as a client would, for a sample of the entries a
//! publish computed and compares its answers with them. The control plane decides what the
//! canary edge serves; this only reads.

use std::time::Duration;

use edge_contract::keypath::encode_key;
use publisher::canonical::Entry;

/// How long a lookup service may take to notice a new version (its version cache).
pub const PICKUP: Duration = Duration::from_secs(5);

/// One probe round's outcome.
#[derive(Debug, Default)]
pub struct Round {
    pub probes: u64,
    pub mismatches: u64,
    /// The first few differences, described.
    pub examples: Vec<String>,
    /// The version the lookup answered with most recently (its header).
    pub served: Option<u64>,
}

/// Looks every sampled key up on `lookup` (`http://host:port`) and compares the answer with the
/// entry: status 200, the `x-tablecast-version` header equal to `version`, the same JSON value.
pub async fn probe(
    http: &reqwest::Client,
    lookup: &str,
    api: &str,
    version: u64,
    sample: &[Entry],
    token: Option<&str>,
) -> Round {
    let mut round = Round::default();
    for entry in sample {
        round.probes += 1;
        let Some(path) = encode_key(&entry.key) else {
            round.mismatches += 1;
            round.examples.push(format!(
                "key {} has no URL form",
                String::from_utf8_lossy(&entry.key)
            ));
            continue;
        };
        let url = format!("{}/v1/{api}/{path}", lookup.trim_end_matches('/'));
        let mut request = http.get(&url);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let outcome = match request.send().await {
            Err(e) => Err(format!("GET {url}: {e}")),
            Ok(resp) => {
                let status = resp.status().as_u16();
                let served = resp
                    .headers()
                    .get("x-tablecast-version")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                round.served = served.or(round.served);
                let body = resp.bytes().await.unwrap_or_default();
                compare(status, served, &body, version, &entry.value)
                    .map_err(|why| format!("GET {url}: {why}"))
            }
        };
        if let Err(why) = outcome {
            round.mismatches += 1;
            if round.examples.len() < 3 {
                round.examples.push(why);
            }
        }
    }
    round
}

fn compare(
    status: u16,
    served: Option<u64>,
    body: &[u8],
    version: u64,
    expected: &[u8],
) -> Result<(), String> {
    if status != 200 {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(body)
        ));
    }
    if served != Some(version) {
        return Err(format!(
            "answered from version {}, not {version}",
            served.map_or("?".into(), |v| v.to_string())
        ));
    }
    let same = match (
        serde_json::from_slice::<serde_json::Value>(body),
        serde_json::from_slice::<serde_json::Value>(expected),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => body == expected,
    };
    if same {
        Ok(())
    } else {
        Err(format!(
            "answered {}, computed {}",
            String::from_utf8_lossy(body),
            String::from_utf8_lossy(expected)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::compare;

    #[test]
    fn an_answer_matches_only_with_its_status_version_and_value() {
        assert!(compare(200, Some(2), br#"{"a": 1}"#, 2, br#"{"a":1}"#).is_ok());
        assert!(
            compare(200, Some(1), br#"{"a":1}"#, 2, br#"{"a":1}"#)
                .unwrap_err()
                .contains("version 1, not 2")
        );
        assert!(
            compare(200, Some(2), br#"{"a":2}"#, 2, br#"{"a":1}"#)
                .unwrap_err()
                .contains("computed")
        );
        assert!(
            compare(404, None, b"{}", 2, b"{}")
                .unwrap_err()
                .contains("404")
        );
    }
}
