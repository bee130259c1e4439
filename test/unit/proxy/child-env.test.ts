import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { bypassesMistral, childProxyEnv, joinPem } from "../../../src/proxy/child-env.js";
import { parseAuthority } from "../../../src/proxy/server.js";
import { bypassesProxy } from "../../../src/proxy/upstream.js";
import { parseProxyAddress } from "../../../src/taps/via-run-proxy.js";

const OPTIONS = { proxyUrl: "http://mu:t0k@127.0.0.1:4000", proxyAddress: "127.0.0.1:4000", caFiles: { bundle: "/tmp/x/ca-bundle.pem", additive: "/tmp/x/run-ca.pem" }, extraHostNames: ["gw.corp", "10.0.0.5"] };

describe("childProxyEnv", () => {
  test("every proxy and CA variable, NODE_USE_ENV_PROXY, and the proxy's address for the preload; the rest kept", () => {
    const { env, removed } = childProxyEnv({ PATH: "/bin", SSL_CERT_FILE: "/corp.pem", HTTPS_PROXY: "http://corp:3128" }, OPTIONS);
    for (const name of ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]) assert.equal(env[name], OPTIONS.proxyUrl);
    for (const name of ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"]) assert.equal(env[name], "/tmp/x/ca-bundle.pem");
    for (const name of ["NODE_EXTRA_CA_CERTS", "DENO_CERT"]) assert.equal(env[name], "/tmp/x/run-ca.pem");
    assert.equal(env["NODE_USE_ENV_PROXY"], "1");
    assert.equal(env["MISTRAL_USAGE_PROXY"], "127.0.0.1:4000");
    assert.equal(env["PATH"], "/bin");
    assert.deepEqual(removed, []);
    assert.equal("NO_PROXY" in env, false, "not added when the user had none");
  });

  test("NO_PROXY loses only the entries that bypass Mistral hosts", () => {
    const { env, removed } = childProxyEnv({ NO_PROXY: "localhost, .mistral.ai,api.mistral.ai:443,example.com,*.gw.corp,gw.corp,10.0.0.0/8,ai", no_proxy: "*" }, OPTIONS);
    assert.equal(env["NO_PROXY"], "localhost,example.com");
    assert.equal(env["no_proxy"], "");
    assert.deepEqual(removed, [".mistral.ai", "api.mistral.ai:443", "*.gw.corp", "gw.corp", "10.0.0.0/8", "ai", "*"]);
  });

  test("bypassesMistral", () => {
    for (const entry of ["*", "mistral.ai", ".mistral.ai", "*.mistral.ai", "codestral.mistral.ai", "MISTRAL.AI.", "ai"]) assert.equal(bypassesMistral(entry, []), true, entry);
    for (const entry of ["", "localhost", "127.0.0.1", "notmistral.ai", "mistral.ai.example.com", "10.0.0.0/8"]) assert.equal(bypassesMistral(entry, []), false, entry);
    assert.equal(bypassesMistral("10.0.0.0/8", ["10.0.0.5"]), true);
    assert.equal(bypassesMistral("10.1.0.0/16", ["10.0.0.5"]), false);
  });
});

test("joinPem: every text ends with a newline, empty ones skipped", () => {
  assert.equal(joinPem(["a", "", "b\n", "c"]), "a\nb\nc\n");
});

test("bypassesProxy: NO_PROXY as curl and requests read it", () => {
  assert.equal(bypassesProxy("api.mistral.ai", "localhost,.mistral.ai"), true);
  assert.equal(bypassesProxy("api.mistral.ai", "mistral.ai"), true);
  assert.equal(bypassesProxy("api.mistral.ai", "other.ai, *"), true);
  assert.equal(bypassesProxy("api.mistral.ai", "localhost,notmistral.ai"), false);
  assert.equal(bypassesProxy("::1", "[::1]:8080"), true);
});

test("parseAuthority and parseProxyAddress", () => {
  assert.deepEqual(parseAuthority("api.mistral.ai:443"), { host: "api.mistral.ai", port: 443 });
  assert.deepEqual(parseAuthority("[::1]:8443"), { host: "::1", port: 8443 });
  assert.deepEqual(parseAuthority("API.Mistral.AI.:443"), { host: "api.mistral.ai", port: 443 });
  for (const bad of ["api.mistral.ai", "api.mistral.ai:0", "a:70000", "a b:1", "/x:1"]) assert.equal(parseAuthority(bad), undefined, bad);
  assert.deepEqual(parseProxyAddress("127.0.0.1:4000"), { address: "127.0.0.1", port: 4000 });
  assert.deepEqual(parseProxyAddress("[::1]:4000"), { address: "::1", port: 4000 });
  assert.equal(parseProxyAddress(undefined), undefined);
  assert.equal(parseProxyAddress("localhost:4000"), undefined);
});
