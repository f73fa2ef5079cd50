//! The push tests' helpers (`support::registry`) proved on real tools: skopeo pushes into a
//! real docker-registry and reads the manifest back byte for byte; the registry's htpasswd
//! auth turns anonymous pushes away; its token auth challenges for, and accepts, the
//! tokens of the token service started next to it; the fault proxy forwards a whole
//! skopeo push over kept-alive connections, streams a chunked upload, and its scripted
//! faults (a 503, a dropped connection, a forwarded-then-dropped request, a stall, a
//! truncated body) reach skopeo and curl as scripted, and show in its request log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::registry::{Action, Fault, FaultProxy, Registry, get_status, http_get};
use crate::support::{self, raw_base_layout, run_err, run_ok};

/// An OCI layout at `dir` with one layer (`testdata/layers/ok-normalized.tar`); its
/// manifest bytes and layer bytes.
fn layout(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let layer = std::fs::read(support::repo().join("testdata/layers/ok-normalized.tar")).unwrap();
    let md = raw_base_layout(dir, std::slice::from_ref(&layer));
    let manifest = std::fs::read(dir.join("blobs/sha256").join(md.hex())).unwrap();
    (manifest, layer)
}

/// skopeo with no policy file, no stored credentials of this machine's user.
fn skopeo(tmp: &Path) -> Command {
    let mut c = kiln_core::process::command(support::tool("skopeo"));
    c.env("REGISTRY_AUTH_FILE", tmp.join("no-auth.json"))
        .env("HOME", tmp)
        .arg("--insecure-policy");
    c
}

fn copy_to(tmp: &Path, layout: &Path, dest: &str) -> Command {
    let mut c = skopeo(tmp);
    // `--preserve-digests`: push the layout as it is (else skopeo gzips the layer).
    c.args(["copy", "--preserve-digests", "--dest-tls-verify=false"])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{dest}"));
    c
}

fn inspect_raw(tmp: &Path, image: &str, creds: Option<&str>) -> Vec<u8> {
    let mut c = skopeo(tmp);
    c.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some(creds) = creds {
        c.arg("--creds").arg(creds);
    }
    run_ok(c.arg(format!("docker://{image}"))).stdout
}

fn curl() -> Command {
    let mut c = kiln_core::process::command(support::tool("curl"));
    c.args([
        "--silent",
        "--show-error",
        "--noproxy",
        "*",
        "--max-time",
        "20",
    ]);
    c
}

/// The request log entries whose target contains `part` (and method is `method`).
fn seen(proxy: &FaultProxy, method: &str, part: &str) -> Vec<(String, u16)> {
    proxy
        .requests()
        .into_iter()
        .filter(|(m, t, _)| m == method && t.contains(part))
        .map(|(_, t, s)| (t, s))
        .collect()
}

#[test]
fn skopeo_pushes_to_the_registry_and_reads_the_manifest_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, layer) = layout(&tmp.path().join("layout"));
    let reg = Registry::start();
    assert_eq!(get_status(&reg.addr, "/v2/", None).unwrap(), 200);

    run_ok(&mut copy_to(
        tmp.path(),
        &tmp.path().join("layout"),
        &format!("{}/kiln/hello:v1", reg.addr),
    ));
    let raw = inspect_raw(tmp.path(), &format!("{}/kiln/hello:v1", reg.addr), None);
    assert_eq!(
        String::from_utf8_lossy(&raw),
        String::from_utf8_lossy(&manifest),
        "the registry returns the pushed manifest byte for byte"
    );
    let stored = reg
        .storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&kiln_core::Digest::of(&layer).hex()[..2])
        .join(kiln_core::Digest::of(&layer).hex())
        .join("data");
    assert_eq!(std::fs::read(&stored).unwrap(), layer, "{}", reg.logs());
}

#[test]
fn the_registry_with_auth_turns_anonymous_pushes_away() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, _) = layout(&tmp.path().join("layout"));
    let reg = Registry::start_with_auth("kiln", "s3cret-pw");
    assert_eq!(get_status(&reg.addr, "/v2/", None).unwrap(), 401);
    let image = format!("{}/kiln/hello:v1", reg.addr);

    let err = run_err(&mut copy_to(tmp.path(), &tmp.path().join("layout"), &image));
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );
    let err = run_err(
        copy_to(tmp.path(), &tmp.path().join("layout"), &image)
            .args(["--dest-creds", "kiln:wrong"]),
    );
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );
    run_ok(
        copy_to(tmp.path(), &tmp.path().join("layout"), &image)
            .args(["--dest-creds", "kiln:s3cret-pw"]),
    );
    assert_eq!(
        inspect_raw(tmp.path(), &image, Some("kiln:s3cret-pw")),
        manifest
    );
}

