//! `cargo xtask bench push`: how fast and how lean `kiln push` is, next to skopeo, on an
//! image with one large incompressible layer, against a real registry on this machine.
//!
//! 1. A throwaway copy of testdata/hello (as the tests' `Project::from_testdata` makes it:
//!    the directory, a kiln.toml, the host's toolchain lock) whose image carries an extra
//!    file of `--size-mib` MiB of xorshift bytes, built with a fresh key by this executable
//!    (which is the kiln CLI too). Build time is not a figure.
//! 2. Per run, two fresh `docker-registry serve` (CNCF distribution 2.8) on 127.0.0.1,
//!    each on a free port with its own temporary storage and the config the push tests
//!    write (`crates/kiln-cli/tests/support/registry.rs`; that helper panics and lives in a
//!    test crate, so a small local copy is here). One takes kiln's push and re-push, the
//!    other skopeo's copy: every upload goes to an empty registry, and skopeo's blob-info
//!    cache (under /var/lib/containers for root) never finds an earlier run's blobs to
//!    mount, since the port is new. The order of kiln and skopeo alternates run to run.
//! 3. Measured, each as a child process (wall from `Instant`, peak RSS from `wait4(2)`):
//!    `kiln push REF --insecure-http --json --key K` to a fresh repository; `skopeo copy
//!    --preserve-digests oci:LAYOUT:TAG docker://...` of the same layout; the re-push of
//!    kiln's (push.json must show nothing uploaded). `sync(2)` before each, so one step's
//!    writeback does not land in the next one's wall time.
//!
//! The source layout was just written by the build, so it is read from the page cache;
//! the registry's storage is on the same disk as the layout. Figures, not pass/fail: the
//! issue's targets are printed next to them, met or not, and the run still succeeds.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kiln_core::contract::layout::file;
use kiln_core::contract::{OutputDir, ProjectLayout};
use serde_json::{Value, json};

use crate::bench::{Measured, median, run_logged};
use crate::util::on_path;

/// Arguments of `bench push`.
#[derive(clap::Args, Debug, Clone)]
pub struct PushBenchArgs {
    /// Size of the incompressible file (so of the image's large layer), in MiB.
    #[arg(long, default_value_t = 500)]
    pub size_mib: u64,
    /// Runs of each measurement (min and median are reported).
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Work directory, kept afterwards (default: a temporary directory, removed).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

const TAG: &str = "0.1.0";
const IMAGE: &str = "hello";
/// The client's default when `$KILN_PUSH_CHUNK_SIZE` is unset (kiln-registry `Options`).
const DEFAULT_CHUNK: u64 = 16 << 20;
/// The targets.
const REPUSH_TARGET_S: f64 = 0.5;
const RSS_TARGET_MIB: f64 = 128.0;

fn kiln_toml(payload: &str) -> String {
    format!(
        "[project]\nsource_date_epoch = 1700000000\n\n[[image]]\nname = \"{IMAGE}\"\n\
         package = \"hello\"\nbinaries = [\"hello\"]\ntag = \"{TAG}\"\n\n\
         [[image.files]]\nsource = \"greeting.txt\"\npath = \"/etc/hello/greeting.txt\"\n\n\
         [[image.files]]\nsource = \"{payload}\"\npath = \"/opt/bench/{payload}\"\n"
    )
}

pub fn push(args: &PushBenchArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let Some(registry_exe) = kiln_core::process::which("docker-registry") else {
        bail!(
            "docker-registry is not installed (apt-get install docker-registry; `cargo xtask test` installs it too)"
        );
    };
    let skopeo = on_path("skopeo");
    let repo = crate::util::repo_root()?;
    let work = crate::bench::WorkDir::new(args.dir.as_deref(), "kiln-bench-push-")?;
    let dir = work.path.clone();
    let exe = std::env::current_exe().context("locating the current executable")?;
    let logs = dir.join("logs");

    // 1. The project and its build (untimed).
    let project = dir.join("project");
    let _ = std::fs::remove_dir_all(&project);
    kiln_repro::copy_project(&repo.join("testdata/hello"), &project, None)?;
    let payload = "payload.bin";
    let layout = ProjectLayout::new(&project);
    kiln_core::fsx::write_atomic(&layout.kiln_toml(), kiln_toml(payload).as_bytes())?;
    let target = kiln_build::host_target()?;
    let lock = ProjectLayout::new(&repo).toolchain_lock(&target);
    let lock_bytes = std::fs::read(&lock).with_context(|| format!("reading {}", lock.display()))?;
    kiln_core::fsx::write_atomic(&layout.toolchain_lock(&target), &lock_bytes)?;
    let t = Instant::now();
    write_random(&project.join(payload), args.size_mib << 20)?;
    eprintln!(
        "bench push: {} MiB of xorshift bytes in {:.1} s; building the image (untimed)",
        args.size_mib,
        t.elapsed().as_secs_f64()
    );
    let key_prefix = dir.join("keys/bench");
    let key = key_prefix.with_extension("key");
    if !key.is_file() {
        let mut c = kiln_core::process::command(&exe);
        c.arg("keygen").arg("--out").arg(&key_prefix);
        run_logged(c, &logs.join("keygen.log"))?;
    }
    let t = Instant::now();
    let mut c = kiln_core::process::command(&exe);
    c.arg("-C")
        .arg(&project)
        .arg("build")
        .arg("--key")
        .arg(&key);
    run_logged(c, &logs.join("build.log"))?;
    let out = layout.output(IMAGE);
    let (image_bytes, image_objects) = image_size(&out.oci(), TAG)?;
    eprintln!(
        "bench push: built in {:.1} s; image {TAG}: {:.1} MB (manifest, config, layers)",
        t.elapsed().as_secs_f64(),
        image_bytes as f64 / 1e6
    );

    let chunk_env = std::env::var("KILN_PUSH_CHUNK_SIZE").ok();
    let chunk = chunk_env
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CHUNK);

