//! ECDSA P-256 keys: generation, loading (with a permission check), signing, verifying.
//!
//! Keys are PKCS#8 PEM (private) and SubjectPublicKeyInfo PEM (public), the formats cosign,
//! securesystemslib and `openssl` all read. A key's id is the hex sha256 of its SPKI DER:
//! derived from the key alone, so the DSSE `keyid` and the Sigstore bundle's
//! `publicKey.hint` name the same key in every tool without a registry of names.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result, io};

/// The environment variable that may hold the signing key: PEM text, or a path to it.
pub const KEY_ENV: &str = "KILN_SIGNING_KEY";

/// A private signing key. `Debug` prints only the key id; the secret never reaches a log.
pub struct SigningKey {
    inner: p256::ecdsa::SigningKey,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public.keyid)
    }
}

/// A public key and the id derived from it.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    spki_der: Vec<u8>,
    keyid: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.keyid)
    }
}

impl PublicKey {
    fn new(key: VerifyingKey) -> Self {
        let spki_der = key
            .to_public_key_der()
            .expect("a P-256 point encodes as SPKI")
            .as_bytes()
            .to_vec();
        let keyid = hex::encode(Sha256::digest(&spki_der));
        PublicKey {
            key,
            spki_der,
            keyid,
        }
    }

    /// Parses an SPKI PEM public key; `origin` names where it came from, for errors.
    pub fn from_pem(pem: &str, origin: &str) -> Result<Self> {
        let key =
            VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| Error::BadPublicKey {
                origin: origin.to_string(),
                why: describe_pem(pem, false).unwrap_or_else(|| e.to_string()),
            })?;
        Ok(Self::new(key))
    }

    /// Parses a DER SubjectPublicKeyInfo (as found in an X.509 certificate).
    pub fn from_spki_der(der: &[u8], origin: &str) -> Result<Self> {
        let key = VerifyingKey::from_public_key_der(der).map_err(|e| Error::BadPublicKey {
            origin: origin.to_string(),
            why: describe_der(der, false).unwrap_or_else(|| e.to_string()),
        })?;
        Ok(Self::new(key))
    }

    /// Reads a public key file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io("cannot read public key", path))?;
        Self::from_pem(&text, &path.display().to_string())
    }

    /// Hex sha256 of the SPKI DER: the DSSE `keyid` and the bundle's `publicKey.hint`.
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 point encodes as PEM")
    }

    /// Checks a DER-encoded ECDSA signature over `msg` (hashed with SHA-256).
    pub fn verify(&self, msg: &[u8], der_sig: &[u8]) -> bool {
        match Signature::from_der(der_sig) {
            Ok(sig) => self.key.verify(msg, &sig).is_ok(),
            Err(_) => false,
        }
    }
}

impl SigningKey {
    /// A fresh random key (the only use of randomness in kiln).
    pub fn generate() -> Self {
        Self::from_inner(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
    }

    fn from_inner(inner: p256::ecdsa::SigningKey) -> Self {
        let public = PublicKey::new(*inner.verifying_key());
        SigningKey { inner, public }
    }

    /// Parses PKCS#8 PEM text; `origin` names where it came from (never the text itself).
    pub fn from_pem(pem: &str, origin: &str) -> Result<Self> {
        let inner = p256::ecdsa::SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| {
            Error::BadPrivateKey {
                origin: origin.to_string(),
                why: describe_pem(pem, true).unwrap_or_else(|| e.to_string()),
            }
        })?;
        Ok(Self::from_inner(inner))
    }

