// The chat page: conversations kept in localStorage, answers streamed from /api/chat (or
// /api/generate for a model without a chat template: it continues the text), a stop button that
// aborts the request (the server then frees its sequence), tokens/s and time to first token.
import { ndjson, getJson, postJson, request } from "/web/api.js";
import { enableCopyButtons, renderMarkdown } from "/web/markdown.js";

const STORAGE = { conversations: "vllama.conversations", settings: "vllama.settings" };
const OPTION_FIELDS = ["temperature", "top_p", "top_k", "num_predict", "num_ctx", "seed"];

const $ = (id) => document.getElementById(id);
const el = {
  model: $("model"), mode: $("mode"), conversations: $("conversations"), messages: $("messages"), empty: $("empty"),
  composer: $("composer"), prompt: $("prompt"), send: $("send"), stop: $("stop"), error: $("error"),
  settings: $("settings"), toggleSettings: $("toggle-settings"), system: $("system"), think: $("think"),
  attach: $("attach"), images: $("images"), attachments: $("attachments"), newChat: $("new-chat"),
};

function load(key, fallback) {
  try {
    return JSON.parse(localStorage.getItem(key)) ?? fallback;
  } catch {
    return fallback;
  }
}

const state = {
  conversations: load(STORAGE.conversations, []),
  settings: load(STORAGE.settings, { options: {}, think: true }),
  currentId: null,
  /** Per model name: { capabilities, chat } from /api/show. */
  models: new Map(),
  /** The request now streaming: { controller, conversationId }. */
  inFlight: null,
  pendingImages: [],
};

function saveConversations() {
  try {
    localStorage.setItem(STORAGE.conversations, JSON.stringify(state.conversations));
  } catch (err) {
    // The browser keeps a few MB per site: attached images fill it first.
    showError(`This browser could not keep the conversations (${err.message}): delete old ones, or those with images.`);
  }
}

/** A data URL for an attachment, typed from the image's first bytes (the API carries bare base64). */
function imageUrl(base64) {
  const types = { iVBOR: "image/png", "/9j/": "image/jpeg", R0lG: "image/gif", UklG: "image/webp" };
  const type = Object.entries(types).find(([prefix]) => base64.startsWith(prefix))?.[1] ?? "image/png";
  return `data:${type};base64,${base64}`;
}

function saveSettings() {
  localStorage.setItem(STORAGE.settings, JSON.stringify(state.settings));
}

function current() {
  return state.conversations.find((c) => c.id === state.currentId);
}

function showError(message) {
  el.error.textContent = message;
  el.error.hidden = message === "";
}

// --- models -------------------------------------------------------------------------------

async function modelInfo(name) {
  if (!state.models.has(name)) {
    const show = await postJson("/api/show", { model: name });
    const hasTemplate = show.template !== "" || typeof show.model_info?.["tokenizer.chat_template"] === "string";
    state.models.set(name, { capabilities: show.capabilities ?? [], chat: hasTemplate });
  }
  return state.models.get(name);
}

async function loadModels() {
  const { models } = await getJson("/api/tags");
  const names = models.filter((m) => !(m.capabilities ?? []).includes("embedding")).map((m) => m.name).sort();
  el.model.replaceChildren(...names.map((name) => new Option(name, name)));
  const preferred = current()?.model ?? localStorage.getItem("vllama.model");
  if (preferred && names.includes(preferred)) el.model.value = preferred;
  if (names.length === 0) showError("No models in the store: pull one with `vllama pull <model>`.");
  await onModelChange();
}

async function onModelChange() {
  const name = el.model.value;
  if (!name) return;
  localStorage.setItem("vllama.model", name);
  const info = await modelInfo(name);
  el.mode.hidden = info.chat;
  el.mode.textContent = "text completion: no chat template, the model continues the conversation's text";
  el.attach.hidden = !info.capabilities.includes("vision");
  if (el.attach.hidden) setPendingImages([]);
}

// --- conversations ------------------------------------------------------------------------

function newConversation() {
  const conversation = { id: crypto.randomUUID(), title: "New chat", model: el.model.value, system: "", messages: [], updatedAt: Date.now() };
  state.conversations.unshift(conversation);
  state.currentId = conversation.id;
  saveConversations();
  renderAll();
  el.prompt.focus();
}

function openConversation(id) {
  state.currentId = id;
  const conversation = current();
  if (conversation?.model && [...el.model.options].some((o) => o.value === conversation.model)) {
    el.model.value = conversation.model;
    void onModelChange().catch((err) => showError(err.message));
  }
  renderAll();
}