    // 2 and 3. The runs.
    let mut runs: Vec<Run> = Vec::new();
    for i in 1..=args.runs {
        let kiln_first = i % 2 == 1;
        eprintln!(
            "bench push: run {i}/{} ({} first)",
            args.runs,
            if kiln_first || !skopeo {
                "kiln"
            } else {
                "skopeo"
            }
        );
        let mut skopeo_m = None;
        if !kiln_first && skopeo {
            skopeo_m = Some(skopeo_copy(&registry_exe, &dir, &logs, &out, i)?);
        }
        let (first, repush) =
            kiln_push_and_repush(&registry_exe, &dir, &logs, &exe, &project, &key, &out, i)?;
        if kiln_first && skopeo {
            skopeo_m = Some(skopeo_copy(&registry_exe, &dir, &logs, &out, i)?);
        }
        runs.push(Run {
            push: first,
            repush,
            skopeo: skopeo_m,
        });
    }
    if !skopeo {
        eprintln!("(skopeo not installed: skipping it)");
    }

    // 4. Figures.
    let kiln_bytes = runs[0].push.bytes;
    let push_walls: Vec<f64> = runs.iter().map(|r| secs(&r.push.m)).collect();
    let repush_walls: Vec<f64> = runs.iter().map(|r| secs(&r.repush.m)).collect();
    let skopeo_walls: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.skopeo.as_ref())
        .map(secs)
        .collect();
    let push_rss: Vec<f64> = runs.iter().map(|r| rss_mib(&r.push.m)).collect();
    let repush_rss: Vec<f64> = runs.iter().map(|r| rss_mib(&r.repush.m)).collect();
    let skopeo_rss: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.skopeo.as_ref())
        .map(rss_mib)
        .collect();

    let mut rows = vec![Row::new(
        "kiln push (fresh repository)",
        &push_walls,
        Some(kiln_bytes),
        &push_rss,
    )];
    if skopeo {
        rows.push(Row::new(
            "skopeo copy --preserve-digests (fresh repository)",
            &skopeo_walls,
            Some(image_bytes),
            &skopeo_rss,
        ));
    }
    rows.push(Row::new(
        "kiln re-push (same repository)",
        &repush_walls,
        None,
        &repush_rss,
    ));

    println!();
    println!(
        "bench push: {} MiB incompressible file; image {TAG} {image_bytes} bytes in {image_objects} objects (manifest, config, layers: what skopeo copies); kiln pushes {kiln_bytes} bytes in {} objects (the image and its evidence); {} run(s); docker-registry 2.8 on 127.0.0.1, storage on the same disk as the layout; kiln is this xtask binary ({} profile); MB = 10^6 bytes",
        args.size_mib,
        runs[0].push.objects,
        args.runs,
        if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        }
    );
    println!();
    println!(
        "| candidate | wall s (min) | wall s (median) | MB/s (best) | MB/s (median) | peak RSS MiB (median) | peak RSS MiB (max) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        let rate = |w: f64| {
            r.bytes
                .map_or("–".to_string(), |b| format!("{:.1}", b as f64 / 1e6 / w))
        };
        println!(
            "| {} | {:.3} | {:.3} | {} | {} | {:.1} | {:.1} |",
            r.name,
            r.wall_min,
            r.wall_median,
            rate(r.wall_min),
            rate(r.wall_median),
            r.rss_median,
            r.rss_max
        );
    }
    println!();
    println!(
        "kiln push.json (fresh push, per run): uploaded_bytes {}, requests {}, retries {}; chunk size {} ({})",
        join(runs.iter().map(|r| r.push.uploaded_bytes)),
        join(runs.iter().map(|r| r.push.requests)),
        join(runs.iter().map(|r| r.push.retries)),
        chunk,
        if chunk_env.is_some() {
            "$KILN_PUSH_CHUNK_SIZE"
        } else {
            "default"
        }
    );
    println!(
        "kiln push.json (re-push, per run): uploaded_bytes {}, requests {}; nothing uploaded or moved: {}",
        join(runs.iter().map(|r| r.repush.uploaded_bytes)),
        join(runs.iter().map(|r| r.repush.requests)),
        runs.iter()
            .map(|r| yes_no(r.repush.unchanged))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The targets: throughput by median wall, re-push by median, RSS by the worst.
    let kiln_rate = kiln_bytes as f64 / 1e6 / median(&push_walls);
    let skopeo_rate = skopeo.then(|| image_bytes as f64 / 1e6 / median(&skopeo_walls));
    let repush_median = median(&repush_walls);
    let rss_max = push_rss
        .iter()
        .chain(&repush_rss)
        .copied()
        .fold(0.0, f64::max);
    let nothing_uploaded = runs.iter().all(|r| r.repush.unchanged);
    let mut targets: Vec<(String, String, Option<bool>)> = vec![(
        "kiln throughput ≥ skopeo's (median)".into(),
        match skopeo_rate {
            Some(s) => format!("{kiln_rate:.1} vs {s:.1} MB/s ({:.2}×)", kiln_rate / s),
            None => format!("{kiln_rate:.1} MB/s (skopeo not installed)"),
        },
        skopeo_rate.map(|s| kiln_rate >= s),
    )];
    targets.push((
        format!("re-push < {REPUSH_TARGET_S} s (median)"),
        format!("{repush_median:.3} s"),
        Some(repush_median < REPUSH_TARGET_S),
    ));
    targets.push((
        "re-push uploads nothing (push.json, every run)".into(),
        format!(
            "uploaded_bytes {}",
            join(runs.iter().map(|r| r.repush.uploaded_bytes))
        ),
        Some(nothing_uploaded),
    ));
    targets.push((
        format!("kiln push peak RSS < {RSS_TARGET_MIB} MiB (max of push and re-push)"),
        format!("{rss_max:.1} MiB"),
        Some(rss_max < RSS_TARGET_MIB),
    ));
    println!();
    println!("| target | figure | met |");
    println!("| --- | --- | --- |");
    for (t, f, met) in &targets {
        println!("| {t} | {f} | {} |", met.map_or("–", yes_no));
    }

    let report = json!({
        "size_mib": args.size_mib,
        "runs": args.runs,
        "image_bytes": image_bytes,
        "kiln_push_bytes": kiln_bytes,
        "kiln_push_objects": runs[0].push.objects,
        "chunk_size": chunk,
        "rows": rows.iter().map(|r| json!({
            "name": r.name,
            "wall_s": r.walls,
            "wall_s_min": r.wall_min,
            "wall_s_median": r.wall_median,
            "bytes": r.bytes,
            "mb_per_s_median": r.bytes.map(|b| b as f64 / 1e6 / r.wall_median),
            "peak_rss_mib": r.rss,
            "peak_rss_mib_median": r.rss_median,
            "peak_rss_mib_max": r.rss_max,
        })).collect::<Vec<_>>(),
        "kiln_push_json": runs.iter().map(|r| json!({
            "push": {"uploaded_bytes": r.push.uploaded_bytes, "requests": r.push.requests, "retries": r.push.retries},
            "repush": {"uploaded_bytes": r.repush.uploaded_bytes, "requests": r.repush.requests, "unchanged": r.repush.unchanged},
        })).collect::<Vec<_>>(),
        "targets": targets.iter().map(|(t, f, met)| json!({"target": t, "figure": f, "met": met})).collect::<Vec<_>>(),
    });
    let path = ProjectLayout::new(&repo)
        .kiln_dir()
        .join("bench")
        .join(file::PUSH);
    kiln_core::fsx::write_atomic(&path, &kiln_core::canonical::to_vec_pretty(&report)?)?;
    println!();
    println!("figures: {}", path.display());
    if args.dir.is_some() {
        println!("kept: {}", dir.display());
    }
    Ok(())
}

