/** Is this request a Mistral API call that reports token usage? Pure functions, no I/O. */

export type EndpointKind =
  | "chat"
  | "fim"
  | "agents"
  | "embeddings"
  | "moderations"
  | "classifications"
  | "conversations"
  | "transcriptions"
  | "speech";

export interface Endpoint {
  readonly kind: EndpointKind;
  /**
   * True where every successful response carries usage; a 2xx without it is then worth a warning.
   * Moderations and classifications may omit it (the spec has none), non-streamed speech never has it.
   */
  readonly usageExpected: boolean;
  /** The response may carry no model, so the request body's `model` is the fallback. */
  readonly needsRequestModel: boolean;
}

const ENDPOINTS: Record<EndpointKind, Endpoint> = {
  chat: { kind: "chat", usageExpected: true, needsRequestModel: false },
  fim: { kind: "fim", usageExpected: true, needsRequestModel: false },
  agents: { kind: "agents", usageExpected: true, needsRequestModel: false },
  embeddings: { kind: "embeddings", usageExpected: true, needsRequestModel: false },
  moderations: { kind: "moderations", usageExpected: false, needsRequestModel: false },
  classifications: { kind: "classifications", usageExpected: false, needsRequestModel: false },
  conversations: { kind: "conversations", usageExpected: true, needsRequestModel: true },
  transcriptions: { kind: "transcriptions", usageExpected: true, needsRequestModel: false },
  speech: { kind: "speech", usageExpected: false, needsRequestModel: true },
};

// The path must END with the endpoint; any prefix (a gateway's `/mistral/v1/...`) is allowed.
// Conversations: start `/v1/conversations`, append `/v1/conversations/{id}`, restart `/v1/conversations/{id}/restart`.
const ENDPOINT_GROUPS =
  "(?:(chat\\/completions)|(fim\\/completions)|(agents\\/completions)|(embeddings)|((?:chat\\/)?moderations)|((?:chat\\/)?classifications)|(conversations(?:\\/[^/]+(?:\\/restart)?)?)|(audio\\/transcriptions)|(audio\\/speech))\\/?$";
/** Mistral's own hosts: the endpoint comes right after `/v1/`, as in the API. */
const VERSIONED_PATH = new RegExp(`\\/v1\\/${ENDPOINT_GROUPS}`);
/**
 * Hosts from `MISTRAL_USAGE_HOSTS` (gateways): the endpoint at the end of the path, after any
 * segments or none. This counts `/chat/completions` (an OpenAI client whose base URL lacks `/v1`,
 * LiteLLM-style gateways) and Azure AI Foundry's `/models/chat/completions?api-version=...`. It
 * is kept to configured hosts: on mistral.ai every usage-bearing endpoint is under `/v1/`.
 */
const GATEWAY_PATH = new RegExp(`(?:^|\\/)${ENDPOINT_GROUPS}`);

const KIND_BY_GROUP: readonly EndpointKind[] = [
  "chat",
  "fim",
  "agents",
  "embeddings",
  "moderations",
  "classifications",
  "conversations",
  "transcriptions",
  "speech",
];

/**
 * Matches the path part of a request (query ignored) against the usage-bearing endpoints: after
 * `/v1/`, or, with `anyPrefix` (a configured gateway host), after any prefix or none.
 */
export function endpointForPath(pathWithQuery: string, anyPrefix = false): Endpoint | undefined {
  const match = (anyPrefix ? GATEWAY_PATH : VERSIONED_PATH).exec(pathWithoutQuery(pathWithQuery));
  if (match === null) return undefined;
  for (let group = 1; group < match.length; group++) {
    if (match[group] !== undefined) return ENDPOINTS[KIND_BY_GROUP[group - 1]!];
  }
  return undefined;
}

