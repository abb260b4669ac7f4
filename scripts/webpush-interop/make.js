// make.js KEYS.json OUTDIR — has npm web-push build (not send) requests
// for the subscription and VAPID key of KEYS.json, one capture file per
// case in OUTDIR, for tilecast's Go side to decrypt and verify
// (TestDecryptOtherImplementations -node-request). Prints the files'
// paths, comma-separated.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const webpush = require('web-push');

const [keysPath, outDir] = process.argv.slice(2);
const keys = JSON.parse(fs.readFileSync(keysPath, 'utf8'));
const cases = {
  'node-toast': '{"kind":"toast","title":"Ünïcode & <xml>","body":"from web-push"}',
  'node-largest': 'x'.repeat(3993), // the most one 4096-byte record carries
};
const files = [];
for (const [name, msg] of Object.entries(cases)) {
  const d = webpush.generateRequestDetails(keys.subscription, msg, {
    vapidDetails: { subject: 'mailto:ops@example.com', publicKey: keys.vapid.publicKey, privateKey: keys.vapid.privateKey },
    TTL: 600, urgency: 'low', topic: 'news',
  });
  const headers = {};
  for (const [k, v] of Object.entries(d.headers)) headers[k] = String(v);
  const file = path.join(outDir, name + '.json');
  fs.writeFileSync(file, JSON.stringify({ method: d.method, url: d.endpoint, headers,
    body_base64: d.body.toString('base64'), body_bytes: d.body.length, plaintext: msg }, null, 2));
  files.push(path.resolve(file));
}
console.log(files.join(','));
