// The browser pages' routes (no browser: test/browser/ has those): `/` is the chat for a browser
// and "Ollama is running" for everyone else, the dashboard, the page files and the two libraries
// from node_modules, the pages' content security policy, and refused paths.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { startServer, type RunningServer } from "../../src/server/index.js";
import { FakeEngine, REPLY_TEXT } from "../helpers/fake-engine.js";

describe("web pages", () => {
  let server: RunningServer;
  let url: string;

  before(async () => {
    server = await startServer({ engine: new FakeEngine(), config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "1mb" }, logger: pino({ level: "silent" }) });
    url = `http://127.0.0.1:${server.port}`;
  });
  after(() => server.close());

  const get = (path: string, accept?: string) => fetch(`${url}${path}`, { headers: accept ? { accept } : {} });

  test("GET / is the chat for a browser; API clients still get Ollama's answer", async () => {
    const browser = await get("/", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
    assert.equal(browser.status, 200);
    assert.match(browser.headers.get("content-type")!, /^text\/html/);
    assert.match(browser.headers.get("content-security-policy")!, /default-src 'self'.*script-src 'self'/);
    assert.match(await browser.text(), /<script type="module" src="\/web\/chat\.js">/);
    for (const accept of [undefined, "*/*", "application/json", "text/plain"]) {
      const api = await get("/", accept);
      assert.equal(await api.text(), "Ollama is running", `Accept: ${accept}`);
    }
    const head = await fetch(url, { method: "HEAD" });
    assert.equal(head.status, 200);
  });

  test("the dashboard, the page files and the libraries are served from this server", async () => {
    const dashboard = await get("/dashboard");
    assert.match(await dashboard.text(), /<script type="module" src="\/web\/dashboard\.js">/);
    assert.ok(dashboard.headers.get("content-security-policy"));
    const files: Array<[string, RegExp, RegExp]> = [
      ["/web/chat.js", /javascript/, /from "\/web\/api\.js"/],
      ["/web/style.css", /css/, /--accent/],
      ["/web/vendor/marked.js", /javascript/, /^\/\*\*\n \* marked v[\s\S]*\bas Marked\b/],
      ["/web/vendor/highlight/core.js", /javascript/, /^const module = \{ exports: \{\} \};[\s\S]*export default module\.exports;\n$/],
      ["/web/vendor/highlight/languages/python.js", /javascript/, /export \{ python as default \}/],
      ["/web/vendor/highlight/styles/github-dark.css", /css/, /\.hljs/],
    ];
    for (const [path, type, content] of files) {
      const res = await get(path);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get("content-type")!, type, path);
      assert.ok(content.test(await res.text()), `${path} is not what was expected`);
    }
  });

  test("paths outside the page files are refused while a generation streams on", async () => {
    const streaming = await fetch(`${url}/api/generate`, { method: "POST", body: JSON.stringify({ model: "fake-model", prompt: "hi" }) });
    const reader = streaming.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value);

    const refused: Array<[string, number, RegExp]> = [
      ["/web/..%2f..%2fpackage.json", 403, /is not served/],
      ["/web/vendor/highlight/languages/..%2f..%2fpackage.json", 403, /is not served/],
      ["/web/.hidden", 403, /is not served/],
      ["/web/missing.js", 404, /^missing\.js not found$/],
      ["/web/vendor/highlight/languages/klingon.js", 404, /not found/],
    ];
    for (const [path, status, message] of refused) {
      const res = await get(path);
      assert.equal(res.status, status, path);
      assert.match(((await res.json()) as { error: string }).error, message, path);
    }

    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += decoder.decode(chunk.value);
    const lines = text.trim().split("\n").map((line) => JSON.parse(line) as { response: string });
    assert.equal(lines.map((l) => l.response).join(""), REPLY_TEXT);
  });
});
