//! Bearer tokens: a protected API's token is checked against the SHA-256 digests of its live
//! tokens, in constant time.

use super::*;

impl LookupState {
    pub(super) fn authorize(
        &self,
        api: &str,
        view: &View,
        headers: &HeaderMap,
    ) -> Result<(), LookupError> {
        if !view.requires_token {
            return Ok(());
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
            Ok(())
        } else {
            Err(LookupError::Forbidden(format!(
                "this token may not read API `{api}`"
            )))
        }
    }
}