/// One run's measurements.
struct Run {
    push: Pushed,
    repush: Pushed,
    skopeo: Option<Measured>,
}

/// A `kiln push` and what its push.json says.
struct Pushed {
    m: Measured,
    /// Every blob and manifest the push names (image and evidence), by size.
    bytes: u64,
    /// How many blobs and manifests that is.
    objects: usize,
    uploaded_bytes: u64,
    requests: u64,
    retries: u64,
    /// Every blob and manifest `present`, every tag `unchanged`.
    unchanged: bool,
}

/// One line of the table.
struct Row {
    name: &'static str,
    walls: Vec<f64>,
    wall_min: f64,
    wall_median: f64,
    bytes: Option<u64>,
    rss: Vec<f64>,
    rss_median: f64,
    rss_max: f64,
}

impl Row {
    fn new(name: &'static str, walls: &[f64], bytes: Option<u64>, rss: &[f64]) -> Row {
        Row {
            name,
            walls: walls.to_vec(),
            wall_min: walls.iter().copied().fold(f64::INFINITY, f64::min),
            wall_median: median(walls),
            bytes,
            rss: rss.to_vec(),
            rss_median: median(rss),
            rss_max: rss.iter().copied().fold(0.0, f64::max),
        }
    }
}

fn secs(m: &Measured) -> f64 {
    m.wall.as_secs_f64()
}

