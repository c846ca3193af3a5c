// Loads an unpacked .vsix's extension.js outside VS Code, to check that the package is complete:
// every module it requires (vscode-languageclient and its dependencies) must resolve from the
// package's own node_modules. `vscode` itself is replaced by a stand-in that accepts anything.
//
//   node tests/load-packaged.js UNPACKED_VSIX/extension/extension.js
"use strict";

const Module = require("node:module");
const path = require("node:path");

const main = path.resolve(process.argv[2] || "");
const root = path.dirname(main);

const anything = new Proxy(function () {}, {
  get: (_target, prop) => (prop === "prototype" ? {} : anything),
  construct: () => ({}),
  apply: () => anything,
});
const originalLoad = Module._load;
Module._load = function (request, parent, isMain) {
  if (request === "vscode") return anything;
  const loaded = originalLoad.call(this, request, parent, isMain);
  // Anything but Node's own modules must come from inside the package.
  if (!request.startsWith("node:") && !Module.isBuiltin(request)) {
    const file = Module._resolveFilename(request, parent, isMain);
    if (!file.startsWith(root + path.sep)) {
      throw new Error(`${request} resolved outside the package: ${file}`);
    }
  }
  return loaded;
};

const extension = require(main);
if (typeof extension.activate !== "function" || typeof extension.deactivate !== "function") {
  throw new Error(`${main} does not export activate() and deactivate()`);
}
const { LanguageClient } = require(require.resolve("vscode-languageclient/node", { paths: [root] }));
if (typeof LanguageClient !== "function") throw new Error("vscode-languageclient/node has no LanguageClient");
console.log(`ok: ${main} loads with the dependencies packaged beside it`);
