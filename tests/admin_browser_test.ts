/**
 * The dashboard in real headless Chromium (Debian's, driven by playwright-core).
 * Runs under Deno only: one runtime driving the browser is enough, and the
 * API underneath is tested under both runtimes by admin_api_test.ts.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { PluginHost } from "../mod.ts";
import { createAdminApp } from "../src/admin/app.ts";
import { serveAdmin } from "../src/admin/serve.ts";
import { LogStore } from "../src/observe/logs.ts";
import { PluginMetrics } from "../src/observe/metrics.ts";
import { examples, fixtures, root, runtime, test } from "./_harness.ts";
import { instrumentedCall } from "./_ops.ts";
import { debianTool } from "./_ops_tools.ts";

/** Chromium flags for a quiet, reproducible headless run inside a container. */
const chromiumFlags = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/**
 * Polls `condition` until it holds; the test's own timeout bounds it. (The
 * dashboard's CSP forbids eval, so Playwright's string predicates cannot run.)
 */
async function until(condition: () => Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 50));
}

/** Where the screenshots go (ignored by git). */
export const screenshotDir = `${root}.scratch/screenshots`;

if (runtime === "deno") {
  test(
    "dashboard: logs in with the token, shows the example plugins, a reload click shows the new state, a wrong token is refused",
    async () => {
      const executablePath = debianTool("chromium", "chromium");
      const token = "browser-test-token-0123456789";
      const logs = new LogStore();
      const metrics = new PluginMetrics({ sampleIntervalMs: 500 });
      const host = new PluginHost({ dirs: [examples], logger: logs.logger });
      metrics.observe(host);
      const server = await serveAdmin(createAdminApp(host, { token, metrics, logs }));
      const profile = mkdtempSync(join(tmpdir(), "pshm-chromium-"));
      const browser = await chromium.launchPersistentContext(profile, {
        executablePath,
        headless: true,
        args: chromiumFlags,
        viewport: { width: 1400, height: 900 },
      });
      let calling = true;
      let traffic = Promise.resolve();
      try {
        await Promise.all(["echo", "kv", "transform"].map((name) => host.load(name)));
        traffic = (async () => {
          while (calling) {
            for (let i = 0; i < 50 && calling; i++) {
              await instrumentedCall(host, metrics.instrumentation, { plugin: "echo", method: "echo", args: [i] })
                .catch(() => {});
            }
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        })();
        const page = browser.pages()[0] ?? await browser.newPage();
        page.on("pageerror", (error) => console.error(`dashboard error: ${error.message}`));
        page.on("console", (m) => m.type() === "error" && console.error(`dashboard console: ${m.text()}`));
        await page.goto(server.url);

        await page.fill("#token", "not-the-token-at-all");
        await page.click("#login-button");
        await page.waitForSelector("#login-error:has-text('Token refused')");
        assert.equal(await page.isVisible("#plugins"), false, "nothing is shown with a wrong token");

        await page.fill("#token", token);
        await page.click("#login-button");
        for (const name of ["echo", "kv", "transform"]) {
          await page.waitForSelector(`tr[data-plugin="${name}"] .state-running`);
        }
        await page.waitForSelector("#live:has-text('live')");

        const pidBefore = String(host.list().find((p) => p.name === "echo")!.pid);
        assert.equal(await page.textContent(`tr[data-plugin="echo"] td:nth-child(5)`), pidBefore);
        await page.click(`button[data-action="reload"][data-plugin="echo"]`);
        await page.waitForSelector("#events div:has-text('operator reload echo: ok')");
        await page.waitForSelector("#events div:has-text('echo #0 reloaded')");
        const pidAfter = String(host.list().find((p) => p.name === "echo")!.pid);
        assert.notEqual(pidAfter, pidBefore);
        const cell = (n: number) => `document.querySelector('tr[data-plugin="echo"] td:nth-child(${n})')?.textContent`;
        await page.waitForFunction(`${cell(5)} === "${pidAfter}"`);
        assert.equal(await page.textContent(`tr[data-plugin="echo"] .state`), "running");
        await page.waitForFunction(`/\\d/.test(${cell(7)} ?? "")`); // a p50 latency is shown
        mkdirSync(screenshotDir, { recursive: true });
        await page.screenshot({ path: `${screenshotDir}/dashboard.png`, fullPage: true });

        await page.click(`a[href="#/plugin/kv"]`);
        await page.waitForSelector("#log div:has-text('kv ready')");
        await page.waitForSelector("#chart-memory svg path");
        await page.screenshot({ path: `${screenshotDir}/plugin_kv.png`, fullPage: true });
        await page.goto(`${server.url}#/plugin/echo`);
        await page.waitForSelector("#chart-latency svg path");
        await page.screenshot({ path: `${screenshotDir}/plugin_echo.png`, fullPage: true });

        await page.click("#logout");
        await page.waitForSelector("#token");
      } catch (error) {
        mkdirSync(screenshotDir, { recursive: true });
        await browser.pages()[0]?.screenshot({ path: `${screenshotDir}/failure.png`, fullPage: true }).catch(() => {});
        throw error;
      } finally {
        calling = false;
        await traffic;
        await browser.close();
        rmSync(profile, { recursive: true, force: true });
        await server.close();
        metrics.close();
        await host.close();
      }
    },
    { timeoutMs: 300_000 },
  );
}

if (runtime === "deno") {
  test(
    "dashboard config form: a change saved in the browser reaches the plugin live or by a reload; bad values are shown at the field",
    async () => {
      const executablePath = debianTool("chromium", "chromium");
      const token = "browser-config-token-0123456789";
      const host = new PluginHost({
        dirs: [`${fixtures}/admin_config`],
        config: { settings: { port: 8080 } },
        logger: () => {},
      });
      const server = await serveAdmin(createAdminApp(host, { token }));
      const profile = mkdtempSync(join(tmpdir(), "pshm-chromium-"));
      const browser = await chromium.launchPersistentContext(profile, {
        executablePath,
        headless: true,
        args: chromiumFlags,
        viewport: { width: 1400, height: 1000 },
      });
      try {
        await Promise.all(["settings", "settings-static"].map((name) => host.load(name)));
        const page = browser.pages()[0] ?? await browser.newPage();
        page.on("pageerror", (error) => console.error(`dashboard error: ${error.message}`));
        const puts: string[] = [];
        page.on("request", (r) => r.method() === "PUT" && puts.push(r.url()));
        await page.goto(`${server.url}#/plugin/settings`);
        await page.fill("#token", token);
        await page.click("#login-button");
        await until(async () => await page.inputValue("#cfg-port").catch(() => "") === "8080");
        assert.equal(await page.inputValue("#cfg-greeting"), "hello", "defaults are shown as values");
        assert.match(await page.textContent(`[data-field="port"] small`) ?? "", /Where it listens.*required.*≤ 65535/);

        // Checked in the browser: nothing is sent.
        await page.fill("#cfg-port", "70000");
        await page.fill("#cfg-code", "abc");
        await page.click("#config-save");
        await page.waitForSelector(`[data-error-for="port"]:has-text("≤ 65535")`);
        await page.waitForSelector(`[data-error-for="code"]:has-text("must match")`);
        assert.match(await page.textContent("#config-status") ?? "", /2 problems; nothing was sent/);
        assert.deepEqual(puts, [], "a value the schema refuses is not sent");

        // Checked by the server too: with the browser's copy of the schema loosened, the host's refusal shows at the field.
        await page.route("**/api/plugins/settings/config", async (route) => {
          if (route.request().method() !== "GET") return route.continue();
          const response = await route.fetch();
          const view = await response.json();
          delete view.schema.properties.port.maximum;
          await route.fulfill({ response, json: view });
        });
        await page.click("#config-reset");
        await until(async () => !/≤/.test(await page.textContent(`[data-field="port"] small`) ?? ""));
        await page.fill("#cfg-port", "70000");
        await page.click("#config-save");
        await page.waitForSelector(`[data-error-for="port"]:has-text('field "port"')`);
        assert.equal(puts.length, 1, "this one went to the server");
        assert.equal((await host.call("settings", "settings", []) as { port: number }).port, 8080);
        await page.unroute("**/api/plugins/settings/config");
        await page.click("#config-reset");
        await until(async () => /≤ 65535/.test(await page.textContent(`[data-field="port"] small`) ?? ""));

        // A good change: every kind of field, taken live by onConfig.
        const pid = host.list().find((p) => p.name === "settings")!.pid;
        await page.fill("#cfg-port", "9090");
        await page.fill("#cfg-greeting", "hi there");
        await page.selectOption("#cfg-level", { label: "debug" });
        await page.check("#cfg-verbose");
        await page.fill("#cfg-ratio", "0.25");
        await page.selectOption("#cfg-limits_mode", { label: "fast" });
        await page.fill("#cfg-limits_maxItems", "3");
        await page.click("#cfg-tags >> text=+ add");
        await page.fill("#cfg-tags div:last-of-type input", "beta");
        await page.click("#config-save");
        await page.waitForSelector(`#config-status[data-applied="applied"]:has-text("Applied live")`);
        assert.deepEqual(await host.call("settings", "settings", []), {
          greeting: "hi there",
          port: 9090,
          ratio: 0.25,
          verbose: true,
          level: "debug",
          code: "ABC",
          tags: ["a", "beta"],
          limits: { maxItems: 3, mode: "fast" },
        });
        assert.equal(host.list().find((p) => p.name === "settings")!.pid, pid, "no restart");
        // The plugin page's live events show the operator's change and how it was taken.
        await page.waitForSelector(`#plugin-events div:has-text("operator configure settings: ok (applied)")`);
        assert.equal(await page.inputValue("#cfg-port"), "9090", "the form shows what the plugin runs with");
        mkdirSync(screenshotDir, { recursive: true });
        await page.screenshot({ path: `${screenshotDir}/plugin_settings_config.png`, fullPage: true });

        // A plugin without onConfig: the page says it was reloaded.
        await page.goto(`${server.url}#/plugin/settings-static`);
        await until(async () => await page.inputValue("#cfg-level").catch(() => "") === '"info"');
        await page.selectOption("#cfg-level", { label: "debug" });
        await page.click("#config-save");
        await page.waitForSelector(`#config-status[data-applied="reloaded"]:has-text("Reloaded")`);
        await page.waitForSelector(`#plugin-events div:has-text("settings-static #0 reloaded")`);
        assert.deepEqual(await host.call("settings-static", "settings", []), { level: "debug" });

        // Stopped, the form cannot save; started again, it shows the values the plugin runs with.
        await page.click(`#detail-actions button[data-action="stop"]`);
        await page.waitForSelector(`#config-status:has-text("The plugin is stopped")`);
        assert.equal(await page.isDisabled("#config-save"), true);
        await page.click(`#detail-actions button[data-action="start"]`);
        await until(async () => !(await page.isDisabled("#config-save")));
        await until(async () => await page.inputValue("#cfg-level") === '"debug"');
      } catch (error) {
        mkdirSync(screenshotDir, { recursive: true });
        await browser.pages()[0]?.screenshot({ path: `${screenshotDir}/failure_config.png`, fullPage: true })
          .catch(() => {});
        throw error;
      } finally {
        await browser.close();
        rmSync(profile, { recursive: true, force: true });
        await server.close();
        await host.close();
      }
    },
    { timeoutMs: 300_000 },
  );
}
