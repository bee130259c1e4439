import assert from "node:assert/strict";
import path from "node:path";
import { describe, test } from "node:test";
import { configFromEnv, DEFAULT_LOG_FILE, ENV, parseHosts } from "../../src/config.js";

const CWD = "/srv/app";

describe("configFromEnv", () => {
  test("defaults: CSV in the working directory, no extra hosts, flags off, no warnings", () => {
    assert.deepEqual(configFromEnv({}, CWD), {
      logPath: path.resolve(CWD, DEFAULT_LOG_FILE),
      extraHosts: [],
      verbose: false,
      disabled: false,
      warnings: [],
    });
    assert.equal(DEFAULT_LOG_FILE, "mistral_usage_log.csv");
  });

  test("the variable names", () => {
    assert.deepEqual(ENV, {
      log: "MISTRAL_USAGE_LOG",
      hosts: "MISTRAL_USAGE_HOSTS",
      verbose: "MISTRAL_USAGE_VERBOSE",
      disable: "MISTRAL_USAGE_DISABLE",
    });
  });

  describe("MISTRAL_USAGE_LOG is resolved against cwd", () => {
    const cases: Array<[string, string]> = [
      ["usage.csv", "/srv/app/usage.csv"],
      ["logs/usage.csv", "/srv/app/logs/usage.csv"],
      ["./logs/../usage.csv", "/srv/app/usage.csv"],
      ["../shared/usage.csv", "/srv/shared/usage.csv"],
      ["/var/log/mistral/usage.csv", "/var/log/mistral/usage.csv"],
      ["team log, v2.csv", "/srv/app/team log, v2.csv"],
      ["日本語/使用量.csv", "/srv/app/日本語/使用量.csv"],
    ];
    for (const [value, expected] of cases) {
      test(JSON.stringify(value), () => {
        const config = configFromEnv({ MISTRAL_USAGE_LOG: value }, CWD);
        assert.equal(config.logPath, expected);
        assert.deepEqual(config.warnings, []);
      });
    }

    test("uses the cwd it is given, not process.cwd()", () => {
      assert.equal(configFromEnv({}, "/elsewhere").logPath, "/elsewhere/mistral_usage_log.csv");
    });
  });

  describe("an invalid MISTRAL_USAGE_LOG warns and falls back to the default", () => {
    const cases: Array<[string, string, RegExp]> = [
      ["empty", "", /MISTRAL_USAGE_LOG is empty/],
      ["blank", "  \t ", /MISTRAL_USAGE_LOG is empty/],
      ["NUL byte", "usage\0.csv", /MISTRAL_USAGE_LOG contains a NUL byte/],
    ];
    for (const [name, value, warning] of cases) {
      test(name, () => {
        const config = configFromEnv({ MISTRAL_USAGE_LOG: value }, CWD);
        assert.equal(config.logPath, "/srv/app/mistral_usage_log.csv");
        assert.equal(config.warnings.length, 1);
        assert.match(config.warnings[0]!, warning);
        assert.match(config.warnings[0]!, /mistral_usage_log\.csv/);
      });
    }
  });

  describe("flags", () => {
    const truthy = ["1", "true", "TRUE", "True", "yes", "YES", "on", " on ", "1\n"];
    const falsy = ["0", "false", "False", "no", "off", "OFF", "", "  "];
    const invalid = ["2", "-1", "enable", "y", "tru", "0x1", "☃"];

    for (const [name, key] of [
      ["verbose", "MISTRAL_USAGE_VERBOSE"],
      ["disabled", "MISTRAL_USAGE_DISABLE"],
    ] as const) {
      describe(key, () => {
        for (const value of truthy) {
          test(`${JSON.stringify(value)} is on`, () => {
            const config = configFromEnv({ [key]: value }, CWD);
            assert.equal(config[name], true);
            assert.deepEqual(config.warnings, []);
          });
        }
        for (const value of falsy) {
          test(`${JSON.stringify(value)} is off`, () => {
            const config = configFromEnv({ [key]: value }, CWD);
            assert.equal(config[name], false);
            assert.deepEqual(config.warnings, []);
          });
        }
        for (const value of invalid) {
          test(`${JSON.stringify(value)} warns and is off`, () => {
            const config = configFromEnv({ [key]: value }, CWD);
            assert.equal(config[name], false);
            assert.equal(config.warnings.length, 1);
            assert.ok(config.warnings[0]!.includes(key), config.warnings[0]);
            assert.ok(config.warnings[0]!.includes(value), config.warnings[0]);
          });
        }
      });
    }

    test("the two flags are independent", () => {
      const config = configFromEnv({ MISTRAL_USAGE_VERBOSE: "1", MISTRAL_USAGE_DISABLE: "0" }, CWD);
      assert.equal(config.verbose, true);
      assert.equal(config.disabled, false);
    });
  });

  describe("MISTRAL_USAGE_HOSTS", () => {
    test("valid hosts are normalised; invalid ones warn and are skipped", () => {
      const config = configFromEnv(
        { MISTRAL_USAGE_HOSTS: "Gateway.Example.com, 127.0.0.1:8080, http://bad.example, [::1]:9000" },
        CWD,
      );
      assert.deepEqual(config.extraHosts, ["gateway.example.com", "127.0.0.1:8080", "[::1]:9000"]);
      assert.equal(config.warnings.length, 1);
      assert.match(config.warnings[0]!, /MISTRAL_USAGE_HOSTS: ignoring "http:\/\/bad\.example"/);
    });

    test(".corp, gw;evil and gw\\x are refused with the warning, each", () => {
      const config = configFromEnv({ MISTRAL_USAGE_HOSTS: ".corp,gw;evil,gw\\x,ok.example" }, CWD);
      assert.deepEqual(config.extraHosts, ["ok.example"]);
      assert.deepEqual(config.warnings, [
        'MISTRAL_USAGE_HOSTS: ignoring ".corp" (expected host or host:port, e.g. gateway.example.com or 127.0.0.1:8080)',
        'MISTRAL_USAGE_HOSTS: ignoring "gw;evil" (expected host or host:port, e.g. gateway.example.com or 127.0.0.1:8080)',
        'MISTRAL_USAGE_HOSTS: ignoring "gw\\x" (expected host or host:port, e.g. gateway.example.com or 127.0.0.1:8080)',
      ]);
    });

    test("one warning per invalid entry, and all problems are reported together", () => {
      const config = configFromEnv(
        { MISTRAL_USAGE_HOSTS: "a b, host:0", MISTRAL_USAGE_LOG: "", MISTRAL_USAGE_VERBOSE: "maybe" },
        CWD,
      );
      assert.equal(config.warnings.length, 4);
      assert.deepEqual(config.extraHosts, []);
    });

    test("unset or empty means no extra hosts and no warning", () => {
      assert.deepEqual(configFromEnv({ MISTRAL_USAGE_HOSTS: "" }, CWD).extraHosts, []);
      assert.deepEqual(configFromEnv({ MISTRAL_USAGE_HOSTS: " , ," }, CWD).warnings, []);
    });
  });

  test("variables with other names are ignored", () => {
    const config = configFromEnv({ MISTRAL_USAGE_LOGFILE: "x.csv", mistral_usage_verbose: "1", MISTRAL_API_KEY: "k" }, CWD);
    assert.equal(config.logPath, "/srv/app/mistral_usage_log.csv");
    assert.equal(config.verbose, false);
    assert.deepEqual(config.warnings, []);
  });
});

