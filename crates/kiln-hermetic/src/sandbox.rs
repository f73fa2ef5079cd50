use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// How the build process is isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sandbox {
    /// A new network namespace whose only interface is `lo`: nothing outside the
    /// process tree can be reached, not even the host's own 127.0.0.1.
    Netns,
    /// No isolation. Only on explicit request (`--sandbox=none`), and recorded in every
    /// output so a verifier can refuse such a build.
    None,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the kernel refused to create a network namespace")]
    Refused { source: io::Error },
    /// A [`crate::RootedSandbox`]'s root does not exist or is not a directory.
    #[error("sandbox root {}", path.display())]
    Root {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A [`crate::Bind`] that cannot be made: its host path is missing, or its `inside`
    /// path is not one the sandbox can mount at.
    #[error("sandbox bind {} at {}", host.display(), inside.display())]
    Bind {
        host: PathBuf,
        inside: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The rooted sandbox's working directory does not exist inside it.
    #[error("sandbox working directory {}", path.display())]
    Workdir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The program to run is not an executable file inside the rooted sandbox.
    #[error("program {} inside the sandbox root {}", program.display(), root.display())]
    Program {
        program: PathBuf,
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The kernel refused one step of building the rooted sandbox: `call` is the system
    /// call, `about` what it was applied to, `source` the errno.
    #[error("rooted sandbox {}: {call} {about}", root.display())]
    RootRefused {
        root: PathBuf,
        call: &'static str,
        about: String,
        /// The fix for this step and errno (the hint).
        fix: String,
        #[source]
        source: io::Error,
    },
}

impl kiln_core::Hint for SandboxError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            SandboxError::Refused { .. } => NETNS_FIX.into(),
            SandboxError::Root { .. } => "point the sandbox at the unpacked toolchain root, a directory holding usr/ (and the bin, lib, lib64, sbin symlinks)".into(),
            SandboxError::Bind { .. } => "bind an existing host path at an absolute, normalized path outside /proc that passes through no symlink; inside a read-only tree (the root, a read-only bind) the mountpoint must already exist".into(),
            SandboxError::Workdir { .. } => "pick a working directory the root provides, or bind a host directory there".into(),
            SandboxError::Program { .. } => "name the program by its absolute path inside the root (e.g. /usr/local/bin/cargo); the root or a bind must provide it as an executable file".into(),
            SandboxError::RootRefused { fix, .. } => fix.clone(),
        })
    }
}

const NETNS_FIX: &str = "run as root (e.g. via sudo), allow user namespaces, or pass --sandbox=none to build without isolation (recorded in the outputs); kiln cuts the build off the network with a network namespace, which as a non-root user needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0)";

/// `--sandbox` names no sandbox kiln has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown sandbox `{0}`: use `netns` (default) or `none`")]
pub struct UnknownSandbox(pub String);

impl std::str::FromStr for Sandbox {
    type Err = UnknownSandbox;
    fn from_str(s: &str) -> Result<Self, UnknownSandbox> {
        match s {
            "netns" => Ok(Sandbox::Netns),
            "none" => Ok(Sandbox::None),
            _ => Err(UnknownSandbox(s.to_string())),
        }
    }
}

impl std::fmt::Display for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sandbox::Netns => "netns",
            Sandbox::None => "none",
        })
    }
}

impl Sandbox {
    /// Arranges for `cmd` to start inside the sandbox, with `umask 022` in every mode.
    pub fn apply(self, cmd: &mut Command) {
        // Everything the child needs is computed here, before fork: between fork and exec
        // only async-signal-safe calls are allowed (no allocation).
        // SAFETY: geteuid/getegid have no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        // SAFETY: as above.
        let gid = unsafe { libc::getegid() };
        let uid_map = format!("0 {uid} 1\n").into_bytes();
        let gid_map = format!("0 {gid} 1\n").into_bytes();
        let netns = self == Sandbox::Netns;
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // system calls (umask, unshare, open/write/close, socket/ioctl) on data computed
        // before the fork; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                libc::umask(0o022);
                if netns {
                    enter_netns(uid, &uid_map, &gid_map)?;
                }
                Ok(())
            });
        }
    }

    /// Checks that the sandbox can be created here, before any work is done.
    pub fn check(self) -> Result<(), SandboxError> {
        if self == Sandbox::None {
            return Ok(());
        }
        let mut cmd = kiln_core::process::command("/bin/sh");
        cmd.args(["-c", "exit 0"]);
        self.apply(&mut cmd);
        match cmd.status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(SandboxError::Refused {
                source: io::Error::other(format!("probe exited with {s}")),
            }),
            Err(source) => Err(SandboxError::Refused { source }),
        }
    }
}

