// The audit log screen in a real browser against the real server: filter by kind and by text (the
// server filters), and export what matches as CSV (formula-looking cells kept as text) and JSON.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { createAdminAndGroup, launchBrowser, newPage, screenshot, startServer } from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
// A group name that looks like a spreadsheet formula.
const HOSTILE = "=SUM(1,2)";

describe("the audit log", () => {
  let server;
  let browser;
  let page;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    ({ page } = await newPage(browser, { acceptDownloads: true }));
    await createAdminAndGroup(page, server, ADMIN, HOSTILE);
    for (let i = 0; i < 2; i += 1) {
      const wrong = await page.request.post(`${server.url}/api/login`, { data: { user: ADMIN.name, password: "wrong" } });
      assert.equal(wrong.status(), 401);
    }
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    server?.cleanup();
  });

  const rows = () => page.getByRole("table", { name: "Events" }).locator("tbody tr");

  it("filters by kind and by text on the server", async () => {
    await page.goto(`${server.url}/events`);
    await rows().first().waitFor();
    const filters = page.getByRole("form", { name: "Filter events" });
    await filters.getByLabel("Kind").fill("login_failed");
    await filters.getByRole("button", { name: "Search" }).click();
    await page.waitForFunction(() =>
      [...document.querySelectorAll("table tbody tr")].every((r) => r.getAttribute("data-kind") === "login_failed"),
    );
    assert.equal(await rows().count(), 2);

    await filters.getByRole("button", { name: "Clear" }).click();
    await filters.getByLabel("Search").fill("sum(1");
    await filters.getByRole("button", { name: "Search" }).click();
    await page.waitForFunction(() => document.querySelectorAll("table tbody tr").length === 1);
    assert.equal(await rows().first().getAttribute("data-kind"), "group_created");
    await screenshot(page, "80-audit-search");
  });

  it("exports what matches as CSV and JSON", async () => {
    const [csvFile] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export CSV" }).click()]);
    const csv = readFileSync(await csvFile.path(), "utf8").split("\r\n");
    assert.equal(csv[0], "id,time,kind,user,group,device,message");
    assert.equal(csv.length, 3, "a header, one record, the final line end");
    assert.match(csv[1], /"group_created"/);
    assert.ok(csv[1].includes(HOSTILE), csv[1]);
    // No cell a spreadsheet would run (the quoting itself is Vitest's: auditExport.test.ts).
    assert.ok(!/(^|,)"[=+\-@]/.test(csv[1]), csv[1]);

    const [jsonFile] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export JSON" }).click()]);
    const records = JSON.parse(readFileSync(await jsonFile.path(), "utf8"));
    assert.equal(records.length, 1);
    assert.equal(records[0].kind, "group_created");
    assert.ok(records[0].message.includes(HOSTILE));
  });
});
