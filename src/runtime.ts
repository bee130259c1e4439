/**
 * Runtimes that load our preload (`bun --preload`, `deno run --preload`) but publish none of the
 * diagnostics channels the taps listen to: there the preload would silently log nothing. Pure.
 */
export function untappableRuntime(global: object = globalThis, versions: Readonly<Record<string, string | undefined>> = process.versions): "Bun" | "Deno" | undefined {
  if ("Bun" in global || versions["bun"] !== undefined) return "Bun";
  if ("Deno" in global || versions["deno"] !== undefined) return "Deno";
  return undefined;
}

/** The one line the preload prints there. */
export function untappableRuntimeMessage(runtime: "Bun" | "Deno"): string {
  const command = runtime === "Bun" ? "bun app.ts" : "deno run -A app.ts";
  return `${runtime} publishes no HTTP diagnostics channels, so this preload cannot see its calls and logs nothing; run the app as \`npx mistral-usage-log run -- ${command}\` instead (a local proxy logs them)`;
}

interface DenoPermissions {
  readonly permissions: { querySync(descriptor: { name: "env"; variable: string }): { readonly state: string } };
  readonly env: { get(name: string): string | undefined };
}

/**
 * An environment variable, read only where that asks nobody anything: without --allow-env, Deno
 * prompts for each variable read (or, with no terminal, throws into the app), so there a variable
 * whose access was not granted reads as unset.
 */
export function envWithoutPrompt(name: string, global: object = globalThis): string | undefined {
  const deno = (global as { Deno?: DenoPermissions }).Deno;
  if (deno === undefined) return process.env[name];
  try {
    return deno.permissions.querySync({ name: "env", variable: name }).state === "granted" ? deno.env.get(name) : undefined;
  } catch {
    return undefined;
  }
}
