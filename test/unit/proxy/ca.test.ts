import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { X509Certificate } from "node:crypto";
import { CertificateAuthority } from "../../../src/proxy/ca.js";
import { tempDirFor } from "../../support/run-app.js";

function openssl(args: string[]): { ok: boolean; output: string } {
  try {
    return { ok: true, output: execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }) };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    return { ok: false, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

describe("CertificateAuthority", () => {
  test("CA and leaves pass OpenSSL's strict verification as a TLS server (the profile Python 3.13 demands)", async (t) => {
    const dir = await tempDirFor(t, "mul-ca-");
    const ca = new CertificateAuthority({ permitted: ["mistral.ai", "127.0.0.1", "gw.example.com"] });
    writeFileSync(join(dir, "ca.pem"), ca.certPem);
    for (const [host, check] of [
      ["api.mistral.ai", ["-verify_hostname", "api.mistral.ai"]],
      ["mistral.ai", ["-verify_hostname", "mistral.ai"]],
      ["127.0.0.1", ["-verify_ip", "127.0.0.1"]],
      ["gw.example.com", ["-verify_hostname", "gw.example.com"]],
    ] as const) {
      const file = join(dir, `${host}.pem`);
      writeFileSync(file, ca.leafFor(host).cert);
      const r = openssl(["verify", "-x509_strict", "-purpose", "sslserver", ...check, "-CAfile", join(dir, "ca.pem"), file]);
      assert.ok(r.ok, `${host}: ${r.output}`);
    }
  });

  test("the leaf profile: SAN, CA:FALSE, digitalSignature, serverAuth, AKI = the CA's SKI; EC P-256; days, not years", () => {
    const ca = new CertificateAuthority({ permitted: ["mistral.ai"] });
    const caCert = new X509Certificate(ca.certPem);
    const leaf = new X509Certificate(ca.leafFor("API.Mistral.ai").cert);
    assert.equal(caCert.ca, true);
    assert.equal(leaf.ca, false);
    assert.equal(leaf.subjectAltName, "DNS:api.mistral.ai");
    assert.ok(leaf.checkIssued(caCert) && leaf.verify(caCert.publicKey));
    assert.equal(leaf.checkHost("api.mistral.ai"), "api.mistral.ai");
    assert.deepEqual(leaf.keyUsage, ["1.3.6.1.5.5.7.3.1"]);
    assert.equal(leaf.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
    const days = (Date.parse(caCert.validTo) - Date.now()) / 86_400_000;
    assert.ok(days > 6 && days < 8, `${days} days`);
    assert.ok(ca.certPem.endsWith("-----END CERTIFICATE-----\n"), "PEM ends with a newline (bundles are concatenations)");
    assert.equal(ca.leafFor("api.mistral.ai"), ca.leafFor("API.MISTRAL.AI"), "one leaf per host, reused");
  });

  test("name-constrained: no leaf for other hosts, and a verifier rejects one made anyway", async (t) => {
    const ca = new CertificateAuthority({ permitted: ["mistral.ai"] });
    assert.equal(ca.permits("evil.example.com"), false);
    assert.equal(ca.permits("notmistral.ai"), false);
    assert.equal(ca.permits("api.mistral.ai"), true);
    assert.throws(() => ca.leafFor("example.com"), /not allowed to vouch for example\.com/);
    // A CA allowed only mistral.ai whose key signs a leaf for another name (as a leaked key would):
    const dir = await tempDirFor(t, "mul-ca-");
    const wide = new CertificateAuthority({ permitted: ["example.com"] });
    writeFileSync(join(dir, "narrow.pem"), ca.certPem);
    writeFileSync(join(dir, "leaf.pem"), wide.leafFor("example.com").cert);
    assert.equal(openssl(["verify", "-CAfile", join(dir, "narrow.pem"), join(dir, "leaf.pem")]).ok, false);
    const r = openssl(["x509", "-in", join(dir, "narrow.pem"), "-noout", "-ext", "nameConstraints"]);
    assert.match(r.output, /critical[\s\S]*Permitted:\s+DNS:mistral\.ai/);
  });
});
