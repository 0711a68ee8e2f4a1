// Chats between two users of the console, in real browsers against the real server: the admin
// finds bob in the top bar's Chat list (bob has a console open), invites him; bob's console shows
// the invitation, he accepts, and they exchange messages. A second invitation that bob declines
// tells the admin so.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createAdminAndGroup, launchBrowser, newPage, startServer } from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const BOB = { name: "bob", password: "bob's long password" };

describe("chat between users", () => {
  let server;
  let browser;
  let admin;
  let bob;
  const errors = [];

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    let adminErrors;
    ({ page: admin, errors: adminErrors } = await newPage(browser));
    errors.push(adminErrors);
    await createAdminAndGroup(admin, server, ADMIN, "Helpdesk");
    await admin.goto(`${server.url}/users`);
    await admin.getByRole("button", { name: "Add user" }).click();
    const add = admin.getByRole("dialog", { name: "Add user" });
    await add.getByLabel("User name").fill(BOB.name);
    await add.getByLabel(/^Initial password/).fill(BOB.password);
    await add.getByRole("button", { name: "Add user" }).click();
    await add.waitFor({ state: "detached" });
    let bobErrors;
    ({ page: bob, errors: bobErrors } = await newPage(browser));
    errors.push(bobErrors);
    const login = await bob.request.post(`${server.url}/api/login`, { data: { user: BOB.name, password: BOB.password } });
    assert.ok(login.ok(), await login.text());
    await bob.goto(`${server.url}/devices`);
    await bob.getByRole("status").filter({ hasText: "Connected" }).waitFor();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    server?.cleanup();
  });

  async function invite() {
    await admin.getByTestId("chat-with-user").click();
    const peers = admin.getByTestId("chat-peers");
    await peers.getByRole("listitem").filter({ hasText: "bob" }).getByRole("button", { name: "Chat" }).click();
    return admin.getByTestId("user-chat");
  }

  it("invites, accepts and carries messages both ways", async () => {
    const window = await invite();
    await window.getByTestId("chat-status").filter({ hasText: "Waiting for bob to accept" }).waitFor();
    const invitation = bob.getByTestId("chat-invitation").filter({ hasText: "admin invites you to chat" });
    await invitation.getByRole("button", { name: "Accept" }).click();
    const bobWindow = bob.getByTestId("user-chat");
    await bobWindow.getByTestId("chat-status").filter({ hasText: "Chatting with admin" }).waitFor({ timeout: 20_000 });
    await window.getByTestId("chat-status").filter({ hasText: "Chatting with bob" }).waitFor();

    await window.getByTestId("chat-input").fill("Can you look at pc-7?");
    await window.getByTestId("chat-input").press("Enter");
    await bobWindow.getByTestId("chat-text").filter({ hasText: "Can you look at pc-7?" }).waitFor();
    await bobWindow.getByTestId("chat-input").fill("On it");
    await bobWindow.getByTestId("chat-input").press("Enter");
    await window.getByTestId("chat-text").filter({ hasText: "On it" }).waitFor();

    // Bob closes his window: the admin is told.
    await bobWindow.getByRole("button", { name: "Close the chat" }).click();
    await window.getByTestId("chat-status").filter({ hasText: /left|closed|ended/i }).waitFor({ timeout: 20_000 });
    await window.getByRole("button", { name: "Close the chat" }).click();
  });

  it("tells the inviter when the invitation is declined", async () => {
    await invite();
    await bob.getByTestId("chat-invitation").getByRole("button", { name: "Decline" }).click();
    await admin.getByText("bob declined your chat invitation").waitFor({ timeout: 20_000 });
    for (const list of errors) assert.deepEqual(list.filter((e) => !e.includes("favicon")), []);
  });
});
