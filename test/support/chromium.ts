/**
 * Opens a page in Debian's headless chromium and drives it over the DevTools protocol on a pipe
 * (--remote-debugging-pipe: fd 3 to the browser, fd 4 from it, NUL-terminated JSON), with no
 * dependency. Collects what a reader would not see: console errors, exceptions, network requests.
 */
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";

/** The chromium binary, or why there is none (for a test's skip message). */
export function findChromium(): { path: string } | { missing: string } {
  for (const path of [process.env["CHROMIUM"], "/usr/bin/chromium", "/usr/bin/chromium-browser"]) {
    if (path === undefined || path === "" || !existsSync(path)) continue;
    const probe = spawnSync(path, ["--version"], { encoding: "utf8", timeout: 20_000 });
    if (probe.status === 0) return { path };
  }
  return { missing: "chromium is not installed (bash .ci/chromium.sh installs Debian's): the HTML report was not opened in a browser" };
}

export interface OpenedPage {
  /** Console messages of level error or warning, uncaught exceptions, failed loads. */
  readonly problems: string[];
  /** Every URL the page requested, the page itself included. */
  readonly requests: string[];
  evaluate<T>(expression: string): Promise<T>;
  screenshot(): Promise<Buffer>;
  close(): Promise<void>;
}

interface Message {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
}

export async function openPage(chromium: string, url: string, size = { width: 900, height: 1200 }): Promise<OpenedPage> {
  const profile = await mkdtemp(join(tmpdir(), "mul-chromium-"));
  const child: ChildProcess = spawn(
    chromium,
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--hide-scrollbars",
      `--user-data-dir=${profile}`,
      "--remote-debugging-pipe",
      "about:blank",
    ],
    { stdio: ["ignore", "ignore", "ignore", "pipe", "pipe"] },
  );
  const toBrowser = child.stdio[3] as Writable;
  const fromBrowser = child.stdio[4] as Readable;
  const pending = new Map<number, { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  const listeners: ((m: Message) => void)[] = [];
  let nextId = 1;
  let buffered = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.once("exit", () => {
    for (const p of pending.values()) p.reject(new Error("chromium exited"));
    pending.clear();
  });
  fromBrowser.setEncoding("utf8").on("data", (text: string) => {
    buffered += text;
    for (let end = buffered.indexOf("\0"); end !== -1; end = buffered.indexOf("\0")) {
      const message = JSON.parse(buffered.slice(0, end)) as Message;
      buffered = buffered.slice(end + 1);
      if (message.id !== undefined) {
        const p = pending.get(message.id);
        pending.delete(message.id);
        if (message.error !== undefined) p?.reject(new Error(message.error.message));
        else p?.resolve(message.result ?? {});
      } else {
        for (const l of listeners) l(message);
      }
    }
  });
  let sessionId: string | undefined;
  // To the page once attached (`toPage`), else to the browser itself.
  const send = (method: string, params: Record<string, unknown> = {}, toPage = true): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      const session = toPage ? sessionId : undefined;
      toBrowser.write(`${JSON.stringify({ id, method, params, ...(session === undefined ? {} : { sessionId: session }) })}\0`);
    });

  const problems: string[] = [];
  const requests: string[] = [];
  let loaded: () => void = () => {};
  const load = new Promise<void>((resolve) => (loaded = resolve));
  listeners.push((m) => {
    const p = m.params ?? {};
    switch (m.method) {
      case "Runtime.consoleAPICalled":
        if (p["type"] === "error" || p["type"] === "warning" || p["type"] === "assert") problems.push(`console.${String(p["type"])}: ${JSON.stringify(p["args"])}`);
        break;
      case "Runtime.exceptionThrown":
        problems.push(`exception: ${JSON.stringify(p["exceptionDetails"])}`);
        break;
      case "Log.entryAdded": {
        const entry = p["entry"] as { level?: string; text?: string; url?: string };
        if (entry.level === "error" || entry.level === "warning") problems.push(`log ${entry.level}: ${entry.text ?? ""} ${entry.url ?? ""}`.trim());
        break;
      }
      case "Network.requestWillBeSent":
        requests.push(String((p["request"] as { url?: string }).url));
        break;
      case "Network.loadingFailed":
        problems.push(`load failed: ${String(p["errorText"])}`);
        break;
      case "Page.loadEventFired":
        loaded();
        break;
    }
  });

  try {
    const { targetId } = await send("Target.createTarget", { url: "about:blank" });
    sessionId = String((await send("Target.attachToTarget", { targetId, flatten: true }))["sessionId"]);
    await Promise.all([send("Page.enable"), send("Runtime.enable"), send("Log.enable"), send("Network.enable")]);
    await send("Emulation.setDeviceMetricsOverride", { width: size.width, height: size.height, deviceScaleFactor: 1, mobile: false });
    await send("Page.navigate", { url });
    await load;
  } catch (err) {
    child.kill("SIGKILL");
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
  return {
    problems,
    requests,
    async evaluate<T>(expression: string): Promise<T> {
      const r = await send("Runtime.evaluate", { expression, returnByValue: true });
      if (r["exceptionDetails"] !== undefined) throw new Error(`evaluate: ${JSON.stringify(r["exceptionDetails"])}`);
      return (r["result"] as { value: T }).value;
    },
    async screenshot(): Promise<Buffer> {
      const r = await send("Page.captureScreenshot", { format: "png", captureBeyondViewport: true });
      return Buffer.from(String(r["data"]), "base64");
    },
    async close(): Promise<void> {
      await send("Browser.close", {}, false).catch(() => {});
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
      await rm(profile, { recursive: true, force: true });
    },
  };
}
