//! `cargo xtask bench image`: how fast and how lean kiln's image writer is, next to the
//! obvious alternatives, on the same deterministic input tree.
//!
//! Candidates, each run as its own child process so its peak RSS can be read from
//! `wait4(2)` (on Linux that figure covers the child and the descendants it waited for,
//! i.e. the largest single process of a pipeline, not their sum):
//! 1. kiln: this executable re-invoked as `xtask bench image-pack --src DIR --out DIR`
//!    (a gzip layer plus an OCI layout via kiln-oci);
//! 2. `tar --sort=name ... | gzip -n -6` (the reproducible-tar baseline, single-threaded);
//! 3. buildah + skopeo (`from scratch`/`copy`/`commit --timestamp 0 --format oci`, then
//!    `skopeo copy --dest-compress`), when both are installed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::on_path;
use anyhow::{Context, Result, bail};

/// Arguments of `bench image`.
#[derive(clap::Args, Debug, Clone)]
pub struct ImageBenchArgs {
    /// Approximate size of the generated input tree, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub size_mib: u64,
    /// Where to put the input tree and outputs (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the generated tree and outputs instead of deleting them.
    #[arg(long)]
    pub keep: bool,
}

/// Arguments of the hidden `bench image-pack` subcommand (the kiln candidate, measured as
/// its own process).
#[derive(clap::Args, Debug, Clone)]
pub struct ImagePackArgs {
    /// Directory whose contents become the image's single layer.
    #[arg(long)]
    pub src: PathBuf,
    /// OCI layout directory to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// The arguments with which [`image`] re-invokes the current executable to run
/// [`image_pack`]; the CLI must route `bench image-pack --src S --out O` there.
pub const IMAGE_PACK_ARGV: [&str; 2] = ["bench", "image-pack"];

/// Runs the image benchmark and prints a table of wall time, throughput and peak RSS.
pub fn image(args: &ImageBenchArgs) -> Result<()> {
    let mut tmp: Option<tempfile::TempDir> = None;
    let root = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            let t = tempfile::Builder::new().prefix("kiln-bench-").tempdir()?;
            let p = t.path().to_path_buf();
            tmp = Some(t);
            p
        }
    };
    let src = root.join("src");
    if src.exists() {
        std::fs::remove_dir_all(&src)?;
    }
    let t = Instant::now();
    let (files, bytes) = generate_tree(&src, args.size_mib << 20)?;
    let mib = bytes as f64 / (1 << 20) as f64;
    println!(
        "input: {files} files, {mib:.1} MiB in {} (generated in {:.1}s)",
        src.display(),
        t.elapsed().as_secs_f64()
    );
    println!(
        "{:<22} {:>9} {:>9} {:>13} {:>12}",
        "candidate", "wall s", "MiB/s", "peak RSS MiB", "output MiB"
    );

    let mut results = Vec::new();

    // 1. kiln, as its own process.
    let kiln_out = root.join("kiln-layout");
    let _ = std::fs::remove_dir_all(&kiln_out);
    let exe = std::env::current_exe().context("locating the current executable")?;
    let mut cmd = kiln_core::process::command(exe);
    cmd.args(IMAGE_PACK_ARGV)
        .arg("--src")
        .arg(&src)
        .arg("--out")
        .arg(&kiln_out);
    results.push(("kiln-oci", run_measured(cmd)?, dir_size(&kiln_out)?));

    // 2. tar | gzip.
    let tar_out = root.join("tar-gzip.tar.gz");
    let mut cmd = kiln_core::process::command("sh");
    cmd.arg("-c")
        .arg(
            "set -e; tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
             -c -C \"$1\" . | gzip -n -6 > \"$2\"",
        )
        .arg("sh")
        .arg(&src)
        .arg(&tar_out);
    results.push(("tar | gzip -6", run_measured(cmd)?, file_size(&tar_out)?));

    // 3. buildah + skopeo.
    if on_path("buildah") && on_path("skopeo") {
        let b = root.join("buildah");
        let _ = std::fs::remove_dir_all(&b);
        std::fs::create_dir_all(&b)?;
        let script = r#"set -e
B="$1"; SRC="$2"
bah() { buildah --root "$B/root" --runroot "$B/runroot" --storage-driver vfs "$@"; }
ctr=$(bah from scratch)
bah copy "$ctr" "$SRC" / >/dev/null
bah commit --quiet --timestamp 0 --format oci "$ctr" "oci:$B/raw:bench" >/dev/null
skopeo copy --quiet --dest-compress "oci:$B/raw:bench" "oci:$B/out:bench"
bah rm "$ctr" >/dev/null
"#;
        let mut cmd = kiln_core::process::command("sh");
        cmd.arg("-c").arg(script).arg("sh").arg(&b).arg(&src);
        results.push((
            "buildah + skopeo",
            run_measured(cmd)?,
            dir_size(&b.join("out"))?,
        ));
    } else {
        println!("(buildah and/or skopeo not installed: skipping the buildah candidate)");
    }

    for (name, m, out) in &results {
        let secs = m.wall.as_secs_f64();
        println!(
            "{name:<22} {secs:>9.2} {:>9.1} {:>13.1} {:>12.1}",
            mib / secs,
            m.max_rss_kib as f64 / 1024.0,
            *out as f64 / (1 << 20) as f64
        );
    }

    if args.keep {
        println!("kept: {}", root.display());
        if let Some(t) = tmp.take() {
            let _ = t.keep();
        }
    } else if args.dir.is_some() {
        for p in ["src", "kiln-layout", "tar-gzip.tar.gz", "buildah"] {
            let p = root.join(p);
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
    Ok(())
}

/// The kiln candidate: packs `src` into one gzip layer of an OCI layout at `out`
/// (SOURCE_DATE_EPOCH 0, host platform), and prints the layer digest.
pub fn image_pack(src: &Path, out: &Path) -> Result<()> {
    let mut layer = kiln_oci::Layer::new();
    add_tree(&mut layer, src, "")?;
    let image = kiln_oci::Image {
        sde: 0,
        base: None,
        // No path in the history: the bench's manifest digest is the same in any directory.
        layers: vec![(layer, "kiln bench".to_string())],
        config: kiln_oci::ImageConfig::new(kiln_oci::Platform::host()),
    };
    let built = image.write_layout(out, "bench")?;
    println!(
        "kiln: layer {} ({} bytes), manifest {}",
        built.layers[0].digest, built.layers[0].size, built.manifest.digest
    );
    Ok(())
}

fn add_tree(layer: &mut kiln_oci::Layer, dir: &Path, prefix: &str) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        let name = e
            .file_name()
            .into_string()
            .map_err(|n| anyhow::anyhow!("non-UTF-8 name {n:?}"))?;
        let p = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let ft = e.file_type()?;
        if ft.is_dir() {
            layer.add_dir(&p, 0o755)?;
            add_tree(layer, &e.path(), &p)?;
        } else if ft.is_file() {
            layer.add_file(&p, e.path(), None)?;
        } else if ft.is_symlink() {
            let t = std::fs::read_link(e.path())?;
            layer.add_symlink(&p, &t.to_string_lossy())?;
        }
    }
    Ok(())
}

