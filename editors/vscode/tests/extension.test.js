// Unit tests of extension.js, run with `node --test` outside VS Code: the `vscode` module and
// vscode-languageclient's LanguageClient are replaced by small fakes that record what the
// extension asks of them.
"use strict";

const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const Module = require("node:module");
const { test, beforeEach, after } = require("node:test");

// ------------------------------------------------------------------ fakes

const state = {
  settings: {},
  workspaceFolders: undefined,
  errors: [],
  commands: new Map(),
  configListeners: [],
  clients: [],
  failStart: undefined,
  exitWhileStarting: false,
};

class FakeLanguageClient {
  constructor(id, name, serverOptions, clientOptions) {
    Object.assign(this, { id, name, serverOptions, clientOptions, started: false, disposed: false });
    this.notified = [];
    state.clients.push(this);
  }
  async start() {
    if (state.failStart) throw new Error(state.failStart);
    // As vscode-languageclient 9 does when the server exits during `initialize`.
    if (state.exitWhileStarting) return;
    this.started = true;
  }
  isRunning() {
    return this.started && !this.disposed;
  }
  error(message, _data, showNotification = true) {
    if (showNotification) this.notified.push(message);
  }
  async dispose() {
    this.disposed = true;
  }
}

const CloseAction = { DoNotRestart: 1, Restart: 2 };
const ErrorAction = { Continue: 1, Shutdown: 2 };

const fakeVscode = {
  workspace: {
    getConfiguration(section) {
      assert.equal(section, "chainr");
      return { get: (key) => state.settings[key] };
    },
    get workspaceFolders() {
      return state.workspaceFolders;
    },
    onDidChangeConfiguration(listener) {
      state.configListeners.push(listener);
      return { dispose() {} };
    },
  },
  window: {
    createOutputChannel: () => ({ appendLine() {}, show() {}, dispose() {} }),
    showErrorMessage: async (message, ...items) => {
      state.errors.push({ message, items });
      return undefined;
    },
  },
  commands: {
    registerCommand(id, fn) {
      state.commands.set(id, fn);
      return { dispose() {} };
    },
    executeCommand: async () => undefined,
  },
};

const originalLoad = Module._load;
Module._load = function (request, parent, isMain) {
  if (request === "vscode") return fakeVscode;
  if (request === "vscode-languageclient/node") {
    return { LanguageClient: FakeLanguageClient, CloseAction, ErrorAction };
  }
  return originalLoad.call(this, request, parent, isMain);
};

const extension = require("../extension.js");

// ------------------------------------------------------------------ helpers

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "chainr-vscode-test-"));
const fakeServer = path.join(tmp, "chainrc");
fs.writeFileSync(fakeServer, "#!/bin/sh\nexit 0\n", { mode: 0o755 });

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function context() {
  return { subscriptions: [] };
}

function changeConfiguration(sections) {
  const event = { affectsConfiguration: (s) => sections.some((x) => x === s || x.startsWith(s + ".")) };
  return Promise.all(state.configListeners.map((listener) => listener(event)));
}

// Restarts run in the background (the listener does not wait for them): let them finish.
function flush() {
  return new Promise((resolve) => setTimeout(resolve, 20));
}

beforeEach(async () => {
  await extension.deactivate();
  state.settings = { "server.path": fakeServer, "server.extraArgs": [] };
  state.workspaceFolders = undefined;
  state.errors = [];
  state.commands = new Map();
  state.configListeners = [];
  state.clients = [];
  state.failStart = undefined;
  state.exitWhileStarting = false;
});

// ------------------------------------------------------------------ tests

test("starts `chainrc lsp` over stdio for chainr files and untitled buffers", async () => {
  await extension.activate(context());
  assert.equal(state.clients.length, 1);
  const client = state.clients[0];
  assert.equal(client.id, "chainr");
  assert.deepEqual(client.serverOptions, { command: fakeServer, args: ["lsp"] });
  assert.equal(client.serverOptions.transport, undefined, "a stdio transport would append --stdio");
  assert.deepEqual(client.clientOptions.documentSelector, [
    { scheme: "file", language: "chainr" },
    { scheme: "untitled", language: "chainr" },
  ]);
  assert.ok(client.started);
  assert.equal(state.errors.length, 0);
  assert.ok(state.commands.has("chainr.restartServer"));
});

test("extra arguments follow `lsp`", async () => {
  state.settings["server.extraArgs"] = ["--log", "debug"];
  await extension.activate(context());
  assert.deepEqual(state.clients[0].serverOptions.args, ["lsp", "--log", "debug"]);
});

