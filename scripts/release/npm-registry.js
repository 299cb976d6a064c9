// A read-only npm registry on loopback that serves the packages in one directory of
// `npm pack` tarballs, so a release check can run `npm install <name>` exactly as a user
// types it, without network. Any other name answers 404, as an unpublished one would
// (npm skips an optional dependency it cannot find, and fails on a required one).
//
//   node npm-registry.js DIR PORT_FILE   serves until killed; writes its port to PORT_FILE
'use strict';

const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const [dir, portFile] = process.argv.slice(2);
if (!dir || !portFile) {
  console.error('usage: node npm-registry.js DIR PORT_FILE');
  process.exit(2);
}

/** name -> { manifest, file, bytes } for every tarball in `dir`. */
const packages = new Map();
for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.tgz'))) {
  const full = path.join(dir, file);
  const manifest = JSON.parse(execFileSync('tar', ['-xzOf', full, 'package/package.json'], { encoding: 'utf8' }));
  if (packages.has(manifest.name)) throw new Error(`two tarballs of ${manifest.name} in ${dir}`);
  packages.set(manifest.name, { manifest, file, bytes: fs.readFileSync(full) });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://registry');
  const tarball = url.pathname.match(/^\/-\/(.+\.tgz)$/);
  if (tarball) {
    const entry = [...packages.values()].find((p) => p.file === tarball[1]);
    if (!entry) return res.writeHead(404).end();
    return res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(entry.bytes);
  }
  const entry = packages.get(decodeURIComponent(url.pathname.slice(1)));
  if (!entry) return res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
  const { manifest, file, bytes } = entry;
  const base = `http://${req.headers.host}`;
  const packument = {
    name: manifest.name,
    'dist-tags': { latest: manifest.version },
    versions: {
      [manifest.version]: {
        ...manifest,
        _id: `${manifest.name}@${manifest.version}`,
        dist: {
          tarball: `${base}/-/${file}`,
          integrity: `sha512-${crypto.createHash('sha512').update(bytes).digest('base64')}`,
          shasum: crypto.createHash('sha1').update(bytes).digest('hex'),
        },
      },
    },
  };
  return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(packument));
});

server.listen(0, '127.0.0.1', () => fs.writeFileSync(portFile, String(server.address().port)));
