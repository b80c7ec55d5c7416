// The VS Code side: starts `resdsl lsp` (src/server.js says how) for .res files and keeps
// it in step with the settings.
'use strict';
const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');
const { checkServer, serverCommand } = require('./server');

let client = null;
let output = null;

function settings() {
  const config = vscode.workspace.getConfiguration('resdsl');
  return {
    serverPath: config.get('server.path', ''),
    pythonPath: config.get('pythonPath', ''),
    inlayHints: config.get('inlayHints', true),
    debounceMs: config.get('debounceMs', 0),
  };
}

// The interpreter the Python extension has selected for `folder`, as a command line (a
// conda environment may be `conda run -p ... python`); null without the extension.
async function pythonExtensionInterpreter(folder) {
  const extension = vscode.extensions.getExtension('ms-python.python');
  if (!extension) return null;
  try {
    const api = extension.isActive ? extension.exports : await extension.activate();
    const environments = api && api.environments;
    if (environments && environments.getActiveEnvironmentPath) {
      const active = environments.getActiveEnvironmentPath(folder && folder.uri);
      const resolved = active && await environments.resolveEnvironment(active);
      const executable = resolved && resolved.executable && resolved.executable.uri;
      if (executable) return [executable.fsPath];
    }
    const details = api && api.settings && api.settings.getExecutionDetails
      && api.settings.getExecutionDetails(folder && folder.uri);
    if (details && details.execCommand && details.execCommand.length > 0) return details.execCommand;
  } catch (err) {
    output.appendLine(`The Python extension did not give an interpreter: ${err}`);
  }
  return null;
}

async function showError(message) {
  output.appendLine(message);
  const choice = await vscode.window.showErrorMessage(message, 'Open Settings', 'Show Output');
  if (choice === 'Open Settings') {
    vscode.commands.executeCommand('workbench.action.openSettings', 'resdsl.');
  } else if (choice === 'Show Output') {
    output.show();
  }
}

async function start() {
  const folder = vscode.workspace.workspaceFolders && vscode.workspace.workspaceFolders[0];
  const current = settings();
  const interpreter = current.serverPath || current.pythonPath
    ? null : await pythonExtensionInterpreter(folder);
  const server = serverCommand({ ...current, interpreter,
    workspaceFolder: folder ? folder.uri.fsPath : '' });
  output.appendLine(`Starting ${server.command} ${server.args.join(' ')} (from ${server.source})`);
  const cwd = folder ? folder.uri.fsPath : undefined;
  if (server.python) {
    const problem = await checkServer(server.python, server.source, { cwd });
    if (problem) {
      await showError(problem);
      return;
    }
  }
  const executable = { command: server.command, args: server.args, transport: TransportKind.stdio,
    options: { cwd } };
  client = new LanguageClient('resdsl', 'resdsl', { run: executable, debug: executable }, {
    documentSelector: [{ scheme: 'file', language: 'resdsl' },
                       { scheme: 'untitled', language: 'resdsl' }],
    initializationOptions: { resdsl: { inlayHints: current.inlayHints, debounceMs: current.debounceMs } },
    // Sends workspace/didChangeConfiguration with the `resdsl` section on every change, which
    // the server reads (inlayHints, debounceMs) without a restart.
    synchronize: { configurationSection: 'resdsl' },
    outputChannel: output,
  });
  try {
    await client.start();
  } catch (err) {
    client = null;
    await showError(`resdsl: the language server \`${server.command} ${server.args.join(' ')}\` ` +
      `did not start (${err && err.message ? err.message : err}). Is resdsl installed there ` +
      "with `pip install 'resdsl[lsp]'`? See the resdsl output for its error.");
  }
}

async function stop() {
  const running = client;
  client = null;
  if (running) await running.stop();
}

async function restart() {
  await stop();
  await start();
}

async function activate(context) {
  output = vscode.window.createOutputChannel('resdsl');
  context.subscriptions.push(
    output,
    vscode.commands.registerCommand('resdsl.restartServer', restart),
    // Another server or interpreter needs a new process; the other settings reach the
    // running one through didChangeConfiguration.
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration('resdsl.server.path')
          || event.affectsConfiguration('resdsl.pythonPath')) {
        restart();
      }
    }),
  );
  await start();
  // The interpreter chosen in the Python extension runs the server unless a setting names
  // one; a new choice there restarts it. (start() has activated that extension, if present.)
  const python = vscode.extensions.getExtension('ms-python.python');
  const environments = python && python.isActive && python.exports && python.exports.environments;
  if (environments && environments.onDidChangeActiveEnvironmentPath) {
    context.subscriptions.push(environments.onDidChangeActiveEnvironmentPath(() => {
      const current = settings();
      if (!current.serverPath && !current.pythonPath) restart();
    }));
  }
}

function deactivate() {
  return stop();
}

module.exports = { activate, deactivate };
