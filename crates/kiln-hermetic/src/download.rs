//! `fetch_locked`: kiln downloads every crates.io crate `Cargo.lock` pins into its cargo
//! home itself — no `cargo` needed, so a provided toolchain root (whose cargo only runs
//! inside a sandbox without network) needs nothing else on the host.
//!
//! Each `.crate` is read into memory (at most [`CRATE_LIMIT`] bytes), hashed, compared
//! with the lock's checksum and only then written, atomically, to
//! `registry/cache/index.crates.io-1949cf8c6b5b557f/NAME-VERSION.crate`: the directory
//! cargo ≥ 1.85 uses for crates.io, so a cargo run on the same cargo home sees the same
//! cache. A crate already present with the right checksum (in any `registry/cache/*`
//! directory, as [`crate::check_fetched`] looks) is not downloaded again; a present file
//! with a wrong checksum is replaced by verified bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kiln_core::Digest;
use kiln_core::contract::cargo_lock::{CRATES_IO_CACHE_DIR, CRATES_IO_DL, is_crates_io};
use kiln_core::net::Client;

use crate::lockfile::{CargoLock, FetchError, LockedCrate};

/// The environment variable that replaces crates.io's download URL (a mirror, a local test
/// server): a base URL under which `NAME/NAME-VERSION.crate` is fetched, or a template with
/// cargo's `dl` markers (`{crate}`, `{version}`, `{prefix}`, `{lowerprefix}`,
/// `{sha256-checksum}`). Whatever serves them, the bytes must match `Cargo.lock`.
pub const CRATES_DL_ENV: &str = "KILN_CRATES_DL";

/// The largest `.crate` kiln downloads (crates.io itself refuses uploads over 10 MiB by
/// default; a few crates have larger limits).
pub const CRATE_LIMIT: u64 = 64 << 20;

/// Downloads at a time.
const PARALLEL: usize = 8;

/// Where the locked crates are downloaded from, and with which client.
#[derive(Debug, Clone)]
pub struct CratesDl {
    template: String,
    client: Client,
}

impl CratesDl {
    /// `$KILN_CRATES_DL` when set (and not empty), else crates.io.
    pub fn from_env() -> Self {
        match std::env::var(CRATES_DL_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::new(v.trim()),
            _ => Self::new(CRATES_IO_DL),
        }
    }

    /// Downloads from `template` (a base URL or a template, as [`CRATES_DL_ENV`]).
    pub fn new(template: &str) -> Self {
        CratesDl {
            template: template.to_string(),
            client: Client::new(concat!("kiln/", env!("CARGO_PKG_VERSION"))),
        }
    }

    /// The same source through another client (timeouts, retries).
    pub fn with_client(mut self, client: Client) -> Self {
        self.client = client;
        self
    }

    /// The URL of a crate's `.crate` file.
    pub fn url(&self, name: &str, version: &str, checksum: &str) -> String {
        // `+` (build metadata) is a space to some object stores; `%2B` is `+` to all.
        let v = version.replace('+', "%2B");
        const MARKERS: [&str; 5] = [
            "{crate}",
            "{version}",
            "{prefix}",
            "{lowerprefix}",
            "{sha256-checksum}",
        ];
        if MARKERS.iter().any(|m| self.template.contains(m)) {
            let prefix = prefix(name);
            self.template
                .replace("{crate}", name)
                .replace("{version}", &v)
                .replace("{lowerprefix}", &prefix.to_lowercase())
                .replace("{prefix}", &prefix)
                .replace("{sha256-checksum}", checksum)
        } else {
            format!(
                "{}/{name}/{name}-{v}.crate",
                self.template.trim_end_matches('/')
            )
        }
    }

    /// The bytes of `name@version`'s `.crate`, which must have the sha256 `checksum`
    /// (lowercase hex, as `Cargo.lock` records it); bytes with any other digest are an
    /// error naming the crate, the URL and both digests, and are never returned.
    pub fn get_crate(
        &self,
        name: &str,
        version: &str,
        checksum: &str,
    ) -> Result<Vec<u8>, FetchError> {
        let krate = format!("{name}@{version}");
        let url = self.url(name, version, checksum);
        let bytes = self
            .client
            .get_bytes(&url, CRATE_LIMIT)
            .map_err(|e| FetchError::Download {
                krate: krate.clone(),
                url: url.clone(),
                why: e.why,
                status: e.status,
            })?;
        let got = Digest::of(&bytes);
        if got.hex() != checksum {
            return Err(FetchError::DownloadChecksum {
                krate,
                url,
                locked: checksum.to_string(),
                found: got.hex(),
            });
        }
        Ok(bytes)
    }
}

