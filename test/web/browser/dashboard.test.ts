// The dashboard in headless Chromium against the real engine: a burst of 8 requests shows as 8
// running, then as gone once they are cancelled.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, test } from "node:test";
import { SCREENSHOTS, sequencesFreed, STORIES_MODEL, useBrowserAndModelServer } from "../../helpers/browser.js";
import { OTHER_PROMPTS, REFERENCE_PROMPT, REFERENCE_TEXT } from "../../helpers/models.js";

describe("dashboard", () => {
  const env = useBrowserAndModelServer();

  test("shows no model, then the running requests of a burst of 8, their tokens/s and KV cells", async () => {
    const page = await env.browser.newPage({ viewport: { width: 1200, height: 700 } });
    await page.goto(`${env.model.url}/dashboard`);
    await page.locator(".no-models").waitFor();
    assert.match(await page.textContent("#process") ?? "", /Server memory: [\d.]+ MiB resident/);

    // A finished request first, so the latency figures have something to show; at the burst's
    // num_ctx, which loads the model with room for 8 sequences of it (a larger one would reload it).
    const first = await fetch(`${env.model.url}/api/generate`, {
      method: "POST",
      body: JSON.stringify({ model: STORIES_MODEL, prompt: REFERENCE_PROMPT, stream: false, options: { num_predict: 48, temperature: 0, num_ctx: 4096 } }),
    });
    assert.equal(((await first.json()) as { response: string }).response, REFERENCE_TEXT);

    const burst = new AbortController();
    const requests = [REFERENCE_PROMPT, ...OTHER_PROMPTS.slice(0, 7)].map((prompt) =>
      fetch(`${env.model.url}/api/generate`, {
        method: "POST",
        signal: burst.signal,
        body: JSON.stringify({ model: STORIES_MODEL, prompt, options: { num_predict: -1, num_ctx: 4096, temperature: 0 } }),
      }).then((res) => res.body!.pipeTo(new WritableStream())).catch(() => undefined));

    const card = page.locator(`.model-card[data-model="${STORIES_MODEL}"]`);
    await card.locator('[data-metric="running"]').filter({ hasText: /^8$/ }).waitFor({ timeout: 60_000 });
    await page.waitForFunction(() => Number.parseFloat(document.querySelector('[data-metric="tokens-per-second"]')?.textContent ?? "0") > 0);
    assert.match(await card.locator('[data-metric="kv"]').textContent() ?? "", /^KV cache: [1-9]\d* of \d+ cells/);
    assert.equal(await card.locator('[data-metric="waiting"]').textContent(), "0");
    assert.equal(await card.locator("svg.chart polyline").count(), 1);
    // Three whole seconds of the burst in the chart before the screenshot.
    await page.waitForFunction(() => document.querySelector(".chart polyline")?.getAttribute("points")?.split(" ").slice(-3).every((p) => !p.endsWith(",100")), undefined, { timeout: 30_000 });
    await page.screenshot({ path: path.join(SCREENSHOTS, "dashboard.png") });

    burst.abort();
    await Promise.all(requests);
    assert.ok(await sequencesFreed(env.model.engine));
    await card.locator('[data-metric="running"]').filter({ hasText: /^0$/ }).waitFor();
    assert.match(await card.locator('[data-metric="finished"]').textContent() ?? "", /^9/);
    await page.close();
  });
});
