//! The HTTP client of kiln's pinned downloads (feature `net`): kiln-toolroot's `pin` and
//! `fetch`, and kiln-hermetic's locked crates. One blocking `ureq` agent with timeouts, a
//! body size limit, a few retries with backoff on transport failures, 5xx and 429, and
//! nothing else (no caching). What the bytes are is checked by the callers — by sha256
//! against a pin — never by trusting the server.
//!
//! Proxies are ureq's: `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` (and their lowercase forms)
//! and `NO_PROXY` from the environment.

use std::io::Read;
use std::time::Duration;

/// Connecting, and waiting for the response headers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Between two reads of a body: a stalled download fails instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts per request (transport failures, 5xx and 429 only; any other status is final).
const ATTEMPTS: u32 = 3;
/// The first wait before a retry; each further retry waits twice as long.
const RETRY_DELAY: Duration = Duration::from_secs(2);

/// A download that failed before (or while) its bytes arrived. The message does not name
/// the URL: callers put it in their own error, next to what the download was for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{why}")]
pub struct DownloadError {
    pub url: String,
    pub why: String,
    /// The HTTP status of a final error response (a 404), if that was the failure.
    pub status: Option<u16>,
}

/// A blocking HTTP(S) client (see the module docs). Cheap to share between threads.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    attempts: u32,
    retry_delay: Duration,
}

impl Client {
    /// A client announcing itself as `user_agent` (`kiln/0.1.0`, `kiln-toolroot/0.1.0`).
    pub fn new(user_agent: &str) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(READ_TIMEOUT))
            .user_agent(user_agent)
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .build();
        Client {
            agent: config.into(),
            attempts: ATTEMPTS,
            retry_delay: RETRY_DELAY,
        }
    }

    /// The wait before the first retry (doubling after that); 2 s unless changed.
    pub fn with_retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Attempts per request, at least 1; 3 unless changed.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// GETs `url` into memory, at most `limit` bytes.
    pub fn get_bytes(&self, url: &str, limit: u64) -> Result<Vec<u8>, DownloadError> {
        let mut out = Vec::new();
        self.get_to(url, limit, &mut out)?;
        Ok(out)
    }

    /// GETs `url`, handing the body to `sink` in pieces; after a transport failure, a 5xx or
    /// a 429 the request is retried from the start (after a growing wait), the sink reset
    /// first so that it never holds two responses spliced together. A body larger than
    /// `limit` bytes, any other error status, or a failing sink is final.
    pub fn get_to(&self, url: &str, limit: u64, sink: &mut dyn Sink) -> Result<(), DownloadError> {
        let fail = |why: String, status: Option<u16>| DownloadError {
            url: url.to_string(),
            why,
            status,
        };
        let mut last = String::new();
        for attempt in 0..self.attempts {
            if attempt > 0 {
                std::thread::sleep(self.retry_delay * (1 << (attempt - 1).min(8)));
            }
            sink.reset()
                .map_err(|e| fail(format!("storing the body: {e}"), None))?;
            match self.agent.get(url).call() {
                Ok(mut resp) => {
                    let mut reader = resp.body_mut().as_reader();
                    let mut buf = vec![0u8; 1 << 16];
                    let mut total: u64 = 0;
                    let mut failed = None;
                    loop {
                        match reader.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                total += n as u64;
                                if total > limit {
                                    return Err(fail(
                                        format!("the body is larger than {limit} bytes"),
                                        None,
                                    ));
                                }
                                sink.put(&buf[..n])
                                    .map_err(|e| fail(format!("storing the body: {e}"), None))?;
                            }
                            Err(e) => {
                                failed = Some(e.to_string());
                                break;
                            }
                        }
                    }
                    match failed {
                        None => return Ok(()),
                        Some(why) => {
                            last = format!("the connection broke after {total} bytes: {why}")
                        }
                    }
                }
                Err(ureq::Error::StatusCode(code)) if code < 500 && code != 429 => {
                    return Err(fail(format!("the server answered HTTP {code}"), Some(code)));
                }
                Err(e) => last = transport_why(&e),
            }
        }
        Err(fail(
            format!("{last} (after {} attempts)", self.attempts),
            None,
        ))
    }

    /// The `Content-Length` a HEAD request reports, if the server gives one.
    pub fn head_size(&self, url: &str) -> Option<u64> {
        let resp = self.agent.head(url).call().ok()?;
        resp.headers()
            .get("content-length")?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }
}

fn transport_why(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::Io(io) => format!("connection: {io}"),
        ureq::Error::StatusCode(c) => format!("the server answered HTTP {c}"),
        other => other.to_string(),
    }
}

/// Where a response body goes.
pub trait Sink {
    /// Forgets everything put so far (before each attempt).
    fn reset(&mut self) -> std::io::Result<()>;
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()>;
}

impl Sink for Vec<u8> {
    fn reset(&mut self) -> std::io::Result<()> {
        self.clear();
        Ok(())
    }
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}
