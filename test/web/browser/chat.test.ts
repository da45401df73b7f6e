// The chat page in headless Chromium against the real engine: pick stories260K, get the greedy
// reference streamed, stop a long answer (the server frees its sequence), conversations kept
// across reloads, the API-key prompt, and how a chat model's answer is rendered.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, test } from "node:test";
import type { Page } from "playwright-core";
import { SCREENSHOTS, sequencesFreed, STORIES_MODEL, useBrowserAndModelServer } from "../../helpers/browser.js";
import { REFERENCE_PROMPT, REFERENCE_TEXT } from "../../helpers/models.js";

/** A 1x1 PNG. */
const PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

describe("chat page", () => {
  const env = useBrowserAndModelServer();

  /** Opens the page (after `setup`, e.g. network routes) once it lists stories260K. */
  async function openChat(setup?: (page: Page) => Promise<void>): Promise<Page> {
    const page = await env.browser.newPage({ viewport: { width: 1200, height: 760 } });
    await setup?.(page);
    const failures: string[] = [];
    page.on("pageerror", (err) => failures.push(err.message));
    page.on("requestfailed", (req) => {
      if (!req.url().startsWith(env.model.url)) failures.push(`request outside the server: ${req.url()}`);
    });
    (page as Page & { failures: string[] }).failures = failures;
    await page.goto(env.model.url);
    await page.locator(`#model option[value="${STORIES_MODEL}"]`).waitFor({ state: "attached" });
    return page;
  }

  async function setOptions(page: Page, options: Record<string, string>): Promise<void> {
    if (await page.locator("#settings").isHidden()) await page.click("#toggle-settings");
    for (const [field, value] of Object.entries(options)) await page.fill(`#${field}`, value);
  }

  test("stories260K answers 'Once upon a time' with the greedy reference, streamed, with tokens/s and TTFT", async () => {
    const page = await openChat();
    await page.selectOption("#model", STORIES_MODEL);
    await page.locator("#mode").waitFor({ state: "visible" });
    assert.match(await page.textContent("#mode") ?? "", /text completion/);
    assert.equal(await page.locator("#attach").isHidden(), true, "no image button for a model without vision");
    await setOptions(page, { temperature: "0", num_predict: "48" });
    // Every text the answer shows while it streams.
    await page.evaluate(() => {
      const seen: string[] = ((window as unknown as { seen: string[] }).seen = []);
      new MutationObserver(() => {
        const text = document.querySelector(".message.assistant .content")?.textContent;
        if (text) seen.push(text);
      }).observe(document.getElementById("messages")!, { childList: true, subtree: true, characterData: true });
    });
    await page.fill("#prompt", REFERENCE_PROMPT);
    await page.press("#prompt", "Enter");

    const stats = page.locator(".message.assistant .stats");
    await stats.filter({ hasText: "48 tokens" }).waitFor({ timeout: 60_000 });
    assert.equal((await page.textContent(".message.assistant .content"))?.trim(), REFERENCE_TEXT);
    assert.match(await stats.textContent() ?? "", /^48 tokens · [\d.]+ tokens\/s · TTFT \d+ ms$/);
    assert.equal(await page.textContent(".message.user"), REFERENCE_PROMPT);
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    assert.ok(seen.every((text) => REFERENCE_TEXT.startsWith(text.trim())), "every streamed state is a prefix of the reference");
    assert.equal(await page.locator("#send").isVisible(), true);
    assert.equal(await page.locator(".conversation.active .open").textContent(), REFERENCE_PROMPT);
    await page.screenshot({ path: path.join(SCREENSHOTS, "chat.png") });

    // The conversation is kept in the browser: a reload shows it again.
    await page.reload();
    await page.locator(".message.assistant .stats").filter({ hasText: "48 tokens" }).waitFor();
    assert.equal((await page.textContent(".message.assistant .content"))?.trim(), REFERENCE_TEXT);
    assert.deepEqual((page as Page & { failures: string[] }).failures, []);
    await page.close();
  });

  test("Stop cancels a long answer mid-way and the server frees its sequence", async () => {
    const page = await openChat();
    await page.selectOption("#model", STORIES_MODEL);
    await page.click("#new-chat");
    await setOptions(page, { temperature: "0", num_predict: "-1", num_ctx: "4096" });
    await page.fill("#prompt", REFERENCE_PROMPT);
    await page.click("#send");
    await page.waitForFunction(() => (document.querySelector(".message.assistant .content")?.textContent ?? "").length > 200, undefined, { timeout: 60_000 });
    assert.equal(env.model.engine.stats()[0]!.running, 1, "the answer is still generating");
    await page.click("#stop");

    await page.locator(".message.assistant .stats").filter({ hasText: "stopped" }).waitFor();
    assert.ok(await sequencesFreed(env.model.engine), "the stopped request's sequence left and gave its cells back");
    const text = (await page.textContent(".message.assistant .content"))!.trim();
    assert.ok(text.startsWith(REFERENCE_TEXT), text.slice(0, 200));
    assert.equal(env.model.engine.stats()[0]!.running, 0);
    assert.equal(await page.locator("#send").isVisible(), true);
    await page.close();
  });

  test("a server that needs an API key: the page asks for one and sends it", async () => {
    const page = await env.browser.newPage();
    const seenKeys: Array<string | undefined> = [];
    // The server has no key setting of its own yet: its answer is played here.
    await page.route("**/api/tags", async (route) => {
      const key = route.request().headers().authorization;
      seenKeys.push(key);
      if (key === "Bearer sesame") await route.continue();
      else await route.fulfill({ status: 401, contentType: "application/json", body: JSON.stringify({ error: "invalid API key" }) });
    });
    await page.goto(env.model.url);
    const dialog = page.locator("dialog.key-dialog");
    await dialog.waitFor();
    assert.match(await dialog.textContent() ?? "", /needs an API key: invalid API key/);
    await page.fill("dialog.key-dialog input", "sesame");
    await page.click("dialog.key-dialog button[value=ok]");
    await page.locator(`#model option[value="${STORIES_MODEL}"]`).waitFor({ state: "attached" });
    assert.deepEqual(seenKeys, [undefined, "Bearer sesame"]);
    assert.equal(await page.evaluate(() => localStorage.getItem("vllama.apiKey")), "sesame");
    await page.close();
  });

  test("a chat model: its answer with thinking collapsed, Markdown, highlighted code, raw HTML as text; the system prompt, settings and an image sent; a conversation deleted", async () => {
    const chunks = [
      { message: { role: "assistant", content: "", thinking: "The user wants code." }, done: false },
      { message: { role: "assistant", content: "Here is **bold** and <img src=x onerror=alert(1)>:\n\n```python\ndef add(a, b):\n    return a + b\n```\n" }, done: false },
      { message: { role: "assistant", content: "" }, done: true, done_reason: "stop", eval_count: 20, eval_duration: 100_000_000 },
    ];
    type ChatBody = { model: string; messages: Array<{ role: string; content: string; images?: string[] }>; think: boolean; options: Record<string, number> };
    const sent: ChatBody[] = [];
    // stories260K has no chat template and no vision: a chat model's answers are played here.
    const page = await openChat(async (p) => {
      await p.route("**/api/show", (route) =>
        route.fulfill({ contentType: "application/json", body: JSON.stringify({ template: "{{ .Prompt }}", capabilities: ["completion", "vision"], model_info: {} }) }));
      await p.route("**/api/chat", (route) => {
        sent.push(route.request().postDataJSON() as ChatBody);
        return route.fulfill({ contentType: "application/x-ndjson", body: chunks.map((c) => JSON.stringify(c)).join("\n") + "\n" });
      });
    });
    await page.click("#new-chat");
    await page.selectOption("#model", STORIES_MODEL);
    await page.locator("#attach").waitFor({ state: "visible" });
    assert.equal(await page.locator("#mode").isHidden(), true);
    await setOptions(page, { system: "Answer in code.", top_k: "20" });
    await page.setInputFiles("#images", { name: "dot.png", mimeType: "image/png", buffer: Buffer.from(PNG_BASE64, "base64") });
    await page.locator("#attachments img").waitFor();
    await page.fill("#prompt", "write code");
    await page.press("#prompt", "Enter");

    await page.locator(".message.assistant .stats").filter({ hasText: "20 tokens · 200.0 tokens/s" }).waitFor();
    const thinking = page.locator(".message.assistant details.thinking");
    assert.equal(await thinking.getAttribute("open"), null, "thinking starts collapsed");
    assert.equal(await thinking.locator(".thinking-text").textContent(), "The user wants code.");
    assert.equal(await page.locator(".message.assistant .content strong").textContent(), "bold");
    assert.equal(await page.locator(".message.assistant .content img").count(), 0);
    assert.match(await page.textContent(".message.assistant .content") ?? "", /<img src=x onerror=alert\(1\)>/);
    assert.ok(await page.locator(".message.assistant code.language-python .hljs-keyword").count() > 0, "python is highlighted");

    // What the page sent: the system prompt, the message with its image, the settings.
    assert.deepEqual(sent, [{
      model: STORIES_MODEL,
      messages: [{ role: "system", content: "Answer in code." }, { role: "user", content: "write code", images: [PNG_BASE64] }],
      options: { top_k: 20 },
      think: true,
      stream: true,
    }]);
    assert.equal(await page.locator(".message.user img.thumbnail").count(), 1);
    assert.equal(await page.locator("#attachments img").count(), 0);

    // Conversations can be deleted; the other one stays.
    assert.equal(await page.locator(".conversation").count(), 1);
    await page.click("#new-chat");
    assert.equal(await page.locator(".conversation").count(), 2);
    await page.click(".conversation.active .remove");
    assert.equal(await page.locator(".conversation").count(), 1);
    assert.equal(await page.locator(".conversation .open").textContent(), "write code");
    await page.close();
  });
});