/// distribution's token auth, with the token service `start_with_token_auth` runs: an
/// anonymous request gets a Bearer challenge naming the realm and service; skopeo fetches
/// a token with the right password and pushes, with a wrong one it is turned away.
#[test]
fn the_registry_with_token_auth_challenges_and_accepts_its_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, _) = layout(&tmp.path().join("layout"));
    let started = Instant::now();
    let reg = Registry::start_with_token_auth("kiln", "t0ken-pw");
    let startup = started.elapsed();
    assert!(startup < Duration::from_secs(3), "startup took {startup:?}");
    let realm = reg.token_realm.clone().unwrap();

    let a = http_get(&reg.addr, "/v2/", None).unwrap();
    assert_eq!(a.status, 401, "{a:?}");
    let challenge = a.header("WWW-Authenticate").unwrap_or_default();
    assert_eq!(
        challenge,
        format!(r#"Bearer realm="{realm}",service="kiln-test""#),
        "{a:?}"
    );
    // A token it did not issue is no key to it.
    let a = http_get(&reg.addr, "/v2/", Some("Bearer e30.e30.c2ln")).unwrap();
    assert_eq!(a.status, 401, "{a:?}");
    assert!(
        a.header("WWW-Authenticate")
            .is_some_and(|c| c.contains(r#"error="invalid_token""#)),
        "{a:?}"
    );
    // The token service itself wants the password.
    let token_addr = realm
        .trim_start_matches("http://")
        .trim_end_matches("/token");
    let t = http_get(token_addr, "/token?service=kiln-test", None).unwrap();
    assert_eq!(t.status, 401);
    let basic = |pw: &str| {
        format!(
            "Basic {}",
            support::registry::base64(format!("kiln:{pw}").as_bytes())
        )
    };
    let t = http_get(
        token_addr,
        "/token?service=kiln-test",
        Some(&basic("wrong")),
    )
    .unwrap();
    assert_eq!(t.status, 401);

    let image = format!("{}/kiln/hello:v1", reg.addr);
    let err = run_err(
        copy_to(tmp.path(), &tmp.path().join("layout"), &image)
            .args(["--dest-creds", "kiln:wrong"]),
    );
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );
    assert!(
        reg.storage()
            .join("docker/registry/v2/repositories")
            .read_dir()
            .is_err(),
        "nothing was stored"
    );
    run_ok(
        copy_to(tmp.path(), &tmp.path().join("layout"), &image)
            .args(["--dest-creds", "kiln:t0ken-pw"]),
    );
    assert_eq!(
        inspect_raw(tmp.path(), &image, Some("kiln:t0ken-pw")),
        manifest
    );

    let log = reg.token_requests();
    assert!(
        log.iter().any(|r| {
            r["status"] == 401
                && r["error"] == "wrong credentials"
                && r["scope"] == serde_json::json!(["repository:kiln/hello:pull,push"])
        }),
        "skopeo's wrong password was turned away at the token service: {log:#?}"
    );
    assert!(
        log.iter().any(|r| {
            r["status"] == 200
                && r["scope"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s == "repository:kiln/hello:pull,push")
                && r["granted"][0]["actions"] == serde_json::json!(["pull", "push"])
        }),
        "skopeo asked for (and got) pull and push: {log:#?}"
    );
    assert!(
        log.iter().any(|r| {
            r["status"] == 200
                && r["scope"] == serde_json::json!(["repository:kiln/hello:pull"])
                && r["granted"][0]["actions"] == serde_json::json!(["pull"])
        }),
        "skopeo inspect asked for (and got) pull only: {log:#?}"
    );
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains("t0ken-pw"), "the log holds no password");
}

