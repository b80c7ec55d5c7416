// How the extension starts `resdsl lsp`, apart from VS Code so that `node --test` covers it:
// which command runs the server, and whether that Python environment has it installed.
'use strict';
const { execFile } = require('child_process');
const os = require('os');
const path = require('path');

const INSTALL = "pip install 'resdsl[lsp]'";

// `~` and `${workspaceFolder}` in a path setting, as VS Code's own settings allow.
function expandPath(value, workspaceFolder) {
  let out = value.trim();
  if (out === '~' || out.startsWith('~/')) out = path.join(os.homedir(), out.slice(1));
  if (workspaceFolder) out = out.split('${workspaceFolder}').join(workspaceFolder);
  return out;
}

// The command line of the server. In order: the `resdsl.server.path` setting (a `resdsl`
// executable); the `resdsl.pythonPath` setting; the Python extension's interpreter for this
// workspace (`interpreter`, a command and its leading arguments, e.g. `conda run ...`);
// `python3` on the PATH (`python` on Windows). `source` says which, for messages.
function serverCommand({ serverPath = '', pythonPath = '', interpreter = null, workspaceFolder = '' } = {}) {
  if (serverPath.trim()) {
    return { command: expandPath(serverPath, workspaceFolder), args: ['lsp'], python: null,
      source: 'the resdsl.server.path setting' };
  }
  let python;
  let source;
  if (pythonPath.trim()) {
    python = [expandPath(pythonPath, workspaceFolder)];
    source = 'the resdsl.pythonPath setting';
  } else if (interpreter && interpreter.length > 0) {
    python = interpreter;
    source = "the Python extension's selected interpreter";
  } else {
    python = [process.platform === 'win32' ? 'python' : 'python3'];
    source = 'the PATH';
  }
  return { command: python[0], args: [...python.slice(1), '-m', 'resdsl', 'lsp'], python,
    source };
}

// What to tell the user when the server's Python cannot import it: `stderr` of
// `python -c "import resdsl.lsp.server"`, or the error of starting the interpreter at all.
function diagnose(python, source, error, stderr) {
  const shown = python.join(' ');
  if (error && error.code === 'ENOENT') {
    return `resdsl: the Python interpreter \`${shown}\` (from ${source}) was not found. ` +
      'Set resdsl.pythonPath to the Python of an environment where you ran ' +
      `\`${INSTALL}\`.`;
  }
  const missing = /No module named '?([A-Za-z0-9_.]+)'?/.exec(stderr || '');
  if (missing && missing[1].split('.')[0] === 'resdsl') {
    return `resdsl is not installed in \`${shown}\` (from ${source}). Run \`${INSTALL}\` in ` +
      'that environment, or set resdsl.pythonPath to a Python that has it.';
  }
  if (missing) {
    return `resdsl's language server needs ${missing[1].split('.')[0]}, which \`${shown}\` ` +
      `(from ${source}) does not have. Run \`${INSTALL}\` in that environment.`;
  }
  const last = (stderr || String(error || '')).trim().split('\n').pop();
  return `resdsl: \`${shown} -c "import resdsl.lsp.server"\` failed (${last}). ` +
    `Run \`${INSTALL}\` in that environment, or set resdsl.pythonPath.`;
}

// Resolves to null when `python` can import the server, else to the message to show. `cwd`
// is the server's working folder, which `python -m` puts on the module path as `-c` does (a
// resdsl checkout opened as the workspace runs without being installed). A
// `resdsl.server.path` executable is not checked here: it reports a missing pygls itself
// (exit status 2, with the same pip command) when it starts.
function checkServer(python, source, { cwd = undefined, env = process.env, timeoutMs = 30000 } = {}) {
  return new Promise((resolve) => {
    execFile(python[0], [...python.slice(1), '-c', 'import resdsl.lsp.server'],
      { cwd, env, timeout: timeoutMs, windowsHide: true },
      (error, _stdout, stderr) => resolve(error ? diagnose(python, source, error, stderr) : null));
  });
}

module.exports = { INSTALL, checkServer, diagnose, expandPath, serverCommand };
