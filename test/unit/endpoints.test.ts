import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseHosts } from "../../src/config.js";
import { endpointForPath, HostMatcher, matchRequest, type EndpointKind } from "../../src/endpoints.js";

const kindOf = (path: string): EndpointKind | undefined => endpointForPath(path)?.kind;

describe("endpointForPath", () => {
  const matching: Array<[string, EndpointKind]> = [
    ["/v1/chat/completions", "chat"],
    ["/v1/fim/completions", "fim"],
    ["/v1/agents/completions", "agents"],
    ["/v1/embeddings", "embeddings"],
    ["/v1/moderations", "moderations"],
    ["/v1/chat/moderations", "moderations"],
    ["/v1/classifications", "classifications"],
    ["/v1/chat/classifications", "classifications"],
    ["/v1/conversations", "conversations"],
    ["/v1/conversations/conv_0682c9a1b2c3", "conversations"],
    ["/v1/conversations/conv_0682c9a1b2c3/restart", "conversations"],
    ["/v1/audio/transcriptions", "transcriptions"],
    ["/v1/audio/speech", "speech"],
  ];

  for (const [path, kind] of matching) {
    test(`${path} → ${kind}`, () => assert.equal(kindOf(path), kind));
  }

  describe("variants of a matching path", () => {
    const variants: Array<[string, EndpointKind]> = [
      ["/v1/chat/completions/", "chat"],
      ["/v1/chat/completions?stream=true", "chat"],
      ["/v1/chat/completions?", "chat"],
      ["/v1/chat/completions#stream", "chat"],
      ["/v1/embeddings?a=1&b=/v1/models", "embeddings"],
      // Gateways and proxies put the API under a prefix.
      ["/mistral/v1/chat/completions", "chat"],
      ["/api/providers/mistral/v1/audio/speech?x=1", "speech"],
      ["//v1/fim/completions", "fim"],
      ["/v1/conversations/", "conversations"],
      ["/v1/conversations/conv_1/restart/", "conversations"],
      ["/v1/conversations?agent=1", "conversations"],
    ];
    for (const [path, kind] of variants) {
      test(`${path} → ${kind}`, () => assert.equal(kindOf(path), kind));
    }
  });

  describe("paths that are not usage-bearing endpoints", () => {
    const others = [
      "",
      "/",
      "/v1/models",
      "/v1/models/mistral-small-latest",
      "/v1/ocr",
      "/v1/files",
      "/v1/batch/jobs",
      "/v1/fine_tuning/jobs",
      "/v1/agents",
      "/v1/agents/ag_0682c9a0f1e2",
      "/v1/chat/completionsX",
      "/v1/chat/completions/extra",
      "/v1/chat/completions.json",
      "/v1/chat/completion",
      "/v1/embeddingsX",
      "/v1/fim/moderations",
      "/v1/audio/speechX",
      "/v1/audio/voices",
      "/v1/conversations/conv_1/history",
      "/v1/conversations/conv_1/messages",
      "/v1/conversations/conv_1/restart/now",
      "/v1/conversations/conv_1/restartX",
      "/chat/completions",
      "/v2/chat/completions",
      "/xv1/chat/completions",
      "/V1/CHAT/COMPLETIONS",
      // The endpoint only in the query string or fragment does not count.
      "/v1/models?next=/v1/chat/completions",
      "/health#/v1/chat/completions",
    ];
    for (const path of others) {
      test(JSON.stringify(path), () => assert.equal(endpointForPath(path), undefined));
    }
  });

  describe("per-endpoint flags", () => {
    const flags: Array<[string, boolean, boolean]> = [
      // path, usageExpected, needsRequestModel
      ["/v1/chat/completions", true, false],
      ["/v1/fim/completions", true, false],
      ["/v1/agents/completions", true, false],
      ["/v1/embeddings", true, false],
      ["/v1/moderations", false, false],
      ["/v1/chat/classifications", false, false],
      ["/v1/conversations", true, true],
      ["/v1/audio/transcriptions", true, false],
      ["/v1/audio/speech", false, true],
    ];
    for (const [path, usageExpected, needsRequestModel] of flags) {
      test(path, () => {
        const endpoint = endpointForPath(path);
        assert.ok(endpoint);
        assert.equal(endpoint.usageExpected, usageExpected);
        assert.equal(endpoint.needsRequestModel, needsRequestModel);
      });
    }
  });
});

