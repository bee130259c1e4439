/**
 * The loopback Mistral mock over TLS, with a certificate from a CA made for the test (written to a
 * temp file, as a user's own CA would be), for the proxy tests.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { CertificateAuthority } from '../../src/proxy/ca.js';
import type { MockMistral, StartOptions } from './mock-mistral.js';
import { mockFor } from './run-app.js';

/** Debian's Python: python3-requests and python3-httpx live here (.ci/proxy.sh installs them). */
export const PYTHON = '/usr/bin/python3';

export interface TlsMock {
  mock: MockMistral;
  /** PEM file of the CA that signed the mock's certificate. */
  caFile: string;
  ca: CertificateAuthority;
}

/** A TLS mock for `host` (an IP address or a name that resolves to loopback), closed after the test. */
export async function tlsMockFor(t: TestContext, dir: string, options: StartOptions & { host?: string; name?: string } = {}): Promise<TlsMock> {
  const host = options.host ?? '127.0.0.1';
  const ca = new CertificateAuthority({ permitted: [host] });
  const caFile = join(dir, `${options.name ?? 'test'}-ca.pem`);
  await writeFile(caFile, ca.certPem);
  const mock = await mockFor(t, { ...options, tls: ca.leafFor(host) });
  return { mock, caFile, ca };
}
