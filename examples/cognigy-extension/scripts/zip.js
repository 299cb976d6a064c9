// Builds the upload for Cognigy.AI (Manage → Extensions → Upload Extension): a .tar.gz of
// build/, package.json, package-lock.json, README.md and icon.png, as Cognigy's own
// extensions ship. The native module goes inside it: the packed @pci-vault/node loader and
// its per-platform packages (built here: Linux x86-64, glibc 2.17 or later) under
// build/vendor/, named as `file:` dependencies, so Cognigy's `npm ci` needs nothing but
// the public npm registry (for @cognigy/extension-tools). The vendored loader names only
// the platform packages the upload carries.
//
//   node scripts/zip.js [OUT_DIR]   writes OUT_DIR/pci-vault-cognigy-extension-<version>.tar.gz
//                                   (OUT_DIR defaults to this package's directory)
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const BINDING = path.resolve(ROOT, '../../bindings/node');

function run(command, args, cwd) {
  execFileSync(command, args, { cwd, stdio: 'inherit' });
}

function main() {
  const outDir = path.resolve(process.argv[2] ?? ROOT);
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'pci-vault-cognigy-upload-'));
  try {
    // build/: the extension's sources as they run (plain CommonJS, nothing to compile).
    fs.cpSync(path.join(ROOT, 'src'), path.join(stage, 'build'), { recursive: true });

    // build/vendor/: the binding's release packages: each per-platform package as npm
    // would publish it; the loader with `optionalDependencies` narrowed to the platform
    // packages inside the upload, since `npm ci` wants every one it names in the lock file,
    // and the others are on no registry Cognigy can be relied on to reach.
    const packed = path.join(stage, 'packed');
    const vendor = path.join(stage, 'build', 'vendor');
    fs.mkdirSync(vendor);
    run('npm', ['run', 'release:pack', '--', packed], BINDING);
    const dependencies = { '@cognigy/extension-tools': manifest.dependencies['@cognigy/extension-tools'] };
    let loader;
    for (const file of fs.readdirSync(packed).filter((f) => f.endsWith('.tgz')).sort()) {
      const tgz = path.join(packed, file);
      const { name } = JSON.parse(execFileSync('tar', ['-xzOf', tgz, 'package/package.json'], { encoding: 'utf8' }));
      if (name === '@pci-vault/node') {
        loader = tgz;
        continue;
      }
      fs.copyFileSync(tgz, path.join(vendor, file));
      dependencies[name] = `file:build/vendor/${file}`;
    }
    if (!loader) throw new Error('release:pack made no @pci-vault/node tarball');
    const unpacked = path.join(stage, 'loader');
    fs.mkdirSync(unpacked);
    run('tar', ['-xzf', loader, '-C', unpacked]);
    const loaderManifestPath = path.join(unpacked, 'package', 'package.json');
    const loaderManifest = JSON.parse(fs.readFileSync(loaderManifestPath, 'utf8'));
    loaderManifest.optionalDependencies = Object.fromEntries(
      Object.entries(loaderManifest.optionalDependencies).filter(([name]) => name in dependencies),
    );
    fs.writeFileSync(loaderManifestPath, `${JSON.stringify(loaderManifest, null, 2)}\n`);
    run('npm', ['pack', '--pack-destination', vendor, path.join(unpacked, 'package')], stage);
    dependencies['@pci-vault/node'] = `file:build/vendor/${path.basename(loader)}`;

    const upload = {
      name: manifest.name,
      version: manifest.version,
      description: manifest.description,
      license: manifest.license,
      private: true,
      main: 'build/module.js',
      engines: manifest.engines,
      dependencies,
    };
    fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(upload, null, 2)}\n`);
    // The lock Cognigy installs from: the public dependency at the version the repository
    // pins, the vendored tarballs with their integrity.
    run('npm', ['install', '--package-lock-only', '--ignore-scripts', '--no-audit', '--no-fund'], stage);
    for (const file of ['README.md', 'icon.png']) fs.copyFileSync(path.join(ROOT, file), path.join(stage, file));

    fs.mkdirSync(outDir, { recursive: true });
    const tarball = path.join(outDir, `${manifest.name}-${manifest.version}.tar.gz`);
    run('tar', ['-czf', tarball, '--owner=0', '--group=0', 'build', 'package.json', 'package-lock.json', 'README.md', 'icon.png'], stage);
    console.log(`wrote ${tarball} (${fs.statSync(tarball).size} bytes)`);
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

try {
  main();
} catch (err) {
  console.error(`zip: ${err.message}`);
  process.exitCode = 1;
}
