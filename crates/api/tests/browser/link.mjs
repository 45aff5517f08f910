// The Link flow against a Maximo sandbox: the catalogue, a search, the credential form with a
// wrong key, an unreachable host and a silent one, then the right key and the redirect back to
// the operator with a one-time code. Prints {"code", "state"}.
import { launch, shot, assertNoSecrets, assert } from "./common.mjs";

const { LINK_URL, CALLBACK, BASE_URL, API_KEY, SILENT_URL, CLOSED_URL } = process.env;

const { context, violations } = await launch();

try {
  const page = await context.newPage();

  // The catalogue, grouped by category, searchable.
  await page.goto(LINK_URL);
  await page.getByRole("heading", { level: 1, name: "Connect a system" }).waitFor();
  assert.ok((await page.locator("section.category").count()) >= 2, "systems are grouped by category");
  const all = await page.locator("ul.systems li").count();
  assert.ok(all >= 3, `the catalogue lists every system (${all})`);
  assert.equal(await page.getByText(/credit/i).count(), 0, "the customer sees no credit cost");
  await shot(page, "link-catalogue");

  const search = page.getByLabel("Search systems");
  await search.focus();
  await page.keyboard.type("maxi");
  await page.getByText("1 system found").waitFor();
  assert.equal(await page.locator("ul.systems li:visible").count(), 1);
  await shot(page, "link-search");

  // Keyboard only: from the search field to the one system left, and into its form.
  await page.keyboard.press("Tab"); // the Search button
  await page.keyboard.press("Tab"); // the first visible system
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { level: 1, name: /Connect IBM Maximo/ }).waitFor();
  assert.equal(await page.getByText(/credit/i).count(), 0, "the form shows no credit cost");
  const secretField = page.getByLabel("API key", { exact: false });
  assert.equal(await secretField.getAttribute("type"), "password", "secret fields are masked");
  await shot(page, "link-form");

  // The same pages at phone width.
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(LINK_URL);
  await shot(phone, "phone-link-catalogue");
  await phone.goto(`${LINK_URL}/ibm_maximo`);
  const width = await phone.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `the form fits a phone's width (${width}px)`);
  await shot(phone, "phone-link-form");
  await phone.close();

  async function submit(baseUrl, key) {
    await page.getByLabel(/On premise/).check();
    await page.getByLabel("Maximo URL").fill(baseUrl);
    await secretField.fill(key);
    await Promise.all([page.waitForLoadState("load"), secretField.press("Enter")]);
  }

  // A wrong key: a clear error, the URL kept, the key not echoed.
  await submit(BASE_URL, "wrong-password-123");
  const alert = page.getByRole("alert");
  await alert.waitFor();
  assert.match(await alert.innerText(), /refused these credentials/);
  assert.equal(await page.getByLabel("Maximo URL").inputValue(), BASE_URL);
  assert.equal(await secretField.inputValue(), "", "the secret field comes back empty");
  assert.ok(!(await page.content()).includes("wrong-password-123"));
  await assertNoSecrets(page, "the form after a wrong key");
  await shot(page, "link-wrong-credentials");

  // Nothing listening: unreachable.
  await submit(CLOSED_URL, API_KEY);
  assert.match(await page.getByRole("alert").innerText(), /could not reach/);
  await assertNoSecrets(page, "the form after an unreachable host");
  await shot(page, "link-unreachable");

  // A host that never answers: a timeout.
  await submit(SILENT_URL, API_KEY);
  assert.match(await page.getByRole("alert").innerText(), /did not answer in time/);
  await assertNoSecrets(page, "the form after a timeout");
  await shot(page, "link-timeout");

  // The right key: back to the operator with a code and the state.
  await page.getByLabel(/On premise/).check();
  await page.getByLabel("Maximo URL").fill(BASE_URL);
  await secretField.fill(API_KEY);
  await Promise.all([
    page.waitForURL((url) => url.href.startsWith(CALLBACK)),
    page.getByRole("button", { name: "Connect" }).click(),
  ]);
  const back = new URL(page.url());
  const code = back.searchParams.get("code");
  const state = back.searchParams.get("state");
  assert.ok(code && code.startsWith("mrlc_"), `a code came back: ${page.url()}`);
  await shot(page, "link-redirected");

  // The link is used up.
  await page.goto(LINK_URL);
  await page.getByRole("heading", { name: "This link was already used" }).waitFor();
  await assertNoSecrets(page, "the used link");
  await shot(page, "link-used");

  assert.deepEqual(violations, [], "no Content-Security-Policy violation or script error");
  console.log(JSON.stringify({ code, state }));
} finally {
  await context.close();
}
