// Bad input for the Ollama API and the HTTP transport (docs/RELIABILITY.md): each case gets its
// status and Ollama's `{"error": "..."}`; wrong values of every option are generated per endpoint.
import { BUSY_MESSAGE } from "../../src/api/errors.js";
import { badInputSuite, busy, fieldCases, type Case } from "../helpers/bad-input.js";

const DIGEST = `sha256:${"0".repeat(64)}`;
const chat = (extra: object) => ({ model: "fake-model", messages: [{ role: "user", content: "hi" }], ...extra });

const CASES: Case[] = [
  // -- transport ------------------------------------------------------------------------------
  { name: "malformed JSON", path: "/api/generate", body: '{"model":', status: 400, error: /^invalid JSON body/ },
  { name: "JSON that is not an object", path: "/api/generate", body: '"hello"', status: 400, error: /^invalid JSON body/ },
  { name: "JSON array body", path: "/api/generate", body: "[1]", status: 400, error: /^invalid request body: expected a JSON object$/ },
  { name: "empty body", path: "/api/generate", body: "", status: 400, error: /^model is required$/ },
  { name: "huge body", path: "/api/generate", body: { model: "fake-model", prompt: "x".repeat(100_000) }, status: 413, error: /too large/ },
  { name: "unknown route", method: "GET", path: "/api/nope", status: 404, error: /^GET \/api\/nope not found$/ },
  { name: "wrong method", method: "GET", path: "/api/generate", status: 404, error: /not found/ },
  { name: "non-local Host header", method: "GET", path: "/api/version", headers: { Host: "evil.example" }, status: 403, error: /host not allowed/ },
  { name: "disallowed CORS origin", method: "GET", path: "/api/tags", headers: { Origin: "https://evil.example" }, status: 403, error: /origin not allowed/ },

  // -- /api/generate --------------------------------------------------------------------------
  { name: "generate: missing model", path: "/api/generate", body: { prompt: "hi" }, status: 400, error: /^model is required$/ },
  { name: "generate: model not a string", path: "/api/generate", body: { model: 5 }, status: 400, error: /^invalid model: expected string$/ },
  { name: "generate: prompt not a string", path: "/api/generate", body: { model: "fake-model", prompt: 1 }, status: 400, error: /^invalid prompt: expected string$/ },
  { name: "generate: stream not a boolean", path: "/api/generate", body: { model: "fake-model", stream: "yes" }, status: 400, error: /^invalid stream: expected boolean$/ },
  { name: "generate: options.temperature wrong type", path: "/api/generate", body: { model: "fake-model", options: { temperature: "hot" } }, status: 400, error: /^invalid options\.temperature: expected number$/ },
  { name: "generate: options.num_predict not an integer", path: "/api/generate", body: { model: "fake-model", options: { num_predict: 1.5 } }, status: 400, error: /^invalid options\.num_predict: expected integer$/ },
  { name: "generate: unknown option is ignored", path: "/api/generate", body: { model: "fake-model", stream: false, options: { no_such_option: 1 } }, status: 200 },
  { name: "generate: bad format", path: "/api/generate", body: { model: "fake-model", format: "xml" }, status: 400, error: /^invalid format: expected "json" or a JSON Schema object$/ },
  { name: "generate: bad keep_alive string", path: "/api/generate", body: { model: "fake-model", keep_alive: "5 minutes" }, status: 400, error: /^invalid keep_alive/ },
  { name: "generate: bad keep_alive type", path: "/api/generate", body: { model: "fake-model", keep_alive: true }, status: 400, error: /^invalid keep_alive/ },
  { name: "generate: top_logprobs 21", path: "/api/generate", body: { model: "fake-model", top_logprobs: 21 }, status: 400, error: /^invalid top_logprobs: must be <= 20$/ },
  { name: "generate: raw with system", path: "/api/generate", body: { model: "fake-model", raw: true, system: "x" }, status: 400, error: /^raw mode does not support template, system, or context$/ },
  { name: "generate: raw with context", path: "/api/generate", body: { model: "fake-model", raw: true, context: [1] }, status: 400, error: /^raw mode does not support/ },
  { name: "generate: bad think", path: "/api/generate", body: { model: "fake-model", think: "extreme" }, status: 400, error: /^invalid think/ },
  { name: "generate: unknown model", path: "/api/generate", body: { model: "nope" }, status: 404, error: /^model 'nope' not found$/ },
  { name: "generate: model without completion", path: "/api/generate", body: { model: "fake-embed" }, status: 400, error: /does not support generate/ },
  { name: "generate: busy", path: "/api/generate", body: { model: "fake-model" }, setup: busy, status: 503, error: new RegExp(`^${BUSY_MESSAGE.replace(/\./g, "\\.")}$`) },

  // -- /api/chat ------------------------------------------------------------------------------
  { name: "chat: messages not an array", path: "/api/chat", body: { model: "fake-model", messages: "hi" }, status: 400, error: /^invalid messages: expected array$/ },
  { name: "chat: bad role", path: "/api/chat", body: chat({ messages: [{ role: "bot", content: "x" }] }), status: 400, error: /^invalid messages\.0\.role/ },
  { name: "chat: tool call arguments as a string", path: "/api/chat", body: chat({ messages: [{ role: "assistant", tool_calls: [{ function: { name: "f", arguments: "{}" } }] }] }), status: 400, error: /^invalid messages\.0\.tool_calls\.0\.function\.arguments: expected record$/ },
  { name: "chat: tool without function", path: "/api/chat", body: chat({ tools: [{ type: "function" }] }), status: 400, error: /^tools\.0\.function is required$/ },
  { name: "chat: bad format", path: "/api/chat", body: chat({ format: 42 }), status: 400, error: /^invalid format/ },
  { name: "chat: top_logprobs 21", path: "/api/chat", body: chat({ top_logprobs: 21 }), status: 400, error: /^invalid top_logprobs/ },
  { name: "chat: unknown model", path: "/api/chat", body: chat({ model: "nope" }), status: 404, error: /^model 'nope' not found$/ },
  { name: "chat: busy", path: "/api/chat", body: chat({ stream: false }), setup: busy, status: 503, error: /^server busy/ },

  // -- embeddings and tokens ------------------------------------------------------------------
  { name: "embed: input not text", path: "/api/embed", body: { model: "fake-embed", input: 5 }, status: 400, error: /^invalid input/ },
  { name: "embed: dimensions 0", path: "/api/embed", body: { model: "fake-embed", input: "a", dimensions: 0 }, status: 400, error: /^invalid dimensions: must be >= 1$/ },
  { name: "embed: model without embeddings", path: "/api/embed", body: { model: "fake-model", input: "a" }, status: 400, error: /does not support embeddings/ },
  { name: "embed: unknown model", path: "/api/embed", body: { model: "nope", input: "a" }, status: 404, error: /not found/ },
  { name: "embeddings: prompt not a string", path: "/api/embeddings", body: { model: "fake-embed", prompt: ["a"] }, status: 400, error: /^invalid prompt: expected string$/ },
  { name: "tokenize: missing content", path: "/api/tokenize", body: { model: "fake-model" }, status: 400, error: /^content is required$/ },
  { name: "detokenize: tokens not integers", path: "/api/detokenize", body: { model: "fake-model", tokens: ["a"] }, status: 400, error: /^invalid tokens\.0: expected number$/ },
  { name: "detokenize: fractional token", path: "/api/detokenize", body: { model: "fake-model", tokens: [1.5] }, status: 400, error: /^invalid tokens\.0: expected integer$/ },
  { name: "detokenize: unknown model", path: "/api/detokenize", body: { model: "nope", tokens: [1] }, status: 404, error: /not found/ },

  // -- model management -----------------------------------------------------------------------
  { name: "show: missing model", path: "/api/show", body: {}, status: 400, error: /^model is required$/ },
  { name: "show: unknown model", path: "/api/show", body: { name: "nope" }, status: 404, error: /^model 'nope' not found$/ },
  { name: "show: session options wrong type", path: "/api/show", body: { model: "fake-model", options: { temperature: "hot" } }, status: 400, error: /^invalid options\.temperature: expected number$/ },
  { name: "show: session system not text", path: "/api/show", body: { model: "fake-model", system: 5 }, status: 400, error: /^invalid system: expected string$/ },
  { name: "pull: empty name", path: "/api/pull", body: { name: "" }, status: 400, error: /^model is required$/ },
  { name: "pull: insecure not a boolean", path: "/api/pull", body: { name: "x", insecure: "no" }, status: 400, error: /^invalid insecure/ },
  { name: "push: unknown model", path: "/api/push", body: { name: "nope" }, status: 404, error: /not found/ },
  { name: "create: neither from nor files", path: "/api/create", body: { model: "m" }, status: 400, error: /^neither 'from' or 'files' was specified$/ },
  { name: "create: bad file digest", path: "/api/create", body: { model: "m", files: { "a.gguf": "md5:1" } }, status: 400, error: /^invalid files\.a\.gguf/ },
  { name: "create: unknown base model", path: "/api/create", body: { model: "m", from: "nope" }, status: 404, error: /not found/ },
  { name: "copy: missing destination", path: "/api/copy", body: { source: "fake-model" }, status: 400, error: /^destination is required$/ },
  { name: "copy: unknown source", path: "/api/copy", body: { source: "nope", destination: "x" }, status: 404, error: /not found/ },
  { name: "delete: missing model", method: "DELETE", path: "/api/delete", body: {}, status: 400, error: /^model is required$/ },
  { name: "delete: unknown model", method: "DELETE", path: "/api/delete", body: { name: "nope" }, status: 404, error: /^model 'nope' not found$/ },
  { name: "blobs: bad digest (HEAD)", method: "HEAD", path: "/api/blobs/abc", status: 400 },
  { name: "blobs: bad digest (POST)", path: "/api/blobs/sha256:xyz", body: "data", status: 400, error: /^invalid digest format/ },
  { name: "blobs: digest mismatch", path: `/api/blobs/${DIGEST}`, body: "data", status: 400, error: /^digest mismatch$/ },

];

