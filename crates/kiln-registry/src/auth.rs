//! Registry credentials and the two challenges registries send (`Basic`, and `Bearer`
//! with a token service), as the distribution spec's token authentication describes.
//!
//! Credentials come, in order, from `$KILN_REGISTRY_TOKEN` (a bearer token used as is),
//! `$KILN_REGISTRY_USERNAME`/`$KILN_REGISTRY_PASSWORD` (for CI, where a secret is an
//! environment variable), then docker's `config.json` (`$DOCKER_CONFIG` or `~/.docker`,
//! including `credsStore`/`credHelpers` helpers). No credential is ever printed: `Debug`
//! redacts them, and no error message includes one.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;

/// What kiln presents to a registry.
#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// A registry token used directly as `Authorization: Bearer`.
    Token(String),
    /// Docker's `identitytoken`: a refresh token exchanged at the token service.
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credentials::Anonymous => "Anonymous",
            Credentials::Basic { .. } => "Basic(<redacted>)",
            Credentials::Token(_) => "Token(<redacted>)",
            Credentials::IdentityToken(_) => "IdentityToken(<redacted>)",
        })
    }
}

/// Where the credentials came from (for messages: never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    None,
    Environment,
    DockerConfig,
}

impl Credentials {
    /// Credentials for `registry` (`host[:port]` as in the reference), from the
    /// environment, then docker's config. Returns `Anonymous` when nothing is configured.
    pub fn discover(registry: &str) -> Result<(Credentials, Source), String> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        if let Some(t) = var("KILN_REGISTRY_TOKEN") {
            return Ok((Credentials::Token(t), Source::Environment));
        }
        match (var("KILN_REGISTRY_USERNAME"), var("KILN_REGISTRY_PASSWORD")) {
            (Some(username), Some(password)) => {
                return Ok((
                    Credentials::Basic { username, password },
                    Source::Environment,
                ));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(
                    "only one of $KILN_REGISTRY_USERNAME and $KILN_REGISTRY_PASSWORD is set: set both (or neither)"
                        .into(),
                );
            }
            (None, None) => {}
        }
        // Docker Hub's credentials are filed under its v1 index URL.
        let keys: Vec<String> = if registry == "docker.io" {
            vec!["https://index.docker.io/v1/".into(), "docker.io".into()]
        } else {
            vec![registry.to_string(), format!("https://{registry}")]
        };
        use docker_credential::CredentialRetrievalError as E;
        for key in keys {
            match docker_credential::get_credential(&key) {
                Ok(docker_credential::DockerCredential::UsernamePassword(username, password)) => {
                    return Ok((
                        Credentials::Basic { username, password },
                        Source::DockerConfig,
                    ));
                }
                Ok(docker_credential::DockerCredential::IdentityToken(t)) => {
                    return Ok((Credentials::IdentityToken(t), Source::DockerConfig));
                }
                Err(E::NoCredentialConfigured | E::ConfigNotFound | E::ConfigReadError) => {}
                // The helper's output is not quoted: it may hold a secret.
                Err(E::HelperFailure { helper, .. }) => {
                    return Err(format!(
                        "docker credential helper `docker-credential-{helper}` failed for {registry}"
                    ));
                }
                Err(e) => {
                    return Err(format!(
                        "docker config.json, credentials for {registry}: {e}"
                    ));
                }
            }
        }
        Ok((Credentials::Anonymous, Source::None))
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self, Credentials::Anonymous)
    }

    /// `Authorization: Basic ...` for a username/password.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            _ => None,
        }
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Basic realm="..."` or `Bearer realm="...",service="...",scope="..."`.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(params);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `key="value", key2=value2` (quoted values may contain commas, e.g. two scopes).
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, &q[end.min(q.len())..])
        } else {
            match after.find(',') {
                Some(i) => (after[..i].trim().to_string(), &after[i..]),
                None => (after.trim().to_string(), ""),
            }
        };
        out.insert(key, value);
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registry_challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge("Bearer realm=https://t/x, service=s"),
            Some(Challenge::Bearer {
                realm: "https://t/x".into(),
                service: Some("s".into()),
                scope: None
            })
        );
        assert_eq!(parse_challenge("Bearer service=\"no realm\""), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credentials::Token("tok-secret".into())).contains("secret"));
    }
}
