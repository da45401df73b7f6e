import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BadRequestError } from "../../src/api/errors.js";
import type { ChatMessage, ToolCall } from "../../src/api/ollama.js";
import { GoTemplate, isGoTemplate } from "../../src/chat/go-template.js";
import { ChatTemplate, DEFAULT_CHAT_TEMPLATE, strftime } from "../../src/chat/template.js";
import { splitThinking, ThinkingStreamParser, type ThinkingOptions } from "../../src/chat/thinking.js";
import { detectToolCallFormat, parseToolCalls, ToolCallStreamParser, type ToolCallFormat } from "../../src/chat/tool-calls.js";
import { LLAMA3_LEGACY, LLAMA31, QWEN25, realTemplate, WEATHER_TOOL } from "../helpers/chat-templates.js";

// A fixed local noon: the same calendar day in every time zone the tests may run in.
const NOW = new Date(2025, 2, 14, 12, 0, 0);

const CONVERSATION: ChatMessage[] = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Hi" },
  { role: "assistant", content: "Hello!" },
  { role: "user", content: "Weather in Paris?" },
];

const TOOL_ROUND: ChatMessage[] = [
  ...CONVERSATION,
  { role: "assistant", content: "", tool_calls: [{ function: { name: "get_weather", arguments: { city: "Paris" } } }] },
  { role: "tool", content: "sunny, 21C", tool_name: "get_weather" },
];

const LLAMA3_SYSTEM = (date: string) =>
  "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" +
  `Cutting Knowledge Date: December 2023\nToday Date: ${date}\n\nYou are terse.<|eot_id|>`;
const LLAMA3_TURNS =
  "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" +
  "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>" +
  "<|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|>" +
  "<|start_header_id|>assistant<|end_header_id|>\n\n";
const CHATML_TURNS =
  "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n" +
  "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n";

interface RealCase {
  name: string;
  bos: string;
  eos: string;
  expected: string;
  tools: boolean;
  system: boolean;
  format: ToolCallFormat;
}

const REAL_CASES: RealCase[] = [
  {
    name: "meta-llama-Llama-3.1-8B-Instruct",
    bos: "<|begin_of_text|>",
    eos: "<|eot_id|>",
    // 3.1 prints a fixed date unless the caller passes date_string.
    expected: LLAMA3_SYSTEM("26 Jul 2024") + LLAMA3_TURNS,
    tools: true,
    system: true,
    format: "llama3",
  },
  {
    name: "meta-llama-Llama-3.2-3B-Instruct",
    bos: "<|begin_of_text|>",
    eos: "<|eot_id|>",
    expected: LLAMA3_SYSTEM("14 Mar 2025") + LLAMA3_TURNS, // via strftime_now("%d %b %Y")
    tools: true,
    system: true,
    format: "llama3",
  },
  { name: "Qwen-Qwen2.5-7B-Instruct", bos: "", eos: "<|im_end|>", expected: CHATML_TURNS, tools: true, system: true, format: "hermes" },
  { name: "Qwen-Qwen3-0.6B", bos: "", eos: "<|im_end|>", expected: CHATML_TURNS, tools: true, system: true, format: "hermes" },
  {
    name: "mistralai-Mistral-Nemo-Instruct-2407",
    bos: "<s>",
    eos: "</s>",
    // Nemo puts the system prompt in the last user turn.
    expected: "<s>[INST]Hi[/INST]Hello!</s>[INST]You are terse.\n\nWeather in Paris?[/INST]",
    tools: true,
    system: true,
    format: "mistral",
  },
  {
    name: "google-gemma-2-2b-it",
    bos: "<bos>",
    eos: "<eos>",
    // Gemma raises on a system role: like llama.cpp, the system text is merged into the first user turn.
    expected:
      "<bos><start_of_turn>user\nYou are terse.\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n" +
      "<start_of_turn>user\nWeather in Paris?<end_of_turn>\n<start_of_turn>model\n",
    tools: false,
    system: false,
    format: "generic",
  },
  {
    name: "microsoft-Phi-3.5-mini-instruct",
    bos: "<s>",
    eos: "<|endoftext|>",
    expected:
      "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n" +
      "<|user|>\nWeather in Paris?<|end|>\n<|assistant|>\n",
    tools: false,
    system: true,
    format: "generic",
  },
];

