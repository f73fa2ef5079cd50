//! A blocking client for one repository of an OCI distribution registry: the requests
//! push and pull need, with authentication, retries and bounded memory.
//!
//! Every request that is safe to repeat (HEAD, GET, a manifest PUT, starting an upload)
//! is retried with exponential backoff on connection errors, timeouts, truncated bodies,
//! 429 and 5xx. Blob chunks are not blindly repeated: after a failed chunk the client
//! asks the registry how much it has (`GET` on the upload URL, `Range: 0-N`) and resumes
//! there, or starts the upload again when the session is gone. No success is reported
//! without the registry's confirming status (and, for manifests, digest).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use kiln_core::Digest;
use ureq::http::{Response, StatusCode};

use crate::auth::{Challenge, Credentials, parse_challenge};
use crate::error::{Error, Result, io};
use kiln_core::contract::reference::Reference;

pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const MEDIA_TYPE_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Manifests larger than this are refused on read (the distribution spec's 4 MiB floor).
const MANIFEST_LIMIT: u64 = 4 << 20;

/// How hard to try before giving up.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// Delay before the first retry; doubled each time, capped at 8 s.
    pub base_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            base_delay: Duration::from_millis(250),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Plain HTTP; only for a registry on this machine.
    pub insecure_http: bool,
    /// `None`: discover (environment, then docker's config.json).
    pub credentials: Option<Credentials>,
    pub retry: Retry,
    /// Chunk size of chunked uploads (and of resuming one): the most of a blob held in
    /// memory at once.
    pub chunk_size: usize,
    /// Send a blob larger than a chunk as one streamed request (what skopeo does; memory
    /// stays bounded by the transport's buffer), falling back to resumable chunks if it
    /// fails. `false`: chunked from the start.
    pub stream_uploads: bool,
    /// Per-request timeout for connecting and for each read or write to stall.
    pub timeout: Duration,
    /// The client will write (push): a token it asks for covers pull *and* push from the
    /// start, so parallel uploads do not each discover that pull was not enough.
    pub push: bool,
    /// Blobs uploaded at once by `push`.
    pub parallel: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            insecure_http: false,
            credentials: None,
            retry: Retry::default(),
            chunk_size: 16 << 20,
            stream_uploads: true,
            timeout: Duration::from_secs(60),
            push: false,
            parallel: 4,
        }
    }
}

/// What happened to a blob kiln pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobPush {
    /// The registry had it already (HEAD).
    Present,
    /// Mounted from another repository of the same registry.
    Mounted(String),
    /// Uploaded, in this many requests carrying data.
    Uploaded { requests: u32 },
}

/// A manifest as the registry serves it.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    pub digest: Digest,
    pub bytes: Vec<u8>,
    /// The `ETag` served with these bytes, for `If-Match` (registries that send none:
    /// `None`).
    pub etag: Option<String>,
}

/// Why a conditional manifest PUT did not apply.
#[derive(Debug)]
pub enum PutIf {
    Done(Digest),
    /// 412: the tag moved since it was read.
    PreconditionFailed,
}

/// Counters for the push report.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub requests: u64,
    pub retries: u64,
    pub bytes_uploaded: u64,
}

/// One repository of one registry.
pub struct Client {
    reference: Reference,
    base: String,
    agent: ureq::Agent,
    credentials: Credentials,
    /// The `Authorization` header that last worked (a token, or Basic).
    authorization: Mutex<Option<String>>,
    /// Held while answering a challenge, so parallel requests that all got a 401 fetch
    /// one token, not one each.
    authenticating: Mutex<()>,
    opts: Options,
    stats: Mutex<Stats>,
}

/// One request, as built (so it can be sent again).
struct Req<'a> {
    method: &'static str,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Option<&'a [u8]>,
}

/// How one attempt ended, when not successfully.
enum Failure {
    /// Worth another attempt (connection, timeout, truncated body, 429/5xx).
    Transient(String),
    Fatal(Error),
}

type Resp = Response<ureq::Body>;

