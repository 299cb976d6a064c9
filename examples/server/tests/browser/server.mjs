// Runs the real pci-vault-server binary for the browser tests and stops it by PID.
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, closeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const workspace = resolve(here, '../../../..');

export const API_KEY = 'browser-test-key-0123456789abcdef';

export function logDir() {
  const base = process.env.PCI_VAULT_TEST_LOGS || join(workspace, '.test-run/logs');
  const dir = join(base, 'server-browser');
  mkdirSync(dir, { recursive: true });
  return dir;
}

export async function startServer(name) {
  const binary = process.env.PCI_VAULT_SERVER_BIN || join(workspace, 'target/debug/pci-vault-server');
  const logPath = join(logDir(), `${name}.log`);
  const fd = openSync(logPath, 'w');
  const child = spawn(
    binary,
    ['--listen', '127.0.0.1:0', '--log-format', 'json', '--api-keys', API_KEY],
    {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, RUST_LOG: 'debug,hyper=info,h2=info' },
    },
  );
  closeSync(fd);
  const exited = new Promise((resolveExit) => child.on('exit', (code, signal) => resolveExit({ code, signal })));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const log = readFileSync(logPath, 'utf8');
    const line = log.split('\n').find((l) => l.startsWith('pci-vault-server listening on '));
    if (line) {
      const base = line.slice('pci-vault-server listening on '.length).trim();
      return { base, child, logPath, exited };
    }
    if (child.exitCode !== null) throw new Error(`the server exited before listening:\n${log}`);
    if (Date.now() > deadline) throw new Error(`the server did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Stops the server with SIGTERM and returns its exit and log. */
export async function stopServer(server) {
  server.child.kill('SIGTERM');
  const exit = await server.exited;
  return { exit, log: readFileSync(server.logPath, 'utf8') };
}

export async function api(server, method, path, body) {
  const headers = { Authorization: `Bearer ${API_KEY}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(server.base + path, init);
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}
