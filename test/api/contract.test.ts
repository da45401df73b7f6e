// The response schemas of src/api/ollama.ts and src/api/openai.ts are a contract: the real engine
// on stories260K, behind the real HTTP server, answers every endpoint (streamed and not, errors
// included) with exactly those shapes. A field the schema lacks, or a value of another type, fails.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { z } from "zod";
import {
  ChatResponseSchema,
  DetokenizeResponseSchema,
  EmbeddingsResponseSchema,
  EmbedResponseSchema,
  ErrorResponseSchema,
  GenerateResponseSchema,
  ProgressResponseSchema,
  PsResponseSchema,
  ShowResponseSchema,
  TagsResponseSchema,
  TokenizeResponseSchema,
  VersionResponseSchema,
} from "../../src/api/ollama.js";
import {
  ChatCompletionChunkSchema,
  ChatCompletionSchema,
  CompletionSchema,
  OpenAIEmbeddingResponseSchema,
  OpenAIErrorResponseSchema,
  OpenAIModelListSchema,
  OpenAIModelSchema,
} from "../../src/api/openai.js";
import { REFERENCE_PROMPT, storiesPath } from "../helpers/models.js";
import { startRealServer, type RealServer } from "../helpers/real-server.js";

const MODEL = "stories";
const greedy = { num_predict: 4, temperature: 0 };

/**
 * Parses with the schema and requires the result to equal the input: zod drops keys a schema does
 * not name, so any field the server sends beyond the schema (at any depth) shows as a difference.
 */
function assertShape<S extends z.ZodType>(schema: S, body: unknown, what: string): z.output<S> {
  const result = schema.safeParse(body);
  assert.ok(result.success, `${what}: ${result.error?.message}\n${JSON.stringify(body)}`);
  assert.deepEqual(result.data, body, `${what}: fields beyond the schema`);
  return result.data;
}

