// A lean mock of the Mistral chat endpoint for the benchmark, run in its own process so that the
// client process is the only thing measured. Unlike test/support/mock-mistral.ts (tsx, flags,
// encodings, per-event async writes, bodies built per request), every response here is
// precomputed once as Buffers: the server does as little as node:http allows per request, so it
// is never what limits the client.
//
//   node bench/server.mjs [--port N] [--chunks 50] [--key K.pem --cert C.pem]   prints {"url":"http://127.0.0.1:PORT"}
//
// Bodies: bench/bodies.mjs. POST .../chat/completions with "stream":true in the body: an SSE stream of CHUNKS content events
// (usage on the last one, as Mistral does) then `data: [DONE]`, each event its own write, the server
// yielding (setImmediate) between writes so that they leave as separate segments.
// Any other POST: one fixed chat.completion JSON body with usage, with content-length.
// GET /__stats: this process's CPU time and request count (the bench checks the server is not the
// bottleneck). Keep-alive on; ends on SIGTERM/SIGINT.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createTlsServer } from "node:https";
import { parseArgs } from "node:util";
import { jsonBody as buildJsonBody, sseEvents as buildSseEvents } from "./bodies.mjs";

const { values } = parseArgs({
  options: { port: { type: "string", default: "0" }, chunks: { type: "string", default: "50" }, key: { type: "string" }, cert: { type: "string" } },
});
const CHUNKS = Number(values.chunks);
const jsonBody = buildJsonBody(CHUNKS);
const jsonHeaders = {
  "content-type": "application/json",
  "content-length": String(jsonBody.length),
};
const sseEvents = buildSseEvents(CHUNKS);
const sseHeaders = { "content-type": "text/event-stream", "cache-control": "no-cache" };

let requests = 0;
const STREAM_FLAG = Buffer.from('"stream":true');

function sendSse(res) {
  res.writeHead(200, sseHeaders);
  let i = 0;
  const next = () => {
    if (res.destroyed) return;
    if (i === sseEvents.length - 1) return void res.end(sseEvents[i]);
    res.write(sseEvents[i++]);
    setImmediate(next);
  };
  next();
}

// --key/--cert (PEM files): HTTPS, as the real API is (the proxy benchmark compares direct HTTPS with the proxies).
const tls = values.key === undefined ? undefined : { key: readFileSync(values.key), cert: readFileSync(values.cert) };
const server = (tls === undefined ? createServer : createTlsServer)({ keepAlive: true, noDelay: true, ...tls }, (req, res) => {
  requests++;
  if (req.method === "GET" && req.url === "/__stats") {
    req.resume();
    const cpu = process.cpuUsage();
    return void res.end(JSON.stringify({ cpuMicros: cpu.user + cpu.system, requests }));
  }
  let first;
  let rest;
  req.on("data", (chunk) => {
    if (first === undefined) first = chunk;
    else (rest ??= []).push(chunk);
  });
  req.on("end", () => {
    const body = rest === undefined ? first : Buffer.concat([first, ...rest]);
    if (body !== undefined && body.includes(STREAM_FLAG)) sendSse(res);
    else {
      res.writeHead(200, jsonHeaders);
      res.end(jsonBody);
    }
  });
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 61_000;
server.listen(Number(values.port), "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ url: `${tls === undefined ? "http" : "https"}://127.0.0.1:${server.address().port}` })}\n`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
