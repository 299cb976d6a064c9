// Builds and ships @pci-vault/node the way napi-rs packages ship: one package per target
// (npm/<platform>/, holding only the native module, with `os`, `cpu` and `libc` so npm
// installs the one that fits) and the loader package (index.js, index.mjs, index.d.ts),
// whose `optionalDependencies` name every per-platform package at exactly its version.
//
//   node scripts/release.js --pack DIR   build here, pack every package that has its
//                                        binary into DIR (the release check installs them)
//   node scripts/release.js --publish    build here, then publish all of them: fails before
//                                        publishing anything unless every target has its binary
//
// This host builds x86_64-unknown-linux-gnu (`npm run build`: glibc 2.17 baseline). The
// other targets are built on their own hosts (`npm run build:native`); for a release their
// `pci-vault.<platform>.node` files go under artifacts/, from where `napi artifacts` moves
// each into its npm/<platform>/ directory.
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { strip } = require('./build');

const ROOT = path.resolve(__dirname, '..');
const HERE = 'linux-x64-gnu';

/** The napi-rs platform name of a Rust target triple, as `napi create-npm-dirs` names it. */
const PLATFORMS = {
  'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
  'x86_64-unknown-linux-musl': 'linux-x64-musl',
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
  'x86_64-apple-darwin': 'darwin-x64',
  'aarch64-apple-darwin': 'darwin-arm64',
  'x86_64-pc-windows-msvc': 'win32-x64-msvc',
};

function run(command, args, cwd = ROOT) {
  execFileSync(command, args, { cwd, stdio: 'inherit' });
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

function parseArguments(argv) {
  if (argv[0] === '--publish' && argv.length === 1) return { publish: true };
  if (argv[0] === '--pack' && argv.length === 2) return { packInto: path.resolve(argv[1]) };
  throw new Error('usage: node scripts/release.js --pack DIR | --publish');
}

/** Every declared platform with its package directory and whether its binary is there. */
function platformPackages(manifest) {
  return manifest.napi.targets.map((triple) => {
    const platform = PLATFORMS[triple];
    if (!platform) throw new Error(`no platform name for the target ${triple}`);
    const dir = path.join(ROOT, 'npm', platform);
    const binary = `${manifest.napi.binaryName}.${platform}.node`;
    const platformManifest = readJson(path.join(dir, 'package.json'));
    if (platformManifest.version !== manifest.version) {
      throw new Error(`npm/${platform}/package.json is at ${platformManifest.version}, the loader at ${manifest.version}`);
    }
    return { platform, dir, name: platformManifest.name, built: fs.existsSync(path.join(dir, binary)) };
  });
}

/** The loader package in a directory of its own, with its optionalDependencies filled in. */
function stageLoader(manifest, platforms) {
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'pci-vault-node-loader-'));
  for (const file of manifest.files) fs.copyFileSync(path.join(ROOT, file), path.join(stage, file));
  const published = { ...manifest };
  delete published.devDependencies;
  delete published.overrides;
  delete published.scripts;
  published.optionalDependencies = Object.fromEntries(platforms.map((p) => [p.name, manifest.version]));
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(published, null, 2)}\n`);
  return stage;
}

function main() {
  const mode = parseArguments(process.argv.slice(2));
  const manifest = readJson(path.join(ROOT, 'package.json'));

  if (process.platform === 'linux' && process.arch === 'x64') {
    run('npm', ['run', 'build']);
    // The package ships the module without its debug line tables: 6 MB instead of 47 MB.
    const binary = `${manifest.napi.binaryName}.${HERE}.node`;
    const shipped = path.join(ROOT, mode.publish ? 'artifacts' : 'npm', HERE, binary);
    fs.mkdirSync(path.dirname(shipped), { recursive: true });
    fs.copyFileSync(path.join(ROOT, binary), shipped);
    strip(shipped);
  }
  // A release takes every binary from artifacts/, each into its npm/<platform>/; `napi
  // artifacts` refuses when a declared target has none.
  if (mode.publish) run(path.join(ROOT, 'node_modules', '.bin', 'napi'), ['artifacts']);
  for (const file of ['index.js', 'index.d.ts']) {
    if (!fs.existsSync(path.join(ROOT, file))) throw new Error(`${file} is missing: run npm run build first`);
  }

  const platforms = platformPackages(manifest);
  const missing = platforms.filter((p) => !p.built).map((p) => p.platform);
  const loader = stageLoader(manifest, platforms);
  try {
    if (mode.publish) {
      if (missing.length > 0) {
        throw new Error(`no binary for ${missing.join(', ')}: put each host's pci-vault.<platform>.node under artifacts/`);
      }
      // The per-platform packages first: the loader never names a package not yet published.
      for (const p of platforms) run('npm', ['publish', '--access', 'public'], p.dir);
      run('npm', ['publish', '--access', 'public'], loader);
    } else {
      fs.mkdirSync(mode.packInto, { recursive: true });
      for (const p of platforms.filter((q) => q.built)) run('npm', ['pack', '--pack-destination', mode.packInto], p.dir);
      run('npm', ['pack', '--pack-destination', mode.packInto], loader);
      if (missing.length > 0) console.log(`not packed (built on their own hosts): ${missing.join(', ')}`);
    }
  } finally {
    fs.rmSync(loader, { recursive: true, force: true });
  }
}

try {
  main();
} catch (err) {
  console.error(`release: ${err.message}`);
  process.exitCode = 1;
}
