//! Real OCI registries for the push tests, and a proxy that injects faults between a client
//! and one — everything on 127.0.0.1.
//!
//! - [`Registry`]: a `docker-registry` (CNCF distribution 2.8) with its own storage and
//!   config, optionally behind htpasswd basic auth or distribution's token auth (with a
//!   token service of ours next to it); killed on drop. It has no referrers API
//!   (`GET /v2/<name>/referrers/<digest>` is 404): it exercises the tag-schema fallback.
//! - [`ReferrersRegistry`]: a `ferro-oci-server` (crates.io; OCI Distribution Spec v1.1)
//!   that has the referrers API and answers `OCI-Subject`; own storage, killed on drop.
//! - [`FaultProxy`]: an HTTP/1.1 proxy in front of a registry that follows a script of
//!   [`Fault`]s (answer with a status, drop the connection, stall, truncate a body) and logs
//!   every request it saw, so a test can assert what a client retried or never re-sent.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The `service` a token-auth [`Registry`] names in its challenge (the JWT's `aud`).
pub const TOKEN_SERVICE: &str = "kiln-test";
/// The `issuer` a token-auth [`Registry`] trusts (the JWT's `iss`).
pub const TOKEN_ISSUER: &str = "kiln-test-issuer";

/// Polls `GET /v2/` on `addr` (with `authorization`) until it answers `ready`: `Err` with
/// why not if the server `what` exits first or `deadline` passes (the caller adds its
/// logs). Shared by every registry the tests start.
fn wait_until_answers(
    child: &mut Child,
    what: &str,
    addr: &str,
    authorization: Option<&str>,
    ready: u16,
    deadline: Instant,
) -> Result<(), String> {
    let mut last;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!(
                "{what} exited ({status}) before it answered on {addr}"
            ));
        }
        match get_status(addr, "/v2/", authorization) {
            Ok(s) if s == ready => return Ok(()),
            Ok(s) => last = format!("GET /v2/ answered {s}"),
            Err(e) => last = format!("GET /v2/: {e}"),
        }
        if Instant::now() > deadline {
            return Err(format!("{what} on {addr} not ready after 20 s ({last})"));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A running `docker-registry serve` on `127.0.0.1:PORT`, storing into a temp directory.
pub struct Registry {
    /// `127.0.0.1:PORT`, e.g. for `docker://{addr}/name:tag`.
    pub addr: String,
    /// `(user, password)` when started with [`Registry::start_with_auth`] or
    /// [`Registry::start_with_token_auth`].
    pub auth: Option<(String, String)>,
    /// `http://127.0.0.1:PORT/token`, the realm of the token service, when started with
    /// [`Registry::start_with_token_auth`].
    pub token_realm: Option<String>,
    child: Child,
    /// The token service (python), when there is one; killed on drop after the registry.
    token_server: Option<Child>,
    dir: tempfile::TempDir,
}

#[derive(Clone, Copy, PartialEq)]
enum AuthKind {
    Open,
    Htpasswd,
    Token,
}

impl Registry {
    /// An open registry (no auth).
    pub fn start() -> Registry {
        Self::spawn(AuthKind::Open, None)
    }

    /// A registry that wants HTTP basic auth for `user`/`password` on every request
    /// (htpasswd; distribution accepts only bcrypt hashes, made by Python's `crypt`).
    pub fn start_with_auth(user: &str, password: &str) -> Registry {
        Self::spawn(
            AuthKind::Htpasswd,
            Some((user.to_string(), password.to_string())),
        )
    }

    /// A registry with distribution's token authentication, as Docker Hub, GHCR and
    /// Harbor do it: every request without a valid `Authorization: Bearer` JWT gets a 401
    /// with `WWW-Authenticate: Bearer realm="{token_realm}",service="kiln-test"` (and the
    /// `scope` it needs, `repository:NAME:pull[,push]`). The realm is a token service of
    /// ours on `127.0.0.1` (Python's `http.server`, [`TOKEN_SERVER_PY`]) that wants HTTP
    /// basic `user`/`password` (else 401) and answers `{"token", "access_token",
    /// "expires_in": 300}`: an ES256 JWT the registry verifies through its `x5c`
    /// certificate (a self-signed CA made at start, the registry's `rootcertbundle`),
    /// with `iss` [`TOKEN_ISSUER`], `aud` [`TOKEN_SERVICE`], `sub` the user, and `access`
    /// granting the pull and push each `scope` asked for. The start checks the round trip
    /// (a token, then `GET /v2/` with it answers 200). See [`Registry::token_requests`].
    pub fn start_with_token_auth(user: &str, password: &str) -> Registry {
        Self::spawn(
            AuthKind::Token,
            Some((user.to_string(), password.to_string())),
        )
    }

    /// What the token service was asked since the start, in order: one JSON object per
    /// request, `{"method", "path", "scope": [..], "service": [..] | null, "user": name |
    /// null, "status", "granted": [..] (on 200), "error" (on 4xx)}`. Never a password.
    pub fn token_requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("token.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("token.log holds JSON lines"))
            .collect()
    }

    /// The registry's storage root (`docker/registry/v2/...` under it).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// What the registry wrote to stdout and stderr so far (errors only: log level error).
    pub fn logs(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let mut out = format!(
            "--- registry stdout\n{}\n--- registry stderr\n{}",
            read("stdout"),
            read("stderr")
        );
        if self.token_realm.is_some() {
            out.push_str(&format!(
                "\n--- token service stderr\n{}\n--- token service requests\n{}",
                read("token-server.stderr"),
                read("token.log")
            ));
        }
        out
    }

    fn spawn(kind: AuthKind, auth: Option<(String, String)>) -> Registry {
        let exe = super::tool("docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("kiln-registry-")
            .tempdir()
            .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n",
            yaml_str(&storage)
        );
        let mut token_server = None;
        let mut token_realm = None;
        match (kind, &auth) {
            (AuthKind::Htpasswd, Some((user, password))) => {
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{user}:{}\n", bcrypt(password))).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                    yaml_str(&htpasswd)
                ));
            }
            (AuthKind::Token, Some((user, password))) => {
                let (child, port) = start_token_server(dir.path(), user, password);
                token_server = Some(child);
                let realm = format!("http://127.0.0.1:{port}/token");
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {TOKEN_SERVICE}\n    \
                     issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    yaml_str(&dir.path().join("cert.pem"))
                ));
                token_realm = Some(realm);
            }
            (AuthKind::Open, None) => {}
            _ => unreachable!("credentials go with htpasswd or token auth"),
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = kiln_core::process::command(&exe)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        let mut reg = Registry {
            addr,
            auth,
            token_realm,
            child,
            token_server,
            dir,
        };
        reg.wait_ready(kind);
        if kind == AuthKind::Token {
            reg.check_token_round_trip();
        }
        reg
    }

    /// `Authorization: Basic` for the credentials, if any.
    fn basic(&self) -> Option<String> {
        self.auth
            .as_ref()
            .map(|(u, p)| format!("Basic {}", base64(format!("{u}:{p}").as_bytes())))
    }

    /// Polls `GET /v2/` (with the credentials, if any) until it answers 200 (401 with
    /// token auth: it wants a token, not the credentials).
    fn wait_ready(&mut self, kind: AuthKind) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let (authorization, ready) = match kind {
            AuthKind::Open => (None, 200),
            AuthKind::Htpasswd => (self.basic(), 200),
            AuthKind::Token => (None, 401),
        };
        if let Err(why) = wait_until_answers(
            &mut self.child,
            "docker-registry",
            &self.addr,
            authorization.as_deref(),
            ready,
            deadline,
        ) {
            panic!("{why}\n{}", self.logs());
        }
    }

    /// A token from the token service, then `GET /v2/` with it: 200, or a panic that says
    /// which half failed. Clears the token service's request log afterwards.
    fn check_token_round_trip(&self) {
        let realm = self.token_realm.as_deref().unwrap();
        let token_addr = realm
            .strip_prefix("http://")
            .and_then(|r| r.strip_suffix("/token"))
            .unwrap();
        let path = format!("/token?service={TOKEN_SERVICE}");
        let a = http_get(token_addr, &path, self.basic().as_deref())
            .unwrap_or_else(|e| panic!("token service {realm}: {e}\n{}", self.logs()));
        assert_eq!(
            a.status,
            200,
            "token service {realm} answered {}: {}\n{}",
            a.status,
            String::from_utf8_lossy(&a.body),
            self.logs()
        );
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        let token = v["token"]
            .as_str()
            .expect("the token service answers a token");
        let status = get_status(&self.addr, "/v2/", Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(
            status,
            200,
            "docker-registry on {} refused the token service's JWT (set `log: level: info` in \
             the config for why)\n{}",
            self.addr,
            self.logs()
        );
        let _ = std::fs::remove_file(self.dir.path().join("token.log"));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = &mut self.token_server {
            let _ = t.kill();
            let _ = t.wait();
        }
    }
}

