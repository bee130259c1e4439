// The peer (C): the usage logger a user would write by hand with @mswjs/interceptors, loaded the
// same way as ours: `node --import bench/peers/msw-logger.mjs app.js`. Deliberately plain.
//
// FetchInterceptor replaces globalThis.fetch with a proxy that passes each request through and
// hands the "response" listener a clone of the response (a tee of its body). The listener reads
// the clone, finds the usage (JSON body, or the SSE event that carries it) and appends one row.
//
// The listener does not return its promise: FetchInterceptor awaits an async listener before it
// resolves the app's fetch(), so the obvious `async ({ response }) => { await response.text() }`
// would hold every streamed response back until its last chunk. It only sees global fetch: npm
// undici's request() and node:http clients are not intercepted.
import fs from "node:fs";
import { FetchInterceptor } from "@mswjs/interceptors/fetch";

const logPath = process.env.MISTRAL_USAGE_LOG ?? "mistral_usage_log.csv";
const hosts = (process.env.MISTRAL_USAGE_HOSTS ?? "").split(",").filter(Boolean);

if (!fs.existsSync(logPath)) fs.writeFileSync(logPath, "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens\n");

function isMistral(url) {
  const { host, hostname, pathname } = new URL(url);
  return (hostname.endsWith("mistral.ai") || hosts.includes(host)) && /\/v1\/(chat|fim|agents)\/completions$|\/v1\/embeddings$/.test(pathname);
}

function usageOf(text) {
  if (!text.startsWith("data:")) return JSON.parse(text);
  for (const line of text.split("\n")) {
    if (line.startsWith("data:") && line.includes('"usage"')) return JSON.parse(line.slice(5));
  }
  return undefined;
}

const interceptor = new FetchInterceptor();
interceptor.apply();
interceptor.on("response", ({ request, response }) => {
  if (request.method !== "POST" || !response.ok || !isMistral(request.url)) return;
  response
    .text()
    .then((text) => {
      const body = usageOf(text);
      if (body?.usage === undefined) return;
      const { prompt_tokens = 0, completion_tokens = 0, total_tokens = 0 } = body.usage;
      const timestamp = new Date().toISOString().replace("Z", "000+00:00");
      fs.appendFileSync(logPath, `${timestamp},${body.model},${prompt_tokens},${completion_tokens},${total_tokens}\n`);
    })
    .catch((error) => console.error("usage logger:", error));
});
