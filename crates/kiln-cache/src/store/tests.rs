use super::*;
use crate::key::tests::sample;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: Store,
    key: SigningKey,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let store = Store::open(&root.join("cache")).unwrap();
        Fixture {
            _dir: dir,
            root,
            store,
            key: SigningKey::generate(),
        }
    }

    fn trusted(&self) -> Vec<PublicKey> {
        vec![self.key.public().clone()]
    }

    /// Output files with these names and contents, under `<root>/<tag>/`.
    fn outputs(&self, tag: &str, files: &[(&str, &[u8])]) -> Vec<Output> {
        files
            .iter()
            .map(|(name, bytes)| {
                let path = self.root.join(tag).join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, bytes).unwrap();
                Output {
                    name: name.to_string(),
                    path,
                }
            })
            .collect()
    }

    fn hello(&self) -> Vec<Output> {
        self.outputs(
            "hello",
            &[
                ("hello", b"\x7fELF hello"),
                ("lib/libhello.so", b"\x7fELF lib"),
            ],
        )
    }

    fn get(&self, doc: &KeyDocument) -> Lookup {
        self.store.get(doc, &self.trusted()).unwrap()
    }

    fn blob(&self, d: &Digest) -> PathBuf {
        self.store.blob_path(d)
    }

    fn manifest(&self, entry: &Entry) -> Value {
        serde_json::from_slice(&std::fs::read(self.blob(&entry.manifest_digest)).unwrap()).unwrap()
    }

    fn index(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.store.index_path()).unwrap()).unwrap()
    }

    /// Writes a blob as an attacker would (no checks), returning its digest.
    fn raw_blob(&self, bytes: &[u8]) -> Digest {
        let d = Digest::of(bytes);
        std::fs::write(self.blob(&d), bytes).unwrap();
        d
    }

    /// Rewrites `entry`'s manifest with `f` and points index.json at the result, so the
    /// entry is consistent as far as digests go: only the attestation can catch it.
    fn tamper(&self, entry: &Entry, f: impl FnOnce(&mut Value)) {
        let mut m = self.manifest(entry);
        f(&mut m);
        let bytes = canonical::to_vec(&m).unwrap();
        let d = self.raw_blob(&bytes);
        let mut index = self.index();
        for e in index["manifests"].as_array_mut().unwrap() {
            if e["digest"] == entry.manifest_digest.to_string() {
                e["digest"] = d.to_string().into();
                e["size"] = bytes.len().into();
            }
        }
        std::fs::write(self.store.index_path(), canonical::to_vec(&index).unwrap()).unwrap();
    }

    fn refused(&self, doc: &KeyDocument) -> String {
        match self.get(doc) {
            Lookup::Refused(why) => {
                assert_eq!(why.len(), 1, "{why:?}");
                why[0].clone()
            }
            other => panic!("expected Refused, got {other:?}"),
        }
    }
}

fn layer_digest(m: &Value, title: &str) -> Digest {
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["annotations"][ANNOTATION_TITLE] == title)
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn other_doc() -> KeyDocument {
    let mut d = sample();
    d.profile = "dev".into();
    d
}

#[test]
fn put_then_get_is_a_hit_with_identical_bytes() {
    let fx = Fixture::new();
    let outputs = fx.hello();
    let entry = fx.store.put(&sample(), &outputs, &fx.key).unwrap();
    assert_eq!(entry.key, sample().key());
    let Lookup::Hit(hit) = fx.get(&sample()) else {
        panic!("expected a hit");
    };
    assert_eq!(hit.entry, entry);
    assert_eq!(hit.signer, fx.key.public().keyid());
    let names: Vec<&str> = hit.files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, ["hello", "lib/libhello.so"]);
    for ((name, path, d), o) in hit.files.iter().zip(&outputs) {
        assert_eq!(name, &o.name);
        assert_eq!(
            std::fs::read(path).unwrap(),
            std::fs::read(&o.path).unwrap()
        );
        assert_eq!(*d, Digest::of_file(&o.path).unwrap());
    }
    let dest = fx.root.join("restored");
    let written = hit.extract(&dest).unwrap();
    assert_eq!(written, [dest.join("hello"), dest.join("lib/libhello.so")]);
    for o in &outputs {
        assert_eq!(
            std::fs::read(dest.join(&o.name)).unwrap(),
            std::fs::read(&o.path).unwrap()
        );
    }
    // A store opened again (another process) sees the same entry.
    let again = Store::open(fx.store.dir()).unwrap();
    assert!(matches!(
        again.get(&sample(), &fx.trusted()).unwrap(),
        Lookup::Hit(_)
    ));
}

