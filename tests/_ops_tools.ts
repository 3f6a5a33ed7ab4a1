/**
 * Finds, or installs, the real tools the operations tests check against:
 * promtool (Debian `prometheus`), Chromium (Debian `chromium`) and Python's
 * prometheus-client parser (PyPI, installed into .tools/python).
 *
 * @module
 */

import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { root } from "./_harness.ts";

let aptUpdated = false;

function which(binary: string): string | undefined {
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(":")) {
    if (dir && existsSync(`${dir}/${binary}`)) return `${dir}/${binary}`;
  }
  for (const dir of ["/usr/bin", "/usr/local/bin", "/usr/sbin"]) {
    if (existsSync(`${dir}/${binary}`)) return `${dir}/${binary}`;
  }
  return undefined;
}

/** The path of `binary`, installing Debian package `pkg` (without recommends) when it is missing. */
export function debianTool(binary: string, pkg: string): string {
  const found = which(binary);
  if (found) return found;
  const apt = (args: string[]) =>
    execFileSync("apt-get", ["-o", "DPkg::Lock::Timeout=300", ...args], {
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
  if (!aptUpdated) {
    apt(["update"]);
    aptUpdated = true;
  }
  apt(["install", "-y", "--no-install-recommends", pkg]);
  const installed = which(binary);
  if (!installed) throw new Error(`apt-get installed ${pkg} but ${binary} is not on PATH`);
  return installed;
}

/** The prometheus-client version the second exposition parser comes from. */
const pythonPrometheusClient = "0.26.0";

/** A PYTHONPATH holding prometheus_client, pip-installed into .tools/python when missing. */
export function pythonPrometheusPath(): string {
  const target = `${root}.tools/python`;
  const probe = spawnSync("python3", ["-c", "import prometheus_client"], {
    env: { ...process.env, PYTHONPATH: target },
  });
  if (probe.status === 0) return target;
  execFileSync("python3", [
    "-m",
    "pip",
    "install",
    "--quiet",
    "--disable-pip-version-check",
    "--target",
    target,
    `prometheus-client==${pythonPrometheusClient}`,
  ], { stdio: ["ignore", "ignore", "inherit"] });
  return target;
}