/// What [`run_measured`] observed of one child process (shared with `bench sbom` and
/// `bench repro`).
pub(crate) struct Measured {
    pub(crate) wall: Duration,
    /// `ru_maxrss` of the child and the descendants it waited for, in KiB.
    pub(crate) max_rss_kib: i64,
    /// Exit code (-1 when killed by a signal).
    pub(crate) code: i32,
}

/// A bench's work directory: `--dir` (created, kept), else a temporary one removed when
/// this is dropped. Keep it alive for as long as the directory is used.
pub(crate) struct WorkDir {
    pub(crate) path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl WorkDir {
    pub(crate) fn new(dir: Option<&Path>, prefix: &str) -> Result<WorkDir> {
        Ok(match dir {
            Some(d) => {
                kiln_core::fsx::create_dir_all(d)
                    .with_context(|| format!("creating {}", d.display()))?;
                WorkDir {
                    path: d.to_path_buf(),
                    _tmp: None,
                }
            }
            None => {
                let t = tempfile::Builder::new().prefix(prefix).tempdir()?;
                WorkDir {
                    path: t.path().to_path_buf(),
                    _tmp: Some(t),
                }
            }
        })
    }
}

/// The median of `xs` (NaN when empty).
pub(crate) fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs `cmd` measured, its stdout and stderr into `log`; on failure the log's tail is in
/// the error.
pub(crate) fn run_logged(mut cmd: Command, log: &Path) -> Result<Measured> {
    let f = kiln_core::fsx::create_log(log)?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f);
    run_measured(cmd).map_err(|e| e.context(log_tail(log)))
}

