//! The small blocking HTTP client the keyless flow needs (two JSON POSTs and a GET), with
//! timeouts and errors that name the status and what the service answered.

use std::time::Duration;

/// Why a request to a Sigstore or OIDC service failed. It becomes the `why` of an
/// [`crate::Error::KeylessService`], which names the service, its URL and the fix, so its
/// message includes the transport error's text rather than having it as a source.
#[derive(Debug, thiserror::Error)]
pub(super) enum HttpError {
    #[error("request failed: {0}")]
    Request(ureq::Error),
    #[error("cannot read the answer: {0}")]
    Read(ureq::Error),
    #[error("HTTP {status}: {answer}")]
    Status {
        status: ureq::http::StatusCode,
        /// The start of what the service answered.
        answer: String,
    },
}

/// A blocking HTTP client with timeouts; answers with the body or a message naming the
/// status and what the service said.
pub(super) struct Http(ureq::Agent);

impl Http {
    pub(super) fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build();
        Http(config.into())
    }

    fn finish(
        resp: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> std::result::Result<String, HttpError> {
        let mut resp = resp.map_err(HttpError::Request)?;
        let status = resp.status();
        let body = resp.body_mut().read_to_string().map_err(HttpError::Read)?;
        if !status.is_success() {
            return Err(HttpError::Status {
                status,
                answer: excerpt(&body),
            });
        }
        Ok(body)
    }

    pub(super) fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> std::result::Result<String, HttpError> {
        let bytes = kiln_core::canonical::to_vec(body).expect("JSON serializes");
        Self::finish(
            self.0
                .post(url)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .send(&bytes[..]),
        )
    }

    pub(super) fn get(
        &self,
        url: &str,
        authorization: &str,
    ) -> std::result::Result<String, HttpError> {
        Self::finish(
            self.0
                .get(url)
                .header("Authorization", authorization)
                .call(),
        )
    }
}

pub(super) fn excerpt(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
