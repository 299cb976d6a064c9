// `npm run build`: the native module as the Linux x86-64 package ships it, linked against
// glibc 2.17 so that it loads on hosts far older than the build host (RHEL 7 and later,
// Amazon Linux 2), with napi-rs's cross toolchain (`napi build --use-napi-cross`).
//
// The toolchain (gcc 4.8.5, binutils 2.36, a glibc 2.17 sysroot) comes from the npm
// package pinned in package-lock.json (@napi-rs/cross-toolchain-x64-target-x86_64); this
// script unpacks it where @napi-rs/cli looks first (~/.napi-rs/cross-toolchain/<version>/
// <target>), so the CLI never fetches it itself at a version no lock file checks. Rust
// code links with the toolchain's gcc. C code (mimalloc) needs a newer compiler than gcc
// 4.8 (C11 atomics, its warning flags): it is compiled by this host's `cc`, against the
// same glibc 2.17 sysroot, so it can only call what glibc 2.17 declares.
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const TARGET = 'x86_64-unknown-linux-gnu';
const TARGET_ENV = TARGET.replace(/-/g, '_');

/** The unpacked toolchain's directory, unpacking it first when it is not there yet. */
function toolchain() {
  const { version } = require('@napi-rs/cross-toolchain/package.json');
  const archive = require('@napi-rs/cross-toolchain-x64-target-x86_64').toolchainPath;
  const destination = path.join(os.homedir(), '.napi-rs', 'cross-toolchain', version, TARGET);
  // @napi-rs/cli treats a directory holding package.json as an unpacked toolchain.
  if (fs.existsSync(path.join(destination, 'package.json'))) return destination;
  fs.mkdirSync(path.dirname(destination), { recursive: true });
  // Unpack beside the destination, then rename: an interrupted build leaves no half
  // toolchain where the CLI would take it for a whole one. The system's tar and xz: the
  // CLI's own unpacker (@napi-rs/lzma) needs Node.js 22.
  const staging = fs.mkdtempSync(`${destination}.partial-`);
  try {
    execFileSync('tar', ['--xz', '-xf', archive, '-C', staging], { stdio: 'inherit' });
    fs.rmSync(destination, { recursive: true, force: true });
    fs.renameSync(staging, destination);
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  console.log(`unpacked the ${TARGET} (glibc 2.17) cross toolchain ${version} into ${destination}`);
  return destination;
}

function main() {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error('this build runs on Linux x86-64 hosts; elsewhere use npm run build:native');
  }
  const sysroot = path.join(toolchain(), TARGET, 'sysroot');
  const env = {
    ...process.env,
    [`CC_${TARGET_ENV}`]: process.env[`CC_${TARGET_ENV}`] || 'cc',
    [`CFLAGS_${TARGET_ENV}`]: `--sysroot=${sysroot} ${process.env[`CFLAGS_${TARGET_ENV}`] ?? ''}`.trim(),
  };
  const napi = path.join(__dirname, '..', 'node_modules', '.bin', 'napi');
  execFileSync(napi, ['build', '--platform', '--release', '--target', TARGET, '--use-napi-cross', ...process.argv.slice(2)], {
    cwd: path.join(__dirname, '..'),
    env,
    stdio: 'inherit',
  });
}

/** Strips a module built here of its debug information and local symbols, with the toolchain's strip. */
function strip(file) {
  execFileSync(path.join(toolchain(), 'bin', `${TARGET}-strip`), [file], { stdio: 'inherit' });
}

module.exports = { strip };

if (require.main === module) {
  try {
    main();
  } catch (err) {
    console.error(`build: ${err.message}`);
    process.exitCode = 1;
  }
}
