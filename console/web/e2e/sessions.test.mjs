// Terminal and Files tabs in a real browser, through the real server's relay to a real agent:
// a shell that echoes and follows the window's size, and a file that goes up, comes back
// byte-identical, is renamed and deleted. Screenshots go to e2e/artifacts/.

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  binary,
  createAdminAndGroup,
  launchBrowser,
  newPage,
  openOnlineDevice,
  screenshot,
  startAgent,
  startServer,
  tempDir,
  terminalRows,
  typeLine,
  until,
} from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

const agentBuilt = existsSync(binary("tether-agent"));

describe("terminal and files sessions", { skip: !agentBuilt && "tether-agent is not built" }, () => {
  let server;
  let agent;
  let browser;
  let page;
  let errors;
  let filesRoot;
  let deviceUrl;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    ({ page, errors } = await newPage(browser));
    filesRoot = realpathSync(tempDir("files"));

    const msh = await createAdminAndGroup(page, server, ADMIN, "Lab");
    agent = await startAgent(msh, ["--files-root", filesRoot]);

    deviceUrl = await openOnlineDevice(page, server);
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
    await server?.stop();
    server?.cleanup();
    if (filesRoot) rmSync(filesRoot, { recursive: true, force: true });
  });

  const screenRows = () => terminalRows(page);
  const type = (text) => typeLine(page, text);
  /** The last `stty size` answer on screen ("rows cols"). */
  const lastSttySize = async () => (await screenRows()).filter((r) => /^\d+ \d+$/.test(r)).pop() ?? null;

  it("runs a shell: echo, UTF-8, resize, exit", async () => {
    await page.getByRole("tab", { name: "Terminal" }).click();
    const status = page.getByTestId("terminal-status");
    await status.filter({ hasText: "Connected" }).waitFor({ timeout: 30_000 });

    await type("echo hello");
    await until(screenRows, (rows) => rows.includes("hello"), "`hello` on its own line");
    await type("printf 'caf\\303\\251 \\342\\234\\223\\n'");
    await until(screenRows, (rows) => rows.includes("café ✓"), "UTF-8 output");

    await type("stty size");
    const before = await until(lastSttySize, Boolean, "a first `stty size`");
    const shown = (await status.innerText()).match(/(\d+)×(\d+)/);
    assert.equal(before, `${shown[2]} ${shown[1]}`, "the shell has the size the console shows");
    await screenshot(page, "20-terminal");

    await page.setViewportSize({ width: 1000, height: 700 });
    await until(() => status.innerText(), (text) => !text.includes(`${shown[1]}×${shown[2]}`), "the terminal refits");
    // Control keys reach the shell: Ctrl-L clears the screen, so the old answer is gone.
    await page.keyboard.press("Control+l");
    await until(lastSttySize, (s) => s === null, "Ctrl-L cleared the screen");
    await type("stty size");
    const after = await until(lastSttySize, Boolean, "a second `stty size`");
    const now = (await status.innerText()).match(/(\d+)×(\d+)/);
    assert.equal(after, `${now[2]} ${now[1]}`, "the remote side got the new size");
    assert.notEqual(after, before);

    await type("exit 3");
    await status.filter({ hasText: "Session ended (exit code 3)" }).waitFor();
    await until(screenRows, (rows) => rows.some((r) => r.includes("[session ended (exit code 3)]")), "the end in the terminal");
    await page.setViewportSize({ width: 1360, height: 860 });

    // A new session, then leaving the tab: the console's close ends it on the server too.
    await page.getByRole("button", { name: "New session" }).click();
    await status.filter({ hasText: "Connected" }).waitFor();
    await type("echo second");
    await until(screenRows, (rows) => rows.includes("second"), "the second session's output");
    await page.getByRole("tab", { name: "Events" }).click();
    const ended = page.getByRole("cell", { name: /terminal session to .* ended after/ });
    await until(() => ended.count(), (n) => n >= 2, "both terminal sessions recorded as ended");
  });

  it("browses, uploads, downloads, renames and deletes files", async () => {
    await page.getByRole("tab", { name: "Files" }).click();
    // The session starts at "/", which this agent refuses: its files root is a temp folder.
    await page.locator(".toast").filter({ hasText: "outside the folders this session may use" }).waitFor({ timeout: 30_000 });
    await page.getByRole("textbox", { name: "Go to path" }).fill(filesRoot);
    await page.getByRole("button", { name: "Go", exact: true }).click();
    await page.getByText("This folder is empty").waitFor();

    await page.getByRole("button", { name: "New folder" }).click();
    const folderDialog = page.getByRole("dialog", { name: "New folder" });
    await folderDialog.getByLabel("Name").fill("reports");
    await folderDialog.getByRole("button", { name: "Save" }).click();
    await page.locator("tr[data-file='reports']").waitFor();

    // Several chunks' worth, so the upload and download run their flow control.
    const original = randomBytes(300 * 1024 + 17);
    await page.getByTestId("upload-input").setInputFiles({ name: "data.bin", mimeType: "application/octet-stream", buffer: original });
    const row = page.locator("tr[data-file='data.bin']");
    await row.waitFor();
    await page.locator("li[data-transfer='data.bin'][data-state='done']").waitFor();
    assert.match(await row.innerText(), /300 KiB/);
    assert.match(await row.innerText(), /-rw/);
    assert.equal(sha256(readFileSync(join(filesRoot, "data.bin"))), sha256(original), "the agent wrote the same bytes");
    await screenshot(page, "21-files");

    const [download] = await Promise.all([page.waitForEvent("download"), row.getByRole("button", { name: "Download data.bin" }).click()]);
    assert.equal(download.suggestedFilename(), "data.bin");
    const downloaded = readFileSync(await download.path());
    assert.equal(sha256(downloaded), sha256(original), "downloaded bytes equal the original");

    await row.getByRole("button", { name: "Rename data.bin" }).click();
    const rename = page.getByRole("dialog", { name: "Rename data.bin" });
    await rename.getByLabel("Name").fill("renamed.bin");
    await rename.getByRole("button", { name: "Save" }).click();
    await page.locator("tr[data-file='renamed.bin']").waitFor();
    assert.equal(await page.locator("tr[data-file='data.bin']").count(), 0);
    assert.ok(existsSync(join(filesRoot, "renamed.bin")));

    // A folder with something in it needs the "everything inside" box.
    await page.locator("tr[data-file='reports']").getByRole("button", { name: "reports", exact: true }).click();
    // Upload only once the (empty) folder is shown: the upload goes to the folder on screen.
    await page.getByText("This folder is empty").waitFor();
    await page.getByTestId("upload-input").setInputFiles({ name: "q1.txt", mimeType: "text/plain", buffer: Buffer.from("numbers\n") });
    await page.locator("tr[data-file='q1.txt']").waitFor();
    await page.getByRole("navigation", { name: "Folder path" }).getByRole("button", { name: filesRoot.split("/").pop(), exact: true }).click();
    await page.locator("tr[data-file='reports']").getByRole("button", { name: "Delete reports" }).click();
    let confirm = page.getByRole("dialog", { name: "Delete reports?" });
    await confirm.getByRole("button", { name: "Delete" }).click();
    await confirm.getByRole("alert").waitFor();
    await screenshot(page, "22-files-delete-refused");
    await confirm.getByLabel("Also delete everything inside it").check();
    await confirm.getByRole("button", { name: "Delete" }).click();
    await confirm.waitFor({ state: "detached" });
    await page.locator("tr[data-file='reports']").waitFor({ state: "detached" });

    await page.locator("tr[data-file='renamed.bin']").getByRole("button", { name: "Delete renamed.bin" }).click();
    confirm = page.getByRole("dialog", { name: "Delete renamed.bin?" });
    await confirm.getByRole("button", { name: "Delete" }).click();
    await page.getByText("This folder is empty").waitFor();
    assert.ok(!existsSync(join(filesRoot, "renamed.bin")));
    assert.ok(!existsSync(join(filesRoot, "reports")));
  });

  it("ran without CSP violations or unexpected errors", () => {
    assert.ok(!errors.some((e) => /Content Security Policy/i.test(e)), errors.join("\n"));
    assert.deepEqual(errors.filter((e) => !/Failed to load resource|net::ERR_/.test(e)), []);
    assert.ok(deviceUrl);
  });
});
