//! RFC 6962 Merkle inclusion proofs: the entry's leaf hash leads to the proof's root, and
//! that root is the one the Rekor key signed in its checkpoint.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest as _, Sha256};

use crate::keys::PublicKey;

use super::rekor::InclusionProof;

// The `Err(String)`s of this module are the "why" of a FAIL line in `verify`'s report
// (or of an `Error::KeylessService`, which names the service and the fix): report text,
// not errors with sources of their own, so `String` is the model.
/// RFC 6962 inclusion of the body's leaf hash under the proof's root, and that root
/// signed in the checkpoint by the Rekor key.
pub(super) fn check_inclusion_proof(
    p: &InclusionProof,
    body: &[u8],
    key: &PublicKey,
    log_id: &[u8],
) -> std::result::Result<(), String> {
    let index: u64 = p
        .log_index
        .parse()
        .map_err(|_| "inclusionProof.logIndex is not an integer".to_string())?;
    let size: u64 = p
        .tree_size
        .parse()
        .map_err(|_| "inclusionProof.treeSize is not an integer".to_string())?;
    let root = B64
        .decode(&p.root_hash)
        .map_err(|e| format!("inclusionProof.rootHash: {e}"))?;
    let hashes = p
        .hashes
        .iter()
        .map(|h| {
            B64.decode(h)
                .map_err(|e| format!("inclusionProof.hashes: {e}"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let leaf = {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(body);
        h.finalize().to_vec()
    };
    let computed = merkle_root_from_proof(index, size, leaf, &hashes)?;
    if computed != root {
        return Err(
            "the inclusion proof does not lead to its root hash: the entry was modified".into(),
        );
    }
    // The checkpoint (a signed note): origin, size, base64 root, ...; blank line;
    // "— <name> base64(keyhint[4] || signature)" lines.
    let cp = &p.checkpoint.envelope;
    let split = cp
        .find("\n\n")
        .ok_or("the checkpoint has no blank line between note and signatures")?;
    let note = &cp[..split + 1];
    let mut lines = note.lines();
    let (_origin, cp_size, cp_root) = (lines.next(), lines.next(), lines.next());
    if cp_size.and_then(|s| s.parse::<u64>().ok()) != Some(size) {
        return Err("the checkpoint's tree size differs from the inclusion proof's".into());
    }
    if cp_root.and_then(|r| B64.decode(r).ok()).as_deref() != Some(root.as_slice()) {
        return Err("the checkpoint's root hash differs from the inclusion proof's".into());
    }
    let signed = cp[split + 2..].lines().any(|line| {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            return false;
        };
        let Some((_name, sig)) = rest.split_once(' ') else {
            return false;
        };
        match B64.decode(sig.trim()) {
            Ok(b) if b.len() > 4 && b[..4] == log_id[..4.min(log_id.len())] => {
                key.verify(note.as_bytes(), &b[4..])
            }
            _ => false,
        }
    });
    if !signed {
        return Err("the checkpoint is not signed by the trusted Rekor key".into());
    }
    Ok(())
}

/// The root of a tree of `size` leaves computed from the leaf hash at `index` and its
/// audit path (RFC 6962 / RFC 9162 §2.1.3.2).
fn merkle_root_from_proof(
    index: u64,
    size: u64,
    leaf: Vec<u8>,
    hashes: &[Vec<u8>],
) -> std::result::Result<Vec<u8>, String> {
    if index >= size {
        return Err(format!(
            "inclusion proof index {index} is outside a tree of {size}"
        ));
    }
    let node = |l: &[u8], r: &[u8]| {
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        h.finalize().to_vec()
    };
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = leaf;
    for p in hashes {
        if sn == 0 {
            return Err("the inclusion proof has too many hashes".into());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err("the inclusion proof has too few hashes".into());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf_hash(b: &[u8]) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(b);
        h.finalize().to_vec()
    }
    fn node(l: &[u8], r: &[u8]) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        h.finalize().to_vec()
    }

    #[test]
    fn merkle_inclusion_in_small_trees() {
        // Tree of 5: root = H(H(H(a,b),H(c,d)), e).
        let l: Vec<_> = (0..5u8).map(|i| leaf_hash(&[i])).collect();
        let ab = node(&l[0], &l[1]);
        let cd = node(&l[2], &l[3]);
        let abcd = node(&ab, &cd);
        let root = node(&abcd, &l[4]);
        assert_eq!(
            merkle_root_from_proof(
                2,
                5,
                l[2].clone(),
                &[l[3].clone(), ab.clone(), l[4].clone()]
            )
            .unwrap(),
            root
        );
        assert_eq!(
            merkle_root_from_proof(4, 5, l[4].clone(), std::slice::from_ref(&abcd)).unwrap(),
            root
        );
        assert_eq!(
            merkle_root_from_proof(0, 1, l[0].clone(), &[]).unwrap(),
            l[0]
        );
        // Wrong sibling, wrong count, index outside.
        assert_ne!(
            merkle_root_from_proof(
                2,
                5,
                l[2].clone(),
                &[l[1].clone(), ab.clone(), l[4].clone()]
            )
            .unwrap(),
            root
        );
        assert!(merkle_root_from_proof(4, 5, l[4].clone(), &[]).is_err());
        assert!(merkle_root_from_proof(4, 5, l[4].clone(), &[abcd.clone(), abcd.clone()]).is_err());
        assert!(merkle_root_from_proof(5, 5, l[0].clone(), &[]).is_err());
    }
}
