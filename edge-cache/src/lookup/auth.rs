//! Bearer tokens: a protected API's token is checked against the SHA-256 digests of its live
//! tokens, in constant time; then its quota (or, without a token on a public API, the
//! anonymous one) is applied.

use super::*;

impl LookupState {
    pub(super) fn authorize(
        &self,
        api: &str,
        view: &View,
        headers: &HeaderMap,
    ) -> Result<Option<[u8; 32]>, LookupError> {
        if !view.requires_token {
            return Ok(None);
        }
        let missing = || {
            LookupError::MissingToken(format!(
                "API `{api}` requires a token: Authorization: Bearer <token>"
            ))
        };
        let header = headers.get(AUTHORIZATION).ok_or_else(missing)?;
        let header = header.to_str().map_err(|_| missing())?;
        let (scheme, token) = header.trim().split_once(' ').ok_or_else(missing)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(missing());
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut allowed = subtle::Choice::from(0);
        for d in &view.digests {
            allowed |= d.ct_eq(&digest);
        }
        if bool::from(allowed) {
            Ok(Some(digest))
        } else {
            Err(LookupError::Forbidden(format!(
                "this token may not read API `{api}`"
            )))
        }
    }

    /// Takes one request from the caller's quota: the token's (when it has one), else, on a
    /// public API, the anonymous one of `[lookup]`. Per process: N lookup services behind a
    /// balancer let a token through at up to N times its rate.
    pub(super) fn throttle(
        &self,
        api: &str,
        view: &View,
        token: Option<[u8; 32]>,
    ) -> Result<(), LookupError> {
        let config = &self.inner.config;
        let (key, who, per_second, burst) = match token {
            Some(digest) => {
                let hash = hex::encode(digest);
                let Some(rate) = view.resolved.limits.get(&hash) else {
                    return Ok(());
                };
                let who = rate.token_id.clone();
                (hash, who, rate.per_second, rate.burst)
            }
            None if config.anonymous_per_second > 0 => (
                "~anonymous".to_string(),
                "anonymous".to_string(),
                config.anonymous_per_second,
                config.anonymous_burst,
            ),
            None => return Ok(()),
        };
        let wait = self.inner.quotas.take(api, &key, per_second, burst);
        match wait {
            None => Ok(()),
            Some(wait) => {
                self.inner
                    .metrics
                    .throttled
                    .with_label_values(&[api, &who])
                    .inc();
                Err(LookupError::Throttled(
                    format!("{who} is over its quota of {per_second} requests/s on API `{api}`"),
                    wait.as_secs().max(1),
                ))
            }
        }
    }
}
