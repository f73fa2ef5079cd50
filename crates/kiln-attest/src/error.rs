use std::path::PathBuf;

/// Everything that can go wrong producing or checking evidence. Messages name the file,
/// the field and the fix; none ever contains private key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "signing key {path} is readable by group or others (mode {mode:03o})\n  fix: `chmod 600 {path}` (kiln refuses keys other users can read)"
    )]
    InsecureKey { path: PathBuf, mode: u32 },
    #[error(
        "signing key {path} is {kind}, not a key file\n  fix: pass the PKCS#8 PEM file itself (`cargo xtask keygen --out PREFIX` writes PREFIX.key)"
    )]
    KeyNotAFile { path: PathBuf, kind: &'static str },
    #[error(
        "${var} is neither PEM text (no `-----BEGIN PRIVATE KEY-----` line) nor the path of an existing file (value of {len} characters, not shown: it may be key material)\n  fix: set it to the whole PKCS#8 PEM, armour lines included, or to the path of the key file"
    )]
    KeyEnvUnusable { var: &'static str, len: usize },
    #[error(
        "{origin}: not a PKCS#8 PEM ECDSA P-256 private key ({why})\n  fix: create one with `cargo xtask keygen`"
    )]
    BadPrivateKey { origin: String, why: String },
    #[error(
        "{origin}: not a PEM ECDSA P-256 public key (SubjectPublicKeyInfo) ({why})\n  fix: use the `.pub` file `cargo xtask keygen` wrote"
    )]
    BadPublicKey { origin: String, why: String },
    #[error(
        "{path} already exists\n  fix: choose another --out or remove it; keygen never overwrites a key"
    )]
    KeyExists { path: PathBuf },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("policy {path}: {message}")]
    Policy { path: PathBuf, message: String },
    #[error("keyless signing: {0}")]
    Keyless(String),
    #[error("keyless signing: {service} at {url}: {why}\n  fix: {fix}")]
    KeylessService {
        service: &'static str,
        url: String,
        why: String,
        fix: &'static str,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io<'a>(
    what: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}