function deleteConversation(id) {
  if (state.inFlight?.conversationId === id) state.inFlight.controller.abort();
  state.conversations = state.conversations.filter((c) => c.id !== id);
  if (state.currentId === id) state.currentId = state.conversations[0]?.id ?? null;
  saveConversations();
  renderAll();
}

function renderConversationList() {
  const items = [...state.conversations].sort((a, b) => b.updatedAt - a.updatedAt).map((c) => {
    const item = document.createElement("div");
    item.className = `conversation${c.id === state.currentId ? " active" : ""}`;
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    open.textContent = c.title;
    open.title = c.title;
    open.addEventListener("click", () => openConversation(c.id));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.textContent = "×";
    remove.title = "Delete this conversation";
    remove.setAttribute("aria-label", `Delete ${c.title}`);
    remove.addEventListener("click", () => deleteConversation(c.id));
    item.append(open, remove);
    return item;
  });
  el.conversations.replaceChildren(...items);
}

// --- messages -----------------------------------------------------------------------------

function statsText(stats) {
  const parts = [`${stats.tokens} tokens`];
  if (stats.tokensPerSecond !== undefined) parts.push(`${stats.tokensPerSecond.toFixed(1)} tokens/s`);
  if (stats.ttftMs !== undefined) parts.push(`TTFT ${Math.round(stats.ttftMs)} ms`);
  return parts.join(" · ");
}

function renderMessage(message) {
  const node = document.createElement("article");
  node.className = `message ${message.role}`;
  if (message.role === "user") {
    const text = document.createElement("div");
    text.className = "content";
    text.textContent = message.content;
    node.append(text);
    for (const image of message.images ?? []) {
      const img = document.createElement("img");
      img.className = "thumbnail";
      img.src = imageUrl(image);
      img.alt = "attached image";
      node.append(img);
    }
    return node;
  }
  if (message.thinking) {
    const details = document.createElement("details");
    details.className = "thinking";
    const summary = document.createElement("summary");
    summary.textContent = message.content === "" && message.streaming ? "Thinking…" : "Thought";
    const body = document.createElement("div");
    body.className = "thinking-text";
    body.textContent = message.thinking;
    details.append(summary, body);
    node.append(details);
  }
  const content = document.createElement("div");
  content.className = "content markdown";
  content.innerHTML = renderMarkdown(message.content);
  node.append(content);
  const footer = document.createElement("div");
  footer.className = "stats";
  if (message.streaming) footer.textContent = message.content === "" && !message.thinking ? "Waiting for the first token…" : "";
  else if (message.error) footer.textContent = `Error: ${message.error}`;
  else if (message.stats) footer.textContent = `${statsText(message.stats)}${message.stopped ? " · stopped" : ""}`;
  else if (message.stopped) footer.textContent = "stopped";
  if (message.error) footer.classList.add("error");
  node.append(footer);
  return node;
}

function renderMessages() {
  const conversation = current();
  const messages = conversation?.messages ?? [];
  el.empty.hidden = messages.length > 0;
  el.messages.replaceChildren(el.empty, ...messages.map(renderMessage));
}

function scrollToEnd() {
  el.messages.scrollTop = el.messages.scrollHeight;
}

function renderAll() {
  renderConversationList();
  renderMessages();
  el.system.value = current()?.system ?? "";
  const busy = state.inFlight !== null;
  el.send.hidden = busy;
  el.stop.hidden = !busy;
  scrollToEnd();
}

// One render per frame while tokens stream in.
let renderQueued = false;
function renderSoon() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderMessages();
    scrollToEnd();
  });
}

// --- sending ------------------------------------------------------------------------------

function requestOptions() {
  const options = {};
  for (const [key, value] of Object.entries(state.settings.options)) if (value !== "" && value !== undefined) options[key] = Number(value);
  return options;
}

function requestBody(conversation, info) {
  const options = requestOptions();
  const history = conversation.messages.slice(0, -1);
  if (!info.chat) {
    // A base model continues text: the conversation so far is its prompt.
    return { path: "/api/generate", body: { model: conversation.model, prompt: history.map((m) => m.content).join(""), options, stream: true } };
  }
  const messages = history.map((m) => ({ role: m.role, content: m.content, ...(m.images?.length ? { images: m.images } : {}) }));
  if (conversation.system.trim() !== "") messages.unshift({ role: "system", content: conversation.system });
  return { path: "/api/chat", body: { model: conversation.model, messages, options, think: state.settings.think, stream: true } };
}

