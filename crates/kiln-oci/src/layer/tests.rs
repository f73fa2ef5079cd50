use std::io::Read;

use super::*;

const SDE: u64 = 1_700_000_000;

fn tar_bytes(l: &Layer) -> Vec<u8> {
    let mut v = Vec::new();
    l.write_tar(SDE, &mut v).unwrap();
    v
}

/// (path, type byte, mode, mtime, uid, gid, uname, gname, link, content) of each entry.
type Row = (
    String,
    u8,
    u32,
    u64,
    u64,
    u64,
    Vec<u8>,
    Vec<u8>,
    Option<String>,
    Vec<u8>,
);

fn entries(bytes: &[u8]) -> Vec<Row> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let link = e
                .link_name_bytes()
                .map(|b| String::from_utf8(b.into_owned()).unwrap());
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            (
                path,
                h.entry_type().as_byte(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.username_bytes().unwrap_or_default().to_vec(),
                h.groupname_bytes().unwrap_or_default().to_vec(),
                link,
                content,
            )
        })
        .collect()
}

fn paths(bytes: &[u8]) -> Vec<String> {
    entries(bytes).into_iter().map(|r| r.0).collect()
}

#[test]
fn sorted_with_implied_parents_and_normalized_headers() {
    let mut l = Layer::new();
    l.add_bytes("usr/bin/z", b"z".to_vec(), 0o755).unwrap();
    l.add_bytes("etc/conf", b"c".to_vec(), 0o666).unwrap();
    l.add_bytes("usr/bin-x", b"x".to_vec(), 0o644).unwrap();
    l.add_dir("opt", 0o700).unwrap();
    let b = tar_bytes(&l);
    // Sorted by path bytes without the directory slash: `usr/bin` < `usr/bin-x` < `usr/bin/z`.
    assert_eq!(
        paths(&b),
        [
            "etc/",
            "etc/conf",
            "opt/",
            "usr/",
            "usr/bin/",
            "usr/bin-x",
            "usr/bin/z"
        ]
    );
    for (path, ty, mode, mtime, uid, gid, uname, gname, _, _) in entries(&b) {
        assert_eq!(mtime, SDE, "{path}");
        assert_eq!((uid, gid), (0, 0), "{path}");
        assert!(uname.is_empty() && gname.is_empty(), "{path}");
        let want = match path.as_str() {
            "opt/" => 0o700,
            "etc/conf" => 0o644, // group/other write dropped from 0666
            "usr/bin-x" => 0o644,
            _ => 0o755,
        };
        assert_eq!(mode, want, "{path}");
        assert_eq!(ty, if path.ends_with('/') { b'5' } else { b'0' });
    }
    // Ends with exactly two zero blocks after the last entry, and is block aligned.
    assert_eq!(b.len() % 512, 0);
    assert!(b[b.len() - 1024..].iter().all(|&x| x == 0));
    // GNU magic, no atime/ctime.
    let h = tar::Header::from_byte_slice(&b[..512]);
    assert!(h.as_gnu().is_some());
    assert_eq!(h.as_gnu().unwrap().atime, [0; 12]);
}

#[test]
fn insertion_order_does_not_matter() {
    let items: Vec<(&str, &[u8])> = vec![
        ("b/2", b"two"),
        ("a", b"one"),
        ("b/1", b"x"),
        ("c/d/e", b"deep"),
    ];
    let mut l1 = Layer::new();
    for (p, c) in &items {
        l1.add_bytes(p, c.to_vec(), 0o644).unwrap();
    }
    l1.add_symlink("link", "a").unwrap();
    let mut l2 = Layer::new();
    l2.add_symlink("link", "a").unwrap();
    for (p, c) in items.iter().rev() {
        l2.add_bytes(p, c.to_vec(), 0o644).unwrap();
    }
    assert_eq!(tar_bytes(&l1), tar_bytes(&l2));
    let (d1, d2) = (
        l1.write_gzip(SDE, Vec::new()).unwrap(),
        l2.write_gzip(SDE, Vec::new()).unwrap(),
    );
    assert_eq!(d1, d2);
    // And SDE is really used.
    assert_ne!(tar_bytes(&l1), {
        let mut v = Vec::new();
        l1.write_tar(SDE + 1, &mut v).unwrap();
        v
    });
}

#[test]
fn long_names_and_link_targets() {
    let n120 = format!("{}/file", "d".repeat(115));
    let n200 = format!("{}/{}/f", "x".repeat(100), "y".repeat(97));
    let n100 = "e".repeat(100);
    assert_eq!(n100.len(), 100);
    let mut l = Layer::new();
    l.add_bytes(&n120, b"a".to_vec(), 0o644).unwrap();
    l.add_bytes(&n200, b"b".to_vec(), 0o644).unwrap();
    l.add_bytes(&n100, b"c".to_vec(), 0o644).unwrap();
    let long_target = format!("/{}", "t".repeat(150));
    l.add_symlink("s", &long_target).unwrap();
    let b = tar_bytes(&l);
    let rows = entries(&b);
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert!(names.contains(&n120.as_str()), "{names:?}");
    assert!(names.contains(&n200.as_str()), "{names:?}");
    assert!(names.contains(&n100.as_str()), "{names:?}");
    let s = rows.iter().find(|r| r.0 == "s").unwrap();
    assert_eq!(s.8.as_deref(), Some(long_target.as_str()));
    // GNU longname records, never PAX.
    assert!(b.windows(13).any(|w| w == b"././@LongLink"));
    let mut a = tar::Archive::new(&b[..]);
    for e in a.entries().unwrap().raw(true) {
        let t = e.unwrap().header().entry_type();
        assert!(!t.is_pax_global_extensions() && !t.is_pax_local_extensions());
    }
    // The 100-byte name fits exactly without a LongLink record.
    let mut small = Layer::new();
    small.add_bytes(&n100, b"c".to_vec(), 0o644).unwrap();
    assert!(!tar_bytes(&small).windows(13).any(|w| w == b"././@LongLink"));
}

