/**
 * The run's own certificate authority, in memory: an EC P-256 key made with node:crypto and
 * certificates written with the small DER writer next door. No certificate library: this is ~1 ms
 * per leaf and adds nothing to install (the measured alternative, @peculiar/x509, costs 0.5–1 s to
 * import and ~9 ms per leaf; node-forge cannot sign ECDSA).
 *
 * The profile is the one strict verifiers accept (any-language-proxy.md §3, checked with
 * `openssl verify -x509_strict -purpose sslserver` in the tests): the CA has basicConstraints
 * CA:TRUE, keyUsage keyCertSign|cRLSign, a subject key identifier and a critical nameConstraints
 * limited to the intercepted names, so that even a leaked key cannot vouch for other hosts; each
 * leaf has a SAN, CA:FALSE, keyUsage digitalSignature, EKU serverAuth and an authority key
 * identifier equal to the CA's (Python 3.13 rejects a leaf without one). Validity is days, not years.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, X509Certificate } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { isIP } from "node:net";
import {
  bitString,
  boolean,
  contextTag,
  objectIdentifier,
  octetString,
  sequence,
  set,
  unsignedInteger,
  utcTime,
  utf8String,
} from "./der.js";

const OID = {
  ecPublicKey: "1.2.840.10045.2.1",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  commonName: "2.5.4.3",
  organization: "2.5.4.10",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  nameConstraints: "2.5.29.30",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
} as const;

const HOUR = 3600_000;
const DAY = 24 * HOUR;

export interface LeafCertificate {
  /** PEM, for tls.createSecureContext. */
  readonly cert: string;
  readonly key: string;
}

export interface CertificateAuthorityOptions {
  /**
   * Names the CA may vouch for: DNS names (each permits itself and its subdomains, as
   * nameConstraints define it) and IP addresses. Leaves for other names are refused.
   */
  readonly permitted: readonly string[];
  /** How long the CA is valid (default 7 days); leaves are valid for as long, at most. */
  readonly validForMs?: number;
  readonly now?: () => Date;
}

export class CertificateAuthority {
  /** PEM with a trailing newline (bundles are concatenations: a missing one breaks them). */
  readonly certPem: string;
  readonly #key: KeyObject;
  readonly #keyId: Buffer;
  readonly #name: Buffer;
  readonly #permitted: readonly string[];
  readonly #notAfter: Date;
  readonly #now: () => Date;
  readonly #leaves = new Map<string, LeafCertificate>();

