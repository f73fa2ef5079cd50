//! DSSE envelopes and Sigstore bundles: strict parsing, payload decoding, signature
//! verification against a key.

use kiln_attest::dsse::{Bundle, Envelope};

pub fn run(data: &[u8]) {
    let keys = [crate::fixtures::key().public().clone()];
    if let Ok(e) = Envelope::parse(data, "envelope.json") {
        let _ = e.payload_bytes("envelope.json");
        let _ = e.verify(&keys, "envelope.json");
    }
    if let Ok(b) = Bundle::parse(data, "bundle.json") {
        let _ = b.dsse_envelope.payload_bytes("bundle.json");
        let _ = b.dsse_envelope.verify(&keys, "bundle.json");
    }
}

pub fn seeds() -> Vec<Vec<u8>> {
    let key = crate::fixtures::key();
    let statement = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha256":"00"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}"#;
    let env = Envelope::sign(statement, key);
    let bundle = Bundle::keyed(env.clone(), key.public());
    vec![
        serde_json::to_vec_pretty(&env).unwrap(),
        serde_json::to_vec_pretty(&bundle).unwrap(),
    ]
}