/// cargo's index prefix of a crate name (`1`, `2`, `3/a`, `ab/cd`).
fn prefix(name: &str) -> String {
    let c: Vec<char> = name.chars().collect();
    let part = |r: std::ops::Range<usize>| c[r].iter().collect::<String>();
    match c.len() {
        0 => String::new(),
        1 => "1".into(),
        2 => "2".into(),
        3 => format!("3/{}", part(0..1)),
        _ => format!("{}/{}", part(0..2), part(2..4)),
    }
}

/// What [`fetch_locked`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// `name@version` of every crate downloaded now, sorted.
    pub downloaded: Vec<String>,
    /// How many were already present with the locked checksum.
    pub present: usize,
    /// The verified `.crate` file of every crate, by `name@version`: what
    /// [`crate::check_fetched`] would now return, without hashing them again.
    pub archives: BTreeMap<String, PathBuf>,
}

/// Where a locked crate's archive is in a cargo home.
pub(crate) enum Located {
    /// A file with the locked checksum.
    Verified(PathBuf),
    /// Files exist, none with the locked checksum: the first of them, and its digest.
    Wrong {
        file: PathBuf,
        found: Digest,
    },
    Absent,
}

/// The `registry/cache/*` directories of `cargo_home`, sorted (crates.io's first).
pub(crate) fn cache_dirs(cargo_home: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cargo_home.join("registry/cache"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.sort_by_key(|d| (!d.ends_with(CRATES_IO_CACHE_DIR), d.clone()));
    dirs
}

/// Looks for `c`'s archive in `caches`, preferring one with the locked checksum (an older
/// cargo's cache directory may hold a stale or damaged copy next to a good one).
pub(crate) fn locate(caches: &[PathBuf], c: &LockedCrate) -> Result<Located, FetchError> {
    let file_name = format!("{}-{}.crate", c.name, c.version);
    let locked = c.checksum.as_deref().unwrap_or_default();
    let mut wrong = None;
    for file in caches.iter().map(|d| d.join(&file_name)) {
        if !file.is_file() {
            continue;
        }
        let got = Digest::of_file(&file).map_err(|source| FetchError::Io {
            what: "cannot read",
            path: file.clone(),
            source,
        })?;
        if got.hex() == locked {
            return Ok(Located::Verified(file));
        }
        wrong.get_or_insert(Located::Wrong { file, found: got });
    }
    Ok(wrong.unwrap_or(Located::Absent))
}

/// Fills `cargo_home` with every crates.io crate `lock` pins (see the module docs),
/// eight downloads at a time. Each download is checked against the lock's checksum
/// before it is written; a mismatch writes nothing and is
/// [`FetchError::DownloadChecksum`]. Every entry of the lock is fetched, whatever the
/// target: the SBOM and `check_fetched` rely on all of them.
///
/// A registry crate not from crates.io is [`FetchError::NotCratesIo`] before anything is
/// downloaded ([`CargoLock::parse`] already refuses such a lock; this holds for a
/// `CargoLock` built any other way too).
pub fn fetch_locked(
    lock: &CargoLock,
    cargo_home: &Path,
    dl: &CratesDl,
) -> Result<Fetched, FetchError> {
    let crates: Vec<&LockedCrate> = lock.registry_crates().collect();
    for c in &crates {
        let origin = c.source.as_deref().unwrap_or_default();
        if !is_crates_io(origin) {
            return Err(FetchError::NotCratesIo {
                krate: format!("{}@{}", c.name, c.version),
                origin: origin.to_string(),
            });
        }
        if c.checksum.is_none() || !safe_name(&c.name) || !safe_version(&c.version) {
            return Err(FetchError::BadLock {
                path: lock.path.clone(),
                message: format!(
                    "package {}@{} has no checksum or is not a valid crate name and version",
                    c.name, c.version
                ),
                fix: "regenerate the lock with `cargo generate-lockfile`",
            });
        }
    }
    let caches = cache_dirs(cargo_home);
    let dest_dir = cargo_home.join("registry/cache").join(CRATES_IO_CACHE_DIR);
    kiln_core::fsx::create_dir_all(&dest_dir).map_err(|source| FetchError::Io {
        what: "cannot create",
        path: dest_dir.clone(),
        source,
    })?;

    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    // By the crate's index in the (sorted) lock: the order downloads finish in never matters.
    let results: Mutex<BTreeMap<usize, Result<OneCrate, FetchError>>> = Mutex::new(BTreeMap::new());
    let work = || {
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(c) = crates.get(i) else { break };
            let r = fetch_one(c, &caches, &dest_dir, dl);
            if r.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(i, r);
        }
    };
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(crates.len()) {
            s.spawn(work);
        }
    });
    let mut out = Fetched::default();
    for (i, r) in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        let (downloaded, file) = r?;
        let key = format!("{}@{}", crates[i].name, crates[i].version);
        if downloaded {
            out.downloaded.push(key.clone());
        } else {
            out.present += 1;
        }
        out.archives.insert(key, file);
    }
    out.downloaded.sort();
    Ok(out)
}