fn rss_mib(m: &Measured) -> f64 {
    m.max_rss_kib as f64 / 1024.0
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn join(xs: impl Iterator<Item = u64>) -> String {
    xs.map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

/// Kiln's push of run `i` to a fresh registry, then its re-push.
#[allow(clippy::too_many_arguments)]
fn kiln_push_and_repush(
    registry_exe: &Path,
    dir: &Path,
    logs: &Path,
    exe: &Path,
    project: &Path,
    key: &Path,
    out: &OutputDir,
    i: u32,
) -> Result<(Pushed, Pushed)> {
    let reg = Registry::start(registry_exe, &dir.join(format!("registry-kiln-{i}")))?;
    let reference = format!("{}/bench/kiln", reg.addr);
    let push_once = |name: &str| -> Result<Pushed> {
        let report = out.file(file::PUSH);
        let _ = std::fs::remove_file(&report);
        let mut c = kiln_core::process::command(exe);
        c.arg("-C")
            .arg(project)
            .arg("push")
            .arg(&reference)
            .args(["--insecure-http", "--json", "--key"])
            .arg(key);
        // SAFETY: sync(2) has no preconditions.
        unsafe { libc::sync() };
        let m = run_logged(c, &logs.join(format!("{name}-{i}.log")))
            .map_err(|e| e.context(reg.logs()))?;
        let text =
            std::fs::read(&report).with_context(|| format!("reading {}", report.display()))?;
        let v: Value = serde_json::from_slice(&text)
            .with_context(|| format!("parsing {}", report.display()))?;
        let num = |k: &str| v[k].as_u64().unwrap_or(0);
        let entries = || {
            v["blobs"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(v["manifests"].as_array().into_iter().flatten())
        };
        Ok(Pushed {
            m,
            bytes: entries().filter_map(|e| e["size"].as_u64()).sum(),
            objects: entries().count(),
            uploaded_bytes: num("uploaded_bytes"),
            requests: num("requests"),
            retries: num("retries"),
            unchanged: entries().all(|e| e["outcome"] == "present")
                && v["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|t| t["outcome"] == "unchanged")
                && num("uploaded_bytes") == 0,
        })
    };
    let first = push_once("push")?;
    let repush = push_once("repush")?;
    Ok((first, repush))
}

/// skopeo's copy of the image of `out` to a fresh registry.
fn skopeo_copy(
    registry_exe: &Path,
    dir: &Path,
    logs: &Path,
    out: &OutputDir,
    i: u32,
) -> Result<Measured> {
    let reg = Registry::start(registry_exe, &dir.join(format!("registry-skopeo-{i}")))?;
    let mut src = std::ffi::OsString::from("oci:");
    src.push(out.oci());
    src.push(format!(":{TAG}"));
    let mut c = kiln_core::process::command("skopeo");
    c.args(["copy", "--dest-tls-verify=false", "--preserve-digests"])
        .arg(src)
        .arg(format!("docker://{}/bench/skopeo:{TAG}", reg.addr));
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    run_logged(c, &logs.join(format!("skopeo-{i}.log"))).map_err(|e| e.context(reg.logs()))
}

/// Bytes and count of the manifest, config and layers of the image tagged `tag` in the
/// layout `oci`: what skopeo copies.
fn image_size(oci: &Path, tag: &str) -> Result<(u64, usize)> {
    let read = |p: PathBuf| -> Result<Value> {
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", p.display()))
    };
    let blob = |d: &str| oci.join("blobs").join(d.replacen(':', "/", 1));
    let index = read(oci.join("index.json"))?;
    let desc = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .with_context(|| format!("{}: no manifest tagged {tag}", oci.display()))?;
    let digest = desc["digest"].as_str().context("manifest digest")?;
    let manifest = read(blob(digest))?;
    let mut total = desc["size"].as_u64().context("manifest size")?;
    total += manifest["config"]["size"].as_u64().context("config size")?;
    let mut objects = 2;
    for l in manifest["layers"].as_array().into_iter().flatten() {
        total += l["size"].as_u64().context("layer size")?;
        objects += 1;
    }
    Ok((total, objects))
}

/// Writes `len` incompressible bytes (xorshift64*, fixed seed) to `path`, streamed.
fn write_random(path: &Path, len: u64) -> Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut s: u64 = 0x6b69_6c6e_7075_7368;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for c in buf.chunks_exact_mut(8) {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            c.copy_from_slice(&s.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        w.write_all(&buf[..n])?;
        left -= n as u64;
    }
    w.flush()?;
    Ok(())
}

/// A `docker-registry serve` on 127.0.0.1 with its own storage and config (the push tests'
/// config: no auth, deletes enabled, errors-only log); killed, and its directory removed,
/// on drop.
pub(crate) struct Registry {
    pub(crate) addr: String,
    child: Child,
    dir: PathBuf,
}

impl Registry {
    pub(crate) fn start(exe: &Path, dir: &Path) -> Result<Registry> {
        let _ = std::fs::remove_dir_all(dir);
        let storage = dir.join("storage");
        kiln_core::fsx::create_dir_all(&storage)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let storage_str = storage
            .to_str()
            .context("registry storage path is not UTF-8")?;
        let config = format!(
            "version: 0.1\n\
             log:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: \"{}\"\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n",
            storage_str.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let config_path = dir.join("config.yml");
        kiln_core::fsx::write_atomic(&config_path, config.as_bytes())?;
        let log = kiln_core::fsx::create_log(&dir.join("registry.log"))?;
        let child = kiln_core::process::command(exe)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let mut reg = Registry {
            addr,
            child,
            dir: dir.to_path_buf(),
        };
        reg.wait_ready()?;
        Ok(reg)
    }

    fn logs(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
        format!("docker-registry on {}:\n{text}", self.addr)
    }

    /// Polls `GET /v2/` until it answers 200.
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "docker-registry exited ({status}) before it answered\n{}",
                    self.logs()
                );
            }
            if get_status(&self.addr, "/v2/").ok() == Some(200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("docker-registry not ready after 20 s\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The status of one `GET path` on `addr` (a fresh connection, `Connection: close`).
fn get_status(addr: &str, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut line = String::new();
    BufReader::new(s.take(4096)).read_line(&mut line)?;
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))
}
