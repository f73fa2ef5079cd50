//! What is in an image's filesystem: every regular file with its digests, and the OS
//! packages its package databases record.
//!
//! Layers are streamed (gzip → tar → hashers), never held in memory; only package
//! databases and `os-release` are buffered, to parse them. The result is the filesystem
//! *as a container sees it*: a later layer's file replaces an earlier one, and OCI
//! whiteouts (`.wh.NAME`, `.wh..wh..opq`) delete.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use kiln_core::Digest;
use kiln_core::layerpath::{Accepted, EntryKind, LayerSet};
use serde::Deserialize;

use crate::error::{Result, SbomError, io};

/// `var/lib/dpkg/status`: Debian and Ubuntu.
pub const DPKG_STATUS: &str = "var/lib/dpkg/status";
/// `lib/apk/db/installed`: Alpine.
pub const APK_INSTALLED: &str = "lib/apk/db/installed";

/// A regular file of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    /// Path inside the image, without a leading `/`.
    pub path: String,
    pub sha256: Digest,
    /// Lowercase hex SHA-1 (SPDX 2.3 requires one per file).
    pub sha1: String,
    pub size: u64,
    pub mode: u32,
    /// The compressed layer blob the file comes from.
    pub layer: Digest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PackageKind {
    Deb,
    Apk,
}

/// A package recorded as installed by the image's package database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OsPackage {
    pub kind: PackageKind,
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
    /// apk's `L:` field (dpkg's status has none).
    pub license: Option<String>,
    pub description: Option<String>,
    /// The layer whose database lists it.
    pub layer: Digest,
}

/// `etc/os-release` fields that name the distribution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distro {
    pub id: String,
    pub version_id: Option<String>,
    pub version_codename: Option<String>,
}

impl Distro {
    /// The purl `distro` qualifier: `ID-VERSION_ID` (e.g. `debian-12`), else
    /// `ID-VERSION_CODENAME`, else `ID`.
    pub fn qualifier(&self) -> String {
        match (&self.version_id, &self.version_codename) {
            (Some(v), _) => format!("{}-{v}", self.id),
            (None, Some(c)) => format!("{}-{c}", self.id),
            _ => self.id.clone(),
        }
    }
}

/// The scanned filesystem of an image.
#[derive(Debug, Clone, Default)]
pub struct LayerScan {
    /// Regular files, sorted by path.
    pub files: Vec<ImageFile>,
    /// OS packages, sorted.
    pub packages: Vec<OsPackage>,
    pub distro: Option<Distro>,
}

#[derive(Deserialize)]
struct Manifest {
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
}

/// Scans every layer of the image whose manifest is `manifest` in the OCI layout `layout`.
pub fn scan_layout(layout: &Path, manifest: &Digest) -> Result<LayerScan> {
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let mpath = blob(&manifest.to_string());
    let bytes = std::fs::read(&mpath).map_err(io("cannot read the image manifest", &mpath))?;
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| SbomError::Layout {
        path: mpath.clone(),
        message: format!("not an OCI image manifest: {e}"),
    })?;
    let mut state = State::default();
    for l in &m.layers {
        let digest: Digest = l.digest.parse().map_err(|e| SbomError::Layout {
            path: mpath.clone(),
            message: format!("layer digest: {e}"),
        })?;
        let path = blob(&l.digest);
        let file = std::fs::File::open(&path).map_err(io("cannot read layer", &path))?;
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        if l.media_type.ends_with("+gzip") || l.media_type.ends_with(".tar.gzip") {
            scan_tar(
                flate2::read::MultiGzDecoder::new(reader),
                digest,
                &mut state,
            )?;
        } else if l.media_type.ends_with(".tar") || l.media_type.ends_with("layer.v1.tar") {
            scan_tar(reader, digest, &mut state)?;
        } else {
            return Err(SbomError::Layer {
                layer: digest.to_string(),
                message: format!(
                    "media type `{}` is not supported (gzip or uncompressed tar only)",
                    l.media_type
                ),
            });
        }
    }
    Ok(state.finish())
}

