//! The OIDC identity token Fulcio certifies: fetched from GitHub Actions' token service
//! when none was given, and the subject its proof of possession signs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::Deserialize;

use crate::error::{Error, Result};

use super::TOKEN_ENV;
use super::http::Http;

/// The OIDC token from GitHub Actions' token service, for audience `sigstore`.
pub(super) fn actions_token(env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let (Some(url), Some(bearer)) = (
        env("ACTIONS_ID_TOKEN_REQUEST_URL"),
        env("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    ) else {
        return Err(Error::Keyless(format!(
            "no OIDC identity token: ${TOKEN_ENV} is unset and this is not a GitHub Actions job with an ID token\n  fix: on GitHub Actions grant `permissions: id-token: write` to the job; elsewhere set ${TOKEN_ENV} to a token from your OIDC provider (audience `sigstore`)"
        )));
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}audience=sigstore");
    let body = Http::new()
        .get(&full, &format!("bearer {bearer}"))
        .map_err(|why| Error::KeylessService {
            service: "GitHub Actions OIDC token service",
            url: url.clone(),
            why: why.to_string(),
            fix: "grant the job `permissions: id-token: write`",
        })?;
    #[derive(Deserialize)]
    struct TokenResponse {
        value: String,
    }
    let t: TokenResponse = serde_json::from_str(&body).map_err(|e| Error::KeylessService {
        service: "GitHub Actions OIDC token service",
        url,
        why: format!("no `value` in the answer ({e})"),
        fix: "grant the job `permissions: id-token: write`",
    })?;
    Ok(t.value)
}

/// The identity Fulcio's proof of possession signs: the token's `email` for the
/// email-based issuers, else its `sub` (as sigstore-js does).
pub(super) fn token_subject(token: &str) -> Result<String> {
    let bad = |why: String| {
        Error::Keyless(format!(
            "the OIDC token is not a JWT ({why})\n  fix: pass the raw ID token (three base64url parts separated by dots)"
        ))
    };
    let mut parts = token.split('.');
    let (Some(_), Some(claims), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("fewer than three parts".into()));
    };
    let bytes = B64URL
        .decode(claims.trim_end_matches('='))
        .map_err(|e| bad(format!("claims are not base64url: {e}")))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("claims are not JSON: {e}")))?;
    let field = match claims["iss"].as_str() {
        Some("https://accounts.google.com" | "https://oauth2.sigstore.dev/auth") => "email",
        _ => "sub",
    };
    claims[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| bad(format!("no `{field}` claim")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_subject_and_bad_tokens() {
        let claims = |c: &str| format!("e30.{}.", B64URL.encode(c));
        assert_eq!(token_subject(&claims(r#"{"iss":"https://token.actions.githubusercontent.com","sub":"repo:o/r:ref:refs/heads/main"}"#)).unwrap(), "repo:o/r:ref:refs/heads/main");
        assert_eq!(
            token_subject(&claims(
                r#"{"iss":"https://accounts.google.com","sub":"1","email":"a@b.c"}"#
            ))
            .unwrap(),
            "a@b.c"
        );
        for bad in [
            "",
            "abc",
            "a.!!!.c",
            &claims("[]"),
            &claims(r#"{"iss":"x"}"#),
        ] {
            let e = token_subject(bad).unwrap_err().to_string();
            assert!(e.contains("not a JWT") && e.contains("fix:"), "{e}");
        }
    }

    #[test]
    fn no_token_outside_actions_names_the_fix() {
        let e = actions_token(&|_| None).unwrap_err().to_string();
        assert!(
            e.contains(TOKEN_ENV) && e.contains("id-token: write"),
            "{e}"
        );
    }
}
