'use strict';
// index.d.ts, as `npm run build` generates it from the Rust source: it type-checks a use of
// every method and option (and refuses wrong uses), and documents every declaration.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const ts = require('typescript');

const PACKAGE = path.join(__dirname, '..');
const DTS = path.join(PACKAGE, 'index.d.ts');

test('test/types/usage.ts type-checks against index.d.ts', () => {
  const tsc = require.resolve('typescript/bin/tsc');
  const args = [
    tsc, '--noEmit', '--strict', '--target', 'es2022', '--module', 'commonjs', '--moduleResolution', 'node10',
    '--ignoreDeprecations', '6.0', '--types', 'node', '--skipLibCheck', 'false', path.join(__dirname, 'types', 'usage.ts'),
  ];
  try {
    execFileSync(process.execPath, args, { cwd: PACKAGE, encoding: 'utf8' });
  } catch (e) {
    assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`);
  }
});

test('every declaration and member in index.d.ts has a doc comment', () => {
  const source = ts.createSourceFile(DTS, fs.readFileSync(DTS, 'utf8'), ts.ScriptTarget.Latest, true);
  const missing = [];
  const documented = (node) => ts.getJSDocCommentsAndTags(node).length > 0;
  const check = (node, name) => { if (!documented(node)) missing.push(name); };
  for (const statement of source.statements) {
    const name = statement.name?.getText(source) ?? ts.SyntaxKind[statement.kind];
    check(statement, name);
    for (const member of statement.members ?? []) check(member, `${name}.${member.name?.getText(source) ?? 'member'}`);
  }
  assert.deepEqual(missing, []);
  // The API is all there.
  const text = fs.readFileSync(DTS, 'utf8');
  for (const needle of [
    'static open(options: VaultOptions): Promise<Vault>', 'createSession(',
    'watch(id: string, options?: { signal?: AbortSignal } | null): Promise<SessionEvents & AsyncIterableIterator<SessionEvent>>', 'status(id: string): Promise<SessionStatus>',
    'submit(id: string, fields: Record<string, string | Buffer>): Promise<SubmitReceipt>',
    'reveal(id: string, pin: string): Promise<RevealedFields>', 'revealBuffers(id: string, pin: string): Promise<RevealedBuffers>',
    'cancel(id: string): Promise<void>', 'forTenant(tenant: string): Vault',
    'flushAudit(): Promise<void>', 'auditFailures(): number',
  ]) assert.ok(text.includes(needle), needle);
});
