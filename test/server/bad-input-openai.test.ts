// Bad input for OpenAI's chat, completions, embeddings and models endpoints (docs/RELIABILITY.md):
// each case gets its status and OpenAI's error object; wrong values of every field are generated.
import { badInputSuite, busy, fieldCases, type Case } from "../helpers/bad-input.js";

const oaiChat = (extra: object) => ({ model: "fake-model", messages: [{ role: "user", content: "hi" }], ...extra });

const CASES: Case[] = [
  { name: "openai: malformed JSON", path: "/v1/chat/completions", body: "{", status: 400, error: /^invalid JSON body/ },
  { name: "openai: huge body", path: "/v1/chat/completions", body: oaiChat({ stop: "x".repeat(100_000) }), status: 413, error: /too large/ },
  { name: "openai: unknown route", method: "GET", path: "/v1/nope", status: 404, error: /not found/ },
  { name: "openai chat: missing messages", path: "/v1/chat/completions", body: { model: "fake-model" }, status: 400, error: /^messages is required$/ },
  { name: "openai chat: empty messages", path: "/v1/chat/completions", body: { model: "fake-model", messages: [] }, status: 400, error: /^invalid messages: must not be empty$/ },
  { name: "openai chat: n 0", path: "/v1/chat/completions", body: oaiChat({ n: 0 }), status: 400, error: /^invalid n: must be >= 1$/ },
  { name: "openai chat: n 129", path: "/v1/chat/completions", body: oaiChat({ n: 129 }), status: 400, error: /^invalid n: must be <= 128$/ },
  { name: "openai chat: n 1.5", path: "/v1/chat/completions", body: oaiChat({ n: 1.5 }), status: 400, error: /^invalid n/ },
  { name: "openai completions: n 0", path: "/v1/completions", body: { model: "fake-model", prompt: "hi", n: 0 }, status: 400, error: /^invalid n: must be >= 1$/ },
  { name: "openai completions: empty prompt list", path: "/v1/completions", body: { model: "fake-model", prompt: [] }, status: 400, error: /^invalid prompt/ },
  { name: "openai completions: 129 prompts", path: "/v1/completions", body: { model: "fake-model", prompt: Array(129).fill("hi") }, status: 400, error: /^invalid prompt/ },
  { name: "openai completions: token-id prompts", path: "/v1/completions", body: { model: "fake-model", prompt: [1, 2] }, status: 400, error: /^invalid prompt/ },
  { name: "openai completions: 2 prompts x n 65", path: "/v1/completions", body: { model: "fake-model", prompt: ["a", "b"], n: 65 }, status: 400, error: /^too many choices: 2 prompts x n 65 is over 128$/ },
  { name: "openai chat: best_of 2", path: "/v1/chat/completions", body: oaiChat({ best_of: 2 }), status: 400, error: /^invalid best_of: only best_of=1 is supported$/ },
  { name: "openai chat: min_tokens -1", path: "/v1/chat/completions", body: oaiChat({ min_tokens: -1 }), status: 400, error: /^invalid min_tokens: must be >= 0$/ },
  { name: "ollama generate: options.min_tokens 1.5", path: "/api/generate", body: { model: "fake-model", prompt: "hi", options: { min_tokens: 1.5 } }, status: 400, error: /^invalid options\.min_tokens/ },
  { name: "openai chat: top_k -2", path: "/v1/chat/completions", body: oaiChat({ top_k: -2 }), status: 400, error: /^invalid top_k: must be >= -1$/ },
  { name: "openai chat: min_p 2", path: "/v1/chat/completions", body: oaiChat({ min_p: 2 }), status: 400, error: /^invalid min_p: must be <= 1$/ },
  { name: "openai chat: repetition_penalty 0", path: "/v1/chat/completions", body: oaiChat({ repetition_penalty: 0 }), status: 400, error: /^invalid repetition_penalty: must be > 0$/ },
  { name: "openai chat: logit_bias 101", path: "/v1/chat/completions", body: oaiChat({ logit_bias: { "5": 101 } }), status: 400, error: /^invalid logit_bias\.5: must be <= 100$/ },
  { name: "openai chat: logit_bias key not a token id", path: "/v1/chat/completions", body: oaiChat({ logit_bias: { abc: 1 } }), status: 400, error: /^invalid logit_bias/ },
  { name: "openai chat: reasoning_effort xhigh", path: "/v1/chat/completions", body: oaiChat({ reasoning_effort: "xhigh" }), status: 400, error: /^invalid reasoning_effort/ },
  { name: "openai chat: temperature 3", path: "/v1/chat/completions", body: oaiChat({ temperature: 3 }), status: 400, error: /^invalid temperature: must be <= 2$/ },
  { name: "openai chat: bad response_format", path: "/v1/chat/completions", body: oaiChat({ response_format: { type: "xml" } }), status: 400, error: /^invalid response_format/ },
  { name: "openai chat: top_logprobs 21", path: "/v1/chat/completions", body: oaiChat({ logprobs: true, top_logprobs: 21 }), status: 400, error: /^invalid top_logprobs/ },
  {
    name: "openai chat: tool arguments not JSON",
    path: "/v1/chat/completions",
    body: oaiChat({ messages: [{ role: "assistant", tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{oops" } }] }] }),
    status: 400,
    error: /^invalid tool_calls arguments/,
  },
  {
    name: "openai chat: image URL of another scheme",
    path: "/v1/chat/completions",
    body: oaiChat({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "file:///etc/passwd" } }] }] }),
    status: 400,
    error: /^invalid image_url/,
  },
  { name: "openai chat: unknown model", path: "/v1/chat/completions", body: oaiChat({ model: "nope" }), status: 404, error: /^model 'nope' not found$/ },
  { name: "openai chat: busy", path: "/v1/chat/completions", body: oaiChat({ stream: true }), setup: busy, status: 503, error: /^server busy/ },
  { name: "openai completions: missing prompt", path: "/v1/completions", body: { model: "fake-model" }, status: 400, error: /^prompt is required$/ },
  { name: "openai completions: max_tokens 0", path: "/v1/completions", body: { model: "fake-model", prompt: "a", max_tokens: 0 }, status: 400, error: /^invalid max_tokens: must be >= 1$/ },
  { name: "openai embeddings: missing input", path: "/v1/embeddings", body: { model: "fake-embed" }, status: 400, error: /^input is required$/ },
  { name: "openai embeddings: bad encoding_format", path: "/v1/embeddings", body: { model: "fake-embed", input: "a", encoding_format: "int8" }, status: 400, error: /^invalid encoding_format/ },
  { name: "openai models: unknown model", method: "GET", path: "/v1/models/nope", status: 404, error: /^model 'nope' not found$/ },
];