/** Wrong values of every Ollama option: the wrong type, and past its bounds where it has them. */
const BAD_OPTIONS: Record<string, unknown[]> = {
  num_keep: ["4", 1.5], seed: ["1", 0.5], num_predict: ["8", 2.5], top_k: ["40", -1], top_p: ["0.9", 1.5, -0.1],
  min_p: ["0", 2], typical_p: [true, 1.01], repeat_last_n: ["64", -2], temperature: ["hot", -1], repeat_penalty: ["1", -0.5],
  presence_penalty: ["0"], frequency_penalty: [[]], stop: [5, [1]], ignore_eos: ["yes"], min_tokens: ["1", -1],
  logit_bias: [[1], { "1": 101 }, { "1": "x" }], num_ctx: ["2048", 0], num_batch: [0, "512"], num_gpu: [-2, "1"],
  main_gpu: [-1, "0"], use_mmap: ["no"], num_thread: [-1, 1.5],
};
const OPTION_ENDPOINTS: Array<[string, string, (options: object) => object]> = [
  ["generate", "/api/generate", (options) => ({ model: "fake-model", prompt: "hi", options })],
  ["chat", "/api/chat", (options) => chat({ options })],
  ["embed", "/api/embed", (options) => ({ model: "fake-embed", input: "a", options })],
];
const OPTION_CASES = OPTION_ENDPOINTS.flatMap(([label, path, body]) =>
  fieldCases(label, path, BAD_OPTIONS, (field, value) => body({ [field]: value }), "options."));

/** Wrong types of each top-level field of the generation endpoints. */
const GENERATE_FIELDS: Record<string, unknown[]> = {
  system: [1], template: [[]], context: ["1", [1.5], [-1]], raw: ["yes"], images: ["abc", [1]], suffix: [1],
  keep_alive: [[], {}], logprobs: ["yes"], top_logprobs: [-1, "5"], truncate: ["no"], think: [5],
};
const CHAT_FIELDS: Record<string, unknown[]> = {
  tools: ["x", [1]], stream: [1], keep_alive: [[]], logprobs: [1], top_logprobs: [21.5], think: [{}], truncate: [0],
};
const FIELD_CASES = [
  ...fieldCases("generate", "/api/generate", GENERATE_FIELDS, (field, value) => ({ model: "fake-model", prompt: "hi", [field]: value })),
  ...fieldCases("chat", "/api/chat", CHAT_FIELDS, (field, value) => chat({ [field]: value })),
];

badInputSuite("bad input: Ollama API and transport", [...CASES, ...OPTION_CASES, ...FIELD_CASES], {
  path: "/api/generate", body: { model: "fake-model", prompt: "hi", stream: false },
});