/// Starts [`TOKEN_SERVER_PY`] in `dir` (the venv python, for `cryptography`) and waits
/// until it has written `cert.pem` and `port`: the child and its port. Its stdin is a pipe
/// it watches: should the test die without dropping the [`Registry`], it exits too.
fn start_token_server(dir: &Path, user: &str, password: &str) -> (Child, u16) {
    let script = dir.join("token-server.py");
    std::fs::write(&script, TOKEN_SERVER_PY).unwrap();
    let python = super::venv_python();
    let mut cmd: Command = kiln_core::process::command(&python);
    cmd.arg("-I")
        .arg(&script)
        .arg(dir)
        .args([user, password, TOKEN_ISSUER, TOKEN_SERVICE])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("token-server.stderr")).unwrap());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(port) = std::fs::read_to_string(dir.join("port")) {
            return (
                child,
                port.trim().parse().expect("the port file holds a port"),
            );
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the token service exited ({status}) before it listened\n{}",
                std::fs::read_to_string(dir.join("token-server.stderr")).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the token service did not listen within 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The token service of [`Registry::start_with_token_auth`]; what distribution 2.8's
/// `registry/auth/token` (token.go, accesscontroller.go) checks, it provides: `iss` equal
/// to the configured issuer, `aud` equal to the service, `exp` and `nbf` around now (60 s
/// of leeway), a signature, a signing key found through the header's `x5c` chain (verified
/// up to a `rootcertbundle` certificate; `kid` and `jwk` are the alternatives), `alg`
/// matching the key (ES256 for P-256, signature `r || s`), and for each access the request
/// needs, `{type, name, actions}` in `access`.
pub const TOKEN_SERVER_PY: &str = r#"# A token service for docker-registry's `auth: token` (distribution 2.8), for tests only.
#
# argv: DIR USER PASSWORD ISSUER SERVICE. Makes a P-256 key and a self-signed CA
# certificate for it (DIR/cert.pem, the registry's rootcertbundle), serves
# `GET /token?service=..&scope=..` on 127.0.0.1:<free port> and then writes the port to
# DIR/port. Callers authenticate with HTTP Basic USER/PASSWORD (else 401); the answer is
# an ES256 JWT whose `x5c` header holds the certificate (distribution verifies the chain
# to its rootcertbundle, then the signature with the leaf's key) and whose claims are
# iss=ISSUER, aud=SERVICE, sub=USER, exp/nbf/iat, jti and `access` granting the pull and
# push asked for in each `scope`. Every request is logged, one JSON line, to
# DIR/token.log (never a password). Exits when its stdin closes (the test is gone).
import base64
import datetime
import hmac
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

DIR, USER, PASSWORD, ISSUER, SERVICE = sys.argv[1:6]
GRANTABLE = ("pull", "push")
LIFETIME = 300


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write_atomically(name, data):
    tmp = os.path.join(DIR, name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, os.path.join(DIR, name))


key = ec.generate_private_key(ec.SECP256R1())
subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kiln-test token signer")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (
    x509.CertificateBuilder()
    .subject_name(subject)
    .issuer_name(subject)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(days=1))
    .not_valid_after(now + datetime.timedelta(days=7))
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .sign(key, hashes.SHA256())
)
write_atomically("cert.pem", cert.public_bytes(serialization.Encoding.PEM))
X5C = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
log_lock = threading.Lock()