    /// Reads a private key file, refusing one that group or others can read: a signing
    /// key other users can copy proves nothing about who signed.
    pub fn load(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(io("cannot read signing key", path))?;
        if !meta.is_file() {
            return Err(Error::KeyNotAFile {
                path: path.to_path_buf(),
                kind: if meta.is_dir() {
                    "a directory"
                } else {
                    "not a regular file"
                },
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(Error::InsecureKey {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        let _ = meta;
        let text = std::fs::read_to_string(path).map_err(io("cannot read signing key", path))?;
        Self::from_pem(&text, &path.display().to_string())
    }

    /// The key named by `path`, else by `$KILN_SIGNING_KEY` (PEM text or a file path),
    /// else none.
    ///
    /// The variable's value is only ever named in an error when it is the path of an
    /// existing file: anything else may be key material (base64 without PEM armour, say),
    /// and key material never reaches a message.
    pub fn resolve(path: Option<&Path>, env: Option<&str>) -> Result<Option<Self>> {
        if let Some(p) = path {
            return Self::load(p).map(Some);
        }
        match env {
            Some(v) if v.contains("-----BEGIN") => {
                Self::from_pem(v, &format!("${KEY_ENV}")).map(Some)
            }
            Some(v) if !v.trim().is_empty() => {
                let p = Path::new(v.trim());
                // A multi-line value is never a path; anything that is not an existing
                // filesystem entry is refused without echoing it.
                if v.trim().contains('\n') || std::fs::symlink_metadata(p).is_err() {
                    return Err(Error::KeyEnvUnusable {
                        var: KEY_ENV,
                        len: v.trim().chars().count(),
                    });
                }
                Self::load(p).map(Some)
            }
            _ => Ok(None),
        }
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// DER-encoded ECDSA P-256/SHA-256 signature with an RFC 6979 nonce: the same key and
    /// message always give the same bytes.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let sig: Signature = self.inner.sign(msg);
        sig.to_der().as_bytes().to_vec()
    }

    fn to_pem(&self) -> String {
        self.inner
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a P-256 scalar encodes as PKCS#8")
            .to_string()
    }
}

/// What a key that is not ECDSA P-256 actually is, read from its PEM label and its
/// AlgorithmIdentifier (never from, nor quoting, the key bytes), or `None` when the text is
/// not a PEM key at all (the parser's own error says more then).
fn describe_pem(pem: &str, private: bool) -> Option<String> {
    let (label, mut der) = p256::pkcs8::der::pem::decode_vec(pem.trim().as_bytes()).ok()?;
    let found = match label {
        "RSA PRIVATE KEY" | "RSA PUBLIC KEY" => Some(format!(
            "found an RSA key (PKCS#1 `{label}`); kiln signs with ECDSA P-256 only"
        )),
        "EC PRIVATE KEY" => Some(match sec1_curve(&der) {
            Some(c) if c == "P-256" => "found a SEC1 `EC PRIVATE KEY` on P-256; kiln reads PKCS#8: convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`".to_string(),
            Some(c) => format!("found an EC key on curve {c} (SEC1 `EC PRIVATE KEY`); kiln signs with ECDSA P-256 only"),
            None => "found a SEC1 `EC PRIVATE KEY` kiln cannot read".to_string(),
        }),
        "ENCRYPTED PRIVATE KEY" => Some(
            "found an encrypted PKCS#8 key; kiln reads unencrypted keys (mode 0600) only".to_string(),
        ),
        "CERTIFICATE" => Some("found a certificate, not a key".to_string()),
        _ => describe_der(&der, private),
    };
    der.fill(0);
    found
}

/// The algorithm (and curve) of a PKCS#8 private key or SPKI public key in DER, when it is
/// not the ECDSA P-256 key kiln expects.
fn describe_der(der: &[u8], private: bool) -> Option<String> {
    use p256::pkcs8::{PrivateKeyInfo, SubjectPublicKeyInfoRef};
    let algorithm = if private {
        PrivateKeyInfo::try_from(der).ok()?.algorithm
    } else {
        SubjectPublicKeyInfoRef::try_from(der).ok()?.algorithm
    };
    let oid = algorithm.oid.to_string();
    let what = match oid.as_str() {
        "1.2.840.10045.2.1" => {
            let curve = algorithm.parameters_oid().ok().map(|c| c.to_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => return None,
                Some(c) => format!("an EC key on curve {}", curve_name(c)),
                None => "an EC key without a named curve".to_string(),
            }
        }
        "1.2.840.113549.1.1.1" => "an RSA key".to_string(),
        "1.2.840.113549.1.1.10" => "an RSA-PSS key".to_string(),
        "1.3.101.112" => "an Ed25519 key".to_string(),
        "1.3.101.113" => "an Ed448 key".to_string(),
        "1.3.101.110" => "an X25519 key".to_string(),
        "1.3.101.111" => "an X448 key".to_string(),
        "1.2.840.10040.4.1" => "a DSA key".to_string(),
        _ => format!("a key of algorithm OID {oid}"),
    };
    Some(format!("found {what}; kiln signs with ECDSA P-256 only"))
}

/// The named curve of a SEC1 `ECPrivateKey` (its `[0] parameters`), if present.
fn sec1_curve(der: &[u8]) -> Option<String> {
    use p256::pkcs8::der::Decode as _;
    // ECPrivateKey ::= SEQUENCE { version INTEGER, privateKey OCTET STRING,
    //                             parameters [0] ECParameters OPTIONAL, ... }
    // Walk the TLV headers, skipping the secret without looking at it.
    fn header(b: &[u8]) -> Option<(u8, usize, usize)> {
        let tag = *b.first()?;
        let first = *b.get(1)? as usize;
        if first < 0x80 {
            return Some((tag, 2, first));
        }
        let n = first & 0x7f;
        if n == 0 || n > 2 {
            return None;
        }
        let len = b
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |a, &x| a << 8 | x as usize);
        Some((tag, 2 + n, len))
    }
    let (tag, h, _) = header(der)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = der.get(h..)?;
    for expected in [0x02u8, 0x04] {
        let (tag, h, len) = header(rest)?;
        if tag != expected {
            return None;
        }
        rest = rest.get(h + len..)?;
    }
    let (tag, h, len) = header(rest)?;
    if tag != 0xa0 {
        return None;
    }
    let oid = p256::pkcs8::ObjectIdentifier::from_der(rest.get(h..h + len)?).ok()?;
    Some(curve_name(&oid.to_string()).to_string())
}

fn curve_name(oid: &str) -> &str {
    match oid {
        "1.2.840.10045.3.1.7" => "P-256",
        "1.3.132.0.34" => "P-384",
        "1.3.132.0.35" => "P-521",
        "1.3.132.0.10" => "secp256k1",
        "1.2.840.10045.3.1.1" => "P-192",
        "1.3.132.0.33" => "P-224",
        "1.3.36.3.3.2.8.1.1.7" => "brainpoolP256r1",
        other => other,
    }
}

/// What `keygen` wrote.
#[derive(Debug)]
pub struct KeyPair {
    pub private: PathBuf,
    pub public: PathBuf,
    pub keyid: String,
}

/// Writes a new key pair: `<prefix>.key` (PKCS#8 PEM, mode 0600) and `<prefix>.pub`
/// (SPKI PEM, 0644). Refuses to overwrite either; each file appears via a rename, and the
/// private key's temporary file is 0600 from its creation.
pub fn keygen(prefix: &Path) -> Result<KeyPair> {
    let private = prefix.with_extension("key");
    let public = prefix.with_extension("pub");
    for p in [&private, &public] {
        if p.exists() {
            return Err(Error::KeyExists { path: p.clone() });
        }
    }
    let key = SigningKey::generate();
    let dir = match private.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
    // tempfile creates its files with mode 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(".kiln-key-")
        .tempfile_in(&dir)
        .map_err(io("cannot create a file in", &dir))?;
    tmp.write_all(key.to_pem().as_bytes())
        .map_err(io("cannot write", &private))?;
    tmp.as_file()
        .sync_all()
        .map_err(io("cannot write", &private))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600))
            .map_err(io("cannot set mode of", &private))?;
    }
    tmp.persist_noclobber(&private).map_err(|e| Error::Io {
        what: "cannot write",
        path: private.clone(),
        source: e.error,
    })?;
    kiln_core::fsx::write_atomic(&public, key.public().to_pem().as_bytes())
        .map_err(io("cannot write", &public))?;
    Ok(KeyPair {
        private,
        public,
        keyid: key.public().keyid().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_modes_roundtrip_and_deterministic_signatures() {
        let d = tempfile::tempdir().unwrap();
        let kp = keygen(&d.path().join("kiln")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&kp.private).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let key = SigningKey::load(&kp.private).unwrap();
        let public = PublicKey::load(&kp.public).unwrap();
        assert_eq!(public.keyid(), kp.keyid);
        assert_eq!(key.public(), &public);
        let a = key.sign(b"statement");
        assert_eq!(
            a,
            key.sign(b"statement"),
            "RFC 6979: same key, same message, same bytes"
        );
        assert_eq!(a[0], 0x30, "DER SEQUENCE");
        assert!(public.verify(b"statement", &a));
        assert!(!public.verify(b"statemenT", &a));
        assert!(!format!("{key:?}").contains("PRIVATE"));
        assert!(matches!(
            keygen(&d.path().join("kiln")),
            Err(Error::KeyExists { .. })
        ));
    }

    #[test]
    fn refuses_group_readable_key_naming_the_fix() {
        let d = tempfile::tempdir().unwrap();
        let kp = keygen(&d.path().join("k")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kp.private, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SigningKey::load(&kp.private).unwrap_err().to_string();
        assert!(
            e.contains("chmod 600") && e.contains(&kp.private.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn env_key_as_pem_or_path_and_garbage_is_an_error_without_echo() {
        let d = tempfile::tempdir().unwrap();
        let kp = keygen(&d.path().join("k")).unwrap();
        let pem = std::fs::read_to_string(&kp.private).unwrap();
        let a = SigningKey::resolve(None, Some(&pem)).unwrap().unwrap();
        let b = SigningKey::resolve(None, Some(kp.private.to_str().unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(a.public(), b.public());
        assert!(SigningKey::resolve(None, None).unwrap().is_none());
        let bad = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n";
        let e = SigningKey::resolve(None, Some(bad))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("KILN_SIGNING_KEY") && !e.contains("c2VjcmV0"),
            "{e}"
        );
    }

    fn foreign(name: &str) -> String {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/keys/foreign")
            .join(name);
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn foreign_keys_are_named_by_their_algorithm_and_curve() {
        for (file, found) in [
            ("rsa.key", "found an RSA key"),
            ("p384.key", "found an EC key on curve P-384"),
            ("secp256k1.key", "found an EC key on curve secp256k1"),
            ("ed25519.key", "found an Ed25519 key"),
            ("p384.sec1.key", "found an EC key on curve P-384 (SEC1"),
        ] {
            let e = SigningKey::from_pem(&foreign(file), file)
                .unwrap_err()
                .to_string();
            assert!(e.contains(found) && e.contains("P-256 only"), "{file}: {e}");
            assert!(
                !e.contains("1.2.840.10045"),
                "{file}: P-256 OIDs quoted: {e}"
            );
        }
        for (file, found) in [
            ("rsa.pub", "found an RSA key"),
            ("p384.pub", "found an EC key on curve P-384"),
            ("secp256k1.pub", "found an EC key on curve secp256k1"),
            ("ed25519.pub", "found an Ed25519 key"),
        ] {
            let e = PublicKey::from_pem(&foreign(file), file)
                .unwrap_err()
                .to_string();
            assert!(e.contains(found), "{file}: {e}");
            assert!(
                !e.contains("1.2.840.10045"),
                "{file}: P-256 OIDs quoted: {e}"
            );
        }
        // A P-256 key in SEC1 form: the fix is a conversion, not another key.
        let e = SigningKey::from_pem(&foreign("p256.sec1.key"), "sec1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("openssl pkcs8 -topk8"), "{e}");
    }

    #[test]
    fn a_key_path_that_is_a_directory_says_so() {
        let d = tempfile::tempdir().unwrap();
        let e = SigningKey::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        assert!(!e.contains("readable by group"), "{e}");
    }

    /// `$KILN_SIGNING_KEY` holding the key's base64 without PEM armour: refused, and no
    /// piece of the value appears in the message.
    #[test]
    fn env_key_without_armour_is_never_echoed() {
        let d = tempfile::tempdir().unwrap();
        let kp = keygen(&d.path().join("k")).unwrap();
        let pem = std::fs::read_to_string(&kp.private).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let multi: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(|l| format!("{l}\n"))
            .collect();
        for value in [body.as_str(), multi.as_str()] {
            let e = SigningKey::resolve(None, Some(value))
                .unwrap_err()
                .to_string();
            assert!(e.contains("KILN_SIGNING_KEY"), "{e}");
            let v = value.replace('\n', "");
            for w in v.as_bytes().windows(8) {
                let w = std::str::from_utf8(w).unwrap();
                assert!(!e.contains(w), "key material {w:?} echoed in: {e}");
            }
        }
        // A path that exists is still named.
        let e = SigningKey::resolve(None, Some(d.path().to_str().unwrap()))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&d.path().display().to_string()), "{e}");
    }
}
