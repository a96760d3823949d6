#!/usr/bin/env node
// A small CLI around the `macaroon` npm package (3.0.4) for aria_auth's interop tests
// (tests/services/auth/test_interop.py).
//
//   node interop.js            reads ONE JSON request from stdin, writes ONE JSON reply
//   node interop.js --serve    reads newline-delimited JSON requests from stdin and writes
//                              one reply line for each, in order, until stdin closes
//
// Every reply is an object with "ok": true and the operation's results, or "ok": false and
// "error" (the message of what failed: a verification failure for "verify", a bad request
// or a library error otherwise).
//
// Conventions of the requests:
//   keys (rootKey, caveatKey) are standard or URL-safe base64 of the raw bytes;
//   identifiers and caveat ids are given as text ("identifier", "id") or as base64
//   ("identifier64", "id64") for binary ones;
//   tokens are base64 of the v2 binary format, or JSON text (v1 or v2);
//   "format" of an output token is "binary" (URL-safe unpadded base64 of v2 binary,
//   the default) or "json" (the JSON text of the token's version).
//
// Operations:
//   mint          {rootKey, identifier|identifier64, location?, caveats?: [text], format?,
//                  version?: 1|2}                                      -> {token}
//   verify        {rootKey, token, discharges?: [token], satisfied?: [text]}
//                 first-party caveats hold when their text is exactly one of "satisfied"
//                                                                      -> {} or ok false
//   attenuate     {token, caveats: [text], format?}                    -> {token}
//   addThirdParty {token, caveatKey, id|id64, location?, format?}      -> {token}
//   discharge     {caveatKey, id|id64, location?, caveats?: [text], format?}
//                 a discharge (not yet bound) for that third-party caveat -> {token}
//   bind          {token, discharge, format?}  the discharge bound to the token, as the
//                 macaroon package's bindToRoot does before a request  -> {token}
//   inspect       {token}  -> {version, location, identifier64, signature (hex),
//                            caveats: [{id64, vid64?, location?}]}
//   tamper        {token, how: "replaceCaveat"|"dropCaveat"|"appendCaveat"|"flipSignature"|
//                  "identifier", index?, caveat?, format?}  the token altered WITHOUT
//                 re-signing it (what a forger could do)                -> {token}
//   convert       {token, format}  the same token in another format      -> {token}

'use strict';

const readline = require('readline');

// A shim for a bug of macaroon 3.0.4 (go-macaroon/js-macaroon issue #41, fixed upstream
// by PR #40 but not in the published package): ByteBuffer._grow tests
// `minCap <= this._capacity`, a field that is never set, so the buffer doubles on EVERY
// append; exportBinary() of a macaroon with about five caveats asks for a Uint8Array of
// more than 2^32 bytes and throws "RangeError: Invalid typed array length". The getter
// below supplies the missing field (the current buffer size) for objects that lack it,
// which is exactly the upstream fix; the encoding itself stays the package's own. The
// setter keeps a fixed version that does assign `_capacity` working.
Object.defineProperty(Object.prototype, '_capacity', {
  configurable: true,
  enumerable: false,
  get() {
    return this._buf instanceof Uint8Array ? this._buf.length : undefined;
  },
  set(value) {
    Object.defineProperty(this, '_capacity', {
      value, writable: true, configurable: true, enumerable: true,
    });
  },
});

const macaroon = require('macaroon');

function fail(message) {
  throw new Error(message);
}

function bytesFromBase64(text, what) {
  if (typeof text !== 'string') {
    fail(`${what} must be a base64 string`);
  }
  return new Uint8Array(macaroon.base64ToBytes(text));
}

function toBase64(bytes) {
  return Buffer.from(bytes).toString('base64');
}

function bytesField(request, name) {
  if (typeof request[name + '64'] === 'string') {
    return bytesFromBase64(request[name + '64'], name + '64');
  }
  if (typeof request[name] === 'string') {
    return new Uint8Array(Buffer.from(request[name], 'utf8'));
  }
  return fail(`the request needs "${name}" (text) or "${name}64" (base64)`);
}

function textList(value, what) {
  if (value === undefined || value === null) {
    return [];
  }
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) {
    fail(`${what} must be a list of strings`);
  }
  return value;
}

function importToken(token, what = 'token') {
  if (typeof token !== 'string' || !token.trim()) {
    fail(`${what} must be a non-empty string`);
  }
  const text = token.trim();
  return macaroon.importMacaroon(text.startsWith('{') ? JSON.parse(text) : text);
}

function exportToken(m, format) {
  if (format === undefined || format === 'binary') {
    return macaroon.bytesToBase64(m.exportBinary());
  }
  if (format === 'json') {
    return JSON.stringify(m.exportJSON());
  }
  return fail(`unknown format ${JSON.stringify(format)} (binary or json)`);
}

function mint(request) {
  const m = macaroon.newMacaroon({
    rootKey: bytesFromBase64(request.rootKey, 'rootKey'),
    identifier: bytesField(request, 'identifier'),
    location: request.location || '',
    version: request.version === undefined ? 2 : request.version,
  });
  for (const caveat of textList(request.caveats, 'caveats')) {
    m.addFirstPartyCaveat(caveat);
  }
  return {token: exportToken(m, request.format)};
}