/** A request path without its query string or fragment. */
export function pathWithoutQuery(pathWithQuery: string): string {
  const end = pathWithQuery.search(/[?#]/);
  return end === -1 ? pathWithQuery : pathWithQuery.slice(0, end);
}

/** The server a call went to, as `gen_ai`'s `server.address` and `server.port` name it. */
export interface Server {
  /** Host name (lower case, no trailing dot) or IP address (IPv6 without brackets). */
  readonly address: string;
  readonly port: number;
}

/** Decides which hosts count as the Mistral API: `mistral.ai`, `*.mistral.ai`, and configured extras. */
export class HostMatcher {
  readonly #anyPort: ReadonlySet<string>;
  readonly #exact: ReadonlySet<string>;
  // Origins repeat (keep-alive clients talk to one or two); parsing a URL per request is avoidable work.
  // null: parsed, and not a Mistral host.
  readonly #cache = new Map<string, Server | null>();

  constructor(extraHosts: readonly string[]) {
    this.#anyPort = new Set(extraHosts.filter((h) => !/:\d+$/.test(h)));
    this.#exact = new Set(extraHosts.filter((h) => /:\d+$/.test(h)));
  }

  /** `origin` like `https://api.mistral.ai` or `http://127.0.0.1:8080`. */
  matchesOrigin(origin: string): boolean {
    return this.serverOf(origin) !== undefined;
  }

  /** The server of `origin` when it counts as the Mistral API; one shared object per origin. */
  serverOf(origin: string): Server | undefined {
    const cached = this.#cache.get(origin);
    if (cached !== undefined) return cached ?? undefined;
    let result: Server | null = null;
    try {
      const url = new URL(origin);
      const port = url.port === "" ? defaultPort(url.protocol) : url.port;
      if (this.matches(url.hostname, port)) {
        const host = url.hostname.toLowerCase().replace(/\.$/, "");
        result = { address: host.startsWith("[") ? host.slice(1, -1) : host, port: Number(port) };
      }
    } catch {
      result = null;
    }
    if (this.#cache.size >= 256) this.#cache.clear();
    this.#cache.set(origin, result);
    return result ?? undefined;
  }

  matches(hostname: string, port: string): boolean {
    const host = hostname.toLowerCase().replace(/\.$/, "");
    if (isMistralDomain(host)) return true;
    return this.#anyPort.has(host) || this.#exact.has(`${host}:${port}`);
  }
}

function defaultPort(protocol: string): string {
  return protocol === "https:" || protocol === "wss:" ? "443" : "80";
}

/** A request that is a usage-bearing Mistral call: which endpoint, on which server. */
export interface MatchedCall {
  readonly endpoint: Endpoint;
  readonly server: Server;
}

/**
 * The whole decision for one request as undici describes it. `path` may be absolute
 * (`http://host/v1/...`) when the request goes to a forward proxy.
 */
export function matchCall(hosts: HostMatcher, origin: string, path: string, method: string): MatchedCall | undefined {
  if (method !== "POST" && method.toUpperCase() !== "POST") return undefined;
  let serverOrigin = origin;
  let pathname = path;
  if (path.startsWith("http://") || path.startsWith("https://")) {
    let url: URL;
    try {
      url = new URL(path);
    } catch {
      return undefined;
    }
    serverOrigin = url.origin;
    pathname = url.pathname;
  }
  // The host first: its answer is cached per origin, so another host's request costs one Map lookup.
  const server = hosts.serverOf(serverOrigin);
  if (server === undefined) return undefined;
  const endpoint = endpointOfRepeatedPath(pathname, !isMistralDomain(server.address));
  return endpoint === undefined ? undefined : { endpoint, server };
}

// Clients call the same few paths again and again: a Map lookup instead of two regular expressions
// with nine capture groups per call. null: not an endpoint. Bounded: conversation paths carry ids.
const VERSIONED_PATHS = new Map<string, Endpoint | null>();
const GATEWAY_PATHS = new Map<string, Endpoint | null>();

function endpointOfRepeatedPath(path: string, anyPrefix: boolean): Endpoint | undefined {
  const cache = anyPrefix ? GATEWAY_PATHS : VERSIONED_PATHS;
  const cached = cache.get(path);
  if (cached !== undefined) return cached ?? undefined;
  const endpoint = endpointForPath(path, anyPrefix);
  if (cache.size >= 256) cache.clear();
  cache.set(path, endpoint ?? null);
  return endpoint;
}

function isMistralDomain(host: string): boolean {
  return host === "mistral.ai" || host.endsWith(".mistral.ai");
}

/** The endpoint of a request that is a usage-bearing Mistral call (see matchCall). */
export function matchRequest(hosts: HostMatcher, origin: string, path: string, method: string): Endpoint | undefined {
  return matchCall(hosts, origin, path, method)?.endpoint;
}