#[test]
fn the_entry_is_an_oci_artifact_manifest() {
    let fx = Fixture::new();
    let entry = fx.store.put(&sample(), &fx.hello(), &fx.key).unwrap();
    let dir = fx.store.dir();
    assert_eq!(
        std::fs::read(dir.join("oci-layout")).unwrap(),
        OCI_LAYOUT_BYTES
    );
    let index = fx.index();
    assert_eq!(index["schemaVersion"], 2);
    let listed = &index["manifests"][0];
    assert_eq!(listed["digest"], entry.manifest_digest.to_string());
    assert_eq!(listed["mediaType"], MEDIA_TYPE_MANIFEST);
    assert_eq!(listed["artifactType"], ARTIFACT_TYPE);
    assert_eq!(listed["annotations"][ANNOTATION_KEY], entry.key.to_string());

    let m = fx.manifest(&entry);
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], MEDIA_TYPE_MANIFEST);
    assert_eq!(m["artifactType"], ARTIFACT_TYPE);
    assert_eq!(m["annotations"][ANNOTATION_KEY], entry.key.to_string());
    assert_eq!(m["config"]["mediaType"], KEY_MEDIA_TYPE);
    let config: Digest = m["config"]["digest"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        std::fs::read(fx.blob(&config)).unwrap(),
        sample().to_bytes()
    );
    let layers = m["layers"].as_array().unwrap();
    let shape: Vec<(&str, &str)> = layers
        .iter()
        .map(|l| {
            (
                l["mediaType"].as_str().unwrap(),
                l["annotations"][ANNOTATION_TITLE].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (OUTPUT_MEDIA_TYPE, "hello"),
            (OUTPUT_MEDIA_TYPE, "lib/libhello.so"),
            (BUNDLE_MEDIA_TYPE, ATTESTATION_TITLE),
        ]
    );
    for l in layers {
        let d: Digest = l["digest"].as_str().unwrap().parse().unwrap();
        let bytes = std::fs::read(fx.blob(&d)).unwrap();
        assert_eq!(Digest::of(&bytes), d);
        assert_eq!(l["size"], bytes.len());
    }
    assert_eq!(
        std::fs::read(fx.blob(&layer_digest(&m, ATTESTATION_TITLE))).unwrap(),
        entry.attestation
    );

    // The statement: subjects are the outputs, the predicate binds the key and document.
    let bundle = Bundle::parse(&entry.attestation, "t").unwrap();
    let stmt: Statement =
        serde_json::from_slice(&bundle.dsse_envelope.payload_bytes("t").unwrap()).unwrap();
    assert_eq!(stmt.type_, STATEMENT_TYPE);
    assert_eq!(stmt.predicate_type, PREDICATE_TYPE);
    let subjects: Vec<(String, String)> = stmt
        .subject
        .iter()
        .map(|s| (s.name.clone().unwrap(), s.digest["sha256"].clone()))
        .collect();
    assert_eq!(
        subjects,
        [
            ("hello".into(), layer_digest(&m, "hello").hex()),
            (
                "lib/libhello.so".into(),
                layer_digest(&m, "lib/libhello.so").hex()
            ),
        ]
    );
    assert_eq!(stmt.predicate["key"], entry.key.to_string());
    assert_eq!(
        stmt.predicate["keyDocument"],
        serde_json::to_value(sample().normalized()).unwrap()
    );
}

#[test]
fn another_key_is_a_miss() {
    let fx = Fixture::new();
    assert_eq!(fx.get(&sample()), Lookup::Miss);
    fx.store.put(&sample(), &fx.hello(), &fx.key).unwrap();
    assert_eq!(fx.get(&other_doc()), Lookup::Miss);
}

