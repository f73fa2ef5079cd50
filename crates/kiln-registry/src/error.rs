use std::path::PathBuf;

/// Why a registry operation failed. Messages name the registry, the URL or file, and
/// never a credential; the fix is the [`kiln_core::Hint`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] kiln_core::contract::reference::ReferenceError),
    #[error(
        "{registry}: plain HTTP is allowed only for a registry on this machine (127.0.0.1, localhost, [::1])"
    )]
    InsecureRemote { registry: String },
    #[error("{registry}: credentials: {why}")]
    Credentials { registry: String, why: String },
    #[error("{method} {url}: {why} (after {attempts} attempt(s))")]
    Transport {
        method: String,
        url: String,
        why: String,
        attempts: u32,
    },
    #[error("{method} {url}: HTTP {status}: {answer}")]
    Status {
        method: String,
        url: String,
        status: u16,
        answer: String,
    },
    #[error("{registry}: authentication failed: {why}")]
    Auth { registry: String, why: String },
    #[error("{url}: the registry says the manifest kiln sent as {sent} has digest {answered}")]
    DigestMismatch {
        url: String,
        sent: kiln_core::Digest,
        answered: String,
    },
    #[error("{what}: {why}")]
    Invalid { what: String, why: String },
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(
    what: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}

impl kiln_core::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::InsecureRemote { .. } => Some(
                "drop --insecure-http: a remote registry is reached over HTTPS".into(),
            ),
            Error::Credentials { .. } | Error::Auth { .. } => Some(
                "log in with `docker login REGISTRY`, or set $KILN_REGISTRY_USERNAME and $KILN_REGISTRY_PASSWORD (or $KILN_REGISTRY_TOKEN)"
                    .into(),
            ),
            Error::Transport { .. } => Some(
                "check that the registry is reachable (for a local registry without TLS, pass --insecure-http)".into(),
            ),
            Error::Status { status: 401 | 403, .. } => Some(
                "the credentials lack push or pull rights on this repository".into(),
            ),
            _ => None,
        }
    }
}
