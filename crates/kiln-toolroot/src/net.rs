//! The HTTP client of `pin` and `fetch`: kiln-core's [`kiln_core::net::Client`] (timeouts,
//! a size limit, retries with backoff), its failures turned into
//! [`ToolrootError::Download`]. What the bytes are is checked by the callers, never by
//! trusting the server.

use kiln_core::net::{Client, DownloadError};

use crate::error::{Result, ToolrootError};

pub(crate) use kiln_core::net::Sink;

pub(crate) struct Net {
    client: Client,
}

impl Net {
    pub(crate) fn new() -> Self {
        Net {
            client: Client::new(concat!("kiln-toolroot/", env!("CARGO_PKG_VERSION"))),
        }
    }

    /// GETs `url` into memory, at most `limit` bytes.
    pub(crate) fn get_bytes(&self, url: &str, limit: u64) -> Result<Vec<u8>> {
        self.client.get_bytes(url, limit).map_err(download)
    }

    /// GETs `url`, handing the body to `sink` in pieces (reset before each attempt).
    pub(crate) fn get_to(&self, url: &str, limit: u64, sink: &mut dyn Sink) -> Result<()> {
        self.client.get_to(url, limit, sink).map_err(download)
    }

    /// The `Content-Length` a HEAD request reports, if the server gives one.
    pub(crate) fn head_size(&self, url: &str) -> Option<u64> {
        self.client.head_size(url)
    }
}

fn download(e: DownloadError) -> ToolrootError {
    ToolrootError::Download {
        url: e.url,
        why: e.why,
    }
}