  constructor(options: CertificateAuthorityOptions) {
    this.#now = options.now ?? (() => new Date());
    const now = this.#now();
    this.#notAfter = new Date(now.getTime() + (options.validForMs ?? 7 * DAY));
    this.#permitted = options.permitted.map((name) => name.toLowerCase());
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    this.#key = privateKey;
    const spki = publicKey.export({ type: "spki", format: "der" });
    this.#keyId = keyIdentifier(spki);
    const label = `mistral-usage-log run CA ${randomBytes(4).toString("hex")}`;
    this.#name = sequence(set(sequence(objectIdentifier(OID.commonName), utf8String(label))));
    const der = this.#sign({
      subject: this.#name,
      spki,
      notBefore: new Date(now.getTime() - HOUR),
      notAfter: this.#notAfter,
      extensions: [
        extension(OID.basicConstraints, true, sequence(boolean(true), unsignedInteger(Buffer.from([0])))),
        extension(OID.keyUsage, true, bitString(Buffer.from([0x06]), 1)), // keyCertSign | cRLSign
        extension(OID.subjectKeyIdentifier, false, octetString(this.#keyId)),
        extension(OID.nameConstraints, true, sequence(contextTag(0, Buffer.concat(this.#permitted.map(permittedSubtree)), true))),
      ],
    });
    this.certPem = pem(der);
  }

  /** Whether the CA may vouch for `host` (a DNS name or an IP address). */
  permits(host: string): boolean {
    const name = host.toLowerCase().replace(/^\[|\]$/g, "");
    if (isIP(name) !== 0) return this.#permitted.includes(name);
    return this.#permitted.some((p) => isIP(p) === 0 && (name === p || name.endsWith(`.${p}`)));
  }

  /** A leaf certificate for `host`, made once per host (about a millisecond) and then reused. */
  leafFor(host: string): LeafCertificate {
    const name = host.toLowerCase().replace(/^\[|\]$/g, "");
    const cached = this.#leaves.get(name);
    if (cached !== undefined) return cached;
    if (!this.permits(name)) throw new Error(`the run's CA is not allowed to vouch for ${host}`);
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const spki = publicKey.export({ type: "spki", format: "der" });
    const now = this.#now();
    const ip = isIP(name);
    const san = ip === 0 ? contextTag(2, Buffer.from(name, "ascii"), false) : contextTag(7, ipBytes(name), false);
    const der = this.#sign({
      // No common name: verifiers use the SAN, and OpenSSL would check a host-like CN against the
      // CA's name constraints as a DNS name (an IP address there would then fail).
      subject: sequence(set(sequence(objectIdentifier(OID.organization), utf8String("mistral-usage-log")))),
      spki,
      notBefore: new Date(now.getTime() - HOUR),
      notAfter: this.#notAfter,
      extensions: [
        extension(OID.basicConstraints, true, sequence()),
        extension(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)), // digitalSignature
        extension(OID.extKeyUsage, false, sequence(objectIdentifier(OID.serverAuth))),
        extension(OID.subjectAltName, false, sequence(san)),
        extension(OID.authorityKeyIdentifier, false, sequence(contextTag(0, this.#keyId, false))),
      ],
    });
    const leaf: LeafCertificate = {
      cert: pem(der),
      key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    };
    this.#leaves.set(name, leaf);
    return leaf;
  }

  #sign(parts: { subject: Buffer; spki: Buffer; notBefore: Date; notAfter: Date; extensions: Buffer[] }): Buffer {
    const algorithm = sequence(objectIdentifier(OID.ecdsaWithSha256));
    const serial = randomBytes(16);
    serial[0] = (serial[0]! & 0x7f) | 0x01; // positive and never zero-led
    const tbs = sequence(
      contextTag(0, unsignedInteger(Buffer.from([2])), true), // v3
      unsignedInteger(serial),
      algorithm,
      this.#name, // the issuer: the CA (itself, for its own certificate)
      sequence(utcTime(parts.notBefore), utcTime(parts.notAfter)),
      parts.subject,
      parts.spki,
      contextTag(3, sequence(...parts.extensions), true),
    );
    // ECDSA signatures from node:crypto are DER (dsaEncoding "der"), as X.509 wants them.
    return sequence(tbs, algorithm, bitString(sign("sha256", tbs, this.#key)));
  }
}

function extension(oid: string, critical: boolean, value: Buffer): Buffer {
  return critical ? sequence(objectIdentifier(oid), boolean(true), octetString(value)) : sequence(objectIdentifier(oid), octetString(value));
}

/** RFC 5280 method 1: SHA-1 of the subjectPublicKey BIT STRING's bytes (the uncompressed EC point, last 65 bytes of a P-256 SPKI). */
function keyIdentifier(spki: Buffer): Buffer {
  return createHash("sha1").update(spki.subarray(spki.length - 65)).digest();
}

function permittedSubtree(name: string): Buffer {
  const ip = isIP(name);
  if (ip === 0) return sequence(contextTag(2, Buffer.from(name, "ascii"), false));
  // An iPAddress subtree is the address followed by its mask: one exact address.
  const mask = Buffer.alloc(ip === 4 ? 4 : 16, 0xff);
  return sequence(contextTag(7, Buffer.concat([ipBytes(name), mask]), false));
}

function ipBytes(address: string): Buffer {
  if (isIP(address) === 4) return Buffer.from(address.split(".").map(Number));
  // IPv6: expand "::" and write eight 16-bit groups.
  const [head = "", tail] = address.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function pem(der: Buffer): string {
  const base64 = der.toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "");
  return `-----BEGIN CERTIFICATE-----\n${base64}\n-----END CERTIFICATE-----\n`;
}

/** For tests and self-checks: the certificate node:crypto parses from our PEM. */
export function parseCertificate(certPem: string): X509Certificate {
  return new X509Certificate(certPem);
}