#[test]
fn a_swapped_output_blob_is_refused() {
    let fx = Fixture::new();
    let entry = fx.store.put(&sample(), &fx.hello(), &fx.key).unwrap();
    let Lookup::Hit(hit) = fx.get(&sample()) else {
        panic!("expected a hit");
    };
    let d = layer_digest(&fx.manifest(&entry), "hello");
    std::fs::write(fx.blob(&d), b"\x7fELF evil").unwrap();
    let why = fx.refused(&sample());
    assert!(
        why.contains(&format!(
            "output hello: {}, attested {d}",
            Digest::of(b"\x7fELF evil")
        )),
        "{why}"
    );
    // A hit taken before the swap does not hand out the swapped bytes either.
    let e = hit
        .extract(&fx.root.join("restored"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("output hello"), "{e}");
}

#[test]
fn a_truncated_or_missing_output_blob_is_refused() {
    let fx = Fixture::new();
    let entry = fx.store.put(&sample(), &fx.hello(), &fx.key).unwrap();
    let d = layer_digest(&fx.manifest(&entry), "lib/libhello.so");
    std::fs::write(fx.blob(&d), b"\x7fELF").unwrap();
    let why = fx.refused(&sample());
    assert!(why.contains("output lib/libhello.so: sha256:"), "{why}");
    std::fs::remove_file(fx.blob(&d)).unwrap();
    let why = fx.refused(&sample());
    assert!(why.contains("output lib/libhello.so: cannot read"), "{why}");
}

#[test]
fn an_output_layer_swapped_consistently_is_refused() {
    let fx = Fixture::new();
    let entry = fx.store.put(&sample(), &fx.hello(), &fx.key).unwrap();
    let evil = fx.raw_blob(b"\x7fELF evil");
    let attested = layer_digest(&fx.manifest(&entry), "hello");
    fx.tamper(&entry, |m| {
        m["layers"][0]["digest"] = evil.to_string().into();
        m["layers"][0]["size"] = 9.into();
    });
    let why = fx.refused(&sample());
    assert!(
        why.contains(&format!(
            "output hello: manifest layer {evil}, attested {attested}"
        )),
        "{why}"
    );
}

#[test]
fn outputs_missing_or_extra_in_the_manifest_are_refused() {
    let fx = Fixture::new();
    let entry = fx.store.put(&sample(), &fx.hello(), &fx.key).unwrap();
    fx.tamper(&entry, |m| {
        m["layers"].as_array_mut().unwrap().remove(1);
    });
    let why = fx.refused(&sample());
    assert!(
        why.contains("output lib/libhello.so is attested but missing from the manifest"),
        "{why}"
    );

    let fx = Fixture::new();
    let entry = fx.store.put(&sample(), &fx.hello(), &fx.key).unwrap();
    let extra = fx.raw_blob(b"extra");
    fx.tamper(&entry, |m| {
        let mut l = m["layers"][0].clone();
        l["digest"] = extra.to_string().into();
        l["size"] = 5.into();
        l["annotations"][ANNOTATION_TITLE] = "backdoor".into();
        m["layers"].as_array_mut().unwrap().insert(0, l);
    });
    let why = fx.refused(&sample());
    assert!(
        why.contains("output backdoor is in the manifest but not attested"),
        "{why}"
    );
}

#[test]
fn an_attestation_resigned_by_an_untrusted_key_is_refused() {
    let fx = Fixture::new();
    let entry = fx.store.put(&sample(), &fx.hello(), &fx.key).unwrap();
    let mallory = SigningKey::generate();
    let bundle = Bundle::parse(&entry.attestation, "t").unwrap();
    let payload = bundle.dsse_envelope.payload_bytes("t").unwrap();
    let forged = Bundle::keyed(Envelope::sign(&payload, &mallory), mallory.public());
    let forged = canonical::to_vec(&forged).unwrap();
    let d = fx.raw_blob(&forged);
    fx.tamper(&entry, |m| {
        m["layers"][2]["digest"] = d.to_string().into();
        m["layers"][2]["size"] = forged.len().into();
    });
    let why = fx.refused(&sample());
    assert!(
        why.contains(&format!(
            "attestation signed by key {} which is not trusted (trusted: {})",
            mallory.public().keyid(),
            fx.key.public().keyid()
        )),
        "{why}"
    );
    // Trusting nobody refuses everything, even the honest signer's entries.
    let honest = Fixture::new();
    honest
        .store
        .put(&sample(), &honest.hello(), &honest.key)
        .unwrap();
    match honest.store.get(&sample(), &[]).unwrap() {
        Lookup::Refused(why) => assert!(why[0].contains("(trusted: none)"), "{why:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_signature_that_does_not_verify_is_refused() {
    let fx = Fixture::new();
    let entry = fx.store.put(&sample(), &fx.hello(), &fx.key).unwrap();
    // The payload changed under the trusted key's signature (one output's digest edited).
    let mut bundle = Bundle::parse(&entry.attestation, "t").unwrap();
    let payload = String::from_utf8(bundle.dsse_envelope.payload_bytes("t").unwrap()).unwrap();
    let evil = fx.raw_blob(b"\x7fELF evil");
    let hello = layer_digest(&fx.manifest(&entry), "hello");
    let payload = payload.replace(&hello.hex(), &evil.hex());
    use base64::Engine as _;
    bundle.dsse_envelope.payload = base64::engine::general_purpose::STANDARD.encode(payload);
    let bytes = canonical::to_vec(&bundle).unwrap();
    let d = fx.raw_blob(&bytes);
    fx.tamper(&entry, |m| {
        m["layers"][0]["digest"] = evil.to_string().into();
        m["layers"][0]["size"] = 9.into();
        m["layers"][2]["digest"] = d.to_string().into();
        m["layers"][2]["size"] = bytes.len().into();
    });
    let why = fx.refused(&sample());
    assert!(
        why.contains(&format!(
            "signature by trusted key {} does not verify",
            fx.key.public().keyid()
        )),
        "{why}"
    );
}

#[test]
fn an_attestation_grafted_from_another_entry_is_refused() {
    let fx = Fixture::new();
    let entry = fx.store.put(&sample(), &fx.hello(), &fx.key).unwrap();
    // The same outputs under another key, honestly signed by the trusted key.
    let other = fx.store.put(&other_doc(), &fx.hello(), &fx.key).unwrap();
    let graft = layer_digest(&fx.manifest(&other), ATTESTATION_TITLE);
    fx.tamper(&entry, |m| {
        m["layers"][2]["digest"] = graft.to_string().into();
        m["layers"][2]["size"] = other.attestation.len().into();
    });
    let why = fx.refused(&sample());
    assert!(
        why.contains(&format!(
            "attestation is for key {}, not {}",
            other.key, entry.key
        )),
        "{why}"
    );
    // The donor is untouched.
    assert!(matches!(fx.get(&other_doc()), Lookup::Hit(_)));
}

#[test]
fn an_altered_config_blob_is_refused() {
    let fx = Fixture::new();
    let entry = fx.store.put(&sample(), &fx.hello(), &fx.key).unwrap();
    let mut doc = sample();
    doc.target = "aarch64-unknown-linux-musl".into();
    let bytes = doc.to_bytes();
    let d = fx.raw_blob(&bytes);
    fx.tamper(&entry, |m| {
        m["config"]["digest"] = d.to_string().into();
        m["config"]["size"] = bytes.len().into();
    });
    let why = fx.refused(&sample());
    assert!(
        why.contains("config's key document differs from the requested one in: target"),
        "{why}"
    );

    // Rewritten in place: the blob no longer has its digest.
    let fx = Fixture::new();
    let entry = fx.store.put(&sample(), &fx.hello(), &fx.key).unwrap();
    let config: Digest = fx.manifest(&entry)["config"]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    std::fs::write(fx.blob(&config), &bytes).unwrap();
    let why = fx.refused(&sample());
    assert!(
        why.contains(&format!(
            "config (key document) blob is {}, expected {config}",
            Digest::of(&bytes)
        )),
        "{why}"
    );
}

#[test]
fn a_damaged_manifest_is_refused() {
    let fx = Fixture::new();
    let entry = fx.store.put(&sample(), &fx.hello(), &fx.key).unwrap();
    std::fs::write(fx.blob(&entry.manifest_digest), b"{}").unwrap();
    let why = fx.refused(&sample());
    assert!(why.contains("manifest blob is sha256:"), "{why}");
    // put repairs it (the damaged blob is rewritten, not trusted because it exists).
    fx.store.put(&sample(), &fx.hello(), &fx.key).unwrap();
    assert!(matches!(fx.get(&sample()), Lookup::Hit(_)));
}

#[test]
fn put_replaces_an_entry_with_the_same_key() {
    let fx = Fixture::new();
    fx.store.put(&sample(), &fx.hello(), &fx.key).unwrap();
    let second = fx.outputs("v2", &[("hello", b"\x7fELF v2")]);
    let entry = fx.store.put(&sample(), &second, &fx.key).unwrap();
    assert_eq!(fx.index()["manifests"].as_array().unwrap().len(), 1);
    let Lookup::Hit(hit) = fx.get(&sample()) else {
        panic!("expected a hit");
    };
    assert_eq!(hit.entry, entry);
    assert_eq!(hit.files.len(), 1);
    assert_eq!(std::fs::read(&hit.files[0].1).unwrap(), b"\x7fELF v2");
}

#[test]
fn concurrent_puts_of_different_keys_all_land() {
    let fx = Fixture::new();
    let dir = fx.store.dir().to_path_buf();
    let docs: Vec<KeyDocument> = (0..8)
        .map(|i| {
            let mut d = sample();
            d.source_date_epoch = i;
            d
        })
        .collect();
    let outputs: Vec<Vec<Output>> = (0..8)
        .map(|i| {
            let body = format!("binary {i}");
            fx.outputs(&format!("t{i}"), &[("hello", body.as_bytes())])
        })
        .collect();
    std::thread::scope(|s| {
        for (doc, outs) in docs.iter().zip(&outputs) {
            let (dir, key) = (&dir, &fx.key);
            s.spawn(move || {
                // Each thread opens its own store, as separate processes would.
                let store = Store::open(dir).unwrap();
                store.put(doc, outs, key).unwrap();
            });
        }
    });
    let index = fx.index();
    let listed = index["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 8, "{index}");
    for (i, doc) in docs.iter().enumerate() {
        let Lookup::Hit(hit) = fx.get(doc) else {
            panic!("key {i} lost");
        };
        assert_eq!(
            std::fs::read(&hit.files[0].1).unwrap(),
            format!("binary {i}").as_bytes()
        );
    }
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with(".kiln-tmp-")),
        "{names:?}"
    );
}

#[test]
fn bad_output_names_are_rejected() {
    let fx = Fixture::new();
    let file = fx.outputs("n", &[("f", b"x")]).remove(0).path;
    for bad in ["", "../x", "/abs", "a//b", "a/./b", "a/..", "a\\b", "a/"] {
        let o = Output {
            name: bad.into(),
            path: file.clone(),
        };
        let e = fx.store.put(&sample(), &[o], &fx.key).unwrap_err();
        assert!(matches!(e, CacheError::InvalidOutput { .. }), "{bad}: {e}");
    }
    let twice = [
        Output {
            name: "a".into(),
            path: file.clone(),
        },
        Output {
            name: "a".into(),
            path: file,
        },
    ];
    let e = fx
        .store
        .put(&sample(), &twice, &fx.key)
        .unwrap_err()
        .to_string();
    assert!(e.contains("output `a`: given twice"), "{e}");
    assert_eq!(fx.get(&sample()), Lookup::Miss);
}

#[test]
fn open_creates_and_refuses_a_foreign_directory() {
    use kiln_core::Hint;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("a/b/cache");
    Store::open(&dir).unwrap();
    assert!(dir.join("oci-layout").is_file() && dir.join("index.json").is_file());
    Store::open(&dir).unwrap();

    let home = d.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join(".bashrc"), b"").unwrap();
    let e = Store::open(&home).unwrap_err();
    assert!(e.to_string().contains("is not a kiln cache"), "{e}");
    assert!(e.hint().unwrap().contains("KILN_CACHE_DIR"));
    assert!(!home.join("oci-layout").exists());

    std::fs::write(dir.join("index.json"), b"not json").unwrap();
    let e = Store::open(&dir).unwrap().get(&sample(), &[]).unwrap_err();
    assert!(e.to_string().contains("index.json"), "{e}");
    assert!(e.hint().unwrap().contains("remove"), "{:?}", e.hint());
}

#[test]
fn default_dir_order() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |v: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == v)
                .map(|(_, x)| std::ffi::OsString::from(x))
        }
    };
    let all = env(&[
        ("KILN_CACHE_DIR", "/k"),
        ("XDG_CACHE_HOME", "/x"),
        ("HOME", "/h"),
    ]);
    assert_eq!(default_dir_from(&all), Some(PathBuf::from("/k")));
    let xdg = env(&[
        ("KILN_CACHE_DIR", ""),
        ("XDG_CACHE_HOME", "/x"),
        ("HOME", "/h"),
    ]);
    assert_eq!(default_dir_from(&xdg), Some(PathBuf::from("/x/kiln")));
    let home = env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")]);
    assert_eq!(
        default_dir_from(&home),
        Some(PathBuf::from("/h/.cache/kiln"))
    );
    assert_eq!(default_dir_from(&env(&[])), None);
}

