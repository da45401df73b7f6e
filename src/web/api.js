// Calls from the pages to this server: JSON and NDJSON streams, sending the API key when one is
// kept, and asking for one when the server answers 401.

const KEY_STORAGE = "vllama.apiKey";

/** Asks for the API key in a dialog; resolves with it, or null when the user cancels. */
function askForKey(message) {
  const dialog = document.createElement("dialog");
  dialog.className = "key-dialog";
  dialog.innerHTML = `
    <form method="dialog">
      <h2>API key</h2>
      <p class="key-message"></p>
      <input name="key" type="password" autocomplete="current-password" placeholder="API key" required>
      <menu><button value="cancel" formnovalidate>Cancel</button><button value="ok" class="primary">Use key</button></menu>
    </form>`;
  dialog.querySelector(".key-message").textContent = message;
  document.body.append(dialog);
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const key = dialog.querySelector("input").value.trim();
      dialog.remove();
      resolve(dialog.returnValue === "ok" && key !== "" ? key : null);
    });
  });
}

/** The message of an error response, in Ollama's or OpenAI's shape. */
async function errorMessage(res) {
  const text = await res.text();
  try {
    const body = JSON.parse(text);
    return typeof body.error === "string" ? body.error : body.error?.message ?? text;
  } catch {
    return text || `HTTP ${res.status}`;
  }
}

/** fetch() with the kept API key; on 401 asks for a key and tries again. Throws on other errors. */
export async function request(path, init = {}) {
  for (;;) {
    const headers = new Headers(init.headers);
    const key = localStorage.getItem(KEY_STORAGE);
    if (key) headers.set("Authorization", `Bearer ${key}`);
    const res = await fetch(path, { ...init, headers });
    if (res.ok) return res;
    const message = await errorMessage(res);
    if (res.status !== 401) throw new Error(message);
    const entered = await askForKey(key ? `The key was refused: ${message}` : `This server needs an API key: ${message}`);
    if (entered === null) throw new Error(message);
    localStorage.setItem(KEY_STORAGE, entered);
  }
}

export async function getJson(path) {
  return (await request(path)).json();
}

export async function postJson(path, body) {
  return (await request(path, { method: "POST", body: JSON.stringify(body) })).json();
}

/** The objects of an NDJSON response, as they arrive. */
export async function* ndjson(res) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += value;
    const lines = pending.split("\n");
    pending = lines.pop();
    for (const line of lines) if (line.trim() !== "") yield JSON.parse(line);
  }
  if (pending.trim() !== "") yield JSON.parse(pending);
}