#[derive(Default)]
struct State {
    files: BTreeMap<String, ImageFile>,
    /// Package databases by path, as of the latest layer that wrote them.
    dbs: BTreeMap<String, Vec<OsPackage>>,
    /// `os-release` candidates by path: content, or a symlink target.
    os_release: BTreeMap<String, OsRelease>,
    /// What the layers so far may do (see `kiln_core::layerpath`).
    guard: LayerSet,
}

enum OsRelease {
    Content(Distro),
    Link(String),
}

impl State {
    fn remove(&mut self, path: &str, opaque_dir: bool) {
        let prefix = format!("{path}/");
        let keep = |k: &String| !(k.starts_with(&prefix) || (!opaque_dir && k == path));
        self.files.retain(|k, _| keep(k));
        self.dbs.retain(|k, _| keep(k));
        self.os_release.retain(|k, _| keep(k));
    }

    fn finish(self) -> LayerScan {
        let mut packages: Vec<OsPackage> = self.dbs.into_values().flatten().collect();
        packages.sort();
        packages.dedup();
        let resolve = |p: &str| match self.os_release.get(p) {
            Some(OsRelease::Content(d)) => Some(d.clone()),
            Some(OsRelease::Link(t)) => match self.os_release.get(t.as_str()) {
                Some(OsRelease::Content(d)) => Some(d.clone()),
                _ => None,
            },
            None => None,
        };
        let distro = resolve("etc/os-release").or_else(|| resolve("usr/lib/os-release"));
        LayerScan {
            files: self.files.into_values().collect(),
            packages,
            distro,
        }
    }
}

/// Resolves a symlink target relative to the link's directory (for `os-release` only).
fn join_link(link: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        link.split('/').collect()
    };
    if !target.starts_with('/') {
        parts.pop();
    }
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

fn scan_tar<R: Read>(reader: R, layer: Digest, state: &mut State) -> Result<()> {
    let lerr = |message: String| SbomError::Layer {
        layer: layer.to_string(),
        message,
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| lerr(format!("not a tar stream: {e}")))?;
    // Hard links point at files of this same layer; resolved after the walk.
    let mut links = Vec::new();
    let mut this_layer: BTreeMap<String, ImageFile> = BTreeMap::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| lerr(format!("cannot read tar entry: {e}")))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let ty = entry.header().entry_type();
        let link = entry
            .link_name_bytes()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        // `..`, writes through symlinks leaving the root, hard links to nothing and device
        // nodes are refused; `./` and leading `/` are normalized away.
        let (path, link) = match state
            .guard
            .entry(
                &raw,
                EntryKind::from_tar_type(ty.as_byte()),
                link.as_deref(),
            )
            .map_err(|r| lerr(r.to_string()))?
        {
            Accepted::Root => continue,
            Accepted::Whiteout { path, opaque } => {
                state.remove(&path, opaque);
                continue;
            }
            Accepted::Entry { path, link } => (path, link),
        };

        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
        if ty.is_symlink() {
            state.files.remove(&path);
            if (path == "etc/os-release" || path == "usr/lib/os-release")
                && let Ok(Some(t)) = entry.link_name()
            {
                let t = join_link(&path, &t.to_string_lossy());
                state.os_release.insert(path, OsRelease::Link(t));
            }
            continue;
        }
        if ty.is_hard_link() {
            if let Some(t) = link {
                links.push((path, t, mode));
            }
            continue;
        }
        if ty.is_dir() {
            // A directory replacing a file hides it.
            state.files.remove(&path);
            continue;
        }
        if !(ty.is_file() || ty == tar::EntryType::Continuous) {
            continue;
        }
        let interesting = path == DPKG_STATUS
            || path == APK_INSTALLED
            || path == "etc/os-release"
            || path == "usr/lib/os-release";
        let mut sha1 = sha1_smol::Sha1::new();
        let mut hw = kiln_core::HashingWriter::new(std::io::sink());
        let mut content = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| lerr(format!("{path}: cannot read: {e}")))?;
            if n == 0 {
                break;
            }
            sha1.update(&buf[..n]);
            std::io::Write::write_all(&mut hw, &buf[..n]).expect("writing to a sink");
            if interesting {
                content.extend_from_slice(&buf[..n]);
            }
        }
        let (sha256, size, _) = hw.finish();
        let file = ImageFile {
            path: path.clone(),
            sha256,
            sha1: sha1.digest().to_string(),
            size,
            mode,
            layer,
        };
        this_layer.insert(path.clone(), file.clone());
        state.files.insert(path.clone(), file);
        if interesting {
            let text = String::from_utf8_lossy(&content);
            match path.as_str() {
                DPKG_STATUS | APK_INSTALLED => {
                    let parse = if path == DPKG_STATUS {
                        parse_dpkg_status
                    } else {
                        parse_apk_installed
                    };
                    let pkgs = parse(&text).map_err(|(line, message)| SbomError::PackageDb {
                        layer: layer.to_string(),
                        file: format!("/{path}"),
                        line,
                        message,
                    })?;
                    state.dbs.insert(
                        path,
                        pkgs.into_iter().map(|p| OsPackage { layer, ..p }).collect(),
                    );
                }
                _ => {
                    state
                        .os_release
                        .insert(path, OsRelease::Content(parse_os_release(&text)));
                }
            }
        }
    }
    for (path, target, mode) in links {
        if let Some(f) = this_layer
            .get(&target)
            .or_else(|| state.files.get(&target))
            .cloned()
        {
            state.files.insert(
                path.clone(),
                ImageFile {
                    path,
                    mode,
                    layer,
                    ..f
                },
            );
        }
    }
    Ok(())
}

