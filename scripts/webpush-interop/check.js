// check.js KEYS.json REQUESTS.json — checks Web Push requests tilecast
// built (TestInteropRequests -interop-out) against the Node reference:
//   - the body decrypts with http_ece (Martin Thomson's RFC 8188/8291
//     implementation) and the browser's private key to the plaintext;
//   - the RFC 8188 header: record size, key id of 65 bytes, body ≤ 4096;
//   - the headers a push service needs: TTL, Content-Encoding aes128gcm,
//     Urgency and Topic values RFC 8030 allows;
//   - the VAPID Authorization (RFC 8292): "vapid t=JWT, k=KEY", k the
//     VAPID public key, the JWT ES256-signed by it (node:crypto), aud the
//     endpoint's origin, exp in the future and at most 24 h ahead, sub a
//     mailto: address or an https: URL.
// Prints one line per request and "N passed, M failed"; exits 1 on any
// failure.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const ece = require('http_ece');

const [keysPath, requestsPath] = process.argv.slice(2);
if (!keysPath || !requestsPath) {
  console.error('usage: node check.js KEYS.json REQUESTS.json');
  process.exit(2);
}
const keys = JSON.parse(fs.readFileSync(keysPath, 'utf8'));
const requests = JSON.parse(fs.readFileSync(requestsPath, 'utf8'));
if (!Array.isArray(requests) || requests.length === 0) {
  console.error(`${requestsPath}: no requests to check`);
  process.exit(1);
}

const browser = crypto.createECDH('prime256v1');
browser.setPrivateKey(Buffer.from(keys.uaPrivateKey, 'base64url'));
const vapidPublic = Buffer.from(keys.vapid.publicKey, 'base64url');
const vapidKey = crypto.createPublicKey({
  format: 'jwk',
  key: { kty: 'EC', crv: 'P-256', x: vapidPublic.subarray(1, 33).toString('base64url'), y: vapidPublic.subarray(33, 65).toString('base64url') },
});

function check(req) {
  const problems = [];
  const h = {};
  for (const [k, v] of Object.entries(req.headers)) h[k.toLowerCase()] = String(v);
  const body = Buffer.from(req.body_base64, 'base64');

  if (req.method !== 'POST') problems.push(`method ${req.method}`);
  if (req.url !== keys.subscription.endpoint) problems.push(`url ${req.url} is not the subscription's endpoint`);
  if (!/^\d+$/.test(h.ttl || '')) problems.push(`TTL ${JSON.stringify(h.ttl)}: want whole seconds`);
  if (h['content-encoding'] !== 'aes128gcm') problems.push(`Content-Encoding ${h['content-encoding']}`);
  if (h['content-type'] !== 'application/octet-stream') problems.push(`Content-Type ${h['content-type']}`);
  if (!['very-low', 'low', 'normal', 'high'].includes(h.urgency)) problems.push(`Urgency ${h.urgency}`);
  if ('topic' in h && !/^[A-Za-z0-9_-]{1,32}$/.test(h.topic)) problems.push(`Topic ${h.topic}`);

  if (body.length > 4096) problems.push(`body of ${body.length} bytes, more than 4096`);
  if (body.length < 86 + 17) {
    problems.push(`body of ${body.length} bytes is shorter than a header and one record`);
  } else {
    const rs = body.readUInt32BE(16);
    const idlen = body[20];
    if (idlen !== 65 || body[21] !== 0x04) problems.push(`key id: length ${idlen}, first byte ${body[21]}`);
    if (body.length - 86 > rs) problems.push(`more than one record (rs ${rs}, ${body.length - 86} bytes)`);
    try {
      const plain = ece.decrypt(body, { version: 'aes128gcm', privateKey: browser, authSecret: keys.subscription.keys.auth });
      if (plain.toString('utf8') !== req.plaintext) problems.push('decrypted plaintext differs');
    } catch (e) {
      problems.push(`http_ece cannot decrypt: ${e.message}`);
    }
  }

  const m = /^vapid t=([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+), k=([A-Za-z0-9_-]+)$/.exec(h.authorization || '');
  if (!m) {
    problems.push(`Authorization is not "vapid t=JWT, k=KEY": ${(h.authorization || '').slice(0, 40)}`);
    return problems;
  }
  if (m[2] !== keys.vapid.publicKey) problems.push('k is not the VAPID public key');
  const [head, payload, sig] = m[1].split('.');
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(head, 'base64url'));
    claims = JSON.parse(Buffer.from(payload, 'base64url'));
  } catch (e) {
    problems.push(`the JWT's header or claims are not JSON: ${e.message}`);
    return problems;
  }
  if (header.alg !== 'ES256') problems.push(`alg ${header.alg}`);
  const signed = crypto.verify('sha256', Buffer.from(head + '.' + payload),
    { key: vapidKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(sig, 'base64url'));
  if (!signed) problems.push('the JWT signature does not verify against the VAPID key');
  const origin = new URL(req.url).origin;
  if (claims.aud !== origin) problems.push(`aud ${claims.aud}, want ${origin}`);
  const ahead = claims.exp - Date.now() / 1000;
  if (typeof claims.exp !== 'number' || !(ahead > 0) || ahead > 24 * 3600) problems.push(`exp ${claims.exp} is ${ahead} s ahead: want (0, 24 h]`);
  const sub = String(claims.sub || '');
  if (!/^mailto:[^@\s:]+@[^@\s]+\.[^@\s]+$/.test(sub) && !/^https:\/\/[^\s/]+\.[^\s/]+/.test(sub)) problems.push(`sub ${JSON.stringify(sub)}`);
  return problems;
}

let passed = 0;
let failed = 0;
requests.forEach((req, i) => {
  const problems = check(req);
  const what = `request ${i + 1} (${req.headers.Urgency || req.headers.urgency}, ${Buffer.from(req.body_base64, 'base64').length} bytes)`;
  if (problems.length === 0) {
    passed++;
    console.log(`ok   ${what}`);
  } else {
    failed++;
    console.log(`FAIL ${what}: ${problems.join('; ')}`);
  }
});
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