describe("ChatTemplate with real model templates", () => {
  for (const c of REAL_CASES) {
    test(`${c.name}: renders the conversation exactly`, () => {
      const template = new ChatTemplate(realTemplate(c.name));
      assert.equal(template.kind, "jinja");
      assert.equal(template.render({ messages: CONVERSATION, bosToken: c.bos, eosToken: c.eos, now: NOW }), c.expected);
      assert.equal(template.supportsTools, c.tools);
      assert.equal(template.supportsSystem, c.system);
      assert.equal(detectToolCallFormat(template.source), c.format);
    });
  }

  for (const c of REAL_CASES.filter((r) => r.tools)) {
    test(`${c.name}: renders tool definitions, the call, its result and the generation prompt`, () => {
      const template = new ChatTemplate(realTemplate(c.name));
      const text = template.render({ messages: TOOL_ROUND, tools: [WEATHER_TOOL], bosToken: c.bos, eosToken: c.eos, now: NOW });
      assert.ok(text.includes("get_weather") && text.includes("Get the current weather for a city"), text);
      assert.ok(text.includes('"city"') && text.includes("The city name"), text);
      assert.ok(text.includes("sunny, 21C"), text);
      assert.ok(/"arguments": \{"city": "Paris"\}|"parameters": \{"city": "Paris"\}/.test(text), text);
      if (c.format !== "mistral") assert.ok(text.endsWith(c.expected.slice(c.expected.lastIndexOf("<|"))), text);
    });
  }

  test("Llama 3.1: the tool call and its result render exactly (arguments as a JSON object)", () => {
    const text = new ChatTemplate(realTemplate("meta-llama-Llama-3.1-8B-Instruct")).render({
      messages: TOOL_ROUND,
      tools: [WEATHER_TOOL],
      now: NOW,
    });
    assert.ok(text.includes("Environment: ipython\n"));
    assert.ok(text.includes('    "function": {\n        "name": "get_weather",'), "tojson(indent=4)");
    assert.ok(
      text.endsWith(
        '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>' +
          '<|start_header_id|>ipython<|end_header_id|>\n\n"sunny, 21C"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
      ),
      text,
    );
  });

  test("Mistral Nemo: tool calls get 9-character ids and the result carries the same id", () => {
    const text = new ChatTemplate(realTemplate("mistralai-Mistral-Nemo-Instruct-2407")).render({
      messages: TOOL_ROUND,
      tools: [WEATHER_TOOL],
      bosToken: "<s>",
      eosToken: "</s>",
    });
    assert.ok(text.includes('[AVAILABLE_TOOLS][{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather'));
    assert.ok(
      text.endsWith(
        // The template only adds the system prompt when the last message is the user's: faithful to Python Jinja.
        '[INST]Weather in Paris?[/INST][TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call00001"}]</s>' +
          '[TOOL_RESULTS]{"content": sunny, 21C, "call_id": "call00001"}[/TOOL_RESULTS]',
      ),
      text,
    );
  });

  test("Qwen3: earlier thinking is dropped and the latest kept; enable_thinking=false closes the think block", () => {
    const template = new ChatTemplate(realTemplate("Qwen-Qwen3-0.6B"));
    const messages: ChatMessage[] = [
      { role: "user", content: "2+2?" },
      { role: "assistant", content: "4", thinking: "simple sum" },
    ];
    assert.equal(
      template.render({ messages, addGenerationPrompt: false }),
      "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\nsimple sum\n</think>\n\n4<|im_end|>\n",
    );
    const hi: ChatMessage[] = [{ role: "user", content: "Hi" }];
    const noThinking = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
    assert.equal(template.render({ messages: hi, think: false }), noThinking);
    assert.equal(template.render({ messages: hi, extra: { enable_thinking: false } }), noThinking);
    assert.equal(template.render({ messages: hi, think: true }), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  });

  test("Hermes 3 tool_use: tools rendered as python signatures, calls in <tool_call> blocks", () => {
    const template = new ChatTemplate(realTemplate("NousResearch-Hermes-3-Llama-3.1-8B-tool_use"));
    assert.equal(template.supportsTools, true);
    assert.equal(template.supportsSystem, true);
    assert.equal(detectToolCallFormat(template.source), "hermes");
    const text = template.render({ messages: TOOL_ROUND, tools: [WEATHER_TOOL], bosToken: "<|begin_of_text|>" });
    assert.ok(text.startsWith("<|begin_of_text|><|im_start|>system\nYou are a function calling AI model."), text);
    assert.ok(text.includes('"description": "get_weather(city: str) - Get the current weather for a city\n\n    Args:\n        city(str): The city name"'), text);
    assert.ok(
      text.endsWith(
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n" +
          "<|im_start|>user\nWeather in Paris?<|im_end|>\n" +
          '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n' +
          "<|im_start|>tool\n<tool_response>\nsunny, 21C\n</tool_response><|im_end|><|im_start|>assistant\n",
      ),
      text,
    );
  });

  test("addGenerationPrompt=false leaves the assistant header off", () => {
    const template = new ChatTemplate(realTemplate("Qwen-Qwen2.5-7B-Instruct"));
    const text = template.render({ messages: CONVERSATION, addGenerationPrompt: false });
    assert.ok(text.endsWith("Weather in Paris?<|im_end|>\n"), text);
  });
});

describe("ChatTemplate basics", () => {
  test("falls back to ChatML when the model has no template", () => {
    for (const template of [new ChatTemplate(), new ChatTemplate(""), new ChatTemplate(null)]) {
      assert.equal(template.source, DEFAULT_CHAT_TEMPLATE);
      assert.equal(template.render({ messages: CONVERSATION }), CHATML_TURNS);
      assert.equal(template.supportsTools, false);
    }
  });

  test("puts the media marker once per image before the message text", () => {
    const messages: ChatMessage[] = [{ role: "user", content: "Compare these.", images: ["aGVsbG8=", "d29ybGQ="] }];
    assert.equal(
      new ChatTemplate().render({ messages, imageMarker: "<__media__>", addGenerationPrompt: false }),
      "<|im_start|>user\n<__media__><__media__>Compare these.<|im_end|>\n",
    );
    assert.equal(new ChatTemplate("{{ range .Messages }}{{ .Content }}{{ end }}").render({ messages, imageMarker: "<m>" }), "<m><m>Compare these.");
  });

  test("a template syntax error is a BadRequestError naming the problem", () => {
    assert.throws(
      () => new ChatTemplate("{% for m in messages %}{{ m.content }}"),
      (err: unknown) => err instanceof BadRequestError && err.status === 400 && /^invalid chat template: /.test(err.message),
    );
  });

  test("raise_exception surfaces the template's own message", () => {
    const gemma = new ChatTemplate(realTemplate("google-gemma-2-2b-it"));
    assert.throws(
      () => gemma.render({ messages: [{ role: "user", content: "a" }, { role: "user", content: "b" }] }),
      (err: unknown) => err instanceof BadRequestError && err.message === "Conversation roles must alternate user/assistant/user/assistant/...",
    );
  });

  test("a runtime failure inside the template is a BadRequestError too", () => {
    const template = new ChatTemplate("{{ messages[0].content | no_such_filter }}");
    assert.throws(
      () => template.render({ messages: [{ role: "user", content: "x" }] }),
      (err: unknown) => err instanceof BadRequestError && /^chat template error: /.test(err.message),
    );
  });

  test("passes arguments as a JSON string to templates that concatenate them", () => {
    const source =
      "{% for m in messages %}{% if m.tool_calls %}{% for c in m.tool_calls %}{{ 'CALL ' + c.function.name + ' ' + c.function.arguments }}" +
      "{% endfor %}{% else %}{{ m.role + ':' + m.content + ';' }}{% endif %}{% endfor %}{% if tools %}{% endif %}";
    const template = new ChatTemplate(source);
    const text = template.render({ messages: [TOOL_ROUND[1]!, TOOL_ROUND[4]!] });
    assert.equal(text, 'user:Hi;CALL get_weather {"city":"Paris"}');
  });

  test("provides strftime_now and tojson with keyword arguments", () => {
    const template = new ChatTemplate(
      "{{ strftime_now('%A %d %B %Y') }}|{{ messages[0] | tojson(indent=2) }}|{{ {'b': 1, 'a': [1, 2]} | tojson(sort_keys=true) }}",
    );
    assert.equal(
      template.render({ messages: [{ role: "user", content: "é" }], now: NOW }),
      'Friday 14 March 2025|{\n  "role": "user",\n  "content": "é"\n}|{"a": [1, 2], "b": 1}',
    );
  });

  test("strftime covers the directives templates use", () => {
    assert.equal(strftime(new Date(2024, 6, 5, 9, 7, 3), "%Y-%m-%d %H:%M:%S %b %a %I%p %y %%"), "2024-07-05 09:07:03 Jul Fri 09AM 24 %");
  });

  test("compiles each template once", () => {
    const source = realTemplate("Qwen-Qwen2.5-7B-Instruct");
    assert.equal(ChatTemplate.cached(source), ChatTemplate.cached(source));
    assert.notEqual(ChatTemplate.cached(source), ChatTemplate.cached(undefined));
  });
});

describe("Ollama Go templates", () => {
  test("recognises Go templates and leaves Jinja ones alone", () => {
    assert.ok(isGoTemplate(LLAMA3_LEGACY) && isGoTemplate(LLAMA31) && isGoTemplate(QWEN25));
    assert.ok(isGoTemplate("{{ .Prompt }}"));
    for (const name of ["Qwen-Qwen2.5-7B-Instruct", "google-gemma-2-2b-it", "microsoft-Phi-3.5-mini-instruct"]) {
      assert.ok(!isGoTemplate(realTemplate(name)), name);
    }
    assert.ok(!isGoTemplate(DEFAULT_CHAT_TEMPLATE));
  });

  test("legacy .Prompt/.Response template: one block per turn, the last cut after .Response", () => {
    const template = new ChatTemplate(LLAMA3_LEGACY);
    assert.equal(template.kind, "go");
    assert.equal(template.supportsTools, false);
    const h = (role: string) => `<|start_header_id|>${role}<|end_header_id|>\n\n`;
    assert.equal(
      template.render({ messages: CONVERSATION }),
      `${h("system")}You are terse.<|eot_id|>${h("user")}Hi<|eot_id|>${h("assistant")}Hello!<|eot_id|>` +
        `${h("user")}Weather in Paris?<|eot_id|>${h("assistant")}`,
    );
  });

  test("llama3.1 messages template, without and with tools", () => {
    const template = new ChatTemplate(LLAMA31);
    assert.equal(template.supportsTools, true);
    assert.equal(detectToolCallFormat(LLAMA31), "llama3");
    const h = (role: string) => `<|start_header_id|>${role}<|end_header_id|>\n\n`;
    assert.equal(
      template.render({ messages: CONVERSATION }),
      `${h("system")}You are terse.<|eot_id|>${h("user")}Hi<|eot_id|>${h("assistant")}Hello!<|eot_id|>` +
        `${h("user")}Weather in Paris?<|eot_id|>${h("assistant")}`,
    );
    const withTools = template.render({ messages: TOOL_ROUND, tools: [WEATHER_TOOL] });
    assert.ok(withTools.includes("You are a helpful assistant with tool calling capabilities.<|eot_id|>"), withTools);
    // Tools are listed only with the last user message, which here is followed by the call and its result.
    assert.ok(!withTools.includes("Given the following functions"), withTools);
    assert.ok(
      withTools.endsWith(
        `${h("user")}Weather in Paris?<|eot_id|>${h("assistant")}` +
          `{"name": "get_weather", "parameters": {"city":"Paris"}}<|eot_id|>` +
          `${h("ipython")}sunny, 21C<|eot_id|>${h("assistant")}`,
      ),
      withTools,
    );
    const asking = template.render({ messages: CONVERSATION, tools: [WEATHER_TOOL] });
    assert.ok(asking.includes(`Do not use variables.\n\n${JSON.stringify(WEATHER_TOOL)}\n\nQuestion: Weather in Paris?<|eot_id|>${h("assistant")}`), asking);
  });

  test("qwen2.5 template: .Messages branch with tool calls, legacy branch unused", () => {
    const template = new ChatTemplate(QWEN25);
    assert.equal(detectToolCallFormat(QWEN25), "hermes");
    assert.equal(
      template.render({ messages: TOOL_ROUND, tools: [WEATHER_TOOL] }),
      "<|im_start|>system\nYou are terse.\n\n# Tools\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
        `{"type": "function", "function": ${JSON.stringify(WEATHER_TOOL.function)}}\n</tools><|im_end|>\n` +
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWeather in Paris?<|im_end|>\n" +
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris"}}\n</tool_call><|im_end|>\n' +
        "<|im_start|>user\n<tool_response>\nsunny, 21C\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
    );
  });

  test("passes the request's think setting as .Think, .ThinkLevel and .IsThinkSet", () => {
    const template = new ChatTemplate("{{ if .IsThinkSet }}{{ .Think }}/{{ .ThinkLevel }}:{{ end }}{{ range .Messages }}{{ .Content }}{{ end }}");
    const messages: ChatMessage[] = [{ role: "user", content: "Hi" }];
    assert.equal(template.render({ messages }), "Hi");
    assert.equal(template.render({ messages, think: "high" }), "true/high:Hi");
    assert.equal(template.render({ messages, think: "max" }), "true/high:Hi"); // the highest level templates know
    assert.equal(template.render({ messages, think: false }), "false/:Hi");
  });

  test("think \"max\" reaches a Jinja template as its highest reasoning_effort", () => {
    const template = new ChatTemplate("{{ reasoning_effort }}/{{ enable_thinking }}:{% for m in messages %}{{ m.content }}{% endfor %}");
    const messages: ChatMessage[] = [{ role: "user", content: "Hi" }];
    assert.equal(template.render({ messages, think: "max", addGenerationPrompt: false }), "high/true:Hi");
    assert.equal(template.render({ messages, think: "low", addGenerationPrompt: false }), "low/true:Hi");
  });

  test("collates consecutive messages of one role as Ollama does", () => {
    const template = new ChatTemplate("{{ range .Messages }}[{{ .Role }}:{{ .Content }}]{{ end }}|{{ .System }}");
    const messages: ChatMessage[] = [
      { role: "system", content: "a" },
      { role: "system", content: "b" },
      { role: "user", content: "c" },
      { role: "user", content: "d" },
    ];
    assert.equal(template.render({ messages }), "[system:a\n\nb][user:c\n\nd]|a\n\nb");
  });

  test("supports else/with/range-else, maps in key order, pipes, assignment, comments and index", () => {
    const template = new GoTemplate(
      `{{/* a comment */ -}}
{{ with .A }}{{ .B }}{{ else }}none{{ end }}|{{ range .Empty }}x{{ else }}empty{{ end }}|` +
        `{{ range $k, $v := .Map }}{{ $k }}={{ $v }};{{ end }}|{{ .Name | len }}|{{ $n := 1 }}{{ if .Flag }}{{ $n = 2 }}{{ end }}{{ $n }}|` +
        `{{ index .List 1 }}|{{ if not .Missing }}no{{ end }}|{{ if and .Flag (gt (len .List) 2) }}long{{ else if .Flag }}short{{ end }}|{{ json .Map }}`,
    );
    assert.equal(
      template.execute({ A: { B: "b" }, Empty: [], Map: { z: 1, a: "x" }, Name: "four", Flag: true, List: ["p", "q"] }),
      'b|empty|a=x;z=1;|4|2|q|no|short|{"z":1,"a":"x"}',
    );
  });

  test("template errors are BadRequestErrors", () => {
    for (const bad of ["{{ if .X }}open", "{{ .X ", "{{ end }}", "{{ nosuch .X }}", '{{ "unterminated }}', "{{ template \"x\" }}"]) {
      assert.throws(
        () => new GoTemplate(bad).execute({ X: 1 }),
        (err: unknown) => err instanceof BadRequestError && err.message.startsWith("template: "),
        bad,
      );
    }
  });
});

describe("tool-call parsing", () => {
  const call = (name: string, args: Record<string, unknown>, index = 0): ToolCall => ({ function: { index, name, arguments: args } });

  test("detects the format of each real template", () => {
    assert.equal(detectToolCallFormat(realTemplate("meta-llama-Llama-3.3-70B-Instruct")), "llama3");
    assert.equal(detectToolCallFormat(realTemplate("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use")), "hermes");
    assert.equal(detectToolCallFormat(realTemplate("unsloth-mistral-Devstral-Small-2507")), "mistral");
    assert.equal(detectToolCallFormat(DEFAULT_CHAT_TEMPLATE), "generic");
  });

  test("hermes: single, multiple, text around, unterminated last block", () => {
    assert.deepEqual(parseToolCalls("hermes", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'), {
      content: "",
      toolCalls: [call("get_weather", { city: "Paris" })],
    });
    assert.deepEqual(
      parseToolCalls(
        "hermes",
        'Let me check.\n<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n<tool_call>\n{"name": "b", "arguments": {}}\n</tool_call>\nDone.',
      ),
      { content: "Let me check.Done.", toolCalls: [call("a", { x: 1 }), call("b", {}, 1)] },
    );
    assert.deepEqual(parseToolCalls("hermes", 'ok <tool_call>{"name": "a", "arguments": "{\\"x\\": 2}"}'), {
      content: "ok",
      toolCalls: [call("a", { x: 2 })],
    });
  });

  test("hermes: malformed JSON or missing name stays content", () => {
    for (const text of [
      '<tool_call>\n{"name": "a", "arguments": {"x": }\n</tool_call>',
      '<tool_call>{"arguments": {}}</tool_call>',
      '<tool_call>{"name": "a", "arguments": [1]}</tool_call>',
      '<tool_call>{"name": "a", "arguments": {}} trailing</tool_call>',
      "<tool_call>",
      'Hello {"not": "a call"}',
    ]) {
      assert.deepEqual(parseToolCalls("hermes", text), { content: text, toolCalls: [] }, text);
    }
  });

  test("llama3: bare JSON with parameters, several calls, python_tag, plain JSON answers", () => {
    assert.deepEqual(parseToolCalls("llama3", ' {"name": "get_weather", "parameters": {"city": "Paris"}}'), {
      content: "",
      toolCalls: [call("get_weather", { city: "Paris" })],
    });
    assert.deepEqual(parseToolCalls("llama3", '{"name": "a", "parameters": {}}; {"name": "b", "parameters": {"y": true}}'), {
      content: "",
      toolCalls: [call("a", {}), call("b", { y: true }, 1)],
    });
    assert.deepEqual(parseToolCalls("llama3", 'Sure.<|python_tag|>{"name": "search", "parameters": {"q": "x"}}'), {
      content: "Sure.",
      toolCalls: [call("search", { q: "x" })],
    });
    const json = '{"answer": 42}';
    assert.deepEqual(parseToolCalls("llama3", json), { content: json, toolCalls: [] });
    const broken = '{"name": "a", "parameters": {"x": 1}';
    assert.deepEqual(parseToolCalls("llama3", broken), { content: broken, toolCalls: [] });
  });

  test("mistral: JSON array after [TOOL_CALLS], the named [ARGS] form, malformed arrays", () => {
    assert.deepEqual(
      parseToolCalls("mistral", '[TOOL_CALLS][{"name": "a", "arguments": {"x": 1}, "id": "abc123def"}, {"name": "b", "arguments": {}}]'),
      { content: "", toolCalls: [call("a", { x: 1 }), call("b", {}, 1)] },
    );
    assert.deepEqual(parseToolCalls("mistral", 'Checking.[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]b[CALL_ID]x1[ARGS]{}'), {
      content: "Checking.",
      toolCalls: [call("get_weather", { city: "Paris" }), call("b", {}, 1)],
    });
    const bad = '[TOOL_CALLS][{"name": "a", "arguments": {"x": 1}]';
    assert.deepEqual(parseToolCalls("mistral", bad), { content: bad, toolCalls: [] });
  });

  test("generic: a whole-answer call object or array, OpenAI-wrapped too; needs arguments", () => {
    assert.deepEqual(parseToolCalls("generic", '\n{"name": "a", "arguments": {"k": "v"}}\n'), { content: "", toolCalls: [call("a", { k: "v" })] });
    assert.deepEqual(parseToolCalls("generic", '[{"type": "function", "function": {"name": "a", "arguments": "{}"}}]'), {
      content: "",
      toolCalls: [call("a", {})],
    });
    assert.deepEqual(parseToolCalls("hermes", '{"name": "a", "arguments": {}}'), { content: "", toolCalls: [call("a", {})] }, "markers dropped");
    for (const text of ['{"name": "a"}', "Just text.", "", '{"name": 1, "arguments": {}}']) {
      assert.deepEqual(parseToolCalls("generic", text), { content: text, toolCalls: [] }, text);
    }
  });
});

describe("ToolCallStreamParser", () => {
  const SAMPLES: [ToolCallFormat, string][] = [
    ["hermes", 'Let me check the weather.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'],
    ["hermes", 'A <tool_call>{"name": "a", "arguments": {}}</tool_call> B <tool_call>{"name": "b", "arguments": {"x": [1, "}"]}}</tool_call> C '],
    ["hermes", "Plain answer with < and <tool and <tool_cal but no call.\n"],
    ["hermes", "Bad: <tool_call>{oops}</tool_call> end"],
    ["hermes", '  {"name": "a", "arguments": {}}'],
    ["llama3", '{"name": "get_weather", "parameters": {"city": "Paris"}}'],
    ["llama3", 'Use search. <|python_tag|>{"name": "search", "parameters": {"q": "x"}}'],
    ["llama3", "The answer is 4.  "],
    ["mistral", '[TOOL_CALLS][{"name": "a", "arguments": {"x": 1}}]'],
    ["mistral", "[1] is a footnote, not a call."],
    ["mistral", 'Sure [TOOL_CALLS]a[ARGS]{"x": "[TOOL_CALLS]"}'],
    ["generic", '{"name": "a", "arguments": {"q": "é"}}'],
    ["generic", "Hello there, no tools needed."],
  ];

  /** Every way to cut the text in two, plus one character at a time. */
  function* chunkings(text: string): Generator<string[]> {
    for (let cut = 0; cut <= text.length; cut++) yield [text.slice(0, cut), text.slice(cut)];
    yield [...text];
  }

  for (const [format, text] of SAMPLES) {
    test(`${format}: ${JSON.stringify(text.slice(0, 40))} streams like the buffered parse`, () => {
      const expected = parseToolCalls(format, text);
      for (const chunks of chunkings(text)) {
        const parser = new ToolCallStreamParser(format);
        let streamed = "";
        const calls: ToolCall[] = [];
        for (const chunk of chunks) {
          const piece = parser.push(chunk);
          streamed += piece.content;
          calls.push(...piece.toolCalls);
        }
        const end = parser.finish();
        assert.equal(streamed + end.content, expected.content, JSON.stringify(chunks));
        assert.deepEqual([...calls, ...end.toolCalls], expected.toolCalls);
        assert.ok(!/<tool_call>|\[TOOL_CALLS\]|python_tag/.test(streamed) || expected.toolCalls.length === 0, "no marker leaks");
      }
    });
  }

  test("lets plain text through as it arrives and holds a possible marker", () => {
    const parser = new ToolCallStreamParser("hermes");
    const text = (chunk: string) => parser.push(chunk).content;
    assert.equal(text("Hello"), "Hello");
    assert.equal(text(" world <tool"), " world");
    assert.equal(text("bar>"), " <toolbar>");
    assert.equal(text(" <tool_call>"), "");
    assert.deepEqual(parser.push('{"name": "a", "arguments": {}}</tool_call> bye'), { content: "", toolCalls: [{ function: { index: 0, name: "a", arguments: {} } }] });
    assert.deepEqual(parser.finish(), { content: "bye", toolCalls: [] });
  });

  test("each call goes out once complete, before the next one is written", () => {
    const calls = (parser: ToolCallStreamParser, chunk: string) => parser.push(chunk).toolCalls.map((c) => c.function.name);
    const hermes = new ToolCallStreamParser("hermes");
    assert.deepEqual(calls(hermes, '<tool_call>{"name": "a", "arguments": {}}'), [], "the closing tag may still not come");
    assert.deepEqual(calls(hermes, "</tool_call>\n<tool_call>"), ["a"]);
    assert.deepEqual(calls(hermes, '{"name": "b", "arguments": {"x": 1}}\n</tool_call>'), ["b"]);
    assert.deepEqual(hermes.finish(), { content: "", toolCalls: [] });
    const llama3 = new ToolCallStreamParser("llama3");
    assert.deepEqual(calls(llama3, '{"name": "a", "parameters": {"q": "}"}'), []);
    assert.deepEqual(calls(llama3, "}"), ["a"], "a closed JSON call is final");
    // A tag that never closes leaves the call as text, never pushed.
    const broken = new ToolCallStreamParser("hermes");
    assert.deepEqual(calls(broken, '<tool_call>{"name": "a", "arguments": {}}'), []);
    assert.deepEqual(calls(broken, " and more"), []);
    assert.deepEqual(broken.finish().toolCalls, []);
  });
});

describe("thinking", () => {
  test("splits a leading <think> block, an opener from the prompt and an unfinished thought", () => {
    assert.deepEqual(splitThinking("<think>\nPonder.\n</think>\n\nAnswer."), { thinking: "Ponder.", content: "Answer." });
    assert.deepEqual(splitThinking("Ponder.\n</think>Answer.", { startsInThinking: true }), { thinking: "Ponder.", content: "Answer." });
    assert.deepEqual(splitThinking("<think>still going"), { thinking: "still going", content: "" });
    assert.deepEqual(splitThinking("still going", { startsInThinking: true }), { thinking: "still going", content: "" });
    assert.deepEqual(splitThinking(" No thoughts."), { thinking: "", content: " No thoughts." });
    assert.deepEqual(splitThinking("Use <think> tags: <think>x</think>"), { thinking: "", content: "Use <think> tags: <think>x</think>" });
    assert.deepEqual(splitThinking("<think></think>Hi"), { thinking: "", content: "Hi" });
  });

  const SAMPLES: [string, ThinkingOptions][] = [
    ["<think>\nFirst idea.\n\nSecond idea.  \n</think>\n\nThe answer. </think> stays.", {}],
    ["  <think>a < b and </thin k></think>  ok", {}],
    ["<thinking is not a tag", {}],
    ["Reasoning\n</think>\nAnswer", { startsInThinking: true }],
    ["<think>Unclosed thought  \n", {}],
    ["   ", {}],
  ];

  for (const [text, options] of SAMPLES) {
    test(`streams ${JSON.stringify(text.slice(0, 30))} the same at every split`, () => {
      const expected = splitThinking(text, options);
      const splits = [...Array(text.length + 1).keys()].map((cut) => [text.slice(0, cut), text.slice(cut)]);
      for (const chunks of [...splits, [...text]]) {
        const parser = new ThinkingStreamParser(options);
        const got = { thinking: "", content: "" };
        for (const piece of [...chunks.map((chunk) => parser.push(chunk)), parser.finish()]) {
          got.thinking += piece.thinking;
          got.content += piece.content;
        }
        assert.deepEqual(got, expected, JSON.stringify(chunks));
      }
    });
  }

  test("emits thinking as it arrives, not only at the end", () => {
    const parser = new ThinkingStreamParser();
    assert.deepEqual(parser.push("<think>Let me"), { thinking: "Let me", content: "" });
    assert.deepEqual(parser.push(" see.</thi"), { thinking: " see.", content: "" });
    assert.deepEqual(parser.push("nk>\n\nYes"), { thinking: "", content: "Yes" });
  });
});
