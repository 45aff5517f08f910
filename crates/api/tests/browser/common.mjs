// Shared by the browser tests: launches Debian's Chromium through playwright-core, takes
// screenshots, and checks that pages hold no secret and break no Content-Security-Policy.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import path from "node:path";

const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/** Starts Chromium with a fresh profile; every page it opens is watched for CSP violations. */
export async function launch() {
  const context = await chromium.launchPersistentContext(process.env.USER_DATA_DIR, {
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 900 },
  });
  context.setDefaultTimeout(30_000);
  const violations = [];
  context.on("page", (page) => watch(page, violations));
  for (const page of context.pages()) watch(page, violations);
  return { context, violations };
}

function watch(page, violations) {
  page.on("console", (message) => {
    if (message.type() === "error" && /Content.Security.Policy/i.test(message.text())) {
      violations.push(message.text());
    }
  });
  page.on("pageerror", (error) => violations.push(`script error: ${error.message}`));
}

let counter = 0;
/** Saves a full-page screenshot and prints its path for the Rust test to show. */
export async function shot(page, name) {
  counter += 1;
  const file = path.join(process.env.SCREENSHOT_DIR, `${String(counter).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
}

/** The secrets no page may show: from SECRETS, plus those added once shown. */
export const secrets = JSON.parse(process.env.SECRETS || "[]").filter((s) => typeof s === "string" && s);

/** Asserts the page's HTML holds none of the secrets (except those in `allowed`). */
export async function assertNoSecrets(page, where, allowed = []) {
  const html = await page.content();
  for (const secret of secrets) {
    if (allowed.includes(secret)) continue;
    assert.ok(!html.includes(secret), `a secret appears in the HTML of ${where}`);
  }
}

export { assert };