#[test]
fn symlinks_and_hardlinks() {
    let mut l = Layer::new();
    l.add_bytes("z/data", b"payload".to_vec(), 0o755).unwrap();
    l.add_hardlink("a/alias", "z/data").unwrap();
    l.add_hardlink("m/alias2", "a/alias").unwrap();
    l.add_symlink("bin/sh", "../z/data").unwrap();
    let rows = entries(&tar_bytes(&l));
    let get = |p: &str| rows.iter().find(|r| r.0 == p).unwrap().clone();
    // Content goes under the first name in sort order; the others link to it.
    let first = get("a/alias");
    assert_eq!(
        (first.1, first.9.as_slice(), first.2),
        (b'0', &b"payload"[..], 0o755)
    );
    for p in ["m/alias2", "z/data"] {
        let r = get(p);
        assert_eq!((r.1, r.8.as_deref()), (b'1', Some("a/alias")), "{p}");
    }
    let s = get("bin/sh");
    assert_eq!((s.1, s.2, s.8.as_deref()), (b'2', 0o777, Some("../z/data")));

    // A hard link to something that is not a file of this layer fails at write time.
    let mut bad = Layer::new();
    bad.add_hardlink("x", "missing").unwrap();
    assert!(matches!(
        bad.write_tar(SDE, Vec::new()),
        Err(Error::HardlinkTarget { .. })
    ));
    let mut cyc = Layer::new();
    cyc.add_hardlink("x", "y").unwrap();
    cyc.add_hardlink("y", "x").unwrap();
    assert!(matches!(
        cyc.write_tar(SDE, Vec::new()),
        Err(Error::HardlinkTarget { .. })
    ));
}

#[test]
fn path_validation() {
    let mut l = Layer::new();
    for bad in [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a//b",
        "a/./b",
        "a/",
        ".",
        "a\0b",
    ] {
        let e = l.add_bytes(bad, vec![], 0o644).unwrap_err();
        assert!(matches!(e, Error::InvalidPath { .. }), "{bad:?}: {e}");
    }
    assert!(matches!(
        l.add_hardlink("h", "../etc"),
        Err(Error::InvalidLinkTarget { .. })
    ));
    assert!(matches!(
        l.add_symlink("s", ""),
        Err(Error::InvalidLinkTarget { .. })
    ));
    assert!(matches!(
        l.add_bytes("m", vec![], 0o10644),
        Err(Error::InvalidMode { .. })
    ));
    l.add_bytes("f", vec![], 0o644).unwrap();
    assert!(matches!(
        l.add_bytes("f", vec![], 0o644),
        Err(Error::Duplicate { .. })
    ));
    assert!(matches!(
        l.add_bytes("f/under", vec![], 0o644),
        Err(Error::ParentNotDir { .. })
    ));
    l.add_bytes("d/child", vec![], 0o644).unwrap();
    assert!(matches!(
        l.add_symlink("d", "x"),
        Err(Error::ParentNotDir { .. })
    ));
    assert!(l.add_dir("d", 0o755).is_ok());
    let e = l
        .add_file("g", PathBuf::from("/definitely/not/here"), None)
        .unwrap_err();
    assert!(e.to_string().contains("/definitely/not/here"), "{e}");
}

#[test]
fn files_streamed_from_disk_with_exec_bit() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("run.sh");
    std::fs::write(&script, b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let data = d.path().join("data.txt");
    std::fs::write(&data, vec![b'q'; 1000]).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut l = Layer::new();
    l.add_file("app/run.sh", script.clone(), None).unwrap();
    l.add_file("app/data.txt", data, None).unwrap();
    l.add_file("app/forced", script, Some(0o4777)).unwrap();
    let rows = entries(&tar_bytes(&l));
    let get = |p: &str| rows.iter().find(|r| r.0 == p).unwrap().clone();
    assert_eq!(get("app/run.sh").2, 0o755);
    assert_eq!(get("app/data.txt").2, 0o644);
    assert_eq!(get("app/data.txt").9, vec![b'q'; 1000]);
    assert_eq!(get("app/forced").2, 0o4755);
}

#[test]
fn gzip_layer_decodes_to_tar_and_is_thread_independent() {
    // ~5 MiB of seeded pseudo-random data across a few files: several gzip chunks.
    let mut l = Layer::new();
    for i in 0..5u64 {
        l.add_bytes(
            &format!("data/blob{i}"),
            crate::gzip::tests::sample(1 << 20, i + 1),
            0o644,
        )
        .unwrap();
    }
    l.add_bytes("data/small", b"tail".to_vec(), 0o644).unwrap();
    let tar = tar_bytes(&l);
    let build = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut out = Vec::new();
            let d = l.write_gzip(SDE, &mut out).unwrap();
            (out, d)
        })
    };
    let (one, d1) = build(1);
    let (four, d4) = build(4);
    assert!(one == four, "gzip bytes differ between 1 and 4 threads");
    assert_eq!(d1, d4);
    assert_eq!(d1.digest, Digest::of(&one));
    assert_eq!(d1.size, one.len() as u64);
    assert_eq!(d1.diff_id, Digest::of(&tar));
    assert_eq!(d1.media_type, crate::MEDIA_TYPE_LAYER_GZIP);
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&one[..])
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == tar, "GzDecoder does not give back the tar");
    let mut back = Vec::new();
    flate2::read::MultiGzDecoder::new(&one[..])
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == tar, "MultiGzDecoder does not give back the tar");
}