describe("HostMatcher", () => {
  describe("Mistral's own hosts match on any port", () => {
    const matcher = new HostMatcher([]);
    const origins = [
      "https://api.mistral.ai",
      "https://api.mistral.ai:443",
      "http://api.mistral.ai:8080",
      "https://api.eu.mistral.ai",
      "https://api.us.mistral.ai",
      "https://codestral.mistral.ai",
      "https://mistral.ai",
      "https://API.MISTRAL.AI",
      "https://api.mistral.ai.",
    ];
    for (const origin of origins) {
      test(origin, () => assert.equal(matcher.matchesOrigin(origin), true));
    }
  });

  describe("other hosts do not match", () => {
    const matcher = new HostMatcher([]);
    const origins = [
      "https://mistral.ai.evil.com",
      "https://api.mistral.ai.evil.com",
      "https://notmistral.ai",
      "https://evilmistral.ai",
      "https://mistral.aix",
      "https://mistral-ai.com",
      "https://api.openai.com",
      "http://127.0.0.1:8080",
      "http://localhost",
      "not a url",
      "",
    ];
    for (const origin of origins) {
      test(JSON.stringify(origin), () => assert.equal(matcher.matchesOrigin(origin), false));
    }
  });

  describe("extra hosts: `host` any port, `host:port` only that port", () => {
    const matcher = new HostMatcher(parseHosts("gw.local, 127.0.0.1:8080, [::1]:9000, plain.proxy:80, tls.proxy:443, ::2").hosts);
    const cases: Array<[string, boolean]> = [
      ["http://gw.local", true],
      ["https://gw.local", true],
      ["http://gw.local:1234", true],
      ["http://GW.LOCAL:1234", true],
      ["http://sub.gw.local", false],
      ["http://127.0.0.1:8080", true],
      ["http://127.0.0.1:8081", false],
      ["http://127.0.0.1", false],
      ["http://[::1]:9000", true],
      ["http://[::1]:9001", false],
      ["http://[::2]:5555", true],
      ["http://plain.proxy", true],
      ["http://plain.proxy:80", true],
      ["https://plain.proxy", false],
      ["https://tls.proxy", true],
      ["http://tls.proxy:443", true],
      ["http://tls.proxy", false],
      // Mistral still matches alongside the extras.
      ["https://api.mistral.ai", true],
    ];
    for (const [origin, expected] of cases) {
      test(`${origin} → ${expected}`, () => assert.equal(matcher.matchesOrigin(origin), expected));
    }
  });

  test("internationalised extra hosts match the punycode origin undici reports", () => {
    const matcher = new HostMatcher(parseHosts("bücher.example").hosts);
    assert.equal(matcher.matchesOrigin(new URL("https://bücher.example").origin), true);
  });

  test("matches(hostname, port) directly", () => {
    const matcher = new HostMatcher(["gw.local", "10.0.0.5:3000"]);
    assert.equal(matcher.matches("API.Mistral.AI", "443"), true);
    assert.equal(matcher.matches("gw.local", "1"), true);
    assert.equal(matcher.matches("gw.local.", "1"), true);
    assert.equal(matcher.matches("10.0.0.5", "3000"), true);
    assert.equal(matcher.matches("10.0.0.5", "3001"), false);
    assert.equal(matcher.matches("notmistral.ai", "443"), false);
  });

  test("repeated lookups (served from the cache) give the same answer", () => {
    const matcher = new HostMatcher(["gw.local"]);
    for (let i = 0; i < 3; i++) {
      assert.equal(matcher.matchesOrigin("http://gw.local:8080"), true);
      assert.equal(matcher.matchesOrigin("https://notmistral.ai"), false);
    }
    // More distinct origins than the cache holds.
    for (let i = 0; i < 600; i++) assert.equal(matcher.matchesOrigin(`http://h${i}.example`), false);
    assert.equal(matcher.matchesOrigin("http://gw.local:8080"), true);
  });

  test(
    "an extra host written as a fully qualified name with a trailing dot still matches",
    () => {
      const matcher = new HostMatcher(parseHosts("gw.local.").hosts);
      assert.equal(matcher.matchesOrigin("http://gw.local:8080"), true);
      assert.equal(matcher.matchesOrigin("http://gw.local.:8080"), true);
    },
  );
});

