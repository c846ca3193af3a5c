// The chainr extension for VS Code: starts the chainr language server (`chainrc lsp`, over
// stdio) for `.chainr` files. Syntax highlighting comes from the TextMate grammar in
// syntaxes/chainr.tmLanguage.json and works without the server.
//
// Plain CommonJS, no build step: this file is what `main` in package.json points to.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const vscode = require("vscode");
const { CloseAction, ErrorAction, LanguageClient } = require("vscode-languageclient/node");

const CLIENT_ID = "chainr";
const CLIENT_NAME = "chainr language server";
const MAX_RESTARTS = 4;
const RESTART_WINDOW_MS = 3 * 60 * 1000;

/**
 * While it starts, the client's own error notifications ("couldn't create connection to
 * server", "Server initialization failed", ...) are only logged to the output channel: a failed
 * start is reported once, by showStartError(), in words that say what to do. Once the server
 * runs, the client reports as usual.
 */
class ChainrLanguageClient extends LanguageClient {
  constructor(id, name, serverOptions, clientOptions) {
    super(id, name, serverOptions, clientOptions);
    this.chainrStarting = true;
  }

  error(message, data, showNotification = true) {
    super.error(message, data, this.chainrStarting ? false : showNotification);
  }
}

/**
 * The default error handling of vscode-languageclient, except that a server that dies while
 * starting (say, a chainrc too old to have `lsp`) is not restarted over and over.
 */
function errorHandler(getClient) {
  const restarts = [];
  return {
    error(_error, _message, count) {
      return { action: count !== undefined && count <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown };
    },
    closed() {
      const current = getClient();
      if (!current || current.chainrStarting) {
        return { action: CloseAction.DoNotRestart, handled: true };
      }
      const now = Date.now();
      restarts.push(now);
      while (restarts.length > 0 && now - restarts[0] > RESTART_WINDOW_MS) restarts.shift();
      if (restarts.length > MAX_RESTARTS) {
        return {
          action: CloseAction.DoNotRestart,
          message:
            `The chainr language server stopped ${restarts.length} times in 3 minutes and will not be ` +
            'restarted; its output is in the "chainr" output channel. Run "chainr: Restart Language ' +
            'Server" to start it again.',
        };
      }
      return { action: CloseAction.Restart };
    },
  };
}

/** @type {LanguageClient | undefined} */
let client;
/** @type {vscode.OutputChannel | undefined} */
let outputChannel;
// Starts and stops are chained so that a restart never overlaps another one.
let pending = Promise.resolve();

/** Reads the settings: the command to start and its arguments (`lsp` first). */
function serverCommand() {
  const config = vscode.workspace.getConfiguration("chainr");
  const configured = String(config.get("server.path") || "").trim() || "chainrc";
  const extraArgs = config.get("server.extraArgs");
  const args = ["lsp"];
  if (Array.isArray(extraArgs)) {
    for (const arg of extraArgs) args.push(String(arg));
  }
  return { configured, command: resolvePath(configured), args };
}

/**
 * `~` is the home directory; a relative path with a directory part (`./bin/chainrc`,
 * `target/debug/chainrc`) is relative to the first workspace folder; a bare name is left to the
 * PATH lookup.
 */
function resolvePath(p) {
  if (p === "~" || p.startsWith("~/") || p.startsWith("~\\")) {
    p = path.join(os.homedir(), p.slice(1));
  }
  if (hasDirectory(p) && !path.isAbsolute(p)) {
    const folders = vscode.workspace.workspaceFolders;
    if (folders && folders.length > 0 && folders[0].uri.scheme === "file") {
      p = path.join(folders[0].uri.fsPath, p);
    }
  }
  return p;
}

function hasDirectory(p) {
  return p.includes("/") || (process.platform === "win32" && p.includes("\\"));
}

