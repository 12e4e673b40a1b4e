#!/usr/bin/env node
// A native-solc-compatible front end to solc-js (the npm `solc` package).
//
// Why: py-solc-x, brownie, crytic-compile/slither and forge expect a native `solc` binary and try
// to download one, which these machines cannot do. solc-js ships the same compiler as WebAssembly
// inside an npm package. This wrapper answers the two calls those tools make:
//   solc --version
//   solc --standard-json [--base-path P] [--include-path P]... [--allow-paths P,...]  < input.json
// Its stdout is only what native solc prints (solcjs's own CLI prints a `>>>` banner first, which
// breaks JSON parsers). Imports that the input does not carry are read from disk, relative to the
// base path, the include paths and the working directory, as native solc does.
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

function nativeVersionString() {
  // solc-js reports "0.8.28+commit.7893614a.Emscripten.clang"; tools only parse the x.y.z part.
  return solc.version();
}

function parseArgs(argv) {
  const opts = { mode: null, basePath: null, includePaths: [], allowPaths: [] };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const takeValue = () => {
      const eq = arg.indexOf('=');
      if (eq !== -1) return arg.slice(eq + 1);
      i += 1;
      return argv[i];
    };
    if (arg === '--version' || arg === '-v') opts.mode = 'version';
    else if (arg === '--standard-json') opts.mode = 'standard-json';
    else if (arg.startsWith('--base-path')) opts.basePath = takeValue();
    else if (arg.startsWith('--include-path')) opts.includePaths.push(takeValue());
    else if (arg.startsWith('--allow-paths')) opts.allowPaths.push(...takeValue().split(','));
    else if (arg === '--help' || arg === '-h') opts.mode = 'help';
    else opts.unknown = (opts.unknown || []).concat(arg);
  }
  return opts;
}

function makeImportReader(opts) {
  const roots = [];
  if (opts.basePath) roots.push(opts.basePath);
  roots.push(...opts.includePaths);
  roots.push(process.cwd());
  roots.push(...opts.allowPaths);
  return (importPath) => {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : roots.map((root) => path.resolve(root, importPath));
    for (const candidate of candidates) {
      try {
        return { contents: fs.readFileSync(candidate, 'utf8') };
      } catch (err) {
        // try the next root
      }
    }
    return { error: `File not found: ${importPath} (searched ${candidates.join(', ')})` };
  };
}

function writeAndExit(text, code) {
  // Never call process.exit() before stdout has drained: a large JSON output would be cut short
  // when stdout is a pipe.
  process.exitCode = code;
  process.stdout.write(text);
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.mode === 'version') {
    writeAndExit(
      `solc, the solidity compiler commandline interface\nVersion: ${nativeVersionString()}\n`,
      0,
    );
    return;
  }
  if (opts.mode !== 'standard-json') {
    process.stderr.write(
      'solc-wrapper: only --version and --standard-json are supported ' +
        `(got: ${process.argv.slice(2).join(' ') || 'no arguments'})\n`,
    );
    process.exitCode = 2;
    return;
  }
  const chunks = [];
  process.stdin.on('data', (chunk) => chunks.push(chunk));
  process.stdin.on('end', () => {
    const input = Buffer.concat(chunks).toString('utf8');
    const output = solc.compile(input, { import: makeImportReader(opts) });
    writeAndExit(output, 0);
  });
}

main();