def jwt(claims):
    header = {"typ": "JWT", "alg": "ES256", "x5c": X5C}
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    # JWS ES256: the raw 32-byte big-endian r and s, not DER.
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def access(scopes):
    """`repository:NAME:ACTIONS` scopes (space-separated, repeatable) -> granted access."""
    granted = {}
    for param in scopes:
        for scope in param.split():
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1]
            if kind != "repository":
                continue
            acts = granted.setdefault(name, [])
            for a in actions.split(","):
                if a in GRANTABLE and a not in acts:
                    acts.append(a)
    return [{"type": "repository", "name": n, "actions": a} for n, a in granted.items()]


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "kiln-test-token-server"

    def log_message(self, *args):
        pass

    def answer(self, status, body, entry, headers=()):
        # Logged before answering: a client that has its answer finds it in the log.
        entry["status"] = status
        with log_lock, open(os.path.join(DIR, "token.log"), "a") as f:
            f.write(json.dumps(entry) + "\n")
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def user(self):
        """The Basic user name sent (or None), and whether the credentials are right."""
        h = self.headers.get("Authorization", "")
        scheme, _, value = h.partition(" ")
        if scheme.lower() != "basic":
            return None, False
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except Exception:
            return None, False
        ok = hmac.compare_digest(user.encode(), USER.encode()) and hmac.compare_digest(
            password.encode(), PASSWORD.encode()
        )
        return user, ok

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        scopes = query.get("scope", [])
        user, ok = self.user()
        entry = {"method": "GET", "path": url.path, "scope": scopes,
                 "service": query.get("service"), "user": user}
        if url.path != "/token":
            return self.answer(404, {"errors": [{"code": "NOT_FOUND"}]}, entry)
        if not ok:
            entry["error"] = "no credentials" if user is None else "wrong credentials"
            return self.answer(
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                entry,
                [("WWW-Authenticate", 'Basic realm="kiln-test token service"')],
            )
        services = query.get("service", [SERVICE])
        if services != [SERVICE]:
            entry["error"] = "unknown service"
            return self.answer(400, {"errors": [{"code": "UNSUPPORTED", "message": "unknown service"}]}, entry)
        issued = int(time.time())
        granted = access(scopes)
        claims = {
            "iss": ISSUER,
            "sub": user,
            "aud": SERVICE,
            "exp": issued + LIFETIME,
            "nbf": issued - 10,
            "iat": issued,
            "jti": uuid.uuid4().hex,
            "access": granted,
        }
        token = jwt(claims)
        entry["granted"] = granted
        issued_at = datetime.datetime.fromtimestamp(issued, datetime.timezone.utc)
        self.answer(200, {"token": token, "access_token": token, "expires_in": LIFETIME,
                          "issued_at": issued_at.strftime("%Y-%m-%dT%H:%M:%SZ")}, entry)

    def do_POST(self):
        # The OAuth2 form flow (refresh tokens) is not offered: clients fall back to GET.
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        entry = {"method": "POST", "path": urllib.parse.urlsplit(self.path).path, "user": None}
        self.answer(405, {"errors": [{"code": "UNSUPPORTED"}]}, entry)