#[test]
fn the_proxy_forwards_a_whole_push_and_keeps_connections_alive() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, _) = layout(&tmp.path().join("layout"));
    let reg = Registry::start();
    let proxy = FaultProxy::start(&reg.addr, Vec::new());

    run_ok(&mut copy_to(
        tmp.path(),
        &tmp.path().join("layout"),
        &format!("{}/kiln/hello:v1", proxy.addr),
    ));
    // Read back around the proxy: what arrived is what was sent.
    assert_eq!(
        inspect_raw(tmp.path(), &format!("{}/kiln/hello:v1", reg.addr), None),
        manifest
    );
    let log = proxy.requests();
    // Config and layer: each uploaded once, completed by `PUT ...?digest=`.
    let puts = seen(&proxy, "PUT", "digest=sha256");
    assert_eq!(puts.len(), 2, "{log:#?}");
    assert!(puts.iter().all(|(_, s)| *s == 201), "{log:#?}");
    assert_eq!(
        seen(&proxy, "PUT", "/v2/kiln/hello/manifests/v1"),
        [("/v2/kiln/hello/manifests/v1".to_string(), 201)],
        "{log:#?}"
    );
    assert!(log.iter().all(|(_, _, s)| *s != 0 && *s < 500), "{log:#?}");
    // skopeo (containers/image) disables keep-alive: a connection per request. curl
    // reuses one for two URLs, through the proxy too.
    let before = proxy.connections();
    let out = run_ok(
        curl()
            .args(["-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} "])
            .args(["-H", "Accept: application/vnd.oci.image.manifest.v1+json"])
            .arg(format!("http://{}/v2/", proxy.addr))
            .arg(format!("http://{}/v2/kiln/hello/manifests/v1", proxy.addr)),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 200 ");
    assert_eq!(proxy.connections(), before + 1, "{:#?}", proxy.requests());
    assert_eq!(proxy.requests().len(), log.len() + 2);
}

#[test]
fn a_503_or_a_dropped_manifest_put_reaches_skopeo_and_its_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, _) = layout(&tmp.path().join("layout"));
    let reg = Registry::start();
    let fault = || Fault {
        method: Some("PUT"),
        path_contains: "/manifests/",
        nth: 1,
        action: Action::Status(503),
    };

    // Without retries skopeo fails on the 503 it was given.
    let proxy = FaultProxy::start(&reg.addr, vec![fault()]);
    let image = format!("{}/kiln/hello:v1", proxy.addr);
    let err = run_err(&mut copy_to(tmp.path(), &tmp.path().join("layout"), &image));
    assert!(
        err.contains("503") || err.to_lowercase().contains("unavailable"),
        "{err}"
    );
    assert_eq!(
        seen(&proxy, "PUT", "/manifests/"),
        [("/v2/kiln/hello/manifests/v1".to_string(), 503)],
        "{:#?}",
        proxy.requests()
    );
    drop(proxy);

    // skopeo 1.9.3 retries (`--retry-times`) on network errors, not on a 5xx status. A
    // dropped manifest PUT fails a copy without retries ...
    let dropped = || Fault {
        action: Action::Drop,
        ..fault()
    };
    let reg = Registry::start();
    let proxy = FaultProxy::start(&reg.addr, vec![dropped()]);
    let image = format!("{}/kiln/hello:v1", proxy.addr);
    let err = run_err(&mut copy_to(tmp.path(), &tmp.path().join("layout"), &image));
    assert!(err.contains("EOF"), "{err}");
    drop(proxy);
    // ... and with one, skopeo copies again, the PUT succeeds, and no blob is uploaded a
    // second time (both are in the registry since the first attempt).
    let reg = Registry::start();
    let proxy = FaultProxy::start(&reg.addr, vec![dropped()]);
    let image = format!("{}/kiln/hello:v1", proxy.addr);
    run_ok(copy_to(tmp.path(), &tmp.path().join("layout"), &image).args(["--retry-times", "1"]));
    let log = proxy.requests();
    assert_eq!(
        seen(&proxy, "PUT", "/manifests/")
            .into_iter()
            .map(|(_, s)| s)
            .collect::<Vec<_>>(),
        [0, 201],
        "{log:#?}"
    );
    let blob_puts = seen(&proxy, "PUT", "digest=sha256");
    assert_eq!(blob_puts.len(), 2, "each blob uploaded once: {log:#?}");
    assert_eq!(
        inspect_raw(tmp.path(), &format!("{}/kiln/hello:v1", reg.addr), None),
        manifest
    );
}

