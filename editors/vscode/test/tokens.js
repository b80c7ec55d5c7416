#!/usr/bin/env node
// Tokenizes .res files with the extension's TextMate grammar, as VS Code does (vscode-textmate
// on the Oniguruma WebAssembly build), and prints one JSON object per file:
//   {"file": ..., "lines": [[[start, end, [scope, ...]], ...], ...], "open": n}
// `open` counts the multi-line regions (parameter and argument lists) still open at the end of
// the file: 0 unless one runs away. tests/test_vscode.py compares the tokens with the Lark
// lexer's over every shipped spec.
'use strict';
const fs = require('fs');
const path = require('path');
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const GRAMMAR = path.join(__dirname, '..', 'syntaxes', 'resdsl.tmLanguage.json');

async function loadGrammar() {
  const wasm = fs.readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm'));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (sources) => new oniguruma.OnigScanner(sources),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async (scopeName) => scopeName === 'source.resdsl'
      ? vsctm.parseRawGrammar(fs.readFileSync(GRAMMAR, 'utf8'), GRAMMAR)
      : null,
  });
  return registry.loadGrammar('source.resdsl');
}

async function main(files) {
  const grammar = await loadGrammar();
  for (const file of files) {
    let stack = vsctm.INITIAL;
    const lines = [];
    for (const line of fs.readFileSync(file, 'utf8').split(/\r?\n/)) {
      const result = grammar.tokenizeLine(line, stack);
      lines.push(result.tokens.map((t) => [t.startIndex, Math.min(t.endIndex, line.length), t.scopes]));
      stack = result.ruleStack;
    }
    process.stdout.write(JSON.stringify({ file, lines, open: stack.depth - 1 }) + '\n');
  }
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