def watch_stdin():
    try:
        sys.stdin.buffer.read()
    finally:
        os._exit(0)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
threading.Thread(target=watch_stdin, daemon=True).start()
write_atomically("port", str(server.server_address[1]).encode())
server.serve_forever()
"#;

/// A path as a double-quoted YAML scalar.
fn yaml_str(p: &Path) -> String {
    let s = p.to_str().expect("temp paths are UTF-8");
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A bcrypt hash of `password` at the lowest cost (the registry checks it on every request).
fn bcrypt(password: &str) -> String {
    let out = super::run_ok(
        kiln_core::process::command(super::tool("python3"))
            .args([
                "-W",
                "ignore",
                "-c",
                "import crypt, sys\n\
                 print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))",
            ])
            .arg(password),
    );
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        hash.starts_with("$2"),
        "python3's crypt made no bcrypt hash (got {hash:?}); Python 3.11/3.12 with libxcrypt is needed"
    );
    hash
}

/// Standard base64 with padding (for `Authorization: Basic`).
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One plain HTTP answer: the status, the headers in order, the body as sent (not
/// de-chunked).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One `GET path` on `addr` (a fresh connection, `Connection: close`, read to its end).
pub fn http_get(addr: &str, path: &str, authorization: Option<&str>) -> io::Result<Answer> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut r = BufReader::new(s);
    let head = read_head(&mut r)?.ok_or(io::ErrorKind::UnexpectedEof)?;
    let mut body = Vec::new();
    r.read_to_end(&mut body)?;
    Ok(Answer {
        status: parse_status_line(&head.start)?,
        headers: head.headers,
        body,
    })
}

