// Runs dynalite on 127.0.0.1, on CEDARFLOW_DYNAMODB_PORT or a port chosen by the OS, and prints {"port": N} once listening.
// Usage: node dynalite_launch.js MODULES_DIR [DATA_PATH]. Exits on SIGTERM/SIGINT or when stdin
// closes, so it never outlives the process that started it.
//
// With CEDARFLOW_DYNAMODB_ACCESS_KEY_ID and CEDARFLOW_DYNAMODB_SECRET_ACCESS_KEY in the
// environment, only requests signed with that key (AWS Signature Version 4, as boto3 signs) reach
// dynalite; others get DynamoDB's own JSON error. The whole signature is checked, not just the key
// id: the key id travels in every request header (and in debug logs), the secret never does.
'use strict';
const crypto = require('crypto');
const path = require('path');
const { Readable } = require('stream');

const [modulesDir, dataPath] = process.argv.slice(2);
const dynalite = require(path.join(modulesDir, 'dynalite'));

const options = { createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 };
if (dataPath) options.path = dataPath;
const server = dynalite(options);

const MAX_BODY_BYTES = 16 * 1024 * 1024; // dynalite's own limit
const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000; // AWS's
const AUTHORIZATION = new RegExp(
  '^AWS4-HMAC-SHA256 Credential=([^/,\\s]+)/([0-9]{8})/([a-z0-9-]+)/dynamodb/aws4_request,\\s*' +
    'SignedHeaders=([a-z0-9;-]+),\\s*Signature=([0-9a-f]{64})$',
);

const accessKeyId = process.env.CEDARFLOW_DYNAMODB_ACCESS_KEY_ID;
const secretKey = process.env.CEDARFLOW_DYNAMODB_SECRET_ACCESS_KEY;
if (Boolean(accessKeyId) !== Boolean(secretKey)) {
  process.stderr.write('dynalite: the key id and the secret key are given together or not at all\n');
  process.exit(2);
}
if (accessKeyId) guard(server, accessKeyId, secretKey);

// Puts the signature check in front of dynalite's own request handler.
function guard(httpServer, keyId, secret) {
  const [handle] = httpServer.listeners('request');
  httpServer.removeAllListeners('request');
  httpServer.on('request', (req, res) => {
    const chunks = [];
    let size = 0;
    req.on('error', () => res.destroy());
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) {
        res.statusCode = 413;
        return res.end();
      }
      const body = Buffer.concat(chunks);
      const refusal = checkSignature(req, body, keyId, secret);
      if (refusal) return refuse(res, refusal);
      // dynalite reads the body from the request stream: give it the bytes just checked.
      const replay = Readable.from(body.length ? [body] : []);
      Object.assign(replay, { headers: req.headers, method: req.method, url: req.url });
      handle(replay, res);
    });
  });
}

// Why the request is refused ([type, message]), or null when it is signed with our key.
function checkSignature(req, body, keyId, secret) {
  const unrecognized = ['UnrecognizedClientException', 'The security token included in the request is invalid.'];
  const match = AUTHORIZATION.exec(req.headers.authorization || '');
  if (!match || match[1] !== keyId) return unrecognized;
  const [, , day, region, signedHeaders, signature] = match;
  const invalid = ['InvalidSignatureException', 'The request signature we calculated does not match the signature you provided.'];
  const amzDate = req.headers['x-amz-date'] || '';
  const stamp = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  if (!stamp || amzDate.slice(0, 8) !== day || req.url !== '/') return invalid;
  const [, y, mo, d, h, mi, s] = stamp.map(Number);
  if (Math.abs(Date.now() - Date.UTC(y, mo - 1, d, h, mi, s)) > MAX_CLOCK_SKEW_MS) {
    return ['InvalidSignatureException', 'Signature expired or not yet current.'];
  }
  const names = signedHeaders.split(';');
  if (!names.includes('host') || !names.includes('x-amz-date')) return invalid;
  if (names.some((name) => typeof req.headers[name] !== 'string')) return invalid;
  const canonicalHeaders = names
    .map((name) => `${name}:${req.headers[name].trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  const canonicalRequest = [req.method, '/', '', canonicalHeaders, signedHeaders, sha256(body)].join('\n');
  const scope = `${day}/${region}/dynamodb/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
  let key = `AWS4${secret}`;
  for (const part of [day, region, 'dynamodb', 'aws4_request']) key = hmac(key, part);
  const expected = hmac(key, stringToSign);
  return crypto.timingSafeEqual(expected, Buffer.from(signature, 'hex')) ? null : invalid;
}

function refuse(res, [type, message]) {
  const body = JSON.stringify({ __type: `com.amazon.coral.service#${type}`, message });
  res.writeHead(400, {
    'Content-Type': 'application/x-amz-json-1.0',
    'Content-Length': Buffer.byteLength(body),
    'x-amzn-RequestId': crypto.randomUUID(),
  });
  res.end(body);
}

function sha256(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

function hmac(key, data) {
  return crypto.createHmac('sha256', key).update(data).digest();
}

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  // dynalite's close() also closes LevelDB; do not wait forever on a stuck client.
  setTimeout(() => process.exit(0), 3000).unref();
  if (typeof server.closeAllConnections === 'function') server.closeAllConnections();
  server.close(() => process.exit(0));
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.on('error', stop);
process.stdin.resume();

server.on('error', (err) => {
  process.stderr.write(`dynalite: ${err.message}\n`);
  process.exit(1);
});
server.listen(Number(process.env.CEDARFLOW_DYNAMODB_PORT || 0), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
