/** The `mistral-usage` command as a whole: packaging, help, version, usage errors. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { readdir, readFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import { join } from "node:path";
import { repoRoot } from "../support/run-app.js";
import { cli, cliPath, tmp } from "./cli-helpers.js";

const SUBCOMMANDS = ["report", "validate", "merge", "run", "proxy"] as const;

describe("packaging", () => {
  test("package.json's bin points at the built entry, which starts with a shebang", async () => {
    const pkg = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as { bin?: Record<string, string>; dependencies?: Record<string, string> };
    assert.equal(pkg.bin?.["mistral-usage"], "dist/src/cli/main.js");
    assert.equal(join(repoRoot, pkg.bin?.["mistral-usage"] ?? ""), cliPath);
    assert.match(await readFile(cliPath, "utf8"), /^#!\/usr\/bin\/env node\n/);
  });

  test("dependencies are exactly the packages the built code loads at run time", async () => {
    const pkg = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as { dependencies?: Record<string, string> };
    const loaded = new Set<string>();
    const files = (await readdir(join(repoRoot, "dist"), { recursive: true })).filter((f) => f.endsWith(".js") || f.endsWith(".cjs"));
    for (const file of files) {
      // The exporter thread's tsc output is an esbuild input only: dist/otlp-exporter.cjs bundles it.
      if (file.endsWith("exporter-thread.js")) continue;
      const text = await readFile(join(repoRoot, "dist", file), "utf8");
      for (const m of text.matchAll(/(?:from |import\(|require\(|createRequire\(import\.meta\.url\)\()"([^".][^"]*)"/g)) {
        const specifier = m[1]!;
        if (specifier.startsWith("node:") || builtinModules.includes(specifier)) continue;
        loaded.add(specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : specifier.split("/")[0]!);
      }
    }
    assert.deepEqual([...loaded].sort(), Object.keys(pkg.dependencies ?? {}).sort());
  });
});

describe("help and version", () => {
  test("--help lists every subcommand and the exit codes", async (t) => {
    const r = await cli(["--help"], { cwd: await tmp(t) });
    assert.equal(r.code, 0);
    for (const name of SUBCOMMANDS) assert.match(r.stdout, new RegExp(`^  ${name} `, "m"));
    assert.match(r.stdout, /Exit codes:\n  0 .*\n  1 .*\n[\s\S]*  2  usage error/);
    for (const line of r.stdout.split("\n")) assert.ok(line.length <= 80, line);
    assert.equal(r.stderr, "");
  });

  test("every subcommand has --help and -h, on stdout, exit 0, and `help CMD` says the same", async (t) => {
    const cwd = await tmp(t);
    for (const name of SUBCOMMANDS) {
      const long = await cli([name, "--help"], { cwd });
      assert.equal(long.code, 0, name);
      assert.match(long.stdout, new RegExp(`^Usage: mistral-usage ${name} `), name);
      assert.match(long.stdout, /Exit (codes|status)/, name);
      const short = await cli([name, "-h"], { cwd });
      assert.equal(short.stdout, long.stdout, name);
      const viaHelp = await cli(["help", name], { cwd });
      assert.equal(viaHelp.stdout, long.stdout, name);
      for (const line of long.stdout.split("\n")) assert.ok(line.length <= 80, `${name} --help is wider than 80 columns: ${line}`);
    }
  });

  test("--version prints the package version", async (t) => {
    const pkg = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as { version: string };
    for (const flag of ["--version", "-v"]) {
      const r = await cli([flag], { cwd: await tmp(t) });
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `${pkg.version}\n`);
    }
  });
});

describe("usage errors exit 2 with one clear line and a pointer to --help", () => {
  const cases: [string[], RegExp][] = [
    [[], /^Usage: mistral-usage <command>/],
    [["reprot"], /^mistral-usage: unknown command "reprot" \(did you mean report\?\)\nRun 'mistral-usage --help' for usage\.\n$/],
    [["report", "--nope"], /^mistral-usage report: unknown option --nope\nRun 'mistral-usage report --help' for usage\.\n$/],
    [["report", "--by", "week"], /^mistral-usage report: --by must be model, day or hour, got "week"\n/],
    [["report", "--by"], /^mistral-usage report: option '--by <value>' argument missing/],
    [["report", "--since", "yesterday"], /^mistral-usage report: --since: "yesterday" is not an ISO date/],
    [["report", "--since", "2026-11-25", "--until", "2026-11-24T00:00"], /--since must be before --until/],
    [["validate", "--max-problems", "many"], /--max-problems needs a whole number/],
    [["merge", "a.csv"], /^mistral-usage merge: merge needs -o OUT/],
    [["merge", "-o", "out.csv"], /merge needs at least one FILE/],
    [["run"], /^mistral-usage run: run needs a COMMAND/],
    [["run", "--loud", "--", "node"], /^mistral-usage run: unknown option --loud/],
  ];
  for (const [args, expected] of cases) {
    test(args.join(" ") || "(no arguments)", async (t) => {
      const r = await cli(args, { cwd: await tmp(t) });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, expected);
      assert.equal(r.stdout, "");
    });
  }
});