async function send() {
  const text = el.prompt.value;
  if ((text.trim() === "" && state.pendingImages.length === 0) || state.inFlight || !el.model.value) return;
  showError("");
  if (!current()) newConversation();
  const conversation = current();
  conversation.model = el.model.value;
  if (conversation.messages.length === 0) conversation.title = text.trim().slice(0, 60) || "Image";
  conversation.messages.push({ role: "user", content: text, images: state.pendingImages });
  const answer = { role: "assistant", content: "", thinking: "", streaming: true };
  conversation.messages.push(answer);
  conversation.updatedAt = Date.now();
  el.prompt.value = "";
  setPendingImages([]);
  const controller = new AbortController();
  state.inFlight = { controller, conversationId: conversation.id };
  renderAll();

  const started = performance.now();
  try {
    const info = await modelInfo(conversation.model);
    const { path, body } = requestBody(conversation, info);
    const res = await request(path, { method: "POST", body: JSON.stringify(body), signal: controller.signal });
    for await (const chunk of ndjson(res)) {
      if (chunk.error) throw new Error(chunk.error);
      const piece = info.chat ? chunk.message?.content : chunk.response;
      const thinking = info.chat ? chunk.message?.thinking : chunk.thinking;
      if ((piece || thinking) && answer.ttftMs === undefined) answer.ttftMs = performance.now() - started;
      answer.content += piece ?? "";
      answer.thinking += thinking ?? "";
      if (chunk.done) {
        answer.stats = {
          tokens: chunk.eval_count ?? 0,
          tokensPerSecond: chunk.eval_duration > 0 ? chunk.eval_count / (chunk.eval_duration / 1e9) : undefined,
          ttftMs: answer.ttftMs,
          doneReason: chunk.done_reason,
        };
      }
      renderSoon();
    }
  } catch (err) {
    if (controller.signal.aborted) answer.stopped = true;
    else answer.error = err.message;
  } finally {
    delete answer.streaming;
    delete answer.ttftMs;
    state.inFlight = null;
    conversation.updatedAt = Date.now();
    saveConversations();
    renderAll();
  }
}

// --- images -------------------------------------------------------------------------------

function setPendingImages(images) {
  state.pendingImages = images;
  el.attachments.replaceChildren(...images.map((image, i) => {
    const img = document.createElement("img");
    img.className = "thumbnail";
    img.src = imageUrl(image);
    img.alt = `attachment ${i + 1}`;
    img.title = "Click to remove";
    img.addEventListener("click", () => setPendingImages(state.pendingImages.filter((_, j) => j !== i)));
    return img;
  }));
}

function readAsBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// --- settings -----------------------------------------------------------------------------

function loadSettingsForm() {
  for (const field of OPTION_FIELDS) $(field).value = state.settings.options[field] ?? "";
  el.think.checked = state.settings.think;
}

function wire() {
  el.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    void send();
  });
  el.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      void send();
    }
  });
  el.stop.addEventListener("click", () => state.inFlight?.controller.abort());
  el.newChat.addEventListener("click", newConversation);
  el.model.addEventListener("change", () => void onModelChange().catch((err) => showError(err.message)));
  el.toggleSettings.addEventListener("click", () => {
    el.settings.hidden = !el.settings.hidden;
    el.toggleSettings.setAttribute("aria-expanded", String(!el.settings.hidden));
  });
  for (const field of OPTION_FIELDS) {
    $(field).addEventListener("input", () => {
      state.settings.options[field] = $(field).value;
      saveSettings();
    });
  }
  el.think.addEventListener("change", () => {
    state.settings.think = el.think.checked;
    saveSettings();
  });
  el.system.addEventListener("input", () => {
    if (!current()) newConversation();
    current().system = el.system.value;
    saveConversations();
  });
  el.images.addEventListener("change", async () => {
    const added = await Promise.all([...el.images.files].map(readAsBase64));
    el.images.value = "";
    setPendingImages([...state.pendingImages, ...added]);
  });
  enableCopyButtons(el.messages);
}

wire();
loadSettingsForm();
state.currentId = [...state.conversations].sort((a, b) => b.updatedAt - a.updatedAt)[0]?.id ?? null;
renderAll();
loadModels().catch((err) => showError(`Could not list models: ${err.message}`));
