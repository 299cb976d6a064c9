'use strict';
// The README's Node quick starts, run exactly as written: the first ```js block (CommonJS)
// and the first ```mjs block (ES modules) under "## Quick start (Node)", each saved to a
// file in a project that depends on the package.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const PACKAGE = path.join(__dirname, '..');

/** The first block of `language` (`js` or `mjs`) in the README's Node quick start. */
function quickStart(language) {
  const readme = fs.readFileSync(path.join(PACKAGE, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Quick start (Node)'));
  assert.ok(section, 'README has no "## Quick start (Node)" section');
  const block = section.match(new RegExp(`\`\`\`${language}\n([\\s\\S]*?)\n\`\`\``));
  assert.ok(block, `the quick start has no \`\`\`${language} block`);
  return block[1];
}

const ENTRIES = [['js', 'quickstart.js', 'require'], ['mjs', 'quickstart.mjs', 'import']];

for (const [language, file, entry] of ENTRIES) test(`the README quick start with ${entry} runs as written`, (t) => {
  const code = quickStart(language);
  const { name } = JSON.parse(fs.readFileSync(path.join(PACKAGE, 'package.json'), 'utf8'));
  const loads = language === 'js' ? `require('${name}')` : `from '${name}'`;
  assert.ok(code.includes(loads), `the quick start does not ${entry} '${name}'`);

  // A throwaway project whose node_modules holds this package, as `npm install` would.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pci-vault-quickstart-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const modules = path.join(dir, 'node_modules', ...name.split('/'));
  fs.mkdirSync(path.dirname(modules), { recursive: true });
  fs.symlinkSync(PACKAGE, modules, 'dir');
  fs.writeFileSync(path.join(dir, file), code);

  const out = execFileSync(process.execPath, [file], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  const lines = out.trim().split('\n');
  assert.equal(lines.length, 4, out);
  assert.match(lines[0], /^link for the customer: https:\/\/pay\.example\.com\/forms\/[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(lines.slice(1), ['submitted', 'visa 424242******4242', 'ALREADY_REVEALED']);
  assert.ok(!out.includes('4242424242424242'), 'the quick start printed the card number');
});
