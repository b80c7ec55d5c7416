// node --test: how the extension finds and checks the server (src/server.js), and that the
// command it builds really starts `resdsl lsp` (when RESDSL_TEST_PYTHON names a Python with
// resdsl[lsp]; tests/test_vscode.py sets it).
'use strict';
const assert = require('node:assert');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const test = require('node:test');
const rpc = require('vscode-jsonrpc/node');
const { checkServer, diagnose, serverCommand } = require('../src/server');

const PYTHON = process.env.RESDSL_TEST_PYTHON;

test('the settings come first, then the Python extension, then python3', () => {
  const exe = serverCommand({ serverPath: '/venv/bin/resdsl', pythonPath: '/other/python' });
  assert.deepStrictEqual([exe.command, exe.args, exe.python], ['/venv/bin/resdsl', ['lsp'], null]);
  const set = serverCommand({ pythonPath: '${workspaceFolder}/.venv/bin/python',
    interpreter: ['/ext/python'], workspaceFolder: '/ws' });
  assert.deepStrictEqual([set.command, set.args], ['/ws/.venv/bin/python', ['-m', 'resdsl', 'lsp']]);
  const ext = serverCommand({ interpreter: ['conda', 'run', '-n', 'env', 'python'] });
  assert.deepStrictEqual([ext.command, ext.args],
    ['conda', ['run', '-n', 'env', 'python', '-m', 'resdsl', 'lsp']]);
  assert.match(ext.source, /Python extension/);
  const fallback = serverCommand({});
  assert.strictEqual(fallback.command, process.platform === 'win32' ? 'python' : 'python3');
});

test('a missing resdsl or pygls says what to install', () => {
  const noResdsl = diagnose(['py'], 'x', { code: 1 }, "ModuleNotFoundError: No module named 'resdsl'\n");
  assert.match(noResdsl, /resdsl is not installed in `py`/);
  assert.ok(noResdsl.includes("pip install 'resdsl[lsp]'"));
  const noPygls = diagnose(['py'], 'x', { code: 1 }, "ModuleNotFoundError: No module named 'pygls'\n");
  assert.match(noPygls, /needs pygls/);
  assert.ok(noPygls.includes("pip install 'resdsl[lsp]'"));
});

test('an interpreter that does not exist is reported as such', async () => {
  const message = await checkServer(['/nonexistent/python3'], 'the resdsl.pythonPath setting');
  assert.match(message, /`\/nonexistent\/python3` \(from the resdsl.pythonPath setting\) was not found/);
});

test('an interpreter without pygls gets the pip command', { skip: process.platform === 'win32' }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'resdsl-vscode-'));
  try {
    // A stand-in for a Python whose environment lacks the `lsp` extra.
    const fake = path.join(dir, 'python');
    fs.writeFileSync(fake, "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'pygls'\" >&2\nexit 1\n",
      { mode: 0o755 });
    const message = await checkServer([fake], 'the PATH');
    assert.match(message, /needs pygls/);
    assert.ok(message.includes("pip install 'resdsl[lsp]'"));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the check looks in the working folder, as python -m does', { skip: !PYTHON && 'RESDSL_TEST_PYTHON is not set' }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'resdsl-vscode-'));
  try {
    // A folder with a `resdsl` package that is not the real one: found only from that folder.
    fs.mkdirSync(path.join(dir, 'resdsl', 'lsp'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'resdsl', '__init__.py'), '');
    fs.writeFileSync(path.join(dir, 'resdsl', 'lsp', '__init__.py'), '');
    fs.writeFileSync(path.join(dir, 'resdsl', 'lsp', 'server.py'), 'import no_such_module_here\n');
    const env = { ...process.env, PYTHONPATH: '' };
    const here = await checkServer([PYTHON], 'x', { cwd: dir, env });
    assert.match(here, /needs no_such_module_here/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the command starts the real server, which answers initialize', { skip: !PYTHON && 'RESDSL_TEST_PYTHON is not set' }, async () => {
  const server = serverCommand({ pythonPath: PYTHON });
  assert.strictEqual(await checkServer(server.python, server.source), null);
  // TransportKind.stdio appends --stdio, as vscode-languageclient does.
  const child = spawn(server.command, [...server.args, '--stdio'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const connection = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout),
    new rpc.StreamMessageWriter(child.stdin));
  connection.listen();
  try {
    const result = await connection.sendRequest('initialize', {
      processId: process.pid, rootUri: null, capabilities: {},
      initializationOptions: { resdsl: { inlayHints: false, debounceMs: 0 } },
    });
    assert.strictEqual(result.serverInfo.name, 'resdsl');
    assert.ok(result.capabilities.hoverProvider);
    await connection.sendRequest('shutdown');
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await connection.sendNotification('exit');
    assert.strictEqual(await exited, 0);
  } finally {
    connection.dispose();
    child.kill();
  }
});
