// node --test: src/extension.js under a stand-in for the `vscode` module and the language
// client (no VS Code here): which server it starts with which settings, and the error it
// shows instead when the Python cannot run the server.
'use strict';
const assert = require('node:assert');
const fs = require('node:fs');
const Module = require('node:module');
const os = require('node:os');
const path = require('node:path');
const test = require('node:test');

const PYTHON = process.env.RESDSL_TEST_PYTHON;

const state = { config: {}, errors: [], clients: [], startError: null };

const vscode = {
  workspace: {
    workspaceFolders: [{ uri: { fsPath: os.tmpdir() } }],
    getConfiguration: (section) => {
      assert.strictEqual(section, 'resdsl');
      return { get: (key, fallback) => (key in state.config ? state.config[key] : fallback) };
    },
    onDidChangeConfiguration: () => ({ dispose() {} }),
  },
  window: {
    createOutputChannel: () => ({ appendLine() {}, show() {}, dispose() {} }),
    showErrorMessage: async (message) => { state.errors.push(message); return undefined; },
  },
  commands: { registerCommand: () => ({ dispose() {} }), executeCommand: () => undefined },
  extensions: { getExtension: () => undefined },
};

class LanguageClient {
  constructor(id, name, serverOptions, clientOptions) {
    state.clients.push({ id, serverOptions, clientOptions });
  }
  async start() { if (state.startError) throw state.startError; }
  async stop() {}
}

function stub(request, exports) {
  const file = request === 'vscode' ? 'vscode' : require.resolve(request);
  const module = new Module(file);
  module.exports = exports;
  module.loaded = true;
  require.cache[file] = module;
}
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  return request === 'vscode' ? 'vscode' : resolve.call(this, request, ...rest);
};
stub('vscode', vscode);
stub('vscode-languageclient/node', { LanguageClient, TransportKind: { stdio: 0, ipc: 1 } });
const extension = require('../src/extension');

async function activate(config) {
  Object.assign(state, { config, errors: [], clients: [] });
  await extension.activate({ subscriptions: [] });
  await extension.deactivate();
}

test('resdsl.server.path starts that executable, with the settings', async () => {
  await activate({ 'server.path': '/opt/venv/bin/resdsl', inlayHints: false, debounceMs: 50 });
  assert.deepStrictEqual(state.errors, []);
  const [{ id, serverOptions, clientOptions }] = state.clients;
  assert.strictEqual(id, 'resdsl');
  assert.strictEqual(serverOptions.run.command, '/opt/venv/bin/resdsl');
  assert.deepStrictEqual(serverOptions.run.args, ['lsp']);
  assert.strictEqual(serverOptions.run.transport, 0);
  assert.deepStrictEqual(clientOptions.initializationOptions,
    { resdsl: { inlayHints: false, debounceMs: 50 } });
  assert.strictEqual(clientOptions.synchronize.configurationSection, 'resdsl');
  assert.ok(clientOptions.documentSelector.every((s) => s.language === 'resdsl'));
});

test('a Python without resdsl gets an error saying what to install, and no client', { skip: process.platform === 'win32' }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'resdsl-vscode-'));
  try {
    const fake = path.join(dir, 'python');
    fs.writeFileSync(fake, "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'resdsl'\" >&2\nexit 1\n",
      { mode: 0o755 });
    await activate({ pythonPath: fake });
    assert.deepStrictEqual(state.clients, []);
    assert.strictEqual(state.errors.length, 1);
    assert.ok(state.errors[0].includes("pip install 'resdsl[lsp]'"), state.errors[0]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('resdsl.pythonPath runs python -m resdsl lsp', { skip: !PYTHON && 'RESDSL_TEST_PYTHON is not set' }, async () => {
  await activate({ pythonPath: PYTHON });
  assert.deepStrictEqual(state.errors, []);
  const [{ serverOptions, clientOptions }] = state.clients;
  assert.strictEqual(serverOptions.run.command, PYTHON);
  assert.deepStrictEqual(serverOptions.run.args, ['-m', 'resdsl', 'lsp']);
  assert.deepStrictEqual(clientOptions.initializationOptions, { resdsl: { inlayHints: true, debounceMs: 0 } });
});

test('a server that fails to start is reported with the pip command', async () => {
  state.startError = new Error('exited with code 2');
  try {
    await activate({ 'server.path': '/opt/venv/bin/resdsl' });
  } finally {
    state.startError = null;
  }
  assert.strictEqual(state.errors.length, 1);
  assert.match(state.errors[0], /did not start \(exited with code 2\)/);
  assert.ok(state.errors[0].includes("pip install 'resdsl[lsp]'"));
});