describe("every response matches its API's response schema (real engine, real server)", () => {
  let server: RealServer;
  let url: string;

  const post = (route: string, body: unknown, method = "POST") =>
    fetch(`${url}${route}`, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const get = (route: string) => fetch(`${url}${route}`);

  async function json(response: Response, status = 200): Promise<unknown> {
    const text = await response.text();
    assert.equal(response.status, status, text);
    return JSON.parse(text);
  }
  async function ndjson(response: Response): Promise<unknown[]> {
    const text = await response.text();
    assert.equal(response.status, 200, text);
    assert.match(response.headers.get("content-type") ?? "", /application\/x-ndjson/);
    return text.trim().split("\n").map((line) => JSON.parse(line));
  }
  /** SSE `data:` events up to `[DONE]`. */
  async function sse(response: Response): Promise<unknown[]> {
    const text = await response.text();
    assert.equal(response.status, 200, text);
    const data = text.split("\n").filter((line) => line.startsWith("data: ")).map((line) => line.slice("data: ".length));
    assert.equal(data.at(-1), "[DONE]");
    return data.slice(0, -1).map((event) => JSON.parse(event));
  }

  before(async () => {
    server = await startRealServer("contract");
    url = server.url;
  });
  after(() => server.close());

  test("/api/create and /api/pull progress, streamed and not", async () => {
    const created = await ndjson(await post("/api/create", { model: MODEL, from: storiesPath, system: "Tell a story." }));
    for (const line of created) assertShape(ProgressResponseSchema, line, "create progress");
    assert.equal((created.at(-1) as { status: string }).status, "success");
    const pulled = await ndjson(await post("/api/pull", { model: `${server.registry.host}/library/stories`, insecure: true }));
    for (const line of pulled) assertShape(ProgressResponseSchema, line, "pull progress");
    assert.ok(pulled.some((line) => (line as { total?: number }).total !== undefined), "pull reports byte totals");
    const single = await json(await post("/api/pull", { model: `${server.registry.host}/library/stories`, insecure: true, stream: false }));
    assert.equal(assertShape(ProgressResponseSchema, single, "pull, not streamed").status, "success");
  });

  test("/api/generate: streamed, not streamed, with logprobs, load and unload", async () => {
    const whole = await json(await post("/api/generate", { model: MODEL, prompt: REFERENCE_PROMPT, stream: false, options: greedy }));
    assert.equal(assertShape(GenerateResponseSchema, whole, "generate").done_reason, "length");
    const withLogprobs = await json(
      await post("/api/generate", { model: MODEL, prompt: REFERENCE_PROMPT, stream: false, options: greedy, logprobs: true, top_logprobs: 2 }),
    );
    assert.equal(assertShape(GenerateResponseSchema, withLogprobs, "generate with logprobs").logprobs?.length, 4);
    const chunks = await ndjson(await post("/api/generate", { model: MODEL, prompt: REFERENCE_PROMPT, options: greedy, logprobs: true }));
    for (const chunk of chunks) assertShape(GenerateResponseSchema, chunk, "generate chunk");
    assert.equal((chunks.at(-1) as { done: boolean }).done, true);
    const loaded = await json(await post("/api/generate", { model: MODEL, stream: false }));
    assert.equal(assertShape(GenerateResponseSchema, loaded, "generate, load only").done_reason, "load");
  });

  test("/api/chat: streamed, not streamed, with logprobs", async () => {
    const messages = [{ role: "user", content: REFERENCE_PROMPT }];
    const whole = await json(await post("/api/chat", { model: MODEL, messages, stream: false, options: greedy, logprobs: true, top_logprobs: 2 }));
    assert.equal(assertShape(ChatResponseSchema, whole, "chat").message.role, "assistant");
    const chunks = await ndjson(await post("/api/chat", { model: MODEL, messages, options: greedy }));
    for (const chunk of chunks) assertShape(ChatResponseSchema, chunk, "chat chunk");
    assert.equal((chunks.at(-1) as { done: boolean }).done, true);
  });

  test("/api/embed, /api/embeddings, /api/tokenize, /api/detokenize", async () => {
    const embed = assertShape(EmbedResponseSchema, await json(await post("/api/embed", { model: MODEL, input: ["one", "two"] })), "embed");
    assert.equal(embed.embeddings.length, 2);
    assertShape(EmbeddingsResponseSchema, await json(await post("/api/embeddings", { model: MODEL, prompt: "one" })), "embeddings");
    const { tokens } = assertShape(TokenizeResponseSchema, await json(await post("/api/tokenize", { model: MODEL, content: REFERENCE_PROMPT })), "tokenize");
    const detokenized = assertShape(DetokenizeResponseSchema, await json(await post("/api/detokenize", { model: MODEL, tokens })), "detokenize");
    assert.match(detokenized.content, /Once upon a time/);
  });

  test("/api/tags, /api/ps, /api/show (and verbose), /api/version", async () => {
    const tags = assertShape(TagsResponseSchema, await json(await get("/api/tags")), "tags");
    assert.ok(tags.models.some((m) => m.name === `${MODEL}:latest`));
    await post("/api/generate", { model: MODEL, stream: false }); // loaded, so /api/ps lists it
    const ps = assertShape(PsResponseSchema, await json(await get("/api/ps")), "ps");
    assert.ok(ps.models.length > 0);
    const show = assertShape(ShowResponseSchema, await json(await post("/api/show", { model: MODEL })), "show");
    assert.equal(show.system, "Tell a story.");
    const verbose = assertShape(ShowResponseSchema, await json(await post("/api/show", { model: MODEL, verbose: true })), "show verbose");
    assert.ok((verbose.tensors?.length ?? 0) > 0);
    assertShape(VersionResponseSchema, await json(await get("/api/version")), "version");
  });

  test("Ollama errors: bad request, unknown model", async () => {
    assertShape(ErrorResponseSchema, await json(await post("/api/generate", { prompt: "no model" }), 400), "400");
    assertShape(ErrorResponseSchema, await json(await post("/api/generate", { model: "absent", prompt: "x" }), 404), "404");
    assertShape(ErrorResponseSchema, await json(await post("/api/show", { model: "absent" }), 404), "show 404");
  });

  test("/v1/chat/completions: not streamed with logprobs, streamed with usage", async () => {
    const messages = [{ role: "user", content: REFERENCE_PROMPT }];
    const whole = await json(await post("/v1/chat/completions", { model: MODEL, messages, max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 2 }));
    assert.equal(assertShape(ChatCompletionSchema, whole, "chat completion").choices[0]!.finish_reason, "length");
    const chunks = await sse(
      await post("/v1/chat/completions", { model: MODEL, messages, max_tokens: 4, temperature: 0, stream: true, stream_options: { include_usage: true }, logprobs: true }),
    );
    for (const chunk of chunks) assertShape(ChatCompletionChunkSchema, chunk, "chat completion chunk");
    assert.ok(chunks.some((chunk) => (chunk as { usage?: unknown }).usage), "a usage chunk");
  });

  test("/v1/completions: not streamed with logprobs, streamed", async () => {
    const whole = await json(await post("/v1/completions", { model: MODEL, prompt: REFERENCE_PROMPT, max_tokens: 4, temperature: 0, logprobs: 2 }));
    assert.equal(assertShape(CompletionSchema, whole, "completion").choices[0]!.logprobs?.tokens.length, 4);
    const chunks = await sse(await post("/v1/completions", { model: MODEL, prompt: REFERENCE_PROMPT, max_tokens: 4, temperature: 0, stream: true }));
    for (const chunk of chunks) assertShape(CompletionSchema, chunk, "completion chunk");
  });

  test("/v1/embeddings (float and base64), /v1/models, /v1/models/{model}", async () => {
    for (const encoding_format of ["float", "base64"]) {
      const body = await json(await post("/v1/embeddings", { model: MODEL, input: ["a", "b"], encoding_format }));
      assert.equal(assertShape(OpenAIEmbeddingResponseSchema, body, `embeddings ${encoding_format}`).data.length, 2);
    }
    const list = assertShape(OpenAIModelListSchema, await json(await get("/v1/models")), "models");
    assert.ok(list.data.some((m) => m.id === `${MODEL}:latest`));
    assertShape(OpenAIModelSchema, await json(await get(`/v1/models/${MODEL}:latest`)), "model");
  });

  test("OpenAI errors: bad request, unknown model", async () => {
    assertShape(OpenAIErrorResponseSchema, await json(await post("/v1/chat/completions", { model: MODEL, messages: [] }), 400), "400");
    const absent = { model: "absent", messages: [{ role: "user", content: "x" }] };
    assertShape(OpenAIErrorResponseSchema, await json(await post("/v1/chat/completions", absent), 404), "404");
    assertShape(OpenAIErrorResponseSchema, await json(await get("/v1/models/absent"), 404), "model 404");
  });
});