impl Client {
    pub fn new(reference: &Reference, opts: Options) -> Result<Client> {
        if opts.insecure_http && !reference.is_loopback() {
            return Err(Error::InsecureRemote {
                registry: reference.registry.clone(),
            });
        }
        let credentials = match &opts.credentials {
            Some(c) => c.clone(),
            None => {
                Credentials::discover(&reference.registry)
                    .map_err(|why| Error::Credentials {
                        registry: reference.registry.clone(),
                        why,
                    })?
                    .0
            }
        };
        let scheme = if opts.insecure_http { "http" } else { "https" };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(opts.timeout))
            .timeout_recv_response(Some(opts.timeout))
            .timeout_recv_body(Some(opts.timeout))
            .timeout_send_body(Some(opts.timeout))
            // Redirects are followed by hand for blob GETs only (storage backends).
            .max_redirects(0)
            .build();
        let authorization = match &credentials {
            Credentials::Token(t) => Some(format!("Bearer {t}")),
            _ => None,
        };
        Ok(Client {
            reference: reference.clone(),
            base: format!("{scheme}://{}", reference.api_host()),
            agent: config.into(),
            credentials,
            authorization: Mutex::new(authorization),
            authenticating: Mutex::new(()),
            opts,
            stats: Mutex::new(Stats::default()),
        })
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn stats(&self) -> Stats {
        lock(&self.stats).clone()
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.base, self.reference.repository)
    }

    /// An upload `Location` may be absolute or relative to the registry.
    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        }
    }

    // ---- transport --------------------------------------------------------------

    fn send_once(&self, req: &Req) -> std::result::Result<Resp, ureq::Error> {
        lock(&self.stats).requests += 1;
        let mut b = ureq::http::Request::builder()
            .method(req.method)
            .uri(&req.url);
        for (k, v) in &req.headers {
            b = b.header(*k, v);
        }
        if let Some(a) = lock(&self.authorization).clone() {
            b = b.header("Authorization", a);
        }
        match req.body {
            Some(bytes) => {
                let r = b
                    .header("Content-Length", bytes.len().to_string())
                    .body(bytes)
                    .map_err(|e| ureq::Error::BadUri(e.to_string()))?;
                self.agent.run(r)
            }
            None => {
                let needs_length = matches!(req.method, "PUT" | "POST" | "PATCH");
                if needs_length {
                    b = b.header("Content-Length", "0");
                }
                let r = b.body(()).map_err(|e| ureq::Error::BadUri(e.to_string()))?;
                self.agent.run(r)
            }
        }
    }

    /// Sends `req`, answering a `401` challenge once and retrying transient failures;
    /// `handle` turns the response into the result (or says the attempt failed).
    fn call<T>(
        &self,
        req: &Req,
        retry: bool,
        handle: &mut dyn FnMut(&mut Resp) -> std::result::Result<T, Failure>,
    ) -> Result<T> {
        let attempts = if retry {
            self.opts.retry.attempts.max(1)
        } else {
            1
        };
        let mut authenticated = false;
        let mut last = String::new();
        let mut n = 0;
        while n < attempts {
            if n > 0 {
                lock(&self.stats).retries += 1;
                let shift = (n - 1).min(5);
                let delay = (self.opts.retry.base_delay * (1 << shift)).min(Duration::from_secs(8));
                std::thread::sleep(delay);
            }
            n += 1;
            let sent_with = lock(&self.authorization).clone();
            let mut resp = match self.send_once(req) {
                Ok(r) => r,
                Err(e) => {
                    last = transport_why(&e);
                    continue;
                }
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !authenticated {
                authenticated = true;
                let challenge = header(&resp, "www-authenticate");
                drain(&mut resp);
                let _one_at_a_time = lock(&self.authenticating);
                // Another request may have answered the challenge meanwhile: use its token.
                if *lock(&self.authorization) == sent_with {
                    self.authenticate(challenge.as_deref(), req)?;
                }
                n -= 1; // answering a challenge is not a retry
                continue;
            }
            if status.as_u16() == 429 || status.is_server_error() {
                last = format!("HTTP {}: {}", status.as_u16(), answer(&mut resp));
                continue;
            }
            match handle(&mut resp) {
                Ok(v) => return Ok(v),
                Err(Failure::Transient(why)) => last = why,
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
        Err(Error::Transport {
            method: req.method.into(),
            url: req.url.clone(),
            why: last,
            attempts,
        })
    }

    fn status_error(&self, req: &Req, resp: &mut Resp) -> Failure {
        Failure::Fatal(Error::Status {
            method: req.method.into(),
            url: req.url.clone(),
            status: resp.status().as_u16(),
            answer: answer(resp),
        })
    }

    /// Answers a `WWW-Authenticate` challenge: Basic with the credentials, or a token
    /// from the Bearer realm for this repository's pull (and push) scope.
    fn authenticate(&self, challenge: Option<&str>, req: &Req) -> Result<()> {
        let registry = self.reference.registry.clone();
        let auth_err = |why: String| Error::Auth {
            registry: registry.clone(),
            why,
        };
        let challenge = challenge.and_then(parse_challenge).ok_or_else(|| {
            auth_err(format!(
                "{} {} answered 401 without a usable challenge",
                req.method, req.url
            ))
        })?;
        match challenge {
            Challenge::Basic => {
                let h = self.credentials.basic_header().ok_or_else(|| {
                    auth_err(
                        "the registry asks for a username and password and none is configured"
                            .into(),
                    )
                })?;
                *lock(&self.authorization) = Some(h);
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let writes = self.opts.push || !matches!(req.method, "GET" | "HEAD");
                let scope = scope.unwrap_or_else(|| {
                    format!(
                        "repository:{}:{}",
                        self.reference.repository,
                        if writes { "pull,push" } else { "pull" }
                    )
                });
                let token = self
                    .fetch_token(&realm, service.as_deref(), &scope)
                    .map_err(auth_err)?;
                *lock(&self.authorization) = Some(format!("Bearer {token}"));
            }
        }
        Ok(())
    }

    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> std::result::Result<String, String> {
        if !(realm.starts_with("https://")
            || (self.opts.insecure_http && realm.starts_with("http://")))
        {
            return Err(format!("token realm `{realm}` is not an https URL"));
        }
        let mut query = vec![("scope", scope.to_string())];
        if let Some(s) = service {
            query.push(("service", s.to_string()));
        }
        let resp = match &self.credentials {
            Credentials::IdentityToken(refresh) => {
                let mut form = query.clone();
                form.push(("grant_type", "refresh_token".into()));
                form.push(("refresh_token", refresh.clone()));
                form.push(("client_id", "kiln".into()));
                let body = form
                    .iter()
                    .map(|(k, v)| format!("{k}={}", urlencode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                self.agent
                    .post(realm)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .send(body.as_bytes())
            }
            creds => {
                let mut r = self.agent.get(realm);
                for (k, v) in &query {
                    r = r.query(*k, v);
                }
                if let Some(h) = creds.basic_header() {
                    r = r.header("Authorization", &h);
                }
                r.call()
            }
        };
        let mut resp = resp.map_err(|e| format!("token service {realm}: {}", transport_why(&e)))?;
        if !resp.status().is_success() {
            let why = if self.credentials.is_anonymous() {
                "the registry wants credentials and none is configured"
            } else {
                "wrong credentials?"
            };
            return Err(format!(
                "token service {realm} answered HTTP {} ({why})",
                resp.status().as_u16()
            ));
        }
        let raw = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| format!("token service {realm}: {e}"))?;
        let v: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| format!("token service {realm}: {e}"))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(String::from)
            .ok_or_else(|| format!("token service {realm} answered no token"))
    }

    // ---- registry API -----------------------------------------------------------

    /// `GET /v2/`: is this a registry, and do the credentials work?
    pub fn ping(&self) -> Result<()> {
        let req = Req {
            method: "GET",
            url: format!("{}/v2/", self.base),
            headers: vec![],
            body: None,
        };
        self.call(&req, true, &mut |r| {
            drain(r);
            if r.status().is_success() {
                Ok(())
            } else {
                Err(self.status_error(&req, r))
            }
        })
    }

    /// The size of blob `d` if the repository has it.
    pub fn blob_size(&self, d: &Digest) -> Result<Option<u64>> {
        let req = Req {
            method: "HEAD",
            url: self.url(&format!("blobs/{d}")),
            headers: vec![],
            body: None,
        };
        self.call(&req, true, &mut |r| match r.status().as_u16() {
            200 => Ok(Some(
                header(r, "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            _ => Err(self.status_error(&req, r)),
        })
    }

    /// Pushes blob `d` (`size` bytes, in the file at `path`): nothing when the registry
    /// has it, a mount when another repository named in `mount_from` has it, otherwise a
    /// streamed upload in chunks of at most `chunk_size` bytes.
    pub fn push_blob(
        &self,
        d: &Digest,
        size: u64,
        data: BlobSource,
        mount_from: &[String],
    ) -> Result<BlobPush> {
        if self.blob_size(d)?.is_some() {
            return Ok(BlobPush::Present);
        }
        // A mount that the registry cannot serve starts an ordinary upload session (202),
        // which the upload below uses; so only one repository is tried (each further
        // attempt would open another session).
        let mut session = None;
        if let Some(from) = mount_from.iter().find(|r| **r != self.reference.repository) {
            match self.start_upload(Some((d, from)))? {
                Started::Mounted => return Ok(BlobPush::Mounted(from.clone())),
                Started::Session(loc) => session = Some(loc),
            }
        }
        let mut src = Source::open(data)?;
        let mut restarts = 0;
        let mut requests = 0;
        if self.opts.stream_uploads && size > self.opts.chunk_size as u64 {
            let location = match session.take() {
                Some(l) => l,
                None => match self.start_upload(None)? {
                    Started::Session(l) => l,
                    Started::Mounted => return Ok(BlobPush::Present),
                },
            };
            requests += 1;
            match self.upload_streamed(&location, d, size, data) {
                Ok(true) => return Ok(BlobPush::Uploaded { requests }),
                // Lost or refused on the way: the blob may have landed anyway; otherwise
                // the resumable chunked upload below takes over in a new session.
                Ok(false) | Err(Error::Transport { .. }) => {
                    lock(&self.stats).retries += 1;
                    if self.blob_size(d)?.is_some() {
                        return Ok(BlobPush::Uploaded { requests });
                    }
                }
                Err(e) => return Err(e),
            }
        }
        loop {
            let location = match session.take() {
                Some(l) => l,
                None => match self.start_upload(None)? {
                    Started::Session(l) => l,
                    Started::Mounted => return Ok(BlobPush::Present),
                },
            };
            match self.upload(&location, d, size, &mut src, &mut requests)? {
                true => return Ok(BlobPush::Uploaded { requests }),
                false => {
                    // The session is gone (or the registry lost data): the blob may
                    // have landed anyway; otherwise start over, a bounded number of times.
                    if self.blob_size(d)?.is_some() {
                        return Ok(BlobPush::Uploaded { requests });
                    }
                    restarts += 1;
                    if restarts > self.opts.retry.attempts {
                        return Err(Error::Transport {
                            method: "PUT".into(),
                            url: self.url(&format!("blobs/{d}")),
                            why: "the upload never completed".into(),
                            attempts: restarts,
                        });
                    }
                }
            }
        }
    }

    fn start_upload(&self, mount: Option<(&Digest, &str)>) -> Result<Started> {
        let url = match mount {
            Some((d, from)) => self.url(&format!(
                "blobs/uploads/?mount={d}&from={}",
                urlencode(from)
            )),
            None => self.url("blobs/uploads/"),
        };
        let req = Req {
            method: "POST",
            url,
            headers: vec![],
            body: None,
        };
        self.call(&req, true, &mut |r| {
            let status = r.status().as_u16();
            let location = header(r, "location");
            drain(r);
            match (status, location) {
                (201, _) if mount.is_some() => Ok(Started::Mounted),
                (202, Some(l)) => Ok(Started::Session(self.absolute(&l))),
                (202, None) => Err(Failure::Fatal(Error::Invalid {
                    what: req.url.clone(),
                    why: "the registry started an upload without a Location".into(),
                })),
                _ => Err(self.status_error(&req, r)),
            }
        })
    }

    /// Uploads the file from offset 0 into the session at `location`. `Ok(false)` when
    /// the session was lost and the upload must start again.
    fn upload(
        &self,
        location: &str,
        d: &Digest,
        size: u64,
        src: &mut Source,
        requests: &mut u32,
    ) -> Result<bool> {
        let chunk = self.opts.chunk_size.max(1) as u64;
        let mut buf = Vec::new();
        let mut location = location.to_string();
        let mut offset = 0u64;
        let mut failures = 0u32;
        // One request for a blob that fits in a chunk (PUT with the data); PATCH chunks
        // and an empty PUT otherwise.
        let monolithic = size <= chunk;
        while !monolithic && offset < size {
            let n = chunk.min(size - offset);
            src.read_at(offset, n, &mut buf)?;
            *requests += 1;
            let req = Req {
                method: "PATCH",
                url: location.clone(),
                headers: vec![
                    ("Content-Type", "application/octet-stream".into()),
                    ("Content-Range", format!("{offset}-{}", offset + n - 1)),
                ],
                body: Some(&buf),
            };
            let r = self.call(&req, false, &mut |r| {
                let status = r.status().as_u16();
                let loc = header(r, "location");
                let range = header(r, "range");
                drain(r);
                match status {
                    202 => Ok(Some((loc, range))),
                    404 | 416 => Ok(None),
                    _ => Err(self.status_error(&req, r)),
                }
            });
            match r {
                Ok(Some((loc, range))) => {
                    lock(&self.stats).bytes_uploaded += n;
                    if let Some(l) = loc {
                        location = self.absolute(&l);
                    }
                    offset = match range.as_deref().and_then(range_end) {
                        Some(end) => end + 1,
                        None => offset + n,
                    };
                }
                Ok(None) => return Ok(false),
                Err(Error::Transport { why, .. }) => {
                    failures += 1;
                    if failures > self.opts.retry.attempts {
                        return Err(Error::Transport {
                            method: "PATCH".into(),
                            url: location,
                            why,
                            attempts: failures,
                        });
                    }
                    lock(&self.stats).retries += 1;
                    std::thread::sleep(self.opts.retry.base_delay * failures);
                    // Resume where the registry says it is.
                    match self.upload_status(&location)? {
                        Some((loc, end)) => {
                            location = loc;
                            offset = end.map_or(0, |e| e + 1);
                        }
                        None => return Ok(false),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let body = if monolithic {
            src.read_at(0, size, &mut buf)?;
            Some(buf.as_slice())
        } else {
            None
        };
        *requests += 1;
        let sep = if location.contains('?') { '&' } else { '?' };
        let req = Req {
            method: "PUT",
            url: format!("{location}{sep}digest={d}"),
            headers: vec![("Content-Type", "application/octet-stream".into())],
            body,
        };
        let done = self.call(&req, false, &mut |r| {
            let status = r.status().as_u16();
            let answered = header(r, "docker-content-digest");
            let text = answer(r);
            match status {
                201 => {
                    if let Some(a) = answered
                        && a != d.to_string()
                    {
                        return Err(Failure::Fatal(Error::DigestMismatch {
                            url: req.url.clone(),
                            sent: *d,
                            answered: a,
                        }));
                    }
                    Ok(true)
                }
                404 => Ok(false),
                400 if text.contains("DIGEST_INVALID") => Err(Failure::Fatal(Error::Invalid {
                    what: src.name(),
                    why: format!(
                        "the registry computed another digest than {d}: the blob does not hold what its name says (the layout was modified, or the file changed while pushing)"
                    ),
                })),
                _ => Err(Failure::Fatal(Error::Status {
                    method: "PUT".into(),
                    url: req.url.clone(),
                    status,
                    answer: text,
                })),
            }
        });
        match done {
            Ok(ok) => {
                if ok && monolithic {
                    lock(&self.stats).bytes_uploaded += size;
                }
                Ok(ok)
            }
            // The answer was lost: whether the blob landed is asked by the caller.
            Err(Error::Transport { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends the whole blob in one `PUT <location>?digest=` whose body streams from the
    /// source (never held in memory), hashing it on the way. `Ok(false)`: the registry
    /// did not take it (the caller falls back to chunks).
    fn upload_streamed(
        &self,
        location: &str,
        d: &Digest,
        size: u64,
        data: BlobSource,
    ) -> Result<bool> {
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={d}");
        let reader: Box<dyn Read> = match data {
            BlobSource::File(p) => Box::new(std::fs::File::open(p).map_err(io("cannot open", p))?),
            BlobSource::Bytes(b) => Box::new(std::io::Cursor::new(b)),
        };
        let mut reader = kiln_core::HashingReader::new(reader.take(size));
        lock(&self.stats).requests += 1;
        let mut b = ureq::http::Request::builder()
            .method("PUT")
            .uri(&url)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", size.to_string());
        if let Some(a) = lock(&self.authorization).clone() {
            b = b.header("Authorization", a);
        }
        let req = b
            .body(ureq::SendBody::from_reader(&mut reader))
            .map_err(|e| Error::Invalid {
                what: url.clone(),
                why: e.to_string(),
            })?;
        let mut resp = match self.agent.run(req) {
            Ok(r) => r,
            Err(e) => {
                return Err(Error::Transport {
                    method: "PUT".into(),
                    url,
                    why: transport_why(&e),
                    attempts: 1,
                });
            }
        };
        let (sent, n) = reader.finish();
        let status = resp.status().as_u16();
        let answered = header(&resp, "docker-content-digest");
        let text = answer(&mut resp);
        if n != size || sent != *d {
            return Err(Error::Invalid {
                what: format!("the blob sent as {d}"),
                why: format!(
                    "its {n} bytes hash to {sent}: the blob does not hold what its name says (the layout was modified, or the file changed while pushing)"
                ),
            });
        }
        match status {
            201 => {
                if let Some(a) = answered
                    && a != d.to_string()
                {
                    return Err(Error::DigestMismatch {
                        url,
                        sent: *d,
                        answered: a,
                    });
                }
                lock(&self.stats).bytes_uploaded += size;
                Ok(true)
            }
            400 if text.contains("DIGEST_INVALID") => Err(Error::Invalid {
                what: format!("the blob sent as {d}"),
                why: "the registry computed another digest: the blob does not hold what its name says (the layout was modified)".into(),
            }),
            s if s == 401 || s == 404 || s == 416 || s == 429 || s >= 500 => Ok(false),
            _ => Err(Error::Status {
                method: "PUT".into(),
                url,
                status,
                answer: text,
            }),
        }
    }

    /// `GET` on an upload URL: the session's current Location and the last byte offset
    /// it holds (`None` when nothing yet). `None` when the session is gone.
    fn upload_status(&self, location: &str) -> Result<Option<(String, Option<u64>)>> {
        let req = Req {
            method: "GET",
            url: location.to_string(),
            headers: vec![],
            body: None,
        };
        self.call(&req, true, &mut |r| {
            let status = r.status().as_u16();
            let loc = header(r, "location").map(|l| self.absolute(&l));
            let range = header(r, "range");
            drain(r);
            match status {
                204 | 202 => Ok(Some((
                    loc.unwrap_or_else(|| location.to_string()),
                    range.as_deref().and_then(range_end),
                ))),
                404 => Ok(None),
                _ => Err(self.status_error(&req, r)),
            }
        })
    }

    /// Streams blob `d` into `out`, verifying its digest and size as it goes.
    pub fn pull_blob(&self, d: &Digest, size: u64, out: &mut dyn SeekWrite) -> Result<()> {
        let mut url = self.url(&format!("blobs/{d}"));
        // Registries may redirect blob GETs to their storage; follow a few by hand
        // (without sending the registry's Authorization elsewhere).
        for _ in 0..4 {
            let req = Req {
                method: "GET",
                url: url.clone(),
                headers: vec![],
                body: None,
            };
            let redirect = self.call(&req, true, &mut |r| {
                let status = r.status().as_u16();
                if matches!(status, 301 | 302 | 303 | 307 | 308) {
                    let l = header(r, "location");
                    drain(r);
                    return l.map(|l| Some(self.absolute(&l))).ok_or_else(|| {
                        Failure::Fatal(Error::Invalid {
                            what: req.url.clone(),
                            why: "redirect without Location".into(),
                        })
                    });
                }
                if status != 200 {
                    return Err(self.status_error(&req, r));
                }
                out.rewind().map_err(|e| Failure::Transient(e.to_string()))?;
                out.truncate().map_err(|e| Failure::Transient(e.to_string()))?;
                let mut reader = kiln_core::HashingReader::new(
                    r.body_mut().with_config().limit(size.saturating_add(1)).reader(),
                );
                if let Err(e) = std::io::copy(&mut reader, out) {
                    return Err(Failure::Transient(format!("body: {e}")));
                }
                let (got, n) = reader.finish();
                if n < size {
                    return Err(Failure::Transient(format!("body cut short at {n} of {size} bytes")));
                }
                if n != size || got != *d {
                    return Err(Failure::Fatal(Error::Invalid {
                        what: req.url.clone(),
                        why: format!("the registry served {n} bytes with digest {got}, not {size} bytes of {d}"),
                    }));
                }
                Ok(None)
            })?;
            match redirect {
                None => return Ok(()),
                Some(to) => url = to,
            }
        }
        Err(Error::Invalid {
            what: self.url(&format!("blobs/{d}")),
            why: "too many redirects".into(),
        })
    }

    /// The manifest `reference` (a tag or digest) names, or `None` when there is none.
    pub fn get_manifest(&self, reference: &str) -> Result<Option<Manifest>> {
        let req = Req {
            method: "GET",
            url: self.url(&format!("manifests/{reference}")),
            headers: vec![(
                "Accept",
                [
                    MEDIA_TYPE_OCI_MANIFEST,
                    MEDIA_TYPE_OCI_INDEX,
                    MEDIA_TYPE_DOCKER_MANIFEST,
                    MEDIA_TYPE_DOCKER_LIST,
                ]
                .join(", "),
            )],
            body: None,
        };
        self.call(&req, true, &mut |r| match r.status().as_u16() {
            200 => {
                let media_type = header(r, "content-type").unwrap_or_default();
                let etag = header(r, "etag");
                let answered = header(r, "docker-content-digest");
                let expected_len = header(r, "content-length").and_then(|v| v.parse::<u64>().ok());
                let bytes = r
                    .body_mut()
                    .with_config()
                    .limit(MANIFEST_LIMIT)
                    .read_to_vec()
                    .map_err(|e| Failure::Transient(format!("body: {e}")))?;
                if expected_len.is_some_and(|l| l != bytes.len() as u64) {
                    return Err(Failure::Transient("body cut short".into()));
                }
                let digest = Digest::of(&bytes);
                // A manifest fetched by digest must hash to it; one fetched by tag must
                // hash to what the registry says it is.
                let want = reference
                    .parse::<Digest>()
                    .ok()
                    .map(|d| d.to_string())
                    .or(answered);
                if let Some(w) = want
                    && w != digest.to_string()
                {
                    return Err(Failure::Fatal(Error::Invalid {
                        what: req.url.clone(),
                        why: format!("the manifest served hashes to {digest}, not {w}"),
                    }));
                }
                Ok(Some(Manifest {
                    media_type,
                    digest,
                    bytes,
                    etag,
                }))
            }
            404 => {
                drain(r);
                Ok(None)
            }
            _ => Err(self.status_error(&req, r)),
        })
    }

    /// The digest `reference` resolves to (HEAD), or `None`.
    pub fn manifest_digest(&self, reference: &str) -> Result<Option<Digest>> {
        let req = Req {
            method: "HEAD",
            url: self.url(&format!("manifests/{reference}")),
            headers: vec![(
                "Accept",
                [MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_OCI_INDEX].join(", "),
            )],
            body: None,
        };
        let answered = self.call(&req, true, &mut |r| match r.status().as_u16() {
            200 => Ok(Some(header(r, "docker-content-digest"))),
            404 => Ok(None),
            _ => Err(self.status_error(&req, r)),
        })?;
        match answered {
            None => Ok(None),
            Some(Some(d)) => d.parse().map(Some).map_err(|_| Error::Invalid {
                what: req.url.clone(),
                why: format!("Docker-Content-Digest `{d}` is not a sha256 digest"),
            }),
            // No digest header: ask for the bytes.
            Some(None) => Ok(self.get_manifest(reference)?.map(|m| m.digest)),
        }
    }

    /// PUTs `bytes` as the manifest `reference` (tag or digest) names. The registry must
    /// confirm the digest kiln computed: a registry that rewrites manifests is an error.
    /// Returns the digest and whether the registry answered `OCI-Subject` (it keeps a
    /// referrers index itself).
    pub fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(Digest, bool)> {
        match self.put_manifest_if(reference, media_type, bytes, None)? {
            (PutIf::Done(d), subject) => Ok((d, subject)),
            (PutIf::PreconditionFailed, _) => unreachable!("no precondition was sent"),
        }
    }

    /// [`Client::put_manifest`] with `If-Match: <etag>` (for the referrers tag schema).
    pub fn put_manifest_if(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
        if_match: Option<&str>,
    ) -> Result<(PutIf, bool)> {
        let digest = Digest::of(bytes);
        let mut headers = vec![("Content-Type", media_type.to_string())];
        if let Some(e) = if_match {
            headers.push(("If-Match", e.to_string()));
        }
        let req = Req {
            method: "PUT",
            url: self.url(&format!("manifests/{reference}")),
            headers,
            body: Some(bytes),
        };
        let out = self.call(&req, true, &mut |r| {
            let status = r.status().as_u16();
            let answered = header(r, "docker-content-digest");
            let subject = header(r, "oci-subject").is_some();
            match status {
                201 | 200 => {
                    drain(r);
                    match answered {
                        Some(a) if a != digest.to_string() => {
                            Err(Failure::Fatal(Error::DigestMismatch {
                                url: req.url.clone(),
                                sent: digest,
                                answered: a,
                            }))
                        }
                        _ => Ok((PutIf::Done(digest), subject)),
                    }
                }
                412 => {
                    drain(r);
                    Ok((PutIf::PreconditionFailed, subject))
                }
                _ => Err(self.status_error(&req, r)),
            }
        })?;
        lock(&self.stats).bytes_uploaded += bytes.len() as u64;
        Ok(out)
    }

    /// The referrers API's index for `subject`, or `None` when the registry has no
    /// referrers API (404, as the distribution spec says such registries answer).
    pub fn referrers(&self, subject: &Digest) -> Result<Option<Vec<u8>>> {
        let req = Req {
            method: "GET",
            url: self.url(&format!("referrers/{subject}")),
            headers: vec![("Accept", MEDIA_TYPE_OCI_INDEX.into())],
            body: None,
        };
        self.call(&req, true, &mut |r| match r.status().as_u16() {
            200 => {
                let ct = header(r, "content-type").unwrap_or_default();
                let bytes = r
                    .body_mut()
                    .with_config()
                    .limit(MANIFEST_LIMIT)
                    .read_to_vec()
                    .map_err(|e| Failure::Transient(format!("body: {e}")))?;
                // Some registries answer 200 with an HTML page or an error document for
                // unknown routes; only an OCI index is a referrers listing.
                if !ct.starts_with(MEDIA_TYPE_OCI_INDEX) {
                    return Ok(None);
                }
                Ok(Some(bytes))
            }
            404 | 400 | 405 => {
                drain(r);
                Ok(None)
            }
            _ => Err(self.status_error(&req, r)),
        })
    }
}

enum Started {
    Mounted,
    Session(String),
}

/// A pull destination: written from the start again when an attempt is retried.
pub trait SeekWrite: Write + Seek {
    fn truncate(&mut self) -> std::io::Result<()>;
}

impl SeekWrite for std::fs::File {
    fn truncate(&mut self) -> std::io::Result<()> {
        self.set_len(0)
    }
}

impl SeekWrite for std::io::Cursor<Vec<u8>> {
    fn truncate(&mut self) -> std::io::Result<()> {
        self.get_mut().clear();
        Ok(())
    }
}

/// Where a blob's bytes come from.
#[derive(Clone, Copy)]
pub enum BlobSource<'a> {
    /// A file, read a chunk at a time.
    File(&'a Path),
    Bytes(&'a [u8]),
}

enum Source<'a> {
    File(std::fs::File, &'a Path),
    Bytes(&'a [u8]),
}

impl<'a> Source<'a> {
    fn open(data: BlobSource<'a>) -> Result<Source<'a>> {
        Ok(match data {
            BlobSource::File(p) => {
                Source::File(std::fs::File::open(p).map_err(io("cannot open", p))?, p)
            }
            BlobSource::Bytes(b) => Source::Bytes(b),
        })
    }

    fn name(&self) -> String {
        match self {
            Source::File(_, p) => p.display().to_string(),
            Source::Bytes(_) => "(generated blob)".into(),
        }
    }

    fn read_at(&mut self, offset: u64, n: u64, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        match self {
            Source::File(file, path) => {
                buf.resize(n as usize, 0);
                file.seek(SeekFrom::Start(offset))
                    .map_err(io("cannot read", path))?;
                file.read_exact(buf).map_err(io("cannot read", path))
            }
            Source::Bytes(b) => {
                let end = offset.saturating_add(n) as usize;
                let part = b.get(offset as usize..end).ok_or_else(|| Error::Invalid {
                    what: "(generated blob)".into(),
                    why: "shorter than its descriptor says".into(),
                })?;
                buf.extend_from_slice(part);
                Ok(())
            }
        }
    }
}

/// A lock that a panicking holder cannot make unusable (the data are counters and a
/// header value, consistent at every instant).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn header(r: &Resp, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// Reads and discards what is left of a body, so the connection can be reused.
fn drain(r: &mut Resp) {
    let _ = std::io::copy(
        &mut r.body_mut().with_config().limit(1 << 20).reader(),
        &mut std::io::sink(),
    );
}

/// The start of an error answer, for messages.
fn answer(r: &mut Resp) -> String {
    let body = r
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_string()
        .unwrap_or_default();
    let body = body.trim();
    match body.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &body[..i]),
        None if body.is_empty() => "(no body)".into(),
        None => body.to_string(),
    }
}

fn transport_why(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::Io(io) => format!("connection: {io}"),
        other => other.to_string(),
    }
}

/// `Range: 0-N` (or `bytes=0-N`) → N.
fn range_end(v: &str) -> Option<u64> {
    let v = v.trim().trim_start_matches("bytes=");
    let (start, end) = v.split_once('-')?;
    start.trim().parse::<u64>().ok()?;
    end.trim().parse().ok()
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_header_forms() {
        assert_eq!(range_end("0-1023"), Some(1023));
        assert_eq!(range_end("bytes=0-9"), Some(9));
        assert_eq!(range_end("0--1"), None);
        assert_eq!(range_end("junk"), None);
    }

    #[test]
    fn plain_http_only_on_this_machine() {
        let remote = Reference::parse("registry.example.com/a/b:1").unwrap();
        let opts = Options {
            insecure_http: true,
            credentials: Some(Credentials::Anonymous),
            ..Options::default()
        };
        assert!(matches!(
            Client::new(&remote, opts.clone()),
            Err(Error::InsecureRemote { .. })
        ));
        let local = Reference::parse("127.0.0.1:5000/a/b:1").unwrap();
        assert!(Client::new(&local, opts).is_ok());
    }
}