/// The status of one `GET path` on `addr` (a fresh connection, `Connection: close`).
pub fn get_status(addr: &str, path: &str, authorization: Option<&str>) -> io::Result<u16> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    parse_status_line(&line)
}

// ---------------------------------------------------------------------------------------
// A registry with the referrers API.

/// A running `ferro-oci-server` on `127.0.0.1:PORT`: an OCI Distribution Spec v1.1 registry
/// with the referrers API. `GET /v2/<name>/referrers/<digest>` answers an image index of the
/// manifests whose `subject` is that digest (`?artifactType=` filters it and says so in
/// `OCI-Filters-Applied`), and a manifest PUT with a `subject` answers `OCI-Subject`. Blobs
/// and its metadata (`metadata.json`) go to a temp directory; no auth.
///
/// From crates.io: `cargo xtask test` runs `cargo install --locked ferro-oci-server@1.0.0`
/// into `target/kiln/tools/cargo` (`CARGO_TOOLS` in `xtask/src/test_env.rs`).
pub struct ReferrersRegistry {
    /// `127.0.0.1:PORT`, e.g. for `docker://{addr}/name:tag`.
    pub addr: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl ReferrersRegistry {
    /// An open registry (no auth), answering `GET /v2/` with 200 when this returns.
    pub fn start() -> ReferrersRegistry {
        let exe = cargo_tool("ferro-oci-server");
        let dir = tempfile::Builder::new()
            .prefix("kiln-referrers-registry-")
            .tempdir()
            .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        // Its whole configuration is the environment: listen address, storage, log filter.
        let child = kiln_core::process::command(&exe)
            .env("FERRO_OCI_LISTEN", &addr)
            .env("FERRO_OCI_STORAGE_DIR", &storage)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        let mut reg = ReferrersRegistry { addr, child, dir };
        reg.wait_ready();
        reg
    }

    /// The registry's storage directory (blobs, `metadata.json`).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// What the registry wrote to stdout and stderr so far (errors only: `RUST_LOG=error`).
    pub fn logs(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "--- ferro-oci-server stdout\n{}\n--- ferro-oci-server stderr\n{}",
            read("stdout"),
            read("stderr")
        )
    }

    /// Polls `GET /v2/` until it answers 200.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        if let Err(why) = wait_until_answers(
            &mut self.child,
            "ferro-oci-server",
            &self.addr,
            None,
            200,
            deadline,
        ) {
            panic!("{why}\n{}", self.logs());
        }
    }
}

impl Drop for ReferrersRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `cargo install`ed test tool: in `$KILN_TOOLS_CARGO_BIN` or `target/kiln/tools/cargo/bin`
/// (where `cargo xtask test` installs its `CARGO_TOOLS`), else found like any tool.
fn cargo_tool(name: &str) -> PathBuf {
    let dirs = [
        std::env::var_os("KILN_TOOLS_CARGO_BIN").map(PathBuf::from),
        Some(super::repo().join("target/kiln/tools/cargo/bin")),
    ];
    dirs.into_iter()
        .flatten()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| super::tool(name))
}

// ---------------------------------------------------------------------------------------
// The fault-injecting proxy.

/// One scripted fault: on the `nth` (1-based) request whose method is `method` (any when
/// `None`) and whose request target (path and query) contains `path_contains`, do `action`
/// instead of forwarding plainly. Each fault counts its own matches; when several fire on
/// one request the first in the script wins.
#[derive(Clone, Debug)]
pub struct Fault {
    pub method: Option<&'static str>,
    pub path_contains: &'static str,
    pub nth: usize,
    pub action: Action,
}

#[derive(Clone, Copy, Debug)]
pub enum Action {
    /// Answer with this status (a registry-style JSON error body for 4xx/5xx) without
    /// forwarding; the request body is read and discarded.
    Status(u16),
    /// Read the whole request, then close the connection without answering.
    Drop,
    /// Forward the request (the upstream acts on it), then close without answering.
    DropAfterForward,
    /// Wait, then forward.
    Stall(Duration),
    /// Forward, answer with the upstream's headers (its original `Content-Length`) but only
    /// the first N bytes of the body, then close.
    Truncate(usize),
}