/** Wrong values of the sampling fields chat and completions share. */
const SAMPLING_FIELDS: Record<string, unknown[]> = {
  temperature: ["1", -0.1, 2.5], top_p: ["1", 1.5], max_tokens: ["8", 0, 1.5], presence_penalty: ["0", 3], frequency_penalty: [[], -3],
  seed: ["1", 0.5], stop: [5, [1]], n: ["2"], stream: ["yes"], logit_bias: [[1]], top_k: ["1"], min_p: [-1],
  repetition_penalty: ["1"], min_tokens: ["1"], best_of: [0],
};
const CHAT_FIELDS: Record<string, unknown[]> = {
  max_completion_tokens: [0, "8"], logprobs: ["yes"], top_logprobs: [-1], tools: ["x"], response_format: ["json"],
  stream_options: ["x"], reasoning_effort: [1],
};
const COMPLETION_FIELDS: Record<string, unknown[]> = { logprobs: [-1, "2"], echo: ["yes"], suffix: [1] };
const EMBEDDING_FIELDS: Record<string, unknown[]> = { input: [5, [1.5], [[]], {}], dimensions: [0, "8"], encoding_format: ["hex"] };
const GENERATED = [
  ...fieldCases("openai chat", "/v1/chat/completions", { ...SAMPLING_FIELDS, ...CHAT_FIELDS }, (field, value) => oaiChat({ [field]: value })),
  ...fieldCases("openai completions", "/v1/completions", { ...SAMPLING_FIELDS, ...COMPLETION_FIELDS }, (field, value) => ({ model: "fake-model", prompt: "hi", [field]: value })),
  ...fieldCases("openai embeddings", "/v1/embeddings", EMBEDDING_FIELDS, (field, value) => ({ model: "fake-embed", input: "a", [field]: value })),
];

badInputSuite("bad input: OpenAI API", [...CASES, ...GENERATED], { path: "/v1/chat/completions", body: oaiChat({}) });