#[test]
fn drop_stall_and_truncate_reach_curl_as_scripted() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, layer) = layout(&tmp.path().join("layout"));
    let reg = Registry::start();
    run_ok(&mut copy_to(
        tmp.path(),
        &tmp.path().join("layout"),
        &format!("{}/kiln/hello:v1", reg.addr),
    ));
    let stall = Duration::from_millis(400);
    let proxy = FaultProxy::start(
        &reg.addr,
        vec![
            Fault {
                method: None,
                path_contains: "/v2/ping",
                nth: 1,
                action: Action::Drop,
            },
            Fault {
                method: Some("GET"),
                path_contains: "/v2/ping",
                nth: 2,
                action: Action::Stall(stall),
            },
            Fault {
                method: Some("GET"),
                path_contains: "/blobs/",
                nth: 1,
                action: Action::Truncate(10),
            },
            Fault {
                method: Some("GET"),
                path_contains: "/blobs/",
                nth: 2,
                action: Action::Truncate(10),
            },
            Fault {
                method: Some("PUT"),
                path_contains: "/manifests/v2",
                nth: 1,
                action: Action::DropAfterForward,
            },
        ],
    );
    let base = format!("http://{}", proxy.addr);

    // Drop: nothing comes back (curl 52: empty reply). `/v2/ping` is a 404 upstream.
    let out = curl().arg(format!("{base}/v2/ping")).output().unwrap();
    assert_eq!(out.status.code(), Some(52), "{out:?}");
    // Stall: the second one is answered, late.
    let t = Instant::now();
    let out = run_ok(
        curl()
            .args(["-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("{base}/v2/ping")),
    );
    assert!(t.elapsed() >= stall, "{:?}", t.elapsed());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");

    // Truncate: the original Content-Length, then 10 bytes of body and the connection
    // closed (read by hand, as curl would not show the header).
    let digest = kiln_core::Digest::of(&layer);
    let mut s = TcpStream::connect(&proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /v2/kiln/hello/blobs/{digest} HTTP/1.1\r\nHost: {}\r\n\r\n",
        proxy.addr
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", layer.len())),
        "{head}"
    );
    assert_eq!(body.as_bytes(), &layer[..10]);
    // ... and curl sees a partial transfer (18), then an untruncated one.
    let blob_url = format!("{base}/v2/kiln/hello/blobs/{digest}");
    let part = tmp.path().join("part");
    let out = curl()
        .arg("-o")
        .arg(&part)
        .args(["-w", "%{http_code} %{size_download}"])
        .arg(&blob_url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(18), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 10");
    assert_eq!(std::fs::read(&part).unwrap(), layer[..10]);
    run_ok(curl().arg("-o").arg(&part).arg(&blob_url));
    assert!(std::fs::read(&part).unwrap() == layer, "the whole blob");

    // DropAfterForward: curl gets nothing, yet the registry stored the manifest.
    let out = curl()
        .args(["-X", "PUT", "-H"])
        .arg("Content-Type: application/vnd.oci.image.manifest.v1+json")
        .arg("--data-binary")
        .arg(format!(
            "@{}",
            tmp.path()
                .join("layout/blobs/sha256")
                .join(kiln_core::Digest::of(&manifest).hex())
                .display()
        ))
        .arg(format!("{base}/v2/kiln/hello/manifests/v2"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(52), "{out:?}");
    assert_eq!(
        inspect_raw(tmp.path(), &format!("{}/kiln/hello:v2", reg.addr), None),
        manifest
    );

    let log = proxy.requests();
    let statuses: Vec<(&str, u16)> = log.iter().map(|(m, _, s)| (m.as_str(), *s)).collect();
    assert_eq!(
        statuses,
        [
            ("GET", 0),
            ("GET", 404),
            ("GET", 200),
            ("GET", 200),
            ("GET", 200),
            ("PUT", 201)
        ],
        "{log:#?}"
    );
}

/// One request on a kept-alive connection, its body sent chunked in `chunk`-sized pieces;
/// the response's status, headers and (Content-Length) body.
fn exchange(
    w: &mut TcpStream,
    r: &mut BufReader<TcpStream>,
    head: &str,
    body: Option<(&[u8], usize)>,
) -> (u16, String, Vec<u8>) {
    w.write_all(head.as_bytes()).unwrap();
    if let Some((body, chunk)) = body {
        for piece in body.chunks(chunk) {
            write!(w, "{:x}\r\n", piece.len()).unwrap();
            w.write_all(piece).unwrap();
            w.write_all(b"\r\n").unwrap();
        }
        w.write_all(b"0\r\n\r\n").unwrap();
    }
    let mut headers = String::new();
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "EOF in {headers}");
        if line == "\r\n" {
            break;
        }
        headers.push_str(&line);
    }
    let status = headers.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = headers
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; if head.starts_with("HEAD") { 0 } else { len }];
    r.read_exact(&mut body).unwrap();
    (status, headers, body)
}

