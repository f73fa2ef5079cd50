// A local Sigstore for kiln's keyless tests: @sigstore/mock's Fulcio and Rekor handlers
// served over plain HTTP on 127.0.0.1, plus a stand-in for GitHub Actions' OIDC token
// endpoint.
//
//   node server.mjs NODE_MODULES_DIR
//
// Listens on a random port and prints one JSON line on stdout:
//   { url, fulcio_root_pem, ctlog_public_key_der, rekor_public_key_pem,
//     rekor_public_key_der, token_url, token_request_token, token }
// (DER values base64). Exits when stdin closes, so a test that dies does not leave it
// running.
//
// What @sigstore/mock 0.12 does and does not do (kiln's tests rely on both):
// * Fulcio (POST /api/v2/signingCert): decodes the OIDC token WITHOUT checking its
//   signature, audience or expiry (jose.decodeJwt), ignores the proof of possession, and
//   issues a leaf whose URI SAN is the token's `sub` claim and whose issuer extensions
//   (OID 1.3.6.1.4.1.57264.1.1 and .1.8) are its `iss` claim, signed directly by the root
//   (no intermediate), with an embedded SCT when a CT log is configured (it is here).
// * Rekor (POST /api/v1/log/entries): does not validate the proposed entry at all; it
//   stores it canonicalized as the entry body, so the body is what the client sent, not
//   what a real Rekor would canonicalize. It answers with a signed entry timestamp and an
//   inclusion proof for a one-leaf tree plus a signed checkpoint.
// So the token made here is an unsigned JWT (alg "none").

import http from 'node:http';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';

const nodeModules = process.argv[2];
if (!nodeModules) {
  console.error('usage: node server.mjs NODE_MODULES_DIR');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(nodeModules), 'noop.js'));
const mock = require('@sigstore/mock');

// The claims of a GitHub Actions token for a release workflow. Real Fulcio takes the SAN
// of a GitHub Actions certificate from `job_workflow_ref`; the mock takes it from `sub`,
// so `sub` carries the workflow identity here.
const ISSUER = 'https://token.actions.githubusercontent.com';
const SUBJECT = 'https://github.com/kiln-build/kiln/.github/workflows/release.yml@refs/tags/v1.0.0';
const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const now = Math.floor(Date.now() / 1000);
const token = [
  b64url({ alg: 'none', typ: 'JWT' }),
  b64url({
    iss: ISSUER,
    sub: SUBJECT,
    aud: 'sigstore',
    iat: now,
    nbf: now,
    exp: now + 3600,
    repository: 'kiln-build/kiln',
    ref: 'refs/tags/v1.0.0',
    sha: '0123456789abcdef0123456789abcdef01234567',
    workflow: 'release',
    job_workflow_ref: 'kiln-build/kiln/.github/workflows/release.yml@refs/tags/v1.0.0',
    event_name: 'push',
    runner_environment: 'github-hosted',
  }),
  '',
].join('.');
const requestToken = crypto.randomBytes(16).toString('hex');

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${server.address().port}`;

// Like Sigstore's public instance: a P-384 CA, P-256 CT log and transparency log keys.
const caKeys = crypto.generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
const ctKeys = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const tlogKeys = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const ctlog = await mock.initializeCTLog(ctKeys);
const ca = await mock.initializeCA(caKeys, ctlog);
const fulcio = mock.fulcioHandler(ca, { strict: true });
// The tlog's host names the checkpoint's origin, which verifiers match against the URL.
const tlog = await mock.initializeTLog(url, tlogKeys);
const rekor = mock.rekorHandler(tlog, { strict: true });

server.on('request', (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const reply = (status, text, type = 'application/json') => {
      res.writeHead(status, { 'Content-Type': type });
      res.end(text);
    };
    try {
      const { pathname, searchParams } = new URL(req.url, url);
      if (req.method === 'POST' && pathname === fulcio.path) {
        const r = await fulcio.fn(body);
        return reply(r.statusCode, r.response, r.contentType || 'text/plain');
      }
      if (req.method === 'POST' && pathname === rekor.path) {
        const r = await rekor.fn(body);
        return reply(r.statusCode, r.response, r.contentType || 'text/plain');
      }
      // GitHub Actions' token service: GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=...
      // with `Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
      if (req.method === 'GET' && pathname === '/oidc/token') {
        if (req.headers.authorization !== `bearer ${requestToken}` && req.headers.authorization !== `Bearer ${requestToken}`) {
          return reply(401, JSON.stringify({ message: 'bad request token' }));
        }
        if (searchParams.get('audience') !== 'sigstore') {
          return reply(400, JSON.stringify({ message: `audience must be sigstore, got ${searchParams.get('audience')}` }));
        }
        return reply(200, JSON.stringify({ count: 1, value: token }));
      }
      reply(404, `no route for ${req.method} ${pathname}`, 'text/plain');
    } catch (e) {
      reply(500, String(e && e.stack ? e.stack : e), 'text/plain');
    }
  });
});

const pem = (der, label) =>
  `-----BEGIN ${label}-----\n${der.toString('base64').match(/.{1,64}/g).join('\n')}\n-----END ${label}-----\n`;
const spki = (k) => k.publicKey.export({ type: 'spki', format: 'der' });
process.stdout.write(
  JSON.stringify({
    url,
    fulcio_root_pem: pem(ca.rootCertificate, 'CERTIFICATE'),
    ctlog_public_key_der: spki(ctKeys).toString('base64'),
    rekor_public_key_pem: pem(spki(tlogKeys), 'PUBLIC KEY'),
    rekor_public_key_der: spki(tlogKeys).toString('base64'),
    token_url: `${url}/oidc/token?api-version=2.0`,
    token_request_token: requestToken,
    token,
    issuer: ISSUER,
    subject: SUBJECT,
  }) + '\n',
);

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
