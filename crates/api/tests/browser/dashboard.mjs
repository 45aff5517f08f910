// The operator's dashboard: log in, watch the initial sync progress without a reload, sync
// now, rotate the token (shown once), disconnect and delete data with confirmations, create a
// link session, see credits and retry a webhook delivery. Prints {"rotated_token",
// "saw_running", "link_url"}.
import { launch, shot, assertNoSecrets, secrets, assert } from "./common.mjs";

const { BASE, ADMIN_KEY, CONNECTION_ID } = process.env;

const { context, violations } = await launch();
try {
  const page = await context.newPage();

  // Log in, by keyboard; a wrong key is refused first.
  await page.goto(`${BASE}/dashboard`);
  await page.waitForURL(`${BASE}/dashboard/login`);
  await shot(page, "login");
  await page.getByLabel("Management key").fill("not-the-key");
  await Promise.all([page.waitForLoadState("load"), page.keyboard.press("Enter")]);
  assert.match(await page.getByRole("alert").innerText(), /not the management key/);
  await page.getByLabel("Management key").fill(ADMIN_KEY);
  await page.keyboard.press("Tab");
  await Promise.all([page.waitForURL(`${BASE}/dashboard`), page.keyboard.press("Enter")]);
  const session = (await context.cookies()).find((c) => c.name === "__Host-millrace_session");
  assert.ok(session, "a session cookie was set");
  assert.ok(session.httpOnly && session.secure && session.sameSite === "Strict",
    `the session cookie is HttpOnly, Secure and SameSite=Strict: ${JSON.stringify(session)}`);
  await page.getByRole("heading", { level: 1, name: "Connections" }).waitFor();
  await assertNoSecrets(page, "the overview");
  await shot(page, "overview");

  // The connection: its initial sync is followed live, without a reload.
  await page.getByRole("link", { name: /IBM Maximo/ }).first().click();
  await page.waitForURL(`${BASE}/dashboard/connections/${CONNECTION_ID}`);
  await page.evaluate(() => { window.__sameDocument = true; });
  let sawRunning = false;
  try {
    await page.locator("table.streams .badge.running").first().waitFor({ timeout: 20_000 });
    sawRunning = true;
    await shot(page, "connection-syncing");
  } catch {
    // The sync finished before the first poll; the Rust test reports it.
  }
  await page.waitForFunction(() => {
    const states = [...document.querySelectorAll("table.streams tbody .badge")].map((b) => b.textContent);
    return states.length > 0 && states.every((s) => s === "idle");
  }, null, { timeout: 120_000 });
  assert.ok(await page.evaluate(() => window.__sameDocument === true), "the page updated in place");
  await assertNoSecrets(page, "the connection");
  await shot(page, "connection-synced");

  // Sync now: a second run appears in the history.
  await page.getByRole("button", { name: "Sync now" }).click();
  await page.getByRole("status").filter({ hasText: "A sync was queued" }).waitFor();
  await page.waitForFunction(() => {
    const rows = document.querySelectorAll("table.runs tbody tr");
    return rows.length >= 2 && rows[0].querySelector(".badge").textContent === "succeeded";
  }, null, { timeout: 60_000 });
  await shot(page, "connection-after-sync-now");

  // Rotate: the new token is shown once, then never again.
  await page.getByRole("button", { name: "Rotate token" }).click();
  await page.getByRole("heading", { name: "The connection's new token" }).waitFor();
  const rotated = await page.getByLabel("Token").inputValue();
  assert.ok(rotated.startsWith("mrc_"), "the new token is shown");
  await page.getByRole("button", { name: "Copy" }).click();
  await page.locator("[data-copy-status]").filter({ hasText: /Copied|Selected/ }).waitFor();
  await shot(page, "token-rotated");
  secrets.push(rotated);
  await page.getByRole("link", { name: "Back to the connection" }).click();
  await assertNoSecrets(page, "the connection after the rotation");

  // Disconnect, after a confirmation.
  await page.getByRole("link", { name: "Disconnect…" }).click();
  await page.getByRole("heading", { name: /^Disconnect / }).waitFor();
  await shot(page, "confirm-disconnect");
  await page.getByRole("button", { name: "Disconnect" }).click();
  await page.getByRole("status").filter({ hasText: "Disconnected" }).waitFor();
  assert.equal(await page.locator("#connection-status").innerText(), "disconnected");
  await shot(page, "connection-disconnected");

  // Delete its data: the confirmation names the connection and wants its id typed.
  await page.getByRole("link", { name: "Delete data…" }).click();
  await page.getByLabel(/Type .* to confirm/).fill("conn_wrong");
  await page.getByRole("button", { name: "Delete the data" }).click();
  assert.match(await page.getByRole("alert").innerText(), new RegExp(`Type ${CONNECTION_ID}`));
  await page.getByLabel(/Type .* to confirm/).fill(CONNECTION_ID);
  await shot(page, "confirm-delete-data");
  await page.getByRole("button", { name: "Delete the data" }).click();
  await page.getByRole("status").filter({ hasText: "Deleted the synced data" }).waitFor();

  // A link session from the form; its URL is shown once, with a copy button.
  await page.getByRole("link", { name: "Link sessions" }).click();
  await page.getByLabel("Customer id").fill("beta-mill");
  await page.getByLabel(/IBM Maximo/).check();
  await page.getByLabel("Redirect URI").fill("https://app.example.com/millrace/callback");
  await page.getByLabel(/State/).fill("opaque-1");
  await shot(page, "link-sessions-form");
  await page.getByRole("button", { name: "Create link" }).click();
  const linkUrl = await page.getByLabel("Link URL").inputValue();
  assert.ok(linkUrl.includes("/link/mrl_"), linkUrl);
  await shot(page, "link-session-created");
  secrets.push(linkUrl.split("/").pop());
  await page.getByRole("link", { name: "Back to link sessions" }).click();
  await page.getByRole("cell", { name: "beta-mill" }).waitFor();
  await assertNoSecrets(page, "the link sessions");
  await shot(page, "link-sessions");

  // Credits: the pool and the ledger of the connection's reservation and release.
  await page.getByRole("link", { name: "Credits" }).click();
  await page.getByRole("heading", { name: "Ledger" }).waitFor();
  assert.ok((await page.locator("table tbody tr").count()) >= 2, "reserve and release are listed");
  await shot(page, "credits");

  // Webhooks: the refused delivery, retried by hand.
  await page.getByRole("link", { name: "Webhooks" }).click();
  await page.getByRole("heading", { level: 1, name: "Webhooks" }).waitFor();
  await assertNoSecrets(page, "the webhooks");
  const retry = page.getByRole("button", { name: /Retry delivery/ }).first();
  await retry.waitFor();
  await retry.click();
  await page.getByRole("status").filter({ hasText: "queued again" }).waitFor();
  await shot(page, "webhooks");

  // Phone width.
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  for (const [path, name] of [["/dashboard", "phone-overview"], [`/dashboard/connections/${CONNECTION_ID}`, "phone-connection"]]) {
    await phone.goto(`${BASE}${path}`);
    const width = await phone.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `${path} fits a phone's width (${width}px)`);
    await assertNoSecrets(phone, path);
    await shot(phone, name);
  }
  await phone.close();

  // Log out: the dashboard asks for the key again.
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL(`${BASE}/dashboard/login`);
  await page.goto(`${BASE}/dashboard`);
  await page.waitForURL(`${BASE}/dashboard/login`);

  assert.deepEqual(violations, [], "no Content-Security-Policy violation or script error");
  console.log(JSON.stringify({ rotated_token: rotated, saw_running: sawRunning, link_url: linkUrl }));
} finally {
  await context.close();
}