/// A TCP proxy on `127.0.0.1:PORT` forwarding HTTP/1.1 to one upstream, following a script
/// of [`Fault`]s. Clients may keep connections alive; each request goes to the upstream on
/// a fresh connection (`Connection: close`), bodies (`Content-Length` or chunked) are
/// streamed both ways, never buffered whole. Nothing is rewritten except `Location`
/// headers that name the upstream. Stops on drop (accepting, and the open client
/// connections).
pub struct FaultProxy {
    /// `127.0.0.1:PORT` of the proxy: what the client under test talks to.
    pub addr: String,
    shared: Arc<Shared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    upstream: String,
    addr: String,
    faults: Vec<Fault>,
    matched: Mutex<Vec<usize>>,
    log: Mutex<Vec<(String, String, u16)>>,
    /// The open client connections, to shut them down on drop.
    clients: Mutex<HashMap<usize, TcpStream>>,
    connections: AtomicUsize,
    stop: AtomicBool,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`host:port`).
    pub fn start(upstream: &str, faults: Vec<Fault>) -> FaultProxy {
        for f in &faults {
            assert!(f.nth >= 1, "Fault::nth is 1-based: {f:?}");
        }
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            addr: addr.clone(),
            matched: Mutex::new(vec![0; faults.len()]),
            faults,
            log: Mutex::new(Vec::new()),
            clients: Mutex::new(HashMap::new()),
            connections: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("fault-proxy-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let id = s.connections.fetch_add(1, Ordering::SeqCst);
                    if let Ok(c) = conn.try_clone() {
                        s.clients.lock().unwrap().insert(id, c);
                    }
                    let s = Arc::clone(&s);
                    let _ = std::thread::Builder::new()
                        .name("fault-proxy-conn".into())
                        .spawn(move || {
                            let _ = serve_client(&s, conn);
                            // Closes the last handle: unread client bytes make it a reset,
                            // so a client still sending fails instead of blocking.
                            s.clients.lock().unwrap().remove(&id);
                        });
                }
            })
            .unwrap();
        FaultProxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// Every request seen, in arrival order: `(method, target, status)`, where target is
    /// the path with its query, and status what was injected or what the upstream
    /// answered (also for `DropAfterForward`, whose client got nothing), 502 when the
    /// upstream was unreachable, 0 when there was no answer (`Drop`, a connection that
    /// broke mid-request).
    pub fn requests(&self) -> Vec<(String, String, u16)> {
        self.shared.log.lock().unwrap().clone()
    }

    /// How many client connections were accepted (fewer than requests: keep-alive worked).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for (_, c) in self.shared.clients.lock().unwrap().drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

/// A parsed request or response head: the start line and the headers in order.
struct Head {
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Body framing from the headers (for requests; responses add their own rules).
    fn framing(&self) -> io::Result<Framing> {
        if self.has_token("Transfer-Encoding", "chunked") {
            Ok(Framing::Chunked)
        } else if let Some(v) = self.get("Content-Length") {
            v.trim()
                .parse()
                .map(Framing::Length)
                .map_err(|_| bad(format!("bad Content-Length {v:?}")))
        } else {
            Ok(Framing::Length(0))
        }
    }

    fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let mut s = String::with_capacity(512);
        s.push_str(&self.start);
        s.push_str("\r\n");
        for (n, v) in &self.headers {
            s.push_str(n);
            s.push_str(": ");
            s.push_str(v);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        w.write_all(s.as_bytes())
    }

    fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one head; `None` on a clean EOF before its first byte.
fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = r.by_ref().take(64 * 1024).read_line(&mut line)?;
        if n == 0 {
            return if lines.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        total += n;
        if total > 256 * 1024 {
            return Err(bad("head over 256 KiB"));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            if lines.is_empty() {
                continue; // stray CRLF between messages
            }
            break;
        }
        lines.push(line);
    }
    let start = lines.remove(0);
    let headers = lines
        .into_iter()
        .map(|l| {
            let (n, v) = l
                .split_once(':')
                .ok_or_else(|| bad(format!("bad header {l:?}")))?;
            Ok((n.trim().to_string(), v.trim().to_string()))
        })
        .collect::<io::Result<_>>()?;
    Ok(Some(Head { start, headers }))
}