/// The last 30 lines of `log`, headed by its path: what a failed step's error quotes.
pub(crate) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(30);
    format!("{}:\n{}", log.display(), lines[from..].join("\n"))
}

/// Runs `cmd` to completion, reading its peak RSS with `wait4(2)`; fails unless it exits 0.
pub(crate) fn run_measured(cmd: Command) -> Result<Measured> {
    run_measured_accepting(cmd, &[0])
}

/// [`run_measured`], accepting any exit code in `ok` (diff tools exit 1 on "different").
pub(crate) fn run_measured_accepting(mut cmd: Command, ok: &[i32]) -> Result<Measured> {
    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage (integers only) is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 fills `status` and `ru` for our own child, which std has not reaped
    // (we never call `Child::wait`).
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = start.elapsed();
    if r != pid {
        bail!("wait4 on {cmd:?}: {}", std::io::Error::last_os_error());
    }
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    if !ok.contains(&code) {
        bail!("{cmd:?} failed (wait status {status:#x})");
    }
    Ok(Measured {
        wall,
        max_rss_kib: ru.ru_maxrss,
        code,
    })
}

fn file_size(p: &Path) -> Result<u64> {
    Ok(std::fs::metadata(p)
        .with_context(|| format!("stat {}", p.display()))?
        .len())
}

fn dir_size(p: &Path) -> Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(p).with_context(|| format!("listing {}", p.display()))? {
        let e = e?;
        total += if e.file_type()?.is_dir() {
            dir_size(&e.path())?
        } else {
            e.metadata()?.len()
        };
    }
    Ok(total)
}

/// Seeded xorshift64*: the tree is the same on every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writes `len` bytes that compress roughly like executables: 4 KiB blocks of random
/// bytes (code/data), symbol-table-like text, and sparse structured zeros.
fn write_content(w: &mut impl Write, rng: &mut Rng, mut len: u64) -> Result<()> {
    let mut block = [0u8; 4096];
    while len > 0 {
        let n = len.min(block.len() as u64) as usize;
        match rng.below(20) {
            0..=6 => {
                for c in block[..n].chunks_mut(8) {
                    let r = rng.next().to_le_bytes();
                    c.copy_from_slice(&r[..c.len()]);
                }
            }
            7..=15 => {
                let mut s = Vec::with_capacity(n + 64);
                while s.len() < n {
                    let id = rng.below(5000);
                    write!(
                        s,
                        "_ZN4kiln{}module{}fn_{id}17h{:016x}E\0",
                        id % 13,
                        id % 7,
                        id * 2654435761
                    )?;
                }
                block[..n].copy_from_slice(&s[..n]);
            }
            _ => {
                block[..n].fill(0);
                for i in (0..n).step_by(64) {
                    block[i] = rng.below(256) as u8;
                }
            }
        }
        w.write_all(&block[..n])?;
        len -= n as u64;
    }
    Ok(())
}

/// Generates about `total` bytes: 4 large files holding ~30%, the rest in small files
/// (1–64 KiB) spread over nested directories. Returns (file count, bytes).
fn generate_tree(root: &Path, total: u64) -> Result<(u64, u64)> {
    let mut rng = Rng(0x6b69_6c6e_6265_6e63);
    let big_total = total * 3 / 10;
    let mut written = 0u64;
    let mut files = 0u64;
    std::fs::create_dir_all(root.join("opt/big"))?;
    for i in 0..4 {
        let p = root.join(format!("opt/big/blob{i}.bin"));
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&p)?);
        write_content(&mut w, &mut rng, big_total / 4)?;
        w.flush()?;
        written += big_total / 4;
        files += 1;
    }
    while written < total {
        let dir = root.join(format!(
            "usr/lib/pkg{:02}/sub{}/d{}",
            rng.below(24),
            rng.below(6),
            rng.below(4)
        ));
        std::fs::create_dir_all(&dir)?;
        let len = (1024 + rng.below(63 * 1024)).min(total - written);
        let p = dir.join(format!("f{files:06}.so"));
        let mut w = BufWriter::new(File::create(&p)?);
        write_content(&mut w, &mut rng, len)?;
        w.flush()?;
        if rng.below(10) == 0 {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        }
        written += len;
        files += 1;
    }
    Ok((files, written))
}