/// `fetch` for [`Store::import`] that serves blobs from `map` (digest → bytes), recording
/// what it was asked for.
fn serve<'a>(
    map: &'a BTreeMap<Digest, Vec<u8>>,
    asked: &'a mut Vec<Digest>,
) -> impl FnMut(&Digest, u64, &mut std::fs::File) -> Result<(), String> + 'a {
    move |d, _size, f| {
        asked.push(*d);
        let bytes = map.get(d).ok_or_else(|| format!("no blob {d}"))?;
        io::Write::write_all(f, bytes).map_err(|e| e.to_string())
    }
}

/// The entry `put` made in `fx`, exported: manifest bytes and blob bytes by digest.
fn exported(fx: &Fixture, entry: &Entry) -> (Vec<u8>, BTreeMap<Digest, Vec<u8>>) {
    let (manifest, blobs) = fx.store.export(&entry.manifest_digest).unwrap();
    assert_eq!(Digest::of(&manifest), entry.manifest_digest);
    let map = blobs
        .iter()
        .map(|(d, size, path)| {
            let bytes = std::fs::read(path).unwrap();
            assert_eq!((Digest::of(&bytes), bytes.len() as u64), (*d, *size));
            (*d, bytes)
        })
        .collect();
    (manifest, map)
}

#[test]
fn export_then_import_elsewhere_is_a_verified_hit() {
    let a = Fixture::new();
    let entry = a.store.put(&sample(), &a.hello(), &a.key).unwrap();
    let (manifest, map) = exported(&a, &entry);
    // Config, two outputs, the attestation: each once, config first.
    assert_eq!(map.len(), 4);
    let (_, blobs) = a.store.export(&entry.manifest_digest).unwrap();
    assert_eq!(
        blobs[0].0.to_string(),
        a.manifest(&entry)["config"]["digest"].as_str().unwrap()
    );

    let b = Fixture::new();
    let trusted = a.trusted();
    let mut asked = Vec::new();
    let got = b
        .store
        .import(&sample(), &trusted, &manifest, &mut serve(&map, &mut asked))
        .unwrap()
        .unwrap();
    let Lookup::Hit(hit) = got else {
        panic!("expected a hit, got {got:?}")
    };
    assert_eq!(hit.entry, entry);
    assert_eq!(asked.len(), 4);
    // Now indexed: a plain get hits, and a second import fetches nothing.
    assert!(matches!(
        b.store.get(&sample(), &trusted).unwrap(),
        Lookup::Hit(_)
    ));
    let mut asked = Vec::new();
    let again = b
        .store
        .import(&sample(), &trusted, &manifest, &mut serve(&map, &mut asked))
        .unwrap()
        .unwrap();
    assert!(matches!(again, Lookup::Hit(_)));
    assert!(asked.is_empty(), "{asked:?}");
    assert_eq!(b.index()["manifests"].as_array().unwrap().len(), 1);
}