fn parse_status_line(line: &str) -> io::Result<u16> {
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {line:?}")))
}

/// Copies a body framed as `framing` from `r` to `w` (chunked: the framing itself, as is),
/// at most `limit` body bytes when given. True when the whole body was copied.
fn copy_body(
    r: &mut impl BufRead,
    w: &mut impl Write,
    framing: Framing,
    limit: Option<u64>,
) -> io::Result<bool> {
    let mut left = limit.unwrap_or(u64::MAX);
    match framing {
        Framing::Length(n) => {
            let take = n.min(left);
            let copied = io::copy(&mut r.take(take), w)?;
            if copied < take {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            Ok(take == n)
        }
        Framing::UntilClose => {
            let copied = io::copy(&mut r.take(left), w)?;
            Ok(copied < left || limit.is_none())
        }
        Framing::Chunked => loop {
            let mut size_line = String::new();
            if r.read_line(&mut size_line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let hex = size_line.trim().split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(hex, 16)
                .map_err(|_| bad(format!("bad chunk size {size_line:?}")))?;
            if size == 0 {
                w.write_all(size_line.as_bytes())?;
                // Trailers up to the empty line.
                loop {
                    let mut t = String::new();
                    if r.read_line(&mut t)? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    w.write_all(t.as_bytes())?;
                    if t.trim().is_empty() {
                        return Ok(true);
                    }
                }
            }
            if size > left {
                // Truncating: a short chunk of the remaining bytes, never terminated.
                write!(w, "{size:x}\r\n")?;
                io::copy(&mut r.take(left), w)?;
                return Ok(false);
            }
            w.write_all(size_line.as_bytes())?;
            let copied = io::copy(&mut r.take(size), w)?;
            if copied < size {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            left -= size;
            let mut crlf = String::new();
            r.read_line(&mut crlf)?;
            w.write_all(crlf.as_bytes())?;
        },
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected",
    }
}

/// Serves one client connection: request after request until either side closes.
fn serve_client(s: &Shared, conn: TcpStream) -> io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut client = BufReader::with_capacity(64 * 1024, conn);
    // A TLS ClientHello (clients that try https before plain http, as skopeo with
    // `--tls-verify=false` does): answer like Go's HTTP server would, so they fall back.
    if client.fill_buf()?.first() == Some(&0x16) {
        out.write_all(
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTPS request to an HTTP server.\n",
        )?;
        let _ = out.shutdown(Shutdown::Both);
        return Ok(());
    }
    while let Some(mut req) = read_head(&mut client)? {
        if s.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut parts = req.start.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let version = parts.next().unwrap_or("HTTP/1.1").to_string();
        let keep_alive = if version == "HTTP/1.0" {
            req.has_token("Connection", "keep-alive")
        } else {
            !req.has_token("Connection", "close")
        };
        let body = req.framing()?;
        let index = {
            let mut log = s.log.lock().unwrap();
            log.push((method.clone(), target.clone(), 0));
            log.len() - 1
        };
        let set_status = |status: u16| s.log.lock().unwrap()[index].2 = status;
        let action = {
            let mut matched = s.matched.lock().unwrap();
            let mut fired = None;
            for (i, f) in s.faults.iter().enumerate() {
                if f.method.is_none_or(|m| m == method) && target.contains(f.path_contains) {
                    matched[i] += 1;
                    if matched[i] == f.nth && fired.is_none() {
                        fired = Some(f.action);
                    }
                }
            }
            fired
        };
        // We answer `Expect: 100-continue` ourselves and never forward it, so the upstream
        // sends no interim responses and the client never waits on one.
        if req.has_token("Expect", "100-continue") {
            out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        req.remove("Expect");

        match action {
            Some(Action::Status(code)) => {
                copy_body(&mut client, &mut io::sink(), body, None)?;
                set_status(code);
                let json = if code >= 400 {
                    let c = match code {
                        401 => "UNAUTHORIZED",
                        403 => "DENIED",
                        429 => "TOOMANYREQUESTS",
                        503 => "UNAVAILABLE",
                        _ => "UNKNOWN",
                    };
                    format!(
                        r#"{{"errors":[{{"code":"{c}","message":"injected by FaultProxy","detail":null}}]}}"#
                    )
                } else {
                    String::new()
                };
                let mut resp = format!(
                    "HTTP/1.1 {code} {}\r\nContent-Length: {}\r\nDocker-Distribution-Api-Version: registry/2.0\r\n",
                    reason(code),
                    json.len()
                );
                if !json.is_empty() {
                    resp.push_str("Content-Type: application/json; charset=utf-8\r\n");
                }
                if !keep_alive {
                    resp.push_str("Connection: close\r\n");
                }
                resp.push_str("\r\n");
                if method != "HEAD" {
                    resp.push_str(&json);
                }
                out.write_all(resp.as_bytes())?;
                out.flush()?;
                if !keep_alive {
                    return Ok(());
                }
                continue;
            }
            Some(Action::Drop) => {
                copy_body(&mut client, &mut io::sink(), body, None)?;
                let _ = out.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some(Action::Stall(d)) => std::thread::sleep(d),
            _ => {}
        }

        // Forward on a fresh upstream connection.
        let up = match TcpStream::connect(&s.upstream) {
            Ok(u) => u,
            Err(e) => {
                copy_body(&mut client, &mut io::sink(), body, None)?;
                set_status(502);
                let msg = format!("FaultProxy: upstream {}: {e}", s.upstream);
                write!(
                    out,
                    "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                    msg.len()
                )?;
                return Ok(());
            }
        };
        for h in ["Connection", "Keep-Alive", "Proxy-Connection"] {
            req.remove(h);
        }
        // Host stays the client's: the registry builds its absolute `Location` URLs from it.
        req.headers.push(("Connection".into(), "close".into()));
        let mut up_w = io::BufWriter::with_capacity(64 * 1024, up.try_clone()?);
        let sent = req
            .write_to(&mut up_w)
            .and_then(|()| copy_body(&mut client, &mut up_w, body, None))
            .and_then(|_| up_w.flush());
        // The upstream may answer (and close) before reading the whole body; then the rest
        // of the client's body is unread and this connection cannot carry another request.
        let mut client_in_sync = sent.is_ok();
        drop(up_w);
        let mut up_r = BufReader::with_capacity(64 * 1024, up.try_clone()?);
        let mut resp = loop {
            let Some(resp) = read_head(&mut up_r)? else {
                return Err(io::ErrorKind::UnexpectedEof.into());
            };
            let status = parse_status_line(&resp.start)?;
            if (100..200).contains(&status) && status != 101 {
                continue; // interim; we already answered any Expect ourselves
            }
            break resp;
        };
        let status = parse_status_line(&resp.start)?;
        set_status(status);
        let framing = if method == "HEAD" || status == 204 || status == 304 {
            Framing::Length(0)
        } else if resp.has_token("Transfer-Encoding", "chunked") {
            Framing::Chunked
        } else if let Some(v) = resp.get("Content-Length") {
            Framing::Length(v.trim().parse().map_err(|_| bad("bad Content-Length"))?)
        } else {
            Framing::UntilClose
        };
        if action.is_some_and(|a| matches!(a, Action::DropAfterForward)) {
            copy_body(&mut up_r, &mut io::sink(), framing, None)?;
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
        let truncate = match action {
            Some(Action::Truncate(n)) => Some(n as u64),
            _ => None,
        };
        // docker-registry names the host of the request in `Location` (so through us it
        // names us); should an upstream name itself, point the client back at the proxy.
        let upstream_url = format!("http://{}", s.upstream);
        for (n, v) in resp.headers.iter_mut() {
            if n.eq_ignore_ascii_case("Location") && v.starts_with(&upstream_url) {
                *v = format!("http://{}{}", s.addr, &v[upstream_url.len()..]);
            }
        }
        resp.remove("Connection");
        resp.remove("Keep-Alive");
        let close =
            !keep_alive || !client_in_sync || truncate.is_some() || framing == Framing::UntilClose;
        if close {
            resp.headers.push(("Connection".into(), "close".into()));
        }
        let mut w = io::BufWriter::with_capacity(64 * 1024, &mut out);
        resp.write_to(&mut w)?;
        let complete = copy_body(&mut up_r, &mut w, framing, truncate)?;
        w.flush()?;
        drop(w);
        let _ = up.shutdown(Shutdown::Both);
        client_in_sync &= complete;
        if close || !client_in_sync {
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    Ok(())
}