/// A placeholder layer digest for packages before they are attributed to their layer.
fn no_layer() -> Digest {
    Digest::from_bytes([0; 32])
}

/// Parses dpkg's `status` file (deb822 paragraphs). Only packages whose `Status` ends in
/// `installed` are returned. Errors give the 1-based line and what is wrong.
pub fn parse_dpkg_status(text: &str) -> std::result::Result<Vec<OsPackage>, (usize, String)> {
    let mut out = Vec::new();
    for para in paragraphs(text, ':')? {
        let (start, fields) = para;
        let get = |k: &str| {
            fields
                .iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let name =
            get("Package").ok_or((start, "paragraph has no `Package:` field".to_string()))?;
        let status = get("Status").unwrap_or_default();
        if status.split_whitespace().last() != Some("installed") {
            continue;
        }
        let version =
            get("Version").ok_or((start, format!("package `{name}` has no `Version:` field")))?;
        out.push(OsPackage {
            kind: PackageKind::Deb,
            name,
            version,
            arch: get("Architecture"),
            license: None,
            description: get("Description").map(|d| d.lines().next().unwrap_or("").to_string()),
            layer: no_layer(),
        });
    }
    Ok(out)
}

/// Parses apk's `installed` database (`K:value` lines, blank-line separated).
pub fn parse_apk_installed(text: &str) -> std::result::Result<Vec<OsPackage>, (usize, String)> {
    let mut out = Vec::new();
    let mut cur: Vec<(char, String)> = Vec::new();
    let mut start = 1;
    let mut flush = |cur: &mut Vec<(char, String)>,
                     start: usize|
     -> std::result::Result<(), (usize, String)> {
        if cur.is_empty() {
            return Ok(());
        }
        let get = |k: char| cur.iter().find(|(f, _)| *f == k).map(|(_, v)| v.clone());
        let name = get('P').ok_or((start, "record has no `P:` (package name) line".to_string()))?;
        let version = get('V').ok_or((
            start,
            format!("package `{name}` has no `V:` (version) line"),
        ))?;
        out.push(OsPackage {
            kind: PackageKind::Apk,
            name,
            version,
            arch: get('A'),
            license: get('L'),
            description: get('T'),
            layer: no_layer(),
        });
        cur.clear();
        Ok(())
    };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            flush(&mut cur, start)?;
            start = n + 1;
            continue;
        }
        let mut chars = line.chars();
        match (chars.next(), chars.next()) {
            (Some(k), Some(':')) if k.is_ascii_alphanumeric() => {
                cur.push((k, line[k.len_utf8() + 1..].to_string()))
            }
            _ => return Err((n, format!("expected `K:value`, found `{}`", truncate(line)))),
        }
    }
    flush(&mut cur, start)?;
    Ok(out)
}

