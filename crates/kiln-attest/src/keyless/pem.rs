//! PEM: the DER certificates in a PEM text (Fulcio's answers, Rekor entries, policy roots).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// The DER certificates in a PEM text.
pub fn pem_certificates(text: &str) -> std::result::Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines().map(str::trim) {
        match (line, cur.as_mut()) {
            ("-----BEGIN CERTIFICATE-----", None) => cur = Some(String::new()),
            ("-----END CERTIFICATE-----", Some(b)) => {
                out.push(
                    B64.decode(b.as_bytes())
                        .map_err(|e| format!("bad base64 in certificate: {e}"))?,
                );
                cur = None;
            }
            (l, Some(b)) => b.push_str(l),
            _ => {}
        }
    }
    if out.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(out)
}
