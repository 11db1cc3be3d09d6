#!/usr/bin/env node
// The one file of agentk that is JavaScript, so that Node runs it without stripping types: it turns
// on Node's compile cache first, then loads the TypeScript. With the cache warm, Node reuses the
// type-stripped sources and their compiled code instead of loading its TypeScript stripper (a
// WebAssembly module, about 17 MB resident) and compiling every file again, so it also starts
// faster. The cache lives in NODE_COMPILE_CACHE when set (the image warms
// one at build time), else in the system's temporary directory; where it cannot be written,
// agentk runs as before.
import module from 'node:module';

module.enableCompileCache();
await import('./agentk.ts');