fn header<'a>(headers: &'a str, name: &str) -> &'a str {
    headers
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {headers}"))
}

#[test]
fn the_proxy_streams_a_chunked_upload_and_the_blob_back_on_one_connection() {
    let reg = Registry::start();
    let proxy = FaultProxy::start(&reg.addr, Vec::new());
    let blob: Vec<u8> = (0..32u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let digest = kiln_core::Digest::of(&blob);
    let host = &proxy.addr;
    let mut w = TcpStream::connect(host).unwrap();
    w.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    w.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(w.try_clone().unwrap());

    let (status, h, _) = exchange(
        &mut w,
        &mut r,
        &format!(
            "POST /v2/kiln/big/blobs/uploads/ HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
        ),
        None,
    );
    assert_eq!(status, 202, "{h}");
    let location = header(&h, "Location").to_string();
    let path = location
        .strip_prefix(&format!("http://{host}"))
        .unwrap_or_else(|| panic!("Location {location} does not name the proxy"));
    let (status, h, _) = exchange(
        &mut w,
        &mut r,
        &format!(
            "PATCH {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        Some((&blob, 1 << 20)),
    );
    assert_eq!(status, 202, "{h}");
    let path = header(&h, "Location")
        .strip_prefix(&format!("http://{host}"))
        .unwrap()
        .to_string();
    let sep = if path.contains('?') { '&' } else { '?' };
    let (status, h, _) = exchange(
        &mut w,
        &mut r,
        &format!(
            "PUT {path}{sep}digest={digest} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
        ),
        None,
    );
    assert_eq!(status, 201, "{h}");
    let (status, h, body) = exchange(
        &mut w,
        &mut r,
        &format!("GET /v2/kiln/big/blobs/{digest} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        None,
    );
    assert_eq!(status, 200, "{h}");
    assert!(body == blob, "the blob came back changed");
    // A client naming the registry as Host gets a Location naming it: the proxy points it
    // back at itself.
    let (status, h, _) = exchange(
        &mut w,
        &mut r,
        &format!(
            "POST /v2/kiln/big/blobs/uploads/ HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
            reg.addr
        ),
        None,
    );
    assert_eq!(status, 202, "{h}");
    assert!(
        header(&h, "Location").starts_with(&format!("http://{host}/v2/kiln/big/blobs/uploads/")),
        "{h}"
    );
    assert_eq!(proxy.connections(), 1);
    assert_eq!(
        proxy
            .requests()
            .iter()
            .map(|(m, _, s)| (m.as_str(), *s))
            .collect::<Vec<_>>(),
        [
            ("POST", 202),
            ("PATCH", 202),
            ("PUT", 201),
            ("GET", 200),
            ("POST", 202)
        ]
    );
}

/// `ReferrersRegistry` (ferro-oci-server) has the OCI 1.1 referrers API that docker-registry
/// lacks: skopeo pushes an image; a hand-made artifact manifest whose `subject` is that image
/// goes up by plain HTTP, and the PUT's answer names the subject in `OCI-Subject`; then
/// `GET /v2/<name>/referrers/<digest>` lists the artifact, and `?artifactType=` filters it.
#[test]
fn the_referrers_registry_lists_an_artifact_by_its_subject() {
    const ARTIFACT: &str = "application/vnd.kiln.test.v1+json";
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, _) = layout(&tmp.path().join("layout"));
    let subject = kiln_core::Digest::of(&manifest);
    let reg = crate::support::registry::ReferrersRegistry::start();
    run_ok(&mut copy_to(
        tmp.path(),
        &tmp.path().join("layout"),
        &format!("{}/kiln/hello:v1", reg.addr),
    ));
    assert_eq!(
        inspect_raw(tmp.path(), &format!("{}/kiln/hello:v1", reg.addr), None),
        manifest,
        "{}",
        reg.logs()
    );

    let host = reg.addr.clone();
    let mut w = TcpStream::connect(&host).unwrap();
    w.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    w.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(w.try_clone().unwrap());
    let mut put_blob = |bytes: &[u8]| {
        let (status, h, _) = exchange(
            &mut w,
            &mut r,
            &format!(
                "POST /v2/kiln/hello/blobs/uploads/ HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
            ),
            None,
        );
        assert_eq!(status, 202, "{h}");
        let location = header(&h, "Location");
        let path = location
            .strip_prefix(&format!("http://{host}"))
            .unwrap_or(location)
            .to_string();
        let sep = if path.contains('?') { '&' } else { '?' };
        let digest = kiln_core::Digest::of(bytes);
        let (status, h, _) = exchange(
            &mut w,
            &mut r,
            &format!(
                "PUT {path}{sep}digest={digest} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            Some((bytes, 1 << 16)),
        );
        assert_eq!(status, 201, "{h}");
        serde_json::json!({"digest": digest.to_string(), "size": bytes.len()})
    };
    let empty = put_blob(b"{}");
    let payload = put_blob(b"kiln test: a payload that is not a real signature");
    let artifact = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": ARTIFACT,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
            "digest": empty["digest"], "size": empty["size"]},
        "layers": [{"mediaType": "application/octet-stream",
            "digest": payload["digest"], "size": payload["size"]}],
        "subject": {"mediaType": MANIFEST, "digest": subject.to_string(), "size": manifest.len()},
        "annotations": {"org.opencontainers.image.created": "2023-11-14T22:13:20Z"}
    }))
    .unwrap();
    let digest = kiln_core::Digest::of(&artifact);
    let mut w = TcpStream::connect(&host).unwrap();
    w.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(w.try_clone().unwrap());
    let (status, h, _) = exchange(
        &mut w,
        &mut r,
        &format!(
            "PUT /v2/kiln/hello/manifests/{digest} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {MANIFEST}\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        Some((&artifact, artifact.len())),
    );
    assert_eq!(status, 201, "{h}\n{}", reg.logs());
    assert_eq!(header(&h, "Docker-Content-Digest"), digest.to_string());
    assert_eq!(header(&h, "OCI-Subject"), subject.to_string(), "{h}");

    let (status, h, body) = exchange(
        &mut w,
        &mut r,
        &format!(
            "GET /v2/kiln/hello/referrers/{subject} HTTP/1.1\r\nHost: {host}\r\nAccept: {INDEX}\r\n\r\n"
        ),
        None,
    );
    assert_eq!(status, 200, "{h}");
    assert!(header(&h, "Content-Type").starts_with(INDEX), "{h}");
    let index: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(index["mediaType"], INDEX, "{index:#}");
    assert_eq!(
        index["manifests"],
        serde_json::json!([{
            "mediaType": MANIFEST,
            "digest": digest.to_string(),
            "size": artifact.len(),
            "artifactType": ARTIFACT,
            "annotations": {"org.opencontainers.image.created": "2023-11-14T22:13:20Z"}
        }]),
        "the listing holds the artifact's descriptor: {index:#}"
    );
    let (status, h, body) = exchange(
        &mut w,
        &mut r,
        &format!(
            "GET /v2/kiln/hello/referrers/{subject}?artifactType=application/vnd.kiln.other HTTP/1.1\r\nHost: {host}\r\n\r\n"
        ),
        None,
    );
    assert_eq!(status, 200, "{h}");
    assert_eq!(header(&h, "OCI-Filters-Applied"), "artifactType");
    let filtered: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(filtered["manifests"], serde_json::json!([]), "{filtered:#}");
    // The artifact itself comes back as it was pushed.
    let (status, h, body) = exchange(
        &mut w,
        &mut r,
        &format!(
            "GET /v2/kiln/hello/manifests/{digest} HTTP/1.1\r\nHost: {host}\r\nAccept: {MANIFEST}\r\n\r\n"
        ),
        None,
    );
    assert_eq!(status, 200, "{h}");
    assert!(body == artifact, "the artifact manifest came back changed");
}
