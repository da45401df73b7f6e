// Images named by http(s) URL in OpenAI's, the Responses API's and Anthropic's shapes: fetched
// from a local image server within the size and time limits, each failure a clear 400 (413 over
// the size limit) while an unrelated request is served, and refused when remote images are off.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { FakeEngine } from "../helpers/fake-engine.js";
import { ImageServer } from "../helpers/image-server.js";
import { testImage } from "../helpers/images.js";
import { serveDuringSuite, type Served } from "../helpers/served.js";

const png = testImage(0);

type Post = readonly [route: string, body: unknown];

/** One image by URL, in each API's shape. */
const shapes: Record<"openai" | "responses" | "anthropic", (url: string) => Post> = {
  openai: (url: string) => ["/v1/chat/completions", {
    model: "fake-model", messages: [{ role: "user", content: [{ type: "image_url", image_url: { url } }, { type: "text", text: "what is it?" }] }],
  }],
  responses: (url: string) => ["/v1/responses", {
    model: "fake-model", input: [{ role: "user", content: [{ type: "input_image", image_url: url }, { type: "input_text", text: "what is it?" }] }],
  }],
  anthropic: (url: string) => ["/v1/messages", {
    model: "fake-model", max_tokens: 8, messages: [{ role: "user", content: [{ type: "image", source: { type: "url", url } }, { type: "text", text: "what is it?" }] }],
  }],
};

async function post(served: Served<FakeEngine>, [route, body]: Post): Promise<{ status: number; text: string }> {
  const r = await fetch(served.url + route, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: r.status, text: await r.text() };
}

describe("remote images: fetched within the limits", () => {
  let images: ImageServer;
  before(async () => (images = await ImageServer.start({ "/a.png": png })));
  after(async () => images?.close());
  const served = serveDuringSuite(() => new FakeEngine(), { remoteImageLimit: "100kb", remoteImageTimeout: 2_000 });

  for (const api of ["openai", "responses", "anthropic"] as const) {
    test(`${api}: an http URL's image reaches the engine as its bytes`, async () => {
      const ok = await post(served, shapes[api](`${images.url}/a.png`));
      assert.equal(ok.status, 200, ok.text);
      assert.deepEqual(served.engine.lastChatRequest().messages.at(-1)!.images, [png.toString("base64")]);
    });
  }

  test("a redirect to another http URL is followed", async () => {
    const ok = await post(served, shapes.openai(`${images.url}/to-image`));
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(served.engine.lastChatRequest().messages.at(-1)!.images, [png.toString("base64")]);
  });

  /**
   * Sends the bad URL; once the image server has its request (and holds the answer), an
   * unrelated request must be served in full while the bad one still waits; then the held answer
   * is released and the bad request's response returned.
   */
  async function whileInFlight(path: string): Promise<{ status: number; text: string }> {
    images.holdBadAnswers();
    let settled = false;
    const bad = post(served, shapes.openai(`${images.url}${path}`)).finally(() => (settled = true));
    await images.arrived(path);
    const unrelated = await post(served, ["/v1/chat/completions", { model: "fake-model", messages: [{ role: "user", content: "hi" }] }]);
    assert.equal(unrelated.status, 200, unrelated.text);
    assert.equal(settled, false, "the bad request was answered before the unrelated one");
    images.releaseHeld();
    return bad;
  }

  test("a URL that answers 404 is a 400 naming it", async () => {
    const bad = await whileInFlight("/missing");
    assert.equal(bad.status, 400);
    assert.match(bad.text, new RegExp(`image URL ${images.url}/missing answered 404 Not Found`));
  });

  test("a body over the size limit is a 413, cut off as it arrives", async () => {
    const bad = await whileInFlight("/endless");
    assert.equal(bad.status, 413);
    assert.match(bad.text, /is larger than this server's limit of 102400 bytes for a fetched image/);
  });

  test("a server that never answers is a 400 after the time limit", async () => {
    const bad = await whileInFlight("/silent");
    assert.equal(bad.status, 400);
    assert.match(bad.text, /took longer than 2s to fetch/);
  });

  test("a redirect to another scheme is a 400; only http and https are fetched", async () => {
    const bad = await whileInFlight("/to-ftp");
    assert.equal(bad.status, 400);
    assert.match(bad.text, /redirects to ftp:\/\/127\.0\.0\.1\/a\.png, not an http or https URL/);
    const fileUrl = await post(served, shapes.openai("file:///etc/passwd"));
    assert.equal(fileUrl.status, 400);
    assert.match(fileUrl.text, /expected a base64 data URL .* or an http\(s\) URL/);
  });
});

describe("remote images: turned off by the operator", () => {
  let images: ImageServer;
  before(async () => (images = await ImageServer.start({ "/a.png": png })));
  after(async () => images?.close());
  const served = serveDuringSuite(() => new FakeEngine(), { remoteImages: false });

  for (const api of ["openai", "responses", "anthropic"] as const) {
    test(`${api}: an http URL is a 400 and nothing is fetched`, async () => {
      const refused = await post(served, shapes[api](`${images.url}/a.png`));
      assert.equal(refused.status, 400);
      assert.match(refused.text, /image URLs are not fetched by this server \(remote images are off\): send the image inline, as a base64 data URL/);
      assert.deepEqual(images.requested, []);
    });
  }

  test("a data URL is taken", async () => {
    const ok = await post(served, shapes.openai(`data:image/png;base64,${png.toString("base64")}`));
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(served.engine.lastChatRequest().messages.at(-1)!.images, [png.toString("base64")]);
  });
});