function verify(request) {
  const m = importToken(request.token);
  const discharges = textList(request.discharges, 'discharges').map(
    (d, i) => importToken(d, `discharge ${i + 1}`));
  const satisfied = new Set(textList(request.satisfied, 'satisfied'));
  const check = (condition) => (satisfied.has(condition) ? null : 'not satisfied');
  try {
    m.verify(bytesFromBase64(request.rootKey, 'rootKey'), check, discharges);
  } catch (error) {
    return {ok: false, error: String(error && error.message ? error.message : error)};
  }
  return {};
}

function attenuate(request) {
  const m = importToken(request.token);
  for (const caveat of textList(request.caveats, 'caveats')) {
    m.addFirstPartyCaveat(caveat);
  }
  return {token: exportToken(m, request.format)};
}

function addThirdParty(request) {
  const m = importToken(request.token);
  m.addThirdPartyCaveat(
    bytesFromBase64(request.caveatKey, 'caveatKey'), bytesField(request, 'id'),
    request.location || '');
  return {token: exportToken(m, request.format)};
}

function discharge(request) {
  return mint({
    rootKey: request.caveatKey,
    identifier: request.id,
    identifier64: request.id64,
    location: request.location,
    caveats: request.caveats,
    format: request.format,
  });
}

function bind(request) {
  const root = importToken(request.token);
  const d = importToken(request.discharge, 'discharge');
  d.bindToRoot(root.signature);
  return {token: exportToken(d, request.format)};
}

function inspect(request) {
  const m = importToken(request.token);
  return {
    version: m._version,
    location: m.location || '',
    identifier64: toBase64(m.identifier),
    signature: Buffer.from(m.signature).toString('hex'),
    caveats: m.caveats.map((c) => (c.vid ? {
      id64: toBase64(c.identifier), vid64: toBase64(c.vid), location: c.location || '',
    } : {id64: toBase64(c.identifier)})),
  };
}

// Rebuild a token from its parts, keeping the given signature: importMacaroon of a v2
// JSON object is the package's own way to make a Macaroon from fields.
function rebuild(parts, format) {
  const obj = {
    v: 2,
    s64: toBase64(parts.signature),
    i64: toBase64(parts.identifier),
    c: parts.caveats.map((c) => (c.vid ? {
      i64: toBase64(c.identifier), v64: toBase64(c.vid), l: c.location || '',
    } : {i64: toBase64(c.identifier)})),
  };
  if (parts.location) {
    obj.l = parts.location;
  }
  return exportToken(macaroon.importMacaroon(obj), format);
}

function tamper(request) {
  const m = importToken(request.token);
  const parts = {
    location: m.location,
    identifier: m.identifier,
    caveats: m.caveats,
    signature: new Uint8Array(m.signature),
  };
  const index = request.index === undefined ? 0 : request.index;
  if ((request.how === 'replaceCaveat' || request.how === 'dropCaveat') &&
      (index < 0 || index >= parts.caveats.length)) {
    fail(`no caveat at index ${index}`);
  }
  switch (request.how) {
    case 'replaceCaveat':
      parts.caveats[index] = {identifier: new Uint8Array(Buffer.from(request.caveat, 'utf8'))};
      break;
    case 'dropCaveat':
      parts.caveats.splice(index, 1);
      break;
    case 'appendCaveat':
      parts.caveats.push({identifier: new Uint8Array(Buffer.from(request.caveat, 'utf8'))});
      break;
    case 'flipSignature':
      parts.signature[index % parts.signature.length] ^= 0x01;
      break;
    case 'identifier':
      parts.identifier = bytesField(request, 'identifier');
      break;
    default:
      fail(`unknown tampering ${JSON.stringify(request.how)}`);
  }
  return {token: rebuild(parts, request.format)};
}

function convert(request) {
  return {token: exportToken(importToken(request.token), request.format)};
}

const OPERATIONS = {mint, verify, attenuate, addThirdParty, discharge, bind, inspect, tamper,
  convert};

function handle(line) {
  let request;
  try {
    request = JSON.parse(line);
  } catch (error) {
    return {ok: false, error: `the request is not JSON: ${error.message}`};
  }
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    return {ok: false, error: 'the request is a JSON object'};
  }
  const operation = Object.prototype.hasOwnProperty.call(OPERATIONS, request.op) ?
    OPERATIONS[request.op] : undefined;
  if (!operation) {
    return {ok: false, error: `unknown operation ${JSON.stringify(request.op)}`};
  }
  try {
    return Object.assign({ok: true}, operation(request));
  } catch (error) {
    return {ok: false, error: String(error && error.message ? error.message : error)};
  }
}

function reply(result) {
  process.stdout.write(JSON.stringify(result) + '\n');
}

function main(argv) {
  if (argv.includes('--serve')) {
    const lines = readline.createInterface({input: process.stdin, crlfDelay: Infinity});
    lines.on('line', (line) => {
      if (line.trim()) {
        reply(handle(line));
      }
    });
    return;
  }
  const chunks = [];
  process.stdin.on('data', (chunk) => chunks.push(chunk));
  process.stdin.on('end', () => {
    const result = handle(Buffer.concat(chunks).toString('utf8'));
    reply(result);
    process.exitCode = result.ok ? 0 : 1;
  });
}

main(process.argv.slice(2));
