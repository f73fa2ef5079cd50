//! Key material: PKCS#8/SEC1/SPKI PEM (and what kiln says about foreign algorithms), and
//! `$KILN_SIGNING_KEY`'s PEM-or-path rule.

use kiln_attest::keys::{PublicKey, SigningKey};

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = SigningKey::from_pem(&text, "fuzz");
    let _ = PublicKey::from_pem(&text, "fuzz");
    let _ = PublicKey::from_spki_der(data, "fuzz");
    if text.contains("-----BEGIN") || !text.contains('/') {
        let _ = SigningKey::resolve(None, Some(&text));
    }
}

pub fn seeds() -> Vec<Vec<u8>> {
    let key = crate::fixtures::key();
    vec![
        key.public().to_pem().into_bytes(),
        key.public().spki_der().to_vec(),
    ]
}