/// Whether a crate was downloaded now (`false`: already present with the locked
/// checksum), and its verified archive.
type OneCrate = (bool, PathBuf);

/// One crate's [`OneCrate`].
fn fetch_one(
    c: &LockedCrate,
    caches: &[PathBuf],
    dest_dir: &Path,
    dl: &CratesDl,
) -> Result<OneCrate, FetchError> {
    if let Located::Verified(file) = locate(caches, c)? {
        return Ok((false, file));
    }
    let locked = c.checksum.clone().unwrap_or_default();
    let bytes = dl.get_crate(&c.name, &c.version, &locked)?;
    let dest = dest_dir.join(format!("{}-{}.crate", c.name, c.version));
    kiln_core::fsx::write_atomic(&dest, &bytes).map_err(|source| FetchError::Io {
        what: "cannot write",
        path: dest.clone(),
        source,
    })?;
    Ok((true, dest))
}

/// A crates.io crate name: ASCII alphanumerics, `-` and `_`.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A semver version: ASCII alphanumerics, `.`, `-` and `+`, never `..`.
fn safe_version(v: &str) -> bool {
    !v.is_empty()
        && !v.contains("..")
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// A tiny HTTP/1.1 server on 127.0.0.1: each path answers with the queued responses in
    /// order (the last one repeating), every request is recorded.
    struct Server {
        base: String,
        hits: Arc<Mutex<Vec<String>>>,
    }

    type Responses = BTreeMap<String, VecDeque<(u16, Vec<u8>)>>;
    /// A path and the responses it gives, in order.
    type Route<'a> = (&'a str, &'a [(u16, &'a [u8])]);

    impl Server {
        fn start(routes: &[Route]) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let hits = Arc::new(Mutex::new(Vec::new()));
            let mut responses: Responses = BTreeMap::new();
            for (path, rs) in routes {
                responses.insert(
                    path.to_string(),
                    rs.iter().map(|(c, b)| (*c, b.to_vec())).collect(),
                );
            }
            let responses = Arc::new(Mutex::new(responses));
            let recorded = hits.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let (responses, recorded) = (responses.clone(), recorded.clone());
                    std::thread::spawn(move || {
                        let mut reader = BufReader::new(stream.try_clone().unwrap());
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        let path = line.split(' ').nth(1).unwrap_or("").to_string();
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                                break;
                            }
                        }
                        recorded.lock().unwrap().push(path.clone());
                        let (code, body) = {
                            let mut all = responses.lock().unwrap();
                            match all.get_mut(&path) {
                                Some(q) if q.len() > 1 => q.pop_front().unwrap(),
                                Some(q) => q[0].clone(),
                                None => (404, b"not found".to_vec()),
                            }
                        };
                        let head = format!(
                            "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(head.as_bytes());
                        let _ = stream.write_all(&body);
                    });
                }
            });
            Server { base, hits }
        }

        fn hits(&self) -> Vec<String> {
            let mut h = self.hits.lock().unwrap().clone();
            h.sort();
            h
        }

        fn dl(&self) -> CratesDl {
            CratesDl::new(&self.base)
                .with_client(Client::new("kiln-test").with_retry_delay(Duration::from_millis(10)))
        }
    }

    const ITOA: &[u8] = b"itoa archive bytes";
    const RYU: &[u8] = b"ryu archive bytes";

    fn lock(crates: &[(&str, &[u8])]) -> CargoLock {
        let mut text =
            String::from("version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n");
        for (name, bytes) in crates {
            text.push_str(&format!(
                "\n[[package]]\nname = \"{name}\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{}\"\n",
                Digest::of(bytes).hex()
            ));
        }
        CargoLock::parse(Path::new("Cargo.lock"), text.as_bytes()).unwrap()
    }

    fn cached(home: &Path, file: &str) -> PathBuf {
        home.join("registry/cache")
            .join(CRATES_IO_CACHE_DIR)
            .join(file)
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn missing_crates_are_fetched_with_the_locked_bytes() {
        let server = Server::start(&[
            ("/itoa/itoa-1.0.0.crate", &[(200, ITOA)]),
            ("/ryu/ryu-1.0.0.crate", &[(200, RYU)]),
        ]);
        let lock = lock(&[("itoa", ITOA), ("ryu", RYU)]);
        let home = tempfile::tempdir().unwrap();
        let got = fetch_locked(&lock, home.path(), &server.dl()).unwrap();
        assert_eq!(got.downloaded, ["itoa@1.0.0", "ryu@1.0.0"]);
        assert_eq!(got.present, 0);
        // The archives it returns are what check_fetched finds, without hashing again.
        assert_eq!(
            got.archives,
            crate::check_fetched(&lock, home.path()).unwrap()
        );
        assert_eq!(
            std::fs::read(cached(home.path(), "itoa-1.0.0.crate")).unwrap(),
            ITOA
        );
        assert_eq!(
            std::fs::read(cached(home.path(), "ryu-1.0.0.crate")).unwrap(),
            RYU
        );
        let found = crate::check_fetched(&lock, home.path()).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(
            files_in(&cached(home.path(), "")),
            ["itoa-1.0.0.crate", "ryu-1.0.0.crate"],
            "nothing else (no temporary file) is left"
        );
    }

    /// Present with the locked checksum, in any cache directory (here an older cargo's):
    /// not downloaded again. A present file with the wrong bytes is replaced.
    #[test]
    fn a_present_crate_is_not_downloaded_again() {
        let server = Server::start(&[
            ("/itoa/itoa-1.0.0.crate", &[(200, ITOA)]),
            ("/ryu/ryu-1.0.0.crate", &[(200, RYU)]),
        ]);
        let lock = lock(&[("itoa", ITOA), ("ryu", RYU)]);
        let home = tempfile::tempdir().unwrap();
        let old = home
            .path()
            .join("registry/cache/index.crates.io-6f17d22bba15001f");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("itoa-1.0.0.crate"), ITOA).unwrap();
        std::fs::create_dir_all(cached(home.path(), "")).unwrap();
        std::fs::write(cached(home.path(), "ryu-1.0.0.crate"), b"damaged").unwrap();
        let got = fetch_locked(&lock, home.path(), &server.dl()).unwrap();
        assert_eq!(got.downloaded, ["ryu@1.0.0"]);
        assert_eq!(got.present, 1);
        assert_eq!(server.hits(), ["/ryu/ryu-1.0.0.crate"]);
        assert_eq!(
            std::fs::read(cached(home.path(), "ryu-1.0.0.crate")).unwrap(),
            RYU
        );
        // All present now: nothing is requested.
        let again = fetch_locked(&lock, home.path(), &server.dl()).unwrap();
        assert_eq!((again.downloaded.len(), again.present), (0, 2));
        assert_eq!(
            again.archives,
            crate::check_fetched(&lock, home.path()).unwrap()
        );
        assert_eq!(server.hits().len(), 1);
    }

    #[test]
    fn wrong_bytes_are_refused_and_leave_nothing() {
        let server = Server::start(&[("/itoa/itoa-1.0.0.crate", &[(200, b"evil bytes")])]);
        let lock = lock(&[("itoa", ITOA)]);
        let home = tempfile::tempdir().unwrap();
        let e = fetch_locked(&lock, home.path(), &server.dl()).unwrap_err();
        assert!(matches!(e, FetchError::DownloadChecksum { .. }), "{e}");
        let msg = e.to_string();
        let url = format!("{}/itoa/itoa-1.0.0.crate", server.base);
        for want in [
            "itoa@1.0.0",
            url.as_str(),
            &Digest::of(ITOA).hex(),
            &Digest::of(b"evil bytes").hex(),
        ] {
            assert!(msg.contains(want), "expected `{want}` in: {msg}");
        }
        assert!(kiln_core::Hint::hint(&e).unwrap().contains(CRATES_DL_ENV));
        assert_eq!(
            files_in(&cached(home.path(), "")),
            Vec::<String>::new(),
            "a refused download left a file in the cache"
        );
        assert!(crate::check_fetched(&lock, home.path()).is_err());
    }

    #[test]
    fn server_errors_and_rate_limits_are_retried() {
        let server = Server::start(&[
            ("/itoa/itoa-1.0.0.crate", &[(500, b"oops"), (200, ITOA)]),
            ("/ryu/ryu-1.0.0.crate", &[(429, b"slow down"), (200, RYU)]),
        ]);
        let lock = lock(&[("itoa", ITOA), ("ryu", RYU)]);
        let home = tempfile::tempdir().unwrap();
        let got = fetch_locked(&lock, home.path(), &server.dl()).unwrap();
        assert_eq!(got.downloaded.len(), 2);
        assert_eq!(
            server.hits(),
            [
                "/itoa/itoa-1.0.0.crate",
                "/itoa/itoa-1.0.0.crate",
                "/ryu/ryu-1.0.0.crate",
                "/ryu/ryu-1.0.0.crate"
            ]
        );
        assert_eq!(
            std::fs::read(cached(home.path(), "itoa-1.0.0.crate")).unwrap(),
            ITOA
        );
        // A server that keeps failing gives up after a few attempts, naming the URL.
        let down = Server::start(&[("/itoa/itoa-1.0.0.crate", &[(503, b"down")])]);
        let e = fetch_locked(&lock, tempfile::tempdir().unwrap().path(), &down.dl())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/itoa/itoa-1.0.0.crate") && e.contains("503") && e.contains("attempts"),
            "{e}"
        );
    }

    #[test]
    fn not_found_is_final_and_names_the_url() {
        let server = Server::start(&[("/ryu/ryu-1.0.0.crate", &[(200, RYU)])]);
        let lock = lock(&[("itoa", ITOA)]);
        let home = tempfile::tempdir().unwrap();
        let e = fetch_locked(&lock, home.path(), &server.dl()).unwrap_err();
        let msg = e.to_string();
        let url = format!("{}/itoa/itoa-1.0.0.crate", server.base);
        assert!(
            msg.contains(&url) && msg.contains("itoa@1.0.0") && msg.contains("404"),
            "{msg}"
        );
        assert!(
            kiln_core::Hint::hint(&e).unwrap().contains("Cargo.lock"),
            "{e:?}"
        );
        assert_eq!(server.hits().len(), 1, "a 404 is not retried");
        assert_eq!(files_in(&cached(home.path(), "")), Vec::<String>::new());
    }

    #[test]
    fn other_sources_are_refused_by_name() {
        let mut lock = lock(&[("itoa", ITOA)]);
        lock.crates[1].source = Some("git+https://example.invalid/itoa#abc".into());
        let home = tempfile::tempdir().unwrap();
        let dl = CratesDl::new("http://127.0.0.1:9");
        let e = fetch_locked(&lock, home.path(), &dl).unwrap_err();
        assert!(matches!(e, FetchError::NotCratesIo { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("itoa@1.0.0") && msg.contains("git+https://example.invalid/itoa#abc"),
            "{msg}"
        );
        assert!(
            kiln_core::Hint::hint(&e)
                .unwrap()
                .contains("path dependency")
        );
        // A name that would leave the cache directory is not a crate name.
        let mut lock = self::lock(&[("itoa", ITOA)]);
        lock.crates[1].name = "../../evil".into();
        let e = fetch_locked(&lock, home.path(), &dl).unwrap_err();
        assert!(matches!(e, FetchError::BadLock { .. }), "{e}");
    }

    #[test]
    fn download_urls() {
        let d = CratesDl::new("https://static.crates.io/crates/");
        assert_eq!(
            d.url("itoa", "1.0.19", "ab"),
            "https://static.crates.io/crates/itoa/itoa-1.0.19.crate"
        );
        assert_eq!(
            d.url("libgit2-sys", "0.14.2+1.5.1", "ab"),
            "https://static.crates.io/crates/libgit2-sys/libgit2-sys-0.14.2%2B1.5.1.crate"
        );
        let t =
            CratesDl::new("https://m.example/{lowerprefix}/{crate}/{version}/{sha256-checksum}");
        assert_eq!(
            t.url("Serde", "1.0.0", "ab"),
            "https://m.example/se/rd/Serde/1.0.0/ab"
        );
        assert_eq!(
            t.url("syn", "2.0.0", "cd"),
            "https://m.example/3/s/syn/2.0.0/cd"
        );
    }

    /// The real thing: testdata/hello's one dependency from crates.io, no cargo involved.
    #[test]
    fn fetches_from_crates_io() {
        let text = "version = 4\n\n[[package]]\nname = \"itoa\"\nversion = \"1.0.19\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"3bd1574e617a9a6c1f8f8181bd7e841e1f20e4277607ef28945765188d6284d4\"\n";
        let lock = CargoLock::parse(Path::new("Cargo.lock"), text.as_bytes()).unwrap();
        let home = tempfile::tempdir().unwrap();
        let got = fetch_locked(&lock, home.path(), &CratesDl::new(CRATES_IO_DL)).unwrap();
        assert_eq!(got.downloaded, ["itoa@1.0.19"]);
        crate::check_fetched(&lock, home.path()).unwrap();
    }
}
