// Preloaded into the plugin by a benchmark (NODE_OPTIONS="--import .../request-trace.mjs"): every
// request the plugin starts, one line "METHOD PATH?QUERY" appended to $BENCH_REQUEST_TRACE. The
// plugin's bundle imports `request` from node:http and node:https by name, so the builtins are
// wrapped and their ESM bindings synchronised; client-node's own requests go through the same
// module objects.
import { appendFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { syncBuiltinESMExports } from 'node:module';

const file = process.env.BENCH_REQUEST_TRACE;
if (file) {
  for (const mod of [http, https]) {
    const request = mod.request;
    mod.request = function traced(...args) {
      const req = request.apply(this, args);
      appendFileSync(file, `${req.method} ${req.path}\n`);
      return req;
    };
  }
  syncBuiltinESMExports();
}
