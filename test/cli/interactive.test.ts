// The slash commands of `vllama run`'s interactive chat (/set, /show, /load, /save, /?), typed
// into a real pseudo-terminal. The server is the real HTTP server over the real model store (so
// /show and /save go through the real create and show code, on stories260K's GGUF); only chat
// and generate are faked, recording each request and echoing the last user message.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import type { EngineService } from "../../src/api/engine-contract.js";
import type {
  ChatRequest,
  ChatResponse,
  GenerateRequest,
  GenerateResponse,
  ShowResponse,
  TagsResponse,
} from "../../src/api/ollama.js";
import { HELP_TEXT, SET_HELP, SHORTCUTS_HELP, SHOW_HELP } from "../../src/cli/interactive-commands.js";
import { Engine } from "../../src/engine/engine.js";
import { startServer, type RunningServer } from "../../src/server/index.js";
import { storiesPath } from "../helpers/models.js";
import { cliEnv, TerminalSession } from "../helpers/terminal.js";

const home = mkdtempSync(join(tmpdir(), "vllama-cli-interactive-"));
const engine = new Engine({ modelsDir: join(home, "models") });
const chats: ChatRequest[] = [];
let server: RunningServer;
let url = "";

/** Unknown models fail as in the real engine (404 "model 'x' not found"). */
async function requireModel(name: string): Promise<void> {
  await engine.store.readManifest(name);
}

async function* replyStream(model: string, text: string): AsyncGenerator<ChatResponse> {
  const base = { model, created_at: new Date().toISOString(), message: { role: "assistant" as const, content: "" } };
  for (const word of text.split(/(?<= )/).filter((w) => w !== "")) {
    yield { ...base, message: { role: "assistant", content: word }, done: false };
  }
  yield { ...base, done: true, done_reason: text === "" ? "load" : "stop" };
}

/** "reply N: <last user message>": N, the user turns sent, shows what the conversation held. */
async function fakeChat(req: ChatRequest): Promise<AsyncIterable<ChatResponse>> {
  await requireModel(req.model);
  chats.push(req);
  const users = req.messages.filter((m) => m.role === "user");
  return replyStream(req.model, users.length === 0 ? "" : `reply ${users.length}: ${users.at(-1)!.content}`);
}

async function fakeGenerate(req: GenerateRequest): Promise<AsyncIterable<GenerateResponse>> {
  await requireModel(req.model);
  return (async function* () {
    yield { model: req.model, created_at: new Date().toISOString(), response: "", done: true, done_reason: "load" as const };
  })();
}

/** The real engine, but for generation: nothing native is loaded. */
const service = new Proxy<EngineService>(engine, {
  get(target, key) {
    if (key === "chat") return fakeChat;
    if (key === "generate") return fakeGenerate;
    const value = Reflect.get(target, key) as unknown;
    return typeof value === "function" ? value.bind(target) : value;
  },
});

async function api<T>(path: string, body?: unknown): Promise<T> {
  const init = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(`${url}${path}`, init);
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()) as T;
}

/** `vllama run MODEL` in a terminal, at its first prompt. */
/** Runs `vllama run MODEL` in a terminal, hands it to `session`, then ends it with /bye (exit 0). */
async function withChat(model: string, session: (term: TerminalSession) => Promise<void>): Promise<void> {
  const term = new TerminalSession(["run", model], { cwd: home, env: cliEnv({ HOME: home, OLLAMA_HOST: url }) });
  try {
    await term.waitFor(/>>> $/);
    await session(term);
    term.type("/bye\r");
    assert.equal(await term.exited, 0);
  } finally {
    term.kill();
  }
}

function lastChat(): ChatRequest {
  return chats.at(-1)!;
}

before(async () => {
  await engine.store.create({ model: "tiny", from: storiesPath, parameters: { top_k: 20 } });
  await engine.store.copy("tiny", "other");
  server = await startServer({
    engine: service,
    config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "1mb" },
    logger: pino({ level: "silent" }),
  });
  url = `http://127.0.0.1:${server.port}`;
});