#[test]
fn an_imported_entry_that_does_not_verify_is_refused_and_not_indexed() {
    let a = Fixture::new();
    let entry = a.store.put(&sample(), &a.hello(), &a.key).unwrap();
    let (manifest, map) = exported(&a, &entry);

    // Untrusted signer.
    let b = Fixture::new();
    let mut asked = Vec::new();
    let got = b
        .store
        .import(
            &sample(),
            &b.trusted(),
            &manifest,
            &mut serve(&map, &mut asked),
        )
        .unwrap()
        .unwrap();
    let Lookup::Refused(why) = got else {
        panic!("expected refused, got {got:?}")
    };
    assert!(why[0].contains("not trusted"), "{why:?}");
    assert!(matches!(b.get(&sample()), Lookup::Miss));

    // An output layer swapped for other bytes, consistently in the manifest (what a
    // registry an attacker controls can serve).
    let mut m: Value = serde_json::from_slice(&manifest).unwrap();
    let poison = b"#!/bin/sh\necho pwned\n".to_vec();
    let pd = Digest::of(&poison);
    for l in m["layers"].as_array_mut().unwrap() {
        if l["annotations"][ANNOTATION_TITLE] == "hello" {
            l["digest"] = pd.to_string().into();
            l["size"] = poison.len().into();
        }
    }
    let poisoned = canonical::to_vec(&m).unwrap();
    let mut map2 = map.clone();
    map2.insert(pd, poison);
    let c = Fixture::new();
    let trusted = a.trusted();
    let mut asked = Vec::new();
    let got = c
        .store
        .import(
            &sample(),
            &trusted,
            &poisoned,
            &mut serve(&map2, &mut asked),
        )
        .unwrap()
        .unwrap();
    let Lookup::Refused(why) = got else {
        panic!("expected refused, got {got:?}")
    };
    assert!(why[0].contains("output hello"), "{why:?}");
    assert!(matches!(
        c.store.get(&sample(), &trusted).unwrap(),
        Lookup::Miss
    ));

    // Bytes that are not what the manifest names: refused before anything is indexed.
    let mut lying = map.clone();
    let hello = layer_digest(&m_of(&manifest), "hello");
    lying.insert(hello, b"other bytes".to_vec());
    let mut asked = Vec::new();
    let got = c
        .store
        .import(
            &sample(),
            &trusted,
            &manifest,
            &mut serve(&lying, &mut asked),
        )
        .unwrap()
        .unwrap();
    let Lookup::Refused(why) = got else {
        panic!("expected refused, got {got:?}")
    };
    assert!(why[0].contains(&format!("blob {hello} arrived")), "{why:?}");
    assert!(!c.blob(&hello).exists());

    // Another key's manifest: refused without fetching anything.
    let mut asked = Vec::new();
    let got = c
        .store
        .import(
            &other_doc(),
            &trusted,
            &manifest,
            &mut serve(&map, &mut asked),
        )
        .unwrap()
        .unwrap();
    assert!(matches!(got, Lookup::Refused(_)), "{got:?}");
    assert!(asked.is_empty());

    // A fetch that fails is the caller's error, nothing indexed, no temporary left.
    let empty = BTreeMap::new();
    let mut asked = Vec::new();
    let got = c
        .store
        .import(
            &sample(),
            &trusted,
            &manifest,
            &mut serve(&empty, &mut asked),
        )
        .unwrap();
    assert!(got.unwrap_err().starts_with("no blob"));
    assert!(matches!(
        c.store.get(&sample(), &trusted).unwrap(),
        Lookup::Miss
    ));
    let leftovers: Vec<_> = std::fs::read_dir(c.store.dir().join(BLOBS).join("sha256"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".kiln-tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn m_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}