function isExecutableFile(file) {
  try {
    if (!fs.statSync(file).isFile()) return false;
    if (process.platform !== "win32") fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the binary the way spawning it would: a path is checked as is, a bare name is looked up
 * in PATH (with PATHEXT on Windows). Returns undefined when there is nothing to start, so that
 * the user gets one clear message instead of the client's generic "couldn't create connection".
 */
function findExecutable(command) {
  const exts =
    process.platform === "win32"
      ? ["", ...(process.env.PATHEXT || ".EXE;.CMD;.BAT;.COM").split(";").filter(Boolean)]
      : [""];
  const candidates = (base) => exts.map((ext) => base + ext);
  if (hasDirectory(command) || path.isAbsolute(command)) {
    return candidates(command).find(isExecutableFile);
  }
  for (const dir of (process.env.PATH || "").split(path.delimiter)) {
    if (!dir) continue;
    const found = candidates(path.join(dir, command)).find(isExecutableFile);
    if (found) return found;
  }
  return undefined;
}

async function showStartError(command, args, detail) {
  const shown = [command, ...args].join(" ");
  const openSettings = "Open Settings";
  const showOutput = "Show Output";
  const choice = await vscode.window.showErrorMessage(
    `chainr: could not start \`${shown}\`: ${detail}. ` +
      "Install chainrc or set chainr.server.path to the chainrc binary.",
    openSettings,
    showOutput,
  );
  if (choice === openSettings) {
    await vscode.commands.executeCommand("workbench.action.openSettings", "chainr.server");
  } else if (choice === showOutput && outputChannel) {
    outputChannel.show(true);
  }
}

async function startClient() {
  const { configured, command, args } = serverCommand();
  if (!findExecutable(command)) {
    const where = hasDirectory(command) || path.isAbsolute(command) ? "no executable file at" : "not found on PATH:";
    outputChannel.appendLine(`[chainr] ${where} ${command} (chainr.server.path = "${configured}")`);
    void showStartError(configured, args, `${where} ${command}`);
    return;
  }

  // An `Executable` without `transport`: the client talks to the process over stdin/stdout and
  // passes exactly these arguments (`transport: stdio` would append `--stdio`).
  const serverOptions = { command, args };
  const clientOptions = {
    documentSelector: [
      { scheme: "file", language: "chainr" },
      { scheme: "untitled", language: "chainr" },
    ],
    outputChannel,
    // A server that fails to initialize is not asked again; the failure is reported below.
    initializationFailedHandler: () => false,
  };
  /** @type {ChainrLanguageClient} */
  let newClient;
  clientOptions.errorHandler = errorHandler(() => newClient);
  newClient = new ChainrLanguageClient(CLIENT_ID, CLIENT_NAME, serverOptions, clientOptions);
  client = newClient;
  try {
    await newClient.start();
    // When the server exits during `initialize`, vscode-languageclient 9 resolves start()
    // instead of rejecting it: check that the client really runs.
    if (!newClient.isRunning()) throw new Error("the server exited while starting");
    newClient.chainrStarting = false;
    outputChannel.appendLine(`[chainr] started ${[command, ...args].join(" ")}`);
  } catch (error) {
    if (client === newClient) client = undefined;
    const message = error instanceof Error ? error.message : String(error);
    outputChannel.appendLine(`[chainr] could not start ${[command, ...args].join(" ")}: ${message}`);
    void showStartError(
      configured,
      args,
      `${message.replace(/[.\s]+$/, "")} (is it a chainrc with the \`lsp\` command? Its output is in the "chainr" output channel)`,
    );
    try {
      await newClient.dispose();
    } catch {
      // The client never started; nothing is left to stop.
    }
  }
}

async function stopClient() {
  const old = client;
  client = undefined;
  if (!old) return;
  try {
    // dispose() stops the server (shutdown + exit) and frees the client's resources; the output
    // channel is ours and survives it.
    await old.dispose();
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    outputChannel.appendLine(`[chainr] error while stopping the language server: ${detail}`);
  }
}

function enqueue(step) {
  pending = pending.then(step, step);
  return pending;
}

function restart() {
  return enqueue(async () => {
    await stopClient();
    await startClient();
  });
}

/** @param {vscode.ExtensionContext} context */
function activate(context) {
  outputChannel = vscode.window.createOutputChannel("chainr");
  context.subscriptions.push(outputChannel);
  context.subscriptions.push(vscode.commands.registerCommand("chainr.restartServer", () => restart()));
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("chainr.server")) void restart();
    }),
  );
  return enqueue(startClient);
}

function deactivate() {
  return enqueue(stopClient);
}

module.exports = { activate, deactivate };