after(async () => {
  await server.close();
  await engine.close();
  rmSync(home, { recursive: true, force: true });
});

describe("interactive commands", () => {
  test("/set parameter, system, format and think reach every request; bad ones say why and the chat goes on", async () => {
    await withChat("tiny", async (term) => {
      assert.equal(await term.enter("/set parameter temperature 0"), "Set parameter 'temperature' to '0'\n");
      assert.equal(await term.enter("/set parameter num_predict 5"), "Set parameter 'num_predict' to '5'\n");
      assert.equal(await term.enter("/set parameter stop <end> <eot>"), "Set parameter 'stop' to '<end>, <eot>'\n");
      assert.equal(await term.enter("/set parameter nope 1"), "Error: unknown parameter 'nope'\n");
      assert.equal(
        await term.enter("/set parameter temperature hot"),
        `Error: invalid value for parameter 'temperature': "hot" is not a number\n`,
      );
      assert.match(await term.enter("/set parameter num_predict"), /^Available Parameters:\n/);
      assert.equal(await term.enter("/set system You are terse."), "Set system message.\n");
      assert.equal(await term.enter("/set format json"), "Set format to 'json' mode.\n");
      assert.equal(
        await term.enter("/set format xml"),
        "Error: invalid or missing format. For 'json' mode use '/set format json'\n",
      );
      assert.equal(await term.enter("/set think"), 'warning: model "tiny" does not support thinking output\nSet \'think\' mode.\n');
      assert.match(await term.enter("/set think hard"), /^Error: invalid think level 'hard': /);

      assert.equal(await term.enter("hello"), "reply 1: hello\n\n");
      const first = lastChat();
      assert.deepEqual(first.options, { temperature: 0, num_predict: 5, stop: ["<end>", "<eot>"] });
      assert.deepEqual(first.messages, [
        { role: "system", content: "You are terse." },
        { role: "user", content: "hello" },
      ]);
      assert.equal(first.format, "json");
      assert.equal(first.think, true);

      // A later /set replaces a value (stop too); noformat and nothink take effect on the next request.
      await term.enter("/set parameter stop <only>", /^Set parameter/);
      assert.equal(await term.enter("/set noformat"), "Disabled format.\n");
      assert.match(await term.enter("/set nothink"), /Set 'nothink' mode\.\n$/);
      assert.equal(await term.enter("again"), "reply 2: again\n\n");
      const second = lastChat();
      assert.deepEqual(second.options, { temperature: 0, num_predict: 5, stop: ["<only>"] });
      assert.deepEqual(second.messages.map((m) => m.role), ["system", "user", "assistant", "user"]);
      assert.equal(second.format, undefined);
      assert.equal(second.think, false);

      assert.equal(await term.enter("/set bogus"), "Unknown command '/set bogus'. Type /? for help\n");
      assert.equal(await term.enter("/set"), SET_HELP);
      assert.equal(await term.enter("/set wordwrap"), "Set 'wordwrap' mode.\n");
      assert.equal(await term.enter("/set verbose"), "Set 'verbose' mode.\n");
      assert.match(await term.enter("timed"), /^reply 3: timed\n[\s\S]*eval rate:/);
      assert.equal(await term.enter("/set quiet"), "Set 'quiet' mode.\n");
      assert.equal(await term.enter("/set nohistory"), "");
    });
  });

  test('/show prints the model\'s information with the session\'s settings; /set system takes a """ block', async () => {
    await withChat("tiny", async (term) => {
      assert.equal(await term.enter("/show"), SHOW_HELP);
      assert.match(await term.enter("/show parameters"), /^Model defined parameters:\n {2}top_k {26}20\n\n$/);
      await term.enter("/set parameter temperature 0", /^Set parameter/);
      assert.equal(await term.enter('/set system """Be terse.'), "");
      assert.equal(await term.enter('Always."""'), "Set system message.\n");

      assert.match(
        await term.enter("/show parameters"),
        /^Model defined parameters:\n {2}top_k\s+20\n\nUser defined parameters:\n {2}temperature\s+0\n\n$/,
      );
      const modelfile = await term.enter("/show modelfile");
      assert.match(modelfile, /^# Modelfile generated by "vllama show"\n/m);
      assert.match(modelfile, /^FROM \S+\n/m);
      assert.match(modelfile, /^SYSTEM """Be terse\.\nAlways\."""\n/m);
      assert.match(modelfile, /^PARAMETER top_k 20\n/m);
      assert.match(modelfile, /^PARAMETER temperature 0\n/m);
      assert.equal(await term.enter("/show system"), "Be terse.\nAlways.\n");
      assert.equal(await term.enter("/show license"), "No license was specified for this model.\n");
      assert.match(await term.enter("/show info"), /^\n {2}Model\n {4}architecture\s+llama\n[\s\S]* {2}System\n {4}Be terse\.\n {4}Always\.\n/);
      assert.equal(await term.enter("/show nope"), "Unknown command '/show nope'. Type /? for help\n");

      assert.equal(await term.enter("/?"), HELP_TEXT);
      assert.equal(await term.enter("/help"), HELP_TEXT);
      assert.equal(await term.enter("/? set"), SET_HELP);
      assert.equal(await term.enter("/? show"), SHOW_HELP);
      assert.equal(await term.enter("/? shortcuts"), SHORTCUTS_HELP);
    });
    // Only the session saw its settings: the model is unchanged.
    const shown = await api<ShowResponse>("/api/show", { model: "tiny" });
    assert.equal(shown.system, "");
    assert.doesNotMatch(shown.modelfile, /temperature/);
  });

  test("/load switches the model and clears the conversation; an unknown model keeps the current one", async () => {
    await withChat("tiny", async (term) => {
      assert.equal(await term.enter("hello"), "reply 1: hello\n\n");
      assert.equal(await term.enter("/load nope"), "Loading model 'nope'\nError: model 'nope' not found, try `vllama pull nope`\n");
      assert.equal(await term.enter("still here"), "reply 2: still here\n\n");
      assert.equal(lastChat().model, "tiny");

      assert.equal(await term.enter("/load other"), "Loading model 'other'\n");
      assert.equal(await term.enter("fresh"), "reply 1: fresh\n\n");
      assert.equal(lastChat().model, "other");
      assert.deepEqual(lastChat().messages, [{ role: "user", content: "fresh" }]);
      assert.equal(await term.enter("/load"), "Usage:\n  /load <modelname>\n");
    });
  });

  test("/save creates a model from the current one with the system prompt, parameters and conversation", async () => {
    await withChat("tiny", async (term) => {
      await term.enter("/set system Be brief.", /^Set system message/);
      await term.enter("/set parameter temperature 0", /^Set parameter/);
      await term.enter("/set parameter stop <end> <eot>", /^Set parameter/);
      assert.equal(await term.enter("hello"), "reply 1: hello\n\n");
      assert.equal(await term.enter("more"), "reply 2: more\n\n");
      assert.equal(await term.enter("/save tiny-saved"), "Created new model 'tiny-saved'\n");
      assert.equal(await term.enter("/save"), "Usage:\n  /save <modelname>\n");
      assert.match(await term.enter("/save -x"), /^Error: invalid model name '-x'/);
    });
    const { models } = await api<TagsResponse>("/api/tags");
    assert.ok(models.some((m) => m.name === "tiny-saved:latest"), JSON.stringify(models.map((m) => m.name)));
    const saved = await api<ShowResponse>("/api/show", { model: "tiny-saved" });
    assert.equal(saved.system, "Be brief.");
    assert.deepEqual(saved.messages, [
      { role: "user", content: "hello" },
      { role: "assistant", content: "reply 1: hello" },
      { role: "user", content: "more" },
      { role: "assistant", content: "reply 2: more" },
    ]);
    // The session's parameters over the model's own.
    const parameters = saved.parameters.split("\n").map((line) => line.split(/\s+/).join(" "));
    assert.deepEqual(parameters.sort(), ['stop "<end>"', 'stop "<eot>"', "temperature 0", "top_k 20"]);
  });
});
