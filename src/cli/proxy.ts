/** `mistral-usage proxy`: a long-running base-URL proxy that logs the Mistral calls sent through it. */
import { isIP } from "node:net";
import { configFromEnv } from "../config.js";
import { stderrReporter } from "../report.js";
import { EXIT, PROGRAM, UsageError, parseOptions, warn, write } from "./common.js";
import type { Command } from "./common.js";
import { UPSTREAM_ENV, upstreamUrl } from "./run.js";

const DEFAULT_LISTEN = "127.0.0.1:8787";
const DEFAULT_UPSTREAM = "https://api.mistral.ai";

const HELP = `Usage: ${PROGRAM} proxy [options]

Listens for Mistral API requests sent to it as a base URL, forwards each one to
the upstream and logs its usage, for services, containers and clients that do
not use proxy variables (Java, aiohttp without trust_env, any language):

  ${PROGRAM} proxy
  ${PROGRAM} proxy --listen 127.0.0.1:0 \\
      --upstream https://gateway.example.com/mistral

Its first line on stdout is "listening on http://HOST:PORT". Point clients
there:
  Python SDK   Mistral(api_key=..., server_url="http://127.0.0.1:8787")
  OpenAI SDKs  OPENAI_BASE_URL=http://127.0.0.1:8787/v1
  curl         curl http://127.0.0.1:8787/v1/chat/completions ...
The client's Authorization header is passed on unchanged. Requests and
responses stream through untouched; only the upstream is ever contacted, never
a host the client names (CONNECT and absolute-form requests get 405).

Options:
  --listen HOST:PORT  where to listen (default ${DEFAULT_LISTEN}; port 0 picks one)
  --upstream URL      where to forward (default $${UPSTREAM_ENV}, else
                      ${DEFAULT_UPSTREAM}); a path in URL is put before
                      every request's path
  --allow-remote      allow a --listen address other than loopback (anyone who
                      can reach it can use your API key's traffic path)
  -h, --help          show this help

The log is $MISTRAL_USAGE_LOG, else ./mistral_usage_log.csv. The proxy's own
connections verify certificates (system roots plus NODE_EXTRA_CA_CERTS) and go
through $HTTPS_PROXY when it is set.

Exit status: 0 when stopped by SIGINT or SIGTERM (after the calls in flight
have finished, at most 5 s, with every row written); 1 when it cannot listen;
2: usage error (unknown option, bad --listen or --upstream).
`;

export const proxyCommand: Command = {
  name: "proxy",
  summary: "a base-URL proxy that logs every Mistral call",
  help: HELP,
  async run(args, ctx) {
    const { values } = parseOptions("proxy", args, { listen: { type: "string" }, upstream: { type: "string" }, "allow-remote": { type: "boolean", default: false } }, false);
    const { host, port } = parseListen((values.listen as string | undefined) ?? DEFAULT_LISTEN);
    if (!isLoopback(host) && values["allow-remote"] !== true) {
      throw new UsageError(`--listen ${host} is not a loopback address; add --allow-remote to listen there anyway`, "proxy");
    }
    const base = upstreamUrl(values.upstream as string | undefined, ctx.env, "proxy") ?? new URL(DEFAULT_UPSTREAM);
    const config = configFromEnv(ctx.env, ctx.cwd);
    const reporter = stderrReporter();
    for (const warning of config.warnings) reporter.warn(warning);
    const { startBaseUrlProxy } = await import("../proxy/session.js");
    let session;
    try {
      session = await startBaseUrlProxy({ config, env: ctx.env, reporter, base, host, port });
    } catch (error) {
      warn(ctx, `cannot listen on ${host}:${port}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      return EXIT.problems;
    }
    await write(ctx.stdout, `listening on ${session.url} (forwarding to ${base.href.replace(/\/$/, "")}); point clients' base URL at ${session.url}, e.g. OPENAI_BASE_URL=${session.url}/v1\n`);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      const stop = (s: NodeJS.Signals): void => {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        resolve(s);
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
    await session.stop();
    warn(ctx, `stopped (${signal})`);
    return EXIT.ok;
  },
};

/** `HOST:PORT`, `[v6]:PORT` or `PORT`. */
export function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):)?(\d{1,5})$/.exec(text.trim());
  const port = Number(match?.[3]);
  if (match === null || port > 65535) throw new UsageError(`--listen needs HOST:PORT (e.g. ${DEFAULT_LISTEN}), got ${JSON.stringify(text)}`, "proxy");
  return { host: match[1] ?? match[2] ?? "127.0.0.1", port };
}

function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1";
}