test("a missing binary gives one clear error and no client", async () => {
  state.settings["server.path"] = "chainrc-that-does-not-exist";
  await extension.activate(context());
  assert.equal(state.clients.length, 0);
  assert.equal(state.errors.length, 1);
  const { message, items } = state.errors[0];
  assert.match(message, /could not start `chainrc-that-does-not-exist lsp`/);
  assert.match(message, /not found on PATH/);
  assert.match(message, /chainr\.server\.path/);
  assert.deepEqual(items, ["Open Settings", "Show Output"]);
});

test("a path that is not an executable file is reported", async () => {
  state.settings["server.path"] = path.join(tmp, "nothing-here", "chainrc");
  await extension.activate(context());
  assert.equal(state.clients.length, 0);
  assert.match(state.errors[0].message, /no executable file at/);
});

test("a server that fails to start is reported and its client disposed", async () => {
  state.failStart = "Launching server using command chainrc failed.";
  await extension.activate(context());
  assert.equal(state.clients.length, 1);
  assert.ok(state.clients[0].disposed);
  assert.equal(state.errors.length, 1);
  assert.match(state.errors[0].message, /could not start `.*chainrc lsp`: Launching server/);
});

test("a server that exits during initialize is reported even though start() resolved", async () => {
  state.exitWhileStarting = true;
  await extension.activate(context());
  assert.equal(state.errors.length, 1);
  assert.match(state.errors[0].message, /the server exited while starting/);
  assert.match(state.errors[0].message, /chainr\.server\.path/);
});

test("while starting, the client's own notifications are only logged", async () => {
  state.exitWhileStarting = true;
  await extension.activate(context());
  const client = state.clients[0];
  client.error("couldn't create connection to server.", undefined, "force");
  assert.deepEqual(client.notified, []);
});

test("a running server that stops is restarted, up to 4 times in 3 minutes", async () => {
  await extension.activate(context());
  const client = state.clients[0];
  client.error("Stopping server failed", undefined, "force");
  assert.deepEqual(client.notified, ["Stopping server failed"], "once running, errors are shown as usual");
  const handler = client.clientOptions.errorHandler;
  for (let i = 0; i < 4; i++) assert.equal(handler.closed().action, CloseAction.Restart);
  const last = handler.closed();
  assert.equal(last.action, CloseAction.DoNotRestart);
  assert.match(last.message, /will not be restarted/);
  assert.equal(handler.error(new Error("x"), undefined, 1).action, ErrorAction.Continue);
  assert.equal(handler.error(new Error("x"), undefined, 4).action, ErrorAction.Shutdown);
});

test("a server that stops while starting is not restarted", async () => {
  state.exitWhileStarting = true;
  await extension.activate(context());
  const result = state.clients[0].clientOptions.errorHandler.closed();
  assert.equal(result.action, CloseAction.DoNotRestart);
  assert.equal(result.handled, true);
});

test("changing chainr.server.path restarts the server with the new binary", async () => {
  await extension.activate(context());
  const other = path.join(tmp, "chainrc-other");
  fs.writeFileSync(other, "#!/bin/sh\n", { mode: 0o755 });
  state.settings["server.path"] = other;

  await changeConfiguration(["editor.fontSize"]);
  await flush();
  assert.equal(state.clients.length, 1, "unrelated settings do not restart the server");

  await changeConfiguration(["chainr.server.path"]);
  await flush();
  assert.equal(state.clients.length, 2);
  assert.ok(state.clients[0].disposed, "the old client is stopped");
  assert.equal(state.clients[1].serverOptions.command, other);
  assert.ok(state.clients[1].started);
});

test("the restart command restarts the server", async () => {
  await extension.activate(context());
  await state.commands.get("chainr.restartServer")();
  assert.equal(state.clients.length, 2);
  assert.ok(state.clients[0].disposed);
  assert.ok(state.clients[1].started);
});

test("deactivate() stops the client", async () => {
  await extension.activate(context());
  await extension.deactivate();
  assert.ok(state.clients[0].disposed);
});

test("a relative path is resolved against the first workspace folder, ~ against home", async () => {
  const bin = path.join(tmp, "target", "debug");
  fs.mkdirSync(bin, { recursive: true });
  fs.writeFileSync(path.join(bin, "chainrc"), "#!/bin/sh\n", { mode: 0o755 });
  state.workspaceFolders = [{ uri: { scheme: "file", fsPath: tmp } }];
  state.settings["server.path"] = "target/debug/chainrc";
  await extension.activate(context());
  assert.equal(state.clients[0].serverOptions.command, path.join(bin, "chainrc"));

  await extension.deactivate();
  state.settings["server.path"] = "~/no-such-dir/chainrc";
  await extension.activate(context());
  assert.match(state.errors.at(-1).message, new RegExp(`no executable file at ${os.homedir()}`));
});
