'use strict';
// Starts the real pci-vault-server binary on a free loopback port, on a given store and
// keyring, for the tests of the server transport; stops it by its PID.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const { freePort } = require('../../../bindings/node/test/support');

/** The binary: PCI_VAULT_SERVER_BIN, else the workspace's debug build (`cargo build -p pci-vault-server`). */
const SERVER_BIN = process.env.PCI_VAULT_SERVER_BIN
  || path.join(__dirname, '../../../target/debug/pci-vault-server');

/** The links the server gives: `${PUBLIC_URL}/forms/{id}`. */
const PUBLIC_URL = 'https://pay.example.com';

/**
 * A running server on `storeUrl` with `keyring`, accepting `apiKey`. Resolves once it
 * answers /readyz (its store answers too).
 * @returns {Promise<{ url: string, stop: () => Promise<void> }>}
 */
async function startServer({ storeUrl, keyring, apiKey }) {
  if (!fs.existsSync(SERVER_BIN)) {
    throw new Error(`no pci-vault-server at ${SERVER_BIN}: run cargo build -p pci-vault-server, or set PCI_VAULT_SERVER_BIN`);
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(SERVER_BIN, [
    '--listen', `127.0.0.1:${port}`, '--public-url', PUBLIC_URL, '--store', storeUrl,
    '--api-keys', apiKey, '--reveal-rate-limit', '100000', '--shutdown-grace', '1',
  ], {
    env: { PATH: process.env.PATH, PCI_VAULT_KEYS: keyring, RUST_LOG: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // The last of its log (which never holds a key, PIN or card data), for a failure message.
  let log = '';
  child.stderr.on('data', (chunk) => { log = (log + chunk).slice(-4000); });
  const exited = new Promise((resolve) => child.once('exit', resolve));

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`pci-vault-server exited (${child.exitCode}):\n${log}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`pci-vault-server did not become ready on ${url}:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

module.exports = { startServer, PUBLIC_URL };