/// deb822 paragraphs: `(first line, [(field, value)])`. Continuation lines (starting with
/// a space or tab) extend the previous field's value.
#[allow(clippy::type_complexity)]
fn paragraphs(
    text: &str,
    sep: char,
) -> std::result::Result<Vec<(usize, Vec<(String, String)>)>, (usize, String)> {
    let mut out = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push((start, std::mem::take(&mut cur)));
            }
            start = n + 1;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match cur.last_mut() {
                Some((_, v)) => {
                    v.push('\n');
                    v.push_str(line.trim());
                }
                None => {
                    return Err((
                        n,
                        format!("continuation line without a field: `{}`", truncate(line)),
                    ));
                }
            }
            continue;
        }
        match line.split_once(sep) {
            Some((k, v))
                if !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic() && b != b':') =>
            {
                cur.push((k.to_string(), v.trim().to_string()))
            }
            _ => {
                return Err((
                    n,
                    format!("expected `Field: value`, found `{}`", truncate(line)),
                ));
            }
        }
    }
    if !cur.is_empty() {
        out.push((start, cur));
    }
    Ok(out)
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Reads `ID`, `VERSION_ID` and `VERSION_CODENAME` from an os-release file.
pub fn parse_os_release(text: &str) -> Distro {
    let mut d = Distro::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
        match k.trim() {
            "ID" => d.id = v,
            "VERSION_ID" => d.version_id = Some(v),
            "VERSION_CODENAME" => d.version_codename = Some(v),
            _ => {}
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n more text\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4+deb12u5\n";

    #[test]
    fn dpkg_status_parses_installed_only() {
        let p = parse_dpkg_status(STATUS).unwrap();
        assert_eq!(
            p.iter()
                .map(|p| (p.name.as_str(), p.version.as_str()))
                .collect::<Vec<_>>(),
            [("libc6", "2.36-9+deb12u4"), ("base-files", "12.4+deb12u5")]
        );
        assert_eq!(p[0].arch.as_deref(), Some("amd64"));
        assert_eq!(p[0].description.as_deref(), Some("GNU C Library"));
    }

    #[test]
    fn dpkg_status_errors_name_the_line() {
        let (line, msg) =
            parse_dpkg_status("Package: a\nVersion: 1\nthis is not a field\n").unwrap_err();
        assert_eq!(line, 3, "{msg}");
        let (line, msg) = parse_dpkg_status("Package: a\nStatus: install ok installed\nVersion: 1\n\nStatus: install ok installed\nVersion: 2\n").unwrap_err();
        assert_eq!(line, 5, "{msg}");
        assert!(msg.contains("Package"), "{msg}");
    }

    #[test]
    fn apk_installed_parses() {
        let p = parse_apk_installed("C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\nT:the musl c library\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\n").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].name.as_str(), p[0].license.as_deref()),
            ("musl", Some("MIT"))
        );
        assert_eq!(parse_apk_installed("P:x\nbroken\n").unwrap_err().0, 2);
    }

    /// Writes a gzip tar layer with `files` (path, bytes) and optional symlinks, returns
    /// its digest; and a manifest naming the layers.
    /// (path, file content, or symlink target); neither means an empty file.
    type Entry<'a> = (&'a str, Option<&'a [u8]>, Option<&'a str>);

    pub(crate) fn write_layout(dir: &Path, layers: &[Vec<Entry>]) -> Digest {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let mut descs = Vec::new();
        for files in layers {
            let mut tar = tar::Builder::new(Vec::new());
            for (path, bytes, link) in files {
                let mut h = tar::Header::new_gnu();
                h.set_mode(0o644);
                match (bytes, link) {
                    (Some(b), _) => {
                        h.set_size(b.len() as u64);
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_cksum();
                        tar.append_data(&mut h, path, *b).unwrap();
                    }
                    (None, Some(l)) => {
                        h.set_size(0);
                        h.set_entry_type(tar::EntryType::Symlink);
                        tar.append_link(&mut h, path, l).unwrap();
                    }
                    (None, None) => {
                        h.set_size(0);
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_cksum();
                        tar.append_data(&mut h, path, &[][..]).unwrap();
                    }
                }
            }
            let raw = tar.into_inner().unwrap();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &raw).unwrap();
            let blob = gz.finish().unwrap();
            let d = Digest::of(&blob);
            std::fs::write(blobs.join(d.hex()), &blob).unwrap();
            descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.to_string(), "size": blob.len()}));
        }
        let m =
            serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "layers": descs})).unwrap();
        let d = Digest::of(&m);
        std::fs::write(blobs.join(d.hex()), &m).unwrap();
        d
    }

    #[test]
    fn synthetic_base_layer_with_dpkg_status() {
        let d = tempfile::tempdir().unwrap();
        let osr = b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n";
        let m = write_layout(
            d.path(),
            &[
                vec![
                    ("usr/lib/os-release", Some(&osr[..]), None),
                    ("etc/os-release", None, Some("../usr/lib/os-release")),
                    ("var/lib/dpkg/status", Some(STATUS.as_bytes()), None),
                    ("bin/sh", Some(b"#!shell"), None),
                    ("tmp/gone", Some(b"x"), None),
                ],
                vec![
                    ("usr/local/bin/app", Some(b"ELF"), None),
                    ("tmp/.wh.gone", None, None),
                ],
            ],
        );
        let scan = scan_layout(d.path(), &m).unwrap();
        let paths: Vec<&str> = scan.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "bin/sh",
                "usr/lib/os-release",
                "usr/local/bin/app",
                "var/lib/dpkg/status"
            ],
            "symlinks are not files; whiteouts delete"
        );
        assert_eq!(scan.files[2].sha256, Digest::of(b"ELF"));
        assert_eq!(
            scan.files[2].sha1,
            sha1_smol::Sha1::from(b"ELF").digest().to_string()
        );
        assert_eq!(scan.packages.len(), 2);
        assert_eq!(scan.distro.as_ref().unwrap().qualifier(), "debian-12");
        assert_ne!(scan.packages[0].layer, no_layer());
    }

    #[test]
    fn bad_dpkg_status_in_a_layer_names_layer_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let m = write_layout(
            d.path(),
            &[vec![(
                "var/lib/dpkg/status",
                Some(b"Package: a\nVersion: 1\n\x01garbage\n"),
                None,
            )]],
        );
        let e = scan_layout(d.path(), &m).unwrap_err().to_string();
        assert!(
            e.contains("/var/lib/dpkg/status:3") && e.contains("layer sha256:"),
            "{e}"
        );
    }

    /// A layout whose layers are the given uncompressed tars; returns the manifest digest.
    fn raw_layout(dir: &Path, layers: &[Vec<u8>]) -> Digest {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let descs: Vec<_> = layers
            .iter()
            .map(|l| {
                let d = Digest::of(l);
                std::fs::write(blobs.join(d.hex()), l).unwrap();
                serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d.to_string(), "size": l.len()})
            })
            .collect();
        let m =
            serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "layers": descs})).unwrap();
        let d = Digest::of(&m);
        std::fs::write(blobs.join(d.hex()), &m).unwrap();
        d
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../testdata/layers")
                .join(name),
        )
        .unwrap()
    }

    /// The hand-made hostile layers of testdata/layers: the scan refuses each naming the
    /// layer, the entry and the reason, so no `/../..` path reaches an SBOM; what OCI
    /// allows is normalized.
    #[test]
    fn hostile_layers_are_refused_and_allowed_paths_normalized() {
        let ok = fixture("ok-normalized.tar");
        let d = tempfile::tempdir().unwrap();
        let m = raw_layout(d.path(), std::slice::from_ref(&ok));
        let scan = scan_layout(d.path(), &m).unwrap();
        let paths: Vec<&str> = scan.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["etc/motd", "etc/motd.link"], "whiteout deletes");
        for (file, entry, reason) in [
            ("hostile-dotdot.tar", "../../../../tmp/kiln-escape", "`..`"),
            (
                "hostile-symlink.tar",
                "etc/cron.d/evil",
                "outside the image's root",
            ),
            ("hostile-hardlink.tar", "etc/shadow-copy", "hard link"),
            ("hostile-device.tar", "dev/mem", "device"),
        ] {
            let bad = fixture(file);
            let d = tempfile::tempdir().unwrap();
            let m = raw_layout(d.path(), &[ok.clone(), bad.clone()]);
            let e = scan_layout(d.path(), &m).unwrap_err().to_string();
            assert!(
                e.contains(&Digest::of(&bad).to_string())
                    && e.contains(&format!("entry `{entry}`"))
                    && e.contains(reason),
                "{file}: {e}"
            );
        }
    }
}
