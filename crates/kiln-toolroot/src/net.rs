//! The HTTP client of `pin` and `fetch`: one blocking `ureq` agent with timeouts, a few
//! retries on transport failures, and nothing else (no caching, no redirects to other
//! schemes). What the bytes are is checked by the callers, never by trusting the server.

use std::io::Read;
use std::time::Duration;

use crate::error::{Result, ToolrootError};

/// Connecting, and waiting for the response headers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Between two reads of a body: a stalled download fails instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts per request (transport failures and 5xx only; a 404 is final).
const ATTEMPTS: u32 = 3;

pub(crate) struct Net {
    agent: ureq::Agent,
}

impl Net {
    pub(crate) fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(READ_TIMEOUT))
            .user_agent(concat!("kiln-toolroot/", env!("CARGO_PKG_VERSION")))
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .build();
        Net {
            agent: config.into(),
        }
    }

    /// GETs `url` into memory, at most `limit` bytes.
    pub(crate) fn get_bytes(&self, url: &str, limit: u64) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.get_to(url, limit, &mut out)?;
        Ok(out)
    }

    /// GETs `url`, handing the body to `sink` in pieces; after a transport failure the
    /// request is retried from the start, the sink reset first so that it never holds
    /// two responses spliced together.
    pub(crate) fn get_to(&self, url: &str, limit: u64, sink: &mut dyn Sink) -> Result<()> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_secs(1 << attempt));
            }
            sink.reset().map_err(|e| ToolrootError::Download {
                url: url.to_string(),
                why: format!("storing the body: {e}"),
            })?;
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
                                    return Err(ToolrootError::Download {
                                        url: url.to_string(),
                                        why: format!("the body is larger than {limit} bytes"),
                                    });
                                }
                                sink.put(&buf[..n]).map_err(|e| ToolrootError::Download {
                                    url: url.to_string(),
                                    why: format!("storing the body: {e}"),
                                })?;
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
                Err(ureq::Error::StatusCode(code)) if code < 500 => {
                    return Err(ToolrootError::Download {
                        url: url.to_string(),
                        why: format!("the server answered HTTP {code}"),
                    });
                }
                Err(e) => last = transport_why(&e),
            }
        }
        Err(ToolrootError::Download {
            url: url.to_string(),
            why: format!("{last} (after {ATTEMPTS} attempts)"),
        })
    }

    /// The `Content-Length` a HEAD request reports, if the server gives one.
    pub(crate) fn head_size(&self, url: &str) -> Option<u64> {
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
pub(crate) trait Sink {
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
