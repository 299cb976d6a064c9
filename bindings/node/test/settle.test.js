'use strict';
// Promises of operations that wait on Redis are settled from the binding's runtime: every
// one settles, even 10,000 in flight at once, on the main thread and in a worker thread; a
// pending one keeps the process alive, and once none is pending the process exits by itself. Each scenario runs in a child process
// (settle-child.js) that never calls process.exit.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');

const { redisUrl } = require('./support');

/** Runs settle-child.js with `args`; resolves to its exit code, output and run time. */
async function child(args, timeoutMs = 60_000) {
  const url = await redisUrl();
  const started = Date.now();
  const proc = spawn(process.execPath, [path.join(__dirname, 'settle-child.js'), ...args], {
    env: { ...process.env, PCI_VAULT_TEST_REDIS_URL: url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => { stdout += d; });
  proc.stderr.on('data', (d) => { stderr += d; });
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const [code, signal] = await new Promise((resolve) => proc.once('exit', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  return { code, signal, stdout, stderr, ms: Date.now() - started };
}

for (const where of ['main thread', 'worker thread']) {
  const extra = where === 'worker thread' ? ['--worker'] : [];

  test(`10,000 calls in flight on Redis all settle, then the process exits (${where})`, async () => {
    const run = await child(['many', ...extra]);
    assert.equal(run.signal, null, `killed after ${run.ms} ms: the process did not exit`);
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout.trim().split('\n').pop());
    assert.equal(result.ok, 5_000);
    assert.equal(result.NOT_FOUND, 5_000);
    assert.equal(Object.keys(result).length, where === 'worker thread' ? 3 : 2);
  });

  test(`a pending Promise keeps the process alive until it settles (${where})`, async () => {
    const run = await child(['pending', ...extra]);
    assert.equal(run.signal, null, `killed after ${run.ms} ms: the process did not exit`);
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout.trim().split('\n').pop());
    assert.equal(result.state, 'pending');
    assert.ok(result.waitedMs >= 200, `waited ${result.waitedMs} ms: Redis was not paused`);
  });
}
