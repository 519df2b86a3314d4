// SPDX-License-Identifier: Apache-2.0
//
// Node-RED settings for fieldgate's interop test: headless (no editor, no
// admin API, no HTTP nodes), the HTTP server on loopback at the port the
// test chooses, debug nodes logged to the console.
module.exports = {
  uiHost: "127.0.0.1",
  uiPort: Number(process.env.NODE_RED_PORT || 0),
  httpAdminRoot: false,
  httpNodeRoot: false,
  disableEditor: true,
  credentialSecret: false,
  logging: { console: { level: "info", metrics: false, audit: false } },
};