/// Runs in the child between fork and exec.
fn enter_netns(uid: libc::uid_t, uid_map: &[u8], gid_map: &[u8]) -> io::Result<()> {
    // SAFETY: plain system calls on valid, NUL-terminated paths and live buffers, in the
    // single-threaded child; their failures are returned as io::Error.
    unsafe {
        if uid == 0 {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
        } else {
            // Without root, a user namespace grants the capability to make a network
            // namespace; map our own uid/gid to root inside it.
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            write_proc(c"/proc/self/setgroups", b"deny")?;
            write_proc(c"/proc/self/uid_map", uid_map)?;
            write_proc(c"/proc/self/gid_map", gid_map)?;
        }
        loopback_up()
    }
}

pub(crate) unsafe fn write_proc(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is a valid C string and `data` a live slice; the fd is closed on
    // every path.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = io::Error::last_os_error();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(err);
        }
        Ok(())
    }
}

/// Brings `lo` up in the new namespace, so that software which talks to itself over
/// 127.0.0.1 (test servers in build scripts) still works; nothing beyond it exists.
pub(crate) unsafe fn loopback_up() -> io::Result<()> {
    // SAFETY: the ifreq is zero-initialized and sized for SIOCGIFFLAGS/SIOCSIFFLAGS, the
    // socket is closed on every path.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut r = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
        if r == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            r = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        }
        let err = io::Error::last_os_error();
        libc::close(sock);
        if r != 0 {
            return Err(err);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// The cut itself: a listener on the host's loopback is reachable without the
    /// sandbox and unreachable inside it.
    #[test]
    fn netns_cuts_off_host_loopback() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let probe = |sb: Sandbox| {
            let mut cmd = kiln_core::process::command("/bin/bash");
            cmd.args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")]);
            sb.apply(&mut cmd);
            cmd.stderr(std::process::Stdio::null());
            cmd.status().unwrap().success()
        };
        Sandbox::Netns
            .check()
            .expect("this machine must allow network namespaces");
        assert!(
            probe(Sandbox::None),
            "connection outside the sandbox failed"
        );
        assert!(
            !probe(Sandbox::Netns),
            "connection inside the sandbox succeeded"
        );
    }

    #[test]
    fn umask_is_022() {
        for sb in [Sandbox::None, Sandbox::Netns] {
            let mut cmd = kiln_core::process::command("/bin/sh");
            cmd.args(["-c", "umask"]);
            sb.apply(&mut cmd);
            let out = cmd.output().unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0022");
        }
    }

    #[test]
    fn only_loopback_inside_and_it_is_up() {
        // /proc/net/dev is per network namespace (unlike /sys/class/net, which shows the
        // namespace sysfs was mounted in). A loopback self-connection proves `lo` is up.
        let script = "cat /proc/net/dev; python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); s.listen(); socket.create_connection(s.getsockname()); print(\"LOOPBACK-OK\")'";
        let mut cmd = kiln_core::process::command("/bin/sh");
        cmd.args(["-c", script]);
        Sandbox::Netns.apply(&mut cmd);
        let out = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
        let ifaces: Vec<&str> = out
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .filter(|l| !l.is_empty() && *l != "LOOPBACK-OK")
            .collect();
        assert_eq!(ifaces, ["lo"], "{out}");
        assert!(out.contains("LOOPBACK-OK"), "{out}");
    }
}