describe("parseHosts", () => {
  const valid: Array<[string, string]> = [
    ["gateway.example.com", "gateway.example.com"],
    ["GATEWAY.Example.COM", "gateway.example.com"],
    ["localhost", "localhost"],
    ["localhost:8080", "localhost:8080"],
    ["127.0.0.1", "127.0.0.1"],
    ["127.0.0.1:8080", "127.0.0.1:8080"],
    // The default port is kept, so "host:80" still means port 80 only.
    ["proxy.internal:80", "proxy.internal:80"],
    ["proxy.internal:443", "proxy.internal:443"],
    ["host:65535", "host:65535"],
    ["host:1", "host:1"],
    ["host:0080", "host:80"],
    // IPv6: bracketed with or without a port, or bare without a port.
    ["[::1]", "[::1]"],
    ["[::1]:8080", "[::1]:8080"],
    ["::1", "[::1]"],
    ["2001:db8::1", "[2001:db8::1]"],
    ["2001:db8::8080", "[2001:db8::8080]"],
    ["[2001:DB8::A]:443", "[2001:db8::a]:443"],
    // Internationalised names come out as URL.hostname spells them (punycode).
    ["bücher.example", "xn--bcher-kva.example"],
    // Names a container network resolves, and a trailing dot (the same host).
    ["my_gateway", "my_gateway"],
    ["gw-1.internal:8443", "gw-1.internal:8443"],
    ["gw.local.", "gw.local"],
    [`${"a".repeat(63)}.example`, `${"a".repeat(63)}.example`],
  ];
  for (const [entry, expected] of valid) {
    test(`${JSON.stringify(entry)} → ${expected}`, () => {
      assert.deepEqual(parseHosts(entry), { hosts: [expected], invalid: [] });
    });
  }

  const invalid = [
    "host:",
    "host:0",
    "host:65536",
    "host:99999",
    "host:http",
    "host:-1",
    "http://host",
    "https://api.example.com/v1",
    "host/path",
    "host?x=1",
    "host#frag",
    "user@host",
    "user:pass@host",
    "host name",
    "[::1",
    "[::1]:",
    "[::1]:70000",
    "a:b:c",
    "[]",
    // Not host names, though URL takes them: an empty label, a separator URL keeps, a backslash it
    // reads as a path, a percent escape it decodes, labels that start or end with "-".
    ".corp",
    "gw;evil",
    "gw\\x",
    "gw\\x:8080",
    "a%41b",
    "gw..local",
    "-gw.local",
    "gw-.local",
    "gw!x",
    "gw$x",
    "gw=x",
    "gw~x",
    "gw'x",
    "gw\"x",
    "gw\u0000x",
    `${"a".repeat(64)}.example`,
  ];
  for (const entry of invalid) {
    test(`${JSON.stringify(entry)} is invalid`, () => {
      assert.deepEqual(parseHosts(entry), { hosts: [], invalid: [entry] });
    });
  }

  test("comma-separated, trimmed, blanks skipped, duplicates (after normalising) dropped, order kept", () => {
    assert.deepEqual(parseHosts(" b.example ,a.example:81,, B.EXAMPLE, a.example:81 ,::1,[::1]"), {
      hosts: ["b.example", "a.example:81", "[::1]"],
      invalid: [],
    });
  });

  test("host and host:port are different entries", () => {
    assert.deepEqual(parseHosts("gw.local,gw.local:8080").hosts, ["gw.local", "gw.local:8080"]);
  });

  test("invalid entries are reported as written (trimmed), valid ones still parsed", () => {
    assert.deepEqual(parseHosts("ok.example,  bad host , also.ok:9"), {
      hosts: ["ok.example", "also.ok:9"],
      invalid: ["bad host"],
    });
  });

  test(
    "a wildcard entry such as *.example.com is reported, since it can never match",
    () => {
      assert.deepEqual(parseHosts("*.example.com"), { hosts: [], invalid: ["*.example.com"] });
    },
  );

  test("empty input", () => {
    assert.deepEqual(parseHosts(""), { hosts: [], invalid: [] });
  });
});