describe("matchRequest", () => {
  const hosts = new HostMatcher(["127.0.0.1:8080", "gw.local"]);

  const cases: Array<[string, string, string, EndpointKind | undefined]> = [
    // origin, path, method, expected
    ["https://api.mistral.ai", "/v1/chat/completions", "POST", "chat"],
    ["https://api.mistral.ai", "/v1/chat/completions", "post", "chat"],
    ["https://api.mistral.ai", "/v1/chat/completions?stream=true", "POST", "chat"],
    ["https://api.eu.mistral.ai", "/v1/embeddings", "POST", "embeddings"],
    ["https://codestral.mistral.ai", "/v1/fim/completions", "POST", "fim"],
    ["http://127.0.0.1:8080", "/mistral/v1/audio/speech", "POST", "speech"],
    ["https://api.mistral.ai", "/v1/conversations/conv_1", "POST", "conversations"],
    // Not POST.
    ["https://api.mistral.ai", "/v1/models", "GET", undefined],
    ["https://api.mistral.ai", "/v1/chat/completions", "GET", undefined],
    ["https://api.mistral.ai", "/v1/chat/completions", "OPTIONS", undefined],
    ["https://api.mistral.ai", "/v1/conversations/conv_1", "GET", undefined],
    ["https://api.mistral.ai", "/v1/conversations/conv_1", "DELETE", undefined],
    ["https://api.mistral.ai", "/v1/chat/completions", "PUT", undefined],
    // Not an endpoint.
    ["https://api.mistral.ai", "/v1/ocr", "POST", undefined],
    ["https://api.mistral.ai", "/v1/conversations/conv_1/history", "POST", undefined],
    // Not a Mistral host.
    ["https://api.openai.com", "/v1/chat/completions", "POST", undefined],
    ["https://mistral.ai.evil.com", "/v1/chat/completions", "POST", undefined],
    ["https://notmistral.ai", "/v1/chat/completions", "POST", undefined],
    ["http://127.0.0.1:8081", "/v1/chat/completions", "POST", undefined],
    // A forward proxy receives the absolute URL as the path; the proxy's origin does not matter.
    ["http://proxy.corp:3128", "https://api.mistral.ai/v1/chat/completions", "POST", "chat"],
    ["http://proxy.corp:3128", "https://api.mistral.ai/v1/chat/completions?stream=true", "POST", "chat"],
    ["http://proxy.corp:3128", "http://127.0.0.1:8080/v1/embeddings", "POST", "embeddings"],
    ["http://proxy.corp:3128", "https://api.mistral.ai/v1/models", "POST", undefined],
    ["http://proxy.corp:3128", "https://api.mistral.ai/v1/chat/completions", "GET", undefined],
    ["http://proxy.corp:3128", "http://example.com/v1/chat/completions", "POST", undefined],
    ["http://proxy.corp:3128", "http://127.0.0.1:9999/v1/chat/completions", "POST", undefined],
    ["https://api.mistral.ai", "http://example.com/v1/chat/completions", "POST", undefined],
    ["http://proxy.corp:3128", "https://api.mistral.ai/v1/models?x=/v1/chat/completions", "POST", undefined],
    ["http://proxy.corp:3128", "http://[invalid/v1/chat/completions", "POST", undefined],
    // Gateway shapes, on configured hosts only (gw.local, 127.0.0.1:8080): an OpenAI client whose
    // base URL lacks /v1, LiteLLM-style gateways.
    ["http://gw.local", "/chat/completions", "POST", "chat"],
    ["http://gw.local", "/chat/completions/", "POST", "chat"],
    ["http://gw.local", "/embeddings", "POST", "embeddings"],
    ["http://gw.local", "/litellm/fim/completions", "POST", "fim"],
    ["http://gw.local", "/openai/v2/chat/completions", "POST", "chat"],
    ["http://gw.local", "/conversations/conv_1/restart", "POST", "conversations"],
    ["http://gw.local", "/audio/speech", "POST", "speech"],
    // Azure AI Foundry: /models/chat/completions?api-version=...
    ["http://127.0.0.1:8080", "/models/chat/completions?api-version=2024-05-01-preview", "POST", "chat"],
    ["http://127.0.0.1:8080", "/models/embeddings?api-version=2024-05-01-preview", "POST", "embeddings"],
    ["http://proxy.corp:3128", "http://gw.local/models/chat/completions?api-version=1", "POST", "chat"],
    // Still out: listings, other endpoints, other methods, lookalikes.
    ["http://gw.local", "/v1/models", "GET", undefined],
    ["http://gw.local", "/models", "POST", undefined],
    ["http://gw.local", "/models/mistral-small-latest", "POST", undefined],
    ["http://gw.local", "/models/chat/completions", "GET", undefined],
    ["http://gw.local", "/v1/ocr", "POST", undefined],
    ["http://gw.local", "/ocr", "POST", undefined],
    ["http://gw.local", "/files", "POST", undefined],
    ["http://gw.local", "/xchat/completions", "POST", undefined],
    ["http://gw.local", "/chat/completionsX", "POST", undefined],
    ["http://gw.local", "/chat/completions/extra", "POST", undefined],
    ["http://gw.local", "/conversations/conv_1/history", "POST", undefined],
    ["http://gw.local", "/health?next=/chat/completions", "POST", undefined],
    // Not a configured host: no gateway shapes.
    ["http://other.local", "/chat/completions", "POST", undefined],
    // mistral.ai itself keeps the API's own shape: the endpoint right after /v1/.
    ["https://api.mistral.ai", "/chat/completions", "POST", undefined],
    ["https://api.mistral.ai", "/models/chat/completions", "POST", undefined],
    ["https://api.mistral.ai", "/v2/chat/completions", "POST", undefined],
    ["http://proxy.corp:3128", "https://api.mistral.ai/chat/completions", "POST", undefined],
    ["https://api.mistral.ai", "/v1/chat/completions", "POST", "chat"],
  ];

  for (const [origin, path, method, expected] of cases) {
    test(`${method} ${origin} ${path} → ${expected ?? "no"}`, () => {
      assert.equal(matchRequest(hosts, origin, path, method)?.kind, expected);
    });
  }

  test("returns the same Endpoint object as endpointForPath", () => {
    assert.equal(matchRequest(hosts, "https://api.mistral.ai", "/v1/audio/speech", "POST"), endpointForPath("/v1/audio/speech"));
  });

  test("repeated paths (answered from a cache) keep the answer of their host's kind, in any order", () => {
    for (let round = 0; round < 3; round++) {
      assert.equal(matchRequest(hosts, "https://api.mistral.ai", "/chat/completions", "POST"), undefined);
      assert.equal(matchRequest(hosts, "http://gw.local", "/chat/completions", "POST")?.kind, "chat");
      assert.equal(matchRequest(hosts, "https://api.mistral.ai", "/v1/ocr", "POST"), undefined);
    }
  });

  test("more distinct paths than the cache holds (conversation ids): every one answered as the first time", () => {
    for (let i = 0; i < 600; i++) {
      assert.equal(matchRequest(hosts, "https://api.mistral.ai", `/v1/conversations/conv_${i}`, "POST")?.kind, "conversations");
      assert.equal(matchRequest(hosts, "https://api.mistral.ai", `/v1/conversations/conv_${i}/history`, "POST"), undefined);
    }
  });
});
