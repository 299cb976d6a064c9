// The ES module entry of @pci-vault/node (`import { Vault } from '@pci-vault/node'`).
// index.js, the CommonJS loader napi-rs generates, finds the native module (the
// per-platform package, or a .node file next to it in a development build); this file
// re-exports what it loads, so both entries share one instance of the module.
export * from './index.js';
export { default } from './index.js';
